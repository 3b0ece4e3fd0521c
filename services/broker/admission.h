/* admission: how long a job submitted now would wait in the broker's queues, and
 * whether that still leaves it time to finish before its deadline. Pure arithmetic
 * on the figures the broker keeps per stage (queue length, live workers, recent
 * service time), kept apart from the broker so that it can be tested on its own.
 * docs/protocol.md ("Back-pressure at the entrance only") describes the rule. */
#ifndef ADMISSION_H
#define ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Weight of the newest sample in the service-time average: about the last ten
 * jobs count, so the estimate follows a backend that slows down within a minute
 * without jumping with every long answer. */
#define ADMISSION_EWMA_WEIGHT 0.2

/* A stage's recent service time: the exponentially weighted moving average of
 * the time from a job's dispatch to its worker's DONE. Zero-initialised = no
 * sample yet. */
typedef struct {
  double average_ms;
  uint64_t samples;
} service_time_t;

/* Folds one measured service time (ms, negative taken as 0) into the average;
 * the first sample is the average. */
void service_time_add(service_time_t *self, int64_t sample_ms);

/* What one job stage holds when a job is submitted. */
typedef struct {
  size_t queued;           /* entries waiting for a worker */
  size_t workers;          /* live workers; 0 counts as 1 (one is being restarted) */
  double service_ms;       /* time one entry keeps a worker busy (0 = not known yet) */
  double in_flight_ms;     /* work still left on the entries workers hold now, summed */
} stage_load_t;

/* The estimated wait (ms) of a job submitted now: for every stage, the work queued
 * and in flight there (queued x service time + what is left of the held entries)
 * shared among its workers, summed over the stages (a job passes every stage, and
 * waits behind each one's backlog in turn). Stages with no known service time add
 * only their in-flight work. */
int64_t admission_wait_ms(const stage_load_t *stages, size_t count);

/* Whether a job `remaining_ms` before its deadline is admitted when it would wait
 * `wait_ms`: it is while the wait is at most `percent`% of the time it has left
 * (percent 0: always; above 100 counts as 100). On a refusal *retry_after_ms (if not NULL) gets how long
 * until the wait should fit again: the excess wait, at least 1 s and at most
 * `remaining_ms` (a full deadline later the queues look different anyway). */
bool admission_admits(int64_t wait_ms, int64_t remaining_ms, unsigned percent,
                      int64_t *retry_after_ms);

#endif
