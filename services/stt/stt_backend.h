/* stt_backend: the one interface every speech-to-text backend implements.
 * The stt service picks a backend with STT_BACKEND and calls it once per job. */
#ifndef STT_BACKEND_H
#define STT_BACKEND_H

#include "stage_error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct stt_backend stt_backend_t;

typedef struct {
  char *text;         /* malloc'd transcript, lower case words; caller frees */
  float confidence;   /* 0..1; backends without a score report 1 */
} stt_result_t;

struct stt_backend {
  const char *name;
  /* Transcribes one whole upload (`mime` as the client sent it).
   * Returns 0 with `out` filled, or -1 with `err` set (bad_audio, audio_too_long,
   * no_speech, backend_error, ...). */
  int (*transcribe)(stt_backend_t *self, const uint8_t *audio, size_t size, const char *mime,
                    stt_result_t *out, stage_error_t *err);
  void (*destroy)(stt_backend_t **self_p);
};

/* Offline default: PocketSphinx with the domain model built from the knowledge base.
 * Reads STT_MODEL_DIR, STT_LM, STT_DICT, STT_MAX_AUDIO_MS. NULL with `err` on failure. */
stt_backend_t *stt_pocketsphinx_new(stage_error_t *err);

/* Google Cloud Speech-to-Text v1 speech:recognize (GOOGLE_STT_BASE_URL,
 * GOOGLE_STT_LANGUAGE, GOOGLE_API_KEY or GOOGLE_APPLICATION_CREDENTIALS,
 * STT_TIMEOUT_MS, STT_MAX_ATTEMPTS). NULL with `err` naming a missing setting. */
stt_backend_t *stt_google_new(stage_error_t *err);

/* An OpenAI-compatible /v1/audio/transcriptions server (OPENAI_STT_BASE_URL, required;
 * OPENAI_STT_PATH, OPENAI_STT_MODEL, OPENAI_STT_CONVERT, OPENAI_API_KEY,
 * STT_MAX_AUDIO_MS, STT_TIMEOUT_MS, STT_MAX_ATTEMPTS). NULL with `err` naming a
 * missing setting. */
stt_backend_t *stt_openai_new(stage_error_t *err);

/* The backend STT_BACKEND names (pocketsphinx, the default; google; openai), made with
 * its own settings as above. NULL with `err` set (bad_config for an unknown name). */
stt_backend_t *stt_backend_from_config(stage_error_t *err);

#endif
