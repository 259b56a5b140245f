/* The facts of a hello parse as "key=value" lines, shared by the unit test
 * and hello_tool, so the captured fixtures' expectations (tests/unit/hello/
 * *.expect, written by openssl_flights.py) are checked the same way offline
 * and against live servers.
 *
 * Values use the name tables where they have a name ("TLSv1.2",
 * "x25519"), else "0x%04x"; booleans are 0/1. Every key is always present,
 * in a fixed order, so two results can be compared as strings.
 */
#ifndef STLS_TEST_HELLO_KV_H
#define STLS_TEST_HELLO_KV_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "stls/hello.h"

typedef struct {
  char *buf;
  size_t len;
  size_t cap;
} hello_kv_t;

static inline void hello_kv_add(hello_kv_t *kv, const char *key,
                                const char *fmt, ...) {
  va_list ap;
  int n;

  if (kv->len >= kv->cap)
    return;
  n = snprintf(kv->buf + kv->len, kv->cap - kv->len, "%s=", key);
  if (n > 0)
    kv->len += (size_t)n < kv->cap - kv->len ? (size_t)n : kv->cap - kv->len;
  if (kv->len >= kv->cap)
    return;
  va_start(ap, fmt);
  n = vsnprintf(kv->buf + kv->len, kv->cap - kv->len, fmt, ap);
  va_end(ap);
  if (n > 0)
    kv->len += (size_t)n < kv->cap - kv->len ? (size_t)n : kv->cap - kv->len;
  if (kv->len + 1 < kv->cap) {
    kv->buf[kv->len++] = '\n';
    kv->buf[kv->len] = '\0';
  }
}

/* A code point by name when the table has one, else in hex; 0 is "none". */
static inline void hello_kv_named(hello_kv_t *kv, const char *key, unsigned v,
                                  const char *name) {
  if (v == 0 && name == NULL)
    hello_kv_add(kv, key, "none");
  else if (name != NULL)
    hello_kv_add(kv, key, "%s", name);
  else
    hello_kv_add(kv, key, "0x%04x", v);
}

static inline const char *hello_kv_rc_name(stls_hello_rc_t rc) {
  return rc == STLS_HELLO_DONE    ? "done"
         : rc == STLS_HELLO_ERROR ? "error"
                                  : "need-more";
}

/* Write every fact of r (and the parse's return code) into buf. */
static inline void hello_kv_format(const stls_hello_result_t *r,
                                   stls_hello_rc_t rc, char *buf, size_t cap) {
  hello_kv_t kv = {buf, 0, cap};
  char exts[STLS_HELLO_MAX_EXT * 7 + 1];
  size_t i, off = 0;

  buf[0] = '\0';
  exts[0] = '\0';
  for (i = 0; i < r->n_ext && i < STLS_HELLO_MAX_EXT; i++)
    off += (size_t)snprintf(exts + off, sizeof(exts) - off, "%s%u",
                            i ? "," : "", r->ext[i]);

  hello_kv_add(&kv, "rc", "%s", hello_kv_rc_name(rc));
  hello_kv_add(&kv, "kind", "%s", stls_hello_kind_name(r->kind));
  hello_kv_add(&kv, "consumed", "%zu", r->consumed);
  hello_kv_add(&kv, "error", "%s", r->error);
  hello_kv_add(&kv, "alert", "%d", r->alert);
  hello_kv_add(&kv, "alert_level", "%u", r->alert_level);
  hello_kv_add(&kv, "alert_desc", "%u", r->alert_desc);
  hello_kv_add(&kv, "ssl2_msg_type", "%u", r->ssl2_msg_type);
  hello_kv_named(&kv, "record_version", r->record_version,
                 stls_tls_version_name(r->record_version));
  hello_kv_named(&kv, "legacy_version", r->legacy_version,
                 stls_tls_version_name(r->legacy_version));
  hello_kv_named(&kv, "version", r->version, stls_tls_version_name(r->version));
  hello_kv_named(&kv, "cipher", r->cipher,
                 r->kind == STLS_HELLO_KIND_SERVER_HELLO
                     ? stls_tls_cipher_iana_name(r->cipher)
                     : NULL);
  hello_kv_add(&kv, "kx", "%s", stls_hello_kx_name(r->kx));
  hello_kv_add(&kv, "compression", "%u", r->compression);
  hello_kv_add(&kv, "session_id_len", "%u", r->session_id_len);
  hello_kv_add(&kv, "hello_retry", "%d", r->hello_retry);
  hello_kv_named(&kv, "hello_retry_group", r->hello_retry_group,
                 stls_tls_group_name(r->hello_retry_group));
  hello_kv_add(&kv, "downgrade", "%u", r->downgrade);
  hello_kv_add(&kv, "extensions", "%s", exts);
  hello_kv_add(&kv, "status_request", "%d", r->status_request);
  hello_kv_add(&kv, "secure_renegotiation", "%d", r->secure_renegotiation);
  hello_kv_add(&kv, "extended_master_secret", "%d", r->extended_master_secret);
  hello_kv_add(&kv, "encrypt_then_mac", "%d", r->encrypt_then_mac);
  hello_kv_named(&kv, "group", r->group, stls_tls_group_name(r->group));
  hello_kv_add(&kv, "dh_bits", "%u", r->dh_bits);
  hello_kv_named(&kv, "sigalg", r->sigalg, stls_tls_sigalg_name(r->sigalg));
  hello_kv_add(&kv, "server_key_exchange", "%d", r->server_key_exchange);
  hello_kv_add(&kv, "certificate", "%d", r->certificate);
  hello_kv_add(&kv, "certificate_len", "%zu", r->certificate_len);
  hello_kv_add(&kv, "cert_count", "%u", r->cert_count);
  hello_kv_add(&kv, "ocsp_staple", "%d", r->ocsp_staple);
  hello_kv_add(&kv, "ocsp_len", "%zu", r->ocsp_len);
  hello_kv_add(&kv, "cert_request", "%d", r->cert_request);
  hello_kv_add(&kv, "server_hello_done", "%d", r->server_hello_done);
  hello_kv_add(&kv, "change_cipher_spec", "%d", r->change_cipher_spec);
}

/* Check that every "key=value" line of expect appears in facts (as
 * formatted above). Returns NULL, or the first expected line that does not
 * match (pointing into expect; it ends at '\n'). */
static inline const char *hello_kv_mismatch(const char *facts,
                                            const char *expect) {
  const char *line = expect;

  while (*line != '\0') {
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) : strlen(line);
    const char *f = facts;
    int found = 0;

    if (n > 0 && line[0] != '#') {
      while (*f != '\0') {
        const char *fend = strchr(f, '\n');
        size_t fn = fend ? (size_t)(fend - f) : strlen(f);

        if (fn == n && memcmp(f, line, n) == 0) {
          found = 1;
          break;
        }
        f += fn + (fend != NULL);
      }
      if (!found)
        return line;
    }
    line += n + (end != NULL);
  }
  return NULL;
}

#endif
