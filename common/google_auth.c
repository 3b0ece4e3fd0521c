/* google_auth: API key or service-account OAuth token for Google Cloud REST APIs,
 * and protobuf-JSON base64 (see google_auth.h). */
#include "google_auth.h"

#include "config.h"
#include "http_client.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GOOGLE_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define TOKEN_LIFETIME_S 3600
#define TOKEN_MARGIN_S 60
#define CREDENTIALS_MAX_BYTES (64 * 1024)

struct google_auth {
  char backend[32];
  char *api_key;         /* when set, the only credential */
  char *client_email;    /* service account */
  char *key_id;
  char *token_uri;
  EVP_PKEY *private_key;
  pthread_mutex_t lock;
  char *token;           /* cached access token */
  time_t token_expires;
};

/* --- base64 -------------------------------------------------------------------- */

char *google_base64_encode(const uint8_t *data, size_t size)
{
  if (size > (size_t) INT32_MAX / 2)
    return NULL;
  char *text = malloc(4 * ((size + 2) / 3) + 1);
  if (!text)
    return NULL;
  EVP_EncodeBlock((unsigned char *) text, data, (int) size);
  return text;
}

static bool is_base64_char(char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

int google_base64_decode(const char *text, size_t length, uint8_t **out, size_t *out_size)
{
  *out = NULL;
  *out_size = 0;
  if (length % 4 || length > (size_t) INT32_MAX)
    return -1;
  /* EVP_DecodeBlock skips whitespace and does not reject misplaced '=': check first. */
  size_t padding = 0;
  for (size_t i = 0; i < length; i++) {
    if (text[i] == '=' && i >= length - 2) {
      padding++;
    } else if (!is_base64_char(text[i]) || padding) {
      return -1;
    }
  }
  uint8_t *bytes = malloc(length / 4 * 3 + 1);
  if (!bytes)
    return -1;
  int decoded = length ? EVP_DecodeBlock(bytes, (const unsigned char *) text, (int) length) : 0;
  if (decoded < 0 || (size_t) decoded < padding) {
    free(bytes);
    return -1;
  }
  *out = bytes;
  *out_size = (size_t) decoded - padding;
  return 0;
}

/* base64url without padding, as JWTs use. */
static char *base64url(const uint8_t *data, size_t size)
{
  char *text = google_base64_encode(data, size);
  if (!text)
    return NULL;
  char *w = text;
  for (const char *r = text; *r && *r != '='; r++)
    *w++ = *r == '+' ? '-' : *r == '/' ? '_' : *r;
  *w = '\0';
  return text;
}

/* --- service account ----------------------------------------------------------- */

static char *read_file(const char *path, size_t *size)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *text = malloc(CREDENTIALS_MAX_BYTES + 1);
  size_t n = text ? fread(text, 1, CREDENTIALS_MAX_BYTES + 1, f) : 0;
  int failed = ferror(f);
  fclose(f);
  if (!text || failed || n > CREDENTIALS_MAX_BYTES) {
    free(text);
    return NULL;
  }
  text[n] = '\0';
  *size = n;
  return text;
}

static char *json_string(const cJSON *object, const char *name)
{
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
  return cJSON_IsString(item) && *item->valuestring ? strdup(item->valuestring) : NULL;
}

static void wipe_free(char *secret)
{
  if (secret) {
    OPENSSL_cleanse(secret, strlen(secret));
    free(secret);
  }
}

/* Loads the service-account file; fills `err` naming the setting on failure. */
static int load_service_account(google_auth_t *auth, const char *path, stage_error_t *err)
{
  size_t size = 0;
  char *text = read_file(path, &size);
  if (!text)
    return stage_error_set(err, "bad_config",
                           "GOOGLE_APPLICATION_CREDENTIALS: cannot read %s (missing, unreadable "
                           "or over 64 KiB)", path);
  cJSON *json = cJSON_ParseWithLength(text, size);
  OPENSSL_cleanse(text, size);
  free(text);
  char *pem = json ? json_string(json, "private_key") : NULL;
  auth->client_email = json ? json_string(json, "client_email") : NULL;
  auth->key_id = json ? json_string(json, "private_key_id") : NULL;
  auth->token_uri = json ? json_string(json, "token_uri") : NULL;
  cJSON *type = json ? cJSON_GetObjectItemCaseSensitive(json, "type") : NULL;
  bool service_account = cJSON_IsString(type) && !strcmp(type->valuestring, "service_account");
  if (json) {
    /* The parsed tree holds the private key too. */
    cJSON *key = cJSON_GetObjectItemCaseSensitive(json, "private_key");
    if (cJSON_IsString(key))
      OPENSSL_cleanse(key->valuestring, strlen(key->valuestring));
    cJSON_Delete(json);
  }
  if (!service_account || !pem || !auth->client_email || !auth->token_uri) {
    wipe_free(pem);
    return stage_error_set(err, "bad_config",
                           "GOOGLE_APPLICATION_CREDENTIALS: %s is not a service-account key "
                           "file (needs type, client_email, private_key, token_uri)", path);
  }
  BIO *bio = BIO_new_mem_buf(pem, -1);
  auth->private_key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  wipe_free(pem);
  if (!auth->private_key || EVP_PKEY_get_base_id(auth->private_key) != EVP_PKEY_RSA)
    return stage_error_set(err, "bad_config",
                           "GOOGLE_APPLICATION_CREDENTIALS: the private_key in %s is not an "
                           "RSA key in PEM form", path);
  return 0;
}

/* The signed assertion "header.claims.signature"; NULL on failure. */
static char *make_jwt(const google_auth_t *auth, time_t now)
{
  cJSON *header = cJSON_CreateObject();
  cJSON *claims = cJSON_CreateObject();
  cJSON_AddStringToObject(header, "alg", "RS256");
  cJSON_AddStringToObject(header, "typ", "JWT");
  if (auth->key_id)
    cJSON_AddStringToObject(header, "kid", auth->key_id);
  cJSON_AddStringToObject(claims, "iss", auth->client_email);
  cJSON_AddStringToObject(claims, "scope", GOOGLE_SCOPE);
  cJSON_AddStringToObject(claims, "aud", auth->token_uri);
  cJSON_AddNumberToObject(claims, "iat", (double) now);
  cJSON_AddNumberToObject(claims, "exp", (double) (now + TOKEN_LIFETIME_S));
  char *header_json = cJSON_PrintUnformatted(header);
  char *claims_json = cJSON_PrintUnformatted(claims);
  cJSON_Delete(header);
  cJSON_Delete(claims);
  char *h64 = header_json ? base64url((uint8_t *) header_json, strlen(header_json)) : NULL;
  char *c64 = claims_json ? base64url((uint8_t *) claims_json, strlen(claims_json)) : NULL;
  free(header_json);
  free(claims_json);
  char *jwt = NULL;
  size_t signing_len = h64 && c64 ? strlen(h64) + 1 + strlen(c64) : 0;
  char *signing = signing_len ? malloc(signing_len + 1) : NULL;
  if (signing)
    snprintf(signing, signing_len + 1, "%s.%s", h64, c64);
  free(h64);
  free(c64);
  EVP_MD_CTX *md = signing ? EVP_MD_CTX_new() : NULL;
  unsigned char *signature = NULL;
  size_t signature_len = 0;
  if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, auth->private_key) == 1 &&
      EVP_DigestSign(md, NULL, &signature_len, (unsigned char *) signing, signing_len) == 1 &&
      (signature = malloc(signature_len)) &&
      EVP_DigestSign(md, signature, &signature_len, (unsigned char *) signing, signing_len) == 1) {
    char *s64 = base64url(signature, signature_len);
    size_t jwt_len = s64 ? signing_len + 1 + strlen(s64) : 0;
    jwt = jwt_len ? malloc(jwt_len + 1) : NULL;
    if (jwt)
      snprintf(jwt, jwt_len + 1, "%s.%s", signing, s64);
    free(s64);
  }
  EVP_MD_CTX_free(md);
  free(signature);
  free(signing);
  return jwt;
}

/* Exchanges a fresh JWT for an access token. Called with the lock held. */
static int fetch_token(google_auth_t *auth, long timeout_ms, stage_error_t *err)
{
  time_t now = time(NULL);
  char *jwt = make_jwt(auth, now);
  if (!jwt)
    return stage_error_set(err, "backend_error", "Cannot sign the service-account token request.");
  static const char grant[] =
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
  size_t body_len = strlen(grant) + strlen(jwt);
  char *body = malloc(body_len + 1);
  if (!body) {
    free(jwt);
    return stage_error_set(err, "backend_error", "Out of memory.");
  }
  snprintf(body, body_len + 1, "%s%s", grant, jwt);
  free(jwt);
  char backend[48];
  snprintf(backend, sizeof backend, "%s_token", auth->backend);
  http_request_t req = {
    .method = "POST", .url = auth->token_uri,
    .body = (const uint8_t *) body, .body_size = body_len,
    .content_type = "application/x-www-form-urlencoded",
    .timeout_ms = timeout_ms, .max_attempts = 3, .max_response_bytes = 64 * 1024,
    .backend = backend,
  };
  http_response_t resp = {0};
  int rc = http_send(&req, &resp, err);
  free(body);
  if (rc != 0)
    return -1;
  if (resp.status != 200) {
    char message[256];
    http_error_message(&resp, message, sizeof message);
    stage_error_set(err, "backend_error",
                    "The Google token endpoint refused the service account (HTTP %ld): %s",
                    resp.status, message);
    http_response_release(&resp);
    return -1;
  }
  cJSON *json = cJSON_ParseWithLength((const char *) resp.body, resp.body_size);
  http_response_release(&resp);
  char *token = json ? json_string(json, "access_token") : NULL;
  const cJSON *expires = json ? cJSON_GetObjectItemCaseSensitive(json, "expires_in") : NULL;
  if (json) {
    cJSON *raw = cJSON_GetObjectItemCaseSensitive(json, "access_token");
    if (cJSON_IsString(raw))
      OPENSSL_cleanse(raw->valuestring, strlen(raw->valuestring));
  }
  double lifetime = cJSON_IsNumber(expires) ? expires->valuedouble : 0;
  cJSON_Delete(json);
  if (!token || lifetime <= 0) {
    wipe_free(token);
    return stage_error_set(err, "backend_error",
                           "The Google token endpoint answered without access_token/expires_in.");
  }
  wipe_free(auth->token);
  auth->token = token;
  auth->token_expires = now + (time_t) lifetime;
  cJSON *fields = cJSON_CreateObject();
  cJSON_AddStringToObject(fields, "backend", auth->backend);
  cJSON_AddNumberToObject(fields, "expires_in_s", lifetime);
  log_event(LOG_INFO, "google_token_fetched", fields);
  return 0;
}

google_auth_t *google_auth_new(const char *backend, const char *selected_by, stage_error_t *err)
{
  google_auth_t *auth = calloc(1, sizeof *auth);
  if (!auth) {
    stage_error_set(err, "bad_config", "Out of memory.");
    return NULL;
  }
  snprintf(auth->backend, sizeof auth->backend, "%s", backend);
  pthread_mutex_init(&auth->lock, NULL);
  const char *key = config_str("GOOGLE_API_KEY", NULL);
  const char *credentials = config_str("GOOGLE_APPLICATION_CREDENTIALS", NULL);
  if (key) {
    auth->api_key = strdup(key);
    if (!auth->api_key || strpbrk(key, "\r\n")) {
      stage_error_set(err, "bad_config", "GOOGLE_API_KEY is not a usable header value.");
      google_auth_destroy(&auth);
    }
  } else if (credentials) {
    if (load_service_account(auth, credentials, err) != 0)
      google_auth_destroy(&auth);
  } else {
    stage_error_set(err, "bad_config",
                    "%s needs GOOGLE_API_KEY or GOOGLE_APPLICATION_CREDENTIALS to be set",
                    selected_by);
    google_auth_destroy(&auth);
  }
  return auth;
}

void google_auth_destroy(google_auth_t **auth_p)
{
  if (!auth_p || !*auth_p)
    return;
  google_auth_t *auth = *auth_p;
  wipe_free(auth->api_key);
  wipe_free(auth->token);
  free(auth->client_email);
  free(auth->key_id);
  free(auth->token_uri);
  EVP_PKEY_free(auth->private_key);
  pthread_mutex_destroy(&auth->lock);
  free(auth);
  *auth_p = NULL;
}

int google_auth_header(google_auth_t *auth, char *header, size_t size, long timeout_ms,
                       stage_error_t *err)
{
  if (auth->api_key) {
    if (snprintf(header, size, "x-goog-api-key: %s", auth->api_key) >= (int) size)
      return stage_error_set(err, "bad_config", "GOOGLE_API_KEY is too long.");
    return 0;
  }
  pthread_mutex_lock(&auth->lock);
  int rc = 0;
  if (!auth->token || time(NULL) >= auth->token_expires - TOKEN_MARGIN_S)
    rc = fetch_token(auth, timeout_ms, err);
  if (rc == 0 && snprintf(header, size, "Authorization: Bearer %s", auth->token) >= (int) size)
    rc = stage_error_set(err, "backend_error", "The Google access token is too long.");
  pthread_mutex_unlock(&auth->lock);
  return rc;
}

void google_auth_invalidate(google_auth_t *auth)
{
  pthread_mutex_lock(&auth->lock);
  wipe_free(auth->token);
  auth->token = NULL;
  pthread_mutex_unlock(&auth->lock);
}
