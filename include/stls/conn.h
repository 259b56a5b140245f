/* One outbound TCP connection on a libuv loop, optionally carrying TLS.
 *
 * Every connection the program makes (the SMTP probe, the MTA-STS policy
 * fetch) goes through this type, so the private-address guard
 * (addrguard.h) sits in one place: just before connect(), after DNS.
 *
 * A connection is made with stls_conn_open() and always ends with
 * stls_conn_close(); on_close then runs once every handle is closed, and
 * the object is freed after it returns. Outcomes (connected, refused,
 * blocked, timed out) come through on_connect, never before
 * stls_conn_open() has returned. Once connected the connection reads all
 * the time: clear bytes go to on_read; after stls_conn_tls_start() the
 * bytes are ciphertext, fed to the TLS state, and on_read is told so
 * (buf NULL), so the owner drives the handshake or reads plaintext with
 * the stls_tls_conn_* calls on stls_conn_tls().
 */
#ifndef STLS_CONN_H
#define STLS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "stls/tls.h"

typedef struct stls_conn_s stls_conn_t;

/* on_connect status for an address the guard refused (no TCP connection
 * was attempted). A value libuv never uses. */
#define STLS_CONN_EBLOCKED (-100001)
/* on_read nread when the peer sent more ciphertext than TLS can hold. */
#define STLS_CONN_ETLSFEED (-100002)

typedef struct stls_conn_cbs_s {
  /* status 0 (connected), UV_ETIMEDOUT (connect_timeout_ms passed),
   * STLS_CONN_EBLOCKED (why names the range), or a libuv error. */
  void (*on_connect)(stls_conn_t *c, int status, const char *why, void *arg);
  /* nread > 0: buf holds clear bytes, or buf is NULL when TLS is on and
   * nread bytes of ciphertext were fed to it. nread < 0: UV_EOF, a libuv
   * error or STLS_CONN_ETLSFEED. */
  void (*on_read)(stls_conn_t *c, ssize_t nread, const char *buf, void *arg);
  /* The timeout set with stls_conn_set_timeout() passed. */
  void (*on_timeout)(stls_conn_t *c, void *arg);
  /* After stls_conn_close(), all handles closed; c is freed after it. */
  void (*on_close)(stls_conn_t *c, void *arg);
} stls_conn_cbs_t;

typedef struct stls_conn_opts_s {
  int64_t connect_timeout_ms; /* 0: none */
  bool guard_private;         /* refuse what stls_addr_allowed() refuses */
} stls_conn_opts_t;

/* Start connecting to addr (AF_INET or AF_INET6, port set). cbs is copied.
 * Returns 0 (then on_connect comes, and the caller must close c at the
 * end) or UV_ENOMEM / UV_EINVAL (no c, no callback). */
int stls_conn_open(stls_conn_t **out, uv_loop_t *loop,
                   const struct sockaddr *addr, const stls_conn_opts_t *o,
                   const stls_conn_cbs_t *cbs, void *arg);

/* Arm the one timer for ms (replacing any earlier one); 0 disarms it. */
void stls_conn_set_timeout(stls_conn_t *c, int64_t ms);

/* Queue bytes: through TLS when it is on, else as they are. 0 or -1. */
int stls_conn_write(stls_conn_t *c, const void *buf, size_t len);

/* Start TLS over the connection (TLS state is created only now). sni and
 * tls12_only as stls_tls_conn_new(). 0, or -1 on ENOMEM. The owner then
 * calls stls_tls_conn_handshake(stls_conn_tls(c)). */
int stls_conn_tls_start(stls_conn_t *c, stls_tls_ctx_t *ctx, const char *sni,
                        int tls12_only);
/* The TLS state, or NULL when TLS is off. */
stls_tls_conn_t *stls_conn_tls(stls_conn_t *c);
/* Drop the TLS state (after close_notify when notify is set); later bytes
 * are clear again. */
void stls_conn_tls_end(stls_conn_t *c, bool notify);

/* Half-close the sending side (after QUIT). */
void stls_conn_shutdown(stls_conn_t *c);

/* Close: TLS state freed now, handles closed, then on_close. Further
 * callbacks other than on_close do not come. Safe to call twice. */
void stls_conn_close(stls_conn_t *c);

/* The peer address as text (for records and messages). */
const char *stls_conn_peer(const stls_conn_t *c);

#endif
