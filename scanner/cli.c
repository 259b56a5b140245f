/* Command-line options: getopt_long with long options spelled in full.
 *
 * getopt_long accepts any unambiguous prefix of a long option. That turns
 * a guess into a different option (--version became --versions and made
 * four extra connections per address), and a script relying on an
 * abbreviation changes meaning the day an option sharing the prefix is
 * added. So every abbreviation is refused, not only the ambiguous ones,
 * and the message names the option(s) it could stand for. */
#include "stls/cli.h"

#include <mbedtls/build_info.h>
#include <mbedtls/version.h>
#include <stdarg.h>
#include <string.h>

#ifndef STLS_VERSION
#define STLS_VERSION "dev"
#endif

/* One line: our version, then which mbedTLS build the binary carries
 * (benchmarks and bug reports need to know): the tuned static one or the
 * system's shared library, whose version is asked at run time. */
void stls_cli_print_version(FILE *out) {
  char mbed[32];
  mbedtls_version_get_string(mbed);
  fprintf(out, "starttls-scan %s (mbedTLS %s, %s%s)\n", STLS_VERSION, mbed,
#if defined(STLS_MBEDTLS_TUNED)
          "tuned static build",
#else
          "system library",
#endif
#if defined(MBEDTLS_ECDH_VARIANT_EVEREST_ENABLED)
          ", Everest x25519"
#else
          ""
#endif
  );
}

/* What the check found first; printed only when no --version follows. */
typedef struct cli_err_s {
  char msg[600];
} cli_err_t;

static void cli_note(cli_err_t *e, const char *fmt, ...) {
  va_list ap;
  if (e->msg[0])
    return;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
  va_end(ap);
}

/* One usage line on stderr, in the form every command uses. */
static int cli_report(const stls_cli_t *cli, const char *msg) {
  const char *sp = cli->cmd ? " " : "", *cmd = cli->cmd ? cli->cmd : "";
  fprintf(stderr, "starttls-scan%s%s: %s (try 'starttls-scan help%s%s')\n", sp,
          cmd, msg, sp, cmd);
  return STLS_CLI_USAGE;
}

static const struct option *long_exact(const struct option *o, const char *name,
                                       size_t len) {
  for (; o && o->name; o++)
    if (strlen(o->name) == len && !strncmp(o->name, name, len))
      return o;
  return NULL;
}

/* "--NAME" matched no option: an abbreviation of some, or unknown. */
static void long_unknown(const stls_cli_t *cli, cli_err_t *e, const char *name,
                         size_t len) {
  char meant[512] = "";
  if (len && !strncmp("version", name, len))
    strcat(meant, "--version"); /* every command knows it */
  for (const struct option *o = cli->longopts; o && o->name; o++) {
    if (strncmp(o->name, name, len) != 0)
      continue;
    if (strlen(meant) + strlen(o->name) + 6 < sizeof(meant)) {
      strcat(meant, meant[0] ? " or --" : "--");
      strcat(meant, o->name);
    }
  }
  if (meant[0])
    cli_note(e,
             "'--%.*s' is not an option: long options are spelled in full "
             "(%s)",
             (int)len, name, meant);
  else
    cli_note(e, "unknown option '--%.*s'", (int)len, name);
}

/* Check argv[1..] once, the way getopt_long will walk it (options may
 * follow operands; "--" ends them). 0, STLS_CLI_VERSION or
 * STLS_CLI_USAGE. --version wins over any error, wherever it is. */
static int cli_check(const stls_cli_t *cli, int argc, char **argv) {
  cli_err_t err = {""};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--"))
      break;
    if (a[0] != '-' || a[1] == '\0')
      continue; /* an operand, or "-" (stdin/stdout) */
    if (a[1] == '-') {
      const char *name = a + 2, *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      const struct option *o = long_exact(cli->longopts, name, len);
      if (!eq && !strcmp(name, "version"))
        return STLS_CLI_VERSION;
      if (!o) {
        long_unknown(cli, &err, name, len);
        continue;
      }
      if (o->has_arg == no_argument && eq) {
        cli_note(&err, "option '--%s' takes no argument", o->name);
      } else if (o->has_arg == required_argument && !eq) {
        if (i + 1 >= argc) {
          cli_note(&err, "option '--%s' needs an argument", o->name);
        } else {
          i++; /* its argument, whatever it looks like */
        }
      }
      continue;
    }
    /* A cluster of short options: -46, -p25, -p 25. */
    for (const char *p = a + 1; *p; p++) {
      const char *s = *p != ':' && *p != '+' && *p != '-'
                          ? strchr(cli->shortopts ? cli->shortopts : "", *p)
                          : NULL;
      if (!s) {
        cli_note(&err, "unknown option '-%c'", *p);
        break;
      }
      if (s[1] == ':') {
        if (p[1] == '\0' && s[2] != ':') {
          if (i + 1 >= argc) {
            cli_note(&err, "option '-%c' needs an argument", *p);
          } else {
            i++;
          }
        }
        break; /* the rest of the cluster is its argument */
      }
    }
  }
  return err.msg[0] ? cli_report(cli, err.msg) : 0;
}

int stls_cli_getopt(stls_cli_t *cli, int argc, char **argv) {
  int c;
  if (!cli->checked) {
    int rc;
    cli->checked = 1;
    optind = 1;
    opterr = 0; /* our own one-line messages */
    if ((rc = cli_check(cli, argc, argv)) != 0)
      return rc;
  }
  c = getopt_long(argc, argv, cli->shortopts ? cli->shortopts : "",
                  cli->longopts, NULL);
  if (c == '?' || c == ':')
    /* cli_check saw every option, so getopt_long should not get here. */
    return cli_report(cli, "bad option");
  return c;
}
