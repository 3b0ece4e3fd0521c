/* fake_google: what the Google fakes share (credentials, error envelope, field checks)
 * and the OAuth token endpoint of service accounts (see fake_google.h). */
#include "fake_google.h"

#include "google_auth.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TOKENS 64

typedef struct {
  char api_key[256];
  EVP_PKEY *public_key;        /* NULL: signatures are not checked */
  long token_ttl;
  char tokens[MAX_TOKENS][64]; /* issued access tokens, oldest overwritten */
  unsigned issued;
} google_state_t;

static void free_state(void *arg)
{
  google_state_t *state = arg;
  EVP_PKEY_free(state->public_key);
  free(state);
}

static google_state_t *state_of(fake_server_t *server)
{
  return fake_server_state(server);
}

void fake_google_error(fake_reply_t *reply, int code, const char *status, const char *message,
                       const char *reason)
{
  cJSON *root = cJSON_CreateObject();
  cJSON *error = cJSON_AddObjectToObject(root, "error");
  cJSON_AddNumberToObject(error, "code", code);
  cJSON_AddStringToObject(error, "message", message);
  cJSON_AddStringToObject(error, "status", status);
  if (reason) {
    cJSON *details = cJSON_AddArrayToObject(error, "details");
    cJSON *info = cJSON_CreateObject();
    cJSON_AddStringToObject(info, "@type", "type.googleapis.com/google.rpc.ErrorInfo");
    cJSON_AddStringToObject(info, "reason", reason);
    cJSON_AddStringToObject(info, "domain", "googleapis.com");
    cJSON_AddItemToArray(details, info);
  }
  fake_reply_cjson(reply, code, root);
}

bool fake_google_failure(const fake_request_t *req, fake_reply_t *reply)
{
  if (!strcmp(req->outcome, "429")) {
    fake_reply_json(reply, 429,
      "{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check quota).\","
      "\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
      "\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"1s\"}]}}");
    fake_reply_header(reply, "Retry-After", "1");
  } else if (!strcmp(req->outcome, "500")) {
    fake_google_error(reply, 500, "INTERNAL", "Internal error encountered.", NULL);
  } else if (!strcmp(req->outcome, "503")) {
    fake_google_error(reply, 503, "UNAVAILABLE", "The service is currently unavailable.", NULL);
  } else if (!strcmp(req->outcome, "403")) {
    fake_google_error(reply, 403, "PERMISSION_DENIED",
                      "This API method requires billing to be enabled.", "BILLING_DISABLED");
  } else {
    return false;
  }
  return true;
}

static bool issued(const google_state_t *state, const char *token)
{
  for (unsigned i = 0; i < MAX_TOKENS && i < state->issued; i++)
    if (!strcmp(state->tokens[i], token))
      return true;
  return false;
}

bool fake_google_authorized(fake_server_t *server, const fake_request_t *req,
                            fake_reply_t *reply)
{
  google_state_t *state = state_of(server);
  char query_key[256];
  const char *key = fake_request_header(req, "x-goog-api-key");
  if (!key)
    key = fake_request_arg(req, "key", query_key, sizeof query_key);
  const char *authorization = fake_request_header(req, "Authorization");
  if (key) {
    if (!strcmp(key, state->api_key))
      return true;
    fake_google_error(reply, 400, "INVALID_ARGUMENT",
                      "API key not valid. Please pass a valid API key.", "API_KEY_INVALID");
    return false;
  }
  if (authorization && !strncmp(authorization, "Bearer ", 7)) {
    fake_server_lock(server);
    bool valid = issued(state, authorization + 7);
    fake_server_unlock(server);
    if (valid)
      return true;
    fake_google_error(reply, 401, "UNAUTHENTICATED",
                      "Request had invalid authentication credentials. Expected OAuth 2 access "
                      "token, login cookie or other valid authentication credential.",
                      "ACCESS_TOKEN_TYPE_UNSUPPORTED");
    return false;
  }
  fake_google_error(reply, 403, "PERMISSION_DENIED",
                    "Method doesn't allow unregistered callers (callers without established "
                    "identity). Please use API Key or other form of API consumer identity to "
                    "call this API.", "SERVICE_DISABLED");
  return false;
}

bool fake_google_known_fields(const cJSON *object, const char *const *allowed, const char *where,
                              fake_reply_t *reply)
{
  const cJSON *item;
  cJSON_ArrayForEach(item, object) {
    bool known = false;
    for (size_t i = 0; allowed[i] && !known; i++)
      known = !strcmp(item->string, allowed[i]);
    if (!known) {
      char message[512];
      snprintf(message, sizeof message,
               "Invalid JSON payload received. Unknown name \"%s\"%s%s: Cannot find field.",
               item->string, *where ? " at '" : "", *where ? where : "");
      if (*where)
        strncat(message, "'", sizeof message - strlen(message) - 1);
      fake_google_error(reply, 400, "INVALID_ARGUMENT", message, NULL);
      return false;
    }
  }
  return true;
}

cJSON *fake_google_json_body(const fake_request_t *req, fake_reply_t *reply)
{
  const char *type = fake_request_header(req, "Content-Type");
  if (!type || strncmp(type, "application/json", 16)) {
    fake_google_error(reply, 400, "INVALID_ARGUMENT",
                      "Invalid JSON payload received. Content-Type must be application/json.",
                      NULL);
    return NULL;
  }
  cJSON *root = fake_request_json(req);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    fake_google_error(reply, 400, "INVALID_ARGUMENT",
                      "Invalid JSON payload received. Unexpected token.", NULL);
    return NULL;
  }
  return root;
}

/* --- the token endpoint ----------------------------------------------------------- */

static void token_error(fake_reply_t *reply, const char *error, const char *description)
{
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "error", error);
  cJSON_AddStringToObject(root, "error_description", description);
  fake_reply_cjson(reply, 400, root);
}

/* base64url (no padding) to bytes; -1 when invalid. */
static int unbase64url(const char *text, size_t length, uint8_t **out, size_t *out_size)
{
  char *standard = malloc(length + 4);
  if (!standard)
    return -1;
  size_t n = 0;
  for (size_t i = 0; i < length; i++)
    standard[n++] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
  while (n % 4)
    standard[n++] = '=';
  int rc = google_base64_decode(standard, n, out, out_size);
  free(standard);
  return rc;
}

/* Checks the JWT's form, claims and (with a public key) signature. */
static const char *check_jwt(const google_state_t *state, const char *jwt, const char *audience)
{
  const char *dot1 = strchr(jwt, '.');
  const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
  if (!dot1 || !dot2 || strchr(dot2 + 1, '.'))
    return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.";
  uint8_t *header = NULL, *claims = NULL, *signature = NULL;
  size_t header_size, claims_size, signature_size;
  const char *problem = NULL;
  if (unbase64url(jwt, (size_t) (dot1 - jwt), &header, &header_size) != 0 ||
      unbase64url(dot1 + 1, (size_t) (dot2 - dot1 - 1), &claims, &claims_size) != 0 ||
      unbase64url(dot2 + 1, strlen(dot2 + 1), &signature, &signature_size) != 0)
    problem = "Invalid JWT: not base64url.";
  cJSON *h = problem ? NULL : cJSON_ParseWithLength((char *) header, header_size);
  cJSON *c = problem ? NULL : cJSON_ParseWithLength((char *) claims, claims_size);
  if (!problem && (!h || !c))
    problem = "Invalid JWT: header or claims are not JSON.";
  const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
  const cJSON *iss = cJSON_GetObjectItemCaseSensitive(c, "iss");
  const cJSON *scope = cJSON_GetObjectItemCaseSensitive(c, "scope");
  const cJSON *aud = cJSON_GetObjectItemCaseSensitive(c, "aud");
  const cJSON *iat = cJSON_GetObjectItemCaseSensitive(c, "iat");
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "exp");
  double now = (double) time(NULL);
  if (problem) {
  } else if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "RS256")) {
    problem = "Invalid JWT: alg must be RS256.";
  } else if (!cJSON_IsString(iss) || !cJSON_IsString(scope) || !cJSON_IsString(aud)) {
    problem = "Invalid JWT: iss, scope and aud are required.";
  } else if (strcmp(aud->valuestring, audience)) {
    problem = "Invalid JWT audience.";
  } else if (!cJSON_IsNumber(iat) || !cJSON_IsNumber(exp) || exp->valuedouble <= now ||
             iat->valuedouble > now + 60 || exp->valuedouble - iat->valuedouble > 3600) {
    problem = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
              "reasonable timeframe. Check your iat and exp values in the JWT claim.";
  } else if (state->public_key) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, state->public_key) != 1 ||
        EVP_DigestVerify(md, signature, signature_size, (const unsigned char *) jwt,
                         (size_t) (dot2 - jwt)) != 1)
      problem = "Invalid JWT Signature.";
    EVP_MD_CTX_free(md);
  }
  cJSON_Delete(h);
  cJSON_Delete(c);
  free(header);
  free(claims);
  free(signature);
  return problem;
}

static void on_token(fake_server_t *server, const fake_request_t *req, fake_reply_t *reply)
{
  google_state_t *state = state_of(server);
  if (fake_google_failure(req, reply))
    return;
  const char *type = fake_request_header(req, "Content-Type");
  if (!type || strncmp(type, "application/x-www-form-urlencoded", 33)) {
    token_error(reply, "invalid_request", "Content-Type must be application/x-www-form-urlencoded.");
    return;
  }
  static const char grant[] =
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
  const char *body = (const char *) req->body;
  if (strncmp(body, grant, strlen(grant))) {
    token_error(reply, "unsupported_grant_type", "Invalid grant_type: expected jwt-bearer.");
    return;
  }
  const char *host = fake_request_header(req, "Host");
  char audience[300];
  snprintf(audience, sizeof audience, "http://%s%s", host ? host : "", req->path);
  const char *problem = check_jwt(state, body + strlen(grant), audience);
  if (problem) {
    token_error(reply, "invalid_grant", problem);
    return;
  }
  char token[64];
  fake_server_lock(server);
  snprintf(token, sizeof token, "ya29.fake-token-%u", state->issued + 1);
  snprintf(state->tokens[state->issued % MAX_TOKENS], sizeof state->tokens[0], "%s", token);
  state->issued++;
  fake_server_unlock(server);
  if (!strcmp(req->outcome, "malformed")) {
    fake_reply_json(reply, 200, "{\"access_token\":\"ya29.cut");
    return;
  }
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "access_token", token);
  cJSON_AddNumberToObject(root, "expires_in", (double) state->token_ttl);
  cJSON_AddStringToObject(root, "token_type", "Bearer");
  fake_reply_cjson(reply, 200, root);
}

int fake_google_token_routes(fake_server_t *server)
{
  return fake_server_route(server, "POST", "/token", on_token);
}

int fake_google_install(fake_server_t *server)
{
  google_state_t *state = calloc(1, sizeof *state);
  if (!state)
    return -1;
  const char *key = getenv("FAKE_GOOGLE_API_KEY");
  snprintf(state->api_key, sizeof state->api_key, "%s", key && *key ? key : "fake-google-key");
  const char *ttl = getenv("FAKE_GOOGLE_TOKEN_TTL");
  state->token_ttl = ttl && *ttl ? strtol(ttl, NULL, 10) : 3599;
  const char *public_key = getenv("FAKE_GOOGLE_PUBLIC_KEY");
  if (public_key && *public_key) {
    FILE *f = fopen(public_key, "r");
    state->public_key = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
    if (f)
      fclose(f);
    if (!state->public_key) {
      fprintf(stderr, "fake_google: FAKE_GOOGLE_PUBLIC_KEY is not a PEM public key\n");
      free_state(state);
      return -1;
    }
  }
  fake_server_set_state(server, state, free_state);
  return fake_google_speech_routes(server) == 0 && fake_google_tts_routes(server) == 0 &&
         fake_google_token_routes(server) == 0 ? 0 : -1;
}
