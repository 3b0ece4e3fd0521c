/* conn_guard: a mutex-guarded list of connections with their current deadline,
 * swept a few times a second. The descriptor of an entry stays valid while the
 * entry is in the list, because libmicrohttpd reports a connection closed
 * before it closes the socket and conn_guard_closed takes the same mutex the
 * sweeper holds while it calls shutdown(2). */
#include "conn_guard.h"

#include "clock.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define SWEEP_INTERVAL_MAX_MS 1000
#define SWEEP_INTERVAL_MIN_MS 50

typedef enum { PHASE_HEADERS, PHASE_BODY, PHASE_RESPONDING } phase_t;

struct conn_guard_entry {
  int fd;
  phase_t phase;
  int64_t deadline_ms; /* monotonic; meaningless while responding */
  bool cut;            /* shut down already: do not count it twice */
  conn_guard_entry_t *prev, *next;
};

struct conn_guard {
  pthread_mutex_t mutex;
  pthread_cond_t wake; /* signalled to stop the sweeper */
  pthread_t thread;
  bool stopping;
  int64_t header_timeout_ms;
  int64_t body_timeout_ms;
  int64_t sweep_interval_ms;
  conn_guard_entry_t *head;
  size_t open_count;
  uint64_t cut_count;
};

static void cut(conn_guard_t *self, conn_guard_entry_t *entry)
{
  const char *phase = entry->phase == PHASE_HEADERS ? "headers" : "body";
  /* shutdown, not close: the descriptor stays libmicrohttpd's to close. */
  if (shutdown(entry->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
    log_msg(LOG_WARN, "slow_client_cut_failed", "shutdown: %d", errno);
  entry->cut = true;
  self->cut_count++;
  log_msg(LOG_WARN, "slow_client_cut", "the client took too long to send its request %s",
          phase);
}

static void *sweep(void *arg)
{
  conn_guard_t *self = arg;
  pthread_mutex_lock(&self->mutex);
  while (!self->stopping) {
    int64_t now_ms = clock_mono_ms();
    for (conn_guard_entry_t *entry = self->head; entry; entry = entry->next)
      if (entry->phase != PHASE_RESPONDING && !entry->cut && now_ms >= entry->deadline_ms)
        cut(self, entry);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += (long) (self->sweep_interval_ms % 1000) * 1000000L;
    until.tv_sec += self->sweep_interval_ms / 1000 + until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    while (!self->stopping &&
           pthread_cond_timedwait(&self->wake, &self->mutex, &until) == 0)
      ;
  }
  pthread_mutex_unlock(&self->mutex);
  return NULL;
}

conn_guard_t *conn_guard_new(int64_t header_timeout_ms, int64_t body_timeout_ms)
{
  conn_guard_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->header_timeout_ms = header_timeout_ms;
  self->body_timeout_ms = body_timeout_ms;
  /* A tenth of the shorter deadline: cut-offs land within 10% of it. */
  int64_t shorter = header_timeout_ms < body_timeout_ms ? header_timeout_ms : body_timeout_ms;
  self->sweep_interval_ms = shorter / 10;
  if (self->sweep_interval_ms > SWEEP_INTERVAL_MAX_MS)
    self->sweep_interval_ms = SWEEP_INTERVAL_MAX_MS;
  if (self->sweep_interval_ms < SWEEP_INTERVAL_MIN_MS)
    self->sweep_interval_ms = SWEEP_INTERVAL_MIN_MS;
  pthread_condattr_t attr;
  bool ready = pthread_condattr_init(&attr) == 0;
  ready = ready && pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
          pthread_cond_init(&self->wake, &attr) == 0;
  if (ready && pthread_mutex_init(&self->mutex, NULL) != 0) {
    pthread_cond_destroy(&self->wake);
    ready = false;
  }
  if (ready && pthread_create(&self->thread, NULL, sweep, self) != 0) {
    pthread_cond_destroy(&self->wake);
    pthread_mutex_destroy(&self->mutex);
    ready = false;
  }
  pthread_condattr_destroy(&attr);
  if (!ready) {
    free(self);
    return NULL;
  }
  return self;
}

void conn_guard_destroy(conn_guard_t **self_p)
{
  conn_guard_t *self = *self_p;
  if (!self)
    return;
  pthread_mutex_lock(&self->mutex);
  self->stopping = true;
  pthread_cond_signal(&self->wake);
  pthread_mutex_unlock(&self->mutex);
  pthread_join(self->thread, NULL);
  while (self->head) {
    conn_guard_entry_t *next = self->head->next;
    free(self->head);
    self->head = next;
  }
  pthread_cond_destroy(&self->wake);
  pthread_mutex_destroy(&self->mutex);
  free(self);
  *self_p = NULL;
}

static void set_phase(conn_guard_entry_t *entry, phase_t phase, int64_t timeout_ms)
{
  entry->phase = phase;
  entry->deadline_ms = clock_mono_ms() + timeout_ms;
}

conn_guard_entry_t *conn_guard_opened(conn_guard_t *self, int fd)
{
  conn_guard_entry_t *entry = calloc(1, sizeof *entry);
  if (!entry)
    return NULL;
  entry->fd = fd;
  pthread_mutex_lock(&self->mutex);
  set_phase(entry, PHASE_HEADERS, self->header_timeout_ms);
  entry->next = self->head;
  if (self->head)
    self->head->prev = entry;
  self->head = entry;
  self->open_count++;
  pthread_mutex_unlock(&self->mutex);
  return entry;
}

void conn_guard_closed(conn_guard_t *self, conn_guard_entry_t *entry)
{
  if (!entry)
    return;
  pthread_mutex_lock(&self->mutex);
  if (entry->prev)
    entry->prev->next = entry->next;
  else
    self->head = entry->next;
  if (entry->next)
    entry->next->prev = entry->prev;
  self->open_count--;
  pthread_mutex_unlock(&self->mutex);
  free(entry);
}

void conn_guard_reading_body(conn_guard_t *self, conn_guard_entry_t *entry)
{
  if (!entry)
    return;
  pthread_mutex_lock(&self->mutex);
  set_phase(entry, PHASE_BODY, self->body_timeout_ms);
  pthread_mutex_unlock(&self->mutex);
}

void conn_guard_responding(conn_guard_t *self, conn_guard_entry_t *entry)
{
  if (!entry)
    return;
  pthread_mutex_lock(&self->mutex);
  entry->phase = PHASE_RESPONDING;
  pthread_mutex_unlock(&self->mutex);
}

void conn_guard_request_done(conn_guard_t *self, conn_guard_entry_t *entry)
{
  if (!entry)
    return;
  pthread_mutex_lock(&self->mutex);
  set_phase(entry, PHASE_HEADERS, self->header_timeout_ms);
  pthread_mutex_unlock(&self->mutex);
}

size_t conn_guard_open_count(conn_guard_t *self)
{
  pthread_mutex_lock(&self->mutex);
  size_t count = self->open_count;
  pthread_mutex_unlock(&self->mutex);
  return count;
}

uint64_t conn_guard_cut_count(conn_guard_t *self)
{
  pthread_mutex_lock(&self->mutex);
  uint64_t count = self->cut_count;
  pthread_mutex_unlock(&self->mutex);
  return count;
}
