/* The service's store: every record, every change event and every scan
 * job, in SQLite (WAL). The only module that knows SQL, so another backend
 * could sit behind the same functions.
 *
 * One writer connection, used from one thread (a second one, on a thread
 * of its own, only copies the WAL into the database file). Writes made between
 * stls_store_begin() and stls_store_commit() are one transaction; without
 * them every write commits on its own. A record or an event is visible to
 * readers only once committed. */
#ifndef STLS_STORE_H
#define STLS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct stls_store_s stls_store_t;

/* Facts of one host of a record, kept for the metrics. */
typedef struct stls_store_host_s {
  const char *status;      /* HOST status */
  const char *tls_version; /* negotiated, or NULL */
  int trusted;             /* 1, 0, or -1 when there was no TLS */
  int64_t not_after;       /* leaf notAfter (Unix time), or 0 */
} stls_store_host_t;

typedef struct stls_store_record_s {
  const char *domain;
  int64_t scanned_at;      /* Unix time */
  const char *status;      /* domain status */
  const char *recommended; /* policy level, or NULL */
  const char *json;        /* the record as one line of JSON (json_len bytes,
                              not necessarily NUL-terminated) */
  size_t json_len;
  const stls_store_host_t *hosts;
  size_t n_hosts;
} stls_store_record_t;

typedef struct stls_store_event_s {
  int64_t cursor; /* set by the store */
  int64_t at;
  const char *domain, *type;
  const char *mx, *ip;        /* NULL for domain-level events */
  const char *before, *after; /* JSON texts; NULL for null */
} stls_store_event_t;

typedef struct stls_store_job_s {
  char id[40];
  int64_t created_at, finished_at; /* finished_at 0 while not finished */
  char state[16];                  /* queued | running | done | cancelled */
  int64_t total, done;
} stls_store_job_t;

/* Open (creating and migrating) the database at path. 0, or -1 with a
 * reason in err. */
int stls_store_open(stls_store_t **out, const char *path, char *err,
                    size_t errlen);
void stls_store_close(stls_store_t *s);
/* The last error message of the store. */
const char *stls_store_errmsg(stls_store_t *s);
/* Schema version (PRAGMA user_version) after migration. */
int stls_store_version(stls_store_t *s);
/* Checkpoints the store's background checkpointer has run (for tests). */
uint64_t stls__store_checkpoints(stls_store_t *s);

int stls_store_begin(stls_store_t *s);
int stls_store_commit(stls_store_t *s);
int stls_store_rollback(stls_store_t *s);

/* The latest record of domain: 1 found (*json malloc'ed, NUL-terminated,
 * *scanned_at set), 0 never seen, -1 error. json may be NULL to test. */
int stls_store_latest(stls_store_t *s, const char *domain, char **json,
                      size_t *len, int64_t *scanned_at);

/* Store a record; when latest, it becomes the domain's latest record (its
 * host facts replace the previous ones). *id may be NULL. 0 or -1. */
int stls_store_put(stls_store_t *s, const stls_store_record_t *r, bool latest,
                   int64_t *id);

/* The domain's records except the latest, newest first, at most limit;
 * cb gets each record's JSON. Returns how many, or -1. */
int stls_store_history(stls_store_t *s, const char *domain, int limit,
                       void (*cb)(const char *json, size_t len, void *arg),
                       void *arg);

/* Append an event; its cursor is returned in ev->cursor. 0 or -1. */
int stls_store_event_add(stls_store_t *s, stls_store_event_t *ev);
/* Events with cursor > since, oldest first, at most limit. Returns how
 * many, or -1. */
int stls_store_events(stls_store_t *s, int64_t since, int limit,
                      void (*cb)(const stls_store_event_t *ev, void *arg),
                      void *arg);
/* The newest cursor (0 when there is no event). */
int64_t stls_store_last_cursor(stls_store_t *s);

/* Aggregates for the metrics: cb(key, count) per group; key NULL for a
 * NULL value. 0 or -1. */
#define STLS_STORE_AGG_MAP(XX)                                                 \
  XX(RECOMMENDED, "recommended")                                               \
  XX(DOMAIN_STATUS, "domain_status")                                           \
  XX(HOST_STATUS, "host_status")                                               \
  XX(TLS_VERSION, "tls_version")                                               \
  XX(HOST_TRUSTED, "host_trusted")

typedef enum {
#define XX(name, s) STLS_STORE_AGG_##name,
  STLS_STORE_AGG_MAP(XX)
#undef XX
      STLS_STORE_AGG_COUNT
} stls_store_agg_t;

int stls_store_aggregate(stls_store_t *s, stls_store_agg_t agg,
                         void (*cb)(const char *key, int64_t n, void *arg),
                         void *arg);
/* Hosts (latest records) whose leaf certificate ends before t; -1 error. */
int64_t stls_store_count_expiring(stls_store_t *s, int64_t before);
/* Domains known; -1 error. */
int64_t stls_store_count_domains(stls_store_t *s);

/* Jobs: a scan request and its domains, in order. */
int stls_store_job_create(stls_store_t *s, const char *id, int64_t created_at,
                          const char *const *domains, size_t n);
int stls_store_job_state(stls_store_t *s, const char *id, const char *state,
                         int64_t finished_at);
/* Item idx of job id got record record_id; done + 1. */
int stls_store_job_item_done(stls_store_t *s, const char *id, size_t idx,
                             int64_t record_id);
/* 1 found, 0 unknown, -1 error. */
int stls_store_job_get(stls_store_t *s, const char *id, stls_store_job_t *j);
/* Newest first. Returns how many, or -1. */
int stls_store_job_list(stls_store_t *s, int limit,
                        void (*cb)(const stls_store_job_t *j, void *arg),
                        void *arg);
/* The finished records of a job, in submission order. */
int stls_store_job_results(stls_store_t *s, const char *id,
                           void (*cb)(const char *json, size_t len, void *arg),
                           void *arg);
/* Items of unfinished jobs (state queued or running) not done yet, for a
 * restart: cb(job id, idx, domain). */
int stls_store_job_pending(stls_store_t *s,
                           void (*cb)(const char *id, size_t idx,
                                      const char *domain, void *arg),
                           void *arg);

#endif
