/* expression: what the face does with the meaning of the words, beyond the mouth.
 * Speakers lift their brows as they ask a question; the text says which sentences
 * are questions, and the pauses in the speech say when each sentence is spoken. */
#ifndef AVATAR_EXPRESSION_H
#define AVATAR_EXPRESSION_H

#include "viseme.h"

#include <stddef.h>

/* Sentences beyond this many are treated as part of the last one. */
#define EXPRESSION_MAX_SENTENCES 64

/* Fills `brows` (`frame_count` values in 0..1) with how far the brows lift at each
 * frame of speech at `fps` whose mouth track is `shapes` and whose words are `text`
 * (NULL or "" = no lift). Sentences end at . ! or ?; each one's time is its share of
 * the letters across the speaking frames, moved to the nearest pause (200 ms or more
 * of rest) when there is one near. During a question the brows rise toward its end,
 * hold a moment past it, then settle. */
void expression_brow_track(const char *text, const viseme_t *shapes, size_t frame_count, int fps,
                           float *brows);

#endif
