/* fake_gemini: a local stand-in for Gemini generateContent
 * (shared/docs/external-apis.md §0.1, §0.2, §2), built on fake_http.
 *
 * POST /v1beta/models/{model}:generateContent, the colon literal, and
 * :streamGenerateContent?alt=sse (Server-Sent Events in small unaligned pieces,
 * ended by closing the connection; see stream_answer for its outcomes). Auth by
 * x-goog-api-key header or ?key=: none is 403 PERMISSION_DENIED, a wrong one the
 * 400 API_KEY_INVALID envelope. Retired models (gemini-1.0*, gemini-1.5*,
 * gemini-pro) are 404 NOT_FOUND. The body is validated as the real service does
 * (unknown field names, roles other than user/model, empty contents or parts,
 * non-text parts) and, stricter than the service is known to be, turns must
 * alternate, start and end with the user, so the client is held to that.
 *
 * Settings (environment, read at install): FAKE_GEMINI_KEY, the one valid key
 * (default "fake-gemini-key").
 *
 * Outcome words (fake_http.h): "ok" answers "Gemini heard: <last user text>" in
 * two parts; "thought" puts a thought part first; "block" is a prompt block
 * (promptFeedback.blockReason SAFETY, no candidates); "safety" a candidate with
 * finishReason SAFETY and no parts; "max_tokens" a truncated answer; "empty" a
 * STOP with no text; "429" RESOURCE_EXHAUSTED with RetryInfo "1s"; "500", "503",
 * "403"; "malformed" a 200 with truncated JSON; plus "slow" and "drop". */
#include "fake_http.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fake_gemini_install(fake_server_t *server);

#define ROUTE "/v1beta/models/*"
#define VERB ":generateContent"
#define STREAM_VERB ":streamGenerateContent"

typedef struct {
  char key[256];
} gemini_state_t;

/* Google's error envelope; `reason` (may be NULL) becomes an ErrorInfo detail. */
static void google_error(fake_reply_t *reply, int code, const char *status, const char *message,
                         const char *reason)
{
  cJSON *root = cJSON_CreateObject();
  cJSON *error = cJSON_AddObjectToObject(root, "error");
  cJSON_AddNumberToObject(error, "code", code);
  cJSON_AddStringToObject(error, "message", message);
  cJSON_AddStringToObject(error, "status", status);
  if (reason) {
    cJSON *detail = cJSON_CreateObject();
    cJSON_AddStringToObject(detail, "@type", "type.googleapis.com/google.rpc.ErrorInfo");
    cJSON_AddStringToObject(detail, "reason", reason);
    cJSON_AddStringToObject(detail, "domain", "googleapis.com");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(error, "details"), detail);
  }
  fake_reply_cjson(reply, code, root);
}

static void bad_request(fake_reply_t *reply, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

static void bad_request(fake_reply_t *reply, const char *fmt, ...)
{
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  google_error(reply, 400, "INVALID_ARGUMENT", message, NULL);
}

/* Answers 400 "Unknown name" for a member of `object` not in `allowed`. */
static bool known_fields(const cJSON *object, const char *const *allowed, fake_reply_t *reply)
{
  const cJSON *item;
  cJSON_ArrayForEach(item, object) {
    const char *const *name = allowed;
    while (*name && strcmp(*name, item->string))
      name++;
    if (!*name) {
      bad_request(reply, "Invalid JSON payload received. Unknown name \"%s\": Cannot find field.",
                  item->string);
      return false;
    }
  }
  return true;
}

static bool authorized(const gemini_state_t *state, const fake_request_t *req, fake_reply_t *reply)
{
  char query_key[256];
  const char *key = fake_request_header(req, "x-goog-api-key");
  if (!key)
    key = fake_request_arg(req, "key", query_key, sizeof query_key);
  if (!key) {
    google_error(reply, 403, "PERMISSION_DENIED",
                 "Method doesn't allow unregistered callers (callers without established "
                 "identity). Please use API Key or other form of API consumer identity to call "
                 "this API.", "SERVICE_DISABLED");
    return false;
  }
  if (strcmp(key, state->key)) {
    google_error(reply, 400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                 "API_KEY_INVALID");
    return false;
  }
  return true;
}

/* A Content: {"role", "parts": [{"text"}...]}, the role user or model when
 * `needs_role`. Returns the last part's text, or NULL after answering the 400. */
static const char *check_content(const cJSON *content, const char *where, bool needs_role,
                                 fake_reply_t *reply)
{
  static const char *const fields[] = {"role", "parts", NULL};
  static const char *const part_fields[] = {"text", "thought", NULL};
  if (!cJSON_IsObject(content)) {
    bad_request(reply, "Invalid value at '%s': expected a Content object.", where);
    return NULL;
  }
  if (!known_fields(content, fields, reply))
    return NULL;
  const cJSON *role = cJSON_GetObjectItemCaseSensitive(content, "role");
  if (needs_role && (!cJSON_IsString(role) || (strcmp(role->valuestring, "user") &&
                                               strcmp(role->valuestring, "model")))) {
    bad_request(reply, "Please use a valid role: user, model.");
    return NULL;
  }
  const cJSON *parts = cJSON_GetObjectItemCaseSensitive(content, "parts");
  if (!cJSON_IsArray(parts) || cJSON_GetArraySize(parts) == 0) {
    bad_request(reply, "* GenerateContentRequest.%s.parts: contents.parts must not be empty.", where);
    return NULL;
  }
  const char *text = NULL;
  const cJSON *part;
  cJSON_ArrayForEach(part, parts) {
    if (!cJSON_IsObject(part)) {
      bad_request(reply, "Invalid value at '%s.parts': expected a Part object.", where);
      return NULL;
    }
    if (!known_fields(part, part_fields, reply))
      return NULL;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(part, "text");
    if (!cJSON_IsString(value)) {
      bad_request(reply, "* GenerateContentRequest.%s.parts: a part must hold text (this fake "
                  "serves text only).", where);
      return NULL;
    }
    text = value->valuestring;
  }
  return text;
}

/* Validates the body; answers the 400 itself. Returns the last user text. */
static const char *check_request(const cJSON *root, fake_reply_t *reply)
{
  static const char *const fields[] = {"contents", "systemInstruction", "system_instruction",
                                       "generationConfig", "safetySettings", "tools",
                                       "toolConfig", "cachedContent", NULL};
  static const char *const config_fields[] = {"temperature", "topP", "topK", "maxOutputTokens",
                                              "candidateCount", "stopSequences",
                                              "responseMimeType", "thinkingConfig", "seed", NULL};
  if (!known_fields(root, fields, reply))
    return NULL;
  const cJSON *system = cJSON_GetObjectItemCaseSensitive(root, "systemInstruction");
  if (system && !check_content(system, "system_instruction", false, reply))
    return NULL;
  const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "generationConfig");
  if (config && !known_fields(config, config_fields, reply))
    return NULL;
  const cJSON *temperature = cJSON_GetObjectItemCaseSensitive(config, "temperature");
  if (temperature && (!cJSON_IsNumber(temperature) || temperature->valuedouble < 0 ||
                      temperature->valuedouble > 2)) {
    bad_request(reply, "Invalid value at 'generation_config.temperature'.");
    return NULL;
  }
  const cJSON *contents = cJSON_GetObjectItemCaseSensitive(root, "contents");
  int count = cJSON_GetArraySize(contents);
  if (!cJSON_IsArray(contents) || count == 0) {
    bad_request(reply, "* GenerateContentRequest.contents: contents is not specified");
    return NULL;
  }
  const char *text = NULL;
  for (int i = 0; i < count; i++) {
    const cJSON *content = cJSON_GetArrayItem(contents, i);
    char where[32];
    snprintf(where, sizeof where, "contents[%d]", i);
    if (!(text = check_content(content, where, true, reply)))
      return NULL;
    const char *role = cJSON_GetObjectItemCaseSensitive(content, "role")->valuestring;
    if (strcmp(role, i % 2 ? "model" : "user")) {
      bad_request(reply, "Please ensure that multiturn requests alternate between user and "
                  "model, starting with user (%s).", where);
      return NULL;
    }
  }
  if (count % 2 == 0) {
    bad_request(reply, "Please ensure that single turn requests end with a user role or empty "
                "role.");
    return NULL;
  }
  return text;
}

static cJSON *text_part(const char *text, bool thought)
{
  cJSON *part = cJSON_CreateObject();
  cJSON_AddStringToObject(part, "text", text);
  if (thought)
    cJSON_AddTrueToObject(part, "thought");
  return part;
}

/* A 200 GenerateContentResponse for `outcome`. */
static void answer(fake_reply_t *reply, const char *outcome, const char *model, const char *heard)
{
  cJSON *root = cJSON_CreateObject();
  if (!strcmp(outcome, "block")) {
    cJSON *feedback = cJSON_AddObjectToObject(root, "promptFeedback");
    cJSON_AddStringToObject(feedback, "blockReason", "SAFETY");
    cJSON *rating = cJSON_CreateObject();
    cJSON_AddStringToObject(rating, "category", "HARM_CATEGORY_DANGEROUS_CONTENT");
    cJSON_AddStringToObject(rating, "probability", "HIGH");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(feedback, "safetyRatings"), rating);
  } else {
    cJSON *candidate = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "candidates"), candidate);
    const char *finish = !strcmp(outcome, "safety") ? "SAFETY"
                       : !strcmp(outcome, "max_tokens") ? "MAX_TOKENS" : "STOP";
    if (strcmp(outcome, "safety")) {
      cJSON *content = cJSON_AddObjectToObject(candidate, "content");
      cJSON_AddStringToObject(content, "role", "model");
      cJSON *parts = cJSON_AddArrayToObject(content, "parts");
      if (!strcmp(outcome, "thought"))
        cJSON_AddItemToArray(parts, text_part("The user wants an answer; be brief.", true));
      if (!strcmp(outcome, "empty")) {
        cJSON_AddItemToArray(parts, text_part("", false));
      } else {
        cJSON_AddItemToArray(parts, text_part("Gemini heard: ", false));
        cJSON_AddItemToArray(parts, text_part(heard, false));
      }
    }
    cJSON_AddStringToObject(candidate, "finishReason", finish);
    cJSON_AddNumberToObject(candidate, "index", 0);
  }
  cJSON *usage = cJSON_AddObjectToObject(root, "usageMetadata");
  cJSON_AddNumberToObject(usage, "promptTokenCount", 42);
  cJSON_AddNumberToObject(usage, "totalTokenCount", 51);
  cJSON_AddStringToObject(root, "modelVersion", model);
  cJSON_AddStringToObject(root, "responseId", "fake-response");
  fake_reply_cjson(reply, 200, root);
}

/* The streamed answer to `heard`: a few sentences, one with a non-ASCII
 * character, so that clients see sentences complete while the stream goes on. */
static void streamed_text(const char *heard, char *out, size_t size)
{
  snprintf(out, size, "Gemini heard: %.600s. I can help with that in a few short sentences. "
           "Our team is happy to help \xe2\x80\x94 ask me anything else you would like to know.",
           heard);
}

/* How long "pause" stops the stream after the first sentence is complete. */
static unsigned pause_ms(void)
{
  const char *text = getenv("FAKE_STREAM_PAUSE_MS");
  return text && *text ? (unsigned) strtoul(text, NULL, 10) : 1500;
}

/* One streamGenerateContent chunk: `text` (NULL: no content) with `finish` (NULL:
 * none yet). */
static cJSON *chunk(const char *model, const char *text, bool thought, const char *finish)
{
  cJSON *root = cJSON_CreateObject();
  cJSON *candidate = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(root, "candidates"), candidate);
  if (text) {
    cJSON *content = cJSON_AddObjectToObject(candidate, "content");
    cJSON_AddStringToObject(content, "role", "model");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(content, "parts"), text_part(text, thought));
  }
  if (finish)
    cJSON_AddStringToObject(candidate, "finishReason", finish);
  cJSON_AddNumberToObject(candidate, "index", 0);
  cJSON *usage = cJSON_AddObjectToObject(root, "usageMetadata");
  cJSON_AddNumberToObject(usage, "promptTokenCount", 42);
  cJSON_AddNumberToObject(usage, "totalTokenCount", 51);
  cJSON_AddStringToObject(root, "modelVersion", model);
  return root;
}

/* The bytes of the next delta of `text` from `at`: about 12, ending on a UTF-8
 * character boundary (JSON strings hold whole characters; the transport splits
 * the rest). */
static size_t delta_size(const char *text, size_t at)
{
  size_t n = strlen(text + at);
  if (n > 12)
    n = 12;
  while (n < strlen(text + at) && ((unsigned char) text[at + n] & 0xC0) == 0x80)
    n++;
  return n;
}

/* A streamGenerateContent?alt=sse answer for `outcome`: "ok" several chunks with a
 * ": keep-alive" comment, the last with finishReason STOP, then the close; "crlf"
 * the same with CRLF line ends; "pause" stops FAKE_STREAM_PAUSE_MS (1500) once
 * the first sentence is complete; "trickle" 4 ms between pieces; "thought" a
 * thought part first; "block" a prompt block chunk; "safety" a SAFETY finish
 * without text; "max_tokens" ends MAX_TOKENS; "empty" one empty STOP chunk;
 * "cut" drops the connection mid-stream; "error" an error payload after two
 * chunks; "nofinish" closes without any finishReason. */
static void stream_answer(fake_reply_t *reply, const char *outcome, const char *model,
                          const char *heard)
{
  fake_sse_t sse = {.crlf = !strcmp(outcome, "crlf")};
  char text[1024];
  streamed_text(heard, text, sizeof text);
  size_t first_sentence = (size_t) (strstr(text, ". ") - text) + 2;
  size_t pause_at = 0, drop_at = 0;
  if (!strcmp(outcome, "block")) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "promptFeedback"), "blockReason", "SAFETY");
    fake_sse_event(&sse, root);
  } else if (!strcmp(outcome, "safety")) {
    fake_sse_event(&sse, chunk(model, NULL, false, "SAFETY"));
  } else if (!strcmp(outcome, "empty")) {
    fake_sse_event(&sse, chunk(model, "", false, "STOP"));
  } else {
    if (!strcmp(outcome, "thought"))
      fake_sse_event(&sse, chunk(model, "The user wants an answer; be brief.", true, NULL));
    size_t len = strlen(text), events = 0;
    for (size_t at = 0; at < len; events++) {
      size_t n = delta_size(text, at);
      char delta[64];
      snprintf(delta, sizeof delta, "%.*s", (int) n, text + at);
      at += n;
      bool last = at == len;
      const char *finish = !last || !strcmp(outcome, "nofinish") ? NULL
                         : !strcmp(outcome, "max_tokens") ? "MAX_TOKENS" : "STOP";
      fake_sse_event(&sse, chunk(model, delta, false, finish));
      if (events == 1)
        fake_sse_line(&sse, ": keep-alive");
      /* The next sentence has begun with enough words: the first is complete. */
      if (!pause_at && at >= first_sentence + 20)
        pause_at = sse.size;
      if (events == 2 && !strcmp(outcome, "error")) {
        cJSON *root = cJSON_CreateObject();
        cJSON *error = cJSON_AddObjectToObject(root, "error");
        cJSON_AddNumberToObject(error, "code", 500);
        cJSON_AddStringToObject(error, "message", "Internal error encountered.");
        cJSON_AddStringToObject(error, "status", "INTERNAL");
        fake_sse_event(&sse, root);
        break;
      }
      if (events == 3)
        drop_at = sse.size - 9;
    }
  }
  fake_reply_sse(reply, &sse, 24, !strcmp(outcome, "trickle") ? 4 : 0);
  if (!strcmp(outcome, "pause"))
    fake_reply_pause_at(reply, pause_at, pause_ms());
  if (!strcmp(outcome, "cut"))
    fake_reply_drop_after(reply, drop_at);
}

/* The failure outcomes shared by every request; true when it answered. */
static bool failure(const char *outcome, fake_reply_t *reply)
{
  if (!strcmp(outcome, "429")) {
    cJSON *root = cJSON_CreateObject();
    cJSON *error = cJSON_AddObjectToObject(root, "error");
    cJSON_AddNumberToObject(error, "code", 429);
    cJSON_AddStringToObject(error, "message", "You exceeded your current quota, please check your "
                            "plan and billing details.");
    cJSON_AddStringToObject(error, "status", "RESOURCE_EXHAUSTED");
    cJSON *details = cJSON_AddArrayToObject(error, "details");
    cJSON *quota = cJSON_CreateObject();
    cJSON_AddStringToObject(quota, "@type", "type.googleapis.com/google.rpc.QuotaFailure");
    cJSON *violation = cJSON_CreateObject();
    cJSON_AddStringToObject(violation, "quotaMetric",
                            "generativelanguage.googleapis.com/generate_content_free_tier_requests");
    cJSON_AddStringToObject(violation, "quotaId", "GenerateRequestsPerMinutePerProjectPerModel-FreeTier");
    cJSON_AddStringToObject(violation, "quotaValue", "10");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(quota, "violations"), violation);
    cJSON_AddItemToArray(details, quota);
    cJSON *retry = cJSON_CreateObject();
    cJSON_AddStringToObject(retry, "@type", "type.googleapis.com/google.rpc.RetryInfo");
    cJSON_AddStringToObject(retry, "retryDelay", "1s");
    cJSON_AddItemToArray(details, retry);
    fake_reply_cjson(reply, 429, root);
  } else if (!strcmp(outcome, "500")) {
    google_error(reply, 500, "INTERNAL", "An internal error has occurred. Please retry or report "
                 "in https://developers.generativeai.google/guide/troubleshooting", NULL);
  } else if (!strcmp(outcome, "503")) {
    google_error(reply, 503, "UNAVAILABLE", "The model is overloaded. Please try again later.", NULL);
  } else if (!strcmp(outcome, "403")) {
    google_error(reply, 403, "PERMISSION_DENIED", "Permission denied: Consumer has been suspended.",
                 "CONSUMER_SUSPENDED");
  } else if (!strcmp(outcome, "malformed")) {
    static const char truncated[] = "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel";
    fake_reply_raw(reply, 200, "application/json; charset=UTF-8", truncated, sizeof truncated - 1);
  } else {
    return false;
  }
  return true;
}

static void generate_content(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  const gemini_state_t *state = fake_server_state(server);
  const char *name = req->path + strlen(ROUTE) - 1;
  const char *verb = strchr(name, ':');
  char model[128];
  size_t model_len = verb ? (size_t) (verb - name) : 0;
  bool streamed = verb && !strcmp(verb, STREAM_VERB);
  if (strcmp(req->method, "POST") || !verb || (strcmp(verb, VERB) && !streamed) || model_len == 0 ||
      model_len >= sizeof model || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789.-") != model_len) {
    google_error(reply, 404, "NOT_FOUND", "The requested URL was not found on this server.", NULL);
    return;
  }
  memcpy(model, name, model_len);
  model[model_len] = '\0';
  if (!authorized(state, req, reply))
    return;
  if (!strncmp(model, "gemini-1.0", 10) || !strncmp(model, "gemini-1.5", 10) ||
      !strcmp(model, "gemini-pro")) {
    char message[256];
    snprintf(message, sizeof message, "models/%s is not found for API version v1beta, or is not "
             "supported for generateContent.", model);
    google_error(reply, 404, "NOT_FOUND", message, NULL);
    return;
  }
  if (failure(req->outcome, reply))
    return;
  const char *type = fake_request_header(req, "Content-Type");
  cJSON *root = fake_request_json(req);
  if (!type || strncmp(type, "application/json", 16) || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    bad_request(reply, "Invalid JSON payload received. Expected a JSON object body with "
                "Content-Type application/json.");
    return;
  }
  char alt[16];
  if (streamed && (!fake_request_arg(req, "alt", alt, sizeof alt) || strcmp(alt, "sse"))) {
    cJSON_Delete(root);
    bad_request(reply, "This fake serves streamGenerateContent as Server-Sent Events only "
                "(?alt=sse).");
    return;
  }
  const char *heard = check_request(root, reply);
  if (heard && streamed)
    stream_answer(reply, req->outcome, model, heard);
  else if (heard)
    answer(reply, req->outcome, model, heard);
  cJSON_Delete(root);
}

int fake_gemini_install(fake_server_t *server)
{
  gemini_state_t *state = calloc(1, sizeof *state);
  if (!state)
    return -1;
  const char *key = getenv("FAKE_GEMINI_KEY");
  snprintf(state->key, sizeof state->key, "%s", key && *key ? key : "fake-gemini-key");
  fake_server_set_state(server, state, free);
  return fake_server_route(server, "*", ROUTE, generate_content);
}
