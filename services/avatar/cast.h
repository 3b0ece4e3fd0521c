/* cast: every character the renderer can draw -- the built-in drawn ones (face.h)
 * and the picture characters of the folders AVATAR_CHARACTER_DIR lists
 * (custom_character.h) -- found by name. */
#ifndef AVATAR_CAST_H
#define AVATAR_CAST_H

#include "custom_character.h"
#include "face.h"
#include "stage_error.h"

#include <stddef.h>

typedef struct cast cast_t;

/* One character: exactly one of the two is set. */
typedef struct {
  const character_t *drawn;
  const custom_character_t *custom;
} cast_member_t;

/* The built-in characters plus one picture character per folder in `folders`, a
 * colon-separated list (NULL or "" = none). Returns the cast, or NULL with
 * "bad_config" in `err` when a folder is bad (the message names the file) or a
 * name is taken twice. */
cast_t *cast_load(const char *folders, stage_error_t *err);

/* Looks `name` up; returns 0 and fills `member`, or -1 when there is none. */
int cast_find(const cast_t *cast, const char *name, cast_member_t *member);

/* The member's name. */
const char *cast_member_name(const cast_member_t *member);

/* Writes every name, comma-separated, into `buf` (`size` bytes, truncated if need
 * be), for messages that list the choices. */
void cast_names(const cast_t *cast, char *buf, size_t size);

/* Frees the cast and its picture characters; sets *cast_p to NULL. NULL-safe. */
void cast_destroy(cast_t **cast_p);

#endif
