/* mcp.so — the mcp module loadable by a stock lua5.4 interpreter, for busted specs.
 * No host here: mcp.tool works at any time and records what it is given. */
#include <lauxlib.h>
#include <lua.h>

#include "luamcp/api.h"

int luaopen_mcp(lua_State *L);

/* mcp._loaded_tools() -> { [name] = def } of every tool declared since the last reset */
static int l_loaded_tools(lua_State *L)
{
    lua_newtable(L);
    if (lua_getfield(L, LUA_REGISTRYINDEX, API_PENDING) != LUA_TTABLE)
        return lua_pop(L, 1), 1;
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);          /* out, pending, entry */
        lua_getfield(L, -1, "def");     /* out, pending, entry, def */
        lua_getfield(L, -1, "name");    /* out, pending, entry, def, name */
        lua_insert(L, -2);
        lua_settable(L, -5);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}

static int l_reset(lua_State *L)
{
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, API_PENDING);
    return 0;
}

int luaopen_mcp(lua_State *L)
{
    api_push_mcp(L);
    lua_pushcfunction(L, l_loaded_tools);
    lua_setfield(L, -2, "_loaded_tools");
    lua_pushcfunction(L, l_reset);
    lua_setfield(L, -2, "_reset");
    return 1;
}
