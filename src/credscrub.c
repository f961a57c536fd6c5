#include "luamcp/credscrub.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MASK     "[credential]"
#define MASK_LEN (sizeof MASK - 1)
#define MIN_FORM 8

typedef struct form {
    char *text;
    size_t len;
} form_t;

struct credscrub {
    form_t *forms;
    size_t n, cap;
    form_t *values; /* the values themselves, for the escape-aware pass (json_pass) */
    size_t nv;
};

/* Adds text (takes ownership) unless it is too short or already there. */
static bool add(credscrub_t *c, char *text, size_t len, size_t min)
{
    if (!text)
        return false;
    bool dup = len < min;
    for (size_t i = 0; i < c->n && !dup; i++)
        dup = c->forms[i].len == len && memcmp(c->forms[i].text, text, len) == 0;
    if (dup) {
        free(text);
        return true;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        form_t *grown = realloc(c->forms, cap * sizeof *grown);
        if (!grown) {
            free(text);
            return false;
        }
        c->forms = grown;
        c->cap = cap;
    }
    c->forms[c->n++] = (form_t){text, len};
    return true;
}

static char *reversed(const char *v, size_t n)
{
    char *out = malloc(n + 1);
    for (size_t i = 0; out && i < n; i++)
        out[i] = v[n - 1 - i];
    if (out)
        out[n] = '\0';
    return out;
}

static char *hex(const char *v, size_t n, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char *out = malloc(2 * n + 1);
    for (size_t i = 0; out && i < n; i++) {
        out[2 * i] = digits[(unsigned char)v[i] >> 4];
        out[2 * i + 1] = digits[(unsigned char)v[i] & 15];
    }
    if (out)
        out[2 * n] = '\0';
    return out;
}

static bool unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

static char *percent(const char *v, size_t n, bool upper, size_t *len)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char *out = malloc(3 * n + 1), *o = out;
    for (size_t i = 0; out && i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (unreserved(ch)) {
            *o++ = (char)ch;
        } else {
            *o++ = '%';
            *o++ = digits[ch >> 4];
            *o++ = digits[ch & 15];
        }
    }
    if (out) {
        *o = '\0';
        *len = (size_t)(o - out);
    }
    return out;
}

/* As a JSON string's content would carry it ('/' escaped too, as some encoders do). */
static char *json_escaped(const char *v, size_t n, size_t *len)
{
    char *out = malloc(2 * n + 1), *o = out;
    for (size_t i = 0; out && i < n; i++) {
        if (v[i] == '"' || v[i] == '\\' || v[i] == '/')
            *o++ = '\\';
        *o++ = v[i];
    }
    if (out) {
        *o = '\0';
        *len = (size_t)(o - out);
    }
    return out;
}

/* base64 of the whole 3-byte groups of v (no padding): what any encoding of a text holding v
 * at this alignment contains. */
static char *b64_core(const unsigned char *v, size_t n, bool url, size_t *len)
{
    const char *a = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t groups = n / 3;
    char *out = malloc(4 * groups + 1), *o = out;
    for (size_t g = 0; out && g < groups; g++) {
        uint32_t x = (uint32_t)v[3 * g] << 16 | (uint32_t)v[3 * g + 1] << 8 | v[3 * g + 2];
        *o++ = a[x >> 18 & 63];
        *o++ = a[x >> 12 & 63];
        *o++ = a[x >> 6 & 63];
        *o++ = a[x & 63];
    }
    if (out) {
        *o = '\0';
        *len = (size_t)(o - out);
    }
    return out;
}

static bool add_value(credscrub_t *c, const char *v)
{
    size_t n = strlen(v), len = 0;
    if (n < 4)
        return true;
    form_t *grown = realloc(c->values, (c->nv + 1) * sizeof *grown);
    if (!grown)
        return false;
    c->values = grown;
    if (!(c->values[c->nv].text = strdup(v)))
        return false;
    c->values[c->nv++].len = n;
    bool ok = add(c, strdup(v), n, 4) && add(c, reversed(v, n), n, MIN_FORM) &&
              add(c, hex(v, n, false), 2 * n, MIN_FORM) && add(c, hex(v, n, true), 2 * n, MIN_FORM);
    char *p = ok ? percent(v, n, true, &len) : NULL;
    ok = ok && add(c, p, len, MIN_FORM);
    p = ok ? percent(v, n, false, &len) : NULL;
    ok = ok && add(c, p, len, MIN_FORM);
    p = ok ? json_escaped(v, n, &len) : NULL;
    ok = ok && add(c, p, len, MIN_FORM);
    for (size_t shift = 0; ok && shift < 3 && shift < n; shift++)
        for (int url = 0; ok && url < 2; url++) {
            p = b64_core((const unsigned char *)v + shift, n - shift, url, &len);
            ok = add(c, p, len, MIN_FORM);
        }
    return ok;
}

credscrub_t *credscrub_new(const char *const *values, size_t n)
{
    credscrub_t *c = calloc(1, sizeof *c);
    for (size_t i = 0; c && i < n; i++)
        if (values[i] && !add_value(c, values[i])) {
            credscrub_free(c);
            return NULL;
        }
    return c;
}

void credscrub_free(credscrub_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        memset(c->forms[i].text, 0, c->forms[i].len);
        free(c->forms[i].text);
    }
    for (size_t i = 0; i < c->nv; i++) {
        memset(c->values[i].text, 0, c->values[i].len);
        free(c->values[i].text);
    }
    free(c->forms);
    free(c->values);
    free(c);
}

/* One form replaced throughout src (n bytes) into a new buffer; NULL when absent. */
static char *replace(const char *src, size_t n, const form_t *f, size_t *out_len, bool *oom)
{
    const char *hit = memmem(src, n, f->text, f->len);
    if (!hit)
        return NULL;
    /* each hit shrinks or grows the text by MASK_LEN - f->len; at most n / f->len hits */
    size_t cap = n + (n / f->len + 1) * MASK_LEN + 1;
    char *out = malloc(cap), *o = out;
    if (!out) {
        *oom = true;
        return NULL;
    }
    const char *p = src, *end = src + n;
    while (hit) {
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, MASK, MASK_LEN);
        o += MASK_LEN;
        p = hit + f->len;
        hit = memmem(p, (size_t)(end - p), f->text, f->len);
    }
    memcpy(o, p, (size_t)(end - p));
    o += end - p;
    *o = '\0';
    *out_len = (size_t)(o - out);
    return out;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
        return (ch | 0x20) - 'a' + 10;
    return -1;
}

/* The length of v (n bytes) at p when each of its bytes may also be written as a JSON escape
 * — \u00hh in either case, or \" \\ \/ — as encoders choose per byte (Go escapes & < >, others
 * every non-alphanumeric): no fixed form covers the mixes, and a script's mcp.json.decode or
 * r:json() would undo them. 0 when v is not there. */
static size_t json_match(const char *p, const char *end, const char *v, size_t n)
{
    const char *q = p;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (q < end && *q == '\\' && end - q >= 6 && q[1] == 'u' && q[2] == '0' && q[3] == '0' &&
            hexval(q[4]) >= 0 && hexval(q[5]) >= 0 && hexval(q[4]) * 16 + hexval(q[5]) == ch)
            q += 6;
        else if (q < end && *q == '\\' && end - q >= 2 && (unsigned char)q[1] == ch &&
                 (ch == '"' || ch == '\\' || ch == '/'))
            q += 2;
        else if (q < end && (unsigned char)*q == ch)
            q++;
        else
            return 0;
    }
    return (size_t)(q - p);
}

/* Every escape-aware match of v in src (n bytes) masked, into a new buffer; NULL when none.
 * Only texts holding a backslash can hold an escaped form (the plain one is a form already). */
static char *json_pass(const char *src, size_t n, const form_t *v, size_t *out_len, bool *oom)
{
    if (!memchr(src, '\\', n))
        return NULL;
    char *out = NULL, *o = NULL;
    const char *p = src, *end = src + n, *copied = src;
    while (p < end) {
        size_t m = ((unsigned char)*p == (unsigned char)v->text[0] || *p == '\\')
                       ? json_match(p, end, v->text, v->len) : 0;
        if (!m) {
            p++;
            continue;
        }
        if (!out) { /* a masked match never grows the text by more than MASK_LEN per value byte */
            out = malloc(n + (n / v->len + 1) * MASK_LEN + 1);
            if (!out) {
                *oom = true;
                return NULL;
            }
            o = out;
        }
        memcpy(o, copied, (size_t)(p - copied));
        o += p - copied;
        memcpy(o, MASK, MASK_LEN);
        o += MASK_LEN;
        p += m;
        copied = p;
    }
    if (!out)
        return NULL;
    memcpy(o, copied, (size_t)(end - copied));
    o += end - copied;
    *o = '\0';
    *out_len = (size_t)(o - out);
    return out;
}

char *credscrub_apply(const credscrub_t *c, const char *buf, size_t len, size_t *out_len)
{
    char *cur = NULL;
    size_t cur_len = len;
    bool oom = false;
    for (size_t i = 0; c && i < c->n && !oom; i++) {
        size_t n = 0;
        char *next = replace(cur ? cur : buf, cur_len, &c->forms[i], &n, &oom);
        if (next) {
            free(cur);
            cur = next;
            cur_len = n;
        }
    }
    for (size_t i = 0; c && i < c->nv && !oom; i++) {
        size_t n = 0;
        char *next = json_pass(cur ? cur : buf, cur_len, &c->values[i], &n, &oom);
        if (next) {
            free(cur);
            cur = next;
            cur_len = n;
        }
    }
    if (oom) {
        free(cur);
        *out_len = SIZE_MAX;
        return NULL;
    }
    *out_len = cur_len;
    return cur;
}
