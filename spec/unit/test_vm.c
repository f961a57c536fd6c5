/* The sandbox and its limits, from inside: escapes that must fail, budgets that pcall cannot
 * swallow, a memory cap that ends a call but not the state. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "luamcp/vm.h"

static config_limits_t limits = {.cpu_ms = 200, .instructions = 0, .memory_bytes = 16u << 20};

/* Runs code in vm as a fresh coroutine; returns the status, copies the message or the first
 * result's tostring into out. */
static vm_status_t run(vm_t *vm, const char *code, char *out, size_t n)
{
    lua_State *L = vm_lua(vm);
    int top = lua_gettop(L);
    out[0] = '\0';
    if (luaL_loadbufferx(L, code, strlen(code), "=test", "t") != LUA_OK) {
        snprintf(out, n, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return VM_ERROR;
    }
    /* same environment a script gets: own globals over the read-only base */
    lua_newtable(L);
    lua_newtable(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "luamcp.base");
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1);
    lua_State *co = lua_newthread(L);
    lua_insert(L, -2);
    lua_xmove(L, co, 1);
    int nres = 0;
    char *msg = NULL, *trace = NULL;
    vm_status_t st = vm_resume(vm, co, 0, &nres, &msg, &trace);
    if (st == VM_OK && nres > 0)
        snprintf(out, n, "%s", luaL_tolstring(co, -nres, NULL));
    else if (msg)
        snprintf(out, n, "%s", msg);
    free(msg);
    free(trace);
    lua_settop(L, top);
    return st;
}

static void test_globals_absent(vm_t *vm)
{
    static const char *const absent[] = {
        "io", "debug", "package", "dofile", "loadfile", "os.execute", "os.exit", "os.remove",
        "os.rename", "os.getenv", "os.tmpname", "string.dump", "loadstring", "require and "
        "package", NULL};
    char out[256], code[256];
    for (int i = 0; absent[i]; i++) {
        snprintf(code, sizeof code, "return %s == nil", absent[i]);
        CHECK_INT(run(vm, code, out, sizeof out), VM_OK);
        if (!CHECK_STR(out, "true"))
            fprintf(stderr, "    for %s\n", absent[i]);
    }
    CHECK_INT(run(vm, "return os.time() > 0 and type(os.clock()) == 'number'", out, sizeof out),
              VM_OK);
    CHECK_STR(out, "true");
}

static void test_escapes(vm_t *vm)
{
    char out[256];
    /* binary chunks refused */
    CHECK_INT(run(vm, "local f, e = load('\\27Lua') return f == nil and e:find('binary') ~= nil",
                  out, sizeof out), VM_OK);
    CHECK_STR(out, "true");
    CHECK_INT(run(vm, "return ('').dump == nil and string.dump == nil", out, sizeof out), VM_OK);
    CHECK_STR(out, "true");
    /* a chunk from load never reaches the real globals (dofile, loadfile, the full os) */
    CHECK_INT(run(vm, "return load('return dofile, loadfile, io, os.execute')()",
                  out, sizeof out), VM_OK);
    CHECK_STR(out, "nil");
    CHECK_INT(run(vm, "return pcall(load, 'return 1', 'x', 'bt')", out, sizeof out), VM_OK);
    CHECK_STR(out, "false");
    CHECK_INT(run(vm, "return load(string.char(27)..'Lua', 'x', 'b')", out, sizeof out),
              VM_ERROR);
    CHECK(strstr(out, "text chunks") != NULL);
    /* text load works and sees the caller's environment by default */
    CHECK_INT(run(vm, "x = 41; return load('return x + 1')()", out, sizeof out), VM_OK);
    CHECK_STR(out, "42");
    /* shared libraries are read-only */
    CHECK_INT(run(vm, "string.upper = nil", out, sizeof out), VM_ERROR);
    CHECK(strstr(out, "read-only") != NULL);
    CHECK_INT(run(vm, "math.pi = 3", out, sizeof out), VM_ERROR);
    CHECK_INT(run(vm, "mcp.tool = print", out, sizeof out), VM_ERROR);
    /* the string metatable is hidden */
    CHECK_INT(run(vm, "return getmetatable('')", out, sizeof out), VM_OK);
    CHECK_STR(out, "false");
    /* globals of one chunk do not leak into another */
    CHECK_INT(run(vm, "leaked = 1", out, sizeof out), VM_OK);
    CHECK_INT(run(vm, "return leaked == nil", out, sizeof out), VM_OK);
    CHECK_STR(out, "true");
    /* require: only pure-Lua modules from the lib directory, never paths */
    CHECK_INT(run(vm, "return require('../../etc/passwd')", out, sizeof out), VM_ERROR);
    CHECK(strstr(out, "invalid module name") != NULL);
    CHECK_INT(run(vm, "return require('nonexistent')", out, sizeof out), VM_ERROR);
    CHECK(strstr(out, "not found") != NULL);
    CHECK_INT(run(vm, "return require('mcp') == mcp", out, sizeof out), VM_OK);
    CHECK_STR(out, "true");
    /* collectgarbage limited */
    CHECK_INT(run(vm, "collectgarbage('stop')", out, sizeof out), VM_ERROR);
    /* mcp.tool outside loading */
    CHECK_INT(run(vm, "mcp.tool{name='x', description='d', inputSchema={type='object'}, "
                      "handler=function() end}", out, sizeof out), VM_ERROR);
    CHECK(strstr(out, "only be called while scripts are loading") != NULL);
}

static void test_budget(vm_t *vm)
{
    char out[256];
    CHECK_INT(run(vm, "while true do end", out, sizeof out), VM_TIMEOUT);
    CHECK(strstr(out, "exceeded its budget") != NULL);
    /* pcall cannot swallow the kill */
    CHECK_INT(run(vm, "while true do pcall(function() while true do end end) end", out,
                  sizeof out), VM_TIMEOUT);
    CHECK_INT(run(vm, "local ok repeat ok = pcall(function() while true do end end) "
                      "until false", out, sizeof out), VM_TIMEOUT);
    /* nor a coroutine */
    CHECK_INT(run(vm, "while true do coroutine.resume(coroutine.create(function() "
                      "while true do end end)) end", out, sizeof out), VM_TIMEOUT);
    /* the next call has a fresh budget */
    CHECK_INT(run(vm, "local s = 0 for i = 1, 1000 do s = s + i end return s", out, sizeof out),
              VM_OK);
    CHECK_STR(out, "500500");
}

static void test_instruction_budget(void)
{
    config_limits_t l = limits;
    l.instructions = 100000;
    l.cpu_ms = 60000;
    char *err = NULL, out[256];
    vm_t *vm = vm_new(&l, NULL, &err);
    if (!CHECK(vm))
        return;
    CHECK_INT(run(vm, "for i = 1, 1e9 do end", out, sizeof out), VM_TIMEOUT);
    CHECK(strstr(out, "instructions=100000") != NULL);
    CHECK_INT(run(vm, "for i = 1, 100 do end return 'ok'", out, sizeof out), VM_OK);
    vm_free(vm);
}

static void test_memory(void)
{
    /* A generous time budget: under a sanitizer on a busy machine, filling 16 MiB must end
     * as out of memory, never as a timeout. */
    config_limits_t l = limits;
    l.cpu_ms = 60000;
    char *err = NULL, out[256];
    vm_t *vm = vm_new(&l, NULL, &err);
    if (!CHECK(vm))
        return;
    CHECK_INT(run(vm, "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end",
                  out, sizeof out), VM_NOMEM);
    CHECK(strstr(out, "out of memory") != NULL);
    /* pcall around the allocation still ends as out of memory */
    CHECK_INT(run(vm, "local ok, e = pcall(string.rep, 'x', 1 << 30) "
                      "if not ok then error(e) end", out, sizeof out), VM_NOMEM);
    /* the state recovers: memory back under the cap, next call fine */
    CHECK(vm_memory(vm) < (8u << 20));
    CHECK_INT(run(vm, "return #string.rep('ab', 10)", out, sizeof out), VM_OK);
    CHECK_STR(out, "20");
    vm_free(vm);
}

static void test_errors(vm_t *vm)
{
    char out[256];
    CHECK_INT(run(vm, "error('boom')", out, sizeof out), VM_ERROR);
    CHECK(strstr(out, "boom") != NULL);
    CHECK_INT(run(vm, "error({})", out, sizeof out), VM_ERROR);
    CHECK_STR(out, "(error object is not a string)");
    CHECK_INT(run(vm, "coroutine.yield(1)", out, sizeof out), VM_YIELD);
}

int main(void)
{
    char *err = NULL;
    vm_t *vm = vm_new(&limits, "/nonexistent-lib-dir", &err);
    if (!CHECK(vm != NULL)) {
        fprintf(stderr, "%s\n", err);
        return check_report();
    }
    test_globals_absent(vm);
    test_escapes(vm);
    test_budget(vm);
    test_errors(vm);
    vm_free(vm);
    test_instruction_budget();
    test_memory();
    return check_report();
}
