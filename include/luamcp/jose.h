/* jose — JSON Web Signatures on OpenSSL 3: keys parsed once (JWK, JWKS, PEM), compact JWS
 * verification with the algorithm pinned to the key, and signing for the development issuer.
 *
 * Claims are not checked here (see auth): jose answers "is this token, byte for byte, signed
 * by one of these keys with an algorithm that key and the allowlist permit?" and nothing more.
 * Never trusts the token's alg alone: the key's type (and the JWK's own "alg", when present)
 * decide which algorithms can verify with it; "none" is never accepted. */
#ifndef LUAMCP_JOSE_H
#define LUAMCP_JOSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum jose_alg {
    JOSE_RS256 = 1 << 0, JOSE_RS384 = 1 << 1, JOSE_RS512 = 1 << 2,
    JOSE_PS256 = 1 << 3, JOSE_PS384 = 1 << 4, JOSE_PS512 = 1 << 5,
    JOSE_ES256 = 1 << 6, JOSE_ES384 = 1 << 7, JOSE_ES512 = 1 << 8,
    JOSE_EDDSA = 1 << 9,
    JOSE_HS256 = 1 << 10, JOSE_HS384 = 1 << 11, JOSE_HS512 = 1 << 12,
} jose_alg_t;

#define JOSE_ASYMMETRIC 0x3ff /* every algorithm but HS* */
#define JOSE_MAX_TOKEN 8192   /* longer compact tokens are refused before any parsing */
#define JOSE_MIN_RSA_BITS 2048

/* "RS256" -> JOSE_RS256 ...; 0 when unknown (including "none"). */
unsigned jose_alg_parse(const char *name);
const char *jose_alg_name(unsigned alg);
/* "RS256,ES256" -> mask; -1 (as unsigned: 0) with *err naming the bad entry. */
unsigned jose_algs_parse(const char *list, char **err);

typedef struct jose_keyset jose_keyset_t;

/* A JWKS document ({"keys":[...]}). Keys that cannot be used for signatures are skipped
 * with a note in *warnings (caller frees; may be NULL when nothing was skipped): use other
 * than "sig", unknown kty or crv, RSA under JOSE_MIN_RSA_BITS, private members ignored.
 * NULL with *err when the document is not a JWKS or has no usable key. */
jose_keyset_t *jose_keyset_from_jwks(const char *json, size_t len, char **warnings, char **err);
/* One public key in PEM (SubjectPublicKeyInfo or X.509 certificate), with an optional kid. */
jose_keyset_t *jose_keyset_from_pem(const char *pem, size_t len, const char *kid, char **err);
/* A shared HMAC secret (at least 32 bytes), only for the HS* algorithms. */
jose_keyset_t *jose_keyset_from_secret(const unsigned char *secret, size_t len, const char *kid,
                                       char **err);
/* Thread-safe reference counting; a keyset is immutable after creation. */
jose_keyset_t *jose_keyset_ref(jose_keyset_t *ks);
void jose_keyset_unref(jose_keyset_t *ks);
size_t jose_keyset_size(const jose_keyset_t *ks);
bool jose_keyset_has_kid(const jose_keyset_t *ks, const char *kid);

typedef enum jose_status {
    JOSE_OK = 0,
    JOSE_MALFORMED,     /* not three base64url segments of JSON objects, too long, ... */
    JOSE_BAD_HEADER,    /* typ/crit/alg shape problems, duplicate keys */
    JOSE_ALG_REFUSED,   /* alg not in the allowlist, "none", or unknown */
    JOSE_UNKNOWN_KID,   /* no key with this kid (a refetch may help) */
    JOSE_KEY_MISMATCH,  /* the selected key cannot verify this alg (alg confusion) */
    JOSE_BAD_SIGNATURE,
} jose_status_t;

const char *jose_status_name(jose_status_t st);

/* Verifies a compact JWS. alg_allow is a mask of jose_alg_t. Key selection: by kid when the
 * header has one (JOSE_UNKNOWN_KID when absent from ks); without kid, every key whose type
 * fits alg is tried. On JOSE_OK *header and *claims are new references (either may be NULL
 * to skip). why (may be NULL) receives a short reason for the log — never token content. */
jose_status_t jose_verify(const jose_keyset_t *ks, const char *token, size_t len,
                          unsigned alg_allow, json_t **header, json_t **claims, char *why,
                          size_t whylen);

/* The claims of a compact JWS WITHOUT verifying anything: only to choose which issuer's keys
 * should verify it. New reference, or NULL when the token is not well formed. */
json_t *jose_peek_claims(const char *token, size_t len);

/* ---- signing (development issuer, tests) ---------------------------------------------- */

typedef struct jose_signer jose_signer_t;

/* A new key pair for alg (RS256 with 2048-bit RSA, ES256 with P-256, EdDSA with Ed25519). */
jose_signer_t *jose_signer_generate(unsigned alg, const char *kid, char **err);
/* Private key PEM (PKCS#8) round trip, for a key file the token command can read. */
char *jose_signer_private_pem(const jose_signer_t *s);
jose_signer_t *jose_signer_from_pem(const char *pem, size_t len, unsigned alg, const char *kid,
                                    char **err);
void jose_signer_free(jose_signer_t *s);
const char *jose_signer_kid(const jose_signer_t *s);
/* The public JWKS document ({"keys":[{...}]}) with kid, alg and use "sig"; new reference. */
json_t *jose_signer_jwks(const jose_signer_t *s);
/* A compact JWS of claims (borrowed) with header {alg, kid, typ} (typ may be NULL to omit).
 * Caller frees. */
char *jose_sign(const jose_signer_t *s, const char *typ, const json_t *claims);

#endif
