/* lmmix: writes the interpolation of the knowledge base's language model with a generic
 * one as one static model, over the vocabulary the recognizer searches.
 *
 * Interpolating at run time (sphinxbase's ngram_model_set) costs every language-model
 * lookup of the search two lookups and a log-add: a third of stt's decoding time
 * (docs/performance.md "Latency"). The static model lists every n-gram either model
 * holds over the vocabulary, each with its mixed probability
 *     P(w | h) = (1 - generic_weight) * P_domain(w | h) + generic_weight * P_generic(w | h)
 * (each model with its own backoff, as sphinxbase's interpolation computes it), and
 * backoff weights recomputed so that each history's probabilities sum to one. It is
 * written in sphinxbase's binary trie format, which loads in a tenth of a second. */
#ifndef STT_LMMIX_H
#define STT_LMMIX_H

#include "stage_error.h"

#include <stddef.h>

typedef struct {
  const char *domain_lm;        /* the knowledge base's model (lmgen's ARPA trigram) */
  const char *domain_dict;      /* its dictionary */
  const char *generic_lm;       /* the generic model, in sphinxbase's binary trie format */
  const char *generic_dict;     /* the generic words to search (lmgen --generic-dict) */
  double generic_weight;        /* the generic model's share, above 0 and below 1 */
  const char *out_lm;           /* the mixed model written, binary trie format */
  const char *out_dict;         /* its dictionary: the generic one and the domain words
                                   it lacks (their pronunciations from domain_dict) */
} lmmix_options_t;

typedef struct {
  size_t words;                 /* vocabulary of the mixed model, <s> and </s> included */
  size_t ngrams[3];             /* unigrams, bigrams, trigrams written */
} lmmix_stats_t;

/* Writes the mixed model and its dictionary. Returns 0 with `stats` (may be NULL)
 * filled, or -1 with `err` set (code "lmgen_failed": an input unreadable or not a
 * model, a model above trigrams, a weight out of range, an output unwritable); on
 * failure nothing is left at out_lm or out_dict. Writes nothing to stdout/stderr
 * (sphinxbase's own log is silenced). Needs about 30 MB per million n-grams. */
int lmmix_write(const lmmix_options_t *options, lmmix_stats_t *stats, stage_error_t *err);

#endif
