/* Fuzz target for the MTA-STS policy fetch's HTTP response handling: the
 * llhttp callbacks of scanner/sts.c (status, headers, Content-Type and
 * Location kept, the head and body limits, redirects and statuses refused).
 *
 * They work on the fetch's private state, so this file compiles sts.c
 * itself and drives the callbacks through llhttp exactly as the fetch
 * does, without a connection. If the fetch's fields change, this target
 * fails to build: change it with them.
 *
 * Input: a byte of limits (a small or the default body and head limit,
 * strict or lax Content-Type), a byte seeding how the response is cut
 * into reads, then the response bytes. Checks:
 *  - whether the response is complete, and then its status, body,
 *    Content-Type and Location, are the same read whole and in pieces;
 *  - a complete response is a 200 with a text/plain Content-Type (unless
 *    lax) and a body within the limit; a refusal has a code and message;
 *  - kept header values are printable ASCII and terminated;
 *  - without a refusal the head stayed within its limit.
 */
#include "sts.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

typedef struct {
  int done, refused;
  stls_sts_status_t st;
  char code[48];
  int http_status;
  char content_type[128], location[256];
  char *body;
  size_t body_len;
} outcome_t;

/* Feed the response to a fresh fetch in pieces of 1..16 bytes chosen by
 * seed (0: all at once), as reads would deliver it, then EOF. */
static void run(const stls_sts_limits_t *lim, const uint8_t *p, size_t n,
                unsigned seed, outcome_t *o) {
  stls_sts_t s;
  fetch_t *f = calloc(1, sizeof *f);
  stls_sts_result_t *res = calloc(1, sizeof *res);
  size_t off = 0;
  llhttp_errno_t e = HPE_OK;

  CHECK(f && res);
  memset(&s, 0, sizeof s);
  s.lim = *lim;
  f->sts = &s;
  f->res = res;
  llhttp_init(&f->http, HTTP_RESPONSE, &http_settings);
  f->http.data = f;
  while (off < n && e == HPE_OK) {
    size_t k = n - off;
    if (seed) {
      seed = seed * 1103515245u + 12345u;
      k = 1 + (seed >> 16) % 16;
      if (k > n - off)
        k = n - off;
    }
    e = llhttp_execute(&f->http, (const char *)p + off, k);
    off += k;
  }
  if (e == HPE_OK && !f->http_done && !f->herr_code[0])
    llhttp_finish(&f->http);

  memset(o, 0, sizeof *o);
  o->done = f->http_done && !f->herr_code[0];
  o->refused = f->herr_code[0] != '\0';
  o->st = f->herr_status;
  memcpy(o->code, f->herr_code, sizeof o->code);
  o->http_status = res->http_status;
  memcpy(o->content_type, res->content_type, sizeof o->content_type);
  memcpy(o->location, res->location, sizeof o->location);
  o->body = f->body;
  o->body_len = f->body_len;

  if (o->refused)
    CHECK(f->herr_msg[0] != '\0');
  else
    CHECK(f->head_bytes <= lim->max_header_bytes);
  CHECK(f->body_len <= lim->max_body);
  for (const char *c = res->content_type; *c; c++)
    CHECK(*c >= 0x20 && *c < 0x7f);
  for (const char *c = res->location; *c; c++)
    CHECK(*c >= 0x20 && *c < 0x7f);
  CHECK(strlen(res->content_type) < sizeof res->content_type);
  CHECK(strlen(res->location) < sizeof res->location);
  if (o->done) {
    CHECK(res->http_status == 200);
    CHECK(lim->lax_content_type || stls_sts_content_type_ok(res->content_type));
  }
  free(res);
  free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  stls_sts_limits_t lim;
  outcome_t a, b;

  if (size < 2)
    return 0;
  memset(&lim, 0, sizeof lim);
  lim.max_body = data[0] & 1 ? 64 : STLS_STS_DEFAULT_MAX_BODY;
  lim.max_header_bytes = data[0] & 2 ? 256 : STLS_STS_DEFAULT_MAX_HEADER_BYTES;
  lim.lax_content_type = (data[0] & 4) != 0;

  run(&lim, data + 2, size - 2, 0, &a);
  run(&lim, data + 2, size - 2, 1u + data[1], &b);
  /* How a malformed response fails may depend on where the reads end
   * (llhttp hands over a partial span only at the end of a read, so the
   * head limit can trip before the syntax error is seen); whether a
   * response succeeds, and what it yields, must not. */
  CHECK(a.done == b.done);
  if (a.done) {
    CHECK(a.http_status == b.http_status);
    CHECK(strcmp(a.content_type, b.content_type) == 0);
    CHECK(strcmp(a.location, b.location) == 0);
    CHECK(a.body_len == b.body_len);
    CHECK(a.body_len == 0 || memcmp(a.body, b.body, a.body_len) == 0);
  }
  free(a.body);
  free(b.body);
  return 0;
}
