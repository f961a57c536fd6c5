/* Shared by jose.c (verify), jwk.c (keys, keysets) and jose_sign.c (signer): the key and
 * keyset layout, base64url, and what each key type may do. Not part of the public API. */
#ifndef LUAMCP_JOSE_INT_H
#define LUAMCP_JOSE_INT_H

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "luamcp/jose.h"

#define JOSE_RSA_ALGS     (JOSE_RS256 | JOSE_RS384 | JOSE_RS512 | JOSE_PS256 | JOSE_PS384 | JOSE_PS512)
#define JOSE_HMAC_ALGS    (JOSE_HS256 | JOSE_HS384 | JOSE_HS512)
#define JOSE_ALL_ALGS     0x1fffu
#define JOSE_MAX_KID      256  /* longer kids are refused in tokens and skipped in JWKS */
#define JOSE_MAX_RSA_BITS 8192 /* bounds the cost of one verify */

/* One verification key, immutable once in a keyset. */
struct jose_key {
    char *kid;             /* NUL-free, at most JOSE_MAX_KID bytes; NULL when the key has none */
    unsigned algs;         /* the algorithms this key may verify (type, curve, JWK "alg") */
    EVP_PKEY *pkey;        /* asymmetric keys; NULL for an HMAC secret */
    unsigned char *secret; /* HMAC only */
    size_t secret_len;
};

struct jose_keyset {
    atomic_uint refs;
    size_t n;
    struct jose_key *keys;
};

/* Strict RFC 4648 section 5 without padding: only [A-Za-z0-9_-], no '=', length mod 4 != 1,
 * unused trailing bits zero (so every byte string has exactly one accepted encoding). out
 * holds at least len * 3 / 4 bytes. */
bool jose_b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);
/* out holds at least jose_b64url_len(len) + 1 bytes; NUL-terminates; returns the length. */
size_t jose_b64url_encode(const unsigned char *in, size_t len, char *out);
static inline size_t jose_b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}
/* Caller frees; NULL on allocation failure. */
char *jose_b64url_encode_alloc(const unsigned char *in, size_t len);

/* The algorithms a key of this type could ever verify or sign with: RSA (>= 2048 bits) ->
 * RS/PS; EC by curve -> exactly one ES; Ed25519 -> EdDSA. 0 with *why for anything else. */
unsigned jose_pkey_algs(EVP_PKEY *pkey, const char **why);
/* Bytes of one ECDSA coordinate for ES256/384/512, else 0. */
size_t jose_ec_coord_len(unsigned alg);
/* The digest name for an algorithm ("SHA256" ...), NULL for EdDSA (no separate digest). */
const char *jose_alg_digest(unsigned alg);

/* Sets *err (when err is not NULL) to a copy of msg. */
void jose_set_err(char **err, const char *msg);

#endif
