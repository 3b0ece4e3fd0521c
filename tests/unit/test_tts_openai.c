/* Tests of the OpenAI-compatible speech backend against the local fake: the request,
 * the raw WAV answer, and every failure mode (bad key, 429 with Retry-After, 500,
 * slow, an answer that is not audio). */
#include "fake_openai_audio.h"
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
  setenv("FAKE_OPENAI_API_KEY", "sk-test-openai-123456", 1);
  setenv("FAKE_SLOW_MS", "2500", 1);
  fake = fake_server_new(0);
  if (!fake || fake_openai_audio_install(fake) != 0)
    return -1;
  char base[64];
  fake_server_base_url(fake, base, sizeof base);
  setenv("OPENAI_TTS_BASE_URL", base, 1);
  setenv("OPENAI_API_KEY", "sk-test-openai-123456", 1);
  setenv("OPENAI_TTS_MODEL", "kokoro", 1);
  setenv("OPENAI_TTS_VOICE", "af_heart", 1);
  setenv("TTS_TIMEOUT_MS", "2500", 1);
  setenv("TTS_MAX_ATTEMPTS", "3", 1);
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
  tts_backend_t *tts = tts_openai_new(&start_err);
  assert_non_null(tts);
  int rc = tts->synthesize(tts, text, out, err);
  printf("# rc=%d %s\n", rc, rc ? err->message : out->mime);
  tts->destroy(&tts);
  return rc;
}

static void test_reply_is_the_raw_wav(void **state)
{
  (void) state;
  tts_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(speak("Hello! How can I help you today?", &out, &err), 0);
  assert_string_equal(out.mime, "audio/wav");
  assert_memory_equal(out.audio, "RIFF", 4);
  assert_true(out.duration_ms > 800 && out.duration_ms < 6000);
  assert_null(out.phonemes);
  tts_result_release(&out);
  const fake_request_t *req = fake_server_last_request(fake, NULL);
  assert_string_equal(req->path, "/v1/audio/speech");
  assert_string_equal(fake_request_header(req, "Authorization"), "Bearer sk-test-openai-123456");
  cJSON *body = fake_request_json(req);
  assert_string_equal(cJSON_GetObjectItem(body, "model")->valuestring, "kokoro");
  assert_string_equal(cJSON_GetObjectItem(body, "voice")->valuestring, "af_heart");
  assert_string_equal(cJSON_GetObjectItem(body, "response_format")->valuestring, "wav");
  assert_string_equal(cJSON_GetObjectItem(body, "input")->valuestring,
                      "Hello! How can I help you today?");
  cJSON_Delete(body);
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
  assert_int_equal(fake_server_request_count(fake), requests);
}

static void test_bad_key(void **state)
{
  (void) state;
  setenv("OPENAI_API_KEY", "sk-wrong-key-000000", 1);
  expect_failure(NULL, "backend_error", "Invalid API Key", 1);
  setenv("OPENAI_API_KEY", "sk-test-openai-123456", 1);
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
  expect_failure("500 500 500", "backend_error", "error processing your request", 3);
}

static void test_slow(void **state)
{
  (void) state;
  expect_failure("slow", "timeout", "did not answer", 1);
}

static void test_not_audio(void **state)
{
  (void) state;
  expect_failure("malformed", "backend_error", "not audio", 1);
}

static void test_missing_base_url_stops_at_start(void **state)
{
  (void) state;
  unsetenv("OPENAI_TTS_BASE_URL");
  stage_error_t err = {0};
  tts_backend_t *tts = tts_openai_new(&err);
  assert_null(tts);
  assert_non_null(strstr(err.message, "OPENAI_TTS_BASE_URL"));
  char base[64];
  fake_server_base_url(fake, base, sizeof base);
  setenv("OPENAI_TTS_BASE_URL", base, 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_reply_is_the_raw_wav, reset),
    cmocka_unit_test_setup(test_bad_key, reset),
    cmocka_unit_test_setup(test_429_then_success, reset),
    cmocka_unit_test_setup(test_500, reset),
    cmocka_unit_test_setup(test_slow, reset),
    cmocka_unit_test_setup(test_not_audio, reset),
    cmocka_unit_test_setup(test_missing_base_url_stops_at_start, reset),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
