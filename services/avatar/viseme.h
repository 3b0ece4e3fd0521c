/* viseme: from phoneme timings to a per-frame mouth pose. Phonemes (eSpeak mnemonics)
 * map onto the Preston Blair / Rhubarb mouth set A-H plus rest. (Without timings,
 * audio_sync.h derives the shapes from the sound itself.) */
#ifndef AVATAR_VISEME_H
#define AVATAR_VISEME_H

#include "speech.h"

#include <stddef.h>

/* The Preston Blair mouth shapes as named by Rhubarb Lip Sync. */
typedef enum {
  VISEME_X,   /* rest: lips together, relaxed */
  VISEME_A,   /* closed, pressed lips: p b m */
  VISEME_B,   /* slightly open, clenched teeth: most consonants, "ee" */
  VISEME_C,   /* open: "eh", "ae" */
  VISEME_D,   /* wide open: "aa" */
  VISEME_E,   /* slightly rounded: "aw", "er" */
  VISEME_F,   /* puckered: "oo", "w" */
  VISEME_G,   /* upper teeth on the lower lip: f v */
  VISEME_H,   /* tongue raised behind the teeth: l, th */
  VISEME_COUNT
} viseme_t;

/* A continuous mouth description, so shapes can blend (coarticulation).
 * Every field is in [0, 1]. */
typedef struct {
  float open;       /* jaw/lip opening */
  float wide;       /* corners pulled sideways */
  float round;      /* lips pushed forward into an "o" */
  float press;      /* lips pressed together (bilabial closure) */
  float teeth;      /* how much of the upper teeth shows */
  float lip_bite;   /* lower lip tucked under the upper teeth (f, v) */
  float tongue;     /* tongue tip raised and visible */
} mouth_pose_t;

/* The shape an eSpeak phoneme mnemonic is spoken with. Stress and length marks are
 * ignored; "_" (pause) is rest; a symbol it does not know gives VISEME_B, a neutral
 * half-closed speaking mouth. */
viseme_t viseme_from_phoneme(const char *symbol);

/* The canonical pose of a shape. */
mouth_pose_t viseme_pose(viseme_t viseme);

/* `a` blended toward `b` by `w` (0 = a, 1 = b). */
mouth_pose_t viseme_pose_mix(mouth_pose_t a, mouth_pose_t b, float w);

/* Fills `shapes` and `poses` (each `frame_count` long) from phoneme timings at `fps`;
 * `phonemes` are in time order, as the TTS reports them. Frame n is on screen during
 * [n, n+1) * 1000/fps ms and shows the shape sounding at the middle of that time, so
 * every shape appears within half a frame of its sound. Neighbouring phonemes with
 * one shape merge; stretches shorter than a frame never own a frame (the previous
 * shape holds, so nothing flickers), except lip closures (p b m), which viewers
 * miss most and which show whenever they span a frame's middle. Poses blend toward
 * the neighbouring shapes near each boundary (coarticulation), except closures,
 * which are held exactly so the lips visibly meet. Frames outside the phonemes rest.
 * Returns 0, or -1 when out of memory. */
int viseme_track_from_phonemes(const phoneme_t *phonemes, size_t phoneme_count, int fps,
                                size_t frame_count, viseme_t *shapes, mouth_pose_t *poses);

/* The one-letter name of a shape ("X", "A".."H"), for logs and tests. */
const char *viseme_name(viseme_t viseme);

#endif
