/* audio_sync: per-frame speech features (loudness, brightness, low-frequency share,
 * formants by linear prediction) -> mouth shapes, for speech without timings. */
#include "audio_sync.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Formants are looked for in speech low-passed to about 10-16 kHz sampling, where
 * 12 prediction coefficients model the vocal tract's first four resonances. */
#define LPC_ORDER 12
#define LPC_TARGET_RATE 10000
#define ENVELOPE_STEP_HZ 25.0
#define ENVELOPE_TOP_HZ 3500.0
/* At most this many samples of a frame's slice are analysed (one second at 48 kHz). */
#define MAX_SLICE 48000

/* Thresholds, in the units of audio_frame_features_t, tuned on eSpeak speech against
 * its own phoneme timings (bench/avatar_lipsync, docs/performance.md). */
#define SILENT_DB (-32.0)        /* below the loud level: the mouth rests */
#define HISS_HZ 2500.0           /* brighter than this: a fricative, teeth together */
#define WEAK_HISS_DB (-18.0)     /* a quiet fricative is f, v or th: lower lip to teeth */
#define MURMUR_F1_HZ 225.0       /* a low hum with no higher resonance ... */
#define MURMUR_DB (-8.0)         /* ... well below the vowels ... */
#define MURMUR_HISS_HZ 900.0     /* ... and dull: m (or the voice bar of b), lips closed */
#define OPEN_F1_HZ 600.0         /* "aa": jaw wide open */
#define MID_F1_HZ 450.0          /* "eh", "ae", "o" */
#define BACK_F2_HZ 1300.0        /* below this the lips round */
#define FRONT_F2_HZ 1650.0       /* above this they spread ("ee") */
#define LOUD_DB (-6.0)           /* an unclear sound this loud is a vowel */
/* Loudness that opens the mouth fully, and the least opening of a spoken shape. */
#define FULL_OPEN_DB (-10.0)
#define MIN_OPEN_SCALE 0.35f

static double energy(const double *x, size_t count)
{
  double sum = 0.0;
  for (size_t k = 0; k < count; k++)
    sum += x[k] * x[k];
  return sum;
}

static double level_dbfs(const int16_t *samples, size_t count)
{
  if (count == 0)
    return -120.0;
  double sum = 0.0;
  for (size_t k = 0; k < count; k++)
    sum += (double) samples[k] * samples[k];
  double rms = sqrt(sum / (double) count) / 32768.0;
  return rms > 1e-6 ? 20.0 * log10(rms) : -120.0;
}

/* The slice of samples frame n covers. */
static void frame_slice(const pcm_t *pcm, int fps, size_t n, size_t *from, size_t *to)
{
  size_t rate = pcm->sample_rate > 0 ? (size_t) pcm->sample_rate : 1;
  *from = n * rate / (size_t) fps;
  *to = (n + 1) * rate / (size_t) fps;
  if (*from > pcm->count)
    *from = pcm->count;
  if (*to > pcm->count)
    *to = pcm->count;
  if (*to - *from > MAX_SLICE)
    *to = *from + MAX_SLICE;
}

/* The frequency of the sine whose first difference has the same share of energy as
 * `x`'s: a brightness measure that does not depend on the sample rate. */
static double brightness_hz(const double *x, size_t count, double rate)
{
  double total = energy(x, count), diff = 0.0;
  for (size_t k = 1; k < count; k++)
    diff += (x[k] - x[k - 1]) * (x[k] - x[k - 1]);
  if (total <= 0.0)
    return 0.0;
  double half_ratio = sqrt(diff / total) / 2.0;
  return rate / M_PI * asin(half_ratio > 1.0 ? 1.0 : half_ratio);
}

/* Levinson-Durbin: prediction coefficients a[1..order] (a[0] = 1) from the
 * autocorrelation r[0..order]. Returns -1 when the signal is too flat to model. */
static int levinson(const double *r, double *a, int order)
{
  double error = r[0];
  double previous[LPC_ORDER + 1];
  if (error <= 0.0)
    return -1;
  memset(a, 0, sizeof(double) * (size_t) (order + 1));
  a[0] = 1.0;
  for (int i = 1; i <= order; i++) {
    double acc = r[i];
    for (int j = 1; j < i; j++)
      acc += a[j] * r[i - j];
    double k = -acc / error;
    memcpy(previous, a, sizeof(double) * (size_t) (i + 1));
    for (int j = 1; j < i; j++)
      a[j] = previous[j] + k * previous[i - j];
    a[i] = k;
    error *= 1.0 - k * k;
    if (error <= 0.0)
      return -1;
  }
  return 0;
}

/* F1 and F2: the first two peaks of the prediction's spectral envelope above 200 Hz.
 * Works in place: `x` is pre-emphasised and windowed. */
static void find_formants(double *x, size_t count, double rate, double *f1, double *f2)
{
  *f1 = *f2 = 0.0;
  if (count <= LPC_ORDER * 2)
    return;
  /* Pre-emphasis flattens the voice's downward tilt so the upper formants show;
   * backwards, so each step still sees the original previous sample. */
  for (size_t k = count; k-- > 1;)
    x[k] -= 0.9 * x[k - 1];
  for (size_t k = 0; k < count; k++)
    x[k] *= 0.54 - 0.46 * cos(2.0 * M_PI * (double) k / (double) (count - 1));
  const double *windowed = x;
  double r[LPC_ORDER + 1], a[LPC_ORDER + 1];
  for (int lag = 0; lag <= LPC_ORDER; lag++) {
    r[lag] = 0.0;
    for (size_t k = (size_t) lag; k < count; k++)
      r[lag] += windowed[k] * windowed[k - (size_t) lag];
  }
  r[0] *= 1.0 + 1e-9;   /* a whisper of white noise keeps the recursion stable */
  if (levinson(r, a, LPC_ORDER) < 0)
    return;
  double top = fmin(ENVELOPE_TOP_HZ, rate / 2.0 - 100.0);
  double before = 0.0, current = 0.0;
  for (double hz = 150.0; hz <= top; hz += ENVELOPE_STEP_HZ) {
    double re = 0.0, im = 0.0, w = 2.0 * M_PI * hz / rate;
    for (int j = 0; j <= LPC_ORDER; j++) {
      re += a[j] * cos(w * j);
      im -= a[j] * sin(w * j);
    }
    double envelope = 1.0 / (re * re + im * im + 1e-30);
    double peak_hz = hz - ENVELOPE_STEP_HZ;
    if (hz > 150.0 + ENVELOPE_STEP_HZ && current > before && current >= envelope && peak_hz >= 200.0) {
      if (*f1 == 0.0 && peak_hz <= 1100.0)
        *f1 = peak_hz;
      else if (*f1 > 0.0 && peak_hz >= *f1 + 150.0 && peak_hz <= 3000.0) {
        *f2 = peak_hz;
        return;
      }
    }
    before = current;
    current = envelope;
  }
}

audio_frame_features_t audio_sync_measure(const pcm_t *pcm, int fps, size_t n, double loud_db)
{
  audio_frame_features_t f = { .level_db = -120.0 - loud_db };
  size_t from, to;
  frame_slice(pcm, fps, n, &from, &to);
  if (to - from < 2 * LPC_ORDER || !pcm->samples)
    return f;
  f.level_db = level_dbfs(pcm->samples + from, to - from) - loud_db;

  double *x = malloc(sizeof(double) * (to - from));
  if (!x)
    return f;
  double rate = (double) pcm->sample_rate;
  for (size_t k = from; k < to; k++)
    x[k - from] = pcm->samples[k] / 32768.0;
  f.hiss = brightness_hz(x, to - from, rate);

  /* Average groups of `step` samples: a crude low-pass that brings the rate near
   * LPC_TARGET_RATE, where the prediction order fits. */
  size_t step = (size_t) (rate / LPC_TARGET_RATE);
  step = step < 1 ? 1 : step;
  size_t reduced = (to - from) / step;
  for (size_t k = 0; k < reduced; k++) {
    double sum = 0.0;
    for (size_t j = 0; j < step; j++)
      sum += x[k * step + j];
    x[k] = sum / (double) step;
  }
  find_formants(x, reduced, rate / (double) step, &f.f1_hz, &f.f2_hz);
  free(x);
  return f;
}

double audio_sync_loud_level(const pcm_t *pcm, int fps, size_t frame_count)
{
  /* A histogram in half-dB steps from -120 to 0 dBFS instead of a sort: no memory. */
  enum { BINS = 240 };
  size_t histogram[BINS] = { 0 };
  size_t counted = 0;
  for (size_t n = 0; n < frame_count; n++) {
    size_t from, to;
    frame_slice(pcm, fps, n, &from, &to);
    if (!pcm->samples || to == from)
      continue;
    double db = level_dbfs(pcm->samples + from, to - from);
    if (db < -70.0)       /* silence says nothing about how loud the voice is */
      continue;
    int bin = (int) ((db + 120.0) * 2.0);
    histogram[bin < 0 ? 0 : bin >= BINS ? BINS - 1 : bin]++;
    counted++;
  }
  if (counted == 0)
    return -20.0;
  size_t above = 0;
  for (int bin = BINS - 1; bin >= 0; bin--) {
    above += histogram[bin];
    if (above * 10 >= counted)
      return bin / 2.0 - 120.0;
  }
  return -20.0;
}

viseme_t audio_sync_shape(const audio_frame_features_t *f)
{
  if (f->level_db < SILENT_DB)
    return VISEME_X;
  if (f->hiss > HISS_HZ)
    return f->level_db < WEAK_HISS_DB ? VISEME_G : VISEME_B;
  if (f->f1_hz > 0.0 && f->f1_hz <= MURMUR_F1_HZ && f->level_db < MURMUR_DB && f->hiss < MURMUR_HISS_HZ)
    return VISEME_A;
  if (f->f1_hz <= 0.0)
    return f->level_db > LOUD_DB ? VISEME_C : VISEME_B;
  if (f->f1_hz >= OPEN_F1_HZ)
    return VISEME_D;
  if (f->f1_hz >= MID_F1_HZ)
    return f->f2_hz > 0.0 && f->f2_hz < BACK_F2_HZ ? VISEME_E : VISEME_C;
  if (f->f2_hz >= FRONT_F2_HZ)
    return VISEME_B;
  if (f->f2_hz > 0.0 && f->f2_hz < BACK_F2_HZ)
    return VISEME_F;
  return f->level_db > LOUD_DB ? VISEME_C : VISEME_B;
}

/* The shape's pose, its opening scaled by how loud the frame is. */
static mouth_pose_t scaled_pose(viseme_t shape, double level_db)
{
  mouth_pose_t pose = viseme_pose(shape);
  if (shape == VISEME_X || shape == VISEME_A)
    return pose;
  float scale = (float) ((level_db - SILENT_DB) / (FULL_OPEN_DB - SILENT_DB));
  scale = scale < MIN_OPEN_SCALE ? MIN_OPEN_SCALE : scale > 1.0f ? 1.0f : scale;
  pose.open *= scale;
  return pose;
}

int viseme_track_from_audio(const pcm_t *pcm, int fps, size_t frame_count, viseme_t *shapes,
                            mouth_pose_t *poses)
{
  if (frame_count == 0)
    return 0;
  mouth_pose_t *targets = calloc(frame_count, sizeof *targets);
  if (!targets)
    return -1;
  double loud_db = audio_sync_loud_level(pcm, fps, frame_count);
  for (size_t n = 0; n < frame_count; n++) {
    audio_frame_features_t f = audio_sync_measure(pcm, fps, n, loud_db);
    shapes[n] = audio_sync_shape(&f);
    targets[n] = scaled_pose(shapes[n], f.level_db);
  }
  /* A shape that differs for one frame from two equal neighbours is noise in the
   * features, not speech -- except a closure, which really can be that short. */
  for (size_t n = 1; n + 1 < frame_count; n++) {
    if (shapes[n - 1] == shapes[n + 1] && shapes[n] != shapes[n - 1] && shapes[n] != VISEME_A) {
      shapes[n] = shapes[n - 1];
      targets[n] = targets[n - 1];
    }
  }
  /* Lips move on the way to and from each shape: each pose leans a little toward
   * its neighbours, except closures, which are held so the lips visibly meet. */
  for (size_t n = 0; n < frame_count; n++) {
    if (shapes[n] == VISEME_A) {
      poses[n] = targets[n];
      continue;
    }
    mouth_pose_t prev = targets[n > 0 ? n - 1 : n];
    mouth_pose_t next = targets[n + 1 < frame_count ? n + 1 : n];
    poses[n] = viseme_pose_mix(targets[n], viseme_pose_mix(prev, next, 0.5f), 0.4f);
  }
  free(targets);
  return 0;
}
