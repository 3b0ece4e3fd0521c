/* export-session: prints one conversation from the gateway's conversation log.
 *
 *   export-session [--db PATH] [--text] SESSION_ID
 *
 * PATH defaults to CONVERSATION_DB, then var/conversations.db. JSON by default (see
 * conversation_log.h), one line per turn with --text. Exits 1 when the database
 * cannot be opened or holds no turn of the session. */
#include "config.h"
#include "conversation_log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int usage(void)
{
  fputs("usage: export-session [--db PATH] [--text] SESSION_ID\n", stderr);
  return 1;
}

int main(int argc, char **argv)
{
  const char *path = config_str("CONVERSATION_DB", "var/conversations.db");
  bool as_text = false;
  int arg = 1;
  for (; arg < argc && !strncmp(argv[arg], "--", 2); arg++) {
    if (!strcmp(argv[arg], "--text"))
      as_text = true;
    else if (!strcmp(argv[arg], "--db") && arg + 1 < argc)
      path = argv[++arg];
    else
      return usage();
  }
  if (arg + 1 != argc)
    return usage();
  const char *session_id = argv[arg];
  /* Reading only: a mistyped path must not leave an empty database behind. */
  if (access(path, R_OK) != 0) {
    fprintf(stderr, "export-session: cannot read %s\n", path);
    return 1;
  }
  char error[512];
  conversation_log_t *log = conversation_log_open(path, error, sizeof error);
  if (!log) {
    fprintf(stderr, "export-session: %s\n", error);
    return 1;
  }
  long turns = conversation_log_export(log, session_id, as_text, stdout);
  conversation_log_close(&log);
  if (turns < 0) {
    fprintf(stderr, "export-session: cannot read %s\n", path);
    return 1;
  }
  if (turns == 0) {
    fprintf(stderr, "export-session: no turns of session %s in %s\n", session_id, path);
    return 1;
  }
  return 0;
}
