/* test_stt_lmmix: the static mix of two language models (lmmix) and the trie reader it
 * lists the generic model with (lmtrie).
 *
 * Two small trigram models are written as ARPA text, the "generic" one converted to
 * sphinxbase's binary trie by sphinxbase itself. The reader must list exactly the
 * n-grams sphinxbase stored; the mix must give every listed n-gram the probability
 * sphinxbase's run-time interpolation gives it, and every history probabilities that
 * sum to one. Damaged files and bad settings must fail with a reason and leave no
 * output. The shipped en-us model is listed too: every n-gram the reader returns must be
 * one sphinxbase scores at full order. */
#include "lmmix.h"
#include "lmtrie.h"

#include <sphinxbase/err.h>
#include <sphinxbase/logmath.h>
#include <sphinxbase/ngram_model.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct {
  const char *words;            /* space-separated, oldest first */
  double prob;                  /* linear */
} toy_ngram_t;

/* Unigrams sum to one over each model's words (<s> is never predicted), so the mix's
 * histories can be checked to sum to one over the union. */
static const toy_ngram_t GENERIC[] = {
  {"<s>", 0.0}, {"</s>", 0.2}, {"the", 0.3}, {"cat", 0.15}, {"dog", 0.15}, {"sat", 0.1},
  {"ran", 0.1},
  {"<s> the", 0.8}, {"the cat", 0.4}, {"the dog", 0.4}, {"cat sat", 0.6}, {"dog ran", 0.5},
  {"sat </s>", 0.7}, {"ran </s>", 0.6},
  {"<s> the cat", 0.5}, {"the cat sat", 0.7}, {"cat sat </s>", 0.9},
  /* an orphan: no bigram "dog sat" holds its history (en-us.lm.bin has such) */
  {"dog sat </s>", 0.8}};
static const toy_ngram_t DOMAIN[] = {
  {"<s>", 0.0}, {"</s>", 0.25}, {"the", 0.25}, {"return", 0.2}, {"refund", 0.2}, {"cat", 0.1},
  {"<s> return", 0.5}, {"return the", 0.3}, {"return refund", 0.4}, {"refund </s>", 0.8},
  {"the cat", 0.5},
  {"<s> return refund", 0.6}, {"return refund </s>", 0.9}};
static const char GENERIC_DICT[] =
  "the DH AH\nthe(2) DH IY\ncat K AE T\ndog D AO G\nsat S AE T\nran R AE N\n";
static const char DOMAIN_DICT[] =
  "the DH IY\nreturn R IH T ER N\nrefund R IY F AH N D\nrefund(2) R IH F AH N D\ncat K AE T\n";

static char dir[64];
static char generic_arpa[128], generic_bin[128], generic_dict[128];
static char domain_arpa[128], domain_dict[128], out_lm[128], out_dict[128];
static logmath_t *logmath;

static int order_of(const char *words)
{
  int order = 1;
  for (const char *c = words; *c; c++)
    order += *c == ' ';
  return order;
}

static void write_file(const char *path, const char *text)
{
  FILE *file = fopen(path, "w");
  assert_non_null(file);
  assert_true(fputs(text, file) >= 0);
  assert_int_equal(fclose(file), 0);
}

static void write_arpa(const char *path, const toy_ngram_t *grams, size_t count)
{
  FILE *file = fopen(path, "w");
  assert_non_null(file);
  size_t counts[4] = {0};
  for (size_t i = 0; i < count; i++)
    counts[order_of(grams[i].words)]++;
  fprintf(file, "\\data\\\nngram 1=%zu\nngram 2=%zu\nngram 3=%zu\n", counts[1], counts[2],
          counts[3]);
  for (int order = 1; order <= 3; order++) {
    fprintf(file, "\n\\%d-grams:\n", order);
    for (size_t i = 0; i < count; i++) {
      if (order_of(grams[i].words) != order)
        continue;
      double logp = grams[i].prob > 0.0 ? log10(grams[i].prob) : -99.0;
      fprintf(file, "%.6f %s%s\n", logp, grams[i].words, order < 3 ? " -0.3" : "");
    }
  }
  fputs("\n\\end\\\n", file);
  assert_int_equal(fclose(file), 0);
}

static ngram_model_t *model_read(const char *path)
{
  ngram_model_t *model = ngram_model_read(NULL, path, NGRAM_AUTO, logmath);
  assert_non_null(model);
  return model;
}

static int group_setup(void **state)
{
  (void) state;
  snprintf(dir, sizeof dir, "/tmp/lmmix-test-XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  snprintf(generic_arpa, sizeof generic_arpa, "%s/generic.arpa", dir);
  snprintf(generic_bin, sizeof generic_bin, "%s/generic.lm.bin", dir);
  snprintf(generic_dict, sizeof generic_dict, "%s/generic.dict", dir);
  snprintf(domain_arpa, sizeof domain_arpa, "%s/domain.lm", dir);
  snprintf(domain_dict, sizeof domain_dict, "%s/domain.dict", dir);
  snprintf(out_lm, sizeof out_lm, "%s/open.lm.bin", dir);
  snprintf(out_dict, sizeof out_dict, "%s/open.dict", dir);
  err_set_logfp(NULL);
  logmath = logmath_init(1.0001, 0, 0);
  return logmath ? 0 : -1;
}

static int group_teardown(void **state)
{
  (void) state;
  const char *files[] = {generic_arpa, generic_bin, generic_dict, domain_arpa, domain_dict,
                         out_lm, out_dict};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++)
    remove(files[i]);
  rmdir(dir);
  logmath_free(logmath);
  return 0;
}

/* Writes both toy models and dictionaries; the generic one as sphinxbase's trie. */
static void write_toy_models(void)
{
  write_arpa(generic_arpa, GENERIC, sizeof GENERIC / sizeof *GENERIC);
  write_arpa(domain_arpa, DOMAIN, sizeof DOMAIN / sizeof *DOMAIN);
  write_file(generic_dict, GENERIC_DICT);
  write_file(domain_dict, DOMAIN_DICT);
  ngram_model_t *model = model_read(generic_arpa);
  assert_int_equal(ngram_model_write(model, generic_bin, NGRAM_BIN), 0);
  ngram_model_free(model);
}

static int mix(double weight, stage_error_t *err)
{
  lmmix_options_t options = {
    .domain_lm = domain_arpa, .domain_dict = domain_dict, .generic_lm = generic_bin,
    .generic_dict = generic_dict, .generic_weight = weight, .out_lm = out_lm,
    .out_dict = out_dict};
  lmmix_stats_t stats = {0};
  int rc = lmmix_write(&options, &stats, err);
  if (rc == 0)
    printf("# mixed: %zu words, %zu/%zu/%zu n-grams\n", stats.words, stats.ngrams[0],
           stats.ngrams[1], stats.ngrams[2]);
  return rc;
}

/* ---- lmtrie ---- */

typedef struct {
  const lmtrie_t *trie;
  char listed[32][64];
  int count;
} listing_t;

static int collect(const uint32_t *words, int order, void *arg)
{
  listing_t *listing = arg;
  assert_true(listing->count < 32);
  char *text = listing->listed[listing->count++];
  text[0] = '\0';
  for (int i = 0; i < order; i++) {
    strcat(text, i ? " " : "");
    strcat(text, lmtrie_word(listing->trie, words[i]));
  }
  return 0;
}

static bool listed(const listing_t *listing, const char *words)
{
  for (int i = 0; i < listing->count; i++)
    if (!strcmp(listing->listed[i], words))
      return true;
  return false;
}

static void test_trie_lists_what_sphinxbase_stored(void **state)
{
  (void) state;
  write_toy_models();
  stage_error_t err = {0};
  lmtrie_t *trie = lmtrie_new(generic_bin, &err);
  if (!trie)
    fail_msg("lmtrie_new: %s", err.message);
  assert_int_equal(lmtrie_order(trie), 3);
  assert_int_equal(lmtrie_words(trie), 7);
  assert_null(lmtrie_word(trie, 7));
  for (int order = 2; order <= 3; order++) {
    listing_t listing = {.trie = trie};
    int64_t count = lmtrie_foreach(trie, order, collect, &listing);
    assert_int_equal(count, listing.count);
    for (size_t i = 0; i < sizeof GENERIC / sizeof *GENERIC; i++)
      if (order_of(GENERIC[i].words) == order && !listed(&listing, GENERIC[i].words))
        fail_msg("\"%s\" not listed", GENERIC[i].words);
    /* nothing more: the orphan trigram's history is not made up */
    assert_false(listed(&listing, "dog sat"));
    assert_int_equal(count, order == 2 ? 7 : 4);
  }
  assert_int_equal(lmtrie_foreach(trie, 1, collect, NULL), -1);
  assert_int_equal(lmtrie_foreach(trie, 4, collect, NULL), -1);
  lmtrie_destroy(&trie);
  assert_null(trie);
  lmtrie_destroy(&trie);
}

static int stop_at_first(const uint32_t *words, int order, void *arg)
{
  (void) words;
  (void) order;
  (*(int *) arg)++;
  return 1;
}

static void test_trie_visit_stops_listing(void **state)
{
  (void) state;
  write_toy_models();
  lmtrie_t *trie = lmtrie_new(generic_bin, NULL);
  assert_non_null(trie);
  int calls = 0;
  assert_int_equal(lmtrie_foreach(trie, 3, stop_at_first, &calls), -1);
  assert_int_equal(calls, 1);
  lmtrie_destroy(&trie);
}

/* Copies the toy trie to `path` with `cut` bytes off its end and `extra` bytes added. */
static void write_damaged(const char *path, long cut, const char *extra)
{
  FILE *in = fopen(generic_bin, "rb");
  assert_non_null(in);
  assert_int_equal(fseek(in, 0, SEEK_END), 0);
  long size = ftell(in);
  assert_true(size > cut);
  rewind(in);
  char *data = malloc((size_t) size);
  assert_non_null(data);
  assert_int_equal(fread(data, 1, (size_t) size, in), (size_t) size);
  fclose(in);
  FILE *out = fopen(path, "wb");
  assert_non_null(out);
  assert_int_equal(fwrite(data, 1, (size_t) (size - cut), out), (size_t) (size - cut));
  assert_true(fputs(extra, out) >= 0);
  assert_int_equal(fclose(out), 0);
  free(data);
}

static void test_trie_refuses_damaged_files(void **state)
{
  (void) state;
  write_toy_models();
  char damaged[160];
  snprintf(damaged, sizeof damaged, "%s/damaged.bin", dir);
  const struct {
    long cut;
    const char *extra;
    const char *why;
  } cases[] = {
    {1, "", "word list"},               /* the last word loses its terminator */
    {40, "", "word list"},              /* words missing */
    {0, "trailing", "word list"},       /* bytes after the words */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    write_damaged(damaged, cases[i].cut, cases[i].extra);
    stage_error_t err = {0};
    assert_null(lmtrie_new(damaged, &err));
    assert_string_equal(err.code, "lmgen_failed");
    if (!strstr(err.message, damaged))
      fail_msg("case %zu: the message names no file: %s", i, err.message);
  }
  stage_error_t err = {0};
  write_file(damaged, "This is an ARPA file, not a trie\n");
  assert_null(lmtrie_new(damaged, &err));
  assert_non_null(strstr(err.message, "header"));
  write_file(damaged, "Trie Language Model");
  assert_null(lmtrie_new(damaged, &err));
  assert_null(lmtrie_new("/nonexistent/model.bin", &err));
  assert_non_null(strstr(err.message, "/nonexistent/model.bin"));
  remove(damaged);
}

typedef struct {
  const lmtrie_t *trie;
  ngram_model_t *model;
  int64_t seen;
  int64_t checked;
  int64_t short_scored;
} full_order_check_t;

/* Every 997th n-gram: sphinxbase must find it at its full order. */
static int check_full_order(const uint32_t *words, int order, void *arg)
{
  full_order_check_t *check = arg;
  if (check->seen++ % 997)
    return 0;
  int32 history[2];
  for (int i = 0; i < order - 1; i++)
    history[i] = ngram_wid(check->model, lmtrie_word(check->trie, words[order - 2 - i]));
  int32 used = 0;
  ngram_ng_score(check->model, ngram_wid(check->model, lmtrie_word(check->trie, words[order - 1])),
                 history, order - 1, &used);
  check->checked++;
  check->short_scored += used != order;
  return 0;
}

static void test_trie_reads_the_generic_model(void **state)
{
  (void) state;
  const char *path = getenv("STT_GENERIC_LM");
  assert_non_null(path);
  stage_error_t err = {0};
  lmtrie_t *trie = lmtrie_new(path, &err);
  if (!trie)
    fail_msg("lmtrie_new: %s", err.message);
  ngram_model_t *model = model_read(path);
  assert_int_equal(lmtrie_order(trie), 3);
  assert_int_equal(lmtrie_words(trie), (uint32_t) ngram_model_get_counts(model)[0]);
  for (int order = 2; order <= 3; order++) {
    full_order_check_t check = {.trie = trie, .model = model};
    int64_t count = lmtrie_foreach(trie, order, check_full_order, &check);
    printf("# en-us.lm.bin: %lld %d-grams listed (header: %u), %lld checked\n", (long long) count,
           order, ngram_model_get_counts(model)[order - 1], (long long) check.checked);
    assert_true(count > 1000000);
    assert_int_equal(check.short_scored, 0);
  }
  ngram_model_free(model);
  lmtrie_destroy(&trie);
}

/* ---- lmmix ---- */

static int32 score(ngram_model_t *model, const char *const *words, int order)
{
  int32 history[2];
  for (int i = 0; i < order - 1; i++)
    history[i] = ngram_wid(model, words[order - 2 - i]);
  int32 used;
  return ngram_ng_score(model, ngram_wid(model, words[order - 1]), history, order - 1, &used);
}

/* Splits "a b c" into words[]; returns the count. The words point into `buffer`. */
static int split(const char *text, char *buffer, size_t size, const char **words)
{
  snprintf(buffer, size, "%s", text);
  int count = 0;
  char *rest = NULL;
  for (char *word = strtok_r(buffer, " ", &rest); word; word = strtok_r(NULL, " ", &rest))
    words[count++] = word;
  return count;
}

static void assert_same_as_interpolation(ngram_model_t *mixed, ngram_model_t *set,
                                         const toy_ngram_t *grams, size_t count)
{
  for (size_t i = 0; i < count; i++) {
    char buffer[64];
    const char *words[3];
    int order = split(grams[i].words, buffer, sizeof buffer, words);
    if (!strcmp(words[order - 1], "<s>"))
      continue;
    double expected = logmath_log_to_log10(logmath, score(set, words, order));
    double got = logmath_log_to_log10(logmath, score(mixed, words, order));
    if (fabs(expected - got) > 1e-3)
      fail_msg("\"%s\": %.5f in the mix, %.5f interpolated", grams[i].words, got, expected);
  }
}

static void test_mix_keeps_interpolated_probabilities(void **state)
{
  (void) state;
  write_toy_models();
  stage_error_t err = {0};
  if (mix(0.3, &err) != 0)
    fail_msg("lmmix_write: %s", err.message);
  ngram_model_t *models[2] = {model_read(domain_arpa), model_read(generic_bin)};
  char *names[2] = {"domain", "generic"};
  float32 weights[2] = {0.7f, 0.3f};
  ngram_model_t *set = ngram_model_set_init(NULL, models, names, weights, 2);
  assert_non_null(set);
  ngram_model_t *mixed = model_read(out_lm);
  assert_int_equal(ngram_model_get_size(mixed), 3);
  assert_same_as_interpolation(mixed, set, GENERIC, sizeof GENERIC / sizeof *GENERIC);
  assert_same_as_interpolation(mixed, set, DOMAIN, sizeof DOMAIN / sizeof *DOMAIN);
  ngram_model_free(mixed);
  ngram_model_free(set);
  ngram_model_free(models[0]);
  ngram_model_free(models[1]);
}

static const char *const VOCABULARY[] = {"</s>", "the", "cat", "dog", "sat", "ran", "return",
                                         "refund"};
enum { VOCABULARY_SIZE = sizeof VOCABULARY / sizeof *VOCABULARY };

/* The probabilities after `history` (n words, oldest first) over the whole vocabulary. */
static double history_total(ngram_model_t *model, const char *const *history, int n)
{
  double total = 0.0;
  for (int w = 0; w < VOCABULARY_SIZE; w++) {
    const char *words[3];
    for (int i = 0; i < n; i++)
      words[i] = history[i];
    words[n] = VOCABULARY[w];
    total += logmath_exp(logmath, score(model, words, n + 1));
  }
  return total;
}

static void test_mix_histories_sum_to_one(void **state)
{
  (void) state;
  write_toy_models();
  stage_error_t err = {0};
  if (mix(0.5, &err) != 0)
    fail_msg("lmmix_write: %s", err.message);
  ngram_model_t *mixed = model_read(out_lm);
  const char *histories[][2] = {
    {"<s>", NULL}, {"the", NULL}, {"cat", NULL}, {"dog", NULL}, {"return", NULL},
    {"refund", NULL}, {"sat", NULL},
    {"<s>", "the"}, {"the", "cat"}, {"cat", "sat"}, {"dog", "sat"}, {"<s>", "return"},
    {"return", "refund"}, {"the", "dog"}, {"refund", "the"}};
  for (size_t i = 0; i < sizeof histories / sizeof *histories; i++) {
    int n = histories[i][1] ? 2 : 1;
    double total = history_total(mixed, histories[i], n);
    if (fabs(total - 1.0) > 2e-3)
      fail_msg("after \"%s%s%s\" the probabilities sum to %.5f", histories[i][0],
               n == 2 ? " " : "", n == 2 ? histories[i][1] : "", total);
  }
  ngram_model_free(mixed);
}

static char *read_all(const char *path)
{
  FILE *file = fopen(path, "r");
  assert_non_null(file);
  static char text[4096];
  size_t length = fread(text, 1, sizeof text - 1, file);
  fclose(file);
  text[length] = '\0';
  return text;
}

static void test_mix_dictionary(void **state)
{
  (void) state;
  write_toy_models();
  stage_error_t err = {0};
  if (mix(0.5, &err) != 0)
    fail_msg("lmmix_write: %s", err.message);
  const char *text = read_all(out_dict);
  /* the generic dictionary first, as it is; then the domain words it lacks, with all
   * their pronunciations; "the" and "cat" keep the generic ones */
  char expected[512];
  snprintf(expected, sizeof expected, "%s%s", GENERIC_DICT,
           "return R IH T ER N\nrefund R IY F AH N D\nrefund(2) R IH F AH N D\n");
  assert_string_equal(text, expected);
}

static void assert_refused(double weight, const char *domain, const char *why)
{
  lmmix_options_t options = {
    .domain_lm = domain, .domain_dict = domain_dict, .generic_lm = generic_bin,
    .generic_dict = generic_dict, .generic_weight = weight, .out_lm = out_lm,
    .out_dict = out_dict};
  remove(out_lm);
  remove(out_dict);
  stage_error_t err = {0};
  assert_int_equal(lmmix_write(&options, NULL, &err), -1);
  assert_string_equal(err.code, "lmgen_failed");
  if (!strstr(err.message, why))
    fail_msg("expected \"%s\" in: %s", why, err.message);
  assert_int_equal(access(out_lm, F_OK), -1);
  assert_int_equal(access(out_dict, F_OK), -1);
}

static void test_mix_refuses_bad_input(void **state)
{
  (void) state;
  write_toy_models();
  assert_refused(0.0, domain_arpa, "weight");
  assert_refused(1.0, domain_arpa, "weight");
  assert_refused(0.5, "/nonexistent/domain.lm", "/nonexistent/domain.lm");
  char fourgram[160];
  snprintf(fourgram, sizeof fourgram, "%s/fourgram.lm", dir);
  write_file(fourgram, "\\data\\\nngram 1=3\nngram 2=1\nngram 3=1\nngram 4=1\n\n"
                       "\\1-grams:\n-99 <s> -0.3\n-0.3 </s> -0.3\n-0.3 a -0.3\n\n"
                       "\\2-grams:\n-0.3 <s> a -0.3\n\n\\3-grams:\n-0.3 <s> a </s> -0.3\n\n"
                       "\\4-grams:\n-0.3 <s> a </s> </s>\n\n\\end\\\n");
  assert_refused(0.5, fourgram, "trigrams");
  remove(fourgram);
  char garbage[160];
  snprintf(garbage, sizeof garbage, "%s/garbage.lm", dir);
  write_file(garbage, "not a language model\n");
  assert_refused(0.5, garbage, garbage);
  remove(garbage);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_trie_lists_what_sphinxbase_stored),
    cmocka_unit_test(test_trie_visit_stops_listing),
    cmocka_unit_test(test_trie_refuses_damaged_files),
    cmocka_unit_test(test_trie_reads_the_generic_model),
    cmocka_unit_test(test_mix_keeps_interpolated_probabilities),
    cmocka_unit_test(test_mix_histories_sum_to_one),
    cmocka_unit_test(test_mix_dictionary),
    cmocka_unit_test(test_mix_refuses_bad_input),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
