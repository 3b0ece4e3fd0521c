/* fuzz_broker: the broker's frame parsing (services/broker/broker.c) driven
 * through a real broker actor over inproc://. Each input is split into AVP1
 * messages from up to four peers (DEALER sockets); afterwards every peer asks
 * INFO and must get it back, which proves the broker is alive and has handled
 * everything it was sent. Every message the broker sends back must be a
 * well-formed AVP1 message.
 *
 * Input format: a sequence of frames, each
 *   [control: u8][length: u16 little-endian][length bytes]
 * control bits 0-1 pick the peer that sends the message (read from a message's
 * first frame), bit 7 marks the message's last frame. A length running past the
 * input is cut short. At most MAX_MESSAGES messages of MAX_FRAMES frames. */
#include "broker.h"
#include "log.h"
#include "protocol.h"

#include <cjson/cJSON.h>
#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEERS 4
#define MAX_MESSAGES 64
#define MAX_FRAMES 16
#define INFO_TIMEOUT_MS 5000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static broker_config_t config;
static unsigned long runs;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  setenv("LOG_LEVEL", "error", 0);
  log_init("fuzz_broker");
  /* libFuzzer owns SIGINT and friends. */
  zsys_handler_set(NULL);
  /* Each input opens a broker and four peers; libzmq reaps closed sockets on a
   * thread of its own, which on a loaded machine fell behind a long run until the
   * default 1024 sockets were all in use and zsock_new aborted. 0: the system's
   * maximum, before the context exists. */
  zsys_set_max_sockets(0);
  zsys_init();
  memset(&config, 0, sizeof config);
  /* Small limits, so full queues, dropped events and oversized payloads are
   * within reach of short inputs. */
  config.queue_max = 3;
  config.status_queue_max = 3;
  config.max_attempts = 2;
  config.heartbeat_ms = 1000;
  config.max_payload = 4096;
  config.stage_timeout_ms = 30000;
  return 0;
}

static void fail(const char *what)
{
  fprintf(stderr, "fuzz_broker: %s\n", what);
  abort();
}

/* Reads the next frame of the input; false at its end. */
static bool next_frame(const uint8_t **data, size_t *size, uint8_t *control, const uint8_t **bytes,
                       size_t *length)
{
  if (*size < 3)
    return false;
  *control = (*data)[0];
  size_t wanted = (size_t) (*data)[1] | (size_t) (*data)[2] << 8;
  *data += 3;
  *size -= 3;
  *length = wanted < *size ? wanted : *size;
  *bytes = *data;
  *data += *length;
  *size -= *length;
  return true;
}

/* Checks that the broker's reply is [AVP1][known command]...; returns whether it
 * is the INFO answer. */
static bool check_reply(zmsg_t *msg)
{
  char version[8], command[16];
  if (!avp_pop_name(msg, version, sizeof version) || strcmp(version, AVP_VERSION) != 0 ||
      !avp_pop_name(msg, command, sizeof command))
    fail("the broker sent a malformed message");
  static const char *const known[] = {AVP_JOB, AVP_EVENT, AVP_ACK, AVP_NACK,
                                      AVP_HEARTBEAT, AVP_DISCONNECT, AVP_INFO};
  bool is_known = false;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    is_known = is_known || strcmp(command, known[i]) == 0;
  if (!is_known)
    fail("the broker sent an unknown command");
  if (strcmp(command, AVP_INFO) != 0)
    return false;
  char *json = zmsg_popstr(msg);
  cJSON *info = json ? cJSON_Parse(json) : NULL;
  if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(info, "stages")))
    fail("the broker's INFO is not the documented JSON");
  cJSON_Delete(info);
  free(json);
  return true;
}

/* INFO round trip for one peer, checking every message that arrives first. */
static void expect_info(zsock_t *peer)
{
  zmsg_t *request = avp_msg_new(AVP_INFO);
  if (!request || zmsg_send(&request, peer) != 0)
    fail("cannot send INFO");
  zpoller_t *poller = zpoller_new(peer, NULL);
  if (!poller)
    fail("out of memory");
  int64_t give_up = zclock_mono() + INFO_TIMEOUT_MS;
  bool answered = false;
  while (!answered) {
    int64_t left = give_up - zclock_mono();
    if (left <= 0)
      fail("the broker stopped answering INFO");
    /* NULL: the time ran out (caught above) or libFuzzer's timer signal
     * interrupted the wait or the receive; either way, go round again. */
    if (!zpoller_wait(poller, (int) left))
      continue;
    zmsg_t *reply = zmsg_recv(peer);
    if (!reply)
      continue;
    answered = check_reply(reply);
    zmsg_destroy(&reply);
  }
  zpoller_destroy(&poller);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* A fresh broker per input; libzmq frees an inproc name only some time after
   * its socket closed, so each broker gets its own. */
  snprintf(config.endpoint, sizeof config.endpoint, "inproc://fuzz-broker-%lu", runs++);
  zactor_t *broker = zactor_new(broker_actor, &config);
  zsock_t *peers[PEERS] = {NULL};
  if (!broker)
    fail("cannot start the broker");
  for (int i = 0; i < PEERS; i++) {
    peers[i] = zsock_new_dealer(NULL);
    if (peers[i] && zsock_connect(peers[i], "%s", config.endpoint) != 0)
      zsock_destroy(&peers[i]);
    if (!peers[i])
      fail("cannot connect a peer");
    zsock_set_linger(peers[i], 0);
  }

  zmsg_t *msg = NULL;
  zsock_t *sender = NULL;
  int messages = 0;
  uint8_t control;
  const uint8_t *bytes;
  size_t length;
  while (messages < MAX_MESSAGES && next_frame(&data, &size, &control, &bytes, &length)) {
    if (!msg) {
      msg = zmsg_new();
      sender = peers[control & (PEERS - 1)];
    }
    if (!msg || zmsg_addmem(msg, bytes, length) != 0)
      fail("out of memory");
    if ((control & 0x80) || zmsg_size(msg) == MAX_FRAMES) {
      if (zmsg_send(&msg, sender) != 0)
        fail("cannot send to the broker");
      messages++;
    }
  }
  if (msg && zmsg_send(&msg, sender) != 0)
    fail("cannot send to the broker");

  for (int i = 0; i < PEERS; i++)
    expect_info(peers[i]);
  for (int i = 0; i < PEERS; i++)
    zsock_destroy(&peers[i]);
  zactor_destroy(&broker);
  return 0;
}
