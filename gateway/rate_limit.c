/* rate_limit: token buckets in a strmap keyed by client, under one mutex.
 * Refill is computed lazily from the time of the last take, so an idle client
 * costs nothing until it comes back or is swept. */
#include "rate_limit.h"

#include "strmap.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Full buckets are swept at most this often: often enough that memory follows
 * the number of recently active clients, rarely enough to cost nothing. */
#define SWEEP_INTERVAL_MS 60000

typedef struct {
  double tokens;
  int64_t last_ms; /* when `tokens` was last brought up to date (and the client seen) */
} bucket_t;

struct rate_limiter {
  pthread_mutex_t mutex;
  strmap_t *buckets;
  double per_ms;   /* tokens regained per millisecond */
  double burst;
  size_t max_clients;
  int64_t next_sweep_ms;
};

/* Arguments of the strmap_remove_if predicates below. */
typedef struct {
  const rate_limiter_t *limiter;
  int64_t now_ms;
  int64_t oldest_ms; /* for the least-recently-seen search */
} sweep_t;

static double refilled(const rate_limiter_t *self, const bucket_t *bucket, int64_t now_ms)
{
  double elapsed = now_ms > bucket->last_ms ? (double) (now_ms - bucket->last_ms) : 0;
  double tokens = bucket->tokens + elapsed * self->per_ms;
  return tokens < self->burst ? tokens : self->burst;
}

static bool is_full(const void *value, void *arg)
{
  const sweep_t *sweep = arg;
  return refilled(sweep->limiter, value, sweep->now_ms) >= sweep->limiter->burst;
}

/* Never removes: records the oldest last-seen time (strmap has no iterator). */
static bool find_oldest(const void *value, void *arg)
{
  sweep_t *sweep = arg;
  const bucket_t *bucket = value;
  if (bucket->last_ms < sweep->oldest_ms)
    sweep->oldest_ms = bucket->last_ms;
  return false;
}

static bool is_oldest(const void *value, void *arg)
{
  const sweep_t *sweep = arg;
  return ((const bucket_t *) value)->last_ms <= sweep->oldest_ms;
}

/* Makes room for one more client: full buckets first, else the least recently
 * seen ones. */
static void make_room(rate_limiter_t *self, int64_t now_ms)
{
  sweep_t sweep = {.limiter = self, .now_ms = now_ms, .oldest_ms = INT64_MAX};
  if (strmap_remove_if(self->buckets, is_full, &sweep) > 0)
    return;
  strmap_remove_if(self->buckets, find_oldest, &sweep);
  strmap_remove_if(self->buckets, is_oldest, &sweep);
}

rate_limiter_t *rate_limiter_new(unsigned per_min, unsigned burst, size_t max_clients)
{
  if (!per_min || !burst || !max_clients)
    return NULL;
  rate_limiter_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->buckets = strmap_new(free);
  if (!self->buckets || pthread_mutex_init(&self->mutex, NULL) != 0) {
    strmap_destroy(&self->buckets);
    free(self);
    return NULL;
  }
  self->per_ms = per_min / 60000.0;
  self->burst = burst;
  self->max_clients = max_clients;
  return self;
}

void rate_limiter_destroy(rate_limiter_t **self_p)
{
  rate_limiter_t *self = *self_p;
  if (!self)
    return;
  strmap_destroy(&self->buckets);
  pthread_mutex_destroy(&self->mutex);
  free(self);
  *self_p = NULL;
}

unsigned rate_limiter_take(rate_limiter_t *self, const char *client, int64_t now_ms)
{
  pthread_mutex_lock(&self->mutex);
  if (now_ms >= self->next_sweep_ms) {
    sweep_t sweep = {.limiter = self, .now_ms = now_ms};
    strmap_remove_if(self->buckets, is_full, &sweep);
    self->next_sweep_ms = now_ms + SWEEP_INTERVAL_MS;
  }
  bucket_t *bucket = strmap_get(self->buckets, client);
  if (!bucket) {
    if (strmap_size(self->buckets) >= self->max_clients)
      make_room(self, now_ms);
    bucket = malloc(sizeof *bucket);
    if (!bucket || strmap_put(self->buckets, client, bucket) != 0) {
      free(bucket);
      pthread_mutex_unlock(&self->mutex);
      return 0;
    }
    bucket->tokens = self->burst;
    bucket->last_ms = now_ms;
  }
  bucket->tokens = refilled(self, bucket, now_ms);
  bucket->last_ms = now_ms;
  unsigned wait_s = 0;
  if (bucket->tokens >= 1) {
    bucket->tokens -= 1;
  } else {
    double wait_ms = (1 - bucket->tokens) / self->per_ms;
    wait_s = (unsigned) (wait_ms / 1000) + 1;
  }
  pthread_mutex_unlock(&self->mutex);
  return wait_s;
}

size_t rate_limiter_size(rate_limiter_t *self)
{
  pthread_mutex_lock(&self->mutex);
  size_t size = strmap_size(self->buckets);
  pthread_mutex_unlock(&self->mutex);
  return size;
}
