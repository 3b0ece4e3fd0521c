/* stage: the loop every pipeline stage runs. It takes jobs from the broker, reports
 * "running", calls the stage's handler, reports the handler's results (or its
 * error), and forwards the enriched job to the next stage. The handlers only turn
 * one Job into a better Job. */
#ifndef STAGE_H
#define STAGE_H

#include "pipeline.pb-c.h"
#include "stage_error.h"

/* The job a stage is serving, as the handler sees it: lets the handler send
 * parts of its result on before it is finished (sentence streaming). */
typedef struct stage_job stage_job_t;

/* Does one stage's work on `job` in place and fills `report` with the results the
 * gateway should see (pointers into `job` are fine: the report is packed before
 * the job is freed). New fields of `job` must be malloc'd: the job is freed with
 * avatar__job__free_unpacked. Returns 0, or -1 with `err` set. */
typedef int (stage_handler_fn)(void *backend, stage_job_t *current, Avatar__Job *job,
                               Avatar__Status *report, stage_error_t *err);

typedef struct {
  const char *name;         /* "stt", "chat", "tts", "avatar" */
  const char *next;         /* next stage, or NULL for the last one */
  stage_handler_fn *handle;
  void *backend;
} stage_t;

/* Connects to BROKER_ENDPOINT (default tcp://127.0.0.1:5555) and serves jobs until
 * SIGINT/SIGTERM. Returns the process exit code. */
int stage_run(const stage_t *stage);

/* Sentence streaming: packs `segment` (the job with is_segment, segment_index and
 * segment_text set, and this stage's time so far added) and queues it for the
 * next stage at once, while the handler goes on. Once a handler has sent a
 * segment, the finished job itself goes no further: its segments carry it. The
 * handler may reuse `segment` after the call. 0, or -1 with `err` set. */
int stage_send_segment(stage_job_t *current, Avatar__Job *segment, stage_error_t *err);

/* Replaces a string field of an unpacked message, taking ownership of `value`.
 * Unpacked strings are either malloc'd or protobuf-c's shared empty string,
 * which must not be freed. */
void stage_set_string(char **field, char *value);

/* Replaces a bytes field of an unpacked message, taking ownership of `data`. */
void stage_set_bytes(ProtobufCBinaryData *field, uint8_t *data, size_t size);

/* Common process set-up: JSON logging under `service`, FFmpeg's own messages
 * routed into the log. */
void stage_process_init(const char *service);

#endif
