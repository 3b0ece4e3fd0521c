/* pocketsphinx: the offline speech-to-text backend. The acoustic model comes from
 * Debian's pocketsphinx-en-us; the language model and dictionary are generated at build
 * time from the knowledge base (see lmgen.c), which is what makes the questions people
 * ask this assistant recognizable. The decoder is loaded once per backend and reused
 * for every job, because loading it takes far longer than decoding a question. A decoder
 * is not thread-safe: each worker thread creates its own backend.
 *
 * The domain model alone forces every sentence onto the knowledge base's words, so an
 * off-topic question comes out as the nearest in-domain one. It is therefore
 * interpolated with Debian's generic en-us model (STT_GENERIC_LM, weight
 * STT_GENERIC_LM_PERCENT) over the full cmudict plus the domain's own words: a
 * question about the weather is heard as words about the weather, which chat then
 * turns down (docs/performance.md "Conversation quality").
 *
 * When the knowledge file changes (and STT_LM is not set to a model of one's own),
 * the model is generated again with lmgen, as a library call, and the decoder is
 * replaced before the next job: a new question added to the knowledge base is heard
 * without a restart. A knowledge base that fails validation keeps the old model and
 * logs why, naming the entry and field. */
#include "stt_backend.h"

#include "audio.h"
#include "conditioning.h"
#include "config.h"
#include "lmgen.h"
#include "log.h"

#include <sphinxbase/ckd_alloc.h>
#include <sphinxbase/err.h>
#include <sphinxbase/fe.h>
#include <sphinxbase/ngram_model.h>
#include <pocketsphinx.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
  SPHINX_SAMPLE_RATE = 16000,   /* what the en-us acoustic model was trained on */
  DEFAULT_MAX_AUDIO_MS = 60000,
  DEFAULT_GENERIC_PERCENT = 5,  /* docs/performance.md "Conversation quality" */
  SILENCE_PEAK = 200,           /* below -44 dBFS peak nothing can be recognized */
  NOISE_LEAD_MS = 500,          /* of noise floor the noise estimate settles on */
  PRIME_FRAMES = 32,            /* feature frames made per front-end call while priming */
  MAX_CEPSTRUM = 64,            /* coefficients of a feature frame; en-us has 13 */
  MAX_DECODER_ARGS = 64
};

/* PocketSphinx's second pass (fwdflat) with narrower beams and a wider word window
 * than its defaults (1e-64, 7e-29, 25): 10-18% faster on the eval's questions and the
 * browser's recordings, with the same answers (docs/performance.md "Latency"). */
#define DEFAULT_DECODER_OPTIONS "-fwdflatbeam 1e-40 -fwdflatwbeam 1e-20 -fwdflatsfwin 10"

/* Mean word posterior below which the recognizer is unsure of what was said. */
#define UNSURE_POSTERIOR 0.2

typedef struct {
  stt_backend_t base;           /* first, so the vtable pointer is the struct pointer */
  ps_decoder_t *decoder;
  uint32_t max_audio_ms;
  char model[512];              /* STT_MODEL_DIR */
  char generic_lm[512];         /* STT_GENERIC_LM: the open vocabulary's model */
  char generic_dict[512];       /* STT_GENERIC_DICT: its pronunciations */
  float generic_weight;         /* its share of the interpolation; 0: domain model alone */
  char decoder_options[512];    /* STT_DECODER_OPTIONS: PocketSphinx's own flags, in place
                                   of DEFAULT_DECODER_OPTIONS */
  bool follows_knowledge;       /* the model is generated from the knowledge file */
  char knowledge[512];          /* KNOWLEDGE_FILE */
  struct stat knowledge_seen;   /* the version the model was last built from (or tried) */
  char lm_dir[512];             /* where rebuilt models go (STT_LM_DIR) */
  int16_t noise_lead[NOISE_LEAD_MS * SPHINX_SAMPLE_RATE / 1000]; /* stt_noise_floor */
} pocketsphinx_backend_t;

/* Adds the words of the domain dictionary the generic one lacks (the business name and
 * other compounds lmgen spelled from two words). Words both know keep cmudict's
 * pronunciations; alternates "word(2)" of a known word add nothing new. */
static int add_domain_words(ps_decoder_t *decoder, const char *dict)
{
  FILE *file = fopen(dict, "r");
  if (!file)
    return -1;
  char line[1024];
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, file)) {
    line[strcspn(line, "\r\n")] = '\0';
    size_t word_length = strcspn(line, " \t");
    if (!word_length || !line[word_length] || memchr(line, '(', word_length))
      continue;
    line[word_length] = '\0';
    const char *phones = line + word_length + 1;
    phones += strspn(phones, " \t");
    char *known = ps_lookup_word(decoder, line);
    if (!known && ps_add_word(decoder, line, phones, FALSE) < 0)
      rc = -1;
    ckd_free(known);
  }
  if (ferror(file))
    rc = -1;
  fclose(file);
  return rc;
}

/* Makes the decoder search the domain model `lm` interpolated with the generic one. */
static int use_open_vocabulary(const pocketsphinx_backend_t *self, ps_decoder_t *decoder,
                               const char *lm, const char *dict)
{
  if (add_domain_words(decoder, dict) != 0)
    return -1;
  cmd_ln_t *config = ps_get_config(decoder);
  logmath_t *logmath = ps_get_logmath(decoder);
  ngram_model_t *models[2] = {ngram_model_read(config, lm, NGRAM_AUTO, logmath),
                              ngram_model_read(config, self->generic_lm, NGRAM_AUTO, logmath)};
  char *names[2] = {"domain", "generic"};
  float32 weights[2] = {1.0f - self->generic_weight, self->generic_weight};
  ngram_model_t *set = models[0] && models[1]
                         ? ngram_model_set_init(config, models, names, weights, 2) : NULL;
  /* The set holds its own references to the models, and the search to the set:
   * ours are dropped whatever happened. */
  ngram_model_free(models[0]);
  ngram_model_free(models[1]);
  int rc = !set || ps_set_lm(decoder, "open", set) < 0 || ps_set_search(decoder, "open") < 0
             ? -1 : 0;
  ngram_model_free(set);
  return rc;
}

/* Appends the whitespace-separated words of STT_DECODER_OPTIONS ("-fwdflat no -lw 8")
 * to argv; returns the new count, or -1 when there are more than fit. The words point
 * into `options`, which the caller keeps until argv is parsed. */
static int append_decoder_options(char *options, char **argv, int argc, int max)
{
  char *rest = NULL;
  for (char *word = strtok_r(options, " \t", &rest); word; word = strtok_r(NULL, " \t", &rest)) {
    if (argc == max)
      return -1;
    argv[argc++] = word;
  }
  return argc;
}

static ps_decoder_t *decoder_new(const pocketsphinx_backend_t *self, const char *lm,
                                 const char *dict)
{
  /* Every service logs JSON lines only; PocketSphinx would print hundreds of its own.
   * Its log target is process-wide and cmd_ln_init already logs, so it is silenced
   * here rather than with "-logfn /dev/null", which would take effect too late. */
  err_set_logfp(NULL);
  bool open_vocabulary = self->generic_weight > 0.0f;
  /* With the open vocabulary the search is set up afterwards, from both models. */
  char *argv[MAX_DECODER_ARGS];
  int argc = 0;
  argv[argc++] = "-hmm";
  argv[argc++] = (char *) self->model;
  argv[argc++] = "-dict";
  argv[argc++] = (char *) (open_vocabulary ? self->generic_dict : dict);
  if (!open_vocabulary) {
    argv[argc++] = "-lm";
    argv[argc++] = (char *) lm;
  }
  char options[sizeof self->decoder_options];
  memcpy(options, self->decoder_options, sizeof options);
  argc = append_decoder_options(options, argv, argc, MAX_DECODER_ARGS);
  if (argc < 0)
    return NULL;
  cmd_ln_t *args = cmd_ln_parse_r(NULL, ps_args(), argc, argv, TRUE);
  if (!args)
    return NULL;
  ps_decoder_t *decoder = ps_init(args);
  cmd_ln_free_r(args);      /* the decoder keeps its own reference */
  if (decoder && open_vocabulary && use_open_vocabulary(self, decoder, lm, dict) != 0) {
    ps_free(decoder);
    decoder = NULL;
  }
  return decoder;
}

static bool same_file_version(const struct stat *a, const struct stat *b)
{
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Builds the model of the current knowledge file into lm_dir and swaps decoders.
 * Files are named after the process and backend, so replicas sharing a directory
 * never read each other's half-written model. */
static void rebuild_language_model(pocketsphinx_backend_t *self)
{
  char lm[640], dict[640];
  snprintf(lm, sizeof lm, "%s/domain-%ld-%p.lm", self->lm_dir, (long) getpid(), (void *) self);
  snprintf(dict, sizeof dict, "%s/domain-%ld-%p.dict", self->lm_dir, (long) getpid(),
           (void *) self);
  if (mkdir(self->lm_dir, 0755) != 0 && errno != EEXIST) {
    log_msg(LOG_ERROR, "stt_model_rebuild_failed", "STT_LM_DIR %s: %s", self->lm_dir,
            strerror(errno));
    return;
  }
  lmgen_options_t options = {
    .knowledge_path = self->knowledge, .cmudict_path = STT_CMUDICT,
    .general_path = STT_GENERAL_ENGLISH, .general_weight = STT_LM_GENERAL_WEIGHT,
    .generic_lm_path = STT_GENERIC_LM, .generic_words = STT_LM_GENERIC_WORDS,
    .generic_weight = STT_LM_GENERIC_WEIGHT, .out_lm = lm, .out_dict = dict};
  lmgen_stats_t stats = {0};
  stage_error_t err = {0};
  if (lmgen_build(&options, &stats, &err) != 0) {
    log_msg(LOG_ERROR, "stt_model_rebuild_failed", "%s (still using the previous model)",
            err.message);
    return;
  }
  ps_decoder_t *decoder = decoder_new(self, lm, dict);
  /* The decoder has read both files; they are not needed again. */
  remove(lm);
  remove(dict);
  if (!decoder) {
    log_msg(LOG_ERROR, "stt_model_rebuild_failed", "PocketSphinx refused the new model");
    return;
  }
  ps_free(self->decoder);
  self->decoder = decoder;
  log_msg(LOG_INFO, "stt_model_rebuilt", "%s: %zu sentences, %zu words", self->knowledge,
          stats.sentences, stats.words);
}

/* Rebuilds the model when the knowledge file is a new version (one stat per job). */
static void follow_knowledge(pocketsphinx_backend_t *self)
{
  struct stat now;
  if (!self->follows_knowledge || stat(self->knowledge, &now) != 0 ||
      same_file_version(&now, &self->knowledge_seen))
    return;
  self->knowledge_seen = now;         /* a broken version is reported once */
  rebuild_language_model(self);
}

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

/* The mean posterior probability of the hypothesis' words (from the word lattice):
 * near 1 when the decoder had no real alternative for each word, low when other
 * words fitted the sound about as well, which is what speech the language model
 * does not expect sounds like. Silences and fillers are not words. */
static float word_confidence(ps_decoder_t *decoder)
{
  logmath_t *logmath = ps_get_logmath(decoder);
  double sum = 0.0;
  size_t words = 0;
  for (ps_seg_t *seg = ps_seg_iter(decoder); seg; seg = ps_seg_next(seg)) {
    const char *word = ps_seg_word(seg);
    if (!word || word[0] == '<' || word[0] == '[' || !strcmp(word, "<sil>"))
      continue;
    int32 acoustic, language, backoff;
    double posterior = logmath_exp(logmath, ps_seg_prob(seg, &acoustic, &language, &backoff));
    sum += posterior < 0.0 ? 0.0 : posterior > 1.0 ? 1.0 : posterior;
    words++;
  }
  if (!words)
    return 0.0f;
  /* Scaled so that CHAT_TRANSCRIPT_MIN_CONFIDENCE (0.5) falls at a mean posterior of
   * UNSURE_POSTERIOR: on the eval's spoken questions (docs/performance.md) a quarter
   * of the in-domain ones score below 0.43, so a higher cut would turn away many
   * questions that were heard right. */
  double mean = sum / (double) words;
  double scaled = mean < UNSURE_POSTERIOR
                    ? 0.5 * mean / UNSURE_POSTERIOR
                    : 0.5 + 0.5 * (mean - UNSURE_POSTERIOR) / (1.0 - UNSURE_POSTERIOR);
  return (float) scaled;
}

/* Every upload is a stream of its own (another person, microphone and room), so the
 * noise level PocketSphinx tracks for noise removal starts afresh: a transcript never
 * depends on the jobs this decoder heard before. Afresh it would start from the
 * upload's first frames, which conditioning has trimmed to a quarter second, and 4 of
 * 8 browser recordings of "what are your office hours" were then misheard; so the
 * front end alone (no search, no decoding time) first hears NOISE_LEAD_MS of the
 * noise floor conditioning adds (docs/performance.md "Conversation quality"). */
static int start_stream(pocketsphinx_backend_t *self)
{
  if (ps_start_stream(self->decoder) < 0)
    return -1;
  fe_t *front_end = ps_get_fe(self->decoder);
  if (fe_get_output_size(front_end) > MAX_CEPSTRUM)
    return -1;
  /* The frames made are thrown away: on the stack, not allocated per job. */
  mfcc_t cepstra[PRIME_FRAMES][MAX_CEPSTRUM], *frames[PRIME_FRAMES];
  for (size_t i = 0; i < PRIME_FRAMES; i++)
    frames[i] = cepstra[i];
  const int16 *samples = self->noise_lead;
  size_t left = sizeof self->noise_lead / sizeof *self->noise_lead;
  int rc = fe_start_utt(front_end);
  while (rc >= 0 && left > 0) {
    size_t before = left;
    int32 count = PRIME_FRAMES, first_frame = 0;
    rc = fe_process_frames(front_end, &samples, &left, frames, &count, &first_frame);
    if (left == before)
      break;
  }
  int32 count = 0;
  if (fe_end_utt(front_end, frames[0], &count) < 0)
    rc = -1;
  return rc < 0 ? -1 : 0;
}

static int decode_utterance(pocketsphinx_backend_t *self, const pcm_t *pcm, stt_result_t *out,
                            stage_error_t *err)
{
  if (start_stream(self) < 0 || ps_start_utt(self->decoder) < 0)
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
  out->text = transcript_copy(hypothesis);
  if (!out->text)
    return stage_error_set(err, "backend_error", "Out of memory while transcribing.");
  out->confidence = word_confidence(self->decoder);
  return 0;
}

static int pocketsphinx_transcribe(stt_backend_t *base, const uint8_t *audio, size_t size,
                                   const char *mime, stt_result_t *out, stage_error_t *err)
{
  pocketsphinx_backend_t *self = (pocketsphinx_backend_t *) base;
  (void) mime;      /* FFmpeg probes the content; a client's MIME type is only a hint */
  memset(out, 0, sizeof *out);
  follow_knowledge(self);
  pcm_t pcm = {0};
  if (audio_decode(audio, size, SPHINX_SAMPLE_RATE, self->max_audio_ms, &pcm, err) < 0)
    return -1;
  int rc = -1;
  if (is_silent(&pcm)) {
    rc = no_speech(err);
  } else {
    stt_condition(&pcm);
    rc = decode_utterance(self, &pcm, out, err);
  }
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
  pocketsphinx_backend_t *self = calloc(1, sizeof *self);
  if (!self) {
    stage_error_set(err, "backend_error", "Out of memory loading PocketSphinx.");
    return NULL;
  }
  snprintf(self->model, sizeof self->model, "%s",
           config_str("STT_MODEL_DIR", "/usr/share/pocketsphinx/model/en-us/en-us"));
  snprintf(self->generic_lm, sizeof self->generic_lm, "%s",
           config_str("STT_GENERIC_LM", STT_GENERIC_LM));
  snprintf(self->generic_dict, sizeof self->generic_dict, "%s",
           config_str("STT_GENERIC_DICT", STT_DEFAULT_GENERIC_DICT));
  self->generic_weight = (float) config_long("STT_GENERIC_LM_PERCENT", DEFAULT_GENERIC_PERCENT,
                                             0, 90) / 100.0f;
  snprintf(self->decoder_options, sizeof self->decoder_options, "%s",
           config_str("STT_DECODER_OPTIONS", DEFAULT_DECODER_OPTIONS));
  const char *lm = config_str("STT_LM", STT_DEFAULT_LM);
  const char *dict = config_str("STT_DICT", STT_DEFAULT_DICT);
  self->decoder = decoder_new(self, lm, dict);
  if (!self->decoder) {
    stage_error_set(err, "backend_error",
                    "PocketSphinx could not load its model (STT_MODEL_DIR=%s, STT_LM=%s, "
                    "STT_DICT=%s, STT_GENERIC_LM=%s, STT_GENERIC_DICT=%s, "
                    "STT_DECODER_OPTIONS=%s).", self->model, lm, dict, self->generic_lm,
                    self->generic_dict, self->decoder_options);
    free(self);
    return NULL;
  }
  stt_noise_floor(self->noise_lead, sizeof self->noise_lead / sizeof *self->noise_lead);
  self->base.name = "pocketsphinx";
  self->base.transcribe = pocketsphinx_transcribe;
  self->base.destroy = pocketsphinx_destroy;
  self->max_audio_ms = (uint32_t) config_long("STT_MAX_AUDIO_MS", DEFAULT_MAX_AUDIO_MS, 1000,
                                              3600000);
  snprintf(self->knowledge, sizeof self->knowledge, "%s",
           config_str("KNOWLEDGE_FILE", STT_DEFAULT_KNOWLEDGE));
  snprintf(self->lm_dir, sizeof self->lm_dir, "%s", config_str("STT_LM_DIR", "var/stt"));
  /* The build-time model was made from the default knowledge file; another file
   * gets its model before the first job. */
  self->follows_knowledge = !config_str("STT_LM", NULL) && !config_str("STT_DICT", NULL);
  if (self->follows_knowledge && !strcmp(self->knowledge, STT_DEFAULT_KNOWLEDGE) &&
      stat(self->knowledge, &self->knowledge_seen) != 0)
    memset(&self->knowledge_seen, 0, sizeof self->knowledge_seen);
  return &self->base;
}
