/* audio: decodes an upload held in memory (any container/codec FFmpeg knows) to mono
 * 16-bit PCM at a chosen rate. Uploads are untrusted: every failure of the libraries
 * becomes a "bad_audio" stage error, and length limits are enforced while decoding so
 * a small file that expands to hours of audio cannot exhaust memory. */
#include "audio.h"

#include "memory_io.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/mem.h>
#include <libswresample/swresample.h>

#include <stdint.h>
#include <stdio.h>      /* SEEK_SET and friends */
#include <stdlib.h>
#include <string.h>

/* Highest input rate resampled. The resampler's filter grows with the ratio of
 * the rates, so a header claiming gigahertz costs seconds of CPU per upload
 * (found by tests/fuzz/fuzz_audio); real recordings stay at or below 384 kHz. */
enum { MAX_INPUT_RATE = 384000 };

/* The demuxers audio_decode may use: the containers uploads and synthesized
 * speech come in. Others would read more than the bytes given: FFmpeg's concat
 * demuxer opens the files an upload names ("ffconcat version 1.0\nfile x.wav"
 * decoded x.wav from the working directory). */
static const char allowed_formats[] = "matroska,ogg,wav,mp3,mov,aac,flac";

/* Everything one decode owns; decoder_release frees whatever was created. */
typedef struct {
  memory_file_t input;                /* the caller's buffer, read only */
  AVIOContext *avio;
  AVFormatContext *format;
  AVCodecContext *codec;
  SwrContext *resampler;
  AVChannelLayout resampler_layout;   /* input the resampler was set up for */
  enum AVSampleFormat resampler_format;
  int resampler_rate;
  AVPacket *packet;
  AVFrame *frame;
  int stream_index;
  int out_rate;
  size_t max_samples;                 /* 0 = no limit */
  int16_t *samples;                   /* output, grows as frames arrive */
  size_t count;
  size_t capacity;
} decoder_t;

static void decoder_release(decoder_t *dec)
{
  av_frame_free(&dec->frame);
  av_packet_free(&dec->packet);
  swr_free(&dec->resampler);
  av_channel_layout_uninit(&dec->resampler_layout);
  avcodec_free_context(&dec->codec);
  avformat_close_input(&dec->format);
  memory_io_free(&dec->avio);
  free(dec->samples);
  dec->samples = NULL;
}

static int too_long(uint32_t max_ms, stage_error_t *err)
{
  return stage_error_set(err, "audio_too_long",
                         "The recording is longer than %u seconds; please ask a shorter question.",
                         (unsigned) (max_ms / 1000));
}

static int bad_audio(stage_error_t *err, const char *why)
{
  return stage_error_set(err, "bad_audio", "The recording could not be read as audio (%s).", why);
}

/* Opens the container over the buffer and picks the best audio stream's decoder. */
static int decoder_open(decoder_t *dec, uint32_t max_ms, stage_error_t *err)
{
  dec->avio = memory_io_new(&dec->input, false);
  if (!dec->avio)
    return bad_audio(err, "out of memory");
  dec->format = avformat_alloc_context();
  if (!dec->format)
    return bad_audio(err, "out of memory");
  dec->format->pb = dec->avio;
  dec->format->flags |= AVFMT_FLAG_CUSTOM_IO;
  dec->format->format_whitelist = av_strdup(allowed_formats);
  if (!dec->format->format_whitelist)
    return bad_audio(err, "out of memory");
  /* avformat_open_input frees the context on failure and NULLs our pointer. */
  if (avformat_open_input(&dec->format, NULL, NULL, NULL) < 0)
    return bad_audio(err, "unknown format");
  if (avformat_find_stream_info(dec->format, NULL) < 0)
    return bad_audio(err, "unreadable stream");

  const AVCodec *codec = NULL;
  dec->stream_index = av_find_best_stream(dec->format, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
  if (dec->stream_index < 0 || !codec)
    return bad_audio(err, "no audio stream");
  AVStream *stream = dec->format->streams[dec->stream_index];

  /* A duration estimated from the bit rate can be far off, so only a stated one
   * (container header or timestamps) refuses the upload before decoding. */
  if (max_ms && dec->format->duration != AV_NOPTS_VALUE && dec->format->duration > 0 &&
      dec->format->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE &&
      dec->format->duration / 1000 > (int64_t) max_ms)
    return too_long(max_ms, err);

  dec->codec = avcodec_alloc_context3(codec);
  if (!dec->codec)
    return bad_audio(err, "out of memory");
  if (avcodec_parameters_to_context(dec->codec, stream->codecpar) < 0)
    return bad_audio(err, "bad codec parameters");
  dec->codec->pkt_timebase = stream->time_base;
  if (avcodec_open2(dec->codec, codec, NULL) < 0)
    return bad_audio(err, "unsupported codec");
  dec->packet = av_packet_alloc();
  dec->frame = av_frame_alloc();
  if (!dec->packet || !dec->frame)
    return bad_audio(err, "out of memory");
  return 0;
}

/* (Re)creates the resampler when the input format of frames changes; some streams
 * (chained Ogg, AAC with SBR signalled late) change it mid-way. */
static int resampler_prepare(decoder_t *dec, const AVFrame *frame)
{
  AVChannelLayout in_layout = {0};      /* av_channel_layout_copy uninits its target first */
  if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || frame->ch_layout.nb_channels <= 0) {
    /* WAV and raw codecs often leave the order unspecified; mixing needs one. */
    int channels = frame->ch_layout.nb_channels > 0 ? frame->ch_layout.nb_channels : 1;
    av_channel_layout_default(&in_layout, channels);
  } else if (av_channel_layout_copy(&in_layout, &frame->ch_layout) < 0) {
    return -1;
  }
  if (dec->resampler && dec->resampler_rate == frame->sample_rate &&
      dec->resampler_format == (enum AVSampleFormat) frame->format &&
      !av_channel_layout_compare(&dec->resampler_layout, &in_layout)) {
    av_channel_layout_uninit(&in_layout);
    return 0;
  }
  swr_free(&dec->resampler);
  av_channel_layout_uninit(&dec->resampler_layout);
  AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
  if (swr_alloc_set_opts2(&dec->resampler, &mono, AV_SAMPLE_FMT_S16, dec->out_rate, &in_layout,
                          (enum AVSampleFormat) frame->format, frame->sample_rate, 0, NULL) < 0 ||
      swr_init(dec->resampler) < 0) {
    swr_free(&dec->resampler);
    av_channel_layout_uninit(&in_layout);
    return -1;
  }
  dec->resampler_layout = in_layout;      /* takes ownership */
  dec->resampler_format = (enum AVSampleFormat) frame->format;
  dec->resampler_rate = frame->sample_rate;
  return 0;
}

static int samples_reserve(decoder_t *dec, size_t extra)
{
  if (extra <= dec->capacity - dec->count)
    return 0;
  size_t wanted = dec->count + extra;
  size_t capacity = dec->capacity ? dec->capacity : 16000;
  while (capacity < wanted) {
    if (capacity > SIZE_MAX / 2 / sizeof(int16_t))
      return -1;
    capacity *= 2;
  }
  int16_t *grown = realloc(dec->samples, capacity * sizeof(int16_t));
  if (!grown)
    return -1;
  dec->samples = grown;
  dec->capacity = capacity;
  return 0;
}

/* Converts `frame` (NULL drains the resampler) and appends the result. */
static int samples_append(decoder_t *dec, const AVFrame *frame, uint32_t max_ms, stage_error_t *err)
{
  if (frame && (frame->sample_rate <= 0 || frame->sample_rate > MAX_INPUT_RATE))
    return bad_audio(err, "unsupported sample rate");
  if (frame && resampler_prepare(dec, frame) < 0)
    return bad_audio(err, "unsupported sample format");
  if (!dec->resampler)
    return 0;
  int in_count = frame ? frame->nb_samples : 0;
  int room = swr_get_out_samples(dec->resampler, in_count);
  if (room < 0)
    return bad_audio(err, "resampling failed");
  if (room == 0)
    return 0;
  if (samples_reserve(dec, (size_t) room) < 0)
    return bad_audio(err, "out of memory");
  uint8_t *out = (uint8_t *) (dec->samples + dec->count);
  int converted = swr_convert(dec->resampler, &out, room,
                              frame ? (const uint8_t **) frame->extended_data : NULL, in_count);
  if (converted < 0)
    return bad_audio(err, "resampling failed");
  dec->count += (size_t) converted;
  if (dec->max_samples && dec->count > dec->max_samples)
    return too_long(max_ms, err);
  return 0;
}

/* Pulls every frame the decoder has ready. */
static int frames_drain(decoder_t *dec, uint32_t max_ms, stage_error_t *err)
{
  for (;;) {
    int rc = avcodec_receive_frame(dec->codec, dec->frame);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
      return 0;
    if (rc < 0)
      return bad_audio(err, "decoding failed");
    rc = samples_append(dec, dec->frame, max_ms, err);
    av_frame_unref(dec->frame);
    if (rc < 0)
      return -1;
  }
}

static int decoder_run(decoder_t *dec, uint32_t max_ms, stage_error_t *err)
{
  for (;;) {
    int rc = av_read_frame(dec->format, dec->packet);
    if (rc < 0)
      break;      /* end of input; a truncated file ends here too, keeping what decoded */
    if (dec->packet->stream_index != dec->stream_index) {
      av_packet_unref(dec->packet);
      continue;
    }
    rc = avcodec_send_packet(dec->codec, dec->packet);
    av_packet_unref(dec->packet);
    /* A corrupt packet is skipped: browsers' recordings can have a damaged tail. */
    if (rc < 0 && rc != AVERROR_INVALIDDATA)
      return bad_audio(err, "decoding failed");
    if (frames_drain(dec, max_ms, err) < 0)
      return -1;
  }
  if (avcodec_send_packet(dec->codec, NULL) < 0)
    return bad_audio(err, "decoding failed");
  if (frames_drain(dec, max_ms, err) < 0)
    return -1;
  return samples_append(dec, NULL, max_ms, err);
}

int audio_decode(const uint8_t *data, size_t size, int sample_rate, uint32_t max_ms,
                 pcm_t *out, stage_error_t *err)
{
  memset(out, 0, sizeof *out);
  if (!data || size == 0)
    return bad_audio(err, "the upload is empty");
  if (sample_rate <= 0)
    return bad_audio(err, "invalid output rate");

  decoder_t dec = {0};
  dec.input.data = (uint8_t *) data;
  dec.input.size = size;
  dec.out_rate = sample_rate;
  dec.max_samples = (size_t) ((uint64_t) max_ms * (uint64_t) sample_rate / 1000);

  int rc = decoder_open(&dec, max_ms, err);
  if (rc == 0)
    rc = decoder_run(&dec, max_ms, err);
  if (rc == 0 && dec.count == 0)
    rc = bad_audio(err, "no samples");
  if (rc == 0) {
    out->samples = dec.samples;         /* ownership moves to the caller */
    out->count = dec.count;
    out->sample_rate = sample_rate;
    dec.samples = NULL;
  }
  decoder_release(&dec);
  return rc;
}
