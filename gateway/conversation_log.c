/* conversation_log: turns of every conversation in SQLite (see conversation_log.h). */
#include "conversation_log.h"

#include "log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct conversation_log {
  sqlite3 *db;
};

/* cache_size: the log writes a few rows per answer and is read only to export
 * one session, so a large page cache buys nothing; SQLite's default (2,000 KiB
 * per connection) filled with index pages of random session ids and made most
 * of the gateway's slow memory growth under load. 256 KiB still holds the
 * index's upper levels; a negative value is KiB, not pages. */
static const char SCHEMA[] =
  "PRAGMA journal_mode=WAL;"
  "PRAGMA synchronous=NORMAL;"
  "PRAGMA cache_size=-256;"
  "CREATE TABLE IF NOT EXISTS turns ("
  "  id INTEGER PRIMARY KEY,"
  "  job_id TEXT NOT NULL,"
  "  session_id TEXT NOT NULL,"
  "  role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),"
  "  text TEXT NOT NULL,"
  "  at_ms INTEGER NOT NULL,"
  "  total_ms INTEGER,"
  "  timings TEXT NOT NULL,"
  "  outcome TEXT NOT NULL CHECK (outcome IN ('done', 'failed')),"
  "  error_code TEXT,"
  "  UNIQUE (job_id, role));"
  "CREATE INDEX IF NOT EXISTS turns_by_session ON turns (session_id, at_ms, id);";

static const char INSERT[] =
  "INSERT OR IGNORE INTO turns (job_id, session_id, role, text, at_ms, total_ms, timings,"
  " outcome, error_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

static const char SELECT[] =
  "SELECT job_id, role, text, at_ms, total_ms, timings, outcome, error_code FROM turns"
  " WHERE session_id = ? ORDER BY at_ms, id";

/* Creates the parent directory of `path` (one level: var/ of var/conversations.db). */
static void make_parent_directory(const char *path)
{
  const char *slash = strrchr(path, '/');
  if (!slash || slash == path)
    return;
  char parent[1024];
  size_t length = (size_t) (slash - path);
  if (length >= sizeof parent)
    return;
  memcpy(parent, path, length);
  parent[length] = '\0';
  if (mkdir(parent, 0755) != 0 && errno != EEXIST)
    return;                 /* sqlite3_open_v2 then names the problem */
}

conversation_log_t *conversation_log_open(const char *path, char *error, size_t error_size)
{
  make_parent_directory(path);
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                           SQLITE_OPEN_FULLMUTEX, NULL);
  char *message = NULL;
  if (rc == SQLITE_OK)
    rc = sqlite3_busy_timeout(db, 2000);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db, SCHEMA, NULL, NULL, &message);
  conversation_log_t *self = rc == SQLITE_OK ? calloc(1, sizeof *self) : NULL;
  if (!self) {
    snprintf(error, error_size, "%s: %s", path,
             message ? message : db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_free(message);
    sqlite3_close(db);
    return NULL;
  }
  self->db = db;
  return self;
}

void conversation_log_close(conversation_log_t **self_p)
{
  if (!self_p || !*self_p)
    return;
  sqlite3_close((*self_p)->db);
  free(*self_p);
  *self_p = NULL;
}

/* The job's timings as a JSON object (caller frees), and its "total" in *total_ms
 * (-1 when absent). */
static char *timings_json(const conversation_turn_t *turn, long long *total_ms)
{
  cJSON *object = cJSON_CreateObject();
  *total_ms = -1;
  for (size_t i = 0; object && i < turn->timing_count; i++) {
    cJSON_AddNumberToObject(object, turn->timings[i].name, turn->timings[i].ms);
    if (!strcmp(turn->timings[i].name, "total"))
      *total_ms = turn->timings[i].ms;
  }
  char *text = object ? cJSON_PrintUnformatted(object) : NULL;
  cJSON_Delete(object);
  return text;
}

static int insert_row(sqlite3_stmt *insert, const conversation_turn_t *turn, const char *role,
                      const char *text, const char *timings, long long total_ms)
{
  sqlite3_reset(insert);
  sqlite3_bind_text(insert, 1, turn->job_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(insert, 2, turn->session_id ? turn->session_id : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(insert, 3, role, -1, SQLITE_STATIC);
  sqlite3_bind_text(insert, 4, text ? text : "", -1, SQLITE_STATIC);
  sqlite3_bind_int64(insert, 5, turn->at_ms);
  if (total_ms >= 0)
    sqlite3_bind_int64(insert, 6, total_ms);
  else
    sqlite3_bind_null(insert, 6);
  sqlite3_bind_text(insert, 7, timings, -1, SQLITE_STATIC);
  sqlite3_bind_text(insert, 8, turn->failed ? "failed" : "done", -1, SQLITE_STATIC);
  if (turn->error_code && *turn->error_code)
    sqlite3_bind_text(insert, 9, turn->error_code, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(insert, 9);
  return sqlite3_step(insert) == SQLITE_DONE ? 0 : -1;
}

int64_t conversation_log_memory_used(void)
{
  return (int64_t) sqlite3_memory_used();
}

int conversation_log_record(conversation_log_t *self, const conversation_turn_t *turn)
{
  if (!turn->job_id || !*turn->job_id)
    return -1;
  long long total_ms;
  char *timings = timings_json(turn, &total_ms);
  sqlite3_stmt *insert = NULL;
  bool has_question = turn->question && *turn->question;
  bool has_reply = turn->reply && *turn->reply;
  /* One transaction: both turns of a job are written, or neither. */
  int rc = timings && sqlite3_exec(self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK
             ? 0 : -1;
  if (rc == 0)
    rc = sqlite3_prepare_v2(self->db, INSERT, -1, &insert, NULL) == SQLITE_OK ? 0 : -1;
  if (rc == 0 && (has_question || !has_reply))
    rc = insert_row(insert, turn, "user", turn->question, timings, total_ms);
  if (rc == 0 && has_reply)
    rc = insert_row(insert, turn, "assistant", turn->reply, timings, total_ms);
  if (rc == 0)
    rc = sqlite3_exec(self->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
  if (rc != 0) {
    cJSON *fields = cJSON_CreateObject();
    cJSON_AddStringToObject(fields, "job_id", turn->job_id);
    cJSON_AddStringToObject(fields, "reason", sqlite3_errmsg(self->db));
    log_event(LOG_ERROR, "conversation_log_failed", fields);
    sqlite3_exec(self->db, "ROLLBACK", NULL, NULL, NULL);
  }
  sqlite3_finalize(insert);
  free(timings);
  return rc;
}

static const char *column_text(sqlite3_stmt *row, int column)
{
  const unsigned char *text = sqlite3_column_text(row, column);
  return text ? (const char *) text : "";
}

static cJSON *turn_json(sqlite3_stmt *row)
{
  cJSON *turn = cJSON_CreateObject();
  cJSON_AddStringToObject(turn, "job_id", column_text(row, 0));
  cJSON_AddStringToObject(turn, "role", column_text(row, 1));
  cJSON_AddStringToObject(turn, "text", column_text(row, 2));
  cJSON_AddNumberToObject(turn, "at_ms", (double) sqlite3_column_int64(row, 3));
  if (sqlite3_column_type(row, 4) == SQLITE_NULL)
    cJSON_AddNullToObject(turn, "total_ms");
  else
    cJSON_AddNumberToObject(turn, "total_ms", (double) sqlite3_column_int64(row, 4));
  cJSON *timings = cJSON_Parse(column_text(row, 5));
  cJSON_AddItemToObject(turn, "timings", timings ? timings : cJSON_CreateObject());
  cJSON_AddStringToObject(turn, "outcome", column_text(row, 6));
  if (sqlite3_column_type(row, 7) == SQLITE_NULL)
    cJSON_AddNullToObject(turn, "error_code");
  else
    cJSON_AddStringToObject(turn, "error_code", column_text(row, 7));
  return turn;
}

/* One line per turn: "2026-11-27T05:10:00Z user (done, 812 ms): when are you open". */
static void turn_text(sqlite3_stmt *row, FILE *out)
{
  time_t seconds = (time_t) (sqlite3_column_int64(row, 3) / 1000);
  struct tm utc;
  char stamp[32] = "";
  if (gmtime_r(&seconds, &utc))
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
  fprintf(out, "%s %-9s %s", stamp, column_text(row, 1), column_text(row, 6));
  if (sqlite3_column_type(row, 7) != SQLITE_NULL)
    fprintf(out, " %s", column_text(row, 7));
  if (sqlite3_column_type(row, 4) != SQLITE_NULL)
    fprintf(out, " %lld ms", (long long) sqlite3_column_int64(row, 4));
  fprintf(out, ": %s\n", column_text(row, 2));
}

long conversation_log_export(conversation_log_t *self, const char *session_id, bool as_text,
                             FILE *out)
{
  sqlite3_stmt *select = NULL;
  if (sqlite3_prepare_v2(self->db, SELECT, -1, &select, NULL) != SQLITE_OK)
    return -1;
  sqlite3_bind_text(select, 1, session_id, -1, SQLITE_STATIC);
  cJSON *turns = as_text ? NULL : cJSON_CreateArray();
  long count = 0;
  int step;
  while ((step = sqlite3_step(select)) == SQLITE_ROW) {
    if (as_text)
      turn_text(select, out);
    else
      cJSON_AddItemToArray(turns, turn_json(select));
    count++;
  }
  sqlite3_finalize(select);
  if (step != SQLITE_DONE)
    count = -1;
  if (!as_text && count >= 0) {
    cJSON *document = cJSON_CreateObject();
    cJSON_AddStringToObject(document, "session_id", session_id);
    cJSON_AddItemToObject(document, "turns", turns);
    turns = NULL;
    char *text = cJSON_Print(document);
    if (text)
      fprintf(out, "%s\n", text);
    else
      count = -1;
    free(text);
    cJSON_Delete(document);
  }
  cJSON_Delete(turns);
  return count;
}
