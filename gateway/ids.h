/* ids: job and session identifiers. Random ones are 32 hex digits from the
 * kernel's CSPRNG; ids from clients or workers are checked before they are used
 * as keys or inside file names. */
#ifndef GATEWAY_IDS_H
#define GATEWAY_IDS_H

#include <stdbool.h>

#define ID_MAX 64       /* longest id accepted */
#define ID_HEX_SIZE 33  /* 32 hex digits + NUL */

/* true when `id` is 1..ID_MAX characters of [A-Za-z0-9_-]. */
bool id_is_valid(const char *id);

/* Fills `out` with 32 random lowercase hex digits. 0, or -1 when the kernel has
 * no randomness to give. */
int id_random_hex(char out[ID_HEX_SIZE]);

#endif
