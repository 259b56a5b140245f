/* The floor of a probe's cost: the public-key operations one STARTTLS
 * probe cannot avoid, timed through the same mbedTLS build the scanner
 * links (PSA calls, as TLS 1.3 makes them), so the stock and the tuned
 * builds can be compared operation by operation.
 *
 *   stls-floor [--quick] [--chain CHAIN.pem --ca CA.pem [--name HOST]]...
 *
 * One line per operation: "floor<TAB>OP<TAB>MS<TAB>OPS", MS being the
 * median CPU milliseconds per operation over several batches of OPS/batches
 * operations. Every operation's result is checked (a signature that does
 * not verify, a chain that is not trusted): a failing operation is cheaper
 * than a working one, so any failure makes the exit status 1. */
#include <mbedtls/build_info.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCHES 9
#define MAX_CHAINS 8

typedef struct {
  const char *chain;
  const char *ca;
  const char *name;
} chain_arg_t;

typedef struct {
  psa_key_id_t priv; /* our side's key (agreement) or signer */
  psa_key_id_t pub;  /* verifier's public key */
  uint8_t peer[160]; /* the other side's public key (agreement) */
  size_t peer_len;
  uint8_t hash[32];
  uint8_t sig[512];
  size_t sig_len;
  psa_algorithm_t alg;
  psa_key_attributes_t gen; /* attributes of a fresh key share */
  mbedtls_x509_crt chain;
  mbedtls_x509_crt ca;
  const char *name;
} op_ctx_t;

typedef int (*op_fn)(op_ctx_t *c);

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* A client's key share: a fresh key pair, its public half exported for the
 * ClientHello, and the shared secret with the server's share. */
static int op_agree(op_ctx_t *c) {
  psa_key_id_t k = 0;
  uint8_t pub[160], secret[80];
  size_t pub_len, secret_len;
  int ok =
      psa_generate_key(&c->gen, &k) == PSA_SUCCESS &&
      psa_export_public_key(k, pub, sizeof(pub), &pub_len) == PSA_SUCCESS &&
      psa_raw_key_agreement(PSA_ALG_ECDH, k, c->peer, c->peer_len, secret,
                            sizeof(secret), &secret_len) == PSA_SUCCESS;
  psa_destroy_key(k);
  return ok;
}

/* The server's signature (TLS 1.3 CertificateVerify). */
static int op_verify(op_ctx_t *c) {
  return psa_verify_hash(c->pub, c->alg, c->hash, sizeof(c->hash), c->sig,
                         c->sig_len) == PSA_SUCCESS;
}

/* The whole chain up to a trust anchor, with the name check. */
static int op_chain(op_ctx_t *c) {
  uint32_t flags = 0;
  return mbedtls_x509_crt_verify(&c->chain, &c->ca, NULL, c->name, &flags, NULL,
                                 NULL) == 0 &&
         flags == 0;
}

/* Median CPU ms per operation over BATCHES batches of at least 20 ms each
 * (quick: 2 ms); -1 if any operation failed. */
static double measure(op_fn fn, op_ctx_t *c, int quick, long *ops_out) {
  double per[BATCHES], budget = quick ? 2.0 : 20.0;
  long total = 0;
  for (int b = 0; b < BATCHES; b++) {
    long n = 0;
    double t0 = cpu_ms(), t;
    do {
      if (!fn(c))
        return -1;
      n++;
      t = cpu_ms() - t0;
    } while (t < budget);
    per[b] = t / (double)n;
    total += n;
  }
  qsort(per, BATCHES, sizeof(per[0]), cmp_double);
  *ops_out = total;
  return per[BATCHES / 2];
}

static int report(const char *name, op_fn fn, op_ctx_t *c, int quick) {
  long ops = 0;
  double ms = measure(fn, c, quick, &ops);
  if (ms < 0) {
    fprintf(stderr, "stls-floor: %s failed\n", name);
    return 0;
  }
  printf("floor\t%s\t%.4f\t%ld\n", name, ms, ops);
  fflush(stdout);
  return 1;
}

/* Key agreement setup: the server's share, made once. */
static int setup_agree(op_ctx_t *c, psa_ecc_family_t fam, size_t bits) {
  psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
  psa_key_id_t server = 0;
  psa_set_key_type(&a, PSA_KEY_TYPE_ECC_KEY_PAIR(fam));
  psa_set_key_bits(&a, bits);
  psa_set_key_usage_flags(&a, PSA_KEY_USAGE_DERIVE);
  psa_set_key_algorithm(&a, PSA_ALG_ECDH);
  c->gen = a;
  int ok = psa_generate_key(&a, &server) == PSA_SUCCESS &&
           psa_export_public_key(server, c->peer, sizeof(c->peer),
                                 &c->peer_len) == PSA_SUCCESS;
  psa_destroy_key(server);
  return ok;
}

/* Signature setup: a key pair, one signature over a fixed hash, and the
 * public key imported alone as the verifier has it. */
static int setup_sign(op_ctx_t *c, psa_key_type_t type, size_t bits,
                      psa_algorithm_t alg) {
  psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT, p = PSA_KEY_ATTRIBUTES_INIT;
  uint8_t pub[600];
  size_t pub_len;
  psa_set_key_type(&a, type);
  psa_set_key_bits(&a, bits);
  psa_set_key_usage_flags(&a,
                          PSA_KEY_USAGE_SIGN_HASH | PSA_KEY_USAGE_VERIFY_HASH);
  psa_set_key_algorithm(&a, alg);
  for (size_t i = 0; i < sizeof(c->hash); i++)
    c->hash[i] = (uint8_t)(i * 7 + 1);
  c->alg = alg;
  if (psa_generate_key(&a, &c->priv) != PSA_SUCCESS ||
      psa_sign_hash(c->priv, alg, c->hash, sizeof(c->hash), c->sig,
                    sizeof(c->sig), &c->sig_len) != PSA_SUCCESS ||
      psa_export_public_key(c->priv, pub, sizeof(pub), &pub_len) != PSA_SUCCESS)
    return 0;
  psa_set_key_type(&p, PSA_KEY_TYPE_PUBLIC_KEY_OF_KEY_PAIR(type));
  psa_set_key_bits(&p, bits);
  psa_set_key_usage_flags(&p, PSA_KEY_USAGE_VERIFY_HASH);
  psa_set_key_algorithm(&p, alg);
  return psa_import_key(&p, pub, pub_len, &c->pub) == PSA_SUCCESS;
}

static void ctx_free(op_ctx_t *c) {
  psa_destroy_key(c->priv);
  psa_destroy_key(c->pub);
  mbedtls_x509_crt_free(&c->chain);
  mbedtls_x509_crt_free(&c->ca);
}

static void ctx_init(op_ctx_t *c) {
  memset(c, 0, sizeof(*c));
  mbedtls_x509_crt_init(&c->chain);
  mbedtls_x509_crt_init(&c->ca);
}

static int usage(void) {
  fputs("usage: stls-floor [--quick] [--chain CHAIN.pem --ca CA.pem [--name "
        "HOST]]...\n",
        stderr);
  return 2;
}

int main(int argc, char **argv) {
  chain_arg_t chains[MAX_CHAINS];
  int nchains = 0, quick = 0, ok = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      quick = 1;
    } else if (!strcmp(argv[i], "--chain") && i + 1 < argc &&
               nchains < MAX_CHAINS) {
      chains[nchains++] = (chain_arg_t){argv[++i], NULL, NULL};
    } else if (!strcmp(argv[i], "--ca") && i + 1 < argc && nchains > 0) {
      chains[nchains - 1].ca = argv[++i];
    } else if (!strcmp(argv[i], "--name") && i + 1 < argc && nchains > 0) {
      chains[nchains - 1].name = argv[++i];
    } else {
      return usage();
    }
  }
  for (int i = 0; i < nchains; i++)
    if (!chains[i].ca)
      return usage();
  if (psa_crypto_init() != PSA_SUCCESS) {
    fputs("stls-floor: psa_crypto_init failed\n", stderr);
    return 1;
  }
#if defined(MBEDTLS_ECDH_VARIANT_EVEREST_ENABLED)
  printf("build\teverest\n");
#else
  printf("build\tgeneric\n");
#endif

  op_ctx_t c;
  ctx_init(&c);
  ok &= setup_agree(&c, PSA_ECC_FAMILY_MONTGOMERY, 255) &&
        report("x25519-keygen+agree", op_agree, &c, quick);
  ctx_free(&c);

  ctx_init(&c);
  ok &= setup_agree(&c, PSA_ECC_FAMILY_SECP_R1, 256) &&
        report("p256-keygen+agree", op_agree, &c, quick);
  ctx_free(&c);

  ctx_init(&c);
  ok &= setup_sign(&c, PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1), 256,
                   PSA_ALG_ECDSA(PSA_ALG_SHA_256)) &&
        report("ecdsa-p256-verify", op_verify, &c, quick);
  ctx_free(&c);

  ctx_init(&c);
  ok &= setup_sign(&c, PSA_KEY_TYPE_RSA_KEY_PAIR, 2048,
                   PSA_ALG_RSA_PSS(PSA_ALG_SHA_256)) &&
        report("rsa2048-pss-verify", op_verify, &c, quick);
  ctx_free(&c);

  for (int i = 0; i < nchains; i++) {
    char name[300];
    ctx_init(&c);
    c.name = chains[i].name;
    const char *base = strrchr(chains[i].chain, '/');
    snprintf(name, sizeof(name), "chain-verify:%s",
             base ? base + 1 : chains[i].chain);
    if (mbedtls_x509_crt_parse_file(&c.chain, chains[i].chain) != 0 ||
        mbedtls_x509_crt_parse_file(&c.ca, chains[i].ca) != 0) {
      fprintf(stderr, "stls-floor: cannot read %s or %s\n", chains[i].chain,
              chains[i].ca);
      ok = 0;
    } else {
      ok &= report(name, op_chain, &c, quick);
    }
    ctx_free(&c);
  }
  mbedtls_psa_crypto_free();
  return ok ? 0 : 1;
}
