/* reply_cache: recent first answers by normalised question (see reply_cache.h). */
#include "reply_cache.h"

#include "counters.h"
#include "log.h"
#include "text.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
  uint64_t hash;        /* of `key`, compared first */
  char *key;            /* the question's terms joined by spaces */
  char *reply;
  double stored_s;      /* monotonic clock when stored */
  uint64_t used;        /* tick of the last use: the smallest goes first */
} entry_t;

struct reply_cache {
  entry_t *entries;
  size_t count, max;
  double ttl_s;
  uint64_t tick;
  char *watch_path;     /* NULL: nothing watched */
  struct stat watched;  /* the version the entries came from */
  bool watched_exists;
};

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static uint64_t fnv1a(const char *text)
{
  uint64_t hash = 14695981039346656037ull;
  for (; *text; text++)
    hash = (hash ^ (unsigned char) *text) * 1099511628211ull;
  return hash;
}

/* Questions longer than this are not kept: text.h reads only their start. */
static bool is_keyable(const char *question)
{
  return strlen(question) <= TEXT_MAX_BYTES;
}

/* The cache key of `question` (malloc'd), "" when it has no words, or NULL when
 * out of memory. */
static char *key_of(const char *question)
{
  text_terms_t terms = {0};
  if (text_terms_append(&terms, question, TEXT_KEEP_STOP_WORDS) < 0) {
    text_terms_clear(&terms);
    return NULL;
  }
  size_t len = 0;
  for (size_t i = 0; i < terms.count; i++)
    len += strlen(terms.items[i]) + 1;
  char *key = malloc(len + 1);
  if (key) {
    char *at = key;
    for (size_t i = 0; i < terms.count; i++) {
      size_t n = strlen(terms.items[i]);
      if (i)
        *at++ = ' ';
      memcpy(at, terms.items[i], n);
      at += n;
    }
    *at = '\0';
  }
  text_terms_clear(&terms);
  return key;
}

static void remove_entry(reply_cache_t *self, size_t i)
{
  free(self->entries[i].key);
  free(self->entries[i].reply);
  self->entries[i] = self->entries[--self->count];
}

static void clear(reply_cache_t *self)
{
  while (self->count)
    remove_entry(self, self->count - 1);
}

/* Forgets every entry when the watched file is not the version they came from. */
static void check_watched(reply_cache_t *self)
{
  if (!self->watch_path)
    return;
  struct stat now;
  bool exists = stat(self->watch_path, &now) == 0;
  bool same = exists == self->watched_exists &&
              (!exists || (now.st_dev == self->watched.st_dev && now.st_ino == self->watched.st_ino &&
                           now.st_size == self->watched.st_size &&
                           now.st_mtim.tv_sec == self->watched.st_mtim.tv_sec &&
                           now.st_mtim.tv_nsec == self->watched.st_mtim.tv_nsec));
  if (same)
    return;
  if (self->count)
    log_msg(LOG_INFO, "reply_cache_cleared", "%s changed: %zu cached replies forgotten",
            self->watch_path, self->count);
  clear(self);
  self->watched_exists = exists;
  if (exists)
    self->watched = now;
}

/* The index of `key`'s entry, or -1. */
static long find(const reply_cache_t *self, const char *key, uint64_t hash)
{
  for (size_t i = 0; i < self->count; i++)
    if (self->entries[i].hash == hash && !strcmp(self->entries[i].key, key))
      return (long) i;
  return -1;
}

reply_cache_t *reply_cache_new(size_t max, long ttl_s, const char *watch_path)
{
  reply_cache_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->max = max < 1 ? 1 : max > REPLY_CACHE_MAX_ENTRIES ? REPLY_CACHE_MAX_ENTRIES : max;
  self->ttl_s = (double) ttl_s;
  self->entries = calloc(self->max, sizeof *self->entries);
  self->watch_path = watch_path ? strdup(watch_path) : NULL;
  if (!self->entries || (watch_path && !self->watch_path)) {
    reply_cache_destroy(&self);
    return NULL;
  }
  check_watched(self);
  return self;
}

void reply_cache_destroy(reply_cache_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  reply_cache_t *self = *self_p;
  if (self->entries)
    clear(self);
  free(self->entries);
  free(self->watch_path);
  free(self);
  *self_p = NULL;
}

size_t reply_cache_size(const reply_cache_t *self)
{
  return self->count;
}

const char *reply_cache_get(reply_cache_t *self, const char *question)
{
  check_watched(self);
  char *key = is_keyable(question) ? key_of(question) : NULL;
  long i = key && *key ? find(self, key, fnv1a(key)) : -1;
  free(key);
  if (i >= 0 && now_s() - self->entries[i].stored_s > self->ttl_s) {
    remove_entry(self, (size_t) i);
    i = -1;
  }
  counter_add("reply_cache", i >= 0 ? "hit" : "miss", 1);
  if (i < 0)
    return NULL;
  self->entries[i].used = ++self->tick;
  return self->entries[i].reply;
}

int reply_cache_put(reply_cache_t *self, const char *question, const char *reply)
{
  check_watched(self);
  if (!is_keyable(question))
    return 0;
  char *key = key_of(question);
  if (key && !*key) {
    free(key);
    return 0;
  }
  char *copy = key ? strdup(reply) : NULL;
  if (!copy) {
    free(key);
    return -1;
  }
  uint64_t hash = fnv1a(key);
  long found = find(self, key, hash);
  if (found >= 0) {
    remove_entry(self, (size_t) found);
  } else if (self->count == self->max) {
    size_t oldest = 0;
    for (size_t i = 1; i < self->count; i++)
      if (self->entries[i].used < self->entries[oldest].used)
        oldest = i;
    remove_entry(self, oldest);
  }
  self->entries[self->count++] = (entry_t) {.hash = hash, .key = key, .reply = copy,
                                            .stored_s = now_s(), .used = ++self->tick};
  return 0;
}
