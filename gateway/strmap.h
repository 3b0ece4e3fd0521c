/* strmap: a string-keyed hash map owning its values, shared by the in-memory
 * job and session stores. Not thread-safe: each store guards its map with its
 * own mutex. */
#ifndef GATEWAY_STRMAP_H
#define GATEWAY_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strmap strmap_t;

/* Frees one value; called when a value is replaced, removed or the map destroyed. */
typedef void (strmap_free_fn)(void *value);

/* Decides whether `value` goes (true) during strmap_remove_if. */
typedef bool (strmap_pred_fn)(const void *value, void *arg);

/* A new empty map whose values are released with `free_value`. NULL when out of memory. */
strmap_t *strmap_new(strmap_free_fn *free_value);

/* Frees every key and value, then the map; sets *self_p to NULL. */
void strmap_destroy(strmap_t **self_p);

/* The value stored under `key`, or NULL. */
void *strmap_get(const strmap_t *self, const char *key);

/* Stores `value` under a copy of `key`, freeing any previous value. On success the
 * map owns `value`; on failure (-1, out of memory) the caller still owns it. */
int strmap_put(strmap_t *self, const char *key, void *value);

/* Removes and frees the value under `key`; false when there was none. */
bool strmap_remove(strmap_t *self, const char *key);

/* Removes and frees every value for which `pred` answers true; returns how many. */
size_t strmap_remove_if(strmap_t *self, strmap_pred_fn *pred, void *arg);

/* Number of entries. */
size_t strmap_size(const strmap_t *self);

#endif
