/* motion: seeded blinks, glances, head sway and breathing. */
#include "motion.h"

#include <math.h>

/* A blink: the lid falls, stays shut a moment and rises again. */
#define BLINK_CLOSE_MS 80.0
#define BLINK_HOLD_MS 40.0
#define BLINK_OPEN_MS 80.0
#define BLINK_TOTAL_MS (BLINK_CLOSE_MS + BLINK_HOLD_MS + BLINK_OPEN_MS)
/* A calm breath. */
#define BREATH_PERIOD_MS 4000.0
/* In a loop, the eyes are back on the viewer this long before the end. */
#define GAZE_SETTLE_MS 800.0

/* splitmix64: tiny, fast and good enough for animation. */
static uint64_t next_random(uint64_t *state)
{
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static double random_between(uint64_t *state, double lo, double hi)
{
  return lo + (hi - lo) * (double) (next_random(state) >> 11) / 9007199254740992.0;
}

/* `period` adjusted so that a whole number of them fit in `loop_ms` (if set). */
static double fit_period(double period, double loop_ms)
{
  if (loop_ms <= 0.0)
    return period;
  double cycles = floor(loop_ms / period + 0.5);
  return loop_ms / (cycles < 1.0 ? 1.0 : cycles);
}

void motion_init(motion_t *motion, uint64_t seed, double loop_ms)
{
  static const double base_period_ms[4] = { 4100.0, 1700.0, 3300.0, 5300.0 };
  *motion = (motion_t) { .rng = seed, .loop_ms = loop_ms };
  motion->blink_start_ms = random_between(&motion->rng, 600.0, 2800.0);
  if (loop_ms > 0.0 && motion->blink_start_ms + BLINK_TOTAL_MS > loop_ms)
    motion->blink_start_ms = HUGE_VAL;   /* a loop too short for a whole blink */
  motion->gaze_change_ms = random_between(&motion->rng, 1200.0, 3500.0);
  for (int i = 0; i < 4; i++) {
    motion->period_ms[i] = fit_period(base_period_ms[i] * random_between(&motion->rng, 0.85, 1.15), loop_ms);
    motion->direction[i] = random_between(&motion->rng, 0.0, 1.0) < 0.5 ? -1.0 : 1.0;
  }
  motion->breath_period_ms = fit_period(BREATH_PERIOD_MS, loop_ms);
}

double motion_blink_closure(double since_ms)
{
  if (since_ms < 0.0 || since_ms >= BLINK_TOTAL_MS)
    return 0.0;
  if (since_ms < BLINK_CLOSE_MS)
    return since_ms / BLINK_CLOSE_MS;
  if (since_ms < BLINK_CLOSE_MS + BLINK_HOLD_MS)
    return 1.0;
  return 1.0 - (since_ms - BLINK_CLOSE_MS - BLINK_HOLD_MS) / BLINK_OPEN_MS;
}

static void advance_blinks(motion_t *motion, double t_ms)
{
  while (t_ms >= motion->blink_start_ms + BLINK_TOTAL_MS) {
    /* People blink every few seconds, now and then twice in a row. */
    double pause = random_between(&motion->rng, 0.0, 1.0) < 0.2
                     ? random_between(&motion->rng, 150.0, 300.0)
                     : random_between(&motion->rng, 2000.0, 5500.0);
    motion->blink_start_ms += BLINK_TOTAL_MS + pause;
    /* A blink cut by a loop's end would snap the eyes open as it restarts. */
    if (motion->loop_ms > 0.0 && motion->blink_start_ms + BLINK_TOTAL_MS > motion->loop_ms)
      motion->blink_start_ms = HUGE_VAL;
  }
}

static void advance_gaze(motion_t *motion, double t_ms)
{
  if (motion->loop_ms > 0.0 && t_ms >= motion->loop_ms - GAZE_SETTLE_MS) {
    motion->gaze_x = motion->gaze_y = 0.0;
    return;
  }
  while (t_ms >= motion->gaze_change_ms) {
    /* Mostly look at the viewer; sometimes glance a little aside. */
    if (random_between(&motion->rng, 0.0, 1.0) < 0.5) {
      motion->gaze_x = 0.0;
      motion->gaze_y = 0.0;
    } else {
      motion->gaze_x = random_between(&motion->rng, -0.6, 0.6);
      motion->gaze_y = random_between(&motion->rng, -0.4, 0.3);
    }
    motion->gaze_change_ms += random_between(&motion->rng, 1200.0, 4000.0);
  }
}

/* Oscillation i of the plan: zero at time 0, so every video starts from one pose. */
static double wave(const motion_t *motion, int i, double t_ms)
{
  return motion->direction[i] * sin(2.0 * M_PI * t_ms / motion->period_ms[i]);
}

void motion_step(motion_t *motion, double t_ms, double mouth_open, face_state_t *state)
{
  advance_blinks(motion, t_ms);
  advance_gaze(motion, t_ms);
  /* Speech animates the whole head a little, not just the mouth. */
  motion->speaking += 0.15 * (mouth_open - motion->speaking);

  state->blink = motion_blink_closure(t_ms - motion->blink_start_ms);
  state->gaze_x = motion->gaze_x;
  state->gaze_y = motion->gaze_y;
  state->head_dx = 4.0 * wave(motion, 0, t_ms) + 1.5 * wave(motion, 1, t_ms);
  state->head_dy = 2.0 * wave(motion, 2, t_ms) + 4.0 * motion->speaking;
  state->head_tilt = 0.025 * wave(motion, 3, t_ms);
  state->breath = 2.5 * (0.5 - 0.5 * cos(2.0 * M_PI * t_ms / motion->breath_period_ms));
  /* Brows move a little with emphasis; questions lift them further (expression.h). */
  state->brow_raise = 0.3 * motion->speaking;
}
