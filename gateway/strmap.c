/* strmap: separate chaining over a power-of-two bucket array that doubles when
 * the load passes one entry per bucket, so lookups stay O(1) as jobs pile up. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STRMAP_INITIAL_BUCKETS 64

typedef struct entry {
  struct entry *next;
  char *key;
  void *value;
} entry_t;

struct strmap {
  entry_t **buckets;
  size_t bucket_count; /* always a power of two */
  size_t size;
  strmap_free_fn *free_value;
};

static uint64_t hash_key(const char *key)
{
  uint64_t hash = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *) key; *p; p++) {
    hash ^= *p;
    hash *= 1099511628211ULL;
  }
  return hash;
}

static entry_t **bucket_of(const strmap_t *self, const char *key)
{
  return &self->buckets[hash_key(key) & (self->bucket_count - 1)];
}

strmap_t *strmap_new(strmap_free_fn *free_value)
{
  strmap_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->buckets = calloc(STRMAP_INITIAL_BUCKETS, sizeof *self->buckets);
  if (!self->buckets) {
    free(self);
    return NULL;
  }
  self->bucket_count = STRMAP_INITIAL_BUCKETS;
  self->free_value = free_value;
  return self;
}

static void entry_free(const strmap_t *self, entry_t *entry)
{
  self->free_value(entry->value);
  free(entry->key);
  free(entry);
}

void strmap_destroy(strmap_t **self_p)
{
  strmap_t *self = *self_p;
  if (!self)
    return;
  for (size_t i = 0; i < self->bucket_count; i++) {
    entry_t *entry = self->buckets[i];
    while (entry) {
      entry_t *next = entry->next;
      entry_free(self, entry);
      entry = next;
    }
  }
  free(self->buckets);
  free(self);
  *self_p = NULL;
}

static entry_t *find(const strmap_t *self, const char *key)
{
  for (entry_t *entry = *bucket_of(self, key); entry; entry = entry->next)
    if (strcmp(entry->key, key) == 0)
      return entry;
  return NULL;
}

void *strmap_get(const strmap_t *self, const char *key)
{
  entry_t *entry = find(self, key);
  return entry ? entry->value : NULL;
}

/* Growth failure is not an error: the map keeps working, only with longer chains. */
static void grow(strmap_t *self)
{
  size_t new_count = self->bucket_count * 2;
  entry_t **new_buckets = calloc(new_count, sizeof *new_buckets);
  if (!new_buckets)
    return;
  for (size_t i = 0; i < self->bucket_count; i++) {
    entry_t *entry = self->buckets[i];
    while (entry) {
      entry_t *next = entry->next;
      entry_t **head = &new_buckets[hash_key(entry->key) & (new_count - 1)];
      entry->next = *head;
      *head = entry;
      entry = next;
    }
  }
  free(self->buckets);
  self->buckets = new_buckets;
  self->bucket_count = new_count;
}

int strmap_put(strmap_t *self, const char *key, void *value)
{
  entry_t *existing = find(self, key);
  if (existing) {
    if (existing->value != value)
      self->free_value(existing->value);
    existing->value = value;
    return 0;
  }
  entry_t *entry = calloc(1, sizeof *entry);
  if (!entry)
    return -1;
  entry->key = strdup(key);
  if (!entry->key) {
    free(entry);
    return -1;
  }
  entry->value = value;
  entry_t **head = bucket_of(self, key);
  entry->next = *head;
  *head = entry;
  self->size++;
  if (self->size > self->bucket_count)
    grow(self);
  return 0;
}

bool strmap_remove(strmap_t *self, const char *key)
{
  for (entry_t **link = bucket_of(self, key); *link; link = &(*link)->next) {
    entry_t *entry = *link;
    if (strcmp(entry->key, key) == 0) {
      *link = entry->next;
      entry_free(self, entry);
      self->size--;
      return true;
    }
  }
  return false;
}

size_t strmap_remove_if(strmap_t *self, strmap_pred_fn *pred, void *arg)
{
  size_t removed = 0;
  for (size_t i = 0; i < self->bucket_count; i++) {
    entry_t **link = &self->buckets[i];
    while (*link) {
      entry_t *entry = *link;
      if (pred(entry->value, arg)) {
        *link = entry->next;
        entry_free(self, entry);
        removed++;
      } else {
        link = &entry->next;
      }
    }
  }
  self->size -= removed;
  return removed;
}

size_t strmap_size(const strmap_t *self) { return self->size; }
