/* broker: queues, dispatch, heartbeats and deadlines of the pipeline.
 *
 * Ownership: the broker owns every queued job (entry_t) until it is sent to a
 * status consumer, held by a worker (peer_t.in_flight) or failed. A worker holds at
 * most one job; DONE (or its death) returns the job to the broker, which then
 * frees it or re-queues it. Status events are entries of the "status" stage and
 * are freed once sent. Cancelled job ids are remembered (bounded, until their
 * deadline) so that late forwards and status events of the job are dropped; each
 * stage remembers the jobs it has finished an entry of (job_set.h). */
#include "broker.h"

#include "admission.h"
#include "clock.h"
#include "config.h"
#include "curve.h"
#include "job_set.h"
#include "log.h"
#include "pipeline.pb-c.h"
#include "protocol.h"

#include <inttypes.h>
#include <string.h>

#define MAX_STAGES 32
#define MAX_STATUS_CREDIT 100000
#define SWEEP_MS 100
#define MAX_COUNTERS_JSON 16384
#define CANCELLED_MAX 10000        /* cancelled job ids remembered at once */
#define CANCEL_MEMORY_MS 600000    /* how long an id that is nowhere here is remembered */
#define DISPATCH_HELD_MAX 256      /* held jobs a dispatch round keeps apart; more workers
                                      than this may get two entries of one job */
#define STARTED_MAX 10000          /* jobs a stage remembers having finished an entry of */

typedef struct {
  char job_id[AVP_JOB_ID_MAX];
  char stage[AVP_STAGE_MAX];
  uint32_t attempt;          /* dispatches so far */
  int64_t deadline_ms;       /* unix ms; 0 for status events */
  int64_t dispatched_ms;     /* monotonic ms of the last dispatch */
  zframe_t *payload;
} entry_t;

typedef struct {
  char name[AVP_STAGE_MAX];
  zlistx_t *queue;           /* entry_t*, owned */
  zlistx_t *idle;            /* peer_t* ready for work (status: with credit) */
  size_t workers;
  int timeout_ms;            /* longest a worker may hold one of its jobs */
  service_time_t service;    /* recent dispatch-to-DONE time of one entry */
  job_set_t *started;        /* jobs with an entry done here, until their deadline */
} stage_t;

typedef struct {
  char key[64];              /* hex of the ROUTER identity */
  zframe_t *identity;
  char stage[AVP_STAGE_MAX]; /* "" for pure producers */
  uint64_t credit;           /* status consumers only */
  int64_t expiry;            /* monotonic ms */
  entry_t *in_flight;        /* owned while the worker holds it */
  bool in_flight_ignored;    /* its deadline passed or it was cancelled: its result
                                goes nowhere and no verdict is reported for it */
  void *idle_handle;         /* our node in stage->idle, NULL when not idle */
  cJSON *counters;           /* the worker's latest counters, from its heartbeat */
} peer_t;

typedef struct {
  uint64_t frames_dropped, jobs_submitted, jobs_nacked, jobs_nacked_wait, jobs_dispatched,
    jobs_forwarded, jobs_requeued, jobs_timed_out, jobs_worker_lost, jobs_cancelled,
    cancelled_dropped, status_events, status_dropped;
} counters_t;

typedef struct {
  broker_config_t cfg;
  zsock_t *pipe;
  zsock_t *router;
  zhashx_t *peers;           /* key -> peer_t, owned */
  zhashx_t *stages;          /* name -> stage_t, owned */
  job_set_t *cancelled;      /* until the jobs' deadlines */
  int64_t heartbeat_at;
  int64_t sweep_at;
  counters_t count;
} broker_t;

/* ---------------------------------------------------------------- config */

int broker_config_from_env(broker_config_t *cfg)
{
  snprintf(cfg->endpoint, sizeof cfg->endpoint, "%s", config_str("BROKER_BIND", "tcp://*:5555"));
  cfg->queue_max = (size_t) config_long("BROKER_QUEUE_MAX", 100, 1, 1000000);
  cfg->admit_percent = (unsigned) config_long("BROKER_ADMIT_PERCENT", 50, 0, 100);
  cfg->status_queue_max = (size_t) config_long("BROKER_STATUS_QUEUE_MAX", 10000, 10, 10000000);
  cfg->max_attempts = (uint32_t) config_long("BROKER_MAX_ATTEMPTS", 3, 1, 100);
  cfg->heartbeat_ms = (int) config_long("BROKER_HEARTBEAT_MS", AVP_HEARTBEAT_MS, 10, 60000);
  cfg->max_payload = (size_t) config_long("BROKER_MAX_MSG_BYTES", 32L << 20, 1024, 1L << 30);
  cfg->stage_timeout_ms = 0;
  const char *secret = config_str("BROKER_CURVE_SECRET_KEY", "");
  const char *clients = config_str("BROKER_CURVE_CLIENT_KEYS", "");
  if (*secret && (!curve_key_is_valid(secret) || !*clients)) {
    log_msg(LOG_ERROR, "curve_config", "BROKER_CURVE_SECRET_KEY must be a 40-character Z85 key "
            "and BROKER_CURVE_CLIENT_KEYS must list the allowed public keys");
    return -1;
  }
  snprintf(cfg->curve_secret, sizeof cfg->curve_secret, "%s", secret);
  if (snprintf(cfg->curve_clients, sizeof cfg->curve_clients, "%s", clients) >=
      (int) sizeof cfg->curve_clients) {
    log_msg(LOG_ERROR, "curve_config", "BROKER_CURVE_CLIENT_KEYS is too long");
    return -1;
  }
  return 0;
}

/* CURVE on the ROUTER: only the listed public keys may connect (ZAP via zauth).
 * Returns the zauth actor (which must outlive the socket's handshakes), NULL with
 * *ok = false on a bad key list, or NULL with *ok = true when CURVE is off. */
static zactor_t *curve_start(broker_t *self, bool *ok)
{
  *ok = true;
  if (!self->cfg.curve_secret[0])
    return NULL;
  zcertstore_t *allowed = zcertstore_new(NULL);
  char keys[sizeof self->cfg.curve_clients];
  snprintf(keys, sizeof keys, "%s", self->cfg.curve_clients);
  char *rest = keys;
  for (char *key = strtok_r(keys, ", ", &rest); key && allowed; key = strtok_r(NULL, ", ", &rest)) {
    /* zcert needs a secret half too; the store only compares public keys. */
    uint8_t public_key[32], no_secret[32] = {0};
    zcert_t *cert = curve_key_is_valid(key) && zmq_z85_decode(public_key, key)
                      ? zcert_new_from(public_key, no_secret)
                      : NULL;
    if (!cert) {
      log_msg(LOG_ERROR, "curve_config", "a BROKER_CURVE_CLIENT_KEYS entry is not a Z85 key");
      zcertstore_destroy(&allowed);
      *ok = false;
      return NULL;
    }
    zcertstore_insert(allowed, &cert);
  }
  zactor_t *auth = allowed ? zactor_new(zauth, allowed) : NULL; /* takes the store */
  if (!auth) {
    zcertstore_destroy(&allowed);
    *ok = false;
    return NULL;
  }
  zsock_set_zap_domain(self->router, "avatar");
  zsock_set_curve_server(self->router, 1);
  zsock_set_curve_secretkey(self->router, self->cfg.curve_secret);
  return auth;
}


/* ---------------------------------------------------------------- entries */

static entry_t *entry_new(const char *job_id, const char *stage, int64_t deadline_ms,
                          zframe_t **payload_p)
{
  entry_t *entry = calloc(1, sizeof *entry);
  if (!entry)
    return NULL;
  snprintf(entry->job_id, sizeof entry->job_id, "%s", job_id);
  snprintf(entry->stage, sizeof entry->stage, "%s", stage);
  entry->deadline_ms = deadline_ms;
  entry->payload = *payload_p;
  *payload_p = NULL;
  return entry;
}

static void entry_destroy(entry_t **entry_p)
{
  if (!*entry_p)
    return;
  zframe_destroy(&(*entry_p)->payload);
  free(*entry_p);
  *entry_p = NULL;
}

static void entry_destructor(void **item) { entry_destroy((entry_t **) item); }

/* ---------------------------------------------------------------- stages */

static void stage_destructor(void **item)
{
  stage_t *stage = *item;
  if (!stage)
    return;
  zlistx_destroy(&stage->queue);
  zlistx_destroy(&stage->idle);
  job_set_destroy(&stage->started);
  free(stage);
  *item = NULL;
}

static bool valid_stage_name(const char *name)
{
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
      return false;
  return *name != '\0';
}

/* Finds or creates a stage; NULL for a bad name or when the stage table is full. */
static stage_t *stage_require(broker_t *self, const char *name)
{
  stage_t *stage = zhashx_lookup(self->stages, name);
  if (stage)
    return stage;
  if (!valid_stage_name(name) || zhashx_size(self->stages) >= MAX_STAGES)
    return NULL;
  stage = calloc(1, sizeof *stage);
  if (!stage)
    return NULL;
  snprintf(stage->name, sizeof stage->name, "%s", name);
  stage->timeout_ms =
    self->cfg.stage_timeout_ms ? self->cfg.stage_timeout_ms : config_stage_timeout_ms(name);
  stage->queue = zlistx_new();
  stage->idle = zlistx_new();
  stage->started = job_set_new(STARTED_MAX);
  if (!stage->queue || !stage->idle || !stage->started) {
    void *item = stage;
    stage_destructor(&item);
    return NULL;
  }
  zlistx_set_destructor(stage->queue, entry_destructor);
  if (zhashx_insert(self->stages, name, stage) != 0) {
    void *item = stage;
    stage_destructor(&item);
    return NULL;
  }
  return stage;
}

/* ---------------------------------------------------------------- sending */

static void send_to(broker_t *self, peer_t *peer, zmsg_t **msg_p)
{
  zmsg_t *msg = *msg_p;
  if (!msg)
    return;
  zframe_t *identity = zframe_dup(peer->identity);
  if (!identity || zmsg_prepend(msg, &identity) || zmsg_send(msg_p, self->router)) {
    zframe_destroy(&identity);
    zmsg_destroy(msg_p);
  }
}

static void send_to_identity(broker_t *self, zframe_t *identity, zmsg_t **msg_p)
{
  zframe_t *copy = zframe_dup(identity);
  if (!copy || zmsg_prepend(*msg_p, &copy) || zmsg_send(msg_p, self->router)) {
    zframe_destroy(&copy);
    zmsg_destroy(msg_p);
  }
}

/* NACK job_id reason retry_after_ms: the last frame is when the broker expects to
 * admit a job again (0: it has no estimate). */
static void reply_nack(broker_t *self, zframe_t *identity, const char *job_id, const char *reason,
                       int64_t retry_after_ms)
{
  self->count.jobs_nacked++;
  zmsg_t *msg = avp_msg_new(AVP_NACK);
  if (!msg || zmsg_addstr(msg, job_id) || zmsg_addstr(msg, reason) ||
      avp_add_uint(msg, (uint64_t) (retry_after_ms > 0 ? retry_after_ms : 0))) {
    zmsg_destroy(&msg);
    return;
  }
  send_to_identity(self, identity, &msg);
}

/* ---------------------------------------------------------------- cancelled jobs */

/* True for a packed Status about a cancelled job: its gateway has its answer. */
static bool status_is_cancelled(broker_t *self, zframe_t *payload)
{
  if (!job_set_size(self->cancelled))
    return false;
  Avatar__Status *status =
    avatar__status__unpack(NULL, zframe_size(payload), zframe_data(payload));
  bool cancelled = status && status->job_id && job_set_contains(self->cancelled, status->job_id);
  avatar__status__free_unpacked(status, NULL);
  return cancelled;
}

/* Forgets the cancelled jobs, and the jobs stages have started, whose deadlines have
 * passed: anything of them that still turns up is refused for its deadline anyway. */
static void forget_past_jobs(broker_t *self)
{
  int64_t now = clock_wall_ms();
  job_set_forget_expired(self->cancelled, now);
  for (stage_t *stage = zhashx_first(self->stages); stage; stage = zhashx_next(self->stages))
    job_set_forget_expired(stage->started, now);
}

/* ---------------------------------------------------------------- status events */

static void queue_status(broker_t *self, zframe_t **payload_p)
{
  stage_t *status = stage_require(self, AVP_STATUS_STAGE);
  entry_t *entry = status ? entry_new("", AVP_STATUS_STAGE, 0, payload_p) : NULL;
  if (!entry) {
    zframe_destroy(payload_p);
    self->count.status_dropped++;
    return;
  }
  if (zlistx_size(status->queue) >= self->cfg.status_queue_max) {
    /* A gateway that stopped reading must not grow the broker without bound;
     * the newest events matter most to pollers, so the oldest go. */
    zlistx_delete(status->queue, NULL);
    self->count.status_dropped++;
  }
  if (!zlistx_add_end(status->queue, entry)) {
    entry_destroy(&entry);
    self->count.status_dropped++;
    return;
  }
  self->count.status_events++;
}

/* The broker's own verdict on a job: failed at `stage` with `code`. */
static void emit_failure(broker_t *self, const entry_t *entry, const char *code,
                         const char *message)
{
  Avatar__Error error = AVATAR__ERROR__INIT;
  error.code = (char *) code;
  error.message = (char *) message;
  Avatar__Status status = AVATAR__STATUS__INIT;
  status.job_id = (char *) entry->job_id;
  status.stage = (char *) entry->stage;
  status.state = AVATAR__STATE__FAILED;
  status.at_ms = (uint64_t) clock_wall_ms();
  status.attempt = entry->attempt;
  status.error = &error;
  size_t size = avatar__status__get_packed_size(&status);
  zframe_t *frame = zframe_new(NULL, size);
  if (!frame) {
    self->count.status_dropped++;
    return;
  }
  avatar__status__pack(&status, zframe_data(frame));
  queue_status(self, &frame);
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "job_id", entry->job_id);
  cJSON_AddStringToObject(fields, "stage", entry->stage);
  cJSON_AddStringToObject(fields, "code", code);
  cJSON_AddNumberToObject(fields, "attempt", entry->attempt);
  log_event(LOG_WARN, "job_failed", fields);
}

/* ---------------------------------------------------------------- peers */

static void peer_destructor(void **item)
{
  peer_t *peer = *item;
  if (!peer)
    return;
  zframe_destroy(&peer->identity);
  entry_destroy(&peer->in_flight);
  cJSON_Delete(peer->counters);
  free(peer);
  *item = NULL;
}

static void peer_set_idle(broker_t *self, peer_t *peer, bool idle)
{
  stage_t *stage = zhashx_lookup(self->stages, peer->stage);
  if (!stage)
    return;
  if (idle && !peer->idle_handle)
    peer->idle_handle = zlistx_add_end(stage->idle, peer);
  else if (!idle && peer->idle_handle) {
    zlistx_delete(stage->idle, peer->idle_handle);
    peer->idle_handle = NULL;
  }
}

/* Puts a dead worker's job back at the head of its queue, or fails it for good. */
static void requeue_or_fail(broker_t *self, entry_t **entry_p)
{
  entry_t *entry = *entry_p;
  *entry_p = NULL;
  stage_t *stage = zhashx_lookup(self->stages, entry->stage);
  if (entry->attempt >= self->cfg.max_attempts || !stage) {
    char message[160];
    snprintf(message, sizeof message,
             "The %s worker stopped %u times while handling this request.", entry->stage,
             entry->attempt);
    emit_failure(self, entry, "worker_lost", message);
    self->count.jobs_worker_lost++;
    entry_destroy(&entry);
    return;
  }
  if (!zlistx_add_start(stage->queue, entry)) {
    emit_failure(self, entry, "overloaded", "The broker ran out of memory.");
    entry_destroy(&entry);
    return;
  }
  self->count.jobs_requeued++;
}

static void peer_remove(broker_t *self, peer_t *peer, const char *why)
{
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "peer", peer->key);
  cJSON_AddStringToObject(fields, "stage", peer->stage);
  cJSON_AddStringToObject(fields, "why", why);
  if (peer->in_flight)
    cJSON_AddStringToObject(fields, "job_id", peer->in_flight->job_id);
  log_event(LOG_WARN, "peer_removed", fields);

  peer_set_idle(self, peer, false);
  stage_t *stage = zhashx_lookup(self->stages, peer->stage);
  if (stage && stage->workers > 0)
    stage->workers--;
  if (peer->in_flight && !peer->in_flight_ignored)
    requeue_or_fail(self, &peer->in_flight);
  zhashx_delete(self->peers, peer->key);
}

static peer_t *peer_lookup(broker_t *self, zframe_t *identity)
{
  char *key = zframe_strhex(identity);
  if (!key)
    return NULL;
  peer_t *peer = zhashx_lookup(self->peers, key);
  free(key);
  return peer;
}

static peer_t *peer_require(broker_t *self, zframe_t *identity)
{
  peer_t *peer = peer_lookup(self, identity);
  if (peer)
    return peer;
  char *key = zframe_strhex(identity);
  peer = key ? calloc(1, sizeof *peer) : NULL;
  if (!peer || strlen(key) >= sizeof peer->key) {
    free(key);
    free(peer);
    return NULL;
  }
  snprintf(peer->key, sizeof peer->key, "%s", key);
  free(key);
  peer->identity = zframe_dup(identity);
  if (!peer->identity) {
    free(peer);
    return NULL;
  }
  zhashx_insert(self->peers, peer->key, peer);
  return peer;
}

/* Gives `peer` a stage; false when it already serves another one. */
static bool peer_join(broker_t *self, peer_t *peer, const char *stage_name)
{
  if (peer->stage[0])
    return strcmp(peer->stage, stage_name) == 0;
  stage_t *stage = stage_require(self, stage_name);
  if (!stage)
    return false;
  snprintf(peer->stage, sizeof peer->stage, "%s", stage_name);
  stage->workers++;
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "peer", peer->key);
  cJSON_AddStringToObject(fields, "stage", stage_name);
  log_event(LOG_INFO, "peer_joined", fields);
  return true;
}

/* ---------------------------------------------------------------- dispatch */

/* Fills `held` with the ids of the jobs the stage's workers hold now (at most `max`);
 * returns how many. */
static size_t held_jobs(broker_t *self, const stage_t *stage, const char **held, size_t max)
{
  size_t count = 0;
  for (peer_t *peer = zhashx_first(self->peers); peer && count < max;
       peer = zhashx_next(self->peers))
    if (peer->in_flight && strcmp(peer->stage, stage->name) == 0)
      held[count++] = peer->in_flight->job_id;
  return count;
}

/* Detaches the first queued entry that may go to a worker now, or returns NULL. A
 * job's first entry at a stage goes alone: until the stage has finished one entry of
 * a job, the job's other entries wait while a worker holds one. A streamed answer's
 * first sentence is then never rendered beside its second on the same cores, which
 * made its video 150 ms later with two avatar replicas; once it is out, the later
 * sentences spread over the free workers (docs/protocol.md "Rules"). Other jobs'
 * entries fill the other workers meanwhile. */
static entry_t *next_entry(stage_t *stage, const char *const *held, size_t held_count)
{
  for (entry_t *entry = zlistx_first(stage->queue); entry; entry = zlistx_next(stage->queue)) {
    bool job_held = false;
    for (size_t i = 0; i < held_count && !job_held; i++)
      job_held = strcmp(held[i], entry->job_id) == 0;
    if (!job_held || job_set_contains(stage->started, entry->job_id))
      return zlistx_detach_cur(stage->queue);
  }
  return NULL;
}

static void dispatch_jobs(broker_t *self, stage_t *stage)
{
  const char *held[DISPATCH_HELD_MAX];
  size_t held_count = held_jobs(self, stage, held, DISPATCH_HELD_MAX);
  while (zlistx_size(stage->queue) && zlistx_size(stage->idle)) {
    entry_t *entry = next_entry(stage, held, held_count);
    if (!entry)
      return;                   /* every queued entry waits for its job's held one */
    peer_t *peer = zlistx_first(stage->idle);
    zlistx_delete(stage->idle, peer->idle_handle);
    peer->idle_handle = NULL;
    entry->attempt++;
    zmsg_t *msg = avp_msg_new(AVP_JOB);
    zframe_t *payload = zframe_dup(entry->payload);
    if (!msg || !payload || zmsg_addstr(msg, stage->name) || zmsg_addstr(msg, entry->job_id) ||
        avp_add_uint(msg, entry->attempt) || avp_add_uint(msg, (uint64_t) entry->deadline_ms) ||
        zmsg_append(msg, &payload)) {
      zframe_destroy(&payload);
      zmsg_destroy(&msg);
      entry->attempt--;
      zlistx_add_start(stage->queue, entry);
      peer_set_idle(self, peer, true);
      return;
    }
    entry->dispatched_ms = clock_mono_ms();
    peer->in_flight = entry;
    peer->in_flight_ignored = false;
    if (held_count < DISPATCH_HELD_MAX)
      held[held_count++] = entry->job_id;
    send_to(self, peer, &msg);
    self->count.jobs_dispatched++;
  }
}

static void dispatch_status(broker_t *self, stage_t *stage)
{
  while (zlistx_size(stage->queue) && zlistx_size(stage->idle)) {
    peer_t *peer = zlistx_first(stage->idle);
    entry_t *entry = zlistx_detach(stage->queue, NULL);
    zmsg_t *msg = avp_msg_new(AVP_EVENT);
    if (msg && zmsg_append(msg, &entry->payload) == 0)
      send_to(self, peer, &msg);
    else
      zmsg_destroy(&msg);
    entry_destroy(&entry);
    /* Round robin: the consumer goes to the back, or leaves when out of credit. */
    zlistx_delete(stage->idle, peer->idle_handle);
    peer->idle_handle = NULL;
    if (--peer->credit > 0)
      peer->idle_handle = zlistx_add_end(stage->idle, peer);
  }
}

static void dispatch_all(broker_t *self)
{
  for (stage_t *stage = zhashx_first(self->stages); stage; stage = zhashx_next(self->stages)) {
    if (strcmp(stage->name, AVP_STATUS_STAGE) == 0)
      dispatch_status(self, stage);
    else
      dispatch_jobs(self, stage);
  }
}

/* ---------------------------------------------------------------- commands */

/* Queues a job for `stage_name` on behalf of a worker that finished the
 * previous stage. Forwards are never refused for a full queue: the job was
 * admitted at SUBMIT, and back-pressure belongs at the entrance. */
static void forward_job(broker_t *self, const char *job_id, const char *stage_name,
                        int64_t deadline_ms, zframe_t **payload_p)
{
  stage_t *stage = stage_require(self, stage_name);
  if (!stage || strcmp(stage_name, AVP_STATUS_STAGE) == 0 || deadline_ms <= clock_wall_ms()) {
    zframe_destroy(payload_p);
    self->count.frames_dropped++;
    return;
  }
  entry_t *entry = entry_new(job_id, stage_name, deadline_ms, payload_p);
  if (!entry || !zlistx_add_end(stage->queue, entry)) {
    entry_destroy(&entry);
    self->count.frames_dropped++;
    return;
  }
  self->count.jobs_forwarded++;
}

static bool payload_ok(broker_t *self, zframe_t *payload)
{
  return payload && zframe_size(payload) > 0 && zframe_size(payload) <= self->cfg.max_payload;
}

static bool on_ready(broker_t *self, zframe_t *identity, zmsg_t *msg)
{
  char stage_name[AVP_STAGE_MAX];
  uint64_t credit;
  if (!avp_pop_name(msg, stage_name, sizeof stage_name) || !avp_pop_uint(msg, &credit))
    return false;
  peer_t *peer = peer_require(self, identity);
  if (!peer || !peer_join(self, peer, stage_name))
    return false;
  if (strcmp(stage_name, AVP_STATUS_STAGE) == 0) {
    peer->credit = credit + peer->credit > MAX_STATUS_CREDIT ? MAX_STATUS_CREDIT
                                                              : peer->credit + credit;
    peer_set_idle(self, peer, peer->credit > 0);
  } else if (!peer->in_flight)
    peer_set_idle(self, peer, true);
  return true;
}

/* A job stage whose queue is full, or NULL. Every job passes every stage, so a
 * full queue anywhere refuses new jobs at the entrance: forwards are never refused,
 * and without this a slow last stage (avatar) would collect every admitted job
 * (with its speech audio) until their deadlines, memory growing with the rate. */
static stage_t *full_stage(broker_t *self)
{
  for (stage_t *stage = zhashx_first(self->stages); stage; stage = zhashx_next(self->stages))
    if (strcmp(stage->name, AVP_STATUS_STAGE) != 0 &&
        zlistx_size(stage->queue) >= self->cfg.queue_max)
      return stage;
  return NULL;
}

/* What `stage` holds now, for the admission estimate. Until the stage's first DONE
 * its service time is the age of the oldest entry a worker holds: a lower bound,
 * so that a slow first job counts while it is still running. */
static stage_load_t stage_load(broker_t *self, const stage_t *stage, int64_t now_mono)
{
  stage_load_t load = {.queued = zlistx_size(stage->queue), .workers = stage->workers,
                       .service_ms = stage->service.average_ms};
  for (peer_t *peer = zhashx_first(self->peers); peer; peer = zhashx_next(self->peers))
    if (peer->in_flight && !strcmp(peer->stage, stage->name) && !stage->service.samples &&
        now_mono - peer->in_flight->dispatched_ms > load.service_ms)
      load.service_ms = (double) (now_mono - peer->in_flight->dispatched_ms);
  for (peer_t *peer = zhashx_first(self->peers); peer; peer = zhashx_next(self->peers)) {
    if (!peer->in_flight || strcmp(peer->stage, stage->name) != 0)
      continue;
    double left = load.service_ms - (double) (now_mono - peer->in_flight->dispatched_ms);
    if (left > 0)
      load.in_flight_ms += left;
  }
  return load;
}

/* How long a job submitted now would wait behind the work in every job stage. */
static int64_t estimated_wait_ms(broker_t *self)
{
  stage_load_t loads[MAX_STAGES];
  size_t count = 0;
  int64_t now_mono = clock_mono_ms();
  for (stage_t *stage = zhashx_first(self->stages); stage && count < MAX_STAGES;
       stage = zhashx_next(self->stages))
    if (strcmp(stage->name, AVP_STATUS_STAGE) != 0)
      loads[count++] = stage_load(self, stage, now_mono);
  return admission_wait_ms(loads, count);
}

/* When a full stage should have room again: one entry's service time shared by its
 * workers, at least a second. */
static int64_t full_retry_after_ms(const stage_t *stage)
{
  double drain_ms = stage->service.average_ms / (double) (stage->workers ? stage->workers : 1);
  return drain_ms > 1000.0 ? (int64_t) drain_ms : 1000;
}

static bool on_submit(broker_t *self, zframe_t *identity, zmsg_t *msg)
{
  char stage_name[AVP_STAGE_MAX], job_id[AVP_JOB_ID_MAX];
  uint64_t deadline;
  if (!avp_pop_name(msg, stage_name, sizeof stage_name) ||
      !avp_pop_name(msg, job_id, sizeof job_id) || !avp_pop_uint(msg, &deadline))
    return false;
  zframe_t *payload = zmsg_pop(msg);
  bool well_formed = payload_ok(self, payload);
  stage_t *stage = well_formed && strcmp(stage_name, AVP_STATUS_STAGE) != 0
                     ? stage_require(self, stage_name)
                     : NULL;
  char reason[160];
  stage_t *full = stage ? full_stage(self) : NULL;
  if (!well_formed) {
    zframe_destroy(&payload);
    return false;
  }
  int64_t remaining_ms = (int64_t) deadline - clock_wall_ms();
  int64_t wait_ms =
    stage && !full && remaining_ms > 0 && self->cfg.admit_percent ? estimated_wait_ms(self) : 0;
  int64_t retry_after_ms = 0;
  if (!stage)
    snprintf(reason, sizeof reason, "unknown stage");
  else if (remaining_ms <= 0)
    snprintf(reason, sizeof reason, "the job's deadline has already passed");
  else if (full) {
    snprintf(reason, sizeof reason, "the %s queue is full (%zu jobs waiting)", full->name,
             zlistx_size(full->queue));
    retry_after_ms = full_retry_after_ms(full);
  } else if (!admission_admits(wait_ms, remaining_ms, self->cfg.admit_percent, &retry_after_ms)) {
    snprintf(reason, sizeof reason,
             "the job would wait about %.1f s in the queues, more than %u%% of the %.1f s "
             "before its deadline", (double) wait_ms / 1000.0, self->cfg.admit_percent,
             (double) remaining_ms / 1000.0);
    self->count.jobs_nacked_wait++;
  } else {
    entry_t *entry = entry_new(job_id, stage_name, (int64_t) deadline, &payload);
    if (entry && zlistx_add_end(stage->queue, entry)) {
      self->count.jobs_submitted++;
      job_set_forget(self->cancelled, job_id); /* submitted anew: it is wanted again */
      zmsg_t *ack = avp_msg_new(AVP_ACK);
      if (ack && zmsg_addstr(ack, job_id) == 0)
        send_to_identity(self, identity, &ack);
      zmsg_destroy(&ack);
      return true;
    }
    entry_destroy(&entry);
    snprintf(reason, sizeof reason, "the broker is out of memory");
  }
  zframe_destroy(&payload);
  reply_nack(self, identity, job_id, reason, retry_after_ms);
  return true;
}

/* PARTIAL and DONE: a worker hands on (part of) its job. */
static bool on_result(broker_t *self, zframe_t *identity, zmsg_t *msg, bool done)
{
  char stage_name[AVP_STAGE_MAX], job_id[AVP_JOB_ID_MAX], next[AVP_STAGE_MAX];
  uint64_t deadline = 0;
  if (!avp_pop_name(msg, stage_name, sizeof stage_name) ||
      !avp_pop_name(msg, job_id, sizeof job_id) ||
      strcmp(stage_name, AVP_STATUS_STAGE) == 0)
    return false;
  bool forwards = zmsg_size(msg) > 0;
  zframe_t *payload = NULL;
  if (forwards) {
    if (!avp_pop_name(msg, next, sizeof next) || !avp_pop_uint(msg, &deadline))
      return false;
    payload = zmsg_pop(msg);
    if (!payload_ok(self, payload)) {
      zframe_destroy(&payload);
      return false;
    }
  } else if (!done) {
    return false; /* a PARTIAL always carries something */
  }

  /* An unknown peer is a worker from before a broker restart: it joins its stage. */
  peer_t *peer = peer_require(self, identity);
  if (!peer || !peer_join(self, peer, stage_name)) {
    zframe_destroy(&payload);
    return false;
  }
  bool holds_it = peer->in_flight && strcmp(peer->in_flight->job_id, job_id) == 0;
  bool ignored = holds_it && peer->in_flight_ignored;
  if (forwards && job_set_contains(self->cancelled, job_id))
    self->count.cancelled_dropped++;
  else if (forwards && !ignored)
    forward_job(self, job_id, next, (int64_t) deadline, &payload);
  zframe_destroy(&payload);
  if (done) {
    if (holds_it) {
      /* A cancelled or late job kept its worker busy all the same: it counts. */
      stage_t *stage = zhashx_lookup(self->stages, peer->in_flight->stage);
      if (stage) {
        service_time_add(&stage->service, clock_mono_ms() - peer->in_flight->dispatched_ms);
        /* Forgotten (full, out of memory), the job's entries go one at a time. */
        (void) job_set_remember(stage->started, job_id, peer->in_flight->deadline_ms);
      }
      entry_destroy(&peer->in_flight);
    }
    if (!peer->in_flight)
      peer_set_idle(self, peer, true);
  }
  return true;
}

static bool on_status(broker_t *self, zmsg_t *msg)
{
  zframe_t *payload = zmsg_pop(msg);
  if (!payload_ok(self, payload)) {
    zframe_destroy(&payload);
    return false;
  }
  if (status_is_cancelled(self, payload)) {
    zframe_destroy(&payload);
    self->count.cancelled_dropped++;
    return true;
  }
  queue_status(self, &payload);
  return true;
}

/* CANCEL: the job's gateway needs nothing more of it. Its queued entries (a
 * streamed job has several) go now; a worker holding it keeps it until DONE, which
 * gives the worker its credit back but forwards nothing; and the id is remembered
 * until the job's deadline, so stray forwards and status events are dropped too. */
static bool on_cancel(broker_t *self, zmsg_t *msg)
{
  char job_id[AVP_JOB_ID_MAX];
  if (!avp_pop_name(msg, job_id, sizeof job_id))
    return false;
  int64_t until = 0;
  size_t queued = 0, held = 0;
  for (stage_t *stage = zhashx_first(self->stages); stage; stage = zhashx_next(self->stages)) {
    if (!strcmp(stage->name, AVP_STATUS_STAGE))
      continue;
    /* zlistx_delete moves the cursor back, so deleting while walking forwards is safe. */
    for (entry_t *entry = zlistx_first(stage->queue); entry; entry = zlistx_next(stage->queue)) {
      if (strcmp(entry->job_id, job_id) != 0)
        continue;
      if (entry->deadline_ms > until)
        until = entry->deadline_ms;
      zlistx_delete(stage->queue, zlistx_cursor(stage->queue));
      queued++;
    }
  }
  for (peer_t *peer = zhashx_first(self->peers); peer; peer = zhashx_next(self->peers)) {
    if (!peer->in_flight || strcmp(peer->in_flight->job_id, job_id) != 0)
      continue;
    if (peer->in_flight->deadline_ms > until)
      until = peer->in_flight->deadline_ms;
    peer->in_flight_ignored = true;
    held++;
  }
  if (job_set_remember(self->cancelled, job_id,
                       until ? until : clock_wall_ms() + CANCEL_MEMORY_MS) != 0)
    log_msg(LOG_WARN, "out_of_memory", "cannot remember cancelled job %s", job_id);
  self->count.jobs_cancelled++;
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "job_id", job_id);
  cJSON_AddNumberToObject(fields, "queued", (double) queued);
  cJSON_AddNumberToObject(fields, "held", (double) held);
  log_event(LOG_INFO, "job_cancelled", fields);
  return true;
}

/* Keeps the counters a worker sends with its heartbeat: {"name": {"label": n}}. */
static void keep_counters(peer_t *peer, zmsg_t *msg)
{
  zframe_t *frame = zmsg_pop(msg);
  if (!frame || zframe_size(frame) > MAX_COUNTERS_JSON) {
    zframe_destroy(&frame);
    return;
  }
  cJSON *counters = cJSON_ParseWithLength((const char *) zframe_data(frame), zframe_size(frame));
  zframe_destroy(&frame);
  if (!cJSON_IsObject(counters)) {
    cJSON_Delete(counters);
    return;
  }
  cJSON_Delete(peer->counters);
  peer->counters = counters;
}

/* Adds every numeric {"name": {"label": n}} of `from` into `into`. */
static void sum_counters(cJSON *into, const cJSON *from)
{
  const cJSON *group;
  cJSON_ArrayForEach(group, from) {
    if (!cJSON_IsObject(group) || !group->string)
      continue;
    cJSON *sum = cJSON_GetObjectItemCaseSensitive(into, group->string);
    if (!sum && !(sum = cJSON_AddObjectToObject(into, group->string)))
      continue;
    const cJSON *value;
    cJSON_ArrayForEach(value, group) {
      if (!cJSON_IsNumber(value) || !value->string)
        continue;
      cJSON *total = cJSON_GetObjectItemCaseSensitive(sum, value->string);
      if (total)
        cJSON_SetNumberValue(total, total->valuedouble + value->valuedouble);
      else
        cJSON_AddNumberToObject(sum, value->string, value->valuedouble);
    }
  }
}

static void on_info(broker_t *self, zframe_t *identity)
{
  cJSON *info = cJSON_CreateObject();
  cJSON *stages = cJSON_AddObjectToObject(info, "stages");
  for (stage_t *stage = zhashx_first(self->stages); stage; stage = zhashx_next(self->stages)) {
    cJSON *item = cJSON_AddObjectToObject(stages, stage->name);
    size_t in_flight = 0;
    for (peer_t *peer = zhashx_first(self->peers); peer; peer = zhashx_next(self->peers))
      if (peer->in_flight && strcmp(peer->stage, stage->name) == 0)
        in_flight++;
    cJSON_AddNumberToObject(item, "workers", (double) stage->workers);
    cJSON_AddNumberToObject(item, "idle", (double) zlistx_size(stage->idle));
    cJSON_AddNumberToObject(item, "queued", (double) zlistx_size(stage->queue));
    /* What the queue holds in memory: payloads are most of the broker's RSS. */
    size_t queued_bytes = 0;
    for (entry_t *entry = zlistx_first(stage->queue); entry; entry = zlistx_next(stage->queue))
      queued_bytes += zframe_size(entry->payload);
    cJSON_AddNumberToObject(item, "queued_bytes", (double) queued_bytes);
    cJSON_AddNumberToObject(item, "in_flight", (double) in_flight);
    /* Jobs whose later entries may go side by side here (bounded by STARTED_MAX). */
    cJSON_AddNumberToObject(item, "started_jobs", (double) job_set_size(stage->started));
    if (strcmp(stage->name, AVP_STATUS_STAGE) != 0)
      cJSON_AddNumberToObject(item, "service_ms", stage->service.average_ms);
  }
  /* What a submission now would be told: its wait, against BROKER_ADMIT_PERCENT. */
  cJSON *admission = cJSON_AddObjectToObject(info, "admission");
  cJSON_AddNumberToObject(admission, "wait_ms", (double) estimated_wait_ms(self));
  cJSON_AddNumberToObject(admission, "percent", (double) self->cfg.admit_percent);
  cJSON *workers = cJSON_AddObjectToObject(info, "worker_counters");
  for (peer_t *peer = zhashx_first(self->peers); peer; peer = zhashx_next(self->peers)) {
    if (!peer->counters || !peer->stage[0])
      continue;
    cJSON *sums = cJSON_GetObjectItemCaseSensitive(workers, peer->stage);
    if (!sums)
      sums = cJSON_AddObjectToObject(workers, peer->stage);
    if (sums)
      sum_counters(sums, peer->counters);
  }
  cJSON *counters = cJSON_AddObjectToObject(info, "counters");
  const counters_t *c = &self->count;
  cJSON_AddNumberToObject(counters, "frames_dropped", (double) c->frames_dropped);
  cJSON_AddNumberToObject(counters, "jobs_submitted", (double) c->jobs_submitted);
  cJSON_AddNumberToObject(counters, "jobs_nacked", (double) c->jobs_nacked);
  cJSON_AddNumberToObject(counters, "jobs_nacked_wait", (double) c->jobs_nacked_wait);
  cJSON_AddNumberToObject(counters, "jobs_dispatched", (double) c->jobs_dispatched);
  cJSON_AddNumberToObject(counters, "jobs_forwarded", (double) c->jobs_forwarded);
  cJSON_AddNumberToObject(counters, "jobs_requeued", (double) c->jobs_requeued);
  cJSON_AddNumberToObject(counters, "jobs_timed_out", (double) c->jobs_timed_out);
  cJSON_AddNumberToObject(counters, "jobs_worker_lost", (double) c->jobs_worker_lost);
  cJSON_AddNumberToObject(counters, "jobs_cancelled", (double) c->jobs_cancelled);
  cJSON_AddNumberToObject(counters, "cancelled_dropped", (double) c->cancelled_dropped);
  cJSON_AddNumberToObject(counters, "cancelled_remembered", (double) job_set_size(self->cancelled));
  cJSON_AddNumberToObject(counters, "status_events", (double) c->status_events);
  cJSON_AddNumberToObject(counters, "status_dropped", (double) c->status_dropped);
  char *text = cJSON_PrintUnformatted(info);
  cJSON_Delete(info);
  zmsg_t *msg = text ? avp_msg_new(AVP_INFO) : NULL;
  if (msg && zmsg_addstr(msg, text) == 0)
    send_to_identity(self, identity, &msg);
  zmsg_destroy(&msg);
  free(text);
}

static void on_heartbeat(broker_t *self, zframe_t *identity, zmsg_t *msg)
{
  peer_t *peer = peer_lookup(self, identity);
  if (peer) {
    if (zmsg_size(msg))
      keep_counters(peer, msg);
    return;
  }
  /* We don't know this peer: we restarted, or declared it dead. It must join again. */
  zmsg_t *reply = avp_msg_new(AVP_DISCONNECT);
  if (reply)
    send_to_identity(self, identity, &reply);
}

static void on_disconnect(broker_t *self, zframe_t *identity)
{
  peer_t *peer = peer_lookup(self, identity);
  if (peer)
    peer_remove(self, peer, "disconnect");
}

/* Handles one message from the ROUTER; anything malformed is dropped and counted. */
static void on_message(broker_t *self, zmsg_t *msg)
{
  zframe_t *identity = zmsg_pop(msg);
  char version[8], command[16];
  bool ok = identity && avp_pop_name(msg, version, sizeof version) &&
            strcmp(version, AVP_VERSION) == 0 && avp_pop_name(msg, command, sizeof command);
  if (ok) {
    peer_t *peer = peer_lookup(self, identity);
    if (peer)
      peer->expiry = clock_mono_ms() + (int64_t) AVP_LIVENESS * self->cfg.heartbeat_ms;
    if (!strcmp(command, AVP_READY))
      ok = on_ready(self, identity, msg);
    else if (!strcmp(command, AVP_HEARTBEAT))
      on_heartbeat(self, identity, msg);
    else if (!strcmp(command, AVP_SUBMIT))
      ok = on_submit(self, identity, msg);
    else if (!strcmp(command, AVP_PARTIAL))
      ok = on_result(self, identity, msg, false);
    else if (!strcmp(command, AVP_DONE))
      ok = on_result(self, identity, msg, true);
    else if (!strcmp(command, AVP_STATUS))
      ok = on_status(self, msg);
    else if (!strcmp(command, AVP_INFO))
      on_info(self, identity);
    else if (!strcmp(command, AVP_CANCEL))
      ok = on_cancel(self, msg);
    else if (!strcmp(command, AVP_DISCONNECT))
      on_disconnect(self, identity);
    else
      ok = false;
    /* A peer that just joined gets its liveness clock now. */
    peer = ok ? peer_lookup(self, identity) : NULL;
    if (peer && !peer->expiry)
      peer->expiry = clock_mono_ms() + (int64_t) AVP_LIVENESS * self->cfg.heartbeat_ms;
  }
  if (!ok) {
    self->count.frames_dropped++;
    log_msg(LOG_DEBUG, "frame_dropped", "malformed or unknown message");
  }
  zframe_destroy(&identity);
  zmsg_destroy(&msg);
}

/* ---------------------------------------------------------------- timers */

static void send_heartbeats_and_reap(broker_t *self)
{
  int64_t now = clock_mono_ms();
  zlistx_t *dead = zlistx_new();
  for (peer_t *peer = zhashx_first(self->peers); peer; peer = zhashx_next(self->peers)) {
    if (peer->expiry && peer->expiry < now) {
      if (dead)
        zlistx_add_end(dead, peer);
      continue;
    }
    zmsg_t *msg = avp_msg_new(AVP_HEARTBEAT);
    send_to(self, peer, &msg);
  }
  for (peer_t *peer = dead ? zlistx_first(dead) : NULL; peer; peer = zlistx_next(dead))
    peer_remove(self, peer, "heartbeat_expired");
  zlistx_destroy(&dead);
}

static void fail_expired(broker_t *self)
{
  int64_t now = clock_wall_ms();
  for (stage_t *stage = zhashx_first(self->stages); stage; stage = zhashx_next(self->stages)) {
    /* zlistx_delete moves the cursor back, so deleting while walking forwards is safe. */
    for (entry_t *entry = zlistx_first(stage->queue); entry; entry = zlistx_next(stage->queue)) {
      if (!entry->deadline_ms || entry->deadline_ms >= now)
        continue;
      char message[160];
      snprintf(message, sizeof message,
               "No answer in time: the request waited too long for the %s stage.", stage->name);
      emit_failure(self, entry, "timeout", message);
      self->count.jobs_timed_out++;
      zlistx_delete(stage->queue, zlistx_cursor(stage->queue));
    }
  }
  int64_t mono = clock_mono_ms();
  for (peer_t *peer = zhashx_first(self->peers); peer; peer = zhashx_next(self->peers)) {
    entry_t *held = peer->in_flight;
    if (!held || peer->in_flight_ignored)
      continue;
    stage_t *stage = zhashx_lookup(self->stages, held->stage);
    bool stuck = stage && mono - held->dispatched_ms > stage->timeout_ms;
    if (held->deadline_ms >= now && !stuck)
      continue;
    /* The worker keeps it until it answers or dies; its late result is ignored. */
    char message[160];
    if (stuck)
      snprintf(message, sizeof message, "No answer in time: the %s stage took longer than %d s.",
               held->stage, stage->timeout_ms / 1000);
    else
      snprintf(message, sizeof message, "No answer in time: the %s stage took too long.",
               held->stage);
    emit_failure(self, held, "timeout", message);
    self->count.jobs_timed_out++;
    peer->in_flight_ignored = true;
  }
}

/* ---------------------------------------------------------------- actor */

static void broker_free(broker_t *self)
{
  zhashx_destroy(&self->peers);
  zhashx_destroy(&self->stages);
  job_set_destroy(&self->cancelled);
  zsock_destroy(&self->router);
}

static bool on_pipe(broker_t *self)
{
  char *command = zstr_recv(self->pipe);
  if (!command)
    return false;
  bool keep_going = true;
  if (!strcmp(command, "$TERM"))
    keep_going = false;
  else if (!strcmp(command, "ENDPOINT")) {
    char *endpoint = self->router ? zsock_last_endpoint(self->router) : NULL;
    zstr_send(self->pipe, endpoint ? endpoint : "");
    zstr_free(&endpoint);
  }
  free(command);
  return keep_going;
}

void broker_actor(zsock_t *pipe, void *args)
{
  broker_t self = {.cfg = *(broker_config_t *) args, .pipe = pipe};
  self.peers = zhashx_new();
  self.stages = zhashx_new();
  self.cancelled = job_set_new(CANCELLED_MAX);
  self.router = zsock_new(ZMQ_ROUTER);
  if (self.peers)
    zhashx_set_destructor(self.peers, peer_destructor);
  if (self.stages)
    zhashx_set_destructor(self.stages, stage_destructor);
  bool ready = self.peers && self.stages && self.cancelled && self.router;
  zactor_t *auth = ready ? curve_start(&self, &ready) : NULL;
  if (ready) {
    /* Oversized messages are cut off by libzmq before they are buffered whole. */
    zsock_set_maxmsgsize(self.router, (int) (self.cfg.max_payload + 65536));
    zsock_set_router_mandatory(self.router, 0);
    zsock_set_sndhwm(self.router, 100000);
    zsock_set_rcvhwm(self.router, 100000);
    ready = zsock_bind(self.router, "%s", self.cfg.endpoint) >= 0;
    if (!ready)
      log_msg(LOG_ERROR, "bind_failed", "cannot bind %s: %s", self.cfg.endpoint,
              zmq_strerror(zmq_errno()));
  }
  if (!ready)
    zsock_destroy(&self.router);
  zsock_signal(pipe, 0);

  zpoller_t *poller = zpoller_new(pipe, ready ? self.router : NULL, NULL);
  self.heartbeat_at = clock_mono_ms() + self.cfg.heartbeat_ms;
  self.sweep_at = clock_mono_ms() + SWEEP_MS;
  if (ready) {
    char *endpoint = zsock_last_endpoint(self.router);
    log_msg(LOG_INFO, "broker_started", "listening on %s", endpoint ? endpoint : "?");
    zstr_free(&endpoint);
  }
  while (poller) {
    int64_t now = clock_mono_ms();
    int64_t wait = (self.sweep_at < self.heartbeat_at ? self.sweep_at : self.heartbeat_at) - now;
    void *which = zpoller_wait(poller, wait > 0 ? (int) wait : 0);
    if (which == pipe) {
      if (!on_pipe(&self))
        break;
    } else if (which && which == self.router) {
      /* Drain what is there so timers can't starve under a flood. */
      for (int i = 0; i < 1000 && (zsock_events(self.router) & ZMQ_POLLIN); i++) {
        zmsg_t *msg = zmsg_recv(self.router);
        if (!msg)
          break;
        on_message(&self, msg);
      }
    } else if (zpoller_terminated(poller))
      break;
    now = clock_mono_ms();
    if (ready && now >= self.heartbeat_at) {
      send_heartbeats_and_reap(&self);
      forget_past_jobs(&self);
      self.heartbeat_at = now + self.cfg.heartbeat_ms;
    }
    if (ready && now >= self.sweep_at) {
      fail_expired(&self);
      self.sweep_at = now + SWEEP_MS;
    }
    if (ready)
      dispatch_all(&self);
  }
  zpoller_destroy(&poller);
  broker_free(&self);
  zactor_destroy(&auth);
}
