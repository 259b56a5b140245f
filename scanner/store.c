/* The store on SQLite: WAL, numbered migrations in PRAGMA user_version,
 * one prepared statement per query (an X-macro table), one connection. */
#include "stls/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* WAL size (pages) that wakes the checkpointer, and the size at which the
 * writer checkpoints itself because the checkpointer cannot keep up. */
#define CKPT_WAKE_FRAMES 1000
#define CKPT_FORCE_FRAMES 64000

/* Migrations, in order; the schema version is how many have run. Never
 * edit one that has shipped: append. */
static const char *const migrations[] = {
    /* 1: records, the latest per domain with its host facts, events, jobs */
    "CREATE TABLE records(id INTEGER PRIMARY KEY, domain TEXT NOT NULL,"
    " scanned_at INTEGER NOT NULL, json TEXT NOT NULL);"
    "CREATE INDEX records_domain ON records(domain, id);"
    "CREATE TABLE domains(domain TEXT PRIMARY KEY, record_id INTEGER NOT NULL,"
    " scanned_at INTEGER NOT NULL, status TEXT NOT NULL, recommended TEXT)"
    " WITHOUT ROWID;"
    "CREATE TABLE hosts(domain TEXT NOT NULL, status TEXT NOT NULL,"
    " tls_version TEXT, trusted INTEGER, not_after INTEGER);"
    "CREATE INDEX hosts_domain ON hosts(domain);"
    "CREATE TABLE events(cursor INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at INTEGER NOT NULL, domain TEXT NOT NULL, type TEXT NOT NULL,"
    " mx TEXT, ip TEXT, before TEXT, after TEXT);"
    "CREATE TABLE jobs(id TEXT PRIMARY KEY, created_at INTEGER NOT NULL,"
    " state TEXT NOT NULL, total INTEGER NOT NULL,"
    " done INTEGER NOT NULL DEFAULT 0, finished_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_created ON jobs(created_at);"
    "CREATE TABLE job_items(job_id TEXT NOT NULL, idx INTEGER NOT NULL,"
    " domain TEXT NOT NULL, record_id INTEGER,"
    " PRIMARY KEY(job_id, idx)) WITHOUT ROWID;",
    /* 2: host facts move into the domain's row (the totals are kept in
     * memory, so a record costs one row update instead of one insert per
     * host), and the earliest leaf expiry gets an index of its own. */
    "ALTER TABLE domains ADD COLUMN facts TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE domains ADD COLUMN not_after_min INTEGER;"
    "UPDATE domains SET facts = coalesce((SELECT group_concat(status ||"
    " char(31) || coalesce(tls_version, '') || char(31) || CASE trusted"
    " WHEN 1 THEN '1' WHEN 0 THEN '0' ELSE '-' END, char(30)) FROM hosts h"
    " WHERE h.domain = domains.domain), ''), not_after_min = (SELECT"
    " min(not_after) FROM hosts h WHERE h.domain = domains.domain AND"
    " not_after > 0);"
    "DROP TABLE hosts;"
    "CREATE INDEX domains_not_after ON domains(not_after_min)"
    " WHERE not_after_min IS NOT NULL;",
};
#define N_MIGRATIONS (int)(sizeof(migrations) / sizeof(migrations[0]))

#define STMT_MAP(XX)                                                           \
  XX(BEGIN, "BEGIN IMMEDIATE")                                                 \
  XX(COMMIT, "COMMIT")                                                         \
  XX(ROLLBACK, "ROLLBACK")                                                     \
  XX(LATEST, "SELECT r.json, d.scanned_at FROM domains d JOIN records r"       \
             " ON r.id = d.record_id WHERE d.domain = ?1")                     \
  XX(REC_INSERT, "INSERT INTO records(domain, scanned_at, json)"               \
                 " VALUES(?1, ?2, ?3)")                                        \
  XX(DOM_UPSERT, "INSERT INTO domains(domain, record_id, scanned_at, status,"  \
                 " recommended, facts, not_after_min)"                         \
                 " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"                         \
                 " ON CONFLICT(domain) DO UPDATE SET record_id = ?2,"          \
                 " scanned_at = ?3, status = ?4, recommended = ?5,"            \
                 " facts = ?6, not_after_min = ?7")                            \
  XX(DOM_FACTS, "SELECT status, recommended, facts FROM domains"               \
                " WHERE domain = ?1")                                          \
  XX(ALL_FACTS, "SELECT status, recommended, facts FROM domains")              \
  XX(HISTORY,                                                                  \
     "SELECT r.json FROM records r WHERE r.domain = ?1 AND r.id <>"            \
     " coalesce((SELECT record_id FROM domains WHERE domain = ?1), 0)"         \
     " ORDER BY r.scanned_at DESC, r.id DESC LIMIT ?2")                        \
  XX(EVENT_INSERT, "INSERT INTO events(at, domain, type, mx, ip, before,"      \
                   " after) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)")               \
  XX(EVENTS, "SELECT cursor, at, domain, type, mx, ip, before, after"          \
             " FROM events WHERE cursor > ?1 ORDER BY cursor LIMIT ?2")        \
  XX(LAST_CURSOR, "SELECT coalesce(max(cursor), 0) FROM events")               \
  XX(COUNT_EXPIRING, "SELECT count(*) FROM domains WHERE not_after_min"        \
                     " IS NOT NULL AND not_after_min < ?1")                    \
  XX(COUNT_DOMAINS, "SELECT count(*) FROM domains")                            \
  XX(JOB_INSERT, "INSERT INTO jobs(id, created_at, state, total)"              \
                 " VALUES(?1, ?2, 'queued', ?3)")                              \
  XX(JOB_ITEM_INSERT, "INSERT INTO job_items(job_id, idx, domain)"             \
                      " VALUES(?1, ?2, ?3)")                                   \
  XX(JOB_STATE, "UPDATE jobs SET state = ?2, finished_at = ?3 WHERE id = ?1")  \
  XX(JOB_ITEM_DONE, "UPDATE job_items SET record_id = ?3"                      \
                    " WHERE job_id = ?1 AND idx = ?2 AND record_id IS NULL")   \
  XX(JOB_DONE_INC, "UPDATE jobs SET done = done + 1 WHERE id = ?1")            \
  XX(JOB_GET, "SELECT id, created_at, state, total, done, finished_at"         \
              " FROM jobs WHERE id = ?1")                                      \
  XX(JOB_LIST, "SELECT id, created_at, state, total, done, finished_at"        \
               " FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?1")     \
  XX(JOB_RESULTS, "SELECT r.json FROM job_items i JOIN records r"              \
                  " ON r.id = i.record_id WHERE i.job_id = ?1 ORDER BY i.idx") \
  XX(JOB_PENDING, "SELECT i.job_id, i.idx, i.domain FROM job_items i"          \
                  " JOIN jobs j ON j.id = i.job_id WHERE i.record_id IS NULL"  \
                  " AND j.state IN ('queued', 'running')"                      \
                  " ORDER BY j.created_at, i.job_id, i.idx")

enum {
#define XX(name, sql) ST_##name,
  STMT_MAP(XX)
#undef XX
      ST_COUNT
};

static const char *const stmt_sql[] = {
#define XX(name, sql) sql,
    STMT_MAP(XX)
#undef XX
};

/* Totals over every domain's latest record, kept in memory: the metrics
 * read them on every scrape. Keys are short words from fixed vocabularies
 * (statuses, levels, versions); past AGG_MAX_KEYS they count as "other". */
#define AGG_MAX_KEYS 64
typedef struct agg_s {
  struct {
    char key[40]; /* "" stands for NULL */
    int64_t n;
  } v[AGG_MAX_KEYS];
  size_t n;
} agg_t;

/* Copies committed WAL pages into the database file on a thread of its
 * own, over its own connection: the copy and its fsync are most of a
 * commit's cost, and the writer (the loop thread) need not wait for them. */
typedef struct ckpt_s {
  sqlite3 *db;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cond;
  int wake, stop, running;
  uint64_t runs; /* checkpoints done, for tests */
} ckpt_t;

struct stls_store_s {
  sqlite3 *db;
  ckpt_t ckpt;
  sqlite3_stmt *st[ST_COUNT];
  int in_tx; /* inside stls_store_begin() */
  int version;
  agg_t agg[STLS_STORE_AGG_COUNT];
};

static void agg_add(agg_t *a, const char *key, size_t len, int64_t d) {
  size_t i;
  if (len >= sizeof(a->v[0].key))
    len = sizeof(a->v[0].key) - 1;
  for (i = 0; i < a->n; i++)
    if (strlen(a->v[i].key) == len && !memcmp(a->v[i].key, key, len))
      break;
  if (i == a->n) {
    if (a->n == AGG_MAX_KEYS) {
      key = "other";
      len = 5;
      for (i = 0; i < a->n && strcmp(a->v[i].key, "other"); i++)
        ;
      if (i == a->n)
        i = a->n - 1; /* the table is full of real keys: fold into the last */
    } else {
      memcpy(a->v[i].key, key, len);
      a->v[i].key[len] = '\0';
      a->v[i].n = 0;
      a->n++;
    }
  }
  a->v[i].n += d;
}

/* Host facts as kept in a domain's row: per host "status US version US
 * trusted" (trusted '1', '0' or '-'), hosts separated by RS. */
#define FACT_US '\x1f'
#define FACT_RS '\x1e'

static void facts_apply(stls_store_t *s, const char *status,
                        const char *recommended, const char *facts, int64_t d) {
  const char *p = facts ? facts : "";
  agg_add(&s->agg[STLS_STORE_AGG_DOMAIN_STATUS], status ? status : "",
          status ? strlen(status) : 0, d);
  agg_add(&s->agg[STLS_STORE_AGG_RECOMMENDED], recommended ? recommended : "",
          recommended ? strlen(recommended) : 0, d);
  while (*p) {
    const char *end = strchr(p, FACT_RS), *f[3];
    size_t n[3], k = 0;
    const char *q = p;
    if (!end)
      end = p + strlen(p);
    while (k < 3) {
      const char *us = memchr(q, FACT_US, (size_t)(end - q));
      f[k] = q;
      n[k] = us ? (size_t)(us - q) : (size_t)(end - q);
      k++;
      if (!us)
        break;
      q = us + 1;
    }
    if (k == 3) {
      agg_add(&s->agg[STLS_STORE_AGG_HOST_STATUS], f[0], n[0], d);
      if (n[1])
        agg_add(&s->agg[STLS_STORE_AGG_TLS_VERSION], f[1], n[1], d);
      if (n[2] == 1 && (f[2][0] == '1' || f[2][0] == '0'))
        agg_add(&s->agg[STLS_STORE_AGG_HOST_TRUSTED],
                f[2][0] == '1' ? "true" : "false", f[2][0] == '1' ? 4 : 5, d);
    }
    p = *end ? end + 1 : end;
  }
}

/* Recount every total from the domains' rows (at open, after a rollback). */
static int facts_load(stls_store_t *s) {
  sqlite3_stmt *st = s->st[ST_ALL_FACTS];
  int rc;
  memset(s->agg, 0, sizeof(s->agg));
  sqlite3_reset(st);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    facts_apply(s, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1),
                (const char *)sqlite3_column_text(st, 2), 1);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

const char *stls_store_errmsg(stls_store_t *s) {
  return s && s->db ? sqlite3_errmsg(s->db) : "no database";
}

int stls_store_version(stls_store_t *s) { return s->version; }

/* Reset and clear a statement for its next use. */
static sqlite3_stmt *stmt(stls_store_t *s, int which) {
  sqlite3_stmt *st = s->st[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

static int bind_text(sqlite3_stmt *st, int i, const char *v) {
  return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC)
           : sqlite3_bind_null(st, i);
}

/* Run a statement that returns no rows. */
static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : -1;
}

static int migrate(stls_store_t *s, char *err, size_t errlen) {
  sqlite3_stmt *st;
  char *msg = NULL;
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) !=
      SQLITE_OK)
    goto fail;
  s->version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_finalize(st);
  if (s->version > N_MIGRATIONS) {
    snprintf(err, errlen, "database schema %d is newer than this program (%d)",
             s->version, N_MIGRATIONS);
    return -1;
  }
  while (s->version < N_MIGRATIONS) {
    char pragma[48];
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d",
             s->version + 1);
    /* Each migration and its version bump commit together. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, migrations[s->version], NULL, NULL, &msg) !=
            SQLITE_OK ||
        sqlite3_exec(s->db, pragma, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
      snprintf(err, errlen, "migration %d: %s", s->version + 1,
               msg ? msg : sqlite3_errmsg(s->db));
      sqlite3_free(msg);
      sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
      return -1;
    }
    s->version++;
  }
  return 0;
fail:
  snprintf(err, errlen, "%s", sqlite3_errmsg(s->db));
  return -1;
}

static void ckpt_main(void *arg) {
  ckpt_t *c = arg;
  uv_mutex_lock(&c->mu);
  for (;;) {
    while (!c->wake && !c->stop)
      uv_cond_wait(&c->cond, &c->mu);
    if (c->stop)
      break;
    c->wake = 0;
    uv_mutex_unlock(&c->mu);
    /* PASSIVE: copy what no reader still needs, never wait for anyone.
     * An error (SQLITE_BUSY, a full disk) leaves the pages in the WAL for
     * the next try; nothing committed is lost. */
    sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                              NULL);
    uv_mutex_lock(&c->mu);
    c->runs++;
  }
  uv_mutex_unlock(&c->mu);
}

/* After every commit (in the writer's thread): wake the checkpointer when
 * the WAL has grown, or checkpoint here when it has fallen far behind. */
static int wal_hook_cb(void *arg, sqlite3 *db, const char *name, int frames) {
  stls_store_t *s = arg;
  (void)name;
  if (frames >= CKPT_FORCE_FRAMES) {
    sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  } else if (frames >= CKPT_WAKE_FRAMES) {
    uv_mutex_lock(&s->ckpt.mu);
    s->ckpt.wake = 1;
    uv_cond_signal(&s->ckpt.cond);
    uv_mutex_unlock(&s->ckpt.mu);
  }
  return SQLITE_OK;
}

/* Start the checkpointer if the database is in WAL mode (an in-memory
 * database is not, and needs none). */
static int ckpt_start(stls_store_t *s, const char *path, char *err,
                      size_t errlen) {
  ckpt_t *c = &s->ckpt;
  sqlite3_stmt *st;
  int wal = 0;
  if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &st, NULL) ==
      SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW)
      wal = !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
  }
  if (!wal)
    return 0;
  if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    snprintf(err, errlen, "%s: checkpointer: %s", path,
             c->db ? sqlite3_errmsg(c->db) : "cannot open");
    sqlite3_close(c->db);
    c->db = NULL;
    return -1;
  }
  sqlite3_busy_timeout(c->db, 1000);
  /* A connection learns that the file is in WAL mode by reading it; until
   * then a checkpoint through it does nothing. */
  if (sqlite3_exec(c->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) !=
      SQLITE_OK) {
    snprintf(err, errlen, "%s: checkpointer: %s", path, sqlite3_errmsg(c->db));
    sqlite3_close(c->db);
    c->db = NULL;
    return -1;
  }
  /* Only the writer's hook decides when to checkpoint. */
  sqlite3_wal_autocheckpoint(c->db, 0);
  if (uv_mutex_init(&c->mu) != 0)
    goto fail_db;
  if (uv_cond_init(&c->cond) != 0)
    goto fail_mu;
  if (uv_thread_create(&c->thread, ckpt_main, c) != 0)
    goto fail_cond;
  c->running = 1;
  sqlite3_wal_hook(s->db, wal_hook_cb, s);
  return 0;
fail_cond:
  uv_cond_destroy(&c->cond);
fail_mu:
  uv_mutex_destroy(&c->mu);
fail_db:
  sqlite3_close(c->db);
  c->db = NULL;
  snprintf(err, errlen, "%s: cannot start the checkpointer", path);
  return -1;
}

/* Stop the checkpointer; the writer's connection, closed last, checkpoints
 * what is left. */
static void ckpt_stop(stls_store_t *s) {
  ckpt_t *c = &s->ckpt;
  if (!c->running)
    return;
  sqlite3_wal_hook(s->db, NULL, NULL);
  uv_mutex_lock(&c->mu);
  c->stop = 1;
  uv_cond_signal(&c->cond);
  uv_mutex_unlock(&c->mu);
  uv_thread_join(&c->thread);
  uv_cond_destroy(&c->cond);
  uv_mutex_destroy(&c->mu);
  sqlite3_close(c->db);
  c->db = NULL;
  c->running = 0;
}

uint64_t stls__store_checkpoints(stls_store_t *s) {
  uint64_t n = 0;
  if (s->ckpt.running) {
    uv_mutex_lock(&s->ckpt.mu);
    n = s->ckpt.runs;
    uv_mutex_unlock(&s->ckpt.mu);
  }
  return n;
}

int stls_store_open(stls_store_t **out, const char *path, char *err,
                    size_t errlen) {
  stls_store_t *s = calloc(1, sizeof(*s));
  char *msg = NULL;
  *out = NULL;
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (sqlite3_open_v2(path, &s->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                          SQLITE_OPEN_NOMUTEX,
                      NULL) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path,
             s->db ? sqlite3_errmsg(s->db) : "cannot open");
    goto fail;
  }
  sqlite3_busy_timeout(s->db, 5000);
  /* WAL: readers never block the writer; NORMAL: a commit survives the
   * process being killed (not a power cut: the last commits before the
   * checkpointer's last fsync can be lost, the file stays consistent), at
   * a fraction of FULL's cost. Checkpoints run on their own thread
   * (ckpt_start), not in the commit; a WAL file that grew while they
   * caught up is cut back to 64 MB when it is reused. */
  if (sqlite3_exec(s->db,
                   "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                   " PRAGMA journal_size_limit = 67108864;"
                   " PRAGMA foreign_keys = OFF; PRAGMA cache_size = -16000;",
                   NULL, NULL, &msg) != SQLITE_OK) {
    snprintf(err, errlen, "%s: %s", path, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    goto fail;
  }
  if (migrate(s, err, errlen) != 0)
    goto fail;
  for (int i = 0; i < ST_COUNT; i++)
    if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                           &s->st[i], NULL) != SQLITE_OK) {
      snprintf(err, errlen, "prepare %d: %s", i, sqlite3_errmsg(s->db));
      goto fail;
    }
  if (facts_load(s) != 0) {
    snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
    goto fail;
  }
  if (ckpt_start(s, path, err, errlen) != 0)
    goto fail;
  *out = s;
  return 0;
fail:
  stls_store_close(s);
  return -1;
}

void stls_store_close(stls_store_t *s) {
  if (!s)
    return;
  if (s->in_tx && s->st[ST_ROLLBACK])
    step_done(stmt(s, ST_ROLLBACK));
  ckpt_stop(s);
  for (int i = 0; i < ST_COUNT; i++)
    sqlite3_finalize(s->st[i]);
  sqlite3_close(s->db);
  free(s);
}

int stls_store_begin(stls_store_t *s) {
  if (s->in_tx)
    return -1;
  if (step_done(stmt(s, ST_BEGIN)) != 0)
    return -1;
  s->in_tx = 1;
  return 0;
}

int stls_store_commit(stls_store_t *s) {
  if (!s->in_tx)
    return -1;
  if (step_done(stmt(s, ST_COMMIT)) != 0) {
    stls_store_rollback(s);
    return -1;
  }
  s->in_tx = 0;
  return 0;
}

int stls_store_rollback(stls_store_t *s) {
  int rc;
  if (!s->in_tx)
    return -1;
  s->in_tx = 0;
  rc = step_done(stmt(s, ST_ROLLBACK));
  /* The totals followed the writes that are now undone. */
  if (facts_load(s) != 0)
    rc = -1;
  return rc;
}

/* Run fn's writes as one transaction unless the caller opened one. */
#define AUTO_TX_BEGIN(s)                                                       \
  int own_tx_ = !(s)->in_tx;                                                   \
  if (own_tx_ && stls_store_begin(s) != 0)                                     \
    return -1;
#define AUTO_TX_END(s, rc)                                                     \
  do {                                                                         \
    if (own_tx_) {                                                             \
      if ((rc) == 0)                                                           \
        (rc) = stls_store_commit(s);                                           \
      else                                                                     \
        stls_store_rollback(s);                                                \
    }                                                                          \
  } while (0)

int stls_store_latest(stls_store_t *s, const char *domain, char **json,
                      size_t *len, int64_t *scanned_at) {
  sqlite3_stmt *st = stmt(s, ST_LATEST);
  int rc;
  bind_text(st, 1, domain);
  rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    return 0;
  }
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return -1;
  }
  if (scanned_at)
    *scanned_at = sqlite3_column_int64(st, 1);
  if (json) {
    const unsigned char *t = sqlite3_column_text(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    if (!t || !(*json = malloc(n + 1))) {
      sqlite3_reset(st);
      return -1;
    }
    memcpy(*json, t, n);
    (*json)[n] = '\0';
    if (len)
      *len = n;
  }
  sqlite3_reset(st);
  return 1;
}

int stls_store_put(stls_store_t *s, const stls_store_record_t *r, bool latest,
                   int64_t *id) {
  sqlite3_stmt *st;
  int64_t rid;
  int rc = -1;
  AUTO_TX_BEGIN(s);
  st = stmt(s, ST_REC_INSERT);
  bind_text(st, 1, r->domain);
  sqlite3_bind_int64(st, 2, r->scanned_at);
  sqlite3_bind_text(st, 3, r->json, (int)r->json_len, SQLITE_STATIC);
  if (step_done(st) != 0)
    goto out;
  rid = sqlite3_last_insert_rowid(s->db);
  if (latest) {
    char facts[2048];
    size_t fl = 0;
    int64_t na_min = 0;
    for (size_t i = 0; i < r->n_hosts; i++) {
      const stls_store_host_t *h = &r->hosts[i];
      int n = snprintf(facts + fl, sizeof(facts) - fl, "%s%.39s%c%.15s%c%c",
                       i ? "\x1e" : "", h->status ? h->status : "unknown",
                       FACT_US, h->tls_version ? h->tls_version : "", FACT_US,
                       h->trusted > 0    ? '1'
                       : h->trusted == 0 ? '0'
                                         : '-');
      if (n < 0 || (size_t)n >= sizeof(facts) - fl) {
        facts[fl] = '\0'; /* hosts past the room are not counted */
        break;
      }
      fl += (size_t)n;
      if (h->not_after > 0 && (na_min == 0 || h->not_after < na_min))
        na_min = h->not_after;
    }
    facts[fl] = '\0';
    /* Take the domain's previous record out of the totals. */
    st = stmt(s, ST_DOM_FACTS);
    bind_text(st, 1, r->domain);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
      facts_apply(s, (const char *)sqlite3_column_text(st, 0),
                  (const char *)sqlite3_column_text(st, 1),
                  (const char *)sqlite3_column_text(st, 2), -1);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      rc = -1;
      goto out;
    }
    rc = -1;
    st = stmt(s, ST_DOM_UPSERT);
    bind_text(st, 1, r->domain);
    sqlite3_bind_int64(st, 2, rid);
    sqlite3_bind_int64(st, 3, r->scanned_at);
    bind_text(st, 4, r->status ? r->status : "ok");
    bind_text(st, 5, r->recommended);
    sqlite3_bind_text(st, 6, facts, (int)fl, SQLITE_TRANSIENT);
    if (na_min)
      sqlite3_bind_int64(st, 7, na_min);
    else
      sqlite3_bind_null(st, 7);
    if (step_done(st) != 0)
      goto out;
    facts_apply(s, r->status ? r->status : "ok", r->recommended, facts, 1);
  }
  if (id)
    *id = rid;
  rc = 0;
out:
  AUTO_TX_END(s, rc);
  return rc;
}

int stls_store_history(stls_store_t *s, const char *domain, int limit,
                       void (*cb)(const char *json, size_t len, void *arg),
                       void *arg) {
  sqlite3_stmt *st = stmt(s, ST_HISTORY);
  int n = 0, rc;
  bind_text(st, 1, domain);
  sqlite3_bind_int(st, 2, limit);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    cb((const char *)sqlite3_column_text(st, 0),
       (size_t)sqlite3_column_bytes(st, 0), arg);
    n++;
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? n : -1;
}

int stls_store_event_add(stls_store_t *s, stls_store_event_t *ev) {
  sqlite3_stmt *st = stmt(s, ST_EVENT_INSERT);
  sqlite3_bind_int64(st, 1, ev->at);
  bind_text(st, 2, ev->domain);
  bind_text(st, 3, ev->type);
  bind_text(st, 4, ev->mx);
  bind_text(st, 5, ev->ip);
  bind_text(st, 6, ev->before);
  bind_text(st, 7, ev->after);
  if (step_done(st) != 0)
    return -1;
  ev->cursor = sqlite3_last_insert_rowid(s->db);
  return 0;
}

static const char *col_text(sqlite3_stmt *st, int i) {
  return (const char *)sqlite3_column_text(st, i);
}

int stls_store_events(stls_store_t *s, int64_t since, int limit,
                      void (*cb)(const stls_store_event_t *ev, void *arg),
                      void *arg) {
  sqlite3_stmt *st = stmt(s, ST_EVENTS);
  int n = 0, rc;
  sqlite3_bind_int64(st, 1, since);
  sqlite3_bind_int(st, 2, limit);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    stls_store_event_t ev = {
        .cursor = sqlite3_column_int64(st, 0),
        .at = sqlite3_column_int64(st, 1),
        .domain = col_text(st, 2),
        .type = col_text(st, 3),
        .mx = col_text(st, 4),
        .ip = col_text(st, 5),
        .before = col_text(st, 6),
        .after = col_text(st, 7),
    };
    cb(&ev, arg);
    n++;
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? n : -1;
}

/* One integer from a one-row query; -1 on error. */
static int64_t one_int(sqlite3_stmt *st) {
  int64_t v = -1;
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return v;
}

int64_t stls_store_last_cursor(stls_store_t *s) {
  return one_int(stmt(s, ST_LAST_CURSOR));
}

static int agg_key_cmp(const void *a, const void *b) {
  return strcmp(a, b); /* key[] is the first member */
}

int stls_store_aggregate(stls_store_t *s, stls_store_agg_t agg,
                         void (*cb)(const char *key, int64_t n, void *arg),
                         void *arg) {
  agg_t copy;
  if ((unsigned)agg >= STLS_STORE_AGG_COUNT)
    return -1;
  /* A copy, sorted by key, so the output is stable and cb may call us. */
  copy = s->agg[agg];
  qsort(copy.v, copy.n, sizeof(copy.v[0]), agg_key_cmp);
  for (size_t i = 0; i < copy.n; i++)
    if (copy.v[i].n > 0)
      cb(copy.v[i].key[0] ? copy.v[i].key : NULL, copy.v[i].n, arg);
  return 0;
}

int64_t stls_store_count_expiring(stls_store_t *s, int64_t before) {
  sqlite3_stmt *st = stmt(s, ST_COUNT_EXPIRING);
  sqlite3_bind_int64(st, 1, before);
  return one_int(st);
}

int64_t stls_store_count_domains(stls_store_t *s) {
  return one_int(stmt(s, ST_COUNT_DOMAINS));
}

int stls_store_job_create(stls_store_t *s, const char *id, int64_t created_at,
                          const char *const *domains, size_t n) {
  sqlite3_stmt *st;
  int rc = -1;
  AUTO_TX_BEGIN(s);
  st = stmt(s, ST_JOB_INSERT);
  bind_text(st, 1, id);
  sqlite3_bind_int64(st, 2, created_at);
  sqlite3_bind_int64(st, 3, (int64_t)n);
  if (step_done(st) != 0)
    goto out;
  for (size_t i = 0; i < n; i++) {
    st = stmt(s, ST_JOB_ITEM_INSERT);
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)i);
    bind_text(st, 3, domains[i]);
    if (step_done(st) != 0)
      goto out;
  }
  rc = 0;
out:
  AUTO_TX_END(s, rc);
  return rc;
}

int stls_store_job_state(stls_store_t *s, const char *id, const char *state,
                         int64_t finished_at) {
  sqlite3_stmt *st = stmt(s, ST_JOB_STATE);
  bind_text(st, 1, id);
  bind_text(st, 2, state);
  sqlite3_bind_int64(st, 3, finished_at);
  return step_done(st);
}

int stls_store_job_item_done(stls_store_t *s, const char *id, size_t idx,
                             int64_t record_id) {
  sqlite3_stmt *st;
  int rc = -1;
  AUTO_TX_BEGIN(s);
  st = stmt(s, ST_JOB_ITEM_DONE);
  bind_text(st, 1, id);
  sqlite3_bind_int64(st, 2, (int64_t)idx);
  sqlite3_bind_int64(st, 3, record_id);
  if (step_done(st) != 0)
    goto out;
  /* Count it once, even when a restart delivered the item twice. */
  if (sqlite3_changes(s->db) == 1) {
    st = stmt(s, ST_JOB_DONE_INC);
    bind_text(st, 1, id);
    if (step_done(st) != 0)
      goto out;
  }
  rc = 0;
out:
  AUTO_TX_END(s, rc);
  return rc;
}

static void job_row(sqlite3_stmt *st, stls_store_job_t *j) {
  memset(j, 0, sizeof(*j));
  snprintf(j->id, sizeof(j->id), "%s", col_text(st, 0) ? col_text(st, 0) : "");
  j->created_at = sqlite3_column_int64(st, 1);
  snprintf(j->state, sizeof(j->state), "%s",
           col_text(st, 2) ? col_text(st, 2) : "");
  j->total = sqlite3_column_int64(st, 3);
  j->done = sqlite3_column_int64(st, 4);
  j->finished_at = sqlite3_column_int64(st, 5);
}

int stls_store_job_get(stls_store_t *s, const char *id, stls_store_job_t *j) {
  sqlite3_stmt *st = stmt(s, ST_JOB_GET);
  int rc;
  bind_text(st, 1, id);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    job_row(st, j);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int stls_store_job_list(stls_store_t *s, int limit,
                        void (*cb)(const stls_store_job_t *j, void *arg),
                        void *arg) {
  sqlite3_stmt *st = stmt(s, ST_JOB_LIST);
  stls_store_job_t j;
  int n = 0, rc;
  sqlite3_bind_int(st, 1, limit);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    job_row(st, &j);
    cb(&j, arg);
    n++;
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? n : -1;
}

int stls_store_job_results(stls_store_t *s, const char *id,
                           void (*cb)(const char *json, size_t len, void *arg),
                           void *arg) {
  sqlite3_stmt *st = stmt(s, ST_JOB_RESULTS);
  int n = 0, rc;
  bind_text(st, 1, id);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    cb(col_text(st, 0), (size_t)sqlite3_column_bytes(st, 0), arg);
    n++;
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? n : -1;
}

int stls_store_job_pending(stls_store_t *s,
                           void (*cb)(const char *id, size_t idx,
                                      const char *domain, void *arg),
                           void *arg) {
  sqlite3_stmt *st = stmt(s, ST_JOB_PENDING);
  int n = 0, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    cb(col_text(st, 0), (size_t)sqlite3_column_int64(st, 1), col_text(st, 2),
       arg);
    n++;
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? n : -1;
}
