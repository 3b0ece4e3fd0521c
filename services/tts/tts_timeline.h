/* tts_timeline: turns the phoneme start marks a synthesizer reports while it speaks
 * into phoneme timings for lip sync: sorted, contiguous from 0 to the end of the
 * audio, with every kind of silence written as the pause symbol "_". */
#ifndef TTS_TIMELINE_H
#define TTS_TIMELINE_H

#include "speech.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Marks in the order the synthesizer reported them; `duration_ms` of a mark is unused. */
typedef struct {
  phoneme_t *marks;   /* malloc'd, owned */
  size_t count;
  size_t capacity;
} tts_timeline_t;

/* Records that phoneme `symbol` (the first `symbol_len` bytes, need not be
 * NUL-terminated) starts at `start_ms`. Symbols starting with '_' are pauses; an
 * empty symbol is not a phoneme and is ignored. Symbols are cut to fit phoneme_t.
 * Returns 0, or -1 when out of memory (the timeline is unchanged). */
int tts_timeline_add(tts_timeline_t *timeline, uint32_t start_ms, const char *symbol,
                     size_t symbol_len);

/* true when at least one recorded mark is not a pause. */
bool tts_timeline_has_speech(const tts_timeline_t *timeline);

/* Builds the timings of audio lasting `duration_ms`: each phoneme lasts until the
 * next mark starts, the last one until the end of the audio; time before the first
 * mark becomes a pause; marks that last no time are dropped; out-of-order or
 * out-of-range marks are clamped so the result is always sorted, non-overlapping and
 * within [0, duration_ms]; neighbouring pauses are merged.
 * Returns 0 with a malloc'd array in *out (caller frees; NULL when there are no
 * phonemes) and its length in *out_count, or -1 when out of memory. */
int tts_timeline_finish(const tts_timeline_t *timeline, uint32_t duration_ms,
                        phoneme_t **out, size_t *out_count);

/* Frees the marks and zeroes the timeline; safe on a zeroed one. */
void tts_timeline_release(tts_timeline_t *timeline);

#endif
