/* fastpeer: a cheap STARTTLS SMTP server for the benchmark.
 *
 * The lab's Postfix spends more CPU per session (a process per connection,
 * RSA signing, logging) than the scanner spends per probe, and it shares the
 * machine's CPUs with the scanner: against it the benchmark measures the
 * server. fastpeer is one thread on epoll with OpenSSL: a greeting, EHLO
 * with STARTTLS, the TLS handshake (ECDSA P-256 key: cheap to sign with),
 * EHLO again and QUIT. So the phases that use it measure the client.
 *
 *   fastpeer --chain FILE --listen IP:PORT [--listen IP:PORT ...]
 *
 * FILE holds the private key, the leaf and its intermediates (PEM), as the
 * lab's *.chain.pem files do. Runs until SIGTERM or SIGINT. Never accepts
 * mail: MAIL, RCPT, DATA and anything else unknown get a 502.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LISTEN 64
#define LINE_MAX_LEN 1000

enum { ST_PLAIN, ST_HANDSHAKE, ST_TLS };

typedef struct conn_s {
  int fd;
  int state;
  SSL *ssl;
  size_t len;
  char buf[LINE_MAX_LEN + 2];
} conn_t;

static volatile sig_atomic_t stopping;
static int listeners[MAX_LISTEN];
static int n_listeners;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static void conn_close(conn_t *c) {
  if (c->ssl) {
    SSL_shutdown(c->ssl); /* best effort, never waits: the socket is
                             non-blocking */
    SSL_free(c->ssl);
  }
  close(c->fd);
  free(c);
}

/* Replies are a few dozen bytes and the client reads each one before it
 * sends the next command, so a write either goes out whole or the peer is
 * gone: a short write closes the connection. */
static int send_text(conn_t *c, const char *s) {
  size_t n = strlen(s);
  if (c->state == ST_TLS)
    return SSL_write(c->ssl, s, (int)n) == (int)n ? 0 : -1;
  return write(c->fd, s, n) == (ssize_t)n ? 0 : -1;
}

static int is_cmd(const char *line, const char *cmd) {
  size_t n = strlen(cmd);
  return strncasecmp(line, cmd, n) == 0 && (line[n] == '\0' || line[n] == ' ');
}

/* One command line, without its CRLF. -1 closes the connection, 1 starts
 * the TLS handshake. */
static int command(conn_t *c, const char *line) {
  if (is_cmd(line, "EHLO"))
    return send_text(c, c->state == ST_TLS
                            ? "250-fastpeer.lab.test\r\n250-PIPELINING\r\n"
                              "250 8BITMIME\r\n"
                            : "250-fastpeer.lab.test\r\n250-PIPELINING\r\n"
                              "250-8BITMIME\r\n250 STARTTLS\r\n");
  if (is_cmd(line, "HELO"))
    return send_text(c, "250 fastpeer.lab.test\r\n");
  if (is_cmd(line, "STARTTLS") && c->state == ST_PLAIN)
    return send_text(c, "220 2.0.0 Ready to start TLS\r\n") ? -1 : 1;
  if (is_cmd(line, "QUIT")) {
    send_text(c, "221 2.0.0 Bye\r\n");
    return -1;
  }
  if (is_cmd(line, "NOOP") || is_cmd(line, "RSET"))
    return send_text(c, "250 2.0.0 Ok\r\n");
  return send_text(c, "502 5.5.2 not here\r\n");
}

/* Take bytes in, answer every complete line. Bytes after a STARTTLS line
 * are dropped (they would be plaintext injected into the TLS session). */
static int feed(conn_t *c, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int r;
    if (p[i] != '\n') {
      if (c->len >= LINE_MAX_LEN)
        return -1;
      c->buf[c->len++] = p[i];
      continue;
    }
    if (c->len > 0 && c->buf[c->len - 1] == '\r')
      c->len--;
    c->buf[c->len] = '\0';
    c->len = 0;
    if ((r = command(c, c->buf)) != 0)
      return r;
  }
  return 0;
}

static int handshake(conn_t *c, int ep) {
  struct epoll_event ev = {.data.ptr = c};
  int r = SSL_accept(c->ssl);
  if (r == 1) {
    c->state = ST_TLS;
    ev.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    return 0;
  }
  switch (SSL_get_error(c->ssl, r)) {
  case SSL_ERROR_WANT_READ: ev.events = EPOLLIN; break;
  case SSL_ERROR_WANT_WRITE: ev.events = EPOLLOUT; break;
  default: return -1;
  }
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  return 0;
}

static int start_tls(conn_t *c, SSL_CTX *ctx, int ep) {
  c->len = 0;
  if (!(c->ssl = SSL_new(ctx)) || SSL_set_fd(c->ssl, c->fd) != 1)
    return -1;
  c->state = ST_HANDSHAKE;
  return handshake(c, ep);
}

/* The connection is readable (or writable during the handshake). */
static int on_ready(conn_t *c, SSL_CTX *ctx, int ep) {
  char buf[4096];
  int r;
  if (c->state == ST_HANDSHAKE) {
    if (handshake(c, ep) != 0)
      return -1;
    if (c->state != ST_TLS)
      return 0;
    /* The client's EHLO may already be in OpenSSL's buffer: read on. */
  }
  if (c->state == ST_PLAIN) {
    ssize_t n = read(c->fd, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      return -1;
    if (n < 0)
      return 0;
    r = feed(c, buf, (size_t)n);
    return r == 1 ? start_tls(c, ctx, ep) : r;
  }
  for (;;) {
    int n = SSL_read(c->ssl, buf, sizeof(buf));
    if (n <= 0) {
      int e = SSL_get_error(c->ssl, n);
      return e == SSL_ERROR_WANT_READ ? 0 : -1;
    }
    if ((r = feed(c, buf, (size_t)n)) != 0)
      return -1;
  }
}

static int listen_on(const char *spec) {
  char host[64];
  const char *colon = strrchr(spec, ':');
  struct sockaddr_in a;
  int fd, one = 1;
  if (!colon || (size_t)(colon - spec) >= sizeof(host))
    return -1;
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = '\0';
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(colon + 1));
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
    return -1;
  fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      listen(fd, 4096) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void accept_all(int lfd, int ep) {
  for (;;) {
    struct epoll_event ev = {.events = EPOLLIN};
    conn_t *c;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      return;
    if (!(c = calloc(1, sizeof(*c)))) {
      close(fd);
      continue;
    }
    c->fd = fd;
    c->state = ST_PLAIN;
    ev.data.ptr = c;
    if (send_text(c, "220 fastpeer.lab.test ESMTP fastpeer\r\n") != 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
      conn_close(c);
  }
}

static int usage(void) {
  fprintf(stderr,
          "usage: fastpeer --chain FILE --listen IP:PORT [--listen ...]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *chain = NULL;
  struct epoll_event evs[256];
  struct sigaction sa;
  SSL_CTX *ctx;
  int ep;

  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--chain") && i + 1 < argc) {
      chain = argv[++i];
    } else if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
      int fd;
      if (n_listeners == MAX_LISTEN)
        return usage();
      if ((fd = listen_on(argv[++i])) < 0) {
        fprintf(stderr, "fastpeer: cannot listen on %s: %s\n", argv[i],
                strerror(errno));
        return 1;
      }
      listeners[n_listeners++] = fd;
    } else {
      return usage();
    }
  }
  if (!chain || n_listeners == 0)
    return usage();

  ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
      !SSL_CTX_set1_groups_list(ctx, "X25519:P-256") ||
      SSL_CTX_use_certificate_chain_file(ctx, chain) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, chain, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    fprintf(stderr, "fastpeer: cannot load %s\n", chain);
    ERR_print_errors_fp(stderr);
    return 1;
  }
  /* Every probe is a full handshake, as the scanner makes them. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < n_listeners; i++) {
    /* The listener's index, not a connection: below MAX_LISTEN, which no
     * heap pointer is. */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, listeners[i], &ev);
  }
  fprintf(stderr, "fastpeer: listening on %d addresses\n", n_listeners);

  while (!stopping) {
    int n = epoll_wait(ep, evs, 256, 500);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 < MAX_LISTEN) {
        accept_all(listeners[evs[i].data.u64], ep);
        continue;
      }
      conn_t *c = evs[i].data.ptr;
      if (on_ready(c, ctx, ep) != 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        conn_close(c);
      }
    }
  }
  /* Connections still open at the end are left to the kernel. */
  SSL_CTX_free(ctx);
  return 0;
}
