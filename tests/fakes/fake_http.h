/* fake_http: the small HTTP server every fake remote API is built on (libmicrohttpd).
 *
 * A fake binds 127.0.0.1 on an ephemeral port, reads whole request bodies (and the
 * parts of multipart/form-data ones), routes by method and raw path (Google's literal
 * colon, e.g. "/v1/speech:recognize", is matched as sent: the path is not
 * percent-decoded), records every request so tests can assert on it, and lets each
 * route answer with JSON, raw bytes, a stream written in small unaligned pieces
 * (chunked transfer, for SSE, with a builder for event-stream bodies), after a
 * delay, or by dropping the connection.
 *
 * Outcomes are scripted per request: a queue of words ("ok", "429", "500", "slow",
 * "drop", "malformed", or anything a fake understands). Each routed request takes the
 * first queued word whose optional route filter matches ("/talks=error" applies only to
 * a request whose route pattern is "/talks"); with none queued it gets "ok". Words
 * arrive from the FAKE_OUTCOMES environment variable (comma or space separated) at
 * start, from fake_server_push_outcome() in-process, or over HTTP:
 *
 *   POST   /_fake/next      body "429 ok" or "/talks=error": appends to the queue
 *   GET    /_fake/requests  every recorded request as a JSON array
 *   DELETE /_fake/requests  forgets them (and empties the outcome queue)
 *
 * Two outcomes are handled here for every route: "drop" closes the connection without
 * an answer and "slow" waits FAKE_SLOW_MS (default 3000 ms) before the route answers
 * as for "ok". Control requests are not recorded.
 *
 * fake_main.c turns a fake's install function into an executable that prints
 * "port <n>" on stdout once it listens, for tests that start fakes as processes. */
#ifndef FAKE_HTTP_H
#define FAKE_HTTP_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fake_server fake_server_t;

/* One "Name: value" request header. */
typedef struct {
  char *name;
  char *value;
} fake_header_t;

/* One part of a multipart/form-data body. */
typedef struct {
  char *name;
  char *filename;       /* NULL for a plain field */
  char *content_type;   /* NULL when the part gave none */
  uint8_t *data;        /* NUL-terminated copy */
  size_t size;
} fake_part_t;

/* A recorded request. Immutable once recorded; owned by the server. */
typedef struct {
  char *method;
  char *path;           /* raw, as sent (no percent-decoding) */
  char *query;          /* "k=v&k2=v2" rebuilt from the arguments, "" when none */
  char *route;          /* the matched route pattern, or NULL */
  char *outcome;        /* the outcome word this request took */
  fake_header_t *headers;
  size_t header_count;
  uint8_t *body;        /* NUL-terminated, `body_size` bytes before the NUL */
  size_t body_size;
  fake_part_t *parts;   /* multipart bodies only */
  size_t part_count;
} fake_request_t;

/* What a route answers. Fill it with the fake_reply_* calls. */
typedef struct fake_reply fake_reply_t;

/* A route's handler. `server` is there for fakes that keep state (fake_server_state). */
typedef void (fake_handler_fn)(fake_server_t *server, const fake_request_t *req,
                               fake_reply_t *reply);

/* Creates a server listening on 127.0.0.1:`port` (0 = ephemeral) with its own thread
 * per connection. NULL (with a line on stderr) on failure. */
fake_server_t *fake_server_new(uint16_t port);

/* Stops the server, frees every record. Safe on NULL; sets *server_p to NULL. */
void fake_server_destroy(fake_server_t **server_p);

/* The port actually bound. */
uint16_t fake_server_port(const fake_server_t *server);

/* "http://127.0.0.1:<port>" into `out`. */
void fake_server_base_url(const fake_server_t *server, char *out, size_t size);

/* Adds a route. `pattern` is an exact raw path, or ends in '*' to match any path with
 * that prefix ("/talks/" followed by "*"); `method` "*" matches any method. Routes are tried in the
 * order added; an unrouted request gets a plain 404. Returns 0, -1 when
 * out of memory. */
int fake_server_route(fake_server_t *server, const char *method, const char *pattern,
                      fake_handler_fn *handler);

/* Per-fake state for handlers; `free_state` (may be NULL) runs at destroy. */
void fake_server_set_state(fake_server_t *server, void *state, void (*free_state)(void *));
void *fake_server_state(fake_server_t *server);

/* Locks serialising handlers that touch the fake's state; handlers run concurrently. */
void fake_server_lock(fake_server_t *server);
void fake_server_unlock(fake_server_t *server);

/* Appends outcome words (comma or space separated, each optionally "route=word").
 * Returns 0, -1 when out of memory or a word is too long. */
int fake_server_push_outcome(fake_server_t *server, const char *words);

/* How many requests were recorded so far. */
size_t fake_server_request_count(fake_server_t *server);

/* The i-th recorded request, or NULL. Valid until fake_server_clear or destroy. */
const fake_request_t *fake_server_request(fake_server_t *server, size_t i);

/* The last recorded request whose route is `route` (any when NULL), or NULL. */
const fake_request_t *fake_server_last_request(fake_server_t *server, const char *route);

/* Forgets every recorded request and queued outcome. */
void fake_server_clear(fake_server_t *server);

/* Blocks until SIGINT or SIGTERM (for fake executables). */
void fake_server_wait_for_signal(void);

/* Case-insensitive header lookup; NULL when absent. */
const char *fake_request_header(const fake_request_t *req, const char *name);

/* The multipart part called `name`, or NULL. */
const fake_part_t *fake_request_part(const fake_request_t *req, const char *name);

/* The value of query argument `name`, or NULL. Writes into `out`. */
const char *fake_request_arg(const fake_request_t *req, const char *name, char *out,
                             size_t size);

/* The body parsed as JSON (caller deletes), or NULL when it is not JSON. */
cJSON *fake_request_json(const fake_request_t *req);

/* Sets status and a JSON body (copied). */
void fake_reply_json(fake_reply_t *reply, int status, const char *json);

/* Sets status and the printed form of `json`, which it deletes. */
void fake_reply_cjson(fake_reply_t *reply, int status, cJSON *json);

/* Sets status and a raw body of `content_type` (copied). */
void fake_reply_raw(fake_reply_t *reply, int status, const char *content_type,
                    const void *data, size_t size);

/* Adds a response header (copied; up to 8). */
void fake_reply_header(fake_reply_t *reply, const char *name, const char *value);

/* Sends the body with chunked transfer in pieces of 1..max_piece bytes whose sizes
 * vary, so they split words, UTF-8 sequences and SSE prefixes, pausing `pause_ms`
 * between pieces. */
void fake_reply_stream(fake_reply_t *reply, size_t max_piece, unsigned pause_ms);

/* With a streamed body: closes the connection after `bytes` bytes, mid-body. */
void fake_reply_drop_after(fake_reply_t *reply, size_t bytes);

/* With a streamed body: pauses `ms` once, before the byte at `offset` is sent. */
void fake_reply_pause_at(fake_reply_t *reply, size_t offset, unsigned ms);

/* A Server-Sent Events body being built (text/event-stream). Zero-initialise;
 * `crlf` chooses CRLF line ends instead of LF. */
typedef struct {
  char *data;
  size_t size, capacity;
  bool crlf;
  bool failed;          /* out of memory: fake_reply_sse answers 500 */
} fake_sse_t;

/* Appends one line (a comment such as ": keep-alive", or any raw line) and its end. */
void fake_sse_line(fake_sse_t *sse, const char *line);

/* Appends the event "data: <json printed>" and the blank line closing it;
 * deletes `json`. */
void fake_sse_event(fake_sse_t *sse, cJSON *json);

/* Answers 200 text/event-stream with the built body, streamed as
 * fake_reply_stream does; frees the body (the builder is zeroed). */
void fake_reply_sse(fake_reply_t *reply, fake_sse_t *sse, size_t max_piece, unsigned pause_ms);

/* Waits `ms` before answering (interrupted when the server stops). */
void fake_reply_delay(fake_reply_t *reply, unsigned ms);

/* Closes the connection without any answer. */
void fake_reply_drop(fake_reply_t *reply);

/* Runs a fake as a process: creates the server on FAKE_PORT (default ephemeral),
 * lets `install` add its routes (returns 0 or -1), prints "port <n>" on stdout,
 * serves until SIGINT/SIGTERM. Returns the process exit status. */
int fake_http_main(const char *name, int (*install)(fake_server_t *server));

#endif
