/* stage: job loop shared by stt, chat, tts and avatar (see stage.h). */
#include "stage.h"

#include "clock.h"
#include "config.h"
#include "counters.h"
#include "log.h"
#include "worker.h"

#include <czmq.h>

#include <libavutil/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FFmpeg prints to stderr by default, which would break one-JSON-line-per-event. */
static void ffmpeg_log(void *avcl, int level, const char *fmt, va_list args)
{
  (void) avcl;
  if (level > AV_LOG_ERROR)
    return;
  char text[512];
  vsnprintf(text, sizeof text, fmt, args);
  text[strcspn(text, "\n")] = '\0';
  log_msg(LOG_WARN, "ffmpeg", "%s", text);
}

void stage_process_init(const char *service)
{
  log_init(service);
  av_log_set_callback(ffmpeg_log);
}

void stage_set_string(char **field, char *value)
{
  if (*field && *field != protobuf_c_empty_string)
    free(*field);
  *field = value;
}

void stage_set_bytes(ProtobufCBinaryData *field, uint8_t *data, size_t size)
{
  free(field->data);
  field->data = data;
  field->len = data ? size : 0;
}

static void send_status(worker_t *worker, Avatar__Status *status)
{
  size_t size = avatar__status__get_packed_size(status);
  uint8_t *packed = malloc(size ? size : 1);
  if (!packed) {
    log_msg(LOG_ERROR, "out_of_memory", "status of %zu bytes for job %s dropped", size,
            status->job_id);
    return;
  }
  avatar__status__pack(status, packed);
  if (worker_status(worker, packed, size) != 0)
    log_msg(LOG_ERROR, "status_not_sent", "job %s", status->job_id);
  free(packed);
}

struct stage_job {
  const stage_t *stage;
  worker_t *worker;
  worker_job_t *work;
  int64_t started_ms;      /* monotonic */
  unsigned segments_sent;
};

/* Appends this stage's time to the job, which carries every stage's timing. */
static void add_timing(Avatar__Job *job, const char *stage, int64_t ms)
{
  Avatar__StageTiming **grown =
    realloc(job->timings, (job->n_timings + 1) * sizeof *job->timings);
  Avatar__StageTiming *timing = malloc(sizeof *timing);
  char *name = strdup(stage);
  if (grown)
    job->timings = grown;
  if (!grown || !timing || !name) {
    free(timing);
    free(name);
    return;
  }
  avatar__stage_timing__init(timing);
  timing->stage = name;
  timing->ms = (uint32_t) (ms < 0 ? 0 : ms);
  job->timings[job->n_timings++] = timing;
}

/* Packs `job` into a new buffer; NULL when out of memory. */
static uint8_t *pack_job(const Avatar__Job *job, size_t *size)
{
  *size = avatar__job__get_packed_size(job);
  uint8_t *packed = malloc(*size ? *size : 1);
  if (packed)
    avatar__job__pack(job, packed);
  return packed;
}

int stage_send_segment(stage_job_t *current, Avatar__Job *segment, stage_error_t *err)
{
  const stage_t *stage = current->stage;
  if (!stage->next)
    return stage_error_set(err, "backend_error", "The %s stage has no next stage.", stage->name);
  size_t timings_before = segment->n_timings;
  add_timing(segment, stage->name, clock_mono_ms() - current->started_ms);
  size_t size = 0;
  uint8_t *packed = pack_job(segment, &size);
  /* The timing belongs to this copy only: the finished job adds its own. */
  while (segment->n_timings > timings_before)
    avatar__stage_timing__free_unpacked(segment->timings[--segment->n_timings], NULL);
  if (!packed)
    return stage_error_set(err, "backend_error", "Out of memory.");
  int rc = worker_partial(current->worker, current->work, stage->next, packed, size);
  free(packed);
  if (rc != 0)
    return stage_error_set(err, "backend_error", "Segment %u could not be handed on.",
                           segment->segment_index);
  current->segments_sent++;
  return 0;
}

/* Marks `report` as describing one segment when `job` is one. */
static void describe_segment(Avatar__Status *report, const Avatar__Job *job)
{
  report->character = job->character;
  if (!job->is_segment)
    return;
  report->is_segment = true;
  report->segment_index = job->segment_index;
  report->segment_count = job->segment_count;
  report->segment_text = job->segment_text;
}

static void log_job(const char *event, const worker_job_t *work, const Avatar__Job *job,
                    int64_t ms, const stage_error_t *err)
{
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "job_id", work->id);
  if (job)
    cJSON_AddStringToObject(fields, "session_id", job->session_id);
  cJSON_AddNumberToObject(fields, "attempt", work->attempt);
  cJSON_AddNumberToObject(fields, "ms", (double) ms);
  if (err && stage_error_is_set(err)) {
    cJSON_AddStringToObject(fields, "code", err->code);
    cJSON_AddStringToObject(fields, "message", err->message);
  }
  log_event(err && stage_error_is_set(err) ? LOG_WARN : LOG_INFO, event, fields);
}

/* Runs one job; always hands it back to the broker. */
static void serve(const stage_t *stage, worker_t *worker, worker_job_t *work)
{
  stage_job_t current = {
    .stage = stage, .worker = worker, .work = work, .started_ms = clock_mono_ms()};
  Avatar__Status report = AVATAR__STATUS__INIT;
  report.job_id = work->id;
  report.stage = (char *) stage->name;
  report.attempt = work->attempt;
  stage_error_t err = {0};

  if (work->deadline_ms < clock_wall_ms()) {
    /* The broker has failed it already; work on it would be wasted. */
    log_job("job_expired", work, NULL, 0, NULL);
    worker_done(worker, &work, NULL, NULL, 0);
    return;
  }
  Avatar__Job *job = avatar__job__unpack(NULL, work->size, work->payload);
  if (!job)
    stage_error_set(&err, "bad_message", "The %s stage received a job it could not read.",
                    stage->name);
  Avatar__Error error = AVATAR__ERROR__INIT;
  if (job) {
    job->attempt = work->attempt;
    report.session_id = job->session_id;
    report.state = AVATAR__STATE__RUNNING;
    report.at_ms = (uint64_t) clock_wall_ms();
    describe_segment(&report, job);
    send_status(worker, &report);
    if (stage->handle(stage->backend, &current, job, &report, &err) == 0 &&
        !stage_error_is_set(&err))
      add_timing(job, stage->name, clock_mono_ms() - current.started_ms);
    else if (!stage_error_is_set(&err))
      stage_error_set(&err, "backend_error", "The %s stage failed.", stage->name);
  }

  int64_t ms = clock_mono_ms() - current.started_ms;
  report.at_ms = (uint64_t) clock_wall_ms();
  if (stage_error_is_set(&err)) {
    error.code = err.code;
    error.message = err.message;
    report.error = &error;
    report.state = AVATAR__STATE__FAILED;
  } else {
    /* The last stage finishes the job, unless it rendered one segment of it:
     * the gateway finishes a streamed job once every segment is there. */
    bool finishes = !stage->next && !(job && job->is_segment);
    report.state = finishes ? AVATAR__STATE__DONE : AVATAR__STATE__RUNNING;
  }
  if (job) {
    report.n_timings = job->n_timings;
    report.timings = job->timings;
  }
  send_status(worker, &report);
  log_job(stage_error_is_set(&err) ? "job_failed" : "job_done", work, job, ms, &err);
  counter_add(stage_error_is_set(&err) ? "jobs_failed" : "jobs_done",
              stage_error_is_set(&err) ? err.code : NULL, 1);
  counter_add("job_ms", NULL, (uint64_t) ms);

  uint8_t *packed = NULL;
  size_t size = 0;
  bool forwards = job && !stage_error_is_set(&err) && stage->next && !current.segments_sent;
  if (forwards)
    packed = pack_job(job, &size);
  if (forwards && !packed)
    log_msg(LOG_ERROR, "out_of_memory", "job %s of %zu bytes lost", work->id, size);
  worker_done(worker, &work, packed ? stage->next : NULL, packed, size);
  free(packed);
  if (job)
    avatar__job__free_unpacked(job, NULL);
}

int stage_run(const stage_t *stage)
{
  const char *endpoint = config_str("BROKER_ENDPOINT", "tcp://127.0.0.1:5555");
  worker_t *worker = worker_new(endpoint, stage->name);
  if (!worker) {
    log_msg(LOG_ERROR, "start_failed", "cannot start the broker connection to %s", endpoint);
    return 1;
  }
  log_msg(LOG_INFO, "stage_started", "serving %s jobs from %s", stage->name, endpoint);
  worker_job_t *work;
  while ((work = worker_next(worker)))
    serve(stage, worker, work);
  bool interrupted = zsys_interrupted != 0;
  log_msg(interrupted ? LOG_INFO : LOG_ERROR, "stage_stopping",
          interrupted ? "signal received" : "the broker connection failed");
  worker_destroy(&worker);
  return interrupted ? 0 : 1;
}
