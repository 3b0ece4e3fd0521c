/* session_store: in-memory sessions behind one mutex. Each session keeps a
 * bounded ring of turns, so a long conversation costs at most max_turns texts,
 * and the store keeps at most max_sessions sessions on a recency list, so a
 * client opening a new session per question cannot grow the gateway for a whole
 * TTL: the least recently used goes first. A store made by
 * session_store_new_redis passes every call on to session_store_redis.c instead. */
#include "session_store.h"

#include "log.h"
#include "session_store_redis.h"
#include "strmap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TURN_TEXT_MAX 16384 /* longest turn text kept, bytes */
#define EVICTION_LOG_INTERVAL_MS 60000 /* at most one sessions_evicted line a minute */

typedef struct session {
  char id[SESSION_ID_MAX + 1];
  session_turn_t *ring;   /* `capacity` slots; the oldest live turn is at `first` */
  size_t capacity;
  size_t first;
  size_t count;
  int64_t used_ms;
  struct session *newer, *older; /* neighbours on the store's recency list */
} session_t;

struct session_store {
  pthread_mutex_t lock;
  strmap_t *sessions;     /* in memory, owns the sessions; NULL for a Redis store */
  session_t *newest, *oldest; /* every session of `sessions`, by last use */
  redis_link_t *redis;    /* borrowed; NULL for an in-memory store */
  size_t max_turns;
  size_t max_sessions;
  int64_t ttl_ms;
  uint64_t evicted;          /* live sessions evicted for room, ever */
  uint64_t evicted_unlogged; /* of them, not yet in a log line */
  int64_t next_eviction_log_ms;
};

static void session_free(void *value)
{
  session_t *session = value;
  for (size_t i = 0; i < session->capacity; i++)
    free(session->ring[i].text);
  free(session->ring);
  free(session);
}

static session_t *session_new(const char *id, size_t capacity, int64_t now_ms)
{
  session_t *session = calloc(1, sizeof *session);
  if (!session)
    return NULL;
  session->ring = calloc(capacity, sizeof *session->ring);
  if (!session->ring) {
    free(session);
    return NULL;
  }
  snprintf(session->id, sizeof session->id, "%s", id);
  session->capacity = capacity;
  session->used_ms = now_ms;
  return session;
}

session_store_t *session_store_new(size_t max_turns, int64_t ttl_ms)
{
  session_store_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->sessions = strmap_new(session_free);
  if (!self->sessions || pthread_mutex_init(&self->lock, NULL) != 0) {
    strmap_destroy(&self->sessions);
    free(self);
    return NULL;
  }
  self->max_turns = max_turns ? max_turns : 1;
  self->max_sessions = SESSION_STORE_MAX_DEFAULT;
  self->ttl_ms = ttl_ms;
  return self;
}

session_store_t *session_store_new_redis(redis_link_t *redis, size_t max_turns, int64_t ttl_ms)
{
  session_store_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  if (pthread_mutex_init(&self->lock, NULL) != 0) {
    free(self);
    return NULL;
  }
  self->redis = redis;
  self->max_turns = max_turns ? max_turns : 1;
  self->ttl_ms = ttl_ms;
  return self;
}

void session_store_destroy(session_store_t **self_p)
{
  session_store_t *self = *self_p;
  if (!self)
    return;
  strmap_destroy(&self->sessions);
  pthread_mutex_destroy(&self->lock);
  free(self);
  *self_p = NULL;
}

void session_store_set_max_sessions(session_store_t *self, size_t max_sessions)
{
  pthread_mutex_lock(&self->lock);
  self->max_sessions = max_sessions ? max_sessions : 1;
  pthread_mutex_unlock(&self->lock);
}

/* ---- in memory: map + recency list --------------------------------------- */

static void unlink_session(session_store_t *self, session_t *session)
{
  if (session->newer)
    session->newer->older = session->older;
  else
    self->newest = session->older;
  if (session->older)
    session->older->newer = session->newer;
  else
    self->oldest = session->newer;
  session->newer = session->older = NULL;
}

static void link_newest(session_store_t *self, session_t *session)
{
  session->older = self->newest;
  session->newer = NULL;
  if (self->newest)
    self->newest->newer = session;
  self->newest = session;
  if (!self->oldest)
    self->oldest = session;
}

/* Marks a session used now: its TTL starts again and it is the last to evict. */
static void touch(session_store_t *self, session_t *session, int64_t now_ms)
{
  session->used_ms = now_ms;
  unlink_session(self, session);
  link_newest(self, session);
}

/* Unlinks and frees (through the map) one session. */
static void drop(session_store_t *self, session_t *session)
{
  char id[SESSION_ID_MAX + 1];
  memcpy(id, session->id, sizeof id); /* the map frees the session holding it */
  unlink_session(self, session);
  strmap_remove(self->sessions, id);
}

static bool is_expired(const session_store_t *self, const session_t *session, int64_t now_ms)
{
  return now_ms - session->used_ms > self->ttl_ms;
}

/* An expired session is treated as gone at once, not only after the sweep. */
static session_t *lookup(session_store_t *self, const char *id, int64_t now_ms)
{
  session_t *session = strmap_get(self->sessions, id);
  if (session && is_expired(self, session, now_ms)) {
    drop(self, session);
    return NULL;
  }
  return session;
}

/* Makes room for one more session, least recently used first. An expired one
 * dropped here is expiry that came early, not an eviction. */
static void make_room(session_store_t *self, int64_t now_ms)
{
  while (strmap_size(self->sessions) >= self->max_sessions && self->oldest) {
    if (!is_expired(self, self->oldest, now_ms)) {
      self->evicted++;
      self->evicted_unlogged++;
    }
    drop(self, self->oldest);
  }
}

/* Whether evictions are to be logged now: the first one after a quiet minute
 * at once, a flood at most once a minute (one line per event would let the
 * flood fill the log too). Moves the unlogged count to *count. */
static bool eviction_log_due(session_store_t *self, int64_t now_ms, uint64_t *count)
{
  if (!self->evicted_unlogged || now_ms < self->next_eviction_log_ms)
    return false;
  *count = self->evicted_unlogged;
  self->evicted_unlogged = 0;
  self->next_eviction_log_ms = now_ms + EVICTION_LOG_INTERVAL_MS;
  return true;
}

static void log_evictions(uint64_t count, uint64_t total, size_t max_sessions)
{
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddNumberToObject(fields, "evicted", (double) count);
  cJSON_AddNumberToObject(fields, "evicted_total", (double) total);
  cJSON_AddNumberToObject(fields, "max_sessions", (double) max_sessions);
  log_event(LOG_WARN, "sessions_evicted", fields);
}

static int open_locked(session_store_t *self, const char *id, int64_t now_ms)
{
  session_t *session = lookup(self, id, now_ms);
  if (session) {
    touch(self, session, now_ms);
    return 0;
  }
  make_room(self, now_ms);
  session = session_new(id, self->max_turns, now_ms);
  if (!session)
    return -1;
  if (strmap_put(self->sessions, id, session) != 0) {
    session_free(session);
    return -1;
  }
  link_newest(self, session);
  return 0;
}

int session_store_open(session_store_t *self, const char *requested, int64_t now_ms,
                       char *id_out)
{
  char fresh[ID_HEX_SIZE];
  const char *id = requested;
  if (!requested || !*requested) {
    if (id_random_hex(fresh) != 0)
      return -1;
    id = fresh;
  } else if (!id_is_valid(requested)) {
    return -1;
  }
  int rc;
  if (self->redis) {
    rc = session_store_redis_open(self->redis, self->ttl_ms, id);
  } else {
    uint64_t evicted = 0;
    pthread_mutex_lock(&self->lock);
    rc = open_locked(self, id, now_ms);
    bool log_due = eviction_log_due(self, now_ms, &evicted);
    uint64_t evicted_total = self->evicted;
    size_t max_sessions = self->max_sessions;
    pthread_mutex_unlock(&self->lock);
    if (log_due) /* outside the lock: writing the line may block */
      log_evictions(evicted, evicted_total, max_sessions);
  }
  if (rc == 0)
    snprintf(id_out, SESSION_ID_MAX + 1, "%s", id);
  return rc;
}

static const session_turn_t *turn_at(const session_t *session, size_t i)
{
  return &session->ring[(session->first + i) % session->capacity];
}

int session_store_turns(session_store_t *self, const char *id, int64_t now_ms,
                        session_turn_t **turns_out, size_t *count_out)
{
  if (self->redis)
    return session_store_redis_turns(self->redis, id, turns_out, count_out);
  *turns_out = NULL;
  *count_out = 0;
  pthread_mutex_lock(&self->lock);
  int rc = 0;
  session_t *session = lookup(self, id, now_ms);
  if (session && session->count) {
    session_turn_t *turns = calloc(session->count, sizeof *turns);
    size_t copied = 0;
    for (; turns && copied < session->count; copied++) {
      const session_turn_t *turn = turn_at(session, copied);
      turns[copied] = *turn;
      turns[copied].text = strdup(turn->text);
      if (!turns[copied].text)
        break;
    }
    if (turns && copied == session->count) {
      *turns_out = turns;
      *count_out = copied;
    } else {
      session_turns_free(turns, copied);
      rc = -1;
    }
  }
  pthread_mutex_unlock(&self->lock);
  return rc;
}

void session_turns_free(session_turn_t *turns, size_t count)
{
  for (size_t i = 0; turns && i < count; i++)
    free(turns[i].text);
  free(turns);
}

static bool has_job(const session_t *session, const char *job_id)
{
  for (size_t i = 0; i < session->count; i++)
    if (strcmp(turn_at(session, i)->job_id, job_id) == 0)
      return true;
  return false;
}

/* Drops the oldest turn when the ring is full: history is a sliding window. */
static void push_turn(session_t *session, const char *role, const char *text,
                      const char *job_id)
{
  char *copy = strndup(text, TURN_TEXT_MAX);
  if (!copy)
    return;
  if (session->count == session->capacity) {
    free(session->ring[session->first].text);
    session->ring[session->first].text = NULL;
    session->first = (session->first + 1) % session->capacity;
    session->count--;
  }
  session_turn_t *slot = &session->ring[(session->first + session->count) % session->capacity];
  snprintf(slot->role, sizeof slot->role, "%s", role);
  snprintf(slot->job_id, sizeof slot->job_id, "%s", job_id);
  slot->text = copy;
  session->count++;
}

void session_store_append_exchange(session_store_t *self, const char *id, const char *job_id,
                                   const char *question, const char *reply, int64_t now_ms)
{
  if (self->redis) {
    session_store_redis_append(self->redis, self->max_turns, self->ttl_ms, id, job_id, question,
                               reply);
    return;
  }
  pthread_mutex_lock(&self->lock);
  session_t *session = lookup(self, id, now_ms);
  if (session && !has_job(session, job_id)) {
    if (question && *question)
      push_turn(session, "user", question, job_id);
    if (reply && *reply)
      push_turn(session, "assistant", reply, job_id);
    touch(self, session, now_ms);
  }
  pthread_mutex_unlock(&self->lock);
}

static cJSON *render(const session_t *session)
{
  cJSON *root = cJSON_CreateObject();
  if (!root)
    return NULL;
  cJSON_AddStringToObject(root, "session_id", session->id);
  cJSON *turns = cJSON_AddArrayToObject(root, "turns");
  for (size_t i = 0; turns && i < session->count; i++) {
    const session_turn_t *turn = turn_at(session, i);
    cJSON *item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "role", turn->role);
    cJSON_AddStringToObject(item, "text", turn->text);
    cJSON_AddStringToObject(item, "job_id", turn->job_id);
    cJSON_AddItemToArray(turns, item);
  }
  return root;
}

cJSON *session_store_render(session_store_t *self, const char *id, int64_t now_ms)
{
  if (self->redis)
    return session_store_redis_render(self->redis, id);
  pthread_mutex_lock(&self->lock);
  session_t *session = lookup(self, id, now_ms);
  cJSON *json = session ? render(session) : NULL;
  pthread_mutex_unlock(&self->lock);
  return json;
}

bool session_store_delete(session_store_t *self, const char *id, int64_t now_ms)
{
  if (self->redis)
    return session_store_redis_delete(self->redis, id);
  pthread_mutex_lock(&self->lock);
  session_t *session = lookup(self, id, now_ms);
  if (session)
    drop(self, session);
  pthread_mutex_unlock(&self->lock);
  return session != NULL;
}

bool session_store_count(session_store_t *self, size_t *count)
{
  if (self->redis)
    return false;
  pthread_mutex_lock(&self->lock);
  *count = strmap_size(self->sessions);
  pthread_mutex_unlock(&self->lock);
  return true;
}

uint64_t session_store_evicted(session_store_t *self)
{
  if (self->redis)
    return 0;
  pthread_mutex_lock(&self->lock);
  uint64_t evicted = self->evicted;
  pthread_mutex_unlock(&self->lock);
  return evicted;
}

/* Walks the recency list from its least recently used end and stops at the
 * first live session. Callers read the clock before taking the lock, so the
 * list's order can differ from used_ms by the time a caller waited for the lock:
 * a session that expired behind a live one goes at the next sweep, and lookup
 * treats it as gone meanwhile. */
size_t session_store_expire(session_store_t *self, int64_t now_ms)
{
  if (self->redis)
    return 0; /* Redis expires the keys itself */
  size_t removed = 0;
  pthread_mutex_lock(&self->lock);
  while (self->oldest && is_expired(self, self->oldest, now_ms)) {
    drop(self, self->oldest);
    removed++;
  }
  pthread_mutex_unlock(&self->lock);
  return removed;
}
