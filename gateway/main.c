/* gateway: the HTTP front of the talking-avatar pipeline. Reads its settings
 * from the environment, wires the stores, the broker client and the HTTP API
 * together, then sleeps on SIGTERM/SIGINT, expiring old jobs, sessions and
 * media every so often, and shuts everything down cleanly. */
#include "broker_client.h"
#include "clock.h"
#include "config.h"
#include "http_api.h"
#include "job_store.h"
#include "log.h"
#include "media_store.h"
#include "metrics.h"
#include "pipeline.h"
#include "redis_link.h"
#include "session_store.h"
#include "status_sink.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef GATEWAY_STATIC_DIR_DEFAULT
#define GATEWAY_STATIC_DIR_DEFAULT "gateway/static"
#endif

#define SUBMIT_TIMEOUT_MS 2500
#define HOUSEKEEPING_INTERVAL_S 60

typedef struct {
  _Atomic(broker_client_t *) client; /* NULL until connected, and again while stopping */
  status_sink_t sink;
  redis_link_t *redis;               /* the shared stores' server; NULL in memory mode */
  greeting_t *greeting;
} gateway_t;

static broker_submit_result_t submit_to_broker(void *arg, const char *stage, const char *job_id,
                                               int64_t deadline_ms, const uint8_t *job,
                                               size_t size, unsigned *retry_after_s)
{
  gateway_t *gateway = arg;
  char reason[256];
  int64_t retry_after_ms = 0;
  broker_submit_result_t result =
    broker_client_submit(atomic_load(&gateway->client), stage, job_id, deadline_ms, job, size,
                         SUBMIT_TIMEOUT_MS, reason, sizeof reason, &retry_after_ms);
  /* Retry-After is in whole seconds; rounding up never invites a client early. */
  if (retry_after_s)
    *retry_after_s = (unsigned) ((retry_after_ms + 999) / 1000);
  if (result == BROKER_NACK_FULL)
    log_msg(LOG_WARN, "broker_full", "%s", reason);
  return result;
}

static cJSON *broker_info(void *arg, int timeout_ms)
{
  gateway_t *gateway = arg;
  return broker_client_info(atomic_load(&gateway->client), timeout_ms);
}

/* Status events can only concern jobs this client submitted once it exists, but
 * the broker may deliver one for another gateway's job while we are still
 * wiring up: then there is no client to release anything in yet. */
static void release_job(void *arg, const char *job_id)
{
  gateway_t *gateway = arg;
  broker_client_t *client = atomic_load(&gateway->client);
  if (client)
    broker_client_job_final(client, job_id);
}

static void cancel_job(void *arg, const char *job_id)
{
  gateway_t *gateway = arg;
  broker_client_t *client = atomic_load(&gateway->client);
  if (client && broker_client_cancel(client, job_id) != 0)
    log_msg(LOG_WARN, "cancel_failed", "job %s", job_id);
}

static void on_status(void *arg, const uint8_t *status, size_t size)
{
  gateway_t *gateway = arg;
  status_sink_apply(&gateway->sink, status, size);
}

/* Makes the job, session and media stores that STATUS_STORE names: "memory"
 * (the default: one gateway, media in MEDIA_DIR) or "redis://host[:port][/db]"
 * (every store in Redis, shared by all gateways that name the same server;
 * STATUS_STORE_PASSWORD is sent with AUTH). Sets *store_out to what is used,
 * for the log. 0, or -1 after logging why not. */
static int open_stores(gateway_t *gateway, const char **store_out)
{
  int64_t job_ttl_ms = config_long("JOB_TTL_S", 3600, 1, 7 * 86400) * 1000;
  size_t max_turns = (size_t) config_long("SESSION_MAX_TURNS", 10, 1, 200);
  int64_t session_ttl_ms = config_long("SESSION_TTL_S", 3600, 1, 30 * 86400) * 1000;
  /* Sessions one gateway keeps in memory (least recently used evicted beyond);
   * Redis bounds its own memory (maxmemory), so the setting is not used there. */
  size_t max_sessions =
    (size_t) config_long("SESSION_MAX", SESSION_STORE_MAX_DEFAULT, 1, 10000000);
  int64_t media_ttl_s = config_long("MEDIA_TTL_S", 3600, 1, 30 * 86400);
  /* Rendered answers kept for repeated replies; 0 renders every reply anew. */
  size_t cached_answers = (size_t) config_long("ANSWER_CACHE_MAX", 512, 0, 1000000);
  int64_t answer_ttl_ms = answer_cache_ttl_for_media(media_ttl_s * 1000);
  const char *store = config_str("STATUS_STORE", "memory");
  status_sink_t *sink = &gateway->sink;
  if (strcmp(store, "memory") == 0) {
    const char *media_dir = config_str("MEDIA_DIR", "./var/media");
    *store_out = store;
    sink->jobs = job_store_new(job_ttl_ms);
    sink->sessions = session_store_new(max_turns, session_ttl_ms);
    if (sink->sessions)
      session_store_set_max_sessions(sink->sessions, max_sessions);
    sink->media = media_store_new(media_dir, media_ttl_s);
    if (cached_answers)
      sink->answers = answer_cache_new(cached_answers, answer_ttl_ms);
    if (!sink->media) {
      log_msg(LOG_ERROR, "start_failed", "MEDIA_DIR %s cannot be created or opened", media_dir);
      return -1;
    }
  } else {
    char error[512];
    gateway->redis = redis_link_new(store, config_str("STATUS_STORE_PASSWORD", NULL), error,
                                    sizeof error);
    if (!gateway->redis) {
      log_msg(LOG_ERROR, "start_failed", "STATUS_STORE: %s", error);
      return -1;
    }
    *store_out = store; /* host, port and db only: credentials are refused in the URL */
    sink->jobs = job_store_new_redis(gateway->redis, job_ttl_ms);
    sink->sessions = session_store_new_redis(gateway->redis, max_turns, session_ttl_ms);
    sink->media = media_store_new_redis(gateway->redis, media_ttl_s);
    if (cached_answers)
      sink->answers = answer_cache_new_redis(gateway->redis, answer_ttl_ms);
  }
  if (!sink->jobs || !sink->sessions || !sink->media || !sink->metrics ||
      (cached_answers && !sink->answers)) {
    log_msg(LOG_ERROR, "start_failed", "out of memory");
    return -1;
  }
  return 0;
}

/* Has the default character's greeting rendered (or its render queued), so the
 * first visitor gets it at once. */
static void prepare_greeting(const gateway_t *gateway)
{
  int status = 0;
  cJSON_Delete(greeting_get(gateway->greeting, "", &status));
}

static void housekeeping(const gateway_t *gateway)
{
  prepare_greeting(gateway);
  int64_t now_ms = clock_wall_ms();
  size_t jobs = job_store_expire(gateway->sink.jobs, now_ms);
  size_t sessions = session_store_expire(gateway->sink.sessions, now_ms);
  size_t files = media_store_cleanup(gateway->sink.media, now_ms / 1000);
  if (jobs || sessions || files) {
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddNumberToObject(fields, "jobs", (double) jobs);
    cJSON_AddNumberToObject(fields, "sessions", (double) sessions);
    cJSON_AddNumberToObject(fields, "files", (double) files);
    log_event(LOG_INFO, "expired", fields);
  }
}

/* Waits for SIGTERM or SIGINT (blocked in every thread, so only this wait sees
 * them), doing housekeeping between waits. */
static void wait_for_stop(const gateway_t *gateway, const sigset_t *stop_signals)
{
  struct timespec interval = {.tv_sec = HOUSEKEEPING_INTERVAL_S};
  for (;;) {
    int signal_number = sigtimedwait(stop_signals, NULL, &interval);
    if (signal_number == SIGTERM || signal_number == SIGINT) {
      log_msg(LOG_INFO, "stopping", "signal %d", signal_number);
      return;
    }
    if (signal_number < 0 && errno == EAGAIN)
      housekeeping(gateway);
  }
}

int main(void)
{
  log_init("gateway");
  /* Block the stop signals before any thread starts, so every thread inherits
   * the mask and the signals queue for sigtimedwait. */
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &stop_signals, NULL) != 0)
    return EXIT_FAILURE;
  signal(SIGPIPE, SIG_IGN);

  gateway_t gateway = {.client = NULL};
  pipeline_t pipeline = {
    .submit = submit_to_broker, .info = broker_info, .job_final = release_job,
    .cancel = cancel_job, .arg = &gateway,
  };
  gateway.sink = (status_sink_t) {.metrics = metrics_new(), .pipeline = &pipeline};
  int exit_code = EXIT_FAILURE;
  http_api_t *api = NULL;
  const char *store = NULL;
  if (open_stores(&gateway, &store) != 0)
    goto cleanup;
  /* The durable record of every turn (docs: .env.example); "none" turns it off. */
  const char *conversation_db = config_str("CONVERSATION_DB", "var/conversations.db");
  char db_error[512];
  if (strcmp(conversation_db, "none") != 0 &&
      !(gateway.sink.conversations = conversation_log_open(conversation_db, db_error,
                                                           sizeof db_error))) {
    log_msg(LOG_ERROR, "start_failed", "CONVERSATION_DB %s", db_error);
    goto cleanup;
  }
  const char *endpoint = config_str("BROKER_ENDPOINT", "tcp://127.0.0.1:5555");
  broker_client_t *client = broker_client_new(endpoint, on_status, &gateway);
  if (!client) {
    log_msg(LOG_ERROR, "start_failed", "cannot create the broker client for %s", endpoint);
    goto cleanup;
  }
  atomic_store(&gateway.client, client);

  int64_t job_deadline_ms = config_long("JOB_DEADLINE_MS", 60000, 1000, 3600000);
  gateway.greeting = greeting_new(config_str("GREETING", "Hello! How can I help you today?"),
                                  gateway.sink.answers, gateway.sink.jobs, &pipeline,
                                  job_deadline_ms);
  if (!gateway.greeting) {
    log_msg(LOG_ERROR, "start_failed", "out of memory");
    goto cleanup;
  }
  http_api_config_t http = {
    .bind_address = config_str("GATEWAY_BIND", "0.0.0.0"),
    .port = (uint16_t) config_long("GATEWAY_PORT", 8080, 1, 65535),
    .threads = (unsigned) config_long("GATEWAY_THREADS", 4, 1, 64),
    .connection_limit = (unsigned) config_long("GATEWAY_MAX_CONNECTIONS", 512, 8, 65536),
    .connection_timeout_s = (unsigned) config_long("GATEWAY_CONNECTION_TIMEOUT_S", 30, 1, 3600),
    .static_dir = config_str("GATEWAY_STATIC_DIR", GATEWAY_STATIC_DIR_DEFAULT),
    .idle_video = config_str("GATEWAY_IDLE_VIDEO", GATEWAY_IDLE_VIDEO_DEFAULT),
    .max_upload_bytes =
      (size_t) config_long("GATEWAY_MAX_UPLOAD_BYTES", 10 * 1024 * 1024, 1024, 512L * 1024 * 1024),
    .ask_max_chars = (size_t) config_long("ASK_MAX_CHARS", 1000, 1, 100000),
    .job_deadline_ms = job_deadline_ms,
    /* The stt stage's own limit, checked early against what the header claims. */
    .max_audio_ms = config_long("STT_MAX_AUDIO_MS", 60000, 1000, 3600000),
    .api_token = config_str("GATEWAY_API_TOKEN", ""),
    .cors_origins = config_str("GATEWAY_CORS_ORIGINS", ""),
    .submit_per_min = (unsigned) config_long("GATEWAY_RATE_PER_MIN", 30, 0, 1000000),
    .submit_burst = (unsigned) config_long("GATEWAY_RATE_BURST", 10, 1, 1000000),
    .poll_per_min = (unsigned) config_long("GATEWAY_POLL_RATE_PER_MIN", 1200, 0, 10000000),
    .poll_burst = (unsigned) config_long("GATEWAY_POLL_RATE_BURST", 200, 1, 1000000),
    .rate_clients_max = (size_t) config_long("GATEWAY_RATE_CLIENTS_MAX", 10000, 16, 10000000),
    .trust_forwarded_for = config_bool("GATEWAY_TRUST_FORWARDED_FOR", false),
    .connections_per_ip = (unsigned) config_long("GATEWAY_MAX_CONNECTIONS_PER_IP", 64, 0, 65536),
    .header_timeout_s = (unsigned) config_long("GATEWAY_HEADER_TIMEOUT_S", 10, 0, 3600),
    .body_timeout_s = (unsigned) config_long("GATEWAY_BODY_TIMEOUT_S", 120, 0, 3600),
    .max_header_bytes = (size_t) config_long("GATEWAY_MAX_HEADER_BYTES", 8192, 1024, 1048576),
    .tls_cert_file = config_str("GATEWAY_TLS_CERT", ""),
    .tls_key_file = config_str("GATEWAY_TLS_KEY", ""),
    .jobs = gateway.sink.jobs,
    .sessions = gateway.sink.sessions,
    .media = gateway.sink.media,
    .metrics = gateway.sink.metrics,
    .pipeline = &pipeline,
    .greeting = gateway.greeting,
  };
  api = http_api_start(&http);
  if (!api)
    goto cleanup;
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "bind", http.bind_address);
  cJSON_AddNumberToObject(fields, "port", http_api_port(api));
  cJSON_AddStringToObject(fields, "broker", endpoint);
  cJSON_AddStringToObject(fields, "store", store);
  if (!gateway.redis)
    cJSON_AddStringToObject(fields, "media_dir", config_str("MEDIA_DIR", "./var/media"));
  log_event(LOG_INFO, "listening", fields);
  prepare_greeting(&gateway);

  wait_for_stop(&gateway, &stop_signals);
  exit_code = EXIT_SUCCESS;

cleanup:
  /* HTTP first (no new submissions), then the client (no more status events),
   * then what both of them used. */
  http_api_stop(&api);
  client = atomic_exchange(&gateway.client, NULL);
  broker_client_destroy(&client);
  greeting_destroy(&gateway.greeting);
  conversation_log_close(&gateway.sink.conversations);
  answer_cache_destroy(&gateway.sink.answers);
  media_store_destroy(&gateway.sink.media);
  session_store_destroy(&gateway.sink.sessions);
  job_store_destroy(&gateway.sink.jobs);
  redis_link_destroy(&gateway.redis);
  metrics_destroy(&gateway.sink.metrics);
  log_msg(LOG_INFO, "stopped", "exit code %d", exit_code);
  return exit_code;
}
