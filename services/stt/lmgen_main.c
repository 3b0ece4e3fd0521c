/* lmgen (tool): builds the stt language model and dictionary at build time, the same
 * way the stt worker rebuilds them when the knowledge base changes (see lmgen.h).
 *
 *   lmgen [--general FILE] [--general-weight W] [--generic-lm FILE]
 *         [--generic-words N] [--generic-weight W] KNOWLEDGE_JSON CMUDICT OUT_LM OUT_DICT
 *   lmgen --generic-dict N GENERIC_LM CMUDICT OUT_DICT
 *
 * The second form writes the dictionary of the generic model's N likeliest words,
 * which the stt backend searches when it interpolates that model (lmgen.h).
 *
 * Exits 1 with the reason on stderr when the knowledge base is invalid, a word has no
 * pronunciation, or a file cannot be read or written. */
#include "lmgen.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
  fputs("usage: lmgen [--general FILE] [--general-weight W] [--generic-lm FILE]\n"
        "             [--generic-words N] [--generic-weight W]\n"
        "             KNOWLEDGE_JSON CMUDICT OUT_LM OUT_DICT\n"
        "       lmgen --generic-dict N GENERIC_LM CMUDICT OUT_DICT\n", stderr);
  return 1;
}

/* Parses a non-negative number; false when `text` is not one. */
static int parse_number(const char *text, double *out)
{
  char *end = NULL;
  double value = strtod(text, &end);
  if (!*text || *end || !(value >= 0.0 && value <= 1e6))
    return -1;
  *out = value;
  return 0;
}

static int generic_dict_main(int argc, char **argv)
{
  double words = 0.0;
  if (argc != 6 || parse_number(argv[2], &words) < 0 || words < 1.0)
    return usage();
  stage_error_t err = {0};
  if (lmgen_generic_dict(argv[3], argv[4], (size_t) words, argv[5], &err) < 0) {
    fprintf(stderr, "lmgen: %s\n", err.message);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  if (argc > 1 && !strcmp(argv[1], "--generic-dict"))
    return generic_dict_main(argc, argv);
  lmgen_options_t options = {0};
  int arg = 1;
  for (; arg + 1 < argc && !strncmp(argv[arg], "--", 2); arg += 2) {
    const char *name = argv[arg], *value = argv[arg + 1];
    double number = 0.0;
    bool numeric = strcmp(name, "--general") && strcmp(name, "--generic-lm");
    if (numeric && parse_number(value, &number) < 0) {
      fprintf(stderr, "lmgen: %s wants a non-negative number, not \"%s\"\n", name, value);
      return 1;
    }
    if (!strcmp(name, "--general"))
      options.general_path = value;
    else if (!strcmp(name, "--general-weight"))
      options.general_weight = number;
    else if (!strcmp(name, "--generic-lm"))
      options.generic_lm_path = value;
    else if (!strcmp(name, "--generic-words"))
      options.generic_words = (size_t) number;
    else if (!strcmp(name, "--generic-weight"))
      options.generic_weight = number;
    else
      return usage();
  }
  if (argc - arg != 4)
    return usage();
  options.knowledge_path = argv[arg];
  options.cmudict_path = argv[arg + 1];
  options.out_lm = argv[arg + 2];
  options.out_dict = argv[arg + 3];

  lmgen_stats_t stats = {0};
  stage_error_t err = {0};
  if (lmgen_build(&options, &stats, &err) < 0) {
    fprintf(stderr, "lmgen: %s\n", err.message);
    return 1;
  }
  printf("lmgen: %zu sentences, %zu words, %zu/%zu/%zu n-grams\n", stats.sentences, stats.words,
         stats.ngrams[0], stats.ngrams[1], stats.ngrams[2]);
  return 0;
}
