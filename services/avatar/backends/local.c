/* local: the offline avatar renderer. Decodes the speech, turns phoneme timings (or
 * the sound itself) into mouth shapes and the text's questions into brow lifts,
 * draws every frame of the character with Cairo and encodes H.264 + AAC into an MP4
 * or VP8 + Opus into a WebM, in memory: drawing on the calling thread, converting
 * and encoding on a thread of the render's own, so the two overlap. It also
 * renders the idle loop. */
#include "avatar_backend.h"

#include "audio.h"
#include "audio_sync.h"
#include "cast.h"
#include "config.h"
#include "expression.h"
#include "face.h"
#include "log.h"
#include "motion.h"
#include "video_writer.h"
#include "viseme.h"

#include <cairo.h>
#include <libavutil/log.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* AAC at 24 kHz mono is plenty for speech, and Opus takes 24 kHz as it is. */
#define AUDIO_RATE 24000
/* Longer replies are refused rather than tying a replica up for minutes. */
#define MAX_SPEECH_MS (5u * 60u * 1000u)
/* The face rests this long before the first sound and after the last, so every
 * answer starts and ends in the pose the idle loop starts and ends in. */
#define LEAD_IN_MS 120u
#define LEAD_OUT_MS 240u
#define X264_PRESET "veryfast"
#define X264_CRF 23
#define VP8_CRF 20
/* The idle loop's blinks and glances are the same in every build. */
#define IDLE_SEED 0x1d1e100bULL
/* Canvases in flight: the drawing thread may be this many frames ahead of the
 * encoding thread, which evens out the two sides' uneven pace on shared cores
 * (2 made a 3 s segment about 20 ms slower; 8 were no faster than 4). */
#define CANVASES 4

typedef struct {
  avatar_backend_t base;
  int size;                        /* square frames, pixels */
  int fps;
  int encoder_threads;             /* per render: speeds up one sentence on an idle machine */
  video_container_t container;
  cast_t *cast;
  cast_member_t character;         /* AVATAR_CHARACTER, or the default */
} local_backend_t;

/* Everything one render owns; released in one place whatever the outcome. */
typedef struct {
  pcm_t pcm;                       /* with the rest before and after; empty when idle */
  phoneme_t *phonemes;             /* the input's, moved by the lead-in */
  viseme_t *shapes;
  mouth_pose_t *poses;
  float *brows;
  size_t frame_count;
  cairo_surface_t *surfaces[CANVASES];  /* frame n is drawn on surfaces[n % CANVASES] */
  cairo_t *crs[CANVASES];
  cairo_surface_t *backdrop;       /* drawn characters only */
  video_writer_t *writer;
  double draw_ms;
} render_job_t;

/* The hand-over between the drawing thread and the encoding thread. Frame n may
 * be encoded once drawn > n, and its canvas drawn on again once encoded > n. */
typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  size_t drawn;                    /* frames finished by the drawing thread */
  size_t encoded;                  /* frames finished by the encoding thread */
  bool stopped;                    /* either side failed: the other stops too */
  render_job_t *job;
  int fps;
  stage_error_t err;               /* the encoding thread's failure */
} frame_pipe_t;

static void render_job_release(render_job_t *job)
{
  pcm_release(&job->pcm);
  free(job->phonemes);
  free(job->shapes);
  free(job->poses);
  free(job->brows);
  for (size_t i = 0; i < CANVASES; i++) {
    if (job->crs[i])
      cairo_destroy(job->crs[i]);
    if (job->surfaces[i])
      cairo_surface_destroy(job->surfaces[i]);
  }
  if (job->backdrop)
    cairo_surface_destroy(job->backdrop);
  video_writer_destroy(&job->writer);
}

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1000.0 + (double) ts.tv_nsec / 1e6;
}

/* FNV-1a of the audio: the same speech always gets the same blinks and sway. */
static uint64_t seed_from_audio(const uint8_t *data, size_t size)
{
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; i++) {
    hash ^= data[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

static cast_member_t choose_character(const local_backend_t *self, const char *name)
{
  cast_member_t member;
  if (!name || !*name)
    return self->character;
  if (cast_find(self->cast, name, &member) == 0)
    return member;
  /* A wrong name in a request should not cost the user the answer. */
  char names[256];
  cast_names(self->cast, names, sizeof names);
  log_msg(LOG_WARN, "unknown_character", "no character \"%.64s\" (have %s); using %s", name, names,
          cast_member_name(&self->character));
  return self->character;
}

/* The silence before the speech: none when another segment's video ends just before. */
static unsigned lead_in_ms(const avatar_input_t *in)
{
  return in->continues_previous ? 0 : LEAD_IN_MS;
}

/* The decoded speech with the lead-in's silence before and LEAD_OUT_MS after
 * (none when another segment follows). */
static int pad_with_rest(pcm_t *pcm, const avatar_input_t *in, stage_error_t *err)
{
  size_t before = (size_t) lead_in_ms(in) * AUDIO_RATE / 1000;
  size_t after = in->continued_next ? 0 : (size_t) LEAD_OUT_MS * AUDIO_RATE / 1000;
  int16_t *padded = calloc(before + pcm->count + after, sizeof *padded);
  if (!padded)
    return stage_error_set(err, "render_error", "out of memory for %zu samples", pcm->count);
  memcpy(padded + before, pcm->samples, pcm->count * sizeof *padded);
  free(pcm->samples);
  pcm->samples = padded;
  pcm->count += before + after;
  return 0;
}

static int allocate_tracks(render_job_t *job, stage_error_t *err)
{
  job->shapes = calloc(job->frame_count, sizeof *job->shapes);
  job->poses = calloc(job->frame_count, sizeof *job->poses);
  job->brows = calloc(job->frame_count, sizeof *job->brows);
  if (!job->shapes || !job->poses || !job->brows)
    return stage_error_set(err, "render_error", "out of memory for %zu frames", job->frame_count);
  return 0;
}

static int prepare_speech_tracks(render_job_t *job, const avatar_input_t *in, int fps,
                                 stage_error_t *err)
{
  if (allocate_tracks(job, err) < 0)
    return -1;
  if (in->phonemes && in->phoneme_count > 0) {
    job->phonemes = calloc(in->phoneme_count, sizeof *job->phonemes);
    if (!job->phonemes)
      return stage_error_set(err, "render_error", "out of memory for the phonemes");
    for (size_t i = 0; i < in->phoneme_count; i++) {
      job->phonemes[i] = in->phonemes[i];
      job->phonemes[i].start_ms += lead_in_ms(in);
    }
    if (viseme_track_from_phonemes(job->phonemes, in->phoneme_count, fps, job->frame_count,
                                   job->shapes, job->poses) < 0)
      return stage_error_set(err, "render_error", "out of memory for the mouth track");
  } else if (viseme_track_from_audio(&job->pcm, fps, job->frame_count, job->shapes, job->poses) < 0) {
    return stage_error_set(err, "render_error", "out of memory for the mouth track");
  }
  expression_brow_track(in->text, job->shapes, job->frame_count, fps, job->brows);
  return 0;
}

static int open_canvas(render_job_t *job, const local_backend_t *self, const cast_member_t *member,
                       int with_audio, stage_error_t *err)
{
  bool ready = true;
  for (size_t i = 0; i < CANVASES; i++) {
    job->surfaces[i] = cairo_image_surface_create(CAIRO_FORMAT_RGB24, self->size, self->size);
    job->crs[i] = cairo_create(job->surfaces[i]);
    ready = ready && cairo_status(job->crs[i]) == CAIRO_STATUS_SUCCESS;
  }
  if (member->drawn)
    job->backdrop = face_backdrop_new(member->drawn, self->size, self->size);
  if (!ready || (member->drawn && !job->backdrop))
    return stage_error_set(err, "render_error", "cannot create a %dx%d drawing surface",
                           self->size, self->size);
  video_settings_t settings = {
    .container = self->container, .width = self->size, .height = self->size, .fps = self->fps,
    .sample_rate = with_audio ? AUDIO_RATE : 0, .x264_preset = X264_PRESET,
    .threads = self->encoder_threads,
    .crf = self->container == VIDEO_WEBM ? VP8_CRF : X264_CRF,
  };
  job->writer = video_writer_new(&settings, err);
  return job->writer ? 0 : -1;
}

/* Waits until `ready` holds or either side has stopped; returns whether it holds. */
static bool pipe_wait(frame_pipe_t *pipe, bool (*ready)(const frame_pipe_t *, size_t), size_t n)
{
  pthread_mutex_lock(&pipe->lock);
  while (!pipe->stopped && !ready(pipe, n))
    pthread_cond_wait(&pipe->changed, &pipe->lock);
  bool holds = !pipe->stopped;
  pthread_mutex_unlock(&pipe->lock);
  return holds;
}

static bool frame_drawn(const frame_pipe_t *pipe, size_t n)
{
  return pipe->drawn > n;
}

static bool canvas_free(const frame_pipe_t *pipe, size_t n)
{
  return n < CANVASES || pipe->encoded > n - CANVASES;
}

/* Records that a side finished frame n (counter = &drawn or &encoded), or failed. */
static void pipe_advance(frame_pipe_t *pipe, size_t *counter, size_t n, bool failed)
{
  pthread_mutex_lock(&pipe->lock);
  if (failed)
    pipe->stopped = true;
  else
    *counter = n + 1;
  pthread_cond_broadcast(&pipe->changed);
  pthread_mutex_unlock(&pipe->lock);
}

/* The encoding thread: converts and encodes every frame once it is drawn, feeding
 * the audio alongside so the muxer's interleaving queue stays short. */
static void *encode_frames(void *arg)
{
  frame_pipe_t *pipe = arg;
  render_job_t *job = pipe->job;
  size_t audio_sent = 0;
  for (size_t n = 0; n < job->frame_count; n++) {
    if (!pipe_wait(pipe, frame_drawn, n))
      return NULL;
    cairo_surface_t *surface = job->surfaces[n % CANVASES];
    int rc = video_writer_add_frame(job->writer, cairo_image_surface_get_data(surface),
                                    cairo_image_surface_get_stride(surface), &pipe->err);
    size_t audio_due = (n + 1) * AUDIO_RATE / (size_t) pipe->fps;
    if (audio_due > job->pcm.count)
      audio_due = job->pcm.count;
    if (rc == 0 && audio_due > audio_sent) {
      rc = video_writer_add_audio(job->writer, job->pcm.samples + audio_sent, audio_due - audio_sent,
                                  &pipe->err);
      audio_sent = audio_due;
    }
    pipe_advance(pipe, &pipe->encoded, n, rc < 0);
    if (rc < 0)
      return NULL;
  }
  if (audio_sent < job->pcm.count
      && video_writer_add_audio(job->writer, job->pcm.samples + audio_sent,
                                job->pcm.count - audio_sent, &pipe->err) < 0)
    pipe_advance(pipe, &pipe->encoded, job->frame_count, true);
  return NULL;
}

/* The drawing side, on the calling thread. Returns 0, or -1 with `err` set when
 * drawing failed; stops quietly when the encoding thread did. */
static int draw_frames(frame_pipe_t *pipe, const local_backend_t *self, const cast_member_t *member,
                       motion_t *motion, stage_error_t *err)
{
  render_job_t *job = pipe->job;
  for (size_t n = 0; n < job->frame_count; n++) {
    double t_ms = (double) n * 1000.0 / self->fps;
    face_state_t state = { .mouth = job->poses[n], .shape = job->shapes[n] };
    motion_step(motion, t_ms, state.mouth.open, &state);
    state.brow_raise += job->brows[n];
    state.brow_raise = state.brow_raise > 1.0 ? 1.0 : state.brow_raise;
    if (!pipe_wait(pipe, canvas_free, n))
      return 0;

    cairo_t *cr = job->crs[n % CANVASES];
    double start = now_ms();
    if (member->drawn)
      face_draw(cr, job->backdrop, member->drawn, &state);
    else
      custom_character_draw(cr, self->size, self->size, member->custom, &state);
    cairo_surface_flush(job->surfaces[n % CANVASES]);
    job->draw_ms += now_ms() - start;
    bool failed = cairo_status(cr) != CAIRO_STATUS_SUCCESS;
    pipe_advance(pipe, &pipe->drawn, n, failed);
    if (failed)
      return stage_error_set(err, "render_error", "drawing failed: %s",
                             cairo_status_to_string(cairo_status(cr)));
  }
  return 0;
}

/* Draws every frame on this thread while another converts and encodes them (with
 * the audio), so the two halves of the work overlap on two cores. */
static int render_frames(render_job_t *job, const local_backend_t *self, const cast_member_t *member,
                         motion_t *motion, stage_error_t *err)
{
  frame_pipe_t pipe = { .job = job, .fps = self->fps };
  if (pthread_mutex_init(&pipe.lock, NULL) != 0)
    return stage_error_set(err, "render_error", "cannot create a lock");
  if (pthread_cond_init(&pipe.changed, NULL) != 0) {
    pthread_mutex_destroy(&pipe.lock);
    return stage_error_set(err, "render_error", "cannot create a condition variable");
  }
  pthread_t encoder;
  int rc = pthread_create(&encoder, NULL, encode_frames, &pipe);
  if (rc != 0) {
    stage_error_set(err, "render_error", "cannot start the encoding thread: %s", strerror(rc));
  } else {
    rc = draw_frames(&pipe, self, member, motion, err);
    pthread_join(encoder, NULL);
    if (rc == 0 && pipe.stopped)
      rc = stage_error_set(err, pipe.err.code, "%s", pipe.err.message);
  }
  pthread_cond_destroy(&pipe.changed);
  pthread_mutex_destroy(&pipe.lock);
  return rc == 0 ? 0 : -1;
}

static void set_mime(const local_backend_t *self, avatar_output_t *out)
{
  snprintf(out->mime, sizeof out->mime, "%s", self->container == VIDEO_WEBM ? "video/webm" : "video/mp4");
}

/* Decode, animate, draw and encode: fills `out` or returns -1 with `err` set.
 * Whatever it allocates stays in `job` for the caller to release. */
static int render_job_run(render_job_t *job, const local_backend_t *self, const avatar_input_t *in,
                          const cast_member_t *member, avatar_output_t *out, stage_error_t *err)
{
  if (audio_decode(in->audio, in->audio_size, AUDIO_RATE, MAX_SPEECH_MS, &job->pcm, err) < 0)
    return -1;
  if (job->pcm.count == 0)
    return stage_error_set(err, "bad_audio", "the speech audio has no samples");
  if (pad_with_rest(&job->pcm, in, err) < 0)
    return -1;
  /* Frames cover the whole sound: ceil(duration * fps). */
  job->frame_count = (job->pcm.count * (size_t) self->fps + AUDIO_RATE - 1) / AUDIO_RATE;
  if (prepare_speech_tracks(job, in, self->fps, err) < 0 || open_canvas(job, self, member, 1, err) < 0)
    return -1;
  motion_t motion;
  motion_init(&motion, seed_from_audio(in->audio, in->audio_size), 0.0);
  if (render_frames(job, self, member, &motion, err) < 0
      || video_writer_finish(job->writer, &out->video, &out->video_size, err) < 0)
    return -1;
  set_mime(self, out);
  out->duration_ms = pcm_duration_ms(&job->pcm);
  return 0;
}

static void log_render(const char *event, const render_job_t *job, const cast_member_t *member,
                       const avatar_output_t *out, int phoneme_sync, double total_ms)
{
  cJSON *fields = cJSON_CreateObject();
  if (fields) {
    cJSON_AddNumberToObject(fields, "frames", (double) job->frame_count);
    cJSON_AddNumberToObject(fields, "video_ms", out->duration_ms);
    cJSON_AddNumberToObject(fields, "draw_ms", job->draw_ms);
    cJSON_AddNumberToObject(fields, "total_ms", total_ms);
    cJSON_AddNumberToObject(fields, "bytes", (double) out->video_size);
    cJSON_AddStringToObject(fields, "mime", out->mime);
    cJSON_AddStringToObject(fields, "character", cast_member_name(member));
    cJSON_AddBoolToObject(fields, "phoneme_sync", phoneme_sync);
  }
  log_event(LOG_DEBUG, event, fields);
}

static int local_render(avatar_backend_t *base, const avatar_input_t *in, avatar_output_t *out,
                        stage_error_t *err)
{
  local_backend_t *self = (local_backend_t *) base;
  memset(out, 0, sizeof *out);
  if (!in->audio || in->audio_size == 0)
    return stage_error_set(err, "bad_audio", "no speech audio to animate");

  double start = now_ms();
  cast_member_t member = choose_character(self, in->character);
  render_job_t job = { 0 };
  int rc = render_job_run(&job, self, in, &member, out, err);
  if (rc == 0)
    log_render("avatar_rendered", &job, &member, out, in->phonemes && in->phoneme_count > 0,
               now_ms() - start);
  else
    avatar_output_release(out);
  render_job_release(&job);
  return rc;
}

int avatar_local_render_idle(avatar_backend_t *local, const char *character, uint32_t duration_ms,
                             avatar_output_t *out, stage_error_t *err)
{
  local_backend_t *self = (local_backend_t *) local;
  memset(out, 0, sizeof *out);
  double start = now_ms();
  cast_member_t member = choose_character(self, character);
  render_job_t job = { .frame_count = (size_t) duration_ms * (size_t) self->fps / 1000 };
  if (job.frame_count == 0)
    return stage_error_set(err, "render_error", "an idle loop of %u ms has no frames", duration_ms);
  /* Calloc'd tracks are the rest pose: shape X (0), no brow lift. */
  int rc = allocate_tracks(&job, err);
  for (size_t n = 0; rc == 0 && n < job.frame_count; n++)
    job.poses[n] = viseme_pose(VISEME_X);
  if (rc == 0)
    rc = open_canvas(&job, self, &member, 0, err);
  if (rc == 0) {
    motion_t motion;
    motion_init(&motion, IDLE_SEED, (double) job.frame_count * 1000.0 / self->fps);
    rc = render_frames(&job, self, &member, &motion, err);
  }
  if (rc == 0)
    rc = video_writer_finish(job.writer, &out->video, &out->video_size, err);
  if (rc == 0) {
    set_mime(self, out);
    out->duration_ms = (uint32_t) (job.frame_count * 1000 / (size_t) self->fps);
    log_render("avatar_idle_rendered", &job, &member, out, 0, now_ms() - start);
  } else {
    avatar_output_release(out);
  }
  render_job_release(&job);
  return rc;
}

static void local_destroy(avatar_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  local_backend_t *self = (local_backend_t *) *self_p;
  cast_destroy(&self->cast);
  free(self);
  *self_p = NULL;
}

/* AVATAR_FORMAT: mp4 (default) or webm. */
static int container_from_config(video_container_t *container, stage_error_t *err)
{
  const char *format = config_str("AVATAR_FORMAT", "mp4");
  if (!strcmp(format, "mp4"))
    *container = VIDEO_MP4;
  else if (!strcmp(format, "webm"))
    *container = VIDEO_WEBM;
  else
    return stage_error_set(err, "bad_config", "AVATAR_FORMAT=%.32s is not one of: mp4, webm", format);
  return 0;
}

avatar_backend_t *avatar_local_new(stage_error_t *err)
{
  video_container_t container = VIDEO_MP4;
  if (container_from_config(&container, err) < 0 || video_writer_check_encoders(container, err) < 0)
    return NULL;
  /* libx264 and the muxer print banners and statistics for every job; logs are
   * JSON lines, and real failures come back through stage_error. */
  av_log_set_level(AV_LOG_ERROR);
  local_backend_t *self = calloc(1, sizeof *self);
  if (!self) {
    stage_error_set(err, "render_error", "out of memory");
    return NULL;
  }
  self->base.name = "local";
  self->base.render = local_render;
  self->base.destroy = local_destroy;
  self->container = container;
  /* 4:2:0 chroma needs even dimensions. */
  self->size = (int) config_long("AVATAR_SIZE", 512, 64, 2048) & ~1;
  self->fps = (int) config_long("AVATAR_FPS", 25, 1, 60);
  self->encoder_threads = (int) config_long("AVATAR_ENCODER_THREADS", 2, 1, 16);
  self->cast = cast_load(config_str("AVATAR_CHARACTER_DIR", NULL), err);
  if (!self->cast) {
    free(self);
    return NULL;
  }
  self->character = (cast_member_t) { .drawn = face_character_default() };
  const char *name = config_str("AVATAR_CHARACTER", NULL);
  if (name && cast_find(self->cast, name, &self->character) < 0) {
    char names[256];
    cast_names(self->cast, names, sizeof names);
    log_msg(LOG_WARN, "config_invalid", "AVATAR_CHARACTER must be one of %s; using %s", names,
            face_character_default()->name);
  }
  return &self->base;
}
