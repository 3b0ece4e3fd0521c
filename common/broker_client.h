/* broker_client: a producer's and status consumer's connection to the broker
 * (the gateway uses it). Owns one DEALER socket on a background thread that answers
 * heartbeats, reconnects when the broker goes silent, and keeps every submitted job
 * until the owner declares it final, re-submitting the ones still open after a
 * reconnect (the gateway is the durable end: Titanic pattern, see docs/protocol.md).
 * All functions are thread-safe, and concurrent callers do not wait for each
 * other: each waits for its own answer up to its own timeout. */
#ifndef BROKER_CLIENT_H
#define BROKER_CLIENT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct broker_client broker_client_t;

/* Called on the client's thread for every status event, with a packed
 * avatar.Status protobuf. Must not block for long; must not call back into
 * broker_client_submit (it would wait on its own thread). */
typedef void (broker_status_fn)(void *arg, const uint8_t *status, size_t size);

typedef enum {
  BROKER_ACK = 0,          /* queued */
  BROKER_NACK_FULL = 1,    /* refused (a queue is full, or the job would wait past its
                              deadline): answer 503 + Retry-After */
  BROKER_UNAVAILABLE = 2,  /* no answer from the broker in time */
} broker_submit_result_t;

/* Connects to `endpoint` (e.g. "tcp://127.0.0.1:5555") and subscribes to status
 * events. NULL on failure. */
broker_client_t *broker_client_new(const char *endpoint, broker_status_fn *on_status, void *arg);

/* Stops the thread, closes the socket, frees everything; sets *self_p to NULL. */
void broker_client_destroy(broker_client_t **self_p);

/* Queues a packed avatar.Job for `stage` ("stt" or "chat") and waits up to
 * `timeout_ms` for the broker's answer. On BROKER_NACK_FULL `reason` gets the
 * broker's explanation and, when `retry_after_ms` is not NULL, the broker's estimate
 * of when it would admit a job again (at most an hour; 0 when the NACK carried none,
 * e.g. for a deadline that had passed). The job is kept for re-submission until
 * broker_client_job_final() unless the answer was a NACK. */
broker_submit_result_t broker_client_submit(broker_client_t *self, const char *stage,
                                            const char *job_id, int64_t deadline_ms,
                                            const uint8_t *job, size_t size,
                                            int timeout_ms, char *reason, size_t reason_size,
                                            int64_t *retry_after_ms);

/* The job reached done or failed: forget it (no more re-submission). */
void broker_client_job_final(broker_client_t *self, const char *job_id);

/* The job is no longer wanted (e.g. its answer came from a cache): forgets it like
 * broker_client_job_final() and tells the broker to drop its queued entries and
 * the forwards of a worker still holding it (AVP1 CANCEL). Never waits; 0 when the
 * request was handed to the client thread, -1 otherwise (bad id, or the thread is
 * a thousand requests behind). Status events about the job that reach the broker
 * after the cancel are not passed on. */
int broker_client_cancel(broker_client_t *self, const char *job_id);

/* Asks the broker for its per-stage figures, e.g.
 *   {"stages": {"stt": {"workers": 1, "idle": 1, "queued": 0, "in_flight": 0}, ...},
 *    "counters": {"jobs_submitted": 3, "frames_dropped": 0, ...}}
 * Returns a new cJSON (caller deletes), or NULL when the broker does not answer
 * within `timeout_ms`. */
cJSON *broker_client_info(broker_client_t *self, int timeout_ms);

#endif
