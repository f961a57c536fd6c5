/* jose_bench — per-verify cost of jose_verify with a cached keyset, next to OpenSSL's raw
 * EVP_DigestVerify on the same key and bytes (the floor jose_verify should stay close to).
 *
 *   build/bench/jose_bench [iterations]      (default 2000 per algorithm) */
#include <luamcp/jose.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Decodes unpadded base64url; returns the length. Input is our own signer's output. */
static size_t unb64url(const char *in, size_t len, unsigned char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 6) | (unsigned)(strchr(abc, in[i]) - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return o;
}

/* The raw OpenSSL cost: one EVP_DigestVerify with the key already parsed. */
static double raw_verify_us(EVP_PKEY *pkey, unsigned alg, const char *token, int iters)
{
    const char *dot2 = strrchr(token, '.');
    unsigned char sig[600], der[160];
    size_t siglen = unb64url(dot2 + 1, strlen(dot2 + 1), sig);
    const char *md = alg == JOSE_EDDSA ? NULL : "SHA256";
    if (alg == JOSE_ES256) { /* R||S -> DER, once, outside the loop */
        ECDSA_SIG *es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        unsigned char *p = der;
        siglen = (size_t)i2d_ECDSA_SIG(es, &p);
        memcpy(sig, der, siglen);
        ECDSA_SIG_free(es);
    }
    int ok = 0;
    double t0 = now_us();
    for (int i = 0; i < iters; i++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, pkey, NULL);
        if (alg == JOSE_PS256) {
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
        }
        ok += EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)token,
                               (size_t)(dot2 - token)) == 1;
        EVP_MD_CTX_free(ctx);
    }
    double us = (now_us() - t0) / iters;
    return ok == iters ? us : -1;
}

static int bench(unsigned alg, int iters)
{
    char *err = NULL;
    jose_signer_t *s = jose_signer_generate(alg, "bench", &err);
    if (!s) {
        fprintf(stderr, "%s: %s\n", jose_alg_name(alg), err ? err : "?");
        free(err);
        return 1;
    }
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:s}", "iss", "https://idp.example.com", "sub",
                               "bench-user", "aud", "https://mcp.example.com", "exp",
                               (json_int_t)4102444800, "scope", "mcp:tools");
    char *token = jose_sign(s, "at+jwt", claims);
    json_t *jwks = jose_signer_jwks(s);
    char *doc = json_dumps(jwks, JSON_COMPACT);
    jose_keyset_t *ks = jose_keyset_from_jwks(doc, strlen(doc), NULL, &err);
    char *pem = jose_signer_private_pem(s);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    int rc = 1;
    if (token && ks && pkey) {
        size_t len = strlen(token);
        int ok = 0;
        double t0 = now_us();
        for (int i = 0; i < iters; i++) {
            json_t *c = NULL;
            ok += jose_verify(ks, token, len, JOSE_ASYMMETRIC, NULL, &c, NULL, 0) == JOSE_OK;
            json_decref(c);
        }
        double us = (now_us() - t0) / iters;
        double raw = raw_verify_us(pkey, alg, token, iters);
        printf("%-6s jose_verify %8.2f us/verify   raw EVP_DigestVerify %8.2f us   (%d/%d ok, "
               "token %zu bytes)\n",
               jose_alg_name(alg), us, raw, ok, iters, len);
        rc = ok == iters ? 0 : 1;
    }
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    free(pem);
    jose_keyset_unref(ks);
    free(doc);
    json_decref(jwks);
    free(token);
    json_decref(claims);
    jose_signer_free(s);
    free(err);
    return rc;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    if (iters <= 0)
        iters = 2000;
    int rc = 0;
    rc |= bench(JOSE_RS256, iters);
    rc |= bench(JOSE_PS256, iters);
    rc |= bench(JOSE_ES256, iters);
    rc |= bench(JOSE_EDDSA, iters);
    return rc;
}
