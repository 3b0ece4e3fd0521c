/* lmgen: the language model and dictionary built from the knowledge base (see
 * lmgen.h for the corpus and its weights).
 *
 * Every sentence is normalized the way a person would say it (lower case, no
 * punctuation, numbers as words). A word of the domain without pronunciation fails,
 * naming the word; general-English and generic-model words without one are skipped.
 *
 * One build is a short computation that either finishes or gives up: every
 * allocation and the open file belong to its context, and an error jumps back to
 * lmgen_build, which frees them all. That keeps the many small steps free of error
 * plumbing while a failed build, run inside the stt worker, leaks nothing. */
#include "lmgen.h"

#include "knowledge.h"

#include <sphinxbase/err.h>
#include <sphinxbase/logmath.h>
#include <sphinxbase/ngram_model.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MAX_ORDER = 3, MAX_FILE_BYTES = 64 * 1024 * 1024 };


/* Every allocation of a build sits behind this header in a doubly linked list. */
typedef union block {
  struct {
    union block *prev;
    union block *next;
  } links;
  max_align_t align;
} block_t;

typedef struct {
  jmp_buf failed;
  stage_error_t *err;
  block_t blocks;                   /* list head; prev/next point to itself when empty */
  FILE *file;                       /* the file being read or written, closed on failure */
} lmgen_t;

/* A growing NUL-terminated string. */
typedef struct {
  lmgen_t *ctx;
  char *text;
  size_t length;
  size_t capacity;
} strbuf_t;

/* One line of cmudict: "word(2) PH ONES". `base_length` excludes the "(2)". */
typedef struct {
  const char *line;
  size_t base_length;
} pronunciation_t;

typedef struct {
  char *file;                       /* the whole dictionary, lines NUL-terminated in place */
  pronunciation_t *entries;         /* sorted by base word, then by file order */
  size_t count;
} cmudict_t;

/* A word sequence of the corpus; ids index the vocabulary. */
typedef struct {
  size_t first_token;               /* index of its first token in corpus_t.tokens */
  int *words;                       /* ids framed by <s> and </s>, once the vocabulary exists */
  size_t count;
  double weight;                    /* how much each of its n-grams counts */
  bool is_domain;                   /* from the knowledge base: every word must be pronounceable */
  const char *source;               /* the phrasing it came from, for error messages */
} sentence_t;

typedef struct {
  int words[MAX_ORDER];
  double count;                     /* weighted */
  double log_prob;                  /* log10 */
  double log_backoff;               /* log10; only meaningful when has_backoff */
  bool has_backoff;
} ngram_t;

typedef struct {
  ngram_t *items;
  size_t count;
  size_t capacity;
} ngram_list_t;

static void fail(lmgen_t *ctx, const char *code, const char *fmt, ...)
  __attribute__((format(printf, 3, 4), noreturn));

static void fail(lmgen_t *ctx, const char *code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char message[sizeof ctx->err->message];
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  stage_error_set(ctx->err, code, "%s", message);
  longjmp(ctx->failed, 1);
}

static void block_link(lmgen_t *ctx, block_t *block)
{
  block->links.prev = &ctx->blocks;
  block->links.next = ctx->blocks.links.next;
  ctx->blocks.links.next->links.prev = block;
  ctx->blocks.links.next = block;
}

static void block_unlink(block_t *block)
{
  block->links.prev->links.next = block->links.next;
  block->links.next->links.prev = block->links.prev;
}

/* realloc for memory the context owns; NULL `ptr` allocates. */
static void *xrealloc(lmgen_t *ctx, void *ptr, size_t count, size_t size)
{
  if (size && count > (SIZE_MAX - sizeof(block_t)) / size)
    fail(ctx, "lmgen_failed", "allocation too large");
  block_t *old = ptr ? (block_t *) ptr - 1 : NULL;
  if (old)
    block_unlink(old);
  block_t *grown = realloc(old, sizeof(block_t) + count * size);
  if (!grown) {
    if (old)
      block_link(ctx, old);       /* still owned, freed with the rest */
    fail(ctx, "lmgen_failed", "out of memory");
  }
  block_link(ctx, grown);
  return grown + 1;
}

static void xfree(void *ptr)
{
  if (!ptr)
    return;
  block_t *block = (block_t *) ptr - 1;
  block_unlink(block);
  free(block);
}

static char *xstrdup(lmgen_t *ctx, const char *text)
{
  size_t length = strlen(text);
  char *copy = xrealloc(ctx, NULL, length + 1, 1);
  memcpy(copy, text, length + 1);
  return copy;
}

static void free_all(lmgen_t *ctx)
{
  while (ctx->blocks.links.next != &ctx->blocks) {
    block_t *block = ctx->blocks.links.next;
    block_unlink(block);
    free(block);
  }
  if (ctx->file)
    fclose(ctx->file);
  ctx->file = NULL;
}

static void strbuf_append(strbuf_t *buf, const char *text, size_t length)
{
  if (buf->length + length + 1 > buf->capacity) {
    size_t capacity = buf->capacity ? buf->capacity : 64;
    while (capacity < buf->length + length + 1)
      capacity *= 2;
    buf->text = xrealloc(buf->ctx, buf->text, capacity, 1);
    buf->capacity = capacity;
  }
  memcpy(buf->text + buf->length, text, length);
  buf->length += length;
  buf->text[buf->length] = '\0';
}

/* Appends one word, separated from the previous one by a space. */
static void strbuf_word(strbuf_t *buf, const char *word)
{
  if (buf->length && buf->text[buf->length - 1] != ' ')
    strbuf_append(buf, " ", 1);
  strbuf_append(buf, word, strlen(word));
}

static FILE *file_open(lmgen_t *ctx, const char *path, const char *mode)
{
  ctx->file = fopen(path, mode);
  if (!ctx->file)
    fail(ctx, "lmgen_failed", "cannot open %s: %s", path, strerror(errno));
  return ctx->file;
}

static void file_close(lmgen_t *ctx, const char *path)
{
  FILE *file = ctx->file;
  ctx->file = NULL;
  if (fclose(file) != 0)
    fail(ctx, "lmgen_failed", "cannot write %s: %s", path, strerror(errno));
}

static char *file_read(lmgen_t *ctx, const char *path, size_t *size_out)
{
  FILE *file = file_open(ctx, path, "rb");
  strbuf_t buf = {.ctx = ctx};
  char chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, file)) > 0) {
    if (buf.length + got > MAX_FILE_BYTES)
      fail(ctx, "lmgen_failed", "%s is larger than %d bytes", path, MAX_FILE_BYTES);
    strbuf_append(&buf, chunk, got);
  }
  if (ferror(file))
    fail(ctx, "lmgen_failed", "cannot read %s", path);
  file_close(ctx, path);
  if (!buf.text)
    fail(ctx, "lmgen_failed", "%s is empty", path);
  *size_out = buf.length;
  return buf.text;
}

/* ---- numbers as a person says them ---- */

static const char *const SMALL_NUMBERS[] = {
  "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
  "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
  "nineteen"};
static const char *const TENS[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty",
                                   "seventy", "eighty", "ninety"};

static void say_below_thousand(strbuf_t *out, unsigned long n)
{
  if (n >= 100) {
    strbuf_word(out, SMALL_NUMBERS[n / 100]);
    strbuf_word(out, "hundred");
    n %= 100;
    if (!n)
      return;
  }
  if (n < 20) {
    strbuf_word(out, SMALL_NUMBERS[n]);
    return;
  }
  strbuf_word(out, TENS[n / 10]);
  if (n % 10)
    strbuf_word(out, SMALL_NUMBERS[n % 10]);
}

static void say_cardinal(strbuf_t *out, unsigned long n)
{
  static const struct { unsigned long value; const char *name; } SCALES[] = {
    {1000000000UL, "billion"}, {1000000UL, "million"}, {1000UL, "thousand"}};
  if (n == 0) {
    strbuf_word(out, "zero");
    return;
  }
  for (size_t i = 0; i < sizeof SCALES / sizeof SCALES[0]; i++) {
    if (n >= SCALES[i].value) {
      say_cardinal(out, n / SCALES[i].value);
      strbuf_word(out, SCALES[i].name);
      n %= SCALES[i].value;
    }
  }
  if (n)
    say_below_thousand(out, n);
}

/* Years and year-like numbers are read in pairs: 1999 "nineteen ninety nine". */
static void say_number(strbuf_t *out, unsigned long n)
{
  bool year_like = (n >= 1100 && n <= 1999) || (n >= 2010 && n <= 2099);
  if (!year_like) {
    say_cardinal(out, n);
    return;
  }
  say_below_thousand(out, n / 100);
  if (n % 100 == 0)
    strbuf_word(out, "hundred");
  else if (n % 100 < 10) {
    strbuf_word(out, "oh");
    say_below_thousand(out, n % 100);
  } else
    say_below_thousand(out, n % 100);
}

/* Phone numbers, codes and leading zeros are read digit by digit. */
static void say_digits(strbuf_t *out, const char *digits, size_t length)
{
  for (size_t i = 0; i < length; i++)
    strbuf_word(out, SMALL_NUMBERS[digits[i] - '0']);
}

/* Turns the last word of `out` (a cardinal) into its ordinal: "twenty one" -> "twenty first". */
static void make_ordinal(strbuf_t *out)
{
  static const struct { const char *cardinal, *ordinal; } IRREGULAR[] = {
    {"one", "first"}, {"two", "second"}, {"three", "third"}, {"five", "fifth"},
    {"eight", "eighth"}, {"nine", "ninth"}, {"twelve", "twelfth"}};
  char *last = strrchr(out->text, ' ');
  last = last ? last + 1 : out->text;
  size_t last_length = strlen(last);
  for (size_t i = 0; i < sizeof IRREGULAR / sizeof IRREGULAR[0]; i++) {
    if (!strcmp(last, IRREGULAR[i].cardinal)) {
      out->length -= last_length;
      out->text[out->length] = '\0';
      strbuf_append(out, IRREGULAR[i].ordinal, strlen(IRREGULAR[i].ordinal));
      return;
    }
  }
  if (last_length && last[last_length - 1] == 'y') {
    out->length--;                      /* twenty -> twentieth */
    strbuf_append(out, "ieth", 4);
  } else {
    strbuf_append(out, "th", 2);
  }
}

static bool starts_with_word(const char *text, const char *word)
{
  size_t length = strlen(word);
  return !strncasecmp(text, word, length) && !isalpha((unsigned char) text[length]);
}

/* Reads the number at `text` (digits, optional ":mm", ".frac", ordinal suffix,
 * "am"/"pm", "%"), appends its spoken words and returns the characters consumed. */
static size_t say_number_token(strbuf_t *out, const char *text, bool is_money)
{
  /* Thousands separators (1,000) are dropped; longer runs continue as the next token. */
  char digits[16];
  size_t digit_count = 0, consumed = 0;
  bool grouped = false;
  while (digit_count + 1 < sizeof digits) {
    const char *at = text + consumed;
    if (isdigit((unsigned char) at[0]))
      digits[digit_count++] = *at, consumed++;
    else if (at[0] == ',' && digit_count && strspn(at + 1, "0123456789") == 3)
      consumed++, grouped = true;
    else
      break;
  }
  digits[digit_count] = '\0';
  const char *rest = text + consumed;
  /* Five or more ungrouped digits are a phone number or a code, not a quantity. */
  if ((digit_count >= 5 && !grouped) || digit_count > 9 || (digit_count > 1 && digits[0] == '0')) {
    say_digits(out, digits, digit_count);
    return consumed;
  }
  unsigned long value = strtoul(digits, NULL, 10);

  if (*rest == ':' && isdigit((unsigned char) rest[1]) && isdigit((unsigned char) rest[2])) {
    unsigned long minutes = (unsigned long) (rest[1] - '0') * 10 + (unsigned long) (rest[2] - '0');
    say_cardinal(out, value);
    if (minutes > 0 && minutes < 10) {
      strbuf_word(out, "oh");
      say_cardinal(out, minutes);
    } else if (minutes) {
      say_cardinal(out, minutes);
    }
    rest += 3;
  } else if (*rest == '.' && isdigit((unsigned char) rest[1])) {
    size_t fraction_length = strspn(rest + 1, "0123456789");
    say_number(out, value);
    if (is_money) {
      strbuf_word(out, value == 1 ? "dollar" : "dollars");
      strbuf_word(out, "and");
      say_cardinal(out, strtoul(rest + 1, NULL, 10) % 100);
      strbuf_word(out, "cents");
      return (size_t) (rest + 1 + fraction_length - text);
    }
    strbuf_word(out, "point");
    say_digits(out, rest + 1, fraction_length < 9 ? fraction_length : 9);
    rest += 1 + fraction_length;
  } else if (starts_with_word(rest, "st") || starts_with_word(rest, "nd") ||
             starts_with_word(rest, "rd") || starts_with_word(rest, "th")) {
    say_cardinal(out, value);
    make_ordinal(out);
    return (size_t) (rest + 2 - text);
  } else {
    say_number(out, value);
  }

  const char *after = rest;
  while (*after == ' ')
    after++;
  if (starts_with_word(after, "am") || starts_with_word(after, "a.m.") ||
      starts_with_word(after, "pm") || starts_with_word(after, "p.m.")) {
    strbuf_word(out, tolower((unsigned char) *after) == 'a' ? "a" : "p");
    strbuf_word(out, "m");
    rest = after + (after[1] == '.' ? 4 : 2);
  } else if (*rest == '%') {
    strbuf_word(out, "percent");
    rest++;
  }
  if (is_money)
    strbuf_word(out, value == 1 ? "dollar" : "dollars");
  return (size_t) (rest - text);
}

/* Lower-cases `text`, spells numbers and symbols, and drops other punctuation.
 * Apostrophes and hyphens inside words stay (we're, e-mail); the dictionary decides. */
static char *normalize(lmgen_t *ctx, const char *text)
{
  strbuf_t out = {.ctx = ctx};
  strbuf_append(&out, "", 0);
  char word[128];
  size_t word_length = 0;
  for (const char *p = text;; p++) {
    unsigned char c = (unsigned char) *p;
    bool inner = (c == '\'' || c == '-') && word_length && isalpha((unsigned char) p[1]);
    if (isalpha(c) || inner) {
      if (word_length + 1 < sizeof word)
        word[word_length++] = (char) tolower(c);
      continue;
    }
    if (word_length) {
      word[word_length] = '\0';
      strbuf_word(&out, word);
      word_length = 0;
    }
    if (!c)
      break;
    if (isdigit(c) || (c == '$' && isdigit((unsigned char) p[1]))) {
      bool is_money = c == '$';
      p += is_money;
      p += say_number_token(&out, p, is_money) - 1;
    } else if (c == '&') {
      strbuf_word(&out, "and");
    } else if (c == '@') {
      strbuf_word(&out, "at");
    } else if (c == '+') {
      strbuf_word(&out, "plus");
    } else if (c == '%') {
      strbuf_word(&out, "percent");
    }
  }
  return out.text;
}

/* ---- pronunciation dictionary ---- */

static int pronunciation_compare(const void *a, const void *b)
{
  const pronunciation_t *x = a, *y = b;
  size_t shorter = x->base_length < y->base_length ? x->base_length : y->base_length;
  int order = memcmp(x->line, y->line, shorter);
  if (order)
    return order;
  if (x->base_length != y->base_length)
    return x->base_length < y->base_length ? -1 : 1;
  return x->line < y->line ? -1 : x->line > y->line;   /* file order: word before word(2) */
}

static void cmudict_load(lmgen_t *ctx, cmudict_t *dict, const char *path)
{
  size_t size;
  dict->file = file_read(ctx, path, &size);
  size_t capacity = 0;
  const char *file_end = dict->file + size;
  for (char *line = dict->file; line && *line;) {
    /* memchr, not strchr: the rest of a 3 MB file is no C string to scan per line. */
    char *end = memchr(line, '\n', (size_t) (file_end - line));
    if (end)
      *end = '\0';
    size_t key_length = strcspn(line, " \t");
    size_t base_length = key_length;
    if (key_length > 2 && line[key_length - 1] == ')') {
      const char *open = memchr(line, '(', key_length);
      if (open)
        base_length = (size_t) (open - line);
    }
    if (key_length && line[key_length]) {
      if (dict->count == capacity) {
        capacity = capacity ? capacity * 2 : 1024;
        dict->entries = xrealloc(ctx, dict->entries, capacity, sizeof *dict->entries);
      }
      dict->entries[dict->count++] = (pronunciation_t) {line, base_length};
    }
    line = end ? end + 1 : NULL;
  }
  if (!dict->count)
    fail(ctx, "lmgen_failed", "%s holds no pronunciations", path);
  qsort(dict->entries, dict->count, sizeof *dict->entries, pronunciation_compare);
}

/* The first pronunciation of `word` (NULL when absent); *count_out gets how many follow. */
static const pronunciation_t *cmudict_find(const cmudict_t *dict, const char *word, size_t length,
                                           size_t *count_out)
{
  size_t low = 0, high = dict->count;
  while (low < high) {        /* lower bound of `word` */
    size_t mid = low + (high - low) / 2;
    const pronunciation_t *entry = &dict->entries[mid];
    size_t shorter = entry->base_length < length ? entry->base_length : length;
    int order = memcmp(entry->line, word, shorter);
    if (order < 0 || (order == 0 && entry->base_length < length))
      low = mid + 1;
    else
      high = mid;
  }
  size_t count = 0;
  while (low + count < dict->count && dict->entries[low + count].base_length == length &&
         !memcmp(dict->entries[low + count].line, word, length))
    count++;
  *count_out = count;
  return count ? &dict->entries[low] : NULL;
}

static bool cmudict_has(const cmudict_t *dict, const char *word)
{
  size_t count;
  return cmudict_find(dict, word, strlen(word), &count) != NULL;
}

static const char *phones_of(const pronunciation_t *entry)
{
  const char *phones = entry->line + strcspn(entry->line, " \t");
  return phones + strspn(phones, " \t");
}

/* Writes every pronunciation of `word`, or joins those of two dictionary words for a
 * compound (brightside = bright + side). Returns false when neither works. */
static bool dict_write_word(FILE *out, const cmudict_t *dict, const char *word)
{
  size_t length = strlen(word), count;
  const pronunciation_t *entries = cmudict_find(dict, word, length, &count);
  if (entries) {
    for (size_t i = 0; i < count; i++) {
      size_t key_length = strcspn(entries[i].line, " \t");
      fprintf(out, "%s%.*s %s\n", word, (int) (key_length - length), entries[i].line + length,
              phones_of(&entries[i]));
    }
    return true;
  }
  for (size_t split = length - 2; split >= 2 && split < length; split--) {
    size_t head_count, tail_count;
    const pronunciation_t *head = cmudict_find(dict, word, split, &head_count);
    const pronunciation_t *tail = cmudict_find(dict, word + split, length - split, &tail_count);
    if (head && tail) {
      fprintf(out, "%s %s %s\n", word, phones_of(head), phones_of(tail));
      return true;
    }
  }
  return false;
}

/* ---- corpus ---- */

typedef struct {
  char **words;                     /* sorted; ids are indexes */
  size_t count;
} vocabulary_t;

typedef struct {
  sentence_t *sentences;
  size_t count;
  size_t capacity;
  char **tokens;                    /* every token in order, before ids exist */
  size_t token_count;
  size_t token_capacity;
  double domain_weight;             /* total weight of the knowledge-base sentences */
} corpus_t;

/* A word that only the open vocabulary brings: a unigram with a count. */
typedef struct {
  char *word;
  double count;
} extra_word_t;

typedef struct {
  extra_word_t *items;
  size_t count;
} extra_words_t;

static void corpus_add_token(lmgen_t *ctx, corpus_t *corpus, char *token)
{
  if (corpus->token_count == corpus->token_capacity) {
    corpus->token_capacity = corpus->token_capacity ? corpus->token_capacity * 2 : 1024;
    corpus->tokens = xrealloc(ctx, corpus->tokens, corpus->token_capacity, sizeof *corpus->tokens);
  }
  corpus->tokens[corpus->token_count++] = token;
}

/* Splits a normalized phrasing into tokens; a hyphenated word the dictionary does not
 * know becomes its parts (follow-up -> follow up). A general sentence holding a word
 * without pronunciation is skipped whole: it would teach the model a word it cannot
 * hear. */
static void corpus_add_sentence(lmgen_t *ctx, corpus_t *corpus, const cmudict_t *dict,
                                const char *phrasing, double weight, bool is_domain)
{
  char *text = normalize(ctx, phrasing);
  size_t first = corpus->token_count;
  for (char *save = NULL, *word = strtok_r(text, " ", &save); word;
       word = strtok_r(NULL, " ", &save)) {
    if (strchr(word, '-') && !cmudict_has(dict, word)) {
      for (char *inner = NULL, *part = strtok_r(word, "-", &inner); part;
           part = strtok_r(NULL, "-", &inner))
        corpus_add_token(ctx, corpus, xstrdup(ctx, part));
    } else {
      corpus_add_token(ctx, corpus, xstrdup(ctx, word));
    }
  }
  xfree(text);
  bool pronounceable = true;
  for (size_t i = first; !is_domain && i < corpus->token_count; i++)
    pronounceable = pronounceable && cmudict_has(dict, corpus->tokens[i]);
  if (corpus->token_count == first || !pronounceable) {
    while (corpus->token_count > first)           /* nothing a person says, or unsayable */
      xfree(corpus->tokens[--corpus->token_count]);
    return;
  }
  if (corpus->count == corpus->capacity) {
    corpus->capacity = corpus->capacity ? corpus->capacity * 2 : 256;
    corpus->sentences = xrealloc(ctx, corpus->sentences, corpus->capacity,
                                 sizeof *corpus->sentences);
  }
  corpus->sentences[corpus->count++] = (sentence_t) {
    .first_token = first, .words = NULL, .count = corpus->token_count - first, .weight = weight,
    .is_domain = is_domain, .source = phrasing};
  if (is_domain)
    corpus->domain_weight += weight;
}

/* Adds the sentences of an answer: split at '.', '!' and '?' followed by a space,
 * so "9 AM to 6 PM. We're closed" gives two sentences and "brightside.example" one. */
static void corpus_add_answer(lmgen_t *ctx, corpus_t *corpus, const cmudict_t *dict,
                              const char *answer)
{
  const char *start = answer;
  for (const char *p = answer;; p++) {
    bool end = !*p || (strchr(".!?", *p) && (!p[1] || p[1] == ' '));
    if (!end)
      continue;
    size_t length = (size_t) (p - start);
    char *sentence = xrealloc(ctx, NULL, length + 1, 1);
    memcpy(sentence, start, length);
    sentence[length] = '\0';
    corpus_add_sentence(ctx, corpus, dict, sentence, LMGEN_ANSWER_WEIGHT, true);
    if (!*p || !p[1])
      break;
    start = p + 1;
  }
}

static void corpus_add_entries(lmgen_t *ctx, corpus_t *corpus, const cmudict_t *dict,
                               const knowledge_entry_t *entries, size_t count, bool with_answers)
{
  for (size_t e = 0; e < count; e++) {
    const knowledge_entry_t *entry = &entries[e];
    for (size_t q = 0; q < entry->question_count; q++)
      corpus_add_sentence(ctx, corpus, dict, entry->questions[q], LMGEN_QUESTION_WEIGHT,
                          true);
    /* The expansions of all templates share LMGEN_TEMPLATE_WEIGHT per template, so a
     * template with many alternatives does not drown the written questions. The entry
     * records only the expansions, so the share is spread evenly over them. */
    double each = entry->paraphrase_count
                    ? LMGEN_TEMPLATE_WEIGHT * (double) entry->template_count /
                        (double) entry->paraphrase_count
                    : 0.0;
    for (size_t p = 0; p < entry->paraphrase_count; p++)
      corpus_add_sentence(ctx, corpus, dict, entry->paraphrases[p], each, true);
    if (with_answers)
      corpus_add_answer(ctx, corpus, dict, entry->answer);
  }
}

/* Adds every line of the general-English file ('#' starts a comment) at weight 1;
 * lmgen_build scales them once the domain's weight is known. */
static void corpus_add_general(lmgen_t *ctx, corpus_t *corpus, const cmudict_t *dict,
                               const char *path)
{
  size_t size;
  char *text = file_read(ctx, path, &size);
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    line += strspn(line, " \t");
    if (*line && *line != '#')
      corpus_add_sentence(ctx, corpus, dict, xstrdup(ctx, line), 1.0, false);
  }
}

static int string_compare(const void *a, const void *b)
{
  return strcmp(*(char *const *) a, *(char *const *) b);
}

static int vocabulary_id(lmgen_t *ctx, const vocabulary_t *vocab, const char *word)
{
  char *const *found = bsearch(&word, vocab->words, vocab->count, sizeof *vocab->words,
                               string_compare);
  if (!found)
    fail(ctx, "lmgen_failed", "internal error: \"%s\" missing from the vocabulary", word);
  return (int) (found - vocab->words);
}

static void vocabulary_build(lmgen_t *ctx, vocabulary_t *vocab, const corpus_t *corpus,
                             const extra_words_t *extra)
{
  size_t total = corpus->token_count + extra->count + 2;
  vocab->words = xrealloc(ctx, NULL, total, sizeof *vocab->words);
  memcpy(vocab->words, corpus->tokens, corpus->token_count * sizeof *vocab->words);
  for (size_t i = 0; i < extra->count; i++)
    vocab->words[corpus->token_count + i] = extra->items[i].word;
  vocab->words[total - 2] = "<s>";
  vocab->words[total - 1] = "</s>";
  qsort(vocab->words, total, sizeof *vocab->words, string_compare);
  size_t unique = 0;
  for (size_t i = 0; i < total; i++)
    if (!unique || strcmp(vocab->words[unique - 1], vocab->words[i]))
      vocab->words[unique++] = vocab->words[i];
  vocab->count = unique;
}

/* Replaces token positions with word ids, framing each sentence with <s> and </s>. */
static void corpus_assign_ids(lmgen_t *ctx, corpus_t *corpus, const vocabulary_t *vocab)
{
  int start = vocabulary_id(ctx, vocab, "<s>"), end = vocabulary_id(ctx, vocab, "</s>");
  for (size_t s = 0; s < corpus->count; s++) {
    sentence_t *sentence = &corpus->sentences[s];
    int *ids = xrealloc(ctx, NULL, sentence->count + 2, sizeof *ids);
    ids[0] = start;
    for (size_t i = 0; i < sentence->count; i++)
      ids[i + 1] = vocabulary_id(ctx, vocab, corpus->tokens[sentence->first_token + i]);
    ids[sentence->count + 1] = end;
    sentence->words = ids;
    sentence->count += 2;
  }
}

/* ---- the open vocabulary from a generic model ---- */

typedef struct {
  const char *word;
  double prob;
} ranked_word_t;

static int ranked_compare(const void *a, const void *b)
{
  const ranked_word_t *x = a, *y = b;
  if (x->prob != y->prob)
    return x->prob > y->prob ? -1 : 1;
  return strcmp(x->word, y->word);
}

/* A word the decoder can use: lower-case letters and inner apostrophes only. */
static bool is_plain_word(const char *word)
{
  if (!islower((unsigned char) word[0]))
    return false;
  for (const char *p = word; *p; p++)
    if (!islower((unsigned char) *p) && *p != '\'')
      return false;
  return true;
}

/* Reads the `limit` most likely pronounceable words of the generic model, with
 * counts summing to `mass` in proportion to their probabilities. */
static void generic_words_load(lmgen_t *ctx, const char *path, size_t limit, double mass,
                               const cmudict_t *dict, extra_words_t *extra)
{
  err_set_logfp(NULL);              /* sphinxbase would print its own progress */
  logmath_t *logmath = logmath_init(1.0001, 0, 0);
  ngram_model_t *model = logmath ? ngram_model_read(NULL, path, NGRAM_AUTO, logmath) : NULL;
  if (!model) {
    logmath_free(logmath);
    fail(ctx, "lmgen_failed", "cannot read the generic language model %s", path);
  }
  uint32 const *counts = ngram_model_get_counts(model);
  size_t unigram_count = counts[0];
  ranked_word_t *ranked = realloc(NULL, (unigram_count ? unigram_count : 1) * sizeof *ranked);
  size_t ranked_count = 0;
  for (int32 wid = 0; ranked && (size_t) wid < unigram_count; wid++) {
    const char *word = ngram_word(model, wid);
    if (!word || !is_plain_word(word) || !cmudict_has(dict, word))
      continue;
    ranked[ranked_count].word = word;
    ranked[ranked_count].prob = logmath_exp(logmath, ngram_probv(model, word, NULL));
    ranked_count++;
  }
  if (ranked) {
    qsort(ranked, ranked_count, sizeof *ranked, ranked_compare);
    if (ranked_count > limit)
      ranked_count = limit;
    double total = 0.0;
    for (size_t i = 0; i < ranked_count; i++)
      total += ranked[i].prob;
    extra->items = calloc(ranked_count ? ranked_count : 1, sizeof *extra->items);
    for (size_t i = 0; extra->items && i < ranked_count; i++) {
      extra->items[i].word = strdup(ranked[i].word);
      if (!extra->items[i].word)
        break;
      extra->items[i].count = mass * ranked[i].prob / total;
      extra->count++;
    }
  }
  bool complete = ranked && extra->items && extra->count == ranked_count;
  free(ranked);
  ngram_model_free(model);
  logmath_free(logmath);
  /* Copied into the context only now that sphinxbase's memory is released. */
  extra_word_t *owned = xrealloc(ctx, NULL, extra->count ? extra->count : 1, sizeof *owned);
  for (size_t i = 0; i < extra->count; i++) {
    owned[i].word = complete ? xstrdup(ctx, extra->items[i].word) : NULL;
    owned[i].count = extra->items[i].count;
    free(extra->items[i].word);
  }
  free(extra->items);
  extra->items = owned;
  if (!complete)
    fail(ctx, "lmgen_failed", "out of memory reading %s", path);
}

/* ---- n-gram counts and Witten-Bell estimates ---- */

/* Unused word slots are zero, so comparing all of them orders any single order. */
static int ngram_compare(const void *a, const void *b)
{
  const ngram_t *x = a, *y = b;
  for (int i = 0; i < MAX_ORDER; i++)
    if (x->words[i] != y->words[i])
      return x->words[i] < y->words[i] ? -1 : 1;
  return 0;
}

static void ngram_list_push(lmgen_t *ctx, ngram_list_t *list, const int *words, int order,
                            double weight)
{
  if (list->count == list->capacity) {
    list->capacity = list->capacity ? list->capacity * 2 : 1024;
    list->items = xrealloc(ctx, list->items, list->capacity, sizeof *list->items);
  }
  ngram_t *gram = &list->items[list->count++];
  memset(gram, 0, sizeof *gram);
  memcpy(gram->words, words, (size_t) order * sizeof *words);
  gram->count = weight;
}

/* Sorts the occurrences and merges equal n-grams, summing their weights. */
static void ngram_list_merge(ngram_list_t *list)
{
  qsort(list->items, list->count, sizeof *list->items, ngram_compare);
  size_t unique = 0;
  for (size_t i = 0; i < list->count; i++) {
    if (unique && !ngram_compare(&list->items[unique - 1], &list->items[i]))
      list->items[unique - 1].count += list->items[i].count;
    else
      list->items[unique++] = list->items[i];
  }
  list->count = unique;
}

static ngram_t *ngram_find(ngram_list_t *list, const int *words, int order)
{
  ngram_t key = {0};
  memcpy(key.words, words, (size_t) order * sizeof *words);
  return bsearch(&key, list->items, list->count, sizeof *list->items, ngram_compare);
}

/* Estimates order `order` (>= 2) from its counts. Witten-Bell: a history seen C times
 * followed by T distinct words keeps c/(C+T) for each seen word and leaves T/(C+T) to
 * the lower order, scaled by the back-off weight so that the distribution sums to one. */
static void estimate_order(lmgen_t *ctx, ngram_list_t *grams, ngram_list_t *lower, int order)
{
  for (size_t first = 0; first < grams->count;) {
    size_t last = first;
    double history_count = 0.0;
    while (last < grams->count &&
           !memcmp(grams->items[last].words, grams->items[first].words,
                   (size_t) (order - 1) * sizeof(int))) {
      history_count += grams->items[last].count;
      last++;
    }
    double types = (double) (last - first);
    double total = history_count + types;
    double lower_mass = 0.0;
    for (size_t i = first; i < last; i++) {
      grams->items[i].log_prob = log10(grams->items[i].count / total);
      ngram_t *shorter = ngram_find(lower, grams->items[i].words + 1, order - 1);
      if (!shorter)
        fail(ctx, "lmgen_failed", "internal error: lower-order n-gram missing");
      lower_mass += pow(10.0, shorter->log_prob);
    }
    ngram_t *history = ngram_find(lower, grams->items[first].words, order - 1);
    if (!history)
      fail(ctx, "lmgen_failed", "internal error: history n-gram missing");
    history->has_backoff = true;
    /* When the history was followed by every word there is nothing left to back off to. */
    history->log_backoff = lower_mass < 1.0 - 1e-9 ? log10((types / total) / (1.0 - lower_mass))
                                                    : 0.0;
    first = last;
  }
}

static void count_ngrams(lmgen_t *ctx, const corpus_t *corpus, const extra_words_t *extra,
                         const vocabulary_t *vocab, ngram_list_t lists[MAX_ORDER])
{
  for (size_t s = 0; s < corpus->count; s++) {
    const sentence_t *sentence = &corpus->sentences[s];
    for (size_t i = 1; i < sentence->count; i++)
      for (int order = 1; order <= MAX_ORDER && (size_t) order <= i + 1; order++)
        ngram_list_push(ctx, &lists[order - 1], sentence->words + i + 1 - order, order,
                        sentence->weight);
  }
  for (size_t i = 0; i < extra->count; i++) {
    int id[1] = {vocabulary_id(ctx, vocab, extra->items[i].word)};
    ngram_list_push(ctx, &lists[0], id, 1, extra->items[i].count);
  }
  /* <s> is never predicted, yet ARPA wants it listed (with a back-off weight). */
  int start[1] = {vocabulary_id(ctx, vocab, "<s>")};
  ngram_list_push(ctx, &lists[0], start, 1, 0.0);
  for (int order = 1; order <= MAX_ORDER; order++)
    ngram_list_merge(&lists[order - 1]);
}

static void estimate_unigrams(ngram_list_t *unigrams)
{
  double total = 0.0;
  for (size_t i = 0; i < unigrams->count; i++)
    total += unigrams->items[i].count;
  for (size_t i = 0; i < unigrams->count; i++)
    unigrams->items[i].log_prob = unigrams->items[i].count > 0.0
                                    ? log10(unigrams->items[i].count / total) : -99.0;
}

static void write_arpa(lmgen_t *ctx, const char *path, ngram_list_t lists[MAX_ORDER],
                       const vocabulary_t *vocab)
{
  FILE *out = file_open(ctx, path, "w");
  fprintf(out, "\\data\\\n");
  for (int order = 1; order <= MAX_ORDER; order++)
    fprintf(out, "ngram %d=%zu\n", order, lists[order - 1].count);
  for (int order = 1; order <= MAX_ORDER; order++) {
    fprintf(out, "\n\\%d-grams:\n", order);
    for (size_t i = 0; i < lists[order - 1].count; i++) {
      const ngram_t *gram = &lists[order - 1].items[i];
      fprintf(out, "%.6f", gram->log_prob);
      for (int w = 0; w < order; w++)
        fprintf(out, "%c%s", w ? ' ' : '\t', vocab->words[gram->words[w]]);
      if (gram->has_backoff)
        fprintf(out, "\t%.6f", gram->log_backoff);
      fputc('\n', out);
    }
  }
  fprintf(out, "\n\\end\\\n");
  file_close(ctx, path);
}

/* The phrasing that holds word `id`, for the error message about it. */
static const char *source_of(const corpus_t *corpus, int id)
{
  for (size_t s = 0; s < corpus->count; s++)
    for (size_t t = 1; t + 1 < corpus->sentences[s].count; t++)
      if (corpus->sentences[s].words[t] == id)
        return corpus->sentences[s].source;
  return "";
}

static void write_dict(lmgen_t *ctx, const char *path, const vocabulary_t *vocab,
                       const corpus_t *corpus, const cmudict_t *dict)
{
  FILE *out = file_open(ctx, path, "w");
  for (size_t i = 0; i < vocab->count; i++) {
    const char *word = vocab->words[i];
    if (!strcmp(word, "<s>") || !strcmp(word, "</s>") || dict_write_word(out, dict, word))
      continue;
    file_close(ctx, path);
    remove(path);
    fail(ctx, "bad_knowledge", "the word \"%s\" (in \"%s\") is not in the pronunciation "
         "dictionary; rephrase it in the knowledge base or spell it as it sounds", word,
         source_of(corpus, (int) i));
  }
  file_close(ctx, path);
}

/* The build proper; any failure jumps back to lmgen_build. */
static void build(lmgen_t *ctx, const lmgen_options_t *options, knowledge_t *knowledge,
                  lmgen_stats_t *stats)
{
  cmudict_t dict = {0};
  cmudict_load(ctx, &dict, options->cmudict_path);

  corpus_t corpus = {0};
  corpus_add_entries(ctx, &corpus, &dict, knowledge->entries, knowledge->entry_count, true);
  corpus_add_entries(ctx, &corpus, &dict, knowledge->small_talk, knowledge->small_talk_count,
                     false);
  size_t domain_sentences = corpus.count;
  if (options->general_path && options->general_weight > 0.0) {
    corpus_add_general(ctx, &corpus, &dict, options->general_path);
    size_t general_sentences = corpus.count - domain_sentences;
    for (size_t s = domain_sentences; s < corpus.count; s++)
      corpus.sentences[s].weight =
        options->general_weight * corpus.domain_weight / (double) general_sentences;
  }
  extra_words_t extra = {0};
  if (options->generic_lm_path && options->generic_words && options->generic_weight > 0.0)
    generic_words_load(ctx, options->generic_lm_path, options->generic_words,
                       options->generic_weight * corpus.domain_weight, &dict, &extra);

  vocabulary_t vocab = {0};
  vocabulary_build(ctx, &vocab, &corpus, &extra);
  corpus_assign_ids(ctx, &corpus, &vocab);

  ngram_list_t lists[MAX_ORDER] = {{0}};
  count_ngrams(ctx, &corpus, &extra, &vocab, lists);
  estimate_unigrams(&lists[0]);
  for (int order = 2; order <= MAX_ORDER; order++)
    estimate_order(ctx, &lists[order - 1], &lists[order - 2], order);

  write_dict(ctx, options->out_dict, &vocab, &corpus, &dict);
  write_arpa(ctx, options->out_lm, lists, &vocab);
  if (stats) {
    stats->sentences = corpus.count;
    stats->words = vocab.count - 2;
    for (int order = 0; order < MAX_ORDER; order++)
      stats->ngrams[order] = lists[order].count;
  }
}

/* The generic dictionary proper; any failure jumps back to lmgen_generic_dict. */
static void generic_dict(lmgen_t *ctx, const char *generic_lm_path, const char *cmudict_path,
                         size_t words, const char *out_dict)
{
  cmudict_t dict = {0};
  cmudict_load(ctx, &dict, cmudict_path);
  extra_words_t extra = {0};
  generic_words_load(ctx, generic_lm_path, words, 1.0, &dict, &extra);
  FILE *out = file_open(ctx, out_dict, "w");
  for (size_t i = 0; i < extra.count; i++)
    if (!dict_write_word(out, &dict, extra.items[i].word))
      fail(ctx, "lmgen_failed", "\"%s\" lost its pronunciation", extra.items[i].word);
  file_close(ctx, out_dict);
}

int lmgen_generic_dict(const char *generic_lm_path, const char *cmudict_path, size_t words,
                       const char *out_dict, stage_error_t *err)
{
  lmgen_t *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return stage_error_set(err, "lmgen_failed", "out of memory");
  ctx->err = err;
  ctx->blocks.links.prev = ctx->blocks.links.next = &ctx->blocks;
  volatile int rc = -1;
  if (setjmp(ctx->failed) == 0) {
    generic_dict(ctx, generic_lm_path, cmudict_path, words, out_dict);
    rc = 0;
  } else {
    remove(out_dict);
  }
  free_all(ctx);
  free(ctx);
  return rc;
}

int lmgen_build(const lmgen_options_t *options, lmgen_stats_t *stats, stage_error_t *err)
{
  knowledge_t *knowledge = knowledge_load(options->knowledge_path, err);
  if (!knowledge)
    return -1;
  /* On the heap: a local changed between setjmp and longjmp would be indeterminate. */
  lmgen_t *ctx = calloc(1, sizeof *ctx);
  if (!ctx) {
    knowledge_destroy(&knowledge);
    return stage_error_set(err, "lmgen_failed", "out of memory");
  }
  ctx->err = err;
  ctx->blocks.links.prev = ctx->blocks.links.next = &ctx->blocks;
  volatile int rc = -1;
  if (setjmp(ctx->failed) == 0) {
    build(ctx, options, knowledge, stats);
    rc = 0;
  } else {
    remove(options->out_lm);
    remove(options->out_dict);
  }
  free_all(ctx);
  free(ctx);
  knowledge_destroy(&knowledge);
  return rc;
}
