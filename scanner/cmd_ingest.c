/* `starttls-scan ingest URL FILE...`: post NDJSON records (the output of
 * `scan`, e.g. one file per shard) to a service's /v1/ingest, in batches
 * that fit its body limit. A command-line client: plain blocking sockets
 * (there is no loop to block), llhttp for the answers. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <llhttp.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "stls/cli.h"
#include "stls/serve.h"
#include "stls/util.h"

#define EXIT_USAGE 2
#define INGEST_DEFAULT_BATCH (1024 * 1024 - 4096)
#define ANSWER_MAX (4 * 1024 * 1024)

const char stls_ingest_usage[] =
    "usage: starttls-scan ingest URL FILE... [--token-file FILE] [--batch "
    "BYTES]\n"
    "\n"
    "Posts the NDJSON records in FILEs ('-' = stdin; for example the outputs\n"
    "of a sharded scan, one file per shard) to a running 'starttls-scan\n"
    "serve' at URL (http://HOST:PORT, plain HTTP), in batches of whole lines\n"
    "under BYTES (default 1044480, under the service's default body limit).\n"
    "Prints how many lines were accepted and every rejected line as\n"
    "FILE:LINE: reason.\n"
    "\n"
    "  --token-file FILE   send 'Authorization: Bearer' with its first line\n"
    "  --batch BYTES       largest request body (1024..1073741824)\n"
    "\n"
    "Exit status: 0 all accepted, 1 some lines rejected or a request failed,\n"
    "2 bad usage.\n";

static int usage_err(const char *fmt, const char *arg) {
  fprintf(stderr, "starttls-scan ingest: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (try 'starttls-scan help ingest')\n");
  return EXIT_USAGE;
}

typedef struct target_s {
  char host[256], port[8], path[512];
} target_t;

static int parse_url(const char *url, target_t *t) {
  const char *p, *slash, *colon;
  size_t n;
  if (strncmp(url, "http://", 7) != 0)
    return -1;
  p = url + 7;
  slash = strchr(p, '/');
  n = slash ? (size_t)(slash - p) : strlen(p);
  if (n == 0 || n >= sizeof(t->host))
    return -1;
  if (p[0] == '[') {
    const char *rb = memchr(p, ']', n);
    if (!rb)
      return -1;
    memcpy(t->host, p + 1, (size_t)(rb - p - 1));
    t->host[rb - p - 1] = '\0';
    colon = rb + 1 < p + n && rb[1] == ':' ? rb + 1 : NULL;
  } else {
    colon = memchr(p, ':', n);
    size_t hl = colon ? (size_t)(colon - p) : n;
    memcpy(t->host, p, hl);
    t->host[hl] = '\0';
  }
  if (colon) {
    size_t pl = (size_t)(p + n - colon - 1);
    if (pl == 0 || pl >= sizeof(t->port))
      return -1;
    memcpy(t->port, colon + 1, pl);
    t->port[pl] = '\0';
  } else {
    strcpy(t->port, "80");
  }
  snprintf(t->path, sizeof(t->path), "%s/v1/ingest",
           slash && strcmp(slash, "/") ? slash : "");
  /* A URL that names the endpoint itself is taken as is. */
  if (slash && strstr(slash, "/v1/ingest"))
    stls_strlcpy(t->path, slash, sizeof(t->path));
  return t->host[0] ? 0 : -1;
}

typedef struct answer_s {
  char *body;
  size_t len;
  int done, too_big;
} answer_t;

static int ans_body(llhttp_t *p, const char *at, size_t len) {
  answer_t *a = p->data;
  char *b;
  if (a->len + len > ANSWER_MAX) {
    a->too_big = 1;
    return -1;
  }
  if (!(b = realloc(a->body, a->len + len + 1)))
    return -1;
  memcpy(b + a->len, at, len);
  a->body = b;
  a->len += len;
  b[a->len] = '\0';
  return 0;
}

static int ans_done(llhttp_t *p) {
  ((answer_t *)p->data)->done = 1;
  return HPE_PAUSED;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* POST body to t; the status, or -1 with a reason in err. */
static int post(const target_t *t, const char *token, const char *body,
                size_t len, answer_t *a, char *err, size_t errlen) {
  struct addrinfo hints = {0}, *ai = NULL, *x;
  char head[1400], buf[16384];
  llhttp_t parser;
  llhttp_settings_t st;
  int fd = -1, n, rc;
  hints.ai_socktype = SOCK_STREAM;
  if ((rc = getaddrinfo(t->host, t->port, &hints, &ai)) != 0) {
    snprintf(err, errlen, "%s: %s", t->host, gai_strerror(rc));
    return -1;
  }
  for (x = ai; x; x = x->ai_next) {
    fd = socket(x->ai_family, x->ai_socktype, x->ai_protocol);
    if (fd >= 0 && connect(fd, x->ai_addr, x->ai_addrlen) == 0)
      break;
    if (fd >= 0)
      close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  if (fd < 0) {
    snprintf(err, errlen, "cannot connect to %s:%s: %s", t->host, t->port,
             strerror(errno));
    return -1;
  }
  n = snprintf(head, sizeof(head),
               "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: "
               "application/x-ndjson\r\nContent-Length: %zu\r\n%s%s%s"
               "Connection: close\r\n\r\n",
               t->path, t->host, t->port, len,
               token ? "Authorization: Bearer " : "", token ? token : "",
               token ? "\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof(head) || send_all(fd, head, (size_t)n) ||
      send_all(fd, body, len)) {
    snprintf(err, errlen, "cannot send: %s", strerror(errno));
    close(fd);
    return -1;
  }
  llhttp_settings_init(&st);
  st.on_body = ans_body;
  st.on_message_complete = ans_done;
  llhttp_init(&parser, HTTP_RESPONSE, &st);
  parser.data = a;
  while (!a->done) {
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (r == 0 && llhttp_finish(&parser) == HPE_OK && a->done)
        break;
      snprintf(err, errlen, "no complete answer from %s:%s", t->host, t->port);
      close(fd);
      return -1;
    }
    llhttp_errno_t e = llhttp_execute(&parser, buf, (size_t)r);
    if (e != HPE_OK && e != HPE_PAUSED) {
      snprintf(err, errlen, "bad answer: %s",
               a->too_big ? "too large" : llhttp_errno_name(e));
      close(fd);
      return -1;
    }
  }
  close(fd);
  return parser.status_code;
}

typedef struct run_s {
  target_t t;
  const char *token;
  long long accepted, rejected;
  int failed;
} run_t;

/* Post one batch: lines first_line.. of name. */
static void flush_batch(run_t *r, const char *name, long first_line,
                        const char *body, size_t len) {
  answer_t a = {0};
  char err[1024];
  int status;
  cJSON *j, *x;
  if (!len)
    return;
  status = post(&r->t, r->token, body, len, &a, err, sizeof(err));
  if (status < 0) {
    fprintf(stderr, "starttls-scan ingest: %s\n", err);
    r->failed = 1;
    free(a.body);
    return;
  }
  j = a.body ? cJSON_Parse(a.body) : NULL;
  if (status != 200 || !j) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    fprintf(stderr, "starttls-scan ingest: %s (lines from %ld): HTTP %d%s%s\n",
            name, first_line, status, cJSON_IsString(m) ? ": " : "",
            cJSON_IsString(m) ? m->valuestring : "");
    r->failed = 1;
  } else {
    x = cJSON_GetObjectItemCaseSensitive(j, "accepted");
    r->accepted += cJSON_IsNumber(x) ? (long long)x->valuedouble : 0;
    cJSON_ArrayForEach(x,
                       cJSON_GetObjectItemCaseSensitive(j, "rejected_lines")) {
      const cJSON *ln = cJSON_GetObjectItemCaseSensitive(x, "line");
      const cJSON *why = cJSON_GetObjectItemCaseSensitive(x, "reason");
      printf("%s:%ld: rejected: %s\n", name,
             first_line - 1 + (cJSON_IsNumber(ln) ? (long)ln->valuedouble : 0),
             cJSON_IsString(why) ? why->valuestring : "?");
      r->rejected++;
    }
  }
  cJSON_Delete(j);
  free(a.body);
}

static int ingest_file(run_t *r, const char *name, size_t batch) {
  FILE *f = strcmp(name, "-") ? fopen(name, "r") : stdin;
  char *line = NULL, *body;
  size_t cap = 0, len = 0;
  ssize_t n;
  long line_no = 0, first = 1;
  if (!f) {
    fprintf(stderr, "starttls-scan ingest: cannot read %s: %s\n", name,
            strerror(errno));
    return -1;
  }
  if (!(body = malloc(batch))) {
    if (f != stdin)
      fclose(f);
    return -1;
  }
  while ((n = getline(&line, &cap, f)) >= 0) {
    line_no++;
    if ((size_t)n > batch) {
      fprintf(stderr,
              "starttls-scan ingest: %s:%ld: line longer than --batch\n", name,
              line_no);
      r->failed = 1;
      continue;
    }
    if (len + (size_t)n > batch) {
      flush_batch(r, name, first, body, len);
      len = 0;
      first = line_no;
    }
    memcpy(body + len, line, (size_t)n);
    len += (size_t)n;
  }
  flush_batch(r, name, first, body, len);
  free(line);
  free(body);
  if (f != stdin)
    fclose(f);
  return 0;
}

int stls_cmd_ingest(int argc, char **argv) {
  enum { OPT_TOKEN = 256, OPT_BATCH };
  static const struct option longopts[] = {
      {"token-file", required_argument, NULL, OPT_TOKEN},
      {"batch", required_argument, NULL, OPT_BATCH},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  stls_cli_t cli = {"ingest", "h", longopts, 0};
  run_t r;
  const char *token_file = NULL;
  char token[1024] = "";
  unsigned batch = INGEST_DEFAULT_BATCH;
  int c, rc = -1;
  memset(&r, 0, sizeof(r));
  while (rc < 0 && (c = stls_cli_getopt(&cli, argc, argv)) != -1) {
    switch (c) {
    case STLS_CLI_VERSION: stls_cli_print_version(stdout); return 0;
    case STLS_CLI_USAGE: return EXIT_USAGE;
    case OPT_TOKEN: token_file = optarg; break;
    case OPT_BATCH: {
      char *end;
      unsigned long v = strtoul(optarg, &end, 10);
      if (!*optarg || *end || *optarg == '-' || v < 1024 || v > (1UL << 30))
        return usage_err("bad --batch '%s' (1024..1073741824)", optarg);
      batch = (unsigned)v;
      break;
    }
    case 'h': fputs(stls_ingest_usage, stdout); return 0;
    default: return usage_err("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (argc - optind < 2)
    return usage_err("%s", "want URL and at least one FILE");
  if (parse_url(argv[optind], &r.t) != 0)
    return usage_err("bad URL '%s' (http://HOST:PORT)", argv[optind]);
  if (token_file) {
    FILE *f = fopen(token_file, "r");
    if (!f || !fgets(token, sizeof(token), f)) {
      fprintf(stderr, "starttls-scan ingest: cannot read a token from %s\n",
              token_file);
      if (f)
        fclose(f);
      return EXIT_USAGE;
    }
    fclose(f);
    token[strcspn(token, "\r\n")] = '\0';
    r.token = token;
  }
  for (int i = optind + 1; i < argc; i++)
    if (ingest_file(&r, argv[i], batch) != 0)
      r.failed = 1;
  fprintf(stderr, "starttls-scan ingest: %lld accepted, %lld rejected\n",
          r.accepted, r.rejected);
  return r.failed || r.rejected ? 1 : 0;
}
