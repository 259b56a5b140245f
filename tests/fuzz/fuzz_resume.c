/* Fuzz target for the --resume reader (stls__resume_read and
 * stls_resume_load, input.c).
 *
 * Input: the bytes of an output file left by an earlier run. The reader's
 * answer is compared with one worked out here independently, line by
 * line: every complete line must be one JSON object with a "domain"
 * string, from its first byte to its newline, no NUL anywhere, else the file
 * is refused (-2) naming that line; a last line without a newline is
 * cut if it could be the start of a record ('{', no NUL) and refused
 * otherwise. The record count, the cut offset and the set of domains
 * must agree. The same bytes are then written to a file and resumed
 * through stls_resume_load: the same answer, the file cut at the offset
 * on success and left byte for byte as it was when refused.
 */
#define _GNU_SOURCE /* memfd_create */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stls/input.h"
#include "stls/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

typedef struct expect_s {
  int rc;
  uint64_t records;
  long end;
  unsigned long bad_line; /* the line named when rc is -2 */
} expect_t;

/* The domain of one complete line (without its newline), or NULL when
 * the line is not a record; *rec owns it. */
static const char *record_domain(const char *s, size_t n, cJSON **rec) {
  const char *end = NULL;
  cJSON *d;
  *rec = NULL;
  if (n == 0 || s[0] != '{' || memchr(s, '\0', n))
    return NULL;
  *rec = cJSON_ParseWithLengthOpts(s, n, &end, false);
  if (!cJSON_IsObject(*rec) || end != s + n)
    return NULL;
  d = cJSON_GetObjectItemCaseSensitive(*rec, "domain");
  return cJSON_IsString(d) ? d->valuestring : NULL;
}

/* What the reader must answer; every domain it must have is checked in
 * set (NULL: only work out the answer). */
static expect_t expected(const char *buf, size_t size,
                         const stls_strmap_t *set) {
  expect_t e = {0, 0, 0, 0};
  size_t pos = 0;
  unsigned long lineno = 0;
  while (pos < size) {
    const char *nl = memchr(buf + pos, '\n', size - pos);
    const char *dom;
    cJSON *rec;
    lineno++;
    if (!nl) {
      if (buf[pos] != '{' || memchr(buf + pos, '\0', size - pos)) {
        e.rc = -2;
        e.bad_line = lineno;
      }
      break;
    }
    dom = record_domain(buf + pos, (size_t)(nl - (buf + pos)), &rec);
    if (!dom) {
      cJSON_Delete(rec);
      e.rc = -2;
      e.bad_line = lineno;
      break;
    }
    if (set)
      CHECK(stls_strmap_get(set, dom) != NULL);
    cJSON_Delete(rec);
    e.records++;
    pos = (size_t)(nl - buf) + 1;
    e.end = (long)pos;
  }
  return e;
}

static void check_err(const expect_t *e, const char *err) {
  char want[48];
  if (e->rc != -2)
    return;
  snprintf(want, sizeof want, " line %lu ", e->bad_line);
  CHECK(strstr(err, want) != NULL);
}

/* A scratch file in memory (fast, nothing left behind): stls_resume_load
 * reopens it by its /proc/self/fd name. */
static int scratch_fd(void) {
  static int fd = -1;
  if (fd < 0) {
    fd = memfd_create("fuzz_resume", 0);
    CHECK(fd >= 0);
  }
  return fd;
}

static void through_file(const char *buf, size_t size, const expect_t *e) {
  int fd = scratch_fd();
  char path[64], err[512] = "";
  stls_strmap_t *set = stls_strmap_new();
  uint64_t records = 99;
  size_t want = e->rc == 0 ? (size_t)e->end : size;
  char *back = malloc(size + 1);
  ssize_t got;
  int rc;
  CHECK(set != NULL && back != NULL);
  CHECK(ftruncate(fd, 0) == 0);
  CHECK(size == 0 || pwrite(fd, buf, size, 0) == (ssize_t)size);
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  rc = stls_resume_load(path, set, &records, err, sizeof err);
  CHECK(rc == e->rc);
  if (rc == 0)
    CHECK(records == e->records);
  check_err(e, err);
  (void)expected(buf, size, set);
  got = pread(fd, back, size + 1, 0);
  CHECK(got == (ssize_t)want);
  CHECK(memcmp(back, buf, want) == 0);
  free(back);
  stls_strmap_free(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  stls_strmap_t *set = stls_strmap_new();
  expect_t e = expected(buf, size, NULL);
  uint64_t records = 99;
  long end = -1;
  char err[512] = "";
  FILE *f;
  int rc;
  CHECK(set != NULL);
  /* fmemopen wants a size of at least one byte. */
  f = size ? fmemopen((void *)data, size, "r") : fopen("/dev/null", "r");
  CHECK(f != NULL);
  rc = stls__resume_read(f, "out.ndjson", set, &records, &end, err, sizeof err);
  fclose(f);
  CHECK(rc == e.rc);
  CHECK(records == e.records);
  CHECK(end == e.end);
  CHECK(rc == 0 || err[0] != '\0');
  check_err(&e, err);
  (void)expected(buf, size, set);
  stls_strmap_free(set);

  through_file(buf, size, &e);
  return 0;
}
