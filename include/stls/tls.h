/* TLS client over memory buffers (mbedTLS 3.6), for use on a libuv stream.
 *
 * A stls_tls_ctx_t is made once per worker: it holds the mbedTLS config, the
 * random generator and a chain judge (chain.h: the parsed trust stores and
 * a cache of chain verdicts). The handshake itself checks no chain. A
 * stls_tls_conn_t is made only after STARTTLS was accepted and freed right
 * after the EHLO inside TLS, so idle sessions stay small.
 *
 * Ciphertext from the socket goes in with stls_tls_conn_feed(); mbedTLS
 * output goes out through the send function given at creation, which must
 * queue the bytes (for uv_write) and return at once.
 */
#ifndef STLS_TLS_H
#define STLS_TLS_H

#include <stddef.h>

#include "stls/result.h"

typedef struct stls_tls_ctx_s stls_tls_ctx_t;
typedef struct stls_tls_conn_s stls_tls_conn_t;

/* Queue len bytes for sending; return 0, or -1 if they cannot be queued. */
typedef int (*stls_tls_send_fn)(void *arg, const unsigned char *buf,
                                size_t len);

/* ca_file NULL means the system store. On failure returns -1 and writes a
 * one-line reason into err. */
int stls_tls_ctx_init(stls_tls_ctx_t **out, const char *ca_file, char *err,
                      size_t errlen);
/* The same with several named trust stores ("NAME=FILE" specs; the
 * ca_file, when given, is the first store, "default") and a file of known
 * intermediates (may be NULL), see stls_chain_judge_new() in chain.h. */
int stls_tls_ctx_init_stores(stls_tls_ctx_t **out, const char *ca_file,
                             const char *const *stores, size_t n_stores,
                             const char *intermediates, char *err,
                             size_t errlen);
void stls_tls_ctx_free(stls_tls_ctx_t *ctx);

/* The context's chain judge (trust stores and verdict cache, chain.h),
 * for chains that did not come from one of its connections. */
struct stls_chain_judge_s *stls_tls_ctx_judge(stls_tls_ctx_t *ctx);

/* sni may be NULL or an IP literal (then no SNI is sent). tls12_only offers
 * TLS 1.2 alone (see stls_tls_conn_wants_tls12_retry). NULL on ENOMEM. */
stls_tls_conn_t *stls_tls_conn_new(stls_tls_ctx_t *ctx, const char *sni,
                                   int tls12_only, stls_tls_send_fn send,
                                   void *send_arg);
void stls_tls_conn_free(stls_tls_conn_t *c);

/* Append ciphertext received from the peer. -1 on ENOMEM or overflow. */
int stls_tls_conn_feed(stls_tls_conn_t *c, const unsigned char *buf,
                       size_t len);

/* Drive the handshake: 0 done, 1 needs more input, -1 failed. */
int stls_tls_conn_handshake(stls_tls_conn_t *c);
/* Application data: write returns 0 or -1; read returns bytes read, 0 when
 * more input is needed, -1 on error or close. */
int stls_tls_conn_write(stls_tls_conn_t *c, const void *buf, size_t len);
int stls_tls_conn_read(stls_tls_conn_t *c, void *buf, size_t len);
/* After a failed handshake: did it fail only because of the mbedTLS 3.6.6
 * TLS 1.2 RSA-PSS regression, so that a new connection offering TLS 1.2
 * alone would succeed? */
int stls_tls_conn_wants_tls12_retry(const stls_tls_conn_t *c);

/* Send close_notify (best effort). */
void stls_tls_conn_close_notify(stls_tls_conn_t *c);

/* After a failure, its cause: TLS_ALERT when the peer sent an alert
 * (stls_tls_conn_alert() has it), CERT_MESSAGE_TOO_LARGE when the server's
 * Certificate message is larger than mbedTLS can receive (16 KB: a limit
 * of this client, not a fault of the server), else TLS_ERROR. */
stls_cause_t stls_tls_conn_cause(const stls_tls_conn_t *c);

/* After a failure: an error code (TLS_ALERT_<NAME> when the peer sent an
 * alert, CERTIFICATE_MESSAGE_TOO_LARGE, else TLS_ERROR) and a message
 * with mbedTLS's text (or the size of the too large message). */
void stls_tls_conn_error(const stls_tls_conn_t *c, char *code, size_t codelen,
                         char *msg, size_t msglen);
/* After a failure: the alert description the peer sent, or -1 if none. */
int stls_tls_conn_alert(const stls_tls_conn_t *c);

/* After a completed handshake: version, cipher, the chain as sent, trust
 * against the context's store, expiry and the MX-name check for mx.
 * Returns 0, or -1 on ENOMEM. */
int stls_tls_conn_collect(stls_tls_conn_t *c, const char *mx,
                          stls_tls_result_t *out);

/* Translate an mbedTLS ciphersuite name to its IANA name
 * ("TLS1-3-AES-256-GCM-SHA384" -> "TLS_AES_256_GCM_SHA384"). */
void stls_tls_iana_cipher_name(const char *mbed, char *out, size_t len);
/* Name of a TLS alert description ("handshake_failure"), or NULL. */
const char *stls_tls_alert_name(int desc);

#endif
