/* test_stt_rebuild: the pocketsphinx backend rebuilds its language model when the
 * knowledge file changes, while it runs. A question holding "snowpeak", a product
 * name no dictionary knows, is spoken before and after an entry about it is added to
 * the knowledge file: before, the recognizer cannot write the word; after, with no
 * restart, it does. A knowledge file that then fails validation keeps the model
 * that works. Real parts only: espeak-ng speaks, PocketSphinx listens, lmgen builds.
 *
 * Environment (from services/stt/meson.build): ESPEAK_NG, FFMPEG, STT_KNOWLEDGE_JSON
 * (the shipped knowledge base, copied and changed in a temporary directory). */
#include "stt_backend.h"
#include "test_stt_media.h"

#include <cjson/cJSON.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* "snowpeak" is not in cmudict: lmgen spells it as "snow" + "peak". */
static const char QUESTION[] = "do you sell the snowpeak kettle";
static const char NEW_WORD[] = "snowpeak";

static media_t media;
static stt_backend_t *backend;
static char knowledge_path[300];

static double now_ms(void)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double) now.tv_sec * 1000.0 + (double) now.tv_nsec / 1e6;
}

/* Writes `text` as the knowledge file by rename, as an editor or a deploy does, so
 * the backend sees a new version of the file (new inode) whatever the clock says. */
static void knowledge_write(const char *text)
{
  char temporary[320];
  snprintf(temporary, sizeof temporary, "%s.new", knowledge_path);
  FILE *file = fopen(temporary, "w");
  assert_non_null(file);
  assert_int_equal(fputs(text, file) >= 0, 1);
  assert_int_equal(fclose(file), 0);
  assert_int_equal(rename(temporary, knowledge_path), 0);
}

/* The shipped knowledge base, plus an entry about the kettle when `with_kettle`. */
static char *knowledge_text(bool with_kettle)
{
  const char *source = getenv("STT_KNOWLEDGE_JSON");
  assert_non_null(source);
  FILE *file = fopen(source, "rb");
  assert_non_null(file);
  char *text = calloc(1, 4 * 1024 * 1024);
  assert_non_null(text);
  size_t length = fread(text, 1, 4 * 1024 * 1024 - 1, file);
  fclose(file);
  assert_true(length > 0);
  cJSON *root = cJSON_Parse(text);
  free(text);
  assert_non_null(root);
  if (with_kettle) {
    cJSON *entry = cJSON_CreateObject();
    cJSON *questions = cJSON_AddArrayToObject(entry, "questions");
    assert_non_null(questions);
    assert_non_null(cJSON_AddStringToObject(entry, "id", "kettles"));
    cJSON_AddItemToArray(questions, cJSON_CreateString(QUESTION));
    cJSON_AddItemToArray(questions, cJSON_CreateString("where can i find the snowpeak kettle"));
    assert_non_null(cJSON_AddStringToObject(entry, "answer",
                                            "Yes, the Snowpeak kettle is in aisle three."));
    assert_true(cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(root, "entries"), entry));
  }
  char *printed = cJSON_Print(root);
  cJSON_Delete(root);
  assert_non_null(printed);
  return printed;
}

/* Speaks the question and returns what the backend heard (malloc'd). */
static char *hear_question(void)
{
  assert_int_equal(media_speak(&media, QUESTION, "question.wav"), 0);
  size_t size = 0;
  uint8_t *audio = media_load(&media, "question.wav", &size);
  assert_non_null(audio);
  stt_result_t result = {0};
  stage_error_t err = {0};
  double start = now_ms();
  int rc = backend->transcribe(backend, audio, size, "audio/wav", &result, &err);
  free(audio);
  if (rc != 0)
    fail_msg("transcribe: %s %s", err.code, err.message);
  printf("# heard \"%s\" in %.0f ms (a rebuild included when the file changed)\n", result.text,
         now_ms() - start);
  return result.text;
}

static int group_setup(void **state)
{
  (void) state;
  if (media_init(&media) != 0)
    return -1;
  media_path(&media, "knowledge.json", knowledge_path, sizeof knowledge_path);
  /* The backend follows this file; rebuilt models go to the same scratch directory. */
  if (setenv("KNOWLEDGE_FILE", knowledge_path, 1) != 0 ||
      setenv("STT_LM_DIR", media.dir, 1) != 0 || unsetenv("STT_LM") != 0 ||
      unsetenv("STT_DICT") != 0)
    return -1;
  return 0;
}

static int group_teardown(void **state)
{
  (void) state;
  if (backend)
    backend->destroy(&backend);
  media_cleanup(&media);
  return 0;
}

/* Before the entry exists the word is not in the model: it cannot be heard. */
static void test_unknown_word_not_heard(void **state)
{
  (void) state;
  char *text = knowledge_text(false);
  knowledge_write(text);
  free(text);
  stage_error_t err = {0};
  backend = stt_pocketsphinx_new(&err);
  if (!backend)
    fail_msg("stt_pocketsphinx_new: %s %s", err.code, err.message);
  char *heard = hear_question();
  bool found = strstr(heard, NEW_WORD) != NULL;
  free(heard);
  assert_false(found);
}

/* The entry is added while the backend runs: the next job hears the new word. */
static void test_new_entry_heard_after_rebuild(void **state)
{
  (void) state;
  char *text = knowledge_text(true);
  knowledge_write(text);
  free(text);
  char *heard = hear_question();
  bool found = strstr(heard, NEW_WORD) != NULL;
  free(heard);
  assert_true(found);
}

/* A knowledge file that fails validation is reported and the working model stays. */
static void test_broken_knowledge_keeps_model(void **state)
{
  (void) state;
  knowledge_write("{\"name\": \"Brightside\", \"entries\": [{\"id\": \"kettles\"}]}");
  char *heard = hear_question();
  bool found = strstr(heard, NEW_WORD) != NULL;
  free(heard);
  assert_true(found);
}

int main(void)
{
  /* In order: each test changes the file the previous one left. */
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_unknown_word_not_heard),
    cmocka_unit_test(test_new_entry_heard_after_rebuild),
    cmocka_unit_test(test_broken_knowledge_keeps_model),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
