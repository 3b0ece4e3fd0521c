/* chat: the answering stage. Answers the transcript (or typed question) with the
 * conversation's earlier turns, using the backend chosen by CHAT_BACKEND, and
 * sends the reply on sentence by sentence (CHAT_STREAM_SENTENCES, on by default)
 * so that the first sentence is spoken while the others still render. A backend
 * that streams (the language models) has each sentence sent on as soon as the
 * model has written it. A first question asked again is answered from the reply
 * cache (CHAT_CACHE_MAX, CHAT_CACHE_TTL_S) without asking the backend. */
#include "chat_backend.h"
#include "config.h"
#include "log.h"
#include "reply_cache.h"
#include "sentence_stream.h"
#include "sentences.h"
#include "stage.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Most segments one reply is cut into; the gateway keeps up to 64 per job. */
#define CHAT_SEGMENTS_MAX 32

typedef struct {
  chat_backend_t *backend;
  bool stream_sentences;
  reply_cache_t *cache;     /* NULL when CHAT_CACHE_MAX=0 */
} chat_stage_t;

/* One reply being streamed: its sentences go on as segments of `job`. */
typedef struct {
  stage_job_t *current;
  Avatar__Job *job;
  sentence_stream_t *sentences;
  int64_t started_ms;
  int64_t first_ms;         /* when the first sentence went on, -1 before */
} streamed_reply_t;

static int64_t monotonic_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* A sentence of a streamed reply is complete: it goes on as the next segment.
 * Only the last one knows how many there are. */
static int send_streamed_sentence(void *arg, const char *text, size_t size, size_t index,
                                  bool last, stage_error_t *err)
{
  streamed_reply_t *streamed = arg;
  Avatar__Job *job = streamed->job;
  char *copy = strndup(text, size);
  if (!copy)
    return stage_error_set(err, "backend_error", "Out of memory.");
  stage_set_string(&job->segment_text, copy);
  job->is_segment = true;
  job->segment_index = (uint32_t) index;
  job->segment_count = last ? (uint32_t) index + 1 : 0;
  if (streamed->first_ms < 0)
    streamed->first_ms = monotonic_ms();
  return stage_send_segment(streamed->current, job, err);
}

static int feed_sentences(void *arg, const char *text, size_t size, stage_error_t *err)
{
  streamed_reply_t *streamed = arg;
  return sentence_stream_feed(streamed->sentences, text, size, err);
}

static void log_streamed(const chat_backend_t *chat, const streamed_reply_t *streamed,
                         size_t segments)
{
  cJSON *fields = cJSON_CreateObject();
  if (fields) {
    cJSON_AddStringToObject(fields, "backend", chat->name);
    cJSON_AddNumberToObject(fields, "segments", (double) segments);
    if (streamed->first_ms >= 0)
      cJSON_AddNumberToObject(fields, "first_segment_ms",
                              (double) (streamed->first_ms - streamed->started_ms));
    cJSON_AddNumberToObject(fields, "reply_ms", (double) (monotonic_ms() - streamed->started_ms));
  }
  log_event(LOG_INFO, "reply_streamed", fields);
}

/* Asks a streaming backend and sends each sentence on as the model completes
 * it. Returns how many segments were sent (0: the reply goes on whole), or -1;
 * *reply gets the whole reply. */
static long stream_reply(chat_backend_t *chat, stage_job_t *current, Avatar__Job *job,
                         const char *question, const chat_turn_t *history, char **reply,
                         stage_error_t *err)
{
  streamed_reply_t streamed = {.current = current, .job = job, .started_ms = monotonic_ms(),
                               .first_ms = -1};
  streamed.sentences = sentence_stream_new(CHAT_SEGMENTS_MAX, send_streamed_sentence, &streamed);
  if (!streamed.sentences)
    return stage_error_set(err, "backend_error", "Out of memory.");
  int rc = chat->reply_stream(chat, question, history, job->n_history, feed_sentences, &streamed,
                              reply, err);
  if (rc == 0 && sentence_stream_finish(streamed.sentences, err) != 0) {
    free(*reply);
    *reply = NULL;
    rc = -1;
  }
  size_t segments = sentence_stream_count(streamed.sentences);
  sentence_stream_destroy(&streamed.sentences);
  if (rc != 0)
    return -1;
  log_streamed(chat, &streamed, segments);
  return (long) segments;
}

/* The reply to a question without earlier turns, from the cache, into *reply
 * (malloc'd). Returns 1 on a hit, 0 on a miss, -1 with `err` set. */
static int cached_reply(chat_stage_t *stage, const char *question, char **reply,
                        stage_error_t *err)
{
  const char *cached = reply_cache_get(stage->cache, question);
  if (!cached)
    return 0;
  *reply = strdup(cached);
  if (!*reply)
    return stage_error_set(err, "backend_error", "Out of memory.");
  log_msg(LOG_INFO, "reply_cache_hit", "answered from the reply cache (%zu entries)",
          reply_cache_size(stage->cache));
  return 1;
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
  /* stt flags speech it could not make out; answering it would pick a topic the
   * person never asked about. */
  bool unheard = question == job->transcript &&
                 job->transcript_confidence < CHAT_TRANSCRIPT_MIN_CONFIDENCE;
  /* A follow-up's answer depends on the conversation: only first questions are cached. */
  bool cacheable = stage->cache && !unheard && job->n_history == 0;
  char *reply = NULL;
  int hit = cacheable ? cached_reply(stage, question, &reply, err) : 0;
  long segments = hit < 0 ? -1 : 0;   /* sent while the model wrote, or -1 */
  if (hit == 0 && unheard && chat->reply_unheard)
    segments = chat->reply_unheard(chat, &reply, err);
  else if (hit == 0 && stage->stream_sentences && chat->reply_stream)
    segments = stream_reply(chat, current, job, question, history, &reply, err);
  else if (hit == 0)
    segments = chat->reply(chat, question, history, job->n_history, &reply, err);
  free(history);
  if (segments < 0)
    return -1;
  if (cacheable && hit == 0 && reply_cache_put(stage->cache, question, reply) != 0)
    log_msg(LOG_WARN, "reply_cache_failed", "a reply could not be cached (out of memory)");
  stage_set_string(&job->reply, reply);
  report->question = (char *) question;
  report->transcript = job->transcript;
  report->reply = job->reply;
  if (!stage->stream_sentences)
    return 0;
  if (segments == 0)
    segments = send_sentences(current, job, err);
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
  long cache_max = config_long("CHAT_CACHE_MAX", 256, 0, REPLY_CACHE_MAX_ENTRIES);
  if (cache_max > 0) {
    chat.cache = reply_cache_new((size_t) cache_max, config_long("CHAT_CACHE_TTL_S", 600, 1, 86400),
                                 config_str("KNOWLEDGE_FILE", CHAT_KNOWLEDGE_DEFAULT));
    if (!chat.cache) {
      log_msg(LOG_ERROR, "start_failed", "Out of memory for the reply cache.");
      backend->destroy(&backend);
      return 1;
    }
  }
  stage_t stage = {.name = "chat", .next = "tts", .handle = answer, .backend = &chat};
  int rc = stage_run(&stage);
  reply_cache_destroy(&chat.cache);
  backend->destroy(&backend);
  return rc;
}
