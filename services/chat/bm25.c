/* bm25: Okapi BM25 ranking of knowledge-base entries (see bm25.h). */
#include "bm25.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Textbook parameters; b below 0.75 because phrasings are all short and a long
 * phrasing is not "about more things" the way a long web page is. */
#define BM25_K1 1.2
#define BM25_B 0.5

typedef struct {
  size_t entry;
  bool is_answer;
  size_t length;           /* terms, counting repeats */
  double idf_mass;         /* sum of the IDF of its distinct terms, set by finish */
  size_t posting_count;    /* distinct terms */
  size_t *term_ids;
  size_t *frequencies;
} bm25_document_t;

struct bm25_index {
  char **terms;                  /* vocabulary, owned; a term's id is its position */
  size_t *document_frequency;
  size_t term_count;
  size_t term_capacity;
  long *slots;                   /* open-addressing hash of term ids, -1 = empty */
  size_t slot_count;
  bm25_document_t *documents;
  size_t document_count;
  size_t document_capacity;
  size_t unit_count;             /* what document_frequency counts: entries (see finish) */
  double average_length;
};

static uint64_t hash_term(const char *term)
{
  uint64_t hash = 14695981039346656037ull;   /* FNV-1a */
  for (const unsigned char *c = (const unsigned char *) term; *c; c++)
    hash = (hash ^ *c) * 1099511628211ull;
  return hash;
}

/* The slot holding `term`, or the empty slot where it would go. */
static size_t find_slot(const bm25_index_t *self, const char *term)
{
  size_t mask = self->slot_count - 1;
  size_t slot = (size_t) hash_term(term) & mask;
  while (self->slots[slot] >= 0 && strcmp(self->terms[self->slots[slot]], term) != 0)
    slot = (slot + 1) & mask;
  return slot;
}

static long term_id(const bm25_index_t *self, const char *term)
{
  return self->slot_count ? self->slots[find_slot(self, term)] : -1;
}

/* Keeps the hash at most half full so probes stay short. */
static int grow_slots(bm25_index_t *self)
{
  size_t slot_count = self->slot_count ? self->slot_count * 2 : 256;
  long *slots = malloc(slot_count * sizeof *slots);
  if (!slots)
    return -1;
  for (size_t i = 0; i < slot_count; i++)
    slots[i] = -1;
  free(self->slots);
  self->slots = slots;
  self->slot_count = slot_count;
  for (size_t id = 0; id < self->term_count; id++)
    self->slots[find_slot(self, self->terms[id])] = (long) id;
  return 0;
}

/* The id of `term`, adding it to the vocabulary when new; -1 when out of memory. */
static long intern_term(bm25_index_t *self, const char *term)
{
  long id = term_id(self, term);
  if (id >= 0)
    return id;
  if ((self->term_count + 1) * 2 > self->slot_count && grow_slots(self) < 0)
    return -1;
  if (self->term_count == self->term_capacity) {
    size_t capacity = self->term_capacity ? self->term_capacity * 2 : 128;
    char **terms = realloc(self->terms, capacity * sizeof *terms);
    if (!terms)
      return -1;
    self->terms = terms;
    size_t *frequency = realloc(self->document_frequency, capacity * sizeof *frequency);
    if (!frequency)
      return -1;
    self->document_frequency = frequency;
    self->term_capacity = capacity;
  }
  char *copy = strdup(term);
  if (!copy)
    return -1;
  id = (long) self->term_count++;
  self->terms[id] = copy;
  self->document_frequency[id] = 0;
  self->slots[find_slot(self, term)] = id;
  return id;
}

bm25_index_t *bm25_index_new(void)
{
  return calloc(1, sizeof(bm25_index_t));
}

static void document_clear(bm25_document_t *document)
{
  free(document->term_ids);
  free(document->frequencies);
}

int bm25_index_add(bm25_index_t *self, size_t entry, bool is_answer, const text_terms_t *terms)
{
  if (self->document_count == self->document_capacity) {
    size_t capacity = self->document_capacity ? self->document_capacity * 2 : 64;
    bm25_document_t *documents = realloc(self->documents, capacity * sizeof *documents);
    if (!documents)
      return -1;
    self->documents = documents;
    self->document_capacity = capacity;
  }
  bm25_document_t document = { .entry = entry, .is_answer = is_answer, .length = terms->count };
  size_t capacity = terms->count ? terms->count : 1;
  document.term_ids = malloc(capacity * sizeof *document.term_ids);
  document.frequencies = malloc(capacity * sizeof *document.frequencies);
  if (!document.term_ids || !document.frequencies) {
    document_clear(&document);
    return -1;
  }
  for (size_t i = 0; i < terms->count; i++) {
    long id = intern_term(self, terms->items[i]);
    if (id < 0) {
      document_clear(&document);
      return -1;
    }
    size_t posting = 0;
    while (posting < document.posting_count && document.term_ids[posting] != (size_t) id)
      posting++;
    if (posting == document.posting_count) {
      document.term_ids[posting] = (size_t) id;
      document.frequencies[posting] = 0;
      document.posting_count++;
    }
    document.frequencies[posting]++;
  }
  self->documents[self->document_count++] = document;
  return 0;
}

/* Unknown terms get the largest IDF (df = 0): a word the knowledge base never
 * uses is strong evidence that the question is about something else. */
static double inverse_document_frequency(const bm25_index_t *self, long id)
{
  double n = (double) self->unit_count;
  double df = id >= 0 ? (double) self->document_frequency[id] : 0.0;
  return log(1.0 + (n - df + 0.5) / (df + 0.5));
}

/* Counts, for every term, the entries (not the documents) that use it: an entry
 * written with many phrasings (paraphrase templates expand to dozens) must not make
 * its own words look common. Counts documents when out of memory. */
static void count_entry_frequencies(bm25_index_t *self)
{
  size_t entries = 0;
  for (size_t d = 0; d < self->document_count; d++)
    if (self->documents[d].entry + 1 > entries)
      entries = self->documents[d].entry + 1;
  size_t *last_entry = calloc(self->term_count ? self->term_count : 1, sizeof *last_entry);
  for (size_t i = 0; i < self->term_count; i++)
    self->document_frequency[i] = 0;
  if (!last_entry) {
    for (size_t d = 0; d < self->document_count; d++)
      for (size_t p = 0; p < self->documents[d].posting_count; p++)
        self->document_frequency[self->documents[d].term_ids[p]]++;
    self->unit_count = self->document_count;
    return;
  }
  for (size_t e = 0; e < entries; e++)
    for (size_t d = 0; d < self->document_count; d++) {
      const bm25_document_t *document = &self->documents[d];
      if (document->entry != e)
        continue;
      for (size_t p = 0; p < document->posting_count; p++)
        if (last_entry[document->term_ids[p]] != e + 1) {
          last_entry[document->term_ids[p]] = e + 1;
          self->document_frequency[document->term_ids[p]]++;
        }
    }
  free(last_entry);
  self->unit_count = entries;
}

void bm25_index_finish(bm25_index_t *self)
{
  size_t total_length = 0;
  count_entry_frequencies(self);
  for (size_t d = 0; d < self->document_count; d++)
    total_length += self->documents[d].length;
  self->average_length =
    self->document_count ? (double) total_length / (double) self->document_count : 0.0;
  for (size_t d = 0; d < self->document_count; d++) {
    bm25_document_t *document = &self->documents[d];
    document->idf_mass = 0.0;
    for (size_t p = 0; p < document->posting_count; p++)
      document->idf_mass += inverse_document_frequency(self, (long) document->term_ids[p]);
  }
}

bool bm25_index_knows(const bm25_index_t *self, const char *term)
{
  return term_id(self, term) >= 0;
}

static size_t frequency_in(const bm25_document_t *document, long id)
{
  for (size_t p = 0; p < document->posting_count; p++)
    if ((long) document->term_ids[p] == id)
      return document->frequencies[p];
  return 0;
}

/* Puts `match` into `top` (best first, `*found` of `max` used) if it ranks. */
static void rank(bm25_match_t *top, size_t max, size_t *found, const bm25_match_t *match)
{
  size_t at = *found;
  while (at > 0 && top[at - 1].score < match->score)
    at--;
  if (at >= max)
    return;
  size_t keep = *found < max ? *found : max - 1;
  memmove(&top[at + 1], &top[at], (keep - at) * sizeof *top);
  top[at] = *match;
  if (*found < max)
    (*found)++;
}

int bm25_index_best(const bm25_index_t *self, const bm25_query_term_t *query, size_t query_count,
                    size_t entry_count, double answer_weight, bm25_match_t *best)
{
  size_t found = 0;
  int rc = bm25_index_top(self, query, query_count, entry_count, answer_weight, best, 1, &found);
  if (found == 0)
    *best = (bm25_match_t) {.entry = -1};
  return rc;
}

int bm25_index_top(const bm25_index_t *self, const bm25_query_term_t *query, size_t query_count,
                   size_t entry_count, double answer_weight, bm25_match_t *top, size_t max,
                   size_t *found)
{
  *found = 0;
  if (query_count == 0 || entry_count == 0 || max == 0)
    return 0;
  long *ids = malloc(query_count * sizeof *ids);
  double *idf = malloc(query_count * sizeof *idf);
  double *phrasing_score = calloc(entry_count, sizeof *phrasing_score);
  double *answer_score = calloc(entry_count, sizeof *answer_score);
  /* match_level[e * query_count + q]: 1 when an entry's phrasing holds query term q,
   * answer_weight when only its answer does. */
  double *match_level = calloc(entry_count * query_count, sizeof *match_level);
  double *phrasing_share = calloc(entry_count, sizeof *phrasing_share);
  int rc = ids && idf && phrasing_score && answer_score && match_level && phrasing_share ? 0 : -1;

  double query_mass = 0.0;
  for (size_t q = 0; rc == 0 && q < query_count; q++) {
    ids[q] = term_id(self, query[q].term);
    idf[q] = inverse_document_frequency(self, ids[q]);
    query_mass += query[q].weight * idf[q];
  }
  for (size_t d = 0; rc == 0 && d < self->document_count; d++) {
    const bm25_document_t *document = &self->documents[d];
    if (document->entry >= entry_count || document->length == 0)
      continue;
    double length_norm = 1.0 - BM25_B + BM25_B * (double) document->length / self->average_length;
    double score = 0.0;
    double matched_mass = 0.0;
    for (size_t q = 0; q < query_count; q++) {
      size_t tf = ids[q] >= 0 ? frequency_in(document, ids[q]) : 0;
      if (tf == 0)
        continue;
      score += query[q].weight * idf[q] * (double) tf * (BM25_K1 + 1.0) /
               ((double) tf + BM25_K1 * length_norm);
      matched_mass += idf[q];
      double *level = &match_level[document->entry * query_count + q];
      double found = document->is_answer ? answer_weight : 1.0;
      if (found > *level)
        *level = found;
    }
    if (document->is_answer) {
      answer_score[document->entry] = score;
      continue;
    }
    if (score > phrasing_score[document->entry])
      phrasing_score[document->entry] = score;
    double share = document->idf_mass > 0.0 ? matched_mass / document->idf_mass : 0.0;
    if (share > phrasing_share[document->entry])
      phrasing_share[document->entry] = share;
  }
  for (size_t e = 0; rc == 0 && e < entry_count; e++) {
    double covered = 0.0;
    for (size_t q = 0; q < query_count; q++)
      covered += query[q].weight * idf[q] * match_level[e * query_count + q];
    double coverage = query_mass > 0.0 ? covered / query_mass : 0.0;
    /* Weighted by coverage: of two entries matching equally well, the one that
     * explains all of the question ("how long ... to canada") wins. */
    double score = (phrasing_score[e] + answer_weight * answer_score[e]) * coverage;
    if (score <= 0.0)
      continue;
    bm25_match_t match = {.entry = (long) e, .score = score, .coverage = coverage,
                          .phrasing_coverage = phrasing_share[e]};
    rank(top, max, found, &match);
  }
  free(ids);
  free(idf);
  free(phrasing_score);
  free(answer_score);
  free(match_level);
  free(phrasing_share);
  return rc;
}

void bm25_index_destroy(bm25_index_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  bm25_index_t *self = *self_p;
  for (size_t i = 0; i < self->term_count; i++)
    free(self->terms[i]);
  free(self->terms);
  free(self->document_frequency);
  free(self->slots);
  for (size_t d = 0; d < self->document_count; d++)
    document_clear(&self->documents[d]);
  free(self->documents);
  free(self);
  *self_p = NULL;
}
