/* Unit tests of gateway/status_sink: packed avatar.Status events become media
 * files, job fields and, once final, session turns, a metrics count and exactly
 * one release of the job from the pipeline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "pipeline.pb-c.h"
#include "status_sink.h"

typedef struct {
  char dir[64];
  status_sink_t sink;
  pipeline_t pipeline;
  int released;
  char released_id[80];
  int cancelled;
  char cancelled_id[80];
} fixture_t;

static void fake_cancel(void *arg, const char *job_id)
{
  fixture_t *fixture = arg;
  fixture->cancelled++;
  snprintf(fixture->cancelled_id, sizeof fixture->cancelled_id, "%s", job_id);
}

static void fake_job_final(void *arg, const char *job_id)
{
  fixture_t *fixture = arg;
  fixture->released++;
  snprintf(fixture->released_id, sizeof fixture->released_id, "%s", job_id);
}

static int setup(void **state)
{
  fixture_t *fixture = calloc(1, sizeof *fixture);
  if (!fixture)
    return -1;
  snprintf(fixture->dir, sizeof fixture->dir, "/tmp/test-sink-XXXXXX");
  if (!mkdtemp(fixture->dir))
    return -1;
  fixture->pipeline = (pipeline_t) {.job_final = fake_job_final, .cancel = fake_cancel,
                                    .arg = fixture};
  fixture->sink = (status_sink_t) {
    .jobs = job_store_new(3600000),
    .sessions = session_store_new(10, 3600000),
    .media = media_store_new(fixture->dir, 3600),
    .metrics = metrics_new(),
    .pipeline = &fixture->pipeline,
    .answers = answer_cache_new(16, 3600000),
  };
  *state = fixture;
  return fixture->sink.jobs && fixture->sink.sessions && fixture->sink.media &&
         fixture->sink.answers ? 0 : -1;
}

static int teardown(void **state)
{
  fixture_t *fixture = *state;
  job_store_destroy(&fixture->sink.jobs);
  session_store_destroy(&fixture->sink.sessions);
  media_store_destroy(&fixture->sink.media);
  metrics_destroy(&fixture->sink.metrics);
  answer_cache_destroy(&fixture->sink.answers);
  char command[128];
  snprintf(command, sizeof command, "rm -rf '%s'", fixture->dir);
  int rc = system(command);
  free(fixture);
  return rc == 0 ? 0 : -1;
}

static int apply(fixture_t *fixture, const Avatar__Status *status)
{
  size_t size = avatar__status__get_packed_size(status);
  uint8_t *packed = malloc(size ? size : 1);
  assert_non_null(packed);
  avatar__status__pack(status, packed);
  int rc = status_sink_apply(&fixture->sink, packed, size);
  free(packed);
  return rc;
}

static cJSON *job_json(fixture_t *fixture, const char *id)
{
  cJSON *json = job_store_render(fixture->sink.jobs, id, clock_wall_ms());
  assert_non_null(json);
  return json;
}

static const char *field(const cJSON *json, const char *name)
{
  const cJSON *item = cJSON_GetObjectItem(json, name);
  return cJSON_IsString(item) ? item->valuestring : NULL;
}

static void assert_file(fixture_t *fixture, const char *name, const char *content)
{
  char path[160];
  snprintf(path, sizeof path, "%s/%s", fixture->dir, name);
  FILE *file = fopen(path, "rb");
  assert_non_null(file);
  char buffer[64] = "";
  size_t got = fread(buffer, 1, sizeof buffer - 1, file);
  fclose(file);
  assert_int_equal(got, strlen(content));
  assert_memory_equal(buffer, content, got);
}

static void test_pipeline_events(void **state)
{
  fixture_t *fixture = *state;
  char session_id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(fixture->sink.sessions, "sess", clock_wall_ms(), session_id), 0);
  assert_int_equal(job_store_create(fixture->sink.jobs, "job1", "sess", "stt", NULL, clock_wall_ms()), 0);

  Avatar__Status stt = AVATAR__STATUS__INIT;
  stt.job_id = "job1";
  stt.session_id = "sess";
  stt.stage = "stt";
  stt.state = AVATAR__STATE__RUNNING;
  stt.transcript = "what are your office hours";
  Avatar__StageTiming stt_timing = AVATAR__STAGE_TIMING__INIT;
  stt_timing.stage = "stt";
  stt_timing.ms = 120;
  Avatar__StageTiming *timings[] = {&stt_timing};
  stt.timings = timings;
  stt.n_timings = 1;
  assert_int_equal(apply(fixture, &stt), 0);
  cJSON *json = job_json(fixture, "job1");
  assert_string_equal(field(json, "state"), "running");
  assert_string_equal(field(json, "transcript"), "what are your office hours");
  cJSON_Delete(json);

  Avatar__Status segment = AVATAR__STATUS__INIT;
  segment.job_id = "job1";
  segment.stage = "avatar";
  segment.state = AVATAR__STATE__RUNNING;
  segment.is_segment = true;
  segment.segment_index = 1;
  segment.segment_count = 2;
  segment.segment_text = "Second.";
  segment.video.data = (uint8_t *) "SEGVIDEO";
  segment.video.len = 8;
  segment.video_mime = "video/mp4";
  segment.duration_ms = 700;
  assert_int_equal(apply(fixture, &segment), 0);
  assert_file(fixture, "job1-1.mp4", "SEGVIDEO");

  Avatar__Status done = AVATAR__STATUS__INIT;
  done.job_id = "job1";
  done.stage = "avatar";
  done.state = AVATAR__STATE__DONE;
  done.reply = "Nine to six.";
  done.audio.data = (uint8_t *) "MP3DATA";
  done.audio.len = 7;
  done.audio_mime = "audio/mpeg";
  done.video.data = (uint8_t *) "WEBMDATA";
  done.video.len = 8;
  done.video_mime = "video/webm";
  assert_int_equal(apply(fixture, &done), 0);
  assert_file(fixture, "job1.mp3", "MP3DATA");
  assert_file(fixture, "job1.webm", "WEBMDATA");
  json = job_json(fixture, "job1");
  assert_string_equal(field(json, "state"), "done");
  assert_string_equal(field(json, "audio_url"), "/media/job1.mp3");
  assert_string_equal(field(json, "video_url"), "/media/job1.webm");
  const cJSON *segments = cJSON_GetObjectItem(json, "segments");
  assert_int_equal(cJSON_GetArraySize(segments), 1);
  assert_string_equal(field(cJSON_GetArrayItem(segments, 0), "video_url"), "/media/job1-1.mp4");
  assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(json, "timings_ms"), "total"));
  cJSON_Delete(json);
  assert_int_equal(fixture->released, 1);
  assert_string_equal(fixture->released_id, "job1");

  /* A repeated final event changes nothing and releases nothing twice. */
  assert_int_equal(apply(fixture, &done), -1);
  assert_int_equal(fixture->released, 1);
  cJSON *session = session_store_render(fixture->sink.sessions, "sess", clock_wall_ms());
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(session, "turns")), 2);
  cJSON_Delete(session);

  char *metrics = metrics_render(fixture->sink.metrics, NULL, NULL);
  assert_non_null(strstr(metrics, "gateway_jobs_total{state=\"done\",error_code=\"\"} 1\n"));
  assert_non_null(strstr(metrics, "gateway_stage_latency_ms_count{stage=\"stt\"} 1\n"));
  assert_non_null(strstr(metrics, "gateway_broker_up 0\n"));
  free(metrics);
}

static void test_failure_and_remote_video(void **state)
{
  fixture_t *fixture = *state;
  Avatar__Status remote = AVATAR__STATUS__INIT;
  remote.job_id = "job2";
  remote.session_id = "gone";
  remote.stage = "avatar";
  remote.state = AVATAR__STATE__RUNNING;
  remote.video_url = "https://example.invalid/talk.mp4";
  assert_int_equal(apply(fixture, &remote), 0);
  cJSON *json = job_json(fixture, "job2");
  assert_string_equal(field(json, "video_url"), "https://example.invalid/talk.mp4");
  cJSON_Delete(json);

  Avatar__Error error = AVATAR__ERROR__INIT;
  error.code = "no_speech";
  error.message = "No speech was heard in the recording.";
  Avatar__Status failed = AVATAR__STATUS__INIT;
  failed.job_id = "job2";
  failed.stage = "stt";
  failed.state = AVATAR__STATE__FAILED;
  failed.error = &error;
  assert_int_equal(apply(fixture, &failed), 0);
  json = job_json(fixture, "job2");
  assert_string_equal(field(json, "state"), "failed");
  const cJSON *error_json = cJSON_GetObjectItem(json, "error");
  assert_string_equal(field(error_json, "code"), "no_speech");
  assert_string_equal(field(error_json, "message"), "No speech was heard in the recording.");
  cJSON_Delete(json);
  assert_int_equal(fixture->released, 1);
  /* The session was never opened here: nothing is created for it. */
  assert_null(session_store_render(fixture->sink.sessions, "gone", clock_wall_ms()));
}

static void test_rejects_bad_events(void **state)
{
  fixture_t *fixture = *state;
  const uint8_t garbage[] = {0xFF, 0xFF, 0xFF, 0xFF, 0x0F};
  assert_int_equal(status_sink_apply(&fixture->sink, garbage, sizeof garbage), -1);
  Avatar__Status traversal = AVATAR__STATUS__INIT;
  traversal.job_id = "../../etc/x";
  traversal.state = AVATAR__STATE__RUNNING;
  traversal.video.data = (uint8_t *) "X";
  traversal.video.len = 1;
  assert_int_equal(apply(fixture, &traversal), -1);
  Avatar__Status no_id = AVATAR__STATUS__INIT;
  assert_int_equal(apply(fixture, &no_id), -1);
  assert_int_equal(job_store_size(fixture->sink.jobs), 0);
  assert_int_equal(fixture->released, 0);
}

/* One status event of segment `index` of job `id` from `stage`, carrying `bytes`
 * as its audio (tts) or video (avatar). */
static void apply_segment(fixture_t *fixture, const char *id, const char *stage, uint32_t index,
                          uint32_t count, const char *bytes)
{
  Avatar__Status status = AVATAR__STATUS__INIT;
  status.job_id = (char *) id;
  status.stage = (char *) stage;
  status.state = AVATAR__STATE__RUNNING;
  status.is_segment = true;
  status.segment_index = index;
  status.segment_count = count;
  status.segment_text = "A sentence.";
  ProtobufCBinaryData data = {.data = (uint8_t *) bytes, .len = strlen(bytes)};
  if (strcmp(stage, "tts") == 0) {
    status.audio = data;
    status.audio_mime = "audio/wav";
  } else {
    status.video = data;
    status.video_mime = "video/mp4";
  }
  assert_int_equal(apply(fixture, &status), 0);
}

static void apply_chat(fixture_t *fixture, const char *id, const char *reply, uint32_t count)
{
  Avatar__Status chat = AVATAR__STATUS__INIT;
  chat.job_id = (char *) id;
  chat.session_id = "sess";
  chat.stage = "chat";
  chat.state = AVATAR__STATE__RUNNING;
  chat.question = "when are you open";
  chat.reply = (char *) reply;
  chat.segment_count = count;
  assert_int_equal(apply(fixture, &chat), 0);
}

/* A one-sentence answer is its own whole: done with the segment's files, and
 * the render goes into the answer cache. */
static void test_single_segment_finishes_the_job(void **state)
{
  fixture_t *fixture = *state;
  assert_int_equal(job_store_create(fixture->sink.jobs, "job4", "sess", "chat", "hi", clock_wall_ms()), 0);
  apply_chat(fixture, "job4", "We open at nine.", 1);
  apply_segment(fixture, "job4", "tts", 0, 1, "WAVBYTES");
  cJSON *json = job_json(fixture, "job4");
  assert_string_equal(field(json, "state"), "running");
  cJSON_Delete(json);
  apply_segment(fixture, "job4", "avatar", 0, 1, "MP4BYTES");
  json = job_json(fixture, "job4");
  assert_string_equal(field(json, "state"), "done");
  assert_string_equal(field(json, "video_url"), "/media/job4-0.mp4");
  assert_string_equal(field(json, "audio_url"), "/media/job4-0.wav");
  assert_null(cJSON_GetObjectItem(json, "cached"));
  cJSON_Delete(json);
  assert_int_equal(fixture->released, 1);
  cached_answer_t cached;
  assert_true(answer_cache_get(fixture->sink.answers, "We open at nine.", "", clock_wall_ms(),
                               &cached));
  assert_string_equal(cached.video_url, "/media/job4-0.mp4");
}

/* Segments that cannot be joined (here: not media at all) fail the job with a
 * clear code instead of leaving it running forever. */
static void test_unjoinable_segments_fail_the_job(void **state)
{
  fixture_t *fixture = *state;
  assert_int_equal(job_store_create(fixture->sink.jobs, "job5", "sess", "chat", "hi", clock_wall_ms()), 0);
  apply_chat(fixture, "job5", "One thing. Another thing.", 2);
  apply_segment(fixture, "job5", "avatar", 1, 2, "NOTAVIDEO");
  apply_segment(fixture, "job5", "avatar", 0, 2, "NOTAVIDEO");
  cJSON *json = job_json(fixture, "job5");
  assert_string_equal(field(json, "state"), "failed");
  assert_string_equal(field(cJSON_GetObjectItem(json, "error"), "code"), "storage_error");
  cJSON_Delete(json);
  assert_int_equal(fixture->released, 1);
  assert_int_equal(fixture->cancelled, 1); /* nothing more of it is worth rendering */
}

/* A reply rendered before: done at once from the cache, marked cached, the
 * pipeline told to drop the rest, the turn recorded; later events are ignored. */
static void test_repeated_reply_is_served_from_the_cache(void **state)
{
  fixture_t *fixture = *state;
  cached_answer_t answer = {"/media/old.wav", "/media/old.mp4"};
  assert_int_equal(answer_cache_put(fixture->sink.answers, "We open at nine.", "", &answer,
                                    clock_wall_ms()), 0);
  char session_id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(fixture->sink.sessions, "sess", clock_wall_ms(), session_id), 0);
  assert_int_equal(job_store_create(fixture->sink.jobs, "job6", "sess", "chat", NULL, clock_wall_ms()), 0);
  apply_chat(fixture, "job6", "We open at nine.", 1);
  cJSON *json = job_json(fixture, "job6");
  assert_string_equal(field(json, "state"), "done");
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(json, "cached")));
  assert_string_equal(field(json, "video_url"), "/media/old.mp4");
  assert_string_equal(field(json, "audio_url"), "/media/old.wav");
  assert_string_equal(field(json, "reply"), "We open at nine.");
  cJSON_Delete(json);
  assert_int_equal(fixture->cancelled, 1);
  assert_string_equal(fixture->cancelled_id, "job6");
  assert_int_equal(fixture->released, 1);
  session_turn_t *turns = NULL;
  size_t count = 0;
  assert_int_equal(session_store_turns(fixture->sink.sessions, "sess", clock_wall_ms(), &turns, &count), 0);
  assert_int_equal(count, 2);
  assert_string_equal(turns[1].text, "We open at nine.");
  session_turns_free(turns, count);
  /* the segment rendered before the cancel reached the pipeline changes nothing */
  Avatar__Status late = AVATAR__STATUS__INIT;
  late.job_id = "job6";
  late.stage = "avatar";
  late.state = AVATAR__STATE__RUNNING;
  late.is_segment = true;
  late.video.data = (uint8_t *) "LATE";
  late.video.len = 4;
  assert_int_equal(apply(fixture, &late), -1);
  /* Another character says it with another face: no hit. */
  assert_int_equal(job_store_create(fixture->sink.jobs, "job7", "sess", "chat", NULL, clock_wall_ms()), 0);
  Avatar__Status other = AVATAR__STATUS__INIT;
  other.job_id = "job7";
  other.stage = "chat";
  other.state = AVATAR__STATE__RUNNING;
  other.reply = "We open at nine.";
  other.character = "robot";
  assert_int_equal(apply(fixture, &other), 0);
  json = job_json(fixture, "job7");
  assert_string_equal(field(json, "state"), "running");
  cJSON_Delete(json);
  assert_int_equal(fixture->cancelled, 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_pipeline_events, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failure_and_remote_video, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rejects_bad_events, setup, teardown),
    cmocka_unit_test_setup_teardown(test_single_segment_finishes_the_job, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unjoinable_segments_fail_the_job, setup, teardown),
    cmocka_unit_test_setup_teardown(test_repeated_reply_is_served_from_the_cache, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
