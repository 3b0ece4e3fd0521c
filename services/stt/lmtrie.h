/* lmtrie: lists the n-grams of a language model in sphinxbase's binary trie format
 * (the format of PocketSphinx's en-us.lm.bin).
 *
 * sphinxbase scores n-grams but cannot list them: it exports no iterator, and its
 * ARPA writer aborts on en-us.lm.bin (its trie holds 6 bigrams fewer than its header
 * counts). lmgen needs the list to write the generic model's n-grams into a static
 * mix (lmmix.h), so this reads the trie's layout itself, with sphinxbase's own
 * bit-array functions. It gives words only: probabilities are asked of sphinxbase
 * (ngram_ng_score), which knows the quantization. */
#ifndef STT_LMTRIE_H
#define STT_LMTRIE_H

#include "stage_error.h"

#include <stdint.h>

typedef struct lmtrie_t lmtrie_t;

/* Called for every n-gram of one order: `words` holds `order` word ids, oldest first
 * (ids index lmtrie_word). Returns 0 to go on, anything else to stop the listing. */
typedef int (lmtrie_visit_fn)(const uint32_t *words, int order, void *arg);

/* Reads the model at `path` into memory. Returns NULL with `err` set (code
 * "lmgen_failed") when the file cannot be read or is not a well-formed trie model:
 * every section's size is checked against the file's. */
lmtrie_t *lmtrie_new(const char *path, stage_error_t *err);

/* Frees the model and sets *self_p to NULL; does nothing when it is NULL already. */
void lmtrie_destroy(lmtrie_t **self_p);

/* The model's order (2 for bigrams, 3 for trigrams, ...). */
int lmtrie_order(const lmtrie_t *self);

/* How many words the model knows (its unigrams, <s> and </s> included). */
uint32_t lmtrie_words(const lmtrie_t *self);

/* The word whose id is `id` (< lmtrie_words), owned by the model. */
const char *lmtrie_word(const lmtrie_t *self, uint32_t id);

/* Calls `visit` for every n-gram of `order` (2 .. lmtrie_order), in the trie's order:
 * grouped by the last word, then the one before it, ... Returns the number visited, or -1
 * when `order` is out of range, the trie points outside itself (a damaged file) or
 * `visit` stopped the listing. */
int64_t lmtrie_foreach(const lmtrie_t *self, int order, lmtrie_visit_fn *visit, void *arg);

#endif
