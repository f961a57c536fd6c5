/* libFuzzer target: jsonio against jansson. The first byte picks the reader's flags, the rest
 * is the text. Both readers must accept and refuse the same texts and read the same values
 * (but for a raw NUL byte, which jsonio always refuses and jansson sometimes skips);
 * what jsonio writes must read back to the same value, byte for byte what jansson writes when
 * there is no real in it (reals are written in fewer digits), and fit a buffer of exactly its
 * length plus the NUL, but not one byte less. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/jsonio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned flag_sets[] = {
    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, /* the request path */
    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, /* mcp.json.decode */
    0,
    JSON_DECODE_ANY,
};

static int has_real(const json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_REAL: return 1;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, k, x) if (has_real(x)) return 1;
        return 0;
    case JSON_ARRAY:
        json_array_foreach(v, i, x) if (has_real(x)) return 1;
        return 0;
    default: return 0;
    }
}

static void disagree(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "jsonio and jansson disagree: %s on %.*s\n", what, (int)size, data);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned flags = flag_sets[data[0] % (sizeof flag_sets / sizeof flag_sets[0])];
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    json_error_t e1, e2;
    json_t *ours = jsonio_parse(text, n, flags, &e1);
    json_t *theirs = json_loadb(text, n, flags, &e2);
    if (memchr(text, '\0', n)) {
        /* a NUL byte is never JSON; jansson reads some of them as the end of the text or
         * skips them after a number or literal ("[1\0]" is [1] to it) */
        if (ours)
            disagree("jsonio accepts a NUL byte", data, size);
        json_decref(theirs);
        return 0;
    }
    if (!ours != !theirs)
        disagree(ours ? "jsonio accepts, jansson refuses" : e1.text, data, size);
    if (!ours) {
        if (e1.position < 0 || (size_t)e1.position > n || e1.line < 1 || e1.column < 1)
            disagree("error position out of the text", data, size);
        return 0;
    }
    if (!json_equal(ours, theirs))
        disagree("different values", data, size);

    size_t len;
    char *out = jsonio_dump(ours, &len);
    if (!out || strlen(out) != len)
        disagree("cannot write what was read", data, size);
    json_t *back = json_loadb(out, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!back || !json_equal(back, ours))
        disagree("what was written reads back different", data, size);
    if (!has_real(ours)) {
        char *j = json_dumps(ours, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!j || strcmp(j, out) != 0)
            disagree("written differently", data, size);
        free(j);
    }
    char *fixed = malloc(len + 1);
    if (!fixed || jsonio_dump_into(ours, fixed, len + 1) != len || strcmp(fixed, out) != 0 ||
        jsonio_dump_into(ours, fixed, len) != (size_t)-1)
        disagree("fixed buffer", data, size);
    free(fixed);
    free(out);
    json_decref(back);
    json_decref(ours);
    json_decref(theirs);
    return 0;
}
