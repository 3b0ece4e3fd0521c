/* HTTP-level tests of gateway/http_api: a real MHD daemon on an ephemeral
 * loopback port, a fake pipeline instead of the broker, and real requests with
 * libcurl. Covers every error of api.md, submissions (raw, multipart, typed),
 * polling, sessions, media with byte ranges, the UI, /healthz and /metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "http_api.h"
#include "pipeline.pb-c.h"

#define MAX_UPLOAD (10 * 1024 * 1024)

static const uint8_t webm_magic[] = {0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81};

typedef struct {
  char dir[64];
  job_store_t *jobs;
  session_store_t *sessions;
  media_store_t *media;
  metrics_t *metrics;
  pipeline_t pipeline;
  http_api_t *api;
  char base_url[64];
  /* What the fake pipeline answers and saw. */
  broker_submit_result_t submit_result;
  cJSON *info; /* returned as a copy; NULL = broker unreachable */
  int submits;
  int released;
  char last_stage[16];
  Avatar__Job *last_job;
} fixture_t;

typedef struct {
  long status;
  char *body;
  size_t body_size;
  char headers[4096];
  size_t headers_size;
} response_t;

static broker_submit_result_t fake_submit(void *arg, const char *stage, const char *job_id,
                                          int64_t deadline_ms, const uint8_t *job, size_t size,
                                          unsigned *retry_after_s)
{
  (void) retry_after_s;
  (void) job_id;
  (void) deadline_ms;
  fixture_t *fixture = arg;
  fixture->submits++;
  snprintf(fixture->last_stage, sizeof fixture->last_stage, "%s", stage);
  if (fixture->last_job)
    avatar__job__free_unpacked(fixture->last_job, NULL);
  fixture->last_job = avatar__job__unpack(NULL, size, job);
  return fixture->submit_result;
}

static cJSON *fake_info(void *arg, int timeout_ms)
{
  (void) timeout_ms;
  fixture_t *fixture = arg;
  return fixture->info ? cJSON_Duplicate(fixture->info, true) : NULL;
}

static void fake_job_final(void *arg, const char *job_id)
{
  (void) job_id;
  fixture_t *fixture = arg;
  fixture->released++;
}

static int setup(void **state)
{
  fixture_t *fixture = calloc(1, sizeof *fixture);
  if (!fixture)
    return -1;
  snprintf(fixture->dir, sizeof fixture->dir, "/tmp/test-http-XXXXXX");
  if (!mkdtemp(fixture->dir))
    return -1;
  fixture->jobs = job_store_new(3600000);
  fixture->sessions = session_store_new(10, 3600000);
  fixture->media = media_store_new(fixture->dir, 3600);
  fixture->metrics = metrics_new();
  fixture->pipeline = (pipeline_t) {
    .submit = fake_submit, .info = fake_info, .job_final = fake_job_final, .arg = fixture,
  };
  http_api_config_t config = {
    .bind_address = "127.0.0.1",
    .port = 0,
    .threads = 2,
    .connection_limit = 64,
    .connection_timeout_s = 10,
    .static_dir = GATEWAY_STATIC_DIR,
    .max_upload_bytes = MAX_UPLOAD,
    .ask_max_chars = 1000,
    .job_deadline_ms = 60000,
    .jobs = fixture->jobs,
    .sessions = fixture->sessions,
    .media = fixture->media,
    .metrics = fixture->metrics,
    .pipeline = &fixture->pipeline,
  };
  fixture->api = http_api_start(&config);
  if (!fixture->api)
    return -1;
  snprintf(fixture->base_url, sizeof fixture->base_url, "http://127.0.0.1:%u",
           (unsigned) http_api_port(fixture->api));
  *state = fixture;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *fixture = *state;
  http_api_stop(&fixture->api);
  job_store_destroy(&fixture->jobs);
  session_store_destroy(&fixture->sessions);
  media_store_destroy(&fixture->media);
  metrics_destroy(&fixture->metrics);
  cJSON_Delete(fixture->info);
  if (fixture->last_job)
    avatar__job__free_unpacked(fixture->last_job, NULL);
  char command[128];
  snprintf(command, sizeof command, "rm -rf '%s'", fixture->dir);
  int rc = system(command);
  free(fixture);
  return rc == 0 ? 0 : -1;
}

/* ---- a small curl client -------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t count, void *arg)
{
  response_t *response = arg;
  size_t length = size * count;
  char *grown = realloc(response->body, response->body_size + length + 1);
  if (!grown)
    return 0;
  memcpy(grown + response->body_size, data, length);
  response->body = grown;
  response->body_size += length;
  response->body[response->body_size] = '\0';
  return length;
}

static size_t on_header(char *data, size_t size, size_t count, void *arg)
{
  response_t *response = arg;
  size_t length = size * count;
  size_t room = sizeof response->headers - 1 - response->headers_size;
  size_t copied = length < room ? length : room;
  memcpy(response->headers + response->headers_size, data, copied);
  response->headers_size += copied;
  response->headers[response->headers_size] = '\0';
  return length;
}

/* The value of header `name` in the last response (without CRLF), or NULL. */
static const char *header(const response_t *response, const char *name, char *value, size_t size)
{
  size_t name_length = strlen(name);
  for (const char *line = response->headers; line && *line;) {
    if (strncasecmp(line, name, name_length) == 0 && line[name_length] == ':') {
      const char *start = line + name_length + 1;
      while (*start == ' ')
        start++;
      size_t length = strcspn(start, "\r\n");
      snprintf(value, size, "%.*s", (int) length, start);
      return value;
    }
    line = strchr(line, '\n');
    if (line)
      line++;
  }
  return NULL;
}

typedef struct {
  const char *method;
  const char *path;
  const char *content_type;
  const void *body;
  size_t body_size;
  const char *extra_header;
  curl_mime *mime;
  bool chunked;          /* send body_size bytes of `body` in a loop, no Content-Length */
  size_t chunked_total;
} request_spec_t;

typedef struct {
  const uint8_t *pattern;
  size_t pattern_size;
  size_t remaining;
  size_t sent;
} chunk_source_t;

static size_t on_read(char *buffer, size_t size, size_t count, void *arg)
{
  chunk_source_t *source = arg;
  size_t room = size * count;
  size_t length = room < source->remaining ? room : source->remaining;
  for (size_t i = 0; i < length; i++)
    buffer[i] = (char) source->pattern[(source->sent + i) % source->pattern_size];
  source->sent += length;
  source->remaining -= length;
  return length;
}

static response_t perform(fixture_t *fixture, const request_spec_t *spec)
{
  response_t response = {0};
  CURL *curl = curl_easy_init();
  assert_non_null(curl);
  char url[512];
  snprintf(url, sizeof url, "%s%s", fixture->base_url, spec->path);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  struct curl_slist *headers = NULL;
  char content_type[256];
  /* Without a type, suppress the one curl would add to a POST (but keep the
   * multipart one curl makes with its boundary). */
  if (!spec->mime) {
    snprintf(content_type, sizeof content_type, "Content-Type:%s%s",
             spec->content_type ? " " : "", spec->content_type ? spec->content_type : "");
    headers = curl_slist_append(headers, content_type);
  }
  if (spec->extra_header)
    headers = curl_slist_append(headers, spec->extra_header);
  chunk_source_t source = {0};
  if (spec->mime) {
    curl_easy_setopt(curl, CURLOPT_MIMEPOST, spec->mime);
  } else if (spec->chunked) {
    source = (chunk_source_t) {.pattern = spec->body, .pattern_size = spec->body_size,
                               .remaining = spec->chunked_total};
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &source);
    headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
  } else if (spec->body) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, spec->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) spec->body_size);
  }
  if (spec->method && strcmp(spec->method, "HEAD") == 0)
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  else if (spec->method)
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, spec->method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK)
    fprintf(stderr, "curl: %s for %s\n", curl_easy_strerror(rc), spec->path);
  assert_int_equal(rc, CURLE_OK);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return response;
}

static response_t get(fixture_t *fixture, const char *path)
{
  request_spec_t spec = {.path = path};
  return perform(fixture, &spec);
}

static void response_free(response_t *response)
{
  free(response->body);
  response->body = NULL;
}

/* Checks status, the JSON error shape and its code, and the common headers. */
static void assert_error(response_t *response, long status, const char *code)
{
  if (response->status != status)
    fprintf(stderr, "unexpected %ld: %s\n", response->status,
            response->body ? response->body : "");
  assert_int_equal(response->status, status);
  char value[256];
  assert_non_null(header(response, "Content-Type", value, sizeof value));
  assert_string_equal(value, "application/json");
  assert_non_null(header(response, "X-Content-Type-Options", value, sizeof value));
  assert_string_equal(value, "nosniff");
  assert_non_null(response->body);
  cJSON *json = cJSON_Parse(response->body);
  assert_non_null(json);
  const cJSON *error = cJSON_GetObjectItem(json, "error");
  assert_string_equal(cJSON_GetObjectItem(error, "code")->valuestring, code);
  assert_true(strlen(cJSON_GetObjectItem(error, "message")->valuestring) > 0);
  cJSON_Delete(json);
  response_free(response);
}

static cJSON *assert_json(response_t *response, long status)
{
  if (response->status != status)
    fprintf(stderr, "unexpected %ld: %s\n", response->status,
            response->body ? response->body : "");
  assert_int_equal(response->status, status);
  cJSON *json = cJSON_Parse(response->body);
  assert_non_null(json);
  response_free(response);
  return json;
}

static const char *string_of(const cJSON *json, const char *name)
{
  const cJSON *item = cJSON_GetObjectItem(json, name);
  assert_true(cJSON_IsString(item));
  return item->valuestring;
}

static response_t post(fixture_t *fixture, const char *path, const char *content_type,
                       const void *body, size_t size)
{
  request_spec_t spec = {.method = "POST", .path = path, .content_type = content_type,
                         .body = body, .body_size = size};
  return perform(fixture, &spec);
}

/* ---- tests ------------------------------------------------------------- */

static void test_routes_and_methods(void **state)
{
  fixture_t *fixture = *state;
  response_t response = get(fixture, "/api/nothing");
  assert_error(&response, 404, "not_found");
  response = get(fixture, "/no-such-page.html");
  assert_error(&response, 404, "not_found");
  response = get(fixture, "/../../etc/passwd");
  assert_error(&response, 404, "not_found");
  response = get(fixture, "/api/ask");
  char value[64];
  assert_non_null(header(&response, "Allow", value, sizeof value));
  assert_string_equal(value, "POST");
  assert_error(&response, 405, "method_not_allowed");
  response = get(fixture, "/api/complete-flow");
  assert_error(&response, 405, "method_not_allowed");
  request_spec_t put = {.method = "PUT", .path = "/api/jobs/abc"};
  response = perform(fixture, &put);
  assert_error(&response, 405, "method_not_allowed");
  request_spec_t post_health = {.method = "POST", .path = "/healthz", .body = "x", .body_size = 1};
  response = perform(fixture, &post_health);
  assert_error(&response, 405, "method_not_allowed");
  response = get(fixture, "/api/jobs/unknownjob");
  assert_error(&response, 404, "not_found");
  response = get(fixture, "/api/jobs/bad%20id");
  assert_error(&response, 404, "not_found");
}

static void test_static_ui(void **state)
{
  fixture_t *fixture = *state;
  response_t response = get(fixture, "/");
  assert_int_equal(response.status, 200);
  char value[512];
  assert_non_null(header(&response, "Content-Type", value, sizeof value));
  assert_string_equal(value, "text/html; charset=utf-8");
  assert_non_null(header(&response, "Content-Security-Policy", value, sizeof value));
  assert_non_null(strstr(value, "default-src 'self'"));
  assert_non_null(strstr(response.body, "<html"));
  response_free(&response);
  response = get(fixture, "/app.js");
  assert_int_equal(response.status, 200);
  assert_non_null(header(&response, "Content-Type", value, sizeof value));
  assert_string_equal(value, "text/javascript; charset=utf-8");
  response_free(&response);
  response = get(fixture, "/style.css");
  assert_int_equal(response.status, 200);
  response_free(&response);
}

static void test_ask(void **state)
{
  fixture_t *fixture = *state;
  const char *body = "{\"text\":\"What are your office hours?\",\"session_id\":\"s-1\"}";
  response_t response = post(fixture, "/api/ask", "application/json", body, strlen(body));
  char location[128];
  assert_non_null(header(&response, "Location", location, sizeof location));
  cJSON *json = assert_json(&response, 202);
  const char *job_id = string_of(json, "job_id");
  assert_int_equal(strlen(job_id), 32);
  assert_string_equal(string_of(json, "session_id"), "s-1");
  char status_url[128];
  snprintf(status_url, sizeof status_url, "/api/jobs/%s", job_id);
  assert_string_equal(string_of(json, "status_url"), status_url);
  assert_string_equal(location, status_url);

  assert_string_equal(fixture->last_stage, "chat");
  assert_non_null(fixture->last_job);
  assert_string_equal(fixture->last_job->id, job_id);
  assert_string_equal(fixture->last_job->input_text, "What are your office hours?");
  assert_string_equal(fixture->last_job->session_id, "s-1");
  assert_true(fixture->last_job->deadline_ms > fixture->last_job->created_ms);
  assert_int_equal(fixture->last_job->deadline_ms - fixture->last_job->created_ms, 60000);

  assert_int_equal(fixture->released, 0);
  response = get(fixture, status_url);
  cJSON *job = assert_json(&response, 200);
  assert_string_equal(string_of(job, "state"), "queued");
  assert_string_equal(string_of(job, "stage"), "chat");
  assert_string_equal(string_of(job, "transcript"), "What are your office hours?");
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(job, "error")));
  cJSON_Delete(job);

  /* The session's turns go to chat as history on the next question. */
  session_store_append_exchange(fixture->sessions, "s-1", job_id, "What are your office hours?",
                                "Nine to six.", clock_wall_ms());
  response = post(fixture, "/api/ask", NULL, body, strlen(body));
  cJSON_Delete(assert_json(&response, 202));
  assert_int_equal(fixture->last_job->n_history, 2);
  assert_string_equal(fixture->last_job->history[1]->role, "assistant");
  assert_string_equal(fixture->last_job->history[1]->text, "Nine to six.");
  cJSON_Delete(json);

  const char *no_session = "{\"text\":\"hi\"}";
  response = post(fixture, "/api/ask", "application/json; charset=utf-8", no_session,
                  strlen(no_session));
  json = assert_json(&response, 202);
  assert_int_equal(strlen(string_of(json, "session_id")), 32);
  cJSON_Delete(json);
}

static void test_ask_errors(void **state)
{
  fixture_t *fixture = *state;
  const char *cases[][2] = {
    {"{not json", "bad_request"},
    {"[1,2]", "bad_request"},
    {"{\"question\":\"hi\"}", "bad_request"},
    {"{\"text\":\"\"}", "bad_request"},
    {"{\"text\":\"   \"}", "bad_request"},
    {"{\"text\":42}", "bad_request"},
    {"{\"text\":\"hi\",\"session_id\":\"../x\"}", "bad_request"},
    {"{\"text\":\"hi\",\"session_id\":7}", "bad_request"},
    {"", "bad_request"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    response_t response =
      post(fixture, "/api/ask", "application/json", cases[i][0], strlen(cases[i][0]));
    assert_error(&response, 400, cases[i][1]);
  }
  const char *latin1 = "{\"text\":\"caf\xE9\"}";
  response_t response = post(fixture, "/api/ask", "application/json", latin1, strlen(latin1));
  assert_error(&response, 422, "unprocessable");

  char long_text[1100 + 16];
  int length = snprintf(long_text, sizeof long_text, "{\"text\":\"");
  memset(long_text + length, 'a', 1001);
  snprintf(long_text + length + 1001, sizeof long_text - (size_t) length - 1001, "\"}");
  response = post(fixture, "/api/ask", "application/json", long_text, strlen(long_text));
  assert_error(&response, 413, "payload_too_large");

  /* 1000 two-byte characters are within the limit: it counts characters. */
  char accented[2100 + 16];
  length = snprintf(accented, sizeof accented, "{\"text\":\"");
  for (int i = 0; i < 1000; i++) {
    accented[length++] = (char) 0xC3;
    accented[length++] = (char) 0xA9;
  }
  snprintf(accented + length, sizeof accented - (size_t) length, "\"}");
  response = post(fixture, "/api/ask", "application/json", accented, strlen(accented));
  cJSON_Delete(assert_json(&response, 202));

  size_t big_size = 70 * 1024;
  char *big = malloc(big_size);
  assert_non_null(big);
  memset(big, ' ', big_size);
  memcpy(big, "{\"text\":\"hi\"", 12);
  big[big_size - 1] = '}';
  response = post(fixture, "/api/ask", "application/json", big, big_size);
  assert_error(&response, 413, "payload_too_large");
  free(big);

  response = post(fixture, "/api/ask", "text/plain", "hello", 5);
  assert_error(&response, 415, "unsupported_media_type");
}

static void test_complete_flow_raw(void **state)
{
  fixture_t *fixture = *state;
  uint8_t audio[4096];
  memset(audio, 0x42, sizeof audio);
  memcpy(audio, webm_magic, sizeof webm_magic);
  response_t response = post(fixture, "/api/complete-flow?session_id=abc", "audio/webm;codecs=opus",
                             audio, sizeof audio);
  cJSON *json = assert_json(&response, 202);
  assert_string_equal(string_of(json, "session_id"), "abc");
  assert_string_equal(fixture->last_stage, "stt");
  assert_int_equal(fixture->last_job->input_audio.len, sizeof audio);
  assert_memory_equal(fixture->last_job->input_audio.data, audio, sizeof audio);
  assert_string_equal(fixture->last_job->input_mime, "audio/webm;codecs=opus");
  assert_string_equal(fixture->last_job->input_text, "");
  char status_url[128];
  snprintf(status_url, sizeof status_url, "%s", string_of(json, "status_url"));
  cJSON_Delete(json);
  response = get(fixture, status_url);
  json = assert_json(&response, 200);
  assert_string_equal(string_of(json, "stage"), "stt");
  assert_null(cJSON_GetObjectItem(json, "transcript"));
  cJSON_Delete(json);

  request_spec_t with_header = {.path = "/api/complete-flow", .content_type = "audio/x-wav",
                                .body = "RIFF\x24\0\0\0WAVEfmt ", .body_size = 16,
                                .extra_header = "X-Session-Id: from-header"};
  response = perform(fixture, &with_header);
  json = assert_json(&response, 202);
  assert_string_equal(string_of(json, "session_id"), "from-header");
  cJSON_Delete(json);
}

static void test_complete_flow_errors(void **state)
{
  fixture_t *fixture = *state;
  int submits = fixture->submits;
  response_t response = post(fixture, "/api/complete-flow", "audio/webm", NULL, 0);
  assert_error(&response, 400, "bad_request");
  response = post(fixture, "/api/complete-flow", "audio/webm", "", 0);
  assert_error(&response, 400, "bad_request");
  response = post(fixture, "/api/complete-flow", "text/plain", "hello", 5);
  assert_error(&response, 415, "unsupported_media_type");
  response = post(fixture, "/api/complete-flow", "application/octet-stream", "hello", 5);
  assert_error(&response, 415, "unsupported_media_type");
  response = post(fixture, "/api/complete-flow", "audio/webm", "this is plain text", 18);
  assert_error(&response, 422, "unprocessable");
  response = post(fixture, "/api/complete-flow", "audio/ogg", webm_magic, sizeof webm_magic);
  assert_error(&response, 422, "unprocessable");
  response = post(fixture, "/api/complete-flow?session_id=bad/id", "audio/webm", webm_magic,
                  sizeof webm_magic);
  assert_error(&response, 400, "bad_request");
  assert_int_equal(fixture->submits, submits);
}

static void test_upload_too_large(void **state)
{
  fixture_t *fixture = *state;
  size_t size = 20 * 1024 * 1024;
  uint8_t *big = calloc(1, size);
  assert_non_null(big);
  memcpy(big, webm_magic, sizeof webm_magic);
  int64_t started = clock_mono_ms();
  response_t response = post(fixture, "/api/complete-flow", "audio/webm", big, size);
  assert_error(&response, 413, "payload_too_large");
  /* Answered from the Content-Length, without waiting for 20 MB to arrive. */
  assert_true(clock_mono_ms() - started < 2000);
  free(big);

  /* Without a Content-Length the limit is enforced as the bytes stream in. */
  request_spec_t chunked = {.path = "/api/complete-flow", .content_type = "audio/webm",
                            .body = webm_magic, .body_size = sizeof webm_magic, .chunked = true,
                            .chunked_total = 20 * 1024 * 1024};
  response = perform(fixture, &chunked);
  assert_error(&response, 413, "payload_too_large");

  /* Exactly at the limit is fine. */
  uint8_t *limit = calloc(1, MAX_UPLOAD);
  assert_non_null(limit);
  memcpy(limit, webm_magic, sizeof webm_magic);
  response = post(fixture, "/api/complete-flow", "audio/webm", limit, MAX_UPLOAD);
  cJSON_Delete(assert_json(&response, 202));
  free(limit);

  char metrics_value[64];
  response = get(fixture, "/metrics");
  assert_int_equal(response.status, 200);
  snprintf(metrics_value, sizeof metrics_value, "gateway_upload_bytes_total %d\n", MAX_UPLOAD);
  assert_non_null(strstr(response.body, metrics_value));
  response_free(&response);
}

static void test_complete_flow_multipart(void **state)
{
  fixture_t *fixture = *state;
  CURL *curl = curl_easy_init();
  curl_mime *mime = curl_mime_init(curl);
  curl_mimepart *part = curl_mime_addpart(mime);
  curl_mime_name(part, "session_id");
  curl_mime_data(part, "form-session", CURL_ZERO_TERMINATED);
  part = curl_mime_addpart(mime);
  curl_mime_name(part, "audio");
  curl_mime_filename(part, "recording.ogg");
  curl_mime_type(part, "audio/ogg; codecs=opus");
  uint8_t audio[50000];
  for (size_t i = 0; i < sizeof audio; i++)
    audio[i] = (uint8_t) (i * 7);
  memcpy(audio, "OggS", 4);
  curl_mime_data(part, (const char *) audio, sizeof audio);
  request_spec_t spec = {.path = "/api/complete-flow", .mime = mime};
  response_t response = perform(fixture, &spec);
  cJSON *json = assert_json(&response, 202);
  assert_string_equal(string_of(json, "session_id"), "form-session");
  cJSON_Delete(json);
  assert_int_equal(fixture->last_job->input_audio.len, sizeof audio);
  assert_memory_equal(fixture->last_job->input_audio.data, audio, sizeof audio);
  assert_string_equal(fixture->last_job->input_mime, "audio/ogg; codecs=opus");
  curl_mime_free(mime);

  /* A part without a type is sniffed. */
  mime = curl_mime_init(curl);
  part = curl_mime_addpart(mime);
  curl_mime_name(part, "audio");
  curl_mime_filename(part, "blob");
  curl_mime_type(part, "application/octet-stream");
  curl_mime_data(part, (const char *) webm_magic, sizeof webm_magic);
  spec.mime = mime;
  response = perform(fixture, &spec);
  cJSON_Delete(assert_json(&response, 202));
  assert_string_equal(fixture->last_job->input_mime, "audio/webm");
  curl_mime_free(mime);

  mime = curl_mime_init(curl);
  part = curl_mime_addpart(mime);
  curl_mime_name(part, "note");
  curl_mime_data(part, "no audio here", CURL_ZERO_TERMINATED);
  spec.mime = mime;
  response = perform(fixture, &spec);
  assert_error(&response, 400, "bad_request");
  curl_mime_free(mime);

  mime = curl_mime_init(curl);
  part = curl_mime_addpart(mime);
  curl_mime_name(part, "audio");
  curl_mime_filename(part, "notes.txt");
  curl_mime_type(part, "text/plain");
  curl_mime_data(part, "hello", CURL_ZERO_TERMINATED);
  spec.mime = mime;
  response = perform(fixture, &spec);
  assert_error(&response, 415, "unsupported_media_type");
  curl_mime_free(mime);

  mime = curl_mime_init(curl);
  part = curl_mime_addpart(mime);
  curl_mime_name(part, "audio");
  curl_mime_filename(part, "fake.webm");
  curl_mime_type(part, "audio/webm");
  curl_mime_data(part, "definitely not audio", CURL_ZERO_TERMINATED);
  spec.mime = mime;
  response = perform(fixture, &spec);
  assert_error(&response, 422, "unprocessable");
  curl_mime_free(mime);

  size_t big_size = MAX_UPLOAD + 1024;
  uint8_t *big = calloc(1, big_size);
  assert_non_null(big);
  memcpy(big, webm_magic, sizeof webm_magic);
  mime = curl_mime_init(curl);
  part = curl_mime_addpart(mime);
  curl_mime_name(part, "audio");
  curl_mime_filename(part, "big.webm");
  curl_mime_type(part, "audio/webm");
  curl_mime_data(part, (const char *) big, big_size);
  spec.mime = mime;
  response = perform(fixture, &spec);
  assert_error(&response, 413, "payload_too_large");
  curl_mime_free(mime);
  free(big);
  curl_easy_cleanup(curl);
}

/* A part without a name (found by tests/fuzz/fuzz_http: it crashed the gateway)
 * is skipped like any other field we do not use. */
static void test_multipart_unnamed_part(void **state)
{
  fixture_t *fixture = *state;
  static const char body[] =
    "--b0undary\r\nContent-Disposition: form-data\r\n\r\nno name\r\n"
    "--b0undary\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.webm\"\r\n"
    "Content-Type: audio/webm\r\n\r\n\x1a\x45\xdf\xa3\x9f\x42\x86\x81\r\n--b0undary--\r\n";
  response_t response = post(fixture, "/api/complete-flow", "multipart/form-data; boundary=b0undary",
                             body, sizeof body - 1);
  cJSON_Delete(assert_json(&response, 202));
  assert_int_equal(fixture->last_job->input_audio.len, sizeof webm_magic);
  assert_memory_equal(fixture->last_job->input_audio.data, webm_magic, sizeof webm_magic);
}

static void test_overloaded(void **state)
{
  fixture_t *fixture = *state;
  const char *body = "{\"text\":\"hi\"}";
  fixture->submit_result = BROKER_NACK_FULL;
  response_t response = post(fixture, "/api/ask", "application/json", body, strlen(body));
  char value[32];
  assert_non_null(header(&response, "Retry-After", value, sizeof value));
  assert_error(&response, 503, "overloaded");
  fixture->submit_result = BROKER_UNAVAILABLE;
  response = post(fixture, "/api/complete-flow", "audio/webm", webm_magic, sizeof webm_magic);
  assert_non_null(header(&response, "Retry-After", value, sizeof value));
  assert_error(&response, 503, "unavailable");
  /* A refused job leaves no record behind, and nothing to re-submit. */
  assert_int_equal(fixture->released, 2);
  char path[80];
  snprintf(path, sizeof path, "/api/jobs/%s", fixture->last_job->id);
  response = get(fixture, path);
  assert_error(&response, 404, "not_found");
}

static void test_sessions(void **state)
{
  fixture_t *fixture = *state;
  char id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(fixture->sessions, "conv", clock_wall_ms(), id), 0);
  session_store_append_exchange(fixture->sessions, "conv", "j1", "hello", "Hi!", clock_wall_ms());
  response_t response = get(fixture, "/api/sessions/conv");
  cJSON *json = assert_json(&response, 200);
  char *text = cJSON_PrintUnformatted(json);
  assert_string_equal(text, "{\"session_id\":\"conv\",\"turns\":["
                            "{\"role\":\"user\",\"text\":\"hello\",\"job_id\":\"j1\"},"
                            "{\"role\":\"assistant\",\"text\":\"Hi!\",\"job_id\":\"j1\"}]}");
  free(text);
  cJSON_Delete(json);
  request_spec_t remove = {.method = "DELETE", .path = "/api/sessions/conv"};
  response = perform(fixture, &remove);
  assert_int_equal(response.status, 204);
  response_free(&response);
  response = get(fixture, "/api/sessions/conv");
  assert_error(&response, 404, "not_found");
  response = perform(fixture, &remove);
  assert_error(&response, 404, "not_found");
  request_spec_t post_session = {.method = "POST", .path = "/api/sessions/conv", .body = "{}",
                                 .body_size = 2};
  response = perform(fixture, &post_session);
  assert_error(&response, 405, "method_not_allowed");
}

static void test_media_ranges(void **state)
{
  fixture_t *fixture = *state;
  uint8_t video[1000];
  for (size_t i = 0; i < sizeof video; i++)
    video[i] = (uint8_t) i;
  assert_int_equal(media_store_write(fixture->media, "abc123.mp4", video, sizeof video), 0);

  response_t response = get(fixture, "/media/abc123.mp4");
  assert_int_equal(response.status, 200);
  char value[128];
  assert_non_null(header(&response, "Content-Type", value, sizeof value));
  assert_string_equal(value, "video/mp4");
  assert_non_null(header(&response, "Content-Length", value, sizeof value));
  assert_string_equal(value, "1000");
  assert_non_null(header(&response, "Accept-Ranges", value, sizeof value));
  assert_string_equal(value, "bytes");
  assert_int_equal(response.body_size, sizeof video);
  assert_memory_equal(response.body, video, sizeof video);
  response_free(&response);

  const struct {
    const char *range;
    size_t offset;
    size_t length;
  } ranges[] = {{"Range: bytes=10-19", 10, 10}, {"Range: bytes=990-", 990, 10},
                {"Range: bytes=-5", 995, 5},    {"Range: bytes=900-5000", 900, 100},
                {"Range: bytes=0-0", 0, 1}};
  for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
    request_spec_t spec = {.path = "/media/abc123.mp4", .extra_header = ranges[i].range};
    response = perform(fixture, &spec);
    assert_int_equal(response.status, 206);
    assert_int_equal(response.body_size, ranges[i].length);
    assert_memory_equal(response.body, video + ranges[i].offset, ranges[i].length);
    char expected[64];
    snprintf(expected, sizeof expected, "bytes %zu-%zu/1000", ranges[i].offset,
             ranges[i].offset + ranges[i].length - 1);
    assert_non_null(header(&response, "Content-Range", value, sizeof value));
    assert_string_equal(value, expected);
    response_free(&response);
  }
  request_spec_t unsatisfiable = {.path = "/media/abc123.mp4", .extra_header = "Range: bytes=1000-"};
  response = perform(fixture, &unsatisfiable);
  assert_non_null(header(&response, "Content-Range", value, sizeof value));
  assert_string_equal(value, "bytes */1000");
  assert_error(&response, 416, "range_not_satisfiable");
  /* Several ranges are not supported: the whole file comes back. */
  request_spec_t multi = {.path = "/media/abc123.mp4", .extra_header = "Range: bytes=0-1,5-6"};
  response = perform(fixture, &multi);
  assert_int_equal(response.status, 200);
  assert_int_equal(response.body_size, sizeof video);
  response_free(&response);

  const char *bad[] = {"/media/missing.mp4", "/media/abc123.txt", "/media/../media/abc123.mp4",
                       "/media/..%2Fabc123.mp4", "/media/", "/media/.abc123.mp4"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    response = get(fixture, bad[i]);
    assert_error(&response, 404, "not_found");
  }
}

static cJSON *stage_info(int tts_workers)
{
  cJSON *info = cJSON_CreateObject();
  cJSON *stages = cJSON_AddObjectToObject(info, "stages");
  const char *names[] = {"stt", "chat", "tts", "avatar"};
  for (size_t i = 0; i < 4; i++) {
    cJSON *stage = cJSON_AddObjectToObject(stages, names[i]);
    cJSON_AddNumberToObject(stage, "workers", strcmp(names[i], "tts") ? 1 : tts_workers);
    cJSON_AddNumberToObject(stage, "idle", 1);
    cJSON_AddNumberToObject(stage, "queued", i);
    cJSON_AddNumberToObject(stage, "in_flight", 0);
  }
  return info;
}

static void test_health_and_metrics(void **state)
{
  fixture_t *fixture = *state;
  response_t response = get(fixture, "/healthz");
  cJSON *json = assert_json(&response, 503);
  assert_string_equal(string_of(json, "status"), "broker_unreachable");
  cJSON_Delete(json);

  fixture->info = stage_info(1);
  response = get(fixture, "/healthz");
  json = assert_json(&response, 200);
  char *text = cJSON_PrintUnformatted(json);
  assert_string_equal(text, "{\"status\":\"ok\",\"stages\":{\"stt\":{\"workers\":1,\"queued\":0},"
                            "\"chat\":{\"workers\":1,\"queued\":1},\"tts\":{\"workers\":1,"
                            "\"queued\":2},\"avatar\":{\"workers\":1,\"queued\":3}}}");
  free(text);
  cJSON_Delete(json);

  cJSON_Delete(fixture->info);
  fixture->info = stage_info(0);
  response = get(fixture, "/healthz");
  json = assert_json(&response, 503);
  assert_string_equal(string_of(json, "status"), "degraded");
  cJSON_Delete(json);

  response = get(fixture, "/metrics");
  assert_int_equal(response.status, 200);
  char value[128];
  assert_non_null(header(&response, "Content-Type", value, sizeof value));
  assert_non_null(strstr(value, "text/plain"));
  assert_non_null(strstr(response.body, "gateway_http_requests_total{route=\"healthz\",status=\"503\"} 2\n"));
  assert_non_null(strstr(response.body, "gateway_stage_queue_depth{stage=\"avatar\"} 3\n"));
  assert_non_null(strstr(response.body, "gateway_stage_workers{stage=\"tts\"} 0\n"));
  assert_non_null(strstr(response.body, "gateway_stage_latency_ms_bucket{stage=\"total\",le=\"+Inf\"} 0\n"));
  response_free(&response);
}

int main(void)
{
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_routes_and_methods, setup, teardown),
    cmocka_unit_test_setup_teardown(test_static_ui, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ask, setup, teardown),
    cmocka_unit_test_setup_teardown(test_ask_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_complete_flow_raw, setup, teardown),
    cmocka_unit_test_setup_teardown(test_complete_flow_errors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_upload_too_large, setup, teardown),
    cmocka_unit_test_setup_teardown(test_complete_flow_multipart, setup, teardown),
    cmocka_unit_test_setup_teardown(test_multipart_unnamed_part, setup, teardown),
    cmocka_unit_test_setup_teardown(test_overloaded, setup, teardown),
    cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
    cmocka_unit_test_setup_teardown(test_media_ranges, setup, teardown),
    cmocka_unit_test_setup_teardown(test_health_and_metrics, setup, teardown),
  };
  int failures = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return failures;
}
