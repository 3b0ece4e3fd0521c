/* config: settings from the environment (documented in .env.example).
 * Every getter logs nothing: values may be secrets. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>

/* The variable's value, or `fallback` when unset or empty. */
const char *config_str(const char *name, const char *fallback);

/* The variable as an integer in [min, max], or `fallback` when unset.
 * A value that is not a number or out of range is reported on stderr and
 * replaced by `fallback`, so a typo never starts a service with nonsense. */
long config_long(const char *name, long fallback, long min, long max);

/* true for 1/true/yes/on, false for 0/false/no/off, else `fallback`. */
bool config_bool(const char *name, bool fallback);

/* The longest one job may take in `stage`: <STAGE>_TIMEOUT_MS (e.g. AVATAR_TIMEOUT_MS),
 * else STAGE_TIMEOUT_MS, else 30 s. The broker fails a job held longer; the worker
 * exits when its backend hangs well past it. */
int config_stage_timeout_ms(const char *stage);

/* What a remote backend of `stage` may spend on one job, retries included: four
 * fifths of the stage's timeout, so a slow provider ends as the backend's own clear
 * "timeout" before the broker gives the job up. */
long config_backend_budget_ms(const char *stage);

#endif
