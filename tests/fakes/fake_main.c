/* fake_main: the executable form of one fake API. Built once per fake with
 * FAKE_INSTALL naming the fake's install function and FAKE_NAME its program name;
 * prints "port <n>" on stdout once it listens (see fake_http.h). */
#include "fake_http.h"

int FAKE_INSTALL(fake_server_t *server);

int main(void)
{
  return fake_http_main(FAKE_NAME, FAKE_INSTALL);
}
