/* SMTP reply parsing (RFC 5321 section 4.2): a pure, bounded, incremental
 * parser.
 *
 * Every byte is examined as it arrives, so the outcome never depends on how
 * the peer's bytes were split into reads, and a hostile peer is rejected at
 * the first byte that cannot belong to a valid reply instead of after it has
 * filled our buffers.
 *
 * Grammar accepted, per line (CR optional before LF):
 *   line  = code [ ("-" / " ") text ] LF
 *   code  = %x32-35 DIGIT DIGIT          ; 2xx..5xx
 *   text  = *( %x01-09 / %x0B-FF )      ; anything but NUL and LF
 * Control bytes (ESC, DEL, ...) and a CR that is not followed by LF are
 * kept in the text as received: Postfix accepts such replies (and only
 * sanitises what it logs), so refusing them would call a server broken
 * that delivers mail; the writer escapes them in JSON. NUL stays an error:
 * no SMTP server sends one, and the reply is a C string.
 * A line whose fourth byte is "-" continues the reply; " " or a bare code
 * ends it. All lines of one reply must carry the same code. RFC 5321 allows
 * only 0-5 as the second digit; we accept any digit there because the
 * distinction does not matter to a scanner and strictness would only turn an
 * odd but harmless server into a protocol error.
 */
#include "stls/reply.h"

#include <string.h>

/* Bytes of the "DDD" code that starts every line. */
#define REPLY_CODE_LEN 3

static void reply_reset(stls_reply_parser_t *p) {
  /* reply.text stays NULL while a reply is being assembled: it is how we
   * know, at the next feed, whether a completed reply must be discarded. */
  p->reply.code = 0;
  p->reply.n_lines = 0;
  p->reply.text = NULL;
  p->reply.text_len = 0;
  p->text[0] = '\0';
  p->line_len = 0;
}

/* Start a parser with no buffered bytes and no error. */
void stls_reply_parser_init(stls_reply_parser_t *p) {
  reply_reset(p);
  p->failed = 0;
}

/* Is c allowed in the text part of a line (LF never gets here)? Every
 * byte but NUL: see the grammar above. */
static int reply_text_byte_ok(unsigned char c) { return c != 0; }

/* Take one byte of a line (not LF). Returns 0 or a negative error. */
static stls_reply_rc_t reply_line_byte(stls_reply_parser_t *p,
                                       unsigned char c) {
  size_t pos = p->line_len;

  /* A CR right after the code is a CRLF-ended bare code or nothing valid:
   * the code must be followed by " ", "-" or the line's end. */
  if (pos == REPLY_CODE_LEN + 1 && p->line[REPLY_CODE_LEN] == '\r')
    return STLS_REPLY_ERR_SYNTAX;

  /* The CR of a CRLF does not count towards the line length, so a line of
   * exactly STLS_REPLY_MAX_LINE bytes may still be followed by CR; a byte
   * after that CR makes it a bare CR in a line that is too long. */
  if (pos >= STLS_REPLY_MAX_LINE && !(pos == STLS_REPLY_MAX_LINE && c == '\r'))
    return STLS_REPLY_ERR_LINE_TOO_LONG;

  if (pos < REPLY_CODE_LEN) {
    if (pos == 0 ? (c < '2' || c > '5') : (c < '0' || c > '9'))
      return STLS_REPLY_ERR_SYNTAX;
    if (pos == REPLY_CODE_LEN - 1) {
      int code = (p->line[0] - '0') * 100 + (p->line[1] - '0') * 10 + (c - '0');
      /* The first line fixes the code; continuation lines must repeat it. */
      if (p->reply.n_lines == 0)
        p->reply.code = code;
      else if (code != p->reply.code)
        return STLS_REPLY_ERR_SYNTAX;
    }
  } else if (pos == REPLY_CODE_LEN) {
    if (c != ' ' && c != '-' && c != '\r')
      return STLS_REPLY_ERR_SYNTAX;
  } else if (c != '\r' && !reply_text_byte_ok(c)) {
    return STLS_REPLY_ERR_SYNTAX;
  }

  p->line[pos] = (char)c;
  p->line_len = pos + 1;
  return STLS_REPLY_NEED_MORE;
}

/* The LF of a line arrived: append the line to the reply. Returns DONE when
 * it was the reply's last line, NEED_MORE, or a negative error. */
static stls_reply_rc_t reply_line_end(stls_reply_parser_t *p) {
  stls_reply_t *r = &p->reply;
  size_t len = p->line_len;
  size_t sep = r->n_lines > 0 ? 2 : 0;
  int last;

  if (len > 0 && p->line[len - 1] == '\r')
    len--;
  if (len < REPLY_CODE_LEN)
    return STLS_REPLY_ERR_SYNTAX;
  last = len == REPLY_CODE_LEN || p->line[REPLY_CODE_LEN] == ' ';

  if (r->text_len + sep + len > STLS_REPLY_MAX_TEXT)
    return STLS_REPLY_ERR_TOO_LONG;
  /* A continuation line in the last slot announces a line we could not
   * store: fail now rather than after reading it. */
  if (!last && r->n_lines + 1 >= STLS_REPLY_MAX_LINES)
    return STLS_REPLY_ERR_TOO_LONG;

  if (sep) {
    memcpy(p->text + r->text_len, "\r\n", 2);
    r->text_len += 2;
  }
  r->line_off[r->n_lines++] = (uint16_t)r->text_len;
  memcpy(p->text + r->text_len, p->line, len);
  r->text_len += len;
  p->text[r->text_len] = '\0';
  p->line_len = 0;

  if (!last)
    return STLS_REPLY_NEED_MORE;
  r->text = p->text;
  return STLS_REPLY_DONE;
}

/* Feed bytes; stops after the first complete reply (see reply.h). */
stls_reply_rc_t stls_reply_parser_feed(stls_reply_parser_t *p, const char *data,
                                       size_t len, size_t *consumed,
                                       const stls_reply_t **out) {
  const unsigned char *d = (const unsigned char *)data;
  stls_reply_rc_t rc = STLS_REPLY_NEED_MORE;
  size_t i;

  if (consumed)
    *consumed = 0;
  if (out)
    *out = NULL;
  if (p->failed)
    return (stls_reply_rc_t)p->failed;
  /* The reply returned by the previous call is no longer promised. */
  if (p->reply.text != NULL)
    reply_reset(p);

  for (i = 0; i < len; i++) {
    if (d[i] == '\n')
      rc = reply_line_end(p);
    else
      rc = reply_line_byte(p, d[i]);
    if (rc == STLS_REPLY_NEED_MORE)
      continue;
    /* DONE or an error: the byte that decided it counts as consumed. */
    if (consumed)
      *consumed = i + 1;
    if (rc == STLS_REPLY_DONE) {
      if (out)
        *out = &p->reply;
    } else {
      p->failed = rc;
    }
    return rc;
  }
  if (consumed)
    *consumed = len;
  return STLS_REPLY_NEED_MORE;
}

/* Bytes held for a reply that is not complete yet (see reply.h). The count
 * is of bytes as stored: completed lines of a partial multi-line reply are
 * joined by CRLF whatever ending the peer used, and a partial line counts
 * every byte received, including a CR waiting for its LF. */
size_t stls_reply_parser_pending(const stls_reply_parser_t *p) {
  if (p->reply.text != NULL)
    return 0; /* a reply was just completed, at an LF: nothing is held */
  return p->reply.text_len + (p->reply.n_lines > 0 ? 2 : 0) + p->line_len;
}

/* Copy line i's text, without its code and separator, to buf (see
 * reply.h). */
size_t stls_reply_line_text(const stls_reply_t *r, size_t i, char *buf,
                            size_t buflen) {
  size_t start, end, n;

  if (buf && buflen > 0)
    buf[0] = '\0';
  if (r == NULL || r->text == NULL || i >= r->n_lines)
    return 0;
  start = r->line_off[i];
  end = i + 1 < r->n_lines ? (size_t)r->line_off[i + 1] - 2 : r->text_len;
  /* "DDD" alone has no separator and no text. */
  start += end - start > REPLY_CODE_LEN ? REPLY_CODE_LEN + 1 : end - start;
  n = end - start;
  if (buf && buflen > 0) {
    size_t copy = n < buflen - 1 ? n : buflen - 1;
    memcpy(buf, r->text + start, copy);
    buf[copy] = '\0';
  }
  return n;
}

/* Human-readable name of a parser result. */
const char *stls_reply_strerror(stls_reply_rc_t rc) {
  switch (rc) {
  case STLS_REPLY_NEED_MORE: return "incomplete reply";
  case STLS_REPLY_DONE: return "reply complete";
  case STLS_REPLY_ERR_LINE_TOO_LONG: return "reply line too long";
  case STLS_REPLY_ERR_TOO_LONG: return "reply too long";
  case STLS_REPLY_ERR_SYNTAX: return "malformed reply";
  }
  return "unknown reply parser result";
}
