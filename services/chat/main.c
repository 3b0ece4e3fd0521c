/* chat: the answering stage. Answers the transcript (or typed question) with the
 * conversation's earlier turns, using the backend chosen by CHAT_BACKEND, and
 * sends the reply on sentence by sentence (CHAT_STREAM_SENTENCES, on by default)
 * so that the first sentence is spoken while the others still render. */
#include "chat_backend.h"
#include "config.h"
#include "log.h"
#include "sentences.h"
#include "stage.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Most segments one reply is cut into; the gateway keeps up to 64 per job. */
#define CHAT_SEGMENTS_MAX 32

typedef struct {
  chat_backend_t *backend;
  bool stream_sentences;
} chat_stage_t;

/* Sends the reply on as one segment per sentence. Returns how many were sent
 * (0 for a reply with no words: the job then goes on whole), or -1. */
static long send_sentences(stage_job_t *current, Avatar__Job *job, stage_error_t *err)
{
  sentence_span_t spans[CHAT_SEGMENTS_MAX];
  size_t count = sentences_split(job->reply, spans, CHAT_SEGMENTS_MAX);
  job->is_segment = count > 0;
  job->segment_count = (uint32_t) count;
  for (size_t i = 0; i < count; i++) {
    char *text = strndup(job->reply + spans[i].start, spans[i].length);
    if (!text)
      return stage_error_set(err, "backend_error", "Out of memory.");
    stage_set_string(&job->segment_text, text);
    job->segment_index = (uint32_t) i;
    if (stage_send_segment(current, job, err) != 0)
      return -1;
  }
  return (long) count;
}

static int answer(void *arg, stage_job_t *current, Avatar__Job *job, Avatar__Status *report,
                  stage_error_t *err)
{
  chat_stage_t *stage = arg;
  chat_backend_t *chat = stage->backend;
  const char *question = job->transcript && *job->transcript ? job->transcript : job->input_text;
  if (!question || !*question)
    return stage_error_set(err, "bad_request", "There is no question to answer.");
  chat_turn_t *history = calloc(job->n_history ? job->n_history : 1, sizeof *history);
  if (!history)
    return stage_error_set(err, "backend_error", "Out of memory.");
  for (size_t i = 0; i < job->n_history; i++) {
    history[i].role = job->history[i]->role;
    history[i].text = job->history[i]->text;
  }
  char *reply = NULL;
  /* stt flags speech it could not make out; answering it would pick a topic the
   * person never asked about. */
  bool unheard = question == job->transcript &&
                 job->transcript_confidence < CHAT_TRANSCRIPT_MIN_CONFIDENCE;
  int rc = unheard && chat->reply_unheard
             ? chat->reply_unheard(chat, &reply, err)
             : chat->reply(chat, question, history, job->n_history, &reply, err);
  free(history);
  if (rc != 0)
    return -1;
  stage_set_string(&job->reply, reply);
  report->question = (char *) question;
  report->transcript = job->transcript;
  report->reply = job->reply;
  if (!stage->stream_sentences)
    return 0;
  long segments = send_sentences(current, job, err);
  if (segments < 0)
    return -1;
  report->segment_count = (uint32_t) segments;
  /* The report describes the whole reply, not the last segment sent. */
  job->is_segment = false;
  return 0;
}

static chat_backend_t *backend_from_config(stage_error_t *err)
{
  const char *name = config_str("CHAT_BACKEND", "kb");
  if (!strcmp(name, "kb"))
    return chat_kb_new(err);
  if (!strcmp(name, "gemini"))
    return chat_gemini_new(err);
  if (!strcmp(name, "openai"))
    return chat_openai_new(err);
  stage_error_set(err, "bad_config", "CHAT_BACKEND=%s is not one of: kb, gemini, openai", name);
  return NULL;
}

int main(void)
{
  stage_process_init("chat");
  stage_error_t err = {0};
  chat_backend_t *backend = backend_from_config(&err);
  if (!backend) {
    log_msg(LOG_ERROR, "start_failed", "%s", err.message);
    return 1;
  }
  chat_stage_t chat = {.backend = backend,
                       .stream_sentences = config_bool("CHAT_STREAM_SENTENCES", true)};
  stage_t stage = {.name = "chat", .next = "tts", .handle = answer, .backend = &chat};
  int rc = stage_run(&stage);
  backend->destroy(&backend);
  return rc;
}
