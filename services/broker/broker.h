/* broker: the pipeline's queue. One ROUTER socket; a bounded, load-balanced queue
 * per stage; admission that refuses a job which would wait past its deadline;
 * credit-based dispatch (one job per idle worker); heartbeats both ways;
 * re-queue of a dead worker's job up to an attempt limit; per-job deadlines; status
 * events queued for the gateways. docs/protocol.md is the specification. */
#ifndef BROKER_H
#define BROKER_H

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  char endpoint[256];        /* where the ROUTER binds, e.g. "tcp://0.0.0.0:5555" */
  size_t queue_max;          /* jobs waiting per stage before SUBMIT is NACKed */
  unsigned admit_percent;    /* SUBMIT is NACKed when the job's estimated wait exceeds
                                this share of the time to its deadline; 0 = off */
  size_t status_queue_max;   /* status events kept for slow gateways (oldest dropped) */
  uint32_t max_attempts;     /* dispatches of one job before it fails */
  int heartbeat_ms;          /* interval; a peer silent for 3 intervals is dead */
  size_t max_payload;        /* bytes of one job or status; larger is dropped */
  int stage_timeout_ms;      /* longest a worker may hold a job; 0 = per stage from the
                                environment (config_stage_timeout_ms) */
  char curve_secret[41];     /* Z85 secret key: CURVE on when set */
  char curve_clients[4096];  /* comma-separated Z85 public keys allowed to connect */
} broker_config_t;

/* Fills `cfg` from BROKER_BIND, BROKER_QUEUE_MAX, BROKER_ADMIT_PERCENT,
 * BROKER_STATUS_QUEUE_MAX, BROKER_MAX_ATTEMPTS, BROKER_HEARTBEAT_MS, BROKER_MAX_MSG_BYTES,
 * BROKER_CURVE_SECRET_KEY and BROKER_CURVE_CLIENT_KEYS. Returns -1 (logged) when
 * the CURVE settings are not valid keys. */
int broker_config_from_env(broker_config_t *cfg);

/* The broker as a czmq actor: zactor_new(broker_actor, &cfg). The config is copied
 * before the actor signals that it started. Pipe commands:
 *   "ENDPOINT" -> replies the bound endpoint (useful with tcp://127.0.0.1:*)
 *   "$TERM"    -> stops the broker.
 * If the bind fails the actor replies to zactor_new's wait and exits; check with
 * "ENDPOINT", which then answers "". */
void broker_actor(zsock_t *pipe, void *args);

#endif
