/* answer_cache: rendered answers by reply and character (see answer_cache.h). */
#include "answer_cache.h"

#include "strmap.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_HEX (2 * 32 + 1)           /* SHA-256 in hex */
#define REDIS_PREFIX "avatar:answer:"

/* One answer in memory, on the recency list (most recent first). */
typedef struct entry {
  char key[KEY_HEX];
  cached_answer_t answer;
  int64_t expires_ms;
  struct entry *newer, *older;
} entry_t;

struct answer_cache {
  pthread_mutex_t lock;
  redis_link_t *redis;   /* NULL: in memory */
  int64_t ttl_ms;
  size_t max_entries;
  strmap_t *entries;     /* key -> entry_t, owns them */
  entry_t *newest, *oldest;
};

/* The key of one answer: a digest of who says what, so that replies of any
 * length make short keys. 0, or -1 when the digest fails. */
static int answer_key(const char *reply, const char *character, char key[KEY_HEX])
{
  EVP_MD_CTX *digest = EVP_MD_CTX_new();
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  const char *who = character ? character : "";
  int ok = digest && EVP_DigestInit_ex(digest, EVP_sha256(), NULL) == 1 &&
           EVP_DigestUpdate(digest, who, strlen(who) + 1) == 1 && /* the NUL separates */
           EVP_DigestUpdate(digest, reply, strlen(reply)) == 1 &&
           EVP_DigestFinal_ex(digest, hash, &length) == 1 && length == 32;
  EVP_MD_CTX_free(digest);
  if (!ok)
    return -1;
  for (unsigned i = 0; i < length; i++)
    snprintf(key + 2 * i, 3, "%02x", hash[i]);
  return 0;
}

int64_t answer_cache_ttl_for_media(int64_t media_ttl_ms)
{
  int64_t margin = media_ttl_ms / 2 < 600000 ? media_ttl_ms / 2 : 600000;
  return media_ttl_ms - margin;
}

static answer_cache_t *cache_new(redis_link_t *redis, size_t max_entries, int64_t ttl_ms)
{
  answer_cache_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->redis = redis;
  self->ttl_ms = ttl_ms;
  self->max_entries = max_entries ? max_entries : 1;
  if (!redis && !(self->entries = strmap_new(free))) {
    free(self);
    return NULL;
  }
  pthread_mutex_init(&self->lock, NULL);
  return self;
}

answer_cache_t *answer_cache_new(size_t max_entries, int64_t ttl_ms)
{
  return cache_new(NULL, max_entries, ttl_ms);
}

answer_cache_t *answer_cache_new_redis(redis_link_t *redis, int64_t ttl_ms)
{
  return redis ? cache_new(redis, 0, ttl_ms) : NULL;
}

void answer_cache_destroy(answer_cache_t **self_p)
{
  answer_cache_t *self = *self_p;
  if (!self)
    return;
  strmap_destroy(&self->entries);
  pthread_mutex_destroy(&self->lock);
  free(self);
  *self_p = NULL;
}

/* ---- in memory: recency list + map ------------------------------------- */

static void unlink_entry(answer_cache_t *self, entry_t *entry)
{
  if (entry->newer)
    entry->newer->older = entry->older;
  else
    self->newest = entry->older;
  if (entry->older)
    entry->older->newer = entry->newer;
  else
    self->oldest = entry->newer;
  entry->newer = entry->older = NULL;
}

static void link_newest(answer_cache_t *self, entry_t *entry)
{
  entry->older = self->newest;
  entry->newer = NULL;
  if (self->newest)
    self->newest->newer = entry;
  self->newest = entry;
  if (!self->oldest)
    self->oldest = entry;
}

/* Unlinks and frees (through the map) one entry. */
static void drop(answer_cache_t *self, entry_t *entry)
{
  char key[KEY_HEX];
  memcpy(key, entry->key, KEY_HEX); /* the map frees the entry holding it */
  unlink_entry(self, entry);
  strmap_remove(self->entries, key);
}

static bool memory_get(answer_cache_t *self, const char *key, int64_t now_ms,
                       cached_answer_t *out)
{
  entry_t *entry = strmap_get(self->entries, key);
  if (!entry)
    return false;
  if (entry->expires_ms <= now_ms) {
    drop(self, entry);
    return false;
  }
  unlink_entry(self, entry);
  link_newest(self, entry);
  *out = entry->answer;
  return true;
}

static int memory_put(answer_cache_t *self, const char *key, const cached_answer_t *answer,
                      int64_t now_ms)
{
  entry_t *old = strmap_get(self->entries, key);
  if (old)
    drop(self, old);
  entry_t *entry = calloc(1, sizeof *entry);
  if (!entry)
    return -1;
  memcpy(entry->key, key, KEY_HEX);
  entry->answer = *answer;
  entry->expires_ms = now_ms + self->ttl_ms;
  if (strmap_put(self->entries, key, entry) != 0) {
    free(entry);
    return -1;
  }
  link_newest(self, entry);
  while (strmap_size(self->entries) > self->max_entries && self->oldest)
    drop(self, self->oldest);
  return 0;
}

/* ---- in Redis: one JSON value per answer -------------------------------- */

static bool copy_url(const cJSON *root, const char *name, char *url)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
  if (!cJSON_IsString(item))
    return false;
  return snprintf(url, ANSWER_URL_MAX, "%s", item->valuestring) < ANSWER_URL_MAX;
}

static bool redis_get(answer_cache_t *self, const char *key, cached_answer_t *out)
{
  char name[sizeof REDIS_PREFIX + KEY_HEX];
  snprintf(name, sizeof name, REDIS_PREFIX "%s", key);
  char *text = NULL;
  size_t size = 0;
  if (redis_link_get(self->redis, name, &text, &size) != 1)
    return false;
  cJSON *root = cJSON_Parse(text);
  free(text);
  /* The value came over the network: only well-formed answers are served. */
  bool ok = root && copy_url(root, "video_url", out->video_url) &&
            copy_url(root, "audio_url", out->audio_url) && out->video_url[0];
  cJSON_Delete(root);
  return ok;
}

static int redis_put(answer_cache_t *self, const char *key, const cached_answer_t *answer)
{
  char name[sizeof REDIS_PREFIX + KEY_HEX];
  snprintf(name, sizeof name, REDIS_PREFIX "%s", key);
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "audio_url", answer->audio_url);
  cJSON_AddStringToObject(root, "video_url", answer->video_url);
  char *text = root ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  int rc = text ? redis_link_set(self->redis, name, text, strlen(text), self->ttl_ms, false) : -1;
  free(text);
  return rc == 1 ? 0 : -1;
}

/* ---- public ------------------------------------------------------------- */

bool answer_cache_get(answer_cache_t *self, const char *reply, const char *character,
                      int64_t now_ms, cached_answer_t *out)
{
  char key[KEY_HEX];
  if (!reply || !*reply || answer_key(reply, character, key) != 0)
    return false;
  if (self->redis)
    return redis_get(self, key, out);
  pthread_mutex_lock(&self->lock);
  bool found = memory_get(self, key, now_ms, out);
  pthread_mutex_unlock(&self->lock);
  return found;
}

int answer_cache_put(answer_cache_t *self, const char *reply, const char *character,
                     const cached_answer_t *answer, int64_t now_ms)
{
  char key[KEY_HEX];
  if (!reply || !*reply || !answer->video_url[0] || answer_key(reply, character, key) != 0)
    return -1;
  if (self->redis)
    return redis_put(self, key, answer);
  pthread_mutex_lock(&self->lock);
  int rc = memory_put(self, key, answer, now_ms);
  pthread_mutex_unlock(&self->lock);
  return rc;
}
