/* job_store: what the gateway knows about each job, for GET /api/jobs/{id}.
 * Status events are merged in; done and failed are final and sticky. Records
 * expire a TTL after their last change. Two kinds share these functions: the
 * in-memory store (one gateway) and the Redis store (STATUS_STORE=redis://...,
 * any number of gateways: a job submitted on one is polled on another, and
 * whichever gateway receives a status event merges it). All functions are
 * thread-safe: HTTP threads read while the broker client's thread merges. */
#ifndef GATEWAY_JOB_STORE_H
#define GATEWAY_JOB_STORE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "redis_link.h"

#define JOB_ID_MAX ID_MAX
#define JOB_TIMINGS_MAX 12    /* distinct timing names kept per job */
#define JOB_SEGMENTS_MAX 64   /* segments kept per job */
#define JOB_TEXT_MAX 16384    /* longest question/reply/segment text kept, bytes */
#define JOB_CHARACTER_MAX 32  /* longest character name (the gateway's rule) */

typedef enum {
  JOB_STATE_NONE = 0, /* in an update: leave the state as it is */
  JOB_STATE_QUEUED,
  JOB_STATE_RUNNING,
  JOB_STATE_DONE,
  JOB_STATE_FAILED,
} job_state_t;

typedef struct {
  char name[16]; /* "queued", "stt", "chat", "tts", "avatar", "total" */
  uint32_t ms;
} job_timing_t;

/* One status event, already turned into URLs (media files are written before).
 * Every NULL or empty field leaves the record's value unchanged. */
typedef struct {
  const char *job_id;
  const char *session_id;
  job_state_t state;
  const char *stage;
  const char *question;   /* typed text or transcript */
  const char *reply;
  const char *audio_url;
  const char *video_url;
  const job_timing_t *timings;
  size_t timing_count;
  const char *error_code;
  const char *error_message;
  /* When is_segment, the URLs, segment_text and duration_ms describe segment
   * `segment_index` rather than the whole answer. */
  bool is_segment;
  uint32_t segment_index;
  const char *segment_text;
  uint32_t segment_count; /* the answer's number of segments once known, else 0 */
  const char *character;  /* the avatar character answering ("" = default) */
  bool cached;            /* the answer's media come from the answer cache */
  uint32_t duration_ms;
  int64_t at_ms;          /* when it happened (unix ms); 0 = now */
} job_update_t;

typedef enum {
  JOB_APPLY_UPDATED,      /* merged; the job is still open */
  JOB_APPLY_BECAME_FINAL, /* merged and this update made it done/failed */
  JOB_APPLY_SEGMENTS_READY, /* merged, and every segment of the streamed answer is
                               now rendered: this caller (only this one, even across
                               gateways) joins them and applies the final update */
  JOB_APPLY_IGNORED,      /* the job was already final: nothing changed */
  JOB_APPLY_ERROR,        /* bad update (no job id) or out of memory */
} job_apply_result_t;

/* What the owner needs once a job becomes final (session turns, metrics).
 * Strings are owned by the struct: release with job_final_clear. */
typedef struct {
  job_state_t state;
  char session_id[JOB_ID_MAX + 1];
  char *question;   /* NULL when none */
  char *reply;      /* NULL when none */
  char error_code[32];
  job_timing_t timings[JOB_TIMINGS_MAX];
  size_t timing_count;
  char *audio_url;  /* NULL when none */
  char *video_url;  /* NULL when none */
  char character[JOB_CHARACTER_MAX + 1];
  bool cached;
} job_final_t;

typedef struct job_store job_store_t;

/* A new empty store whose records live `ttl_ms` after their last change. */
job_store_t *job_store_new(int64_t ttl_ms);

/* A store whose records live in Redis through `redis` (borrowed: it must
 * outlive the store), each `ttl_ms` after its last change. Redis expires them,
 * so job_store_expire has nothing to do; `now_ms` arguments only date records. */
job_store_t *job_store_new_redis(redis_link_t *redis, int64_t ttl_ms);

/* Frees every record (in memory) and the store; sets *self_p to NULL. */
void job_store_destroy(job_store_t **self_p);

/* Records a new job as queued at `stage` (the first stage it was sent to), with
 * the question when it is known up front (typed text, else NULL). 0, or -1 when
 * out of memory or the id is already taken. */
int job_store_create(job_store_t *self, const char *job_id, const char *session_id,
                     const char *stage, const char *question, int64_t now_ms);

/* Forgets a job (e.g. the broker refused it). */
void job_store_remove(job_store_t *self, const char *job_id);

/* Merges one status event. An event for an unknown job creates its record, so a
 * store shared between gateways still follows jobs another replica submitted.
 * When the result is JOB_APPLY_BECAME_FINAL and `final` is not NULL, `final` is
 * filled (the caller then owns its strings). */
job_apply_result_t job_store_apply(job_store_t *self, const job_update_t *update,
                                   int64_t now_ms, job_final_t *final);

/* true when the job is known and done or failed. */
bool job_store_is_final(job_store_t *self, const char *job_id, int64_t now_ms);

/* The job as the JSON of api.md (GET /api/jobs/{id}); NULL when unknown or
 * expired. The caller deletes the result. */
cJSON *job_store_render(job_store_t *self, const char *job_id, int64_t now_ms);

/* Drops expired records; returns how many. */
size_t job_store_expire(job_store_t *self, int64_t now_ms);

/* Number of records, expired ones included until the next sweep. */
size_t job_store_size(job_store_t *self);

/* Frees the strings of `final`. */
void job_final_clear(job_final_t *final);

/* "queued", "running", "done", "failed" ("unknown" for JOB_STATE_NONE). */
const char *job_state_name(job_state_t state);

#endif
