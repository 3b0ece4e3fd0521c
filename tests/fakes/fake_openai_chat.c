/* fake_openai_chat: a local stand-in for an OpenAI-compatible chat server
 * (llama.cpp server, Ollama, vLLM; shared/docs/external-apis.md §5, §5.1), built
 * on fake_http.
 *
 * POST /v1/chat/completions, whole or with "stream": true as Server-Sent Events
 * in small unaligned pieces ending with "data: [DONE]" (see stream_answer for
 * its outcomes). With FAKE_OPENAI_KEY set, "Authorization: Bearer
 * <key>" is required (else 401 authentication_error, as llama.cpp --api-key);
 * without it any or no key passes. With FAKE_OPENAI_MODEL set, "model" must name
 * it (else 404, as Ollama and vLLM). The body is validated as OpenAI does:
 * unknown arguments, missing model or messages, roles other than
 * system/user/assistant/tool, non-string content are a 400 in the OpenAI
 * envelope. Other paths are llama.cpp's 404.
 *
 * Outcome words (fake_http.h): "ok" answers "Llama heard: <last user text>";
 * "null" a null content; "empty" ""; "length" a truncated answer; "filter" a
 * content_filter finish with no text; "think" an answer behind a <think> block;
 * "429" rate_limit_exceeded with Retry-After: 1; "500" server_error; "503"
 * llama.cpp's "Loading model"; "malformed" a 200 with truncated JSON; plus "slow"
 * and "drop". */
#include "fake_http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fake_openai_chat_install(fake_server_t *server);

typedef struct {
  char key[256];     /* "" = no key required */
  char model[128];   /* "" = any model */
} openai_state_t;

/* The OpenAI error envelope (llama.cpp's flavour: code is the HTTP status). */
static void openai_error(fake_reply_t *reply, int code, const char *type, const char *message)
{
  cJSON *root = cJSON_CreateObject();
  cJSON *error = cJSON_AddObjectToObject(root, "error");
  cJSON_AddStringToObject(error, "message", message);
  cJSON_AddStringToObject(error, "type", type);
  cJSON_AddNullToObject(error, "param");
  cJSON_AddNumberToObject(error, "code", code);
  fake_reply_cjson(reply, code, root);
}

static bool is_one_of(const char *value, const char *const *allowed)
{
  for (; *allowed; allowed++)
    if (!strcmp(value, *allowed))
      return true;
  return false;
}

/* Validates the body; answers the 400 itself. Returns the last user text. */
static const char *check_request(const openai_state_t *state, const cJSON *root,
                                 fake_reply_t *reply)
{
  static const char *const fields[] = {"model", "messages", "temperature", "top_p", "max_tokens",
                                       "max_completion_tokens", "stop", "stream", "stream_options",
                                       "n", "presence_penalty", "frequency_penalty", "seed", "user",
                                       "response_format", "tools", "tool_choice", "logit_bias",
                                       "logprobs", "top_logprobs", NULL};
  static const char *const roles[] = {"system", "user", "assistant", "tool", NULL};
  char message[256];
  const cJSON *item;
  cJSON_ArrayForEach(item, root) {
    if (!is_one_of(item->string, fields)) {
      snprintf(message, sizeof message, "Unrecognized request argument supplied: %s", item->string);
      openai_error(reply, 400, "invalid_request_error", message);
      return NULL;
    }
  }
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  if (!cJSON_IsString(model) || !model->valuestring[0]) {
    openai_error(reply, 400, "invalid_request_error", "you must provide a model parameter");
    return NULL;
  }
  if (state->model[0] && strcmp(model->valuestring, state->model)) {
    snprintf(message, sizeof message, "model \"%.100s\" not found, try pulling it first",
             model->valuestring);
    openai_error(reply, 404, "not_found_error", message);
    return NULL;
  }
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
  if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
    openai_error(reply, 400, "invalid_request_error", "'messages' is required and must be a non-empty array");
    return NULL;
  }
  const char *last_user = NULL;
  int i = 0;
  cJSON_ArrayForEach(item, messages) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(item, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
    if (!cJSON_IsString(role) || !is_one_of(role->valuestring, roles)) {
      snprintf(message, sizeof message, "Invalid value for 'messages[%d].role': expected one of "
               "system, user, assistant, tool", i);
      openai_error(reply, 400, "invalid_request_error", message);
      return NULL;
    }
    if (!cJSON_IsString(content)) {
      snprintf(message, sizeof message, "Invalid type for 'messages[%d].content': expected a string", i);
      openai_error(reply, 400, "invalid_request_error", message);
      return NULL;
    }
    if (!strcmp(role->valuestring, "user"))
      last_user = content->valuestring;
    i++;
  }
  if (!last_user) {
    openai_error(reply, 400, "invalid_request_error", "the conversation holds no user message");
    return NULL;
  }
  return last_user;
}

/* A 200 chat.completion for `outcome`. */
static void answer(fake_reply_t *reply, const char *outcome, const char *model, const char *heard)
{
  char text[1024];
  snprintf(text, sizeof text, "%sLlama heard: %.900s",
           !strcmp(outcome, "think") ? "<think>The user asks something; keep it short.</think>\n\n" : "",
           heard);
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "id", "chatcmpl-fake");
  cJSON_AddStringToObject(root, "object", "chat.completion");
  cJSON_AddNumberToObject(root, "created", 1700000000);
  cJSON_AddStringToObject(root, "model", model);
  cJSON *choice = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), choice);
  cJSON_AddNumberToObject(choice, "index", 0);
  cJSON *message = cJSON_AddObjectToObject(choice, "message");
  cJSON_AddStringToObject(message, "role", "assistant");
  if (!strcmp(outcome, "null"))
    cJSON_AddNullToObject(message, "content");
  else
    cJSON_AddStringToObject(message, "content", !strcmp(outcome, "empty") || !strcmp(outcome, "filter")
                                                  ? "" : text);
  cJSON_AddStringToObject(choice, "finish_reason", !strcmp(outcome, "length") ? "length"
                                                 : !strcmp(outcome, "filter") ? "content_filter"
                                                 : "stop");
  cJSON *usage = cJSON_AddObjectToObject(root, "usage");
  cJSON_AddNumberToObject(usage, "prompt_tokens", 40);
  cJSON_AddNumberToObject(usage, "completion_tokens", 9);
  cJSON_AddNumberToObject(usage, "total_tokens", 49);
  fake_reply_cjson(reply, 200, root);
}

/* How long "pause" stops the stream after the first sentence is complete. */
static unsigned pause_ms(void)
{
  const char *text = getenv("FAKE_STREAM_PAUSE_MS");
  return text && *text ? (unsigned) strtoul(text, NULL, 10) : 1500;
}

/* One chat.completion.chunk: a delta with `content` (NULL: none; `role` too on
 * the first) and `finish` (NULL: null). */
static cJSON *chunk(const char *model, const char *role, const char *content, bool null_content,
                    const char *finish)
{
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "id", "chatcmpl-fake");
  cJSON_AddStringToObject(root, "object", "chat.completion.chunk");
  cJSON_AddNumberToObject(root, "created", 1700000000);
  cJSON_AddStringToObject(root, "model", model);
  cJSON *choice = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "choices"), choice);
  cJSON_AddNumberToObject(choice, "index", 0);
  cJSON *delta = cJSON_AddObjectToObject(choice, "delta");
  if (role)
    cJSON_AddStringToObject(delta, "role", role);
  if (content)
    cJSON_AddStringToObject(delta, "content", content);
  else if (null_content)
    cJSON_AddNullToObject(delta, "content");
  if (finish)
    cJSON_AddStringToObject(choice, "finish_reason", finish);
  else
    cJSON_AddNullToObject(choice, "finish_reason");
  return root;
}

/* The bytes of the next delta of `text` from `at`: about 10, ending on a UTF-8
 * character boundary (JSON strings hold whole characters; the transport splits
 * the rest). */
static size_t delta_size(const char *text, size_t at)
{
  size_t left = strlen(text + at), n = left > 10 ? 10 : left;
  while (n < left && ((unsigned char) text[at + n] & 0xC0) == 0x80)
    n++;
  return n;
}

/* A "stream": true answer for `outcome`: "ok" a role chunk, content deltas with a
 * ": keep-alive" comment, a finish chunk, a usage chunk with no choices when
 * stream_options.include_usage, then "data: [DONE]"; "crlf" the same with CRLF
 * line ends; "pause" stops FAKE_STREAM_PAUSE_MS (1500) once the first sentence is
 * complete; "trickle" 4 ms between pieces; "think" a <think> block first, split
 * across chunks; "null", "empty", "filter", "length" as for whole answers;
 * "cut" drops the connection mid-stream; "error" llama.cpp's "error: {json}" line
 * after two deltas, then [DONE]; "data_error" an {"error"} payload instead;
 * "nodone" closes after the finish chunk without [DONE]. */
static void stream_answer(fake_reply_t *reply, const char *outcome, const char *model,
                          const char *heard, bool include_usage)
{
  fake_sse_t sse = {.crlf = !strcmp(outcome, "crlf")};
  char text[1200];
  snprintf(text, sizeof text, "%sLlama heard: %.600s. I can help with that in a few short "
           "sentences. Our team is happy to help \xe2\x80\x94 ask me anything else you would "
           "like to know.",
           !strcmp(outcome, "think") ? "<think>The user asks something; keep it short.</think>\n\n" : "",
           heard);
  const char *first_end = strstr(text, ". ");
  size_t first_sentence = first_end ? (size_t) (first_end - text) + 2 : 0;
  size_t pause_at = 0, drop_at = 0;
  bool silent = !strcmp(outcome, "null") || !strcmp(outcome, "empty") || !strcmp(outcome, "filter");
  fake_sse_event(&sse, chunk(model, "assistant", "", false, NULL));
  size_t len = silent ? 0 : strlen(text), events = 0;
  bool broken = false;
  for (size_t at = 0; at < len && !broken; events++) {
    size_t n = delta_size(text, at);
    char delta[64];
    snprintf(delta, sizeof delta, "%.*s", (int) n, text + at);
    at += n;
    fake_sse_event(&sse, chunk(model, NULL, delta, false, NULL));
    if (events == 1)
      fake_sse_line(&sse, ": keep-alive");
    if (!pause_at && at >= first_sentence + 20)
      pause_at = sse.size;
    if (events == 3)
      drop_at = sse.size - 7;
    if (events == 2 && !strcmp(outcome, "error")) {
      fake_sse_line(&sse, "error: {\"code\":500,\"message\":\"llama_decode failed: out of KV "
                          "cache\",\"type\":\"server_error\"}");
      broken = true;
    } else if (events == 2 && !strcmp(outcome, "data_error")) {
      cJSON *root = cJSON_CreateObject();
      cJSON *error = cJSON_AddObjectToObject(root, "error");
      cJSON_AddStringToObject(error, "message", "The model crashed while generating.");
      cJSON_AddStringToObject(error, "type", "server_error");
      fake_sse_event(&sse, root);
      broken = true;
    }
  }
  if (!broken) {
    if (!strcmp(outcome, "null"))
      fake_sse_event(&sse, chunk(model, NULL, NULL, true, NULL));
    fake_sse_event(&sse, chunk(model, NULL, NULL, false,
                               !strcmp(outcome, "length") ? "length"
                               : !strcmp(outcome, "filter") ? "content_filter" : "stop"));
    if (include_usage) {
      cJSON *root = chunk(model, NULL, NULL, false, NULL);
      cJSON_ReplaceItemInObject(root, "choices", cJSON_CreateArray());
      cJSON *usage = cJSON_AddObjectToObject(root, "usage");
      cJSON_AddNumberToObject(usage, "prompt_tokens", 40);
      cJSON_AddNumberToObject(usage, "completion_tokens", 30);
      cJSON_AddNumberToObject(usage, "total_tokens", 70);
      fake_sse_event(&sse, root);
    }
  }
  if (strcmp(outcome, "nodone")) {
    fake_sse_line(&sse, "data: [DONE]");
    fake_sse_line(&sse, "");
  }
  fake_reply_sse(reply, &sse, 24, !strcmp(outcome, "trickle") ? 4 : 0);
  if (!strcmp(outcome, "pause"))
    fake_reply_pause_at(reply, pause_at, pause_ms());
  if (!strcmp(outcome, "cut"))
    fake_reply_drop_after(reply, drop_at);
}

static bool failure(const char *outcome, fake_reply_t *reply)
{
  if (!strcmp(outcome, "429")) {
    fake_reply_header(reply, "Retry-After", "1");
    openai_error(reply, 429, "rate_limit_exceeded", "Rate limit reached for requests");
  } else if (!strcmp(outcome, "500")) {
    openai_error(reply, 500, "server_error", "llama_decode failed");
  } else if (!strcmp(outcome, "503")) {
    openai_error(reply, 503, "unavailable_error", "Loading model");
  } else if (!strcmp(outcome, "malformed")) {
    static const char truncated[] = "{\"id\":\"chatcmpl-fake\",\"choices\":[{\"message\":{\"content\":\"Hel";
    fake_reply_raw(reply, 200, "application/json; charset=utf-8", truncated, sizeof truncated - 1);
  } else {
    return false;
  }
  return true;
}

static void chat_completions(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  const openai_state_t *state = fake_server_state(server);
  if (state->key[0]) {
    const char *auth = fake_request_header(req, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) || strcmp(auth + 7, state->key)) {
      openai_error(reply, 401, "authentication_error", "Invalid API Key");
      return;
    }
  }
  if (failure(req->outcome, reply))
    return;
  const char *type = fake_request_header(req, "Content-Type");
  cJSON *root = fake_request_json(req);
  if (!type || strncmp(type, "application/json", 16) || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    openai_error(reply, 400, "invalid_request_error",
                 "the request body must be a JSON object sent as application/json");
    return;
  }
  const char *heard = check_request(state, root, reply);
  const char *model = heard ? cJSON_GetObjectItemCaseSensitive(root, "model")->valuestring : NULL;
  const cJSON *options = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
  if (heard && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "stream")))
    stream_answer(reply, req->outcome, model, heard,
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(options, "include_usage")));
  else if (heard)
    answer(reply, req->outcome, model, heard);
  cJSON_Delete(root);
}

static void not_found(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  (void) server, (void) req;
  openai_error(reply, 404, "not_found_error", "File Not Found");
}

int fake_openai_chat_install(fake_server_t *server)
{
  openai_state_t *state = calloc(1, sizeof *state);
  if (!state)
    return -1;
  const char *key = getenv("FAKE_OPENAI_KEY");
  const char *model = getenv("FAKE_OPENAI_MODEL");
  snprintf(state->key, sizeof state->key, "%s", key ? key : "");
  snprintf(state->model, sizeof state->model, "%s", model ? model : "");
  fake_server_set_state(server, state, free);
  if (fake_server_route(server, "POST", "/v1/chat/completions", chat_completions) < 0)
    return -1;
  return fake_server_route(server, "*", "/v1/chat/*", not_found);
}
