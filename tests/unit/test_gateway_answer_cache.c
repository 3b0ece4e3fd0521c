/* Unit tests for answer_cache in memory: hits by reply and character, least
 * recently used eviction, expiry, and the lifetime rule against the media TTL.
 * (The Redis kind is tested with a real server in test_gateway_redis.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "answer_cache.h"

#define T0 1700000000000LL
#define TTL 60000

static cached_answer_t answer(const char *name)
{
  cached_answer_t value = {{0}, {0}};
  snprintf(value.video_url, sizeof value.video_url, "/media/%s.mp4", name);
  snprintf(value.audio_url, sizeof value.audio_url, "/media/%s.wav", name);
  return value;
}

static void test_hit_by_reply_and_character(void **state)
{
  (void) state;
  answer_cache_t *cache = answer_cache_new(8, TTL);
  assert_non_null(cache);
  cached_answer_t a = answer("a"), got;
  assert_int_equal(answer_cache_put(cache, "We open at nine.", "", &a, T0), 0);
  assert_true(answer_cache_get(cache, "We open at nine.", "", T0 + 1, &got));
  assert_string_equal(got.video_url, "/media/a.mp4");
  assert_string_equal(got.audio_url, "/media/a.wav");
  assert_true(answer_cache_get(cache, "We open at nine.", NULL, T0 + 1, &got)); /* NULL = "" */
  /* Another character's face and voice, or other words, are another answer. */
  assert_false(answer_cache_get(cache, "We open at nine.", "robot", T0 + 1, &got));
  assert_false(answer_cache_get(cache, "We open at nine", "", T0 + 1, &got));
  /* "ab"+"c" must not collide with "a"+"bc". */
  assert_int_equal(answer_cache_put(cache, "c", "ab", &a, T0), 0);
  assert_false(answer_cache_get(cache, "bc", "a", T0 + 1, &got));
  assert_false(answer_cache_get(cache, "", "", T0 + 1, &got));
  answer_cache_destroy(&cache);
  assert_null(cache);
}

static void test_refuses_empty(void **state)
{
  (void) state;
  answer_cache_t *cache = answer_cache_new(8, TTL);
  cached_answer_t none = {{0}, {0}}, a = answer("a");
  assert_int_equal(answer_cache_put(cache, "Hello.", "", &none, T0), -1); /* no video */
  assert_int_equal(answer_cache_put(cache, "", "", &a, T0), -1);
  assert_int_equal(answer_cache_put(cache, NULL, "", &a, T0), -1);
  answer_cache_destroy(&cache);
}

static void test_least_recently_used_goes_first(void **state)
{
  (void) state;
  answer_cache_t *cache = answer_cache_new(3, TTL);
  cached_answer_t got, values[4] = {answer("0"), answer("1"), answer("2"), answer("3")};
  const char *replies[4] = {"zero", "one", "two", "three"};
  for (int i = 0; i < 3; i++)
    assert_int_equal(answer_cache_put(cache, replies[i], "", &values[i], T0 + i), 0);
  /* "zero" is used again, so "one" is now the least recently used. */
  assert_true(answer_cache_get(cache, "zero", "", T0 + 10, &got));
  assert_int_equal(answer_cache_put(cache, replies[3], "", &values[3], T0 + 11), 0);
  assert_false(answer_cache_get(cache, "one", "", T0 + 12, &got));
  assert_true(answer_cache_get(cache, "zero", "", T0 + 12, &got));
  assert_true(answer_cache_get(cache, "two", "", T0 + 12, &got));
  assert_true(answer_cache_get(cache, "three", "", T0 + 12, &got));
  /* Putting an answer again replaces it without evicting another. */
  cached_answer_t newer = answer("2b");
  assert_int_equal(answer_cache_put(cache, "two", "", &newer, T0 + 13), 0);
  assert_true(answer_cache_get(cache, "two", "", T0 + 14, &got));
  assert_string_equal(got.video_url, "/media/2b.mp4");
  assert_true(answer_cache_get(cache, "zero", "", T0 + 14, &got));
  assert_true(answer_cache_get(cache, "three", "", T0 + 14, &got));
  answer_cache_destroy(&cache);
}

static void test_expires_with_its_render(void **state)
{
  (void) state;
  answer_cache_t *cache = answer_cache_new(8, TTL);
  cached_answer_t a = answer("a"), got;
  assert_int_equal(answer_cache_put(cache, "Hi.", "", &a, T0), 0);
  /* Use does not extend it: the files behind it age all the same. */
  assert_true(answer_cache_get(cache, "Hi.", "", T0 + TTL - 1, &got));
  assert_false(answer_cache_get(cache, "Hi.", "", T0 + TTL, &got));
  assert_false(answer_cache_get(cache, "Hi.", "", T0 + TTL - 1, &got)); /* dropped */
  answer_cache_destroy(&cache);
}

static void test_lifetime_is_shorter_than_the_media(void **state)
{
  (void) state;
  assert_int_equal(answer_cache_ttl_for_media(3600000), 3000000); /* 10 minutes' margin */
  assert_int_equal(answer_cache_ttl_for_media(60000), 30000);     /* half of a short TTL */
  assert_true(answer_cache_ttl_for_media(1000) > 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_hit_by_reply_and_character),
    cmocka_unit_test(test_refuses_empty),
    cmocka_unit_test(test_least_recently_used_goes_first),
    cmocka_unit_test(test_expires_with_its_render),
    cmocka_unit_test(test_lifetime_is_shorter_than_the_media),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
