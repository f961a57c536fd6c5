/* jsonio_parse: JSON text to jansson values in one pass, without a lexer's intermediate copies.
 * Plain runs of a string (printable ASCII without '"' or '\\') are handed to jansson straight
 * from the input; only strings with escapes or non-ASCII bytes go through a scratch buffer. */
#include "luamcp/jsonio.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/text.h"

typedef struct {
    const unsigned char *s, *p, *end;
    unsigned flags;
    int depth;
    char *scratch; /* decoded strings; grown as needed, freed at the end */
    size_t scratch_cap;
    const char *why; /* the first error, or NULL */
    const unsigned char *where;
} parser;

/* 1 for bytes a string carries as they are: printable ASCII other than '"' and '\\' */
static const unsigned char plain[256] = {
    ['\x20'] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f, '"' = 0x22 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,             /* 0x30-0x3f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,             /* 0x40-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,             /* 0x50-0x5f, '\\' = 0x5c */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,             /* 0x60-0x6f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,             /* 0x70-0x7f */
};

static json_t *fail(parser *ps, const unsigned char *where, const char *why)
{
    if (!ps->why) {
        ps->why = why;
        ps->where = where;
    }
    return NULL;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static json_t *parse_value(parser *ps);

static int hex4(const unsigned char *h, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = h[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One \u escape at p (pointing at the 'u'), with its low surrogate if it is a high one.
 * Returns the bytes consumed after the backslash, 0 on error (ps->why set). */
static size_t unicode_escape(parser *ps, const unsigned char *p, unsigned *cp)
{
    if (ps->end - p < 5 || hex4(p + 1, cp) != 0)
        return fail(ps, p, "invalid \\u escape"), 0;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return fail(ps, p, "invalid Unicode: a low surrogate alone"), 0;
    if (*cp < 0xD800 || *cp > 0xDBFF)
        return 5;
    unsigned lo;
    if (ps->end - p < 11 || p[5] != '\\' || p[6] != 'u' || hex4(p + 7, &lo) != 0 ||
        lo < 0xDC00 || lo > 0xDFFF)
        return fail(ps, p, "invalid Unicode: a high surrogate without its low one"), 0;
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    return 11;
}

/* The string whose opening quote was just consumed, decoded into *out (borrowed: the input or
 * ps->scratch) and *len. Leaves ps->p after the closing quote. */
static int read_string(parser *ps, const char **out, size_t *len)
{
    const unsigned char *start = ps->p, *p = start, *end = ps->end;
    while (p < end && plain[*p])
        p++;
    if (p < end && *p == '"') { /* the common case: nothing to decode */
        *out = (const char *)start;
        *len = (size_t)(p - start);
        ps->p = p + 1;
        return 0;
    }
    if (p >= end)
        return fail(ps, p, "unterminated string"), -1;
    /* decoded text is never longer than its source */
    size_t need = (size_t)(end - start);
    if (need > ps->scratch_cap) {
        size_t cap = need < 256 ? 256 : need;
        char *grown = realloc(ps->scratch, cap);
        if (!grown)
            return fail(ps, p, "out of memory"), -1;
        ps->scratch = grown;
        ps->scratch_cap = cap;
    }
    char *o = ps->scratch;
    size_t n = (size_t)(p - start);
    memcpy(o, start, n);
    for (;;) {
        if (p >= end)
            return fail(ps, p, "unterminated string"), -1;
        unsigned c = *p;
        if (plain[c]) {
            o[n++] = (char)c;
            p++;
        } else if (c == '"') {
            break;
        } else if (c == '\\') {
            if (p + 1 >= end)
                return fail(ps, p, "unterminated string"), -1;
            unsigned cp;
            size_t used = 1;
            switch (p[1]) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (!(used = unicode_escape(ps, p + 1, &cp)))
                    return -1;
                if (cp == 0 && !(ps->flags & JSON_ALLOW_NUL))
                    return fail(ps, p, "\\u0000 is not allowed in a string"), -1;
                break;
            default: return fail(ps, p, "invalid escape"), -1;
            }
            n += put_utf8(o + n, cp);
            p += 1 + used;
        } else if (c < 0x20) {
            return fail(ps, p, "control character in a string"), -1;
        } else {
            size_t k = text_utf8_sequence_length(p, (size_t)(end - p));
            if (!k)
                return fail(ps, p, "invalid UTF-8 in a string"), -1;
            memcpy(o + n, p, k);
            n += k;
            p += k;
        }
    }
    *out = o;
    *len = n;
    ps->p = p + 1;
    return 0;
}

static json_t *parse_number(parser *ps)
{
    const unsigned char *start = ps->p, *p = start, *end = ps->end;
    bool neg = p < end && *p == '-';
    if (neg)
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return fail(ps, start, "invalid token");
    if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9')
        return fail(ps, start, "invalid token: a number with a leading zero");
    const unsigned char *digits = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    bool real = false;
    if (p < end && *p == '.') {
        real = true;
        if (++p >= end || *p < '0' || *p > '9')
            return fail(ps, start, "invalid token: no digit after '.'");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = true;
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return fail(ps, start, "invalid token: no digit in the exponent");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    ps->p = p;
    if (!real) {
        /* accumulated negative, which reaches LLONG_MIN */
        long long v = 0;
        for (const unsigned char *d = digits; d < p; d++) {
            int digit = *d - '0';
            if (v < (LLONG_MIN + digit) / 10)
                return fail(ps, start, neg ? "too big negative integer" : "too big integer");
            v = v * 10 - digit;
        }
        if (!neg) {
            if (v == LLONG_MIN)
                return fail(ps, start, "too big integer");
            v = -v;
        }
        json_t *j = json_integer(v);
        return j ? j : fail(ps, start, "out of memory");
    }
    /* strtod needs a terminated copy; a long one (thousands of digits) goes to the heap */
    size_t n = (size_t)(p - start);
    char small[64], *copy = n < sizeof small ? small : malloc(n + 1);
    if (!copy)
        return fail(ps, start, "out of memory");
    memcpy(copy, start, n);
    copy[n] = '\0';
    errno = 0;
    double d = strtod(copy, NULL);
    int range = errno;
    if (copy != small)
        free(copy);
    if (range == ERANGE && isinf(d))
        return fail(ps, start, "real number overflow");
    json_t *j = json_real(d);
    return j ? j : fail(ps, start, "out of memory");
}

/* At a container's start: true (and past it) when `close` follows at once. */
static bool empty(parser *ps, char close)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return true;
    }
    return false;
}

/* After a member or an element: 1 when a ',' says another follows, 0 when `close` ends the
 * container, -1 (the error recorded) otherwise. */
static int next_item(parser *ps, char close)
{
    skip_ws(ps);
    if (ps->p < ps->end && (*ps->p == ',' || *ps->p == close)) {
        bool more = *ps->p++ == ',';
        if (more)
            skip_ws(ps);
        return more;
    }
    fail(ps, ps->p, ps->p >= ps->end ? "unexpected end of input"
                    : close == '}'   ? "expected ',' or '}'"
                                     : "expected ',' or ']'");
    return -1;
}

static json_t *parse_object(parser *ps)
{
    json_t *obj = json_object();
    char small[64], *held = NULL; /* a key decoded into scratch, which its value may reuse */
    if (!obj)
        return fail(ps, ps->p, "out of memory");
    if (empty(ps, '}'))
        return obj;
    for (;;) {
        if (ps->p >= ps->end || *ps->p != '"') {
            fail(ps, ps->p, ps->p >= ps->end ? "unexpected end of input" : "expected a key");
            goto error;
        }
        const unsigned char *at = ps->p++;
        const char *key;
        size_t klen;
        if (read_string(ps, &key, &klen) != 0)
            goto error;
        if (memchr(key, '\0', klen)) {
            fail(ps, at, "NUL character in an object key");
            goto error;
        }
        if ((ps->flags & JSON_REJECT_DUPLICATES) && json_object_getn(obj, key, klen)) {
            fail(ps, at, "duplicate object key");
            goto error;
        }
        if (key == ps->scratch) {
            char *copy = klen < sizeof small ? small : malloc(klen);
            if (!copy) {
                fail(ps, at, "out of memory");
                goto error;
            }
            memcpy(copy, key, klen);
            key = copy;
            held = copy == small ? NULL : copy;
        }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            fail(ps, ps->p, ps->p >= ps->end ? "unexpected end of input" : "expected ':'");
            goto error;
        }
        ps->p++;
        skip_ws(ps);
        json_t *v = parse_value(ps);
        if (!v || json_object_setn_new_nocheck(obj, key, klen, v) != 0) {
            fail(ps, at, "out of memory"); /* parse_value's own reason comes first */
            goto error;
        }
        free(held);
        held = NULL;
        int more = next_item(ps, '}');
        if (more == 0)
            return obj;
        if (more < 0)
            goto error;
    }
error:
    free(held);
    json_decref(obj);
    return NULL;
}

static json_t *parse_array(parser *ps)
{
    json_t *arr = json_array();
    if (!arr)
        return fail(ps, ps->p, "out of memory");
    if (empty(ps, ']'))
        return arr;
    for (;;) {
        const unsigned char *at = ps->p;
        json_t *v = parse_value(ps);
        if (!v || json_array_append_new(arr, v) != 0) {
            fail(ps, at, "out of memory");
            break;
        }
        int more = next_item(ps, ']');
        if (more == 0)
            return arr;
        if (more < 0)
            break;
    }
    json_decref(arr);
    return NULL;
}

static bool literal(parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return false;
    ps->p += n;
    return true;
}

/* A value at ps->p (whitespace before it already skipped). */
static json_t *parse_value(parser *ps)
{
    if (ps->p >= ps->end)
        return fail(ps, ps->p, "unexpected end of input");
    const unsigned char *at = ps->p;
    json_t *v;
    switch (*ps->p) {
    case '{':
    case '[':
        if (++ps->depth > JSONIO_MAX_DEPTH)
            return fail(ps, at, "nested too deeply");
        ps->p++;
        v = *at == '{' ? parse_object(ps) : parse_array(ps);
        ps->depth--;
        return v;
    case '"': {
        const char *s;
        size_t n;
        ps->p++;
        if (read_string(ps, &s, &n) != 0)
            return NULL;
        v = json_stringn_nocheck(s, n);
        return v ? v : fail(ps, at, "out of memory");
    }
    case 't':
        return literal(ps, "true", 4) ? json_true() : fail(ps, at, "invalid token");
    case 'f':
        return literal(ps, "false", 5) ? json_false() : fail(ps, at, "invalid token");
    case 'n':
        return literal(ps, "null", 4) ? json_null() : fail(ps, at, "invalid token");
    default:
        return parse_number(ps);
    }
}

static void describe(const parser *ps, json_error_t *err)
{
    const unsigned char *where = ps->where ? ps->where : ps->p;
    int line = 1;
    const unsigned char *bol = ps->s;
    for (const unsigned char *q = ps->s; q < where; q++)
        if (*q == '\n')
            line++, bol = q + 1;
    err->line = line;
    err->column = (int)(where - bol) + 1;
    err->position = (int)(where - ps->s);
    snprintf(err->source, sizeof err->source, "<text>");
    snprintf(err->text, sizeof err->text, "%s", ps->why ? ps->why : "invalid JSON");
}

json_t *jsonio_parse(const char *text, size_t len, unsigned flags, json_error_t *err)
{
    parser ps = {.s = (const unsigned char *)text, .p = (const unsigned char *)text,
                 .end = (const unsigned char *)text + len, .flags = flags};
    json_t *v = NULL;
    skip_ws(&ps);
    if (!(flags & JSON_DECODE_ANY) && ps.p < ps.end && *ps.p != '{' && *ps.p != '[')
        fail(&ps, ps.p, "'[' or '{' expected");
    else if ((v = parse_value(&ps)) != NULL) {
        skip_ws(&ps);
        if (ps.p < ps.end) {
            json_decref(v);
            v = fail(&ps, ps.p, "end of input expected after the value");
        }
    }
    free(ps.scratch);
    if (!v && err)
        describe(&ps, err);
    return v;
}
