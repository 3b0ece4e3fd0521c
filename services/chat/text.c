/* text: normalisation, synonyms and stemming for the knowledge-base responder. */
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Words that say nothing about the topic of a help-desk question. "help", "need"
 * and "want" are here because almost every question could carry them. */
static const char *const stop_words[] = {
  "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "anything", "are",
  "as", "at", "be", "been", "being", "but", "by", "can", "could", "did", "do", "does", "doing",
  "for", "from", "get", "getting", "got", "had", "has", "have", "having", "he", "help", "her",
  "here", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "know", "let",
  "like", "many", "me", "might", "much", "must", "my", "need", "not", "of", "on",
  "or", "our", "really", "she", "should", "so", "some", "something", "tell", "than",
  "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "too", "until",
  "up", "us", "very", "want", "was", "we", "were", "what", "when", "where", "which", "who", "why",
  "will", "with", "would", "you", "your", "yours",
  /* pronouns, quantifiers and adverbs people add when they speak freely */
  "anybody", "anyone", "anywhere", "somewhere", "everyone", "each", "every", "exactly",
  "easily", "still", "ever", "else", "guys", "guy", "folks", "i'm", "im", "per", "way",
  "possible", "able", "okay", "sure", "whether", "soon", "quickly", "fast", "there's",
  "use", "using", "user",
};

/* Fillers that carry nothing in either mode: "ok bye" is "bye", and "how are you
 * doing today" is "how are you doing", not a question about today's hours. */
static const char *const filler_words[] = {
  "ok", "okay", "oh", "um", "uh", "er", "erm", "hmm", "alright", "please", "actually", "today",
  "now", "wonder", "wondering", "curious", "yo",
};

/* How people spell words when they type fast: "what time u open", "whats ur address". */
static const struct {
  const char *typed;
  const char *word;
} chat_spellings[] = {
  { "u", "you" },     { "ur", "your" },   { "r", "are" },     { "pls", "please" },
  { "plz", "please" }, { "thx", "thanks" }, { "whats", "what's" }, { "wanna", "want" },
};

/* The 500 most likely words of PocketSphinx's generic en-us language model (Debian
 * pocketsphinx-en-us), sorted. A question word the knowledge base never uses counts
 * as evidence of another topic, unless it is this common: "can i swap it for another
 * one" is still about exchanges, "what's the capital of france" is not. */
static const char *const common_words[] = {
  "a", "able", "about", "actually", "after", "again", "against", "age", "ago", "agree", "ah",
  "all", "almost", "already", "also", "always", "am", "american", "an", "and", "another",
  "any", "anyone", "anything", "are", "area", "aren't", "around", "as", "ask", "asked", "at",
  "away", "back", "bad", "be", "because", "become", "been", "before", "being", "believe",
  "best", "better", "between", "big", "bit", "both", "business", "but", "buy", "by", "call",
  "called", "came", "can", "can't", "car", "care", "case", "cause", "change", "children",
  "city", "close", "college", "come", "comes", "coming", "company", "computer", "cool",
  "could", "couldn't", "country", "couple", "course", "day", "days", "deal", "definitely",
  "did", "didn't", "different", "do", "does", "doesn't", "doing", "dollars", "don't", "done",
  "down", "during", "each", "easy", "eat", "eight", "eighty", "either", "else", "end",
  "enough", "er", "especially", "even", "ever", "every", "everybody", "everyone", "everything",
  "exactly", "experience", "face", "fact", "family", "far", "feel", "few", "fifteen", "fifty",
  "find", "fine", "first", "five", "food", "for", "forty", "found", "four", "free", "friend",
  "friends", "from", "full", "fun", "funny", "game", "games", "get", "gets", "getting", "give",
  "given", "go", "god", "goes", "going", "gonna", "good", "got", "government", "great",
  "group", "guess", "guy", "guys", "had", "half", "hand", "happen", "happened", "happy",
  "hard", "has", "have", "haven't", "having", "he", "he's", "head", "health", "hear", "heard",
  "help", "her", "here", "hey", "hi", "high", "him", "his", "hit", "home", "hope", "hours",
  "house", "how", "however", "huh", "hundred", "i", "i'd", "i'll", "i'm", "i've", "idea", "if",
  "important", "in", "instead", "interesting", "into", "is", "isn't", "issue", "it", "it's",
  "its", "job", "just", "keep", "kids", "kind", "kinda", "knew", "know", "last", "later",
  "least", "leave", "left", "less", "let", "let's", "level", "life", "like", "likely", "line",
  "little", "live", "living", "long", "look", "looking", "looks", "lost", "lot", "love",
  "made", "make", "makes", "making", "man", "many", "market", "matter", "may", "maybe", "me",
  "mean", "means", "men", "might", "million", "mind", "minutes", "money", "month", "months",
  "more", "most", "move", "movie", "mr", "much", "must", "my", "myself", "name", "need",
  "needs", "never", "new", "news", "next", "nice", "night", "nine", "ninety", "no", "not",
  "nothing", "now", "number", "of", "off", "often", "oh", "okay", "old", "on", "once", "one",
  "ones", "only", "open", "or", "other", "others", "our", "out", "outside", "over", "own",
  "parents", "part", "past", "pay", "people", "percent", "person", "phone", "place", "play",
  "playing", "please", "point", "possible", "post", "power", "president", "pretty", "probably",
  "problem", "public", "put", "question", "quite", "rather", "read", "real", "really",
  "reason", "remember", "right", "room", "run", "said", "same", "saw", "say", "saying", "says",
  "school", "second", "see", "seem", "seems", "seen", "sense", "set", "seven", "seventy",
  "she", "she's", "shit", "should", "show", "side", "since", "six", "sixty", "small", "so",
  "some", "somebody", "someone", "something", "sometimes", "sorry", "sort", "start", "started",
  "state", "states", "stay", "still", "stop", "story", "stuff", "such", "support", "supposed",
  "sure", "system", "t", "take", "taking", "talk", "talking", "team", "tell", "ten", "than",
  "thank", "thanks", "that", "that's", "the", "their", "them", "then", "there", "there's",
  "these", "they", "they're", "thing", "things", "think", "thinking", "thirty", "this",
  "those", "though", "thought", "thousand", "three", "through", "time", "times", "to", "today",
  "together", "told", "too", "took", "top", "true", "try", "trying", "turn", "twenty", "two",
  "under", "understand", "united", "until", "up", "us", "use", "used", "using", "usually", "v",
  "very", "wait", "want", "wanted", "war", "was", "wasn't", "watch", "water", "way", "we",
  "we're", "we've", "week", "well", "went", "were", "what", "what's", "whatever", "when",
  "where", "whether", "which", "while", "white", "who", "whole", "why", "will", "with",
  "without", "women", "won't", "work", "working", "world", "would", "wouldn't", "wow", "wrong",
  "yeah", "year", "years", "yes", "yet", "york", "you", "you're", "you've", "young", "your",
  "yourself", "zero",
};

/* Two spoken words that mean one thing (and that speech recognisers split). */
static const struct {
  const char *first;
  const char *second;
  const char *joined;
} phrases[] = {
  { "wi", "fi", "wifi" },       { "e", "mail", "email" },    { "log", "in", "sign" },
  { "log", "on", "sign" },      { "sign", "in", "sign" },    { "money", "back", "refund" },
  { "how", "much", "price" },   { "car", "park", "parking" }, { "gift", "voucher", "gift" },
  { "drop", "in", "visit" },    { "drop", "by", "visit" },   { "stop", "by", "visit" },
  { "come", "by", "visit" },    { "pop", "in", "visit" },     { "in", "touch", "contact" },
  { "locked", "out", "sign" },  { "get", "online", "wifi" },  { "go", "online", "wifi" },
  { "new", "year", "holiday" }, { "money", "off", "discount" }, { "file", "a", "complaint" },
  { "sign", "up", "plan" },     { "set", "up", "book" },      { "show", "up", "arrive" },
  { "shown", "up", "arrive" },  { "turn", "up", "arrive" },   { "turned", "up", "arrive" },
};

/* Different words people use for one topic, folded onto the word the knowledge base
 * uses. Looked up as written, then stem against stem, so plurals need no line of
 * their own. */
static const struct {
  const char *word;
  const char *canonical;
} synonyms[] = {
  { "delivery", "shipping" },   { "deliver", "shipping" },     { "postage", "shipping" },
  { "ship", "shipping" },       { "open", "hours" },           { "close", "hours" },
  { "clos", "hours" },          { "dog", "pet" },              { "cat", "pet" },
  { "animal", "pet" },          { "puppy", "pet" },            { "wheelchair", "access" },
  { "disabled", "access" },     { "disability", "access" },    { "accessible", "access" },
  { "accessibility", "access" }, { "ramp", "access" },         { "internet", "wifi" },
  { "wireless", "wifi" },       { "mail", "email" },           { "telephone", "phone" },
  { "call", "phone" },          { "ring", "phone" },           { "human", "person" },
  { "someone", "person" },      { "somebody", "person" },      { "staff", "person" },
  { "representative", "person" }, { "agent", "person" },       { "employee", "person" },
  { "supervisor", "manager" },  { "boss", "manager" },         { "career", "job" },
  { "hiring", "job" },          { "hire", "job" },             { "vacancy", "job" },
  { "position", "job" },        { "guarantee", "warranty" },
  { "broken", "warranty" },     { "faulty", "warranty" },      { "defective", "warranty" },
  { "repair", "warranty" },     { "reimburse", "refund" },     { "reimbursement", "refund" },
  { "purchase", "buy" },        { "bought", "buy" },           { "subscription", "plan" },
  { "membership", "plan" },     { "subscribe", "plan" },       { "parcel", "package" },
  { "abroad", "international" }, { "overseas", "international" },
  { "internationally", "international" }, { "worldwide", "international" },
  { "eu", "europe" },           { "european", "europe" },      { "login", "sign" },
  { "signin", "sign" },         { "deal", "discount" },        { "coupon", "discount" },
  { "promotion", "discount" },  { "reward", "loyalty" },       { "voucher", "gift" },
  { "cost", "price" },          { "pricing", "price" },        { "fee", "price" },
  { "charge", "price" },        { "location", "located" },     { "shop", "store" },
  { "booking", "appointment" }, { "book", "appointment" },     { "schedule", "appointment" },
  { "reservation", "appointment" }, { "message", "chat" },     { "payment", "pay" },
  { "paid", "pay" },            { "passcode", "password" },    { "forgot", "reset" },
  { "forgotten", "reset" },     { "forget", "reset" },         { "information", "data" },
  { "info", "data" },           { "details", "data" },         { "complain", "complaint" },  { "stuff", "order" },         { "amex", "american" },
  { "visa", "card" },           { "easter", "holiday" },       { "christmas", "holiday" },
  { "thanksgiving", "holiday" }, { "dial", "phone" },
  { "reach", "contact" },       { "swap", "exchange" },        { "unsubscribe", "cancel" },
  { "expiry", "expire" },       { "expiration", "expire" },    { "valid", "expire" },
  { "guaranteed", "warranty" }, { "place", "store" },          { "website", "online" },
  { "site", "online" },         { "web", "online" },           { "customer", "personal" },
  { "vacancies", "job" },       { "recruit", "job" },          { "employment", "job" },
  { "entrance", "access" },     { "pup", "pet" },              { "nearby", "near" },
  { "sale", "sell" },           { "received", "got" },              { "delivered", "shipping" },
  { "mastercard", "card" },      { "debit", "credit" },         { "cheap", "price" },
  { "cheaper", "price" },       { "cheapest", "price" },       { "expensive", "price" },
  { "cancellation", "cancel" }, { "break", "warranty" },
  /* what an electronics shop sells is "an item" to every policy */
  { "product", "item" },        { "headphone", "item" },       { "laptop", "item" },
  { "computer", "item" },       { "television", "item" },      { "tv", "item" },
  { "camera", "item" },         { "speaker", "item" },         { "tablet", "item" },
  { "charger", "item" },        { "device", "item" },          { "gadget", "item" },
  /* countries people name when they mean "do you ship abroad" */
  { "germany", "international" }, { "france", "international" }, { "spain", "international" },
  { "italy", "international" }, { "uk", "international" },    { "britain", "international" },
  { "england", "international" }, { "ireland", "international" },
};

static const char *const ones[] = {
  "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
  "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
  "nineteen",
};
static const char *const tens[] = {
  "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
};

#define COUNT_OF(array) (sizeof(array) / sizeof *(array))

int text_terms_push(text_terms_t *terms, const char *term)
{
  if (terms->count == terms->capacity) {
    size_t capacity = terms->capacity ? terms->capacity * 2 : 16;
    char **items = realloc(terms->items, capacity * sizeof *items);
    if (!items)
      return -1;
    terms->items = items;
    terms->capacity = capacity;
  }
  char *copy = strdup(term);
  if (!copy)
    return -1;
  terms->items[terms->count++] = copy;
  return 0;
}

bool text_terms_contains(const text_terms_t *terms, const char *term)
{
  for (size_t i = 0; i < terms->count; i++)
    if (strcmp(terms->items[i], term) == 0)
      return true;
  return false;
}

void text_terms_clear(text_terms_t *terms)
{
  for (size_t i = 0; i < terms->count; i++)
    free(terms->items[i]);
  free(terms->items);
  memset(terms, 0, sizeof *terms);
}

static bool ends_with(const char *word, size_t length, const char *suffix)
{
  size_t suffix_length = strlen(suffix);
  return length >= suffix_length && memcmp(word + length - suffix_length, suffix, suffix_length) == 0;
}

static bool is_vowel(char c)
{
  return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}

void text_stem(char *word)
{
  size_t length = strlen(word);
  if (length <= 3)
    return;
  if (length > 4 && ends_with(word, length, "ies")) {
    word[length - 3] = 'y';
    length -= 2;
  } else if (ends_with(word, length, "sses")) {
    length -= 2;
  } else if (word[length - 1] == 's' && !strchr("siu", word[length - 2])) {
    length -= 1;
  }
  word[length] = '\0';

  size_t suffix = 0;
  if (length >= 6 && ends_with(word, length, "ing"))
    suffix = 3;
  else if (length >= 5 && ends_with(word, length, "ed"))
    suffix = 2;
  if (suffix) {
    length -= suffix;
    /* "shipping" -> "shipp" -> "ship", so it meets "ship" */
    if (word[length - 1] == word[length - 2] && !is_vowel(word[length - 1]) &&
        !strchr("lsz", word[length - 1]))
      length--;
  }
  /* "close"/"closed"/"closing" all end as "clos" */
  if (length > 4 && word[length - 1] == 'e')
    length--;
  word[length] = '\0';
}

/* Appends the spoken words of a number below a thousand ("42" -> "forty", "two"). */
static int push_number_words(text_terms_t *words, int number)
{
  if (number >= 100) {
    if (text_terms_push(words, ones[number / 100]) < 0 || text_terms_push(words, "hundred") < 0)
      return -1;
    number %= 100;
    if (number == 0)
      return 0;
  }
  if (number < 20)
    return text_terms_push(words, ones[number]);
  if (text_terms_push(words, tens[number / 10]) < 0)
    return -1;
  return number % 10 ? text_terms_push(words, ones[number % 10]) : 0;
}

/* Appends one raw word (lower case, may hold digits and apostrophes), spelling out
 * numbers and expanding contractions so "what's" and "what is" compare equal. */
static int push_raw_word(text_terms_t *words, char *word)
{
  size_t length = strlen(word);
  while (length > 0 && word[length - 1] == '\'')
    word[--length] = '\0';
  if (length == 0)
    return 0;
  if (strspn(word, "0123456789") == length)
    return length <= 3 ? push_number_words(words, atoi(word)) : text_terms_push(words, word);
  for (size_t i = 0; i < COUNT_OF(chat_spellings); i++)
    if (strcmp(word, chat_spellings[i].typed) == 0) {
      char spelt[TEXT_MAX_WORD + 1];
      snprintf(spelt, sizeof spelt, "%s", chat_spellings[i].word);
      return push_raw_word(words, spelt);
    }
  if (strcmp(word, "cannot") == 0)
    return text_terms_push(words, "can") < 0 ? -1 : text_terms_push(words, "not");

  if (ends_with(word, length, "n't")) {
    word[length - 3] = '\0';
    const char *base = strcmp(word, "ca") == 0 ? "can" : strcmp(word, "wo") == 0 ? "will" : word;
    if (base[0] && text_terms_push(words, base) < 0)
      return -1;
    return text_terms_push(words, "not");
  }
  static const struct {
    const char *suffix;
    const char *expansion;   /* NULL: "'s" is "is" or a possessive; neither names a topic */
  } contractions[] = {
    { "'re", "are" }, { "'m", "am" }, { "'ll", "will" }, { "'ve", "have" }, { "'d", "would" },
    { "'s", NULL },
  };
  for (size_t i = 0; i < COUNT_OF(contractions); i++)
    if (ends_with(word, length, contractions[i].suffix)) {
      word[length - strlen(contractions[i].suffix)] = '\0';
      if (word[0] && text_terms_push(words, word) < 0)
        return -1;
      return contractions[i].expansion ? text_terms_push(words, contractions[i].expansion) : 0;
    }
  /* Any other apostrophe ("o'clock") is spelling, not grammar. */
  size_t kept = 0;
  for (size_t i = 0; i < length; i++)
    if (word[i] != '\'')
      word[kept++] = word[i];
  word[kept] = '\0';
  return kept ? text_terms_push(words, word) : 0;
}

/* Splits `text` into lower-case raw words. Letters, digits and in-word apostrophes
 * (ASCII or U+2019) make words; "%" and "$" become the words said for them; all
 * else separates. */
static int split_words(const char *text, text_terms_t *words)
{
  if (!text)
    return 0;
  size_t text_length = strnlen(text, TEXT_MAX_BYTES);
  char word[TEXT_MAX_WORD + 1];
  size_t word_length = 0;
  bool dollar_pending = false;   /* "$50" is said "fifty dollars" */
  for (size_t i = 0; i <= text_length; i++) {
    unsigned char c = i < text_length ? (unsigned char) text[i] : ' ';
    if (c == 0xE2 && i + 2 < text_length && (unsigned char) text[i + 1] == 0x80 &&
        (unsigned char) text[i + 2] == 0x99) {
      c = '\'';
      i += 2;
    }
    if (c == '$')
      dollar_pending = true;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '\'' && word_length > 0)) {
      if (word_length < TEXT_MAX_WORD)
        word[word_length++] = (char) c;
      continue;
    }
    if (c >= 'A' && c <= 'Z') {
      if (word_length < TEXT_MAX_WORD)
        word[word_length++] = (char) (c - 'A' + 'a');
      continue;
    }
    if (word_length > 0) {
      word[word_length] = '\0';
      word_length = 0;
      if (push_raw_word(words, word) < 0)
        return -1;
      if (dollar_pending && text_terms_push(words, "dollar") < 0)
        return -1;
      dollar_pending = false;
    }
    if (c == '%' && text_terms_push(words, "percent") < 0)
      return -1;
  }
  return dollar_pending ? text_terms_push(words, "dollar") : 0;
}

static bool is_listed(const char *word, const char *const *list, size_t count)
{
  for (size_t i = 0; i < count; i++)
    if (strcmp(list[i], word) == 0)
      return true;
  return false;
}

static bool is_stop_word(const char *word)
{
  return is_listed(word, stop_words, COUNT_OF(stop_words));
}

/* The canonical word for `word` (already stemmed), comparing stems so that one
 * line of the table covers "headphone", "headphones" and so on. */
static const char *synonym_of_stem(const char *stem)
{
  for (size_t i = 0; i < COUNT_OF(synonyms); i++) {
    char key[TEXT_MAX_WORD + 1];
    snprintf(key, sizeof key, "%s", synonyms[i].word);
    text_stem(key);
    if (strcmp(key, stem) == 0)
      return synonyms[i].canonical;
  }
  return NULL;
}

static const char *synonym_of(const char *word)
{
  for (size_t i = 0; i < COUNT_OF(synonyms); i++)
    if (strcmp(synonyms[i].word, word) == 0)
      return synonyms[i].canonical;
  return NULL;
}

static const char *phrase_of(const char *first, const char *second)
{
  for (size_t i = 0; i < COUNT_OF(phrases); i++)
    if (strcmp(phrases[i].first, first) == 0 && strcmp(phrases[i].second, second) == 0)
      return phrases[i].joined;
  return NULL;
}

/* Folds one word onto its canonical stemmed term, in `term` (TEXT_MAX_WORD + 1 bytes). */
static void canonical_term(const char *word, char *term)
{
  const char *canonical = synonym_of(word);
  if (!canonical) {
    snprintf(term, TEXT_MAX_WORD + 1, "%s", word);
    text_stem(term);
    canonical = synonym_of_stem(term);
  }
  if (canonical)
    snprintf(term, TEXT_MAX_WORD + 1, "%s", canonical);
  text_stem(term);
}

int text_terms_append(text_terms_t *terms, const char *text, text_mode_t mode)
{
  text_terms_t words = { 0 };
  int rc = split_words(text, &words);
  for (size_t i = 0; rc == 0 && i < words.count; i++) {
    const char *word = words.items[i];
    const char *joined = i + 1 < words.count ? phrase_of(word, words.items[i + 1]) : NULL;
    if (joined) {
      word = joined;
      i++;
    } else if (is_listed(word, filler_words, COUNT_OF(filler_words)) ||
               (mode == TEXT_DROP_STOP_WORDS && is_stop_word(word))) {
      continue;
    }
    char term[TEXT_MAX_WORD + 1];
    canonical_term(word, term);
    /* "gets" is only a stop word once stemmed */
    if (!joined && mode == TEXT_DROP_STOP_WORDS && is_stop_word(term))
      continue;
    rc = text_terms_push(terms, term);
  }
  text_terms_clear(&words);
  return rc;
}

static int compare_words(const void *a, const void *b)
{
  return strcmp(*(const char *const *) a, *(const char *const *) b);
}

bool text_is_common_term(const char *term)
{
  /* Exact words first (most terms are their own stem), then stem against stem. */
  if (bsearch(&term, common_words, COUNT_OF(common_words), sizeof *common_words, compare_words))
    return true;
  for (size_t i = 0; i < COUNT_OF(common_words); i++) {
    char stem[TEXT_MAX_WORD + 1];
    snprintf(stem, sizeof stem, "%s", common_words[i]);
    text_stem(stem);
    if (strcmp(stem, term) == 0)
      return true;
  }
  return false;
}

/* True when the words are a short question holding "it", "that", ... */
static bool points_back(const text_terms_t *words)
{
  /* A longer question that mentions "it" usually names its own topic as well. */
  enum { SHORT_QUESTION_WORDS = 6 };
  static const char *const pointers[] = { "it", "that", "this", "they", "them", "those" };
  for (size_t i = 0; words->count <= SHORT_QUESTION_WORDS && i < words->count; i++)
    for (size_t j = 0; j < COUNT_OF(pointers); j++)
      if (strcmp(words->items[i], pointers[j]) == 0)
        return true;
  return false;
}

bool text_is_follow_up(const char *text)
{
  text_terms_t words = { 0 };
  bool follow_up = false;
  if (split_words(text, &words) == 0 && words.count > 0) {
    const char *first = words.items[0];
    const char *second = words.count > 1 ? words.items[1] : "";
    follow_up = strcmp(first, "and") == 0 || strcmp(first, "also") == 0 ||
                ((strcmp(first, "what") == 0 || strcmp(first, "how") == 0) &&
                 strcmp(second, "about") == 0) ||
                points_back(&words);
  }
  text_terms_clear(&words);
  return follow_up;
}

bool text_refers_back(const char *text)
{
  text_terms_t words = { 0 };
  bool refers = split_words(text, &words) == 0 && points_back(&words);
  text_terms_clear(&words);
  return refers;
}

static bool is_word_byte(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '\'';
}

/* True when text[from, to) holds a letter or digit. */
static bool has_word(const char *text, size_t from, size_t to)
{
  for (size_t i = from; i < to; i++)
    if (is_word_byte((unsigned char) text[i]) && text[i] != '\'')
      return true;
  return false;
}

static bool is_joining_word(const char *word, size_t length)
{
  static const char *const joining[] = { "and", "also", "plus" };
  for (size_t i = 0; i < COUNT_OF(joining); i++)
    if (length == strlen(joining[i]) && strncasecmp(word, joining[i], length) == 0)
      return true;
  return false;
}

/* Adds text[from, to), without the spaces and commas around it, as a part when it
 * holds a word. */
static int push_part(text_terms_t *parts, const char *text, size_t from, size_t to)
{
  if (!has_word(text, from, to))
    return 0;
  while (text[from] == ' ' || text[from] == ',')
    from++;
  while (to > from && (text[to - 1] == ' ' || text[to - 1] == ','))
    to--;
  char *part = strndup(text + from, to - from);
  if (!part)
    return -1;
  int rc = text_terms_push(parts, part);
  free(part);
  return rc;
}

int text_split_questions(const char *text, text_terms_t *parts, size_t max)
{
  if (!text || max == 0)
    return 0;
  size_t length = strnlen(text, TEXT_MAX_BYTES);
  size_t start = 0, before = parts->count;
  for (size_t i = 0; i < length && parts->count - before + 1 < max;) {
    unsigned char c = (unsigned char) text[i];
    if (is_word_byte(c)) {
      size_t end = i;
      while (end < length && is_word_byte((unsigned char) text[end]))
        end++;
      if (is_joining_word(text + i, end - i)) {
        if (push_part(parts, text, start, i) < 0)
          return -1;
        start = end;
      }
      i = end;
      continue;
    }
    /* A full stop ends a question, unless it is a decimal point ("2.5 kg"). */
    bool decimal_point = c == '.' && i > 0 && i + 1 < length &&
                         text[i - 1] >= '0' && text[i - 1] <= '9' &&
                         text[i + 1] >= '0' && text[i + 1] <= '9';
    if ((c == '?' || c == '!' || c == ';' || c == '.') && !decimal_point) {
      if (push_part(parts, text, start, i) < 0)
        return -1;
      start = i + 1;
    }
    i++;
  }
  return push_part(parts, text, start, length);
}
