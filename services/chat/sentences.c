/* sentences: splitting a reply into sentences for streaming (see sentences.h). */
#include "sentences.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Words that end in a full stop without ending the sentence. */
static const char *const ABBREVIATIONS[] = {
  "mr", "mrs", "ms", "dr", "prof", "st", "no", "vs", "etc", "approx", "dept", "inc",
  "ltd", "co", "jr", "sr", "mt", "ft", "tel", "ext", "min", "max", "fig", "vol",
  "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
  "mon", "tue", "tues", "wed", "thu", "thurs", "fri", "sat", "sun",
};

static bool is_space(char c) { return isspace((unsigned char) c) != 0; }

/* true when the '.' at text[dot] ends an abbreviation, an initial or a
 * dotted form like "a.m." or "e.g.". */
static bool ends_abbreviation(const char *text, size_t dot)
{
  size_t begin = dot;
  while (begin > 0 && (isalpha((unsigned char) text[begin - 1]) || text[begin - 1] == '.'))
    begin--;
  size_t length = dot - begin;
  if (length == 0)
    return false;
  if (memchr(text + begin, '.', length) || length == 1)
    return true; /* "a.m", "e.g", "U.S" or an initial such as "J" */
  for (size_t i = 0; i < sizeof ABBREVIATIONS / sizeof *ABBREVIATIONS; i++)
    if (strlen(ABBREVIATIONS[i]) == length && strncasecmp(ABBREVIATIONS[i], text + begin, length) == 0)
      return true;
  return false;
}

/* If a sentence ends at text[at] (a terminator), returns the index just past it
 * and its closing quotes or brackets; else 0. */
static size_t sentence_end(const char *text, size_t at)
{
  char c = text[at];
  if (c != '.' && c != '!' && c != '?' && c != '\n')
    return 0;
  size_t end = at + 1;
  while (text[end] == '.' || text[end] == '!' || text[end] == '?')
    end++; /* "?!" and "..." end once */
  while (text[end] == '"' || text[end] == '\'' || text[end] == ')' || text[end] == ']')
    end++;
  if (c == '\n')
    return end;
  if (text[end] && !is_space(text[end]))
    return 0; /* "4.99", "example.com", "a.m" */
  if (c == '.' && end == at + 1 && ends_abbreviation(text, at))
    return 0;
  return end;
}

/* Appends the trimmed text[begin, end) as a span unless it is empty. */
static void add_span(const char *text, size_t begin, size_t end, sentence_span_t *spans,
                     size_t *count)
{
  while (begin < end && is_space(text[begin]))
    begin++;
  while (end > begin && is_space(text[end - 1]))
    end--;
  if (end > begin)
    spans[(*count)++] = (sentence_span_t) {.start = begin, .length = end - begin};
}

/* Cuts a long first span after its first clause (see FIRST_SEGMENT_MAX_BYTES). */
static void cut_first_clause(const char *text, sentence_span_t *spans, size_t *count, size_t max)
{
  sentence_span_t first = spans[0];
  if (*count == 0 || *count >= max || first.length <= FIRST_SEGMENT_MAX_BYTES)
    return;
  for (size_t at = SENTENCE_MIN_BYTES; at + SENTENCE_MIN_BYTES < first.length; at++) {
    const char *c = text + first.start + at;
    if ((*c != ',' && *c != ';' && *c != ':') || !is_space(c[1]))
      continue;
    memmove(spans + 2, spans + 1, (*count - 1) * sizeof *spans);
    (*count)++;
    spans[0].length = at + 1;
    size_t rest = at + 1;
    while (is_space(text[first.start + rest]))
      rest++;
    spans[1] = (sentence_span_t) {.start = first.start + rest, .length = first.length - rest};
    return;
  }
}

size_t sentences_split(const char *text, sentence_span_t *spans, size_t max)
{
  if (!text || max == 0)
    return 0;
  size_t count = 0, begin = 0, length = strlen(text);
  for (size_t at = 0; at < length && count + 1 < max; at++) {
    size_t end = sentence_end(text, at);
    if (!end)
      continue;
    size_t before = count;
    add_span(text, begin, end, spans, &count);
    if (count > before && spans[count - 1].length < SENTENCE_MIN_BYTES)
      count--; /* too short alone: it starts the next sentence instead */
    else
      begin = end;
    at = end - 1;
  }
  add_span(text, begin, length, spans, &count);
  if (count > 1 && spans[count - 1].length < SENTENCE_MIN_BYTES) {
    /* A short closing sentence ("Thanks!") rides with the one before. */
    sentence_span_t *previous = &spans[count - 2];
    previous->length = spans[count - 1].start + spans[count - 1].length - previous->start;
    count--;
  }
  cut_first_clause(text, spans, &count, max);
  return count;
}
