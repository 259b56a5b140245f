/* One outbound connection, optionally with TLS over it. See conn.h.
 *
 * The object owns two handles (the TCP stream and one timer) and is freed
 * only in their close callbacks, through stls_conn_close(). Outcomes found
 * before a callback could run (the guard's refusal, an error uv_tcp_connect
 * reports at once) are delivered from the timer on the next loop turn, so
 * no callback ever runs inside stls_conn_open().
 */
#include "stls/conn.h"
#include "stls/addrguard.h"
#include "stls/util.h"

#include <stdlib.h>
#include <string.h>

/* FAILED: the connect failed, waiting for the owner to close. */
enum { CONN_CONNECTING, CONN_OPEN, CONN_FAILED, CONN_CLOSING };

struct stls_conn_s {
  uv_loop_t *loop;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req;
  int state;
  int open_handles;
  int shutdown_sent;
  int early_status;      /* an outcome known before the loop ran, or 0 */
  const char *early_why; /* the guard's reason with STLS_CONN_EBLOCKED */
  stls_tls_conn_t *tls;
  stls_conn_cbs_t cbs;
  void *arg;
  char peer[64];
};

typedef struct write_req_s {
  uv_write_t req;
  char data[];
} write_req_t;

/* Read callbacks consume the buffer synchronously, so one per thread. */
static _Thread_local char conn_read_buf[65536];

static void write_cb(uv_write_t *req, int status) {
  (void)status; /* a failed write shows up as a read error or EOF */
  free(req);
}

static int write_raw(stls_conn_t *c, const void *data, size_t len) {
  write_req_t *w;
  uv_buf_t buf;
  if (c->state != CONN_OPEN)
    return -1;
  w = malloc(sizeof(*w) + len);
  if (!w)
    return -1;
  memcpy(w->data, data, len);
  buf = uv_buf_init(w->data, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, write_cb) < 0) {
    free(w);
    return -1;
  }
  return 0;
}

static int tls_send_cb(void *arg, const unsigned char *buf, size_t len) {
  return write_raw(arg, buf, len);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(conn_read_buf, sizeof(conn_read_buf));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  stls_conn_t *c = stream->data;
  if (c->state != CONN_OPEN || nread == 0)
    return;
  if (nread < 0) {
    c->cbs.on_read(c, nread, NULL, c->arg);
    return;
  }
  if (!c->tls) {
    c->cbs.on_read(c, nread, buf->base, c->arg);
    return;
  }
  if (stls_tls_conn_feed(c->tls, (const unsigned char *)buf->base,
                         (size_t)nread) != 0) {
    c->cbs.on_read(c, STLS_CONN_ETLSFEED, NULL, c->arg);
    return;
  }
  c->cbs.on_read(c, nread, NULL, c->arg);
}

static void connected(stls_conn_t *c, int status, const char *why) {
  c->state = CONN_FAILED;
  if (status == 0) {
    c->state = CONN_OPEN;
    if ((status = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)) !=
        0)
      c->state = CONN_FAILED;
  }
  c->cbs.on_connect(c, status, why, c->arg);
}

static void connect_cb(uv_connect_t *req, int status) {
  stls_conn_t *c = req->data;
  if (c->state != CONN_CONNECTING)
    return; /* closed meanwhile: this is the cancellation */
  uv_timer_stop(&c->timer);
  connected(c, status, NULL);
}

static void timer_cb(uv_timer_t *t) {
  stls_conn_t *c = t->data;
  if (c->state == CONN_CLOSING)
    return;
  if (c->state == CONN_CONNECTING) {
    int st = c->early_status ? c->early_status : UV_ETIMEDOUT;
    c->early_status = 0;
    c->state = CONN_FAILED;
    c->cbs.on_connect(c, st, c->early_why, c->arg);
    return;
  }
  if (c->cbs.on_timeout)
    c->cbs.on_timeout(c, c->arg);
}

static void arm(stls_conn_t *c, int64_t ms) {
  /* The loop's clock is cached; after a long computation (a handshake, or
   * valgrind) a timer armed from it would fire early. */
  uv_update_time(c->loop);
  uv_timer_start(&c->timer, timer_cb, (uint64_t)(ms > 0 ? ms : 0), 0);
}

int stls_conn_open(stls_conn_t **out, uv_loop_t *loop,
                   const struct sockaddr *addr, const stls_conn_opts_t *o,
                   const stls_conn_cbs_t *cbs, void *arg) {
  stls_conn_t *c;
  const char *why = NULL;
  int r;

  *out = NULL;
  if (!addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
      !cbs || !cbs->on_connect || !cbs->on_read || !cbs->on_close)
    return UV_EINVAL;
  c = calloc(1, sizeof(*c));
  if (!c)
    return UV_ENOMEM;
  c->loop = loop;
  c->cbs = *cbs;
  c->arg = arg;
  c->state = CONN_CONNECTING;
  uv_ip_name(addr, c->peer, sizeof(c->peer));
  /* uv_tcp_init() makes no socket; the connect below does. */
  uv_tcp_init(loop, &c->tcp);
  uv_timer_init(loop, &c->timer);
  c->tcp.data = c->timer.data = c->connect_req.data = c;
  c->open_handles = 2;
  *out = c;

  if (o && o->guard_private && !stls_addr_allowed(addr, &why)) {
    c->early_status = STLS_CONN_EBLOCKED;
    c->early_why = why;
    arm(c, 0);
    return 0;
  }
  r = uv_tcp_connect(&c->connect_req, &c->tcp, addr, connect_cb);
  if (r < 0) {
    c->early_status = r; /* e.g. ENETUNREACH, reported at once */
    arm(c, 0);
    return 0;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (o && o->connect_timeout_ms > 0)
    arm(c, o->connect_timeout_ms);
  return 0;
}

void stls_conn_set_timeout(stls_conn_t *c, int64_t ms) {
  if (!c || c->state != CONN_OPEN)
    return;
  if (ms <= 0)
    uv_timer_stop(&c->timer);
  else
    arm(c, ms);
}

int stls_conn_write(stls_conn_t *c, const void *buf, size_t len) {
  if (!c || c->state != CONN_OPEN)
    return -1;
  if (c->tls)
    return stls_tls_conn_write(c->tls, buf, len);
  return write_raw(c, buf, len);
}

int stls_conn_tls_start(stls_conn_t *c, stls_tls_ctx_t *ctx, const char *sni,
                        int tls12_only) {
  if (!c || c->state != CONN_OPEN || c->tls)
    return -1;
  c->tls = stls_tls_conn_new(ctx, sni, tls12_only, tls_send_cb, c);
  return c->tls ? 0 : -1;
}

stls_tls_conn_t *stls_conn_tls(stls_conn_t *c) { return c ? c->tls : NULL; }

void stls_conn_tls_end(stls_conn_t *c, bool notify) {
  if (!c || !c->tls)
    return;
  if (notify && c->state == CONN_OPEN)
    stls_tls_conn_close_notify(c->tls);
  stls_tls_conn_free(c->tls);
  c->tls = NULL;
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;
}

void stls_conn_shutdown(stls_conn_t *c) {
  if (!c || c->state != CONN_OPEN || c->shutdown_sent)
    return;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, shutdown_cb) == 0)
    c->shutdown_sent = 1;
}

static void close_cb(uv_handle_t *h) {
  stls_conn_t *c = h->data;
  if (--c->open_handles > 0)
    return;
  c->cbs.on_close(c, c->arg);
  free(c);
}

void stls_conn_close(stls_conn_t *c) {
  if (!c || c->state == CONN_CLOSING)
    return;
  c->state = CONN_CLOSING;
  stls_tls_conn_free(c->tls);
  c->tls = NULL;
  uv_close((uv_handle_t *)&c->timer, close_cb);
  uv_close((uv_handle_t *)&c->tcp, close_cb);
}

const char *stls_conn_peer(const stls_conn_t *c) { return c ? c->peer : ""; }
