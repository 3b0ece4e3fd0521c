/* fake_openai_audio: a local OpenAI-compatible audio server (external-apis.md §5.2,
 * §5.3): POST <FAKE_OPENAI_STT_PATH> (default /v1/audio/transcriptions; whisper.cpp
 * serves /inference) and POST /v1/audio/speech.
 *
 * Settings (environment, read at install):
 *   FAKE_OPENAI_API_KEY     when set, "Authorization: Bearer <key>" is required (401
 *                           otherwise), as with llama.cpp/vLLM started with --api-key
 *   FAKE_OPENAI_STT_PATH    the transcription path
 *   FAKE_OPENAI_WAV_ONLY=1  decode WAV only, like whisper.cpp without --convert
 *   FAKE_OPENAI_TRANSCRIPT  what non-silent audio says (default "What are your office
 *                           hours?", punctuated as whisper writes)
 *   ESPEAK_NG               the espeak-ng program /v1/audio/speech speaks with
 *
 * Outcome words: "ok", "429" (Retry-After: 1), "500", "503", "malformed", "slow",
 * "drop". */
#ifndef FAKE_OPENAI_AUDIO_H
#define FAKE_OPENAI_AUDIO_H

#include "fake_http.h"

/* Adds both routes. Returns 0, or -1 when out of memory. */
int fake_openai_audio_install(fake_server_t *server);

#endif
