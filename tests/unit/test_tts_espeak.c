/* Unit tests of the eSpeak NG backend: real synthesis, checked for a valid WAV,
 * phoneme timings that agree with the audio, limits and odd input. One backend serves
 * every test, as in a service: eSpeak allows one per process. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tts_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SENTENCE "We're open Monday to Friday, 9 AM to 6 PM."
#define WAV_HEADER_SIZE 44
#define WINDOW_MS 20

static uint32_t read_le32(const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint16_t read_le16(const uint8_t *p)
{
  return (uint16_t) (p[0] | p[1] << 8);
}

static int16_t sample_at(const tts_result_t *result, size_t index)
{
  return (int16_t) read_le16(result->audio + WAV_HEADER_SIZE + 2 * index);
}

static size_t sample_count(const tts_result_t *result)
{
  return (result->audio_size - WAV_HEADER_SIZE) / 2;
}

static bool is_pause(const phoneme_t *phoneme)
{
  return strcmp(phoneme->symbol, "_") == 0;
}

static double elapsed_ms(const struct timespec *from, const struct timespec *to)
{
  return (double) (to->tv_sec - from->tv_sec) * 1e3 + (double) (to->tv_nsec - from->tv_nsec) / 1e6;
}

/* Checks what every successful synthesis must satisfy: a mono 16-bit WAV whose length
 * is duration_ms, and timings that are sorted, non-overlapping and inside the audio. */
static void assert_valid_result(const tts_result_t *result)
{
  assert_string_equal(result->mime, "audio/wav");
  assert_true(result->audio_size > WAV_HEADER_SIZE);
  const uint8_t *wav = result->audio;
  assert_memory_equal(wav, "RIFF", 4);
  assert_int_equal(read_le32(wav + 4), result->audio_size - 8);
  assert_memory_equal(wav + 8, "WAVEfmt ", 8);
  assert_int_equal(read_le16(wav + 20), 1);         /* PCM */
  assert_int_equal(read_le16(wav + 22), 1);         /* mono */
  assert_int_equal(read_le32(wav + 24), 22050);
  assert_int_equal(read_le16(wav + 34), 16);
  assert_memory_equal(wav + 36, "data", 4);
  assert_int_equal(read_le32(wav + 40), result->audio_size - WAV_HEADER_SIZE);
  assert_int_equal(result->duration_ms, sample_count(result) * 1000 / 22050);

  assert_non_null(result->phonemes);
  assert_true(result->phoneme_count > 0);
  uint32_t previous_end_ms = 0;
  for (size_t i = 0; i < result->phoneme_count; i++) {
    const phoneme_t *phoneme = &result->phonemes[i];
    assert_true(phoneme->symbol[0] != '\0');
    assert_true(phoneme->duration_ms > 0);
    assert_true(phoneme->start_ms >= previous_end_ms);
    previous_end_ms = phoneme->start_ms + phoneme->duration_ms;
    assert_true(previous_end_ms <= result->duration_ms);
  }
}

static int setup(void **state)
{
  /* Low enough that the audio-length cap is cheap to reach in a test. */
  setenv("TTS_MAX_AUDIO_SECONDS", "10", 1);
  stage_error_t err = { 0 };
  tts_backend_t *backend = tts_espeak_new(&err);
  if (!backend) {
    fprintf(stderr, "tts_espeak_new: %s: %s\n", err.code, err.message);
    return -1;
  }
  *state = backend;
  return 0;
}

static int teardown(void **state)
{
  tts_backend_t *backend = *state;
  backend->destroy(&backend);
  assert_null(backend);
  return 0;
}

static void synthesize_ok(tts_backend_t *backend, const char *text, tts_result_t *result)
{
  stage_error_t err = { 0 };
  int rc = backend->synthesize(backend, text, result, &err);
  if (rc != 0)
    fail_msg("synthesize failed: %s: %s", err.code, err.message);
  assert_false(stage_error_is_set(&err));
  assert_valid_result(result);
}

static void test_sentence_is_spoken_with_timings(void **state)
{
  tts_backend_t *backend = *state;
  assert_string_equal(backend->name, "espeak");
  tts_result_t result = { 0 };
  struct timespec started, finished;
  clock_gettime(CLOCK_MONOTONIC, &started);
  synthesize_ok(backend, SENTENCE, &result);
  clock_gettime(CLOCK_MONOTONIC, &finished);
  printf("# synthesis of %zu characters: %.1f ms for %u ms of audio, %zu phonemes\n",
         strlen(SENTENCE), elapsed_ms(&started, &finished), result.duration_ms,
         result.phoneme_count);

  /* About 3 s at 175 words per minute. */
  assert_in_range(result.duration_ms, 2000, 5000);
  size_t first_spoken = 0;
  while (first_spoken < result.phoneme_count && is_pause(&result.phonemes[first_spoken]))
    first_spoken++;
  size_t last_spoken = result.phoneme_count - 1;
  while (last_spoken > 0 && is_pause(&result.phonemes[last_spoken]))
    last_spoken--;
  assert_true(first_spoken < result.phoneme_count);
  /* eSpeak starts speaking at once: speech begins at 0 or a few ms after, never before. */
  assert_in_range(result.phonemes[first_spoken].start_ms, 0, 100);
  const phoneme_t *last = &result.phonemes[last_spoken];
  assert_in_range(last->start_ms + last->duration_ms, result.duration_ms - 300, result.duration_ms);
  const phoneme_t *final = &result.phonemes[result.phoneme_count - 1];
  assert_int_equal(final->start_ms + final->duration_ms, result.duration_ms);
  tts_result_release(&result);
  assert_null(result.audio);
  assert_null(result.phonemes);
}

static double window_rms(const tts_result_t *result, size_t window)
{
  size_t per_window = 22050 * WINDOW_MS / 1000;
  double sum = 0;
  for (size_t i = window * per_window; i < (window + 1) * per_window; i++) {
    double sample = sample_at(result, i);
    sum += sample * sample;
  }
  return sqrt(sum / (double) per_window);
}

/* The phoneme (or pause) sounding at `ms`, or NULL past the end. */
static const phoneme_t *phoneme_at(const tts_result_t *result, uint32_t ms)
{
  for (size_t i = 0; i < result->phoneme_count; i++) {
    const phoneme_t *phoneme = &result->phonemes[i];
    if (ms >= phoneme->start_ms && ms < phoneme->start_ms + phoneme->duration_ms)
      return phoneme;
  }
  return NULL;
}

/* Lip sync is only as good as this: where the timings say "speech", the audio is loud;
 * where they say "pause" (the comma), it is quiet. */
static void test_loud_audio_is_under_phonemes(void **state)
{
  tts_backend_t *backend = *state;
  tts_result_t result = { 0 };
  synthesize_ok(backend, SENTENCE, &result);
  size_t windows = sample_count(&result) / (22050 * WINDOW_MS / 1000);
  double speech_sum = 0, pause_sum = 0;
  size_t speech_windows = 0, pause_windows = 0;
  for (size_t window = 0; window < windows; window++) {
    const phoneme_t *phoneme = phoneme_at(&result, (uint32_t) (window * WINDOW_MS + WINDOW_MS / 2));
    if (!phoneme)
      continue;
    if (is_pause(phoneme)) {
      pause_sum += window_rms(&result, window);
      pause_windows++;
    } else {
      speech_sum += window_rms(&result, window);
      speech_windows++;
    }
  }
  assert_true(pause_windows >= 3);      /* the comma's pause is in the timings */
  assert_true(speech_windows > 50);
  double speech_rms = speech_sum / (double) speech_windows;
  double pause_rms = pause_sum / (double) pause_windows;
  printf("# mean RMS: speech %.0f over %zu windows, pause %.0f over %zu windows\n",
         speech_rms, speech_windows, pause_rms, pause_windows);
  assert_true(speech_rms > 500);
  assert_true(speech_rms > 5 * pause_rms);
  tts_result_release(&result);
}

/* The same text twice gives the same speech and timings: nothing leaks between calls.
 * eSpeak's wave generator carries a few samples of phase from one utterance to the
 * next, so "the same" means within a few milliseconds, not byte for byte. */
static void test_calls_are_independent(void **state)
{
  tts_backend_t *backend = *state;
  tts_result_t first = { 0 }, other = { 0 }, second = { 0 };
  synthesize_ok(backend, SENTENCE, &first);
  synthesize_ok(backend, "Hello there.", &other);
  assert_true(other.duration_ms < first.duration_ms);
  synthesize_ok(backend, SENTENCE, &second);
  assert_in_range(second.duration_ms, first.duration_ms - 5, first.duration_ms + 5);
  assert_int_equal(first.phoneme_count, second.phoneme_count);
  for (size_t i = 0; i < first.phoneme_count; i++) {
    assert_string_equal(first.phonemes[i].symbol, second.phonemes[i].symbol);
    long drift_ms = (long) second.phonemes[i].start_ms - (long) first.phonemes[i].start_ms;
    assert_true(labs(drift_ms) <= 5);
  }
  tts_result_release(&first);
  tts_result_release(&other);
  tts_result_release(&second);
}

static void assert_refused(tts_backend_t *backend, const char *text, const char *code)
{
  tts_result_t result = { 0 };
  stage_error_t err = { 0 };
  assert_int_equal(backend->synthesize(backend, text, &result, &err), -1);
  assert_string_equal(err.code, code);
  assert_true(err.message[0] != '\0');
  assert_null(result.audio);
  assert_null(result.phonemes);
}

static void test_empty_text_is_refused(void **state)
{
  tts_backend_t *backend = *state;
  assert_refused(backend, "", "empty_text");
  assert_refused(backend, " \t\r\n  ", "empty_text");
  assert_refused(backend, NULL, "empty_text");
  assert_refused(backend, "...", "empty_text");   /* speakable by nobody */
}

static void test_long_text_is_capped(void **state)
{
  tts_backend_t *backend = *state;
  size_t length = 2001;                  /* TTS_MAX_CHARS defaults to 2000 */
  char *text = malloc(length + 1);
  assert_non_null(text);
  memset(text, 'a', length);
  text[length] = '\0';
  assert_refused(backend, text, "text_too_long");
  free(text);

  /* Few characters, long speech: each emoji is spoken by its name ("grinning face"),
   * 40 of them for well over the 10 s the setup allows. */
  const char *emoji = "\xF0\x9F\x98\x80 ";
  size_t emoji_count = 40;
  text = malloc(emoji_count * strlen(emoji) + 1);
  assert_non_null(text);
  text[0] = '\0';
  for (size_t i = 0; i < emoji_count; i++)
    strcat(text, emoji);
  assert_refused(backend, text, "text_too_long");
  free(text);

  /* A stopped synthesis leaves eSpeak ready for the next one. */
  tts_result_t result = { 0 };
  synthesize_ok(backend, SENTENCE, &result);
  tts_result_release(&result);
}

static void test_odd_input_does_not_crash(void **state)
{
  tts_backend_t *backend = *state;
  const char *inputs[] = {
    "Hi \xF0\x9F\x98\x80 \xF0\x9F\x91\x8B",                 /* emoji */
    "caf\xE9 \xFF\xFE na\xC3",                             /* not UTF-8, cut sequence */
    "<b>bold</b> <speak><break time=\"9999s\"/></speak> &amp;",  /* SSML-like, read as text */
    "\x01\x02\x07 bell \x1B[31m red",                     /* control characters */
    "1234567890123456789012345678901234567890",
    "a",
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    tts_result_t result = { 0 };
    stage_error_t err = { 0 };
    if (backend->synthesize(backend, inputs[i], &result, &err) == 0)
      assert_valid_result(&result);
    else
      assert_true(stage_error_is_set(&err));
    tts_result_release(&result);
  }
}

static void test_second_backend_is_refused(void **state)
{
  (void) state;
  stage_error_t err = { 0 };
  assert_null(tts_espeak_new(&err));
  assert_string_equal(err.code, "backend_error");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sentence_is_spoken_with_timings),
    cmocka_unit_test(test_loud_audio_is_under_phonemes),
    cmocka_unit_test(test_calls_are_independent),
    cmocka_unit_test(test_empty_text_is_refused),
    cmocka_unit_test(test_long_text_is_capped),
    cmocka_unit_test(test_odd_input_does_not_crash),
    cmocka_unit_test(test_second_backend_is_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
