/* Host name checks for certificates (RFC 6125 / RFC 7672 rules). */
#ifndef STLS_NAMES_H
#define STLS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* Does the certificate identifier `pattern` (a SAN dNSName, or the CN when
 * the certificate has no dNSName) match the reference host `host`?
 * Case-insensitive, a trailing dot on either side is ignored. A wildcard is
 * honoured only as the entire leftmost label ("*.example.com"), matches
 * exactly one non-empty label, and never matches when the pattern has fewer
 * than two labels after it ("*.com" never matches). Partial-label wildcards
 * ("f*.example.com") and wildcards elsewhere never match. IP-address hosts
 * never match a dNSName. */
bool stls_name_match(const char *pattern, const char *host);

/* Does `host` equal `domain` or lie below it ("mx.a.example" under
 * "example", but not "badexample")? Used for Postfix's
 * match=nexthop:dot-nexthop. Case-insensitive, trailing dots ignored. */
bool stls_name_in_domain(const char *host, const char *domain);

/* Is s a syntactically valid DNS host name for matching purposes
 * (LDH labels 1..63, total <= 253, optional trailing dot)? */
bool stls_name_is_hostname(const char *s);

#endif
