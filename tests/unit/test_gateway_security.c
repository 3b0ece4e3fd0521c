/* Security and hostile-client tests of the gateway: a real MHD daemon on an
 * ephemeral loopback port (a fake pipeline instead of the broker), real
 * requests with libcurl and raw sockets. Covers the API token and the login
 * cookie, CORS, per-client rate limits, security headers, TLS, slow clients
 * (headers or body trickled), clients vanishing mid-upload, huge headers,
 * header injection, path traversal, non-UTF-8 text, empty and 10-hour audio,
 * and a full media disk (a 1 MB tmpfs, when the test may mount one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio_header.h"
#include "clock.h"
#include "http_api.h"
#include "pipeline.pb-c.h"
#include "rate_limit.h"
#include "security.h"
#include "status_sink.h"

#define MAX_UPLOAD (1024 * 1024)
#define TOKEN "tok en&=%+/secret-0123456789" /* needs form encoding: exercises the login form */
#define ALLOWED_ORIGIN "https://kiosk.example.com"

typedef struct {
  char dir[64];
  job_store_t *jobs;
  session_store_t *sessions;
  media_store_t *media;
  metrics_t *metrics;
  pipeline_t pipeline;
  http_api_t *api;
  char base_url[64];
  uint16_t port;
  int submits;
  int released;
} fixture_t;

typedef struct {
  long status;
  char *body;
  size_t body_size;
  char headers[8192];
  size_t headers_size;
  CURLcode curl_code;
} response_t;

static broker_submit_result_t fake_submit(void *arg, const char *stage, const char *job_id,
                                          int64_t deadline_ms, const uint8_t *job, size_t size,
                                          unsigned *retry_after_s)
{
  (void) retry_after_s;
  (void) stage, (void) job_id, (void) deadline_ms, (void) job, (void) size;
  fixture_t *fixture = arg;
  fixture->submits++;
  return BROKER_ACK;
}

static cJSON *fake_info(void *arg, int timeout_ms)
{
  (void) arg, (void) timeout_ms;
  return NULL; /* "broker unreachable": /healthz answers 503, which is enough here */
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
  snprintf(fixture->dir, sizeof fixture->dir, "/tmp/test-security-XXXXXX");
  if (!mkdtemp(fixture->dir))
    return -1;
  char media_dir[96];
  snprintf(media_dir, sizeof media_dir, "%s/media", fixture->dir);
  fixture->jobs = job_store_new(3600000);
  fixture->sessions = session_store_new(10, 3600000);
  fixture->media = media_store_new(media_dir, 3600);
  fixture->metrics = metrics_new();
  fixture->pipeline = (pipeline_t) {
    .submit = fake_submit, .info = fake_info, .job_final = fake_job_final, .arg = fixture,
  };
  *state = fixture;
  return fixture->jobs && fixture->sessions && fixture->media && fixture->metrics ? 0 : -1;
}

static int teardown(void **state)
{
  fixture_t *fixture = *state;
  http_api_stop(&fixture->api);
  job_store_destroy(&fixture->jobs);
  session_store_destroy(&fixture->sessions);
  media_store_destroy(&fixture->media);
  metrics_destroy(&fixture->metrics);
  char tiny[96];
  snprintf(tiny, sizeof tiny, "%s/tiny", fixture->dir);
  umount2(tiny, MNT_DETACH); /* test_media_disk_full's tmpfs, if a failure left it mounted */
  char command[128];
  snprintf(command, sizeof command, "rm -rf '%s'", fixture->dir);
  int rc = system(command);
  free(fixture);
  return rc == 0 ? 0 : -1;
}

/* The configuration every test starts from: all guards off. */
static http_api_config_t base_config(fixture_t *fixture)
{
  return (http_api_config_t) {
    .bind_address = "127.0.0.1",
    .port = 0,
    .threads = 2,
    .connection_limit = 64,
    .connection_timeout_s = 10,
    .static_dir = GATEWAY_STATIC_DIR,
    .max_upload_bytes = MAX_UPLOAD,
    .ask_max_chars = 1000,
    .job_deadline_ms = 60000,
    .max_audio_ms = 60000,
    .max_header_bytes = 8192,
    .jobs = fixture->jobs,
    .sessions = fixture->sessions,
    .media = fixture->media,
    .metrics = fixture->metrics,
    .pipeline = &fixture->pipeline,
  };
}

static void start(fixture_t *fixture, const http_api_config_t *config, const char *scheme)
{
  fixture->api = http_api_start(config);
  assert_non_null(fixture->api);
  fixture->port = http_api_port(fixture->api);
  snprintf(fixture->base_url, sizeof fixture->base_url, "%s://127.0.0.1:%u", scheme,
           (unsigned) fixture->port);
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

/* The value of header `name` in the response (without CRLF), or NULL. */
static const char *header(const response_t *response, const char *name, char *value, size_t size)
{
  size_t name_length = strlen(name);
  for (const char *line = response->headers; line && *line;) {
    if (strncasecmp(line, name, name_length) == 0 && line[name_length] == ':') {
      const char *start = line + name_length + 1;
      while (*start == ' ')
        start++;
      snprintf(value, size, "%.*s", (int) strcspn(start, "\r\n"), start);
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
  const char *headers[6]; /* extra request headers, NULL-terminated */
  const char *ca_file;    /* for https */
} request_spec_t;

static response_t perform(const fixture_t *fixture, const request_spec_t *spec)
{
  response_t response = {0};
  CURL *curl = curl_easy_init();
  assert_non_null(curl);
  char url[1024];
  snprintf(url, sizeof url, "%s%s", fixture->base_url, spec->path);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
  if (spec->ca_file)
    curl_easy_setopt(curl, CURLOPT_CAINFO, spec->ca_file);
  struct curl_slist *headers = NULL;
  char content_type[256];
  snprintf(content_type, sizeof content_type, "Content-Type:%s%s",
           spec->content_type ? " " : "", spec->content_type ? spec->content_type : "");
  headers = curl_slist_append(headers, content_type);
  for (size_t i = 0; i < sizeof spec->headers / sizeof spec->headers[0] && spec->headers[i]; i++)
    headers = curl_slist_append(headers, spec->headers[i]);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (spec->body) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, spec->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) spec->body_size);
  }
  if (spec->method)
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, spec->method);
  response.curl_code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return response;
}

static response_t get(const fixture_t *fixture, const char *path)
{
  return perform(fixture, &(request_spec_t) {.path = path});
}

static response_t ask_with(const fixture_t *fixture, const char *text_json, const char *header1)
{
  return perform(fixture, &(request_spec_t) {.path = "/api/ask", .content_type = "application/json",
                                             .body = text_json, .body_size = strlen(text_json),
                                             .headers = {header1}});
}

static void response_free(response_t *response)
{
  free(response->body);
  response->body = NULL;
}

/* Asserts status `status` with the JSON error `code`. */
static void assert_error(response_t *response, long status, const char *code)
{
  if (response->status != status)
    fprintf(stderr, "expected %ld %s, got %ld: %s\n", status, code, response->status,
            response->body ? response->body : "(no body)");
  assert_int_equal(response->status, status);
  cJSON *body = cJSON_Parse(response->body);
  assert_non_null(body);
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(body, "error");
  const cJSON *error_code = cJSON_GetObjectItemCaseSensitive(error, "code");
  assert_true(cJSON_IsString(error_code));
  assert_string_equal(error_code->valuestring, code);
  assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(error, "message")));
  cJSON_Delete(body);
  response_free(response);
}

/* ---- raw sockets ------------------------------------------------------------ */

static int connect_raw(const fixture_t *fixture)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(fixture->port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *) &address, sizeof address), 0);
  return fd;
}

/* true when the server has closed `fd` (EOF or reset), waiting up to `wait_ms`. */
static bool closed_by_server(int fd, int wait_ms)
{
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  int64_t until = clock_mono_ms() + wait_ms;
  while (clock_mono_ms() < until) {
    if (poll(&pfd, 1, 50) > 0) {
      char buffer[4096];
      ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        return true;
    }
  }
  return false;
}

/* Waits up to 3 s for the server to track exactly `count` connections. */
static size_t settle_connections(const fixture_t *fixture, size_t count)
{
  size_t open = http_api_open_connections(fixture->api);
  for (int i = 0; i < 300 && open != count; i++) {
    usleep(50000);
    open = http_api_open_connections(fixture->api);
  }
  return open;
}

static long rss_kb(void)
{
  FILE *file = fopen("/proc/self/status", "r");
  if (!file)
    return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, file))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(file);
  return kb;
}

/* ---- security headers ------------------------------------------------------- */

static void assert_security_headers(const response_t *response, bool tls)
{
  char value[1024];
  assert_non_null(header(response, "X-Content-Type-Options", value, sizeof value));
  assert_string_equal(value, "nosniff");
  assert_non_null(header(response, "Content-Security-Policy", value, sizeof value));
  assert_non_null(strstr(value, "default-src 'self'"));
  assert_non_null(strstr(value, "frame-ancestors 'none'"));
  assert_non_null(header(response, "X-Frame-Options", value, sizeof value));
  assert_string_equal(value, "DENY");
  assert_non_null(header(response, "Referrer-Policy", value, sizeof value));
  assert_non_null(header(response, "Permissions-Policy", value, sizeof value));
  assert_non_null(strstr(value, "microphone=(self)"));
  assert_non_null(strstr(value, "camera=()"));
  assert_non_null(header(response, "Cross-Origin-Opener-Policy", value, sizeof value));
  assert_string_equal(value, "same-origin");
  assert_null(header(response, "Server", value, sizeof value));
  assert_null(header(response, "X-Powered-By", value, sizeof value));
  assert_true(tls == (header(response, "Strict-Transport-Security", value, sizeof value) != NULL));
}

static void test_security_headers(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  start(fixture, &config, "http");
  const char *paths[] = {"/", "/app.js", "/api/jobs/unknown", "/media/nothing.mp4", "/healthz",
                         "/metrics", "/nowhere"};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    response_t response = get(fixture, paths[i]);
    assert_true(response.status >= 200);
    assert_security_headers(&response, false);
    response_free(&response);
  }
  response_t error = ask_with(fixture, "{", NULL);
  assert_security_headers(&error, false);
  assert_error(&error, 400, "bad_request");
}

/* ---- API token and the login form ------------------------------------------- */

static void test_token_units(void **state)
{
  (void) state;
  api_token_t token;
  assert_int_equal(api_token_init(&token, ""), 0);
  assert_false(token.enabled);
  assert_false(api_token_matches(&token, ""));
  assert_int_equal(api_token_init(&token, "s3cret"), 0);
  assert_true(token.enabled);
  assert_true(api_token_matches(&token, "s3cret"));
  assert_false(api_token_matches(&token, "s3cre"));
  assert_false(api_token_matches(&token, "s3cret "));
  assert_false(api_token_matches(&token, "S3cret"));
  assert_false(api_token_matches(&token, ""));
  assert_false(api_token_matches(&token, NULL));
  assert_true(api_token_matches_bearer(&token, "Bearer s3cret"));
  assert_true(api_token_matches_bearer(&token, "bearer s3cret"));
  assert_false(api_token_matches_bearer(&token, "Basic s3cret"));
  assert_false(api_token_matches_bearer(&token, "s3cret"));
  assert_false(api_token_matches_bearer(&token, NULL));
  /* The cookie is derived from the token, not the token itself. */
  assert_int_equal(strlen(token.cookie), 64);
  assert_null(strstr(token.cookie, "s3cret"));
  assert_true(api_token_matches_cookie(&token, token.cookie));
  assert_false(api_token_matches_cookie(&token, "s3cret"));
  api_token_t other;
  assert_int_equal(api_token_init(&other, "another"), 0);
  assert_string_not_equal(other.cookie, token.cookie);
  api_token_clear(&token);
  assert_false(token.enabled);
  api_token_clear(&other);
}

static void test_api_token(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  config.api_token = TOKEN;
  start(fixture, &config, "http");
  char value[512];

  response_t response = get(fixture, "/api/jobs/abc");
  assert_non_null(header(&response, "WWW-Authenticate", value, sizeof value));
  assert_non_null(strstr(value, "Bearer"));
  assert_null(strstr(response.body, "secret"));
  assert_error(&response, 401, "unauthorized");
  response = perform(fixture, &(request_spec_t) {.path = "/api/jobs/abc",
                                                 .headers = {"Authorization: Bearer wrong"}});
  assert_error(&response, 401, "unauthorized");
  response = perform(fixture, &(request_spec_t) {.path = "/api/jobs/abc",
                                                 .headers = {"Authorization: Bearer " TOKEN}});
  assert_error(&response, 404, "not_found");
  response = ask_with(fixture, "{\"text\":\"hello\"}", NULL);
  assert_error(&response, 401, "unauthorized");
  assert_int_equal(fixture->submits, 0);
  response = ask_with(fixture, "{\"text\":\"hello\"}", "Authorization: Bearer " TOKEN);
  assert_int_equal(response.status, 202);
  response_free(&response);
  assert_int_equal(fixture->submits, 1);
  response = perform(fixture, &(request_spec_t) {.method = "DELETE", .path = "/api/sessions/x"});
  assert_error(&response, 401, "unauthorized");

  /* Outside /api: probes and media stay open, the page asks for the token. */
  response = get(fixture, "/healthz");
  assert_int_equal(response.status, 503);
  response_free(&response);
  response = get(fixture, "/media/nothing.mp4");
  assert_error(&response, 404, "not_found");
  response = get(fixture, "/app.js");
  assert_int_equal(response.status, 200);
  response_free(&response);
  response = get(fixture, "/");
  assert_int_equal(response.status, 303);
  assert_non_null(header(&response, "Location", value, sizeof value));
  assert_string_equal(value, "/login");
  response_free(&response);
  response = get(fixture, "/login");
  assert_int_equal(response.status, 200);
  assert_non_null(header(&response, "Content-Type", value, sizeof value));
  assert_non_null(strstr(value, "text/html"));
  assert_non_null(strstr(response.body, "<form method=\"post\" action=\"/login\">"));
  assert_null(strstr(response.body, "not right"));
  assert_security_headers(&response, false);
  response_free(&response);

  const char *wrong = "token=nope";
  response = perform(fixture, &(request_spec_t) {.path = "/login",
    .content_type = "application/x-www-form-urlencoded", .body = wrong, .body_size = strlen(wrong)});
  assert_int_equal(response.status, 303);
  assert_non_null(header(&response, "Location", value, sizeof value));
  assert_string_equal(value, "/login?failed=1");
  assert_null(header(&response, "Set-Cookie", value, sizeof value));
  response_free(&response);
  response = get(fixture, "/login?failed=1");
  assert_non_null(strstr(response.body, "not right"));
  response_free(&response);

  CURL *curl = curl_easy_init();
  char *escaped = curl_easy_escape(curl, TOKEN, 0);
  char form[256];
  snprintf(form, sizeof form, "other=1&token=%s", escaped);
  curl_free(escaped);
  curl_easy_cleanup(curl);
  response = perform(fixture, &(request_spec_t) {.path = "/login",
    .content_type = "application/x-www-form-urlencoded", .body = form, .body_size = strlen(form)});
  assert_int_equal(response.status, 303);
  assert_non_null(header(&response, "Location", value, sizeof value));
  assert_string_equal(value, "/");
  assert_non_null(header(&response, "Set-Cookie", value, sizeof value));
  response_free(&response);
  assert_non_null(strstr(value, "HttpOnly"));
  assert_non_null(strstr(value, "SameSite=Strict"));
  assert_null(strstr(value, "Secure"));
  assert_null(strstr(value, "secret"));
  char cookie[256];
  snprintf(cookie, sizeof cookie, "Cookie: %.*s", (int) strcspn(value, ";"), value);

  response = perform(fixture, &(request_spec_t) {.path = "/api/jobs/abc", .headers = {cookie}});
  assert_error(&response, 404, "not_found");
  response = perform(fixture, &(request_spec_t) {.path = "/", .headers = {cookie}});
  assert_int_equal(response.status, 200);
  response_free(&response);
  /* The cookie is for the page's own calls: not for another origin's. */
  response = perform(fixture, &(request_spec_t) {.path = "/api/jobs/abc",
    .headers = {cookie, "Origin: " ALLOWED_ORIGIN}});
  assert_error(&response, 403, "forbidden_origin");
  response = perform(fixture, &(request_spec_t) {.path = "/login",
    .content_type = "application/x-www-form-urlencoded", .body = form, .body_size = strlen(form),
    .headers = {"Origin: https://evil.example"}});
  assert_error(&response, 403, "forbidden_origin");
}

static void test_no_login_without_token(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  start(fixture, &config, "http");
  response_t response = get(fixture, "/login");
  assert_error(&response, 404, "not_found");
  response = get(fixture, "/");
  assert_int_equal(response.status, 200);
  response_free(&response);
  response = get(fixture, "/api/jobs/abc");
  assert_error(&response, 404, "not_found");
}

/* ---- CORS ------------------------------------------------------------------- */

static void test_origin_units(void **state)
{
  (void) state;
  origin_list_t *list = NULL;
  assert_int_equal(origin_list_parse("", &list), 0);
  assert_null(list);
  assert_false(origin_list_allows(list, ALLOWED_ORIGIN));
  assert_int_equal(origin_list_parse(" https://A.example.com ,http://localhost:3000,, ", &list), 0);
  assert_non_null(list);
  assert_true(origin_list_allows(list, "https://a.example.com"));
  assert_true(origin_list_allows(list, "http://localhost:3000"));
  assert_false(origin_list_allows(list, "http://localhost:3001"));
  assert_false(origin_list_allows(list, "http://a.example.com"));
  assert_false(origin_list_allows(list, "null"));
  assert_false(origin_list_allows(list, NULL));
  origin_list_destroy(&list);
  assert_int_equal(origin_list_parse("kiosk.example.com", &list), -1);
  assert_int_equal(origin_list_parse("https://kiosk.example.com/app", &list), -1);
  assert_null(list);
  assert_true(origin_is_same("http://127.0.0.1:8080", "127.0.0.1:8080"));
  assert_true(origin_is_same("https://Kiosk.example.com", "kiosk.example.com"));
  assert_false(origin_is_same("http://127.0.0.1:8081", "127.0.0.1:8080"));
  assert_false(origin_is_same("null", "127.0.0.1:8080"));
  assert_false(origin_is_same("http://x", NULL));
}

static void test_cors(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  config.cors_origins = ALLOWED_ORIGIN ", http://localhost:3000";
  start(fixture, &config, "http");
  char value[256];

  response_t response = perform(fixture, &(request_spec_t) {.method = "OPTIONS", .path = "/api/ask",
    .headers = {"Origin: " ALLOWED_ORIGIN, "Access-Control-Request-Method: POST",
                "Access-Control-Request-Headers: authorization, content-type"}});
  assert_int_equal(response.status, 204);
  assert_non_null(header(&response, "Access-Control-Allow-Origin", value, sizeof value));
  assert_string_equal(value, ALLOWED_ORIGIN);
  assert_non_null(header(&response, "Access-Control-Allow-Methods", value, sizeof value));
  assert_non_null(strstr(value, "POST"));
  assert_non_null(header(&response, "Access-Control-Allow-Headers", value, sizeof value));
  assert_non_null(strstr(value, "Authorization"));
  assert_non_null(strstr(value, "Content-Type"));
  assert_non_null(header(&response, "Access-Control-Max-Age", value, sizeof value));
  assert_non_null(header(&response, "Vary", value, sizeof value));
  assert_string_equal(value, "Origin");
  response_free(&response);

  response = perform(fixture, &(request_spec_t) {.method = "OPTIONS", .path = "/api/ask",
    .headers = {"Origin: https://evil.example", "Access-Control-Request-Method: POST"}});
  assert_null(header(&response, "Access-Control-Allow-Origin", value, sizeof value));
  assert_error(&response, 403, "forbidden_origin");

  response = ask_with(fixture, "{\"text\":\"hi\"}", "Origin: https://evil.example");
  assert_error(&response, 403, "forbidden_origin");
  response = ask_with(fixture, "{\"text\":\"hi\"}", "Origin: null");
  assert_error(&response, 403, "forbidden_origin");
  assert_int_equal(fixture->submits, 0);

  response = ask_with(fixture, "{\"text\":\"hi\"}", "Origin: " ALLOWED_ORIGIN);
  assert_int_equal(response.status, 202);
  assert_non_null(header(&response, "Access-Control-Allow-Origin", value, sizeof value));
  assert_string_equal(value, ALLOWED_ORIGIN);
  assert_non_null(header(&response, "Access-Control-Expose-Headers", value, sizeof value));
  assert_non_null(strstr(value, "Retry-After"));
  response_free(&response);

  /* The page's own calls carry its origin, which names the Host it talks to. */
  char same_origin[96];
  snprintf(same_origin, sizeof same_origin, "Origin: http://127.0.0.1:%u", (unsigned) fixture->port);
  response = ask_with(fixture, "{\"text\":\"hi\"}", same_origin);
  assert_int_equal(response.status, 202);
  assert_null(header(&response, "Access-Control-Allow-Origin", value, sizeof value));
  response_free(&response);
  /* No Origin at all: not a browser, nothing to check. */
  response = ask_with(fixture, "{\"text\":\"hi\"}", NULL);
  assert_int_equal(response.status, 202);
  response_free(&response);
  assert_int_equal(fixture->submits, 3);

  /* Outside /api the page's files carry no CORS grant. */
  response = perform(fixture, &(request_spec_t) {.path = "/app.js", .headers = {"Origin: " ALLOWED_ORIGIN}});
  assert_int_equal(response.status, 200);
  assert_null(header(&response, "Access-Control-Allow-Origin", value, sizeof value));
  response_free(&response);
}

static void test_cors_default_same_origin_only(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  start(fixture, &config, "http");
  response_t response = ask_with(fixture, "{\"text\":\"hi\"}", "Origin: " ALLOWED_ORIGIN);
  assert_error(&response, 403, "forbidden_origin");
  response = perform(fixture, &(request_spec_t) {.path = "/api/jobs/x",
                                                 .headers = {"Origin: http://localhost:3000"}});
  assert_error(&response, 403, "forbidden_origin");
  assert_int_equal(fixture->submits, 0);
}

/* ---- rate limits -------------------------------------------------------------- */

static void test_rate_limiter_units(void **state)
{
  (void) state;
  assert_null(rate_limiter_new(0, 1, 10));
  rate_limiter_t *limiter = rate_limiter_new(60, 3, 100); /* one a second, bursts of 3 */
  assert_non_null(limiter);
  int64_t t = 1000000;
  for (int i = 0; i < 3; i++)
    assert_int_equal(rate_limiter_take(limiter, "a", t), 0);
  unsigned wait_s = rate_limiter_take(limiter, "a", t);
  assert_true(wait_s >= 1 && wait_s <= 2);
  assert_int_equal(rate_limiter_take(limiter, "b", t), 0); /* another client's own bucket */
  assert_true(rate_limiter_take(limiter, "a", t + 500) > 0);
  assert_int_equal(rate_limiter_take(limiter, "a", t + 1000), 0);
  assert_true(rate_limiter_take(limiter, "a", t + 1000) > 0);
  assert_int_equal(rate_limiter_take(limiter, "a", t + 10000), 0); /* refilled, capped at 3 */
  assert_int_equal(rate_limiter_take(limiter, "a", t + 10000), 0);
  assert_int_equal(rate_limiter_take(limiter, "a", t + 10000), 0);
  assert_true(rate_limiter_take(limiter, "a", t + 10000) > 0);

  /* Bounded memory: a flood of distinct clients never tracks more than the cap,
   * and the most recent client keeps its (spent) bucket. */
  char key[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
    assert_int_equal(rate_limiter_take(limiter, key, t + 10000 + i), 0);
    assert_true(rate_limiter_size(limiter) <= 100);
  }
  assert_int_equal(rate_limiter_take(limiter, "10.0.3.231", t + 11000), 0);
  assert_int_equal(rate_limiter_take(limiter, "10.0.3.231", t + 11000), 0);
  assert_true(rate_limiter_take(limiter, "10.0.3.231", t + 11000) > 0);
  /* Full buckets expire: a minute later idle clients are forgotten. */
  assert_int_equal(rate_limiter_take(limiter, "z", t + 200000), 0);
  assert_int_equal(rate_limiter_size(limiter), 1);
  rate_limiter_destroy(&limiter);
  assert_null(limiter);
}

static void test_client_keys(void **state)
{
  (void) state;
  char key[CLIENT_KEY_MAX];
  struct sockaddr_in v4 = {.sin_family = AF_INET};
  inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
  assert_int_equal(client_key_from_sockaddr((struct sockaddr *) &v4, key), 0);
  assert_string_equal(key, "192.0.2.7");
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
  inet_pton(AF_INET6, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", &v6.sin6_addr);
  assert_int_equal(client_key_from_sockaddr((struct sockaddr *) &v6, key), 0);
  assert_string_equal(key, "2001:db8:1:2::/64");
  inet_pton(AF_INET6, "::ffff:192.0.2.9", &v6.sin6_addr);
  assert_int_equal(client_key_from_sockaddr((struct sockaddr *) &v6, key), 0);
  assert_string_equal(key, "192.0.2.9");
  assert_int_equal(client_key_from_forwarded("198.51.100.1, 203.0.113.5", key), 0);
  assert_string_equal(key, "203.0.113.5");
  assert_int_equal(client_key_from_forwarded("2001:db8::1", key), 0);
  assert_string_equal(key, "2001:db8::/64");
  assert_int_equal(client_key_from_forwarded("198.51.100.1, not-an-ip", key), -1);
  assert_int_equal(client_key_from_forwarded("", key), -1);
  assert_int_equal(client_key_from_forwarded(NULL, key), -1);
}

static void test_rate_limit_http(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  config.submit_per_min = 6;
  config.submit_burst = 3;
  config.poll_per_min = 60;
  config.poll_burst = 5;
  start(fixture, &config, "http");
  char value[64];
  for (int i = 0; i < 3; i++) {
    response_t response = ask_with(fixture, "{\"text\":\"hi\"}", NULL);
    assert_int_equal(response.status, 202);
    response_free(&response);
  }
  /* A proxy header is not trusted unless configured: it cannot dodge the limit. */
  response_t response = ask_with(fixture, "{\"text\":\"hi\"}", "X-Forwarded-For: 203.0.113.9");
  assert_non_null(header(&response, "Retry-After", value, sizeof value));
  long retry_after = strtol(value, NULL, 10);
  assert_true(retry_after >= 1 && retry_after <= 11);
  assert_error(&response, 429, "rate_limited");
  assert_int_equal(fixture->submits, 3);
  /* Polling has its own bucket: a client that may not submit can still poll. */
  for (int i = 0; i < 5; i++) {
    response = get(fixture, "/api/jobs/unknown");
    assert_error(&response, 404, "not_found");
  }
  response = get(fixture, "/api/jobs/unknown");
  assert_non_null(header(&response, "Retry-After", value, sizeof value));
  assert_error(&response, 429, "rate_limited");
  /* The page and media are not rate limited. */
  response = get(fixture, "/app.js");
  assert_int_equal(response.status, 200);
  response_free(&response);
}

static void test_rate_limit_behind_proxy(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  config.submit_per_min = 1;
  config.submit_burst = 1;
  config.trust_forwarded_for = true;
  start(fixture, &config, "http");
  response_t response = ask_with(fixture, "{\"text\":\"hi\"}", "X-Forwarded-For: 203.0.113.1");
  assert_int_equal(response.status, 202);
  response_free(&response);
  response = ask_with(fixture, "{\"text\":\"hi\"}", "X-Forwarded-For: 203.0.113.1");
  assert_error(&response, 429, "rate_limited");
  /* The nearest proxy's entry is the last one; what the client wrote before it is not trusted. */
  response = ask_with(fixture, "{\"text\":\"hi\"}", "X-Forwarded-For: 203.0.113.1, 203.0.113.2");
  assert_int_equal(response.status, 202);
  response_free(&response);
  response = ask_with(fixture, "{\"text\":\"hi\"}", "X-Forwarded-For: 203.0.113.7, 203.0.113.2");
  assert_error(&response, 429, "rate_limited");
}

/* ---- slow clients, vanishing clients ------------------------------------------ */

static void test_slowloris_headers(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  config.header_timeout_s = 1;
  config.body_timeout_s = 2;
  config.connection_timeout_s = 30; /* idle timeout: never reached by a trickle */
  start(fixture, &config, "http");
  long rss_before = rss_kb();
  enum { SLOW_CLIENTS = 20 };
  int fds[SLOW_CLIENTS];
  for (int i = 0; i < SLOW_CLIENTS; i++) {
    fds[i] = connect_raw(fixture);
    const char *start_of_request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    assert_true(send(fds[i], start_of_request, strlen(start_of_request), MSG_NOSIGNAL) > 0);
  }
  assert_int_equal(settle_connections(fixture, SLOW_CLIENTS), SLOW_CLIENTS);
  /* Trickle one byte per client every 100 ms: never idle, never done. */
  int64_t started = clock_mono_ms();
  int cut = 0;
  bool is_cut[SLOW_CLIENTS] = {false};
  while (cut < SLOW_CLIENTS && clock_mono_ms() - started < 8000) {
    for (int i = 0; i < SLOW_CLIENTS; i++) {
      if (is_cut[i])
        continue;
      if (send(fds[i], "a", 1, MSG_NOSIGNAL) != 1 || closed_by_server(fds[i], 0)) {
        is_cut[i] = true;
        cut++;
      }
    }
    usleep(100000);
  }
  printf("# %d slow clients cut after %lld ms (header deadline 1 s)\n", cut,
         (long long) (clock_mono_ms() - started));
  assert_int_equal(cut, SLOW_CLIENTS);
  /* Meanwhile, and after, ordinary clients are served. */
  response_t response = get(fixture, "/app.js");
  assert_int_equal(response.status, 200);
  response_free(&response);
  for (int i = 0; i < SLOW_CLIENTS; i++)
    close(fds[i]);
  assert_true(http_api_slow_clients_cut(fixture->api) >= SLOW_CLIENTS);
  assert_int_equal(settle_connections(fixture, 0), 0);
  printf("# RSS %ld kB before, %ld kB after the slow clients\n", rss_before, rss_kb());
}

static void test_slow_body(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  config.header_timeout_s = 5;
  config.body_timeout_s = 1;
  start(fixture, &config, "http");
  int fd = connect_raw(fixture);
  const char *head = "POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: 1000\r\n\r\n{\"text\":\"";
  assert_true(send(fd, head, strlen(head), MSG_NOSIGNAL) > 0);
  int64_t started = clock_mono_ms();
  bool cut = false;
  while (!cut && clock_mono_ms() - started < 6000) {
    cut = send(fd, "a", 1, MSG_NOSIGNAL) != 1 || closed_by_server(fd, 100);
  }
  printf("# slow body cut after %lld ms (body deadline 1 s)\n",
         (long long) (clock_mono_ms() - started));
  assert_true(cut);
  close(fd);
  assert_int_equal(fixture->submits, 0);
  assert_int_equal(settle_connections(fixture, 0), 0);
  /* A whole request sent at once is unaffected. */
  response_t response = ask_with(fixture, "{\"text\":\"hi\"}", NULL);
  assert_int_equal(response.status, 202);
  response_free(&response);
}

static void test_vanish_mid_upload(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  config.header_timeout_s = 10;
  config.body_timeout_s = 30;
  start(fixture, &config, "http");
  static uint8_t chunk[200 * 1024];
  memcpy(chunk, (const uint8_t[]) {0x1A, 0x45, 0xDF, 0xA3}, 4);
  long rss_before = rss_kb();
  for (int i = 0; i < 20; i++) {
    int fd = connect_raw(fixture);
    char head[256];
    snprintf(head, sizeof head,
             "POST /api/complete-flow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/webm\r\n"
             "Content-Length: %d\r\n\r\n", MAX_UPLOAD);
    assert_true(send(fd, head, strlen(head), MSG_NOSIGNAL) > 0);
    assert_int_equal(send(fd, chunk, sizeof chunk, MSG_NOSIGNAL), (ssize_t) sizeof chunk);
    close(fd); /* gone, four fifths of the upload missing */
  }
  int64_t t0 = clock_mono_ms();
  assert_int_equal(settle_connections(fixture, 0), 0);
  printf("# settled in %lld ms\n", (long long) (clock_mono_ms() - t0));
  printf("# RSS %ld kB before, %ld kB after 20 abandoned 1 MB uploads\n", rss_before, rss_kb());
  assert_int_equal(fixture->submits, 0);
  assert_int_equal(job_store_size(fixture->jobs), 0);
  /* Uploads live in memory only: nothing was written anywhere. */
  char media_dir[96];
  snprintf(media_dir, sizeof media_dir, "%s/media", fixture->dir);
  DIR *dir = opendir(media_dir);
  assert_non_null(dir);
  int entries = 0;
  for (struct dirent *entry; (entry = readdir(dir));)
    entries += strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0;
  closedir(dir);
  assert_int_equal(entries, 0);
  response_t response = get(fixture, "/app.js");
  assert_int_equal(response.status, 200);
  response_free(&response);
}

/* ---- hostile input --------------------------------------------------------- */

static void test_huge_headers(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  start(fixture, &config, "http");
  /* Past our limit but within the connection's memory: our JSON 431. */
  char *big = malloc(16 * 1024 + 32);
  assert_non_null(big);
  int length = snprintf(big, 32, "X-Big: ");
  memset(big + length, 'a', 16 * 1024);
  big[length + 16 * 1024] = '\0';
  response_t response = perform(fixture, &(request_spec_t) {.path = "/api/jobs/x", .headers = {big}});
  assert_error(&response, 431, "headers_too_large");
  free(big);
  /* Many small headers add up the same way. */
  int fd = connect_raw(fixture);
  char line[64];
  const char *request_line = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  assert_true(send(fd, request_line, strlen(request_line), MSG_NOSIGNAL) > 0);
  for (int i = 0; i < 300; i++) {
    snprintf(line, sizeof line, "X-Header-%03d: abcdefghijklmnopqrst\r\n", i);
    assert_true(send(fd, line, strlen(line), MSG_NOSIGNAL) > 0);
  }
  assert_true(send(fd, "\r\n", 2, MSG_NOSIGNAL) == 2);
  char reply[4096] = "";
  size_t got = 0;
  ssize_t n;
  while (!strstr(reply, "}}") && got < sizeof reply - 1 &&
         (n = recv(fd, reply + got, sizeof reply - 1 - got, 0)) > 0) {
    got += (size_t) n;
    reply[got] = '\0';
  }
  if (!strstr(reply, "headers_too_large"))
    fprintf(stderr, "reply: %s\n", reply);
  assert_non_null(strstr(reply, " 431 "));
  assert_non_null(strstr(reply, "headers_too_large"));
  close(fd);
  /* Far past the connection's memory (1 MB): libmicrohttpd refuses it itself;
   * no crash, and the server goes on. */
  fd = connect_raw(fixture);
  assert_true(send(fd, request_line, strlen(request_line), MSG_NOSIGNAL) > 0);
  static char filler[64 * 1024];
  memset(filler, 'b', sizeof filler);
  assert_true(send(fd, "X-Huge: ", 8, MSG_NOSIGNAL) == 8);
  size_t sent = 0;
  while (sent < 1024 * 1024) {
    ssize_t w = send(fd, filler, sizeof filler, MSG_NOSIGNAL);
    if (w <= 0)
      break;
    sent += (size_t) w;
  }
  n = recv(fd, reply, 512, 0);
  if (n > 0) {
    reply[n] = '\0';
    assert_non_null(strstr(reply, " 431 "));
  }
  printf("# 1 MB header: %zu bytes sent before the server answered or closed\n", sent);
  close(fd);
  response = get(fixture, "/app.js");
  assert_int_equal(response.status, 200);
  response_free(&response);
}

static void test_header_injection(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  start(fixture, &config, "http");
  static const uint8_t webm[] = {0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81};
  const char *paths[] = {
    "/api/complete-flow?session_id=abc%0d%0aSet-Cookie:%20injected=1",
    "/api/complete-flow?session_id=abc%0aLocation:%20https://evil.example",
    "/api/complete-flow?session_id=..%2f..%2fetc",
    "/api/complete-flow?session_id=a%20b",
  };
  char value[256];
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    response_t response = perform(fixture, &(request_spec_t) {.path = paths[i],
      .content_type = "audio/webm", .body = webm, .body_size = sizeof webm});
    assert_null(header(&response, "Set-Cookie", value, sizeof value));
    assert_null(header(&response, "Location", value, sizeof value));
    assert_error(&response, 400, "bad_request");
  }
  response_t response = perform(fixture, &(request_spec_t) {.path = "/api/complete-flow",
    .content_type = "audio/webm", .body = webm, .body_size = sizeof webm,
    .headers = {"X-Session-Id: abc;Set-Cookie=1"}});
  assert_error(&response, 400, "bad_request");
  response = ask_with(fixture, "{\"text\":\"hi\",\"session_id\":\"x\\r\\nSet-Cookie: y=1\"}", NULL);
  assert_null(header(&response, "Set-Cookie", value, sizeof value));
  assert_error(&response, 400, "bad_request");
  response = get(fixture, "/api/sessions/abc%0d%0aSet-Cookie:%20x=1");
  assert_null(header(&response, "Set-Cookie", value, sizeof value));
  assert_error(&response, 404, "not_found");
  response = get(fixture, "/api/jobs/abc%0d%0aX-Injected:%201");
  assert_null(header(&response, "X-Injected", value, sizeof value));
  assert_error(&response, 404, "not_found");
  assert_int_equal(fixture->submits, 0);
}

static void test_path_traversal(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  start(fixture, &config, "http");
  /* A media file just outside the media directory, as bait. */
  char bait[128];
  snprintf(bait, sizeof bait, "%s/bait.mp4", fixture->dir);
  FILE *file = fopen(bait, "w");
  assert_non_null(file);
  fputs("BAIT", file);
  fclose(file);
  const char *paths[] = {
    "/media/../bait.mp4", "/media/..%2fbait.mp4", "/media/%2e%2e/bait.mp4",
    "/media/%2e%2e%2fbait.mp4", "/media/.%2e/bait.mp4", "/media//bait.mp4",
    "/media/..\\bait.mp4", "/media/..%5cbait.mp4", "/media/%2e%2e%5cbait.mp4",
    "/media/..%252fbait.mp4", "/media/%00bait.mp4", "/media/bait.mp4%00.mp4",
    "/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd",
    "//etc/passwd", "/..\\..\\..\\etc\\passwd", "/%2e%2e%5c%2e%2e%5cetc%5cpasswd",
    "/static/../../etc/passwd", "/index.html/../../../etc/passwd", "/.%2e/.%2e/etc/passwd",
    "/%252e%252e/etc/passwd", "/.env", "/.git/config", "/meson.build", "/app.js/..",
  };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    response_t response = get(fixture, paths[i]);
    if (response.status != 404)
      fprintf(stderr, "%s answered %ld\n", paths[i], response.status);
    assert_null(strstr(response.body ? response.body : "", "BAIT"));
    assert_null(strstr(response.body ? response.body : "", "root:"));
    assert_error(&response, 404, "not_found");
  }
}

static void test_non_utf8_text(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  start(fixture, &config, "http");
  const char *bodies[] = {
    "{\"text\":\"caf\xff\xfe\"}",          /* bytes that never occur in UTF-8 */
    "{\"text\":\"\xc0\xaf etc\"}",         /* overlong '/' */
    "{\"text\":\"\xed\xa0\x80 surrogate\"}", /* an encoded UTF-16 surrogate */
    "{\"text\":\"cut \xe2\x82\"}",         /* truncated sequence */
  };
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
    response_t response = ask_with(fixture, bodies[i], NULL);
    assert_error(&response, 422, "unprocessable");
  }
  response_t response = ask_with(fixture, "{\"text\":\"caf\xc3\xa9 \xe2\x82\xac\"}", NULL);
  assert_int_equal(response.status, 202);
  response_free(&response);
  assert_int_equal(fixture->submits, 1);
}

/* ---- audio: empty and 10-hour claims ------------------------------------------- */

static void put_le32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t) v, p[1] = (uint8_t) (v >> 8), p[2] = (uint8_t) (v >> 16), p[3] = (uint8_t) (v >> 24);
}

/* A 16 kHz mono 16-bit WAV header claiming `claimed_bytes` of samples, followed
 * by `real_bytes` of silence. The caller frees it. */
static uint8_t *make_wav(uint32_t claimed_bytes, size_t real_bytes, size_t *size)
{
  *size = 44 + real_bytes;
  uint8_t *wav = calloc(1, *size);
  assert_non_null(wav);
  memcpy(wav, "RIFF", 4);
  put_le32(wav + 4, 36 + claimed_bytes);
  memcpy(wav + 8, "WAVEfmt ", 8);
  put_le32(wav + 16, 16);
  wav[20] = 1, wav[22] = 1;                  /* PCM, mono */
  put_le32(wav + 24, 16000);                 /* sample rate */
  put_le32(wav + 28, 32000);                 /* byte rate */
  wav[32] = 2, wav[34] = 16;                 /* block align, bits */
  memcpy(wav + 36, "data", 4);
  put_le32(wav + 40, claimed_bytes);
  return wav;
}

/* EBML header + Segment (unknown size) + Info { TimecodeScale 1 ms, Duration
 * `duration_ms` as a double } + the start of a Cluster. */
static size_t make_webm(double duration_ms, bool with_duration, uint8_t *out)
{
  static const uint8_t head[] = {
    0x1A, 0x45, 0xDF, 0xA3, 0x84, 0x42, 0x82, 0x81, 0x77,      /* EBML { DocType "w" } */
    0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* Segment, unknown */
    0xEC, 0x82, 0x00, 0x00,                                      /* Void */
  };
  size_t n = 0;
  memcpy(out, head, sizeof head);
  n += sizeof head;
  uint8_t info_body[32];
  size_t body = 0;
  const uint8_t scale[] = {0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40}; /* 1,000,000 ns */
  memcpy(info_body, scale, sizeof scale);
  body += sizeof scale;
  if (with_duration) {
    info_body[body++] = 0x44, info_body[body++] = 0x89, info_body[body++] = 0x88;
    uint64_t bits;
    memcpy(&bits, &duration_ms, sizeof bits);
    for (int i = 7; i >= 0; i--)
      info_body[body++] = (uint8_t) (bits >> (8 * i));
  }
  out[n++] = 0x15, out[n++] = 0x49, out[n++] = 0xA9, out[n++] = 0x66;
  out[n++] = (uint8_t) (0x80 | body);
  memcpy(out + n, info_body, body);
  n += body;
  const uint8_t cluster[] = {0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  memcpy(out + n, cluster, sizeof cluster);
  return n + sizeof cluster;
}

static void test_audio_header_units(void **state)
{
  (void) state;
  size_t size;
  uint8_t *wav = make_wav(32000 * 3600 * 10, 0, &size);
  assert_int_equal(audio_header_claimed_ms(AUDIO_WAV, wav, size), 36000000);
  put_le32(wav + 40, UINT32_MAX); /* streaming writers: size unknown */
  assert_int_equal(audio_header_claimed_ms(AUDIO_WAV, wav, size), -1);
  put_le32(wav + 28, 0);
  put_le32(wav + 40, 1000);
  assert_int_equal(audio_header_claimed_ms(AUDIO_WAV, wav, size), -1);
  free(wav);
  uint8_t webm[128];
  size_t webm_size = make_webm(36e6, true, webm);
  assert_int_equal(audio_header_claimed_ms(AUDIO_WEBM, webm, webm_size), 36000000);
  /* Every truncation of every header reads nothing past its end (ASan watches). */
  for (size_t cut = 0; cut < webm_size; cut++) {
    uint8_t *copy = malloc(cut ? cut : 1);
    assert_non_null(copy);
    memcpy(copy, webm, cut);
    int64_t claimed = audio_header_claimed_ms(AUDIO_WEBM, copy, cut);
    assert_true(claimed == -1 || claimed == 36000000);
    free(copy);
  }
  wav = make_wav(32000, 0, &size);
  for (size_t cut = 0; cut < size; cut++) {
    uint8_t *copy = malloc(cut ? cut : 1);
    assert_non_null(copy);
    memcpy(copy, wav, cut);
    assert_true(audio_header_claimed_ms(AUDIO_WAV, copy, cut) <= 1000);
    free(copy);
  }
  free(wav);
  webm_size = make_webm(0, false, webm); /* MediaRecorder's live WebM: no Duration */
  assert_int_equal(audio_header_claimed_ms(AUDIO_WEBM, webm, webm_size), -1);
  webm_size = make_webm(1e300, true, webm); /* absurd claims clamp, no overflow */
  assert_true(audio_header_claimed_ms(AUDIO_WEBM, webm, webm_size) > 36000000);
  assert_int_equal(audio_header_claimed_ms(AUDIO_OGG, webm, webm_size), -1);
  assert_int_equal(audio_header_claimed_ms(AUDIO_WAV, NULL, 0), -1);
}

static void test_audio_claims_http(void **state)
{
  fixture_t *fixture = *state;
  http_api_config_t config = base_config(fixture);
  start(fixture, &config, "http");
  /* Zero-length audio: raw, and an empty multipart part. */
  response_t response = perform(fixture, &(request_spec_t) {.path = "/api/complete-flow",
    .content_type = "audio/webm", .body = "", .body_size = 0});
  assert_error(&response, 400, "bad_request");
  const char *empty_part = "--XyZ\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.webm\"\r\n"
                           "Content-Type: audio/webm\r\n\r\n\r\n--XyZ--\r\n";
  response = perform(fixture, &(request_spec_t) {.path = "/api/complete-flow",
    .content_type = "multipart/form-data; boundary=XyZ", .body = empty_part,
    .body_size = strlen(empty_part)});
  assert_error(&response, 400, "bad_request");

  size_t size;
  uint8_t *wav = make_wav(32000u * 3600 * 10, 32000, &size); /* says 10 h, holds 1 s */
  response = perform(fixture, &(request_spec_t) {.path = "/api/complete-flow",
    .content_type = "audio/wav", .body = wav, .body_size = size});
  assert_error(&response, 422, "unprocessable");
  free(wav);
  wav = make_wav(32000, 32000, &size); /* an honest second */
  response = perform(fixture, &(request_spec_t) {.path = "/api/complete-flow",
    .content_type = "audio/wav", .body = wav, .body_size = size});
  assert_int_equal(response.status, 202);
  response_free(&response);
  free(wav);

  uint8_t webm[128];
  size_t webm_size = make_webm(36e6, true, webm);
  response = perform(fixture, &(request_spec_t) {.path = "/api/complete-flow",
    .content_type = "audio/webm;codecs=opus", .body = webm, .body_size = webm_size});
  assert_error(&response, 422, "unprocessable");
  webm_size = make_webm(2500, true, webm);
  response = perform(fixture, &(request_spec_t) {.path = "/api/complete-flow",
    .content_type = "audio/webm;codecs=opus", .body = webm, .body_size = webm_size});
  assert_int_equal(response.status, 202);
  response_free(&response);
  assert_int_equal(fixture->submits, 2);
}

/* ---- full disk for media ---------------------------------------------------- */

static int count_files(const char *path)
{
  DIR *dir = opendir(path);
  if (!dir)
    return -1;
  int count = 0;
  for (struct dirent *entry; (entry = readdir(dir));)
    count += strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0;
  closedir(dir);
  return count;
}

static void test_media_disk_full(void **state)
{
  fixture_t *fixture = *state;
  char mount_dir[96];
  snprintf(mount_dir, sizeof mount_dir, "%s/tiny", fixture->dir);
  assert_int_equal(mkdir(mount_dir, 0700), 0);
  if (geteuid() != 0 || mount("tmpfs", mount_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") != 0) {
    printf("# cannot mount a 1 MB tmpfs here (%s): skipped\n", strerror(errno));
    skip();
  }
  media_store_t *media = media_store_new(mount_dir, 3600);
  assert_non_null(media);
  status_sink_t sink = {.jobs = fixture->jobs, .sessions = fixture->sessions, .media = media,
                        .metrics = fixture->metrics, .pipeline = &fixture->pipeline};
  int64_t now = clock_wall_ms();
  assert_int_equal(job_store_create(fixture->jobs, "fulljob", "sess", "stt", NULL, now), 0);
  size_t video_size = 2 * 1024 * 1024; /* twice the disk */
  uint8_t *video = calloc(1, video_size);
  assert_non_null(video);
  Avatar__Status status = AVATAR__STATUS__INIT;
  status.job_id = "fulljob";
  status.stage = "avatar";
  status.state = AVATAR__STATE__DONE;
  status.reply = "We're open nine to six.";
  status.video.data = video;
  status.video.len = video_size;
  status.video_mime = "video/mp4";
  size_t packed_size = avatar__status__get_packed_size(&status);
  uint8_t *packed = malloc(packed_size);
  assert_non_null(packed);
  avatar__status__pack(&status, packed);
  int released_before = fixture->released;
  assert_int_equal(status_sink_apply(&sink, packed, packed_size), 0);
  free(packed);
  free(video);

  cJSON *job = job_store_render(fixture->jobs, "fulljob", clock_wall_ms());
  assert_non_null(job);
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(job, "state")->valuestring, "failed");
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(job, "error");
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(error, "code")->valuestring, "storage_full");
  assert_null(cJSON_GetObjectItemCaseSensitive(job, "video_url"));
  cJSON_Delete(job);
  assert_int_equal(fixture->released, released_before + 1); /* released from the pipeline */
  assert_int_equal(count_files(mount_dir), 0);               /* no temporary file left */
  /* A small file still fits: the store works again once there is room. */
  assert_int_equal(media_store_write(media, "small.mp4", (const uint8_t *) "ok", 2), 0);
  assert_int_equal(count_files(mount_dir), 1);
  media_store_destroy(&media);
  assert_int_equal(umount(mount_dir), 0);
}

/* ---- TLS -------------------------------------------------------------------- */

/* Writes a fresh self-signed P-256 certificate for 127.0.0.1 and its key. */
static void make_certificate(const char *cert_path, const char *key_path)
{
  EVP_PKEY *key = EVP_EC_gen("P-256");
  assert_non_null(key);
  X509 *cert = X509_new();
  assert_non_null(cert);
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME *name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) "127.0.0.1", -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
  X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
  assert_non_null(san);
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
  FILE *file = fopen(cert_path, "w");
  assert_non_null(file);
  assert_int_equal(PEM_write_X509(file, cert), 1);
  fclose(file);
  file = fopen(key_path, "w");
  assert_non_null(file);
  assert_int_equal(PEM_write_PrivateKey(file, key, NULL, NULL, 0, NULL, NULL), 1);
  fclose(file);
  X509_free(cert);
  EVP_PKEY_free(key);
}

static void test_tls(void **state)
{
  fixture_t *fixture = *state;
  char cert_path[96], key_path[96];
  snprintf(cert_path, sizeof cert_path, "%s/cert.pem", fixture->dir);
  snprintf(key_path, sizeof key_path, "%s/key.pem", fixture->dir);
  make_certificate(cert_path, key_path);

  http_api_config_t config = base_config(fixture);
  config.tls_cert_file = cert_path; /* a certificate without its key is refused */
  assert_null(http_api_start(&config));
  config.tls_key_file = "/nonexistent/key.pem";
  assert_null(http_api_start(&config));
  config.tls_key_file = key_path;
  config.api_token = TOKEN;
  config.header_timeout_s = 5;
  start(fixture, &config, "https");

  response_t response = perform(fixture, &(request_spec_t) {.path = "/api/jobs/x",
    .ca_file = cert_path, .headers = {"Authorization: Bearer " TOKEN}});
  assert_int_equal(response.curl_code, CURLE_OK);
  assert_security_headers(&response, true);
  assert_error(&response, 404, "not_found");
  response = perform(fixture, &(request_spec_t) {.path = "/app.js", .ca_file = cert_path});
  assert_int_equal(response.status, 200);
  response_free(&response);
  /* The login cookie is Secure over HTTPS. */
  CURL *curl = curl_easy_init();
  char *escaped = curl_easy_escape(curl, TOKEN, 0);
  char form[256];
  snprintf(form, sizeof form, "token=%s", escaped);
  curl_free(escaped);
  curl_easy_cleanup(curl);
  response = perform(fixture, &(request_spec_t) {.path = "/login", .ca_file = cert_path,
    .content_type = "application/x-www-form-urlencoded", .body = form, .body_size = strlen(form)});
  char value[256];
  assert_non_null(header(&response, "Set-Cookie", value, sizeof value));
  assert_non_null(strstr(value, "; Secure"));
  response_free(&response);
  /* Plain HTTP to the TLS port gets no answer. */
  char plain_url[64];
  snprintf(plain_url, sizeof plain_url, "%s", fixture->base_url);
  snprintf(fixture->base_url, sizeof fixture->base_url, "http://127.0.0.1:%u", (unsigned) fixture->port);
  response = get(fixture, "/app.js");
  assert_int_not_equal(response.status, 200);
  response_free(&response);
  snprintf(fixture->base_url, sizeof fixture->base_url, "%s", plain_url);
  assert_int_equal(settle_connections(fixture, 0), 0);
}

int main(void)
{
  curl_global_init(CURL_GLOBAL_ALL);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_token_units),
    cmocka_unit_test(test_origin_units),
    cmocka_unit_test(test_rate_limiter_units),
    cmocka_unit_test(test_client_keys),
    cmocka_unit_test(test_audio_header_units),
    cmocka_unit_test_setup_teardown(test_security_headers, setup, teardown),
    cmocka_unit_test_setup_teardown(test_api_token, setup, teardown),
    cmocka_unit_test_setup_teardown(test_no_login_without_token, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cors, setup, teardown),
    cmocka_unit_test_setup_teardown(test_cors_default_same_origin_only, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rate_limit_http, setup, teardown),
    cmocka_unit_test_setup_teardown(test_rate_limit_behind_proxy, setup, teardown),
    cmocka_unit_test_setup_teardown(test_slowloris_headers, setup, teardown),
    cmocka_unit_test_setup_teardown(test_slow_body, setup, teardown),
    cmocka_unit_test_setup_teardown(test_vanish_mid_upload, setup, teardown),
    cmocka_unit_test_setup_teardown(test_huge_headers, setup, teardown),
    cmocka_unit_test_setup_teardown(test_header_injection, setup, teardown),
    cmocka_unit_test_setup_teardown(test_path_traversal, setup, teardown),
    cmocka_unit_test_setup_teardown(test_non_utf8_text, setup, teardown),
    cmocka_unit_test_setup_teardown(test_audio_claims_http, setup, teardown),
    cmocka_unit_test_setup_teardown(test_media_disk_full, setup, teardown),
    cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return failed;
}
