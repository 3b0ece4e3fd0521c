/* fake_http: the libmicrohttpd server under every fake remote API (see fake_http.h). */
#include "fake_http.h"

#include <microhttpd.h>
#include <openssl/evp.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define FAKE_MAX_BODY (64u << 20)
#define FAKE_MAX_HEADERS 8
#define FAKE_MAX_OUTCOMES 64

typedef struct {
  char *pattern;
  char method[16];
  fake_handler_fn *handler;
} route_t;

typedef struct {
  char route[128];   /* "" = any route */
  char word[64];
} outcome_t;

struct fake_server {
  struct MHD_Daemon *daemon;
  uint16_t port;
  atomic_bool stopping;
  unsigned slow_ms;
  route_t *routes;
  size_t route_count;
  pthread_mutex_t lock;        /* records and outcomes */
  pthread_mutex_t state_lock;  /* the fake's own state (fake_server_lock) */
  fake_request_t **requests;
  size_t request_count;
  size_t request_capacity;
  outcome_t outcomes[FAKE_MAX_OUTCOMES];
  size_t outcome_count;
  void *state;
  void (*free_state)(void *);
};

struct fake_reply {
  int status;
  char content_type[128];
  uint8_t *body;
  size_t size;
  char *header_names[FAKE_MAX_HEADERS];
  char *header_values[FAKE_MAX_HEADERS];
  size_t header_count;
  size_t max_piece;      /* > 0: streamed */
  unsigned pause_ms;
  size_t drop_after;     /* > 0: close mid-stream after this many bytes */
  size_t pause_at;       /* > 0: pause once before this byte */
  unsigned pause_at_ms;
  unsigned delay_ms;
  bool drop;
};

/* A recorded request with a count of its holders: the record list and, while it is
 * being answered, the connection's thread (a clear must not free it under a slow
 * handler). `req` comes first so a fake_request_t pointer is the record's. */
typedef struct {
  fake_request_t req;
  atomic_int refs;
} record_t;

/* One connection's request while its body arrives. */
typedef struct {
  uint8_t *body;
  size_t size;
  size_t capacity;
  bool too_big;
  fake_part_t *parts;
  size_t part_count;
} pending_t;

/* --- small helpers ------------------------------------------------------------ */

static char *dup_or_null(const char *text)
{
  return text ? strdup(text) : NULL;
}

/* Sleeps `ms` in short steps so a stopping server is not held up. */
static void nap(fake_server_t *server, unsigned ms)
{
  while (ms > 0 && !atomic_load(&server->stopping)) {
    unsigned step = ms < 10 ? ms : 10;
    struct timespec ts = {0, (long) step * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    ms -= step;
  }
}

static void free_part(fake_part_t *part)
{
  free(part->name);
  free(part->filename);
  free(part->content_type);
  free(part->data);
}

/* Drops one hold on the record; the last one frees it. */
static void free_request(fake_request_t *req)
{
  if (!req || atomic_fetch_sub(&((record_t *) req)->refs, 1) > 1)
    return;
  free(req->method);
  free(req->path);
  free(req->query);
  free(req->route);
  free(req->outcome);
  for (size_t i = 0; i < req->header_count; i++) {
    free(req->headers[i].name);
    free(req->headers[i].value);
  }
  free(req->headers);
  free(req->body);
  for (size_t i = 0; i < req->part_count; i++)
    free_part(&req->parts[i]);
  free(req->parts);
  free(req);
}

static void free_pending(pending_t *pending)
{
  if (!pending)
    return;
  free(pending->body);
  for (size_t i = 0; i < pending->part_count; i++)
    free_part(&pending->parts[i]);
  free(pending->parts);
  free(pending);
}

static void free_reply(fake_reply_t *reply)
{
  free(reply->body);
  for (size_t i = 0; i < reply->header_count; i++) {
    free(reply->header_names[i]);
    free(reply->header_values[i]);
  }
}

/* --- routes and outcomes ------------------------------------------------------ */

static bool pattern_matches(const char *pattern, const char *path)
{
  size_t len = strlen(pattern);
  if (len && pattern[len - 1] == '*')
    return strncmp(pattern, path, len - 1) == 0;
  return strcmp(pattern, path) == 0;
}

static const route_t *find_route(const fake_server_t *server, const char *method,
                                 const char *path)
{
  for (size_t i = 0; i < server->route_count; i++) {
    const route_t *route = &server->routes[i];
    if ((!strcmp(route->method, "*") || !strcmp(route->method, method)) &&
        pattern_matches(route->pattern, path))
      return route;
  }
  return NULL;
}

/* Takes the first queued word for `route` into `out` ("ok" when none). Locked. */
static void take_outcome(fake_server_t *server, const char *route, char *out, size_t size)
{
  snprintf(out, size, "ok");
  for (size_t i = 0; i < server->outcome_count; i++) {
    if (server->outcomes[i].route[0] && strcmp(server->outcomes[i].route, route))
      continue;
    snprintf(out, size, "%s", server->outcomes[i].word);
    memmove(&server->outcomes[i], &server->outcomes[i + 1],
            (server->outcome_count - i - 1) * sizeof server->outcomes[0]);
    server->outcome_count--;
    return;
  }
}

int fake_server_push_outcome(fake_server_t *server, const char *words)
{
  const char *p = words;
  int rc = 0;
  pthread_mutex_lock(&server->lock);
  while (*p) {
    size_t skip = strspn(p, ", \t\r\n");
    p += skip;
    size_t len = strcspn(p, ", \t\r\n");
    if (!len)
      break;
    if (server->outcome_count == FAKE_MAX_OUTCOMES || len >= sizeof server->outcomes[0].route) {
      rc = -1;
      break;
    }
    outcome_t *o = &server->outcomes[server->outcome_count];
    char word[sizeof o->route];
    memcpy(word, p, len);
    word[len] = '\0';
    char *eq = strchr(word, '=');
    if (eq) {
      *eq = '\0';
      snprintf(o->route, sizeof o->route, "%s", word);
      if (snprintf(o->word, sizeof o->word, "%s", eq + 1) >= (int) sizeof o->word) {
        rc = -1;
        break;
      }
    } else {
      o->route[0] = '\0';
      if (snprintf(o->word, sizeof o->word, "%s", word) >= (int) sizeof o->word) {
        rc = -1;
        break;
      }
    }
    server->outcome_count++;
    p += len;
  }
  pthread_mutex_unlock(&server->lock);
  return rc;
}

/* --- recording ------------------------------------------------------------------ */

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
  (void) kind;
  fake_request_t *req = cls;
  fake_header_t *grown = realloc(req->headers, (req->header_count + 1) * sizeof *grown);
  if (!grown)
    return MHD_NO;
  req->headers = grown;
  fake_header_t *h = &req->headers[req->header_count];
  h->name = strdup(key);
  h->value = strdup(value ? value : "");
  if (!h->name || !h->value) {
    free(h->name);
    free(h->value);
    return MHD_NO;
  }
  req->header_count++;
  return MHD_YES;
}

typedef struct {
  char *text;
  size_t size;
  size_t capacity;
  bool failed;
} strbuf_t;

static void strbuf_add(strbuf_t *sb, const char *text)
{
  size_t len = strlen(text);
  if (sb->failed)
    return;
  if (sb->size + len + 1 > sb->capacity) {
    size_t capacity = (sb->size + len + 1) * 2;
    char *grown = realloc(sb->text, capacity);
    if (!grown) {
      sb->failed = true;
      return;
    }
    sb->text = grown;
    sb->capacity = capacity;
  }
  memcpy(sb->text + sb->size, text, len + 1);
  sb->size += len;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
  (void) kind;
  strbuf_t *sb = cls;
  if (sb->size)
    strbuf_add(sb, "&");
  strbuf_add(sb, key);
  if (value) {
    strbuf_add(sb, "=");
    strbuf_add(sb, value);
  }
  return sb->failed ? MHD_NO : MHD_YES;
}

static enum MHD_Result collect_part(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *filename, const char *content_type,
                                    const char *transfer_encoding, const char *data,
                                    uint64_t off, size_t size)
{
  (void) kind;
  (void) transfer_encoding;
  pending_t *pending = cls;
  fake_part_t *part = pending->part_count ? &pending->parts[pending->part_count - 1] : NULL;
  /* A new part starts at offset 0 or when the field name changes. */
  if (!part || off == 0 || strcmp(part->name, key)) {
    if (part && off != 0)
      return MHD_NO;
    fake_part_t *grown = realloc(pending->parts, (pending->part_count + 1) * sizeof *grown);
    if (!grown)
      return MHD_NO;
    pending->parts = grown;
    part = &pending->parts[pending->part_count++];
    memset(part, 0, sizeof *part);
    part->name = strdup(key);
    part->filename = dup_or_null(filename);
    part->content_type = dup_or_null(content_type);
    part->data = calloc(1, 1);
    if (!part->name || (filename && !part->filename) || (content_type && !part->content_type) ||
        !part->data)
      return MHD_NO;
  }
  if (size) {
    uint8_t *grown = realloc(part->data, part->size + size + 1);
    if (!grown)
      return MHD_NO;
    part->data = grown;
    memcpy(part->data + part->size, data, size);
    part->size += size;
    part->data[part->size] = '\0';
  }
  return MHD_YES;
}

/* Builds the record of a finished request; NULL when out of memory. */
static fake_request_t *make_record(struct MHD_Connection *connection, const char *method,
                                   const char *url, pending_t *pending)
{
  record_t *record = calloc(1, sizeof *record);
  strbuf_t query = {0};
  if (!record)
    return NULL;
  atomic_init(&record->refs, 1);
  fake_request_t *req = &record->req;
  req->method = strdup(method);
  req->path = strdup(url);
  MHD_get_connection_values(connection, MHD_HEADER_KIND, collect_header, req);
  MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, collect_arg, &query);
  req->query = query.text ? query.text : strdup("");
  req->body = pending->body ? pending->body : calloc(1, 1);
  req->body_size = pending->size;
  pending->body = NULL;
  pending->size = 0;
  if (!req->method || !req->path || !req->query || !req->body || query.failed) {
    free_request(req);
    return NULL;
  }
  const char *type = fake_request_header(req, "Content-Type");
  if (type && !strncasecmp(type, "multipart/form-data", 19) && req->body_size) {
    struct MHD_PostProcessor *pp =
      MHD_create_post_processor(connection, 64 * 1024, collect_part, pending);
    if (pp) {
      enum MHD_Result parsed = MHD_post_process(pp, (const char *) req->body, req->body_size);
      MHD_destroy_post_processor(pp);
      if (parsed == MHD_YES) {
        req->parts = pending->parts;
        req->part_count = pending->part_count;
        pending->parts = NULL;
        pending->part_count = 0;
      }
    }
  }
  return req;
}

static int record(fake_server_t *server, fake_request_t *req)
{
  pthread_mutex_lock(&server->lock);
  if (server->request_count == server->request_capacity) {
    size_t capacity = server->request_capacity ? server->request_capacity * 2 : 32;
    fake_request_t **grown = realloc(server->requests, capacity * sizeof *grown);
    if (!grown) {
      pthread_mutex_unlock(&server->lock);
      return -1;
    }
    server->requests = grown;
    server->request_capacity = capacity;
  }
  server->requests[server->request_count++] = req;
  pthread_mutex_unlock(&server->lock);
  return 0;
}

/* --- control endpoints --------------------------------------------------------- */

static bool is_text(const uint8_t *data, size_t size)
{
  for (size_t i = 0; i < size; i++)
    if (data[i] == 0 || (data[i] < 0x20 && !isspace(data[i])))
      return false;
  return true;
}

static cJSON *request_json(const fake_request_t *req)
{
  cJSON *item = cJSON_CreateObject();
  cJSON *headers = cJSON_AddObjectToObject(item, "headers");
  cJSON *parts = cJSON_AddArrayToObject(item, "parts");
  cJSON_AddStringToObject(item, "method", req->method);
  cJSON_AddStringToObject(item, "path", req->path);
  cJSON_AddStringToObject(item, "query", req->query);
  cJSON_AddStringToObject(item, "route", req->route ? req->route : "");
  cJSON_AddStringToObject(item, "outcome", req->outcome ? req->outcome : "");
  for (size_t i = 0; i < req->header_count; i++)
    cJSON_AddStringToObject(headers, req->headers[i].name, req->headers[i].value);
  cJSON_AddNumberToObject(item, "body_size", (double) req->body_size);
  if (is_text(req->body, req->body_size)) {
    cJSON_AddStringToObject(item, "body", (const char *) req->body);
  } else {
    size_t capacity = 4 * ((req->body_size + 2) / 3) + 1;
    char *b64 = malloc(capacity);
    if (b64) {
      EVP_EncodeBlock((unsigned char *) b64, req->body, (int) req->body_size);
      cJSON_AddStringToObject(item, "body_base64", b64);
      free(b64);
    }
  }
  for (size_t i = 0; i < req->part_count; i++) {
    const fake_part_t *p = &req->parts[i];
    cJSON *part = cJSON_CreateObject();
    cJSON_AddStringToObject(part, "name", p->name);
    if (p->filename)
      cJSON_AddStringToObject(part, "filename", p->filename);
    if (p->content_type)
      cJSON_AddStringToObject(part, "content_type", p->content_type);
    cJSON_AddNumberToObject(part, "size", (double) p->size);
    if (!p->filename && is_text(p->data, p->size))
      cJSON_AddStringToObject(part, "value", (const char *) p->data);
    cJSON_AddItemToArray(parts, part);
  }
  return item;
}

/* Answers /_fake/... requests. */
static void control(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  if (!strcmp(req->path, "/_fake/next") && !strcmp(req->method, "POST")) {
    if (fake_server_push_outcome(server, (const char *) req->body) == 0)
      fake_reply_json(reply, 200, "{\"queued\":true}");
    else
      fake_reply_json(reply, 400, "{\"error\":\"outcome queue full or word too long\"}");
  } else if (!strcmp(req->path, "/_fake/requests") && !strcmp(req->method, "GET")) {
    cJSON *list = cJSON_CreateArray();
    pthread_mutex_lock(&server->lock);
    for (size_t i = 0; i < server->request_count; i++)
      cJSON_AddItemToArray(list, request_json(server->requests[i]));
    pthread_mutex_unlock(&server->lock);
    fake_reply_cjson(reply, 200, list);
  } else if (!strcmp(req->path, "/_fake/requests") && !strcmp(req->method, "DELETE")) {
    fake_server_clear(server);
    fake_reply_json(reply, 200, "{\"cleared\":true}");
  } else {
    fake_reply_json(reply, 404, "{\"error\":\"unknown control endpoint\"}");
  }
}

/* --- answering ----------------------------------------------------------------- */

typedef struct {
  fake_server_t *server;
  uint8_t *body;
  size_t size;
  size_t sent;
  size_t max_piece;
  unsigned pause_ms;
  size_t drop_after;
  size_t pause_at;
  unsigned pause_at_ms;
  unsigned turn;
} stream_t;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  stream_t *stream = cls;
  (void) pos;
  if (stream->drop_after && stream->sent >= stream->drop_after)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  if (stream->sent >= stream->size)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (stream->sent && stream->pause_ms)
    nap(stream->server, stream->pause_ms);
  if (stream->pause_at && stream->sent == stream->pause_at) {
    nap(stream->server, stream->pause_at_ms);
    stream->pause_at = 0;
  }
  if (atomic_load(&stream->server->stopping))
    return MHD_CONTENT_READER_END_WITH_ERROR;
  /* Sizes cycle through a pattern with no common alignment with lines or words. */
  static const size_t pattern[] = {1, 3, 2, 7, 5, 11, 4, 13, 6, 17};
  size_t piece = pattern[stream->turn++ % (sizeof pattern / sizeof pattern[0])];
  if (piece > stream->max_piece)
    piece = stream->max_piece;
  if (piece > max)
    piece = max;
  if (piece > stream->size - stream->sent)
    piece = stream->size - stream->sent;
  if (stream->drop_after && piece > stream->drop_after - stream->sent)
    piece = stream->drop_after - stream->sent;
  if (stream->pause_at > stream->sent && piece > stream->pause_at - stream->sent)
    piece = stream->pause_at - stream->sent;
  memcpy(buf, stream->body + stream->sent, piece);
  stream->sent += piece;
  return (ssize_t) piece;
}

static void stream_free(void *cls)
{
  stream_t *stream = cls;
  free(stream->body);
  free(stream);
}

static enum MHD_Result send_reply(fake_server_t *server, struct MHD_Connection *connection,
                                  fake_reply_t *reply)
{
  struct MHD_Response *response;
  if (reply->max_piece) {
    stream_t *stream = calloc(1, sizeof *stream);
    if (!stream)
      return MHD_NO;
    *stream = (stream_t){.server = server, .body = reply->body, .size = reply->size,
                         .max_piece = reply->max_piece, .pause_ms = reply->pause_ms,
                         .drop_after = reply->drop_after, .pause_at = reply->pause_at,
                         .pause_at_ms = reply->pause_at_ms};
    reply->body = NULL;
    response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, stream_read, stream,
                                                 stream_free);
    if (!response) {
      stream_free(stream);
      return MHD_NO;
    }
  } else {
    response = MHD_create_response_from_buffer(reply->size, reply->body ? reply->body : (void *) "",
                                               MHD_RESPMEM_MUST_COPY);
    if (!response)
      return MHD_NO;
  }
  if (reply->content_type[0])
    MHD_add_response_header(response, "Content-Type", reply->content_type);
  for (size_t i = 0; i < reply->header_count; i++)
    MHD_add_response_header(response, reply->header_names[i], reply->header_values[i]);
  enum MHD_Result rc = MHD_queue_response(connection, (unsigned) reply->status, response);
  MHD_destroy_response(response);
  return rc;
}

static enum MHD_Result dispatch(fake_server_t *server, struct MHD_Connection *connection,
                                const char *method, const char *url, pending_t *pending)
{
  fake_request_t *req = make_record(connection, method, url, pending);
  if (!req)
    return MHD_NO;
  fake_reply_t reply = {.status = 500};
  enum MHD_Result rc;
  if (!strncmp(url, "/_fake/", 7)) {
    control(server, req, &reply);
    free_request(req);
    rc = send_reply(server, connection, &reply);
    free_reply(&reply);
    return rc;
  }
  const route_t *route = find_route(server, method, url);
  char outcome[64] = "ok";
  if (route) {
    pthread_mutex_lock(&server->lock);
    take_outcome(server, route->pattern, outcome, sizeof outcome);
    pthread_mutex_unlock(&server->lock);
    req->route = strdup(route->pattern);
  }
  req->outcome = strdup(outcome);
  if ((route && !req->route) || !req->outcome || (req->body_size == 0 && pending->too_big)) {
    free_request(req);
    return MHD_NO;
  }
  /* The record is immutable once shared; the handler sees a copy that says "ok" for
   * "slow", since the delay is this layer's part. */
  fake_request_t seen = *req;
  seen.outcome = !strcmp(outcome, "slow") ? "ok" : req->outcome;
  /* One hold for the list, one for this thread until the answer is queued. */
  atomic_fetch_add(&((record_t *) req)->refs, 1);
  if (record(server, req) != 0) {
    free_request(req);
    free_request(req);
    return MHD_NO;
  }
  if (!strcmp(outcome, "drop")) {
    free_request(req);
    return MHD_NO;
  }
  if (!strcmp(outcome, "slow"))
    nap(server, server->slow_ms);
  if (route)
    route->handler(server, &seen, &reply);
  else
    fake_reply_raw(&reply, 404, "text/plain", "no such route\n", 14);
  if (reply.delay_ms)
    nap(server, reply.delay_ms);
  rc = reply.drop || atomic_load(&server->stopping) ? MHD_NO
                                                   : send_reply(server, connection, &reply);
  free_reply(&reply);
  free_request(req);
  return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
  (void) version;
  fake_server_t *server = cls;
  pending_t *pending = *con_cls;
  if (!pending) {
    pending = calloc(1, sizeof *pending);
    if (!pending)
      return MHD_NO;
    *con_cls = pending;
    return MHD_YES;
  }
  if (*upload_data_size) {
    size_t size = *upload_data_size;
    *upload_data_size = 0;
    if (pending->too_big || pending->size + size > FAKE_MAX_BODY) {
      pending->too_big = true;
      return MHD_YES;
    }
    if (pending->size + size + 1 > pending->capacity) {
      size_t capacity = (pending->size + size + 1) * 2;
      uint8_t *grown = realloc(pending->body, capacity);
      if (!grown)
        return MHD_NO;
      pending->body = grown;
      pending->capacity = capacity;
    }
    memcpy(pending->body + pending->size, upload_data, size);
    pending->size += size;
    pending->body[pending->size] = '\0';
    return MHD_YES;
  }
  return dispatch(server, connection, method, url, pending);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  (void) cls;
  (void) connection;
  (void) toe;
  free_pending(*con_cls);
  *con_cls = NULL;
}

/* Keeps paths and arguments exactly as sent, so "%3A" is not mistaken for ':'. */
static size_t keep_escaped(void *cls, struct MHD_Connection *connection, char *text)
{
  (void) cls;
  (void) connection;
  return strlen(text);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
  (void) cls;
  vfprintf(stderr, fmt, ap);
}

/* --- public API ----------------------------------------------------------------- */

fake_server_t *fake_server_new(uint16_t port)
{
  fake_server_t *server = calloc(1, sizeof *server);
  if (!server)
    return NULL;
  const char *slow = getenv("FAKE_SLOW_MS");
  server->slow_ms = slow && *slow ? (unsigned) strtoul(slow, NULL, 10) : 3000;
  pthread_mutex_init(&server->lock, NULL);
  pthread_mutex_init(&server->state_lock, NULL);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  server->daemon = MHD_start_daemon(
    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
    NULL, on_request, server,
    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
    MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &address,
    MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 30,
    MHD_OPTION_END);
  if (!server->daemon) {
    fprintf(stderr, "fake_http: cannot listen on 127.0.0.1:%u\n", (unsigned) port);
    fake_server_destroy(&server);
    return NULL;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon,
                                                         MHD_DAEMON_INFO_BIND_PORT);
  server->port = info ? info->port : port;
  if (!server->port) {
    fprintf(stderr, "fake_http: cannot learn the bound port\n");
    fake_server_destroy(&server);
  }
  if (server) {
    const char *outcomes = getenv("FAKE_OUTCOMES");
    if (outcomes && fake_server_push_outcome(server, outcomes) != 0)
      fprintf(stderr, "fake_http: FAKE_OUTCOMES has too many or too long words\n");
  }
  return server;
}

void fake_server_destroy(fake_server_t **server_p)
{
  if (!server_p || !*server_p)
    return;
  fake_server_t *server = *server_p;
  atomic_store(&server->stopping, true);
  if (server->daemon)
    MHD_stop_daemon(server->daemon);
  fake_server_clear(server);
  free(server->requests);
  for (size_t i = 0; i < server->route_count; i++)
    free(server->routes[i].pattern);
  free(server->routes);
  if (server->free_state)
    server->free_state(server->state);
  pthread_mutex_destroy(&server->lock);
  pthread_mutex_destroy(&server->state_lock);
  free(server);
  *server_p = NULL;
}

uint16_t fake_server_port(const fake_server_t *server)
{
  return server->port;
}

void fake_server_base_url(const fake_server_t *server, char *out, size_t size)
{
  snprintf(out, size, "http://127.0.0.1:%u", (unsigned) server->port);
}

int fake_server_route(fake_server_t *server, const char *method, const char *pattern,
                      fake_handler_fn *handler)
{
  route_t *grown = realloc(server->routes, (server->route_count + 1) * sizeof *grown);
  if (!grown)
    return -1;
  server->routes = grown;
  route_t *route = &server->routes[server->route_count];
  route->pattern = strdup(pattern);
  if (!route->pattern)
    return -1;
  snprintf(route->method, sizeof route->method, "%s", method);
  route->handler = handler;
  server->route_count++;
  return 0;
}

void fake_server_set_state(fake_server_t *server, void *state, void (*free_state)(void *))
{
  server->state = state;
  server->free_state = free_state;
}

void *fake_server_state(fake_server_t *server)
{
  return server->state;
}

void fake_server_lock(fake_server_t *server)
{
  pthread_mutex_lock(&server->state_lock);
}

void fake_server_unlock(fake_server_t *server)
{
  pthread_mutex_unlock(&server->state_lock);
}

size_t fake_server_request_count(fake_server_t *server)
{
  pthread_mutex_lock(&server->lock);
  size_t count = server->request_count;
  pthread_mutex_unlock(&server->lock);
  return count;
}

const fake_request_t *fake_server_request(fake_server_t *server, size_t i)
{
  pthread_mutex_lock(&server->lock);
  const fake_request_t *req = i < server->request_count ? server->requests[i] : NULL;
  pthread_mutex_unlock(&server->lock);
  return req;
}

const fake_request_t *fake_server_last_request(fake_server_t *server, const char *route)
{
  const fake_request_t *found = NULL;
  pthread_mutex_lock(&server->lock);
  for (size_t i = server->request_count; i-- > 0 && !found;) {
    const fake_request_t *req = server->requests[i];
    if (!route || (req->route && !strcmp(req->route, route)))
      found = req;
  }
  pthread_mutex_unlock(&server->lock);
  return found;
}

void fake_server_clear(fake_server_t *server)
{
  pthread_mutex_lock(&server->lock);
  for (size_t i = 0; i < server->request_count; i++)
    free_request(server->requests[i]);
  server->request_count = 0;
  server->outcome_count = 0;
  pthread_mutex_unlock(&server->lock);
}

void fake_server_wait_for_signal(void)
{
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig;
  while (sigwait(&set, &sig) != 0) {
  }
}

const char *fake_request_header(const fake_request_t *req, const char *name)
{
  for (size_t i = 0; i < req->header_count; i++)
    if (!strcasecmp(req->headers[i].name, name))
      return req->headers[i].value;
  return NULL;
}

const fake_part_t *fake_request_part(const fake_request_t *req, const char *name)
{
  for (size_t i = 0; i < req->part_count; i++)
    if (!strcmp(req->parts[i].name, name))
      return &req->parts[i];
  return NULL;
}

const char *fake_request_arg(const fake_request_t *req, const char *name, char *out,
                             size_t size)
{
  size_t len = strlen(name);
  const char *p = req->query;
  while (*p) {
    size_t item = strcspn(p, "&");
    if (item > len && !strncmp(p, name, len) && p[len] == '=') {
      size_t value = item - len - 1;
      if (value >= size)
        value = size - 1;
      memcpy(out, p + len + 1, value);
      out[value] = '\0';
      return out;
    }
    p += item;
    if (*p)
      p++;
  }
  return NULL;
}

cJSON *fake_request_json(const fake_request_t *req)
{
  return cJSON_ParseWithLength((const char *) req->body, req->body_size);
}

void fake_reply_raw(fake_reply_t *reply, int status, const char *content_type,
                    const void *data, size_t size)
{
  free(reply->body);
  reply->body = malloc(size ? size : 1);
  reply->size = reply->body ? size : 0;
  if (reply->body && size)
    memcpy(reply->body, data, size);
  /* Out of memory answers 500 rather than a short body under the wanted status. */
  reply->status = reply->body ? status : 500;
  snprintf(reply->content_type, sizeof reply->content_type, "%s", content_type);
}

void fake_reply_json(fake_reply_t *reply, int status, const char *json)
{
  fake_reply_raw(reply, status, "application/json; charset=UTF-8", json, strlen(json));
}

void fake_reply_cjson(fake_reply_t *reply, int status, cJSON *json)
{
  char *text = json ? cJSON_PrintUnformatted(json) : NULL;
  cJSON_Delete(json);
  if (!text) {
    fake_reply_json(reply, 500, "{\"error\":\"fake out of memory\"}");
    return;
  }
  fake_reply_json(reply, status, text);
  free(text);
}

void fake_reply_header(fake_reply_t *reply, const char *name, const char *value)
{
  if (reply->header_count == FAKE_MAX_HEADERS)
    return;
  char *n = strdup(name);
  char *v = strdup(value);
  if (!n || !v) {
    free(n);
    free(v);
    return;
  }
  reply->header_names[reply->header_count] = n;
  reply->header_values[reply->header_count++] = v;
}

void fake_reply_stream(fake_reply_t *reply, size_t max_piece, unsigned pause_ms)
{
  reply->max_piece = max_piece ? max_piece : 1;
  reply->pause_ms = pause_ms;
}

void fake_reply_drop_after(fake_reply_t *reply, size_t bytes)
{
  if (!reply->max_piece)
    reply->max_piece = 64;
  reply->drop_after = bytes ? bytes : 1;
}

void fake_reply_pause_at(fake_reply_t *reply, size_t offset, unsigned ms)
{
  if (!reply->max_piece)
    reply->max_piece = 64;
  reply->pause_at = offset;
  reply->pause_at_ms = ms;
}

static void sse_append(fake_sse_t *sse, const char *text, size_t size)
{
  if (sse->failed)
    return;
  if (sse->size + size + 1 > sse->capacity) {
    size_t capacity = (sse->size + size + 1) * 2;
    char *grown = realloc(sse->data, capacity);
    if (!grown) {
      sse->failed = true;
      return;
    }
    sse->data = grown;
    sse->capacity = capacity;
  }
  memcpy(sse->data + sse->size, text, size);
  sse->size += size;
  sse->data[sse->size] = '\0';
}

void fake_sse_line(fake_sse_t *sse, const char *line)
{
  sse_append(sse, line, strlen(line));
  sse_append(sse, sse->crlf ? "\r\n" : "\n", sse->crlf ? 2 : 1);
}

void fake_sse_event(fake_sse_t *sse, cJSON *json)
{
  char *text = json ? cJSON_PrintUnformatted(json) : NULL;
  cJSON_Delete(json);
  if (!text) {
    sse->failed = true;
    return;
  }
  sse_append(sse, "data: ", 6);
  fake_sse_line(sse, text);
  fake_sse_line(sse, "");
  free(text);
}

void fake_reply_sse(fake_reply_t *reply, fake_sse_t *sse, size_t max_piece, unsigned pause_ms)
{
  if (sse->failed)
    fake_reply_json(reply, 500, "{\"error\":\"fake out of memory\"}");
  else
    fake_reply_raw(reply, 200, "text/event-stream", sse->data ? sse->data : "", sse->size);
  free(sse->data);
  *sse = (fake_sse_t) {0};
  fake_reply_stream(reply, max_piece, pause_ms);
}

void fake_reply_delay(fake_reply_t *reply, unsigned ms)
{
  reply->delay_ms = ms;
}

void fake_reply_drop(fake_reply_t *reply)
{
  reply->drop = true;
}

int fake_http_main(const char *name, int (*install)(fake_server_t *server))
{
  /* Block the stop signals before any thread starts so only sigwait sees them. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
    return 1;
  const char *port_text = getenv("FAKE_PORT");
  long port = port_text && *port_text ? strtol(port_text, NULL, 10) : 0;
  if (port < 0 || port > 65535) {
    fprintf(stderr, "%s: FAKE_PORT must be 0..65535\n", name);
    return 2;
  }
  fake_server_t *server = fake_server_new((uint16_t) port);
  if (!server)
    return 1;
  if (install(server) != 0) {
    fprintf(stderr, "%s: cannot set up its routes\n", name);
    fake_server_destroy(&server);
    return 1;
  }
  printf("port %u\n", (unsigned) fake_server_port(server));
  fflush(stdout);
  fprintf(stderr, "%s: listening on 127.0.0.1:%u\n", name, (unsigned) fake_server_port(server));
  fake_server_wait_for_signal();
  fake_server_destroy(&server);
  return 0;
}
