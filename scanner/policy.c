/* Policy verdicts, the way Postfix's SMTP client decides. See policy.h.
 *
 * Model (Postfix 3.x defaults; README.md and docs/output.md say the same):
 * - Addresses are tried in MX preference order. Postfix shuffles equal
 *   preferences, so the verdict assumes the worst order (failing addresses
 *   first within a preference).
 * - At most smtp_mx_address_limit = 5 addresses are tried, after
 *   smtp_balance_inet_protocols = yes has given each address family its
 *   share; refused and unreachable addresses count against the limit.
 * - smtp_mx_session_limit (2) decides nothing here: it ignores sessions that
 *   fail EHLO or the TLS handshake (TLS verification failures included), and
 *   a session that passes delivers.
 * - A TLS failure is a soft error: Postfix moves on to the next address, so
 *   a domain passes a level when some address within the limit passes.
 * - At "may" a failed handshake is retried in clear text (on a later
 *   delivery attempt), so any address with an SMTP session delivers, if
 *   late.
 */
#include "stls/policy.h"
#include "stls/dane.h"
#include "stls/record.h"
#include "stls/util.h"
#include "stls/cert.h"
#include "stls/names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const level_names[] = {
#define XX(name, json) json,
    STLS_LEVEL_MAP(XX)
#undef XX
};

const char *stls_level_name(stls_level_t l) {
  return (unsigned)l < STLS_LEVEL_COUNT ? level_names[l] : "unknown";
}

int stls_level_parse(const char *s) {
  for (int i = 0; i < STLS_LEVEL_COUNT; i++)
    if (strcmp(s, level_names[i]) == 0 ||
        (i == STLS_LEVEL_MTA_STS && strcmp(s, "mta-sts") == 0))
      return i;
  return -1;
}

void stls_policy_opts_defaults(stls_policy_opts_t *o) {
  o->mx_address_limit = 5;
  o->secure_match = STLS_SECURE_CERT_MATCH;
}

/* ---- per-address outcomes --------------------------------------------- */

typedef struct outcome_s {
  bool pass;
  bool session;            /* an SMTP session (EHLO) took place */
  bool skip;               /* not tried at all (e.g. no IPv6 route) */
  const char *result_type; /* RFC 8460, when failing */
  bool untested;           /* skip: a limit of this client, see below */
} outcome_t;

static outcome_t out_pass(void) {
  return (outcome_t){true, true, false, NULL, false};
}
static outcome_t out_fail(const char *rt) {
  return (outcome_t){false, true, false, rt, false};
}
static outcome_t out_nosession(const char *rt) {
  return (outcome_t){false, false, false, rt, false};
}

/* The session got as far as a handshake this client cannot finish for a
 * reason of its own, not the server's: a Certificate message larger than
 * mbedTLS receives (OpenSSL, so Postfix, takes it). Whether Postfix would
 * deliver at a TLS level is then unknown: the address is left out of the
 * verdict and listed as untested, never counted as failing. */
static bool client_limited(const stls_host_result_t *r) {
  return r->status == STLS_HOST_HANDSHAKE_ERROR &&
         r->error.cause == STLS_CAUSE_CERT_MESSAGE_TOO_LARGE;
}

static outcome_t out_untested(void) {
  return (outcome_t){false, true, true, NULL, true};
}

static outcome_t lvl_may(const stls_host_result_t *r) {
  if (r->status == STLS_HOST_SKIPPED)
    return (outcome_t){false, false, true, NULL, false};
  return r->ehlo_done ? out_pass() : out_nosession(NULL);
}

static outcome_t lvl_encrypt(const stls_host_result_t *r) {
  outcome_t m = lvl_may(r);
  if (!m.pass)
    return m;
  if (r->status == STLS_HOST_SUCCESS && r->tls_done)
    return out_pass();
  /* A TLS 1.0/1.1-only server: Postfix's defaults (smtp_tls_protocols
   * >=TLSv1, OpenSSL security level 0 below verify) complete that
   * handshake, mbedTLS cannot. */
  if (r->tls_legacy)
    return out_pass();
  if (!r->starttls_offered || r->status == STLS_HOST_STARTTLS_REJECTED)
    return out_fail("starttls-not-supported");
  if (client_limited(r))
    return out_untested();
  return out_fail("validation-failure");
}

static outcome_t lvl_certified(const stls_host_result_t *r, bool name_ok) {
  outcome_t e = lvl_encrypt(r);
  if (!e.pass)
    return e;
  /* From verify up Postfix runs OpenSSL at security level 1, which refuses
   * the MD5+SHA-1 handshake signature of TLS 1.0/1.1: no session at all. */
  if (r->tls_legacy)
    return out_fail("validation-failure");
  if (!r->tls.trusted) {
    const char *rt = stls_cert_trust_result_type(&r->tls);
    return out_fail(rt ? rt : "certificate-not-trusted");
  }
  if (!name_ok)
    return out_fail("certificate-host-mismatch");
  return out_pass();
}

static const stls_cert_t *leaf_of(const stls_host_result_t *r) {
  return r->tls_done && r->tls.n_chain > 0 ? &r->tls.chain[0] : NULL;
}

static outcome_t host_outcome(stls_level_t lvl, const stls_policy_input_t *in,
                              const stls_policy_opts_t *o,
                              const stls_policy_host_t *h) {
  const stls_host_result_t *r = h->res;
  const stls_cert_t *leaf = leaf_of(r);
  switch (lvl) {
  case STLS_LEVEL_MAY: return lvl_may(r);
  case STLS_LEVEL_ENCRYPT: return lvl_encrypt(r);
  case STLS_LEVEL_VERIFY:
    /* smtp_tls_verify_cert_match = hostname: the MX name from DNS. */
    return lvl_certified(
        r, stls_name_cert_matches_list(leaf, "hostname", in->domain, r->mx));
  case STLS_LEVEL_SECURE:
    return lvl_certified(r, stls_name_cert_matches_list(leaf, o->secure_match,
                                                        in->domain, r->mx));
  case STLS_LEVEL_DANE:
    /* RFC 7672 as Postfix applies it: without DNSSEC-validated MX
     * records, or without TLSA, "dane" acts as "may"; with TLSA records
     * that are all unusable, as "encrypt". A failed TLSA lookup defers
     * that host without connecting. */
    if (!in->mx_secure)
      return lvl_may(r);
    switch (h->dane) {
    case STLS_DANE_USABLE: {
      outcome_t e = lvl_encrypt(r);
      if (!e.pass)
        return e;
      if (r->tls_legacy) /* as for verify: security level 1 */
        return out_fail("validation-failure");
      return h->dane_match ? out_pass()
                           : out_fail(h->dane_result_type ? h->dane_result_type
                                                          : "tlsa-invalid");
    }
    case STLS_DANE_UNUSABLE: return lvl_encrypt(r);
    case STLS_DANE_LOOKUP_FAILED:
      if (r->status == STLS_HOST_SKIPPED)
        return (outcome_t){false, false, true, NULL, false};
      return out_nosession("dnssec-invalid");
    default: return lvl_may(r);
    }
  case STLS_LEVEL_MTA_STS:
    /* Only called for an enforced (or tested) policy: the MX must match
     * a pattern, and the chain must be WebPKI-valid for the MX name. */
    if (r->status == STLS_HOST_SKIPPED)
      return (outcome_t){false, false, true, NULL, false};
    if (!h->sts_mx_match)
      return out_nosession("validation-failure");
    return lvl_certified(r, r->tls.name_mx);
  default: return lvl_may(r);
  }
}

static int add_host_name(stls_strlist_t *l, const stls_host_result_t *r) {
  char buf[400];
  snprintf(buf, sizeof(buf), "%s[%s]", r->mx, r->ip);
  return stls_strlist_push(l, buf);
}

/* Walk the addresses in the worst order Postfix may pick. */
static int judge(stls_level_t lvl, const stls_policy_input_t *in,
                 const stls_policy_opts_t *o, stls_verdict_t *v) {
  size_t n = in->n_hosts, reachable = 0, passing = 0, k = 0;
  outcome_t *oc = calloc(n ? n : 1, sizeof(*oc));
  size_t *order = calloc(n ? n : 1, sizeof(*order));
  int rc = 0;

  if (!oc || !order) {
    free(oc);
    free(order);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    oc[i] = host_outcome(lvl, in, o, &in->hosts[i]);

  /* hosts[] is in MX preference order: within each preference group put
   * the failures first. */
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && in->hosts[j].preference == in->hosts[i].preference)
      j++;
    for (size_t x = i; x < j; x++)
      if (!oc[x].pass)
        order[k++] = x;
    for (size_t x = i; x < j; x++)
      if (oc[x].pass)
        order[k++] = x;
    i = j;
  }

  /* Drop the addresses Postfix never tries: first each family's surplus
   * (smtp_balance_inet_protocols), then everything past the limit. */
  {
    size_t m = 0, n4 = 0, n6 = 0, q4, q6, lim = o->mx_address_limit;
    for (size_t q = 0; q < k; q++)
      if (!oc[order[q]].skip)
        order[m++] = order[q];
    k = m;
    for (size_t q = 0; q < k; q++)
      *(in->hosts[order[q]].res->family == 6 ? &n6 : &n4) += 1;
    if (lim && n4 && n6 && n4 + n6 > lim) {
      if (n6 <= lim / 2) {
        q6 = n6;
        q4 = lim - n6;
      } else if (n4 <= lim / 2) {
        q4 = n4;
        q6 = lim - n4;
      } else {
        q4 = (lim + (in->hosts[order[0]].res->family == 4)) / 2;
        q6 = lim - q4;
      }
      m = 0;
      for (size_t q = 0; q < k; q++) {
        size_t *quota = in->hosts[order[q]].res->family == 6 ? &q6 : &q4;
        if (*quota > 0) {
          (*quota)--;
          order[m++] = order[q];
        }
      }
      k = m;
    }
    if (lim && k > lim)
      k = lim;
  }

  v->pass = false;
  v->result_type = NULL;
  v->tested = false;
  for (size_t i = 0; i < n; i++)
    v->tested |= !oc[i].skip;
  for (size_t q = 0; q < k; q++) {
    const outcome_t *c = &oc[order[q]];
    if (c->pass) {
      v->pass = true;
      break;
    }
    if (!v->result_type && c->result_type)
      v->result_type = c->result_type;
  }

  for (size_t i = 0; i < n; i++) {
    if (oc[i].untested && add_host_name(&v->untested, in->hosts[i].res) != 0)
      rc = -1;
    if (oc[i].skip)
      continue;
    if (oc[i].pass) {
      reachable++;
      passing++;
    } else if (oc[i].session || oc[i].result_type) {
      reachable++;
      if (!v->result_type)
        v->result_type = oc[i].result_type;
      if (add_host_name(&v->failing, in->hosts[i].res) != 0)
        rc = -1;
    }
  }
  /* An untested address may fail: "every address passes" cannot be
   * claimed. */
  v->all_hosts =
      v->pass && reachable > 0 && passing == reachable && v->untested.n == 0;
  if (v->pass)
    v->result_type = v->all_hosts ? NULL : v->result_type;
  free(oc);
  free(order);
  return rc;
}

int stls_policy_evaluate(const stls_policy_input_t *in,
                         const stls_policy_opts_t *o, stls_policy_t *out) {
  stls_verdict_t *v = out->v;
  bool any_usable = false;
  memset(out, 0, sizeof(*out));
  out->recommended = -1;

  for (size_t i = 0; i < in->n_hosts; i++) {
    const stls_host_result_t *r = in->hosts[i].res;
    if (in->hosts[i].dane == STLS_DANE_USABLE)
      any_usable = true;
    if (r->status != STLS_HOST_SKIPPED && !r->ehlo_done &&
        add_host_name(&out->unreachable, r) != 0)
      goto nomem;
  }

  for (int l = 0; l < STLS_LEVEL_COUNT; l++) {
    if (l == STLS_LEVEL_MTA_STS &&
        !(in->sts == STLS_POLICY_STS_OK && in->sts_mode != STLS_STS_MODE_NONE))
      continue; /* decided below */
    if (judge((stls_level_t)l, in, o, &v[l]) != 0)
      goto nomem;
    v[l].applies = true;
  }

  /* DANE applies only with DNSSEC-validated MX and usable TLSA. */
  v[STLS_LEVEL_DANE].applies = in->mx_secure && any_usable;
  if (!in->mx_secure) {
    bool checked = in->dane_checked;
    for (size_t i = 0; i < in->n_hosts; i++)
      checked |= in->hosts[i].dane != STLS_DANE_NOT_CHECKED;
    snprintf(v[STLS_LEVEL_DANE].note, sizeof(v[0].note), "%s",
             checked ? "MX records are not DNSSEC-validated: dane acts as may"
                     : "DANE not checked (--dane): dane acts as may");
  } else if (!any_usable) {
    snprintf(v[STLS_LEVEL_DANE].note, sizeof(v[0].note),
             "no usable TLSA records: dane acts as may (or encrypt where "
             "all TLSA records are unusable)");
  } else {
    snprintf(v[STLS_LEVEL_DANE].note, sizeof(v[0].note),
             "TLSA records published: the chain must match them");
  }

  /* MTA-STS (RFC 8461): only an enforced policy can stop delivery; a
   * policy that cannot be fetched counts as none (RFC 8461 5.1). */
  {
    stls_verdict_t *s = &v[STLS_LEVEL_MTA_STS];
    const stls_verdict_t *may = &v[STLS_LEVEL_MAY];
    if (in->sts == STLS_POLICY_STS_OK &&
        in->sts_mode == STLS_STS_MODE_ENFORCE) {
      snprintf(s->note, sizeof(s->note),
               "policy in enforce mode: MX must match and chains must be "
               "WebPKI-valid for the MX name");
    } else if (in->sts == STLS_POLICY_STS_OK &&
               in->sts_mode == STLS_STS_MODE_TESTING) {
      /* Report what enforce would do, but testing mode delivers. */
      s->applies = true;
      s->tested = may->tested;
      snprintf(s->note, sizeof(s->note),
               "policy in testing mode: delivered anyway; failing lists "
               "what enforce would refuse");
      s->pass = may->pass;
    } else {
      s->pass = may->pass;
      s->all_hosts = may->all_hosts;
      s->tested = may->tested;
      s->applies = false;
      if (stls_strlist_copy(&s->failing, &may->failing) != 0)
        goto nomem;
      if (in->sts == STLS_POLICY_STS_FAILED)
        s->result_type = in->sts_result_type;
      snprintf(s->note, sizeof(s->note), "%s",
               in->sts == STLS_POLICY_STS_NOT_CHECKED
                   ? "MTA-STS not checked (--mta-sts): no policy applied"
               : in->sts == STLS_POLICY_STS_NONE ? "no MTA-STS policy published"
               : in->sts == STLS_POLICY_STS_FAILED
                   ? "MTA-STS policy unusable: senders deliver as without it"
                   : "MTA-STS policy mode none");
    }
  }

  snprintf(v[STLS_LEVEL_MAY].note, sizeof(v[0].note),
           "delivers wherever an SMTP session works, TLS or not");
  snprintf(v[STLS_LEVEL_ENCRYPT].note, sizeof(v[0].note),
           "needs STARTTLS and a completed handshake; no certificate check");
  snprintf(v[STLS_LEVEL_VERIFY].note, sizeof(v[0].note),
           "needs a trusted chain naming the MX host (match=hostname)");
  snprintf(v[STLS_LEVEL_SECURE].note, sizeof(v[0].note),
           "needs a trusted chain matching %s", o->secure_match);
  for (int l = 0; l < STLS_LEVEL_COUNT; l++) {
    size_t used = strlen(v[l].note);
    if (v[l].untested.n > 0 && used < sizeof(v[l].note))
      snprintf(v[l].note + used, sizeof(v[l].note) - used,
               "; %zu address%s not tested: certificate message too large "
               "for this client",
               v[l].untested.n, v[l].untested.n > 1 ? "es" : "");
  }

  /* Levels nothing was tried for: not failures, and say why. */
  for (int l = 0; l < STLS_LEVEL_COUNT; l++) {
    const stls_host_result_t *r0 = in->n_hosts ? in->hosts[0].res : NULL;
    if (v[l].tested || !r0 || !v[l].applies || v[l].untested.n > 0)
      continue;
    snprintf(v[l].note, sizeof(v[0].note),
             "not tested: every address was skipped (%.120s)",
             r0->error.set && r0->error.message[0] ? r0->error.message
                                                   : "not probed");
  }

  /* Strictest level every reachable address passes. */
  {
    static const stls_level_t order[] = {STLS_LEVEL_DANE, STLS_LEVEL_SECURE,
                                         STLS_LEVEL_VERIFY, STLS_LEVEL_ENCRYPT,
                                         STLS_LEVEL_MAY};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
      const stls_verdict_t *c = &v[order[i]];
      if (order[i] == STLS_LEVEL_DANE && !c->applies)
        continue;
      if (c->pass && c->all_hosts) {
        out->recommended = (int)order[i];
        break;
      }
    }
  }
  return 0;

nomem:
  stls_policy_free(out);
  return -1;
}

void stls_policy_free(stls_policy_t *p) {
  for (int l = 0; l < STLS_LEVEL_COUNT; l++) {
    stls_strlist_free(&p->v[l].failing);
    stls_strlist_free(&p->v[l].untested);
  }
  stls_strlist_free(&p->unreachable);
}

/* Postfix levels by strength, for --min-level. */
static int rank(int level) {
  switch (level) {
  case STLS_LEVEL_MAY: return 0;
  case STLS_LEVEL_ENCRYPT: return 1;
  case STLS_LEVEL_DANE:
  case STLS_LEVEL_VERIFY: return 2;
  case STLS_LEVEL_SECURE: return 3;
  default: return -1;
  }
}

size_t stls_policy_map_line(const char *domain, const stls_policy_t *p,
                            const stls_policy_opts_t *o, int min_level,
                            char *buf, size_t len) {
  int rec = p->recommended, n;
  if (rec >= 0 && rank(rec) >= rank(min_level)) {
    char match[300] = "", why[400] = "";
    /* Say what keeps the domain from the next stricter level. */
    int next = rec == STLS_LEVEL_MAY       ? STLS_LEVEL_ENCRYPT
               : rec == STLS_LEVEL_ENCRYPT ? STLS_LEVEL_VERIFY
               : rec == STLS_LEVEL_VERIFY  ? STLS_LEVEL_SECURE
                                           : -1;
    if (rec == STLS_LEVEL_SECURE) {
      /* main.cf spells the list with commas or spaces; a policy map
       * attribute must use colons (postconf(5), smtp_tls_policy_maps). */
      size_t mo = stls_strlcpy(match, " match=", sizeof(match));
      for (const char *c = o->secure_match; *c && mo + 1 < sizeof(match);) {
        size_t wl = strcspn(c, ":, \t");
        if (wl) {
          if (mo > 7 && mo + 1 < sizeof(match))
            match[mo++] = ':';
          for (size_t x = 0; x < wl && mo + 1 < sizeof(match); x++)
            match[mo++] = c[x];
        }
        c += wl;
        c += strspn(c, ":, \t");
      }
      match[mo] = '\0';
    }
    if (next >= 0) {
      const stls_verdict_t *nv = &p->v[next];
      snprintf(why, sizeof(why), "; not %s: %s%s%s%s",
               stls_level_name((stls_level_t)next),
               nv->result_type ? nv->result_type : "fails",
               nv->failing.n ? " on " : "",
               nv->failing.n ? nv->failing.v[0] : "",
               nv->failing.n > 1 ? " and others" : "");
    }
    n = snprintf(buf, len,
                 "# %s: every reachable MX address passes %s%s%s\n"
                 "%s %s%s\n",
                 domain, stls_level_name((stls_level_t)rec),
                 p->unreachable.n ? " (some addresses were unreachable)" : "",
                 why, domain, stls_level_name((stls_level_t)rec), match);
  } else {
    /* Say why the domain stays at the default, using the weakest level
     * that was asked for and fails. */
    const stls_verdict_t *v = &p->v[min_level];
    n = snprintf(buf, len, "# %s: left at the default: %s %s (%s%s%s)\n",
                 domain, stls_level_name((stls_level_t)min_level),
                 v->pass ? "does not pass on every address" : "would defer",
                 v->result_type ? v->result_type : "no SMTP session",
                 v->failing.n ? " on " : "",
                 v->failing.n ? v->failing.v[0] : "");
  }
  return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* ---- policy inputs of a domain record --------------------------------- */

/* What DANE says for one host (RFC 7672 as Postfix applies it): the TLSA
 * state of its MX, and for usable records whether the chain matched. */
static void dane_host(const stls_record_facts_t *f, stls_domain_host_t *h,
                      stls_policy_host_t *ph) {
  const stls_dns_mx_t *mx = &f->dns->mx[h->mx_index];
  const stls_dns_tlsa_result_t *t = f->tlsa[h->mx_index];
  stls_tlsa_state_t st;
  size_t usable = 0;

  if (!f->dns->mx_secure || !mx->addr_secure || !t) {
    ph->dane = STLS_DANE_INSECURE;
    h->dane_state = "insecure";
    return;
  }
  st = stls_tlsa_state(t, &usable);
  h->dane_state = stls_tlsa_state_name(st);
  switch (st) {
  case STLS_TLSA_STATE_NO_TLSA: ph->dane = STLS_DANE_NO_TLSA; break;
  case STLS_TLSA_STATE_FAILED: ph->dane = STLS_DANE_LOOKUP_FAILED; break;
  case STLS_TLSA_STATE_UNUSABLE: ph->dane = STLS_DANE_UNUSABLE; break;
  case STLS_TLSA_STATE_USABLE: ph->dane = STLS_DANE_USABLE; break;
  default: ph->dane = STLS_DANE_INSECURE; break;
  }
  if (st == STLS_TLSA_STATE_USABLE && h->res.tls_done) {
    stls_dane_verdict_t v;
    stls_dane_opts_t o = {mx->host, f->domain};
    if (stls_dane_verify(t->rr, t->nrr, h->res.tls.chain, h->res.tls.n_chain,
                         &o, &v) == 0) {
      ph->dane_match = v.matched;
      ph->dane_result_type = v.result_type;
      h->dane_checked = true;
      h->dane_matched = v.matched;
      h->dane_result_type = v.result_type;
      stls_strlcpy(h->dane_rr, v.match_index >= 0 ? v.match_rr : "",
                   sizeof(h->dane_rr));
    }
  }
}

/* What MTA-STS says for the domain (RFC 8461): no policy (also for an
 * invalid TXT record: senders then have no policy), a usable policy, or a
 * published one that cannot be used (delivered as without it). */
static void sts_input(const stls_record_facts_t *f, stls_policy_input_t *in) {
  const stls_sts_result_t *r = f->sts;
  if (!f->sts_checked || !r) {
    in->sts = STLS_POLICY_STS_NOT_CHECKED;
    return;
  }
  switch (r->status) {
  case STLS_STS_OK:
    in->sts = STLS_POLICY_STS_OK;
    in->sts_mode = r->policy.mode;
    break;
  case STLS_STS_FETCH_ERROR:
  case STLS_STS_INVALID:
  case STLS_STS_WEBPKI_INVALID:
    in->sts = STLS_POLICY_STS_FAILED;
    in->sts_result_type = stls_sts_status_result_type(r->status);
    break;
  default: in->sts = STLS_POLICY_STS_NONE; break;
  }
}

int stls_record_decide_policy(const stls_record_facts_t *f,
                              stls_domain_host_t *hosts, size_t n_hosts,
                              const stls_policy_opts_t *o, stls_policy_t *out) {
  stls_policy_input_t in;
  stls_policy_host_t *ph = calloc(n_hosts ? n_hosts : 1, sizeof(*ph));
  int rc;
  if (!ph)
    return -1;
  memset(&in, 0, sizeof(in));
  in.domain = f->domain;
  in.hosts = ph;
  in.n_hosts = n_hosts;
  in.mx_secure = f->dns->mx_secure;
  in.dane_checked = f->dane_checked;
  sts_input(f, &in);
  for (size_t i = 0; i < n_hosts; i++) {
    stls_domain_host_t *h = &hosts[i];
    ph[i].res = &h->res;
    ph[i].preference = f->dns->mx[h->mx_index].preference;
    if (f->tlsa)
      dane_host(f, h, &ph[i]);
    if (f->sts && f->sts->status == STLS_STS_OK)
      ph[i].sts_mx_match = stls_sts_policy_mx_match(&f->sts->policy, h->res.mx);
  }
  rc = stls_policy_evaluate(&in, o, out);
  free(ph);
  return rc;
}
