/* audio_header: bounded readers for the RIFF/WAVE chunk list and the first
 * EBML levels of WebM/Matroska. Every read is checked against the end of the
 * buffer; lengths come from the upload and are never trusted. */
#include "audio_header.h"

#include <math.h>
#include <string.h>

/* A thousand years: any claim beyond is clamped, which keeps the double to
 * integer conversion defined. */
#define CLAIM_MAX_MS (1000.0 * 365.25 * 86400 * 1000)
/* Top-level WebM children looked at before giving up (SeekHead, Void, Info...). */
#define WEBM_CHILDREN_MAX 32
#define EBML_UNKNOWN_SIZE UINT64_MAX

#define EBML_ID_HEADER 0x1A45DFA3u
#define EBML_ID_SEGMENT 0x18538067u
#define EBML_ID_INFO 0x1549A966u
#define EBML_ID_CLUSTER 0x1F43B675u
#define EBML_ID_TIMECODE_SCALE 0x2AD7B1u
#define EBML_ID_DURATION 0x4489u

static uint32_t le32(const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static int64_t clamp_ms(double ms)
{
  if (!isfinite(ms) || ms < 0)
    return ms > 0 ? (int64_t) CLAIM_MAX_MS : -1;
  return (int64_t) (ms < CLAIM_MAX_MS ? ms : CLAIM_MAX_MS);
}

/* ---- WAV ---------------------------------------------------------------- */

static int64_t wav_claimed_ms(const uint8_t *data, size_t size)
{
  if (size < 12 || memcmp(data, "RIFF", 4) != 0 || memcmp(data + 8, "WAVE", 4) != 0)
    return -1;
  uint32_t byte_rate = 0;
  size_t pos = 12;
  while (size - pos >= 8) {
    const uint8_t *chunk = data + pos;
    uint32_t chunk_size = le32(chunk + 4);
    if (memcmp(chunk, "fmt ", 4) == 0 && chunk_size >= 16 && size - pos - 8 >= 16)
      byte_rate = le32(chunk + 8 + 8);
    if (memcmp(chunk, "data", 4) == 0) {
      /* 0 and 0xFFFFFFFF are what streaming writers put before they know. */
      if (!byte_rate || chunk_size == 0 || chunk_size == UINT32_MAX)
        return -1;
      return clamp_ms((double) chunk_size * 1000.0 / byte_rate);
    }
    uint64_t next = (uint64_t) pos + 8 + chunk_size + (chunk_size & 1);
    if (next > size)
      return -1;
    pos = (size_t) next;
  }
  return -1;
}

/* ---- WebM / Matroska ---------------------------------------------------- */

typedef struct {
  const uint8_t *data;
  size_t size;
  size_t pos;
} reader_t;

/* An element ID keeps its length marker: 1 to 4 bytes. */
static int read_id(reader_t *r, uint32_t *id)
{
  if (r->pos >= r->size || !r->data[r->pos])
    return -1;
  uint8_t first = r->data[r->pos];
  size_t length = 1;
  while (length <= 4 && !(first & (0x80 >> (length - 1))))
    length++;
  if (length > 4 || r->size - r->pos < length)
    return -1;
  uint32_t value = 0;
  for (size_t i = 0; i < length; i++)
    value = value << 8 | r->data[r->pos + i];
  r->pos += length;
  *id = value;
  return 0;
}

/* A size drops its marker; all value bits set means "unknown". */
static int read_size(reader_t *r, uint64_t *size)
{
  if (r->pos >= r->size || !r->data[r->pos])
    return -1;
  uint8_t first = r->data[r->pos];
  size_t length = 1;
  while (!(first & (0x80 >> (length - 1))))
    length++;
  if (r->size - r->pos < length)
    return -1;
  uint64_t value = first & (0xFF >> length);
  bool all_ones = value == (uint64_t) (0xFF >> length);
  for (size_t i = 1; i < length; i++) {
    value = value << 8 | r->data[r->pos + i];
    all_ones = all_ones && r->data[r->pos + i] == 0xFF;
  }
  r->pos += length;
  *size = all_ones ? EBML_UNKNOWN_SIZE : value;
  return 0;
}

static uint64_t big_endian(const uint8_t *p, size_t length)
{
  uint64_t value = 0;
  for (size_t i = 0; i < length; i++)
    value = value << 8 | p[i];
  return value;
}

/* Duration (in TimecodeScale units, default 1 ms) from the Info element's body. */
static int64_t webm_info_ms(const uint8_t *data, size_t size)
{
  reader_t r = {.data = data, .size = size};
  double duration = -1;
  uint64_t scale_ns = 1000000;
  while (r.pos < r.size) {
    uint32_t id;
    uint64_t length;
    if (read_id(&r, &id) != 0 || read_size(&r, &length) != 0 || length > r.size - r.pos)
      return -1;
    const uint8_t *value = r.data + r.pos;
    if (id == EBML_ID_TIMECODE_SCALE && length >= 1 && length <= 8)
      scale_ns = big_endian(value, length);
    if (id == EBML_ID_DURATION && length == 4) {
      uint32_t bits = (uint32_t) big_endian(value, 4);
      float f;
      memcpy(&f, &bits, sizeof f);
      duration = f;
    } else if (id == EBML_ID_DURATION && length == 8) {
      uint64_t bits = big_endian(value, 8);
      memcpy(&duration, &bits, sizeof duration);
    }
    r.pos += (size_t) length;
  }
  if (!(duration >= 0) || !scale_ns)
    return -1;
  return clamp_ms(duration * (double) scale_ns / 1e6);
}

static int64_t webm_claimed_ms(const uint8_t *data, size_t size)
{
  reader_t r = {.data = data, .size = size};
  uint32_t id;
  uint64_t length;
  if (read_id(&r, &id) != 0 || id != EBML_ID_HEADER || read_size(&r, &length) != 0 ||
      length > r.size - r.pos)
    return -1;
  r.pos += (size_t) length;
  if (read_id(&r, &id) != 0 || id != EBML_ID_SEGMENT || read_size(&r, &length) != 0)
    return -1;
  if (length != EBML_UNKNOWN_SIZE && length < r.size - r.pos)
    r.size = r.pos + (size_t) length;
  for (int child = 0; child < WEBM_CHILDREN_MAX && r.pos < r.size; child++) {
    if (read_id(&r, &id) != 0 || read_size(&r, &length) != 0 || id == EBML_ID_CLUSTER ||
        length == EBML_UNKNOWN_SIZE || length > r.size - r.pos)
      return -1;
    if (id == EBML_ID_INFO)
      return webm_info_ms(r.data + r.pos, (size_t) length);
    r.pos += (size_t) length;
  }
  return -1;
}

int64_t audio_header_claimed_ms(audio_family_t family, const uint8_t *data, size_t size)
{
  if (!data)
    return -1;
  switch (family) {
  case AUDIO_WAV: return wav_claimed_ms(data, size);
  case AUDIO_WEBM: return webm_claimed_ms(data, size);
  default: return -1;
  }
}
