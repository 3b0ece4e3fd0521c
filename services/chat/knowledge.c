/* knowledge: loading and validating the knowledge-base JSON (see knowledge.h). */
#include "knowledge.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KNOWLEDGE_ERROR "bad_knowledge"

/* Limits of one paraphrase template: longer ones are not a way of asking. */
#define TEMPLATE_MAX_BYTES 1024
#define TEMPLATE_MAX_GROUPS 16

/* Where an entry sits in the file, for error messages: "entries[3] (id \"refunds\")". */
typedef struct {
  const char *origin;
  const char *list;
  size_t index;
  const char *id;   /* NULL until the id is known */
} entry_place_t;

static int place_error(stage_error_t *err, const entry_place_t *place, const char *problem)
{
  if (place->id)
    return stage_error_set(err, KNOWLEDGE_ERROR, "%s: %s[%zu] (id \"%s\"): %s",
                           place->origin, place->list, place->index, place->id, problem);
  return stage_error_set(err, KNOWLEDGE_ERROR, "%s: %s[%zu]: %s",
                         place->origin, place->list, place->index, problem);
}

/* Copies the non-empty string `field` of `object` into *out (caller owns it). */
static int copy_string_field(const cJSON *object, const char *field, char **out)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, field);
  if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
    return -1;
  *out = strdup(item->valuestring);
  return *out ? 0 : -1;
}

/* One "(a|b|c)" group of a template: where it starts and ends in the text, and how
 * many alternatives it holds. */
typedef struct {
  size_t open;
  size_t close;
  size_t choices;
} template_group_t;

/* Appends alternative `choice` of the group spanning text[open..close] to `out`. */
static void append_choice(const char *text, const template_group_t *group, size_t choice,
                          char *out, size_t *length)
{
  size_t start = group->open + 1;
  for (size_t skipped = 0; skipped < choice; start++)
    if (text[start] == '|')
      skipped++;
  size_t end = start;
  while (end < group->close && text[end] != '|')
    end++;
  memcpy(out + *length, text + start, end - start);
  *length += end - start;
}

/* Collapses runs of spaces and trims both ends in place; returns the new length. */
static size_t collapse_spaces(char *sentence, size_t length)
{
  size_t kept = 0;
  for (size_t i = 0; i < length; i++) {
    bool is_space = sentence[i] == ' ' || sentence[i] == '\t';
    if (is_space && (kept == 0 || sentence[kept - 1] == ' '))
      continue;
    sentence[kept++] = is_space ? ' ' : sentence[i];
  }
  while (kept > 0 && sentence[kept - 1] == ' ')
    kept--;
  sentence[kept] = '\0';
  return kept;
}

long knowledge_expand_template(const char *text, knowledge_emit_fn *emit, void *arg,
                               const char **problem)
{
  size_t text_length = strnlen(text, TEMPLATE_MAX_BYTES + 1);
  if (text_length > TEMPLATE_MAX_BYTES) {
    *problem = "is longer than 1024 bytes";
    return -1;
  }
  template_group_t groups[TEMPLATE_MAX_GROUPS];
  size_t group_count = 0;
  long total = 1;
  for (size_t i = 0; i < text_length; i++) {
    if (text[i] == ')' || (text[i] == '|')) {
      *problem = "has a \")\" or \"|\" outside a group";
      return -1;
    }
    if (text[i] != '(')
      continue;
    if (group_count == TEMPLATE_MAX_GROUPS) {
      *problem = "has more than 16 groups";
      return -1;
    }
    template_group_t *group = &groups[group_count++];
    group->open = i;
    group->choices = 1;
    for (i++; i < text_length && text[i] != ')'; i++) {
      if (text[i] == '(') {
        *problem = "nests a group inside a group";
        return -1;
      }
      group->choices += text[i] == '|';
    }
    if (i == text_length) {
      *problem = "has a \"(\" without its \")\"";
      return -1;
    }
    group->close = i;
    total *= (long) group->choices;
    if (total > KNOWLEDGE_MAX_EXPANSIONS) {
      *problem = "expands to more than 256 sentences";
      return -1;
    }
  }
  size_t choice[TEMPLATE_MAX_GROUPS] = {0};
  char sentence[TEMPLATE_MAX_BYTES + 1];
  for (long n = 0; n < total; n++) {
    size_t length = 0, from = 0;
    for (size_t g = 0; g < group_count; g++) {
      memcpy(sentence + length, text + from, groups[g].open - from);
      length += groups[g].open - from;
      append_choice(text, &groups[g], choice[g], sentence, &length);
      from = groups[g].close + 1;
    }
    memcpy(sentence + length, text + from, text_length - from);
    length = collapse_spaces(sentence, length + text_length - from);
    if (length == 0) {
      *problem = "can expand to an empty sentence";
      return -1;
    }
    if (emit(sentence, arg) != 0) {
      *problem = "out of memory";
      return -1;
    }
    /* The next combination: the last group varies fastest. */
    for (size_t g = group_count; g > 0; g--) {
      if (++choice[g - 1] < groups[g - 1].choices)
        break;
      choice[g - 1] = 0;
    }
  }
  return total;
}

/* Appends one expanded paraphrase to its entry (the emit callback of parse_paraphrases). */
static int push_paraphrase(const char *sentence, void *arg)
{
  knowledge_entry_t *entry = arg;
  char **grown = realloc(entry->paraphrases, (entry->paraphrase_count + 1) * sizeof *grown);
  if (!grown)
    return -1;
  entry->paraphrases = grown;
  entry->paraphrases[entry->paraphrase_count] = strdup(sentence);
  if (!entry->paraphrases[entry->paraphrase_count])
    return -1;
  entry->paraphrase_count++;
  return 0;
}

/* The optional "paraphrases" field: an array of templates, expanded in place. */
static int parse_paraphrases(const cJSON *json, knowledge_entry_t *entry,
                             const entry_place_t *place, stage_error_t *err)
{
  const cJSON *templates = cJSON_GetObjectItemCaseSensitive(json, "paraphrases");
  if (!templates)
    return 0;
  if (!cJSON_IsArray(templates))
    return place_error(err, place, "field \"paraphrases\" must be an array of strings");
  size_t index = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, templates) {
    char problem[160];
    const char *why = NULL;
    if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
      why = "must be a non-empty string";
    else if (knowledge_expand_template(item->valuestring, push_paraphrase, entry, &why) >= 0)
      why = NULL;
    if (why) {
      snprintf(problem, sizeof problem, "field \"paraphrases\" item %zu %s", index, why);
      return place_error(err, place, problem);
    }
    entry->template_count++;
    index++;
  }
  return 0;
}

static void entry_clear(knowledge_entry_t *entry)
{
  for (size_t i = 0; i < entry->paraphrase_count; i++)
    free(entry->paraphrases[i]);
  free(entry->paraphrases);
  free(entry->id);
  for (size_t i = 0; i < entry->question_count; i++)
    free(entry->questions[i]);
  free(entry->questions);
  free(entry->answer);
  memset(entry, 0, sizeof *entry);
}

static int parse_entry(const cJSON *json, knowledge_entry_t *entry, entry_place_t *place,
                       stage_error_t *err)
{
  if (!cJSON_IsObject(json))
    return place_error(err, place, "must be an object with \"id\", \"questions\" and \"answer\"");
  if (copy_string_field(json, "id", &entry->id) < 0)
    return place_error(err, place, "field \"id\" must be a non-empty string");
  place->id = entry->id;

  const cJSON *questions = cJSON_GetObjectItemCaseSensitive(json, "questions");
  int question_count = cJSON_GetArraySize(questions);
  if (!cJSON_IsArray(questions) || question_count == 0)
    return place_error(err, place, "field \"questions\" must be a non-empty array of strings");
  entry->questions = calloc((size_t) question_count, sizeof *entry->questions);
  if (!entry->questions)
    return place_error(err, place, "out of memory");
  const cJSON *question;
  cJSON_ArrayForEach(question, questions) {
    if (!cJSON_IsString(question) || !question->valuestring || !question->valuestring[0]) {
      char problem[96];
      snprintf(problem, sizeof problem,
               "field \"questions\" item %zu must be a non-empty string", entry->question_count);
      return place_error(err, place, problem);
    }
    entry->questions[entry->question_count] = strdup(question->valuestring);
    if (!entry->questions[entry->question_count])
      return place_error(err, place, "out of memory");
    entry->question_count++;
  }
  if (copy_string_field(json, "answer", &entry->answer) < 0)
    return place_error(err, place, "field \"answer\" must be a non-empty string");
  return parse_paraphrases(json, entry, place, err);
}

/* Parses the array `list` of `root` into *entries. An absent list is allowed only
 * when `required` is false. */
static int parse_entry_list(const cJSON *root, const char *list, int required, const char *origin,
                            knowledge_entry_t **entries, size_t *count, stage_error_t *err)
{
  const cJSON *array = cJSON_GetObjectItemCaseSensitive(root, list);
  if (!array && !required)
    return 0;
  int size = cJSON_GetArraySize(array);
  if (!cJSON_IsArray(array) || (required && size == 0))
    return stage_error_set(err, KNOWLEDGE_ERROR, "%s: field \"%s\" must be a%s array of entries",
                           origin, list, required ? " non-empty" : "n");
  if (size == 0)
    return 0;
  *entries = calloc((size_t) size, sizeof **entries);
  if (!*entries)
    return stage_error_set(err, KNOWLEDGE_ERROR, "%s: out of memory", origin);
  const cJSON *item;
  cJSON_ArrayForEach(item, array) {
    entry_place_t place = { origin, list, *count, NULL };
    /* Counted before parsing so a half-filled entry is freed with the rest. */
    (*count)++;
    if (parse_entry(item, &(*entries)[*count - 1], &place, err) < 0)
      return -1;
  }
  return 0;
}

/* Ids name topics in logs and tests, so one id must mean one entry across both lists. */
static int check_unique_ids(const knowledge_t *self, const char *origin, stage_error_t *err)
{
  const knowledge_entry_t *lists[2] = { self->entries, self->small_talk };
  const size_t counts[2] = { self->entry_count, self->small_talk_count };
  const char *names[2] = { "entries", "small_talk" };
  for (int list = 0; list < 2; list++)
    for (size_t i = 0; i < counts[list]; i++)
      for (int earlier_list = 0; earlier_list <= list; earlier_list++) {
        size_t end = earlier_list == list ? i : counts[earlier_list];
        for (size_t j = 0; j < end; j++)
          if (strcmp(lists[list][i].id, lists[earlier_list][j].id) == 0)
            return stage_error_set(err, KNOWLEDGE_ERROR,
                                   "%s: %s[%zu] (id \"%s\"): field \"id\" duplicates %s[%zu]",
                                   origin, names[list], i, lists[list][i].id,
                                   names[earlier_list], j);
      }
  return 0;
}

static int parse_root(const cJSON *root, knowledge_t *self, const char *origin, stage_error_t *err)
{
  if (!cJSON_IsObject(root))
    return stage_error_set(err, KNOWLEDGE_ERROR, "%s: the top level must be a JSON object", origin);
  static const char *const text_fields[] = { "name", "assistant", "fallback" };
  char **targets[] = { &self->name, &self->assistant, &self->fallback };
  for (size_t i = 0; i < sizeof text_fields / sizeof *text_fields; i++)
    if (copy_string_field(root, text_fields[i], targets[i]) < 0)
      return stage_error_set(err, KNOWLEDGE_ERROR, "%s: field \"%s\" must be a non-empty string",
                             origin, text_fields[i]);
  if (parse_entry_list(root, "entries", 1, origin, &self->entries, &self->entry_count, err) < 0)
    return -1;
  if (parse_entry_list(root, "small_talk", 0, origin, &self->small_talk, &self->small_talk_count,
                       err) < 0)
    return -1;
  return check_unique_ids(self, origin, err);
}

knowledge_t *knowledge_parse(const char *json_text, const char *origin, stage_error_t *err)
{
  if (!json_text) {
    stage_error_set(err, KNOWLEDGE_ERROR, "%s: no content", origin);
    return NULL;
  }
  const char *parse_end = NULL;
  cJSON *root = cJSON_ParseWithOpts(json_text, &parse_end, 1);
  if (!root) {
    long offset = parse_end ? (long) (parse_end - json_text) : 0;
    stage_error_set(err, KNOWLEDGE_ERROR, "%s: not valid JSON (error near byte %ld)", origin,
                    offset);
    return NULL;
  }
  knowledge_t *self = calloc(1, sizeof *self);
  if (!self) {
    cJSON_Delete(root);
    stage_error_set(err, KNOWLEDGE_ERROR, "%s: out of memory", origin);
    return NULL;
  }
  int rc = parse_root(root, self, origin, err);
  cJSON_Delete(root);
  if (rc < 0)
    knowledge_destroy(&self);
  return self;
}

/* Reads the whole file into a NUL-terminated buffer (caller frees). */
static char *read_file(const char *path, stage_error_t *err)
{
  FILE *file = fopen(path, "rb");
  if (!file) {
    stage_error_set(err, KNOWLEDGE_ERROR, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  char *text = malloc(KNOWLEDGE_MAX_BYTES + 1);
  size_t length = text ? fread(text, 1, KNOWLEDGE_MAX_BYTES + 1, file) : 0;
  int read_failed = ferror(file);
  fclose(file);
  if (!text) {
    stage_error_set(err, KNOWLEDGE_ERROR, "%s: out of memory", path);
    return NULL;
  }
  if (read_failed || length > KNOWLEDGE_MAX_BYTES) {
    stage_error_set(err, KNOWLEDGE_ERROR, read_failed ? "%s: read error" : "%s: larger than %d bytes",
                    path, KNOWLEDGE_MAX_BYTES);
    free(text);
    return NULL;
  }
  text[length] = '\0';
  if (strlen(text) != length) {
    stage_error_set(err, KNOWLEDGE_ERROR, "%s: not valid JSON (contains a NUL byte)", path);
    free(text);
    return NULL;
  }
  return text;
}

knowledge_t *knowledge_load(const char *path, stage_error_t *err)
{
  if (!path || !path[0]) {
    stage_error_set(err, KNOWLEDGE_ERROR, "no knowledge file path given");
    return NULL;
  }
  char *text = read_file(path, err);
  if (!text)
    return NULL;
  knowledge_t *self = knowledge_parse(text, path, err);
  free(text);
  return self;
}

void knowledge_destroy(knowledge_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  knowledge_t *self = *self_p;
  free(self->name);
  free(self->assistant);
  free(self->fallback);
  for (size_t i = 0; i < self->entry_count; i++)
    entry_clear(&self->entries[i]);
  free(self->entries);
  for (size_t i = 0; i < self->small_talk_count; i++)
    entry_clear(&self->small_talk[i]);
  free(self->small_talk);
  free(self);
  *self_p = NULL;
}
