/* log: JSON-lines event log, one line per event, written whole with one write(2)
 * so that lines from threads and processes sharing stderr never interleave. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char service_name[32] = "unknown";
static log_level_t max_level = LOG_INFO;

static const char *level_name(log_level_t level)
{
  if (level <= LOG_ERROR)
    return "error";
  if (level == LOG_WARN)
    return "warn";
  return level == LOG_DEBUG ? "debug" : "info";
}

void log_init(const char *service)
{
  snprintf(service_name, sizeof service_name, "%s", service);
  const char *level = getenv("LOG_LEVEL");
  if (!level)
    return;
  static const log_level_t levels[] = {LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR};
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
    if (strcasecmp(level, level_name(levels[i])) == 0)
      max_level = levels[i];
}

static void timestamp(char *buf, size_t size)
{
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, size - n, ".%03dZ", (int) (tv.tv_usec / 1000));
}

void log_event(log_level_t level, const char *event, cJSON *fields)
{
  if (level > max_level) {
    cJSON_Delete(fields);
    return;
  }
  char ts[40];
  timestamp(ts, sizeof ts);
  cJSON *line = cJSON_CreateObject();
  if (!line) {
    cJSON_Delete(fields);
    return;
  }
  cJSON_AddStringToObject(line, "ts", ts);
  cJSON_AddStringToObject(line, "level", level_name(level));
  cJSON_AddStringToObject(line, "service", service_name);
  cJSON_AddStringToObject(line, "event", event);
  if (fields) {
    cJSON *field = fields->child;
    while (field) {
      cJSON *next = field->next;
      cJSON_AddItemToObject(line, field->string, cJSON_DetachItemViaPointer(fields, field));
      field = next;
    }
    cJSON_Delete(fields);
  }
  char *text = cJSON_PrintUnformatted(line);
  cJSON_Delete(line);
  if (!text)
    return;
  size_t len = strlen(text);
  text[len] = '\n'; /* replaces the terminator; we write by length */
  ssize_t written = write(STDERR_FILENO, text, len + 1);
  (void) written; /* nowhere left to report a failed log write */
  free(text);
}

void log_msg(log_level_t level, const char *event, const char *fmt, ...)
{
  if (level > max_level)
    return;
  char message[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  cJSON *fields = cJSON_CreateObject();
  if (fields)
    cJSON_AddStringToObject(fields, "message", message);
  log_event(level, event, fields);
}
