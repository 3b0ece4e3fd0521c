/* Messaging tests: the worker and broker_client classes against a real broker actor
 * on loopback TCP — the path every job takes — including a broker restart, a dead
 * broker, a broker that never answers while many callers wait at once, and a
 * worker whose backend hangs. */
#include "broker.h"
#include "broker_client.h"
#include "clock.h"
#include "pipeline.pb-c.h"
#include "protocol.h"
#include "worker.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- fixtures */

typedef struct {
  pthread_mutex_t lock;
  Avatar__State last_state;
  char last_job[64];
  char last_code[32];
  int events;
} status_log_t;

static void on_status(void *arg, const uint8_t *data, size_t size)
{
  status_log_t *log = arg;
  Avatar__Status *status = avatar__status__unpack(NULL, size, data);
  if (!status)
    return;
  pthread_mutex_lock(&log->lock);
  log->events++;
  log->last_state = status->state;
  snprintf(log->last_job, sizeof log->last_job, "%s", status->job_id);
  snprintf(log->last_code, sizeof log->last_code, "%s", status->error ? status->error->code : "");
  pthread_mutex_unlock(&log->lock);
  avatar__status__free_unpacked(status, NULL);
}

/* Waits up to `ms` for a status event about `job_id`; returns its state. */
static Avatar__State wait_status(status_log_t *log, const char *job_id, int ms)
{
  int64_t until = clock_mono_ms() + ms;
  while (clock_mono_ms() < until) {
    pthread_mutex_lock(&log->lock);
    bool seen = log->events && !strcmp(log->last_job, job_id);
    Avatar__State state = log->last_state;
    pthread_mutex_unlock(&log->lock);
    if (seen)
      return state;
    zclock_sleep(20);
  }
  return AVATAR__STATE__STATE_UNKNOWN;
}

static char endpoint[64];

/* Starts a broker at `endpoint`; NULL when it cannot bind within 5 s. */
static zactor_t *broker_try_start(broker_config_t *cfg)
{
  snprintf(cfg->endpoint, sizeof cfg->endpoint, "%s", endpoint);
  /* libzmq releases a port in its I/O thread after the socket closes: when a
   * broker restarts at the same address, the bind may need a moment. */
  for (int tries = 0; tries < 50; tries++) {
    zactor_t *broker = zactor_new(broker_actor, cfg);
    if (!broker)
      return NULL;
    zstr_send(broker, "ENDPOINT");
    char *bound = zstr_recv(broker);
    bool ok = bound && *bound;
    free(bound);
    if (ok)
      return broker;
    zactor_destroy(&broker);
    zclock_sleep(100);
  }
  return NULL;
}

static zactor_t *broker_start_with(broker_config_t *cfg)
{
  zactor_t *broker = broker_try_start(cfg);
  if (!broker)
    fail_msg("cannot bind %s", endpoint);
  return broker;
}

static broker_config_t default_config(size_t queue_max)
{
  return (broker_config_t){.queue_max = queue_max, .status_queue_max = 100, .max_attempts = 2,
                           .heartbeat_ms = 1000, .max_payload = 1 << 20,
                           .stage_timeout_ms = 30000};
}

static zactor_t *broker_start(size_t queue_max)
{
  broker_config_t cfg = default_config(queue_max);
  return broker_start_with(&cfg);
}

static int pick_endpoint(void **state)
{
  (void) state;
  /* A fixed port per test, so a restarted broker comes back at the same address;
   * below Linux's ephemeral range (32768+), where outgoing connections take ports. */
  static int test_number;
  snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d",
           10000 + (int) (getpid() % 2000) * 10 + test_number++);
  return 0;
}

static int64_t in_ms(int ms) { return clock_wall_ms() + ms; }

/* ---------------------------------------------------------------- tests */

static void test_job_and_status_round_trip(void **state)
{
  (void) state;
  zactor_t *broker = broker_start(10);
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  worker_t *stt = worker_new(endpoint, "stt");
  worker_t *chat = worker_new(endpoint, "chat");
  assert_non_null(client);
  assert_non_null(stt);
  assert_non_null(chat);

  char reason[64];
  assert_int_equal(broker_client_submit(client, "stt", "j1", in_ms(10000),
                                        (const uint8_t *) "audio", 5, 2000, reason, sizeof reason, NULL),
                   BROKER_ACK);
  worker_job_t *job = worker_next(stt);
  assert_non_null(job);
  assert_string_equal(job->id, "j1");
  assert_int_equal(job->attempt, 1);
  assert_memory_equal(job->payload, "audio", 5);

  Avatar__Status status = AVATAR__STATUS__INIT;
  status.job_id = "j1";
  status.state = AVATAR__STATE__RUNNING;
  uint8_t packed[64];
  size_t size = avatar__status__pack(&status, packed);
  assert_int_equal(worker_status(stt, packed, size), 0);
  assert_int_equal(wait_status(&log, "j1", 3000), AVATAR__STATE__RUNNING);

  assert_int_equal(worker_done(stt, &job, "chat", (const uint8_t *) "text", 4), 0);
  assert_null(job);
  job = worker_next(chat);
  assert_non_null(job);
  assert_memory_equal(job->payload, "text", 4);
  assert_int_equal(worker_done(chat, &job, NULL, NULL, 0), 0);

  cJSON *info = broker_client_info(client, 2000);
  assert_non_null(info);
  cJSON *workers = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(info, "stages"),
                                                           "chat"), "workers");
  assert_int_equal((int) workers->valuedouble, 1);
  cJSON_Delete(info);

  worker_destroy(&stt);
  worker_destroy(&chat);
  broker_client_destroy(&client);
  zactor_destroy(&broker);
}

static void test_full_queue_is_refused(void **state)
{
  (void) state;
  zactor_t *broker = broker_start(1);
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  char reason[128];
  assert_int_equal(broker_client_submit(client, "tts", "a", in_ms(10000), (const uint8_t *) "x",
                                        1, 2000, reason, sizeof reason, NULL),
                   BROKER_ACK);
  assert_int_equal(broker_client_submit(client, "tts", "b", in_ms(10000), (const uint8_t *) "x",
                                        1, 2000, reason, sizeof reason, NULL),
                   BROKER_NACK_FULL);
  assert_non_null(strstr(reason, "full"));
  broker_client_destroy(&client);
  zactor_destroy(&broker);
}

static void test_no_broker_is_unavailable(void **state)
{
  (void) state;
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  char reason[64];
  assert_int_equal(broker_client_submit(client, "stt", "lost", in_ms(10000),
                                        (const uint8_t *) "x", 1, 300, reason, sizeof reason, NULL),
                   BROKER_UNAVAILABLE);
  assert_null(broker_client_info(client, 200));
  broker_client_destroy(&client);
}

static void test_open_jobs_survive_a_broker_restart(void **state)
{
  (void) state;
  zactor_t *broker = broker_start(10);
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  char reason[64];
  assert_int_equal(broker_client_submit(client, "avatar", "keep", in_ms(20000),
                                        (const uint8_t *) "x", 1, 2000, reason, sizeof reason, NULL),
                   BROKER_ACK);
  zactor_destroy(&broker); /* the queued job dies with it */
  broker = broker_start(10);
  worker_t *avatar = worker_new(endpoint, "avatar");
  worker_job_t *job = worker_next(avatar); /* the client handed it over again */
  assert_non_null(job);
  assert_string_equal(job->id, "keep");
  worker_done(avatar, &job, NULL, NULL, 0);
  worker_destroy(&avatar);
  broker_client_destroy(&client);
  zactor_destroy(&broker);
}

static void test_job_fails_when_broker_stays_dead(void **state)
{
  (void) state;
  zactor_t *broker = broker_start(10);
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  char reason[64];
  assert_int_equal(broker_client_submit(client, "stt", "orphan", in_ms(300),
                                        (const uint8_t *) "x", 1, 2000, reason, sizeof reason, NULL),
                   BROKER_ACK);
  zactor_destroy(&broker);
  assert_int_equal(wait_status(&log, "orphan", 5000), AVATAR__STATE__FAILED);
  pthread_mutex_lock(&log.lock);
  assert_string_equal(log.last_code, "timeout");
  pthread_mutex_unlock(&log.lock);
  broker_client_destroy(&client);
}

/* ---------------------------------------------------------------- concurrent callers */

#define CALLERS 8

typedef struct {
  broker_client_t *client;
  int index;
  int timeout_ms;
  bool info;                       /* ask INFO instead of submitting */
  broker_submit_result_t result;
  bool answered;                   /* INFO: got figures */
  int64_t took_ms;
} caller_t;

static void *caller_run(void *arg)
{
  caller_t *caller = arg;
  int64_t started = clock_mono_ms();
  if (caller->info) {
    cJSON *info = broker_client_info(caller->client, caller->timeout_ms);
    caller->answered = info != NULL;
    cJSON_Delete(info);
  } else {
    char job_id[32], reason[128];
    snprintf(job_id, sizeof job_id, "concurrent-%d", caller->index);
    caller->result = broker_client_submit(caller->client, "stt", job_id, in_ms(10000),
                                          (const uint8_t *) "x", 1, caller->timeout_ms, reason,
                                          sizeof reason, NULL);
  }
  caller->took_ms = clock_mono_ms() - started;
  return NULL;
}

/* Runs CALLERS callers at once (the last `infos` of them ask INFO); returns the
 * wall time until all of them returned. */
static int64_t run_callers(broker_client_t *client, caller_t *callers, int infos, int timeout_ms)
{
  pthread_t threads[CALLERS];
  int64_t started = clock_mono_ms();
  for (int i = 0; i < CALLERS; i++) {
    callers[i] = (caller_t){.client = client, .index = i, .timeout_ms = timeout_ms,
                            .info = i >= CALLERS - infos, .result = -1};
    assert_int_equal(pthread_create(&threads[i], NULL, caller_run, &callers[i]), 0);
  }
  for (int i = 0; i < CALLERS; i++)
    assert_int_equal(pthread_join(threads[i], NULL), 0);
  return clock_mono_ms() - started;
}

/* A broker that takes connections but never answers (frozen, e.g. SIGSTOP): every
 * caller gets BROKER_UNAVAILABLE after its own timeout, not after everyone's. */
static void test_silent_broker_costs_each_caller_its_own_timeout(void **state)
{
  (void) state;
  zsock_t *silent = zsock_new_router(endpoint);
  assert_non_null(silent);
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  assert_non_null(client);
  enum { TIMEOUT_MS = 300 };
  caller_t callers[CALLERS];
  int64_t took = run_callers(client, callers, 2, TIMEOUT_MS);
  printf("# %d callers, %d ms timeout each, silent broker: all back in %lld ms\n", CALLERS,
         TIMEOUT_MS, (long long) took);
  for (int i = 0; i < CALLERS; i++) {
    if (callers[i].info)
      assert_false(callers[i].answered);
    else
      assert_int_equal(callers[i].result, BROKER_UNAVAILABLE);
    assert_true(callers[i].took_ms >= TIMEOUT_MS - 5);
  }
  /* One after the other they would need CALLERS * TIMEOUT_MS = 2400 ms. */
  assert_true(took < CALLERS * TIMEOUT_MS * 3 / 4);
  broker_client_destroy(&client);
  zsock_destroy(&silent);
}

static void test_concurrent_submits_are_all_acked(void **state)
{
  (void) state;
  zactor_t *broker = broker_start(CALLERS);
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  assert_non_null(client);
  caller_t callers[CALLERS];
  int64_t took = run_callers(client, callers, 0, 5000);
  printf("# %d concurrent submits acked in %lld ms\n", CALLERS, (long long) took);
  for (int i = 0; i < CALLERS; i++)
    assert_int_equal(callers[i].result, BROKER_ACK);
  /* Each ACK went to its own caller, and the broker holds every job once. */
  took = run_callers(client, callers, CALLERS, 5000);
  for (int i = 0; i < CALLERS; i++)
    assert_true(callers[i].answered);
  cJSON *info = broker_client_info(client, 2000);
  cJSON *queued = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(info, "stages"),
                                                          "stt"), "queued");
  assert_non_null(queued);
  assert_int_equal((int) queued->valuedouble, CALLERS);
  cJSON_Delete(info);
  broker_client_destroy(&client);
  zactor_destroy(&broker);
}

static void test_cancelled_job_is_not_dispatched(void **state)
{
  (void) state;
  zactor_t *broker = broker_start(10);
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  assert_non_null(client);
  char reason[64];
  assert_int_equal(broker_client_submit(client, "chat", "cached", in_ms(10000),
                                        (const uint8_t *) "x", 1, 2000, reason, sizeof reason, NULL),
                   BROKER_ACK);
  assert_int_equal(broker_client_submit(client, "chat", "wanted", in_ms(10000),
                                        (const uint8_t *) "y", 1, 2000, reason, sizeof reason, NULL),
                   BROKER_ACK);
  assert_int_equal(broker_client_cancel(client, "cached"), 0);
  /* INFO travels the same connection after the CANCEL, so it sees its effect. */
  cJSON *info = broker_client_info(client, 2000);
  cJSON *counters = cJSON_GetObjectItem(info, "counters");
  assert_int_equal((int) cJSON_GetObjectItem(counters, "jobs_cancelled")->valuedouble, 1);
  cJSON *chat_stage = cJSON_GetObjectItem(cJSON_GetObjectItem(info, "stages"), "chat");
  assert_int_equal((int) cJSON_GetObjectItem(chat_stage, "queued")->valuedouble, 1);
  cJSON_Delete(info);
  worker_t *chat = worker_new(endpoint, "chat");
  worker_job_t *job = worker_next(chat);
  assert_non_null(job);
  assert_string_equal(job->id, "wanted");
  assert_int_equal(worker_done(chat, &job, NULL, NULL, 0), 0);
  worker_destroy(&chat);
  broker_client_destroy(&client);
  zactor_destroy(&broker);
}

/* Workers of `stage` the broker counts, asked through `client`; -1 without answer. */
static int stage_workers(broker_client_t *client, const char *stage)
{
  cJSON *info = broker_client_info(client, 500);
  cJSON *workers = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(info, "stages"),
                                                           stage), "workers");
  int count = cJSON_IsNumber(workers) ? (int) workers->valuedouble : -1;
  cJSON_Delete(info);
  return count;
}

static int64_t process_cpu_ms(void)
{
  struct timespec used;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
  return (int64_t) used.tv_sec * 1000 + used.tv_nsec / 1000000;
}

/* Client and worker start while the broker is down and outlast their liveness
 * (3 s), so each replaces its socket at least once before the broker comes: both
 * must then hear it (a poller left on the closed socket used to spin deaf). */
static void test_peers_join_a_broker_that_comes_late(void **state)
{
  (void) state;
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  worker_t *tts = worker_new(endpoint, "tts");
  assert_non_null(client);
  assert_non_null(tts);
  int64_t cpu_before = process_cpu_ms();
  zclock_sleep(AVP_LIVENESS * AVP_HEARTBEAT_MS + 500);
  printf("# CPU while waiting %d ms for the broker: %lld ms\n",
         AVP_LIVENESS * AVP_HEARTBEAT_MS + 500, (long long) (process_cpu_ms() - cpu_before));
  zactor_t *broker = broker_start(10);
  int workers = -1;
  for (int64_t until = clock_mono_ms() + 5000; workers != 1 && clock_mono_ms() < until;)
    if ((workers = stage_workers(client, "tts")) != 1)
      zclock_sleep(100);
  assert_int_equal(workers, 1);
  char reason[64];
  assert_int_equal(broker_client_submit(client, "tts", "late", in_ms(10000),
                                        (const uint8_t *) "x", 1, 2000, reason, sizeof reason, NULL),
                   BROKER_ACK);
  worker_job_t *job = worker_next(tts);
  assert_non_null(job);
  assert_string_equal(job->id, "late");
  assert_int_equal(worker_done(tts, &job, NULL, NULL, 0), 0);
  worker_destroy(&tts);
  broker_client_destroy(&client);
  zactor_destroy(&broker);
}

static void use_keys(const char *server, const char *public_key, const char *secret_key)
{
  setenv("CURVE_SERVER_KEY", server, 1);
  setenv("CURVE_PUBLIC_KEY", public_key, 1);
  setenv("CURVE_SECRET_KEY", secret_key, 1);
}

static void test_curve_keeps_out_unknown_keys(void **state)
{
  (void) state;
  char broker_public[41], broker_secret[41], good_public[41], good_secret[41];
  char bad_public[41], bad_secret[41];
  assert_int_equal(zmq_curve_keypair(broker_public, broker_secret), 0);
  assert_int_equal(zmq_curve_keypair(good_public, good_secret), 0);
  assert_int_equal(zmq_curve_keypair(bad_public, bad_secret), 0);
  broker_config_t cfg = default_config(10);
  snprintf(cfg.curve_secret, sizeof cfg.curve_secret, "%s", broker_secret);
  snprintf(cfg.curve_clients, sizeof cfg.curve_clients, "%s", good_public);
  zactor_t *broker = broker_start_with(&cfg);

  use_keys(broker_public, good_public, good_secret);
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  worker_t *good = worker_new(endpoint, "tts");
  use_keys(broker_public, bad_public, bad_secret);
  worker_t *intruder = worker_new(endpoint, "tts");
  unsetenv("CURVE_SERVER_KEY");
  worker_t *plain = worker_new(endpoint, "tts");
  assert_non_null(client);

  char reason[64];
  assert_int_equal(broker_client_submit(client, "tts", "secret", in_ms(10000),
                                        (const uint8_t *) "x", 1, 2000, reason, sizeof reason, NULL),
                   BROKER_ACK);
  worker_job_t *job = worker_next(good);
  assert_non_null(job);
  worker_done(good, &job, NULL, NULL, 0);
  cJSON *info = broker_client_info(client, 2000);
  cJSON *workers = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(info, "stages"),
                                                           "tts"), "workers");
  assert_non_null(workers);
  assert_int_equal((int) workers->valuedouble, 1); /* neither the intruder nor the plain one */
  cJSON_Delete(info);

  worker_destroy(&plain);
  worker_destroy(&intruder);
  worker_destroy(&good);
  broker_client_destroy(&client);
  zactor_destroy(&broker);
  unsetenv("CURVE_PUBLIC_KEY");
  unsetenv("CURVE_SECRET_KEY");
}

/* In a child process: a worker whose "backend" never returns must exit by itself. */
static void hang_in_child(void)
{
  setenv("STAGE_TIMEOUT_MS", "200", 1);
  setenv("WORKER_HANG_GRACE_MS", "200", 1);
  broker_config_t cfg = default_config(10);
  zactor_t *broker = broker_try_start(&cfg); /* no cmocka asserts in the child */
  if (!broker)
    _exit(4);
  status_log_t log = {.lock = PTHREAD_MUTEX_INITIALIZER};
  broker_client_t *client = broker_client_new(endpoint, on_status, &log);
  worker_t *tts = worker_new(endpoint, "tts");
  (void) broker; /* never destroyed: the process ends by _exit */
  char reason[64];
  broker_client_submit(client, "tts", "stuck", in_ms(60000), (const uint8_t *) "x", 1, 2000,
                       reason, sizeof reason, NULL);
  worker_job_t *job = worker_next(tts);
  if (!job)
    _exit(2);
  zclock_sleep(10000); /* the hung backend */
  _exit(3);
}

static void test_hung_worker_exits(void **state)
{
  (void) state;
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0)
    hang_in_child();
  int status = 0;
  int64_t until = clock_mono_ms() + 8000;
  pid_t done = 0;
  while (!done && clock_mono_ms() < until) {
    done = waitpid(child, &status, WNOHANG);
    zclock_sleep(50);
  }
  if (!done) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    fail_msg("the hung worker did not exit");
  }
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 70);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    /* First: it forks, and ZeroMQ contexts must not exist yet when a process forks. */
    cmocka_unit_test_setup(test_hung_worker_exits, pick_endpoint),
    cmocka_unit_test_setup(test_job_and_status_round_trip, pick_endpoint),
    cmocka_unit_test_setup(test_full_queue_is_refused, pick_endpoint),
    cmocka_unit_test_setup(test_no_broker_is_unavailable, pick_endpoint),
    cmocka_unit_test_setup(test_open_jobs_survive_a_broker_restart, pick_endpoint),
    cmocka_unit_test_setup(test_job_fails_when_broker_stays_dead, pick_endpoint),
    cmocka_unit_test_setup(test_curve_keeps_out_unknown_keys, pick_endpoint),
    cmocka_unit_test_setup(test_silent_broker_costs_each_caller_its_own_timeout, pick_endpoint),
    cmocka_unit_test_setup(test_concurrent_submits_are_all_acked, pick_endpoint),
    cmocka_unit_test_setup(test_cancelled_job_is_not_dispatched, pick_endpoint),
    cmocka_unit_test_setup(test_peers_join_a_broker_that_comes_late, pick_endpoint),
  };
  return cmocka_run_group_tests_name("messaging", tests, NULL, NULL);
}
