/* stage_error: the error a stage reports for a job, as {code, message} of api.md. */
#ifndef STAGE_ERROR_H
#define STAGE_ERROR_H

#include <stdbool.h>

typedef struct {
  char code[32];      /* snake_case: no_speech, bad_audio, timeout, backend_error, ... */
  char message[512];  /* a sentence for a person; never a secret */
} stage_error_t;

/* Fills `err` (may be NULL) and returns -1, so backends can `return stage_error_set(...)`. */
int stage_error_set(stage_error_t *err, const char *code, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static inline bool stage_error_is_set(const stage_error_t *err) { return err && err->code[0]; }

#endif
