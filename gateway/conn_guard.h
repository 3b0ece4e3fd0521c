/* conn_guard: deadlines for reading requests, against slow clients. libmicrohttpd's
 * connection timeout only measures silence, so a client that trickles its
 * headers one byte at a time (slowloris) or its body a few bytes at a time
 * would hold a connection forever. The guard tracks every connection's phase
 * and, from a small thread, shuts down the socket of one whose headers (or
 * body) take longer than their deadline; libmicrohttpd then sees the end of
 * the stream and cleans up as for any closed connection. Sending the response
 * has no deadline here: a stalled reader is the idle timeout's business. */
#ifndef GATEWAY_CONN_GUARD_H
#define GATEWAY_CONN_GUARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct conn_guard conn_guard_t;
typedef struct conn_guard_entry conn_guard_entry_t;

/* A guard giving `header_timeout_ms` to send a request's headers (counted from
 * the connection's start or the end of its previous request, so it also bounds
 * idle keep-alive) and `body_timeout_ms` to send its body. Starts the sweeper
 * thread. NULL when out of memory or the thread cannot start. */
conn_guard_t *conn_guard_new(int64_t header_timeout_ms, int64_t body_timeout_ms);

/* Stops the thread and frees the guard; every connection must have been
 * closed (the HTTP daemon stopped) first. Sets *self_p to NULL. */
void conn_guard_destroy(conn_guard_t **self_p);

/* A connection on socket `fd` started: tracked from now, waiting for headers.
 * NULL when out of memory (the connection then simply has no deadline). */
conn_guard_entry_t *conn_guard_opened(conn_guard_t *self, int fd);

/* The connection is closing; `entry` is freed. Must be called before the
 * socket is closed, so the sweeper never touches a reused descriptor. */
void conn_guard_closed(conn_guard_t *self, conn_guard_entry_t *entry);

/* The request's headers have arrived: its body deadline starts. */
void conn_guard_reading_body(conn_guard_t *self, conn_guard_entry_t *entry);

/* A response is queued: no deadline until the request completes. */
void conn_guard_responding(conn_guard_t *self, conn_guard_entry_t *entry);

/* The request completed: the next request's header deadline starts. */
void conn_guard_request_done(conn_guard_t *self, conn_guard_entry_t *entry);

/* Connections tracked now. */
size_t conn_guard_open_count(conn_guard_t *self);

/* Connections cut off so far. */
uint64_t conn_guard_cut_count(conn_guard_t *self);

#endif
