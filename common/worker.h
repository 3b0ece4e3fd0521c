/* worker: a stage replica's connection to the broker. A background thread owns
 * the DEALER socket: it announces the stage, keeps heartbeats going while a job
 * runs for a long time, reconnects (re-resolving the broker's name) when the broker
 * goes silent, and cuts the process off when a job hangs far past its deadline so
 * the supervisor restarts a healthy replica. The calling thread takes one job at a
 * time with worker_next() and answers it with worker_done(). */
#ifndef WORKER_H
#define WORKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct worker worker_t;

/* One job as dispatched by the broker. */
typedef struct {
  char id[64];
  uint32_t attempt;        /* 1 on the first dispatch */
  int64_t deadline_ms;     /* unix ms */
  uint8_t *payload;        /* packed avatar.Job, owned by this struct */
  size_t size;
} worker_job_t;

/* Connects to the broker at `endpoint` as a replica of `stage`. NULL on failure. */
worker_t *worker_new(const char *endpoint, const char *stage);

/* Says goodbye to the broker, stops the thread and frees; sets *self_p to NULL. */
void worker_destroy(worker_t **self_p);

/* Waits for the next job. Returns NULL when the process was interrupted
 * (SIGINT/SIGTERM) or the connection thread failed. Free with worker_job_destroy
 * or hand back with worker_done. */
worker_job_t *worker_next(worker_t *self);

/* Sends a packed avatar.Status to the gateways through the broker. */
int worker_status(worker_t *self, const uint8_t *status, size_t size);

/* Hands on part of a job to `next_stage` while keeping it (sentence streaming). */
int worker_partial(worker_t *self, const worker_job_t *job, const char *next_stage,
                   const uint8_t *payload, size_t size);

/* Finishes the job: forwards `payload` to `next_stage`, or forwards nothing when
 * next_stage is NULL (last stage, or failed). Destroys *job_p. */
int worker_done(worker_t *self, worker_job_t **job_p, const char *next_stage,
                const uint8_t *payload, size_t size);

void worker_job_destroy(worker_job_t **job_p);

#endif
