/* custom_character: loading and checking a character folder (character.json + PNGs
 * read with Cairo), and drawing it: the base picture with the mouth of the moment
 * and, during blinks, the closed eyes laid over it, the whole picture swaying and
 * breathing a little. */
#include "custom_character.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_BYTES 65536
#define MAX_SIDE 4096
#define MIN_BOX_SIDE 4
#define DESIGN_SIZE 512.0

typedef struct {
  int x, y, width, height;
} box_t;

struct custom_character {
  char name[CUSTOM_CHARACTER_NAME_MAX + 1];
  int width, height;
  box_t mouth;
  box_t eyes;                               /* width 0: the character does not blink */
  cairo_surface_t *base;
  cairo_surface_t *mouths[VISEME_COUNT];
  cairo_surface_t *eyes_closed;             /* NULL when it does not blink */
  double margin_r, margin_g, margin_b;      /* the base's top-left colour */
};

static int folder_error(stage_error_t *err, const char *dir, const char *file, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

static int folder_error(stage_error_t *err, const char *dir, const char *file, const char *fmt, ...)
{
  char reason[256];
  va_list args;
  va_start(args, fmt);
  vsnprintf(reason, sizeof reason, fmt, args);
  va_end(args);
  return stage_error_set(err, "bad_config", "character folder %s: %s: %s", dir, file, reason);
}

/* "dir/file" into `path`; -1 when it does not fit. */
static int join_path(char *path, size_t size, const char *dir, const char *file)
{
  int n = snprintf(path, size, "%s/%s", dir, file);
  return n < 0 || (size_t) n >= size ? -1 : 0;
}

/* Reads character.json whole. Returns a malloc'd string, or NULL with `err` set. */
static char *read_json(const char *dir, stage_error_t *err)
{
  char path[PATH_MAX];
  if (join_path(path, sizeof path, dir, "character.json") < 0) {
    folder_error(err, dir, "character.json", "path too long");
    return NULL;
  }
  FILE *file = fopen(path, "rb");
  if (!file) {
    folder_error(err, dir, "character.json", "cannot be read: %s", strerror(errno));
    return NULL;
  }
  char *text = malloc(MAX_JSON_BYTES + 1);
  size_t size = text ? fread(text, 1, MAX_JSON_BYTES + 1, file) : 0;
  int failed = ferror(file);
  fclose(file);
  if (!text || failed || size > MAX_JSON_BYTES) {
    folder_error(err, dir, "character.json", "%s", !text ? "out of memory"
                 : failed ? "read error" : "larger than 64 KiB");
    free(text);
    return NULL;
  }
  text[size] = '\0';
  return text;
}

static int valid_name(const char *name)
{
  size_t length = strlen(name);
  if (length == 0 || length > CUSTOM_CHARACTER_NAME_MAX)
    return 0;
  return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == length;
}

/* An integer member `key` of `object` in [min, max]. */
static int read_int(const cJSON *object, const char *key, int min, int max, int *out,
                    const char *dir, const char *where, stage_error_t *err)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
  if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble)
      || item->valuedouble < min || item->valuedouble > max)
    return folder_error(err, dir, "character.json", "\"%s%s\" must be a whole number from %d to %d",
                        where, key, min, max);
  *out = (int) item->valuedouble;
  return 0;
}

/* A box {x, y, width, height} inside the base picture. */
static int read_box(const cJSON *root, const char *key, const custom_character_t *ch, box_t *box,
                    const char *dir, stage_error_t *err)
{
  const cJSON *object = cJSON_GetObjectItemCaseSensitive(root, key);
  char where[32];
  snprintf(where, sizeof where, "%s.", key);
  if (!cJSON_IsObject(object))
    return folder_error(err, dir, "character.json", "\"%s\" must be an object {x, y, width, height}", key);
  if (read_int(object, "x", 0, ch->width - MIN_BOX_SIDE, &box->x, dir, where, err) < 0
      || read_int(object, "y", 0, ch->height - MIN_BOX_SIDE, &box->y, dir, where, err) < 0
      || read_int(object, "width", MIN_BOX_SIDE, ch->width - box->x, &box->width, dir, where, err) < 0
      || read_int(object, "height", MIN_BOX_SIDE, ch->height - box->y, &box->height, dir, where, err) < 0)
    return -1;
  return 0;
}

static int read_description(const char *dir, custom_character_t *ch, stage_error_t *err)
{
  char *text = read_json(dir, err);
  if (!text)
    return -1;
  const char *parse_end = NULL;
  cJSON *root = cJSON_ParseWithOpts(text, &parse_end, 1);
  int rc = 0;
  if (!root) {
    rc = folder_error(err, dir, "character.json", "not valid JSON (at byte %ld)",
                      parse_end ? (long) (parse_end - text) : 0L);
  } else if (!cJSON_IsObject(root)) {
    rc = folder_error(err, dir, "character.json", "must hold a JSON object");
  } else {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (!cJSON_IsString(name) || !valid_name(name->valuestring))
      rc = folder_error(err, dir, "character.json", "\"name\" must be 1 to %d of a-z 0-9 _ -",
                        CUSTOM_CHARACTER_NAME_MAX);
    else
      snprintf(ch->name, sizeof ch->name, "%s", name->valuestring);
    if (rc == 0)
      rc = read_int(root, "width", 16, MAX_SIDE, &ch->width, dir, "", err);
    if (rc == 0)
      rc = read_int(root, "height", 16, MAX_SIDE, &ch->height, dir, "", err);
    if (rc == 0)
      rc = read_box(root, "mouth", ch, &ch->mouth, dir, err);
    if (rc == 0 && cJSON_GetObjectItemCaseSensitive(root, "eyes"))
      rc = read_box(root, "eyes", ch, &ch->eyes, dir, err);
  }
  cJSON_Delete(root);
  free(text);
  return rc;
}

/* Reads `file` as a PNG of exactly `width` x `height` pixels. */
static cairo_surface_t *load_png(const char *dir, const char *file, int width, int height,
                                 const char *what, stage_error_t *err)
{
  static const unsigned char signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  char path[PATH_MAX];
  if (join_path(path, sizeof path, dir, file) < 0) {
    folder_error(err, dir, file, "path too long");
    return NULL;
  }
  /* Cairo says only "error while reading from input stream" for a missing file
   * or a JPEG; look first so the message says which. */
  FILE *probe = fopen(path, "rb");
  if (!probe) {
    folder_error(err, dir, file, "cannot be read: %s", strerror(errno));
    return NULL;
  }
  unsigned char head[8] = { 0 };
  size_t got = fread(head, 1, sizeof head, probe);
  fclose(probe);
  if (got != sizeof head || memcmp(head, signature, sizeof head) != 0) {
    folder_error(err, dir, file, "not a PNG file");
    return NULL;
  }
  cairo_surface_t *surface = cairo_image_surface_create_from_png(path);
  if (cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS) {
    folder_error(err, dir, file, "cannot be decoded: %s",
                 cairo_status_to_string(cairo_surface_status(surface)));
    cairo_surface_destroy(surface);
    return NULL;
  }
  int w = cairo_image_surface_get_width(surface), h = cairo_image_surface_get_height(surface);
  if (w != width || h != height) {
    folder_error(err, dir, file, "is %dx%d pixels, but character.json makes %s %dx%d", w, h, what,
                 width, height);
    cairo_surface_destroy(surface);
    return NULL;
  }
  return surface;
}

/* The base's top-left pixel, which fills the margins when the frame's shape differs. */
static void read_margin_colour(custom_character_t *ch)
{
  cairo_surface_flush(ch->base);
  const unsigned char *data = cairo_image_surface_get_data(ch->base);
  cairo_format_t format = cairo_image_surface_get_format(ch->base);
  if (!data || (format != CAIRO_FORMAT_ARGB32 && format != CAIRO_FORMAT_RGB24)) {
    ch->margin_r = ch->margin_g = ch->margin_b = 0.0;
    return;
  }
  uint32_t pixel;
  memcpy(&pixel, data, sizeof pixel);
  /* Premultiplied; a transparent corner gives black margins, as it would look. */
  ch->margin_r = ((pixel >> 16) & 0xff) / 255.0;
  ch->margin_g = ((pixel >> 8) & 0xff) / 255.0;
  ch->margin_b = (pixel & 0xff) / 255.0;
}

custom_character_t *custom_character_load(const char *dir, stage_error_t *err)
{
  custom_character_t *ch = calloc(1, sizeof *ch);
  if (!ch) {
    stage_error_set(err, "bad_config", "character folder %s: out of memory", dir);
    return NULL;
  }
  if (read_description(dir, ch, err) < 0
      || !(ch->base = load_png(dir, "base.png", ch->width, ch->height, "the character", err))) {
    custom_character_destroy(&ch);
    return NULL;
  }
  for (int v = 0; v < VISEME_COUNT; v++) {
    char file[32];
    snprintf(file, sizeof file, "mouth_%s.png", viseme_name((viseme_t) v));
    ch->mouths[v] = load_png(dir, file, ch->mouth.width, ch->mouth.height, "the mouth", err);
    if (!ch->mouths[v]) {
      custom_character_destroy(&ch);
      return NULL;
    }
  }
  if (ch->eyes.width > 0) {
    ch->eyes_closed = load_png(dir, "eyes_closed.png", ch->eyes.width, ch->eyes.height, "the eyes", err);
    if (!ch->eyes_closed) {
      custom_character_destroy(&ch);
      return NULL;
    }
  }
  read_margin_colour(ch);
  return ch;
}

const char *custom_character_name(const custom_character_t *character)
{
  return character->name;
}

static void paint_at(cairo_t *cr, cairo_surface_t *picture, const box_t *box)
{
  cairo_set_source_surface(cr, picture, box->x, box->y);
  cairo_rectangle(cr, box->x, box->y, box->width, box->height);
  cairo_fill(cr);
}

void custom_character_draw(cairo_t *cr, int width, int height, const custom_character_t *ch,
                           const face_state_t *state)
{
  cairo_save(cr);
  cairo_set_source_rgb(cr, ch->margin_r, ch->margin_g, ch->margin_b);
  cairo_paint(cr);
  /* Fit the picture in the frame; the motion is in 512-unit design space. */
  double scale = fmin((double) width / ch->width, (double) height / ch->height);
  double unit = fmin(width, height) / DESIGN_SIZE;
  cairo_translate(cr, (width - ch->width * scale) / 2.0 + state->head_dx * unit * 0.5,
                  (height - ch->height * scale) / 2.0 + (state->head_dy * 0.5 - state->breath) * unit);
  cairo_scale(cr, scale, scale);
  /* A picture has no brows to lift: a question cocks the head instead. Both turn
   * around the bottom middle, where the neck would be. */
  cairo_translate(cr, ch->width / 2.0, ch->height);
  cairo_rotate(cr, state->head_tilt * 0.5 - 0.06 * state->brow_raise);
  cairo_translate(cr, -ch->width / 2.0, -ch->height);

  cairo_set_source_surface(cr, ch->base, 0.0, 0.0);
  cairo_paint(cr);
  viseme_t shape = state->shape >= 0 && state->shape < VISEME_COUNT ? state->shape : VISEME_X;
  paint_at(cr, ch->mouths[shape], &ch->mouth);
  /* Pictures cannot half-close: the lids are shut for the middle of the blink. */
  if (ch->eyes_closed && state->blink >= 0.5)
    paint_at(cr, ch->eyes_closed, &ch->eyes);
  cairo_restore(cr);
}

void custom_character_destroy(custom_character_t **character_p)
{
  if (!character_p || !*character_p)
    return;
  custom_character_t *ch = *character_p;
  if (ch->base)
    cairo_surface_destroy(ch->base);
  for (int v = 0; v < VISEME_COUNT; v++)
    if (ch->mouths[v])
      cairo_surface_destroy(ch->mouths[v]);
  if (ch->eyes_closed)
    cairo_surface_destroy(ch->eyes_closed);
  free(ch);
  *character_p = NULL;
}
