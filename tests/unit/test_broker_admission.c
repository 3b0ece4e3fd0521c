/* Admission tests: the wait estimator and the admission rule on their own
 * (services/broker/admission.c). The broker applying them is tested in
 * test_broker.c. */
#include "admission.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void test_service_time_average(void **state)
{
  (void) state;
  service_time_t service = {0};
  service_time_add(&service, 100);
  assert_int_equal(service.samples, 1);
  assert_true(service.average_ms == 100.0); /* the first sample is the average */
  service_time_add(&service, 200);
  /* 100 + 0.2 x (200 - 100) */
  assert_true(service.average_ms > 119.999 && service.average_ms < 120.001);
  service_time_add(&service, -50); /* a clock step back counts as 0, never negative */
  assert_true(service.average_ms > 95.999 && service.average_ms < 96.001);
  assert_int_equal(service.samples, 3);
}

static void test_wait_sums_stages_per_worker(void **state)
{
  (void) state;
  stage_load_t stages[] = {
    {.queued = 3, .workers = 2, .service_ms = 1000, .in_flight_ms = 500}, /* (3000 + 500) / 2 */
    {.queued = 2, .workers = 0, .service_ms = 0, .in_flight_ms = 300},    /* unknown: in flight only */
    {.queued = 0, .workers = 1, .service_ms = 5000, .in_flight_ms = 0},   /* idle */
  };
  assert_int_equal(admission_wait_ms(stages, 3), 1750 + 300);
  assert_int_equal(admission_wait_ms(stages, 0), 0);
  stage_load_t huge = {.queued = 1000000, .workers = 1, .service_ms = 1e12};
  assert_true(admission_wait_ms(&huge, 1) > 0); /* saturates instead of overflowing */
}

static void test_admits_within_share(void **state)
{
  (void) state;
  int64_t retry = -1;
  assert_true(admission_admits(2000, 4000, 50, &retry)); /* exactly half: still in */
  assert_int_equal(retry, -1);
  assert_false(admission_admits(2050, 4000, 50, &retry));
  assert_int_equal(retry, 1000); /* 50 ms over: the minimum of a second */
  assert_false(admission_admits(30000, 10000, 50, &retry));
  assert_int_equal(retry, 10000); /* 25 s over, capped at the time left */
  assert_false(admission_admits(9000, 10000, 50, &retry));
  assert_int_equal(retry, 4000);
  assert_true(admission_admits(INT64_MAX / 2, 10, 0, NULL)); /* 0%: admission by time is off */
  assert_true(admission_admits(9000, 10000, 250, NULL));     /* above 100 counts as 100 */
  assert_false(admission_admits(10001, 10000, 250, NULL));
  assert_true(admission_admits(1000, INT64_MAX, 100, NULL)); /* no overflow far out */
  assert_false(admission_admits(1, 0, 50, NULL));            /* no time left */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_service_time_average),
    cmocka_unit_test(test_wait_sums_stages_per_worker),
    cmocka_unit_test(test_admits_within_share),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
