/* chat_stream_check: what the streaming tests of the language-model backends
 * (test_chat_gemini.c, test_chat_openai.c) share: asking a backend for a streamed
 * answer from its fake and recording what was handed on, and when. */
#ifndef CHAT_STREAM_CHECK_H
#define CHAT_STREAM_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "chat_backend.h"
#include "fake_http.h"
#include "sentence_stream.h"

/* What a streamed answer handed on: the pieces joined, and the sentences cut from
 * them as the chat stage cuts them. */
typedef struct {
  char text[4096];
  size_t len;
  size_t pieces;
  size_t sentences;
  size_t len_at_first_sentence;   /* bytes handed on when the first sentence was complete */
  struct timespec started;
  long first_sentence_ms;
  sentence_stream_t *cutter;
} streamed_t;

/* Milliseconds since `t0` (CLOCK_MONOTONIC). */
long ms_since(const struct timespec *t0);

/* Asks `chat` with a stream while the fake serves `outcomes`; records the pieces
 * and sentences in `streamed`. Returns the reply (caller frees) or NULL with `err`. */
char *ask_streamed(fake_server_t *server, chat_backend_t *chat, const char *outcomes,
                   const char *question, streamed_t *streamed, stage_error_t *err);

/* Asserts that the reply is `expected` and that the pieces handed on were exactly it. */
void expect_streamed(fake_server_t *server, chat_backend_t *chat, const char *outcomes,
                     const char *question, const char *expected);

#endif
