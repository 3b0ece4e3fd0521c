/* job_store_redis: the job store in Redis, one key per job ("avatar:job:<id>")
 * holding the record as JSON with a TTL renewed at every change. Status events
 * of one job may reach different gateways (the broker hands each event to one
 * of them), so every merge is an optimistic transaction: two gateways merging
 * into the same job never lose each other's fields, and done/failed stay
 * sticky whoever wrote them. */
#include "job_store_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOB_KEY_PREFIX REDIS_KEY_PREFIX "job:"

/* false when the id cannot be a key (too long): such a job is never stored. */
static bool job_key(const char *job_id, char key[REDIS_KEY_MAX])
{
  return job_id && *job_id && strlen(job_id) <= JOB_ID_MAX &&
         snprintf(key, REDIS_KEY_MAX, JOB_KEY_PREFIX "%s", job_id) < REDIS_KEY_MAX;
}

/* The stored record, or NULL when it is unknown, expired or Redis is down. */
static job_record_t *load(redis_link_t *redis, const char *job_id)
{
  char key[REDIS_KEY_MAX];
  char *text = NULL;
  size_t size;
  if (!job_key(job_id, key) || redis_link_get(redis, key, &text, &size) != 1)
    return NULL;
  job_record_t *record = job_record_from_json(text);
  free(text);
  return record;
}

int job_store_redis_create(redis_link_t *redis, int64_t ttl_ms, const char *job_id,
                           const char *session_id, const char *stage, const char *question,
                           int64_t now_ms)
{
  char key[REDIS_KEY_MAX];
  if (!job_key(job_id, key))
    return -1;
  job_record_t *record = job_record_new(job_id, session_id, stage, question, now_ms);
  char *text = record ? job_record_to_json(record) : NULL;
  job_record_free(record);
  int rc = text ? redis_link_set(redis, key, text, strlen(text), ttl_ms, true) : -1;
  free(text);
  return rc == 1 ? 0 : -1;
}

void job_store_redis_remove(redis_link_t *redis, const char *job_id)
{
  char key[REDIS_KEY_MAX];
  if (job_key(job_id, key))
    redis_link_delete(redis, key);
}

typedef struct {
  const job_update_t *update;
  int64_t now_ms;
  job_apply_result_t result;
  job_final_t *final;   /* the caller's, or NULL */
  bool final_filled;
} apply_t;

/* redis_update_fn: the same merge as the in-memory store, on the stored copy. */
static char *apply_to_stored(const char *current, size_t size, void *arg)
{
  (void) size;
  apply_t *apply = arg;
  const job_update_t *update = apply->update;
  /* A retry after a conflict starts from the newer record: forget the last try. */
  if (apply->final_filled)
    job_final_clear(apply->final);
  apply->final_filled = false;
  apply->result = JOB_APPLY_ERROR;
  job_record_t *record = current ? job_record_from_json(current)
                                 : job_record_new(update->job_id, update->session_id, NULL,
                                                  NULL, apply->now_ms);
  if (!record)
    return NULL;
  char *text = NULL;
  if (job_state_is_final(record->state)) {
    apply->result = JOB_APPLY_IGNORED;
  } else {
    job_record_merge(record, update, update->at_ms ? update->at_ms : apply->now_ms);
    record->updated_ms = apply->now_ms;
    /* Decided before storing: the claim to assemble is part of the stored record,
     * so of two gateways merging the last segments only one wins it. */
    job_apply_result_t outcome = job_record_outcome(record);
    text = job_record_to_json(record);
    if (text) {
      bool became_final = outcome == JOB_APPLY_BECAME_FINAL;
      apply->result = outcome;
      if (became_final && apply->final) {
        job_record_fill_final(record, apply->final);
        apply->final_filled = true;
      }
    }
  }
  job_record_free(record);
  return text;
}

job_apply_result_t job_store_redis_apply(redis_link_t *redis, int64_t ttl_ms,
                                         const job_update_t *update, int64_t now_ms,
                                         job_final_t *final)
{
  char key[REDIS_KEY_MAX];
  if (!job_key(update->job_id, key))
    return JOB_APPLY_ERROR;
  apply_t apply = {.update = update, .now_ms = now_ms, .final = final};
  if (redis_link_update(redis, key, ttl_ms, apply_to_stored, &apply) < 0) {
    if (apply.final_filled)
      job_final_clear(final);
    return JOB_APPLY_ERROR;
  }
  return apply.result;
}

bool job_store_redis_is_final(redis_link_t *redis, const char *job_id)
{
  job_record_t *record = load(redis, job_id);
  bool final = record && job_state_is_final(record->state);
  job_record_free(record);
  return final;
}

cJSON *job_store_redis_render(redis_link_t *redis, const char *job_id)
{
  job_record_t *record = load(redis, job_id);
  cJSON *json = record ? job_record_render(record) : NULL;
  job_record_free(record);
  return json;
}

size_t job_store_redis_size(redis_link_t *redis)
{
  long count = redis_link_count(redis, JOB_KEY_PREFIX);
  return count > 0 ? (size_t) count : 0;
}
