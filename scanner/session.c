/* One SMTP probe session as an explicit state machine. See session.h.
 *
 * session_enter() is the only way to change state: it records the stage,
 * arms the stage's timeout and performs the stage's action. Replies are
 * handled in one switch (on_reply). Every failure is tagged with the stage
 * it happened in and ends in finish(), the single cleanup path.
 */
#include "stls/session.h"
#include "stls/cert.h"
#include "stls/chain.h"
#include "stls/hello.h"
#include "stls/reply.h"
#include "stls/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

typedef struct session_s {
  uv_loop_t *loop;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req;
  int open_handles;
  int closing;
  int shutdown_sent;
  int tls12_only;    /* this attempt offers TLS 1.2 alone */
  int restart_tls12; /* finish() should reconnect with tls12_only */
  /* After the main attempt, more connections may follow, each up to
   * STARTTLS and a hand-built ClientHello (hello.h): one to see whether a
   * server that refused our TLS 1.2/1.3 handshake speaks an older version
   * (legacy), and one per version for --versions. They fill a scratch
   * result; what they learn is copied into the main one. */
  int mode;                 /* MODE_MAIN, MODE_LEGACY, MODE_VERSION */
  int want_versions;
  unsigned version_next;    /* next STLS_VER_ to probe */
  uint16_t raw_version;     /* legacy_version of the hello we send */
  int legacy_tried;
  stls_host_result_t *main_res;
  stls_host_result_t scratch;
  stls_hello_parser_t *hello; /* only while a raw hello is answered */
  unsigned char *raw;         /* the server's bytes, for its certificates */
  size_t raw_len;
  struct sockaddr_storage addr;
  stls_stage_t stage;
  int64_t t0, stage_t0;
  char *mx;
  char *ehlo_name;
  int64_t connect_timeout_ms, greeting_timeout_ms, command_timeout_ms,
      tls_timeout_ms;
  stls_tls_ctx_t *tls_ctx;
  stls_tls_conn_t *tls; /* only between STARTTLS 220 and QUIT */
  stls_host_result_t *res;
  stls_probe_done_cb cb;
  void *cb_arg;
  int64_t (*pace)(void *arg);
  void *pace_arg;
  stls_reply_parser_t parser;
} session_t;

typedef struct write_req_s {
  uv_write_t req;
  char data[];
} write_req_t;

/* One read buffer per thread: read callbacks consume it synchronously, so
 * sessions need not carry their own. */
static _Thread_local char read_buf[65536];

static void session_enter(session_t *s, stls_stage_t stage);
static void finish(session_t *s);

enum { MODE_MAIN, MODE_LEGACY, MODE_VERSION };
static void raw_done(session_t *s);
/* What we keep of a server's answer to a hand-built hello: enough for its
 * certificate chain (TLS <= 1.2 sends it in clear). */
#define RAW_CAPTURE_MAX (64 * 1024)

void stls_probe_cfg_defaults(stls_probe_cfg_t *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->port = 25;
  cfg->connect_timeout_ms = STLS_DEFAULT_CONNECT_TIMEOUT_MS;
  cfg->greeting_timeout_ms = STLS_DEFAULT_GREETING_TIMEOUT_MS;
  cfg->command_timeout_ms = STLS_DEFAULT_COMMAND_TIMEOUT_MS;
  cfg->tls_timeout_ms = STLS_DEFAULT_TLS_TIMEOUT_MS;
}

static int64_t elapsed(const session_t *s) {
  return stls_now_ms() - s->stage_t0;
}

static void fail(session_t *s, stls_host_status_t st, const char *code,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(session_t *s, stls_host_status_t st, const char *code,
                 const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  stls_host_result_fail(s->res, st, s->stage, code, "%s", msg);
}

/* ---- output ------------------------------------------------------------ */

static void write_cb(uv_write_t *req, int status) {
  (void)status; /* a failed write shows up as a read error or EOF */
  free(req);
}

static int write_raw(session_t *s, const void *data, size_t len) {
  write_req_t *w;
  uv_buf_t buf;
  int r;
  if (s->closing)
    return -1;
  w = malloc(sizeof(*w) + len);
  if (!w)
    return -1;
  memcpy(w->data, data, len);
  buf = uv_buf_init(w->data, (unsigned)len);
  r = uv_write(&w->req, (uv_stream_t *)&s->tcp, &buf, 1, write_cb);
  if (r < 0) {
    free(w);
    return -1;
  }
  return 0;
}

static int tls_send_cb(void *arg, const unsigned char *buf, size_t len) {
  return write_raw(arg, buf, len);
}

static void send_command(session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void send_command(session_t *s, const char *fmt, ...) {
  char line[600];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(line) - 2)
    n = (int)sizeof(line) - 3;
  line[n++] = '\r';
  line[n++] = '\n';
  if (s->tls ? stls_tls_conn_write(s->tls, line, (size_t)n)
             : write_raw(s, line, (size_t)n)) {
    fail(s, STLS_HOST_CONNECTION_ERROR, "EIO", "cannot send command");
    finish(s);
  }
}

/* ---- teardown ---------------------------------------------------------- */

static void session_connect(session_t *s);

static void pace_cb(uv_timer_t *t);

/* Connect again, when the connection rate allows. */
static void session_connect_paced(session_t *s) {
  int64_t wait = s->pace ? s->pace(s->pace_arg) : 0;
  uv_timer_t *t;
  if (wait <= 0 || !(t = malloc(sizeof(*t)))) {
    session_connect(s);
    return;
  }
  uv_timer_init(s->loop, t);
  t->data = s;
  uv_timer_start(t, pace_cb, (uint64_t)wait, 0);
}

static void pace_cb(uv_timer_t *t) {
  session_t *s = t->data;
  uv_close((uv_handle_t *)t, (uv_close_cb)free);
  session_connect_paced(s);
}

/* Start over on a new connection that offers TLS 1.2 only. */
static void restart_tls12(session_t *s) {
  stls_host_result_t *res = s->res;
  char ip[sizeof(res->ip)], first[sizeof(res->error.message)];
  int port = res->port;
  stls_strlcpy(ip, res->ip, sizeof(ip));
  stls_strlcpy(first, res->error.message, sizeof(first));
  stls_host_result_free(res);
  if (stls_host_result_init(res, s->mx, ip, port) != 0) {
    s->cb(res, s->cb_arg);
    free(s->mx);
    free(s->ehlo_name);
    free(s);
    return;
  }
  stls_host_result_add_finding(
      res, "tls12-fallback",
      "TLS 1.2 server signed with RSA-PSS, which mbedTLS 3.6.6 rejects in a "
      "TLS 1.2+1.3 handshake (%.60s); reconnected offering TLS 1.2 only",
      first);
  s->restart_tls12 = 0;
  s->tls12_only = 1;
  s->closing = 0;
  s->shutdown_sent = 0;
  session_connect_paced(s);
}

static int next_attempt(session_t *s);

static void close_cb(uv_handle_t *h) {
  session_t *s = h->data;
  if (--s->open_handles > 0)
    return;
  if (s->restart_tls12) {
    restart_tls12(s);
    return;
  }
  if (next_attempt(s))
    return;
  s->cb(s->main_res, s->cb_arg);
  free(s->mx);
  free(s->ehlo_name);
  free(s);
}

static void finish(session_t *s) {
  if (s->closing)
    return;
  s->closing = 1;
  s->res->timing.total = stls_now_ms() - s->t0;
  stls_tls_conn_free(s->tls);
  s->tls = NULL;
  free(s->hello);
  s->hello = NULL;
  uv_close((uv_handle_t *)&s->timer, close_cb);
  uv_close((uv_handle_t *)&s->tcp, close_cb);
}

/* ---- timeouts ---------------------------------------------------------- */

static void timer_cb(uv_timer_t *t) {
  session_t *s = t->data;
  if (s->closing)
    return;
  switch (s->stage) {
  case STLS_STAGE_CONNECT:
    fail(s, STLS_HOST_CONNECTION_TIMEOUT, "ETIMEDOUT",
         "no TCP connection within %lld ms", (long long)elapsed(s));
    break;
  case STLS_STAGE_QUIT:
    break; /* the server did not close after QUIT: we do */
  case STLS_STAGE_HANDSHAKE:
    if (s->hello) {
      raw_done(s); /* no (complete) answer to our hello in time */
      return;
    }
    fail(s, STLS_HOST_IO_TIMEOUT, "ETIMEDOUT",
         "no complete answer within %lld ms", (long long)elapsed(s));
    break;
  default:
    fail(s, STLS_HOST_IO_TIMEOUT, "ETIMEDOUT",
         "no complete answer within %lld ms", (long long)elapsed(s));
    break;
  }
  finish(s);
}

static void arm_timer(session_t *s, int64_t ms) {
  /* The loop's clock is cached; after a long computation (a handshake, or
   * valgrind) a timer armed from it would fire early. */
  uv_update_time(s->loop);
  uv_timer_start(&s->timer, timer_cb, (uint64_t)(ms > 0 ? ms : 1), 0);
}

/* ---- replies ----------------------------------------------------------- */

static char *first_line(const stls_reply_t *r, char *buf, size_t len) {
  stls_reply_line_text(r, 0, buf, len);
  return buf;
}

static void parse_extensions(const stls_reply_t *r, stls_strlist_t *ext,
                             int *starttls) {
  char line[STLS_REPLY_MAX_LINE + 1];
  *starttls = 0;
  /* Line 0 is the server's name and greeting; the rest are keywords. */
  for (size_t i = 1; i < r->n_lines; i++) {
    size_t n = stls_reply_line_text(r, i, line, sizeof(line));
    if (n >= sizeof(line))
      n = sizeof(line) - 1;
    if (stls_strlist_pushn(ext, line, n) != 0)
      return;
    size_t kw = strcspn(line, " ");
    if (kw == 8 && strncasecmp(line, "STARTTLS", 8) == 0)
      *starttls = 1;
  }
}

static void smtp_reject(session_t *s, stls_host_status_t st,
                        const stls_reply_t *r) {
  char code[16], text[200];
  snprintf(code, sizeof(code), "SMTP_%d", r->code);
  fail(s, st, code, "%s", first_line(r, text, sizeof(text)));
  session_enter(s, STLS_STAGE_QUIT);
}

static void unexpected(session_t *s, const stls_reply_t *r) {
  fail(s, STLS_HOST_PROTOCOL_ERROR, "BAD_REPLY", "unexpected reply code %d",
       r->code);
  finish(s);
}

static void on_reply(session_t *s, const stls_reply_t *r) {
  stls_host_result_t *res = s->res;
  int cls = r->code / 100, starttls;

  switch (s->stage) {
  case STLS_STAGE_GREETING:
    res->timing.greeting = elapsed(s);
    res->banner = stls_strndup(r->text, r->text_len);
    if (r->code == 220)
      session_enter(s, STLS_STAGE_EHLO);
    else if (cls == 4 || cls == 5)
      smtp_reject(s, STLS_HOST_GREETING_REJECTED, r);
    else
      unexpected(s, r);
    break;

  case STLS_STAGE_EHLO:
    res->timing.ehlo = elapsed(s);
    if (cls == 2) {
      res->ehlo_done = true;
      res->ehlo_reply = stls_strndup(r->text, r->text_len);
      parse_extensions(r, &res->ehlo_ext, &starttls);
      res->starttls_offered = starttls;
      if (starttls) {
        session_enter(s, STLS_STAGE_STARTTLS);
      } else {
        res->status = STLS_HOST_STARTTLS_NOT_SUPPORTED;
        session_enter(s, STLS_STAGE_QUIT);
      }
    } else if (cls == 5 && r->code != 554) {
      /* EHLO not understood: fall back to HELO, as Postfix does. */
      session_enter(s, STLS_STAGE_HELO);
    } else if (cls == 4 || cls == 5) {
      smtp_reject(s, STLS_HOST_GREETING_REJECTED, r);
    } else {
      unexpected(s, r);
    }
    break;

  case STLS_STAGE_HELO:
    res->timing.ehlo += elapsed(s);
    if (cls == 2) {
      res->ehlo_done = true;
      res->used_helo = true;
      res->ehlo_reply = stls_strndup(r->text, r->text_len);
      res->status = STLS_HOST_STARTTLS_NOT_SUPPORTED;
      session_enter(s, STLS_STAGE_QUIT);
    } else if (cls == 4 || cls == 5) {
      smtp_reject(s, STLS_HOST_GREETING_REJECTED, r);
    } else {
      unexpected(s, r);
    }
    break;

  case STLS_STAGE_STARTTLS:
    res->timing.starttls = elapsed(s);
    res->starttls_reply = stls_strndup(r->text, r->text_len);
    if (r->code == 220)
      session_enter(s, STLS_STAGE_HANDSHAKE);
    else if (cls == 4 || cls == 5)
      smtp_reject(s, STLS_HOST_STARTTLS_REJECTED, r);
    else
      unexpected(s, r);
    break;

  case STLS_STAGE_EHLO_TLS:
    res->timing.ehlo_tls = elapsed(s);
    if (cls == 2) {
      res->ehlo_tls_reply = stls_strndup(r->text, r->text_len);
      parse_extensions(r, &res->ehlo_tls_ext, &starttls);
      res->status = STLS_HOST_SUCCESS;
      session_enter(s, STLS_STAGE_QUIT);
    } else if (cls == 4 || cls == 5) {
      smtp_reject(s, STLS_HOST_GREETING_REJECTED, r);
    } else {
      unexpected(s, r);
    }
    break;

  default:
    break; /* QUIT's answer, or anything after it, is not interesting */
  }
}

/* Feed clear-text SMTP bytes (before TLS, or decrypted inside it). */
static void feed_replies(session_t *s, const char *data, size_t len) {
  while (len > 0 && !s->closing && s->stage != STLS_STAGE_QUIT) {
    const stls_reply_t *r = NULL;
    size_t used = 0;
    stls_stage_t before = s->stage;
    stls_reply_rc_t rc =
        stls_reply_parser_feed(&s->parser, data, len, &used, &r);
    data += used;
    len -= used;
    if (rc == STLS_REPLY_NEED_MORE)
      return;
    if (rc < 0) {
      const char *code = rc == STLS_REPLY_ERR_LINE_TOO_LONG ? "LINE_TOO_LONG"
                         : rc == STLS_REPLY_ERR_TOO_LONG    ? "REPLY_TOO_LONG"
                                                            : "BAD_REPLY";
      fail(s, STLS_HOST_PROTOCOL_ERROR, code, "%s", stls_reply_strerror(rc));
      finish(s);
      return;
    }
    on_reply(s, r);
    if (before == STLS_STAGE_STARTTLS && s->stage == STLS_STAGE_HANDSHAKE &&
        len > 0) {
      /* Bytes that came with the 220 were sent before TLS started: an
       * injection attempt (CVE-2011-0411 class). Recorded, never used. */
      char shown[41];
      size_t n = len < 40 ? len : 40;
      for (size_t i = 0; i < n; i++)
        shown[i] = isprint((unsigned char)data[i]) ? data[i] : '.';
      shown[n] = '\0';
      stls_host_result_add_finding(
          s->res, "starttls-injection",
          "%zu byte(s) followed the STARTTLS 220 reply in clear text: \"%s\"",
          len, shown);
      return;
    }
  }
}

/* ---- TLS --------------------------------------------------------------- */

static void tls_failed(session_t *s, stls_host_status_t st) {
  char code[48], msg[200];
  stls_tls_conn_error(s->tls, code, sizeof(code), msg, sizeof(msg));
  fail(s, st, code, "%s", msg);
  if (s->stage == STLS_STAGE_HANDSHAKE &&
      stls_tls_conn_wants_tls12_retry(s->tls))
    s->restart_tls12 = 1;
  finish(s);
}

static void pump_tls(session_t *s) {
  char buf[4096];
  while (s->tls && !s->closing && s->stage == STLS_STAGE_EHLO_TLS) {
    int n = stls_tls_conn_read(s->tls, buf, sizeof(buf));
    if (n == 0)
      return;
    if (n < 0) {
      tls_failed(s, STLS_HOST_PROTOCOL_ERROR);
      return;
    }
    feed_replies(s, buf, (size_t)n);
  }
}

static void step_handshake(session_t *s) {
  int rc = stls_tls_conn_handshake(s->tls);
  if (rc == 1)
    return;
  if (rc < 0) {
    tls_failed(s, STLS_HOST_HANDSHAKE_ERROR);
    return;
  }
  s->res->timing.handshake = elapsed(s);
  s->res->tls_done = true;
  if (stls_tls_conn_collect(s->tls, s->mx, &s->res->tls) != 0) {
    fail(s, STLS_HOST_CONNECTION_ERROR, "ENOMEM", "out of memory");
    finish(s);
    return;
  }
  session_enter(s, STLS_STAGE_EHLO_TLS);
  pump_tls(s);
}

/* ---- hand-built hellos (legacy detection, --versions) ------------------ */

static void describe_answer(const stls_hello_result_t *r, char *buf,
                            size_t len) {
  const char *v = stls_tls_version_name(r->version);
  const char *c = stls_tls_cipher_iana_name(r->cipher);
  const char *a = stls_tls_alert_name(r->alert_desc);
  switch (r->kind) {
  case STLS_HELLO_KIND_SERVER_HELLO:
    snprintf(buf, len, "server-hello %s %s", v ? v : "?", c ? c : "?");
    break;
  case STLS_HELLO_KIND_ALERT:
    snprintf(buf, len, "alert %s", a ? a : "?");
    break;
  case STLS_HELLO_KIND_SSL2:
    snprintf(buf, len, "SSLv2 reply");
    break;
  case STLS_HELLO_KIND_GARBAGE:
    snprintf(buf, len, "not TLS");
    break;
  default:
    snprintf(buf, len, "no answer");
    break;
  }
}

/* The server spoke only an older version to a plain TLS 1.2 hello: record
 * what it negotiated and the chain it sent in clear. */
static void legacy_facts(session_t *s, const stls_hello_result_t *r) {
  stls_host_result_t *m = s->main_res;
  stls_tls_result_t *t = &m->tls;
  const char *v = stls_tls_version_name(r->version);
  const char *c = stls_tls_cipher_iana_name(r->cipher);
  char first[160];

  stls_tls_result_free(t);
  stls_strlcpy(t->version, v ? v : "unknown", sizeof(t->version));
  stls_strlcpy(t->legacy_only, t->version, sizeof(t->legacy_only));
  if (c)
    stls_strlcpy(t->cipher_name, c, sizeof(t->cipher_name));
  else
    snprintf(t->cipher_name, sizeof(t->cipher_name), "0x%04x", r->cipher);
  t->cipher_id = r->cipher;
  t->group = r->group;
  t->sigalg = r->sigalg;
  t->handshake_seen = true;
  t->ocsp_stapled = r->ocsp_staple;
  t->secure_renegotiation = r->secure_renegotiation;
  t->extended_master_secret = r->extended_master_secret;
  if (s->raw && stls_cert_chain_from_flight(s->raw, s->raw_len, t) == 0 &&
      t->n_chain > 0)
    (void)stls_chain_judge(stls_tls_ctx_judge(s->tls_ctx), s->mx, t);
  m->tls_legacy = true;
  stls_strlcpy(first, m->error.message, sizeof(first));
  stls_strlcpy(m->error.code, "TLS_LEGACY_ONLY", sizeof(m->error.code));
  snprintf(m->error.message, sizeof(m->error.message),
           "the server speaks only %s (seen with a hand-built hello); "
           "mbedTLS does TLS 1.2 and 1.3 only (%.100s)",
           t->version, first);
}

static unsigned version_index(uint16_t wire) {
  for (unsigned v = 0; v < STLS_VER_COUNT; v++)
    if (stls_version_wire(v) == wire)
      return v;
  return STLS_VER_COUNT;
}

static void raw_done(session_t *s) {
  const stls_hello_result_t *r = stls_hello_parser_result(s->hello);
  stls_host_result_t *m = s->main_res;
  if (s->mode == MODE_VERSION) {
    unsigned v = version_index(s->raw_version);
    if (v < STLS_VER_COUNT) {
      m->versions[v].accepted = stls_hello_accepted(r, s->raw_version);
      describe_answer(r, m->versions[v].how, sizeof(m->versions[v].how));
    }
  } else if (r->kind == STLS_HELLO_KIND_SERVER_HELLO &&
             r->version >= STLS_TLS_SSL3 && r->version < STLS_TLS_1_2) {
    legacy_facts(s, r);
  } else if (r->kind == STLS_HELLO_KIND_SERVER_HELLO &&
             r->version == STLS_TLS_1_2) {
    const char *c = stls_tls_cipher_iana_name(r->cipher);
    stls_host_result_add_finding(
        m, "tls12-plain-hello",
        "a plain TLS 1.2 hello got %s (0x%04x) from this server, which "
        "failed our TLS 1.2+1.3 handshake",
        c ? c : "a cipher", r->cipher);
  }
  finish(s);
}

static void raw_feed(session_t *s, const char *data, size_t n) {
  stls_hello_rc_t rc;
  if (s->raw && s->raw_len < RAW_CAPTURE_MAX) {
    size_t take = n < RAW_CAPTURE_MAX - s->raw_len ? n
                                                   : RAW_CAPTURE_MAX - s->raw_len;
    memcpy(s->raw + s->raw_len, data, take);
    s->raw_len += take;
  }
  rc = stls_hello_parser_feed(s->hello, (const uint8_t *)data, n);
  if (rc != STLS_HELLO_NEED_MORE)
    raw_done(s);
}

static void raw_start(session_t *s) {
  uint8_t rnd[32], out[STLS_HELLO_BUILD_MAX];
  size_t n;
  if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
    int64_t t = stls_now_ms();
    for (size_t i = 0; i < sizeof(rnd); i++)
      rnd[i] = (uint8_t)(t >> (i % 8)) ^ (uint8_t)(uintptr_t)s;
  }
  arm_timer(s, s->tls_timeout_ms);
  s->hello = malloc(sizeof(*s->hello));
  if (s->mode == MODE_LEGACY && !s->raw)
    s->raw = malloc(RAW_CAPTURE_MAX);
  n = stls_hello_build(s->raw_version, s->mx, STLS_HELLO_OCSP, rnd, out,
                       sizeof(out));
  if (!s->hello || n == 0 || write_raw(s, out, n) != 0) {
    finish(s); /* this extra attempt simply learns nothing */
    return;
  }
  stls_hello_parser_init(s->hello);
}

/* Fill in the versions the main attempt already tells us about. */
static void versions_from_main(stls_host_result_t *m) {
  int fallback = 0;
  m->versions_probed = true;
  for (size_t i = 0; i < m->n_findings; i++)
    fallback |= strcmp(m->findings[i].id, "tls12-fallback") == 0;
  if (m->tls_done && strcmp(m->tls.version, "TLSv1.3") == 0) {
    m->versions[STLS_VER_TLS13].accepted = 1;
    stls_strlcpy(m->versions[STLS_VER_TLS13].how, "handshake",
                 sizeof(m->versions[0].how));
  } else if ((m->tls_done && strcmp(m->tls.version, "TLSv1.2") == 0) ||
             m->tls_legacy) {
    /* We offered TLS 1.3 (before any fallback): the server chose less. */
    m->versions[STLS_VER_TLS13].accepted = 0;
    stls_strlcpy(m->versions[STLS_VER_TLS13].how,
                 fallback || m->tls_legacy ? "server chose an older version"
                                           : "server chose TLSv1.2",
                 sizeof(m->versions[0].how));
    if (m->tls_legacy)
      for (unsigned v = 0; v < STLS_VER_COUNT; v++)
        if (strcmp(stls_version_label(v), m->tls.legacy_only) == 0) {
          m->versions[v].accepted = 1;
          stls_strlcpy(m->versions[v].how, "server-hello to a TLS 1.2 hello",
                       sizeof(m->versions[0].how));
        }
    if (m->tls_done) {
      m->versions[STLS_VER_TLS12].accepted = 1;
      stls_strlcpy(m->versions[STLS_VER_TLS12].how, "handshake",
                   sizeof(m->versions[0].how));
    } else {
      m->versions[STLS_VER_TLS12].accepted = 0;
      snprintf(m->versions[STLS_VER_TLS12].how, sizeof(m->versions[0].how),
               "server chose %s", m->tls.version);
    }
  }
}

static int legacy_candidate(const stls_host_result_t *m) {
  /* A refused version or cipher list, or a hang-up, is what an old
   * server does to our TLS 1.2+1.3 hello. */
  return m->status == STLS_HOST_HANDSHAKE_ERROR && !m->tls_legacy &&
         (strcmp(m->error.code, "TLS_ALERT_PROTOCOL_VERSION") == 0 ||
          strcmp(m->error.code, "TLS_ALERT_HANDSHAKE_FAILURE") == 0 ||
          strcmp(m->error.code, "TLS_ALERT_INSUFFICIENT_SECURITY") == 0 ||
          strcmp(m->error.code, "EOF") == 0 ||
          strcmp(m->error.code, "ECONNRESET") == 0);
}

static void start_attempt(session_t *s, int mode, uint16_t version) {
  stls_host_result_t *m = s->main_res;
  if (s->res == &s->scratch)
    stls_host_result_free(&s->scratch);
  if (stls_host_result_init(&s->scratch, s->mx, m->ip, m->port) != 0) {
    s->res = m;
    s->cb(m, s->cb_arg);
    free(s->mx);
    free(s->ehlo_name);
    free(s);
    return;
  }
  s->res = &s->scratch;
  s->mode = mode;
  s->raw_version = version;
  s->tls12_only = 0;
  s->closing = 0;
  s->shutdown_sent = 0;
  session_connect_paced(s);
}

/* Decide whether another connection follows; 1 when one was started. */
static int next_attempt(session_t *s) {
  static const unsigned order[] = {STLS_VER_TLS12, STLS_VER_TLS11,
                                   STLS_VER_TLS10, STLS_VER_SSL3};
  stls_host_result_t *m = s->main_res;

  if (s->mode == MODE_VERSION && s->res == &s->scratch &&
      !s->scratch.starttls_reply) {
    /* That attempt never reached STARTTLS: say why, once. */
    unsigned v = version_index(s->raw_version);
    if (v < STLS_VER_COUNT && m->versions[v].accepted < 0)
      snprintf(m->versions[v].how, sizeof(m->versions[v].how),
               "not probed: %s", stls_host_status_name(s->scratch.status));
  }
  if (!s->legacy_tried && legacy_candidate(m)) {
    s->legacy_tried = 1;
    start_attempt(s, MODE_LEGACY, STLS_TLS_1_2);
    return 1;
  }
  if (s->want_versions && m->starttls_offered) {
    if (!m->versions_probed)
      versions_from_main(m);
    while (s->version_next < sizeof(order) / sizeof(order[0])) {
      unsigned v = order[s->version_next++];
      if (m->versions[v].accepted >= 0)
        continue;
      start_attempt(s, MODE_VERSION, stls_version_wire(v));
      return 1;
    }
  }
  if (s->res == &s->scratch) {
    stls_host_result_free(&s->scratch);
    s->res = m;
  }
  free(s->raw);
  s->raw = NULL;
  return 0;
}

/* ---- input ------------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  session_t *s = stream->data;
  if (s->closing || nread == 0)
    return;
  if (nread < 0) {
    if (s->stage == STLS_STAGE_QUIT) {
      finish(s);
      return;
    }
    if (s->hello) {
      raw_done(s); /* the server hung up: its answer is what we got */
      return;
    }
    const char *code = nread == UV_EOF ? "EOF" : uv_err_name((int)nread);
    const char *msg = nread == UV_EOF ? "server closed the connection"
                                      : strerror((int)-nread);
    stls_host_status_t st = s->stage == STLS_STAGE_HANDSHAKE
                                ? STLS_HOST_HANDSHAKE_ERROR
                            : nread == UV_EOF ? STLS_HOST_PROTOCOL_ERROR
                                              : STLS_HOST_CONNECTION_ERROR;
    fail(s, st, code, "%s", msg);
    finish(s);
    return;
  }
  switch (s->stage) {
  case STLS_STAGE_QUIT:
    /* The answer to QUIT has come: we are done. Waiting for the server's
     * FIN as well can cost a delayed-ACK round (40 ms) per session. */
    finish(s);
    return;
  case STLS_STAGE_HANDSHAKE:
  case STLS_STAGE_EHLO_TLS:
    if (s->hello) {
      raw_feed(s, buf->base, (size_t)nread);
      return;
    }
    if (stls_tls_conn_feed(s->tls, (const unsigned char *)buf->base,
                           (size_t)nread) != 0) {
      fail(s, STLS_HOST_HANDSHAKE_ERROR, "TLS_ERROR",
           "peer sent more than a TLS record's worth of data");
      finish(s);
      return;
    }
    if (s->stage == STLS_STAGE_HANDSHAKE)
      step_handshake(s);
    else
      pump_tls(s);
    return;
  default:
    feed_replies(s, buf->base, (size_t)nread);
  }
}

/* ---- states ------------------------------------------------------------ */

static void shutdown_cb(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;
}

static void session_enter(session_t *s, stls_stage_t stage) {
  if (s->closing)
    return;
  s->stage = stage;
  s->stage_t0 = stls_now_ms();
  switch (stage) {
  case STLS_STAGE_GREETING:
    arm_timer(s, s->greeting_timeout_ms);
    if (uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb) != 0) {
      fail(s, STLS_HOST_CONNECTION_ERROR, "EIO", "cannot read from socket");
      finish(s);
    }
    break;
  case STLS_STAGE_EHLO:
    arm_timer(s, s->command_timeout_ms);
    send_command(s, "EHLO %s", s->ehlo_name);
    break;
  case STLS_STAGE_HELO:
    arm_timer(s, s->command_timeout_ms);
    send_command(s, "HELO %s", s->ehlo_name);
    break;
  case STLS_STAGE_STARTTLS:
    arm_timer(s, s->command_timeout_ms);
    send_command(s, "STARTTLS");
    break;
  case STLS_STAGE_HANDSHAKE:
    if (s->mode != MODE_MAIN) {
      raw_start(s);
      return;
    }
    arm_timer(s, s->tls_timeout_ms);
    /* TLS state exists only from here to QUIT (about 40 KB with buffers). */
    s->tls = stls_tls_conn_new(s->tls_ctx, s->mx, s->tls12_only, tls_send_cb,
                               s);
    if (!s->tls) {
      fail(s, STLS_HOST_CONNECTION_ERROR, "ENOMEM", "out of memory");
      finish(s);
      return;
    }
    step_handshake(s);
    break;
  case STLS_STAGE_EHLO_TLS:
    arm_timer(s, s->command_timeout_ms);
    stls_reply_parser_init(&s->parser);
    send_command(s, "EHLO %s", s->ehlo_name);
    break;
  case STLS_STAGE_QUIT:
    arm_timer(s, STLS_QUIT_TIMEOUT_MS);
    send_command(s, "QUIT");
    if (s->closing)
      return;
    if (s->tls) {
      stls_tls_conn_close_notify(s->tls);
      stls_tls_conn_free(s->tls);
      s->tls = NULL;
    }
    /* Half-close after QUIT, then wait for the server to close. */
    if (!s->shutdown_sent &&
        uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, shutdown_cb) ==
            0)
      s->shutdown_sent = 1;
    break;
  default:
    finish(s);
    break;
  }
}

static void connect_result(session_t *s, int status) {
  stls_host_status_t st;
  const char *code;
  switch (status) {
  case UV_ECONNREFUSED:
    st = STLS_HOST_CONNECTION_REFUSED;
    code = "ECONNREFUSED";
    break;
  case UV_ENETUNREACH:
  case UV_EHOSTUNREACH:
  case UV_EADDRNOTAVAIL:
    st = STLS_HOST_NETWORK_UNREACHABLE;
    code = uv_err_name(status);
    break;
  case UV_ETIMEDOUT:
    st = STLS_HOST_CONNECTION_TIMEOUT;
    code = "ETIMEDOUT";
    break;
  default:
    st = STLS_HOST_CONNECTION_ERROR;
    code = uv_err_name(status);
    break;
  }
  /* libuv errors are negated errno values on Unix; strerror() gives the
   * text operators know from their MTA logs. */
  fail(s, st, code, "%s", strerror(-status));
  finish(s);
}

static void connect_cb(uv_connect_t *req, int status) {
  session_t *s = req->data;
  if (s->closing)
    return; /* timed out already; this is the cancellation */
  if (status < 0) {
    connect_result(s, status);
    return;
  }
  s->res->timing.connect = elapsed(s);
  stls_reply_parser_init(&s->parser);
  session_enter(s, STLS_STAGE_GREETING);
}

static void session_connect(session_t *s) {
  int r;
  s->t0 = s->stage_t0 = stls_now_ms();
  s->stage = STLS_STAGE_CONNECT;
  s->res->status = STLS_HOST_SKIPPED;
  uv_tcp_init(s->loop, &s->tcp);
  uv_timer_init(s->loop, &s->timer);
  s->tcp.data = s->timer.data = s->connect_req.data = s;
  s->open_handles = 2;
  uv_tcp_nodelay(&s->tcp, 1);
  arm_timer(s, s->connect_timeout_ms);
  r = uv_tcp_connect(&s->connect_req, &s->tcp, (struct sockaddr *)&s->addr,
                     connect_cb);
  if (r < 0)
    connect_result(s, r); /* e.g. ENETUNREACH is reported synchronously */
}

int stls_probe_start(uv_loop_t *loop, const stls_probe_cfg_t *cfg,
                     stls_host_result_t *res, stls_probe_done_cb cb,
                     void *arg) {
  struct sockaddr_storage ss;
  session_t *s;

  memset(&ss, 0, sizeof(ss));
  if (uv_ip4_addr(cfg->ip, cfg->port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(cfg->ip, cfg->port, (struct sockaddr_in6 *)&ss) != 0) {
    stls_host_result_fail(res, STLS_HOST_CONNECTION_ERROR,
                          STLS_STAGE_CONNECT, "EINVAL",
                          "not an IP address: %s", cfg->ip);
    return UV_EINVAL;
  }
  s = calloc(1, sizeof(*s));
  if (!s)
    return UV_ENOMEM;
  s->loop = loop;
  s->res = res;
  s->cb = cb;
  s->cb_arg = arg;
  s->tls_ctx = cfg->tls;
  s->mx = stls_strdup(cfg->mx ? cfg->mx : cfg->ip);
  s->ehlo_name = stls_strdup(cfg->ehlo_name ? cfg->ehlo_name : "localhost");
  s->connect_timeout_ms = cfg->connect_timeout_ms;
  s->greeting_timeout_ms = cfg->greeting_timeout_ms;
  s->command_timeout_ms = cfg->command_timeout_ms;
  s->tls_timeout_ms = cfg->tls_timeout_ms;
  if (!s->mx || !s->ehlo_name) {
    free(s->mx);
    free(s->ehlo_name);
    free(s);
    return UV_ENOMEM;
  }
  memcpy(&s->addr, &ss, sizeof(ss));
  s->main_res = res;
  s->want_versions = cfg->versions;
  s->pace = cfg->pace;
  s->pace_arg = cfg->pace_arg;
  if (cfg->tls12_only) {
    s->tls12_only = 1;
    stls_host_result_add_finding(
        res, "tls12-fallback",
        "this address needed the TLS 1.2-only hello earlier in this run "
        "(mbedTLS 3.6.6 RSA-PSS issue); offered TLS 1.2 only");
  }
  session_connect(s);
  return 0;
}
