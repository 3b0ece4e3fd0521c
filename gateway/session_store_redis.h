/* session_store_redis: the Redis side of each session_store_* function, for
 * session_store.c to dispatch to. Private to the session store. */
#ifndef GATEWAY_SESSION_STORE_REDIS_H
#define GATEWAY_SESSION_STORE_REDIS_H

#include "redis_link.h"
#include "session_store.h"

int session_store_redis_open(redis_link_t *redis, int64_t ttl_ms, const char *id);
int session_store_redis_turns(redis_link_t *redis, const char *id, session_turn_t **turns_out,
                              size_t *count_out);
void session_store_redis_append(redis_link_t *redis, size_t max_turns, int64_t ttl_ms,
                                const char *id, const char *job_id, const char *question,
                                const char *reply);
cJSON *session_store_redis_render(redis_link_t *redis, const char *id);
bool session_store_redis_delete(redis_link_t *redis, const char *id);

#endif
