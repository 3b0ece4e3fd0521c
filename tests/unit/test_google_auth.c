/* Tests of google_auth: API key header, service-account tokens (an RS256 JWT signed
 * with a key made here, verified by the fake token endpoint with the public half),
 * token caching and refresh, bad files, and protobuf-JSON base64. */
#include "fake_google.h"
#include "google_auth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char sa_path[128], other_path[128], short_path[128], public_path[128], broken_path[128];
static fake_server_t *fake;
static fake_server_t *short_lived;   /* issues tokens that expire within the refresh margin */

/* Writes a service-account JSON file for `key` whose token_uri is the fake's. */
static int write_account(const char *path, EVP_PKEY *key, const fake_server_t *server)
{
  BIO *bio = BIO_new(BIO_s_mem());
  if (!bio || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
    return -1;
  char *pem = NULL;
  long len = BIO_get_mem_data(bio, &pem);
  /* The BIO's memory is not NUL-terminated. */
  char *pem_text = len > 0 ? malloc((size_t) len + 1) : NULL;
  if (pem_text) {
    memcpy(pem_text, pem, (size_t) len);
    pem_text[len] = '\0';
  }
  BIO_free(bio);
  if (!pem_text)
    return -1;
  char token_uri[96];
  fake_server_base_url(server, token_uri, sizeof token_uri);
  strncat(token_uri, "/token", sizeof token_uri - strlen(token_uri) - 1);
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "type", "service_account");
  cJSON_AddStringToObject(root, "project_id", "test-project");
  cJSON_AddStringToObject(root, "private_key_id", "0123456789abcdef");
  cJSON_AddStringToObject(root, "private_key", pem_text);
  cJSON_AddStringToObject(root, "client_email", "avatar@test-project.iam.gserviceaccount.com");
  cJSON_AddStringToObject(root, "token_uri", token_uri);
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  free(pem_text);
  FILE *f = fopen(path, "w");
  int rc = f && text && fputs(text, f) >= 0 ? 0 : -1;
  if (f)
    fclose(f);
  free(text);
  return rc;
}

static int setup(void **state)
{
  (void) state;
  snprintf(dir, sizeof dir, "/tmp/google-auth-XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  snprintf(sa_path, sizeof sa_path, "%s/account.json", dir);
  snprintf(other_path, sizeof other_path, "%s/other.json", dir);
  snprintf(public_path, sizeof public_path, "%s/public.pem", dir);
  snprintf(broken_path, sizeof broken_path, "%s/broken.json", dir);
  snprintf(short_path, sizeof short_path, "%s/short.json", dir);
  EVP_PKEY *key = EVP_RSA_gen(2048);
  EVP_PKEY *other = EVP_RSA_gen(2048);
  FILE *f = fopen(public_path, "w");
  if (!key || !other || !f || PEM_write_PUBKEY(f, key) != 1)
    return -1;
  fclose(f);
  setenv("FAKE_GOOGLE_PUBLIC_KEY", public_path, 1);
  fake = fake_server_new(0);
  if (!fake || fake_google_install(fake) != 0)
    return -1;
  setenv("FAKE_GOOGLE_TOKEN_TTL", "30", 1);
  short_lived = fake_server_new(0);
  if (!short_lived || fake_google_install(short_lived) != 0)
    return -1;
  unsetenv("FAKE_GOOGLE_TOKEN_TTL");
  int rc = write_account(sa_path, key, fake) || write_account(other_path, other, fake) ||
           write_account(short_path, key, short_lived) ? -1 : 0;
  EVP_PKEY_free(key);
  EVP_PKEY_free(other);
  f = fopen(broken_path, "w");
  if (!f || fputs("{\"type\": \"authorized_user\"}", f) < 0)
    return -1;
  fclose(f);
  return rc;
}

static int teardown(void **state)
{
  (void) state;
  fake_server_destroy(&fake);
  fake_server_destroy(&short_lived);
  const char *paths[] = {sa_path, other_path, short_path, public_path, broken_path};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    unlink(paths[i]);
  rmdir(dir);
  return 0;
}

static int reset(void **state)
{
  (void) state;
  fake_server_clear(fake);
  fake_server_clear(short_lived);
  unsetenv("GOOGLE_API_KEY");
  unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
  return 0;
}

static void test_api_key_is_a_header(void **state)
{
  (void) state;
  setenv("GOOGLE_API_KEY", "AIza-test-key", 1);
  stage_error_t err = {0};
  google_auth_t *auth = google_auth_new("google_stt", "STT_BACKEND=google", &err);
  assert_non_null(auth);
  char header[256];
  assert_int_equal(google_auth_header(auth, header, sizeof header, 1000, &err), 0);
  assert_string_equal(header, "x-goog-api-key: AIza-test-key");
  google_auth_destroy(&auth);
  assert_null(auth);
  assert_int_equal(fake_server_request_count(fake), 0);
}

static void test_service_account_token_is_fetched_once(void **state)
{
  (void) state;
  setenv("GOOGLE_APPLICATION_CREDENTIALS", sa_path, 1);
  stage_error_t err = {0};
  google_auth_t *auth = google_auth_new("google_tts", "TTS_BACKEND=google", &err);
  assert_non_null(auth);
  char header[2200];
  assert_int_equal(google_auth_header(auth, header, sizeof header, 2000, &err), 0);
  assert_string_equal(header, "Authorization: Bearer ya29.fake-token-1");
  assert_int_equal(google_auth_header(auth, header, sizeof header, 2000, &err), 0);
  assert_string_equal(header, "Authorization: Bearer ya29.fake-token-1");
  assert_int_equal(fake_server_request_count(fake), 1);
  const fake_request_t *req = fake_server_last_request(fake, "/token");
  assert_string_equal(fake_request_header(req, "Content-Type"),
                      "application/x-www-form-urlencoded");
  /* After the API refused it, a new one is fetched. */
  google_auth_invalidate(auth);
  assert_int_equal(google_auth_header(auth, header, sizeof header, 2000, &err), 0);
  assert_string_equal(header, "Authorization: Bearer ya29.fake-token-2");
  google_auth_destroy(&auth);
}

static void test_token_about_to_expire_is_refreshed(void **state)
{
  (void) state;
  setenv("GOOGLE_APPLICATION_CREDENTIALS", short_path, 1);
  stage_error_t err = {0};
  google_auth_t *auth = google_auth_new("google_tts", "TTS_BACKEND=google", &err);
  assert_non_null(auth);
  /* Its tokens last 30 s, less than the one-minute margin: each use fetches anew. */
  char header[2200];
  assert_int_equal(google_auth_header(auth, header, sizeof header, 2000, &err), 0);
  assert_string_equal(header, "Authorization: Bearer ya29.fake-token-1");
  assert_int_equal(google_auth_header(auth, header, sizeof header, 2000, &err), 0);
  assert_string_equal(header, "Authorization: Bearer ya29.fake-token-2");
  assert_int_equal(fake_server_request_count(short_lived), 2);
  google_auth_destroy(&auth);
}

static void test_wrong_signature_is_refused(void **state)
{
  (void) state;
  setenv("GOOGLE_APPLICATION_CREDENTIALS", other_path, 1);
  stage_error_t err = {0};
  google_auth_t *auth = google_auth_new("google_stt", "STT_BACKEND=google", &err);
  assert_non_null(auth);
  char header[2200];
  assert_int_equal(google_auth_header(auth, header, sizeof header, 2000, &err), -1);
  assert_string_equal(err.code, "backend_error");
  assert_non_null(strstr(err.message, "invalid_grant"));
  assert_int_equal(fake_server_request_count(fake), 1);
  google_auth_destroy(&auth);
}

static void test_token_endpoint_failures(void **state)
{
  (void) state;
  setenv("GOOGLE_APPLICATION_CREDENTIALS", sa_path, 1);
  stage_error_t err = {0};
  google_auth_t *auth = google_auth_new("google_stt", "STT_BACKEND=google", &err);
  assert_non_null(auth);
  char header[2200];
  assert_int_equal(fake_server_push_outcome(fake, "malformed"), 0);
  assert_int_equal(google_auth_header(auth, header, sizeof header, 2000, &err), -1);
  assert_non_null(strstr(err.message, "without access_token"));
  assert_int_equal(fake_server_push_outcome(fake, "500 500 500"), 0);
  assert_int_equal(google_auth_header(auth, header, sizeof header, 10000, &err), -1);
  assert_non_null(strstr(err.message, "HTTP 500"));
  assert_int_equal(fake_server_push_outcome(fake, "429"), 0);
  assert_int_equal(google_auth_header(auth, header, sizeof header, 5000, &err), 0);
  google_auth_destroy(&auth);
}

static void test_bad_settings_stop_at_start(void **state)
{
  (void) state;
  stage_error_t err = {0};
  assert_null(google_auth_new("google_stt", "STT_BACKEND=google", &err));
  assert_string_equal(err.code, "bad_config");
  assert_non_null(strstr(err.message, "STT_BACKEND=google needs GOOGLE_API_KEY or "
                                      "GOOGLE_APPLICATION_CREDENTIALS"));
  setenv("GOOGLE_APPLICATION_CREDENTIALS", broken_path, 1);
  assert_null(google_auth_new("google_stt", "STT_BACKEND=google", &err));
  assert_non_null(strstr(err.message, "not a service-account key file"));
  setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/account.json", 1);
  assert_null(google_auth_new("google_stt", "STT_BACKEND=google", &err));
  assert_non_null(strstr(err.message, "cannot read"));
}

static void test_base64(void **state)
{
  (void) state;
  const uint8_t bytes[] = {0x00, 0xff, 0x10, 'a', 'b'};
  for (size_t n = 0; n <= sizeof bytes; n++) {
    char *text = google_base64_encode(bytes, n);
    assert_non_null(text);
    assert_int_equal(strlen(text) % 4, 0);
    uint8_t *back = NULL;
    size_t size = 0;
    assert_int_equal(google_base64_decode(text, strlen(text), &back, &size), 0);
    assert_int_equal(size, n);
    if (n)
      assert_memory_equal(back, bytes, n);
    free(back);
    free(text);
  }
  const char *bad[] = {"abc", "ab=c", "a===", "ab c", "ab-_", "YWJj\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t *out = NULL;
    size_t size = 0;
    assert_int_equal(google_base64_decode(bad[i], strlen(bad[i]), &out, &size), -1);
    assert_null(out);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_api_key_is_a_header, reset),
    cmocka_unit_test_setup(test_service_account_token_is_fetched_once, reset),
    cmocka_unit_test_setup(test_token_about_to_expire_is_refreshed, reset),
    cmocka_unit_test_setup(test_wrong_signature_is_refused, reset),
    cmocka_unit_test_setup(test_token_endpoint_failures, reset),
    cmocka_unit_test_setup(test_bad_settings_stop_at_start, reset),
    cmocka_unit_test_setup(test_base64, reset),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
