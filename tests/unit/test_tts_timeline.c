/* Unit tests of tts_timeline: eSpeak's phoneme marks -> consistent timings. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tts_timeline.h"

#include <stdlib.h>
#include <string.h>

static void add_mark(tts_timeline_t *timeline, uint32_t start_ms, const char *symbol)
{
  assert_int_equal(tts_timeline_add(timeline, start_ms, symbol, strlen(symbol)), 0);
}

/* Sorted, non-overlapping, contiguous from 0 to the end: what the avatar relies on. */
static void assert_consistent(const phoneme_t *phonemes, size_t count, uint32_t duration_ms)
{
  uint32_t covered_ms = 0;
  for (size_t i = 0; i < count; i++) {
    assert_int_equal(phonemes[i].start_ms, covered_ms);
    assert_true(phonemes[i].duration_ms > 0);
    assert_true(phonemes[i].symbol[0] != '\0');
    covered_ms = phonemes[i].start_ms + phonemes[i].duration_ms;
  }
  assert_int_equal(covered_ms, duration_ms);
}

static void test_durations_come_from_next_mark(void **state)
{
  (void) state;
  tts_timeline_t timeline = { 0 };
  add_mark(&timeline, 0, "h");
  add_mark(&timeline, 60, "@");
  add_mark(&timeline, 110, "l");
  add_mark(&timeline, 180, "oU");
  phoneme_t *phonemes = NULL;
  size_t count = 0;
  assert_int_equal(tts_timeline_finish(&timeline, 400, &phonemes, &count), 0);
  assert_int_equal(count, 4);
  assert_string_equal(phonemes[0].symbol, "h");
  assert_int_equal(phonemes[0].duration_ms, 60);
  assert_string_equal(phonemes[3].symbol, "oU");
  assert_int_equal(phonemes[3].start_ms, 180);
  assert_int_equal(phonemes[3].duration_ms, 220);
  assert_consistent(phonemes, count, 400);
  free(phonemes);
  tts_timeline_release(&timeline);
}

static void test_pauses_are_normalised_and_merged(void **state)
{
  (void) state;
  tts_timeline_t timeline = { 0 };
  add_mark(&timeline, 20, "k");        /* speech starts late: leading pause */
  add_mark(&timeline, 80, "eI");
  add_mark(&timeline, 200, "_:");
  add_mark(&timeline, 350, "_|");
  add_mark(&timeline, 350, "_");       /* zero length: dropped */
  add_mark(&timeline, 360, "n");
  assert_true(tts_timeline_has_speech(&timeline));
  phoneme_t *phonemes = NULL;
  size_t count = 0;
  assert_int_equal(tts_timeline_finish(&timeline, 500, &phonemes, &count), 0);
  assert_int_equal(count, 5);
  assert_string_equal(phonemes[0].symbol, "_");
  assert_int_equal(phonemes[0].duration_ms, 20);
  assert_string_equal(phonemes[3].symbol, "_");
  assert_int_equal(phonemes[3].start_ms, 200);
  assert_int_equal(phonemes[3].duration_ms, 160);
  assert_string_equal(phonemes[4].symbol, "n");
  assert_consistent(phonemes, count, 500);
  free(phonemes);
  tts_timeline_release(&timeline);
}

static void test_disordered_marks_are_clamped(void **state)
{
  (void) state;
  tts_timeline_t timeline = { 0 };
  add_mark(&timeline, 0, "a");
  add_mark(&timeline, 300, "b");
  add_mark(&timeline, 100, "c");       /* goes back in time */
  add_mark(&timeline, 900, "d");       /* beyond the audio */
  phoneme_t *phonemes = NULL;
  size_t count = 0;
  assert_int_equal(tts_timeline_finish(&timeline, 500, &phonemes, &count), 0);
  assert_consistent(phonemes, count, 500);
  free(phonemes);
  tts_timeline_release(&timeline);
}

static void test_symbols_are_bounded(void **state)
{
  (void) state;
  tts_timeline_t timeline = { 0 };
  const char unterminated[8] = { 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h' };
  assert_int_equal(tts_timeline_add(&timeline, 0, unterminated, sizeof unterminated), 0);
  assert_int_equal(tts_timeline_add(&timeline, 10, "", 8), 0);   /* ignored */
  add_mark(&timeline, 20, "a-very-long-symbol-name");
  assert_int_equal(timeline.count, 2);
  assert_string_equal(timeline.marks[0].symbol, "abcdefgh");
  assert_int_equal(strlen(timeline.marks[1].symbol), sizeof timeline.marks[1].symbol - 1);
  tts_timeline_release(&timeline);
}

static void test_pauses_only_is_not_speech(void **state)
{
  (void) state;
  tts_timeline_t timeline = { 0 };
  phoneme_t *phonemes = NULL;
  size_t count = 1;
  assert_false(tts_timeline_has_speech(&timeline));
  assert_int_equal(tts_timeline_finish(&timeline, 100, &phonemes, &count), 0);
  assert_null(phonemes);
  assert_int_equal(count, 0);
  add_mark(&timeline, 0, "_:");
  add_mark(&timeline, 6, "_");
  assert_false(tts_timeline_has_speech(&timeline));
  tts_timeline_release(&timeline);
  tts_timeline_release(&timeline);     /* safe on a zeroed timeline */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_durations_come_from_next_mark),
    cmocka_unit_test(test_pauses_are_normalised_and_merged),
    cmocka_unit_test(test_disordered_marks_are_clamped),
    cmocka_unit_test(test_symbols_are_bounded),
    cmocka_unit_test(test_pauses_only_is_not_speech),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
