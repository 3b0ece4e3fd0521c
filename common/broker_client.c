/* broker_client: the gateway's side of the AVP1 protocol (docs/protocol.md).
 *
 * A czmq actor owns the DEALER. Callers (HTTP threads) hand it requests over the
 * actor pipe ([SUBMIT][stage][job_id][deadline][payload] | [INFO] | [CANCEL][job_id]),
 * one send at a time under `send_lock`, which is held only for that send. A caller
 * that wants an answer first registers a waiter_t in `waiters`; the actor thread
 * routes each ACK/NACK to the waiter of its job id and each INFO answer to the
 * oldest INFO waiter, and wakes it. Every caller waits on its own deadline, so a
 * silent broker costs each caller its own timeout, never the sum of everyone's.
 * Replies nobody waits for any more are dropped.
 * Open jobs live in `pending`, shared by both threads under `pending_lock`, because
 * the status callback (actor thread) declares jobs final while HTTP threads add new
 * ones. */
#include "broker_client.h"

#include "clock.h"
#include "log.h"
#include "pipeline.pb-c.h"
#include "protocol.h"
#include "curve.h"

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#define STATUS_WINDOW 256          /* status events the broker may send ahead */
#define PENDING_GRACE_MS 2000      /* past the deadline before we give up on a job */
#define RETRY_AFTER_MAX_MS 3600000 /* a longer estimate from the broker is capped */

typedef struct {
  char job_id[AVP_JOB_ID_MAX];     /* set in copies; the table's key otherwise */
  char stage[AVP_STAGE_MAX];
  int64_t deadline_ms;
  zframe_t *payload;
} pending_t;

/* A caller waiting for the broker's answer; lives on the caller's stack and is
 * linked into broker_client.waiters while it waits. */
typedef struct waiter {
  struct waiter *next;
  const char *job_id;              /* the ACK/NACK wanted; NULL for an INFO answer */
  zmsg_t *reply;                   /* [command][args...], set by the actor thread */
} waiter_t;

struct broker_client {
  zactor_t *actor;
  pthread_mutex_t send_lock;       /* the actor pipe is one socket: one sender at a time */
  pthread_mutex_t wait_lock;       /* guards `waiters` and every waiter's reply */
  pthread_cond_t replied;          /* broadcast when a waiter got its reply */
  waiter_t *waiters;               /* oldest first */
  pthread_mutex_t pending_lock;
  zhashx_t *pending;               /* job_id -> pending_t */
  broker_status_fn *on_status;
  void *on_status_arg;
  char endpoint[256];
};

typedef struct {
  broker_client_t *owner;
  zsock_t *pipe;
  zsock_t *dealer;                 /* NULL while a reconnect keeps failing */
  zpoller_t *poller;               /* the pipe and the current dealer */
  uint64_t credit;
  int64_t broker_expiry;
  int64_t heartbeat_at;
  int64_t sweep_at;
} link_t;

static void pending_destructor(void **item)
{
  pending_t *pending = *item;
  if (!pending)
    return;
  zframe_destroy(&pending->payload);
  free(pending);
  *item = NULL;
}

/* ---------------------------------------------------------------- actor */

static void link_send(link_t *self, zmsg_t **msg_p)
{
  if (*msg_p && (!self->dealer || zmsg_send(msg_p, self->dealer) != 0))
    zmsg_destroy(msg_p);
}

static void send_credit(link_t *self)
{
  zmsg_t *msg = avp_msg_new(AVP_READY);
  if (msg && (zmsg_addstr(msg, AVP_STATUS_STAGE) || avp_add_uint(msg, STATUS_WINDOW - self->credit)))
    zmsg_destroy(&msg);
  link_send(self, &msg);
  self->credit = STATUS_WINDOW;
}

static void send_submit(link_t *self, const char *job_id, const pending_t *pending)
{
  zmsg_t *msg = avp_msg_new(AVP_SUBMIT);
  zframe_t *payload = zframe_dup(pending->payload);
  if (!msg || !payload || zmsg_addstr(msg, pending->stage) || zmsg_addstr(msg, job_id) ||
      avp_add_uint(msg, (uint64_t) pending->deadline_ms) || zmsg_append(msg, &payload)) {
    zframe_destroy(&payload);
    zmsg_destroy(&msg);
    return;
  }
  link_send(self, &msg);
}

/* The broker lost its queues (it restarted): hand it every open job again. The
 * jobs are copied out first: sends may wait (bounded) on a slow broker, and HTTP
 * threads must not wait for pending_lock meanwhile. */
static void resubmit_pending(link_t *self)
{
  broker_client_t *owner = self->owner;
  zlistx_t *copies = zlistx_new();
  if (!copies)
    return;
  zlistx_set_destructor(copies, pending_destructor);
  pthread_mutex_lock(&owner->pending_lock);
  for (pending_t *pending = zhashx_first(owner->pending); pending;
       pending = zhashx_next(owner->pending)) {
    pending_t *copy = calloc(1, sizeof *copy);
    if (!copy || !(copy->payload = zframe_dup(pending->payload))) {
      free(copy);
      continue;
    }
    snprintf(copy->job_id, sizeof copy->job_id, "%s", (const char *) zhashx_cursor(owner->pending));
    snprintf(copy->stage, sizeof copy->stage, "%s", pending->stage);
    copy->deadline_ms = pending->deadline_ms;
    zlistx_add_end(copies, copy);
  }
  pthread_mutex_unlock(&owner->pending_lock);
  for (pending_t *copy = zlistx_first(copies); copy; copy = zlistx_next(copies))
    send_submit(self, copy->job_id, copy);
  if (zlistx_size(copies))
    log_msg(LOG_WARN, "jobs_resubmitted", "%zu open jobs handed to the broker again",
            zlistx_size(copies));
  zlistx_destroy(&copies);
}

static bool link_connect(link_t *self)
{
  /* The poller lets go of the old socket before it is freed: the new one often
   * gets the same address, and a poller still holding the closed socket would
   * fail at once on every wait (a busy loop that never reads the pipe). */
  if (self->dealer)
    zpoller_remove(self->poller, self->dealer);
  zsock_destroy(&self->dealer);
  self->dealer = zsock_new(ZMQ_DEALER);
  if (!self->dealer)
    return false;
  zsock_set_linger(self->dealer, 0);
  /* A DEALER with no live connection (broker down, handshake refused) blocks on
   * send; a bounded wait keeps this thread answering its owner. */
  zsock_set_sndtimeo(self->dealer, 1000);
  bool ready = curve_apply_client(self->dealer) == 0;
  if (ready && zsock_connect(self->dealer, "%s", self->owner->endpoint) != 0) {
    log_msg(LOG_ERROR, "connect_failed", "cannot connect to %s", self->owner->endpoint);
    ready = false;
  }
  if (!ready || zpoller_add(self->poller, self->dealer) != 0) {
    zsock_destroy(&self->dealer);
    return false;
  }
  self->broker_expiry = clock_mono_ms() + (int64_t) AVP_LIVENESS * AVP_HEARTBEAT_MS;
  self->credit = 0;
  send_credit(self);
  return true;
}

/* A job that outlived its deadline with no final word fails here, so that the
 * gateway's promise "every accepted job ends" holds even if the broker died. */
static void fail_overdue(link_t *self)
{
  broker_client_t *owner = self->owner;
  int64_t now = clock_wall_ms();
  zlistx_t *overdue = zlistx_new();
  if (!overdue)
    return;
  zlistx_set_destructor(overdue, (zlistx_destructor_fn *) zstr_free);
  pthread_mutex_lock(&owner->pending_lock);
  for (pending_t *pending = zhashx_first(owner->pending); pending;
       pending = zhashx_next(owner->pending))
    if (pending->deadline_ms + PENDING_GRACE_MS < now)
      zlistx_add_end(overdue, strdup(zhashx_cursor(owner->pending)));
  for (char *job_id = zlistx_first(overdue); job_id; job_id = zlistx_next(overdue))
    zhashx_delete(owner->pending, job_id);
  pthread_mutex_unlock(&owner->pending_lock);

  for (char *job_id = zlistx_first(overdue); job_id; job_id = zlistx_next(overdue)) {
    Avatar__Error error = AVATAR__ERROR__INIT;
    error.code = "timeout";
    error.message = "No answer in time: the pipeline did not finish this request.";
    Avatar__Status status = AVATAR__STATUS__INIT;
    status.job_id = job_id;
    status.state = AVATAR__STATE__FAILED;
    status.at_ms = (uint64_t) now;
    status.error = &error;
    size_t size = avatar__status__get_packed_size(&status);
    uint8_t *packed = malloc(size ? size : 1);
    if (!packed)
      continue;
    avatar__status__pack(&status, packed);
    owner->on_status(owner->on_status_arg, packed, size);
    free(packed);
  }
  zlistx_destroy(&overdue);
}

/* Hands an ACK/NACK to the caller waiting for its job id, an INFO answer to the
 * oldest caller waiting for one (all INFO answers are alike), and wakes it. Takes
 * *msg_p when someone waits; otherwise the caller gave up and it stays ours. */
static void route_reply(broker_client_t *owner, const char *command, zmsg_t **msg_p)
{
  bool is_info = !strcmp(command, AVP_INFO);
  char job_id[AVP_JOB_ID_MAX] = "";
  zframe_t *first = zmsg_first(*msg_p);
  if (!is_info && (!first || zframe_size(first) >= sizeof job_id))
    return;
  if (!is_info)
    memcpy(job_id, zframe_data(first), zframe_size(first));
  pthread_mutex_lock(&owner->wait_lock);
  for (waiter_t *waiter = owner->waiters; waiter; waiter = waiter->next) {
    bool wanted = is_info ? !waiter->job_id : waiter->job_id && !strcmp(waiter->job_id, job_id);
    if (!wanted || waiter->reply)
      continue;
    if (zmsg_pushstr(*msg_p, command) == 0) {
      waiter->reply = *msg_p;
      *msg_p = NULL;
      pthread_cond_broadcast(&owner->replied);
    }
    break;
  }
  pthread_mutex_unlock(&owner->wait_lock);
}

static void on_broker(link_t *self)
{
  zmsg_t *msg = zmsg_recv(self->dealer);
  if (!msg)
    return;
  self->broker_expiry = clock_mono_ms() + (int64_t) AVP_LIVENESS * AVP_HEARTBEAT_MS;
  char version[8], command[16];
  if (!avp_pop_name(msg, version, sizeof version) || strcmp(version, AVP_VERSION) != 0 ||
      !avp_pop_name(msg, command, sizeof command)) {
    zmsg_destroy(&msg);
    return;
  }
  if (!strcmp(command, AVP_EVENT)) {
    zframe_t *payload = zmsg_pop(msg);
    if (payload)
      self->owner->on_status(self->owner->on_status_arg, zframe_data(payload),
                             zframe_size(payload));
    zframe_destroy(&payload);
    if (self->credit > 0)
      self->credit--;
    if (self->credit < STATUS_WINDOW / 2)
      send_credit(self);
  } else if (!strcmp(command, AVP_ACK) || !strcmp(command, AVP_NACK) ||
             !strcmp(command, AVP_INFO)) {
    route_reply(self->owner, command, &msg);
  } else if (!strcmp(command, AVP_DISCONNECT)) {
    self->credit = 0;
    send_credit(self);
    resubmit_pending(self);
  }
  zmsg_destroy(&msg);
}

/* Returns false on $TERM. */
static bool on_caller(link_t *self)
{
  zmsg_t *msg = zmsg_recv(self->pipe);
  if (!msg)
    return zmq_errno() != ETERM; /* a signal (EINTR) is no reason to stop */
  char *command = zmsg_popstr(msg);
  bool term = command && !strcmp(command, "$TERM");
  if (!term && (!command || zmsg_pushstr(msg, command) || zmsg_pushstr(msg, AVP_VERSION)))
    zmsg_destroy(&msg);
  if (!term)
    link_send(self, &msg);
  zstr_free(&command);
  zmsg_destroy(&msg);
  return !term;
}

static void on_timer(link_t *self)
{
  int64_t now = clock_mono_ms();
  if (now >= self->heartbeat_at) {
    zmsg_t *msg = avp_msg_new(AVP_HEARTBEAT);
    link_send(self, &msg);
    self->heartbeat_at = now + AVP_HEARTBEAT_MS;
  }
  if (now > self->broker_expiry) {
    log_msg(LOG_WARN, "broker_lost", "no word from %s; reconnecting", self->owner->endpoint);
    /* Set before trying, so a connect that keeps failing is retried at this pace. */
    self->broker_expiry = now + (int64_t) AVP_LIVENESS * AVP_HEARTBEAT_MS;
    if (link_connect(self))
      resubmit_pending(self);
  }
  if (now >= self->sweep_at) {
    fail_overdue(self);
    self->sweep_at = now + 500;
  }
}

static void client_actor(zsock_t *pipe, void *args)
{
  link_t self = {.owner = args, .pipe = pipe};
  self.poller = zpoller_new(pipe, NULL);
  if (self.poller)
    zpoller_set_nonstop(self.poller, true); /* only $TERM from the owner ends the actor */
  /* Connect before signalling, so the settings are read while broker_client_new() waits. */
  bool connected = self.poller && link_connect(&self);
  zsock_signal(pipe, 0);
  self.heartbeat_at = clock_mono_ms() + AVP_HEARTBEAT_MS;
  if (!connected)
    self.broker_expiry = 0; /* retry at the first tick */
  while (self.poller) {
    void *which = zpoller_wait(self.poller, 100);
    if (which == pipe) {
      if (!on_caller(&self))
        break;
    } else if (which && which == self.dealer) {
      for (int i = 0; i < 256 && (zsock_events(self.dealer) & ZMQ_POLLIN); i++)
        on_broker(&self);
    } else if (zpoller_terminated(self.poller) && zmq_errno() == ETERM)
      break; /* only a dead context ends us; a signal (EINTR) does not */
    on_timer(&self);
  }
  if (self.dealer) {
    /* Tell the broker at once, so that it stops handing status events to a
     * gateway that is going away (they would be lost until it noticed the
     * silence); a little linger lets the goodbye leave. */
    zmsg_t *bye = avp_msg_new(AVP_DISCONNECT);
    zsock_set_linger(self.dealer, 200);
    link_send(&self, &bye);
  }
  zpoller_destroy(&self.poller);
  zsock_destroy(&self.dealer);
}

/* ---------------------------------------------------------------- caller side */

broker_client_t *broker_client_new(const char *endpoint, broker_status_fn *on_status, void *arg)
{
  broker_client_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  if (snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint) >= (int) sizeof self->endpoint ||
      !(self->pending = zhashx_new())) {
    free(self);
    return NULL;
  }
  zhashx_set_destructor(self->pending, pending_destructor);
  self->on_status = on_status;
  self->on_status_arg = arg;
  pthread_mutex_init(&self->send_lock, NULL);
  pthread_mutex_init(&self->wait_lock, NULL);
  pthread_mutex_init(&self->pending_lock, NULL);
  /* Waiters count their timeouts on the monotonic clock, like everything here. */
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0 ||
      pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
      pthread_cond_init(&self->replied, &attr) != 0) {
    pthread_mutex_destroy(&self->send_lock);
    pthread_mutex_destroy(&self->wait_lock);
    pthread_mutex_destroy(&self->pending_lock);
    zhashx_destroy(&self->pending);
    free(self);
    return NULL;
  }
  pthread_condattr_destroy(&attr);
  self->actor = zactor_new(client_actor, self);
  if (!self->actor) {
    broker_client_destroy(&self);
    return NULL;
  }
  /* A caller never waits for the pipe: if the actor is ever that far behind
   * (a thousand requests), the broker is unavailable for this request. */
  zsock_set_sndtimeo(self->actor, 0);
  return self;
}

void broker_client_destroy(broker_client_t **self_p)
{
  broker_client_t *self = *self_p;
  if (!self)
    return;
  if (self->actor)
    zsock_set_sndtimeo(self->actor, -1); /* $TERM must get through */
  zactor_destroy(&self->actor);
  zhashx_destroy(&self->pending);
  pthread_mutex_destroy(&self->send_lock);
  pthread_mutex_destroy(&self->wait_lock);
  pthread_mutex_destroy(&self->pending_lock);
  pthread_cond_destroy(&self->replied);
  free(self);
  *self_p = NULL;
}

/* Passes a request to the actor thread; 0 when it was taken. */
static int tell_actor(broker_client_t *self, zmsg_t **msg_p)
{
  pthread_mutex_lock(&self->send_lock);
  int rc = zmsg_send(msg_p, self->actor);
  pthread_mutex_unlock(&self->send_lock);
  zmsg_destroy(msg_p); /* left to us when the send failed */
  return rc;
}

/* Sends `request` and waits up to `timeout_ms` for the reply routed to `waiter`
 * (registered first, so the reply cannot arrive before anyone waits for it).
 * Returns [command][args...], or NULL. */
static zmsg_t *call(broker_client_t *self, zmsg_t **request_p, waiter_t *waiter, int timeout_ms)
{
  pthread_mutex_lock(&self->wait_lock);
  waiter_t **tail = &self->waiters;
  while (*tail)
    tail = &(*tail)->next;
  *tail = waiter;
  pthread_mutex_unlock(&self->wait_lock);

  bool sent = tell_actor(self, request_p) == 0;
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }

  pthread_mutex_lock(&self->wait_lock);
  while (sent && !waiter->reply)
    if (pthread_cond_timedwait(&self->replied, &self->wait_lock, &until) == ETIMEDOUT)
      break;
  for (waiter_t **link = &self->waiters; *link; link = &(*link)->next)
    if (*link == waiter) {
      *link = waiter->next;
      break;
    }
  zmsg_t *reply = waiter->reply;
  pthread_mutex_unlock(&self->wait_lock);
  return reply;
}

static void forget(broker_client_t *self, const char *job_id)
{
  pthread_mutex_lock(&self->pending_lock);
  zhashx_delete(self->pending, job_id);
  pthread_mutex_unlock(&self->pending_lock);
}

broker_submit_result_t broker_client_submit(broker_client_t *self, const char *stage,
                                            const char *job_id, int64_t deadline_ms,
                                            const uint8_t *job, size_t size,
                                            int timeout_ms, char *reason, size_t reason_size,
                                            int64_t *retry_after_ms)
{
  if (reason_size)
    reason[0] = '\0';
  if (retry_after_ms)
    *retry_after_ms = 0;
  pending_t *pending = calloc(1, sizeof *pending);
  if (!pending || strlen(stage) >= sizeof pending->stage || strlen(job_id) >= AVP_JOB_ID_MAX ||
      !(pending->payload = zframe_new(job, size))) {
    free(pending);
    return BROKER_UNAVAILABLE;
  }
  snprintf(pending->stage, sizeof pending->stage, "%s", stage);
  pending->deadline_ms = deadline_ms;

  zmsg_t *msg = zmsg_new();
  zframe_t *payload = zframe_dup(pending->payload);
  bool built = msg && payload && !zmsg_addstr(msg, AVP_SUBMIT) && !zmsg_addstr(msg, stage) &&
               !zmsg_addstr(msg, job_id) && !avp_add_uint(msg, (uint64_t) deadline_ms) &&
               !zmsg_append(msg, &payload);
  zframe_destroy(&payload);
  zmsg_t *reply = NULL;
  if (built) {
    /* Kept before it is sent, so a reconnect in between still re-submits it. */
    pthread_mutex_lock(&self->pending_lock);
    zhashx_update(self->pending, job_id, pending);
    pthread_mutex_unlock(&self->pending_lock);
    pending = NULL;
    waiter_t waiter = {.job_id = job_id};
    reply = call(self, &msg, &waiter, timeout_ms);
  }
  zmsg_destroy(&msg);
  if (pending) {
    void *item = pending;
    pending_destructor(&item);
  }

  broker_submit_result_t result = BROKER_UNAVAILABLE;
  char *command = reply ? zmsg_popstr(reply) : NULL;
  if (command && !strcmp(command, AVP_ACK))
    result = BROKER_ACK;
  else if (command && !strcmp(command, AVP_NACK)) {
    result = BROKER_NACK_FULL;
    zstr_free(&command);
    command = zmsg_popstr(reply); /* the job id */
    char *why = zmsg_popstr(reply);
    if (why && reason_size)
      snprintf(reason, reason_size, "%s", why);
    zstr_free(&why);
    /* Optional: a broker from before admission estimates sends no such frame. */
    uint64_t retry = 0;
    if (retry_after_ms && zmsg_size(reply) && avp_pop_uint(reply, &retry))
      *retry_after_ms = retry < RETRY_AFTER_MAX_MS ? (int64_t) retry : RETRY_AFTER_MAX_MS;
  }
  zstr_free(&command);
  zmsg_destroy(&reply);
  if (result != BROKER_ACK)
    forget(self, job_id);
  return result;
}

void broker_client_job_final(broker_client_t *self, const char *job_id)
{
  forget(self, job_id);
}

int broker_client_cancel(broker_client_t *self, const char *job_id)
{
  if (strlen(job_id) >= AVP_JOB_ID_MAX)
    return -1;
  forget(self, job_id);
  zmsg_t *msg = zmsg_new();
  if (!msg || zmsg_addstr(msg, AVP_CANCEL) || zmsg_addstr(msg, job_id)) {
    zmsg_destroy(&msg);
    return -1;
  }
  return tell_actor(self, &msg);
}

cJSON *broker_client_info(broker_client_t *self, int timeout_ms)
{
  zmsg_t *request = zmsg_new();
  zmsg_t *reply = NULL;
  if (request && zmsg_addstr(request, AVP_INFO) == 0) {
    waiter_t waiter = {.job_id = NULL};
    reply = call(self, &request, &waiter, timeout_ms);
  }
  zmsg_destroy(&request);
  char *command = reply ? zmsg_popstr(reply) : NULL;
  char *json = reply ? zmsg_popstr(reply) : NULL;
  cJSON *info = json ? cJSON_Parse(json) : NULL;
  zstr_free(&command);
  zstr_free(&json);
  zmsg_destroy(&reply);
  return info;
}
