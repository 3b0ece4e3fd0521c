/* media_concat: joins the sentence segments of a streamed answer into the one
 * file of the whole answer (api.md's audio_url and video_url). The packets are
 * copied one file after the other with shifted timestamps: no decoding and no
 * re-encoding, so joining takes milliseconds. */
#ifndef GATEWAY_MEDIA_CONCAT_H
#define GATEWAY_MEDIA_CONCAT_H

#include <stddef.h>
#include <stdint.h>

/* One input file in memory (borrowed). */
typedef struct {
  const uint8_t *data;
  size_t size;
} media_part_t;

/* The libavformat muxer for a media file name's extension ("mp4", "webm",
 * "wav", "mp3", "ogg"), or NULL for any other. */
const char *media_concat_muxer(const char *name);

/* Joins `count` (>= 1) files that share their streams and codecs (one backend
 * rendered them all), in order, into one file written by `muxer`. 0 with
 * *out (malloc'd; the caller frees it) and *out_size, or -1 with a reason in
 * `error` (files that cannot be read or that do not match). */
int media_concat(const media_part_t *parts, size_t count, const char *muxer, uint8_t **out,
                 size_t *out_size, char *error, size_t error_size);

#endif
