/* Certificate evaluation: facts about a chain as the server sent it. */
#ifndef STLS_CERT_H
#define STLS_CERT_H

#include <mbedtls/x509_crt.h>

#include "stls/result.h"

/* Fill out with the facts of one certificate. -1 on ENOMEM. */
int stls_cert_describe(const mbedtls_x509_crt *crt, stls_cert_t *out);

/* Describe every certificate of the chain (leaf first, as sent). */
int stls_cert_describe_chain(const mbedtls_x509_crt *chain,
                             stls_tls_result_t *out);

/* Describe the chain a TLS <= 1.2 server sent in clear: walk the
 * handshake records at the start of raw (the server's bytes after our
 * ClientHello) to its Certificate message. Certificates that do not parse
 * are left out. 0 (out->chain may stay empty), or -1 on ENOMEM. */
int stls_cert_chain_from_flight(const unsigned char *raw, size_t len,
                                stls_tls_result_t *out);

/* Our own verify flag, next to mbedTLS's MBEDTLS_X509_BADCERT_* bits (it
 * uses none this high): the path from the leaf to the trust store has more
 * intermediates than the verifier allows (chain.h). */
#define STLS_X509_BADCERT_CHAIN_TOO_LONG 0x40000000u

/* Map verify flags to STLS_TRUST_REASON() bits. */
unsigned stls_cert_trust_reasons(uint32_t flags);

/* RFC 8460 result type for an untrusted chain, or NULL when trusted. */
const char *stls_cert_trust_result_type(const stls_tls_result_t *t);

#endif
