/* llm: what the language-model chat backends (Gemini, OpenAI-compatible) share:
 * the system instruction built from the knowledge base, a history reshaped into
 * strictly alternating turns, the HTTP settings, and the sentences spoken when
 * the model gives no usable answer. */
#ifndef CHAT_LLM_H
#define CHAT_LLM_H

#include "chat_backend.h"
#include "http_client.h"

/* How many knowledge-base entries go into one system instruction. */
#define LLM_CONTEXT_ENTRIES 4
/* How many earlier turns are sent at most (the newest). */
#define LLM_MAX_HISTORY 20

/* Spoken when the provider blocked the question or the answer. */
#define LLM_BLOCKED_REPLY "I'm sorry, I can't help with that one. Is there something else I can do for you?"

/* One turn of the reshaped conversation; `text` is owned by the list. */
typedef struct {
  bool from_user;   /* else the assistant ("model" for Gemini) */
  char *text;
} llm_turn_t;

typedef struct {
  llm_turn_t *turns;
  size_t count;
} llm_conversation_t;

/* The conversation to send: the last LLM_MAX_HISTORY usable turns of `history`
 * (unknown roles and empty texts dropped), consecutive turns of one side joined
 * with a newline, leading assistant turns dropped, then `question` as the last
 * user turn (joined to a trailing user turn). It starts and ends with the user
 * and alternates. Returns 0, or -1 when out of memory. */
int llm_conversation_build(llm_conversation_t *conv, const chat_turn_t *history,
                           size_t history_len, const char *question);

/* Frees every turn and empties the conversation. */
void llm_conversation_clear(llm_conversation_t *conv);

/* The system instruction for `question` (malloc'd, caller frees): the persona of
 * the knowledge base's assistant, how to speak (short, plain sentences), and the
 * retrieved entries. NULL when out of memory. */
char *llm_instructions(const chat_backend_t *kb, const char *question,
                       const chat_turn_t *history, size_t history_len);

/* Reads base URL setting `name` (or `fallback` when unset; NULL = required) into
 * `out` without a trailing slash. Returns 0, or -1 with `err` naming the setting. */
int llm_base_url(const char *name, const char *fallback, char *out, size_t size,
                 stage_error_t *err);

/* Fills the timeouts, attempts and size cap of `req`: four fifths of the chat
 * stage's job timeout (CHAT_TIMEOUT_MS, config_stage_timeout_ms) and
 * CHAT_MAX_ATTEMPTS. */
void llm_http_settings(http_request_t *req);

/* A model's answer while it streams in: every piece is kept, and what
 * llm_clean_reply would keep of it is handed on to `on_text` as soon as it is
 * known (a leading <think> block is held back until it closes, then dropped;
 * leading white space is not handed on). */
typedef struct {
  chat_text_fn *on_text;    /* NULL: the answer is only collected */
  void *arg;
  char *raw;                /* everything received, NUL-terminated (owned) */
  size_t len, cap;
  bool started;             /* the spoken text has begun, at raw[start] */
  size_t start;
  size_t handed_on;         /* raw[start, handed_on) went to on_text */
} llm_stream_t;

/* An empty stream handing its text to `on_text` (may be NULL) with `arg`. */
void llm_stream_init(llm_stream_t *stream, chat_text_fn *on_text, void *arg);

/* Adds the next `size` bytes of the answer and hands on what can be spoken.
 * Returns 0, or -1 with `err` set (out of memory, or on_text failed). */
int llm_stream_add(llm_stream_t *stream, const char *text, size_t size, stage_error_t *err);

/* The answer is complete: hands on what was still held back and puts the whole
 * answer, as llm_clean_reply makes it, in *reply (malloc'd; "" when nothing is
 * left to say). Returns 0, or -1 with `err` set. */
int llm_stream_end(llm_stream_t *stream, char **reply, stage_error_t *err);

/* Says `stand_in` instead of an answer that was empty or blocked: hands it on and
 * puts a copy in *reply. Returns 0, or -1 with `err` set. */
int llm_stream_say(llm_stream_t *stream, const char *stand_in, char **reply, stage_error_t *err);

/* Frees what the stream holds; it may be initialised again. */
void llm_stream_clear(llm_stream_t *stream);

/* A copy of a model's answer fit to be spoken: a leading <think>...</think>
 * block (reasoning models served without a reasoning parser) removed and
 * surrounding white space trimmed; "" when nothing is left. NULL when out of
 * memory. */
char *llm_clean_reply(const char *text);

#endif
