/* Unit tests for the SMTP reply parser (scanner/reply.c).
 *
 * Every input is fed whole, one byte at a time and split in two at every
 * offset: the parser examines bytes one by one, so the outcome (result code,
 * bytes consumed, parsed reply) must not depend on how reads were split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/reply.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
  const char *name;
  const char *in;
  size_t in_len; /* 0: strlen(in) */
  stls_reply_rc_t rc;
  size_t consumed; /* expected bytes consumed in total; 0: all of in */
  int code;        /* when rc is DONE */
  size_t n_lines;
  const char *text;
} reply_case_t;

/* S() gives a literal with its length, so inputs may hold NUL bytes; ERR()
 * is a row that expects an error after `at` bytes. */
#define S(lit) lit, sizeof(lit) - 1
#define ERR(name, lit, rc, at)                                                 \
  { name, S(lit), rc, at, 0, 0, NULL }

static const reply_case_t reply_cases[] = {
    {"single line", S("220 mx.example ESMTP ready\r\n"), STLS_REPLY_DONE, 0,
     220, 1, "220 mx.example ESMTP ready"},
    {"bare LF ending", S("220 ready\n"), STLS_REPLY_DONE, 0, 220, 1,
     "220 ready"},
    {"multi-line", S("250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
     STLS_REPLY_DONE, 0, 250, 3,
     "250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS"},
    {"multi-line mixed endings", S("250-a\n250-b\r\n250 c\n"), STLS_REPLY_DONE,
     0, 250, 3, "250-a\r\n250-b\r\n250 c"},
    {"code without text", S("250\r\n"), STLS_REPLY_DONE, 0, 250, 1, "250"},
    {"code without text, LF", S("250\n"), STLS_REPLY_DONE, 0, 250, 1, "250"},
    {"empty texts", S("250-\r\n250 \r\n"), STLS_REPLY_DONE, 0, 250, 2,
     "250-\r\n250 "},
    {"bare code ends multi-line", S("250-a\r\n250\r\n"), STLS_REPLY_DONE, 0,
     250, 2, "250-a\r\n250"},
    {"rejecting 421", S("421 4.3.2 going away\r\n"), STLS_REPLY_DONE, 0, 421, 1,
     "421 4.3.2 going away"},
    {"rejecting 554", S("554 no\r\n"), STLS_REPLY_DONE, 0, 554, 1, "554 no"},
    {"code 599", S("599 x\r\n"), STLS_REPLY_DONE, 0, 599, 1, "599 x"},
    {"TAB in text", S("250 a\tb\r\n"), STLS_REPLY_DONE, 0, 250, 1, "250 a\tb"},
    {"UTF-8 in text", S("250 caf\xc3\xa9 \xff\x80\r\n"), STLS_REPLY_DONE, 0,
     250, 1, "250 caf\xc3\xa9 \xff\x80"},
    {"trailing bytes left over", S("220 go\r\nXYZ"), STLS_REPLY_DONE, 8, 220, 1,
     "220 go"},
    {"second reply left over", S("220 go\n250 ok\n"), STLS_REPLY_DONE, 7, 220,
     1, "220 go"},
    /* Control bytes and a bare CR are kept as sent, as Postfix takes
     * such replies; NUL alone stays an error. */
    {"control 0x01", S("250 a\x01\r\n"), STLS_REPLY_DONE, 0, 250, 1,
     "250 a\x01"},
    {"control ESC", S("220 \x1b[31mred\x1b[0m\r\n"), STLS_REPLY_DONE, 0, 220, 1,
     "220 \x1b[31mred\x1b[0m"},
    {"control 0x1f", S("250 \x1f\r\n"), STLS_REPLY_DONE, 0, 250, 1, "250 \x1f"},
    {"vertical tab", S("250 \v\r\n"), STLS_REPLY_DONE, 0, 250, 1, "250 \v"},
    {"form feed", S("250 \f\r\n"), STLS_REPLY_DONE, 0, 250, 1, "250 \f"},
    {"DEL", S("250 \x7f\r\n"), STLS_REPLY_DONE, 0, 250, 1, "250 \x7f"},
    {"bare CR in text", S("250 a\rb\r\n"), STLS_REPLY_DONE, 0, 250, 1,
     "250 a\rb"},
    {"CR CR LF", S("250 a\r\r\n"), STLS_REPLY_DONE, 0, 250, 1, "250 a\r"},
    {"bare CR, bare LF end", S("250 a\rb\n"), STLS_REPLY_DONE, 0, 250, 1,
     "250 a\rb"},
    {"bare CR in a multi-line greeting", S("220-a\rb\x7f\r\n220 c\x1b\r\n"),
     STLS_REPLY_DONE, 0, 220, 2, "220-a\rb\x7f\r\n220 c\x1b"},
    {"bare CR then separator-looking byte", S("250 \r-\r\n"), STLS_REPLY_DONE,
     0, 250, 1, "250 \r-"},
    {"incomplete line", S("250 ok"), STLS_REPLY_NEED_MORE, 0, 0, 0, NULL},
    {"incomplete CR", S("250 ok\r"), STLS_REPLY_NEED_MORE, 0, 0, 0, NULL},
    {"incomplete multi-line", S("250-a\r\n250 b"), STLS_REPLY_NEED_MORE, 0, 0,
     0, NULL},
    {"empty input", S(""), STLS_REPLY_NEED_MORE, 0, 0, 0, NULL},
    /* Errors: consumed counts up to and including the offending byte. */
    ERR("mixed codes", "250-a\r\n251 b\r\n", STLS_REPLY_ERR_SYNTAX, 10),
    ERR("mixed first digit", "250-a\r\n550 b\r\n", STLS_REPLY_ERR_SYNTAX, 10),
    ERR("non-digit code", "2x0 a\r\n", STLS_REPLY_ERR_SYNTAX, 2),
    ERR("code 1xx", "150 a\r\n", STLS_REPLY_ERR_SYNTAX, 1),
    ERR("code 6xx", "600 a\r\n", STLS_REPLY_ERR_SYNTAX, 1),
    ERR("code 0xx", "000 a\r\n", STLS_REPLY_ERR_SYNTAX, 1),
    ERR("letters", "EHLO\r\n", STLS_REPLY_ERR_SYNTAX, 1),
    ERR("leading space", " 250 a\r\n", STLS_REPLY_ERR_SYNTAX, 1),
    ERR("short line CRLF", "25\r\n", STLS_REPLY_ERR_SYNTAX, 3),
    ERR("short line LF", "25\n", STLS_REPLY_ERR_SYNTAX, 3),
    ERR("empty line CRLF", "\r\n", STLS_REPLY_ERR_SYNTAX, 1),
    ERR("empty line LF", "\n", STLS_REPLY_ERR_SYNTAX, 1),
    ERR("empty line inside reply", "250-a\r\n\r\n", STLS_REPLY_ERR_SYNTAX, 8),
    ERR("four-digit code", "2500 a\r\n", STLS_REPLY_ERR_SYNTAX, 4),
    ERR("bad separator", "250_a\r\n", STLS_REPLY_ERR_SYNTAX, 4),
    ERR("TAB separator", "250\ta\r\n", STLS_REPLY_ERR_SYNTAX, 4),
    ERR("NUL in text", "250 a\0b\r\n", STLS_REPLY_ERR_SYNTAX, 6),
    ERR("NUL first", "\0", STLS_REPLY_ERR_SYNTAX, 1),
    ERR("NUL in code", "2\0", STLS_REPLY_ERR_SYNTAX, 2),
    ERR("bare CR after code", "250\rx\r\n", STLS_REPLY_ERR_SYNTAX, 5),
    ERR("CR CR LF after code", "250\r\r\n", STLS_REPLY_ERR_SYNTAX, 5),
    ERR("error after complete line", "250-ok\r\n250 \0", STLS_REPLY_ERR_SYNTAX,
        13),
};

/* Result of feeding one input; the reply is copied because the parser's
 * copy only lives until the next feed. */
typedef struct {
  stls_reply_rc_t rc;
  size_t consumed;
  int code;
  size_t n_lines;
  char *text; /* malloc'ed copy, NULL unless DONE */
  size_t text_len;
} outcome_t;

/* Check the invariants every completed reply must satisfy. */
static void check_reply_shape(const stls_reply_t *r) {
  size_t i;

  assert_non_null(r);
  assert_non_null(r->text);
  assert_int_equal(strlen(r->text), r->text_len);
  assert_true(r->n_lines >= 1 && r->n_lines <= STLS_REPLY_MAX_LINES);
  assert_true(r->text_len <= STLS_REPLY_MAX_TEXT);
  assert_int_equal(r->line_off[0], 0);
  for (i = 0; i < r->n_lines; i++) {
    const char *line = r->text + r->line_off[i];

    assert_int_equal((line[0] - '0') * 100 + (line[1] - '0') * 10 +
                         (line[2] - '0'),
                     r->code);
    if (i > 0)
      assert_memory_equal(line - 2, "\r\n", 2);
  }
}

/* Feed `in` to a fresh parser: first `first` bytes (possibly none), then
 * pieces of `step` bytes (0: all the rest), until the parser says something
 * other than NEED_MORE. */
static outcome_t feed_pieces(const char *in, size_t len, size_t first,
                             size_t step) {
  stls_reply_parser_t *p = malloc(sizeof(*p));
  outcome_t o = {STLS_REPLY_NEED_MORE, 0, 0, 0, NULL, 0};
  size_t off = 0, piece = first < len ? first : len;

  assert_non_null(p);
  stls_reply_parser_init(p);
  for (;;) {
    const stls_reply_t *r = (const stls_reply_t *)p; /* must be replaced */
    size_t used = 12345;

    o.rc = stls_reply_parser_feed(p, in + off, piece, &used, &r);
    assert_true(used <= piece);
    if (o.rc != STLS_REPLY_NEED_MORE) {
      o.consumed = off + used;
      if (o.rc == STLS_REPLY_DONE) {
        check_reply_shape(r);
        o.code = r->code;
        o.n_lines = r->n_lines;
        o.text_len = r->text_len;
        o.text = malloc(r->text_len + 1);
        assert_non_null(o.text);
        memcpy(o.text, r->text, r->text_len + 1);
      } else {
        assert_null(r);
      }
      break;
    }
    assert_int_equal(used, piece);
    assert_null(r);
    off += piece;
    if (off >= len)
      break;
    piece = step == 0 || step > len - off ? len - off : step;
  }
  if (o.rc == STLS_REPLY_NEED_MORE)
    o.consumed = len;
  free(p);
  return o;
}

/* Compare an outcome with what a case expects. */
static void check_outcome(const reply_case_t *c, size_t len, const outcome_t *o,
                          const char *how, size_t at) {
  size_t want_consumed = c->consumed ? c->consumed : len;

  if (o->rc != c->rc || o->consumed != want_consumed)
    fail_msg("%s (%s %zu): got rc %d consumed %zu, want rc %d consumed %zu",
             c->name, how, at, o->rc, o->consumed, c->rc, want_consumed);
  if (c->rc != STLS_REPLY_DONE)
    return;
  assert_int_equal(o->code, c->code);
  assert_int_equal(o->n_lines, c->n_lines);
  assert_int_equal(o->text_len, strlen(c->text));
  assert_memory_equal(o->text, c->text, o->text_len);
}

/* Run one input whole, byte by byte and split at `split_every`-th offset
 * (1: every offset). */
static void run_case(const reply_case_t *c, size_t split_every) {
  size_t len = c->in_len ? c->in_len : strlen(c->in);
  outcome_t o;
  size_t k;

  o = feed_pieces(c->in, len, len, 0);
  check_outcome(c, len, &o, "whole", len);
  free(o.text);

  o = feed_pieces(c->in, len, 1, 1);
  check_outcome(c, len, &o, "bytewise", 1);
  free(o.text);

  for (k = 0; k <= len; k += split_every) {
    o = feed_pieces(c->in, len, k, 0);
    check_outcome(c, len, &o, "split at", k);
    free(o.text);
  }
}

static void test_table_case(void **state) { run_case(*state, 1); }

/* A buffer with `n` copies of byte c. */
static char *filled(size_t n, char c) {
  char *s = malloc(n + 1);

  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* Lines of exactly STLS_REPLY_MAX_LINE bytes are accepted with either
 * ending; one byte more is an error at that byte. */
static void test_max_line(void **state) {
  char *in = filled(STLS_REPLY_MAX_LINE + 2, 'x');
  char *want = filled(STLS_REPLY_MAX_LINE, 'x');
  reply_case_t c = {"max line CRLF",
                    in,
                    STLS_REPLY_MAX_LINE + 2,
                    STLS_REPLY_DONE,
                    0,
                    250,
                    1,
                    want};

  (void)state;
  memcpy(in, "250 ", 4);
  memcpy(want, "250 ", 4);
  in[STLS_REPLY_MAX_LINE] = '\r';
  in[STLS_REPLY_MAX_LINE + 1] = '\n';
  run_case(&c, 1);

  c.name = "max line LF";
  c.in_len = STLS_REPLY_MAX_LINE + 1;
  in[STLS_REPLY_MAX_LINE] = '\n';
  run_case(&c, 1);

  c.name = "max line + 1";
  c.in_len = STLS_REPLY_MAX_LINE + 3;
  c.rc = STLS_REPLY_ERR_LINE_TOO_LONG;
  c.consumed = STLS_REPLY_MAX_LINE + 1;
  in = realloc(in, STLS_REPLY_MAX_LINE + 3);
  assert_non_null(in);
  c.in = in;
  memcpy(in + STLS_REPLY_MAX_LINE, "y\r\n", 3);
  run_case(&c, 1);

  /* An endless line fails at the first byte past the limit. */
  c.name = "endless line";
  c.in_len = STLS_REPLY_MAX_LINE + 1;
  run_case(&c, 7);

  /* A CR after a full line is allowed only as the end of the line: a
   * bare CR there makes the text one byte too long. */
  c.name = "max line, bare CR, byte";
  c.in_len = STLS_REPLY_MAX_LINE + 3;
  c.consumed = STLS_REPLY_MAX_LINE + 2;
  memcpy(in + STLS_REPLY_MAX_LINE, "\ry\n", 3);
  run_case(&c, 1);
  c.name = "max line, CR CR LF";
  memcpy(in + STLS_REPLY_MAX_LINE, "\r\r\n", 3);
  run_case(&c, 1);

  free(in);
  free(want);
}

/* Build a reply of n lines "250-lN" (last one "250 lN" when `last`). */
static char *many_lines(size_t n, int last, size_t *len) {
  char *s = malloc(n * 16 + 1);
  size_t i, off = 0;

  assert_non_null(s);
  for (i = 0; i < n; i++)
    off += (size_t)sprintf(s + off, "250%cl%zu\r\n",
                           last && i + 1 == n ? ' ' : '-', i);
  *len = off;
  return s;
}

/* STLS_REPLY_MAX_LINES lines fit; a continuation in the last slot fails at
 * its LF, since the reply can no longer be stored. */
static void test_max_lines(void **state) {
  reply_case_t c = {"max lines",          NULL, 0, STLS_REPLY_DONE, 0, 250,
                    STLS_REPLY_MAX_LINES, NULL};
  char *in;
  size_t len;

  (void)state;
  in = many_lines(STLS_REPLY_MAX_LINES, 1, &len);
  /* The expected text is the input without the final CRLF. */
  c.text = filled(len - 2, 0);
  memcpy((char *)c.text, in, len - 2);
  c.in = in;
  c.in_len = len;
  run_case(&c, 13);
  free((char *)c.text);
  free(in);

  in = many_lines(STLS_REPLY_MAX_LINES + 1, 1, &len);
  c.name = "too many lines";
  c.in = in;
  c.in_len = len;
  c.rc = STLS_REPLY_ERR_TOO_LONG;
  /* Lines 0..9 are 8 bytes with CRLF, 10..99 are 9, 100..127 are 10. */
  c.consumed = 10 * 8 + 90 * 9 + 28 * 10;
  run_case(&c, 13);
  free(in);
}

/* A reply whose text is exactly STLS_REPLY_MAX_TEXT bytes fits; one byte
 * more is TOO_LONG at the LF of the line that overflows. */
static void test_max_text(void **state) {
  /* Full lines + separators + a shorter last line = exactly the limit. */
  const size_t full = STLS_REPLY_MAX_TEXT / (STLS_REPLY_MAX_LINE + 2),
               last =
                   STLS_REPLY_MAX_TEXT - full * 2 - full * STLS_REPLY_MAX_LINE;
  size_t len = full * (STLS_REPLY_MAX_LINE + 2) + last + 1 + 2;
  char *in = filled(len, 'x');
  reply_case_t c = {"max text", in,  len - 1,  STLS_REPLY_DONE,
                    0,          250, full + 1, NULL};
  char *want;
  size_t i, off = 0;

  (void)state;
  assert_true(last <= STLS_REPLY_MAX_LINE);
  for (i = 0; i < full; i++) {
    memcpy(in + off, "250-", 4);
    off += STLS_REPLY_MAX_LINE;
    memcpy(in + off, "\r\n", 2);
    off += 2;
  }
  memcpy(in + off, "250 ", 4);
  memcpy(in + off + last, "\r\n", 2);
  want = filled(STLS_REPLY_MAX_TEXT, 0);
  memcpy(want, in, STLS_REPLY_MAX_TEXT);
  c.text = want;
  run_case(&c, 509);

  c.name = "text + 1";
  c.in_len = len;
  c.rc = STLS_REPLY_ERR_TOO_LONG;
  c.consumed = len;
  memcpy(in + off + last, "x\r\n", 3);
  run_case(&c, 509);
  free(want);
  free(in);
}

/* Several replies in one buffer come out one per call, with *consumed
 * pointing just past each. */
static void test_replies_in_one_buffer(void **state) {
  static const char in[] = "220 hi\r\n250-a\r\n250 b\n221 bye\r\n25";
  stls_reply_parser_t p;
  const stls_reply_t *r;
  size_t used, off = 0;

  (void)state;
  stls_reply_parser_init(&p);
  assert_int_equal(stls_reply_parser_feed(&p, in, sizeof(in) - 1, &used, &r),
                   STLS_REPLY_DONE);
  assert_int_equal(used, 8);
  assert_int_equal(r->code, 220);
  assert_string_equal(r->text, "220 hi");
  assert_int_equal(stls_reply_parser_pending(&p), 0);
  off += used;

  assert_int_equal(
      stls_reply_parser_feed(&p, in + off, sizeof(in) - 1 - off, &used, &r),
      STLS_REPLY_DONE);
  assert_int_equal(used, 13);
  assert_int_equal(r->code, 250);
  assert_int_equal(r->n_lines, 2);
  assert_string_equal(r->text, "250-a\r\n250 b");
  off += used;

  assert_int_equal(
      stls_reply_parser_feed(&p, in + off, sizeof(in) - 1 - off, &used, &r),
      STLS_REPLY_DONE);
  assert_int_equal(used, 9);
  assert_string_equal(r->text, "221 bye");
  off += used;

  assert_int_equal(
      stls_reply_parser_feed(&p, in + off, sizeof(in) - 1 - off, &used, &r),
      STLS_REPLY_NEED_MORE);
  assert_int_equal(used, 2);
  assert_null(r);
  assert_int_equal(stls_reply_parser_pending(&p), 2);
  assert_int_equal(stls_reply_parser_feed(&p, "0 ok\n", 5, &used, &r),
                   STLS_REPLY_DONE);
  assert_int_equal(used, 5);
  assert_string_equal(r->text, "250 ok");
}

/* An error is returned again by every later call, consuming nothing, until
 * the parser is initialised again. */
static void test_sticky_error(void **state) {
  stls_reply_parser_t p;
  const stls_reply_t *r;
  size_t used;

  (void)state;
  stls_reply_parser_init(&p);
  assert_int_equal(stls_reply_parser_feed(&p, "25x\r\n", 5, &used, &r),
                   STLS_REPLY_ERR_SYNTAX);
  assert_int_equal(used, 3);
  assert_null(r);
  assert_int_equal(stls_reply_parser_feed(&p, "250 ok\r\n", 8, &used, &r),
                   STLS_REPLY_ERR_SYNTAX);
  assert_int_equal(used, 0);
  assert_null(r);
  assert_int_equal(stls_reply_parser_feed(&p, NULL, 0, &used, &r),
                   STLS_REPLY_ERR_SYNTAX);

  stls_reply_parser_init(&p);
  assert_int_equal(stls_reply_parser_feed(&p, "250 ok\r\n", 8, &used, &r),
                   STLS_REPLY_DONE);
  assert_int_equal(used, 8);
}

/* pending counts the partial line plus completed lines of a partial reply
 * (each with its CRLF), and is zero right after a reply. */
static void test_pending(void **state) {
  static const struct {
    const char *in;
    stls_reply_rc_t rc;
    size_t pending;
  } steps[] = {
      {"", STLS_REPLY_NEED_MORE, 0},       {"25", STLS_REPLY_NEED_MORE, 2},
      {"0-a\r", STLS_REPLY_NEED_MORE, 6},  {"\n", STLS_REPLY_NEED_MORE, 7},
      {"250 b", STLS_REPLY_NEED_MORE, 12}, {"\r", STLS_REPLY_NEED_MORE, 13},
      {"\n", STLS_REPLY_DONE, 0},          {"", STLS_REPLY_NEED_MORE, 0},
      {"2", STLS_REPLY_NEED_MORE, 1},      {"20 x\n", STLS_REPLY_DONE, 0},
  };
  stls_reply_parser_t p;
  size_t i, used;

  (void)state;
  stls_reply_parser_init(&p);
  assert_int_equal(stls_reply_parser_pending(&p), 0);
  for (i = 0; i < ARRAY_LEN(steps); i++) {
    size_t len = strlen(steps[i].in);

    assert_int_equal(stls_reply_parser_feed(&p, steps[i].in, len, &used, NULL),
                     steps[i].rc);
    assert_int_equal(used, len);
    if (stls_reply_parser_pending(&p) != steps[i].pending)
      fail_msg("step %zu: pending %zu, want %zu", i,
               stls_reply_parser_pending(&p), steps[i].pending);
  }
}

/* Feed a complete reply and return it. */
static const stls_reply_t *parse_one(stls_reply_parser_t *p, const char *in) {
  const stls_reply_t *r = NULL;
  size_t used;

  stls_reply_parser_init(p);
  assert_int_equal(stls_reply_parser_feed(p, in, strlen(in), &used, &r),
                   STLS_REPLY_DONE);
  assert_int_equal(used, strlen(in));
  return r;
}

/* line_text strips "DDD-"/"DDD " and truncates to the buffer. */
static void test_line_text(void **state) {
  static const struct {
    size_t line, buflen, ret;
    const char *want;
  } cases[] = {
      {0, 64, 10, "mx.example"},
      {1, 64, 9, "SIZE 1000"},
      {2, 64, 0, ""},
      {3, 64, 0, ""},
      {4, 64, 5, "\tlast"},
      {5, 64, 0, ""},
      {0, 11, 10, "mx.example"},
      {0, 10, 10, "mx.exampl"},
      {0, 5, 10, "mx.e"},
      {0, 1, 10, ""},
  };
  stls_reply_parser_t p;
  const stls_reply_t *r =
      parse_one(&p, "250-mx.example\r\n250-SIZE 1000\n250-\r\n250-\n"
                    "250 \tlast\r\n");
  char buf[64];
  size_t i;

  (void)state;
  assert_int_equal(r->n_lines, 5);
  for (i = 0; i < ARRAY_LEN(cases); i++) {
    size_t n;

    memset(buf, '#', sizeof(buf));
    n = stls_reply_line_text(r, cases[i].line, buf, cases[i].buflen);
    if (n != cases[i].ret || strcmp(buf, cases[i].want) != 0)
      fail_msg("case %zu: got %zu \"%s\", want %zu \"%s\"", i, n, buf,
               cases[i].ret, cases[i].want);
    /* Nothing is written past the buffer given. */
    if (cases[i].buflen < sizeof(buf))
      assert_int_equal(buf[cases[i].buflen], '#');
  }
  /* A zero-length buffer only reports the length. */
  assert_int_equal(stls_reply_line_text(r, 0, NULL, 0), 10);
  buf[0] = '#';
  assert_int_equal(stls_reply_line_text(r, 0, buf, 0), 10);
  assert_int_equal(buf[0], '#');

  r = parse_one(&p, "250\r\n");
  assert_int_equal(stls_reply_line_text(r, 0, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "");
  assert_int_equal(stls_reply_line_text(NULL, 0, buf, sizeof(buf)), 0);
}

/* A completed reply stays readable until the next feed, and a NULL
 * consumed/out is tolerated. */
static void test_reply_lifetime(void **state) {
  stls_reply_parser_t p;
  const stls_reply_t *r;
  size_t used;

  (void)state;
  stls_reply_parser_init(&p);
  assert_int_equal(stls_reply_parser_feed(&p, "220 a\r\n", 7, NULL, NULL),
                   STLS_REPLY_DONE);
  assert_int_equal(stls_reply_parser_feed(&p, "250 b\r\n", 7, &used, &r),
                   STLS_REPLY_DONE);
  assert_string_equal(r->text, "250 b");
  assert_int_equal(stls_reply_parser_pending(&p), 0);
  assert_int_equal(stls_reply_parser_feed(&p, "250-c\r\n", 7, &used, &r),
                   STLS_REPLY_NEED_MORE);
  assert_null(r);
  assert_int_equal(stls_reply_parser_feed(&p, "250 d\r\n", 7, &used, &r),
                   STLS_REPLY_DONE);
  assert_string_equal(r->text, "250-c\r\n250 d");
  assert_int_equal(r->n_lines, 2);
}

static void test_strerror(void **state) {
  static const stls_reply_rc_t rcs[] = {
      STLS_REPLY_NEED_MORE, STLS_REPLY_DONE, STLS_REPLY_ERR_LINE_TOO_LONG,
      STLS_REPLY_ERR_TOO_LONG, STLS_REPLY_ERR_SYNTAX};
  size_t i, j;

  (void)state;
  for (i = 0; i < ARRAY_LEN(rcs); i++) {
    assert_non_null(stls_reply_strerror(rcs[i]));
    for (j = 0; j < i; j++)
      assert_string_not_equal(stls_reply_strerror(rcs[i]),
                              stls_reply_strerror(rcs[j]));
  }
  assert_string_equal(stls_reply_strerror(STLS_REPLY_ERR_LINE_TOO_LONG),
                      "reply line too long");
  assert_non_null(stls_reply_strerror((stls_reply_rc_t)2));
}

int main(void) {
  static const struct CMUnitTest fixed[] = {
      cmocka_unit_test(test_max_line),
      cmocka_unit_test(test_max_lines),
      cmocka_unit_test(test_max_text),
      cmocka_unit_test(test_replies_in_one_buffer),
      cmocka_unit_test(test_sticky_error),
      cmocka_unit_test(test_pending),
      cmocka_unit_test(test_line_text),
      cmocka_unit_test(test_reply_lifetime),
      cmocka_unit_test(test_strerror),
  };
  /* One cmocka test per table row, so a failure names its case. */
  struct CMUnitTest tests[ARRAY_LEN(reply_cases) + ARRAY_LEN(fixed)];
  size_t i;

  for (i = 0; i < ARRAY_LEN(reply_cases); i++) {
    struct CMUnitTest t = {reply_cases[i].name, test_table_case, NULL, NULL,
                           (void *)&reply_cases[i]};
    tests[i] = t;
  }
  for (i = 0; i < ARRAY_LEN(fixed); i++)
    tests[ARRAY_LEN(reply_cases) + i] = fixed[i];
  return cmocka_run_group_tests(tests, NULL, NULL);
}
