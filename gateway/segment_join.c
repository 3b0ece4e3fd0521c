/* segment_join: joining a streamed answer's segments (see segment_join.h). */
#include "segment_join.h"

#include "job_store.h"
#include "media_concat.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MEDIA_PREFIX "/media/"
#define SEGMENT_FILE_MAX ((uint64_t) 256 << 20) /* far above any one sentence */

/* The files of one kind (audio or video) of every segment, read into memory. */
typedef struct {
  media_part_t parts[JOB_SEGMENTS_MAX];
  const char *names[JOB_SEGMENTS_MAX];
  size_t count;
} segment_files_t;

static void files_release(segment_files_t *files)
{
  for (size_t i = 0; i < files->count; i++)
    free((void *) files->parts[i].data);
  files->count = 0;
}

/* Reads a whole media file; NULL when it is gone or cannot be read. */
static uint8_t *read_media(media_store_t *media, const char *name, size_t *size)
{
  int fd = -1;
  uint64_t length = 0;
  if (media_store_open(media, name, &fd, &length) != 0)
    return NULL;
  uint8_t *data = length <= SEGMENT_FILE_MAX ? malloc(length ? length : 1) : NULL;
  size_t done = 0;
  while (data && done < length) {
    ssize_t got = pread(fd, data + done, length - done, (off_t) done);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      free(data);
      data = NULL;
    } else {
      done += (size_t) got;
    }
  }
  close(fd);
  *size = done;
  return data;
}

/* The file name behind a segment's URL field, or NULL when it has none or
 * points elsewhere than our media store. */
static const char *local_name(const cJSON *segment, const char *field)
{
  const cJSON *url = cJSON_GetObjectItemCaseSensitive(segment, field);
  if (!cJSON_IsString(url) || strncmp(url->valuestring, MEDIA_PREFIX, strlen(MEDIA_PREFIX)) != 0)
    return NULL;
  return url->valuestring + strlen(MEDIA_PREFIX);
}

/* Collects and reads segment `field` of segments 0..count-1. 1 when all have
 * one, 0 when none has (nothing to join), -1 on a gap or a read error. */
static int collect(media_store_t *media, const cJSON *segments, uint32_t count, const char *field,
                   segment_files_t *files, char *error, size_t error_size)
{
  for (uint32_t index = 0; index < count; index++) {
    const cJSON *found = NULL, *segment;
    cJSON_ArrayForEach(segment, segments) {
      const cJSON *number = cJSON_GetObjectItemCaseSensitive(segment, "index");
      if (cJSON_IsNumber(number) && number->valuedouble == index)
        found = segment;
    }
    const char *name = found ? local_name(found, field) : NULL;
    if (!name && index == 0 && field[0] == 'a')
      return 0; /* a backend without separate audio: the video carries it */
    if (!name) {
      snprintf(error, error_size, "segment %u has no %s in the media store", index, field);
      return -1;
    }
    size_t size = 0;
    uint8_t *data = read_media(media, name, &size);
    if (!data) {
      snprintf(error, error_size, "segment %u's file %s cannot be read", index, name);
      return -1;
    }
    files->parts[files->count] = (media_part_t) {.data = data, .size = size};
    files->names[files->count++] = name;
  }
  return 1;
}

/* Joins the files into `<job_id>.<ext>` and writes it; fills `url`. */
static int join_kind(media_store_t *media, const char *job_id, segment_files_t *files, char *url,
                     size_t url_size, char *error, size_t error_size)
{
  if (files->count == 1) {
    snprintf(url, url_size, MEDIA_PREFIX "%s", files->names[0]);
    return 0;
  }
  const char *muxer = media_concat_muxer(files->names[0]);
  if (!muxer) {
    snprintf(error, error_size, "%s is not a kind of file that can be joined", files->names[0]);
    return -1;
  }
  uint8_t *joined = NULL;
  size_t size = 0;
  if (media_concat(files->parts, files->count, muxer, &joined, &size, error, error_size) != 0)
    return -1;
  char name[MEDIA_NAME_MAX + 1];
  snprintf(name, sizeof name, "%s.%s", job_id, muxer);
  int rc = media_store_write(media, name, joined, size);
  free(joined);
  if (rc != 0) {
    snprintf(error, error_size, "%s cannot be written: %s", name, strerror(errno ? errno : EIO));
    return -1;
  }
  snprintf(url, url_size, MEDIA_PREFIX "%s", name);
  return 0;
}

int segment_join(media_store_t *media, const cJSON *job, joined_answer_t *answer, char *error,
                 size_t error_size)
{
  memset(answer, 0, sizeof *answer);
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(job, "job_id");
  const cJSON *count = cJSON_GetObjectItemCaseSensitive(job, "segment_count");
  const cJSON *segments = cJSON_GetObjectItemCaseSensitive(job, "segments");
  if (!cJSON_IsString(id) || !cJSON_IsNumber(count) || count->valuedouble < 1 ||
      count->valuedouble > JOB_SEGMENTS_MAX || !cJSON_IsArray(segments)) {
    snprintf(error, error_size, "the job lists no segments");
    return -1;
  }
  uint32_t total = (uint32_t) count->valuedouble;
  segment_files_t videos = {.count = 0}, audios = {.count = 0};
  int rc = collect(media, segments, total, "video_url", &videos, error, error_size) == 1 ? 0 : -1;
  if (rc == 0)
    rc = join_kind(media, id->valuestring, &videos, answer->video_url, sizeof answer->video_url,
                   error, error_size);
  files_release(&videos);
  int audio = rc == 0 ? collect(media, segments, total, "audio_url", &audios, error, error_size) : 0;
  if (audio < 0)
    rc = -1;
  else if (audio > 0)
    rc = join_kind(media, id->valuestring, &audios, answer->audio_url, sizeof answer->audio_url,
                   error, error_size);
  files_release(&audios);
  return rc;
}
