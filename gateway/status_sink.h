/* status_sink: applies the pipeline's status events (packed avatar.Status) to
 * the gateway's state: media bytes become files, results and timings merge into
 * the job store, and a job that becomes final adds its question and reply to
 * its session and to the conversation log, is counted in the metrics and is
 * released from the pipeline. A streamed answer is joined once every segment is
 * there; a reply rendered before is answered from the answer cache. */
#ifndef GATEWAY_STATUS_SINK_H
#define GATEWAY_STATUS_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "answer_cache.h"
#include "conversation_log.h"
#include "job_store.h"
#include "media_store.h"
#include "metrics.h"
#include "pipeline.h"
#include "session_store.h"

typedef struct {
  job_store_t *jobs;
  session_store_t *sessions;
  media_store_t *media;
  metrics_t *metrics;
  const pipeline_t *pipeline;
  conversation_log_t *conversations;  /* NULL: conversations are not logged */
  answer_cache_t *answers;            /* NULL: every reply is rendered */
} status_sink_t;

/* Applies one packed avatar.Status. Malformed events and events for jobs that
 * are already final are logged and dropped. 0 when applied, -1 when dropped. */
int status_sink_apply(const status_sink_t *sink, const uint8_t *packed, size_t size);

#endif
