/* Unit tests of the local avatar renderer: renders synthetic speech, decodes the MP4
 * or WebM it produced with libavformat/libavcodec and looks at the pictures: does
 * the mouth move with the speech and rest before and after it, do the eyes blink,
 * do the brows lift on a question, are the streams, durations and their alignment
 * right, does the idle loop loop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_avatar_video.h"

#include "avatar_backend.h"
#include "video_writer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE 512
#define FPS 25
#define FRAME_MS (1000 / FPS)
#define MAX_FRAMES 200
/* eSpeak's native rate, so the renderer's resampling is exercised too. */
#define SPEECH_RATE 22050
/* The rest the renderer puts before and after the speech (backends/local.c). */
#define LEAD_IN_MS 120
#define LEAD_OUT_MS 240
/* "aa": the jaw opens wide. */
#define AA_F1 750.0
#define AA_F2 1200.0

/* What the tests measure in each picture of ada, the default character. */
typedef struct {
  int mouth_dark;      /* pixels of the dark mouth opening */
  int eye_white;       /* pixels of the whites of the eyes */
  double brow_y;       /* mean row of the right brow */
  double diff_first;   /* mean absolute difference from the first picture, per channel */
  uint8_t corner[3];   /* RGB of the top-left background */
} frame_probe_t;

typedef struct {
  frame_probe_t frames[MAX_FRAMES];
  uint8_t *first;      /* the first picture, for diff_first */
} probes_t;

/* Regions are wide enough for the head's idle sway. */
static void probe_ada(const uint8_t *rgb, int stride, int size, size_t index, void *ctx)
{
  probes_t *probes = ctx;
  if (index >= MAX_FRAMES)
    return;
  frame_probe_t *p = &probes->frames[index];
  p->mouth_dark = video_count_near(rgb, stride, size, 180, 255, 332, 380, 89, 23, 33, 35, NULL);
  p->eye_white = video_count_near(rgb, stride, size, 160, 170, 352, 255, 242, 242, 242, 13, NULL);
  /* ada's brows are her hair's colour darkened (face.c); the right one only, away
   * from the fringe. */
  video_count_near(rgb, stride, size, 288, 158, 324, 200, 112, 49, 24, 30, &p->brow_y);
  memcpy(p->corner, rgb + 8 * stride + 3 * 8, 3);
  size_t bytes = (size_t) stride * (size_t) size;
  if (index == 0) {
    free(probes->first);
    probes->first = malloc(bytes);
    assert_non_null(probes->first);
    memcpy(probes->first, rgb, bytes);
  }
  double sum = 0.0;
  for (size_t i = 0; i < bytes; i++)
    sum += abs(rgb[i] - probes->first[i]);
  p->diff_first = sum / (double) bytes;
}

static probes_t *decode_ada(const avatar_output_t *out, video_info_t *info)
{
  probes_t *probes = calloc(1, sizeof *probes);
  assert_non_null(probes);
  video_decode(out->video, out->video_size, info, probe_ada, probes);
  free(probes->first);
  probes->first = NULL;
  return probes;
}

static int max_dark(const probes_t *p, size_t from, size_t to)
{
  int most = 0;
  for (size_t n = from; n < to; n++)
    most = p->frames[n].mouth_dark > most ? p->frames[n].mouth_dark : most;
  return most;
}

static int min_dark(const probes_t *p, size_t from, size_t to)
{
  int least = INT32_MAX;
  for (size_t n = from; n < to; n++)
    least = p->frames[n].mouth_dark < least ? p->frames[n].mouth_dark : least;
  return least;
}

static phoneme_t phoneme(const char *symbol, uint32_t start_ms, uint32_t duration_ms)
{
  phoneme_t p = { .start_ms = start_ms, .duration_ms = duration_ms };
  snprintf(p.symbol, sizeof p.symbol, "%s", symbol);
  return p;
}

/* "hello world" as eSpeak might time it, filling the first second. */
static const phoneme_t *hello_world(size_t *count)
{
  static phoneme_t ph[10];
  ph[0] = phoneme("h", 0, 80);      ph[1] = phoneme("@", 80, 120);
  ph[2] = phoneme("l", 200, 80);    ph[3] = phoneme("'oU", 280, 200);
  ph[4] = phoneme("w", 480, 80);    ph[5] = phoneme("'3:", 560, 200);
  ph[6] = phoneme("l", 760, 80);    ph[7] = phoneme("d", 840, 100);
  ph[8] = phoneme("m", 940, 60);    ph[9] = phoneme("_", 1000, 1000);
  *count = 10;
  return ph;
}

static avatar_backend_t *backend_with(const char *format)
{
  if (format)
    setenv("AVATAR_FORMAT", format, 1);
  stage_error_t err = { 0 };
  avatar_backend_t *backend = avatar_local_new(&err);
  unsetenv("AVATAR_FORMAT");
  if (!backend)
    fail_msg("avatar_local_new: %s: %s", err.code, err.message);
  return backend;
}

static int group_setup(void **state)
{
  stage_error_t err = { 0 };
  avatar_backend_t *backend = avatar_local_new(&err);
  if (!backend) {
    fprintf(stderr, "avatar_local_new: %s: %s\n", err.code, err.message);
    return -1;
  }
  *state = backend;
  return 0;
}

static int group_teardown(void **state)
{
  avatar_backend_t *backend = *state;
  backend->destroy(&backend);
  return 0;
}

static void render_ok(avatar_backend_t *backend, const avatar_input_t *in, avatar_output_t *out)
{
  stage_error_t err = { 0 };
  if (backend->render(backend, in, out, &err) != 0)
    fail_msg("render failed: %s: %s", err.code, err.message);
  assert_non_null(out->video);
}

/* Durations and the two streams' spans agree within one frame. */
static void assert_aligned(const video_info_t *info, uint32_t expected_ms)
{
  printf("video %.0f..%.0f ms, audio %.0f..%.0f ms, container %lld ms, expected %u ms\n",
         info->video_start_ms, info->video_end_ms, info->audio_start_ms, info->audio_end_ms,
         (long long) info->duration_ms, expected_ms);
  assert_true(fabs(info->video_start_ms) <= FRAME_MS);
  assert_true(fabs(info->audio_start_ms - info->video_start_ms) <= FRAME_MS);
  assert_true(fabs(info->video_end_ms - expected_ms) <= FRAME_MS);
  assert_true(fabs(info->audio_end_ms - info->video_end_ms) <= FRAME_MS);
  assert_true(llabs(info->duration_ms - (long long) expected_ms) <= FRAME_MS);
}

/* Lip sync from phoneme timings, checked in the decoded pictures: rest before the
 * speech, a moving mouth during it, rest after. */
static void check_lip_synced(avatar_backend_t *backend, const char *mime, enum AVCodecID video_codec,
                             enum AVCodecID audio_codec)
{
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  video_vowel_wav(SPEECH_RATE, 1000, 2000, AA_F1, AA_F2, &wav, &wav_size);
  size_t phoneme_count = 0;
  avatar_input_t in = { .audio = wav, .audio_size = wav_size, .audio_mime = "audio/wav",
                        .phonemes = hello_world(&phoneme_count), .text = "Hello world." };
  in.phoneme_count = phoneme_count;
  avatar_output_t out;
  render_ok(backend, &in, &out);
  assert_string_equal(out.mime, mime);
  const uint32_t total_ms = 2000 + LEAD_IN_MS + LEAD_OUT_MS;
  assert_int_equal(out.duration_ms, total_ms);

  video_info_t info;
  probes_t *p = decode_ada(&out, &info);
  assert_int_equal(info.video_codec, video_codec);
  assert_int_equal(info.audio_codec, audio_codec);
  assert_int_equal(info.width, SIZE);
  assert_int_equal(info.frame_count, (total_ms * FPS + 999) / 1000);
  assert_aligned(&info, total_ms);

  size_t speech_from = LEAD_IN_MS / FRAME_MS, speech_to = (LEAD_IN_MS + 1000) / FRAME_MS;
  int rest_before = max_dark(p, 0, speech_from);
  int speech_min = min_dark(p, speech_from, speech_to), speech_max = max_dark(p, speech_from, speech_to);
  int rest_after = max_dark(p, speech_to + 3, info.frame_count);
  printf("%s mouth opening (dark pixels): rest before %d, speech %d..%d, rest after %d\n", mime,
         rest_before, speech_min, speech_max, rest_after);
  assert_true(rest_before < 40);
  assert_true(speech_max > 150);
  assert_true(speech_max - speech_min > 120);
  assert_true(rest_after < 40);
  free(p);
  avatar_output_release(&out);
  assert_null(out.video);
  free(wav);
}

static void test_mp4_lip_sync_and_alignment(void **state)
{
  avatar_backend_t *backend = *state;
  check_lip_synced(backend, "video/mp4", AV_CODEC_ID_H264, AV_CODEC_ID_AAC);
  /* Faststart: the index comes before the media. */
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  video_vowel_wav(SPEECH_RATE, 200, 300, AA_F1, AA_F2, &wav, &wav_size);
  avatar_input_t in = { .audio = wav, .audio_size = wav_size };
  avatar_output_t out;
  render_ok(backend, &in, &out);
  video_info_t info;
  video_decode(out.video, out.video_size, &info, NULL, NULL);
  assert_true(info.moov_before_mdat);
  avatar_output_release(&out);
  free(wav);
}

static void test_webm_lip_sync_and_alignment(void **state)
{
  (void) state;
  avatar_backend_t *webm = backend_with("webm");
  check_lip_synced(webm, "video/webm", AV_CODEC_ID_VP8, AV_CODEC_ID_OPUS);
  webm->destroy(&webm);
}

static void test_audio_only_lip_sync_and_blinks(void **state)
{
  avatar_backend_t *backend = *state;
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  /* Long enough that the first blink (within 3 s) always falls inside. */
  video_vowel_wav(SPEECH_RATE, 1500, 4000, AA_F1, AA_F2, &wav, &wav_size);
  avatar_input_t in = { .audio = wav, .audio_size = wav_size, .audio_mime = "audio/wav" };
  avatar_output_t out;
  render_ok(backend, &in, &out);
  video_info_t info;
  probes_t *p = decode_ada(&out, &info);
  assert_int_equal(info.frame_count, ((4000 + LEAD_IN_MS + LEAD_OUT_MS) * FPS + 999) / 1000);

  size_t speech_from = LEAD_IN_MS / FRAME_MS, speech_to = (LEAD_IN_MS + 1500) / FRAME_MS;
  int rest_before = max_dark(p, 0, speech_from);
  int loud_max = max_dark(p, speech_from + 1, speech_to);
  int quiet_max = max_dark(p, speech_to + 3, info.frame_count);
  printf("audio-only mouth opening: rest before %d, speech max %d, silence max %d\n", rest_before,
         loud_max, quiet_max);
  assert_true(rest_before < 40);
  assert_true(loud_max > 400);
  assert_true(quiet_max < 40);

  int white_min = INT32_MAX, white_max = 0;
  for (size_t n = 0; n < info.frame_count; n++) {
    white_min = p->frames[n].eye_white < white_min ? p->frames[n].eye_white : white_min;
    white_max = p->frames[n].eye_white > white_max ? p->frames[n].eye_white : white_max;
  }
  printf("whites of the eyes: %d..%d pixels\n", white_min, white_max);
  assert_true(white_max > 800);
  assert_true(white_min < white_max / 5);

  /* The same job renders the same video: blinks and sway are seeded from it. */
  avatar_output_t again;
  render_ok(backend, &in, &again);
  assert_int_equal(again.video_size, out.video_size);
  assert_memory_equal(again.video, out.video, out.video_size);
  avatar_output_release(&again);

  free(p);
  avatar_output_release(&out);
  free(wav);
}

/* Mean brow row over frames [from, to). */
static double mean_brow_y(const probes_t *p, size_t from, size_t to)
{
  double sum = 0.0;
  size_t counted = 0;
  for (size_t n = from; n < to; n++) {
    if (p->frames[n].brow_y < 0.0)
      continue;
    sum += p->frames[n].brow_y;
    counted++;
  }
  assert_true(counted > 0);
  return sum / (double) counted;
}

static void test_brows_lift_on_a_question(void **state)
{
  avatar_backend_t *backend = *state;
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  video_vowel_wav(SPEECH_RATE, 1000, 1400, AA_F1, AA_F2, &wav, &wav_size);
  size_t phoneme_count = 0;
  /* Same sound, same seed, same sway: only the words differ. */
  avatar_input_t in = { .audio = wav, .audio_size = wav_size, .phonemes = hello_world(&phoneme_count),
                        .text = "Is the store open today?" };
  in.phoneme_count = phoneme_count;
  avatar_output_t question, statement;
  render_ok(backend, &in, &question);
  in.text = "The store is open today.";
  render_ok(backend, &in, &statement);
  video_info_t info;
  probes_t *asked = decode_ada(&question, &info);
  probes_t *told = decode_ada(&statement, &info);
  /* The second half of the speech and the moment after it. */
  size_t from = (LEAD_IN_MS + 500) / FRAME_MS, to = (LEAD_IN_MS + 1200) / FRAME_MS;
  double asked_y = mean_brow_y(asked, from, to), told_y = mean_brow_y(told, from, to);
  double asked_start = mean_brow_y(asked, 0, 2), told_start = mean_brow_y(told, 0, 2);
  printf("right brow row: question %.1f, statement %.1f (at rest before: %.1f, %.1f)\n", asked_y,
         told_y, asked_start, told_start);
  assert_true(told_y - asked_y > 4.0);
  assert_true(fabs(asked_start - told_start) < 1.0);
  free(asked);
  free(told);
  avatar_output_release(&question);
  avatar_output_release(&statement);
  free(wav);
}

static void test_idle_loop(void **state)
{
  avatar_backend_t *backend = *state;
  avatar_output_t out;
  stage_error_t err = { 0 };
  if (avatar_local_render_idle(backend, NULL, 4000, &out, &err) != 0)
    fail_msg("idle: %s: %s", err.code, err.message);
  assert_string_equal(out.mime, "video/mp4");
  assert_int_equal(out.duration_ms, 4000);
  video_info_t info;
  probes_t *p = decode_ada(&out, &info);
  assert_int_equal(info.audio_codec, AV_CODEC_ID_NONE);
  assert_int_equal(info.frame_count, 4 * FPS);
  assert_true(max_dark(p, 0, info.frame_count) < 40);
  int white_min = INT32_MAX, white_max = 0;
  double most_changed = 0.0;
  for (size_t n = 0; n < info.frame_count; n++) {
    white_min = p->frames[n].eye_white < white_min ? p->frames[n].eye_white : white_min;
    white_max = p->frames[n].eye_white > white_max ? p->frames[n].eye_white : white_max;
    most_changed = p->frames[n].diff_first > most_changed ? p->frames[n].diff_first : most_changed;
  }
  double last_changed = p->frames[info.frame_count - 1].diff_first;
  printf("idle loop: eye whites %d..%d, difference from the first picture: at most %.2f, last %.2f\n",
         white_min, white_max, most_changed, last_changed);
  assert_true(white_min < white_max / 5);                 /* it blinks */
  assert_true(most_changed > 1.0);                        /* it moves */
  assert_true(last_changed < most_changed / 4.0);         /* and ends where it began */
  free(p);
  avatar_output_release(&out);

  memset(&err, 0, sizeof err);
  assert_int_equal(avatar_local_render_idle(backend, NULL, 10, &out, &err), -1);
  assert_string_equal(err.code, "render_error");
  assert_null(out.video);
}

static void test_character_override(void **state)
{
  avatar_backend_t *backend = *state;
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  video_vowel_wav(SPEECH_RATE, 200, 300, AA_F1, AA_F2, &wav, &wav_size);
  avatar_input_t in = { .audio = wav, .audio_size = wav_size, .character = "leo" };
  avatar_output_t out;
  render_ok(backend, &in, &out);
  video_info_t info;
  probes_t *p = decode_ada(&out, &info);
  /* leo's background is warm, ada's (the default) cool. */
  assert_true(p->frames[0].corner[0] > p->frames[0].corner[2]);
  free(p);
  avatar_output_release(&out);

  in.character = "nobody";    /* unknown: falls back to the default, still renders */
  render_ok(backend, &in, &out);
  p = decode_ada(&out, &info);
  assert_true(p->frames[0].corner[2] > p->frames[0].corner[0]);
  free(p);
  avatar_output_release(&out);
  free(wav);
}

static void test_environment_settings(void **state)
{
  (void) state;
  setenv("AVATAR_SIZE", "256", 1);
  setenv("AVATAR_FPS", "30", 1);
  setenv("AVATAR_CHARACTER", "leo", 1);
  stage_error_t err = { 0 };
  avatar_backend_t *backend = avatar_local_new(&err);
  unsetenv("AVATAR_SIZE");
  unsetenv("AVATAR_FPS");
  unsetenv("AVATAR_CHARACTER");
  assert_non_null(backend);
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  video_vowel_wav(SPEECH_RATE, 300, 400, AA_F1, AA_F2, &wav, &wav_size);
  avatar_input_t in = { .audio = wav, .audio_size = wav_size };
  avatar_output_t out;
  render_ok(backend, &in, &out);
  video_info_t info;
  probes_t *p = decode_ada(&out, &info);
  assert_int_equal(info.width, 256);
  assert_int_equal(info.frame_count, 23);     /* ceil((0.4 + 0.36) s * 30 fps) */
  assert_true(p->frames[0].corner[0] > p->frames[0].corner[2]);
  free(p);
  avatar_output_release(&out);
  free(wav);
  backend->destroy(&backend);
  assert_null(backend);

  setenv("AVATAR_FORMAT", "avi", 1);
  assert_null(avatar_local_new(&err));
  unsetenv("AVATAR_FORMAT");
  assert_string_equal(err.code, "bad_config");
  assert_non_null(strstr(err.message, "AVATAR_FORMAT"));
}

static void test_garbage_audio_is_bad_audio(void **state)
{
  avatar_backend_t *backend = *state;
  static const uint8_t garbage[] = "this is certainly not an audio file, just some text bytes";
  avatar_input_t in = { .audio = garbage, .audio_size = sizeof garbage, .audio_mime = "audio/wav" };
  avatar_output_t out;
  stage_error_t err = { 0 };
  assert_int_equal(backend->render(backend, &in, &out, &err), -1);
  assert_string_equal(err.code, "bad_audio");
  assert_null(out.video);

  memset(&err, 0, sizeof err);
  in.audio = NULL;
  in.audio_size = 0;
  assert_int_equal(backend->render(backend, &in, &out, &err), -1);
  assert_string_equal(err.code, "bad_audio");
}

static void test_encoder_failures_are_render_errors(void **state)
{
  (void) state;
  stage_error_t err = { 0 };
  video_settings_t odd = { .container = VIDEO_MP4, .width = 511, .height = 512, .fps = FPS,
                           .sample_rate = 24000, .x264_preset = "veryfast", .crf = 23 };
  assert_null(video_writer_new(&odd, &err));
  assert_string_equal(err.code, "render_error");

  memset(&err, 0, sizeof err);
  video_settings_t bad_preset = odd;
  bad_preset.width = 512;
  bad_preset.x264_preset = "no-such-preset";
  assert_null(video_writer_new(&bad_preset, &err));
  assert_string_equal(err.code, "render_error");

  memset(&err, 0, sizeof err);
  video_settings_t no_container = bad_preset;
  no_container.container = (video_container_t) 7;
  assert_null(video_writer_new(&no_container, &err));
  assert_int_equal(video_writer_check_encoders((video_container_t) 7, &err), -1);

  /* A job abandoned half-way (the caller gives up) releases everything. */
  video_settings_t good = bad_preset;
  good.x264_preset = "ultrafast";
  video_writer_t *writer = video_writer_new(&good, &err);
  assert_non_null(writer);
  uint8_t *pixels = calloc((size_t) 512 * 512, 4);
  int16_t samples[4096] = { 0 };
  assert_non_null(pixels);
  for (int n = 0; n < 10; n++)
    assert_int_equal(video_writer_add_frame(writer, pixels, 512 * 4, &err), 0);
  assert_int_equal(video_writer_add_audio(writer, samples, 4096, &err), 0);
  video_writer_destroy(&writer);
  assert_null(writer);

  /* Without an audio track, samples are refused, not dropped. */
  good.sample_rate = 0;
  writer = video_writer_new(&good, &err);
  assert_non_null(writer);
  memset(&err, 0, sizeof err);
  assert_int_equal(video_writer_add_audio(writer, samples, 10, &err), -1);
  assert_string_equal(err.code, "render_error");
  video_writer_destroy(&writer);
  free(pixels);
}

int main(void)
{
  /* The defaults the assertions are written for, whatever the environment says. */
  unsetenv("AVATAR_SIZE");
  unsetenv("AVATAR_FPS");
  unsetenv("AVATAR_CHARACTER");
  unsetenv("AVATAR_CHARACTER_DIR");
  unsetenv("AVATAR_FORMAT");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_mp4_lip_sync_and_alignment),
    cmocka_unit_test(test_webm_lip_sync_and_alignment),
    cmocka_unit_test(test_audio_only_lip_sync_and_blinks),
    cmocka_unit_test(test_brows_lift_on_a_question),
    cmocka_unit_test(test_idle_loop),
    cmocka_unit_test(test_character_override),
    cmocka_unit_test(test_environment_settings),
    cmocka_unit_test(test_garbage_audio_is_bad_audio),
    cmocka_unit_test(test_encoder_failures_are_render_errors),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
