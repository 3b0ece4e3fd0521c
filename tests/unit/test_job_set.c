/* job_set tests (services/broker/job_set.c): remembering until a time, extending,
 * forgetting, expiring, and the bound. The broker's use of it (cancelled jobs, a
 * job's later entries side by side) is tested in test_broker.c. */
#include "job_set.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

static void test_remember_forget_and_expire(void **state)
{
  (void) state;
  job_set_t *set = job_set_new(10);
  assert_non_null(set);
  assert_false(job_set_contains(set, "a"));
  assert_int_equal(job_set_remember(set, "a", 1000), 0);
  assert_int_equal(job_set_remember(set, "b", 2000), 0);
  assert_true(job_set_contains(set, "a"));
  assert_int_equal(job_set_size(set), 2);

  job_set_forget_expired(set, 1000);          /* "until 1000" still holds at 1000 */
  assert_true(job_set_contains(set, "a"));
  job_set_forget_expired(set, 1001);
  assert_false(job_set_contains(set, "a"));
  assert_true(job_set_contains(set, "b"));

  assert_int_equal(job_set_remember(set, "b", 500), 0); /* an earlier time never shortens */
  job_set_forget_expired(set, 1500);
  assert_true(job_set_contains(set, "b"));
  assert_int_equal(job_set_remember(set, "b", 3000), 0); /* a later one extends */
  job_set_forget_expired(set, 2500);
  assert_true(job_set_contains(set, "b"));

  job_set_forget(set, "b");
  job_set_forget(set, "never there");
  assert_int_equal(job_set_size(set), 0);
  job_set_destroy(&set);
  assert_null(set);
  job_set_destroy(&set);
}

static void test_full_set_forgets_the_soonest(void **state)
{
  (void) state;
  job_set_t *set = job_set_new(3);
  assert_non_null(set);
  assert_int_equal(job_set_remember(set, "late", 9000), 0);
  assert_int_equal(job_set_remember(set, "soon", 1000), 0);
  assert_int_equal(job_set_remember(set, "middle", 5000), 0);
  assert_int_equal(job_set_remember(set, "new", 7000), 0);
  assert_int_equal(job_set_size(set), 3);
  assert_false(job_set_contains(set, "soon"));
  assert_true(job_set_contains(set, "late"));
  assert_true(job_set_contains(set, "middle"));
  assert_true(job_set_contains(set, "new"));

  char id[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(id, sizeof id, "job-%d", i);
    assert_int_equal(job_set_remember(set, id, 10000 + i), 0);
  }
  assert_int_equal(job_set_size(set), 3);
  assert_true(job_set_contains(set, "job-999"));
  assert_false(job_set_contains(set, "late"));
  job_set_destroy(&set);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_remember_forget_and_expire),
    cmocka_unit_test(test_full_set_forgets_the_soonest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
