/* Egress rules: address classes (with IPv4 inside IPv6), host patterns, and the URL check. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "check.h"
#include "luamcp/egress.h"

static egress_class_t classify(const char *text)
{
    struct sockaddr_storage ss = {0};
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        return (egress_class_t)-1;
    return egress_classify((struct sockaddr *)&ss);
}

static int addr_check(const config_egress_t *cfg, const char *text, char *why, size_t n)
{
    struct sockaddr_storage ss = {0};
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    return egress_check_addr(cfg, (struct sockaddr *)&ss, why, n);
}

static void test_classes(void)
{
    static const char *const blocked[] = {
        "169.254.169.254", "169.254.0.1", "0.0.0.0", "0.1.2.3", "224.0.0.1", "255.255.255.255",
        "::", "fe80::1", "ff02::1", "fd00:ec2::254",
        "::ffff:169.254.169.254", /* IPv4-mapped: judged by the IPv4 address */
        "64:ff9b::a9fe:a9fe",     /* NAT64 of 169.254.169.254 */
    };
    for (size_t i = 0; i < sizeof blocked / sizeof *blocked; i++)
        if (!CHECK_INT(classify(blocked[i]), EGRESS_BLOCKED))
            fprintf(stderr, "    address: %s\n", blocked[i]);
    static const char *const private_[] = {
        "127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "100.64.0.1", "198.18.0.1", "::1", "fc00::1", "fd12:3456::1", "::ffff:10.0.0.1",
        "::ffff:127.0.0.1", "64:ff9b::7f00:1", "fd00:ec2::253",
    };
    for (size_t i = 0; i < sizeof private_ / sizeof *private_; i++)
        if (!CHECK_INT(classify(private_[i]), EGRESS_PRIVATE))
            fprintf(stderr, "    address: %s\n", private_[i]);
    static const char *const public_[] = {
        "8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "192.169.0.1", "100.128.0.1",
        "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2a00:1450::1",
    };
    for (size_t i = 0; i < sizeof public_ / sizeof *public_; i++)
        if (!CHECK_INT(classify(public_[i]), EGRESS_PUBLIC))
            fprintf(stderr, "    address: %s\n", public_[i]);
}

static void test_allow_private(void)
{
    char *cidrs[] = {"127.0.0.1/32", "10.0.0.0/8", "::1", "169.254.0.0/16"};
    config_egress_t cfg = {.allow_private = cidrs, .n_allow_private = 4};
    char why[256];
    CHECK_INT(addr_check(&cfg, "127.0.0.1", why, sizeof why), 0);
    CHECK_INT(addr_check(&cfg, "::ffff:127.0.0.1", why, sizeof why), 0);
    CHECK_INT(addr_check(&cfg, "10.200.3.4", why, sizeof why), 0);
    CHECK_INT(addr_check(&cfg, "::1", why, sizeof why), 0);
    CHECK_INT(addr_check(&cfg, "8.8.8.8", why, sizeof why), 0);
    CHECK_INT(addr_check(&cfg, "127.0.0.2", why, sizeof why), -1);
    CHECK_STR(why, "egress: address 127.0.0.2 is private or loopback (allow it with "
                   "egress.allow_private)");
    CHECK_INT(addr_check(&cfg, "192.168.0.1", why, sizeof why), -1);
    /* metadata stays refused even when a CIDR seems to allow it */
    CHECK_INT(addr_check(&cfg, "169.254.169.254", why, sizeof why), -1);
    CHECK_STR(why, "egress: address 169.254.169.254 is link-local, metadata or reserved, and "
                   "always refused");

    CHECK(egress_cidr_valid("10.0.0.0/8"));
    CHECK(egress_cidr_valid("::1/128"));
    CHECK(egress_cidr_valid("192.168.1.1"));
    CHECK(!egress_cidr_valid("10.0.0.0/33"));
    CHECK(!egress_cidr_valid("::1/129"));
    CHECK(!egress_cidr_valid("10.0.0/8"));
    CHECK(!egress_cidr_valid("example.com"));
    CHECK(!egress_cidr_valid("10.0.0.0/"));
    CHECK(!egress_cidr_valid(""));
}

static void test_patterns(void)
{
    CHECK(egress_host_matches("api.example.com", "api.example.com", 443));
    CHECK(egress_host_matches("api.example.com", "API.Example.COM", 443));
    CHECK(egress_host_matches("api.example.com", "api.example.com.", 443));
    CHECK(!egress_host_matches("api.example.com", "api.example.com.evil.net", 443));
    CHECK(!egress_host_matches("api.example.com", "xapi.example.com", 443));
    CHECK(egress_host_matches("*.example.com", "a.example.com", 443));
    CHECK(egress_host_matches("*.example.com", "a.b.example.com", 80));
    CHECK(!egress_host_matches("*.example.com", "example.com", 443));
    CHECK(!egress_host_matches("*.example.com", "evilexample.com", 443));
    CHECK(egress_host_matches("*", "anything.net", 8443));
    CHECK(egress_host_matches("api.example.com:8443", "api.example.com", 8443));
    CHECK(!egress_host_matches("api.example.com:8443", "api.example.com", 443));
    CHECK(!egress_host_matches("api.example.com:", "api.example.com", 443));
    CHECK(egress_host_matches("127.0.0.1", "127.0.0.1", 9000));
    CHECK(egress_host_matches("[::1]", "::1", 443));
    CHECK(egress_host_matches("[::1]:8080", "::1", 8080));
    CHECK(!egress_host_matches("[::1]:8080", "::1", 8081));
}

static void test_url(void)
{
    char *allow[] = {"api.example.com", "*.strava.com"};
    char *tool[] = {"www.strava.com"};
    config_egress_t cfg = {.allow = allow, .n_allow = 2};
    char why[256];
    CHECK_INT(egress_check_url(&cfg, false, "https", "api.example.com", 443, NULL, 0, why,
                               sizeof why), 0);
    CHECK_INT(egress_check_url(&cfg, false, "https", "other.net", 443, NULL, 0, why,
                               sizeof why), -1);
    CHECK_STR(why, "egress: host other.net:443 is not in egress.allow");
    CHECK_INT(egress_check_url(&cfg, false, "http", "api.example.com", 80, NULL, 0, why,
                               sizeof why), -1);
    CHECK_STR(why, "egress: plain http is refused (use https, or set egress.allow_http)");
    CHECK_INT(egress_check_url(&cfg, false, "ftp", "api.example.com", 21, NULL, 0, why,
                               sizeof why), -1);
    CHECK_STR(why, "egress: scheme 'ftp' is not allowed (https only)");
    /* the tool's list narrows the global one, and both must agree */
    CHECK_INT(egress_check_url(&cfg, false, "https", "www.strava.com", 443, tool, 1, why,
                               sizeof why), 0);
    CHECK_INT(egress_check_url(&cfg, false, "https", "api.example.com", 443, tool, 1, why,
                               sizeof why), -1);
    CHECK_STR(why, "egress: host api.example.com:443 is not in this tool's egress list");
    cfg.allow_http = true;
    CHECK_INT(egress_check_url(&cfg, false, "http", "api.example.com", 80, NULL, 0, why,
                               sizeof why), 0);
    /* an empty allowlist refuses everything, except under --dev */
    config_egress_t none = {0};
    CHECK_INT(egress_check_url(&none, false, "https", "api.example.com", 443, NULL, 0, why,
                               sizeof why), -1);
    CHECK_INT(egress_check_url(&none, true, "https", "api.example.com", 443, NULL, 0, why,
                               sizeof why), 0);
    CHECK_INT(egress_check_url(&none, true, "https", "api.example.com", 443, tool, 1, why,
                               sizeof why), -1);
}

int main(void)
{
    test_classes();
    test_allow_private();
    test_patterns();
    test_url();
    return check_report();
}
