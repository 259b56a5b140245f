/* Fuzz target for the TLS hello parser and builder (scanner/hello.c).
 *
 * The input is the byte stream a server might send after our ClientHello.
 * It is parsed in one piece, one byte at a time and in pseudo-random pieces
 * (including empty feeds) derived from the input, so a corpus file is a
 * plain transcript and replays identically. All three runs must report the
 * same facts (hello_kv.h formats every field, consumed included), and the
 * facts must hang together: an error has a reason, a conclusion has a cause,
 * every prefix of the concluding bytes asks for more, a conclusion is
 * sticky. The input also serves as an SNI for the builder, whose record
 * must be self-consistent and fit STLS_HELLO_BUILD_MAX. Any violation
 * aborts, which both libFuzzer and the corpus replay treat as a failure.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hello_kv.h"
#include "stls/hello.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define FACTS_MAX 4096

typedef enum { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM } split_t;

/* Static: the parser is ~66 KB, and libFuzzer runs inputs one at a time. */
static stls_hello_parser_t parser;

/* xorshift64: the random split pattern, seeded from the input. */
static uint64_t next_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Parse data split as asked; write the facts and return the code. */
static stls_hello_rc_t run(const uint8_t *data, size_t size, split_t split,
                           uint64_t seed, char *facts) {
  stls_hello_rc_t rc = STLS_HELLO_NEED_MORE;
  size_t off = 0;

  stls_hello_parser_init(&parser);
  do {
    size_t piece = size - off;

    if (split == SPLIT_BYTES)
      piece = piece ? 1 : 0;
    else if (split == SPLIT_RANDOM)
      piece = (size_t)(next_rand(&seed) % 300); /* 0 too: empty feeds */
    if (piece > size - off)
      piece = size - off;
    rc = stls_hello_parser_feed(&parser, data + off, piece);
    off += piece;
  } while (off < size);
  hello_kv_format(stls_hello_parser_result(&parser), rc, facts, FACTS_MAX);
  return rc;
}

/* The facts of one parse must hang together. */
static void check_result(const stls_hello_result_t *r, stls_hello_rc_t rc,
                         size_t size) {
  CHECK(r->consumed <= size);
  CHECK(rc != STLS_HELLO_NEED_MORE || r->consumed == size);
  CHECK((rc == STLS_HELLO_ERROR) == (r->error[0] != '\0'));
  CHECK(strlen(r->error) < sizeof(r->error));
  CHECK(r->n_ext <= STLS_HELLO_MAX_EXT);
  CHECK(r->consumed <= STLS_HELLO_MAX_FLIGHT);
  CHECK(r->cert_count <= r->certificate_len / 4 + 1);
  CHECK(!r->ocsp_staple || (r->ocsp_len > 0 && r->ocsp_len <= 65536));
  if (r->kind == STLS_HELLO_KIND_SSL2)
    CHECK(rc == STLS_HELLO_DONE && r->consumed == 3);
  if (r->kind == STLS_HELLO_KIND_GARBAGE)
    CHECK(rc == STLS_HELLO_DONE && r->consumed >= 1 && r->consumed <= 3);
  if (r->kind == STLS_HELLO_KIND_ALERT)
    CHECK(r->alert);
  if (r->kind != STLS_HELLO_KIND_SERVER_HELLO)
    CHECK(!r->certificate && !r->server_hello_done && r->version == 0);
  if (rc == STLS_HELLO_DONE)
    CHECK(r->kind == STLS_HELLO_KIND_SSL2 ||
          r->kind == STLS_HELLO_KIND_GARBAGE ||
          (r->alert && (r->alert_level == 2 || r->alert_desc == 0)) ||
          r->server_hello_done || r->change_cipher_spec ||
          (r->kind == STLS_HELLO_KIND_SERVER_HELLO &&
           r->version == STLS_TLS_1_3));
}

/* Build a ClientHello with the input as the SNI and check its lengths. */
static void check_build(const uint8_t *data, size_t size) {
  static const uint8_t random[32] = {1, 2, 3};
  uint8_t out[STLS_HELLO_BUILD_MAX];
  char sni[300];
  size_t n, k = size < sizeof(sni) - 1 ? size : sizeof(sni) - 1;
  uint16_t version = (uint16_t)(STLS_TLS_SSL3 + (size ? data[0] % 4 : 3));

  memcpy(sni, data, k);
  sni[k] = '\0';
  n = stls_hello_build(version, sni, size > 1 ? data[1] & 1 : 0, random, out,
                       sizeof(out));
  CHECK(n >= 5 + 4 + 38 && n <= sizeof(out));
  CHECK(out[0] == 22 && (size_t)(out[3] << 8 | out[4]) == n - 5);
  CHECK(out[5] == 1);
  CHECK(((size_t)out[6] << 16 | (size_t)out[7] << 8 | out[8]) == n - 9);
  CHECK((out[9] << 8 | out[10]) == version);
  CHECK(n - 5 < 256 || n - 5 >= 512);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char whole[FACTS_MAX], other[FACTS_MAX];
  uint64_t seed = 88172645463325252u;
  stls_hello_rc_t rc;
  size_t consumed, i;

  for (i = 0; i < size; i++)
    seed = (seed ^ data[i]) * 1099511628211u;
  seed |= 1;

  rc = run(data, size, SPLIT_WHOLE, 0, whole);
  check_result(stls_hello_parser_result(&parser), rc, size);
  consumed = stls_hello_parser_result(&parser)->consumed;
  /* A conclusion is sticky and ignores what follows. */
  if (rc != STLS_HELLO_NEED_MORE) {
    CHECK(stls_hello_parser_feed(&parser, data, size) == rc);
    CHECK(stls_hello_parser_result(&parser)->consumed == consumed);
  }
  CHECK(run(data, size, SPLIT_BYTES, 0, other) == rc);
  CHECK(strcmp(whole, other) == 0);
  CHECK(run(data, size, SPLIT_RANDOM, seed, other) == rc);
  CHECK(strcmp(whole, other) == 0);
  /* The bytes before the concluding one decide nothing yet. */
  if (rc != STLS_HELLO_NEED_MORE && consumed > 0) {
    stls_hello_parser_init(&parser);
    CHECK(stls_hello_parser_feed(&parser, data, consumed - 1) ==
          STLS_HELLO_NEED_MORE);
  }
  check_build(data, size);
  return 0;
}
