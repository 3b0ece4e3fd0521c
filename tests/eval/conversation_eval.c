/* conversation_eval: how well the offline path understands people, with thresholds.
 *
 * Typed: every paraphrase of tests/eval/typed.tsv goes to the knowledge-base chat
 * backend, whose answer must contain the row's fact; every question of
 * out_of_domain.tsv must get the fallback; every two-in-one question of compound.tsv
 * must get an answer holding all its facts.
 * Spoken: the rows marked "yes" are synthesised at test time, twice each, with
 * rotating voices (eSpeak NG variants and speeds, Flite voices when flite is
 * installed) and rotating conditions (8-48 kHz, mono and stereo, quiet with long
 * silences, browser Opus, pink noise at 20 and 10 dB SNR), transcribed by the backend
 * STT_BACKEND names, as the stt service picks it (PocketSphinx unless told otherwise),
 * and answered by chat exactly as the pipeline does (a transcript below
 * CHAT_TRANSCRIPT_MIN_CONFIDENCE gets the backend's unheard reply).
 *
 * Prints WER, right answers and fallbacks per voice and condition; exits 1 when
 * fewer than 90% of typed or 85% of spoken in-domain questions are answered right,
 * fewer than 75% of two-in-one questions in full, or fewer than 90% of out-of-domain
 * questions get the fallback (EVAL_THRESHOLDS=0 only reports, for
 * bench/conversation_quality.sh; EVAL_SPOKEN_THRESHOLDS=0 only reports the spoken
 * ones, EVAL_SPOKEN_THRESHOLDS=fallback enforces only the spoken out-of-domain
 * fallback).
 *
 * Environment: EVAL_DIR (the TSV files), KNOWLEDGE_FILE, ESPEAK_NG, FFMPEG, FLITE
 * (optional), EVAL_SPOKEN (0 skips speech), STT_BACKEND and the backend's own settings
 * (STT_LM/STT_DICT for PocketSphinx's model under test, OPENAI_STT_BASE_URL for a
 * whisper.cpp server, ...). */
#include "audio.h"
#include "chat_backend.h"
#include "knowledge.h"
#include "stt_backend.h"
#include "test_stt_media.h"
#include "text.h"

#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

enum { MAX_ROWS = 512, MAX_LINE = 512, SYNTH_JOBS = 2, RENDERS_PER_TEXT = 2 };

#define TYPED_MIN_RIGHT 0.90
#define SPOKEN_MIN_RIGHT 0.85
#define OUT_OF_DOMAIN_MIN_FALLBACK 0.90
#define COMPOUND_MIN_RIGHT 0.75
#define CONVERSATION_MIN_RIGHT 0.80

typedef struct {
  char text[MAX_LINE];
  char fact[MAX_LINE];          /* empty for out-of-domain questions */
  bool spoken;
} row_t;

typedef struct {
  row_t *rows;
  size_t count;
} rows_t;

/* A voice: a synthesiser and its settings. */
typedef struct {
  const char *name;
  bool flite;
  const char *voice;
  const char *speed;            /* eSpeak words per minute */
} voice_t;

static const voice_t VOICES[] = {
  {"espeak en-us 160", false, "en-us", "160"},
  {"espeak en 140", false, "en", "140"},
  {"espeak en-us+f3 180", false, "en-us+f3", "180"},
  {"flite slt", true, "slt", NULL},
  {"espeak en-us+m3 200", false, "en-us+m3", "200"},
  {"espeak en-us+f3 150", false, "en-us+f3", "150"},
  {"flite rms", true, "rms", NULL},
  {"espeak en 175", false, "en", "175"},
};
enum { VOICE_COUNT = sizeof VOICES / sizeof VOICES[0] };

/* How the synthesised WAV reaches the recognizer. `ffmpeg_filter` converts it (NULL:
 * as synthesised); `snr_db` > 0 adds pink noise at that signal-to-noise ratio. */
typedef struct {
  const char *name;
  const char *const *ffmpeg_args;
  const char *extension;
  double snr_db;
} condition_t;

static const char *const TO_8K[] = {"-ar", "8000", "-ac", "1", NULL};
static const char *const TO_44K_STEREO[] = {"-ar", "44100", "-ac", "2", NULL};
static const char *const TO_48K_QUIET[] = {
  "-af", "adelay=900:all=1,apad=pad_dur=1.2,volume=-22dB", "-ar", "48000", "-ac", "2", NULL};
static const char *const TO_OPUS[] = {"-c:a", "libopus", "-b:a", "32k", "-f", "webm", NULL};
static const char *const TO_22K_LOUD[] = {"-af", "volume=9dB", "-ar", "22050", NULL};

static const condition_t CONDITIONS[] = {
  {"clean 22 kHz", NULL, "wav", 0},
  {"8 kHz", TO_8K, "wav", 0},
  {"44.1 kHz stereo", TO_44K_STEREO, "wav", 0},
  {"noise 20 dB", NULL, "wav", 20},
  {"48 kHz stereo quiet, long silences", TO_48K_QUIET, "wav", 0},
  {"browser opus", TO_OPUS, "webm", 0},
  {"noise 10 dB", NULL, "wav", 10},
  {"loud, clipped", TO_22K_LOUD, "wav", 0},
};
enum { CONDITION_COUNT = sizeof CONDITIONS / sizeof CONDITIONS[0] };

/* One spoken test utterance. */
typedef struct {
  const row_t *row;
  const voice_t *voice;
  const condition_t *condition;
  char wav[300];                /* synthesised */
  char input[300];              /* what the recognizer gets */
} utterance_t;

/* Tallies of one group of utterances. `wrong`: in-domain questions answered with
 * another topic's answer, where declining (fallback, "I didn't catch that") would
 * have been honest. */
typedef struct {
  size_t count, right, wrong, word_errors, words, fallback_count, fallbacks;
} tally_t;

static const char *setting(const char *name, const char *fallback)
{
  const char *value = getenv(name);
  return value && *value ? value : fallback;
}

static double now_ms(void)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double) now.tv_sec * 1000.0 + (double) now.tv_nsec / 1e6;
}

/* Reads a TSV: text, [fact,] spoken flag; '#' lines are comments. */
static int rows_load(const char *path, bool with_fact, rows_t *out)
{
  FILE *file = fopen(path, "r");
  if (!file) {
    fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  out->rows = calloc(MAX_ROWS, sizeof *out->rows);
  char line[3 * MAX_LINE];
  int rc = out->rows ? 0 : -1;
  while (rc == 0 && fgets(line, sizeof line, file)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (!line[0] || line[0] == '#')
      continue;
    char *fields[3] = {line, NULL, NULL};
    for (int f = 1; f < 3; f++) {
      char *tab = fields[f - 1] ? strchr(fields[f - 1], '\t') : NULL;
      if (tab)
        *tab = '\0', fields[f] = tab + 1;
    }
    const char *flag = with_fact ? fields[2] : fields[1];
    if (out->count == MAX_ROWS || !flag || (with_fact && !fields[1][0])) {
      fprintf(stderr, "%s: bad line \"%s\"\n", path, line);
      rc = -1;
      break;
    }
    row_t *row = &out->rows[out->count++];
    if (strlen(fields[0]) >= sizeof row->text || (with_fact && strlen(fields[1]) >= sizeof row->fact)) {
      fprintf(stderr, "%s: line too long \"%.40s...\"\n", path, line);
      rc = -1;
      break;
    }
    memcpy(row->text, fields[0], strlen(fields[0]) + 1);
    if (with_fact)
      memcpy(row->fact, fields[1], strlen(fields[1]) + 1);
    row->spoken = strcmp(flag, "yes") == 0;
  }
  fclose(file);
  return rc;
}

/* ---- the eval must not be in what the system learnt from ---- */

/* Lower-case letters, digits and apostrophes of `text`, words one space apart. */
static void plain_words(const char *text, char *out, size_t size)
{
  size_t length = 0;
  for (const char *p = text; *p && length + 2 < size; p++) {
    char c = *p >= 'A' && *p <= 'Z' ? (char) (*p - 'A' + 'a') : *p;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'')
      out[length++] = c;
    else if (length && out[length - 1] != ' ')
      out[length++] = ' ';
  }
  while (length && out[length - 1] == ' ')
    length--;
  out[length] = '\0';
}

/* The same sentence, ignoring case and punctuation: a paraphrase that merely uses a
 * synonym is a fair test, the knowledge base's own sentence is not. */
static bool same_sentence(const char *a, const char *b)
{
  char x[MAX_LINE], y[MAX_LINE];
  plain_words(a, x, sizeof x);
  plain_words(b, y, sizeof y);
  return strcmp(x, y) == 0;
}

/* True (and says so) when the knowledge base holds `text` as a question or
 * paraphrase. */
static bool is_leak(const knowledge_t *kb, const char *text)
{
  for (size_t e = 0; e < kb->entry_count; e++) {
    const knowledge_entry_t *entry = &kb->entries[e];
    bool found = false;
    for (size_t q = 0; !found && q < entry->question_count; q++)
      found = same_sentence(text, entry->questions[q]);
    for (size_t p = 0; !found && p < entry->paraphrase_count; p++)
      found = same_sentence(text, entry->paraphrases[p]);
    if (found) {
      printf("# LEAK: \"%s\" is in the knowledge base (entry %s)\n", text, entry->id);
      return true;
    }
  }
  return false;
}

/* Counts test questions the knowledge base holds as a question or paraphrase. */
static size_t count_leaks(const knowledge_t *kb, const rows_t *rows)
{
  size_t leaks = 0;
  for (size_t r = 0; r < rows->count; r++)
    leaks += is_leak(kb, rows->rows[r].text);
  return leaks;
}

/* ---- answers ---- */

/* Right: the reply holds every " | "-separated fact of the row, or, for an
 * out-of-domain row, is the fallback. */
static bool answer_is_right(const row_t *row, const char *reply, const char *fallback)
{
  if (!row->fact[0])
    return strcmp(reply, fallback) == 0;
  static const char separator[] = " | ";
  for (const char *fact = row->fact; fact;) {
    const char *end = strstr(fact, separator);
    size_t length = end ? (size_t) (end - fact) : strlen(fact);
    if (!memmem(reply, strlen(reply), fact, length))
      return false;
    fact = end ? end + strlen(separator) : NULL;
  }
  return true;
}

/* Answers `question` as the chat stage does for a transcript of `confidence`. */
static char *ask(chat_backend_t *chat, const char *question, float confidence)
{
  char *reply = NULL;
  stage_error_t err = {0};
  int rc = confidence < CHAT_TRANSCRIPT_MIN_CONFIDENCE && chat->reply_unheard
             ? chat->reply_unheard(chat, &reply, &err)
             : chat->reply(chat, question, NULL, 0, &reply, &err);
  if (rc != 0) {
    fprintf(stderr, "chat failed on \"%s\": %s\n", question, err.message);
    return NULL;
  }
  return reply;
}

/* Asks every row, typed: counts the right answers and the in-domain questions
 * answered with another topic's answer, and prints the misses ("# <label> miss"). */
static int ask_rows(chat_backend_t *chat, const char *fallback, const rows_t *rows,
                    const char *label, size_t *right, size_t *wrong)
{
  for (size_t i = 0; i < rows->count; i++) {
    const row_t *row = &rows->rows[i];
    char *reply = ask(chat, row->text, 1.0f);
    if (!reply)
      return -1;
    bool ok = answer_is_right(row, reply, fallback);
    if (!ok)
      printf("# %s miss: \"%s\" -> \"%.120s\"\n", label, row->text, reply);
    *right += ok;
    *wrong += row->fact[0] && !ok && strcmp(reply, fallback) != 0;
    free(reply);
  }
  return 0;
}

static int eval_typed(chat_backend_t *chat, const char *fallback, const rows_t *in_domain,
                      const rows_t *out_of_domain, double *right_share, double *fallback_share)
{
  size_t right = 0, wrong = 0, fallbacks = 0;
  if (ask_rows(chat, fallback, in_domain, "typed", &right, &wrong) < 0 ||
      ask_rows(chat, fallback, out_of_domain, "typed", &fallbacks, &wrong) < 0)
    return -1;
  *right_share = (double) right / (double) in_domain->count;
  *fallback_share = (double) fallbacks / (double) out_of_domain->count;
  printf("typed paraphrases: %zu/%zu right (%.1f%%), %zu answered with another topic's answer\n",
         right, in_domain->count, 100.0 * *right_share, wrong);
  printf("typed out-of-domain: %zu/%zu fallback (%.1f%%)\n", fallbacks, out_of_domain->count,
         100.0 * *fallback_share);
  return 0;
}

/* Questions asking two things at once: the reply must answer both. */
static int eval_compound(chat_backend_t *chat, const char *fallback, const rows_t *rows,
                         double *right_share)
{
  size_t right = 0, wrong = 0;
  if (ask_rows(chat, fallback, rows, "compound", &right, &wrong) < 0)
    return -1;
  *right_share = rows->count ? (double) right / (double) rows->count : 0.0;
  printf("typed two-in-one questions: %zu/%zu answered in full (%.1f%%)\n", right, rows->count,
         100.0 * *right_share);
  return 0;
}

/* Whole conversations (conversations.tsv): blank-line separated sessions of
 * "turn<TAB>fact" lines, each turn answered with the session's earlier turns, as the
 * chat stage does. A fact of FALLBACK means the knowledge base's fallback. */
static int eval_conversations(chat_backend_t *chat, const knowledge_t *kb, const char *path,
                              double *right_share, size_t *leaks)
{
  enum { MAX_TURNS = 64 };
  FILE *file = fopen(path, "r");
  if (!file) {
    fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  chat_turn_t history[2 * MAX_TURNS];
  size_t history_len = 0, turns = 0, right = 0, sessions = 0;
  char line[3 * MAX_LINE];
  int rc = 0;
  bool more = true;
  while (rc == 0 && more) {
    more = fgets(line, sizeof line, file) != NULL;
    line[more ? strcspn(line, "\r\n") : 0] = '\0';
    if (line[0] == '#')
      continue;
    if (!line[0]) {                   /* a session ends */
      sessions += history_len > 0;
      for (size_t i = 0; i < history_len; i++)
        free((char *) history[i].text);
      history_len = 0;
      continue;
    }
    char *tab = strchr(line, '\t');
    if (!tab || !tab[1] || history_len + 2 > 2 * MAX_TURNS) {
      fprintf(stderr, "%s: bad line \"%s\"\n", path, line);
      rc = -1;
      break;
    }
    *tab = '\0';
    const char *fact = tab + 1;
    *leaks += is_leak(kb, line);
    char *reply = NULL;
    stage_error_t err = {0};
    if (chat->reply(chat, line, history, history_len, &reply, &err) != 0) {
      fprintf(stderr, "chat failed on \"%s\": %s\n", line, err.message);
      rc = -1;
      break;
    }
    bool ok = strcmp(fact, "FALLBACK") == 0 ? strcmp(reply, kb->fallback) == 0
                                            : strstr(reply, fact) != NULL;
    if (!ok)
      printf("# conversation %zu miss: \"%s\" -> \"%.100s\"\n", sessions + 1, line, reply);
    right += ok;
    turns++;
    history[history_len++] = (chat_turn_t) {"user", strdup(line)};
    history[history_len++] = (chat_turn_t) {"assistant", reply};
    if (!history[history_len - 2].text)
      rc = -1;
  }
  for (size_t i = 0; i < history_len; i++)
    free((char *) history[i].text);
  fclose(file);
  if (rc != 0)
    return -1;
  *right_share = turns ? (double) right / (double) turns : 0.0;
  printf("typed conversations: %zu sessions, %zu/%zu turns answered right (%.1f%%)\n", sessions,
         right, turns, 100.0 * *right_share);
  return 0;
}

/* ---- synthesis ---- */

/* Starts `sh -c script` with the arguments; returns its pid or -1. */
static pid_t spawn_script(const char *script, const char *const args[])
{
  const char *argv[16] = {"sh", "-c", script, "sh"};
  size_t n = 4;
  for (size_t i = 0; args[i] && n + 1 < sizeof argv / sizeof argv[0]; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  pid_t pid;
  if (posix_spawn(&pid, "/bin/sh", NULL, NULL, (char *const *) argv, environ) != 0)
    return -1;
  return pid;
}

/* Starts synthesising and converting one utterance. */
static pid_t synth_start(const utterance_t *u)
{
  static const char SCRIPT[] =
    /* $1 engine, $2 voice, $3 speed, $4 text, $5 wav, $6 ffmpeg, $7 input, $8.. filter */
    "engine=$1 voice=$2 speed=$3 text=$4 wav=$5 ffmpeg=$6 input=$7; shift 7;"
    "if [ \"$engine\" = flite ]; then \"$FLITE\" -voice \"$voice\" -t \"$text\" -o \"$wav\";"
    " else \"$ESPEAK_NG\" -v \"$voice\" -s \"$speed\" -w \"$wav\" \"$text\"; fi || exit 1;"
    "[ \"$ffmpeg\" = yes ] || exit 0;"
    "exec \"$FFMPEG\" -nostdin -loglevel error -y -i \"$wav\" \"$@\" \"$input\"";
  const char *args[16] = {
    u->voice->flite ? "flite" : "espeak", u->voice->voice, u->voice->speed ? u->voice->speed : "0",
    u->row->text, u->wav, u->condition->ffmpeg_args ? "yes" : "no", u->input};
  size_t n = 7;
  for (size_t i = 0; u->condition->ffmpeg_args && u->condition->ffmpeg_args[i] && n < 15; i++)
    args[n++] = u->condition->ffmpeg_args[i];
  args[n] = NULL;
  return spawn_script(SCRIPT, args);
}

/* Synthesises every utterance, SYNTH_JOBS at a time. Returns 0 or -1. */
static int synth_all(utterance_t *utterances, size_t count)
{
  size_t next = 0, running = 0;
  int rc = 0;
  while (next < count || running > 0) {
    if (next < count && running < SYNTH_JOBS && rc == 0) {
      if (synth_start(&utterances[next]) < 0) {
        fprintf(stderr, "cannot start the synthesiser\n");
        rc = -1;
      } else {
        running++;
      }
      next++;
      continue;
    }
    if (running == 0)
      break;
    int status = 0;
    pid_t done = waitpid(-1, &status, 0);
    if (done < 0 && errno == EINTR)
      continue;
    if (done < 0)
      break;
    running--;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "synthesis failed (status %d)\n", status);
      rc = -1;
    }
  }
  return rc;
}

/* ---- noise ---- */

/* Pink noise (Paul Kellet's economy filter over a seeded white source), in [-1, 1]ish. */
typedef struct {
  uint64_t state;
  double b0, b1, b2;
} pink_t;

static double pink_next(pink_t *pink)
{
  pink->state = pink->state * 6364136223846793005ULL + 1442695040888963407ULL;
  double white = (double) (pink->state >> 11) / (double) (1ULL << 53) * 2.0 - 1.0;
  pink->b0 = 0.99765 * pink->b0 + white * 0.0990460;
  pink->b1 = 0.96300 * pink->b1 + white * 0.2965164;
  pink->b2 = 0.57000 * pink->b2 + white * 1.0526913;
  return pink->b0 + pink->b1 + pink->b2 + white * 0.1848;
}

/* Adds pink noise to `pcm` so that speech (the 20 ms frames within 30 dB of the
 * loudest) is `snr_db` above it. */
static void add_noise(pcm_t *pcm, double snr_db, uint64_t seed)
{
  size_t frame = (size_t) pcm->sample_rate / 50, frames = pcm->count / frame;
  double loudest = 0.0, *energy = calloc(frames ? frames : 1, sizeof *energy);
  if (!energy)
    return;
  for (size_t f = 0; f < frames; f++) {
    for (size_t i = f * frame; i < (f + 1) * frame; i++)
      energy[f] += (double) pcm->samples[i] * pcm->samples[i];
    energy[f] /= (double) frame;
    loudest = energy[f] > loudest ? energy[f] : loudest;
  }
  double speech = 0.0;
  size_t speech_frames = 0;
  for (size_t f = 0; f < frames; f++)
    if (energy[f] > loudest * 1e-3)
      speech += energy[f], speech_frames++;
  free(energy);
  if (!speech_frames)
    return;
  double speech_rms = sqrt(speech / (double) speech_frames);
  pink_t pink = {.state = seed};
  double noise_power = 0.0;
  double *noise = malloc(pcm->count * sizeof *noise);
  if (!noise)
    return;
  for (size_t i = 0; i < pcm->count; i++) {
    noise[i] = pink_next(&pink);
    noise_power += noise[i] * noise[i];
  }
  double gain = speech_rms / pow(10.0, snr_db / 20.0) / sqrt(noise_power / (double) pcm->count);
  for (size_t i = 0; i < pcm->count; i++) {
    double mixed = pcm->samples[i] + gain * noise[i];
    pcm->samples[i] = (int16_t) (mixed > 32767 ? 32767 : mixed < -32768 ? -32768 : mixed);
  }
  free(noise);
}

/* Loads the utterance as the recognizer receives it, noisy when the condition says. */
static uint8_t *utterance_audio(const utterance_t *u, size_t index, size_t *size)
{
  FILE *file = fopen(u->condition->ffmpeg_args ? u->input : u->wav, "rb");
  if (!file)
    return NULL;
  uint8_t *data = NULL;
  size_t length = 0;
  uint8_t chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, file)) > 0) {
    uint8_t *grown = realloc(data, length + got);
    if (!grown) {
      free(data);
      fclose(file);
      return NULL;
    }
    data = grown;
    memcpy(data + length, chunk, got);
    length += got;
  }
  fclose(file);
  if (u->condition->snr_db <= 0) {
    *size = length;
    return data;
  }
  pcm_t pcm = {0};
  stage_error_t err = {0};
  uint8_t *noisy = NULL;
  if (audio_decode(data, length, 16000, 0, &pcm, &err) == 0) {
    add_noise(&pcm, u->condition->snr_db, 0x9E3779B97F4A7C15ULL * (index + 1));
    if (audio_wav_encode(&pcm, &noisy, size) != 0)
      noisy = NULL;
  }
  pcm_release(&pcm);
  free(data);
  return noisy;
}

/* ---- word error rate ---- */

static size_t split_words(const char *text, char words[][48], size_t max)
{
  size_t count = 0, length = 0;
  for (const char *p = text;; p++) {
    char c = *p >= 'A' && *p <= 'Z' ? (char) (*p - 'A' + 'a') : *p;
    if ((c >= 'a' && c <= 'z') || (c == '\'' && length)) {
      if (length + 1 < 48 && count < max)
        words[count][length++] = c;
      continue;
    }
    if (length && count < max)
      words[count++][length] = '\0';
    length = 0;
    if (!c)
      break;
  }
  return count;
}

/* Word-level edit distance between reference and hypothesis. */
static size_t word_errors(const char *reference, const char *hypothesis, size_t *reference_words)
{
  enum { MAX_WORDS = 64 };
  char ref[MAX_WORDS][48], hyp[MAX_WORDS][48];
  size_t n = split_words(reference, ref, MAX_WORDS), m = split_words(hypothesis, hyp, MAX_WORDS);
  size_t row[MAX_WORDS + 1], previous[MAX_WORDS + 1];
  for (size_t j = 0; j <= m; j++)
    previous[j] = j;
  for (size_t i = 1; i <= n; i++) {
    row[0] = i;
    for (size_t j = 1; j <= m; j++) {
      size_t substitute = previous[j - 1] + (strcmp(ref[i - 1], hyp[j - 1]) != 0);
      size_t best = previous[j] + 1 < row[j - 1] + 1 ? previous[j] + 1 : row[j - 1] + 1;
      row[j] = substitute < best ? substitute : best;
    }
    memcpy(previous, row, sizeof row);
  }
  *reference_words = n;
  return previous[m];
}

/* ---- spoken eval ---- */

static void tally_add(tally_t *tally, bool in_domain, bool right, bool wrong, size_t errors,
                      size_t words)
{
  tally->count++;
  if (in_domain) {
    tally->right += right;
    tally->wrong += wrong;
    tally->word_errors += errors;
    tally->words += words;
  } else {
    tally->fallback_count++;
    tally->fallbacks += right;
  }
}

static void tally_print(const char *name, const tally_t *t)
{
  size_t in_domain = t->count - t->fallback_count;
  printf("  %-36s %4zu  WER %5.1f%%  right %5.1f%%  wrong %5.1f%%  fallback %5.1f%%\n", name,
         t->count, t->words ? 100.0 * (double) t->word_errors / (double) t->words : 0.0,
         in_domain ? 100.0 * (double) t->right / (double) in_domain : 0.0,
         in_domain ? 100.0 * (double) t->wrong / (double) in_domain : 0.0,
         t->fallback_count ? 100.0 * (double) t->fallbacks / (double) t->fallback_count : 0.0);
}

/* Lists the utterances: every spoken row, RENDERS_PER_TEXT times, voices and
 * conditions rotating so that each text meets two different ones. */
static size_t plan_utterances(const media_t *media, const rows_t *sets[2], bool with_flite,
                              utterance_t *out, size_t max)
{
  size_t count = 0, k = 0;
  for (int s = 0; s < 2; s++)
    for (size_t r = 0; r < sets[s]->count; r++) {
      if (!sets[s]->rows[r].spoken)
        continue;
      for (int render = 0; render < RENDERS_PER_TEXT && count < max; render++, k++) {
        const voice_t *voice = &VOICES[k % VOICE_COUNT];
        if (voice->flite && !with_flite)
          voice = &VOICES[(k + 1) % VOICE_COUNT];
        utterance_t *u = &out[count];
        u->row = &sets[s]->rows[r];
        u->voice = voice;
        u->condition = &CONDITIONS[(k + k / VOICE_COUNT) % CONDITION_COUNT];
        char name[64];
        snprintf(name, sizeof name, "u%03zu.wav", count);
        media_path(media, name, u->wav, sizeof u->wav);
        snprintf(name, sizeof name, "u%03zu-in.%s", count, u->condition->extension);
        media_path(media, name, u->input, sizeof u->input);
        count++;
      }
    }
  return count;
}

static int eval_spoken(chat_backend_t *chat, const char *fallback, const rows_t *in_domain,
                       const rows_t *out_of_domain, double *right_share, double *fallback_share,
                       double *wer)
{
  media_t media;
  if (media_init(&media) != 0)
    return -1;
  bool with_flite = getenv("FLITE") && *getenv("FLITE");
  size_t max = RENDERS_PER_TEXT * (in_domain->count + out_of_domain->count);
  utterance_t *utterances = calloc(max, sizeof *utterances);
  stage_error_t err = {0};
  stt_backend_t *stt = utterances ? stt_backend_from_config(&err) : NULL;
  char *unheard = NULL;
  int rc = -1;
  if (!stt) {
    fprintf(stderr, "stt: %s\n", err.message);
    goto done;
  }
  const rows_t *sets[2] = {in_domain, out_of_domain};
  size_t count = plan_utterances(&media, sets, with_flite, utterances, max);
  double started = now_ms();
  if (synth_all(utterances, count) != 0)
    goto done;
  double synthesised = now_ms();

  tally_t all = {0}, by_voice[VOICE_COUNT] = {{0}}, by_condition[CONDITION_COUNT] = {{0}};
  double decode_ms = 0.0;
  unheard = ask(chat, "", 0.0f);      /* the reply to a transcript chat does not trust */
  for (size_t i = 0; i < count; i++) {
    const utterance_t *u = &utterances[i];
    size_t size = 0;
    uint8_t *audio = utterance_audio(u, i, &size);
    if (!audio) {
      fprintf(stderr, "cannot load %s\n", u->input);
      goto done;
    }
    stt_result_t heard = {0};
    stage_error_t stt_err = {0};
    double start = now_ms();
    const char *mime = strcmp(u->condition->extension, "webm") ? "audio/wav" : "audio/webm";
    int stt_rc = stt->transcribe(stt, audio, size, mime, &heard, &stt_err);
    decode_ms += now_ms() - start;
    free(audio);
    const char *transcript = stt_rc == 0 ? heard.text : "";
    /* Speech the recognizer rejects outright gets the unheard reply, as in the pipeline
     * the gateway shows the error and the person asks again: never a right answer. */
    char *reply = stt_rc == 0 ? ask(chat, transcript, heard.confidence) : NULL;
    bool in = u->row->fact[0] != '\0';
    bool right = reply && answer_is_right(u->row, reply, fallback);
    if (!in && stt_rc != 0)
      right = true;                   /* nothing forced onto a topic either */
    bool wrong = in && !right && reply && strcmp(reply, fallback) != 0 &&
                 (!unheard || strcmp(reply, unheard) != 0);
    size_t words = 0, errors = word_errors(u->row->text, transcript, &words);
    printf("# %-5s %-22s %-36s conf %.2f %s \"%s\" -> \"%s\"\n",
           right ? "ok" : wrong ? "WRONG" : "MISS",
           u->voice->name, u->condition->name, (double) heard.confidence,
           in ? "said" : "ood", u->row->text, transcript);
    tally_add(&all, in, right, wrong, errors, words);
    tally_add(&by_voice[u->voice - VOICES], in, right, wrong, errors, words);
    tally_add(&by_condition[u->condition - CONDITIONS], in, right, wrong, errors, words);
    free(heard.text);
    free(reply);
  }
  printf("spoken utterances: %zu (synthesis %.1f s with %d jobs, recognition by %s %.0f ms each)\n",
         count, (synthesised - started) / 1000.0, SYNTH_JOBS, stt->name, decode_ms / (double) count);
  for (size_t v = 0; v < VOICE_COUNT; v++)
    if (by_voice[v].count)
      tally_print(VOICES[v].name, &by_voice[v]);
  for (size_t c = 0; c < CONDITION_COUNT; c++)
    if (by_condition[c].count)
      tally_print(CONDITIONS[c].name, &by_condition[c]);
  tally_print("all", &all);
  size_t in_count = all.count - all.fallback_count;
  *wer = all.words ? (double) all.word_errors / (double) all.words : 1.0;
  *right_share = in_count ? (double) all.right / (double) in_count : 0.0;
  *fallback_share = all.fallback_count ? (double) all.fallbacks / (double) all.fallback_count : 0.0;
  printf("spoken WER (in-domain paraphrases): %.1f%%\n", 100.0 * *wer);
  printf("spoken paraphrases: %zu/%zu right (%.1f%%), %zu answered with another topic's "
         "answer (%.1f%%), the rest declined\n", all.right, in_count, 100.0 * *right_share,
         all.wrong, in_count ? 100.0 * (double) all.wrong / (double) in_count : 0.0);
  printf("spoken out-of-domain: %zu/%zu fallback (%.1f%%)\n", all.fallbacks, all.fallback_count,
         100.0 * *fallback_share);
  rc = 0;
done:
  if (stt)
    stt->destroy(&stt);
  free(unheard);
  free(utterances);
  media_cleanup(&media);
  return rc;
}

static bool check(const char *what, double share, double minimum, bool enforce)
{
  bool ok = share >= minimum;
  printf("%s %s: %.1f%% (threshold %.0f%%)\n", ok ? "PASS" : enforce ? "FAIL" : "below",
         what, 100.0 * share, 100.0 * minimum);
  return ok || !enforce;
}

int main(void)
{
  const char *dir = setting("EVAL_DIR", "tests/eval");
  const char *kb_path = setting("KNOWLEDGE_FILE", "config/knowledge.json");
  bool enforce = strcmp(setting("EVAL_THRESHOLDS", "1"), "0") != 0;
  bool spoken = strcmp(setting("EVAL_SPOKEN", "1"), "0") != 0;
  char path[512];
  rows_t in_domain = {0}, out_of_domain = {0}, compound = {0};
  stage_error_t err = {0};
  knowledge_t *kb = knowledge_load(kb_path, &err);
  chat_backend_t *chat = kb ? chat_kb_new(&err) : NULL;
  int exit_code = 1;
  if (!chat) {
    fprintf(stderr, "%s\n", err.message);
    goto done;
  }
  snprintf(path, sizeof path, "%s/typed.tsv", dir);
  if (rows_load(path, true, &in_domain) < 0)
    goto done;
  snprintf(path, sizeof path, "%s/out_of_domain.tsv", dir);
  if (rows_load(path, false, &out_of_domain) < 0)
    goto done;
  snprintf(path, sizeof path, "%s/compound.tsv", dir);
  if (rows_load(path, true, &compound) < 0)
    goto done;
  size_t leaks = count_leaks(kb, &in_domain) + count_leaks(kb, &compound);
  printf("typed paraphrases: %zu, out-of-domain questions: %zu, in the knowledge base: %zu\n",
         in_domain.count, out_of_domain.count, leaks);

  double typed_right = 0, typed_fallback = 0;
  if (eval_typed(chat, kb->fallback, &in_domain, &out_of_domain, &typed_right,
                 &typed_fallback) < 0)
    goto done;
  bool ok = leaks == 0 && in_domain.count >= 100;
  ok = check("typed paraphrases answered right", typed_right, TYPED_MIN_RIGHT, enforce) && ok;
  ok = check("typed out-of-domain fallback", typed_fallback, OUT_OF_DOMAIN_MIN_FALLBACK,
             enforce) && ok;
  double compound_right = 0;
  if (eval_compound(chat, kb->fallback, &compound, &compound_right) < 0)
    goto done;
  ok = check("typed two-in-one questions answered in full", compound_right,
             COMPOUND_MIN_RIGHT, enforce) && ok;
  double conversation_right = 0;
  size_t conversation_leaks = 0;
  snprintf(path, sizeof path, "%s/conversations.tsv", dir);
  if (eval_conversations(chat, kb, path, &conversation_right, &conversation_leaks) < 0)
    goto done;
  ok = conversation_leaks == 0 && ok;
  ok = check("typed conversation turns answered right", conversation_right,
             CONVERSATION_MIN_RIGHT, enforce) && ok;
  if (spoken) {
    double spoken_right = 0, spoken_fallback = 0, wer = 1;
    if (eval_spoken(chat, kb->fallback, &in_domain, &out_of_domain, &spoken_right,
                    &spoken_fallback, &wer) < 0)
      goto done;
    /* EVAL_SPOKEN_THRESHOLDS=0 reports the spoken figures without failing, and
     * "fallback" fails only on the out-of-domain one: the offline recognizer does not
     * reach the right-answer threshold yet (docs/performance.md). */
    const char *spoken_mode = setting("EVAL_SPOKEN_THRESHOLDS", "1");
    bool enforce_fallback = enforce && strcmp(spoken_mode, "0") != 0;
    bool enforce_right = enforce_fallback && strcmp(spoken_mode, "fallback") != 0;
    if (enforce && !enforce_right)
      printf("NOT ENFORCED (EVAL_SPOKEN_THRESHOLDS=%s): the spoken %sthresholds below\n",
             spoken_mode, enforce_fallback ? "right-answer " : "");
    ok = check("spoken paraphrases answered right", spoken_right, SPOKEN_MIN_RIGHT,
               enforce_right) && ok;
    ok = check("spoken out-of-domain fallback", spoken_fallback, OUT_OF_DOMAIN_MIN_FALLBACK,
               enforce_fallback) && ok;
  }
  exit_code = ok ? 0 : 1;
done:
  if (chat)
    chat->destroy(&chat);
  knowledge_destroy(&kb);
  free(in_domain.rows);
  free(out_of_domain.rows);
  free(compound.rows);
  return exit_code;
}
