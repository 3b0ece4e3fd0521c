/* fuzz_audio: common/audio.c audio_decode() on arbitrary bytes, as the stt stage
 * does with an upload. Every input must end in decoded samples within the length
 * limit or in a clear "bad_audio" / "audio_too_long" error; the sanitizers catch
 * the rest. The limit is small so long inputs stay fast. */
#include "audio.h"

#include <libavutil/log.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_RATE 16000
#define FUZZ_MAX_MS 3000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  av_log_set_level(AV_LOG_QUIET); /* FFmpeg's complaints about garbage are expected */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  pcm_t pcm;
  stage_error_t err = {{0}, {0}};
  if (audio_decode(data, size, FUZZ_RATE, FUZZ_MAX_MS, &pcm, &err) == 0) {
    /* Success means real samples, at the asked rate, within the limit. */
    size_t max_samples = (size_t) FUZZ_MAX_MS * FUZZ_RATE / 1000;
    if (!pcm.samples || pcm.count == 0 || pcm.count > max_samples ||
        pcm.sample_rate != FUZZ_RATE || stage_error_is_set(&err)) {
      fprintf(stderr, "audio_decode succeeded with %zu samples at %d Hz\n", pcm.count,
              pcm.sample_rate);
      abort();
    }
    pcm_release(&pcm);
    return 0;
  }
  if ((strcmp(err.code, "bad_audio") != 0 && strcmp(err.code, "audio_too_long") != 0) ||
      !err.message[0] || pcm.samples) {
    fprintf(stderr, "audio_decode failed with code \"%s\" message \"%s\"\n", err.code,
            err.message);
    abort();
  }
  return 0;
}
