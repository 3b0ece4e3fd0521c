/* expression: questions in the text -> brow lifts timed to the speech. */
#include "expression.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

/* A rest this long inside speech is a pause between sentences, not a closure. */
#define PAUSE_MS 200
/* A sentence boundary moves to a pause at most this far from where the letters put it. */
#define SNAP_MS 1500
/* The lift starts this far into a question, is full this far in, and after its end
 * holds, then settles. */
#define LIFT_FROM 0.25
#define LIFT_FULL 0.65
#define HOLD_MS 300.0
#define SETTLE_MS 400.0

typedef struct {
  size_t letters;
  int question;
} sentence_t;

static int ends_sentence_here(const char *after)
{
  return !*after || isspace((unsigned char) *after) || strchr("\"')", *after);
}

/* Splits `text` into sentences; returns how many (at least 1 when it has letters). */
static size_t split_sentences(const char *text, sentence_t *sentences)
{
  size_t count = 0;
  sentence_t current = { 0 };
  for (size_t i = 0; text[i];) {
    unsigned char c = (unsigned char) text[i];
    if (!strchr(".!?", c)) {
      current.letters += isalnum(c) || c >= 0x80;
      i++;
      continue;
    }
    int question = 0;
    while (text[i] && strchr(".!?", text[i]))
      question |= text[i++] == '?';
    /* "9.5" or "e.g.x" do not end a sentence; the last slot takes all the rest. */
    if (!ends_sentence_here(text + i) || current.letters == 0)
      continue;
    current.question = question;
    if (count + 1 < EXPRESSION_MAX_SENTENCES) {
      sentences[count++] = current;
      current = (sentence_t) { 0 };
    }
  }
  if (current.letters > 0)
    sentences[count++] = current;
  return count;
}

static double smoothstep(double x)
{
  x = x < 0.0 ? 0.0 : x > 1.0 ? 1.0 : x;
  return x * x * (3.0 - 2.0 * x);
}

/* The middle frames of the pauses inside [first, last]; returns how many. */
static size_t find_pauses(const viseme_t *shapes, size_t first, size_t last, int fps,
                          double *middles)
{
  size_t count = 0;
  size_t min_frames = ((size_t) PAUSE_MS * (size_t) fps + 999) / 1000;
  for (size_t n = first; n <= last && count < EXPRESSION_MAX_SENTENCES;) {
    if (shapes[n] != VISEME_X) {
      n++;
      continue;
    }
    size_t start = n;
    while (n <= last && shapes[n] == VISEME_X)
      n++;
    if (n - start >= min_frames)
      middles[count++] = (double) (start + n) / 2.0;
  }
  return count;
}

/* Where sentence k ends, in frames: its letters' share of the speech, moved to the
 * nearest unused pause after the previous boundary if one is close enough. */
static double sentence_end(double estimate, double previous, const double *pauses, size_t pause_count,
                           int *used, int fps)
{
  double snap_frames = SNAP_MS * fps / 1000.0;
  size_t best = pause_count;
  for (size_t p = 0; p < pause_count; p++) {
    if (used[p] || pauses[p] <= previous || fabs(pauses[p] - estimate) > snap_frames)
      continue;
    if (best == pause_count || fabs(pauses[p] - estimate) < fabs(pauses[best] - estimate))
      best = p;
  }
  if (best == pause_count)
    return estimate > previous ? estimate : previous;
  used[best] = 1;
  return pauses[best];
}

static void lift_question(double start, double end, int fps, size_t frame_count, float *brows)
{
  double length = end - start;
  double hold = HOLD_MS * fps / 1000.0, settle = SETTLE_MS * fps / 1000.0;
  for (size_t n = 0; n < frame_count; n++) {
    double t = (double) n;
    double rise = smoothstep((t - start - LIFT_FROM * length) / ((LIFT_FULL - LIFT_FROM) * length + 1.0));
    double fall = 1.0 - smoothstep((t - end - hold) / settle);
    float lift = (float) (rise * fall);
    if (lift > brows[n])
      brows[n] = lift;
  }
}

void expression_brow_track(const char *text, const viseme_t *shapes, size_t frame_count, int fps,
                           float *brows)
{
  memset(brows, 0, frame_count * sizeof *brows);
  if (!text || !*text || frame_count == 0 || fps <= 0)
    return;
  sentence_t sentences[EXPRESSION_MAX_SENTENCES];
  size_t sentence_count = split_sentences(text, sentences);
  size_t total_letters = 0;
  int any_question = 0;
  for (size_t k = 0; k < sentence_count; k++) {
    total_letters += sentences[k].letters;
    any_question |= sentences[k].question;
  }
  if (!any_question)
    return;

  size_t first = 0, last = frame_count - 1;
  while (first < frame_count && shapes[first] == VISEME_X)
    first++;
  if (first == frame_count)
    return;                      /* nothing is said */
  while (last > first && shapes[last] == VISEME_X)
    last--;
  double pauses[EXPRESSION_MAX_SENTENCES];
  int used[EXPRESSION_MAX_SENTENCES] = { 0 };
  size_t pause_count = find_pauses(shapes, first, last, fps, pauses);

  double start = (double) first;
  size_t letters_so_far = 0;
  for (size_t k = 0; k < sentence_count; k++) {
    letters_so_far += sentences[k].letters;
    double estimate = (double) first + (double) (last + 1 - first) * (double) letters_so_far / (double) total_letters;
    double end = k + 1 == sentence_count ? (double) last + 1.0
                                         : sentence_end(estimate, start, pauses, pause_count, used, fps);
    if (sentences[k].question)
      lift_question(start, end, fps, frame_count, brows);
    start = end;
  }
}
