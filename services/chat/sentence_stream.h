/* sentence_stream: cuts a reply into sentences while the language model is still
 * writing it, so that tts can speak sentence one while sentence three is being
 * written. The pieces of text may be split anywhere (inside a word or a UTF-8
 * sequence); a sentence goes on once it is complete, which is when the next one
 * has begun (with enough words that it will not ride with this one) or the text
 * has ended. The cuts follow sentences_split (sentences.h): abbreviations and
 * decimals do not end a sentence, short sentences ride with the next, the first
 * sentence is cut after its first clause when it is long. */
#ifndef CHAT_SENTENCE_STREAM_H
#define CHAT_SENTENCE_STREAM_H

#include "stage_error.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct sentence_stream sentence_stream_t;

/* Receives sentence number `index` (from 0): `size` bytes at `text`, trimmed, not
 * NUL-terminated. `last` is true for the reply's final sentence. Returns 0, or -1
 * with `err` set to stop. */
typedef int (sentence_fn)(void *arg, const char *text, size_t size, size_t index, bool last,
                          stage_error_t *err);

/* A stream handing at most `max` (>= 1) sentences to `fn`: what would be more
 * goes into the last one. NULL when out of memory. */
sentence_stream_t *sentence_stream_new(size_t max, sentence_fn *fn, void *arg);

/* Adds the next `size` bytes of the reply and hands on every sentence it
 * completes. Returns 0, or -1 with `err` set (out of memory, or `fn` failed). */
int sentence_stream_feed(sentence_stream_t *self, const char *text, size_t size,
                         stage_error_t *err);

/* The reply is complete: hands on the sentences still held, the last one with
 * `last` set. Nothing is handed on for a reply that is empty or all white space.
 * Returns 0, or -1 with `err` set. */
int sentence_stream_finish(sentence_stream_t *self, stage_error_t *err);

/* How many sentences were handed on so far. */
size_t sentence_stream_count(const sentence_stream_t *self);

/* Frees the stream and sets *self_p to NULL; does nothing for NULL. */
void sentence_stream_destroy(sentence_stream_t **self_p);

#endif
