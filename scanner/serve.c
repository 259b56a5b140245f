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
#include <unistd.h>
#include <uv.h>

#include "frontend.h"
#include "stls/cli.h"
#include "stls/diff.h"
#include "stls/domain.h"
#include "stls/engine.h"
#include "stls/http.h"
#include "stls/store.h"
#include "stls/util.h"
#include "stls/writer.h"

#define FEED_DEFAULT_LIMIT 100
#define FEED_MAX_LIMIT 1000
#define FEED_MAX_WAIT_S 60
#define HISTORY_DEFAULT_LIMIT 20
#define HISTORY_MAX_LIMIT 1000
#define JOBS_DEFAULT_LIMIT 20
#define JOBS_MAX_LIMIT 1000
#define MAX_HOSTS_FACTS 256
#define SCAN_MAX_DOMAINS 10000 /* per POST /v1/scans */
#define DEFAULT_QUEUE 50000    /* domains waiting in the service */
#define QUEUE_RETRY_AFTER "Retry-After: 30\r\n"

/* Scan duration buckets (seconds), for the histogram. */
static const double duration_buckets[] = {0.1, 0.25, 0.5, 1,  2.5,
                                          5,   10,   30,  60, 120};
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

typedef struct job_s job_t;
typedef struct item_s item_t;
typedef struct dwait_s dwait_t;

/* A scan job while it has domains not yet delivered. */
struct job_s {
  char id[40];
  int64_t total, done;
  size_t pending; /* items queued here or in the engine */
  int cancelled, running;
};

enum { ITEM_JOB, ITEM_DOMAIN, ITEM_TARGET };

/* One domain to scan: queued here until the engine has room (so a job can
 * be cancelled, and a full queue is a 503, not a blocked loop). */
struct item_s {
  item_t *next;
  int kind;
  job_t *job;
  size_t idx;
  char domain[];
};

/* A GET /v1/domains/{d}?max_age= waiting for its scan. */
struct dwait_s {
  stls_http_req_t *req;
  struct serve_s *sv;
  dwait_t *next, *prev;
  char domain[STLS_DOMAIN_MAX + 1];
};

typedef struct serve_s {
  uv_loop_t *loop;
  stls_engine_t *engine;
  stls_engine_cfg_t ecfg;
  item_t *q_head, *q_tail;
  size_t q_len, q_cap;
  size_t in_engine;
  stls_strmap_t *jobs;     /* id -> job_t, while pending */
  dwait_t *dwaits;         /* all waiting domain requests */
  stls_strmap_t *scanning; /* domain -> (void *)1: an ad-hoc scan queued */
  /* --targets FILE --every DURATION */
  char **targets;
  size_t n_targets, targets_pending;
  uint64_t every_ms;
  uv_timer_t targets_timer;
  int targets_timer_on;
  uint64_t rounds, rounds_skipped;
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

static void feed_wake(serve_t *sv);
static int put_record(serve_t *sv, const cJSON *rec, const char *text,
                      size_t len, time_t at, int source, int64_t *id);

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
    const cJSON *leaf =
        cJSON_IsArray(chain) ? cJSON_GetArrayItem(chain, 0) : NULL;
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
    char *before =
        ch.v[i].before ? cJSON_PrintUnformatted(ch.v[i].before) : NULL;
    char *after = ch.v[i].after ? cJSON_PrintUnformatted(ch.v[i].after) : NULL;
    stls_store_event_t ev = {
        0,          (int64_t)at, domain, stls_change_type_name(ch.v[i].type),
        ch.v[i].mx, ch.v[i].ip,  before, after};
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

/* NULL when the n bytes at p can be stored and served as a record line:
 * valid UTF-8, no control byte (JSON allows none in a string and we allow
 * none but a tab between tokens), no \u0000 escape (the record's C strings
 * would end there while the stored line goes on). cJSON checks none of
 * these, and the line is served byte for byte as it came. Else why not. */
static const char *line_text_check(const unsigned char *p, size_t n) {
  int in_string = 0;
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c >= 0x80) {
      /* stls_utf8_seq_len may read four bytes: give it a padded copy. */
      unsigned char seq[4] = {0};
      size_t have = n - i < 4 ? n - i : 4, len;
      memcpy(seq, p + i, have);
      if (!(len = stls_utf8_seq_len(seq)) || len > have)
        return "not valid UTF-8";
      i += len;
      continue;
    }
    if (c < 0x20 && (in_string || c != '\t'))
      return "a control byte (JSON allows none here)";
    if (in_string && c == '\\') {
      if (i + 5 < n && !memcmp(p + i + 1, "u0000", 5))
        return "a \\u0000 escape in a string";
      i += 2; /* the escaped byte; cJSON judges the escape itself */
      continue;
    }
    if (c == '"')
      in_string = !in_string;
    i++;
  }
  return NULL;
}

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
    rec = NULL;
    if (!(why = line_text_check((const unsigned char *)p, n))) {
      const char *stop = NULL;
      rec = cJSON_ParseWithLengthOpts(p, n, &stop, 0);
      if (!rec)
        why = "not valid JSON";
      else {
        while (stop < p + n && (*stop == ' ' || *stop == '\t'))
          stop++;
        why = stop < p + n ? "bytes after the JSON value"
                           : record_shape(rec, &at);
      }
    }
    if (!why) {
      /* Keep the line as sent (one line of valid JSON), from the body. */
      if (put_record(sv, rec, p, n, at, SRC_INGEST, NULL) != 0)
        why = "cannot store the record";
      else
        accepted++;
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

/* --- scanning: the service's queue in front of the engine --- */

static void random_id(char *buf, size_t len) {
  unsigned char r[8];
  if (uv_random(NULL, NULL, r, sizeof(r), 0, NULL) != 0) {
    uint64_t x = stls_now_ms() ^ (uint64_t)rand();
    memcpy(r, &x, sizeof(r));
  }
  stls_hex(r, sizeof(r), buf);
  (void)len;
}

static item_t *item_new(int kind, job_t *job, size_t idx, const char *domain) {
  size_t n = strlen(domain);
  item_t *it = malloc(sizeof(*it) + n + 1);
  if (!it)
    return NULL;
  it->next = NULL;
  it->kind = kind;
  it->job = job;
  it->idx = idx;
  memcpy(it->domain, domain, n + 1);
  if (job)
    job->pending++;
  return it;
}

static void enqueue(serve_t *sv, item_t *it, int front) {
  if (front) {
    it->next = sv->q_head;
    sv->q_head = it;
    if (!sv->q_tail)
      sv->q_tail = it;
  } else {
    if (sv->q_tail)
      sv->q_tail->next = it;
    else
      sv->q_head = it;
    sv->q_tail = it;
  }
  sv->q_len++;
}

/* An item is finished (delivered, dropped or cancelled): release it, and
 * its job once nothing of it is pending. */
static void item_done(serve_t *sv, item_t *it) {
  job_t *j = it->job;
  if (it->kind == ITEM_TARGET && sv->targets_pending)
    sv->targets_pending--;
  if (it->kind == ITEM_DOMAIN)
    stls_strmap_del(sv->scanning, it->domain);
  if (j && --j->pending == 0) {
    stls_strmap_del(sv->jobs, j->id);
    free(j);
  }
  free(it);
}

/* Hand queued domains to the engine, no more at once than it probes at
 * once: the rest wait here, where a cancelled job can drop them. */
static void pump(serve_t *sv) {
  size_t room = sv->ecfg.limits.concurrency ? sv->ecfg.limits.concurrency : 1;
  while (sv->engine && !sv->stopping && sv->q_head && sv->in_engine < room) {
    item_t *it = sv->q_head;
    int rc;
    if (it->job && it->job->cancelled) {
      sv->q_head = it->next;
      if (!sv->q_head)
        sv->q_tail = NULL;
      sv->q_len--;
      item_done(sv, it);
      continue;
    }
    rc = stls_engine_submit(sv->engine, it->domain, it);
    if (rc != 0)
      break; /* UV_EAGAIN: the engine's queue is full; a record frees room */
    sv->q_head = it->next;
    if (!sv->q_head)
      sv->q_tail = NULL;
    sv->q_len--;
    sv->in_engine++;
    if (it->job && !it->job->running) {
      it->job->running = 1;
      stls_store_job_state(sv->store, it->job->id, "running", 0);
    }
  }
}

static void dwait_unlink(dwait_t *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    w->sv->dwaits = w->next;
  if (w->next)
    w->next->prev = w->prev;
}

static void dwait_abort(stls_http_req_t *req, void *data) {
  dwait_t *w = data;
  (void)req;
  dwait_unlink(w);
  free(w);
}

/* The record of domain was stored: answer everyone waiting for it. */
static void domain_wake(serve_t *sv, const char *domain) {
  dwait_t *w = sv->dwaits, *next;
  for (; w; w = next) {
    char *json = NULL;
    size_t len = 0;
    next = w->next;
    if (strcmp(w->domain, domain))
      continue;
    dwait_unlink(w);
    w->req->abort_cb = NULL;
    if (stls_store_latest(sv->store, domain, &json, &len, NULL) == 1)
      stls_http_respond(w->req, 200, "application/json", json, len, NULL);
    else
      stls_http_error(w->req, 500, "internal", "the scan left no record", NULL);
    free(json);
    free(w);
  }
}

/* GET /v1/domains/{d}?max_age= needs a scan: wait for it, sharing one scan
 * between every request for the domain. */
static void domain_wait(serve_t *sv, stls_http_req_t *req, const char *d) {
  dwait_t *w;
  if (!sv->engine || sv->stopping) {
    stls_http_error(req, 503, "scanning_unavailable", "the service is stopping",
                    QUEUE_RETRY_AFTER);
    return;
  }
  if (!stls_strmap_get(sv->scanning, d)) {
    item_t *it;
    if (sv->q_len >= sv->q_cap) {
      stls_http_error(req, 503, "queue_full", "the scan queue is full",
                      QUEUE_RETRY_AFTER);
      return;
    }
    if (!(it = item_new(ITEM_DOMAIN, NULL, 0, d)) ||
        stls_strmap_put(sv->scanning, d, (void *)1) != 0) {
      free(it);
      stls_http_error(req, 500, "internal", "out of memory", NULL);
      return;
    }
    enqueue(sv, it, 1); /* someone is waiting: ahead of batch jobs */
  }
  if (!(w = calloc(1, sizeof(*w)))) {
    stls_http_error(req, 500, "internal", "out of memory", NULL);
    return;
  }
  w->req = req;
  w->sv = sv;
  stls_strlcpy(w->domain, d, sizeof(w->domain));
  w->next = sv->dwaits;
  if (w->next)
    w->next->prev = w;
  sv->dwaits = w;
  req->abort_cb = dwait_abort;
  req->data = w;
  pump(sv);
}

static void observe_duration(serve_t *sv, int64_t ms) {
  double s = (double)ms / 1000.0;
  for (size_t i = 0; i < N_BUCKETS; i++)
    if (s <= duration_buckets[i])
      sv->dur_buckets[i]++;
  sv->dur_count++;
  sv->dur_sum += s;
}

static void maybe_free_engine(serve_t *sv);

/* A finished record from the engine: store it, diff it, account for it. */
static void engine_record_cb(stls_engine_t *e, const stls_domain_record_t *rec,
                             void *tag, void *arg) {
  serve_t *sv = arg;
  item_t *it = tag;
  cJSON *j = stls_json_domain(rec);
  char *text = j ? cJSON_PrintUnformatted(j) : NULL;
  int64_t id = 0, before = stls_store_last_cursor(sv->store);
  (void)e;
  if (sv->in_engine)
    sv->in_engine--;
  observe_duration(sv, rec->duration_ms);
  if (!text || stls_store_begin(sv->store) != 0) {
    fprintf(stderr, "starttls-scan serve: cannot store the record of %s\n",
            rec->domain);
  } else {
    int rc =
        put_record(sv, j, text, strlen(text), rec->scanned_at, SRC_SCAN, &id);
    job_t *job = it ? it->job : NULL;
    if (rc == 0 && job && !job->cancelled) {
      rc = stls_store_job_item_done(sv->store, job->id, it->idx, id);
      if (rc == 0 && ++job->done >= job->total)
        rc = stls_store_job_state(sv->store, job->id, "done", time(NULL));
    }
    if (rc == 0)
      rc = stls_store_commit(sv->store);
    else
      stls_store_rollback(sv->store);
    if (rc != 0)
      fprintf(stderr,
              "starttls-scan serve: cannot store the record of %s: %s\n",
              rec->domain, stls_store_errmsg(sv->store));
  }
  cJSON_free(text);
  cJSON_Delete(j);
  {
    /* Waiters know the name as they asked for it, which is the record's
     * name once normalised. */
    char d[STLS_DOMAIN_MAX + 1] = "";
    if (it) {
      stls_strlcpy(d, it->domain, sizeof(d));
      item_done(sv, it);
      domain_wake(sv, d);
    }
    if (strcmp(rec->domain, d))
      domain_wake(sv, rec->domain);
  }
  if (stls_store_last_cursor(sv->store) > before)
    feed_wake(sv);
  pump(sv);
  maybe_free_engine(sv);
}

static void engine_drop_cb(void *tag, void *arg) {
  serve_t *sv = arg;
  if (sv->in_engine)
    sv->in_engine--;
  if (tag)
    item_done(sv, tag);
}

static void maybe_free_engine(serve_t *sv) {
  if (sv->stopping && sv->engine && stls_engine_pending(sv->engine) == 0) {
    stls_engine_free(sv->engine);
    sv->engine = NULL;
  }
}

/* The JSON of a job, as the API shows it. */
static cJSON *job_json(const stls_store_job_t *j) {
  cJSON *o = cJSON_CreateObject();
  char t[32];
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "id", j->id);
  cJSON_AddStringToObject(o, "state", j->state);
  cJSON_AddNumberToObject(o, "total", (double)j->total);
  cJSON_AddNumberToObject(o, "done", (double)j->done);
  stls_time_rfc3339((time_t)j->created_at, t, sizeof(t));
  cJSON_AddStringToObject(o, "created_at", t);
  if (j->finished_at) {
    stls_time_rfc3339((time_t)j->finished_at, t, sizeof(t));
    cJSON_AddStringToObject(o, "finished_at", t);
  } else {
    cJSON_AddNullToObject(o, "finished_at");
  }
  return o;
}

static void respond_json(stls_http_req_t *req, int status, cJSON *o) {
  char *out = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  if (!out) {
    stls_http_error(req, 500, "internal", "out of memory", NULL);
    return;
  }
  stls_http_respond(req, status, "application/json", out, strlen(out), NULL);
  cJSON_free(out);
}

static void h_scan_post(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  cJSON *body = cJSON_ParseWithLength(req->body, req->body_len);
  const cJSON *list = jget(body, "domains"), *x;
  char **names = NULL;
  size_t n = 0, i = 0;
  job_t *job = NULL;
  char msg[160];
  if (!cJSON_IsArray(list) || (n = (size_t)cJSON_GetArraySize(list)) == 0 ||
      n > SCAN_MAX_DOMAINS) {
    cJSON_Delete(body);
    stls_http_error(req, 400, "bad_request",
                    "want {\"domains\": [...]} with 1 to 10000 names", NULL);
    return;
  }
  if (!sv->engine || sv->stopping) {
    cJSON_Delete(body);
    stls_http_error(req, 503, "scanning_unavailable", "the service is stopping",
                    QUEUE_RETRY_AFTER);
    return;
  }
  if (sv->q_len + n > sv->q_cap) {
    cJSON_Delete(body);
    stls_http_error(req, 503, "queue_full", "the scan queue is full",
                    QUEUE_RETRY_AFTER);
    return;
  }
  if (!(names = calloc(n, sizeof(*names))))
    goto oom;
  cJSON_ArrayForEach(x, list) {
    char d[STLS_DOMAIN_MAX + 1];
    const char *why = NULL;
    if (!cJSON_IsString(x) ||
        stls_domain_normalize(x->valuestring, d, sizeof(d), &why) != 0) {
      snprintf(msg, sizeof(msg), "domains[%zu] is not a domain name: %s", i,
               why ? why : "not a string");
      for (size_t k = 0; k < i; k++)
        free(names[k]);
      free(names);
      cJSON_Delete(body);
      stls_http_error(req, 400, "bad_domain", msg, NULL);
      return;
    }
    if (!(names[i++] = stls_strdup(d)))
      goto oom;
  }
  if (!(job = calloc(1, sizeof(*job))))
    goto oom;
  random_id(job->id, sizeof(job->id));
  job->total = (int64_t)n;
  if (stls_store_job_create(sv->store, job->id, (int64_t)time(NULL),
                            (const char *const *)names, n) != 0 ||
      stls_strmap_put(sv->jobs, job->id, job) != 0) {
    free(job);
    job = NULL;
    goto oom;
  }
  job->pending = 1; /* held while the items are queued */
  for (i = 0; i < n; i++) {
    item_t *it = item_new(ITEM_JOB, job, i, names[i]);
    if (it)
      enqueue(sv, it, 0);
  }
  for (i = 0; i < n; i++)
    free(names[i]);
  free(names);
  cJSON_Delete(body);
  {
    cJSON *o = cJSON_CreateObject();
    char id[40];
    stls_strlcpy(id, job->id, sizeof(id));
    if (o) {
      cJSON_AddStringToObject(o, "id", id);
      cJSON_AddStringToObject(o, "state", "queued");
      cJSON_AddNumberToObject(o, "total", (double)n);
    }
    if (--job->pending == 0) {
      stls_strmap_del(sv->jobs, job->id);
      free(job);
    }
    respond_json(req, 202, o);
  }
  pump(sv);
  return;
oom:
  if (names)
    for (size_t k = 0; k < n; k++)
      free(names[k]);
  free(names);
  cJSON_Delete(body);
  stls_http_error(req, 500, "internal", "cannot create the job", NULL);
}

static void job_list_cb(const stls_store_job_t *j, void *arg) {
  cJSON *o = job_json(j);
  if (o)
    cJSON_AddItemToArray(arg, o);
}

static void h_scan_list(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  long long limit = query_int(req, "limit", JOBS_DEFAULT_LIMIT, JOBS_MAX_LIMIT);
  cJSON *o, *a;
  if (limit <= 0) {
    stls_http_error(req, 400, "bad_request", "limit must be 1..1000", NULL);
    return;
  }
  o = cJSON_CreateObject();
  a = cJSON_AddArrayToObject(o, "scans");
  if (!a || stls_store_job_list(sv->store, (int)limit, job_list_cb, a) < 0) {
    cJSON_Delete(o);
    stls_http_error(req, 500, "internal", "store error", NULL);
    return;
  }
  respond_json(req, 200, o);
}

/* The job in the path, or an answer (404) and 0. */
static int path_job(serve_t *sv, stls_http_req_t *req, stls_store_job_t *j) {
  int found = stls_store_job_get(sv->store, req->params[0], j);
  if (found <= 0)
    stls_http_error(req, found < 0 ? 500 : 404,
                    found < 0 ? "internal" : "not_found",
                    found < 0 ? "store error" : "no such scan", NULL);
  return found > 0;
}

static void h_scan_get(stls_http_req_t *req, void *arg) {
  stls_store_job_t j;
  if (path_job(arg, req, &j))
    respond_json(req, 200, job_json(&j));
}

static void h_scan_delete(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  stls_store_job_t j;
  job_t *job;
  if (!path_job(sv, req, &j))
    return;
  if (!strcmp(j.state, "queued") || !strcmp(j.state, "running")) {
    if ((job = stls_strmap_get(sv->jobs, j.id))) {
      item_t **pp = &sv->q_head, *prev = NULL;
      job->cancelled = 1;
      job->pending++; /* keep it while its items go */
      while (*pp) {
        item_t *it = *pp;
        if (it->job == job) {
          *pp = it->next;
          sv->q_len--;
          item_done(sv, it);
        } else {
          prev = it;
          pp = &it->next;
        }
      }
      sv->q_tail = prev;
      if (--job->pending == 0) {
        stls_strmap_del(sv->jobs, job->id);
        free(job);
      }
    }
    stls_store_job_state(sv->store, j.id, "cancelled", time(NULL));
    stls_store_job_get(sv->store, j.id, &j);
    pump(sv);
  }
  respond_json(req, 200, job_json(&j));
}

static void results_cb(const char *json, size_t len, void *arg) {
  buf_add(arg, json, len);
  buf_add(arg, "\n", 1);
}

static void h_scan_results(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  stls_store_job_t j;
  buf_t b = {0};
  if (!path_job(sv, req, &j))
    return;
  if (stls_store_job_results(sv->store, j.id, results_cb, &b) < 0 || b.oom) {
    free(b.p);
    stls_http_error(req, 500, "internal", "store error", NULL);
    return;
  }
  stls_http_respond(req, 200, "application/x-ndjson", b.p ? b.p : "", b.len,
                    NULL);
  free(b.p);
}

/* After a restart: queue again what unfinished jobs had not delivered. */
static void requeue_cb(const char *id, size_t idx, const char *domain,
                       void *arg) {
  serve_t *sv = arg;
  job_t *job = stls_strmap_get(sv->jobs, id);
  item_t *it;
  if (!job) {
    if (!(job = calloc(1, sizeof(*job))))
      return;
    stls_strlcpy(job->id, id, sizeof(job->id));
    if (stls_strmap_put(sv->jobs, job->id, job) != 0) {
      free(job);
      return;
    }
  }
  if ((it = item_new(ITEM_JOB, job, idx, domain)))
    enqueue(sv, it, 0);
}

static int requeue_jobs(serve_t *sv) {
  int n = stls_store_job_pending(sv->store, requeue_cb, sv);
  /* Totals come from the store once the pending rows have been read. */
  for (item_t *it = sv->q_head; it; it = it->next) {
    stls_store_job_t j;
    if (it->job && it->job->total == 0 &&
        stls_store_job_get(sv->store, it->job->id, &j) == 1) {
      it->job->total = j.total;
      it->job->done = j.done;
    }
  }
  return n;
}

/* --- scheduled rescans (--targets FILE --every DURATION) --- */

static void targets_round(uv_timer_t *t) {
  serve_t *sv = t->data;
  if (sv->stopping)
    return;
  /* Politely: a round starts only when the previous one has finished. */
  if (sv->targets_pending) {
    sv->rounds_skipped++;
    return;
  }
  if (sv->q_len + sv->n_targets > sv->q_cap) {
    sv->rounds_skipped++;
    return;
  }
  sv->rounds++;
  for (size_t i = 0; i < sv->n_targets; i++) {
    item_t *it = item_new(ITEM_TARGET, NULL, i, sv->targets[i]);
    if (it) {
      enqueue(sv, it, 0);
      sv->targets_pending++;
    }
  }
  pump(sv);
}

static int load_targets(serve_t *sv, const char *path) {
  FILE *f = fopen(path, "r");
  char line[4096], d[STLS_DOMAIN_MAX + 1];
  size_t cap = 0;
  long no = 0;
  if (!f) {
    fprintf(stderr, "starttls-scan serve: cannot read %s: %s\n", path,
            strerror(errno));
    return -1;
  }
  while (fgets(line, sizeof(line), f)) {
    const char *why = NULL;
    int r;
    no++;
    line[strcspn(line, "\n")] = '\0';
    r = stls_target_line_parse(line, d, sizeof(d), &why);
    if (r < 0) {
      fprintf(stderr, "starttls-scan serve: %s:%ld: skipped: %s\n", path, no,
              why ? why : "invalid");
      continue;
    }
    if (r == 0)
      continue;
    if (sv->n_targets == cap) {
      char **v = realloc(sv->targets, (cap ? cap * 2 : 64) * sizeof(*v));
      if (!v)
        break;
      sv->targets = v;
      cap = cap ? cap * 2 : 64;
    }
    if (!(sv->targets[sv->n_targets] = stls_strdup(d)))
      break;
    sv->n_targets++;
  }
  fclose(f);
  return 0;
}

/* "90", "90s", "15m", "6h", "1d" into milliseconds; 0 when malformed. */
static uint64_t parse_duration_ms(const char *s) {
  char *end;
  double v = strtod(s, &end);
  double mult = 1000;
  if (end == s || !(v > 0))
    return 0;
  if (!strcmp(end, "") || !strcmp(end, "s"))
    mult = 1000;
  else if (!strcmp(end, "m"))
    mult = 60e3;
  else if (!strcmp(end, "h"))
    mult = 3600e3;
  else if (!strcmp(end, "d"))
    mult = 86400e3;
  else
    return 0;
  return (uint64_t)(v * mult);
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
    if (found < 0) {
      stls_http_error(req, 500, "internal", "store error", NULL);
      return;
    }
    if (!found || (long long)(time(NULL) - at) > max_age) {
      domain_wait(sv, req, d);
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

/* --- health, stats, metrics, page --- */

/* Domains waiting (here and in the engine's queue) and being scanned. */
static void queue_load(serve_t *sv, size_t *queued, size_t *running) {
  *queued = sv->q_len;
  *running = 0;
  if (sv->engine) {
    stls_engine_stats_t st;
    memset(&st, 0, sizeof(st));
    stls_engine_stats(sv->engine, &st);
    *queued += st.queued;
    *running = st.domains_active;
  }
}

static void h_health(stls_http_req_t *req, void *arg) {
  serve_t *sv = arg;
  char body[512];
  size_t queued, running;
  int n;
  queue_load(sv, &queued, &running);
  n = snprintf(body, sizeof(body),
               "{\"status\":\"ok\",\"version\":\"%s\",\"uptime_s\":%llu,"
               "\"domains\":%lld,\"queue\":{\"queued\":%zu,\"running\":%zu},"
               "\"scanning\":%s}\n",
               STLS_VERSION,
               (unsigned long long)((uv_now(sv->loop) - sv->started_ms) / 1000),
               (long long)stls_store_count_domains(sv->store), queued, running,
               sv->engine && !sv->stopping ? "true" : "false");
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
        x, "14d",
        (double)stls_store_count_expiring(sv->store, now + 14 * 86400));
    cJSON_AddNumberToObject(
        x, "30d",
        (double)stls_store_count_expiring(sv->store, now + 30 * 86400));
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
  {
    size_t queued, running;
    queue_load(sv, &queued, &running);
    buf_printf(&b, "starttls_scan_scans{state=\"queued\"} %zu\n", queued);
    buf_printf(&b, "starttls_scan_scans{state=\"running\"} %zu\n", running);
  }
  metric_head(&b, "starttls_scan_target_rounds_total", "counter",
              "Rounds of --targets rescans started, and skipped because the "
              "previous round had not finished");
  buf_printf(&b,
             "starttls_scan_target_rounds_total{outcome=\"started\"} %llu\n",
             (unsigned long long)sv->rounds);
  buf_printf(&b,
             "starttls_scan_target_rounds_total{outcome=\"skipped\"} %llu\n",
             (unsigned long long)sv->rounds_skipped);
  metric_head(&b, "starttls_scan_scan_duration_seconds", "histogram",
              "Time to scan one domain");
  for (size_t i = 0; i < N_BUCKETS; i++)
    buf_printf(&b,
               "starttls_scan_scan_duration_seconds_bucket{le=\"%g\"} %llu\n",
               duration_buckets[i], (unsigned long long)sv->dur_buckets[i]);
  buf_printf(&b,
             "starttls_scan_scan_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
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
    {"POST", "/v1/scans", h_scan_post},
    {"GET", "/v1/scans", h_scan_list},
    {"GET", "/v1/scans/{}", h_scan_get},
    {"DELETE", "/v1/scans/{}", h_scan_delete},
    {"GET", "/v1/scans/{}/results", h_scan_results},
};

/* --- the command --- */

const char stls_serve_usage[] =
    "usage: starttls-scan serve --db FILE [--listen ADDR:PORT] [OPTIONS]\n"
    "\n"
    "Runs the service: scans on request (POST /v1/scans, GET\n"
    "/v1/domains/D?max_age=S) and on a schedule (--targets), keeps every\n"
    "record in a store (SQLite), tells what changed (GET /v1/feed), exports\n"
    "Prometheus metrics at /metrics and a status page at /. See the README\n"
    "section 'Service mode' and docs/openapi.yaml.\n"
    "\n"
    "Service:\n"
    "  --db FILE               the store (created when missing; WAL mode)\n"
    "  --listen ADDR:PORT      where to listen (default 127.0.0.1:8025)\n"
    "  --token-file FILE       POST and DELETE need 'Authorization: Bearer\n"
    "                          TOKEN' with the first line of FILE\n"
    "  --targets FILE          domains to rescan (one per line, as for scan)\n"
    "  --every DURATION        how often (e.g. 6h, 30m, 1d; default 24h);\n"
    "                          a round starts only after the last one ended\n"
    "  --allow-private         allow connections to private and special-\n"
    "                          purpose addresses (loopback, RFC 1918, ...);\n"
    "                          without it such hosts are 'blocked'\n"
    "  --queue N               domains waiting in the service (default\n"
    "                          50000); beyond it requests get 503\n"
    "  --max-body BYTES        largest request body (default 1048576)\n"
    "  --max-conns N           HTTP connections at once (default 512)\n"
    "  --max-conns-per-ip N    ... from one client address (default 64)\n"
    "  --post-rate N           POST/DELETE per second and client (default 20,\n"
    "                          bursts of 5 seconds' worth; 0 = no limit)\n"
    "  --read-timeout SEC      time to send one request (default 10)\n"
    "\n"
    "Scanning (as for 'scan'): --resolver, -4, -6, --ipv6, --dns-timeout,\n"
    "--dns-tries, --max-mx, --max-addrs, -w, -c, --per-ip, --rate,\n"
    "--retry-delay, --no-retry, --dane, --mta-sts, --secure-match, -p,\n"
    "--ca-file, --trust-store, --intermediates, --ehlo, the timeouts and\n"
    "--versions.\n"
    "\n"
    "SIGTERM or SIGINT stops it: it stops listening and taking scans, lets\n"
    "the scans under way finish, and closes the store; jobs not finished\n"
    "are taken up again at the next start.\n";

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
  /* Long polls get what there is, then every connection closes. */
  for (w = sv->feed_waiters; w; w = next) {
    next = w->next;
    feed_wait_end(w, 1);
  }
  stls_http_close(sv->http);
  sv->http = NULL;
  if (sv->targets_timer_on) {
    uv_timer_stop(&sv->targets_timer);
    uv_close((uv_handle_t *)&sv->targets_timer, NULL);
    sv->targets_timer_on = 0;
  }
  if (sv->engine) {
    stls_engine_stop(sv->engine, engine_drop_cb, sv);
    maybe_free_engine(sv);
  }
  uv_signal_stop(&sv->sigterm);
  uv_signal_stop(&sv->sigint);
  uv_close((uv_handle_t *)&sv->sigterm, NULL);
  uv_close((uv_handle_t *)&sv->sigint, NULL);
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

static void free_queue(serve_t *sv) {
  while (sv->q_head) {
    item_t *it = sv->q_head;
    sv->q_head = it->next;
    item_done(sv, it);
  }
  sv->q_tail = NULL;
  sv->q_len = 0;
}

int stls_cmd_serve(int argc, char **argv) {
  enum {
    OPT_DB = 256,
    OPT_LISTEN,
    OPT_TOKEN,
    OPT_MAXBODY,
    OPT_MAXCONNS,
    OPT_MAXCONNSIP,
    OPT_POSTRATE,
    OPT_READTMO,
    OPT_TARGETS,
    OPT_EVERY,
    OPT_PRIVATE,
    OPT_QUEUE,
    OPT_RESOLVER,
    OPT_IPV6,
    OPT_DNSTMO,
    OPT_DNSTRIES,
    OPT_MAXMX,
    OPT_MAXADDR,
    OPT_PERIP,
    OPT_RATE,
    OPT_RETRY,
    OPT_NORETRY,
    OPT_DANE,
    OPT_STS,
    OPT_SECMATCH
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
      {"targets", required_argument, NULL, OPT_TARGETS},
      {"every", required_argument, NULL, OPT_EVERY},
      {"allow-private", no_argument, NULL, OPT_PRIVATE},
      {"queue", required_argument, NULL, OPT_QUEUE},
      {"resolver", required_argument, NULL, OPT_RESOLVER},
      {"ipv6", required_argument, NULL, OPT_IPV6},
      {"dns-timeout", required_argument, NULL, OPT_DNSTMO},
      {"dns-tries", required_argument, NULL, OPT_DNSTRIES},
      {"max-mx", required_argument, NULL, OPT_MAXMX},
      {"max-addrs", required_argument, NULL, OPT_MAXADDR},
      {"workers", required_argument, NULL, 'w'},
      {"concurrency", required_argument, NULL, 'c'},
      {"per-ip", required_argument, NULL, OPT_PERIP},
      {"rate", required_argument, NULL, OPT_RATE},
      {"retry-delay", required_argument, NULL, OPT_RETRY},
      {"no-retry", no_argument, NULL, OPT_NORETRY},
      {"dane", no_argument, NULL, OPT_DANE},
      {"mta-sts", no_argument, NULL, OPT_STS},
      {"secure-match", required_argument, NULL, OPT_SECMATCH},
      {"port", required_argument, NULL, 'p'},
      PROBE_COMMON_LONGOPTS,
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  static const char *cmd = "serve";
  serve_t *sv = calloc(1, sizeof(*sv));
  stls_engine_cfg_t *o;
  uv_loop_t loop;
  const char *db = NULL, *token_file = NULL, *targets = NULL;
  char *token = NULL;
  char err[512], ehlo_buf[256], resolvers[1024] = "";
  unsigned long v = 0;
  int c, rc = -1, only4 = 0, only6 = 0, allow_private = 0, loop_ok = 0;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  probe_common_t pc;
  stls_cli_t cli = {cmd, "w:c:p:46h", longopts, 0};

  if (!sv) {
    fprintf(stderr, "starttls-scan serve: out of memory\n");
    return 1;
  }
  o = &sv->ecfg;
  stls_engine_cfg_defaults(o);
  o->limits.workers = ncpu > 0 ? (unsigned)ncpu : 1;
  pc = (probe_common_t){&o->probe,         &o->ca_file,
                        o->trust_stores,   &o->n_trust_stores,
                        &o->intermediates, &o->probe.ehlo_name};
  stls_http_cfg_defaults(&sv->http_cfg);
  sv->q_cap = DEFAULT_QUEUE;
  sv->every_ms = 86400ULL * 1000;
  while (rc < 0 && (c = stls_cli_getopt(&cli, argc, argv)) != -1) {
    switch (c) {
    case STLS_CLI_VERSION:
      stls_cli_print_version(stdout);
      rc = 0;
      break;
    case STLS_CLI_USAGE: rc = EXIT_USAGE; break;
    case OPT_DB: db = optarg; break;
    case OPT_LISTEN: sv->http_cfg.listen = optarg; break;
    case OPT_TOKEN: token_file = optarg; break;
    case OPT_TARGETS: targets = optarg; break;
    case OPT_EVERY:
      if (!(sv->every_ms = parse_duration_ms(optarg)) || sv->every_ms < 1000)
        rc = stls__usage_error(cmd, "bad --every '%s' (e.g. 90s, 30m, 6h, 1d)",
                               optarg);
      break;
    case OPT_PRIVATE: allow_private = 1; break;
    case OPT_QUEUE:
      if (parse_ulong(optarg, 1, 10000000, &v))
        rc = stls__usage_error(cmd, "bad --queue '%s' (1..10000000)", optarg);
      sv->q_cap = v;
      break;
    case OPT_MAXBODY:
      if (parse_ulong(optarg, 1024, 1UL << 30, &v))
        rc = stls__usage_error(cmd, "bad --max-body '%s' (1024..1073741824)",
                               optarg);
      sv->http_cfg.max_body = v;
      break;
    case OPT_MAXCONNS:
      if (parse_ulong(optarg, 1, 100000, &v))
        rc = stls__usage_error(cmd, "bad --max-conns '%s' (1..100000)", optarg);
      sv->http_cfg.max_conns = (unsigned)v;
      break;
    case OPT_MAXCONNSIP:
      if (parse_ulong(optarg, 1, 100000, &v))
        rc = stls__usage_error(cmd, "bad --max-conns-per-ip '%s' (1..100000)",
                               optarg);
      sv->http_cfg.max_conns_per_ip = (unsigned)v;
      break;
    case OPT_POSTRATE: {
      char *end;
      double r = strtod(optarg, &end);
      if (!*optarg || *end || !(r >= 0) || r > 1e6) {
        rc = stls__usage_error(
            cmd, "bad --post-rate '%s' (per second, 0 = no limit)", optarg);
        break;
      }
      /* Bursts of five seconds' worth, at least one request. */
      sv->http_cfg.post_rate = r;
      sv->http_cfg.post_burst = r * 5 < 1 ? 1 : r * 5;
      break;
    }
    case OPT_READTMO: {
      int64_t ms = stls_parse_seconds_ms(optarg);
      if (ms <= 0)
        rc =
            stls__usage_error(cmd, "bad --read-timeout '%s' (seconds)", optarg);
      sv->http_cfg.read_timeout_ms = (uint64_t)ms;
      break;
    }
    case OPT_RESOLVER:
      if (strlen(resolvers) + strlen(optarg) + 2 > sizeof(resolvers)) {
        rc = stls__usage_error(cmd, "%s", "too many --resolver options");
        break;
      }
      if (resolvers[0])
        strcat(resolvers, ",");
      strcat(resolvers, optarg);
      break;
    case OPT_IPV6:
      if (!strcmp(optarg, "auto"))
        o->ipv6_mode = STLS_IPV6_AUTO;
      else if (!strcmp(optarg, "on"))
        o->ipv6_mode = STLS_IPV6_ON;
      else if (!strcmp(optarg, "off"))
        o->ipv6_mode = STLS_IPV6_OFF;
      else
        rc = stls__usage_error(cmd, "--ipv6 wants auto, on or off, not '%s'",
                               optarg);
      break;
    case OPT_DNSTMO: {
      int64_t ms = stls_parse_seconds_ms(optarg);
      if (ms < 1 || ms > 60000)
        rc = stls__usage_error(
            cmd, "bad --dns-timeout '%s' (seconds, up to 60)", optarg);
      o->limits.dns_timeout_ms = (unsigned)ms;
      break;
    }
    case OPT_DNSTRIES:
      if (stls__parse_uint(optarg, 1, 10, &o->limits.dns_tries))
        rc = stls__usage_error(cmd, "bad --dns-tries '%s' (1..10)", optarg);
      break;
    case OPT_MAXMX:
      if (stls__parse_uint(optarg, 1, 100, &o->limits.max_mx))
        rc = stls__usage_error(cmd, "bad --max-mx '%s' (1..100)", optarg);
      break;
    case OPT_MAXADDR:
      if (stls__parse_uint(optarg, 1, 100, &o->limits.max_addrs))
        rc = stls__usage_error(cmd, "bad --max-addrs '%s' (1..100)", optarg);
      break;
    case 'w':
      if (stls__parse_uint(optarg, 1, 256, &o->limits.workers))
        rc = stls__usage_error(cmd, "bad --workers '%s' (1..256)", optarg);
      break;
    case 'c':
      if (stls__parse_uint(optarg, 1, 100000, &o->limits.concurrency))
        rc = stls__usage_error(cmd, "bad --concurrency '%s' (1..100000)",
                               optarg);
      break;
    case OPT_PERIP:
      if (stls__parse_uint(optarg, 1, 1000, &o->limits.per_ip))
        rc = stls__usage_error(cmd, "bad --per-ip '%s' (1..1000)", optarg);
      break;
    case OPT_RATE: {
      char *end;
      o->limits.rate = strtod(optarg, &end);
      if (!*optarg || *end || !(o->limits.rate >= 0) || o->limits.rate > 1e6)
        rc = stls__usage_error(
            cmd, "bad --rate '%s' (connections/s, 0 = no limit)", optarg);
      break;
    }
    case OPT_RETRY:
      if ((o->limits.retry_delay_ms = stls_parse_seconds_ms(optarg)) < 0)
        rc = stls__usage_error(cmd, "bad --retry-delay '%s' (seconds)", optarg);
      break;
    case OPT_NORETRY: o->limits.retry_delay_ms = -1; break;
    case OPT_DANE: o->dane = true; break;
    case OPT_STS: o->mta_sts = true; break;
    case OPT_SECMATCH: o->policy.secure_match = optarg; break;
    case 'p': {
      int port = stls__parse_port(optarg);
      if (port < 0)
        rc = stls__usage_error(cmd, "bad port '%s'", optarg);
      o->probe.port = port;
      break;
    }
    case '4': only4 = 1; break;
    case '6': only6 = 1; break;
    case 'h':
      fputs(stls_serve_usage, stdout);
      rc = 0;
      break;
    default:
      switch (stls__probe_common_opt(c, optarg, cmd, &pc)) {
      case 1: break;
      case 0:
        rc = stls__usage_error(cmd, "unknown option or missing argument: '%s'",
                               argv[optind - 1]);
        break;
      default: rc = EXIT_USAGE; break;
      }
    }
  }
  if (rc >= 0)
    goto out;
  rc = EXIT_USAGE;
  if (optind < argc) {
    stls__usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    goto out;
  }
  if (!db) {
    stls__usage_error(cmd, "%s", "--db FILE is required");
    goto out;
  }
  if (only4 && only6) {
    stls__usage_error(cmd, "%s", "-4 and -6 exclude each other");
    goto out;
  }
  o->want_ipv4 = !only6;
  o->want_ipv6 = !only4;
  o->guard_private = !allow_private;
  /* The engine keeps an endpoint's result for the rest of its run, and a
   * service's run never ends: a rescan must probe afresh. */
  o->dedupe = false;
  if (resolvers[0])
    o->resolvers = resolvers;
  if (!o->probe.ehlo_name) {
    stls__default_ehlo(ehlo_buf, sizeof(ehlo_buf), 1);
    o->probe.ehlo_name = ehlo_buf;
  }
  if (token_file) {
    if (!(token = read_token(token_file))) {
      fprintf(stderr, "starttls-scan serve: cannot read a token from %s\n",
              token_file);
      goto out;
    }
    sv->http_cfg.token = token;
  }
  if (targets && load_targets(sv, targets) != 0)
    goto out;

  rc = 1;
  uv_loop_init(&loop);
  loop_ok = 1;
  sv->loop = &loop;
  sv->started = time(NULL);
  sv->started_ms = uv_now(&loop);
  if (!(sv->jobs = stls_strmap_new()) || !(sv->scanning = stls_strmap_new())) {
    fprintf(stderr, "starttls-scan serve: out of memory\n");
    goto out;
  }
  if (stls_store_open(&sv->store, db, err, sizeof(err)) != 0) {
    fprintf(stderr, "starttls-scan serve: store: %s\n", err);
    goto out;
  }
  if (stls_engine_new(&sv->engine, &loop, o, engine_record_cb, sv, err,
                      sizeof(err)) != 0) {
    fprintf(stderr, "starttls-scan serve: %s\n", err);
    sv->engine = NULL;
    goto out;
  }
  if (stls_http_new(&sv->http, &loop, &sv->http_cfg, routes,
                    sizeof(routes) / sizeof(routes[0]), sv, err,
                    sizeof(err)) != 0) {
    fprintf(stderr, "starttls-scan serve: %s\n", err);
    goto out;
  }
  {
    int n = requeue_jobs(sv);
    if (n > 0)
      fprintf(stderr,
              "starttls-scan serve: %d domains of unfinished jobs "
              "queued again\n",
              n);
  }
  uv_signal_init(&loop, &sv->sigterm);
  uv_signal_init(&loop, &sv->sigint);
  sv->sigterm.data = sv->sigint.data = sv;
  uv_signal_start(&sv->sigterm, on_signal, SIGTERM);
  uv_signal_start(&sv->sigint, on_signal, SIGINT);
  if (sv->n_targets) {
    uv_timer_init(&loop, &sv->targets_timer);
    sv->targets_timer.data = sv;
    sv->targets_timer_on = 1;
    uv_timer_start(&sv->targets_timer, targets_round, 0, sv->every_ms);
  }
  fprintf(stderr,
          "starttls-scan serve: listening on %s (port %d), store %s%s\n",
          sv->http_cfg.listen, stls_http_port(sv->http), db,
          allow_private ? ", private addresses allowed" : "");
  fflush(stderr);
  pump(sv);
  uv_run(&loop, UV_RUN_DEFAULT);
  rc = 0;
out:
  if (loop_ok) {
    if (sv->http)
      stls_http_close(sv->http);
    if (sv->engine) {
      sv->stopping = 1;
      stls_engine_stop(sv->engine, engine_drop_cb, sv);
      stls_engine_free(sv->engine);
      sv->engine = NULL;
    }
    uv_walk(&loop, on_walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
  free_queue(sv);
  stls_store_close(sv->store);
  stls_strmap_free(sv->jobs);
  stls_strmap_free(sv->scanning);
  for (size_t i = 0; i < sv->n_targets; i++)
    free(sv->targets[i]);
  free(sv->targets);
  free(token);
  free(sv);
  return rc;
}
