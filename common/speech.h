/* speech: plain types shared by the audio stages (stt, tts, avatar). */
#ifndef SPEECH_H
#define SPEECH_H

#include <stddef.h>
#include <stdint.h>

/* Mono 16-bit PCM. Owns `samples` (malloc'd). */
typedef struct {
  int16_t *samples;
  size_t count;
  int sample_rate;
} pcm_t;

/* One phoneme of synthesized speech, timed from the start of the audio. */
typedef struct {
  char symbol[12];    /* eSpeak mnemonic; "_" marks a pause */
  uint32_t start_ms;
  uint32_t duration_ms;
} phoneme_t;

/* Frees the samples and zeroes the struct; safe on a zeroed pcm_t. */
void pcm_release(pcm_t *pcm);

static inline uint32_t pcm_duration_ms(const pcm_t *pcm)
{
  return pcm->sample_rate > 0 ? (uint32_t) (pcm->count * 1000 / (size_t) pcm->sample_rate) : 0;
}

#endif
