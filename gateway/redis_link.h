/* redis_link: the gateway's connection to the Redis server that replicated
 * gateways share (STATUS_STORE=redis://host:port[/db]). The job, session and
 * media stores keep their records there as plain keys with a TTL, so Redis
 * expires them and any gateway behind the same address sees every job.
 *
 * One hiredis connection behind a mutex: every call is one short command or
 * one optimistic transaction, and a broken connection is re-opened and the
 * call tried once more. All functions are thread-safe. */
#ifndef GATEWAY_REDIS_LINK_H
#define GATEWAY_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REDIS_KEY_PREFIX "avatar:" /* every key the gateway writes starts so */
#define REDIS_KEY_MAX 160          /* longest key built by the stores */

typedef struct redis_link redis_link_t;

/* Connects to `url` ("redis://host[:port][/db]", port 6379 and db 0 by
 * default), authenticating with `password` when it is not NULL or empty, and
 * checks the server answers PING. NULL on failure with the reason in `error`
 * (never the password). */
redis_link_t *redis_link_new(const char *url, const char *password, char *error,
                             size_t error_size);

/* Closes the connection and frees; sets *self_p to NULL. */
void redis_link_destroy(redis_link_t **self_p);

/* GET: 1 with a malloc'd, NUL-terminated copy of the value in *value_out and its
 * length in *size_out (the caller frees it), 0 when the key does not exist,
 * -1 when Redis cannot be reached. */
int redis_link_get(redis_link_t *self, const char *key, char **value_out, size_t *size_out);

/* SET key value PX ttl_ms (NX when `only_if_new`): 1 when written, 0 when NX
 * found the key taken, -1 on error. */
int redis_link_set(redis_link_t *self, const char *key, const void *value, size_t size,
                   int64_t ttl_ms, bool only_if_new);

/* DEL: 1 when the key existed, 0 when not, -1 on error. */
int redis_link_delete(redis_link_t *self, const char *key);

/* PEXPIRE: 1 when the key exists and now lives `ttl_ms` more, 0 when it does not
 * exist, -1 on error. */
int redis_link_touch(redis_link_t *self, const char *key, int64_t ttl_ms);

/* Counts the keys starting with `prefix` (SCAN, so it does not block Redis);
 * -1 on error. */
long redis_link_count(redis_link_t *self, const char *prefix);

/* Computes a key's new value from its current one. `current` is NULL when the key
 * does not exist. Returns the new value (malloc'd, NUL-terminated: the link
 * frees it), or NULL to leave the key as it is. May be called more than once
 * for one update (after a conflict), so it must not keep state between calls
 * other than what it rewrites each time. */
typedef char *(redis_update_fn)(const char *current, size_t size, void *arg);

/* Read-modify-write of one key that is safe against other gateways: WATCH,
 * GET, `update`, then MULTI / SET key new PX ttl_ms / EXEC, starting again when
 * another client changed the key in between. 1 when written, 0 when `update`
 * left it unchanged, -1 on error. */
int redis_link_update(redis_link_t *self, const char *key, int64_t ttl_ms,
                      redis_update_fn *update, void *arg);

#endif
