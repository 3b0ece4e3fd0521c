/* protocol: bounded readers for untrusted AVP1 frames. */
#include "protocol.h"

#include <inttypes.h>
#include <string.h>

bool avp_pop_name(zmsg_t *msg, char *buf, size_t size)
{
  zframe_t *frame = zmsg_pop(msg);
  if (!frame)
    return false;
  size_t len = zframe_size(frame);
  const unsigned char *data = zframe_data(frame);
  bool ok = len > 0 && len < size;
  for (size_t i = 0; ok && i < len; i++)
    ok = data[i] >= 0x20 && data[i] != 0x7f;
  if (ok) {
    memcpy(buf, data, len);
    buf[len] = '\0';
  }
  zframe_destroy(&frame);
  return ok;
}

bool avp_pop_uint(zmsg_t *msg, uint64_t *value)
{
  char digits[20];
  if (!avp_pop_name(msg, digits, sizeof digits))
    return false;
  uint64_t number = 0;
  for (const char *p = digits; *p; p++) {
    if (*p < '0' || *p > '9')
      return false;
    number = number * 10 + (uint64_t) (*p - '0');
  }
  *value = number;
  return true;
}

zmsg_t *avp_msg_new(const char *command)
{
  zmsg_t *msg = zmsg_new();
  if (!msg)
    return NULL;
  if (zmsg_addstr(msg, AVP_VERSION) || zmsg_addstr(msg, command)) {
    zmsg_destroy(&msg);
    return NULL;
  }
  return msg;
}

int avp_add_uint(zmsg_t *msg, uint64_t value)
{
  char digits[24];
  snprintf(digits, sizeof digits, "%" PRIu64, value);
  return zmsg_addstr(msg, digits);
}
