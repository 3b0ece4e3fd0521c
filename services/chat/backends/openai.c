/* openai: the chat backend on an OpenAI-compatible /v1/chat/completions server
 * (llama.cpp server, Ollama, vLLM; shared/docs/external-apis.md §5.1). Same
 * context as Gemini: a system message with the persona and the retrieved
 * knowledge-base entries, then the conversation. An empty or filtered answer
 * becomes a polite sentence, never an error. */
#include "chat_backend.h"
#include "config.h"
#include "http_client.h"
#include "llm.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Single-model servers (llama.cpp) accept any model name; Ollama and vLLM need
 * the name of a served model in OPENAI_CHAT_MODEL. */
#define OPENAI_DEFAULT_MODEL "default"
/* Spoken answers are short; this keeps a rambling model from talking for minutes. */
#define OPENAI_MAX_TOKENS 512

typedef struct {
  chat_backend_t base;      /* first, so a chat_backend_t * is a chat_openai_t * */
  chat_backend_t *kb;       /* retrieval over the knowledge base */
  char url[320];            /* .../v1/chat/completions */
  char *model;
  char auth_header[512];    /* "Authorization: Bearer ..." (a secret), "" without a key */
} chat_openai_t;

static bool add_message(cJSON *messages, const char *role, const char *content)
{
  cJSON *message = cJSON_CreateObject();
  if (!message || !cJSON_AddItemToArray(messages, message)) {
    cJSON_Delete(message);
    return false;
  }
  return cJSON_AddStringToObject(message, "role", role) &&
         cJSON_AddStringToObject(message, "content", content);
}

/* The chat.completions request body (printed, malloc'd), or NULL when out of memory. */
static char *request_body(const chat_openai_t *self, const char *question,
                          const chat_turn_t *history, size_t history_len)
{
  llm_conversation_t conv = {0};
  char *instructions = llm_instructions(self->kb, question, history, history_len);
  cJSON *root = cJSON_CreateObject();
  bool ok = instructions && root && llm_conversation_build(&conv, history, history_len, question) == 0;
  cJSON *messages = NULL;
  ok = ok && cJSON_AddStringToObject(root, "model", self->model) &&
       (messages = cJSON_AddArrayToObject(root, "messages")) &&
       add_message(messages, "system", instructions);
  for (size_t i = 0; ok && i < conv.count; i++)
    ok = add_message(messages, conv.turns[i].from_user ? "user" : "assistant", conv.turns[i].text);
  ok = ok && cJSON_AddNumberToObject(root, "temperature", 0.7) &&
       cJSON_AddNumberToObject(root, "max_tokens", OPENAI_MAX_TOKENS) &&
       cJSON_AddFalseToObject(root, "stream");
  char *body = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  free(instructions);
  llm_conversation_clear(&conv);
  return body;
}

static void log_outcome(const char *event, const char *finish_reason)
{
  cJSON *fields = cJSON_CreateObject();
  if (fields) {
    cJSON_AddStringToObject(fields, "backend", "openai");
    cJSON_AddStringToObject(fields, "finish_reason", finish_reason ? finish_reason : "none given");
  }
  log_event(LOG_WARN, event, fields);
}

/* Reads a 200 answer into *reply: choices[0].message.content, or a polite
 * sentence when it is null or empty. */
static int read_answer(const chat_openai_t *self, const http_response_t *resp, char **reply,
                       stage_error_t *err)
{
  cJSON *root = cJSON_ParseWithLength((const char *) resp->body, resp->body_size);
  const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
  if (!cJSON_IsObject(choice)) {
    cJSON_Delete(root);
    return stage_error_set(err, "backend_error",
                           "The chat server sent an answer without choices (not a chat.completion).");
  }
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(
    cJSON_GetObjectItemCaseSensitive(choice, "message"), "content");
  const cJSON *finish_item = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
  const char *finish = cJSON_IsString(finish_item) ? finish_item->valuestring : NULL;
  char *text = llm_clean_reply(cJSON_IsString(content) ? content->valuestring : "");
  if (text && *text && finish && !strcmp(finish, "length"))
    log_outcome("reply_truncated", finish);
  if (text && !*text) {
    free(text);
    bool filtered = finish && !strcmp(finish, "content_filter");
    log_outcome(filtered ? "reply_blocked" : "reply_empty", finish);
    text = strdup(filtered ? LLM_BLOCKED_REPLY : chat_kb_knowledge(self->kb)->fallback);
  }
  cJSON_Delete(root);
  if (!text)
    return stage_error_set(err, "backend_error", "Out of memory.");
  *reply = text;
  return 0;
}

static int openai_reply(chat_backend_t *base, const char *question, const chat_turn_t *history,
                        size_t history_len, char **reply, stage_error_t *err)
{
  const chat_openai_t *self = (const chat_openai_t *) base;
  char *body = request_body(self, question, history, history_len);
  if (!body)
    return stage_error_set(err, "backend_error", "Out of memory while preparing the chat request.");
  const char *headers[] = {self->auth_header[0] ? self->auth_header : NULL, NULL};
  http_request_t req = {.method = "POST", .url = self->url, .headers = headers,
                        .body = (const uint8_t *) body, .body_size = strlen(body),
                        .content_type = "application/json; charset=utf-8", .backend = "openai"};
  llm_http_settings(&req);
  http_response_t resp;
  int rc = http_send(&req, &resp, err);
  free(body);
  if (rc < 0)
    return -1;
  if (resp.status < 200 || resp.status >= 300) {
    char message[400];
    http_error_message(&resp, message, sizeof message);
    stage_error_set(err, "backend_error", "The chat server answered HTTP %ld: %s", resp.status,
                    message);
    http_response_release(&resp);
    return -1;
  }
  rc = read_answer(self, &resp, reply, err);
  http_response_release(&resp);
  return rc;
}

static void openai_destroy(chat_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  chat_openai_t *self = (chat_openai_t *) *self_p;
  if (self->kb)
    self->kb->destroy(&self->kb);
  free(self->model);
  /* The key leaves no copy behind in freed memory. */
  memset(self->auth_header, 0, sizeof self->auth_header);
  free(self);
  *self_p = NULL;
}

chat_backend_t *chat_openai_new(stage_error_t *err)
{
  char base_url[256];
  if (llm_base_url("OPENAI_CHAT_BASE_URL", NULL, base_url, sizeof base_url, err) < 0)
    return NULL;
  const char *key = config_str("OPENAI_API_KEY", NULL);
  if (key && (strcspn(key, "\r\n") != strlen(key) || strlen(key) > 400)) {
    stage_error_set(err, "bad_config", "OPENAI_API_KEY is not a valid API key.");
    return NULL;
  }
  const char *model = config_str("OPENAI_CHAT_MODEL", OPENAI_DEFAULT_MODEL);
  chat_openai_t *self = calloc(1, sizeof *self);
  if (!self) {
    stage_error_set(err, "backend_error", "Out of memory.");
    return NULL;
  }
  self->base.name = "openai";
  self->base.reply = openai_reply;
  self->base.destroy = openai_destroy;
  snprintf(self->url, sizeof self->url, "%s/v1/chat/completions", base_url);
  if (key)
    snprintf(self->auth_header, sizeof self->auth_header, "Authorization: Bearer %s", key);
  self->model = strdup(model);
  self->kb = self->model ? chat_kb_new(err) : NULL;
  if (!self->kb) {
    if (!self->model)
      stage_error_set(err, "backend_error", "Out of memory.");
    chat_backend_t *base = &self->base;
    openai_destroy(&base);
    return NULL;
  }
  log_msg(LOG_INFO, "chat_backend", "openai: model %s at %s%s", model, base_url,
          key ? " with an API key" : "");
  return &self->base;
}
