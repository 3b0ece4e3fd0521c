/* motion: what the character does besides talking: blinks at natural, random
 * intervals, glances around, sways its head and breathes. Random but seeded, so the
 * same job always renders the same video. */
#ifndef AVATAR_MOTION_H
#define AVATAR_MOTION_H

#include "face.h"

#include <stdint.h>

typedef struct {
  uint64_t rng;
  double loop_ms;           /* > 0: the motion must loop seamlessly after this long */
  double blink_start_ms;    /* start of the current or next blink */
  double gaze_change_ms;    /* when the eyes next move */
  double gaze_x, gaze_y;
  double period_ms[4];      /* of the head sway and tilt oscillations */
  double direction[4];      /* +1 or -1: which way each starts */
  double breath_period_ms;
  double speaking;          /* smoothed mouth opening, drives nods and brows */
} motion_t;

/* Starts a motion plan; equal seeds give equal motion. Every plan starts from the
 * same neutral pose (head centred, shoulders down, eyes on the viewer), so any
 * two videos join without a jump. With `loop_ms` > 0 the plan also ends in that
 * pose at `loop_ms`: every oscillation fits a whole number of times, no blink
 * straddles the end and the eyes come back to the viewer (for the idle loop). */
void motion_init(motion_t *motion, uint64_t seed, double loop_ms);

/* Fills everything in `state` except the mouth for time `t_ms`, given the mouth
 * opening (0..1) at that time. Calls must come in increasing time. */
void motion_step(motion_t *motion, double t_ms, double mouth_open, face_state_t *state);

/* The eyelid closure (0..1) `since_ms` after a blink started. */
double motion_blink_closure(double since_ms);

#endif
