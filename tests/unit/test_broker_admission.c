/* Admission tests: the wait estimator and the admission rule on their own
 * (services/broker/admission.c), then a real broker actor on loopback TCP whose one
 * worker takes 400 ms per job, driven by raw DEALER sockets speaking AVP1: it must
 * refuse the submission that would wait past its share of the deadline, with a
 * Retry-After estimate, and still admit a job with a longer deadline. */
#include "admission.h"
#include "broker.h"
#include "clock.h"
#include "protocol.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SERVICE_MS 400

/* ---- the estimator --------------------------------------------------------- */

static void test_service_time_average(void **state)
{
  (void) state;
  service_time_t service = {0};
  service_time_add(&service, 100);
  assert_int_equal(service.samples, 1);
  assert_true(service.average_ms == 100.0); /* the first sample is the average */
  service_time_add(&service, 200);
  /* 100 + 0.2 x (200 - 100) */
  assert_true(service.average_ms > 119.999 && service.average_ms < 120.001);
  service_time_add(&service, -50); /* a clock step back counts as 0, never negative */
  assert_true(service.average_ms > 95.999 && service.average_ms < 96.001);
  assert_int_equal(service.samples, 3);
}

static void test_wait_sums_stages_per_worker(void **state)
{
  (void) state;
  stage_load_t stages[] = {
    {.queued = 3, .workers = 2, .service_ms = 1000, .in_flight_ms = 500}, /* (3000 + 500) / 2 */
    {.queued = 2, .workers = 0, .service_ms = 0, .in_flight_ms = 300},    /* unknown: in flight only */
    {.queued = 0, .workers = 1, .service_ms = 5000, .in_flight_ms = 0},   /* idle */
  };
  assert_int_equal(admission_wait_ms(stages, 3), 1750 + 300);
  assert_int_equal(admission_wait_ms(stages, 0), 0);
  stage_load_t huge = {.queued = 1000000, .workers = 1, .service_ms = 1e12};
  assert_true(admission_wait_ms(&huge, 1) > 0); /* saturates instead of overflowing */
}

static void test_admits_within_share(void **state)
{
  (void) state;
  int64_t retry = -1;
  assert_true(admission_admits(2000, 4000, 50, &retry)); /* exactly half: still in */
  assert_int_equal(retry, -1);
  assert_false(admission_admits(2050, 4000, 50, &retry));
  assert_int_equal(retry, 1000); /* 50 ms over: the minimum of a second */
  assert_false(admission_admits(30000, 10000, 50, &retry));
  assert_int_equal(retry, 10000); /* 25 s over, capped at the time left */
  assert_false(admission_admits(9000, 10000, 50, &retry));
  assert_int_equal(retry, 4000);
  assert_true(admission_admits(INT64_MAX / 2, 10, 0, NULL)); /* 0%: admission by time is off */
  assert_true(admission_admits(9000, 10000, 250, NULL));     /* above 100 counts as 100 */
  assert_false(admission_admits(10001, 10000, 250, NULL));
  assert_true(admission_admits(1000, INT64_MAX, 100, NULL)); /* no overflow far out */
  assert_false(admission_admits(1, 0, 50, NULL));            /* no time left */
}

/* ---- a real broker ----------------------------------------------------------- */

typedef struct {
  zactor_t *broker;
  char endpoint[128];
} fixture_t;

static int setup(void **state)
{
  fixture_t *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  /* Slow heartbeats: the worker below sleeps while it "works". */
  broker_config_t cfg = {.queue_max = 100, .admit_percent = 50, .status_queue_max = 100,
                         .max_attempts = 2, .heartbeat_ms = 2000, .max_payload = 4096,
                         .stage_timeout_ms = 30000};
  snprintf(cfg.endpoint, sizeof cfg.endpoint, "tcp://127.0.0.1:*");
  f->broker = zactor_new(broker_actor, &cfg);
  *state = f;
  if (!f->broker)
    return -1;
  zstr_send(f->broker, "ENDPOINT");
  char *endpoint = zstr_recv(f->broker);
  snprintf(f->endpoint, sizeof f->endpoint, "%s", endpoint ? endpoint : "");
  free(endpoint);
  return f->endpoint[0] ? 0 : -1;
}

static int teardown(void **state)
{
  fixture_t *f = *state;
  zactor_destroy(&f->broker);
  free(f);
  return 0;
}

static zsock_t *peer_new(fixture_t *f)
{
  zsock_t *sock = zsock_new_dealer(f->endpoint);
  assert_non_null(sock);
  zsock_set_rcvtimeo(sock, 3000);
  return sock;
}

/* Sends [AVP1][frames...]; NULL ends the list. */
static void send_frames(zsock_t *sock, ...)
{
  zmsg_t *msg = zmsg_new();
  assert_non_null(msg);
  assert_int_equal(zmsg_addstr(msg, AVP_VERSION), 0);
  va_list ap;
  va_start(ap, sock);
  for (const char *frame = va_arg(ap, const char *); frame; frame = va_arg(ap, const char *))
    assert_int_equal(zmsg_addstr(msg, frame), 0);
  va_end(ap);
  assert_int_equal(zmsg_send(&msg, sock), 0);
}

/* The next message other than a heartbeat, from its command frame on (checked). */
static zmsg_t *expect(zsock_t *sock, const char *command)
{
  for (;;) {
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg)
      fail_msg("no %s within the timeout", command);
    char *version = zmsg_popstr(msg);
    assert_string_equal(version, AVP_VERSION);
    free(version);
    char *got = zmsg_popstr(msg);
    bool heartbeat = got && !strcmp(got, AVP_HEARTBEAT);
    if (!heartbeat)
      assert_string_equal(got, command);
    free(got);
    if (!heartbeat)
      return msg;
    zmsg_destroy(&msg);
  }
}

static void submit(zsock_t *producer, const char *job_id, int64_t deadline_ms)
{
  char deadline[24];
  snprintf(deadline, sizeof deadline, "%" PRId64, deadline_ms);
  send_frames(producer, AVP_SUBMIT, "slow", job_id, deadline, "job", NULL);
}

/* Submits and returns the answer's command ("ACK"/"NACK"); for a NACK also its
 * reason and retry estimate. */
static char *submit_and_answer(zsock_t *producer, const char *job_id, int64_t deadline_ms,
                               char *reason, size_t reason_size, uint64_t *retry_after_ms)
{
  submit(producer, job_id, deadline_ms);
  zmsg_t *msg = NULL;
  char *command = NULL;
  for (;;) {
    msg = zmsg_recv(producer);
    assert_non_null(msg);
    char *version = zmsg_popstr(msg);
    free(version);
    command = zmsg_popstr(msg);
    if (command && strcmp(command, AVP_HEARTBEAT) != 0)
      break;
    free(command);
    zmsg_destroy(&msg);
  }
  char *id = zmsg_popstr(msg);
  assert_string_equal(id, job_id);
  free(id);
  if (!strcmp(command, AVP_NACK)) {
    char *why = zmsg_popstr(msg);
    assert_non_null(why);
    snprintf(reason, reason_size, "%s", why);
    free(why);
    assert_true(avp_pop_uint(msg, retry_after_ms));
  }
  zmsg_destroy(&msg);
  return command;
}

static void sleep_ms(long ms)
{
  struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&pause, NULL);
}

static cJSON *info(zsock_t *peer)
{
  send_frames(peer, AVP_INFO, NULL);
  zmsg_t *msg = expect(peer, AVP_INFO);
  char *text = zmsg_popstr(msg);
  zmsg_destroy(&msg);
  cJSON *json = text ? cJSON_Parse(text) : NULL;
  free(text);
  assert_non_null(json);
  return json;
}

static double number_at(const cJSON *json, const char *a, const char *b, const char *c)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, a);
  item = cJSON_GetObjectItemCaseSensitive(item, b);
  if (c)
    item = cJSON_GetObjectItemCaseSensitive(item, c);
  assert_true(cJSON_IsNumber(item));
  return item->valuedouble;
}

static void test_refuses_what_would_wait_past_the_deadline(void **state)
{
  fixture_t *f = *state;
  zsock_t *worker = peer_new(f);
  zsock_t *producer = peer_new(f);
  send_frames(worker, AVP_READY, "slow", "1", NULL);
  sleep_ms(100);

  /* One job through a 400 ms worker teaches the broker the stage's service time. */
  char reason[256] = "";
  uint64_t retry = 0;
  char *answer = submit_and_answer(producer, "warm", clock_wall_ms() + 10000, reason,
                                   sizeof reason, &retry);
  assert_string_equal(answer, AVP_ACK);
  free(answer);
  zmsg_t *job = expect(worker, AVP_JOB);
  zmsg_destroy(&job);
  sleep_ms(SERVICE_MS);
  send_frames(worker, AVP_DONE, "slow", "warm", NULL);
  sleep_ms(50);
  cJSON *figures = info(producer);
  double service_ms = number_at(figures, "stages", "slow", "service_ms");
  printf("# measured service time %.0f ms (worker sleeps %d ms)\n", service_ms, SERVICE_MS);
  assert_true(service_ms >= SERVICE_MS && service_ms < SERVICE_MS + 1000);
  cJSON_Delete(figures);

  /* Deadlines 2 s away leave 1 s of waiting (50%). The worker takes the first job
   * and holds it; each further one queues 400 ms more behind it. */
  int64_t deadline = clock_wall_ms() + 2000;
  int accepted = 0;
  bool refused = false;
  for (int i = 0; i < 6 && !refused; i++) {
    char job_id[16];
    snprintf(job_id, sizeof job_id, "j%d", i);
    int64_t asked = clock_mono_ms();
    answer = submit_and_answer(producer, job_id, deadline, reason, sizeof reason, &retry);
    int64_t answered_in = clock_mono_ms() - asked;
    if (!strcmp(answer, AVP_ACK))
      accepted++;
    else {
      assert_string_equal(answer, AVP_NACK);
      refused = true;
      printf("# %s refused in %" PRId64 " ms: %s (retry after %" PRIu64 " ms)\n", job_id,
             answered_in, reason, retry);
    }
    free(answer);
  }
  assert_true(refused);
  /* Waits of 0, 400 (in flight), 800, then 1200 > 1000: the fourth is refused, or the
   * fifth if the held job's remaining time shrank by 200 ms meanwhile. */
  assert_in_range(accepted, 3, 4);
  assert_non_null(strstr(reason, "would wait"));
  assert_in_range(retry, 1000, 2000);

  /* The same backlog is fine for a job with a longer deadline. */
  answer = submit_and_answer(producer, "patient", clock_wall_ms() + 60000, reason,
                             sizeof reason, &retry);
  assert_string_equal(answer, AVP_ACK);
  free(answer);
  figures = info(producer);
  assert_true(number_at(figures, "counters", "jobs_nacked_wait", NULL) == 1);
  assert_true(number_at(figures, "admission", "wait_ms", NULL) > 1000);
  assert_true(number_at(figures, "admission", "percent", NULL) == 50);
  cJSON_Delete(figures);

  zsock_destroy(&producer);
  zsock_destroy(&worker);
}

/* Before any DONE the service time is unknown; a job held for long already counts. */
static void test_first_job_counts_while_it_runs(void **state)
{
  fixture_t *f = *state;
  zsock_t *worker = peer_new(f);
  zsock_t *producer = peer_new(f);
  send_frames(worker, AVP_READY, "slow", "1", NULL);
  sleep_ms(100);
  char reason[256] = "";
  uint64_t retry = 0;
  char *answer =
    submit_and_answer(producer, "first", clock_wall_ms() + 10000, reason, sizeof reason, &retry);
  assert_string_equal(answer, AVP_ACK);
  free(answer);
  zmsg_t *job = expect(worker, AVP_JOB);
  zmsg_destroy(&job);
  sleep_ms(1200); /* the worker holds it */
  /* Deadlines 2 s away leave 1 s of waiting: nothing is queued yet for the second;
   * the third would wait behind it for at least the 1.2 s the first has taken. */
  int64_t deadline = clock_wall_ms() + 2000;
  answer = submit_and_answer(producer, "second", deadline, reason, sizeof reason, &retry);
  assert_string_equal(answer, AVP_ACK);
  free(answer);
  answer = submit_and_answer(producer, "third", deadline, reason, sizeof reason, &retry);
  assert_string_equal(answer, AVP_NACK);
  free(answer);
  send_frames(worker, AVP_DONE, "slow", "first", NULL);
  zsock_destroy(&producer);
  zsock_destroy(&worker);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_service_time_average),
    cmocka_unit_test(test_wait_sums_stages_per_worker),
    cmocka_unit_test(test_admits_within_share),
    cmocka_unit_test_setup_teardown(test_refuses_what_would_wait_past_the_deadline, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_first_job_counts_while_it_runs, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
