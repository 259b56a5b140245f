/* The only module that talks JSON. See writer.h. */
#include "stls/writer.h"
#include "stls/cert.h"
#include "stls/names.h"
#include "stls/util.h"

#include <stdlib.h>
#include <string.h>

/* Helpers that keep going after ENOMEM and report it once at the end:
 * cJSON_Add* return NULL on failure, which we check via `ok`. */
typedef struct jctx_s {
  int ok;
} jctx_t;

static cJSON *jstr(jctx_t *j, cJSON *o, const char *k, const char *v) {
  cJSON *x = v ? cJSON_AddStringToObject(o, k, v) : cJSON_AddNullToObject(o, k);
  if (!x)
    j->ok = 0;
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

static void jstrlist(jctx_t *j, cJSON *o, const char *k,
                     const stls_strlist_t *l) {
  cJSON *a = jarr(j, o, k);
  if (!a)
    return;
  for (size_t i = 0; i < l->n; i++) {
    cJSON *s = cJSON_CreateString(l->v[i]);
    if (!s || !cJSON_AddItemToArray(a, s)) {
      cJSON_Delete(s);
      j->ok = 0;
      return;
    }
  }
}

static void add_cert(jctx_t *j, cJSON *arr, const stls_cert_t *c) {
  cJSON *o = cJSON_CreateObject(), *key;
  if (!o || !cJSON_AddItemToArray(arr, o)) {
    cJSON_Delete(o);
    j->ok = 0;
    return;
  }
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

static void add_tls(jctx_t *j, cJSON *o, const stls_tls_result_t *t,
                    const char *recipient_domain) {
  cJSON *tls = jobj(j, o, "tls"), *x, *chain, *reasons;
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
    if ((reasons = jarr(j, x, "reasons")))
      for (unsigned b = 0; b < STLS_TRUST_REASON_COUNT; b++)
        if (t->trust_reasons & (1u << b)) {
          cJSON *s = cJSON_CreateString(stls_trust_reason_name(b));
          if (!s || !cJSON_AddItemToArray(reasons, s)) {
            cJSON_Delete(s);
            j->ok = 0;
          }
        }
  }
  if ((x = jobj(j, tls, "names"))) {
    jbool(j, x, "mx_hostname", t->name_mx);
    if (recipient_domain && t->n_chain > 0)
      jbool(j, x, "recipient_domain",
            stls_cert_names_domain(&t->chain[0], recipient_domain));
    else
      jnull(j, x, "recipient_domain");
  }
  jbool(j, tls, "expired", t->expired);
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
    jstr(&j, x, "stage", stls_stage_name(r->error.stage));
    jstr(&j, x, "code", r->error.code);
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
  if (r->tls_done)
    add_tls(&j, o, &r->tls, recipient_domain);
  else
    jnull(&j, o, "tls");
  add_ehlo(&j, o, "ehlo_tls", NULL, r->ehlo_tls_reply, &r->ehlo_tls_ext);
  if ((x = jarr(&j, o, "findings")))
    for (size_t i = 0; i < r->n_findings; i++) {
      cJSON *f = cJSON_CreateObject();
      if (!f || !cJSON_AddItemToArray(x, f)) {
        cJSON_Delete(f);
        j.ok = 0;
        break;
      }
      jstr(&j, f, "id", r->findings[i].id);
      jstr(&j, f, "message", r->findings[i].message);
    }
  if ((x = jobj(&j, o, "timing_ms"))) {
    jms(&j, x, "connect", r->timing.connect);
    jms(&j, x, "greeting", r->timing.greeting);
    jms(&j, x, "ehlo", r->timing.ehlo);
    jms(&j, x, "starttls", r->timing.starttls);
    jms(&j, x, "handshake", r->timing.handshake);
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
