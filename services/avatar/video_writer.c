/* video_writer: libavcodec encoders + libavformat's MP4 or WebM muxer over a growing
 * memory buffer (memory_io). */
#include "video_writer.h"

#include "memory_io.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define AUDIO_BIT_RATE 96000
#define VP8_MAX_BIT_RATE 1000000

typedef struct {
  AVCodecContext *codec;
  AVStream *stream;
  int64_t next_pts;
} encoder_t;

/* What each container is made of. */
typedef struct {
  const char *muxer;
  const char *video_encoder;
  const char *audio_encoder;
} container_spec_t;

static const container_spec_t container_specs[] = {
  [VIDEO_MP4] = { "mp4", "libx264", "aac" },
  [VIDEO_WEBM] = { "webm", "libvpx", "libopus" },
};

struct video_writer {
  const container_spec_t *spec;
  memory_file_t file;
  AVFormatContext *format;
  AVIOContext *io;
  encoder_t video;
  encoder_t audio;
  struct SwsContext *scaler;
  AVFrame *video_frame;
  AVFrame *audio_frame;    /* filled up to nb_samples before each send; NULL: no audio */
  AVPacket *packet;
  int audio_fill;          /* samples already in audio_frame */
  int width, height;
};

static int set_render_error(stage_error_t *err, const char *what, int averror)
{
  char reason[AV_ERROR_MAX_STRING_SIZE] = "";
  av_strerror(averror, reason, sizeof reason);
  return stage_error_set(err, "render_error", "video encoding failed: %s: %s", what, reason);
}

int video_writer_check_encoders(video_container_t container, stage_error_t *err)
{
  if (container != VIDEO_MP4 && container != VIDEO_WEBM)
    return stage_error_set(err, "render_error", "unknown video container %d", (int) container);
  const container_spec_t *spec = &container_specs[container];
  if (!avcodec_find_encoder_by_name(spec->video_encoder))
    return stage_error_set(err, "render_error", "this FFmpeg has no %s encoder", spec->video_encoder);
  if (!avcodec_find_encoder_by_name(spec->audio_encoder))
    return stage_error_set(err, "render_error", "this FFmpeg has no %s encoder", spec->audio_encoder);
  return 0;
}

/* Encoder options: x264's speed preset and constant quality, or libvpx's realtime
 * mode at its fastest speed with a constant-quality cap (a drawn face compresses
 * well; a talking-head video should be ready in a fraction of its length). */
static int video_options(const video_writer_t *writer, const video_settings_t *settings,
                         AVDictionary **options)
{
  if (writer->spec == &container_specs[VIDEO_MP4]) {
    int rc = av_dict_set(options, "preset", settings->x264_preset, 0);
    return rc < 0 ? rc : av_dict_set_int(options, "crf", settings->crf, 0);
  }
  int rc = av_dict_set(options, "deadline", "realtime", 0);
  if (rc >= 0)
    rc = av_dict_set_int(options, "cpu-used", 8, 0);
  if (rc >= 0)
    rc = av_dict_set_int(options, "crf", settings->crf, 0);
  return rc;
}

static int open_video(video_writer_t *writer, const video_settings_t *settings, stage_error_t *err)
{
  const AVCodec *codec = avcodec_find_encoder_by_name(writer->spec->video_encoder);
  if (!codec)
    return stage_error_set(err, "render_error", "this FFmpeg has no %s encoder", writer->spec->video_encoder);
  AVCodecContext *ctx = avcodec_alloc_context3(codec);
  writer->video.codec = ctx;
  if (!ctx)
    return stage_error_set(err, "render_error", "out of memory");
  ctx->width = settings->width;
  ctx->height = settings->height;
  ctx->pix_fmt = AV_PIX_FMT_YUV420P;
  ctx->time_base = (AVRational) { 1, settings->fps };
  ctx->framerate = (AVRational) { settings->fps, 1 };
  ctx->gop_size = 2 * settings->fps;        /* a key frame every 2 s for seeking */
  ctx->color_range = AVCOL_RANGE_MPEG;
  ctx->colorspace = AVCOL_SPC_SMPTE170M;    /* what swscale's default matrix produces */
  ctx->color_primaries = AVCOL_PRI_SMPTE170M;
  ctx->color_trc = AVCOL_TRC_SMPTE170M;
  /* x264 in frame threads: a frame is encoded on another core while the next
   * one is drawn. The frames they hold back only delay the end of the file,
   * which is waited for anyway. libvpx stays on one thread: its threading was
   * ten times slower here. */
  bool threaded = settings->container == VIDEO_MP4 && settings->threads > 1;
  ctx->thread_count = threaded ? settings->threads : 1;
  ctx->thread_type = FF_THREAD_FRAME;
  if (writer->format->oformat->flags & AVFMT_GLOBALHEADER)
    ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  /* libvpx's constant-quality mode needs a ceiling on the bit rate. */
  if (writer->spec == &container_specs[VIDEO_WEBM])
    ctx->bit_rate = VP8_MAX_BIT_RATE;
  AVDictionary *options = NULL;
  int rc = video_options(writer, settings, &options);
  if (rc >= 0)
    rc = avcodec_open2(ctx, codec, &options);
  av_dict_free(&options);
  if (rc < 0)
    return set_render_error(err, writer->spec->video_encoder, rc);

  writer->video.stream = avformat_new_stream(writer->format, NULL);
  if (!writer->video.stream)
    return stage_error_set(err, "render_error", "out of memory");
  writer->video.stream->time_base = ctx->time_base;
  rc = avcodec_parameters_from_context(writer->video.stream->codecpar, ctx);
  if (rc < 0)
    return set_render_error(err, "video stream parameters", rc);

  writer->video_frame = av_frame_alloc();
  if (!writer->video_frame)
    return stage_error_set(err, "render_error", "out of memory");
  writer->video_frame->format = ctx->pix_fmt;
  writer->video_frame->width = ctx->width;
  writer->video_frame->height = ctx->height;
  rc = av_frame_get_buffer(writer->video_frame, 0);
  if (rc < 0)
    return set_render_error(err, "allocating a video frame", rc);

  writer->scaler = sws_getContext(ctx->width, ctx->height, AV_PIX_FMT_RGB32, ctx->width,
                                  ctx->height, AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL, NULL, NULL);
  if (!writer->scaler)
    return stage_error_set(err, "render_error", "no RGB to YUV 4:2:0 converter");
  return 0;
}

/* Mono samples in a float or 16-bit format the encoder takes (for one channel,
 * planar and interleaved are the same layout). */
static enum AVSampleFormat audio_sample_format(const AVCodec *codec)
{
  static const enum AVSampleFormat wanted[] = { AV_SAMPLE_FMT_FLTP, AV_SAMPLE_FMT_FLT, AV_SAMPLE_FMT_S16 };
  if (!codec->sample_fmts)
    return AV_SAMPLE_FMT_NONE;
  for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
    for (const enum AVSampleFormat *f = codec->sample_fmts; *f != AV_SAMPLE_FMT_NONE; f++)
      if (*f == wanted[i])
        return wanted[i];
  return AV_SAMPLE_FMT_NONE;
}

static int open_audio(video_writer_t *writer, const video_settings_t *settings, stage_error_t *err)
{
  const AVCodec *codec = avcodec_find_encoder_by_name(writer->spec->audio_encoder);
  if (!codec)
    return stage_error_set(err, "render_error", "this FFmpeg has no %s encoder", writer->spec->audio_encoder);
  AVCodecContext *ctx = avcodec_alloc_context3(codec);
  writer->audio.codec = ctx;
  if (!ctx)
    return stage_error_set(err, "render_error", "out of memory");
  ctx->sample_fmt = audio_sample_format(codec);
  if (ctx->sample_fmt == AV_SAMPLE_FMT_NONE)
    return stage_error_set(err, "render_error", "%s takes no float or 16-bit samples", writer->spec->audio_encoder);
  ctx->sample_rate = settings->sample_rate;
  av_channel_layout_default(&ctx->ch_layout, 1);
  ctx->bit_rate = AUDIO_BIT_RATE;
  ctx->time_base = (AVRational) { 1, settings->sample_rate };
  if (writer->format->oformat->flags & AVFMT_GLOBALHEADER)
    ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  int rc = avcodec_open2(ctx, codec, NULL);
  if (rc < 0)
    return set_render_error(err, writer->spec->audio_encoder, rc);

  writer->audio.stream = avformat_new_stream(writer->format, NULL);
  if (!writer->audio.stream)
    return stage_error_set(err, "render_error", "out of memory");
  writer->audio.stream->time_base = ctx->time_base;
  rc = avcodec_parameters_from_context(writer->audio.stream->codecpar, ctx);
  if (rc < 0)
    return set_render_error(err, "audio stream parameters", rc);

  writer->audio_frame = av_frame_alloc();
  if (!writer->audio_frame)
    return stage_error_set(err, "render_error", "out of memory");
  writer->audio_frame->format = ctx->sample_fmt;
  writer->audio_frame->sample_rate = ctx->sample_rate;
  writer->audio_frame->nb_samples = ctx->frame_size;
  rc = av_channel_layout_copy(&writer->audio_frame->ch_layout, &ctx->ch_layout);
  if (rc >= 0)
    rc = av_frame_get_buffer(writer->audio_frame, 0);
  if (rc < 0)
    return set_render_error(err, "allocating an audio frame", rc);
  return 0;
}

static int open_muxer(video_writer_t *writer, stage_error_t *err)
{
  if (memory_io_attach(writer->format, &writer->file, &writer->io) < 0)
    return stage_error_set(err, "render_error", "out of memory");
  AVDictionary *options = NULL;
  int rc = 0;
  if (writer->spec == &container_specs[VIDEO_MP4])
    rc = av_dict_set(&options, "movflags", "+faststart", 0);
  if (rc >= 0)
    rc = avformat_write_header(writer->format, &options);
  av_dict_free(&options);
  if (rc < 0)
    return set_render_error(err, "writing the file header", rc);
  return 0;
}

video_writer_t *video_writer_new(const video_settings_t *settings, stage_error_t *err)
{
  if (settings->width <= 0 || settings->height <= 0 || settings->width % 2 || settings->height % 2
      || settings->fps <= 0 || settings->sample_rate < 0
      || (settings->container != VIDEO_MP4 && settings->container != VIDEO_WEBM)) {
    stage_error_set(err, "render_error", "invalid video settings %dx%d at %d fps",
                    settings->width, settings->height, settings->fps);
    return NULL;
  }
  video_writer_t *writer = calloc(1, sizeof *writer);
  if (!writer) {
    stage_error_set(err, "render_error", "out of memory");
    return NULL;
  }
  writer->spec = &container_specs[settings->container];
  writer->width = settings->width;
  writer->height = settings->height;
  writer->packet = av_packet_alloc();
  /* Every byte goes through our own AVIO; the format name only picks the muxer. */
  int rc = avformat_alloc_output_context2(&writer->format, NULL, writer->spec->muxer, NULL);
  if (!writer->packet || rc < 0 || !writer->format) {
    set_render_error(err, "creating the muxer", rc < 0 ? rc : AVERROR(ENOMEM));
    video_writer_destroy(&writer);
    return NULL;
  }
  if (open_video(writer, settings, err) < 0
      || (settings->sample_rate > 0 && open_audio(writer, settings, err) < 0)
      || open_muxer(writer, err) < 0) {
    video_writer_destroy(&writer);
    return NULL;
  }
  return writer;
}

/* Sends `frame` (NULL = flush) and muxes every packet the encoder has ready. */
static int encode(video_writer_t *writer, encoder_t *encoder, AVFrame *frame, stage_error_t *err)
{
  int rc = avcodec_send_frame(encoder->codec, frame);
  if (rc < 0)
    return set_render_error(err, "sending a frame to the encoder", rc);
  for (;;) {
    rc = avcodec_receive_packet(encoder->codec, writer->packet);
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
      return 0;
    if (rc < 0)
      return set_render_error(err, "encoding", rc);
    /* Without a duration the muxer's edit list ends at the last frame's start,
     * cutting that frame off; every video frame lasts one tick of 1/fps. */
    if (encoder == &writer->video && writer->packet->duration == 0)
      writer->packet->duration = 1;
    av_packet_rescale_ts(writer->packet, encoder->codec->time_base, encoder->stream->time_base);
    writer->packet->stream_index = encoder->stream->index;
    rc = av_interleaved_write_frame(writer->format, writer->packet);
    if (rc < 0)
      return set_render_error(err, "muxing", rc);
  }
}

int video_writer_add_frame(video_writer_t *writer, const uint8_t *pixels, int stride,
                         stage_error_t *err)
{
  AVFrame *frame = writer->video_frame;
  /* The encoder may still hold the previous frame's buffer (lookahead). */
  int rc = av_frame_make_writable(frame);
  if (rc < 0)
    return set_render_error(err, "reusing the video frame", rc);
  const uint8_t *const planes[1] = { pixels };
  const int strides[1] = { stride };
  rc = sws_scale(writer->scaler, planes, strides, 0, writer->height, frame->data, frame->linesize);
  if (rc != writer->height)
    return stage_error_set(err, "render_error", "RGB to YUV conversion failed");
  frame->pts = writer->video.next_pts++;
  return encode(writer, &writer->video, frame, err);
}

static int send_audio_frame(video_writer_t *writer, stage_error_t *err)
{
  AVFrame *frame = writer->audio_frame;
  frame->nb_samples = writer->audio_fill;
  frame->pts = writer->audio.next_pts;
  writer->audio.next_pts += writer->audio_fill;
  writer->audio_fill = 0;
  int rc = encode(writer, &writer->audio, frame, err);
  frame->nb_samples = writer->audio.codec->frame_size;
  return rc;
}

int video_writer_add_audio(video_writer_t *writer, const int16_t *samples, size_t count,
                           stage_error_t *err)
{
  if (!writer->audio_frame)
    return count == 0 ? 0 : stage_error_set(err, "render_error", "this video has no audio track");
  int frame_size = writer->audio.codec->frame_size;
  int as_float = writer->audio.codec->sample_fmt != AV_SAMPLE_FMT_S16;
  for (size_t i = 0; i < count; i++) {
    if (writer->audio_fill == 0) {
      int rc = av_frame_make_writable(writer->audio_frame);
      if (rc < 0)
        return set_render_error(err, "reusing the audio frame", rc);
    }
    if (as_float)
      ((float *) writer->audio_frame->data[0])[writer->audio_fill++] = (float) samples[i] / 32768.0f;
    else
      ((int16_t *) writer->audio_frame->data[0])[writer->audio_fill++] = samples[i];
    if (writer->audio_fill == frame_size && send_audio_frame(writer, err) < 0)
      return -1;
  }
  return 0;
}

/* Sends what is left of the audio: as a short last frame when the encoder takes
 * one (AAC, Opus), otherwise padded with silence. */
static int flush_audio_tail(video_writer_t *writer, stage_error_t *err)
{
  if (!writer->audio_frame || writer->audio_fill == 0)
    return 0;
  if (!(writer->audio.codec->codec->capabilities & AV_CODEC_CAP_SMALL_LAST_FRAME)) {
    static const int16_t silence[256] = { 0 };
    while (writer->audio_fill > 0) {
      size_t missing = (size_t) (writer->audio.codec->frame_size - writer->audio_fill);
      if (video_writer_add_audio(writer, silence, missing < 256 ? missing : 256, err) < 0)
        return -1;
    }
    return 0;
  }
  return send_audio_frame(writer, err);
}

int video_writer_finish(video_writer_t *writer, uint8_t **out, size_t *out_size, stage_error_t *err)
{
  if (flush_audio_tail(writer, err) < 0 || encode(writer, &writer->video, NULL, err) < 0
      || (writer->audio_frame && encode(writer, &writer->audio, NULL, err) < 0))
    return -1;
  int rc = av_write_trailer(writer->format);
  if (rc < 0)
    return set_render_error(err, "writing the file index", rc);
  avio_flush(writer->io);
  if (writer->io->error < 0)
    return set_render_error(err, "writing the file", writer->io->error);
  *out = writer->file.data;
  *out_size = writer->file.size;
  writer->file = (memory_file_t) { 0 };
  return 0;
}

void video_writer_destroy(video_writer_t **writer_p)
{
  if (!writer_p || !*writer_p)
    return;
  video_writer_t *writer = *writer_p;
  avcodec_free_context(&writer->video.codec);
  avcodec_free_context(&writer->audio.codec);
  sws_freeContext(writer->scaler);
  av_frame_free(&writer->video_frame);
  av_frame_free(&writer->audio_frame);
  av_packet_free(&writer->packet);
  avformat_free_context(writer->format);
  memory_io_free(&writer->io);
  free(writer->file.data);
  free(writer);
  *writer_p = NULL;
}
