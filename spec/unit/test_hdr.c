/* Header rules: Accept negotiation, Content-Type, Host and Origin (DNS rebinding). */
#include "check.h"
#include "luamcp/hdr.h"

#define BOTH (HDR_ACCEPT_JSON | HDR_ACCEPT_SSE)

static void test_accept(void)
{
    CHECK_INT(hdr_accept(NULL), BOTH);
    CHECK_INT(hdr_accept(""), BOTH);
    CHECK_INT(hdr_accept("application/json, text/event-stream"), BOTH);
    CHECK_INT(hdr_accept("application/json"), HDR_ACCEPT_JSON);
    CHECK_INT(hdr_accept("text/event-stream"), HDR_ACCEPT_SSE);
    CHECK_INT(hdr_accept("*/*"), BOTH);
    CHECK_INT(hdr_accept("application/*"), HDR_ACCEPT_JSON);
    CHECK_INT(hdr_accept("text/*;q=0.5"), HDR_ACCEPT_SSE);
    CHECK_INT(hdr_accept("Application/JSON;charset=utf-8"), HDR_ACCEPT_JSON);
    CHECK_INT(hdr_accept("text/html"), 0);
    CHECK_INT(hdr_accept("text/html, image/png"), 0);
    CHECK_INT(hdr_accept("application/json;q=0, text/event-stream"), HDR_ACCEPT_SSE);
    CHECK_INT(hdr_accept("application/json; q=0.0"), 0);
    CHECK_INT(hdr_accept("application/jsonx"), 0);
    CHECK_INT(hdr_accept(",,, ,"), 0);
}

static void test_content_type(void)
{
    CHECK(hdr_is_json("application/json"));
    CHECK(hdr_is_json("application/json; charset=utf-8"));
    CHECK(hdr_is_json("APPLICATION/JSON"));
    CHECK(!hdr_is_json(NULL));
    CHECK(!hdr_is_json("text/plain"));
    CHECK(!hdr_is_json("application/jsonp"));
    CHECK(!hdr_is_json("application/x-www-form-urlencoded"));
}

static void test_host(void)
{
    char *list[] = {"mcp.example.com"};
    CHECK(hdr_host_allowed(NULL, true, NULL, 0));
    CHECK(hdr_host_allowed("localhost:8080", true, NULL, 0));
    CHECK(hdr_host_allowed("127.0.0.1:8080", true, NULL, 0));
    CHECK(hdr_host_allowed("[::1]:8080", true, NULL, 0));
    CHECK(hdr_host_allowed("LOCALHOST", true, NULL, 0));
    CHECK(!hdr_host_allowed("evil.example:8080", true, NULL, 0));
    CHECK(!hdr_host_allowed("localhost.evil.example", true, NULL, 0));
    CHECK(!hdr_host_allowed("127.0.0.1.nip.io", true, NULL, 0));
    CHECK(hdr_host_allowed("mcp.example.com:443", true, list, 1));
    CHECK(hdr_host_allowed("mcp.example.com", false, list, 1));
    CHECK(!hdr_host_allowed("other.example.com", false, list, 1));
    CHECK(hdr_host_allowed("anything", false, NULL, 0));
}

static void test_origin(void)
{
    char *list[] = {"https://app.example.com"};
    char *any[] = {"*"};
    CHECK(hdr_origin_allowed(NULL, true, NULL, 0));
    CHECK(hdr_origin_allowed("http://localhost:3000", true, NULL, 0));
    CHECK(hdr_origin_allowed("https://127.0.0.1", true, NULL, 0));
    CHECK(hdr_origin_allowed("http://[::1]:6274", true, NULL, 0));
    CHECK(!hdr_origin_allowed("http://evil.example", true, NULL, 0));
    CHECK(!hdr_origin_allowed("http://localhost.evil.example", true, NULL, 0));
    CHECK(!hdr_origin_allowed("null", true, NULL, 0));
    CHECK(!hdr_origin_allowed("file://", true, NULL, 0));
    CHECK(!hdr_origin_allowed("http://localhost:3000/path", true, NULL, 0));
    CHECK(!hdr_origin_allowed("http://localhost:3000", false, NULL, 0));
    CHECK(hdr_origin_allowed("https://app.example.com", false, list, 1));
    CHECK(!hdr_origin_allowed("https://app.example.com.evil", false, list, 1));
    CHECK(hdr_origin_allowed("https://whatever", false, any, 1));
}

static void test_strict(void)
{
    CHECK(hdr_is_token("Content-Length", 14));
    CHECK(hdr_is_token("X-A!#$%&'*+.^_`|~", 17));
    CHECK(!hdr_is_token("Content-Length ", 15));
    CHECK(!hdr_is_token("X A", 3));
    CHECK(!hdr_is_token("X:A", 3));
    CHECK(!hdr_is_token("", 0));
    CHECK(!hdr_is_token("X\0A", 3));
    CHECK(hdr_value_clean("echo", 4));
    CHECK(hdr_value_clean("a\tb \x80", 5));
    CHECK(!hdr_value_clean("echo\0.admin", 11));
    CHECK(!hdr_value_clean("echo\r.admin", 11));
    CHECK(!hdr_value_clean("echo\n", 5));
    CHECK(!hdr_value_clean("\x7f", 1));
    CHECK(hdr_target_canonical("/"));
    CHECK(hdr_target_canonical("/mcp"));
    CHECK(hdr_target_canonical("/mcp/"));
    CHECK(hdr_target_canonical("/.well-known/oauth-protected-resource/mcp"));
    CHECK(hdr_target_canonical("/authorize?redirect_uri=http%3A%2F%2Fx&state=a/b"));
    CHECK(hdr_target_canonical("/mcp?"));
    CHECK(!hdr_target_canonical(NULL));
    CHECK(!hdr_target_canonical(""));
    CHECK(!hdr_target_canonical("*"));
    CHECK(!hdr_target_canonical("mcp"));
    CHECK(!hdr_target_canonical("http://host/mcp"));
    CHECK(!hdr_target_canonical("/%6dcp"));
    CHECK(!hdr_target_canonical("/mcp%00"));
    CHECK(!hdr_target_canonical("//mcp"));
    CHECK(!hdr_target_canonical("/a//mcp"));
    CHECK(!hdr_target_canonical("/./mcp"));
    CHECK(!hdr_target_canonical("/x/../mcp"));
    CHECK(!hdr_target_canonical("/mcp/.."));
    CHECK(!hdr_target_canonical("/mcp/."));
    CHECK(!hdr_target_canonical("/mcp "));
    CHECK(!hdr_target_canonical("/mcp\\x"));
    CHECK(!hdr_target_canonical("/mcp#frag"));
    CHECK(!hdr_target_canonical("/mcp?a#b"));
    CHECK(!hdr_target_canonical("/mcp?a b"));
    CHECK(hdr_authority_ok("127.0.0.1:8080", 14));
    CHECK(hdr_authority_ok("[::1]:8080", 10));
    CHECK(hdr_authority_ok("mcp.example.com", 15));
    CHECK(!hdr_authority_ok("a b", 3));
    CHECK(!hdr_authority_ok("user@host", 9));
    CHECK(!hdr_authority_ok("host/path", 9));
}

int main(void)
{
    test_accept();
    test_content_type();
    test_host();
    test_origin();
    test_strict();
    return check_report();
}
