/* jose_sign — the development issuer's side: key pairs, their public JWKS, PKCS#8 PEM round
 * trips, and compact JWS signing with the same algorithm rules jose_verify enforces. */
#include "jose_int.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#define JOSE_SIGNER_RSA_BITS 2048

struct jose_signer {
    EVP_PKEY *pkey;
    unsigned alg;
    char *kid;
};

static bool one_asymmetric_alg(unsigned alg)
{
    return jose_alg_name(alg) != NULL && (alg & JOSE_ASYMMETRIC);
}

static EVP_PKEY *generate_for(unsigned alg)
{
    if (alg & JOSE_RSA_ALGS)
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)JOSE_SIGNER_RSA_BITS);
    if (alg == JOSE_ES256)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (alg == JOSE_ES384)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if (alg == JOSE_ES512)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

/* Sets a base64url member from a big-endian integer, left-padded to pad bytes (0: minimal). */
static bool set_bn_member(json_t *o, const char *name, EVP_PKEY *pkey, const char *param,
                          size_t pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[JOSE_MAX_RSA_BITS / 8];
    bool ok = false;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) == 1 && (size_t)BN_num_bytes(bn) <= sizeof buf &&
        pad <= sizeof buf) {
        int n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
        char *s = n > 0 ? jose_b64url_encode_alloc(buf, (size_t)n) : NULL;
        ok = s && json_object_set_new(o, name, json_string(s)) == 0;
        free(s);
    }
    BN_free(bn);
    return ok;
}

/* The RFC 7517 public members only, for the JWKS and for the RFC 7638 thumbprint. */
static json_t *public_jwk(EVP_PKEY *pkey, unsigned alg)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    size_t coord = jose_ec_coord_len(alg);
    if (ok && (alg & JOSE_RSA_ALGS)) {
        ok = json_object_set_new(o, "kty", json_string("RSA")) == 0 &&
             set_bn_member(o, "n", pkey, OSSL_PKEY_PARAM_RSA_N, 0) &&
             set_bn_member(o, "e", pkey, OSSL_PKEY_PARAM_RSA_E, 0);
    } else if (ok && coord) {
        const char *crv = coord == 32 ? "P-256" : coord == 48 ? "P-384" : "P-521";
        ok = json_object_set_new(o, "kty", json_string("EC")) == 0 &&
             json_object_set_new(o, "crv", json_string(crv)) == 0 &&
             set_bn_member(o, "x", pkey, OSSL_PKEY_PARAM_EC_PUB_X, coord) &&
             set_bn_member(o, "y", pkey, OSSL_PKEY_PARAM_EC_PUB_Y, coord);
    } else if (ok) {
        unsigned char x[32];
        size_t xl = sizeof x;
        char b64[64];
        ok = EVP_PKEY_get_raw_public_key(pkey, x, &xl) == 1 && xl == sizeof x &&
             jose_b64url_encode(x, xl, b64) > 0 &&
             json_object_set_new(o, "kty", json_string("OKP")) == 0 &&
             json_object_set_new(o, "crv", json_string("Ed25519")) == 0 &&
             json_object_set_new(o, "x", json_string(b64)) == 0;
    }
    if (!ok) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* RFC 7638: SHA-256 over the required members, sorted, no whitespace. */
static char *thumbprint(EVP_PKEY *pkey, unsigned alg)
{
    json_t *jwk = public_jwk(pkey, alg);
    char *canon = jwk ? json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    unsigned char md[32];
    unsigned int mdlen = 0;
    char *kid = NULL;
    if (canon && EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL) == 1)
        kid = jose_b64url_encode_alloc(md, mdlen);
    free(canon);
    json_decref(jwk);
    return kid;
}

/* Takes ownership of pkey, also on failure. */
static jose_signer_t *signer_new(EVP_PKEY *pkey, unsigned alg, const char *kid, char **err)
{
    jose_signer_t *s = calloc(1, sizeof *s);
    if (s) {
        s->pkey = pkey;
        s->alg = alg;
        s->kid = kid ? strdup(kid) : thumbprint(pkey, alg);
    }
    if (!s || !s->kid) {
        jose_set_err(err, "out of memory");
        if (s)
            s->pkey = NULL;
        jose_signer_free(s);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return s;
}

static bool kid_acceptable(const char *kid, char **err)
{
    if (kid && strlen(kid) > JOSE_MAX_KID) {
        jose_set_err(err, "kid longer than 256 bytes");
        return false;
    }
    return true;
}

jose_signer_t *jose_signer_generate(unsigned alg, const char *kid, char **err)
{
    if (err)
        *err = NULL;
    if (!one_asymmetric_alg(alg)) {
        jose_set_err(err, "signing needs one asymmetric algorithm");
        return NULL;
    }
    if (!kid_acceptable(kid, err))
        return NULL;
    EVP_PKEY *pkey = generate_for(alg);
    if (!pkey) {
        ERR_clear_error();
        jose_set_err(err, "key generation failed");
        return NULL;
    }
    return signer_new(pkey, alg, kid, err);
}

char *jose_signer_private_pem(const jose_signer_t *s)
{
    BIO *bio = s ? BIO_new(BIO_s_secmem()) : NULL;
    char *data = NULL, *out = NULL;
    if (bio && PEM_write_bio_PrivateKey(bio, s->pkey, NULL, NULL, 0, NULL, NULL) == 1) {
        long n = BIO_get_mem_data(bio, &data);
        out = n > 0 ? malloc((size_t)n + 1) : NULL;
        if (out) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
        }
    }
    BIO_free(bio);
    return out;
}

jose_signer_t *jose_signer_from_pem(const char *pem, size_t len, unsigned alg, const char *kid,
                                    char **err)
{
    const char *why = NULL;
    if (err)
        *err = NULL;
    if (!one_asymmetric_alg(alg)) {
        jose_set_err(err, "signing needs one asymmetric algorithm");
        return NULL;
    }
    if (!pem || len == 0 || len > 64 * 1024 || !kid_acceptable(kid, err)) {
        if (err && !*err)
            jose_set_err(err, "PEM empty or larger than 64 KiB");
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    if (!pkey) {
        jose_set_err(err, "not a PEM private key");
        return NULL;
    }
    unsigned algs = jose_pkey_algs(pkey, &why);
    if (!(algs & alg)) {
        jose_set_err(err, why ? why : "the key cannot sign with this algorithm");
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return signer_new(pkey, alg, kid, err);
}

void jose_signer_free(jose_signer_t *s)
{
    if (!s)
        return;
    EVP_PKEY_free(s->pkey);
    free(s->kid);
    free(s);
}

const char *jose_signer_kid(const jose_signer_t *s)
{
    return s ? s->kid : NULL;
}

json_t *jose_signer_jwks(const jose_signer_t *s)
{
    json_t *jwk = s ? public_jwk(s->pkey, s->alg) : NULL;
    if (!jwk || json_object_set_new(jwk, "kid", json_string(s->kid)) != 0 ||
        json_object_set_new(jwk, "alg", json_string(jose_alg_name(s->alg))) != 0 ||
        json_object_set_new(jwk, "use", json_string("sig")) != 0) {
        json_decref(jwk);
        return NULL;
    }
    return json_pack("{s:[o]}", "keys", jwk);
}

/* DER ECDSA-Sig-Value -> R||S, each left-padded to the coordinate length. */
static bool ecdsa_der_to_raw(const unsigned char *der, size_t len, size_t coord, unsigned char *out)
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r = NULL, *s = NULL;
    bool ok = sig != NULL;
    if (ok) {
        ECDSA_SIG_get0(sig, &r, &s);
        ok = BN_bn2binpad(r, out, (int)coord) == (int)coord &&
             BN_bn2binpad(s, out + coord, (int)coord) == (int)coord;
    }
    ECDSA_SIG_free(sig);
    return ok;
}

/* Signs in[0..inlen) into sig (caller frees); returns the JWS signature length or 0. */
static size_t sign_raw(const jose_signer_t *s, const char *in, size_t inlen, unsigned char **sig)
{
    const char *md = jose_alg_digest(s->alg);
    size_t coord = jose_ec_coord_len(s->alg), len = 0;
    unsigned char *buf = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = ctx && EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, s->pkey, NULL) == 1;
    if (ok && (s->alg & (JOSE_PS256 | JOSE_PS384 | JOSE_PS512)))
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, md, NULL) == 1;
    ok = ok && EVP_DigestSign(ctx, NULL, &len, (const unsigned char *)in, inlen) == 1;
    ok = ok && (buf = malloc(len > 2 * coord ? len : 2 * coord)) != NULL;
    ok = ok && EVP_DigestSign(ctx, buf, &len, (const unsigned char *)in, inlen) == 1;
    if (ok && coord) {
        unsigned char raw[2 * 66];
        ok = ecdsa_der_to_raw(buf, len, coord, raw);
        if (ok)
            memcpy(buf, raw, 2 * coord);
        len = 2 * coord;
    }
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        free(buf);
        return 0;
    }
    *sig = buf;
    return len;
}

static char *b64_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    char *out = s ? jose_b64url_encode_alloc((const unsigned char *)s, strlen(s)) : NULL;
    free(s);
    return out;
}

/* NULL when claims is not an object or the token would exceed JOSE_MAX_TOKEN (we never mint
 * what we would refuse). */
char *jose_sign(const jose_signer_t *s, const char *typ, const json_t *claims)
{
    if (!s || !json_is_object(claims))
        return NULL;
    json_t *hdr = json_pack("{s:s, s:s}", "alg", jose_alg_name(s->alg), "kid", s->kid);
    if (hdr && typ && json_object_set_new(hdr, "typ", json_string(typ)) != 0) {
        json_decref(hdr);
        hdr = NULL;
    }
    char *h64 = hdr ? b64_json(hdr) : NULL, *p64 = h64 ? b64_json(claims) : NULL;
    char *input = NULL, *token = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0, inlen = 0;
    if (p64 && asprintf(&input, "%s.%s", h64, p64) < 0)
        input = NULL;
    if (input && strlen(input) < JOSE_MAX_TOKEN) {
        inlen = strlen(input);
        siglen = sign_raw(s, input, inlen, &sig);
    }
    size_t total = inlen + 1 + jose_b64url_len(siglen);
    if (siglen && total <= JOSE_MAX_TOKEN && (token = malloc(total + 1)) != NULL) {
        memcpy(token, input, inlen);
        token[inlen] = '.';
        jose_b64url_encode(sig, siglen, token + inlen + 1);
    }
    free(sig);
    free(input);
    free(p64);
    free(h64);
    json_decref(hdr);
    return token;
}
