/* conversation_log: the durable record of every conversation, in SQLite (the seed's
 * "database of conversation logs"). The gateway writes one row per turn when a job
 * becomes final, because only the gateway sees every job's outcome; the
 * export-session command reads a session back as JSON or text.
 *
 * Table `turns`: id, job_id, session_id, role ("user" | "assistant"), text, at_ms
 * (unix ms when the job became final), total_ms, timings (JSON object: stage -> ms),
 * outcome ("done" | "failed"), error_code (NULL when done). (job_id, role) is unique:
 * a job that runs twice after a broker restart is logged once. */
#ifndef GATEWAY_CONVERSATION_LOG_H
#define GATEWAY_CONVERSATION_LOG_H

#include "job_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct conversation_log conversation_log_t;

/* One finished job as the log records it. Strings may be NULL or empty. */
typedef struct {
  const char *job_id;
  const char *session_id;
  const char *question;     /* typed text or transcript: the user's turn */
  const char *reply;        /* the assistant's turn */
  bool failed;
  const char *error_code;
  const job_timing_t *timings;
  size_t timing_count;
  int64_t at_ms;
} conversation_turn_t;

/* Opens (creating when missing) the database at `path`, creating its directory.
 * Safe to share between threads. NULL with a reason in `error` on failure. */
conversation_log_t *conversation_log_open(const char *path, char *error, size_t error_size);

/* Closes the database and sets *self_p to NULL; does nothing for NULL. */
void conversation_log_close(conversation_log_t **self_p);

/* Bytes SQLite holds on the heap in this process (mostly its page cache, which
 * grows as turns are written until the cache's limit), for /metrics. */
int64_t conversation_log_memory_used(void);

/* Records a finished job: a user row when there is a question, an assistant row when
 * there is a reply, and a user row with empty text for a job that failed before
 * either (no speech heard), so every failure is logged. A job already logged is
 * ignored. Returns 0, or -1 when the database refuses (logged). */
int conversation_log_record(conversation_log_t *self, const conversation_turn_t *turn);

/* Writes every turn of `session_id`, oldest first, to `out`: a JSON object
 * {"session_id", "turns": [{job_id, role, text, at_ms, total_ms, timings, outcome,
 * error_code}]} or, with `as_text`, one line per turn. Returns the number of turns,
 * or -1 when the database cannot be read. */
long conversation_log_export(conversation_log_t *self, const char *session_id, bool as_text,
                             FILE *out);

#endif
