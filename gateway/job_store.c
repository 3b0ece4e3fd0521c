/* job_store: the record rules (merge, render, storage JSON) and the in-memory
 * store: records behind one mutex. Each record keeps only what api.md shows;
 * text is capped so a misbehaving worker cannot grow it without bound. With
 * job_store_new_redis every call goes to job_store_redis.c instead. */
#include "job_store.h"

#include "job_store_record.h"
#include "strmap.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job_store {
  pthread_mutex_t lock;
  strmap_t *records;     /* in memory; NULL for a Redis store */
  redis_link_t *redis;   /* borrowed; NULL for an in-memory store */
  int64_t ttl_ms;
};

static void segment_clear(job_segment_t *segment)
{
  free(segment->text);
  free(segment->audio_url);
  free(segment->video_url);
  memset(segment, 0, sizeof *segment);
}

void job_record_free(void *value)
{
  job_record_t *record = value;
  if (!record)
    return;
  free(record->question);
  free(record->reply);
  free(record->audio_url);
  free(record->video_url);
  free(record->error_message);
  for (size_t i = 0; i < JOB_SEGMENTS_MAX; i++)
    segment_clear(&record->segments[i]);
  free(record);
}

bool job_state_is_final(job_state_t state)
{
  return state == JOB_STATE_DONE || state == JOB_STATE_FAILED;
}

static bool is_set(const char *text) { return text && *text; }

/* Replaces *field with a capped copy of `text` when `text` is set. Keeps the old
 * value when out of memory: a stale field beats a lost record. */
static void set_text(char **field, const char *text)
{
  if (!is_set(text))
    return;
  char *copy = strndup(text, JOB_TEXT_MAX);
  if (!copy)
    return;
  free(*field);
  *field = copy;
}

static void set_fixed(char *field, size_t size, const char *text)
{
  if (is_set(text))
    snprintf(field, size, "%s", text);
}

job_store_t *job_store_new(int64_t ttl_ms)
{
  job_store_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->records = strmap_new(job_record_free);
  if (!self->records || pthread_mutex_init(&self->lock, NULL) != 0) {
    strmap_destroy(&self->records);
    free(self);
    return NULL;
  }
  self->ttl_ms = ttl_ms;
  return self;
}

job_store_t *job_store_new_redis(redis_link_t *redis, int64_t ttl_ms)
{
  job_store_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  if (pthread_mutex_init(&self->lock, NULL) != 0) {
    free(self);
    return NULL;
  }
  self->redis = redis;
  self->ttl_ms = ttl_ms;
  return self;
}

void job_store_destroy(job_store_t **self_p)
{
  job_store_t *self = *self_p;
  if (!self)
    return;
  strmap_destroy(&self->records);
  pthread_mutex_destroy(&self->lock);
  free(self);
  *self_p = NULL;
}

job_record_t *job_record_new(const char *job_id, const char *session_id, const char *stage,
                             const char *question, int64_t now_ms)
{
  if (!is_set(job_id) || strlen(job_id) > JOB_ID_MAX)
    return NULL;
  job_record_t *record = calloc(1, sizeof *record);
  if (!record)
    return NULL;
  snprintf(record->job_id, sizeof record->job_id, "%s", job_id);
  set_fixed(record->session_id, sizeof record->session_id, session_id);
  set_fixed(record->stage, sizeof record->stage, stage);
  set_text(&record->question, question);
  record->state = JOB_STATE_QUEUED;
  record->created_ms = now_ms;
  record->updated_ms = now_ms;
  return record;
}

/* A record past its TTL counts as gone even before the sweep removes it. */
static job_record_t *lookup(job_store_t *self, const char *job_id, int64_t now_ms)
{
  job_record_t *record = strmap_get(self->records, job_id);
  if (record && now_ms - record->updated_ms > self->ttl_ms)
    return NULL;
  return record;
}

int job_store_create(job_store_t *self, const char *job_id, const char *session_id,
                     const char *stage, const char *question, int64_t now_ms)
{
  if (self->redis)
    return job_store_redis_create(self->redis, self->ttl_ms, job_id, session_id, stage,
                                  question, now_ms);
  pthread_mutex_lock(&self->lock);
  int rc = -1;
  if (!strmap_get(self->records, job_id)) {
    job_record_t *record = job_record_new(job_id, session_id, stage, question, now_ms);
    if (record) {
      rc = strmap_put(self->records, job_id, record);
      if (rc != 0)
        job_record_free(record);
    }
  }
  pthread_mutex_unlock(&self->lock);
  return rc;
}

void job_store_remove(job_store_t *self, const char *job_id)
{
  if (self->redis) {
    job_store_redis_remove(self->redis, job_id);
    return;
  }
  pthread_mutex_lock(&self->lock);
  strmap_remove(self->records, job_id);
  pthread_mutex_unlock(&self->lock);
}

static void merge_timing(job_record_t *record, const job_timing_t *timing)
{
  for (size_t i = 0; i < record->timing_count; i++)
    if (strcmp(record->timings[i].name, timing->name) == 0) {
      record->timings[i].ms = timing->ms;
      return;
    }
  if (record->timing_count < JOB_TIMINGS_MAX && timing->name[0])
    record->timings[record->timing_count++] = *timing;
}

static bool has_timing(const job_record_t *record, const char *name)
{
  for (size_t i = 0; i < record->timing_count; i++)
    if (strcmp(record->timings[i].name, name) == 0)
      return true;
  return false;
}

static void merge_segment(job_record_t *record, const job_update_t *update, int64_t at_ms)
{
  if (update->segment_index >= JOB_SEGMENTS_MAX)
    return;
  job_segment_t *segment = &record->segments[update->segment_index];
  segment->present = true;
  set_text(&segment->text, update->segment_text);
  set_text(&segment->audio_url, update->audio_url);
  set_text(&segment->video_url, update->video_url);
  if (update->duration_ms)
    segment->duration_ms = update->duration_ms;
  /* The segment's report carries the timings of its own way through the stages. */
  for (size_t i = 0; i < update->timing_count; i++) {
    if (strcmp(update->timings[i].name, "tts") == 0)
      segment->tts_ms = update->timings[i].ms;
    else if (strcmp(update->timings[i].name, "avatar") == 0)
      segment->avatar_ms = update->timings[i].ms;
  }
  /* How long the person waited before the answer could start playing. */
  if (update->segment_index == 0 && is_set(update->video_url) &&
      !has_timing(record, "first_segment") && at_ms >= record->created_ms) {
    job_timing_t first = {.name = "first_segment", .ms = (uint32_t) (at_ms - record->created_ms)};
    merge_timing(record, &first);
  }
}

job_apply_result_t job_record_outcome(job_record_t *record)
{
  if (job_state_is_final(record->state))
    return JOB_APPLY_BECAME_FINAL;
  if (!record->segment_count || record->assembling)
    return JOB_APPLY_UPDATED;
  for (uint32_t i = 0; i < record->segment_count; i++)
    if (!is_set(record->segments[i].video_url))
      return JOB_APPLY_UPDATED;
  record->assembling = true;
  return JOB_APPLY_SEGMENTS_READY;
}

void job_record_merge(job_record_t *record, const job_update_t *update, int64_t at_ms)
{
  set_fixed(record->session_id, sizeof record->session_id, update->session_id);
  if (update->state != JOB_STATE_NONE)
    record->state = update->state;
  set_fixed(record->stage, sizeof record->stage, update->stage);
  set_text(&record->question, update->question);
  set_text(&record->reply, update->reply);
  if (update->segment_count && update->segment_count <= JOB_SEGMENTS_MAX)
    record->segment_count = update->segment_count;
  set_fixed(record->character, sizeof record->character, update->character);
  if (update->cached)
    record->cached = true;
  if (update->is_segment) {
    merge_segment(record, update, at_ms);
  } else {
    set_text(&record->audio_url, update->audio_url);
    set_text(&record->video_url, update->video_url);
  }
  for (size_t i = 0; i < update->timing_count; i++)
    merge_timing(record, &update->timings[i]);
  if (is_set(update->error_code)) {
    set_fixed(record->error_code, sizeof record->error_code, update->error_code);
    set_text(&record->error_message, is_set(update->error_message) ? update->error_message
                                                                   : update->error_code);
  }
  /* A job that fails without saying why still owes the client an error object. */
  if (record->state == JOB_STATE_FAILED && !record->error_code[0]) {
    set_fixed(record->error_code, sizeof record->error_code, "backend_error");
    set_text(&record->error_message, "The answer could not be produced.");
  }
  if (job_state_is_final(record->state) && !has_timing(record, "total") && at_ms >= record->created_ms) {
    job_timing_t total = {.name = "total", .ms = (uint32_t) (at_ms - record->created_ms)};
    merge_timing(record, &total);
  }
}

void job_record_fill_final(const job_record_t *record, job_final_t *final)
{
  memset(final, 0, sizeof *final);
  final->state = record->state;
  snprintf(final->session_id, sizeof final->session_id, "%s", record->session_id);
  final->question = record->question ? strdup(record->question) : NULL;
  final->reply = record->reply ? strdup(record->reply) : NULL;
  snprintf(final->error_code, sizeof final->error_code, "%s", record->error_code);
  memcpy(final->timings, record->timings, sizeof final->timings);
  final->timing_count = record->timing_count;
  final->audio_url = record->audio_url ? strdup(record->audio_url) : NULL;
  final->video_url = record->video_url ? strdup(record->video_url) : NULL;
  snprintf(final->character, sizeof final->character, "%s", record->character);
  final->cached = record->cached;
}

job_apply_result_t job_store_apply(job_store_t *self, const job_update_t *update,
                                   int64_t now_ms, job_final_t *final)
{
  if (!is_set(update->job_id))
    return JOB_APPLY_ERROR;
  if (self->redis)
    return job_store_redis_apply(self->redis, self->ttl_ms, update, now_ms, final);
  pthread_mutex_lock(&self->lock);
  job_apply_result_t result = JOB_APPLY_ERROR;
  job_record_t *record = lookup(self, update->job_id, now_ms);
  if (!record) {
    record = job_record_new(update->job_id, update->session_id, NULL, NULL, now_ms);
    if (record && strmap_put(self->records, update->job_id, record) != 0) {
      job_record_free(record);
      record = NULL;
    }
  }
  if (record && job_state_is_final(record->state)) {
    result = JOB_APPLY_IGNORED;
  } else if (record) {
    job_record_merge(record, update, update->at_ms ? update->at_ms : now_ms);
    record->updated_ms = now_ms;
    result = job_record_outcome(record);
    if (result == JOB_APPLY_BECAME_FINAL && final)
      job_record_fill_final(record, final);
  }
  pthread_mutex_unlock(&self->lock);
  return result;
}

bool job_store_is_final(job_store_t *self, const char *job_id, int64_t now_ms)
{
  if (self->redis)
    return job_store_redis_is_final(self->redis, job_id);
  pthread_mutex_lock(&self->lock);
  job_record_t *record = lookup(self, job_id, now_ms);
  bool final = record && job_state_is_final(record->state);
  pthread_mutex_unlock(&self->lock);
  return final;
}

/* cJSON's Add* calls do nothing on a NULL parent or item, so the renderers only
 * test the root for allocation failure. */
static void add_optional_string(cJSON *object, const char *name, const char *value)
{
  if (is_set(value))
    cJSON_AddStringToObject(object, name, value);
}

static cJSON *render_segments(const job_record_t *record)
{
  cJSON *segments = cJSON_CreateArray();
  for (uint32_t i = 0; segments && i < JOB_SEGMENTS_MAX; i++) {
    const job_segment_t *segment = &record->segments[i];
    if (!segment->present)
      continue;
    cJSON *item = cJSON_CreateObject();
    if (!item)
      continue;
    cJSON_AddNumberToObject(item, "index", i);
    cJSON_AddStringToObject(item, "text", segment->text ? segment->text : "");
    add_optional_string(item, "audio_url", segment->audio_url);
    add_optional_string(item, "video_url", segment->video_url);
    cJSON_AddNumberToObject(item, "duration_ms", segment->duration_ms);
    if (segment->tts_ms || segment->avatar_ms) {
      cJSON *timings = cJSON_AddObjectToObject(item, "timings_ms");
      cJSON_AddNumberToObject(timings, "tts", segment->tts_ms);
      cJSON_AddNumberToObject(timings, "avatar", segment->avatar_ms);
    }
    cJSON_AddItemToArray(segments, item);
  }
  return segments;
}

/* "total" goes last whatever order the stages reported in, as in api.md. */
static cJSON *render_timings(const job_record_t *record)
{
  cJSON *timings = cJSON_CreateObject();
  const job_timing_t *total = NULL;
  for (size_t i = 0; timings && i < record->timing_count; i++) {
    if (strcmp(record->timings[i].name, "total") == 0)
      total = &record->timings[i];
    else
      cJSON_AddNumberToObject(timings, record->timings[i].name, record->timings[i].ms);
  }
  if (timings && total)
    cJSON_AddNumberToObject(timings, total->name, total->ms);
  return timings;
}

static bool has_segments(const job_record_t *record)
{
  for (size_t i = 0; i < JOB_SEGMENTS_MAX; i++)
    if (record->segments[i].present)
      return true;
  return false;
}

cJSON *job_record_render(const job_record_t *record)
{
  cJSON *root = cJSON_CreateObject();
  if (!root)
    return NULL;
  cJSON_AddStringToObject(root, "job_id", record->job_id);
  cJSON_AddStringToObject(root, "session_id", record->session_id);
  cJSON_AddStringToObject(root, "state", job_state_name(record->state));
  add_optional_string(root, "stage", record->stage);
  add_optional_string(root, "transcript", record->question);
  add_optional_string(root, "reply", record->reply);
  add_optional_string(root, "audio_url", record->audio_url);
  add_optional_string(root, "video_url", record->video_url);
  if (has_segments(record))
    cJSON_AddItemToObject(root, "segments", render_segments(record));
  if (record->segment_count)
    cJSON_AddNumberToObject(root, "segment_count", record->segment_count);
  if (record->cached)
    cJSON_AddTrueToObject(root, "cached");
  if (record->timing_count)
    cJSON_AddItemToObject(root, "timings_ms", render_timings(record));
  if (record->error_code[0]) {
    cJSON *error = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(error, "code", record->error_code);
    cJSON_AddStringToObject(error, "message",
                            record->error_message ? record->error_message : record->error_code);
  } else {
    cJSON_AddNullToObject(root, "error");
  }
  return root;
}

/* ---------------------------------------------------------- storage JSON */

static void add_string_if_set(cJSON *object, const char *name, const char *value)
{
  if (is_set(value))
    cJSON_AddStringToObject(object, name, value);
}

char *job_record_to_json(const job_record_t *record)
{
  cJSON *root = cJSON_CreateObject();
  if (!root)
    return NULL;
  cJSON_AddStringToObject(root, "job_id", record->job_id);
  add_string_if_set(root, "session_id", record->session_id);
  cJSON_AddNumberToObject(root, "state", record->state);
  add_string_if_set(root, "stage", record->stage);
  add_string_if_set(root, "question", record->question);
  add_string_if_set(root, "reply", record->reply);
  add_string_if_set(root, "audio_url", record->audio_url);
  add_string_if_set(root, "video_url", record->video_url);
  cJSON *timings = cJSON_AddArrayToObject(root, "timings");
  for (size_t i = 0; timings && i < record->timing_count; i++) {
    cJSON *timing = cJSON_CreateObject();
    cJSON_AddStringToObject(timing, "name", record->timings[i].name);
    cJSON_AddNumberToObject(timing, "ms", record->timings[i].ms);
    cJSON_AddItemToArray(timings, timing);
  }
  add_string_if_set(root, "error_code", record->error_code);
  add_string_if_set(root, "error_message", record->error_message);
  cJSON *segments = cJSON_AddArrayToObject(root, "segments");
  for (uint32_t i = 0; segments && i < JOB_SEGMENTS_MAX; i++) {
    const job_segment_t *segment = &record->segments[i];
    if (!segment->present)
      continue;
    cJSON *item = cJSON_CreateObject();
    cJSON_AddNumberToObject(item, "index", i);
    add_string_if_set(item, "text", segment->text);
    add_string_if_set(item, "audio_url", segment->audio_url);
    add_string_if_set(item, "video_url", segment->video_url);
    cJSON_AddNumberToObject(item, "duration_ms", segment->duration_ms);
    cJSON_AddNumberToObject(item, "tts_ms", segment->tts_ms);
    cJSON_AddNumberToObject(item, "avatar_ms", segment->avatar_ms);
    cJSON_AddItemToArray(segments, item);
  }
  cJSON_AddNumberToObject(root, "segment_count", record->segment_count);
  cJSON_AddBoolToObject(root, "assembling", record->assembling);
  add_string_if_set(root, "character", record->character);
  cJSON_AddBoolToObject(root, "cached", record->cached);
  cJSON_AddNumberToObject(root, "created_ms", (double) record->created_ms);
  cJSON_AddNumberToObject(root, "updated_ms", (double) record->updated_ms);
  /* A failed Add leaves a field out; a record missing its arrays is incomplete. */
  char *text = timings && segments ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  return text;
}

static const char *string_of(const cJSON *object, const char *name)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
  return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* A number field within [0, max], else 0: the document came over the network. */
static double number_of(const cJSON *object, const char *name, double max)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
  if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > max)
    return 0;
  return item->valuedouble;
}

static void read_segments(job_record_t *record, const cJSON *segments)
{
  const cJSON *item;
  cJSON_ArrayForEach(item, segments) {
    const cJSON *index = cJSON_GetObjectItemCaseSensitive(item, "index");
    if (!cJSON_IsNumber(index) || index->valuedouble < 0 || index->valuedouble >= JOB_SEGMENTS_MAX)
      continue;
    job_segment_t *segment = &record->segments[(size_t) index->valuedouble];
    segment->present = true;
    set_text(&segment->text, string_of(item, "text"));
    set_text(&segment->audio_url, string_of(item, "audio_url"));
    set_text(&segment->video_url, string_of(item, "video_url"));
    segment->duration_ms = (uint32_t) number_of(item, "duration_ms", UINT32_MAX);
    segment->tts_ms = (uint32_t) number_of(item, "tts_ms", UINT32_MAX);
    segment->avatar_ms = (uint32_t) number_of(item, "avatar_ms", UINT32_MAX);
  }
}

job_record_t *job_record_from_json(const char *text)
{
  cJSON *root = cJSON_Parse(text);
  job_record_t *record =
    root ? job_record_new(string_of(root, "job_id"), string_of(root, "session_id"),
                          string_of(root, "stage"), string_of(root, "question"), 0)
         : NULL;
  if (!record) {
    cJSON_Delete(root);
    return NULL;
  }
  record->state = (job_state_t) number_of(root, "state", JOB_STATE_FAILED);
  set_text(&record->reply, string_of(root, "reply"));
  set_text(&record->audio_url, string_of(root, "audio_url"));
  set_text(&record->video_url, string_of(root, "video_url"));
  const cJSON *timing;
  cJSON_ArrayForEach(timing, cJSON_GetObjectItemCaseSensitive(root, "timings")) {
    const char *name = string_of(timing, "name");
    if (name && record->timing_count < JOB_TIMINGS_MAX) {
      job_timing_t *slot = &record->timings[record->timing_count++];
      snprintf(slot->name, sizeof slot->name, "%s", name);
      slot->ms = (uint32_t) number_of(timing, "ms", UINT32_MAX);
    }
  }
  set_fixed(record->error_code, sizeof record->error_code, string_of(root, "error_code"));
  set_text(&record->error_message, string_of(root, "error_message"));
  read_segments(record, cJSON_GetObjectItemCaseSensitive(root, "segments"));
  record->segment_count = (uint32_t) number_of(root, "segment_count", JOB_SEGMENTS_MAX);
  record->assembling = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "assembling"));
  set_fixed(record->character, sizeof record->character, string_of(root, "character"));
  record->cached = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "cached"));
  record->created_ms = (int64_t) number_of(root, "created_ms", 9e15);
  record->updated_ms = (int64_t) number_of(root, "updated_ms", 9e15);
  cJSON_Delete(root);
  return record;
}

/* ---------------------------------------------------------- the store */

cJSON *job_store_render(job_store_t *self, const char *job_id, int64_t now_ms)
{
  if (self->redis)
    return job_store_redis_render(self->redis, job_id);
  pthread_mutex_lock(&self->lock);
  job_record_t *record = lookup(self, job_id, now_ms);
  cJSON *json = record ? job_record_render(record) : NULL;
  pthread_mutex_unlock(&self->lock);
  return json;
}

typedef struct {
  int64_t now_ms;
  int64_t ttl_ms;
} expiry_t;

static bool record_expired(const void *value, void *arg)
{
  const job_record_t *record = value;
  const expiry_t *expiry = arg;
  return expiry->now_ms - record->updated_ms > expiry->ttl_ms;
}

size_t job_store_expire(job_store_t *self, int64_t now_ms)
{
  if (self->redis)
    return 0; /* Redis expires the keys itself */
  expiry_t expiry = {.now_ms = now_ms, .ttl_ms = self->ttl_ms};
  pthread_mutex_lock(&self->lock);
  size_t removed = strmap_remove_if(self->records, record_expired, &expiry);
  pthread_mutex_unlock(&self->lock);
  return removed;
}

size_t job_store_size(job_store_t *self)
{
  if (self->redis)
    return job_store_redis_size(self->redis);
  pthread_mutex_lock(&self->lock);
  size_t size = strmap_size(self->records);
  pthread_mutex_unlock(&self->lock);
  return size;
}

void job_final_clear(job_final_t *final)
{
  free(final->question);
  free(final->reply);
  free(final->audio_url);
  free(final->video_url);
  final->question = NULL;
  final->reply = NULL;
  final->audio_url = NULL;
  final->video_url = NULL;
}

const char *job_state_name(job_state_t state)
{
  switch (state) {
  case JOB_STATE_QUEUED: return "queued";
  case JOB_STATE_RUNNING: return "running";
  case JOB_STATE_DONE: return "done";
  case JOB_STATE_FAILED: return "failed";
  case JOB_STATE_NONE: break;
  }
  return "unknown";
}
