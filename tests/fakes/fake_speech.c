/* fake_speech: espeak-ng's WAV output, resampled (see fake_speech.h). */
#include "fake_speech.h"

#include "audio.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_SPEECH_BYTES (32u << 20)

/* Runs espeak-ng --stdout TEXT and collects its WAV. */
static int run_espeak(const char *text, uint8_t **out, size_t *out_size)
{
  const char *program = getenv("ESPEAK_NG");
  if (!program || !*program)
    program = "espeak-ng";
  int fds[2];
  if (pipe(fds) != 0)
    return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", 0, 0);
  char *argv[] = {(char *) program, "--stdout", "--", (char *) text, NULL};
  pid_t pid;
  int spawned = posix_spawnp(&pid, program, &actions, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (spawned != 0) {
    close(fds[0]);
    return -1;
  }
  uint8_t *data = NULL;
  size_t size = 0, capacity = 0;
  bool failed = false;
  for (;;) {
    if (size + 65536 > capacity) {
      capacity = capacity ? capacity * 2 : 262144;
      uint8_t *grown = capacity <= MAX_SPEECH_BYTES ? realloc(data, capacity) : NULL;
      if (!grown) {
        failed = true;
        break;
      }
      data = grown;
    }
    ssize_t n = read(fds[0], data + size, capacity - size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      failed = n < 0;
      break;
    }
    size += (size_t) n;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      failed = true;
      break;
    }
  }
  if (failed || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || size < 44) {
    free(data);
    return -1;
  }
  *out = data;
  *out_size = size;
  return 0;
}

int fake_speak_wav(const char *text, int sample_rate, uint8_t **wav, size_t *wav_size)
{
  uint8_t *raw = NULL;
  size_t raw_size = 0;
  if (run_espeak(text, &raw, &raw_size) != 0)
    return -1;
  /* espeak-ng --stdout leaves the RIFF sizes at 0x7ffff...: FFmpeg reads to the end. */
  pcm_t pcm = {0};
  stage_error_t err = {0};
  int rc = audio_decode(raw, raw_size, sample_rate, 0, &pcm, &err);
  free(raw);
  if (rc != 0)
    return -1;
  rc = audio_wav_encode(&pcm, wav, wav_size);
  pcm_release(&pcm);
  return rc;
}
