/* A small HTTP/1.1 server on libuv for the service: llhttp parses, a route
 * table of {method, path, handler} dispatches, and every response goes
 * through stls_http_respond() (status, content type, length) or
 * stls_http_error() (the one JSON error shape).
 *
 * Hostile clients are bounded: header and body size limits (413 before an
 * oversize body is read), a request-read timeout, caps on connections in
 * total and per client address, a per-client rate on POST and DELETE
 * (429), and a bearer token for them when one is configured (401). */
#ifndef STLS_HTTP_H
#define STLS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define STLS_HTTP_DEFAULT_MAX_BODY (1024 * 1024)
#define STLS_HTTP_DEFAULT_MAX_HEADER (16 * 1024)
#define STLS_HTTP_DEFAULT_READ_TIMEOUT_MS 10000
#define STLS_HTTP_DEFAULT_MAX_CONNS 512
#define STLS_HTTP_DEFAULT_MAX_CONNS_PER_IP 64
#define STLS_HTTP_DEFAULT_POST_RATE 20.0 /* per second and client */
#define STLS_HTTP_DEFAULT_POST_BURST 100.0

typedef struct stls_http_cfg_s {
  const char *listen; /* "ADDR:PORT", "[V6]:PORT" */
  size_t max_body, max_header;
  uint64_t read_timeout_ms;
  unsigned max_conns, max_conns_per_ip;
  double post_rate, post_burst; /* post_rate 0: no limit */
  const char *token;            /* bearer token for POST/DELETE, or NULL */
} stls_http_cfg_t;

typedef struct stls_http_s stls_http_t;
typedef struct stls_http_req_s stls_http_req_t;

typedef void (*stls_http_handler_t)(stls_http_req_t *req, void *arg);

typedef struct stls_http_route_s {
  const char *method; /* "GET", "POST", "DELETE" */
  const char *path;   /* "/v1/scans/{}/results": {} matches one segment */
  stls_http_handler_t handler;
} stls_http_route_t;

/* What a handler sees. Strings are NUL-terminated and live until the
 * response has been given (or the abort callback has run). */
struct stls_http_req_s {
  const char *method;
  const char *path;      /* without the query */
  const char *query;     /* after '?', or "" */
  const char *params[2]; /* the {} segments of the route, decoded */
  const char *body;      /* NUL-terminated copy of the body */
  size_t body_len;
  const char *content_type; /* or "" */
  const char *accept;       /* or "" */
  char client[64];          /* peer address */
  /* A handler that answers later sets these: abort_cb runs (instead of a
   * response) when the client goes away first. */
  void (*abort_cb)(stls_http_req_t *req, void *data);
  void *data;
};

void stls_http_cfg_defaults(stls_http_cfg_t *cfg);

/* Bind and listen. 0, or -1 with a reason in err. */
int stls_http_new(stls_http_t **out, uv_loop_t *loop,
                  const stls_http_cfg_t *cfg, const stls_http_route_t *routes,
                  size_t n_routes, void *arg, char *err, size_t errlen);
/* The bound port (useful with port 0). */
int stls_http_port(stls_http_t *h);
/* Stop listening and close every connection; requests waiting for an
 * answer get their abort callback. Frees h once its handles are closed. */
void stls_http_close(stls_http_t *h);

/* Answer req: body (len bytes, copied) with content_type; extra_headers
 * ("Name: value\r\n"...) may be NULL. req is invalid afterwards. */
void stls_http_respond(stls_http_req_t *req, int status,
                       const char *content_type, const char *body, size_t len,
                       const char *extra_headers);
/* Answer with {"error": {"code": code, "message": message}}. */
void stls_http_error(stls_http_req_t *req, int status, const char *code,
                     const char *message, const char *extra_headers);

/* The value of query parameter name (decoded, into buf), or NULL. */
const char *stls_http_query(const stls_http_req_t *req, const char *name,
                            char *buf, size_t len);

/* Responses sent, by status code (100..599), for the metrics. */
typedef struct stls_http_stats_s {
  uint64_t by_status[600];
  unsigned conns_open;
  uint64_t conns_refused; /* over a connection cap */
} stls_http_stats_t;
const stls_http_stats_t *stls_http_stats(const stls_http_t *h);

/* Constant-time comparison of two strings (by length and content). */
bool stls_http_token_equal(const char *a, const char *b);

/* Requests without sockets, for the fuzz target: a server that does not
 * listen, and connections fed bytes by the caller; every answer's bytes
 * (status line, headers, body) go to sink when the handler gives them.
 * Close with stls_http_close() and run the loop until its handles close. */
typedef struct stls__http_conn_s stls__http_conn_t;
int stls__http_new_detached(
    stls_http_t **out, uv_loop_t *loop, const stls_http_cfg_t *cfg,
    const stls_http_route_t *routes, size_t n_routes, void *arg,
    void (*sink)(const char *data, size_t len, void *arg), void *sink_arg);
/* A connection from client (an address as text). */
stls__http_conn_t *stls__http_conn_open(stls_http_t *h, const char *client);
/* Bytes as one read would deliver them; -1 once the connection closed. */
int stls__http_conn_feed(stls__http_conn_t *c, const char *data, size_t len);
/* The peer goes away (a handler still waiting is told). */
void stls__http_conn_close(stls__http_conn_t *c);

#endif
