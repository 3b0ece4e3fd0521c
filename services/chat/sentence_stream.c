/* sentence_stream: sentences of a reply handed on while it is written (see
 * sentence_stream.h). The text not yet handed on is cut again with
 * sentences_split after each piece; every sentence but the last one it finds is
 * complete. */
#include "sentence_stream.h"

#include "sentences.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Put ahead of the held text once a sentence went on: a finished sentence of
 * ordinary length, so that sentences_split reads the held text as the middle of
 * the reply (no first-clause cut, and a short sentence there rides with the next
 * one as usual). */
static const char LEAD[] = "Xxxxxxxxxxxxxxxxxxxx. ";
#define LEAD_LEN (sizeof LEAD - 1)

struct sentence_stream {
  sentence_fn *fn;
  void *arg;
  size_t max;               /* sentences at most */
  size_t count;             /* handed on so far */
  char *text;               /* the text held: LEAD (after the first sentence) + the rest */
  size_t len, cap;
  size_t lead;              /* 0 or LEAD_LEN */
  bool has_mark;            /* the held text has a sentence or clause mark: worth cutting */
  sentence_span_t *spans;   /* max + 1 */
};

sentence_stream_t *sentence_stream_new(size_t max, sentence_fn *fn, void *arg)
{
  sentence_stream_t *self = calloc(1, sizeof *self);
  if (!self)
    return NULL;
  self->fn = fn;
  self->arg = arg;
  self->max = max ? max : 1;
  self->spans = calloc(self->max + 1, sizeof *self->spans);
  self->cap = 256;
  self->text = calloc(self->cap, 1);
  if (!self->spans || !self->text)
    sentence_stream_destroy(&self);
  return self;
}

void sentence_stream_destroy(sentence_stream_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  free((*self_p)->spans);
  free((*self_p)->text);
  free(*self_p);
  *self_p = NULL;
}

size_t sentence_stream_count(const sentence_stream_t *self)
{
  return self->count;
}

static bool is_mark(char c)
{
  return c && strchr(".!?\n,;:", c) != NULL;
}

/* Drops the held text before `end`, which went on, and puts LEAD ahead of the rest. */
static void drop_sent(sentence_stream_t *self, size_t end)
{
  size_t rest = self->len - end;
  memmove(self->text + LEAD_LEN, self->text + end, rest + 1);
  memcpy(self->text, LEAD, LEAD_LEN);
  self->len = LEAD_LEN + rest;
  self->lead = LEAD_LEN;
  self->has_mark = false;
  for (size_t i = LEAD_LEN; i < self->len && !self->has_mark; i++)
    self->has_mark = is_mark(self->text[i]);
}

/* Cuts the held text and hands on its complete sentences, or all of them at the
 * end of the reply. */
static int hand_on(sentence_stream_t *self, bool at_end, stage_error_t *err)
{
  if (self->count >= self->max || (!at_end && !self->has_mark))
    return 0;
  size_t left = self->max - self->count;
  size_t found = sentences_split(self->text, self->spans, left + (self->lead ? 1 : 0));
  /* The sentences after LEAD; a short end that rode with LEAD stands alone. */
  size_t kept = 0;
  for (size_t i = 0; i < found; i++) {
    size_t start = self->spans[i].start, end = start + self->spans[i].length;
    if (start < self->lead)
      start = self->lead;
    while (start < end && isspace((unsigned char) self->text[start]))
      start++;
    if (start < end)
      self->spans[kept++] = (sentence_span_t) {.start = start, .length = end - start};
  }
  size_t ready = at_end ? kept : (kept ? kept - 1 : 0);
  if (ready == 0)
    return 0;
  for (size_t i = 0; i < ready; i++) {
    bool last = at_end && i + 1 == ready;
    if (self->fn(self->arg, self->text + self->spans[i].start, self->spans[i].length, self->count,
                 last, err) != 0)
      return -1;
    self->count++;
  }
  drop_sent(self, self->spans[ready - 1].start + self->spans[ready - 1].length);
  return 0;
}

int sentence_stream_feed(sentence_stream_t *self, const char *text, size_t size,
                         stage_error_t *err)
{
  if (size == 0)
    return 0;
  /* Room for LEAD too: the held text may get it in front (drop_sent). */
  if (self->len + size + LEAD_LEN + 1 > self->cap) {
    size_t cap = (self->len + size + LEAD_LEN + 1) * 2;
    char *grown = realloc(self->text, cap);
    if (!grown)
      return stage_error_set(err, "backend_error", "Out of memory while cutting the reply.");
    self->text = grown;
    self->cap = cap;
  }
  /* A NUL inside the text would hide the rest from sentences_split. */
  for (size_t i = 0; i < size; i++) {
    char c = text[i] ? text[i] : ' ';
    self->text[self->len++] = c;
    self->has_mark = self->has_mark || is_mark(c);
  }
  self->text[self->len] = '\0';
  return hand_on(self, false, err);
}

int sentence_stream_finish(sentence_stream_t *self, stage_error_t *err)
{
  return hand_on(self, true, err);
}
