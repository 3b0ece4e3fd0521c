/* lmmix: the static interpolation of the domain and generic language models (see
 * lmmix.h).
 *
 * The n-grams are keys of vocabulary ids packed into one uint64 (21 bits a word), so
 * sorting them sorts by history and a history's n-grams are neighbours. Their
 * probabilities come from sphinxbase's own interpolated model (ngram_model_set), the
 * one the decoder used to search at run time, so each listed n-gram keeps exactly
 * the probability it had there. Only the n-grams neither model lists change: they
 * back off through the recomputed weights instead of each model backing off on its
 * own.
 *
 * sphinxbase cannot build a model in memory, so the mix is written as ARPA text beside
 * the output, read back and written in the binary trie format, and the text removed. */
#include "lmmix.h"

#include "lmtrie.h"

#include <sphinxbase/err.h>
#include <sphinxbase/hash_table.h>
#include <sphinxbase/logmath.h>
#include <sphinxbase/ngram_model.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  MIX_ORDER = 3,
  WORD_BITS = 21,               /* a vocabulary id in a packed n-gram key */
  MAX_WORDS = 1 << WORD_BITS,
  MAX_LINE = 4096
};

#define WORD_MASK ((uint64_t) MAX_WORDS - 1)
/* PocketSphinx's -logbase default, so the mix is computed in the decoder's log domain. */
#define LOG_BASE 1.0001
/* Least probability mass left to a history's unlisted words or taken from the lower
 * order: keeps a backoff weight finite when the listed words take nearly all. */
#define MIN_MASS 1e-6
#define NO_WORD UINT32_MAX

typedef struct {
  char **words;                 /* owned */
  int32 *set_wid;               /* the word's id in the interpolated model */
  size_t count;
  size_t capacity;
  size_t generic_count;         /* ids below this came from the generic dictionary */
  hash_table_t *ids;            /* word -> id; keys are the strings in words[] */
} vocabulary_t;

typedef struct {
  uint64_t *keys;
  size_t count;
  size_t capacity;
} key_list_t;

typedef struct {
  const lmmix_options_t *options;
  stage_error_t *err;
  logmath_t *logmath;
  ngram_model_t *set;           /* the run-time interpolation, scoring every n-gram */
  vocabulary_t vocab;
  key_list_t grams[MIX_ORDER];  /* [1] bigrams, [2] trigrams, sorted, unique */
  double *unigram_prob;         /* per word */
  double *unigram_backoff;      /* per word, linear */
  double *bigram_prob;          /* per bigram key */
  double *bigram_backoff;       /* per bigram key, linear */
  double *trigram_prob;         /* per trigram key */
  uint32_t *trie_to_vocab;      /* while listing the generic model's n-grams */
  const lmtrie_t *trie;
} mix_t;

static int fail(mix_t *mix, const char *fmt, const char *detail)
{
  return stage_error_set(mix->err, "lmgen_failed", fmt, detail);
}

static uint64_t pack(const uint32_t *words, int order)
{
  uint64_t key = 0;
  for (int i = 0; i < order; i++)
    key = key << WORD_BITS | words[i];
  return key;
}

static void unpack(uint64_t key, int order, uint32_t *words)
{
  for (int i = order - 1; i >= 0; i--, key >>= WORD_BITS)
    words[i] = (uint32_t) (key & WORD_MASK);
}

static int keys_push(key_list_t *list, uint64_t key)
{
  if (list->count == list->capacity) {
    size_t capacity = list->capacity ? list->capacity * 2 : 4096;
    uint64_t *keys = realloc(list->keys, capacity * sizeof *keys);
    if (!keys)
      return -1;
    list->keys = keys;
    list->capacity = capacity;
  }
  list->keys[list->count++] = key;
  return 0;
}

static int key_compare(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

static void keys_sort_unique(key_list_t *list)
{
  qsort(list->keys, list->count, sizeof *list->keys, key_compare);
  size_t kept = 0;
  for (size_t i = 0; i < list->count; i++)
    if (!kept || list->keys[kept - 1] != list->keys[i])
      list->keys[kept++] = list->keys[i];
  list->count = kept;
}

/* The index of `key` in the sorted list, or -1. */
static ptrdiff_t keys_find(const key_list_t *list, uint64_t key)
{
  const uint64_t *found = bsearch(&key, list->keys, list->count, sizeof key, key_compare);
  return found ? found - list->keys : -1;
}

/* ---- vocabulary and dictionary ---- */

/* The id of `word`, or NO_WORD. */
static uint32_t vocabulary_id(const vocabulary_t *vocab, const char *word)
{
  int32 id;
  return hash_table_lookup_int32(vocab->ids, word, &id) == 0 ? (uint32_t) id : NO_WORD;
}

static uint32_t vocabulary_add(vocabulary_t *vocab, const char *word)
{
  uint32_t id = vocabulary_id(vocab, word);
  if (id != NO_WORD)
    return id;
  if (vocab->count == MAX_WORDS)
    return NO_WORD;
  if (vocab->count == vocab->capacity) {
    size_t capacity = vocab->capacity ? vocab->capacity * 2 : 16384;
    char **words = realloc(vocab->words, capacity * sizeof *words);
    if (!words)
      return NO_WORD;
    vocab->words = words;
    vocab->capacity = capacity;
  }
  char *copy = strdup(word);
  if (!copy)
    return NO_WORD;
  id = (uint32_t) vocab->count;
  vocab->words[vocab->count++] = copy;
  hash_table_enter_int32(vocab->ids, copy, id);
  return id;
}

/* Copies the dictionary at `path` to `out` and adds its words to the vocabulary. With
 * `skip_known`, the words of the generic dictionary are neither copied nor added again:
 * they keep its pronunciations. */
static int dictionary_merge(mix_t *mix, const char *path, FILE *out, bool skip_known)
{
  FILE *in = fopen(path, "r");
  if (!in)
    return fail(mix, "%s: cannot be read", path);
  char line[MAX_LINE];
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, in)) {
    size_t length = strlen(line);
    if (length == sizeof line - 1 && line[length - 1] != '\n') {
      rc = fail(mix, "%s: a line is too long", path);
      break;
    }
    size_t word_length = strcspn(line, " \t\r\n");
    if (!word_length)
      continue;
    char word[MAX_LINE];
    memcpy(word, line, word_length);
    word[word_length] = '\0';
    char *alternate = strchr(word, '(');        /* "word(2)": another pronunciation */
    if (alternate && alternate != word)
      *alternate = '\0';
    uint32_t known = vocabulary_id(&mix->vocab, word);
    if (skip_known && known != NO_WORD && known < mix->vocab.generic_count)
      continue;
    if (fputs(line, out) == EOF)
      rc = fail(mix, "%s: cannot be written", mix->options->out_dict);
    else if (vocabulary_add(&mix->vocab, word) == NO_WORD)
      rc = fail(mix, "%s: too many words, or out of memory", path);
  }
  if (rc == 0 && ferror(in))
    rc = fail(mix, "%s: read error", path);
  fclose(in);
  return rc;
}

static int dictionary_write(mix_t *mix)
{
  const lmmix_options_t *options = mix->options;
  FILE *out = fopen(options->out_dict, "w");
  if (!out)
    return fail(mix, "%s: cannot be written", options->out_dict);
  int rc = dictionary_merge(mix, options->generic_dict, out, false);
  mix->vocab.generic_count = mix->vocab.count;
  if (rc == 0)
    rc = dictionary_merge(mix, options->domain_dict, out, true);
  if (fclose(out) != 0 && rc == 0)
    rc = fail(mix, "%s: cannot be written", options->out_dict);
  return rc;
}

/* ---- the models ---- */

static ngram_model_t *model_read(mix_t *mix, const char *path)
{
  ngram_model_t *model = ngram_model_read(NULL, path, NGRAM_AUTO, mix->logmath);
  if (!model)
    fail(mix, "%s: not a language model sphinxbase can read", path);
  else if (ngram_model_get_size(model) > MIX_ORDER)
    fail(mix, "%s: only models up to trigrams can be mixed", path);
  else
    return model;
  ngram_model_free(model);
  return NULL;
}

static int models_load(mix_t *mix)
{
  const lmmix_options_t *options = mix->options;
  ngram_model_t *models[2] = {model_read(mix, options->domain_lm), NULL};
  if (models[0])
    models[1] = model_read(mix, options->generic_lm);
  if (models[0] && models[1]) {
    char *names[2] = {"domain", "generic"};
    float32 weights[2] = {(float32) (1.0 - options->generic_weight),
                          (float32) options->generic_weight};
    mix->set = ngram_model_set_init(NULL, models, names, weights, 2);
    if (!mix->set)
      fail(mix, "%s: cannot be interpolated with the domain model", options->generic_lm);
  }
  /* The set holds its own references. */
  ngram_model_free(models[0]);
  ngram_model_free(models[1]);
  if (!mix->set)
    return -1;
  mix->vocab.set_wid = malloc(mix->vocab.count * sizeof *mix->vocab.set_wid);
  if (!mix->vocab.set_wid)
    return fail(mix, "%s: out of memory", options->out_lm);
  for (size_t id = 0; id < mix->vocab.count; id++)
    mix->vocab.set_wid[id] = ngram_wid(mix->set, mix->vocab.words[id]);
  return 0;
}

static bool in_model(const mix_t *mix, uint32_t id)
{
  return id != NO_WORD && mix->vocab.set_wid[id] != ngram_unknown_wid(mix->set);
}

/* ---- the n-grams to list ---- */

/* Adds the n-grams of an ARPA file whose words are all in the vocabulary. */
static int keys_from_arpa(mix_t *mix, const char *path)
{
  FILE *in = fopen(path, "r");
  if (!in)
    return fail(mix, "%s: cannot be read", path);
  char line[MAX_LINE];
  int order = 0, rc = 0;
  while (rc == 0 && fgets(line, sizeof line, in)) {
    if (line[0] == '\\') {
      order = 0;
      if (sscanf(line, "\\%d-grams:", &order) != 1 || order < 2 || order > MIX_ORDER)
        order = 0;
      continue;
    }
    if (!order)
      continue;
    uint32_t words[MIX_ORDER];
    char *rest = NULL;
    bool listed = strtok_r(line, " \t\r\n", &rest) != NULL;     /* the probability */
    for (int i = 0; listed && i < order; i++) {
      const char *word = strtok_r(NULL, " \t\r\n", &rest);
      words[i] = word ? vocabulary_id(&mix->vocab, word) : NO_WORD;
      listed = in_model(mix, words[i]);
    }
    if (listed && keys_push(&mix->grams[order - 1], pack(words, order)) != 0)
      rc = fail(mix, "%s: out of memory", path);
  }
  if (rc == 0 && ferror(in))
    rc = fail(mix, "%s: read error", path);
  fclose(in);
  return rc;
}

static int add_trie_ngram(const uint32_t *words, int order, void *arg)
{
  mix_t *mix = arg;
  uint32_t ids[MIX_ORDER];
  for (int i = 0; i < order; i++) {
    ids[i] = mix->trie_to_vocab[words[i]];
    if (!in_model(mix, ids[i]))
      return 0;
  }
  return keys_push(&mix->grams[order - 1], pack(ids, order));
}

/* Adds the n-grams of a binary trie model whose words are all in the vocabulary. */
static int keys_from_trie(mix_t *mix, const char *path)
{
  lmtrie_t *trie = lmtrie_new(path, mix->err);
  if (!trie)
    return -1;
  int rc = 0;
  mix->trie_to_vocab = malloc(lmtrie_words(trie) * sizeof *mix->trie_to_vocab);
  if (!mix->trie_to_vocab)
    rc = fail(mix, "%s: out of memory", path);
  for (uint32_t id = 0; rc == 0 && id < lmtrie_words(trie); id++)
    mix->trie_to_vocab[id] = vocabulary_id(&mix->vocab, lmtrie_word(trie, id));
  mix->trie = trie;
  for (int order = 2; rc == 0 && order <= lmtrie_order(trie) && order <= MIX_ORDER; order++)
    if (lmtrie_foreach(trie, order, add_trie_ngram, mix) < 0)
      rc = fail(mix, "%s: damaged n-grams, or out of memory", path);
  mix->trie = NULL;
  free(mix->trie_to_vocab);
  mix->trie_to_vocab = NULL;
  lmtrie_destroy(&trie);
  return rc;
}

static bool is_trie_file(const char *path)
{
  static const char header[] = "Trie Language Model";
  char start[sizeof header - 1];
  FILE *file = fopen(path, "rb");
  bool trie = file && fread(start, 1, sizeof start, file) == sizeof start &&
              !memcmp(start, header, sizeof start);
  if (file)
    fclose(file);
  return trie;
}

static int keys_collect(mix_t *mix)
{
  const char *paths[2] = {mix->options->domain_lm, mix->options->generic_lm};
  for (int i = 0; i < 2; i++) {
    int rc = is_trie_file(paths[i]) ? keys_from_trie(mix, paths[i])
                                    : keys_from_arpa(mix, paths[i]);
    if (rc != 0)
      return rc;
  }
  /* A trigram whose history no model lists as a bigram (en-us.lm.bin has them) needs
   * that bigram in the mix: it holds the history's backoff weight. */
  for (size_t i = 0; i < mix->grams[2].count; i++)
    if (keys_push(&mix->grams[1], mix->grams[2].keys[i] >> WORD_BITS) != 0)
      return fail(mix, "%s: out of memory", mix->options->out_lm);
  for (int order = 2; order <= MIX_ORDER; order++)
    keys_sort_unique(&mix->grams[order - 1]);
  return 0;
}

/* ---- probabilities and backoff weights ---- */

/* The interpolated probability of words[order - 1] after the words before it. */
static double mixed_prob(const mix_t *mix, const uint32_t *words, int order)
{
  int32 history[MIX_ORDER - 1];
  for (int i = 0; i < order - 1; i++)
    history[i] = mix->vocab.set_wid[words[order - 2 - i]];     /* most recent first */
  int32 used;
  int32 score = ngram_ng_score(mix->set, mix->vocab.set_wid[words[order - 1]], history,
                               order - 1, &used);
  return logmath_exp(mix->logmath, score);
}

static double backoff_weight(double listed_prob, double listed_lower_prob)
{
  double left = 1.0 - listed_prob, lower_left = 1.0 - listed_lower_prob;
  return (left > MIN_MASS ? left : MIN_MASS) / (lower_left > MIN_MASS ? lower_left : MIN_MASS);
}

/* P(words[1] | words[0]) as the static model gives it: listed, or backed off. */
static double static_bigram_prob(const mix_t *mix, const uint32_t *words)
{
  ptrdiff_t at = keys_find(&mix->grams[1], pack(words, 2));
  return at >= 0 ? mix->bigram_prob[at]
                 : mix->unigram_backoff[words[0]] * mix->unigram_prob[words[1]];
}

static int probabilities_compute(mix_t *mix)
{
  size_t words = mix->vocab.count, bigrams = mix->grams[1].count, trigrams = mix->grams[2].count;
  mix->unigram_prob = calloc(words, sizeof(double));
  mix->unigram_backoff = calloc(words, sizeof(double));
  mix->bigram_prob = calloc(bigrams ? bigrams : 1, sizeof(double));
  mix->bigram_backoff = calloc(bigrams ? bigrams : 1, sizeof(double));
  mix->trigram_prob = calloc(trigrams ? trigrams : 1, sizeof(double));
  if (!mix->unigram_prob || !mix->unigram_backoff || !mix->bigram_prob || !mix->bigram_backoff ||
      !mix->trigram_prob)
    return fail(mix, "%s: out of memory", mix->options->out_lm);

  for (uint32_t id = 0; id < words; id++) {
    mix->unigram_prob[id] = in_model(mix, id) ? mixed_prob(mix, &id, 1) : 0.0;
    mix->unigram_backoff[id] = 1.0;
  }
  /* Bigrams, a history's in a row: its backoff weight leaves it the mass its listed
   * words do not take, spread as the unigrams spread theirs. */
  for (size_t first = 0, end; first < bigrams; first = end) {
    uint32_t gram[2];
    unpack(mix->grams[1].keys[first], 2, gram);
    double listed = 0.0, lower = 0.0;
    for (end = first; end < bigrams && mix->grams[1].keys[end] >> WORD_BITS == gram[0]; end++) {
      unpack(mix->grams[1].keys[end], 2, gram);
      mix->bigram_prob[end] = mixed_prob(mix, gram, 2);
      mix->bigram_backoff[end] = 1.0;
      listed += mix->bigram_prob[end];
      lower += mix->unigram_prob[gram[1]];
    }
    mix->unigram_backoff[gram[0]] = backoff_weight(listed, lower);
  }
  /* Trigrams the same way, against the bigram level as the static model gives it. */
  for (size_t first = 0, end; first < trigrams; first = end) {
    uint32_t gram[3];
    unpack(mix->grams[2].keys[first], 3, gram);
    uint64_t history = mix->grams[2].keys[first] >> WORD_BITS;
    double listed = 0.0, lower = 0.0;
    for (end = first; end < trigrams && mix->grams[2].keys[end] >> WORD_BITS == history; end++) {
      unpack(mix->grams[2].keys[end], 3, gram);
      mix->trigram_prob[end] = mixed_prob(mix, gram, 3);
      listed += mix->trigram_prob[end];
      lower += static_bigram_prob(mix, gram + 1);
    }
    ptrdiff_t at = keys_find(&mix->grams[1], history);
    if (at < 0)
      return fail(mix, "%s: a trigram's history is no bigram of either model", mix->options->out_lm);
    mix->bigram_backoff[at] = backoff_weight(listed, lower);
  }
  return 0;
}

/* ---- output ---- */

static double log10_of(double prob)
{
  return prob > 0.0 ? log10(prob) : -99.0;
}

static int arpa_write(mix_t *mix, const char *path, lmmix_stats_t *stats)
{
  FILE *out = fopen(path, "w");
  if (!out)
    return fail(mix, "%s: cannot be written", path);
  size_t unigrams = 0;
  for (uint32_t id = 0; id < mix->vocab.count; id++)
    unigrams += in_model(mix, id);
  fprintf(out, "\\data\\\nngram 1=%zu\nngram 2=%zu\nngram 3=%zu\n\n\\1-grams:\n", unigrams,
          mix->grams[1].count, mix->grams[2].count);
  for (uint32_t id = 0; id < mix->vocab.count; id++)
    if (in_model(mix, id))
      fprintf(out, "%.6f\t%s\t%.6f\n", strcmp(mix->vocab.words[id], "<s>")
                                          ? log10_of(mix->unigram_prob[id]) : -99.0,
              mix->vocab.words[id], log10_of(mix->unigram_backoff[id]));
  fputs("\n\\2-grams:\n", out);
  for (size_t i = 0; i < mix->grams[1].count; i++) {
    uint32_t gram[2];
    unpack(mix->grams[1].keys[i], 2, gram);
    fprintf(out, "%.6f\t%s %s\t%.6f\n", log10_of(mix->bigram_prob[i]), mix->vocab.words[gram[0]],
            mix->vocab.words[gram[1]], log10_of(mix->bigram_backoff[i]));
  }
  fputs("\n\\3-grams:\n", out);
  for (size_t i = 0; i < mix->grams[2].count; i++) {
    uint32_t gram[3];
    unpack(mix->grams[2].keys[i], 3, gram);
    fprintf(out, "%.6f\t%s %s %s\n", log10_of(mix->trigram_prob[i]), mix->vocab.words[gram[0]],
            mix->vocab.words[gram[1]], mix->vocab.words[gram[2]]);
  }
  fputs("\n\\end\\\n", out);
  bool failed = ferror(out) != 0;
  if (fclose(out) != 0 || failed)
    return fail(mix, "%s: cannot be written", path);
  if (stats) {
    stats->words = unigrams;
    stats->ngrams[0] = unigrams;
    stats->ngrams[1] = mix->grams[1].count;
    stats->ngrams[2] = mix->grams[2].count;
  }
  return 0;
}

/* Writes the model as ARPA beside `out_lm`, then as the binary trie at `out_lm`. */
static int model_write(mix_t *mix, lmmix_stats_t *stats)
{
  const char *out_lm = mix->options->out_lm;
  char arpa[1024], binary[1024];
  if ((size_t) snprintf(arpa, sizeof arpa, "%s.arpa.tmp", out_lm) >= sizeof arpa ||
      (size_t) snprintf(binary, sizeof binary, "%s.bin.tmp", out_lm) >= sizeof binary)
    return fail(mix, "%s: path too long", out_lm);
  int rc = arpa_write(mix, arpa, stats);
  ngram_model_t *model = rc == 0 ? ngram_model_read(NULL, arpa, NGRAM_ARPA, mix->logmath) : NULL;
  if (rc == 0 && !model)
    rc = fail(mix, "%s: sphinxbase refused the mixed model", arpa);
  if (rc == 0 && ngram_model_write(model, binary, NGRAM_BIN) != 0)
    rc = fail(mix, "%s: cannot be written", binary);
  if (rc == 0 && rename(binary, out_lm) != 0)
    rc = fail(mix, "%s: cannot be written", out_lm);
  ngram_model_free(model);
  remove(arpa);
  remove(binary);
  return rc;
}

static void mix_release(mix_t *mix)
{
  for (size_t i = 0; i < mix->vocab.count; i++)
    free(mix->vocab.words[i]);
  free(mix->vocab.words);
  free(mix->vocab.set_wid);
  if (mix->vocab.ids)
    hash_table_free(mix->vocab.ids);
  for (int order = 0; order < MIX_ORDER; order++)
    free(mix->grams[order].keys);
  free(mix->unigram_prob);
  free(mix->unigram_backoff);
  free(mix->bigram_prob);
  free(mix->bigram_backoff);
  free(mix->trigram_prob);
  ngram_model_free(mix->set);
  if (mix->logmath)
    logmath_free(mix->logmath);
}

int lmmix_write(const lmmix_options_t *options, lmmix_stats_t *stats, stage_error_t *err)
{
  mix_t mix = {.options = options, .err = err};
  if (!(options->generic_weight > 0.0 && options->generic_weight < 1.0))
    return stage_error_set(err, "lmgen_failed", "the generic model's weight must be above 0 "
                           "and below 1, not %g", options->generic_weight);
  err_set_logfp(NULL);          /* sphinxbase would log every step to stderr */
  mix.logmath = logmath_init(LOG_BASE, 0, 0);
  mix.vocab.ids = hash_table_new(65536, HASH_CASE_YES);
  int rc = mix.logmath && mix.vocab.ids ? 0 : fail(&mix, "%s: out of memory", options->out_lm);
  if (rc == 0 && vocabulary_add(&mix.vocab, "<s>") == NO_WORD)
    rc = fail(&mix, "%s: out of memory", options->out_lm);
  if (rc == 0 && vocabulary_add(&mix.vocab, "</s>") == NO_WORD)
    rc = fail(&mix, "%s: out of memory", options->out_lm);
  if (rc == 0)
    rc = dictionary_write(&mix);
  if (rc == 0)
    rc = models_load(&mix);
  if (rc == 0)
    rc = keys_collect(&mix);
  if (rc == 0)
    rc = probabilities_compute(&mix);
  if (rc == 0)
    rc = model_write(&mix, stats);
  mix_release(&mix);
  if (rc != 0) {
    remove(options->out_lm);
    remove(options->out_dict);
  }
  return rc;
}
