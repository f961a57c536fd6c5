#include "luamcp/hdr.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_loopback_name(const char *host, size_t len)
{
    return (len == 9 && strncasecmp(host, "localhost", 9) == 0) ||
           (len == 9 && strncmp(host, "127.0.0.1", 9) == 0) ||
           (len == 5 && strncmp(host, "[::1]", 5) == 0) || (len == 3 && strncmp(host, "::1", 3) == 0);
}

/* Length of the host part of "host[:port]" or "[v6][:port]". */
static size_t host_part(const char *hp)
{
    if (hp[0] == '[') {
        const char *end = strchr(hp, ']');
        return end ? (size_t)(end - hp) + 1 : strlen(hp);
    }
    const char *colon = strchr(hp, ':');
    return colon ? (size_t)(colon - hp) : strlen(hp);
}

static bool listed(char *const *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], "*") == 0 || (strlen(list[i]) == len && strncasecmp(list[i], s, len) == 0))
            return true;
    return false;
}

/* DNS rebinding defence: a page on an attacker's domain resolving to 127.0.0.1 sends its own
 * name as Host. Loopback servers accept loopback names only, unless configured. */
bool hdr_host_allowed(const char *host, bool loopback_server, char *const *list, size_t n)
{
    if (!host)
        return true; /* HTTP/1.0; libmicrohttpd refuses HTTP/1.1 without Host */
    size_t hl = host_part(host);
    if (listed(list, n, host, strlen(host)) ||
        listed(list, n, host, hl))
        return true;
    if (loopback_server)
        return is_loopback_name(host, hl);
    return n == 0;
}

bool hdr_origin_allowed(const char *origin, bool loopback_server, char *const *list, size_t n)
{
    if (!origin)
        return true; /* not a browser */
    if (listed(list, n, origin, strlen(origin)))
        return true;
    const char *hp = NULL;
    if (strncmp(origin, "http://", 7) == 0)
        hp = origin + 7;
    else if (strncmp(origin, "https://", 8) == 0)
        hp = origin + 8;
    if (!hp || strchr(hp, '/'))
        return false;
    return loopback_server && is_loopback_name(hp, host_part(hp));
}

/* Which of JSON and SSE the Accept header allows (q=0 excludes). */
int hdr_accept(const char *accept)
{
    if (!accept || !*accept)
        return HDR_ACCEPT_JSON | HDR_ACCEPT_SSE;
    int flags = 0;
    const char *p = accept;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *semi = memchr(p, ';', len);
        size_t tlen = semi ? (size_t)(semi - p) : len;
        while (tlen && p[tlen - 1] == ' ')
            tlen--;
        bool zero = false;
        for (const char *q = semi; q && q < p + len; q = memchr(q + 1, ';', (size_t)(p + len - q - 1))) {
            const char *v = q + 1;
            while (*v == ' ')
                v++;
            if ((v[0] == 'q' || v[0] == 'Q') && v[1] == '=' && strtod(v + 2, NULL) == 0.0)
                zero = true;
        }
        if (!zero) {
#define IS(s) (tlen == sizeof(s) - 1 && strncasecmp(p, s, tlen) == 0)
            if (IS("*/*"))
                flags |= HDR_ACCEPT_JSON | HDR_ACCEPT_SSE;
            else if (IS("application/json") || IS("application/*"))
                flags |= HDR_ACCEPT_JSON;
            else if (IS("text/event-stream") || IS("text/*"))
                flags |= HDR_ACCEPT_SSE;
#undef IS
        }
        if (!end)
            break;
        p = end + 1;
    }
    return flags;
}

bool hdr_is_json(const char *ct)
{
    if (!ct || strncasecmp(ct, "application/json", 16) != 0)
        return false;
    return ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ';
}


/* tchar (RFC 9110 section 5.6.2) */
static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

bool hdr_is_token(const char *s, size_t n)
{
    if (!s || !n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

bool hdr_value_clean(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

/* pchar without pct-encoded: unreserved, sub-delims, ':' and '@' (RFC 3986 section 3.3) */
static bool is_path_char(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("-._~!$&'()*+,;=:@", ch));
}

bool hdr_target_canonical(const char *t)
{
    if (!t || t[0] != '/')
        return false; /* origin-form only: no "*", no absolute-form */
    const char *p = t;
    while (*p && *p != '?') {
        /* at a '/': the segment after it */
        const char *seg = ++p;
        while (*p && *p != '/' && *p != '?') {
            if (!is_path_char((unsigned char)*p))
                return false;
            p++;
        }
        size_t len = (size_t)(p - seg);
        bool last = *p != '/';
        if ((len == 0 && !last) || (len == 1 && seg[0] == '.') ||
            (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
    }
    if (*p == '?')
        for (p++; *p; p++) {
            unsigned char ch = (unsigned char)*p;
            if (ch <= 0x20 || ch >= 0x7f || ch == '#')
                return false;
        }
    return true;
}

bool hdr_authority_ok(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        bool ok = (is_path_char(ch) && ch != '@') || ch == '[' || ch == ']' || ch == '%';
        if (!ok)
            return false;
    }
    return true;
}
