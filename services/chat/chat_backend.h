/* chat_backend: the one interface every answering backend implements. */
#ifndef CHAT_BACKEND_H
#define CHAT_BACKEND_H

#include "knowledge.h"
#include "stage_error.h"

#include <stddef.h>

typedef struct chat_backend chat_backend_t;

typedef struct {
  const char *role;   /* "user" or "assistant" */
  const char *text;
} chat_turn_t;

/* Receives the next `size` bytes of a reply while it is being written (streamed
 * answers). Pieces split anywhere, even inside a UTF-8 sequence. Returns 0, or -1
 * with `err` set to end the answer as failed. */
typedef int (chat_text_fn)(void *arg, const char *text, size_t size, stage_error_t *err);

struct chat_backend {
  const char *name;
  /* Answers `question` given the earlier turns (oldest first). Returns 0 and a
   * malloc'd reply in *reply (caller frees), or -1 with `err` set. */
  int (*reply)(chat_backend_t *self, const char *question, const chat_turn_t *history,
               size_t history_len, char **reply, stage_error_t *err);
  /* Optional (NULL: the transcript is answered like any question). The reply when
   * the recognizer was unsure what was said (Job.transcript_confidence below
   * CHAT_TRANSCRIPT_MIN_CONFIDENCE): a polite fallback instead of an answer to a
   * question nobody asked. Returns 0 and a malloc'd reply, or -1 with `err` set. */
  int (*reply_unheard)(chat_backend_t *self, char **reply, stage_error_t *err);
  /* Optional (NULL: the backend only answers whole). Like `reply`, but asks the
   * model for a stream and hands each new piece of the answer to `on_text` as it
   * arrives. The pieces joined are the reply up to surrounding white space: a
   * reasoning block is never handed on, and a polite sentence standing in for a
   * blocked or empty answer is handed on as the last piece. Returns 0 with the
   * whole reply in *reply (malloc'd, caller frees), or -1 with `err` set, also
   * after pieces were handed on (the answer broke off or `on_text` failed). */
  int (*reply_stream)(chat_backend_t *self, const char *question, const chat_turn_t *history,
                      size_t history_len, chat_text_fn *on_text, void *arg, char **reply,
                      stage_error_t *err);
  void (*destroy)(chat_backend_t **self_p);
};

/* stt backends scale Job.transcript_confidence so that below this value they were
 * not sure of the words (typically out-of-domain speech forced onto in-domain words);
 * the backends without a score report 1. */
#define CHAT_TRANSCRIPT_MIN_CONFIDENCE 0.5f

/* Offline default: the knowledge-base responder over KNOWLEDGE_FILE. */
chat_backend_t *chat_kb_new(stage_error_t *err);

/* Up to `max` knowledge-base entries most relevant to `question`, read together
 * with the conversation's previous question, best first, into `entries` (owned
 * by `kb`, which must come from chat_kb_new). Entries sharing no word with the
 * question are left out. Returns how many, or -1 when out of memory. */
long chat_kb_retrieve(const chat_backend_t *kb, const char *question, const chat_turn_t *history,
                      size_t history_len, const knowledge_entry_t **entries, size_t max);

/* The knowledge base behind a chat_kb_new backend (names, fallback sentence). */
const knowledge_t *chat_kb_knowledge(const chat_backend_t *kb);

/* Gemini generateContent (shared/docs/external-apis.md §2): GEMINI_API_KEY
 * (required), GEMINI_MODEL, GEMINI_BASE_URL; the system instruction carries a
 * persona and the knowledge-base entries retrieved for each question. Streams
 * with streamGenerateContent?alt=sse (reply_stream). NULL with `err` naming the
 * missing or invalid setting. */
chat_backend_t *chat_gemini_new(stage_error_t *err);

/* OpenAI-compatible /v1/chat/completions (llama.cpp server, Ollama, vLLM; §5.1):
 * OPENAI_CHAT_BASE_URL (required), OPENAI_CHAT_MODEL, optional OPENAI_API_KEY;
 * same context as Gemini. Streams with "stream": true (reply_stream). NULL with
 * `err` naming the missing or invalid setting. */
chat_backend_t *chat_openai_new(stage_error_t *err);

#endif
