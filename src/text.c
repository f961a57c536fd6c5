#include "luamcp/text.h"

#include <stdio.h>
#include <string.h>

void text_utf8_trim(char *s)
{
    size_t n = strlen(s), i = 0, good = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n)
            break;
        bool whole = true;
        for (size_t k = 1; k < len; k++)
            whole = whole && ((unsigned char)s[i + k] >> 6) == 2;
        if (!whole)
            break;
        i += len;
        good = i;
    }
    s[good] = '\0';
}

bool text_scope_ok(const char *scope)
{
    if (!scope || !*scope)
        return false;
    for (const unsigned char *p = (const unsigned char *)scope; *p; p++)
        if (*p < 0x21 || *p == 0x22 || *p == 0x5c || *p > 0x7e)
            return false;
    return true;
}

size_t text_utf8_sequence_length(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned long cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 1, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 2, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 3, cp = c & 0x07;
    else
        return 0;
    if (avail <= n)
        return 0;
    for (size_t k = 1; k <= n; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n + 1;
}

/* ---- bounded builder and JSON paths ----------------------------------------------------- */

char *text_int(char buf[TEXT_INT_SIZE], long long v)
{
    char *p = buf + TEXT_INT_SIZE;
    /* digits from the right, through the magnitude as unsigned so the lowest value works */
    unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + m % 10);
    while (m /= 10);
    if (v < 0)
        *--p = '-';
    return p;
}

void text_put(text_out *o, const char *s, size_t n)
{
    if (o->full || o->len + n >= o->cap) {
        o->full = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

void text_put_str(text_out *o, const char *s)
{
    text_put(o, s, strlen(s));
}

static bool is_identifier(const char *s, size_t len)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!(ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9')))
            return false;
    }
    return true;
}

const uint64_t text_json_plain_bytes[4] = {0xFFFFFFFB00000000ULL, 0xFFFFFFFFEFFFFFFFULL, 0, 0};

/* s[0..len) in quotes, JSON-escaped, at most max source bytes then "..."; a byte that is not
 * UTF-8 is U+FFFD (json: the result is valid JSON) or \xNN (a message shows which byte). DEL
 * is escaped too, so a log line shows it. */
static void put_escaped(text_out *o, const char *s, size_t len, size_t max, bool json)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t end = len > max ? max : len;
    text_put(o, "\"", 1);
    size_t i = 0;
    while (i < end) {
        size_t run = i; /* bytes that go out as they are, in one append */
        while (run < end && text_json_plain(u[run]) && u[run] != 0x7f)
            run++;
        if (run > i) {
            text_put(o, s + i, run - i);
            i = run;
            continue;
        }
        size_t n = u[i] >= 0x80 ? text_utf8_sequence_length(u + i, len - i) : 0;
        char esc[8];
        if (n) {
            text_put(o, s + i, n); /* a character that starts in the kept part stays whole */
            i += n;
            continue;
        }
        if (u[i] == '"' || u[i] == '\\') {
            esc[0] = '\\', esc[1] = (char)u[i];
            text_put(o, esc, 2);
        } else if (u[i] < 0x80) {
            snprintf(esc, sizeof esc, "\\u%04x", u[i]);
            text_put_str(o, esc);
        } else if (json) {
            text_put_str(o, "\\ufffd");
        } else {
            snprintf(esc, sizeof esc, "\\x%02x", u[i]);
            text_put_str(o, esc);
        }
        i++;
    }
    if (end < len)
        text_put_str(o, "...");
    text_put(o, "\"", 1);
}

void text_put_quoted(text_out *o, const char *s, size_t len)
{
    put_escaped(o, s, len, TEXT_KEY_SHOW_MAX, false);
}

void text_put_json(text_out *o, const char *s, size_t len, size_t max)
{
    put_escaped(o, s, len, max, true);
}

/* Rendered into a scratch buffer first so the segment is whole or absent. */
void text_put_key(text_out *o, const char *key, size_t len)
{
    char scratch[TEXT_QUOTED_SIZE + 8];
    text_out s = {scratch, sizeof scratch, 0, false};

    if (len <= TEXT_KEY_SHOW_MAX && is_identifier(key, len)) {
        text_put(&s, ".", 1);
        text_put(&s, key, len);
    } else {
        text_put(&s, "[", 1);
        text_put_quoted(&s, key, len);
        text_put(&s, "]", 1);
    }
    text_put(o, scratch, s.len);
}

void text_json_path(char *buf, size_t cap, const text_path_segment *path, int depth)
{
    text_out o = {buf, cap - 3, 0, false}; /* keep room for "..." */
    char index[32];

    buf[0] = '\0';
    text_put(&o, "$", 1);
    for (int i = 0; i < depth && !o.full; i++) {
        if (path[i].key != NULL) {
            text_put_key(&o, path[i].key, path[i].key_len);
        } else {
            snprintf(index, sizeof index, "[%zu]", path[i].index);
            text_put_str(&o, index);
        }
    }
    if (o.full)
        strcpy(buf + o.len, "...");
}
