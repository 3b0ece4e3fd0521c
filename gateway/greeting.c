/* greeting: pre-rendering and serving the greeting (see greeting.h). */
#include "greeting.h"

#include "clock.h"
#include "ids.h"
#include "log.h"
#include "pipeline.pb-c.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Greeting renders in flight at most: any client may name any character, and
 * each new name costs a render. */
#define RENDERS_MAX 8
#define RETRY_MS 10000 /* a failed render is tried again after this long */

/* The latest render asked for one character. */
typedef struct {
  char character[JOB_CHARACTER_MAX + 1];
  char job_id[ID_HEX_SIZE];
  int64_t submitted_ms;
} render_t;

struct greeting {
  pthread_mutex_t lock;
  char *text;
  answer_cache_t *answers;
  job_store_t *jobs;
  const pipeline_t *pipeline;
  int64_t deadline_ms;
  render_t renders[RENDERS_MAX];
};

greeting_t *greeting_new(const char *text, answer_cache_t *answers, job_store_t *jobs,
                         const pipeline_t *pipeline, int64_t deadline_ms)
{
  greeting_t *self = calloc(1, sizeof *self);
  if (!self || !(self->text = strdup(text))) {
    free(self);
    return NULL;
  }
  self->answers = answers;
  self->jobs = jobs;
  self->pipeline = pipeline;
  self->deadline_ms = deadline_ms;
  pthread_mutex_init(&self->lock, NULL);
  return self;
}

void greeting_destroy(greeting_t **self_p)
{
  greeting_t *self = *self_p;
  if (!self)
    return;
  pthread_mutex_destroy(&self->lock);
  free(self->text);
  free(self);
  *self_p = NULL;
}

static cJSON *done_body(const greeting_t *self, const char *audio_url, const char *video_url)
{
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "text", self->text);
  cJSON_AddStringToObject(body, "state", "done");
  if (audio_url && *audio_url)
    cJSON_AddStringToObject(body, "audio_url", audio_url);
  cJSON_AddStringToObject(body, "video_url", video_url);
  return body;
}

/* true while the render's job is queued or running. */
static bool in_flight(const greeting_t *self, const render_t *render)
{
  if (!render->job_id[0])
    return false;
  cJSON *job = job_store_render(self->jobs, render->job_id, clock_wall_ms());
  const cJSON *state = cJSON_GetObjectItemCaseSensitive(job, "state");
  bool open = cJSON_IsString(state) && (strcmp(state->valuestring, "queued") == 0 ||
                                        strcmp(state->valuestring, "running") == 0);
  cJSON_Delete(job);
  return open;
}

/* The character's render slot; a new character takes a slot whose render is
 * over. NULL when all are busy. */
static render_t *render_for(greeting_t *self, const char *character)
{
  render_t *free_slot = NULL;
  for (size_t i = 0; i < RENDERS_MAX; i++) {
    render_t *render = &self->renders[i];
    if (render->job_id[0] && strcmp(render->character, character) == 0)
      return render;
    if (!free_slot && !in_flight(self, render))
      free_slot = render;
  }
  if (free_slot) {
    memset(free_slot, 0, sizeof *free_slot);
    snprintf(free_slot->character, sizeof free_slot->character, "%s", character);
  }
  return free_slot;
}

/* Queues a render of the greeting at tts: the words are known, so stt and chat
 * have nothing to do. 0, or -1 when the pipeline did not take it. */
static int submit_render(greeting_t *self, render_t *render)
{
  int64_t now_ms = clock_wall_ms();
  char job_id[ID_HEX_SIZE];
  if (id_random_hex(job_id) != 0)
    return -1;
  Avatar__Job job = AVATAR__JOB__INIT;
  job.id = job_id;
  job.created_ms = (uint64_t) now_ms;
  job.deadline_ms = (uint64_t) (now_ms + self->deadline_ms);
  job.reply = self->text;
  job.character = render->character;
  size_t size = avatar__job__get_packed_size(&job);
  uint8_t *packed = malloc(size ? size : 1);
  if (!packed || job_store_create(self->jobs, job_id, NULL, "tts", NULL, now_ms) != 0) {
    free(packed);
    return -1;
  }
  avatar__job__pack(&job, packed);
  broker_submit_result_t result = self->pipeline->submit(self->pipeline->arg, "tts", job_id,
                                                         now_ms + self->deadline_ms, packed, size,
                                                         NULL);
  free(packed);
  if (result != BROKER_ACK) {
    self->pipeline->job_final(self->pipeline->arg, job_id);
    job_store_remove(self->jobs, job_id);
    log_msg(LOG_WARN, "greeting_not_rendered", "the pipeline did not take the greeting");
    return -1;
  }
  snprintf(render->job_id, sizeof render->job_id, "%s", job_id);
  render->submitted_ms = now_ms;
  log_msg(LOG_INFO, "greeting_rendering", "job %s", job_id);
  return 0;
}

/* What a render in progress or finished says, or NULL when there is none to
 * wait for (never asked, failed, expired). */
static cJSON *render_state(greeting_t *self, const render_t *render, int *status_out)
{
  if (!render->job_id[0])
    return NULL;
  cJSON *job = job_store_render(self->jobs, render->job_id, clock_wall_ms());
  const cJSON *state = cJSON_GetObjectItemCaseSensitive(job, "state");
  const char *name = cJSON_IsString(state) ? state->valuestring : "failed";
  const cJSON *video = cJSON_GetObjectItemCaseSensitive(job, "video_url");
  const cJSON *audio = cJSON_GetObjectItemCaseSensitive(job, "audio_url");
  cJSON *body = NULL;
  if (strcmp(name, "done") == 0 && cJSON_IsString(video)) {
    body = done_body(self, cJSON_IsString(audio) ? audio->valuestring : NULL, video->valuestring);
    *status_out = 200;
  } else if (strcmp(name, "queued") == 0 || strcmp(name, "running") == 0) {
    body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "text", self->text);
    cJSON_AddStringToObject(body, "state", name);
    cJSON_AddStringToObject(body, "job_id", render->job_id);
    *status_out = 202;
  }
  cJSON_Delete(job);
  return body;
}

cJSON *greeting_get(greeting_t *self, const char *character, int *status_out)
{
  *status_out = 503;
  cached_answer_t cached;
  if (self->answers &&
      answer_cache_get(self->answers, self->text, character, clock_wall_ms(), &cached)) {
    *status_out = 200;
    return done_body(self, cached.audio_url, cached.video_url);
  }
  pthread_mutex_lock(&self->lock);
  render_t *render = render_for(self, character);
  cJSON *body = render ? render_state(self, render, status_out) : NULL;
  bool may_submit = render && (!render->job_id[0] ||
                               clock_wall_ms() - render->submitted_ms >= RETRY_MS);
  if (!body && may_submit && submit_render(self, render) == 0)
    body = render_state(self, render, status_out);
  pthread_mutex_unlock(&self->lock);
  return body;
}
