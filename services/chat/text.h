/* text: turns what a person said or typed into index terms, the same way for the
 * knowledge base and for questions: lower case, punctuation dropped, contractions
 * expanded, numbers as words, a few phrases joined, synonyms folded onto one word,
 * a light stemmer, and (optionally) stop words dropped. */
#ifndef CHAT_TEXT_H
#define CHAT_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Only this many bytes of one text are read: a question is spoken in a breath, and
 * the cap keeps a pasted novel from costing more than a question. */
#define TEXT_MAX_BYTES 4096

/* Longest word kept; longer runs of letters are cut (they are no English word). */
#define TEXT_MAX_WORD 47

typedef enum {
  TEXT_DROP_STOP_WORDS,   /* for topic retrieval: "what", "is", "the" carry no topic */
  TEXT_KEEP_STOP_WORDS    /* for small talk: "how are you" is all stop words */
} text_mode_t;

/* A growable list of terms; every string is owned by the list. */
typedef struct {
  char **items;
  size_t count;
  size_t capacity;
} text_terms_t;

/* Appends the terms of `text` (any bytes; non-ASCII bytes separate words) to
 * `terms`. Returns 0, or -1 when out of memory (`terms` then holds what was
 * appended so far and still needs text_terms_clear). */
int text_terms_append(text_terms_t *terms, const char *text, text_mode_t mode);

/* Appends a copy of `term`. Returns 0, or -1 when out of memory. */
int text_terms_push(text_terms_t *terms, const char *term);

/* True when `term` is in the list. */
bool text_terms_contains(const text_terms_t *terms, const char *term);

/* Frees every term and the list storage, leaving an empty list. */
void text_terms_clear(text_terms_t *terms);

/* Stems a lower-case ASCII word in place ("deliveries" -> "delivery",
 * "shipping" -> "ship", "closed" -> "clos"). Only consistency matters: both sides
 * of every comparison go through it. */
void text_stem(char *word);

/* True when the index term `term` (as text_terms_append makes it) is one of the
 * most common English words: its absence from the knowledge base says little
 * about what the question is about. */
bool text_is_common_term(const char *term);

/* True when `text` reads as a follow-up that leans on the previous question:
 * it starts with "and", "also", "what about", "how about", or it is a short
 * question pointing back with "it", "that", "this", "they" or "them". */
bool text_is_follow_up(const char *text);

/* True when `text` is a short question pointing back with "it", "that", "this",
 * "they", "them" or "those" (the second half of text_is_follow_up). */
bool text_refers_back(const char *text);

/* Splits `text` into the questions it asks, for "when are you open and where are
 * you?": at "?", "!", ";", a full stop, and the joining words "and", "also",
 * "plus" (which are dropped). Each part is a copy of its stretch of `text`, added
 * to `parts`, at most `max` of them (the rest joins the last); stretches without a
 * letter or digit are left out. Returns 0, or -1 when out of memory (`parts` then still needs
 * text_terms_clear). */
int text_split_questions(const char *text, text_terms_t *parts, size_t max);

#endif
