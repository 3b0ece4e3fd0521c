/* Benchmark: how fast the local avatar renders, at 512x512 and 25 fps.
 *
 * Throughput: times are the process's CPU time (all its threads), which is what
 * the work costs even on a busy machine; wall time is printed beside it. Speaks
 * knowledge-base answers with eSpeak, renders them as MP4 (H.264 + AAC) and as
 * WebM (VP8 + Opus), and times drawing alone (the same frames drawn with Cairo,
 * no encoding) to split the total into drawing and encoding (with audio decoding
 * and muxing).
 *
 * Latency: the wall time of rendering a typical first segment of an answer (one
 * short sentence with the rest before and after it, as the service renders it,
 * with AVATAR_ENCODER_THREADS from the environment), median of several renders by
 * one renderer. Figures, not assertions.
 *   avatar_speed [answers] [first-segment renders]     (default 4 and 11)
 */
#include "avatar_backend.h"
#include "face.h"
#include "motion.h"
#include "tts_backend.h"

#include <cairo.h>
#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIZE 512
#define FPS 25
/* bench/latency.sh's one-sentence answer: about 3 s of video. */
#define FIRST_SEGMENT "We have free customer parking right behind the store."

static double seconds_on(clockid_t clock)
{
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
  return seconds_on(CLOCK_PROCESS_CPUTIME_ID);
}

/* The first `wanted` answers of the knowledge base, joined with spaces. */
static char *answers_text(const char *path, long wanted)
{
  FILE *file = fopen(path, "rb");
  if (!file)
    return NULL;
  static char json[1 << 20];
  size_t size = fread(json, 1, sizeof json - 1, file);
  fclose(file);
  json[size] = '\0';
  cJSON *root = cJSON_Parse(json);
  const cJSON *entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
  char *text = calloc(1, 16384);
  size_t used = 0;
  long count = 0;
  const cJSON *entry;
  cJSON_ArrayForEach(entry, entries) {
    const cJSON *answer = cJSON_GetObjectItemCaseSensitive(entry, "answer");
    if (!text || count >= wanted || !cJSON_IsString(answer))
      continue;
    int n = snprintf(text + used, 16384 - used, "%s ", answer->valuestring);
    if (n < 0 || (size_t) n >= 16384 - used)
      break;
    used += (size_t) n;
    count++;
  }
  cJSON_Delete(root);
  return text;
}

/* Renders with AVATAR_FORMAT=`format`; returns the CPU time in seconds (and the
 * wall time in *wall), or -1. */
static double time_render(const char *format, const avatar_input_t *in, uint32_t *video_ms, size_t *bytes,
                          double *wall)
{
  setenv("AVATAR_FORMAT", format, 1);
  stage_error_t err = { 0 };
  avatar_backend_t *backend = avatar_local_new(&err);
  if (!backend) {
    fprintf(stderr, "%s: %s\n", format, err.message);
    return -1.0;
  }
  avatar_output_t out = { 0 };
  double start = cpu_seconds(), wall_start = seconds_on(CLOCK_MONOTONIC);
  int rc = backend->render(backend, in, &out, &err);
  double elapsed = cpu_seconds() - start;
  *wall = seconds_on(CLOCK_MONOTONIC) - wall_start;
  if (rc != 0)
    fprintf(stderr, "%s: %s\n", format, err.message);
  *video_ms = out.duration_ms;
  *bytes = out.video_size;
  avatar_output_release(&out);
  backend->destroy(&backend);
  return rc == 0 ? elapsed : -1.0;
}

/* Draws `frames` frames of the default character as the renderer does, without
 * encoding; returns the CPU time in seconds. */
static double time_drawing(size_t frames)
{
  cairo_surface_t *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, SIZE, SIZE);
  cairo_t *cr = cairo_create(surface);
  const character_t *character = face_character_default();
  cairo_surface_t *backdrop = face_backdrop_new(character, SIZE, SIZE);
  motion_t motion;
  motion_init(&motion, 1, 0.0);
  double start = cpu_seconds();
  for (size_t n = 0; n < frames && backdrop; n++) {
    face_state_t state = { .mouth = viseme_pose((viseme_t) (n % VISEME_COUNT)) };
    motion_step(&motion, (double) n * 1000.0 / FPS, state.mouth.open, &state);
    face_draw(cr, backdrop, character, &state);
    cairo_surface_flush(surface);
  }
  double elapsed = cpu_seconds() - start;
  if (backdrop)
    cairo_surface_destroy(backdrop);
  cairo_destroy(cr);
  cairo_surface_destroy(surface);
  return elapsed;
}

static int compare_doubles(const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* Renders FIRST_SEGMENT `renders` times (after one unmeasured render that warms
 * the caches) with one MP4 renderer and prints the median wall and CPU time. */
static int time_first_segment(tts_backend_t *tts, long renders)
{
  stage_error_t err = { 0 };
  tts_result_t speech = { 0 };
  if (tts->synthesize(tts, FIRST_SEGMENT, &speech, &err) != 0) {
    fprintf(stderr, "speaking the first segment failed: %s\n", err.message);
    return -1;
  }
  setenv("AVATAR_FORMAT", "mp4", 1);
  avatar_backend_t *backend = avatar_local_new(&err);
  double *wall = calloc((size_t) renders, sizeof *wall);
  double *cpu = calloc((size_t) renders, sizeof *cpu);
  avatar_input_t in = { .audio = speech.audio, .audio_size = speech.audio_size, .audio_mime = speech.mime,
                        .phonemes = speech.phonemes, .phoneme_count = speech.phoneme_count,
                        .text = FIRST_SEGMENT };
  avatar_output_t out = { 0 };
  int rc = backend ? 0 : -1;
  if (rc == 0 && (!wall || !cpu))
    rc = stage_error_set(&err, "render_error", "out of memory");
  for (long n = -1; rc == 0 && n < renders; n++) {
    avatar_output_release(&out);
    double wall_start = seconds_on(CLOCK_MONOTONIC), cpu_start = cpu_seconds();
    rc = backend->render(backend, &in, &out, &err);
    if (n >= 0) {
      wall[n] = (seconds_on(CLOCK_MONOTONIC) - wall_start) * 1000.0;
      cpu[n] = (cpu_seconds() - cpu_start) * 1000.0;
    }
  }
  if (rc == 0) {
    qsort(wall, (size_t) renders, sizeof *wall, compare_doubles);
    qsort(cpu, (size_t) renders, sizeof *cpu, compare_doubles);
    printf("first segment \"%s\" (%u ms of video, %zu bytes): wall median %.1f ms (min %.1f, max %.1f) "
           "over %ld renders, CPU median %.1f ms\n", FIRST_SEGMENT, out.duration_ms, out.video_size,
           wall[renders / 2], wall[0], wall[renders - 1], renders, cpu[renders / 2]);
  } else {
    fprintf(stderr, "first segment: %s\n", err.message);
  }
  avatar_output_release(&out);
  if (backend)
    backend->destroy(&backend);
  free(wall);
  free(cpu);
  tts_result_release(&speech);
  unsetenv("AVATAR_FORMAT");
  return rc;
}

int main(int argc, char **argv)
{
  long answers = argc > 1 ? strtol(argv[1], NULL, 10) : 4;
  long renders = argc > 2 ? strtol(argv[2], NULL, 10) : 11;
  if (answers < 1 || renders < 1) {
    fprintf(stderr, "usage: avatar_speed [answers] [first-segment renders]\n");
    return 2;
  }
  unsetenv("AVATAR_SIZE");
  unsetenv("AVATAR_FPS");
  unsetenv("AVATAR_CHARACTER");
  unsetenv("AVATAR_CHARACTER_DIR");
  char *text = answers_text(KNOWLEDGE_JSON, answers);
  stage_error_t err = { 0 };
  tts_backend_t *tts = tts_espeak_new(&err);
  tts_result_t speech = { 0 };
  if (!text || !tts || tts->synthesize(tts, text, &speech, &err) != 0) {
    fprintf(stderr, "speaking the answers failed: %s\n", err.message);
    free(text);
    if (tts)
      tts->destroy(&tts);
    return 1;
  }
  avatar_input_t in = { .audio = speech.audio, .audio_size = speech.audio_size, .audio_mime = speech.mime,
                        .phonemes = speech.phonemes, .phoneme_count = speech.phoneme_count, .text = text };
  int rc = 0;
  static const char *const formats[] = { "mp4", "webm" };
  for (size_t f = 0; f < 2; f++) {
    uint32_t video_ms = 0;
    size_t bytes = 0;
    double wall = 0.0;
    double total = time_render(formats[f], &in, &video_ms, &bytes, &wall);
    if (total < 0.0) {
      rc = 1;
      break;
    }
    size_t frames = (size_t) video_ms * FPS / 1000;
    double draw = time_drawing(frames);
    double video_s = video_ms / 1000.0;
    printf("%-4s %dx%d@%d, %.1f s of video (%zu frames, %zu bytes): %.1f s of video per CPU second "
           "(%.1f per wall second here); CPU %.2f s = drawing %.2f s (%.2f ms/frame) + decoding, "
           "encoding, muxing %.2f s (%.2f ms/frame)\n",
           formats[f], SIZE, SIZE, FPS, video_s, frames, bytes, video_s / total, video_s / wall, total,
           draw, draw * 1000.0 / (double) frames, total - draw, (total - draw) * 1000.0 / (double) frames);
  }
  unsetenv("AVATAR_FORMAT");
  if (rc == 0 && time_first_segment(tts, renders) < 0)
    rc = 1;
  tts_result_release(&speech);
  tts->destroy(&tts);
  free(text);
  return rc;
}
