/* test_audio: audio_decode on every container the browser or a client may send, on
 * resampling and length limits, and on hostile input (garbage, empty, truncated). */
#include "audio.h"
#include "test_stt_media.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

enum { RATE = 16000, MAX_MS = 60000 };

static media_t media;
static uint32_t spoken_ms;        /* length of the espeak-ng recording, from its WAV */

/* Each encoding of the same sentence: file name and ffmpeg arguments. */
typedef struct {
  const char *name;
  const char *args[12];
  uint32_t tolerance_ms;          /* codec priming and frame padding */
} encoding_t;

static const encoding_t ENCODINGS[] = {
  {"speech.webm", {"-i", "speech.wav", "-c:a", "libopus", "-f", "webm", NULL}, 120},
  {"speech.ogg", {"-i", "speech.wav", "-c:a", "libopus", NULL}, 120},
  {"speech.mp3", {"-i", "speech.wav", "-c:a", "libmp3lame", NULL}, 120},
  {"speech.m4a", {"-i", "speech.wav", "-c:a", "aac", NULL}, 120},
  {"stereo44k.wav", {"-i", "speech.wav", "-ac", "2", "-ar", "44100", NULL}, 5},
};

static int group_setup(void **state)
{
  (void) state;
  if (media_init(&media) < 0 || media_speak(&media, "what are your office hours", "speech.wav") < 0)
    return -1;
  for (size_t i = 0; i < sizeof ENCODINGS / sizeof ENCODINGS[0]; i++)
    if (media_ffmpeg(&media, ENCODINGS[i].args, ENCODINGS[i].name, false) < 0)
      return -1;
  static const char *const long_tone[] = {"-f", "lavfi", "-i", "sine=frequency=440:duration=70",
                                          "-c:a", "libopus", "-f", "webm", NULL};
  if (media_ffmpeg(&media, long_tone, "long.webm", false) < 0 ||
      media_ffmpeg(&media, long_tone, "long-streamed.webm", true) < 0)
    return -1;
  static const char *const long_wav[] = {"-f", "lavfi", "-i", "sine=frequency=440:duration=70",
                                         "-ar", "8000", NULL};
  if (media_ffmpeg(&media, long_wav, "long.wav", false) < 0)
    return -1;

  size_t size;
  uint8_t *wav = media_load(&media, "speech.wav", &size);
  if (!wav || size < 44) {
    free(wav);
    return -1;
  }
  /* espeak-ng writes a plain 44-byte header: rate at 24, data size at 40. */
  uint32_t rate = (uint32_t) wav[24] | (uint32_t) wav[25] << 8 | (uint32_t) wav[26] << 16;
  uint32_t data_size = (uint32_t) (size - 44);
  spoken_ms = (uint32_t) ((uint64_t) data_size / 2 * 1000 / rate);
  free(wav);
  return spoken_ms > 500 ? 0 : -1;
}

static int group_teardown(void **state)
{
  (void) state;
  media_cleanup(&media);
  return 0;
}

static int decode_file(const char *name, int rate, uint32_t max_ms, pcm_t *pcm, stage_error_t *err)
{
  size_t size = 0;
  uint8_t *data = media_load(&media, name, &size);
  assert_non_null(data);
  int rc = audio_decode(data, size, rate, max_ms, pcm, err);
  free(data);
  return rc;
}

static int peak_of(const pcm_t *pcm)
{
  int peak = 0;
  for (size_t i = 0; i < pcm->count; i++) {
    int magnitude = abs((int) pcm->samples[i]);
    if (magnitude > peak)
      peak = magnitude;
  }
  return peak;
}

static void test_wav_resampled(void **state)
{
  (void) state;
  pcm_t pcm = {0};
  stage_error_t err = {0};
  assert_int_equal(decode_file("speech.wav", RATE, MAX_MS, &pcm, &err), 0);
  assert_int_equal(pcm.sample_rate, RATE);
  assert_true(abs((int) pcm_duration_ms(&pcm) - (int) spoken_ms) <= 5);
  assert_true(peak_of(&pcm) > 1000);
  size_t count_16k = pcm.count;
  pcm_release(&pcm);

  assert_int_equal(decode_file("speech.wav", 8000, MAX_MS, &pcm, &err), 0);
  assert_int_equal(pcm.sample_rate, 8000);
  assert_true(abs((int) (pcm.count * 2) - (int) count_16k) <= 4);
  pcm_release(&pcm);
}

static void test_encodings(void **state)
{
  (void) state;
  for (size_t i = 0; i < sizeof ENCODINGS / sizeof ENCODINGS[0]; i++) {
    pcm_t pcm = {0};
    stage_error_t err = {0};
    int rc = decode_file(ENCODINGS[i].name, RATE, MAX_MS, &pcm, &err);
    if (rc != 0)
      fail_msg("%s: %s %s", ENCODINGS[i].name, err.code, err.message);
    int difference = abs((int) pcm_duration_ms(&pcm) - (int) spoken_ms);
    if (difference > (int) ENCODINGS[i].tolerance_ms)
      fail_msg("%s: %u ms decoded, %u ms spoken", ENCODINGS[i].name, pcm_duration_ms(&pcm),
               spoken_ms);
    assert_true(peak_of(&pcm) > 1000);
    pcm_release(&pcm);
  }
}

static void expect_error(const uint8_t *data, size_t size, uint32_t max_ms, const char *code)
{
  pcm_t pcm = {0};
  stage_error_t err = {0};
  assert_int_equal(audio_decode(data, size, RATE, max_ms, &pcm, &err), -1);
  assert_string_equal(err.code, code);
  assert_true(strlen(err.message) > 10);
  assert_null(pcm.samples);
  assert_int_equal(pcm.count, 0);
}

static void test_empty(void **state)
{
  (void) state;
  static const uint8_t byte = 0;
  expect_error(NULL, 0, MAX_MS, "bad_audio");
  expect_error(&byte, 0, MAX_MS, "bad_audio");
  expect_error(&byte, 1, MAX_MS, "bad_audio");
}

static void test_garbage(void **state)
{
  (void) state;
  enum { SIZE = 64 * 1024 };
  uint8_t *noise = malloc(SIZE);
  assert_non_null(noise);
  uint32_t seed = 12345;
  for (size_t i = 0; i < SIZE; i++) {
    seed = seed * 1103515245u + 12345u;       /* fixed sequence: a failure can be replayed */
    noise[i] = (uint8_t) (seed >> 16);
  }
  expect_error(noise, SIZE, MAX_MS, "bad_audio");
  static const char text[] = "what are your office hours? this is text, not audio.";
  expect_error((const uint8_t *) text, sizeof text - 1, MAX_MS, "bad_audio");
  free(noise);
}

/* A cut upload either decodes what is left (never more than the whole) or is refused. */
static void test_truncated(void **state)
{
  (void) state;
  static const char *const names[] = {"speech.webm", "speech.ogg", "speech.mp3", "speech.m4a",
                                      "speech.wav"};
  for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
    size_t size = 0;
    uint8_t *data = media_load(&media, names[n], &size);
    assert_non_null(data);
    static const size_t cuts[] = {16, 100, 1000};
    size_t lengths[5] = {size / 2, size - 7};
    for (size_t c = 0; c < 3; c++)
      lengths[2 + c] = cuts[c] < size ? cuts[c] : size / 3;
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
      pcm_t pcm = {0};
      stage_error_t err = {0};
      if (audio_decode(data, lengths[l], RATE, MAX_MS, &pcm, &err) == 0)
        assert_true(pcm_duration_ms(&pcm) <= spoken_ms + 150);
      else
        assert_string_equal(err.code, "bad_audio");
      pcm_release(&pcm);
    }
    free(data);
  }
}

/* A WAV header claiming 1.4 GHz and 47 channels (tests/fuzz/crashes/): refused at
 * once instead of spending seconds building the resampler. */
static void test_absurd_rate(void **state)
{
  (void) state;
  uint8_t wav[44 + 400] = {0};
  const uint32_t rate = 1444946752u, data_size = 400;
  memcpy(wav, "RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x2f\0", 24);
  for (int i = 0; i < 4; i++)
    wav[24 + i] = (uint8_t) (rate >> (8 * i));
  memcpy(wav + 32, "\x02\0\x10\0data", 8);
  for (int i = 0; i < 4; i++)
    wav[40 + i] = (uint8_t) (data_size >> (8 * i));
  pcm_t pcm = {0};
  stage_error_t err = {0};
  assert_int_equal(audio_decode(wav, sizeof wav, RATE, MAX_MS, &pcm, &err), -1);
  assert_string_equal(err.code, "bad_audio");
  assert_non_null(strstr(err.message, "sample rate"));
  assert_null(pcm.samples);
}

/* An upload naming another file (FFmpeg's concat format) is not followed: only
 * the bytes given are decoded. speech.wav sits in the working directory here. */
static void test_named_file_refused(void **state)
{
  (void) state;
  char cwd[512];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(media.dir), 0);
  static const char concat[] = "ffconcat version 1.0\nfile speech.wav\n";
  expect_error((const uint8_t *) concat, sizeof concat - 1, MAX_MS, "bad_audio");
  assert_int_equal(chdir(cwd), 0);
}

static void test_too_long(void **state)
{
  (void) state;
  static const char *const names[] = {"long.webm", "long.wav", "long-streamed.webm"};
  for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
    pcm_t pcm = {0};
    stage_error_t err = {0};
    assert_int_equal(decode_file(names[n], RATE, MAX_MS, &pcm, &err), -1);
    assert_string_equal(err.code, "audio_too_long");
    assert_null(pcm.samples);
  }
  /* The same files are fine without a limit: the refusal is about length only. */
  pcm_t pcm = {0};
  stage_error_t err = {0};
  assert_int_equal(decode_file("long-streamed.webm", 8000, 0, &pcm, &err), 0);
  assert_true(abs((int) pcm_duration_ms(&pcm) - 70000) <= 100);
  pcm_release(&pcm);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_wav_resampled),
    cmocka_unit_test(test_encodings),
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_garbage),
    cmocka_unit_test(test_truncated),
    cmocka_unit_test(test_absurd_rate),
    cmocka_unit_test(test_named_file_refused),
    cmocka_unit_test(test_too_long),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
