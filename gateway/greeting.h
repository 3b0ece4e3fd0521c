/* greeting: the avatar's first words (GREETING), rendered ahead of time so the
 * page has a talking video the moment it opens (GET /api/greeting). The greeting
 * goes through tts and avatar like a reply, without a session, and is kept in the
 * answer cache; the gateway asks for it at start and whenever it is gone. One
 * render per character at a time, eight characters at most at once, and a failed
 * render is tried again after ten seconds. Thread-safe. */
#ifndef GATEWAY_GREETING_H
#define GATEWAY_GREETING_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "answer_cache.h"
#include "job_store.h"
#include "pipeline.h"

typedef struct greeting greeting_t;

/* The greeting `text` for jobs in `jobs` run through `pipeline`, each with
 * `deadline_ms` to finish; `answers` may be NULL (then the finished job itself
 * is the only copy). All are borrowed. NULL when out of memory. */
greeting_t *greeting_new(const char *text, answer_cache_t *answers, job_store_t *jobs,
                         const pipeline_t *pipeline, int64_t deadline_ms);

/* Frees; sets *self_p to NULL. */
void greeting_destroy(greeting_t **self_p);

/* The greeting in `character`'s voice and face ("" = default), rendering it
 * when it is not there:
 *   200 {"text", "state": "done", "audio_url", "video_url"}
 *   202 {"text", "state": "queued"|"running", "job_id"}   (poll /api/jobs/{job_id})
 *   503 NULL: the pipeline cannot take it now, or too many are rendering.
 * Sets *status_out; the caller deletes the result. */
cJSON *greeting_get(greeting_t *self, const char *character, int *status_out);

#endif
