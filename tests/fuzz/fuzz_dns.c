/* Fuzz target for DNS answers as the program consumes them (scanner/dns.c):
 * the check every response passes as it is read (wire_check), c-ares
 * 1.34's parse of it (ares_dns_parse), the MX, TXT and TLSA readers over
 * the parsed record, the MX rules applied to what the MX reader found,
 * and the AD flag. (libFuzzer instruments dns.c only: the c-ares archive
 * is linked as built, so coverage is ours, the input reaches c-ares.)
 *
 * Input: one byte choosing the name asked for (from a small table, so the
 * dictionary's names can match owners and CNAME chains), then a whole DNS
 * response. Checks:
 *  - every parser returns 0, UV_EINVAL or UV_ENOMEM, and leaves nothing
 *    behind on failure;
 *  - what it returns is well formed: MX hosts are strings, TXT strings
 *    fit the answer and are terminated, TLSA records are sorted and
 *    unique;
 *  - the MX rules give OK or NULL_MX, a null MX has no hosts, hosts are
 *    lower case, unique, capped and in delivery order;
 *  - the answer's ID never matters: no name may be read from the header
 *    (a compression pointer there is malformed), so flipping the ID bytes
 *    gives the same outcome for every parser;
 *  - every reader refuses exactly the answers stls__dns_answer_check
 *    refuses (the pre-check and c-ares together);
 *  - the AD flag is bit 5 of byte 3 of an accepted answer.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static const char *const qnames[] = {
    "example.com",
    "_25._tcp.mx.example.com",
    "_mta-sts.example.com",
    "mx.example.com",
};

#define MAX_MX 3

static bool rc_ok(int rc) {
  return rc == 0 || rc == UV_EINVAL || rc == UV_ENOMEM;
}

/* The MX answer, and the MX rules over it. */
static void mx_run(const uint8_t *pkt, size_t len, const char *qname,
                   stls__dns_mx_rr_t **rr, size_t *n, int *rc) {
  *rc = stls__dns_parse_mx(pkt, len, qname, rr, n);
  CHECK(rc_ok(*rc));
  if (*rc != 0) {
    CHECK(*rr == NULL && *n == 0);
    return;
  }
  CHECK((*n == 0) == (*rr == NULL));
  for (size_t i = 0; i < *n; i++) {
    CHECK((*rr)[i].host != NULL);
    CHECK((*rr)[i].preference <= 0xffff);
  }
}

static void mx_rules(const char *qname, const stls__dns_mx_rr_t *rr, size_t n) {
  stls_dns_result_t *r = calloc(1, sizeof *r);
  stls_dns_error_t none = {NULL, NULL};
  bool root = false;

  CHECK(r != NULL);
  if (stls__dns_classify_mx(r, qname, STLS_DNS_OK, none, rr, n, MAX_MX) != 0) {
    stls_dns_result_free(r);
    return; /* out of memory */
  }
  for (size_t i = 0; i < n; i++)
    root = root || rr[i].host[0] == '\0' || strcmp(rr[i].host, ".") == 0;
  if (root) {
    CHECK(r->status == STLS_DNS_NULL_MX && r->null_mx && r->nmx == 0);
  } else {
    CHECK(r->status == STLS_DNS_OK && !r->null_mx);
    CHECK(r->nmx >= 1 && r->nmx <= MAX_MX);
    CHECK(r->implicit_mx == (n == 0));
    for (size_t i = 0; i < r->nmx; i++) {
      const char *h = r->mx[i].host;
      for (const char *c = h; *c; c++)
        CHECK(!(*c >= 'A' && *c <= 'Z'));
      for (size_t k = 0; k < i; k++)
        CHECK(strcmp(r->mx[k].host, h) != 0);
      if (i > 0) {
        const stls_dns_mx_t *a = &r->mx[i - 1], *b = &r->mx[i];
        CHECK(a->preference < b->preference ||
              (a->preference == b->preference && strcmp(a->host, b->host) < 0));
      }
    }
  }
  stls_dns_result_free(r);
}

static int tlsa_cmp(const stls_dns_tlsa_rr_t *x, const stls_dns_tlsa_rr_t *y) {
  size_t m = x->len < y->len ? x->len : y->len;
  int c;
  if (x->usage != y->usage)
    return x->usage < y->usage ? -1 : 1;
  if (x->selector != y->selector)
    return x->selector < y->selector ? -1 : 1;
  if (x->mtype != y->mtype)
    return x->mtype < y->mtype ? -1 : 1;
  c = m ? memcmp(x->data, y->data, m) : 0;
  if (c != 0)
    return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *qname;
  const uint8_t *pkt;
  uint8_t *flip;
  size_t len, n1 = 0, n2 = 0;
  stls__dns_mx_rr_t *rr1 = NULL, *rr2 = NULL;
  stls_dns_txt_result_t *t1, *t2;
  stls_dns_tlsa_result_t *a1, *a2;
  int rc1, rc2, checked;

  if (size < 1)
    return 0;
  qname = qnames[data[0] % (sizeof qnames / sizeof qnames[0])];
  pkt = data + 1;
  len = size - 1;
  /* The same answer with the ID bytes flipped. */
  flip = malloc(len ? len : 1);
  CHECK(flip != NULL);
  if (len)
    memcpy(flip, pkt, len);
  if (len >= 2) {
    flip[0] ^= 0xff;
    flip[1] ^= 0xff;
  }

  rc1 = stls__dns_answer_check(pkt, len);
  rc2 = stls__dns_answer_check(flip, len);
  CHECK(rc_ok(rc1) && rc_ok(rc2));
  CHECK(rc1 == rc2 || rc1 == UV_ENOMEM || rc2 == UV_ENOMEM);
  checked = rc1;
  /* AD is the header's bit, of an answer c-ares and the check accept. */
  if (checked != UV_ENOMEM)
    CHECK(stls__dns_answer_ad(pkt, len) ==
          (checked == 0 && (pkt[3] & 0x20) != 0));

  mx_run(pkt, len, qname, &rr1, &n1, &rc1);
  mx_run(flip, len, qname, &rr2, &n2, &rc2);
  CHECK(rc1 == rc2 || rc1 == UV_ENOMEM || rc2 == UV_ENOMEM);
  /* Each parser refuses exactly the answers the check refuses. */
  CHECK(rc1 == checked || rc1 == UV_ENOMEM || checked == UV_ENOMEM);
  if (rc1 == 0 && rc2 == 0) {
    CHECK(n1 == n2);
    for (size_t i = 0; i < n1; i++) {
      CHECK(rr1[i].preference == rr2[i].preference);
      CHECK(strcmp(rr1[i].host, rr2[i].host) == 0);
    }
    mx_rules(qname, rr1, n1);
  }
  stls__dns_mx_rr_free(rr1, n1);
  stls__dns_mx_rr_free(rr2, n2);

  t1 = calloc(1, sizeof *t1);
  t2 = calloc(1, sizeof *t2);
  CHECK(t1 && t2);
  rc1 = stls__dns_parse_txt(pkt, len, qname, t1);
  rc2 = stls__dns_parse_txt(flip, len, qname, t2);
  CHECK(rc_ok(rc1) && rc_ok(rc2));
  CHECK(rc1 == rc2 || rc1 == UV_ENOMEM || rc2 == UV_ENOMEM);
  CHECK(rc1 == checked || rc1 == UV_ENOMEM || checked == UV_ENOMEM);
  if (rc1 != 0)
    CHECK(t1->ntxt == 0 && t1->txt == NULL);
  if (rc1 == 0 && rc2 == 0) {
    CHECK(t1->ntxt == t2->ntxt);
    for (size_t i = 0; i < t1->ntxt; i++) {
      CHECK(t1->txt_len[i] < len);
      CHECK(t1->txt[i][t1->txt_len[i]] == '\0');
      CHECK(t1->txt_len[i] == t2->txt_len[i]);
      CHECK(memcmp(t1->txt[i], t2->txt[i], t1->txt_len[i]) == 0);
    }
  }
  stls_dns_txt_result_free(t1);
  stls_dns_txt_result_free(t2);

  a1 = calloc(1, sizeof *a1);
  a2 = calloc(1, sizeof *a2);
  CHECK(a1 && a2);
  rc1 = stls__dns_parse_tlsa(pkt, len, qname, a1);
  rc2 = stls__dns_parse_tlsa(flip, len, qname, a2);
  CHECK(rc_ok(rc1) && rc_ok(rc2));
  CHECK(rc1 == rc2 || rc1 == UV_ENOMEM || rc2 == UV_ENOMEM);
  CHECK(rc1 == checked || rc1 == UV_ENOMEM || checked == UV_ENOMEM);
  if (rc1 != 0)
    CHECK(a1->nrr == 0 && a1->rr == NULL);
  if (rc1 == 0 && rc2 == 0) {
    CHECK(a1->nrr == a2->nrr && a1->is_cname == a2->is_cname);
    for (size_t i = 0; i < a1->nrr; i++) {
      CHECK(a1->rr[i].len < len && a1->rr[i].data != NULL);
      CHECK(tlsa_cmp(&a1->rr[i], &a2->rr[i]) == 0);
      if (i > 0)
        CHECK(tlsa_cmp(&a1->rr[i - 1], &a1->rr[i]) < 0);
    }
  }
  stls_dns_tlsa_result_free(a1);
  stls_dns_tlsa_result_free(a2);
  free(flip);
  return 0;
}
