/* chat_backend: the one interface every answering backend implements. */
#ifndef CHAT_BACKEND_H
#define CHAT_BACKEND_H

#include "stage_error.h"

#include <stddef.h>

typedef struct chat_backend chat_backend_t;

typedef struct {
  const char *role;   /* "user" or "assistant" */
  const char *text;
} chat_turn_t;

struct chat_backend {
  const char *name;
  /* Answers `question` given the earlier turns (oldest first). Returns 0 and a
   * malloc'd reply in *reply (caller frees), or -1 with `err` set. */
  int (*reply)(chat_backend_t *self, const char *question, const chat_turn_t *history,
               size_t history_len, char **reply, stage_error_t *err);
  void (*destroy)(chat_backend_t **self_p);
};

/* Offline default: the knowledge-base responder over KNOWLEDGE_FILE. */
chat_backend_t *chat_kb_new(stage_error_t *err);

#endif
