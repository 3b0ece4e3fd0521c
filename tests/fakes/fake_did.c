/* fake_did: D-ID /audios, /talks and result downloads (see fake_did.h). */
#include "fake_did.h"

#include "audio.h"
#include "avatar_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 64

typedef struct {
  char url[96];
  uint8_t *audio;
  size_t size;
  char mime[64];
  double duration_s;
} upload_t;

typedef struct {
  char id[32];
  char outcome[16];    /* what POST /talks was told: ok, error, rejected, stuck */
  int polls;
  size_t upload;       /* index into uploads */
  uint8_t *video;      /* rendered when the talk turns done */
  size_t video_size;
} talk_t;

typedef struct {
  char api_key[256];
  avatar_backend_t *renderer;
  upload_t uploads[MAX_ITEMS];
  size_t upload_count;
  talk_t talks[MAX_ITEMS];
  size_t talk_count;
} did_state_t;

static void free_state(void *arg)
{
  did_state_t *state = arg;
  for (size_t i = 0; i < state->upload_count; i++)
    free(state->uploads[i].audio);
  for (size_t i = 0; i < state->talk_count; i++)
    free(state->talks[i].video);
  if (state->renderer)
    state->renderer->destroy(&state->renderer);
  free(state);
}

static void did_error(fake_reply_t *reply, int status, const char *kind, const char *description)
{
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "kind", kind);
  cJSON_AddStringToObject(root, "description", description);
  fake_reply_cjson(reply, status, root);
}

/* Credentials and the scripted failures; true when the request may go on. */
static bool admitted(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  const did_state_t *state = fake_server_state(server);
  const char *authorization = fake_request_header(req, "Authorization");
  if (!authorization || strncmp(authorization, "Basic ", 6) ||
      strcmp(authorization + 6, state->api_key)) {
    did_error(reply, 401, "AuthorizationError", "user unauthenticated");
    return false;
  }
  if (!strcmp(req->outcome, "429")) {
    did_error(reply, 429, "TooManyRequestsError", "Too Many Requests");
    fake_reply_header(reply, "Retry-After", "1");
  } else if (!strcmp(req->outcome, "500")) {
    did_error(reply, 500, "InternalServerError", "internal server error");
  } else if (!strcmp(req->outcome, "402")) {
    did_error(reply, 402, "InsufficientCreditsError", "not enough credits");
  } else if (!strcmp(req->outcome, "malformed")) {
    fake_reply_json(reply, 200, "{\"id\": \"tlk_");
  } else {
    return true;
  }
  return false;
}

static void on_audios(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  did_state_t *state = fake_server_state(server);
  if (!admitted(server, req, reply))
    return;
  const fake_part_t *audio = fake_request_part(req, "audio");
  pcm_t pcm = {0};
  stage_error_t err = {0};
  if (!audio || !audio->filename || !audio->size) {
    did_error(reply, 400, "ValidationError", "a file part named \"audio\" is required");
    return;
  }
  if (!audio->content_type || (strncmp(audio->content_type, "audio/", 6) &&
                               strncmp(audio->content_type, "video/", 6))) {
    did_error(reply, 400, "ValidationError", "the audio file must be audio/* or video/*");
    return;
  }
  if (audio_decode(audio->data, audio->size, 16000, 0, &pcm, &err) != 0) {
    did_error(reply, 400, "ValidationError", "the audio file could not be read");
    return;
  }
  double duration = pcm_duration_ms(&pcm) / 1000.0;
  pcm_release(&pcm);
  fake_server_lock(server);
  upload_t *upload = state->upload_count < MAX_ITEMS ? &state->uploads[state->upload_count] : NULL;
  if (upload && (upload->audio = malloc(audio->size))) {
    memcpy(upload->audio, audio->data, audio->size);
    upload->size = audio->size;
    upload->duration_s = duration;
    snprintf(upload->mime, sizeof upload->mime, "%s", audio->content_type);
    snprintf(upload->url, sizeof upload->url, "s3://d-id-audios-prod/fake/aud_%zu/%s",
             state->upload_count + 1, "reply.wav");
    state->upload_count++;
  } else {
    upload = NULL;
  }
  fake_server_unlock(server);
  if (!upload) {
    did_error(reply, 500, "InternalServerError", "the fake holds no more uploads");
    return;
  }
  cJSON *answer = cJSON_CreateObject();
  char id[32];
  snprintf(id, sizeof id, "aud_%zu", (size_t) (upload - state->uploads) + 1);
  cJSON_AddStringToObject(answer, "id", id);
  cJSON_AddStringToObject(answer, "url", upload->url);
  cJSON_AddNumberToObject(answer, "duration", duration);
  cJSON_AddObjectToObject(answer, "moderation_metadata");
  fake_reply_cjson(reply, 201, answer);
}

static const char *const talk_fields[] = {"source_url", "script", "config", "webhook",
                                          "user_data", "name", "face", "persist",
                                          "result_url", "driver_url", NULL};

static const char *talk_problem(const did_state_t *state, const cJSON *root, size_t *upload)
{
  const cJSON *item;
  cJSON_ArrayForEach(item, root) {
    bool known = false;
    for (size_t i = 0; talk_fields[i] && !known; i++)
      known = !strcmp(item->string, talk_fields[i]);
    if (!known)
      return "request has unknown fields";
  }
  const cJSON *source = cJSON_GetObjectItemCaseSensitive(root, "source_url");
  const cJSON *script = cJSON_GetObjectItemCaseSensitive(root, "script");
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(script, "type");
  const cJSON *audio_url = cJSON_GetObjectItemCaseSensitive(script, "audio_url");
  if (source && (!cJSON_IsString(source) || (strncmp(source->valuestring, "https://", 8) &&
                                             strncmp(source->valuestring, "s3://", 5))))
    return "source_url must be an https or s3 url";
  if (!cJSON_IsObject(script))
    return "script is required";
  if (!cJSON_IsString(type) || strcmp(type->valuestring, "audio"))
    return "script.type must be \"audio\" here (text scripts need a provider)";
  if (!cJSON_IsString(audio_url))
    return "script.audio_url is required for audio scripts";
  for (size_t i = 0; i < state->upload_count; i++) {
    if (!strcmp(state->uploads[i].url, audio_url->valuestring)) {
      *upload = i;
      return NULL;
    }
  }
  return "script.audio_url does not name an uploaded audio";
}

static void on_create_talk(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  did_state_t *state = fake_server_state(server);
  if (!admitted(server, req, reply))
    return;
  const char *type = fake_request_header(req, "Content-Type");
  cJSON *root = type && !strncmp(type, "application/json", 16) ? fake_request_json(req) : NULL;
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    did_error(reply, 400, "ValidationError", "the body must be a JSON object");
    return;
  }
  fake_server_lock(server);
  size_t upload = 0;
  const char *problem = talk_problem(state, root, &upload);
  talk_t *talk = NULL;
  if (!problem && state->talk_count < MAX_ITEMS) {
    talk = &state->talks[state->talk_count++];
    snprintf(talk->id, sizeof talk->id, "tlk_fake%zu", state->talk_count);
    snprintf(talk->outcome, sizeof talk->outcome, "%s", req->outcome);
    talk->upload = upload;
  }
  char id[32];
  snprintf(id, sizeof id, "%s", talk ? talk->id : "");
  fake_server_unlock(server);
  cJSON_Delete(root);
  if (problem) {
    did_error(reply, 400, "ValidationError", problem);
    return;
  }
  if (!talk) {
    did_error(reply, 500, "InternalServerError", "the fake holds no more talks");
    return;
  }
  cJSON *answer = cJSON_CreateObject();
  cJSON_AddStringToObject(answer, "id", id);
  cJSON_AddStringToObject(answer, "object", "talk");
  cJSON_AddStringToObject(answer, "created_at", "2026-11-27T04:41:23.120Z");
  cJSON_AddStringToObject(answer, "created_by", "fake|test");
  cJSON_AddStringToObject(answer, "status", "created");
  fake_reply_cjson(reply, 201, answer);
}

/* Renders the talk's video with the local avatar renderer. Called with the lock held
 * (the renderer is one instance). */
static int render_talk(did_state_t *state, talk_t *talk)
{
  const upload_t *upload = &state->uploads[talk->upload];
  avatar_input_t in = {.audio = upload->audio, .audio_size = upload->size,
                       .audio_mime = upload->mime, .text = ""};
  avatar_output_t out = {0};
  stage_error_t err = {0};
  if (state->renderer->render(state->renderer, &in, &out, &err) != 0 || !out.video) {
    avatar_output_release(&out);
    return -1;
  }
  talk->video = out.video;
  talk->video_size = out.video_size;
  out.video = NULL;
  avatar_output_release(&out);
  return 0;
}

/* created on the first poll, started on the second, then what POST /talks was told. */
static const char *talk_status(const talk_t *talk)
{
  if (talk->polls == 1)
    return "created";
  if (talk->polls == 2 || !strcmp(talk->outcome, "stuck"))
    return "started";
  if (!strcmp(talk->outcome, "error") || !strcmp(talk->outcome, "rejected"))
    return talk->outcome;
  return "done";
}

static talk_t *find_talk(did_state_t *state, const char *id)
{
  for (size_t i = 0; i < state->talk_count; i++)
    if (!strcmp(state->talks[i].id, id))
      return &state->talks[i];
  return NULL;
}

static void on_get_talk(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  did_state_t *state = fake_server_state(server);
  if (!admitted(server, req, reply))
    return;
  const char *id = req->path + strlen("/talks/");
  const char *host = fake_request_header(req, "Host");
  cJSON *answer = cJSON_CreateObject();
  fake_server_lock(server);
  talk_t *talk = find_talk(state, id);
  const char *status = NULL;
  bool render_failed = false;
  if (talk) {
    talk->polls++;
    status = talk_status(talk);
    if (!strcmp(status, "done") && !talk->video)
      render_failed = render_talk(state, talk) != 0;
    cJSON_AddStringToObject(answer, "id", talk->id);
    cJSON_AddStringToObject(answer, "object", "talk");
    cJSON_AddStringToObject(answer, "created_at", "2026-11-27T04:41:23.120Z");
    cJSON_AddStringToObject(answer, "status", render_failed ? "error" : status);
    cJSON_AddStringToObject(answer, "source_url", "https://d-id-talks-prod.s3.amazonaws.com/fake/image.jpg");
    if (!strcmp(status, "done") && !render_failed) {
      char url[300];
      snprintf(url, sizeof url, "http://%s/results/%s.mp4?AWSAccessKeyId=FAKE&Expires=1&"
               "Signature=fake", host ? host : "127.0.0.1", talk->id);
      cJSON_AddStringToObject(answer, "result_url", url);
      cJSON_AddNumberToObject(answer, "duration", state->uploads[talk->upload].duration_s);
    } else if (render_failed || !strcmp(status, "error") || !strcmp(status, "rejected")) {
      cJSON *error = cJSON_AddObjectToObject(answer, "error");
      cJSON_AddStringToObject(error, "kind", render_failed ? "UnknownError"
                              : !strcmp(status, "error") ? "FaceError" : "ModerationError");
      cJSON_AddStringToObject(error, "description",
                              render_failed ? "the fake renderer failed"
                              : !strcmp(status, "error") ? "Face not detected in the source image"
                                                          : "The content was rejected by moderation");
    }
  }
  fake_server_unlock(server);
  if (!talk) {
    cJSON_Delete(answer);
    did_error(reply, 404, "NotFoundError", "not found");
    return;
  }
  fake_reply_cjson(reply, 200, answer);
}

/* The pre-signed S3 link: no D-ID credentials, like S3 which refuses a second auth. */
static void on_result(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  did_state_t *state = fake_server_state(server);
  if (fake_request_header(req, "Authorization")) {
    static const char s3_error[] =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidArgument</Code><Message>"
      "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
      "query string parameter or the Authorization header should be specified</Message></Error>";
    fake_reply_raw(reply, 400, "application/xml", s3_error, sizeof s3_error - 1);
    return;
  }
  char id[32];
  const char *name = req->path + strlen("/results/");
  size_t len = strcspn(name, ".");
  snprintf(id, sizeof id, "%.*s", (int) (len < sizeof id ? len : sizeof id - 1), name);
  fake_server_lock(server);
  talk_t *talk = find_talk(state, id);
  bool found = talk && talk->video;
  if (found)
    fake_reply_raw(reply, 200, "video/mp4", talk->video, talk->video_size);
  fake_server_unlock(server);
  if (!found) {
    static const char missing[] =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code></Error>";
    fake_reply_raw(reply, 404, "application/xml", missing, sizeof missing - 1);
  }
}

static void on_unknown(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  (void) server;
  (void) req;
  did_error(reply, 404, "NotFoundError", "not found");
}

int fake_did_install(fake_server_t *server)
{
  did_state_t *state = calloc(1, sizeof *state);
  if (!state)
    return -1;
  const char *key = getenv("FAKE_DID_API_KEY");
  snprintf(state->api_key, sizeof state->api_key, "%s",
           key && *key ? key : "fake-did-user:fake-did-secret");
  stage_error_t err = {0};
  state->renderer = avatar_local_new(&err);
  if (!state->renderer) {
    fprintf(stderr, "fake_did: the local renderer did not start: %s\n", err.message);
    free_state(state);
    return -1;
  }
  fake_server_set_state(server, state, free_state);
  return fake_server_route(server, "POST", "/audios", on_audios) == 0 &&
         fake_server_route(server, "POST", "/talks", on_create_talk) == 0 &&
         fake_server_route(server, "GET", "/talks/*", on_get_talk) == 0 &&
         fake_server_route(server, "GET", "/results/*", on_result) == 0 &&
         fake_server_route(server, "*", "*", on_unknown) == 0 ? 0 : -1;
}
