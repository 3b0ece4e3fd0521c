/* fake_openai_audio: OpenAI-compatible /v1/audio/transcriptions and /v1/audio/speech
 * (see fake_openai_audio.h). Requests are validated as OpenAI-style servers do; audio
 * is decoded with FFmpeg so only real audio is "transcribed", and speech is spoken by
 * espeak-ng. Speech comes as WAV or raw 24 kHz PCM only (the formats we ask for);
 * other valid formats get a 400 saying so. */
#include "fake_openai_audio.h"

#include "audio.h"
#include "fake_speech.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEECH_INPUT_LIMIT 4096

typedef struct {
  char api_key[256];
  bool wav_only;
} openai_state_t;

static void openai_error(fake_reply_t *reply, int status, const char *type, const char *message,
                         const char *param)
{
  cJSON *root = cJSON_CreateObject();
  cJSON *error = cJSON_AddObjectToObject(root, "error");
  cJSON_AddStringToObject(error, "message", message);
  cJSON_AddStringToObject(error, "type", type);
  if (param)
    cJSON_AddStringToObject(error, "param", param);
  else
    cJSON_AddNullToObject(error, "param");
  cJSON_AddNumberToObject(error, "code", status);
  fake_reply_cjson(reply, status, root);
}

/* Credentials and the scripted failures; true when the request may go on. */
static bool admitted(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  const openai_state_t *state = fake_server_state(server);
  const char *authorization = fake_request_header(req, "Authorization");
  if (state->api_key[0] && (!authorization || strncmp(authorization, "Bearer ", 7) ||
                            strcmp(authorization + 7, state->api_key))) {
    openai_error(reply, 401, "authentication_error", "Invalid API Key", NULL);
    return false;
  }
  if (!strcmp(req->outcome, "429")) {
    openai_error(reply, 429, "rate_limit_error", "Rate limit reached, try again later.", NULL);
    fake_reply_header(reply, "Retry-After", "1");
  } else if (!strcmp(req->outcome, "500")) {
    openai_error(reply, 500, "server_error", "The server had an error processing your request.",
                 NULL);
  } else if (!strcmp(req->outcome, "503")) {
    openai_error(reply, 503, "unavailable_error", "Loading model", NULL);
  } else {
    return true;
  }
  return false;
}

static bool is_wav(const uint8_t *data, size_t size)
{
  return size >= 12 && !memcmp(data, "RIFF", 4) && !memcmp(data + 8, "WAVE", 4);
}

static bool silent(const pcm_t *pcm)
{
  for (size_t i = 0; i < pcm->count; i++)
    if (pcm->samples[i] > 500 || pcm->samples[i] < -500)
      return false;
  return true;
}

static void on_transcribe(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  const openai_state_t *state = fake_server_state(server);
  if (!admitted(server, req, reply))
    return;
  const char *type = fake_request_header(req, "Content-Type");
  const fake_part_t *file = fake_request_part(req, "file");
  const fake_part_t *model = fake_request_part(req, "model");
  const fake_part_t *format = fake_request_part(req, "response_format");
  pcm_t pcm = {0};
  stage_error_t err = {0};
  if (!type || strncmp(type, "multipart/form-data", 19)) {
    openai_error(reply, 400, "invalid_request_error",
                 "Invalid Content-Type header: expected multipart/form-data.", NULL);
  } else if (!file || !file->filename || !file->size) {
    openai_error(reply, 400, "invalid_request_error", "no 'file' field in the request", "file");
  } else if (!model || !model->size) {
    openai_error(reply, 400, "invalid_request_error",
                 "you must provide a model parameter", "model");
  } else if (format && strcmp((const char *) format->data, "json") &&
             strcmp((const char *) format->data, "text") &&
             strcmp((const char *) format->data, "verbose_json") &&
             strcmp((const char *) format->data, "srt") &&
             strcmp((const char *) format->data, "vtt")) {
    openai_error(reply, 400, "invalid_request_error", "Invalid response_format.",
                 "response_format");
  } else if ((state->wav_only && !is_wav(file->data, file->size)) ||
             audio_decode(file->data, file->size, 16000, 0, &pcm, &err) != 0) {
    /* whisper.cpp's own envelope for audio it cannot read. */
    fake_reply_json(reply, 400, "{\"error\":\"failed to read audio data\"}");
  } else if (!strcmp(req->outcome, "malformed")) {
    fake_reply_json(reply, 200, "{\"text\": \"What are yo");
  } else {
    const char *heard = getenv("FAKE_OPENAI_TRANSCRIPT");
    cJSON *answer = cJSON_CreateObject();
    cJSON_AddStringToObject(answer, "text",
                            silent(&pcm) ? "" : heard && *heard ? heard
                                                                : "What are your office hours?");
    fake_reply_cjson(reply, 200, answer);
  }
  pcm_release(&pcm);
}

static void on_speech(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  if (!admitted(server, req, reply))
    return;
  cJSON *root = fake_request_json(req);
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
  const cJSON *voice = cJSON_GetObjectItemCaseSensitive(root, "voice");
  const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "response_format");
  const cJSON *speed = cJSON_GetObjectItemCaseSensitive(root, "speed");
  const char *fmt = cJSON_IsString(format) ? format->valuestring : "mp3";
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  if (!cJSON_IsObject(root)) {
    openai_error(reply, 400, "invalid_request_error", "We could not parse the JSON body of your "
                 "request.", NULL);
  } else if (!cJSON_IsString(model) || !*model->valuestring) {
    openai_error(reply, 400, "invalid_request_error", "you must provide a model parameter",
                 "model");
  } else if (!cJSON_IsString(input) || !*input->valuestring) {
    openai_error(reply, 400, "invalid_request_error", "input is required", "input");
  } else if (strlen(input->valuestring) > SPEECH_INPUT_LIMIT) {
    openai_error(reply, 400, "invalid_request_error",
                 "string too long. Expected a string with maximum length 4096.", "input");
  } else if (!cJSON_IsString(voice) || !*voice->valuestring) {
    openai_error(reply, 400, "invalid_request_error", "voice is required", "voice");
  } else if (speed && (!cJSON_IsNumber(speed) || speed->valuedouble < 0.25 ||
                       speed->valuedouble > 4.0)) {
    openai_error(reply, 400, "invalid_request_error", "speed must be between 0.25 and 4.0",
                 "speed");
  } else if (strcmp(fmt, "mp3") && strcmp(fmt, "opus") && strcmp(fmt, "aac") &&
             strcmp(fmt, "flac") && strcmp(fmt, "wav") && strcmp(fmt, "pcm")) {
    openai_error(reply, 400, "invalid_request_error", "Invalid response_format.",
                 "response_format");
  } else if (strcmp(fmt, "wav") && strcmp(fmt, "pcm")) {
    openai_error(reply, 400, "invalid_request_error", "This fake speaks wav and pcm only.",
                 "response_format");
  } else if (!strcmp(req->outcome, "malformed")) {
    fake_reply_raw(reply, 200, "audio/wav", "RIFF\x24\x00", 6);
  } else if (fake_speak_wav(input->valuestring, 24000, &wav, &wav_size) != 0) {
    openai_error(reply, 500, "server_error", "speech synthesis failed", NULL);
  } else if (!strcmp(fmt, "pcm")) {
    fake_reply_raw(reply, 200, "audio/pcm", wav + 44, wav_size - 44);
  } else {
    fake_reply_raw(reply, 200, "audio/wav", wav, wav_size);
  }
  free(wav);
  cJSON_Delete(root);
}

int fake_openai_audio_install(fake_server_t *server)
{
  openai_state_t *state = calloc(1, sizeof *state);
  if (!state)
    return -1;
  const char *key = getenv("FAKE_OPENAI_API_KEY");
  snprintf(state->api_key, sizeof state->api_key, "%s", key ? key : "");
  const char *wav_only = getenv("FAKE_OPENAI_WAV_ONLY");
  state->wav_only = wav_only && !strcmp(wav_only, "1");
  fake_server_set_state(server, state, free);
  const char *path = getenv("FAKE_OPENAI_STT_PATH");
  return fake_server_route(server, "POST", path && *path ? path : "/v1/audio/transcriptions",
                           on_transcribe) == 0 &&
         fake_server_route(server, "POST", "/v1/audio/speech", on_speech) == 0 ? 0 : -1;
}
