/* protocol: the AVP1 frames spoken between the broker and its peers (workers,
 * gateways). docs/protocol.md is the specification; this file is its vocabulary
 * plus the bounded frame readers that every side uses on untrusted input. */
#ifndef PROTOCOL_H
#define PROTOCOL_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#define AVP_VERSION "AVP1"

/* peer -> broker */
#define AVP_READY      "READY"      /* stage, credit */
#define AVP_SUBMIT     "SUBMIT"     /* stage, job_id, deadline_ms, job */
#define AVP_PARTIAL    "PARTIAL"    /* stage, job_id, next_stage, deadline_ms, job */
#define AVP_DONE       "DONE"       /* stage, job_id [, next_stage, deadline_ms, job] */
#define AVP_STATUS     "STATUS"     /* status */
#define AVP_INFO       "INFO"       /* (request) */
#define AVP_CANCEL     "CANCEL"     /* job_id: drop the job everywhere, no reply */
/* broker -> peer */
#define AVP_JOB        "JOB"        /* stage, job_id, attempt, deadline_ms, job */
#define AVP_EVENT      "EVENT"      /* status */
#define AVP_ACK        "ACK"        /* job_id */
#define AVP_NACK       "NACK"       /* job_id, reason */
/* both ways */
#define AVP_HEARTBEAT  "HEARTBEAT"
#define AVP_DISCONNECT "DISCONNECT"

#define AVP_STATUS_STAGE "status"

#define AVP_STAGE_MAX 16            /* bytes of a stage name, terminator included */
#define AVP_JOB_ID_MAX 64           /* bytes of a job id, terminator included */

/* Default timings (ms); peers and broker must agree, see docs/protocol.md. */
#define AVP_HEARTBEAT_MS 1000
#define AVP_LIVENESS 3              /* intervals of silence after which a peer is dead */

/* Copies the next frame of `msg` as a C string into `buf`. Fails (returns false)
 * when the frame is missing, empty, longer than size-1 or contains a NUL or
 * control character, so that garbage never becomes a name. */
bool avp_pop_name(zmsg_t *msg, char *buf, size_t size);

/* Parses the next frame as a non-negative decimal integer (at most 19 digits). */
bool avp_pop_uint(zmsg_t *msg, uint64_t *value);

/* Builds [AVP1][command] ready for more frames; NULL on allocation failure. */
zmsg_t *avp_msg_new(const char *command);

/* Appends a decimal number as one frame. */
int avp_add_uint(zmsg_t *msg, uint64_t value);

#endif
