/* Unit tests of gateway/media_store: name validation (traversal included),
 * content types, atomic writes, opening and TTL cleanup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "media_store.h"

typedef struct {
  char root[64];
  char dir[96];
} fixture_t;

static int setup(void **state)
{
  fixture_t *fixture = calloc(1, sizeof *fixture);
  snprintf(fixture->root, sizeof fixture->root, "/tmp/test-media-XXXXXX");
  if (!fixture || !mkdtemp(fixture->root))
    return -1;
  /* A nested path checks that missing parents are created. */
  snprintf(fixture->dir, sizeof fixture->dir, "%s/var/media", fixture->root);
  *state = fixture;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *fixture = *state;
  char command[160];
  snprintf(command, sizeof command, "rm -rf '%s'", fixture->root);
  int rc = system(command);
  free(fixture);
  return rc == 0 ? 0 : -1;
}

static void test_name_validation(void **state)
{
  (void) state;
  const char *good[] = {"abc.mp4", "0123456789abcdef0123456789abcdef.wav", "a_b-c.webm",
                        "J-0.mp3", "x.ogg", "subs.vtt"};
  const char *bad[] = {"", ".mp4", "../x.mp4", "..%2Fx.mp4", "a/b.mp4", "a.exe", "a.mp4.sh",
                       "a.MP4", "a b.mp4", "a.mp4/", "/etc/passwd", "..", ".", "a", "a.",
                       ".hidden.wav", "a\\b.mp4", "a.mp4\n"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    assert_true(media_name_is_valid(good[i]));
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_false(media_name_is_valid(bad[i]));
  char long_name[MEDIA_NAME_MAX + 8];
  memset(long_name, 'a', sizeof long_name);
  memcpy(long_name + sizeof long_name - 5, ".mp4", 5);
  assert_false(media_name_is_valid(long_name));
}

static void test_content_types(void **state)
{
  (void) state;
  assert_string_equal(media_content_type("a.mp4"), "video/mp4");
  assert_string_equal(media_content_type("a.webm"), "video/webm");
  assert_string_equal(media_content_type("a.wav"), "audio/wav");
  assert_string_equal(media_content_type("a.mp3"), "audio/mpeg");
  assert_string_equal(media_content_type("a.ogg"), "audio/ogg");
}

static size_t count_entries(const char *path)
{
  DIR *dir = opendir(path);
  assert_non_null(dir);
  size_t count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL)
    if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, ".."))
      count++;
  closedir(dir);
  return count;
}

static void test_write_open_cleanup(void **state)
{
  fixture_t *fixture = *state;
  media_store_t *store = media_store_new(fixture->dir, 100);
  assert_non_null(store);
  const uint8_t data[] = "RIFF....WAVEdata";
  assert_int_equal(media_store_write(store, "job1.wav", data, sizeof data), 0);
  assert_int_equal(media_store_write(store, "job1.wav", data, 4), 0); /* replaced whole */
  assert_int_equal(media_store_write(store, "../escape.wav", data, 4), -1);
  assert_int_equal(count_entries(fixture->dir), 1); /* no temporary file left behind */

  int fd = -1;
  uint64_t size = 0;
  assert_int_equal(media_store_open(store, "job1.wav", &fd, &size), 0);
  assert_int_equal(size, 4);
  char buffer[8];
  assert_int_equal(read(fd, buffer, sizeof buffer), 4);
  assert_memory_equal(buffer, "RIFF", 4);
  close(fd);
  assert_int_equal(media_store_open(store, "missing.wav", &fd, &size), -1);
  assert_int_equal(media_store_open(store, "../var/media/job1.wav", &fd, &size), -1);

  /* Files that are not ours are never touched by the cleanup. */
  char foreign[160];
  snprintf(foreign, sizeof foreign, "%s/README", fixture->dir);
  FILE *file = fopen(foreign, "w");
  assert_non_null(file);
  fclose(file);
  int64_t now_s = (int64_t) time(NULL);
  assert_int_equal(media_store_cleanup(store, now_s), 0);
  assert_int_equal(media_store_cleanup(store, now_s + 101), 1);
  assert_int_equal(media_store_open(store, "job1.wav", &fd, &size), -1);
  assert_int_equal(count_entries(fixture->dir), 1);
  media_store_destroy(&store);
  assert_null(store);
}

static void test_unusable_directory(void **state)
{
  fixture_t *fixture = *state;
  char file_path[160];
  snprintf(file_path, sizeof file_path, "%s/plainfile", fixture->root);
  FILE *file = fopen(file_path, "w");
  assert_non_null(file);
  fclose(file);
  char below_file[200];
  snprintf(below_file, sizeof below_file, "%s/sub", file_path);
  assert_null(media_store_new(below_file, 100));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_name_validation),
    cmocka_unit_test(test_content_types),
    cmocka_unit_test_setup_teardown(test_write_open_cleanup, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unusable_directory, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
