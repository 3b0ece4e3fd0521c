/* Tests of the Google Text-to-Speech backend against the local fake: the request,
 * the WAV it returns, texts over 5,000 bytes split at sentence ends and joined, and
 * every failure mode (bad key, 429 with Retry-After, 500, slow, malformed JSON). */
#include "fake_google.h"
#include "tts_backend.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fake_server_t *fake;

static int setup(void **state)
{
  (void) state;
  setenv("FAKE_GOOGLE_API_KEY", "test-google-key-123456", 1);
  setenv("FAKE_SLOW_MS", "2500", 1);
  fake = fake_server_new(0);
  if (!fake || fake_google_install(fake) != 0)
    return -1;
  char base[64];
  fake_server_base_url(fake, base, sizeof base);
  setenv("GOOGLE_TTS_BASE_URL", base, 1);
  setenv("GOOGLE_API_KEY", "test-google-key-123456", 1);
  setenv("GOOGLE_TTS_VOICE", "en-US-Neural2-F", 1);
  setenv("TTS_TIMEOUT_MS", "2500", 1);
  setenv("TTS_MAX_ATTEMPTS", "3", 1);
  unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
  return 0;
}

static int teardown(void **state)
{
  (void) state;
  fake_server_destroy(&fake);
  return 0;
}

static int reset(void **state)
{
  (void) state;
  fake_server_clear(fake);
  return 0;
}

static int speak(const char *text, tts_result_t *out, stage_error_t *err)
{
  stage_error_t start_err = {0};
  tts_backend_t *tts = tts_google_new(&start_err);
  assert_non_null(tts);
  int rc = tts->synthesize(tts, text, out, err);
  printf("# rc=%d %s\n", rc, rc ? err->message : out->mime);
  tts->destroy(&tts);
  return rc;
}

static void test_reply_is_a_wav_without_phonemes(void **state)
{
  (void) state;
  tts_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(speak("Hello! How can I help you today?", &out, &err), 0);
  assert_string_equal(out.mime, "audio/wav");
  assert_memory_equal(out.audio, "RIFF", 4);
  assert_true(out.duration_ms > 800 && out.duration_ms < 6000);
  assert_null(out.phonemes);
  assert_int_equal(out.phoneme_count, 0);
  tts_result_release(&out);
  const fake_request_t *req = fake_server_last_request(fake, NULL);
  assert_string_equal(req->path, "/v1/text:synthesize");
  assert_string_equal(fake_request_header(req, "x-goog-api-key"), "test-google-key-123456");
  cJSON *body = fake_request_json(req);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(body, "input"), "text")->valuestring,
                      "Hello! How can I help you today?");
  cJSON *voice = cJSON_GetObjectItem(body, "voice");
  assert_string_equal(cJSON_GetObjectItem(voice, "languageCode")->valuestring, "en-US");
  assert_string_equal(cJSON_GetObjectItem(voice, "name")->valuestring, "en-US-Neural2-F");
  assert_string_equal(
    cJSON_GetObjectItem(cJSON_GetObjectItem(body, "audioConfig"), "audioEncoding")->valuestring,
    "LINEAR16");
  cJSON_Delete(body);
}

static void test_long_text_is_split_at_sentence_ends(void **state)
{
  (void) state;
  /* 11 short sentences padded with spaces: over 11,000 bytes but quick to speak. */
  size_t size = 11 * 1005 + 1;
  char *text = malloc(size);
  assert_non_null(text);
  size_t n = 0;
  for (int i = 0; i < 11; i++) {
    memcpy(text + n, "Yes.", 4);
    memset(text + n + 4, ' ', 1001);
    n += 1005;
  }
  text[n] = '\0';
  tts_result_t out = {0};
  stage_error_t err = {0};
  int rc = speak(text, &out, &err);
  free(text);
  assert_int_equal(rc, 0);
  size_t requests = fake_server_request_count(fake);
  assert_int_equal(requests, 3);
  uint32_t one_yes_ms = 0;
  for (size_t i = 0; i < requests; i++) {
    cJSON *body = fake_request_json(fake_server_request(fake, i));
    const char *piece = cJSON_GetObjectItem(cJSON_GetObjectItem(body, "input"), "text")->valuestring;
    assert_true(strlen(piece) <= 5000);
    assert_memory_equal(piece, "Yes.", 4);
    /* Every piece ends at a sentence end (the padding after it goes with it). */
    size_t len = strlen(piece);
    while (len && piece[len - 1] == ' ')
      len--;
    assert_true(len >= 4 && !memcmp(piece + len - 4, "Yes.", 4));
    cJSON_Delete(body);
  }
  /* The joined audio holds every piece: longer than any one request's speech. */
  tts_result_t single = {0};
  assert_int_equal(speak("Yes. Yes. Yes. Yes.", &single, &err), 0);
  one_yes_ms = single.duration_ms;
  tts_result_release(&single);
  printf("# joined %u ms vs one piece of four sentences %u ms\n", out.duration_ms, one_yes_ms);
  assert_true(out.duration_ms > one_yes_ms * 2);
  tts_result_release(&out);
}

static void expect_failure(const char *outcome, const char *code, const char *words,
                           size_t requests)
{
  if (outcome)
    assert_int_equal(fake_server_push_outcome(fake, outcome), 0);
  tts_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(speak("Hello there.", &out, &err), -1);
  assert_string_equal(err.code, code);
  assert_non_null(strstr(err.message, words));
  assert_null(out.audio);
  if (requests)
    assert_int_equal(fake_server_request_count(fake), requests);
}

static void test_bad_key(void **state)
{
  (void) state;
  setenv("GOOGLE_API_KEY", "wrong-key-987654321", 1);
  expect_failure(NULL, "backend_error", "API key not valid", 1);
  setenv("GOOGLE_API_KEY", "test-google-key-123456", 1);
}

static void test_429_then_success(void **state)
{
  (void) state;
  assert_int_equal(fake_server_push_outcome(fake, "429"), 0);
  setenv("TTS_TIMEOUT_MS", "6000", 1);
  tts_result_t out = {0};
  stage_error_t err = {0};
  int rc = speak("Hello there.", &out, &err);
  setenv("TTS_TIMEOUT_MS", "2500", 1);
  assert_int_equal(rc, 0);
  tts_result_release(&out);
  assert_int_equal(fake_server_request_count(fake), 2);
}

static void test_500(void **state)
{
  (void) state;
  expect_failure("500 500 500", "backend_error", "Internal error encountered", 3);
}

static void test_slow(void **state)
{
  (void) state;
  expect_failure("slow", "timeout", "did not answer", 1);
}

static void test_malformed(void **state)
{
  (void) state;
  expect_failure("malformed", "backend_error", "without audioContent", 1);
}

static void test_bad_voice_stops_at_start(void **state)
{
  (void) state;
  setenv("GOOGLE_TTS_VOICE", "Neural2", 1);
  stage_error_t err = {0};
  tts_backend_t *tts = tts_google_new(&err);
  setenv("GOOGLE_TTS_VOICE", "en-US-Neural2-F", 1);
  assert_null(tts);
  assert_non_null(strstr(err.message, "GOOGLE_TTS_VOICE"));
  unsetenv("GOOGLE_API_KEY");
  tts = tts_google_new(&err);
  setenv("GOOGLE_API_KEY", "test-google-key-123456", 1);
  assert_null(tts);
  assert_non_null(strstr(err.message, "TTS_BACKEND=google needs GOOGLE_API_KEY"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_reply_is_a_wav_without_phonemes, reset),
    cmocka_unit_test_setup(test_long_text_is_split_at_sentence_ends, reset),
    cmocka_unit_test_setup(test_bad_key, reset),
    cmocka_unit_test_setup(test_429_then_success, reset),
    cmocka_unit_test_setup(test_500, reset),
    cmocka_unit_test_setup(test_slow, reset),
    cmocka_unit_test_setup(test_malformed, reset),
    cmocka_unit_test_setup(test_bad_voice_stops_at_start, reset),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
