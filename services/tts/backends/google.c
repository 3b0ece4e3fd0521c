/* tts/google: Google Cloud Text-to-Speech v1 text:synthesize (external-apis.md §3).
 * Asks for LINEAR16, which arrives as a WAV file the avatar decodes quickly. The API
 * takes at most 5,000 bytes per request, so longer replies are split at sentence ends
 * and the pieces' audio joined into one WAV. Google gives no phoneme timings: the
 * avatar then lip-syncs from the audio itself. */
#include "tts_backend.h"

#include "audio.h"
#include "clock.h"
#include "config.h"
#include "google_auth.h"
#include "http_client.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INPUT_LIMIT_BYTES 5000
/* Every piece is decoded to one rate before joining; 24 kHz is the Neural2/WaveNet
 * voices' own rate, so the usual case resamples nothing. */
#define JOIN_RATE 24000

typedef struct {
  tts_backend_t base;
  google_auth_t *auth;
  char url[512];
  char voice[96];
  char language[36];
  long timeout_ms;
  int max_attempts;
} google_tts_t;

/* Length of the next piece of `text` (at most `limit` bytes): up to the last sentence
 * end that fits, else the last space, else the last whole UTF-8 character. */
static size_t next_piece(const char *text, size_t limit)
{
  size_t len = strlen(text);
  if (len <= limit)
    return len;
  size_t sentence = 0, space = 0;
  for (size_t i = 0; i < limit; i++) {
    bool ends = text[i] == '.' || text[i] == '!' || text[i] == '?' || text[i] == '\n';
    if (ends && (text[i + 1] == ' ' || text[i + 1] == '\n'))
      sentence = i + 1;
    if (text[i] == ' ')
      space = i + 1;
  }
  if (sentence)
    return sentence;
  if (space)
    return space;
  size_t cut = limit;
  while (cut > 0 && ((unsigned char) text[cut] & 0xc0) == 0x80)
    cut--;
  return cut ? cut : limit;
}

static char *request_body(const google_tts_t *self, const char *text, size_t len)
{
  cJSON *root = cJSON_CreateObject();
  cJSON *input = cJSON_AddObjectToObject(root, "input");
  cJSON *voice = cJSON_AddObjectToObject(root, "voice");
  cJSON *config = cJSON_AddObjectToObject(root, "audioConfig");
  char *piece = strndup(text, len);
  char *body = NULL;
  if (piece && input && voice && config) {
    cJSON_AddStringToObject(input, "text", piece);
    cJSON_AddStringToObject(voice, "languageCode", self->language);
    cJSON_AddStringToObject(voice, "name", self->voice);
    cJSON_AddStringToObject(config, "audioEncoding", "LINEAR16");
    body = cJSON_PrintUnformatted(root);
  }
  free(piece);
  cJSON_Delete(root);
  return body;
}

/* Decodes {"audioContent": base64} into PCM at JOIN_RATE. */
static int parse_answer(const http_response_t *resp, pcm_t *pcm, stage_error_t *err)
{
  cJSON *root = cJSON_ParseWithLength((const char *) resp->body, resp->body_size);
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(root, "audioContent");
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  int rc = -1;
  if (!cJSON_IsString(content))
    stage_error_set(err, "backend_error",
                    "Google Text-to-Speech sent an answer without audioContent.");
  else if (google_base64_decode(content->valuestring, strlen(content->valuestring), &wav,
                                &wav_size) != 0)
    stage_error_set(err, "backend_error", "Google Text-to-Speech sent audioContent that is not "
                                          "base64.");
  else if (audio_decode(wav, wav_size, JOIN_RATE, 0, pcm, err) != 0)
    stage_error_set(err, "backend_error", "Google Text-to-Speech sent audio that does not "
                                          "decode: %s", err->message);
  else
    rc = 0;
  free(wav);
  cJSON_Delete(root);
  return rc;
}

/* Speaks one piece into `pcm`. */
static int synthesize_piece(google_tts_t *self, const char *text, size_t len, long timeout_ms,
                            pcm_t *pcm, stage_error_t *err)
{
  if (timeout_ms <= 0)
    return stage_error_set(err, "timeout", "Google Text-to-Speech did not finish within %ld ms.",
                           self->timeout_ms);
  char *body = request_body(self, text, len);
  if (!body)
    return stage_error_set(err, "backend_error", "Out of memory.");
  char auth_header[2200];
  if (google_auth_header(self->auth, auth_header, sizeof auth_header, timeout_ms, err) != 0) {
    free(body);
    return -1;
  }
  const char *headers[] = {auth_header, NULL};
  http_request_t req = {
    .method = "POST", .url = self->url, .headers = headers,
    .body = (const uint8_t *) body, .body_size = strlen(body),
    .content_type = "application/json; charset=utf-8",
    .timeout_ms = timeout_ms, .max_attempts = self->max_attempts,
    .max_response_bytes = 32u << 20, .backend = "google_tts",
  };
  http_response_t resp = {0};
  int rc = http_send(&req, &resp, err);
  explicit_bzero(auth_header, sizeof auth_header);
  free(body);
  if (rc != 0)
    return -1;
  if (resp.status == 401)
    google_auth_invalidate(self->auth);
  if (resp.status == 200)
    rc = parse_answer(&resp, pcm, err);
  else
    rc = stage_error_set(err, resp.status == 429 ? "overloaded" : "backend_error",
                         "Google Text-to-Speech answered HTTP %ld: %s", resp.status,
                         resp.error_message);
  http_response_release(&resp);
  return rc;
}

/* Appends `piece`'s samples to `all`. */
static int append(pcm_t *all, const pcm_t *piece)
{
  int16_t *grown = realloc(all->samples, (all->count + piece->count + 1) * sizeof *grown);
  if (!grown)
    return -1;
  memcpy(grown + all->count, piece->samples, piece->count * sizeof *grown);
  all->samples = grown;
  all->count += piece->count;
  all->sample_rate = piece->sample_rate;
  return 0;
}

static int synthesize(tts_backend_t *base, const char *text, tts_result_t *out,
                      stage_error_t *err)
{
  google_tts_t *self = (google_tts_t *) base;
  while (*text == ' ' || *text == '\n')
    text++;
  if (!*text)
    return stage_error_set(err, "empty_text", "There is no text to speak.");
  pcm_t all = {0};
  int pieces = 0;
  /* The pieces of one reply share the stage's budget. */
  int64_t end_ms = clock_mono_ms() + self->timeout_ms;
  while (*text) {
    size_t len = next_piece(text, INPUT_LIMIT_BYTES);
    pcm_t piece = {0};
    if (synthesize_piece(self, text, len, (long) (end_ms - clock_mono_ms()), &piece, err) != 0) {
      pcm_release(&all);
      return -1;
    }
    int rc = append(&all, &piece);
    pcm_release(&piece);
    if (rc != 0) {
      pcm_release(&all);
      return stage_error_set(err, "backend_error", "Out of memory.");
    }
    pieces++;
    text += len;
    while (*text == ' ' || *text == '\n')
      text++;
  }
  int rc = audio_wav_encode(&all, &out->audio, &out->audio_size);
  out->duration_ms = pcm_duration_ms(&all);
  pcm_release(&all);
  if (rc != 0)
    return stage_error_set(err, "backend_error", "Out of memory.");
  snprintf(out->mime, sizeof out->mime, "audio/wav");
  out->phonemes = NULL;
  out->phoneme_count = 0;
  if (pieces > 1) {
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddNumberToObject(fields, "pieces", pieces);
    cJSON_AddNumberToObject(fields, "ms", out->duration_ms);
    log_event(LOG_INFO, "tts_text_split", fields);
  }
  return 0;
}

static void destroy(tts_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  google_tts_t *self = (google_tts_t *) *self_p;
  google_auth_destroy(&self->auth);
  free(self);
  *self_p = NULL;
}

/* "en-US-Neural2-F" speaks "en-US", "cmn-CN-Wavenet-A" "cmn-CN": the first two parts. */
static int language_of(const char *voice, char *out, size_t size)
{
  const char *first = strchr(voice, '-');
  const char *second = first ? strchr(first + 1, '-') : NULL;
  size_t len = second ? (size_t) (second - voice) : 0;
  if (!len || len >= size)
    return -1;
  memcpy(out, voice, len);
  out[len] = '\0';
  return 0;
}

tts_backend_t *tts_google_new(stage_error_t *err)
{
  google_tts_t *self = calloc(1, sizeof *self);
  if (!self) {
    stage_error_set(err, "bad_config", "Out of memory.");
    return NULL;
  }
  self->base = (tts_backend_t){.name = "google", .synthesize = synthesize, .destroy = destroy};
  const char *base_url = config_str("GOOGLE_TTS_BASE_URL", "https://texttospeech.googleapis.com");
  const char *voice = config_str("GOOGLE_TTS_VOICE", "en-US-Neural2-F");
  self->timeout_ms = config_backend_budget_ms("tts");
  self->max_attempts = (int) config_long("TTS_MAX_ATTEMPTS", 3, 1, 10);
  if (snprintf(self->url, sizeof self->url, "%s/v1/text:synthesize", base_url) >=
        (int) sizeof self->url ||
      snprintf(self->voice, sizeof self->voice, "%s", voice) >= (int) sizeof self->voice ||
      language_of(self->voice, self->language, sizeof self->language) != 0) {
    stage_error_set(err, "bad_config",
                    "GOOGLE_TTS_VOICE must be a voice name such as en-US-Neural2-F, and "
                    "GOOGLE_TTS_BASE_URL a base URL");
    free(self);
    return NULL;
  }
  self->auth = google_auth_new("google_tts", "TTS_BACKEND=google", err);
  if (!self->auth) {
    free(self);
    return NULL;
  }
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "backend", "google");
  cJSON_AddStringToObject(fields, "url", self->url);
  cJSON_AddStringToObject(fields, "voice", self->voice);
  log_event(LOG_INFO, "tts_backend_ready", fields);
  return &self->base;
}
