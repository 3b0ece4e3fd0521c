/* llm: the pieces the Gemini and OpenAI-compatible chat backends share (llm.h). */
#include "llm.h"

#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Phrasings of one entry quoted in the instruction: enough to show what it is about. */
#define PHRASINGS_PER_ENTRY 3

void llm_conversation_clear(llm_conversation_t *conv)
{
  for (size_t i = 0; i < conv->count; i++)
    free(conv->turns[i].text);
  free(conv->turns);
  conv->turns = NULL;
  conv->count = 0;
}

/* Appends `text` as a turn of `from_user`, joined to the last turn when that is
 * of the same side. */
static int push_turn(llm_conversation_t *conv, bool from_user, const char *text)
{
  if (conv->count && conv->turns[conv->count - 1].from_user == from_user) {
    llm_turn_t *last = &conv->turns[conv->count - 1];
    size_t old_len = strlen(last->text), add = strlen(text);
    char *joined = realloc(last->text, old_len + 1 + add + 1);
    if (!joined)
      return -1;
    joined[old_len] = '\n';
    memcpy(joined + old_len + 1, text, add + 1);
    last->text = joined;
    return 0;
  }
  char *copy = strdup(text);
  if (!copy)
    return -1;
  conv->turns[conv->count++] = (llm_turn_t) {.from_user = from_user, .text = copy};
  return 0;
}

static bool is_blank(const char *text)
{
  for (; text && *text; text++)
    if (!isspace((unsigned char) *text))
      return false;
  return true;
}

int llm_conversation_build(llm_conversation_t *conv, const chat_turn_t *history,
                           size_t history_len, const char *question)
{
  conv->turns = calloc(LLM_MAX_HISTORY + 1, sizeof *conv->turns);
  conv->count = 0;
  if (!conv->turns)
    return -1;
  /* The newest usable turns, counted from the end. */
  size_t first = history_len, kept = 0;
  while (first > 0 && kept < LLM_MAX_HISTORY) {
    const chat_turn_t *turn = &history[first - 1];
    if (turn->role && !is_blank(turn->text) &&
        (!strcmp(turn->role, "user") || !strcmp(turn->role, "assistant")))
      kept++;
    first--;
  }
  for (size_t i = first; i < history_len; i++) {
    const chat_turn_t *turn = &history[i];
    if (!turn->role || is_blank(turn->text))
      continue;
    bool from_user = !strcmp(turn->role, "user");
    if (!from_user && strcmp(turn->role, "assistant"))
      continue;
    if (!from_user && conv->count == 0)
      continue;   /* the conversation must open with the user */
    if (push_turn(conv, from_user, turn->text) < 0) {
      llm_conversation_clear(conv);
      return -1;
    }
  }
  if (push_turn(conv, true, question ? question : "") < 0) {
    llm_conversation_clear(conv);
    return -1;
  }
  return 0;
}

/* A growable string for the instruction. */
typedef struct {
  char *text;
  size_t len, cap;
  bool failed;
} builder_t;

static void append(builder_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append(builder_t *b, const char *fmt, ...)
{
  if (b->failed)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->failed = true;
    return;
  }
  size_t need = b->len + (size_t) n + 1;
  if (need > b->cap) {
    char *grown = realloc(b->text, need + 512);
    if (!grown) {
      b->failed = true;
      return;
    }
    b->text = grown;
    b->cap = need + 512;
  }
  va_start(ap, fmt);
  vsnprintf(b->text + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t) n;
}

char *llm_instructions(const chat_backend_t *kb, const char *question,
                       const chat_turn_t *history, size_t history_len)
{
  const knowledge_t *knowledge = chat_kb_knowledge(kb);
  const knowledge_entry_t *entries[LLM_CONTEXT_ENTRIES];
  long found = chat_kb_retrieve(kb, question, history, history_len, entries, LLM_CONTEXT_ENTRIES);
  if (found < 0)
    return NULL;
  builder_t b = {0};
  append(&b, "You are %s, the assistant of the %s help desk. What you write is spoken aloud "
             "by a talking avatar, so answer in one to three short, plain sentences: no lists, "
             "markdown, links or emoji. Answer from the help desk facts below and the "
             "conversation. When they do not cover the question, say so briefly and say what "
             "you can help with, like this: \"%s\"\n\n",
         knowledge->assistant, knowledge->name, knowledge->fallback);
  if (found == 0)
    append(&b, "No help desk fact matches this question.\n");
  else
    append(&b, "Help desk facts, the most relevant first:\n");
  for (long i = 0; i < found; i++) {
    const knowledge_entry_t *entry = entries[i];
    append(&b, "- Asked as");
    for (size_t q = 0; q < entry->question_count && q < PHRASINGS_PER_ENTRY; q++)
      append(&b, "%s\"%s\"", q ? ", " : " ", entry->questions[q]);
    append(&b, ". Answer: %s\n", entry->answer);
  }
  if (b.failed) {
    free(b.text);
    return NULL;
  }
  return b.text;
}

int llm_base_url(const char *name, const char *fallback, char *out, size_t size,
                 stage_error_t *err)
{
  const char *value = config_str(name, fallback);
  if (!value)
    return stage_error_set(err, "bad_config", "%s is required with this CHAT_BACKEND "
                           "(scheme://host[:port], e.g. http://127.0.0.1:8080).", name);
  size_t len = strlen(value);
  while (len > 0 && value[len - 1] == '/')
    len--;
  bool has_scheme = !strncmp(value, "http://", 7) || !strncmp(value, "https://", 8);
  bool clean = strcspn(value, " \t\r\n?#") == strlen(value);
  if (!has_scheme || !clean || len >= size || len <= 8)
    return stage_error_set(err, "bad_config", "%s must be an http:// or https:// base URL "
                           "(scheme://host[:port]).", name);
  memcpy(out, value, len);
  out[len] = '\0';
  return 0;
}

void llm_http_settings(http_request_t *req)
{
  req->connect_timeout_ms = 5000;
  req->timeout_ms = config_backend_budget_ms("chat");
  req->max_attempts = (int) config_long("CHAT_MAX_ATTEMPTS", 3, 1, 10);
  req->max_backoff_ms = 4000;
  req->max_response_bytes = 4u * 1024 * 1024;
}

char *llm_clean_reply(const char *text)
{
  if (!text)
    text = "";
  const char *start = text;
  while (isspace((unsigned char) *start))
    start++;
  if (!strncmp(start, "<think>", 7)) {
    const char *end = strstr(start, "</think>");
    start = end ? end + 8 : start + strlen(start);
    while (isspace((unsigned char) *start))
      start++;
  }
  size_t len = strlen(start);
  while (len > 0 && isspace((unsigned char) start[len - 1]))
    len--;
  return strndup(start, len);
}

void llm_stream_init(llm_stream_t *stream, chat_text_fn *on_text, void *arg)
{
  *stream = (llm_stream_t) {.on_text = on_text, .arg = arg};
}

void llm_stream_clear(llm_stream_t *stream)
{
  free(stream->raw);
  llm_stream_init(stream, stream->on_text, stream->arg);
}

/* Finds where the spoken text begins once that is sure: after leading white
 * space and after a closed <think> block. While the text so far could still
 * open such a block ("<thi"), or the block has not closed, nothing is sure. */
static void find_start(llm_stream_t *stream)
{
  static const char open_tag[] = "<think>", close_tag[] = "</think>";
  const char *text = stream->raw, *at = text;
  while (isspace((unsigned char) *at))
    at++;
  size_t rest = stream->len - (size_t) (at - text);
  if (rest < sizeof open_tag - 1 && !strncmp(at, open_tag, rest))
    return;   /* empty, or maybe the start of a <think> */
  if (!strncmp(at, open_tag, sizeof open_tag - 1)) {
    const char *end = strstr(at, close_tag);
    if (!end)
      return;
    at = end + sizeof close_tag - 1;
    while (isspace((unsigned char) *at))
      at++;
    if (!*at)
      return;
  }
  stream->started = true;
  stream->start = stream->handed_on = (size_t) (at - text);
}

/* Hands on raw[handed_on, len). */
static int hand_on(llm_stream_t *stream, stage_error_t *err)
{
  if (!stream->started || stream->handed_on == stream->len)
    return 0;
  size_t from = stream->handed_on;
  stream->handed_on = stream->len;
  if (!stream->on_text)
    return 0;
  return stream->on_text(stream->arg, stream->raw + from, stream->len - from, err);
}

int llm_stream_add(llm_stream_t *stream, const char *text, size_t size, stage_error_t *err)
{
  if (size == 0)
    return 0;
  if (stream->len + size + 1 > stream->cap) {
    size_t cap = (stream->len + size + 1) * 2;
    char *grown = realloc(stream->raw, cap);
    if (!grown)
      return stage_error_set(err, "backend_error", "Out of memory while reading the answer.");
    stream->raw = grown;
    stream->cap = cap;
  }
  memcpy(stream->raw + stream->len, text, size);
  stream->len += size;
  stream->raw[stream->len] = '\0';
  if (!stream->started)
    find_start(stream);
  return hand_on(stream, err);
}

int llm_stream_end(llm_stream_t *stream, char **reply, stage_error_t *err)
{
  char *text = llm_clean_reply(stream->raw);
  if (!text)
    return stage_error_set(err, "backend_error", "Out of memory while reading the answer.");
  /* Held back to the end: a lone "<thi" is an answer after all. */
  if (!stream->started && *text && stream->on_text &&
      stream->on_text(stream->arg, text, strlen(text), err) != 0) {
    free(text);
    return -1;
  }
  *reply = text;
  return 0;
}

int llm_stream_say(llm_stream_t *stream, const char *stand_in, char **reply, stage_error_t *err)
{
  char *text = strdup(stand_in);
  if (!text)
    return stage_error_set(err, "backend_error", "Out of memory.");
  if (stream->on_text && stream->on_text(stream->arg, text, strlen(text), err) != 0) {
    free(text);
    return -1;
  }
  *reply = text;
  return 0;
}
