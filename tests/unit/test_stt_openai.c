/* Tests of the OpenAI-compatible transcription backend against the local fake: the
 * multipart request, whisper.cpp's /inference without --convert (WAV only) with and
 * without OPENAI_STT_CONVERT, and every failure mode (bad key, 429 with Retry-After,
 * 500, a slow answer, malformed JSON, silence). */
#include "fake_openai_audio.h"
#include "stt_backend.h"
#include "test_stt_media.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static media_t media;
static fake_server_t *openai;    /* /v1/audio/transcriptions with an API key */
static fake_server_t *whisper;   /* whisper.cpp: /inference, WAV only, no key */
static char openai_base[64], whisper_base[64];

typedef struct {
  uint8_t *data;
  size_t size;
} clip_t;

static clip_t webm, silence;

static int setup(void **state)
{
  (void) state;
  if (media_init(&media) != 0 || media_speak(&media, "What are your office hours?", "spoken.wav"))
    return -1;
  static const char *const to_webm[] = {"-i", "spoken.wav", "-c:a", "libopus", "-b:a", "32k",
                                        "-ar", "48000", "-f", "webm", NULL};
  static const char *const quiet[] = {"-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "2",
                                      "-c:a", "libopus", "-f", "webm", NULL};
  if (media_ffmpeg(&media, to_webm, "q.webm", true) ||
      media_ffmpeg(&media, quiet, "quiet.webm", true))
    return -1;
  webm.data = media_load(&media, "q.webm", &webm.size);
  silence.data = media_load(&media, "quiet.webm", &silence.size);
  if (!webm.data || !silence.data)
    return -1;
  setenv("FAKE_SLOW_MS", "2500", 1);
  setenv("FAKE_OPENAI_API_KEY", "sk-test-openai-123456", 1);
  openai = fake_server_new(0);
  if (!openai || fake_openai_audio_install(openai) != 0)
    return -1;
  unsetenv("FAKE_OPENAI_API_KEY");
  setenv("FAKE_OPENAI_STT_PATH", "/inference", 1);
  setenv("FAKE_OPENAI_WAV_ONLY", "1", 1);
  whisper = fake_server_new(0);
  if (!whisper || fake_openai_audio_install(whisper) != 0)
    return -1;
  fake_server_base_url(openai, openai_base, sizeof openai_base);
  fake_server_base_url(whisper, whisper_base, sizeof whisper_base);
  setenv("STT_TIMEOUT_MS", "2500", 1);
  setenv("STT_MAX_ATTEMPTS", "3", 1);
  return 0;
}

static int teardown(void **state)
{
  (void) state;
  fake_server_destroy(&openai);
  fake_server_destroy(&whisper);
  free(webm.data);
  free(silence.data);
  media_cleanup(&media);
  return 0;
}

/* Points the backend at the OpenAI-style server with the right key. */
static int use_openai(void **state)
{
  (void) state;
  fake_server_clear(openai);
  setenv("OPENAI_STT_BASE_URL", openai_base, 1);
  unsetenv("OPENAI_STT_PATH");
  unsetenv("OPENAI_STT_CONVERT");
  setenv("OPENAI_API_KEY", "sk-test-openai-123456", 1);
  setenv("OPENAI_STT_MODEL", "whisper-1", 1);
  return 0;
}

static int use_whisper(void **state)
{
  (void) state;
  fake_server_clear(whisper);
  setenv("OPENAI_STT_BASE_URL", whisper_base, 1);
  setenv("OPENAI_STT_PATH", "/inference", 1);
  unsetenv("OPENAI_API_KEY");
  return 0;
}

static int transcribe(const clip_t *clip, stt_result_t *out, stage_error_t *err)
{
  stage_error_t start_err = {0};
  stt_backend_t *stt = stt_openai_new(&start_err);
  assert_non_null(stt);
  int rc = stt->transcribe(stt, clip->data, clip->size, "audio/webm;codecs=opus", out, err);
  printf("# rc=%d (%s)\n", rc, rc ? err->message : out->text);
  stt->destroy(&stt);
  return rc;
}

static void test_upload_is_multipart_with_model_and_json(void **state)
{
  (void) state;
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&webm, &out, &err), 0);
  assert_string_equal(out.text, "what are your office hours");
  free(out.text);
  const fake_request_t *req = fake_server_last_request(openai, NULL);
  assert_string_equal(req->path, "/v1/audio/transcriptions");
  assert_string_equal(fake_request_header(req, "Authorization"), "Bearer sk-test-openai-123456");
  const fake_part_t *file = fake_request_part(req, "file");
  assert_non_null(file);
  assert_string_equal(file->filename, "speech.webm");
  assert_string_equal(file->content_type, "audio/webm");
  assert_int_equal(file->size, webm.size);
  assert_memory_equal(file->data, webm.data, webm.size);
  assert_string_equal((const char *) fake_request_part(req, "model")->data, "whisper-1");
  assert_string_equal((const char *) fake_request_part(req, "response_format")->data, "json");
}

static void test_whisper_without_convert_refuses_webm(void **state)
{
  (void) state;
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&webm, &out, &err), -1);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "failed to read audio data"));
  assert_int_equal(fake_server_request_count(whisper), 1);
}

static void test_convert_sends_16k_wav_to_whisper(void **state)
{
  (void) state;
  setenv("OPENAI_STT_CONVERT", "1", 1);
  stt_result_t out = {0};
  stage_error_t err = {0};
  int rc = transcribe(&webm, &out, &err);
  unsetenv("OPENAI_STT_CONVERT");
  assert_int_equal(rc, 0);
  assert_string_equal(out.text, "what are your office hours");
  free(out.text);
  const fake_request_t *req = fake_server_last_request(whisper, NULL);
  assert_string_equal(req->path, "/inference");
  assert_null(fake_request_header(req, "Authorization"));
  const fake_part_t *file = fake_request_part(req, "file");
  assert_string_equal(file->filename, "speech.wav");
  assert_memory_equal(file->data, "RIFF", 4);
  /* 16 kHz in the fmt chunk. */
  assert_int_equal(file->data[24] | file->data[25] << 8, 16000);
}

static void test_silence_is_no_speech(void **state)
{
  (void) state;
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&silence, &out, &err), -1);
  assert_string_equal(err.code, "no_speech");
}

static void test_bad_key_is_401_not_retried(void **state)
{
  (void) state;
  setenv("OPENAI_API_KEY", "sk-wrong-key-000000", 1);
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&webm, &out, &err), -1);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "401"));
  assert_non_null(strstr(err.message, "Invalid API Key"));
  assert_null(strstr(err.message, "sk-wrong-key-000000"));
  assert_int_equal(fake_server_request_count(openai), 1);
}

static void test_429_then_success(void **state)
{
  (void) state;
  assert_int_equal(fake_server_push_outcome(openai, "429"), 0);
  setenv("STT_TIMEOUT_MS", "6000", 1);
  stt_result_t out = {0};
  stage_error_t err = {0};
  int rc = transcribe(&webm, &out, &err);
  setenv("STT_TIMEOUT_MS", "2500", 1);
  assert_int_equal(rc, 0);
  free(out.text);
  assert_int_equal(fake_server_request_count(openai), 2);
}

static void test_500_three_times_is_an_error(void **state)
{
  (void) state;
  assert_int_equal(fake_server_push_outcome(openai, "500,500,500"), 0);
  setenv("STT_TIMEOUT_MS", "12500", 1);
  stt_result_t out = {0};
  stage_error_t err = {0};
  int rc = transcribe(&webm, &out, &err);
  setenv("STT_TIMEOUT_MS", "2500", 1);
  assert_int_equal(rc, -1);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "error processing your request"));
  assert_int_equal(fake_server_request_count(openai), 3);
}

static void test_slow_answer_times_out(void **state)
{
  (void) state;
  assert_int_equal(fake_server_push_outcome(openai, "slow"), 0);
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&webm, &out, &err), -1);
  assert_string_equal(err.code, "timeout");
}

static void test_malformed_json_is_an_error(void **state)
{
  (void) state;
  assert_int_equal(fake_server_push_outcome(openai, "malformed"), 0);
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&webm, &out, &err), -1);
  assert_string_equal(err.code, "backend_error");
}

static void test_missing_base_url_stops_at_start(void **state)
{
  (void) state;
  unsetenv("OPENAI_STT_BASE_URL");
  stage_error_t err = {0};
  assert_null(stt_openai_new(&err));
  assert_string_equal(err.code, "bad_config");
  assert_non_null(strstr(err.message, "OPENAI_STT_BASE_URL"));
}

/* The service and the eval pick the backend by name, with that backend's settings. */
static void test_backend_is_the_one_stt_backend_names(void **state)
{
  (void) state;
  setenv("STT_BACKEND", "openai", 1);
  stage_error_t err = {0};
  stt_backend_t *backend = stt_backend_from_config(&err);
  assert_non_null(backend);
  assert_string_equal(backend->name, "openai");
  backend->destroy(&backend);
  assert_null(backend);

  unsetenv("OPENAI_STT_BASE_URL");
  assert_null(stt_backend_from_config(&err));
  assert_non_null(strstr(err.message, "OPENAI_STT_BASE_URL"));

  setenv("STT_BACKEND", "whisper", 1);
  assert_null(stt_backend_from_config(&err));
  assert_string_equal(err.code, "bad_config");
  assert_non_null(strstr(err.message, "STT_BACKEND=whisper is not one of: pocketsphinx"));
  unsetenv("STT_BACKEND");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_upload_is_multipart_with_model_and_json, use_openai),
    cmocka_unit_test_setup(test_whisper_without_convert_refuses_webm, use_whisper),
    cmocka_unit_test_setup(test_convert_sends_16k_wav_to_whisper, use_whisper),
    cmocka_unit_test_setup(test_silence_is_no_speech, use_openai),
    cmocka_unit_test_setup(test_bad_key_is_401_not_retried, use_openai),
    cmocka_unit_test_setup(test_429_then_success, use_openai),
    cmocka_unit_test_setup(test_500_three_times_is_an_error, use_openai),
    cmocka_unit_test_setup(test_slow_answer_times_out, use_openai),
    cmocka_unit_test_setup(test_malformed_json_is_an_error, use_openai),
    cmocka_unit_test_setup(test_missing_base_url_stops_at_start, use_openai),
    cmocka_unit_test_setup(test_backend_is_the_one_stt_backend_names, use_openai),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
