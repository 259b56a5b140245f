/* Command-line access to scanner/hello.c for the fixture and interop
 * scripts (openssl_flights.py).
 *
 *   hello_tool build VERSION [--sni NAME] [--ocsp]   ClientHello record to
 *       stdout; VERSION is ssl3, tls1.0, tls1.1 or tls1.2.
 *   hello_tool parse FILE                            the server's bytes in
 *       FILE, parsed; the facts as key=value lines (hello_kv.h) on stdout.
 *
 * Exit 0 on success, 1 on I/O errors, 2 on usage errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hello_kv.h"
#include "stls/hello.h"

static int usage(void) {
  fprintf(stderr, "usage: hello_tool build ssl3|tls1.0|tls1.1|tls1.2 "
                  "[--sni NAME] [--ocsp]\n"
                  "       hello_tool parse FILE\n");
  return 2;
}

static int cmd_build(int argc, char **argv) {
  static const struct {
    const char *name;
    uint16_t version;
  } versions[] = {{"ssl3", STLS_TLS_SSL3},
                  {"tls1.0", STLS_TLS_1_0},
                  {"tls1.1", STLS_TLS_1_1},
                  {"tls1.2", STLS_TLS_1_2}};
  uint8_t random[32], out[STLS_HELLO_BUILD_MAX];
  const char *sni = NULL;
  unsigned flags = 0;
  uint16_t version = 0;
  size_t i, n;
  FILE *f;
  int a;

  if (argc < 1)
    return usage();
  for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
    if (strcmp(argv[0], versions[i].name) == 0)
      version = versions[i].version;
  if (version == 0)
    return usage();
  for (a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--sni") == 0 && a + 1 < argc)
      sni = argv[++a];
    else if (strcmp(argv[a], "--ocsp") == 0)
      flags |= STLS_HELLO_OCSP;
    else
      return usage();
  }
  f = fopen("/dev/urandom", "rb");
  if (f == NULL || fread(random, 1, sizeof(random), f) != sizeof(random)) {
    fprintf(stderr, "hello_tool: cannot read /dev/urandom\n");
    if (f)
      fclose(f);
    return 1;
  }
  fclose(f);
  n = stls_hello_build(version, sni, flags, random, out, sizeof(out));
  if (n == 0 || fwrite(out, 1, n, stdout) != n || fflush(stdout) != 0) {
    fprintf(stderr, "hello_tool: build or write failed\n");
    return 1;
  }
  return 0;
}

static int cmd_parse(const char *path) {
  static stls_hello_parser_t p; /* ~66 KB: not on the stack */
  uint8_t chunk[4096];
  char facts[4096];
  stls_hello_rc_t rc = STLS_HELLO_NEED_MORE;
  FILE *f = fopen(path, "rb");
  size_t n;

  if (f == NULL) {
    perror(path);
    return 1;
  }
  stls_hello_parser_init(&p);
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    rc = stls_hello_parser_feed(&p, chunk, n);
  if (ferror(f)) {
    perror(path);
    fclose(f);
    return 1;
  }
  fclose(f);
  hello_kv_format(stls_hello_parser_result(&p), rc, facts, sizeof(facts));
  fputs(facts, stdout);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "build") == 0)
    return cmd_build(argc - 2, argv + 2);
  if (argc == 3 && strcmp(argv[1], "parse") == 0)
    return cmd_parse(argv[2]);
  return usage();
}
