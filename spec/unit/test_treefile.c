/* Files in the tree (issue #15, #16): a script, policy or module is read only when it is a
 * regular file inside its folder. A symlink out of the tree (to a secrets file, to /dev/zero),
 * a FIFO and a directory named x.lua are skipped with a warning; none may block the load or
 * bring another file's tokens into an error message. alarm() turns a blocked open into a
 * failure instead of a hung test. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "luamcp/bundle.h"
#include "luamcp/treefile.h"

static char top[64];

static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", top, rel);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void link_to(const char *target, const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", top, rel);
    CHECK(symlink(target, path) == 0);
}

static void sub(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", top, rel);
    CHECK(mkdir(path, 0700) == 0);
}

/* Loads top/<scripts> with policies in top/<policies>; *warnings gets the bundle's warnings
 * (caller frees). Returns the load error (caller frees) or NULL. */
static char *load(const char *scripts, const char *policies, char **warnings)
{
    char s[512], p[512];
    snprintf(s, sizeof s, "%s/%s", top, scripts);
    snprintf(p, sizeof p, "%s/%s", top, policies);
    config_t cfg;
    config_defaults(&cfg);
    config_set_str(&cfg.scripts_dir, s);
    config_set_str(&cfg.policies_dir, p);
    cfg.limits.cpu_ms = 60000;
    cfg.limits.instructions = 20000000;
    char *err = NULL;
    bundle_t *b = bundle_load(&cfg, &err);
    *warnings = b && b->warnings ? strdup(b->warnings) : NULL;
    bundle_free(b);
    config_free(&cfg);
    return b ? NULL : err;
}

#define TOOL(n)                                                                                    \
    "mcp.tool{name='" n "', description='d', inputSchema={type='object'}, "                        \
    "handler=function() return 'ok' end}\n"

static void test_open(void)
{
    const char *why = NULL;
    int fd = treefile_open(top, "s/ok.lua", &why);
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    CHECK(treefile_open(top, "s/link.lua", &why) < 0 && strstr(why, "symlink"));
    CHECK(treefile_open(top, "s/fifo.lua", &why) < 0 && strstr(why, "not a regular file"));
    CHECK(treefile_open(top, "s/zero.lua", &why) < 0 && strstr(why, "symlink"));
    CHECK(treefile_open(top, "s/dir.lua", &why) < 0 && strstr(why, "directory"));
    CHECK(treefile_open(top, "s/../outside/secrets.lua", &why) < 0);
    CHECK(treefile_open(top, "/etc/passwd", &why) < 0);
    CHECK(treefile_open(top, "s2/lib/m.lua", &why) < 0); /* lib itself a symlink */
}

int main(void)
{
    alarm(60);
    snprintf(top, sizeof top, "/tmp/luamcp-test-tree-XXXXXX");
    if (!CHECK(mkdtemp(top)))
        return check_report();
    sub("outside");
    /* what an attacker wants to read: a secrets file whose tokens a Lua parse error would
     * show ("syntax error near 'hunter2hunter2'"), and a tool that grants itself */
    put("outside/secrets.lua", "API_KEY=hunter2hunter2\n");
    put("outside/evil.lua", TOOL("evil"));
    put("outside/m.lua", "return 'OUTSIDE'\n");
    put("outside/allow.lua", "mcp.policy{tools={'*'}, allow=function() return true end}\n");

    sub("s");
    sub("s/lib");
    sub("p");
    put("s/ok.lua", TOOL("ok"));
    put("s/lib/m.lua", "return 'inside'\n");
    char out[512];
    snprintf(out, sizeof out, "%s/outside/secrets.lua", top);
    link_to(out, "s/link.lua");
    snprintf(out, sizeof out, "%s/outside/evil.lua", top);
    link_to(out, "s/evil.lua");
    link_to("/dev/zero", "s/zero.lua");
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/s/fifo.lua", top);
    CHECK(mkfifo(fifo, 0600) == 0);
    sub("s/dir.lua");
    snprintf(out, sizeof out, "%s/outside/m.lua", top);
    link_to(out, "s/lib/evil.lua");
    snprintf(out, sizeof out, "%s/outside/allow.lua", top);
    link_to(out, "p/allow.lua");
    sub("s2");
    snprintf(out, sizeof out, "%s/outside", top);
    link_to(out, "s2/lib");

    test_open();

    /* the load goes on without them, and says which were skipped and why */
    char *warn = NULL, *err = load("s", "p", &warn);
    CHECK_STR(err, NULL);
    CHECK(warn && strstr(warn, "s/link.lua: skipped: a symlink"));
    CHECK(warn && strstr(warn, "s/evil.lua: skipped"));
    CHECK(warn && strstr(warn, "s/zero.lua: skipped"));
    CHECK(warn && strstr(warn, "s/fifo.lua: skipped: not a regular file"));
    CHECK(warn && strstr(warn, "s/dir.lua: skipped: a directory"));
    CHECK(warn && strstr(warn, "p/allow.lua: skipped"));
    CHECK(warn && strstr(warn, "tool 'ok' is covered by no policy")); /* allow.lua not used */
    CHECK(!warn || !strstr(warn, "tool 'evil'"));
    CHECK(!warn || !strstr(warn, "hunter2"));
    if (warn)
        fprintf(stderr, "warnings:\n%s\n", warn);
    free(err);
    free(warn);

    /* a module: the one inside loads, a symlink in lib/ is refused, so is lib as a symlink */
    put("s/ok.lua", TOOL("ok") "assert(require('m') == 'inside')\n");
    CHECK_STR(err = load("s", "p", &warn), NULL);
    free(err);
    free(warn);
    put("s/ok.lua", TOOL("ok") "require('evil')\n");
    err = load("s", "p", &warn);
    CHECK(err && strstr(err, "module 'evil' refused"));
    CHECK(!err || !strstr(err, "OUTSIDE"));
    free(err);
    free(warn);
    put("s2/ok.lua", TOOL("ok") "require('m')\n");
    err = load("s2", "p", &warn);
    CHECK(err && strstr(err, "module 'm' refused"));
    free(err);
    free(warn);
    /* a broken file still reports its own text, and the skipped ones after it */
    put("s/ok.lua", "this is not lua\n");
    err = load("s", "p", &warn);
    CHECK(err && strstr(err, "s/ok.lua:1:") && strstr(err, "s/fifo.lua: skipped"));
    free(err);
    free(warn);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    CHECK(system(cmd) == 0);
    return check_report();
}
