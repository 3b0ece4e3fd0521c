/* fake_google_tts: Google Cloud Text-to-Speech v1 POST /v1/text:synthesize
 * (external-apis.md §3). Validates field names, exactly one of input.text/ssml, the
 * 5,000-byte input cap, a voice name agreeing with its language, the encoding enum and
 * the numeric ranges; speaks the text with espeak-ng. It produces LINEAR16 (a WAV
 * file, at sampleRateHertz or 24 kHz) only: other valid encodings get a 400 that says
 * this fake does not make them. */
#include "fake_google.h"

#include "fake_speech.h"
#include "google_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INPUT_LIMIT_BYTES 5000

static const char *const top_fields[] = {"input", "voice", "audioConfig", "enableTimePointing",
                                         NULL};
static const char *const input_fields[] = {"text", "ssml", "multiSpeakerMarkup", NULL};
static const char *const voice_fields[] = {"languageCode", "name", "ssmlGender",
                                           "customVoice", "voiceClone", NULL};
static const char *const audio_fields[] = {"audioEncoding", "speakingRate", "pitch",
                                           "volumeGainDb", "sampleRateHertz", "effectsProfileId",
                                           NULL};
static const char *const encodings[] = {"LINEAR16", "MP3", "OGG_OPUS", "MULAW", "ALAW", "PCM",
                                        "M4A", NULL};

static void bad(fake_reply_t *reply, const char *message)
{
  fake_google_error(reply, 400, "INVALID_ARGUMENT", message, NULL);
}

static bool in_range(const cJSON *item, double min, double max)
{
  return !item || (cJSON_IsNumber(item) && item->valuedouble >= min && item->valuedouble <= max);
}

static bool one_of(const char *value, const char *const *names)
{
  for (size_t i = 0; names[i]; i++)
    if (!strcmp(value, names[i]))
      return true;
  return false;
}

/* "en-US-Neural2-F" speaks "en-US": the voice name starts with its language code. */
static bool voice_matches(const char *name, const char *language)
{
  size_t len = strlen(language);
  return !strncasecmp(name, language, len) && name[len] == '-';
}

static void on_synthesize(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  if (!fake_google_authorized(server, req, reply) || fake_google_failure(req, reply))
    return;
  cJSON *root = fake_google_json_body(req, reply);
  if (!root)
    return;
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
  const cJSON *voice = cJSON_GetObjectItemCaseSensitive(root, "voice");
  const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "audioConfig");
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(input, "text");
  const cJSON *ssml = cJSON_GetObjectItemCaseSensitive(input, "ssml");
  const cJSON *language = cJSON_GetObjectItemCaseSensitive(voice, "languageCode");
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(voice, "name");
  const cJSON *encoding = cJSON_GetObjectItemCaseSensitive(config, "audioEncoding");
  const cJSON *rate = cJSON_GetObjectItemCaseSensitive(config, "sampleRateHertz");
  const char *spoken = cJSON_IsString(text) ? text->valuestring
                       : cJSON_IsString(ssml) ? ssml->valuestring : NULL;
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  if (!fake_google_known_fields(root, top_fields, "", reply) ||
      (cJSON_IsObject(input) && !fake_google_known_fields(input, input_fields, "input", reply)) ||
      (cJSON_IsObject(voice) && !fake_google_known_fields(voice, voice_fields, "voice", reply)) ||
      (cJSON_IsObject(config) &&
       !fake_google_known_fields(config, audio_fields, "audio_config", reply))) {
  } else if ((text && ssml) || !spoken) {
    bad(reply, "Either input.text or input.ssml needs to be set (exactly one).");
  } else if (strlen(spoken) > INPUT_LIMIT_BYTES) {
    bad(reply, "Either `input.text` or `input.ssml` is longer than the limit of 5000 bytes. This "
               "limit is different from quotas. To fix, reduce the byte length of the characters "
               "in this request, or consider using the Long Audio API: "
               "https://cloud.google.com/text-to-speech/docs/create-audio-text-long-audio-synthesis.");
  } else if (!cJSON_IsString(language) || !*language->valuestring) {
    bad(reply, "Invalid value at 'voice.language_code': a BCP-47 language code is required.");
  } else if (name && (!cJSON_IsString(name) ||
                      !voice_matches(name->valuestring, language->valuestring))) {
    char message[300];
    snprintf(message, sizeof message,
             "Requested language code '%s' doesn't match the voice '%s''s language code.",
             language->valuestring, cJSON_IsString(name) ? name->valuestring : "?");
    bad(reply, message);
  } else if (!cJSON_IsString(encoding) || !one_of(encoding->valuestring, encodings)) {
    bad(reply, "Invalid value at 'audio_config.audio_encoding': AudioEncoding is required and "
               "must be one of LINEAR16, MP3, OGG_OPUS, MULAW, ALAW, PCM, M4A.");
  } else if (!in_range(cJSON_GetObjectItemCaseSensitive(config, "speakingRate"), 0, 4) ||
             !in_range(cJSON_GetObjectItemCaseSensitive(config, "pitch"), -20, 20) ||
             !in_range(cJSON_GetObjectItemCaseSensitive(config, "volumeGainDb"), -96, 16) ||
             !in_range(rate, 8000, 48000)) {
    bad(reply, "Invalid audio_config: speaking_rate, pitch, volume_gain_db or sample_rate_hertz "
               "out of range.");
  } else if (strcmp(encoding->valuestring, "LINEAR16")) {
    bad(reply, "This fake only synthesizes LINEAR16.");
  } else if (!strcmp(req->outcome, "malformed")) {
    fake_reply_json(reply, 200, "{\"audioContent\": \"UklGRiQAAABXQVZFZm");
  } else if (fake_speak_wav(spoken, rate ? rate->valueint : 24000, &wav, &wav_size) != 0) {
    fake_google_error(reply, 500, "INTERNAL", "Internal error encountered.", NULL);
  } else {
    char *content = google_base64_encode(wav, wav_size);
    int status = content ? 200 : 500;
    cJSON *answer = cJSON_CreateObject();
    cJSON_AddStringToObject(answer, "audioContent", content ? content : "");
    free(content);
    fake_reply_cjson(reply, status, answer);
  }
  free(wav);
  cJSON_Delete(root);
}

int fake_google_tts_routes(fake_server_t *server)
{
  return fake_server_route(server, "POST", "/v1/text:synthesize", on_synthesize);
}
