/* What the command front ends (probe in main.c, scan and check in
 * cmd_scan.c) share: option tables, usage errors, defaults. Internal. */
#ifndef STLS_FRONTEND_H
#define STLS_FRONTEND_H

#include <getopt.h>
#include <stddef.h>

#include "stls/session.h"

#ifndef STLS_VERSION
#define STLS_VERSION "dev"
#endif

#define EXIT_USAGE 2

/* Options of every command that probes (probe, scan, check): trust, EHLO
 * name, per-step timeouts, --versions, the private-address guard, debug
 * logging. One table, one handler. */
enum {
  OPT_C_CA = 1000,
  OPT_C_STORE,
  OPT_C_INTER,
  OPT_C_EHLO,
  OPT_C_CT,
  OPT_C_GT,
  OPT_C_XT,
  OPT_C_TT,
  OPT_C_VERSIONS,
  OPT_C_REFUSE,
  OPT_C_DEBUG
};
#define PROBE_COMMON_LONGOPTS                                                  \
  {"ca-file", required_argument, NULL, OPT_C_CA},                              \
      {"trust-store", required_argument, NULL, OPT_C_STORE},                   \
      {"intermediates", required_argument, NULL, OPT_C_INTER},                 \
      {"ehlo", required_argument, NULL, OPT_C_EHLO},                           \
      {"connect-timeout", required_argument, NULL, OPT_C_CT},                  \
      {"greeting-timeout", required_argument, NULL, OPT_C_GT},                 \
      {"command-timeout", required_argument, NULL, OPT_C_XT},                  \
      {"tls-timeout", required_argument, NULL, OPT_C_TT},                      \
      {"versions", no_argument, NULL, OPT_C_VERSIONS},                         \
      {"refuse-private", no_argument, NULL, OPT_C_REFUSE}, {                   \
    "debug", no_argument, NULL, OPT_C_DEBUG                                    \
  }

typedef struct probe_common_s {
  stls_probe_cfg_t *cfg; /* timeouts and versions */
  const char **ca_file;
  const char **trust_stores; /* room for STLS_MAX_STORE_OPTS */
  size_t *n_trust_stores;
  const char **intermediates;
  const char **ehlo;
} probe_common_t;

#define STLS_MAX_STORE_OPTS 15

/* 1 when c is a common option (handled), 0 when it is not one, -1 after a
 * usage error was printed. */
int stls__probe_common_opt(int c, const char *arg, const char *cmd,
                           probe_common_t *pc);
/* "starttls-scan CMD: MESSAGE (try 'starttls-scan help CMD')"; returns 2. */
int stls__usage_error(const char *cmd, const char *fmt, const char *arg);
int stls__parse_port(const char *s);
int stls__parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);
/* The machine's fully qualified name, as Postfix's myhostname. */
void stls__default_ehlo(char *buf, size_t len, int warn);

extern const char stls__usage_scan[];
extern const char stls__usage_check[];
/* scan (check 0) and check (check 1). */
int stls__cmd_scan(int argc, char **argv, int check);

#endif
