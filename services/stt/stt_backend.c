/* stt_backend: picks the speech-to-text backend STT_BACKEND names. The service and
 * tests/eval's conversation_eval share it, so the eval measures whatever a deployment
 * runs (a whisper.cpp server with STT_BACKEND=openai, say) with the same settings. */
#include "stt_backend.h"

#include "config.h"

#include <string.h>

stt_backend_t *stt_backend_from_config(stage_error_t *err)
{
  const char *name = config_str("STT_BACKEND", "pocketsphinx");
  if (!strcmp(name, "pocketsphinx"))
    return stt_pocketsphinx_new(err);
  if (!strcmp(name, "google"))
    return stt_google_new(err);
  if (!strcmp(name, "openai"))
    return stt_openai_new(err);
  stage_error_set(err, "bad_config", "STT_BACKEND=%s is not one of: pocketsphinx, google, openai",
                  name);
  return NULL;
}
