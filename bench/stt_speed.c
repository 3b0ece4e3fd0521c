/* Benchmark: how long the offline recognizer takes per question, with the model and
 * decoder settings of the environment (STT_GENERIC_LM_PERCENT, STT_GENERIC_DICT,
 * STT_DECODER_OPTIONS, ...), so that settings can be compared on the same recordings.
 * Loads the PocketSphinx backend once, as the stt service does, then transcribes each
 * file `rounds` times and prints, per file, the median wall time and the transcript,
 * and the median over all decodes; a file the recognizer refuses is listed with the
 * reason and left out of the figures. Figures, not assertions.
 *   stt_speed ROUNDS FILE...
 */
#include "stt_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1000.0 + (double) ts.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double median(double *values, size_t count)
{
  qsort(values, count, sizeof *values, by_value);
  return values[count / 2];
}

/* The whole file in a malloc'd buffer (caller frees), or NULL. */
static uint8_t *file_read(const char *path, size_t *size)
{
  FILE *file = fopen(path, "rb");
  if (!file)
    return NULL;
  uint8_t *data = NULL;
  long length = fseek(file, 0, SEEK_END) == 0 ? ftell(file) : -1;
  if (length > 0 && fseek(file, 0, SEEK_SET) == 0 && (data = malloc((size_t) length)) &&
      fread(data, 1, (size_t) length, file) != (size_t) length) {
    free(data);
    data = NULL;
  }
  fclose(file);
  *size = (size_t) (length > 0 ? length : 0);
  return data;
}

int main(int argc, char **argv)
{
  int rounds = argc > 2 ? atoi(argv[1]) : 0;
  if (rounds < 1 || rounds > 1000) {
    fputs("usage: stt_speed ROUNDS FILE...\n", stderr);
    return 2;
  }
  size_t files = (size_t) (argc - 2);
  double *all = calloc(files * (size_t) rounds, sizeof *all);
  double *each = calloc((size_t) rounds, sizeof *each);
  stage_error_t err = {0};
  double started = now_ms();
  stt_backend_t *stt = all && each ? stt_pocketsphinx_new(&err) : NULL;
  if (!stt) {
    fprintf(stderr, "stt: %s\n", err.message[0] ? err.message : "out of memory");
    free(all);
    free(each);
    return 1;
  }
  printf("model loaded in %.0f ms\n", now_ms() - started);
  int rc = 0;
  size_t decodes = 0;
  for (size_t f = 0; f < files && rc == 0; f++) {
    size_t size = 0;
    uint8_t *audio = file_read(argv[f + 2], &size);
    if (!audio) {
      fprintf(stderr, "cannot read %s\n", argv[f + 2]);
      rc = 1;
      break;
    }
    char *transcript = NULL;
    stage_error_t stt_err = {0};
    int timed = 0;
    for (int r = 0; r < rounds; r++) {
      stt_result_t heard = {0};
      double start = now_ms();
      if (stt->transcribe(stt, audio, size, "audio/wav", &heard, &stt_err) != 0)
        break;                      /* the same audio fails the same way every time */
      each[timed++] = all[decodes++] = now_ms() - start;
      free(transcript);
      transcript = heard.text;
    }
    if (timed)
      printf("%7.1f ms  %s  \"%s\"\n", median(each, (size_t) timed), argv[f + 2], transcript);
    else
      printf("%10s  %s  %s: %s\n", "-", argv[f + 2], stt_err.code, stt_err.message);
    free(transcript);
    free(audio);
  }
  if (rc == 0 && decodes)
    printf("median over %zu decodes: %.1f ms\n", decodes, median(all, decodes));
  stt->destroy(&stt);
  free(all);
  free(each);
  return rc;
}
