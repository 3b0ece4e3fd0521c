/* avatar/did: D-ID talks (external-apis.md §4). Uploads the speech to /audios, creates
 * a talk with the presenter image DID_SOURCE_URL speaking that audio, polls
 * /talks/{id} with a growing pause until done/error/rejected, then downloads the
 * finished MP4 from its pre-signed result_url, so the page plays the video from our
 * own origin (result URLs expire). The whole render stays within the job deadline. */
#include "avatar_backend.h"

#include "clock.h"
#include "config.h"
#include "http_client.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_POLLS 60
#define MAX_VIDEO_BYTES (64u << 20)

typedef struct {
  avatar_backend_t base;
  char base_url[512];
  char source_url[1024];
  char auth_header[1100];   /* "Authorization: Basic <DID_API_KEY>" exactly as issued */
  long poll_ms;             /* first pause between polls; grows to twice this */
  long deadline_ms;         /* whole render budget; each call gets what is left */
  int max_attempts;
} did_t;

/* One render's clock: every call gets what is left of the budget. */
typedef struct {
  const did_t *self;
  int64_t end_ms;
} budget_t;

static long call_timeout(const budget_t *budget)
{
  int64_t left = budget->end_ms - clock_mono_ms();
  return left > 0 ? (long) left : 0;
}

static void pause_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int answer_error(const char *what, const http_response_t *resp, stage_error_t *err)
{
  return stage_error_set(err, resp->status == 429 ? "overloaded" : "backend_error",
                         "D-ID %s answered HTTP %ld: %s", what, resp->status,
                         resp->error_message);
}

/* Sends one call to D-ID (or, with `authorized` false, to a pre-signed URL). */
static int call(const budget_t *budget, http_request_t *req, bool authorized,
                http_response_t *resp, stage_error_t *err)
{
  const char *headers[] = {authorized ? budget->self->auth_header : NULL, NULL};
  long timeout = call_timeout(budget);
  if (timeout <= 0)
    return stage_error_set(err, "timeout", "D-ID did not finish the video within %ld ms.",
                           budget->self->deadline_ms);
  req->headers = headers;
  req->timeout_ms = timeout;
  req->max_attempts = budget->self->max_attempts;
  req->backend = "did";
  return http_send(req, resp, err);
}

static const char *json_string(const cJSON *object, const char *name)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
  return cJSON_IsString(item) && *item->valuestring ? item->valuestring : NULL;
}

/* Parses a 2xx body into JSON; NULL (err set) when it is not an object. */
static cJSON *parse_json(const char *what, const http_response_t *resp, stage_error_t *err)
{
  cJSON *root = cJSON_ParseWithLength((const char *) resp->body, resp->body_size);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    stage_error_set(err, "backend_error", "D-ID %s sent an answer that is not JSON.", what);
    return NULL;
  }
  return root;
}

/* POST /audios; returns the malloc'd s3:// URL of the upload. */
static char *upload_audio(const budget_t *budget, const avatar_input_t *in, stage_error_t *err)
{
  const char *mime = in->audio_mime && *in->audio_mime ? in->audio_mime : "audio/wav";
  const char *filename = !strcmp(mime, "audio/mpeg") ? "reply.mp3"
                         : !strcmp(mime, "audio/ogg") ? "reply.ogg" : "reply.wav";
  http_part_t part = {.name = "audio", .data = in->audio, .size = in->audio_size,
                      .filename = filename, .content_type = mime};
  char url[600];
  snprintf(url, sizeof url, "%s/audios", budget->self->base_url);
  http_request_t req = {.method = "POST", .url = url, .parts = &part, .part_count = 1,
                        .max_response_bytes = 1 << 20};
  http_response_t resp = {0};
  if (call(budget, &req, true, &resp, err) != 0)
    return NULL;
  char *audio_url = NULL;
  if (resp.status != 201 && resp.status != 200) {
    answer_error("audio upload", &resp, err);
  } else {
    cJSON *root = parse_json("audio upload", &resp, err);
    const char *found = root ? json_string(root, "url") : NULL;
    if (root && !found)
      stage_error_set(err, "backend_error", "D-ID audio upload answered without a url.");
    if (found && !(audio_url = strdup(found)))
      stage_error_set(err, "backend_error", "Out of memory.");
    cJSON_Delete(root);
  }
  http_response_release(&resp);
  return audio_url;
}

/* POST /talks; returns the malloc'd talk id. */
static char *create_talk(const budget_t *budget, const char *audio_url, stage_error_t *err)
{
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "source_url", budget->self->source_url);
  cJSON *script = cJSON_AddObjectToObject(root, "script");
  cJSON_AddStringToObject(script, "type", "audio");
  cJSON_AddStringToObject(script, "audio_url", audio_url);
  cJSON *config = cJSON_AddObjectToObject(root, "config");
  cJSON_AddBoolToObject(config, "stitch", true);
  cJSON_AddStringToObject(config, "result_format", "mp4");
  char *body = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!body) {
    stage_error_set(err, "backend_error", "Out of memory.");
    return NULL;
  }
  char url[600];
  snprintf(url, sizeof url, "%s/talks", budget->self->base_url);
  http_request_t req = {.method = "POST", .url = url, .body = (const uint8_t *) body,
                        .body_size = strlen(body),
                        .content_type = "application/json; charset=utf-8",
                        .max_response_bytes = 1 << 20};
  http_response_t resp = {0};
  int rc = call(budget, &req, true, &resp, err);
  free(body);
  if (rc != 0)
    return NULL;
  char *id = NULL;
  if (resp.status != 201 && resp.status != 200) {
    answer_error("talk creation", &resp, err);
  } else {
    cJSON *talk = parse_json("talk creation", &resp, err);
    const char *found = talk ? json_string(talk, "id") : NULL;
    if (talk && !found)
      stage_error_set(err, "backend_error", "D-ID talk creation answered without an id.");
    if (found && !(id = strdup(found)))
      stage_error_set(err, "backend_error", "Out of memory.");
    cJSON_Delete(talk);
  }
  http_response_release(&resp);
  return id;
}

/* The provider's reason for a failed talk: error.kind and error.description. */
static int talk_failed(const cJSON *talk, const char *status, stage_error_t *err)
{
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(talk, "error");
  const char *kind = json_string(error, "kind");
  const char *description = json_string(error, "description");
  return stage_error_set(err, "backend_error", "D-ID could not make the video (%s%s%s): %s",
                         status, kind ? ", " : "", kind ? kind : "",
                         description ? description : "no description given");
}

/* Polls GET /talks/{id} until a terminal status; returns the malloc'd result_url. */
static char *wait_for_talk(const budget_t *budget, const char *id, uint32_t *duration_ms,
                           stage_error_t *err)
{
  char url[700];
  if (snprintf(url, sizeof url, "%s/talks/%s", budget->self->base_url, id) >= (int) sizeof url) {
    stage_error_set(err, "backend_error", "D-ID gave a talk id that is too long.");
    return NULL;
  }
  long pause = budget->self->poll_ms;
  for (int poll = 1; poll <= MAX_POLLS; poll++) {
    /* A talk is never done at once: wait first, then ask, the pause growing by a
     * quarter up to twice the first one. */
    int64_t left = budget->end_ms - clock_mono_ms();
    if (left <= pause) {
      stage_error_set(err, "timeout", "D-ID did not finish the video within %ld ms.",
                      budget->self->deadline_ms);
      return NULL;
    }
    pause_ms(pause);
    if (pause < 2 * budget->self->poll_ms)
      pause += budget->self->poll_ms / 4 > 0 ? budget->self->poll_ms / 4 : 1;
    http_request_t req = {.method = "GET", .url = url, .max_response_bytes = 1 << 20};
    http_response_t resp = {0};
    if (call(budget, &req, true, &resp, err) != 0)
      return NULL;
    if (resp.status != 200) {
      answer_error("talk status", &resp, err);
      http_response_release(&resp);
      return NULL;
    }
    cJSON *talk = parse_json("talk status", &resp, err);
    http_response_release(&resp);
    if (!talk)
      return NULL;
    const char *status = json_string(talk, "status");
    char *result_url = NULL;
    bool finished = true;
    if (status && !strcmp(status, "done")) {
      const char *found = json_string(talk, "result_url");
      const cJSON *duration = cJSON_GetObjectItemCaseSensitive(talk, "duration");
      if (cJSON_IsNumber(duration) && duration->valuedouble > 0)
        *duration_ms = (uint32_t) (duration->valuedouble * 1000);
      if (!found)
        stage_error_set(err, "backend_error", "D-ID reported the talk done without result_url.");
      else if (!(result_url = strdup(found)))
        stage_error_set(err, "backend_error", "Out of memory.");
    } else if (status && (!strcmp(status, "error") || !strcmp(status, "rejected"))) {
      talk_failed(talk, status, err);
    } else {
      finished = false;
    }
    cJSON_Delete(talk);
    if (finished)
      return result_url;
  }
  stage_error_set(err, "timeout", "D-ID did not finish the video after %d status checks.",
                  MAX_POLLS);
  return NULL;
}

/* GET result_url: a pre-signed link, so no Authorization header goes with it. */
static int download(const budget_t *budget, const char *result_url, avatar_output_t *out,
                    stage_error_t *err)
{
  http_request_t req = {.method = "GET", .url = result_url, .max_response_bytes = MAX_VIDEO_BYTES};
  http_response_t resp = {0};
  if (call(budget, &req, false, &resp, err) != 0)
    return -1;
  int rc = -1;
  if (resp.status != 200)
    stage_error_set(err, "backend_error", "Downloading D-ID's video answered HTTP %ld.",
                    resp.status);
  else if (resp.body_size < 12 || memcmp(resp.body + 4, "ftyp", 4))
    stage_error_set(err, "backend_error", "D-ID's result is not an MP4 file.");
  else
    rc = 0;
  if (rc == 0) {
    out->video = resp.body;
    out->video_size = resp.body_size;
    resp.body = NULL;
    snprintf(out->mime, sizeof out->mime, "video/mp4");
  }
  http_response_release(&resp);
  return rc;
}

static int render(avatar_backend_t *base, const avatar_input_t *in, avatar_output_t *out,
                  stage_error_t *err)
{
  did_t *self = (did_t *) base;
  if (!in->audio || !in->audio_size)
    return stage_error_set(err, "bad_request", "There is no speech to animate.");
  budget_t budget = {.self = self, .end_ms = clock_mono_ms() + self->deadline_ms};
  int64_t started = clock_mono_ms();
  char *audio_url = upload_audio(&budget, in, err);
  char *id = audio_url ? create_talk(&budget, audio_url, err) : NULL;
  uint32_t duration_ms = 0;
  char *result_url = id ? wait_for_talk(&budget, id, &duration_ms, err) : NULL;
  int rc = result_url ? download(&budget, result_url, out, err) : -1;
  if (rc == 0) {
    out->duration_ms = duration_ms;
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddStringToObject(fields, "talk_id", id);
    cJSON_AddNumberToObject(fields, "video_bytes", (double) out->video_size);
    cJSON_AddNumberToObject(fields, "ms", (double) (clock_mono_ms() - started));
    log_event(LOG_INFO, "did_talk_done", fields);
  }
  free(audio_url);
  free(id);
  free(result_url);
  return rc;
}

static void destroy(avatar_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  did_t *self = (did_t *) *self_p;
  explicit_bzero(self->auth_header, sizeof self->auth_header);
  free(self);
  *self_p = NULL;
}

avatar_backend_t *avatar_did_new(stage_error_t *err)
{
  const char *key = config_str("DID_API_KEY", NULL);
  const char *source = config_str("DID_SOURCE_URL", NULL);
  if (!key || !source) {
    stage_error_set(err, "bad_config", "AVATAR_BACKEND=did needs %s",
                    !key ? "DID_API_KEY" : "DID_SOURCE_URL (the presenter image's HTTPS URL)");
    return NULL;
  }
  did_t *self = calloc(1, sizeof *self);
  if (!self) {
    stage_error_set(err, "bad_config", "Out of memory.");
    return NULL;
  }
  self->base = (avatar_backend_t){.name = "did", .render = render, .destroy = destroy};
  const char *base_url = config_str("DID_BASE_URL", "https://api.d-id.com");
  self->poll_ms = config_long("DID_POLL_MS", 1000, 10, 10000);
  /* The whole render (upload, talk, polls, download) shares this budget. D-ID takes
   * tens of seconds: raise AVATAR_TIMEOUT_MS for this backend. */
  self->deadline_ms = config_backend_budget_ms("avatar");
  self->max_attempts = (int) config_long("AVATAR_MAX_ATTEMPTS", 3, 1, 10);
  if (snprintf(self->base_url, sizeof self->base_url, "%s", base_url) >=
        (int) sizeof self->base_url ||
      snprintf(self->source_url, sizeof self->source_url, "%s", source) >=
        (int) sizeof self->source_url ||
      strpbrk(key, "\r\n") ||
      snprintf(self->auth_header, sizeof self->auth_header, "Authorization: Basic %s", key) >=
        (int) sizeof self->auth_header) {
    stage_error_set(err, "bad_config",
                    "DID_BASE_URL, DID_SOURCE_URL or DID_API_KEY is too long or has a line "
                    "break.");
    avatar_backend_t *base = &self->base;
    destroy(&base);
    return NULL;
  }
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "backend", "did");
  cJSON_AddStringToObject(fields, "base_url", self->base_url);
  cJSON_AddNumberToObject(fields, "deadline_ms", (double) self->deadline_ms);
  log_event(LOG_INFO, "avatar_backend_ready", fields);
  return &self->base;
}
