/* Recipient domain names: normalisation and the target-file line format. */
#ifndef STLS_DOMAIN_H
#define STLS_DOMAIN_H

#include <stddef.h>

/* Longest normalised name (RFC 1035: 253 characters without the trailing
 * dot). An output buffer of STLS_DOMAIN_MAX + 1 bytes always suffices. */
#define STLS_DOMAIN_MAX 253

/* Normalise a mail domain to the form used for DNS queries and output.
 *
 * Steps: trim surrounding whitespace; remove one trailing dot; convert a
 * name with non-ASCII characters to A-labels (IDNA2008 with UTS#46
 * non-transitional mapping, so "Bücher.Example" and "xn--bcher-kva.example"
 * meet); lower-case; then check the result is a host name: at least two
 * labels, labels of 1..63 letters, digits and hyphens that neither start nor
 * end with a hyphen, at most 253 characters, not an IP address, and a
 * top-level label that is not all digits.
 *
 * A name that is already ASCII is not re-validated as IDNA: it is what DNS
 * holds, and registered names that predate IDNA2008 stay scannable.
 *
 * Returns 0 with the NUL-terminated name in out, or -1 with *why (when why
 * is not NULL) set to a short static reason, e.g. "empty label", "too long",
 * "bad character", "bad IDN: disallowed character". */
int stls_domain_normalize(const char *in, char *out, size_t outlen,
                          const char **why);

/* Parse one line of a target file: one domain per line; blank lines and
 * lines starting with '#' are skipped, and "# ..." after the domain is a
 * comment. A UTF-8 byte order mark and a CR before the newline are ignored.
 *
 * Returns 1 with the normalised domain in out, 0 for a line to skip, or -1
 * for an invalid line with *why set (the caller records it as an
 * invalid-domain result rather than dropping it). */
int stls_target_line_parse(const char *line, char *out, size_t outlen,
                           const char **why);

#endif
