/* jsonio_dump: jansson values to compact JSON text, into one buffer that grows by doubling (or
 * a caller's fixed one). Strings go out in plain runs; reals in their shortest exact form. */
#include "luamcp/jsonio.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/text.h"

typedef struct {
    char *buf;
    size_t len, cap;
    bool grows; /* ours to realloc; otherwise a caller's fixed buffer */
    bool bad;
} out_t;

static bool grow(out_t *o, size_t n);

static inline bool room(out_t *o, size_t n)
{
    if (o->len + n < o->cap && !o->bad) /* one byte is kept for the NUL */
        return true;
    return grow(o, n);
}

static bool grow(out_t *o, size_t n)
{
    if (o->bad)
        return false;
    size_t cap = o->cap;
    while (o->grows && o->len + n >= cap && cap <= (SIZE_MAX >> 2))
        cap *= 2;
    char *grown = o->grows && o->len + n < cap ? realloc(o->buf, cap) : NULL;
    if (!grown) {
        o->bad = true;
        return false;
    }
    o->buf = grown;
    o->cap = cap;
    return true;
}

static inline void put(out_t *o, const char *s, size_t n)
{
    if (room(o, n)) {
        memcpy(o->buf + o->len, s, n);
        o->len += n;
    }
}

static inline void put_char(out_t *o, char c)
{
    if (room(o, 1))
        o->buf[o->len++] = c;
}

static void put_string(out_t *o, const char *str, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    put_char(o, '"');
    size_t i = 0;
    while (i < len && !o->bad) {
        size_t run = i;
        while (run < len && text_json_plain(s[run]))
            run++;
        put(o, str + i, run - i);
        if ((i = run) >= len)
            break;
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = text_utf8_sequence_length(s + i, len - i);
            if (!k) {
                o->bad = true; /* not UTF-8: jansson refuses it too */
                return;
            }
            put(o, str + i, k);
            i += k;
            continue;
        }
        char esc[6] = {'\\', (char)c};
        size_t n = 2;
        switch (c) {
        case '"': case '\\': break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default: /* another control character */
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            n = 6;
        }
        put(o, esc, n);
        i++;
    }
    put_char(o, '"');
}

static void put_integer(out_t *o, json_int_t i)
{
    char text[TEXT_INT_SIZE], *p = text_int(text, i);
    put(o, p, (size_t)(text + sizeof text - p));
}

/* In 15 significant digits, or 16 or 17 when fewer do not read back as d (15 keep what a
 * person wrote, 0.1 stays "0.1"; 17 always read back), and a ".0" if the text would
 * otherwise read back as an integer; the exponent without '+' or leading zeros, as jansson. */
static void put_real(out_t *o, double d)
{
    char text[40];
    int n = 0;
    for (int digits = 15; digits <= 17; digits++) {
        n = snprintf(text, sizeof text, "%.*g", digits, d);
        if (strtod(text, NULL) == d)
            break;
    }
    if (n <= 0 || (size_t)n >= sizeof text - 2) {
        o->bad = true;
        return;
    }
    char *e = strchr(text, 'e');
    if (e) { /* "1e+20" as "1e20", "1e-05" as "1e-5" */
        char *from = e + 1, *to = e + 1;
        if (*from == '-')
            from++, to++;
        else if (*from == '+')
            from++;
        while (*from == '0' && from[1])
            from++;
        memmove(to, from, strlen(from) + 1);
        n = (int)strlen(text);
    } else if (!strpbrk(text, ".n")) { /* "n": inf and nan, which json_real cannot hold */
        memcpy(text + n, ".0", 3);
        n += 2;
    }
    put(o, text, (size_t)n);
}

static void put_value(out_t *o, const json_t *v, int depth)
{
    bool container = json_is_object(v) || json_is_array(v);
    if (container && depth >= JSONIO_MAX_DEPTH) { /* depth counts the containers around v */
        o->bad = true;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        put_char(o, '{');
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it && !o->bad;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                put_char(o, ',');
            first = false;
            put_string(o, json_object_iter_key(it), json_object_iter_key_len(it));
            put_char(o, ':');
            put_value(o, json_object_iter_value(it), depth + 1);
        }
        put_char(o, '}');
        break;
    }
    case JSON_ARRAY: {
        put_char(o, '[');
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n && !o->bad; i++) {
            if (i)
                put_char(o, ',');
            put_value(o, json_array_get(v, i), depth + 1);
        }
        put_char(o, ']');
        break;
    }
    case JSON_STRING:
        put_string(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        put_integer(o, json_integer_value(v));
        break;
    case JSON_REAL:
        put_real(o, json_real_value(v));
        break;
    case JSON_TRUE:
        put(o, "true", 4);
        break;
    case JSON_FALSE:
        put(o, "false", 5);
        break;
    case JSON_NULL:
        put(o, "null", 4);
        break;
    }
}

char *jsonio_dump(const json_t *v, size_t *len)
{
    out_t o = {.buf = malloc(256), .cap = 256, .grows = true};
    if (!o.buf || !v)
        o.bad = true;
    else
        put_value(&o, v, 0);
    if (o.bad) {
        free(o.buf);
        return NULL;
    }
    o.buf[o.len] = '\0';
    if (len)
        *len = o.len;
    return o.buf;
}

size_t jsonio_dump_into(const json_t *v, char *buf, size_t cap)
{
    out_t o = {.buf = buf, .cap = cap, .bad = !v || !cap};
    if (!o.bad)
        put_value(&o, v, 0);
    if (o.bad)
        return (size_t)-1;
    o.buf[o.len] = '\0';
    return o.len;
}
