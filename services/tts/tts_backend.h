/* tts_backend: the one interface every text-to-speech backend implements. */
#ifndef TTS_BACKEND_H
#define TTS_BACKEND_H

#include "speech.h"
#include "stage_error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tts_backend tts_backend_t;

typedef struct {
  uint8_t *audio;          /* malloc'd encoded file (WAV, MP3, ...) */
  size_t audio_size;
  char mime[32];           /* "audio/wav", "audio/mpeg", ... */
  uint32_t duration_ms;
  phoneme_t *phonemes;     /* malloc'd; NULL when the backend gives no timings */
  size_t phoneme_count;
} tts_result_t;

/* Frees what a backend put in `result` and zeroes it. */
void tts_result_release(tts_result_t *result);

struct tts_backend {
  const char *name;
  /* Speaks `text`. Returns 0 with `out` filled, or -1 with `err` set. */
  int (*synthesize)(tts_backend_t *self, const char *text, tts_result_t *out,
                    stage_error_t *err);
  void (*destroy)(tts_backend_t **self_p);
};

/* Offline default: eSpeak NG through its library (TTS_VOICE, TTS_RATE). */
tts_backend_t *tts_espeak_new(stage_error_t *err);

/* Google Cloud Text-to-Speech v1 text:synthesize, LINEAR16 WAV, no phoneme timings
 * (GOOGLE_TTS_BASE_URL, GOOGLE_TTS_VOICE, GOOGLE_API_KEY or
 * GOOGLE_APPLICATION_CREDENTIALS, TTS_TIMEOUT_MS, TTS_MAX_ATTEMPTS).
 * NULL with `err` naming a missing setting. */
tts_backend_t *tts_google_new(stage_error_t *err);

/* An OpenAI-compatible /v1/audio/speech server, WAV, no phoneme timings
 * (OPENAI_TTS_BASE_URL, required; OPENAI_TTS_MODEL, OPENAI_TTS_VOICE, OPENAI_API_KEY,
 * TTS_TIMEOUT_MS, TTS_MAX_ATTEMPTS). NULL with `err` naming a missing setting. */
tts_backend_t *tts_openai_new(stage_error_t *err);

#endif
