/* media_store: finished audio and video files, served under /media/{file}:
 * in one directory (MEDIA_DIR), written atomically (temporary file + rename)
 * so a client never sees half a file and removed after a TTL; or, when
 * gateways are replicated, in Redis with the same TTL, so any gateway serves
 * the video another one received. */
#ifndef GATEWAY_MEDIA_STORE_H
#define GATEWAY_MEDIA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis_link.h"

#define MEDIA_NAME_MAX 96 /* longest file name served or written */

typedef struct media_store media_store_t;

/* Uses directory `dir`, creating it (and its parents) when missing. Files older
 * than `ttl_s` seconds go at the next cleanup. NULL when the directory cannot
 * be created or used. */
media_store_t *media_store_new(const char *dir, int64_t ttl_s);

/* Keeps the files in Redis through `redis` (borrowed: it must outlive the
 * store), each expiring `ttl_s` seconds after it was written. */
media_store_t *media_store_new_redis(redis_link_t *redis, int64_t ttl_s);

/* Frees the store (the files stay); sets *self_p to NULL. */
void media_store_destroy(media_store_t **self_p);

/* true when `name` matches [A-Za-z0-9_-]+\.(mp4|webm|wav|mp3|ogg|vtt): the only
 * names ever served, which rules out traversal and hidden files. */
bool media_name_is_valid(const char *name);

/* The Content-Type for a valid name, e.g. "video/mp4". */
const char *media_content_type(const char *name);

/* Writes `data` as file `name` atomically. 0, or -1 (errno set) on failure or
 * an invalid name. */
int media_store_write(media_store_t *self, const char *name, const uint8_t *data, size_t size);

/* Opens file `name` for reading. 0 with *fd_out (the caller closes it) and
 * *size_out set; -1 when the name is invalid or the file is gone. With Redis
 * the descriptor is a memory file holding a copy of the value. */
int media_store_open(media_store_t *self, const char *name, int *fd_out, uint64_t *size_out);

/* Removes media files older than the TTL (and temporary files left by a crash)
 * as of unix time `now_s`; returns how many. */
size_t media_store_cleanup(media_store_t *self, int64_t now_s);

#endif
