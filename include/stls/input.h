/* Targets in: domain list files and standard input, --resume, --shard.
 * Blocking file I/O: call these off the loop threads (scan runs them on a
 * reader thread). */
#ifndef STLS_INPUT_H
#define STLS_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "stls/util.h"

/* Longest target line we read (a domain is at most 253 octets; IDN text
 * can be longer). A longer line becomes one invalid-domain record. */
#define STLS_INPUT_LINE_MAX 4096
/* A "line" longer than this is not a domain list (e.g. /dev/zero): the
 * reader stops with an error instead of reading forever. */
#define STLS_INPUT_ENDLESS (1024 * 1024)

/* Is domain in shard k of n (k 1-based)? Stable across runs and machines
 * (FNV-1a of the normalised name). n 0 or 1: every domain. */
bool stls_shard_keep(const char *domain, unsigned k, unsigned n);

/* Where targets go. Return 0 to go on, -1 to stop reading. */
typedef struct stls_input_sink_s {
  int (*domain)(void *arg, const char *name); /* normalised name */
  /* A line that is not a domain: raw text (trimmed, control bytes escaped
   * as \xNN) and why, with the line number prepended. */
  int (*invalid)(void *arg, const char *raw, const char *why);
  void *arg;
} stls_input_sink_t;

typedef struct stls_input_opts_s {
  unsigned shard_k, shard_n;       /* 0: no sharding */
  const stls_strmap_t *resume_set; /* domains done already, or NULL */
  volatile int *stop;              /* set to non-zero to stop early */
} stls_input_opts_t;

typedef struct stls_input_counts_s {
  uint64_t lines;           /* targets read (not comments or blanks) */
  uint64_t invalid;         /* of which not a domain */
  uint64_t resumed_skipped; /* done in the output already (--resume) */
  uint64_t shard_skipped;   /* in another shard */
} stls_input_counts_t;

/* Read a target list from f: one domain per line, '#' comments, blank
 * lines skipped. Returns 0 at the end of the input, -1 on a read error
 * or endless line (err says which), -2 when the sink asked to stop or
 * opts->stop was set. */
int stls_input_read(FILE *f, const stls_input_opts_t *o,
                    const stls_input_sink_t *sink, stls_input_counts_t *c,
                    char *err, size_t errlen);

/* One target given on the command line (not a list line: '#' is just a
 * bad character here). Same returns as a sink call. */
int stls_input_take_arg(const char *arg, const stls_input_opts_t *o,
                        const stls_input_sink_t *sink, stls_input_counts_t *c);

/* Count the target lines of a regular file (for the progress ETA); 0 when
 * it cannot be read. */
uint64_t stls_input_count_lines(const char *path);

/* --resume: read the domains an earlier run wrote to path into set. Every
 * complete line must be one JSON object with a "domain" string, from the
 * line's first byte to its newline (no blank, CR or second value), else the
 * file is not ours: -2 with the reason, and the file is left as it was.
 * A torn last line (no newline; killed mid-write) that looks like the
 * start of a record is cut off so appending starts clean. A missing file
 * is a fresh run. Returns 0, -1 (I/O error) or -2. */
int stls_resume_load(const char *path, stls_strmap_t *set, uint64_t *records,
                     char *err, size_t errlen);

/* The reader behind stls_resume_load, over an open stream (also what the
 * fuzz target drives): adds the domains of every complete record to set,
 * counts them in *records and leaves in *good_end the offset just past the
 * last one, where the file is to be cut. Returns 0, -1 (read error, out of
 * memory) or -2 (not our file; err says which line). path only names the
 * stream in err. Changes nothing in the stream. */
int stls__resume_read(FILE *f, const char *path, stls_strmap_t *set,
                      uint64_t *records, long *good_end, char *err,
                      size_t errlen);

/* Copy bytes into out as text: printable ASCII and valid UTF-8 as they
 * are, backslash as \\, every other byte (NUL, control, DEL, invalid
 * UTF-8) as \xNN. Always terminates out (truncating on a boundary). */
void stls_escape_bytes(const char *in, size_t len, char *out, size_t outlen);

#endif
