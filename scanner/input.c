/* Targets in: domain lists, --resume, --shard. See input.h. */
#include "stls/input.h"
#include "stls/domain.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool stls_shard_keep(const char *domain, unsigned k, unsigned n) {
  if (n <= 1)
    return true;
  return stls_hash64(domain) % n == (uint64_t)(k - 1);
}

void stls_escape_bytes(const char *in, size_t len, char *out, size_t outlen) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)in;
  size_t o = 0, i = 0;
  if (outlen == 0)
    return;
  while (i < len) {
    char tmp[5];
    size_t n = 0, adv = 1;
    if (s[i] == '\\') {
      tmp[n++] = '\\';
      tmp[n++] = '\\';
    } else if (s[i] >= 0x20 && s[i] < 0x7f) {
      tmp[n++] = (char)s[i];
    } else if (s[i] >= 0x80 && len - i >= 1) {
      /* valid UTF-8 passes; check without reading past len */
      unsigned char seq[5] = {0};
      size_t k = len - i < 4 ? len - i : 4;
      memcpy(seq, s + i, k);
      adv = stls_utf8_seq_len(seq);
      if (adv == 0 || adv > k) {
        adv = 1;
        goto escape;
      }
      if (o + adv >= outlen)
        break;
      memcpy(out + o, s + i, adv);
      o += adv;
      i += adv;
      continue;
    } else {
    escape:
      tmp[n++] = '\\';
      tmp[n++] = 'x';
      tmp[n++] = hex[s[i] >> 4];
      tmp[n++] = hex[s[i] & 15];
    }
    if (o + n >= outlen)
      break;
    memcpy(out + o, tmp, n);
    o += n;
    i += adv;
  }
  out[o] = '\0';
}

/* Shard and resume filters; then the sink. */
static int deliver(const stls_input_opts_t *o, const stls_input_sink_t *sink,
                   stls_input_counts_t *c, const char *key, const char *raw,
                   const char *why) {
  if (!stls_shard_keep(key, o->shard_k, o->shard_n)) {
    c->shard_skipped++;
    return 0;
  }
  if (o->resume_set && stls_strmap_get(o->resume_set, key)) {
    c->resumed_skipped++;
    return 0;
  }
  if (why) {
    c->invalid++;
    return sink->invalid(sink->arg, raw, why);
  }
  return sink->domain(sink->arg, key);
}

/* The trimmed text of a bad line, before any comment, escaped. */
static void raw_text(const char *line, size_t len, char *out, size_t outlen) {
  size_t b = 0, e;
  const char *hash = memchr(line, '#', len);
  e = hash ? (size_t)(hash - line) : len;
  while (b < e && (line[b] == ' ' || line[b] == '\t'))
    b++;
  while (e > b && strchr(" \t\r\n", line[e - 1]) && line[e - 1])
    e--;
  stls_escape_bytes(line + b, e - b, out, outlen);
}

static int take_line(const char *line, size_t len, bool too_long,
                     unsigned long lineno, const stls_input_opts_t *o,
                     const stls_input_sink_t *sink, stls_input_counts_t *c) {
  char name[STLS_DOMAIN_MAX + 2], raw[300], why[200];
  const char *w = NULL;
  int r;
  if (too_long || memchr(line, '\0', len)) {
    /* Recorded whole: a line with a NUL or past our bound is not a name,
     * and cutting it would turn it into another one. */
    raw_text(line, too_long && len > 60 ? 60 : len, raw, sizeof(raw));
    snprintf(why, sizeof(why), "line %lu: %s", lineno,
             too_long ? "line too long" : "NUL byte in line");
    c->lines++;
    return deliver(o, sink, c, raw, raw, why);
  }
  r = stls_target_line_parse(line, name, sizeof(name), &w);
  if (r == 0)
    return 0;
  c->lines++;
  if (r > 0)
    return deliver(o, sink, c, name, NULL, NULL);
  raw_text(line, len, raw, sizeof(raw));
  snprintf(why, sizeof(why), "line %lu: %s", lineno,
           w ? w : "not a domain name");
  return deliver(o, sink, c, raw, raw, why);
}

int stls_input_read(FILE *f, const stls_input_opts_t *o,
                    const stls_input_sink_t *sink, stls_input_counts_t *c,
                    char *err, size_t errlen) {
  char *line = malloc(STLS_INPUT_LINE_MAX + 1);
  size_t len = 0, over = 0;
  unsigned long lineno = 0;
  int ch, rc = 0;
  if (!line) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (;;) {
    ch = getc_unlocked(f);
    if (ch != EOF && ch != '\n') {
      if (len < STLS_INPUT_LINE_MAX)
        line[len++] = (char)ch;
      else if (++over > STLS_INPUT_ENDLESS) {
        line[len] = '\0';
        lineno++;
        (void)take_line(line, len, true, lineno, o, sink, c);
        snprintf(err, errlen,
                 "line %lu: over %d bytes without a line break: not a "
                 "domain list",
                 lineno, STLS_INPUT_ENDLESS);
        rc = -1;
        break;
      }
      continue;
    }
    if (ch == EOF && len == 0 && over == 0)
      break;
    line[len] = '\0';
    lineno++;
    if (take_line(line, len, over > 0, lineno, o, sink, c) != 0) {
      rc = -2;
      break;
    }
    len = over = 0;
    if (ch == EOF)
      break;
    if (o->stop && *o->stop) {
      rc = -2;
      break;
    }
  }
  if (rc == 0 && ferror(f)) {
    snprintf(err, errlen, "%s", strerror(errno ? errno : EIO));
    rc = -1;
  }
  free(line);
  return rc;
}

int stls_input_take_arg(const char *arg, const stls_input_opts_t *o,
                        const stls_input_sink_t *sink, stls_input_counts_t *c) {
  char name[STLS_DOMAIN_MAX + 2], raw[300];
  const char *why = NULL;
  c->lines++;
  if (stls_domain_normalize(arg, name, sizeof(name), &why) == 0)
    return deliver(o, sink, c, name, NULL, NULL);
  stls_escape_bytes(arg, strlen(arg), raw, sizeof(raw));
  return deliver(o, sink, c, raw, raw, why ? why : "not a domain name");
}

uint64_t stls_input_count_lines(const char *path) {
  FILE *f = fopen(path, "r");
  char buf[4096];
  uint64_t n = 0;
  if (!f)
    return 0;
  while (fgets(buf, sizeof(buf), f)) {
    const char *p = buf + strspn(buf, " \t");
    if (*p && *p != '#' && *p != '\n' && *p != '\r')
      n++;
  }
  fclose(f);
  return n;
}

/* Could this torn line be the start of one of our records? */
static bool torn_record(const char *s, size_t n) {
  if (n == 0 || s[0] != '{')
    return false;
  return memchr(s, '\0', n) == NULL;
}

int stls__resume_read(FILE *f, const char *path, stls_strmap_t *set,
                      uint64_t *records, long *good_end, char *err,
                      size_t errlen) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  unsigned long lineno = 0;
  int rc = 0;
  *records = 0;
  *good_end = 0;
  while ((n = getline(&line, &cap, f)) > 0) {
    cJSON *rec, *d;
    const char *end = NULL;
    lineno++;
    if (line[n - 1] != '\n') {
      if (!torn_record(line, (size_t)n)) {
        snprintf(err, errlen,
                 "%s line %lu is not a record of ours: not resuming (the "
                 "file is left as it is)",
                 path, lineno);
        rc = -2;
      }
      break; /* torn: the caller cuts it */
    }
    /* Our writer puts one object on a line, from its first byte to the
     * newline: anything around it (a blank, a second value, a CR) is
     * another program's output. */
    rec = line[0] != '{' || memchr(line, '\0', (size_t)n)
              ? NULL
              : cJSON_ParseWithOpts(line, &end, false);
    if (rec && end != line + n - 1) {
      cJSON_Delete(rec);
      rec = NULL;
    }
    d = cJSON_IsObject(rec) ? cJSON_GetObjectItemCaseSensitive(rec, "domain")
                            : NULL;
    if (!cJSON_IsString(d)) {
      cJSON_Delete(rec);
      snprintf(err, errlen,
               "%s line %lu is not a starttls-scan record: not resuming (the "
               "file is left as it is)",
               path, lineno);
      rc = -2;
      break;
    }
    if (stls_strmap_put(set, d->valuestring, set) != 0) {
      cJSON_Delete(rec);
      snprintf(err, errlen, "out of memory");
      rc = -1;
      break;
    }
    cJSON_Delete(rec);
    (*records)++;
    *good_end = ftell(f);
  }
  free(line);
  if (rc == 0 && ferror(f)) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    rc = -1;
  }
  return rc;
}

int stls_resume_load(const char *path, stls_strmap_t *set, uint64_t *records,
                     char *err, size_t errlen) {
  FILE *f = fopen(path, "r+");
  long good_end = 0;
  int rc;
  *records = 0;
  if (!f) {
    if (errno == ENOENT)
      return 0; /* nothing to resume: a fresh run */
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  rc = stls__resume_read(f, path, set, records, &good_end, err, errlen);
  if (rc == 0 && ftruncate(fileno(f), good_end) != 0) {
    snprintf(err, errlen, "cannot truncate %s: %s", path, strerror(errno));
    rc = -1;
  }
  fclose(f);
  return rc;
}
