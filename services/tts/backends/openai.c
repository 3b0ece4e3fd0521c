/* tts/openai: an OpenAI-compatible speech server: POST OPENAI_TTS_BASE_URL
 * /v1/audio/speech with response_format wav (external-apis.md §5.3). The answer is the
 * raw audio file. No phoneme timings: the avatar lip-syncs from the audio. */
#include "tts_backend.h"

#include "audio.h"
#include "config.h"
#include "http_client.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  tts_backend_t base;
  char url[512];
  char model[128];
  char voice[128];
  char auth_header[1100];  /* "Authorization: Bearer ..." or empty */
  long timeout_ms;
  int max_attempts;
} openai_tts_t;

/* The MIME type of the audio file by its first bytes (servers may ignore
 * response_format, and their Content-Type is not always right). NULL if unknown. */
static const char *sniff_mime(const uint8_t *data, size_t size)
{
  if (size >= 12 && !memcmp(data, "RIFF", 4) && !memcmp(data + 8, "WAVE", 4))
    return "audio/wav";
  if (size >= 4 && !memcmp(data, "OggS", 4))
    return "audio/ogg";
  if (size >= 4 && !memcmp(data, "fLaC", 4))
    return "audio/flac";
  if (size >= 3 && (!memcmp(data, "ID3", 3) || (data[0] == 0xff && (data[1] & 0xe0) == 0xe0)))
    return "audio/mpeg";
  if (size >= 8 && !memcmp(data + 4, "ftyp", 4))
    return "audio/mp4";
  return NULL;
}

static char *request_body(const openai_tts_t *self, const char *text)
{
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "model", self->model);
  cJSON_AddStringToObject(root, "input", text);
  cJSON_AddStringToObject(root, "voice", self->voice);
  cJSON_AddStringToObject(root, "response_format", "wav");
  char *body = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return body;
}

static int synthesize(tts_backend_t *base, const char *text, tts_result_t *out,
                      stage_error_t *err)
{
  openai_tts_t *self = (openai_tts_t *) base;
  if (!*text)
    return stage_error_set(err, "empty_text", "There is no text to speak.");
  char *body = request_body(self, text);
  if (!body)
    return stage_error_set(err, "backend_error", "Out of memory.");
  const char *headers[] = {self->auth_header[0] ? self->auth_header : NULL, NULL};
  http_request_t req = {
    .method = "POST", .url = self->url, .headers = headers,
    .body = (const uint8_t *) body, .body_size = strlen(body),
    .content_type = "application/json; charset=utf-8",
    .timeout_ms = self->timeout_ms, .max_attempts = self->max_attempts,
    .max_response_bytes = 32u << 20, .backend = "openai_tts",
  };
  http_response_t resp = {0};
  int rc = http_send(&req, &resp, err);
  free(body);
  if (rc != 0)
    return -1;
  const char *mime = sniff_mime(resp.body, resp.body_size);
  pcm_t pcm = {0};
  if (resp.status != 200) {
    rc = stage_error_set(err, resp.status == 429 ? "overloaded" : "backend_error",
                         "The speech server answered HTTP %ld: %s", resp.status,
                         resp.error_message);
  } else if (!mime || audio_decode(resp.body, resp.body_size, 16000, 0, &pcm, err) != 0) {
    rc = stage_error_set(err, "backend_error",
                         "The speech server answered with something that is not audio (%s).",
                         resp.content_type[0] ? resp.content_type : "no Content-Type");
  } else {
    out->audio = resp.body;
    out->audio_size = resp.body_size;
    resp.body = NULL;
    snprintf(out->mime, sizeof out->mime, "%s", mime);
    out->duration_ms = pcm_duration_ms(&pcm);
    out->phonemes = NULL;
    out->phoneme_count = 0;
  }
  pcm_release(&pcm);
  http_response_release(&resp);
  return rc;
}

static void destroy(tts_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  openai_tts_t *self = (openai_tts_t *) *self_p;
  explicit_bzero(self->auth_header, sizeof self->auth_header);
  free(self);
  *self_p = NULL;
}

tts_backend_t *tts_openai_new(stage_error_t *err)
{
  const char *base_url = config_str("OPENAI_TTS_BASE_URL", NULL);
  if (!base_url) {
    stage_error_set(err, "bad_config",
                    "TTS_BACKEND=openai needs OPENAI_TTS_BASE_URL (e.g. http://speech:8000)");
    return NULL;
  }
  openai_tts_t *self = calloc(1, sizeof *self);
  if (!self) {
    stage_error_set(err, "bad_config", "Out of memory.");
    return NULL;
  }
  self->base = (tts_backend_t){.name = "openai", .synthesize = synthesize, .destroy = destroy};
  const char *model = config_str("OPENAI_TTS_MODEL", "tts-1");
  const char *voice = config_str("OPENAI_TTS_VOICE", "alloy");
  const char *key = config_str("OPENAI_API_KEY", NULL);
  self->timeout_ms = config_backend_budget_ms("tts");
  self->max_attempts = (int) config_long("TTS_MAX_ATTEMPTS", 3, 1, 10);
  if (snprintf(self->url, sizeof self->url, "%s/v1/audio/speech", base_url) >=
        (int) sizeof self->url ||
      snprintf(self->model, sizeof self->model, "%s", model) >= (int) sizeof self->model ||
      snprintf(self->voice, sizeof self->voice, "%s", voice) >= (int) sizeof self->voice ||
      (key && (strpbrk(key, "\r\n") ||
               snprintf(self->auth_header, sizeof self->auth_header, "Authorization: Bearer %s",
                        key) >= (int) sizeof self->auth_header))) {
    stage_error_set(err, "bad_config",
                    "OPENAI_TTS_BASE_URL, OPENAI_TTS_MODEL, OPENAI_TTS_VOICE or OPENAI_API_KEY "
                    "is too long or has a line break.");
    tts_backend_t *base = &self->base;
    destroy(&base);
    return NULL;
  }
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "backend", "openai");
  cJSON_AddStringToObject(fields, "url", self->url);
  cJSON_AddStringToObject(fields, "model", self->model);
  cJSON_AddStringToObject(fields, "voice", self->voice);
  log_event(LOG_INFO, "tts_backend_ready", fields);
  return &self->base;
}
