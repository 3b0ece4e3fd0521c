/* job_set: job ids the broker remembers until a wall-clock time, at most a fixed
 * number at once. The broker keeps two kinds: cancelled jobs (their late forwards and
 * status events are dropped) and, per stage, jobs that stage has finished one entry
 * of (their later entries may run side by side). Forgetting is always safe: a job
 * forgotten early is treated as never seen, never lost. */
#ifndef JOB_SET_H
#define JOB_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct job_set job_set_t;

/* An empty set that holds at most `max` ids (at least 1). NULL when out of memory. */
job_set_t *job_set_new(size_t max);

/* Frees the set and sets *self_p to NULL; NULL is fine. */
void job_set_destroy(job_set_t **self_p);

/* Remembers `job_id` until `until_ms` (wall ms), or until the later of the two times
 * when it is already remembered. When the set is full, the id that would be
 * forgotten first makes room. Returns 0, or -1 when out of memory (not remembered). */
int job_set_remember(job_set_t *self, const char *job_id, int64_t until_ms);

/* True when `job_id` is remembered (whether or not its time has passed). */
bool job_set_contains(job_set_t *self, const char *job_id);

/* Forgets `job_id`; nothing happens when it is not remembered. */
void job_set_forget(job_set_t *self, const char *job_id);

/* Forgets the ids whose time is before `now_ms` (wall ms). */
void job_set_forget_expired(job_set_t *self, int64_t now_ms);

/* How many ids are remembered. */
size_t job_set_size(job_set_t *self);

#endif
