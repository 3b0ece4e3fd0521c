/* pocketsphinx: the offline speech-to-text backend. The acoustic model comes from
 * Debian's pocketsphinx-en-us; the language model and dictionary are generated at build
 * time from the knowledge base (see lmgen.c), which is what makes the questions people
 * ask this assistant recognizable. The decoder is loaded once per backend and reused
 * for every job, because loading it takes far longer than decoding a question. A decoder
 * is not thread-safe: each worker thread creates its own backend. */
#include "stt_backend.h"

#include "audio.h"
#include "config.h"

#include <sphinxbase/err.h>
#include <pocketsphinx.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum {
  SPHINX_SAMPLE_RATE = 16000,   /* what the en-us acoustic model was trained on */
  DEFAULT_MAX_AUDIO_MS = 60000,
  SILENCE_PEAK = 200            /* below -44 dBFS peak nothing can be recognized */
};

typedef struct {
  stt_backend_t base;           /* first, so the vtable pointer is the struct pointer */
  ps_decoder_t *decoder;
  uint32_t max_audio_ms;
} pocketsphinx_backend_t;

static bool is_silent(const pcm_t *pcm)
{
  for (size_t i = 0; i < pcm->count; i++) {
    int sample = pcm->samples[i];
    if (sample > SILENCE_PEAK || sample < -SILENCE_PEAK)
      return false;
  }
  return true;
}

static int no_speech(stage_error_t *err)
{
  return stage_error_set(err, "no_speech",
                         "No speech was heard in the recording; please speak closer to the "
                         "microphone and try again.");
}

/* Copies the hypothesis in lower case; the dictionary is lower case already, but a
 * user-supplied STT_DICT need not be. */
static char *transcript_copy(const char *hypothesis)
{
  size_t length = strlen(hypothesis);
  char *text = malloc(length + 1);
  if (!text)
    return NULL;
  for (size_t i = 0; i < length; i++)
    text[i] = (char) tolower((unsigned char) hypothesis[i]);
  text[length] = '\0';
  return text;
}

static int decode_utterance(pocketsphinx_backend_t *self, const pcm_t *pcm, stt_result_t *out,
                            stage_error_t *err)
{
  if (ps_start_utt(self->decoder) < 0)
    return stage_error_set(err, "backend_error", "The speech recognizer could not start.");
  /* One call with full_utt: the whole upload is a single utterance, which lets the
   * decoder normalize the cepstrum over all of it instead of guessing from the start. */
  int processed = ps_process_raw(self->decoder, pcm->samples, pcm->count, FALSE, TRUE);
  if (ps_end_utt(self->decoder) < 0 || processed < 0)
    return stage_error_set(err, "backend_error", "The speech recognizer failed on this audio.");

  int32 score = 0;
  const char *hypothesis = ps_get_hyp(self->decoder, &score);
  if (!hypothesis || !hypothesis[strspn(hypothesis, " ")])
    return no_speech(err);
  double probability = logmath_exp(ps_get_logmath(self->decoder), ps_get_prob(self->decoder));
  out->text = transcript_copy(hypothesis);
  if (!out->text)
    return stage_error_set(err, "backend_error", "Out of memory while transcribing.");
  out->confidence = probability < 0.0 ? 0.0f : probability > 1.0 ? 1.0f : (float) probability;
  return 0;
}

static int pocketsphinx_transcribe(stt_backend_t *base, const uint8_t *audio, size_t size,
                                   const char *mime, stt_result_t *out, stage_error_t *err)
{
  pocketsphinx_backend_t *self = (pocketsphinx_backend_t *) base;
  (void) mime;      /* FFmpeg probes the content; a client's MIME type is only a hint */
  memset(out, 0, sizeof *out);
  pcm_t pcm = {0};
  if (audio_decode(audio, size, SPHINX_SAMPLE_RATE, self->max_audio_ms, &pcm, err) < 0)
    return -1;
  int rc = is_silent(&pcm) ? no_speech(err) : decode_utterance(self, &pcm, out, err);
  pcm_release(&pcm);
  return rc;
}

static void pocketsphinx_destroy(stt_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  pocketsphinx_backend_t *self = (pocketsphinx_backend_t *) *self_p;
  ps_free(self->decoder);
  free(self);
  *self_p = NULL;
}

stt_backend_t *stt_pocketsphinx_new(stage_error_t *err)
{
  const char *model = config_str("STT_MODEL_DIR", "/usr/share/pocketsphinx/model/en-us/en-us");
  const char *lm = config_str("STT_LM", STT_DEFAULT_LM);
  const char *dict = config_str("STT_DICT", STT_DEFAULT_DICT);

  /* Every service logs JSON lines only; PocketSphinx would print hundreds of its own.
   * Its log target is process-wide and cmd_ln_init already logs, so it is silenced
   * here rather than with "-logfn /dev/null", which would take effect too late. */
  err_set_logfp(NULL);
  cmd_ln_t *args = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", model, "-lm", lm, "-dict", dict,
                               NULL);
  if (!args) {
    stage_error_set(err, "backend_error", "PocketSphinx settings were rejected.");
    return NULL;
  }
  ps_decoder_t *decoder = ps_init(args);
  cmd_ln_free_r(args);      /* the decoder keeps its own reference */
  if (!decoder) {
    stage_error_set(err, "backend_error",
                    "PocketSphinx could not load its model (STT_MODEL_DIR=%s, STT_LM=%s, "
                    "STT_DICT=%s).", model, lm, dict);
    return NULL;
  }
  pocketsphinx_backend_t *self = calloc(1, sizeof *self);
  if (!self) {
    ps_free(decoder);
    stage_error_set(err, "backend_error", "Out of memory loading PocketSphinx.");
    return NULL;
  }
  self->base.name = "pocketsphinx";
  self->base.transcribe = pocketsphinx_transcribe;
  self->base.destroy = pocketsphinx_destroy;
  self->decoder = decoder;
  self->max_audio_ms = (uint32_t) config_long("STT_MAX_AUDIO_MS", DEFAULT_MAX_AUDIO_MS, 1000,
                                              3600000);
  return &self->base;
}
