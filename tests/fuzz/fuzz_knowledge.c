/* fuzz_knowledge: knowledge-base loading (services/chat/knowledge.c) on arbitrary
 * bytes, from memory (knowledge_parse) and from a file (knowledge_load over a
 * memfd), which must agree; an accepted knowledge base is then indexed and asked
 * one question by the kb chat backend, as the chat service does at start. */
#include "chat_backend.h"
#include "knowledge.h"
#include "log.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int knowledge_fd = -1;
static char knowledge_path[64];

static void fail(const char *what, const stage_error_t *err)
{
  fprintf(stderr, "fuzz_knowledge: %s (%s: %s)\n", what, err->code, err->message);
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  setenv("LOG_LEVEL", "error", 0);
  log_init("fuzz_knowledge");
  knowledge_fd = memfd_create("fuzz-knowledge", MFD_CLOEXEC);
  if (knowledge_fd < 0) {
    perror("memfd_create");
    abort();
  }
  snprintf(knowledge_path, sizeof knowledge_path, "/proc/self/fd/%d", knowledge_fd);
  /* chat_kb_new reads the file KNOWLEDGE_FILE names. */
  setenv("KNOWLEDGE_FILE", knowledge_path, 1);
  return 0;
}

/* Replaces the memfd's content with the input. */
static void write_file(const uint8_t *data, size_t size)
{
  if (ftruncate(knowledge_fd, 0) != 0 ||
      (size && pwrite(knowledge_fd, data, size, 0) != (ssize_t) size)) {
    perror("fuzz_knowledge: memfd");
    abort();
  }
}

/* The kb backend over the same file: builds its indexes and answers. */
static void ask(const knowledge_t *expected)
{
  stage_error_t err = {{0}, {0}};
  chat_backend_t *kb = chat_kb_new(&err);
  if (!kb)
    fail("chat_kb_new refused a knowledge base knowledge_parse accepted", &err);
  const char *question = expected->entry_count && expected->entries[0].question_count
                           ? expected->entries[0].questions[0]
                           : "hello";
  chat_turn_t history[] = {{"user", "hello"}, {"assistant", expected->fallback}};
  char *reply = NULL;
  if (kb->reply(kb, question, history, 2, &reply, &err) != 0 || !reply)
    fail("the kb backend could not answer", &err);
  free(reply);
  kb->destroy(&kb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  bool has_nul = strlen(text) != size;

  stage_error_t parse_err = {{0}, {0}};
  knowledge_t *parsed = knowledge_parse(text, "fuzz", &parse_err);
  if (!parsed && (strcmp(parse_err.code, "bad_knowledge") != 0 || !parse_err.message[0]))
    fail("knowledge_parse failed without a bad_knowledge error", &parse_err);

  write_file(data, size);
  stage_error_t load_err = {{0}, {0}};
  knowledge_t *loaded = knowledge_load(knowledge_path, &load_err);
  if (!loaded && (strcmp(load_err.code, "bad_knowledge") != 0 || !load_err.message[0]))
    fail("knowledge_load failed without a bad_knowledge error", &load_err);
  /* A file with a NUL byte is refused; otherwise file and memory agree. */
  if (has_nul ? loaded != NULL : (loaded != NULL) != (parsed != NULL))
    fail("knowledge_load and knowledge_parse disagree", loaded ? &parse_err : &load_err);
  if (loaded && (loaded->entry_count != parsed->entry_count ||
                 loaded->small_talk_count != parsed->small_talk_count ||
                 strcmp(loaded->fallback, parsed->fallback) != 0))
    fail("knowledge_load and knowledge_parse read different knowledge", &load_err);

  if (loaded)
    ask(loaded);
  knowledge_destroy(&parsed);
  knowledge_destroy(&loaded);
  free(text);
  return 0;
}
