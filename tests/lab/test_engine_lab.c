/* The scan engine driven in-process, on a loop this test owns, against the
 * lab DNS (run-with-dns.sh) and a tiny SMTP server started here on
 * mx-plain's address (127.0.25.1:25): records come back by callback with
 * their tags, shared endpoints are probed once, invalid names become
 * invalid-domain records, IPv6 reachability is asked per address, a
 * stopped engine refuses work, -c is one budget for all workers. Runs
 * only inside the lab namespace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "stls/engine.h"
#include "stls/writer.h"

/* ---- a minimal SMTP server: greeting, EHLO without STARTTLS, QUIT ---- */

static atomic_int smtp_connections;
static int smtp_fd = -1;

static void *smtp_main(void *arg) {
  (void)arg;
  for (;;) {
    char buf[512];
    ssize_t n;
    int c = accept(smtp_fd, NULL, NULL);
    if (c < 0)
      return NULL;
    atomic_fetch_add(&smtp_connections, 1);
    (void)!write(c, "220 mx-plain.lab.test ESMTP engine-test\r\n", 41);
    while ((n = read(c, buf, sizeof(buf) - 1)) > 0) {
      buf[n] = '\0';
      if (!strncmp(buf, "EHLO", 4))
        (void)!write(c, "250-mx-plain.lab.test\r\n250 PIPELINING\r\n", 39);
      else if (!strncmp(buf, "QUIT", 4)) {
        (void)!write(c, "221 bye\r\n", 9);
        break;
      } else
        (void)!write(c, "502 no\r\n", 8);
    }
    close(c);
  }
}

static pthread_t smtp_thread;

/* A listening TCP socket on a lab address, or -1 (said on stderr). */
static int listen_on(const char *ip, int port) {
  struct sockaddr_in a;
  int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0) {
    fprintf(stderr, "test_engine_lab: bind %s:%d (inside the lab only): %s\n",
            ip, port, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static int start_smtp(void **state) {
  (void)state;
  if ((smtp_fd = listen_on("127.0.25.1", 25)) < 0)
    return -1;
  return pthread_create(&smtp_thread, NULL, smtp_main, NULL);
}

static int stop_smtp(void **state) {
  (void)state;
  shutdown(smtp_fd, SHUT_RDWR);
  close(smtp_fd);
  pthread_join(smtp_thread, NULL);
  return 0;
}

/* ---- collecting records --------------------------------------------- */

#define MAX_RECS 16

typedef struct got_s {
  char domain[80];
  char status[32];
  intptr_t tag;
  size_t n_hosts;
  char host_status[4][32];
  char host_ip[4][64];
  char host_code[4][48];
  int host_shared[4];
  int has_error;
  int valid_json;
} got_t;

typedef struct run_s {
  uv_loop_t loop;
  stls_engine_t *e;
  got_t got[MAX_RECS];
  size_t n;
  size_t expect;
} run_t;

static void record_cb(stls_engine_t *e, const stls_domain_record_t *rec,
                      void *tag, void *arg) {
  run_t *r = arg;
  got_t *g;
  cJSON *j;
  assert_true(r->n < MAX_RECS);
  g = &r->got[r->n++];
  snprintf(g->domain, sizeof(g->domain), "%s", rec->domain);
  snprintf(g->status, sizeof(g->status), "%s", rec->status);
  g->tag = (intptr_t)tag;
  g->n_hosts = rec->n_hosts;
  g->has_error = rec->input_error != NULL;
  for (size_t i = 0; i < rec->n_hosts && i < 4; i++) {
    const stls_host_result_t *h = &rec->hosts[i].res;
    snprintf(g->host_status[i], sizeof(g->host_status[i]), "%s",
             stls_host_status_name(h->status));
    snprintf(g->host_ip[i], sizeof(g->host_ip[i]), "%s", h->ip);
    snprintf(g->host_code[i], sizeof(g->host_code[i]), "%s",
             h->error.set ? h->error.code : "");
    g->host_shared[i] = rec->hosts[i].shared;
  }
  j = stls_json_domain(rec);
  g->valid_json = j != NULL;
  cJSON_Delete(j);
  if (r->n == r->expect) {
    assert_int_equal(stls_engine_pending(e), 0);
    stls_engine_free(e); /* allowed from the callback */
    r->e = NULL;
  }
}

static void cfg_lab(stls_engine_cfg_t *cfg) {
  stls_engine_cfg_defaults(cfg);
  cfg->resolvers = "127.0.53.53";
  cfg->limits.workers = 2;
  cfg->limits.rate = 0;
  cfg->limits.retry_delay_ms = -1;
  cfg->probe.ehlo_name = "engine-test.lab.test";
  cfg->probe.connect_timeout_ms = 2000;
  cfg->probe.greeting_timeout_ms = 2000;
  cfg->probe.command_timeout_ms = 2000;
}

static const got_t *find(const run_t *r, intptr_t tag) {
  for (size_t i = 0; i < r->n; i++)
    if (r->got[i].tag == tag)
      return &r->got[i];
  fail_msg("no record for tag %ld", (long)tag);
  return NULL;
}

static void test_records_by_callback(void **state) {
  run_t *r = calloc(1, sizeof(*r));
  stls_engine_cfg_t cfg;
  char err[300];
  const got_t *g1, *g2, *bad, *nx, *u6;
  (void)state;
  cfg_lab(&cfg);
  atomic_store(&smtp_connections, 0);
  uv_loop_init(&r->loop);
  assert_int_equal(
      stls_engine_new(&r->e, &r->loop, &cfg, record_cb, r, err, sizeof(err)),
      0);
  r->expect = 5;
  /* Two domains on one endpoint: one connection, one shared result. */
  assert_int_equal(stls_engine_submit(r->e, "PLAIN.lab.test.", (void *)1), 0);
  assert_int_equal(stls_engine_submit(r->e, "plain.lab.test", (void *)2), 0);
  assert_int_equal(stls_engine_submit(r->e, "not a domain", (void *)3), 0);
  assert_int_equal(stls_engine_submit(r->e, "nonexistent.lab.test", (void *)4),
                   0);
  assert_int_equal(stls_engine_submit(r->e, "unreach6.lab.test", (void *)5), 0);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  assert_null(r->e);
  assert_int_equal(r->n, 5);

  g1 = find(r, 1);
  g2 = find(r, 2);
  assert_string_equal(g1->domain, "plain.lab.test"); /* normalised */
  assert_string_equal(g1->status, "ok");
  assert_int_equal(g1->n_hosts, 1);
  assert_string_equal(g1->host_status[0], "starttls-not-supported");
  assert_string_equal(g2->host_status[0], "starttls-not-supported");
  assert_int_equal(g1->host_shared[0] + g2->host_shared[0], 1);
  assert_int_equal(atomic_load(&smtp_connections), 1);

  bad = find(r, 3);
  assert_string_equal(bad->status, "invalid-domain");
  assert_true(bad->has_error);
  nx = find(r, 4);
  assert_string_equal(nx->status, "nxdomain");

  /* --ipv6 auto: the kernel has no route to 2001:db8:ffff::1 here, so the
   * address is network-unreachable (ENETUNREACH) without a connection;
   * the IPv4 address is probed (nothing listens: refused). */
  u6 = find(r, 5);
  assert_int_equal(u6->n_hosts, 2);
  for (size_t i = 0; i < 2; i++) {
    if (strchr(u6->host_ip[i], ':')) {
      assert_string_equal(u6->host_status[i], "network-unreachable");
      assert_string_equal(u6->host_code[i], "ENETUNREACH");
    } else {
      assert_string_equal(u6->host_status[i], "connection-refused");
    }
  }
  for (size_t i = 0; i < r->n; i++)
    assert_true(r->got[i].valid_json);
  uv_run(&r->loop, UV_RUN_DEFAULT); /* the engine's close callback */
  assert_int_equal(uv_loop_close(&r->loop), 0);
  free(r);
}

static void drop_cb(void *tag, void *arg) {
  (void)tag;
  (*(int *)arg)++;
}

static void count_cb(stls_engine_t *e, const stls_domain_record_t *rec,
                     void *tag, void *arg) {
  (void)e;
  (void)rec;
  (void)tag;
  (*(int *)arg)++;
}

/* A full queue says EAGAIN; a stopped engine says ECANCELED and hands the
 * queued domains back. */
static void test_queue_and_stop(void **state) {
  uv_loop_t loop;
  stls_engine_cfg_t cfg;
  stls_engine_t *e;
  char err[300];
  int dropped = 0, records = 0, r, eagain = 0;
  (void)state;
  cfg_lab(&cfg);
  cfg.limits.workers = 1;
  cfg.limits.concurrency = 1;
  cfg.limits.queue_cap = 2;
  uv_loop_init(&loop);
  assert_int_equal(
      stls_engine_new(&e, &loop, &cfg, count_cb, &records, err, sizeof(err)),
      0);
  /* The worker takes up to jobs_max at once; past that, the queue fills. */
  for (int i = 0; i < 40; i++) {
    char name[64];
    snprintf(name, sizeof(name), "d%d.nonexistent.lab.test", i);
    r = stls_engine_submit(e, name, NULL);
    assert_true(r == 0 || r == UV_EAGAIN);
    eagain += r == UV_EAGAIN;
  }
  assert_true(eagain > 0);
  stls_engine_stop(e, drop_cb, &dropped);
  assert_int_equal(stls_engine_submit(e, "plain.lab.test", NULL), UV_ECANCELED);
  assert_int_equal(stls_engine_queued(e), 0);
  /* What was started still ends with a record. */
  while (stls_engine_pending(e) > 0)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(records + dropped, 40 - eagain);
  stls_engine_free(e);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- -c is one budget for the whole engine -------------------------- */

/* A server that accepts and never greets, noting when each connection
 * came: 127.0.28.1 is mx-tarpit1's address in the lab zone. */
#define HOLD_MAX 8
static int hold_fd = -1;
static int64_t hold_at[HOLD_MAX];
static atomic_int hold_n;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *hold_main(void *arg) {
  int held[HOLD_MAX];
  int n = 0;
  (void)arg;
  for (;;) {
    int c = accept(hold_fd, NULL, NULL);
    if (c < 0)
      break;
    if (n < HOLD_MAX) {
      hold_at[n] = mono_ms();
      held[n++] = c;
      atomic_store(&hold_n, n);
    } else {
      close(c);
    }
  }
  for (int i = 0; i < n; i++)
    close(held[i]);
  return NULL;
}

/* Four silent servers' probes on one address, so all of them belong to
 * one worker of two. With -c 4 all four run at once: the budget is the
 * engine's, not split into two per worker, so a worker whose probes hang
 * cannot leave the other worker's share idle. (Split, the third
 * connection came only after a greeting timeout, 1.5 s later.) */
static void test_concurrency_is_shared(void **state) {
  static const char *domains[] = {
      "tarpit00000.lab.test", "tarpit00016.lab.test", "tarpit00032.lab.test",
      "tarpit00048.lab.test"};
  pthread_t th;
  uv_loop_t loop;
  stls_engine_cfg_t cfg;
  stls_engine_t *e;
  char err[300];
  int records = 0;
  (void)state;
  assert_true((hold_fd = listen_on("127.0.28.1", 2526)) >= 0);
  atomic_store(&hold_n, 0);
  assert_int_equal(pthread_create(&th, NULL, hold_main, NULL), 0);

  cfg_lab(&cfg);
  cfg.limits.workers = 2;
  cfg.limits.concurrency = 4;
  cfg.limits.per_ip = 4;
  cfg.dedupe = false; /* one SNI and address: four probes, not one */
  cfg.probe.port = 2526;
  cfg.probe.greeting_timeout_ms = 1500;
  uv_loop_init(&loop);
  assert_int_equal(
      stls_engine_new(&e, &loop, &cfg, count_cb, &records, err, sizeof(err)),
      0);
  for (size_t i = 0; i < 4; i++)
    assert_int_equal(stls_engine_submit(e, domains[i], NULL), 0);
  while (stls_engine_pending(e) > 0)
    uv_run(&loop, UV_RUN_ONCE);
  stls_engine_free(e);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  shutdown(hold_fd, SHUT_RDWR);
  close(hold_fd);
  pthread_join(th, NULL);

  assert_int_equal(records, 4);
  assert_int_equal(atomic_load(&hold_n), 4);
  for (int i = 1; i < 4; i++)
    print_message("connection %d: +%lld ms\n", i + 1,
                  (long long)(hold_at[i] - hold_at[0]));
  assert_true(hold_at[3] - hold_at[0] < 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_records_by_callback),
      cmocka_unit_test(test_queue_and_stop),
      cmocka_unit_test(test_concurrency_is_shared),
  };
  return cmocka_run_group_tests(tests, start_smtp, stop_smtp);
}
