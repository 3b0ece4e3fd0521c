/* lmtrie: lists the n-grams of a sphinxbase binary trie model (see lmtrie.h).
 *
 * The layout, as sphinxbase 5prealpha writes it (ngram_model_trie_write_bin):
 *   "Trie Language Model"   19 bytes, no terminator
 *   order                   uint8
 *   counts[order]           uint32 each: n-grams of each order, unigrams first
 *   quantizer               int32 type, then 16-bit bins: a probability and a backoff
 *                           table (65536 floats each) per middle order and a
 *                           probability table for the highest
 *   unigrams[counts[0]+1]   {float prob, float backoff, uint32 next}: next is where
 *                           the word's bigrams begin; the extra entry closes the last
 *   n-gram memory           one bit array per order from 2: middle orders hold
 *                           {word, 32 quantized bits, next}, the highest {word, 16 bits}
 *   words                   int32 size, then that many bytes of NUL-terminated words
 * Each bit array holds one entry more than its count (the last entry's end) and eight
 * bytes of padding, so bitarr_read_int25's 32-bit reads stay inside it.
 * The trie holds each n-gram backwards (the word scored, then its history from the
 * most recent word), the order in which lm_trie_score looks them up. */
#include "lmtrie.h"

#include <sphinxbase/bitarr.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRIE_HEADER "Trie Language Model"

enum {
  MAX_ORDER = 5,                /* sphinxbase's NGRAM_MAX_ORDER */
  QUANT_BINS = 1 << 16,         /* 16-bit quantization: one float per bin */
  MIDDLE_VALUE_BITS = 32,       /* quantized probability and backoff */
  LONGEST_VALUE_BITS = 16,      /* quantized probability */
  UNIGRAM_SIZE = 12,            /* float prob, float backoff, uint32 next */
  UNIGRAM_NEXT_OFFSET = 8
};

/* The entries of one order >= 2. */
typedef struct {
  const uint8_t *bits;
  uint32_t entries;
  uint8_t word_bits;
  uint32_t word_mask;
  uint8_t value_bits;
  bitarr_mask_t next;           /* zero bits at the highest order */
  uint8_t total_bits;
} level_t;

struct lmtrie_t {
  uint8_t *file;                /* the whole file; every pointer below points into it */
  int order;
  uint32_t counts[MAX_ORDER];
  const uint8_t *unigrams;
  level_t levels[MAX_ORDER - 1];  /* levels[k]: the n-grams of order k + 2 */
  const char **words;           /* counts[0] pointers into file */
};

static lmtrie_t *fail(lmtrie_t *self, stage_error_t *err, const char *path, const char *why)
{
  lmtrie_destroy(&self);
  stage_error_set(err, "lmgen_failed", "%s: %s", path, why);
  return NULL;
}

static uint8_t *file_read_all(const char *path, size_t *size)
{
  FILE *file = fopen(path, "rb");
  if (!file)
    return NULL;
  uint8_t *data = NULL;
  long length = -1;
  if (fseek(file, 0, SEEK_END) == 0 && (length = ftell(file)) >= 0 && fseek(file, 0, SEEK_SET) == 0)
    data = malloc(length ? (size_t) length : 1);
  if (data && fread(data, 1, (size_t) length, file) != (size_t) length) {
    free(data);
    data = NULL;
  }
  fclose(file);
  *size = data ? (size_t) length : 0;
  return data;
}

/* Bytes of a bit array of `entries` (+1) entries of `total_bits`, as sphinxbase sizes it. */
static uint64_t level_bytes(uint32_t entries, uint8_t total_bits)
{
  return ((1 + (uint64_t) entries) * total_bits + 7) / 8 + sizeof(uint64_t);
}

static uint32_t read_field(const level_t *level, uint32_t entry, uint32_t skip_bits, uint8_t bits,
                           uint32_t mask)
{
  bitarr_address_t address = {(void *) level->bits, entry * (uint32_t) level->total_bits + skip_bits};
  return bitarr_read_int25(address, bits, mask);
}

static uint32_t entry_word(const level_t *level, uint32_t entry)
{
  return read_field(level, entry, 0, level->word_bits, level->word_mask);
}

static uint32_t entry_next(const level_t *level, uint32_t entry)
{
  return read_field(level, entry, level->word_bits + level->value_bits, level->next.bits,
                    level->next.mask);
}

static uint32_t unigram_next(const lmtrie_t *self, uint32_t word)
{
  uint32_t next;
  memcpy(&next, self->unigrams + (size_t) word * UNIGRAM_SIZE + UNIGRAM_NEXT_OFFSET, sizeof next);
  return next;
}

/* Lays the levels over the n-gram memory at `at`; returns the bytes they take, or 0
 * when a level is too large for sphinxbase's 32-bit bit offsets. */
static uint64_t levels_lay_out(lmtrie_t *self, const uint8_t *at)
{
  uint64_t used = 0;
  for (int order = 2; order <= self->order; order++) {
    level_t *level = &self->levels[order - 2];
    bool highest = order == self->order;
    level->bits = at + used;
    level->entries = self->counts[order - 1];
    level->word_bits = bitarr_required_bits(self->counts[0]);
    level->word_mask = (1U << level->word_bits) - 1U;
    level->value_bits = highest ? LONGEST_VALUE_BITS : MIDDLE_VALUE_BITS;
    if (!highest)
      bitarr_mask_from_max(&level->next, self->counts[order]);
    level->total_bits = (uint8_t) (level->word_bits + level->value_bits + level->next.bits);
    if ((1 + (uint64_t) level->entries) * level->total_bits > UINT32_MAX)
      return 0;
    used += level_bytes(level->entries, level->total_bits);
  }
  return used;
}

lmtrie_t *lmtrie_new(const char *path, stage_error_t *err)
{
  lmtrie_t *self = calloc(1, sizeof *self);
  if (!self)
    return fail(self, err, path, "out of memory");
  size_t size = 0;
  self->file = file_read_all(path, &size);
  if (!self->file)
    return fail(self, err, path, strerror(errno ? errno : EIO));

  size_t at = strlen(TRIE_HEADER);
  if (size < at + 1 || memcmp(self->file, TRIE_HEADER, at) != 0)
    return fail(self, err, path, "not a sphinxbase trie model (header)");
  self->order = self->file[at++];
  if (self->order < 2 || self->order > MAX_ORDER ||
      size < at + (size_t) self->order * sizeof(uint32_t))
    return fail(self, err, path, "unsupported order or truncated counts");
  for (int i = 0; i < self->order; i++, at += sizeof(uint32_t))
    memcpy(&self->counts[i], self->file + at, sizeof(uint32_t));
  if (self->counts[0] == 0 || self->counts[0] > (1U << 25))
    return fail(self, err, path, "unsupported vocabulary size");

  uint64_t quantizer = sizeof(int32_t) +
                       ((uint64_t) (self->order - 2) * 2 + 1) * QUANT_BINS * sizeof(float);
  uint64_t unigrams = ((uint64_t) self->counts[0] + 1) * UNIGRAM_SIZE;
  if (size < at + quantizer + unigrams)
    return fail(self, err, path, "truncated before the n-grams");
  at += quantizer;
  self->unigrams = self->file + at;
  at += unigrams;
  uint64_t ngrams = levels_lay_out(self, self->file + at);
  int32_t words_size = 0;
  if (!ngrams || size < at + ngrams + sizeof words_size)
    return fail(self, err, path, "truncated n-grams");
  at += ngrams;
  memcpy(&words_size, self->file + at, sizeof words_size);
  at += sizeof words_size;
  if (words_size <= 0 || size - at != (size_t) words_size || self->file[size - 1] != '\0')
    return fail(self, err, path, "the word list does not end the file");

  self->words = malloc(self->counts[0] * sizeof *self->words);
  if (!self->words)
    return fail(self, err, path, "out of memory");
  uint32_t count = 0;
  for (size_t word = at; word < size; word += strlen((const char *) self->file + word) + 1) {
    if (count == self->counts[0])
      return fail(self, err, path, "more words than unigrams");
    self->words[count++] = (const char *) self->file + word;
  }
  if (count != self->counts[0])
    return fail(self, err, path, "fewer words than unigrams");
  return self;
}

void lmtrie_destroy(lmtrie_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  lmtrie_t *self = *self_p;
  free(self->words);
  free(self->file);
  free(self);
  *self_p = NULL;
}

int lmtrie_order(const lmtrie_t *self)
{
  return self->order;
}

uint32_t lmtrie_words(const lmtrie_t *self)
{
  return self->counts[0];
}

const char *lmtrie_word(const lmtrie_t *self, uint32_t id)
{
  return id < self->counts[0] ? self->words[id] : NULL;
}

/* Lists the entries [begin, end) of the order `known` + 1, whose first `known` words
 * (backwards, as the trie holds them) are in path[]: visits them at the wanted order,
 * oldest word first, or descends into their histories. */
static int list_range(const lmtrie_t *self, uint32_t *path, int known, uint32_t begin,
                      uint32_t end, int order, lmtrie_visit_fn *visit, void *arg, int64_t *count)
{
  const level_t *level = &self->levels[known - 1];
  if (begin > end || end > level->entries)
    return -1;
  for (uint32_t entry = begin; entry < end; entry++) {
    path[known] = entry_word(level, entry);
    if (path[known] >= self->counts[0])
      return -1;
    if (known + 1 == order) {
      uint32_t words[MAX_ORDER];
      for (int i = 0; i < order; i++)
        words[i] = path[order - 1 - i];
      if (visit(words, order, arg) != 0)
        return -1;
      (*count)++;
    } else if (list_range(self, path, known + 1, entry_next(level, entry),
                          entry_next(level, entry + 1), order, visit, arg, count) != 0) {
      return -1;
    }
  }
  return 0;
}

int64_t lmtrie_foreach(const lmtrie_t *self, int order, lmtrie_visit_fn *visit, void *arg)
{
  if (order < 2 || order > self->order)
    return -1;
  uint32_t path[MAX_ORDER];
  int64_t count = 0;
  for (uint32_t word = 0; word < self->counts[0]; word++) {
    path[0] = word;
    if (list_range(self, path, 1, unigram_next(self, word), unigram_next(self, word + 1), order,
                   visit, arg, &count) != 0)
      return -1;
  }
  return count;
}
