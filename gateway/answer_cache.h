/* answer_cache: answers already spoken and animated, by their words and the
 * character saying them, so a repeated reply (and the greeting) is served from
 * the media store at once instead of being rendered again. Entries point at the
 * first render's files and live shorter than those files do. In memory: a
 * bounded LRU. With Redis (replicated gateways): one key per answer in the Redis
 * that holds the media, expiring with its TTL, evicted under memory pressure by
 * Redis itself. All functions are thread-safe. */
#ifndef GATEWAY_ANSWER_CACHE_H
#define GATEWAY_ANSWER_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media_store.h"
#include "redis_link.h"

#define ANSWER_URL_MAX (MEDIA_NAME_MAX + 16)

/* Where a rendered answer's files are ("/media/..." URLs; audio may be empty). */
typedef struct {
  char audio_url[ANSWER_URL_MAX];
  char video_url[ANSWER_URL_MAX];
} cached_answer_t;

typedef struct answer_cache answer_cache_t;

/* At most `max_entries` answers in memory, each for `ttl_ms` after it was
 * rendered. NULL when out of memory. */
answer_cache_t *answer_cache_new(size_t max_entries, int64_t ttl_ms);

/* Answers kept in Redis through `redis` (borrowed: it must outlive the cache),
 * each for `ttl_ms` after it was rendered. */
answer_cache_t *answer_cache_new_redis(redis_link_t *redis, int64_t ttl_ms);

/* Frees the cache (not the media); sets *self_p to NULL. */
void answer_cache_destroy(answer_cache_t **self_p);

/* The answer rendered for `reply` said by `character` ("" = default), when it
 * is cached and still fresh at `now_ms`. */
bool answer_cache_get(answer_cache_t *self, const char *reply, const char *character,
                      int64_t now_ms, cached_answer_t *out);

/* Remembers `answer` as the render of `reply` by `character`, made at `now_ms`;
 * in memory the least recently used answer goes when the cache is full. 0, or
 * -1 when it could not be stored (out of memory, Redis unreachable). */
int answer_cache_put(answer_cache_t *self, const char *reply, const char *character,
                     const cached_answer_t *answer, int64_t now_ms);

/* The cache's lifetime for answers whose files live `media_ttl_ms`: shorter by
 * a margin, so that a client served from the cache still finds the files. */
int64_t answer_cache_ttl_for_media(int64_t media_ttl_ms);

#endif
