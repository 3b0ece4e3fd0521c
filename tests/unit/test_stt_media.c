/* test_stt_media: makes test audio with espeak-ng and ffmpeg in a temporary directory. */
#include "test_stt_media.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_ARGS = 64 };

int media_init(media_t *media)
{
  const char *tmp = getenv("TMPDIR");
  int written = snprintf(media->dir, sizeof media->dir, "%s/stt-test-XXXXXX",
                         tmp && *tmp ? tmp : "/tmp");
  if (written < 0 || (size_t) written >= sizeof media->dir || !mkdtemp(media->dir)) {
    media->dir[0] = '\0';
    return -1;
  }
  return 0;
}

void media_cleanup(media_t *media)
{
  if (!media->dir[0])
    return;
  DIR *dir = opendir(media->dir);
  if (dir) {
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
      if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, ".."))
        continue;
      char path[512];
      media_path(media, entry->d_name, path, sizeof path);
      unlink(path);
    }
    closedir(dir);
  }
  rmdir(media->dir);
  media->dir[0] = '\0';
}

void media_path(const media_t *media, const char *name, char *out, size_t size)
{
  snprintf(out, size, "%s/%s", media->dir, name);
}

static int redirect(const char *path, int target)
{
  int fd = open(path ? path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return -1;
  int rc = dup2(fd, target);
  close(fd);
  return rc < 0 ? -1 : 0;
}

int media_run(const char *const argv[], const char *stdout_path, const char *stderr_path)
{
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    if (redirect(stdout_path, STDOUT_FILENO) < 0 || redirect(stderr_path, STDERR_FILENO) < 0)
      _exit(126);
    execvp(argv[0], (char *const *) argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *tool(const char *variable, const char *fallback)
{
  const char *path = getenv(variable);
  return path && *path ? path : fallback;
}

int media_speak(const media_t *media, const char *text, const char *name)
{
  char path[512];
  media_path(media, name, path, sizeof path);
  const char *argv[] = {tool("ESPEAK_NG", "espeak-ng"), "-v", "en-us", "-w", path, text, NULL};
  return media_run(argv, NULL, NULL) == 0 ? 0 : -1;
}

int media_ffmpeg(const media_t *media, const char *const args[], const char *name, bool streamed)
{
  /* The argument after "-i" names a file of the directory, unless it is a lavfi
   * source description such as "anullsrc=r=16000". */
  char paths[MAX_ARGS][512];
  const char *argv[MAX_ARGS + 8];
  size_t argc = 0, count = 0;
  argv[argc++] = tool("FFMPEG", "ffmpeg");
  argv[argc++] = "-nostdin";
  argv[argc++] = "-y";
  argv[argc++] = "-loglevel";
  argv[argc++] = "error";
  for (; args[count] && count < MAX_ARGS; count++) {
    if (count > 0 && !strcmp(args[count - 1], "-i") && !strchr(args[count], '=')) {
      media_path(media, args[count], paths[count], sizeof paths[count]);
      argv[argc++] = paths[count];
    } else {
      argv[argc++] = args[count];
    }
  }
  if (args[count])
    return -1;
  char out[512];
  media_path(media, name, out, sizeof out);
  argv[argc++] = streamed ? "pipe:1" : out;
  argv[argc] = NULL;
  return media_run(argv, streamed ? out : NULL, NULL) == 0 ? 0 : -1;
}

uint8_t *media_load(const media_t *media, const char *name, size_t *size)
{
  char path[512];
  media_path(media, name, path, sizeof path);
  FILE *file = fopen(path, "rb");
  if (!file)
    return NULL;
  struct stat info;
  uint8_t *data = NULL;
  if (fstat(fileno(file), &info) == 0 && info.st_size >= 0) {
    data = malloc((size_t) info.st_size + 1);
    if (data && fread(data, 1, (size_t) info.st_size, file) != (size_t) info.st_size) {
      free(data);
      data = NULL;
    }
  }
  fclose(file);
  if (data)
    *size = (size_t) info.st_size;
  return data;
}
