/* Fuzz target for the service's request handling: bytes as a client would
 * send them go through llhttp (scanner/http.c), the router and the
 * handlers of scanner/serve.c over a fresh in-memory store, with no
 * socket (stls__http_new_detached). Ingest bodies reach the record parser
 * and the diff; feed, history, jobs, metrics and the page answer from
 * what was ingested. The scan engine is absent: a scan request is queued
 * and answered, never run.
 *
 * This file compiles serve.c itself (its handlers and state are static).
 *
 * Input: a byte of settings (bit 0: a bearer token is required; bit 1: a
 * 4 KB body limit instead of 1 MB; bit 2: a 64-byte header limit instead
 * of the default), a byte seeding how the rest is cut into reads, then
 * the bytes of one connection. Checks:
 *  - every answer begins with an HTTP/1.1 status line of a status the
 *    service uses, has a Content-Length equal to its body's length;
 *  - a JSON answer parses; an error answer is the one error shape;
 *  - no answer is 500 (nothing a client sends is the service's fault);
 *  - no leak and no error from the sanitizers, once the connection closed.
 */
#define _GNU_SOURCE /* memmem */
#include "serve.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The command line's helpers live in the executable (main.c, cmd_scan.c);
 * stls_cmd_serve() is never called here. */
int stls__probe_common_opt(int c, const char *arg, const char *cmd,
                           probe_common_t *o) {
  (void)c, (void)arg, (void)cmd, (void)o;
  abort();
}
int stls__usage_error(const char *cmd, const char *fmt, const char *arg) {
  (void)cmd, (void)fmt, (void)arg;
  abort();
}
int stls__parse_port(const char *s) {
  (void)s;
  abort();
}
int stls__parse_uint(const char *s, unsigned min, unsigned max, unsigned *out) {
  (void)s, (void)min, (void)max, (void)out;
  abort();
}
void stls__default_ehlo(char *buf, size_t len, int warn) {
  (void)buf, (void)len, (void)warn;
  abort();
}

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* Check one whole answer as the handler gave it. */
static void answer_check(const char *p, size_t n, void *arg) {
  const char *eoh, *cl, *ct;
  int status = 0;
  size_t body_len, want;
  char *body;
  (void)arg;
  CHECK(n > 17 && !memcmp(p, "HTTP/1.1 ", 9));
  status = atoi(p + 9);
  /* The statuses the service answers with; never 500. */
  {
    char code[5];
    snprintf(code, sizeof(code), "%d ", status);
    CHECK(strstr("200 202 204 400 401 404 405 408 413 414 429 431 503 ",
                 code) != NULL);
  }
  CHECK((eoh = memmem(p, n, "\r\n\r\n", 4)) != NULL);
  eoh += 4;
  body_len = n - (size_t)(eoh - p);
  CHECK((cl = memmem(p, (size_t)(eoh - p), "Content-Length: ", 16)) != NULL);
  want = (size_t)strtoull(cl + 16, NULL, 10);
  CHECK(want == body_len);
  ct = memmem(p, (size_t)(eoh - p), "Content-Type: application/", 26);
  if (!ct || (memcmp(ct + 26, "json", 4) && memcmp(ct + 26, "x-ndjson", 8)))
    return;
  CHECK((body = malloc(body_len + 1)) != NULL);
  memcpy(body, eoh, body_len);
  body[body_len] = '\0';
  /* JSON as a strict parser wants it, whatever was ingested: valid UTF-8
   * and no control byte but the newline that ends an NDJSON line. */
  for (size_t i = 0; i < body_len; i++)
    CHECK((unsigned char)body[i] >= 0x20 || body[i] == '\n');
  CHECK(stls_utf8_is_valid(body));
  if (!memcmp(ct + 26, "x-ndjson", 8)) {
    /* Each line one JSON value. */
    for (char *l = body, *nl; *l; l = nl + 1) {
      cJSON *j;
      CHECK((nl = strchr(l, '\n')) != NULL);
      CHECK((j = cJSON_ParseWithLength(l, (size_t)(nl - l))) != NULL);
      cJSON_Delete(j);
    }
    free(body);
    return;
  }
  {
    cJSON *j = cJSON_Parse(body);
    CHECK(j != NULL);
    if (status >= 400) {
      const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
      CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "code")));
      CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
    }
    cJSON_Delete(j);
  }
  free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char token[] = "fuzz-token";
  serve_t *sv;
  uv_loop_t loop;
  stls__http_conn_t *c;
  char err[256];
  size_t off = 2;
  unsigned seed;

  if (size < 2)
    return 0;
  seed = data[1];
  CHECK((sv = calloc(1, sizeof(*sv))) != NULL);
  CHECK(uv_loop_init(&loop) == 0);
  sv->loop = &loop;
  sv->started = time(NULL);
  sv->q_cap = 100;
  stls_engine_cfg_defaults(&sv->ecfg);
  stls_http_cfg_defaults(&sv->http_cfg);
  if (data[0] & 1)
    sv->http_cfg.token = token;
  if (data[0] & 2)
    sv->http_cfg.max_body = 4096;
  if (data[0] & 4)
    sv->http_cfg.max_header = 64;
  sv->http_cfg.post_rate = 0;
  CHECK((sv->jobs = stls_strmap_new()) != NULL);
  CHECK((sv->scanning = stls_strmap_new()) != NULL);
  if (stls_store_open(&sv->store, ":memory:", err, sizeof(err)) != 0) {
    fprintf(stderr, "store: %s\n", err);
    abort();
  }
  CHECK(stls__http_new_detached(&sv->http, &loop, &sv->http_cfg, routes,
                                sizeof(routes) / sizeof(routes[0]), sv,
                                answer_check, NULL) == 0);
  CHECK((c = stls__http_conn_open(sv->http, "192.0.2.1")) != NULL);
  /* Reads of 1..64 bytes chosen by seed (0: all at once). */
  while (off < size) {
    size_t k = size - off;
    if (seed) {
      seed = seed * 1103515245u + 12345u;
      if (k > 1 + (seed >> 16) % 64)
        k = 1 + (seed >> 16) % 64;
    }
    if (stls__http_conn_feed(c, (const char *)data + off, k) != 0)
      break;
    off += k;
  }
  stls__http_conn_close(c);
  stls_http_close(sv->http);
  sv->stopping = 1;
  uv_walk(&loop, on_walk_close, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  free_queue(sv);
  stls_store_close(sv->store);
  stls_strmap_free(sv->jobs);
  stls_strmap_free(sv->scanning);
  free(sv);
  return 0;
}
