/* reply_cache: the chat stage's memory of recent answers, so that a question asked
 * again (the same words, as text.h reads them) is answered at once, without the
 * language model. Only first questions belong here: a follow-up's answer depends
 * on the conversation before it. Bounded (least recently used entries go first),
 * entries expire, and the whole cache is forgotten when the knowledge file
 * changes, because the answers came from its facts. Not thread-safe: the chat
 * stage answers one job at a time. */
#ifndef CHAT_REPLY_CACHE_H
#define CHAT_REPLY_CACHE_H

#include <stddef.h>

/* Most entries one cache holds (CHAT_CACHE_MAX is capped to it): look-ups scan. */
#define REPLY_CACHE_MAX_ENTRIES 4096

typedef struct reply_cache reply_cache_t;

/* A cache of at most `max` (1..REPLY_CACHE_MAX_ENTRIES) replies, each kept
 * `ttl_s` seconds, forgotten when the file at `watch_path` (may be NULL) changes
 * (size, modification time or identity). NULL when out of memory. */
reply_cache_t *reply_cache_new(size_t max, long ttl_s, const char *watch_path);

/* The reply cached for `question`, or NULL (never cached, expired, or the
 * watched file changed). Owned by the cache: valid until the next call on it.
 * Counts reply_cache{hit|miss} (counters.h). */
const char *reply_cache_get(reply_cache_t *self, const char *question);

/* Remembers `reply` (copied) as the answer to `question`, dropping the least
 * recently used entry when full. Questions without words, or longer than a
 * question is read (TEXT_MAX_BYTES), are not kept. Returns 0, or -1 when out of
 * memory (the cache stays as it was). */
int reply_cache_put(reply_cache_t *self, const char *question, const char *reply);

/* How many replies the cache holds (expired ones included until looked up). */
size_t reply_cache_size(const reply_cache_t *self);

/* Frees the cache and sets *self_p to NULL; does nothing for NULL. */
void reply_cache_destroy(reply_cache_t **self_p);

#endif
