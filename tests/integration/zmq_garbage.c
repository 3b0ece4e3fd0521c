/* zmq_garbage: sends well-formed ZeroMQ messages that are garbage to the AVP1
 * broker at argv[1] (wrong version, unknown commands, missing and binary frames),
 * for the integration test that checks the broker survives them. */
#include <czmq.h>

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: zmq_garbage ENDPOINT\n");
    return 2;
  }
  zsock_t *sock = zsock_new_dealer(argv[1]);
  if (!sock)
    return 1;
  zsock_set_linger(sock, 1000);
  int rc = 0;
  rc |= zstr_send(sock, "hello");
  rc |= zstr_sendx(sock, "AVP9", "READY", "stt", "1", NULL);
  rc |= zstr_sendx(sock, "AVP1", "EXPLODE", NULL);
  rc |= zstr_sendx(sock, "AVP1", "SUBMIT", "stt", NULL);
  rc |= zstr_sendx(sock, "AVP1", "DONE", "stt", "no-such-job", "chat", "notanumber", "x", NULL);
  rc |= zstr_sendx(sock, "AVP1", "STATUS", "\x01\x02 not a protobuf", NULL);
  for (int i = 0; i < 100; i++) {
    zframe_t *frame = zframe_new(NULL, 64);
    if (!frame)
      return 1;
    for (size_t j = 0; j < 64; j++)
      zframe_data(frame)[j] = (byte) (i * 31 + j * 7);
    rc |= zframe_send(&frame, sock, 0);
  }
  zsock_destroy(&sock);
  return rc ? 1 : 0;
}
