/* The only module that talks JSON: result model in, cJSON / NDJSON out. */
#ifndef STLS_WRITER_H
#define STLS_WRITER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "stls/record.h"
#include "stls/result.h"

#define STLS_SCHEMA_ID "starttls-scan/1"
#define STLS_SUMMARY_SCHEMA_ID "starttls-scan-summary/1"

/* A HOST object (SCHEMA.md). recipient_domain, when not NULL, is used for
 * tls.names.recipient_domain (else that is null). NULL on ENOMEM. */
cJSON *stls_json_host(const stls_host_result_t *r,
                      const char *recipient_domain);

/* The record printed by `probe`: a HOST object plus schema and scanned_at. */
cJSON *stls_json_probe_record(const stls_host_result_t *r,
                              const char *recipient_domain, time_t scanned_at);

/* One line of `scan`: everything about one recipient domain. */
cJSON *stls_json_domain(const stls_domain_record_t *d);

/* The run summary (--summary FILE). */
cJSON *stls_json_summary(const stls_summary_t *s);

/* The run summary: for people (stderr), as JSON ("-" = stdout), as a
 * Prometheus textfile (written atomically). 0 or -1. */
void stls_summary_print(FILE *f, const stls_summary_t *s);
int stls_summary_write_json(const char *path, const stls_summary_t *s);
int stls_summary_write_prom(const char *path, const stls_summary_t *s);

/* One progress line (\r, no newline unless final) for a terminal. */
void stls_progress_print(FILE *f, uint64_t written, uint64_t total, double secs,
                         uint64_t not_ok, bool rate_bound, bool final);

/* Print one record as a single line and flush, so a killed run leaves only
 * whole lines. Returns 0, or -1 on ENOMEM or a write error. */
int stls_json_write_line(FILE *f, const cJSON *record);

#endif
