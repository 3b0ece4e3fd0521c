/* worker: the replica side of the AVP1 protocol (docs/protocol.md).
 *
 * Two threads: the caller's, which runs jobs, and a czmq actor, which owns the
 * DEALER socket. They talk over the actor pipe:
 *   actor -> caller: [job_id][attempt][deadline_ms][payload]   one dispatched job
 *   caller -> actor: a complete AVP1 message to pass to the broker
 * Keeping the socket on its own thread is what lets heartbeats flow while a
 * render takes seconds. */
#include "worker.h"

#include "clock.h"
#include "config.h"
#include "counters.h"
#include "log.h"
#include "protocol.h"
#include "curve.h"

#include <czmq.h>
#include <string.h>
#include <unistd.h>

struct worker {
  zactor_t *actor;
  char stage[AVP_STAGE_MAX];
};

typedef struct {
  char endpoint[256];
  char stage[AVP_STAGE_MAX];
} worker_args_t;

typedef struct {
  worker_args_t args;
  zsock_t *pipe;
  zsock_t *dealer;
  unsigned dealer_generation;  /* counts link_connect()s: a new socket may reuse the
                                  old one's address, so pointers cannot tell them apart */
  bool busy;
  char job_id[AVP_JOB_ID_MAX];
  int64_t job_deadline_ms;
  int64_t busy_since;          /* monotonic ms when the current job arrived */
  int64_t stage_timeout_ms;
  int64_t hang_grace_ms;
  int64_t broker_expiry;       /* monotonic: broker presumed dead after this */
  int64_t heartbeat_at;
} link_t;

/* ---------------------------------------------------------------- actor */

static void link_send(link_t *self, zmsg_t **msg_p)
{
  if (*msg_p && zmsg_send(msg_p, self->dealer) != 0)
    zmsg_destroy(msg_p);
}

static void link_send_ready(link_t *self)
{
  zmsg_t *msg = avp_msg_new(AVP_READY);
  if (msg && (zmsg_addstr(msg, self->args.stage) || avp_add_uint(msg, 1)))
    zmsg_destroy(&msg);
  link_send(self, &msg);
}

/* (Re)creates the DEALER. A new socket re-resolves the broker's host name, which
 * matters when the broker's pod moved to another address. */
static bool link_connect(link_t *self)
{
  zsock_destroy(&self->dealer);
  self->dealer = zsock_new(ZMQ_DEALER);
  self->dealer_generation++;
  if (!self->dealer)
    return false;
  zsock_set_linger(self->dealer, 500);
  /* A DEALER with no live connection (broker down, handshake refused) blocks on
   * send; a bounded wait keeps this thread answering its owner. */
  zsock_set_sndtimeo(self->dealer, 1000);
  if (curve_apply_client(self->dealer) != 0) {
    zsock_destroy(&self->dealer);
    return false;
  }
  zsock_set_maxmsgsize(self->dealer, (int64_t) config_long("BROKER_MAX_MSG_BYTES", 32L << 20,
                                                           1024, 1L << 30) + 65536);
  if (zsock_connect(self->dealer, "%s", self->args.endpoint) != 0) {
    log_msg(LOG_ERROR, "connect_failed", "cannot connect to %s", self->args.endpoint);
    return false;
  }
  self->broker_expiry = clock_mono_ms() + (int64_t) AVP_LIVENESS * AVP_HEARTBEAT_MS;
  /* While a job runs, its DONE re-registers us; a READY now would invite a second job. */
  if (!self->busy)
    link_send_ready(self);
  return true;
}

static void on_broker_job(link_t *self, zmsg_t *msg)
{
  char stage[AVP_STAGE_MAX], job_id[AVP_JOB_ID_MAX];
  uint64_t attempt, deadline;
  if (!avp_pop_name(msg, stage, sizeof stage) || !avp_pop_name(msg, job_id, sizeof job_id) ||
      !avp_pop_uint(msg, &attempt) || !avp_pop_uint(msg, &deadline) || zmsg_size(msg) != 1 ||
      strcmp(stage, self->args.stage) != 0) {
    log_msg(LOG_WARN, "frame_dropped", "malformed JOB from broker");
    return;
  }
  zmsg_t *out = zmsg_new();
  zframe_t *payload = zmsg_pop(msg);
  if (!out || zmsg_addstr(out, job_id) || avp_add_uint(out, attempt) ||
      avp_add_uint(out, deadline) || zmsg_append(out, &payload) || zmsg_send(&out, self->pipe)) {
    zframe_destroy(&payload);
    zmsg_destroy(&out);
    return;
  }
  self->busy = true;
  self->busy_since = clock_mono_ms();
  snprintf(self->job_id, sizeof self->job_id, "%s", job_id);
  self->job_deadline_ms = (int64_t) deadline;
}

static void on_broker(link_t *self)
{
  zmsg_t *msg = zmsg_recv(self->dealer);
  if (!msg)
    return;
  self->broker_expiry = clock_mono_ms() + (int64_t) AVP_LIVENESS * AVP_HEARTBEAT_MS;
  char version[8], command[16];
  if (avp_pop_name(msg, version, sizeof version) && strcmp(version, AVP_VERSION) == 0 &&
      avp_pop_name(msg, command, sizeof command)) {
    if (!strcmp(command, AVP_JOB))
      on_broker_job(self, msg);
    else if (!strcmp(command, AVP_DISCONNECT) && !self->busy)
      link_send_ready(self); /* the broker restarted and forgot us */
  }
  zmsg_destroy(&msg);
}

/* Returns false on $TERM. */
static bool on_caller(link_t *self)
{
  zmsg_t *msg = zmsg_recv(self->pipe);
  if (!msg)
    return zmq_errno() != ETERM; /* a signal (EINTR) is no reason to stop */
  char *first = zmsg_popstr(msg);
  bool term = first && !strcmp(first, "$TERM");
  if (!term && first && !strcmp(first, AVP_VERSION)) {
    char *command = zmsg_popstr(msg);
    if (command && !strcmp(command, AVP_DONE))
      self->busy = false;
    if (command && zmsg_pushstr(msg, command) == 0 && zmsg_pushstr(msg, AVP_VERSION) == 0)
      link_send(self, &msg);
    free(command);
  }
  free(first);
  zmsg_destroy(&msg);
  return !term;
}

static void on_timer(link_t *self)
{
  int64_t now = clock_mono_ms();
  bool hung = self->busy && self->hang_grace_ms &&
              (now - self->busy_since > self->stage_timeout_ms + self->hang_grace_ms ||
               clock_wall_ms() > self->job_deadline_ms + self->hang_grace_ms);
  if (hung) {
    /* The backend is stuck in a call we cannot interrupt. The broker has already
     * failed the job (stage timeout or deadline); exiting lets the supervisor start
     * a fresh replica instead of keeping one that answers heartbeats but no jobs. */
    log_msg(LOG_ERROR, "worker_hung", "job %s has run %lld ms; exiting so a fresh %s starts",
            self->job_id, (long long) (now - self->busy_since), self->args.stage);
    _exit(70);
  }
  if (now >= self->heartbeat_at) {
    /* Heartbeats carry this process's counters, which reach /metrics via INFO. */
    zmsg_t *msg = avp_msg_new(AVP_HEARTBEAT);
    cJSON *counters = counters_snapshot();
    char *json = counters ? cJSON_PrintUnformatted(counters) : NULL;
    if (msg && json && zmsg_addstr(msg, json))
      zmsg_destroy(&msg);
    free(json);
    cJSON_Delete(counters);
    link_send(self, &msg);
    self->heartbeat_at = now + AVP_HEARTBEAT_MS;
  }
  if (now > self->broker_expiry) {
    log_msg(LOG_WARN, "broker_lost", "no word from %s; reconnecting", self->args.endpoint);
    link_connect(self);
  }
}

static void worker_actor(zsock_t *pipe, void *args)
{
  link_t self = {.args = *(worker_args_t *) args, .pipe = pipe};
  self.hang_grace_ms = config_long("WORKER_HANG_GRACE_MS", 5000, 0, 3600000);
  self.stage_timeout_ms = config_stage_timeout_ms(self.args.stage);
  /* Connect before signalling, so the settings are read while worker_new() waits. */
  bool connected = link_connect(&self);
  zsock_signal(pipe, 0);
  if (!connected) {
    /* worker_next() takes a message it cannot parse as the end. */
    zstr_send(pipe, "FAILED");
    char *command;
    while ((command = zstr_recv(pipe)) && strcmp(command, "$TERM") != 0)
      zstr_free(&command);
    zstr_free(&command);
    zsock_destroy(&self.dealer);
    return;
  }
  zpoller_t *poller = zpoller_new(pipe, NULL);
  if (poller)
    zpoller_set_nonstop(poller, true); /* only $TERM from the owner ends the actor */
  zsock_t *polled_dealer = NULL;
  unsigned polled_generation = 0;
  self.heartbeat_at = clock_mono_ms() + AVP_HEARTBEAT_MS;
  while (poller) {
    if (polled_generation != self.dealer_generation) {
      /* link_connect replaced the socket: poll the new one (a poller still holding
       * the closed one fails at once on every wait, a busy loop that hears nothing). */
      polled_generation = self.dealer_generation;
      if (polled_dealer)
        zpoller_remove(poller, polled_dealer);
      if (self.dealer && zpoller_add(poller, self.dealer) == 0)
        polled_dealer = self.dealer;
      else
        polled_dealer = NULL;
    }
    void *which = zpoller_wait(poller, 200);
    if (which == pipe) {
      if (!on_caller(&self))
        break;
    } else if (which && which == self.dealer)
      on_broker(&self);
    else if (zpoller_terminated(poller) && zmq_errno() == ETERM)
      break; /* only a dead context ends us; a signal (EINTR) does not */
    on_timer(&self);
  }
  if (self.dealer) {
    zmsg_t *bye = avp_msg_new(AVP_DISCONNECT);
    link_send(&self, &bye);
  }
  zpoller_destroy(&poller);
  zsock_destroy(&self.dealer);
}

/* ---------------------------------------------------------------- caller side */

worker_t *worker_new(const char *endpoint, const char *stage)
{
  worker_args_t args;
  if (snprintf(args.endpoint, sizeof args.endpoint, "%s", endpoint) >= (int) sizeof args.endpoint ||
      snprintf(args.stage, sizeof args.stage, "%s", stage) >= (int) sizeof args.stage)
    return NULL;
  worker_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  snprintf(self->stage, sizeof self->stage, "%s", stage);
  self->actor = zactor_new(worker_actor, &args);
  if (!self->actor) {
    free(self);
    return NULL;
  }
  return self;
}

void worker_destroy(worker_t **self_p)
{
  if (!*self_p)
    return;
  zactor_destroy(&(*self_p)->actor);
  free(*self_p);
  *self_p = NULL;
}

void worker_job_destroy(worker_job_t **job_p)
{
  if (!*job_p)
    return;
  free((*job_p)->payload);
  free(*job_p);
  *job_p = NULL;
}

static worker_job_t *job_from_msg(zmsg_t *msg)
{
  worker_job_t *job = calloc(1, sizeof *job);
  uint64_t attempt, deadline;
  if (!job || !avp_pop_name(msg, job->id, sizeof job->id) || !avp_pop_uint(msg, &attempt) ||
      !avp_pop_uint(msg, &deadline)) {
    free(job);
    return NULL;
  }
  job->attempt = (uint32_t) attempt;
  job->deadline_ms = (int64_t) deadline;
  zframe_t *payload = zmsg_pop(msg);
  job->size = payload ? zframe_size(payload) : 0;
  job->payload = job->size ? malloc(job->size) : NULL;
  if (!job->payload) {
    zframe_destroy(&payload);
    free(job);
    return NULL;
  }
  memcpy(job->payload, zframe_data(payload), job->size);
  zframe_destroy(&payload);
  return job;
}

worker_job_t *worker_next(worker_t *self)
{
  zpoller_t *poller = zpoller_new(self->actor, NULL);
  worker_job_t *job = NULL;
  while (poller && !job && !zsys_interrupted) {
    if (zpoller_wait(poller, 500) != self->actor) {
      if (zpoller_terminated(poller))
        break;
      continue;
    }
    zmsg_t *msg = zmsg_recv(self->actor);
    if (!msg)
      break;
    job = job_from_msg(msg);
    zmsg_destroy(&msg);
    if (!job)
      break; /* the connection thread failed */
  }
  zpoller_destroy(&poller);
  return job;
}

/* Sends [AVP1][command][frames...][payload] through the actor. */
static int send_to_broker(worker_t *self, zmsg_t **msg_p, const uint8_t *payload, size_t size)
{
  zmsg_t *msg = *msg_p;
  if (!msg || (payload && zmsg_addmem(msg, payload, size)) || zmsg_send(msg_p, self->actor)) {
    zmsg_destroy(msg_p);
    return -1;
  }
  return 0;
}

int worker_status(worker_t *self, const uint8_t *status, size_t size)
{
  zmsg_t *msg = avp_msg_new(AVP_STATUS);
  return send_to_broker(self, &msg, status, size);
}

int worker_partial(worker_t *self, const worker_job_t *job, const char *next_stage,
                   const uint8_t *payload, size_t size)
{
  zmsg_t *msg = avp_msg_new(AVP_PARTIAL);
  if (msg && (zmsg_addstr(msg, self->stage) || zmsg_addstr(msg, job->id) ||
              zmsg_addstr(msg, next_stage) || avp_add_uint(msg, (uint64_t) job->deadline_ms)))
    zmsg_destroy(&msg);
  return send_to_broker(self, &msg, payload, size);
}

int worker_done(worker_t *self, worker_job_t **job_p, const char *next_stage,
                const uint8_t *payload, size_t size)
{
  worker_job_t *job = *job_p;
  zmsg_t *msg = avp_msg_new(AVP_DONE);
  if (msg && (zmsg_addstr(msg, self->stage) || zmsg_addstr(msg, job->id)))
    zmsg_destroy(&msg);
  if (msg && next_stage &&
      (zmsg_addstr(msg, next_stage) || avp_add_uint(msg, (uint64_t) job->deadline_ms)))
    zmsg_destroy(&msg);
  int rc = send_to_broker(self, &msg, next_stage ? payload : NULL, size);
  worker_job_destroy(job_p);
  return rc;
}
