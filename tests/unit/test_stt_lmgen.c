/* test_stt_lmgen: the build-time language model and dictionary. Checks the generated
 * files (ARPA counts, dictionary coverage of every word of the knowledge base) and runs
 * lmgen on small knowledge bases for number normalization and a missing word. */
#include "test_stt_media.h"

#include <cjson/cJSON.h>

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A sorted set of words; owns its strings. */
typedef struct {
  char **words;
  size_t count;
  size_t capacity;
  int sorted;
} word_set_t;

static media_t media;

static const char *setting(const char *name)
{
  const char *value = getenv(name);
  if (!value || !*value)
    fail_msg("%s is not set; run the test through meson", name);
  return value;
}

static char *read_text(const char *path)
{
  FILE *file = fopen(path, "rb");
  if (!file)
    fail_msg("cannot open %s", path);
  char *text = NULL;
  size_t length = 0;
  char chunk[8192];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, file)) > 0) {
    char *grown = realloc(text, length + got + 1);
    assert_non_null(grown);
    text = grown;
    memcpy(text + length, chunk, got);
    length += got;
  }
  fclose(file);
  assert_non_null(text);
  text[length] = '\0';
  return text;
}

static void word_set_add(word_set_t *set, const char *word, size_t length)
{
  if (set->count == set->capacity) {
    set->capacity = set->capacity ? set->capacity * 2 : 256;
    set->words = realloc(set->words, set->capacity * sizeof *set->words);
    assert_non_null(set->words);
  }
  set->words[set->count] = strndup(word, length);
  assert_non_null(set->words[set->count]);
  set->count++;
  set->sorted = 0;
}

static int string_compare(const void *a, const void *b)
{
  return strcmp(*(char *const *) a, *(char *const *) b);
}

static int word_set_has(word_set_t *set, const char *word)
{
  if (!set->sorted) {
    qsort(set->words, set->count, sizeof *set->words, string_compare);
    set->sorted = 1;
  }
  return bsearch(&word, set->words, set->count, sizeof *set->words, string_compare) != NULL;
}

/* Words counted once, however many pronunciations the dictionary gave them. */
static size_t word_set_distinct(word_set_t *set)
{
  if (!set->count || !word_set_has(set, set->words[0]))   /* sorts */
    return 0;
  size_t distinct = 1;
  for (size_t i = 1; i < set->count; i++)
    distinct += strcmp(set->words[i - 1], set->words[i]) != 0;
  return distinct;
}

static void word_set_release(word_set_t *set)
{
  for (size_t i = 0; i < set->count; i++)
    free(set->words[i]);
  free(set->words);
  memset(set, 0, sizeof *set);
}

/* Checks the \data\ counts against the n-gram lines and collects the unigram words. */
static void arpa_check(const char *path, word_set_t *unigrams)
{
  char *text = read_text(path);
  size_t declared[4] = {0}, listed[4] = {0};
  int section = 0, ended = 0;
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    unsigned order;
    size_t count;
    if (sscanf(line, "ngram %u=%zu", &order, &count) == 2 && order >= 1 && order <= 3) {
      declared[order] = count;
    } else if (sscanf(line, "\\%u-grams:", &order) == 1 && order >= 1 && order <= 3) {
      section = (int) order;
    } else if (!strcmp(line, "\\end\\")) {
      ended = 1;
      section = 0;
    } else if (section) {
      char *fields = strchr(line, '\t');
      assert_non_null(fields);
      size_t words = 1;
      for (const char *p = fields + 1; *p && *p != '\t'; p++)
        words += *p == ' ';
      assert_int_equal(words, (size_t) section);
      listed[section]++;
      if (section == 1)
        word_set_add(unigrams, fields + 1, strcspn(fields + 1, "\t"));
    }
  }
  free(text);
  assert_true(ended);
  for (int order = 1; order <= 3; order++) {
    assert_true(declared[order] > 0);
    assert_int_equal(declared[order], listed[order]);
  }
}

/* Collects the words of the dictionary, without the "(2)" of alternates. */
static void dict_words(const char *path, word_set_t *words)
{
  char *text = read_text(path);
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    size_t length = strcspn(line, " (");
    assert_true(length > 0 && line[length]);
    word_set_add(words, line, length);
  }
  free(text);
}

static void test_generated_model(void **state)
{
  (void) state;
  word_set_t unigrams = {0}, dictionary = {0};
  arpa_check(setting("STT_DOMAIN_LM"), &unigrams);
  dict_words(setting("STT_DOMAIN_DICT"), &dictionary);
  assert_true(word_set_has(&unigrams, "<s>") && word_set_has(&unigrams, "</s>"));
  for (size_t i = 0; i < unigrams.count; i++)
    if (strcmp(unigrams.words[i], "<s>") && strcmp(unigrams.words[i], "</s>") &&
        !word_set_has(&dictionary, unigrams.words[i]))
      fail_msg("\"%s\" is in the model but not in the dictionary", unigrams.words[i]);
  for (size_t i = 0; i < dictionary.count; i++)
    if (!word_set_has(&unigrams, dictionary.words[i]))
      fail_msg("\"%s\" is in the dictionary but not in the model", dictionary.words[i]);

  /* Every word a person may say from the knowledge base can be recognized. */
  char *json = read_text(setting("STT_KNOWLEDGE_JSON"));
  cJSON *root = cJSON_Parse(json);
  free(json);
  assert_non_null(root);
  static const char *const sections[] = {"entries", "small_talk"};
  size_t checked = 0;
  for (size_t s = 0; s < 2; s++) {
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(root, sections[s])) {
      const cJSON *question;
      cJSON_ArrayForEach(question, cJSON_GetObjectItemCaseSensitive(item, "questions")) {
        char word[128];
        size_t length = 0;
        for (const char *p = question->valuestring;; p++) {
          if (isalpha((unsigned char) *p) || (length && *p == '\'')) {
            if (length + 1 < sizeof word)
              word[length++] = (char) tolower((unsigned char) *p);
            continue;
          }
          if (length) {
            word[length] = '\0';
            if (!word_set_has(&dictionary, word))
              fail_msg("\"%s\" of \"%s\" is not in the dictionary", word, question->valuestring);
            checked++;
            length = 0;
          }
          if (!*p)
            break;
        }
      }
    }
  }
  cJSON_Delete(root);
  assert_true(checked > 100);
  word_set_release(&unigrams);
  word_set_release(&dictionary);
}

/* The fields every knowledge base needs before its entries. */
#define KB_HEAD "\"name\": \"Shop\", \"assistant\": \"Ava\", \"fallback\": \"Sorry.\", "

/* Runs lmgen on `json`; returns its exit status. */
static int run_lmgen(const char *json)
{
  char json_path[512], lm_path[512], dict_path[512], errors_path[512];
  media_path(&media, "kb.json", json_path, sizeof json_path);
  media_path(&media, "kb.lm", lm_path, sizeof lm_path);
  media_path(&media, "kb.dict", dict_path, sizeof dict_path);
  media_path(&media, "errors.txt", errors_path, sizeof errors_path);
  FILE *file = fopen(json_path, "w");
  assert_non_null(file);
  assert_true(fputs(json, file) >= 0);
  assert_int_equal(fclose(file), 0);
  const char *argv[] = {setting("STT_LMGEN"), json_path, setting("STT_CMUDICT"), lm_path,
                        dict_path, NULL};
  return media_run(argv, NULL, errors_path);
}

static void test_numbers_spoken(void **state)
{
  (void) state;
  assert_int_equal(run_lmgen("{" KB_HEAD "\"entries\": [{\"id\": \"a\", \"questions\":"
                             " [\"Are you open 24/7?\", \"Is it $9.99 or $1,000?\","
                             " \"Open at 9:30 AM, or the 21st?\"], \"answer\": \"Yes.\"}],"
                             " \"small_talk\": [{\"id\": \"b\", \"questions\": [\"Hi, Ava!\"],"
                             " \"answer\": \"Hello.\"}]}"), 0);
  char path[512];
  media_path(&media, "kb.lm", path, sizeof path);
  word_set_t unigrams = {0};
  arpa_check(path, &unigrams);
  static const char *const spoken[] = {"twenty", "four", "seven", "nine", "dollars", "ninety",
                                       "cents", "one", "thousand", "thirty", "a", "m",
                                       "first", "ava", "hi"};
  for (size_t i = 0; i < sizeof spoken / sizeof spoken[0]; i++)
    if (!word_set_has(&unigrams, spoken[i]))
      fail_msg("\"%s\" missing from the model", spoken[i]);
  for (size_t i = 0; i < unigrams.count; i++)
    for (const char *p = unigrams.words[i]; *p; p++)
      if (isdigit((unsigned char) *p) || isupper((unsigned char) *p) || strchr("$%:,.!?", *p))
        fail_msg("\"%s\" was not normalized", unigrams.words[i]);
  word_set_release(&unigrams);
}

static void test_unknown_word_fails(void **state)
{
  (void) state;
  assert_int_not_equal(run_lmgen("{" KB_HEAD "\"entries\": [{\"id\": \"a\", \"questions\":"
                                 " [\"do you sell zqxwv\"], \"answer\": \"No.\"}]}"), 0);
  char path[512];
  media_path(&media, "errors.txt", path, sizeof path);
  char *errors = read_text(path);
  if (!strstr(errors, "\"zqxwv\""))
    fail_msg("the error does not name the word: %s", errors);
  free(errors);
}

static void test_paraphrases_and_answers_join(void **state)
{
  (void) state;
  assert_int_equal(run_lmgen("{" KB_HEAD "\"entries\": [{\"id\": \"a\", \"questions\":"
                             " [\"is delivery free\"], \"paraphrases\": [\"(do|must) i pay"
                             " for (postage|delivery|)\"], \"answer\": \"Shipping costs"
                             " nothing. Returns are easy.\"}]}"), 0);
  char path[512];
  media_path(&media, "kb.lm", path, sizeof path);
  word_set_t unigrams = {0};
  arpa_check(path, &unigrams);
  static const char *const expected[] = {"must", "postage", "pay", "shipping", "returns", "easy"};
  for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
    if (!word_set_has(&unigrams, expected[i]))
      fail_msg("\"%s\" missing from the model", expected[i]);
  word_set_release(&unigrams);

  assert_int_not_equal(run_lmgen("{" KB_HEAD "\"entries\": [{\"id\": \"broken\", \"questions\":"
                                 " [\"hi\"], \"paraphrases\": [\"(a|b\"], \"answer\": \"x\"}]}"), 0);
  media_path(&media, "errors.txt", path, sizeof path);
  char *errors = read_text(path);
  if (!strstr(errors, "\"broken\"") || !strstr(errors, "paraphrases"))
    fail_msg("the error does not name the entry and field: %s", errors);
  free(errors);
}

/* The open vocabulary's dictionary: the generic model's likeliest words, each with a
 * pronunciation; the build's one and one made here. */
static void test_generic_dictionary(void **state)
{
  (void) state;
  word_set_t built = {0};
  dict_words(setting("STT_GENERIC_DICT"), &built);
  assert_int_equal(word_set_distinct(&built), 10000);
  assert_true(word_set_has(&built, "the") && word_set_has(&built, "weather"));
  word_set_release(&built);

  char dict_path[512], errors_path[512];
  media_path(&media, "generic.dict", dict_path, sizeof dict_path);
  media_path(&media, "errors.txt", errors_path, sizeof errors_path);
  const char *argv[] = {setting("STT_LMGEN"), "--generic-dict", "300", setting("STT_GENERIC_LM"),
                        setting("STT_CMUDICT"), dict_path, NULL};
  assert_int_equal(media_run(argv, NULL, errors_path), 0);
  word_set_t small = {0};
  dict_words(dict_path, &small);
  assert_int_equal(word_set_distinct(&small), 300);
  static const char *const commonest[] = {"the", "and", "of", "to", "is"};
  for (size_t i = 0; i < sizeof commonest / sizeof commonest[0]; i++)
    if (!word_set_has(&small, commonest[i]))
      fail_msg("\"%s\" is not among the 300 likeliest words", commonest[i]);
  word_set_release(&small);

  /* An unreadable model: a clear error and no dictionary left behind. */
  assert_int_equal(remove(dict_path), 0);
  argv[3] = "/nonexistent/en-us.lm.bin";
  assert_int_not_equal(media_run(argv, NULL, errors_path), 0);
  char *errors = read_text(errors_path);
  if (!strstr(errors, "/nonexistent/en-us.lm.bin"))
    fail_msg("the error does not name the model: %s", errors);
  free(errors);
  FILE *left = fopen(dict_path, "r");
  if (left)
    fclose(left);
  assert_null(left);
}

static int group_setup(void **state)
{
  (void) state;
  return media_init(&media);
}

static int group_teardown(void **state)
{
  (void) state;
  media_cleanup(&media);
  return 0;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_generated_model),
    cmocka_unit_test(test_numbers_spoken),
    cmocka_unit_test(test_unknown_word_fails),
    cmocka_unit_test(test_paraphrases_and_answers_join),
    cmocka_unit_test(test_generic_dictionary),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
