#include "luamcp/egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- addresses ---------------------------------------------------------------------------- */

/* An address as 16 bytes (IPv4 mapped into ::ffff:0:0/96) so one set of ranges serves both. */
typedef struct { unsigned char b[16]; } addr16_t;

static const unsigned char MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const unsigned char NAT64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

static bool to16(const struct sockaddr *sa, addr16_t *out)
{
    if (sa->sa_family == AF_INET) {
        memcpy(out->b, MAPPED, 12);
        memcpy(out->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        /* NAT64's well-known prefix reaches the IPv4 address inside: judge that one */
        if (memcmp(out->b, NAT64, 12) == 0)
            memcpy(out->b, MAPPED, 12);
        return true;
    }
    return false;
}

static bool in_prefix(const addr16_t *a, const addr16_t *net, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a->b, net->b, (size_t)whole) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a->b[whole] & mask) == (net->b[whole] & mask);
}

/* "a.b.c.d/n", "x::y/n" or a bare address into a 16-byte prefix; bits out of 128. */
static bool parse_cidr(const char *s, addr16_t *net, int *bits)
{
    char buf[64];
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    int max;
    if (inet_pton(AF_INET, buf, net->b + 12) == 1) {
        memcpy(net->b, MAPPED, 12);
        max = 32;
    } else if (inet_pton(AF_INET6, buf, net->b) == 1) {
        max = 128;
    } else {
        return false;
    }
    int len = max;
    if (slash) {
        char *end;
        long v = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || v < 0 || v > max)
            return false;
        len = (int)v;
    }
    *bits = len + (max == 32 ? 96 : 0);
    return true;
}

bool egress_pattern_valid(const char *p)
{
    return p[0] && !strpbrk(p, "/@?# ") && (p[0] == '[' || strchr(p, ':') == strrchr(p, ':'));
}

bool egress_cidr_valid(const char *cidr)
{
    addr16_t net;
    int bits;
    return parse_cidr(cidr, &net, &bits);
}

static bool in_any(const addr16_t *a, const char *const *cidrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        addr16_t net;
        int bits;
        if (parse_cidr(cidrs[i], &net, &bits) && in_prefix(a, &net, bits))
            return true;
    }
    return false;
}

/* Always refused: nothing a tool should reach, whatever the configuration says. */
static const char *const BLOCKED[] = {
    "0.0.0.0/8",          /* "this network"; 0.0.0.0 reaches the local host */
    "169.254.0.0/16",     /* link-local, and the cloud metadata service (169.254.169.254) */
    "224.0.0.0/4",        /* multicast */
    "240.0.0.0/4",        /* reserved, and the broadcast address */
    "::/128",             /* unspecified */
    "fe80::/10",          /* link-local */
    "ff00::/8",           /* multicast */
    "fd00:ec2::254/128",  /* AWS metadata over IPv6 */
};

/* Refused unless egress.allow_private covers them. */
static const char *const PRIVATE[] = {
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", /* RFC 1918 */
    "127.0.0.0/8",                                   /* loopback */
    "100.64.0.0/10",                                 /* carrier-grade NAT */
    "198.18.0.0/15",                                 /* benchmarking */
    "192.0.0.0/24",                                  /* IETF protocol assignments */
    "::1/128",                                       /* loopback */
    "fc00::/7",                                      /* unique local */
    "64:ff9b:1::/48",                                /* local-use NAT64 */
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

egress_class_t egress_classify(const struct sockaddr *sa)
{
    addr16_t a;
    if (!to16(sa, &a))
        return EGRESS_BLOCKED;
    if (in_any(&a, BLOCKED, COUNT(BLOCKED)))
        return EGRESS_BLOCKED;
    if (in_any(&a, PRIVATE, COUNT(PRIVATE)))
        return EGRESS_PRIVATE;
    return EGRESS_PUBLIC;
}

static void addr_text(const struct sockaddr *sa, char *out, size_t n)
{
    const void *src = sa->sa_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!inet_ntop(sa->sa_family, src, out, (socklen_t)n))
        snprintf(out, n, "?");
}

int egress_check_addr(const config_egress_t *cfg, const struct sockaddr *sa, char *why, size_t n)
{
    egress_class_t c = egress_classify(sa);
    if (c == EGRESS_PUBLIC)
        return 0;
    char text[INET6_ADDRSTRLEN];
    addr_text(sa, text, sizeof text);
    if (c == EGRESS_BLOCKED) {
        snprintf(why, n, "egress: address %s is link-local, metadata or reserved, and always "
                 "refused", text);
        return -1;
    }
    addr16_t a;
    to16(sa, &a);
    if (in_any(&a, (const char *const *)cfg->allow_private, cfg->n_allow_private))
        return 0;
    snprintf(why, n, "egress: address %s is private or loopback (allow it with "
             "egress.allow_private)", text);
    return -1;
}

/* ---- names -------------------------------------------------------------------------------- */

bool egress_host_matches(const char *pattern, const char *host, int port)
{
    char pat[300];
    snprintf(pat, sizeof pat, "%s", pattern);
    /* an optional ":PORT", after the bracket of an IPv6 literal */
    char *colon = NULL;
    if (pat[0] == '[') {
        char *rb = strchr(pat, ']');
        colon = rb && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = strchr(pat, ':');
    }
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || p != port)
            return false;
        *colon = '\0';
    }
    /* host as it would be written in the pattern: IPv6 literals in brackets */
    char h[300];
    snprintf(h, sizeof h, strchr(host, ':') && host[0] != '[' ? "[%s]" : "%s", host);
    size_t hl = strlen(h);
    while (hl && h[hl - 1] == '.') /* "example.com." is example.com */
        h[--hl] = '\0';
    if (strcmp(pat, "*") == 0)
        return true;
    if (pat[0] == '*' && pat[1] == '.') {
        size_t sl = strlen(pat + 1); /* ".example.com" */
        return hl > sl && strcasecmp(h + hl - sl, pat + 1) == 0;
    }
    return strcasecmp(pat, h) == 0;
}

static bool any_match(char *const *list, size_t n, const char *host, int port)
{
    for (size_t i = 0; i < n; i++)
        if (egress_host_matches(list[i], host, port))
            return true;
    return false;
}

int egress_check_url(const config_egress_t *cfg, bool dev, const char *scheme, const char *host,
                     int port, char *const *tool_allow, size_t n_tool, char *why, size_t n)
{
    if (strcasecmp(scheme, "https") != 0) {
        if (strcasecmp(scheme, "http") != 0) {
            snprintf(why, n, "egress: scheme '%.16s' is not allowed (https only)", scheme);
            return -1;
        }
        if (!cfg->allow_http) {
            snprintf(why, n, "egress: plain http is refused (use https, or set "
                     "egress.allow_http)");
            return -1;
        }
    }
    if (!(cfg->n_allow == 0 && dev) && !any_match(cfg->allow, cfg->n_allow, host, port)) {
        snprintf(why, n, "egress: host %.200s:%d is not in egress.allow", host, port);
        return -1;
    }
    if (n_tool && !any_match(tool_allow, n_tool, host, port)) {
        snprintf(why, n, "egress: host %.200s:%d is not in this tool's egress list", host, port);
        return -1;
    }
    return 0;
}
