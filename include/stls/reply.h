/* SMTP reply parsing: a pure, bounded, incremental parser.
 *
 * Bytes arrive in arbitrary pieces (one byte at a time, or several replies
 * in one read). stls_reply_parser_feed() consumes what it can and stops after
 * each complete reply, so the caller can act on it (for example switch to TLS
 * after "220" to STARTTLS) and see exactly which bytes followed it.
 */
#ifndef STLS_REPLY_H
#define STLS_REPLY_H

#include <stddef.h>

#include <stdint.h>

/* Limits that keep a hostile peer from making us use unbounded memory, and
 * keep a session that waits for a slow greeting at a few KB. RFC 5321
 * 4.5.3.1.5 limits a reply line to 512 bytes; real EHLO replies stay far
 * below 4 KB in all. */
#define STLS_REPLY_MAX_LINE 1000 /* bytes in one line, CRLF excluded */
#define STLS_REPLY_MAX_LINES 128 /* lines in one multi-line reply */
#define STLS_REPLY_MAX_TEXT 4096 /* bytes of one whole reply text */

typedef enum {
  STLS_REPLY_NEED_MORE = 0, /* all input consumed, no complete reply yet */
  STLS_REPLY_DONE = 1,      /* one reply complete; see *consumed */
  STLS_REPLY_ERR_LINE_TOO_LONG = -1,
  STLS_REPLY_ERR_TOO_LONG = -2, /* too many lines or too much text */
  STLS_REPLY_ERR_SYNTAX = -3    /* not "DDD[ -]text", mixed codes, NUL, ... */
} stls_reply_rc_t;

typedef struct stls_reply_s {
  int code;        /* 3-digit reply code, e.g. 250 */
  size_t n_lines;  /* number of lines */
  char *text;      /* the whole reply as received, lines joined by "\r\n",
                      no trailing CRLF, NUL-terminated (owned by the parser) */
  size_t text_len; /* strlen(text) */
  /* Offsets of each line's start within text; line i spans
   * text[line_off[i]] up to the next "\r\n" or the end. */
  uint16_t line_off[STLS_REPLY_MAX_LINES];
} stls_reply_t;

/* Parser state. Plain struct so it can live inside a session without an
 * extra allocation; treat the fields as private. */
typedef struct stls_reply_parser_s {
  char line[STLS_REPLY_MAX_LINE + 2]; /* current partial line */
  size_t line_len;
  char text[STLS_REPLY_MAX_TEXT + 1]; /* reply accumulated so far */
  stls_reply_t reply;
  int failed; /* sticky error */
} stls_reply_parser_t;

void stls_reply_parser_init(stls_reply_parser_t *p);

/* Feed len bytes. Sets *consumed to the number of bytes used. Returns
 * STLS_REPLY_DONE as soon as one reply is complete (bytes after it are left
 * unconsumed; call again with the rest), STLS_REPLY_NEED_MORE when all bytes
 * were consumed without completing a reply, or a negative error (sticky
 * until stls_reply_parser_init). Lines may end in CRLF or bare LF. The
 * completed reply is available in *out until the next call. */
stls_reply_rc_t stls_reply_parser_feed(stls_reply_parser_t *p, const char *data,
                                       size_t len, size_t *consumed,
                                       const stls_reply_t **out);

/* Bytes of a partial line or partial multi-line reply buffered right now
 * (non-zero means the peer sent more than the last complete reply). */
size_t stls_reply_parser_pending(const stls_reply_parser_t *p);

/* Line i of a reply without its "DDD-"/"DDD " prefix, copied to buf
 * (truncated to buflen-1). Returns the full length of that text. */
size_t stls_reply_line_text(const stls_reply_t *r, size_t i, char *buf,
                            size_t buflen);

/* Human-readable name of an error code, e.g. "reply line too long". */
const char *stls_reply_strerror(stls_reply_rc_t rc);

#endif
