/* local: the offline avatar renderer. Decodes the speech, turns phoneme timings (or
 * the audio's loudness) into mouth shapes, draws every frame of the cartoon character
 * with Cairo and encodes H.264 + AAC into an in-memory MP4. */
#include "avatar_backend.h"

#include "audio.h"
#include "config.h"
#include "face.h"
#include "log.h"
#include "motion.h"
#include "mp4_writer.h"
#include "viseme.h"

#include <cairo.h>
#include <libavutil/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* AAC at 24 kHz mono is plenty for speech and what eSpeak produces natively. */
#define AUDIO_RATE 24000
/* Longer replies are refused rather than tying a replica up for minutes. */
#define MAX_SPEECH_MS (5u * 60u * 1000u)
#define X264_PRESET "veryfast"
#define X264_CRF 23

typedef struct {
  avatar_backend_t base;
  int size;                        /* square frames, pixels */
  int fps;
  const character_t *character;    /* AVATAR_CHARACTER, or the default */
} local_backend_t;

/* Everything one render owns; released in one place whatever the outcome. */
typedef struct {
  pcm_t pcm;
  viseme_t *shapes;
  mouth_pose_t *poses;
  size_t frame_count;
  cairo_surface_t *surface;
  cairo_surface_t *backdrop;
  cairo_t *cr;
  mp4_writer_t *writer;
} render_job_t;

static void render_job_release(render_job_t *job)
{
  pcm_release(&job->pcm);
  free(job->shapes);
  free(job->poses);
  if (job->cr)
    cairo_destroy(job->cr);
  if (job->surface)
    cairo_surface_destroy(job->surface);
  if (job->backdrop)
    cairo_surface_destroy(job->backdrop);
  mp4_writer_destroy(&job->writer);
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

static const character_t *choose_character(const local_backend_t *self, const char *name)
{
  if (!name || !*name)
    return self->character;
  const character_t *character = face_character_find(name);
  if (!character) {
    /* A wrong name in a request should not cost the user the answer. */
    char names[128];
    face_character_names(names, sizeof names);
    log_msg(LOG_WARN, "unknown_character", "no character \"%.64s\" (have %s); using %s", name,
            names, self->character->name);
    return self->character;
  }
  return character;
}

static int prepare_mouth_track(render_job_t *job, const avatar_input_t *in, int fps,
                               stage_error_t *err)
{
  job->shapes = calloc(job->frame_count, sizeof *job->shapes);
  job->poses = calloc(job->frame_count, sizeof *job->poses);
  if (!job->shapes || !job->poses)
    return stage_error_set(err, "render_error", "out of memory for %zu frames", job->frame_count);
  if (in->phonemes && in->phoneme_count > 0) {
    if (viseme_track_from_phonemes(in->phonemes, in->phoneme_count, fps, job->frame_count,
                                   job->shapes, job->poses) < 0)
      return stage_error_set(err, "render_error", "out of memory for the mouth track");
  } else {
    viseme_track_from_audio(&job->pcm, fps, job->frame_count, job->shapes, job->poses);
  }
  return 0;
}

/* Draws and encodes every frame, feeding the audio alongside so the muxer's
 * interleaving queue stays short. Adds the time spent drawing to *draw_ms. */
static int render_frames(render_job_t *job, const local_backend_t *self,
                         const character_t *character, uint64_t seed, double *draw_ms,
                         stage_error_t *err)
{
  motion_t motion;
  motion_init(&motion, seed);
  size_t rate = (size_t) job->pcm.sample_rate;
  size_t audio_sent = 0;
  for (size_t n = 0; n < job->frame_count; n++) {
    double t_ms = (double) n * 1000.0 / self->fps;
    face_state_t state = { .mouth = job->poses[n] };
    motion_step(&motion, t_ms, state.mouth.open, &state);

    double start = now_ms();
    face_draw(job->cr, job->backdrop, character, &state);
    cairo_surface_flush(job->surface);
    *draw_ms += now_ms() - start;
    if (cairo_status(job->cr) != CAIRO_STATUS_SUCCESS)
      return stage_error_set(err, "render_error", "drawing failed: %s",
                             cairo_status_to_string(cairo_status(job->cr)));

    if (mp4_writer_add_frame(job->writer, cairo_image_surface_get_data(job->surface),
                             cairo_image_surface_get_stride(job->surface), err) < 0)
      return -1;
    size_t audio_due = (n + 1) * rate / (size_t) self->fps;
    if (audio_due > job->pcm.count)
      audio_due = job->pcm.count;
    if (audio_due > audio_sent) {
      if (mp4_writer_add_audio(job->writer, job->pcm.samples + audio_sent, audio_due - audio_sent, err) < 0)
        return -1;
      audio_sent = audio_due;
    }
  }
  if (audio_sent < job->pcm.count)
    return mp4_writer_add_audio(job->writer, job->pcm.samples + audio_sent,
                                job->pcm.count - audio_sent, err);
  return 0;
}

/* Decode, animate, draw and encode: fills `out` or returns -1 with `err` set.
 * Whatever it allocates stays in `job` for the caller to release. */
static int render_job_run(render_job_t *job, const local_backend_t *self, const avatar_input_t *in,
                          const character_t *character, avatar_output_t *out, double *draw_ms,
                          stage_error_t *err)
{
  if (audio_decode(in->audio, in->audio_size, AUDIO_RATE, MAX_SPEECH_MS, &job->pcm, err) < 0)
    return -1;
  if (job->pcm.count == 0)
    return stage_error_set(err, "bad_audio", "the speech audio has no samples");
  /* Frames cover the whole speech: ceil(duration * fps). */
  job->frame_count = (job->pcm.count * (size_t) self->fps + AUDIO_RATE - 1) / AUDIO_RATE;
  if (prepare_mouth_track(job, in, self->fps, err) < 0)
    return -1;

  job->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, self->size, self->size);
  job->cr = cairo_create(job->surface);
  job->backdrop = face_backdrop_new(character, self->size, self->size);
  if (cairo_status(job->cr) != CAIRO_STATUS_SUCCESS || !job->backdrop)
    return stage_error_set(err, "render_error", "cannot create a %dx%d drawing surface",
                           self->size, self->size);
  mp4_settings_t settings = {
    .width = self->size, .height = self->size, .fps = self->fps, .sample_rate = AUDIO_RATE,
    .x264_preset = X264_PRESET, .crf = X264_CRF,
  };
  job->writer = mp4_writer_new(&settings, err);
  if (!job->writer)
    return -1;
  if (render_frames(job, self, character, seed_from_audio(in->audio, in->audio_size), draw_ms, err) < 0
      || mp4_writer_finish(job->writer, &out->video, &out->video_size, err) < 0)
    return -1;
  snprintf(out->mime, sizeof out->mime, "video/mp4");
  out->duration_ms = pcm_duration_ms(&job->pcm);
  return 0;
}

static void log_render(const render_job_t *job, const avatar_input_t *in, const character_t *character,
                       const avatar_output_t *out, double draw_ms, double total_ms)
{
  cJSON *fields = cJSON_CreateObject();
  if (fields) {
    cJSON_AddNumberToObject(fields, "frames", (double) job->frame_count);
    cJSON_AddNumberToObject(fields, "video_ms", out->duration_ms);
    cJSON_AddNumberToObject(fields, "draw_ms", draw_ms);
    cJSON_AddNumberToObject(fields, "total_ms", total_ms);
    cJSON_AddNumberToObject(fields, "bytes", (double) out->video_size);
    cJSON_AddStringToObject(fields, "character", character->name);
    cJSON_AddBoolToObject(fields, "phoneme_sync", in->phonemes && in->phoneme_count > 0);
  }
  log_event(LOG_DEBUG, "avatar_rendered", fields);
}

static int local_render(avatar_backend_t *base, const avatar_input_t *in, avatar_output_t *out,
                        stage_error_t *err)
{
  local_backend_t *self = (local_backend_t *) base;
  memset(out, 0, sizeof *out);
  if (!in->audio || in->audio_size == 0)
    return stage_error_set(err, "bad_audio", "no speech audio to animate");

  double start = now_ms();
  double draw_ms = 0.0;
  const character_t *character = choose_character(self, in->character);
  render_job_t job = { 0 };
  int rc = render_job_run(&job, self, in, character, out, &draw_ms, err);
  if (rc == 0)
    log_render(&job, in, character, out, draw_ms, now_ms() - start);
  else
    avatar_output_release(out);
  render_job_release(&job);
  return rc;
}

static void local_destroy(avatar_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  free(*self_p);
  *self_p = NULL;
}

avatar_backend_t *avatar_local_new(stage_error_t *err)
{
  if (mp4_writer_check_encoders(err) < 0)
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
  /* 4:2:0 chroma needs even dimensions. */
  self->size = (int) config_long("AVATAR_SIZE", 512, 64, 2048) & ~1;
  self->fps = (int) config_long("AVATAR_FPS", 25, 1, 60);
  const char *name = config_str("AVATAR_CHARACTER", NULL);
  self->character = name ? face_character_find(name) : face_character_default();
  if (!self->character) {
    char names[128];
    face_character_names(names, sizeof names);
    log_msg(LOG_WARN, "config_invalid", "AVATAR_CHARACTER must be one of %s; using %s",
            names, face_character_default()->name);
    self->character = face_character_default();
  }
  return &self->base;
}
