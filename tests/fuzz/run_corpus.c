/* Replays fuzz corpora through a fuzz target without libFuzzer, so CTest can
 * run them with any compiler (and under the sanitizer build).
 *
 * Usage: run_corpus DIR_OR_FILE...
 * Every regular file of each directory (not recursive) is passed to
 * LLVMFuzzerTestOneInput once. A failing check inside the target aborts the
 * process. Finding no input at all is an error too, so a mistyped corpus
 * path cannot pass silently.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read a whole file and run it; returns 0 or -1 after printing why. */
static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;

  if (f == NULL) {
    fprintf(stderr, "run_corpus: %s: %s\n", path, strerror(errno));
    return -1;
  }
  for (;;) {
    size_t n;

    if (len == cap) {
      uint8_t *nb = realloc(buf, cap ? cap * 2 : 4096);

      if (nb == NULL) {
        fprintf(stderr, "run_corpus: %s: out of memory\n", path);
        free(buf);
        fclose(f);
        return -1;
      }
      buf = nb;
      cap = cap ? cap * 2 : 4096;
    }
    n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0)
      break;
  }
  if (ferror(f)) {
    fprintf(stderr, "run_corpus: %s: read error\n", path);
    free(buf);
    fclose(f);
    return -1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  return 0;
}

/* Run one argument: a file, or every regular file of a directory. Returns
 * the number of inputs run, or -1. */
static long run_path(const char *path) {
  struct stat st;
  DIR *d;
  struct dirent *e;
  long count = 0;

  if (stat(path, &st) != 0) {
    fprintf(stderr, "run_corpus: %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode))
    return run_file(path) == 0 ? 1 : -1;

  d = opendir(path);
  if (d == NULL) {
    fprintf(stderr, "run_corpus: %s: %s\n", path, strerror(errno));
    return -1;
  }
  while ((e = readdir(d)) != NULL) {
    char file[4096];

    if (e->d_name[0] == '.')
      continue;
    if ((size_t)snprintf(file, sizeof(file), "%s/%s", path, e->d_name) >=
        sizeof(file)) {
      fprintf(stderr, "run_corpus: %s/%s: path too long\n", path, e->d_name);
      count = -1;
      break;
    }
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    if (run_file(file) != 0) {
      count = -1;
      break;
    }
    count++;
  }
  closedir(d);
  return count;
}

int main(int argc, char **argv) {
  long total = 0;
  int i;

  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  for (i = 1; i < argc; i++) {
    long n = run_path(argv[i]);

    if (n < 0)
      return 1;
    total += n;
  }
  if (total == 0) {
    fprintf(stderr, "run_corpus: no inputs found\n");
    return 1;
  }
  printf("run_corpus: %ld inputs ok\n", total);
  return 0;
}
