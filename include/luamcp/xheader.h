/* xheader — tool arguments mirrored into HTTP headers (2026-07-28, `x-mcp-header`).
 *
 * A property of a tool's inputSchema annotated `"x-mcp-header": "Region"` makes a client send
 * the argument's value as `Mcp-Param-Region` too, so an intermediary can route on it without
 * reading the body. The server reads the body, so it checks the two agree: a gateway that
 * acted on the header and a handler acting on the body must see the same value. */
#ifndef LUAMCP_XHEADER_H
#define LUAMCP_XHEADER_H

#include <jansson.h>
#include <stddef.h>

#define XHEADER_MAX 32        /* annotations per tool */
#define XHEADER_NAME_MAX 64   /* bytes of an annotation's name */
#define XHEADER_DEPTH_MAX 16  /* nesting of an annotated property */

typedef struct xheader {
    char name[XHEADER_NAME_MAX + 1]; /* the header is Mcp-Param-NAME */
    char **path;                     /* property names from the arguments down to the value */
    size_t depth;
    char type;                       /* 's'tring, 'i'nteger or 'b'oolean */
} xheader_t;

typedef struct xheaders {
    xheader_t *v;
    size_t n;
} xheaders_t;

/* Reads the annotations of an inputSchema (borrowed) into *out (zeroed first; empty when there
 * are none). -1 with *err (caller frees) for an annotation the specification does not allow:
 * an empty or non-token name, a name repeated (case aside), a property whose type is not
 * string, integer or boolean, or one not reached through `properties` alone. */
int xheaders_read(const json_t *schema, xheaders_t *out, char **err);
void xheaders_clear(xheaders_t *h);

/* What get() returns for a header that came more than once (compared by address). */
extern const char XHEADER_REPEATED[];

/* Whether the request's Mcp-Param-* headers agree with args (borrowed; may be NULL): NULL when
 * they do, else the reason (static, or written to buf). get(ctx, header) gives a header's value,
 * NULL when it is absent, or XHEADER_REPEATED. */
const char *xheaders_check(const xheaders_t *h, const json_t *args,
                           const char *(*get)(void *ctx, const char *header), void *ctx,
                           char *buf, size_t n);

#endif
