/* media_store: a directory of finished media, addressed only by validated names
 * through openat(2) on the directory's descriptor, so no path is ever built
 * from client input. Or, for replicated gateways, Redis keys
 * ("avatar:media:<name>") with the TTL, copied into an anonymous memory file
 * when served so the HTTP layer sends them (and byte ranges of them) exactly
 * like files on disk. */
#include "media_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEMP_PREFIX ".tmp-"

#define MEDIA_KEY_PREFIX REDIS_KEY_PREFIX "media:"

struct media_store {
  int dir_fd;            /* the directory; -1 for a Redis store */
  redis_link_t *redis;   /* borrowed; NULL for a directory store */
  int64_t ttl_s;
};

static const struct {
  const char *extension;
  const char *content_type;
} media_types[] = {
  {"mp4", "video/mp4"},   {"webm", "video/webm"}, {"wav", "audio/wav"},
  {"mp3", "audio/mpeg"},  {"ogg", "audio/ogg"},   {"vtt", "text/vtt; charset=utf-8"},
};

static int type_index(const char *extension)
{
  for (size_t i = 0; i < sizeof media_types / sizeof media_types[0]; i++)
    if (strcmp(extension, media_types[i].extension) == 0)
      return (int) i;
  return -1;
}

bool media_name_is_valid(const char *name)
{
  size_t length = strnlen(name, MEDIA_NAME_MAX + 1);
  if (length == 0 || length > MEDIA_NAME_MAX)
    return false;
  const char *dot = strchr(name, '.');
  if (!dot || dot == name || type_index(dot + 1) < 0)
    return false;
  for (const char *p = name; p < dot; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

const char *media_content_type(const char *name)
{
  const char *dot = strrchr(name, '.');
  int index = dot ? type_index(dot + 1) : -1;
  return index < 0 ? "application/octet-stream" : media_types[index].content_type;
}

/* mkdir -p: MEDIA_DIR defaults to ./var/media, whose parent may not exist yet. */
static int make_dirs(const char *dir)
{
  char path[4096];
  if (snprintf(path, sizeof path, "%s", dir) >= (int) sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = path + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  if (mkdir(path, 0755) != 0 && errno != EEXIST)
    return -1;
  return 0;
}

media_store_t *media_store_new(const char *dir, int64_t ttl_s)
{
  if (make_dirs(dir) != 0)
    return NULL;
  media_store_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (self->dir_fd < 0) {
    free(self);
    return NULL;
  }
  self->ttl_s = ttl_s;
  return self;
}

media_store_t *media_store_new_redis(redis_link_t *redis, int64_t ttl_s)
{
  media_store_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->dir_fd = -1;
  self->redis = redis;
  self->ttl_s = ttl_s;
  return self;
}

void media_store_destroy(media_store_t **self_p)
{
  media_store_t *self = *self_p;
  if (!self)
    return;
  if (self->dir_fd >= 0)
    close(self->dir_fd);
  free(self);
  *self_p = NULL;
}

static int write_all(int fd, const uint8_t *data, size_t size)
{
  while (size) {
    ssize_t written = write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    data += written;
    size -= (size_t) written;
  }
  return 0;
}

static void media_key(const char *name, char key[REDIS_KEY_MAX])
{
  snprintf(key, REDIS_KEY_MAX, MEDIA_KEY_PREFIX "%s", name);
}

/* One SET: a reader sees the whole value or nothing, as with the rename. */
static int redis_write(media_store_t *self, const char *name, const uint8_t *data, size_t size)
{
  char key[REDIS_KEY_MAX];
  media_key(name, key);
  if (redis_link_set(self->redis, key, data, size, self->ttl_s * 1000, false) != 1) {
    errno = EIO;
    return -1;
  }
  return 0;
}

int media_store_write(media_store_t *self, const char *name, const uint8_t *data, size_t size)
{
  if (!media_name_is_valid(name)) {
    errno = EINVAL;
    return -1;
  }
  if (self->redis)
    return redis_write(self, name, data, size);
  uint32_t nonce;
  if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t) sizeof nonce)
    return -1;
  char temp[MEDIA_NAME_MAX + 32];
  snprintf(temp, sizeof temp, TEMP_PREFIX "%08x-%s", nonce, name);
  int fd = openat(self->dir_fd, temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  int rc = write_all(fd, data, size);
  if (close(fd) != 0)
    rc = -1;
  if (rc == 0)
    rc = renameat(self->dir_fd, temp, self->dir_fd, name);
  if (rc != 0) {
    int saved = errno;
    unlinkat(self->dir_fd, temp, 0);
    errno = saved;
  }
  return rc;
}

/* Copies the value into a memfd: the caller gets a descriptor it can send with
 * sendfile and byte ranges, and the memory goes when the descriptor is closed. */
static int redis_open(media_store_t *self, const char *name, int *fd_out, uint64_t *size_out)
{
  char key[REDIS_KEY_MAX];
  media_key(name, key);
  char *data = NULL;
  size_t size = 0;
  if (redis_link_get(self->redis, key, &data, &size) != 1)
    return -1;
  int fd = memfd_create("media", MFD_CLOEXEC);
  if (fd >= 0 && write_all(fd, (const uint8_t *) data, size) != 0) {
    close(fd);
    fd = -1;
  }
  free(data);
  if (fd < 0)
    return -1;
  *fd_out = fd;
  *size_out = size;
  return 0;
}

int media_store_open(media_store_t *self, const char *name, int *fd_out, uint64_t *size_out)
{
  if (!media_name_is_valid(name))
    return -1;
  if (self->redis)
    return redis_open(self, name, fd_out, size_out);
  int fd = openat(self->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -1;
  }
  *fd_out = fd;
  *size_out = (uint64_t) st.st_size;
  return 0;
}

static bool is_ours(const char *name)
{
  return media_name_is_valid(name) || strncmp(name, TEMP_PREFIX, strlen(TEMP_PREFIX)) == 0;
}

size_t media_store_cleanup(media_store_t *self, int64_t now_s)
{
  if (self->redis)
    return 0; /* Redis expires the keys itself */
  /* fdopendir takes over the descriptor it is given, so hand it a duplicate. */
  int fd = dup(self->dir_fd);
  if (fd < 0)
    return 0;
  DIR *dir = fdopendir(fd);
  if (!dir) {
    close(fd);
    return 0;
  }
  rewinddir(dir);
  size_t removed = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    struct stat st;
    if (!is_ours(entry->d_name) ||
        fstatat(self->dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode))
      continue;
    if (now_s - (int64_t) st.st_mtime > self->ttl_s &&
        unlinkat(self->dir_fd, entry->d_name, 0) == 0)
      removed++;
  }
  closedir(dir);
  return removed;
}
