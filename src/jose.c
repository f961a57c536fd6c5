/* jose — compact JWS verification on OpenSSL 3 with the algorithm pinned to the key.
 *
 * Order of work for one token: bound the length, split into exactly three segments, decode
 * all three (strict base64url), parse the header, check its shape and the alg against the
 * allowlist, pick keys by kid, check the signature, and only then parse the claims. The keys
 * come from the keyset alone: the header parameters "jku", "x5u", "jwk" and "x5c" are never
 * read, because a key that travels inside the token proves only that someone holds it. */
#include "jose_int.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- algorithms ------------------------------------------------------------------------ */

static const struct alg_info {
    unsigned alg;
    const char *name;
    const char *digest; /* OpenSSL digest name; NULL for EdDSA */
    size_t ec_coord;    /* ES*: bytes per coordinate */
} algs[] = {
    {JOSE_RS256, "RS256", "SHA256", 0},  {JOSE_RS384, "RS384", "SHA384", 0},
    {JOSE_RS512, "RS512", "SHA512", 0},  {JOSE_PS256, "PS256", "SHA256", 0},
    {JOSE_PS384, "PS384", "SHA384", 0},  {JOSE_PS512, "PS512", "SHA512", 0},
    {JOSE_ES256, "ES256", "SHA256", 32}, {JOSE_ES384, "ES384", "SHA384", 48},
    {JOSE_ES512, "ES512", "SHA512", 66}, {JOSE_EDDSA, "EdDSA", NULL, 0},
    {JOSE_HS256, "HS256", "SHA256", 0},  {JOSE_HS384, "HS384", "SHA384", 0},
    {JOSE_HS512, "HS512", "SHA512", 0},
};

static const struct alg_info *alg_info(unsigned alg)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (algs[i].alg == alg)
            return &algs[i];
    return NULL;
}

/* JWS alg values are case-sensitive (RFC 7515 section 4.1.1): "rs256" is unknown. */
unsigned jose_alg_parse(const char *name)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (strcmp(algs[i].name, name) == 0)
            return algs[i].alg;
    return 0;
}

/* NULL unless alg is exactly one known algorithm. */
const char *jose_alg_name(unsigned alg)
{
    const struct alg_info *ai = alg_info(alg);
    return ai ? ai->name : NULL;
}

const char *jose_alg_digest(unsigned alg)
{
    const struct alg_info *ai = alg_info(alg);
    return ai ? ai->digest : NULL;
}

size_t jose_ec_coord_len(unsigned alg)
{
    const struct alg_info *ai = alg_info(alg);
    return ai ? ai->ec_coord : 0;
}

void jose_set_err(char **err, const char *msg)
{
    if (err)
        *err = strdup(msg);
}

/* Comma-separated names, blanks around entries allowed; an empty entry is an error. */
unsigned jose_algs_parse(const char *list, char **err)
{
    if (err)
        *err = NULL;
    if (!list) {
        jose_set_err(err, "no algorithm list");
        return 0;
    }
    unsigned mask = 0;
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        char name[8] = "";
        if (len < sizeof name) {
            memcpy(name, p, len);
            name[len] = '\0';
        }
        unsigned a = len < sizeof name ? jose_alg_parse(name) : 0;
        if (!a) {
            if (err && asprintf(err, "unknown algorithm \"%.*s\" in \"%.64s\"",
                                (int)(len > 32 ? 32 : len), p, list) < 0)
                *err = NULL;
            return 0;
        }
        mask |= a;
        if (!comma)
            return mask;
        p = comma + 1;
    }
}

const char *jose_status_name(jose_status_t st)
{
    switch (st) {
    case JOSE_OK:
        return "ok";
    case JOSE_MALFORMED:
        return "malformed";
    case JOSE_BAD_HEADER:
        return "bad header";
    case JOSE_ALG_REFUSED:
        return "alg refused";
    case JOSE_UNKNOWN_KID:
        return "unknown kid";
    case JOSE_KEY_MISMATCH:
        return "key mismatch";
    case JOSE_BAD_SIGNATURE:
        return "bad signature";
    }
    return "unknown status";
}

/* ---- base64url --------------------------------------------------------------------------- */

static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

bool jose_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    if (len % 4 == 1)
        return false;
    unsigned acc = 0, bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero: one encoding per byte string */
        return false;
    *outlen = o;
    return true;
}

size_t jose_b64url_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_chars[v >> 18];
        out[o++] = b64url_chars[(v >> 12) & 63];
        out[o++] = b64url_chars[(v >> 6) & 63];
        out[o++] = b64url_chars[v & 63];
    }
    if (len - i == 1) {
        out[o++] = b64url_chars[in[i] >> 2];
        out[o++] = b64url_chars[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 8 | in[i + 1];
        out[o++] = b64url_chars[v >> 10];
        out[o++] = b64url_chars[(v >> 4) & 63];
        out[o++] = b64url_chars[(v & 15) << 2];
    }
    out[o] = '\0';
    return o;
}

char *jose_b64url_encode_alloc(const unsigned char *in, size_t len)
{
    char *out = malloc(jose_b64url_len(len) + 1);
    if (out)
        jose_b64url_encode(in, len, out);
    return out;
}

/* ---- signatures -------------------------------------------------------------------------- */

/* One DER INTEGER from an unsigned big-endian value: minimal, with a 0 byte before a set
 * high bit. n <= 66, so the length fits one byte. */
static size_t der_uint(const unsigned char *v, size_t n, unsigned char *out)
{
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    size_t pad = (v[0] & 0x80) ? 1 : 0;
    out[0] = 0x02;
    out[1] = (unsigned char)(n + pad);
    out[2] = 0;
    memcpy(out + 2 + pad, v, n);
    return 2 + pad + n;
}

/* JWS carries ECDSA as R||S, OpenSSL wants DER ECDSA-Sig-Value. out holds >= 2*coord + 9. */
static size_t ecdsa_raw_to_der(const unsigned char *sig, size_t coord, unsigned char *out)
{
    unsigned char body[2 * (66 + 3)];
    size_t blen = der_uint(sig, coord, body);
    blen += der_uint(sig + coord, coord, body + blen);
    size_t o = 0;
    out[o++] = 0x30;
    if (blen >= 128)
        out[o++] = 0x81;
    out[o++] = (unsigned char)blen;
    memcpy(out + o, body, blen);
    return o + blen;
}

static const EVP_MD *hmac_md(unsigned alg)
{
    return alg == JOSE_HS256 ? EVP_sha256() : alg == JOSE_HS384 ? EVP_sha384() : EVP_sha512();
}

static bool hmac_verify(const struct jose_key *k, unsigned alg, const unsigned char *in,
                        size_t inlen, const unsigned char *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!k->secret || !HMAC(hmac_md(alg), k->secret, (int)k->secret_len, in, inlen, mac, &maclen))
        return false;
    bool ok = siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

/* Exact lengths first: RSA signatures are modulus-sized (RFC 8017 8.2.2 step 1), ES are
 * 2 * coordinate, Ed25519 is 64 bytes. Anything else is a bad signature, not an error. */
static bool asym_verify(const struct jose_key *k, unsigned alg, const unsigned char *in,
                        size_t inlen, const unsigned char *sig, size_t siglen)
{
    unsigned char der[2 * 66 + 16];
    size_t coord = jose_ec_coord_len(alg);
    if (!k->pkey)
        return false;
    if (coord) {
        if (siglen != 2 * coord)
            return false;
        siglen = ecdsa_raw_to_der(sig, coord, der);
        sig = der;
    } else if (alg & JOSE_RSA_ALGS) {
        if (siglen != (size_t)EVP_PKEY_get_size(k->pkey))
            return false;
    } else if (siglen != 64) { /* EdDSA */
        return false;
    }
    const char *md = jose_alg_digest(alg);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = ctx && EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, k->pkey, NULL) == 1;
    if (ok && (alg & (JOSE_PS256 | JOSE_PS384 | JOSE_PS512)))
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, md, NULL) == 1;
    else if (ok && (alg & JOSE_RSA_ALGS))
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    ok = ok && EVP_DigestVerify(ctx, sig, siglen, in, inlen) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        ERR_clear_error(); /* a forged token must not leave entries in this thread's queue */
    return ok;
}

static bool key_verify(const struct jose_key *k, unsigned alg, const unsigned char *in,
                       size_t inlen, const unsigned char *sig, size_t siglen)
{
    if (!(k->algs & alg))
        return false; /* never reached: callers filter, but the pin is checked where it acts */
    if (alg & JOSE_HMAC_ALGS)
        return hmac_verify(k, alg, in, inlen, sig, siglen);
    return asym_verify(k, alg, in, inlen, sig, siglen);
}

/* ---- verify ------------------------------------------------------------------------------ */

struct jws {
    const unsigned char *input; /* header.payload, as sent */
    size_t input_len;
    unsigned char *header, *payload, *sig; /* decoded, inside one buffer */
    size_t header_len, payload_len, sig_len;
    unsigned alg;
    const char *kid; /* borrowed from the parsed header; NULL when absent */
    size_t kid_len;
};

static void say(char *why, size_t whylen, const char *msg)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", msg);
}

/* Splits and decodes; buf holds at least len bytes. */
static jose_status_t jws_split(const char *token, size_t len, unsigned char *buf, struct jws *j,
                               char *why, size_t whylen)
{
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token))) {
        say(why, whylen, "not three segments");
        return JOSE_MALFORMED;
    }
    size_t hl = (size_t)(d1 - token), pl = (size_t)(d2 - d1 - 1), sl = len - hl - pl - 2;
    j->input = (const unsigned char *)token;
    j->input_len = hl + 1 + pl;
    j->header = buf;
    if (!jose_b64url_decode(token, hl, j->header, &j->header_len)) {
        say(why, whylen, "header is not base64url");
        return JOSE_MALFORMED;
    }
    j->payload = j->header + j->header_len;
    if (!jose_b64url_decode(d1 + 1, pl, j->payload, &j->payload_len)) {
        say(why, whylen, "payload is not base64url");
        return JOSE_MALFORMED;
    }
    j->sig = j->payload + j->payload_len;
    if (!jose_b64url_decode(d2 + 1, sl, j->sig, &j->sig_len)) {
        say(why, whylen, "signature is not base64url");
        return JOSE_MALFORMED;
    }
    return JOSE_OK;
}

/* Refuses duplicate keys; says which way it failed through *dup. */
static json_t *parse_object(const unsigned char *s, size_t len, bool *dup)
{
    json_error_t jerr;
    json_t *v = json_loadb((const char *)s, len, JSON_REJECT_DUPLICATES, &jerr);
    *dup = !v && json_error_code(&jerr) == json_error_duplicate_key;
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static bool is_none(const char *s)
{
    return strcasecmp(s, "none") == 0;
}

/* Shape first (BAD_HEADER), then the alg against the allowlist (ALG_REFUSED). */
static jose_status_t check_header(json_t *h, unsigned allow, struct jws *j, char *why,
                                  size_t whylen)
{
    json_t *alg = json_object_get(h, "alg"), *kid = json_object_get(h, "kid");
    json_t *b64 = json_object_get(h, "b64");
    if (!alg || !json_is_string(alg)) {
        say(why, whylen, alg ? "alg is not a string" : "alg missing");
        return JOSE_BAD_HEADER;
    }
    if (kid) {
        if (!json_is_string(kid)) {
            say(why, whylen, "kid is not a string");
            return JOSE_BAD_HEADER;
        }
        j->kid = json_string_value(kid);
        j->kid_len = json_string_length(kid);
        if (j->kid_len > JOSE_MAX_KID || memchr(j->kid, '\0', j->kid_len)) {
            say(why, whylen, j->kid_len > JOSE_MAX_KID ? "kid too long" : "kid contains NUL");
            return JOSE_BAD_HEADER;
        }
    }
    /* We implement no extension, so any "crit" names one we do not understand (RFC 7515
     * section 4.1.11 requires refusing the token then). */
    if (json_object_get(h, "crit")) {
        say(why, whylen, "crit names an unsupported extension");
        return JOSE_BAD_HEADER;
    }
    if (b64 && !json_is_true(b64)) {
        say(why, whylen, "unencoded payload (b64) not supported");
        return JOSE_BAD_HEADER;
    }
    /* "jku", "x5u", "jwk", "x5c": deliberately ignored, see the top of this file. */
    const char *name = json_string_value(alg);
    bool embedded_nul = strlen(name) != json_string_length(alg);
    if (!embedded_nul && is_none(name)) {
        say(why, whylen, "alg none refused");
        return JOSE_ALG_REFUSED;
    }
    j->alg = embedded_nul ? 0 : jose_alg_parse(name);
    if (!j->alg) {
        say(why, whylen, "unknown alg");
        return JOSE_ALG_REFUSED;
    }
    if (!(j->alg & allow)) {
        if (why && whylen)
            snprintf(why, whylen, "alg %s not allowed", jose_alg_name(j->alg));
        return JOSE_ALG_REFUSED;
    }
    return JOSE_OK;
}

static bool kid_equals(const struct jose_key *k, const char *kid, size_t len)
{
    return k->kid && strlen(k->kid) == len && memcmp(k->kid, kid, len) == 0;
}

/* With a kid: the keys carrying it, or else the keys that carry none (a PEM or secret
 * configured without a kid still verifies tokens that name one; when none of those verifies,
 * the answer stays "kid not found" so a JWKS refetch can still pick up a rotated key).
 * Without a kid: every key. Only keys whose pinned algorithms include alg are tried. */
static jose_status_t verify_keys(const jose_keyset_t *ks, const struct jws *j, char *why,
                                 size_t whylen)
{
    bool candidates = false, fits = false, fallback = false;
    for (int pass = 0; pass < 2 && !candidates; pass++) {
        fallback = pass == 1;
        for (size_t i = 0; ks && i < ks->n; i++) {
            const struct jose_key *k = &ks->keys[i];
            bool pick = !j->kid     ? pass == 0
                        : pass == 0 ? kid_equals(k, j->kid, j->kid_len)
                                    : k->kid == NULL;
            if (!pick)
                continue;
            candidates = true;
            if (!(k->algs & j->alg))
                continue;
            fits = true;
            if (key_verify(k, j->alg, j->input, j->input_len, j->sig, j->sig_len))
                return JOSE_OK;
        }
    }
    if (!candidates) {
        say(why, whylen, j->kid ? "kid not found" : "no keys");
        return JOSE_UNKNOWN_KID;
    }
    if (!fits) {
        if (why && whylen)
            snprintf(why, whylen, "no %skey for alg %s", j->kid ? "selected " : "",
                     jose_alg_name(j->alg));
        return JOSE_KEY_MISMATCH;
    }
    if (fallback) {
        say(why, whylen, "kid not found");
        return JOSE_UNKNOWN_KID;
    }
    say(why, whylen, "signature does not verify");
    return JOSE_BAD_SIGNATURE;
}

jose_status_t jose_verify(const jose_keyset_t *ks, const char *token, size_t len,
                          unsigned alg_allow, json_t **header, json_t **claims, char *why,
                          size_t whylen)
{
    unsigned char buf[JOSE_MAX_TOKEN]; /* all three decoded segments: at most 3/4 of len */
    struct jws j = {0};
    json_t *h = NULL, *c = NULL;
    bool dup = false;
    jose_status_t st;

    say(why, whylen, "");
    if (header)
        *header = NULL;
    if (claims)
        *claims = NULL;
    if (!token || len == 0 || len > JOSE_MAX_TOKEN) {
        say(why, whylen, len > JOSE_MAX_TOKEN ? "token too long" : "empty token");
        return JOSE_MALFORMED;
    }
    st = jws_split(token, len, buf, &j, why, whylen);
    if (st != JOSE_OK)
        return st;
    h = parse_object(j.header, j.header_len, &dup);
    if (!h) {
        say(why, whylen, dup ? "duplicate key in header" : "header is not a JSON object");
        return dup ? JOSE_BAD_HEADER : JOSE_MALFORMED;
    }
    st = check_header(h, alg_allow, &j, why, whylen);
    if (st != JOSE_OK)
        goto done;
    if (j.sig_len == 0) {
        say(why, whylen, "empty signature");
        st = JOSE_BAD_SIGNATURE;
        goto done;
    }
    st = verify_keys(ks, &j, why, whylen);
    if (st != JOSE_OK)
        goto done;
    /* Claims are parsed only once the signature holds: forged payloads never reach jansson. */
    c = parse_object(j.payload, j.payload_len, &dup);
    if (!c) {
        say(why, whylen, dup ? "duplicate key in claims" : "claims are not a JSON object");
        st = JOSE_MALFORMED;
        goto done;
    }
    if (header)
        *header = json_incref(h);
    if (claims)
        *claims = json_incref(c);
done:
    json_decref(c);
    json_decref(h);
    return st;
}

/* Same bounds and strict decoding as jose_verify, minus everything about keys: the result
 * only routes the token to an issuer's keys, which then decide. */
json_t *jose_peek_claims(const char *token, size_t len)
{
    unsigned char buf[JOSE_MAX_TOKEN];
    struct jws j = {0};
    bool dup = false;
    if (!token || len == 0 || len > JOSE_MAX_TOKEN ||
        jws_split(token, len, buf, &j, NULL, 0) != JOSE_OK)
        return NULL;
    return parse_object(j.payload, j.payload_len, &dup);
}
