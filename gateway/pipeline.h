/* pipeline: what the gateway needs from the broker, as a small table of
 * functions. main.c fills it with broker_client calls; tests fill it with fakes
 * so the HTTP API runs without a broker. */
#ifndef GATEWAY_PIPELINE_H
#define GATEWAY_PIPELINE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "broker_client.h"

typedef struct {
  /* Queues packed avatar.Job `job` for `stage` ("stt" or "chat"). On
   * BROKER_NACK_FULL, when `retry_after_s` is not NULL, sets it to the broker's
   * estimate of when it would admit a job again (0 when it gave none). */
  broker_submit_result_t (*submit)(void *arg, const char *stage, const char *job_id,
                                   int64_t deadline_ms, const uint8_t *job, size_t size,
                                   unsigned *retry_after_s);
  /* The broker's per-stage figures (see broker_client_info), or NULL when it
   * does not answer within `timeout_ms`. The caller deletes the result. */
  cJSON *(*info)(void *arg, int timeout_ms);
  /* The job reached done or failed: stop tracking it for re-submission. */
  void (*job_final)(void *arg, const char *job_id);
  /* The job was answered another way (the answer cache): the pipeline drops
   * the work still queued or running for it. May be NULL where no answer cache
   * is used. */
  void (*cancel)(void *arg, const char *job_id);
  void *arg;
} pipeline_t;

#endif
