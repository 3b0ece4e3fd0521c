/* generate: draws "bolt", the sample picture character, into a character folder
 * (custom_character.h, docs/avatar.md) -- our own Cairo drawing, so the sample
 * carries no third-party art. Run at build time:
 *   generate OUTPUT_DIR
 * writes OUTPUT_DIR/character.json, base.png, mouth_X.png .. mouth_H.png and
 * eyes_closed.png. */
#include "viseme.h"

#include <cairo.h>
#include <math.h>
#include <stdio.h>

#define SIZE 512
/* Where the mouth shapes and the closed eyes go on the base picture. */
#define MOUTH_X 176
#define MOUTH_Y 268
#define MOUTH_W 160
#define MOUTH_H 84
#define EYES_X 140
#define EYES_Y 150
#define EYES_W 232
#define EYES_H 84
#define EYE_LEFT_X 206.0
#define EYE_RIGHT_X 306.0
#define EYE_Y 192.0
#define EYE_R 34.0

static void rounded_rect(cairo_t *cr, double x, double y, double w, double h, double r)
{
  cairo_new_sub_path(cr);
  cairo_arc(cr, x + w - r, y + r, r, -M_PI / 2.0, 0.0);
  cairo_arc(cr, x + w - r, y + h - r, r, 0.0, M_PI / 2.0);
  cairo_arc(cr, x + r, y + h - r, r, M_PI / 2.0, M_PI);
  cairo_arc(cr, x + r, y + r, r, M_PI, 1.5 * M_PI);
  cairo_close_path(cr);
}

/* Everything but the eyes and the mouth: backdrop, body, head, antenna, screen. */
static void draw_plate(cairo_t *cr)
{
  cairo_set_source_rgb(cr, 0.88, 0.91, 0.86);
  cairo_paint(cr);
  /* Body and neck. */
  rounded_rect(cr, 96.0, 430.0, 320.0, 140.0, 40.0);
  cairo_set_source_rgb(cr, 0.30, 0.38, 0.52);
  cairo_fill(cr);
  cairo_rectangle(cr, 226.0, 380.0, 60.0, 56.0);
  cairo_set_source_rgb(cr, 0.45, 0.48, 0.52);
  cairo_fill(cr);
  /* Antenna. */
  cairo_move_to(cr, 256.0, 96.0);
  cairo_line_to(cr, 256.0, 48.0);
  cairo_set_line_width(cr, 8.0);
  cairo_set_source_rgb(cr, 0.40, 0.42, 0.46);
  cairo_stroke(cr);
  cairo_arc(cr, 256.0, 40.0, 16.0, 0.0, 2.0 * M_PI);
  cairo_set_source_rgb(cr, 0.90, 0.30, 0.25);
  cairo_fill(cr);
  /* Ears. */
  rounded_rect(cr, 76.0, 190.0, 40.0, 90.0, 12.0);
  rounded_rect(cr, 396.0, 190.0, 40.0, 90.0, 12.0);
  cairo_set_source_rgb(cr, 0.55, 0.58, 0.62);
  cairo_fill(cr);
  /* Head, lit from the upper left. */
  rounded_rect(cr, 106.0, 96.0, 300.0, 290.0, 56.0);
  cairo_pattern_t *light = cairo_pattern_create_linear(106.0, 96.0, 406.0, 386.0);
  cairo_pattern_add_color_stop_rgb(light, 0.0, 0.86, 0.88, 0.90);
  cairo_pattern_add_color_stop_rgb(light, 1.0, 0.66, 0.69, 0.73);
  cairo_set_source(cr, light);
  cairo_fill_preserve(cr);
  cairo_pattern_destroy(light);
  cairo_set_line_width(cr, 5.0);
  cairo_set_source_rgb(cr, 0.35, 0.37, 0.41);
  cairo_stroke(cr);
  /* The mouth's screen. */
  rounded_rect(cr, MOUTH_X + 4.0, MOUTH_Y + 4.0, MOUTH_W - 8.0, MOUTH_H - 8.0, 18.0);
  cairo_set_source_rgb(cr, 0.10, 0.13, 0.17);
  cairo_fill(cr);
}

static void draw_open_eyes(cairo_t *cr)
{
  for (int i = 0; i < 2; i++) {
    double x = i ? EYE_RIGHT_X : EYE_LEFT_X;
    cairo_arc(cr, x, EYE_Y, EYE_R, 0.0, 2.0 * M_PI);
    cairo_set_source_rgb(cr, 0.97, 0.98, 1.0);
    cairo_fill_preserve(cr);
    cairo_set_line_width(cr, 4.0);
    cairo_set_source_rgb(cr, 0.35, 0.37, 0.41);
    cairo_stroke(cr);
    cairo_arc(cr, x, EYE_Y, 16.0, 0.0, 2.0 * M_PI);
    cairo_set_source_rgb(cr, 0.10, 0.60, 0.80);
    cairo_fill(cr);
    cairo_arc(cr, x + 6.0, EYE_Y - 6.0, 5.0, 0.0, 2.0 * M_PI);
    cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
    cairo_fill(cr);
  }
}

static void draw_closed_eyes(cairo_t *cr)
{
  cairo_set_line_width(cr, 6.0);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  cairo_set_source_rgb(cr, 0.25, 0.27, 0.31);
  for (int i = 0; i < 2; i++) {
    double x = i ? EYE_RIGHT_X : EYE_LEFT_X;
    cairo_move_to(cr, x - EYE_R, EYE_Y + 4.0);
    cairo_curve_to(cr, x - 12.0, EYE_Y + 16.0, x + 12.0, EYE_Y + 16.0, x + EYE_R, EYE_Y + 4.0);
    cairo_stroke(cr);
  }
}

/* A shape drawn as glowing lines on the screen, proportioned by its pose. */
static void draw_mouth(cairo_t *cr, viseme_t viseme)
{
  mouth_pose_t pose = viseme_pose(viseme);
  double cx = MOUTH_X + MOUTH_W / 2.0, cy = MOUTH_Y + MOUTH_H / 2.0;
  double half_w = 44.0 * (1.0 + 0.35 * pose.wide - 0.55 * pose.round);
  double half_h = 30.0 * pose.open * (1.0 - pose.press);
  cairo_set_source_rgb(cr, 0.30, 0.95, 0.85);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  if (half_h < 3.0) {
    /* Closed: a line, shorter and thicker when pressed. */
    cairo_move_to(cr, cx - half_w, cy);
    cairo_curve_to(cr, cx - half_w / 3.0, cy + 6.0 * (1.0 - pose.press), cx + half_w / 3.0,
                   cy + 6.0 * (1.0 - pose.press), cx + half_w, cy);
    cairo_set_line_width(cr, 5.0 + 3.0 * pose.press);
    cairo_stroke(cr);
    return;
  }
  cairo_save(cr);
  cairo_translate(cr, cx, cy);
  cairo_scale(cr, half_w, half_h);
  cairo_arc(cr, 0.0, 0.0, 1.0, 0.0, 2.0 * M_PI);
  cairo_restore(cr);
  cairo_set_line_width(cr, 5.0);
  cairo_stroke_preserve(cr);
  cairo_save(cr);
  cairo_clip(cr);
  if (pose.teeth > 0.5) {          /* a row of teeth: short bars along the top */
    for (double x = cx - half_w; x < cx + half_w; x += 12.0)
      cairo_rectangle(cr, x + 2.0, cy - half_h, 8.0, fmin(10.0, half_h));
    cairo_fill(cr);
  }
  if (pose.tongue > 0.5 || pose.lip_bite > 0.5) {   /* tongue up, or lip under teeth */
    cairo_arc(cr, cx, cy + half_h * (pose.tongue > 0.5 ? 0.5 : 0.9), half_w * 0.5, M_PI, 2.0 * M_PI);
    cairo_set_source_rgb(cr, 0.95, 0.45, 0.55);
    cairo_fill(cr);
  }
  cairo_restore(cr);
}

/* Writes the part of `picture` inside the box, with `overlay` drawn on it, as a PNG. */
static int write_crop(cairo_surface_t *picture, const char *dir, const char *file, int x, int y,
                      int w, int h, void (*overlay)(cairo_t *, viseme_t), viseme_t viseme)
{
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int) sizeof path)
    return -1;
  cairo_surface_t *crop = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
  cairo_t *cr = cairo_create(crop);
  cairo_set_source_surface(cr, picture, -x, -y);
  cairo_paint(cr);
  cairo_translate(cr, -x, -y);
  if (overlay)
    overlay(cr, viseme);
  cairo_destroy(cr);
  cairo_status_t status = cairo_surface_write_to_png(crop, path);
  cairo_surface_destroy(crop);
  if (status != CAIRO_STATUS_SUCCESS) {
    fprintf(stderr, "generate: %s: %s\n", path, cairo_status_to_string(status));
    return -1;
  }
  return 0;
}

static void overlay_mouth(cairo_t *cr, viseme_t viseme)
{
  draw_mouth(cr, viseme);
}

static void overlay_closed_eyes(cairo_t *cr, viseme_t viseme)
{
  (void) viseme;
  draw_closed_eyes(cr);
}

static int write_description(const char *dir)
{
  char path[4096];
  if (snprintf(path, sizeof path, "%s/character.json", dir) >= (int) sizeof path)
    return -1;
  FILE *file = fopen(path, "w");
  if (!file) {
    perror(path);
    return -1;
  }
  int written = fprintf(file,
                        "{\n  \"name\": \"bolt\",\n  \"width\": %d,\n  \"height\": %d,\n"
                        "  \"mouth\": {\"x\": %d, \"y\": %d, \"width\": %d, \"height\": %d},\n"
                        "  \"eyes\": {\"x\": %d, \"y\": %d, \"width\": %d, \"height\": %d}\n}\n",
                        SIZE, SIZE, MOUTH_X, MOUTH_Y, MOUTH_W, MOUTH_H, EYES_X, EYES_Y, EYES_W, EYES_H);
  if (fclose(file) != 0 || written < 0) {
    perror(path);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  cairo_surface_t *plate = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, SIZE, SIZE);
  cairo_t *cr = cairo_create(plate);
  draw_plate(cr);
  cairo_destroy(cr);
  cairo_surface_t *base = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, SIZE, SIZE);
  cr = cairo_create(base);
  cairo_set_source_surface(cr, plate, 0.0, 0.0);
  cairo_paint(cr);
  draw_open_eyes(cr);
  draw_mouth(cr, VISEME_X);
  cairo_destroy(cr);

  int rc = write_description(dir) == 0 && write_crop(base, dir, "base.png", 0, 0, SIZE, SIZE, NULL, VISEME_X) == 0
           && write_crop(plate, dir, "eyes_closed.png", EYES_X, EYES_Y, EYES_W, EYES_H, overlay_closed_eyes,
                         VISEME_X) == 0 ? 0 : 1;
  for (int v = 0; rc == 0 && v < VISEME_COUNT; v++) {
    char file[32];
    snprintf(file, sizeof file, "mouth_%s.png", viseme_name((viseme_t) v));
    rc = write_crop(plate, dir, file, MOUTH_X, MOUTH_Y, MOUTH_W, MOUTH_H, overlay_mouth, (viseme_t) v);
  }
  cairo_surface_destroy(base);
  cairo_surface_destroy(plate);
  return rc;
}
