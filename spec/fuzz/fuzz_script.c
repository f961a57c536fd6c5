/* libFuzzer target: the input's bytes choose a script from a small grammar over the sandbox's
 * globals — calls of its library functions with extreme arguments, backtracking patterns,
 * message handlers that loop, coroutines, metamethods — which then runs in a sandboxed Lua
 * state under a 50 ms budget and a 32 MiB cap, as a tool call does. Whatever the script does,
 * the run must end within its budget plus slack (else abort: a hang past the deadline), and
 * the same state must then run a plain chunk and get its answer (the next call is served).
 * libFuzzer's -timeout catches a run that never returns at all. */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luamcp/vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CPU_MS   50
#define SLACK_MS 2000 /* ASan and UBSan on a shared machine */

static const char *const fns[] = {
    "string.rep",     "string.format",  "string.byte",   "string.char",   "string.find",
    "string.match",   "string.gsub",    "string.gmatch", "string.pack",   "string.unpack",
    "string.sub",     "string.reverse", "string.upper",  "string.len",    "table.concat",
    "table.insert",   "table.remove",   "table.move",    "table.sort",    "table.unpack",
    "table.pack",     "utf8.char",      "utf8.codepoint", "utf8.len",     "utf8.offset",
    "math.fmod",      "math.tointeger", "math.floor",    "select",        "tostring",
    "tonumber",       "pcall",          "xpcall",        "error",         "coroutine.wrap",
    "coroutine.resume", "coroutine.close", "coroutine.running", "setmetatable", "getmetatable",
    "next",           "ipairs",         "pairs",         "rawlen",        "rawget",
    "rawset",         "rawequal",       "load",          "os.date",       "os.time",
    "mcp.json.encode", "mcp.json.decode", "mcp.encoding.base64", "mcp.encoding.unhex",
    "collectgarbage"};

static const char *const args[] = {
    "0", "-1", "1", "2", "255", "math.maxinteger", "math.mininteger", "1 << 31", "1 << 50",
    "1e308", "-1e308", "0/0", "''", "'x'", "('a'):rep(300)", "('a*'):rep(20) .. 'b'", "'%'",
    "'['", "'('", "'%b()'", "'%f[%w]'", "'%1'", "'(a*)*b'", "'(.-)%1'", "'i16'", "'s1'", "'<!4'",
    "'%99d'", "'%.99f'", "'%c%c%c'", "'*t'", "{}", "{1, 2, 3}", "{n = 1 << 40}",
    "setmetatable({}, {__len = function() return 1 << 50 end})",
    "setmetatable({}, {__index = function(t, k) return t[k] end})",
    "setmetatable({}, {__lt = function() while true do end end})",
    "setmetatable({}, {__gc = function() while true do end end})",
    "setmetatable({}, {__close = function() while true do end end})",
    "setmetatable({}, {__tostring = function() return ('x'):rep(1 << 20) end})",
    "function() while true do end end", "function(...) return ... end",
    "function() error(setmetatable({}, {__tostring = function() while true do end end})) end",
    "nil", "true", "string.rep", "coroutine.running()", "mcp", "string", "_ENV",
    "'return 1'", "'while true do end'", "('x'):rep(1 << 20)"};

static const char *const handlers[] = {
    "function(e) return e end", "function() while true do end end",
    "function(e) error(e) end", "function() return ('x'):rep(1 << 24) end",
    "function() local t = {} for i = 1, 1e9 do t[i] = i end end"};

typedef struct {
    const uint8_t *p, *end;
} input_t;

static unsigned pick(input_t *in, unsigned n)
{
    unsigned v = in->p < in->end ? *in->p++ : 0;
    return v % n;
}

#define NELEM(a) (sizeof(a) / sizeof *(a))

/* One statement of the grammar, appended to buf (at *k, within cap). */
static void statement(input_t *in, char *buf, size_t cap, int *k)
{
#define OUT(...)                                                                              \
    do {                                                                                      \
        int w_ = snprintf(buf + *k, cap - (size_t)*k, __VA_ARGS__);                           \
        if (w_ > 0 && (size_t)(*k + w_) < cap)                                                \
            *k += w_;                                                                         \
    } while (0)
    const char *f = fns[pick(in, NELEM(fns))];
    switch (pick(in, 6)) {
    case 0:
        OUT("pcall(%s", f);
        break;
    case 1:
        OUT("for _ = 1, %u do pcall(%s", 1u + pick(in, 200), f);
        break;
    case 2:
        OUT("xpcall(%s, %s", f, handlers[pick(in, NELEM(handlers))]);
        break;
    case 3:
        OUT("pcall(coroutine.wrap(function(...) return %s(...) end)", f);
        break;
    case 4:
        OUT("pcall(function(...) local r <close> = nil return %s(...) end", f);
        break;
    default:
        OUT("pcall(string.find, %s, %s", args[pick(in, NELEM(args))], args[pick(in, NELEM(args))]);
        break;
    }
    for (unsigned a = pick(in, 5); a > 0; a--)
        OUT(", %s", args[pick(in, NELEM(args))]);
    OUT(")\n");
#undef OUT
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs code as a script's chunk (its own globals over the base) on a fresh thread; the status. */
static vm_status_t run(vm_t *vm, const char *code, char *out, size_t n)
{
    lua_State *L = vm_lua(vm);
    int top = lua_gettop(L);
    out[0] = '\0';
    if (luaL_loadbufferx(L, code, strlen(code), "=fuzz", "t") != LUA_OK) {
        lua_settop(L, top);
        return VM_ERROR;
    }
    vm_push_script_env(L, "fuzz.lua");
    lua_setupvalue(L, -2, 1);
    lua_State *co = vm_new_thread(L);
    lua_insert(L, -2);
    lua_xmove(L, co, 1);
    int nres = 0;
    char *msg = NULL, *trace = NULL;
    vm_status_t st = vm_resume(vm, co, 0, &nres, &msg, &trace);
    if (st == VM_OK && nres > 0 && lua_type(co, -nres) == LUA_TNUMBER)
        snprintf(out, n, "%lld", (long long)lua_tointeger(co, -nres));
    free(msg);
    free(trace);
    lua_settop(L, top);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static vm_t *vm;
    static config_limits_t limits = {.cpu_ms = CPU_MS, .instructions = 0,
                                     .memory_bytes = 32u << 20};
    if (!vm) {
        char *err = NULL;
        if (!(vm = vm_new(&limits, NULL, &err))) {
            fprintf(stderr, "fuzz_script: %s\n", err ? err : "vm_new failed");
            abort();
        }
    }
    input_t in = {data, data + size};
    char code[8192];
    int k = 0;
    code[0] = '\0';
    for (unsigned s = 1 + pick(&in, 6); s > 0 && k < (int)sizeof code - 1024; s--) {
        int k0 = k;
        statement(&in, code, sizeof code, &k);
        if (k == k0)
            break;
        /* close the for loop a case-1 statement opened */
        if (strstr(code + k0, "for _ = ") == code + k0 && k < (int)sizeof code - 8) {
            k--; /* before the newline */
            k += snprintf(code + k, sizeof code - (size_t)k, " end\n");
        }
    }
    snprintf(code + k, sizeof code - (size_t)k, "return 'done'\n");

    long long t0 = now_ms();
    char out[64];
    run(vm, code, out, sizeof out);
    long long took = now_ms() - t0;
    if (took > CPU_MS + SLACK_MS) {
        fprintf(stderr, "fuzz_script: a run took %lld ms past its %d ms budget:\n%s", took,
                CPU_MS, code);
        abort();
    }
    /* the same state serves the next call */
    if (run(vm, "return 40 + 2", out, sizeof out) != VM_OK || strcmp(out, "42") != 0) {
        fprintf(stderr, "fuzz_script: the state no longer runs a plain chunk after:\n%s", code);
        abort();
    }
    return 0;
}
