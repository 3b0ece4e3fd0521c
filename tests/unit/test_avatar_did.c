/* Tests of the D-ID backend against the local fake: upload, talk, polling through
 * created -> started -> done, the download from result_url without our credentials,
 * and every failure mode (error, rejected, never done, bad key, 429 with Retry-After,
 * 500, a slow answer, malformed JSON). */
#include "avatar_backend.h"
#include "fake_did.h"
#include "test_stt_media.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DID_KEY "dGVzdEBleGFtcGxlLmNvbQ:secret-987654"

static media_t media;
static fake_server_t *fake;
static uint8_t *speech;
static size_t speech_size;

static int setup(void **state)
{
  (void) state;
  if (media_init(&media) != 0 || media_speak(&media, "Our office is open from nine to six.",
                                             "speech.wav"))
    return -1;
  speech = media_load(&media, "speech.wav", &speech_size);
  if (!speech)
    return -1;
  setenv("FAKE_DID_API_KEY", DID_KEY, 1);
  setenv("FAKE_SLOW_MS", "2500", 1);
  fake = fake_server_new(0);
  if (!fake || fake_did_install(fake) != 0)
    return -1;
  char base[64];
  fake_server_base_url(fake, base, sizeof base);
  setenv("DID_BASE_URL", base, 1);
  setenv("DID_API_KEY", DID_KEY, 1);
  setenv("DID_SOURCE_URL", "https://example.invalid/portrait.jpg", 1);
  setenv("DID_POLL_MS", "20", 1);
  setenv("AVATAR_TIMEOUT_MS", "25000", 1);
  setenv("AVATAR_MAX_ATTEMPTS", "3", 1);
  return 0;
}

static int teardown(void **state)
{
  (void) state;
  fake_server_destroy(&fake);
  free(speech);
  media_cleanup(&media);
  return 0;
}

static int reset(void **state)
{
  (void) state;
  fake_server_clear(fake);
  return 0;
}

static int render(avatar_output_t *out, stage_error_t *err)
{
  stage_error_t start_err = {0};
  avatar_backend_t *did = avatar_did_new(&start_err);
  assert_non_null(did);
  avatar_input_t in = {.audio = speech, .audio_size = speech_size, .audio_mime = "audio/wav",
                       .text = "Our office is open from nine to six."};
  int rc = did->render(did, &in, out, err);
  printf("# rc=%d %s (%zu requests)\n", rc, rc ? err->message : out->mime,
         fake_server_request_count(fake));
  did->destroy(&did);
  return rc;
}

static void test_talk_is_polled_and_downloaded(void **state)
{
  (void) state;
  avatar_output_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(render(&out, &err), 0);
  assert_string_equal(out.mime, "video/mp4");
  assert_true(out.video_size > 1000);
  assert_memory_equal(out.video + 4, "ftyp", 4);
  assert_null(out.url);
  assert_true(out.duration_ms > 1000);
  avatar_output_release(&out);

  /* upload, create, three polls (created, started, done), download */
  assert_int_equal(fake_server_request_count(fake), 6);
  const fake_request_t *upload = fake_server_request(fake, 0);
  assert_string_equal(upload->path, "/audios");
  assert_string_equal(fake_request_header(upload, "Authorization"), "Basic " DID_KEY);
  const fake_part_t *audio = fake_request_part(upload, "audio");
  assert_non_null(audio);
  assert_string_equal(audio->content_type, "audio/wav");
  assert_int_equal(audio->size, speech_size);
  const fake_request_t *create = fake_server_request(fake, 1);
  assert_string_equal(create->path, "/talks");
  cJSON *body = fake_request_json(create);
  assert_string_equal(cJSON_GetObjectItem(body, "source_url")->valuestring,
                      "https://example.invalid/portrait.jpg");
  cJSON *script = cJSON_GetObjectItem(body, "script");
  assert_string_equal(cJSON_GetObjectItem(script, "type")->valuestring, "audio");
  assert_string_equal(cJSON_GetObjectItem(script, "audio_url")->valuestring,
                      "s3://d-id-audios-prod/fake/aud_1/reply.wav");
  cJSON_Delete(body);
  for (size_t i = 2; i < 5; i++) {
    assert_string_equal(fake_server_request(fake, i)->method, "GET");
    assert_string_equal(fake_server_request(fake, i)->route, "/talks/*");
  }
  const fake_request_t *download = fake_server_request(fake, 5);
  assert_string_equal(download->route, "/results/*");
  assert_null(fake_request_header(download, "Authorization"));
}

static void expect_failure(const char *outcome, const char *code, const char *words)
{
  if (outcome)
    assert_int_equal(fake_server_push_outcome(fake, outcome), 0);
  avatar_output_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(render(&out, &err), -1);
  assert_string_equal(err.code, code);
  assert_non_null(strstr(err.message, words));
  assert_null(out.video);
}

static void test_talk_error_passes_the_description_on(void **state)
{
  (void) state;
  expect_failure("/talks=error", "backend_error", "FaceError");
  expect_failure("/talks=error", "backend_error", "Face not detected in the source image");
}

static void test_rejected_talk(void **state)
{
  (void) state;
  expect_failure("/talks=rejected", "backend_error", "rejected");
}

static void test_talk_never_done_stops_at_the_poll_limit(void **state)
{
  (void) state;
  expect_failure("/talks=stuck", "timeout", "60 status checks");
  /* upload + create + 60 polls */
  assert_int_equal(fake_server_request_count(fake), 62);
}

static void test_talk_never_done_stops_at_the_deadline(void **state)
{
  (void) state;
  setenv("DID_POLL_MS", "200", 1);
  setenv("AVATAR_TIMEOUT_MS", "1875", 1);
  expect_failure("/talks=stuck", "timeout", "within");
  setenv("DID_POLL_MS", "20", 1);
  setenv("AVATAR_TIMEOUT_MS", "25000", 1);
  printf("# polls before the 1.5 s deadline: %zu\n", fake_server_request_count(fake) - 2);
}

static void test_bad_key_is_401_not_retried(void **state)
{
  (void) state;
  setenv("DID_API_KEY", "wrong:key-000000000", 1);
  expect_failure(NULL, "backend_error", "user unauthenticated");
  setenv("DID_API_KEY", DID_KEY, 1);
  assert_int_equal(fake_server_request_count(fake), 1);
}

static void test_429_on_upload_is_retried(void **state)
{
  (void) state;
  assert_int_equal(fake_server_push_outcome(fake, "/audios=429"), 0);
  avatar_output_t out = {0};
  stage_error_t err = {0};
  assert_int_equal(render(&out, &err), 0);
  avatar_output_release(&out);
  assert_int_equal(fake_server_request_count(fake), 7);
}

static void test_500_on_create(void **state)
{
  (void) state;
  expect_failure("/talks=500 /talks=500 /talks=500", "backend_error", "internal server error");
}

static void test_slow_poll_times_out(void **state)
{
  (void) state;
  /* Budget 2 s; the fake answers the first poll after 2.5 s. */
  setenv("AVATAR_TIMEOUT_MS", "2500", 1);
  expect_failure("/talks/*=slow", "timeout", "did not answer");
  setenv("AVATAR_TIMEOUT_MS", "25000", 1);
}

static void test_malformed_create(void **state)
{
  (void) state;
  expect_failure("/talks=malformed", "backend_error", "not JSON");
}

static void test_missing_settings_stop_at_start(void **state)
{
  (void) state;
  unsetenv("DID_SOURCE_URL");
  stage_error_t err = {0};
  assert_null(avatar_did_new(&err));
  assert_non_null(strstr(err.message, "DID_SOURCE_URL"));
  setenv("DID_SOURCE_URL", "https://example.invalid/portrait.jpg", 1);
  unsetenv("DID_API_KEY");
  assert_null(avatar_did_new(&err));
  assert_non_null(strstr(err.message, "AVATAR_BACKEND=did needs DID_API_KEY"));
  setenv("DID_API_KEY", DID_KEY, 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_talk_is_polled_and_downloaded, reset),
    cmocka_unit_test_setup(test_talk_error_passes_the_description_on, reset),
    cmocka_unit_test_setup(test_rejected_talk, reset),
    cmocka_unit_test_setup(test_talk_never_done_stops_at_the_poll_limit, reset),
    cmocka_unit_test_setup(test_talk_never_done_stops_at_the_deadline, reset),
    cmocka_unit_test_setup(test_bad_key_is_401_not_retried, reset),
    cmocka_unit_test_setup(test_429_on_upload_is_retried, reset),
    cmocka_unit_test_setup(test_500_on_create, reset),
    cmocka_unit_test_setup(test_slow_poll_times_out, reset),
    cmocka_unit_test_setup(test_malformed_create, reset),
    cmocka_unit_test_setup(test_missing_settings_stop_at_start, reset),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
