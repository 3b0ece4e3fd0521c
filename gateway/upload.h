/* upload: request bodies. A bounded byte buffer that refuses to grow past its
 * limit, the audio Content-Types the gateway accepts, magic-byte sniffing that
 * tells clearly-not-audio apart from audio of the declared family, and UTF-8
 * checks for typed text. Multipart bodies are parsed by MHD's post processor
 * in http_api; its parts land in these buffers. */
#ifndef GATEWAY_UPLOAD_H
#define GATEWAY_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  AUDIO_UNSUPPORTED = 0, /* a type the gateway does not take */
  AUDIO_UNDECLARED,      /* application/octet-stream or none: decide by sniffing */
  AUDIO_WEBM,
  AUDIO_OGG,
  AUDIO_WAV,
  AUDIO_MPEG,
  AUDIO_MP4,
} audio_family_t;

/* A growing buffer with a hard limit. */
typedef struct {
  uint8_t *data;
  size_t size;
  size_t capacity;
  size_t limit;
  bool overflowed; /* some bytes were refused: the body is over the limit */
} upload_buffer_t;

/* Starts an empty buffer that takes at most `limit` bytes. */
void upload_buffer_init(upload_buffer_t *buffer, size_t limit);

/* Appends `size` bytes. 0; or -1 when that would pass the limit (the bytes are
 * dropped and `overflowed` set, so the caller can keep reading the body without
 * storing it) or when out of memory. */
int upload_buffer_append(upload_buffer_t *buffer, const uint8_t *data, size_t size);

/* Frees the bytes and empties the buffer. */
void upload_buffer_free(upload_buffer_t *buffer);

/* The family of a Content-Type value such as "audio/webm;codecs=opus" (case and
 * parameters ignored; audio/x-wav and audio/wave count as WAV). NULL gives
 * AUDIO_UNDECLARED. */
audio_family_t upload_audio_family(const char *content_type);

/* true when the Content-Type's media type is `type` (e.g. "multipart/form-data"),
 * ignoring case and parameters. */
bool upload_type_is(const char *content_type, const char *type);

/* The family whose magic bytes start `data`, or AUDIO_UNSUPPORTED. */
audio_family_t upload_sniff(const uint8_t *data, size_t size);

/* true when `data` is plausibly audio of `declared`: its magic bytes match the
 * family (MP4 and WebM share enough containers that only their own magic
 * counts). For AUDIO_UNDECLARED any recognised audio family passes. */
bool upload_sniff_matches(audio_family_t declared, const uint8_t *data, size_t size);

/* The canonical MIME type of a family, e.g. "audio/webm". */
const char *upload_family_mime(audio_family_t family);

/* true when `text` (NUL-terminated) is well-formed UTF-8 without overlongs or
 * surrogates. */
bool upload_text_is_utf8(const char *text);

/* Number of Unicode code points in well-formed UTF-8 `text`. */
size_t upload_utf8_length(const char *text);

#endif
