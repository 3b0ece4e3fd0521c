/* admission: the broker's estimate of a new job's wait and the admission rule
 * built on it (see admission.h). */
#include "admission.h"

#define MIN_RETRY_AFTER_MS 1000

void service_time_add(service_time_t *self, int64_t sample_ms)
{
  double sample = sample_ms > 0 ? (double) sample_ms : 0.0;
  if (self->samples == 0)
    self->average_ms = sample;
  else
    self->average_ms += ADMISSION_EWMA_WEIGHT * (sample - self->average_ms);
  self->samples++;
}

int64_t admission_wait_ms(const stage_load_t *stages, size_t count)
{
  double wait = 0.0;
  for (size_t i = 0; i < count; i++) {
    const stage_load_t *stage = &stages[i];
    double backlog = (double) stage->queued * stage->service_ms + stage->in_flight_ms;
    wait += backlog / (double) (stage->workers ? stage->workers : 1);
  }
  /* A backlog of days means "no": keep the sum inside int64_t whatever came in. */
  return wait < 1e15 ? (int64_t) wait : (int64_t) 1e15;
}

bool admission_admits(int64_t wait_ms, int64_t remaining_ms, unsigned percent,
                      int64_t *retry_after_ms)
{
  if (percent == 0)
    return true;
  if (percent > 100)
    percent = 100;
  /* Split so that a deadline far in the future cannot overflow the product. */
  int64_t allowed_ms =
    remaining_ms > 0 ? remaining_ms / 100 * percent + remaining_ms % 100 * percent / 100 : 0;
  if (wait_ms <= allowed_ms)
    return true;
  if (retry_after_ms) {
    int64_t excess = wait_ms - allowed_ms;
    int64_t ceiling = remaining_ms > MIN_RETRY_AFTER_MS ? remaining_ms : MIN_RETRY_AFTER_MS;
    *retry_after_ms = excess < MIN_RETRY_AFTER_MS ? MIN_RETRY_AFTER_MS
                      : excess > ceiling         ? ceiling
                                                 : excess;
  }
  return false;
}
