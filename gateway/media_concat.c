/* media_concat: remuxing segment files into one (see media_concat.h). */
#include "media_concat.h"

#include "memory_io.h"

#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/mathematics.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define STREAMS_MAX 4

/* One output file being built. */
typedef struct {
  AVFormatContext *format;
  AVIOContext *io;
  memory_file_t file;
  int64_t last_dts[STREAMS_MAX];   /* per output stream, in its time base */
  int64_t offset_us;               /* where the next part starts */
  char *error;
  size_t error_size;
} joiner_t;

static int fail(joiner_t *joiner, const char *fmt, ...)
{
  va_list args;
  va_start(args, fmt);
  vsnprintf(joiner->error, joiner->error_size, fmt, args);
  va_end(args);
  return -1;
}

static int fail_av(joiner_t *joiner, const char *what, size_t part, int averror)
{
  char reason[AV_ERROR_MAX_STRING_SIZE] = "";
  av_strerror(averror, reason, sizeof reason);
  return fail(joiner, "%s (part %zu): %s", what, part, reason);
}

const char *media_concat_muxer(const char *name)
{
  const char *dot = name ? strrchr(name, '.') : NULL;
  static const char *const known[] = {"mp4", "webm", "wav", "mp3", "ogg"};
  for (size_t i = 0; dot && i < sizeof known / sizeof *known; i++)
    if (strcmp(dot + 1, known[i]) == 0)
      return known[i];
  return NULL;
}

/* The output's streams copy the first part's; MP4 gets its index at the front
 * so that a browser starts playing before the whole file has arrived. */
static int open_output(joiner_t *joiner, const AVFormatContext *first, const char *muxer)
{
  int rc = avformat_alloc_output_context2(&joiner->format, NULL, muxer, NULL);
  if (rc < 0)
    return fail_av(joiner, "no muxer", 0, rc);
  if (first->nb_streams == 0 || first->nb_streams > STREAMS_MAX)
    return fail(joiner, "part 0 has %u streams", first->nb_streams);
  for (unsigned i = 0; i < first->nb_streams; i++) {
    AVStream *stream = avformat_new_stream(joiner->format, NULL);
    if (!stream)
      return fail(joiner, "out of memory");
    rc = avcodec_parameters_copy(stream->codecpar, first->streams[i]->codecpar);
    if (rc < 0)
      return fail_av(joiner, "copying stream parameters", 0, rc);
    stream->codecpar->codec_tag = 0;
    stream->time_base = first->streams[i]->time_base;
    joiner->last_dts[i] = AV_NOPTS_VALUE;
  }
  if (memory_io_attach(joiner->format, &joiner->file, &joiner->io) < 0)
    return fail(joiner, "out of memory");
  AVDictionary *options = NULL;
  rc = strcmp(muxer, "mp4") == 0 ? av_dict_set(&options, "movflags", "+faststart", 0) : 0;
  if (rc >= 0)
    rc = avformat_write_header(joiner->format, &options);
  av_dict_free(&options);
  return rc < 0 ? fail_av(joiner, "writing the header", 0, rc) : 0;
}

static bool same_streams(const AVFormatContext *a, const AVFormatContext *b)
{
  if (a->nb_streams != b->nb_streams)
    return false;
  for (unsigned i = 0; i < a->nb_streams; i++)
    if (a->streams[i]->codecpar->codec_id != b->streams[i]->codecpar->codec_id ||
        a->streams[i]->codecpar->codec_type != b->streams[i]->codecpar->codec_type)
      return false;
  return true;
}

/* Earliest timestamp of the part, in microseconds: its packets are shifted so
 * that this lands on the end of the previous part. */
static int64_t part_start_us(const AVFormatContext *input)
{
  int64_t start = input->start_time;
  return start == AV_NOPTS_VALUE ? 0 : start;
}

/* Copies every packet of one part; returns 0 or -1. */
static int copy_part(joiner_t *joiner, AVFormatContext *input, size_t index)
{
  AVPacket *packet = av_packet_alloc();
  if (!packet)
    return fail(joiner, "out of memory");
  int64_t start_us = part_start_us(input), end_us = start_us;
  int rc;
  while ((rc = av_read_frame(input, packet)) >= 0) {
    unsigned stream = (unsigned) packet->stream_index;
    AVRational in_base = input->streams[stream]->time_base;
    AVRational out_base = joiner->format->streams[stream]->time_base;
    int64_t shift = av_rescale_q(joiner->offset_us - start_us, AV_TIME_BASE_Q, in_base);
    if (packet->pts != AV_NOPTS_VALUE) {
      int64_t packet_end = av_rescale_q(packet->pts + packet->duration, in_base, AV_TIME_BASE_Q);
      if (packet_end > end_us)
        end_us = packet_end;
      packet->pts += shift;
    }
    if (packet->dts != AV_NOPTS_VALUE)
      packet->dts += shift;
    av_packet_rescale_ts(packet, in_base, out_base);
    /* A codec's priming at the start of a part may reach back before the end of
     * the previous one: keep decoding order strictly increasing. */
    int64_t *last = &joiner->last_dts[stream];
    if (packet->dts != AV_NOPTS_VALUE && *last != AV_NOPTS_VALUE && packet->dts <= *last) {
      int64_t bump = *last + 1 - packet->dts;
      packet->dts += bump;
      if (packet->pts != AV_NOPTS_VALUE)
        packet->pts += bump;
    }
    if (packet->dts != AV_NOPTS_VALUE)
      *last = packet->dts;
    packet->pos = -1;
    rc = av_interleaved_write_frame(joiner->format, packet);
    if (rc < 0) {
      av_packet_free(&packet);
      return fail_av(joiner, "writing a packet", index, rc);
    }
  }
  av_packet_free(&packet);
  if (rc != AVERROR_EOF)
    return fail_av(joiner, "reading", index, rc);
  joiner->offset_us += end_us - start_us;
  return 0;
}

/* Opens one part for reading from memory. */
static int open_part(joiner_t *joiner, memory_file_t *file, size_t index, AVFormatContext **input_p,
                     AVIOContext **io_p)
{
  *io_p = memory_io_new(file, false);
  *input_p = avformat_alloc_context();
  if (!*io_p || !*input_p)
    return fail(joiner, "out of memory");
  (*input_p)->pb = *io_p;
  (*input_p)->flags |= AVFMT_FLAG_CUSTOM_IO;
  int rc = avformat_open_input(input_p, NULL, NULL, NULL);
  if (rc < 0)
    return fail_av(joiner, "opening", index, rc);
  return 0;
}

int media_concat(const media_part_t *parts, size_t count, const char *muxer, uint8_t **out,
                 size_t *out_size, char *error, size_t error_size)
{
  joiner_t joiner = {.error = error, .error_size = error_size};
  *out = NULL;
  *out_size = 0;
  int rc = count ? 0 : fail(&joiner, "nothing to join");
  for (size_t i = 0; rc == 0 && i < count; i++) {
    memory_file_t file = {.data = (uint8_t *) parts[i].data, .size = parts[i].size};
    AVFormatContext *input = NULL;
    AVIOContext *io = NULL;
    rc = open_part(&joiner, &file, i, &input, &io);
    if (rc == 0 && i == 0)
      rc = open_output(&joiner, input, muxer);
    else if (rc == 0 && !same_streams(joiner.format ? joiner.format : input, input))
      rc = fail(&joiner, "part %zu has other streams than part 0", i);
    if (rc == 0)
      rc = copy_part(&joiner, input, i);
    avformat_close_input(&input);
    memory_io_free(&io);
  }
  if (rc == 0) {
    int written = av_write_trailer(joiner.format);
    if (written < 0)
      rc = fail_av(&joiner, "finishing the file", count, written);
  }
  if (joiner.format)
    avformat_free_context(joiner.format);
  memory_io_free(&joiner.io);
  if (rc == 0) {
    *out = joiner.file.data;
    *out_size = joiner.file.size;
  } else {
    free(joiner.file.data);
  }
  return rc;
}
