/* job_set: job ids remembered until a wall-clock time, bounded (job_set.h). A czmq
 * hash table of id -> owned int64_t; the sets are small (thousands), so making room
 * and expiring walk the table. */
#include "job_set.h"

#include <czmq.h>

struct job_set {
  zhashx_t *until;           /* job id -> int64_t* wall ms, owned */
  size_t max;
};

static void free_until(void **item)
{
  free(*item);
  *item = NULL;
}

job_set_t *job_set_new(size_t max)
{
  job_set_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->until = zhashx_new();
  if (!self->until) {
    free(self);
    return NULL;
  }
  zhashx_set_destructor(self->until, free_until);
  self->max = max ? max : 1;
  return self;
}

void job_set_destroy(job_set_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  zhashx_destroy(&(*self_p)->until);
  free(*self_p);
  *self_p = NULL;
}

static void forget_soonest(job_set_t *self)
{
  const void *soonest_key = NULL;
  int64_t soonest = INT64_MAX;
  for (int64_t *when = zhashx_first(self->until); when; when = zhashx_next(self->until))
    if (*when < soonest) {
      soonest = *when;
      soonest_key = zhashx_cursor(self->until);
    }
  if (soonest_key)
    zhashx_delete(self->until, soonest_key);
}

int job_set_remember(job_set_t *self, const char *job_id, int64_t until_ms)
{
  int64_t *until = zhashx_lookup(self->until, job_id);
  if (until) {
    if (*until < until_ms)
      *until = until_ms;
    return 0;
  }
  if (zhashx_size(self->until) >= self->max)
    forget_soonest(self);
  until = malloc(sizeof *until);
  if (!until)
    return -1;
  *until = until_ms;
  if (zhashx_insert(self->until, job_id, until) != 0) {
    free(until);
    return -1;
  }
  return 0;
}

bool job_set_contains(job_set_t *self, const char *job_id)
{
  return zhashx_size(self->until) && zhashx_lookup(self->until, job_id);
}

void job_set_forget(job_set_t *self, const char *job_id)
{
  zhashx_delete(self->until, job_id);
}

void job_set_forget_expired(job_set_t *self, int64_t now_ms)
{
  zlistx_t *expired = zlistx_new();
  if (!expired)
    return;
  /* Copies of the keys: a table must not change while it is walked. */
  zlistx_set_destructor(expired, (zlistx_destructor_fn *) zstr_free);
  for (int64_t *until = zhashx_first(self->until); until; until = zhashx_next(self->until)) {
    char *job_id = *until < now_ms ? strdup(zhashx_cursor(self->until)) : NULL;
    if (job_id && !zlistx_add_end(expired, job_id))
      free(job_id);
  }
  for (const char *job_id = zlistx_first(expired); job_id; job_id = zlistx_next(expired))
    zhashx_delete(self->until, job_id);
  zlistx_destroy(&expired);
}

size_t job_set_size(job_set_t *self)
{
  return zhashx_size(self->until);
}
