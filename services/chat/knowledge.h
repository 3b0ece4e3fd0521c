/* knowledge: the help desk's knowledge base (config/knowledge.json), loaded and
 * validated once, so a broken file stops the chat service at start with an error
 * that names the entry and the field instead of answering nonsense later. */
#ifndef KNOWLEDGE_H
#define KNOWLEDGE_H

#include "stage_error.h"

#include <stddef.h>

/* Largest knowledge file accepted, so a wrong path (a video, /dev/zero) fails fast. */
#define KNOWLEDGE_MAX_BYTES (4 * 1024 * 1024)

/* Most sentences one paraphrase template may expand to: a template is a compact way
 * to write a few dozen phrasings, not a grammar. */
#define KNOWLEDGE_MAX_EXPANSIONS 256

/* One topic: the ways people ask about it and the answer spoken back. */
typedef struct {
  char *id;
  char **questions;
  size_t question_count;
  char *answer;
  /* Every sentence the entry's optional "paraphrases" templates expand to, in
   * order: more ways people ask, used by retrieval and by the speech recognizer's
   * language model like the questions. */
  char **paraphrases;
  size_t paraphrase_count;
  size_t template_count;    /* how many templates the paraphrases came from */
} knowledge_entry_t;

typedef struct {
  char *name;        /* the business, e.g. "Brightside Electronics" */
  char *assistant;   /* the avatar's name, e.g. "Ava" */
  char *fallback;    /* said when no entry fits the question */
  knowledge_entry_t *entries;
  size_t entry_count;
  knowledge_entry_t *small_talk;  /* greetings, thanks, goodbye, ... (may be empty) */
  size_t small_talk_count;
} knowledge_t;

/* Parses and validates knowledge JSON held in memory. `origin` names the source in
 * error messages (a path). Returns a new knowledge base (free with
 * knowledge_destroy), or NULL with `err` set (code "bad_knowledge"; the message
 * names the entry and field at fault). */
knowledge_t *knowledge_parse(const char *json_text, const char *origin, stage_error_t *err);

/* Reads, parses and validates the knowledge file at `path`. Returns a new
 * knowledge base, or NULL with `err` set ("bad_knowledge" for an unreadable,
 * oversized or invalid file). */
knowledge_t *knowledge_load(const char *path, stage_error_t *err);

/* Calls `emit(sentence, arg)` for every sentence the paraphrase template `text`
 * stands for, in order. A template is words with alternative groups:
 * "(how long|how many days) do i have to (return|send back) (it|an item|)" -- an
 * empty alternative makes the group optional; groups do not nest. Spaces around an
 * empty choice are collapsed. Returns the number of sentences, or -1 with `problem`
 * (a phrase for an error message) set for an unbalanced or nested group, an empty
 * expansion, or more than KNOWLEDGE_MAX_EXPANSIONS sentences. `emit` returning
 * non-zero stops the expansion with -1 and problem "out of memory". */
typedef int (knowledge_emit_fn)(const char *sentence, void *arg);
long knowledge_expand_template(const char *text, knowledge_emit_fn *emit, void *arg,
                               const char **problem);

/* Frees the knowledge base and sets *self_p to NULL; does nothing for NULL. */
void knowledge_destroy(knowledge_t **self_p);

#endif
