/* tts: the speech stage. Speaks the reply with the backend chosen by TTS_BACKEND
 * and carries the audio and its phoneme timings to the avatar. */
#include "config.h"
#include "log.h"
#include "stage.h"
#include "tts_backend.h"

#include <stdlib.h>
#include <string.h>

/* Moves the backend's timings into the job as protobuf messages. */
static int attach_phonemes(Avatar__Job *job, const tts_result_t *result)
{
  if (!result->phoneme_count)
    return 0;
  Avatar__Phoneme **list = calloc(result->phoneme_count, sizeof *list);
  if (!list)
    return -1;
  for (size_t i = 0; i < result->phoneme_count; i++) {
    Avatar__Phoneme *phoneme = malloc(sizeof *phoneme);
    char *symbol = strdup(result->phonemes[i].symbol);
    if (!phoneme || !symbol) {
      free(phoneme);
      free(symbol);
      for (size_t j = 0; j < i; j++)
        avatar__phoneme__free_unpacked(list[j], NULL);
      free(list);
      return -1;
    }
    avatar__phoneme__init(phoneme);
    phoneme->symbol = symbol;
    phoneme->start_ms = result->phonemes[i].start_ms;
    phoneme->duration_ms = result->phonemes[i].duration_ms;
    list[i] = phoneme;
  }
  for (size_t i = 0; i < job->n_phonemes; i++)
    avatar__phoneme__free_unpacked(job->phonemes[i], NULL);
  free(job->phonemes);
  job->phonemes = list;
  job->n_phonemes = result->phoneme_count;
  return 0;
}

static int speak(void *backend, stage_job_t *current, Avatar__Job *job, Avatar__Status *report,
                 stage_error_t *err)
{
  (void) current;
  tts_backend_t *tts = backend;
  /* A streamed job speaks its own sentence; the reply stays for the record. */
  const char *text = job->is_segment ? job->segment_text : job->reply;
  if (!text || !*text)
    return stage_error_set(err, "bad_request", "There is no reply to speak.");
  tts_result_t result = {0};
  if (tts->synthesize(tts, text, &result, err) != 0)
    return -1;
  char *mime = strdup(result.mime);
  if (!mime || attach_phonemes(job, &result) != 0) {
    free(mime);
    tts_result_release(&result);
    return stage_error_set(err, "backend_error", "Out of memory.");
  }
  stage_set_bytes(&job->speech_audio, result.audio, result.audio_size);
  result.audio = NULL;
  stage_set_string(&job->speech_mime, mime);
  job->speech_ms = result.duration_ms;
  tts_result_release(&result);
  report->reply = job->reply;
  report->audio = job->speech_audio;
  report->audio_mime = job->speech_mime;
  report->duration_ms = job->speech_ms;
  return 0;
}

static tts_backend_t *backend_from_config(stage_error_t *err)
{
  const char *name = config_str("TTS_BACKEND", "espeak");
  if (!strcmp(name, "espeak"))
    return tts_espeak_new(err);
  if (!strcmp(name, "google"))
    return tts_google_new(err);
  if (!strcmp(name, "openai"))
    return tts_openai_new(err);
  stage_error_set(err, "bad_config", "TTS_BACKEND=%s is not one of: espeak, google, openai", name);
  return NULL;
}

int main(void)
{
  stage_process_init("tts");
  stage_error_t err = {0};
  tts_backend_t *backend = backend_from_config(&err);
  if (!backend) {
    log_msg(LOG_ERROR, "start_failed", "%s", err.message);
    return 1;
  }
  stage_t stage = {.name = "tts", .next = "avatar", .handle = speak, .backend = backend};
  int rc = stage_run(&stage);
  backend->destroy(&backend);
  return rc;
}
