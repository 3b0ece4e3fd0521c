/* face: draws one frame of the cartoon character with Cairo. A character is only a
 * set of colours and proportions, so a new one is a new table entry, not new code. */
#ifndef AVATAR_FACE_H
#define AVATAR_FACE_H

#include "viseme.h"

#include <cairo.h>
#include <stddef.h>

typedef struct {
  double r, g, b;
} face_rgb_t;

typedef enum { HAIR_BOB, HAIR_SHORT } hair_style_t;

/* Everything that tells one character from another. Lengths are in a 512x512
 * design space; the drawing scales to any frame size. */
typedef struct {
  const char *name;
  face_rgb_t background;
  face_rgb_t skin;
  face_rgb_t hair;
  face_rgb_t iris;
  face_rgb_t lips;
  face_rgb_t shirt;
  hair_style_t hair_style;
  double head_rx, head_ry;   /* head ellipse radii */
  double eye_spacing;        /* from the face's centre line to each eye */
  double eye_size;           /* 1.0 = standard */
  double mouth_width;        /* half-width of the relaxed mouth */
} character_t;

/* What changes from frame to frame. */
typedef struct {
  mouth_pose_t mouth;
  viseme_t shape;            /* the mouth's nearest shape, for picture characters */
  double blink;              /* 0 = eyes open, 1 = closed */
  double head_dx, head_dy;   /* design-space offset of the head */
  double head_tilt;          /* radians, around the neck */
  double breath;             /* shoulders' rise, design-space units */
  double brow_raise;         /* 0..1: emphasis, and most for questions */
  double gaze_x, gaze_y;     /* pupils' offset, -1..1 */
} face_state_t;

/* The character called `name`, or NULL when there is none by that name. */
const character_t *face_character_find(const char *name);

/* The character used when none is asked for. */
const character_t *face_character_default(void);

/* The built-in character at `index` (0, 1, ...), or NULL past the last. */
const character_t *face_character_at(size_t index);

/* The character's backdrop (a soft gradient that never moves) at `width` x `height`
 * pixels, drawn once per job because gradients are the costliest part of a frame.
 * Returns NULL when out of memory; the caller destroys it with cairo_surface_destroy. */
cairo_surface_t *face_backdrop_new(const character_t *character, int width, int height);

/* Draws the whole frame onto `cr`: `backdrop` (from face_backdrop_new for this
 * character, same size as the target) then the character in `state`. */
void face_draw(cairo_t *cr, cairo_surface_t *backdrop, const character_t *character,
               const face_state_t *state);

#endif
