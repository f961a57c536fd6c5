/* libFuzzer target: a compact JWS -> jose_peek_claims and jose_verify against a fixed keyset
 * (one RSA 2048 key, kid "rsa1", and one P-256 key, kid "ec1"; public halves only — the
 * private keys were thrown away after signing the seed tokens in corpus/jose). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/jose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char JWKS[] =
    "{\"keys\":["
    "{\"kty\":\"RSA\",\"kid\":\"rsa1\",\"use\":\"sig\",\"alg\":\"RS256\",\"e\":\"AQAB\","
    "\"n\":\"6mU1OmiMLpRVQxGevq8jXh6Ul2-Dp6GXnTWC3R3_-3mLzCY_LZ13Pq0dwX7cgEKnvnWMDavlq376M5P-9hGc"
    "8YaMF4Tnsq_i064kpc4EjgQOZbM1eS7QpMONdt3oJ2j5GKAV4cc7SgjPZXWZVnVnobQPjUT_BhPbR42QBdNjuoVq8_eQ"
    "hlAlbigCZtjQ6Dq2QhYiT5Kgb7R30gtLO2AU9CyhWn3k9NssYDaQSKVb-INkhRaFuoVNR_867amLjWwP0cv5GZRWLer4"
    "dNZavF-4hACYHY5uUSgwv0S2LiVMWmgINxML9LXOPS3u_RvSVe_B7gMCiMDa3GMKYjDi9wybNw\"},"
    "{\"kty\":\"EC\",\"kid\":\"ec1\",\"use\":\"sig\",\"crv\":\"P-256\","
    "\"x\":\"iDNa45SAoBuh1lwaSQMvDzdpaUmdKl5eWuVpTABbJGg\","
    "\"y\":\"WAe7hZ3_8hg0JxFXBIs88i-ecAzSxn9YMcVOPLm4aBI\"}"
    "]}";

static const jose_keyset_t *keyset(void)
{
    static jose_keyset_t *ks;
    if (!ks) {
        char *warnings = NULL, *err = NULL;
        ks = jose_keyset_from_jwks(JWKS, strlen(JWKS), &warnings, &err);
        if (!ks || warnings || jose_keyset_size(ks) != 2) {
            fprintf(stderr, "fuzz_jose: embedded JWKS rejected: %s %s\n", err ? err : "",
                    warnings ? warnings : "");
            abort();
        }
    }
    return ks;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const jose_keyset_t *ks = keyset();
    const char *token = (const char *)data; /* exactly size bytes, no terminator */

    json_t *peeked = jose_peek_claims(token, size);
    json_decref(peeked);

    json_t *header = NULL, *claims = NULL;
    char why[256];
    jose_status_t st = jose_verify(ks, token, size, JOSE_ASYMMETRIC, &header, &claims, why,
                                   sizeof why);
    if (st == JOSE_OK && (!json_is_object(header) || !json_is_object(claims))) {
        fprintf(stderr, "fuzz_jose: JOSE_OK without header and claims objects\n");
        abort();
    }
    (void)jose_status_name(st);
    json_decref(header);
    json_decref(claims);
    return 0;
}
