/* espeak: the offline text-to-speech backend, eSpeak NG through its library.
 * It speaks a reply as a 16-bit mono WAV at eSpeak's rate (22050 Hz) and reports the
 * phonemes it spoke with their times, so the avatar's mouth follows the audio exactly.
 *
 * eSpeak keeps all its state in process globals and is not thread-safe: at most one
 * backend exists per process at a time (tts_espeak_new refuses a second one) and its
 * calls must come from one thread at a time. eSpeak itself is initialised by the first
 * construction and stays up until the process exits: eSpeak NG 1.51 cannot be
 * terminated and initialised again (espeak_Terminate then blocks forever on its
 * internal queue thread), so destroy only releases the backend. Initialising eSpeak
 * also sets the process's LC_CTYPE locale to UTF-8, which its text handling needs.
 *
 * Settings: TTS_VOICE (default "en-us"), TTS_RATE (words per minute, 80-450,
 * default 175), TTS_PITCH (0-100, default 50), TTS_MAX_CHARS (default 2000),
 * TTS_MAX_AUDIO_SECONDS (default 600; eSpeak spells out symbols and emoji by name,
 * so a short text can still make very long audio). */
#include "tts_backend.h"
#include "tts_timeline.h"

#include "audio.h"
#include "config.h"

#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Set while a backend exists: eSpeak's globals can serve only one. Whoever holds it
 * owns the two variables below. */
static atomic_flag espeak_in_use = ATOMIC_FLAG_INIT;
static bool espeak_initialized;
static int espeak_sample_rate;

typedef struct {
  tts_backend_t base;          /* first, so a tts_backend_t * is an espeak_backend_t * */
  int sample_rate;
  size_t max_chars;
  size_t max_samples;
} espeak_backend_t;

typedef enum { CAPTURE_OK, CAPTURE_OUT_OF_MEMORY, CAPTURE_TOO_LONG } capture_state_t;

/* What eSpeak's callback collects during one espeak_Synth call. */
typedef struct {
  int16_t *samples;            /* malloc'd, owned; the WAV encoder copies from it */
  size_t sample_count;
  size_t sample_capacity;
  size_t max_samples;
  tts_timeline_t timeline;
  capture_state_t state;
} synth_capture_t;

static void capture_release(synth_capture_t *capture)
{
  free(capture->samples);
  tts_timeline_release(&capture->timeline);
  memset(capture, 0, sizeof *capture);
}

static int capture_append_samples(synth_capture_t *capture, const short *wav, size_t count)
{
  if (count > capture->max_samples - capture->sample_count) {
    capture->state = CAPTURE_TOO_LONG;
    return -1;
  }
  size_t wanted = capture->sample_count + count;
  if (wanted > capture->sample_capacity) {
    /* wanted <= max_samples (an hour of audio at most), so doubling cannot overflow. */
    size_t capacity = capture->sample_capacity ? capture->sample_capacity : 22050;
    while (capacity < wanted)
      capacity *= 2;
    int16_t *samples = realloc(capture->samples, capacity * sizeof *samples);
    if (!samples) {
      capture->state = CAPTURE_OUT_OF_MEMORY;
      return -1;
    }
    capture->samples = samples;
    capture->sample_capacity = capacity;
  }
  memcpy(capture->samples + capture->sample_count, wav, count * sizeof *wav);
  capture->sample_count = wanted;
  return 0;
}

/* eSpeak calls this for every buffer of audio (wav NULL at the end) with the events
 * that happened in it. Every event, even the list terminator, carries the user_data
 * given to espeak_Synth, so the capture needs no global. Returns 1 to stop eSpeak. */
static int on_synth_output(short *wav, int sample_count, espeak_EVENT *events)
{
  synth_capture_t *capture = events ? events->user_data : NULL;
  if (!capture)
    return 1;
  if (wav && sample_count > 0 &&
      capture_append_samples(capture, wav, (size_t) sample_count) != 0)
    return 1;
  for (const espeak_EVENT *event = events; event->type != espeakEVENT_LIST_TERMINATED; event++) {
    if (event->type != espeakEVENT_PHONEME)
      continue;
    uint32_t start_ms = event->audio_position > 0 ? (uint32_t) event->audio_position : 0;
    if (tts_timeline_add(&capture->timeline, start_ms, event->id.string,
                         sizeof event->id.string) != 0) {
      capture->state = CAPTURE_OUT_OF_MEMORY;
      return 1;
    }
  }
  return 0;
}

static bool text_is_blank(const char *text)
{
  for (const unsigned char *p = (const unsigned char *) text; *p; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\v' && *p != '\f')
      return false;
  return true;
}

/* Counts characters as UTF-8 lead bytes; other bytes each count as one, which is
 * how eSpeak reads text that is not valid UTF-8. */
static size_t text_char_count(const char *text)
{
  size_t count = 0;
  for (const unsigned char *p = (const unsigned char *) text; *p; p++)
    if ((*p & 0xC0) != 0x80)
      count++;
  return count;
}

static int result_fill(const espeak_backend_t *backend, synth_capture_t *capture,
                       tts_result_t *out, stage_error_t *err)
{
  pcm_t pcm = { .samples = capture->samples, .count = capture->sample_count,
                .sample_rate = backend->sample_rate };
  uint32_t duration_ms = pcm_duration_ms(&pcm);
  uint8_t *wav = NULL;
  size_t wav_size = 0;
  if (audio_wav_encode(&pcm, &wav, &wav_size) != 0)
    return stage_error_set(err, "backend_error", "out of memory while encoding the speech");
  phoneme_t *phonemes = NULL;
  size_t phoneme_count = 0;
  if (tts_timeline_finish(&capture->timeline, duration_ms, &phonemes, &phoneme_count) != 0) {
    free(wav);
    return stage_error_set(err, "backend_error", "out of memory while timing the phonemes");
  }
  out->audio = wav;
  out->audio_size = wav_size;
  snprintf(out->mime, sizeof out->mime, "audio/wav");
  out->duration_ms = duration_ms;
  out->phonemes = phonemes;
  out->phoneme_count = phoneme_count;
  return 0;
}

static int espeak_synthesize(tts_backend_t *self, const char *text, tts_result_t *out,
                             stage_error_t *err)
{
  espeak_backend_t *backend = (espeak_backend_t *) self;
  memset(out, 0, sizeof *out);
  if (!text || text_is_blank(text))
    return stage_error_set(err, "empty_text", "there is no text to speak");
  size_t char_count = text_char_count(text);
  if (char_count > backend->max_chars)
    return stage_error_set(err, "text_too_long",
                           "the text has %zu characters; at most %zu can be spoken (TTS_MAX_CHARS)",
                           char_count, backend->max_chars);

  synth_capture_t capture = { .max_samples = backend->max_samples };
  espeak_ERROR status = espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0,
                                     espeakCHARS_AUTO, NULL, &capture);
  int rc = 0;
  if (capture.state == CAPTURE_TOO_LONG)
    rc = stage_error_set(err, "text_too_long",
                         "the speech would last longer than %zu seconds (TTS_MAX_AUDIO_SECONDS)",
                         backend->max_samples / (size_t) backend->sample_rate);
  else if (capture.state == CAPTURE_OUT_OF_MEMORY)
    rc = stage_error_set(err, "backend_error", "out of memory while synthesizing speech");
  else if (status != EE_OK)
    rc = stage_error_set(err, "backend_error", "eSpeak NG failed to synthesize (error %d)",
                         (int) status);
  else if (!tts_timeline_has_speech(&capture.timeline))
    rc = stage_error_set(err, "empty_text", "the text has nothing that can be spoken");
  else
    rc = result_fill(backend, &capture, out, err);
  capture_release(&capture);
  return rc;
}

static void espeak_destroy(tts_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  free(*self_p);
  *self_p = NULL;
  atomic_flag_clear(&espeak_in_use);
}

/* espeak_Initialize prints to stderr (and may exit without DONT_EXIT) when its data
 * is missing; looking first lets us report that as a stage error instead. */
static int check_espeak_data(stage_error_t *err)
{
  espeak_ng_InitializePath(NULL);
  const char *data_dir = NULL;
  espeak_Info(&data_dir);
  char phontab[PATH_MAX];
  int written = snprintf(phontab, sizeof phontab, "%s/phontab", data_dir ? data_dir : "");
  if (!data_dir || written < 0 || (size_t) written >= sizeof phontab ||
      access(phontab, R_OK) != 0)
    return stage_error_set(err, "backend_error",
                           "eSpeak NG data not found at %s (install espeak-ng-data or set "
                           "ESPEAK_DATA_PATH)", data_dir ? data_dir : "(unknown)");
  return 0;
}

static int apply_settings(stage_error_t *err)
{
  const char *voice = config_str("TTS_VOICE", "en-us");
  if (espeak_SetVoiceByName(voice) != EE_OK)
    return stage_error_set(err, "backend_error", "eSpeak NG has no voice \"%.64s\" (TTS_VOICE)",
                           voice);
  int rate = (int) config_long("TTS_RATE", 175, 80, 450);
  int pitch = (int) config_long("TTS_PITCH", 50, 0, 100);
  if (espeak_SetParameter(espeakRATE, rate, 0) != EE_OK ||
      espeak_SetParameter(espeakPITCH, pitch, 0) != EE_OK)
    return stage_error_set(err, "backend_error", "eSpeak NG refused TTS_RATE or TTS_PITCH");
  return 0;
}

/* Brings eSpeak up with phoneme events, once per process.
 * Returns its sample rate, or -1 with `err` set. */
static int espeak_start(stage_error_t *err)
{
  if (espeak_initialized)
    return espeak_sample_rate;
  if (check_espeak_data(err) != 0)
    return -1;
  int sample_rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL,
                                      espeakINITIALIZE_PHONEME_EVENTS |
                                      espeakINITIALIZE_DONT_EXIT);
  if (sample_rate <= 0)
    return stage_error_set(err, "backend_error", "eSpeak NG failed to initialise");
  espeak_SetSynthCallback(on_synth_output);
  espeak_initialized = true;
  espeak_sample_rate = sample_rate;
  return sample_rate;
}

tts_backend_t *tts_espeak_new(stage_error_t *err)
{
  if (atomic_flag_test_and_set(&espeak_in_use)) {
    stage_error_set(err, "backend_error",
                    "an eSpeak NG backend already exists in this process (eSpeak is process-global)");
    return NULL;
  }
  espeak_backend_t *backend = calloc(1, sizeof *backend);
  if (!backend) {
    stage_error_set(err, "backend_error", "out of memory");
    atomic_flag_clear(&espeak_in_use);
    return NULL;
  }
  int sample_rate = espeak_start(err);
  if (sample_rate < 0 || apply_settings(err) != 0) {
    free(backend);
    atomic_flag_clear(&espeak_in_use);
    return NULL;
  }
  long max_audio_seconds = config_long("TTS_MAX_AUDIO_SECONDS", 600, 10, 3600);
  backend->base.name = "espeak";
  backend->base.synthesize = espeak_synthesize;
  backend->base.destroy = espeak_destroy;
  backend->max_chars = (size_t) config_long("TTS_MAX_CHARS", 2000, 1, 100000);
  backend->sample_rate = sample_rate;
  backend->max_samples = (size_t) max_audio_seconds * (size_t) sample_rate;
  return &backend->base;
}
