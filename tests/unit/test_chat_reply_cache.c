/* Unit tests for reply_cache: hits for the same words however they are typed,
 * misses for other questions, least recently used eviction, expiry, forgetting
 * everything when the knowledge file changes, what is not kept, and the
 * reply_cache{hit,miss} counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "reply_cache.h"
#include "text.h"

static double counter(const char *label)
{
  cJSON *snapshot = counters_snapshot();
  const cJSON *value = cJSON_GetObjectItemCaseSensitive(
    cJSON_GetObjectItemCaseSensitive(snapshot, "reply_cache"), label);
  double n = cJSON_IsNumber(value) ? value->valuedouble : 0;
  cJSON_Delete(snapshot);
  return n;
}

static void test_same_words_hit(void **state)
{
  (void) state;
  reply_cache_t *cache = reply_cache_new(8, 600, NULL);
  assert_non_null(cache);
  double hits = counter("hit"), misses = counter("miss");
  assert_null(reply_cache_get(cache, "What are your office hours?"));
  assert_int_equal(reply_cache_put(cache, "What are your office hours?", "Nine to five."), 0);
  const char *reply = reply_cache_get(cache, "  what are your OFFICE hours ");
  assert_non_null(reply);
  assert_string_equal(reply, "Nine to five.");
  assert_null(reply_cache_get(cache, "what are your weekend hours"));
  assert_int_equal(counter("hit") - hits, 1);
  assert_int_equal(counter("miss") - misses, 2);
  /* A new answer to the same question replaces the old one. */
  assert_int_equal(reply_cache_put(cache, "what are your office hours", "Eight to six."), 0);
  assert_int_equal(reply_cache_size(cache), 1);
  assert_string_equal(reply_cache_get(cache, "What are your office hours?"), "Eight to six.");
  reply_cache_destroy(&cache);
  assert_null(cache);
  reply_cache_destroy(&cache);
}

static void test_least_recently_used_goes_first(void **state)
{
  (void) state;
  reply_cache_t *cache = reply_cache_new(3, 600, NULL);
  assert_non_null(cache);
  assert_int_equal(reply_cache_put(cache, "do you ship to canada", "Yes."), 0);
  assert_int_equal(reply_cache_put(cache, "where are you", "Main Street."), 0);
  assert_int_equal(reply_cache_put(cache, "what is your phone number", "555 0100."), 0);
  assert_non_null(reply_cache_get(cache, "do you ship to canada"));   /* used again */
  assert_int_equal(reply_cache_put(cache, "can i return an item", "Within thirty days."), 0);
  assert_int_equal(reply_cache_size(cache), 3);
  assert_null(reply_cache_get(cache, "where are you"));
  assert_non_null(reply_cache_get(cache, "do you ship to canada"));
  assert_non_null(reply_cache_get(cache, "what is your phone number"));
  assert_non_null(reply_cache_get(cache, "can i return an item"));
  reply_cache_destroy(&cache);
}

static void test_entries_expire(void **state)
{
  (void) state;
  reply_cache_t *cache = reply_cache_new(4, 1, NULL);
  assert_non_null(cache);
  assert_int_equal(reply_cache_put(cache, "where are you", "Main Street."), 0);
  assert_non_null(reply_cache_get(cache, "where are you"));
  struct timespec wait = {1, 200000000L};
  nanosleep(&wait, NULL);
  assert_null(reply_cache_get(cache, "where are you"));
  assert_int_equal(reply_cache_size(cache), 0);
  reply_cache_destroy(&cache);
}

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

static void test_knowledge_change_forgets_everything(void **state)
{
  (void) state;
  char path[] = "/tmp/test_reply_cache_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  write_file(path, "{\"version\": 1}");
  reply_cache_t *cache = reply_cache_new(4, 600, path);
  assert_non_null(cache);
  assert_int_equal(reply_cache_put(cache, "where are you", "Main Street."), 0);
  assert_non_null(reply_cache_get(cache, "where are you"));
  write_file(path, "{\"version\": 22}");
  assert_null(reply_cache_get(cache, "where are you"));
  assert_int_equal(reply_cache_size(cache), 0);
  /* Answers from the new version are kept again. */
  assert_int_equal(reply_cache_put(cache, "where are you", "High Street."), 0);
  assert_string_equal(reply_cache_get(cache, "where are you"), "High Street.");
  assert_int_equal(unlink(path), 0);
  assert_null(reply_cache_get(cache, "where are you"));
  reply_cache_destroy(&cache);
}

static void test_what_is_not_kept(void **state)
{
  (void) state;
  reply_cache_t *cache = reply_cache_new(4, 600, NULL);
  assert_non_null(cache);
  assert_int_equal(reply_cache_put(cache, "?!", "Sorry?"), 0);
  assert_int_equal(reply_cache_put(cache, "", "Sorry?"), 0);
  size_t long_size = TEXT_MAX_BYTES + 100;
  char *long_question = malloc(long_size + 1);
  assert_non_null(long_question);
  for (size_t i = 0; i < long_size; i++)
    long_question[i] = i % 6 == 5 ? ' ' : 'a';
  long_question[long_size] = '\0';
  assert_int_equal(reply_cache_put(cache, long_question, "That is a lot."), 0);
  assert_int_equal(reply_cache_size(cache), 0);
  assert_null(reply_cache_get(cache, long_question));
  assert_null(reply_cache_get(cache, "?!"));
  free(long_question);
  reply_cache_destroy(&cache);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_same_words_hit),
    cmocka_unit_test(test_least_recently_used_goes_first),
    cmocka_unit_test(test_entries_expire),
    cmocka_unit_test(test_knowledge_change_forgets_everything),
    cmocka_unit_test(test_what_is_not_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
