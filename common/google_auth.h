/* google_auth: credentials for the Google Cloud REST APIs (Speech-to-Text and
 * Text-to-Speech), and the base64 their JSON uses for bytes.
 *
 * GOOGLE_API_KEY is sent as the x-goog-api-key header (keeps the key out of URLs).
 * Otherwise GOOGLE_APPLICATION_CREDENTIALS names a service-account JSON file: an RS256
 * JWT signed with its private key (OpenSSL) is exchanged at the file's token_uri for an
 * access token, sent as "Authorization: Bearer"; the token is cached until a minute
 * before it expires. */
#ifndef GOOGLE_AUTH_H
#define GOOGLE_AUTH_H

#include "stage_error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct google_auth google_auth_t;

/* Reads GOOGLE_API_KEY, else GOOGLE_APPLICATION_CREDENTIALS (file read and its key
 * loaded now, so a bad file stops the service at start). `backend` labels the token
 * requests in logs and counters ("google_stt"); `selected_by` names the setting that
 * chose the backend ("STT_BACKEND=google") in the error when no credential is set.
 * NULL with `err` ("bad_config", naming the missing or bad setting, never a secret)
 * on failure. */
google_auth_t *google_auth_new(const char *backend, const char *selected_by, stage_error_t *err);

/* Frees everything, wiping the secrets. Safe on NULL; sets *auth_p to NULL. */
void google_auth_destroy(google_auth_t **auth_p);

/* Writes the request header that authenticates a call ("x-goog-api-key: ..." or
 * "Authorization: Bearer ...") into `header`, fetching a new token when the cached one
 * is missing or about to expire (within `timeout_ms`). Thread-safe.
 * Returns 0, or -1 with `err` set (the token endpoint's message, never the key). */
int google_auth_header(google_auth_t *auth, char *header, size_t size, long timeout_ms,
                       stage_error_t *err);

/* Forgets the cached token, e.g. after the API answered 401 to it. */
void google_auth_invalidate(google_auth_t *auth);

/* Standard padded base64 of `size` bytes (protobuf JSON `bytes`). Returns a malloc'd
 * NUL-terminated string, or NULL when out of memory. */
char *google_base64_encode(const uint8_t *data, size_t size);

/* Decodes standard padded base64 (whitespace not allowed). Returns 0 and a malloc'd
 * buffer in *out (caller frees), or -1 when `text` is not valid base64 or memory ran
 * out. */
int google_base64_decode(const char *text, size_t length, uint8_t **out, size_t *out_size);

#endif
