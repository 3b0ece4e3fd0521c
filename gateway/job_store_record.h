/* job_store_record: one job's record and the rules that merge status events
 * into it, shared by the in-memory store (job_store.c) and the Redis store
 * (job_store_redis.c), which keeps each record as a JSON document. Private to
 * the job store: nothing else includes this. */
#ifndef GATEWAY_JOB_STORE_RECORD_H
#define GATEWAY_JOB_STORE_RECORD_H

#include "job_store.h"
#include "redis_link.h"

typedef struct {
  bool present;
  char *text;
  char *audio_url;
  char *video_url;
  uint32_t duration_ms;
  uint32_t tts_ms;      /* this sentence's own stage times; 0 until reported */
  uint32_t avatar_ms;
} job_segment_t;

typedef struct {
  char job_id[JOB_ID_MAX + 1];
  char session_id[JOB_ID_MAX + 1];
  job_state_t state;
  char stage[16];
  char *question;
  char *reply;
  char *audio_url;
  char *video_url;
  job_timing_t timings[JOB_TIMINGS_MAX];
  size_t timing_count;
  char error_code[32];
  char *error_message;
  job_segment_t segments[JOB_SEGMENTS_MAX];
  uint32_t segment_count;  /* 0 until chat says how many */
  char character[JOB_CHARACTER_MAX + 1];
  bool cached;
  bool assembling;         /* a gateway is joining the segments */
  int64_t created_ms;
  int64_t updated_ms;
} job_record_t;

/* A queued record for `job_id` (NULL when the id is empty or too long, or out
 * of memory); `session_id`, `stage` and `question` may be NULL. */
job_record_t *job_record_new(const char *job_id, const char *session_id, const char *stage,
                             const char *question, int64_t now_ms);

/* Frees a record (void * so that it can be a strmap value destructor). */
void job_record_free(void *record);

/* true for done and failed. */
bool job_state_is_final(job_state_t state);

/* Merges one update into an open record that happened at `at_ms`. */
void job_record_merge(job_record_t *record, const job_update_t *update, int64_t at_ms);

/* What a merge made of an open record: JOB_APPLY_BECAME_FINAL,
 * JOB_APPLY_SEGMENTS_READY (the first time every segment has its video; the
 * record then says it is being assembled) or JOB_APPLY_UPDATED. */
job_apply_result_t job_record_outcome(job_record_t *record);

/* Fills `final` from a record that just became final. */
void job_record_fill_final(const job_record_t *record, job_final_t *final);

/* The record as the JSON of api.md; NULL when out of memory. */
cJSON *job_record_render(const job_record_t *record);

/* The whole record as compact JSON for storage (malloc'd), NULL when out of memory. */
char *job_record_to_json(const job_record_t *record);

/* A record from job_record_to_json's text; NULL when it is not such a document. */
job_record_t *job_record_from_json(const char *text);

/* The Redis store's side of each job_store_* function (job_store_redis.c). */
int job_store_redis_create(redis_link_t *redis, int64_t ttl_ms, const char *job_id,
                           const char *session_id, const char *stage, const char *question,
                           int64_t now_ms);
void job_store_redis_remove(redis_link_t *redis, const char *job_id);
job_apply_result_t job_store_redis_apply(redis_link_t *redis, int64_t ttl_ms,
                                         const job_update_t *update, int64_t now_ms,
                                         job_final_t *final);
bool job_store_redis_is_final(redis_link_t *redis, const char *job_id);
cJSON *job_store_redis_render(redis_link_t *redis, const char *job_id);
size_t job_store_redis_size(redis_link_t *redis);

#endif
