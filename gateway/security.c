/* security: API token and cookie checks over OpenSSL's SHA-256, HMAC and
 * CRYPTO_memcmp; the CORS origin list; client keys for the rate limiter. */
#include "security.h"

#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COOKIE_LABEL "talking-avatar browser session v1"
#define ORIGIN_MAX 256

/* ---- API token ---------------------------------------------------------- */

static void digest_of(const char *text, uint8_t digest[SECURITY_DIGEST_SIZE])
{
  SHA256((const unsigned char *) text, strlen(text), digest);
}

int api_token_init(api_token_t *self, const char *token)
{
  memset(self, 0, sizeof *self);
  if (!token || !*token)
    return 0;
  uint8_t mac[SECURITY_DIGEST_SIZE];
  unsigned mac_size = 0;
  if (!HMAC(EVP_sha256(), token, (int) strlen(token), (const unsigned char *) COOKIE_LABEL,
            strlen(COOKIE_LABEL), mac, &mac_size) ||
      mac_size != sizeof mac)
    return -1;
  for (size_t i = 0; i < sizeof mac; i++)
    snprintf(self->cookie + 2 * i, 3, "%02x", mac[i]);
  OPENSSL_cleanse(mac, sizeof mac);
  digest_of(token, self->token_digest);
  digest_of(self->cookie, self->cookie_digest);
  self->enabled = true;
  return 0;
}

void api_token_clear(api_token_t *self)
{
  security_wipe(self, sizeof *self);
}

/* Compares digests, not the strings: the time taken does not depend on where
 * the first differing byte is, nor on the secret's length. */
static bool digest_matches(const uint8_t expected[SECURITY_DIGEST_SIZE], const char *presented)
{
  if (!presented)
    return false;
  uint8_t digest[SECURITY_DIGEST_SIZE];
  digest_of(presented, digest);
  bool equal = CRYPTO_memcmp(digest, expected, SECURITY_DIGEST_SIZE) == 0;
  OPENSSL_cleanse(digest, sizeof digest);
  return equal;
}

bool api_token_matches(const api_token_t *self, const char *presented)
{
  return self->enabled && digest_matches(self->token_digest, presented);
}

bool api_token_matches_bearer(const api_token_t *self, const char *authorization)
{
  if (!self->enabled || !authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
    return false;
  const char *token = authorization + 7;
  while (*token == ' ')
    token++;
  return digest_matches(self->token_digest, token);
}

bool api_token_matches_cookie(const api_token_t *self, const char *cookie)
{
  return self->enabled && digest_matches(self->cookie_digest, cookie);
}

void security_wipe(void *data, size_t size)
{
  if (data && size)
    OPENSSL_cleanse(data, size);
}

/* ---- CORS origins ------------------------------------------------------- */

struct origin_list {
  size_t count;
  char (*origins)[ORIGIN_MAX];
};

/* true when `origin` is scheme://host[:port] with nothing after it. */
static bool origin_is_well_formed(const char *origin)
{
  const char *host = strstr(origin, "://");
  if (!host || host == origin || !host[3])
    return false;
  for (const char *p = origin; p < host; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
      return false;
  return strcspn(host + 3, "/?#@ \t") == strlen(host + 3);
}

int origin_list_parse(const char *text, origin_list_t **self_out)
{
  *self_out = NULL;
  if (!text)
    return 0;
  size_t slots = 1;
  for (const char *p = text; *p; p++)
    slots += *p == ',';
  origin_list_t *self = calloc(1, sizeof *self);
  if (!self || !(self->origins = calloc(slots, sizeof *self->origins))) {
    free(self);
    return -1;
  }
  for (const char *p = text; *p;) {
    size_t length = strcspn(p, ",");
    const char *start = p;
    p += length + (p[length] == ',');
    while (length && (*start == ' ' || *start == '\t'))
      start++, length--;
    while (length && (start[length - 1] == ' ' || start[length - 1] == '\t'))
      length--;
    if (!length)
      continue;
    char *origin = self->origins[self->count];
    if (length >= ORIGIN_MAX) {
      log_msg(LOG_ERROR, "bad_setting", "GATEWAY_CORS_ORIGINS: an origin is longer than %d",
              ORIGIN_MAX - 1);
      origin_list_destroy(&self);
      return -1;
    }
    memcpy(origin, start, length);
    origin[length] = '\0';
    if (!origin_is_well_formed(origin)) {
      log_msg(LOG_ERROR, "bad_setting",
              "GATEWAY_CORS_ORIGINS: \"%s\" is not scheme://host[:port]", origin);
      origin_list_destroy(&self);
      return -1;
    }
    self->count++;
  }
  if (!self->count)
    origin_list_destroy(&self);
  *self_out = self;
  return 0;
}

void origin_list_destroy(origin_list_t **self_p)
{
  origin_list_t *self = *self_p;
  if (!self)
    return;
  free(self->origins);
  free(self);
  *self_p = NULL;
}

bool origin_list_allows(const origin_list_t *self, const char *origin)
{
  if (!self || !origin)
    return false;
  for (size_t i = 0; i < self->count; i++)
    if (strcasecmp(self->origins[i], origin) == 0)
      return true;
  return false;
}

bool origin_is_same(const char *origin, const char *host)
{
  if (!origin || !host || !*host)
    return false;
  const char *authority = strstr(origin, "://");
  return authority && strcasecmp(authority + 3, host) == 0;
}

/* ---- client keys -------------------------------------------------------- */

static int key_from_v4(const struct in_addr *address, char key[CLIENT_KEY_MAX])
{
  return inet_ntop(AF_INET, address, key, CLIENT_KEY_MAX) ? 0 : -1;
}

static int key_from_v6(const struct in6_addr *address, char key[CLIENT_KEY_MAX])
{
  if (IN6_IS_ADDR_V4MAPPED(address)) {
    struct in_addr v4;
    memcpy(&v4, &address->s6_addr[12], sizeof v4);
    return key_from_v4(&v4, key);
  }
  struct in6_addr prefix = *address;
  memset(&prefix.s6_addr[8], 0, 8);
  char text[INET6_ADDRSTRLEN];
  if (!inet_ntop(AF_INET6, &prefix, text, sizeof text))
    return -1;
  snprintf(key, CLIENT_KEY_MAX, "%s/64", text);
  return 0;
}

int client_key_from_sockaddr(const struct sockaddr *address, char key[CLIENT_KEY_MAX])
{
  if (address && address->sa_family == AF_INET)
    return key_from_v4(&((const struct sockaddr_in *) address)->sin_addr, key);
  if (address && address->sa_family == AF_INET6)
    return key_from_v6(&((const struct sockaddr_in6 *) address)->sin6_addr, key);
  return -1;
}

int client_key_from_forwarded(const char *forwarded_for, char key[CLIENT_KEY_MAX])
{
  if (!forwarded_for)
    return -1;
  const char *last = strrchr(forwarded_for, ',');
  last = last ? last + 1 : forwarded_for;
  while (*last == ' ' || *last == '\t')
    last++;
  char text[INET6_ADDRSTRLEN];
  size_t length = strcspn(last, " \t");
  if (length == 0 || length >= sizeof text)
    return -1;
  memcpy(text, last, length);
  text[length] = '\0';
  struct in_addr v4;
  struct in6_addr v6;
  if (inet_pton(AF_INET, text, &v4) == 1)
    return key_from_v4(&v4, key);
  if (inet_pton(AF_INET6, text, &v6) == 1)
    return key_from_v6(&v6, key);
  return -1;
}
