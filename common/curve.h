/* curve: ZeroMQ CURVE encryption and authentication between the services, on when
 * keys are configured (docs/operations.md, "Security"). Keys are Z85 text, 40
 * characters, as printed by the curve-keygen tool; they are secrets and never logged. */
#ifndef CURVE_H
#define CURVE_H

#include <czmq.h>
#include <stdbool.h>

/* For a worker's or gateway's DEALER, before it connects: when CURVE_SERVER_KEY is
 * set, encrypts with the broker's public key and authenticates with this process's
 * CURVE_PUBLIC_KEY / CURVE_SECRET_KEY. Returns 0 (also when CURVE is off), or -1
 * when the settings are incomplete or not valid keys. */
int curve_apply_client(zsock_t *sock);

/* True when `key` is 40 characters of Z85. */
bool curve_key_is_valid(const char *key);

#endif
