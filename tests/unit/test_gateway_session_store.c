/* Unit tests of gateway/session_store: opening sessions, turns appended once per
 * job, the sliding window of turns, deletion and expiry, and the bound on the
 * number of sessions (least recently used evicted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_store.h"

#define T0 1700000000000LL

static void test_open_new_and_requested(void **state)
{
  (void) state;
  session_store_t *store = session_store_new(10, 60000);
  char id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(store, NULL, T0, id), 0);
  assert_int_equal(strlen(id), 32);
  assert_true(id_is_valid(id));
  char other[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(store, "", T0, other), 0);
  assert_string_not_equal(id, other);
  assert_int_equal(session_store_open(store, "my-session_1", T0, other), 0);
  assert_string_equal(other, "my-session_1");
  assert_int_equal(session_store_open(store, "../etc/passwd", T0, other), -1);
  assert_int_equal(session_store_open(store, "has space", T0, other), -1);
  char too_long[80];
  memset(too_long, 'a', sizeof too_long - 1);
  too_long[sizeof too_long - 1] = '\0';
  assert_int_equal(session_store_open(store, too_long, T0, other), -1);
  cJSON *json = session_store_render(store, "my-session_1", T0);
  char *text = cJSON_PrintUnformatted(json);
  assert_string_equal(text, "{\"session_id\":\"my-session_1\",\"turns\":[]}");
  free(text);
  cJSON_Delete(json);
  session_store_destroy(&store);
  assert_null(store);
}

static void test_append_once_per_job(void **state)
{
  (void) state;
  session_store_t *store = session_store_new(10, 60000);
  char id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(store, "s1", T0, id), 0);
  session_store_append_exchange(store, "s1", "j1", "hello", "Hi there!", T0 + 1);
  session_store_append_exchange(store, "s1", "j1", "hello", "Hi there!", T0 + 2);
  session_store_append_exchange(store, "s1", "j2", "bye", NULL, T0 + 3);
  cJSON *json = session_store_render(store, "s1", T0 + 4);
  char *text = cJSON_PrintUnformatted(json);
  assert_string_equal(text,
                      "{\"session_id\":\"s1\",\"turns\":["
                      "{\"role\":\"user\",\"text\":\"hello\",\"job_id\":\"j1\"},"
                      "{\"role\":\"assistant\",\"text\":\"Hi there!\",\"job_id\":\"j1\"},"
                      "{\"role\":\"user\",\"text\":\"bye\",\"job_id\":\"j2\"}]}");
  free(text);
  cJSON_Delete(json);

  session_turn_t *turns;
  size_t count;
  assert_int_equal(session_store_turns(store, "s1", T0 + 5, &turns, &count), 0);
  assert_int_equal(count, 3);
  assert_string_equal(turns[1].role, "assistant");
  assert_string_equal(turns[1].text, "Hi there!");
  assert_string_equal(turns[2].job_id, "j2");
  session_turns_free(turns, count);

  assert_int_equal(session_store_turns(store, "unknown", T0, &turns, &count), 0);
  assert_null(turns);
  assert_int_equal(count, 0);
  /* A session that is gone is not brought back by a late answer. */
  session_store_append_exchange(store, "unknown", "j3", "q", "a", T0);
  assert_null(session_store_render(store, "unknown", T0));
  session_store_destroy(&store);
}

static void test_window_keeps_last_turns(void **state)
{
  (void) state;
  session_store_t *store = session_store_new(3, 60000);
  char id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(store, "s", T0, id), 0);
  char job[16], question[16], reply[16];
  for (int i = 0; i < 5; i++) {
    snprintf(job, sizeof job, "j%d", i);
    snprintf(question, sizeof question, "q%d", i);
    snprintf(reply, sizeof reply, "a%d", i);
    session_store_append_exchange(store, "s", job, question, reply, T0 + i);
  }
  session_turn_t *turns;
  size_t count;
  assert_int_equal(session_store_turns(store, "s", T0 + 10, &turns, &count), 0);
  assert_int_equal(count, 3);
  assert_string_equal(turns[0].text, "a3");
  assert_string_equal(turns[1].text, "q4");
  assert_string_equal(turns[2].text, "a4");
  session_turns_free(turns, count);
  session_store_destroy(&store);
}

static void test_delete_and_expiry(void **state)
{
  (void) state;
  session_store_t *store = session_store_new(10, 1000);
  char id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(store, "a", T0, id), 0);
  assert_int_equal(session_store_open(store, "b", T0, id), 0);
  assert_int_equal(session_store_open(store, "c", T0, id), 0);
  assert_true(session_store_delete(store, "a", T0));
  assert_false(session_store_delete(store, "a", T0));
  assert_null(session_store_render(store, "a", T0));
  /* Use keeps a session alive; idleness expires it. */
  assert_int_equal(session_store_open(store, "b", T0 + 800, id), 0);
  session_store_append_exchange(store, "b", "j1", "q", "a", T0 + 800);
  assert_null(session_store_render(store, "c", T0 + 1001));
  assert_int_equal(session_store_expire(store, T0 + 1500), 0);
  assert_int_equal(session_store_expire(store, T0 + 1801), 1);
  assert_null(session_store_render(store, "b", T0 + 1801));
  /* An expired id may be opened again and starts empty. */
  assert_int_equal(session_store_open(store, "b", T0 + 2000, id), 0);
  session_turn_t *turns;
  size_t count;
  assert_int_equal(session_store_turns(store, "b", T0 + 2000, &turns, &count), 0);
  assert_int_equal(count, 0);
  session_store_destroy(&store);
}

static size_t turn_count(session_store_t *store, const char *id, int64_t now_ms)
{
  session_turn_t *turns;
  size_t count;
  assert_int_equal(session_store_turns(store, id, now_ms, &turns, &count), 0);
  session_turns_free(turns, count);
  return count;
}

static void test_cap_evicts_least_recently_used(void **state)
{
  (void) state;
  session_store_t *store = session_store_new(10, 60000);
  session_store_set_max_sessions(store, 3);
  char id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(store, "a", T0, id), 0);
  assert_int_equal(session_store_open(store, "b", T0 + 1, id), 0);
  assert_int_equal(session_store_open(store, "c", T0 + 2, id), 0);
  /* "a" is the oldest created but was used last; "c" answered; "b" is idle. */
  session_store_append_exchange(store, "a", "ja", "qa", "ra", T0 + 3);
  session_store_append_exchange(store, "c", "jc", "qc", "rc", T0 + 4);
  assert_int_equal(session_store_evicted(store), 0);
  assert_int_equal(session_store_open(store, "d", T0 + 5, id), 0);
  size_t count = 0;
  assert_true(session_store_count(store, &count));
  assert_int_equal(count, 3);
  assert_int_equal(session_store_evicted(store), 1);
  assert_null(session_store_render(store, "b", T0 + 6));
  assert_int_equal(turn_count(store, "a", T0 + 6), 2);
  assert_int_equal(turn_count(store, "c", T0 + 6), 2);
  cJSON *json = session_store_render(store, "d", T0 + 6);
  assert_non_null(json);
  cJSON_Delete(json);
  /* Opening an existing session makes it the most recent; "c" goes next. */
  assert_int_equal(session_store_open(store, "a", T0 + 7, id), 0);
  assert_int_equal(session_store_open(store, "e", T0 + 8, id), 0);
  assert_null(session_store_render(store, "c", T0 + 9));
  assert_int_equal(turn_count(store, "a", T0 + 9), 2);
  assert_int_equal(session_store_evicted(store), 2);
  /* A deleted session frees its place without an eviction. */
  assert_true(session_store_delete(store, "d", T0 + 10));
  assert_int_equal(session_store_open(store, "f", T0 + 11, id), 0);
  assert_int_equal(session_store_evicted(store), 2);
  assert_non_null(json = session_store_render(store, "e", T0 + 12));
  cJSON_Delete(json);
  session_store_destroy(&store);
}

static void test_cap_drops_expired_before_live(void **state)
{
  (void) state;
  session_store_t *store = session_store_new(10, 1000);
  session_store_set_max_sessions(store, 2);
  char id[SESSION_ID_MAX + 1];
  assert_int_equal(session_store_open(store, "old", T0, id), 0);
  assert_int_equal(session_store_open(store, "live", T0 + 900, id), 0);
  /* "old" expired before the store filled: dropping it is expiry, not eviction. */
  assert_int_equal(session_store_open(store, "new", T0 + 1500, id), 0);
  assert_int_equal(session_store_evicted(store), 0);
  cJSON *json = session_store_render(store, "live", T0 + 1500);
  assert_non_null(json);
  cJSON_Delete(json);
  /* The sweep walks the recency list: only "live" has expired by T0 + 2000. */
  assert_int_equal(session_store_expire(store, T0 + 2000), 1);
  size_t count = 0;
  assert_true(session_store_count(store, &count));
  assert_int_equal(count, 1);
  assert_int_equal(session_store_expire(store, T0 + 2600), 1);
  assert_true(session_store_count(store, &count));
  assert_int_equal(count, 0);
  session_store_destroy(&store);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_open_new_and_requested),
    cmocka_unit_test(test_append_once_per_job),
    cmocka_unit_test(test_window_keeps_last_turns),
    cmocka_unit_test(test_delete_and_expiry),
    cmocka_unit_test(test_cap_evicts_least_recently_used),
    cmocka_unit_test(test_cap_drops_expired_before_live),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
