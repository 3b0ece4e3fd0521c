/* stt: the speech-to-text stage. Turns the job's uploaded audio into a transcript
 * with the backend chosen by STT_BACKEND and hands the job to chat. */
#include "log.h"
#include "stage.h"
#include "stt_backend.h"

static int transcribe(void *backend, stage_job_t *current, Avatar__Job *job,
                      Avatar__Status *report, stage_error_t *err)
{
  (void) current;
  stt_backend_t *stt = backend;
  if (!job->input_audio.len)
    return stage_error_set(err, "bad_audio", "The request carries no audio.");
  stt_result_t result = {0};
  if (stt->transcribe(stt, job->input_audio.data, job->input_audio.len, job->input_mime, &result,
                      err) != 0)
    return -1;
  stage_set_string(&job->transcript, result.text);
  job->transcript_confidence = result.confidence;
  /* Later stages never need the upload; the gateway keeps its own copy. */
  stage_set_bytes(&job->input_audio, NULL, 0);
  report->transcript = job->transcript;
  report->question = job->transcript;
  return 0;
}

int main(void)
{
  stage_process_init("stt");
  stage_error_t err = {0};
  stt_backend_t *backend = stt_backend_from_config(&err);
  if (!backend) {
    log_msg(LOG_ERROR, "start_failed", "%s", err.message);
    return 1;
  }
  stage_t stage = {.name = "stt", .next = "chat", .handle = transcribe, .backend = backend};
  int rc = stage_run(&stage);
  backend->destroy(&backend);
  return rc;
}
