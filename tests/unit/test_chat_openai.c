/* Tests of the OpenAI-compatible chat backend against fake_openai_chat (a real
 * HTTP server on loopback, in-process): the request (system message with the
 * retrieved knowledge, alternating turns, Bearer key, model), answer shapes (null
 * or empty content, length, content_filter, <think> blocks) and failures (bad
 * key, unknown model, 429 with Retry-After, 500/503, slow, malformed, dropped),
 * the streamed answers of "stream": true (pieces in order, sentences complete
 * before the stream ends, LF and CRLF, keep-alives, <think> blocks held back,
 * llama.cpp's "error:" line, an error payload, a stream broken off or without
 * [DONE]), and the settings that stop the service at start. */
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
#include "fake_http.h"
#include "llm.h"

#define KEY "sk-local-llama-key-0123456789"

int fake_openai_chat_install(fake_server_t *server);

typedef struct {
  fake_server_t *server;
  chat_backend_t *chat;
} fixture_t;

/* A fake requiring KEY (and `model` when not NULL), and a backend pointed at it. */
static fixture_t *start(const char *model)
{
  fixture_t *f = calloc(1, sizeof *f);
  assert_non_null(f);
  setenv("FAKE_OPENAI_KEY", KEY, 1);
  if (model)
    setenv("FAKE_OPENAI_MODEL", model, 1);
  else
    unsetenv("FAKE_OPENAI_MODEL");
  setenv("FAKE_SLOW_MS", "2500", 1);
  f->server = fake_server_new(0);
  assert_non_null(f->server);
  assert_int_equal(fake_openai_chat_install(f->server), 0);
  char base[64];
  fake_server_base_url(f->server, base, sizeof base);
  setenv("OPENAI_CHAT_BASE_URL", base, 1);
  setenv("OPENAI_API_KEY", KEY, 1);
  unsetenv("OPENAI_CHAT_MODEL");
  setenv("CHAT_TIMEOUT_MS", "6000", 1);   /* 4.8 s for the HTTP calls */
  setenv("CHAT_MAX_ATTEMPTS", "3", 1);
  stage_error_t err = {0};
  f->chat = chat_openai_new(&err);
  if (!f->chat)
    fail_msg("chat_openai_new: %s", err.message);
  return f;
}

static int setup(void **state)
{
  *state = start(NULL);
  return 0;
}

static int teardown(void **state)
{
  fixture_t *f = *state;
  if (f->chat)
    f->chat->destroy(&f->chat);
  fake_server_destroy(&f->server);
  free(f);
  return 0;
}

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

static const char *message_field(const cJSON *messages, int i, const char *name)
{
  return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(messages, i), name)->valuestring;
}

static void test_request_shape(void **state)
{
  fixture_t *f = *state;
  const chat_turn_t history[] = {
    {"assistant", "Hi, I'm Ava."},
    {"user", "do you ship to canada"},
    {"assistant", "Yes, we ship to Canada."},
  };
  char *reply = NULL;
  stage_error_t err = {0};
  assert_int_equal(f->chat->reply(f->chat, "how long does it take?", history, 3, &reply, &err), 0);
  assert_string_equal(reply, "Llama heard: how long does it take?");
  free(reply);
  const fake_request_t *req = fake_server_last_request(f->server, NULL);
  assert_string_equal(req->path, "/v1/chat/completions");
  assert_string_equal(fake_request_header(req, "Authorization"), "Bearer " KEY);
  cJSON *body = fake_request_json(req);
  assert_non_null(body);
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(body, "model")->valuestring, "default");
  assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(body, "stream")));
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(body, "messages");
  assert_int_equal(cJSON_GetArraySize(messages), 4);
  assert_string_equal(message_field(messages, 0, "role"), "system");
  assert_non_null(strstr(message_field(messages, 0, "content"), "You are Ava"));
  assert_non_null(strstr(message_field(messages, 0, "content"), "Canada"));
  assert_string_equal(message_field(messages, 1, "role"), "user");
  assert_string_equal(message_field(messages, 1, "content"), "do you ship to canada");
  assert_string_equal(message_field(messages, 2, "role"), "assistant");
  assert_string_equal(message_field(messages, 3, "role"), "user");
  assert_string_equal(message_field(messages, 3, "content"), "how long does it take?");
  cJSON_Delete(body);
}

static void test_answer_shapes(void **state)
{
  fixture_t *f = *state;
  const char *fallback = "I'm sorry, I can't help with that. I can answer questions";
  expect_reply(f, "think", "hi", "Llama heard: hi");
  expect_reply(f, "length", "tell me everything", "Llama heard: tell me everything");
  expect_reply(f, "filter", "something rude", LLM_BLOCKED_REPLY);
  static const char *const empties[] = {"null", "empty"};
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(fake_server_push_outcome(f->server, empties[i]), 0);
    stage_error_t err = {0};
    char *reply = ask(f, "say nothing", &err);
    assert_non_null(reply);
    assert_memory_equal(reply, fallback, strlen(fallback));
    free(reply);
  }
}

static void test_missing_key_is_not_retried(void **state)
{
  fixture_t *f = *state;
  f->chat->destroy(&f->chat);
  unsetenv("OPENAI_API_KEY");
  stage_error_t err = {0};
  f->chat = chat_openai_new(&err);
  assert_non_null(f->chat);
  expect_error(f, NULL, "backend_error", "HTTP 401: Invalid API Key", 1);
  assert_null(fake_request_header(fake_server_last_request(f->server, NULL), "Authorization"));
}

static void test_unknown_model(void **state)
{
  (void) state;
  fixture_t *f = start("llama3.1");
  expect_error(f, NULL, "backend_error", "model \"default\" not found", 1);
  f->chat->destroy(&f->chat);
  setenv("OPENAI_CHAT_MODEL", "llama3.1", 1);
  stage_error_t err = {0};
  f->chat = chat_openai_new(&err);
  assert_non_null(f->chat);
  expect_reply(f, "ok", "hello", "Llama heard: hello");
  void *fixture = f;
  teardown(&fixture);
}

static void test_rate_limit_and_server_errors(void **state)
{
  fixture_t *f = *state;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  expect_reply(f, "429 ok", "hello", "Llama heard: hello");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  printf("# 429 with Retry-After: 1, then ok: %ld ms\n", ms);
  assert_true(ms >= 950);
  assert_int_equal(fake_server_request_count(f->server), 2);
  fake_server_clear(f->server);
  expect_reply(f, "503 503 ok", "hello", "Llama heard: hello");   /* model still loading */
  assert_int_equal(fake_server_request_count(f->server), 3);
  fake_server_clear(f->server);
  expect_error(f, "500 500 500", "backend_error", "HTTP 500: llama_decode failed", 3);
}

/* Alone in its test: the fake still holds the slow request when the client gives
 * up, and only the teardown may take the server away under it. */
static void test_slow_answer_times_out(void **state)
{
  fixture_t *f = *state;
  setenv("CHAT_TIMEOUT_MS", "1250", 1);   /* 1 s for the HTTP calls */
  expect_error(f, "slow", "timeout", "openai", 1);
}

static void test_malformed_and_dropped(void **state)
{
  fixture_t *f = *state;
  expect_error(f, "malformed", "backend_error", "not a chat.completion", 1);
  fake_server_clear(f->server);
  expect_reply(f, "drop ok", "hello", "Llama heard: hello");
  assert_int_equal(fake_server_request_count(f->server), 2);
}

static void test_settings_stop_the_service(void **state)
{
  (void) state;
  stage_error_t err = {0};
  unsetenv("OPENAI_CHAT_BASE_URL");
  assert_null(chat_openai_new(&err));
  assert_string_equal(err.code, "bad_config");
  assert_non_null(strstr(err.message, "OPENAI_CHAT_BASE_URL"));
  setenv("OPENAI_CHAT_BASE_URL", "localhost:8080", 1);
  assert_null(chat_openai_new(&err));
  assert_non_null(strstr(err.message, "OPENAI_CHAT_BASE_URL"));
  setenv("OPENAI_CHAT_BASE_URL", "http://127.0.0.1:8080", 1);
  setenv("OPENAI_API_KEY", "two\r\nlines", 1);
  assert_null(chat_openai_new(&err));
  assert_non_null(strstr(err.message, "OPENAI_API_KEY"));
  assert_null(strstr(err.message, "two"));
}

/* --- streamed answers -------------------------------------------------------- */

#define STREAMED_ANSWER(heard) "Llama heard: " heard ". I can help with that in a few short " \
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
  assert_string_equal(req->path, "/v1/chat/completions");
  cJSON *body = fake_request_json(req);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream")));
  cJSON_Delete(body);
}

static void test_stream_shapes(void **state)
{
  fixture_t *f = *state;
  const char *fallback = "I'm sorry, I can't help with that. I can answer questions";
  expect_streamed(f->server, f->chat, "ok", "hello", STREAMED_ANSWER("hello"));
  expect_streamed(f->server, f->chat, "crlf", "hello", STREAMED_ANSWER("hello"));
  expect_streamed(f->server, f->chat, "trickle", "hi", STREAMED_ANSWER("hi"));
  expect_streamed(f->server, f->chat, "think", "hi", STREAMED_ANSWER("hi"));
  expect_streamed(f->server, f->chat, "length", "hi", STREAMED_ANSWER("hi"));
  expect_streamed(f->server, f->chat, "filter", "something rude", LLM_BLOCKED_REPLY);
  const char *silent[] = {"null", "empty"};
  for (size_t i = 0; i < 2; i++) {
    streamed_t streamed;
    stage_error_t err = {0};
    char *reply = ask_streamed(f->server, f->chat, silent[i], "say nothing", &streamed, &err);
    assert_non_null(reply);
    assert_string_equal(streamed.text, reply);
    assert_memory_equal(reply, fallback, strlen(fallback));
    free(reply);
  }
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
  expect_stream_error(f, "error", "llama_decode failed: out of KV cache", true);
  expect_stream_error(f, "data_error", "The model crashed while generating", true);
  expect_stream_error(f, "nodone", "no [DONE]", true);
  fake_server_clear(f->server);
  streamed_t streamed;
  stage_error_t err = {0};
  assert_null(ask_streamed(f->server, f->chat, "500 500 500", "hello", &streamed, &err));
  assert_non_null(strstr(err.message, "HTTP 500: llama_decode failed"));
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
    cmocka_unit_test_setup_teardown(test_answer_shapes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_missing_key_is_not_retried, setup, teardown),
    cmocka_unit_test(test_unknown_model),
    cmocka_unit_test_setup_teardown(test_rate_limit_and_server_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_slow_answer_times_out, setup, teardown),
    cmocka_unit_test_setup_teardown(test_malformed_and_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_sentences_go_on_before_the_end, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_shapes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_failures, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stream_receiver_failure_ends_the_answer, setup, teardown),
    cmocka_unit_test(test_settings_stop_the_service),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
