/* Unit tests of the chat text normaliser: stemming, contractions, numbers,
 * synonyms, follow-up detection, and hostile input. */
#include "text.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The terms of `text` joined by spaces, into `out` (`size` bytes). */
static void terms_of(const char *text, text_mode_t mode, char *out, size_t size)
{
  text_terms_t terms = { 0 };
  assert_int_equal(text_terms_append(&terms, text, mode), 0);
  out[0] = '\0';
  size_t used = 0;
  for (size_t i = 0; i < terms.count; i++) {
    int written = snprintf(out + used, size - used, "%s%s", i ? " " : "", terms.items[i]);
    assert_true(written > 0 && (size_t) written < size - used);
    used += (size_t) written;
  }
  text_terms_clear(&terms);
}

static void assert_same_terms(const char *a, const char *b)
{
  char terms_a[512], terms_b[512];
  terms_of(a, TEXT_DROP_STOP_WORDS, terms_a, sizeof terms_a);
  terms_of(b, TEXT_DROP_STOP_WORDS, terms_b, sizeof terms_b);
  assert_string_equal(terms_a, terms_b);
}

static void test_stem_folds_inflections(void **state)
{
  (void) state;
  const char *pairs[][2] = {
    { "shipping", "ship" }, { "ships", "ship" }, { "deliveries", "delivery" },
    { "closed", "close" }, { "closing", "close" }, { "hours", "hour" },
    { "addresses", "address" }, { "stopped", "stop" }, { "saturdays", "saturday" },
  };
  for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
    char a[TEXT_MAX_WORD + 1], b[TEXT_MAX_WORD + 1];
    snprintf(a, sizeof a, "%s", pairs[i][0]);
    snprintf(b, sizeof b, "%s", pairs[i][1]);
    text_stem(a);
    text_stem(b);
    assert_string_equal(a, b);
  }
  char short_word[] = "bus";
  text_stem(short_word);
  assert_string_equal(short_word, "bus");
  char empty[] = "";
  text_stem(empty);
  assert_string_equal(empty, "");
}

static void test_case_punctuation_and_contractions(void **state)
{
  (void) state;
  assert_same_terms("What's your ADDRESS?!", "what is your address");
  assert_same_terms("I can't log in", "i can not sign in");
  assert_same_terms("I cannot log in", "i can not sign in");
  assert_same_terms("we\xE2\x80\x99re closed", "we are closed");   /* U+2019 apostrophe */
  assert_same_terms("Wi-Fi", "wifi");
  assert_same_terms("wi fi", "wifi");
  assert_same_terms("e-mail", "email");
  /* Typed in a hurry; "u" only as a word of its own. */
  assert_same_terms("yo what time r u open pls", "what time are you open");
  assert_same_terms("whats ur address thx", "what is your address thanks");
  assert_same_terms("I was wondering, are you open", "are you open");
  char terms[128];
  terms_of("umbrella", TEXT_KEEP_STOP_WORDS, terms, sizeof terms);
  assert_string_equal(terms, "umbrella");
}

static void test_numbers_become_words(void **state)
{
  (void) state;
  assert_same_terms("orders over $50", "orders over fifty dollars");
  assert_same_terms("42 Harbor Street", "forty two harbor street");
  assert_same_terms("100 points", "one hundred points");
  assert_same_terms("10%", "ten percent");
  assert_same_terms("555 0142", "five hundred fifty five 0142");
}

static void test_synonyms_and_stop_words(void **state)
{
  (void) state;
  assert_same_terms("when is the delivery", "shipping");
  assert_same_terms("are you open", "hours");
  assert_same_terms("can I bring my dog", "bring pet");
  char terms[128];
  terms_of("how are you", TEXT_DROP_STOP_WORDS, terms, sizeof terms);
  assert_string_equal(terms, "");
  terms_of("how are you", TEXT_KEEP_STOP_WORDS, terms, sizeof terms);
  assert_string_equal(terms, "how are you");
}

static void test_follow_up_detection(void **state)
{
  (void) state;
  assert_true(text_is_follow_up("and on saturday?"));
  assert_true(text_is_follow_up("What about the weekend"));
  assert_true(text_is_follow_up("how about sundays"));
  assert_true(text_is_follow_up("how much is it"));
  assert_false(text_is_follow_up("what are your office hours"));
  assert_false(text_is_follow_up("can I return it if I bought it online last month and never opened it"));
  assert_false(text_is_follow_up(""));
  assert_false(text_is_follow_up(NULL));
  assert_true(text_refers_back("how much is it"));
  assert_false(text_refers_back("and on saturday?"));
  assert_false(text_refers_back("can I return it if I bought it online last month"));
  assert_false(text_refers_back(NULL));
}

/* Splits `text` and checks the parts, given as one string "a|b|c". */
static void assert_questions(const char *text, size_t max, const char *expected)
{
  text_terms_t parts = { 0 };
  assert_int_equal(text_split_questions(text, &parts, max), 0);
  char joined[512] = "";
  size_t used = 0;
  for (size_t i = 0; i < parts.count; i++)
    used += (size_t) snprintf(joined + used, sizeof joined - used, "%s%s", i ? "|" : "",
                              parts.items[i]);
  text_terms_clear(&parts);
  assert_string_equal(joined, expected);
}

static void test_split_questions(void **state)
{
  (void) state;
  assert_questions("When are you open and where are you?", 3, "When are you open|where are you");
  assert_questions("Can I pay with PayPal? Also, how long does delivery take?", 3,
                   "Can I pay with PayPal|how long does delivery take");
  assert_questions("i forgot my password. plus i need a receipt; thanks", 4,
                   "i forgot my password|i need a receipt|thanks");
  /* A decimal point is no full stop; "and" inside a word is no joining word. */
  assert_questions("Is it 2.5 kg? Andrew's brand", 3, "Is it 2.5 kg|Andrew's brand");
  assert_questions("and on saturday?", 3, "on saturday");
  assert_questions("what are your office hours", 3, "what are your office hours");
  /* At most `max` parts: the rest stays with the last. */
  assert_questions("a and b and c and d", 3, "a|b|c and d");
  assert_questions("a and b", 1, "a and b");
  assert_questions("", 3, "");
  assert_questions("?! and ... ;", 3, "");
  assert_questions(NULL, 3, "");
}

static void test_hostile_input(void **state)
{
  (void) state;
  text_terms_t terms = { 0 };
  assert_int_equal(text_terms_append(&terms, NULL, TEXT_DROP_STOP_WORDS), 0);
  assert_int_equal(text_terms_append(&terms, "", TEXT_DROP_STOP_WORDS), 0);
  assert_int_equal(terms.count, 0);
  /* Invalid UTF-8, control bytes and a truncated U+2019 separate words. */
  assert_int_equal(text_terms_append(&terms, "\xff\xfe refund\x80\x01\xc3 \xE2\x80", TEXT_KEEP_STOP_WORDS), 0);
  assert_int_equal(terms.count, 1);
  assert_string_equal(terms.items[0], "refund");
  text_terms_clear(&terms);

  /* A word far longer than any English word is cut, not overflowed. */
  size_t size = 10 * 1024 * 1024;
  char *huge = malloc(size + 1);
  assert_non_null(huge);
  memset(huge, 'a', size);
  huge[size] = '\0';
  assert_int_equal(text_terms_append(&terms, huge, TEXT_KEEP_STOP_WORDS), 0);
  assert_int_equal(terms.count, 1);
  assert_true(strlen(terms.items[0]) <= TEXT_MAX_WORD);
  text_terms_clear(&terms);

  /* Many short words: only the first TEXT_MAX_BYTES are read. */
  for (size_t i = 0; i + 2 <= size; i += 2)
    memcpy(huge + i, "b ", 2);
  assert_int_equal(text_terms_append(&terms, huge, TEXT_KEEP_STOP_WORDS), 0);
  assert_true(terms.count <= TEXT_MAX_BYTES / 2);
  text_terms_clear(&terms);

  /* Questions too: a part is never longer than TEXT_MAX_BYTES, and there are at most
   * `max` of them however many times "and" comes. */
  for (size_t i = 0; i + 4 <= size; i += 4)
    memcpy(huge + i, "and ", 4);
  memcpy(huge, "why ", 4);
  assert_int_equal(text_split_questions(huge, &terms, 3), 0);
  assert_int_equal(terms.count, 1);
  assert_string_equal(terms.items[0], "why");
  text_terms_clear(&terms);
  memset(huge, '?', size);
  memcpy(huge + size - 3, "why", 3);
  assert_int_equal(text_split_questions(huge, &terms, 3), 0);
  assert_int_equal(terms.count, 0);             /* "why" lies past TEXT_MAX_BYTES */
  text_terms_clear(&terms);
  free(huge);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_stem_folds_inflections),
    cmocka_unit_test(test_case_punctuation_and_contractions),
    cmocka_unit_test(test_numbers_become_words),
    cmocka_unit_test(test_synonyms_and_stop_words),
    cmocka_unit_test(test_follow_up_detection),
    cmocka_unit_test(test_split_questions),
    cmocka_unit_test(test_hostile_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
