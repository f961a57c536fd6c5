/* xheader — reading x-mcp-header annotations at load time, checking Mcp-Param-* headers per
 * request (see xheader.h). */
#include "luamcp/xheader.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "luamcp/api_crypto.h"
#include "luamcp/decl.h"

#define KEY            "x-mcp-header"
#define SENTINEL_OPEN  "=?base64?"
#define SENTINEL_CLOSE "?="
#define VALUE_MAX      8192 /* bytes of a header value we look at (libmicrohttpd bounds it too) */

/* RFC 9110 tchar */
static bool token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

/* Annotations anywhere in v (a schema), keys of `properties` maps aside. */
static size_t count_all(const json_t *v, bool props_map, int depth)
{
    size_t n = 0;
    if (depth > 64)
        return 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) n += count_all(x, false, depth + 1);
        return n;
    }
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        if (!props_map && strcmp(k, KEY) == 0)
            n++;
        n += count_all(x, !props_map && strcmp(k, "properties") == 0, depth + 1);
    }
    return n;
}

static int add(xheaders_t *h, const char *const *path, size_t depth, const json_t *prop, char **err)
{
    const char *name = json_string_value(json_object_get(prop, KEY));
    const char *type = json_string_value(json_object_get(prop, "type"));
    if (!name || !token(name) || strlen(name) > XHEADER_NAME_MAX) {
        *err = decl_fmt("inputSchema: property '%s': x-mcp-header must be an HTTP token (1 to %d "
                        "of A-Z a-z 0-9 !#$%%&'*+-.^_`|~)",
                        path[depth - 1], XHEADER_NAME_MAX);
        return -1;
    }
    if (!type || (strcmp(type, "string") && strcmp(type, "integer") && strcmp(type, "boolean"))) {
        *err = decl_fmt("inputSchema: property '%s': x-mcp-header needs type = \"string\", "
                        "\"integer\" or \"boolean\"",
                        path[depth - 1]);
        return -1;
    }
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->v[i].name, name) == 0) {
            *err = decl_fmt("inputSchema: x-mcp-header '%s' is used twice (names are compared "
                            "without case)",
                            name);
            return -1;
        }
    if (h->n == XHEADER_MAX) {
        *err = decl_fmt("inputSchema: more than %d x-mcp-header annotations", XHEADER_MAX);
        return -1;
    }
    xheader_t *x = &h->v[h->n];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->type = type[0];
    x->path = calloc(depth, sizeof *x->path);
    if (!x->path)
        return -1;
    h->n++; /* from here xheaders_clear frees it */
    x->depth = depth;
    for (size_t i = 0; i < depth; i++)
        if (!(x->path[i] = strdup(path[i])))
            return -1;
    return 0;
}

/* The annotated properties reachable from schema through `properties` alone. */
static int walk(const json_t *schema, const char **path, size_t depth, xheaders_t *h, size_t *found,
                char **err)
{
    const char *k;
    json_t *prop;
    json_object_foreach(json_object_get(schema, "properties"), k, prop)
    {
        if (!json_is_object(prop))
            continue;
        if (depth == XHEADER_DEPTH_MAX)
            return 0; /* deeper annotations count as misplaced */
        path[depth] = k;
        if (json_object_get(prop, KEY)) {
            (*found)++;
            if (add(h, path, depth + 1, prop, err))
                return -1;
        }
        if (walk(prop, path, depth + 1, h, found, err))
            return -1;
    }
    return 0;
}

int xheaders_read(const json_t *schema, xheaders_t *out, char **err)
{
    memset(out, 0, sizeof *out);
    *err = NULL;
    size_t all = count_all(schema, false, 0);
    if (all == 0)
        return 0;
    const char *path[XHEADER_DEPTH_MAX];
    size_t found = 0;
    out->v = calloc(XHEADER_MAX, sizeof *out->v);
    if (!out->v || walk(schema, path, 0, out, &found, err))
        goto fail;
    if (found != all) {
        *err = decl_fmt("inputSchema: x-mcp-header belongs on a property reached through "
                        "'properties' only (at most %d deep; not under items, $defs, allOf, "
                        "anyOf, oneOf, not or if/then/else)",
                        XHEADER_DEPTH_MAX);
        goto fail;
    }
    return 0;
fail:
    if (!*err)
        *err = strdup("out of memory");
    xheaders_clear(out);
    return -1;
}

void xheaders_clear(xheaders_t *h)
{
    for (size_t i = 0; h->v && i < h->n; i++) {
        for (size_t j = 0; j < h->v[i].depth; j++)
            free(h->v[i].path[j]);
        free(h->v[i].path);
    }
    free(h->v);
    memset(h, 0, sizeof *h);
}

/* The value a header must carry for v, or false when v has none a header can say. */
static bool expected(const json_t *v, char *buf, size_t n, const char **out, size_t *len)
{
    if (json_is_string(v)) {
        *out = json_string_value(v);
        *len = json_string_length(v);
    } else if (json_is_true(v) || json_is_false(v)) {
        *out = json_is_true(v) ? "true" : "false";
        *len = strlen(*out);
    } else if (json_is_integer(v)) {
        *len = (size_t)snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *out = buf;
    } else {
        return false;
    }
    return true;
}

/* Integers compare as numbers ("42.0" says 42), written as JSON writes numbers: an optional
 * minus, digits, an optional fraction and exponent, nothing else (no spaces, no "0x", no
 * "inf"); an integer form is compared exactly, a decimal one only where doubles are exact. */
static bool same_number(const json_t *v, const char *s, size_t len)
{
    json_int_t want;
    const json_int_t exact = (json_int_t)1 << 53; /* beyond, a double rounds integers */
    if (json_is_integer(v))
        want = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == (double)(json_int_t)json_real_value(v) &&
             json_real_value(v) > -(double)exact && json_real_value(v) < (double)exact)
        want = (json_int_t)json_real_value(v); /* 42.0 in the body is the integer 42 too */
    else
        return false;
    if (len == 0 || len > 40)
        return false;
    size_t i = s[0] == '-';
    size_t digits = i;
    while (i < len && isdigit((unsigned char)s[i]))
        i++;
    if (i == digits)
        return false;
    bool integral = i == len;
    if (i < len && s[i] == '.') {
        size_t f = ++i;
        while (i < len && isdigit((unsigned char)s[i]))
            i++;
        if (i == f)
            return false;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e = i;
        while (i < len && isdigit((unsigned char)s[i]))
            i++;
        if (i == e)
            return false;
    }
    if (i != len)
        return false;
    char tmp[48], *end;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (integral) {
        errno = 0;
        long long got = strtoll(tmp, &end, 10);
        return errno == 0 && *end == '\0' && got == want;
    }
    double d = strtod(tmp, &end);
    return *end == '\0' && want > -exact && want < exact && d == (double)want;
}

const char XHEADER_REPEATED[] = "(repeated)";

const char *xheaders_check(const xheaders_t *h, const json_t *args,
                           const char *(*get)(void *ctx, const char *header), void *ctx, char *buf,
                           size_t n)
{
    for (size_t i = 0; i < h->n; i++) {
        const xheader_t *x = &h->v[i];
        const json_t *v = args;
        for (size_t d = 0; d < x->depth && v; d++)
            v = json_object_get(v, x->path[d]);
        char header[16 + XHEADER_NAME_MAX];
        snprintf(header, sizeof header, "Mcp-Param-%s", x->name);
        const char *hv = get(ctx, header);
        if (hv == XHEADER_REPEATED) {
            snprintf(buf, n, "Header mismatch: %s was sent more than once", header);
            return buf;
        }
        if (!v || json_is_null(v)) {
            if (!hv)
                continue;
            snprintf(buf, n,
                     "Header mismatch: %s was sent, but the arguments have no value "
                     "for it",
                     header);
            return buf;
        }
        if (!hv) {
            snprintf(buf, n,
                     "Header mismatch: %s is missing (the arguments have a value for "
                     "it)",
                     header);
            return buf;
        }
        /* the field value without the whitespace around it (RFC 9110 section 5.5) */
        while (*hv == ' ' || *hv == '\t')
            hv++;
        size_t len = strlen(hv);
        while (len && (hv[len - 1] == ' ' || hv[len - 1] == '\t'))
            len--;
        if (len > VALUE_MAX) {
            snprintf(buf, n, "Header mismatch: %s is too long", header);
            return buf;
        }
        for (size_t j = 0; j < len; j++)
            if ((unsigned char)hv[j] < 0x20 ? hv[j] != '\t' : (unsigned char)hv[j] > 0x7e) {
                snprintf(buf, n,
                         "Header mismatch: %s has characters a header value may not "
                         "carry (send them base64-encoded)",
                         header);
                return buf;
            }
        const size_t open = strlen(SENTINEL_OPEN), close = strlen(SENTINEL_CLOSE);
        unsigned char decoded[VALUE_MAX / 4 * 3 + 4];
        const char *said = hv;
        size_t said_len = len;
        if (len >= open + close && strncmp(hv, SENTINEL_OPEN, open) == 0 &&
            strncmp(hv + len - close, SENTINEL_CLOSE, close) == 0) {
            char why[128];
            if (crypto_b64_decode(hv + open, len - open - close, decoded, &said_len, why,
                                  sizeof why)) {
                snprintf(buf, n, "Header mismatch: %s: %s", header, why);
                return buf;
            }
            said = (const char *)decoded;
        }
        char num[32];
        const char *want;
        size_t want_len;
        bool ok = expected(v, num, sizeof num, &want, &want_len) && said_len == want_len &&
                  memcmp(said, want, want_len) == 0;
        if (!ok && x->type == 'i')
            ok = same_number(v, said, said_len);
        if (!ok) {
            snprintf(buf, n, "Header mismatch: %s does not match the argument it mirrors", header);
            return buf;
        }
    }
    return NULL;
}
