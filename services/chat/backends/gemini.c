/* gemini: the chat backend on Google's Gemini generateContent
 * (shared/docs/external-apis.md §2). The system instruction carries the
 * assistant's persona and the knowledge-base entries retrieved for the
 * question; the contents are the conversation, alternating user/model turns. A
 * blocked or empty answer becomes a polite sentence, never an error. */
#include "chat_backend.h"
#include "config.h"
#include "http_client.h"
#include "llm.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEMINI_DEFAULT_BASE_URL "https://generativelanguage.googleapis.com"
#define GEMINI_DEFAULT_MODEL "gemini-2.5-flash"

typedef struct {
  chat_backend_t base;      /* first, so a chat_backend_t * is a chat_gemini_t * */
  chat_backend_t *kb;       /* retrieval over the knowledge base */
  char url[768];            /* .../v1beta/models/{model}:generateContent */
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

/* Reads a 200 answer into *reply: the text of candidates[0] (thought parts
 * skipped), or a polite sentence when the prompt or the answer was blocked or
 * came back empty. */
static int read_answer(const chat_gemini_t *self, const http_response_t *resp, char **reply,
                       stage_error_t *err)
{
  cJSON *root = cJSON_ParseWithLength((const char *) resp->body, resp->body_size);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return stage_error_set(err, "backend_error", "Gemini sent an answer that is not JSON.");
  }
  const cJSON *candidate = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "candidates"), 0);
  if (!cJSON_IsObject(candidate)) {
    const char *reason = string_item(cJSON_GetObjectItemCaseSensitive(root, "promptFeedback"),
                                     "blockReason");
    log_outcome("reply_blocked", "block_reason", reason ? reason : "none given");
    cJSON_Delete(root);
    *reply = strdup(LLM_BLOCKED_REPLY);
    return *reply ? 0 : stage_error_set(err, "backend_error", "Out of memory.");
  }
  size_t len = 0;
  const cJSON *part;
  const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
    cJSON_GetObjectItemCaseSensitive(candidate, "content"), "parts");
  cJSON_ArrayForEach(part, parts) {
    const char *text = string_item(part, "text");
    if (text && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "thought")))
      len += strlen(text);
  }
  char *joined = malloc(len + 1);
  if (!joined) {
    cJSON_Delete(root);
    return stage_error_set(err, "backend_error", "Out of memory.");
  }
  joined[0] = '\0';
  len = 0;
  cJSON_ArrayForEach(part, parts) {
    const char *text = string_item(part, "text");
    if (text && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "thought"))) {
      size_t n = strlen(text);
      memcpy(joined + len, text, n + 1);
      len += n;
    }
  }
  char *text = llm_clean_reply(joined);
  free(joined);
  const char *finish = string_item(candidate, "finishReason");
  bool normal = !finish || !strcmp(finish, "STOP") || !strcmp(finish, "MAX_TOKENS");
  if (text && *text && finish && !strcmp(finish, "MAX_TOKENS"))
    log_outcome("reply_truncated", "finish_reason", finish);
  if (text && !*text) {
    free(text);
    if (normal) {
      log_outcome("reply_empty", "finish_reason", finish ? finish : "none given");
      text = strdup(chat_kb_knowledge(self->kb)->fallback);
    } else {
      log_outcome("reply_blocked", "finish_reason", finish);
      text = strdup(LLM_BLOCKED_REPLY);
    }
  }
  cJSON_Delete(root);
  if (!text)
    return stage_error_set(err, "backend_error", "Out of memory.");
  *reply = text;
  return 0;
}

static int gemini_reply(chat_backend_t *base, const char *question, const chat_turn_t *history,
                        size_t history_len, char **reply, stage_error_t *err)
{
  const chat_gemini_t *self = (const chat_gemini_t *) base;
  char *body = request_body(self, question, history, history_len);
  if (!body)
    return stage_error_set(err, "backend_error", "Out of memory while preparing the Gemini request.");
  const char *headers[] = {self->key_header, NULL};
  http_request_t req = {.method = "POST", .url = self->url, .headers = headers,
                        .body = (const uint8_t *) body, .body_size = strlen(body),
                        .content_type = "application/json; charset=utf-8", .backend = "gemini"};
  llm_http_settings(&req);
  http_response_t resp;
  int rc = http_send(&req, &resp, err);
  free(body);
  if (rc < 0)
    return -1;
  if (resp.status < 200 || resp.status >= 300) {
    char message[400];
    http_error_message(&resp, message, sizeof message);
    stage_error_set(err, "backend_error", "Gemini answered HTTP %ld: %s", resp.status, message);
    http_response_release(&resp);
    return -1;
  }
  rc = read_answer(self, &resp, reply, err);
  http_response_release(&resp);
  return rc;
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
  self->base.destroy = gemini_destroy;
  snprintf(self->url, sizeof self->url, "%s/v1beta/models/%s:generateContent", base_url, model);
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
