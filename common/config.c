/* config: typed access to environment variables with validation. */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

const char *config_str(const char *name, const char *fallback)
{
  const char *value = getenv(name);
  return value && *value ? value : fallback;
}

long config_long(const char *name, long fallback, long min, long max)
{
  const char *value = getenv(name);
  if (!value || !*value)
    return fallback;
  char *end = NULL;
  errno = 0;
  long number = strtol(value, &end, 10);
  if (errno || *end || number < min || number > max) {
    log_msg(LOG_WARN, "config_invalid", "%s must be an integer in [%ld, %ld]; using %ld",
            name, min, max, fallback);
    return fallback;
  }
  return number;
}

bool config_bool(const char *name, bool fallback)
{
  const char *value = getenv(name);
  if (!value || !*value)
    return fallback;
  if (!strcasecmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes") ||
      !strcasecmp(value, "on"))
    return true;
  if (!strcasecmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no") ||
      !strcasecmp(value, "off"))
    return false;
  log_msg(LOG_WARN, "config_invalid", "%s must be true or false; using %s", name,
          fallback ? "true" : "false");
  return fallback;
}

int config_stage_timeout_ms(const char *stage)
{
  char name[64];
  size_t i = 0;
  for (; stage[i] && i < 40; i++)
    name[i] = stage[i] == '-' ? '_' : (char) toupper((unsigned char) stage[i]);
  snprintf(name + i, sizeof name - i, "_TIMEOUT_MS");
  long common = config_long("STAGE_TIMEOUT_MS", 30000, 100, 3600000);
  return (int) config_long(name, common, 100, 3600000);
}

long config_backend_budget_ms(const char *stage)
{
  long stage_ms = config_stage_timeout_ms(stage);
  return stage_ms - stage_ms / 5;
}
