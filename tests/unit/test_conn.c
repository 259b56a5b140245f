/* Unit tests for the connection type (scanner/conn.c), in process, against
 * a listener on 127.0.0.1 that the test runs on the same loop: the guard
 * refuses before any socket is made and reports from the loop, not from
 * inside stls_conn_open(); a connection writes, reads, times out and closes
 * through its one close path; a closed port is ECONNREFUSED. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stls/conn.h"

typedef struct {
  uv_tcp_t server;
  uv_tcp_t peer; /* the accepted side */
  int accepted;
  char got[64]; /* what the peer received */
  size_t got_len;
} listener_t;

typedef struct {
  int connects, reads, timeouts, closes;
  int status;
  const char *why;
  bool in_open;    /* stls_conn_open() is still running */
  bool cb_in_open; /* a callback came from inside it */
  char data[64];
  size_t data_len;
  bool eof;
  bool write_after_connect;
} probe_t;

static void peer_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  static char buf[256];
  (void)h;
  (void)n;
  *b = uv_buf_init(buf, sizeof(buf));
}

static void peer_write_cb(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

/* The peer echoes what it gets, upper-cased. */
static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  listener_t *l = s->data;
  if (n <= 0) {
    if (n < 0 && !uv_is_closing((uv_handle_t *)s))
      uv_close((uv_handle_t *)s, NULL);
    return;
  }
  uv_write_t *w = malloc(sizeof(*w));
  for (ssize_t i = 0; i < n; i++) {
    if (l->got_len < sizeof(l->got) - 1)
      l->got[l->got_len++] = b->base[i];
    b->base[i] = (char)(b->base[i] >= 'a' && b->base[i] <= 'z' ? b->base[i] - 32
                                                               : b->base[i]);
  }
  uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
  assert_int_equal(uv_write(w, s, &out, 1, peer_write_cb), 0);
}

static void on_conn(uv_stream_t *server, int status) {
  listener_t *l = server->data;
  assert_int_equal(status, 0);
  uv_tcp_init(server->loop, &l->peer);
  l->peer.data = l;
  assert_int_equal(uv_accept(server, (uv_stream_t *)&l->peer), 0);
  l->accepted++;
  uv_read_start((uv_stream_t *)&l->peer, peer_alloc, peer_read);
}

/* Listen on 127.0.0.1, an ephemeral port; fill addr with it. */
static void listener_start(uv_loop_t *loop, listener_t *l,
                           struct sockaddr_in *addr) {
  int len = sizeof(*addr);
  memset(l, 0, sizeof(*l));
  assert_int_equal(uv_ip4_addr("127.0.0.1", 0, addr), 0);
  uv_tcp_init(loop, &l->server);
  l->server.data = l;
  assert_int_equal(uv_tcp_bind(&l->server, (struct sockaddr *)addr, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&l->server, 8, on_conn), 0);
  assert_int_equal(
      uv_tcp_getsockname(&l->server, (struct sockaddr *)addr, &len), 0);
}

static void listener_stop(listener_t *l) {
  uv_close((uv_handle_t *)&l->server, NULL);
  if (l->accepted && !uv_is_closing((uv_handle_t *)&l->peer))
    uv_close((uv_handle_t *)&l->peer, NULL);
}

static void on_connect(stls_conn_t *c, int status, const char *why, void *arg) {
  probe_t *p = arg;
  p->connects++;
  p->status = status;
  p->why = why;
  p->cb_in_open |= p->in_open;
  if (status != 0) {
    stls_conn_close(c);
    return;
  }
  if (p->write_after_connect) {
    assert_int_equal(stls_conn_write(c, "ehlo x\r\n", 8), 0);
    stls_conn_set_timeout(c, 5000);
  }
}

static void on_read(stls_conn_t *c, ssize_t n, const char *buf, void *arg) {
  probe_t *p = arg;
  p->reads++;
  if (n < 0) {
    p->eof = true;
    stls_conn_close(c);
    return;
  }
  assert_non_null(buf); /* no TLS here: clear bytes */
  memcpy(p->data + p->data_len, buf, (size_t)n);
  p->data_len += (size_t)n;
  if (p->data_len >= 8)
    stls_conn_set_timeout(c, 50); /* then nothing more comes */
}

static void on_timeout(stls_conn_t *c, void *arg) {
  probe_t *p = arg;
  p->timeouts++;
  stls_conn_close(c);
  stls_conn_close(c); /* twice is harmless */
}

static void on_close(stls_conn_t *c, void *arg) {
  probe_t *p = arg;
  (void)c;
  p->closes++;
}

static const stls_conn_cbs_t cbs = {on_connect, on_read, on_timeout, on_close};

static void test_guard_refuses_without_connecting(void **state) {
  uv_loop_t loop;
  listener_t l;
  struct sockaddr_in addr;
  probe_t p;
  stls_conn_t *c = NULL;
  stls_conn_opts_t o = {2000, true};
  (void)state;
  memset(&p, 0, sizeof(p));
  assert_int_equal(uv_loop_init(&loop), 0);
  listener_start(&loop, &l, &addr);
  p.in_open = true;
  assert_int_equal(
      stls_conn_open(&c, &loop, (struct sockaddr *)&addr, &o, &cbs, &p), 0);
  p.in_open = false;
  assert_non_null(c);
  assert_string_equal(stls_conn_peer(c), "127.0.0.1");
  assert_int_equal(p.connects, 0); /* never from inside open */
  while (p.closes == 0 && uv_run(&loop, UV_RUN_ONCE) != 0)
    ;
  /* Let a connection, if one had been made, reach the listener. */
  for (int i = 0; i < 5; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  assert_false(p.cb_in_open);
  assert_int_equal(p.connects, 1);
  assert_int_equal(p.status, STLS_CONN_EBLOCKED);
  assert_non_null(p.why);
  assert_non_null(strstr(p.why, "loopback"));
  assert_int_equal(p.closes, 1);
  assert_int_equal(l.accepted, 0);
  listener_stop(&l);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_write_read_timeout_close(void **state) {
  uv_loop_t loop;
  listener_t l;
  struct sockaddr_in addr;
  probe_t p;
  stls_conn_t *c = NULL;
  stls_conn_opts_t o = {2000, false};
  (void)state;
  memset(&p, 0, sizeof(p));
  p.write_after_connect = true;
  assert_int_equal(uv_loop_init(&loop), 0);
  listener_start(&loop, &l, &addr);
  assert_int_equal(
      stls_conn_open(&c, &loop, (struct sockaddr *)&addr, &o, &cbs, &p), 0);
  while (p.closes == 0 && uv_run(&loop, UV_RUN_ONCE) != 0)
    ;
  assert_int_equal(p.connects, 1);
  assert_int_equal(p.status, 0);
  assert_int_equal(l.accepted, 1);
  assert_int_equal(l.got_len, 8);
  assert_memory_equal(l.got, "ehlo x\r\n", 8);
  assert_int_equal(p.data_len, 8);
  assert_memory_equal(p.data, "EHLO X\r\n", 8);
  assert_int_equal(p.timeouts, 1);
  assert_int_equal(p.closes, 1);
  assert_null(stls_conn_tls(NULL));
  listener_stop(&l);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_refused_and_bad_args(void **state) {
  uv_loop_t loop;
  listener_t l;
  struct sockaddr_in addr;
  struct sockaddr un;
  probe_t p;
  stls_conn_t *c = NULL;
  stls_conn_opts_t o = {2000, false};
  (void)state;
  memset(&p, 0, sizeof(p));
  assert_int_equal(uv_loop_init(&loop), 0);
  /* A port that was just listened on and is closed again. */
  listener_start(&loop, &l, &addr);
  listener_stop(&l);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(
      stls_conn_open(&c, &loop, (struct sockaddr *)&addr, &o, &cbs, &p), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(p.connects, 1);
  assert_int_equal(p.status, UV_ECONNREFUSED);
  assert_int_equal(p.closes, 1);

  memset(&un, 0, sizeof(un));
  un.sa_family = AF_UNIX;
  assert_int_equal(stls_conn_open(&c, &loop, &un, &o, &cbs, &p), UV_EINVAL);
  assert_null(c);
  assert_int_equal(
      stls_conn_open(&c, &loop, (struct sockaddr *)&addr, &o, NULL, &p),
      UV_EINVAL);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_guard_refuses_without_connecting),
      cmocka_unit_test(test_write_read_timeout_close),
      cmocka_unit_test(test_refused_and_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
