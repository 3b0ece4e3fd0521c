/* video_writer: a video file written to memory -- H.264 (libx264) + AAC in an MP4
 * with the index up front (faststart), or VP8 (libvpx) + Opus in a WebM. Feed it
 * frames and samples in time order, then finish. */
#ifndef AVATAR_VIDEO_WRITER_H
#define AVATAR_VIDEO_WRITER_H

#include "stage_error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct video_writer video_writer_t;

typedef enum {
  VIDEO_MP4,     /* video/mp4: H.264 + AAC, faststart */
  VIDEO_WEBM,    /* video/webm: VP8 + Opus */
} video_container_t;

typedef struct {
  video_container_t container;
  int width, height;       /* even numbers: YUV 4:2:0 halves them */
  int fps;
  int sample_rate;         /* of the mono 16-bit audio; 0 = no audio track */
  const char *x264_preset; /* MP4: "ultrafast" .. "placebo" */
  int crf;                 /* constant quality on the encoder's scale: x264 0..51, VP8 4..63 */
  int threads;             /* H.264 encoder threads (frames), >= 1; VP8 uses one */
} video_settings_t;

/* Checks that this FFmpeg build has both encoders of `container`. Returns 0, or -1
 * with "render_error" in `err`. */
int video_writer_check_encoders(video_container_t container, stage_error_t *err);

/* Opens the encoders and the in-memory muxer. Returns the writer, or NULL with
 * "render_error" in `err`. */
video_writer_t *video_writer_new(const video_settings_t *settings, stage_error_t *err);

/* Encodes the next video frame from native-endian 32-bit xRGB pixels (Cairo's
 * ARGB32/RGB24 layout), `stride` bytes per row. Returns 0, or -1 with `err` set. */
int video_writer_add_frame(video_writer_t *writer, const uint8_t *pixels, int stride,
                           stage_error_t *err);

/* Encodes the next `count` audio samples. Returns 0, or -1 with `err` set (also when
 * the video was opened without audio and `count` > 0). */
int video_writer_add_audio(video_writer_t *writer, const int16_t *samples, size_t count,
                           stage_error_t *err);

/* Flushes the encoders and writes the index. On success returns 0 and hands the
 * file to the caller in *out (malloc'd, caller frees) and *out_size; the writer can
 * then only be destroyed. Returns -1 with `err` set on failure. */
int video_writer_finish(video_writer_t *writer, uint8_t **out, size_t *out_size,
                        stage_error_t *err);

/* Frees the writer and everything it holds; sets *writer_p to NULL. NULL-safe. */
void video_writer_destroy(video_writer_t **writer_p);

#endif
