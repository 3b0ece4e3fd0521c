/* knowledge: the help desk's knowledge base (config/knowledge.json), loaded and
 * validated once, so a broken file stops the chat service at start with an error
 * that names the entry and the field instead of answering nonsense later. */
#ifndef KNOWLEDGE_H
#define KNOWLEDGE_H

#include "stage_error.h"

#include <stddef.h>

/* Largest knowledge file accepted, so a wrong path (a video, /dev/zero) fails fast. */
#define KNOWLEDGE_MAX_BYTES (4 * 1024 * 1024)

/* One topic: the ways people ask about it and the answer spoken back. */
typedef struct {
  char *id;
  char **questions;
  size_t question_count;
  char *answer;
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

/* Frees the knowledge base and sets *self_p to NULL; does nothing for NULL. */
void knowledge_destroy(knowledge_t **self_p);

#endif
