/* Tests of the Gemini chat backend against fake_gemini (a real HTTP server on
 * loopback, in-process): the request it sends (path with the literal colon, key
 * header, system instruction with the retrieved knowledge, alternating turns),
 * every answer shape (thought parts, prompt block, SAFETY, MAX_TOKENS, empty) and
 * every failure (bad key, 403, retired model, 429 with RetryInfo, 500/503, slow,
 * malformed, dropped), the streamed answers of streamGenerateContent?alt=sse
 * (pieces in order, sentences complete before the stream ends, LF and CRLF,
 * keep-alives, blocks, a stream broken off or ending early), and the settings
 * that stop the service at start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_backend.h"
#include "chat_stream_check.h"
#include "counters.h"
#include "fake_http.h"
#include "llm.h"

#define KEY "AIzaFAKE-gemini-key-0123456789"

int fake_gemini_install(fake_server_t *server);

typedef struct {
  fake_server_t *server;
  chat_backend_t *chat;
} fixture_t;

static int setup(void **state)
{
  fixture_t *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  setenv("FAKE_GEMINI_KEY", KEY, 1);
  setenv("FAKE_SLOW_MS", "2500", 1);
  f->server = fake_server_new(0);
  if (!f->server || fake_gemini_install(f->server) < 0)
    return -1;
  char base[64];
  fake_server_base_url(f->server, base, sizeof base);
  setenv("GEMINI_BASE_URL", base, 1);
  setenv("GEMINI_API_KEY", KEY, 1);
  unsetenv("GEMINI_MODEL");
  setenv("CHAT_TIMEOUT_MS", "6000", 1);   /* 4.8 s for the HTTP calls */
  setenv("CHAT_MAX_ATTEMPTS", "3", 1);
  stage_error_t err = {0};
  f->chat = chat_gemini_new(&err);
  if (!f->chat) {
    fprintf(stderr, "chat_gemini_new: %s\n", err.message);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *f = *state;
  f->chat->destroy(&f->chat);
  fake_server_destroy(&f->server);
  free(f);
  return 0;
}

/* Asks `question` with no history; returns the reply (caller frees) or NULL with `err`. */
static char *ask(fixture_t *f, const char *question, stage_error_t *err)
{
  char *reply = NULL;
  int rc = f->chat->reply(f->chat, question, NULL, 0, &reply, err);
  assert_int_equal(rc == 0, reply != NULL);
  return reply;
}

static void expect_reply(fixture_t *f, const char *outcomes, const char *question, const char *expected)
{
  assert_int_equal(fake_server_push_outcome(f->server, outcomes), 0);
  stage_error_t err = {0};
  char *reply = ask(f, question, &err);
  if (!reply)
    fail_msg("%s: %s", outcomes, err.message);
  assert_string_equal(reply, expected);
  free(reply);
}

static void expect_error(fixture_t *f, const char *outcomes, const char *code, const char *part,
                         size_t requests)
{
  if (outcomes)
    assert_int_equal(fake_server_push_outcome(f->server, outcomes), 0);
  stage_error_t err = {0};
  char *reply = ask(f, "what are your office hours", &err);
  assert_null(reply);
  printf("# %s -> %s: %s\n", outcomes ? outcomes : "(setting)", err.code, err.message);
  assert_string_equal(err.code, code);
  assert_non_null(strstr(err.message, part));
  assert_null(strstr(err.message, KEY));
  assert_int_equal(fake_server_request_count(f->server), requests);
}

static const cJSON *contents_of(const cJSON *body)
{
  return cJSON_GetObjectItemCaseSensitive(body, "contents");
}

static const char *content_text(const cJSON *content)
{
  const cJSON *part = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(content, "parts"), 0);
  return cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
}

static const char *content_role(const cJSON *content)
{
  return cJSON_GetObjectItemCaseSensitive(content, "role")->valuestring;
}

static void test_request_shape(void **state)
{
  fixture_t *f = *state;
  /* A history as a session may hold it: an assistant turn first, two user turns
   * in a row (an earlier failed job), a role Gemini does not know, a blank turn. */
  const chat_turn_t history[] = {
    {"assistant", "Hi, I'm Ava."},
    {"user", "hello"},
    {"user", "what are your opening hours"},
    {"system", "ignored"},
    {"assistant", "We're open Monday to Friday, 9 AM to 6 PM."},
    {"assistant", "   "},
  };
  char *reply = NULL;
  stage_error_t err = {0};
  assert_int_equal(f->chat->reply(f->chat, "and on saturday?", history, 6, &reply, &err), 0);
  assert_string_equal(reply, "Gemini heard: and on saturday?");
  free(reply);

  const fake_request_t *req = fake_server_last_request(f->server, NULL);
  assert_non_null(req);
  assert_string_equal(req->method, "POST");
  assert_string_equal(req->path, "/v1beta/models/gemini-2.5-flash:generateContent");
  assert_string_equal(req->query, "");
  assert_string_equal(fake_request_header(req, "x-goog-api-key"), KEY);
  assert_non_null(strstr(fake_request_header(req, "Content-Type"), "application/json"));
  cJSON *body = fake_request_json(req);
  assert_non_null(body);
  const cJSON *contents = contents_of(body);
  assert_int_equal(cJSON_GetArraySize(contents), 3);
  assert_string_equal(content_role(cJSON_GetArrayItem(contents, 0)), "user");
  assert_string_equal(content_text(cJSON_GetArrayItem(contents, 0)), "hello\nwhat are your opening hours");
  assert_string_equal(content_role(cJSON_GetArrayItem(contents, 1)), "model");
  assert_string_equal(content_role(cJSON_GetArrayItem(contents, 2)), "user");
  assert_string_equal(content_text(cJSON_GetArrayItem(contents, 2)), "and on saturday?");
  /* The follow-up found the hours entry through the previous question. */
  const char *instruction = content_text(cJSON_GetObjectItemCaseSensitive(body, "systemInstruction"));
  assert_non_null(strstr(instruction, "You are Ava"));
  assert_non_null(strstr(instruction, "Saturday 10 AM to 2 PM"));
  cJSON_Delete(body);
}

static void test_instruction_without_matching_entry(void **state)
{
  fixture_t *f = *state;
  expect_reply(f, "ok", "explain quantum chromodynamics", "Gemini heard: explain quantum chromodynamics");
  cJSON *body = fake_request_json(fake_server_last_request(f->server, NULL));
  const char *instruction = content_text(cJSON_GetObjectItemCaseSensitive(body, "systemInstruction"));
  assert_non_null(strstr(instruction, "No help desk fact matches"));
  cJSON_Delete(body);
}

static void test_model_setting(void **state)
{
  fixture_t *f = *state;
  setenv("GEMINI_MODEL", "gemini-2.5-pro", 1);
  stage_error_t err = {0};
  chat_backend_t *pro = chat_gemini_new(&err);
  assert_non_null(pro);
  char *reply = NULL;
  assert_int_equal(pro->reply(pro, "hi there", NULL, 0, &reply, &err), 0);
  free(reply);
  assert_string_equal(fake_server_last_request(f->server, NULL)->path,
                      "/v1beta/models/gemini-2.5-pro:generateContent");
  pro->destroy(&pro);
  assert_null(pro);
}

static void test_answer_shapes(void **state)
{
  fixture_t *f = *state;
  const char *fallback = "I'm sorry, I can't help with that. I can answer questions";
  expect_reply(f, "thought", "hi", "Gemini heard: hi");
  expect_reply(f, "max_tokens", "tell me everything", "Gemini heard: tell me everything");
  expect_reply(f, "block", "something dangerous", LLM_BLOCKED_REPLY);
  expect_reply(f, "safety", "something rude", LLM_BLOCKED_REPLY);
  assert_int_equal(fake_server_push_outcome(f->server, "empty"), 0);
  stage_error_t err = {0};
  char *reply = ask(f, "say nothing", &err);
  assert_non_null(reply);
  assert_memory_equal(reply, fallback, strlen(fallback));
  free(reply);
}

static void test_wrong_key_is_not_retried(void **state)
{
  fixture_t *f = *state;
  setenv("GEMINI_API_KEY", "AIzaWRONG-key-9876543210", 1);
  stage_error_t err = {0};
  chat_backend_t *wrong = chat_gemini_new(&err);
  assert_non_null(wrong);
  char *reply = NULL;
  assert_int_equal(wrong->reply(wrong, "hello", NULL, 0, &reply, &err), -1);
  printf("# wrong key -> %s: %s\n", err.code, err.message);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "HTTP 400"));
  assert_non_null(strstr(err.message, "API_KEY_INVALID"));
  assert_null(strstr(err.message, "AIzaWRONG"));
  assert_int_equal(fake_server_request_count(f->server), 1);
  wrong->destroy(&wrong);
}

static void test_client_errors(void **state)
{
  fixture_t *f = *state;
  expect_error(f, "403", "backend_error", "Consumer has been suspended", 1);
  fake_server_clear(f->server);
  setenv("GEMINI_MODEL", "gemini-1.5-pro", 1);   /* the seed's model, retired */
  stage_error_t err = {0};
  chat_backend_t *retired = chat_gemini_new(&err);
  assert_non_null(retired);
  char *reply = NULL;
  assert_int_equal(retired->reply(retired, "hello", NULL, 0, &reply, &err), -1);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "HTTP 404"));
  assert_non_null(strstr(err.message, "models/gemini-1.5-pro is not found"));
  retired->destroy(&retired);
}

static void test_quota_429_is_retried_after_retry_info(void **state)
{
  fixture_t *f = *state;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  expect_reply(f, "429 ok", "hello", "Gemini heard: hello");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  printf("# 429 with retryDelay 1s, then ok: %ld ms\n", ms);
  assert_true(ms >= 950);
  assert_int_equal(fake_server_request_count(f->server), 2);
  fake_server_clear(f->server);
  setenv("CHAT_MAX_ATTEMPTS", "2", 1);
  expect_error(f, "429 429", "backend_error", "exceeded your current quota", 2);
}

static void test_server_errors(void **state)
{
  fixture_t *f = *state;
  uint64_t before = 0;
  cJSON *snap = counters_snapshot();
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(snap, "backend_retries"), "gemini");
  before = cJSON_IsNumber(n) ? (uint64_t) n->valuedouble : 0;
  cJSON_Delete(snap);
  expect_reply(f, "503 500 ok", "hello", "Gemini heard: hello");
  assert_int_equal(fake_server_request_count(f->server), 3);
  snap = counters_snapshot();
  n = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(snap, "backend_retries"), "gemini");
  assert_true(cJSON_IsNumber(n) && (uint64_t) n->valuedouble == before + 2);
  cJSON_Delete(snap);
  fake_server_clear(f->server);
  expect_error(f, "500 503 500", "backend_error", "HTTP 500: An internal error", 3);
}

static void test_slow_answer_times_out(void **state)
{
  fixture_t *f = *state;
  setenv("CHAT_TIMEOUT_MS", "1250", 1);   /* 1 s for the HTTP calls */
  expect_error(f, "slow", "timeout", "gemini", 1);
}

static void test_malformed_and_dropped(void **state)
{
  fixture_t *f = *state;
  expect_error(f, "malformed", "backend_error", "not JSON", 1);
  fake_server_clear(f->server);
  expect_reply(f, "drop ok", "hello", "Gemini heard: hello");
  assert_int_equal(fake_server_request_count(f->server), 2);
}

static void test_unreachable(void **state)
{
  fixture_t *f = *state;
  char base[64];
  fake_server_base_url(f->server, base, sizeof base);
  fake_server_destroy(&f->server);
  stage_error_t err = {0};
  char *reply = ask(f, "hello", &err);
  assert_null(reply);
  printf("# server gone -> %s: %s\n", err.code, err.message);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "could not be reached"));
  /* Put a server back for teardown. */
  f->server = fake_server_new(0);
  assert_non_null(f->server);
}

static void test_settings_stop_the_service(void **state)
{
  (void) state;
  stage_error_t err = {0};
  unsetenv("GEMINI_API_KEY");
  assert_null(chat_gemini_new(&err));
  assert_string_equal(err.code, "bad_config");
  assert_non_null(strstr(err.message, "GEMINI_API_KEY"));
  setenv("GEMINI_API_KEY", KEY, 1);
  setenv("GEMINI_MODEL", "../../secrets", 1);
  assert_null(chat_gemini_new(&err));
  assert_non_null(strstr(err.message, "GEMINI_MODEL"));
  unsetenv("GEMINI_MODEL");
  setenv("GEMINI_BASE_URL", "generativelanguage.googleapis.com", 1);
  assert_null(chat_gemini_new(&err));
  assert_non_null(strstr(err.message, "GEMINI_BASE_URL"));
  assert_null(strstr(err.message, KEY));
  setenv("GEMINI_BASE_URL", "https://example.invalid/", 1);   /* trailing slash is fine */
  chat_backend_t *chat = chat_gemini_new(&err);
  assert_non_null(chat);
  chat->destroy(&chat);
}

/* --- streamed answers -------------------------------------------------------- */

#define STREAMED_ANSWER(heard) "Gemini heard: " heard ". I can help with that in a few short " \
  "sentences. Our team is happy to help \xe2\x80\x94 ask me anything else you would like to know."

static void test_stream_sentences_go_on_before_the_end(void **state)
{
  fixture_t *f = *state;
  setenv("FAKE_STREAM_PAUSE_MS", "1200", 1);
  const char *expected = STREAMED_ANSWER("what are your office hours");
  streamed_t streamed;
  stage_error_t err = {0};
  char *reply = ask_streamed(f->server, f->chat, "pause", "what are your office hours", &streamed, &err);
  if (!reply)
    fail_msg("pause: %s", err.message);
  assert_string_equal(reply, expected);
  assert_string_equal(streamed.text, expected);
  assert_true(streamed.pieces >= 10);
  assert_int_equal(streamed.sentences, 3);
  /* The first sentence was complete while the model still had most to write. */
  assert_true(streamed.len_at_first_sentence > 0);
  assert_true(streamed.len_at_first_sentence < strlen(expected) / 2);
  free(reply);
  const fake_request_t *req = fake_server_last_request(f->server, NULL);
  assert_string_equal(req->path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent");
  assert_string_equal(req->query, "alt=sse");
  assert_string_equal(fake_request_header(req, "x-goog-api-key"), KEY);
}

static void test_stream_shapes(void **state)
{
  fixture_t *f = *state;
  expect_streamed(f->server, f->chat, "ok", "hello", STREAMED_ANSWER("hello"));
  expect_streamed(f->server, f->chat, "crlf", "hello", STREAMED_ANSWER("hello"));
  expect_streamed(f->server, f->chat, "trickle", "hi", STREAMED_ANSWER("hi"));
  expect_streamed(f->server, f->chat, "thought", "hi", STREAMED_ANSWER("hi"));
  expect_streamed(f->server, f->chat, "max_tokens", "hi", STREAMED_ANSWER("hi"));
  expect_streamed(f->server, f->chat, "block", "something dangerous", LLM_BLOCKED_REPLY);
  expect_streamed(f->server, f->chat, "safety", "something rude", LLM_BLOCKED_REPLY);
  streamed_t streamed;
  stage_error_t err = {0};
  char *reply = ask_streamed(f->server, f->chat, "empty", "say nothing", &streamed, &err);
  assert_non_null(reply);
  assert_string_equal(streamed.text, reply);
  assert_non_null(strstr(reply, "I can answer questions"));
  free(reply);
  /* Errors before the stream began are retried as for whole answers. */
  expect_streamed(f->server, f->chat, "503 ok", "hello", STREAMED_ANSWER("hello"));
}

/* A stream that breaks off fails the answer, also after sentences went on. */
static void expect_stream_error(fixture_t *f, const char *outcome, const char *part,
                                bool handed_on)
{
  streamed_t streamed;
  stage_error_t err = {0};
  fake_server_clear(f->server);
  char *reply = ask_streamed(f->server, f->chat, outcome, "what are your office hours", &streamed, &err);
  assert_null(reply);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, part));
  assert_null(strstr(err.message, KEY));
  assert_int_equal(streamed.len > 0, handed_on);
  /* Once an answer has begun it is never asked again. */
  assert_int_equal(fake_server_request_count(f->server), 1);
}

static void test_stream_failures(void **state)
{
  fixture_t *f = *state;
  expect_stream_error(f, "cut", "broke off its event stream", true);
  expect_stream_error(f, "error", "Internal error encountered", true);
  expect_stream_error(f, "nofinish", "no finishReason", true);
  fake_server_clear(f->server);
  streamed_t streamed;
  stage_error_t err = {0};
  assert_null(ask_streamed(f->server, f->chat, "500 500 500", "hello", &streamed, &err));
  assert_non_null(strstr(err.message, "HTTP 500"));
  assert_int_equal(streamed.len, 0);
}

static int refuse_text(void *arg, const char *text, size_t size, stage_error_t *err)
{
  (void) arg, (void) text, (void) size;
  return stage_error_set(err, "backend_error", "the next stage is gone");
}

static void test_stream_receiver_failure_ends_the_answer(void **state)
{
  fixture_t *f = *state;
  char *reply = NULL;
  stage_error_t err = {0};
  assert_int_equal(f->chat->reply_stream(f->chat, "hello", NULL, 0, refuse_text, NULL, &reply,
                                         &err), -1);
  assert_null(reply);
  assert_string_equal(err.message, "the next stage is gone");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_request_shape, setup, teardown),
    cmocka_unit_test_setup_teardown(test_instruction_without_matching_entry, setup, teardown),
    cmocka_unit_test_setup_teardown(test_model_setting, setup, teardown),
    cmocka_unit_test_setup_teardown(test_answer_shapes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_wrong_key_is_not_retried, setup, teardown),
    cmocka_unit_test_setup_teardown(test_client_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_quota_429_is_retried_after_retry_info, setup, teardown),
    cmocka_unit_test_setup_teardown(test_server_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_slow_answer_times_out, setup, teardown),
    cmocka_unit_test_setup_teardown(test_malformed_and_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
    cmocka_unit_test_setup_teardown(test_settings_stop_the_service, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_sentences_go_on_before_the_end, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_shapes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_failures, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_receiver_failure_ends_the_answer, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
