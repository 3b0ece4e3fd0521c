/* healthcheck: the probe that containers run, since the broker and the stage
 * workers serve no HTTP of their own (Docker HEALTHCHECK, Kubernetes exec
 * probes). One check per run, exit 0 when healthy, 1 when not, 2 on bad usage:
 *
 *   healthcheck broker [ENDPOINT]     the broker's loop answers INFO (with the
 *                                     process's CURVE keys when they are set)
 *   healthcheck connected [ENDPOINT]  this network namespace holds an established
 *                                     TCP connection to the broker's port, i.e.
 *                                     the worker in this container is attached
 *   healthcheck http URL              the URL answers 2xx (the gateway's /healthz)
 *
 * ENDPOINT defaults to BROKER_ENDPOINT. `connected` reads /proc/net/tcp{,6}
 * rather than asking the worker: a worker then needs no extra socket or thread,
 * and the check sees exactly what matters, the link that jobs come over. It
 * cannot tell two workers of one namespace apart: one worker per container. */
#include "clock.h"
#include "config.h"
#include "curve.h"
#include "log.h"
#include "protocol.h"

#include <curl/curl.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_HEALTHY 0
#define EXIT_UNHEALTHY 1
#define EXIT_USAGE 2
#define TCP_ESTABLISHED "01" /* the st column of /proc/net/tcp */

static int unhealthy(const char *check, const char *why)
{
  log_msg(LOG_ERROR, "unhealthy", "%s: %s", check, why);
  return EXIT_UNHEALTHY;
}

/* Sends INFO on a fresh DEALER and waits for the broker's INFO reply. */
static int check_broker(const char *endpoint, int timeout_ms)
{
  zsock_t *dealer = zsock_new(ZMQ_DEALER);
  if (!dealer)
    return unhealthy("broker", "cannot create a socket");
  zsock_set_linger(dealer, 0);
  zsock_set_rcvtimeo(dealer, timeout_ms);
  zsock_set_sndtimeo(dealer, timeout_ms);
  zmsg_t *request = avp_msg_new(AVP_INFO);
  int rc = EXIT_UNHEALTHY;
  if (!request || curve_apply_client(dealer) != 0 || zsock_connect(dealer, "%s", endpoint) != 0) {
    unhealthy("broker", "cannot connect (bad endpoint or CURVE settings)");
  } else if (zmsg_send(&request, dealer) != 0) {
    unhealthy("broker", "INFO could not be sent");
  } else {
    /* Skip anything but INFO (a DISCONNECT for a peer the broker does not know). */
    int64_t give_up = clock_mono_ms() + timeout_ms;
    while (rc != EXIT_HEALTHY && clock_mono_ms() < give_up) {
      zmsg_t *reply = zmsg_recv(dealer);
      if (!reply)
        break;
      char version[8], command[16];
      if (avp_pop_name(reply, version, sizeof version) && !strcmp(version, AVP_VERSION) &&
          avp_pop_name(reply, command, sizeof command) && !strcmp(command, AVP_INFO))
        rc = EXIT_HEALTHY;
      zmsg_destroy(&reply);
    }
    if (rc != EXIT_HEALTHY)
      unhealthy("broker", "no INFO answer in time");
  }
  zmsg_destroy(&request);
  zsock_destroy(&dealer);
  return rc;
}

/* The TCP port of "tcp://host:port"; 0 when there is none. */
static unsigned endpoint_port(const char *endpoint)
{
  const char *colon = strrchr(endpoint, ':');
  if (strncmp(endpoint, "tcp://", 6) != 0 || !colon || colon < endpoint + 6)
    return 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  return *end || port < 1 || port > 65535 ? 0 : (unsigned) port;
}

/* true when `table` (/proc/net/tcp or tcp6) lists an established connection
 * whose remote port is `port`. Lines: "sl local rem st ...", addresses as
 * HEXADDR:HEXPORT. */
static bool table_has_connection(const char *table, unsigned port)
{
  FILE *file = fopen(table, "r");
  if (!file)
    return false;
  char line[512];
  bool found = false;
  while (!found && fgets(line, sizeof line, file)) {
    char remote[64], state[8];
    if (sscanf(line, " %*s %*s %63s %7s", remote, state) != 2)
      continue; /* the header */
    const char *colon = strrchr(remote, ':');
    found = colon && strtoul(colon + 1, NULL, 16) == port && !strcmp(state, TCP_ESTABLISHED);
  }
  fclose(file);
  return found;
}

static int check_connected(const char *endpoint)
{
  unsigned port = endpoint_port(endpoint);
  if (!port) {
    fprintf(stderr, "healthcheck connected: %s is not tcp://host:port\n", endpoint);
    return EXIT_USAGE;
  }
  if (table_has_connection("/proc/net/tcp", port) || table_has_connection("/proc/net/tcp6", port))
    return EXIT_HEALTHY;
  return unhealthy("connected", "no established connection to the broker's port");
}

static size_t discard_body(char *data, size_t size, size_t count, void *arg)
{
  (void) data;
  (void) arg;
  return size * count;
}

static int check_http(const char *url, int timeout_ms)
{
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return unhealthy("http", "libcurl cannot start");
  CURL *curl = curl_easy_init();
  long status = 0;
  CURLcode result = CURLE_FAILED_INIT;
  if (curl && curl_easy_setopt(curl, CURLOPT_URL, url) == CURLE_OK &&
      curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) timeout_ms) == CURLE_OK &&
      curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
      curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body) == CURLE_OK) {
    result = curl_easy_perform(curl);
    if (result == CURLE_OK)
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  }
  curl_easy_cleanup(curl);
  curl_global_cleanup();
  if (result != CURLE_OK)
    return unhealthy("http", curl_easy_strerror(result));
  if (status < 200 || status > 299) {
    char why[64];
    snprintf(why, sizeof why, "HTTP status %ld", status);
    return unhealthy("http", why);
  }
  return EXIT_HEALTHY;
}

int main(int argc, char **argv)
{
  log_init("healthcheck");
  zsys_init();
  zsys_set_logstream(NULL); /* czmq's own log lines would not be JSON */
  const char *check = argc > 1 ? argv[1] : "";
  const char *target = argc > 2 ? argv[2] : NULL;
  int timeout_ms = (int) config_long("HEALTHCHECK_TIMEOUT_MS", 2000, 100, 60000);
  const char *broker = target ? target : config_str("BROKER_ENDPOINT", "tcp://127.0.0.1:5555");
  if (argc <= 3 && !strcmp(check, "broker"))
    return check_broker(broker, timeout_ms);
  if (argc <= 3 && !strcmp(check, "connected"))
    return check_connected(broker);
  if (argc == 3 && !strcmp(check, "http"))
    return check_http(target, timeout_ms);
  fprintf(stderr, "usage: healthcheck broker [ENDPOINT] | connected [ENDPOINT] | http URL\n");
  return EXIT_USAGE;
}
