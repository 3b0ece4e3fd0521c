/* audio_sync: lip sync from the sound alone, for speech that came without phoneme
 * timings (cloud or OpenAI-compatible TTS). Each video frame's slice of audio is
 * measured -- loudness against the utterance's own loud level, brightness (the hiss
 * of s, sh, f, th), and the first two formants from linear prediction (F1 rises as
 * the jaw opens, F2 as the lips spread; a lone low F1 is the hum of m) -- and given
 * the mouth shape those features point to. */
#ifndef AVATAR_AUDIO_SYNC_H
#define AVATAR_AUDIO_SYNC_H

#include "speech.h"
#include "viseme.h"

#include <stddef.h>

/* What audio_sync measured in one frame's slice, for tests and tuning. */
typedef struct {
  double level_db;    /* loudness, dB relative to the utterance's loud level */
  double hiss;        /* brightness, Hz: ~1000 for vowels, 3000+ for s and sh */
  double f1_hz, f2_hz;  /* formants; 0 when none was found */
} audio_frame_features_t;

/* Measures frame n's slice [n, n+1) * 1000/fps ms of `pcm`; `loud_db` is the
 * utterance's loud level in dBFS (from audio_sync_loud_level). */
audio_frame_features_t audio_sync_measure(const pcm_t *pcm, int fps, size_t n, double loud_db);

/* The level (dBFS) that the loudest tenth of the frames reach: the reference the
 * mouth's opening is measured against, so quiet and loud voices move it alike. */
double audio_sync_loud_level(const pcm_t *pcm, int fps, size_t frame_count);

/* The shape that features point to. */
viseme_t audio_sync_shape(const audio_frame_features_t *features);

/* Fills `shapes` and `poses` (each `frame_count` long) from `pcm` at `fps`: one shape
 * per frame from its features, single-frame flickers between two equal neighbours
 * removed, poses scaled by loudness and blended with the neighbouring frames
 * (coarticulation). Returns 0, or -1 when out of memory. */
int viseme_track_from_audio(const pcm_t *pcm, int fps, size_t frame_count, viseme_t *shapes,
                            mouth_pose_t *poses);

#endif
