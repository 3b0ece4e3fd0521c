/* kb: the offline chat backend. Answers from the knowledge base (KNOWLEDGE_FILE)
 * by BM25 retrieval over each entry's phrasings and answer, with small talk, a
 * confidence threshold below which the polite fallback answers, follow-ups
 * ("and on saturday?") read together with the previous question, and several
 * questions in one ("when are you open and where are you?") answered in turn. */
#include "bm25.h"
#include "chat_backend.h"
#include "config.h"
#include "knowledge.h"
#include "log.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Share of a question's weighted IDF mass an entry must explain to be the answer.
 * Half: "is delivery free" is fully explained, "what's the capital of france" not
 * at all, "do you sell televisions" only by "sell". */
#define TOPIC_MIN_COVERAGE 0.5
/* ... and the entry's closest phrasing must be at least this much in the question. */
#define PHRASING_MIN_COVERAGE 0.5
/* Small talk answers first only when it explains nearly all of the utterance, so
 * "hi, when are you open?" is about the hours, while "good morning" is a greeting. */
#define SMALL_TALK_SURE_COVERAGE 0.8
/* ... and last, when no topic fits but the utterance is mostly small talk. */
#define SMALL_TALK_MIN_COVERAGE 0.5
/* An answer mentions many things in passing; its words count less than a phrasing's. */
#define ANSWER_WEIGHT 0.5
/* Words borrowed from the previous question count half, so the new words decide; the
 * words of the topic the previous reply came from count a quarter. */
#define CONTEXT_WEIGHT 0.5
#define TOPIC_CONTEXT_WEIGHT 0.25

typedef struct {
  chat_backend_t base;          /* first, so a chat_backend_t * is a chat_kb_t * */
  knowledge_t *knowledge;
  bm25_index_t *topics;         /* entries: phrasings and answers, stop words dropped */
  bm25_index_t *small_talk;     /* small talk phrasings, stop words kept */
  text_terms_t assistant_name;  /* "ava", "brightside": ignored in questions, "hi ava" is "hi" */
  char *path;                   /* the knowledge file, watched for changes */
  struct stat loaded;           /* its identity and mtime when last read */
} chat_kb_t;

/* A weighted query; `terms` owns the strings `items` point to. */
typedef struct {
  text_terms_t terms;
  bm25_query_term_t *items;
  size_t count;
  size_t capacity;
} query_t;

static void query_clear(query_t *query)
{
  text_terms_clear(&query->terms);
  free(query->items);
  memset(query, 0, sizeof *query);
}

/* Adds `term` at `weight`; a term already present keeps the larger weight. */
static int query_push(query_t *query, const char *term, double weight)
{
  for (size_t i = 0; i < query->count; i++)
    if (strcmp(query->items[i].term, term) == 0) {
      if (weight > query->items[i].weight)
        query->items[i].weight = weight;
      return 0;
    }
  if (query->count == query->capacity) {
    size_t capacity = query->capacity ? query->capacity * 2 : 16;
    bm25_query_term_t *items = realloc(query->items, capacity * sizeof *items);
    if (!items)
      return -1;
    query->items = items;
    query->capacity = capacity;
  }
  if (text_terms_push(&query->terms, term) < 0)
    return -1;
  query->items[query->count].term = query->terms.items[query->terms.count - 1];
  query->items[query->count].weight = weight;
  query->count++;
  return 0;
}

/* An everyday word the knowledge base never uses ("another", "before", "look")
 * counts this much of a rarer unknown word in the question's mass. */
#define COMMON_UNKNOWN_WEIGHT 0.25

/* How much a term of the question counts for a search of `index`. */
static double unknown_term_share(const chat_kb_t *self, const bm25_index_t *index,
                                 const char *term)
{
  if (index != self->topics || bm25_index_knows(index, term) || !text_is_common_term(term))
    return 1.0;
  return COMMON_UNKNOWN_WEIGHT;
}

/* Adds the terms of `text` for a search of `index` (`mode` says whether stop words
 * stay). For topics, words only small talk knows ("hello", "thanks") are left out:
 * they say nothing about the topic and would read as unknown words, hiding a real
 * question behind a greeting. */
static int query_add_terms(const chat_kb_t *self, query_t *query, const char *text,
                           const bm25_index_t *index, double weight, text_mode_t mode)
{
  bool for_topics = index == self->topics;
  text_terms_t terms = { 0 };
  int rc = text_terms_append(&terms, text, mode);
  for (size_t i = 0; rc == 0 && i < terms.count; i++) {
    const char *term = terms.items[i];
    if (text_terms_contains(&self->assistant_name, term))
      continue;
    if (for_topics && !bm25_index_knows(self->topics, term) &&
        bm25_index_knows(self->small_talk, term))
      continue;
    rc = query_push(query, term, weight * unknown_term_share(self, index, term));
  }
  text_terms_clear(&terms);
  return rc;
}

/* query_add_terms with the index's own mode: topics without stop words, small talk
 * with them. */
static int query_add_text(const chat_kb_t *self, query_t *query, const char *text,
                          const bm25_index_t *index, double weight)
{
  return query_add_terms(self, query, text, index, weight,
                         index == self->topics ? TEXT_DROP_STOP_WORDS : TEXT_KEEP_STOP_WORDS);
}

/* Best entry of `index` for `question`, optionally read with `context` (an earlier
 * question) at CONTEXT_WEIGHT. */
static int best_match(const chat_kb_t *self, const bm25_index_t *index, size_t entry_count,
                      const char *question, const char *context, bm25_match_t *match)
{
  query_t query = { 0 };
  int rc = query_add_text(self, &query, question, index, 1.0);
  if (rc == 0 && context)
    rc = query_add_text(self, &query, context, index, CONTEXT_WEIGHT);
  if (rc == 0)
    rc = bm25_index_best(index, query.items, query.count, entry_count, ANSWER_WEIGHT, match);
  query_clear(&query);
  return rc;
}

static bool is_confident(const bm25_match_t *match)
{
  return match->entry >= 0 && match->coverage >= TOPIC_MIN_COVERAGE &&
         match->phrasing_coverage >= PHRASING_MIN_COVERAGE;
}

/* How many of the best-scoring topics are considered, and how close to the best one
 * a confident runner-up must score to answer instead of it. */
#define TOPIC_CANDIDATES 4
#define RUNNER_UP_MIN_SHARE 0.75
/* Longest question of stop words only that is looked up by them, and the share of a
 * phrasing it must hold (all of it, give or take rounding). */
#define STOP_WORD_QUESTION_MAX_WORDS 4
#define WHOLE_PHRASING 0.999

/* The best topic for `question` (with `context` at CONTEXT_WEIGHT and `topic_context`
 * at TOPIC_CONTEXT_WEIGHT, both optional), preferring a confident one: entries with
 * many paraphrases share words, and a sibling topic ("are you open on saturday") can
 * edge ahead on a plain "what are your hours" while matching none of its phrasings
 * well. A confident entry scoring close to the best answers instead. */
static int best_topic(const chat_kb_t *self, const char *question, const char *context,
                      const char *topic_context, bm25_match_t *match)
{
  query_t query = { 0 };
  bm25_match_t top[TOPIC_CANDIDATES];
  size_t found = 0;
  int rc = query_add_text(self, &query, question, self->topics, 1.0);
  /* A short question of stop words only ("where are you") is looked up with them, as
   * such phrasings are indexed (phrasing_terms), and must hold one of them whole:
   * "how are you" is not "where are you". A longer run of them is more likely a
   * transcript that lost its words ("is there and i'm where i can really"). */
  bool stop_words_only = false;
  if (rc == 0 && query.count == 0) {
    rc = query_add_terms(self, &query, question, self->topics, 1.0, TEXT_KEEP_STOP_WORDS);
    if (query.count > STOP_WORD_QUESTION_MAX_WORDS)
      query_clear(&query);
    stop_words_only = true;
  }
  if (rc == 0 && context)
    rc = query_add_text(self, &query, context, self->topics, CONTEXT_WEIGHT);
  if (rc == 0 && topic_context)
    rc = query_add_text(self, &query, topic_context, self->topics, TOPIC_CONTEXT_WEIGHT);
  if (rc == 0)
    rc = bm25_index_top(self->topics, query.items, query.count, self->knowledge->entry_count,
                        ANSWER_WEIGHT, top, TOPIC_CANDIDATES, &found);
  query_clear(&query);
  *match = found ? top[0] : (bm25_match_t) { .entry = -1 };
  for (size_t i = 0; rc == 0 && i < found; i++)
    if (is_confident(&top[i]) && top[i].score >= RUNNER_UP_MIN_SHARE * top[0].score) {
      *match = top[i];
      break;
    }
  if (stop_words_only && match->phrasing_coverage < WHOLE_PHRASING)
    *match = (bm25_match_t) { .entry = -1 };
  return rc;
}

/* Most questions one utterance gets answers to; a person asks two, rarely three. */
#define SEPARATE_QUESTIONS_MAX 3

/* The answers to the separate questions in `question`: the entries its parts
 * (text_split_questions) each match confidently, in the order asked, each once. A
 * part that leans on the one before ("how much is the pro plan and how do I cancel
 * it") is read with it, as a follow-up is with the previous question. Returns how
 * many (fewer than two: nothing to answer apart), or -1 when out of memory. */
static int separate_answers(const chat_kb_t *self, const char *question,
                            const char *answers[SEPARATE_QUESTIONS_MAX])
{
  text_terms_t parts = { 0 };
  long entries[SEPARATE_QUESTIONS_MAX];
  int found = 0;
  int rc = text_split_questions(question, &parts, SEPARATE_QUESTIONS_MAX);
  for (size_t i = 0; rc == 0 && parts.count > 1 && i < parts.count; i++) {
    bm25_match_t topic;
    bool leans = text_is_follow_up(parts.items[i]);
    rc = best_topic(self, parts.items[i], leans && i > 0 ? parts.items[i - 1] : NULL, NULL,
                    &topic);
    /* A first part that leans on nothing before it ("is it free, and ...") is about
     * the person's earlier topic, unless it says one of the entry's phrasings whole
     * (a recognizer's stray "it": "when are you open it and ..."). */
    bool unmoored = leans && i == 0 && topic.phrasing_coverage < WHOLE_PHRASING;
    if (rc < 0 || !is_confident(&topic) || unmoored)
      continue;
    bool again = false;
    for (int j = 0; j < found; j++)
      again = again || entries[j] == topic.entry;
    if (!again) {
      entries[found] = topic.entry;
      answers[found++] = self->knowledge->entries[topic.entry].answer;
    }
  }
  text_terms_clear(&parts);
  return rc < 0 ? -1 : found;
}

/* Joins `count` answers with a space into a malloc'd reply; NULL when out of memory. */
static char *join_answers(const char *const *answers, int count)
{
  size_t size = 1;
  for (int i = 0; i < count; i++)
    size += strlen(answers[i]) + 1;
  char *reply = malloc(size);
  if (!reply)
    return NULL;
  size_t used = 0;
  for (int i = 0; i < count; i++)
    used += (size_t) snprintf(reply + used, size - used, "%s%s", i ? " " : "", answers[i]);
  return reply;
}

static const char *previous_turn(const chat_turn_t *history, size_t history_len, const char *role)
{
  for (size_t i = history_len; history && i > 0; i--) {
    const chat_turn_t *turn = &history[i - 1];
    if (turn->role && turn->text && strcmp(turn->role, role) == 0)
      return turn->text;
  }
  return NULL;
}

static const char *previous_user_turn(const chat_turn_t *history, size_t history_len)
{
  return previous_turn(history, history_len, "user");
}

/* The entry the previous reply answered from (the last one it holds, for a reply to
 * several questions), or -1: a follow-up to a follow-up ("do you ship to germany",
 * "how long does that take", "is it free") still knows the topic. */
static long previous_topic(const chat_kb_t *self, const chat_turn_t *history, size_t history_len)
{
  const char *reply = previous_turn(history, history_len, "assistant");
  long topic = -1;
  const char *latest = NULL;
  for (size_t e = 0; reply && e < self->knowledge->entry_count; e++) {
    const char *found = strstr(reply, self->knowledge->entries[e].answer);
    if (found && (!latest || found > latest)) {
      latest = found;
      topic = (long) e;
    }
  }
  return topic;
}

/* How many words of `question` say something about a topic (stop words, small talk
 * and the assistant's name say nothing). */
static size_t topic_term_count(const chat_kb_t *self, const char *question)
{
  query_t query = { 0 };
  size_t count = query_add_text(self, &query, question, self->topics, 1.0) == 0 ? query.count : 0;
  query_clear(&query);
  return count;
}

/* Small talk answers the last thing said: "ok thanks, bye" is a goodbye, "hi, how are
 * you" asks after the assistant. Replaces *match with the small talk of the
 * utterance's last clause (after its last joining word, full stop or comma) when
 * that clause alone is plainly small talk. Returns 0 or -1. */
static int small_talk_said_last(const chat_kb_t *self, const char *question, bm25_match_t *match)
{
  text_terms_t parts = { 0 };
  int rc = text_split_questions(question, &parts, SEPARATE_QUESTIONS_MAX);
  if (rc == 0 && parts.count > 0) {
    const char *last = parts.items[parts.count - 1];
    const char *comma = strrchr(last, ',');
    bm25_match_t said_last;
    rc = best_match(self, self->small_talk, self->knowledge->small_talk_count,
                    comma ? comma + 1 : last, NULL, &said_last);
    if (rc == 0 && said_last.entry >= 0 && said_last.coverage >= SMALL_TALK_SURE_COVERAGE)
      *match = said_last;
  }
  text_terms_clear(&parts);
  return rc;
}

/* Picks the answer text (owned by the knowledge base) for `question`. */
static int choose_answer(const chat_kb_t *self, const char *question, const chat_turn_t *history,
                         size_t history_len, const char **answer)
{
  const knowledge_t *knowledge = self->knowledge;
  bm25_match_t small_talk, topic;
  if (best_match(self, self->small_talk, knowledge->small_talk_count, question, NULL,
                 &small_talk) < 0)
    return -1;
  if (small_talk.entry >= 0 && small_talk.coverage >= SMALL_TALK_SURE_COVERAGE) {
    if (small_talk_said_last(self, question, &small_talk) < 0)
      return -1;
    *answer = knowledge->small_talk[small_talk.entry].answer;
    return 0;
  }
  if (best_topic(self, question, NULL, NULL, &topic) < 0)
    return -1;
  /* A question is read with the conversation (the previous question, and the topic
   * the previous reply came from) when it points back ("how long does that take"),
   * alone fits no topic, or has a single topic word ("and on saturday", "how many
   * days do i have" just after returns). One with no topic word of its own ("ok,
   * thanks") is never given the previous topic. */
  const char *previous = previous_user_turn(history, history_len);
  size_t own_terms = previous ? topic_term_count(self, question) : 0;
  if (own_terms > 0 &&
      (!is_confident(&topic) || text_refers_back(question) || own_terms == 1)) {
    long previous_entry = previous_topic(self, history, history_len);
    const char *topic_question =
      previous_entry >= 0 ? self->knowledge->entries[previous_entry].questions[0] : NULL;
    bm25_match_t in_context;
    if (best_topic(self, question, previous, topic_question, &in_context) < 0)
      return -1;
    if (is_confident(&in_context))
      topic = in_context;
  }
  if (is_confident(&topic)) {
    *answer = knowledge->entries[topic.entry].answer;
  } else if (small_talk.entry >= 0 && small_talk.coverage >= SMALL_TALK_MIN_COVERAGE) {
    if (small_talk_said_last(self, question, &small_talk) < 0)
      return -1;
    *answer = knowledge->small_talk[small_talk.entry].answer;
  } else {
    *answer = knowledge->fallback;
  }
  return 0;
}

long chat_kb_retrieve(const chat_backend_t *kb, const char *question, const chat_turn_t *history,
                      size_t history_len, const knowledge_entry_t **entries, size_t max)
{
  const chat_kb_t *self = (const chat_kb_t *) kb;
  const knowledge_t *knowledge = self->knowledge;
  bm25_match_t *top = calloc(max ? max : 1, sizeof *top);
  query_t query = { 0 };
  int rc = top ? query_add_text(self, &query, question ? question : "", self->topics, 1.0) : -1;
  /* The previous question joins at half weight, so a follow-up ("and on
   * saturday?") still finds its topic. */
  const char *previous = previous_user_turn(history, history_len);
  if (rc == 0 && previous)
    rc = query_add_text(self, &query, previous, self->topics, CONTEXT_WEIGHT);
  size_t found = 0;
  if (rc == 0)
    rc = bm25_index_top(self->topics, query.items, query.count, knowledge->entry_count,
                        ANSWER_WEIGHT, top, max, &found);
  for (size_t i = 0; rc == 0 && i < found; i++)
    entries[i] = &knowledge->entries[top[i].entry];
  query_clear(&query);
  free(top);
  return rc == 0 ? (long) found : -1;
}

const knowledge_t *chat_kb_knowledge(const chat_backend_t *kb)
{
  return ((const chat_kb_t *) kb)->knowledge;
}

static void kb_reload_if_changed(chat_kb_t *self);

static int kb_reply(chat_backend_t *base, const char *question, const chat_turn_t *history,
                    size_t history_len, char **reply, stage_error_t *err)
{
  chat_kb_t *self = (chat_kb_t *) base;
  kb_reload_if_changed(self);
  const char *answers[SEPARATE_QUESTIONS_MAX];
  int separate = separate_answers(self, question ? question : "", answers);
  if (separate < 0 ||
      (separate < 2 &&
       choose_answer(self, question ? question : "", history, history_len, &answers[0]) < 0))
    return stage_error_set(err, "backend_error", "Out of memory while looking up the answer.");
  *reply = join_answers(answers, separate < 2 ? 1 : separate);
  if (!*reply)
    return stage_error_set(err, "backend_error", "Out of memory while copying the answer.");
  return 0;
}

static void kb_destroy(chat_backend_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  chat_kb_t *self = (chat_kb_t *) *self_p;
  knowledge_destroy(&self->knowledge);
  bm25_index_destroy(&self->topics);
  bm25_index_destroy(&self->small_talk);
  text_terms_clear(&self->assistant_name);
  free(self->path);
  free(self);
  *self_p = NULL;
}

/* The terms a phrasing is indexed by in `mode`: a phrasing of stop words only ("where
 * are you") keeps them, or it could never be found (best_topic looks such questions
 * up the same way). Returns 0 or -1. */
static int phrasing_terms(const char *phrasing, text_mode_t mode, text_terms_t *terms)
{
  int rc = text_terms_append(terms, phrasing, mode);
  if (rc == 0 && terms->count == 0 && mode == TEXT_DROP_STOP_WORDS)
    rc = text_terms_append(terms, phrasing, TEXT_KEEP_STOP_WORDS);
  return rc;
}

/* Indexes every phrasing of `entries` (and, when `with_answers`, every answer). */
static int index_entries(bm25_index_t *index, const knowledge_entry_t *entries, size_t count,
                         text_mode_t mode, bool with_answers)
{
  int rc = 0;
  for (size_t e = 0; rc == 0 && e < count; e++)
    for (size_t q = 0; rc == 0 && q <= entries[e].question_count; q++) {
      bool is_answer = q == entries[e].question_count;
      if (is_answer && !with_answers)
        break;
      text_terms_t terms = { 0 };
      rc = is_answer ? text_terms_append(&terms, entries[e].answer, mode)
                     : phrasing_terms(entries[e].questions[q], mode, &terms);
      if (rc == 0)
        rc = bm25_index_add(index, e, is_answer, &terms);
      text_terms_clear(&terms);
    }
  return rc;
}

/* Joins `terms` with spaces into `out` (`size` bytes); false when it does not fit. */
static bool join_terms(const text_terms_t *terms, char *out, size_t size)
{
  size_t length = 0;
  out[0] = '\0';
  for (size_t i = 0; i < terms->count; i++) {
    int written = snprintf(out + length, size - length, "%s%s", i ? " " : "", terms->items[i]);
    if (written < 0 || (size_t) written >= size - length)
      return false;
    length += (size_t) written;
  }
  return true;
}

/* Indexes the sentences of every entry's paraphrase templates as more phrasings:
 * each one is a way of asking, so it may be the entry's closest phrasing. Sentences
 * that differ only in words retrieval drops ("what are" / "what're") are indexed
 * once: a template's many spellings must not make its words look common. */
static int index_paraphrases(bm25_index_t *index, const knowledge_entry_t *entries, size_t count)
{
  int rc = 0;
  for (size_t e = 0; rc == 0 && e < count; e++) {
    text_terms_t seen = { 0 };
    for (size_t p = 0; rc == 0 && p < entries[e].paraphrase_count; p++) {
      text_terms_t terms = { 0 };
      char joined[TEXT_MAX_BYTES];
      rc = phrasing_terms(entries[e].paraphrases[p], TEXT_DROP_STOP_WORDS, &terms);
      bool fits = rc == 0 && join_terms(&terms, joined, sizeof joined);
      if (fits && !text_terms_contains(&seen, joined)) {
        rc = text_terms_push(&seen, joined);
        if (rc == 0)
          rc = bm25_index_add(index, e, false, &terms);
      }
      text_terms_clear(&terms);
    }
    text_terms_clear(&seen);
  }
  return rc;
}

/* The business's own name says nothing about the topic either ("can i work at
 * brightside"), even where an answer mentions it (an e-mail address). */
static int add_business_name(chat_kb_t *self)
{
  return text_terms_append(&self->assistant_name, self->knowledge->name, TEXT_DROP_STOP_WORDS);
}

static int build_indexes(chat_kb_t *self)
{
  const knowledge_t *knowledge = self->knowledge;
  self->topics = bm25_index_new();
  self->small_talk = bm25_index_new();
  if (!self->topics || !self->small_talk)
    return -1;
  if (index_entries(self->topics, knowledge->entries, knowledge->entry_count,
                    TEXT_DROP_STOP_WORDS, true) < 0 ||
      index_entries(self->small_talk, knowledge->small_talk, knowledge->small_talk_count,
                    TEXT_KEEP_STOP_WORDS, false) < 0)
    return -1;
  if (index_paraphrases(self->topics, knowledge->entries, knowledge->entry_count) < 0)
    return -1;
  bm25_index_finish(self->topics);
  bm25_index_finish(self->small_talk);
  if (text_terms_append(&self->assistant_name, knowledge->assistant, TEXT_KEEP_STOP_WORDS) < 0)
    return -1;
  return add_business_name(self);
}

/* Speech the recognizer was unsure of gets the fallback, which lists what the
 * assistant can help with, so the person knows how to ask again. */
static int kb_reply_unheard(chat_backend_t *base, char **reply, stage_error_t *err)
{
  chat_kb_t *self = (chat_kb_t *) base;
  kb_reload_if_changed(self);
  *reply = strdup(self->knowledge->fallback);
  if (!*reply)
    return stage_error_set(err, "backend_error", "Out of memory while copying the answer.");
  return 0;
}

static bool same_file_version(const struct stat *a, const struct stat *b)
{
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Re-reads the knowledge file when it changed since it was last read (an editor's
 * save, or a new file moved into place). A file that fails validation is logged with
 * the entry and field at fault, and the knowledge base in use stays: a typo must not
 * take the help desk down. One stat per question is far cheaper than an answer. */
static void kb_reload_if_changed(chat_kb_t *self)
{
  struct stat now;
  if (stat(self->path, &now) != 0 || same_file_version(&now, &self->loaded))
    return;
  self->loaded = now;                 /* a broken version is reported once, not per question */
  stage_error_t err = { 0 };
  chat_kb_t next = { 0 };
  next.knowledge = knowledge_load(self->path, &err);
  if (!next.knowledge) {
    log_msg(LOG_ERROR, "knowledge_reload_failed", "%s (still answering from the previous "
            "version)", err.message);
    return;
  }
  if (build_indexes(&next) < 0) {
    log_msg(LOG_ERROR, "knowledge_reload_failed", "%s: out of memory while indexing", self->path);
  } else {
    chat_kb_t old = *self;
    self->knowledge = next.knowledge;
    self->topics = next.topics;
    self->small_talk = next.small_talk;
    self->assistant_name = next.assistant_name;
    next = old;                       /* the previous version is freed below */
    log_msg(LOG_INFO, "knowledge_reloaded", "%s: %zu entries, %zu small talk", self->path,
            self->knowledge->entry_count, self->knowledge->small_talk_count);
  }
  knowledge_destroy(&next.knowledge);
  bm25_index_destroy(&next.topics);
  bm25_index_destroy(&next.small_talk);
  text_terms_clear(&next.assistant_name);
}

chat_backend_t *chat_kb_new(stage_error_t *err)
{
  const char *path = config_str("KNOWLEDGE_FILE", CHAT_KNOWLEDGE_DEFAULT);
  knowledge_t *knowledge = knowledge_load(path, err);
  if (!knowledge)
    return NULL;
  chat_kb_t *self = calloc(1, sizeof *self);
  if (!self) {
    knowledge_destroy(&knowledge);
    stage_error_set(err, "backend_error", "Out of memory while loading the knowledge base.");
    return NULL;
  }
  self->base.name = "kb";
  self->base.reply = kb_reply;
  self->base.destroy = kb_destroy;
  self->base.reply_unheard = kb_reply_unheard;
  self->knowledge = knowledge;
  self->path = strdup(path);
  if (!self->path || stat(path, &self->loaded) != 0) {
    chat_backend_t *base = &self->base;
    kb_destroy(&base);
    stage_error_set(err, "backend_error", "Cannot watch the knowledge base %s.", path);
    return NULL;
  }
  if (build_indexes(self) < 0) {
    chat_backend_t *base = &self->base;
    kb_destroy(&base);
    stage_error_set(err, "backend_error", "Out of memory while indexing the knowledge base.");
    return NULL;
  }
  log_msg(LOG_INFO, "knowledge_loaded", "%s: %zu entries, %zu small talk", path,
          knowledge->entry_count, knowledge->small_talk_count);
  return &self->base;
}
