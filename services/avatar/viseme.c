/* viseme: eSpeak phonemes -> mouth shapes, and phoneme timings -> one mouth pose per
 * video frame. */
#include "viseme.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Longest blend between two shapes on each side of a boundary: lips start toward
 * the next shape about this long before its sound (coarticulation), a bit more
 * than a frame at 25 fps. */
#define BLEND_MAX_MS 60.0

/* A stretch of time showing one shape. `end_ms` of the last one is "forever". */
typedef struct {
  int64_t start_ms;
  int64_t end_ms;
  viseme_t viseme;
} segment_t;

static const mouth_pose_t pose_table[VISEME_COUNT] = {
  /*                open   wide   round  press  teeth  bite   tongue */
  [VISEME_X] = { 0.00f, 0.20f, 0.00f, 0.00f, 0.00f, 0.00f, 0.00f },
  [VISEME_A] = { 0.00f, 0.30f, 0.00f, 1.00f, 0.00f, 0.00f, 0.00f },
  [VISEME_B] = { 0.12f, 0.70f, 0.00f, 0.00f, 1.00f, 0.00f, 0.00f },
  [VISEME_C] = { 0.45f, 0.55f, 0.00f, 0.00f, 0.70f, 0.00f, 0.00f },
  [VISEME_D] = { 0.90f, 0.40f, 0.00f, 0.00f, 0.50f, 0.00f, 0.00f },
  [VISEME_E] = { 0.45f, 0.10f, 0.55f, 0.00f, 0.30f, 0.00f, 0.00f },
  [VISEME_F] = { 0.15f, 0.00f, 1.00f, 0.00f, 0.00f, 0.00f, 0.00f },
  [VISEME_G] = { 0.12f, 0.45f, 0.00f, 0.00f, 1.00f, 1.00f, 0.00f },
  [VISEME_H] = { 0.45f, 0.45f, 0.00f, 0.00f, 0.60f, 0.00f, 1.00f },
};

const char *viseme_name(viseme_t viseme)
{
  static const char *const names[VISEME_COUNT] = { "X", "A", "B", "C", "D", "E", "F", "G", "H" };
  return viseme >= 0 && viseme < VISEME_COUNT ? names[viseme] : "?";
}

mouth_pose_t viseme_pose(viseme_t viseme)
{
  return pose_table[viseme >= 0 && viseme < VISEME_COUNT ? viseme : VISEME_X];
}

/* eSpeak prefixes stress (' ,), and marks like % = ; they do not change the mouth. */
static const char *skip_stress_marks(const char *symbol)
{
  while (*symbol && strchr("',%=", *symbol))
    symbol++;
  return symbol;
}

viseme_t viseme_from_phoneme(const char *symbol)
{
  if (!symbol)
    return VISEME_X;
  symbol = skip_stress_marks(symbol);
  if (!*symbol || symbol[0] == '_')
    return VISEME_X;
  /* Affricates start with a stop whose letter would otherwise choose the shape. */
  if (!strncmp(symbol, "tS", 2) || !strncmp(symbol, "dZ", 2))
    return VISEME_B;
  switch (symbol[0]) {
  case 'p': case 'b': case 'm':
    return VISEME_A;
  case 'f': case 'v':
    return VISEME_G;
  case 'T': case 'D': case 'l': case 'L':
    return VISEME_H;
  case 'a': case 'A':
    return VISEME_D;
  case 'e': case 'E': case 'V': case '@': case '&':
    return VISEME_C;
  case 'i': case 'I':
    return VISEME_B;
  case 'o': case 'O': case '0': case '3':
    return VISEME_E;
  case 'u': case 'U': case 'w':
    return VISEME_F;
  default:
    /* t d k g n N s z S Z h j r x C ? and anything unknown: teeth nearly closed. */
    return VISEME_B;
  }
}

static float lerpf(float a, float b, float w)
{
  return a + (b - a) * w;
}

mouth_pose_t viseme_pose_mix(mouth_pose_t a, mouth_pose_t b, float w)
{
  return (mouth_pose_t) {
    .open = lerpf(a.open, b.open, w),
    .wide = lerpf(a.wide, b.wide, w),
    .round = lerpf(a.round, b.round, w),
    .press = lerpf(a.press, b.press, w),
    .teeth = lerpf(a.teeth, b.teeth, w),
    .lip_bite = lerpf(a.lip_bite, b.lip_bite, w),
    .tongue = lerpf(a.tongue, b.tongue, w),
  };
}

static float smoothstep(float x)
{
  if (x <= 0.0f)
    return 0.0f;
  if (x >= 1.0f)
    return 1.0f;
  return x * x * (3.0f - 2.0f * x);
}

/* True when [start, end) is too short to own a frame at `fps`. */
static int shorter_than_frame(int64_t start_ms, int64_t end_ms, int fps)
{
  /* d * fps < 1000 for whole milliseconds d, without overflow for open ends. */
  return end_ms - start_ms < (1000 + fps - 1) / fps;
}

/* Appends [start, end) showing `viseme` to the `count` segments so far, joining the
 * last one when that shows the same shape. Returns the new count. */
static size_t append_segment(segment_t *segments, size_t count, int64_t start, int64_t end,
                             viseme_t viseme)
{
  if (count > 0 && segments[count - 1].viseme == viseme) {
    segments[count - 1].end_ms = end;
    return count;
  }
  segments[count] = (segment_t) { start, end, viseme };
  return count + 1;
}

/* Folds every segment too short to own a frame into the one before it, so nothing
 * flickers for a frame -- except lip closures, what a viewer misses most: they keep
 * their exact time and show when they span a frame's sampling instant. A short
 * pause just before a closure becomes part of it (the lips are closing anyway).
 * Works in place; returns the new count. */
static size_t absorb_short_segments(segment_t *segments, size_t count, int fps)
{
  size_t kept = 0;
  for (size_t i = 0; i < count; i++) {
    segment_t seg = segments[i];
    int is_short = shorter_than_frame(seg.start_ms, seg.end_ms, fps);
    if (is_short && seg.viseme == VISEME_X && i + 1 < count && segments[i + 1].viseme == VISEME_A) {
      segments[i + 1].start_ms = seg.start_ms;
      continue;
    }
    if (kept > 0 && (segments[kept - 1].viseme == seg.viseme || (is_short && seg.viseme != VISEME_A))) {
      segments[kept - 1].end_ms = seg.end_ms;
      continue;
    }
    segments[kept++] = seg;
  }
  return kept;
}

/* Turns phonemes into back-to-back segments covering [0, forever): gaps become rest,
 * neighbours with one shape merge (so two short phonemes of one shape can own a
 * frame together), then short segments are absorbed (absorb_short_segments).
 * `segments` holds 2 * phoneme_count + 1 entries. Returns how many were written. */
static size_t build_segments(const phoneme_t *phonemes, size_t phoneme_count, int fps,
                             segment_t *segments)
{
  size_t count = 0;
  int64_t covered_ms = 0;
  for (size_t i = 0; i < phoneme_count; i++) {
    int64_t start = phonemes[i].start_ms;
    int64_t end = start + phonemes[i].duration_ms;
    if (start < covered_ms)
      start = covered_ms;           /* overlapping timings: the earlier phoneme wins */
    if (end <= start)
      continue;
    if (start > covered_ms)
      count = append_segment(segments, count, covered_ms, start, VISEME_X);
    count = append_segment(segments, count, start, end, viseme_from_phoneme(phonemes[i].symbol));
    covered_ms = end;
  }
  count = append_segment(segments, count, covered_ms, INT64_MAX, VISEME_X);
  segments[count - 1].end_ms = INT64_MAX;
  return absorb_short_segments(segments, count, fps);
}

/* Half-width of the blend around the boundary between segments a and b: at most
 * half of either, so each segment still shows its own pure shape at its middle. */
static double blend_half_width(const segment_t *a, const segment_t *b)
{
  double width = BLEND_MAX_MS;
  double half_a = (double) (a->end_ms - a->start_ms) / 2.0;
  double half_b = (double) (b->end_ms - b->start_ms) / 2.0;
  if (half_a < width)
    width = half_a;
  if (half_b < width)
    width = half_b;
  return width;
}

/* The pose at `t_ms` inside segments[i]: pure in the middle, half-way to the
 * neighbour at each boundary, so poses are continuous across boundaries. */
static mouth_pose_t pose_at(const segment_t *segments, size_t count, size_t i, double t_ms)
{
  const segment_t *seg = &segments[i];
  mouth_pose_t pose = viseme_pose(seg->viseme);
  if (seg->viseme == VISEME_A)
    return pose;
  if (i > 0) {
    double half = blend_half_width(&segments[i - 1], seg);
    double into = t_ms - (double) seg->start_ms;
    if (half > 0.0 && into < half) {
      float w = smoothstep((float) (0.5 + 0.5 * into / half));
      return viseme_pose_mix(viseme_pose(segments[i - 1].viseme), pose, w);
    }
  }
  if (i + 1 < count) {
    double half = blend_half_width(seg, &segments[i + 1]);
    double left = (double) seg->end_ms - t_ms;
    if (half > 0.0 && left < half) {
      float w = smoothstep((float) (0.5 + 0.5 * left / half));
      return viseme_pose_mix(viseme_pose(segments[i + 1].viseme), pose, w);
    }
  }
  return pose;
}

int viseme_track_from_phonemes(const phoneme_t *phonemes, size_t phoneme_count, int fps,
                               size_t frame_count, viseme_t *shapes, mouth_pose_t *poses)
{
  segment_t *segments = calloc(2 * phoneme_count + 1, sizeof *segments);
  if (!segments)
    return -1;
  size_t count = build_segments(phonemes, phoneme_count, fps, segments);
  size_t i = 0;
  for (size_t n = 0; n < frame_count; n++) {
    /* Frame n is on screen during [n, n+1) * 1000/fps ms and shows the shape of its
     * middle instant, (2n+1) * 500/fps: a shape then appears at most half a frame
     * before or after its sound. Integer arithmetic keeps the test exact. */
    int64_t instant_scaled = (2 * (int64_t) n + 1) * 500;
    while (i + 1 < count && segments[i].end_ms * fps <= instant_scaled)
      i++;
    shapes[n] = segments[i].viseme;
    poses[n] = pose_at(segments, count, i, (double) instant_scaled / fps);
  }
  free(segments);
  return 0;
}
