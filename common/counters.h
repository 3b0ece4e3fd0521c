/* counters: process-wide named counters with one label, e.g.
 * backend_requests{backend="gemini"}. Workers send a snapshot with every heartbeat;
 * the broker sums them per stage and the gateway serves them on /metrics. */
#ifndef COUNTERS_H
#define COUNTERS_H

#include <cjson/cJSON.h>
#include <stdint.h>

/* Adds `n` to counter `name` with label value `label` (NULL or "" for none).
 * Names are Prometheus metric names ([a-z_]+). Thread-safe. A process keeps at
 * most 256 distinct counters; more are ignored. */
void counter_add(const char *name, const char *label, uint64_t n);

/* {"name": {"label": value, ...}, ...}, unlabelled counters under "". Caller deletes. */
cJSON *counters_snapshot(void);

#endif
