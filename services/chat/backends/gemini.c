/* gemini: the chat backend on Google's Gemini generateContent
 * (shared/docs/external-apis.md §2). The system instruction carries the
 * assistant's persona and the knowledge-base entries retrieved for the
 * question; the contents are the conversation, alternating user/model turns. A
 * blocked or empty answer becomes a polite sentence, never an error. Streamed
 * answers (streamGenerateContent?alt=sse) hand each chunk's text on as it comes;
 * a stream ends when the connection closes, after a chunk with a finishReason. */
#include "chat_backend.h"
#include "config.h"
#include "http_client.h"
#include "llm.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GEMINI_DEFAULT_BASE_URL "https://generativelanguage.googleapis.com"
#define GEMINI_DEFAULT_MODEL "gemini-2.5-flash"

typedef struct {
  chat_backend_t base;      /* first, so a chat_backend_t * is a chat_gemini_t * */
  chat_backend_t *kb;       /* retrieval over the knowledge base */
  char url[768];            /* .../v1beta/models/{model}:generateContent */
  char stream_url[800];     /* .../v1beta/models/{model}:streamGenerateContent?alt=sse */
  char key_header[512];     /* "x-goog-api-key: ..." (a secret) */
} chat_gemini_t;

/* {"role": role, "parts": [{"text": text}]}, without "role" when NULL. */
static cJSON *text_content(const char *role, const char *text)
{
  cJSON *content = cJSON_CreateObject();
  cJSON *parts = content ? cJSON_AddArrayToObject(content, "parts") : NULL;
  cJSON *part = parts ? cJSON_CreateObject() : NULL;
  if (!part || !cJSON_AddItemToArray(parts, part)) {
    cJSON_Delete(part);
    cJSON_Delete(content);
    return NULL;
  }
  if (!cJSON_AddStringToObject(part, "text", text) ||
      (role && !cJSON_AddStringToObject(content, "role", role))) {
    cJSON_Delete(content);
    return NULL;
  }
  return content;
}

/* The generateContent request body (printed, malloc'd), or NULL when out of memory. */
static char *request_body(const chat_gemini_t *self, const char *question,
                          const chat_turn_t *history, size_t history_len)
{
  llm_conversation_t conv = {0};
  char *instructions = llm_instructions(self->kb, question, history, history_len);
  cJSON *root = cJSON_CreateObject();
  bool ok = instructions && root && llm_conversation_build(&conv, history, history_len, question) == 0;
  cJSON *system = ok ? text_content(NULL, instructions) : NULL;
  ok = system && cJSON_AddItemToObject(root, "systemInstruction", system);
  if (!ok)
    cJSON_Delete(system);
  cJSON *contents = ok ? cJSON_AddArrayToObject(root, "contents") : NULL;
  ok = contents != NULL;
  for (size_t i = 0; ok && i < conv.count; i++) {
    cJSON *content = text_content(conv.turns[i].from_user ? "user" : "model", conv.turns[i].text);
    ok = content && cJSON_AddItemToArray(contents, content);
    if (!ok)
      cJSON_Delete(content);
  }
  cJSON *config = ok ? cJSON_AddObjectToObject(root, "generationConfig") : NULL;
  ok = config && cJSON_AddNumberToObject(config, "temperature", 0.7) &&
       cJSON_AddNumberToObject(config, "candidateCount", 1);
  char *body = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  free(instructions);
  llm_conversation_clear(&conv);
  return body;
}

static void log_outcome(const char *event, const char *field, const char *value)
{
  cJSON *fields = cJSON_CreateObject();
  if (fields) {
    cJSON_AddStringToObject(fields, "backend", "gemini");
    cJSON_AddStringToObject(fields, field, value);
  }
  log_event(LOG_WARN, event, fields);
}

static const char *string_item(const cJSON *object, const char *name)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
  return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* One answer being read: the whole generateContent response, or the chunks of
 * a streamGenerateContent stream, which have the same shape. */
typedef struct {
  const chat_gemini_t *self;
  llm_stream_t text;
  stage_error_t *err;
  bool failed;              /* err is set */
  bool saw_candidate;
  char block_reason[64];    /* promptFeedback.blockReason, "" when none */
  char finish[64];          /* the last finishReason, "" when none yet */
} answer_t;

/* Reads one GenerateContentResponse into `answer`: the text of candidates[0]
 * (thought parts skipped), its finishReason, or the prompt's block. False with
 * the error set when it is not one. */
static bool read_response(answer_t *answer, const char *json, size_t size)
{
  cJSON *root = cJSON_ParseWithLength(json, size);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    stage_error_set(answer->err, "backend_error", "Gemini sent an answer that is not JSON.");
    return !(answer->failed = true);
  }
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (error) {
    const char *message = string_item(error, "message");
    stage_error_set(answer->err, "backend_error", "Gemini broke off its answer: %.300s",
                    message ? message : "no reason given");
    cJSON_Delete(root);
    return !(answer->failed = true);
  }
  const cJSON *candidate = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "candidates"), 0);
  if (!cJSON_IsObject(candidate)) {
    const char *reason = string_item(cJSON_GetObjectItemCaseSensitive(root, "promptFeedback"),
                                     "blockReason");
    if (reason)
      snprintf(answer->block_reason, sizeof answer->block_reason, "%s", reason);
    cJSON_Delete(root);
    return true;
  }
  answer->saw_candidate = true;
  const cJSON *part;
  const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
    cJSON_GetObjectItemCaseSensitive(candidate, "content"), "parts");
  cJSON_ArrayForEach(part, parts) {
    const char *text = string_item(part, "text");
    if (text && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "thought")) &&
        llm_stream_add(&answer->text, text, strlen(text), answer->err) != 0) {
      cJSON_Delete(root);
      return !(answer->failed = true);
    }
  }
  const char *finish = string_item(candidate, "finishReason");
  if (finish)
    snprintf(answer->finish, sizeof answer->finish, "%s", finish);
  cJSON_Delete(root);
  return true;
}

/* Ends the answer into *reply: its text, or a polite sentence when the prompt or
 * the answer was blocked or came back empty. A stream must have ended with a
 * finishReason: without one it was cut short. */
static int finish_answer(answer_t *answer, bool streamed, char **reply)
{
  stage_error_t *err = answer->err;
  if (answer->failed)
    return -1;
  const char *finish = answer->finish[0] ? answer->finish : NULL;
  if (streamed && !finish && !answer->block_reason[0])
    return stage_error_set(err, "backend_error", "Gemini's answer stream ended before the answer "
                           "was finished (no finishReason).");
  if (!answer->saw_candidate) {
    log_outcome("reply_blocked", "block_reason",
                answer->block_reason[0] ? answer->block_reason : "none given");
    return llm_stream_say(&answer->text, LLM_BLOCKED_REPLY, reply, err);
  }
  char *text = NULL;
  if (llm_stream_end(&answer->text, &text, err) != 0)
    return -1;
  bool normal = !finish || !strcmp(finish, "STOP") || !strcmp(finish, "MAX_TOKENS");
  if (*text) {
    if (finish && !strcmp(finish, "MAX_TOKENS"))
      log_outcome("reply_truncated", "finish_reason", finish);
    *reply = text;
    return 0;
  }
  free(text);
  if (normal) {
    log_outcome("reply_empty", "finish_reason", finish ? finish : "none given");
    return llm_stream_say(&answer->text, chat_kb_knowledge(answer->self->kb)->fallback, reply, err);
  }
  log_outcome("reply_blocked", "finish_reason", finish);
  return llm_stream_say(&answer->text, LLM_BLOCKED_REPLY, reply, err);
}

/* One event of the stream: a chunk of the answer. */
static bool on_event(void *arg, const char *event, const char *data, size_t size)
{
  answer_t *answer = arg;
  if (event && !strcmp(event, "error")) {
    stage_error_set(answer->err, "backend_error", "Gemini broke off its answer: %.300s", data);
    answer->failed = true;
    return false;
  }
  return read_response(answer, data, size);
}

/* Asks Gemini (streamed when `on_text` is set) and reads the answer. */
static int ask(const chat_gemini_t *self, const char *question, const chat_turn_t *history,
               size_t history_len, chat_text_fn *on_text, void *arg, char **reply,
               stage_error_t *err)
{
  char *body = request_body(self, question, history, history_len);
  if (!body)
    return stage_error_set(err, "backend_error", "Out of memory while preparing the Gemini request.");
  answer_t answer = {.self = self, .err = err};
  llm_stream_init(&answer.text, on_text, arg);
  const char *headers[] = {self->key_header, NULL};
  http_request_t req = {.method = "POST", .url = on_text ? self->stream_url : self->url,
                        .headers = headers, .body = (const uint8_t *) body,
                        .body_size = strlen(body), .content_type = "application/json; charset=utf-8",
                        .backend = "gemini", .on_event = on_text ? on_event : NULL,
                        .on_event_arg = &answer};
  llm_http_settings(&req);
  http_response_t resp;
  int rc = http_send(&req, &resp, err);
  free(body);
  if (rc < 0) {
    llm_stream_clear(&answer.text);
    return -1;
  }
  if (resp.status < 200 || resp.status >= 300) {
    char message[400];
    http_error_message(&resp, message, sizeof message);
    stage_error_set(err, "backend_error", "Gemini answered HTTP %ld: %s", resp.status, message);
    rc = -1;
  } else {
    /* A whole JSON answer where a stream was asked for is read as one chunk. */
    bool streamed = on_text && !strncasecmp(resp.content_type, "text/event-stream", 17);
    if (!streamed)
      read_response(&answer, (const char *) resp.body, resp.body_size);
    rc = finish_answer(&answer, streamed, reply);
  }
  http_response_release(&resp);
  llm_stream_clear(&answer.text);
  return rc;
}

static int gemini_reply(chat_backend_t *base, const char *question, const chat_turn_t *history,
                        size_t history_len, char **reply, stage_error_t *err)
{
  return ask((const chat_gemini_t *) base, question, history, history_len, NULL, NULL, reply, err);
}

static int gemini_reply_stream(chat_backend_t *base, const char *question,
                               const chat_turn_t *history, size_t history_len,
                               chat_text_fn *on_text, void *arg, char **reply, stage_error_t *err)
{
  return ask((const chat_gemini_t *) base, question, history, history_len, on_text, arg, reply, err);
}

static void gemini_destroy(chat_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  chat_gemini_t *self = (chat_gemini_t *) *self_p;
  if (self->kb)
    self->kb->destroy(&self->kb);
  /* The key leaves no copy behind in freed memory. */
  memset(self->key_header, 0, sizeof self->key_header);
  free(self);
  *self_p = NULL;
}

/* Model names go into the URL path: letters, digits and ".-_" only. */
static bool is_model_name(const char *name)
{
  return *name && strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") ==
                  strlen(name);
}

chat_backend_t *chat_gemini_new(stage_error_t *err)
{
  const char *key = config_str("GEMINI_API_KEY", NULL);
  const char *model = config_str("GEMINI_MODEL", GEMINI_DEFAULT_MODEL);
  char base_url[256];
  if (!key) {
    stage_error_set(err, "bad_config", "GEMINI_API_KEY is required with CHAT_BACKEND=gemini.");
    return NULL;
  }
  if (strcspn(key, "\r\n") != strlen(key) || strlen(key) > 400) {
    stage_error_set(err, "bad_config", "GEMINI_API_KEY is not a valid API key.");
    return NULL;
  }
  if (!is_model_name(model) || strlen(model) > 128) {
    stage_error_set(err, "bad_config", "GEMINI_MODEL must be a model name such as %s.",
                    GEMINI_DEFAULT_MODEL);
    return NULL;
  }
  if (llm_base_url("GEMINI_BASE_URL", GEMINI_DEFAULT_BASE_URL, base_url, sizeof base_url, err) < 0)
    return NULL;
  chat_gemini_t *self = calloc(1, sizeof *self);
  if (!self) {
    stage_error_set(err, "backend_error", "Out of memory.");
    return NULL;
  }
  self->base.name = "gemini";
  self->base.reply = gemini_reply;
  self->base.reply_stream = gemini_reply_stream;
  self->base.destroy = gemini_destroy;
  snprintf(self->url, sizeof self->url, "%s/v1beta/models/%s:generateContent", base_url, model);
  snprintf(self->stream_url, sizeof self->stream_url,
           "%s/v1beta/models/%s:streamGenerateContent?alt=sse", base_url, model);
  snprintf(self->key_header, sizeof self->key_header, "x-goog-api-key: %s", key);
  self->kb = chat_kb_new(err);
  if (!self->kb) {
    chat_backend_t *base = &self->base;
    gemini_destroy(&base);
    return NULL;
  }
  log_msg(LOG_INFO, "chat_backend", "gemini: model %s at %s", model, base_url);
  return &self->base;
}
