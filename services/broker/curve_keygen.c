/* curve-keygen: prints a new CURVE key pair as environment settings, for the broker
 * (BROKER_CURVE_SECRET_KEY, and its public key as everyone's CURVE_SERVER_KEY) or
 * for a worker/gateway (CURVE_PUBLIC_KEY, CURVE_SECRET_KEY, and the public key
 * added to the broker's BROKER_CURVE_CLIENT_KEYS). See docs/operations.md. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int main(int argc, char **argv)
{
  bool broker = argc == 2 && strcmp(argv[1], "--broker") == 0;
  if (argc > 2 || (argc == 2 && !broker)) {
    fprintf(stderr, "usage: curve-keygen [--broker]\n");
    return 2;
  }
  char public_key[41], secret_key[41];
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    fprintf(stderr, "curve-keygen: libzmq was built without CURVE support\n");
    return 1;
  }
  if (broker)
    printf("BROKER_CURVE_SECRET_KEY=%s\nCURVE_SERVER_KEY=%s\n", secret_key, public_key);
  else
    printf("CURVE_PUBLIC_KEY=%s\nCURVE_SECRET_KEY=%s\n", public_key, secret_key);
  return 0;
}
