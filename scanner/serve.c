/* `starttls-scan serve`: one libuv loop serves HTTP (http.c) over the store
 * (store.c); records, from scans or ingested, are diffed (diff.c) against
 * the domain's previous one and the changes appended to the feed. */
#include "stls/serve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "stls/cli.h"
#include "stls/diff.h"
#include "stls/domain.h"
#include "stls/http.h"
#include "stls/store.h"
#include "stls/util.h"

#ifndef STLS_VERSION
#define STLS_VERSION "dev"
#endif

#define FEED_DEFAULT_LIMIT 100
#define FEED_MAX_LIMIT 1000
#define FEED_MAX_WAIT_S 60
#define HISTORY_DEFAULT_LIMIT 20
#define HISTORY_MAX_LIMIT 1000
#define JOBS_DEFAULT_LIMIT 20
#define JOBS_MAX_LIMIT 1000
#define MAX_HOSTS_FACTS 256

/* Scan duration buckets (seconds), for the histogram. */
static const double duration_buckets[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                          60, 120};
#define N_BUCKETS (sizeof(duration_buckets) / sizeof(duration_buckets[0]))

/* A growable byte buffer for response bodies. */
typedef struct buf_s {
  char *p;
  size_t len, cap;
  int oom;
} buf_t;

static void buf_add(buf_t *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *p;
    while (cap < b->len + n + 1)
      cap *= 2;
    if (!(p = realloc(b->p, cap))) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_printf(buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void buf_printf(buf_t *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  int n;
  va_start(ap, fmt);
  n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n < sizeof(tmp)) {
    buf_add(b, tmp, (size_t)n);
    return;
  }
  {
    char *big = malloc((size_t)n + 1);
    if (!big) {
      b->oom = 1;
      return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, big, (size_t)n);
    free(big);
  }
}

typedef struct feed_wait_s feed_wait_t;
struct feed_wait_s {
  stls_http_req_t *req;
  struct serve_s *sv;
  uv_timer_t timer;
  feed_wait_t *prev, *next;
  int64_t since;
  int limit;
};

typedef struct serve_s {
  uv_loop_t *loop;
  stls_store_t *store;
  stls_http_t *http;
  stls_http_cfg_t http_cfg;
  time_t started;
  uint64_t started_ms;
  uv_signal_t sigterm, sigint;
  int stopping;
  feed_wait_t *feed_waiters;
  /* Counters for /metrics (the gauges come from the store). */
  uint64_t records_by_source[2]; /* scan, ingest */
  uint64_t ingest_rejected;
  uint64_t events_by_type[STLS_CHANGE_COUNT];
  uint64_t dur_buckets[N_BUCKETS];
  uint64_t dur_count;
  double dur_sum;
} serve_t;

enum { SRC_SCAN, SRC_INGEST };

/* --- records in: one path for scans and ingest --- */

static const cJSON *jget(const cJSON *o, const char *k) {
  return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = jget(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Is rec shaped like a domain record (schema starttls-scan/1)? NULL when
 * it is, else why not. Only the fields the service relies on are checked;
 * the published JSON Schema is the full contract. */
static const char *record_shape(const cJSON *rec, time_t *at) {
  const cJSON *hosts, *h, *policy;
  const char *d;
  char norm[STLS_DOMAIN_MAX + 1];
  if (!cJSON_IsObject(rec))
    return "not a JSON object";
  if (!jstr(rec, "schema") || strcmp(jstr(rec, "schema"), "starttls-scan/1"))
    return "schema is not starttls-scan/1";
  if (!(d = jstr(rec, "domain")) || !*d || strlen(d) > STLS_DOMAIN_MAX)
    return "domain missing";
  if (stls_time_parse_rfc3339(jstr(rec, "scanned_at"), at) != 0)
    return "scanned_at is not an RFC 3339 UTC time";
  if (!jstr(rec, "status"))
    return "status missing";
  /* A valid name must be in its normal form; an invalid-domain record
   * keeps the raw input and is stored as given. */
  if (strcmp(jstr(rec, "status"), "invalid-domain") &&
      (stls_domain_normalize(d, norm, sizeof(norm), NULL) != 0 ||
       strcmp(norm, d)))
    return "domain is not a normalised domain name";
  hosts = jget(rec, "hosts");
  if (!cJSON_IsArray(hosts))
    return "hosts is not an array";
  cJSON_ArrayForEach(h, hosts) {
    if (!cJSON_IsObject(h) || !jstr(h, "status") || !jstr(h, "ip"))
      return "a host lacks status or ip";
  }
  policy = jget(rec, "policy");
  if (policy && !cJSON_IsNull(policy) && !cJSON_IsObject(policy))
    return "policy is not an object";
  return NULL;
}

/* Host facts kept for the metrics. */
static size_t host_facts(const cJSON *rec, stls_store_host_t *out, size_t max) {
  const cJSON *h;
  size_t n = 0;
  cJSON_ArrayForEach(h, jget(rec, "hosts")) {
    const cJSON *tls = jget(h, "tls");
    const cJSON *tr = jget(jget(tls, "trust"), "trusted");
    const cJSON *chain = jget(tls, "chain");
    const cJSON *leaf = cJSON_IsArray(chain) ? cJSON_GetArrayItem(chain, 0) : NULL;
    time_t na = 0;
    if (n == max)
      break;
    out[n].status = jstr(h, "status");
    out[n].tls_version = jstr(tls, "version");
    out[n].trusted = cJSON_IsBool(tr) ? cJSON_IsTrue(tr) : -1;
    if (stls_time_parse_rfc3339(jstr(leaf, "not_after"), &na) != 0)
      na = 0;
    out[n].not_after = (int64_t)na;
    n++;
  }
  return n;
}

/* Store one record and its change events; the caller holds the
 * transaction. A record older than the domain's latest goes to history
 * without events. Returns 0 or -1. */
static int put_record(serve_t *sv, const cJSON *rec, const char *text,
                      size_t len, time_t at, int source, int64_t *id) {
  const char *domain = jstr(rec, "domain");
  stls_store_host_t hosts[MAX_HOSTS_FACTS];
  stls_store_record_t r = {0};
  char *prev_text = NULL;
  cJSON *prev = NULL;
  int64_t prev_at = 0;
  stls_changes_t ch = {0};
  int found, rc = -1;

  r.domain = domain;
  r.scanned_at = (int64_t)at;
  r.status = jstr(rec, "status");
  r.recommended = jstr(jget(rec, "policy"), "recommended");
  r.json = text;
  r.json_len = len;
  r.hosts = hosts;
  r.n_hosts = host_facts(rec, hosts, MAX_HOSTS_FACTS);

  found = stls_store_latest(sv->store, domain, &prev_text, NULL, &prev_at);
  if (found < 0)
    goto out;
  if (found && (int64_t)at < prev_at) {
    rc = stls_store_put(sv->store, &r, false, id);
    goto out;
  }
  if (found && !(prev = cJSON_Parse(prev_text)))
    goto out;
  if (stls_diff_records(prev, rec, &ch) != 0)
    goto out;
  for (size_t i = 0; i < ch.n; i++) {
    char *before = ch.v[i].before ? cJSON_PrintUnformatted(ch.v[i].before) : NULL;
    char *after = ch.v[i].after ? cJSON_PrintUnformatted(ch.v[i].after) : NULL;
    stls_store_event_t ev = {0, (int64_t)at, domain,
                             stls_change_type_name(ch.v[i].type),
                             ch.v[i].mx, ch.v[i].ip, before, after};
    int e = ((ch.v[i].before && !before) || (ch.v[i].after && !after))
                ? -1
                : stls_store_event_add(sv->store, &ev);
    cJSON_free(before);
    cJSON_free(after);
    if (e)
      goto out;
    sv->events_by_type[ch.v[i].type]++;
  }
  rc = stls_store_put(sv->store, &r, true, id);
out:
  if (rc == 0)
    sv->records_by_source[source]++;
  stls_changes_free(&ch);
  cJSON_Delete(prev);
  free(prev_text);
  return rc;
}

/* --- the change feed --- */

static void feed_line(const stls_store_event_t *ev, void *arg) {
  buf_t *b = arg;
  char cur[24], at[32];
  cJSON *o = cJSON_CreateObject();
  char *line;
  snprintf(cur, sizeof(cur), "%lld", (long long)ev->cursor);
  stls_time_rfc3339((time_t)ev->at, at, sizeof(at));
  if (!o || !cJSON_AddStringToObject(o, "cursor", cur) ||
      !cJSON_AddStringToObject(o, "at", at) ||
      !cJSON_AddStringToObject(o, "domain", ev->domain) ||
      !cJSON_AddStringToObject(o, "type", ev->type) ||
      !cJSON_AddRawToObject(o, "before", ev->before ? ev->before : "null") ||
      !cJSON_AddRawToObject(o, "after", ev->after ? ev->after : "null") ||
      (ev->mx && !cJSON_AddStringToObject(o, "mx", ev->mx)) ||
      (ev->ip && !cJSON_AddStringToObject(o, "ip", ev->ip)) ||
      !(line = cJSON_PrintUnformatted(o))) {
    b->oom = 1;
    cJSON_Delete(o);
    return;
  }
  buf_add(b, line, strlen(line));
  buf_add(b, "\n", 1);
  cJSON_free(line);
  cJSON_Delete(o);
}

/* Answer a feed request with the events after since; 0 events is a
 * valid answer. */
static void feed_answer(serve_t *sv, stls_http_req_t *req, int64_t since,
                        int limit) {
  buf_t b = {0};
  if (stls_store_events(sv->store, since, limit, feed_line, &b) < 0 || b.oom) {
    free(b.p);
    stls_http_error(req, 500, "internal", "cannot read the feed", NULL);
    return;
  }
  stls_http_respond(req, 200, "application/x-ndjson", b.p ? b.p : "", b.len,
                    NULL);
  free(b.p);
}

static void feed_wait_unlink(feed_wait_t *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    w->sv->feed_waiters = w->next;
  if (w->next)
    w->next->prev = w->prev;
  w->prev = w->next = NULL;
}

static void feed_wait_free_cb(uv_handle_t *h) { free(h->data); }

static void feed_wait_end(feed_wait_t *w, int answer) {
  serve_t *sv = w->sv;
  feed_wait_unlink(w);
  uv_timer_stop(&w->timer);
  if (answer) {
    w->req->abort_cb = NULL;
    feed_answer(sv, w->req, w->since, w->limit);
  }
  uv_close((uv_handle_t *)&w->timer, feed_wait_free_cb);
}

static void feed_wait_timeout(uv_timer_t *t) { feed_wait_end(t->data, 1); }

static void feed_wait_abort(stls_http_req_t *req, void *data) {
  (void)req;
  feed_wait_end(data, 0);
}

/* New events were committed: answer every long-poll that waits for them. */
static void feed_wake(serve_t *sv) {
  int64_t last = stls_store_last_cursor(sv->store);
  feed_wait_t *w = sv->feed_waiters, *next;
  for (; w; w = next) {
    next = w->next;
    if (last > w->since)
      feed_wait_end(w, 1);
  }
}

/* Parse a non-negative integer query parameter; def when absent, -1 when
 * malformed or above max. */
static long long query_int(stls_http_req_t *req, const char *name,
                           long long def, long long max) {
  char buf[32], *end;
  long long v;
  const char *s = stls_http_query(req, name, buf, sizeof(buf));
  if (!s)
    return def;
  v = strtoll(s, &end, 10);
  if (!*s || *end || v < 0 || v > max)
    return -1;
  return v;
}

static void h_feed(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  char cbuf[32], *end;
  const char *cs = stls_http_query(req, "since", cbuf, sizeof(cbuf));
  long long since = 0, limit, wait;
  if (cs) {
    since = strtoll(cs, &end, 10);
    if (!*cs || *end || since < 0) {
      stls_http_error(req, 400, "bad_request",
                      "since must be a cursor from this feed", NULL);
      return;
    }
  }
  limit = query_int(req, "limit", FEED_DEFAULT_LIMIT, FEED_MAX_LIMIT);
  wait = query_int(req, "wait", 0, FEED_MAX_WAIT_S);
  if (limit <= 0 || wait < 0) {
    stls_http_error(req, 400, "bad_request",
                    "limit must be 1..1000 and wait 0..60 seconds", NULL);
    return;
  }
  if (wait > 0 && stls_store_last_cursor(sv->store) <= since && !sv->stopping) {
    feed_wait_t *w = calloc(1, sizeof(*w));
    if (!w) {
      stls_http_error(req, 500, "internal", "out of memory", NULL);
      return;
    }
    w->req = req;
    w->sv = sv;
    w->since = since;
    w->limit = (int)limit;
    uv_timer_init(sv->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, feed_wait_timeout, (uint64_t)wait * 1000, 0);
    w->next = sv->feed_waiters;
    if (w->next)
      w->next->prev = w;
    sv->feed_waiters = w;
    req->abort_cb = feed_wait_abort;
    req->data = w;
    return;
  }
  feed_answer(sv, req, since, (int)limit);
}

/* --- ingest --- */

static void h_ingest(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  const char *p = req->body, *end = req->body + req->body_len;
  long line_no = 0;
  int64_t accepted = 0;
  cJSON *rejected = cJSON_CreateArray();
  cJSON *resp = NULL;
  char *out = NULL;
  int64_t before_cursor = stls_store_last_cursor(sv->store);

  if (!rejected || stls_store_begin(sv->store) != 0) {
    cJSON_Delete(rejected);
    stls_http_error(req, 500, "internal", "store unavailable", NULL);
    return;
  }
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    const char *why = NULL;
    cJSON *rec;
    time_t at = 0;
    line_no++;
    if (n && p[n - 1] == '\r')
      n--;
    /* Blank lines separate nothing; skip them silently. */
    {
      size_t k = 0;
      while (k < n && (p[k] == ' ' || p[k] == '\t'))
        k++;
      if (k == n)
        goto next;
    }
    rec = cJSON_ParseWithLength(p, n);
    if (!rec)
      why = "not valid JSON";
    else
      why = record_shape(rec, &at);
    if (!why) {
      /* Keep the line as sent: it is one line of valid JSON. */
      char *text = stls_strndup(p, n);
      if (!text || put_record(sv, rec, text, n, at, SRC_INGEST, NULL) != 0)
        why = "cannot store the record";
      else
        accepted++;
      free(text);
    }
    cJSON_Delete(rec);
    if (why) {
      cJSON *r = cJSON_CreateObject();
      sv->ingest_rejected++;
      if (r) {
        cJSON_AddNumberToObject(r, "line", (double)line_no);
        cJSON_AddStringToObject(r, "reason", why);
        cJSON_AddItemToArray(rejected, r);
      }
    }
  next:
    p = nl ? nl + 1 : end;
  }
  if (stls_store_commit(sv->store) != 0) {
    cJSON_Delete(rejected);
    stls_http_error(req, 500, "internal", "cannot commit", NULL);
    return;
  }
  if ((resp = cJSON_CreateObject())) {
    cJSON_AddNumberToObject(resp, "accepted", (double)accepted);
    cJSON_AddNumberToObject(resp, "rejected", cJSON_GetArraySize(rejected));
    cJSON_AddItemToObject(resp, "rejected_lines", rejected);
    rejected = NULL;
    out = cJSON_PrintUnformatted(resp);
  }
  cJSON_Delete(rejected);
  cJSON_Delete(resp);
  if (!out) {
    stls_http_error(req, 500, "internal", "out of memory", NULL);
  } else {
    stls_http_respond(req, 200, "application/json", out, strlen(out), NULL);
    cJSON_free(out);
  }
  if (stls_store_last_cursor(sv->store) > before_cursor)
    feed_wake(sv);
}

/* --- domains --- */

/* The domain in the path, normalised into out; answers 400 and returns -1
 * when it is not a domain name. */
static int path_domain(stls_http_req_t *req, char *out, size_t len) {
  const char *why = NULL;
  if (stls_domain_normalize(req->params[0], out, len, &why) != 0) {
    char msg[160];
    snprintf(msg, sizeof(msg), "not a domain name: %s", why ? why : "invalid");
    stls_http_error(req, 400, "bad_domain", msg, NULL);
    return -1;
  }
  return 0;
}

static void h_domain(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  char d[STLS_DOMAIN_MAX + 1], mbuf[32];
  char *json = NULL;
  size_t len = 0;
  int64_t at = 0;
  int found;
  if (path_domain(req, d, sizeof(d)) != 0)
    return;
  if (stls_http_query(req, "max_age", mbuf, sizeof(mbuf))) {
    long long max_age = query_int(req, "max_age", -1, 100LL * 365 * 86400);
    if (max_age < 0) {
      stls_http_error(req, 400, "bad_request",
                      "max_age must be a number of seconds", NULL);
      return;
    }
    found = stls_store_latest(sv->store, d, NULL, NULL, &at);
    if (found < 0 || !found || (long long)(time(NULL) - at) > max_age) {
      stls_http_error(req, 503, "scanning_unavailable",
                      "this build of the service cannot scan yet",
                      "Retry-After: 60\r\n");
      return;
    }
  }
  found = stls_store_latest(sv->store, d, &json, &len, &at);
  if (found < 0) {
    stls_http_error(req, 500, "internal", "store error", NULL);
    return;
  }
  if (!found) {
    stls_http_error(req, 404, "not_found", "domain never scanned", NULL);
    return;
  }
  stls_http_respond(req, 200, "application/json", json, len, NULL);
  free(json);
}

typedef struct hist_s {
  cJSON *arr;
  int oom;
} hist_t;

static void hist_cb(const char *json, size_t len, void *arg) {
  hist_t *h = arg;
  cJSON *r = cJSON_ParseWithLength(json, len);
  if (!r || !cJSON_AddItemToArray(h->arr, r)) {
    cJSON_Delete(r);
    h->oom = 1;
  }
}

static void h_history(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  char d[STLS_DOMAIN_MAX + 1];
  long long limit;
  hist_t h = {0};
  cJSON *o;
  char *out;
  int found;
  if (path_domain(req, d, sizeof(d)) != 0)
    return;
  limit = query_int(req, "limit", HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT);
  if (limit <= 0) {
    stls_http_error(req, 400, "bad_request", "limit must be 1..1000", NULL);
    return;
  }
  found = stls_store_latest(sv->store, d, NULL, NULL, NULL);
  if (found <= 0) {
    stls_http_error(req, found < 0 ? 500 : 404,
                    found < 0 ? "internal" : "not_found",
                    found < 0 ? "store error" : "domain never scanned", NULL);
    return;
  }
  o = cJSON_CreateObject();
  h.arr = cJSON_CreateArray();
  if (!o || !h.arr || !cJSON_AddStringToObject(o, "domain", d) ||
      !cJSON_AddItemToObject(o, "records", h.arr)) {
    cJSON_Delete(o);
    cJSON_Delete(h.arr);
    stls_http_error(req, 500, "internal", "out of memory", NULL);
    return;
  }
  if (stls_store_history(sv->store, d, (int)limit, hist_cb, &h) < 0 || h.oom ||
      !(out = cJSON_PrintUnformatted(o))) {
    cJSON_Delete(o);
    stls_http_error(req, 500, "internal", "cannot read history", NULL);
    return;
  }
  cJSON_Delete(o);
  stls_http_respond(req, 200, "application/json", out, strlen(out), NULL);
  cJSON_free(out);
}

/* --- scans (need the engine) --- */

static void h_scans_unavailable(stls_http_req_t *req, void *arg) {
  (void)arg;
  stls_http_error(req, 503, "scanning_unavailable",
                  "this build of the service cannot scan yet",
                  "Retry-After: 60\r\n");
}

/* --- health, stats, metrics, page --- */

static void h_health(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  char body[512];
  int n = snprintf(body, sizeof(body),
                   "{\"status\":\"ok\",\"version\":\"%s\",\"uptime_s\":%llu,"
                   "\"domains\":%lld,\"queue\":{\"queued\":0,\"running\":0}}\n",
                   STLS_VERSION,
                   (unsigned long long)((uv_now(sv->loop) - sv->started_ms) /
                                        1000),
                   (long long)stls_store_count_domains(sv->store));
  stls_http_respond(req, 200, "application/json", body, (size_t)n, NULL);
}

static void agg_json_cb(const char *key, int64_t n, void *arg) {
  cJSON_AddNumberToObject(arg, key ? key : "none", (double)n);
}

/* Totals as JSON: what the page shows and the dashboard wants at once. */
static cJSON *stats_json(serve_t *sv) {
  cJSON *o = cJSON_CreateObject(), *x;
  static const struct {
    const char *key;
    stls_store_agg_t agg;
  } aggs[] = {{"recommended", STLS_STORE_AGG_RECOMMENDED},
              {"domain_status", STLS_STORE_AGG_DOMAIN_STATUS},
              {"host_status", STLS_STORE_AGG_HOST_STATUS},
              {"tls_versions", STLS_STORE_AGG_TLS_VERSION},
              {"host_trusted", STLS_STORE_AGG_HOST_TRUSTED}};
  time_t now = time(NULL);
  if (!o)
    return NULL;
  cJSON_AddNumberToObject(o, "domains",
                          (double)stls_store_count_domains(sv->store));
  for (size_t i = 0; i < sizeof(aggs) / sizeof(aggs[0]); i++) {
    if (!(x = cJSON_AddObjectToObject(o, aggs[i].key)) ||
        stls_store_aggregate(sv->store, aggs[i].agg, agg_json_cb, x) != 0) {
      cJSON_Delete(o);
      return NULL;
    }
  }
  if ((x = cJSON_AddObjectToObject(o, "certificates_expiring"))) {
    cJSON_AddNumberToObject(
        x, "14d", (double)stls_store_count_expiring(sv->store, now + 14 * 86400));
    cJSON_AddNumberToObject(
        x, "30d", (double)stls_store_count_expiring(sv->store, now + 30 * 86400));
  }
  {
    char cur[24];
    snprintf(cur, sizeof(cur), "%lld",
             (long long)stls_store_last_cursor(sv->store));
    cJSON_AddStringToObject(o, "last_cursor", cur);
  }
  return o;
}

static void h_stats(stls_http_req_t *req, void *arg) {
  cJSON *o = stats_json(arg);
  char *out = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  if (!out) {
    stls_http_error(req, 500, "internal", "cannot compute totals", NULL);
    return;
  }
  stls_http_respond(req, 200, "application/json", out, strlen(out), NULL);
  cJSON_free(out);
}

typedef struct metric_ctx_s {
  buf_t *b;
  const char *name, *label;
} metric_ctx_t;

/* Label values come from the store's fixed vocabularies (statuses,
 * levels, versions); escape them anyway. */
static void label_escape(buf_t *b, const char *v) {
  for (; *v; v++) {
    if (*v == '"' || *v == '\\')
      buf_add(b, "\\", 1);
    if (*v == '\n') {
      buf_add(b, "\\n", 2);
      continue;
    }
    buf_add(b, v, 1);
  }
}

static void metric_agg_cb(const char *key, int64_t n, void *arg) {
  metric_ctx_t *m = arg;
  buf_printf(m->b, "%s{%s=\"", m->name, m->label);
  label_escape(m->b, key ? key : "none");
  buf_printf(m->b, "\"} %lld\n", (long long)n);
}

/* Keep the count of the "false" group. */
static void count_false(const char *key, int64_t n, void *arg) {
  if (key && !strcmp(key, "false"))
    *(int64_t *)arg = n;
}

static void metric_head(buf_t *b, const char *name, const char *type,
                        const char *help) {
  buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void h_metrics(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  buf_t b = {0};
  metric_ctx_t m = {&b, NULL, NULL};
  const stls_http_stats_t *hs = stls_http_stats(sv->http);
  time_t now = time(NULL);
  static const struct {
    const char *name, *label, *help;
    stls_store_agg_t agg;
  } gauges[] = {
      {"starttls_scan_domains", "recommended",
       "Known domains by the recommended policy level of their latest record",
       STLS_STORE_AGG_RECOMMENDED},
      {"starttls_scan_domains_by_status", "status",
       "Known domains by the status of their latest record",
       STLS_STORE_AGG_DOMAIN_STATUS},
      {"starttls_scan_probes", "status",
       "Probed addresses in the latest records, by host status",
       STLS_STORE_AGG_HOST_STATUS},
      {"starttls_scan_tls_versions", "version",
       "Addresses in the latest records by negotiated TLS version",
       STLS_STORE_AGG_TLS_VERSION},
      {"starttls_scan_tls_trusted", "trusted",
       "Addresses with TLS in the latest records, by chain trust",
       STLS_STORE_AGG_HOST_TRUSTED},
  };
  for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
    metric_head(&b, gauges[i].name, "gauge", gauges[i].help);
    m.name = gauges[i].name;
    m.label = gauges[i].label;
    if (stls_store_aggregate(sv->store, gauges[i].agg, metric_agg_cb, &m)) {
      free(b.p);
      stls_http_error(req, 500, "internal", "store error", NULL);
      return;
    }
  }
  metric_head(&b, "starttls_scan_trust_failures", "gauge",
              "Addresses in the latest records whose chain is not trusted");
  {
    int64_t untrusted = 0;
    stls_store_aggregate(sv->store, STLS_STORE_AGG_HOST_TRUSTED, count_false,
                         &untrusted);
    buf_printf(&b, "starttls_scan_trust_failures %lld\n", (long long)untrusted);
  }
  metric_head(&b, "starttls_scan_certificates_expiring", "gauge",
              "Domains whose latest record has a leaf certificate that ends "
              "within the window");
  buf_printf(&b, "starttls_scan_certificates_expiring{within=\"14d\"} %lld\n",
             (long long)stls_store_count_expiring(sv->store, now + 14 * 86400));
  buf_printf(&b, "starttls_scan_certificates_expiring{within=\"30d\"} %lld\n",
             (long long)stls_store_count_expiring(sv->store, now + 30 * 86400));
  metric_head(&b, "starttls_scan_scans", "gauge",
              "Domains waiting for a scan (queued) and being scanned");
  buf_printf(&b, "starttls_scan_scans{state=\"queued\"} %d\n", 0);
  buf_printf(&b, "starttls_scan_scans{state=\"running\"} %d\n", 0);
  metric_head(&b, "starttls_scan_scan_duration_seconds", "histogram",
              "Time to scan one domain");
  for (size_t i = 0; i < N_BUCKETS; i++)
    buf_printf(&b, "starttls_scan_scan_duration_seconds_bucket{le=\"%g\"} %llu\n",
               duration_buckets[i], (unsigned long long)sv->dur_buckets[i]);
  buf_printf(&b, "starttls_scan_scan_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
             (unsigned long long)sv->dur_count);
  buf_printf(&b, "starttls_scan_scan_duration_seconds_sum %.3f\n", sv->dur_sum);
  buf_printf(&b, "starttls_scan_scan_duration_seconds_count %llu\n",
             (unsigned long long)sv->dur_count);
  metric_head(&b, "starttls_scan_records_total", "counter",
              "Records stored since start, by source");
  buf_printf(&b, "starttls_scan_records_total{source=\"scan\"} %llu\n",
             (unsigned long long)sv->records_by_source[SRC_SCAN]);
  buf_printf(&b, "starttls_scan_records_total{source=\"ingest\"} %llu\n",
             (unsigned long long)sv->records_by_source[SRC_INGEST]);
  metric_head(&b, "starttls_scan_ingest_rejected_total", "counter",
              "Ingested lines rejected since start");
  buf_printf(&b, "starttls_scan_ingest_rejected_total %llu\n",
             (unsigned long long)sv->ingest_rejected);
  metric_head(&b, "starttls_scan_events_total", "counter",
              "Change events appended to the feed since start, by type");
  for (int t = 0; t < STLS_CHANGE_COUNT; t++)
    buf_printf(&b, "starttls_scan_events_total{type=\"%s\"} %llu\n",
               stls_change_type_name(t),
               (unsigned long long)sv->events_by_type[t]);
  metric_head(&b, "starttls_scan_http_requests_total", "counter",
              "HTTP responses sent since start, by status code");
  for (int s = 100; s < 600; s++)
    if (hs->by_status[s])
      buf_printf(&b, "starttls_scan_http_requests_total{code=\"%d\"} %llu\n", s,
                 (unsigned long long)hs->by_status[s]);
  metric_head(&b, "starttls_scan_http_connections", "gauge",
              "HTTP connections open");
  buf_printf(&b, "starttls_scan_http_connections %u\n", hs->conns_open);
  metric_head(&b, "starttls_scan_http_connections_refused_total", "counter",
              "HTTP connections closed at once for being over a cap");
  buf_printf(&b, "starttls_scan_http_connections_refused_total %llu\n",
             (unsigned long long)hs->conns_refused);
  metric_head(&b, "starttls_scan_uptime_seconds", "gauge",
              "Seconds since the service started");
  buf_printf(&b, "starttls_scan_uptime_seconds %llu\n",
             (unsigned long long)((uv_now(sv->loop) - sv->started_ms) / 1000));
  if (b.oom) {
    free(b.p);
    stls_http_error(req, 500, "internal", "out of memory", NULL);
    return;
  }
  stls_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p,
                    b.len, NULL);
  free(b.p);
}

#include "serve_page.h"

static void h_page(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  buf_t b = {0};
  const char *mark = strstr(serve_page_html, "@DOMAINS_TOTAL@");
  long long n = (long long)stls_store_count_domains(sv->store);
  /* The total is in the page as served, so it shows without scripts; the
   * script refreshes it and draws the rest. */
  buf_add(&b, serve_page_html, (size_t)(mark - serve_page_html));
  buf_printf(&b, "%lld", n < 0 ? 0 : n);
  buf_add(&b, mark + 15, strlen(mark + 15));
  if (b.oom) {
    free(b.p);
    stls_http_error(req, 500, "internal", "out of memory", NULL);
    return;
  }
  stls_http_respond(req, 200, "text/html; charset=utf-8", b.p, b.len, NULL);
  free(b.p);
}

static const stls_http_route_t routes[] = {
    {"GET", "/", h_page},
    {"GET", "/v1/health", h_health},
    {"GET", "/v1/stats", h_stats},
    {"GET", "/metrics", h_metrics},
    {"POST", "/v1/ingest", h_ingest},
    {"GET", "/v1/feed", h_feed},
    {"GET", "/v1/domains/{}", h_domain},
    {"GET", "/v1/domains/{}/history", h_history},
    {"POST", "/v1/scans", h_scans_unavailable},
    {"GET", "/v1/scans", h_scans_unavailable},
    {"GET", "/v1/scans/{}", h_scans_unavailable},
    {"DELETE", "/v1/scans/{}", h_scans_unavailable},
    {"GET", "/v1/scans/{}/results", h_scans_unavailable},
};

/* --- the command --- */

const char stls_serve_usage[] =
    "usage: starttls-scan serve --db FILE [--listen ADDR:PORT] [OPTIONS]\n"
    "\n"
    "Runs the service: an HTTP API over a store of every record (SQLite),\n"
    "a feed of what changed, Prometheus metrics at /metrics and a status\n"
    "page at /. See the README section 'Service mode' and docs/openapi.yaml.\n"
    "\n"
    "  --db FILE               the store (created when missing; WAL mode)\n"
    "  --listen ADDR:PORT      where to listen (default 127.0.0.1:8025)\n"
    "  --token-file FILE       POST and DELETE need 'Authorization: Bearer\n"
    "                          TOKEN' with the first line of FILE\n"
    "  --max-body BYTES        largest request body (default 1048576)\n"
    "  --max-conns N           HTTP connections at once (default 512)\n"
    "  --max-conns-per-ip N    ... from one client address (default 64)\n"
    "  --post-rate N           POST/DELETE per second and client (default 20,\n"
    "                          bursts of 5 seconds' worth; 0 = no limit)\n"
    "  --read-timeout SEC      time to send one request (default 10)\n"
    "\n"
    "SIGTERM or SIGINT stops it: it stops listening, answers what it can\n"
    "and closes the store.\n";

static int usage_err(const char *fmt, const char *arg) {
  fprintf(stderr, "starttls-scan serve: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (try 'starttls-scan help serve')\n");
  return 2;
}

static int parse_ulong(const char *s, unsigned long lo, unsigned long hi,
                       unsigned long *out) {
  char *end;
  unsigned long v;
  if (!s || !*s || *s == '-')
    return -1;
  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* The first line of path, without its newline, into a new string. */
static char *read_token(const char *path) {
  FILE *f = fopen(path, "r");
  char line[1024];
  size_t n;
  if (!f)
    return NULL;
  if (!fgets(line, sizeof(line), f)) {
    fclose(f);
    return NULL;
  }
  fclose(f);
  n = strcspn(line, "\r\n");
  line[n] = '\0';
  return n ? stls_strdup(line) : NULL;
}

static void on_walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  serve_t *sv = s->data;
  feed_wait_t *w, *next;
  (void)signum;
  if (sv->stopping)
    return;
  sv->stopping = 1;
  fprintf(stderr, "starttls-scan serve: stopping\n");
  /* Long polls get what there is, then everything closes. */
  for (w = sv->feed_waiters; w; w = next) {
    next = w->next;
    feed_wait_end(w, 1);
  }
  stls_http_close(sv->http);
  sv->http = NULL;
  uv_signal_stop(&sv->sigterm);
  uv_signal_stop(&sv->sigint);
  uv_close((uv_handle_t *)&sv->sigterm, NULL);
  uv_close((uv_handle_t *)&sv->sigint, NULL);
}

int stls_cmd_serve(int argc, char **argv) {
  enum {
    OPT_DB = 256, OPT_LISTEN, OPT_TOKEN, OPT_MAXBODY, OPT_MAXCONNS,
    OPT_MAXCONNSIP, OPT_POSTRATE, OPT_READTMO
  };
  static const struct option longopts[] = {
      {"db", required_argument, NULL, OPT_DB},
      {"listen", required_argument, NULL, OPT_LISTEN},
      {"token-file", required_argument, NULL, OPT_TOKEN},
      {"max-body", required_argument, NULL, OPT_MAXBODY},
      {"max-conns", required_argument, NULL, OPT_MAXCONNS},
      {"max-conns-per-ip", required_argument, NULL, OPT_MAXCONNSIP},
      {"post-rate", required_argument, NULL, OPT_POSTRATE},
      {"read-timeout", required_argument, NULL, OPT_READTMO},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  serve_t sv;
  uv_loop_t loop;
  const char *db = NULL, *token_file = NULL;
  char *token = NULL;
  char err[512];
  unsigned long v;
  int c, rc = 1;
  stls_cli_t cli = {"serve", "h", longopts, 0};

  memset(&sv, 0, sizeof(sv));
  stls_http_cfg_defaults(&sv.http_cfg);
  /* Options only in full: --max-conns is a prefix of --max-conns-per-ip. */
  while ((c = stls_cli_getopt(&cli, argc, argv)) != -1) {
    switch (c) {
    case STLS_CLI_VERSION: stls_cli_print_version(stdout); return 0;
    case STLS_CLI_USAGE: return 2;
    case OPT_DB: db = optarg; break;
    case OPT_LISTEN: sv.http_cfg.listen = optarg; break;
    case OPT_TOKEN: token_file = optarg; break;
    case OPT_MAXBODY:
      if (parse_ulong(optarg, 1024, 1UL << 30, &v))
        return usage_err("bad --max-body '%s' (1024..1073741824)", optarg);
      sv.http_cfg.max_body = v;
      break;
    case OPT_MAXCONNS:
      if (parse_ulong(optarg, 1, 100000, &v))
        return usage_err("bad --max-conns '%s' (1..100000)", optarg);
      sv.http_cfg.max_conns = (unsigned)v;
      break;
    case OPT_MAXCONNSIP:
      if (parse_ulong(optarg, 1, 100000, &v))
        return usage_err("bad --max-conns-per-ip '%s' (1..100000)", optarg);
      sv.http_cfg.max_conns_per_ip = (unsigned)v;
      break;
    case OPT_POSTRATE: {
      char *end;
      double r = strtod(optarg, &end);
      if (!*optarg || *end || r < 0 || r > 1e6)
        return usage_err("bad --post-rate '%s' (per second, 0 = no limit)",
                         optarg);
      /* Bursts of five seconds' worth, at least one request. */
      sv.http_cfg.post_rate = r;
      sv.http_cfg.post_burst = r * 5 < 1 ? 1 : r * 5;
      break;
    }
    case OPT_READTMO: {
      int64_t ms = stls_parse_seconds_ms(optarg);
      if (ms <= 0)
        return usage_err("bad --read-timeout '%s' (seconds)", optarg);
      sv.http_cfg.read_timeout_ms = (uint64_t)ms;
      break;
    }
    case 'h': fputs(stls_serve_usage, stdout); return 0;
    default:
      return usage_err("unknown option or missing argument: '%s'",
                       argv[optind - 1]);
    }
  }
  if (optind < argc)
    return usage_err("unexpected argument '%s'", argv[optind]);
  if (!db)
    return usage_err("%s", "--db FILE is required");
  if (token_file) {
    if (!(token = read_token(token_file))) {
      fprintf(stderr, "starttls-scan serve: cannot read a token from %s\n",
              token_file);
      return 2;
    }
    sv.http_cfg.token = token;
  }

  uv_loop_init(&loop);
  sv.loop = &loop;
  sv.started = time(NULL);
  sv.started_ms = uv_now(&loop);
  if (stls_store_open(&sv.store, db, err, sizeof(err)) != 0) {
    fprintf(stderr, "starttls-scan serve: store: %s\n", err);
    goto out;
  }
  if (stls_http_new(&sv.http, &loop, &sv.http_cfg, routes,
                    sizeof(routes) / sizeof(routes[0]), &sv, err,
                    sizeof(err)) != 0) {
    fprintf(stderr, "starttls-scan serve: %s\n", err);
    goto out;
  }
  uv_signal_init(&loop, &sv.sigterm);
  uv_signal_init(&loop, &sv.sigint);
  sv.sigterm.data = sv.sigint.data = &sv;
  uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
  uv_signal_start(&sv.sigint, on_signal, SIGINT);
  fprintf(stderr, "starttls-scan serve: listening on %s (port %d), store %s\n",
          sv.http_cfg.listen, stls_http_port(sv.http), db);
  fflush(stderr);
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = 0;
out:
  if (sv.http)
    stls_http_close(sv.http);
  uv_walk(&loop, on_walk_close, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  stls_store_close(sv.store);
  free(token);
  return rc;
}
