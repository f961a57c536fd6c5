/* Loading scripts: every mistake reported as file:line with what is wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "luamcp/bundle.h"

static char dir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* Loads dir holding only `text` as t.lua; returns the error text (caller frees) or NULL. */
static char *load_one(const char *text)
{
    write_file("t.lua", text);
    config_t cfg;
    config_defaults(&cfg);
    config_set_str(&cfg.scripts_dir, dir);
    /* budgets that end runaway scripts by instruction count, not by the clock, so a busy or
     * sanitized machine gives the same answers */
    cfg.limits.cpu_ms = 60000;
    cfg.limits.instructions = 20000000;
    cfg.limits.memory_bytes = 16u << 20;
    char *err = NULL;
    bundle_t *b = bundle_load(&cfg, &err);
    bundle_free(b);
    config_free(&cfg);
    remove_file("t.lua");
    return b ? NULL : err;
}

#define OK_TOOL "mcp.tool{name='a', description='d', inputSchema={type='object'}, " \
                "handler=function() end}\n"

static void expect(const char *text, const char *want)
{
    char *err = load_one(text);
    if (!CHECK(err && strstr(err, want)))
        fprintf(stderr, "    script: %s\n    want: %s\n    got:  %s\n", text, want,
                err ? err : "(loaded fine)");
    free(err);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/luamcp-test-bundle-XXXXXX");
    if (!CHECK(mkdtemp(dir)))
        return check_report();

    CHECK(load_one(OK_TOOL) == NULL);
    expect("\n\nmcp.tool{name='a b', description='d', inputSchema={type='object'}, "
           "handler=function() end}", "t.lua:3: invalid tool name 'a b'");
    expect("mcp.tool{name='a', inputSchema={type='object'}, handler=function() end}",
           "t.lua:1: tool 'a': 'description' must be a string");
    expect("mcp.tool{name='a', description='d', handler=function() end}",
           "'inputSchema' must be a table");
    expect("mcp.tool{name='a', description='d', inputSchema={type='string'}, "
           "handler=function() end}", "'inputSchema' must have type = \"object\"");
    expect("mcp.tool{name='a', description='d', inputSchema={type='object', "
           "properties={n={minimum='x'}}}, handler=function() end}", "inputSchema");
    expect("mcp.tool{name='a', description='d', inputSchema={type='object'}}",
           "'handler' must be a function");
    expect("mcp.tool{name='a', description='d', inputSchema={type='object', properties={\n"
           "  r={type='number', ['x-mcp-header']='R'}}}, handler=function() end}",
           "t.lua:1: tool 'a': inputSchema: property 'r': x-mcp-header needs type = \"string\"");
    expect("mcp.tool{name='a', description='d', inputSchema={type='object'}, "
           "egress={'https://api.example.com'}, handler=function() end}",
           "tool 'a': 'egress' entry 'https://api.example.com' is not a host pattern");
    CHECK(load_one("mcp.tool{name='a', description='d', inputSchema={type='object'}, "
                   "egress={'api.example.com', '*.example.org', 'h:8443'}, "
                   "handler=function() end}") == NULL);
    expect("mcp.tool{name='a', description='d', inputSchema={type='object'}, "
           "task='sometimes', handler=function() end}",
           "t.lua:1: tool 'a': 'task' must be \"optional\" or \"required\"");
    CHECK(load_one("mcp.tool{name='a', description='d', inputSchema={type='object'}, "
                   "task='required', handler=function() end}") == NULL);
    expect("mcp.tool{name='a', description='d', inputSchema={type='object'}, "
           "handler=function() end}\nmcp.sleep(1)",
           "t.lua:2: mcp.sleep cannot be used while a script loads; call it from a handler");
    expect(OK_TOOL "mcp.disable('tool', 'a')",
           "t.lua:2: mcp.disable: only a handler can switch tools, prompts and resources");
    expect(OK_TOOL "mcp.enable('tool', 'a')", "mcp.enable: only a handler can switch");
    CHECK(load_one(OK_TOOL "assert(mcp.enabled('tool', 'a'))") == NULL); /* reading is fine */
    expect("mcp.tool{name='a', description='d', input_schema={}, inputSchema={type='object'},"
           " handler=function() end}", "unknown field 'input_schema'");
    expect(OK_TOOL "\n" OK_TOOL, "t.lua:3: duplicate tool name 'a' (first defined at");
    expect("mcp.tool{name=string.rep('x', 129), description='d', inputSchema={type='object'},"
           " handler=function() end}", "invalid tool name");
    expect("this is not lua", "t.lua:1:");
    expect("\nerror('broken at load')", "t.lua:2: broken at load");
    expect("while true do end", "exceeded its budget");
    expect("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 4096) .. i end",
           "ran out of memory");
    expect("require('missing_module')", "module 'missing_module' not found");

    /* one broken file among good ones: every problem reported, nothing half-loaded */
    write_file("b.lua", "mcp.tool{name='b', description='d', inputSchema={type='object'}, "
                        "handler=function() end}");
    char *err = load_one("syntax error here");
    CHECK(err != NULL);
    free(err);
    remove_file("b.lua");

    /* a module from lib/ is found, and its globals stay its own */
    char lib[128];
    snprintf(lib, sizeof lib, "%s/lib", dir);
    {
        char cmd[160];
        snprintf(cmd, sizeof cmd, "mkdir -p %s", lib);
        CHECK(system(cmd) == 0);
    }
    write_file("lib/helper.lua", "local M = {} function M.twice(x) return 2 * x end return M");
    CHECK(load_one("local h = require 'helper'\nassert(h.twice(2) == 4)\n" OK_TOOL) == NULL);
    remove_file("lib/helper.lua");
    rmdir(lib);
    rmdir(dir);
    return check_report();
}
