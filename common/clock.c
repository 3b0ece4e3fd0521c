/* clock: the two clocks the pipeline needs. */
#include "clock.h"

#include <time.h>

static int64_t to_ms(clockid_t id)
{
  struct timespec ts;
  if (clock_gettime(id, &ts) != 0)
    return 0;
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_wall_ms(void) { return to_ms(CLOCK_REALTIME); }
int64_t clock_mono_ms(void) { return to_ms(CLOCK_MONOTONIC); }
