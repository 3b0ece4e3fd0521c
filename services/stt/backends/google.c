/* stt/google: Google Cloud Speech-to-Text v1 synchronous recognize
 * (shared/docs/external-apis.md §1). Browser WebM/Opus and Ogg/Opus go as they are,
 * 16-bit mono WAV as LINEAR16 at its header's rate, FLAC as FLAC; anything else (MP3,
 * AAC, Vorbis, other WAV) is decoded and sent as 16 kHz LINEAR16. Every upload is
 * decoded once first: that proves it is audio and measures it, so audio over the
 * one-minute sync limit is refused here instead of costing a request. */
#include "stt_backend.h"

#include "audio.h"
#include "config.h"
#include "google_auth.h"
#include "http_client.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNC_LIMIT_MS 60000
#define FALLBACK_RATE 16000

typedef struct {
  stt_backend_t base;
  google_auth_t *auth;
  char url[512];
  char language[36];
  long timeout_ms;
  int max_attempts;
} google_stt_t;

/* How the upload goes on the wire. */
typedef struct {
  const char *encoding;   /* RecognitionConfig.encoding */
  int sample_rate;        /* 0 = leave it to the file header */
  const uint8_t *data;
  size_t size;
  uint8_t *owned;         /* converted audio, freed by the caller */
} wire_audio_t;

static uint32_t read_le32(const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* A canonical 16-bit mono PCM WAV (fmt chunk first) Google reads as LINEAR16. */
static int plain_wav_rate(const uint8_t *data, size_t size)
{
  if (size < 44 || memcmp(data, "RIFF", 4) || memcmp(data + 8, "WAVEfmt ", 8))
    return 0;
  unsigned format = data[20] | data[21] << 8, channels = data[22] | data[23] << 8;
  unsigned bits = data[34] | data[35] << 8;
  uint32_t rate = read_le32(data + 24);
  return format == 1 && channels == 1 && bits == 16 && rate >= 8000 && rate <= 48000 ? (int) rate
                                                                                      : 0;
}

static bool is_ogg_opus(const uint8_t *data, size_t size)
{
  return size >= 36 && !memcmp(data, "OggS", 4) && !memcmp(data + 28, "OpusHead", 8);
}

/* Picks the encoding; converts to 16 kHz WAV from `pcm` when Google cannot take the file. */
static int choose_wire(const uint8_t *audio, size_t size, const pcm_t *pcm, wire_audio_t *wire)
{
  static const uint8_t ebml[] = {0x1a, 0x45, 0xdf, 0xa3};
  *wire = (wire_audio_t){.data = audio, .size = size};
  int wav_rate = plain_wav_rate(audio, size);
  if (size >= 4 && !memcmp(audio, ebml, 4)) {
    /* Opus always runs at 48 kHz inside; the browser's recorder reports 48000. */
    wire->encoding = "WEBM_OPUS";
    wire->sample_rate = 48000;
  } else if (is_ogg_opus(audio, size)) {
    wire->encoding = "OGG_OPUS";
    wire->sample_rate = 48000;
  } else if (wav_rate) {
    wire->encoding = "LINEAR16";
    wire->sample_rate = wav_rate;
  } else if (size >= 4 && !memcmp(audio, "fLaC", 4)) {
    wire->encoding = "FLAC";
  } else {
    if (audio_wav_encode(pcm, &wire->owned, &wire->size) != 0)
      return -1;
    wire->data = wire->owned;
    wire->encoding = "LINEAR16";
    wire->sample_rate = pcm->sample_rate;
  }
  return 0;
}

static char *request_body(const google_stt_t *self, const wire_audio_t *wire)
{
  char *content = google_base64_encode(wire->data, wire->size);
  if (!content)
    return NULL;
  cJSON *root = cJSON_CreateObject();
  cJSON *config = cJSON_AddObjectToObject(root, "config");
  cJSON_AddStringToObject(config, "encoding", wire->encoding);
  if (wire->sample_rate)
    cJSON_AddNumberToObject(config, "sampleRateHertz", wire->sample_rate);
  cJSON_AddStringToObject(config, "languageCode", self->language);
  cJSON_AddBoolToObject(config, "enableAutomaticPunctuation", false);
  cJSON_AddNumberToObject(config, "maxAlternatives", 1);
  cJSON *audio = cJSON_AddObjectToObject(root, "audio");
  cJSON *item = cJSON_CreateStringReference(content);
  char *body = NULL;
  if (audio && item && cJSON_AddItemToObject(audio, "content", item)) {
    body = cJSON_PrintUnformatted(root);
  } else {
    cJSON_Delete(item);
  }
  cJSON_Delete(root);
  free(content);
  return body;
}

/* The transcript as the other stages expect it: lower-case words separated by single
 * spaces, without punctuation (apostrophes stay: "what's"). */
static char *normalise(const char *text)
{
  char *out = malloc(strlen(text) + 1);
  if (!out)
    return NULL;
  size_t n = 0;
  bool gap = false;
  for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
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

/* Joins results[i].alternatives[0].transcript; "" when Google heard nothing. */
static int parse_answer(const http_response_t *resp, stt_result_t *out, stage_error_t *err)
{
  cJSON *root = cJSON_ParseWithLength((const char *) resp->body, resp->body_size);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return stage_error_set(err, "backend_error",
                           "Google Speech-to-Text sent an answer that is not JSON.");
  }
  size_t capacity = resp->body_size + 1, len = 0;
  char *joined = calloc(1, capacity);
  double confidence = 0;
  int scored = 0;
  const cJSON *result;
  cJSON_ArrayForEach(result, cJSON_GetObjectItemCaseSensitive(root, "results")) {
    const cJSON *best = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(result, "alternatives"), 0);
    const cJSON *transcript = cJSON_GetObjectItemCaseSensitive(best, "transcript");
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(best, "confidence");
    if (!joined || !cJSON_IsString(transcript))
      continue;
    /* Later results may or may not start with a space. */
    len += (size_t) snprintf(joined + len, capacity - len, "%s%s", len ? " " : "",
                             transcript->valuestring);
    if (len >= capacity)
      len = capacity - 1;
    if (cJSON_IsNumber(score) && score->valuedouble > 0) {
      confidence += score->valuedouble;
      scored++;
    }
  }
  cJSON_Delete(root);
  char *text = joined ? normalise(joined) : NULL;
  free(joined);
  if (!text)
    return stage_error_set(err, "backend_error", "Out of memory.");
  if (!*text) {
    free(text);
    return stage_error_set(err, "no_speech", "No speech was recognised in the recording.");
  }
  out->text = text;
  out->confidence = scored ? (float) (confidence / scored) : 1.0f;
  return 0;
}

static int answer_error(const http_response_t *resp, stage_error_t *err)
{
  return stage_error_set(err, resp->status == 429 ? "overloaded" : "backend_error",
                         "Google Speech-to-Text answered HTTP %ld: %s", resp->status,
                         resp->error_message);
}

static int transcribe(stt_backend_t *base, const uint8_t *audio, size_t size, const char *mime,
                      stt_result_t *out, stage_error_t *err)
{
  google_stt_t *self = (google_stt_t *) base;
  (void) mime; /* the bytes say what they are; browsers label WebM and Ogg loosely */
  pcm_t pcm = {0};
  if (audio_decode(audio, size, FALLBACK_RATE, SYNC_LIMIT_MS, &pcm, err) != 0) {
    if (!strcmp(err->code, "audio_too_long"))
      stage_error_set(err, "audio_too_long",
                      "Google Speech-to-Text takes at most %d seconds of audio per request.",
                      SYNC_LIMIT_MS / 1000);
    return -1;
  }
  wire_audio_t wire;
  int rc = choose_wire(audio, size, &pcm, &wire);
  pcm_release(&pcm);
  char *body = rc == 0 ? request_body(self, &wire) : NULL;
  free(wire.owned);
  if (!body)
    return stage_error_set(err, "backend_error", "Out of memory.");

  char auth_header[2200];
  if (google_auth_header(self->auth, auth_header, sizeof auth_header, self->timeout_ms, err) != 0) {
    free(body);
    return -1;
  }
  const char *headers[] = {auth_header, NULL};
  http_request_t req = {
    .method = "POST", .url = self->url, .headers = headers,
    .body = (const uint8_t *) body, .body_size = strlen(body),
    .content_type = "application/json; charset=utf-8",
    .timeout_ms = self->timeout_ms, .max_attempts = self->max_attempts,
    .max_response_bytes = 1 << 20, .backend = "google_stt",
  };
  http_response_t resp = {0};
  rc = http_send(&req, &resp, err);
  explicit_bzero(auth_header, sizeof auth_header);
  free(body);
  if (rc != 0)
    return -1;
  if (resp.status == 401)
    google_auth_invalidate(self->auth);
  rc = resp.status == 200 ? parse_answer(&resp, out, err) : answer_error(&resp, err);
  http_response_release(&resp);
  return rc;
}

static void destroy(stt_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  google_stt_t *self = (google_stt_t *) *self_p;
  google_auth_destroy(&self->auth);
  free(self);
  *self_p = NULL;
}

stt_backend_t *stt_google_new(stage_error_t *err)
{
  google_stt_t *self = calloc(1, sizeof *self);
  if (!self) {
    stage_error_set(err, "bad_config", "Out of memory.");
    return NULL;
  }
  self->base = (stt_backend_t){.name = "google", .transcribe = transcribe, .destroy = destroy};
  const char *base_url = config_str("GOOGLE_STT_BASE_URL", "https://speech.googleapis.com");
  const char *language = config_str("GOOGLE_STT_LANGUAGE", "en-US");
  self->timeout_ms = config_backend_budget_ms("stt");
  self->max_attempts = (int) config_long("STT_MAX_ATTEMPTS", 3, 1, 10);
  if (snprintf(self->url, sizeof self->url, "%s/v1/speech:recognize", base_url) >=
        (int) sizeof self->url ||
      snprintf(self->language, sizeof self->language, "%s", language) >=
        (int) sizeof self->language) {
    stage_error_set(err, "bad_config", "GOOGLE_STT_BASE_URL or GOOGLE_STT_LANGUAGE is too long.");
    free(self);
    return NULL;
  }
  self->auth = google_auth_new("google_stt", "STT_BACKEND=google", err);
  if (!self->auth) {
    free(self);
    return NULL;
  }
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "backend", "google");
  cJSON_AddStringToObject(fields, "url", self->url);
  cJSON_AddStringToObject(fields, "language", self->language);
  log_event(LOG_INFO, "stt_backend_ready", fields);
  return &self->base;
}
