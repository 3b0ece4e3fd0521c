/* http_client: the one libcurl client every cloud backend uses. It applies the rules
 * of shared/docs/external-apis.md §0: connect and total timeouts, a response size
 * cap, retries with exponential back-off and jitter on 429/500/502/503/504 and
 * transport errors only (honouring Retry-After and Google's RetryInfo.retryDelay),
 * never on other 4xx; and it keeps secrets out of errors and logs.
 * Server-Sent Events are parsed here too (§0.3). */
#ifndef HTTP_CLIENT_H
#define HTTP_CLIENT_H

#include "stage_error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One form part of a multipart/form-data body. */
typedef struct {
  const char *name;            /* field name, e.g. "file" */
  const uint8_t *data;
  size_t size;
  const char *filename;        /* NULL for a plain field */
  const char *content_type;    /* NULL for a plain field */
} http_part_t;

/* Called for each complete SSE event's joined data (without "data:" prefixes).
 * `event` is the event's "event:" name or NULL; llama.cpp's non-standard
 * "error: {json}" line is delivered with event "error". Return false to stop. */
typedef bool (http_sse_fn)(void *arg, const char *event, const char *data, size_t size);

typedef struct {
  const char *method;              /* "GET", "POST", "DELETE" */
  const char *url;
  const char *const *headers;      /* NULL-terminated "Name: value" list; may hold secrets */
  const uint8_t *body;             /* JSON or raw body, or NULL */
  size_t body_size;
  const char *content_type;        /* of `body` */
  const http_part_t *parts;        /* multipart body instead of `body` */
  size_t part_count;
  long connect_timeout_ms;         /* 0 = 5000 */
  long timeout_ms;                 /* whole call, 0 = 30000 */
  size_t max_response_bytes;       /* 0 = 16 MiB */
  http_sse_fn *on_event;           /* set for text/event-stream responses */
  void *on_event_arg;
  int max_attempts;                /* 0 = 1 attempt; retries only retryable outcomes */
  long max_backoff_ms;             /* 0 = 8000 */
  const char *backend;             /* names the backend in errors, logs and counters */
} http_request_t;

typedef struct {
  long status;                     /* last HTTP status; 0 when no response */
  uint8_t *body;                   /* malloc'd, NUL-terminated (also for SSE: the raw stream is not kept) */
  size_t body_size;
  char content_type[128];
  int attempts;                    /* how many requests were sent */
  char error_message[512];         /* non-2xx: the provider's message (http_error_message),
                                      with every secret of the request masked */
} http_response_t;

/* Sends the request, retrying as described above, all within timeout_ms (a retry
 * whose wait would not fit is not made: the last answer is returned). Returns 0
 * when a response with any HTTP status arrived (the caller decides by status,
 * then JSON), or -1 with `err` set ("timeout" or "backend_error") when none did,
 * or it was larger than max_response_bytes.
 * With on_event set, a 2xx text/event-stream answer goes to the callback event by
 * event instead of into `body`; once an event was delivered the call is never
 * retried, and a stream cut short is an error. A callback returning false ends
 * the call early with 0. Other answers (errors, plain JSON) fill `body` as usual. */
int http_send(const http_request_t *req, http_response_t *resp, stage_error_t *err);

/* Frees the body and zeroes the response. */
void http_response_release(http_response_t *resp);

/* The provider's own message from an error body, whatever its envelope: Google
 * {"error":{"message"}}, OpenAI {"error":{"message"}}, whisper.cpp {"error":"..."},
 * vLLM {"message"}, D-ID {"description"}; else the start of the raw body. Bounded
 * copy into `out`. */
void http_error_message(const http_response_t *resp, char *out, size_t size);

/* An incremental Server-Sent Events parser (§0.3), used by http_send for
 * text/event-stream answers and usable on its own. Lines may end in LF, CRLF or
 * CR; chunks may split anywhere; "data:" lines of one event are joined with
 * "\n"; ":" comments, "id:" and "retry:" are ignored; "error: {json}" lines are
 * delivered at once with event "error". */
typedef struct http_sse http_sse_t;

/* A parser calling `fn` for each event; lines longer than `max_line` bytes are an
 * error. Returns NULL when out of memory. */
http_sse_t *http_sse_new(http_sse_fn *fn, void *arg, size_t max_line);

/* Feeds the next bytes of the stream. Returns 0, 1 when the callback asked to
 * stop (nothing more is delivered), or -1 for a line over max_line or no memory. */
int http_sse_feed(http_sse_t *self, const char *data, size_t size);

/* The stream ended: an event whose last line was complete but lacked the closing
 * blank line is still delivered (servers that end by closing); a partial line is
 * dropped. Returns like http_sse_feed. */
int http_sse_finish(http_sse_t *self);

/* How many events were delivered so far. */
size_t http_sse_events(const http_sse_t *self);

/* Frees the parser and sets *self_p to NULL; does nothing for NULL. */
void http_sse_destroy(http_sse_t **self_p);

/* Every call counts, under label `backend`, in the process counters (counters.h):
 * backend_requests (each request sent), backend_retries, backend_errors_4xx and
 * backend_errors_5xx (each such answer), backend_errors_transport (each attempt
 * without an answer). They reach /metrics through the broker. */

#endif
