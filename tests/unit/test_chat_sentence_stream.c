/* Unit tests for sentence_stream: sentences of a reply handed on while it is
 * written. The cuts must be those of sentences_split on the whole reply whatever
 * the pieces (one byte at a time, inside UTF-8 sequences, uneven sizes); each
 * sentence must go on as soon as the next one has begun, not at the end; only
 * the last carries `last`; the sentence cap and a failing receiver hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sentence_stream.h"
#include "sentences.h"

#define MAX 32

/* What the receiver saw: the sentences joined with '|', and when. */
typedef struct {
  char joined[2048];
  size_t used;
  size_t count;
  size_t last_count;        /* sentences flagged last */
  size_t fed_at_first;      /* bytes fed when the first sentence arrived */
  size_t fed;               /* bytes fed so far */
  long fail_at;             /* index at which the receiver fails, -1 never */
} seen_t;

static int receive(void *arg, const char *text, size_t size, size_t index, bool last,
                   stage_error_t *err)
{
  seen_t *seen = arg;
  assert_int_equal(index, seen->count);
  assert_true(size > 0);
  assert_false(text[0] == ' ' || text[size - 1] == ' ');
  if ((long) index == seen->fail_at)
    return stage_error_set(err, "backend_error", "tts queue is gone");
  if (seen->count == 0)
    seen->fed_at_first = seen->fed;
  seen->used += (size_t) snprintf(seen->joined + seen->used, sizeof seen->joined - seen->used,
                                  "%s%.*s", index ? "|" : "", (int) size, text);
  seen->count++;
  seen->last_count += last;
  return 0;
}

/* Streams `text` in pieces cycling through `pieces` sizes; fills `seen`. */
static void stream(const char *text, const size_t *pieces, size_t piece_count, size_t max,
                   seen_t *seen)
{
  memset(seen, 0, sizeof *seen);
  seen->fail_at = -1;
  sentence_stream_t *s = sentence_stream_new(max, receive, seen);
  assert_non_null(s);
  stage_error_t err = {0};
  size_t len = strlen(text), at = 0, turn = 0;
  while (at < len) {
    size_t n = pieces[turn++ % piece_count];
    if (n > len - at)
      n = len - at;
    seen->fed = at + n;
    assert_int_equal(sentence_stream_feed(s, text + at, n, &err), 0);
    at += n;
  }
  assert_int_equal(sentence_stream_finish(s, &err), 0);
  assert_int_equal(sentence_stream_count(s), seen->count);
  sentence_stream_destroy(&s);
  assert_null(s);
}

/* sentences_split's cuts of the whole text, joined with '|'. */
static void whole_split(const char *text, size_t max, char *out, size_t size)
{
  sentence_span_t spans[MAX];
  size_t count = sentences_split(text, spans, max), used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < count; i++)
    used += (size_t) snprintf(out + used, size - used, "%s%.*s", i ? "|" : "",
                              (int) spans[i].length, text + spans[i].start);
}

static const char *const REPLIES[] = {
  "We are open Monday to Friday. Saturdays we close at noon! Is there anything else?",
  "Sure! Our office at 12 Main St. opens at 9 a.m. and the fee is $4.99 per month. Thanks!",
  "Thanks for asking about returns, we accept them within thirty days of delivery, no "
    "questions asked. Just bring the receipt.",
  "Dr. Smith sees patients on Tue. and Thu. afternoons. Call us (555 0100) to book.\n"
    "Bring your card. \"We'll be glad to help.\" Anything else?",
  "Il caff\xc3\xa8 costa due euro. Le cr\xc3\xaapes sont d\xc3\xa9licieuses \xe2\x80\x94 "
    "essayez-les! \xf0\x9f\x98\x80 Bon app\xc3\xa9tit, mes amis.",
  "   ",
  "One short.",
};

static void test_same_cuts_as_the_whole_reply(void **state)
{
  (void) state;
  static const size_t one[] = {1};
  static const size_t uneven[] = {1, 3, 2, 7, 5, 11, 4, 13, 6, 17};
  static const size_t words[] = {5, 9, 23};
  const size_t *patterns[] = {one, uneven, words};
  const size_t pattern_sizes[] = {1, 10, 3};
  for (size_t r = 0; r < sizeof REPLIES / sizeof *REPLIES; r++) {
    char expected[2048];
    whole_split(REPLIES[r], MAX, expected, sizeof expected);
    for (size_t p = 0; p < 3; p++) {
      seen_t seen;
      stream(REPLIES[r], patterns[p], pattern_sizes[p], MAX, &seen);
      printf("# [%zu/%zu] %s\n", r, p, seen.joined);
      assert_string_equal(seen.joined, expected);
      assert_int_equal(seen.last_count, seen.count ? 1 : 0);
    }
  }
}

static void test_sentences_go_on_before_the_end(void **state)
{
  (void) state;
  static const size_t one[] = {1};
  const char *text = "We are open Monday to Friday. Saturdays we close at noon! "
                     "Is there anything else I can help you with today?";
  seen_t seen;
  stream(text, one, 1, MAX, &seen);
  assert_int_equal(seen.count, 3);
  /* The first went on once the second had begun with enough words to stand alone. */
  size_t second = strlen("We are open Monday to Friday. ");
  printf("# first sentence after %zu of %zu bytes\n", seen.fed_at_first, strlen(text));
  assert_true(seen.fed_at_first > second);
  assert_true(seen.fed_at_first <= second + SENTENCE_MIN_BYTES + 1);
}

static void test_long_first_sentence_goes_on_after_its_first_clause(void **state)
{
  (void) state;
  static const size_t one[] = {1};
  const char *text = "Thanks for asking about returns, we accept them within thirty days of "
                     "delivery, no questions asked, and refunds take five days";
  seen_t seen;
  stream(text, one, 1, MAX, &seen);
  assert_string_equal(seen.joined, "Thanks for asking about returns,|we accept them within "
                      "thirty days of delivery, no questions asked, and refunds take five days");
  /* The clause went on while the sentence was still being written. */
  assert_true(seen.fed_at_first < strlen(text) / 2 + SENTENCE_MIN_BYTES * 2);
  /* Later long sentences are not cut. */
  stream("Our returns policy is simple. Thanks for asking about returns, we accept them "
         "within thirty days of delivery, no questions asked.", one, 1, MAX, &seen);
  assert_int_equal(seen.count, 2);
}

static void test_cap_puts_the_rest_in_the_last(void **state)
{
  (void) state;
  static const size_t uneven[] = {1, 3, 2, 7, 5, 11, 4, 13, 6, 17};
  const char *text = "This is sentence one here. This is sentence two here. "
                     "This is sentence three here. This is sentence four here.";
  seen_t seen;
  stream(text, uneven, 10, 2, &seen);
  assert_string_equal(seen.joined, "This is sentence one here.|This is sentence two here. "
                      "This is sentence three here. This is sentence four here.");
  assert_int_equal(seen.last_count, 1);
  stream(text, uneven, 10, 1, &seen);
  assert_int_equal(seen.count, 1);
}

static void test_receiver_failure_stops(void **state)
{
  (void) state;
  seen_t seen = {.fail_at = 1};
  sentence_stream_t *s = sentence_stream_new(MAX, receive, &seen);
  assert_non_null(s);
  stage_error_t err = {0};
  const char *text = "We are open Monday to Friday. Saturdays we close at noon! "
                     "Is there anything else I can help you with today?";
  int rc = 0;
  for (size_t at = 0; text[at] && rc == 0; at++)
    rc = sentence_stream_feed(s, text + at, 1, &err);
  assert_int_equal(rc, -1);
  assert_string_equal(err.code, "backend_error");
  assert_int_equal(sentence_stream_count(s), 1);
  sentence_stream_destroy(&s);
}

static void test_nul_bytes_do_not_hide_text(void **state)
{
  (void) state;
  seen_t seen = {.fail_at = -1};
  sentence_stream_t *s = sentence_stream_new(MAX, receive, &seen);
  assert_non_null(s);
  stage_error_t err = {0};
  static const char text[] = "We are open all week\0long. Is there anything else today?";
  assert_int_equal(sentence_stream_feed(s, text, sizeof text - 1, &err), 0);
  assert_int_equal(sentence_stream_finish(s, &err), 0);
  assert_string_equal(seen.joined, "We are open all week long.|Is there anything else today?");
  sentence_stream_destroy(&s);
  sentence_stream_destroy(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_same_cuts_as_the_whole_reply),
    cmocka_unit_test(test_sentences_go_on_before_the_end),
    cmocka_unit_test(test_long_first_sentence_goes_on_after_its_first_clause),
    cmocka_unit_test(test_cap_puts_the_rest_in_the_last),
    cmocka_unit_test(test_receiver_failure_stops),
    cmocka_unit_test(test_nul_bytes_do_not_hide_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
