/* Fuzz target for the JSON writer (writer.c) fed arbitrary bytes in every
 * string a server, a DNS answer or an input line can put in a record.
 *
 * Input: fields separated by NUL bytes (reused in turn when there are
 * fewer than the record has strings). They become the domain, the status,
 * the input error, MX host and address text, the host's banner and
 * replies, EHLO extensions, error code and message, findings, TLS names,
 * certificate subject, issuer, CN and SANs, and the MTA-STS TXT record,
 * id, content type, location, error and policy pattern.
 *
 * Checks, for a scan record and a probe record: the writer succeeds; the
 * output is exactly one line ending in '\n'; it is valid UTF-8 with no raw
 * control character; it parses as a JSON object; and a field that was
 * valid UTF-8 comes back byte for byte (invalid bytes only become U+FFFD,
 * so a valid string is never altered).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stls/record.h"
#include "stls/util.h"
#include "stls/writer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define MAX_FIELDS 32

typedef struct {
  char *buf;
  const char *f[MAX_FIELDS];
  size_t n, next;
} fields_t;

static const char *field(fields_t *fs) {
  const char *s = fs->f[fs->next % fs->n];
  fs->next++;
  return s;
}

static char *dup_field(fields_t *fs) {
  char *s = stls_strdup(field(fs));
  CHECK(s != NULL);
  return s;
}

/* Write rec as a line and check it; returns the parsed copy. */
static cJSON *write_and_check(const cJSON *rec) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  cJSON *back;

  CHECK(f != NULL);
  CHECK(stls_json_write_line(f, rec) == 0);
  CHECK(fclose(f) == 0);
  CHECK(len > 1 && out[len - 1] == '\n');
  CHECK(strlen(out) == len); /* no NUL inside */
  for (size_t i = 0; i + 1 < len; i++)
    CHECK((unsigned char)out[i] >= 0x20); /* JSON escapes every control */
  CHECK(stls_utf8_is_valid(out));
  back = cJSON_ParseWithLength(out, len);
  CHECK(back != NULL && cJSON_IsObject(back));
  free(out);
  return back;
}

/* A string field that went in as s comes out as s when s was valid UTF-8,
 * and as valid UTF-8 anyway. */
static void same_string(const cJSON *o, const char *key, const char *s) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
  CHECK(cJSON_IsString(x));
  CHECK(stls_utf8_is_valid(x->valuestring));
  if (stls_utf8_is_valid(s))
    CHECK(strcmp(x->valuestring, s) == 0);
}

static void fill_host(stls_host_result_t *h, fields_t *fs) {
  stls_cert_t *c;

  CHECK(stls_host_result_init(h, field(fs), "192.0.2.1", 25) == 0);
  stls_strlcpy(h->ip, field(fs), sizeof h->ip);
  h->banner = dup_field(fs);
  h->ehlo_done = true;
  h->ehlo_reply = dup_field(fs);
  CHECK(stls_strlist_push(&h->ehlo_ext, field(fs)) == 0);
  CHECK(stls_strlist_push(&h->ehlo_ext, field(fs)) == 0);
  h->starttls_offered = true;
  h->starttls_reply = dup_field(fs);
  h->tls_done = true;
  stls_strlcpy(h->tls.version, field(fs), sizeof h->tls.version);
  stls_strlcpy(h->tls.cipher_name, field(fs), sizeof h->tls.cipher_name);
  c = calloc(1, sizeof *c);
  CHECK(c != NULL);
  c->subject = dup_field(fs);
  c->issuer = dup_field(fs);
  c->subject_cn = dup_field(fs);
  CHECK(stls_strlist_push(&c->san_dns, field(fs)) == 0);
  CHECK(stls_strlist_push(&c->san_dns, field(fs)) == 0);
  stls_strlcpy(c->not_before, field(fs), sizeof c->not_before);
  stls_strlcpy(c->not_after, field(fs), sizeof c->not_after);
  stls_strlcpy(c->key_type, field(fs), sizeof c->key_type);
  stls_strlcpy(c->sig_alg, field(fs), sizeof c->sig_alg);
  stls_strlcpy(c->serial, field(fs), sizeof c->serial);
  h->tls.chain = c;
  h->tls.n_chain = 1;
  h->ehlo_tls_reply = dup_field(fs);
  stls_host_result_add_finding(h, field(fs), "%s", field(fs));
  stls_host_result_fail(h, STLS_HOST_HANDSHAKE_ERROR, STLS_STAGE_HANDSHAKE,
                        field(fs), "%s", field(fs));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fields_t fs = {0};
  stls_domain_record_t d;
  stls_domain_host_t dh;
  stls_dns_result_t *dns;
  stls_sts_result_t *sts;
  const char *domain, *status, *input_error;
  cJSON *rec, *back;

  fs.buf = malloc(size + 1);
  CHECK(fs.buf != NULL);
  memcpy(fs.buf, data, size);
  fs.buf[size] = '\0';
  for (size_t i = 0, start = 0; i <= size && fs.n < MAX_FIELDS; i++)
    if (i == size || fs.buf[i] == '\0') {
      fs.f[fs.n++] = fs.buf + start;
      start = i + 1;
    }

  memset(&d, 0, sizeof d);
  memset(&dh, 0, sizeof dh);
  domain = field(&fs);
  status = field(&fs);
  input_error = field(&fs);
  d.domain = domain;
  d.status = status;
  d.input_error = input_error;
  d.scanned_at = 1700000000;
  d.duration_ms = 5;

  dns = calloc(1, sizeof *dns);
  CHECK(dns != NULL);
  dns->domain = dup_field(&fs);
  dns->status = STLS_DNS_OK;
  dns->mx = calloc(1, sizeof *dns->mx);
  CHECK(dns->mx != NULL);
  dns->nmx = 1;
  dns->mx[0].preference = 10;
  dns->mx[0].host = dup_field(&fs);
  dns->mx[0].addrs = calloc(1, sizeof *dns->mx[0].addrs);
  CHECK(dns->mx[0].addrs != NULL);
  dns->mx[0].naddrs = 1;
  dns->mx[0].addrs[0].family = AF_INET;
  stls_strlcpy(dns->mx[0].addrs[0].text, field(&fs),
               sizeof dns->mx[0].addrs[0].text);
  dns->mx[0].status = STLS_DNS_OK;
  d.dns = dns;

  fill_host(&dh.res, &fs);
  d.hosts = &dh;
  d.n_hosts = 1;

  sts = calloc(1, sizeof *sts);
  CHECK(sts != NULL);
  sts->domain = dup_field(&fs);
  sts->status = STLS_STS_OK;
  sts->txt = dup_field(&fs);
  stls_strlcpy(sts->id, field(&fs), sizeof sts->id);
  stls_strlcpy(sts->ip, field(&fs), sizeof sts->ip);
  stls_strlcpy(sts->tls_version, field(&fs), sizeof sts->tls_version);
  stls_strlcpy(sts->content_type, field(&fs), sizeof sts->content_type);
  stls_strlcpy(sts->location, field(&fs), sizeof sts->location);
  stls_strlcpy(sts->error.code, field(&fs), sizeof sts->error.code);
  stls_strlcpy(sts->error.message, field(&fs), sizeof sts->error.message);
  sts->http_status = 200;
  sts->policy.mode = STLS_STS_MODE_ENFORCE;
  sts->policy.mx = calloc(1, sizeof *sts->policy.mx);
  CHECK(sts->policy.mx != NULL);
  sts->policy.mx[0] = dup_field(&fs);
  sts->policy.nmx = 1;
  sts->timing.txt = sts->timing.total = -1;
  d.sts = sts;

  rec = stls_json_domain(&d);
  CHECK(rec != NULL);
  back = write_and_check(rec);
  same_string(back, "domain", domain);
  same_string(back, "status", status);
  same_string(cJSON_GetObjectItemCaseSensitive(back, "error"), "message",
              input_error);
  cJSON_Delete(back);
  cJSON_Delete(rec);

  rec = stls_json_probe_record(&dh.res, domain, 1700000000);
  CHECK(rec != NULL);
  back = write_and_check(rec);
  same_string(back, "mx", dh.res.mx);
  cJSON_Delete(back);
  cJSON_Delete(rec);

  stls_host_result_free(&dh.res);
  stls_dns_result_free(dns);
  stls_sts_result_free(sts);
  free(fs.buf);
  return 0;
}
