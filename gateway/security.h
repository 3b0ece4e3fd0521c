/* security: the checks the HTTP layer makes before routing: the optional API
 * token (compared in constant time, through SHA-256 digests so neither its
 * bytes nor its length leak through timing), the browser-session cookie derived
 * from it for the web page's login form, the CORS allow-list of origins and the
 * key that identifies a client for rate limiting. */
#ifndef GATEWAY_SECURITY_H
#define GATEWAY_SECURITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SECURITY_COOKIE_NAME "avatar_session"
#define SECURITY_DIGEST_SIZE 32
#define CLIENT_KEY_MAX 64 /* an IPv4 address or an IPv6 /64 prefix, with NUL */

/* The configured API token, kept only as digests. */
typedef struct {
  bool enabled;
  uint8_t token_digest[SECURITY_DIGEST_SIZE];
  /* The cookie value the login form hands out: HMAC-SHA256(token, fixed
   * label) in hex, so it works on every gateway replica sharing the token,
   * changes when the token does, and is not itself the API token. */
  char cookie[2 * SECURITY_DIGEST_SIZE + 1];
  uint8_t cookie_digest[SECURITY_DIGEST_SIZE];
} api_token_t;

/* Sets up `self` from `token`; NULL or "" disables the check. 0, or -1 when the
 * digests cannot be computed. */
int api_token_init(api_token_t *self, const char *token);

/* Wipes the digests. */
void api_token_clear(api_token_t *self);

/* true when `presented` (NULL allowed) is the token. */
bool api_token_matches(const api_token_t *self, const char *presented);

/* true when the Authorization header value `authorization` (NULL allowed) is
 * "Bearer <token>" (scheme case-insensitive). */
bool api_token_matches_bearer(const api_token_t *self, const char *authorization);

/* true when `cookie` (NULL allowed) is the login cookie's value. */
bool api_token_matches_cookie(const api_token_t *self, const char *cookie);

/* Overwrites `size` bytes at `data` with zeros in a way the compiler keeps
 * (for buffers that held a secret). */
void security_wipe(void *data, size_t size);

typedef struct origin_list origin_list_t;

/* Parses a comma-separated list of origins such as
 * "https://kiosk.example.com, http://localhost:3000" (spaces ignored).
 * *self_out is NULL for an empty list. 0, or -1 when an entry is not
 * scheme://host[:port] (logged) or out of memory. */
int origin_list_parse(const char *text, origin_list_t **self_out);

/* Frees the list; sets *self_p to NULL. */
void origin_list_destroy(origin_list_t **self_p);

/* true when `origin` is in the list (NULL list: never). Scheme and host are
 * compared case-insensitively. */
bool origin_list_allows(const origin_list_t *self, const char *origin);

/* true when the Origin header value `origin` names the host the request was
 * sent to (its Host header), whatever the scheme: the page's own calls. */
bool origin_is_same(const char *origin, const char *host);

/* Fills `key` with the client key for a peer address: the IPv4 address, or
 * the /64 prefix of an IPv6 one (one subscriber usually holds a whole /64).
 * IPv4-mapped IPv6 addresses count as IPv4. 0, or -1 for other families. */
int client_key_from_sockaddr(const struct sockaddr *address, char key[CLIENT_KEY_MAX]);

/* The same for the last address of an X-Forwarded-For value (the one the
 * nearest proxy added). 0, or -1 when it is not an IP address. */
int client_key_from_forwarded(const char *forwarded_for, char key[CLIENT_KEY_MAX]);

#endif
