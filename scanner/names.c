/* Host name checks for certificates (RFC 6125 section 6.4, RFC 7672
 * section 3.2.3).
 *
 * Everything here is plain ASCII: certificate dNSNames are A-labels, and the
 * C library's locale-dependent case functions (tolower, strcasecmp) could
 * fold bytes >= 0x80 differently from one machine to the next.
 */
#include "stls/names.h"

#include <string.h>

#define NAME_MAX_LABEL 63
#define NAME_MAX_TOTAL 253

static unsigned char name_fold(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Case-insensitive (ASCII only) equality of two byte ranges. */
static bool name_eq(const char *a, const char *b, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (name_fold((unsigned char)a[i]) != name_fold((unsigned char)b[i]))
      return false;
  return true;
}

/* Length of s without one trailing dot: "example.com." is the same name as
 * "example.com". A second dot is left in place and makes the name invalid. */
static size_t name_len(const char *s) {
  size_t n = strlen(s);

  return n > 0 && s[n - 1] == '.' ? n - 1 : n;
}

static bool name_ldh(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-';
}

/* Are the n bytes at s a valid host name without trailing dot? Labels are
 * LDH, 1..63 bytes, and neither start nor end with a hyphen. The last label
 * must not be all digits: RFC 3696 section 2 rules out numeric top-level
 * labels, which is what keeps "192.0.2.1" (an address, never matched against
 * dNSNames) from passing as a name. */
static bool name_valid(const char *s, size_t n) {
  size_t i, label = 0;
  bool numeric = true;

  if (n == 0 || n > NAME_MAX_TOTAL)
    return false;
  for (i = 0; i <= n; i++) {
    unsigned char c = i < n ? (unsigned char)s[i] : '.';

    if (c == '.') {
      if (label == 0 || s[i - 1] == '-')
        return false;
      if (i == n && numeric)
        return false;
      label = 0;
      numeric = true;
      continue;
    }
    if (!name_ldh(c) || (label == 0 && c == '-'))
      return false;
    if (++label > NAME_MAX_LABEL)
      return false;
    if (c < '0' || c > '9')
      numeric = false;
  }
  return true;
}

/* Syntax check of a host name (see names.h). */
bool stls_name_is_hostname(const char *s) {
  return s != NULL && name_valid(s, name_len(s));
}

/* RFC 6125 matching of one certificate identifier against a host. */
bool stls_name_match(const char *pattern, const char *host) {
  const char *dot;
  size_t plen, hlen, label;

  if (pattern == NULL || host == NULL)
    return false;
  plen = name_len(pattern);
  hlen = name_len(host);
  /* Checking the host also rules out IP addresses, which must be matched
   * against iPAddress entries, never against dNSNames. */
  if (!name_valid(host, hlen))
    return false;

  if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
    const char *suffix = pattern + 1; /* ".example.com" */
    size_t slen = plen - 1;

    /* The part after "*." must itself be a valid name of two or more
     * labels, so "*.com" (and "*.") matches nothing. */
    if (!name_valid(suffix + 1, slen - 1) ||
        memchr(suffix + 1, '.', slen - 1) == NULL)
      return false;
    /* The wildcard stands for exactly the host's first label, which is
     * non-empty because the host is valid. */
    dot = memchr(host, '.', hlen);
    if (dot == NULL)
      return false;
    label = (size_t)(dot - host);
    return hlen - label == slen && name_eq(dot, suffix, slen);
  }

  /* Any other '*' (partial label, not leftmost) is not a wildcard for us,
   * and a literal '*' can never equal a valid host, so plain comparison is
   * enough. */
  return plen == hlen && name_eq(pattern, host, hlen);
}

/* Is host equal to domain or a sub-domain of it (see names.h)? This mirrors
 * Postfix's "nexthop" / "dot-nexthop" string comparison, which is applied to
 * certificate identifiers as they are: "*.example.com" lies below
 * "example.com" there. The labels in front of the domain are therefore only
 * required to be non-empty printable ASCII; the domain must be a valid name. */
bool stls_name_in_domain(const char *host, const char *domain) {
  size_t hlen, dlen, i, label = 0;

  if (host == NULL || domain == NULL)
    return false;
  hlen = name_len(host);
  dlen = name_len(domain);
  if (!name_valid(domain, dlen) || hlen < dlen)
    return false;
  if (hlen == dlen)
    return name_eq(host, domain, dlen);

  /* host = prefix "." domain, with a non-empty prefix of non-empty labels. */
  if (hlen < dlen + 2 || host[hlen - dlen - 1] != '.' ||
      !name_eq(host + hlen - dlen, domain, dlen))
    return false;
  for (i = 0; i < hlen - dlen; i++) {
    unsigned char c = (unsigned char)host[i];

    if (c == '.') {
      if (label == 0)
        return false;
      label = 0;
    } else if (c <= 0x20 || c >= 0x7f) {
      return false;
    } else {
      label++;
    }
  }
  return true;
}
