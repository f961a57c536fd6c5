/* egress — where tools may send requests. Two checks, both required:
 *
 *  - by name, before a transfer starts and at every redirect: the scheme (https; http only
 *    when allowed), the host against the global allowlist and the tool's own narrower list;
 *  - by address, on the address the connection is about to use (after DNS, so a name that
 *    re-resolves to an inside address is still refused): link-local and cloud metadata
 *    addresses always, private and loopback ranges unless a CIDR of egress.allow_private
 *    covers them.
 *
 * Pure functions over the configuration; fetch.c calls them. */
#ifndef LUAMCP_EGRESS_H
#define LUAMCP_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "luamcp/config.h"

typedef enum egress_class {
    EGRESS_PUBLIC,
    EGRESS_PRIVATE,  /* loopback, RFC 1918, CGNAT, ULA, benchmark: refused unless allowed */
    EGRESS_BLOCKED,  /* link-local, cloud metadata, unspecified, multicast: always refused */
} egress_class_t;

/* The class of an IPv4 or IPv6 address (IPv4-mapped and NAT64 addresses are judged by the
 * IPv4 address inside). */
egress_class_t egress_classify(const struct sockaddr *sa);

/* Whether pattern (an allowlist entry) admits host and port. Entries: "api.example.com",
 * "*.example.com" (subdomains, not the apex), "*" (any host), each optionally ":PORT".
 * Host names compare case-insensitively; IPv6 literals are written in brackets. */
bool egress_host_matches(const char *pattern, const char *host, int port);

/* Checks a CIDR entry ("10.0.0.0/8", "::1/128", or a bare address). */
bool egress_cidr_valid(const char *cidr);
/* Whether p is a host pattern: api.example.com, *.example.com, host:port, [v6]:port (no
 * scheme, path, user or spaces). Checked wherever one is declared: egress.allow, a tool's
 * egress. */
bool egress_pattern_valid(const char *p);

/* The name check. tool_allow (n_tool, may be 0) is the tool's own list; dev lets any host
 * through when the global list is empty (the caller warns). 0 when allowed; else -1 with a
 * message in why (at most n bytes) naming the rule that refused. */
int egress_check_url(const config_egress_t *cfg, bool dev, const char *scheme,
                     const char *host, int port, char *const *tool_allow, size_t n_tool,
                     char *why, size_t n);

/* The address check: 0 when the address may be connected to, else -1 with why. */
int egress_check_addr(const config_egress_t *cfg, const struct sockaddr *sa, char *why,
                      size_t n);

#endif
