/* curve: client-side CURVE settings from the environment. */
#include "curve.h"

#include "config.h"
#include "log.h"

#include <string.h>

static const char z85_alphabet[] =
  "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

bool curve_key_is_valid(const char *key)
{
  return key && strlen(key) == 40 && strspn(key, z85_alphabet) == 40;
}

int curve_apply_client(zsock_t *sock)
{
  const char *server = config_str("CURVE_SERVER_KEY", NULL);
  if (!server)
    return 0;
  const char *public_key = config_str("CURVE_PUBLIC_KEY", NULL);
  const char *secret_key = config_str("CURVE_SECRET_KEY", NULL);
  if (!curve_key_is_valid(server) || !curve_key_is_valid(public_key) ||
      !curve_key_is_valid(secret_key)) {
    log_msg(LOG_ERROR, "curve_config", "CURVE_SERVER_KEY is set: CURVE_SERVER_KEY, "
            "CURVE_PUBLIC_KEY and CURVE_SECRET_KEY must all be 40-character Z85 keys");
    return -1;
  }
  zsock_set_curve_serverkey(sock, server);
  zsock_set_curve_publickey(sock, public_key);
  zsock_set_curve_secretkey(sock, secret_key);
  return 0;
}
