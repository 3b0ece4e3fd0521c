/* rate_limit: per-client token buckets. Each client (a key such as an IP
 * address) may spend `burst` requests at once and gets `per_min` tokens back
 * every minute. Memory is bounded: buckets that have refilled completely are
 * forgotten (they carry no information), and when `max_clients` are tracked
 * the least recently seen client is forgotten to make room. Thread-safe. */
#ifndef GATEWAY_RATE_LIMIT_H
#define GATEWAY_RATE_LIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct rate_limiter rate_limiter_t;

/* A limiter allowing `per_min` requests a minute with bursts of `burst`
 * (at least 1), tracking at most `max_clients` clients. NULL when out of memory
 * or an argument is zero. */
rate_limiter_t *rate_limiter_new(unsigned per_min, unsigned burst, size_t max_clients);

/* Frees the limiter; sets *self_p to NULL. */
void rate_limiter_destroy(rate_limiter_t **self_p);

/* Spends one token of `client` at monotonic time `now_ms`. 0 when the request
 * may go ahead; otherwise the whole seconds (at least 1) until a token is back,
 * for Retry-After. Out of memory lets the request go ahead: the limiter is a
 * fairness guard, not the server's last line (the broker's bounded queues are). */
unsigned rate_limiter_take(rate_limiter_t *self, const char *client, int64_t now_ms);

/* Number of clients currently tracked. */
size_t rate_limiter_size(rate_limiter_t *self);

#endif
