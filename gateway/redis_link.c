/* redis_link: one hiredis connection with reconnect-and-retry-once, and the
 * WATCH/MULTI/EXEC loop the stores use to merge into a shared record. */
#include "redis_link.h"

#include "log.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT_MS 2000
#define COMMAND_TIMEOUT_MS 5000
#define UPDATE_ATTEMPTS 32 /* conflicting writers before an update gives up */

struct redis_link {
  pthread_mutex_t lock;
  redisContext *context; /* NULL while disconnected */
  char host[256];
  int port;
  long db;
  char *password;        /* NULL when none; never logged */
  bool down;             /* the last attempt to reach Redis failed (logged once) */
};

static struct timeval timeval_ms(long ms)
{
  return (struct timeval) {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* Parses "redis://host[:port][/db]" into self. */
static bool parse_url(redis_link_t *self, const char *url, char *error, size_t error_size)
{
  const char *scheme = "redis://";
  if (strncmp(url, scheme, strlen(scheme)) != 0) {
    snprintf(error, error_size, "STATUS_STORE must be memory or redis://host[:port][/db]");
    return false;
  }
  const char *host = url + strlen(scheme);
  size_t host_length = strcspn(host, ":/");
  if (host_length == 0 || host_length >= sizeof self->host || memchr(host, '@', host_length)) {
    snprintf(error, error_size, "the Redis URL needs a host (and no credentials: use "
                                "STATUS_STORE_PASSWORD)");
    return false;
  }
  memcpy(self->host, host, host_length);
  self->host[host_length] = '\0';
  const char *rest = host + host_length;
  self->port = 6379;
  self->db = 0;
  char *end;
  if (*rest == ':') {
    long port = strtol(rest + 1, &end, 10);
    if (end == rest + 1 || port < 1 || port > 65535 || (*end && *end != '/')) {
      snprintf(error, error_size, "the Redis URL's port is not a number in 1-65535");
      return false;
    }
    self->port = (int) port;
    rest = end;
  }
  if (*rest == '/' && rest[1]) {
    long db = strtol(rest + 1, &end, 10);
    if (end == rest + 1 || *end || db < 0 || db > 65535) {
      snprintf(error, error_size, "the Redis URL's database is not a number");
      return false;
    }
    self->db = db;
  } else if (*rest && strcmp(rest, "/") != 0) {
    snprintf(error, error_size, "the Redis URL has trailing characters");
    return false;
  }
  return true;
}

static void disconnect(redis_link_t *self)
{
  if (self->context)
    redisFree(self->context);
  self->context = NULL;
}

/* Runs one command on the open connection; NULL on an I/O error (the
 * connection is then closed) or a Redis error reply. */
static redisReply *run(redis_link_t *self, int argc, const char **argv, const size_t *lengths)
{
  redisReply *reply = redisCommandArgv(self->context, argc, argv, lengths);
  if (!reply) {
    log_msg(LOG_ERROR, "redis_error", "%s: %s", argv[0], self->context->errstr);
    disconnect(self);
    return NULL;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    log_msg(LOG_ERROR, "redis_error", "%s: %.200s", argv[0], reply->str);
    freeReplyObject(reply);
    return NULL;
  }
  return reply;
}

/* Opens the connection when it is closed: AUTH, SELECT, PING. */
static bool ensure_connected(redis_link_t *self, char *error, size_t error_size)
{
  if (self->context)
    return true;
  redisContext *context =
    redisConnectWithTimeout(self->host, self->port, timeval_ms(CONNECT_TIMEOUT_MS));
  if (!context || context->err) {
    snprintf(error, error_size, "cannot reach Redis at %s:%d: %s", self->host, self->port,
             context ? context->errstr : "out of memory");
    if (context)
      redisFree(context);
    return false;
  }
  self->context = context;
  bool ok = redisSetTimeout(context, timeval_ms(COMMAND_TIMEOUT_MS)) == REDIS_OK;
  if (ok && self->password) {
    const char *argv[] = {"AUTH", self->password};
    redisReply *reply = run(self, 2, argv, NULL);
    ok = reply != NULL;
    freeReplyObject(reply);
  }
  char db[24];
  snprintf(db, sizeof db, "%ld", self->db);
  const char *select[] = {"SELECT", db};
  const char *ping[] = {"PING"};
  for (int i = 0; ok && i < 2; i++) {
    redisReply *reply = self->context ? run(self, i ? 1 : 2, i ? ping : select, NULL) : NULL;
    ok = reply != NULL;
    freeReplyObject(reply);
  }
  if (!ok) {
    snprintf(error, error_size, "Redis at %s:%d refused AUTH, SELECT %ld or PING", self->host,
             self->port, self->db);
    disconnect(self);
  }
  return ok;
}

/* Connects when needed, logging only the transitions between up and down so a
 * Redis outage costs two log lines, not one per request. */
static bool connect_logged(redis_link_t *self)
{
  char error[512];
  if (ensure_connected(self, error, sizeof error)) {
    if (self->down)
      log_msg(LOG_INFO, "redis_restored", "connected to %s:%d again", self->host, self->port);
    self->down = false;
    return true;
  }
  if (!self->down)
    log_msg(LOG_ERROR, "redis_lost", "%s", error);
  self->down = true;
  return false;
}

/* One command, tried a second time on a fresh connection when the first one
 * broke (Redis restarted, a proxy closed an idle connection). Lock held. */
static redisReply *command(redis_link_t *self, int argc, const char **argv,
                           const size_t *lengths)
{
  for (int attempt = 0; attempt < 2; attempt++) {
    if (!connect_logged(self))
      return NULL;
    redisReply *reply = run(self, argc, argv, lengths);
    if (reply || self->context)
      return reply; /* a result, or an error reply on a healthy connection */
  }
  return NULL;
}

redis_link_t *redis_link_new(const char *url, const char *password, char *error,
                             size_t error_size)
{
  redis_link_t *self = calloc(1, sizeof *self);
  if (!self) {
    snprintf(error, error_size, "out of memory");
    return NULL;
  }
  if (!parse_url(self, url, error, error_size) ||
      (password && *password && !(self->password = strdup(password))) ||
      pthread_mutex_init(&self->lock, NULL) != 0) {
    free(self->password);
    free(self);
    return NULL;
  }
  if (!ensure_connected(self, error, error_size)) {
    redis_link_destroy(&self);
    return NULL;
  }
  return self;
}

void redis_link_destroy(redis_link_t **self_p)
{
  redis_link_t *self = *self_p;
  if (!self)
    return;
  disconnect(self);
  if (self->password) {
    memset(self->password, 0, strlen(self->password));
    free(self->password);
  }
  pthread_mutex_destroy(&self->lock);
  free(self);
  *self_p = NULL;
}

/* Copies a bulk string reply into a NUL-terminated buffer. */
static int copy_string(const redisReply *reply, char **value_out, size_t *size_out)
{
  if (reply->type == REDIS_REPLY_NIL)
    return 0;
  if (reply->type != REDIS_REPLY_STRING)
    return -1;
  char *copy = malloc(reply->len + 1);
  if (!copy)
    return -1;
  memcpy(copy, reply->str, reply->len);
  copy[reply->len] = '\0';
  *value_out = copy;
  *size_out = reply->len;
  return 1;
}

int redis_link_get(redis_link_t *self, const char *key, char **value_out, size_t *size_out)
{
  *value_out = NULL;
  *size_out = 0;
  const char *argv[] = {"GET", key};
  pthread_mutex_lock(&self->lock);
  redisReply *reply = command(self, 2, argv, NULL);
  int rc = reply ? copy_string(reply, value_out, size_out) : -1;
  freeReplyObject(reply);
  pthread_mutex_unlock(&self->lock);
  return rc;
}

/* Integer replies (DEL, PEXPIRE) as 1 (non-zero) / 0 / -1. */
static int integer_command(redis_link_t *self, int argc, const char **argv)
{
  pthread_mutex_lock(&self->lock);
  redisReply *reply = command(self, argc, argv, NULL);
  int rc = !reply || reply->type != REDIS_REPLY_INTEGER ? -1 : reply->integer > 0;
  freeReplyObject(reply);
  pthread_mutex_unlock(&self->lock);
  return rc;
}

int redis_link_set(redis_link_t *self, const char *key, const void *value, size_t size,
                   int64_t ttl_ms, bool only_if_new)
{
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%lld", (long long) (ttl_ms > 0 ? ttl_ms : 1));
  const char *argv[] = {"SET", key, value, "PX", ttl, "NX"};
  size_t lengths[] = {3, strlen(key), size, 2, strlen(ttl), 2};
  pthread_mutex_lock(&self->lock);
  redisReply *reply = command(self, only_if_new ? 6 : 5, argv, lengths);
  int rc = !reply ? -1 : reply->type == REDIS_REPLY_STATUS ? 1 : reply->type == REDIS_REPLY_NIL ? 0 : -1;
  freeReplyObject(reply);
  pthread_mutex_unlock(&self->lock);
  return rc;
}

int redis_link_delete(redis_link_t *self, const char *key)
{
  const char *argv[] = {"DEL", key};
  return integer_command(self, 2, argv);
}

int redis_link_touch(redis_link_t *self, const char *key, int64_t ttl_ms)
{
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%lld", (long long) (ttl_ms > 0 ? ttl_ms : 1));
  const char *argv[] = {"PEXPIRE", key, ttl};
  return integer_command(self, 3, argv);
}

long redis_link_count(redis_link_t *self, const char *prefix)
{
  char pattern[REDIS_KEY_MAX + 2];
  if (snprintf(pattern, sizeof pattern, "%s*", prefix) >= (int) sizeof pattern)
    return -1;
  char cursor[24] = "0";
  long count = 0;
  pthread_mutex_lock(&self->lock);
  do {
    const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
    redisReply *reply = command(self, 6, argv, NULL);
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
              reply->element[0]->type == REDIS_REPLY_STRING &&
              reply->element[0]->len < sizeof cursor &&
              reply->element[1]->type == REDIS_REPLY_ARRAY;
    if (ok) {
      snprintf(cursor, sizeof cursor, "%s", reply->element[0]->str);
      count += (long) reply->element[1]->elements;
    }
    freeReplyObject(reply);
    if (!ok)
      count = -1;
  } while (count >= 0 && strcmp(cursor, "0") != 0);
  pthread_mutex_unlock(&self->lock);
  return count;
}

/* One WATCH/GET/update/MULTI/SET/EXEC round. 1 written, 0 unchanged, 2 another
 * client wrote the key meanwhile (try again), -1 error. Lock held. */
static int update_once(redis_link_t *self, const char *key, const char *ttl,
                       redis_update_fn *update, void *arg)
{
  const char *watch[] = {"WATCH", key};
  redisReply *reply = command(self, 2, watch, NULL);
  if (!reply)
    return -1;
  freeReplyObject(reply);
  const char *get[] = {"GET", key};
  reply = run(self, 2, get, NULL);
  char *current = NULL;
  size_t size = 0;
  int found = reply ? copy_string(reply, &current, &size) : -1;
  freeReplyObject(reply);
  if (found < 0)
    return -1;
  char *value = update(current, size, arg);
  free(current);
  const char *unwatch[] = {"UNWATCH"};
  if (!value) {
    freeReplyObject(run(self, 1, unwatch, NULL));
    return 0;
  }
  const char *multi[] = {"MULTI"};
  const char *set[] = {"SET", key, value, "PX", ttl};
  const char *exec[] = {"EXEC"};
  int rc = -1;
  reply = run(self, 1, multi, NULL);
  if (reply) {
    freeReplyObject(reply);
    reply = run(self, 5, set, NULL); /* QUEUED */
    if (reply) {
      freeReplyObject(reply);
      reply = run(self, 1, exec, NULL);
      /* EXEC answers nil when a watched key changed: the transaction was dropped. */
      rc = !reply ? -1 : reply->type == REDIS_REPLY_NIL ? 2 : reply->type == REDIS_REPLY_ARRAY ? 1 : -1;
    }
  }
  freeReplyObject(reply);
  free(value);
  return rc;
}

int redis_link_update(redis_link_t *self, const char *key, int64_t ttl_ms,
                      redis_update_fn *update, void *arg)
{
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%lld", (long long) (ttl_ms > 0 ? ttl_ms : 1));
  pthread_mutex_lock(&self->lock);
  int rc = -1;
  for (int attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
    rc = update_once(self, key, ttl, update, arg);
    if (rc == -1 && self->context) {
      /* An error reply may leave a transaction or a WATCH open: drop both
       * (whichever is not open just answers an error). */
      const char *discard[] = {"DISCARD"};
      const char *unwatch[] = {"UNWATCH"};
      freeReplyObject(redisCommandArgv(self->context, 1, discard, NULL));
      freeReplyObject(redisCommandArgv(self->context, 1, unwatch, NULL));
    }
    if (rc != 2 && !(rc == -1 && attempt == 0 && !self->context))
      break; /* done, or an error that a fresh connection will not fix */
  }
  pthread_mutex_unlock(&self->lock);
  if (rc == 2)
    log_msg(LOG_ERROR, "redis_error", "too many conflicting writers on one key");
  return rc == 2 ? -1 : rc;
}
