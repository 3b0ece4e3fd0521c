/* fuzz_http: the gateway's HTTP request handling (gateway/http_api.c and
 * gateway/upload.c). Each input is one raw HTTP exchange as a client would send
 * it: request line, headers, query string and body (JSON for /api/ask, raw or
 * multipart audio for /api/complete-flow), possibly several pipelined requests.
 * It goes to a real MHD daemon (one per process, on a loopback port) with
 * in-memory stores, a temporary media directory and a fake pipeline that checks
 * every job the gateway submits; the client adds "Connection: close" after the
 * first line, half-closes and reads the answer to its end. An answer must be HTTP and never a 500. The same bytes also go
 * through the pure parsers (magic-byte sniffing, Content-Type families, UTF-8
 * checks, bounded buffers, media names, ids), whose results are checked for
 * consistency. */
#include "audio_header.h"
#include "clock.h"
#include "http_api.h"
#include "ids.h"
#include "log.h"
#include "pipeline.pb-c.h"
#include "security.h"
#include "upload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STORE_TTL_MS (3600 * 1000)
#define MEDIA_TTL_S 3600
#define MAX_UPLOAD (8 * 1024)      /* small, so 413 is within reach of short inputs */
#define IDLE_TIMEOUT_S 2           /* MHD drops a silent client after this */
#define ANSWER_TIMEOUT_MS 10000     /* well past it: the server is stuck */
#define KNOWN_JOB "fuzzjob"         /* ids the seeds poll */
#define KNOWN_SESSION "fuzz-session"
#define API_TOKEN "fuzz-token"      /* the seeds send it as "Authorization: Bearer" */
#define CORS_ORIGIN "https://kiosk.example.com"
#define MAX_AUDIO_MS 10000
#define THOUSAND_YEARS_MS (1000LL * 365 * 24 * 3600 * 1000)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char media_dir[64];
static job_store_t *jobs;
static session_store_t *sessions;
static media_store_t *media;
static metrics_t *metrics;
static pipeline_t pipeline;
static http_api_t *api;
static struct sockaddr_in server;
static api_token_t token;

static void fail(const char *what)
{
  fprintf(stderr, "fuzz_http: %s\n", what);
  abort();
}

/* The broker's side: every job the gateway submits must decode, carry its id
 * and the input of its stage. The answer varies with the job so ACK, "queue
 * full" and "unavailable" are all reached. */
static broker_submit_result_t check_submit(void *arg, const char *stage, const char *job_id,
                                           int64_t deadline_ms, const uint8_t *job, size_t size,
                                           unsigned *retry_after_s)
{
  (void) retry_after_s;
  (void) arg;
  Avatar__Job *decoded = avatar__job__unpack(NULL, size, job);
  if (!decoded)
    fail("the gateway submitted a job that does not decode");
  bool typed = strcmp(stage, "chat") == 0;
  if ((!typed && strcmp(stage, "stt") != 0) || strcmp(decoded->id, job_id) != 0 ||
      !id_is_valid(decoded->session_id) || (int64_t) decoded->deadline_ms != deadline_ms ||
      (typed ? !*decoded->input_text : decoded->input_audio.len == 0))
    fail("the gateway submitted a job without its id, session or input");
  avatar__job__free_unpacked(decoded, NULL);
  return (broker_submit_result_t) (size % 3);
}

static cJSON *fixed_info(void *arg, int timeout_ms)
{
  (void) arg, (void) timeout_ms;
  return cJSON_Parse("{\"stages\": {\"stt\": {\"workers\": 1, \"queued\": 0}, \"chat\": "
                     "{\"workers\": 1}, \"tts\": {\"workers\": 1}, \"avatar\": {\"workers\": 0}}}");
}

static void released(void *arg, const char *job_id)
{
  (void) arg;
  if (!id_is_valid(job_id))
    fail("the gateway released an invalid job id");
}

static void stop(void)
{
  http_api_stop(&api);
  api_token_clear(&token);
  media_store_cleanup(media, (int64_t) time(NULL) + 100 * MEDIA_TTL_S);
  rmdir(media_dir);
  job_store_destroy(&jobs);
  session_store_destroy(&sessions);
  media_store_destroy(&media);
  metrics_destroy(&metrics);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void) argc;
  (void) argv;
  setenv("LOG_LEVEL", "error", 0);
  log_init("fuzz_http");
  snprintf(media_dir, sizeof media_dir, "/tmp/fuzz-http-XXXXXX");
  if (!mkdtemp(media_dir))
    fail("cannot make a media directory");
  jobs = job_store_new(STORE_TTL_MS);
  sessions = session_store_new(10, STORE_TTL_MS);
  media = media_store_new(media_dir, MEDIA_TTL_S);
  metrics = metrics_new();
  if (!jobs || !sessions || !media || !metrics)
    fail("cannot make the stores");
  pipeline = (pipeline_t) {
    .submit = check_submit, .info = fixed_info, .job_final = released, .arg = NULL,
  };
  http_api_config_t config = {
    .bind_address = "127.0.0.1",
    .port = 0,
    .threads = 1,
    .connection_limit = 16,
    .connection_timeout_s = IDLE_TIMEOUT_S,
    .static_dir = FUZZ_STATIC_DIR,
    .max_upload_bytes = MAX_UPLOAD,
    .ask_max_chars = 200,
    .job_deadline_ms = 60000,
    .max_audio_ms = MAX_AUDIO_MS,
    .api_token = API_TOKEN,
    .cors_origins = CORS_ORIGIN,
    .trust_forwarded_for = true,
    .max_header_bytes = 4096,
    .jobs = jobs,
    .sessions = sessions,
    .media = media,
    .metrics = metrics,
    .pipeline = &pipeline,
  };
  /* A file for /media/ and its byte ranges; nothing the API does removes it. */
  static const uint8_t clip[] = "RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x40\x1f\0\0"
                                "\x80\x3e\0\0\x02\0\x10\0data\0\0\0\0";
  if (media_store_write(media, "fuzzclip.wav", clip, sizeof clip - 1) != 0)
    fail("cannot write the known media file");
  if (api_token_init(&token, API_TOKEN) != 0)
    fail("cannot set up the token");
  api = http_api_start(&config);
  if (!api)
    fail("cannot start the HTTP API");
  memset(&server, 0, sizeof server);
  server.sin_family = AF_INET;
  server.sin_port = htons(http_api_port(api));
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  atexit(stop);
  return 0;
}

/* ---- the pure parsers ------------------------------------------------------ */

/* The token, cookie, origin and client-address parsers on the input as text,
 * split at its first newline where two strings are needed. */
static void check_security(const char *text)
{
  char first[512];
  size_t length = strcspn(text, "\n");
  snprintf(first, sizeof first, "%.*s", (int) (length < sizeof first ? length : sizeof first - 1),
           text);
  const char *second = text[length] ? text + length + 1 : "";

  bool bearer = api_token_matches_bearer(&token, text);
  if (bearer && strstr(text, API_TOKEN) == NULL)
    fail("a bearer header without the token matched");
  if (api_token_matches(&token, text) != (strcmp(text, API_TOKEN) == 0))
    fail("api_token_matches disagrees with strcmp");
  if (api_token_matches_cookie(&token, text) && strcmp(text, token.cookie) != 0)
    fail("another value matched the login cookie");

  /* Only lists that can be valid: each refused entry is logged as an error,
   * and logging every input would flood the run's log. */
  origin_list_t *origins = NULL;
  if (strstr(first, "://") && origin_list_parse(first, &origins) == 0) {
    (void) origin_list_allows(origins, second);
    origin_list_destroy(&origins);
  }
  (void) origin_is_same(first, second);
  char key[CLIENT_KEY_MAX];
  if (client_key_from_forwarded(text, key) == 0 && strnlen(key, sizeof key) == sizeof key)
    fail("client_key_from_forwarded wrote an unterminated key");
}

static void check_parsers(const uint8_t *data, size_t size)
{
  char *text = malloc(size + 1);
  if (!text)
    fail("out of memory");
  memcpy(text, data, size);
  text[size] = '\0';

  audio_family_t sniffed = upload_sniff(data, size);
  if (upload_sniff_matches(AUDIO_UNDECLARED, data, size) != (sniffed != AUDIO_UNSUPPORTED) ||
      (sniffed != AUDIO_UNSUPPORTED && !upload_sniff_matches(sniffed, data, size)))
    fail("upload_sniff and upload_sniff_matches disagree");
  audio_family_t declared = upload_audio_family(text);
  if (declared != AUDIO_UNSUPPORTED && declared != AUDIO_UNDECLARED &&
      upload_audio_family(upload_family_mime(declared)) != declared)
    fail("a family's canonical MIME type maps to another family");
  (void) upload_type_is(text, "multipart/form-data");
  if (upload_text_is_utf8(text) && upload_utf8_length(text) > strlen(text))
    fail("more code points than bytes");

  for (audio_family_t family = AUDIO_UNSUPPORTED; family <= AUDIO_MP4; family++) {
    int64_t claimed = audio_header_claimed_ms(family, data, size);
    if (claimed < -1 || claimed > THOUSAND_YEARS_MS)
      fail("audio_header_claimed_ms out of its documented range");
  }
  check_security(text);

  bool valid_media = media_name_is_valid(text);
  if (valid_media && (strchr(text, '/') || text[0] == '.' || strstr(text, "..") ||
                      strlen(text) > MEDIA_NAME_MAX))
    fail("media_name_is_valid accepted a name that can leave the directory");
  if (valid_media && strcmp(media_content_type(text), "application/octet-stream") == 0)
    fail("a valid media name has no content type");
  if (id_is_valid(text) && (strlen(text) > ID_MAX || strpbrk(text, "/.%\\ ")))
    fail("id_is_valid accepted a character ids never have");

  /* A bounded buffer fed in pieces: it never passes its limit and says so. */
  size_t limit = size ? data[0] * 16 : 0;
  upload_buffer_t buffer;
  upload_buffer_init(&buffer, limit);
  size_t offered = 0;
  for (size_t at = 0; at < size;) {
    size_t piece = 1 + data[at] % 97;
    if (piece > size - at)
      piece = size - at;
    int rc = upload_buffer_append(&buffer, data + at, piece);
    offered += piece;
    if ((rc == 0) != (offered <= limit && !buffer.overflowed) || buffer.size > limit)
      fail("upload_buffer broke its limit");
    at += piece;
  }
  if (buffer.size && memcmp(buffer.data, data, buffer.size) != 0)
    fail("upload_buffer changed the bytes");
  upload_buffer_free(&buffer);
  free(text);
}

/* ---- one HTTP exchange ----------------------------------------------------- */

/* A connected socket. Thousands of connections a second can run the loopback
 * out of ephemeral ports for a moment: retry until ANSWER_TIMEOUT_MS. The
 * socket is reset on close (linger 0), so the client side keeps no TIME_WAIT. */
static int connect_to_gateway(void)
{
  int64_t give_up = clock_mono_ms() + ANSWER_TIMEOUT_MS;
  for (;;) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      fail("cannot make a socket");
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) != 0)
      fail("cannot set SO_LINGER");
    if (connect(fd, (const struct sockaddr *) &server, sizeof server) == 0)
      return fd;
    int error = errno;
    close(fd);
    if (clock_mono_ms() > give_up) {
      fprintf(stderr, "fuzz_http: connect: %s\n", strerror(error));
      fail("cannot connect to the gateway");
    }
    usleep(1000);
  }
}

/* Sends the input, half-closes and reads the whole answer. Returns its size
 * (0 when the server closed without answering); fills `head` with its start. */
static size_t exchange(const uint8_t *data, size_t size, char *head, size_t head_size)
{
  int fd = connect_to_gateway();
  /* Send and read at once: the server may answer (413, 405) before the body ends. */
  size_t sent = 0, received = 0;
  bool write_closed = false;
  int64_t give_up = clock_mono_ms() + ANSWER_TIMEOUT_MS;
  head[0] = '\0';
  for (;;) {
    if (!write_closed && sent == size) {
      shutdown(fd, SHUT_WR);
      write_closed = true;
    }
    struct pollfd poller = {.fd = fd, .events = POLLIN | (write_closed ? 0 : POLLOUT)};
    int64_t left = give_up - clock_mono_ms();
    int ready = left > 0 ? poll(&poller, 1, (int) left) : 0;
    if (ready < 0 && errno == EINTR)
      continue; /* libFuzzer's timer */
    if (ready <= 0)
      fail("the gateway did not finish answering in time");
    if (poller.revents & POLLIN) {
      char chunk[16384];
      ssize_t n = recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == ECONNRESET)
        break; /* the server closed with unread input left: fine */
      if (n < 0)
        fail("recv failed");
      if (n == 0)
        break;
      if (received < head_size - 1) {
        size_t copy = (size_t) n < head_size - 1 - received ? (size_t) n : head_size - 1 - received;
        memcpy(head + received, chunk, copy);
        head[received + copy] = '\0';
      }
      received += (size_t) n;
    } else if (poller.revents & POLLOUT) {
      ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        write_closed = true; /* the server stopped reading: read what it said */
      else if (n < 0)
        fail("send failed");
      else
        sent += (size_t) n;
    } else if (poller.revents & (POLLERR | POLLHUP)) {
      break;
    }
  }
  close(fd);
  return received;
}

static void check_answer(const char *head, size_t size)
{
  if (!size)
    return;
  unsigned status = 0;
  if (sscanf(head, "HTTP/1.%*1[01] %3u ", &status) != 1 || status < 100 || status > 599)
    fail("the answer is not HTTP");
  if (status == 500) {
    fprintf(stderr, "%s\n", head);
    fail("the gateway answered 500");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  check_parsers(data, size);

  /* The same known job and session before every input. */
  int64_t now_ms = clock_wall_ms();
  job_store_expire(jobs, now_ms + 100 * (int64_t) STORE_TTL_MS);
  session_store_expire(sessions, now_ms + 100 * (int64_t) STORE_TTL_MS);
  char session_id[SESSION_ID_MAX + 1];
  if (session_store_open(sessions, KNOWN_SESSION, now_ms, session_id) != 0 ||
      job_store_create(jobs, KNOWN_JOB, KNOWN_SESSION, "chat", "when are you open", now_ms) != 0)
    fail("cannot reset the stores");

  /* "Connection: close" after the request line: with MHD's edge-triggered
   * epoll, a keep-alive connection whose client half-closed is only noticed at
   * its idle timeout, which would make every exchange last that long. */
  static const char close_header[] = "Connection: close\r\n";
  const uint8_t *line_end = memchr(data, '\n', size);
  size_t at = line_end ? (size_t) (line_end - data) + 1 : size;
  uint8_t *request = malloc(size + sizeof close_header);
  if (!request)
    fail("out of memory");
  memcpy(request, data, at);
  size_t request_size = at;
  if (line_end) {
    memcpy(request + at, close_header, sizeof close_header - 1);
    request_size += sizeof close_header - 1;
  }
  memcpy(request + request_size, data + at, size - at);
  request_size += size - at;

  char head[1024];
  size_t answer = exchange(request, request_size, head, sizeof head);
  check_answer(head, answer);
  free(request);
  return 0;
}
