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
#include "stls/conn.h"
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

/* The session's states. Each is tagged with the stage an error in it is
 * reported in (result.h): RAW_HELLO (a hand-built ClientHello after
 * STARTTLS, for legacy detection and --versions) is a handshake to the
 * outside world. */
#define SESSION_STATE_MAP(XX)                                                  \
  XX(CONNECT, "connect", CONNECT)                                              \
  XX(GREETING, "greeting", GREETING)                                           \
  XX(EHLO, "ehlo", EHLO)                                                       \
  XX(HELO, "helo", HELO)                                                       \
  XX(STARTTLS, "starttls", STARTTLS)                                           \
  XX(HANDSHAKE, "handshake", HANDSHAKE)                                        \
  XX(RAW_HELLO, "raw_hello", HANDSHAKE)                                        \
  XX(EHLO_TLS, "ehlo_tls", EHLO_TLS)                                           \
  XX(QUIT, "quit", QUIT)                                                       \
  XX(CLOSED, "closed", DONE)

typedef enum {
#define XX(name, text, stage) ST_##name,
  SESSION_STATE_MAP(XX)
#undef XX
      ST_COUNT
} session_state_t;

static const char *const state_names[] = {
#define XX(name, text, stage) text,
    SESSION_STATE_MAP(XX)
#undef XX
};

static const stls_stage_t state_stages[] = {
#define XX(name, text, stage) STLS_STAGE_##stage,
    SESSION_STATE_MAP(XX)
#undef XX
};

/* What one connection is for. After the main attempt, more connections
 * may follow, each up to STARTTLS and a hand-built ClientHello (hello.h):
 * one to see whether a server that refused our TLS 1.2/1.3 handshake
 * speaks an older version (legacy), and one per version for --versions.
 * They fill a scratch result; what they learn is copied into the main
 * one. */
enum { MODE_MAIN, MODE_LEGACY, MODE_VERSION };
static const char *const mode_names[] = {"main", "legacy", "version"};

typedef struct attempt_s {
  int mode;
  int tls12_only;          /* offer TLS 1.2 alone (the RSA-PSS workaround) */
  int again_tls12;         /* when closed, reconnect with tls12_only */
  uint16_t raw_version;    /* legacy_version of the raw hello we send */
  stls_host_result_t *res; /* the main result, or the session's scratch */
  int64_t t0;
} attempt_t;

typedef struct session_s {
  uv_loop_t *loop;
  stls_conn_t *conn; /* the attempt's connection; NULL between them */
  session_state_t state;
  attempt_t a;
  int closing; /* the attempt is over; waiting for conn to close */
  int want_versions;
  unsigned version_next; /* next STLS_VER_ to probe */
  int legacy_tried;
  int main_tls12_only; /* the main attempt offered TLS 1.2 alone */
  int guard_private;
  stls_host_result_t *main_res;
  stls_host_result_t scratch;
  stls_hello_parser_t *hello; /* only while a raw hello is answered */
  unsigned char *raw;         /* the server's bytes, for its certificates */
  size_t raw_len;
  struct sockaddr_storage addr;
  int64_t state_t0;
  char *mx;
  char *ehlo_name;
  int64_t connect_timeout_ms, greeting_timeout_ms, command_timeout_ms,
      tls_timeout_ms;
  stls_tls_ctx_t *tls_ctx;
  stls_probe_done_cb cb;
  void *cb_arg;
  int64_t (*pace)(void *arg);
  void *pace_arg;
  stls_reply_parser_t parser;
} session_t;

static void session_enter(session_t *s, session_state_t state);
static void finish(session_t *s);
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
  return stls_now_ms() - s->state_t0;
}

static stls_tls_conn_t *tls(const session_t *s) {
  return stls_conn_tls(s->conn);
}

static void fail(session_t *s, stls_host_status_t st, stls_cause_t cause,
                 int detail, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void fail(session_t *s, stls_host_status_t st, stls_cause_t cause,
                 int detail, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  stls_host_result_fail_cause(s->a.res, st, state_stages[s->state], cause,
                              detail, "%s", msg);
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
  if (stls_conn_write(s->conn, line, (size_t)n) != 0) {
    fail(s, STLS_HOST_CONNECTION_ERROR, STLS_CAUSE_EIO, 0,
         "cannot send command");
    finish(s);
  }
}

/* ---- attempts and the one way out -------------------------------------- */

/* The one end of a session: the main result goes to the caller and the
 * session is freed. Runs with no connection open. */
static void session_destroy(session_t *s) {
  stls_probe_done_cb cb = s->cb;
  stls_host_result_t *res = s->main_res;
  void *arg = s->cb_arg;
  if (s->a.res == &s->scratch)
    stls_host_result_free(&s->scratch);
  stls_debug("probe %s [%s]: done, %s", s->mx, res->ip,
             stls_host_status_name(res->status));
  free(s->hello);
  free(s->raw);
  free(s->mx);
  free(s->ehlo_name);
  free(s);
  cb(res, arg);
}

static void attempt_connect(session_t *s);
static void pace_cb(uv_timer_t *t);

/* Connect again, when the connection rate allows. */
static void attempt_connect_paced(session_t *s) {
  int64_t wait = s->pace ? s->pace(s->pace_arg) : 0;
  uv_timer_t *t;
  if (wait <= 0 || !(t = malloc(sizeof(*t)))) {
    attempt_connect(s);
    return;
  }
  uv_timer_init(s->loop, t);
  t->data = s;
  uv_timer_start(t, pace_cb, (uint64_t)wait, 0);
}

static void pace_cb(uv_timer_t *t) {
  session_t *s = t->data;
  uv_close((uv_handle_t *)t, (uv_close_cb)free);
  attempt_connect_paced(s); /* ask again: the wait was not a token */
}

/* Start an attempt: a fresh result (the main one for MODE_MAIN) and a new
 * connection. Returns 0, or -1 when the result could not be made (the
 * caller then ends the session). */
static int attempt_start(session_t *s, int mode, uint16_t version,
                         int tls12_only) {
  stls_host_result_t *m = s->main_res;
  if (s->a.res == &s->scratch)
    stls_host_result_free(&s->scratch);
  s->a.res = m;
  if (mode != MODE_MAIN) {
    if (stls_host_result_init(&s->scratch, s->mx, m->ip, m->port) != 0)
      return -1;
    s->a.res = &s->scratch;
  }
  s->a.mode = mode;
  s->a.raw_version = version;
  s->a.tls12_only = tls12_only;
  s->a.again_tls12 = 0;
  s->closing = 0;
  attempt_connect_paced(s);
  return 0;
}

/* Start over on a new connection that offers TLS 1.2 only. */
static int attempt_tls12(session_t *s) {
  stls_host_result_t *res = s->main_res;
  char ip[sizeof(res->ip)], first[sizeof(res->error.message)];
  int port = res->port;
  stls_strlcpy(ip, res->ip, sizeof(ip));
  stls_strlcpy(first, res->error.message, sizeof(first));
  stls_host_result_free(res);
  if (stls_host_result_init(res, s->mx, ip, port) != 0)
    return -1;
  stls_host_result_add_finding(
      res, "tls12-fallback",
      "TLS 1.2 server signed with RSA-PSS, which mbedTLS 3.6.6 rejects in a "
      "TLS 1.2+1.3 handshake (%.60s); reconnected offering TLS 1.2 only",
      first);
  return attempt_start(s, MODE_MAIN, 0, 1);
}

static int next_attempt(session_t *s);

/* An attempt's connection is closed: another attempt, or the end. */
static void attempt_over(session_t *s) {
  int r;
  s->conn = NULL;
  s->state = ST_CLOSED;
  if (s->a.again_tls12)
    r = attempt_tls12(s) == 0;
  else
    r = next_attempt(s);
  if (!r)
    session_destroy(s);
}

static void conn_close_cb(stls_conn_t *c, void *arg) {
  (void)c;
  attempt_over(arg);
}

/* End the current attempt: its connection closes, then attempt_over(). */
static void finish(session_t *s) {
  if (s->closing)
    return;
  s->closing = 1;
  s->a.res->timing.total = stls_now_ms() - s->a.t0;
  free(s->hello);
  s->hello = NULL;
  stls_debug("probe %s [%s]: %s attempt ends in %s (%s)", s->mx, s->a.res->ip,
             mode_names[s->a.mode], state_names[s->state],
             stls_host_status_name(s->a.res->status));
  stls_conn_close(s->conn);
}

/* ---- timeouts ---------------------------------------------------------- */

static void conn_timeout_cb(stls_conn_t *c, void *arg) {
  session_t *s = arg;
  (void)c;
  if (s->closing)
    return;
  switch (s->state) {
  case ST_QUIT: break; /* the server did not close after QUIT: we do */
  case ST_RAW_HELLO:
    raw_done(s); /* no (complete) answer to our hello in time */
    return;
  default:
    fail(s, STLS_HOST_IO_TIMEOUT, STLS_CAUSE_ETIMEDOUT, 0,
         "no complete answer within %lld ms", (long long)elapsed(s));
    break;
  }
  finish(s);
}

static void arm_timer(session_t *s, int64_t ms) {
  stls_conn_set_timeout(s->conn, ms > 0 ? ms : 1);
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
  char text[200];
  fail(s, st, STLS_CAUSE_SMTP_REPLY, r->code, "%s",
       first_line(r, text, sizeof(text)));
  session_enter(s, ST_QUIT);
}

static void unexpected(session_t *s, const stls_reply_t *r) {
  fail(s, STLS_HOST_PROTOCOL_ERROR, STLS_CAUSE_BAD_REPLY, 0,
       "unexpected reply code %d", r->code);
  finish(s);
}

static void on_reply(session_t *s, const stls_reply_t *r) {
  stls_host_result_t *res = s->a.res;
  int cls = r->code / 100, starttls;

  switch (s->state) {
  case ST_GREETING:
    res->timing.greeting = elapsed(s);
    res->banner = stls_strndup(r->text, r->text_len);
    if (r->code == 220)
      session_enter(s, ST_EHLO);
    else if (cls == 4 || cls == 5)
      smtp_reject(s, STLS_HOST_GREETING_REJECTED, r);
    else
      unexpected(s, r);
    break;

  case ST_EHLO:
    res->timing.ehlo = elapsed(s);
    if (cls == 2) {
      res->ehlo_done = true;
      res->ehlo_reply = stls_strndup(r->text, r->text_len);
      parse_extensions(r, &res->ehlo_ext, &starttls);
      res->starttls_offered = starttls;
      if (starttls) {
        session_enter(s, ST_STARTTLS);
      } else {
        res->status = STLS_HOST_STARTTLS_NOT_SUPPORTED;
        session_enter(s, ST_QUIT);
      }
    } else if (cls == 5 && r->code != 554) {
      /* EHLO not understood: fall back to HELO, as Postfix does. */
      session_enter(s, ST_HELO);
    } else if (cls == 4 || cls == 5) {
      smtp_reject(s, STLS_HOST_GREETING_REJECTED, r);
    } else {
      unexpected(s, r);
    }
    break;

  case ST_HELO:
    res->timing.ehlo += elapsed(s);
    if (cls == 2) {
      res->ehlo_done = true;
      res->used_helo = true;
      res->ehlo_reply = stls_strndup(r->text, r->text_len);
      res->status = STLS_HOST_STARTTLS_NOT_SUPPORTED;
      session_enter(s, ST_QUIT);
    } else if (cls == 4 || cls == 5) {
      smtp_reject(s, STLS_HOST_GREETING_REJECTED, r);
    } else {
      unexpected(s, r);
    }
    break;

  case ST_STARTTLS:
    res->timing.starttls = elapsed(s);
    res->starttls_reply = stls_strndup(r->text, r->text_len);
    if (r->code == 220)
      session_enter(s, s->a.mode == MODE_MAIN ? ST_HANDSHAKE : ST_RAW_HELLO);
    else if (cls == 4 || cls == 5)
      smtp_reject(s, STLS_HOST_STARTTLS_REJECTED, r);
    else
      unexpected(s, r);
    break;

  case ST_EHLO_TLS:
    res->timing.ehlo_tls = elapsed(s);
    if (cls == 2) {
      res->ehlo_tls_reply = stls_strndup(r->text, r->text_len);
      parse_extensions(r, &res->ehlo_tls_ext, &starttls);
      res->status = STLS_HOST_SUCCESS;
      session_enter(s, ST_QUIT);
    } else if (cls == 4 || cls == 5) {
      smtp_reject(s, STLS_HOST_GREETING_REJECTED, r);
    } else {
      unexpected(s, r);
    }
    break;

  default: break; /* QUIT's answer, or anything after it, is not interesting */
  }
}

/* Feed clear-text SMTP bytes (before TLS, or decrypted inside it). */
static void feed_replies(session_t *s, const char *data, size_t len) {
  while (len > 0 && !s->closing && s->state != ST_QUIT) {
    const stls_reply_t *r = NULL;
    size_t used = 0;
    session_state_t before = s->state;
    stls_reply_rc_t rc =
        stls_reply_parser_feed(&s->parser, data, len, &used, &r);
    data += used;
    len -= used;
    if (rc == STLS_REPLY_NEED_MORE)
      return;
    if (rc < 0) {
      stls_cause_t cause =
          rc == STLS_REPLY_ERR_LINE_TOO_LONG ? STLS_CAUSE_LINE_TOO_LONG
          : rc == STLS_REPLY_ERR_TOO_LONG    ? STLS_CAUSE_REPLY_TOO_LONG
                                             : STLS_CAUSE_BAD_REPLY;
      fail(s, STLS_HOST_PROTOCOL_ERROR, cause, 0, "%s",
           stls_reply_strerror(rc));
      finish(s);
      return;
    }
    on_reply(s, r);
    if (before == ST_STARTTLS &&
        (s->state == ST_HANDSHAKE || s->state == ST_RAW_HELLO) && len > 0) {
      /* Bytes that came with the 220 were sent before TLS started: an
       * injection attempt (CVE-2011-0411 class). Recorded, never used. */
      char shown[41];
      size_t n = len < 40 ? len : 40;
      for (size_t i = 0; i < n; i++)
        shown[i] = isprint((unsigned char)data[i]) ? data[i] : '.';
      shown[n] = '\0';
      stls_host_result_add_finding(
          s->a.res, "starttls-injection",
          "%zu byte(s) followed the STARTTLS 220 reply in clear text: \"%s\"",
          len, shown);
      return;
    }
  }
}

/* ---- TLS --------------------------------------------------------------- */

static void tls_failed(session_t *s, stls_host_status_t st) {
  char code[48], msg[200];
  int alert = stls_tls_conn_alert(tls(s));
  stls_tls_conn_error(tls(s), code, sizeof(code), msg, sizeof(msg));
  fail(s, st, stls_tls_conn_cause(tls(s)), alert >= 0 ? alert : 0, "%s", msg);
  if (s->state == ST_HANDSHAKE && stls_tls_conn_wants_tls12_retry(tls(s)))
    s->a.again_tls12 = 1;
  finish(s);
}

static void pump_tls(session_t *s) {
  char buf[4096];
  while (tls(s) && !s->closing && s->state == ST_EHLO_TLS) {
    int n = stls_tls_conn_read(tls(s), buf, sizeof(buf));
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
  int rc = stls_tls_conn_handshake(tls(s));
  if (rc == 1)
    return;
  if (rc < 0) {
    tls_failed(s, STLS_HOST_HANDSHAKE_ERROR);
    return;
  }
  s->a.res->timing.handshake = elapsed(s);
  s->a.res->tls_done = true;
  if (stls_tls_conn_collect(tls(s), s->mx, &s->a.res->tls) != 0) {
    fail(s, STLS_HOST_CONNECTION_ERROR, STLS_CAUSE_ENOMEM, 0, "out of memory");
    finish(s);
    return;
  }
  session_enter(s, ST_EHLO_TLS);
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
  case STLS_HELLO_KIND_SSL2: snprintf(buf, len, "SSLv2 reply"); break;
  case STLS_HELLO_KIND_GARBAGE: snprintf(buf, len, "not TLS"); break;
  default: snprintf(buf, len, "no answer"); break;
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
  m->error.cause = STLS_CAUSE_TLS_LEGACY_ONLY;
  m->error.detail = 0;
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
  if (s->a.mode == MODE_VERSION) {
    unsigned v = version_index(s->a.raw_version);
    if (v < STLS_VER_COUNT) {
      m->versions[v].accepted = stls_hello_accepted(r, s->a.raw_version);
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
    size_t take =
        n < RAW_CAPTURE_MAX - s->raw_len ? n : RAW_CAPTURE_MAX - s->raw_len;
    memcpy(s->raw + s->raw_len, data, take);
    s->raw_len += take;
  }
  rc = stls_hello_parser_feed(s->hello, (const uint8_t *)data, n);
  if (rc != STLS_HELLO_NEED_MORE)
    raw_done(s);
}

/* RAW_HELLO: send a hand-built ClientHello of the attempt's version. */
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
  if (s->a.mode == MODE_LEGACY && !s->raw)
    s->raw = malloc(RAW_CAPTURE_MAX);
  n = stls_hello_build(s->a.raw_version, s->mx, STLS_HELLO_OCSP, rnd, out,
                       sizeof(out));
  if (!s->hello || n == 0 || stls_conn_write(s->conn, out, n) != 0) {
    finish(s); /* this extra attempt simply learns nothing */
    return;
  }
  stls_hello_parser_init(s->hello);
}

/* The protocol version a result's TLS facts name, as STLS_VER_, or
 * STLS_VER_COUNT when none. The label is parsed once, here. */
static unsigned result_version(const stls_tls_result_t *t) {
  const char *label = t->legacy_only[0] ? t->legacy_only : t->version;
  for (unsigned v = 0; v < STLS_VER_COUNT; v++)
    if (strcmp(stls_version_label(v), label) == 0)
      return v;
  return STLS_VER_COUNT;
}

/* Fill in the versions the main attempt already tells us about. fallback:
 * the main attempt offered TLS 1.2 alone (tls12-fallback). */
static void versions_from_main(stls_host_result_t *m, int fallback) {
  unsigned got =
      m->tls_done || m->tls_legacy ? result_version(&m->tls) : STLS_VER_COUNT;
  m->versions_probed = true;
  if (m->tls_done && got == STLS_VER_TLS13) {
    m->versions[STLS_VER_TLS13].accepted = 1;
    stls_strlcpy(m->versions[STLS_VER_TLS13].how, "handshake",
                 sizeof(m->versions[0].how));
  } else if ((m->tls_done && got == STLS_VER_TLS12) || m->tls_legacy) {
    /* We offered TLS 1.3 (before any fallback): the server chose less. */
    m->versions[STLS_VER_TLS13].accepted = 0;
    stls_strlcpy(m->versions[STLS_VER_TLS13].how,
                 fallback || m->tls_legacy ? "server chose an older version"
                                           : "server chose TLSv1.2",
                 sizeof(m->versions[0].how));
    if (m->tls_legacy && got < STLS_VER_COUNT) {
      m->versions[got].accepted = 1;
      stls_strlcpy(m->versions[got].how, "server-hello to a TLS 1.2 hello",
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
  if (m->status != STLS_HOST_HANDSHAKE_ERROR || m->tls_legacy)
    return 0;
  switch (m->error.cause) {
  case STLS_CAUSE_TLS_ALERT:
    return m->error.detail == 70 || /* protocol_version */
           m->error.detail == 40 || /* handshake_failure */
           m->error.detail == 71;   /* insufficient_security */
  case STLS_CAUSE_EOF:
  case STLS_CAUSE_ECONNRESET: return 1;
  default: return 0;
  }
}

/* Decide whether another connection follows; 1 when one was started. */
static int next_attempt(session_t *s) {
  static const unsigned order[] = {STLS_VER_TLS12, STLS_VER_TLS11,
                                   STLS_VER_TLS10, STLS_VER_SSL3};
  stls_host_result_t *m = s->main_res;

  if (s->a.mode == MODE_VERSION && !s->scratch.starttls_reply) {
    /* That attempt never reached STARTTLS: say why, once. */
    unsigned v = version_index(s->a.raw_version);
    if (v < STLS_VER_COUNT && m->versions[v].accepted < 0)
      snprintf(m->versions[v].how, sizeof(m->versions[v].how), "not probed: %s",
               stls_host_status_name(s->scratch.status));
  }
  if (s->a.mode == MODE_MAIN)
    s->main_tls12_only = s->a.tls12_only;
  if (!s->legacy_tried && legacy_candidate(m)) {
    s->legacy_tried = 1;
    return attempt_start(s, MODE_LEGACY, STLS_TLS_1_2, 0) == 0;
  }
  if (s->want_versions && m->starttls_offered) {
    if (!m->versions_probed)
      versions_from_main(m, s->main_tls12_only);
    while (s->version_next < sizeof(order) / sizeof(order[0])) {
      unsigned v = order[s->version_next++];
      if (m->versions[v].accepted >= 0)
        continue;
      return attempt_start(s, MODE_VERSION, stls_version_wire(v), 0) == 0;
    }
  }
  return 0;
}

/* ---- input ------------------------------------------------------------- */

static void conn_read_cb(stls_conn_t *c, ssize_t nread, const char *buf,
                         void *arg) {
  session_t *s = arg;
  (void)c;
  if (s->closing)
    return;
  if (nread < 0) {
    int detail;
    stls_cause_t cause;
    if (s->state == ST_QUIT) {
      finish(s);
      return;
    }
    if (s->state == ST_RAW_HELLO) {
      raw_done(s); /* the server hung up: its answer is what we got */
      return;
    }
    if (nread == STLS_CONN_ETLSFEED) {
      fail(s, STLS_HOST_HANDSHAKE_ERROR, STLS_CAUSE_TLS_ERROR, 0,
           "peer sent more than a TLS record's worth of data");
      finish(s);
      return;
    }
    cause = stls_cause_from_uv((int)nread, &detail);
    fail(s,
         s->state == ST_HANDSHAKE ? STLS_HOST_HANDSHAKE_ERROR
         : nread == UV_EOF        ? STLS_HOST_PROTOCOL_ERROR
                                  : STLS_HOST_CONNECTION_ERROR,
         cause, detail, "%s",
         nread == UV_EOF ? "server closed the connection"
                         : strerror((int)-nread));
    finish(s);
    return;
  }
  switch (s->state) {
  case ST_QUIT:
    /* The answer to QUIT has come: we are done. Waiting for the server's
     * FIN as well can cost a delayed-ACK round (40 ms) per session. */
    finish(s);
    return;
  case ST_RAW_HELLO: raw_feed(s, buf, (size_t)nread); return;
  case ST_HANDSHAKE: step_handshake(s); return;
  case ST_EHLO_TLS: pump_tls(s); return;
  default: feed_replies(s, buf, (size_t)nread);
  }
}

/* ---- states ------------------------------------------------------------ */

/* The only way to change state: log it, arm the state's timeout and do
 * the state's action. */
static void session_enter(session_t *s, session_state_t state) {
  if (s->closing)
    return;
  stls_debug("probe %s [%s]: %s -> %s after %lld ms (%s attempt)", s->mx,
             s->a.res->ip, state_names[s->state], state_names[state],
             (long long)elapsed(s), mode_names[s->a.mode]);
  s->state = state;
  s->state_t0 = stls_now_ms();
  switch (state) {
  case ST_CONNECT: break; /* attempt_connect() opened the connection */
  case ST_GREETING: arm_timer(s, s->greeting_timeout_ms); break;
  case ST_EHLO:
    arm_timer(s, s->command_timeout_ms);
    send_command(s, "EHLO %s", s->ehlo_name);
    break;
  case ST_HELO:
    arm_timer(s, s->command_timeout_ms);
    send_command(s, "HELO %s", s->ehlo_name);
    break;
  case ST_STARTTLS:
    arm_timer(s, s->command_timeout_ms);
    send_command(s, "STARTTLS");
    break;
  case ST_RAW_HELLO: raw_start(s); break;
  case ST_HANDSHAKE:
    arm_timer(s, s->tls_timeout_ms);
    /* TLS state exists only from here to QUIT (about 40 KB with buffers). */
    if (stls_conn_tls_start(s->conn, s->tls_ctx, s->mx, s->a.tls12_only) != 0) {
      fail(s, STLS_HOST_CONNECTION_ERROR, STLS_CAUSE_ENOMEM, 0,
           "out of memory");
      finish(s);
      return;
    }
    step_handshake(s);
    break;
  case ST_EHLO_TLS:
    arm_timer(s, s->command_timeout_ms);
    stls_reply_parser_init(&s->parser);
    send_command(s, "EHLO %s", s->ehlo_name);
    break;
  case ST_QUIT:
    arm_timer(s, STLS_QUIT_TIMEOUT_MS);
    send_command(s, "QUIT");
    if (s->closing)
      return;
    stls_conn_tls_end(s->conn, true);
    /* Half-close after QUIT, then wait for the server to close. */
    stls_conn_shutdown(s->conn);
    break;
  default: finish(s); break;
  }
}

static void conn_connect_cb(stls_conn_t *c, int status, const char *why,
                            void *arg) {
  session_t *s = arg;
  stls_host_status_t st;
  stls_cause_t cause;
  int detail = 0;
  (void)c;
  if (s->closing)
    return;
  if (status == 0) {
    s->a.res->timing.connect = elapsed(s);
    stls_reply_parser_init(&s->parser);
    session_enter(s, ST_GREETING);
    return;
  }
  if (status == STLS_CONN_EBLOCKED) {
    fail(s, STLS_HOST_BLOCKED, STLS_CAUSE_ADDRESS_NOT_ALLOWED, 0,
         "not connecting to %s: %s", s->a.res->ip, why ? why : "refused");
    finish(s);
    return;
  }
  cause = stls_cause_from_uv(status, &detail);
  switch (cause) {
  case STLS_CAUSE_ECONNREFUSED: st = STLS_HOST_CONNECTION_REFUSED; break;
  case STLS_CAUSE_ENETUNREACH:
  case STLS_CAUSE_EHOSTUNREACH:
  case STLS_CAUSE_EADDRNOTAVAIL: st = STLS_HOST_NETWORK_UNREACHABLE; break;
  case STLS_CAUSE_ETIMEDOUT: st = STLS_HOST_CONNECTION_TIMEOUT; break;
  default: st = STLS_HOST_CONNECTION_ERROR; break;
  }
  if (cause == STLS_CAUSE_ETIMEDOUT)
    fail(s, st, cause, 0, "no TCP connection within %lld ms",
         (long long)elapsed(s));
  else
    /* libuv errors are negated errno values on Unix; strerror() gives the
     * text operators know from their MTA logs. */
    fail(s, st, cause, detail, "%s", strerror(-status));
  finish(s);
}

static const stls_conn_cbs_t session_conn_cbs = {
    .on_connect = conn_connect_cb,
    .on_read = conn_read_cb,
    .on_timeout = conn_timeout_cb,
    .on_close = conn_close_cb,
};

/* CONNECT: open the attempt's connection (the guard, when asked for, is
 * checked there, just before connect()). */
static void attempt_connect(session_t *s) {
  stls_conn_opts_t o = {s->connect_timeout_ms, s->guard_private != 0};
  s->a.t0 = s->state_t0 = stls_now_ms();
  s->state = ST_CONNECT;
  s->a.res->status = STLS_HOST_SKIPPED;
  stls_debug("probe %s [%s]: connect (%s attempt%s)", s->mx, s->a.res->ip,
             mode_names[s->a.mode], s->a.tls12_only ? ", TLS 1.2 only" : "");
  if (stls_conn_open(&s->conn, s->loop, (struct sockaddr *)&s->addr, &o,
                     &session_conn_cbs, s) != 0) {
    fail(s, STLS_HOST_CONNECTION_ERROR, STLS_CAUSE_ENOMEM, 0, "out of memory");
    s->closing = 1;
    attempt_over(s); /* no connection to close */
  }
}

int stls_probe_start(uv_loop_t *loop, const stls_probe_cfg_t *cfg,
                     stls_host_result_t *res, stls_probe_done_cb cb,
                     void *arg) {
  struct sockaddr_storage ss;
  session_t *s;

  memset(&ss, 0, sizeof(ss));
  if (uv_ip4_addr(cfg->ip, cfg->port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(cfg->ip, cfg->port, (struct sockaddr_in6 *)&ss) != 0) {
    stls_host_result_fail_cause(res, STLS_HOST_CONNECTION_ERROR,
                                STLS_STAGE_CONNECT, STLS_CAUSE_EINVAL, 0,
                                "not an IP address: %s", cfg->ip);
    return UV_EINVAL;
  }
  s = calloc(1, sizeof(*s));
  if (!s)
    return UV_ENOMEM;
  s->loop = loop;
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
  s->a.res = res;
  s->a.mode = MODE_MAIN;
  s->a.tls12_only = cfg->tls12_only != 0;
  s->want_versions = cfg->versions;
  s->guard_private = cfg->guard_private;
  s->pace = cfg->pace;
  s->pace_arg = cfg->pace_arg;
  if (cfg->tls12_only)
    stls_host_result_add_finding(
        res, "tls12-fallback",
        "this address needed the TLS 1.2-only hello earlier in this run "
        "(mbedTLS 3.6.6 RSA-PSS issue); offered TLS 1.2 only");
  attempt_connect(s);
  return 0;
}
