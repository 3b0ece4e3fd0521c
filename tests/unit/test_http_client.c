/* Tests of common/http_client against a real HTTP server (libmicrohttpd on an
 * ephemeral loopback port, in its own threads): retries on 429 (Retry-After and
 * Google RetryInfo), 503 and dropped connections, none on 400/401/404, the total
 * timeout, the size cap, multipart bodies, event streams written a byte at a time
 * or cut short, provider error envelopes, secrets kept out of errors, counters.
 * The SSE parser is also fed directly, split at every byte boundary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "http_client.h"

#define SECRET_KEY "AIzaTESTSECRET0123456789"

/* ---------------------------------------------------------------------------
 * The server: one route per behaviour, state shared under a mutex. */

typedef struct {
  struct MHD_Daemon *daemon;
  char base[64];
  pthread_mutex_t lock;
  int hits;                 /* requests on the current route since reset */
  long first_ms, last_ms;   /* arrival of the first and last request */
  char method[16];
  char content_type[256];
  char api_key[128];
  char *body;               /* last request body */
  size_t body_len;
  volatile bool stopping;
} server_t;

static server_t server;

typedef struct {
  char *data;
  size_t len;
} upload_t;

static long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type,
                               const char *body, const char *retry_after)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *) body,
                                                           MHD_RESPMEM_MUST_COPY);
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, "Content-Type", type);
  if (retry_after)
    MHD_add_response_header(r, "Retry-After", retry_after);
  enum MHD_Result rc = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return rc;
}

/* An event stream written one byte per call, so every read may split it. */
typedef struct {
  const char *text;
  size_t pos;
  bool drop_at_end;   /* end with an error: the chunked body never completes */
} stream_t;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  (void) pos;
  stream_t *s = cls;
  if (!s->text[s->pos])
    return s->drop_at_end ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
  if (max == 0)
    return 0;
  buf[0] = s->text[s->pos++];
  return 1;
}

static enum MHD_Result respond_stream(struct MHD_Connection *conn, const char *text, bool drop)
{
  stream_t *s = calloc(1, sizeof *s);
  if (!s)
    return MHD_NO;
  s->text = text;
  s->drop_at_end = drop;
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, stream_read, s,
                                                             free);
  if (!r) {
    free(s);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", "text/event-stream");
  enum MHD_Result rc = MHD_queue_response(conn, 200, r);
  MHD_destroy_response(r);
  return rc;
}

static const char *sse_script =
  ": keep-alive\r\n"
  "data: {\"text\":\"Hel\"}\r\n\r\n"
  "event: chunk\n"
  "data: line one\n"
  "data:line two\n\n"
  "data: \xC3\xA9t\xC3\xA9\n\n";

static char big_body[64 * 1024];

static enum MHD_Result route(struct MHD_Connection *conn, const char *url, int hits)
{
  if (!strcmp(url, "/ok"))
    return respond(conn, 200, "application/json", "{\"ok\":true}", NULL);
  if (!strcmp(url, "/echo"))
    return respond(conn, 200, "text/plain", server.body ? server.body : "", NULL);
  if (!strcmp(url, "/503-then-ok"))
    return hits <= 2 ? respond(conn, 503, "application/json",
                               "{\"error\":{\"code\":503,\"message\":\"The model is overloaded.\","
                               "\"status\":\"UNAVAILABLE\"}}", NULL)
                     : respond(conn, 200, "application/json", "{\"ok\":true}", NULL);
  if (!strcmp(url, "/429-retry-after"))
    return hits == 1 ? respond(conn, 429, "application/json", "{\"error\":{\"message\":\"slow down\"}}", "1")
                     : respond(conn, 200, "application/json", "{\"ok\":true}", NULL);
  if (!strcmp(url, "/429-retry-info"))
    return hits == 1 ? respond(conn, 429, "application/json",
                               "{\"error\":{\"code\":429,\"message\":\"Quota exceeded.\","
                               "\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
                               "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"0.4s\"}]}}",
                               NULL)
                     : respond(conn, 200, "application/json", "{\"ok\":true}", NULL);
  if (!strcmp(url, "/429-long"))
    return respond(conn, 429, "application/json", "{\"error\":{\"message\":\"come back later\"}}", "30");
  if (!strcmp(url, "/400"))
    return respond(conn, 400, "application/json",
                   "{\"error\":{\"code\":400,\"message\":\"API key not valid: " SECRET_KEY "\","
                   "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":"
                   "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\"}]}}",
                   NULL);
  if (!strcmp(url, "/401"))
    return respond(conn, 401, "application/json",
                   "{\"error\":{\"message\":\"Invalid API Key\",\"type\":\"authentication_error\",\"code\":401}}",
                   NULL);
  if (!strcmp(url, "/404"))
    return respond(conn, 404, "text/plain", "no such\nthing", NULL);
  if (!strcmp(url, "/500"))
    return respond(conn, 500, "application/json", "{\"error\":\"inference failed\"}", NULL);
  if (!strcmp(url, "/slow")) {
    for (int i = 0; i < 150 && !server.stopping; i++)
      usleep(10000);
    return respond(conn, 200, "application/json", "{\"late\":true}", NULL);
  }
  if (!strcmp(url, "/big"))
    return respond(conn, 200, "text/plain", big_body, NULL);
  if (!strcmp(url, "/big-chunked"))
    return respond_stream(conn, big_body, false);
  if (!strcmp(url, "/drop-then-ok"))
    return hits <= 2 ? MHD_NO : respond(conn, 200, "application/json", "{\"ok\":true}", NULL);
  if (!strcmp(url, "/sse"))
    return respond_stream(conn, sse_script, false);
  if (!strcmp(url, "/sse-cut"))
    return respond_stream(conn, "data: one\n\ndata: two\n\n", true);
  return respond(conn, 404, "application/json", "{\"error\":{\"message\":\"not found\"}}", NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *data_size, void **con_cls)
{
  (void) cls, (void) version;
  upload_t *up = *con_cls;
  if (!up) {
    up = calloc(1, sizeof *up);
    *con_cls = up;
    return up ? MHD_YES : MHD_NO;
  }
  if (*data_size) {
    char *grown = realloc(up->data, up->len + *data_size + 1);
    if (!grown)
      return MHD_NO;
    up->data = grown;
    memcpy(up->data + up->len, data, *data_size);
    up->len += *data_size;
    up->data[up->len] = '\0';
    *data_size = 0;
    return MHD_YES;
  }
  const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
  const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-goog-api-key");
  pthread_mutex_lock(&server.lock);
  int hits = ++server.hits;
  long t = now_ms();
  if (hits == 1)
    server.first_ms = t;
  server.last_ms = t;
  snprintf(server.method, sizeof server.method, "%s", method);
  snprintf(server.content_type, sizeof server.content_type, "%s", type ? type : "");
  snprintf(server.api_key, sizeof server.api_key, "%s", key ? key : "");
  free(server.body);
  server.body = up->data;
  server.body_len = up->len;
  up->data = NULL;
  pthread_mutex_unlock(&server.lock);
  return route(conn, url, hits);
}

static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
  (void) cls, (void) conn, (void) code;
  upload_t *up = *con_cls;
  if (up)
    free(up->data);
  free(up);
  *con_cls = NULL;
}

static int server_start(void **state)
{
  (void) state;
  memset(big_body, 'x', sizeof big_body - 1);
  pthread_mutex_init(&server.lock, NULL);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  server.daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                                   0, NULL, NULL, handle, NULL,
                                   MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
                                   MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
                                   MHD_OPTION_END);
  if (!server.daemon)
    return -1;
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(server.daemon, MHD_DAEMON_INFO_BIND_PORT);
  snprintf(server.base, sizeof server.base, "http://127.0.0.1:%u", (unsigned) info->port);
  return 0;
}

static int server_stop(void **state)
{
  (void) state;
  server.stopping = true;
  MHD_stop_daemon(server.daemon);
  free(server.body);
  pthread_mutex_destroy(&server.lock);
  return 0;
}

static int reset(void **state)
{
  (void) state;
  pthread_mutex_lock(&server.lock);
  server.hits = 0;
  pthread_mutex_unlock(&server.lock);
  return 0;
}

static int hits(void)
{
  pthread_mutex_lock(&server.lock);
  int n = server.hits;
  pthread_mutex_unlock(&server.lock);
  return n;
}

/* ---------------------------------------------------------------------------
 * Helpers */

static char url_buf[256];

static const char *url(const char *path)
{
  snprintf(url_buf, sizeof url_buf, "%s%s", server.base, path);
  return url_buf;
}

static uint64_t counter(const char *name, const char *label)
{
  cJSON *snap = counters_snapshot();
  const cJSON *value = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(snap, name), label);
  uint64_t n = cJSON_IsNumber(value) ? (uint64_t) value->valuedouble : 0;
  cJSON_Delete(snap);
  return n;
}

static http_request_t get(const char *path, const char *backend)
{
  return (http_request_t) {.method = "GET", .url = url(path), .backend = backend,
                           .timeout_ms = 5000, .max_attempts = 4, .max_backoff_ms = 50};
}

/* ---------------------------------------------------------------------------
 * Requests and retries */

static void test_post_json_with_headers(void **state)
{
  (void) state;
  const char *headers[] = {"x-goog-api-key: " SECRET_KEY, NULL};
  const char *json = "{\"contents\":[]}";
  http_request_t req = {.method = "POST", .url = url("/echo"), .headers = headers,
                        .body = (const uint8_t *) json, .body_size = strlen(json),
                        .content_type = "application/json; charset=utf-8", .backend = "t_post"};
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.status, 200);
  assert_string_equal((char *) resp.body, json);
  assert_int_equal(resp.body_size, strlen(json));
  assert_string_equal(server.method, "POST");
  assert_string_equal(server.api_key, SECRET_KEY);
  assert_string_equal(server.content_type, "application/json; charset=utf-8");
  assert_string_equal(resp.content_type, "text/plain");
  assert_int_equal(resp.attempts, 1);
  assert_int_equal(counter("backend_requests", "t_post"), 1);
  http_response_release(&resp);
  assert_null(resp.body);
}

static void test_retries_503_then_succeeds(void **state)
{
  (void) state;
  http_request_t req = get("/503-then-ok", "t_503");
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.status, 200);
  assert_int_equal(resp.attempts, 3);
  assert_int_equal(hits(), 3);
  assert_int_equal(counter("backend_retries", "t_503"), 2);
  assert_int_equal(counter("backend_errors_5xx", "t_503"), 2);
  assert_int_equal(counter("backend_requests", "t_503"), 3);
  http_response_release(&resp);
}

static void test_gives_up_after_max_attempts(void **state)
{
  (void) state;
  http_request_t req = get("/500", "t_500");
  req.max_attempts = 3;
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.status, 500);
  assert_int_equal(resp.attempts, 3);
  char message[256];
  http_error_message(&resp, message, sizeof message);
  assert_string_equal(message, "inference failed");   /* whisper.cpp's {"error": "..."} */
  http_response_release(&resp);
}

static void test_429_honours_retry_after(void **state)
{
  (void) state;
  http_request_t req = get("/429-retry-after", "t_429");
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.status, 200);
  assert_int_equal(resp.attempts, 2);
  long waited = server.last_ms - server.first_ms;
  printf("# Retry-After: 1 -> retried after %ld ms\n", waited);
  assert_true(waited >= 950);   /* the server asked for a second; jitter alone is <= 50 ms */
  assert_int_equal(counter("backend_errors_4xx", "t_429"), 1);
  http_response_release(&resp);
}

static void test_429_honours_google_retry_info(void **state)
{
  (void) state;
  http_request_t req = get("/429-retry-info", "t_retryinfo");
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.status, 200);
  assert_int_equal(resp.attempts, 2);
  long waited = server.last_ms - server.first_ms;
  printf("# RetryInfo 0.4s -> retried after %ld ms\n", waited);
  assert_true(waited >= 380);
  http_response_release(&resp);
}

static void test_429_wait_beyond_budget_returns_the_429(void **state)
{
  (void) state;
  http_request_t req = get("/429-long", "t_429long");
  req.timeout_ms = 2000;
  http_response_t resp;
  stage_error_t err = {0};
  long start = now_ms();
  assert_int_equal(http_send(&req, &resp, &err), 0);
  printf("# Retry-After: 30 with a 2 s budget -> answered in %ld ms\n", now_ms() - start);
  assert_int_equal(resp.status, 429);
  assert_int_equal(resp.attempts, 1);
  char message[128];
  http_error_message(&resp, message, sizeof message);
  assert_string_equal(message, "come back later");
  http_response_release(&resp);
}

static void test_no_retry_on_client_errors(void **state)
{
  (void) state;
  static const char *paths[] = {"/400", "/401", "/404"};
  static const long statuses[] = {400, 401, 404};
  for (size_t i = 0; i < 3; i++) {
    reset(NULL);
    http_request_t req = get(paths[i], "t_4xx");
    http_response_t resp;
    stage_error_t err = {0};
    assert_int_equal(http_send(&req, &resp, &err), 0);
    assert_int_equal(resp.status, statuses[i]);
    assert_int_equal(resp.attempts, 1);
    assert_int_equal(hits(), 1);
    http_response_release(&resp);
  }
  assert_int_equal(counter("backend_retries", "t_4xx"), 0);
  assert_int_equal(counter("backend_errors_4xx", "t_4xx"), 3);
}

static void test_dropped_connection_is_retried(void **state)
{
  (void) state;
  http_request_t req = get("/drop-then-ok", "t_drop");
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.status, 200);
  /* On a kept-alive connection libcurl itself re-sends once on a fresh one, so
   * the server drops twice: at least one drop reaches http_send's retry. */
  assert_int_equal(hits(), 3);
  assert_true(resp.attempts >= 2);
  assert_int_equal(counter("backend_errors_transport", "t_drop"), resp.attempts - 1);
  http_response_release(&resp);
}

static void test_slow_answer_times_out(void **state)
{
  (void) state;
  http_request_t req = get("/slow", "t_slow");
  req.timeout_ms = 300;
  http_response_t resp;
  stage_error_t err = {0};
  long start = now_ms();
  assert_int_equal(http_send(&req, &resp, &err), -1);
  printf("# 300 ms budget against a 1.5 s answer -> gave up after %ld ms\n", now_ms() - start);
  assert_string_equal(err.code, "timeout");
  assert_non_null(strstr(err.message, "t_slow"));
  assert_int_equal(resp.attempts, 1);
  assert_null(resp.body);
}

static void test_unreachable_server_without_secrets(void **state)
{
  (void) state;
  /* A port nobody listens on: bind, read the port, close. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  assert_int_equal(bind(fd, (struct sockaddr *) &addr, sizeof addr), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *) &addr, &len), 0);
  close(fd);
  char target[160];
  snprintf(target, sizeof target, "http://127.0.0.1:%u/v1/x?key=" SECRET_KEY,
           (unsigned) ntohs(addr.sin_port));
  const char *headers[] = {"Authorization: Bearer " SECRET_KEY, NULL};
  http_request_t req = {.url = target, .headers = headers, .backend = "t_down",
                        .timeout_ms = 3000, .max_attempts = 3, .max_backoff_ms = 20};
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), -1);
  assert_string_equal(err.code, "backend_error");
  assert_int_equal(resp.attempts, 3);
  assert_non_null(strstr(err.message, "could not be reached"));
  assert_null(strstr(err.message, SECRET_KEY));
  assert_null(strstr(err.message, "TESTSECRET"));
  assert_int_equal(counter("backend_errors_transport", "t_down"), 3);
  assert_int_equal(counter("backend_retries", "t_down"), 2);
}

static void test_provider_message_masks_the_key(void **state)
{
  (void) state;
  const char *headers[] = {"x-goog-api-key: " SECRET_KEY, NULL};
  http_request_t req = get("/400", "t_mask");
  req.headers = headers;
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.status, 400);
  char message[256];
  http_error_message(&resp, message, sizeof message);
  assert_string_equal(message, "API key not valid: *** (API_KEY_INVALID)");
  http_response_release(&resp);
}

static void test_size_cap(void **state)
{
  (void) state;
  static const char *paths[] = {"/big", "/big-chunked"};   /* with and without Content-Length */
  for (size_t i = 0; i < 2; i++) {
    http_request_t req = get(paths[i], "t_big");
    req.max_response_bytes = 1000;
    http_response_t resp;
    stage_error_t err = {0};
    assert_int_equal(http_send(&req, &resp, &err), -1);
    assert_string_equal(err.code, "backend_error");
    assert_non_null(strstr(err.message, "larger than 1000 bytes"));
    assert_int_equal(resp.attempts, 1);
  }
  http_request_t req = get("/big", "t_big");
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.body_size, sizeof big_body - 1);
  http_response_release(&resp);
}

static void test_multipart(void **state)
{
  (void) state;
  static const uint8_t audio[] = {0x1A, 0x45, 0xDF, 0xA3, 0x00, 0xFF};
  http_part_t parts[] = {
    {.name = "file", .data = audio, .size = sizeof audio, .filename = "speech.webm",
     .content_type = "audio/webm"},
    {.name = "model", .data = (const uint8_t *) "whisper-1", .size = 9},
  };
  http_request_t req = {.method = "POST", .url = url("/echo"), .parts = parts, .part_count = 2,
                        .backend = "t_multipart"};
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.status, 200);
  assert_memory_equal(server.content_type, "multipart/form-data; boundary=", 30);
  /* The body holds a NUL (the audio): search it as bytes. */
  static const char *wanted[] = {"name=\"file\"; filename=\"speech.webm\"", "Content-Type: audio/webm",
                                 "name=\"model\"\r\n\r\nwhisper-1\r\n"};
  for (size_t i = 0; i < 3; i++)
    assert_non_null(memmem(server.body, server.body_len, wanted[i], strlen(wanted[i])));
  assert_non_null(memmem(server.body, server.body_len, audio, sizeof audio));
  http_response_release(&resp);
}

/* ---------------------------------------------------------------------------
 * Event streams */

typedef struct {
  char log[1024];     /* "[event]data|" per event */
  int stop_after;     /* 0 = never stop */
  int count;
} events_t;

static bool collect(void *arg, const char *event, const char *data, size_t size)
{
  events_t *e = arg;
  assert_int_equal(strlen(data), size);
  size_t used = strlen(e->log);
  snprintf(e->log + used, sizeof e->log - used, "[%s]%s|", event ? event : "", data);
  e->count++;
  return !(e->stop_after && e->count >= e->stop_after);
}

static const char *sse_expected = "[]{\"text\":\"Hel\"}|[chunk]line one\nline two|[]\xC3\xA9t\xC3\xA9|";

static void test_sse_over_http_byte_by_byte(void **state)
{
  (void) state;
  events_t events = {0};
  http_request_t req = get("/sse", "t_sse");
  req.on_event = collect;
  req.on_event_arg = &events;
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.status, 200);
  assert_string_equal(resp.content_type, "text/event-stream");
  assert_string_equal(events.log, sse_expected);
  assert_int_equal(resp.body_size, 0);
  http_response_release(&resp);
}

static void test_sse_stop_early(void **state)
{
  (void) state;
  events_t events = {.stop_after = 1};
  http_request_t req = get("/sse", "t_sse_stop");
  req.on_event = collect;
  req.on_event_arg = &events;
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(events.count, 1);
  http_response_release(&resp);
}

static void test_sse_cut_short_is_an_error_without_retry(void **state)
{
  (void) state;
  events_t events = {0};
  http_request_t req = get("/sse-cut", "t_sse_cut");
  req.on_event = collect;
  req.on_event_arg = &events;
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), -1);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "broke off"));
  assert_int_equal(resp.attempts, 1);
  assert_string_equal(events.log, "[]one|[]two|");
}

static void test_sse_error_answer_fills_body(void **state)
{
  (void) state;
  events_t events = {0};
  http_request_t req = get("/401", "t_sse_401");
  req.on_event = collect;
  req.on_event_arg = &events;
  http_response_t resp;
  stage_error_t err = {0};
  assert_int_equal(http_send(&req, &resp, &err), 0);
  assert_int_equal(resp.status, 401);
  assert_int_equal(events.count, 0);
  char message[128];
  http_error_message(&resp, message, sizeof message);
  assert_string_equal(message, "Invalid API Key");
  http_response_release(&resp);
}

/* Parses `text` fed in pieces split at `cut` (0 = one piece; SIZE_MAX = byte by byte). */
static void parse(const char *text, size_t cut, bool finish, events_t *events)
{
  http_sse_t *sse = http_sse_new(collect, events, 256);
  assert_non_null(sse);
  size_t len = strlen(text);
  if (cut == SIZE_MAX) {
    for (size_t i = 0; i < len; i++)
      assert_int_equal(http_sse_feed(sse, text + i, 1), 0);
  } else {
    assert_int_equal(http_sse_feed(sse, text, cut), 0);
    assert_int_equal(http_sse_feed(sse, text + cut, len - cut), 0);
  }
  if (finish)
    assert_int_equal(http_sse_finish(sse), 0);
  http_sse_destroy(&sse);
  assert_null(sse);
}

static void test_sse_parser_every_split(void **state)
{
  (void) state;
  const char *stream =
    "\xEF\xBB\xBF: comment\r\n"
    "id: 7\r\nretry: 100\r\n"
    "data: {\"candidates\":[]}\r\n\r\n"
    "data:no space\n"
    "data\n"
    "data:  two spaces\n\n"
    "event: ping\rdata: cr only\r\r"
    "error: {\"code\":500,\"message\":\"llama failed\"}\n"
    "data: [DONE]\n\n"
    "\n\n"
    "event: lonely\n\n";
  const char *expected =
    "[]{\"candidates\":[]}|[]no space\n\n two spaces|[ping]cr only|"
    "[error]{\"code\":500,\"message\":\"llama failed\"}|[][DONE]|";
  size_t len = strlen(stream);
  for (size_t cut = 0; cut <= len; cut++) {
    events_t events = {0};
    parse(stream, cut, true, &events);
    if (strcmp(events.log, expected))
      fail_msg("split at %zu: got %s", cut, events.log);
  }
  events_t events = {0};
  parse(stream, SIZE_MAX, true, &events);
  assert_string_equal(events.log, expected);
}

static void test_sse_parser_end_of_stream(void **state)
{
  (void) state;
  events_t complete = {0};
  parse("data: last\n", 0, true, &complete);   /* ended by closing, line complete */
  assert_string_equal(complete.log, "[]last|");
  events_t partial = {0};
  parse("data: one\n\ndata: trunc", 0, true, &partial);
  assert_string_equal(partial.log, "[]one|");
  events_t crlf_split = {0};
  parse("data: a\r", 0, false, &crlf_split);
  assert_string_equal(crlf_split.log, "");
}

static void test_sse_parser_limits(void **state)
{
  (void) state;
  events_t events = {0};
  http_sse_t *sse = http_sse_new(collect, &events, 16);
  assert_non_null(sse);
  assert_int_equal(http_sse_feed(sse, "data: short\n\n", 13), 0);
  assert_int_equal(http_sse_feed(sse, "data: this line is far too long\n", 32), -1);
  http_sse_destroy(&sse);

  events_t stop = {.stop_after = 1};
  sse = http_sse_new(collect, &stop, 0);
  assert_non_null(sse);
  assert_int_equal(http_sse_feed(sse, "data: a\n\ndata: b\n\n", 18), 1);
  assert_int_equal(http_sse_finish(sse), 1);
  assert_int_equal(stop.count, 1);
  assert_int_equal(http_sse_events(sse), 1);
  http_sse_destroy(&sse);
  http_sse_destroy(&sse);   /* NULL is fine */
}

/* ---------------------------------------------------------------------------
 * Error envelopes (no server needed) */

static void expect_message(long status, const char *body, const char *expected)
{
  http_response_t resp = {.status = status, .body = (uint8_t *) body, .body_size = strlen(body)};
  char out[128];
  http_error_message(&resp, out, sizeof out);
  assert_string_equal(out, expected);
}

static void test_error_envelopes(void **state)
{
  (void) state;
  expect_message(403, "{\"error\":{\"code\":403,\"message\":\"Permission denied.\",\"status\":\"PERMISSION_DENIED\"}}",
                 "Permission denied.");
  expect_message(429, "[{\"error\":{\"code\":429,\"message\":\"Quota exceeded\"}}]", "Quota exceeded");
  expect_message(400, "{\"error\":{\"message\":\"bad role\",\"type\":\"invalid_request_error\",\"code\":null}}",
                 "bad role");
  expect_message(400, "{\"error\":\"no 'file' field in the request\"}", "no 'file' field in the request");
  expect_message(400, "{\"object\":\"error\",\"message\":\"model not found\",\"type\":\"BadRequestError\"}",
                 "model not found");
  expect_message(401, "{\"kind\":\"AuthorizationError\",\"description\":\"user unauthenticated\"}",
                 "user unauthenticated (AuthorizationError)");
  expect_message(502, "<html>\r\nBad gateway</html>", "<html>  Bad gateway</html>");
  expect_message(503, "", "HTTP 503 with an empty body");
  char tiny[8];
  http_response_t resp = {.status = 500, .body = (uint8_t *) "{\"error\":\"a long message\"}", .body_size = 26};
  http_error_message(&resp, tiny, sizeof tiny);
  assert_string_equal(tiny, "a long ");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_post_json_with_headers, reset),
    cmocka_unit_test_setup(test_retries_503_then_succeeds, reset),
    cmocka_unit_test_setup(test_gives_up_after_max_attempts, reset),
    cmocka_unit_test_setup(test_429_honours_retry_after, reset),
    cmocka_unit_test_setup(test_429_honours_google_retry_info, reset),
    cmocka_unit_test_setup(test_429_wait_beyond_budget_returns_the_429, reset),
    cmocka_unit_test_setup(test_no_retry_on_client_errors, reset),
    cmocka_unit_test_setup(test_dropped_connection_is_retried, reset),
    cmocka_unit_test_setup(test_slow_answer_times_out, reset),
    cmocka_unit_test_setup(test_unreachable_server_without_secrets, reset),
    cmocka_unit_test_setup(test_provider_message_masks_the_key, reset),
    cmocka_unit_test_setup(test_size_cap, reset),
    cmocka_unit_test_setup(test_multipart, reset),
    cmocka_unit_test_setup(test_sse_over_http_byte_by_byte, reset),
    cmocka_unit_test_setup(test_sse_stop_early, reset),
    cmocka_unit_test_setup(test_sse_cut_short_is_an_error_without_retry, reset),
    cmocka_unit_test_setup(test_sse_error_answer_fills_body, reset),
    cmocka_unit_test(test_sse_parser_every_split),
    cmocka_unit_test(test_sse_parser_end_of_stream),
    cmocka_unit_test(test_sse_parser_limits),
    cmocka_unit_test(test_error_envelopes),
  };
  return cmocka_run_group_tests(tests, server_start, server_stop);
}
