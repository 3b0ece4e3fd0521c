/* http_api: routes and handlers. Each request carries a request_t from the first
 * call of the access handler to MHD's completion callback, which writes the one
 * log line and counts the request. Errors detectable from the headers (wrong
 * method, type, Content-Length over the limit) are answered before any body is
 * read; a body that streams past its limit is counted and dropped, not stored.
 * Before routing, /api/ requests pass the guards of docs/operations.md
 * "Security" in this order: CORS origin (403), rate limit (429, so guessing the
 * token is rate limited too), API token (401). */
#include "http_api.h"

#include "audio_header.h"
#include "clock.h"
#include "conn_guard.h"
#include "conversation_log.h"
#include "ids.h"
#include "log.h"
#include "pipeline.pb-c.h"
#include "rate_limit.h"
#include "security.h"
#include "upload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define ASK_BODY_MAX (64 * 1024)
/* Multipart framing (boundaries, part headers, small fields) on top of the audio. */
#define FORM_OVERHEAD_MAX (64 * 1024)
#define FORM_FIELD_MAX 128
#define POST_BUFFER_SIZE (16 * 1024)
#define SUBMIT_RETRY_AFTER_FULL "2"  /* when the broker gave no estimate of its own */
#define SUBMIT_RETRY_AFTER_MAX_S 3600
#define SUBMIT_RETRY_AFTER_UNAVAILABLE "5"
#define HEALTH_INFO_TIMEOUT_MS 1000
#define METRICS_INFO_TIMEOUT_MS 500
#define MIME_MAX 128
#define LOGIN_BODY_MAX 4096
#define LOGIN_COOKIE_MAX_AGE_S (30 * 86400)
#define TLS_FILE_MAX (64 * 1024)
#define CONNECTION_MEMORY_MIN (32 * 1024) /* libmicrohttpd's default */

static const char content_security_policy[] =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
  "media-src 'self' blob: https:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
  "frame-ancestors 'none'; form-action 'self'";

/* The page records speech, so the microphone is allowed for this origin only;
 * every other powerful feature is off. */
static const char permissions_policy[] =
  "microphone=(self), camera=(), geolocation=(), payment=(), usb=(), interest-cohort=()";

static const char cors_allow_methods[] = "GET, POST, DELETE, OPTIONS";
static const char cors_allow_headers[] = "Authorization, Content-Type, X-Session-Id";
static const char cors_expose_headers[] = "Location, Retry-After";

static const char *const pipeline_stages[] = {"stt", "chat", "tts", "avatar"};

struct http_api {
  http_api_config_t config;
  struct MHD_Daemon *daemon;
  int static_dir_fd; /* -1 when the UI directory is missing: UI routes answer 404 */
  api_token_t token;
  origin_list_t *origins;          /* NULL: same-origin only */
  rate_limiter_t *submit_limiter;  /* NULL: not limited */
  rate_limiter_t *poll_limiter;
  conn_guard_t *guard;
  char *tls_cert;                  /* PEM text, kept until the daemon stops */
  char *tls_key;
};

typedef enum {
  ROUTE_STATIC,
  ROUTE_COMPLETE_FLOW,
  ROUTE_ASK,
  ROUTE_JOB,
  ROUTE_SESSION,
  ROUTE_MEDIA,
  ROUTE_HEALTHZ,
  ROUTE_METRICS,
  ROUTE_LOGIN,
  ROUTE_IDLE_VIDEO,
  ROUTE_GREETING,
  ROUTE_API_OTHER,
  ROUTE_NOT_FOUND,
} route_t;

/* Metric and log labels, indexed by route_t. */
static const char *const route_names[] = {
  "static", "complete_flow", "ask", "jobs", "sessions", "media", "healthz", "metrics", "login",
  "idle_video", "greeting",
  "not_found", "not_found",
};

typedef struct {
  http_api_t *api;
  conn_guard_entry_t *guard;  /* this connection's read deadlines (NULL: none) */
  const char *cors_origin;    /* an allowed cross origin to answer with (MHD's string) */
  route_t route;
  const char *rest;          /* the URL after the route's prefix (points into MHD's URL) */
  char method[8];
  int64_t started_ms;
  unsigned status;           /* of the queued response; 0 until one is queued */
  size_t bytes_received;
  upload_buffer_t body;      /* raw audio, the multipart audio part, or ask's JSON */
  struct MHD_PostProcessor *form;
  upload_buffer_t form_session_id;
  char part_type[MIME_MAX];  /* Content-Type of the multipart audio part */
  bool form_has_audio;
  bool form_failed;          /* the multipart body could not be parsed */
} request_t;

/* ---- responses ---------------------------------------------------------- */

/* Security headers on every response, and CORS ones for an allowed origin. */
static void add_common_headers(const request_t *request, struct MHD_Response *response)
{
  MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(response, "Content-Security-Policy", content_security_policy);
  MHD_add_response_header(response, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(response, "X-Frame-Options", "DENY");
  MHD_add_response_header(response, "Permissions-Policy", permissions_policy);
  MHD_add_response_header(response, "Cross-Origin-Opener-Policy", "same-origin");
  if (request->api->tls_cert)
    MHD_add_response_header(response, "Strict-Transport-Security", "max-age=31536000");
  if (request->cors_origin) {
    MHD_add_response_header(response, "Access-Control-Allow-Origin", request->cors_origin);
    MHD_add_response_header(response, "Access-Control-Expose-Headers", cors_expose_headers);
    MHD_add_response_header(response, "Vary", "Origin");
  }
}

/* Queues `response` (adding the common headers) and releases our reference. */
static enum MHD_Result queue(struct MHD_Connection *connection, request_t *request,
                             unsigned status, struct MHD_Response *response)
{
  if (!response)
    return MHD_NO;
  add_common_headers(request, response);
  enum MHD_Result result = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  if (result == MHD_YES) {
    request->status = status;
    conn_guard_responding(request->api->guard, request->guard);
    /* Counted before the response leaves: a client that reads /metrics right
     * after its answer must find that answer counted. */
    metrics_http_request(request->api->config.metrics, route_names[request->route], status);
  }
  return result;
}

static struct MHD_Response *text_response(char *text, const char *content_type)
{
  struct MHD_Response *response =
    MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
  if (!response) {
    free(text);
    return NULL;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  return response;
}

/* Takes ownership of `body`. */
static struct MHD_Response *json_response(cJSON *body)
{
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  cJSON_Delete(body);
  return text ? text_response(text, "application/json") : NULL;
}

static enum MHD_Result respond_json(struct MHD_Connection *connection, request_t *request,
                                    unsigned status, cJSON *body)
{
  return queue(connection, request, status, json_response(body));
}

static struct MHD_Response *error_response(const char *code, const char *message)
{
  cJSON *body = cJSON_CreateObject();
  cJSON *error = cJSON_AddObjectToObject(body, "error");
  cJSON_AddStringToObject(error, "code", code);
  cJSON_AddStringToObject(error, "message", message);
  return json_response(body);
}

static enum MHD_Result respond_error(struct MHD_Connection *connection, request_t *request,
                                     unsigned status, const char *code, const char *message)
{
  return queue(connection, request, status, error_response(code, message));
}

/* An error with one extra header, e.g. Allow or Retry-After. */
static enum MHD_Result respond_error_with(struct MHD_Connection *connection, request_t *request,
                                          unsigned status, const char *code,
                                          const char *message, const char *header,
                                          const char *value)
{
  struct MHD_Response *response = error_response(code, message);
  if (response)
    MHD_add_response_header(response, header, value);
  return queue(connection, request, status, response);
}

static enum MHD_Result respond_not_found(struct MHD_Connection *connection, request_t *request)
{
  return respond_error(connection, request, MHD_HTTP_NOT_FOUND, "not_found",
                       "There is nothing at this address (it may have expired).");
}

static enum MHD_Result respond_bad_method(struct MHD_Connection *connection, request_t *request,
                                          const char *allow)
{
  return respond_error_with(connection, request, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "method_not_allowed", "This address does not accept that method.",
                            MHD_HTTP_HEADER_ALLOW, allow);
}

static enum MHD_Result respond_too_large(struct MHD_Connection *connection, request_t *request)
{
  return respond_error(connection, request, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
                       "The upload is larger than this server accepts.");
}

static enum MHD_Result respond_internal(struct MHD_Connection *connection, request_t *request)
{
  return respond_error(connection, request, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                       "The server could not handle this request; please try again.");
}

/* ---- files -------------------------------------------------------------- */

typedef struct {
  uint64_t offset;
  uint64_t length;
} byte_range_t;

typedef enum { RANGE_NONE, RANGE_OK, RANGE_UNSATISFIABLE } range_result_t;

static bool parse_u64(const char *text, const char **end, uint64_t *value)
{
  if (*text < '0' || *text > '9')
    return false;
  errno = 0;
  char *stop = NULL;
  unsigned long long parsed = strtoull(text, &stop, 10);
  if (errno)
    return false;
  *value = parsed;
  *end = stop;
  return true;
}

/* One "bytes=a-b", "bytes=a-" or "bytes=-n" range. Anything else (several
 * ranges, other units, bad syntax) is ignored and the whole file is sent, as
 * RFC 9110 allows. */
static range_result_t parse_range(const char *header, uint64_t size, byte_range_t *range)
{
  if (!header || strncmp(header, "bytes=", 6) != 0 || strchr(header, ','))
    return RANGE_NONE;
  const char *p = header + 6;
  uint64_t first = 0, last = 0;
  if (*p == '-') {
    if (!parse_u64(p + 1, &p, &last) || *p || last == 0)
      return last == 0 && !*p ? RANGE_UNSATISFIABLE : RANGE_NONE;
    range->length = last < size ? last : size;
    range->offset = size - range->length;
    return size ? RANGE_OK : RANGE_UNSATISFIABLE;
  }
  if (!parse_u64(p, &p, &first) || *p++ != '-')
    return RANGE_NONE;
  if (*p) {
    if (!parse_u64(p, &p, &last) || *p || last < first)
      return RANGE_NONE;
  } else {
    last = UINT64_MAX;
  }
  if (first >= size)
    return RANGE_UNSATISFIABLE;
  if (last >= size)
    last = size - 1;
  range->offset = first;
  range->length = last - first + 1;
  return RANGE_OK;
}

/* Serves open file `fd` (ownership passes to MHD) with byte-range support. */
static enum MHD_Result respond_file(struct MHD_Connection *connection, request_t *request,
                                    int fd, uint64_t size, const char *content_type,
                                    const char *cache_control)
{
  const char *range_header =
    MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
  byte_range_t range = {.offset = 0, .length = size};
  range_result_t parsed = parse_range(range_header, size, &range);
  if (parsed == RANGE_UNSATISFIABLE) {
    close(fd);
    char content_range[48];
    snprintf(content_range, sizeof content_range, "bytes */%llu", (unsigned long long) size);
    return respond_error_with(connection, request, MHD_HTTP_RANGE_NOT_SATISFIABLE,
                              "range_not_satisfiable", "The requested byte range is outside the file.",
                              MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
  }
  struct MHD_Response *response =
    MHD_create_response_from_fd_at_offset64(range.length, fd, (int64_t) range.offset);
  if (!response) {
    close(fd);
    return respond_internal(connection, request);
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(response, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, cache_control);
  unsigned status = MHD_HTTP_OK;
  if (parsed == RANGE_OK) {
    char content_range[80];
    snprintf(content_range, sizeof content_range, "bytes %llu-%llu/%llu",
             (unsigned long long) range.offset,
             (unsigned long long) (range.offset + range.length - 1), (unsigned long long) size);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
    status = MHD_HTTP_PARTIAL_CONTENT;
  }
  return queue(connection, request, status, response);
}

static enum MHD_Result handle_media(http_api_t *api, struct MHD_Connection *connection,
                                    request_t *request)
{
  int fd;
  uint64_t size;
  if (media_store_open(api->config.media, request->rest, &fd, &size) != 0)
    return respond_not_found(connection, request);
  return respond_file(connection, request, fd, size, media_content_type(request->rest),
                      "private, max-age=3600");
}

static const struct {
  const char *extension;
  const char *content_type;
} static_types[] = {
  {"html", "text/html; charset=utf-8"},
  {"js", "text/javascript; charset=utf-8"},
  {"css", "text/css; charset=utf-8"},
  {"svg", "image/svg+xml"},
  {"png", "image/png"},
  {"ico", "image/x-icon"},
  {"json", "application/json"},
  {"webmanifest", "application/manifest+json"},
};

/* The Content-Type of a UI file name, or NULL when the name is not one we serve:
 * [A-Za-z0-9_-]+ and a known extension, so no path can leave the directory. */
static const char *static_content_type(const char *name)
{
  const char *dot = strchr(name, '.');
  if (!dot || dot == name || dot - name > 64)
    return NULL;
  for (const char *p = name; p < dot; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '-'))
      return NULL;
  for (size_t i = 0; i < sizeof static_types / sizeof static_types[0]; i++)
    if (strcmp(dot + 1, static_types[i].extension) == 0)
      return static_types[i].content_type;
  return NULL;
}

static enum MHD_Result handle_static(http_api_t *api, struct MHD_Connection *connection,
                                     request_t *request)
{
  const char *name = *request->rest ? request->rest : "index.html";
  const char *content_type = static_content_type(name);
  if (!content_type || api->static_dir_fd < 0)
    return respond_not_found(connection, request);
  int fd = openat(api->static_dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return respond_not_found(connection, request);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return respond_not_found(connection, request);
  }
  /* no-cache: the browser revalidates, so a new UI shows up on the next load. */
  return respond_file(connection, request, fd, (uint64_t) st.st_size, content_type, "no-cache");
}

/* The avatar breathing and blinking, for the page to loop while it waits; rendered
 * at build time by avatar-idle, so it costs no worker time. */
static enum MHD_Result handle_idle_video(http_api_t *api, struct MHD_Connection *connection,
                                         request_t *request)
{
  int fd = api->config.idle_video ? open(api->config.idle_video, O_RDONLY | O_CLOEXEC) : -1;
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
    close(fd);
    fd = -1;
  }
  if (fd < 0)
    return respond_not_found(connection, request);
  return respond_file(connection, request, fd, (uint64_t) st.st_size, "video/mp4",
                      "public, max-age=3600");
}

/* ---- polling, sessions, operations -------------------------------------- */

static enum MHD_Result handle_job(http_api_t *api, struct MHD_Connection *connection,
                                  request_t *request)
{
  cJSON *job = id_is_valid(request->rest)
                 ? job_store_render(api->config.jobs, request->rest, clock_wall_ms())
                 : NULL;
  if (!job)
    return respond_not_found(connection, request);
  return respond_json(connection, request, MHD_HTTP_OK, job);
}

static enum MHD_Result handle_session(http_api_t *api, struct MHD_Connection *connection,
                                      request_t *request)
{
  const char *id = request->rest;
  int64_t now_ms = clock_wall_ms();
  if (strcmp(request->method, MHD_HTTP_METHOD_DELETE) == 0) {
    if (!id_is_valid(id) || !session_store_delete(api->config.sessions, id, now_ms))
      return respond_not_found(connection, request);
    struct MHD_Response *response =
      MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    return queue(connection, request, MHD_HTTP_NO_CONTENT, response);
  }
  cJSON *session = id_is_valid(id) ? session_store_render(api->config.sessions, id, now_ms) : NULL;
  if (!session)
    return respond_not_found(connection, request);
  return respond_json(connection, request, MHD_HTTP_OK, session);
}

static double info_figure(const cJSON *info, const char *stage, const char *name)
{
  const cJSON *stages = cJSON_GetObjectItemCaseSensitive(info, "stages");
  const cJSON *value =
    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(stages, stage), name);
  return cJSON_IsNumber(value) ? value->valuedouble : 0;
}

static enum MHD_Result handle_healthz(http_api_t *api, struct MHD_Connection *connection,
                                      request_t *request)
{
  const pipeline_t *pipeline = api->config.pipeline;
  cJSON *info = pipeline->info(pipeline->arg, HEALTH_INFO_TIMEOUT_MS);
  cJSON *body = cJSON_CreateObject();
  cJSON *stages = cJSON_CreateObject();
  bool every_stage_served = info != NULL;
  for (size_t i = 0; i < sizeof pipeline_stages / sizeof pipeline_stages[0]; i++) {
    double workers = info_figure(info, pipeline_stages[i], "workers");
    cJSON *stage = cJSON_AddObjectToObject(stages, pipeline_stages[i]);
    cJSON_AddNumberToObject(stage, "workers", workers);
    cJSON_AddNumberToObject(stage, "queued", info_figure(info, pipeline_stages[i], "queued"));
    if (workers < 1)
      every_stage_served = false;
  }
  cJSON_AddStringToObject(body, "status",
                          every_stage_served ? "ok" : info ? "degraded" : "broker_unreachable");
  if (!cJSON_AddItemToObject(body, "stages", stages))
    cJSON_Delete(stages);
  cJSON_Delete(info);
  return respond_json(connection, request,
                      every_stage_served ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result handle_metrics(http_api_t *api, struct MHD_Connection *connection,
                                      request_t *request)
{
  const pipeline_t *pipeline = api->config.pipeline;
  cJSON *info = pipeline->info(pipeline->arg, METRICS_INFO_TIMEOUT_MS);
  metrics_memory_t memory = {.sqlite_bytes = conversation_log_memory_used()};
  memory.sessions_known = session_store_count(api->config.sessions, &memory.sessions);
  memory.sessions_evicted = session_store_evicted(api->config.sessions);
  char *text = metrics_render(api->config.metrics, info, &memory);
  cJSON_Delete(info);
  if (!text)
    return respond_internal(connection, request);
  return queue(connection, request, MHD_HTTP_OK,
               text_response(text, "text/plain; version=0.0.4; charset=utf-8"));
}

/* ---- submission --------------------------------------------------------- */

/* What a new job starts with; the rest of avatar.Job is filled by the stages. */
typedef struct {
  const char *stage;        /* "stt" or "chat" */
  const uint8_t *audio;
  size_t audio_size;
  const char *audio_mime;
  const char *text;
  const char *requested_session_id; /* NULL or "": start a new session */
  const char *character;    /* avatar character for this answer; NULL = the default */
} submission_t;

/* A character name as the avatar knows them: 1-32 of [a-z0-9_-]. */
static bool character_is_valid(const char *name)
{
  size_t length = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-");
  return length > 0 && length <= 32 && name[length] == '\0';
}

/* Packs the job with the session's history. Returns a malloc'd buffer, or NULL. */
static uint8_t *pack_job(const submission_t *submission, const char *job_id,
                         const char *session_id, int64_t now_ms, int64_t deadline_ms,
                         const session_turn_t *turns, size_t turn_count, size_t *size_out)
{
  Avatar__Turn *history = calloc(turn_count ? turn_count : 1, sizeof *history);
  Avatar__Turn **history_items = calloc(turn_count ? turn_count : 1, sizeof *history_items);
  uint8_t *packed = NULL;
  if (history && history_items) {
    for (size_t i = 0; i < turn_count; i++) {
      avatar__turn__init(&history[i]);
      /* protobuf-c declares the fields non-const; pack only reads them. */
      history[i].role = (char *) turns[i].role;
      history[i].text = turns[i].text;
      history[i].job_id = (char *) turns[i].job_id;
      history_items[i] = &history[i];
    }
    Avatar__Job job = AVATAR__JOB__INIT;
    job.id = (char *) job_id;
    job.session_id = (char *) session_id;
    job.created_ms = (uint64_t) now_ms;
    job.deadline_ms = (uint64_t) deadline_ms;
    job.input_audio.data = (uint8_t *) submission->audio;
    job.input_audio.len = submission->audio_size;
    job.input_mime = (char *) (submission->audio_mime ? submission->audio_mime : "");
    job.input_text = (char *) (submission->text ? submission->text : "");
    job.character = (char *) (submission->character ? submission->character : "");
    job.n_history = turn_count;
    job.history = history_items;
    *size_out = avatar__job__get_packed_size(&job);
    packed = malloc(*size_out ? *size_out : 1);
    if (packed)
      avatar__job__pack(&job, packed);
  }
  free(history);
  free(history_items);
  return packed;
}

static enum MHD_Result respond_accepted(struct MHD_Connection *connection, request_t *request,
                                        const char *job_id, const char *session_id)
{
  char status_url[32 + ID_MAX];
  snprintf(status_url, sizeof status_url, "/api/jobs/%s", job_id);
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "job_id", job_id);
  cJSON_AddStringToObject(body, "session_id", session_id);
  cJSON_AddStringToObject(body, "status_url", status_url);
  struct MHD_Response *response = json_response(body);
  if (response)
    MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, status_url);
  return queue(connection, request, MHD_HTTP_ACCEPTED, response);
}

/* `retry_after_s` is the broker's estimate of when it admits work again (0: none). */
static enum MHD_Result respond_refused(struct MHD_Connection *connection, request_t *request,
                                       broker_submit_result_t result, unsigned retry_after_s)
{
  if (result == BROKER_NACK_FULL) {
    char retry_after[16];
    snprintf(retry_after, sizeof retry_after, "%u",
             retry_after_s > SUBMIT_RETRY_AFTER_MAX_S ? SUBMIT_RETRY_AFTER_MAX_S : retry_after_s);
    return respond_error_with(connection, request, MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded",
                              "The service is busy right now; please try again in a moment.",
                              MHD_HTTP_HEADER_RETRY_AFTER,
                              retry_after_s ? retry_after : SUBMIT_RETRY_AFTER_FULL);
  }
  return respond_error_with(connection, request, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                            "The answering service cannot be reached right now; please try again soon.",
                            MHD_HTTP_HEADER_RETRY_AFTER, SUBMIT_RETRY_AFTER_UNAVAILABLE);
}

/* Records the job as queued before submitting it: a status event may arrive
 * before the broker's answer does, and must find the record. */
static enum MHD_Result submit(http_api_t *api, struct MHD_Connection *connection,
                              request_t *request, const submission_t *submission)
{
  const http_api_config_t *config = &api->config;
  const char *requested = submission->requested_session_id;
  if (requested && *requested && !id_is_valid(requested))
    return respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                         "session_id must be 1 to 64 letters, digits, '-' or '_'.");
  int64_t now_ms = clock_wall_ms();
  char session_id[SESSION_ID_MAX + 1];
  char job_id[ID_HEX_SIZE];
  session_turn_t *turns = NULL;
  size_t turn_count = 0;
  if (session_store_open(config->sessions, requested, now_ms, session_id) != 0 ||
      id_random_hex(job_id) != 0 ||
      session_store_turns(config->sessions, session_id, now_ms, &turns, &turn_count) != 0)
    return respond_internal(connection, request);

  int64_t deadline_ms = now_ms + config->job_deadline_ms;
  size_t packed_size = 0;
  uint8_t *packed = pack_job(submission, job_id, session_id, now_ms, deadline_ms, turns,
                             turn_count, &packed_size);
  session_turns_free(turns, turn_count);
  if (!packed || job_store_create(config->jobs, job_id, session_id, submission->stage,
                                  submission->text, now_ms) != 0) {
    free(packed);
    return respond_internal(connection, request);
  }
  const pipeline_t *pipeline = config->pipeline;
  unsigned retry_after_s = 0;
  broker_submit_result_t result = pipeline->submit(pipeline->arg, submission->stage, job_id,
                                                   deadline_ms, packed, packed_size,
                                                   &retry_after_s);
  free(packed);

  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "job_id", job_id);
  cJSON_AddStringToObject(fields, "stage", submission->stage);
  cJSON_AddNumberToObject(fields, "bytes", (double) packed_size);
  cJSON_AddStringToObject(fields, "result", result == BROKER_ACK ? "ack"
                                            : result == BROKER_NACK_FULL ? "full"
                                                                         : "unavailable");
  log_event(result == BROKER_ACK ? LOG_INFO : LOG_WARN, "job_submitted", fields);

  if (result != BROKER_ACK) {
    /* The client is told to retry, so the broker client must not re-submit
     * this job on its own later (it keeps unanswered jobs for that). */
    pipeline->job_final(pipeline->arg, job_id);
    job_store_remove(config->jobs, job_id);
    /* A session opened for this request alone is known to nobody now: without this,
     * every refused first question left an empty session behind for SESSION_TTL_S. */
    if (!requested || !*requested)
      session_store_delete(config->sessions, session_id, now_ms);
    return respond_refused(connection, request, result, retry_after_s);
  }
  return respond_accepted(connection, request, job_id, session_id);
}

/* ---- GET /api/greeting ---------------------------------------------------- */

static enum MHD_Result handle_greeting(http_api_t *api, struct MHD_Connection *connection,
                                       request_t *request)
{
  if (!api->config.greeting)
    return respond_not_found(connection, request);
  const char *character =
    MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "character");
  if (character && *character && !character_is_valid(character))
    return respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                         "character must be 1 to 32 of a-z, 0-9, '-' or '_'.");
  int status = 0;
  cJSON *body = greeting_get(api->config.greeting, character ? character : "", &status);
  if (!body)
    return respond_refused(connection, request, BROKER_UNAVAILABLE, 0);
  return respond_json(connection, request, (unsigned) status, body);
}

/* ---- POST /api/complete-flow --------------------------------------------- */

static enum MHD_Result on_form_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *filename, const char *content_type,
                                     const char *transfer_encoding, const char *data,
                                     uint64_t offset, size_t size)
{
  (void) kind;
  (void) filename;
  (void) transfer_encoding;
  (void) offset;
  request_t *request = cls;
  /* MHD passes a NULL key for a part whose Content-Disposition has no name. */
  if (!key)
    return MHD_YES;
  if (strcmp(key, "audio") == 0) {
    if (!request->form_has_audio && content_type)
      snprintf(request->part_type, sizeof request->part_type, "%s", content_type);
    request->form_has_audio = true;
    /* Stop parsing once over the limit: the rest of the body is only counted. */
    return upload_buffer_append(&request->body, (const uint8_t *) data, size) == 0 ? MHD_YES
                                                                                   : MHD_NO;
  }
  if (strcmp(key, "session_id") == 0)
    return upload_buffer_append(&request->form_session_id, (const uint8_t *) data, size) == 0
             ? MHD_YES
             : MHD_NO;
  return MHD_YES; /* other fields are none of our business */
}

static bool content_length_over(struct MHD_Connection *connection, uint64_t limit)
{
  const char *value =
    MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *end;
  uint64_t length;
  return value && parse_u64(value, &end, &length) && length > limit;
}

static const char *request_content_type(struct MHD_Connection *connection)
{
  return MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
}

static uint64_t body_limit(const http_api_t *api, const request_t *request)
{
  if (request->route == ROUTE_ASK)
    return ASK_BODY_MAX;
  if (request->route == ROUTE_LOGIN)
    return LOGIN_BODY_MAX;
  return api->config.max_upload_bytes + (request->form ? FORM_OVERHEAD_MAX : 0);
}

static enum MHD_Result begin_complete_flow(http_api_t *api, struct MHD_Connection *connection,
                                           request_t *request)
{
  const char *content_type = request_content_type(connection);
  upload_buffer_init(&request->body, api->config.max_upload_bytes);
  if (upload_type_is(content_type, "multipart/form-data")) {
    upload_buffer_init(&request->form_session_id, FORM_FIELD_MAX);
    request->form =
      MHD_create_post_processor(connection, POST_BUFFER_SIZE, on_form_field, request);
    if (!request->form)
      return respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                           "The multipart body has no boundary.");
  } else if (upload_audio_family(content_type) == AUDIO_UNSUPPORTED ||
             upload_audio_family(content_type) == AUDIO_UNDECLARED) {
    return respond_error(connection, request, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                         "unsupported_media_type",
                         "Send the recording as audio/webm, audio/ogg, audio/wav, audio/mpeg or "
                         "audio/mp4, or as multipart/form-data with an \"audio\" field.");
  }
  if (content_length_over(connection, body_limit(api, request)))
    return respond_too_large(connection, request);
  return MHD_YES;
}

/* true when the upload's header claims more audio than the limit: refused
 * here, before it costs a trip through the pipeline. */
static bool audio_claim_too_long(const http_api_t *api, const uint8_t *data, size_t size)
{
  if (api->config.max_audio_ms <= 0)
    return false;
  int64_t claimed_ms = audio_header_claimed_ms(upload_sniff(data, size), data, size);
  if (claimed_ms <= api->config.max_audio_ms)
    return false;
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddNumberToObject(fields, "claimed_ms", (double) claimed_ms);
  cJSON_AddNumberToObject(fields, "limit_ms", (double) api->config.max_audio_ms);
  log_event(LOG_INFO, "audio_claim_too_long", fields);
  return true;
}

static enum MHD_Result finish_complete_flow(http_api_t *api, struct MHD_Connection *connection,
                                            request_t *request)
{
  if (request->body.overflowed || request->bytes_received > body_limit(api, request))
    return respond_too_large(connection, request);
  if (request->form_failed)
    return respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                         "The multipart body could not be read.");
  const char *declared_type =
    request->form ? request->part_type : request_content_type(connection);
  audio_family_t declared = upload_audio_family(declared_type);
  if (request->form && request->form_has_audio && declared == AUDIO_UNSUPPORTED)
    return respond_error(connection, request, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                         "unsupported_media_type", "The \"audio\" part is not a supported audio type.");
  if (request->body.size == 0)
    return respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                         request->form && !request->form_has_audio
                           ? "The form has no \"audio\" field."
                           : "The request has no audio.");
  if (!upload_sniff_matches(declared, request->body.data, request->body.size))
    return respond_error(connection, request, MHD_HTTP_UNPROCESSABLE_CONTENT, "unprocessable",
                         "The upload is not audio of the declared type.");
  if (audio_claim_too_long(api, request->body.data, request->body.size))
    return respond_error(connection, request, MHD_HTTP_UNPROCESSABLE_CONTENT, "unprocessable",
                         "The recording is longer than this server accepts.");

  char mime[MIME_MAX];
  snprintf(mime, sizeof mime, "%s",
           declared == AUDIO_UNDECLARED
             ? upload_family_mime(upload_sniff(request->body.data, request->body.size))
             : declared_type);
  char form_session_id[FORM_FIELD_MAX + 1] = "";
  if (request->form_session_id.size)
    snprintf(form_session_id, sizeof form_session_id, "%.*s",
             (int) request->form_session_id.size, (const char *) request->form_session_id.data);
  const char *session_id =
    MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "session_id");
  if (!session_id || !*session_id)
    session_id = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "X-Session-Id");
  if (!session_id || !*session_id)
    session_id = form_session_id;

  const char *character =
    MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "character");
  if (character && *character && !character_is_valid(character))
    return respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                         "\"character\" must be a character name like \"ada\".");

  metrics_upload(api->config.metrics, request->body.size);
  submission_t submission = {
    .stage = "stt",
    .audio = request->body.data,
    .audio_size = request->body.size,
    .audio_mime = mime,
    .requested_session_id = session_id,
    .character = character && *character ? character : NULL,
  };
  return submit(api, connection, request, &submission);
}

/* ---- POST /api/ask -------------------------------------------------------- */

static enum MHD_Result begin_ask(http_api_t *api, struct MHD_Connection *connection,
                                 request_t *request)
{
  const char *content_type = request_content_type(connection);
  if (content_type && !upload_type_is(content_type, "application/json"))
    return respond_error(connection, request, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                         "unsupported_media_type", "Send the question as application/json.");
  upload_buffer_init(&request->body, ASK_BODY_MAX);
  if (content_length_over(connection, body_limit(api, request)))
    return respond_too_large(connection, request);
  return MHD_YES;
}

static bool is_blank(const char *text)
{
  for (; *text; text++)
    if (*text != ' ' && *text != '\t' && *text != '\n' && *text != '\r')
      return false;
  return true;
}

static enum MHD_Result finish_ask(http_api_t *api, struct MHD_Connection *connection,
                                  request_t *request)
{
  if (request->body.overflowed)
    return respond_too_large(connection, request);
  cJSON *body = cJSON_ParseWithLength((const char *) request->body.data, request->body.size);
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(body, "text");
  const cJSON *session = cJSON_GetObjectItemCaseSensitive(body, "session_id");
  const cJSON *character = cJSON_GetObjectItemCaseSensitive(body, "character");
  enum MHD_Result result;
  if (!cJSON_IsObject(body))
    result = respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                           "The body must be a JSON object like {\"text\": \"...\"}.");
  else if (!cJSON_IsString(text) || is_blank(text->valuestring))
    result = respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                           "Please type a question (\"text\" is missing or empty).");
  else if (session && !cJSON_IsNull(session) && !cJSON_IsString(session))
    result = respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                           "\"session_id\" must be a string.");
  else if (character && !cJSON_IsNull(character) &&
           !(cJSON_IsString(character) && character_is_valid(character->valuestring)))
    result = respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                           "\"character\" must be a character name like \"ada\".");
  else if (!upload_text_is_utf8(text->valuestring))
    result = respond_error(connection, request, MHD_HTTP_UNPROCESSABLE_CONTENT, "unprocessable",
                           "The question is not valid UTF-8 text.");
  else if (upload_utf8_length(text->valuestring) > api->config.ask_max_chars)
    result = respond_error(connection, request, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
                           "The question is too long.");
  else {
    submission_t submission = {
      .stage = "chat",
      .text = text->valuestring,
      .requested_session_id = cJSON_IsString(session) ? session->valuestring : NULL,
      .character = cJSON_IsString(character) ? character->valuestring : NULL,
    };
    result = submit(api, connection, request, &submission);
  }
  cJSON_Delete(body);
  return result;
}

/* ---- dispatch ------------------------------------------------------------- */

static const struct {
  const char *prefix;
  bool exact;
  route_t route;
} routes[] = {
  {"/api/complete-flow", true, ROUTE_COMPLETE_FLOW},
  {"/api/ask", true, ROUTE_ASK},
  {"/api/jobs/", false, ROUTE_JOB},
  {"/api/sessions/", false, ROUTE_SESSION},
  {"/media/", false, ROUTE_MEDIA},
  {"/healthz", true, ROUTE_HEALTHZ},
  {"/metrics", true, ROUTE_METRICS},
  {"/login", true, ROUTE_LOGIN},
  {"/idle.mp4", true, ROUTE_IDLE_VIDEO},
  {"/api/greeting", true, ROUTE_GREETING},
  {"/api/", false, ROUTE_API_OTHER},
  {"/", false, ROUTE_STATIC},
};

static void route_request(request_t *request, const char *url)
{
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    size_t length = strlen(routes[i].prefix);
    bool match = routes[i].exact ? strcmp(url, routes[i].prefix) == 0
                                 : strncmp(url, routes[i].prefix, length) == 0;
    if (match) {
      request->route = routes[i].route;
      request->rest = url + length;
      return;
    }
  }
  request->route = ROUTE_NOT_FOUND;
  request->rest = "";
}

static bool method_is(const request_t *request, const char *method)
{
  return strcmp(request->method, method) == 0;
}

static bool is_read(const request_t *request)
{
  return method_is(request, MHD_HTTP_METHOD_GET) || method_is(request, MHD_HTTP_METHOD_HEAD);
}

/* ---- guards: header size, CORS, rate limits, API token ------------------- */

static enum MHD_Result add_value_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
  (void) kind;
  size_t *total = cls;
  *total += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
  return MHD_YES;
}

/* Headers that fit in the connection's memory but pass our limit get a JSON
 * 431 here; larger ones never reach us (libmicrohttpd answers 431 itself). */
static bool headers_too_large(const http_api_t *api, struct MHD_Connection *connection)
{
  if (!api->config.max_header_bytes)
    return false;
  size_t total = 0;
  MHD_get_connection_values(connection, MHD_HEADER_KIND, add_value_size, &total);
  MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, add_value_size, &total);
  return total > api->config.max_header_bytes;
}

static void client_key(const http_api_t *api, struct MHD_Connection *connection,
                       char key[CLIENT_KEY_MAX])
{
  if (api->config.trust_forwarded_for &&
      client_key_from_forwarded(
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "X-Forwarded-For"), key) == 0)
    return;
  const union MHD_ConnectionInfo *info =
    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (!info || client_key_from_sockaddr(info->client_addr, key) != 0)
    snprintf(key, CLIENT_KEY_MAX, "unknown");
}

static enum MHD_Result respond_preflight(struct MHD_Connection *connection, request_t *request)
{
  struct MHD_Response *response = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (response && request->cors_origin) {
    MHD_add_response_header(response, "Access-Control-Allow-Methods", cors_allow_methods);
    MHD_add_response_header(response, "Access-Control-Allow-Headers", cors_allow_headers);
    MHD_add_response_header(response, "Access-Control-Max-Age", "600");
  }
  if (response)
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, cors_allow_methods);
  return queue(connection, request, MHD_HTTP_NO_CONTENT, response);
}

/* true when the login cookie is present and right. Only same-origin requests
 * may use it: a cross-origin caller, even an allowed one, sends the token. */
static bool has_login_cookie(const http_api_t *api, struct MHD_Connection *connection,
                             const request_t *request)
{
  return !request->cors_origin &&
         api_token_matches_cookie(
           &api->token, MHD_lookup_connection_value(connection, MHD_COOKIE_KIND,
                                                    SECURITY_COOKIE_NAME));
}

/* Applies the guards to an /api/ (or /login) request. true when one of them
 * answered, with MHD's result in *result. */
static bool guard_request(http_api_t *api, struct MHD_Connection *connection, request_t *request,
                          bool is_api, enum MHD_Result *result)
{
  const char *origin = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Origin");
  const char *host = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Host");
  if (origin && !origin_is_same(origin, host)) {
    /* The login form is for the page itself: no other origin may post it. */
    if (!is_api || !origin_list_allows(api->origins, origin)) {
      *result = respond_error(connection, request, MHD_HTTP_FORBIDDEN, "forbidden_origin",
                              "Requests from this web origin are not allowed.");
      return true;
    }
    request->cors_origin = origin;
  }
  if (method_is(request, MHD_HTTP_METHOD_OPTIONS)) {
    *result = respond_preflight(connection, request);
    return true;
  }
  rate_limiter_t *limiter =
    method_is(request, MHD_HTTP_METHOD_POST) ? api->submit_limiter : api->poll_limiter;
  if (limiter) {
    char key[CLIENT_KEY_MAX];
    client_key(api, connection, key);
    unsigned wait_s = rate_limiter_take(limiter, key, clock_mono_ms());
    if (wait_s) {
      char retry_after[16];
      snprintf(retry_after, sizeof retry_after, "%u", wait_s);
      *result = respond_error_with(connection, request, MHD_HTTP_TOO_MANY_REQUESTS,
                                   "rate_limited",
                                   "Too many requests; please wait a moment and try again.",
                                   MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
      return true;
    }
  }
  if (is_api && api->token.enabled &&
      !api_token_matches_bearer(
        &api->token,
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION)) &&
      !has_login_cookie(api, connection, request)) {
    *result = respond_error_with(connection, request, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                 "This API needs an access token: send \"Authorization: Bearer "
                                 "<token>\", or sign in at /login.",
                                 MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                 "Bearer realm=\"talking-avatar\"");
    return true;
  }
  return false;
}

/* ---- the login form (only when GATEWAY_API_TOKEN is set) ------------------ */

/* With a token set, the page at / sends the person to the login form first: it
 * sets an HttpOnly, SameSite=Strict cookie that the page's own API calls then
 * carry, so the page itself needs no change. No script: the CSP stays strict. */
static const char login_page_head[] =
  "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
  "<title>Sign in</title></head><body><main><h1>Sign in</h1>"
  "<p>This assistant needs its access token.</p>";
static const char login_page_failed[] = "<p role=\"alert\">That token is not right.</p>";
static const char login_page_form[] =
  "<form method=\"post\" action=\"/login\"><label>Access token "
  "<input type=\"password\" name=\"token\" autocomplete=\"current-password\" required autofocus>"
  "</label> <button type=\"submit\">Sign in</button></form></main></body></html>\n";

static enum MHD_Result respond_login_page(struct MHD_Connection *connection, request_t *request)
{
  bool failed = MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "failed") != NULL;
  size_t size = strlen(login_page_head) + strlen(login_page_failed) + strlen(login_page_form) + 1;
  char *page = malloc(size);
  if (!page)
    return respond_internal(connection, request);
  snprintf(page, size, "%s%s%s", login_page_head, failed ? login_page_failed : "",
           login_page_form);
  return queue(connection, request, MHD_HTTP_OK,
               text_response(page, "text/html; charset=utf-8"));
}

static enum MHD_Result respond_see_other(struct MHD_Connection *connection, request_t *request,
                                         const char *location, const char *set_cookie)
{
  struct MHD_Response *response = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (response) {
    MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, location);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (set_cookie)
      MHD_add_response_header(response, MHD_HTTP_HEADER_SET_COOKIE, set_cookie);
  }
  return queue(connection, request, MHD_HTTP_SEE_OTHER, response);
}

/* The value of field `name` in the urlencoded form `body` (decoded in place),
 * or NULL. */
static char *form_value(char *body, const char *name)
{
  size_t name_length = strlen(name);
  for (char *field = body; field && *field;) {
    char *next = strchr(field, '&');
    if (next)
      *next++ = '\0';
    if (strncmp(field, name, name_length) == 0 && field[name_length] == '=') {
      char *value = field + name_length + 1;
      for (char *p = value; *p; p++)
        if (*p == '+')
          *p = ' ';
      MHD_http_unescape(value);
      return value;
    }
    field = next;
  }
  return NULL;
}

/* true for the page itself when a token is set and the browser has not signed in. */
static bool ui_needs_login(const http_api_t *api, struct MHD_Connection *connection,
                           const request_t *request)
{
  return api->token.enabled &&
         (!*request->rest || strcmp(request->rest, "index.html") == 0) &&
         !has_login_cookie(api, connection, request);
}

static enum MHD_Result finish_login(http_api_t *api, struct MHD_Connection *connection,
                                    request_t *request)
{
  if (request->body.overflowed)
    return respond_too_large(connection, request);
  char body[LOGIN_BODY_MAX + 1];
  memcpy(body, request->body.data ? (const char *) request->body.data : "", request->body.size);
  body[request->body.size] = '\0';
  bool signed_in = api_token_matches(&api->token, form_value(body, "token"));
  security_wipe(body, sizeof body);
  log_msg(signed_in ? LOG_INFO : LOG_WARN, signed_in ? "login" : "login_failed",
          signed_in ? "a browser signed in" : "a wrong token was given to the login form");
  if (!signed_in)
    return respond_see_other(connection, request, "/login?failed=1", NULL);
  char cookie[256];
  snprintf(cookie, sizeof cookie, "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict%s",
           SECURITY_COOKIE_NAME, api->token.cookie, LOGIN_COOKIE_MAX_AGE_S,
           api->tls_cert ? "; Secure" : "");
  enum MHD_Result result = respond_see_other(connection, request, "/", cookie);
  security_wipe(cookie, sizeof cookie);
  return result;
}

/* The first call, with the headers only. Answers at once unless a body must be
 * read first. */
static enum MHD_Result begin(http_api_t *api, struct MHD_Connection *connection,
                             request_t *request)
{
  if (headers_too_large(api, connection))
    return respond_error(connection, request, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                         "headers_too_large", "The request's headers are larger than this "
                         "server accepts.");
  bool is_api = request->route == ROUTE_COMPLETE_FLOW || request->route == ROUTE_ASK ||
                request->route == ROUTE_JOB || request->route == ROUTE_SESSION ||
                request->route == ROUTE_GREETING || request->route == ROUTE_API_OTHER;
  if (is_api || request->route == ROUTE_LOGIN) {
    enum MHD_Result result;
    if (guard_request(api, connection, request, is_api, &result))
      return result;
  }
  switch (request->route) {
  case ROUTE_COMPLETE_FLOW:
    if (!method_is(request, MHD_HTTP_METHOD_POST))
      return respond_bad_method(connection, request, "POST");
    return begin_complete_flow(api, connection, request);
  case ROUTE_ASK:
    if (!method_is(request, MHD_HTTP_METHOD_POST))
      return respond_bad_method(connection, request, "POST");
    return begin_ask(api, connection, request);
  case ROUTE_SESSION:
    if (!is_read(request) && !method_is(request, MHD_HTTP_METHOD_DELETE))
      return respond_bad_method(connection, request, "GET, HEAD, DELETE");
    return handle_session(api, connection, request);
  case ROUTE_LOGIN:
    if (!api->token.enabled)
      return respond_not_found(connection, request);
    if (method_is(request, MHD_HTTP_METHOD_POST)) {
      upload_buffer_init(&request->body, LOGIN_BODY_MAX);
      return MHD_YES;
    }
    if (!is_read(request))
      return respond_bad_method(connection, request, "GET, HEAD, POST");
    return respond_login_page(connection, request);
  case ROUTE_API_OTHER:
  case ROUTE_NOT_FOUND:
    return respond_not_found(connection, request);
  case ROUTE_STATIC:
  case ROUTE_JOB:
  case ROUTE_GREETING:
  case ROUTE_MEDIA:
  case ROUTE_IDLE_VIDEO:
  case ROUTE_HEALTHZ:
  case ROUTE_METRICS:
    break;
  }
  if (!is_read(request))
    return respond_bad_method(connection, request, "GET, HEAD");
  switch (request->route) {
  case ROUTE_JOB: return handle_job(api, connection, request);
  case ROUTE_GREETING: return handle_greeting(api, connection, request);
  case ROUTE_MEDIA: return handle_media(api, connection, request);
  case ROUTE_IDLE_VIDEO: return handle_idle_video(api, connection, request);
  case ROUTE_HEALTHZ: return handle_healthz(api, connection, request);
  case ROUTE_METRICS: return handle_metrics(api, connection, request);
  default:
    if (ui_needs_login(api, connection, request))
      return respond_see_other(connection, request, "/login", NULL);
    return handle_static(api, connection, request);
  }
}

static void consume(http_api_t *api, request_t *request, const char *data, size_t size)
{
  request->bytes_received += size;
  if (request->bytes_received > body_limit(api, request) || request->body.overflowed ||
      request->form_failed)
    return; /* over the limit or unparsable: count the rest, keep none of it */
  if (!request->form) {
    upload_buffer_append(&request->body, (const uint8_t *) data, size);
    return;
  }
  if (MHD_post_process(request->form, data, size) != MHD_YES &&
      !request->body.overflowed && !request->form_session_id.overflowed)
    request->form_failed = true;
}

static enum MHD_Result finish(http_api_t *api, struct MHD_Connection *connection,
                              request_t *request)
{
  if (request->form_session_id.overflowed)
    return respond_error(connection, request, MHD_HTTP_BAD_REQUEST, "bad_request",
                         "The session_id field is too long.");
  if (request->route == ROUTE_ASK)
    return finish_ask(api, connection, request);
  if (request->route == ROUTE_LOGIN)
    return finish_login(api, connection, request);
  return finish_complete_flow(api, connection, request);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
  (void) version;
  http_api_t *api = cls;
  request_t *request = *req_cls;
  if (!request) {
    request = calloc(1, sizeof *request);
    if (!request)
      return MHD_NO;
    *req_cls = request;
    request->api = api;
    const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    request->guard = info ? info->socket_context : NULL;
    conn_guard_reading_body(api->guard, request->guard);
    request->started_ms = clock_mono_ms();
    snprintf(request->method, sizeof request->method, "%s", method);
    route_request(request, url);
    return begin(api, connection, request);
  }
  if (*upload_data_size) {
    if (!request->status)
      consume(api, request, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (request->status)
    return MHD_YES;
  return finish(api, connection, request);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                         enum MHD_RequestTerminationCode reason)
{
  (void) connection;
  http_api_t *api = cls;
  request_t *request = *req_cls;
  if (!request)
    return;
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "method", request->method);
  cJSON_AddStringToObject(fields, "route", route_names[request->route]);
  cJSON_AddNumberToObject(fields, "status", request->status);
  cJSON_AddNumberToObject(fields, "ms", (double) (clock_mono_ms() - request->started_ms));
  if (request->bytes_received)
    cJSON_AddNumberToObject(fields, "bytes_in", (double) request->bytes_received);
  if (reason != MHD_REQUEST_TERMINATED_COMPLETED_OK)
    cJSON_AddBoolToObject(fields, "aborted", true);
  log_event(LOG_INFO, "http_request", fields);
  conn_guard_request_done(api->guard, request->guard);
  if (request->form)
    MHD_destroy_post_processor(request->form);
  if (request->route == ROUTE_LOGIN)
    security_wipe(request->body.data, request->body.size); /* it held the token */
  upload_buffer_free(&request->body);
  upload_buffer_free(&request->form_session_id);
  free(request);
  *req_cls = NULL;
}

/* ---- daemon --------------------------------------------------------------- */

static void on_mhd_log(void *cls, const char *fmt, va_list args)
{
  (void) cls;
  char message[512];
  vsnprintf(message, sizeof message, fmt, args);
  message[strcspn(message, "\n")] = '\0';
  log_msg(LOG_WARN, "http_server", "%s", message);
}

/* Tracks each connection in the guard, from start to close (the descriptor is
 * still open when the close is reported). */
static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
  http_api_t *api = cls;
  if (!api->guard)
    return;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = info ? conn_guard_opened(api->guard, info->connect_fd) : NULL;
  } else {
    conn_guard_closed(api->guard, *socket_context);
    *socket_context = NULL;
  }
}

/* Reads a whole PEM file (certificate or key) into a new string; NULL when it
 * cannot be read or is larger than any PEM we expect. Its content is never
 * logged, only its path. */
static char *read_pem(const char *path)
{
  FILE *file = fopen(path, "re");
  char *text = file ? malloc(TLS_FILE_MAX + 1) : NULL;
  size_t size = text ? fread(text, 1, TLS_FILE_MAX + 1, file) : 0;
  bool ok = text && !ferror(file) && size > 0 && size <= TLS_FILE_MAX;
  int saved = errno;
  if (file)
    fclose(file);
  if (!ok) {
    log_msg(LOG_ERROR, "tls_file_unreadable", "%s: %s", path,
            !file ? strerror(saved) : size > TLS_FILE_MAX ? "too large" : "empty or unreadable");
    if (text)
      security_wipe(text, TLS_FILE_MAX + 1);
    free(text);
    return NULL;
  }
  text[size] = '\0';
  return text;
}

/* Sets up the guards of `self` from its config. 0, or -1 (logged). */
static int start_guards(http_api_t *self)
{
  const http_api_config_t *config = &self->config;
  size_t clients = config->rate_clients_max ? config->rate_clients_max : 10000;
  if (api_token_init(&self->token, config->api_token) != 0 ||
      origin_list_parse(config->cors_origins, &self->origins) != 0)
    return -1;
  if (config->submit_per_min &&
      !(self->submit_limiter = rate_limiter_new(config->submit_per_min,
                                                config->submit_burst ? config->submit_burst : 1,
                                                clients)))
    return -1;
  if (config->poll_per_min &&
      !(self->poll_limiter = rate_limiter_new(config->poll_per_min,
                                              config->poll_burst ? config->poll_burst : 1,
                                              clients)))
    return -1;
  if (config->header_timeout_s || config->body_timeout_s) {
    /* A zero deadline is none: a century. */
    int64_t never_ms = INT64_C(100) * 365 * 86400 * 1000;
    self->guard = conn_guard_new(
      config->header_timeout_s ? (int64_t) config->header_timeout_s * 1000 : never_ms,
      config->body_timeout_s ? (int64_t) config->body_timeout_s * 1000 : never_ms);
    if (!self->guard)
      return -1;
  }
  bool has_cert = config->tls_cert_file && *config->tls_cert_file;
  bool has_key = config->tls_key_file && *config->tls_key_file;
  if (has_cert != has_key) {
    log_msg(LOG_ERROR, "tls_config", "set both GATEWAY_TLS_CERT and GATEWAY_TLS_KEY, or neither");
    return -1;
  }
  if (has_cert && (!(self->tls_cert = read_pem(config->tls_cert_file)) ||
                   !(self->tls_key = read_pem(config->tls_key_file))))
    return -1;
  return 0;
}

static void stop_guards(http_api_t *self)
{
  conn_guard_destroy(&self->guard);
  rate_limiter_destroy(&self->submit_limiter);
  rate_limiter_destroy(&self->poll_limiter);
  origin_list_destroy(&self->origins);
  api_token_clear(&self->token);
  free(self->tls_cert);
  if (self->tls_key)
    security_wipe(self->tls_key, strlen(self->tls_key));
  free(self->tls_key);
  self->tls_cert = self->tls_key = NULL;
}

/* Fills `address` from a numeric IPv4 or IPv6 literal. */
static int make_address(const char *text, uint16_t port, struct sockaddr_storage *address)
{
  memset(address, 0, sizeof *address);
  struct sockaddr_in *v4 = (struct sockaddr_in *) address;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) address;
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return 0;
  }
  if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return 0;
  }
  return -1;
}

http_api_t *http_api_start(const http_api_config_t *config)
{
  struct sockaddr_storage address;
  if (make_address(config->bind_address, config->port, &address) != 0) {
    log_msg(LOG_ERROR, "http_bind_failed", "GATEWAY_BIND %s is not an IP address",
            config->bind_address);
    return NULL;
  }
  http_api_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->config = *config;
  self->static_dir_fd = open(config->static_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (self->static_dir_fd < 0)
    log_msg(LOG_WARN, "static_dir_missing", "%s: %s; the web UI will answer 404",
            config->static_dir, strerror(errno));
  /* poll(2), not epoll: in epoll mode libmicrohttpd 0.9.75 misses the end of
   * stream of a client that vanishes mid-upload and holds its buffers until
   * the idle timeout; with poll it notices at once (test_gateway_security). */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
  if (address.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  /* Headers up to a few times our own limit (with libmicrohttpd's records of
   * them) fit in a connection's memory, so that limit answers JSON before
   * libmicrohttpd's own 431 would. */
  size_t memory_limit = 8 * config->max_header_bytes;
  if (memory_limit < CONNECTION_MEMORY_MIN)
    memory_limit = CONNECTION_MEMORY_MIN;
  struct MHD_OptionItem options[6];
  size_t option_count = 0;
  options[option_count++] =
    (struct MHD_OptionItem) {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t) memory_limit, NULL};
  if (config->connections_per_ip)
    options[option_count++] = (struct MHD_OptionItem) {
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t) config->connections_per_ip, NULL};
  bool guards_ready = start_guards(self) == 0;
  if (guards_ready && self->tls_cert) {
    flags |= MHD_USE_TLS;
    options[option_count++] =
      (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_CERT, 0, self->tls_cert};
    options[option_count++] = (struct MHD_OptionItem) {MHD_OPTION_HTTPS_MEM_KEY, 0, self->tls_key};
  }
  options[option_count] = (struct MHD_OptionItem) {MHD_OPTION_END, 0, NULL};
  if (guards_ready)
    self->daemon = MHD_start_daemon(
      flags, config->port, NULL, NULL, on_request, self,
      MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &address,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) config->threads,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned int) config->connection_limit,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) config->connection_timeout_s,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, self,
      MHD_OPTION_NOTIFY_CONNECTION, on_connection, self,
      MHD_OPTION_ARRAY, options,
      MHD_OPTION_END);
  if (!self->daemon) {
    log_msg(LOG_ERROR, "http_start_failed", "cannot serve on %s port %u",
            config->bind_address, (unsigned) config->port);
    stop_guards(self);
    if (self->static_dir_fd >= 0)
      close(self->static_dir_fd);
    free(self);
    return NULL;
  }
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddBoolToObject(fields, "tls", self->tls_cert != NULL);
  cJSON_AddBoolToObject(fields, "api_token", self->token.enabled);
  cJSON_AddBoolToObject(fields, "cors", self->origins != NULL);
  cJSON_AddNumberToObject(fields, "submit_per_min", config->submit_per_min);
  cJSON_AddNumberToObject(fields, "poll_per_min", config->poll_per_min);
  log_event(LOG_INFO, "http_guards", fields);
  return self;
}

size_t http_api_open_connections(const http_api_t *self)
{
  return self->guard ? conn_guard_open_count(self->guard) : 0;
}

uint64_t http_api_slow_clients_cut(const http_api_t *self)
{
  return self->guard ? conn_guard_cut_count(self->guard) : 0;
}

uint16_t http_api_port(const http_api_t *self)
{
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT);
  return info ? info->port : 0;
}

void http_api_stop(http_api_t **self_p)
{
  http_api_t *self = *self_p;
  if (!self)
    return;
  MHD_stop_daemon(self->daemon);
  stop_guards(self);
  if (self->static_dir_fd >= 0)
    close(self->static_dir_fd);
  free(self);
  *self_p = NULL;
}
