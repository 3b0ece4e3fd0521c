/* Unit tests of the eSpeak NG backend's construction: settings that cannot work are
 * reported as errors, and a backend can be destroyed and made again (eSpeak itself
 * stays up). Kept apart from test_tts_espeak, which holds its one backend throughout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tts_backend.h"

#include <stdlib.h>

static void test_unknown_voice_is_an_error(void **state)
{
  (void) state;
  setenv("TTS_VOICE", "no-such-voice", 1);
  stage_error_t err = { 0 };
  assert_null(tts_espeak_new(&err));
  assert_string_equal(err.code, "backend_error");
  unsetenv("TTS_VOICE");
}

static void speak_once(void)
{
  stage_error_t err = { 0 };
  tts_backend_t *backend = tts_espeak_new(&err);
  assert_non_null(backend);
  tts_result_t result = { 0 };
  assert_int_equal(backend->synthesize(backend, "Good morning.", &result, &err), 0);
  assert_true(result.duration_ms > 300);
  assert_true(result.phoneme_count > 3);
  tts_result_release(&result);
  backend->destroy(&backend);
  assert_null(backend);
}

/* A failed construction must not keep eSpeak taken: later ones succeed, one after another. */
static void test_backend_can_be_made_again(void **state)
{
  (void) state;
  speak_once();
  speak_once();
}

static void test_settings_in_range_are_used(void **state)
{
  (void) state;
  setenv("TTS_RATE", "350", 1);
  stage_error_t err = { 0 };
  tts_backend_t *backend = tts_espeak_new(&err);
  assert_non_null(backend);
  tts_result_t fast = { 0 };
  assert_int_equal(backend->synthesize(backend, "We're open Monday to Friday.", &fast, &err), 0);
  backend->destroy(&backend);
  unsetenv("TTS_RATE");

  backend = tts_espeak_new(&err);
  assert_non_null(backend);
  tts_result_t normal = { 0 };
  assert_int_equal(backend->synthesize(backend, "We're open Monday to Friday.", &normal, &err), 0);
  backend->destroy(&backend);
  /* Twice the words per minute, clearly shorter speech. */
  assert_true(fast.duration_ms * 3 < normal.duration_ms * 2);
  tts_result_release(&fast);
  tts_result_release(&normal);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_unknown_voice_is_an_error),
    cmocka_unit_test(test_backend_can_be_made_again),
    cmocka_unit_test(test_settings_in_range_are_used),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
