/* speech: helpers for the shared PCM type. */
#include "speech.h"

#include <stdlib.h>
#include <string.h>

void pcm_release(pcm_t *pcm)
{
  if (!pcm)
    return;
  free(pcm->samples);
  memset(pcm, 0, sizeof *pcm);
}
