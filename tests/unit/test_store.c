/* Unit tests for the SQLite store (scanner/store.c): records, latest and
 * history, events and cursors, aggregates, jobs, and that all of it is
 * there again after closing and reopening the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "stls/store.h"

typedef struct {
  char dir[64];
  char path[96];
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof(*f));
  if (!f)
    return -1;
  strcpy(f->dir, "/tmp/stls-store-XXXXXX");
  if (!mkdtemp(f->dir))
    return -1;
  snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  char p[128];
  static const char *const sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
    unlink(p);
  }
  rmdir(f->dir);
  free(f);
  return 0;
}

static stls_store_t *open_store(fixture_t *f) {
  stls_store_t *s = NULL;
  char err[256] = "";
  if (stls_store_open(&s, f->path, err, sizeof(err)) != 0)
    fail_msg("open: %s", err);
  return s;
}

static void put(stls_store_t *s, const char *domain, int64_t at,
                const char *rec, const char *json, const char *ver, int trusted,
                int64_t not_after, int64_t *id) {
  stls_store_host_t h = {"success", ver, trusted, not_after};
  stls_store_record_t r = {domain, at, "ok", rec, json, strlen(json), &h, 1};
  assert_int_equal(stls_store_put(s, &r, true, id), 0);
}

typedef struct {
  char buf[1024];
  int n;
} collect_t;

static void collect_json(const char *json, size_t len, void *arg) {
  collect_t *c = arg;
  strncat(c->buf, json, len);
  strcat(c->buf, "|");
  c->n++;
}

static void collect_agg(const char *key, int64_t n, void *arg) {
  collect_t *c = arg;
  char one[64];
  snprintf(one, sizeof(one), "%s=%lld;", key ? key : "(null)", (long long)n);
  strcat(c->buf, one);
  c->n++;
}

static void collect_event(const stls_store_event_t *ev, void *arg) {
  collect_t *c = arg;
  char one[160];
  snprintf(one, sizeof(one), "%lld:%s:%s:%s:%s;", (long long)ev->cursor,
           ev->domain, ev->type, ev->ip ? ev->ip : "-",
           ev->after ? ev->after : "null");
  strcat(c->buf, one);
  c->n++;
}

static void collect_job(const stls_store_job_t *j, void *arg) {
  collect_t *c = arg;
  strcat(c->buf, j->id);
  strcat(c->buf, "|");
  c->n++;
}

static void collect_pending(const char *id, size_t idx, const char *domain,
                            void *arg) {
  collect_t *c = arg;
  char one[96];
  snprintf(one, sizeof(one), "%s/%zu/%s;", id, idx, domain);
  strcat(c->buf, one);
  c->n++;
}

static void test_records(void **state) {
  fixture_t *f = *state;
  stls_store_t *s = open_store(f);
  char *json = NULL;
  size_t len = 0;
  int64_t at = 0, id1, id2;
  collect_t c = {"", 0};

  assert_int_equal(stls_store_version(s), 2);
  assert_int_equal(stls_store_latest(s, "a.example", &json, &len, &at), 0);
  put(s, "a.example", 100, "verify", "{\"v\":1}", "TLSv1.3", 1, 5000, &id1);
  put(s, "a.example", 200, "may", "{\"v\":2}", "TLSv1.2", 0, 0, &id2);
  put(s, "b.example", 150, NULL, "{\"b\":1}", NULL, -1, 0, NULL);
  assert_true(id2 > id1);
  assert_int_equal(stls_store_latest(s, "a.example", &json, &len, &at), 1);
  assert_string_equal(json, "{\"v\":2}");
  assert_int_equal(len, 7);
  assert_int_equal(at, 200);
  free(json);

  /* History: everything but the latest, newest first. */
  assert_int_equal(stls_store_history(s, "a.example", 10, collect_json, &c), 1);
  assert_string_equal(c.buf, "{\"v\":1}|");
  /* A record that is not the latest goes to history only. */
  {
    stls_store_record_t old = {"a.example", 50, "ok", "secure",
                               "{\"v\":0}", 7,  NULL, 0};
    assert_int_equal(stls_store_put(s, &old, false, NULL), 0);
  }
  memset(&c, 0, sizeof(c));
  assert_int_equal(stls_store_history(s, "a.example", 10, collect_json, &c), 2);
  assert_string_equal(c.buf, "{\"v\":1}|{\"v\":0}|");
  memset(&c, 0, sizeof(c));
  assert_int_equal(stls_store_history(s, "a.example", 1, collect_json, &c), 1);

  /* Aggregates count latest records only. */
  assert_int_equal(stls_store_count_domains(s), 2);
  memset(&c, 0, sizeof(c));
  assert_int_equal(
      stls_store_aggregate(s, STLS_STORE_AGG_RECOMMENDED, collect_agg, &c), 0);
  assert_string_equal(c.buf, "(null)=1;may=1;");
  memset(&c, 0, sizeof(c));
  assert_int_equal(
      stls_store_aggregate(s, STLS_STORE_AGG_TLS_VERSION, collect_agg, &c), 0);
  assert_string_equal(c.buf, "TLSv1.2=1;");
  memset(&c, 0, sizeof(c));
  assert_int_equal(
      stls_store_aggregate(s, STLS_STORE_AGG_HOST_TRUSTED, collect_agg, &c), 0);
  assert_string_equal(c.buf, "false=1;");
  /* The first record's certificate is no longer counted once replaced. */
  assert_int_equal(stls_store_count_expiring(s, 10000), 0);
  put(s, "c.example", 300, "verify", "{\"c\":1}", "TLSv1.3", 1, 5000, NULL);
  assert_int_equal(stls_store_count_expiring(s, 10000), 1);
  assert_int_equal(stls_store_count_expiring(s, 4000), 0);

  /* A rolled back record leaves the totals as they were. */
  assert_int_equal(stls_store_begin(s), 0);
  put(s, "d.example", 400, "secure", "{\"d\":1}", "TLSv1.3", 1, 0, NULL);
  assert_int_equal(stls_store_rollback(s), 0);
  memset(&c, 0, sizeof(c));
  assert_int_equal(
      stls_store_aggregate(s, STLS_STORE_AGG_RECOMMENDED, collect_agg, &c), 0);
  assert_string_equal(c.buf, "(null)=1;may=1;verify=1;");
  stls_store_close(s);

  /* The totals are counted again from the file when it is reopened. */
  s = open_store(f);
  memset(&c, 0, sizeof(c));
  assert_int_equal(
      stls_store_aggregate(s, STLS_STORE_AGG_TLS_VERSION, collect_agg, &c), 0);
  assert_string_equal(c.buf, "TLSv1.2=1;TLSv1.3=1;");
  memset(&c, 0, sizeof(c));
  assert_int_equal(
      stls_store_aggregate(s, STLS_STORE_AGG_HOST_STATUS, collect_agg, &c), 0);
  assert_string_equal(c.buf, "success=3;");
  stls_store_close(s);
}

/* A version 1 file (host facts in their own table) is migrated: the facts
 * move into the domains' rows and the totals come out the same. */
static void test_migration(void **state) {
  fixture_t *f = *state;
  sqlite3 *db;
  stls_store_t *s;
  collect_t c = {"", 0};
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(
      sqlite3_exec(
          db,
          "CREATE TABLE records(id INTEGER PRIMARY KEY, domain TEXT NOT NULL,"
          " scanned_at INTEGER NOT NULL, json TEXT NOT NULL);"
          "CREATE TABLE domains(domain TEXT PRIMARY KEY, record_id INTEGER NOT"
          " NULL, scanned_at INTEGER NOT NULL, status TEXT NOT NULL,"
          " recommended TEXT) WITHOUT ROWID;"
          "CREATE TABLE hosts(domain TEXT NOT NULL, status TEXT NOT NULL,"
          " tls_version TEXT, trusted INTEGER, not_after INTEGER);"
          "CREATE TABLE events(cursor INTEGER PRIMARY KEY AUTOINCREMENT,"
          " at INTEGER NOT NULL, domain TEXT NOT NULL, type TEXT NOT NULL,"
          " mx TEXT, ip TEXT, before TEXT, after TEXT);"
          "CREATE TABLE jobs(id TEXT PRIMARY KEY, created_at INTEGER NOT NULL,"
          " state TEXT NOT NULL, total INTEGER NOT NULL, done INTEGER NOT NULL"
          " DEFAULT 0, finished_at INTEGER NOT NULL DEFAULT 0);"
          "CREATE TABLE job_items(job_id TEXT NOT NULL, idx INTEGER NOT NULL,"
          " domain TEXT NOT NULL, record_id INTEGER, PRIMARY KEY(job_id, idx))"
          " WITHOUT ROWID;"
          "INSERT INTO records VALUES(1, 'a.example', 10, '{}');"
          "INSERT INTO domains VALUES('a.example', 1, 10, 'ok', 'verify');"
          "INSERT INTO hosts VALUES('a.example', 'success', 'TLSv1.3', 1, 900);"
          "INSERT INTO hosts VALUES('a.example', 'io-timeout', NULL, -1, 0);"
          "PRAGMA user_version = 1;",
          NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_close(db);
  s = open_store(f);
  assert_int_equal(stls_store_version(s), 2);
  assert_int_equal(
      stls_store_aggregate(s, STLS_STORE_AGG_HOST_STATUS, collect_agg, &c), 0);
  assert_string_equal(c.buf, "io-timeout=1;success=1;");
  memset(&c, 0, sizeof(c));
  assert_int_equal(
      stls_store_aggregate(s, STLS_STORE_AGG_HOST_TRUSTED, collect_agg, &c), 0);
  assert_string_equal(c.buf, "true=1;");
  assert_int_equal(stls_store_count_expiring(s, 1000), 1);
  assert_int_equal(stls_store_count_expiring(s, 900), 0);
  assert_int_equal(stls_store_latest(s, "a.example", NULL, NULL, NULL), 1);
  stls_store_close(s);
}

static void test_events_and_reopen(void **state) {
  fixture_t *f = *state;
  stls_store_t *s = open_store(f);
  collect_t c = {"", 0};
  stls_store_event_t e1 = {0,    10,   "a.example", "first-seen",
                           NULL, NULL, NULL,        "{\"status\":\"ok\"}"};
  stls_store_event_t e2 = {0,    11,          "a.example", "trust-changed",
                           "mx", "192.0.2.1", "true",      "false"};
  assert_int_equal(stls_store_last_cursor(s), 0);
  /* A rolled back batch leaves nothing behind. */
  assert_int_equal(stls_store_begin(s), 0);
  assert_int_equal(stls_store_event_add(s, &e1), 0);
  assert_int_equal(stls_store_rollback(s), 0);
  assert_int_equal(stls_store_events(s, 0, 10, collect_event, &c), 0);

  assert_int_equal(stls_store_begin(s), 0);
  assert_int_equal(stls_store_event_add(s, &e1), 0);
  assert_int_equal(stls_store_event_add(s, &e2), 0);
  put(s, "a.example", 10, "may", "{}", NULL, -1, 0, NULL);
  assert_int_equal(stls_store_commit(s), 0);
  assert_true(e2.cursor > e1.cursor);
  assert_int_equal(stls_store_last_cursor(s), e2.cursor);
  stls_store_close(s);

  /* Everything committed is there after reopening. */
  s = open_store(f);
  assert_int_equal(stls_store_events(s, 0, 10, collect_event, &c), 2);
  memset(&c, 0, sizeof(c));
  assert_int_equal(stls_store_events(s, e1.cursor, 10, collect_event, &c), 1);
  {
    char want[128];
    snprintf(want, sizeof(want),
             "%lld:a.example:trust-changed:192.0.2.1:false;",
             (long long)e2.cursor);
    assert_string_equal(c.buf, want);
  }
  memset(&c, 0, sizeof(c));
  assert_int_equal(stls_store_events(s, 0, 1, collect_event, &c), 1);
  assert_int_equal(stls_store_count_domains(s), 1);
  stls_store_close(s);
}

static void test_jobs(void **state) {
  fixture_t *f = *state;
  stls_store_t *s = open_store(f);
  const char *doms[] = {"a.example", "b.example", "c.example"};
  stls_store_job_t j;
  collect_t c = {"", 0};
  int64_t id;

  assert_int_equal(stls_store_job_create(s, "j1", 100, doms, 3), 0);
  assert_int_equal(stls_store_job_create(s, "j2", 200, doms, 1), 0);
  assert_int_equal(stls_store_job_get(s, "nope", &j), 0);
  assert_int_equal(stls_store_job_get(s, "j1", &j), 1);
  assert_string_equal(j.state, "queued");
  assert_int_equal(j.total, 3);
  assert_int_equal(j.done, 0);
  assert_int_equal(stls_store_job_list(s, 10, collect_job, &c), 2);
  assert_string_equal(c.buf, "j2|j1|");

  put(s, "c.example", 5, "may", "{\"c\":1}", NULL, -1, 0, &id);
  assert_int_equal(stls_store_job_item_done(s, "j1", 2, id), 0);
  /* Delivered twice (a restart): counted once. */
  assert_int_equal(stls_store_job_item_done(s, "j1", 2, id), 0);
  put(s, "a.example", 5, "may", "{\"a\":1}", NULL, -1, 0, &id);
  assert_int_equal(stls_store_job_item_done(s, "j1", 0, id), 0);
  assert_int_equal(stls_store_job_get(s, "j1", &j), 1);
  assert_int_equal(j.done, 2);
  memset(&c, 0, sizeof(c));
  assert_int_equal(stls_store_job_results(s, "j1", collect_json, &c), 2);
  assert_string_equal(c.buf, "{\"a\":1}|{\"c\":1}|");

  memset(&c, 0, sizeof(c));
  assert_int_equal(stls_store_job_pending(s, collect_pending, &c), 2);
  assert_string_equal(c.buf, "j1/1/b.example;j2/0/a.example;");
  assert_int_equal(stls_store_job_state(s, "j2", "cancelled", 300), 0);
  memset(&c, 0, sizeof(c));
  assert_int_equal(stls_store_job_pending(s, collect_pending, &c), 1);
  assert_int_equal(stls_store_job_get(s, "j2", &j), 1);
  assert_string_equal(j.state, "cancelled");
  assert_int_equal(j.finished_at, 300);
  stls_store_close(s);
}

static long file_size(const char *path) {
  FILE *fp = fopen(path, "rb");
  long n = -1;
  if (fp && fseek(fp, 0, SEEK_END) == 0)
    n = ftell(fp);
  if (fp)
    fclose(fp);
  return n;
}

/* Commits never checkpoint in the writer (below the forced size): the
 * checkpointer thread copies the WAL into the database file, and what it
 * copied is all there after a reopen. */
static void test_checkpointer(void **state) {
  fixture_t *f = *state;
  stls_store_t *s = open_store(f);
  static char json[3000];
  char dom[64];
  long before;
  int64_t id;
  collect_t c = {"", 0};

  memset(json, 'x', sizeof(json) - 1);
  json[0] = '"';
  json[sizeof(json) - 2] = '"';
  before = file_size(f->path);
  assert_int_equal(stls__store_checkpoints(s), 0);
  /* ~1,500 pages through the WAL, in transactions of 100 records. */
  for (int i = 0; i < 1500; i++) {
    if (i % 100 == 0)
      assert_int_equal(stls_store_begin(s), 0);
    snprintf(dom, sizeof(dom), "d%04d.example", i);
    put(s, dom, 10, "may", json, "TLSv1.3", 1, 0, &id);
    if (i % 100 == 99)
      assert_int_equal(stls_store_commit(s), 0);
  }
  for (int t = 0; t < 500 && stls__store_checkpoints(s) == 0; t++)
    usleep(10000);
  assert_true(stls__store_checkpoints(s) > 0);
  /* The pages are in the database file, not only in the WAL. */
  for (int t = 0; t < 500 && file_size(f->path) < before + 3000000; t++)
    usleep(10000);
  assert_true(file_size(f->path) >= before + 3000000);
  stls_store_close(s);

  s = open_store(f);
  assert_int_equal(stls_store_count_domains(s), 1500);
  assert_int_equal(stls_store_latest(s, "d1499.example", NULL, NULL, NULL), 1);
  assert_int_equal(
      stls_store_aggregate(s, STLS_STORE_AGG_TLS_VERSION, collect_agg, &c), 0);
  assert_string_equal(c.buf, "TLSv1.3=1500;");
  stls_store_close(s);
}

static void test_bad_path(void **state) {
  stls_store_t *s = (stls_store_t *)1;
  char err[256] = "";
  (void)state;
  assert_int_equal(
      stls_store_open(&s, "/nonexistent-dir/x/y.db", err, sizeof(err)), -1);
  assert_null(s);
  assert_true(strlen(err) > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_records, setup, teardown),
      cmocka_unit_test_setup_teardown(test_events_and_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_jobs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
      cmocka_unit_test_setup_teardown(test_checkpointer, setup, teardown),
      cmocka_unit_test(test_bad_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
