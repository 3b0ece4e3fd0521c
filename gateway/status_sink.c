/* status_sink: turns one avatar.Status into files and a job_update_t. Media is
 * written before the store is updated, so a URL is never visible before its
 * file exists. */
#include "status_sink.h"

#include "clock.h"
#include "ids.h"
#include "log.h"
#include "pipeline.pb-c.h"
#include "segment_join.h"
#include "upload.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* URLs of the files one event produced; empty strings when none. */
typedef struct {
  char audio_url[MEDIA_NAME_MAX + 16];
  char video_url[MEDIA_NAME_MAX + 16];
} event_urls_t;

static job_state_t state_from_proto(Avatar__State state)
{
  switch (state) {
  case AVATAR__STATE__QUEUED: return JOB_STATE_QUEUED;
  case AVATAR__STATE__RUNNING: return JOB_STATE_RUNNING;
  case AVATAR__STATE__DONE: return JOB_STATE_DONE;
  case AVATAR__STATE__FAILED: return JOB_STATE_FAILED;
  default: return JOB_STATE_NONE;
  }
}

static const char *audio_extension(const char *mime)
{
  if (upload_type_is(mime, "audio/mpeg") || upload_type_is(mime, "audio/mp3"))
    return "mp3";
  if (upload_type_is(mime, "audio/ogg"))
    return "ogg";
  return "wav"; /* eSpeak's output, and what the tts stage sends by default */
}

static const char *video_extension(const char *mime)
{
  return upload_type_is(mime, "video/webm") ? "webm" : "mp4";
}

/* Writes one media file named after the job (and segment) and fills `url`.
 * 0, or the errno of a failed write (logged; media_store leaves no temporary
 * file behind). */
static int save_media(const status_sink_t *sink, const Avatar__Status *status,
                      const ProtobufCBinaryData *bytes, const char *extension, char *url,
                      size_t url_size)
{
  if (!bytes->len)
    return 0;
  char name[MEDIA_NAME_MAX + 1];
  if (status->is_segment)
    snprintf(name, sizeof name, "%s-%u.%s", status->job_id, status->segment_index, extension);
  else
    snprintf(name, sizeof name, "%s.%s", status->job_id, extension);
  if (media_store_write(sink->media, name, bytes->data, bytes->len) != 0) {
    int error = errno ? errno : EIO;
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddStringToObject(fields, "job_id", status->job_id);
    cJSON_AddStringToObject(fields, "file", name);
    cJSON_AddStringToObject(fields, "reason", strerror(error));
    log_event(LOG_ERROR, "media_write_failed", fields);
    return error;
  }
  snprintf(url, url_size, "/media/%s", name);
  return 0;
}

/* Saves the event's media. 0, or the errno of the first failed write. */
static int save_event_media(const status_sink_t *sink, const Avatar__Status *status,
                            event_urls_t *urls)
{
  int error = save_media(sink, status, &status->audio, audio_extension(status->audio_mime),
                         urls->audio_url, sizeof urls->audio_url);
  if (!error)
    error = save_media(sink, status, &status->video, video_extension(status->video_mime),
                       urls->video_url, sizeof urls->video_url);
  /* A remote renderer hosts its own result: its URL is passed on as given. */
  if (!urls->video_url[0] && status->video_url && *status->video_url)
    snprintf(urls->video_url, sizeof urls->video_url, "%s", status->video_url);
  return error;
}

static void log_dropped(const char *job_id, const char *reason)
{
  cJSON *fields = cJSON_CreateObject();
  if (job_id)
    cJSON_AddStringToObject(fields, "job_id", job_id);
  cJSON_AddStringToObject(fields, "reason", reason);
  log_event(LOG_WARN, "status_dropped", fields);
}

/* A finished render goes into the answer cache (its files are ours and fresh). */
static void remember_answer(const status_sink_t *sink, const job_final_t *final, int64_t now_ms)
{
  if (!sink->answers || final->state != JOB_STATE_DONE || final->cached || !final->reply ||
      !final->video_url || strncmp(final->video_url, "/media/", 7) != 0)
    return;
  cached_answer_t answer = {{0}, {0}};
  snprintf(answer.video_url, sizeof answer.video_url, "%s", final->video_url);
  if (final->audio_url)
    snprintf(answer.audio_url, sizeof answer.audio_url, "%s", final->audio_url);
  if (answer_cache_put(sink->answers, final->reply, final->character, &answer, now_ms) != 0)
    log_msg(LOG_WARN, "answer_cache_failed", "an answer could not be cached");
}

static void finish(const status_sink_t *sink, const char *job_id, job_final_t *final,
                   int64_t now_ms)
{
  /* Jobs without a session (the greeting) are nobody's conversation. */
  if (final->session_id[0])
    session_store_append_exchange(sink->sessions, final->session_id, job_id, final->question,
                                  final->reply, now_ms);
  metrics_job_final(sink->metrics, final->state, final->error_code, final->timings,
                    final->timing_count);
  remember_answer(sink, final, now_ms);
  if (sink->conversations && final->session_id[0])
    conversation_log_record(sink->conversations, &(conversation_turn_t) {
      .job_id = job_id, .session_id = final->session_id, .question = final->question,
      .reply = final->reply, .failed = final->state == JOB_STATE_FAILED,
      .error_code = final->error_code, .timings = final->timings,
      .timing_count = final->timing_count, .at_ms = now_ms});
  sink->pipeline->job_final(sink->pipeline->arg, job_id);
  /* The other sentences of a failed answer need not be spoken any more. */
  if (final->state == JOB_STATE_FAILED && sink->pipeline->cancel)
    sink->pipeline->cancel(sink->pipeline->arg, job_id);
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "job_id", job_id);
  cJSON_AddStringToObject(fields, "state", job_state_name(final->state));
  if (final->error_code[0])
    cJSON_AddStringToObject(fields, "error_code", final->error_code);
  log_event(LOG_INFO, "job_final", fields);
}

/* Merges `update` and finishes the job when it became final. Returns the
 * store's verdict. */
static job_apply_result_t merge(const status_sink_t *sink, const job_update_t *update,
                                int64_t now_ms)
{
  job_final_t final;
  job_apply_result_t result = job_store_apply(sink->jobs, update, now_ms, &final);
  if (result == JOB_APPLY_BECAME_FINAL) {
    finish(sink, update->job_id, &final, now_ms);
    job_final_clear(&final);
  }
  return result;
}

/* Every segment of a streamed answer is rendered: joins them into the whole
 * answer's files and makes the job done (or failed, when they cannot be
 * joined: an answer nobody can replay is not done). */
static void finish_streamed(const status_sink_t *sink, const char *job_id, int64_t now_ms)
{
  char error[256] = "";
  joined_answer_t answer;
  cJSON *job = job_store_render(sink->jobs, job_id, now_ms);
  int rc = job ? segment_join(sink->media, job, &answer, error, sizeof error) : -1;
  cJSON_Delete(job);
  job_update_t update = {.job_id = job_id, .state = JOB_STATE_DONE, .stage = "avatar"};
  if (rc == 0) {
    update.audio_url = answer.audio_url;
    update.video_url = answer.video_url;
  } else {
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddStringToObject(fields, "job_id", job_id);
    cJSON_AddStringToObject(fields, "reason", error[0] ? error : "the job is gone");
    log_event(LOG_ERROR, "segment_join_failed", fields);
    update.state = JOB_STATE_FAILED;
    update.error_code = "storage_error";
    update.error_message = "The answer's sentences could not be joined into one video.";
  }
  merge(sink, &update, clock_wall_ms());
}

/* chat's reply was rendered before: the job is done with those files at once,
 * and the pipeline drops the sentences it already queued for speaking. */
static void answer_from_cache(const status_sink_t *sink, const Avatar__Status *status,
                              int64_t now_ms)
{
  if (!sink->answers || strcmp(status->stage, "chat") != 0 ||
      status->state != AVATAR__STATE__RUNNING || !*status->reply)
    return;
  cached_answer_t answer;
  bool hit = answer_cache_get(sink->answers, status->reply, status->character, now_ms, &answer);
  metrics_answer_cache(sink->metrics, hit);
  if (!hit)
    return;
  if (sink->pipeline->cancel)
    sink->pipeline->cancel(sink->pipeline->arg, status->job_id);
  job_update_t update = {.job_id = status->job_id, .state = JOB_STATE_DONE, .stage = "avatar",
                         .audio_url = answer.audio_url, .video_url = answer.video_url,
                         .cached = true};
  merge(sink, &update, clock_wall_ms());
}

static int apply(const status_sink_t *sink, const Avatar__Status *status, int64_t now_ms)
{
  if (job_store_is_final(sink->jobs, status->job_id, now_ms)) {
    log_dropped(status->job_id, "job already final");
    return -1;
  }
  event_urls_t urls = {{0}, {0}};
  int media_error = save_event_media(sink, status, &urls);

  job_timing_t timings[JOB_TIMINGS_MAX];
  size_t timing_count = 0;
  for (size_t i = 0; i < status->n_timings && timing_count < JOB_TIMINGS_MAX; i++) {
    snprintf(timings[timing_count].name, sizeof timings[timing_count].name, "%s",
             status->timings[i]->stage);
    timings[timing_count].ms = status->timings[i]->ms;
    timing_count++;
  }
  const char *question = *status->question ? status->question : status->transcript;
  job_update_t update = {
    .job_id = status->job_id,
    .session_id = id_is_valid(status->session_id) ? status->session_id : NULL,
    .state = state_from_proto(status->state),
    .stage = status->stage,
    .question = question,
    .reply = status->reply,
    .audio_url = urls.audio_url,
    .video_url = urls.video_url,
    .timings = timings,
    .timing_count = timing_count,
    .error_code = status->error ? status->error->code : NULL,
    .error_message = status->error ? status->error->message : NULL,
    .is_segment = status->is_segment,
    .segment_index = status->segment_index,
    .segment_text = status->segment_text,
    .segment_count = status->segment_count,
    .character = status->character,
    .duration_ms = status->duration_ms,
    .at_ms = (int64_t) status->at_ms,
  };
  if (media_error) {
    /* An answer whose media cannot be stored can never be played: fail the
     * job now, with a code that says why, instead of leaving it running. */
    bool full = media_error == ENOSPC || media_error == EDQUOT;
    update.state = JOB_STATE_FAILED;
    update.error_code = full ? "storage_full" : "storage_error";
    update.error_message = full ? "The answer could not be stored: the server's media storage "
                                  "is full."
                                : "The answer could not be stored on the server.";
  }
  job_apply_result_t result = merge(sink, &update, now_ms);
  if (result == JOB_APPLY_SEGMENTS_READY)
    finish_streamed(sink, status->job_id, now_ms);
  else if (result == JOB_APPLY_UPDATED)
    answer_from_cache(sink, status, now_ms);
  if (result == JOB_APPLY_ERROR || result == JOB_APPLY_IGNORED) {
    log_dropped(status->job_id, result == JOB_APPLY_ERROR ? "store error" : "job already final");
    return -1;
  }
  return 0;
}

int status_sink_apply(const status_sink_t *sink, const uint8_t *packed, size_t size)
{
  Avatar__Status *status = avatar__status__unpack(NULL, size, packed);
  if (!status) {
    log_dropped(NULL, "malformed status");
    return -1;
  }
  int rc = -1;
  /* The job id names files on disk: only well-formed ids go further. */
  if (id_is_valid(status->job_id))
    rc = apply(sink, status, clock_wall_ms());
  else
    log_dropped(NULL, "invalid job id");
  avatar__status__free_unpacked(status, NULL);
  return rc;
}
