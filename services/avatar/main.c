/* avatar: the last stage. Renders the talking-head video of the spoken reply with
 * the backend chosen by AVATAR_BACKEND and reports the finished answer. */
#include "avatar_backend.h"
#include "config.h"
#include "log.h"
#include "stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int render(void *backend, stage_job_t *current, Avatar__Job *job, Avatar__Status *report,
                  stage_error_t *err)
{
  (void) current;
  avatar_backend_t *avatar = backend;
  if (!job->speech_audio.len)
    return stage_error_set(err, "bad_request", "There is no speech to animate.");
  phoneme_t *phonemes = calloc(job->n_phonemes ? job->n_phonemes : 1, sizeof *phonemes);
  if (!phonemes)
    return stage_error_set(err, "backend_error", "Out of memory.");
  for (size_t i = 0; i < job->n_phonemes; i++) {
    snprintf(phonemes[i].symbol, sizeof phonemes[i].symbol, "%s", job->phonemes[i]->symbol);
    phonemes[i].start_ms = job->phonemes[i]->start_ms;
    phonemes[i].duration_ms = job->phonemes[i]->duration_ms;
  }
  avatar_input_t in = {
    .audio = job->speech_audio.data, .audio_size = job->speech_audio.len,
    .audio_mime = job->speech_mime, .phonemes = job->n_phonemes ? phonemes : NULL,
    .phoneme_count = job->n_phonemes, .character = job->character,
    .text = job->is_segment ? job->segment_text : job->reply, /* brows, captions */
    .continues_previous = job->is_segment && job->segment_index > 0,
    .continued_next = job->is_segment && job->segment_index + 1 != job->segment_count,
  };
  avatar_output_t out = {0};
  int rc = avatar->render(avatar, &in, &out, err);
  free(phonemes);
  if (rc != 0)
    return -1;
  char *mime = strdup(out.mime);
  if (!mime) {
    avatar_output_release(&out);
    return stage_error_set(err, "backend_error", "Out of memory.");
  }
  stage_set_bytes(&job->video, out.video, out.video_size);
  out.video = NULL;
  stage_set_string(&job->video_mime, mime);
  if (out.url) {
    stage_set_string(&job->video_url, out.url);
    out.url = NULL;
  }
  avatar_output_release(&out);
  report->question = *job->transcript ? job->transcript : job->input_text;
  report->transcript = job->transcript;
  report->reply = job->reply;
  report->video = job->video;
  report->video_mime = job->video_mime;
  report->video_url = job->video_url;
  report->duration_ms = job->speech_ms;
  return 0;
}

static avatar_backend_t *backend_from_config(stage_error_t *err)
{
  const char *name = config_str("AVATAR_BACKEND", "local");
  if (!strcmp(name, "local"))
    return avatar_local_new(err);
  if (!strcmp(name, "did"))
    return avatar_did_new(err);
  stage_error_set(err, "bad_config", "AVATAR_BACKEND=%s is not one of: local, did", name);
  return NULL;
}

int main(void)
{
  stage_process_init("avatar");
  stage_error_t err = {0};
  avatar_backend_t *backend = backend_from_config(&err);
  if (!backend) {
    log_msg(LOG_ERROR, "start_failed", "%s", err.message);
    return 1;
  }
  stage_t stage = {.name = "avatar", .next = NULL, .handle = render, .backend = backend};
  int rc = stage_run(&stage);
  backend->destroy(&backend);
  return rc;
}
