/* The only module that talks JSON. See writer.h. */
#include "stls/writer.h"
#include "stls/cert.h"
#include "stls/chain.h"
#include "stls/dane.h"
#include "stls/hello.h"
#include "stls/sts.h"
#include "stls/names.h"
#include "stls/policy.h"
#include "stls/util.h"
#include "stls/policy.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Helpers that keep going after ENOMEM and report it once at the end:
 * cJSON_Add* return NULL on failure, which we check via `ok`. */
typedef struct jctx_s {
  int ok;
} jctx_t;

/* A JSON string from bytes a server sent us: JSON must be valid UTF-8,
 * so invalid sequences become U+FFFD (valid text is left alone). */
static cJSON *jcreate_string(const char *v) {
  cJSON *x;
  char *fixed;
  if (stls_utf8_is_valid(v))
    return cJSON_CreateString(v);
  if (!(fixed = stls_utf8_repair(v)))
    return NULL;
  x = cJSON_CreateString(fixed);
  free(fixed);
  return x;
}

static cJSON *jstr(jctx_t *j, cJSON *o, const char *k, const char *v) {
  cJSON *x = v ? jcreate_string(v) : cJSON_CreateNull();
  if (!x || !cJSON_AddItemToObject(o, k, x)) {
    cJSON_Delete(x);
    j->ok = 0;
    return NULL;
  }
  return x;
}

static void jnum(jctx_t *j, cJSON *o, const char *k, double v) {
  if (!cJSON_AddNumberToObject(o, k, v))
    j->ok = 0;
}

static void jms(jctx_t *j, cJSON *o, const char *k, int64_t v) {
  if (v < 0) {
    if (!cJSON_AddNullToObject(o, k))
      j->ok = 0;
  } else {
    jnum(j, o, k, (double)v);
  }
}

static void jbool(jctx_t *j, cJSON *o, const char *k, int v) {
  if (!cJSON_AddBoolToObject(o, k, v))
    j->ok = 0;
}

static cJSON *jobj(jctx_t *j, cJSON *o, const char *k) {
  cJSON *x = cJSON_AddObjectToObject(o, k);
  if (!x)
    j->ok = 0;
  return x;
}

static cJSON *jarr(jctx_t *j, cJSON *o, const char *k) {
  cJSON *x = cJSON_AddArrayToObject(o, k);
  if (!x)
    j->ok = 0;
  return x;
}

static void jnull(jctx_t *j, cJSON *o, const char *k) {
  if (!cJSON_AddNullToObject(o, k))
    j->ok = 0;
}

/* Append an item to an array, taking ownership; on failure the item is
 * freed and the record marked broken. Returns the item or NULL. */
static cJSON *jpush(jctx_t *j, cJSON *arr, cJSON *item) {
  if (!item || !cJSON_AddItemToArray(arr, item)) {
    cJSON_Delete(item);
    j->ok = 0;
    return NULL;
  }
  return item;
}

static void jstrlist(jctx_t *j, cJSON *o, const char *k,
                     const stls_strlist_t *l) {
  cJSON *a = jarr(j, o, k);
  if (!a)
    return;
  for (size_t i = 0; i < l->n; i++) {
    cJSON *s = jpush(j, a, jcreate_string(l->v[i]));
    if (!s)
      return;
  }
}

static void add_cert(jctx_t *j, cJSON *arr, const stls_cert_t *c) {
  cJSON *key, *o = jpush(j, arr, cJSON_CreateObject());
  if (!o)
    return;
  jstr(j, o, "subject", c->subject);
  jstr(j, o, "issuer", c->issuer);
  jstr(j, o, "subject_cn", c->subject_cn);
  jstrlist(j, o, "san_dns", &c->san_dns);
  jstr(j, o, "not_before", c->not_before);
  jstr(j, o, "not_after", c->not_after);
  if ((key = jobj(j, o, "key"))) {
    jstr(j, key, "type", c->key_type);
    jnum(j, key, "bits", c->key_bits);
  }
  jstr(j, o, "signature_algorithm", c->sig_alg);
  jstr(j, o, "serial", c->serial);
  jstr(j, o, "sha256", c->sha256);
  jstr(j, o, "spki_sha256", c->spki_sha256);
  jbool(j, o, "self_issued", c->self_issued);
}

static void add_reasons(jctx_t *j, cJSON *x, unsigned bits) {
  cJSON *reasons = jarr(j, x, "reasons");
  if (!reasons)
    return;
  for (unsigned b = 0; b < STLS_TRUST_REASON_COUNT; b++)
    if (bits & (1u << b)) {
      jpush(j, reasons, cJSON_CreateString(stls_trust_reason_name(b)));
    }
}

static void add_chain_quality(jctx_t *j, cJSON *tls,
                              const stls_chain_facts_t *f) {
  cJSON *q = jobj(j, tls, "chain_quality");
  if (!q)
    return;
  jnum(j, q, "sent", (double)f->n_sent);
  jbool(j, q, "order_ok", f->order_ok);
  jbool(j, q, "root_included", f->root_included);
  jbool(j, q, "leaf_self_signed", f->leaf_self_signed);
  jbool(j, q, "duplicate_certs", f->duplicate_certs);
  jbool(j, q, "unnecessary_certs", f->unnecessary_certs);
  jbool(j, q, "missing_intermediate", f->missing_intermediate);
  jbool(j, q, "trusted_with_known_intermediates",
        f->trusted_with_known_intermediates);
  jbool(j, q, "sha1_signature", f->sha1_signature);
  jbool(j, q, "weak_rsa_key", f->weak_rsa_key);
  if (f->min_rsa_bits)
    jnum(j, q, "min_rsa_bits", f->min_rsa_bits);
  jnum(j, q, "leaf_validity_days", (double)f->leaf_validity_days);
  jbool(j, q, "leaf_validity_too_long", f->leaf_validity_too_long);
  jbool(j, q, "leaf_not_yet_valid", f->leaf_not_yet_valid);
  jbool(j, q, "intermediate_expired", f->intermediate_expired);
  jbool(j, q, "leaf_server_auth", f->leaf_server_auth);
  jbool(j, q, "leaf_has_sct", f->leaf_has_sct);
  jbool(j, q, "leaf_must_staple", f->leaf_must_staple);
}

static void add_tls(jctx_t *j, cJSON *o, const stls_tls_result_t *t,
                    const char *recipient_domain) {
  cJSON *tls = jobj(j, o, "tls"), *x, *chain;
  char id[8];
  if (!tls)
    return;
  jstr(j, tls, "version", t->version);
  if ((x = jobj(j, tls, "cipher"))) {
    jstr(j, x, "name", t->cipher_name);
    snprintf(id, sizeof(id), "0x%04x", t->cipher_id);
    jstr(j, x, "id", id);
  }
  if ((chain = jarr(j, tls, "chain")))
    for (size_t i = 0; i < t->n_chain; i++)
      add_cert(j, chain, &t->chain[i]);
  if ((x = jobj(j, tls, "trust"))) {
    jbool(j, x, "trusted", t->trusted);
    jstr(j, x, "result_type", stls_cert_trust_result_type(t));
    add_reasons(j, x, t->trust_reasons);
    if (t->n_stores > 0) {
      cJSON *stores = jobj(j, x, "stores");
      for (size_t i = 0; stores && i < t->n_stores; i++) {
        cJSON *st = jobj(j, stores, t->stores[i].name);
        if (!st)
          continue;
        jbool(j, st, "trusted", t->stores[i].trusted);
        add_reasons(j, st, t->stores[i].reasons);
        jbool(j, st, "trusted_with_known_intermediates",
              t->stores[i].trusted_with_pool);
      }
    }
  }
  if ((x = jobj(j, tls, "names"))) {
    jbool(j, x, "mx_hostname", t->name_mx);
    if (recipient_domain && t->n_chain > 0)
      jbool(j, x, "recipient_domain",
            stls_name_cert_matches_list(&t->chain[0], STLS_SECURE_CERT_MATCH,
                                        recipient_domain, NULL));
    else
      jnull(j, x, "recipient_domain");
  }
  jbool(j, tls, "expired", t->expired);
  if (t->legacy_only[0])
    jstr(j, tls, "legacy_only", t->legacy_only);
  if (t->handshake_seen) {
    const char *g = stls_tls_group_name(t->group);
    const char *sg = stls_tls_sigalg_name(t->sigalg);
    char hex[8];
    if (t->group) {
      snprintf(hex, sizeof(hex), "0x%04x", t->group);
      jstr(j, tls, "key_exchange_group", g ? g : hex);
    } else {
      jnull(j, tls, "key_exchange_group");
    }
    /* Only when it happened: the round trip a second key share costs. */
    if (t->hello_retry)
      jbool(j, tls, "hello_retry", true);
    if (t->sigalg) {
      snprintf(hex, sizeof(hex), "0x%04x", t->sigalg);
      jstr(j, tls, "server_signature", sg ? sg : hex);
    } else {
      jnull(j, tls, "server_signature");
    }
    if (strcmp(t->version, "TLSv1.3") != 0) {
      /* These are TLS 1.2 ServerHello facts; TLS 1.3 moved them into
       * encrypted messages. */
      jbool(j, tls, "ocsp_stapled", t->ocsp_stapled);
      jbool(j, tls, "secure_renegotiation", t->secure_renegotiation);
      jbool(j, tls, "extended_master_secret", t->extended_master_secret);
    }
  }
  if (t->facts)
    add_chain_quality(j, tls, t->facts);
}

static void add_ehlo(jctx_t *j, cJSON *o, const char *key, const char *cmd,
                     const char *reply, const stls_strlist_t *ext) {
  cJSON *e;
  if (!reply) {
    jnull(j, o, key);
    return;
  }
  if (!(e = jobj(j, o, key)))
    return;
  if (cmd)
    jstr(j, e, "command", cmd);
  jstr(j, e, "reply", reply);
  jstrlist(j, e, "extensions", ext);
}

cJSON *stls_json_host(const stls_host_result_t *r,
                      const char *recipient_domain) {
  jctx_t j = {1};
  cJSON *o = cJSON_CreateObject(), *x;
  if (!o)
    return NULL;
  jstr(&j, o, "mx", r->mx);
  jstr(&j, o, "ip", r->ip);
  jnum(&j, o, "port", r->port);
  jstr(&j, o, "family", r->family == 6 ? "ipv6" : "ipv4");
  jstr(&j, o, "status", stls_host_status_name(r->status));
  if (r->error.set && (x = jobj(&j, o, "error"))) {
    char code[sizeof(r->error.code)];
    jstr(&j, x, "stage", stls_stage_name(r->error.stage));
    jstr(&j, x, "code", stls_error_code(&r->error, code, sizeof(code)));
    jstr(&j, x, "message", r->error.message);
  } else if (!r->error.set) {
    jnull(&j, o, "error");
  }
  jstr(&j, o, "banner", r->banner);
  add_ehlo(&j, o, "ehlo", r->used_helo ? "HELO" : "EHLO",
           r->ehlo_done ? r->ehlo_reply : NULL, &r->ehlo_ext);
  if (r->ehlo_done && (x = jobj(&j, o, "starttls"))) {
    jbool(&j, x, "offered", r->starttls_offered);
    jstr(&j, x, "reply", r->starttls_reply);
  } else if (!r->ehlo_done) {
    jnull(&j, o, "starttls");
  }
  if (r->tls_done || r->tls_legacy)
    add_tls(&j, o, &r->tls, recipient_domain);
  else
    jnull(&j, o, "tls");
  add_ehlo(&j, o, "ehlo_tls", NULL, r->ehlo_tls_reply, &r->ehlo_tls_ext);
  if ((x = jarr(&j, o, "findings")))
    for (size_t i = 0; i < r->n_findings; i++) {
      cJSON *f = jpush(&j, x, cJSON_CreateObject());
      if (!f)
        break;
      jstr(&j, f, "id", r->findings[i].id);
      jstr(&j, f, "message", r->findings[i].message);
    }
  if (r->versions_probed && (x = jobj(&j, o, "protocol_versions"))) {
    for (unsigned v = STLS_VER_COUNT; v-- > 0;) {
      cJSON *pv = jobj(&j, x, stls_version_label(v));
      if (!pv)
        continue;
      if (r->versions[v].accepted < 0)
        jnull(&j, pv, "accepted");
      else
        jbool(&j, pv, "accepted", r->versions[v].accepted);
      jstr(&j, pv, "how",
           r->versions[v].how[0] ? r->versions[v].how : "not probed");
    }
  }
  if ((x = jobj(&j, o, "timing_ms"))) {
    jms(&j, x, "connect", r->timing.connect);
    jms(&j, x, "greeting", r->timing.greeting);
    jms(&j, x, "ehlo", r->timing.ehlo);
    jms(&j, x, "starttls", r->timing.starttls);
    jms(&j, x, "handshake", r->timing.handshake);
    jms(&j, x, "ehlo_tls", r->timing.ehlo_tls);
    jms(&j, x, "total", r->timing.total);
  }
  if (!j.ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

cJSON *stls_json_probe_record(const stls_host_result_t *r,
                              const char *recipient_domain, time_t scanned_at) {
  char ts[32];
  jctx_t j = {1};
  cJSON *host = stls_json_host(r, recipient_domain), *rec, *c;
  if (!host)
    return NULL;
  rec = cJSON_CreateObject();
  if (!rec) {
    cJSON_Delete(host);
    return NULL;
  }
  /* schema and scanned_at lead the record; then the HOST members. */
  stls_time_rfc3339(scanned_at, ts, sizeof(ts));
  jstr(&j, rec, "schema", STLS_SCHEMA_ID);
  jstr(&j, rec, "scanned_at", ts);
  while ((c = host->child) != NULL) {
    cJSON_DetachItemViaPointer(host, c);
    if (!cJSON_AddItemToObject(rec, c->string, c)) {
      cJSON_Delete(c);
      j.ok = 0;
    }
  }
  cJSON_Delete(host);
  if (!j.ok) {
    cJSON_Delete(rec);
    return NULL;
  }
  return rec;
}

int stls_json_write_line(FILE *f, const cJSON *record) {
  char *s = cJSON_PrintUnformatted(record);
  int rc = 0;
  if (!s)
    return -1;
  if (fputs(s, f) == EOF || fputc('\n', f) == EOF || fflush(f) == EOF)
    rc = -1;
  cJSON_free(s);
  return rc;
}

/* ---- domain records ----------------------------------------------------- */

static void add_tlsa(jctx_t *j, cJSON *m, const stls_dns_tlsa_result_t *t) {
  cJSON *x = jobj(j, m, "tlsa"), *recs, *e;
  size_t usable = 0;
  if (!x)
    return;
  jstr(j, x, "name", t->qname);
  jstr(j, x, "status", stls_dns_status_name(t->status));
  jbool(j, x, "dnssec", t->secure);
  jstr(j, x, "state", stls_tlsa_state_name(stls_tlsa_state(t, &usable)));
  jnum(j, x, "usable", (double)usable);
  if ((recs = jarr(j, x, "records")))
    for (size_t i = 0; i < t->nrr; i++) {
      char *txt = stls_dane_rr_format(&t->rr[i]);
      jpush(j, recs, txt ? cJSON_CreateString(txt) : NULL);
      free(txt);
    }
  if (t->error.code && (e = jobj(j, x, "error"))) {
    jstr(j, e, "stage", "dns");
    jstr(j, e, "code", t->error.code);
    jstr(j, e, "message", t->error.message);
  }
}

static void add_dns(jctx_t *j, cJSON *o, const stls_dns_result_t *dns,
                    stls_dns_tlsa_result_t *const *tlsa) {
  cJSON *d = jobj(j, o, "dns"), *mx, *e;
  if (!d)
    return;
  if ((mx = jarr(j, d, "mx")) && dns) {
    if (dns->null_mx) {
      cJSON *m = jpush(j, mx, cJSON_CreateObject());
      if (m) {
        jnum(j, m, "preference", 0);
        jstr(j, m, "host", ".");
        jarr(j, m, "addresses");
      }
    }
    for (size_t i = 0; i < dns->nmx; i++) {
      const stls_dns_mx_t *h = &dns->mx[i];
      cJSON *a, *m = jpush(j, mx, cJSON_CreateObject());
      if (!m)
        break;
      jnum(j, m, "preference", h->preference);
      jstr(j, m, "host", h->host);
      if ((a = jarr(j, m, "addresses")))
        for (size_t k = 0; k < h->naddrs; k++) {
          jpush(j, a, jcreate_string(h->addrs[k].text));
        }
      jstr(j, m, "status", stls_dns_status_name(h->status));
      if (h->error.code && (e = jobj(j, m, "error"))) {
        jstr(j, e, "stage", "dns");
        jstr(j, e, "code", h->error.code);
        jstr(j, e, "message", h->error.message);
      }
      jbool(j, m, "cname", h->is_cname);
      jbool(j, m, "ip_literal", h->is_ip_literal);
      jbool(j, m, "dnssec", h->addr_secure);
      if (tlsa && tlsa[i])
        add_tlsa(j, m, tlsa[i]);
      if (h->addrs_truncated)
        jbool(j, m, "addresses_truncated", 1);
    }
  }
  jbool(j, d, "implicit_mx", dns && dns->implicit_mx);
  jbool(j, d, "null_mx", dns && dns->null_mx);
  if (dns && dns->null_mx_mixed)
    jbool(j, d, "null_mx_mixed", 1);
  jbool(j, d, "dnssec", dns && dns->mx_secure);
  if (dns && dns->mx_truncated)
    jbool(j, d, "mx_truncated", 1);
  if (dns && dns->error.code && (e = jobj(j, d, "error"))) {
    jstr(j, e, "stage", "dns");
    jstr(j, e, "code", dns->error.code);
    jstr(j, e, "message", dns->error.message);
  } else {
    jnull(j, d, "error");
  }
}

static void add_policy(jctx_t *j, cJSON *o, const stls_policy_t *p) {
  cJSON *po = jobj(j, o, "policy");
  if (!po)
    return;
  for (int l = 0; l < STLS_LEVEL_COUNT; l++) {
    const stls_verdict_t *v = &p->v[l];
    cJSON *x = jobj(j, po, stls_level_name((stls_level_t)l));
    if (!x)
      continue;
    jbool(j, x, "pass", v->pass);
    jbool(j, x, "all_hosts", v->all_hosts);
    jbool(j, x, "applies", v->applies);
    jbool(j, x, "tested", v->tested);
    if (v->result_type)
      jstr(j, x, "result_type", v->result_type);
    jstrlist(j, x, "failing", &v->failing);
    if (v->untested.n > 0)
      jstrlist(j, x, "untested", &v->untested);
    jstr(j, x, "note", v->note);
  }
  jstr(j, po, "recommended",
       p->recommended >= 0 ? stls_level_name((stls_level_t)p->recommended)
                           : NULL);
  jstrlist(j, po, "unreachable", &p->unreachable);
}

static void add_host_dane(jctx_t *j, cJSON *h, const stls_domain_host_t *dh) {
  cJSON *x = jobj(j, h, "dane");
  if (!x)
    return;
  jstr(j, x, "state", dh->dane_state);
  if (dh->dane_checked) {
    jbool(j, x, "matched", dh->dane_matched);
    jstr(j, x, "record", dh->dane_rr[0] ? dh->dane_rr : NULL);
    jstr(j, x, "result_type", dh->dane_result_type);
  } else {
    jnull(j, x, "matched");
  }
}

static void add_sts(jctx_t *j, cJSON *o, const stls_sts_result_t *r) {
  cJSON *x = jobj(j, o, "mta_sts"), *y;
  const char *rt;
  if (!x)
    return;
  jstr(j, x, "status", stls_sts_status_name(r->status));
  rt = stls_sts_status_result_type(r->status);
  jstr(j, x, "result_type", rt);
  if (r->error.code[0] && (y = jobj(j, x, "error"))) {
    jstr(j, y, "stage", stls_sts_stage_name(r->error.stage));
    jstr(j, y, "code", r->error.code);
    jstr(j, y, "message", r->error.message);
  } else if (!r->error.code[0]) {
    jnull(j, x, "error");
  }
  if (r->txt && (y = jobj(j, x, "txt"))) {
    jstr(j, y, "record", r->txt);
    jstr(j, y, "id", r->id[0] ? r->id : NULL);
    jbool(j, y, "dnssec", r->txt_secure);
  }
  if (r->status == STLS_STS_OK && (y = jobj(j, x, "policy"))) {
    cJSON *mx;
    jstr(j, y, "mode", stls_sts_mode_name(r->policy.mode));
    if ((mx = jarr(j, y, "mx")))
      for (size_t i = 0; i < r->policy.nmx; i++) {
        jpush(j, mx, jcreate_string(r->policy.mx[i]));
      }
    jnum(j, y, "max_age", r->policy.max_age);
  }
  if (r->ip[0] && (y = jobj(j, x, "fetch"))) {
    jstr(j, y, "ip", r->ip);
    jstr(j, y, "tls_version", r->tls_version[0] ? r->tls_version : NULL);
    jbool(j, y, "trusted", r->tls_trusted);
    jbool(j, y, "name_match", r->tls_name_ok);
    if (r->http_status)
      jnum(j, y, "http_status", r->http_status);
    if (r->content_type[0])
      jstr(j, y, "content_type", r->content_type);
    jnum(j, y, "body_bytes", (double)r->body_len);
  }
  if ((y = jobj(j, x, "timing_ms"))) {
    jms(j, y, "txt", r->timing.txt);
    jms(j, y, "fetch",
        r->timing.total >= 0 && r->timing.txt >= 0
            ? r->timing.total - r->timing.txt
            : -1);
    jms(j, y, "total", r->timing.total);
  }
}

cJSON *stls_json_domain(const stls_domain_record_t *d) {
  jctx_t j = {1};
  char ts[32];
  cJSON *o = cJSON_CreateObject(), *hosts, *e;
  if (!o)
    return NULL;
  stls_time_rfc3339(d->scanned_at, ts, sizeof(ts));
  jstr(&j, o, "schema", STLS_SCHEMA_ID);
  if ((e = jobj(&j, o, "scanner"))) {
    jstr(&j, e, "version", STLS_VERSION);
    if (d->run_id)
      jstr(&j, e, "run_id", d->run_id);
  }
  jstr(&j, o, "domain", d->domain);
  jstr(&j, o, "scanned_at", ts);
  jms(&j, o, "duration_ms", d->duration_ms < 0 ? 0 : d->duration_ms);
  jstr(&j, o, "status", d->status);
  if (d->input_error && (e = jobj(&j, o, "error"))) {
    jstr(&j, e, "stage", "input");
    jstr(&j, e, "code", "INVALID_DOMAIN");
    jstr(&j, e, "message", d->input_error);
  }
  add_dns(&j, o, d->dns, d->tlsa);
  if ((hosts = jarr(&j, o, "hosts")))
    for (size_t i = 0; i < d->n_hosts; i++) {
      cJSON *h = jpush(&j, hosts, stls_json_host(&d->hosts[i].res, d->domain));
      if (!h)
        break;
      jbool(&j, h, "shared", d->hosts[i].shared);
      if (d->hosts[i].dane_state)
        add_host_dane(&j, h, &d->hosts[i]);
    }
  if (d->sts)
    add_sts(&j, o, d->sts);
  if (d->policy)
    add_policy(&j, o, d->policy);
  if (!j.ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* ---- summary ------------------------------------------------------------ */

void stls_counts_add(stls_counts_t *c, const char *key, uint64_t n) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->v[i].key, key) == 0) {
      c->v[i].n += n;
      return;
    }
  if (c->n < STLS_SUMMARY_MAX_KEYS) {
    c->v[c->n].key = key;
    c->v[c->n++].n = n;
  } else {
    /* Past the table's size everything lands on one bucket. */
    c->v[STLS_SUMMARY_MAX_KEYS - 1].key = "other";
    c->v[STLS_SUMMARY_MAX_KEYS - 1].n += n;
  }
}

static void add_counts(jctx_t *j, cJSON *o, const char *k,
                       const stls_counts_t *c) {
  cJSON *x = jobj(j, o, k);
  if (!x)
    return;
  for (size_t i = 0; i < c->n; i++)
    jnum(j, x, c->v[i].key, (double)c->v[i].n);
}

static void add_run_opts(jctx_t *j, cJSON *o, const stls_run_opts_t *r) {
  cJSON *x = jobj(j, o, "options");
  if (!x)
    return;
  jnum(j, x, "workers", r->workers);
  jnum(j, x, "concurrency", r->concurrency);
  jnum(j, x, "per_ip", r->per_ip);
  jnum(j, x, "rate", r->rate);
  jnum(j, x, "retry_delay_ms", (double)r->retry_delay_ms);
  jbool(j, x, "dedupe", r->dedupe);
  jbool(j, x, "ipv4", r->want_ipv4);
  jbool(j, x, "ipv6", r->want_ipv6);
  jstr(j, x, "ipv6_mode", r->ipv6_mode);
  jbool(j, x, "dane", r->dane);
  jbool(j, x, "mta_sts", r->mta_sts);
  jbool(j, x, "versions", r->versions);
  jnum(j, x, "port", r->port);
  jnum(j, x, "max_mx", r->max_mx);
  jnum(j, x, "max_addrs", r->max_addrs);
  jnum(j, x, "dns_timeout_ms", r->dns_timeout_ms);
  jnum(j, x, "dns_tries", r->dns_tries);
  jnum(j, x, "connect_timeout_ms", (double)r->connect_timeout_ms);
  jnum(j, x, "greeting_timeout_ms", (double)r->greeting_timeout_ms);
  jnum(j, x, "command_timeout_ms", (double)r->command_timeout_ms);
  jnum(j, x, "tls_timeout_ms", (double)r->tls_timeout_ms);
  jstr(j, x, "resolvers", r->resolvers);
  jstr(j, x, "ca_file", r->ca_file);
  jstr(j, x, "secure_match", r->secure_match);
  if (r->shard_n > 1) {
    char shard[32];
    snprintf(shard, sizeof(shard), "%u/%u", r->shard_k, r->shard_n);
    jstr(j, x, "shard", shard);
  } else {
    jnull(j, x, "shard");
  }
}

cJSON *stls_json_summary(const stls_summary_t *s) {
  jctx_t j = {1};
  char ts[32];
  cJSON *o = cJSON_CreateObject(), *x;
  if (!o)
    return NULL;
  jstr(&j, o, "schema", STLS_SUMMARY_SCHEMA_ID);
  if ((x = jobj(&j, o, "scanner"))) {
    jstr(&j, x, "version", STLS_VERSION);
    if (s->run_id)
      jstr(&j, x, "run_id", s->run_id);
  }
  jbool(&j, o, "interrupted", s->interrupted);
  if (s->opts)
    add_run_opts(&j, o, s->opts);
  if ((x = jobj(&j, o, "rate_limit"))) {
    jnum(&j, x, "wait_ms", (double)s->rate_wait_ms);
    jbool(&j, x, "bound", stls_summary_rate_bound(s));
  }
  jnum(&j, o, "local_retries", (double)s->local_retries);
  stls_time_rfc3339(s->started_at, ts, sizeof(ts));
  jstr(&j, o, "started_at", ts);
  stls_time_rfc3339(s->finished_at, ts, sizeof(ts));
  jstr(&j, o, "finished_at", ts);
  jnum(&j, o, "duration_ms", (double)s->duration_ms);
  if (s->ehlo_name)
    jstr(&j, o, "ehlo_name", s->ehlo_name);
  if ((x = jobj(&j, o, "input"))) {
    jnum(&j, x, "lines", (double)s->input_lines);
    jnum(&j, x, "invalid", (double)s->input_invalid);
    jnum(&j, x, "resumed_skipped", (double)s->resumed_skipped);
    jnum(&j, x, "other_shards", (double)s->shard_skipped);
  }
  jnum(&j, o, "domains", (double)s->domains);
  add_counts(&j, o, "domain_status", &s->domain_status);
  jnum(&j, o, "mx_hosts", (double)s->mx_hosts);
  jnum(&j, o, "addresses", (double)s->addresses);
  if ((x = jobj(&j, o, "probes"))) {
    jnum(&j, x, "made", (double)s->probes_made);
    jnum(&j, x, "shared", (double)s->probes_shared);
    jnum(&j, x, "skipped", (double)s->probes_skipped);
  }
  add_counts(&j, o, "host_status", &s->host_status);
  jnum(&j, o, "starttls_offered", (double)s->starttls_offered);
  jnum(&j, o, "tls_established", (double)s->tls_ok);
  add_counts(&j, o, "tls_versions", &s->tls_versions);
  jnum(&j, o, "trusted", (double)s->trusted);
  jnum(&j, o, "mx_hostname_match", (double)s->mx_hostname_match);
  add_counts(&j, o, "recommended", &s->recommended);
  if (!j.ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* ---- run summary, counted record by record ----------------------------- */

static void count_host(stls_summary_t *s, const stls_domain_host_t *h) {
  const stls_host_result_t *r = &h->res;
  stls_counts_add(&s->host_status, stls_host_status_name(r->status), 1);
  if (r->status == STLS_HOST_SKIPPED)
    s->probes_skipped++;
  else if (h->shared)
    s->probes_shared++;
  else
    s->probes_made++;
  if (r->starttls_offered)
    s->starttls_offered++;
  if (r->tls_done) {
    s->tls_ok++;
    /* version strings come from mbedTLS as static literals */
    stls_counts_add(&s->tls_versions,
                    strcmp(r->tls.version, "TLSv1.3") == 0   ? "TLSv1.3"
                    : strcmp(r->tls.version, "TLSv1.2") == 0 ? "TLSv1.2"
                                                             : "other",
                    1);
    if (r->tls.trusted)
      s->trusted++;
    if (r->tls.name_mx)
      s->mx_hostname_match++;
  }
}

/* Domain status names are static strings, except for records whose
 * status came from elsewhere: map them onto the static table. */
static const char *static_status(const char *st) {
  static const char *const known[] = {
      "ok", "null-mx", "nxdomain", "dns-error", "invalid-domain", "no-address"};
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
    if (strcmp(st, known[i]) == 0)
      return known[i];
  return "other";
}

void stls_summary_add_record(stls_summary_t *s, const stls_domain_record_t *d) {
  s->domains++;
  stls_counts_add(&s->domain_status, static_status(d->status), 1);
  if (d->dns) {
    s->mx_hosts += d->dns->nmx;
    for (size_t i = 0; i < d->dns->nmx; i++)
      s->addresses += d->dns->mx[i].naddrs;
  }
  for (size_t i = 0; i < d->n_hosts; i++)
    count_host(s, &d->hosts[i]);
  if (d->policy)
    stls_counts_add(&s->recommended,
                    d->policy->recommended >= 0
                        ? stls_level_name((stls_level_t)d->policy->recommended)
                        : "none",
                    1);
}

bool stls_summary_rate_bound(const stls_summary_t *s) {
  /* Waiting for tokens for over a tenth of the run: --rate set the pace. */
  return s->duration_ms > 0 && s->rate_wait_ms * 10 > s->duration_ms;
}

void stls_summary_print(FILE *f, const stls_summary_t *s) {
  fprintf(
      f,
      "starttls-scan: %llu domains in %.1fs; %llu MX hosts, %llu "
      "addresses; probes %llu made, %llu shared, %llu skipped; "
      "STARTTLS offered %llu, TLS %llu, trusted %llu, MX name match "
      "%llu\n",
      (unsigned long long)s->domains, (double)s->duration_ms / 1000.0,
      (unsigned long long)s->mx_hosts, (unsigned long long)s->addresses,
      (unsigned long long)s->probes_made, (unsigned long long)s->probes_shared,
      (unsigned long long)s->probes_skipped,
      (unsigned long long)s->starttls_offered, (unsigned long long)s->tls_ok,
      (unsigned long long)s->trusted, (unsigned long long)s->mx_hostname_match);
  fprintf(f, "starttls-scan: domains by status:");
  for (size_t i = 0; i < s->domain_status.n; i++)
    fprintf(f, " %s=%llu", s->domain_status.v[i].key,
            (unsigned long long)s->domain_status.v[i].n);
  if (s->recommended.n) {
    fprintf(f, "\nstarttls-scan: domains by recommended level:");
    for (size_t i = 0; i < s->recommended.n; i++)
      fprintf(f, " %s=%llu", s->recommended.v[i].key,
              (unsigned long long)s->recommended.v[i].n);
  }
  fprintf(f, "\nstarttls-scan: hosts by status:");
  for (size_t i = 0; i < s->host_status.n; i++)
    fprintf(f, " %s=%llu", s->host_status.v[i].key,
            (unsigned long long)s->host_status.v[i].n);
  fputc('\n', f);
  if (stls_summary_rate_bound(s))
    fprintf(f,
            "starttls-scan: the connection rate (--rate %g/s) bounded this "
            "run: probes waited %.1fs for it in all; see README \"Choosing "
            "--rate, -c and --per-ip\"\n",
            s->opts ? s->opts->rate : 0.0, (double)s->rate_wait_ms / 1000.0);
  if (s->interrupted)
    fprintf(f, "starttls-scan: interrupted: domains not started were not "
               "written (--resume continues the run)\n");
}

/* Open path for writing; "-" is standard output. */
static FILE *open_out(const char *path, int *is_stdout) {
  *is_stdout = strcmp(path, "-") == 0;
  return *is_stdout ? stdout : fopen(path, "w");
}

int stls_summary_write_json(const char *path, const stls_summary_t *s) {
  cJSON *j = stls_json_summary(s);
  int is_stdout, rc = 0;
  FILE *f = open_out(path, &is_stdout);
  if (!j || !f || stls_json_write_line(f, j) != 0)
    rc = -1;
  if (f && !is_stdout && fclose(f) != 0)
    rc = -1;
  cJSON_Delete(j);
  return rc;
}

static void prom_counts(FILE *f, const char *name, const char *help,
                        const char *label, const stls_counts_t *c) {
  fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
  for (size_t i = 0; i < c->n; i++)
    fprintf(f, "%s{%s=\"%s\"} %llu\n", name, label, c->v[i].key,
            (unsigned long long)c->v[i].n);
}

static void prom_gauge(FILE *f, const char *name, const char *help, double v) {
  fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name,
          name, v);
}

/* The summary as a Prometheus textfile (node exporter's textfile
 * collector): written to a temporary file and renamed, so the collector
 * never reads half a file. Names: starttls_scan_last_run_*. */
int stls_summary_write_prom(const char *path, const stls_summary_t *s) {
  char tmp[4096];
  int is_stdout = strcmp(path, "-") == 0, rc = 0;
  FILE *f;
  if (is_stdout) {
    f = stdout;
  } else {
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path,
                         (long)getpid()) >= sizeof(tmp))
      return -1;
    if (!(f = fopen(tmp, "w")))
      return -1;
  }
  fprintf(f,
          "# HELP starttls_scan_last_run_info The last batch run: "
          "scanner version and run id.\n"
          "# TYPE starttls_scan_last_run_info gauge\n"
          "starttls_scan_last_run_info{version=\"%s\",run_id=\"%s\"} 1\n",
          STLS_VERSION, s->run_id ? s->run_id : "");
  prom_gauge(f, "starttls_scan_last_run_timestamp_seconds",
             "When the last run finished (Unix time).", (double)s->finished_at);
  prom_gauge(f, "starttls_scan_last_run_duration_seconds",
             "How long the last run took.", (double)s->duration_ms / 1000.0);
  prom_gauge(f, "starttls_scan_last_run_interrupted",
             "1 when the last run was stopped by a signal.",
             s->interrupted ? 1 : 0);
  prom_gauge(f, "starttls_scan_last_run_rate_wait_seconds",
             "Time probes waited for the connection rate limit.",
             (double)s->rate_wait_ms / 1000.0);
  prom_counts(f, "starttls_scan_last_run_domains",
              "Domains of the last run by record status.", "status",
              &s->domain_status);
  prom_counts(f, "starttls_scan_last_run_recommended_domains",
              "Domains of the last run by recommended Postfix level.",
              "recommended", &s->recommended);
  prom_counts(f, "starttls_scan_last_run_hosts",
              "Host records of the last run by probe status.", "status",
              &s->host_status);
  prom_counts(f, "starttls_scan_last_run_tls_hosts",
              "Hosts of the last run by negotiated TLS version.", "version",
              &s->tls_versions);
  fprintf(f,
          "# HELP starttls_scan_last_run_probes Probes of the last run: "
          "made, shared with another domain, skipped.\n"
          "# TYPE starttls_scan_last_run_probes gauge\n"
          "starttls_scan_last_run_probes{kind=\"made\"} %llu\n"
          "starttls_scan_last_run_probes{kind=\"shared\"} %llu\n"
          "starttls_scan_last_run_probes{kind=\"skipped\"} %llu\n",
          (unsigned long long)s->probes_made,
          (unsigned long long)s->probes_shared,
          (unsigned long long)s->probes_skipped);
  prom_gauge(f, "starttls_scan_last_run_starttls_offered_hosts",
             "Hosts that offered STARTTLS.", (double)s->starttls_offered);
  prom_gauge(f, "starttls_scan_last_run_trusted_hosts",
             "Hosts whose chain was trusted.", (double)s->trusted);
  if (fflush(f) != 0 || ferror(f))
    rc = -1;
  if (!is_stdout) {
    if (fclose(f) != 0)
      rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
      rc = -1;
    if (rc != 0)
      unlink(tmp);
  }
  return rc;
}

void stls_progress_print(FILE *f, uint64_t written, uint64_t total, double secs,
                         uint64_t not_ok, bool rate_bound, bool final) {
  double rate = secs > 0 ? (double)written / secs : 0;
  if (total > 0 && rate > 0) {
    double eta = (double)(total > written ? total - written : 0) / rate;
    fprintf(f, "\r%llu/%llu domains  %.1f/s  ETA %.0fs  not-ok %llu%s   ",
            (unsigned long long)written, (unsigned long long)total, rate, eta,
            (unsigned long long)not_ok, rate_bound ? "  rate-limited" : "");
  } else {
    fprintf(f, "\r%llu domains  %.1f/s  not-ok %llu%s   ",
            (unsigned long long)written, rate, (unsigned long long)not_ok,
            rate_bound ? "  rate-limited" : "");
  }
  if (final)
    fputc('\n', f);
  fflush(f);
}
