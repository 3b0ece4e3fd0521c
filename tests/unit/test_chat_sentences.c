/* Unit tests for sentences: where a reply is cut for sentence streaming. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sentences.h"

#define MAX 32

/* Splits `text` and joins the spans with '|' into `out`; returns the count. */
static size_t split_joined(const char *text, size_t max, char *out, size_t out_size)
{
  sentence_span_t spans[MAX];
  size_t count = sentences_split(text, spans, max);
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < count; i++)
    used += (size_t) snprintf(out + used, out_size - used, "%s%.*s", i ? "|" : "",
                              (int) spans[i].length, text + spans[i].start);
  return count;
}

static void expect_split(const char *text, const char *joined)
{
  char out[1024];
  split_joined(text, MAX, out, sizeof out);
  assert_string_equal(out, joined);
}

static void test_plain_sentences(void **state)
{
  (void) state;
  expect_split("We are open Monday to Friday. Saturdays we close at noon! Is there anything else?",
               "We are open Monday to Friday.|Saturdays we close at noon!|Is there anything else?");
}

static void test_one_sentence_and_no_terminator(void **state)
{
  (void) state;
  expect_split("  Our phone number is 555 0100  ", "Our phone number is 555 0100");
  expect_split("Returns are free within thirty days.", "Returns are free within thirty days.");
}

static void test_empty(void **state)
{
  (void) state;
  sentence_span_t spans[4];
  assert_int_equal(sentences_split("", spans, 4), 0);
  assert_int_equal(sentences_split(" \n\t ", spans, 4), 0);
  assert_int_equal(sentences_split(NULL, spans, 4), 0);
}

static void test_abbreviations_and_numbers_do_not_cut(void **state)
{
  (void) state;
  expect_split("Dr. Smith sees patients from 9 a.m. until noon on weekdays. It costs $4.99 per visit.",
               "Dr. Smith sees patients from 9 a.m. until noon on weekdays.|It costs $4.99 per visit.");
  expect_split("Write to help@example.com for a refund. We answer within a day.",
               "Write to help@example.com for a refund.|We answer within a day.");
  expect_split("Bring some ID, e.g. your passport. Then come in.",
               "Bring some ID, e.g. your passport. Then come in.");
}

static void test_short_sentences_ride_along(void **state)
{
  (void) state;
  expect_split("Sure! We deliver to every address in the country. Thanks!",
               "Sure! We deliver to every address in the country. Thanks!");
  expect_split("Yes. Dogs are welcome in the shop. They must stay on a lead at all times.",
               "Yes. Dogs are welcome in the shop.|They must stay on a lead at all times.");
}

static void test_quotes_ellipsis_and_lines(void **state)
{
  (void) state;
  expect_split("He said \"we are closed today.\" Come back tomorrow morning...",
               "He said \"we are closed today.\"|Come back tomorrow morning...");
  expect_split("Our branches are open on these days:\nMonday to Friday, all day long\nSaturday mornings only",
               "Our branches are open on these days:|Monday to Friday, all day long|Saturday mornings only");
  expect_split("Really?! That is what the rules say, yes indeed.",
               "Really?! That is what the rules say, yes indeed.");
}

static void test_long_first_sentence_is_cut_after_a_clause(void **state)
{
  (void) state;
  expect_split("We're open Monday to Friday, 9 AM to 6 PM, and Saturday 10 AM to 2 PM. "
               "We're closed on Sundays and public holidays.",
               "We're open Monday to Friday,|9 AM to 6 PM, and Saturday 10 AM to 2 PM.|"
               "We're closed on Sundays and public holidays.");
  /* Only the first sentence, only at ", " with enough on both sides. */
  expect_split("Shipping costs 4,99 euros per parcel within the whole country. "
               "Delivery takes two days, three at most, for every parcel we send out.",
               "Shipping costs 4,99 euros per parcel within the whole country.|"
               "Delivery takes two days, three at most, for every parcel we send out.");
  expect_split("A long sentence without any clause boundary that goes on and on for a while.",
               "A long sentence without any clause boundary that goes on and on for a while.");
}

static void test_limit_keeps_the_rest_in_the_last(void **state)
{
  (void) state;
  char out[1024];
  size_t count = split_joined("The first sentence is here. The second sentence is here. "
                              "The third sentence is here. The fourth sentence is here.",
                              2, out, sizeof out);
  assert_int_equal(count, 2);
  assert_string_equal(out, "The first sentence is here.|The second sentence is here. "
                           "The third sentence is here. The fourth sentence is here.");
}

static void test_spans_stay_inside_the_text(void **state)
{
  (void) state;
  /* Odd inputs: every span lies inside the text and none is empty. */
  const char *texts[] = {".", "...", "?!?", "a. b. c.", "\"", ". Hello there everyone.",
                         "x.\n\n\ny!", "Mr. Mrs. Dr. St. etc."};
  for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
    sentence_span_t spans[MAX];
    size_t count = sentences_split(texts[t], spans, MAX);
    size_t length = strlen(texts[t]);
    for (size_t i = 0; i < count; i++) {
      assert_true(spans[i].length > 0);
      assert_true(spans[i].start + spans[i].length <= length);
      if (i)
        assert_true(spans[i].start >= spans[i - 1].start + spans[i - 1].length);
    }
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_plain_sentences),
    cmocka_unit_test(test_one_sentence_and_no_terminator),
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_abbreviations_and_numbers_do_not_cut),
    cmocka_unit_test(test_short_sentences_ride_along),
    cmocka_unit_test(test_quotes_ellipsis_and_lines),
    cmocka_unit_test(test_long_first_sentence_is_cut_after_a_clause),
    cmocka_unit_test(test_limit_keeps_the_rest_in_the_last),
    cmocka_unit_test(test_spans_stay_inside_the_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
