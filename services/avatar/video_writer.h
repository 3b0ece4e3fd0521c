/* mp4_writer: H.264 (libx264) + AAC in an MP4 with the index up front (faststart),
 * written to memory. Feed it frames and samples in time order, then finish. */
#ifndef AVATAR_MP4_WRITER_H
#define AVATAR_MP4_WRITER_H

#include "stage_error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mp4_writer mp4_writer_t;

typedef struct {
  int width, height;       /* even numbers: YUV 4:2:0 halves them */
  int fps;
  int sample_rate;         /* of the mono 16-bit audio */
  const char *x264_preset; /* "ultrafast" .. "placebo" */
  int crf;                 /* x264 constant rate factor, 0..51 */
} mp4_settings_t;

/* Checks that this FFmpeg build has both encoders. Returns 0, or -1 with
 * "render_error" in `err`. */
int mp4_writer_check_encoders(stage_error_t *err);

/* Opens the encoders and the in-memory muxer. Returns the writer, or NULL with
 * "render_error" in `err`. */
mp4_writer_t *mp4_writer_new(const mp4_settings_t *settings, stage_error_t *err);

/* Encodes the next video frame from native-endian 32-bit xRGB pixels (Cairo's
 * ARGB32/RGB24 layout), `stride` bytes per row. Returns 0, or -1 with `err` set. */
int mp4_writer_add_frame(mp4_writer_t *writer, const uint8_t *pixels, int stride,
                         stage_error_t *err);

/* Encodes the next `count` audio samples. Returns 0, or -1 with `err` set. */
int mp4_writer_add_audio(mp4_writer_t *writer, const int16_t *samples, size_t count,
                         stage_error_t *err);

/* Flushes the encoders and writes the index. On success returns 0 and hands the
 * file to the caller in *out (malloc'd, caller frees) and *out_size; the writer can
 * then only be destroyed. Returns -1 with `err` set on failure. */
int mp4_writer_finish(mp4_writer_t *writer, uint8_t **out, size_t *out_size,
                      stage_error_t *err);

/* Frees the writer and everything it holds; sets *writer_p to NULL. NULL-safe. */
void mp4_writer_destroy(mp4_writer_t **writer_p);

#endif
