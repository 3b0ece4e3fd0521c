/* Unit tests of the knowledge-base chat backend: every fact reachable by
 * paraphrases that are not in the file, small talk, the fallback for questions
 * outside the help desk, follow-ups, broken configuration and hostile input. */
#include "chat_backend.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int setup_backend(void **state)
{
  stage_error_t err = { 0 };
  chat_backend_t *backend = chat_kb_new(&err);
  if (!backend) {
    fprintf(stderr, "chat_kb_new: %s: %s\n", err.code, err.message);
    return -1;
  }
  *state = backend;
  return 0;
}

static int teardown_backend(void **state)
{
  chat_backend_t *backend = *state;
  backend->destroy(&backend);
  return backend == NULL ? 0 : -1;
}

/* Asks `question` after `history` and checks that the reply contains `expected`. */
static void assert_reply_with_history(chat_backend_t *backend, const chat_turn_t *history,
                                      size_t history_len, const char *question,
                                      const char *expected)
{
  stage_error_t err = { 0 };
  char *reply = NULL;
  assert_int_equal(backend->reply(backend, question, history, history_len, &reply, &err), 0);
  assert_non_null(reply);
  if (!strstr(reply, expected)) {
    fprintf(stderr, "question: %s\nreply:    %s\nexpected: ...%s...\n", question, reply, expected);
    free(reply);
    fail();
  }
  free(reply);
}

static void assert_reply(chat_backend_t *backend, const char *question, const char *expected)
{
  assert_reply_with_history(backend, NULL, 0, question, expected);
}

#define FALLBACK "can't help with that"

static void test_every_fact_by_paraphrase(void **state)
{
  chat_backend_t *backend = *state;
  static const char *const cases[][2] = {
    { "When do you guys open in the morning?", "9 AM to 6 PM" },
    { "what time do you open on saturday", "10 AM to 2 PM" },
    { "Are you open Sundays?", "closed on Sundays" },
    { "are you open on christmas", "public holidays" },
    { "Where's your shop?", "42 Harbor Street" },
    { "can I ring you", "555-0142" },
    { "What's your e-mail?", "support@brightside.example" },
    { "I want my money back", "refund within 30 days" },
    { "how many days do I have to send something back", "return unused items within 30 days" },
    { "can I return my headphones", "free return label" },
    { "is delivery free", "free on orders over 50 dollars" },
    { "How long until my package gets here?", "3 to 5 business days" },  /* how long: shipping time */
    { "do you deliver to Germany", "Canada, Mexico and the European Union" },
    { "where's my stuff", "Orders page" },
    { "I can't log in", "Forgot password" },
    { "my password link expired", "24 hours" },
    { "can I update my email", "Account settings, then Profile" },
    { "how much is pro", "Pro at 29 dollars" },
    { "what does the basic plan cost", "Basic at 9 dollars" },
    { "how do I end my membership", "end of your current billing period" },
    { "do you take visa", "Visa, Mastercard, American Express and PayPal" },
    { "can I pay with Amex", "American Express" },
    { "my laptop is broken", "one-year warranty" },
    { "can I use a gift card online", "never expire" },
    { "I'm a student, do I get anything off?", "10 percent off" },
    { "how many points for a dollar", "1 point for every dollar" },
    { "where do I park", "free parking behind the building" },
    { "can I get in with a wheelchair", "wheelchair accessible" },
    { "can I bring my dog", "dogs on a leash" },
    { "is the Wi-Fi free", "free Wi-Fi" },
    { "can I book a visit", "appointment online or by calling" },
    { "can I chat with you on the website", "weekdays from 9 AM to 6 PM" },
    { "I want to speak to a real person", "manager" },
    { "is my personal information sold", "never sell your personal data" },
    { "do you have job openings", "Jobs page" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    assert_reply(backend, cases[i][0], cases[i][1]);
}

static void test_small_talk(void **state)
{
  chat_backend_t *backend = *state;
  assert_reply(backend, "Hello!", "How can I help you today?");
  assert_reply(backend, "hi ava", "I'm Ava from Brightside");
  assert_reply(backend, "Good morning", "How can I help you today?");
  assert_reply(backend, "thanks so much", "You're welcome");
  assert_reply(backend, "ok bye", "Goodbye");
  /* Small talk answers the last thing said. */
  assert_reply(backend, "ok thanks, bye", "Goodbye");
  assert_reply(backend, "hi, how are you?", "doing great");
  assert_reply(backend, "bye, thanks", "You're welcome");
  assert_reply(backend, "who are you?", "virtual assistant");
  assert_reply(backend, "How are you doing today?", "doing great");
  /* A greeting in front of a question does not hide the question. */
  assert_reply(backend, "hi, when are you open?", "Monday to Friday");
  /* A knowledge-base question of stop words only is found; small talk like it stays so. */
  assert_reply(backend, "Where are you?", "42 Harbor Street");
  assert_reply(backend, "who are you", "virtual assistant");
  assert_reply(backend, "is there and i'm where i can really", FALLBACK); /* a lost transcript */
  assert_reply(backend, "thank you, how do I reset my password", "Forgot password");
  /* A polite run-up, or a question typed in a hurry. */
  assert_reply(backend, "hi there! i was wondering if you could tell me when you close today",
               "Monday to Friday");
  assert_reply(backend, "yo what time u open", "Monday to Friday");
}

static void test_fallback_outside_the_help_desk(void **state)
{
  chat_backend_t *backend = *state;
  static const char *const questions[] = {
    "What's the capital of France?", "tell me a joke about rockets",
    "what is the weather like tomorrow", "who won the football game", "do you sell televisions",
    "i like turtles", "", "   ", "?!?", "0142",
  };
  for (size_t i = 0; i < sizeof questions / sizeof *questions; i++)
    assert_reply(backend, questions[i], FALLBACK);
  /* The fallback says what the assistant can do. */
  assert_reply(backend, "what's the capital of france", "opening hours");
}

/* Asks `question` and checks that the reply is exactly `expected`. */
static void assert_whole_reply(chat_backend_t *backend, const char *question, const char *expected)
{
  stage_error_t err = { 0 };
  char *reply = NULL;
  assert_int_equal(backend->reply(backend, question, NULL, 0, &reply, &err), 0);
  assert_non_null(reply);
  if (strcmp(reply, expected) != 0) {
    fprintf(stderr, "question: %s\nreply:    %s\nexpected: %s\n", question, reply, expected);
    free(reply);
    fail();
  }
  free(reply);
}

#define HOURS "We're open Monday to Friday, 9 AM to 6 PM, and Saturday 10 AM to 2 PM. We're " \
  "closed on Sundays and public holidays."
#define LOCATION "Our store is at 42 Harbor Street, Springfield."
#define PAYMENT "We accept Visa, Mastercard, American Express and PayPal."
#define PARKING "There's free parking behind the building."

/* Two questions in one are answered in the order asked, each once; "and" inside one
 * question or two off-topic parts change nothing. */
static void test_two_questions_in_one(void **state)
{
  chat_backend_t *backend = *state;
  assert_whole_reply(backend, "When are you open and where are you located?", HOURS " " LOCATION);
  assert_whole_reply(backend, "where's your store? also what are your hours", LOCATION " " HOURS);
  assert_reply(backend, "can i bring my dog, and do you ship to canada", "dogs on a leash");
  assert_reply(backend, "can i bring my dog, and do you ship to canada", "Canada, Mexico");
  assert_whole_reply(backend, "Do you take Visa and Mastercard?", PAYMENT);
  assert_whole_reply(backend, "is there parking and is it free", PARKING);
  assert_whole_reply(backend, "is it free, and is there parking", PARKING);
  /* ... unless it says a phrasing whole: a recognizer's stray "it" (heard so from eSpeak). */
  assert_whole_reply(backend, "when are you open it and where are you located", HOURS " " LOCATION);
  /* A part that leans on the one before is read with it. */
  assert_reply(backend, "how much does the pro plan cost and how do i cancel it", "29 dollars");
  assert_reply(backend, "how much does the pro plan cost and how do i cancel it", "Billing");
  assert_whole_reply(backend, "where are you located? where are you located?", LOCATION);
  assert_reply(backend, "what's the weather like and who won the football game", FALLBACK);
  assert_reply(backend, "hi, when are you open? and thanks", "Monday to Friday");
}

static void test_follow_ups_use_the_previous_question(void **state)
{
  chat_backend_t *backend = *state;
  const chat_turn_t about_hours[] = {
    { "user", "what are your office hours" },
    { "assistant", "We're open Monday to Friday, 9 AM to 6 PM, and Saturday 10 AM to 2 PM." },
  };
  assert_reply_with_history(backend, about_hours, 2, "and on saturday?", "On Saturdays we're open from 10 AM to 2 PM");
  assert_reply_with_history(backend, about_hours, 2, "what about the weekend", "Saturdays");
  assert_reply_with_history(backend, about_hours, 2, "and sundays?", "closed on Sundays");

  const chat_turn_t about_plans[] = {
    { "user", "what plans do you offer" },
    { "assistant", "We have two plans." },
  };
  assert_reply_with_history(backend, about_plans, 2, "how much is it", "29 dollars");
  assert_reply_with_history(backend, about_plans, 2, "and how do I cancel it", "Billing");

  const chat_turn_t about_shipping[] = { { "user", "do you ship to canada" } };
  assert_reply_with_history(backend, about_shipping, 1, "how long does it take", "7 to 14 days");

  /* A follow-up to a follow-up still knows the topic: the previous reply's entry. */
  const char *const abroad = "We ship to Canada, Mexico and the European Union. International "
                             "orders arrive in 7 to 14 days.";
  const chat_turn_t about_germany[] = {
    { "user", "do you ship to germany" }, { "assistant", abroad },
    { "user", "how long does that take" }, { "assistant", abroad },
  };
  assert_reply_with_history(backend, about_germany, 4, "is it free", "free on orders over 50");
  const char *const returns = "You can return unused items within 30 days. We'll email you a "
                              "free return label so shipping it back costs nothing.";
  const chat_turn_t about_the_label[] = {
    { "user", "i want to return a laptop" }, { "assistant", returns },
    { "user", "how do i get the label" }, { "assistant", returns },
  };
  assert_reply_with_history(backend, about_the_label, 4, "and is that free", "costs nothing");
  /* One topic word, just after a topic, is read with it; none is never given it. */
  const chat_turn_t about_returns[] = {
    { "user", "can i send back something i bought" },
    { "assistant", returns },
  };
  assert_reply_with_history(backend, about_returns, 2, "how many days do i have", "30 days");
  assert_reply_with_history(backend, about_returns, 2, "ok, thanks", "You're welcome");
  /* "and" in front of a whole question of its own does not make it the old topic's. */
  const chat_turn_t about_password[] = {
    { "user", "i'm locked out" },
    { "assistant", "Click the Forgot password link on the sign-in page and we'll email you a "
                   "reset link. The link is valid for 24 hours." },
  };
  assert_reply_with_history(backend, about_password, 2, "and how do i change my email",
                            "Account settings");

  /* A full question of its own is not pulled back to the previous topic. */
  assert_reply_with_history(backend, about_hours, 2, "can I bring my dog", "leash");
  /* Without context a vague follow-up is no answer; the previous topic is not invented. */
  assert_reply(backend, "and on top of that?", FALLBACK);
  /* History turns with missing fields are skipped, not dereferenced. */
  const chat_turn_t broken_history[] = { { NULL, "x" }, { "user", NULL }, { "assistant", "hi" } };
  assert_reply_with_history(backend, broken_history, 3, "and on saturday?", "10 AM to 2 PM");
  assert_reply_with_history(backend, about_hours, 2, "what's the capital of france", FALLBACK);
}

static void test_hostile_input_does_not_crash(void **state)
{
  chat_backend_t *backend = *state;
  stage_error_t err = { 0 };
  char *reply = NULL;
  assert_int_equal(backend->reply(backend, NULL, NULL, 0, &reply, &err), 0);
  assert_non_null(strstr(reply, FALLBACK));
  free(reply);

  assert_reply(backend, "\xff\xfe\xfd refund \xc3\x28 \xe2\x82", "refund");
  assert_reply(backend, "\x01\x02\x7f\x1b[31m", FALLBACK);

  size_t size = 8 * 1024 * 1024;
  char *huge = malloc(size + 1);
  assert_non_null(huge);
  for (size_t i = 0; i < size; i++)
    huge[i] = (char) ("refund \xff"[i % 8]);
  huge[size] = '\0';
  assert_reply(backend, huge, "refund");
  memset(huge, 'x', size);
  assert_reply(backend, huge, FALLBACK);
  const chat_turn_t huge_history[] = { { "user", huge }, { "assistant", huge } };
  assert_reply_with_history(backend, huge_history, 2, "and on saturday?", "10 AM to 2 PM");
  free(huge);
}

/* Points KNOWLEDGE_FILE at a file holding `content` and returns chat_kb_new's result. */
static chat_backend_t *backend_over(const char *content, stage_error_t *err)
{
  char path[] = "/tmp/test_chat_kb_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t length = strlen(content);
  assert_int_equal(write(fd, content, length), (ssize_t) length);
  assert_int_equal(close(fd), 0);
  const char *saved = getenv("KNOWLEDGE_FILE");
  char *saved_copy = saved ? strdup(saved) : NULL;
  assert_int_equal(setenv("KNOWLEDGE_FILE", path, 1), 0);
  chat_backend_t *backend = chat_kb_new(err);
  assert_int_equal(saved_copy ? setenv("KNOWLEDGE_FILE", saved_copy, 1) : unsetenv("KNOWLEDGE_FILE"), 0);
  free(saved_copy);
  assert_int_equal(unlink(path), 0);
  return backend;
}

static void test_construction_errors(void **state)
{
  (void) state;
  stage_error_t err = { 0 };
  assert_null(backend_over("not json at all", &err));
  assert_string_equal(err.code, "bad_knowledge");
  memset(&err, 0, sizeof err);
  assert_null(backend_over("{\"name\": \"a\", \"assistant\": \"b\", \"fallback\": \"c\", \"entries\": "
                           "[{\"id\": \"x\", \"questions\": [], \"answer\": \"y\"}]}", &err));
  assert_non_null(strstr(err.message, "\"x\""));
  assert_non_null(strstr(err.message, "\"questions\""));

  memset(&err, 0, sizeof err);
  assert_int_equal(setenv("KNOWLEDGE_FILE", "/nonexistent.json", 1), 0);
  assert_null(chat_kb_new(&err));
  assert_non_null(strstr(err.message, "/nonexistent.json"));
  assert_null(chat_kb_new(NULL));
  assert_int_equal(unsetenv("KNOWLEDGE_FILE"), 0);
  /* Unset: the repository's file, compiled in. */
  chat_backend_t *backend = chat_kb_new(&err);
  assert_non_null(backend);
  assert_string_equal(backend->name, "kb");
  backend->destroy(&backend);
  assert_null(backend);
}

static void test_tiny_knowledge_base(void **state)
{
  (void) state;
  stage_error_t err = { 0 };
  chat_backend_t *backend = backend_over(
    "{\"name\": \"Tiny\", \"assistant\": \"Max\", \"fallback\": \"No idea.\", \"entries\": ["
    "{\"id\": \"hours\", \"questions\": [\"when are you open\"], \"answer\": \"Always.\"}]}", &err);
  assert_non_null(backend);
  assert_reply(backend, "are you open", "Always.");
  assert_reply(backend, "hello max", "No idea.");   /* no small talk in this file */
  assert_reply(backend, "refund", "No idea.");
  backend->destroy(&backend);
}

static void write_knowledge(const char *path, const char *content)
{
  /* Written aside and renamed, as editors do: the reader never sees half a file. */
  char temporary[256];
  snprintf(temporary, sizeof temporary, "%s.new", path);
  FILE *file = fopen(temporary, "w");
  assert_non_null(file);
  assert_true(fputs(content, file) >= 0);
  assert_int_equal(fclose(file), 0);
  assert_int_equal(rename(temporary, path), 0);
}

#define TINY_HEAD "{\"name\": \"Tiny\", \"assistant\": \"Max\", \"fallback\": \"No idea.\", "

static void test_reload_without_restart(void **state)
{
  (void) state;
  char path[] = "/tmp/test_chat_kb_reload_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(close(fd), 0);
  write_knowledge(path, TINY_HEAD "\"entries\": [{\"id\": \"hours\", \"questions\":"
                  " [\"when are you open\"], \"answer\": \"Always.\"}]}");
  assert_int_equal(setenv("KNOWLEDGE_FILE", path, 1), 0);
  stage_error_t err = { 0 };
  chat_backend_t *backend = chat_kb_new(&err);
  assert_non_null(backend);
  assert_reply(backend, "are you open", "Always.");
  assert_reply(backend, "can i bring my dog", "No idea.");

  /* A new entry, with a paraphrase template, is answered without a restart. */
  write_knowledge(path, TINY_HEAD "\"entries\": [{\"id\": \"hours\", \"questions\":"
                  " [\"when are you open\"], \"answer\": \"Weekdays only.\"},"
                  " {\"id\": \"pets\", \"questions\": [\"are pets allowed\"],"
                  " \"paraphrases\": [\"can i bring my (dog|cat)\"], \"answer\": \"Dogs welcome.\"}]}");
  assert_reply(backend, "are you open", "Weekdays only.");
  assert_reply(backend, "can i bring my dog", "Dogs welcome.");

  /* A broken version is refused and the last good one keeps answering. */
  write_knowledge(path, TINY_HEAD "\"entries\": [{\"id\": \"hours\", \"questions\": []}]}");
  assert_reply(backend, "can i bring my dog", "Dogs welcome.");
  char *reply = NULL;
  assert_int_equal(backend->reply_unheard(backend, &reply, &err), 0);
  assert_string_equal(reply, "No idea.");
  free(reply);

  backend->destroy(&backend);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(unsetenv("KNOWLEDGE_FILE"), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_every_fact_by_paraphrase, setup_backend, teardown_backend),
    cmocka_unit_test_setup_teardown(test_small_talk, setup_backend, teardown_backend),
    cmocka_unit_test_setup_teardown(test_fallback_outside_the_help_desk, setup_backend, teardown_backend),
    cmocka_unit_test_setup_teardown(test_two_questions_in_one, setup_backend, teardown_backend),
    cmocka_unit_test_setup_teardown(test_follow_ups_use_the_previous_question, setup_backend, teardown_backend),
    cmocka_unit_test_setup_teardown(test_hostile_input_does_not_crash, setup_backend, teardown_backend),
    cmocka_unit_test(test_construction_errors),
    cmocka_unit_test(test_tiny_knowledge_base),
    cmocka_unit_test(test_reload_without_restart),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
