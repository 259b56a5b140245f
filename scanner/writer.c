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

#include <stdlib.h>
#include <string.h>

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
      jstr(&j, pv, "how", r->versions[v].how[0] ? r->versions[v].how
                                               : "not probed");
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
                              const char *recipient_domain,
                              time_t scanned_at) {
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
    jms(j, y, "fetch", r->timing.total >= 0 && r->timing.txt >= 0
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

cJSON *stls_json_summary(const stls_summary_t *s) {
  jctx_t j = {1};
  char ts[32];
  cJSON *o = cJSON_CreateObject(), *x;
  if (!o)
    return NULL;
  jstr(&j, o, "schema", STLS_SUMMARY_SCHEMA_ID);
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
