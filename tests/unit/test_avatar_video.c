/* Helpers shared by the avatar tests: synthetic vowels, in-memory video decoding
 * with libavformat/libavcodec, pixel counting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_avatar_video.h"

#include "audio.h"

#include <libavformat/avformat.h>
#include <libavutil/intreadwrite.h>
#include <libswscale/swscale.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DESIGN 512

/* A read-only view of the file for libavformat. */
typedef struct {
  const uint8_t *data;
  size_t size, pos;
} reader_t;

static int reader_read(void *opaque, uint8_t *buf, int buf_size)
{
  reader_t *r = opaque;
  if (r->pos >= r->size)
    return AVERROR_EOF;
  size_t n = r->size - r->pos < (size_t) buf_size ? r->size - r->pos : (size_t) buf_size;
  memcpy(buf, r->data + r->pos, n);
  r->pos += n;
  return (int) n;
}

static int64_t reader_seek(void *opaque, int64_t offset, int whence)
{
  reader_t *r = opaque;
  if (whence & AVSEEK_SIZE)
    return (int64_t) r->size;
  int64_t base = (whence & 3) == SEEK_CUR ? (int64_t) r->pos : (whence & 3) == SEEK_END ? (int64_t) r->size : 0;
  if (base + offset < 0 || base + offset > (int64_t) r->size)
    return AVERROR(EINVAL);
  r->pos = (size_t) (base + offset);
  return (int64_t) r->pos;
}

/* Top-level boxes in order: faststart puts the index (moov) before the media (mdat). */
static int moov_precedes_mdat(const uint8_t *data, size_t size)
{
  size_t pos = 0;
  while (pos + 8 <= size) {
    uint32_t box = (uint32_t) data[pos] << 24 | (uint32_t) data[pos + 1] << 16
                   | (uint32_t) data[pos + 2] << 8 | data[pos + 3];
    if (!memcmp(data + pos + 4, "moov", 4))
      return 1;
    if (!memcmp(data + pos + 4, "mdat", 4) || box < 8)
      return 0;
    pos += box;
  }
  return 0;
}

/* Widens [start, end] with one packet's presentation span: encoder priming that the
 * container marks as not presented (MP4 edit lists, Opus pre-skip) is left out. */
static void extend_span(const AVPacket *packet, const AVStream *stream, double *start, double *end)
{
  if (packet->pts == AV_NOPTS_VALUE || (packet->flags & AV_PKT_FLAG_DISCARD))
    return;
  AVRational time_base = stream->time_base;
  double from = (double) packet->pts * av_q2d(time_base) * 1000.0;
  size_t side_size = 0;
  const uint8_t *skip = av_packet_get_side_data(packet, AV_PKT_DATA_SKIP_SAMPLES, &side_size);
  double to = (double) (packet->pts + packet->duration) * av_q2d(time_base) * 1000.0;
  if (skip && side_size >= 8 && stream->codecpar->sample_rate > 0) {
    from += (double) AV_RL32(skip) * 1000.0 / stream->codecpar->sample_rate;
    to -= (double) AV_RL32(skip + 4) * 1000.0 / stream->codecpar->sample_rate;
  }
  *start = from < *start ? from : *start;
  *end = to > *end ? to : *end;
}

void video_decode(const uint8_t *data, size_t size, video_info_t *info, frame_probe_fn probe, void *ctx)
{
  memset(info, 0, sizeof *info);
  info->video_start_ms = info->audio_start_ms = HUGE_VAL;
  info->video_end_ms = info->audio_end_ms = -HUGE_VAL;
  info->moov_before_mdat = moov_precedes_mdat(data, size);
  reader_t reader = { data, size, 0 };
  uint8_t *io_buffer = av_malloc(32768);
  assert_non_null(io_buffer);
  AVIOContext *io = avio_alloc_context(io_buffer, 32768, 0, &reader, reader_read, NULL, reader_seek);
  assert_non_null(io);
  AVFormatContext *format = avformat_alloc_context();
  assert_non_null(format);
  format->pb = io;
  assert_int_equal(avformat_open_input(&format, NULL, NULL, NULL), 0);
  assert_true(avformat_find_stream_info(format, NULL) >= 0);
  info->duration_ms = format->duration / 1000;

  int video_index = -1, audio_index = -1;
  for (unsigned i = 0; i < format->nb_streams; i++) {
    AVCodecParameters *par = format->streams[i]->codecpar;
    if (par->codec_type == AVMEDIA_TYPE_VIDEO) {
      video_index = (int) i;
      info->video_codec = par->codec_id;
      info->width = par->width;
      info->height = par->height;
    } else if (par->codec_type == AVMEDIA_TYPE_AUDIO) {
      audio_index = (int) i;
      info->audio_codec = par->codec_id;
    }
  }
  assert_true(video_index >= 0);
  assert_int_equal(info->width, info->height);

  AVCodecParameters *par = format->streams[video_index]->codecpar;
  const AVCodec *codec = avcodec_find_decoder(par->codec_id);
  assert_non_null(codec);
  AVCodecContext *decoder = avcodec_alloc_context3(codec);
  assert_non_null(decoder);
  assert_int_equal(avcodec_parameters_to_context(decoder, par), 0);
  assert_int_equal(avcodec_open2(decoder, codec, NULL), 0);
  struct SwsContext *sws = sws_getContext(par->width, par->height, par->format, par->width,
                                          par->height, AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL, NULL, NULL);
  assert_non_null(sws);
  uint8_t *rgb = malloc((size_t) par->width * par->height * 3);
  AVPacket *packet = av_packet_alloc();
  AVFrame *frame = av_frame_alloc();
  assert_non_null(rgb);
  assert_non_null(packet);
  assert_non_null(frame);

  int draining = 0;
  while (!draining) {
    if (av_read_frame(format, packet) < 0) {
      draining = 1;
      assert_int_equal(avcodec_send_packet(decoder, NULL), 0);
    } else {
      int rc = 0;
      if (packet->stream_index == video_index) {
        extend_span(packet, format->streams[video_index], &info->video_start_ms, &info->video_end_ms);
        rc = avcodec_send_packet(decoder, packet);
      } else if (packet->stream_index == audio_index) {
        extend_span(packet, format->streams[audio_index], &info->audio_start_ms, &info->audio_end_ms);
      }
      av_packet_unref(packet);
      assert_int_equal(rc, 0);
    }
    while (avcodec_receive_frame(decoder, frame) == 0) {
      uint8_t *planes[1] = { rgb };
      int strides[1] = { par->width * 3 };
      sws_scale(sws, (const uint8_t *const *) frame->data, frame->linesize, 0, par->height, planes, strides);
      if (probe)
        probe(rgb, strides[0], par->width, info->frame_count, ctx);
      info->frame_count++;
      av_frame_unref(frame);
    }
  }
  av_frame_free(&frame);
  av_packet_free(&packet);
  free(rgb);
  sws_freeContext(sws);
  avcodec_free_context(&decoder);
  avformat_close_input(&format);
  av_freep(&io->buffer);
  avio_context_free(&io);
}

int video_count_near(const uint8_t *rgb, int stride, int size, int x0, int y0, int x1, int y1,
                     int r, int g, int b, int tolerance, double *mean_y)
{
  int count = 0;
  double sum_y = 0.0;
  for (int y = y0 * size / DESIGN; y < y1 * size / DESIGN; y++) {
    for (int x = x0 * size / DESIGN; x < x1 * size / DESIGN; x++) {
      const uint8_t *px = rgb + y * stride + 3 * x;
      if (abs(px[0] - r) <= tolerance && abs(px[1] - g) <= tolerance && abs(px[2] - b) <= tolerance) {
        count++;
        sum_y += (double) y * DESIGN / size;
      }
    }
  }
  if (mean_y)
    *mean_y = count ? sum_y / count : -1.0;
  return count;
}

/* One resonance (a two-pole filter) at `hz` with bandwidth `bw` Hz. */
typedef struct {
  double a1, a2, gain, y1, y2;
} resonator_t;

static resonator_t resonator(double hz, double bw, int rate)
{
  double r = exp(-M_PI * bw / rate);
  resonator_t res = { .a1 = 2.0 * r * cos(2.0 * M_PI * hz / rate), .a2 = -r * r };
  res.gain = 1.0 - res.a1 - res.a2;
  return res;
}

static double resonate(resonator_t *res, double x)
{
  double y = res->gain * x + res->a1 * res->y1 + res->a2 * res->y2;
  res->y2 = res->y1;
  res->y1 = y;
  return y;
}

void video_vowel_wav(int rate, uint32_t voiced_ms, uint32_t total_ms, double f1, double f2,
                     uint8_t **wav, size_t *wav_size)
{
  size_t count = (size_t) total_ms * (size_t) rate / 1000;
  size_t voiced = (size_t) voiced_ms * (size_t) rate / 1000;
  pcm_t pcm = { .samples = calloc(count, sizeof(int16_t)), .count = count, .sample_rate = rate };
  assert_non_null(pcm.samples);
  resonator_t first = resonator(f1, 80.0, rate), second = resonator(f2, 120.0, rate);
  double *raw = calloc(voiced ? voiced : 1, sizeof *raw);
  assert_non_null(raw);
  double peak = 1e-9;
  size_t period = (size_t) rate / 120;
  for (size_t i = 0; i < voiced; i++) {
    double pulse = i % period == 0 ? 1.0 : 0.0;
    raw[i] = resonate(&second, resonate(&first, pulse));
    peak = fabs(raw[i]) > peak ? fabs(raw[i]) : peak;
  }
  for (size_t i = 0; i < voiced; i++) {
    double t = (double) i / rate;
    double envelope = 0.6 + 0.4 * sin(2.0 * M_PI * 4.0 * t);
    pcm.samples[i] = (int16_t) (20000.0 * envelope * raw[i] / peak);
  }
  free(raw);
  assert_int_equal(audio_wav_encode(&pcm, wav, wav_size), 0);
  pcm_release(&pcm);
}
