/* Unit tests of picture characters (custom_character.h): the sample "bolt" folder
 * that the build generates loads and renders -- its mouth follows the speech, its
 * eyes blink -- and broken folders are refused at load with an error that names
 * the file at fault. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_avatar_video.h"

#include "avatar_backend.h"
#include "cast.h"
#include "custom_character.h"

#include <cairo.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FPS 25
#define FRAME_MS (1000 / FPS)
#define MAX_FRAMES 160
#define LEAD_IN_MS 120

static const char *const sample_files[] = {
  "character.json", "base.png", "eyes_closed.png", "mouth_X.png", "mouth_A.png", "mouth_B.png",
  "mouth_C.png", "mouth_D.png", "mouth_E.png", "mouth_F.png", "mouth_G.png", "mouth_H.png",
};
#define SAMPLE_FILE_COUNT (sizeof sample_files / sizeof sample_files[0])

static void copy_file(const char *from, const char *to)
{
  FILE *in = fopen(from, "rb");
  FILE *out = fopen(to, "wb");
  assert_non_null(in);
  assert_non_null(out);
  char buf[8192];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    assert_int_equal(fwrite(buf, 1, n, out), n);
  assert_int_equal(fclose(in), 0);
  assert_int_equal(fclose(out), 0);
}

static void write_text(const char *path, const char *text)
{
  FILE *out = fopen(path, "wb");
  assert_non_null(out);
  assert_int_equal(fputs(text, out) >= 0, 1);
  assert_int_equal(fclose(out), 0);
}

/* A fresh copy of the sample folder in `dir` (a mkdtemp template). */
static void copy_sample(char *dir)
{
  assert_non_null(mkdtemp(dir));
  for (size_t i = 0; i < SAMPLE_FILE_COUNT; i++) {
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/%s", SAMPLE_CHARACTER_DIR, sample_files[i]);
    snprintf(to, sizeof to, "%s/%s", dir, sample_files[i]);
    copy_file(from, to);
  }
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void) sb;
  (void) flag;
  (void) ftw;
  return remove(path);
}

static void remove_tree(const char *dir)
{
  assert_int_equal(nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS), 0);
}

/* Loading `dir` fails with bad_config and a message holding both `file` and `why`. */
static void assert_refused(const char *dir, const char *file, const char *why)
{
  stage_error_t err = { 0 };
  custom_character_t *ch = custom_character_load(dir, &err);
  printf("refused: %s\n", err.message);
  assert_null(ch);
  assert_string_equal(err.code, "bad_config");
  assert_non_null(strstr(err.message, dir));
  assert_non_null(strstr(err.message, file));
  assert_non_null(strstr(err.message, why));
}

static void test_sample_character_loads(void **state)
{
  (void) state;
  stage_error_t err = { 0 };
  custom_character_t *bolt = custom_character_load(SAMPLE_CHARACTER_DIR, &err);
  if (!bolt)
    fail_msg("%s", err.message);
  assert_string_equal(custom_character_name(bolt), "bolt");
  custom_character_destroy(&bolt);
  assert_null(bolt);
  custom_character_destroy(NULL);

  cast_t *cast = cast_load(SAMPLE_CHARACTER_DIR, &err);
  assert_non_null(cast);
  cast_member_t member;
  assert_int_equal(cast_find(cast, "bolt", &member), 0);
  assert_non_null(member.custom);
  assert_string_equal(cast_member_name(&member), "bolt");
  assert_int_equal(cast_find(cast, "leo", &member), 0);
  assert_non_null(member.drawn);
  assert_int_equal(cast_find(cast, "nobody", &member), -1);
  char names[64];
  cast_names(cast, names, sizeof names);
  assert_string_equal(names, "ada, leo, bolt");
  cast_destroy(&cast);
  assert_null(cast);
}

static void test_bad_folders_are_refused(void **state)
{
  (void) state;
  char dir[] = "/tmp/avatar-character-XXXXXX";
  char path[600];

  copy_sample(dir);
  snprintf(path, sizeof path, "%s/mouth_C.png", dir);
  assert_int_equal(unlink(path), 0);
  assert_refused(dir, "mouth_C.png", "cannot be read");
  remove_tree(dir);

  strcpy(dir, "/tmp/avatar-character-XXXXXX");
  copy_sample(dir);
  snprintf(path, sizeof path, "%s/base.png", dir);
  write_text(path, "GIF89a: certainly not a PNG");
  assert_refused(dir, "base.png", "not a PNG file");
  remove_tree(dir);

  strcpy(dir, "/tmp/avatar-character-XXXXXX");
  copy_sample(dir);
  snprintf(path, sizeof path, "%s/mouth_D.png", dir);
  cairo_surface_t *small = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 10, 12);
  assert_int_equal(cairo_surface_write_to_png(small, path), CAIRO_STATUS_SUCCESS);
  cairo_surface_destroy(small);
  assert_refused(dir, "mouth_D.png", "is 10x12 pixels");
  remove_tree(dir);

  strcpy(dir, "/tmp/avatar-character-XXXXXX");
  copy_sample(dir);
  snprintf(path, sizeof path, "%s/character.json", dir);
  write_text(path, "{\"name\": \"bolt\", \"width\": 512,");
  assert_refused(dir, "character.json", "not valid JSON");
  write_text(path, "{\"name\": \"Bolt!\", \"width\": 512, \"height\": 512}");
  assert_refused(dir, "character.json", "\"name\"");
  write_text(path, "{\"name\": \"bolt\", \"width\": 512, \"height\": 512, "
                   "\"mouth\": {\"x\": 500, \"y\": 268, \"width\": 160, \"height\": 84}}");
  assert_refused(dir, "character.json", "mouth.width");
  /* A truncated eyes image: its size no longer matches the box. */
  write_text(path, "{\"name\": \"bolt\", \"width\": 512, \"height\": 512, "
                   "\"mouth\": {\"x\": 176, \"y\": 268, \"width\": 160, \"height\": 84}, "
                   "\"eyes\": {\"x\": 140, \"y\": 150, \"width\": 200, \"height\": 84}}");
  assert_refused(dir, "eyes_closed.png", "the eyes 200x84");
  /* A name that is taken: refused by the cast. */
  write_text(path, "{\"name\": \"ada\", \"width\": 512, \"height\": 512, "
                   "\"mouth\": {\"x\": 176, \"y\": 268, \"width\": 160, \"height\": 84}}");
  stage_error_t err = { 0 };
  assert_null(cast_load(dir, &err));
  assert_string_equal(err.code, "bad_config");
  assert_non_null(strstr(err.message, "\"ada\" is taken"));
  remove_tree(dir);

  assert_refused("/nonexistent/avatar-character", "character.json", "cannot be read");

  /* The service refuses to start on a bad folder, naming it. */
  setenv("AVATAR_CHARACTER_DIR", SAMPLE_CHARACTER_DIR ":/nonexistent/avatar-character", 1);
  memset(&err, 0, sizeof err);
  assert_null(avatar_local_new(&err));
  unsetenv("AVATAR_CHARACTER_DIR");
  assert_string_equal(err.code, "bad_config");
  assert_non_null(strstr(err.message, "/nonexistent/avatar-character"));
}

/* What the test measures in each picture of bolt. */
typedef struct {
  int glow[MAX_FRAMES];        /* lit pixels of the mouth screen */
  int eye_white[MAX_FRAMES];
  uint8_t corner[3];
} bolt_probes_t;

static void probe_bolt(const uint8_t *rgb, int stride, int size, size_t index, void *ctx)
{
  bolt_probes_t *p = ctx;
  if (index >= MAX_FRAMES)
    return;
  /* The mouth's cyan lines and the eyes' white, from sample_character/generate.c. */
  p->glow[index] = video_count_near(rgb, stride, size, 160, 250, 352, 370, 76, 242, 217, 40, NULL);
  p->eye_white[index] = video_count_near(rgb, stride, size, 140, 140, 372, 245, 247, 250, 255, 14, NULL);
  if (index == 0)
    memcpy(p->corner, rgb + 8 * stride + 3 * 8, 3);
}

static void test_picture_character_renders(void **state)
{
  (void) state;
  setenv("AVATAR_CHARACTER_DIR", SAMPLE_CHARACTER_DIR, 1);
  setenv("AVATAR_CHARACTER", "bolt", 1);
  stage_error_t err = { 0 };
  avatar_backend_t *backend = avatar_local_new(&err);
  unsetenv("AVATAR_CHARACTER_DIR");
  unsetenv("AVATAR_CHARACTER");
  if (!backend)
    fail_msg("%s: %s", err.code, err.message);
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  /* Speech for 1.5 s, then quiet; long enough for the first blink. */
  video_vowel_wav(22050, 1500, 3600, 750.0, 1200.0, &wav, &wav_size);
  avatar_input_t in = { .audio = wav, .audio_size = wav_size };
  avatar_output_t out;
  if (backend->render(backend, &in, &out, &err) != 0)
    fail_msg("%s: %s", err.code, err.message);
  bolt_probes_t *p = calloc(1, sizeof *p);
  assert_non_null(p);
  video_info_t info;
  video_decode(out.video, out.video_size, &info, probe_bolt, p);
  assert_true(info.frame_count <= MAX_FRAMES);
  /* bolt's backdrop is a pale green-grey: green above red and blue. */
  assert_true(p->corner[1] > p->corner[0] && p->corner[1] > p->corner[2]);

  size_t speech_from = LEAD_IN_MS / FRAME_MS, speech_to = (LEAD_IN_MS + 1500) / FRAME_MS;
  int rest = p->glow[0], speech_max = 0, quiet_max = 0, white_min = INT32_MAX, white_max = 0;
  for (size_t n = speech_from + 1; n < speech_to; n++)
    speech_max = p->glow[n] > speech_max ? p->glow[n] : speech_max;
  for (size_t n = speech_to + 3; n < info.frame_count; n++)
    quiet_max = p->glow[n] > quiet_max ? p->glow[n] : quiet_max;
  for (size_t n = 0; n < info.frame_count; n++) {
    white_min = p->eye_white[n] < white_min ? p->eye_white[n] : white_min;
    white_max = p->eye_white[n] > white_max ? p->eye_white[n] : white_max;
  }
  printf("bolt: mouth glow at rest %d, speech max %d, quiet max %d; eye whites %d..%d\n", rest,
         speech_max, quiet_max, white_min, white_max);
  assert_true(speech_max > 2 * rest);
  assert_true(quiet_max < speech_max / 2);
  assert_true(white_max > 1000);
  assert_true(white_min < white_max / 5);

  /* A request can still ask for a drawn character. */
  avatar_output_release(&out);
  in.character = "leo";
  if (backend->render(backend, &in, &out, &err) != 0)
    fail_msg("%s: %s", err.code, err.message);
  video_decode(out.video, out.video_size, &info, probe_bolt, p);
  assert_true(p->corner[0] > p->corner[2]);
  free(p);
  avatar_output_release(&out);
  free(wav);
  backend->destroy(&backend);
}

int main(void)
{
  unsetenv("AVATAR_SIZE");
  unsetenv("AVATAR_FPS");
  unsetenv("AVATAR_FORMAT");
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sample_character_loads),
    cmocka_unit_test(test_bad_folders_are_refused),
    cmocka_unit_test(test_picture_character_renders),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
