/* Unit tests for the option parser (scanner/cli.c): long options only in
 * full, --version anywhere, precise usage errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "stls/cli.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A table like probe's: two options share the prefix "ver". */
static const struct option longopts[] = {
    {"versions", no_argument, NULL, 'V'},
    {"verbose-ehlo", no_argument, NULL, 'E'},
    {"ehlo", required_argument, NULL, 'e'},
    {"port", required_argument, NULL, 'p'},
    {"ip", required_argument, NULL, 'I'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

typedef struct {
  const char *args[8]; /* argv[1..], NULL-terminated */
  int first;           /* what the first call returns */
  const char *seen;    /* every option value in order, then "|" operands */
} cli_case_t;

static const cli_case_t cases[] = {
    /* Exact names work, also when they are a prefix of another name. */
    {{"--versions", "mx"}, 'V', "V|mx"},
    {{"--ehlo", "a.example", "mx"}, 'e', "e=a.example|mx"},
    {{"--ehlo=a.example", "mx"}, 'e', "e=a.example|mx"},
    {{"mx", "--port", "2525", "-h"}, 'p', "p=2525h|mx"},
    {{"-p25", "mx"}, 'p', "p=25|mx"},
    {{"-p", "25", "mx"}, 'p', "p=25|mx"},
    {{"-", "mx"}, -1, "|-mx"},
    /* Abbreviations are refused, unique or ambiguous. */
    {{"--version", "mx"}, STLS_CLI_VERSION, NULL},
    {{"mx", "--version"}, STLS_CLI_VERSION, NULL},
    {{"--bogus", "--version"}, STLS_CLI_VERSION, NULL},
    {{"--vers", "mx"}, STLS_CLI_USAGE, NULL},
    {{"--ver", "mx"}, STLS_CLI_USAGE, NULL},
    {{"--eh", "a.example", "mx"}, STLS_CLI_USAGE, NULL},
    {{"--i", "192.0.2.1", "mx"}, STLS_CLI_USAGE, NULL},
    {{"--port25", "mx"}, STLS_CLI_USAGE, NULL},
    /* --version as an option's argument, or after "--", is not one. */
    {{"--ehlo", "--version", "mx"}, 'e', "e=--version|mx"},
    {{"-p", "--version", "mx"}, 'p', "p=--version|mx"},
    {{"--", "--version"}, -1, "|--version"},
    /* Other usage errors. */
    {{"--bogus", "mx"}, STLS_CLI_USAGE, NULL},
    {{"-x", "mx"}, STLS_CLI_USAGE, NULL},
    {{"mx", "--ehlo"}, STLS_CLI_USAGE, NULL},
    {{"mx", "-p"}, STLS_CLI_USAGE, NULL},
    {{"--help=yes"}, STLS_CLI_USAGE, NULL},
};

static void run_case(const cli_case_t *tc) {
  char *argv[10];
  char seen[256] = "";
  int argc = 0, c;
  stls_cli_t cli = {"test", "p:h", longopts, 0};

  argv[argc++] = (char *)"test";
  for (size_t i = 0; tc->args[i]; i++)
    argv[argc++] = (char *)tc->args[i];
  argv[argc] = NULL;

  c = stls_cli_getopt(&cli, argc, argv);
  if (c != tc->first)
    fail_msg("args starting %s: first return %d, want %d", tc->args[0], c,
             tc->first);
  if (!tc->seen)
    return;
  while (c != -1) {
    char one[64];
    assert_true(c > 0);
    snprintf(one, sizeof(one), optarg ? "%c=%s" : "%c", c, optarg);
    strcat(seen, one);
    c = stls_cli_getopt(&cli, argc, argv);
  }
  strcat(seen, "|");
  for (int i = optind; i < argc; i++)
    strcat(seen, argv[i]);
  assert_string_equal(seen, tc->seen);
}

static void test_cases(void **state) {
  (void)state;
  for (size_t i = 0; i < ARRAY_LEN(cases); i++)
    run_case(&cases[i]);
}

/* A second parse with a fresh stls_cli_t starts over (optind reset). */
static void test_reparse(void **state) {
  char *argv[] = {"test", "--versions", "mx", NULL};
  stls_cli_t a = {"test", "p:h", longopts, 0}, b = a;
  (void)state;
  while (stls_cli_getopt(&a, 3, argv) != -1)
    ;
  assert_int_equal(optind, 2);
  assert_int_equal(stls_cli_getopt(&b, 3, argv), 'V');
}

static void test_version_line(void **state) {
  char buf[256] = "";
  FILE *f = tmpfile();
  (void)state;
  assert_non_null(f);
  stls_cli_print_version(f);
  rewind(f);
  assert_non_null(fgets(buf, sizeof(buf), f));
  fclose(f);
  assert_int_equal(strncmp(buf, "starttls-scan ", 14), 0);
  assert_true(strlen(buf) > 15 && buf[strlen(buf) - 1] == '\n');
  /* The same line names the mbedTLS build. */
  assert_non_null(strstr(buf, " (mbedTLS 3."));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cases),
      cmocka_unit_test(test_reparse),
      cmocka_unit_test(test_version_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
