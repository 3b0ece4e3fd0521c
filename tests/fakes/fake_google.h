/* fake_google: local stand-ins for Google Cloud Speech-to-Text v1 (speech:recognize),
 * Text-to-Speech v1 (text:synthesize) and the OAuth token endpoint a service account
 * uses, following shared/docs/external-apis.md §0.1, §0.2, §1 and §3.
 *
 * Settings (environment, read at install):
 *   FAKE_GOOGLE_API_KEY     the one valid API key (default "fake-google-key")
 *   FAKE_GOOGLE_PUBLIC_KEY  PEM public key of the service account; when set, the token
 *                           endpoint verifies each JWT's RS256 signature with it
 *   FAKE_GOOGLE_TOKEN_TTL   expires_in of issued tokens in seconds (default 3599)
 *   FAKE_GOOGLE_TRANSCRIPT  what speech:recognize hears in non-silent audio
 *                           (default "what are your office hours")
 *   ESPEAK_NG               the espeak-ng program text:synthesize speaks with
 *
 * Outcome words (fake_http.h): "ok", "empty" (recognize answers {}), "429" (with
 * Retry-After and RetryInfo "1s"), "500", "503", "403", "malformed" (a 200 with
 * truncated JSON), plus the generic "slow" and "drop". */
#ifndef FAKE_GOOGLE_H
#define FAKE_GOOGLE_H

#include "fake_http.h"

/* All three APIs on one server: POST /v1/speech:recognize, POST /v1/text:synthesize,
 * POST /token. Returns 0, or -1 when out of memory. */
int fake_google_install(fake_server_t *server);

/* Answers with Google's error envelope {"error":{"code","message","status","details"}};
 * `reason` (may be NULL) becomes an ErrorInfo detail. */
void fake_google_error(fake_reply_t *reply, int code, const char *status, const char *message,
                       const char *reason);

/* Checks the request's credentials (x-goog-api-key header, ?key= or a Bearer token the
 * token endpoint issued) and answers the failure itself. Returns true when valid. */
bool fake_google_authorized(fake_server_t *server, const fake_request_t *req,
                            fake_reply_t *reply);

/* Answers the shared failure outcomes ("429", "500", "503", "403"); true if it did. */
bool fake_google_failure(const fake_request_t *req, fake_reply_t *reply);

/* The body as a JSON object (caller deletes), or NULL after answering Google's 400
 * for a wrong Content-Type or a body that is not a JSON object. */
cJSON *fake_google_json_body(const fake_request_t *req, fake_reply_t *reply);

/* Routes of each API (fake_google_install adds all three). */
int fake_google_speech_routes(fake_server_t *server);
int fake_google_tts_routes(fake_server_t *server);
int fake_google_token_routes(fake_server_t *server);

/* Checks that `object` has only the `allowed` (NULL-terminated) member names; on an
 * unknown one answers Google's 400 "Unknown name" and returns false. `where` is the
 * field path for the message ("config"; "" at the top). */
bool fake_google_known_fields(const cJSON *object, const char *const *allowed, const char *where,
                              fake_reply_t *reply);

#endif
