/* Unit tests of the Redis-backed gateway stores (gateway/redis_link,
 * job_store_redis, session_store_redis, media_store in Redis) against a real
 * redis-server that the test starts on a free loopback port. Two links stand for
 * two gateways sharing one server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "answer_cache.h"
#include "job_store.h"
#include "media_store.h"
#include "redis_link.h"
#include "session_store.h"

#define T0 1700000000000LL
#define TTL_MS 3600000

typedef struct {
  pid_t server;
  int port;
  char url[64];
  redis_link_t *a; /* gateway A's connection */
  redis_link_t *b; /* gateway B's connection */
} fixture_t;

static void sleep_ms(long ms)
{
  struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&pause, NULL);
}

/* A port nobody listens on right now (the kernel's pick for an ephemeral bind). */
static int free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t length = sizeof address;
  assert_int_equal(bind(fd, (struct sockaddr *) &address, sizeof address), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *) &address, &length), 0);
  close(fd);
  return ntohs(address.sin_port);
}

static pid_t start_server(int port)
{
  char port_text[16];
  snprintf(port_text, sizeof port_text, "%d", port);
  pid_t pid = fork();
  if (pid == 0) {
    /* The server's own banner and shutdown lines would clutter the test log. */
    int null_fd = open("/dev/null", O_WRONLY);
    if (null_fd >= 0) {
      dup2(null_fd, STDOUT_FILENO);
      dup2(null_fd, STDERR_FILENO);
    }
    execlp("redis-server", "redis-server", "--port", port_text, "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no", "--loglevel", "warning", (char *) NULL);
    _exit(127);
  }
  return pid;
}

static void stop_server(fixture_t *fixture)
{
  if (fixture->server > 0) {
    kill(fixture->server, SIGTERM);
    waitpid(fixture->server, NULL, 0);
  }
  fixture->server = 0;
}

/* Connects once the server answers PING (it needs a moment to start). */
static redis_link_t *connect_link(const char *url)
{
  char error[256];
  for (int i = 0; i < 100; i++) {
    redis_link_t *link = redis_link_new(url, NULL, error, sizeof error);
    if (link)
      return link;
    sleep_ms(50);
  }
  fail_msg("redis-server did not answer at %s: %s", url, error);
  return NULL;
}

static int setup(void **state)
{
  fixture_t *fixture = calloc(1, sizeof *fixture);
  if (!fixture)
    return -1;
  fixture->port = free_port();
  snprintf(fixture->url, sizeof fixture->url, "redis://127.0.0.1:%d/2", fixture->port);
  fixture->server = start_server(fixture->port);
  fixture->a = connect_link(fixture->url);
  fixture->b = connect_link(fixture->url);
  *state = fixture;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *fixture = *state;
  redis_link_destroy(&fixture->a);
  redis_link_destroy(&fixture->b);
  stop_server(fixture);
  free(fixture);
  return 0;
}

static char *render_text(cJSON *json)
{
  assert_non_null(json);
  char *text = cJSON_PrintUnformatted(json);
  cJSON_Delete(json);
  return text;
}

static void test_bad_urls_are_refused_with_a_reason(void **state)
{
  fixture_t *fixture = *state;
  char error[256];
  const char *bad[] = {"memory", "http://127.0.0.1:6379", "redis://", "redis://:6379",
                       "redis://host:notaport", "redis://host:70000", "redis://host:1/x",
                       "redis://user:secret@host:6379"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    error[0] = '\0';
    assert_null(redis_link_new(bad[i], NULL, error, sizeof error));
    assert_true(strlen(error) > 10);
    assert_null(strstr(error, "secret"));
  }
  /* Nothing listens on a port we just found free. */
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
  assert_null(redis_link_new(url, NULL, error, sizeof error));
  assert_non_null(strstr(error, "cannot reach Redis"));
  /* This server has no password: AUTH is refused, and the password is not shown. */
  assert_null(redis_link_new(fixture->url, "hunter2", error, sizeof error));
  assert_null(strstr(error, "hunter2"));
}

static void test_job_submitted_on_a_is_followed_on_b(void **state)
{
  fixture_t *fixture = *state;
  job_store_t *a = job_store_new_redis(fixture->a, TTL_MS);
  job_store_t *b = job_store_new_redis(fixture->b, TTL_MS);
  assert_int_equal(job_store_create(a, "job-ab", "s1", "chat", "Where is your store?", T0), 0);
  assert_int_equal(job_store_create(b, "job-ab", "s1", "chat", NULL, T0), -1); /* id taken */
  char *text = render_text(job_store_render(b, "job-ab", T0));
  assert_string_equal(text, "{\"job_id\":\"job-ab\",\"session_id\":\"s1\",\"state\":\"queued\","
                            "\"stage\":\"chat\",\"transcript\":\"Where is your store?\","
                            "\"error\":null}");
  free(text);

  /* Events of one job reach different gateways: A sees chat, B sees the end. */
  job_timing_t chat_timing[] = {{"chat", 5}};
  job_update_t chat = {.job_id = "job-ab", .state = JOB_STATE_RUNNING, .stage = "tts",
                       .reply = "We are at 12 Main Street.", .timings = chat_timing,
                       .timing_count = 1};
  assert_int_equal(job_store_apply(a, &chat, T0 + 10, NULL), JOB_APPLY_UPDATED);
  job_timing_t avatar_timing[] = {{"avatar", 900}};
  job_update_t done = {.job_id = "job-ab", .state = JOB_STATE_DONE, .stage = "avatar",
                       .video_url = "/media/job-ab.mp4", .timings = avatar_timing,
                       .timing_count = 1, .at_ms = T0 + 1000};
  job_final_t final;
  assert_int_equal(job_store_apply(b, &done, T0 + 1000, &final), JOB_APPLY_BECAME_FINAL);
  assert_int_equal(final.state, JOB_STATE_DONE);
  assert_string_equal(final.session_id, "s1");
  assert_string_equal(final.question, "Where is your store?");
  assert_string_equal(final.reply, "We are at 12 Main Street.");
  assert_int_equal(final.timing_count, 3); /* chat, avatar, total */
  job_final_clear(&final);

  /* Final is sticky whichever gateway asks. */
  job_update_t late = {.job_id = "job-ab", .state = JOB_STATE_FAILED, .error_code = "timeout"};
  assert_int_equal(job_store_apply(a, &late, T0 + 2000, NULL), JOB_APPLY_IGNORED);
  assert_true(job_store_is_final(a, "job-ab", T0));
  text = render_text(job_store_render(a, "job-ab", T0));
  assert_string_equal(text, "{\"job_id\":\"job-ab\",\"session_id\":\"s1\",\"state\":\"done\","
                            "\"stage\":\"avatar\",\"transcript\":\"Where is your store?\","
                            "\"reply\":\"We are at 12 Main Street.\","
                            "\"video_url\":\"/media/job-ab.mp4\","
                            "\"timings_ms\":{\"chat\":5,\"avatar\":900,\"total\":1000},"
                            "\"error\":null}");
  free(text);
  assert_int_equal(job_store_size(b), 1);
  assert_int_equal(job_store_expire(a, T0 + 10 * TTL_MS), 0); /* Redis's job, not ours */

  /* An event for a job this gateway never saw creates the record. */
  job_update_t foreign = {.job_id = "job-other", .session_id = "s9", .state = JOB_STATE_RUNNING,
                          .stage = "stt"};
  assert_int_equal(job_store_apply(b, &foreign, T0, NULL), JOB_APPLY_UPDATED);
  assert_false(job_store_is_final(a, "job-other", T0));
  job_store_remove(a, "job-other");
  assert_null(job_store_render(b, "job-other", T0));
  assert_null(job_store_render(b, "never-seen", T0));
  job_store_remove(a, "job-ab");
  job_store_destroy(&a);
  job_store_destroy(&b);
  assert_null(a);
}

typedef struct {
  job_store_t *store;
  uint32_t first_segment;
} writer_t;

static void *write_segments(void *arg)
{
  writer_t *writer = arg;
  for (uint32_t i = writer->first_segment; i < writer->first_segment + 30; i++) {
    char text[32];
    snprintf(text, sizeof text, "sentence %u", i);
    job_update_t update = {.job_id = "job-race", .state = JOB_STATE_RUNNING, .stage = "avatar",
                           .is_segment = true, .segment_index = i, .segment_text = text,
                           .duration_ms = 100 + i};
    if (job_store_apply(writer->store, &update, T0 + i, NULL) != JOB_APPLY_UPDATED)
      return "apply failed";
  }
  return NULL;
}

static void test_concurrent_merges_from_two_gateways_lose_nothing(void **state)
{
  fixture_t *fixture = *state;
  job_store_t *a = job_store_new_redis(fixture->a, TTL_MS);
  job_store_t *b = job_store_new_redis(fixture->b, TTL_MS);
  assert_int_equal(job_store_create(a, "job-race", "s1", "chat", "q", T0), 0);
  writer_t writers[] = {{a, 0}, {b, 30}};
  pthread_t threads[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&threads[i], NULL, write_segments, &writers[i]), 0);
  for (int i = 0; i < 2; i++) {
    void *result = NULL;
    pthread_join(threads[i], &result);
    assert_null(result);
  }
  cJSON *json = job_store_render(b, "job-race", T0);
  assert_non_null(json);
  const cJSON *segments = cJSON_GetObjectItemCaseSensitive(json, "segments");
  assert_int_equal(cJSON_GetArraySize(segments), 60);
  for (int i = 0; i < 60; i++) {
    const cJSON *segment = cJSON_GetArrayItem(segments, i);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(segment, "duration_ms")->valueint, 100 + i);
  }
  cJSON_Delete(json);
  job_store_remove(a, "job-race");
  job_store_destroy(&a);
  job_store_destroy(&b);
}

static void test_records_expire_in_redis(void **state)
{
  fixture_t *fixture = *state;
  job_store_t *jobs = job_store_new_redis(fixture->a, 200);
  session_store_t *sessions = session_store_new_redis(fixture->a, 10, 200);
  assert_int_equal(job_store_create(jobs, "job-ttl", "s1", "stt", NULL, T0), 0);
  char id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(sessions, "sess-ttl", T0, id), 0);
  sleep_ms(100);
  /* A change renews a job, a use renews a session. */
  job_update_t update = {.job_id = "job-ttl", .state = JOB_STATE_RUNNING};
  assert_int_equal(job_store_apply(jobs, &update, T0, NULL), JOB_APPLY_UPDATED);
  assert_int_equal(session_store_open(sessions, "sess-ttl", T0, id), 0);
  sleep_ms(150);
  cJSON *job = job_store_render(jobs, "job-ttl", T0);
  assert_non_null(job);
  cJSON_Delete(job);
  cJSON *session = session_store_render(sessions, "sess-ttl", T0);
  assert_non_null(session);
  cJSON_Delete(session);
  sleep_ms(300);
  assert_null(job_store_render(jobs, "job-ttl", T0));
  assert_null(session_store_render(sessions, "sess-ttl", T0));
  job_store_destroy(&jobs);
  session_store_destroy(&sessions);
}

static void test_sessions_are_shared(void **state)
{
  fixture_t *fixture = *state;
  session_store_t *a = session_store_new_redis(fixture->a, 4, TTL_MS);
  session_store_t *b = session_store_new_redis(fixture->b, 4, TTL_MS);
  char id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(a, NULL, T0, id), 0);
  assert_int_equal(strlen(id), 32);
  char same[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(b, id, T0, same), 0);
  assert_string_equal(same, id);
  assert_int_equal(session_store_open(b, "bad id!", T0, same), -1);

  session_store_append_exchange(b, id, "j1", "What are your office hours?", "9 to 6.", T0);
  session_store_append_exchange(a, id, "j1", "What are your office hours?", "9 to 6.", T0);
  session_turn_t *turns;
  size_t count;
  assert_int_equal(session_store_turns(a, id, T0, &turns, &count), 0);
  assert_int_equal(count, 2); /* the same job's turns once, from either gateway */
  assert_string_equal(turns[0].role, "user");
  assert_string_equal(turns[0].text, "What are your office hours?");
  assert_string_equal(turns[1].role, "assistant");
  assert_string_equal(turns[1].job_id, "j1");
  session_turns_free(turns, count);

  /* A window of max_turns (4): the oldest exchange goes. */
  session_store_append_exchange(a, id, "j2", "And on Saturday?", "10 to 2.", T0);
  session_store_append_exchange(b, id, "j3", "Thanks", NULL, T0);
  char *text = render_text(session_store_render(b, id, T0));
  char expected[512];
  snprintf(expected, sizeof expected,
           "{\"session_id\":\"%s\",\"turns\":[{\"role\":\"assistant\",\"text\":\"9 to 6.\","
           "\"job_id\":\"j1\"},{\"role\":\"user\",\"text\":\"And on Saturday?\",\"job_id\":\"j2\"},"
           "{\"role\":\"assistant\",\"text\":\"10 to 2.\",\"job_id\":\"j2\"},"
           "{\"role\":\"user\",\"text\":\"Thanks\",\"job_id\":\"j3\"}]}",
           id);
  assert_string_equal(text, expected);
  free(text);

  assert_int_equal(session_store_turns(a, "unknown", T0, &turns, &count), 0);
  assert_int_equal(count, 0);
  assert_null(turns);
  assert_true(session_store_delete(a, id, T0));
  assert_false(session_store_delete(b, id, T0));
  /* A deleted session stays gone: a late answer does not bring it back. */
  session_store_append_exchange(b, id, "j4", "late", "late", T0);
  assert_null(session_store_render(a, id, T0));
  assert_int_equal(session_store_expire(a, T0 + 10 * TTL_MS), 0);
  session_store_destroy(&a);
  session_store_destroy(&b);
  assert_null(a);
}

static void test_media_written_on_a_is_served_on_b(void **state)
{
  fixture_t *fixture = *state;
  media_store_t *a = media_store_new_redis(fixture->a, 1);
  media_store_t *b = media_store_new_redis(fixture->b, 1);
  size_t size = 300000;
  uint8_t *video = malloc(size);
  assert_non_null(video);
  for (size_t i = 0; i < size; i++)
    video[i] = (uint8_t) (i * 31 + (i >> 8)); /* binary, with NULs */
  assert_int_equal(media_store_write(a, "job-ab.mp4", video, size), 0);
  assert_int_equal(media_store_write(a, "../job-ab.mp4", video, size), -1);
  int fd = -1;
  uint64_t served = 0;
  assert_int_equal(media_store_open(b, "job-ab.mp4", &fd, &served), 0);
  assert_int_equal(served, size);
  uint8_t *copy = malloc(size);
  assert_non_null(copy);
  /* The HTTP layer sends ranges with pread/sendfile at an offset. */
  assert_int_equal(pread(fd, copy, 1000, 123456), 1000);
  assert_memory_equal(copy, video + 123456, 1000);
  assert_int_equal(pread(fd, copy, size, 0), (ssize_t) size);
  assert_memory_equal(copy, video, size);
  close(fd);
  assert_int_equal(media_store_open(b, "missing.mp4", &fd, &served), -1);
  assert_int_equal(media_store_cleanup(b, 0), 0);
  sleep_ms(1200); /* MEDIA_TTL_S of 1 s */
  assert_int_equal(media_store_open(b, "job-ab.mp4", &fd, &served), -1);
  free(copy);
  free(video);
  media_store_destroy(&a);
  media_store_destroy(&b);
  assert_null(a);
}

/* An answer rendered behind gateway a is served from the cache by gateway b;
 * it expires with its TTL, and a value that is not an answer is not served. */
static void test_answer_cached_on_a_is_found_on_b(void **state)
{
  fixture_t *fixture = *state;
  answer_cache_t *a = answer_cache_new_redis(fixture->a, 500);
  answer_cache_t *b = answer_cache_new_redis(fixture->b, 500);
  assert_non_null(a);
  assert_non_null(b);
  cached_answer_t answer = {"/media/j1.wav", "/media/j1.mp4"}, got;
  assert_int_equal(answer_cache_put(a, "We open at nine.", "robot", &answer, 0), 0);
  assert_true(answer_cache_get(b, "We open at nine.", "robot", 0, &got));
  assert_string_equal(got.video_url, "/media/j1.mp4");
  assert_string_equal(got.audio_url, "/media/j1.wav");
  assert_false(answer_cache_get(b, "We open at nine.", "", 0, &got));
  assert_int_equal(redis_link_count(fixture->b, "avatar:answer:"), 1);
  sleep_ms(700);
  assert_false(answer_cache_get(b, "We open at nine.", "robot", 0, &got));
  /* Whatever else sits under an answer's key is not served. */
  assert_int_equal(answer_cache_put(a, "Hi.", "", &answer, 0), 0);
  assert_true(answer_cache_get(b, "Hi.", "", 0, &got));
  unsigned char hash[32];
  char key[96] = "avatar:answer:";
  assert_non_null(SHA256((const unsigned char *) "\0Hi.", 4, hash)); /* character "", reply */
  for (int i = 0; i < 32; i++)
    snprintf(key + strlen(key), 3, "%02x", hash[i]);
  const char *junk[] = {"not json", "{\"video_url\": 5}", "{\"audio_url\": \"\", \"video_url\": \"\"}"};
  for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
    assert_int_equal(redis_link_set(fixture->a, key, junk[i], strlen(junk[i]), 5000, false), 1);
    assert_false(answer_cache_get(b, "Hi.", "", 0, &got));
  }
  answer_cache_destroy(&a);
  answer_cache_destroy(&b);
  assert_null(a);
}

static void test_redis_restart_is_survived(void **state)
{
  fixture_t *fixture = *state;
  job_store_t *jobs = job_store_new_redis(fixture->a, TTL_MS);
  session_store_t *sessions = session_store_new_redis(fixture->a, 10, TTL_MS);
  media_store_t *media = media_store_new_redis(fixture->a, 60);
  stop_server(fixture);
  /* Down: every call fails cleanly, none crashes or blocks for long. */
  assert_int_equal(job_store_create(jobs, "job-down", "s1", "stt", NULL, T0), -1);
  job_update_t update = {.job_id = "job-down", .state = JOB_STATE_RUNNING};
  assert_int_equal(job_store_apply(jobs, &update, T0, NULL), JOB_APPLY_ERROR);
  assert_null(job_store_render(jobs, "job-down", T0));
  char id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(sessions, NULL, T0, id), -1);
  session_turn_t *turns;
  size_t count;
  assert_int_equal(session_store_turns(sessions, "s1", T0, &turns, &count), -1);
  assert_int_equal(media_store_write(media, "a.wav", (const uint8_t *) "RIFF", 4), -1);
  /* Back on the same port (empty): the next call reconnects. */
  fixture->server = start_server(fixture->port);
  redis_link_t *probe = connect_link(fixture->url);
  redis_link_destroy(&probe);
  assert_int_equal(job_store_create(jobs, "job-down", "s1", "stt", NULL, T0), 0);
  assert_true(job_store_apply(jobs, &update, T0, NULL) == JOB_APPLY_UPDATED);
  assert_int_equal(session_store_open(sessions, NULL, T0, id), 0);
  job_store_remove(jobs, "job-down");
  job_store_destroy(&jobs);
  session_store_destroy(&sessions);
  media_store_destroy(&media);
}

int main(void)
{
  if (system("command -v redis-server >/dev/null 2>&1") != 0) {
    printf("1..0 # SKIP redis-server is not installed\n");
    return 77; /* meson's "skipped" */
  }
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bad_urls_are_refused_with_a_reason),
    cmocka_unit_test(test_job_submitted_on_a_is_followed_on_b),
    cmocka_unit_test(test_concurrent_merges_from_two_gateways_lose_nothing),
    cmocka_unit_test(test_records_expire_in_redis),
    cmocka_unit_test(test_sessions_are_shared),
    cmocka_unit_test(test_media_written_on_a_is_served_on_b),
    cmocka_unit_test(test_answer_cached_on_a_is_found_on_b),
    cmocka_unit_test(test_redis_restart_is_survived),
  };
  return cmocka_run_group_tests_name("gateway_redis", tests, setup, teardown);
}
