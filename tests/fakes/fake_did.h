/* fake_did: a local D-ID talks API (external-apis.md §4): POST /audios (multipart part
 * "audio"), POST /talks, GET /talks/{id} stepping created -> started -> done (or error /
 * rejected), and the pre-signed result_url, which it serves itself: an MP4 rendered
 * from the uploaded speech by our own local avatar renderer.
 *
 * Settings (environment, read at install):
 *   FAKE_DID_API_KEY   the credential "Authorization: Basic <key>" must carry
 *                      (default "fake-did-user:fake-did-secret")
 *
 * Outcome words: for POST /talks "ok", "error" (the talk ends in error, FaceError),
 * "rejected", "stuck" (never leaves started); for any route "429" (Retry-After: 1),
 * "500", "402", "malformed", "slow", "drop". Route filters target one step, e.g.
 * "/talks=error" or "/audios=429". */
#ifndef FAKE_DID_H
#define FAKE_DID_H

#include "fake_http.h"

/* Adds the routes and the renderer. Returns 0, or -1 on failure. */
int fake_did_install(fake_server_t *server);

#endif
