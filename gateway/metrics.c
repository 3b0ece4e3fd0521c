/* metrics: fixed-size tables behind one mutex. Label sets are small (routes are
 * fixed, error codes come from the workers), so linear scans are fine; a table
 * that fills up folds new labels into "other" instead of growing. */
#include "metrics.h"

#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_SERIES_MAX 96
#define JOB_SERIES_MAX 48
#define LABEL_MAX 32

static const char *const pipeline_stages[] = {"stt", "chat", "tts", "avatar"};
#define PIPELINE_STAGE_COUNT (sizeof pipeline_stages / sizeof pipeline_stages[0])

static const char *const timed_stages[] = {"queued", "stt", "chat", "tts", "avatar", "first_segment",
                                            "total"};
#define TIMED_STAGE_COUNT (sizeof timed_stages / sizeof timed_stages[0])

/* Upper bounds in ms: from a cache hit to a slow cloud render. */
static const uint32_t latency_bounds_ms[] = {10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000};
#define LATENCY_BUCKET_COUNT (sizeof latency_bounds_ms / sizeof latency_bounds_ms[0])

typedef struct {
  char route[LABEL_MAX];
  unsigned status;
  uint64_t count;
} request_series_t;

typedef struct {
  job_state_t state;
  char error_code[LABEL_MAX];
  uint64_t count;
} job_series_t;

typedef struct {
  uint64_t buckets[LATENCY_BUCKET_COUNT]; /* non-cumulative; summed when rendered */
  uint64_t count;
  uint64_t sum_ms;
} histogram_t;

struct metrics {
  pthread_mutex_t lock;
  request_series_t requests[REQUEST_SERIES_MAX];
  size_t request_count;
  job_series_t jobs[JOB_SERIES_MAX];
  size_t job_count;
  histogram_t latency[TIMED_STAGE_COUNT];
  uint64_t uploads;
  uint64_t upload_bytes;
  uint64_t cache_hits;
  uint64_t cache_misses;
};

metrics_t *metrics_new(void)
{
  metrics_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  if (pthread_mutex_init(&self->lock, NULL) != 0) {
    free(self);
    return NULL;
  }
  return self;
}

void metrics_destroy(metrics_t **self_p)
{
  metrics_t *self = *self_p;
  if (!self)
    return;
  pthread_mutex_destroy(&self->lock);
  free(self);
  *self_p = NULL;
}

void metrics_http_request(metrics_t *self, const char *route, unsigned status)
{
  pthread_mutex_lock(&self->lock);
  size_t i = 0;
  while (i < self->request_count &&
         !(self->requests[i].status == status && strcmp(self->requests[i].route, route) == 0))
    i++;
  if (i == self->request_count && i < REQUEST_SERIES_MAX) {
    snprintf(self->requests[i].route, LABEL_MAX, "%s", route);
    self->requests[i].status = status;
    self->request_count++;
  }
  if (i < self->request_count)
    self->requests[i].count++;
  pthread_mutex_unlock(&self->lock);
}

void metrics_upload(metrics_t *self, size_t bytes)
{
  pthread_mutex_lock(&self->lock);
  self->uploads++;
  self->upload_bytes += bytes;
  pthread_mutex_unlock(&self->lock);
}

void metrics_answer_cache(metrics_t *self, bool hit)
{
  pthread_mutex_lock(&self->lock);
  if (hit)
    self->cache_hits++;
  else
    self->cache_misses++;
  pthread_mutex_unlock(&self->lock);
}

/* Error codes come from workers: keep only label-safe ones. */
static const char *label_safe(const char *code)
{
  for (const char *p = code; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
      return "other";
  return code;
}

static job_series_t *find_job_series(metrics_t *self, job_state_t state, const char *code)
{
  for (size_t i = 0; i < self->job_count; i++)
    if (self->jobs[i].state == state && strcmp(self->jobs[i].error_code, code) == 0)
      return &self->jobs[i];
  return NULL;
}

static job_series_t *add_job_series(metrics_t *self, job_state_t state, const char *code)
{
  job_series_t *series = &self->jobs[self->job_count++];
  series->state = state;
  snprintf(series->error_code, LABEL_MAX, "%s", code);
  return series;
}

/* The last slots are kept for "other", so a flood of unexpected codes is still
 * counted instead of crowding out the known ones. */
static void count_job(metrics_t *self, job_state_t state, const char *error_code)
{
  job_series_t *series = find_job_series(self, state, error_code);
  if (!series && self->job_count < JOB_SERIES_MAX - 4)
    series = add_job_series(self, state, error_code);
  if (!series)
    series = find_job_series(self, state, "other");
  if (!series && self->job_count < JOB_SERIES_MAX)
    series = add_job_series(self, state, "other");
  if (series)
    series->count++;
}

static void observe(histogram_t *histogram, uint32_t ms)
{
  histogram->count++;
  histogram->sum_ms += ms;
  for (size_t i = 0; i < LATENCY_BUCKET_COUNT; i++)
    if (ms <= latency_bounds_ms[i]) {
      histogram->buckets[i]++;
      return;
    }
}

void metrics_job_final(metrics_t *self, job_state_t state, const char *error_code,
                       const job_timing_t *timings, size_t timing_count)
{
  pthread_mutex_lock(&self->lock);
  count_job(self, state, label_safe(error_code ? error_code : ""));
  for (size_t t = 0; t < timing_count; t++)
    for (size_t s = 0; s < TIMED_STAGE_COUNT; s++)
      if (strcmp(timings[t].name, timed_stages[s]) == 0)
        observe(&self->latency[s], timings[t].ms);
  pthread_mutex_unlock(&self->lock);
}

/* A growing text buffer; `failed` latches on the first allocation failure. */
typedef struct {
  char *text;
  size_t length;
  size_t capacity;
  bool failed;
} text_t;

__attribute__((format(printf, 2, 3))) static void append(text_t *out, const char *fmt, ...)
{
  if (out->failed)
    return;
  for (;;) {
    va_list args;
    va_start(args, fmt);
    int needed = vsnprintf(out->text + out->length, out->capacity - out->length, fmt, args);
    va_end(args);
    if (needed < 0) {
      out->failed = true;
      return;
    }
    if ((size_t) needed < out->capacity - out->length) {
      out->length += (size_t) needed;
      return;
    }
    size_t capacity = out->capacity * 2 + (size_t) needed + 1;
    char *grown = realloc(out->text, capacity);
    if (!grown) {
      out->failed = true;
      return;
    }
    out->text = grown;
    out->capacity = capacity;
  }
}

static void render_requests(const metrics_t *self, text_t *out)
{
  append(out, "# HELP gateway_http_requests_total HTTP requests answered, by route and status.\n"
              "# TYPE gateway_http_requests_total counter\n");
  for (size_t i = 0; i < self->request_count; i++)
    append(out, "gateway_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
           self->requests[i].route, self->requests[i].status,
           (unsigned long long) self->requests[i].count);
}

static void render_jobs(const metrics_t *self, text_t *out)
{
  append(out, "# HELP gateway_jobs_total Jobs that reached a final state, by state and error code.\n"
              "# TYPE gateway_jobs_total counter\n");
  for (size_t i = 0; i < self->job_count; i++)
    append(out, "gateway_jobs_total{state=\"%s\",error_code=\"%s\"} %llu\n",
           job_state_name(self->jobs[i].state), self->jobs[i].error_code,
           (unsigned long long) self->jobs[i].count);
}

static void render_latency(const metrics_t *self, text_t *out)
{
  append(out, "# HELP gateway_stage_latency_ms Time spent per stage of finished jobs, in ms.\n"
              "# TYPE gateway_stage_latency_ms histogram\n");
  for (size_t s = 0; s < TIMED_STAGE_COUNT; s++) {
    const histogram_t *histogram = &self->latency[s];
    uint64_t cumulative = 0;
    for (size_t b = 0; b < LATENCY_BUCKET_COUNT; b++) {
      cumulative += histogram->buckets[b];
      append(out, "gateway_stage_latency_ms_bucket{stage=\"%s\",le=\"%u\"} %llu\n",
             timed_stages[s], latency_bounds_ms[b], (unsigned long long) cumulative);
    }
    append(out, "gateway_stage_latency_ms_bucket{stage=\"%s\",le=\"+Inf\"} %llu\n",
           timed_stages[s], (unsigned long long) histogram->count);
    append(out, "gateway_stage_latency_ms_sum{stage=\"%s\"} %llu\n", timed_stages[s],
           (unsigned long long) histogram->sum_ms);
    append(out, "gateway_stage_latency_ms_count{stage=\"%s\"} %llu\n", timed_stages[s],
           (unsigned long long) histogram->count);
  }
}

static double stage_figure(const cJSON *broker_info, const char *stage, const char *name)
{
  const cJSON *stages = cJSON_GetObjectItemCaseSensitive(broker_info, "stages");
  const cJSON *entry = cJSON_GetObjectItemCaseSensitive(stages, stage);
  const cJSON *value = cJSON_GetObjectItemCaseSensitive(entry, name);
  return cJSON_IsNumber(value) ? value->valuedouble : 0;
}

/* The broker's own counters, and the workers' counters it sums per stage
 * ({"stage": {"name": {"label": n}}}). */
static void render_broker_counters(const cJSON *broker_info, text_t *out)
{
  const cJSON *value;
  cJSON_ArrayForEach(value, cJSON_GetObjectItemCaseSensitive(broker_info, "counters")) {
    if (!cJSON_IsNumber(value))
      continue;
    append(out, "# TYPE broker_%s_total counter\nbroker_%s_total %.0f\n", value->string,
           value->string, value->valuedouble);
  }
  /* Prometheus wants each family's samples together: group by counter name first. */
  const cJSON *workers = cJSON_GetObjectItemCaseSensitive(broker_info, "worker_counters");
  cJSON *families = cJSON_CreateObject();
  const cJSON *stage, *group;
  cJSON_ArrayForEach(stage, workers)
    cJSON_ArrayForEach(group, stage)
      if (families && group->string && !cJSON_HasObjectItem(families, group->string))
        cJSON_AddTrueToObject(families, group->string);
  const cJSON *family;
  cJSON_ArrayForEach(family, families) {
    append(out, "# TYPE worker_%s_total counter\n", family->string);
    cJSON_ArrayForEach(stage, workers) {
      cJSON_ArrayForEach(value, cJSON_GetObjectItemCaseSensitive(stage, family->string)) {
        if (!cJSON_IsNumber(value))
          continue;
        if (value->string[0])
          append(out, "worker_%s_total{stage=\"%s\",kind=\"%s\"} %.0f\n", family->string,
                 stage->string, value->string, value->valuedouble);
        else
          append(out, "worker_%s_total{stage=\"%s\"} %.0f\n", family->string, stage->string,
                 value->valuedouble);
      }
    }
  }
  cJSON_Delete(families);
}

static void render_broker(const cJSON *broker_info, text_t *out)
{
  append(out, "# HELP gateway_broker_up 1 when the broker answered the last scrape.\n"
              "# TYPE gateway_broker_up gauge\ngateway_broker_up %d\n",
         broker_info ? 1 : 0);
  if (!broker_info)
    return;
  append(out, "# HELP gateway_stage_queue_depth Jobs waiting in the broker, by stage.\n"
              "# TYPE gateway_stage_queue_depth gauge\n");
  for (size_t i = 0; i < PIPELINE_STAGE_COUNT; i++)
    append(out, "gateway_stage_queue_depth{stage=\"%s\"} %.0f\n", pipeline_stages[i],
           stage_figure(broker_info, pipeline_stages[i], "queued"));
  append(out, "# HELP gateway_stage_workers Workers connected to the broker, by stage.\n"
              "# TYPE gateway_stage_workers gauge\n");
  for (size_t i = 0; i < PIPELINE_STAGE_COUNT; i++)
    append(out, "gateway_stage_workers{stage=\"%s\"} %.0f\n", pipeline_stages[i],
           stage_figure(broker_info, pipeline_stages[i], "workers"));
  append(out, "# HELP gateway_stage_service_ms Recent time one job keeps a worker busy "
              "(the broker's moving average), by stage.\n"
              "# TYPE gateway_stage_service_ms gauge\n");
  for (size_t i = 0; i < PIPELINE_STAGE_COUNT; i++)
    append(out, "gateway_stage_service_ms{stage=\"%s\"} %.0f\n", pipeline_stages[i],
           stage_figure(broker_info, pipeline_stages[i], "service_ms"));
  const cJSON *wait = cJSON_GetObjectItemCaseSensitive(
    cJSON_GetObjectItemCaseSensitive(broker_info, "admission"), "wait_ms");
  if (cJSON_IsNumber(wait))
    append(out, "# HELP gateway_admission_wait_ms How long the broker estimates a job "
                "submitted now would wait.\n"
                "# TYPE gateway_admission_wait_ms gauge\ngateway_admission_wait_ms %.0f\n",
           wait->valuedouble);
  render_broker_counters(broker_info, out);
}

/* glibc's malloc figures: what the gateway's heap holds (live allocations, large
 * ones mmapped on their own included) and what it keeps free without returning it to
 * the system. RSS growing with the first means data kept; with the second,
 * fragmentation. mallinfo2 walks every arena under its lock: microseconds, and
 * only on a scrape. */
static void render_heap(text_t *out)
{
  struct mallinfo2 heap = mallinfo2();
  append(out, "# HELP gateway_heap_in_use_bytes Bytes of live heap allocations (glibc mallinfo2).\n"
              "# TYPE gateway_heap_in_use_bytes gauge\ngateway_heap_in_use_bytes %zu\n"
              "# HELP gateway_heap_free_bytes Bytes the allocator holds free, not returned "
              "to the system.\n"
              "# TYPE gateway_heap_free_bytes gauge\ngateway_heap_free_bytes %zu\n",
         heap.uordblks + heap.hblkhd, heap.fordblks);
}

char *metrics_render(metrics_t *self, const cJSON *broker_info, const metrics_memory_t *memory)
{
  text_t out = {.text = malloc(4096), .capacity = 4096};
  if (!out.text)
    return NULL;
  out.text[0] = '\0';
  pthread_mutex_lock(&self->lock);
  render_requests(self, &out);
  render_jobs(self, &out);
  render_latency(self, &out);
  append(&out, "# HELP gateway_upload_bytes_total Bytes of accepted audio uploads.\n"
               "# TYPE gateway_upload_bytes_total counter\ngateway_upload_bytes_total %llu\n"
               "# HELP gateway_uploads_total Accepted audio uploads.\n"
               "# TYPE gateway_uploads_total counter\ngateway_uploads_total %llu\n",
         (unsigned long long) self->upload_bytes, (unsigned long long) self->uploads);
  append(&out, "# HELP gateway_answer_cache_total Chat replies looked up in the answer cache.\n"
               "# TYPE gateway_answer_cache_total counter\n"
               "gateway_answer_cache_total{result=\"hit\"} %llu\n"
               "gateway_answer_cache_total{result=\"miss\"} %llu\n",
         (unsigned long long) self->cache_hits, (unsigned long long) self->cache_misses);
  if (memory && memory->sessions_known)
    append(&out, "# HELP gateway_sessions_stored Conversation sessions kept in memory.\n"
                 "# TYPE gateway_sessions_stored gauge\ngateway_sessions_stored %zu\n"
                 "# HELP gateway_sessions_evicted_total Live sessions evicted, least recently "
                 "used first, to stay within SESSION_MAX.\n"
                 "# TYPE gateway_sessions_evicted_total counter\n"
                 "gateway_sessions_evicted_total %llu\n",
           memory->sessions, (unsigned long long) memory->sessions_evicted);
  if (memory)
    append(&out, "# HELP gateway_sqlite_memory_bytes Heap bytes SQLite holds (the conversation "
                 "log's page cache).\n"
                 "# TYPE gateway_sqlite_memory_bytes gauge\ngateway_sqlite_memory_bytes %lld\n",
           (long long) memory->sqlite_bytes);
  pthread_mutex_unlock(&self->lock);
  render_broker(broker_info, &out);
  render_heap(&out);
  if (out.failed) {
    free(out.text);
    return NULL;
  }
  return out.text;
}
