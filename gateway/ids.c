/* ids: validation and generation of job and session ids. */
#include "ids.h"

#include <stdint.h>
#include <string.h>
#include <sys/random.h>

bool id_is_valid(const char *id)
{
  size_t length = strlen(id);
  if (length == 0 || length > ID_MAX)
    return false;
  for (const char *p = id; *p; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

int id_random_hex(char out[ID_HEX_SIZE])
{
  static const char digits[] = "0123456789abcdef";
  uint8_t bytes[16];
  if (getrandom(bytes, sizeof bytes, 0) != (ssize_t) sizeof bytes)
    return -1;
  for (size_t i = 0; i < sizeof bytes; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 0xf];
  }
  out[32] = '\0';
  return 0;
}
