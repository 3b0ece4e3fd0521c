/* fuzz_messages: the protobuf messages of the pipeline on arbitrary bytes.
 * Each input is
 *   - decoded as an avatar.Job and handled the way the stage runner
 *     (common/stage.c) does: the "running" Status it reports (session id and
 *     timings taken from the job) is packed, the job is enriched with
 *     stage_set_string / stage_set_bytes like a handler, packed for the next
 *     stage and decoded again, which must give back the same job;
 *   - applied as a packed avatar.Status to the gateway's status sink
 *     (gateway/status_sink.c) with in-memory stores and a temporary media
 *     directory, twice: a final status must not be applied a second time;
 *   - and the Status the stage runner packed goes through the sink as well.
 * The stores are emptied after every input so each one starts alike. */
#include "clock.h"
#include "job_store.h"
#include "log.h"
#include "media_store.h"
#include "metrics.h"
#include "pipeline.pb-c.h"
#include "session_store.h"
#include "stage.h"
#include "status_sink.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STORE_TTL_MS (3600 * 1000)
#define MEDIA_TTL_S 3600
#define SESSION_ID "sess-1" /* the seeds' session, opened before every input */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char media_dir[64];
static job_store_t *jobs;
static session_store_t *sessions;
static media_store_t *media;
static metrics_t *metrics;
static pipeline_t pipeline;
static status_sink_t sink;
static unsigned long jobs_released;

static void fail(const char *what)
{
  fprintf(stderr, "fuzz_messages: %s\n", what);
  abort();
}

static broker_submit_result_t never_submit(void *arg, const char *stage, const char *job_id,
                                           int64_t deadline_ms, const uint8_t *job, size_t size,
                                           unsigned *retry_after_s)
{
  (void) retry_after_s;
  (void) arg, (void) stage, (void) job_id, (void) deadline_ms, (void) job, (void) size;
  fail("the status sink submitted a job");
  return BROKER_UNAVAILABLE;
}

static cJSON *no_info(void *arg, int timeout_ms)
{
  (void) arg, (void) timeout_ms;
  return NULL;
}

static void count_final(void *arg, const char *job_id)
{
  (void) arg;
  if (!id_is_valid(job_id))
    fail("the status sink released an invalid job id");
  jobs_released++;
}

/* Removes the media directory at exit (its files are gone after each input). */
static void remove_media_dir(void)
{
  media_store_cleanup(media, (int64_t) time(NULL) + 100 * MEDIA_TTL_S);
  rmdir(media_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  setenv("LOG_LEVEL", "error", 0);
  log_init("fuzz_messages");
  snprintf(media_dir, sizeof media_dir, "/tmp/fuzz-media-XXXXXX");
  if (!mkdtemp(media_dir))
    fail("cannot make a media directory");
  jobs = job_store_new(STORE_TTL_MS);
  sessions = session_store_new(10, STORE_TTL_MS);
  media = media_store_new(media_dir, MEDIA_TTL_S);
  metrics = metrics_new();
  if (!jobs || !sessions || !media || !metrics)
    fail("cannot make the stores");
  pipeline = (pipeline_t) {
    .submit = never_submit, .info = no_info, .job_final = count_final, .arg = NULL,
  };
  sink = (status_sink_t) {
    .jobs = jobs, .sessions = sessions, .media = media, .metrics = metrics, .pipeline = &pipeline,
  };
  atexit(remove_media_dir);
  return 0;
}

/* Applies `packed` twice; a status that made its job final is dropped the
 * second time ("the first final status wins"). */
static void apply_status(const uint8_t *packed, size_t size)
{
  Avatar__Status *status = avatar__status__unpack(NULL, size, packed);
  unsigned long released = jobs_released;
  int first = status_sink_apply(&sink, packed, size);
  if (first == 0 && !status)
    fail("the sink applied a status that does not decode");
  if (first == 0) {
    cJSON *rendered = job_store_render(jobs, status->job_id, clock_wall_ms());
    if (!rendered)
      fail("an applied status left no job to poll");
    char *text = cJSON_PrintUnformatted(rendered);
    cJSON_Delete(rendered);
    if (!text)
      fail("out of memory");
    free(text);
  }
  bool became_final = jobs_released > released;
  int second = status_sink_apply(&sink, packed, size);
  if (became_final && second == 0)
    fail("a final status was applied twice");
  if (jobs_released > released + 1)
    fail("a job was released twice");
  avatar__status__free_unpacked(status, NULL);
}

/* protobuf-c 1.4 reads a tag with field number 0 when its varint is overlong
 * (0x82 0x00), keeps it as an unknown field and writes it back as 0x02, which it
 * then refuses to read (tests/fuzz/crashes/messages-field-zero*.pb). Such a job
 * fails at the next stage with "bad_message": a clear error, not a crash. */
static bool has_field_zero(const ProtobufCMessage *message)
{
  for (unsigned i = 0; i < message->n_unknown_fields; i++)
    if (message->unknown_fields[i].tag == 0)
      return true;
  /* ... or in any message inside it (history turns, phonemes, timings). */
  const ProtobufCMessageDescriptor *descriptor = message->descriptor;
  for (unsigned f = 0; f < descriptor->n_fields; f++) {
    const ProtobufCFieldDescriptor *field = &descriptor->fields[f];
    if (field->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    const char *base = (const char *) message;
    if (field->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t count = *(const size_t *) (base + field->quantifier_offset);
      ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *) (base + field->offset);
      for (size_t i = 0; i < count; i++)
        if (has_field_zero(items[i]))
          return true;
    } else {
      const ProtobufCMessage *inner = *(const ProtobufCMessage *const *) (base + field->offset);
      if (inner && has_field_zero(inner))
        return true;
    }
  }
  return false;
}

/* What common/stage.c does with a job it decoded: reports it running, lets the
 * handler enrich it, adds its timing and packs it for the next stage. */
static void run_stage(const uint8_t *data, size_t size)
{
  Avatar__Job *job = avatar__job__unpack(NULL, size, data);
  if (!job)
    return;
  job->attempt = 1;

  Avatar__Status report = AVATAR__STATUS__INIT;
  report.job_id = job->id;
  report.session_id = job->session_id;
  report.stage = "chat";
  report.state = AVATAR__STATE__RUNNING;
  report.at_ms = (uint64_t) clock_wall_ms();
  report.question = job->input_text;
  report.n_timings = job->n_timings;
  report.timings = job->timings;
  size_t status_size = avatar__status__get_packed_size(&report);
  uint8_t *status = malloc(status_size ? status_size : 1);
  if (!status)
    fail("out of memory");
  if (avatar__status__pack(&report, status) != status_size)
    fail("a status packed to a different size than announced");
  apply_status(status, status_size);
  free(status);

  /* A handler's work: new strings and bytes replace what the job carried. */
  char *reply = strdup(job->input_text);
  uint8_t *speech = malloc(job->input_audio.len ? job->input_audio.len : 1);
  if (!reply || !speech)
    fail("out of memory");
  memcpy(speech, job->input_audio.data ? job->input_audio.data : (const uint8_t *) "",
         job->input_audio.len);
  stage_set_string(&job->reply, reply);
  stage_set_bytes(&job->speech_audio, speech, job->input_audio.len);

  size_t job_size = avatar__job__get_packed_size(job);
  uint8_t *packed = malloc(job_size ? job_size : 1);
  if (!packed)
    fail("out of memory");
  if (avatar__job__pack(job, packed) != job_size)
    fail("a job packed to a different size than announced");
  Avatar__Job *next = avatar__job__unpack(NULL, job_size, packed);
  if (!next && !has_field_zero(&job->base))
    fail("a job packed by the stage runner does not decode");
  if (next && (strcmp(next->id, job->id) != 0 || strcmp(next->session_id, job->session_id) != 0 ||
      strcmp(next->reply, job->input_text) != 0 || next->n_history != job->n_history ||
      next->n_timings != job->n_timings || next->speech_audio.len != job->input_audio.len))
    fail("a job packed by the stage runner decodes to a different job");
  avatar__job__free_unpacked(next, NULL);
  free(packed);
  avatar__job__free_unpacked(job, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  int64_t now_ms = clock_wall_ms();
  char session_id[SESSION_ID_MAX + 1];
  if (session_store_open(sessions, SESSION_ID, now_ms, session_id) != 0)
    fail("cannot open the session");

  run_stage(data, size);
  apply_status(data, size);

  /* Forget everything, files included, so the next input starts alike. */
  int64_t later_ms = now_ms + 100 * (int64_t) STORE_TTL_MS;
  job_store_expire(jobs, later_ms);
  session_store_expire(sessions, later_ms);
  media_store_cleanup(media, later_ms / 1000);
  return 0;
}
