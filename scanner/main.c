/* starttls-scan: command line front end. */
#include "stls/cli.h"
#include "stls/dns.h"
#include "stls/policy.h"
#include "stls/hello.h"
#include "stls/record.h"
#include "stls/sts.h"
#include "frontend.h"
#include "stls/serve.h"
#include "stls/session.h"
#include "stls/tls.h"
#include "stls/util.h"
#include "stls/writer.h"

#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#ifndef STLS_VERSION
#define STLS_VERSION "dev"
#endif

static const char usage_main[] =
    "usage: starttls-scan COMMAND [OPTIONS]\n"
    "\n"
    "Tells what the receiving mail servers of a domain really do with TLS.\n"
    "Commands:\n"
    "  scan [DOMAIN...]    scan recipient domains (or -i FILE): every MX,\n"
    "                      every address; one JSON line per domain\n"
    "  check DOMAIN        human-readable report and Postfix policy verdicts\n"
    "                      for one domain; exit status for scripts\n"
    "  probe HOST[:PORT]   probe one mail server, print one JSON object\n"
    "  serve --db FILE     HTTP service: scans, stored results, change feed,\n"
    "                      Prometheus metrics, status page\n"
    "  ingest URL FILE...  post scan output (NDJSON) to a running service\n"
    "  help [COMMAND]      show help for a command\n"
    "  version             print the version\n"
    "\n"
    "Run 'starttls-scan help COMMAND' for a command's options. Long options\n"
    "are spelled in full (an abbreviation is an error); --version anywhere\n"
    "prints the version and does nothing else.\n";

static const char usage_probe[] =
    "usage: starttls-scan probe HOST[:PORT] [OPTIONS]\n"
    "\n"
    "Connects to HOST (port 25 by default), reads the greeting, sends EHLO\n"
    "(HELO if EHLO is refused), STARTTLS, performs the TLS handshake (TLS 1.2\n"
    "or 1.3), sends EHLO again inside TLS and QUITs. Never sends MAIL, RCPT "
    "or\n"
    "DATA. Prints one JSON object (see docs/output.md) and exits 0 whatever\n"
    "the server did; exits 2 on bad usage, 1 if the probe could not run.\n"
    "\n"
    "HOST is the MX host name (used for SNI and the certificate name check),\n"
    "an IPv4 address, or an IPv6 address in brackets: [2001:db8::25]:25.\n"
    "\n"
    "Options:\n"
    "  --ip ADDR               connect to ADDR instead of resolving HOST;\n"
    "                          names are still checked against HOST\n"
    "  -p, --port N            TCP port (default 25)\n"
    "  -4, -6                  resolve HOST to IPv4 / IPv6 only\n"
    "  --ca-file FILE          trust anchors, PEM (default: the system store,\n"
    "                          /etc/ssl/certs/ca-certificates.crt); decides\n"
    "                          tls.trust.trusted\n"
    "  --trust-store NAME=FILE also judge the chain against this store\n"
    "                          (repeatable): tls.trust.stores.NAME\n"
    "  --intermediates FILE    intermediates to fill gaps with, for\n"
    "                          tls.chain_quality.missing_intermediate\n"
    "  --ehlo NAME             name sent in EHLO/HELO (default: this "
    "machine's\n"
    "                          fully qualified name; use one that resolves)\n"
    "  --domain DOMAIN         recipient domain, for "
    "tls.names.recipient_domain\n"
    "  --versions              also find which of TLS 1.3, 1.2, 1.1, 1.0 and\n"
    "                          SSLv3 the server accepts (up to 4 more\n"
    "                          connections, one after the other)\n"
    "  --connect-timeout SEC   TCP connect (default 10)\n"
    "  --greeting-timeout SEC  wait for the 220 greeting (default 30)\n"
    "  --command-timeout SEC   wait for each reply to EHLO, HELO, STARTTLS\n"
    "                          (default 15)\n"
    "  --tls-timeout SEC       complete the TLS handshake (default 15)\n"
    "  --refuse-private        never connect to private or special-purpose\n"
    "                          addresses (loopback, RFC 1918, CGNAT, link-\n"
    "                          local, ULA, documentation, ...): such hosts\n"
    "                          get status \"blocked\", no connection is tried\n"
    "  --debug                 log each session's state changes on stderr\n"
    "                          (also: environment STLS_DEBUG=1)\n"
    "  -h, --help              this help\n"
    "\n"
    "Example:\n"
    "  starttls-scan probe mx1.example.com --domain example.com | jq .tls\n";

typedef struct probe_opts_s {
  char host[256];
  char ip[64];
  int port;
  int family; /* 0 any, 4, 6 */
  const char *ca_file;
  const char *trust_stores[16];
  size_t n_trust_stores;
  const char *intermediates;
  const char *ehlo;
  const char *domain;
  stls_probe_cfg_t cfg;
} probe_opts_t;

int stls__usage_error(const char *cmd, const char *fmt, const char *arg) {
  fprintf(stderr, "starttls-scan%s%s: ", cmd ? " " : "", cmd ? cmd : "");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (try 'starttls-scan help%s%s')\n", cmd ? " " : "",
          cmd ? cmd : "");
  return EXIT_USAGE;
}

int stls__parse_port(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 1 || v > 65535)
    return -1;
  return (int)v;
}

static int is_ipv4(const char *s) {
  struct sockaddr_in a;
  return uv_ip4_addr(s, 0, &a) == 0;
}

static int is_ipv6(const char *s) {
  struct sockaddr_in6 a;
  return uv_ip6_addr(s, 0, &a) == 0;
}

/* HOST, HOST:PORT, [V6], [V6]:PORT. A bare IPv6 literal is accepted too. */
static int parse_target(const char *arg, probe_opts_t *o) {
  const char *colon;
  size_t hl;
  if (arg[0] == '[') {
    const char *close = strchr(arg, ']');
    if (!close || close == arg + 1)
      return -1;
    hl = (size_t)(close - arg - 1);
    if (hl >= sizeof(o->host))
      return -1;
    memcpy(o->host, arg + 1, hl);
    o->host[hl] = '\0';
    if (!is_ipv6(o->host))
      return -1;
    if (close[1] == ':')
      return (o->port = stls__parse_port(close + 2)) < 0 ? -1 : 0;
    return close[1] ? -1 : 0;
  }
  if (is_ipv6(arg))
    return stls_strlcpy(o->host, arg, sizeof(o->host)) < sizeof(o->host) ? 0
                                                                         : -1;
  colon = strchr(arg, ':');
  hl = colon ? (size_t)(colon - arg) : strlen(arg);
  if (hl == 0 || hl >= sizeof(o->host))
    return -1;
  memcpy(o->host, arg, hl);
  o->host[hl] = '\0';
  if (colon && (o->port = stls__parse_port(colon + 1)) < 0)
    return -1;
  return 0;
}

/* The machine's fully qualified name, as Postfix's myhostname: the host
 * name, completed by the resolver's canonical name when it has no dot.
 * Called once before any loop runs, so the lookup may block. Servers may
 * refuse a HELO name that is not a FQDN (reject_non_fqdn_helo_hostname),
 * so say so when none can be found. */
void stls__default_ehlo(char *buf, size_t len, int warn) {
  struct addrinfo hints, *ai = NULL;
  if (gethostname(buf, len) != 0 || !buf[0])
    stls_strlcpy(buf, "localhost", len);
  buf[len - 1] = '\0';
  if (strchr(buf, '.'))
    return;
  memset(&hints, 0, sizeof(hints));
  hints.ai_flags = AI_CANONNAME;
  if (getaddrinfo(buf, NULL, &hints, &ai) == 0 && ai && ai->ai_canonname &&
      strchr(ai->ai_canonname, '.'))
    stls_strlcpy(buf, ai->ai_canonname, len);
  if (ai)
    freeaddrinfo(ai);
  if (warn && !strchr(buf, '.'))
    fprintf(stderr,
            "starttls-scan: warning: EHLO name '%s' is not a fully qualified "
            "name; some servers refuse it (set --ehlo)\n",
            buf);
}

typedef struct probe_run_s {
  probe_opts_t *o;
  stls_host_result_t res;
  uv_getaddrinfo_t gai;
  int exit_code;
} probe_run_t;

static void probe_done_cb(stls_host_result_t *res, void *arg) {
  probe_run_t *run = arg;
  cJSON *rec = stls_json_probe_record(res, run->o->domain, time(NULL));
  if (!rec || stls_json_write_line(stdout, rec) != 0) {
    fprintf(stderr, "starttls-scan probe: cannot write the result\n");
    run->exit_code = 1;
  }
  cJSON_Delete(rec);
}

static void probe_launch(probe_run_t *run, uv_loop_t *loop) {
  probe_opts_t *o = run->o;
  stls_host_result_free(&run->res);
  if (stls_host_result_init(&run->res, o->host, o->ip, o->port) != 0) {
    run->exit_code = 1;
    return;
  }
  o->cfg.mx = o->host;
  o->cfg.ip = o->ip;
  o->cfg.port = o->port;
  if (stls_probe_start(loop, &o->cfg, &run->res, probe_done_cb, run) != 0)
    probe_done_cb(&run->res, run);
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *ai) {
  probe_run_t *run = req->data;
  probe_opts_t *o = run->o;
  if (status < 0 || !ai) {
    fprintf(stderr, "starttls-scan probe: cannot resolve %s: %s\n", o->host,
            uv_strerror(status));
    run->exit_code = 1;
    uv_freeaddrinfo(ai);
    return;
  }
  /* The first address in the resolver's order, as an MTA would try. */
  uv_ip_name(ai->ai_addr, o->ip, sizeof(o->ip));
  uv_freeaddrinfo(ai);
  probe_launch(run, req->loop);
}

/* 1 when c is a common option (handled), 0 when it is not one, -1 after a
 * usage error was printed. */
int stls__probe_common_opt(int c, const char *arg, const char *cmd,
                           probe_common_t *pc) {
  int64_t *tmo;
  switch (c) {
  case OPT_C_CA: *pc->ca_file = arg; return 1;
  case OPT_C_STORE:
    if (*pc->n_trust_stores >= STLS_MAX_STORE_OPTS) {
      stls__usage_error(cmd, "%s", "at most 15 --trust-store options");
      return -1;
    }
    pc->trust_stores[(*pc->n_trust_stores)++] = arg;
    return 1;
  case OPT_C_INTER: *pc->intermediates = arg; return 1;
  case OPT_C_EHLO: *pc->ehlo = arg; return 1;
  case OPT_C_VERSIONS: pc->cfg->versions = 1; return 1;
  case OPT_C_REFUSE: pc->cfg->guard_private = 1; return 1;
  case OPT_C_DEBUG: stls_debug_enable(1); return 1;
  case OPT_C_CT: tmo = &pc->cfg->connect_timeout_ms; break;
  case OPT_C_GT: tmo = &pc->cfg->greeting_timeout_ms; break;
  case OPT_C_XT: tmo = &pc->cfg->command_timeout_ms; break;
  case OPT_C_TT: tmo = &pc->cfg->tls_timeout_ms; break;
  default: return 0;
  }
  if ((*tmo = stls_parse_seconds_ms(arg)) <= 0) {
    stls__usage_error(cmd, "bad timeout '%s' (seconds, e.g. 10 or 0.5)", arg);
    return -1;
  }
  return 1;
}

static int cmd_probe(int argc, char **argv) {
  enum { OPT_IP = 256, OPT_DOMAIN };
  static const struct option longopts[] = {
      {"ip", required_argument, NULL, OPT_IP},
      {"port", required_argument, NULL, 'p'},
      {"domain", required_argument, NULL, OPT_DOMAIN},
      PROBE_COMMON_LONGOPTS,
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  probe_opts_t o;
  probe_run_t run;
  char ehlo_buf[256], err[300];
  const char *ip_opt = NULL;
  int c, port_opt = -1;
  uv_loop_t loop;
  stls_tls_ctx_t *tls = NULL;
  probe_common_t pc;
  stls_cli_t cli = {"probe", "p:46h", longopts, 0};

  memset(&o, 0, sizeof(o));
  memset(&run, 0, sizeof(run));
  stls_probe_cfg_defaults(&o.cfg);
  pc = (probe_common_t){&o.cfg,           &o.ca_file,
                        o.trust_stores,   &o.n_trust_stores,
                        &o.intermediates, &o.ehlo};
  o.port = 25;
  while ((c = stls_cli_getopt(&cli, argc, argv)) != -1) {
    switch (c) {
    case STLS_CLI_VERSION: stls_cli_print_version(stdout); return 0;
    case STLS_CLI_USAGE: return EXIT_USAGE;
    case OPT_IP: ip_opt = optarg; break;
    case 'p':
      if ((port_opt = stls__parse_port(optarg)) < 0)
        return stls__usage_error("probe", "bad port '%s'", optarg);
      break;
    case '4': o.family = 4; break;
    case '6': o.family = 6; break;
    case OPT_DOMAIN: o.domain = optarg; break;
    case 'h': fputs(usage_probe, stdout); return 0;
    default:
      switch (stls__probe_common_opt(c, optarg, "probe", &pc)) {
      case 1: break;
      case 0:
        return stls__usage_error("probe",
                                 "unknown option or missing argument: '%s'",
                                 argv[optind - 1]);
      default: return EXIT_USAGE;
      }
    }
  }
  if (optind != argc - 1)
    return stls__usage_error("probe", "%s",
                             optind >= argc ? "missing HOST"
                                            : "exactly one HOST expected");
  if (parse_target(argv[optind], &o) != 0)
    return stls__usage_error("probe", "bad HOST[:PORT] '%s'", argv[optind]);
  if (port_opt > 0)
    o.port = port_opt;
  if (ip_opt) {
    if (!is_ipv4(ip_opt) && !is_ipv6(ip_opt))
      return stls__usage_error(
          "probe", "--ip wants an IPv4 or IPv6 address, not '%s'", ip_opt);
    stls_strlcpy(o.ip, ip_opt, sizeof(o.ip));
  } else if (is_ipv4(o.host) || is_ipv6(o.host)) {
    stls_strlcpy(o.ip, o.host, sizeof(o.ip));
  }
  if (!o.ehlo) {
    stls__default_ehlo(ehlo_buf, sizeof(ehlo_buf), 1);
    o.ehlo = ehlo_buf;
  }
  o.cfg.ehlo_name = o.ehlo;

  if (stls_tls_ctx_init_stores(&tls, o.ca_file, o.trust_stores,
                               o.n_trust_stores, o.intermediates, err,
                               sizeof(err)) != 0) {
    fprintf(stderr, "starttls-scan probe: %s\n", err);
    return 1;
  }
  o.cfg.tls = tls;
  run.o = &o;
  uv_loop_init(&loop);
  if (o.ip[0]) {
    probe_launch(&run, &loop);
  } else {
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = o.family == 4   ? AF_INET
                      : o.family == 6 ? AF_INET6
                                      : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    run.gai.data = &run;
    if (uv_getaddrinfo(&loop, &run.gai, gai_cb, o.host, NULL, &hints) != 0) {
      fprintf(stderr, "starttls-scan probe: cannot resolve %s\n", o.host);
      run.exit_code = 1;
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  stls_host_result_free(&run.res);
  stls_tls_ctx_free(tls);
  return run.exit_code;
}

int stls__parse_uint(const char *s, unsigned min, unsigned max, unsigned *out) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || *s == '-' || v < min || v > max)
    return -1;
  *out = (unsigned)v;
  return 0;
}

/* The usage text of a command, or NULL when there is no such command. */
static const char *usage_of(const char *cmd) {
  if (!strcmp(cmd, "probe"))
    return usage_probe;
  if (!strcmp(cmd, "scan"))
    return stls__usage_scan;
  if (!strcmp(cmd, "check"))
    return stls__usage_check;
  if (!strcmp(cmd, "serve"))
    return stls_serve_usage;
  if (!strcmp(cmd, "ingest"))
    return stls_ingest_usage;
  if (!strcmp(cmd, "help") || !strcmp(cmd, "version"))
    return usage_main;
  return NULL;
}

/* help [COMMAND] and version take no options but --help/--version. */
static int cmd_simple(int argc, char **argv, int help) {
  static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  stls_cli_t cli = {NULL, "h", longopts, 0};
  const char *text;
  int c;
  while ((c = stls_cli_getopt(&cli, argc, argv)) != -1) {
    switch (c) {
    case STLS_CLI_VERSION: stls_cli_print_version(stdout); return 0;
    case 'h': fputs(usage_main, stdout); return 0;
    default: return EXIT_USAGE;
    }
  }
  if (!help) {
    if (optind < argc)
      return stls__usage_error(NULL, "version: unexpected argument '%s'",
                               argv[optind]);
    stls_cli_print_version(stdout);
    return 0;
  }
  if (optind + 1 < argc)
    return stls__usage_error(NULL, "help: one COMMAND at most, not also '%s'",
                             argv[optind + 1]);
  text = optind < argc ? usage_of(argv[optind]) : usage_main;
  if (!text)
    return stls__usage_error(
        NULL, "help: no command '%s' (probe, scan, check, serve, ingest)",
        argv[optind]);
  fputs(text, stdout);
  return 0;
}

int main(int argc, char **argv) {
  const char *cmd = argc > 1 ? argv[1] : NULL;
  if (!cmd) {
    fputs(usage_main, stderr);
    return EXIT_USAGE;
  }
  if (!strcmp(cmd, "probe"))
    return cmd_probe(argc - 1, argv + 1);
  if (!strcmp(cmd, "scan") || !strcmp(cmd, "check"))
    return stls__cmd_scan(argc - 1, argv + 1, !strcmp(cmd, "check"));
  if (!strcmp(cmd, "serve"))
    return stls_cmd_serve(argc - 1, argv + 1);
  if (!strcmp(cmd, "ingest"))
    return stls_cmd_ingest(argc - 1, argv + 1);
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version"))
    return cmd_simple(argc - 1, argv + 1, 0);
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
    return cmd_simple(argc - 1, argv + 1, 1);
  return stls__usage_error(NULL, "unknown command '%s'", cmd);
}
