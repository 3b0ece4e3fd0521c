/* avatar_output: releasing what any avatar backend put into an output. */
#include "avatar_backend.h"

#include <stdlib.h>
#include <string.h>

void avatar_output_release(avatar_output_t *out)
{
  if (!out)
    return;
  free(out->video);
  free(out->url);
  memset(out, 0, sizeof *out);
}
