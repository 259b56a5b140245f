/* Unit tests for the ClientHello builder and the server reply parser
 * (scanner/hello.c).
 *
 * Builder: every version, with and without SNI and OCSP, is taken apart
 * again by a small parser written here from RFC 5246, independent of the
 * code under test.
 *
 * Parser: the server flights captured from openssl s_server
 * (tests/unit/hello/, made by tests/lab/hello/openssl_flights.py; facts from
 * the servers' configuration or s_client's report) and hand-made flights for
 * everything a real server rarely sends: garbage, SSLv2, warnings, every
 * kind of inconsistent length, messages out of order, the limits. Every
 * input is parsed whole, one byte at a time and split in two at every
 * offset, and must give the same facts each way; every prefix of a good
 * flight must ask for more rather than fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hello_kv.h"
#include "stls/hello.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define FACTS_MAX 4096

/* ~66 KB each: static rather than on cmocka's stack. */
static stls_hello_parser_t parser;

/* ------------------------------------------------------------------------ */
/* Helpers: a byte builder with nested length fields */

typedef struct {
  uint8_t b[STLS_HELLO_MAX_MESSAGE * 2];
  size_t n;
  size_t open[8];
  int open_bytes[8];
  int depth;
} tb_t;

static tb_t tb; /* the flight under construction */

static void tb_reset(void) {
  tb.n = 0;
  tb.depth = 0;
}

static void tb_u8(unsigned v) {
  assert_true(tb.n < sizeof(tb.b));
  tb.b[tb.n++] = (uint8_t)v;
}

static void tb_u16(unsigned v) {
  tb_u8(v >> 8);
  tb_u8(v);
}

static void tb_u24(size_t v) {
  tb_u8((unsigned)(v >> 16));
  tb_u8((unsigned)(v >> 8));
  tb_u8((unsigned)v);
}

static void tb_fill(unsigned v, size_t n) {
  while (n-- > 0)
    tb_u8(v);
}

/* Append bytes given as hex digits; spaces are ignored. */
static void tb_hex(const char *hex) {
  while (*hex) {
    unsigned v;

    if (*hex == ' ') {
      hex++;
      continue;
    }
    assert_int_equal(sscanf(hex, "%2x", &v), 1);
    tb_u8(v);
    hex += 2;
  }
}

/* Open a length field of `bytes` bytes, filled in by tb_close(). */
static void tb_open(int bytes) {
  assert_true(tb.depth < 8);
  tb.open[tb.depth] = tb.n;
  tb.open_bytes[tb.depth++] = bytes;
  tb_fill(0, (size_t)bytes);
}

static void tb_close(void) {
  size_t at, len;
  int bytes, i;

  assert_true(tb.depth > 0);
  at = tb.open[--tb.depth];
  bytes = tb.open_bytes[tb.depth];
  len = tb.n - at - (size_t)bytes;
  for (i = 0; i < bytes; i++)
    tb.b[at + (size_t)i] = (uint8_t)(len >> (8 * (bytes - 1 - i)));
}

/* A record header whose length is filled by tb_close(). */
static void rec_open(unsigned type) {
  tb_u8(type);
  tb_u16(STLS_TLS_1_2);
  tb_open(2);
}

static void hs_open(unsigned type) {
  tb_u8(type);
  tb_open(3);
}

/* A ServerHello body: version, random (fixed unless given), session id of
 * 32 bytes, cipher, null compression, extensions given as hex (one whole
 * block, without its length) or NULL for none. */
static void sh_body(unsigned version, const uint8_t *random, unsigned cipher,
                    const char *exts) {
  size_t i;

  tb_u16(version);
  for (i = 0; i < 32; i++)
    tb_u8(random ? random[i] : (unsigned)(0xa0 + i));
  tb_u8(32);
  tb_fill(0x55, 32);
  tb_u16(cipher);
  tb_u8(0);
  if (exts != NULL) {
    tb_open(2);
    tb_hex(exts);
    tb_close();
  }
}

/* A whole ServerHello record. */
static void sh_record(unsigned version, unsigned cipher, const char *exts) {
  rec_open(22);
  hs_open(2);
  sh_body(version, NULL, cipher, exts);
  tb_close();
  tb_close();
}

/* One handshake message in its own record, body as hex. */
static void hs_record(unsigned type, const char *body_hex) {
  rec_open(22);
  hs_open(type);
  tb_hex(body_hex);
  tb_close();
  tb_close();
}

static void shd_record(void) { hs_record(14, ""); }

/* A Certificate message (own record) with certs of the given sizes. */
static void cert_record(const size_t *sizes, size_t n) {
  size_t i;

  rec_open(22);
  hs_open(11);
  tb_open(3);
  for (i = 0; i < n; i++) {
    tb_u24(sizes[i]);
    tb_fill(0x30, sizes[i]);
  }
  tb_close();
  tb_close();
  tb_close();
}

/* ------------------------------------------------------------------------ */
/* Helpers: parsing */

/* Parse data in pieces of `step` bytes (0: all at once, SIZE_MAX: split in
 * two at `cut`); write the facts. */
static stls_hello_rc_t parse_facts(const uint8_t *data, size_t n, size_t step,
                                   size_t cut, char *facts) {
  stls_hello_rc_t rc = STLS_HELLO_NEED_MORE;
  size_t off = 0;

  stls_hello_parser_init(&parser);
  if (step == SIZE_MAX) {
    rc = stls_hello_parser_feed(&parser, data, cut);
    rc = stls_hello_parser_feed(&parser, data + cut, n - cut);
  } else if (step == 0) {
    rc = stls_hello_parser_feed(&parser, data, n);
  } else {
    while (off < n) {
      size_t k = n - off < step ? n - off : step;

      rc = stls_hello_parser_feed(&parser, data + off, k);
      off += k;
    }
  }
  hello_kv_format(stls_hello_parser_result(&parser), rc, facts, FACTS_MAX);
  return rc;
}

/* Parse data whole, byte by byte and cut in two at every offset: all must
 * agree. Every prefix shorter than what the whole parse consumed must ask
 * for more, never fail or conclude. Returns the whole parse's code and
 * facts. */
static stls_hello_rc_t parse_every_way(const uint8_t *data, size_t n,
                                       char *facts) {
  static char other[FACTS_MAX];
  stls_hello_rc_t rc = parse_facts(data, n, 0, 0, facts);
  size_t consumed = stls_hello_parser_result(&parser)->consumed, cut;

  assert_true(consumed <= n);
  assert_true(rc != STLS_HELLO_NEED_MORE || consumed == n);
  assert_int_equal(parse_facts(data, n, 1, 0, other), rc);
  assert_string_equal(other, facts);
  assert_int_equal(parse_facts(data, n, 7, 0, other), rc);
  assert_string_equal(other, facts);
  for (cut = 0; cut <= n; cut++) {
    assert_int_equal(parse_facts(data, n, SIZE_MAX, cut, other), rc);
    assert_string_equal(other, facts);
  }
  for (cut = 0; cut < consumed; cut++) {
    stls_hello_parser_init(&parser);
    assert_int_equal(stls_hello_parser_feed(&parser, data, cut),
                     STLS_HELLO_NEED_MORE);
    assert_int_equal(stls_hello_parser_result(&parser)->consumed, cut);
  }
  return rc;
}

/* Fail with a readable message unless every expected line is in facts. */
static void assert_facts(const char *facts, const char *expect) {
  const char *bad = hello_kv_mismatch(facts, expect);

  if (bad != NULL) {
    const char *end = strchr(bad, '\n');

    print_error("expected %.*s\nparsed:\n%s", (int)(end ? end - bad : 64), bad,
                facts);
    fail();
  }
}

/* ------------------------------------------------------------------------ */
/* Builder tests */

/* A ClientHello as taken apart by the test. */
typedef struct {
  unsigned record_version;
  unsigned version;
  uint8_t random[32];
  uint16_t suites[128];
  size_t n_suites;
  bool has_exts;
  uint16_t ext[32];
  size_t n_ext;
  char sni[300]; /* "" when absent */
  bool sigalgs, status_request, groups_x25519, groups_p256, padding;
  size_t msg_len; /* handshake message incl. its header */
} client_hello_t;

static unsigned get16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

static size_t get24(const uint8_t *p) {
  return (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
}

/* Take a ClientHello record apart (RFC 5246 7.4.1.2), asserting that every
 * length is consistent with the one around it. */
static void client_hello_parse(const uint8_t *b, size_t n, client_hello_t *ch) {
  size_t off, sid, suites_len, comp, exts_end, i;

  memset(ch, 0, sizeof(*ch));
  assert_true(n >= 5 + 4 + 2 + 32 + 1 + 2 + 2 + 1);
  assert_int_equal(b[0], 22);
  ch->record_version = get16(b + 1);
  assert_int_equal(get16(b + 3), n - 5);
  assert_int_equal(b[5], 1); /* client_hello */
  assert_int_equal(get24(b + 6), n - 9);
  ch->msg_len = n - 5;
  ch->version = get16(b + 9);
  memcpy(ch->random, b + 11, 32);
  off = 43;
  sid = b[off++];
  assert_int_equal(sid, 0);
  suites_len = get16(b + off);
  off += 2;
  assert_true(suites_len >= 2 && suites_len % 2 == 0);
  assert_true(off + suites_len <= n);
  for (i = 0; i < suites_len / 2; i++) {
    assert_true(ch->n_suites < ARRAY_LEN(ch->suites));
    ch->suites[ch->n_suites++] = (uint16_t)get16(b + off + 2 * i);
  }
  off += suites_len;
  assert_true(off + 2 <= n);
  comp = b[off++];
  assert_int_equal(comp, 1);
  assert_int_equal(b[off++], 0); /* null */
  if (off == n)
    return;
  ch->has_exts = true;
  assert_true(off + 2 <= n);
  exts_end = off + 2 + get16(b + off);
  assert_int_equal(exts_end, n);
  off += 2;
  while (off < exts_end) {
    unsigned type, len;

    assert_true(off + 4 <= exts_end);
    type = get16(b + off);
    len = get16(b + off + 2);
    off += 4;
    assert_true(off + len <= exts_end);
    for (i = 0; i < ch->n_ext; i++)
      assert_int_not_equal(ch->ext[i], type);
    assert_true(ch->n_ext < ARRAY_LEN(ch->ext));
    ch->ext[ch->n_ext++] = (uint16_t)type;
    switch (type) {
    case 0: { /* server_name: list<host_name(0) + name> */
      size_t nl;

      assert_true(len >= 5);
      assert_int_equal(get16(b + off), len - 2);
      assert_int_equal(b[off + 2], 0);
      nl = get16(b + off + 3);
      assert_int_equal(nl + 5, len);
      assert_true(nl < sizeof(ch->sni));
      memcpy(ch->sni, b + off + 5, nl);
      ch->sni[nl] = '\0';
      break;
    }
    case 10: /* supported_groups */
      assert_true(len >= 4 && get16(b + off) == len - 2 && len % 2 == 0);
      for (i = 2; i < len; i += 2) {
        ch->groups_x25519 |= get16(b + off + i) == 0x001d;
        ch->groups_p256 |= get16(b + off + i) == 0x0017;
        assert_non_null(stls_tls_group_name((uint16_t)get16(b + off + i)));
      }
      break;
    case 11: /* ec_point_formats: uncompressed */
      assert_int_equal(len, 2);
      assert_int_equal(b[off], 1);
      assert_int_equal(b[off + 1], 0);
      break;
    case 13: /* signature_algorithms */
      assert_true(len >= 4 && get16(b + off) == len - 2 && len % 2 == 0);
      for (i = 2; i < len; i += 2)
        assert_non_null(stls_tls_sigalg_name((uint16_t)get16(b + off + i)));
      ch->sigalgs = true;
      break;
    case 5: /* status_request: ocsp, empty lists */
      assert_int_equal(len, 5);
      assert_memory_equal(b + off, "\x01\x00\x00\x00\x00", 5);
      ch->status_request = true;
      break;
    case 21: /* padding: zeros */
      for (i = 0; i < len; i++)
        assert_int_equal(b[off + i], 0);
      ch->padding = true;
      break;
    case 23: /* extended_master_secret */ assert_int_equal(len, 0); break;
    default: fail_msg("unexpected extension %u", type);
    }
    off += len;
  }
}

static bool has_suite(const client_hello_t *ch, uint16_t s) {
  size_t i;

  for (i = 0; i < ch->n_suites; i++)
    if (ch->suites[i] == s)
      return true;
  return false;
}

/* Suites that exist only from TLS 1.2 on: AEADs and SHA-2 MACs. */
static bool suite_is_tls12(uint16_t s) {
  const char *name = stls_tls_cipher_iana_name(s);

  return strstr(name, "GCM") || strstr(name, "CHACHA") ||
         strstr(name, "_SHA256") || strstr(name, "_SHA384");
}

static void test_build_versions(void **state) {
  static const uint16_t versions[] = {STLS_TLS_SSL3, STLS_TLS_1_0, STLS_TLS_1_1,
                                      STLS_TLS_1_2};
  uint8_t random[32], out[STLS_HELLO_BUILD_MAX];
  size_t v, i;
  unsigned flags;

  (void)state;
  for (i = 0; i < 32; i++)
    random[i] = (uint8_t)(i * 7 + 1);
  for (v = 0; v < ARRAY_LEN(versions); v++) {
    for (flags = 0; flags <= STLS_HELLO_OCSP; flags++) {
      uint16_t version = versions[v];
      bool ssl3 = version == STLS_TLS_SSL3;
      size_t n = stls_hello_build(version, "mx.example.test", flags, random,
                                  out, sizeof(out));
      client_hello_t ch;

      assert_true(n > 0 && n <= sizeof(out));
      client_hello_parse(out, n, &ch);
      assert_int_equal(ch.record_version, ssl3 ? 0x0300 : 0x0301);
      assert_int_equal(ch.version, version);
      assert_memory_equal(ch.random, random, 32);
      assert_true(has_suite(&ch, 0x00ff));  /* renegotiation SCSV */
      assert_false(has_suite(&ch, 0x5600)); /* never FALLBACK_SCSV */
      assert_true(has_suite(&ch, 0x002f));  /* AES128-SHA everywhere */
      assert_true(has_suite(&ch, 0x0033));  /* DHE-RSA too */
      assert_int_equal(has_suite(&ch, 0xc013), !ssl3); /* ECDHE */
      assert_int_equal(has_suite(&ch, 0xc02f), version == STLS_TLS_1_2);
      assert_int_equal(has_suite(&ch, 0xcca8), version == STLS_TLS_1_2);
      assert_int_equal(has_suite(&ch, 0x0005), ssl3); /* RC4 only there */
      for (i = 0; i < ch.n_suites; i++) {
        assert_non_null(stls_tls_cipher_iana_name(ch.suites[i]));
        if (version < STLS_TLS_1_2 && ch.suites[i] != 0x00ff)
          assert_false(suite_is_tls12(ch.suites[i]));
      }
      assert_int_equal(ch.has_exts, !ssl3);
      if (ssl3)
        continue;
      assert_string_equal(ch.sni, "mx.example.test");
      assert_true(ch.groups_x25519 && ch.groups_p256);
      assert_int_equal(ch.sigalgs, version == STLS_TLS_1_2);
      assert_int_equal(ch.status_request, flags == STLS_HELLO_OCSP);
      assert_false(ch.msg_len >= 256 && ch.msg_len < 512);
    }
  }
}

static void test_build_sni(void **state) {
  static const struct {
    const char *in, *sent; /* sent: NULL means no server_name */
  } cases[] = {
      {NULL, NULL},
      {"", NULL},
      {".", NULL},
      {"192.0.2.1", NULL},
      {"2001:db8::1", NULL},
      {"[2001:db8::1]", NULL},
      {"mx.example.", "mx.example"},
      {"MX.Example.Test", "MX.Example.Test"},
      {"bad name", NULL},
      {"caf\xc3\xa9.example", NULL},
      {"1.2.3.4.example", "1.2.3.4.example"},
  };
  uint8_t random[32] = {0}, out[STLS_HELLO_BUILD_MAX];
  char longname[300];
  client_hello_t ch;
  size_t i, n;

  (void)state;
  for (i = 0; i < ARRAY_LEN(cases); i++) {
    n = stls_hello_build(STLS_TLS_1_0, cases[i].in, 0, random, out,
                         sizeof(out));
    assert_true(n > 0);
    client_hello_parse(out, n, &ch);
    assert_string_equal(ch.sni, cases[i].sent ? cases[i].sent : "");
  }
  /* 253 bytes is the longest host name; 254 is not sent. */
  memset(longname, 'a', sizeof(longname));
  for (i = 63; i < 253; i += 64)
    longname[i] = '.';
  longname[253] = '\0';
  n = stls_hello_build(STLS_TLS_1_2, longname, STLS_HELLO_OCSP, random, out,
                       sizeof(out));
  client_hello_parse(out, n, &ch);
  assert_string_equal(ch.sni, longname);
  longname[253] = 'a';
  longname[254] = '\0';
  n = stls_hello_build(STLS_TLS_1_2, longname, 0, random, out, sizeof(out));
  client_hello_parse(out, n, &ch);
  assert_string_equal(ch.sni, "");
}

/* Names of every length: the message never lands in 256..511 bytes, and
 * the padding extension appears exactly when it had to. */
static void test_build_padding(void **state) {
  uint8_t random[32] = {0}, out[STLS_HELLO_BUILD_MAX];
  char name[254];
  size_t len, padded = 0;
  unsigned v;

  (void)state;
  for (v = STLS_TLS_1_0; v <= STLS_TLS_1_2; v++) {
    for (len = 1; len <= 253; len++) {
      client_hello_t ch;
      size_t n;

      memset(name, 'm', len);
      name[len] = '\0';
      /* Labels of at most 63 bytes, never a trailing dot. */
      if (len > 64)
        name[63] = '.';
      if (len > 128)
        name[127] = '.';
      if (len > 192)
        name[191] = '.';
      n = stls_hello_build((uint16_t)v, name, STLS_HELLO_OCSP, random, out,
                           sizeof(out));
      assert_true(n > 0);
      client_hello_parse(out, n, &ch);
      assert_string_equal(ch.sni, name);
      assert_false(ch.msg_len >= 256 && ch.msg_len < 512);
      /* Padding lands on 512, or just past it when even an empty
       * padding extension would overshoot. */
      if (ch.padding) {
        padded++;
        assert_true(ch.msg_len >= 512 && ch.msg_len <= 512 + 4);
      }
    }
  }
  assert_true(padded > 0);
}

/* Too small a buffer gives 0 and writes nothing past its end. */
static void test_build_bounds(void **state) {
  uint8_t random[32] = {0}, full[STLS_HELLO_BUILD_MAX],
          out[STLS_HELLO_BUILD_MAX + 16];
  size_t n, cap;

  (void)state;
  n = stls_hello_build(STLS_TLS_1_2, "mx.example.test", STLS_HELLO_OCSP, random,
                       full, sizeof(full));
  assert_true(n > 0);
  for (cap = 0; cap < n; cap++) {
    memset(out, 0xee, sizeof(out));
    assert_int_equal(stls_hello_build(STLS_TLS_1_2, "mx.example.test",
                                      STLS_HELLO_OCSP, random, out, cap),
                     0);
    for (size_t i = cap; i < sizeof(out); i++)
      assert_int_equal(out[i], 0xee);
  }
  assert_int_equal(stls_hello_build(STLS_TLS_1_2, "mx.example.test",
                                    STLS_HELLO_OCSP, random, out, n),
                   n);
  assert_memory_equal(out, full, n);
  /* Bad arguments. */
  assert_int_equal(stls_hello_build(STLS_TLS_1_3, NULL, 0, random, out, 999),
                   0);
  assert_int_equal(stls_hello_build(0x0200, NULL, 0, random, out, 999), 0);
  assert_int_equal(stls_hello_build(STLS_TLS_1_2, NULL, 0, NULL, out, 999), 0);
  assert_int_equal(stls_hello_build(STLS_TLS_1_2, NULL, 0, random, NULL, 999),
                   0);
}

/* Our own ClientHello is not a server's reply. */
static void test_parse_client_hello(void **state) {
  uint8_t random[32] = {0}, out[STLS_HELLO_BUILD_MAX];
  char facts[FACTS_MAX];
  size_t n = stls_hello_build(STLS_TLS_1_2, "mx.example.test", 0, random, out,
                              sizeof(out));

  (void)state;
  assert_int_equal(parse_every_way(out, n, facts), STLS_HELLO_ERROR);
  assert_facts(facts, "kind=none\n"
                      "error=ClientHello (1) where a ServerHello was "
                      "expected\n");
}

/* ------------------------------------------------------------------------ */
/* Captured flights */

typedef struct {
  char name[128];
  uint8_t *data;
  size_t len;
  char *expect;
} fixture_t;

static fixture_t fixtures[64];
static size_t n_fixtures;

static void *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long size;

  if (f == NULL)
    return NULL;
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return NULL;
  }
  buf = malloc((size_t)size + 1);
  if (buf != NULL && fread(buf, 1, (size_t)size, f) != (size_t)size) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  if (buf != NULL) {
    buf[size] = '\0';
    *len = (size_t)size;
  }
  return buf;
}

/* Load every NAME.expect with its NAME.bin from the fixture directory. */
static int load_fixtures(void) {
  DIR *d = opendir(STLS_TEST_HELLO_DIR);
  struct dirent *e;

  if (d == NULL) {
    fprintf(stderr, "test_hello: cannot open %s\n", STLS_TEST_HELLO_DIR);
    return -1;
  }
  while ((e = readdir(d)) != NULL) {
    size_t nl = strlen(e->d_name), len;
    char path[1024];
    fixture_t *fx;

    if (nl < 8 || strcmp(e->d_name + nl - 7, ".expect") != 0)
      continue;
    if (n_fixtures == ARRAY_LEN(fixtures) || nl - 7 >= sizeof(fx->name)) {
      closedir(d);
      return -1;
    }
    fx = &fixtures[n_fixtures++];
    memcpy(fx->name, e->d_name, nl - 7);
    fx->name[nl - 7] = '\0';
    snprintf(path, sizeof(path), "%s/%s", STLS_TEST_HELLO_DIR, e->d_name);
    fx->expect = read_file(path, &len);
    snprintf(path, sizeof(path), "%s/%s.bin", STLS_TEST_HELLO_DIR, fx->name);
    fx->data = read_file(path, &fx->len);
    if (fx->expect == NULL || fx->data == NULL) {
      fprintf(stderr, "test_hello: cannot read fixture %s\n", fx->name);
      closedir(d);
      return -1;
    }
  }
  closedir(d);
  return 0;
}

static void free_fixtures(void) {
  size_t i;

  for (i = 0; i < n_fixtures; i++) {
    free(fixtures[i].data);
    free(fixtures[i].expect);
  }
}

static void test_fixture(void **state) {
  const fixture_t *fx = *state;
  static char facts[FACTS_MAX];

  assert_int_not_equal(parse_every_way(fx->data, fx->len, facts),
                       STLS_HELLO_ERROR);
  assert_facts(facts, fx->expect);
}

/* The handshake messages of a captured flight, re-fragmented into records
 * of every size from 1 to 40 bytes (and several messages per record when
 * the size allows), must give the same facts: messages may span records
 * and share them. */
static void test_fixture_refragmented(void **state) {
  static uint8_t hs[65536];
  static char facts[FACTS_MAX], other[FACTS_MAX];
  size_t i, done = 0;

  (void)state;
  for (i = 0; i < n_fixtures; i++) {
    const fixture_t *fx = &fixtures[i];
    size_t off = 0, hs_len = 0, size;
    unsigned rec_version = 0;
    char *p;

    /* Collect the plaintext handshake stream up to the first record that
     * is not a handshake; skip flights that start otherwise. */
    while (off + 5 <= fx->len && fx->data[off] == 22) {
      size_t len = get16(fx->data + off + 3);

      assert_true(off + 5 + len <= fx->len);
      rec_version = get16(fx->data + off + 1);
      memcpy(hs + hs_len, fx->data + off + 5, len);
      hs_len += len;
      off += 5 + len;
    }
    if (hs_len == 0 || strstr(fx->expect, "server_hello_done=1") == NULL)
      continue;
    parse_facts(fx->data, fx->len, 0, 0, facts);
    for (size = 1; size <= 40; size++) {
      tb_reset();
      for (off = 0; off < hs_len; off += size) {
        size_t k = hs_len - off < size ? hs_len - off : size;

        tb_u8(22);
        tb_u16(rec_version);
        tb_u16((unsigned)k);
        memcpy(tb.b + tb.n, hs + off, k);
        tb.n += k;
      }
      /* Whole and byte by byte suffice here: the cut-everywhere checks
       * on the original flight cover the record layer already. */
      parse_facts(tb.b, tb.n, 1, 0, other);
      p = strstr(other, "consumed=");
      assert_non_null(p);
      assert_memory_equal(other, facts, (size_t)(p - other));
      parse_facts(tb.b, tb.n, 0, 0, other);
      /* Only where the flight ends moves. */
      p = strstr(other, "consumed=");
      assert_non_null(p);
      assert_memory_equal(other, facts, (size_t)(p - other));
      assert_string_equal(strchr(p, '\n'),
                          strchr(strstr(facts, "consumed="), '\n'));
    }
    done++;
  }
  assert_true(done >= 5);
}

/* ------------------------------------------------------------------------ */
/* Hand-made flights */

typedef struct {
  const char *name;
  void (*build)(void);
  stls_hello_rc_t rc;
  const char *expect; /* key=value lines that must appear */
  const char *error;  /* substring of result.error, or NULL */
} flight_case_t;

static const char ext_tls12[] = "ff01 0001 00"   /* renegotiation_info */
                                "0017 0000"      /* extended_master_secret */
                                "0005 0000"      /* status_request */
                                "0016 0000";     /* encrypt_then_mac */
static const char ext_tls13[] = "002b 0002 0304" /* supported_versions */
                                "0033 0008 001d 0004 01020304"; /* key_share */

static void f_garbage_smtp(void) { tb_hex("3232302072656164790d0a"); }
static void f_garbage_tls_looking(void) { tb_hex("16 03 05 00 10"); }
static void f_garbage_major(void) { tb_hex("16 02 00 00 10"); }
static void f_garbage_high_bit(void) { tb_hex("80 05 07 00 02"); }
static void f_ssl2_server_hello(void) {
  tb_hex("80 2e 04 00 01 00 02 00 05 00 03 00 10 3082");
}
static void f_ssl2_error(void) { tb_hex("80 03 00 00 01"); }
static void f_alert_fatal(void) { tb_hex("15 0301 0002 02 46"); }
static void f_alert_close_notify(void) { tb_hex("15 0303 0002 01 00"); }

/* A warning before the ServerHello does not end the handshake. */
static void f_warning_then_flight(void) {
  tb_hex("15 0303 0002 01 70");
  sh_record(STLS_TLS_1_2, 0xc02f, ext_tls12);
  hs_record(12, "03 0017 01 04 0401 0001 ff");
  shd_record();
  tb_hex("deadbeef"); /* ignored after the conclusion */
}

/* A warning alone: the peer may still say more. */
static void f_warning_only(void) { tb_hex("15 0303 0002 01 70"); }

static void f_fatal_after_hello(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, "");
  tb_hex("15 0303 0002 02 28");
}

/* Everything in one record, two certificates, a staple, DHE on TLS 1.0. */
static void f_one_record_flight(void) {
  rec_open(22);
  hs_open(2);
  sh_body(STLS_TLS_1_0, NULL, 0x0039, NULL);
  tb_close();
  hs_open(11);
  tb_open(3);
  tb_u24(3);
  tb_hex("300100");
  tb_u24(1);
  tb_hex("30");
  tb_close();
  tb_close();
  hs_open(22);
  tb_hex("01 000002 3000");
  tb_close();
  hs_open(12);
  tb_hex("0003 01ffff 0001 02 0002 1234 0003 abcdef");
  tb_close();
  hs_open(13);
  tb_hex("01 01 0000");
  tb_close();
  hs_open(14);
  tb_close();
  tb_close();
}

static void f_tls13(void) {
  sh_record(STLS_TLS_1_2, 0x1301, ext_tls13);
  tb_hex("14 0303 0001 01");
  tb_hex("17 0303 0010 00000000000000000000000000000000");
}

/* A HelloRetryRequest (RFC 8446 4.1.3) asking for secp384r1. */
static void hrr_record(void) {
  static const uint8_t hrr[32] = {
      0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c,
      0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb,
      0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};

  rec_open(22);
  hs_open(2);
  sh_body(STLS_TLS_1_2, hrr, 0x1302, "002b 0002 0304 0033 0002 0018");
  tb_close();
  tb_close();
}

/* HelloRetryRequest, middlebox ChangeCipherSpec, the real ServerHello. */
static void f_hrr(void) {
  hrr_record();
  tb_hex("14 0303 0001 01");
  sh_record(STLS_TLS_1_2, 0x1302, "002b 0002 0304 0033 0006 0018 0002 0400");
}

static void f_hrr_ccs(void) {
  hrr_record();
  tb_hex("14 0303 0001 01");
}

static void f_hrr_twice(void) {
  hrr_record();
  hrr_record();
}

static void f_downgrade11(void) {
  uint8_t random[32];

  memset(random, 1, 24);
  memcpy(random + 24, "DOWNGRD\0", 8);
  rec_open(22);
  hs_open(2);
  sh_body(STLS_TLS_1_1, random, 0xc013, "");
  tb_close();
  tb_close();
}

/* Session resumption with a ticket: no Certificate, CCS ends it. */
static void f_resumed_ticket(void) {
  sh_record(STLS_TLS_1_2, 0xc030, "0023 0000");
  hs_record(4, "00001c20 0004 aabbccdd");
  tb_hex("14 0303 0001 01");
}

static void f_hello_request_ignored(void) {
  hs_record(0, "");
  sh_record(STLS_TLS_1_2, 0x009c, NULL);
  {
    static const size_t sizes[] = {5};

    cert_record(sizes, 1);
  }
  shd_record();
}

static void f_explicit_curve(void) {
  sh_record(STLS_TLS_1_2, 0xc02b, NULL);
  hs_record(12, "01 0203 0405");
  shd_record();
}

static void f_ecdh_anon(void) {
  sh_record(STLS_TLS_1_2, 0xc018, NULL);
  hs_record(12, "03 001d 02 0102");
  shd_record();
}

static void f_dh_anon(void) {
  sh_record(STLS_TLS_1_2, 0x00a6, NULL);
  hs_record(12, "0002 00ff 0001 02 0001 05");
  shd_record();
}

/* A ServerKeyExchange the suite does not call for is passed over. */
static void f_rsa_with_ske(void) {
  sh_record(STLS_TLS_1_0, 0x002f, NULL);
  hs_record(12, "0001 ff 0001 03 0001 00");
  shd_record();
}

/* Errors */
static void f_empty_record(void) { tb_hex("16 0303 0000"); }
static void f_big_record(void) { tb_hex("16 0303 4001"); }
static void f_alert_length(void) { tb_hex("15 0303 0003 02 46 00"); }
static void f_alert_level(void) { tb_hex("15 0303 0002 03 46"); }
static void f_ccs_first(void) { tb_hex("14 0303 0001 01"); }
static void f_appdata_first(void) { tb_hex("17 0303 0001 01"); }
static void f_ccs_length(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  tb_hex("14 0303 0002 0101");
}
static void f_ccs_value(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  tb_hex("14 0303 0001 02");
}
static void f_appdata_in_flight(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  tb_hex("17 0303 0001 01");
}
static void f_certificate_first(void) { hs_record(11, "000000"); }
static void f_bad_header_later(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  tb_hex("16 0403 0001 00");
}
static void f_sid_too_long(void) {
  rec_open(22);
  hs_open(2);
  tb_hex("0303");
  tb_fill(0, 32);
  tb_u8(33);
  tb_fill(0, 33);
  tb_hex("c02f 00");
  tb_close();
  tb_close();
}
static void f_sid_overrun(void) {
  hs_record(2, "0303 0000000000000000000000000000000000000000000000000000000000"
               "000000 20 0000");
}
static void f_sh_short(void) { hs_record(2, "0303 0000"); }
static void f_sh_no_compression(void) {
  hs_record(2, "0303 0000000000000000000000000000000000000000000000000000000000"
               "000000 00 c02f");
}
static void f_ext_block_long(void) {
  hs_record(2, "0303 0000000000000000000000000000000000000000000000000000000000"
               "000000 00 c02f 00 0005 0017 0000");
}
static void f_ext_block_short(void) {
  hs_record(2, "0303 0000000000000000000000000000000000000000000000000000000000"
               "000000 00 c02f 00 0003 0017 0000");
}
static void f_ext_overrun(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, "0017 0001");
}
static void f_ext_duplicate(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, "0017 0000 0017 0000");
}
static void f_too_many_ext(void) {
  char exts[33 * 8 + 1];
  int i;

  for (i = 0; i < 33; i++)
    snprintf(exts + i * 8, 9, "%04x0000", 0x1000 + i);
  sh_record(STLS_TLS_1_2, 0xc02f, exts);
}
static void f_bad_supported_versions(void) {
  sh_record(STLS_TLS_1_2, 0x1301, "002b 0003 030400");
}
static void f_bad_key_share(void) {
  sh_record(STLS_TLS_1_2, 0x1301, "002b 0002 0304 0033 0006 001d 0003 0102");
}
static void f_empty_key_share(void) {
  sh_record(STLS_TLS_1_2, 0x1301, "002b 0002 0304 0033 0004 001d 0000");
}
static void f_bad_status_request(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, "0005 0001 00");
}
static void f_bad_ems(void) { sh_record(STLS_TLS_1_2, 0xc02f, "0017 0001 00"); }
static void f_bad_reneg(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, "ff01 0002 0500");
}
static void f_sh_too_big(void) { tb_hex("16 0303 0004 02 010001"); }
static void f_cert_list_mismatch(void) {
  sh_record(STLS_TLS_1_2, 0x009c, NULL);
  hs_record(11, "000005 000001 30");
}
static void f_cert_entry_overrun(void) {
  sh_record(STLS_TLS_1_2, 0x009c, NULL);
  hs_record(11, "000005 000003 3030");
}
static void f_cert_entry_empty(void) {
  sh_record(STLS_TLS_1_2, 0x009c, NULL);
  hs_record(11, "000003 000000");
}
static void f_cert_short(void) {
  sh_record(STLS_TLS_1_2, 0x009c, NULL);
  hs_record(11, "0000");
}
static void f_cert_entry_partial_len(void) {
  sh_record(STLS_TLS_1_2, 0x009c, NULL);
  hs_record(11, "000006 000001 30 0000");
}
static void f_ske_empty_point(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  hs_record(12, "03 001d 00 0401 0001 ff");
}
static void f_ske_sig_mismatch(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  hs_record(12, "03 001d 01 04 0401 0002 ff");
}
static void f_ske_trailing(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  hs_record(12, "03 001d 01 04 0401 0001 ff 00");
}
static void f_ske_no_sigalg(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  hs_record(12, "03 001d 01 04 04");
}
static void f_ske_dh_overrun(void) {
  sh_record(STLS_TLS_1_2, 0x009e, NULL);
  hs_record(12, "0010 ffff");
}
static void f_ske_dh_empty_g(void) {
  sh_record(STLS_TLS_1_2, 0x009e, NULL);
  hs_record(12, "0001 ff 0000 0001 01 0401 0001 00");
}
static void f_ske_anon_trailing(void) {
  sh_record(STLS_TLS_1_2, 0xc018, NULL);
  hs_record(12, "03 001d 02 0102 00");
}
static void f_ske_empty(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  hs_record(12, "");
}
static void f_status_type(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, "0005 0000");
  hs_record(22, "02 000001 00");
}
static void f_status_short(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, "0005 0000");
  hs_record(22, "01 00");
}
static void f_bad_etm(void) { sh_record(STLS_TLS_1_2, 0xc02f, "0016 0001 00"); }
static void f_status_length(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, "0005 0000");
  hs_record(22, "01 000002 00");
}
static void f_shd_body(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  hs_record(14, "00");
}
static void f_out_of_order(void) {
  static const size_t sizes[] = {1};

  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  hs_record(12, "03 001d 01 04 0401 0001 ff");
  cert_record(sizes, 1);
}
static void f_second_server_hello(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
}
static void f_ticket_late(void) {
  static const size_t sizes[] = {1};

  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  cert_record(sizes, 1);
  hs_record(4, "00001c20 0000");
}
static void f_unknown_message(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  hs_record(8, "0000");
}
static void f_ccs_inside_message(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  tb_hex("16 0303 0002 0b00"); /* the start of a Certificate */
  tb_hex("14 0303 0001 01");
}
static void f_alert_inside_message(void) {
  sh_record(STLS_TLS_1_2, 0xc02f, NULL);
  tb_hex("16 0303 0002 0b00");
  tb_hex("15 0303 0002 02 50");
}
static void f_too_many_messages(void) {
  int i;

  for (i = 0; i < STLS_HELLO_MAX_MESSAGES + 1; i++)
    hs_record(0, "");
}
static void f_hello_request_body(void) { hs_record(0, "00"); }

#define OK(name, fn, exp)                                                      \
  { name, fn, STLS_HELLO_DONE, exp, NULL }
#define MORE(name, fn, exp)                                                    \
  { name, fn, STLS_HELLO_NEED_MORE, exp, NULL }
#define BAD(name, fn, err)                                                     \
  { name, fn, STLS_HELLO_ERROR, "rc=error\n", err }

static const flight_case_t flight_cases[] = {
    OK("garbage: SMTP text", f_garbage_smtp,
       "kind=garbage\nconsumed=1\nversion=none\n"),
    OK("garbage: record version 3.5", f_garbage_tls_looking,
       "kind=garbage\nconsumed=3\n"),
    OK("garbage: record version 2.x", f_garbage_major,
       "kind=garbage\nconsumed=2\n"),
    OK("garbage: high bit, not SSLv2", f_garbage_high_bit,
       "kind=garbage\nconsumed=3\n"),
    OK("SSLv2 SERVER-HELLO", f_ssl2_server_hello,
       "kind=ssl2\nssl2_msg_type=4\nconsumed=3\n"),
    OK("SSLv2 ERROR", f_ssl2_error, "kind=ssl2\nssl2_msg_type=0\n"),
    OK("fatal alert", f_alert_fatal,
       "kind=alert\nalert=1\nalert_level=2\nalert_desc=70\nconsumed=7\n"),
    OK("close_notify", f_alert_close_notify,
       "kind=alert\nalert_level=1\nalert_desc=0\n"),
    MORE("warning alone", f_warning_only,
         "kind=alert\nalert_level=1\nalert_desc=112\n"),
    OK("warning, then a TLS 1.2 flight", f_warning_then_flight,
       "kind=server-hello\nalert=1\nalert_level=1\nalert_desc=112\n"
       "version=TLSv1.2\ncipher=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n"
       "kx=ECDHE\ngroup=secp256r1\nsigalg=rsa_pkcs1_sha256\n"
       "extensions=65281,23,5,22\nsecure_renegotiation=1\n"
       "extended_master_secret=1\nstatus_request=1\nencrypt_then_mac=1\n"
       "server_hello_done=1\ncertificate=0\nerror=\n"),
    OK("fatal alert after the ServerHello", f_fatal_after_hello,
       "kind=server-hello\nalert=1\nalert_level=2\nalert_desc=40\n"
       "version=TLSv1.2\n"),
    OK("whole TLS 1.0 flight in one record", f_one_record_flight,
       "version=TLSv1.0\nkx=DHE\ndh_bits=17\nsigalg=none\ncertificate=1\n"
       "cert_count=2\ncertificate_len=13\nocsp_staple=1\nocsp_len=2\n"
       "cert_request=1\nserver_hello_done=1\nextensions=\n"
       "session_id_len=32\n"),
    OK("TLS 1.3 then encrypted", f_tls13,
       "version=TLSv1.3\nlegacy_version=TLSv1.2\nkx=TLS1.3\ngroup=x25519\n"
       "cipher=TLS_AES_128_GCM_SHA256\nhello_retry=0\nextensions=43,51\n"),
    OK("HelloRetryRequest", f_hrr,
       "version=TLSv1.3\nhello_retry=1\nhello_retry_group=secp384r1\n"
       "group=secp384r1\ncipher=TLS_AES_256_GCM_SHA384\n"),
    MORE("downgrade sentinel to TLS 1.1", f_downgrade11,
         "downgrade=11\nversion=TLSv1.1\n"),
    OK("resumed with a ticket", f_resumed_ticket,
       "change_cipher_spec=1\nserver_hello_done=0\nextensions=35\n"),
    OK("HelloRequest ignored, RSA key exchange", f_hello_request_ignored,
       "kx=RSA\nserver_key_exchange=0\ncert_count=1\nserver_hello_done=1\n"),
    OK("explicit curve left unparsed", f_explicit_curve,
       "server_key_exchange=1\ngroup=none\nsigalg=none\n"),
    OK("ECDH_anon: no signature", f_ecdh_anon,
       "kx=ECDH_anon\ngroup=x25519\nsigalg=none\n"),
    OK("DH_anon: prime with a leading zero byte", f_dh_anon,
       "kx=DH_anon\ndh_bits=8\nsigalg=none\nserver_hello_done=1\n"),
    OK("ServerKeyExchange under RSA key exchange", f_rsa_with_ske,
       "kx=RSA\nserver_key_exchange=1\ndh_bits=0\nserver_hello_done=1\n"),
    MORE("HelloRetryRequest alone", hrr_record,
         "kind=none\nhello_retry=1\nhello_retry_group=secp384r1\n"
         "version=none\ncipher=none\nextensions=\n"),
    MORE("HelloRetryRequest and its ChangeCipherSpec", f_hrr_ccs,
         "kind=none\nhello_retry=1\nchange_cipher_spec=0\n"),
    BAD("HelloRetryRequest twice", f_hrr_twice, "second HelloRetryRequest"),
    BAD("empty record", f_empty_record, "empty record of type 22"),
    BAD("record over 2^14", f_big_record, "record of 16385 bytes"),
    BAD("alert of 3 bytes", f_alert_length, "alert record of 3 bytes"),
    BAD("alert level 3", f_alert_level, "alert with level 3"),
    BAD("ChangeCipherSpec first", f_ccs_first, "before the ServerHello"),
    BAD("application data first", f_appdata_first, "application data"),
    BAD("ChangeCipherSpec of 2 bytes", f_ccs_length,
        "ChangeCipherSpec record of 2 bytes"),
    BAD("ChangeCipherSpec value 2", f_ccs_value, "ChangeCipherSpec value 2"),
    BAD("application data in a TLS 1.2 flight", f_appdata_in_flight,
        "application data before the end"),
    BAD("Certificate first", f_certificate_first,
        "Certificate (11) where a ServerHello was expected"),
    BAD("bad record header after a good one", f_bad_header_later,
        "bad record header 16 04 03"),
    BAD("session id of 33 bytes", f_sid_too_long, "session id of 33 bytes"),
    BAD("session id overruns", f_sid_overrun, "session id overruns"),
    BAD("ServerHello of 4 bytes", f_sh_short, "truncated before the random"),
    BAD("ServerHello without compression", f_sh_no_compression,
        "truncated before the compression"),
    BAD("extensions block longer than the message", f_ext_block_long,
        "extensions length does not match"),
    BAD("extensions block shorter than the message", f_ext_block_short,
        "extensions length does not match"),
    BAD("extension overruns the block", f_ext_overrun,
        "extension overruns the block"),
    BAD("duplicate extension", f_ext_duplicate, "repeats extension 23"),
    BAD("33 extensions", f_too_many_ext, "more than 32 extensions"),
    BAD("supported_versions of 3 bytes", f_bad_supported_versions,
        "supported_versions is not 2 bytes"),
    BAD("key_share overrun", f_bad_key_share, "key_share has bad lengths"),
    BAD("empty key_share key", f_empty_key_share, "key_share has bad lengths"),
    BAD("status_request with a body", f_bad_status_request,
        "status_request is not empty"),
    BAD("extended_master_secret with a body", f_bad_ems,
        "extended_master_secret is not empty"),
    BAD("renegotiation_info overrun", f_bad_reneg,
        "renegotiation_info has bad lengths"),
    BAD("ServerHello over the limit", f_sh_too_big,
        "ServerHello of 65537 bytes is over"),
    BAD("certificate list length mismatch", f_cert_list_mismatch,
        "Certificate list length 5 in a message of 7 bytes"),
    BAD("certificate overruns the list", f_cert_entry_overrun,
        "certificate 1 of 3 bytes does not fit"),
    BAD("empty certificate", f_cert_entry_empty, "certificate 1 of 0 bytes"),
    BAD("Certificate of 2 bytes", f_cert_short, "Certificate of 2 bytes"),
    BAD("Certificate ends inside a length", f_cert_entry_partial_len,
        "Certificate ends inside an entry"),
    BAD("ECDHE point of 0 bytes", f_ske_empty_point, "ECDH parameters overrun"),
    BAD("signature length mismatch", f_ske_sig_mismatch,
        "signature length does not match"),
    BAD("byte after the signature", f_ske_trailing,
        "signature length does not match"),
    BAD("no signature algorithm", f_ske_no_sigalg,
        "truncated before the signature algorithm"),
    BAD("DH prime overruns", f_ske_dh_overrun, "DH prime overruns"),
    BAD("DH generator of 0 bytes", f_ske_dh_empty_g, "DH parameters overrun"),
    BAD("anonymous parameters then a byte", f_ske_anon_trailing,
        "1 bytes after the anonymous parameters"),
    BAD("empty ServerKeyExchange", f_ske_empty, "ServerKeyExchange is empty"),
    BAD("CertificateStatus type 2", f_status_type, "not of type ocsp"),
    BAD("CertificateStatus of 2 bytes", f_status_short,
        "CertificateStatus length does not match"),
    BAD("encrypt_then_mac with a body", f_bad_etm,
        "encrypt_then_mac is not empty"),
    BAD("CertificateStatus length mismatch", f_status_length,
        "CertificateStatus length does not match"),
    BAD("ServerHelloDone with a body", f_shd_body,
        "ServerHelloDone of 1 bytes"),
    BAD("Certificate after ServerKeyExchange", f_out_of_order,
        "Certificate (11) after ServerKeyExchange"),
    BAD("second ServerHello", f_second_server_hello,
        "ServerHello (2) after ServerHello"),
    BAD("NewSessionTicket in a full handshake", f_ticket_late,
        "NewSessionTicket (4) after Certificate"),
    BAD("unknown handshake message", f_unknown_message, "unknown (8)"),
    BAD("ChangeCipherSpec inside a message", f_ccs_inside_message,
        "ChangeCipherSpec inside a handshake message"),
    BAD("HelloRequest with a body", f_hello_request_body,
        "HelloRequest (0) where a ServerHello was expected"),
    BAD("33 handshake messages", f_too_many_messages,
        "more than 32 handshake messages"),
};

/* With STLS_HELLO_CORPUS_OUT set, store each hand-made flight there as a
 * seed for the fuzzer (tests/fuzz/corpus/hello/ was seeded this way). */
static void corpus_save(const flight_case_t *c) {
  const char *dir = getenv("STLS_HELLO_CORPUS_OUT");
  char path[1024];
  size_t i, n;
  FILE *f;

  if (dir == NULL)
    return;
  n = (size_t)snprintf(path, sizeof(path), "%s/case-", dir);
  for (i = 0; c->name[i] != '\0' && n + 1 < sizeof(path); i++) {
    char ch = c->name[i];

    if (ch >= 'A' && ch <= 'Z')
      ch = (char)(ch - 'A' + 'a');
    path[n++] = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ? ch : '-';
  }
  path[n] = '\0';
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(tb.b, 1, tb.n, f), tb.n);
  assert_int_equal(fclose(f), 0);
}

static void test_flight_case(void **state) {
  const flight_case_t *c = *state;
  static char facts[FACTS_MAX];

  tb_reset();
  c->build();
  assert_int_equal(tb.depth, 0);
  corpus_save(c);
  assert_int_equal(parse_every_way(tb.b, tb.n, facts), c->rc);
  assert_facts(facts, c->expect);
  /* parse_every_way ends with a prefix; parse the whole again. */
  parse_facts(tb.b, tb.n, 0, 0, facts);
  if (c->error != NULL) {
    const char *err = stls_hello_parser_result(&parser)->error;

    if (strstr(err, c->error) == NULL)
      fail_msg("error \"%s\" lacks \"%s\"", err, c->error);
  } else if (c->rc != STLS_HELLO_ERROR) {
    assert_string_equal(stls_hello_parser_result(&parser)->error, "");
  }
}

/* An alert inside a fragmented message is still an answer. */
static void test_alert_inside_message(void **state) {
  static char facts[FACTS_MAX];

  (void)state;
  tb_reset();
  f_alert_inside_message();
  assert_int_equal(parse_every_way(tb.b, tb.n, facts), STLS_HELLO_DONE);
  assert_facts(facts, "kind=server-hello\nalert_level=2\nalert_desc=80\n");
}

/* The flight limit holds even for a Certificate that is walked rather
 * than buffered; fed in records as a real server would send them. */
static void test_flight_limit(void **state) {
  static uint8_t rec[5 + 16384];
  size_t sent;
  stls_hello_rc_t rc;

  (void)state;
  tb_reset();
  sh_record(STLS_TLS_1_2, 0x009c, NULL);
  stls_hello_parser_init(&parser);
  assert_int_equal(stls_hello_parser_feed(&parser, tb.b, tb.n),
                   STLS_HELLO_NEED_MORE);
  sent = tb.n;
  /* A Certificate of 2^24-2 bytes holding one certificate of 2^24-8, in
   * full records; the first carries the three length fields. */
  memcpy(rec, "\x16\x03\x03\x40\x00", 5);
  memset(rec + 5, 0x30, sizeof(rec) - 5);
  memcpy(rec + 5, "\x0b\xff\xff\xfe\xff\xff\xfb\xff\xff\xf8", 10);
  rc = stls_hello_parser_feed(&parser, rec, sizeof(rec));
  sent += sizeof(rec);
  memset(rec + 5, 0x30, 10);
  while (rc == STLS_HELLO_NEED_MORE && sent < 2 * STLS_HELLO_MAX_FLIGHT) {
    rc = stls_hello_parser_feed(&parser, rec, sizeof(rec));
    sent += sizeof(rec);
  }
  assert_int_equal(rc, STLS_HELLO_ERROR);
  assert_int_equal(stls_hello_parser_result(&parser)->consumed,
                   STLS_HELLO_MAX_FLIGHT);
  assert_non_null(
      strstr(stls_hello_parser_result(&parser)->error, "no conclusion after"));
  assert_int_equal(stls_hello_parser_result(&parser)->cert_count, 1);
}

/* DONE and ERROR are sticky; an empty feed changes nothing. */
static void test_sticky(void **state) {
  static const uint8_t alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};
  static const uint8_t bad[] = {0x16, 0x03, 0x03, 0x00, 0x00};

  (void)state;
  stls_hello_parser_init(&parser);
  assert_int_equal(stls_hello_parser_feed(&parser, alert, 0),
                   STLS_HELLO_NEED_MORE);
  assert_int_equal(stls_hello_parser_feed(&parser, alert, sizeof(alert)),
                   STLS_HELLO_DONE);
  assert_int_equal(stls_hello_parser_feed(&parser, bad, sizeof(bad)),
                   STLS_HELLO_DONE);
  assert_int_equal(stls_hello_parser_result(&parser)->consumed, 7);
  assert_int_equal(stls_hello_parser_result(&parser)->alert_desc, 40);

  stls_hello_parser_init(&parser);
  assert_int_equal(stls_hello_parser_result(&parser)->kind,
                   STLS_HELLO_KIND_NONE);
  assert_int_equal(stls_hello_parser_feed(&parser, bad, sizeof(bad)),
                   STLS_HELLO_ERROR);
  assert_int_equal(stls_hello_parser_feed(&parser, alert, sizeof(alert)),
                   STLS_HELLO_ERROR);
  assert_int_equal(stls_hello_parser_result(&parser)->consumed, 5);
  assert_false(stls_hello_parser_result(&parser)->alert);
}

static void test_accepted(void **state) {
  stls_hello_result_t r;

  (void)state;
  memset(&r, 0, sizeof(r));
  r.kind = STLS_HELLO_KIND_SERVER_HELLO;
  r.version = STLS_TLS_1_0;
  assert_true(stls_hello_accepted(&r, STLS_TLS_1_0));
  assert_false(stls_hello_accepted(&r, STLS_TLS_1_1));
  /* After a HelloRetryRequest the fields are the real ServerHello's. */
  r.hello_retry = true;
  assert_true(stls_hello_accepted(&r, STLS_TLS_1_0));
  r.kind = STLS_HELLO_KIND_NONE;
  assert_false(stls_hello_accepted(&r, STLS_TLS_1_0));
  r.kind = STLS_HELLO_KIND_ALERT;
  assert_false(stls_hello_accepted(&r, STLS_TLS_1_0));
}

static void test_names(void **state) {
  uint16_t v;
  int k;

  (void)state;
  assert_string_equal(stls_tls_version_name(0x0300), "SSLv3");
  assert_string_equal(stls_tls_version_name(0x0301), "TLSv1.0");
  assert_string_equal(stls_tls_version_name(0x0302), "TLSv1.1");
  assert_string_equal(stls_tls_version_name(0x0303), "TLSv1.2");
  assert_string_equal(stls_tls_version_name(0x0304), "TLSv1.3");
  assert_null(stls_tls_version_name(0x0305));
  assert_string_equal(stls_tls_group_name(0x001d), "x25519");
  assert_string_equal(stls_tls_group_name(0x0017), "secp256r1");
  assert_string_equal(stls_tls_group_name(0x0100), "ffdhe2048");
  assert_string_equal(stls_tls_group_name(0x11ec), "X25519MLKEM768");
  assert_null(stls_tls_group_name(0));
  assert_string_equal(stls_tls_sigalg_name(0x0804), "rsa_pss_rsae_sha256");
  assert_string_equal(stls_tls_sigalg_name(0x0403), "ecdsa_secp256r1_sha256");
  assert_string_equal(stls_tls_sigalg_name(0x0401), "rsa_pkcs1_sha256");
  assert_null(stls_tls_sigalg_name(0x0000));
  assert_string_equal(stls_tls_cipher_iana_name(0xc013),
                      "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA");
  assert_string_equal(stls_tls_cipher_iana_name(0x1302),
                      "TLS_AES_256_GCM_SHA384");
  assert_null(stls_tls_cipher_iana_name(0x0000));
  assert_int_equal(stls_tls_cipher_kx(0x0035), STLS_HELLO_KX_RSA);
  assert_int_equal(stls_tls_cipher_kx(0x4242), STLS_HELLO_KX_UNKNOWN);
  for (k = STLS_HELLO_KIND_NONE; k <= STLS_HELLO_KIND_GARBAGE; k++)
    assert_non_null(stls_hello_kind_name((stls_hello_kind_t)k));
  for (k = STLS_HELLO_KX_UNKNOWN; k <= STLS_HELLO_KX_TLS13; k++)
    assert_non_null(stls_hello_kx_name((stls_hello_kx_t)k));
  /* Every named suite's name says its key exchange. */
  for (v = 0; v < 0xffff; v++) {
    const char *name = stls_tls_cipher_iana_name(v);
    stls_hello_kx_t kx = stls_tls_cipher_kx(v);

    if (name == NULL) {
      assert_int_equal(kx, STLS_HELLO_KX_UNKNOWN);
      continue;
    }
    assert_true(strncmp(name, "TLS_", 4) == 0);
    switch (kx) {
    case STLS_HELLO_KX_RSA: assert_non_null(strstr(name, "TLS_RSA_")); break;
    case STLS_HELLO_KX_DHE: assert_non_null(strstr(name, "TLS_DHE_")); break;
    case STLS_HELLO_KX_ECDHE:
      assert_non_null(strstr(name, "TLS_ECDHE_"));
      break;
    case STLS_HELLO_KX_DH_ANON:
      assert_non_null(strstr(name, "TLS_DH_anon_"));
      break;
    case STLS_HELLO_KX_ECDH_ANON:
      assert_non_null(strstr(name, "TLS_ECDH_anon_"));
      break;
    case STLS_HELLO_KX_TLS13: assert_null(strstr(name, "_WITH_")); break;
    case STLS_HELLO_KX_NONE: assert_non_null(strstr(name, "SCSV")); break;
    default: fail_msg("%s has no key exchange", name);
    }
  }
}

int main(void) {
  static const struct CMUnitTest fixed[] = {
      cmocka_unit_test(test_build_versions),
      cmocka_unit_test(test_build_sni),
      cmocka_unit_test(test_build_padding),
      cmocka_unit_test(test_build_bounds),
      cmocka_unit_test(test_parse_client_hello),
      cmocka_unit_test(test_fixture_refragmented),
      cmocka_unit_test(test_alert_inside_message),
      cmocka_unit_test(test_flight_limit),
      cmocka_unit_test(test_sticky),
      cmocka_unit_test(test_accepted),
      cmocka_unit_test(test_names),
  };
  static struct CMUnitTest
      tests[ARRAY_LEN(fixed) + ARRAY_LEN(flight_cases) + ARRAY_LEN(fixtures)];
  size_t n = 0, i;
  int failed;

  /* The captured flights must all be there: a lost fixture directory
   * must fail, not shrink the test. */
  if (load_fixtures() != 0 || n_fixtures < 15) {
    fprintf(stderr,
            "test_hello: expected at least 15 fixtures in %s, got %zu\n",
            STLS_TEST_HELLO_DIR, n_fixtures);
    free_fixtures();
    return 1;
  }
  for (i = 0; i < ARRAY_LEN(fixed); i++)
    tests[n++] = fixed[i];
  /* One cmocka test per table row and per fixture, so a failure names it. */
  for (i = 0; i < ARRAY_LEN(flight_cases); i++) {
    struct CMUnitTest t = {flight_cases[i].name, test_flight_case, NULL, NULL,
                           (void *)&flight_cases[i]};
    tests[n++] = t;
  }
  for (i = 0; i < n_fixtures; i++) {
    struct CMUnitTest t = {fixtures[i].name, test_fixture, NULL, NULL,
                           &fixtures[i]};
    tests[n++] = t;
  }
  failed = _cmocka_run_group_tests("hello", tests, n, NULL, NULL);
  free_fixtures();
  return failed;
}
