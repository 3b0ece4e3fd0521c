/* Unit tests of the avatar's mouth track (phonemes, or the sound alone -> mouth
 * poses), its expression (brows on questions) and its idle motion (blinks, loops). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_avatar_video.h"

#include "audio.h"
#include "audio_sync.h"
#include "expression.h"
#include "motion.h"
#include "tts_backend.h"
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
  /* The 15 ms "t" covers the middle of the frame at 120 ms; it must not own it.
   * (The last frame's middle, 300 ms, is near the end of the speech, so its pose
   * already leans toward rest.) */
  phoneme_t ph[] = { phoneme("a", 0, 115), phoneme("t", 115, 15), phoneme("a", 130, 200) };
  viseme_t shapes[8];
  mouth_pose_t poses[8];
  assert_int_equal(viseme_track_from_phonemes(ph, 3, FPS, 8, shapes, poses), 0);
  for (int n = 0; n < 8; n++) {
    assert_int_equal(shapes[n], VISEME_D);
    assert_true(poses[n].open > (n < 7 ? 0.85f : 0.6f));
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

/* Decodes a WAV made by video_vowel_wav to 24 kHz and runs the audio-only track. */
static void vowel_track(double f1, double f2, viseme_t *shapes, mouth_pose_t *poses, size_t frames)
{
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  video_vowel_wav(22050, 500, 1000, f1, f2, &wav, &wav_size);
  pcm_t pcm = { 0 };
  stage_error_t err = { 0 };
  assert_int_equal(audio_decode(wav, wav_size, 24000, 0, &pcm, &err), 0);
  assert_int_equal(viseme_track_from_audio(&pcm, FPS, frames, shapes, poses), 0);
  audio_frame_features_t f = audio_sync_measure(&pcm, FPS, 6, audio_sync_loud_level(&pcm, FPS, frames));
  printf("vowel F1 %.0f F2 %.0f Hz: measured %.0f / %.0f Hz, brightness %.0f Hz, level %.1f dB -> %s\n",
         f1, f2, f.f1_hz, f.f2_hz, f.hiss, f.level_db, viseme_name(shapes[6]));
  pcm_release(&pcm);
  free(wav);
}

static void test_audio_shapes_follow_the_vowel(void **state)
{
  (void) state;
  enum { FRAMES = 25 };
  viseme_t shapes[FRAMES];
  mouth_pose_t poses[FRAMES];
  /* "aa": wide open; then silence: rest. */
  vowel_track(750.0, 1200.0, shapes, poses, FRAMES);
  for (int n = 2; n < 11; n++)
    assert_true(poses[n].open > 0.3f);
  assert_int_equal(shapes[6], VISEME_D);
  for (int n = 14; n < FRAMES; n++) {
    assert_true(poses[n].open < 0.02f);
    assert_int_equal(shapes[n], VISEME_X);
  }
  /* "ee": lips spread, nearly closed. */
  vowel_track(280.0, 2250.0, shapes, poses, FRAMES);
  assert_int_equal(shapes[6], VISEME_B);
  /* "oo": rounded. */
  vowel_track(300.0, 870.0, shapes, poses, FRAMES);
  assert_int_equal(shapes[6], VISEME_F);
}

static void test_audio_only_sync_opens_on_espeak_speech(void **state)
{
  (void) state;
  stage_error_t err = { 0 };
  tts_backend_t *tts = tts_espeak_new(&err);
  assert_non_null(tts);
  tts_result_t speech = { 0 };
  assert_int_equal(tts->synthesize(tts, "We are open Monday to Friday. Can I help you with anything else?",
                                   &speech, &err), 0);
  pcm_t pcm = { 0 };
  assert_int_equal(audio_decode(speech.audio, speech.audio_size, 24000, 0, &pcm, &err), 0);
  size_t frames = pcm.count * FPS / 24000;
  viseme_t *timed = calloc(frames, sizeof *timed), *heard = calloc(frames, sizeof *heard);
  mouth_pose_t *poses = calloc(frames, sizeof *poses);
  assert_non_null(timed);
  assert_non_null(heard);
  assert_non_null(poses);
  assert_int_equal(viseme_track_from_phonemes(speech.phonemes, speech.phoneme_count, FPS, frames, timed, poses), 0);
  assert_int_equal(viseme_track_from_audio(&pcm, FPS, frames, heard, poses), 0);
  /* Where eSpeak says a vowel sounds, the audio-only mouth is open; where it says
   * nothing sounds, it rests. */
  size_t vowels = 0, open_on_vowel = 0, pauses = 0, rest_on_pause = 0;
  for (size_t n = 0; n < frames; n++) {
    int vowel = viseme_pose(timed[n]).open >= 0.45f;
    vowels += vowel;
    open_on_vowel += vowel && heard[n] != VISEME_X && heard[n] != VISEME_A && poses[n].open > 0.1f;
    pauses += timed[n] == VISEME_X;
    rest_on_pause += timed[n] == VISEME_X && heard[n] == VISEME_X;
  }
  printf("audio-only on eSpeak speech: open on %zu of %zu open-vowel frames, at rest on %zu of %zu pause frames\n",
         open_on_vowel, vowels, rest_on_pause, pauses);
  assert_true(vowels > 10);
  assert_true(open_on_vowel * 10 >= vowels * 8);
  assert_true(rest_on_pause * 10 >= pauses * 7);
  free(timed);
  free(heard);
  free(poses);
  pcm_release(&pcm);
  tts_result_release(&speech);
  tts->destroy(&tts);
}

static void test_brows_lift_on_questions(void **state)
{
  (void) state;
  /* Two sentences of speech, 1 s each, with a 400 ms pause between. */
  enum { FRAMES = 75 };
  viseme_t shapes[FRAMES];
  float brows[FRAMES];
  for (int n = 0; n < FRAMES; n++)
    shapes[n] = (n >= 5 && n < 30) || (n >= 40 && n < 65) ? VISEME_C : VISEME_X;

  expression_brow_track("We are open today. Can I help?", shapes, FRAMES, FPS, brows);
  float first_max = 0.0f, second_max = 0.0f;
  for (int n = 0; n < 35; n++)
    first_max = brows[n] > first_max ? brows[n] : first_max;
  for (int n = 40; n < FRAMES; n++)
    second_max = brows[n] > second_max ? brows[n] : second_max;
  assert_true(first_max < 0.05f);            /* the statement: level brows */
  assert_true(second_max > 0.9f);            /* the question: lifted toward its end */
  assert_true(brows[44] < brows[60]);

  expression_brow_track("We are open today. We close at six.", shapes, FRAMES, FPS, brows);
  for (int n = 0; n < FRAMES; n++)
    assert_true(brows[n] == 0.0f);
  expression_brow_track("Open?!", shapes, FRAMES, FPS, brows);
  assert_true(brows[62] > 0.9f);
  expression_brow_track(NULL, shapes, FRAMES, FPS, brows);
  assert_true(brows[30] == 0.0f);
  expression_brow_track("Version 2.5? Yes.", shapes, FRAMES, FPS, brows);   /* "2.5" ends nothing */
  assert_true(brows[28] > 0.5f && brows[70] < 0.05f);
}

static void test_closures_and_merged_shapes_show(void **state)
{
  (void) state;
  /* A 30 ms "p" spanning a frame's middle (60 ms) still closes the lips ... */
  phoneme_t closure[] = { phoneme("a", 0, 50), phoneme("p", 50, 30), phoneme("a", 80, 200) };
  viseme_t shapes[6];
  mouth_pose_t poses[6];
  assert_int_equal(viseme_track_from_phonemes(closure, 3, FPS, 6, shapes, poses), 0);
  assert_int_equal(shapes[1], VISEME_A);
  assert_true(poses[1].open < 0.01f);
  /* ... and two short phonemes of one shape own a frame together. */
  phoneme_t pair[] = { phoneme("a", 0, 100), phoneme("t", 100, 25), phoneme("s", 125, 25),
                       phoneme("a", 150, 200) };
  assert_int_equal(viseme_track_from_phonemes(pair, 4, FPS, 6, shapes, poses), 0);
  assert_int_equal(shapes[3], VISEME_B);
}

static void test_blinks_are_seeded_and_natural(void **state)
{
  (void) state;
  motion_t a, b, c;
  motion_init(&a, 42, 0.0);
  motion_init(&b, 42, 0.0);
  motion_init(&c, 43, 0.0);
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

static void test_motion_starts_neutral_and_loops(void **state)
{
  (void) state;
  motion_t motion;
  face_state_t start = { 0 }, end = { 0 }, middle = { 0 };
  motion_init(&motion, 7, 4000.0);
  motion_step(&motion, 0.0, 0.0, &start);
  for (int n = 1; n < 4 * FPS; n++) {
    face_state_t now = { 0 };
    motion_step(&motion, n * 1000.0 / FPS, 0.0, &now);
    if (n == 2 * FPS - 13)
      middle = now;
  }
  motion_step(&motion, 4000.0, 0.0, &end);
  /* Every plan starts centred; a loop's end is its start. */
  assert_float_equal(start.head_dx, 0.0, 1e-9);
  assert_float_equal(start.breath, 0.0, 1e-9);
  assert_float_equal(end.head_dx, start.head_dx, 1e-6);
  assert_float_equal(end.head_dy, start.head_dy, 1e-6);
  assert_float_equal(end.head_tilt, start.head_tilt, 1e-6);
  assert_float_equal(end.breath, start.breath, 1e-6);
  assert_float_equal(end.gaze_x, 0.0, 1e-9);
  assert_float_equal(end.blink, 0.0, 1e-9);
  assert_true(fabs(middle.head_dx) + fabs(middle.breath) > 0.5);
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
    cmocka_unit_test(test_closures_and_merged_shapes_show),
    cmocka_unit_test(test_audio_shapes_follow_the_vowel),
    cmocka_unit_test(test_audio_only_sync_opens_on_espeak_speech),
    cmocka_unit_test(test_brows_lift_on_questions),
    cmocka_unit_test(test_blinks_are_seeded_and_natural),
    cmocka_unit_test(test_motion_starts_neutral_and_loops),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
