/* fake_google_speech: Google Cloud Speech-to-Text v1 POST /v1/speech:recognize
 * (external-apis.md §1). It validates the request as the service does: field names,
 * encodings, the Opus sample-rate set, a WAV header's rate, base64, exactly one of
 * content/uri, the one-minute sync limit. It decodes the audio with FFmpeg to make
 * sure it is what the encoding claims; silence gets the empty answer {}, speech
 * "hears" FAKE_GOOGLE_TRANSCRIPT. */
#include "fake_google.h"

#include "audio.h"
#include "google_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNC_LIMIT_MS 60000
#define MAX_REQUEST_BYTES (10u << 20)

static const char *const top_fields[] = {"config", "audio", NULL};
static const char *const config_fields[] = {
  "encoding", "sampleRateHertz", "audioChannelCount", "enableSeparateRecognitionPerChannel",
  "languageCode", "alternativeLanguageCodes", "maxAlternatives", "profanityFilter",
  "speechContexts", "enableWordTimeOffsets", "enableWordConfidence",
  "enableAutomaticPunctuation", "enableSpokenPunctuation", "enableSpokenEmojis",
  "diarizationConfig", "metadata", "model", "useEnhanced", "adaptation", NULL};
static const char *const audio_fields[] = {"content", "uri", NULL};
static const char *const encodings[] = {
  "ENCODING_UNSPECIFIED", "LINEAR16", "FLAC", "MULAW", "AMR", "AMR_WB", "OGG_OPUS",
  "SPEEX_WITH_HEADER_BYTE", "WEBM_OPUS", NULL};

static void bad(fake_reply_t *reply, const char *message)
{
  fake_google_error(reply, 400, "INVALID_ARGUMENT", message, NULL);
}

static bool one_of(const char *value, const char *const *names)
{
  for (size_t i = 0; names[i]; i++)
    if (!strcmp(value, names[i]))
      return true;
  return false;
}

static bool is_wav(const uint8_t *data, size_t size)
{
  return size >= 44 && !memcmp(data, "RIFF", 4) && !memcmp(data + 8, "WAVE", 4);
}

/* The sample rate in a WAV header's fmt chunk (the first chunk after RIFF/WAVE). */
static long wav_rate(const uint8_t *data)
{
  return (long) data[24] | (long) data[25] << 8 | (long) data[26] << 16 | (long) data[27] << 24;
}

/* Does the container match the declared encoding? NULL when it does. */
static const char *container_problem(const char *encoding, const uint8_t *data, size_t size)
{
  static const uint8_t ebml[] = {0x1a, 0x45, 0xdf, 0xa3};
  if (!strcmp(encoding, "WEBM_OPUS") && (size < 4 || memcmp(data, ebml, 4)))
    return "Invalid recognition 'config': bad encoding..";
  if (!strcmp(encoding, "OGG_OPUS") && (size < 4 || memcmp(data, "OggS", 4)))
    return "Invalid recognition 'config': bad encoding..";
  if (!strcmp(encoding, "FLAC") && (size < 4 || memcmp(data, "fLaC", 4)))
    return "Invalid recognition 'config': bad encoding..";
  return NULL;
}

static bool silent(const pcm_t *pcm)
{
  for (size_t i = 0; i < pcm->count; i++)
    if (pcm->samples[i] > 500 || pcm->samples[i] < -500)
      return false;
  return true;
}

static void on_recognize(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  if (!fake_google_authorized(server, req, reply) || fake_google_failure(req, reply))
    return;
  if (req->body_size > MAX_REQUEST_BYTES) {
    bad(reply, "Request payload size exceeds the limit: 10485760 bytes.");
    return;
  }
  cJSON *root = fake_google_json_body(req, reply);
  if (!root)
    return;
  const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "config");
  const cJSON *audio = cJSON_GetObjectItemCaseSensitive(root, "audio");
  const cJSON *encoding = cJSON_GetObjectItemCaseSensitive(config, "encoding");
  const cJSON *rate = cJSON_GetObjectItemCaseSensitive(config, "sampleRateHertz");
  const cJSON *language = cJSON_GetObjectItemCaseSensitive(config, "languageCode");
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(audio, "content");
  const cJSON *uri = cJSON_GetObjectItemCaseSensitive(audio, "uri");
  uint8_t *bytes = NULL;
  size_t size = 0;
  pcm_t pcm = {0};
  stage_error_t err = {0};
  const char *enc = cJSON_IsString(encoding) ? encoding->valuestring : "ENCODING_UNSPECIFIED";
  if (!fake_google_known_fields(root, top_fields, "", reply) ||
      (config && !fake_google_known_fields(config, config_fields, "config", reply)) ||
      (audio && !fake_google_known_fields(audio, audio_fields, "audio", reply))) {
  } else if (!cJSON_IsObject(config) || !cJSON_IsObject(audio)) {
    bad(reply, "RecognitionConfig and RecognitionAudio are required.");
  } else if (!cJSON_IsString(language) || !*language->valuestring) {
    bad(reply, "Invalid recognition 'config': missing language_code.");
  } else if (encoding && (!cJSON_IsString(encoding) || !one_of(enc, encodings))) {
    char message[256];
    snprintf(message, sizeof message,
             "Invalid value at 'config.encoding' (type.googleapis.com/google.cloud.speech.v1."
             "RecognitionConfig.AudioEncoding), \"%s\"",
             cJSON_IsString(encoding) ? encoding->valuestring : "?");
    bad(reply, message);
  } else if (rate && (!cJSON_IsNumber(rate) || rate->valuedouble < 8000 ||
                      rate->valuedouble > 48000)) {
    bad(reply, "Invalid recognition 'config': sample_rate_hertz must be in 8000..48000.");
  } else if ((!strcmp(enc, "WEBM_OPUS") || !strcmp(enc, "OGG_OPUS")) &&
             (!rate || (rate->valueint != 8000 && rate->valueint != 12000 &&
                        rate->valueint != 16000 && rate->valueint != 24000 &&
                        rate->valueint != 48000))) {
    bad(reply, "Invalid recognition 'config': opus only supports 8000, 12000, 16000, 24000, or "
               "48000 Hz sample rates.");
  } else if ((content && uri) || (!content && !uri)) {
    bad(reply, "RecognitionAudio not set: exactly one of content or uri is required.");
  } else if (uri) {
    bad(reply, "Requested entity was not found: the fake serves inline content only.");
  } else if (!cJSON_IsString(content) ||
             google_base64_decode(content->valuestring, strlen(content->valuestring), &bytes,
                                  &size) != 0) {
    bad(reply, "Invalid value at 'audio.content' (TYPE_BYTES), Base64 decoding failed.");
  } else if (!strcmp(enc, "ENCODING_UNSPECIFIED") && !is_wav(bytes, size) &&
             (size < 4 || memcmp(bytes, "fLaC", 4))) {
    bad(reply, "Invalid recognition 'config': bad encoding..");
  } else if (container_problem(enc, bytes, size)) {
    bad(reply, container_problem(enc, bytes, size));
  } else if (is_wav(bytes, size) && rate && wav_rate(bytes) != rate->valueint) {
    char message[256];
    snprintf(message, sizeof message,
             "sample_rate_hertz (%d) in RecognitionConfig must either be unspecified or match the "
             "value in the WAV header (%ld).", rate->valueint, wav_rate(bytes));
    bad(reply, message);
  } else if (audio_decode(bytes, size, 16000, 0, &pcm, &err) != 0) {
    bad(reply, "Invalid recognition 'config': bad encoding..");
  } else if (pcm_duration_ms(&pcm) > SYNC_LIMIT_MS) {
    bad(reply, "Sync input too long. For audio longer than 1 min use LongRunningRecognize with a "
               "'uri' parameter.");
  } else if (!strcmp(req->outcome, "malformed")) {
    fake_reply_json(reply, 200, "{\"results\": [{\"alternatives\": [{\"transcript\": \"wh");
  } else if (!strcmp(req->outcome, "empty") || silent(&pcm)) {
    fake_reply_json(reply, 200, "{\"totalBilledTime\":\"1s\",\"requestId\":\"8153296347294883912\"}");
  } else {
    const char *heard = getenv("FAKE_GOOGLE_TRANSCRIPT");
    char end_time[32];
    snprintf(end_time, sizeof end_time, "%.3fs", pcm_duration_ms(&pcm) / 1000.0);
    cJSON *answer = cJSON_CreateObject();
    cJSON *result = cJSON_CreateObject();
    cJSON *alternative = cJSON_CreateObject();
    cJSON_AddStringToObject(alternative, "transcript",
                            heard && *heard ? heard : "what are your office hours");
    cJSON_AddNumberToObject(alternative, "confidence", 0.93);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(result, "alternatives"), alternative);
    cJSON_AddStringToObject(result, "resultEndTime", end_time);
    cJSON_AddStringToObject(result, "languageCode", "en-us");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(answer, "results"), result);
    cJSON_AddStringToObject(answer, "totalBilledTime", "2s");
    cJSON_AddStringToObject(answer, "requestId", "8153296347294883912");
    fake_reply_cjson(reply, 200, answer);
  }
  pcm_release(&pcm);
  free(bytes);
  cJSON_Delete(root);
}

int fake_google_speech_routes(fake_server_t *server)
{
  return fake_server_route(server, "POST", "/v1/speech:recognize", on_recognize);
}
