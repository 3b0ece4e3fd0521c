/* conditioning: level, offset and silence of an upload (see conditioning.h). */
#include "conditioning.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum {
  FRAME_MS = 10,
  MARGIN_MS = 250,              /* kept around the speech: onsets and final stops */
  MIN_MS = 100
};

/* Speech is a frame this far above the noise floor, or within 35 dB of the loudest. */
#define ABOVE_FLOOR 6.0         /* power ratio, ~8 dB */
#define BELOW_PEAK 3.2e-4       /* power ratio, -35 dB */
#define TARGET_PEAK 16384.0     /* -6 dBFS */
#define MAX_GAIN 31.6           /* +30 dB */
/* RMS of the noise floor added after normalisation: -44 dB under the -6 dBFS peak. */
#define NOISE_FLOOR_RMS 100.0
#define NOISE_FLOOR_SEED 0x2545F4914F6CDD1DULL

static int compare_doubles(const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* Mean power of each FRAME_MS frame, into a malloc'd array (NULL when out of memory). */
static double *frame_powers(const pcm_t *pcm, size_t frame, size_t frames)
{
  double *power = malloc(frames * sizeof *power);
  for (size_t f = 0; power && f < frames; f++) {
    double sum = 0.0;
    for (size_t i = f * frame; i < (f + 1) * frame; i++)
      sum += (double) pcm->samples[i] * pcm->samples[i];
    power[f] = sum / (double) frame;
  }
  return power;
}

static void remove_offset(pcm_t *pcm)
{
  double sum = 0.0;
  for (size_t i = 0; i < pcm->count; i++)
    sum += pcm->samples[i];
  long offset = lround(sum / (double) pcm->count);
  if (!offset)
    return;
  for (size_t i = 0; i < pcm->count; i++) {
    long value = pcm->samples[i] - offset;
    pcm->samples[i] = (int16_t) (value > 32767 ? 32767 : value < -32768 ? -32768 : value);
  }
}

/* Keeps [first speech frame - margin, last speech frame + margin]. */
static void trim_silence(pcm_t *pcm, const double *power, size_t frame, size_t frames)
{
  double *sorted = malloc(frames * sizeof *sorted);
  if (!sorted)
    return;
  memcpy(sorted, power, frames * sizeof *sorted);
  qsort(sorted, frames, sizeof *sorted, compare_doubles);
  double floor_power = sorted[frames / 10], peak = sorted[frames - 1];
  free(sorted);
  double threshold = floor_power * ABOVE_FLOOR;
  if (threshold < peak * BELOW_PEAK)
    threshold = peak * BELOW_PEAK;
  size_t first = 0, last = frames;
  while (first < frames && power[first] < threshold)
    first++;
  while (last > first && power[last - 1] < threshold)
    last--;
  if (first >= last)
    return;                     /* no frame stands out: leave it to the decoder */
  size_t margin = MARGIN_MS / FRAME_MS;
  size_t start = (first > margin ? first - margin : 0) * frame;
  size_t end = (last + margin < frames ? last + margin : frames) * frame;
  if (end > pcm->count || last + margin >= frames)
    end = pcm->count;
  memmove(pcm->samples, pcm->samples + start, (end - start) * sizeof *pcm->samples);
  pcm->count = end - start;
}

static void normalize_level(pcm_t *pcm)
{
  /* The 99.9th percentile of |sample|, not the maximum: one click must not set the gain. */
  size_t histogram[32769] = {0};
  for (size_t i = 0; i < pcm->count; i++)
    histogram[abs((int) pcm->samples[i])]++;
  size_t wanted = pcm->count - pcm->count / 1000, seen = 0;
  int peak = 0;
  while (peak < 32768 && (seen += histogram[peak]) < wanted)
    peak++;
  if (peak <= 0)
    return;
  double gain = TARGET_PEAK / (double) peak;
  if (gain > MAX_GAIN)
    gain = MAX_GAIN;
  for (size_t i = 0; i < pcm->count; i++) {
    double value = pcm->samples[i] * gain;
    pcm->samples[i] = (int16_t) (value > 32767 ? 32767 : value < -32768 ? -32768 : value);
  }
}

/* Adds a faint pink-noise floor. The acoustic model was trained on recordings, which
 * always have one; synthetic or heavily gated speech with digitally silent gaps has a
 * dynamic range it never saw, and its spectral noise estimate and cepstral mean go
 * wrong (on the eval's clean eSpeak voices the floor cut the WER from 53% to 40%,
 * docs/performance.md). A real microphone's own noise is usually above this floor, so
 * it changes little there. Seeded: the same upload always gives the same transcript.
 * Pink noise is Paul Kellet's economy filter over a linear congruential white source. */
static void add_noise_floor(int16_t *samples, size_t count)
{
  uint64_t state = NOISE_FLOOR_SEED;
  double b0 = 0.0, b1 = 0.0, b2 = 0.0;
  for (size_t i = 0; i < count; i++) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    /* uniform in [-1, 1) times sqrt(3): unit RMS */
    double white = ((double) (state >> 11) / (double) (1ULL << 53) * 2.0 - 1.0) * 1.732;
    b0 = 0.99765 * b0 + white * 0.0990460;
    b1 = 0.96300 * b1 + white * 0.2965164;
    b2 = 0.57000 * b2 + white * 1.0526913;
    double pink = (b0 + b1 + b2 + white * 0.1848) / 3.0;    /* about unit RMS */
    double value = samples[i] + NOISE_FLOOR_RMS * pink;
    samples[i] = (int16_t) (value > 32767 ? 32767 : value < -32768 ? -32768 : value);
  }
}

void stt_noise_floor(int16_t *samples, size_t count)
{
  memset(samples, 0, count * sizeof *samples);
  add_noise_floor(samples, count);
}

void stt_condition(pcm_t *pcm)
{
  size_t frame = (size_t) pcm->sample_rate * FRAME_MS / 1000;
  if (!frame || pcm_duration_ms(pcm) < MIN_MS)
    return;
  remove_offset(pcm);
  size_t frames = pcm->count / frame;
  double *power = frame_powers(pcm, frame, frames);
  if (power)
    trim_silence(pcm, power, frame, frames);
  free(power);
  normalize_level(pcm);
  add_noise_floor(pcm->samples, pcm->count);
}
