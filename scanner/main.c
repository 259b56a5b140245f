/* starttls-scan: command line front end. */
#include "stls/cli.h"
#include "stls/dns.h"
#include "stls/policy.h"
#include "stls/hello.h"
#include "stls/record.h"
#include "stls/sts.h"
#include "stls/scan.h"
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

#define EXIT_USAGE 2

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

static const char usage_check[] =
    "usage: starttls-scan check DOMAIN [--level LEVEL] [--json] [OPTIONS]\n"
    "\n"
    "Scans one recipient domain like 'scan' and prints a report for people:\n"
    "every MX address with what it did, then the verdict for each Postfix\n"
    "smtp_tls_security_level (may, encrypt, dane, verify, secure) and for\n"
    "MTA-STS, and the recommended level (the strictest level every\n"
    "reachable address passes). For smtp_tls_policy_maps lines, use\n"
    "'scan --postfix-policy FILE'.\n"
    "\n"
    "  --level LEVEL   may | encrypt | dane | verify | secure | mta-sts:\n"
    "                  exit 0 if mail would be delivered at LEVEL, 1 if not\n"
    "  --json          print the JSON record after the report\n"
    "\n"
    "Exit status: 0 (report printed; or LEVEL passes), 1 (LEVEL fails, or\n"
    "the domain takes no mail: nxdomain, null MX, no address), 2 (bad\n"
    "usage, invalid domain name, DNS failure).\n"
    "All 'scan' options apply (--ca-file, --ehlo, --resolver, timeouts, -4/-6,\n"
    "--ipv6, --secure-match, ...).\n"
    "\n"
    "Example:\n"
    "  starttls-scan check example.com --level verify && echo safe to enforce\n";

static const char usage_scan[] =
    "usage: starttls-scan scan [DOMAIN...] [-i FILE] [-o FILE] [OPTIONS]\n"
    "\n"
    "For each recipient domain: resolve its MX hosts (RFC 5321 rules: no MX\n"
    "means the domain itself, a null MX means no mail), their IPv4 and IPv6\n"
    "addresses, and probe every address like 'probe' does. Writes one JSON\n"
    "object per input domain per line (NDJSON), in completion order.\n"
    "Each (address, port, name) is probed once per run and the result is\n"
    "shared by every domain that uses it (\"shared\": true).\n"
    "\n"
    "Input and output:\n"
    "  -i, --input FILE        domains, one per line ('-' = stdin); '#' starts\n"
    "                          a comment; blank lines are ignored; a bad line\n"
    "                          becomes an invalid-domain record\n"
    "  -o, --output FILE       write records to FILE (default stdout)\n"
    "  --resume                with -o: skip domains already in FILE, append\n"
    "                          the rest (a torn last line is cut off first)\n"
    "  --shard K/N             scan only shard K (1..N) of N; shards split any\n"
    "                          list the same way on every machine\n"
    "  --summary FILE          write the run summary as JSON to FILE\n"
    "  -q, --quiet             no progress and no summary on stderr\n"
    "\n"
    "DNS:\n"
    "  --resolver ADDR[:PORT]  ask this server (repeatable; IPv6 as [v6]:port;\n"
    "                          an address, not a name);\n"
    "                          default: /etc/resolv.conf\n"
    "  -4, -6                  only IPv4 / only IPv6 addresses\n"
    "  --ipv6 auto|on|off      auto (default): probe IPv6 only when this\n"
    "                          machine has an IPv6 route; else 'skipped'\n"
    "  --dns-timeout SEC       per query and try (default 2)\n"
    "  --dns-tries N           tries per server (default 2)\n"
    "  --max-mx N              MX hosts per domain (default 10)\n"
    "  --max-addrs N           addresses per MX host (default 10)\n"
    "\n"
    "Politeness and speed:\n"
    "  -w, --workers N         worker threads (default: one per CPU)\n"
    "  -c, --concurrency N     probes at once, whole run (default 100)\n"
    "  --per-ip N              probes at once per address (default 2)\n"
    "  --rate N                new connections per second, whole run\n"
    "                          (default 100; 0 = no limit)\n"
    "  --retry-delay SEC       retry a 421 or reset once after SEC (default 10)\n"
    "  --no-retry              never retry\n"
    "  --no-dedupe             probe every (domain, address) afresh\n"
    "  --versions              also find which protocol versions each address\n"
    "                          accepts (up to 4 more connections per address;\n"
    "                          on for 'check', --no-versions turns it off)\n"
    "\n"
    "Policy (the \"policy\" object of each record; see README):\n"
    "  --dane                  look up TLSA records (RFC 7672): needs a\n"
    "                          DNSSEC-validating resolver (AD bit)\n"
    "  --mta-sts               fetch MTA-STS policies (RFC 8461) over HTTPS\n"
    "                          (both are on for 'check': --no-dane,\n"
    "                          --no-mta-sts turn them off)\n"
    "  --postfix-policy FILE   write smtp_tls_policy_maps lines: each domain\n"
    "                          at its recommended level, with a comment why\n"
    "  --min-level L           lowest level worth a line (default encrypt);\n"
    "                          weaker domains become comments\n"
    "  --secure-match LIST     match list for 'secure' (default\n"
    "                          nexthop:dot-nexthop, Postfix's default)\n"
    "\n"
    "Probe options, as for 'probe': --port N, --ca-file FILE, --ehlo NAME,\n"
    "--trust-store NAME=FILE, --intermediates FILE,\n"
    "--connect-timeout, --greeting-timeout, --command-timeout, --tls-timeout,\n"
    "--refuse-private, --debug.\n"
    "\n"
    "Exit status: 0 when every domain got its record (whatever it says),\n"
    "1 on a fatal error, 2 on bad usage.\n"
    "\n"
    "Examples:\n"
    "  starttls-scan scan example.com example.net | jq .status\n"
    "  starttls-scan scan -i domains.txt -o results.ndjson --summary sum.json\n"
    "  starttls-scan scan -i domains.txt -o results.ndjson --resume\n";

static const char usage_probe[] =
    "usage: starttls-scan probe HOST[:PORT] [OPTIONS]\n"
    "\n"
    "Connects to HOST (port 25 by default), reads the greeting, sends EHLO\n"
    "(HELO if EHLO is refused), STARTTLS, performs the TLS handshake (TLS 1.2\n"
    "or 1.3), sends EHLO again inside TLS and QUITs. Never sends MAIL, RCPT or\n"
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
    "  --ehlo NAME             name sent in EHLO/HELO (default: this machine's\n"
    "                          fully qualified name; use one that resolves)\n"
    "  --domain DOMAIN         recipient domain, for tls.names.recipient_domain\n"
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

static int usage_error(const char *cmd, const char *fmt, const char *arg) {
  fprintf(stderr, "starttls-scan%s%s: ", cmd ? " " : "", cmd ? cmd : "");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (try 'starttls-scan help%s%s')\n", cmd ? " " : "",
          cmd ? cmd : "");
  return EXIT_USAGE;
}

static int parse_port(const char *s) {
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
      return (o->port = parse_port(close + 2)) < 0 ? -1 : 0;
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
  if (colon && (o->port = parse_port(colon + 1)) < 0)
    return -1;
  return 0;
}

/* The machine's fully qualified name, as Postfix's myhostname: the host
 * name, completed by the resolver's canonical name when it has no dot.
 * Called once before any loop runs, so the lookup may block. Servers may
 * refuse a HELO name that is not a FQDN (reject_non_fqdn_helo_hostname),
 * so say so when none can be found. */
static void default_ehlo(char *buf, size_t len, int warn) {
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

/* Options of every command that probes (probe, scan, check): trust, EHLO
 * name, per-step timeouts, --versions, the private-address guard, debug
 * logging. One table, one handler. */
enum {
  OPT_C_CA = 1000, OPT_C_STORE, OPT_C_INTER, OPT_C_EHLO, OPT_C_CT, OPT_C_GT,
  OPT_C_XT, OPT_C_TT, OPT_C_VERSIONS, OPT_C_REFUSE, OPT_C_DEBUG
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
      {"refuse-private", no_argument, NULL, OPT_C_REFUSE},                     \
      {"debug", no_argument, NULL, OPT_C_DEBUG}

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
static int probe_common_opt(int c, const char *arg, const char *cmd,
                            probe_common_t *pc) {
  int64_t *tmo;
  switch (c) {
  case OPT_C_CA: *pc->ca_file = arg; return 1;
  case OPT_C_STORE:
    if (*pc->n_trust_stores >= STLS_MAX_STORE_OPTS) {
      usage_error(cmd, "%s", "at most 15 --trust-store options");
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
    usage_error(cmd, "bad timeout '%s' (seconds, e.g. 10 or 0.5)", arg);
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
  pc = (probe_common_t){&o.cfg,           &o.ca_file,       o.trust_stores,
                        &o.n_trust_stores, &o.intermediates, &o.ehlo};
  o.port = 25;
  while ((c = stls_cli_getopt(&cli, argc, argv)) != -1) {
    switch (c) {
    case STLS_CLI_VERSION: stls_cli_print_version(stdout); return 0;
    case STLS_CLI_USAGE: return EXIT_USAGE;
    case OPT_IP: ip_opt = optarg; break;
    case 'p':
      if ((port_opt = parse_port(optarg)) < 0)
        return usage_error("probe", "bad port '%s'", optarg);
      break;
    case '4': o.family = 4; break;
    case '6': o.family = 6; break;
    case OPT_DOMAIN: o.domain = optarg; break;
    case 'h': fputs(usage_probe, stdout); return 0;
    default:
      switch (probe_common_opt(c, optarg, "probe", &pc)) {
      case 1: break;
      case 0:
        return usage_error("probe", "unknown option or missing argument: '%s'",
                           argv[optind - 1]);
      default: return EXIT_USAGE;
      }
    }
  }
  if (optind != argc - 1)
    return usage_error("probe", "%s", optind >= argc
                                          ? "missing HOST"
                                          : "exactly one HOST expected");
  if (parse_target(argv[optind], &o) != 0)
    return usage_error("probe", "bad HOST[:PORT] '%s'", argv[optind]);
  if (port_opt > 0)
    o.port = port_opt;
  if (ip_opt) {
    if (!is_ipv4(ip_opt) && !is_ipv6(ip_opt))
      return usage_error("probe", "--ip wants an IPv4 or IPv6 address, not '%s'",
                         ip_opt);
    stls_strlcpy(o.ip, ip_opt, sizeof(o.ip));
  } else if (is_ipv4(o.host) || is_ipv6(o.host)) {
    stls_strlcpy(o.ip, o.host, sizeof(o.ip));
  }
  if (!o.ehlo) {
    default_ehlo(ehlo_buf, sizeof(ehlo_buf), 1);
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
    hints.ai_family = o.family == 4 ? AF_INET : o.family == 6 ? AF_INET6
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

static int parse_uint(const char *s, unsigned min, unsigned max,
                      unsigned *out) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || *s == '-' || v < min || v > max)
    return -1;
  *out = (unsigned)v;
  return 0;
}

typedef struct check_state_s {
  int level;   /* --level, or -1 */
  int json;    /* --json */
  int verdict; /* exit status decided from the record */
  int seen;
} check_state_t;

static const char *host_tls_desc(const stls_host_result_t *r, char *buf,
                                  size_t len) {
  if (!r->tls_done && !r->tls_legacy)
    snprintf(buf, len, "-");
  else
    snprintf(buf, len, "%s %s", r->tls.version, r->tls.cipher_name);
  return buf;
}

/* The human report of `check`; called once with the domain's record. */
static void check_report_cb(const stls_domain_record_t *d, void *arg) {
  check_state_t *st = arg;
  const stls_dns_result_t *dns = d->dns;
  char buf[200];

  st->seen = 1;
  printf("%s: %s\n", d->domain, d->status);
  if (d->input_error)
    printf("  %s\n", d->input_error);
  if (dns && dns->error.code)
    printf("  DNS: %s (%s)\n", dns->error.message, dns->error.code);
  if (dns && dns->null_mx)
    printf("  null MX (RFC 7505): this domain accepts no mail\n");
  if (dns && dns->implicit_mx)
    printf("  no MX records: the domain itself is the mail server\n");
  if (dns && dns->status == STLS_DNS_OK)
    printf("  DNSSEC: MX records %s\n",
           dns->mx_secure ? "validated (AD)" : "not validated");
  for (size_t i = 0; dns && i < dns->nmx; i++) {
    const stls_dns_mx_t *m = &dns->mx[i];
    printf("  MX %u %s%s%s", m->preference, m->host,
           m->is_cname ? " (a CNAME!)" : "",
           m->is_ip_literal ? " (an IP literal!)" : "");
    if (m->naddrs == 0)
      printf(": %s", m->error.message ? m->error.message : "no address");
    if (d->tlsa && d->tlsa[i]) {
      const stls_dns_tlsa_result_t *t = d->tlsa[i];
      printf("; TLSA: %zu record(s)%s", t->nrr,
             t->secure ? ", validated" : ", not validated");
    }
    printf("\n");
  }
  if (d->sts) {
    const stls_sts_result_t *sr = d->sts;
    printf("  MTA-STS: %s", stls_sts_status_name(sr->status));
    if (sr->status == STLS_STS_OK)
      printf(", mode %s, %zu mx pattern(s)", stls_sts_mode_name(sr->policy.mode),
             sr->policy.nmx);
    else if (sr->error.code[0])
      printf(" (%s: %s)", sr->error.code, sr->error.message);
    printf("\n");
  }
  if (d->n_hosts)
    printf("\n  %-28s %-26s %-22s %-44s %-10s %s\n", "MX", "ADDRESS", "SMTP",
           "TLS", "CHAIN", "NAMES MX");
  for (size_t i = 0; i < d->n_hosts; i++) {
    const stls_host_result_t *r = &d->hosts[i].res;
    const char *chain = !r->tls_done && !r->tls_legacy ? "-"
                        : r->tls.trusted     ? "trusted"
                        : r->tls.expired     ? "expired"
                                             : "untrusted";
    printf("  %-28s %-26s %-22s %-44s %-10s %s\n", r->mx, r->ip,
           stls_host_status_name(r->status),
           host_tls_desc(r, buf, sizeof(buf)), chain,
           !r->tls_done && !r->tls_legacy ? "-"
           : r->tls.name_mx                ? "yes"
                                           : "no");
    if (r->error.set)
      printf("      %s: %s (%s)\n", stls_stage_name(r->error.stage),
             r->error.message, r->error.code);
    if ((r->tls_done || r->tls_legacy) && r->tls.handshake_seen) {
      const char *g = stls_tls_group_name(r->tls.group);
      const char *sg = stls_tls_sigalg_name(r->tls.sigalg);
      printf("      key exchange %s, server signature %s\n", g ? g : "-",
             sg ? sg : "-");
    }
    if (d->hosts[i].dane_state)
      printf("      DANE: TLSA %s%s%s%s\n", d->hosts[i].dane_state,
             d->hosts[i].dane_checked
                 ? (d->hosts[i].dane_matched ? ", matched " : ", no match")
                 : "",
             d->hosts[i].dane_checked && d->hosts[i].dane_matched
                 ? d->hosts[i].dane_rr
                 : "",
             d->hosts[i].dane_result_type && !d->hosts[i].dane_matched
                 ? " (tlsa-invalid or chain)"
                 : "");
    if (r->versions_probed) {
      printf("      versions:");
      for (unsigned v = STLS_VER_COUNT; v-- > 0;)
        printf(" %s %s", stls_version_label(v),
               r->versions[v].accepted < 0   ? "?"
               : r->versions[v].accepted > 0 ? "yes"
                                              : "no");
      printf("\n");
    }
    for (size_t f = 0; f < r->n_findings; f++)
      printf("      finding %s: %s\n", r->findings[f].id,
             r->findings[f].message);
  }
  if (d->policy) {
    const stls_policy_t *p = d->policy;
    printf("\n  Postfix smtp_tls_security_level and MTA-STS verdicts:\n");
    for (int l = 0; l < STLS_LEVEL_COUNT; l++) {
      const stls_verdict_t *v = &p->v[l];
      printf("  %-8s %-4s %-9s %s", l == STLS_LEVEL_MTA_STS ? "mta-sts"
                                    : stls_level_name((stls_level_t)l),
             v->pass ? "pass" : "FAIL",
             v->pass && !v->all_hosts ? "(partial)" : "",
             v->result_type ? v->result_type : "");
      for (size_t k = 0; k < v->failing.n && k < 3; k++)
        printf("%s%s", k ? ", " : " on ", v->failing.v[k]);
      if (v->failing.n > 3)
        printf(" and %zu more", v->failing.n - 3);
      printf("\n           %s\n", v->note);
    }
    if (p->unreachable.n)
      printf("  unreachable (no SMTP session at any level): %zu address(es)\n",
             p->unreachable.n);
    printf("\n  recommended: %s\n",
           p->recommended >= 0
               ? stls_level_name((stls_level_t)p->recommended)
               : "none: no level passes on every reachable address");
  }
  fflush(stdout);

  /* Exit status. */
  if (!strcmp(d->status, "invalid-domain") || !strcmp(d->status, "dns-error"))
    st->verdict = 2;
  else if (st->level < 0)
    st->verdict = 0;
  else if (!d->policy)
    st->verdict = 1; /* nxdomain, null MX, no address: no delivery */
  else
    st->verdict = d->policy->v[st->level].pass ? 0 : 1;
  if (st->json) {
    cJSON *rec = stls_json_domain(d);
    if (rec)
      stls_json_write_line(stdout, rec);
    cJSON_Delete(rec);
  }
}

static int cmd_scan(int argc, char **argv, int check) {
  enum {
    OPT_RESUME = 256,
    OPT_SHARD, OPT_SUMMARY, OPT_RESOLVER, OPT_IPV6, OPT_MAXMX, OPT_MAXADDR,
    OPT_PERIP, OPT_RATE, OPT_RETRY, OPT_NORETRY, OPT_NODEDUPE, OPT_PFPOL,
    OPT_MINLEVEL, OPT_SECMATCH, OPT_LEVEL, OPT_JSON, OPT_DNSTMO, OPT_DNSTRIES,
    OPT_DANE, OPT_NODANE, OPT_STS, OPT_NOSTS, OPT_NOVERSIONS
  };
  static const struct option longopts[] = {
      {"input", required_argument, NULL, 'i'},
      {"output", required_argument, NULL, 'o'},
      {"resume", no_argument, NULL, OPT_RESUME},
      {"shard", required_argument, NULL, OPT_SHARD},
      {"summary", required_argument, NULL, OPT_SUMMARY},
      {"quiet", no_argument, NULL, 'q'},
      {"resolver", required_argument, NULL, OPT_RESOLVER},
      {"ipv6", required_argument, NULL, OPT_IPV6},
      {"dns-timeout", required_argument, NULL, OPT_DNSTMO},
      {"dane", no_argument, NULL, OPT_DANE},
      {"no-versions", no_argument, NULL, OPT_NOVERSIONS},
      {"no-dane", no_argument, NULL, OPT_NODANE},
      {"mta-sts", no_argument, NULL, OPT_STS},
      {"no-mta-sts", no_argument, NULL, OPT_NOSTS},
      {"dns-tries", required_argument, NULL, OPT_DNSTRIES},
      {"max-mx", required_argument, NULL, OPT_MAXMX},
      {"max-addrs", required_argument, NULL, OPT_MAXADDR},
      {"workers", required_argument, NULL, 'w'},
      {"concurrency", required_argument, NULL, 'c'},
      {"per-ip", required_argument, NULL, OPT_PERIP},
      {"rate", required_argument, NULL, OPT_RATE},
      {"retry-delay", required_argument, NULL, OPT_RETRY},
      {"no-retry", no_argument, NULL, OPT_NORETRY},
      {"no-dedupe", no_argument, NULL, OPT_NODEDUPE},
      {"postfix-policy", required_argument, NULL, OPT_PFPOL},
      {"min-level", required_argument, NULL, OPT_MINLEVEL},
      {"secure-match", required_argument, NULL, OPT_SECMATCH},
      {"level", required_argument, NULL, OPT_LEVEL},
      {"json", no_argument, NULL, OPT_JSON},
      {"port", required_argument, NULL, 'p'},
      PROBE_COMMON_LONGOPTS,
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  stls_scan_opts_t o;
  char ehlo_buf[256], resolvers[1024] = "";
  int c, only4 = 0, only6 = 0;
  probe_common_t pc;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  const char *cmd = check ? "check" : "scan";
  check_state_t cs = {-1, 0, 2, 0};
  stls_cli_t cli = {cmd, "i:o:qw:c:p:46h", longopts, 0};

  stls_scan_opts_defaults(&o);
  pc = (probe_common_t){&o.probe,           &o.ca_file,       o.trust_stores,
                        &o.n_trust_stores, &o.intermediates, &o.probe.ehlo_name};
  o.workers = ncpu > 0 ? (unsigned)ncpu : 1;
  /* A pre-flight check wants every verdict; a batch scan pays for the
   * TLSA lookups and HTTPS fetches only when asked. */
  o.dane = o.mta_sts = check;
  o.probe.versions = check;
  while ((c = stls_cli_getopt(&cli, argc, argv)) != -1) {
    switch (c) {
    case STLS_CLI_VERSION: stls_cli_print_version(stdout); return 0;
    case STLS_CLI_USAGE: return EXIT_USAGE;
    case 'i': o.input = optarg; break;
    case 'o': o.output = optarg; break;
    case OPT_RESUME: o.resume = true; break;
    case OPT_SUMMARY: o.summary_file = optarg; break;
    case 'q': o.quiet = true; break;
    case OPT_SHARD: {
      unsigned k, n;
      char extra;
      if (sscanf(optarg, "%u/%u%c", &k, &n, &extra) != 2 || n < 1 ||
          n > 100000 || k < 1 || k > n)
        return usage_error(cmd, "bad --shard '%s' (K/N with 1 <= K <= N)",
                           optarg);
      o.shard_k = k;
      o.shard_n = n;
      break;
    }
    case OPT_RESOLVER: {
      char why[160];
      if (stls_dns_servers_check(optarg, why, sizeof(why)) != 0) {
        fprintf(stderr, "starttls-scan %s: bad --resolver %s (ADDR, ADDR:PORT, "
                "[IPv6]:PORT) (try 'starttls-scan help %s')\n", cmd, why, cmd);
        return EXIT_USAGE;
      }
      if (strlen(resolvers) + strlen(optarg) + 2 > sizeof(resolvers))
        return usage_error(cmd, "%s", "too many --resolver options");
      if (resolvers[0])
        strcat(resolvers, ",");
      strcat(resolvers, optarg);
      break;
    }
    case OPT_IPV6:
      if (!strcmp(optarg, "auto"))
        o.ipv6_mode = STLS_IPV6_AUTO;
      else if (!strcmp(optarg, "on"))
        o.ipv6_mode = STLS_IPV6_ON;
      else if (!strcmp(optarg, "off"))
        o.ipv6_mode = STLS_IPV6_OFF;
      else
        return usage_error(cmd, "--ipv6 wants auto, on or off, not '%s'",
                           optarg);
      break;
    case OPT_DANE: o.dane = true; break;
    case OPT_NOVERSIONS: o.probe.versions = 0; break;
    case OPT_NODANE: o.dane = false; break;
    case OPT_STS: o.mta_sts = true; break;
    case OPT_NOSTS: o.mta_sts = false; break;
    case OPT_DNSTMO: {
      int64_t ms = stls_parse_seconds_ms(optarg);
      if (ms < 1 || ms > 60000)
        return usage_error(cmd, "bad --dns-timeout '%s' (seconds, up to 60)",
                           optarg);
      o.dns_timeout_ms = (unsigned)ms;
      break;
    }
    case OPT_DNSTRIES:
      if (parse_uint(optarg, 1, 10, &o.dns_tries))
        return usage_error(cmd, "bad --dns-tries '%s' (1..10)", optarg);
      break;
    case OPT_MAXMX:
      if (parse_uint(optarg, 1, 100, &o.max_mx))
        return usage_error(cmd, "bad --max-mx '%s' (1..100)", optarg);
      break;
    case OPT_MAXADDR:
      if (parse_uint(optarg, 1, 100, &o.max_addrs))
        return usage_error(cmd, "bad --max-addrs '%s' (1..100)", optarg);
      break;
    case 'w':
      if (parse_uint(optarg, 1, 256, &o.workers))
        return usage_error(cmd, "bad --workers '%s' (1..256)", optarg);
      break;
    case 'c':
      if (parse_uint(optarg, 1, 100000, &o.concurrency))
        return usage_error(cmd, "bad --concurrency '%s' (1..100000)",
                           optarg);
      break;
    case OPT_PERIP:
      if (parse_uint(optarg, 1, 1000, &o.per_ip))
        return usage_error(cmd, "bad --per-ip '%s' (1..1000)", optarg);
      break;
    case OPT_RATE: {
      char *end;
      o.rate = strtod(optarg, &end);
      if (!*optarg || *end || o.rate < 0 || o.rate > 1e6)
        return usage_error(cmd, "bad --rate '%s' (connections/s, 0 = no "
                           "limit)", optarg);
      break;
    }
    case OPT_RETRY:
      if ((o.retry_delay_ms = stls_parse_seconds_ms(optarg)) < 0)
        return usage_error(cmd, "bad --retry-delay '%s' (seconds)", optarg);
      break;
    case OPT_NORETRY: o.retry_delay_ms = -1; break;
    case OPT_NODEDUPE: o.dedupe = false; break;
    case OPT_PFPOL: o.postfix_policy = optarg; break;
    case OPT_MINLEVEL:
      o.min_level = stls_level_parse(optarg);
      if (o.min_level < 0 || o.min_level == STLS_LEVEL_MTA_STS)
        return usage_error(cmd, "--min-level wants may, encrypt, dane, "
                           "verify or secure, not '%s'", optarg);
      break;
    case OPT_SECMATCH: o.policy.secure_match = optarg; break;
    case OPT_LEVEL:
      if (!check || (cs.level = stls_level_parse(optarg)) < 0)
        return usage_error(cmd, check ? "--level wants may, encrypt, dane, "
                                        "verify, secure or mta-sts, not '%s'"
                                      : "--level is for 'check' ('%s')",
                           optarg);
      break;
    case OPT_JSON:
      if (!check)
        return usage_error(cmd, "%s", "--json is for 'check'");
      cs.json = 1;
      break;
    case 'p': {
      int port = parse_port(optarg);
      if (port < 0)
        return usage_error(cmd, "bad port '%s'", optarg);
      o.probe.port = port;
      break;
    }
    case '4': only4 = 1; break;
    case '6': only6 = 1; break;
    case 'h': fputs(check ? usage_check : usage_scan, stdout); return 0;
    default:
      switch (probe_common_opt(c, optarg, cmd, &pc)) {
      case 1: break;
      case 0:
        return usage_error(cmd, "unknown option or missing argument: '%s'",
                           argv[optind - 1]);
      default: return EXIT_USAGE;
      }
    }
  }
  if (only4 && only6)
    return usage_error(cmd, "%s", "-4 and -6 exclude each other");
  o.want_ipv4 = !only6;
  o.want_ipv6 = !only4;
  o.domains = argv + optind;
  o.n_domains = (size_t)(argc - optind);
  if (check) {
    if (o.n_domains != 1 || o.input || o.output || o.resume)
      return usage_error(cmd, "%s", "exactly one DOMAIN (no -i, -o, --resume)");
    o.quiet = true;
    o.on_record = check_report_cb;
    o.on_record_arg = &cs;
  }
  if (!o.input && o.n_domains == 0)
    return usage_error(cmd, "%s", "no domains: give DOMAIN... or -i FILE");
  if (o.resume && !o.output)
    return usage_error(cmd, "%s", "--resume needs -o FILE");
  if (resolvers[0])
    o.resolvers = resolvers;
  if (!o.probe.ehlo_name) {
    /* scan keeps stderr for progress and the summary, which names it. */
    default_ehlo(ehlo_buf, sizeof(ehlo_buf), 0);
    o.probe.ehlo_name = ehlo_buf;
  }
  {
    int rc = stls_scan_run(&o);
    if (!check)
      return rc;
    if (rc != 0)
      return 2;
    return cs.seen ? cs.verdict : 2;
  }
}

/* The usage text of a command, or NULL when there is no such command. */
static const char *usage_of(const char *cmd) {
  if (!strcmp(cmd, "probe"))
    return usage_probe;
  if (!strcmp(cmd, "scan"))
    return usage_scan;
  if (!strcmp(cmd, "check"))
    return usage_check;
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
      return usage_error(NULL, "version: unexpected argument '%s'",
                         argv[optind]);
    stls_cli_print_version(stdout);
    return 0;
  }
  if (optind + 1 < argc)
    return usage_error(NULL, "help: one COMMAND at most, not also '%s'",
                       argv[optind + 1]);
  text = optind < argc ? usage_of(argv[optind]) : usage_main;
  if (!text)
    return usage_error(NULL, "help: no command '%s' (probe, scan, check, serve, ingest)",
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
    return cmd_scan(argc - 1, argv + 1, !strcmp(cmd, "check"));
  if (!strcmp(cmd, "serve"))
    return stls_cmd_serve(argc - 1, argv + 1);
  if (!strcmp(cmd, "ingest"))
    return stls_cmd_ingest(argc - 1, argv + 1);
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version"))
    return cmd_simple(argc - 1, argv + 1, 0);
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
    return cmd_simple(argc - 1, argv + 1, 1);
  return usage_error(NULL, "unknown command '%s'", cmd);
}
