/* viseme: phoneme timings or audio loudness -> one mouth pose per video frame. */
#include "viseme.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Longest blend between two shapes on each side of a boundary: about what a
 * speaker's lips need to move, and a bit more than one frame at 25 fps. */
#define BLEND_MAX_MS 50.0

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

static mouth_pose_t pose_mix(mouth_pose_t a, mouth_pose_t b, float w)
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
  return (end_ms - start_ms) * fps < 1000;
}

/* Turns phonemes into back-to-back segments covering [0, forever): gaps become rest,
 * and anything shorter than a frame is absorbed by the segment before it. `segments`
 * holds 2 * phoneme_count + 1 entries. Returns how many were written. */
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
    if (start > covered_ms) {
      if (count > 0 && shorter_than_frame(covered_ms, start, fps))
        segments[count - 1].end_ms = start;
      else
        segments[count++] = (segment_t) { covered_ms, start, VISEME_X };
      covered_ms = start;
    }
    if (shorter_than_frame(start, end, fps)) {
      if (count > 0)
        segments[count - 1].end_ms = end;
      else
        segments[count++] = (segment_t) { start, end, VISEME_X };
    } else {
      segments[count++] = (segment_t) { start, end, viseme_from_phoneme(phonemes[i].symbol) };
    }
    covered_ms = end;
  }
  segments[count++] = (segment_t) { covered_ms, INT64_MAX, VISEME_X };
  return count;
}

/* Half-width of the blend around the boundary between segments a and b. */
static double blend_half_width(const segment_t *a, const segment_t *b)
{
  double width = BLEND_MAX_MS;
  double quarter_a = (double) (a->end_ms - a->start_ms) / 4.0;
  double quarter_b = (double) (b->end_ms - b->start_ms) / 4.0;
  if (quarter_a < width)
    width = quarter_a;
  if (quarter_b < width)
    width = quarter_b;
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
      return pose_mix(viseme_pose(segments[i - 1].viseme), pose, w);
    }
  }
  if (i + 1 < count) {
    double half = blend_half_width(seg, &segments[i + 1]);
    double left = (double) seg->end_ms - t_ms;
    if (half > 0.0 && left < half) {
      float w = smoothstep((float) (0.5 + 0.5 * left / half));
      return pose_mix(viseme_pose(segments[i + 1].viseme), pose, w);
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
    /* Integer test of start <= n*1000/fps < end keeps frame timing exact. */
    int64_t frame_scaled = (int64_t) n * 1000;
    while (i + 1 < count && segments[i].end_ms * fps <= frame_scaled)
      i++;
    shapes[n] = segments[i].viseme;
    poses[n] = pose_at(segments, count, i, (double) frame_scaled / fps);
  }
  free(segments);
  return 0;
}

/* Loudness in dBFS of pcm samples [from, to). */
static double level_db(const pcm_t *pcm, size_t from, size_t to)
{
  if (to <= from)
    return -120.0;
  double sum = 0.0;
  for (size_t k = from; k < to; k++)
    sum += (double) pcm->samples[k] * pcm->samples[k];
  double rms = sqrt(sum / (double) (to - from)) / 32768.0;
  return rms > 1e-6 ? 20.0 * log10(rms) : -120.0;
}

/* Openness in [0, 1] -> a shape and a pose on the rest..wide-open scale. */
static void pose_for_openness(float openness, viseme_t *shape, mouth_pose_t *pose)
{
  static const viseme_t ladder[] = { VISEME_X, VISEME_B, VISEME_C, VISEME_D };
  static const float steps[] = { 0.0f, 0.3f, 0.6f, 1.0f };
  size_t k = 0;
  while (k + 2 < sizeof steps / sizeof steps[0] && openness > steps[k + 1])
    k++;
  float w = (openness - steps[k]) / (steps[k + 1] - steps[k]);
  *pose = pose_mix(viseme_pose(ladder[k]), viseme_pose(ladder[k + 1]), smoothstep(w));
  *shape = openness < 0.08f ? VISEME_X : w < 0.5f ? ladder[k] : ladder[k + 1];
}

/* Speech peaks sit around -15 dBFS and breath/room noise below -50 dBFS. */
#define QUIET_DB (-50.0)
#define LOUD_DB (-15.0)
/* Lips open faster than they close, as in speech. */
#define ATTACK 0.7f
#define RELEASE 0.35f

void viseme_track_from_audio(const pcm_t *pcm, int fps, size_t frame_count,
                             viseme_t *shapes, mouth_pose_t *poses)
{
  float smoothed = 0.0f;
  size_t rate = pcm->sample_rate > 0 ? (size_t) pcm->sample_rate : 1;
  size_t half_window = rate / (2 * (size_t) fps);
  for (size_t n = 0; n < frame_count; n++) {
    size_t centre = n * rate / (size_t) fps;
    size_t from = centre > half_window ? centre - half_window : 0;
    size_t to = centre + half_window < pcm->count ? centre + half_window : pcm->count;
    float level = (float) ((level_db(pcm, from, to) - QUIET_DB) / (LOUD_DB - QUIET_DB));
    level = level < 0.0f ? 0.0f : level > 1.0f ? 1.0f : level;
    smoothed += (level > smoothed ? ATTACK : RELEASE) * (level - smoothed);
    pose_for_openness(smoothed, &shapes[n], &poses[n]);
  }
}
