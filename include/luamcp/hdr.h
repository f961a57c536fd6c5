/* hdr — pure functions over HTTP header values, kept apart from libmicrohttpd so they can be
 * unit-tested and fuzzed on their own. */
#ifndef LUAMCP_HDR_H
#define LUAMCP_HDR_H

#include <stdbool.h>
#include <stddef.h>

#define HDR_ACCEPT_JSON 1
#define HDR_ACCEPT_SSE 2

/* Which of application/json and text/event-stream an Accept value allows (wildcards count,
 * q=0 excludes). An absent or empty header allows both. */
int hdr_accept(const char *accept);

/* "application/json", any case, optionally followed by parameters. */
bool hdr_is_json(const char *content_type);

/* Host header check against DNS rebinding. A NULL host is allowed (HTTP/1.0). `list` holds
 * configured names ("*" = any) matched with or without the port. Loopback servers also
 * accept localhost, 127.0.0.1 and [::1]; others accept any host when the list is empty. */
bool hdr_host_allowed(const char *host, bool loopback_server, char *const *list, size_t n);

/* Origin check: absent is allowed (not a browser); listed values ("*" = any) are allowed;
 * loopback servers accept http(s) origins on loopback names; everything else is refused. */
bool hdr_origin_allowed(const char *origin, bool loopback_server, char *const *list, size_t n);

/* A field name: one or more tchar (RFC 9110 section 5.6.2). */
bool hdr_is_token(const char *s, size_t n);

/* A field value of n bytes without control characters other than HTAB: no NUL, CR or LF. */
bool hdr_value_clean(const char *v, size_t n);

/* A raw request-target in canonical origin-form: starts with '/', path characters only (no
 * percent-encoding: none of our routes needs one, and a decoded "/%6dcp" would be "/mcp" for
 * us and another path for a proxy), no empty, "." or ".." segment (a trailing '/' is allowed);
 * a query of visible ASCII without '#'. */
bool hdr_target_canonical(const char *target);

/* A Host value of n bytes made of authority characters only (reg-name, IP literal, port). */
bool hdr_authority_ok(const char *v, size_t n);

#endif
