/* Broker tests: a real broker actor on loopback TCP, driven by raw DEALER sockets
 * speaking AVP1, so every frame the broker sees is one we chose. */
#include "broker.h"
#include "clock.h"
#include "pipeline.pb-c.h"
#include "protocol.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#define HEARTBEAT_MS 100

typedef struct {
  zactor_t *broker;
  char endpoint[128];
} fixture_t;

static int start_broker(void **state, size_t queue_max, uint32_t max_attempts, int heartbeat_ms,
                        int stage_timeout_ms, unsigned admit_percent)
{
  fixture_t *f = calloc(1, sizeof *f);
  broker_config_t cfg = {.queue_max = queue_max, .status_queue_max = 100,
                         .max_attempts = max_attempts, .heartbeat_ms = heartbeat_ms,
                         .max_payload = 4096, .stage_timeout_ms = stage_timeout_ms,
                         .admit_percent = admit_percent};
  snprintf(cfg.endpoint, sizeof cfg.endpoint, "tcp://127.0.0.1:*");
  f->broker = zactor_new(broker_actor, &cfg);
  zstr_send(f->broker, "ENDPOINT");
  char *endpoint = zstr_recv(f->broker);
  snprintf(f->endpoint, sizeof f->endpoint, "%s", endpoint);
  free(endpoint);
  *state = f;
  return f->endpoint[0] ? 0 : -1;
}

/* Admission by time off (0), except where it is the subject. */
static int setup(void **state) { return start_broker(state, 2, 2, HEARTBEAT_MS, 30000, 0); }
static int setup_one_attempt(void **state) { return start_broker(state, 10, 1, HEARTBEAT_MS, 30000, 0); }
/* For tests where several peers wait at once: none must look dead meanwhile. */
static int setup_slow_heartbeat(void **state) { return start_broker(state, 2, 2, 2000, 30000, 0); }
static int setup_stage_timeout(void **state) { return start_broker(state, 2, 2, 2000, 300, 0); }
/* A worker that sleeps while it "works" needs slow heartbeats too. */
static int setup_admission(void **state) { return start_broker(state, 100, 2, 2000, 30000, 50); }

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
  zsock_set_rcvtimeo(sock, 2000);
  return sock;
}

/* Sends [AVP1][frames...]; NULL ends the list. */
static void send_frames(zsock_t *sock, ...)
{
  zmsg_t *msg = zmsg_new();
  zmsg_addstr(msg, AVP_VERSION);
  va_list ap;
  va_start(ap, sock);
  const char *frame;
  while ((frame = va_arg(ap, const char *)))
    zmsg_addstr(msg, frame);
  va_end(ap);
  assert_int_equal(zmsg_send(&msg, sock), 0);
}

/* Receives one message, answering a heartbeat as a live peer does. Returns NULL on
 * timeout, sets *heartbeat for a heartbeat, else returns the message from the
 * command frame on. */
static zmsg_t *receive_one(zsock_t *sock, bool *heartbeat)
{
  *heartbeat = false;
  zmsg_t *msg = zmsg_recv(sock);
  if (!msg)
    return NULL;
  char *version = zmsg_popstr(msg);
  assert_string_equal(version, AVP_VERSION);
  free(version);
  if (zframe_streq(zmsg_first(msg), AVP_HEARTBEAT)) {
    *heartbeat = true;
    zmsg_destroy(&msg);
    send_frames(sock, AVP_HEARTBEAT, NULL);
  }
  return msg;
}

/* Receives the next message other than a heartbeat and checks its command. */
static zmsg_t *expect(zsock_t *sock, const char *command)
{
  bool heartbeat = true;
  zmsg_t *msg = NULL;
  while (!msg && heartbeat)
    msg = receive_one(sock, &heartbeat);
  if (!msg)
    fail_msg("no %s within the timeout", command);
  char *got = zmsg_popstr(msg);
  assert_string_equal(got, command);
  free(got);
  return msg;
}

/* True when nothing but heartbeats arrives within `ms`. */
static bool quiet_for(zsock_t *sock, int ms)
{
  int64_t until = clock_mono_ms() + ms;
  zmsg_t *msg = NULL;
  bool heartbeat;
  while (!msg && clock_mono_ms() < until) {
    zsock_set_rcvtimeo(sock, (int) (until - clock_mono_ms()) + 1);
    msg = receive_one(sock, &heartbeat);
  }
  zsock_set_rcvtimeo(sock, 2000);
  bool quiet = msg == NULL;
  zmsg_destroy(&msg);
  return quiet;
}

static char *deadline_in(int ms)
{
  static char text[32];
  snprintf(text, sizeof text, "%lld", (long long) (clock_wall_ms() + ms));
  return text;
}

static void submit(zsock_t *producer, const char *stage, const char *job_id, const char *payload)
{
  send_frames(producer, AVP_SUBMIT, stage, job_id, deadline_in(10000), payload, NULL);
}

static void expect_ack(zsock_t *producer, const char *job_id)
{
  zmsg_t *ack = expect(producer, AVP_ACK);
  char *id = zmsg_popstr(ack);
  assert_string_equal(id, job_id);
  free(id);
  zmsg_destroy(&ack);
}

/* Receives a JOB and checks stage, id and attempt; returns the payload. */
static char *expect_job(zsock_t *worker, const char *stage, const char *job_id, const char *attempt)
{
  zmsg_t *job = expect(worker, AVP_JOB);
  char *got_stage = zmsg_popstr(job), *id = zmsg_popstr(job), *got_attempt = zmsg_popstr(job);
  char *deadline = zmsg_popstr(job), *payload = zmsg_popstr(job);
  assert_string_equal(got_stage, stage);
  assert_string_equal(id, job_id);
  assert_string_equal(got_attempt, attempt);
  assert_true(strtoll(deadline, NULL, 10) > clock_wall_ms());
  free(got_stage);
  free(id);
  free(got_attempt);
  free(deadline);
  zmsg_destroy(&job);
  return payload;
}

static Avatar__Status *expect_status(zsock_t *consumer)
{
  zmsg_t *event = expect(consumer, AVP_EVENT);
  zframe_t *payload = zmsg_first(event);
  Avatar__Status *status =
    avatar__status__unpack(NULL, zframe_size(payload), zframe_data(payload));
  assert_non_null(status);
  zmsg_destroy(&event);
  return status;
}

static long info_counter(zsock_t *sock, const char *section, const char *stage, const char *name)
{
  send_frames(sock, AVP_INFO, NULL);
  zmsg_t *reply = expect(sock, AVP_INFO);
  char *json = zmsg_popstr(reply);
  cJSON *info = cJSON_Parse(json);
  cJSON *where = cJSON_GetObjectItem(info, section);
  if (stage)
    where = cJSON_GetObjectItem(where, stage);
  cJSON *item = cJSON_GetObjectItem(where, name);
  long value = cJSON_IsNumber(item) ? (long) item->valuedouble : -1;
  cJSON_Delete(info);
  free(json);
  zmsg_destroy(&reply);
  return value;
}

/* Asks INFO until `name` reaches `want` (messages from different peers are not
 * ordered with each other); returns the last value seen. */
static long wait_info(zsock_t *sock, const char *section, const char *stage, const char *name,
                      long want)
{
  long value = -1;
  for (int64_t until = clock_mono_ms() + 2000; clock_mono_ms() < until; zclock_sleep(10))
    if ((value = info_counter(sock, section, stage, name)) == want)
      break;
  return value;
}

static void test_job_flows_through_two_stages(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *stt = peer_new(f), *chat = peer_new(f);
  send_frames(stt, AVP_READY, "stt", "1", NULL);
  send_frames(chat, AVP_READY, "chat", "1", NULL);
  submit(producer, "stt", "job-1", "audio");
  expect_ack(producer, "job-1");

  char *payload = expect_job(stt, "stt", "job-1", "1");
  assert_string_equal(payload, "audio");
  free(payload);
  send_frames(stt, AVP_DONE, "stt", "job-1", "chat", deadline_in(5000), "transcript", NULL);
  payload = expect_job(chat, "chat", "job-1", "1");
  assert_string_equal(payload, "transcript");
  free(payload);
  send_frames(chat, AVP_DONE, "chat", "job-1", NULL);
  assert_int_equal(info_counter(producer, "stages", "chat", "idle"), 1);
  zsock_destroy(&producer);
  zsock_destroy(&stt);
  zsock_destroy(&chat);
}

static void test_one_job_per_idle_worker(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *worker = peer_new(f);
  send_frames(worker, AVP_READY, "tts", "1", NULL);
  submit(producer, "tts", "a", "1");
  expect_ack(producer, "a");
  submit(producer, "tts", "b", "2");
  expect_ack(producer, "b");
  free(expect_job(worker, "tts", "a", "1"));
  assert_true(quiet_for(worker, 300)); /* b waits: the worker has no credit */
  send_frames(worker, AVP_DONE, "tts", "a", NULL);
  free(expect_job(worker, "tts", "b", "1"));
  zsock_destroy(&producer);
  zsock_destroy(&worker);
}

/* The ready tts worker `tts` takes job `job_id` and hands its `count` sentences on to
 * avatar, the last with its DONE, as a streamed answer goes. */
static void stream_sentences(zsock_t *producer, zsock_t *tts, const char *job_id,
                             const char *const *sentences, size_t count)
{
  submit(producer, "tts", job_id, "reply");
  expect_ack(producer, job_id);
  free(expect_job(tts, "tts", job_id, "1"));
  char deadline[32];
  snprintf(deadline, sizeof deadline, "%s", deadline_in(10000));
  for (size_t i = 0; i < count; i++)
    send_frames(tts, i + 1 < count ? AVP_PARTIAL : AVP_DONE, "tts", job_id, "avatar", deadline,
                sentences[i], NULL);
}

/* Once a stage has finished a job's first entry, the job's later entries spread over
 * its free workers: sentences 1 and 2 render side by side after sentence 0. */
static void test_later_entries_of_a_job_side_by_side(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *tts = peer_new(f), *first = peer_new(f), *second = peer_new(f);
  send_frames(tts, AVP_READY, "tts", "1", NULL);
  const char *const sentences[] = {"sentence 0", "sentence 1", "sentence 2"};
  stream_sentences(producer, tts, "long", sentences, 3);
  assert_int_equal(wait_info(producer, "stages", "avatar", "queued", 3), 3);

  send_frames(first, AVP_READY, "avatar", "1", NULL);
  char *payload = expect_job(first, "avatar", "long", "1");
  assert_string_equal(payload, "sentence 0");
  free(payload);
  send_frames(second, AVP_READY, "avatar", "1", NULL);
  assert_true(quiet_for(second, 300));        /* sentence 1 waits for sentence 0 */
  assert_int_equal(wait_info(producer, "stages", "avatar", "started_jobs", 0), 0);
  send_frames(first, AVP_DONE, "avatar", "long", NULL);
  payload = expect_job(second, "avatar", "long", "1");
  assert_string_equal(payload, "sentence 1");
  free(payload);
  payload = expect_job(first, "avatar", "long", "1"); /* while second holds sentence 1 */
  assert_string_equal(payload, "sentence 2");
  free(payload);
  assert_int_equal(wait_info(producer, "stages", "avatar", "started_jobs", 1), 1);
  zsock_destroy(&producer);
  zsock_destroy(&tts);
  zsock_destroy(&first);
  zsock_destroy(&second);
}

/* A job's first entry at a stage goes alone: with two avatar workers, a streamed
 * answer's second sentence waits for its first while another job's entry takes the
 * other worker. */
static void test_one_entry_of_a_job_at_a_time(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *tts = peer_new(f), *first = peer_new(f), *second = peer_new(f);
  send_frames(tts, AVP_READY, "tts", "1", NULL);
  const char *const sentences[] = {"sentence 0", "sentence 1"}, *const other[] = {"other sentence"};
  stream_sentences(producer, tts, "long", sentences, 2);
  stream_sentences(producer, tts, "other", other, 1);
  assert_int_equal(wait_info(producer, "stages", "avatar", "queued", 3), 3);

  send_frames(first, AVP_READY, "avatar", "1", NULL);
  char *payload = expect_job(first, "avatar", "long", "1");
  assert_string_equal(payload, "sentence 0");
  free(payload);
  send_frames(second, AVP_READY, "avatar", "1", NULL);
  payload = expect_job(second, "avatar", "other", "1");  /* not "sentence 1" */
  assert_string_equal(payload, "other sentence");
  free(payload);
  send_frames(second, AVP_DONE, "avatar", "other", NULL);
  assert_true(quiet_for(second, 300));        /* sentence 1 still waits for sentence 0 */
  send_frames(first, AVP_DONE, "avatar", "long", NULL);
  bool first_got_it = !quiet_for(first, 300);
  zsock_t *taker = first_got_it ? first : second;
  payload = expect_job(taker, "avatar", "long", "1");
  assert_string_equal(payload, "sentence 1");
  free(payload);
  zsock_destroy(&producer);
  zsock_destroy(&tts);
  zsock_destroy(&first);
  zsock_destroy(&second);
}

static void test_full_queue_is_nacked(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f);
  submit(producer, "avatar", "1", "x");
  expect_ack(producer, "1");
  submit(producer, "avatar", "2", "x");
  expect_ack(producer, "2");
  submit(producer, "avatar", "3", "x");
  zmsg_t *nack = expect(producer, AVP_NACK);
  char *id = zmsg_popstr(nack), *reason = zmsg_popstr(nack);
  assert_string_equal(id, "3");
  assert_non_null(strstr(reason, "full"));
  free(id);
  free(reason);
  zmsg_destroy(&nack);
  assert_int_equal(info_counter(producer, "stages", "avatar", "queued"), 2);
  zsock_destroy(&producer);
}

/* The avatar stage is clogged (forwards are never refused): new jobs are refused at
 * the entrance, though their own first stage has room. */
static void test_full_later_stage_nacks_new_jobs(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *tts = peer_new(f);
  send_frames(tts, AVP_READY, "tts", "1", NULL);
  submit(producer, "tts", "long", "reply");
  expect_ack(producer, "long");
  free(expect_job(tts, "tts", "long", "1"));
  for (int segment = 0; segment < 3; segment++)
    send_frames(tts, AVP_PARTIAL, "tts", "long", "avatar", deadline_in(10000), "audio", NULL);
  assert_int_equal(wait_info(producer, "stages", "avatar", "queued", 3), 3);
  assert_int_equal(info_counter(producer, "stages", "avatar", "queued_bytes"), 3 * 5);
  submit(producer, "chat", "refused", "text");
  zmsg_t *nack = expect(producer, AVP_NACK);
  char *id = zmsg_popstr(nack), *reason = zmsg_popstr(nack);
  assert_string_equal(id, "refused");
  assert_non_null(strstr(reason, "avatar queue is full"));
  free(id);
  free(reason);
  zmsg_destroy(&nack);
  zsock_destroy(&producer);
  zsock_destroy(&tts);
}

static void test_past_deadline_is_nacked(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f);
  send_frames(producer, AVP_SUBMIT, "stt", "late", deadline_in(-1), "x", NULL);
  zmsg_t *nack = expect(producer, AVP_NACK);
  zmsg_destroy(&nack);
  zsock_destroy(&producer);
}

static void test_dead_worker_job_is_requeued(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *doomed = peer_new(f), *healthy = peer_new(f);
  send_frames(doomed, AVP_READY, "tts", "1", NULL);
  assert_true(quiet_for(doomed, 50)); /* doomed registers first and takes the job */
  submit(producer, "tts", "j", "text");
  expect_ack(producer, "j");
  free(expect_job(doomed, "tts", "j", "1"));
  send_frames(healthy, AVP_READY, "tts", "1", NULL);
  zsock_destroy(&doomed); /* silent from now on */
  char *payload = expect_job(healthy, "tts", "j", "2");
  assert_string_equal(payload, "text");
  free(payload);
  assert_int_equal(info_counter(producer, "counters", NULL, "jobs_requeued"), 1);
  assert_int_equal(info_counter(producer, "stages", "tts", "workers"), 1);
  zsock_destroy(&producer);
  zsock_destroy(&healthy);
}

static void test_attempt_limit_fails_job(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *doomed = peer_new(f), *gateway = peer_new(f);
  send_frames(gateway, AVP_READY, AVP_STATUS_STAGE, "10", NULL);
  send_frames(doomed, AVP_READY, "avatar", "1", NULL);
  submit(producer, "avatar", "crashy", "x");
  expect_ack(producer, "crashy");
  free(expect_job(doomed, "avatar", "crashy", "1"));
  zsock_destroy(&doomed);
  Avatar__Status *status = expect_status(gateway);
  assert_string_equal(status->job_id, "crashy");
  assert_int_equal(status->state, AVATAR__STATE__FAILED);
  assert_string_equal(status->stage, "avatar");
  assert_string_equal(status->error->code, "worker_lost");
  avatar__status__free_unpacked(status, NULL);
  zsock_destroy(&producer);
  zsock_destroy(&gateway);
}

static void test_deadline_fails_queued_job(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *gateway = peer_new(f);
  send_frames(gateway, AVP_READY, AVP_STATUS_STAGE, "10", NULL);
  send_frames(producer, AVP_SUBMIT, "chat", "slow", deadline_in(200), "x", NULL);
  expect_ack(producer, "slow");
  Avatar__Status *status = expect_status(gateway);
  assert_string_equal(status->job_id, "slow");
  assert_string_equal(status->error->code, "timeout");
  avatar__status__free_unpacked(status, NULL);
  assert_int_equal(info_counter(producer, "stages", "chat", "queued"), 0);
  zsock_destroy(&producer);
  zsock_destroy(&gateway);
}

static void test_deadline_fails_held_job_and_drops_its_result(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *gateway = peer_new(f), *worker = peer_new(f);
  zsock_t *next = peer_new(f);
  send_frames(gateway, AVP_READY, AVP_STATUS_STAGE, "10", NULL);
  send_frames(worker, AVP_READY, "tts", "1", NULL);
  send_frames(next, AVP_READY, "avatar", "1", NULL);
  char deadline[32];
  snprintf(deadline, sizeof deadline, "%s", deadline_in(250));
  send_frames(producer, AVP_SUBMIT, "tts", "stuck", deadline, "x", NULL);
  expect_ack(producer, "stuck");
  free(expect_job(worker, "tts", "stuck", "1"));
  Avatar__Status *status = expect_status(gateway);
  assert_string_equal(status->error->code, "timeout");
  avatar__status__free_unpacked(status, NULL);
  /* The worker finally answers, with the job's own (past) deadline: nothing moves on. */
  send_frames(worker, AVP_DONE, "tts", "stuck", "avatar", deadline, "late", NULL);
  assert_true(quiet_for(next, 300));
  zsock_destroy(&producer);
  zsock_destroy(&gateway);
  zsock_destroy(&worker);
  zsock_destroy(&next);
}

static void test_stage_timeout_fails_stuck_job(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *gateway = peer_new(f), *worker = peer_new(f);
  send_frames(gateway, AVP_READY, AVP_STATUS_STAGE, "10", NULL);
  send_frames(worker, AVP_READY, "avatar", "1", NULL);
  submit(producer, "avatar", "hung", "x"); /* the deadline is 10 s away */
  expect_ack(producer, "hung");
  free(expect_job(worker, "avatar", "hung", "1"));
  /* The worker stays alive (heartbeats) but never answers: the stage limit cuts it off. */
  int64_t started = clock_mono_ms();
  Avatar__Status *status = expect_status(gateway);
  assert_string_equal(status->job_id, "hung");
  assert_string_equal(status->error->code, "timeout");
  assert_non_null(strstr(status->error->message, "avatar"));
  assert_true(clock_mono_ms() - started < 5000);
  avatar__status__free_unpacked(status, NULL);
  zsock_destroy(&producer);
  zsock_destroy(&gateway);
  zsock_destroy(&worker);
}

static void send_status(zsock_t *sock, const char *job_id)
{
  Avatar__Status status = AVATAR__STATUS__INIT;
  status.job_id = (char *) job_id;
  status.state = AVATAR__STATE__RUNNING;
  uint8_t buf[64];
  size_t size = avatar__status__pack(&status, buf);
  zmsg_t *msg = zmsg_new();
  zmsg_addstr(msg, AVP_VERSION);
  zmsg_addstr(msg, AVP_STATUS);
  zmsg_addmem(msg, buf, size);
  assert_int_equal(zmsg_send(&msg, sock), 0);
}

static void test_cancel_drops_queued_entries_and_held_forwards(void **state)
{
  fixture_t *f = *state;
  zsock_t *producer = peer_new(f), *gateway = peer_new(f), *tts = peer_new(f);
  zsock_t *avatar = peer_new(f);
  send_frames(gateway, AVP_READY, AVP_STATUS_STAGE, "10", NULL);
  send_frames(tts, AVP_READY, "tts", "1", NULL);
  submit(producer, "tts", "cached", "reply");
  expect_ack(producer, "cached");
  free(expect_job(tts, "tts", "cached", "1"));
  submit(producer, "tts", "next", "reply");
  expect_ack(producer, "next");
  /* Sentence streaming: two segments of the held job wait for the avatar stage. */
  char deadline[32];
  snprintf(deadline, sizeof deadline, "%s", deadline_in(10000));
  send_frames(tts, AVP_PARTIAL, "tts", "cached", "avatar", deadline, "segment 0", NULL);
  send_frames(tts, AVP_PARTIAL, "tts", "cached", "avatar", deadline, "segment 1", NULL);
  assert_int_equal(wait_info(producer, "stages", "avatar", "queued", 2), 2);

  send_frames(producer, AVP_CANCEL, "cached", NULL); /* no reply */
  assert_int_equal(info_counter(producer, "stages", "avatar", "queued"), 0);
  assert_int_equal(info_counter(producer, "counters", NULL, "jobs_cancelled"), 1);

  /* The worker still holds it: what it hands on now goes nowhere. */
  send_frames(tts, AVP_PARTIAL, "tts", "cached", "avatar", deadline, "segment 2", NULL);
  send_status(tts, "cached");
  send_frames(tts, AVP_DONE, "tts", "cached", "avatar", deadline, "last", NULL);
  /* ... but DONE gave it its credit back. */
  free(expect_job(tts, "tts", "next", "1"));
  assert_int_equal(info_counter(producer, "counters", NULL, "cancelled_dropped"), 3);
  send_frames(avatar, AVP_READY, "avatar", "1", NULL);
  assert_true(quiet_for(avatar, 300));
  assert_true(quiet_for(gateway, 100)); /* no status event about the cancelled job */
  zsock_destroy(&producer);
  zsock_destroy(&gateway);
  zsock_destroy(&tts);
  zsock_destroy(&avatar);
}

static void test_status_events_reach_consumer(void **state)
{
  fixture_t *f = *state;
  zsock_t *worker = peer_new(f), *gateway = peer_new(f);
  send_frames(gateway, AVP_READY, AVP_STATUS_STAGE, "1", NULL);
  Avatar__Status sent = AVATAR__STATUS__INIT;
  sent.job_id = "s1";
  sent.state = AVATAR__STATE__RUNNING;
  uint8_t buf[64];
  size_t size = avatar__status__pack(&sent, buf);
  for (int i = 0; i < 2; i++) {
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, AVP_VERSION);
    zmsg_addstr(msg, AVP_STATUS);
    zmsg_addmem(msg, buf, size);
    zmsg_send(&msg, worker);
  }
  Avatar__Status *status = expect_status(gateway);
  assert_string_equal(status->job_id, "s1");
  avatar__status__free_unpacked(status, NULL);
  assert_true(quiet_for(gateway, 200)); /* credit 1 is spent */
  send_frames(gateway, AVP_READY, AVP_STATUS_STAGE, "1", NULL);
  status = expect_status(gateway);
  avatar__status__free_unpacked(status, NULL);
  zsock_destroy(&worker);
  zsock_destroy(&gateway);
}

static void test_unknown_peer_heartbeat_gets_disconnect(void **state)
{
  fixture_t *f = *state;
  zsock_t *stranger = peer_new(f);
  send_frames(stranger, AVP_HEARTBEAT, NULL);
  zmsg_t *msg = expect(stranger, AVP_DISCONNECT);
  zmsg_destroy(&msg);
  zsock_destroy(&stranger);
}

static void test_garbage_is_dropped_and_counted(void **state)
{
  fixture_t *f = *state;
  zsock_t *attacker = peer_new(f);
  zstr_send(attacker, "hello");                                  /* no version */
  zstr_sendx(attacker, "AVP9", AVP_READY, "stt", "1", NULL);     /* wrong version */
  send_frames(attacker, "EXPLODE", NULL);                        /* unknown command */
  send_frames(attacker, AVP_READY, NULL);                        /* missing frames */
  send_frames(attacker, AVP_READY, "bad stage!", "1", NULL);     /* bad name */
  send_frames(attacker, AVP_READY, "stt", "-1", NULL);           /* bad number */
  send_frames(attacker, AVP_SUBMIT, "stt", "x", "1", NULL);      /* no payload */
  send_frames(attacker, AVP_DONE, "status", "x", NULL);          /* status is not a job stage */
  send_frames(attacker, AVP_CANCEL, NULL);                       /* no job id */
  zmsg_t *big = zmsg_new();
  zmsg_addstr(big, AVP_VERSION);
  zmsg_addstr(big, AVP_SUBMIT);
  zmsg_addstr(big, "stt");
  zmsg_addstr(big, "big");
  zmsg_addstr(big, deadline_in(5000));
  zframe_t *huge = zframe_new(NULL, 8192);                       /* over max_payload */
  memset(zframe_data(huge), 'x', 8192);
  zmsg_append(big, &huge);
  zmsg_send(&big, attacker);
  zframe_t *binary = zframe_new("\x00\xff\x01", 3);
  zframe_send(&binary, attacker, 0);
  long dropped = info_counter(attacker, "counters", NULL, "frames_dropped");
  assert_true(dropped >= 9);
  /* Still serving. */
  zsock_t *producer = peer_new(f);
  submit(producer, "stt", "after", "x");
  expect_ack(producer, "after");
  zsock_destroy(&producer);
  zsock_destroy(&attacker);
}

/* ---- admission by time (services/broker/admission.c applied) ---- */

#define SERVICE_MS 400 /* what the admission tests' worker takes per job */

/* Submits a job for stage "slow" due at `deadline_ms` and returns the answer's
 * command ("ACK"/"NACK"); for a NACK also its reason and retry estimate. */
static char *submit_and_answer(zsock_t *producer, const char *job_id, int64_t deadline_ms,
                               char *reason, size_t reason_size, uint64_t *retry_after_ms)
{
  char deadline[24];
  snprintf(deadline, sizeof deadline, "%lld", (long long) deadline_ms);
  send_frames(producer, AVP_SUBMIT, "slow", job_id, deadline, "job", NULL);
  bool heartbeat = true;
  zmsg_t *msg = NULL;
  while (!msg && heartbeat)
    msg = receive_one(producer, &heartbeat);
  assert_non_null(msg);
  char *command = zmsg_popstr(msg);
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

/* `worker` joins stage "slow" and is handed `job_id`, submitted by `producer`. */
static void hand_out_first_job(zsock_t *worker, zsock_t *producer, const char *job_id)
{
  send_frames(worker, AVP_READY, "slow", "1", NULL);
  zclock_sleep(100);
  char reason[256] = "";
  uint64_t retry = 0;
  char *answer = submit_and_answer(producer, job_id, clock_wall_ms() + 10000, reason,
                                   sizeof reason, &retry);
  assert_string_equal(answer, AVP_ACK);
  free(answer);
  zmsg_t *job = expect(worker, AVP_JOB);
  zmsg_destroy(&job);
}

static void test_refuses_what_would_wait_past_the_deadline(void **state)
{
  fixture_t *f = *state;
  zsock_t *worker = peer_new(f);
  zsock_t *producer = peer_new(f);
  /* One job through a 400 ms worker teaches the broker the stage's service time. */
  hand_out_first_job(worker, producer, "warm");
  zclock_sleep(SERVICE_MS);
  send_frames(worker, AVP_DONE, "slow", "warm", NULL);
  zclock_sleep(50);
  long service_ms = info_counter(producer, "stages", "slow", "service_ms");
  printf("# measured service time %ld ms (worker sleeps %d ms)\n", service_ms, SERVICE_MS);
  assert_true(service_ms >= SERVICE_MS && service_ms < SERVICE_MS + 1000);

  /* Deadlines 2 s away leave 1 s of waiting (50%). The worker takes the first job
   * and holds it; each further one queues 400 ms more behind it. */
  char reason[256] = "";
  uint64_t retry = 0;
  char *answer;
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
  assert_int_equal(info_counter(producer, "counters", NULL, "jobs_nacked_wait"), 1);
  assert_true(info_counter(producer, "admission", NULL, "wait_ms") > 1000);
  assert_int_equal(info_counter(producer, "admission", NULL, "percent"), 50);

  zsock_destroy(&producer);
  zsock_destroy(&worker);
}

/* Before any DONE the service time is unknown; a job held for long already counts. */
static void test_first_job_counts_while_it_runs(void **state)
{
  fixture_t *f = *state;
  zsock_t *worker = peer_new(f);
  zsock_t *producer = peer_new(f);
  hand_out_first_job(worker, producer, "first");
  zclock_sleep(1200); /* the worker holds it */
  char reason[256] = "";
  uint64_t retry = 0;
  char *answer;
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
    cmocka_unit_test_setup_teardown(test_job_flows_through_two_stages, setup, teardown),
    cmocka_unit_test_setup_teardown(test_one_job_per_idle_worker, setup, teardown),
    cmocka_unit_test_setup_teardown(test_one_entry_of_a_job_at_a_time, setup_one_attempt, teardown),
    cmocka_unit_test_setup_teardown(test_later_entries_of_a_job_side_by_side,
                                    setup_slow_heartbeat, teardown),
    cmocka_unit_test_setup_teardown(test_full_queue_is_nacked, setup, teardown),
    cmocka_unit_test_setup_teardown(test_full_later_stage_nacks_new_jobs, setup_slow_heartbeat,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_past_deadline_is_nacked, setup, teardown),
    cmocka_unit_test_setup_teardown(test_dead_worker_job_is_requeued, setup, teardown),
    cmocka_unit_test_setup_teardown(test_attempt_limit_fails_job, setup_one_attempt, teardown),
    cmocka_unit_test_setup_teardown(test_deadline_fails_queued_job, setup, teardown),
    cmocka_unit_test_setup_teardown(test_deadline_fails_held_job_and_drops_its_result,
                                    setup_slow_heartbeat, teardown),
    cmocka_unit_test_setup_teardown(test_stage_timeout_fails_stuck_job, setup_stage_timeout,
                                    teardown),
    cmocka_unit_test_setup_teardown(test_cancel_drops_queued_entries_and_held_forwards,
                                    setup_slow_heartbeat, teardown),
    cmocka_unit_test_setup_teardown(test_status_events_reach_consumer, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unknown_peer_heartbeat_gets_disconnect, setup, teardown),
    cmocka_unit_test_setup_teardown(test_garbage_is_dropped_and_counted, setup, teardown),
    cmocka_unit_test_setup_teardown(test_refuses_what_would_wait_past_the_deadline,
                                    setup_admission, teardown),
    cmocka_unit_test_setup_teardown(test_first_job_counts_while_it_runs, setup_admission,
                                    teardown),
  };
  return cmocka_run_group_tests_name("broker", tests, NULL, NULL);
}
