/* openai: the chat backend on an OpenAI-compatible /v1/chat/completions server
 * (llama.cpp server, Ollama, vLLM; shared/docs/external-apis.md §5.1). Same
 * context as Gemini: a system message with the persona and the retrieved
 * knowledge-base entries, then the conversation. An empty or filtered answer
 * becomes a polite sentence, never an error. Streamed answers ("stream": true)
 * hand each chunk's delta on as it comes; the stream ends with "data: [DONE]". */
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

/* The chat.completions request body, streamed or not (printed, malloc'd), or NULL when out of memory. */
static char *request_body(const chat_openai_t *self, const char *question,
                          const chat_turn_t *history, size_t history_len, bool stream)
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
       cJSON_AddBoolToObject(root, "stream", stream);
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

/* One answer being read: a whole chat.completion, or the chat.completion.chunk
 * events of a stream. */
typedef struct {
  const chat_openai_t *self;
  llm_stream_t text;
  stage_error_t *err;
  bool failed;              /* err is set */
  bool saw_choice;
  bool done;                /* the stream's "data: [DONE]" arrived */
  char finish[64];          /* the last finish_reason, "" when none yet */
} answer_t;

/* The message of an error object or string (OpenAI, llama.cpp, vLLM shapes). */
static const char *error_text(const cJSON *error)
{
  if (cJSON_IsString(error))
    return error->valuestring;
  const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
  return cJSON_IsString(message) ? message->valuestring : "no reason given";
}

/* Records the server's own error; returns false (stop reading). */
static bool fail(answer_t *answer, const char *reason)
{
  stage_error_set(answer->err, "backend_error", "The chat server reported an error: %.300s",
                  reason);
  answer->failed = true;
  return false;
}

/* Reads a chat.completion (`member` "message") or one chat.completion.chunk
 * (`member` "delta") into `answer`: choices[0]'s content and finish_reason.
 * False with the error set when it is neither. */
static bool read_response(answer_t *answer, const char *json, size_t size, const char *member)
{
  cJSON *root = cJSON_ParseWithLength(json, size);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    stage_error_set(answer->err, "backend_error",
                    "The chat server sent an answer that is not JSON (not a chat.completion).");
    answer->failed = true;
    return false;
  }
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (error) {
    bool ok = fail(answer, error_text(error));
    cJSON_Delete(root);
    return ok;
  }
  const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
  if (cJSON_IsObject(choice)) {
    answer->saw_choice = true;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(choice, member), "content");
    const cJSON *finish = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
    if (cJSON_IsString(finish))
      snprintf(answer->finish, sizeof answer->finish, "%s", finish->valuestring);
    if (cJSON_IsString(content) &&
        llm_stream_add(&answer->text, content->valuestring, strlen(content->valuestring),
                       answer->err) != 0)
      answer->failed = true;
  }
  cJSON_Delete(root);
  return !answer->failed;
}

/* One event of the stream: a chunk, the closing [DONE], or llama.cpp's
 * "error: {json}" line. */
static bool on_event(void *arg, const char *event, const char *data, size_t size)
{
  answer_t *answer = arg;
  if (event && !strcmp(event, "error")) {
    cJSON *root = cJSON_ParseWithLength(data, size);
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    fail(answer, root ? error_text(error ? error : root) : "no reason given");
    cJSON_Delete(root);
    return false;
  }
  if (size == 6 && !memcmp(data, "[DONE]", 6)) {
    answer->done = true;
    return false;
  }
  return read_response(answer, data, size, "delta");
}

/* Ends the answer into *reply: its text, or a polite sentence when it is empty
 * or was filtered. A stream must have ended with [DONE]. */
static int finish_answer(answer_t *answer, bool streamed, char **reply)
{
  stage_error_t *err = answer->err;
  if (answer->failed)
    return -1;
  if (streamed && !answer->done)
    return stage_error_set(err, "backend_error", "The chat server's answer stream ended before "
                           "the answer was finished (no [DONE]).");
  if (!streamed && !answer->saw_choice)
    return stage_error_set(err, "backend_error",
                           "The chat server sent an answer without choices (not a chat.completion).");
  const char *finish = answer->finish[0] ? answer->finish : NULL;
  char *text = NULL;
  if (llm_stream_end(&answer->text, &text, err) != 0)
    return -1;
  if (*text) {
    if (finish && !strcmp(finish, "length"))
      log_outcome("reply_truncated", finish);
    *reply = text;
    return 0;
  }
  free(text);
  bool filtered = finish && !strcmp(finish, "content_filter");
  log_outcome(filtered ? "reply_blocked" : "reply_empty", finish);
  return llm_stream_say(&answer->text,
                        filtered ? LLM_BLOCKED_REPLY : chat_kb_knowledge(answer->self->kb)->fallback,
                        reply, err);
}

/* Asks the server (streamed when `on_text` is set) and reads the answer. */
static int ask(const chat_openai_t *self, const char *question, const chat_turn_t *history,
               size_t history_len, chat_text_fn *on_text, void *arg, char **reply,
               stage_error_t *err)
{
  char *body = request_body(self, question, history, history_len, on_text != NULL);
  if (!body)
    return stage_error_set(err, "backend_error", "Out of memory while preparing the chat request.");
  answer_t answer = {.self = self, .err = err};
  llm_stream_init(&answer.text, on_text, arg);
  const char *headers[] = {self->auth_header[0] ? self->auth_header : NULL, NULL};
  http_request_t req = {.method = "POST", .url = self->url, .headers = headers,
                        .body = (const uint8_t *) body, .body_size = strlen(body),
                        .content_type = "application/json; charset=utf-8", .backend = "openai",
                        .on_event = on_text ? on_event : NULL, .on_event_arg = &answer};
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
    stage_error_set(err, "backend_error", "The chat server answered HTTP %ld: %s", resp.status,
                    message);
    rc = -1;
  } else {
    /* A server that answers whole although a stream was asked for is read whole. */
    bool streamed = on_text && !strncasecmp(resp.content_type, "text/event-stream", 17);
    if (!streamed)
      read_response(&answer, (const char *) resp.body, resp.body_size, "message");
    rc = finish_answer(&answer, streamed, reply);
  }
  http_response_release(&resp);
  llm_stream_clear(&answer.text);
  return rc;
}

static int openai_reply(chat_backend_t *base, const char *question, const chat_turn_t *history,
                        size_t history_len, char **reply, stage_error_t *err)
{
  return ask((const chat_openai_t *) base, question, history, history_len, NULL, NULL, reply, err);
}

static int openai_reply_stream(chat_backend_t *base, const char *question,
                               const chat_turn_t *history, size_t history_len,
                               chat_text_fn *on_text, void *arg, char **reply, stage_error_t *err)
{
  return ask((const chat_openai_t *) base, question, history, history_len, on_text, arg, reply, err);
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
  self->base.reply_stream = openai_reply_stream;
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
