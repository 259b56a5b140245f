/* `starttls-scan serve`: the HTTP service (API, change feed, metrics,
 * status page) over the store and the scan engine. */
#ifndef STLS_SERVE_H
#define STLS_SERVE_H

/* The command's entry point (argv[0] is "serve"); the exit status. */
int stls_cmd_serve(int argc, char **argv);

/* Usage text of the command. */
extern const char stls_serve_usage[];

/* `starttls-scan ingest URL FILE...`: post NDJSON records to a service. */
int stls_cmd_ingest(int argc, char **argv);
extern const char stls_ingest_usage[];

#endif
