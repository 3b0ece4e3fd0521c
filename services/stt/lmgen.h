/* lmgen: turns the knowledge base into PocketSphinx's language model and dictionary.
 * The build runs it once (the lmgen tool) and the stt worker runs it again, as a
 * library call, whenever the knowledge file changes, so the recognizer hears the
 * questions the chat stage can answer.
 *
 * The corpus mixes, each source weighted (counts are fractional):
 *   - every phrasing of entries[].questions and small_talk[].questions
 *     (weight LMGEN_QUESTION_WEIGHT: the knowledge base's own words lead)
 *   - every sentence of entries[].paraphrases templates, each template
 *     counting as LMGEN_TEMPLATE_WEIGHT in all
 *   - every sentence of the answers                                 (LMGEN_ANSWER_WEIGHT)
 *   - an optional general-English sentence file (one sentence a line, '#'
 *     comments), scaled to `general_weight` times the domain's total weight
 *   - optionally the `generic_words` most likely words of a generic language
 *     model (PocketSphinx's en-us.lm.bin) as unigrams, scaled to
 *     `generic_weight` times the domain's total weight: the open vocabulary that
 *     lets a reworded or off-topic question come out as the words said instead
 *     of the nearest knowledge-base question.
 * The model is an ARPA trigram with Witten-Bell discounting; the dictionary keeps
 * every cmudict pronunciation of each word. */
#ifndef STT_LMGEN_H
#define STT_LMGEN_H

#include "stage_error.h"

#include <stddef.h>

/* Relative weights of the knowledge base's sources. With the templates and answers
 * weighing as much as the questions, "what are your office hours" came out as "what
 * is how is": the questions must stay the strongest paths. */
#define LMGEN_QUESTION_WEIGHT 4.0
#define LMGEN_TEMPLATE_WEIGHT 1.0
#define LMGEN_ANSWER_WEIGHT 0.25

typedef struct {
  const char *knowledge_path;   /* the knowledge base JSON (validated like chat does) */
  const char *cmudict_path;     /* pronunciations, cmudict format */
  const char *general_path;     /* general-English sentences; NULL = none */
  double general_weight;        /* their total count relative to the domain's */
  const char *generic_lm_path;  /* a generic model (ARPA or DMP/bin); NULL = none */
  size_t generic_words;         /* how many of its most likely words join */
  double generic_weight;        /* their total unigram count relative to the domain's */
  const char *out_lm;           /* ARPA file written */
  const char *out_dict;         /* dictionary written */
} lmgen_options_t;

typedef struct {
  size_t sentences;
  size_t words;                 /* vocabulary, without <s> and </s> */
  size_t ngrams[3];
} lmgen_stats_t;

/* Builds the model and dictionary described by `options`. Returns 0 with `stats`
 * (may be NULL) filled, or -1 with `err` set: code "bad_knowledge" for a knowledge
 * base that fails validation or holds a word without pronunciation (the message
 * names the word and the phrasing), "lmgen_failed" for an unreadable input or an
 * unwritable output. Partial output files are removed on failure. Writes nothing
 * to stdout or stderr. */
int lmgen_build(const lmgen_options_t *options, lmgen_stats_t *stats, stage_error_t *err);

/* Writes the `words` most likely pronounceable words of the generic model
 * `generic_lm_path` to the dictionary `out_dict`, with every cmudict pronunciation:
 * the vocabulary the stt backend searches when it interpolates that model, far
 * smaller (and faster to search) than the whole cmudict. Returns 0, or -1 with `err`
 * set (code "lmgen_failed"; nothing left at `out_dict`). */
int lmgen_generic_dict(const char *generic_lm_path, const char *cmudict_path, size_t words,
                       const char *out_dict, stage_error_t *err);

#endif
