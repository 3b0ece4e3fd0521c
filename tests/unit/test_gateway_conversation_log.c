/* test_gateway_conversation_log: the SQLite conversation log and export-session, on a
 * real database file in a temporary directory. */
#include "conversation_log.h"

#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64];
static char db_path[128];

static const job_timing_t TIMINGS[] = {{"stt", 120}, {"chat", 3}, {"total", 900}};

static void record(conversation_log_t *log, const char *job, const char *session,
                   const char *question, const char *reply, const char *error, int64_t at_ms)
{
  conversation_turn_t turn = {
    .job_id = job, .session_id = session, .question = question, .reply = reply,
    .failed = error != NULL, .error_code = error, .timings = TIMINGS, .timing_count = 3,
    .at_ms = at_ms};
  assert_int_equal(conversation_log_record(log, &turn), 0);
}

/* Exports `session` into a malloc'd string (caller frees). */
static char *export_to_string(conversation_log_t *log, const char *session, bool as_text,
                              long *turns)
{
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  assert_non_null(out);
  *turns = conversation_log_export(log, session, as_text, out);
  assert_int_equal(fclose(out), 0);
  return text;
}

static void test_turns_survive_a_restart(void **state)
{
  (void) state;
  char error[256];
  conversation_log_t *log = conversation_log_open(db_path, error, sizeof error);
  assert_non_null(log);
  record(log, "job-1", "sess-a", "when are you open", "We're open 9 to 6.", NULL, 1000);
  record(log, "job-2", "sess-a", "", NULL, "no_speech", 2000);
  record(log, "job-3", "sess-b", "hello", "Hello!", NULL, 1500);
  /* A job re-run after a broker restart reports again: logged once. */
  record(log, "job-1", "sess-a", "when are you open", "We're open 9 to 6.", NULL, 3000);
  conversation_log_close(&log);
  assert_null(log);

  log = conversation_log_open(db_path, error, sizeof error);
  assert_non_null(log);
  long turns = 0;
  char *json_text = export_to_string(log, "sess-a", false, &turns);
  assert_int_equal(turns, 3);
  cJSON *json = cJSON_Parse(json_text);
  assert_non_null(json);
  assert_string_equal(cJSON_GetObjectItem(json, "session_id")->valuestring, "sess-a");
  cJSON *list = cJSON_GetObjectItem(json, "turns");
  assert_int_equal(cJSON_GetArraySize(list), 3);
  cJSON *user = cJSON_GetArrayItem(list, 0), *assistant = cJSON_GetArrayItem(list, 1);
  cJSON *failed = cJSON_GetArrayItem(list, 2);
  assert_string_equal(cJSON_GetObjectItem(user, "role")->valuestring, "user");
  assert_string_equal(cJSON_GetObjectItem(user, "text")->valuestring, "when are you open");
  assert_string_equal(cJSON_GetObjectItem(user, "job_id")->valuestring, "job-1");
  assert_string_equal(cJSON_GetObjectItem(assistant, "role")->valuestring, "assistant");
  assert_string_equal(cJSON_GetObjectItem(assistant, "outcome")->valuestring, "done");
  assert_int_equal(cJSON_GetObjectItem(assistant, "total_ms")->valueint, 900);
  assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(assistant, "timings"), "stt")->valueint,
                   120);
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(assistant, "error_code")));
  assert_string_equal(cJSON_GetObjectItem(failed, "outcome")->valuestring, "failed");
  assert_string_equal(cJSON_GetObjectItem(failed, "error_code")->valuestring, "no_speech");
  assert_int_equal(cJSON_GetObjectItem(failed, "at_ms")->valueint, 2000);
  cJSON_Delete(json);
  free(json_text);

  char *text = export_to_string(log, "sess-b", true, &turns);
  assert_int_equal(turns, 2);
  assert_non_null(strstr(text, "user      done 900 ms: hello\n"));
  assert_non_null(strstr(text, "assistant done 900 ms: Hello!\n"));
  free(text);

  text = export_to_string(log, "nobody", false, &turns);
  assert_int_equal(turns, 0);
  free(text);
  conversation_log_close(&log);
}

/* Runs export-session with `args`; returns its exit status and its stdout in *out. */
static int run_export(const char *const args[], char **out)
{
  char out_path[160];
  snprintf(out_path, sizeof out_path, "%s/export.txt", dir);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (!freopen(out_path, "w", stdout) || !freopen("/dev/null", "w", stderr))
      _exit(127);
    execv(args[0], (char *const *) args);
    _exit(127);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  FILE *file = fopen(out_path, "r");
  assert_non_null(file);
  *out = calloc(1, 8192);
  assert_non_null(*out);
  size_t got = fread(*out, 1, 8191, file);
  (*out)[got] = '\0';
  fclose(file);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_export_session_command(void **state)
{
  (void) state;
  const char *tool = getenv("EXPORT_SESSION");
  assert_non_null(tool);
  char *out = NULL;
  const char *json_args[] = {tool, "--db", db_path, "sess-b", NULL};
  assert_int_equal(run_export(json_args, &out), 0);
  cJSON *json = cJSON_Parse(out);
  assert_non_null(json);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(json, "turns")), 2);
  cJSON_Delete(json);
  free(out);

  const char *text_args[] = {tool, "--text", "--db", db_path, "sess-a", NULL};
  assert_int_equal(run_export(text_args, &out), 0);
  assert_non_null(strstr(out, "failed no_speech 900 ms: \n"));
  free(out);

  const char *unknown[] = {tool, "--db", db_path, "nobody", NULL};
  assert_int_equal(run_export(unknown, &out), 1);
  free(out);
  char missing[160];
  snprintf(missing, sizeof missing, "%s/missing.db", dir);
  const char *no_db[] = {tool, "--db", missing, "sess-a", NULL};
  assert_int_equal(run_export(no_db, &out), 1);
  assert_int_equal(access(missing, F_OK), -1);      /* no empty database left behind */
  free(out);
  const char *bad_usage[] = {tool, "--bogus", NULL};
  assert_int_equal(run_export(bad_usage, &out), 1);
  free(out);
}

static void test_unopenable_path_is_an_error(void **state)
{
  (void) state;
  char error[256] = "";
  char path[192];
  snprintf(path, sizeof path, "%s/export.txt/inside.db", dir);   /* a file as directory */
  conversation_log_t *log = conversation_log_open(path, error, sizeof error);
  assert_null(log);
  assert_non_null(strstr(error, path));
}

static int setup(void **state)
{
  (void) state;
  snprintf(dir, sizeof dir, "/tmp/test_conversation_log.XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  snprintf(db_path, sizeof db_path, "%s/var/conversations.db", dir);
  return 0;
}

static int teardown(void **state)
{
  (void) state;
  char command[256];
  snprintf(command, sizeof command, "rm -rf '%s'", dir);
  return system(command) == 0 ? 0 : -1;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_turns_survive_a_restart),
    cmocka_unit_test(test_export_session_command),
    cmocka_unit_test(test_unopenable_path_is_an_error),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
