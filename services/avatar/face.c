/* face: the cartoon character, drawn with anti-aliased Cairo paths in a 512x512
 * design space (scaled to the frame). Drawing order is back to front: background,
 * shoulders, back hair, ears, head, features, front hair. */
#include "face.h"

#include <math.h>
#include <string.h>

#define DESIGN_SIZE 512.0
#define HEAD_CENTRE_X 256.0
#define HEAD_CENTRE_Y 228.0
/* The head tilts around the neck, not around its own centre. */
#define NECK_PIVOT_Y 400.0

static const character_t characters[] = {
  {
    .name = "ada",
    .background = { 0.78, 0.88, 0.96 },
    .skin = { 0.98, 0.82, 0.70 },
    .hair = { 0.55, 0.24, 0.12 },
    .iris = { 0.22, 0.55, 0.38 },
    .lips = { 0.84, 0.38, 0.40 },
    .shirt = { 0.16, 0.55, 0.60 },
    .hair_style = HAIR_BOB,
    .head_rx = 118.0, .head_ry = 146.0,
    .eye_spacing = 50.0, .eye_size = 1.0,
    .mouth_width = 32.0,
  },
  {
    .name = "leo",
    .background = { 0.96, 0.90, 0.76 },
    .skin = { 0.76, 0.54, 0.38 },
    .hair = { 0.12, 0.10, 0.09 },
    .iris = { 0.36, 0.22, 0.12 },
    .lips = { 0.62, 0.32, 0.28 },
    .shirt = { 0.86, 0.62, 0.18 },
    .hair_style = HAIR_SHORT,
    .head_rx = 126.0, .head_ry = 142.0,
    .eye_spacing = 52.0, .eye_size = 0.92,
    .mouth_width = 36.0,
  },
};

#define CHARACTER_COUNT (sizeof characters / sizeof characters[0])

const character_t *face_character_find(const char *name)
{
  for (size_t i = 0; i < CHARACTER_COUNT; i++)
    if (name && !strcmp(characters[i].name, name))
      return &characters[i];
  return NULL;
}

const character_t *face_character_default(void)
{
  return &characters[0];
}

const character_t *face_character_at(size_t index)
{
  return index < CHARACTER_COUNT ? &characters[index] : NULL;
}

static void set_rgb(cairo_t *cr, face_rgb_t c)
{
  cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

/* The same hue, darker (factor < 1) or lighter (factor > 1), clamped. */
static face_rgb_t shade(face_rgb_t c, double factor)
{
  face_rgb_t out = { c.r * factor, c.g * factor, c.b * factor };
  out.r = out.r > 1.0 ? 1.0 : out.r;
  out.g = out.g > 1.0 ? 1.0 : out.g;
  out.b = out.b > 1.0 ? 1.0 : out.b;
  return out;
}

static void ellipse_path(cairo_t *cr, double cx, double cy, double rx, double ry)
{
  cairo_save(cr);
  cairo_translate(cr, cx, cy);
  cairo_scale(cr, rx, ry);
  cairo_new_sub_path(cr);
  cairo_arc(cr, 0.0, 0.0, 1.0, 0.0, 2.0 * M_PI);
  cairo_restore(cr);
}

cairo_surface_t *face_backdrop_new(const character_t *ch, int width, int height)
{
  cairo_surface_t *backdrop = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
  cairo_t *cr = cairo_create(backdrop);
  cairo_scale(cr, width / DESIGN_SIZE, height / DESIGN_SIZE);
  cairo_pattern_t *glow = cairo_pattern_create_radial(HEAD_CENTRE_X, HEAD_CENTRE_Y, 40.0,
                                                      HEAD_CENTRE_X, HEAD_CENTRE_Y, 380.0);
  face_rgb_t light = shade(ch->background, 1.08);
  face_rgb_t dark = shade(ch->background, 0.86);
  cairo_pattern_add_color_stop_rgb(glow, 0.0, light.r, light.g, light.b);
  cairo_pattern_add_color_stop_rgb(glow, 1.0, dark.r, dark.g, dark.b);
  cairo_set_source(cr, glow);
  cairo_paint(cr);
  cairo_pattern_destroy(glow);
  cairo_status_t status = cairo_status(cr);
  cairo_destroy(cr);
  cairo_surface_flush(backdrop);
  if (status != CAIRO_STATUS_SUCCESS || cairo_surface_status(backdrop) != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(backdrop);
    return NULL;
  }
  return backdrop;
}

static void draw_shoulders(cairo_t *cr, const character_t *ch, double breath)
{
  double lift = -breath;
  /* Neck first, so the shirt's neckline covers its base. */
  set_rgb(cr, shade(ch->skin, 0.88));
  cairo_rectangle(cr, HEAD_CENTRE_X - 34.0, 320.0, 68.0, 110.0 + lift);
  cairo_fill(cr);

  cairo_move_to(cr, 60.0, DESIGN_SIZE);
  cairo_curve_to(cr, 60.0, 440.0 + lift, 130.0, 408.0 + lift, 200.0, 404.0 + lift);
  cairo_line_to(cr, 312.0, 404.0 + lift);
  cairo_curve_to(cr, 382.0, 408.0 + lift, 452.0, 440.0 + lift, 452.0, DESIGN_SIZE);
  cairo_close_path(cr);
  set_rgb(cr, ch->shirt);
  cairo_fill_preserve(cr);
  set_rgb(cr, shade(ch->shirt, 0.75));
  cairo_set_line_width(cr, 3.0);
  cairo_stroke(cr);

  /* Round neckline: the skin continues a little into the shirt. */
  set_rgb(cr, shade(ch->skin, 0.88));
  cairo_move_to(cr, HEAD_CENTRE_X - 40.0, 404.0 + lift);
  cairo_curve_to(cr, HEAD_CENTRE_X - 30.0, 436.0 + lift, HEAD_CENTRE_X + 30.0, 436.0 + lift,
                 HEAD_CENTRE_X + 40.0, 404.0 + lift);
  cairo_close_path(cr);
  cairo_fill_preserve(cr);
  set_rgb(cr, shade(ch->shirt, 0.75));
  cairo_stroke(cr);
}

/* The head outline: round skull, narrower chin. Origin at the head's centre. */
static void head_path(cairo_t *cr, double rx, double ry)
{
  cairo_move_to(cr, 0.0, -ry);
  cairo_curve_to(cr, rx * 0.58, -ry, rx, -ry * 0.62, rx, -ry * 0.08);
  cairo_curve_to(cr, rx, ry * 0.50, rx * 0.55, ry, 0.0, ry);
  cairo_curve_to(cr, -rx * 0.55, ry, -rx, ry * 0.50, -rx, -ry * 0.08);
  cairo_curve_to(cr, -rx, -ry * 0.62, -rx * 0.58, -ry, 0.0, -ry);
  cairo_close_path(cr);
}

static void draw_back_hair(cairo_t *cr, const character_t *ch)
{
  if (ch->hair_style != HAIR_BOB)
    return;
  double r = ch->head_rx + 22.0;
  double top = -ch->head_ry - 26.0;
  cairo_move_to(cr, -r, 96.0);
  cairo_line_to(cr, -r, -20.0);
  cairo_curve_to(cr, -r, top, r, top, r, -20.0);
  cairo_line_to(cr, r, 96.0);
  cairo_curve_to(cr, r, 112.0, r - 26.0, 114.0, r - 40.0, 104.0);
  cairo_line_to(cr, -r + 40.0, 104.0);
  cairo_curve_to(cr, -r + 26.0, 114.0, -r, 112.0, -r, 96.0);
  cairo_close_path(cr);
  set_rgb(cr, shade(ch->hair, 0.85));
  cairo_fill(cr);
}

static void draw_ears(cairo_t *cr, const character_t *ch)
{
  for (int side = -1; side <= 1; side += 2) {
    double x = side * (ch->head_rx - 4.0);
    ellipse_path(cr, x, 8.0, 18.0, 27.0);
    set_rgb(cr, ch->skin);
    cairo_fill_preserve(cr);
    set_rgb(cr, shade(ch->skin, 0.75));
    cairo_set_line_width(cr, 3.0);
    cairo_stroke(cr);
    ellipse_path(cr, x + side * 4.0, 8.0, 8.0, 15.0);
    set_rgb(cr, shade(ch->skin, 0.85));
    cairo_fill(cr);
  }
}

static void draw_head(cairo_t *cr, const character_t *ch)
{
  head_path(cr, ch->head_rx, ch->head_ry);
  /* Light from the upper left gives the flat shape some volume. */
  cairo_pattern_t *light = cairo_pattern_create_radial(-ch->head_rx * 0.3, -ch->head_ry * 0.35,
                                                       10.0, 0.0, 0.0, ch->head_ry * 1.2);
  face_rgb_t lit = shade(ch->skin, 1.05);
  face_rgb_t dim = shade(ch->skin, 0.92);
  cairo_pattern_add_color_stop_rgb(light, 0.0, lit.r, lit.g, lit.b);
  cairo_pattern_add_color_stop_rgb(light, 1.0, dim.r, dim.g, dim.b);
  cairo_set_source(cr, light);
  cairo_fill_preserve(cr);
  cairo_pattern_destroy(light);
  set_rgb(cr, shade(ch->skin, 0.75));
  cairo_set_line_width(cr, 3.0);
  cairo_stroke(cr);

  /* Rosy cheeks. */
  for (int side = -1; side <= 1; side += 2) {
    ellipse_path(cr, side * ch->head_rx * 0.60, ch->head_ry * 0.30, 22.0, 14.0);
    cairo_set_source_rgba(cr, 0.95, 0.45, 0.45, 0.30);
    cairo_fill(cr);
  }
}

/* The region above the hairline: hair is the enlarged head shape clipped to it. */
static void hairline_region_path(cairo_t *cr, const character_t *ch)
{
  double rx = ch->head_rx, ry = ch->head_ry;
  double side = rx + 40.0, top = -ry - 60.0;
  cairo_move_to(cr, -side, top);
  cairo_line_to(cr, side, top);
  if (ch->hair_style == HAIR_BOB) {
    /* A fringe swept to one side, reaching down to the ears. */
    cairo_line_to(cr, side, 10.0);
    cairo_line_to(cr, rx * 0.92, 10.0);
    cairo_curve_to(cr, rx * 0.85, -ry * 0.35, rx * 0.45, -ry * 0.50, rx * 0.05, -ry * 0.52);
    cairo_curve_to(cr, -rx * 0.35, -ry * 0.55, -rx * 0.55, -ry * 0.40, -rx * 0.78, -ry * 0.20);
    cairo_curve_to(cr, -rx * 0.85, -ry * 0.05, -rx * 0.88, 0.0, -rx * 0.92, 10.0);
    cairo_line_to(cr, -side, 10.0);
  } else {
    /* Short hair: a soft hairline with sideburns. */
    cairo_line_to(cr, side, -ry * 0.10);
    cairo_line_to(cr, rx * 0.90, -ry * 0.10);
    cairo_curve_to(cr, rx * 0.86, -ry * 0.45, rx * 0.60, -ry * 0.62, 0.0, -ry * 0.64);
    cairo_curve_to(cr, -rx * 0.60, -ry * 0.62, -rx * 0.86, -ry * 0.45, -rx * 0.90, -ry * 0.10);
    cairo_line_to(cr, -side, -ry * 0.10);
  }
  cairo_close_path(cr);
}

/* Short hair sticks up in a few tufts above the crown. */
static void tufts_path(cairo_t *cr, const character_t *ch)
{
  double rx = ch->head_rx, ry = ch->head_ry;
  cairo_move_to(cr, -rx * 0.45, -ry * 0.92);
  cairo_line_to(cr, -rx * 0.20, -ry - 26.0);
  cairo_line_to(cr, -rx * 0.05, -ry - 8.0);
  cairo_line_to(cr, rx * 0.15, -ry - 22.0);
  cairo_line_to(cr, rx * 0.30, -ry - 6.0);
  cairo_line_to(cr, rx * 0.45, -ry * 0.92);
  cairo_close_path(cr);
}

static void fill_and_outline_hair(cairo_t *cr, const character_t *ch)
{
  set_rgb(cr, ch->hair);
  cairo_fill_preserve(cr);
  set_rgb(cr, shade(ch->hair, 0.7));
  cairo_set_line_width(cr, 2.5);
  cairo_stroke(cr);
}

/* Cairo has no path intersection: the hair is the enlarged head clipped to the
 * region above the hairline, and the hairline is outlined clipped to the hair. */
static void draw_front_hair(cairo_t *cr, const character_t *ch)
{
  double grow = ch->hair_style == HAIR_BOB ? 12.0 : 6.0;
  if (ch->hair_style == HAIR_SHORT) {
    tufts_path(cr, ch);
    fill_and_outline_hair(cr, ch);
  }
  cairo_save(cr);
  hairline_region_path(cr, ch);
  cairo_clip(cr);
  cairo_translate(cr, 0.0, -grow * 0.5);
  head_path(cr, ch->head_rx + grow, ch->head_ry + grow);
  fill_and_outline_hair(cr, ch);
  cairo_restore(cr);

  cairo_save(cr);
  cairo_translate(cr, 0.0, -grow * 0.5);
  head_path(cr, ch->head_rx + grow, ch->head_ry + grow);
  cairo_translate(cr, 0.0, grow * 0.5);
  cairo_clip(cr);
  hairline_region_path(cr, ch);
  set_rgb(cr, shade(ch->hair, 0.7));
  cairo_set_line_width(cr, 2.5);
  cairo_stroke(cr);
  cairo_restore(cr);
}

static void draw_eyebrows(cairo_t *cr, const character_t *ch, double raise)
{
  double y = -ch->head_ry * 0.30 - 12.0 * raise;
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  cairo_set_line_width(cr, 7.0);
  set_rgb(cr, shade(ch->hair, 0.8));
  for (int side = -1; side <= 1; side += 2) {
    double x = side * ch->eye_spacing;
    cairo_move_to(cr, x - side * 22.0, y + 6.0);
    cairo_curve_to(cr, x - side * 10.0, y - 6.0, x + side * 10.0, y - 6.0, x + side * 24.0, y + 2.0);
    cairo_stroke(cr);
  }
}

static void draw_eye(cairo_t *cr, const character_t *ch, double cx, double cy,
                     const face_state_t *state)
{
  double rx = 24.0 * ch->eye_size, ry = 20.0 * ch->eye_size;
  double lid = state->blink < 0.0 ? 0.0 : state->blink > 1.0 ? 1.0 : state->blink;

  cairo_save(cr);
  ellipse_path(cr, cx, cy, rx, ry);
  cairo_clip(cr);
  cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
  cairo_paint(cr);
  double ix = cx + state->gaze_x * 6.0, iy = cy + state->gaze_y * 4.0;
  ellipse_path(cr, ix, iy, 13.0 * ch->eye_size, 13.0 * ch->eye_size);
  set_rgb(cr, ch->iris);
  cairo_fill(cr);
  ellipse_path(cr, ix, iy, 7.0 * ch->eye_size, 7.0 * ch->eye_size);
  cairo_set_source_rgb(cr, 0.05, 0.05, 0.07);
  cairo_fill(cr);
  ellipse_path(cr, ix + 4.0, iy - 4.0, 3.2 * ch->eye_size, 3.2 * ch->eye_size);
  cairo_set_source_rgb(cr, 1.0, 1.0, 1.0);
  cairo_fill(cr);

  /* The upper lid slides down over the eye and meets the lower lid low, as real
   * lids do; its edge carries the lashes. */
  double lid_y = cy - ry + 1.7 * ry * lid;
  cairo_rectangle(cr, cx - rx - 2.0, cy - ry - 2.0, 2.0 * rx + 4.0, lid_y - (cy - ry) + 2.0);
  set_rgb(cr, shade(ch->skin, 0.95));
  cairo_fill(cr);
  cairo_restore(cr);

  cairo_save(cr);
  cairo_rectangle(cr, cx - rx - 4.0, lid_y, 2.0 * rx + 8.0, 2.0 * ry + 4.0);
  cairo_clip(cr);
  set_rgb(cr, shade(ch->skin, 0.55));
  cairo_set_line_width(cr, 2.0);
  ellipse_path(cr, cx, cy, rx, ry);
  cairo_stroke(cr);
  cairo_restore(cr);

  if (lid > 0.05) {
    double half_chord = rx * sqrt(fmax(0.0, 1.0 - pow((lid_y - cy) / ry, 2.0)));
    cairo_move_to(cr, cx - half_chord - 1.0, lid_y);
    cairo_curve_to(cr, cx - half_chord * 0.4, lid_y + 4.0 * lid, cx + half_chord * 0.4,
                   lid_y + 4.0 * lid, cx + half_chord + 1.0, lid_y);
  } else {
    cairo_save(cr);
    cairo_translate(cr, cx, cy);
    cairo_scale(cr, rx, ry);
    cairo_arc(cr, 0.0, 0.0, 1.0, M_PI * 1.05, M_PI * 1.95);
    cairo_restore(cr);
  }
  cairo_set_source_rgb(cr, 0.15, 0.10, 0.10);
  cairo_set_line_width(cr, 3.5);
  cairo_stroke(cr);
}

static void draw_nose(cairo_t *cr, const character_t *ch)
{
  double y = ch->head_ry * 0.18;
  cairo_move_to(cr, -9.0, y);
  cairo_curve_to(cr, -10.0, y + 12.0, 10.0, y + 12.0, 9.0, y);
  set_rgb(cr, shade(ch->skin, 0.70));
  cairo_set_line_width(cr, 3.0);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  cairo_stroke(cr);
}

/* The lips' inner outline, from which the opening, the lips and the teeth derive. */
typedef struct {
  double half_width;
  double corner_y;
  double upper_y;      /* the upper lip's inner edge at the middle */
  double lower_y;      /* the lower lip's inner edge at the middle */
  double bulge;        /* how far the control points sit from the middle */
} mouth_shape_t;

static mouth_shape_t mouth_shape(const character_t *ch, const mouth_pose_t *pose)
{
  double opening = 48.0 * pose->open * (1.0 - pose->press);
  /* A relaxed mouth smiles; rounding or opening wide flattens the smile. */
  double smile = 7.0 * (1.0 - pose->round) * (1.0 - 0.6 * pose->open);
  mouth_shape_t shape = {
    .half_width = ch->mouth_width * (1.0 + 0.35 * pose->wide - 0.45 * pose->round),
    .corner_y = -0.4 * smile,
    .upper_y = smile - 0.35 * opening,
    .lower_y = smile + 0.85 * opening,
    .bulge = 0.5 + 0.4 * pose->round,
  };
  return shape;
}

static void mouth_opening_path(cairo_t *cr, const mouth_shape_t *m)
{
  double w = m->half_width, k = m->bulge * m->half_width;
  cairo_move_to(cr, -w, m->corner_y);
  cairo_curve_to(cr, -k, m->upper_y, k, m->upper_y, w, m->corner_y);
  cairo_curve_to(cr, k, m->lower_y, -k, m->lower_y, -w, m->corner_y);
  cairo_close_path(cr);
}

static void upper_teeth_path(cairo_t *cr, const mouth_shape_t *m, double depth)
{
  double w = m->half_width * 0.72;
  cairo_rectangle(cr, -w, m->upper_y - 4.0, 2.0 * w, depth + 4.0);
}

static void draw_mouth(cairo_t *cr, const character_t *ch, const mouth_pose_t *pose)
{
  mouth_shape_t m = mouth_shape(ch, pose);
  double gap = m.lower_y - m.upper_y;

  cairo_save(cr);
  cairo_translate(cr, 0.0, ch->head_ry * 0.50);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);

  if (gap > 1.5) {
    mouth_opening_path(cr, &m);
    cairo_set_source_rgb(cr, 0.35, 0.09, 0.13);
    cairo_fill_preserve(cr);
    cairo_save(cr);
    cairo_clip(cr);
    /* The tongue rests low and rises toward the teeth for l and th. */
    double tongue_y = m.lower_y - 2.0 - pose->tongue * gap * 0.55;
    ellipse_path(cr, 0.0, tongue_y + 6.0, m.half_width * 0.62, 10.0 + 4.0 * pose->tongue);
    cairo_set_source_rgb(cr, 0.88, 0.42, 0.46);
    cairo_fill(cr);
    upper_teeth_path(cr, &m, pose->teeth * 9.0);
    cairo_set_source_rgb(cr, 0.98, 0.98, 0.95);
    cairo_fill(cr);
    double lower_teeth = pose->teeth * (1.0 - pose->open) * 7.0;
    cairo_rectangle(cr, -m.half_width * 0.6, m.lower_y - lower_teeth, m.half_width * 1.2, lower_teeth + 4.0);
    cairo_fill(cr);
    cairo_restore(cr);
  }

  /* Lips: pouting makes them fuller, pressing makes them thinner. */
  double lip_width = 6.0 + 3.0 * pose->round - 2.0 * pose->press;
  mouth_opening_path(cr, &m);
  set_rgb(cr, ch->lips);
  cairo_set_line_width(cr, lip_width);
  cairo_stroke(cr);
  double k = m.bulge * m.half_width;
  cairo_move_to(cr, -m.half_width * 0.8, m.corner_y + 2.0);
  cairo_curve_to(cr, -k, m.lower_y + 3.0, k, m.lower_y + 3.0, m.half_width * 0.8, m.corner_y + 2.0);
  cairo_set_line_width(cr, lip_width + 2.0);
  cairo_stroke(cr);

  if (pose->lip_bite > 0.01) {
    upper_teeth_path(cr, &m, gap + 2.0);
    cairo_set_source_rgba(cr, 0.98, 0.98, 0.95, pose->lip_bite);
    cairo_fill(cr);
  }

  /* Closed lips meet in a line, darker when they press. */
  if (gap <= 1.5) {
    cairo_move_to(cr, -m.half_width, m.corner_y);
    cairo_curve_to(cr, -k, m.upper_y, k, m.upper_y, m.half_width, m.corner_y);
    set_rgb(cr, shade(ch->lips, 0.55 - 0.15 * pose->press));
    cairo_set_line_width(cr, 2.0 + pose->press);
    cairo_stroke(cr);
  }
  cairo_restore(cr);
}

void face_draw(cairo_t *cr, cairo_surface_t *backdrop, const character_t *ch,
               const face_state_t *state)
{
  cairo_save(cr);
  cairo_set_source_surface(cr, backdrop, 0.0, 0.0);
  cairo_set_operator(cr, CAIRO_OPERATOR_SOURCE);
  cairo_paint(cr);
  cairo_set_operator(cr, CAIRO_OPERATOR_OVER);
  cairo_scale(cr, cairo_image_surface_get_width(backdrop) / DESIGN_SIZE,
              cairo_image_surface_get_height(backdrop) / DESIGN_SIZE);
  draw_shoulders(cr, ch, state->breath);

  cairo_translate(cr, HEAD_CENTRE_X + state->head_dx, NECK_PIVOT_Y + state->head_dy - state->breath);
  cairo_rotate(cr, state->head_tilt);
  cairo_translate(cr, 0.0, HEAD_CENTRE_Y - NECK_PIVOT_Y);

  draw_back_hair(cr, ch);
  draw_ears(cr, ch);
  draw_head(cr, ch);
  draw_nose(cr, ch);
  draw_mouth(cr, ch, &state->mouth);
  for (int side = -1; side <= 1; side += 2)
    draw_eye(cr, ch, side * ch->eye_spacing, -ch->head_ry * 0.10, state);
  draw_eyebrows(cr, ch, state->brow_raise);
  draw_front_hair(cr, ch);
  cairo_restore(cr);
}
