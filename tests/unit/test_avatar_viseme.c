/* Unit tests of the avatar's mouth track (phonemes and audio -> mouth poses) and its
 * idle motion (blinks). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "motion.h"
#include "viseme.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FPS 25

static phoneme_t phoneme(const char *symbol, uint32_t start_ms, uint32_t duration_ms)
{
  phoneme_t p = { .start_ms = start_ms, .duration_ms = duration_ms };
  snprintf(p.symbol, sizeof p.symbol, "%s", symbol);
  return p;
}

static void test_bilabials_close_the_lips(void **state)
{
  (void) state;
  const char *closed[] = { "p", "b", "m", "'m" };
  for (size_t i = 0; i < sizeof closed / sizeof closed[0]; i++) {
    viseme_t v = viseme_from_phoneme(closed[i]);
    assert_int_equal(v, VISEME_A);
    assert_true(viseme_pose(v).open < 0.01f);
    assert_true(viseme_pose(v).press > 0.9f);
  }
}

static void test_vowels_and_consonants_map_to_their_shapes(void **state)
{
  (void) state;
  assert_true(viseme_pose(viseme_from_phoneme("a")).open >= 0.8f);
  assert_true(viseme_pose(viseme_from_phoneme("aI")).open >= 0.8f);
  assert_true(viseme_pose(viseme_from_phoneme("'A:")).open >= 0.8f);
  assert_int_equal(viseme_from_phoneme("f"), VISEME_G);
  assert_int_equal(viseme_from_phoneme("v"), VISEME_G);
  assert_true(viseme_pose(VISEME_G).lip_bite > 0.9f);
  assert_true(viseme_pose(viseme_from_phoneme("i:")).wide >= 0.5f);
  assert_true(viseme_pose(viseme_from_phoneme("E")).wide >= 0.5f);
  assert_true(viseme_pose(viseme_from_phoneme("u:")).round >= 0.9f);
  assert_true(viseme_pose(viseme_from_phoneme("w")).round >= 0.9f);
  assert_true(viseme_pose(viseme_from_phoneme("O:")).round >= 0.5f);
  assert_int_equal(viseme_from_phoneme("T"), VISEME_H);
  assert_int_equal(viseme_from_phoneme("l"), VISEME_H);
  assert_int_equal(viseme_from_phoneme("tS"), VISEME_B);
  assert_int_equal(viseme_from_phoneme("s"), VISEME_B);
  assert_int_equal(viseme_from_phoneme("_"), VISEME_X);
  assert_int_equal(viseme_from_phoneme(""), VISEME_X);
  assert_int_equal(viseme_from_phoneme(NULL), VISEME_X);
}

static void test_unknown_symbol_is_neutral(void **state)
{
  (void) state;
  viseme_t v = viseme_from_phoneme("#Q!");
  assert_int_equal(v, VISEME_B);
  mouth_pose_t pose = viseme_pose(v);
  assert_true(pose.open > 0.0f && pose.open < 0.3f);
  assert_true(pose.round < 0.01f && pose.lip_bite < 0.01f);
  assert_string_equal(viseme_name(v), "B");
}

static void test_frame_timing_is_exact(void **state)
{
  (void) state;
  /* At 25 fps frames fall on 0, 40, 80, 120 ... ms; boundaries exactly on a frame
   * belong to the phoneme starting there. */
  phoneme_t ph[] = { phoneme("p", 0, 80), phoneme("a", 80, 120), phoneme("m", 200, 40),
                     phoneme("u:", 240, 160) };
  viseme_t shapes[12];
  mouth_pose_t poses[12];
  assert_int_equal(viseme_track_from_phonemes(ph, 4, FPS, 12, shapes, poses), 0);
  const viseme_t expected[12] = { VISEME_A, VISEME_A, VISEME_D, VISEME_D, VISEME_D, VISEME_A,
                                  VISEME_F, VISEME_F, VISEME_F, VISEME_F, VISEME_X, VISEME_X };
  for (int n = 0; n < 12; n++) {
    if (shapes[n] != expected[n])
      fail_msg("frame %d at %d ms shows %s, expected %s", n, n * 40, viseme_name(shapes[n]),
               viseme_name(expected[n]));
  }
  /* Closures are held exactly, even with blending around them. */
  assert_true(poses[0].open < 0.01f && poses[1].open < 0.01f && poses[5].open < 0.01f);
  /* In the middle of a long vowel the pose is the vowel's own. */
  assert_float_equal(poses[3].open, viseme_pose(VISEME_D).open, 1e-4);
  /* Near a boundary the pose blends toward the neighbour (coarticulation). */
  assert_true(poses[2].open < viseme_pose(VISEME_D).open);
  assert_true(poses[2].open > 0.3f);
}

static void test_short_phoneme_does_not_flicker(void **state)
{
  (void) state;
  /* The 15 ms "t" covers the frame at 120 ms; it must not own it. */
  phoneme_t ph[] = { phoneme("a", 0, 115), phoneme("t", 115, 15), phoneme("a", 130, 200) };
  viseme_t shapes[8];
  mouth_pose_t poses[8];
  assert_int_equal(viseme_track_from_phonemes(ph, 3, FPS, 8, shapes, poses), 0);
  for (int n = 0; n < 8; n++) {
    assert_int_equal(shapes[n], VISEME_D);
    assert_true(poses[n].open > 0.8f);
  }
  /* A short pause between words does not snap the mouth shut for one frame either. */
  phoneme_t gap[] = { phoneme("a", 0, 115), phoneme("a", 135, 200) };
  assert_int_equal(viseme_track_from_phonemes(gap, 2, FPS, 8, shapes, poses), 0);
  for (int n = 0; n < 8; n++)
    assert_int_equal(shapes[n], VISEME_D);
}

static void test_poses_change_smoothly(void **state)
{
  (void) state;
  phoneme_t ph[] = { phoneme("h", 0, 60), phoneme("@", 60, 70), phoneme("l", 130, 60),
                     phoneme("oU", 190, 200), phoneme("w", 390, 80), phoneme("3:", 470, 150),
                     phoneme("l", 620, 60), phoneme("d", 680, 60), phoneme("_", 740, 200) };
  enum { FRAMES = 24 };
  viseme_t shapes[FRAMES];
  mouth_pose_t poses[FRAMES];
  assert_int_equal(viseme_track_from_phonemes(ph, 9, FPS, FRAMES, shapes, poses), 0);
  for (int n = 1; n < FRAMES; n++)
    assert_true(fabsf(poses[n].open - poses[n - 1].open) <= 0.9f);
  assert_int_equal(shapes[FRAMES - 1], VISEME_X);
}

static void test_audio_energy_opens_the_mouth(void **state)
{
  (void) state;
  /* 0.5 s of a loud 220 Hz tone, then 0.5 s of silence, at 16 kHz. */
  enum { RATE = 16000, COUNT = RATE, FRAMES = 25 };
  pcm_t pcm = { .samples = calloc(COUNT, sizeof(int16_t)), .count = COUNT, .sample_rate = RATE };
  assert_non_null(pcm.samples);
  for (size_t i = 0; i < COUNT / 2; i++)
    pcm.samples[i] = (int16_t) (12000.0 * sin(2.0 * M_PI * 220.0 * (double) i / RATE));
  viseme_t shapes[FRAMES];
  mouth_pose_t poses[FRAMES];
  viseme_track_from_audio(&pcm, FPS, FRAMES, shapes, poses);
  for (int n = 2; n < 11; n++)
    assert_true(poses[n].open > 0.4f);
  for (int n = 20; n < FRAMES; n++) {
    assert_true(poses[n].open < 0.02f);
    assert_int_equal(shapes[n], VISEME_X);
  }
  pcm_release(&pcm);
}

static void test_blinks_are_seeded_and_natural(void **state)
{
  (void) state;
  motion_t a, b, c;
  motion_init(&a, 42);
  motion_init(&b, 42);
  motion_init(&c, 43);
  int blinks = 0, differs = 0;
  double previous = 0.0;
  for (int n = 0; n < 60 * FPS; n++) {
    face_state_t sa = { 0 }, sb = { 0 }, sc = { 0 };
    double t = n * 1000.0 / FPS;
    motion_step(&a, t, 0.0, &sa);
    motion_step(&b, t, 0.0, &sb);
    motion_step(&c, t, 0.0, &sc);
    assert_memory_equal(&sa, &sb, sizeof sa);
    differs |= memcmp(&sa, &sc, sizeof sa) != 0;
    if (sa.blink >= 0.99 && previous < 0.99)
      blinks++;
    previous = sa.blink;
  }
  assert_true(differs);
  /* People blink roughly 10-30 times a minute. */
  assert_in_range(blinks, 8, 35);
  assert_float_equal(motion_blink_closure(-1.0), 0.0, 1e-9);
  assert_float_equal(motion_blink_closure(100.0), 1.0, 1e-9);
  assert_float_equal(motion_blink_closure(1000.0), 0.0, 1e-9);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bilabials_close_the_lips),
    cmocka_unit_test(test_vowels_and_consonants_map_to_their_shapes),
    cmocka_unit_test(test_unknown_symbol_is_neutral),
    cmocka_unit_test(test_frame_timing_is_exact),
    cmocka_unit_test(test_short_phoneme_does_not_flicker),
    cmocka_unit_test(test_poses_change_smoothly),
    cmocka_unit_test(test_audio_energy_opens_the_mouth),
    cmocka_unit_test(test_blinks_are_seeded_and_natural),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
