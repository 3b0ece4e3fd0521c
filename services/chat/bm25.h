/* bm25: a small Okapi BM25 index over short documents (question phrasings and
 * answers), ranking the entries they belong to. Built once, then read-only, so
 * one index may serve any number of concurrent queries. */
#ifndef CHAT_BM25_H
#define CHAT_BM25_H

#include "text.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct bm25_index bm25_index_t;

/* One query term and how much it counts (1 for the question itself, less for
 * context borrowed from an earlier turn). */
typedef struct {
  const char *term;
  double weight;
} bm25_query_term_t;

/* The best entry for a query. `coverage` in [0, 1] is the share of the query's
 * weighted IDF mass found in the entry (phrasings count fully, the answer at
 * answer_weight): unknown words lower it, which is what makes it a confidence. */
typedef struct {
  long entry;                 /* -1 when nothing matched */
  double score;
  double coverage;
  double phrasing_coverage;   /* the other way round: the largest share of one of
                                 the entry's phrasings found in the query, so a
                                 single shared word ("sell") is no match */
} bm25_match_t;

/* Creates an empty index, or returns NULL when out of memory. */
bm25_index_t *bm25_index_new(void);

/* Adds one document belonging to `entry` (the caller's entry number);
 * `is_answer` marks an entry's answer text, scored at answer_weight.
 * Returns 0, or -1 when out of memory. Call before bm25_index_finish only. */
int bm25_index_add(bm25_index_t *self, size_t entry, bool is_answer, const text_terms_t *terms);

/* Computes document frequencies and lengths; the index is read-only afterwards. */
void bm25_index_finish(bm25_index_t *self);

/* True when some document of the index contains `term`. */
bool bm25_index_knows(const bm25_index_t *self, const char *term);

/* Finds the best of entries [0, entry_count) for the query (terms must be
 * distinct). Entry score = (best phrasing score + answer_weight * answer score)
 * * coverage.
 * Returns 0, or -1 when out of memory. */
int bm25_index_best(const bm25_index_t *self, const bm25_query_term_t *query, size_t query_count,
                    size_t entry_count, double answer_weight, bm25_match_t *best);

/* The `max` best of entries [0, entry_count) with a score above zero, best first
 * (ties keep the lower entry number first), into `top`; *found says how many.
 * Returns 0, or -1 when out of memory. */
int bm25_index_top(const bm25_index_t *self, const bm25_query_term_t *query, size_t query_count,
                   size_t entry_count, double answer_weight, bm25_match_t *top, size_t max,
                   size_t *found);

/* Frees the index and sets *self_p to NULL; does nothing for NULL. */
void bm25_index_destroy(bm25_index_t **self_p);

#endif
