/* Certificate names against reference identifiers (see names.h): RFC 6125
 * section 6.4, RFC 7672 section 3.2.3, RFC 8461 section 4.1 and Postfix's
 * match_servername().
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

/* Is every byte of the first n printable ASCII (0x21..0x7e)? Postfix
 * (tls_dns_name) skips certificate names with a NUL or a non-printable
 * byte; a space is printable for Postfix but can be no part of a name. */
static bool name_printable(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
      return false;
  return n > 0;
}

/* Postfix, one name word (match_servername without match_subdomain):
 * equal, or "*.rest" against one or more labels followed by ".rest". */
static bool postfix_match(const char *id, const char *ref) {
  size_t il = name_len(id), rl = name_len(ref);
  const char *parent;

  if (!name_printable(id, il) || !name_valid(ref, rl))
    return false;
  if (il == rl && name_eq(id, ref, rl))
    return true;
  if (il > 2 && id[0] == '*' && id[1] == '.') {
    /* ref = label parent, parent = ... ".rest": the rest after "*" must
     * be a tail of the parent, which starts at a dot. */
    parent = memchr(ref, '.', rl);
    if (parent == NULL)
      return false;
    size_t pl = rl - (size_t)(parent - ref), tl = il - 1;
    return tl <= pl && name_eq(parent + pl - tl, id + 1, tl);
  }
  return false;
}

/* Postfix's sub-domain match (dot-nexthop, ".domain"): id ends in "."
 * followed by ref, after at least one byte. */
static bool postfix_below(const char *id, const char *ref) {
  size_t il = name_len(id), rl = name_len(ref);

  if (!name_printable(id, il) || !name_valid(ref, rl))
    return false;
  return il > rl + 1 && id[il - rl - 1] == '.' &&
         name_eq(id + il - rl, ref, rl);
}

bool stls_name_matches(stls_name_rule_t rule, const char *id, const char *ref) {
  if (id == NULL || ref == NULL)
    return false;
  switch (rule) {
  case STLS_NAME_RFC6125:
  case STLS_NAME_STS_MX: return stls_name_match(id, ref);
  case STLS_NAME_POSTFIX: return postfix_match(id, ref);
  case STLS_NAME_POSTFIX_BELOW: return postfix_below(id, ref);
  default: return false;
  }
}

bool stls_name_cert_matches(const stls_cert_t *leaf, stls_name_rule_t rule,
                            const char *ref) {
  if (leaf == NULL || ref == NULL)
    return false;
  if (leaf->san_dns.n == 0)
    return stls_name_matches(rule, leaf->subject_cn, ref);
  for (size_t i = 0; i < leaf->san_dns.n; i++)
    if (stls_name_matches(rule, leaf->san_dns.v[i], ref))
      return true;
  return false;
}

bool stls_name_cert_matches_list(const stls_cert_t *leaf, const char *match,
                                 const char *nexthop, const char *hostname) {
  static const char seps[] = ":, \t\r\n";
  const char *p = match;

  if (leaf == NULL || match == NULL)
    return false;
  while (*p) {
    size_t n = strcspn(p, seps);
    char word[256];

    if (n > 0 && n < sizeof(word)) {
      const char *ref = word;
      stls_name_rule_t rule = STLS_NAME_POSTFIX;

      memcpy(word, p, n);
      word[n] = '\0';
      if (strcmp(word, "nexthop") == 0) {
        ref = nexthop;
      } else if (strcmp(word, "dot-nexthop") == 0) {
        ref = nexthop;
        rule = STLS_NAME_POSTFIX_BELOW;
      } else if (strcmp(word, "hostname") == 0) {
        ref = hostname;
      } else if (word[0] == '.' && word[1] != '\0') {
        ref = word + 1;
        rule = STLS_NAME_POSTFIX_BELOW;
      }
      if (stls_name_cert_matches(leaf, rule, ref))
        return true;
    }
    p += n;
    p += strspn(p, seps);
  }
  return false;
}
