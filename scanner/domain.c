/* Domain name normalisation and target-file lines. */
#include "stls/domain.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Locale-independent ASCII classes: names are bytes, not text in the
 * user's locale (isalpha() in a Turkish locale is not what DNS means). */
static bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
         c == '\f';
}

static bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static unsigned char to_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static void set_why(const char **why, const char *reason) {
  if (why)
    *why = reason;
}

/* Turn a libidn2 error into a short static reason; every IDNA failure
 * starts with "bad IDN" so reports can group them. */
static const char *idn_reason(int rc) {
  switch (rc) {
  case IDN2_MALLOC: return "out of memory";
  case IDN2_ENCODING_ERROR: return "bad IDN: invalid UTF-8";
  case IDN2_PUNYCODE_BAD_INPUT:
  case IDN2_PUNYCODE_BIG_OUTPUT:
  case IDN2_PUNYCODE_OVERFLOW: return "bad IDN: invalid punycode";
  case IDN2_TOO_BIG_DOMAIN: return "too long";
  case IDN2_TOO_BIG_LABEL: return "label too long";
  case IDN2_DISALLOWED:
  case IDN2_UNASSIGNED: return "bad IDN: disallowed character";
  case IDN2_HYPHEN_STARTEND: return "leading or trailing hyphen";
  case IDN2_2HYPHEN: return "bad IDN: hyphens in 3rd and 4th position";
  case IDN2_BIDI: return "bad IDN: bidi rule";
  case IDN2_CONTEXTJ:
  case IDN2_CONTEXTO:
  case IDN2_CONTEXTJ_NO_RULE:
  case IDN2_CONTEXTO_NO_RULE: return "bad IDN: context rule";
  default: return "bad IDN";
  }
}

/* Check an ASCII, lower-cased name against the host name rules; returns a
 * reason or NULL when the name is fine. */
static const char *check_hostname(const char *s, size_t len) {
  size_t labels = 0;
  size_t start = 0;

  if (len == 0)
    return "empty";
  if (len > STLS_DOMAIN_MAX)
    return "too long";

  /* An address is not a domain; say so plainly instead of "numeric
   * top-level label", which is what the rules below would report. */
  {
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
      return "IP address, not a domain";
  }

  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '.') {
      unsigned char c = (unsigned char)s[i];
      if (is_space(c))
        return "whitespace inside name";
      /* '_' is legal in DNS but not in a host name (RFC 5321 Domain
       * syntax is LDH), and a mail domain must be one. */
      if (!is_alpha(c) && !is_digit(c) && c != '-')
        return "bad character";
      continue;
    }
    size_t llen = i - start;
    if (llen == 0)
      return "empty label";
    if (llen > 63)
      return "label too long";
    if (s[start] == '-' || s[i - 1] == '-')
      return "leading or trailing hyphen";
    labels++;
    if (i == len) {
      /* The last label is the TLD: all-digit TLDs do not exist, and
       * accepting them lets typos of addresses through. */
      bool digits = true;
      for (size_t j = start; j < i; j++)
        digits = digits && is_digit((unsigned char)s[j]);
      if (digits)
        return "numeric top-level label";
    }
    start = i + 1;
  }
  /* Mail domains are fully qualified; a single label would be completed by
   * a resolver search list, which a scan must not depend on. */
  if (labels < 2)
    return "single label";
  return NULL;
}

int stls_domain_normalize(const char *in, char *out, size_t outlen,
                          const char **why) {
  const char *reason;
  char *tmp = NULL;
  char *idn = NULL;
  const char *name;
  size_t len;
  bool ascii = true;

  if (out && outlen)
    out[0] = '\0';
  if (!in) {
    set_why(why, "empty");
    return -1;
  }
  while (is_space((unsigned char)*in))
    in++;
  len = strlen(in);
  while (len > 0 && is_space((unsigned char)in[len - 1]))
    len--;
  if (len == 0) {
    set_why(why, "empty");
    return -1;
  }
  /* One trailing dot is the absolute form of the same name; a second one
   * is an empty label and is left for the checks to reject. */
  if (in[len - 1] == '.')
    len--;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c >= 0x80)
      ascii = false;
    else if (is_space(c) || c < 0x20 || c == 0x7f) {
      set_why(why, is_space(c) ? "whitespace inside name" : "bad character");
      return -1;
    }
  }
  if (len > 4 * (STLS_DOMAIN_MAX + 1)) {
    /* Longer than any name could be even with four-byte UTF-8; refuse
     * before handing megabytes to the IDNA code. */
    set_why(why, "too long");
    return -1;
  }

  tmp = malloc(len + 1);
  if (!tmp) {
    set_why(why, "out of memory");
    return -1;
  }
  memcpy(tmp, in, len);
  tmp[len] = '\0';
  name = tmp;

  if (!ascii) {
    int rc = idn2_to_ascii_8z(tmp, &idn, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) {
      free(tmp);
      set_why(why, idn_reason(rc));
      return -1;
    }
    name = idn;
  }

  len = strlen(name);
  if (len + 1 > outlen || !out) {
    /* Report the name's own problem when it has one; a too-small buffer
     * is the caller's, and only matters for a valid name. */
    reason = len > STLS_DOMAIN_MAX ? "too long" : "output buffer too small";
    goto fail;
  }
  for (size_t i = 0; i < len; i++)
    out[i] = (char)to_lower((unsigned char)name[i]);
  out[len] = '\0';
  reason = check_hostname(out, len);
  if (reason) {
    out[0] = '\0';
    goto fail;
  }
  free(tmp);
  idn2_free(idn);
  return 0;

fail:
  free(tmp);
  idn2_free(idn);
  set_why(why, reason);
  return -1;
}

int stls_target_line_parse(const char *line, char *out, size_t outlen,
                           const char **why) {
  static const char bom[] = "\xEF\xBB\xBF";
  const char *end;
  char buf[4 * (STLS_DOMAIN_MAX + 1) + 1];
  size_t len;

  if (out && outlen)
    out[0] = '\0';
  if (!line)
    return 0;
  if (strncmp(line, bom, 3) == 0)
    line += 3;
  /* '#' cannot occur in a host name, so the first one starts a comment
   * wherever it is. */
  end = strchr(line, '#');
  len = end ? (size_t)(end - line) : strlen(line);
  while (len > 0 && is_space((unsigned char)line[len - 1]))
    len--;
  while (len > 0 && is_space((unsigned char)*line)) {
    line++;
    len--;
  }
  if (len == 0)
    return 0;
  if (len >= sizeof buf) {
    set_why(why, "too long");
    return -1;
  }
  memcpy(buf, line, len);
  buf[len] = '\0';
  return stls_domain_normalize(buf, out, outlen, why) == 0 ? 1 : -1;
}
