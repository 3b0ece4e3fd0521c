/* memory_io: AVIOContext callbacks over a growing memory buffer (see memory_io.h). */
#include "memory_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define AVIO_BUFFER_SIZE 65536

/* FFmpeg 7 made the write callback's buffer const. */
#if LIBAVFORMAT_VERSION_MAJOR >= 61
typedef const uint8_t avio_write_buf_t;
#else
typedef uint8_t avio_write_buf_t;
#endif

/* One position in a file: the opaque of one AVIOContext, so that any number of
 * contexts can read and write the same file. */
typedef struct {
  memory_file_t *file;
  size_t pos;
} cursor_t;

static int reserve(memory_file_t *file, size_t needed)
{
  if (needed <= file->capacity)
    return 0;
  if (needed > MEMORY_FILE_MAX)
    return -1;
  size_t capacity = file->capacity ? file->capacity : AVIO_BUFFER_SIZE;
  while (capacity < needed)
    capacity *= 2;
  uint8_t *grown = realloc(file->data, capacity);
  if (!grown)
    return -1;
  file->data = grown;
  file->capacity = capacity;
  return 0;
}

static int write_packet(void *opaque, avio_write_buf_t *buf, int buf_size)
{
  cursor_t *cursor = opaque;
  memory_file_t *file = cursor->file;
  if (buf_size < 0 || reserve(file, cursor->pos + (size_t) buf_size) < 0)
    return AVERROR(ENOMEM);
  if (cursor->pos > file->size)   /* seeked past the end: the hole reads as zeros */
    memset(file->data + file->size, 0, cursor->pos - file->size);
  memcpy(file->data + cursor->pos, buf, (size_t) buf_size);
  cursor->pos += (size_t) buf_size;
  if (cursor->pos > file->size)
    file->size = cursor->pos;
  return buf_size;
}

static int read_packet(void *opaque, uint8_t *buf, int buf_size)
{
  cursor_t *cursor = opaque;
  memory_file_t *file = cursor->file;
  if (cursor->pos >= file->size)
    return AVERROR_EOF;
  size_t left = file->size - cursor->pos;
  size_t count = buf_size < 0 ? 0 : (size_t) buf_size < left ? (size_t) buf_size : left;
  memcpy(buf, file->data + cursor->pos, count);
  cursor->pos += count;
  return (int) count;
}

static int64_t seek(void *opaque, int64_t offset, int whence)
{
  cursor_t *cursor = opaque;
  int64_t base;
  switch (whence & ~AVSEEK_FORCE) {
  case AVSEEK_SIZE: return (int64_t) cursor->file->size;
  case SEEK_SET: base = 0; break;
  case SEEK_CUR: base = (int64_t) cursor->pos; break;
  case SEEK_END: base = (int64_t) cursor->file->size; break;
  default: return AVERROR(EINVAL);
  }
  int64_t target = base + offset;
  if (target < 0 || (uint64_t) target > MEMORY_FILE_MAX)
    return AVERROR(EINVAL);
  cursor->pos = (size_t) target;
  return target;
}

AVIOContext *memory_io_new(memory_file_t *file, bool writable)
{
  cursor_t *cursor = malloc(sizeof *cursor);
  uint8_t *buffer = av_malloc(AVIO_BUFFER_SIZE);
  AVIOContext *io = cursor && buffer ? avio_alloc_context(buffer, AVIO_BUFFER_SIZE, writable,
                                                          cursor, read_packet, write_packet, seek)
                                     : NULL;
  if (!io) {
    free(cursor);
    av_free(buffer);
    return NULL;
  }
  *cursor = (cursor_t) {.file = file, .pos = 0};
  return io;
}

void memory_io_free(AVIOContext **io_p)
{
  if (!*io_p)
    return;
  free((*io_p)->opaque);
  av_freep(&(*io_p)->buffer);
  avio_context_free(io_p);
}

static int reopen(AVFormatContext *format, AVIOContext **pb, const char *url, int flags,
                  AVDictionary **options)
{
  (void) url;
  (void) options;
  *pb = memory_io_new(format->opaque, (flags & AVIO_FLAG_WRITE) != 0);
  return *pb ? 0 : AVERROR(ENOMEM);
}

static int close_reopened(AVFormatContext *format, AVIOContext *pb)
{
  (void) format;
  if (!pb)
    return 0;
  avio_flush(pb);
  int error = pb->error;
  memory_io_free(&pb);
  return error;
}

int memory_io_attach(AVFormatContext *format, memory_file_t *file, AVIOContext **io_p)
{
  *io_p = memory_io_new(file, true);
  if (!*io_p)
    return AVERROR(ENOMEM);
  format->pb = *io_p;
  format->flags |= AVFMT_FLAG_CUSTOM_IO;
  format->opaque = file;
  format->io_open = reopen;
  format->io_close2 = close_reopened;
  return 0;
}
