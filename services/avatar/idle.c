/* avatar-idle: renders the idle loop -- a few seconds of the character breathing,
 * blinking and glancing about, mouth at rest, no sound -- that the page shows,
 * looping, while an answer is being made. Uses the local renderer's settings
 * (AVATAR_CHARACTER, AVATAR_CHARACTER_DIR, AVATAR_SIZE, AVATAR_FPS, AVATAR_FORMAT).
 *   avatar-idle OUTPUT_FILE [SECONDS]     (default 4 s: one calm breath) */
#include "avatar_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SECONDS 4
#define MAX_SECONDS 60

static int write_file(const char *path, const uint8_t *data, size_t size)
{
  FILE *file = fopen(path, "wb");
  if (!file) {
    fprintf(stderr, "avatar-idle: %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t written = fwrite(data, 1, size, file);
  if (fclose(file) != 0 || written != size) {
    fprintf(stderr, "avatar-idle: %s: write failed\n", path);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s OUTPUT_FILE [SECONDS]\n", argv[0]);
    return 2;
  }
  long seconds = DEFAULT_SECONDS;
  if (argc == 3) {
    char *end = NULL;
    seconds = strtol(argv[2], &end, 10);
    if (!*argv[2] || *end || seconds < 1 || seconds > MAX_SECONDS) {
      fprintf(stderr, "avatar-idle: SECONDS must be a whole number from 1 to %d\n", MAX_SECONDS);
      return 2;
    }
  }
  stage_error_t err = { 0 };
  avatar_backend_t *local = avatar_local_new(&err);
  if (!local) {
    fprintf(stderr, "avatar-idle: %s\n", err.message);
    return 1;
  }
  avatar_output_t out = { 0 };
  int rc = avatar_local_render_idle(local, NULL, (uint32_t) seconds * 1000u, &out, &err);
  if (rc != 0)
    fprintf(stderr, "avatar-idle: %s\n", err.message);
  else
    rc = write_file(argv[1], out.video, out.video_size);
  avatar_output_release(&out);
  local->destroy(&local);
  return rc == 0 ? 0 : 1;
}
