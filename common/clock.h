/* clock: wall-clock and monotonic milliseconds. */
#ifndef CLOCK_H
#define CLOCK_H

#include <stdint.h>

/* Unix time in ms (deadlines travel between processes in this unit). */
int64_t clock_wall_ms(void);

/* Monotonic ms, for measuring durations inside one process. */
int64_t clock_mono_ms(void);

#endif
