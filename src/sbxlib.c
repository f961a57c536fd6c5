/* The sandbox's xpcall, string.rep and table functions: see sbxlib.h. */
#include "luamcp/sbxlib.h"

#include <lauxlib.h>
#include <string.h>

#include "luamcp/vm.h"

#define CHARGE_EVERY 1024 /* elements between budget checks in the table loops */

static int budget_error(lua_State *L, const char *fn)
{
    return luaL_error(L, "budget exceeded (in %s)", fn);
}

/* Charges one element of a loop; raises when the budget is spent. */
static void tick(lua_State *L, lua_Integer i, const char *fn)
{
    if (i > 0 && (i & (CHARGE_EVERY - 1)) == 0 && !vm_charge(L, CHARGE_EVERY))
        budget_error(L, fn);
}

/* ---- xpcall ----------------------------------------------------------------------------- */

/* The message handler xpcall installs: the script's handler, unless the budget is spent. An
 * error the budget hook raises would otherwise call the script's handler again and again (and
 * Lua runs a handler for an error raised in a hook with hooks off). */
static int guarded_handler(lua_State *L)
{
    if (vm_budget_spent(L))
        return 1; /* the error as it is */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int xpcall_done(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra; /* true and the results */
}

static int sbx_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2); /* stack: f, handler, args... */
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* stack: f, handler, true, f, args... */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done);
    return xpcall_done(L, status, 2);
}

/* ---- string.rep ------------------------------------------------------------------------- */

/* string.rep(s, n [, sep]): an empty result returns at once (the library's loop ran n times
 * copying nothing); a result past the memory cap fails as its allocation, before any copy. */
static int sbx_rep(lua_State *L)
{
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || (l == 0 && lsep == 0)) {
        lua_pushliteral(L, "");
        return 1;
    }
    size_t unit = l + lsep;
    if ((lua_Unsigned)n > (((size_t)-1 >> 1) + lsep) / unit)
        return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * unit - lsep;
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, total);
    if (!vm_charge(L, (long long)(total / 64)))
        return budget_error(L, "string.rep");
    for (lua_Integer i = 0; i < n; i++) {
        memcpy(p, s, l);
        p += l;
        if (lsep && i + 1 < n) {
            memcpy(p, sep, lsep);
            p += lsep;
        }
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

/* ---- table functions -------------------------------------------------------------------- */

/* table.move(a1, f, e, t [, a2]) */
static int sbx_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int dst = lua_isnoneornil(L, 5) ? 1 : 5;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, dst, LUA_TTABLE);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        bool forward = t > e || t <= f || (dst != 1 && !lua_rawequal(L, 1, dst));
        for (lua_Integer i = 0; i < n; i++) {
            lua_Integer k = forward ? i : n - 1 - i;
            tick(L, i, "table.move");
            lua_geti(L, 1, f + k);
            lua_seti(L, dst, t + k);
        }
    }
    lua_pushvalue(L, dst);
    return 1;
}

/* table.concat(list [, sep [, i [, j]]]) */
static int sbx_concat(lua_State *L)
{
    size_t lsep;
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    lua_Integer last = lua_isnoneornil(L, 4) ? luaL_len(L, 1) : luaL_checkinteger(L, 4);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (lua_Integer k = 0; i <= last; i++, k++) {
        tick(L, k, "table.concat");
        lua_geti(L, 1, i);
        if (!lua_isstring(L, -1))
            return luaL_error(L, "invalid value (%s) at index %I in table for 'concat'",
                              luaL_typename(L, -1), i);
        luaL_addvalue(&b);
        if (i == last)
            break; /* i + 1 could overflow */
        luaL_addlstring(&b, sep, lsep);
    }
    luaL_pushresult(&b);
    return 1;
}

/* table.insert(list, [pos,] value) */
static int sbx_insert(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer e = luaL_len(L, 1) + 1; /* first empty element */
    lua_Integer pos;
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        for (lua_Integer i = e, k = 0; i > pos; i--, k++) {
            tick(L, k, "table.insert");
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

/* table.remove(list [, pos]) */
static int sbx_remove(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer size = luaL_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    lua_geti(L, 1, pos); /* the result */
    for (lua_Integer k = 0; pos < size; pos++, k++) {
        tick(L, k, "table.remove");
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

/* table.sort(list [, comp]): a heapsort of our own, whose comparisons are charged to the
 * budget (the library's quicksort runs in C between them, and a __len or __index in C can
 * make it sort billions of elements). Not stable, like the library's. */
typedef struct sorter {
    lua_State *L;
    bool comp;
    lua_Integer steps;
} sorter_t;

static bool sort_less(sorter_t *s, lua_Integer a, lua_Integer b)
{
    lua_State *L = s->L;
    tick(L, ++s->steps, "table.sort");
    if (s->comp) {
        lua_pushvalue(L, 2);
        lua_geti(L, 1, a);
        lua_geti(L, 1, b);
        lua_call(L, 2, 1);
        bool r = lua_toboolean(L, -1);
        lua_pop(L, 1);
        return r;
    }
    lua_geti(L, 1, a);
    lua_geti(L, 1, b);
    bool r = lua_compare(L, -2, -1, LUA_OPLT);
    lua_pop(L, 2);
    return r;
}

static void sort_swap(lua_State *L, lua_Integer a, lua_Integer b)
{
    lua_geti(L, 1, a);
    lua_geti(L, 1, b);
    lua_seti(L, 1, a);
    lua_seti(L, 1, b);
}

/* heap of elements 1..n: the child k of a node is 2k and 2k+1 */
static void sift_down(sorter_t *s, lua_Integer root, lua_Integer n)
{
    while (root <= n / 2) {
        lua_Integer child = 2 * root;
        if (child < n && sort_less(s, child, child + 1))
            child++;
        if (!sort_less(s, root, child))
            return;
        sort_swap(s->L, root, child);
        root = child;
    }
}

static int sbx_sort(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n < 0x7fffffff, 1, "array too big");
    sorter_t s = {L, !lua_isnoneornil(L, 2), 0};
    if (s.comp)
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    for (lua_Integer i = n / 2; i >= 1; i--)
        sift_down(&s, i, n);
    for (lua_Integer end = n; end > 1; end--) {
        sort_swap(L, 1, end);
        sift_down(&s, 1, end - 1);
    }
    return 0;
}

/* ---- coroutines ------------------------------------------------------------------------ */

/* coroutine.resume and coroutine.close over Lua's own (upvalue 1), refusing the host's threads:
 * a script reaches its call's thread through coroutine.running() and could keep it for a later
 * call to resume or close while the host still waits on it (see vm_new_thread). */
static int host_thread_refused(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    return vm_is_host_thread(L, 1);
}

static int call_original(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int sbx_resume(lua_State *L)
{
    if (host_thread_refused(L)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume a call's own thread (only the server runs it)");
        return 2;
    }
    return call_original(L);
}

static int sbx_close(lua_State *L)
{
    if (host_thread_refused(L))
        return luaL_error(L, "cannot close a call's own thread (only the server runs it)");
    return call_original(L);
}

/* ---- patching --------------------------------------------------------------------------- */

/* stack: ... -> ..., the library table as luaL_requiref left it in the registry */
static void push_loaded(lua_State *L, const char *name)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

void sbx_patch_libs(lua_State *L)
{
    static const luaL_Reg table_fns[] = {{"move", sbx_move},     {"concat", sbx_concat},
                                         {"insert", sbx_insert}, {"remove", sbx_remove},
                                         {"sort", sbx_sort},     {NULL, NULL}};
    lua_pushcfunction(L, sbx_xpcall); /* stack: G, base */
    lua_setfield(L, -2, "xpcall");
    push_loaded(L, "table");
    luaL_setfuncs(L, table_fns, 0);
    lua_pop(L, 1);
    push_loaded(L, "string");
    lua_pushcfunction(L, sbx_rep);
    lua_setfield(L, -2, "rep");
    sbx_patch_patterns(L);
    lua_pop(L, 1);
    push_loaded(L, "coroutine");
    static const luaL_Reg co_fns[] = {{"resume", sbx_resume}, {"close", sbx_close}};
    for (size_t i = 0; i < sizeof co_fns / sizeof co_fns[0]; i++) {
        lua_getfield(L, -1, co_fns[i].name);
        lua_pushcclosure(L, co_fns[i].func, 1);
        lua_setfield(L, -2, co_fns[i].name);
    }
    lua_pop(L, 1);
}
