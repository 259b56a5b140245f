/* HTTP/1.1 server for the service: llhttp on libuv, bounded buffers, one
 * request at a time per connection (bytes pipelined behind it wait), one
 * response function. */
#include "stls/http.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/util.h"

#define RATE_SLOTS 4096 /* per-client POST buckets; oldest evicted */
#define RATE_PROBE 8

typedef enum { C_READING, C_HANDLING, C_WRITING } conn_state_t;

typedef struct conn_s conn_t;

typedef struct rate_slot_s {
  char client[64];
  double tokens;
  uint64_t last_ms;
} rate_slot_t;

struct stls_http_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  stls_http_cfg_t cfg;
  char *token;
  const stls_http_route_t *routes;
  size_t n_routes;
  void *arg;
  llhttp_settings_t settings;
  conn_t *conns; /* doubly linked */
  unsigned n_conns;
  int closing, listener_open;
  stls_http_stats_t stats;
  rate_slot_t *rate; /* RATE_SLOTS */
  char readbuf[65536];
  int port;
  /* Detached (stls__http_new_detached): answers go to sink, not a socket. */
  void (*sink)(const char *data, size_t len, void *arg);
  void *sink_arg;
};

/* Which header's value is being captured. */
enum { HV_NONE, HV_CTYPE, HV_ACCEPT, HV_AUTH };

struct conn_s {
  uv_tcp_t tcp;
  uv_timer_t timer;
  stls_http_t *h;
  conn_t *prev, *next;
  llhttp_t parser;
  conn_state_t state;
  int handles; /* open libuv handles */
  int closing;
  int dead;   /* closed while a handler holds the request */
  int reject; /* status to answer with instead of dispatching */
  int got_bytes;
  char client[64]; /* peer address */
  /* The request being read. */
  char *url;
  size_t url_len;
  char field[32];
  size_t field_len;
  int hv;
  char ctype[128], accept[128], auth[512];
  size_t ctype_len, accept_len, auth_len;
  size_t header_bytes;
  char *body;
  size_t body_len, body_cap;
  char *param_buf[2];
  char *path_buf;
  stls_http_req_t req;
  /* Bytes that arrived while a request was being handled. */
  char *pending;
  size_t pending_len;
  struct wreq_s *held; /* detached: the answer not yet "written" */
};

#define CONN_OF(r) ((conn_t *)((char *)(r)-offsetof(conn_t, req)))

static void conn_close(conn_t *c);
static void conn_free(conn_t *c);
static void conn_feed(conn_t *c, const char *data, size_t len);

void stls_http_cfg_defaults(stls_http_cfg_t *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->listen = "127.0.0.1:8025";
  cfg->max_body = STLS_HTTP_DEFAULT_MAX_BODY;
  cfg->max_header = STLS_HTTP_DEFAULT_MAX_HEADER;
  cfg->read_timeout_ms = STLS_HTTP_DEFAULT_READ_TIMEOUT_MS;
  cfg->max_conns = STLS_HTTP_DEFAULT_MAX_CONNS;
  cfg->max_conns_per_ip = STLS_HTTP_DEFAULT_MAX_CONNS_PER_IP;
  cfg->post_rate = STLS_HTTP_DEFAULT_POST_RATE;
  cfg->post_burst = STLS_HTTP_DEFAULT_POST_BURST;
}

const stls_http_stats_t *stls_http_stats(const stls_http_t *h) {
  return &h->stats;
}

int stls_http_port(stls_http_t *h) { return h->port; }

bool stls_http_token_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char d = la != lb;
  /* Walk the expected token's length whatever was sent. */
  for (size_t i = 0; i < lb; i++)
    d |= (unsigned char)(b[i] ^ (i < la ? a[i] : 0));
  return d == 0;
}

static const char *status_text(int s) {
  switch (s) {
  case 200: return "OK";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Unknown";
  }
}

/* --- llhttp callbacks: fill the request with bounded copies --- */

static int over_header(conn_t *c, size_t len) {
  c->header_bytes += len;
  if (c->header_bytes > c->h->cfg.max_header) {
    c->reject = 431;
    return -1;
  }
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  conn_t *c = p->data;
  c->got_bytes = 1;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  char *u;
  if (over_header(c, len))
    return -1;
  if (!(u = realloc(c->url, c->url_len + len + 1)))
    return -1;
  memcpy(u + c->url_len, at, len);
  c->url = u;
  c->url_len += len;
  u[c->url_len] = '\0';
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (over_header(c, len))
    return -1;
  if (c->field_len + len < sizeof(c->field)) {
    memcpy(c->field + c->field_len, at, len);
    c->field_len += len;
  } else {
    c->field_len = sizeof(c->field); /* too long to be one we want */
  }
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  conn_t *c = p->data;
  c->hv = HV_NONE;
  if (c->field_len < sizeof(c->field)) {
    c->field[c->field_len] = '\0';
    if (!strcasecmp(c->field, "content-type"))
      c->hv = HV_CTYPE;
    else if (!strcasecmp(c->field, "accept"))
      c->hv = HV_ACCEPT;
    else if (!strcasecmp(c->field, "authorization"))
      c->hv = HV_AUTH;
  }
  c->field_len = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  char *dst;
  size_t *n, cap;
  if (over_header(c, len))
    return -1;
  switch (c->hv) {
  case HV_CTYPE:
    dst = c->ctype, n = &c->ctype_len, cap = sizeof(c->ctype);
    break;
  case HV_ACCEPT:
    dst = c->accept, n = &c->accept_len, cap = sizeof(c->accept);
    break;
  case HV_AUTH: dst = c->auth, n = &c->auth_len, cap = sizeof(c->auth); break;
  default: return 0;
  }
  /* Values longer than their buffer are cut (and then do not match). */
  if (*n + len >= cap)
    len = cap - 1 - *n;
  memcpy(dst + *n, at, len);
  *n += len;
  dst[*n] = '\0';
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  conn_t *c = p->data;
  /* Refuse an announced oversize body before reading any of it. */
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->h->cfg.max_body) {
    c->reject = 413;
    return -1;
  }
  /* Room for the announced body at once: no copying as it grows. */
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length + 1 > c->body_cap) {
    char *b = realloc(c->body, (size_t)p->content_length + 1);
    if (!b)
      return -1;
    c->body = b;
    c->body_cap = (size_t)p->content_length + 1;
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (c->body_len + len > c->h->cfg.max_body) {
    c->reject = 413; /* chunked: refused once it grows past the limit */
    return -1;
  }
  if (c->body_len + len + 1 > c->body_cap) {
    size_t cap = c->body_cap ? c->body_cap : 4096;
    char *b;
    while (cap < c->body_len + len + 1)
      cap *= 2;
    if (cap > c->h->cfg.max_body + 1)
      cap = c->h->cfg.max_body + 1;
    if (!(b = realloc(c->body, cap)))
      return -1;
    c->body = b;
    c->body_cap = cap;
  }
  memcpy(c->body + c->body_len, at, len);
  c->body_len += len;
  c->body[c->body_len] = '\0';
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  (void)p;
  return HPE_PAUSED; /* one request at a time */
}

/* --- writing --- */

typedef struct wreq_s {
  uv_write_t w;
  conn_t *c;
  int keep;
  size_t len;
  char data[];
} wreq_t;

static void reset_request(conn_t *c) {
  free(c->url);
  free(c->param_buf[0]);
  free(c->param_buf[1]);
  free(c->path_buf);
  c->url = c->param_buf[0] = c->param_buf[1] = c->path_buf = NULL;
  c->url_len = c->field_len = c->header_bytes = 0;
  c->ctype_len = c->accept_len = c->auth_len = 0;
  c->ctype[0] = c->accept[0] = c->auth[0] = '\0';
  c->hv = HV_NONE;
  c->body_len = 0;
  if (c->body_cap > 65536) {
    /* An idle connection keeps no large buffer. */
    free(c->body);
    c->body = NULL;
    c->body_cap = 0;
  }
  if (c->body)
    c->body[0] = '\0';
  c->got_bytes = 0;
  c->reject = 0;
  memset(&c->req, 0, sizeof(c->req));
}

static void timer_cb(uv_timer_t *t) {
  conn_t *c = t->data;
  if (c->state != C_READING)
    return;
  if (c->got_bytes) {
    /* A client too slow to send one request: answer and hang up. */
    c->reject = 408;
    stls_http_error(&c->req, 408, "timeout", "request not received in time",
                    NULL);
  } else {
    conn_close(c);
  }
}

static void write_cb(uv_write_t *w, int status) {
  wreq_t *wr = (wreq_t *)w;
  conn_t *c = wr->c;
  int keep = wr->keep && status == 0;
  free(wr);
  if (c->closing)
    return;
  if (!keep) {
    conn_close(c);
    return;
  }
  /* Ready for the next request on this connection. */
  reset_request(c);
  c->state = C_READING;
  llhttp_resume(&c->parser);
  uv_timer_start(&c->timer, timer_cb, c->h->cfg.read_timeout_ms, 0);
  if (c->pending_len) {
    char *p = c->pending;
    size_t n = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    conn_feed(c, p, n);
    free(p);
  }
}

void stls_http_respond(stls_http_req_t *req, int status,
                       const char *content_type, const char *body, size_t len,
                       const char *extra_headers) {
  conn_t *c = CONN_OF(req);
  stls_http_t *h = c->h;
  char head[512];
  int keep, n;
  wreq_t *wr;
  uv_buf_t b;
  if (status >= 100 && status < 600)
    h->stats.by_status[status]++;
  if (c->closing) {
    /* The client left while the handler had the request. */
    if (c->dead) {
      c->dead = 0;
      if (c->handles == 0)
        conn_free(c);
    }
    return;
  }
  keep = !c->reject && !h->closing && llhttp_should_keep_alive(&c->parser);
  n = snprintf(head, sizeof(head),
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Cache-Control: no-store\r\nConnection: %s\r\n",
               status, status_text(status), content_type, len,
               keep ? "keep-alive" : "close");
  if (n < 0 || (size_t)n >= sizeof(head)) {
    conn_close(c);
    return;
  }
  size_t extra = extra_headers ? strlen(extra_headers) : 0;
  wr = malloc(sizeof(*wr) + (size_t)n + extra + 2 + len);
  if (!wr) {
    conn_close(c);
    return;
  }
  wr->c = c;
  wr->keep = keep;
  memcpy(wr->data, head, (size_t)n);
  if (extra)
    memcpy(wr->data + n, extra_headers, extra);
  memcpy(wr->data + n + extra, "\r\n", 2);
  if (len)
    memcpy(wr->data + n + extra + 2, body, len);
  c->state = C_WRITING;
  wr->len = (size_t)n + extra + 2 + len;
  b = uv_buf_init(wr->data, (unsigned)wr->len);
  if (h->sink) {
    c->held = wr; /* stls__http_conn_feed() delivers it */
    return;
  }
  if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0) {
    free(wr);
    conn_close(c);
  }
}

void stls_http_error(stls_http_req_t *req, int status, const char *code,
                     const char *message, const char *extra_headers) {
  /* Codes and messages are ours, but escape them anyway: one shape. */
  char buf[1024];
  size_t o = 0;
  const char *parts[2] = {code, message};
  o += (size_t)snprintf(buf, sizeof(buf), "{\"error\": {\"code\": \"");
  for (int k = 0; k < 2; k++) {
    for (const char *s = parts[k]; *s && o < sizeof(buf) - 40; s++) {
      unsigned char ch = (unsigned char)*s;
      if (ch == '"' || ch == '\\') {
        buf[o++] = '\\';
        buf[o++] = (char)ch;
      } else if (ch < 0x20) {
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\u%04x", ch);
      } else {
        buf[o++] = (char)ch;
      }
    }
    o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s",
                          k == 0 ? "\", \"message\": \"" : "\"}}\n");
  }
  stls_http_respond(req, status, "application/json", buf, o, extra_headers);
}

/* --- dispatch --- */

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Percent-decode n bytes of s into a new string ('+' as space when
 * plus); NULL on a bad escape, a NUL byte or ENOMEM. */
static char *pct_decode(const char *s, size_t n, int plus) {
  char *out = malloc(n + 1), *o = out;
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      if (i + 2 >= n) {
        free(out);
        return NULL;
      }
      int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        free(out);
        return NULL;
      }
      *o++ = (char)(hi * 16 + lo);
      i += 2;
    } else if (plus && s[i] == '+') {
      *o++ = ' ';
    } else {
      *o++ = s[i];
    }
  }
  *o = '\0';
  return out;
}

const char *stls_http_query(const stls_http_req_t *req, const char *name,
                            char *buf, size_t len) {
  const char *q = req->query;
  size_t nl = strlen(name);
  while (q && *q) {
    const char *amp = strchr(q, '&');
    size_t seg = amp ? (size_t)(amp - q) : strlen(q);
    if (seg > nl && !strncmp(q, name, nl) && q[nl] == '=') {
      char *v = pct_decode(q + nl + 1, seg - nl - 1, 1);
      if (!v)
        return NULL;
      stls_strlcpy(buf, v, len);
      free(v);
      return buf;
    }
    if (seg == nl && !strncmp(q, name, nl)) {
      stls_strlcpy(buf, "", len);
      return buf;
    }
    q = amp ? amp + 1 : NULL;
  }
  return NULL;
}

/* Does path match pattern? Fills the {} segments (start, length). */
static int route_match(const char *pattern, const char *path,
                       const char *seg[2], size_t seglen[2]) {
  int k = 0;
  while (*pattern && *path) {
    if (pattern[0] == '{' && pattern[1] == '}') {
      const char *end = strchr(path, '/');
      size_t n = end ? (size_t)(end - path) : strlen(path);
      if (n == 0 || k >= 2)
        return 0;
      seg[k] = path;
      seglen[k++] = n;
      path += n;
      pattern += 2;
    } else if (*pattern++ != *path++) {
      return 0;
    }
  }
  return !*pattern && !*path;
}

/* Take a token from client's bucket; false when it is empty. */
static bool rate_take(stls_http_t *h, const char *client) {
  uint64_t now = uv_now(h->loop);
  uint64_t hash = stls_hash64(client);
  rate_slot_t *slot = NULL, *oldest = NULL;
  if (h->cfg.post_rate <= 0)
    return true;
  for (int i = 0; i < RATE_PROBE; i++) {
    rate_slot_t *s = &h->rate[(hash + (uint64_t)i) % RATE_SLOTS];
    if (!strcmp(s->client, client)) {
      slot = s;
      break;
    }
    if (!oldest || s->last_ms < oldest->last_ms)
      oldest = s;
  }
  if (!slot) {
    slot = oldest;
    stls_strlcpy(slot->client, client, sizeof(slot->client));
    slot->tokens = h->cfg.post_burst;
    slot->last_ms = now;
  }
  slot->tokens += (double)(now - slot->last_ms) * h->cfg.post_rate / 1000.0;
  if (slot->tokens > h->cfg.post_burst)
    slot->tokens = h->cfg.post_burst;
  slot->last_ms = now;
  if (slot->tokens < 1.0)
    return false;
  slot->tokens -= 1.0;
  return true;
}

static void dispatch(conn_t *c) {
  stls_http_t *h = c->h;
  stls_http_req_t *req = &c->req;
  const char *method = llhttp_method_name((llhttp_method_t)c->parser.method);
  const stls_http_route_t *hit = NULL;
  const char *seg[2] = {NULL, NULL};
  size_t seglen[2] = {0, 0};
  char allow[64] = "";
  char *q;
  int path_matched = 0;

  uv_timer_stop(&c->timer);
  c->state = C_HANDLING;
  req->method = method;
  req->body = c->body ? c->body : "";
  req->body_len = c->body_len;
  req->content_type = c->ctype;
  req->accept = c->accept;
  stls_strlcpy(req->client, c->client, sizeof(req->client));
  if (!c->url || c->url[0] != '/') {
    stls_http_error(req, 400, "bad_request", "bad request target", NULL);
    return;
  }
  if (!(c->path_buf = stls_strdup(c->url))) {
    stls_http_error(req, 500, "internal", "out of memory", NULL);
    return;
  }
  q = strchr(c->path_buf, '?');
  if (q)
    *q++ = '\0';
  req->path = c->path_buf;
  req->query = q ? q : "";
  for (size_t i = 0; i < h->n_routes; i++) {
    const char *s2[2] = {NULL, NULL};
    size_t l2[2] = {0, 0};
    if (!route_match(h->routes[i].path, req->path, s2, l2))
      continue;
    path_matched = 1;
    if (strlen(allow) + strlen(h->routes[i].method) + 3 < sizeof(allow)) {
      if (allow[0])
        strcat(allow, ", ");
      strcat(allow, h->routes[i].method);
    }
    if (!strcmp(h->routes[i].method, method) && !hit) {
      hit = &h->routes[i];
      memcpy(seg, s2, sizeof(seg));
      memcpy(seglen, l2, sizeof(seglen));
    }
  }
  if (!hit) {
    if (path_matched) {
      char hdr[96];
      snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
      stls_http_error(req, 405, "method_not_allowed",
                      "method not allowed for this path", hdr);
    } else {
      stls_http_error(req, 404, "not_found", "no such endpoint", NULL);
    }
    return;
  }
  for (int k = 0; k < 2; k++) {
    if (!seg[k])
      continue;
    if (!(c->param_buf[k] = pct_decode(seg[k], seglen[k], 0))) {
      stls_http_error(req, 400, "bad_request", "bad percent-encoding in path",
                      NULL);
      return;
    }
    req->params[k] = c->param_buf[k];
  }
  if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
    if (h->token) {
      const char *a = c->auth;
      if (strncasecmp(a, "Bearer ", 7) != 0 ||
          !stls_http_token_equal(a + 7, h->token)) {
        stls_http_error(req, 401, "unauthorized",
                        "a valid bearer token is required",
                        "WWW-Authenticate: Bearer\r\n");
        return;
      }
    }
    if (!rate_take(h, req->client)) {
      stls_http_error(req, 429, "rate_limited",
                      "too many requests from this client",
                      "Retry-After: 1\r\n");
      return;
    }
  }
  hit->handler(req, h->arg);
}

static void conn_feed(conn_t *c, const char *data, size_t len) {
  llhttp_errno_t err;
  if (c->state != C_READING) {
    /* Hold what comes behind the request being answered, within bounds. */
    char *p;
    if (c->pending_len + len > c->h->cfg.max_header + c->h->cfg.max_body) {
      conn_close(c);
      return;
    }
    if (!(p = realloc(c->pending, c->pending_len + len))) {
      conn_close(c);
      return;
    }
    memcpy(p + c->pending_len, data, len);
    c->pending = p;
    c->pending_len += len;
    return;
  }
  c->got_bytes = 1;
  err = llhttp_execute(&c->parser, data, len);
  if (err == HPE_OK)
    return;
  if (err == HPE_PAUSED) {
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t used = pos ? (size_t)(pos - data) : len;
    if (used < len) {
      if (!(c->pending = malloc(len - used))) {
        conn_close(c);
        return;
      }
      memcpy(c->pending, data + used, len - used);
      c->pending_len = len - used;
    }
    dispatch(c);
    return;
  }
  c->state = C_HANDLING;
  if (c->reject == 413)
    stls_http_error(&c->req, 413, "too_large", "request body too large", NULL);
  else if (c->reject == 431)
    stls_http_error(&c->req, 431, "headers_too_large",
                    "request headers too large", NULL);
  else {
    c->reject = 400;
    stls_http_error(&c->req, 400, "bad_request", "malformed HTTP request",
                    NULL);
  }
}

static void alloc_cb(uv_handle_t *hd, size_t sz, uv_buf_t *buf) {
  conn_t *c = hd->data;
  (void)sz;
  *buf = uv_buf_init(c->h->readbuf, sizeof(c->h->readbuf));
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (n < 0) {
    conn_close(c);
    return;
  }
  if (n > 0)
    conn_feed(c, buf->base, (size_t)n);
}

static void free_server_if_done(stls_http_t *h) {
  if (h->closing && !h->listener_open && !h->conns) {
    free(h->token);
    free(h->rate);
    free(h);
  }
}

static void conn_free(conn_t *c) {
  stls_http_t *h = c->h;
  if (c->prev)
    c->prev->next = c->next;
  else
    h->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  h->n_conns--;
  h->stats.conns_open = h->n_conns;
  reset_request(c);
  free(c->body);
  free(c->pending);
  free(c->held);
  free(c);
  free_server_if_done(h);
}

static void conn_handle_closed(uv_handle_t *hd) {
  conn_t *c = hd->data;
  if (--c->handles > 0 || c->dead)
    return; /* a dead connection is freed when its handler answers */
  conn_free(c);
}

static void conn_close(conn_t *c) {
  if (c->closing)
    return;
  c->closing = 1;
  if (c->state == C_HANDLING) {
    if (c->req.abort_cb)
      c->req.abort_cb(&c->req, c->req.data);
    else
      c->dead = 1; /* the handler still holds the request */
  }
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void on_connection(uv_stream_t *srv, int status) {
  stls_http_t *h = srv->data;
  conn_t *c;
  unsigned same = 0;
  if (status < 0 || !(c = calloc(1, sizeof(*c))))
    return;
  c->h = h;
  uv_tcp_init(h->loop, &c->tcp);
  uv_timer_init(h->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  c->next = h->conns;
  if (h->conns)
    h->conns->prev = c;
  h->conns = c;
  h->n_conns++;
  h->stats.conns_open = h->n_conns;
  if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[64] = "";
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
      uv_ip_name((struct sockaddr *)&ss, ip, sizeof(ip));
    stls_strlcpy(c->client, ip, sizeof(c->client));
    for (conn_t *o = h->conns; o; o = o->next)
      if (o != c && !o->closing && !strcmp(o->client, ip))
        same++;
  }
  if (h->n_conns > h->cfg.max_conns || same >= h->cfg.max_conns_per_ip) {
    h->stats.conns_refused++;
    conn_close(c);
    return;
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &h->settings);
  c->parser.data = c;
  c->state = C_READING;
  uv_tcp_nodelay(&c->tcp, 1);
  uv_timer_start(&c->timer, timer_cb, h->cfg.read_timeout_ms, 0);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static int parse_listen(const char *s, struct sockaddr_storage *ss) {
  char host[128];
  const char *colon = strrchr(s, ':');
  char *end;
  long port;
  size_t n;
  if (!colon)
    return -1;
  port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535 || end == colon + 1)
    return -1;
  n = (size_t)(colon - s);
  if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
    s++;
    n -= 2;
  }
  if (n == 0 || n >= sizeof(host))
    return -1;
  memcpy(host, s, n);
  host[n] = '\0';
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
    return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  return -1;
}

/* A server with its routes and limits but no socket yet. */
static stls_http_t *http_alloc(uv_loop_t *loop, const stls_http_cfg_t *cfg,
                               const stls_http_route_t *routes, size_t n_routes,
                               void *arg, char *err, size_t errlen) {
  stls_http_t *h = calloc(1, sizeof(*h));
  if (!h || !(h->rate = calloc(RATE_SLOTS, sizeof(*h->rate)))) {
    free(h);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  h->loop = loop;
  h->cfg = *cfg;
  h->routes = routes;
  h->n_routes = n_routes;
  h->arg = arg;
  if (cfg->token && !(h->token = stls_strdup(cfg->token))) {
    free(h->rate);
    free(h);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  llhttp_settings_init(&h->settings);
  h->settings.on_message_begin = on_message_begin;
  h->settings.on_url = on_url;
  h->settings.on_header_field = on_header_field;
  h->settings.on_header_field_complete = on_header_field_complete;
  h->settings.on_header_value = on_header_value;
  h->settings.on_headers_complete = on_headers_complete;
  h->settings.on_body = on_body;
  h->settings.on_message_complete = on_message_complete;
  return h;
}

int stls_http_new(stls_http_t **out, uv_loop_t *loop,
                  const stls_http_cfg_t *cfg, const stls_http_route_t *routes,
                  size_t n_routes, void *arg, char *err, size_t errlen) {
  stls_http_t *h;
  struct sockaddr_storage ss;
  int rc;
  *out = NULL;
  if (!(h = http_alloc(loop, cfg, routes, n_routes, arg, err, errlen)))
    return -1;
  memset(&ss, 0, sizeof(ss));
  if (parse_listen(cfg->listen, &ss) != 0) {
    snprintf(err, errlen, "bad listen address '%s' (ADDR:PORT)", cfg->listen);
    goto fail;
  }
  uv_tcp_init(loop, &h->listener);
  h->listener.data = h;
  h->listener_open = 1;
  if ((rc = uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&h->listener, 128, on_connection)) != 0) {
    snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen,
             uv_strerror(rc));
    stls_http_close(h);
    return -1;
  }
  {
    struct sockaddr_storage b;
    int len = sizeof(b);
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&b, &len) == 0)
      h->port =
          ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
                                        : ((struct sockaddr_in *)&b)->sin_port);
  }
  *out = h;
  return 0;
fail:
  free(h->token);
  free(h->rate);
  free(h);
  return -1;
}

int stls__http_new_detached(
    stls_http_t **out, uv_loop_t *loop, const stls_http_cfg_t *cfg,
    const stls_http_route_t *routes, size_t n_routes, void *arg,
    void (*sink)(const char *data, size_t len, void *arg), void *sink_arg) {
  char err[64];
  if (!(*out = http_alloc(loop, cfg, routes, n_routes, arg, err, sizeof(err))))
    return -1;
  (*out)->sink = sink;
  (*out)->sink_arg = sink_arg;
  return 0;
}

stls__http_conn_t *stls__http_conn_open(stls_http_t *h, const char *client) {
  conn_t *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->h = h;
  /* A TCP handle with no socket: closing it is all it is used for. */
  uv_tcp_init(h->loop, &c->tcp);
  uv_timer_init(h->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  c->next = h->conns;
  if (h->conns)
    h->conns->prev = c;
  h->conns = c;
  h->n_conns++;
  h->stats.conns_open = h->n_conns;
  stls_strlcpy(c->client, client, sizeof(c->client));
  llhttp_init(&c->parser, HTTP_REQUEST, &h->settings);
  c->parser.data = c;
  c->state = C_READING;
  uv_timer_start(&c->timer, timer_cb, h->cfg.read_timeout_ms, 0);
  return (stls__http_conn_t *)c;
}

/* Hand every held answer to the sink and finish it as write_cb would;
 * finishing one may dispatch the next pipelined request. */
static void conn_drain(conn_t *c) {
  while (c->held) {
    wreq_t *wr = c->held;
    c->held = NULL;
    c->h->sink(wr->data, wr->len, c->h->sink_arg);
    write_cb(&wr->w, 0);
  }
}

int stls__http_conn_feed(stls__http_conn_t *conn, const char *data,
                         size_t len) {
  conn_t *c = (conn_t *)conn;
  if (c->closing)
    return -1;
  read_cb((uv_stream_t *)&c->tcp, (ssize_t)len,
          &(uv_buf_t){.base = (char *)data, .len = len});
  conn_drain(c);
  return c->closing ? -1 : 0;
}

void stls__http_conn_close(stls__http_conn_t *conn) {
  conn_t *c = (conn_t *)conn;
  conn_drain(c);
  conn_close(c);
}

static void listener_closed(uv_handle_t *hd) {
  stls_http_t *h = hd->data;
  h->listener_open = 0;
  free_server_if_done(h);
}

void stls_http_close(stls_http_t *h) {
  conn_t *c, *next;
  if (!h || h->closing)
    return;
  h->closing = 1;
  for (c = h->conns; c; c = next) {
    next = c->next;
    conn_close(c);
  }
  if (h->listener_open)
    uv_close((uv_handle_t *)&h->listener, listener_closed);
  else
    free_server_if_done(h);
}
