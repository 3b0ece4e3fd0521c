/* test_stt_pocketsphinx: the offline stt backend with the domain model built from the
 * knowledge base, on questions spoken by espeak-ng and sent as a browser would (WebM/Opus). */
#include "stt_backend.h"
#include "test_stt_media.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static media_t media;
static stt_backend_t *backend;

static const char *const BROWSER_OPUS[] = {"-i", "spoken.wav", "-c:a", "libopus", "-b:a", "32k",
                                           "-f", "webm", NULL};

static int group_setup(void **state)
{
  (void) state;
  stage_error_t err = {0};
  backend = stt_pocketsphinx_new(&err);
  if (!backend) {
    fprintf(stderr, "stt_pocketsphinx_new: %s %s\n", err.code, err.message);
    return -1;
  }
  return media_init(&media);
}

static int group_teardown(void **state)
{
  (void) state;
  backend->destroy(&backend);
  media_cleanup(&media);
  return 0;
}

static double now_ms(void)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double) now.tv_sec * 1000.0 + (double) now.tv_nsec / 1e6;
}

static int transcribe_file(const char *name, stt_result_t *result, stage_error_t *err)
{
  size_t size = 0;
  uint8_t *audio = media_load(&media, name, &size);
  assert_non_null(audio);
  double start = now_ms();
  int rc = backend->transcribe(backend, audio, size, "audio/webm;codecs=opus", result, err);
  printf("# %s: %.0f ms to transcribe\n", name, now_ms() - start);
  free(audio);
  return rc;
}

static void expect_transcript(const char *question)
{
  assert_int_equal(media_speak(&media, question, "spoken.wav"), 0);
  assert_int_equal(media_ffmpeg(&media, BROWSER_OPUS, "question.webm", false), 0);
  stt_result_t result = {0};
  stage_error_t err = {0};
  if (transcribe_file("question.webm", &result, &err) != 0)
    fail_msg("\"%s\": %s %s", question, err.code, err.message);
  printf("# heard \"%s\" (confidence %.2f)\n", result.text, result.confidence);
  assert_true(result.confidence >= 0.0f && result.confidence <= 1.0f);
  if (strcmp(result.text, question) != 0) {
    char message[512];
    snprintf(message, sizeof message, "said \"%s\", heard \"%s\"", question, result.text);
    free(result.text);
    fail_msg("%s", message);
  }
  free(result.text);
}

static void test_office_hours(void **state)
{
  (void) state;
  expect_transcript("what are your office hours");
}

/* A second job on the same decoder: nothing of the first utterance may leak into it. */
static void test_second_question(void **state)
{
  (void) state;
  expect_transcript("where are you located");
}

static stt_result_t transcribe_bytes(stt_backend_t *stt, const uint8_t *audio, size_t size)
{
  stt_result_t result = {0};
  stage_error_t err = {0};
  if (stt->transcribe(stt, audio, size, "audio/webm;codecs=opus", &result, &err) != 0)
    fail_msg("transcribe: %s %s", err.code, err.message);
  return result;
}

static uint8_t *read_recording(const char *path, size_t *size)
{
  FILE *file = fopen(path, "rb");
  if (!file)
    fail_msg("cannot open %s", path);
  static uint8_t data[256 * 1024];
  *size = fread(data, 1, sizeof data, file);
  fclose(file);
  assert_true(*size > 0 && *size < sizeof data);
  return data;
}

/* A job is heard the same whatever the decoder heard before it. The recording is the
 * page's own upload of "What are your office hours?" made by Chromium; decoded first
 * by a fresh decoder it came out as "what are you all these how it" while the noise
 * estimate carried over from job to job (docs/performance.md). Here it is heard by a
 * fresh backend, then after a loud, noisy question, then again. */
static void test_job_independent_of_previous_jobs(void **state)
{
  (void) state;
  static const char *const noisy[] = {"-i", "spoken.wav", "-f", "lavfi", "-i",
    "anoisesrc=color=pink:amplitude=0.3:duration=6:seed=7", "-filter_complex",
    "[0:a]volume=4,apad=pad_dur=2[a];[a][1:a]amix=inputs=2:duration=first",
    "-c:a", "libopus", "-b:a", "32k", "-f", "webm", NULL};
  assert_int_equal(media_speak(&media, "is there parking", "spoken.wav"), 0);
  assert_int_equal(media_ffmpeg(&media, noisy, "noisy.webm", false), 0);
  size_t noisy_size = 0, recording_size = 0;
  uint8_t *noisy_audio = media_load(&media, "noisy.webm", &noisy_size);
  assert_non_null(noisy_audio);
  const char *path = getenv("STT_CHROMIUM_RECORDING");
  assert_non_null(path);
  const uint8_t *recording = read_recording(path, &recording_size);

  stage_error_t err = {0};
  stt_backend_t *fresh = stt_pocketsphinx_new(&err);
  if (!fresh)
    fail_msg("%s", err.message);
  stt_result_t first = transcribe_bytes(fresh, recording, recording_size);
  stt_result_t between = transcribe_bytes(fresh, noisy_audio, noisy_size);
  stt_result_t again = transcribe_bytes(fresh, recording, recording_size);
  fresh->destroy(&fresh);
  free(noisy_audio);
  printf("# \"%s\" (%.4f), then \"%s\", then \"%s\" (%.4f)\n", first.text, first.confidence,
         between.text, again.text, again.confidence);
  assert_string_equal(first.text, "what are your office hours");
  assert_string_equal(again.text, first.text);
  assert_true(again.confidence == first.confidence);
  free(first.text);
  free(between.text);
  free(again.text);
}

static void test_silence_is_no_speech(void **state)
{
  (void) state;
  static const char *const silence[] = {"-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "3",
                                        "-c:a", "libopus", "-f", "webm", NULL};
  assert_int_equal(media_ffmpeg(&media, silence, "silence.webm", false), 0);
  stt_result_t result = {0};
  stage_error_t err = {0};
  assert_int_equal(transcribe_file("silence.webm", &result, &err), -1);
  assert_string_equal(err.code, "no_speech");
  assert_true(strlen(err.message) > 10);
  assert_null(result.text);
}

static void test_bad_audio(void **state)
{
  (void) state;
  static const uint8_t not_audio[] = "this is not a recording";
  stt_result_t result = {0};
  stage_error_t err = {0};
  assert_int_equal(backend->transcribe(backend, not_audio, sizeof not_audio - 1, "audio/webm",
                                       &result, &err), -1);
  assert_string_equal(err.code, "bad_audio");
  assert_null(result.text);
}

/* STT_DECODER_OPTIONS reach PocketSphinx: a flag it does not know stops the backend at
 * start with a reason naming the setting; a real one gives a working decoder. */
static void test_decoder_options(void **state)
{
  (void) state;
  stage_error_t err = {0};
  assert_int_equal(setenv("STT_DECODER_OPTIONS", "-no_such_flag 1", 1), 0);
  stt_backend_t *refused = stt_pocketsphinx_new(&err);
  assert_null(refused);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "STT_DECODER_OPTIONS=-no_such_flag 1"));

  /* more words than the decoder's argument list holds: refused, not overrun */
  char many[400] = "";
  for (int i = 0; i < 40; i++)
    strcat(many, "-lw 7 ");
  assert_int_equal(setenv("STT_DECODER_OPTIONS", many, 1), 0);
  memset(&err, 0, sizeof err);
  assert_null(stt_pocketsphinx_new(&err));
  assert_string_equal(err.code, "backend_error");

  assert_int_equal(setenv("STT_DECODER_OPTIONS", " -fwdflat  no\t-lw 7 ", 1), 0);
  stt_backend_t *tuned = stt_pocketsphinx_new(&err);
  assert_int_equal(unsetenv("STT_DECODER_OPTIONS"), 0);
  if (!tuned)
    fail_msg("%s", err.message);
  stt_backend_t *shared = backend;
  backend = tuned;
  expect_transcript("what are your office hours");
  backend = shared;
  tuned->destroy(&tuned);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_office_hours),
    cmocka_unit_test(test_second_question),
    cmocka_unit_test(test_job_independent_of_previous_jobs),
    cmocka_unit_test(test_silence_is_no_speech),
    cmocka_unit_test(test_bad_audio),
    cmocka_unit_test(test_decoder_options),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
