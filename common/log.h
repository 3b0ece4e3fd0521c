/* log: one JSON line per event on stderr, e.g.
 *   {"ts":"2026-11-27T04:41:23.120Z","level":"info","service":"stt","event":"job_done","job_id":"...","ms":120}
 * Secrets never reach these calls: callers pass identifiers and sizes, not keys. */
#ifndef LOG_H
#define LOG_H

#include <cjson/cJSON.h>
#include <syslog.h>

/* Levels are syslog's numbers (czmq includes <syslog.h>, whose LOG_INFO and
 * LOG_DEBUG would otherwise clash with ours); lower is more severe. */
#define LOG_WARN LOG_WARNING
#define LOG_ERROR LOG_ERR
typedef int log_level_t;

/* Names the service in every line; LOG_LEVEL (debug|info|warn|error) sets the floor. */
void log_init(const char *service);

/* Logs one event with extra fields. Takes ownership of `fields` (may be NULL). */
void log_event(log_level_t level, const char *event, cJSON *fields);

/* Logs one event with a printf-style "message" field. */
void log_msg(log_level_t level, const char *event, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

#endif
