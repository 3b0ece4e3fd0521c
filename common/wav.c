/* wav: RIFF/WAVE writer for 16-bit mono PCM. Written by hand because it is 44 bytes
 * of header; pulling libavformat's muxer in for it would cost more code than it saves. */
#include "audio.h"

#include <stdlib.h>
#include <string.h>

static void put_le32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) v; p[1] = (uint8_t) (v >> 8); p[2] = (uint8_t) (v >> 16); p[3] = (uint8_t) (v >> 24);
}

static void put_le16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t) v; p[1] = (uint8_t) (v >> 8);
}

int audio_wav_encode(const pcm_t *pcm, uint8_t **out, size_t *out_size)
{
  size_t data_size = pcm->count * sizeof(int16_t);
  if (data_size > UINT32_MAX - 44)
    return -1;
  uint8_t *buf = malloc(44 + data_size);
  if (!buf)
    return -1;
  memcpy(buf, "RIFF", 4);
  put_le32(buf + 4, (uint32_t) (36 + data_size));
  memcpy(buf + 8, "WAVEfmt ", 8);
  put_le32(buf + 16, 16);                                   /* fmt chunk size */
  put_le16(buf + 20, 1);                                    /* PCM */
  put_le16(buf + 22, 1);                                    /* mono */
  put_le32(buf + 24, (uint32_t) pcm->sample_rate);
  put_le32(buf + 28, (uint32_t) pcm->sample_rate * 2);      /* byte rate */
  put_le16(buf + 32, 2);                                    /* block align */
  put_le16(buf + 34, 16);                                   /* bits per sample */
  memcpy(buf + 36, "data", 4);
  put_le32(buf + 40, (uint32_t) data_size);
  for (size_t i = 0; i < pcm->count; i++)
    put_le16(buf + 44 + 2 * i, (uint16_t) pcm->samples[i]);
  *out = buf;
  *out_size = 44 + data_size;
  return 0;
}
