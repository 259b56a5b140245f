/* The `scan` and `check` front ends on the scan engine: targets in
 * (input.c, on a reader thread), records out (writer.c, on this thread's
 * loop), progress, summary, signals. */
#include "frontend.h"
#include "stls/cli.h"
#include "stls/dns.h"
#include "stls/engine.h"
#include "stls/hello.h"
#include "stls/input.h"
#include "stls/policy.h"
#include "stls/record.h"
#include "stls/sts.h"
#include "stls/tls.h"
#include "stls/util.h"
#include "stls/writer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

const char stls__usage_check[] =
    "usage: starttls-scan check DOMAIN [--level LEVEL] [--json] [OPTIONS]\n"
    "\n"
    "Scans one recipient domain like 'scan' and prints a report for people:\n"
    "every MX address with what it did, then the verdict for each Postfix\n"
    "smtp_tls_security_level (may, encrypt, dane, verify, secure) and for\n"
    "MTA-STS, the recommended level and its smtp_tls_policy_maps line.\n"
    "\n"
    "  --level LEVEL   may | encrypt | dane | verify | secure | mta-sts:\n"
    "                  exit 0 if mail would be delivered at LEVEL, 1 if not\n"
    "  --json          print the JSON record after the report\n"
    "\n"
    "Exit status: 0 (report printed; or LEVEL passes), 1 (LEVEL fails, or\n"
    "the domain takes no mail: nxdomain, null MX, no address), 2 (bad\n"
    "usage, invalid domain name, DNS failure).\n"
    "All 'scan' options apply (--ca-file, --ehlo, --resolver, timeouts, "
    "-4/-6,\n"
    "--ipv6, --secure-match, ...).\n"
    "\n"
    "Example:\n"
    "  starttls-scan check example.com --level verify && echo safe to "
    "enforce\n";

const char stls__usage_scan[] =
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
    "  -i, --input FILE        domains, one per line ('-' = stdin); '#' "
    "starts\n"
    "                          a comment; blank lines are ignored; a bad line\n"
    "                          becomes an invalid-domain record. Without\n"
    "                          DOMAIN... or -i, domains are read from stdin\n"
    "                          when it is not a terminal\n"
    "  -o, --output FILE       write records to FILE ('-' or default: stdout)\n"
    "  --resume                with -o: skip domains already in FILE, append\n"
    "                          the rest (a torn last line is cut off first)\n"
    "  --shard K/N             scan only shard K (1..N) of N; shards split "
    "any\n"
    "                          list the same way on every machine\n"
    "  --summary FILE          write the run summary as JSON to FILE ('-' =\n"
    "                          stdout)\n"
    "  --prom-file FILE        write the run summary as a Prometheus textfile\n"
    "                          (node exporter textfile collector), atomically\n"
    "  -q, --quiet             no progress and no summary on stderr\n"
    "\n"
    "DNS:\n"
    "  --resolver ADDR[:PORT]  ask this server (repeatable; IPv6 as "
    "[v6]:port;\n"
    "                          an address, not a name);\n"
    "                          default: /etc/resolv.conf\n"
    "  -4, -6                  only IPv4 / only IPv6 addresses\n"
    "  --ipv6 auto|on|off      auto (default): ask the kernel per address; "
    "one\n"
    "                          it has no route to is network-unreachable\n"
    "                          (ENETUNREACH, as Postfix meets it) and is not\n"
    "                          connected to; on: always connect; off: IPv6\n"
    "                          addresses are 'skipped' (not tested)\n"
    "  --dns-timeout SEC       per query and try (default 2)\n"
    "  --dns-tries N           tries per server (default 2)\n"
    "  --max-mx N              MX hosts per domain (default 10)\n"
    "  --max-addrs N           addresses per MX host (default 10)\n"
    "\n"
    "Politeness and speed:\n"
    "  -w, --workers N         worker threads (default: one per CPU)\n"
    "  -c, --concurrency N     probes at once, whole run (default 100)\n"
    "  --per-ip N              probes at once per address (default 2)\n"
    "  --rate N                new connections per second, whole run, all\n"
    "                          workers together (default 100; 0 = no limit);\n"
    "                          the progress line and summary say when it,\n"
    "                          not the network, set the pace\n"
    "  --retry-delay SEC       retry a 421 or reset once after SEC (default "
    "10)\n"
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
    "  --postfix-policy FILE   write smtp_tls_policy_maps lines ('-' =\n"
    "                          stdout): each domain\n"
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
    "Signals: the first SIGINT or SIGTERM stops taking domains, lets the\n"
    "probes in flight finish (within their timeouts), writes their records\n"
    "and the summary; a second one exits at once. Records are whole lines\n"
    "either way, and --resume continues the run.\n"
    "\n"
    "Exit status: 0 when every domain got its record (whatever it says),\n"
    "1 on a fatal error, 2 on bad usage, 130/143 after SIGINT/SIGTERM.\n"
    "\n"
    "Examples:\n"
    "  starttls-scan scan example.com example.net | jq .status\n"
    "  starttls-scan scan -i domains.txt -o results.ndjson --summary sum.json\n"
    "  starttls-scan scan -i domains.txt -o results.ndjson --resume\n";

typedef struct check_state_s {
  int level;   /* --level, or -1 */
  int json;    /* --json */
  int verdict; /* exit status decided from the record */
  int seen;
} check_state_t;

typedef struct scan_fe_s {
  const char *cmd;
  int check;
  stls_engine_cfg_t cfg;
  /* targets and outputs */
  char **domains;
  size_t n_domains;
  const char *input, *output, *summary_file, *prom_file, *postfix_policy;
  bool resume, quiet;
  unsigned shard_k, shard_n;
  int min_level;
  check_state_t cs;
  /* run */
  uv_loop_t loop;
  stls_engine_t *eng;
  uv_async_t wake;
  uv_signal_t sigint, sigterm;
  uv_timer_t tick;
  uv_thread_t reader;
  bool reader_started, finished;
  atomic_int reader_done;
  volatile int stop;
  int reader_rc;
  char reader_err[300];
  FILE *in, *out, *policy_out;
  stls_strmap_t *resume_set;
  stls_input_counts_t counts;
  stls_summary_t sum;
  stls_run_opts_t ropts;
  char run_id[48];
  int write_error;
  int signo;
  bool progress;
  uint64_t total_hint;
  int64_t t0, last_progress;
} scan_fe_t;

/* ---- check's report ----------------------------------------------------- */

static const char *host_tls_desc(const stls_host_result_t *r, char *buf,
                                 size_t len) {
  if (!r->tls_done && !r->tls_legacy)
    snprintf(buf, len, "-");
  else
    snprintf(buf, len, "%s %s", r->tls.version, r->tls.cipher_name);
  return buf;
}

/* The human report of `check`; called once with the domain's record. */
static void check_report(scan_fe_t *fe, const stls_domain_record_t *d) {
  check_state_t *st = &fe->cs;
  const stls_dns_result_t *dns = d->dns;
  char buf[1200];

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
      printf(", mode %s, %zu mx pattern(s)",
             stls_sts_mode_name(sr->policy.mode), sr->policy.nmx);
    else if (sr->error.code[0])
      printf(" (%s: %s)", sr->error.code, sr->error.message);
    printf("\n");
  }
  if (d->n_hosts)
    printf("\n  %-28s %-26s %-22s %-44s %-10s %s\n", "MX", "ADDRESS", "SMTP",
           "TLS", "CHAIN", "NAMES MX");
  for (size_t i = 0; i < d->n_hosts; i++) {
    const stls_domain_host_t *dh = &d->hosts[i];
    const stls_host_result_t *r = &dh->res;
    const char *chain = !r->tls_done && !r->tls_legacy ? "-"
                        : r->tls.trusted               ? "trusted"
                        : r->tls.expired               ? "expired"
                                                       : "untrusted";
    printf("  %-28s %-26s %-22s %-44s %-10s %s\n", r->mx, r->ip,
           stls_host_status_name(r->status), host_tls_desc(r, buf, sizeof(buf)),
           chain,
           !r->tls_done && !r->tls_legacy ? "-"
           : r->tls.name_mx               ? "yes"
                                          : "no");
    if (r->error.set) {
      char code[48];
      printf("      %s: %s (%s)\n", stls_stage_name(r->error.stage),
             r->error.message, stls_error_code(&r->error, code, sizeof(code)));
    }
    if ((r->tls_done || r->tls_legacy) && r->tls.handshake_seen) {
      const char *g = stls_tls_group_name(r->tls.group);
      const char *sg = stls_tls_sigalg_name(r->tls.sigalg);
      printf("      key exchange %s, server signature %s\n", g ? g : "-",
             sg ? sg : "-");
    }
    if (dh->dane_state)
      printf("      DANE: TLSA %s%s%s%s\n", dh->dane_state,
             dh->dane_checked ? (dh->dane_matched ? ", matched " : ", no match")
                              : "",
             dh->dane_checked && dh->dane_matched ? dh->dane_rr : "",
             dh->dane_result_type && !dh->dane_matched
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
      printf("  %-8s %-4s %-9s %s",
             l == STLS_LEVEL_MTA_STS ? "mta-sts"
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
    stls_policy_map_line(d->domain, p, &fe->cfg.policy, STLS_LEVEL_ENCRYPT, buf,
                         sizeof(buf));
    printf("  smtp_tls_policy_maps:\n");
    for (char *line = buf, *nl; *line; line = nl) {
      nl = strchr(line, '\n');
      nl = nl ? nl + 1 : line + strlen(line);
      printf("    %.*s", (int)(nl - line), line);
    }
  }
  fflush(stdout);

  /* Exit status. */
  if (!strcmp(d->status, "invalid-domain") || !strcmp(d->status, "dns-error")) {
    st->verdict = 2;
    fprintf(stderr, "starttls-scan check: %s: %s (%s)\n", d->domain, d->status,
            d->input_error                    ? d->input_error
            : d->dns && d->dns->error.message ? d->dns->error.message
                                              : "no answer");
  } else if (st->level < 0) {
    st->verdict = 0;
  } else if (!d->policy) {
    st->verdict = 1; /* nxdomain, null MX, no address: no delivery */
  } else {
    st->verdict = d->policy->v[st->level].pass ? 0 : 1;
  }
  if (st->json) {
    cJSON *rec = stls_json_domain(d);
    if (rec)
      stls_json_write_line(stdout, rec);
    cJSON_Delete(rec);
  }
}

/* ---- the run ------------------------------------------------------------ */

static void close_walk_cb(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static uint64_t not_ok(const stls_summary_t *s) {
  uint64_t n = 0;
  for (size_t i = 0; i < s->domain_status.n; i++)
    if (strcmp(s->domain_status.v[i].key, "ok") != 0)
      n += s->domain_status.v[i].n;
  return n;
}

static void progress(scan_fe_t *fe, bool final) {
  int64_t now = stls_now_ms();
  stls_engine_stats_t st;
  if (!fe->progress || (!final && now - fe->last_progress < 500))
    return;
  fe->last_progress = now;
  if (fe->eng) {
    stls_engine_stats(fe->eng, &st);
    fe->sum.rate_wait_ms = st.rate_wait_ms;
  }
  fe->sum.duration_ms = now - fe->t0;
  stls_progress_print(stderr, fe->sum.domains, fe->total_hint,
                      (double)(now - fe->t0) / 1000.0, not_ok(&fe->sum),
                      stls_summary_rate_bound(&fe->sum), final);
}

/* Everything submitted has its record (or the run was stopped and the
 * domains in flight are done): tear down so the loop ends. */
static void maybe_finish(scan_fe_t *fe) {
  stls_engine_stats_t st;
  if (fe->finished || !fe->eng)
    return;
  if (!atomic_load(&fe->reader_done) && !fe->signo)
    return;
  if (stls_engine_pending(fe->eng) != 0)
    return;
  fe->finished = true;
  stls_engine_stats(fe->eng, &st);
  fe->sum.rate_wait_ms = st.rate_wait_ms;
  fe->sum.local_retries = st.local_retries;
  if (!atomic_load(&fe->reader_done))
    return; /* a reader blocked on its input: the caller exits at once */
  if (fe->reader_started)
    uv_thread_join(&fe->reader);
  fe->reader_started = false;
  stls_engine_free(fe->eng);
  fe->eng = NULL;
  uv_walk(&fe->loop, close_walk_cb, NULL);
}

static void record_cb(stls_engine_t *e, const stls_domain_record_t *rec,
                      void *tag, void *arg) {
  scan_fe_t *fe = arg;
  stls_domain_record_t d = *rec;
  (void)e;
  (void)tag;
  d.run_id = fe->run_id;
  if (fe->check)
    check_report(fe, &d);
  if (fe->out) {
    cJSON *j = stls_json_domain(&d);
    if (!j || stls_json_write_line(fe->out, j) != 0)
      fe->write_error = errno ? errno : ENOMEM;
    cJSON_Delete(j);
  }
  if (fe->policy_out) {
    char line[1200];
    if (d.policy)
      stls_policy_map_line(d.domain, d.policy, &fe->cfg.policy, fe->min_level,
                           line, sizeof(line));
    else
      snprintf(line, sizeof(line), "# %s: no verdict (%s)\n", d.domain,
               d.status);
    if (fputs(line, fe->policy_out) == EOF || fflush(fe->policy_out) == EOF)
      fe->write_error = errno ? errno : EIO;
  }
  stls_summary_add_record(&fe->sum, &d);
  progress(fe, false);
  maybe_finish(fe);
}

static int sink_domain(void *arg, const char *name) {
  scan_fe_t *fe = arg;
  return stls_engine_submit_wait(fe->eng, name, NULL) == 0 ? 0 : -1;
}

static int sink_invalid(void *arg, const char *raw, const char *why) {
  scan_fe_t *fe = arg;
  return stls_engine_submit_invalid(fe->eng, raw, why, NULL) == 0 ? 0 : -1;
}

/* The reader thread: blocking reads are fine here; the engine's bounded
 * queue is the back-pressure. */
static void reader_main(void *arg) {
  scan_fe_t *fe = arg;
  stls_input_opts_t io = {fe->shard_k, fe->shard_n, fe->resume_set, &fe->stop};
  stls_input_sink_t sink = {sink_domain, sink_invalid, fe};
  int rc = 0;
  if (fe->in) {
    rc = stls_input_read(fe->in, &io, &sink, &fe->counts, fe->reader_err,
                         sizeof(fe->reader_err));
  }
  for (size_t i = 0; rc == 0 && i < fe->n_domains; i++)
    if (stls_input_take_arg(fe->domains[i], &io, &sink, &fe->counts) != 0)
      rc = -2;
  fe->reader_rc = rc == -2 && fe->stop ? 0 : rc;
  if (rc == -2 && !fe->stop)
    snprintf(fe->reader_err, sizeof(fe->reader_err), "out of memory");
  atomic_store(&fe->reader_done, 1);
  uv_async_send(&fe->wake);
}

static void wake_cb(uv_async_t *a) { maybe_finish(a->data); }

static void tick_cb(uv_timer_t *t) { progress(t->data, false); }

static void signal_cb(uv_signal_t *h, int signo) {
  scan_fe_t *fe = h->data;
  if (fe->signo) {
    /* Second signal: at once. Records are written whole by this thread,
     * so what is in the file is whole lines. */
    if (fe->out)
      fflush(fe->out);
    if (fe->policy_out)
      fflush(fe->policy_out);
    _exit(128 + signo);
  }
  fe->signo = signo;
  fe->stop = 1;
  if (!fe->quiet)
    fprintf(stderr,
            "%sstarttls-scan %s: %s: finishing the domains in flight "
            "(again to quit at once)\n",
            fe->progress ? "\n" : "", fe->cmd, strsignal(signo));
  stls_engine_stop(fe->eng, NULL, NULL);
  maybe_finish(fe);
}

/* Same file? (Only when both exist; "-" is never a file here.) */
static bool same_file(const char *a, const char *b) {
  struct stat sa, sb;
  if (!a || !b || !strcmp(a, "-") || !strcmp(b, "-"))
    return false;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

/* Raise the descriptor limit to the hard limit; lower the concurrency
 * when even that is short, so that no probe fails for want of a socket. */
static void fit_fd_limit(scan_fe_t *fe) {
  struct rlimit rl;
  stls_scan_limits_t *l = &fe->cfg.limits;
  uint64_t per_worker = 16, spare = 64, need, sts;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      getrlimit(RLIMIT_NOFILE, &rl);
  }
  /* MTA-STS fetches hold a socket per domain in flight. */
  sts = fe->cfg.mta_sts ? (uint64_t)l->concurrency * 2 + 8 * l->workers : 0;
  need = l->concurrency + sts + per_worker * l->workers + spare;
  if (rl.rlim_cur == RLIM_INFINITY || need <= rl.rlim_cur)
    return;
  {
    uint64_t room = rl.rlim_cur > per_worker * l->workers + spare
                        ? rl.rlim_cur - per_worker * l->workers - spare
                        : 1;
    unsigned c = (unsigned)(fe->cfg.mta_sts ? room / 3 : room);
    if (c < 1)
      c = 1;
    fprintf(stderr,
            "starttls-scan %s: warning: -c %u needs about %llu file "
            "descriptors but the limit is %llu (ulimit -n); using -c %u\n",
            fe->cmd, l->concurrency, (unsigned long long)need,
            (unsigned long long)rl.rlim_cur, c);
    l->concurrency = c;
  }
}

static void make_run_id(char *buf, size_t len) {
  unsigned char rnd[4] = {0};
  char ts[32], hex[9];
  time_t now = time(NULL);
  struct tm tm;
  FILE *f = fopen("/dev/urandom", "rb");
  if (f) {
    if (fread(rnd, 1, sizeof(rnd), f) != sizeof(rnd))
      memset(rnd, 0, sizeof(rnd));
    fclose(f);
  }
  if (!rnd[0] && !rnd[1] && !rnd[2] && !rnd[3]) {
    uint64_t x = (uint64_t)stls_now_ms() ^ ((uint64_t)getpid() << 20);
    memcpy(rnd, &x, sizeof(rnd));
  }
  gmtime_r(&now, &tm);
  strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
  stls_hex(rnd, sizeof(rnd), hex);
  snprintf(buf, len, "%s-%s", ts, hex);
}

static void fill_run_opts(scan_fe_t *fe) {
  const stls_engine_cfg_t *c = &fe->cfg;
  stls_run_opts_t *r = &fe->ropts;
  r->workers = c->limits.workers;
  r->concurrency = c->limits.concurrency;
  r->per_ip = c->limits.per_ip;
  r->rate = c->limits.rate;
  r->retry_delay_ms = c->limits.retry_delay_ms;
  r->dedupe = c->dedupe;
  r->want_ipv4 = c->want_ipv4;
  r->want_ipv6 = c->want_ipv6;
  r->dane = c->dane;
  r->mta_sts = c->mta_sts;
  r->versions = c->probe.versions != 0;
  r->ipv6_mode = c->ipv6_mode == STLS_IPV6_ON    ? "on"
                 : c->ipv6_mode == STLS_IPV6_OFF ? "off"
                                                 : "auto";
  r->port = c->probe.port;
  r->max_mx = c->limits.max_mx;
  r->max_addrs = c->limits.max_addrs;
  r->dns_timeout_ms = c->limits.dns_timeout_ms;
  r->dns_tries = c->limits.dns_tries;
  r->connect_timeout_ms = c->probe.connect_timeout_ms;
  r->greeting_timeout_ms = c->probe.greeting_timeout_ms;
  r->command_timeout_ms = c->probe.command_timeout_ms;
  r->tls_timeout_ms = c->probe.tls_timeout_ms;
  r->resolvers = c->resolvers;
  r->ca_file = c->ca_file;
  r->secure_match = c->policy.secure_match;
  r->shard_k = fe->shard_k;
  r->shard_n = fe->shard_n;
  fe->sum.opts = r;
  fe->sum.run_id = fe->run_id;
}

/* Open the outputs; 0, or an exit status. */
static int open_outputs(scan_fe_t *fe) {
  const char *cmd = fe->cmd;
  if (fe->output && strcmp(fe->output, "-") != 0) {
    fe->out = fopen(fe->output, fe->resume ? "a" : "w");
    if (!fe->out) {
      fprintf(stderr, "starttls-scan %s: cannot write %s: %s\n", cmd,
              fe->output, strerror(errno));
      return 1;
    }
  } else if (!fe->check) {
    fe->out = stdout;
  }
  if (fe->postfix_policy) {
    bool to_stdout = strcmp(fe->postfix_policy, "-") == 0;
    fe->policy_out =
        to_stdout ? stdout : fopen(fe->postfix_policy, fe->resume ? "a" : "w");
    if (!fe->policy_out) {
      fprintf(stderr, "starttls-scan %s: cannot write %s: %s\n", cmd,
              fe->postfix_policy, strerror(errno));
      return 1;
    }
    if (!fe->resume || to_stdout)
      fprintf(fe->policy_out,
              "# smtp_tls_policy_maps generated by starttls-scan %s\n"
              "# Verdicts assume Postfix defaults: smtp_mx_address_limit=%u,\n"
              "# smtp_balance_inet_protocols=yes, secure match=%s.\n"
              "# Levels below %s stay at the default and are listed as "
              "comments.\n",
              STLS_VERSION, fe->cfg.policy.mx_address_limit,
              fe->cfg.policy.secure_match,
              stls_level_name((stls_level_t)fe->min_level));
  }
  return 0;
}

static int close_file(scan_fe_t *fe, FILE *f, const char *name) {
  if (!f || f == stdout)
    return f && fflush(f) != 0 ? 1 : 0;
  if (fclose(f) != 0) {
    fprintf(stderr, "starttls-scan %s: closing %s failed: %s\n", fe->cmd, name,
            strerror(errno));
    return 1;
  }
  return 0;
}

/* Run the engine over the targets; returns the exit status. */
static int scan_run(scan_fe_t *fe) {
  char err[300];
  int rc = 0;
  uint64_t resumed = 0;

  make_run_id(fe->run_id, sizeof(fe->run_id));
  fill_run_opts(fe);
  fe->t0 = stls_now_ms();
  fe->sum.started_at = time(NULL);
  fe->sum.ehlo_name = fe->cfg.probe.ehlo_name;
  if (fe->resume) {
    fe->resume_set = stls_strmap_new();
    if (!fe->resume_set) {
      fprintf(stderr, "starttls-scan %s: out of memory\n", fe->cmd);
      return 1;
    }
    rc = stls_resume_load(fe->output, fe->resume_set, &resumed, err,
                          sizeof(err));
    if (rc != 0) {
      fprintf(stderr, "starttls-scan %s: --resume: %s\n", fe->cmd, err);
      rc = rc == -2 ? EXIT_USAGE : 1;
      goto out;
    }
  }
  if (fe->input) {
    struct stat st;
    fe->in = strcmp(fe->input, "-") == 0 ? stdin : fopen(fe->input, "r");
    if (fe->in && fstat(fileno(fe->in), &st) == 0 && S_ISDIR(st.st_mode)) {
      fclose(fe->in);
      fe->in = NULL;
      errno = EISDIR;
    }
    if (!fe->in) {
      fprintf(stderr, "starttls-scan %s: cannot read %s: %s\n", fe->cmd,
              fe->input, strerror(errno));
      rc = 1;
      goto out;
    }
  }
  if ((rc = open_outputs(fe)) != 0)
    goto out;
  fe->progress = !fe->quiet && isatty(STDERR_FILENO);
  if (fe->progress && fe->input && strcmp(fe->input, "-") != 0) {
    struct stat st;
    if (stat(fe->input, &st) == 0 && S_ISREG(st.st_mode))
      fe->total_hint = stls_input_count_lines(fe->input);
    fe->total_hint = fe->total_hint > resumed ? fe->total_hint - resumed : 0;
  } else if (fe->progress) {
    fe->total_hint = fe->n_domains;
  }
  fit_fd_limit(fe);
  fe->ropts.concurrency = fe->cfg.limits.concurrency;

  uv_loop_init(&fe->loop);
  if (stls_engine_new(&fe->eng, &fe->loop, &fe->cfg, record_cb, fe, err,
                      sizeof(err)) != 0) {
    fprintf(stderr, "starttls-scan %s: %s\n", fe->cmd, err);
    uv_run(&fe->loop, UV_RUN_DEFAULT);
    uv_loop_close(&fe->loop);
    rc = 1;
    goto out;
  }
  uv_async_init(&fe->loop, &fe->wake, wake_cb);
  fe->wake.data = fe;
  uv_signal_init(&fe->loop, &fe->sigint);
  uv_signal_init(&fe->loop, &fe->sigterm);
  fe->sigint.data = fe->sigterm.data = fe;
  uv_signal_start(&fe->sigint, signal_cb, SIGINT);
  uv_signal_start(&fe->sigterm, signal_cb, SIGTERM);
  uv_timer_init(&fe->loop, &fe->tick);
  fe->tick.data = fe;
  if (fe->progress)
    uv_timer_start(&fe->tick, tick_cb, 1000, 1000);
  if (uv_thread_create(&fe->reader, reader_main, fe) != 0) {
    fprintf(stderr, "starttls-scan %s: cannot start the reader thread\n",
            fe->cmd);
    fe->reader_rc = -1;
    atomic_store(&fe->reader_done, 1);
    rc = 1;
  } else {
    fe->reader_started = true;
  }
  maybe_finish(fe);
  uv_run(&fe->loop, UV_RUN_DEFAULT);

  fe->sum.interrupted = fe->signo != 0;
  fe->sum.input_lines = fe->counts.lines;
  fe->sum.input_invalid = fe->counts.invalid;
  fe->sum.resumed_skipped = fe->counts.resumed_skipped;
  fe->sum.shard_skipped = fe->counts.shard_skipped;
  fe->sum.finished_at = time(NULL);
  fe->sum.duration_ms = stls_now_ms() - fe->t0;
  if (fe->progress && fe->sum.domains)
    progress(fe, true);
  if (fe->reader_rc == -1) {
    fprintf(stderr, "starttls-scan %s: error reading %s: %s\n", fe->cmd,
            fe->input ? fe->input : "the domains", fe->reader_err);
    rc = 1;
  }
  if (fe->write_error) {
    fprintf(stderr, "starttls-scan %s: writing results failed: %s\n", fe->cmd,
            strerror(fe->write_error));
    rc = 1;
  }
  if (!fe->quiet)
    stls_summary_print(stderr, &fe->sum);
  if (fe->summary_file &&
      stls_summary_write_json(fe->summary_file, &fe->sum) != 0) {
    fprintf(stderr, "starttls-scan %s: cannot write summary %s\n", fe->cmd,
            fe->summary_file);
    rc = 1;
  }
  if (fe->prom_file && stls_summary_write_prom(fe->prom_file, &fe->sum) != 0) {
    fprintf(stderr, "starttls-scan %s: cannot write %s\n", fe->cmd,
            fe->prom_file);
    rc = 1;
  }
  if (fe->signo && rc == 0)
    rc = 128 + fe->signo;
  if (fe->eng) {
    /* The reader is blocked on its input (a terminal or a pipe that
     * stays open): everything is written; leave without waiting. */
    fflush(NULL);
    _exit(rc);
  }
  uv_loop_close(&fe->loop);
out:
  if (close_file(fe, fe->policy_out, fe->postfix_policy) != 0 && rc == 0)
    rc = 1;
  if (close_file(fe, fe->out, fe->output) != 0 && rc == 0)
    rc = 1;
  if (fe->in && fe->in != stdin)
    fclose(fe->in);
  stls_strmap_free(fe->resume_set);
  return rc;
}

int stls__cmd_scan(int argc, char **argv, int check) {
  enum {
    OPT_RESUME = 256,
    OPT_SHARD,
    OPT_SUMMARY,
    OPT_RESOLVER,
    OPT_IPV6,
    OPT_MAXMX,
    OPT_MAXADDR,
    OPT_PERIP,
    OPT_RATE,
    OPT_RETRY,
    OPT_NORETRY,
    OPT_NODEDUPE,
    OPT_PFPOL,
    OPT_MINLEVEL,
    OPT_SECMATCH,
    OPT_LEVEL,
    OPT_JSON,
    OPT_DNSTMO,
    OPT_DNSTRIES,
    OPT_DANE,
    OPT_NODANE,
    OPT_STS,
    OPT_NOSTS,
    OPT_NOVERSIONS,
    OPT_PROM
  };
  static const struct option longopts[] = {
      {"input", required_argument, NULL, 'i'},
      {"output", required_argument, NULL, 'o'},
      {"resume", no_argument, NULL, OPT_RESUME},
      {"shard", required_argument, NULL, OPT_SHARD},
      {"summary", required_argument, NULL, OPT_SUMMARY},
      {"prom-file", required_argument, NULL, OPT_PROM},
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
  scan_fe_t *fe = calloc(1, sizeof(*fe));
  stls_engine_cfg_t *o;
  char ehlo_buf[256], resolvers[1024] = "";
  int c, only4 = 0, only6 = 0, rc;
  probe_common_t pc;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  const char *cmd = check ? "check" : "scan";

  if (!fe) {
    fprintf(stderr, "starttls-scan %s: out of memory\n", cmd);
    return 1;
  }
  o = &fe->cfg;
  fe->cmd = cmd;
  fe->check = check;
  fe->cs = (check_state_t){-1, 0, 2, 0};
  fe->min_level = STLS_LEVEL_ENCRYPT;
  stls_engine_cfg_defaults(o);
  pc = (probe_common_t){&o->probe,         &o->ca_file,
                        o->trust_stores,   &o->n_trust_stores,
                        &o->intermediates, &o->probe.ehlo_name};
  o->limits.workers = ncpu > 0 ? (unsigned)ncpu : 1;
  /* A pre-flight check wants every verdict; a batch scan pays for the
   * TLSA lookups and HTTPS fetches only when asked. */
  o->dane = o->mta_sts = check;
  o->probe.versions = check;
  stls_cli_t cli = {cmd, "i:o:qw:c:p:46h", longopts, 0};
  rc = -1;
  while (rc < 0 && (c = stls_cli_getopt(&cli, argc, argv)) != -1) {
    switch (c) {
    case STLS_CLI_VERSION:
      stls_cli_print_version(stdout);
      rc = 0;
      break;
    case STLS_CLI_USAGE: rc = EXIT_USAGE; break;
    case 'i': fe->input = optarg; break;
    case 'o': fe->output = optarg; break;
    case OPT_RESUME: fe->resume = true; break;
    case OPT_SUMMARY: fe->summary_file = optarg; break;
    case OPT_PROM: fe->prom_file = optarg; break;
    case 'q': fe->quiet = true; break;
    case OPT_SHARD: {
      unsigned k = 0, n = 0;
      char extra;
      if (sscanf(optarg, "%u/%u%c", &k, &n, &extra) != 2 || n < 1 ||
          n > 100000 || k < 1 || k > n)
        rc = stls__usage_error(cmd, "bad --shard '%s' (K/N with 1 <= K <= N)",
                               optarg);
      fe->shard_k = k;
      fe->shard_n = n;
      break;
    }
    case OPT_RESOLVER: {
      char why[160];
      if (stls_dns_servers_check(optarg, why, sizeof(why)) != 0) {
        fprintf(stderr,
                "starttls-scan %s: bad --resolver %s (ADDR, ADDR:PORT, "
                "[IPv6]:PORT) (try 'starttls-scan help %s')\n",
                cmd, why, cmd);
        rc = EXIT_USAGE;
        break;
      }
      if (strlen(resolvers) + strlen(optarg) + 2 > sizeof(resolvers)) {
        rc = stls__usage_error(cmd, "%s", "too many --resolver options");
        break;
      }
      if (resolvers[0])
        strcat(resolvers, ",");
      strcat(resolvers, optarg);
      break;
    }
    case OPT_IPV6:
      if (!strcmp(optarg, "auto"))
        o->ipv6_mode = STLS_IPV6_AUTO;
      else if (!strcmp(optarg, "on"))
        o->ipv6_mode = STLS_IPV6_ON;
      else if (!strcmp(optarg, "off"))
        o->ipv6_mode = STLS_IPV6_OFF;
      else
        rc = stls__usage_error(cmd, "--ipv6 wants auto, on or off, not '%s'",
                               optarg);
      break;
    case OPT_DANE: o->dane = true; break;
    case OPT_NOVERSIONS: o->probe.versions = 0; break;
    case OPT_NODANE: o->dane = false; break;
    case OPT_STS: o->mta_sts = true; break;
    case OPT_NOSTS: o->mta_sts = false; break;
    case OPT_DNSTMO: {
      int64_t ms = stls_parse_seconds_ms(optarg);
      if (ms < 1 || ms > 60000)
        rc = stls__usage_error(
            cmd, "bad --dns-timeout '%s' (seconds, up to 60)", optarg);
      o->limits.dns_timeout_ms = (unsigned)ms;
      break;
    }
    case OPT_DNSTRIES:
      if (stls__parse_uint(optarg, 1, 10, &o->limits.dns_tries))
        rc = stls__usage_error(cmd, "bad --dns-tries '%s' (1..10)", optarg);
      break;
    case OPT_MAXMX:
      if (stls__parse_uint(optarg, 1, 100, &o->limits.max_mx))
        rc = stls__usage_error(cmd, "bad --max-mx '%s' (1..100)", optarg);
      break;
    case OPT_MAXADDR:
      if (stls__parse_uint(optarg, 1, 100, &o->limits.max_addrs))
        rc = stls__usage_error(cmd, "bad --max-addrs '%s' (1..100)", optarg);
      break;
    case 'w':
      if (stls__parse_uint(optarg, 1, 256, &o->limits.workers))
        rc = stls__usage_error(cmd, "bad --workers '%s' (1..256)", optarg);
      break;
    case 'c':
      if (stls__parse_uint(optarg, 1, 100000, &o->limits.concurrency))
        rc = stls__usage_error(cmd, "bad --concurrency '%s' (1..100000)",
                               optarg);
      break;
    case OPT_PERIP:
      if (stls__parse_uint(optarg, 1, 1000, &o->limits.per_ip))
        rc = stls__usage_error(cmd, "bad --per-ip '%s' (1..1000)", optarg);
      break;
    case OPT_RATE: {
      char *end;
      o->limits.rate = strtod(optarg, &end);
      if (!*optarg || *end || !(o->limits.rate >= 0) || o->limits.rate > 1e6)
        rc = stls__usage_error(
            cmd, "bad --rate '%s' (connections/s, 0 = no limit)", optarg);
      break;
    }
    case OPT_RETRY:
      if ((o->limits.retry_delay_ms = stls_parse_seconds_ms(optarg)) < 0)
        rc = stls__usage_error(cmd, "bad --retry-delay '%s' (seconds)", optarg);
      break;
    case OPT_NORETRY: o->limits.retry_delay_ms = -1; break;
    case OPT_NODEDUPE: o->dedupe = false; break;
    case OPT_PFPOL: fe->postfix_policy = optarg; break;
    case OPT_MINLEVEL:
      fe->min_level = stls_level_parse(optarg);
      if (fe->min_level < 0 || fe->min_level == STLS_LEVEL_MTA_STS)
        rc = stls__usage_error(cmd,
                               "--min-level wants may, encrypt, dane, "
                               "verify or secure, not '%s'",
                               optarg);
      break;
    case OPT_SECMATCH: o->policy.secure_match = optarg; break;
    case OPT_LEVEL:
      if (!check || (fe->cs.level = stls_level_parse(optarg)) < 0)
        rc = stls__usage_error(cmd,
                               check ? "--level wants may, encrypt, dane, "
                                       "verify, secure or mta-sts, not '%s'"
                                     : "--level is for 'check' ('%s')",
                               optarg);
      break;
    case OPT_JSON:
      if (!check)
        rc = stls__usage_error(cmd, "%s", "--json is for 'check'");
      fe->cs.json = 1;
      break;
    case 'p': {
      int port = stls__parse_port(optarg);
      if (port < 0)
        rc = stls__usage_error(cmd, "bad port '%s'", optarg);
      o->probe.port = port;
      break;
    }
    case '4': only4 = 1; break;
    case '6': only6 = 1; break;
    case 'h':
      fputs(check ? stls__usage_check : stls__usage_scan, stdout);
      rc = 0;
      break;
    default:
      switch (stls__probe_common_opt(c, optarg, cmd, &pc)) {
      case 1: break;
      case 0:
        rc = stls__usage_error(cmd, "unknown option or missing argument: '%s'",
                               argv[optind - 1]);
        break;
      default: rc = EXIT_USAGE; break;
      }
    }
  }
  if (rc >= 0)
    goto done;
  rc = EXIT_USAGE;
  if (only4 && only6) {
    stls__usage_error(cmd, "%s", "-4 and -6 exclude each other");
    goto done;
  }
  o->want_ipv4 = !only6;
  o->want_ipv6 = !only4;
  fe->domains = argv + optind;
  fe->n_domains = (size_t)(argc - optind);
  if (check) {
    if (fe->n_domains != 1 || fe->input || fe->output || fe->resume) {
      stls__usage_error(cmd, "%s", "exactly one DOMAIN (no -i, -o, --resume)");
      goto done;
    }
    fe->quiet = true;
  }
  if (!fe->input && fe->n_domains == 0) {
    if (isatty(STDIN_FILENO)) {
      stls__usage_error(cmd, "%s",
                        "no domains: give DOMAIN..., -i FILE, or pipe a "
                        "list to stdin");
      goto done;
    }
    fe->input = "-";
  }
  if (fe->resume && (!fe->output || !strcmp(fe->output, "-"))) {
    stls__usage_error(cmd, "%s", "--resume needs -o FILE");
    goto done;
  }
  {
    /* Never write over the input (or one output over another). */
    const char *outs[] = {fe->output, fe->summary_file, fe->prom_file,
                          fe->postfix_policy};
    const char *names[] = {"-o", "--summary", "--prom-file",
                           "--postfix-policy"};
    for (size_t i = 0; i < 4; i++) {
      if (outs[i] && fe->input &&
          (same_file(fe->input, outs[i]) || !strcmp(fe->input, outs[i])) &&
          strcmp(outs[i], "-") != 0) {
        fprintf(stderr,
                "starttls-scan %s: %s %s is the input file: refusing to "
                "write over it\n",
                cmd, names[i], outs[i]);
        goto done;
      }
      for (size_t k = i + 1; k < 4; k++)
        if (outs[i] && outs[k] &&
            (same_file(outs[i], outs[k]) || !strcmp(outs[i], outs[k])) &&
            strcmp(outs[i], "-") != 0) {
          fprintf(stderr, "starttls-scan %s: %s and %s name the same file %s\n",
                  cmd, names[i], names[k], outs[i]);
          goto done;
        }
    }
  }
  if (resolvers[0])
    o->resolvers = resolvers;
  if (!o->probe.ehlo_name) {
    /* scan keeps stderr for progress and the summary, which names it. */
    stls__default_ehlo(ehlo_buf, sizeof(ehlo_buf), 0);
    o->probe.ehlo_name = ehlo_buf;
  }
  rc = scan_run(fe);
  if (check)
    rc = rc != 0 && rc < 128 ? 2
         : rc >= 128         ? rc
         : fe->cs.seen       ? fe->cs.verdict
                             : 2;
done:
  free(fe);
  return rc;
}
