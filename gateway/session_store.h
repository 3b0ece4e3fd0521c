/* session_store: conversations, i.e. the last turns (user question, assistant
 * reply) of each session, sent to chat as history. Sessions expire after a
 * period without use. Kept in memory (one gateway; at most a set number of
 * sessions, the least recently used evicted beyond) or in Redis (replicated
 * gateways: a follow-up on one gateway sees the turns made through another).
 * All functions are thread-safe. */
#ifndef GATEWAY_SESSION_STORE_H
#define GATEWAY_SESSION_STORE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "redis_link.h"

#define SESSION_ID_MAX ID_MAX
#define SESSION_STORE_MAX_DEFAULT 10000 /* sessions kept in memory unless set */

typedef struct {
  char role[16];   /* "user" or "assistant" */
  char *text;
  char job_id[SESSION_ID_MAX + 1];
} session_turn_t;

typedef struct session_store session_store_t;

/* A new store keeping at most `max_turns` turns per session (oldest dropped
 * first); sessions unused for `ttl_ms` expire. It keeps at most
 * SESSION_STORE_MAX_DEFAULT sessions until session_store_set_max_sessions. */
session_store_t *session_store_new(size_t max_turns, int64_t ttl_ms);

/* Keeps at most `max_sessions` (at least 1) sessions in memory: opening one more
 * evicts the least recently used (opened or given an exchange) live session,
 * counted by session_store_evicted and logged (`sessions_evicted`, at most once a
 * minute, with the number evicted since the previous line). Sessions already
 * over the new bound go as new ones are opened. No effect on a Redis store,
 * whose server bounds its memory itself (maxmemory). */
void session_store_set_max_sessions(session_store_t *self, size_t max_sessions);

/* The same store in Redis through `redis` (borrowed: it must outlive the store).
 * Redis expires idle sessions after `ttl_ms`, so session_store_expire has
 * nothing to do and the `now_ms` arguments are not used. */
session_store_t *session_store_new_redis(redis_link_t *redis, size_t max_turns, int64_t ttl_ms);

/* Frees every session (in memory) and the store; sets *self_p to NULL. */
void session_store_destroy(session_store_t **self_p);

/* Makes sure a live session exists and marks it used. With a `requested` id
 * valid for id_is_valid, that session is kept, or started under that id when unknown or expired;
 * with NULL or "" a fresh random id is made. Writes the id to `id_out`
 * (SESSION_ID_MAX + 1 bytes). 0, or -1 when `requested` is not a valid id or out
 * of memory. */
int session_store_open(session_store_t *self, const char *requested, int64_t now_ms,
                       char *id_out);

/* Copies the session's turns, oldest first, into a new array owned by the
 * caller (free with session_turns_free). An unknown session gives 0 turns.
 * 0, or -1 when out of memory. */
int session_store_turns(session_store_t *self, const char *id, int64_t now_ms,
                        session_turn_t **turns_out, size_t *count_out);

/* Frees an array from session_store_turns. */
void session_turns_free(session_turn_t *turns, size_t count);

/* Appends the user's `question` and the assistant's `reply` of job `job_id`
 * (either may be NULL) to a live session, once per job id: repeating the call
 * for the same job changes nothing. A deleted or expired session stays gone. */
void session_store_append_exchange(session_store_t *self, const char *id, const char *job_id,
                                   const char *question, const char *reply, int64_t now_ms);

/* {"session_id", "turns": [{"role", "text", "job_id"}]} of api.md, or NULL when
 * the session is unknown or expired. The caller deletes the result. */
cJSON *session_store_render(session_store_t *self, const char *id, int64_t now_ms);

/* Forgets a session; false when there was none. */
bool session_store_delete(session_store_t *self, const char *id, int64_t now_ms);

/* How many sessions this gateway keeps in memory, expired ones included until the
 * next sweep, in *count; false for a Redis store (Redis counts and expires them). */
bool session_store_count(session_store_t *self, size_t *count);

/* How many live sessions the in-memory store has evicted to stay within its
 * bound, since it was made; 0 for a Redis store. */
uint64_t session_store_evicted(session_store_t *self);

/* Drops expired sessions; returns how many. */
size_t session_store_expire(session_store_t *self, int64_t now_ms);

#endif
