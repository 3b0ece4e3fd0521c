/* memory_io: libavformat input and output over a file held in memory, so media
 * never touches the disk between the stages and the gateway. A muxer may re-open
 * its output to read it again (MP4's faststart moves the index to the front that
 * way): memory_io_attach routes those re-openings to the same memory file. */
#ifndef MEMORY_IO_H
#define MEMORY_IO_H

#include <libavformat/avformat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest file memory_io builds: a talking-head answer is a few MB; this only
 * stops a runaway muxer. */
#define MEMORY_FILE_MAX ((size_t) 1 << 30)

/* A file in memory. Writers grow `data` (malloc'd, owned by the struct: free it
 * or take it); readers only look at it. */
typedef struct {
  uint8_t *data;
  size_t size;
  size_t capacity;
} memory_file_t;

/* A new AVIOContext at the start of `file` (borrowed: it must outlive the
 * context), for reading, or for writing when `writable`. NULL when out of memory.
 * Free with memory_io_free. */
AVIOContext *memory_io_new(memory_file_t *file, bool writable);

/* Frees a context from memory_io_new (its buffer included); sets *io_p to NULL. */
void memory_io_free(AVIOContext **io_p);

/* Makes `format` (an output context) write into `file` through `*io_p` (a new
 * context, free it with memory_io_free after avformat's own clean-up), including
 * the muxer's re-openings of its output. 0, or AVERROR(ENOMEM). */
int memory_io_attach(AVFormatContext *format, memory_file_t *file, AVIOContext **io_p);

#endif
