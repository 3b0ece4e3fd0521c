/* stage_error: bounded formatting of stage errors. */
#include "stage_error.h"

#include <stdarg.h>
#include <stdio.h>

int stage_error_set(stage_error_t *err, const char *code, const char *fmt, ...)
{
  if (!err)
    return -1;
  snprintf(err->code, sizeof err->code, "%s", code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return -1;
}
