/* cast: the built-in characters and the picture characters loaded from folders. */
#include "cast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cast {
  custom_character_t **customs;   /* owned */
  size_t custom_count;
};

const char *cast_member_name(const cast_member_t *member)
{
  return member->drawn ? member->drawn->name : custom_character_name(member->custom);
}

int cast_find(const cast_t *cast, const char *name, cast_member_t *member)
{
  if (!name)
    return -1;
  const character_t *drawn = face_character_find(name);
  if (drawn) {
    *member = (cast_member_t) { .drawn = drawn };
    return 0;
  }
  for (size_t i = 0; i < cast->custom_count; i++) {
    if (!strcmp(custom_character_name(cast->customs[i]), name)) {
      *member = (cast_member_t) { .custom = cast->customs[i] };
      return 0;
    }
  }
  return -1;
}

/* Loads one folder and adds it, refusing a name already in the cast. */
static int add_folder(cast_t *cast, const char *dir, stage_error_t *err)
{
  custom_character_t *custom = custom_character_load(dir, err);
  if (!custom)
    return -1;
  cast_member_t existing;
  if (cast_find(cast, custom_character_name(custom), &existing) == 0) {
    stage_error_set(err, "bad_config", "character folder %s: character.json: the name \"%s\" is taken",
                    dir, custom_character_name(custom));
    custom_character_destroy(&custom);
    return -1;
  }
  custom_character_t **grown = realloc(cast->customs, (cast->custom_count + 1) * sizeof *grown);
  if (!grown) {
    custom_character_destroy(&custom);
    return stage_error_set(err, "bad_config", "out of memory loading character folders");
  }
  cast->customs = grown;
  cast->customs[cast->custom_count++] = custom;
  return 0;
}

cast_t *cast_load(const char *folders, stage_error_t *err)
{
  cast_t *cast = calloc(1, sizeof *cast);
  char *list = strdup(folders ? folders : "");
  if (!cast || !list) {
    free(cast);
    free(list);
    stage_error_set(err, "bad_config", "out of memory loading character folders");
    return NULL;
  }
  char *saveptr = NULL;
  for (char *dir = strtok_r(list, ":", &saveptr); dir; dir = strtok_r(NULL, ":", &saveptr)) {
    if (add_folder(cast, dir, err) < 0) {
      free(list);
      cast_destroy(&cast);
      return NULL;
    }
  }
  free(list);
  return cast;
}

/* The i-th name: built-in characters first, then the folders in order. */
static const char *name_at(const cast_t *cast, size_t i)
{
  const character_t *drawn = face_character_at(i);
  if (drawn)
    return drawn->name;
  size_t builtin = 0;
  while (face_character_at(builtin))
    builtin++;
  return i - builtin < cast->custom_count ? custom_character_name(cast->customs[i - builtin]) : NULL;
}

void cast_names(const cast_t *cast, char *buf, size_t size)
{
  size_t used = 0;
  if (size == 0)
    return;
  buf[0] = '\0';
  const char *name;
  for (size_t i = 0; (name = name_at(cast, i)) && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", name);
    if (n < 0)
      return;
    used += (size_t) n;
  }
}

void cast_destroy(cast_t **cast_p)
{
  if (!cast_p || !*cast_p)
    return;
  cast_t *cast = *cast_p;
  for (size_t i = 0; i < cast->custom_count; i++)
    custom_character_destroy(&cast->customs[i]);
  free(cast->customs);
  free(cast);
  *cast_p = NULL;
}
