/* metrics: the gateway's counters and histograms, rendered in the Prometheus
 * text format for GET /metrics. All functions are thread-safe. */
#ifndef GATEWAY_METRICS_H
#define GATEWAY_METRICS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job_store.h"

typedef struct metrics metrics_t;

/* A new set of zeroed metrics. */
metrics_t *metrics_new(void);

/* Frees the metrics; sets *self_p to NULL. */
void metrics_destroy(metrics_t **self_p);

/* Counts one answered HTTP request. `route` is a fixed label such as "ask". */
void metrics_http_request(metrics_t *self, const char *route, unsigned status);

/* Counts an accepted audio upload of `bytes` bytes. */
void metrics_upload(metrics_t *self, size_t bytes);

/* Counts one look-up of a chat reply in the answer cache. */
void metrics_answer_cache(metrics_t *self, bool hit);

/* Counts one job that reached its final state, with its error code ("" when
 * none) and the per-stage timings for the latency histograms. */
void metrics_job_final(metrics_t *self, job_state_t state, const char *error_code,
                       const job_timing_t *timings, size_t timing_count);

/* What the gateway keeps in memory besides jobs, sampled for a render. */
typedef struct {
  bool sessions_known;     /* false with Redis stores: then not rendered */
  size_t sessions;         /* conversation sessions in the in-memory store */
  uint64_t sessions_evicted; /* of them, evicted for room since start (SESSION_MAX) */
  int64_t sqlite_bytes;    /* SQLite's heap: the conversation log's page cache */
} metrics_memory_t;

/* The Prometheus text. `broker_info` (may be NULL: broker unreachable) is the
 * answer of broker_client_info, for queue depth and workers per stage; `memory`
 * (may be NULL: not rendered) what the stores hold now. Returns
 * a new string (caller frees) or NULL when out of memory. Also renders the process's
 * heap figures (glibc mallinfo2). */
char *metrics_render(metrics_t *self, const cJSON *broker_info, const metrics_memory_t *memory);

#endif
