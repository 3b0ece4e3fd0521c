/* session_store_redis: sessions in Redis, one key per session
 * ("avatar:session:<id>") holding {"turns": [{"role", "text", "job_id"}]}
 * with a TTL that every use renews, so an idle session expires on its own.
 * Appending is an optimistic transaction, so the same job's turns are added
 * once even when two gateways finish it. */
#include "session_store_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_KEY_PREFIX REDIS_KEY_PREFIX "session:"
#define TURN_TEXT_MAX 16384 /* longest turn text kept, bytes (as in memory) */
#define EMPTY_SESSION "{\"turns\":[]}"

static bool session_key(const char *id, char key[REDIS_KEY_MAX])
{
  return id && *id && strlen(id) <= SESSION_ID_MAX &&
         snprintf(key, REDIS_KEY_MAX, SESSION_KEY_PREFIX "%s", id) < REDIS_KEY_MAX;
}

int session_store_redis_open(redis_link_t *redis, int64_t ttl_ms, const char *id)
{
  char key[REDIS_KEY_MAX];
  if (!session_key(id, key))
    return -1;
  /* Renew a live session, or start it. A session that expires between the two
   * commands, or that another gateway starts meanwhile, takes one more round. */
  for (int attempt = 0; attempt < 3; attempt++) {
    int touched = redis_link_touch(redis, key, ttl_ms);
    if (touched != 0)
      return touched == 1 ? 0 : -1;
    int created = redis_link_set(redis, key, EMPTY_SESSION, strlen(EMPTY_SESSION), ttl_ms, true);
    if (created != 0)
      return created == 1 ? 0 : -1;
  }
  return -1;
}

/* The stored turns array, or NULL when the session is gone or unreadable.
 * The caller deletes the returned document (`*root_out`). */
static const cJSON *load_turns(redis_link_t *redis, const char *id, cJSON **root_out, int *rc)
{
  char key[REDIS_KEY_MAX];
  char *text = NULL;
  size_t size;
  *root_out = NULL;
  *rc = session_key(id, key) ? redis_link_get(redis, key, &text, &size) : 0;
  if (*rc != 1)
    return NULL;
  *root_out = cJSON_Parse(text);
  free(text);
  const cJSON *turns = cJSON_GetObjectItemCaseSensitive(*root_out, "turns");
  return cJSON_IsArray(turns) ? turns : NULL;
}

/* A stored turn's fields, checked: the document came over the network. */
static bool read_turn(const cJSON *item, const char **role, const char **text,
                      const char **job_id)
{
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(item, "role");
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(item, "text");
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(item, "job_id");
  if (!cJSON_IsString(r) || !cJSON_IsString(t) || !cJSON_IsString(j) ||
      strlen(r->valuestring) >= sizeof ((session_turn_t *) 0)->role ||
      strlen(j->valuestring) > SESSION_ID_MAX)
    return false;
  *role = r->valuestring;
  *text = t->valuestring;
  *job_id = j->valuestring;
  return true;
}

int session_store_redis_turns(redis_link_t *redis, const char *id, session_turn_t **turns_out,
                              size_t *count_out)
{
  *turns_out = NULL;
  *count_out = 0;
  cJSON *root;
  int found;
  const cJSON *turns = load_turns(redis, id, &root, &found);
  if (found < 0)
    return -1;
  size_t total = turns ? (size_t) cJSON_GetArraySize(turns) : 0;
  session_turn_t *copies = total ? calloc(total, sizeof *copies) : NULL;
  size_t count = 0;
  int rc = total && !copies ? -1 : 0;
  const cJSON *stored = copies ? turns : NULL; /* nothing to copy into: skip */
  const cJSON *item;
  cJSON_ArrayForEach(item, stored) {
    const char *role, *text, *job_id;
    if (!read_turn(item, &role, &text, &job_id))
      continue;
    session_turn_t *turn = &copies[count];
    snprintf(turn->role, sizeof turn->role, "%s", role);
    snprintf(turn->job_id, sizeof turn->job_id, "%s", job_id);
    if (!(turn->text = strndup(text, TURN_TEXT_MAX))) {
      rc = -1;
      break;
    }
    count++;
  }
  cJSON_Delete(root);
  if (rc != 0 || count == 0) {
    session_turns_free(copies, count);
    return rc;
  }
  *turns_out = copies;
  *count_out = count;
  return 0;
}

typedef struct {
  size_t max_turns;
  const char *job_id;
  const char *question;
  const char *reply;
} exchange_t;

static bool has_job(const cJSON *turns, const char *job_id)
{
  const cJSON *item;
  cJSON_ArrayForEach(item, turns) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(item, "job_id");
    if (cJSON_IsString(j) && strcmp(j->valuestring, job_id) == 0)
      return true;
  }
  return false;
}

static void push_turn(cJSON *turns, const char *role, const char *text, const char *job_id)
{
  if (!text || !*text)
    return;
  char *capped = strndup(text, TURN_TEXT_MAX);
  cJSON *turn = capped ? cJSON_CreateObject() : NULL;
  if (turn) {
    cJSON_AddStringToObject(turn, "role", role);
    cJSON_AddStringToObject(turn, "text", capped);
    cJSON_AddStringToObject(turn, "job_id", job_id);
    cJSON_AddItemToArray(turns, turn);
  }
  free(capped);
}

/* redis_update_fn: appends the exchange unless the session is gone or already
 * has this job's turns; the oldest turns go beyond max_turns. */
static char *append_to_stored(const char *current, size_t size, void *arg)
{
  (void) size;
  const exchange_t *exchange = arg;
  cJSON *root = current ? cJSON_Parse(current) : NULL;
  cJSON *turns = cJSON_GetObjectItemCaseSensitive(root, "turns");
  char *text = NULL;
  if (cJSON_IsArray(turns) && !has_job(turns, exchange->job_id)) {
    push_turn(turns, "user", exchange->question, exchange->job_id);
    push_turn(turns, "assistant", exchange->reply, exchange->job_id);
    while ((size_t) cJSON_GetArraySize(turns) > exchange->max_turns)
      cJSON_DeleteItemFromArray(turns, 0);
    text = cJSON_PrintUnformatted(root);
  }
  cJSON_Delete(root);
  return text;
}

void session_store_redis_append(redis_link_t *redis, size_t max_turns, int64_t ttl_ms,
                                const char *id, const char *job_id, const char *question,
                                const char *reply)
{
  char key[REDIS_KEY_MAX];
  if (!session_key(id, key) || !job_id)
    return;
  exchange_t exchange = {.max_turns = max_turns, .job_id = job_id, .question = question,
                         .reply = reply};
  redis_link_update(redis, key, ttl_ms, append_to_stored, &exchange);
}

cJSON *session_store_redis_render(redis_link_t *redis, const char *id)
{
  cJSON *root;
  int found;
  const cJSON *turns = load_turns(redis, id, &root, &found);
  cJSON *json = turns ? cJSON_CreateObject() : NULL;
  cJSON *list = json ? cJSON_CreateArray() : NULL;
  if (json && !list) {
    cJSON_Delete(json);
    json = NULL;
  }
  if (json) {
    cJSON_AddStringToObject(json, "session_id", id);
    cJSON_AddItemToObject(json, "turns", list);
  }
  const cJSON *stored = list ? turns : NULL;
  const cJSON *item;
  cJSON_ArrayForEach(item, stored) {
    const char *role, *text, *job_id;
    if (!read_turn(item, &role, &text, &job_id))
      continue;
    cJSON *turn = cJSON_CreateObject();
    cJSON_AddStringToObject(turn, "role", role);
    cJSON_AddStringToObject(turn, "text", text);
    cJSON_AddStringToObject(turn, "job_id", job_id);
    cJSON_AddItemToArray(list, turn);
  }
  cJSON_Delete(root);
  return json;
}

bool session_store_redis_delete(redis_link_t *redis, const char *id)
{
  char key[REDIS_KEY_MAX];
  return session_key(id, key) && redis_link_delete(redis, key) == 1;
}
