/* Tests of the Google Speech-to-Text backend against the local fake (tests/fakes):
 * how each format goes on the wire, the one-minute limit, silence, and every failure
 * mode (bad key, 429 with Retry-After, 500, a slow answer, malformed JSON). */
#include "fake_google.h"
#include "stt_backend.h"
#include "test_stt_media.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static media_t media;
static fake_server_t *fake;

typedef struct {
  uint8_t *data;
  size_t size;
} clip_t;

static clip_t webm, wav, mp3, ogg, silence, long_clip;

static clip_t load(const char *name)
{
  clip_t clip = {0};
  clip.data = media_load(&media, name, &clip.size);
  return clip;
}

static int setup(void **state)
{
  (void) state;
  if (media_init(&media) != 0 || media_speak(&media, "What are your office hours?", "spoken.wav"))
    return -1;
  static const char *const to_webm[] = {"-i", "spoken.wav", "-c:a", "libopus", "-b:a", "32k",
                                        "-ar", "48000", "-f", "webm", NULL};
  static const char *const to_mp3[] = {"-i", "spoken.wav", "-c:a", "libmp3lame", NULL};
  static const char *const to_ogg[] = {"-i", "spoken.wav", "-c:a", "libopus", "-ar", "48000",
                                       NULL};
  static const char *const quiet[] = {"-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "2",
                                      "-c:a", "pcm_s16le", NULL};
  static const char *const tone[] = {"-f", "lavfi", "-i", "sine=f=440:r=16000", "-t", "61",
                                     "-c:a", "pcm_s16le", NULL};
  if (media_ffmpeg(&media, to_webm, "q.webm", true) || media_ffmpeg(&media, to_mp3, "q.mp3", false) ||
      media_ffmpeg(&media, to_ogg, "q.ogg", false) ||
      media_ffmpeg(&media, quiet, "quiet.wav", false) ||
      media_ffmpeg(&media, tone, "long.wav", false))
    return -1;
  webm = load("q.webm");
  wav = load("spoken.wav");
  mp3 = load("q.mp3");
  ogg = load("q.ogg");
  silence = load("quiet.wav");
  long_clip = load("long.wav");
  if (!webm.data || !wav.data || !mp3.data || !ogg.data || !silence.data || !long_clip.data)
    return -1;
  setenv("FAKE_GOOGLE_API_KEY", "test-google-key-123456", 1);
  setenv("FAKE_SLOW_MS", "2500", 1);
  fake = fake_server_new(0);
  if (!fake || fake_google_install(fake) != 0)
    return -1;
  char base[64];
  fake_server_base_url(fake, base, sizeof base);
  setenv("GOOGLE_STT_BASE_URL", base, 1);
  setenv("GOOGLE_API_KEY", "test-google-key-123456", 1);
  setenv("STT_TIMEOUT_MS", "2500", 1);
  setenv("STT_MAX_ATTEMPTS", "3", 1);
  unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
  return 0;
}

static int teardown(void **state)
{
  (void) state;
  fake_server_destroy(&fake);
  clip_t *clips[] = {&webm, &wav, &mp3, &ogg, &silence, &long_clip};
  for (size_t i = 0; i < sizeof clips / sizeof clips[0]; i++)
    free(clips[i]->data);
  media_cleanup(&media);
  return 0;
}

static int reset(void **state)
{
  (void) state;
  fake_server_clear(fake);
  return 0;
}

/* Runs one transcription with a fresh backend; returns its rc. */
static int transcribe(const clip_t *clip, const char *mime, stt_result_t *out, stage_error_t *err)
{
  stage_error_t start_err = {0};
  stt_backend_t *stt = stt_google_new(&start_err);
  assert_non_null(stt);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int rc = stt->transcribe(stt, clip->data, clip->size, mime, out, err);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("# %s: rc=%d in %ld ms (%s)\n", mime, rc,
         (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000,
         rc ? err->code : out->text);
  stt->destroy(&stt);
  return rc;
}

/* config.<name> of the last recognize request, as text. */
static void sent_config(const char *name, char *out, size_t size)
{
  const fake_request_t *req = fake_server_last_request(fake, "/v1/speech:recognize");
  assert_non_null(req);
  cJSON *root = fake_request_json(req);
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(
    cJSON_GetObjectItemCaseSensitive(root, "config"), name);
  if (cJSON_IsString(item))
    snprintf(out, size, "%s", item->valuestring);
  else if (cJSON_IsNumber(item))
    snprintf(out, size, "%d", item->valueint);
  else
    snprintf(out, size, "(absent)");
  cJSON_Delete(root);
}

static void expect_wire(const clip_t *clip, const char *mime, const char *encoding,
                        const char *rate)
{
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(clip, mime, &out, &err), 0);
  assert_string_equal(out.text, "what are your office hours");
  assert_true(out.confidence > 0.9f && out.confidence < 0.95f);
  free(out.text);
  char value[64];
  sent_config("encoding", value, sizeof value);
  assert_string_equal(value, encoding);
  sent_config("sampleRateHertz", value, sizeof value);
  assert_string_equal(value, rate);
  sent_config("languageCode", value, sizeof value);
  assert_string_equal(value, "en-US");
  const fake_request_t *req = fake_server_last_request(fake, NULL);
  assert_string_equal(req->path, "/v1/speech:recognize");
  assert_string_equal(fake_request_header(req, "x-goog-api-key"), "test-google-key-123456");
  assert_string_equal(req->query, "");
}

static void test_browser_webm_goes_as_webm_opus(void **state)
{
  (void) state;
  expect_wire(&webm, "audio/webm;codecs=opus", "WEBM_OPUS", "48000");
}

static void test_ogg_opus_goes_as_ogg_opus(void **state)
{
  (void) state;
  expect_wire(&ogg, "audio/ogg", "OGG_OPUS", "48000");
}

static void test_wav_goes_as_linear16_at_its_rate(void **state)
{
  (void) state;
  expect_wire(&wav, "audio/wav", "LINEAR16", "22050");
}

static void test_mp3_is_converted_to_linear16(void **state)
{
  (void) state;
  expect_wire(&mp3, "audio/mpeg", "LINEAR16", "16000");
}

static void test_silence_is_no_speech(void **state)
{
  (void) state;
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&silence, "audio/wav", &out, &err), -1);
  assert_string_equal(err.code, "no_speech");
  assert_null(out.text);
}

static void test_over_a_minute_is_refused_before_sending(void **state)
{
  (void) state;
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&long_clip, "audio/wav", &out, &err), -1);
  assert_string_equal(err.code, "audio_too_long");
  assert_int_equal(fake_server_request_count(fake), 0);
}

static void test_garbage_is_bad_audio_before_sending(void **state)
{
  (void) state;
  clip_t garbage = {(uint8_t *) "this is not audio at all", 24};
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&garbage, "audio/webm", &out, &err), -1);
  assert_string_equal(err.code, "bad_audio");
  assert_int_equal(fake_server_request_count(fake), 0);
}

static void test_bad_key_is_not_retried_and_not_shown(void **state)
{
  (void) state;
  setenv("GOOGLE_API_KEY", "wrong-key-987654321", 1);
  stt_result_t out = {0};
  stage_error_t err = {0};
  int rc = transcribe(&webm, "audio/webm", &out, &err);
  setenv("GOOGLE_API_KEY", "test-google-key-123456", 1);
  assert_int_equal(rc, -1);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "API key not valid"));
  assert_null(strstr(err.message, "wrong-key-987654321"));
  assert_int_equal(fake_server_request_count(fake), 1);
}

static void test_429_is_retried_after_its_delay(void **state)
{
  (void) state;
  assert_int_equal(fake_server_push_outcome(fake, "429"), 0);
  setenv("STT_TIMEOUT_MS", "6000", 1);
  stt_result_t out = {0};
  stage_error_t err = {0};
  time_t start = time(NULL);
  int rc = transcribe(&webm, "audio/webm", &out, &err);
  setenv("STT_TIMEOUT_MS", "2500", 1);
  assert_int_equal(rc, 0);
  assert_string_equal(out.text, "what are your office hours");
  free(out.text);
  assert_int_equal(fake_server_request_count(fake), 2);
  printf("# 429 then success took about %ld s (Retry-After: 1)\n", (long) (time(NULL) - start));
}

static void test_500_is_retried_then_reported(void **state)
{
  (void) state;
  assert_int_equal(fake_server_push_outcome(fake, "500 500 500"), 0);
  setenv("STT_TIMEOUT_MS", "12500", 1);
  stt_result_t out = {0};
  stage_error_t err = {0};
  int rc = transcribe(&webm, "audio/webm", &out, &err);
  setenv("STT_TIMEOUT_MS", "2500", 1);
  assert_int_equal(rc, -1);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "500"));
  assert_non_null(strstr(err.message, "Internal error encountered"));
  assert_int_equal(fake_server_request_count(fake), 3);
}

static void test_slow_answer_times_out(void **state)
{
  (void) state;
  assert_int_equal(fake_server_push_outcome(fake, "slow"), 0);
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&webm, "audio/webm", &out, &err), -1);
  assert_string_equal(err.code, "timeout");
}

static void test_malformed_json_is_an_error(void **state)
{
  (void) state;
  assert_int_equal(fake_server_push_outcome(fake, "malformed"), 0);
  stt_result_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe(&webm, "audio/webm", &out, &err), -1);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "not JSON"));
}

static void test_missing_credentials_stop_at_start(void **state)
{
  (void) state;
  unsetenv("GOOGLE_API_KEY");
  stage_error_t err = {0};
  stt_backend_t *stt = stt_google_new(&err);
  setenv("GOOGLE_API_KEY", "test-google-key-123456", 1);
  assert_null(stt);
  assert_string_equal(err.code, "bad_config");
  assert_non_null(strstr(err.message, "GOOGLE_API_KEY"));
  assert_non_null(strstr(err.message, "STT_BACKEND=google"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_browser_webm_goes_as_webm_opus, reset),
    cmocka_unit_test_setup(test_ogg_opus_goes_as_ogg_opus, reset),
    cmocka_unit_test_setup(test_wav_goes_as_linear16_at_its_rate, reset),
    cmocka_unit_test_setup(test_mp3_is_converted_to_linear16, reset),
    cmocka_unit_test_setup(test_silence_is_no_speech, reset),
    cmocka_unit_test_setup(test_over_a_minute_is_refused_before_sending, reset),
    cmocka_unit_test_setup(test_garbage_is_bad_audio_before_sending, reset),
    cmocka_unit_test_setup(test_bad_key_is_not_retried_and_not_shown, reset),
    cmocka_unit_test_setup(test_429_is_retried_after_its_delay, reset),
    cmocka_unit_test_setup(test_500_is_retried_then_reported, reset),
    cmocka_unit_test_setup(test_slow_answer_times_out, reset),
    cmocka_unit_test_setup(test_malformed_json_is_an_error, reset),
    cmocka_unit_test_setup(test_missing_credentials_stop_at_start, reset),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
