/* Certificate names against reference identifiers: the one place that
 * decides whether a name in a certificate (a SAN dNSName, or the CN of a
 * certificate without any) matches a host or a domain, under the rules of
 * whoever is asking.
 *
 * Everything is ASCII and case-insensitive, and one trailing dot on either
 * side is ignored. A certificate identifier that is not printable ASCII
 * (a NUL byte, recorded as U+2400 by cert.c, a control byte, any byte
 * >= 0x80) never matches under any rule: Postfix skips such names
 * (tls_dns_name) and no host name can equal one.
 */
#ifndef STLS_NAMES_H
#define STLS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "stls/result.h"

/* The rules. XX(NAME, short description)
 *
 * RFC6125   RFC 6125 section 6.4 as RFC 7672 3.2.3 (DANE) and RFC 8461 4.1
 *           (MTA-STS WebPKI check) use it: the reference must be a host
 *           name; equal, or "*." as the entire leftmost label standing for
 *           exactly one non-empty label, and only with two or more labels
 *           after it ("*.com" matches nothing); partial-label wildcards
 *           ("f*.example") match nothing. This is names.mx_hostname.
 * POSTFIX   Postfix's match_servername (tls_client.c) for one name word
 *           (nexthop, hostname or a literal domain): equal, or "*.rest"
 *           when the reference is one or more labels followed by ".rest"
 *           (tls_wildcard_matches_multiple_labels = yes, the default). So
 *           "*.example.com" matches "a.b.example.com", and "*.com" matches
 *           "example.com" (Postfix, unlike RFC 6125, has no minimum).
 * POSTFIX_BELOW
 *           Postfix's sub-domain match (dot-nexthop, or a ".domain" word):
 *           the identifier ends in "." + reference, with anything printable
 *           in front. It is a string test on the certificate's name, not a
 *           wildcard match: "*.example.com" and ".example.com" both lie
 *           below "example.com" and below "com", as they do for Postfix.
 * STS_MX    RFC 8461 section 4.1, an MX pattern of a policy against an MX
 *           host: the identifier is the pattern; "*.example.com" stands
 *           for exactly one label, as under RFC6125. */
#define STLS_NAME_RULE_MAP(XX)                                                 \
  XX(RFC6125, "RFC 6125 host name match")                                      \
  XX(POSTFIX, "Postfix nexthop/hostname match")                                \
  XX(POSTFIX_BELOW, "Postfix dot-nexthop (sub-domain) match")                  \
  XX(STS_MX, "MTA-STS mx pattern match")

typedef enum {
#define XX(name, desc) STLS_NAME_##name,
  STLS_NAME_RULE_MAP(XX)
#undef XX
      STLS_NAME_RULE_COUNT
} stls_name_rule_t;

/* Does the identifier id (a certificate name, or an MTA-STS pattern for
 * STS_MX) match the reference ref (a host or a domain) under rule? NULL on
 * either side is a "no". */
bool stls_name_matches(stls_name_rule_t rule, const char *id, const char *ref);

/* Does the leaf name ref under rule? Its SAN dNSNames are consulted, and
 * its CN only when it has no dNSName at all (RFC 6125 6.4.4; Postfix does
 * the same: an unusable dNSName still hides the CN). */
bool stls_name_cert_matches(const stls_cert_t *leaf, stls_name_rule_t rule,
                            const char *ref);

/* Postfix's smtp_tls_*_cert_match list against a leaf: words separated by
 * ':', ',' or white space; "nexthop" (the recipient domain, POSTFIX),
 * "dot-nexthop" (POSTFIX_BELOW of it), "hostname" (the MX host, POSTFIX),
 * ".domain" (POSTFIX_BELOW of domain), any other word literally
 * (POSTFIX). True when one word matches. This is what the secure (and,
 * with "hostname", the verify) verdict and names.recipient_domain use. */
bool stls_name_cert_matches_list(const stls_cert_t *leaf, const char *match,
                                 const char *nexthop, const char *hostname);

/* RFC 6125 match of one certificate identifier against a host (the
 * RFC6125 rule). */
bool stls_name_match(const char *pattern, const char *host);

/* Does the host name `host` equal `domain` or lie below it, label-wise
 * ("mx.a.example" under "example", but not "badexample")? Both must be
 * host names, except that the labels in front of the domain need only be
 * non-empty printable ASCII. */
bool stls_name_in_domain(const char *host, const char *domain);

/* Is s a syntactically valid DNS host name for matching purposes
 * (LDH labels 1..63, total <= 253, optional trailing dot)? */
bool stls_name_is_hostname(const char *s);

#endif
