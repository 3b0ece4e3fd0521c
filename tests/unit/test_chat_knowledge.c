/* Unit tests of the knowledge-base loader: the shipped file is valid and every
 * broken file is refused with an error naming the entry and field at fault. */
#include "knowledge.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENTRY_OK "{\"id\": \"hours\", \"questions\": [\"when are you open\"], \"answer\": \"Nine to six.\"}"
#define HEAD "\"name\": \"Shop\", \"assistant\": \"Ava\", \"fallback\": \"Sorry.\""

/* Parses `json` expecting failure; checks that the message holds each of the
 * NULL-terminated `fragments`. */
static void assert_refused(const char *json, ...)
{
  stage_error_t err = { 0 };
  knowledge_t *knowledge = knowledge_parse(json, "test.json", &err);
  assert_null(knowledge);
  assert_string_equal(err.code, "bad_knowledge");
  assert_non_null(strstr(err.message, "test.json"));
  va_list fragments;
  va_start(fragments, json);
  for (const char *fragment = va_arg(fragments, const char *); fragment;
       fragment = va_arg(fragments, const char *)) {
    if (!strstr(err.message, fragment))
      fail_msg("\"%s\" lacks \"%s\"", err.message, fragment);
  }
  va_end(fragments);
}

static void test_shipped_file_is_valid(void **state)
{
  (void) state;
  stage_error_t err = { 0 };
  const char *path = getenv("KNOWLEDGE_FILE");
  assert_non_null(path);
  knowledge_t *knowledge = knowledge_load(path, &err);
  if (!knowledge)
    fail_msg("%s", err.message);
  assert_string_equal(knowledge->name, "Brightside Electronics");
  assert_string_equal(knowledge->assistant, "Ava");
  assert_true(knowledge->entry_count >= 25);
  for (size_t i = 0; i < knowledge->entry_count; i++) {
    assert_true(knowledge->entries[i].question_count >= 4);
    assert_true(knowledge->entries[i].question_count <= 8);
  }
  const char *small_talk[] = { "greeting", "thanks", "goodbye", "who_are_you", "how_are_you" };
  assert_int_equal(knowledge->small_talk_count, 5);
  for (size_t i = 0; i < 5; i++)
    assert_string_equal(knowledge->small_talk[i].id, small_talk[i]);
  knowledge_destroy(&knowledge);
  assert_null(knowledge);
  knowledge_destroy(&knowledge);
  knowledge_destroy(NULL);
}

static void test_minimal_file_without_small_talk(void **state)
{
  (void) state;
  stage_error_t err = { 0 };
  knowledge_t *knowledge = knowledge_parse("{" HEAD ", \"entries\": [" ENTRY_OK "]}", "t", &err);
  assert_non_null(knowledge);
  assert_int_equal(knowledge->entry_count, 1);
  assert_int_equal(knowledge->small_talk_count, 0);
  assert_string_equal(knowledge->entries[0].questions[0], "when are you open");
  knowledge_destroy(&knowledge);
}

static void test_not_json(void **state)
{
  (void) state;
  assert_refused("{\"name\": ", "not valid JSON", NULL);
  assert_refused("", "not valid JSON", NULL);
  assert_refused("{" HEAD ", \"entries\": [" ENTRY_OK "]} trailing", "not valid JSON", NULL);
  assert_refused("[1, 2]", "top level", NULL);
  stage_error_t err = { 0 };
  assert_null(knowledge_parse(NULL, "test.json", &err));
  assert_string_equal(err.code, "bad_knowledge");
}

static void test_missing_or_wrong_top_level_fields(void **state)
{
  (void) state;
  assert_refused("{\"assistant\": \"Ava\", \"fallback\": \"Sorry.\", \"entries\": [" ENTRY_OK "]}",
                 "\"name\"", NULL);
  assert_refused("{\"name\": \"Shop\", \"assistant\": 7, \"fallback\": \"Sorry.\", \"entries\": ["
                 ENTRY_OK "]}", "\"assistant\"", NULL);
  assert_refused("{\"name\": \"Shop\", \"assistant\": \"Ava\", \"fallback\": \"\", \"entries\": ["
                 ENTRY_OK "]}", "\"fallback\"", NULL);
  assert_refused("{" HEAD "}", "\"entries\"", NULL);
  assert_refused("{" HEAD ", \"entries\": []}", "\"entries\"", "non-empty", NULL);
  assert_refused("{" HEAD ", \"entries\": {}}", "\"entries\"", NULL);
  assert_refused("{" HEAD ", \"entries\": [" ENTRY_OK "], \"small_talk\": \"hi\"}",
                 "\"small_talk\"", NULL);
}

static void test_broken_entries_name_entry_and_field(void **state)
{
  (void) state;
  assert_refused("{" HEAD ", \"entries\": [" ENTRY_OK ", 42]}", "entries[1]", "object", NULL);
  assert_refused("{" HEAD ", \"entries\": [" ENTRY_OK ", {\"questions\": [\"a\"], \"answer\": \"b\"}]}",
                 "entries[1]", "\"id\"", NULL);
  assert_refused("{" HEAD ", \"entries\": [{\"id\": \"refunds\", \"answer\": \"b\"}]}",
                 "entries[0]", "\"refunds\"", "\"questions\"", NULL);
  assert_refused("{" HEAD ", \"entries\": [{\"id\": \"refunds\", \"questions\": [], \"answer\": \"b\"}]}",
                 "\"refunds\"", "\"questions\"", "non-empty", NULL);
  assert_refused("{" HEAD ", \"entries\": [{\"id\": \"refunds\", \"questions\": \"why\", \"answer\": \"b\"}]}",
                 "\"refunds\"", "\"questions\"", NULL);
  assert_refused("{" HEAD ", \"entries\": [{\"id\": \"refunds\", \"questions\": [\"a\", 3], \"answer\": \"b\"}]}",
                 "\"refunds\"", "\"questions\" item 1", NULL);
  assert_refused("{" HEAD ", \"entries\": [{\"id\": \"refunds\", \"questions\": [\"a\", \"\"], \"answer\": \"b\"}]}",
                 "\"refunds\"", "\"questions\" item 1", NULL);
  assert_refused("{" HEAD ", \"entries\": [{\"id\": \"refunds\", \"questions\": [\"a\"]}]}",
                 "\"refunds\"", "\"answer\"", NULL);
  assert_refused("{" HEAD ", \"entries\": [{\"id\": \"refunds\", \"questions\": [\"a\"], \"answer\": [\"b\"]}]}",
                 "\"refunds\"", "\"answer\"", NULL);
  assert_refused("{" HEAD ", \"entries\": [" ENTRY_OK "], \"small_talk\": [{\"id\": \"hi\", \"questions\": [\"hi\"]}]}",
                 "small_talk[0]", "\"hi\"", "\"answer\"", NULL);
}

static void test_duplicate_ids(void **state)
{
  (void) state;
  assert_refused("{" HEAD ", \"entries\": [" ENTRY_OK ", " ENTRY_OK "]}",
                 "entries[1]", "\"hours\"", "\"id\"", "duplicates entries[0]", NULL);
  assert_refused("{" HEAD ", \"entries\": [" ENTRY_OK "], \"small_talk\": [" ENTRY_OK "]}",
                 "small_talk[0]", "\"hours\"", "duplicates entries[0]", NULL);
}

static void test_file_errors(void **state)
{
  (void) state;
  stage_error_t err = { 0 };
  assert_null(knowledge_load("/nonexistent/knowledge.json", &err));
  assert_string_equal(err.code, "bad_knowledge");
  assert_non_null(strstr(err.message, "/nonexistent/knowledge.json"));
  assert_null(knowledge_load("", &err));
  assert_null(knowledge_load(NULL, &err));
  assert_null(knowledge_load("/", &err));   /* a directory: reading fails */

  char path[] = "/tmp/test_chat_knowledge_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *file = fdopen(fd, "wb");
  assert_non_null(file);
  static const char with_nul[] = "{\"name\": \"a\0b\"}";
  assert_int_equal(fwrite(with_nul, 1, sizeof with_nul - 1, file), sizeof with_nul - 1);
  assert_int_equal(fclose(file), 0);
  memset(&err, 0, sizeof err);
  assert_null(knowledge_load(path, &err));
  assert_non_null(strstr(err.message, "NUL"));

  /* Oversized: refused before parsing. */
  file = fopen(path, "wb");
  assert_non_null(file);
  for (size_t written = 0; written <= KNOWLEDGE_MAX_BYTES; written += 1024) {
    char spaces[1024];
    memset(spaces, ' ', sizeof spaces);
    assert_int_equal(fwrite(spaces, 1, sizeof spaces, file), sizeof spaces);
  }
  assert_int_equal(fclose(file), 0);
  memset(&err, 0, sizeof err);
  assert_null(knowledge_load(path, &err));
  assert_non_null(strstr(err.message, "larger than"));
  assert_int_equal(unlink(path), 0);
}

static int collect(const char *sentence, void *arg)
{
  char *all = arg;
  strcat(all, sentence);
  strcat(all, "|");
  return 0;
}

static void test_paraphrase_templates(void **state)
{
  (void) state;
  char all[1024] = "";
  const char *problem = NULL;
  assert_int_equal(knowledge_expand_template("(how long|when) will it (take|) ", collect, all,
                                             &problem), 4);
  assert_string_equal(all, "how long will it take|how long will it|when will it take|when will it|");
  static const char *const broken[] = {"(a|b", "a)b", "x|y", "((a))", "(|)", ("(a|b)(c|d)(e|f)(g|h)"
                                       "(i|j)(k|l)(m|n)(o|p)(q|r)")};
  for (size_t i = 0; i < sizeof broken / sizeof *broken; i++) {
    all[0] = '\0';
    problem = NULL;
    assert_int_equal(knowledge_expand_template(broken[i], collect, all, &problem), -1);
    assert_non_null(problem);
  }
  stage_error_t err = { 0 };
  knowledge_t *kb = knowledge_parse(
    "{\"name\": \"a\", \"assistant\": \"b\", \"fallback\": \"c\", \"entries\": ["
    "{\"id\": \"ok\", \"questions\": [\"q\"], \"paraphrases\": [\"(x|y) z\"], \"answer\": \"a\"},"
    "{\"id\": \"bad\", \"questions\": [\"q\"], \"paraphrases\": [\"fine\", \"(open\"], \"answer\": \"a\"}]}",
    "kb.json", &err);
  assert_null(kb);
  assert_non_null(strstr(err.message, "entries[1] (id \"bad\")"));
  assert_non_null(strstr(err.message, "field \"paraphrases\" item 1"));
  kb = knowledge_parse(
    "{\"name\": \"a\", \"assistant\": \"b\", \"fallback\": \"c\", \"entries\": ["
    "{\"id\": \"ok\", \"questions\": [\"q\"], \"paraphrases\": [\"(x|y) z\", \"w\"], \"answer\": \"a\"}]}",
    "kb.json", &err);
  assert_non_null(kb);
  assert_int_equal(kb->entries[0].paraphrase_count, 3);
  assert_int_equal(kb->entries[0].template_count, 2);
  assert_string_equal(kb->entries[0].paraphrases[1], "y z");
  knowledge_destroy(&kb);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_shipped_file_is_valid),
    cmocka_unit_test(test_paraphrase_templates),
    cmocka_unit_test(test_minimal_file_without_small_talk),
    cmocka_unit_test(test_not_json),
    cmocka_unit_test(test_missing_or_wrong_top_level_fields),
    cmocka_unit_test(test_broken_entries_name_entry_and_field),
    cmocka_unit_test(test_duplicate_ids),
    cmocka_unit_test(test_file_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
