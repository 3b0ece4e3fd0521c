/* broker: the executable. Runs the broker actor until SIGINT/SIGTERM. */
#include "broker.h"

#include "log.h"

int main(void)
{
  log_init("broker");
  broker_config_t cfg;
  if (broker_config_from_env(&cfg) != 0)
    return 1;
  zactor_t *broker = zactor_new(broker_actor, &cfg);
  if (!broker)
    return 1;
  zstr_send(broker, "ENDPOINT");
  char *endpoint = zstr_recv(broker);
  bool started = endpoint && *endpoint;
  free(endpoint);
  if (started) {
    /* czmq's default handler turns SIGINT/SIGTERM into zsys_interrupted. */
    zpoller_t *poller = zpoller_new(broker, NULL);
    while (poller && !zsys_interrupted)
      zpoller_wait(poller, 500);
    zpoller_destroy(&poller);
    log_msg(LOG_INFO, "broker_stopping", "signal received");
  }
  zactor_destroy(&broker);
  return started ? 0 : 1;
}
