/* chat_stream_check: shared streaming-test helpers (see chat_stream_check.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_stream_check.h"

long ms_since(const struct timespec *t0)
{
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static int on_sentence(void *arg, const char *text, size_t size, size_t index, bool last,
                       stage_error_t *err)
{
  (void) text, (void) size, (void) last, (void) err;
  streamed_t *streamed = arg;
  if (index == 0) {
    streamed->len_at_first_sentence = streamed->len;
    streamed->first_sentence_ms = ms_since(&streamed->started);
  }
  streamed->sentences++;
  return 0;
}

static int on_text(void *arg, const char *text, size_t size, stage_error_t *err)
{
  streamed_t *streamed = arg;
  assert_true(size > 0);
  assert_true(streamed->len + size < sizeof streamed->text);
  memcpy(streamed->text + streamed->len, text, size);
  streamed->len += size;
  streamed->text[streamed->len] = '\0';
  streamed->pieces++;
  return sentence_stream_feed(streamed->cutter, text, size, err);
}

char *ask_streamed(fake_server_t *server, chat_backend_t *chat, const char *outcomes,
                   const char *question, streamed_t *streamed, stage_error_t *err)
{
  assert_int_equal(fake_server_push_outcome(server, outcomes), 0);
  memset(streamed, 0, sizeof *streamed);
  streamed->cutter = sentence_stream_new(32, on_sentence, streamed);
  assert_non_null(streamed->cutter);
  clock_gettime(CLOCK_MONOTONIC, &streamed->started);
  char *reply = NULL;
  int rc = chat->reply_stream(chat, question, NULL, 0, on_text, streamed, &reply, err);
  assert_int_equal(rc == 0, reply != NULL);
  if (rc == 0)
    assert_int_equal(sentence_stream_finish(streamed->cutter, err), 0);
  sentence_stream_destroy(&streamed->cutter);
  printf("# stream %s: %zu pieces, %zu sentences, first after %ld ms, whole after %ld ms%s%s\n",
         outcomes, streamed->pieces, streamed->sentences, streamed->first_sentence_ms,
         ms_since(&streamed->started), rc ? ": " : "", rc ? err->message : "");
  return reply;
}

void expect_streamed(fake_server_t *server, chat_backend_t *chat, const char *outcomes,
                     const char *question, const char *expected)
{
  streamed_t streamed;
  stage_error_t err = {0};
  char *reply = ask_streamed(server, chat, outcomes, question, &streamed, &err);
  if (!reply)
    fail_msg("%s: %s", outcomes, err.message);
  assert_string_equal(reply, expected);
  assert_string_equal(streamed.text, expected);
  free(reply);
}
