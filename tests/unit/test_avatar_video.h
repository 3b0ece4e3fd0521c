/* Helpers shared by the avatar tests: synthetic speech as WAV, decoding a produced
 * video (MP4 or WebM) from memory frame by frame, and measuring its pictures. */
#ifndef TEST_AVATAR_VIDEO_H
#define TEST_AVATAR_VIDEO_H

#include <libavcodec/avcodec.h>

#include <stddef.h>
#include <stdint.h>

/* Called with each decoded picture as packed RGB24, `size` x `size`. */
typedef void (*frame_probe_fn)(const uint8_t *rgb, int stride, int size, size_t index, void *ctx);

typedef struct {
  enum AVCodecID video_codec, audio_codec;   /* AV_CODEC_ID_NONE when absent */
  int width, height;
  int64_t duration_ms;                       /* the container's */
  /* Presentation span of each stream from its packets: first start, last end. */
  double video_start_ms, video_end_ms;
  double audio_start_ms, audio_end_ms;
  int moov_before_mdat;                      /* MP4 faststart */
  size_t frame_count;
} video_info_t;

/* Decodes every video frame of the file in `data`, calling `probe` (may be NULL)
 * on each; fails the test on any decoding error. */
void video_decode(const uint8_t *data, size_t size, video_info_t *info, frame_probe_fn probe, void *ctx);

/* Pixels within `tolerance` of (r, g, b) in the box [x0, x1) x [y0, y1), given in
 * 512x512 design coordinates and scaled to `size`. With `mean_y` non-NULL, also
 * the mean row of those pixels in design coordinates (-1 when none). */
int video_count_near(const uint8_t *rgb, int stride, int size, int x0, int y0, int x1, int y1,
                     int r, int g, int b, int tolerance, double *mean_y);

/* A WAV at `rate` Hz lasting `total_ms`: for the first `voiced_ms` a voiced vowel
 * with formants `f1` and `f2` (a 120 Hz pulse train through two resonators) whose
 * loudness swells and fades four times a second like syllables, then silence.
 * The caller frees *wav. */
void video_vowel_wav(int rate, uint32_t voiced_ms, uint32_t total_ms, double f1, double f2,
                     uint8_t **wav, size_t *wav_size);

#endif
