/* custom_character: a character made of pictures instead of code, loaded from a
 * folder (the format is in docs/avatar.md):
 *
 *   character.json   {"name": "bolt", "width": 512, "height": 512,
 *                     "mouth": {"x": 196, "y": 318, "width": 120, "height": 84},
 *                     "eyes": {"x": 136, "y": 168, "width": 240, "height": 96}}
 *   base.png         the whole character, width x height, mouth and eyes included
 *   mouth_X.png      the resting mouth, mouth box sized; mouth_A.png .. mouth_H.png
 *                    the Preston Blair shapes (viseme.h)
 *   eyes_closed.png  the closed eyes, eyes box sized (only with "eyes": blinks)
 *
 * Everything is checked when the folder is loaded, so a bad folder stops the
 * service at start with an error naming the file, never a job. */
#ifndef AVATAR_CUSTOM_CHARACTER_H
#define AVATAR_CUSTOM_CHARACTER_H

#include "face.h"
#include "stage_error.h"

#include <cairo.h>

typedef struct custom_character custom_character_t;

/* Longest accepted character name ([a-z0-9_-]). */
#define CUSTOM_CHARACTER_NAME_MAX 32

/* Loads the character in folder `dir`. Returns it, or NULL with code "bad_config"
 * and a message naming the folder and the file at fault in `err`. */
custom_character_t *custom_character_load(const char *dir, stage_error_t *err);

/* The name from character.json. */
const char *custom_character_name(const custom_character_t *character);

/* Draws the character in `state` (the mouth from state->shape; blinks, sway,
 * breathing and the question tilt from the rest) onto `cr`, a `width` x `height`
 * target, fitting the picture in and filling the margins with its corner colour. */
void custom_character_draw(cairo_t *cr, int width, int height, const custom_character_t *character,
                           const face_state_t *state);

/* Frees the character; sets *character_p to NULL. NULL-safe. */
void custom_character_destroy(custom_character_t **character_p);

#endif
