/* segment_join: makes the whole answer of a streamed job out of its sentence
 * segments once every one is rendered: the segments' audio files joined into
 * <job_id>.<ext> and their videos into another, in the media store. */
#ifndef GATEWAY_SEGMENT_JOIN_H
#define GATEWAY_SEGMENT_JOIN_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "media_store.h"

/* The whole answer's files, as /media/ URLs (empty when there is none). */
typedef struct {
  char audio_url[MEDIA_NAME_MAX + 16];
  char video_url[MEDIA_NAME_MAX + 16];
} joined_answer_t;

/* Joins the segments listed in `job` (a job as job_store_render gives it, with
 * segment_count and segments[]) and writes the results to `media`. A single
 * segment is the whole answer: its files are used as they are. 0 with `answer`
 * filled, or -1 with a reason in `error` (a segment file is gone or unreadable,
 * the files do not match, the store cannot write). */
int segment_join(media_store_t *media, const cJSON *job, joined_answer_t *answer, char *error,
                 size_t error_size);

#endif
