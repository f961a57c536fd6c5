/* One strict reading of every request head (RFC 9112), before anything runs: what a front
 * proxy could read another way is refused with 400 and the connection closed.
 *
 * libmicrohttpd 0.9.75 is lenient where it cannot be told otherwise: it takes the first of
 * two Content-Length, lets chunked win over a Content-Length, reads a body of any other
 * Transfer-Encoding until the connection closes, folds continuation lines into the previous
 * field's name, cuts a value at a NUL (and reports the cut length), keeps a bare CR, accepts
 * a bare LF, and decodes "%6d" and "%00" in the path before the handler sees it. So, besides
 * the rules over its header list, the request head is checked where libmicrohttpd left it:
 * its list entries point into the connection's read buffer, in order, with each ':' and line
 * end overwritten by NUL. Anything in the head that is not a field it reported (the rest of a
 * value after a NUL, a folded line, a second space) breaks that layout and is refused too. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "luamcp/hdr.h"
#include "server_int.h"

typedef struct {
    const char *why;    /* the first problem, or NULL */
    const char *expect; /* where the next field name must start (layout check), or NULL */
    int hosts, lengths, encodings;
    const char *host, *length, *encoding;
    size_t host_len, length_len, encoding_len;
} scan_t;

static bool named(const char *key, size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(key, name, n) == 0;
}

static enum MHD_Result scan_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  size_t key_len, const char *value, size_t value_len)
{
    (void)kind;
    scan_t *s = cls;
    if (!value)
        value = "";
    if (!hdr_is_token(key, key_len)) {
        s->why = "Bad Request: malformed header field name";
        return MHD_NO;
    }
    if (!hdr_value_clean(value, value_len)) {
        s->why = "Bad Request: control character in a header value";
        return MHD_NO;
    }
    if (s->expect) {
        /* "name" NUL (was ':') optional whitespace "value" NUL NUL (was CRLF) */
        const char *p = key + key_len + 1;
        while (p < value && (*p == ' ' || *p == '\t'))
            p++;
        if (key != s->expect || key[key_len] != '\0' || p != value) {
            s->why = "Bad Request: malformed header section";
            return MHD_NO;
        }
        s->expect = value + value_len + 2;
    }
    if (named(key, key_len, MHD_HTTP_HEADER_HOST)) {
        s->hosts++;
        s->host = value;
        s->host_len = value_len;
    } else if (named(key, key_len, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        s->lengths++;
        s->length = value;
        s->length_len = value_len;
    } else if (named(key, key_len, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        s->encodings++;
        s->encoding = value;
        s->encoding_len = value_len;
    }
    return MHD_YES;
}

static bool all_digits(const char *v, size_t n)
{
    if (n == 0 || n > 18)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

#if MHD_VERSION == 0x00097500
/* The request line as libmicrohttpd left it: method NUL target NUL version NUL NUL, with the
 * target (as received, recorded by strict_target) one run of bytes without a NUL. Returns
 * where the first field name must start, or NULL. */
static const char *line_end(const conn_t *c, const char *method, const char *version)
{
    if (!c || !c->target || c->target != method + strlen(method) + 1 ||
        version != c->target + c->target_len + 1)
        return NULL;
    return version + strlen(version) + 2;
}
#endif

const char *strict_head(struct MHD_Connection *conn, const conn_t *c, const char *method,
                        const char *version)
{
    if (!c)
        return "Bad Request: the request could not be checked"; /* untracked: no memory */
    if (!c->target)
        return "Bad Request: missing request target";
    if (!c->target_ok)
        return "Bad Request: the request target is not in canonical form";
    /* HTTP/1.0 is the only older one libmicrohttpd takes; anything newer follows 1.1's rules */
    bool http11 = strcmp(version, MHD_HTTP_VERSION_1_0) != 0;
    scan_t s = {0};
#if MHD_VERSION == 0x00097500
    /* the layout checks rely on how this version parses (see above); another version gets
     * the list rules only until it is checked the same way */
    if (!(s.expect = line_end(c, method, version)))
        return "Bad Request: malformed request line";
#endif
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, scan_field, &s);
    if (s.why)
        return s.why;
#if MHD_VERSION == 0x00097500
    /* the empty line ends the head right after the last field: nothing folded after it */
    const union MHD_ConnectionInfo *hs =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (!hs || (uintptr_t)method + hs->header_size != (uintptr_t)s.expect + 2)
        return "Bad Request: malformed header section";
#endif
    if (s.hosts > 1)
        return "Bad Request: more than one Host header";
    if (http11 && s.hosts == 0)
        return "Bad Request: an HTTP/1.1 request needs a Host header";
    if (s.hosts && !hdr_authority_ok(s.host, s.host_len))
        return "Bad Request: malformed Host header";
    if (s.lengths > 1)
        return "Bad Request: more than one Content-Length header";
    if (s.lengths && !all_digits(s.length, s.length_len))
        return "Bad Request: malformed Content-Length header";
    if (s.encodings) {
        if (s.lengths)
            return "Bad Request: Content-Length with Transfer-Encoding";
        if (!http11 || s.encodings > 1 || s.encoding_len != 7 ||
            strncasecmp(s.encoding, "chunked", 7) != 0)
            return "Bad Request: the only Transfer-Encoding accepted is chunked";
    }
    return NULL;
}

void *strict_target(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_t *c = ci ? ci->socket_context : NULL;
    if (c) {
        c->target = uri; /* libmicrohttpd's read buffer: valid for this request's head */
        c->target_len = uri ? strlen(uri) : 0;
        /* now: libmicrohttpd decodes it in place after this */
        c->target_ok = uri && hdr_target_canonical(uri);
        c->started = true;
    }
    return NULL; /* the handler's first call still finds *req_cls NULL */
}
