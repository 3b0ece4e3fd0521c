/* http_api: the gateway's HTTP surface (shared/docs/api.md) on libmicrohttpd:
 * submit audio or text, poll jobs, read and forget sessions, fetch media, the
 * static UI, /healthz and /metrics. It owns the MHD daemon; the stores, metrics
 * and pipeline are the caller's and must outlive it. */
#ifndef GATEWAY_HTTP_API_H
#define GATEWAY_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "greeting.h"
#include "job_store.h"
#include "media_store.h"
#include "metrics.h"
#include "pipeline.h"
#include "session_store.h"

typedef struct {
  const char *bind_address;      /* IPv4 or IPv6 literal, e.g. "0.0.0.0" */
  uint16_t port;                 /* 0 picks a free port (tests) */
  unsigned threads;              /* MHD thread pool size */
  unsigned connection_limit;     /* concurrent connections before refusing */
  unsigned connection_timeout_s; /* idle seconds before a slow client is dropped */
  const char *static_dir;        /* the UI files (gateway/static) */
  const char *idle_video;        /* the avatar's idle loop served at /idle.mp4, or NULL */
  size_t max_upload_bytes;       /* audio upload limit (413 above) */
  size_t ask_max_chars;          /* typed question limit, code points (413 above) */
  int64_t job_deadline_ms;       /* how long a job may take from submission */
  int64_t max_audio_ms;          /* uploads whose header claims more get 422; 0: no check */
  /* Security (docs/operations.md, "Security"). Zero / NULL values switch each
   * guard off. */
  const char *api_token;         /* required on /api/ as a Bearer token or login cookie */
  const char *cors_origins;      /* comma list of cross origins allowed on /api/ */
  unsigned submit_per_min;       /* POST submissions per client and minute */
  unsigned submit_burst;
  unsigned poll_per_min;         /* other /api/ requests per client and minute */
  unsigned poll_burst;
  size_t rate_clients_max;       /* clients tracked by each rate limiter */
  bool trust_forwarded_for;      /* client = last X-Forwarded-For address (behind a proxy) */
  unsigned connections_per_ip;   /* concurrent connections from one address */
  unsigned header_timeout_s;     /* to send a request's headers (slowloris) */
  unsigned body_timeout_s;       /* to send a request's body */
  size_t max_header_bytes;       /* request line + headers (431 above) */
  const char *tls_cert_file;     /* PEM; both set: serve HTTPS */
  const char *tls_key_file;
  job_store_t *jobs;
  session_store_t *sessions;
  media_store_t *media;
  metrics_t *metrics;
  const pipeline_t *pipeline;
  greeting_t *greeting;          /* GET /api/greeting; NULL: 404 */
} http_api_config_t;

typedef struct http_api http_api_t;

/* Starts serving with a copy of `config` (its strings and pointers must outlive
 * the server). NULL when the address cannot be bound or MHD fails to start. */
http_api_t *http_api_start(const http_api_config_t *config);

/* Connections open now, and connections cut off for sending their request too
 * slowly so far (tests and /metrics). */
size_t http_api_open_connections(const http_api_t *self);
uint64_t http_api_slow_clients_cut(const http_api_t *self);

/* The port actually bound (useful with port 0). */
uint16_t http_api_port(const http_api_t *self);

/* Stops the daemon, waiting for its threads, and frees the server; sets *self_p
 * to NULL. */
void http_api_stop(http_api_t **self_p);

#endif
