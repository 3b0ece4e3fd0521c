/* tts_timeline: phoneme start marks -> consistent phoneme timings (see tts_timeline.h). */
#include "tts_timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAUSE_SYMBOL "_"

static bool symbol_is_pause(const char *symbol)
{
  return symbol[0] == '_';
}

static int timeline_reserve(tts_timeline_t *timeline, size_t wanted)
{
  if (wanted <= timeline->capacity)
    return 0;
  size_t capacity = timeline->capacity ? timeline->capacity : 64;
  while (capacity < wanted) {
    if (capacity > SIZE_MAX / 2 / sizeof(phoneme_t))
      return -1;
    capacity *= 2;
  }
  phoneme_t *marks = realloc(timeline->marks, capacity * sizeof *marks);
  if (!marks)
    return -1;
  timeline->marks = marks;
  timeline->capacity = capacity;
  return 0;
}

int tts_timeline_add(tts_timeline_t *timeline, uint32_t start_ms, const char *symbol,
                     size_t symbol_len)
{
  symbol_len = strnlen(symbol, symbol_len);
  if (symbol_len == 0)
    return 0;
  if (timeline_reserve(timeline, timeline->count + 1) != 0)
    return -1;
  phoneme_t *mark = &timeline->marks[timeline->count];
  memset(mark, 0, sizeof *mark);
  /* Pauses come in several flavours ("_:", "_!", "_|"); the avatar only needs one. */
  const char *source = symbol_is_pause(symbol) ? PAUSE_SYMBOL : symbol;
  size_t length = symbol_is_pause(symbol) ? strlen(PAUSE_SYMBOL) : symbol_len;
  if (length > sizeof mark->symbol - 1)
    length = sizeof mark->symbol - 1;
  memcpy(mark->symbol, source, length);
  mark->start_ms = start_ms;
  timeline->count++;
  return 0;
}

bool tts_timeline_has_speech(const tts_timeline_t *timeline)
{
  for (size_t i = 0; i < timeline->count; i++)
    if (!symbol_is_pause(timeline->marks[i].symbol))
      return true;
  return false;
}

/* Appends [start_ms, end_ms) as `symbol`, or lengthens the previous entry when both
 * are pauses, so silence is one span however eSpeak chopped it up. */
static void emit(phoneme_t *out, size_t *count, const char *symbol, uint32_t start_ms,
                 uint32_t end_ms)
{
  if (*count > 0 && symbol_is_pause(symbol) && symbol_is_pause(out[*count - 1].symbol)) {
    out[*count - 1].duration_ms = end_ms - out[*count - 1].start_ms;
    return;
  }
  phoneme_t *entry = &out[(*count)++];
  memset(entry, 0, sizeof *entry);
  snprintf(entry->symbol, sizeof entry->symbol, "%s", symbol);
  entry->start_ms = start_ms;
  entry->duration_ms = end_ms - start_ms;
}

static uint32_t clamp_ms(uint32_t value, uint32_t low, uint32_t high)
{
  return value < low ? low : value > high ? high : value;
}

int tts_timeline_finish(const tts_timeline_t *timeline, uint32_t duration_ms,
                        phoneme_t **out, size_t *out_count)
{
  *out = NULL;
  *out_count = 0;
  if (timeline->count == 0)
    return 0;
  /* Each mark can add a pause before itself, plus one trailing pause. */
  if (timeline->count > (SIZE_MAX / sizeof(phoneme_t) - 1) / 2)
    return -1;
  phoneme_t *phonemes = malloc((2 * timeline->count + 1) * sizeof *phonemes);
  if (!phonemes)
    return -1;
  size_t count = 0;
  uint32_t covered_ms = 0;   /* end of the last entry written */
  for (size_t i = 0; i < timeline->count; i++) {
    const phoneme_t *mark = &timeline->marks[i];
    uint32_t start_ms = clamp_ms(mark->start_ms, covered_ms, duration_ms);
    uint32_t next_ms = i + 1 < timeline->count ? timeline->marks[i + 1].start_ms : duration_ms;
    uint32_t end_ms = clamp_ms(next_ms, start_ms, duration_ms);
    if (end_ms == start_ms)
      continue;
    if (start_ms > covered_ms)
      emit(phonemes, &count, PAUSE_SYMBOL, covered_ms, start_ms);
    emit(phonemes, &count, mark->symbol, start_ms, end_ms);
    covered_ms = end_ms;
  }
  if (count > 0 && covered_ms < duration_ms)
    emit(phonemes, &count, PAUSE_SYMBOL, covered_ms, duration_ms);
  if (count == 0) {
    free(phonemes);
    return 0;
  }
  *out = phonemes;
  *out_count = count;
  return 0;
}

void tts_timeline_release(tts_timeline_t *timeline)
{
  if (!timeline)
    return;
  free(timeline->marks);
  memset(timeline, 0, sizeof *timeline);
}
