/* http_client: libcurl behind http_client.h. One easy handle per call, reused
 * across its retries; connections and DNS answers are shared by every thread of
 * the process through one curl share, so a busy worker keeps its TLS sessions
 * to the provider alive instead of paying a handshake per job. */
#include "http_client.h"

#include "counters.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_RESPONSE_BYTES (16u * 1024 * 1024)
#define DEFAULT_MAX_BACKOFF_MS 8000
/* First back-off ceiling; doubles per retry up to max_backoff_ms. */
#define BASE_BACKOFF_MS 200
/* A retry needs at least this much of the budget left to be worth sending. */
#define MIN_ATTEMPT_MS 50
/* Secrets shorter than this are not masked: "sse" in "alt=sse" is no secret,
 * and masking short strings would garble ordinary words in messages. */
#define MIN_SECRET_LEN 8

/* ---------------------------------------------------------------------------
 * Process-wide libcurl state */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;
static CURLSH *share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *arg)
{
  (void) handle, (void) access, (void) arg;
  pthread_mutex_lock(&share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *arg)
{
  (void) handle, (void) arg;
  pthread_mutex_unlock(&share_locks[data]);
}

static void global_init(void)
{
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (global_rc != CURLE_OK)
    return;
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_init(&share_locks[i], NULL);
  /* Without the share every call still works, only without connection reuse. */
  share = curl_share_init();
  if (share && (curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
                curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
                curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
                curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK)) {
    curl_share_cleanup(share);
    share = NULL;
  }
}

/* ---------------------------------------------------------------------------
 * Server-Sent Events */

struct http_sse {
  http_sse_fn *fn;
  void *arg;
  size_t max_line;
  char *line;             /* the line being read, without its end */
  size_t line_len, line_cap;
  bool after_cr;          /* last byte was CR: a following LF belongs to it */
  bool seen_first_byte;   /* a UTF-8 BOM is only skipped at the very start */
  size_t bom_matched;
  char *data;             /* this event's data lines, each followed by "\n" */
  size_t data_len, data_cap;
  bool has_data;
  char event[64];
  bool stopped;
  size_t events;
};

http_sse_t *http_sse_new(http_sse_fn *fn, void *arg, size_t max_line)
{
  http_sse_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->fn = fn;
  self->arg = arg;
  self->max_line = max_line ? max_line : DEFAULT_MAX_RESPONSE_BYTES;
  return self;
}

void http_sse_destroy(http_sse_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  free((*self_p)->line);
  free((*self_p)->data);
  free(*self_p);
  *self_p = NULL;
}

size_t http_sse_events(const http_sse_t *self)
{
  return self->events;
}

/* Makes room for `extra` more bytes plus a NUL in a growable buffer. */
static int reserve(char **buf, size_t *cap, size_t len, size_t extra)
{
  if (len + extra + 1 <= *cap)
    return 0;
  size_t want = *cap ? *cap : 256;
  while (want < len + extra + 1)
    want *= 2;
  char *grown = realloc(*buf, want);
  if (!grown)
    return -1;
  *buf = grown;
  *cap = want;
  return 0;
}

static int deliver(http_sse_t *self, const char *event, const char *data, size_t size)
{
  self->events++;
  if (!self->fn(self->arg, event, data, size)) {
    self->stopped = true;
    return 1;
  }
  return 0;
}

/* A blank line ends the event: deliver its data (the last "\n" dropped). */
static int dispatch(http_sse_t *self)
{
  int rc = 0;
  if (self->has_data) {
    self->data_len--;
    self->data[self->data_len] = '\0';
    rc = deliver(self, self->event[0] ? self->event : NULL, self->data, self->data_len);
  }
  self->data_len = 0;
  self->has_data = false;
  self->event[0] = '\0';
  return rc;
}

static int process_line(http_sse_t *self)
{
  const char *line = self->line ? self->line : "";
  size_t len = self->line_len;
  if (len == 0)
    return dispatch(self);
  if (line[0] == ':')
    return 0;
  const char *colon = memchr(line, ':', len);
  size_t name_len = colon ? (size_t) (colon - line) : len;
  const char *value = colon ? colon + 1 : line + len;
  size_t value_len = (size_t) (line + len - value);
  if (value_len && *value == ' ') {
    value++;
    value_len--;
  }
  if (name_len == 4 && !memcmp(line, "data", 4)) {
    if (reserve(&self->data, &self->data_cap, self->data_len, value_len + 1) < 0)
      return -1;
    memcpy(self->data + self->data_len, value, value_len);
    self->data_len += value_len;
    self->data[self->data_len++] = '\n';
    self->data[self->data_len] = '\0';
    self->has_data = true;
  } else if (name_len == 5 && !memcmp(line, "event", 5)) {
    size_t n = value_len < sizeof self->event - 1 ? value_len : sizeof self->event - 1;
    memcpy(self->event, value, n);
    self->event[n] = '\0';
  } else if (name_len == 5 && !memcmp(line, "error", 5)) {
    /* llama.cpp's out-of-band error line: the line buffer holds it NUL-free. */
    char *copy = strndup(value, value_len);
    if (!copy)
      return -1;
    int rc = deliver(self, "error", copy, value_len);
    free(copy);
    return rc;
  }
  return 0;
}

static int end_line(http_sse_t *self)
{
  int rc = process_line(self);
  self->line_len = 0;
  return rc;
}

int http_sse_feed(http_sse_t *self, const char *data, size_t size)
{
  static const char bom[] = "\xEF\xBB\xBF";
  for (size_t i = 0; i < size; i++) {
    if (self->stopped)
      return 1;
    char c = data[i];
    if (!self->seen_first_byte) {
      if (self->bom_matched < 3 && c == bom[self->bom_matched]) {
        if (++self->bom_matched == 3)
          self->seen_first_byte = true;
        continue;
      }
      self->seen_first_byte = true;
      /* A partial BOM was ordinary bytes after all. */
      if (self->bom_matched) {
        if (reserve(&self->line, &self->line_cap, 0, self->bom_matched) < 0)
          return -1;
        memcpy(self->line, bom, self->bom_matched);
        self->line_len = self->bom_matched;
        self->line[self->line_len] = '\0';
      }
    }
    if (c == '\n' && self->after_cr) {
      self->after_cr = false;
      continue;
    }
    self->after_cr = c == '\r';
    if (c == '\r' || c == '\n') {
      int rc = end_line(self);
      if (rc)
        return rc;
      continue;
    }
    if (self->line_len >= self->max_line)
      return -1;
    if (reserve(&self->line, &self->line_cap, self->line_len, 1) < 0)
      return -1;
    self->line[self->line_len++] = c;
    self->line[self->line_len] = '\0';
  }
  return self->stopped ? 1 : 0;
}

int http_sse_finish(http_sse_t *self)
{
  if (self->stopped)
    return 1;
  self->line_len = 0;
  return dispatch(self);
}

/* ---------------------------------------------------------------------------
 * Secrets */

/* Replaces every occurrence of `secret` in `text` by "***" (never longer). */
static void mask(char *text, const char *secret, size_t secret_len)
{
  if (secret_len < MIN_SECRET_LEN)
    return;
  char *at;
  while ((at = memmem(text, strlen(text), secret, secret_len)) != NULL) {
    memcpy(at, "***", 3);
    memmove(at + 3, at + secret_len, strlen(at + secret_len) + 1);
  }
}

/* Masks what the request carries that may be secret: every header value (and
 * its last word, the token of "Bearer x" / "Basic x") and every query value. */
static void mask_secrets(char *text, const http_request_t *req)
{
  for (const char *const *h = req->headers; h && *h; h++) {
    const char *value = strchr(*h, ':');
    if (!value)
      continue;
    value += strspn(value + 1, " \t") + 1;
    mask(text, value, strlen(value));
    const char *token = strrchr(value, ' ');
    if (token)
      mask(text, token + 1, strlen(token + 1));
  }
  const char *query = req->url ? strchr(req->url, '?') : NULL;
  while (query && *query) {
    const char *value = strchr(query, '=');
    if (!value)
      break;
    value++;
    size_t len = strcspn(value, "&#");
    mask(text, value, len);
    query = value[len] == '&' ? value + len + 1 : NULL;
  }
}

/* ---------------------------------------------------------------------------
 * Error messages */

/* Copies a message, flattening control characters so it stays one line. */
static void copy_message(char *out, size_t size, const char *text, size_t len)
{
  if (!size)
    return;
  size_t n = 0;
  for (size_t i = 0; i < len && n + 1 < size && text[i]; i++) {
    unsigned char c = (unsigned char) text[i];
    out[n++] = c < 0x20 || c == 0x7f ? ' ' : (char) c;
  }
  out[n] = '\0';
}

static const char *string_item(const cJSON *object, const char *name)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
  return cJSON_IsString(item) && item->valuestring[0] ? item->valuestring : NULL;
}

/* Google's ErrorInfo reason (API_KEY_INVALID, ...), which says more than its message. */
static const char *google_reason(const cJSON *error)
{
  const cJSON *detail;
  cJSON_ArrayForEach(detail, cJSON_GetObjectItemCaseSensitive(error, "details")) {
    const char *type = string_item(detail, "@type");
    if (type && strstr(type, "google.rpc.ErrorInfo"))
      return string_item(detail, "reason");
  }
  return NULL;
}

static void message_from_body(const http_response_t *resp, char *out, size_t size)
{
  const char *body = resp->body ? (const char *) resp->body : "";
  cJSON *root = cJSON_ParseWithLength(body, resp->body_size);
  /* Gemini's non-SSE stream wraps even errors in an array. */
  const cJSON *top = cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : root;
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(top, "error");
  const char *message = NULL, *reason = NULL;
  if (cJSON_IsObject(error)) {
    message = string_item(error, "message");
    reason = google_reason(error);
  } else if (cJSON_IsString(error) && error->valuestring[0]) {
    message = error->valuestring;
  }
  if (!message)
    message = string_item(top, "message");
  if (!message) {
    message = string_item(top, "description");
    reason = string_item(top, "kind");
  }
  if (message) {
    char text[1024];
    if (reason)
      snprintf(text, sizeof text, "%s (%s)", message, reason);
    else
      snprintf(text, sizeof text, "%s", message);
    copy_message(out, size, text, strlen(text));
  } else if (resp->body_size) {
    copy_message(out, size, body, resp->body_size);
  } else {
    snprintf(out, size, "HTTP %ld with an empty body", resp->status);
  }
  cJSON_Delete(root);
}

void http_error_message(const http_response_t *resp, char *out, size_t size)
{
  if (!size)
    return;
  if (resp->error_message[0])
    snprintf(out, size, "%s", resp->error_message);
  else
    message_from_body(resp, out, size);
}

/* ---------------------------------------------------------------------------
 * One attempt */

typedef struct {
  const http_request_t *req;
  CURL *curl;
  size_t max_bytes;
  size_t received;        /* bytes of this attempt, body or stream */
  uint8_t *body;
  size_t body_len, body_cap;
  http_sse_t *sse;        /* set once a 2xx event stream started */
  bool decided;           /* first write seen: body or stream chosen */
  bool too_large;
  bool stopped;           /* the event callback asked to stop */
  bool sse_failed;        /* unparseable stream (line too long, no memory) */
  bool no_memory;
} transfer_t;

static bool is_event_stream(CURL *curl)
{
  const char *type = NULL;
  return curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type &&
         !strncasecmp(type, "text/event-stream", 17);
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
  transfer_t *t = arg;
  size_t n = size * nmemb;
  if (!t->decided) {
    t->decided = true;
    long status = 0;
    if (t->req->on_event && curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
        status >= 200 && status < 300 && is_event_stream(t->curl)) {
      t->sse = http_sse_new(t->req->on_event, t->req->on_event_arg, t->max_bytes);
      if (!t->sse) {
        t->no_memory = true;
        return 0;
      }
    }
  }
  if (n > t->max_bytes - t->received) {
    t->too_large = true;
    return 0;
  }
  t->received += n;
  if (t->sse) {
    int rc = http_sse_feed(t->sse, data, n);
    if (rc == 1)
      t->stopped = true;
    else if (rc < 0)
      t->sse_failed = true;
    return rc == 0 ? n : 0;
  }
  if (reserve((char **) &t->body, &t->body_cap, t->body_len, n) < 0) {
    t->no_memory = true;
    return 0;
  }
  memcpy(t->body + t->body_len, data, n);
  t->body_len += n;
  t->body[t->body_len] = '\0';
  return n;
}

static void transfer_reset(transfer_t *t)
{
  free(t->body);
  http_sse_destroy(&t->sse);
  const http_request_t *req = t->req;
  CURL *curl = t->curl;
  size_t max_bytes = t->max_bytes;
  memset(t, 0, sizeof *t);
  t->req = req;
  t->curl = curl;
  t->max_bytes = max_bytes;
}

static bool is_retryable_status(long status)
{
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/* Google's RetryInfo.retryDelay ("27s", "1.5s") in ms, or -1. */
static long google_retry_delay_ms(const uint8_t *body, size_t size)
{
  long delay = -1;
  cJSON *root = cJSON_ParseWithLength((const char *) body, size);
  const cJSON *top = cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : root;
  const cJSON *detail;
  cJSON_ArrayForEach(detail, cJSON_GetObjectItemCaseSensitive(
                       cJSON_GetObjectItemCaseSensitive(top, "error"), "details")) {
    const char *type = string_item(detail, "@type");
    const char *value = string_item(detail, "retryDelay");
    if (!type || !strstr(type, "google.rpc.RetryInfo") || !value)
      continue;
    char *end = NULL;
    errno = 0;
    double seconds = strtod(value, &end);
    if (!errno && end != value && *end == 's' && seconds >= 0 && seconds < 86400)
      delay = (long) (seconds * 1000.0);
    break;
  }
  cJSON_Delete(root);
  return delay;
}

static long now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Full jitter (uniform in [0, ceiling]); xorshift seeded per call, so threads
 * need no shared generator. */
static long jitter_ms(uint64_t *state, long ceiling)
{
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *state = x;
  return ceiling > 0 ? (long) (x % (uint64_t) (ceiling + 1)) : 0;
}

/* Exponential back-off with full jitter: uniform in [0, min(cap, base * 2^(n-1))]. */
static long backoff_ms(uint64_t *seed, int attempt, long max_backoff)
{
  long ceiling = BASE_BACKOFF_MS << (attempt < 8 ? attempt - 1 : 7);
  return jitter_ms(seed, ceiling < max_backoff ? ceiling : max_backoff);
}

static struct curl_slist *build_headers(const http_request_t *req, bool *ok)
{
  struct curl_slist *list = NULL, *next;
  char content_type[160];
  *ok = true;
  /* No "Expect: 100-continue" round trip before large bodies. */
  if (!(next = curl_slist_append(list, "Expect:")))
    goto fail;
  list = next;
  if (req->body && req->content_type && !req->parts) {
    snprintf(content_type, sizeof content_type, "Content-Type: %s", req->content_type);
    if (!(next = curl_slist_append(list, content_type)))
      goto fail;
    list = next;
  }
  for (const char *const *h = req->headers; h && *h; h++) {
    if (!(next = curl_slist_append(list, *h)))
      goto fail;
    list = next;
  }
  return list;
fail:
  curl_slist_free_all(list);
  *ok = false;
  return NULL;
}

static curl_mime *build_mime(CURL *curl, const http_request_t *req)
{
  curl_mime *mime = curl_mime_init(curl);
  for (size_t i = 0; mime && i < req->part_count; i++) {
    const http_part_t *p = &req->parts[i];
    curl_mimepart *part = curl_mime_addpart(mime);
    if (!part || curl_mime_name(part, p->name) != CURLE_OK ||
        curl_mime_data(part, (const char *) p->data, p->size) != CURLE_OK ||
        (p->filename && curl_mime_filename(part, p->filename) != CURLE_OK) ||
        (p->content_type && curl_mime_type(part, p->content_type) != CURLE_OK)) {
      curl_mime_free(mime);
      return NULL;
    }
  }
  return mime;
}

/* Sets everything that stays the same across attempts. */
static CURLcode configure(CURL *curl, const http_request_t *req, struct curl_slist *headers,
                          curl_mime *mime, transfer_t *t, char *errbuf)
{
  CURLcode rc = CURLE_OK;
#define SET(opt, val) if (rc == CURLE_OK) rc = curl_easy_setopt(curl, opt, val)
  SET(CURLOPT_URL, req->url);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  /* Never follow redirects: custom headers (x-goog-api-key) would go along to
   * whatever host the redirect names. */
  SET(CURLOPT_FOLLOWLOCATION, 0L);
  SET(CURLOPT_HTTPHEADER, headers);
  SET(CURLOPT_WRITEFUNCTION, on_write);
  SET(CURLOPT_WRITEDATA, t);
  SET(CURLOPT_ERRORBUFFER, errbuf);
  SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) t->max_bytes);
  SET(CURLOPT_USERAGENT, "talking-avatar/0.1");
  if (share)
    SET(CURLOPT_SHARE, share);
  const char *method = req->method ? req->method : "GET";
  if (mime) {
    SET(CURLOPT_MIMEPOST, mime);
  } else if (!strcmp(method, "POST") || req->body) {
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_size);
    SET(CURLOPT_POSTFIELDS, req->body ? (const char *) req->body : "");
  } else {
    SET(CURLOPT_HTTPGET, 1L);
  }
  if (strcmp(method, "GET") && strcmp(method, "POST"))
    SET(CURLOPT_CUSTOMREQUEST, method);
#undef SET
  return rc;
}

static void count(const char *name, const char *backend)
{
  counter_add(name, backend, 1);
}

/* The host[:port] of `url`, for messages (never its path or query). */
static void url_host(const char *url, char *out, size_t size)
{
  const char *start = strstr(url, "://");
  start = start ? start + 3 : url;
  size_t len = strcspn(start, "/?#");
  const char *at = memchr(start, '@', len);
  if (at) {
    len -= (size_t) (at + 1 - start);
    start = at + 1;
  }
  copy_message(out, size, start, len);
}

static void log_retry(const char *backend, int attempt, long status, const char *why, long delay)
{
  cJSON *fields = cJSON_CreateObject();
  if (fields) {
    cJSON_AddStringToObject(fields, "backend", backend);
    cJSON_AddNumberToObject(fields, "attempt", attempt);
    if (status)
      cJSON_AddNumberToObject(fields, "status", (double) status);
    else
      cJSON_AddStringToObject(fields, "transport_error", why);
    cJSON_AddNumberToObject(fields, "delay_ms", (double) delay);
  }
  log_event(LOG_WARN, "backend_retry", fields);
}

int http_send(const http_request_t *req, http_response_t *resp, stage_error_t *err)
{
  memset(resp, 0, sizeof *resp);
  const char *backend = req->backend && *req->backend ? req->backend : "backend";
  if (!req->url || !*req->url)
    return stage_error_set(err, "backend_error", "%s: no URL to call.", backend);
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK)
    return stage_error_set(err, "backend_error", "%s: libcurl failed to initialise: %s",
                           backend, curl_easy_strerror(global_rc));

  long budget = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
  long connect_timeout = req->connect_timeout_ms > 0 ? req->connect_timeout_ms
                                                     : DEFAULT_CONNECT_TIMEOUT_MS;
  long max_backoff = req->max_backoff_ms > 0 ? req->max_backoff_ms : DEFAULT_MAX_BACKOFF_MS;
  int max_attempts = req->max_attempts > 0 ? req->max_attempts : 1;
  long deadline = now_ms() + budget;
  struct timespec seed_time;
  clock_gettime(CLOCK_REALTIME, &seed_time);
  uint64_t seed = ((uint64_t) seed_time.tv_nsec << 20) ^ (uint64_t) (uintptr_t) &seed_time ^
                  (uint64_t) seed_time.tv_sec;
  seed = seed ? seed : 88172645463325252ull;

  char errbuf[CURL_ERROR_SIZE] = "";
  char host[128];
  url_host(req->url, host, sizeof host);
  transfer_t t = {.req = req, .max_bytes = req->max_response_bytes ? req->max_response_bytes
                                                                   : DEFAULT_MAX_RESPONSE_BYTES};
  bool headers_ok = false;
  struct curl_slist *headers = build_headers(req, &headers_ok);
  t.curl = headers_ok ? curl_easy_init() : NULL;
  curl_mime *mime = t.curl && req->parts ? build_mime(t.curl, req) : NULL;
  if (!t.curl || (req->parts && !mime) ||
      configure(t.curl, req, headers, mime, &t, errbuf) != CURLE_OK) {
    curl_mime_free(mime);
    curl_easy_cleanup(t.curl);
    curl_slist_free_all(headers);
    return stage_error_set(err, "backend_error", "%s: could not prepare the request.", backend);
  }

  int rc = -1;
  for (int attempt = 1;; attempt++) {
    long remaining = deadline - now_ms();
    transfer_reset(&t);
    errbuf[0] = '\0';
    curl_easy_setopt(t.curl, CURLOPT_TIMEOUT_MS, remaining > 1 ? remaining : 1L);
    curl_easy_setopt(t.curl, CURLOPT_CONNECTTIMEOUT_MS,
                     connect_timeout < remaining ? connect_timeout : (remaining > 1 ? remaining : 1L));
    count("backend_requests", backend);
    resp->attempts = attempt;
    CURLcode code = curl_easy_perform(t.curl);
    bool delivered = t.sse && http_sse_events(t.sse) > 0;
    if (code == CURLE_OK && t.sse && http_sse_finish(t.sse) == 1)
      t.stopped = true;

    long status = 0;
    if (curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
      status = 0;
    bool answered = code == CURLE_OK || t.stopped;
    if (t.too_large || code == CURLE_FILESIZE_EXCEEDED) {
      count("backend_errors_transport", backend);
      stage_error_set(err, "backend_error", "%s sent an answer larger than %zu bytes.",
                      backend, t.max_bytes);
      break;
    }
    if (t.no_memory || t.sse_failed) {
      count("backend_errors_transport", backend);
      stage_error_set(err, "backend_error", t.no_memory ? "%s: out of memory reading the answer."
                                                        : "%s sent an unreadable event stream.",
                      backend);
      break;
    }
    if (!answered) {
      count("backend_errors_transport", backend);
      mask_secrets(errbuf, req);
      bool timed_out = code == CURLE_OPERATION_TIMEDOUT;
      if (timed_out)
        stage_error_set(err, "timeout", "%s (%s) did not answer within %ld ms.", backend, host,
                        budget);
      else
        stage_error_set(err, "backend_error", "%s (%s) %s: %s", backend, host,
                        delivered ? "broke off its event stream" : "could not be reached",
                        errbuf[0] ? errbuf : curl_easy_strerror(code));
      long wait = backoff_ms(&seed, attempt, max_backoff);
      if (timed_out || delivered || attempt >= max_attempts ||
          code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL ||
          deadline - now_ms() < wait + MIN_ATTEMPT_MS)
        break;
      count("backend_retries", backend);
      log_retry(backend, attempt, 0, curl_easy_strerror(code), wait);
      sleep_ms(wait);
      continue;
    }

    if (status >= 400 && status < 500)
      count("backend_errors_4xx", backend);
    else if (status >= 500)
      count("backend_errors_5xx", backend);
    if (is_retryable_status(status) && !delivered && attempt < max_attempts) {
      long hint = -1;
      curl_off_t retry_after = -1;
      if (curl_easy_getinfo(t.curl, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
          retry_after > 0)
        hint = retry_after < 86400 ? (long) retry_after * 1000 : 86400000L;
      long google_hint = google_retry_delay_ms(t.body, t.body_len);
      if (google_hint > hint)
        hint = google_hint;
      long wait = hint >= 0 ? hint : backoff_ms(&seed, attempt, max_backoff);
      if (deadline - now_ms() >= wait + MIN_ATTEMPT_MS) {
        count("backend_retries", backend);
        log_retry(backend, attempt, status, NULL, wait);
        sleep_ms(wait);
        continue;
      }
    }
    resp->status = status;
    resp->body = t.body ? t.body : (uint8_t *) strdup("");
    resp->body_size = t.body ? t.body_len : 0;
    t.body = NULL;
    if (!resp->body) {
      stage_error_set(err, "backend_error", "%s: out of memory reading the answer.", backend);
      break;
    }
    const char *type = NULL;
    if (curl_easy_getinfo(t.curl, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type)
      snprintf(resp->content_type, sizeof resp->content_type, "%s", type);
    if (status < 200 || status >= 300) {
      message_from_body(resp, resp->error_message, sizeof resp->error_message);
      mask_secrets(resp->error_message, req);
    }
    rc = 0;
    break;
  }
  transfer_reset(&t);
  curl_mime_free(mime);
  curl_easy_cleanup(t.curl);
  curl_slist_free_all(headers);
  if (rc < 0) {
    int attempts = resp->attempts;
    http_response_release(resp);
    resp->attempts = attempts;
  }
  return rc;
}

void http_response_release(http_response_t *resp)
{
  if (!resp)
    return;
  free(resp->body);
  memset(resp, 0, sizeof *resp);
}
