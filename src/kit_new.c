/* kit_new — `luamcp new tool NAME [--scope SCOPE]`: a tool, its policy and its spec from three
 * templates, written all or nothing and never over an existing file. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luamcp/kit.h"
#include "luamcp/text.h"

#define MAX_NAME  128 /* as tool names (tool.c) */
#define MAX_SCOPE 256

/* The templates: {N} is the tool's name, {S} its scope, {D} the scripts folder, {P} the
 * policies folder. Names and scopes are checked first, so they sit in Lua strings as they are. */
static const char tool_template[] =
    "-- {N}: greets someone by name. Written by `luamcp new tool`: make it yours. Its policy\n"
    "-- is {P}/{N}.lua, its spec {D}/spec/{N}_spec.lua; run the spec with `luamcp test`.\n"
    "-- A running server picks up every save of this file.\n"
    "\n"
    "mcp.tool {\n"
    "  name = \"{N}\",\n"
    "  title = \"{N}\",\n"
    "  description = \"Greets someone by name. Say here what the tool does and when to use it: \"\n"
    "    .. \"this is what the model reads to choose it.\",\n"
    "  inputSchema = {\n"
    "    type = \"object\",\n"
    "    properties = {\n"
    "      name = { type = \"string\", description = \"Who to greet.\", maxLength = 100 },\n"
    "    },\n"
    "    required = { \"name\" },\n"
    "    additionalProperties = false,\n"
    "  },\n"
    "  annotations = { readOnlyHint = true, idempotentHint = true, openWorldHint = false },\n"
    "  -- args have been checked against inputSchema; ctx is the call (ctx.log, ctx.auth, ...).\n"
    "  handler = function(args, ctx)\n"
    "    ctx.log(\"info\", \"greeting someone\")\n"
    "    return \"Hello, \" .. args.name .. \"!\"\n"
    "  end,\n"
    "}\n";

static const char policy_template[] =
    "-- Who may call {N}: callers whose token carries the scope {S}. Written by\n"
    "-- `luamcp new tool`. Every rule (of every file here) that matches a tool must allow a\n"
    "-- call; a tool no rule matches cannot be called (except under --dev).\n"
    "\n"
    "mcp.policy {\n"
    "  tools = { \"{N}\" },\n"
    "  scopes = { \"{S}\" },\n"
    "  description = \"{N}: any caller whose token carries {S}\",\n"
    "}\n";

static const char spec_template[] =
    "-- The spec of {D}/{N}.lua and its policy: run it with `luamcp test`.\n"
    "local helper = require \"helper\"\n"
    "local P = require \"policy_helper\"\n"
    "\n"
    "describe(\"{N}\", function()\n"
    "  local tools\n"
    "\n"
    "  before_each(function() tools = helper.load_tools(helper.script \"{N}.lua\") end)\n"
    "\n"
    "  it(\"is declared once, well formed\", function()\n"
    "    assert.same({ \"{N}\" }, helper.names(tools))\n"
    "    helper.assert_well_formed(tools[\"{N}\"])\n"
    "  end)\n"
    "\n"
    "  it(\"greets by name\", function()\n"
    "    local ctx = helper.ctx { tool = \"{N}\" }\n"
    "    assert.equal(\"Hello, Ada!\", helper.call(tools, \"{N}\", { name = \"Ada\" }, ctx))\n"
    "    assert.equal(\"info\", ctx.logs[1].level)\n"
    "  end)\n"
    "\n"
    "  describe(\"policy\", function()\n"
    "    local policies\n"
    "\n"
    "    setup(function() policies = P.load(helper.policies) end)\n"
    "\n"
    "    it(\"lets a caller holding {S} call it\", function()\n"
    "      local ada = P.caller { sub = \"ada\", client_id = \"app\", scopes = { \"{S}\" } }\n"
    "      assert.same({ decision = \"allow\" },\n"
    "        policies:verdict(\"{N}\", ada, { name = \"Ada\" }))\n"
    "    end)\n"
    "\n"
    "    it(\"asks any other caller for {S}\", function()\n"
    "      local bob = P.caller { sub = \"bob\", client_id = \"app\", scopes = { \"other\" } }\n"
    "      assert.same({ decision = \"challenge\", scopes = { \"{S}\" } },\n"
    "        policies:verdict(\"{N}\", bob, { name = \"Ada\" }))\n"
    "    end)\n"
    "  end)\n"
    "end)\n";

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
    return -1;
}

/* Tool names are 1 to 128 of A-Z a-z 0-9 _ - . (as tool.c); the file must not be hidden. */
static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MAX_NAME || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", name[i]))
            return false;
    return true;
}

/* The template with its placeholders filled in; caller frees. NULL when out of memory. */
static char *expand(const char *tpl, const char *name, const char *scope, const char *scripts,
                    const char *policies)
{
    size_t cap = strlen(tpl) + 1, len = 0;
    for (const char *p = tpl; (p = strchr(p, '{')); p++)
        cap += strlen(name) + strlen(scope) + strlen(scripts) + strlen(policies);
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (const char *p = tpl; *p; p++) {
        const char *v = NULL;
        if (p[0] == '{' && p[1] && p[2] == '}')
            v = p[1] == 'N'   ? name
                : p[1] == 'S' ? scope
                : p[1] == 'D' ? scripts
                : p[1] == 'P' ? policies
                              : NULL;
        if (v) {
            memcpy(out + len, v, strlen(v));
            len += strlen(v);
            p += 2;
        } else {
            out[len++] = *p;
        }
    }
    out[len] = '\0';
    return out;
}

struct planned {
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    char *text;
    bool tmp_made, linked;
};

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Writes text to f->tmp, a hidden name beside f->path that the server's loader skips. */
static int write_tmp(struct planned *f, char **err)
{
    const char *slash = strrchr(f->path, '/');
    int dirlen = slash ? (int)(slash - f->path + 1) : 0;
    char tmp[sizeof f->tmp];
    int n = snprintf(tmp, sizeof tmp, "%.*s.%s.new-%ld", dirlen, f->path,
                     slash ? slash + 1 : f->path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return fail(err, "%s: path too long", f->path);
    memcpy(f->tmp, tmp, (size_t)n + 1);
    int fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail(err, "cannot write %s: %s", f->tmp, strerror(errno));
    f->tmp_made = true;
    size_t len = strlen(f->text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, f->text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            return fail(err, "cannot write %s: %s", f->tmp, strerror(e));
        }
        off += (size_t)w;
    }
    if (close(fd) != 0)
        return fail(err, "cannot write %s: %s", f->tmp, strerror(errno));
    return 0;
}

/* dir without its trailing slashes ("scripts/" -> "scripts"), so paths read as typed. */
static const char *trim_dir(char *out, size_t size, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n >= size)
        return dir;
    memcpy(out, dir, n);
    out[n] = '\0';
    return out;
}

int kit_new_tool(const char *scripts_arg, const char *policies_arg, const char *name,
                 const char *scope, char **err)
{
    *err = NULL;
    char sbuf[PATH_MAX], pbuf[PATH_MAX];
    const char *scripts_dir = trim_dir(sbuf, sizeof sbuf, scripts_arg);
    const char *policies_dir = trim_dir(pbuf, sizeof pbuf, policies_arg);
    if (!scope)
        scope = KIT_DEFAULT_SCOPE;
    if (!name_ok(name))
        return fail(err,
                    "invalid tool name '%.200s': use 1 to %d of A-Z a-z 0-9 _ - ., not "
                    "starting with . or -",
                    name, MAX_NAME);
    if (strlen(scope) > MAX_SCOPE || !text_scope_ok(scope))
        return fail(err,
                    "invalid scope '%.200s': one OAuth scope of at most %d characters, "
                    "printable ASCII without spaces, quotes or backslashes (RFC 6749)",
                    scope, MAX_SCOPE);
    /* the folders are named in the files' comments: a line break would end a comment */
    for (const char *p = scripts_dir; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(err, "the scripts folder's name has a control character");
    for (const char *p = policies_dir; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(err, "the policies folder's name has a control character");
    if (!is_dir(scripts_dir))
        return fail(err, "the scripts folder %s does not exist (give --scripts DIR)", scripts_dir);
    if (!is_dir(policies_dir))
        return fail(err, "the policies folder %s does not exist (give --policies DIR)",
                    policies_dir);

    /* Linked in this order: spec, policy, tool, so a live server that reloads in between never
     * serves the tool without its rule (a rule matching no tool yet is only a warning). */
    struct planned f[3] = {{.text = NULL}};
    const char *tpl[3] = {spec_template, policy_template, tool_template};
    int n[3];
    n[0] = snprintf(f[0].path, sizeof f[0].path, "%s/spec/%s_spec.lua", scripts_dir, name);
    n[1] = snprintf(f[1].path, sizeof f[1].path, "%s/%s.lua", policies_dir, name);
    n[2] = snprintf(f[2].path, sizeof f[2].path, "%s/%s.lua", scripts_dir, name);
    char spec_dir[PATH_MAX];
    if (snprintf(spec_dir, sizeof spec_dir, "%s/spec", scripts_dir) >= (int)sizeof spec_dir)
        return fail(err, "%s: path too long", scripts_dir);
    bool made_spec_dir = false;
    int rc = -1;
    for (int i = 2; i >= 0; i--) { /* the tool named first when it exists */
        struct stat st;
        if (n[i] < 0 || (size_t)n[i] >= sizeof f[i].path) {
            fail(err, "%s/...: path too long", scripts_dir);
            goto done;
        }
        if (lstat(f[i].path, &st) == 0) {
            fail(err, "%s already exists: nothing written (choose another name, or remove it)",
                 f[i].path);
            goto done;
        }
        if (errno != ENOENT) {
            fail(err, "cannot write %s: %s: nothing written", f[i].path, strerror(errno));
            goto done;
        }
        f[i].text = expand(tpl[i], name, scope, scripts_dir, policies_dir);
        if (!f[i].text) {
            fail(err, "out of memory");
            goto done;
        }
    }
    if (!is_dir(spec_dir)) {
        if (mkdir(spec_dir, 0755) != 0) {
            fail(err, "cannot create %s: %s", spec_dir, strerror(errno));
            goto done;
        }
        made_spec_dir = true;
    }
    for (int i = 0; i < 3; i++)
        if (write_tmp(&f[i], err) != 0)
            goto done;
    /* link() refuses an existing name, so a file that appeared since the check is kept. */
    for (int i = 0; i < 3; i++) {
        if (link(f[i].tmp, f[i].path) != 0) {
            fail(err, "cannot write %s: %s: nothing written", f[i].path,
                 errno == EEXIST ? "it appeared meanwhile" : strerror(errno));
            goto done;
        }
        f[i].linked = true;
    }
    rc = 0;
done:
    for (int i = 2; i >= 0; i--) {
        if (rc != 0 && f[i].linked)
            unlink(f[i].path);
        if (f[i].tmp_made)
            unlink(f[i].tmp);
        free(f[i].text);
    }
    if (rc != 0 && made_spec_dir)
        rmdir(spec_dir);
    if (rc == 0)
        printf("wrote %s\n      %s\n      %s\n", f[2].path, f[1].path, f[0].path);
    return rc;
}
