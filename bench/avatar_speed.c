/* Benchmark: how fast the local avatar renders, at 512x512 and 25 fps on one core
 * (every encoder runs single-threaded). Times are the process's CPU time, which is
 * what one core of its own would take even on a busy machine; wall time is printed
 * beside it. Speaks knowledge-base answers with eSpeak,
 * renders them as MP4 (H.264 + AAC) and as WebM (VP8 + Opus), and times drawing
 * alone (the same frames drawn with Cairo, no encoding) to split the total into
 * drawing and encoding (with audio decoding and muxing). Figures, not assertions.
 *   avatar_speed [answers]          (default 4)
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

int main(int argc, char **argv)
{
  long answers = argc > 1 ? strtol(argv[1], NULL, 10) : 4;
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
  tts_result_release(&speech);
  tts->destroy(&tts);
  free(text);
  return rc;
}
