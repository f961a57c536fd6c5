/* libFuzzer target: a JWKS document -> jose_keyset_from_jwks. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "luamcp/jose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *warnings = NULL, *err = NULL;
    jose_keyset_t *ks = jose_keyset_from_jwks((const char *)data, size, &warnings, &err);
    if (ks) {
        (void)jose_keyset_size(ks);
        (void)jose_keyset_has_kid(ks, "k1");
        jose_keyset_unref(ks);
    }
    free(warnings);
    free(err);
    return 0;
}
