/* sentences: cuts a reply into the sentences that tts and avatar handle one by
 * one (sentence streaming), so the first one plays while the rest still render.
 * Abbreviations ("Dr.", "a.m.", "e.g."), initials and decimals do not end a
 * sentence; very short sentences ride with the next one, so that no segment is a
 * lone "Sure!" with a gap after it. A long first sentence is cut after its first
 * clause, because the person waits for the first segment alone. */
#ifndef CHAT_SENTENCES_H
#define CHAT_SENTENCES_H

#include <stddef.h>

/* Shorter sentences than this are joined to the next one (bytes). */
#define SENTENCE_MIN_BYTES 16

/* A first sentence longer than this (bytes, about four seconds of speech) is cut
 * at the first ", " / "; " / ": " that leaves SENTENCE_MIN_BYTES on both sides;
 * the comma stays, so the voice carries on as in the middle of a sentence. */
#define FIRST_SEGMENT_MAX_BYTES 60

/* One sentence: `length` bytes of the text from `start`, without surrounding
 * white space. */
typedef struct {
  size_t start;
  size_t length;
} sentence_span_t;

/* Cuts `text` into at most `max` (>= 1) sentences, in order; what would be more
 * goes into the last one. Returns how many spans were filled: 0 only for a text
 * that is empty or all white space. */
size_t sentences_split(const char *text, sentence_span_t *spans, size_t max);

#endif
