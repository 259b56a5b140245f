/* Fuzz target for the SMTP reply parser (scanner/reply.c).
 *
 * The input is a byte stream as a peer might send it. It is parsed three
 * times: in one piece, one byte at a time, and in pseudo-random pieces
 * (including empty feeds) whose sizes are derived from the input itself, so
 * a corpus file is a plain transcript and replays identically. The three
 * runs must report the same sequence of results; every completed reply is
 * checked against the grammar independently of the parser. Any violation
 * aborts, which is what both libFuzzer and the corpus replay treat as a
 * failure.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* How a run splits its input into feeds. */
typedef enum { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM } split_t;

/* FNV-1a, to fold a run's results into one comparable value. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  size_t i;

  for (i = 0; i < n; i++) {
    h ^= b[i];
    h *= 1099511628211u;
  }
  return h;
}

static uint64_t hash_size(uint64_t h, size_t v) {
  return hash_bytes(h, &v, sizeof(v));
}

/* xorshift64: the random split pattern, seeded from the input. */
static uint64_t next_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Check a completed reply against the grammar in reply.c, without using
 * the parser's own logic. */
static void check_reply(const stls_reply_t *r) {
  char small[8];
  size_t i, j;

  CHECK(r != NULL && r->text != NULL);
  CHECK(r->code >= 200 && r->code <= 599);
  CHECK(r->n_lines >= 1 && r->n_lines <= STLS_REPLY_MAX_LINES);
  CHECK(r->text_len <= STLS_REPLY_MAX_TEXT);
  CHECK(strlen(r->text) == r->text_len);
  CHECK(r->line_off[0] == 0);
  for (i = 0; i < r->n_lines; i++) {
    size_t start = r->line_off[i];
    size_t end =
        i + 1 < r->n_lines ? (size_t)r->line_off[i + 1] - 2 : r->text_len;
    const unsigned char *l = (const unsigned char *)r->text + start;
    size_t len, text_len;

    CHECK(start <= end && end <= r->text_len);
    len = end - start;
    CHECK(len >= 3 && len <= STLS_REPLY_MAX_LINE);
    if (i + 1 < r->n_lines) {
      CHECK(memcmp(r->text + end, "\r\n", 2) == 0);
      CHECK(len >= 4 && l[3] == '-'); /* only the last line ends a reply */
    } else {
      CHECK(len == 3 || l[3] == ' ');
    }
    CHECK((l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0') == r->code);
    /* Text keeps every byte as sent (control bytes, a bare CR) except NUL
     * and LF, which end or break a line. */
    for (j = 3; j < len; j++)
      CHECK(l[j] != 0 && l[j] != '\n');

    text_len = stls_reply_line_text(r, i, small, sizeof(small));
    CHECK(text_len == (len > 3 ? len - 4 : 0));
    CHECK(strlen(small) ==
          (text_len < sizeof(small) ? text_len : sizeof(small) - 1));
    CHECK(memcmp(small, l + (len > 3 ? 4 : 3), strlen(small)) == 0);
  }
  CHECK(stls_reply_line_text(r, r->n_lines, small, sizeof(small)) == 0);
}

/* Parse the whole input split as asked; returns a hash of every result
 * (code, absolute end offset, reply text) in order. */
static uint64_t run(stls_reply_parser_t *p, const uint8_t *data, size_t size,
                    split_t split, uint64_t seed) {
  uint64_t h = 14695981039346656037u;
  size_t off = 0;

  stls_reply_parser_init(p);
  CHECK(stls_reply_parser_pending(p) == 0);
  while (off < size) {
    size_t piece = size - off, done = 0;

    if (split == SPLIT_BYTES)
      piece = 1;
    else if (split == SPLIT_RANDOM)
      piece = (size_t)(next_rand(&seed) % 67); /* 0 too: empty feeds */
    if (piece > size - off)
      piece = size - off;

    for (;;) {
      const stls_reply_t *r = NULL;
      size_t used = (size_t)-1;
      stls_reply_rc_t rc = stls_reply_parser_feed(
          p, (const char *)data + off + done, piece - done, &used, &r);

      CHECK(used <= piece - done);
      done += used;
      if (rc == STLS_REPLY_NEED_MORE) {
        CHECK(done == piece && r == NULL);
        break;
      }
      h = hash_size(h, (size_t)(rc + 10));
      h = hash_size(h, off + done);
      if (rc == STLS_REPLY_DONE) {
        CHECK(used > 0);
        check_reply(r);
        CHECK(stls_reply_parser_pending(p) == 0);
        h = hash_bytes(h, r->text, r->text_len + 1);
        if (done == piece)
          break;
        continue;
      }
      /* An error: it must be sticky and consume nothing more. */
      CHECK(rc < 0 && r == NULL && used > 0);
      h = hash_size(h, stls_reply_parser_pending(p));
      CHECK(stls_reply_parser_feed(p, "250 ok\r\n", 8, &used, &r) == rc);
      CHECK(used == 0 && r == NULL);
      return h;
    }
    off += piece;
  }
  /* What is left buffered must not depend on the split either. */
  return hash_size(h, stls_reply_parser_pending(p));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Static: the parser is ~18 KB, more than a fuzzer's stack should see
   * per frame, and libFuzzer runs inputs one at a time. */
  static stls_reply_parser_t p;
  uint64_t seed = hash_bytes(88172645463325252u, data, size) | 1;
  uint64_t whole = run(&p, data, size, SPLIT_WHOLE, 0);

  CHECK(run(&p, data, size, SPLIT_BYTES, 0) == whole);
  CHECK(run(&p, data, size, SPLIT_RANDOM, seed) == whole);
  return 0;
}
