/* tts_result: releasing what a text-to-speech backend hands back. */
#include "tts_backend.h"

#include <stdlib.h>
#include <string.h>

void tts_result_release(tts_result_t *result)
{
  if (!result)
    return;
  free(result->audio);
  free(result->phonemes);
  memset(result, 0, sizeof *result);
}
