/* fuzz_questions: the kb chat backend (services/chat/backends/kb.c) asked arbitrary
 * bytes after arbitrary earlier turns, with the project's own knowledge base
 * (config/knowledge.json). The input splits at NUL bytes: the question first, then
 * earlier turns, user and assistant in turn. Every question must get a non-empty
 * answer, and nothing may crash, leak or overflow (the splitting into several
 * questions, follow-ups read with the previous reply's topic, stop-word questions). */
#include "chat_backend.h"
#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_TURNS = 8 };

static chat_backend_t *kb;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  setenv("LOG_LEVEL", "error", 0);
  log_init("fuzz_questions");
  setenv("KNOWLEDGE_FILE", FUZZ_KNOWLEDGE_FILE, 1);
  stage_error_t err = {{0}, {0}};
  kb = chat_kb_new(&err);
  if (!kb) {
    fprintf(stderr, "fuzz_questions: %s: %s\n", err.code, err.message);
    abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  /* The pieces between NUL bytes: question, then turns. */
  const char *pieces[1 + MAX_TURNS];
  size_t count = 0;
  for (const char *p = text; count < 1 + MAX_TURNS && p <= text + size; p += strlen(p) + 1)
    pieces[count++] = p;
  chat_turn_t history[MAX_TURNS];
  for (size_t i = 1; i < count; i++)
    history[i - 1] = (chat_turn_t) {(i % 2) ? "user" : "assistant", pieces[i]};

  char *reply = NULL;
  stage_error_t err = {{0}, {0}};
  if (kb->reply(kb, pieces[0], history, count - 1, &reply, &err) != 0 || !reply || !*reply) {
    fprintf(stderr, "fuzz_questions: no answer (%s: %s)\n", err.code, err.message);
    abort();
  }
  free(reply);
  free(text);
  return 0;
}
