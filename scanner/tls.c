/* TLS client over memory buffers (mbedTLS 3.6). See tls.h. */
#include "stls/tls.h"
#include "stls/cert.h"
#include "stls/chain.h"
#include "stls/hello.h"
#include "stls/util.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/debug.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cap on buffered ciphertext: a TLS record is at most 16 KiB + overhead, so
 * anything far beyond that is a peer that does not speak TLS. */
#define TLS_INBUF_MAX (256 * 1024)
struct stls_tls_ctx_s {
  mbedtls_ssl_config conf;   /* TLS 1.2 and 1.3 */
  mbedtls_ssl_config conf12; /* TLS 1.2 only: the fallback, see tls.h */
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  stls_chain_judge_t *judge; /* trust stores and the verdict cache */
};

struct stls_tls_conn_s {
  stls_tls_ctx_t *ctx;
  mbedtls_ssl_context ssl;
  stls_tls_send_fn send;
  void *send_arg;
  unsigned char *in;
  size_t in_len, in_off, in_cap;
  int last_rc;
  /* Plaintext alerts seen on the wire (before encryption starts). */
  int alert_desc;
  /* Record sniffer state: bytes of the current record header seen, and
   * body bytes still to skip. */
  unsigned char hdr[5];
  size_t hdr_len;
  size_t body_left;
  int body_is_alert;
  unsigned char alert_buf[2];
  size_t alert_len;
  int encrypted; /* a ChangeCipherSpec or TLS 1.3 record was seen */
  int tls12_only;
  /* The server's handshake flight read off the wire (group, TLS 1.2
   * signature, extensions); freed once the handshake is over. */
  stls_hello_parser_t *sniff;
  int sniff_done;
  uint16_t tls13_sigalg; /* from mbedTLS's debug output, see dbg_cb */
  /* The first handshake message the server sent that is larger than
   * mbedTLS can receive (MBEDTLS_SSL_IN_CONTENT_LEN): its type and total
   * length, header included; 0 when none. */
  unsigned big_hs_type;
  size_t big_hs_len;
};

/* The connection whose handshake step runs on this thread right now: the
 * debug callback is per configuration, not per connection. */
static _Thread_local stls_tls_conn_t *tls_current;

/* mbedTLS reads the TLS 1.3 CertificateVerify (encrypted on the wire) and
 * tells its signature scheme only in a debug message; the same goes for
 * the type and length of each handshake message it reassembles, which is
 * how a TLS 1.3 Certificate message too large for it can be named. */
static void dbg_cb(void *arg, int level, const char *file, int line,
                   const char *str) {
  static const char key[] = "Certificate Verify: Signature algorithm ( ";
  static const char hs_key[] = "handshake message: msglen = ";
  const char *p;
  (void)arg;
  (void)level;
  (void)file;
  (void)line;
  if (tls_current && (p = strstr(str, key)) != NULL) {
    unsigned v;
    if (sscanf(p + sizeof(key) - 1, "%x", &v) == 1)
      tls_current->tls13_sigalg = (uint16_t)v;
  }
  if (tls_current && tls_current->big_hs_len == 0 &&
      (p = strstr(str, hs_key)) != NULL) {
    unsigned msglen, type, hslen;
    if (sscanf(p + sizeof(hs_key) - 1, "%u, type = %u, hslen = %u", &msglen,
               &type, &hslen) == 3 &&
        hslen > MBEDTLS_SSL_IN_CONTENT_LEN) {
      tls_current->big_hs_type = type;
      tls_current->big_hs_len = hslen;
    }
  }
}

static int client_conf(stls_tls_ctx_t *ctx, mbedtls_ssl_config *conf,
                       mbedtls_ssl_protocol_version max, char *err,
                       size_t errlen) {
  int rc = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_CLIENT,
                                       MBEDTLS_SSL_TRANSPORT_STREAM,
                                       MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) {
    snprintf(err, errlen, "ssl config failed (-0x%04x)", (unsigned)-rc);
    return -1;
  }
  /* The handshake completes whatever the certificate, like Postfix at
   * "may"; trust is then computed (and cached) by us, apart from names. */
  mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_NONE);
  mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &ctx->drbg);
  mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_2);
  mbedtls_ssl_conf_max_tls_version(conf, max);
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
  mbedtls_ssl_conf_session_tickets(conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#endif
#if defined(MBEDTLS_DEBUG_C)
  mbedtls_ssl_conf_dbg(conf, dbg_cb, NULL);
#endif
  return 0;
}

int stls_tls_ctx_init(stls_tls_ctx_t **out, const char *ca_file, char *err,
                      size_t errlen) {
  return stls_tls_ctx_init_stores(out, ca_file, NULL, 0, NULL, err, errlen);
}

int stls_tls_ctx_init_stores(stls_tls_ctx_t **out, const char *ca_file,
                             const char *const *stores, size_t n_stores,
                             const char *intermediates, char *err,
                             size_t errlen) {
  static const char pers[] = "starttls-scan";
  stls_tls_ctx_t *ctx;
  int rc;
  psa_status_t ps;

  *out = NULL;
  /* TLS 1.3 in mbedTLS 3.6 does its crypto through PSA. */
  ps = psa_crypto_init();
  if (ps != PSA_SUCCESS) {
    snprintf(err, errlen, "psa_crypto_init failed (%d)", (int)ps);
    return -1;
  }
  ctx = calloc(1, sizeof(*ctx));
  if (!ctx) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  /* Init everything before the first failure point: one cleanup path. */
  mbedtls_ssl_config_init(&ctx->conf);
  mbedtls_ssl_config_init(&ctx->conf12);
  mbedtls_entropy_init(&ctx->entropy);
  mbedtls_ctr_drbg_init(&ctx->drbg);

  rc = mbedtls_ctr_drbg_seed(&ctx->drbg, mbedtls_entropy_func, &ctx->entropy,
                             (const unsigned char *)pers, sizeof(pers) - 1);
  if (rc != 0) {
    snprintf(err, errlen, "random generator seed failed (-0x%04x)",
             (unsigned)-rc);
    goto fail;
  }
#if defined(MBEDTLS_DEBUG_C)
  /* Level 3 carries the TLS 1.3 signature scheme; the threshold is global
   * but only our configurations have a debug callback. */
  mbedtls_debug_set_threshold(3);
#endif
  /* Parsed once per worker; every chain is judged against all stores. */
  if (stls_chain_judge_new(&ctx->judge, ca_file, stores, n_stores,
                           intermediates, err, errlen) != 0)
    goto fail;
  if (client_conf(ctx, &ctx->conf, MBEDTLS_SSL_VERSION_TLS1_3, err, errlen) ||
      client_conf(ctx, &ctx->conf12, MBEDTLS_SSL_VERSION_TLS1_2, err, errlen))
    goto fail;
  *out = ctx;
  return 0;

fail:
  stls_tls_ctx_free(ctx);
  return -1;
}

void stls_tls_ctx_free(stls_tls_ctx_t *ctx) {
  if (!ctx)
    return;
  mbedtls_ssl_config_free(&ctx->conf);
  mbedtls_ssl_config_free(&ctx->conf12);
  mbedtls_ctr_drbg_free(&ctx->drbg);
  mbedtls_entropy_free(&ctx->entropy);
  stls_chain_judge_free(ctx->judge);
  free(ctx);
}

stls_chain_judge_t *stls_tls_ctx_judge(stls_tls_ctx_t *ctx) {
  return ctx->judge;
}

/* Watch records arriving from the server to learn alert descriptions while
 * they are still in clear text; mbedTLS keeps the received alert private. */
static void sniff_records(stls_tls_conn_t *c, const unsigned char *p,
                          size_t n) {
  while (n > 0 && !c->encrypted) {
    if (c->body_left == 0) {
      c->hdr[c->hdr_len++] = *p++;
      n--;
      if (c->hdr_len < 5)
        continue;
      c->hdr_len = 0;
      c->body_left = ((size_t)c->hdr[3] << 8) | c->hdr[4];
      c->body_is_alert = c->hdr[0] == 21 && c->body_left == 2;
      c->alert_len = 0;
      if (c->hdr[0] == 20 || c->hdr[0] == 23)
        c->encrypted = 1; /* after this, alerts are no longer readable */
      continue;
    }
    size_t take = n < c->body_left ? n : c->body_left;
    if (c->body_is_alert)
      for (size_t i = 0; i < take && c->alert_len < 2; i++)
        c->alert_buf[c->alert_len++] = p[i];
    if (c->body_is_alert && c->alert_len == 2 && c->alert_desc < 0)
      c->alert_desc = c->alert_buf[1];
    p += take;
    n -= take;
    c->body_left -= take;
  }
}

static int bio_send(void *arg, const unsigned char *buf, size_t len) {
  stls_tls_conn_t *c = arg;
  if (c->send(c->send_arg, buf, len) != 0)
    return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
  return (int)len;
}

static int bio_recv(void *arg, unsigned char *buf, size_t len) {
  stls_tls_conn_t *c = arg;
  size_t avail = c->in_len - c->in_off;
  if (avail == 0)
    return MBEDTLS_ERR_SSL_WANT_READ;
  if (len > avail)
    len = avail;
  memcpy(buf, c->in + c->in_off, len);
  c->in_off += len;
  if (c->in_off == c->in_len)
    c->in_off = c->in_len = 0;
  return (int)len;
}

static int is_ip_literal(const char *s) {
  return s && (strchr(s, ':') || strspn(s, "0123456789.") == strlen(s));
}

stls_tls_conn_t *stls_tls_conn_new(stls_tls_ctx_t *ctx, const char *sni,
                                   int tls12_only, stls_tls_send_fn send,
                                   void *send_arg) {
  stls_tls_conn_t *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->ctx = ctx;
  c->send = send;
  c->send_arg = send_arg;
  c->alert_desc = -1;
  mbedtls_ssl_init(&c->ssl);
  c->tls12_only = tls12_only;
  c->sniff = malloc(sizeof(*c->sniff));
  if (c->sniff)
    stls_hello_parser_init(c->sniff); /* without it we only lose facts */
  if (mbedtls_ssl_setup(&c->ssl, tls12_only ? &ctx->conf12 : &ctx->conf) != 0)
    goto fail;
  /* SNI is the MX host name; an address literal is never sent as SNI. */
  if (sni && *sni && !is_ip_literal(sni) &&
      mbedtls_ssl_set_hostname(&c->ssl, sni) != 0)
    goto fail;
  mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
  return c;
fail:
  stls_tls_conn_free(c);
  return NULL;
}

void stls_tls_conn_free(stls_tls_conn_t *c) {
  if (!c)
    return;
  mbedtls_ssl_free(&c->ssl);
  free(c->in);
  free(c->sniff);
  free(c);
}

int stls_tls_conn_feed(stls_tls_conn_t *c, const unsigned char *buf,
                       size_t len) {
  sniff_records(c, buf, len);
  if (c->sniff && !c->sniff_done &&
      stls_hello_parser_feed(c->sniff, buf, len) != STLS_HELLO_NEED_MORE)
    c->sniff_done = 1;
  if (c->in_off > 0 && c->in_off == c->in_len)
    c->in_off = c->in_len = 0;
  if (c->in_len + len > c->in_cap) {
    size_t ncap = c->in_cap ? c->in_cap : 16384;
    unsigned char *nb;
    while (ncap < c->in_len + len)
      ncap *= 2;
    if (ncap > TLS_INBUF_MAX)
      return -1;
    nb = realloc(c->in, ncap);
    if (!nb)
      return -1;
    c->in = nb;
    c->in_cap = ncap;
  }
  memcpy(c->in + c->in_len, buf, len);
  c->in_len += len;
  return 0;
}

int stls_tls_conn_handshake(stls_tls_conn_t *c) {
  int rc;
  tls_current = c;
  rc = mbedtls_ssl_handshake(&c->ssl);
  tls_current = NULL;
  if (rc == 0)
    return 0;
  if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
    return 1;
  c->last_rc = rc;
  return -1;
}

int stls_tls_conn_write(stls_tls_conn_t *c, const void *buf, size_t len) {
  const unsigned char *p = buf;
  while (len > 0) {
    int rc = mbedtls_ssl_write(&c->ssl, p, len);
    if (rc < 0) {
      /* Our send callback never blocks, so WANT_WRITE cannot persist. */
      c->last_rc = rc;
      return -1;
    }
    p += rc;
    len -= (size_t)rc;
  }
  return 0;
}

int stls_tls_conn_read(stls_tls_conn_t *c, void *buf, size_t len) {
  for (;;) {
    int rc = mbedtls_ssl_read(&c->ssl, buf, len);
    if (rc > 0)
      return rc;
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
      return 0;
#ifdef MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET
    /* TLS 1.3 servers send tickets after the handshake; we keep none. */
    if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
      continue;
#endif
    c->last_rc = rc == 0 ? MBEDTLS_ERR_SSL_CONN_EOF : rc;
    return -1;
  }
}

int stls_tls_conn_wants_tls12_retry(const stls_tls_conn_t *c) {
  /* mbedTLS 3.6.6 offers rsa_pss_rsae_* in its TLS 1.2+1.3 ClientHello
   * but rejects a TLS 1.2 ServerKeyExchange signed with them (fixed
   * upstream in 3.6.7, Mbed-TLS/mbedtls#10668). OpenSSL servers with RSA
   * keys that speak only TLS 1.2 pick exactly that. A TLS 1.2-only
   * ClientHello avoids it. */
  return !c->tls12_only && c->last_rc == MBEDTLS_ERR_SSL_ILLEGAL_PARAMETER &&
         mbedtls_ssl_get_version_number(&c->ssl) ==
             MBEDTLS_SSL_VERSION_TLS1_2 &&
         c->alert_desc < 0;
}

void stls_tls_conn_close_notify(stls_tls_conn_t *c) {
  (void)mbedtls_ssl_close_notify(&c->ssl);
}

const char *stls_tls_alert_name(int desc) {
  switch (desc) {
  case 0: return "close_notify";
  case 10: return "unexpected_message";
  case 20: return "bad_record_mac";
  case 22: return "record_overflow";
  case 40: return "handshake_failure";
  case 42: return "bad_certificate";
  case 43: return "unsupported_certificate";
  case 44: return "certificate_revoked";
  case 45: return "certificate_expired";
  case 46: return "certificate_unknown";
  case 47: return "illegal_parameter";
  case 48: return "unknown_ca";
  case 49: return "access_denied";
  case 50: return "decode_error";
  case 51: return "decrypt_error";
  case 70: return "protocol_version";
  case 71: return "insufficient_security";
  case 80: return "internal_error";
  case 86: return "inappropriate_fallback";
  case 90: return "user_canceled";
  case 109: return "missing_extension";
  case 110: return "unsupported_extension";
  case 112: return "unrecognized_name";
  case 116: return "certificate_required";
  case 120: return "no_application_protocol";
  default: return NULL;
  }
}

int stls_tls_conn_alert(const stls_tls_conn_t *c) { return c->alert_desc; }

/* The length of a Certificate message from the server too large for
 * mbedTLS to receive, or 0: from the debug output (any version), else
 * from the TLS <= 1.2 flight read off the wire. */
static size_t cert_message_too_large(const stls_tls_conn_t *c) {
  if (c->big_hs_len > 0 && c->big_hs_type == MBEDTLS_SSL_HS_CERTIFICATE)
    return c->big_hs_len;
  if (c->sniff) {
    const stls_hello_result_t *r = stls_hello_parser_result(c->sniff);
    if (r->certificate && r->certificate_len + 4 > MBEDTLS_SSL_IN_CONTENT_LEN)
      return r->certificate_len + 4;
  }
  return 0;
}

stls_cause_t stls_tls_conn_cause(const stls_tls_conn_t *c) {
  if (c->alert_desc >= 0)
    return STLS_CAUSE_TLS_ALERT;
  if (cert_message_too_large(c) > 0)
    return STLS_CAUSE_CERT_MESSAGE_TOO_LARGE;
  return STLS_CAUSE_TLS_ERROR;
}

void stls_tls_conn_error(const stls_tls_conn_t *c, char *code, size_t codelen,
                         char *msg, size_t msglen) {
  char text[160];
  size_t big = cert_message_too_large(c);
  mbedtls_strerror(c->last_rc, text, sizeof(text));
  if (c->alert_desc >= 0) {
    const char *name = stls_tls_alert_name(c->alert_desc);
    char upper[48];
    size_t i;
    if (name) {
      for (i = 0; name[i] && i < sizeof(upper) - 1; i++)
        upper[i] =
            (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
      upper[i] = '\0';
      snprintf(code, codelen, "TLS_ALERT_%s", upper);
      snprintf(msg, msglen, "server sent TLS alert %s (%d)", name,
               c->alert_desc);
    } else {
      snprintf(code, codelen, "TLS_ALERT_%d", c->alert_desc);
      snprintf(msg, msglen, "server sent TLS alert %d", c->alert_desc);
    }
    return;
  }
  if (big > 0) {
    /* Not the server's fault: OpenSSL (Postfix) takes up to 100 KB. */
    stls_strlcpy(code, "CERTIFICATE_MESSAGE_TOO_LARGE", codelen);
    snprintf(msg, msglen,
             "the server's Certificate message is %zu bytes; this client "
             "(mbedTLS) receives at most %d bytes per handshake message, a "
             "limit of the client, not a fault of the server",
             big, (int)MBEDTLS_SSL_IN_CONTENT_LEN);
    return;
  }
  stls_strlcpy(code, "TLS_ERROR", codelen);
  snprintf(msg, msglen, "%s (-0x%04x)", text, (unsigned)-c->last_rc);
}

void stls_tls_iana_cipher_name(const char *mbed, char *out, size_t len) {
  size_t i = 0, o = 0;
  if (!mbed) {
    stls_strlcpy(out, "", len);
    return;
  }
  /* mbedTLS spells TLS 1.3 suites "TLS1-3-AES-..."; IANA "TLS_AES_...". */
  if (strncmp(mbed, "TLS1-3-", 7) == 0) {
    i = 7;
    o = stls_strlcpy(out, "TLS_", len);
  }
  for (; mbed[i] && o + 1 < len; i++, o++)
    out[o] = mbed[i] == '-' ? '_' : mbed[i];
  out[o < len ? o : len - 1] = '\0';
}

int stls_tls_conn_collect(stls_tls_conn_t *c, const char *mx,
                          stls_tls_result_t *out) {
  const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
  int id = mbedtls_ssl_get_ciphersuite_id_from_ssl(&c->ssl);

  stls_strlcpy(out->version, mbedtls_ssl_get_version(&c->ssl),
               sizeof(out->version));
  stls_tls_iana_cipher_name(mbedtls_ssl_get_ciphersuite(&c->ssl),
                            out->cipher_name, sizeof(out->cipher_name));
  out->cipher_id = (uint16_t)id;
  if (c->sniff) {
    const stls_hello_result_t *r = stls_hello_parser_result(c->sniff);
    if (r->kind == STLS_HELLO_KIND_SERVER_HELLO) {
      out->handshake_seen = true;
      out->group = r->group;
      out->hello_retry = r->hello_retry;
      out->sigalg = r->sigalg ? r->sigalg : c->tls13_sigalg;
      out->ocsp_stapled = r->ocsp_staple;
      out->secure_renegotiation = r->secure_renegotiation;
      out->extended_master_secret = r->extended_master_secret;
    }
    free(c->sniff);
    c->sniff = NULL;
  }
  out->trusted = false;
  out->trust_reasons = STLS_TRUST_REASON(OTHER);
  if (!peer || !peer->raw.p)
    return 0; /* anonymous suite: no certificate at all */
  if (stls_cert_describe_chain(peer, out) != 0)
    return -1;
  out->expired = mbedtls_x509_time_is_past(&peer->valid_to) != 0;
  return stls_chain_judge(c->ctx->judge, mx, out);
}
