/* Command-line options: getopt_long with long options spelled in full. */
#ifndef STLS_CLI_H
#define STLS_CLI_H

#include <getopt.h>
#include <stdio.h>

/* What stls_cli_getopt() returns besides getopt_long's own values. */
#define STLS_CLI_USAGE (-2)   /* a message is on stderr: exit 2 */
#define STLS_CLI_VERSION (-3) /* --version was given: print it, exit 0 */

/* One command's parse: set cmd (for messages), shortopts and longopts, and
 * zero the rest before the first call. */
typedef struct stls_cli_s {
  const char *cmd;               /* "probe", "scan", ...; NULL for none */
  const char *shortopts;         /* as for getopt_long */
  const struct option *longopts; /* as for getopt_long, NULL-terminated */
  int checked;                   /* argv was checked (first call) */
} stls_cli_t;

/* getopt_long, stricter: on the first call every argument is checked, and
 * a long option that is not spelled exactly as in longopts (getopt_long
 * would accept any unambiguous prefix: --version for --versions) is a
 * usage error naming the option(s) it abbreviates. "--version" anywhere
 * (not as an option's argument, not after "--") returns STLS_CLI_VERSION
 * first, even when longopts lacks it. Unknown options and missing
 * arguments are reported on stderr too; every usage error returns
 * STLS_CLI_USAGE. Otherwise returns what getopt_long returns (optarg and
 * optind as usual; -1 at the end). Resets optind and opterr. */
int stls_cli_getopt(stls_cli_t *cli, int argc, char **argv);

/* The version line: "starttls-scan 0.1.0\n". */
void stls_cli_print_version(FILE *out);

#endif
