/* test_stt_media: test-time audio for the stt and audio unit tests. Audio is made
 * with espeak-ng and ffmpeg (paths from ESPEAK_NG and FFMPEG) in a private temporary
 * directory, so no binary fixtures live in the repository. */
#ifndef TEST_STT_MEDIA_H
#define TEST_STT_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  char dir[256];      /* the temporary directory; empty until media_init succeeds */
} media_t;

/* Creates the temporary directory. Returns 0, or -1 on failure. */
int media_init(media_t *media);

/* Removes every file of the directory and the directory itself. */
void media_cleanup(media_t *media);

/* Fills `out` with the path of `name` inside the directory. */
void media_path(const media_t *media, const char *name, char *out, size_t size);

/* Runs argv[0] (argv NULL-terminated) without a shell, stdout and stderr to the given
 * files (NULL = /dev/null). Returns its exit status, or -1 if it could not run. */
int media_run(const char *const argv[], const char *stdout_path, const char *stderr_path);

/* Speaks `text` with espeak-ng into the WAV file `name`. Returns 0 or -1. */
int media_speak(const media_t *media, const char *text, const char *name);

/* Runs ffmpeg with `args` (NULL-terminated; input files named as in the directory)
 * writing the output file `name`. With `streamed`, ffmpeg writes to a pipe, so the
 * muxer cannot seek back to store a duration: like a browser's MediaRecorder.
 * Returns 0 or -1. */
int media_ffmpeg(const media_t *media, const char *const args[], const char *name, bool streamed);

/* Reads the file `name` of the directory. Returns a malloc'd buffer (caller frees)
 * and its size, or NULL. An empty file gives a non-NULL buffer of size 0. */
uint8_t *media_load(const media_t *media, const char *name, size_t *size);

#endif
