/* avatar_backend: the one interface every talking-head renderer implements. */
#ifndef AVATAR_BACKEND_H
#define AVATAR_BACKEND_H

#include "speech.h"
#include "stage_error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct avatar_backend avatar_backend_t;

typedef struct {
  const uint8_t *audio;        /* encoded speech file (WAV, MP3, ...) */
  size_t audio_size;
  const char *audio_mime;
  const phoneme_t *phonemes;   /* may be NULL: then lip sync comes from the audio */
  size_t phoneme_count;
  const char *text;            /* the spoken sentence(s) */
  const char *character;       /* NULL or "" = default */
  /* Sentence streaming: this video plays right after another segment's, or
   * right before one, so the rest pose that opens or closes an answer is left
   * out on that side (it would sound like a pause between sentences). */
  bool continues_previous;
  bool continued_next;
} avatar_input_t;

typedef struct {
  uint8_t *video;              /* malloc'd encoded file, or NULL when `url` is set */
  size_t video_size;
  char mime[32];               /* "video/mp4" or "video/webm" */
  char *url;                   /* malloc'd remote result URL, or NULL */
  uint32_t duration_ms;
} avatar_output_t;

/* Frees what a backend put in `out` and zeroes it. */
void avatar_output_release(avatar_output_t *out);

struct avatar_backend {
  const char *name;
  int (*render)(avatar_backend_t *self, const avatar_input_t *in, avatar_output_t *out,
                stage_error_t *err);
  void (*destroy)(avatar_backend_t **self_p);
};

/* Offline default: the drawn 2D character, encoded with libavcodec (AVATAR_SIZE,
 * AVATAR_FPS, AVATAR_FORMAT=mp4|webm, AVATAR_CHARACTER, AVATAR_CHARACTER_DIR; see
 * docs/avatar.md). NULL with "bad_config" in `err` for a bad format or a bad
 * character folder (the message names the file), "render_error" when this FFmpeg
 * lacks an encoder. */
avatar_backend_t *avatar_local_new(stage_error_t *err);

/* Renders `duration_ms` (rounded down to whole frames) of `character` (NULL or "" =
 * the configured one) idling -- breathing, blinking, glancing, mouth at rest, no
 * audio track -- in the configured size, rate and format, ending in the pose it
 * starts in so it can loop, for the page to show while an answer is made. `local`
 * must come from avatar_local_new. Fills `out` like render; returns 0, or -1 with
 * `err` set. */
int avatar_local_render_idle(avatar_backend_t *local, const char *character, uint32_t duration_ms,
                             avatar_output_t *out, stage_error_t *err);

/* D-ID talks: the speech uploaded, a talk of the presenter image polled until done,
 * the MP4 downloaded into `video` (DID_API_KEY, DID_SOURCE_URL, DID_BASE_URL,
 * DID_POLL_MS, AVATAR_TIMEOUT_MS, AVATAR_MAX_ATTEMPTS).
 * NULL with `err` naming a missing setting. */
avatar_backend_t *avatar_did_new(stage_error_t *err);

#endif
