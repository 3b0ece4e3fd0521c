/* upload: bounded buffers, Content-Type families, magic-byte sniffing, UTF-8. */
#include "upload.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void upload_buffer_init(upload_buffer_t *buffer, size_t limit)
{
  memset(buffer, 0, sizeof *buffer);
  buffer->limit = limit;
}

int upload_buffer_append(upload_buffer_t *buffer, const uint8_t *data, size_t size)
{
  if (buffer->overflowed || size > buffer->limit - buffer->size) {
    buffer->overflowed = true;
    return -1;
  }
  if (buffer->size + size > buffer->capacity) {
    /* Doubling keeps appends amortised O(1); the limit caps the last step. */
    size_t capacity = buffer->capacity ? buffer->capacity : 16384;
    while (capacity < buffer->size + size)
      capacity *= 2;
    if (capacity > buffer->limit)
      capacity = buffer->limit;
    uint8_t *grown = realloc(buffer->data, capacity);
    if (!grown)
      return -1;
    buffer->data = grown;
    buffer->capacity = capacity;
  }
  if (size)
    memcpy(buffer->data + buffer->size, data, size);
  buffer->size += size;
  return 0;
}

void upload_buffer_free(upload_buffer_t *buffer)
{
  free(buffer->data);
  buffer->data = NULL;
  buffer->size = 0;
  buffer->capacity = 0;
}

/* Compares the media type of `content_type` (before any ';', spaces trimmed)
 * with `type`, ignoring case. */
bool upload_type_is(const char *content_type, const char *type)
{
  if (!content_type)
    return false;
  while (*content_type == ' ' || *content_type == '\t')
    content_type++;
  size_t length = strcspn(content_type, ";");
  while (length && (content_type[length - 1] == ' ' || content_type[length - 1] == '\t'))
    length--;
  return length == strlen(type) && strncasecmp(content_type, type, length) == 0;
}

static const struct {
  const char *type;
  audio_family_t family;
} audio_types[] = {
  {"audio/webm", AUDIO_WEBM}, {"audio/ogg", AUDIO_OGG},   {"audio/wav", AUDIO_WAV},
  {"audio/x-wav", AUDIO_WAV}, {"audio/wave", AUDIO_WAV},  {"audio/mpeg", AUDIO_MPEG},
  {"audio/mp4", AUDIO_MP4},
};

audio_family_t upload_audio_family(const char *content_type)
{
  if (!content_type || !*content_type || upload_type_is(content_type, "application/octet-stream"))
    return AUDIO_UNDECLARED;
  for (size_t i = 0; i < sizeof audio_types / sizeof audio_types[0]; i++)
    if (upload_type_is(content_type, audio_types[i].type))
      return audio_types[i].family;
  return AUDIO_UNSUPPORTED;
}

const char *upload_family_mime(audio_family_t family)
{
  switch (family) {
  case AUDIO_WEBM: return "audio/webm";
  case AUDIO_OGG: return "audio/ogg";
  case AUDIO_WAV: return "audio/wav";
  case AUDIO_MPEG: return "audio/mpeg";
  case AUDIO_MP4: return "audio/mp4";
  case AUDIO_UNSUPPORTED:
  case AUDIO_UNDECLARED: break;
  }
  return "application/octet-stream";
}

/* An MPEG audio frame header: 11 sync bits, a valid version and layer. */
static bool is_mpeg_frame(const uint8_t *data, size_t size)
{
  if (size < 2 || data[0] != 0xFF || (data[1] & 0xE0) != 0xE0)
    return false;
  bool version_reserved = ((data[1] >> 3) & 3) == 1;
  bool layer_reserved = ((data[1] >> 1) & 3) == 0;
  return !version_reserved && !layer_reserved;
}

audio_family_t upload_sniff(const uint8_t *data, size_t size)
{
  if (size >= 4 && memcmp(data, "\x1A\x45\xDF\xA3", 4) == 0)
    return AUDIO_WEBM;
  if (size >= 4 && memcmp(data, "OggS", 4) == 0)
    return AUDIO_OGG;
  if (size >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WAVE", 4) == 0)
    return AUDIO_WAV;
  if ((size >= 3 && memcmp(data, "ID3", 3) == 0) || is_mpeg_frame(data, size))
    return AUDIO_MPEG;
  if (size >= 8 && memcmp(data + 4, "ftyp", 4) == 0)
    return AUDIO_MP4;
  return AUDIO_UNSUPPORTED;
}

bool upload_sniff_matches(audio_family_t declared, const uint8_t *data, size_t size)
{
  audio_family_t found = upload_sniff(data, size);
  if (declared == AUDIO_UNDECLARED)
    return found != AUDIO_UNSUPPORTED;
  return found == declared;
}

/* Length of the UTF-8 sequence at `p`, or 0 when it is malformed. */
static size_t utf8_sequence(const unsigned char *p)
{
  if (p[0] < 0x80)
    return 1;
  if (p[0] >= 0xC2 && p[0] <= 0xDF)
    return (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (p[0] >= 0xE0 && p[0] <= 0xEF) {
    unsigned char low = p[0] == 0xE0 ? 0xA0 : 0x80;  /* no overlongs */
    unsigned char high = p[0] == 0xED ? 0x9F : 0xBF; /* no surrogates */
    return p[1] >= low && p[1] <= high && (p[2] & 0xC0) == 0x80 ? 3 : 0;
  }
  if (p[0] >= 0xF0 && p[0] <= 0xF4) {
    unsigned char low = p[0] == 0xF0 ? 0x90 : 0x80;  /* no overlongs */
    unsigned char high = p[0] == 0xF4 ? 0x8F : 0xBF; /* nothing past U+10FFFF */
    return p[1] >= low && p[1] <= high && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 ? 4
                                                                                         : 0;
  }
  return 0;
}

bool upload_text_is_utf8(const char *text)
{
  const unsigned char *p = (const unsigned char *) text;
  while (*p) {
    size_t length = utf8_sequence(p);
    if (!length)
      return false;
    p += length;
  }
  return true;
}

size_t upload_utf8_length(const char *text)
{
  size_t count = 0;
  for (const unsigned char *p = (const unsigned char *) text; *p; p++)
    if ((*p & 0xC0) != 0x80)
      count++;
  return count;
}
