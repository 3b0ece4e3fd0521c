/* Unit tests of gateway/job_store: merge rules (sticky final states, fields,
 * segments, timings), expiry, and the exact JSON of api.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_store.h"

#define T0 1700000000000LL
#define TTL_MS 3600000

static char *render_text(job_store_t *store, const char *id, int64_t now_ms)
{
  cJSON *json = job_store_render(store, id, now_ms);
  if (!json)
    return NULL;
  char *text = cJSON_PrintUnformatted(json);
  cJSON_Delete(json);
  return text;
}

static void assert_render(job_store_t *store, const char *id, int64_t now_ms, const char *expected)
{
  char *text = render_text(store, id, now_ms);
  assert_non_null(text);
  assert_string_equal(text, expected);
  free(text);
}

static void test_new_job_is_queued(void **state)
{
  (void) state;
  job_store_t *store = job_store_new(TTL_MS);
  assert_int_equal(job_store_create(store, "j1", "s1", "stt", NULL, T0), 0);
  assert_int_equal(job_store_create(store, "j1", "s1", "stt", NULL, T0), -1);
  assert_render(store, "j1", T0,
                "{\"job_id\":\"j1\",\"session_id\":\"s1\",\"state\":\"queued\",\"stage\":\"stt\","
                "\"error\":null}");
  assert_null(job_store_render(store, "nope", T0));
  job_store_destroy(&store);
  assert_null(store);
}

static void test_full_job_json_matches_api(void **state)
{
  (void) state;
  job_store_t *store = job_store_new(TTL_MS);
  assert_int_equal(job_store_create(store, "j1", "s1", "stt", NULL, T0), 0);
  job_timing_t stt_timing[] = {{"queued", 1}, {"stt", 120}};
  job_update_t stt = {.job_id = "j1", .state = JOB_STATE_RUNNING, .stage = "chat",
                      .question = "what are your office hours", .timings = stt_timing,
                      .timing_count = 2};
  assert_int_equal(job_store_apply(store, &stt, T0 + 100, NULL), JOB_APPLY_UPDATED);
  job_update_t segment = {.job_id = "j1", .state = JOB_STATE_RUNNING, .stage = "avatar",
                          .is_segment = true, .segment_index = 0, .segment_text = "Hi.",
                          .audio_url = "/media/j1-0.wav", .video_url = "/media/j1-0.mp4",
                          .duration_ms = 1840};
  assert_int_equal(job_store_apply(store, &segment, T0 + 200, NULL), JOB_APPLY_UPDATED);
  job_timing_t done_timing[] = {{"total", 360}, {"chat", 3}, {"tts", 15}, {"avatar", 210}};
  job_update_t done = {.job_id = "j1", .state = JOB_STATE_DONE, .stage = "avatar",
                       .reply = "We're open.", .audio_url = "/media/j1.wav",
                       .video_url = "/media/j1.mp4", .timings = done_timing, .timing_count = 4};
  job_final_t final;
  assert_int_equal(job_store_apply(store, &done, T0 + 360, &final), JOB_APPLY_BECAME_FINAL);
  assert_int_equal(final.state, JOB_STATE_DONE);
  assert_string_equal(final.session_id, "s1");
  assert_string_equal(final.question, "what are your office hours");
  assert_string_equal(final.reply, "We're open.");
  assert_string_equal(final.error_code, "");
  assert_int_equal(final.timing_count, 7); /* with first_segment, from segment 0's video */
  job_final_clear(&final);
  assert_true(job_store_is_final(store, "j1", T0 + 400));
  assert_render(store, "j1", T0 + 400,
                "{\"job_id\":\"j1\",\"session_id\":\"s1\",\"state\":\"done\",\"stage\":\"avatar\","
                "\"transcript\":\"what are your office hours\",\"reply\":\"We're open.\","
                "\"audio_url\":\"/media/j1.wav\",\"video_url\":\"/media/j1.mp4\","
                "\"segments\":[{\"index\":0,\"text\":\"Hi.\",\"audio_url\":\"/media/j1-0.wav\","
                "\"video_url\":\"/media/j1-0.mp4\",\"duration_ms\":1840}],"
                "\"timings_ms\":{\"queued\":1,\"stt\":120,\"first_segment\":200,\"chat\":3,"
                "\"tts\":15,\"avatar\":210,\"total\":360},\"error\":null}");
  job_store_destroy(&store);
}

/* A streamed answer: the update that completes the set of segment videos, in
 * whatever order they come, asks its caller (once) to join them. */
static void test_segments_ready_once(void **state)
{
  (void) state;
  job_store_t *store = job_store_new(TTL_MS);
  assert_int_equal(job_store_create(store, "j5", "s1", "chat", "hours?", T0), 0);
  job_update_t chat = {.job_id = "j5", .state = JOB_STATE_RUNNING, .stage = "chat",
                       .reply = "One. Two. Three.", .segment_count = 3};
  assert_int_equal(job_store_apply(store, &chat, T0 + 5, NULL), JOB_APPLY_UPDATED);
  const char *videos[] = {"/media/j5-0.mp4", "/media/j5-1.mp4", "/media/j5-2.mp4"};
  uint32_t order[] = {2, 0, 1};
  for (size_t i = 0; i < 3; i++) {
    /* tts reports the segment's audio first: no video yet, nothing to join */
    job_update_t audio = {.job_id = "j5", .state = JOB_STATE_RUNNING, .stage = "tts",
                          .is_segment = true, .segment_index = order[i], .segment_count = 3,
                          .audio_url = "/media/j5-x.wav"};
    assert_int_equal(job_store_apply(store, &audio, T0 + 10, NULL), JOB_APPLY_UPDATED);
    job_timing_t own[] = {{"tts", 10 + order[i]}, {"avatar", 100 + order[i]}};
    job_update_t video = {.job_id = "j5", .state = JOB_STATE_RUNNING, .stage = "avatar",
                          .is_segment = true, .segment_index = order[i], .segment_count = 3,
                          .video_url = videos[order[i]], .timings = own, .timing_count = 2};
    assert_int_equal(job_store_apply(store, &video, T0 + 100 * (int64_t) (i + 1), NULL),
                     i == 2 ? JOB_APPLY_SEGMENTS_READY : JOB_APPLY_UPDATED);
  }
  /* A re-run's duplicate segment does not start a second join. */
  job_update_t again = {.job_id = "j5", .state = JOB_STATE_RUNNING, .stage = "avatar",
                        .is_segment = true, .segment_index = 1, .video_url = videos[1]};
  assert_int_equal(job_store_apply(store, &again, T0 + 400, NULL), JOB_APPLY_UPDATED);
  cJSON *job = job_store_render(store, "j5", T0 + 400);
  assert_int_equal(cJSON_GetObjectItem(job, "segment_count")->valueint, 3);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(job, "segments")), 3);
  /* each segment keeps its own stage times */
  cJSON *second = cJSON_GetArrayItem(cJSON_GetObjectItem(job, "segments"), 1);
  assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(second, "timings_ms"), "avatar")->valueint,
                   101);
  assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(second, "timings_ms"), "tts")->valueint, 11);
  /* segment 0 came second, at T0 + 200 */
  assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(job, "timings_ms"),
                                       "first_segment")->valueint, 200);
  cJSON_Delete(job);
  job_update_t done = {.job_id = "j5", .state = JOB_STATE_DONE, .video_url = "/media/j5.mp4"};
  assert_int_equal(job_store_apply(store, &done, T0 + 450, NULL), JOB_APPLY_BECAME_FINAL);
  job_store_destroy(&store);
}

static void test_final_state_is_sticky(void **state)
{
  (void) state;
  job_store_t *store = job_store_new(TTL_MS);
  assert_int_equal(job_store_create(store, "j2", "s1", "chat", "hello", T0), 0);
  job_update_t failed = {.job_id = "j2", .state = JOB_STATE_FAILED, .stage = "tts",
                         .error_code = "backend_error", .error_message = "The voice failed."};
  job_final_t final;
  assert_int_equal(job_store_apply(store, &failed, T0 + 50, &final), JOB_APPLY_BECAME_FINAL);
  assert_string_equal(final.error_code, "backend_error");
  assert_string_equal(final.question, "hello");
  assert_null(final.reply);
  job_final_clear(&final);

  job_update_t late_running = {.job_id = "j2", .state = JOB_STATE_RUNNING, .stage = "avatar",
                               .reply = "late"};
  assert_int_equal(job_store_apply(store, &late_running, T0 + 60, NULL), JOB_APPLY_IGNORED);
  job_update_t late_done = {.job_id = "j2", .state = JOB_STATE_DONE};
  assert_int_equal(job_store_apply(store, &late_done, T0 + 70, NULL), JOB_APPLY_IGNORED);
  assert_render(store, "j2", T0 + 80,
                "{\"job_id\":\"j2\",\"session_id\":\"s1\",\"state\":\"failed\",\"stage\":\"tts\","
                "\"transcript\":\"hello\",\"timings_ms\":{\"total\":50},"
                "\"error\":{\"code\":\"backend_error\",\"message\":\"The voice failed.\"}}");
  job_store_destroy(&store);
}

static void test_failure_without_error_gets_one(void **state)
{
  (void) state;
  job_store_t *store = job_store_new(TTL_MS);
  job_update_t failed = {.job_id = "j3", .session_id = "s9", .state = JOB_STATE_FAILED};
  assert_int_equal(job_store_apply(store, &failed, T0, NULL), JOB_APPLY_BECAME_FINAL);
  cJSON *json = job_store_render(store, "j3", T0);
  const cJSON *error = cJSON_GetObjectItem(json, "error");
  assert_string_equal(cJSON_GetObjectItem(error, "code")->valuestring, "backend_error");
  assert_string_equal(cJSON_GetObjectItem(json, "session_id")->valuestring, "s9");
  cJSON_Delete(json);
  job_store_destroy(&store);
}

static void test_segments_in_index_order_and_merged(void **state)
{
  (void) state;
  job_store_t *store = job_store_new(TTL_MS);
  assert_int_equal(job_store_create(store, "j4", "s1", "chat", NULL, T0), 0);
  job_update_t second = {.job_id = "j4", .is_segment = true, .segment_index = 1,
                         .segment_text = "Two.", .video_url = "/media/j4-1.mp4"};
  job_update_t first_audio = {.job_id = "j4", .is_segment = true, .segment_index = 0,
                              .segment_text = "One.", .audio_url = "/media/j4-0.wav"};
  job_update_t first_video = {.job_id = "j4", .is_segment = true, .segment_index = 0,
                              .video_url = "/media/j4-0.mp4", .duration_ms = 900};
  job_update_t out_of_range = {.job_id = "j4", .is_segment = true,
                               .segment_index = JOB_SEGMENTS_MAX, .video_url = "/media/x.mp4"};
  assert_int_equal(job_store_apply(store, &second, T0, NULL), JOB_APPLY_UPDATED);
  assert_int_equal(job_store_apply(store, &first_audio, T0, NULL), JOB_APPLY_UPDATED);
  assert_int_equal(job_store_apply(store, &first_video, T0, NULL), JOB_APPLY_UPDATED);
  assert_int_equal(job_store_apply(store, &out_of_range, T0, NULL), JOB_APPLY_UPDATED);
  cJSON *json = job_store_render(store, "j4", T0);
  const cJSON *segments = cJSON_GetObjectItem(json, "segments");
  assert_int_equal(cJSON_GetArraySize(segments), 2);
  char *text = cJSON_PrintUnformatted(segments);
  assert_string_equal(text,
                      "[{\"index\":0,\"text\":\"One.\",\"audio_url\":\"/media/j4-0.wav\","
                      "\"video_url\":\"/media/j4-0.mp4\",\"duration_ms\":900},"
                      "{\"index\":1,\"text\":\"Two.\",\"video_url\":\"/media/j4-1.mp4\","
                      "\"duration_ms\":0}]");
  free(text);
  assert_null(cJSON_GetObjectItem(json, "video_url"));
  cJSON_Delete(json);
  job_store_destroy(&store);
}

static void test_unknown_job_status_creates_record(void **state)
{
  (void) state;
  job_store_t *store = job_store_new(TTL_MS);
  job_update_t running = {.job_id = "other", .session_id = "s2", .state = JOB_STATE_RUNNING,
                          .stage = "tts"};
  assert_int_equal(job_store_apply(store, &running, T0, NULL), JOB_APPLY_UPDATED);
  cJSON *json = job_store_render(store, "other", T0);
  assert_non_null(json);
  assert_string_equal(cJSON_GetObjectItem(json, "session_id")->valuestring, "s2");
  cJSON_Delete(json);
  job_update_t no_id = {.state = JOB_STATE_DONE};
  assert_int_equal(job_store_apply(store, &no_id, T0, NULL), JOB_APPLY_ERROR);
  job_store_destroy(&store);
}

static void test_expiry(void **state)
{
  (void) state;
  job_store_t *store = job_store_new(1000);
  assert_int_equal(job_store_create(store, "old", "s", "stt", NULL, T0), 0);
  assert_int_equal(job_store_create(store, "young", "s", "stt", NULL, T0 + 900), 0);
  job_update_t touch = {.job_id = "old", .state = JOB_STATE_RUNNING};
  assert_int_equal(job_store_apply(store, &touch, T0 + 500, NULL), JOB_APPLY_UPDATED);
  /* Past the TTL of its last change a record is gone even before the sweep. */
  assert_null(job_store_render(store, "old", T0 + 1501));
  assert_false(job_store_is_final(store, "old", T0 + 1501));
  assert_int_equal(job_store_size(store), 2);
  assert_int_equal(job_store_expire(store, T0 + 1501), 1);
  assert_int_equal(job_store_size(store), 1);
  cJSON *young = job_store_render(store, "young", T0 + 1501);
  assert_non_null(young);
  cJSON_Delete(young);
  job_store_remove(store, "young");
  assert_int_equal(job_store_size(store), 0);
  job_store_destroy(&store);
}

static void test_many_jobs(void **state)
{
  (void) state;
  job_store_t *store = job_store_new(TTL_MS);
  char id[16];
  for (int i = 0; i < 5000; i++) {
    snprintf(id, sizeof id, "job%d", i);
    assert_int_equal(job_store_create(store, id, "s", "stt", NULL, T0), 0);
  }
  assert_int_equal(job_store_size(store), 5000);
  cJSON *json = job_store_render(store, "job4321", T0);
  assert_string_equal(cJSON_GetObjectItem(json, "job_id")->valuestring, "job4321");
  cJSON_Delete(json);
  job_store_destroy(&store);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_new_job_is_queued),
    cmocka_unit_test(test_full_job_json_matches_api),
    cmocka_unit_test(test_segments_ready_once),
    cmocka_unit_test(test_final_state_is_sticky),
    cmocka_unit_test(test_failure_without_error_gets_one),
    cmocka_unit_test(test_segments_in_index_order_and_merged),
    cmocka_unit_test(test_unknown_job_status_creates_record),
    cmocka_unit_test(test_expiry),
    cmocka_unit_test(test_many_jobs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
