/* Secrets redacted before any cut (issue #15): a value straddling the 2,046-byte log cut, the
 * 4,095-byte error cut or the bundle's error text leaks no prefix; JSON on its way to a client
 * (results, notifications) carries none. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "luamcp/bundle.h"
#include "luamcp/log.h"
#include "luamcp/secret.h"
#include "luamcp/tool.h"

#define VALUE "s3cr3t-VALUE-0123456789abcdef"

/* The text of s with `pad` bytes of 'x' in front of the secret, so the secret starts at pad. */
static char *padded(size_t pad)
{
    char *s = malloc(pad + sizeof VALUE + 16);
    memset(s, 'x', pad);
    strcpy(s + pad, VALUE " tail");
    return s;
}

/* No prefix of VALUE longer than 3 bytes anywhere in text. */
static bool no_prefix(const char *text)
{
    return !strstr(text, "s3cr3t") && !strstr(text, "VALUE-0123");
}

static void test_cut(void)
{
    for (size_t at = 4080; at < 4100; at++) {
        char *s = padded(at);
        size_t n = secret_redact_cut(s, 4095, false);
        CHECK(n <= 4095 && no_prefix(s));
        free(s);
    }
    char *s = padded(10);
    CHECK(secret_redact_cut(s, 4095, false) == 10 + strlen(SECRET_MASK " tail"));
    CHECK_STR(s + 10, SECRET_MASK " tail");
    free(s);
    /* already cut by the caller, ending in a prefix */
    char t[] = "abc s3cr3t-VAL";
    secret_redact_cut(t, 100, true);
    CHECK_STR(t, "abc ");
}

static void test_error_result(void)
{
    for (size_t at = 4085; at < 4100; at++) {
        char *s = padded(at);
        json_t *r = tool_error_result(s);
        char *dump = json_dumps(r, 0);
        CHECK(dump && no_prefix(dump));
        free(dump);
        json_decref(r);
        free(s);
    }
}

static void test_log(void)
{
    char path[] = "/tmp/luamcp-test-secret-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(2);
    dup2(fd, 2);
    for (size_t at = 1990; at < 2060; at++) {
        char *s = padded(at);
        log_error("%s", s);
        free(s);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    char line[4096];
    int lines = 0, leaks = 0;
    while (f && fgets(line, sizeof line, f)) {
        lines++;
        leaks += !no_prefix(line);
    }
    if (f)
        fclose(f);
    close(fd);
    unlink(path);
    CHECK_INT(lines, 70);
    CHECK_INT(leaks, 0);
}

static void test_json(void)
{
    json_t *v = json_pack("{s:s, s:[s, {s:s}], s:i}", "a", "key " VALUE, "b", VALUE, "k" VALUE, "1",
                          "n", 7);
    secret_scrub_json(v, 0);
    char *dump = json_dumps(v, JSON_SORT_KEYS);
    CHECK_STR(dump, "{\"a\": \"key [secret]\", \"b\": [\"[secret]\", {\"k[secret]\": \"1\"}], "
                    "\"n\": 7}");
    free(dump);
    json_decref(v);
}

/* Loads a folder holding t.lua = text: the error (caller frees) or NULL, and the warnings. */
static char *load_script(const char *text, char **warnings)
{
    char dir[] = "/tmp/luamcp-test-grant-XXXXXX", path[64];
    if (!mkdtemp(dir))
        return strdup("mkdtemp");
    snprintf(path, sizeof path, "%s/t.lua", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    config_t cfg;
    config_defaults(&cfg);
    config_set_str(&cfg.scripts_dir, dir);
    char *err = NULL;
    bundle_t *b = bundle_load(&cfg, &err);
    *warnings = b && b->warnings ? strdup(b->warnings) : NULL;
    bundle_free(b);
    config_free(&cfg);
    unlink(path);
    rmdir(dir);
    return b ? NULL : err;
}

/* `secrets` in a tool: checked names; a file reading secrets with no grant gets a warning */
static void test_grants(void)
{
    char *w = NULL;
    char *err = load_script("mcp.tool{name='a', description='d', inputSchema={type='object'}, "
                            "secrets={'not a name'}, handler=function() end}",
                            &w);
    CHECK(err && strstr(err, "tool 'a': 'secrets' entry 'not a name' is not a secret name"));
    free(err);
    free(w);
    err = load_script("mcp.tool{name='a', description='d', inputSchema={type='object'}, "
                      "handler=function() return mcp.secret('T') end}",
                      &w);
    CHECK_STR(err, NULL);
    CHECK(w && strstr(w, "t.lua: reads mcp.secret but no tool of it lists 'secrets'"));
    free(err);
    free(w);
    err = load_script("mcp.tool{name='a', description='d', inputSchema={type='object'}, "
                      "secrets={'T'}, handler=function() return mcp.secret('T') end}",
                      &w);
    CHECK_STR(err, NULL);
    CHECK(!w || !strstr(w, "reads mcp.secret"));
    free(err);
    free(w);
}

int main(void)
{
    setenv("LUAMCP_SECRET_T", VALUE, 1);
    char *err = NULL;
    CHECK(secret_load(NULL, &err) == 0);
    CHECK_STR(secret_get("T"), VALUE);
    test_cut();
    test_error_result();
    test_log();
    test_json();
    test_grants();
    return check_report();
}
