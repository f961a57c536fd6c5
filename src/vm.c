#include "luamcp/vm.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luamcp/api.h"
#include "luamcp/log.h"
#include "luamcp/sbxlib.h"
#include "luamcp/smallmem.h"
#include "luamcp/treefile.h"

#define HOOK_EVERY 1000 /* instructions between budget checks */
#define MAX_MODULE_NAME 128

struct vm {
    lua_State *L;
    config_limits_t limits;
    size_t mem_used;
    bool mem_hit;       /* an allocation was refused during this run */
    int host_pushing;   /* > 0 while the host builds a call's arguments (see vm_host_begin) */
    long long instr_used;
    long long deadline_ns;
    bool budget_hit;    /* once set, the hook raises on every instruction until unwound */
    lua_State *running; /* the thread run() resumed (the call's own), NULL between runs */
    vm_phase_t phase;
    const char *loading_file;
    char *lib_dir;
    void *call;
    unsigned long long call_serial;
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- allocator with a cap ------------------------------------------------------------- */

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    vm_t *vm = ud;
    size_t old = ptr ? osize : 0; /* with ptr NULL, osize is a type tag, not a size */
    if (nsize == 0) {
        smallmem_free(ptr);
        vm->mem_used -= old;
        return NULL;
    }
    /* Lua requires shrinking to succeed; only growth is refused past the cap. */
    if (nsize > old && !vm->host_pushing &&
        vm->mem_used + (nsize - old) > vm->limits.memory_bytes) {
        vm->mem_hit = true;
        return NULL;
    }
    void *p = ptr ? realloc(ptr, nsize) : smallmem_alloc(nsize);
    if (!p)
        return NULL;
    vm->mem_used = vm->mem_used - old + nsize;
    return p;
}

/* ---- budget ---------------------------------------------------------------------------- */

static bool over_budget(vm_t *vm, long long steps)
{
    vm->instr_used += steps;
    return (vm->limits.instructions > 0 && vm->instr_used > vm->limits.instructions) ||
           now_ns() > vm->deadline_ns;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

/* From here on every instruction of this thread and of the call's own thread traps. */
static void spend(vm_t *vm, lua_State *L)
{
    vm->budget_hit = true;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    if (vm->running && vm->running != L)
        lua_sethook(vm->running, budget_hook, LUA_MASKCOUNT, 1);
}

/* The kill must reach the host whatever the script wraps around it. On the call's own thread,
 * when it can yield, the hook yields it: only the host resumed it, so no pcall, xpcall or
 * coroutine of the script sees that, and run() never resumes it again. Elsewhere (a coroutine
 * the script made, a message handler, a callback of a C function) it raises; the hook stays
 * armed on every instruction of this thread and of the call's thread, so whatever catches the
 * error traps at its very next instruction, and the sandbox's xpcall runs no script handler
 * once the budget is spent (sbx_xpcall): each catch unwinds a level, never re-enters one. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    vm_t *vm = vm_of(L);
    if (!vm->budget_hit) {
        if (!over_budget(vm, HOOK_EVERY))
            return;
        spend(vm, L);
    }
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    if (L == vm->running && lua_isyieldable(L)) {
        lua_yield(L, 0);
        return;
    }
    luaL_error(L, "budget exceeded");
}

bool vm_charge(lua_State *L, long long steps)
{
    vm_t *vm = vm_of(L);
    if (!vm->running)
        return true; /* host code between runs: no budget to charge */
    if (!vm->budget_hit && !over_budget(vm, steps))
        return true;
    spend(vm, L);
    return false;
}

bool vm_budget_spent(lua_State *L) { return vm_of(L)->budget_hit; }

/* ---- sandbox --------------------------------------------------------------------------- */

vm_t *vm_of(lua_State *L) { return *(vm_t **)lua_getextraspace(L); }
lua_State *vm_lua(vm_t *vm) { return vm->L; }
vm_phase_t vm_phase(const vm_t *vm) { return vm->phase; }
void vm_set_phase(vm_t *vm, vm_phase_t phase) { vm->phase = phase; }
const char *vm_loading_file(const vm_t *vm) { return vm->loading_file; }
size_t vm_memory(const vm_t *vm) { return vm->mem_used; }
const config_limits_t *vm_limits(const vm_t *vm) { return &vm->limits; }

void vm_set_call(vm_t *vm, void *call, unsigned long long serial)
{
    vm->call = call;
    vm->call_serial = serial;
}

void *vm_call(vm_t *vm, unsigned long long serial)
{
    return vm->call && vm->call_serial == serial ? vm->call : NULL;
}

/* The proxy's hidden table, found through its metatable (raw: the metatable is protected). */
static void push_hidden(lua_State *L, int proxy)
{
    if (!lua_istable(L, proxy) || !lua_getmetatable(L, proxy))
        luaL_error(L, "expected a read-only table");
    lua_rawgetp(L, -1, &vm_readonly_newindex);
    if (lua_type(L, -1) != LUA_TTABLE)
        luaL_error(L, "expected a read-only table");
    lua_remove(L, -2); /* the metatable */
}

/* next for a proxy: walks the hidden table and hands out only its keys and values (the values
 * that are tables are proxies themselves when the proxy is deep, see vm_freeze). */
static int readonly_next(lua_State *L)
{
    lua_settop(L, 2);
    push_hidden(L, 1);   /* stack: proxy, key, hidden */
    lua_insert(L, 2);    /* stack: proxy, hidden, key */
    if (lua_next(L, 2))
        return 2;
    lua_pushnil(L);
    return 1;
}

/* pairs(proxy) -> readonly_next, proxy, nil: the table behind it never reaches the script */
static int readonly_pairs(lua_State *L)
{
    lua_pushcfunction(L, readonly_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int readonly_len(lua_State *L)
{
    push_hidden(L, 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

int vm_readonly_newindex(lua_State *L)
{
    return luaL_error(L, "attempt to modify a read-only table");
}

void *vm_current_call(vm_t *vm) { return vm->call; }

/* The host pushes a call's thread, arguments and ctx outside any protected call, where a
 * refused allocation would be a panic: the cap does not apply to it (what it pushes is bounded
 * by the request size). The script's own allocations then meet the cap as usual. */
void vm_host_begin(vm_t *vm) { vm->host_pushing++; }
void vm_host_end(vm_t *vm) { vm->host_pushing--; }

/* stack: table -> proxy whose reads reach the table and whose writes fail. The table is kept
 * at a key only C can name (the address of vm_readonly_newindex), so sandbox_rawset and
 * readonly_next find it and no script can: getmetatable(proxy) is false, pairs(proxy) walks
 * it through readonly_next, next/rawget/rawlen see an empty table, rawset and setmetatable
 * are refused. */
void vm_make_readonly(lua_State *L)
{
    lua_newtable(L);             /* table, proxy */
    lua_createtable(L, 0, 6);    /* table, proxy, mt */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -3);
    lua_rawsetp(L, -2, &vm_readonly_newindex);
    lua_pushcfunction(L, vm_readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, readonly_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushcfunction(L, readonly_len);
    lua_setfield(L, -2, "__len");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);     /* table, proxy */
    lua_remove(L, -2);           /* proxy */
}

static bool is_proxy(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return false;
    bool ro = lua_rawgetp(L, -1, &vm_readonly_newindex) == LUA_TTABLE;
    lua_pop(L, 2);
    return ro;
}

/* stack: table -> a deep proxy: every table reachable from it through its fields is replaced,
 * in the hidden table, by a proxy of its own, so no path from a shared library leads to a
 * writable table (the libraries have no tables as keys). seen (an absolute index) maps tables
 * already frozen to their proxies: shared and cyclic tables keep one proxy. */
static void freeze(lua_State *L, int seen)
{
    int t = lua_gettop(L);
    if (is_proxy(L, t))
        return;
    if (lua_rawgetp(L, seen, lua_topointer(L, t)) == LUA_TTABLE) {
        lua_replace(L, t);
        return;
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, t)) { /* stack: t, key, value */
        if (lua_type(L, -1) == LUA_TTABLE) {
            freeze(L, seen);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, t); /* assigning an existing field during next is allowed */
        } else {
            lua_pop(L, 1);
        }
    }
    lua_pushvalue(L, t);
    vm_make_readonly(L); /* stack: t, proxy */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, seen, lua_topointer(L, t));
    lua_replace(L, t);
}

/* stack: table -> its deep proxy (see freeze) */
static void vm_freeze(lua_State *L)
{
    lua_newtable(L);
    lua_insert(L, -2); /* stack: seen, table */
    freeze(L, lua_gettop(L) - 1);
    lua_remove(L, -2);
}

/* rawset(t, k, v), except on the read-only proxies: rawset bypasses __newindex, and the
 * proxies of the shared libraries are shared by every script. */
static int sandbox_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (is_proxy(L, 1))
        return luaL_error(L, "attempt to modify a read-only table");
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

/* getmetatable(v), except that the host's own metatables (those luaL_newmetatable made, found
 * in the registry under their __name) read as false: they are shared by every script's
 * objects of their kind (arrays, results, responses), so one script must not change them. */
static int sandbox_getmetatable(lua_State *L)
{
    luaL_checkany(L, 1);
    if (!lua_getmetatable(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return 1; /* what a protected metatable says of itself */
    if (lua_getfield(L, -1, "__name") == LUA_TSTRING) {
        lua_rawget(L, LUA_REGISTRYINDEX);
        bool host = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
        if (host) {
            lua_pushboolean(L, 0);
            return 1;
        }
    } else {
        lua_pop(L, 1);
    }
    return 1;
}

/* setmetatable(t, mt), refusing a __gc field: Lua runs finalizers with the hooks off and
 * whenever the collector gets to them (later, in another caller's call), so no budget would
 * hold one. A __gc added to mt afterwards marks nothing (Lua decides at this call). */
static int sandbox_setmetatable(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    lua_pushliteral(L, "__gc");
    if (t == LUA_TTABLE && lua_rawget(L, 2) != LUA_TNIL) /* raw, as Lua's own test is */
        return luaL_error(L, "setmetatable: __gc is not allowed in the sandbox (a finalizer "
                             "would run outside every budget)");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

static int sandbox_print(lua_State *L)
{
    luaL_Buffer b;
    int n = lua_gettop(L);
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    log_info("lua: %s", lua_tostring(L, -1));
    return 0;
}

/* Pushes the _ENV of the Lua function that called us; false when it has none. */
static bool push_caller_env(lua_State *L)
{
    lua_Debug ar;
    if (!lua_getstack(L, 1, &ar) || !lua_getinfo(L, "f", &ar))
        return false;
    for (int i = 1;; i++) {
        const char *name = lua_getupvalue(L, -1, i);
        if (!name)
            break;
        if (strcmp(name, "_ENV") == 0) {
            lua_remove(L, -2);
            return true;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return false;
}

/* load(chunk [, name [, mode [, env]]]) — text chunks only, and env defaults to the caller's
 * script environment rather than the shared base. */
#define LOAD_MAX_BYTES (1u << 20)

static int sandbox_load(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, "=(load)");
    const char *mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0)
        return luaL_error(L, "load: only text chunks are allowed (mode \"t\")");
    /* Compiling runs in C, outside the count hook: bound it, and charge it (a step a byte). */
    if (len > LOAD_MAX_BYTES) {
        luaL_pushfail(L);
        lua_pushfstring(L, "load: a chunk is at most 1 MiB (this one is %I bytes)",
                        (lua_Integer)len);
        return 2;
    }
    if (!vm_charge(L, (long long)len))
        return luaL_error(L, "budget exceeded (in load)");
    if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (!lua_isnone(L, 4)) {
        lua_pushvalue(L, 4);
    } else if (!push_caller_env(L)) {
        lua_getfield(L, LUA_REGISTRYINDEX, "luamcp.base");
    }
    lua_setupvalue(L, -2, 1);
    return 1;
}

static int sandbox_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") == 0) {
        lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT) + lua_gc(L, LUA_GCCOUNTB) / 1024.0);
        return 1;
    }
    if (strcmp(opt, "collect") == 0 || strcmp(opt, "step") == 0) {
        lua_gc(L, strcmp(opt, "collect") == 0 ? LUA_GCCOLLECT : LUA_GCSTEP, 0);
        lua_pushinteger(L, 0);
        return 1;
    }
    return luaL_error(L, "collectgarbage: option '%s' is not available in the sandbox", opt);
}

static bool module_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MAX_MODULE_NAME || name[0] == '.' || name[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (c == '.' && name[i + 1] != '.');
        if (!ok)
            return false;
    }
    return true;
}

/* ---- script environments and their owners ---------------------------------------------- */

/* The key, in a script environment's metatable, of its owner: { file = path, loaded = {} },
 * the file the script is and the modules it has required. A lightuserdata no script can make,
 * in a metatable no script can read (__metatable), so the owner cannot be forged or borrowed. */
static const char owner_key;

/* stack: owner -> env: a fresh global table whose writes stay in it and whose reads fall
 * through to the base; its metatable is protected and carries the owner. */
static void push_env(lua_State *L)
{
    lua_newtable(L);              /* owner, env */
    lua_createtable(L, 0, 2);     /* owner, env, mt */
    lua_getfield(L, LUA_REGISTRYINDEX, "luamcp.base");
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, -3);
    lua_rawsetp(L, -2, &owner_key);
    lua_setmetatable(L, -2);      /* owner, env */
    lua_remove(L, -2);            /* env */
}

void vm_push_script_env(lua_State *L, const char *file)
{
    lua_createtable(L, 0, 2);
    lua_pushstring(L, file);
    lua_setfield(L, -2, "file");
    lua_newtable(L);
    lua_setfield(L, -2, "loaded");
    push_env(L);
}

/* Pushes the owner of the innermost script function running on L (a tool or policy file, or a
 * module, which belongs to the file that required it); false, pushing nothing, when none is.
 * A chunk given its own environment by load() belongs to whoever called it. */
static bool push_owner(lua_State *L)
{
    lua_Debug ar;
    for (int level = 1; level < 200 && lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "fS", &ar))
            continue;
        if (ar.what[0] == 'C') {
            lua_pop(L, 1);
            continue;
        }
        int fn = lua_gettop(L);
        for (int i = 1;; i++) {
            const char *name = lua_getupvalue(L, fn, i);
            if (!name)
                break;
            if (strcmp(name, "_ENV") == 0 && lua_istable(L, -1) && lua_getmetatable(L, -1)) {
                if (lua_rawgetp(L, -1, &owner_key) == LUA_TTABLE) {
                    lua_replace(L, fn); /* stack: owner, env, mt */
                    lua_settop(L, fn);
                    return true;
                }
                lua_pop(L, 2);
            }
            lua_pop(L, 1);
        }
        lua_settop(L, fn - 1);
    }
    return false;
}

bool vm_push_owner_file(lua_State *L)
{
    if (!push_owner(L))
        return false;
    if (lua_getfield(L, -1, "file") != LUA_TSTRING) {
        lua_pop(L, 2);
        return false;
    }
    lua_remove(L, -2);
    return true;
}

/* require(name): "mcp", or a pure-Lua module NAME.lua (dots are folders) under the lib dir.
 * Each script file gets modules of its own: a module runs once per file that requires it,
 * with its own globals, and the file's later requires return that copy. So no script can
 * patch what another author's module returns to another file (a tool to a policy, or to
 * another tool); a module stays shared among the functions of one file, as Lua's is. */
static int sandbox_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    vm_t *vm = vm_of(L);
    lua_settop(L, 1);
    if (strcmp(name, "mcp") == 0) {
        lua_getfield(L, LUA_REGISTRYINDEX, "luamcp.base");
        lua_getfield(L, -1, "mcp");
        return 1;
    }
    if (!module_name_ok(name))
        return luaL_error(L, "require: invalid module name '%s'", name);
    if (!vm->lib_dir)
        return luaL_error(L, "require: module '%s' not found (no lib directory)", name);
    if (!push_owner(L)) { /* code the host runs with an environment of its own: a copy */
        lua_createtable(L, 0, 1);
        lua_newtable(L);
        lua_setfield(L, -2, "loaded");
    }
    lua_getfield(L, -1, "loaded"); /* stack: name, owner, loaded */
    if (lua_getfield(L, -1, name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    /* The lib folder is below the scripts folder and opened from it, so neither lib nor
     * anything in it may be a symlink out of the tree (see treefile.h). */
    char root[4096], rel[4096];
    const char *slash = strrchr(vm->lib_dir, '/');
    snprintf(root, sizeof root, "%.*s", slash ? (int)(slash - vm->lib_dir) : 1,
             slash ? vm->lib_dir : ".");
    int n = snprintf(rel, sizeof rel, "%s/", slash ? slash + 1 : vm->lib_dir);
    for (const char *p = name; *p && n < (int)sizeof rel - 8; p++)
        rel[n++] = *p == '.' ? '/' : *p;
    snprintf(rel + n, sizeof rel - (size_t)n, ".lua");
    int lrc = treefile_load(L, root[0] ? root : "/", rel);
    if (lrc != LUA_OK) {
        if (lrc == LUA_ERRFILE) {
            bool absent = strstr(lua_tostring(L, -1), ": not found") != NULL;
            return luaL_error(L, "require: module '%s' %s in %s", name,
                              absent ? "not found" : "refused (not a regular file inside the tree)",
                              vm->lib_dir);
        }
        return lua_error(L);
    }
    /* stack: name, owner, loaded, chunk — the module's own globals, owned by the file */
    lua_pushvalue(L, 2);
    push_env(L);
    lua_setupvalue(L, -2, 1);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 3, name); /* loaded[name] = result */
    return 1;
}

/* Builds the read-only base environment and stores it in the registry as "luamcp.base". */
static void build_base(lua_State *L)
{
    static const char *const keep_base[] = {
        "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
        "rawget", "rawlen", "select", "tonumber", "tostring", "type",
        "xpcall", "_VERSION", NULL};
    static const struct { const char *name; lua_CFunction open; } libs[] = {
        {"string", luaopen_string}, {"table", luaopen_table}, {"math", luaopen_math},
        {"utf8", luaopen_utf8}, {"coroutine", luaopen_coroutine}, {NULL, NULL}};

    luaL_requiref(L, "_G", luaopen_base, 0); /* the real globals: we copy from them */
    lua_newtable(L);                        /* stack: G, base */
    for (int i = 0; keep_base[i]; i++) {
        lua_getfield(L, -2, keep_base[i]);
        lua_setfield(L, -2, keep_base[i]);
    }
    for (int i = 0; libs[i].name; i++) {
        luaL_requiref(L, libs[i].name, libs[i].open, 0);
        if (strcmp(libs[i].name, "string") == 0) {
            /* strings index this very table: remove dump here, not in a copy */
            lua_pushnil(L);
            lua_setfield(L, -2, "dump");
        }
        vm_freeze(L);
        lua_setfield(L, -2, libs[i].name);
    }
    sbx_patch_libs(L); /* stack: G, base — functions that would run long in C, bounded */
    /* os: the clock only */
    luaL_requiref(L, "os", luaopen_os, 0);
    lua_newtable(L);
    static const char *const keep_os[] = {"time", "clock", "date", "difftime", NULL};
    for (int i = 0; keep_os[i]; i++) {
        lua_getfield(L, -2, keep_os[i]);
        lua_setfield(L, -2, keep_os[i]);
    }
    lua_remove(L, -2);
    vm_freeze(L);
    lua_setfield(L, -2, "os");

    lua_pushcfunction(L, sandbox_print);
    lua_setfield(L, -2, "print");
    lua_pushcfunction(L, sandbox_rawset);
    lua_setfield(L, -2, "rawset");
    lua_pushcfunction(L, sandbox_getmetatable);
    lua_setfield(L, -2, "getmetatable");
    lua_pushcfunction(L, sandbox_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_pushcfunction(L, sandbox_load);
    lua_setfield(L, -2, "load");
    lua_pushcfunction(L, sandbox_collectgarbage);
    lua_setfield(L, -2, "collectgarbage");
    lua_pushcfunction(L, sandbox_require);
    lua_setfield(L, -2, "require");

    api_push_mcp(L); /* the mcp module, shared by every script: deep read-only */
    vm_freeze(L);
    lua_setfield(L, -2, "mcp");

    vm_freeze(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, "luamcp.base");
    /* Anything loaded without an explicit environment sees the base, never the real globals
     * (which hold dofile, loadfile and the rest). */
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pop(L, 1);

    /* Strings index the real string table through their metatable; hide it so scripts
     * cannot reach that table and change what every other script sees. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

static const char host_threads_key = 0; /* its address keys the registry's table */

static int build_state(lua_State *L)
{
    lua_pushlightuserdata(L, vm_of(L));
    lua_setfield(L, LUA_REGISTRYINDEX, "luamcp.vm");
    lua_newtable(L); /* the host's threads, weak-keyed: see vm_new_thread */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &host_threads_key);
    build_base(L);
    return 0;
}

lua_State *vm_new_thread(lua_State *L)
{
    lua_State *co = lua_newthread(L);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &host_threads_key) == LUA_TTABLE) {
        lua_pushvalue(L, -2);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    return co;
}

bool vm_is_host_thread(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &host_threads_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        return false;
    }
    lua_pushvalue(L, idx);
    bool host = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return host;
}

vm_t *vm_new(const config_limits_t *limits, const char *lib_dir, char **err)
{
    vm_t *vm = calloc(1, sizeof *vm);
    if (!vm)
        goto nomem;
    vm->limits = *limits;
    vm->lib_dir = lib_dir ? strdup(lib_dir) : NULL;
    vm->L = lua_newstate(vm_alloc, vm);
    if (!vm->L)
        goto nomem;
    *(vm_t **)lua_getextraspace(vm->L) = vm;
    lua_atpanic(vm->L, NULL);
    lua_pushcfunction(vm->L, build_state);
    if (lua_pcall(vm->L, 0, 0, 0) != LUA_OK) {
        *err = strdup(lua_tostring(vm->L, -1));
        vm_free(vm);
        return NULL;
    }
    lua_gc(vm->L, LUA_GCGEN, 0, 0); /* many short-lived call tables: generational suits */
    return vm;
nomem:
    vm_free(vm);
    *err = strdup("out of memory creating a Lua state");
    return NULL;
}

void vm_free(vm_t *vm)
{
    if (!vm)
        return;
    if (vm->L)
        lua_close(vm->L);
    free(vm->lib_dir);
    free(vm);
}

/* ---- running --------------------------------------------------------------------------- */

static void arm_budget(vm_t *vm, lua_State *co, const vm_budget_t *b)
{
    vm->instr_used = b ? b->instructions : 0;
    vm->budget_hit = false;
    vm->mem_hit = false;
    vm->deadline_ns = now_ns() + (long long)vm->limits.cpu_ms * 1000000LL - (b ? b->cpu_ns : 0);
    lua_sethook(co, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
}

static char *dup_msg(lua_State *co)
{
    const char *m = lua_tostring(co, -1);
    return strdup(m ? m : "(error object is not a string)");
}

vm_status_t vm_resume(vm_t *vm, lua_State *co, int nargs, int *nres, char **msg, char **trace)
{
    return vm_resume_budget(vm, co, nargs, nres, msg, trace, NULL);
}

/* Runs co under the budget (resumed, or its top function called protected) and says how it
 * ended; on failure the error value is left on co's stack. */
static vm_status_t run(vm_t *vm, lua_State *co, int nargs, int *nres, bool resume, char **msg,
                       vm_budget_t *b)
{
    *msg = NULL;
    lua_State *outer = vm->running;
    vm->running = co;
    arm_budget(vm, co, b);
    long long t0 = now_ns();
    int rc = resume ? lua_resume(co, vm->L, nargs, nres) : lua_pcall(co, nargs, 0, 0);
    /* The hook stays on co: should a script ever resume this thread (coroutine.running() kept
     * in a global), it runs under that call's budget, not free. */
    vm->running = outer;
    if (b) {
        b->instructions = vm->instr_used;
        b->cpu_ns += now_ns() - t0;
    }
    if (rc == LUA_OK && !vm->budget_hit)
        return VM_OK;
    if (vm->budget_hit) { /* raised, or yielded from the hook: co is never resumed */
        if (rc == LUA_OK && !resume) { /* a tail call returned past the kill: vm_pcall pops */
            vm_host_begin(vm);
            lua_pushnil(co);
            vm_host_end(vm);
        }
        char buf[160];
        snprintf(buf, sizeof buf, "exceeded its budget (cpu_ms=%d, instructions=%lld)",
                 vm->limits.cpu_ms, vm->limits.instructions);
        *msg = strdup(buf);
        if (rc == LUA_YIELD && nres)
            *nres = 0;
        return VM_TIMEOUT;
    }
    if (rc == LUA_YIELD)
        return VM_YIELD;
    if (rc == LUA_ERRMEM || vm->mem_hit) {
        char buf[120];
        snprintf(buf, sizeof buf, "ran out of memory (memory_mb=%zu)",
                 vm->limits.memory_bytes >> 20);
        *msg = strdup(buf);
        lua_gc(vm->L, LUA_GCCOLLECT, 0);
        return VM_NOMEM;
    }
    *msg = dup_msg(co);
    return VM_ERROR;
}

vm_status_t vm_resume_budget(vm_t *vm, lua_State *co, int nargs, int *nres, char **msg,
                             char **trace, vm_budget_t *b)
{
    if (trace)
        *trace = NULL;
    vm_status_t st = run(vm, co, nargs, nres, true, msg, b);
    if (st == VM_ERROR && trace) {
        luaL_traceback(vm->L, co, *msg, 0);
        *trace = strdup(lua_tostring(vm->L, -1));
        lua_pop(vm->L, 1);
    }
    return st;
}

vm_status_t vm_pcall(vm_t *vm, lua_State *co, int nargs, char **msg, vm_budget_t *b)
{
    vm_status_t st = run(vm, co, nargs, NULL, false, msg, b);
    if (st != VM_OK)
        lua_pop(co, 1); /* the error value */
    return st;
}

int vm_load_file(vm_t *vm, const char *path, vm_phase_t phase, char **err)
{
    lua_State *L = vm->L;
    int top = lua_gettop(L);
    int rc = -1;
    if (treefile_load_path(L, path) != LUA_OK) {
        *err = dup_msg(L);
        goto done;
    }
    /* stack: chunk — its own globals, reads falling through to the base */
    vm_push_script_env(L, path);
    lua_setupvalue(L, -2, 1);

    lua_State *co = vm_new_thread(L);
    lua_insert(L, -2);
    lua_xmove(L, co, 1); /* stack: thread; co: chunk */
    vm->phase = phase;
    vm->loading_file = path;
    int nres = 0;
    char *trace = NULL;
    vm_status_t st = vm_resume(vm, co, 0, &nres, err, &trace);
    vm->phase = VM_PHASE_IDLE;
    vm->loading_file = NULL;
    free(trace);
    if (st == VM_OK) {
        rc = 0;
    } else if (st == VM_YIELD) {
        *err = strdup("a script may not yield while loading");
    } else if (st != VM_ERROR) {
        char *m = *err;
        size_t n = strlen(path) + strlen(m) + 32;
        *err = malloc(n);
        if (*err)
            snprintf(*err, n, "%s: loading %s", path, m);
        free(m);
    }
done:
    lua_settop(L, top);
    return rc;
}
