/* libFuzzer target: one header value -> every hdr_* check. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/hdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size heap copy, so a read past the terminator is caught */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    static char *const list[] = {"example.com", "api.example.com:8443", "https://app.example.com",
                                 "*"};
    (void)hdr_accept(s);
    (void)hdr_is_json(s);
    /* the strict-reading checks take (pointer, length) with NULs inside, or a string */
    (void)hdr_is_token(s, size);
    (void)hdr_value_clean(s, size);
    (void)hdr_authority_ok(s, size);
    (void)hdr_target_canonical(s);
    for (int loop = 0; loop < 2; loop++) {
        /* no list, a list without "*", and one with it */
        (void)hdr_host_allowed(s, loop, NULL, 0);
        (void)hdr_host_allowed(s, loop, list, 3);
        (void)hdr_host_allowed(s, loop, list, 4);
        (void)hdr_origin_allowed(s, loop, NULL, 0);
        (void)hdr_origin_allowed(s, loop, list, 3);
        (void)hdr_origin_allowed(s, loop, list, 4);
    }
    free(s);
    return 0;
}
