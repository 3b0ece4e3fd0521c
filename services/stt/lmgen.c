/* lmgen: build-time tool that turns the knowledge base into PocketSphinx's domain
 * language model. The generic en-us model gets most words of our questions wrong;
 * a small trigram model over the phrasings people actually use, plus a dictionary of
 * only those words, makes the decoder both accurate and fast.
 *
 *   lmgen KNOWLEDGE_JSON CMUDICT OUT_LM OUT_DICT
 *
 * Every phrasing in entries[].questions and small_talk[].questions becomes one
 * sentence, normalized the way a person would say it (lower case, no punctuation,
 * numbers as words). The model is an ARPA trigram with Witten-Bell discounting and
 * back-off weights; the dictionary keeps every cmudict pronunciation of each word.
 * A word without pronunciation fails the build, naming the word. */
#include <cjson/cJSON.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MAX_ORDER = 3, MAX_FILE_BYTES = 64 * 1024 * 1024 };

/* A growing NUL-terminated string. */
typedef struct {
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
  const char *source;               /* the phrasing it came from, for error messages */
} sentence_t;

typedef struct {
  int words[MAX_ORDER];
  unsigned count;
  double log_prob;                  /* log10 */
  double log_backoff;               /* log10; only meaningful when has_backoff */
  bool has_backoff;
} ngram_t;

typedef struct {
  ngram_t *items;
  size_t count;
  size_t capacity;
} ngram_list_t;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A build tool ends on the first error: the OS reclaims memory, make sees the status. */
static void fail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("lmgen: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void *xrealloc(void *ptr, size_t count, size_t size)
{
  if (size && count > SIZE_MAX / size)
    fail("allocation too large");
  size_t bytes = count * size;
  void *grown = realloc(ptr, bytes ? bytes : 1);
  if (!grown)
    fail("out of memory");
  return grown;
}

static char *xstrdup(const char *text)
{
  char *copy = strdup(text);
  if (!copy)
    fail("out of memory");
  return copy;
}

static void strbuf_append(strbuf_t *buf, const char *text, size_t length)
{
  if (buf->length + length + 1 > buf->capacity) {
    size_t capacity = buf->capacity ? buf->capacity : 64;
    while (capacity < buf->length + length + 1)
      capacity *= 2;
    buf->text = xrealloc(buf->text, capacity, 1);
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

static char *file_read(const char *path, size_t *size_out)
{
  FILE *file = fopen(path, "rb");
  if (!file)
    fail("cannot open %s: %s", path, strerror(errno));
  strbuf_t buf = {0};
  char chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, file)) > 0) {
    if (buf.length + got > MAX_FILE_BYTES)
      fail("%s is larger than %d bytes", path, MAX_FILE_BYTES);
    strbuf_append(&buf, chunk, got);
  }
  if (ferror(file))
    fail("cannot read %s", path);
  fclose(file);
  if (!buf.text)
    fail("%s is empty", path);
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
static char *normalize(const char *text)
{
  strbuf_t out = {0};
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

static void cmudict_load(cmudict_t *dict, const char *path)
{
  size_t size;
  dict->file = file_read(path, &size);
  size_t capacity = 0;
  for (char *line = dict->file; line && *line;) {
    char *end = strchr(line, '\n');
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
        dict->entries = xrealloc(dict->entries, capacity, sizeof *dict->entries);
      }
      dict->entries[dict->count++] = (pronunciation_t) {line, base_length};
    }
    line = end ? end + 1 : NULL;
  }
  if (!dict->count)
    fail("%s holds no pronunciations", path);
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
      fprintf(stderr, "lmgen: note: \"%s\" pronounced as \"%.*s\" + \"%s\"\n", word, (int) split,
              word, word + split);
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
} corpus_t;

static void corpus_add_token(corpus_t *corpus, char *token)
{
  if (corpus->token_count == corpus->token_capacity) {
    corpus->token_capacity = corpus->token_capacity ? corpus->token_capacity * 2 : 1024;
    corpus->tokens = xrealloc(corpus->tokens, corpus->token_capacity, sizeof *corpus->tokens);
  }
  corpus->tokens[corpus->token_count++] = token;
}

/* Splits a normalized phrasing into tokens; a hyphenated word the dictionary does not
 * know becomes its parts (follow-up -> follow up). */
static void corpus_add_sentence(corpus_t *corpus, const cmudict_t *dict, const char *phrasing)
{
  char *text = normalize(phrasing);
  size_t first = corpus->token_count;
  for (char *save = NULL, *word = strtok_r(text, " ", &save); word;
       word = strtok_r(NULL, " ", &save)) {
    if (strchr(word, '-') && !cmudict_has(dict, word)) {
      for (char *inner = NULL, *part = strtok_r(word, "-", &inner); part;
           part = strtok_r(NULL, "-", &inner))
        corpus_add_token(corpus, xstrdup(part));
    } else {
      corpus_add_token(corpus, xstrdup(word));
    }
  }
  free(text);
  if (corpus->token_count == first)
    return;                         /* punctuation only: nothing a person says */
  if (corpus->count == corpus->capacity) {
    corpus->capacity = corpus->capacity ? corpus->capacity * 2 : 256;
    corpus->sentences = xrealloc(corpus->sentences, corpus->capacity, sizeof *corpus->sentences);
  }
  corpus->sentences[corpus->count++] = (sentence_t) {
    .first_token = first, .words = NULL, .count = corpus->token_count - first, .source = phrasing};
}

static void corpus_add_questions(corpus_t *corpus, const cmudict_t *dict, const cJSON *root,
                                 const char *section)
{
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(root, section);
  if (!items)
    return;
  if (!cJSON_IsArray(items))
    fail("\"%s\" must be an array", section);
  const cJSON *item;
  cJSON_ArrayForEach(item, items) {
    const cJSON *questions = cJSON_GetObjectItemCaseSensitive(item, "questions");
    if (!cJSON_IsArray(questions))
      fail("every item of \"%s\" needs a \"questions\" array", section);
    const cJSON *question;
    cJSON_ArrayForEach(question, questions) {
      if (!cJSON_IsString(question))
        fail("a question in \"%s\" is not a string", section);
      corpus_add_sentence(corpus, dict, question->valuestring);
    }
  }
}

static void corpus_release(corpus_t *corpus)
{
  for (size_t i = 0; i < corpus->token_count; i++)
    free(corpus->tokens[i]);
  for (size_t s = 0; s < corpus->count; s++)
    free(corpus->sentences[s].words);
  free(corpus->tokens);
  free(corpus->sentences);
}

static int string_compare(const void *a, const void *b)
{
  return strcmp(*(char *const *) a, *(char *const *) b);
}

static int vocabulary_id(const vocabulary_t *vocab, const char *word)
{
  char *const *found = bsearch(&word, vocab->words, vocab->count, sizeof *vocab->words,
                               string_compare);
  if (!found)
    fail("internal error: \"%s\" missing from the vocabulary", word);
  return (int) (found - vocab->words);
}

static void vocabulary_build(vocabulary_t *vocab, const corpus_t *corpus)
{
  vocab->words = xrealloc(NULL, corpus->token_count + 2, sizeof *vocab->words);
  memcpy(vocab->words, corpus->tokens, corpus->token_count * sizeof *vocab->words);
  vocab->words[corpus->token_count] = "<s>";
  vocab->words[corpus->token_count + 1] = "</s>";
  qsort(vocab->words, corpus->token_count + 2, sizeof *vocab->words, string_compare);
  size_t unique = 0;
  for (size_t i = 0; i < corpus->token_count + 2; i++)
    if (!unique || strcmp(vocab->words[unique - 1], vocab->words[i]))
      vocab->words[unique++] = vocab->words[i];
  vocab->count = unique;
}

/* Replaces token positions with word ids, framing each sentence with <s> and </s>. */
static void corpus_assign_ids(corpus_t *corpus, const vocabulary_t *vocab)
{
  int start = vocabulary_id(vocab, "<s>"), end = vocabulary_id(vocab, "</s>");
  for (size_t s = 0; s < corpus->count; s++) {
    sentence_t *sentence = &corpus->sentences[s];
    int *ids = xrealloc(NULL, sentence->count + 2, sizeof *ids);
    ids[0] = start;
    for (size_t i = 0; i < sentence->count; i++)
      ids[i + 1] = vocabulary_id(vocab, corpus->tokens[sentence->first_token + i]);
    ids[sentence->count + 1] = end;
    sentence->words = ids;
    sentence->count += 2;
  }
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

static void ngram_list_push(ngram_list_t *list, const int *words, int order)
{
  if (list->count == list->capacity) {
    list->capacity = list->capacity ? list->capacity * 2 : 1024;
    list->items = xrealloc(list->items, list->capacity, sizeof *list->items);
  }
  ngram_t *gram = &list->items[list->count++];
  memset(gram, 0, sizeof *gram);
  memcpy(gram->words, words, (size_t) order * sizeof *words);
  gram->count = 1;
}

/* Sorts the occurrences and merges equal n-grams into counts. */
static void ngram_list_merge(ngram_list_t *list)
{
  qsort(list->items, list->count, sizeof *list->items, ngram_compare);
  size_t unique = 0;
  for (size_t i = 0; i < list->count; i++) {
    if (unique && !ngram_compare(&list->items[unique - 1], &list->items[i]))
      list->items[unique - 1].count++;
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
static void estimate_order(ngram_list_t *grams, ngram_list_t *lower, int order)
{
  for (size_t first = 0; first < grams->count;) {
    size_t last = first;
    unsigned history_count = 0;
    while (last < grams->count &&
           !memcmp(grams->items[last].words, grams->items[first].words,
                   (size_t) (order - 1) * sizeof(int))) {
      history_count += grams->items[last].count;
      last++;
    }
    double types = (double) (last - first);
    double total = (double) history_count + types;
    double lower_mass = 0.0;
    for (size_t i = first; i < last; i++) {
      grams->items[i].log_prob = log10((double) grams->items[i].count / total);
      ngram_t *shorter = ngram_find(lower, grams->items[i].words + 1, order - 1);
      if (!shorter)
        fail("internal error: lower-order n-gram missing");
      lower_mass += pow(10.0, shorter->log_prob);
    }
    ngram_t *history = ngram_find(lower, grams->items[first].words, order - 1);
    if (!history)
      fail("internal error: history n-gram missing");
    history->has_backoff = true;
    /* When the history was followed by every word there is nothing left to back off to. */
    history->log_backoff = lower_mass < 1.0 - 1e-9 ? log10((types / total) / (1.0 - lower_mass))
                                                    : 0.0;
    first = last;
  }
}

static void count_ngrams(const corpus_t *corpus, ngram_list_t lists[MAX_ORDER], int start_id)
{
  for (size_t s = 0; s < corpus->count; s++) {
    const sentence_t *sentence = &corpus->sentences[s];
    for (size_t i = 1; i < sentence->count; i++)
      for (int order = 1; order <= MAX_ORDER && (size_t) order <= i + 1; order++)
        ngram_list_push(&lists[order - 1], sentence->words + i + 1 - order, order);
  }
  for (int order = 1; order <= MAX_ORDER; order++)
    ngram_list_merge(&lists[order - 1]);

  /* <s> is never predicted, yet ARPA wants it listed (with a back-off weight). */
  int start[1] = {start_id};
  ngram_list_push(&lists[0], start, 1);
  lists[0].items[lists[0].count - 1].count = 0;
  ngram_list_merge(&lists[0]);
}

static void estimate_unigrams(ngram_list_t *unigrams)
{
  double total = 0.0;
  for (size_t i = 0; i < unigrams->count; i++)
    total += unigrams->items[i].count;
  for (size_t i = 0; i < unigrams->count; i++)
    unigrams->items[i].log_prob = unigrams->items[i].count
                                    ? log10(unigrams->items[i].count / total) : -99.0;
}

static void write_arpa(const char *path, ngram_list_t lists[MAX_ORDER], const vocabulary_t *vocab)
{
  FILE *out = fopen(path, "w");
  if (!out)
    fail("cannot write %s: %s", path, strerror(errno));
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
  if (fclose(out) != 0)
    fail("cannot write %s", path);
}

static void write_dict(const char *path, const vocabulary_t *vocab, const corpus_t *corpus,
                       const cmudict_t *dict)
{
  FILE *out = fopen(path, "w");
  if (!out)
    fail("cannot write %s: %s", path, strerror(errno));
  size_t missing = 0;
  for (size_t i = 0; i < vocab->count; i++) {
    const char *word = vocab->words[i];
    if (!strcmp(word, "<s>") || !strcmp(word, "</s>") || dict_write_word(out, dict, word))
      continue;
    const char *source = "";
    for (size_t s = 0; s < corpus->count && !*source; s++)
      for (size_t t = 1; t + 1 < corpus->sentences[s].count; t++)
        if (corpus->sentences[s].words[t] == (int) i)
          source = corpus->sentences[s].source;
    fprintf(stderr, "lmgen: the word \"%s\" (in \"%s\") is not in the pronunciation dictionary;"
            " rephrase it in the knowledge base or spell it as it sounds\n", word, source);
    missing++;
  }
  fclose(out);
  if (missing) {
    remove(path);
    fail("%zu word(s) without pronunciation", missing);
  }
}

int main(int argc, char **argv)
{
  if (argc != 5)
    fail("usage: lmgen KNOWLEDGE_JSON CMUDICT OUT_LM OUT_DICT");
  cmudict_t dict = {0};
  cmudict_load(&dict, argv[2]);

  size_t json_size;
  char *json_text = file_read(argv[1], &json_size);
  cJSON *root = cJSON_ParseWithLength(json_text, json_size);
  if (!root)
    fail("%s is not valid JSON (near \"%.20s\")", argv[1],
         cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");

  corpus_t corpus = {0};
  corpus_add_questions(&corpus, &dict, root, "entries");
  corpus_add_questions(&corpus, &dict, root, "small_talk");
  if (!corpus.count)
    fail("%s holds no questions", argv[1]);

  vocabulary_t vocab = {0};
  vocabulary_build(&vocab, &corpus);
  corpus_assign_ids(&corpus, &vocab);

  ngram_list_t lists[MAX_ORDER] = {{0}};
  count_ngrams(&corpus, lists, vocabulary_id(&vocab, "<s>"));
  estimate_unigrams(&lists[0]);
  for (int order = 2; order <= MAX_ORDER; order++)
    estimate_order(&lists[order - 1], &lists[order - 2], order);

  write_dict(argv[4], &vocab, &corpus, &dict);
  write_arpa(argv[3], lists, &vocab);
  printf("lmgen: %zu sentences, %zu words, %zu/%zu/%zu n-grams\n", corpus.count, vocab.count - 2,
         lists[0].count, lists[1].count, lists[2].count);
  for (int order = 0; order < MAX_ORDER; order++)
    free(lists[order].items);
  free(vocab.words);
  corpus_release(&corpus);
  cJSON_Delete(root);
  free(json_text);
  free(dict.entries);
  free(dict.file);
  return 0;
}
