/* stt/openai: an OpenAI-compatible transcription server (whisper.cpp server,
 * faster-whisper servers, OpenAI itself): multipart POST of the upload to
 * OPENAI_STT_BASE_URL + OPENAI_STT_PATH (external-apis.md §5.2), response_format json.
 * whisper.cpp without --convert only reads WAV, so OPENAI_STT_CONVERT=1 turns every
 * other upload into 16 kHz mono WAV here first. */
#include "stt_backend.h"

#include "audio.h"
#include "config.h"
#include "http_client.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONVERT_RATE 16000
#define DEFAULT_MAX_AUDIO_MS 60000

typedef struct {
  stt_backend_t base;
  char url[512];
  char model[128];
  char auth_header[1100];  /* "Authorization: Bearer ..." or empty */
  bool convert;
  uint32_t max_audio_ms;
  long timeout_ms;
  int max_attempts;
} openai_stt_t;

static bool is_wav(const uint8_t *data, size_t size)
{
  return size >= 12 && !memcmp(data, "RIFF", 4) && !memcmp(data + 8, "WAVE", 4);
}

/* A filename whose extension names the format: servers pick their decoder by it. */
static void upload_name(const uint8_t *data, size_t size, const char *mime, char *name,
                        size_t name_size, char *type, size_t type_size)
{
  static const uint8_t ebml[] = {0x1a, 0x45, 0xdf, 0xa3};
  const char *ext = "bin", *content_type = mime && *mime ? mime : "application/octet-stream";
  if (is_wav(data, size)) {
    ext = "wav";
    content_type = "audio/wav";
  } else if (size >= 4 && !memcmp(data, ebml, 4)) {
    ext = "webm";
    content_type = "audio/webm";
  } else if (size >= 4 && !memcmp(data, "OggS", 4)) {
    ext = "ogg";
    content_type = "audio/ogg";
  } else if (size >= 4 && !memcmp(data, "fLaC", 4)) {
    ext = "flac";
    content_type = "audio/flac";
  } else if (size >= 3 && (!memcmp(data, "ID3", 3) || (data[0] == 0xff && (data[1] & 0xe0) == 0xe0))) {
    ext = "mp3";
    content_type = "audio/mpeg";
  } else if (size >= 8 && !memcmp(data + 4, "ftyp", 4)) {
    ext = "m4a";
    content_type = "audio/mp4";
  }
  snprintf(name, name_size, "speech.%s", ext);
  snprintf(type, type_size, "%s", content_type);
}

/* Lower-case words without punctuation; whisper's "[BLANK_AUDIO]"-style markers and
 * "(music)" annotations are not speech and are dropped. */
static char *normalise(const char *text)
{
  char *out = malloc(strlen(text) + 1);
  if (!out)
    return NULL;
  size_t n = 0;
  bool gap = false;
  for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
    if (*p == '[' || *p == '(') {
      const char *close = strchr((const char *) p, *p == '[' ? ']' : ')');
      if (close) {
        p = (const unsigned char *) close;
        gap = n > 0;
        continue;
      }
    }
    if (isspace(*p) || (ispunct(*p) && *p != '\'')) {
      gap = n > 0;
      continue;
    }
    if (gap)
      out[n++] = ' ';
    gap = false;
    out[n++] = (char) tolower(*p);
  }
  out[n] = '\0';
  return out;
}

static int parse_answer(const http_response_t *resp, stt_result_t *out, stage_error_t *err)
{
  cJSON *root = cJSON_ParseWithLength((const char *) resp->body, resp->body_size);
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text");
  if (!cJSON_IsString(text)) {
    cJSON_Delete(root);
    return stage_error_set(err, "backend_error",
                           "The transcription server sent an answer without a \"text\" field.");
  }
  char *words = normalise(text->valuestring);
  cJSON_Delete(root);
  if (!words)
    return stage_error_set(err, "backend_error", "Out of memory.");
  if (!*words) {
    free(words);
    return stage_error_set(err, "no_speech", "No speech was recognised in the recording.");
  }
  out->text = words;
  out->confidence = 1.0f;
  return 0;
}

static int transcribe(stt_backend_t *base, const uint8_t *audio, size_t size, const char *mime,
                      stt_result_t *out, stage_error_t *err)
{
  openai_stt_t *self = (openai_stt_t *) base;
  /* Decoding first proves the upload is audio and enforces the length limit before
   * the server spends time on it; the PCM is the converted upload when asked for. */
  pcm_t pcm = {0};
  if (audio_decode(audio, size, CONVERT_RATE, self->max_audio_ms, &pcm, err) != 0)
    return -1;
  uint8_t *converted = NULL;
  if (self->convert && !is_wav(audio, size)) {
    if (audio_wav_encode(&pcm, &converted, &size) != 0) {
      pcm_release(&pcm);
      return stage_error_set(err, "backend_error", "Out of memory.");
    }
    audio = converted;
  }
  pcm_release(&pcm);
  char filename[32], content_type[96];
  upload_name(audio, size, mime, filename, sizeof filename, content_type, sizeof content_type);
  const http_part_t parts[] = {
    {.name = "file", .data = audio, .size = size, .filename = filename,
     .content_type = content_type},
    {.name = "model", .data = (const uint8_t *) self->model, .size = strlen(self->model)},
    {.name = "response_format", .data = (const uint8_t *) "json", .size = 4},
  };
  const char *headers[] = {self->auth_header[0] ? self->auth_header : NULL, NULL};
  http_request_t req = {
    .method = "POST", .url = self->url, .headers = headers,
    .parts = parts, .part_count = sizeof parts / sizeof parts[0],
    .timeout_ms = self->timeout_ms, .max_attempts = self->max_attempts,
    .max_response_bytes = 1 << 20, .backend = "openai_stt",
  };
  http_response_t resp = {0};
  int rc = http_send(&req, &resp, err);
  free(converted);
  if (rc != 0)
    return -1;
  if (resp.status == 200)
    rc = parse_answer(&resp, out, err);
  else
    rc = stage_error_set(err, resp.status == 429 ? "overloaded" : "backend_error",
                         "The transcription server answered HTTP %ld: %s", resp.status,
                         resp.error_message);
  http_response_release(&resp);
  return rc;
}

static void destroy(stt_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  openai_stt_t *self = (openai_stt_t *) *self_p;
  explicit_bzero(self->auth_header, sizeof self->auth_header);
  free(self);
  *self_p = NULL;
}

stt_backend_t *stt_openai_new(stage_error_t *err)
{
  const char *base_url = config_str("OPENAI_STT_BASE_URL", NULL);
  if (!base_url) {
    stage_error_set(err, "bad_config",
                    "STT_BACKEND=openai needs OPENAI_STT_BASE_URL (e.g. http://whisper:8080)");
    return NULL;
  }
  openai_stt_t *self = calloc(1, sizeof *self);
  if (!self) {
    stage_error_set(err, "bad_config", "Out of memory.");
    return NULL;
  }
  self->base = (stt_backend_t){.name = "openai", .transcribe = transcribe, .destroy = destroy};
  const char *path = config_str("OPENAI_STT_PATH", "/v1/audio/transcriptions");
  const char *model = config_str("OPENAI_STT_MODEL", "whisper-1");
  const char *key = config_str("OPENAI_API_KEY", NULL);
  self->convert = config_bool("OPENAI_STT_CONVERT", false);
  self->max_audio_ms = (uint32_t) config_long("STT_MAX_AUDIO_MS", DEFAULT_MAX_AUDIO_MS, 1000,
                                              600000);
  self->timeout_ms = config_backend_budget_ms("stt");
  self->max_attempts = (int) config_long("STT_MAX_ATTEMPTS", 3, 1, 10);
  if (snprintf(self->url, sizeof self->url, "%s%s", base_url, path) >= (int) sizeof self->url ||
      snprintf(self->model, sizeof self->model, "%s", model) >= (int) sizeof self->model ||
      (key && (strpbrk(key, "\r\n") ||
               snprintf(self->auth_header, sizeof self->auth_header, "Authorization: Bearer %s",
                        key) >= (int) sizeof self->auth_header))) {
    stage_error_set(err, "bad_config",
                    "OPENAI_STT_BASE_URL/OPENAI_STT_PATH, OPENAI_STT_MODEL or OPENAI_API_KEY is "
                    "too long or has a line break.");
    stt_backend_t *base = &self->base;
    destroy(&base);
    return NULL;
  }
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "backend", "openai");
  cJSON_AddStringToObject(fields, "url", self->url);
  cJSON_AddStringToObject(fields, "model", self->model);
  cJSON_AddBoolToObject(fields, "convert", self->convert);
  log_event(LOG_INFO, "stt_backend_ready", fields);
  return &self->base;
}
