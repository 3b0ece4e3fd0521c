/* Benchmark: lip-sync error of the avatar's mouth track. Speaks knowledge-base answers
 * with eSpeak NG (the offline TTS backend), then for every change of mouth class in
 * eSpeak's own phoneme timings (closed / narrow / open) finds the frame where the
 * rendered track shows that class begin, and reports the offset between the two:
 * mean and worst, in ms. Done twice: for the track built from eSpeak's timings (what
 * the avatar uses with the offline TTS) and for the track built from the audio alone
 * (what it uses with cloud TTS, which gives no timings). Figures, not assertions.
 *   avatar_lipsync [knowledge.json [answers]]
 */
#include "audio.h"
#include "tts_backend.h"
#include "audio_sync.h"
#include "viseme.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FPS 25
#define RATE 24000
/* A track's class change further than this from the phoneme's start is not its. */
#define MATCH_WINDOW_MS 120

typedef enum { CLASS_CLOSED, CLASS_NARROW, CLASS_OPEN } mouth_class_t;

typedef struct {
  size_t events;        /* class changes in eSpeak's timings */
  size_t matched;       /* ... that the track shows within the window */
  double sum_abs_ms;
  double sum_signed_ms; /* > 0: the mouth moves after the sound */
  double worst_ms;
} sync_error_t;

static mouth_class_t class_of(viseme_t viseme)
{
  float open = viseme_pose(viseme).open * (1.0f - viseme_pose(viseme).press);
  return open < 0.05f ? CLASS_CLOSED : open < 0.3f ? CLASS_NARROW : CLASS_OPEN;
}

static char *read_file(const char *path)
{
  FILE *file = fopen(path, "rb");
  if (!file)
    return NULL;
  char *text = NULL;
  long size = -1;
  if (fseek(file, 0, SEEK_END) == 0 && (size = ftell(file)) >= 0 && fseek(file, 0, SEEK_SET) == 0)
    text = malloc((size_t) size + 1);
  if (text && fread(text, 1, (size_t) size, file) == (size_t) size) {
    text[size] = '\0';
  } else {
    free(text);
    text = NULL;
  }
  fclose(file);
  return text;
}

/* The class changes a viewer should see: phonemes merged into runs of one mouth
 * class, runs shorter than a frame folded into the run before (no renderer can show
 * them without flicker). For each, the nearest frame (by display start) where the
 * track's class changes to the same class. */
static void measure(const phoneme_t *phonemes, size_t count, const viseme_t *shapes,
                    size_t frame_count, sync_error_t *error)
{
  mouth_class_t shown = CLASS_CLOSED;
  for (size_t i = 0; i < count;) {
    mouth_class_t wanted = class_of(viseme_from_phoneme(phonemes[i].symbol));
    double start = phonemes[i].start_ms;
    double end = start;
    size_t next = i;
    while (next < count && class_of(viseme_from_phoneme(phonemes[next].symbol)) == wanted) {
      end = (double) phonemes[next].start_ms + phonemes[next].duration_ms;
      next++;
    }
    i = next;
    if (wanted == shown || (end - start) * FPS < 1000.0)
      continue;
    shown = wanted;
    error->events++;
    double best = HUGE_VAL;
    for (size_t n = 0; n < frame_count; n++) {
      /* Before the first frame the face rests, mouth closed. */
      mouth_class_t before = n > 0 ? class_of(shapes[n - 1]) : CLASS_CLOSED;
      if (class_of(shapes[n]) != wanted || before == wanted)
        continue;
      double offset = (double) n * 1000.0 / FPS - start;
      if (fabs(offset) < fabs(best))
        best = offset;
    }
    if (fabs(best) > MATCH_WINDOW_MS)
      continue;
    error->matched++;
    error->sum_abs_ms += fabs(best);
    error->sum_signed_ms += best;
    if (fabs(best) > error->worst_ms)
      error->worst_ms = fabs(best);
  }
}

static void report(const char *what, const sync_error_t *e)
{
  double matched = e->matched ? (double) e->matched : 1.0;
  printf("%-22s %4zu class changes, %5.1f%% shown within %d ms: mean |offset| %5.1f ms "
         "(mean signed %+5.1f ms), worst %5.1f ms\n",
         what, e->events, 100.0 * (double) e->matched / (double) (e->events ? e->events : 1),
         MATCH_WINDOW_MS, e->sum_abs_ms / matched, e->sum_signed_ms / matched, e->worst_ms);
}

/* Speaks one answer and adds its errors for both tracks. Returns 0 or -1. */
static int measure_answer(tts_backend_t *tts, const char *text, sync_error_t *timed,
                          sync_error_t *audio_only, double *speech_s)
{
  tts_result_t speech = { 0 };
  pcm_t pcm = { 0 };
  stage_error_t err = { 0 };
  viseme_t *shapes = NULL;
  mouth_pose_t *poses = NULL;
  int rc = -1;
  if (tts->synthesize(tts, text, &speech, &err) != 0
      || audio_decode(speech.audio, speech.audio_size, RATE, 0, &pcm, &err) != 0) {
    fprintf(stderr, "speaking \"%.40s\": %s: %s\n", text, err.code, err.message);
    goto done;
  }
  size_t frames = (pcm.count * FPS + RATE - 1) / RATE;
  shapes = calloc(frames, sizeof *shapes);
  poses = calloc(frames, sizeof *poses);
  if (!shapes || !poses
      || viseme_track_from_phonemes(speech.phonemes, speech.phoneme_count, FPS, frames, shapes, poses) < 0) {
    fprintf(stderr, "out of memory\n");
    goto done;
  }
  measure(speech.phonemes, speech.phoneme_count, shapes, frames, timed);
  if (viseme_track_from_audio(&pcm, FPS, frames, shapes, poses) < 0) {
    fprintf(stderr, "out of memory\n");
    goto done;
  }
  measure(speech.phonemes, speech.phoneme_count, shapes, frames, audio_only);
  *speech_s += (double) pcm.count / RATE;
  rc = 0;
done:
  free(shapes);
  free(poses);
  pcm_release(&pcm);
  tts_result_release(&speech);
  return rc;
}

int main(int argc, char **argv)
{
  const char *path = argc > 1 ? argv[1] : KNOWLEDGE_JSON;
  long wanted = argc > 2 ? strtol(argv[2], NULL, 10) : 8;
  char *text = read_file(path);
  cJSON *knowledge = text ? cJSON_Parse(text) : NULL;
  free(text);
  cJSON *entries = cJSON_GetObjectItemCaseSensitive(knowledge, "entries");
  if (!cJSON_IsArray(entries)) {
    fprintf(stderr, "%s: no \"entries\" array\n", path);
    cJSON_Delete(knowledge);
    return 1;
  }
  stage_error_t err = { 0 };
  tts_backend_t *tts = tts_espeak_new(&err);
  if (!tts) {
    fprintf(stderr, "eSpeak: %s\n", err.message);
    cJSON_Delete(knowledge);
    return 1;
  }
  sync_error_t timed = { 0 }, audio_only = { 0 };
  double speech_s = 0.0;
  long answers = 0;
  int rc = 0;
  const cJSON *entry;
  cJSON_ArrayForEach(entry, entries) {
    const cJSON *answer = cJSON_GetObjectItemCaseSensitive(entry, "answer");
    if (answers >= wanted || !cJSON_IsString(answer))
      continue;
    if (measure_answer(tts, answer->valuestring, &timed, &audio_only, &speech_s) != 0) {
      rc = 1;
      break;
    }
    answers++;
  }
  printf("lip sync at %d fps over %ld knowledge-base answers (%.1f s of eSpeak speech); "
         "offset = frame where the mouth class appears - phoneme start\n", FPS, answers, speech_s);
  report("eSpeak timings:", &timed);
  report("audio only:", &audio_only);
  tts->destroy(&tts);
  cJSON_Delete(knowledge);
  return rc;
}
