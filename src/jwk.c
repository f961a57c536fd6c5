/* jwk — verification keys: JWK/JWKS, PEM and HMAC secrets turned into OpenSSL keys once,
 * held in an immutable, reference-counted keyset.
 *
 * JWK -> EVP_PKEY goes through OSSL_PARAM_BLD + EVP_PKEY_fromdata: RSA from n and e as
 * big-endian integers, EC from the group name and 0x04||x||y with x and y exactly the field
 * length (then a full public-key check, so a point off the curve is refused), Ed25519 from
 * its 32 raw bytes. Each key's algorithms are pinned here (jose_pkey_algs, narrowed by the
 * JWK's own "alg"), and jose_verify never lets a token widen them. */
#include "jose_int.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOSE_MAX_JWKS      (1024 * 1024) /* bytes of one JWKS document */
#define JOSE_MAX_JWKS_KEYS 100
#define JOSE_MAX_PEM       (64 * 1024)
#define JOSE_MIN_SECRET    32
#define JOSE_MAX_SECRET    4096
#define JOSE_MAX_WARNINGS  4096 /* bytes of notes about skipped keys */

/* ---- key types ----------------------------------------------------------------------------- */

/* e must be odd and > 1 (e = 1 makes every signature verify trivially; even e is no RSA key),
 * n odd; sizes within [JOSE_MIN_RSA_BITS, JOSE_MAX_RSA_BITS]. */
static unsigned rsa_algs(EVP_PKEY *pkey, const char **why)
{
    BIGNUM *n = NULL, *e = NULL;
    unsigned algs = 0;
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < JOSE_MIN_RSA_BITS)
        *why = "RSA key under 2048 bits";
    else if (bits > JOSE_MAX_RSA_BITS)
        *why = "RSA key over 8192 bits";
    else if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
             EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
        *why = "RSA key without n or e";
    else if (!BN_is_odd(e) || BN_is_one(e) || BN_num_bits(e) > 64)
        *why = "RSA exponent must be odd, greater than 1 and at most 64 bits";
    else if (!BN_is_odd(n))
        *why = "RSA modulus is even";
    else
        algs = JOSE_RSA_ALGS;
    BN_free(n);
    BN_free(e);
    return algs;
}

static unsigned ec_algs(EVP_PKEY *pkey, const char **why)
{
    char group[64];
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       NULL) != 1) {
        *why = "EC key without a named curve";
        return 0;
    }
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    switch (nid) {
    case NID_X9_62_prime256v1:
        return JOSE_ES256;
    case NID_secp384r1:
        return JOSE_ES384;
    case NID_secp521r1:
        return JOSE_ES512;
    default:
        *why = "unsupported EC curve";
        return 0;
    }
}

unsigned jose_pkey_algs(EVP_PKEY *pkey, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        return rsa_algs(pkey, why);
    case EVP_PKEY_EC:
        return ec_algs(pkey, why);
    case EVP_PKEY_ED25519:
        return JOSE_EDDSA;
    default:
        *why = "unsupported key type";
        return 0;
    }
}

/* ---- JWK members -------------------------------------------------------------------------- */

/* A base64url member decoded into out (cap bytes). Returns false when missing, not a string,
 * not strict base64url, or longer than cap. */
static bool b64_member(json_t *jwk, const char *name, unsigned char *out, size_t cap, size_t *len)
{
    json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v))
        return false;
    size_t sl = json_string_length(v);
    /* sl characters decode to sl * 3 / 4 bytes: refuse before writing, not after (the old
     * bound let 91 characters, 68 bytes, into a 67-byte buffer; found by fuzz_jwks) */
    if (sl * 3 / 4 > cap)
        return false;
    return jose_b64url_decode(json_string_value(v), sl, out, len);
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pkey = NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_from_jwk(json_t *jwk, const char **why)
{
    unsigned char nb[JOSE_MAX_RSA_BITS / 8 + 1], eb[8];
    size_t nl = 0, el = 0;
    EVP_PKEY *pkey = NULL;
    if (!b64_member(jwk, "n", nb, sizeof nb, &nl) || nl == 0) {
        *why = "RSA n missing, not base64url or too long";
        return NULL;
    }
    if (!b64_member(jwk, "e", eb, sizeof eb, &el) || el == 0) {
        *why = "RSA e missing, not base64url or too long";
        return NULL;
    }
    BIGNUM *n = BN_bin2bn(nb, (int)nl, NULL), *e = BN_bin2bn(eb, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1)
        pkey = pkey_from_params("RSA", bld);
    if (!pkey)
        *why = "RSA key rejected by OpenSSL";
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static const struct curve {
    const char *crv, *group;
    size_t coord;
} curves[] = {
    {"P-256", "prime256v1", 32},
    {"P-384", "secp384r1", 48},
    {"P-521", "secp521r1", 66},
};

/* A full public-key check: on the curve, not infinity, in the right subgroup. */
static bool public_check(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static EVP_PKEY *ec_from_jwk(json_t *jwk, const char **why)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    const struct curve *cv = NULL;
    for (size_t i = 0; crv && i < sizeof curves / sizeof curves[0]; i++)
        if (strcmp(crv, curves[i].crv) == 0)
            cv = &curves[i];
    if (!cv) {
        *why = "unsupported EC curve";
        return NULL;
    }
    unsigned char pub[1 + 2 * 66], tmp[67];
    size_t xl = 0, yl = 0;
    if (!b64_member(jwk, "x", tmp, sizeof tmp, &xl) || xl != cv->coord) {
        *why = "EC x missing or not exactly the field length";
        return NULL;
    }
    memcpy(pub + 1, tmp, xl);
    if (!b64_member(jwk, "y", tmp, sizeof tmp, &yl) || yl != cv->coord) {
        *why = "EC y missing or not exactly the field length";
        return NULL;
    }
    memcpy(pub + 1 + xl, tmp, yl);
    pub[0] = 0x04;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, cv->group, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + xl + yl) == 1)
        pkey = pkey_from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (pkey && !public_check(pkey)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    if (!pkey)
        *why = "EC point is not on the curve";
    return pkey;
}

static EVP_PKEY *okp_from_jwk(json_t *jwk, const char **why)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    unsigned char x[32];
    size_t xl = 0;
    if (!crv || strcmp(crv, "Ed25519") != 0) {
        *why = "unsupported OKP curve (only Ed25519)";
        return NULL;
    }
    if (!b64_member(jwk, "x", x, sizeof x, &xl) || xl != sizeof x) {
        *why = "Ed25519 x missing or not 32 bytes";
        return NULL;
    }
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, sizeof x);
    if (!pkey)
        *why = "Ed25519 key rejected by OpenSSL";
    return pkey;
}

static bool kid_ok(const char *kid, size_t len)
{
    return len <= JOSE_MAX_KID && !memchr(kid, 0, len);
}

/* "use" other than "sig", "key_ops" without "verify", a bad kid or an alg that is not a JWS
 * signature algorithm make the key unusable; returns the reason or NULL. */
static const char *jwk_usage(json_t *jwk, unsigned *alg)
{
    json_t *use = json_object_get(jwk, "use"), *ops = json_object_get(jwk, "key_ops");
    json_t *kid = json_object_get(jwk, "kid"), *a = json_object_get(jwk, "alg");
    if (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0))
        return "use is not sig";
    if (ops) {
        bool verify = false;
        for (size_t i = 0; i < json_array_size(ops); i++) {
            json_t *op = json_array_get(ops, i);
            if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
                verify = true;
        }
        if (!verify)
            return "key_ops lacks verify";
    }
    if (kid && !(json_is_string(kid) && kid_ok(json_string_value(kid), json_string_length(kid))))
        return "kid is not a string of at most 256 bytes";
    *alg = 0;
    if (a) {
        const char *name = json_is_string(a) ? json_string_value(a) : NULL;
        *alg = name && strlen(name) == json_string_length(a) ? jose_alg_parse(name) : 0;
        if (!*alg || (*alg & JOSE_HMAC_ALGS))
            return "alg is not a supported signature algorithm";
    }
    return NULL;
}

static bool has_private_members(json_t *jwk)
{
    static const char *const priv[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
    for (size_t i = 0; i < sizeof priv / sizeof priv[0]; i++)
        if (json_object_get(jwk, priv[i]))
            return true;
    return false;
}

/* One JWK into *key; NULL on success, else why it was skipped. */
static const char *jwk_to_key(json_t *jwk, struct jose_key *key)
{
    const char *why = NULL;
    unsigned alg = 0;
    if (!json_is_object(jwk))
        return "not a JSON object";
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty)
        return "kty missing";
    if ((why = jwk_usage(jwk, &alg)))
        return why;
    EVP_PKEY *pkey = NULL;
    if (strcmp(kty, "RSA") == 0)
        pkey = rsa_from_jwk(jwk, &why);
    else if (strcmp(kty, "EC") == 0)
        pkey = ec_from_jwk(jwk, &why);
    else if (strcmp(kty, "OKP") == 0)
        pkey = okp_from_jwk(jwk, &why);
    else if (strcmp(kty, "oct") == 0)
        return "oct keys are accepted only as a configured secret";
    else
        return "unsupported kty";
    if (!pkey) {
        ERR_clear_error();
        return why;
    }
    unsigned algs = jose_pkey_algs(pkey, &why);
    if (algs && alg && !(algs & alg)) {
        algs = 0;
        why = "alg does not fit the key type";
    }
    json_t *kid = json_object_get(jwk, "kid");
    key->kid = kid ? strdup(json_string_value(kid)) : NULL;
    if (!algs || (kid && !key->kid)) {
        EVP_PKEY_free(pkey);
        free(key->kid);
        key->kid = NULL;
        return why ? why : "out of memory";
    }
    key->pkey = pkey;
    key->algs = alg ? alg : algs;
    return NULL;
}

/* ---- keysets ------------------------------------------------------------------------------ */

static void key_clear(struct jose_key *k)
{
    EVP_PKEY_free(k->pkey);
    free(k->kid);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    memset(k, 0, sizeof *k);
}

static jose_keyset_t *keyset_new(size_t n)
{
    jose_keyset_t *ks = calloc(1, sizeof *ks);
    if (!ks)
        return NULL;
    ks->keys = calloc(n ? n : 1, sizeof *ks->keys);
    if (!ks->keys) {
        free(ks);
        return NULL;
    }
    atomic_init(&ks->refs, 1);
    return ks;
}

static void keyset_free(jose_keyset_t *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        key_clear(&ks->keys[i]);
    free(ks->keys);
    free(ks);
}

jose_keyset_t *jose_keyset_ref(jose_keyset_t *ks)
{
    if (ks)
        atomic_fetch_add_explicit(&ks->refs, 1, memory_order_relaxed);
    return ks;
}

void jose_keyset_unref(jose_keyset_t *ks)
{
    if (ks && atomic_fetch_sub_explicit(&ks->refs, 1, memory_order_acq_rel) == 1)
        keyset_free(ks);
}

size_t jose_keyset_size(const jose_keyset_t *ks)
{
    return ks ? ks->n : 0;
}

bool jose_keyset_has_kid(const jose_keyset_t *ks, const char *kid)
{
    for (size_t i = 0; ks && kid && i < ks->n; i++)
        if (ks->keys[i].kid && strcmp(ks->keys[i].kid, kid) == 0)
            return true;
    return false;
}

/* Notes about skipped keys, bounded; kids are shown with anything unprintable replaced. */
struct notes {
    char buf[JOSE_MAX_WARNINGS];
    size_t len;
    bool truncated;
};

static void note_key(struct notes *nt, size_t index, json_t *jwk, const char *what)
{
    char kid[41];
    const char *k = json_string_value(json_object_get(jwk, "kid"));
    size_t kl = 0;
    for (; k && k[kl] && kl + 1 < sizeof kid; kl++)
        kid[kl] = (k[kl] >= 0x20 && k[kl] < 0x7f && k[kl] != '"') ? k[kl] : '?';
    kid[kl] = '\0';
    char line[256];
    int n = k ? snprintf(line, sizeof line, "key %zu (kid \"%s\"): %s", index, kid, what)
              : snprintf(line, sizeof line, "key %zu: %s", index, what);
    size_t need = (size_t)(n < 0 ? 0 : n) + (nt->len ? 2 : 0);
    if (nt->len + need + 1 > sizeof nt->buf) {
        nt->truncated = true;
        return;
    }
    nt->len += (size_t)snprintf(nt->buf + nt->len, sizeof nt->buf - nt->len, "%s%s",
                                nt->len ? "; " : "", line);
}

static char *notes_take(const struct notes *nt)
{
    if (nt->len == 0)
        return NULL;
    char *s = NULL;
    if (asprintf(&s, "%s%s", nt->buf, nt->truncated ? "; ..." : "") < 0)
        return NULL;
    return s;
}

static jose_keyset_t *keyset_from_keys(json_t *keys, struct notes *nt, char **err)
{
    size_t n = json_array_size(keys), i;
    jose_keyset_t *ks = keyset_new(n);
    if (!ks) {
        jose_set_err(err, "out of memory");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        json_t *jwk = json_array_get(keys, i);
        const char *why = jwk_to_key(jwk, &ks->keys[ks->n]);
        if (why)
            note_key(nt, i, jwk, why);
        else
            ks->n++;
        if (!why && json_is_object(jwk) && has_private_members(jwk))
            note_key(nt, i, jwk, "private members ignored (a JWKS should publish public keys)");
    }
    if (ks->n == 0) {
        if (err && asprintf(err, "JWKS has no usable key%s%s", nt->len ? ": " : "", nt->buf) < 0)
            *err = NULL;
        keyset_free(ks);
        return NULL;
    }
    return ks;
}

jose_keyset_t *jose_keyset_from_jwks(const char *json, size_t len, char **warnings, char **err)
{
    json_error_t jerr;
    struct notes *nt = NULL;
    jose_keyset_t *ks = NULL;
    json_t *root = NULL, *keys;

    if (warnings)
        *warnings = NULL;
    if (err)
        *err = NULL;
    if (!json || len > JOSE_MAX_JWKS) {
        jose_set_err(err, json ? "JWKS larger than 1 MiB" : "no JWKS");
        return NULL;
    }
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (err && asprintf(err, "JWKS is not JSON: %s", jerr.text) < 0)
            *err = NULL;
        return NULL;
    }
    keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        jose_set_err(err, "JWKS has no \"keys\" array");
        goto done;
    }
    if (json_array_size(keys) > JOSE_MAX_JWKS_KEYS) {
        jose_set_err(err, "JWKS has more than 100 keys");
        goto done;
    }
    nt = calloc(1, sizeof *nt);
    if (!nt) {
        jose_set_err(err, "out of memory");
        goto done;
    }
    ks = keyset_from_keys(keys, nt, err);
    if (ks && warnings)
        *warnings = notes_take(nt);
done:
    free(nt);
    json_decref(root);
    return ks;
}

/* SubjectPublicKeyInfo first, then an X.509 certificate (its key only: no chain, dates or
 * names are checked; the operator vouches for the file). Private keys are not read. */
static EVP_PKEY *read_public_pem(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    if (bio && !pkey && BIO_reset(bio) == 1) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        pkey = x ? X509_get_pubkey(x) : NULL;
        X509_free(x);
    }
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

jose_keyset_t *jose_keyset_from_pem(const char *pem, size_t len, const char *kid, char **err)
{
    const char *why = NULL;
    if (err)
        *err = NULL;
    if (!pem || len == 0 || len > JOSE_MAX_PEM) {
        jose_set_err(err, "PEM empty or larger than 64 KiB");
        return NULL;
    }
    if (kid && !kid_ok(kid, strlen(kid))) {
        jose_set_err(err, "kid longer than 256 bytes");
        return NULL;
    }
    EVP_PKEY *pkey = read_public_pem(pem, len);
    if (!pkey) {
        jose_set_err(err, "not a PEM public key or certificate");
        return NULL;
    }
    unsigned algs = jose_pkey_algs(pkey, &why);
    jose_keyset_t *ks = algs ? keyset_new(1) : NULL;
    char *kcopy = kid ? strdup(kid) : NULL;
    if (!ks || (kid && !kcopy)) {
        jose_set_err(err, why ? why : "out of memory");
        EVP_PKEY_free(pkey);
        free(kcopy);
        if (ks)
            keyset_free(ks);
        return NULL;
    }
    ks->keys[0] = (struct jose_key){.kid = kcopy, .algs = algs, .pkey = pkey};
    ks->n = 1;
    return ks;
}

/* HS384 and HS512 need keys at least as long as their output (RFC 7518 section 3.2). */
jose_keyset_t *jose_keyset_from_secret(const unsigned char *secret, size_t len, const char *kid,
                                       char **err)
{
    if (err)
        *err = NULL;
    if (!secret || len < JOSE_MIN_SECRET || len > JOSE_MAX_SECRET) {
        jose_set_err(err, "HMAC secret must be 32 to 4096 bytes");
        return NULL;
    }
    if (kid && !kid_ok(kid, strlen(kid))) {
        jose_set_err(err, "kid longer than 256 bytes");
        return NULL;
    }
    jose_keyset_t *ks = keyset_new(1);
    unsigned char *copy = malloc(len);
    char *kcopy = kid ? strdup(kid) : NULL;
    if (!ks || !copy || (kid && !kcopy)) {
        jose_set_err(err, "out of memory");
        free(copy);
        free(kcopy);
        if (ks)
            keyset_free(ks);
        return NULL;
    }
    memcpy(copy, secret, len);
    unsigned algs = JOSE_HS256 | (len >= 48 ? JOSE_HS384 : 0) | (len >= 64 ? JOSE_HS512 : 0);
    ks->keys[0] = (struct jose_key){.kid = kcopy, .algs = algs, .secret = copy, .secret_len = len};
    ks->n = 1;
    return ks;
}
