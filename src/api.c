/* The mcp module. Every function opens the same way: argument checks, then work. */
#include "luamcp/api.h"

#include <lauxlib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luamcp/api_crypto.h"
#include "luamcp/conv.h"
#include "luamcp/log.h"
#include "luamcp/tool.h"
#include "luamcp/vm.h"

#define JSON_MAX_TEXT (16u << 20)

/* The vm behind L, or NULL inside the loadable module (no host). */
static vm_t *host_vm(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "luamcp.vm");
    vm_t *vm = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return vm;
}

/* ---- mcp.tool --------------------------------------------------------------------------- */

static int l_tool(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    vm_t *vm = host_vm(L);
    if (vm && vm_phase(vm) != VM_PHASE_LOAD)
        return luaL_error(L, "mcp.tool can only be called while scripts are loading");
    lua_settop(L, 1);
    tool_t t;
    char *err = NULL;
    if (tool_from_def(L, 1, &t, &err) != 0) {
        luaL_where(L, 1);
        lua_pushfstring(L, "%s%s", lua_tostring(L, -1), err ? err : "invalid tool");
        free(err);
        return lua_error(L);
    }
    tool_clear(&t);
    lua_Debug ar;
    int line = lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) ? ar.currentline : 0;
    /* append { def, file, line } to the pending list */
    if (lua_getfield(L, LUA_REGISTRYINDEX, API_PENDING) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, API_PENDING);
    }
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "def");
    lua_pushstring(L, vm && vm_loading_file(vm) ? vm_loading_file(vm)
                                                : (line ? ar.short_src : "?"));
    lua_setfield(L, -2, "file");
    lua_pushinteger(L, line);
    lua_setfield(L, -2, "line");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
    return 1; /* the definition */
}

/* ---- mcp.json ---------------------------------------------------------------------------- */

static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    char *err = NULL;
    json_t *v = conv_to_json(L, 1, &err);
    if (!v) {
        luaL_pushfail(L);
        lua_pushstring(L, err ? err : "cannot encode");
        free(err);
        return 2;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!s)
        return luaL_error(L, "out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (len > JSON_MAX_TEXT)
        return luaL_error(L, "mcp.json.decode: text larger than 16 MiB");
    json_error_t je;
    json_t *v = json_loadb(s, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!v) {
        luaL_pushfail(L);
        lua_pushfstring(L, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return 2;
    }
    char *err = NULL;
    int rc = conv_push_json(L, v, &err);
    json_decref(v);
    if (rc != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err ? err : "cannot decode");
        free(err);
        return 2;
    }
    return 1;
}

/* ---- small things ----------------------------------------------------------------------- */

static int l_log(lua_State *L)
{
    const char *level = luaL_checkstring(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    int lv = log_level_parse(level);
    if (lv < 0)
        return luaL_argerror(L, 1, "level must be debug, info, notice, warning or error");
    lua_Debug ar;
    const char *where = lua_getstack(L, 1, &ar) && lua_getinfo(L, "S", &ar) ? ar.short_src : "?";
    log_msg((enum log_level)lv, "lua %s: %s", where, msg);
    return 0;
}

static int l_time(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9);
    return 1;
}

static int l_monotonic_ms(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    return 1;
}

static int mark(lua_State *L, const char *conv_mt)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    else
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_getmetatable(L, conv_mt);
    lua_setmetatable(L, 1);
    return 1;
}

static int l_array(lua_State *L) { return mark(L, CONV_ARRAY_MT); }
static int l_object(lua_State *L) { return mark(L, CONV_OBJECT_MT); }

/* ---- content helpers -------------------------------------------------------------------- */

static void new_content(lua_State *L, const char *type, int nfields)
{
    lua_createtable(L, 0, nfields + 1);
    luaL_setmetatable(L, API_CONTENT_MT);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
}

static int l_text(lua_State *L)
{
    luaL_checkstring(L, 1);
    bool annotated = !lua_isnoneornil(L, 2);
    if (annotated)
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2); /* stack: text, annotations|nil */
    new_content(L, "text", 2);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "text");
    if (annotated) {
        lua_pushvalue(L, 2);
        lua_setfield(L, -2, "annotations");
    }
    return 1;
}

static int binary_content(lua_State *L, const char *type)
{
    luaL_checkstring(L, 1); /* base64 data */
    luaL_checkstring(L, 2); /* MIME type */
    new_content(L, type, 2);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "data");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "mimeType");
    return 1;
}

static int l_image(lua_State *L) { return binary_content(L, "image"); }
static int l_audio(lua_State *L) { return binary_content(L, "audio"); }

/* Copies string/number fields of the table at 1 into the table on top. */
static void copy_fields(lua_State *L, const char *const *fields, const char *required)
{
    for (int i = 0; fields[i]; i++) {
        int t = lua_getfield(L, 1, fields[i]);
        if (t == LUA_TNIL && required && strstr(required, fields[i]))
            luaL_error(L, "field '%s' is required", fields[i]);
        lua_setfield(L, -2, fields[i]);
    }
}

static int l_resource_link(lua_State *L)
{
    static const char *const fields[] = {"uri", "name", "title", "description", "mimeType",
                                         "size", "annotations", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    new_content(L, "resource_link", 7);
    copy_fields(L, fields, "uri name");
    return 1;
}

static int l_resource(lua_State *L)
{
    static const char *const fields[] = {"uri", "mimeType", "text", "blob", NULL};
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "text");
    lua_getfield(L, 1, "blob");
    if (lua_isnil(L, -1) == lua_isnil(L, -2))
        return luaL_error(L, "mcp.resource needs exactly one of 'text' or 'blob'");
    lua_pop(L, 2);
    new_content(L, "resource", 1);
    lua_createtable(L, 0, 4);
    copy_fields(L, fields, "uri");
    lua_setfield(L, -2, "resource");
    return 1;
}

static int l_result(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, API_RESULT_MT);
    return 1;
}

void api_push_mcp(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"tool", l_tool},       {"log", l_log},       {"time", l_time},
        {"monotonic_ms", l_monotonic_ms},             {"array", l_array},
        {"object", l_object},   {"text", l_text},     {"image", l_image},
        {"audio", l_audio},     {"resource_link", l_resource_link},
        {"resource", l_resource}, {"result", l_result}, {NULL, NULL}};
    static const luaL_Reg json_fns[] = {
        {"encode", l_json_encode}, {"decode", l_json_decode}, {NULL, NULL}};

    conv_init(L);
    luaL_newmetatable(L, API_CONTENT_MT);
    lua_pop(L, 1);
    luaL_newmetatable(L, API_RESULT_MT);
    lua_pop(L, 1);

    luaL_newlib(L, fns);
    luaL_newlib(L, json_fns);
    lua_setfield(L, -2, "json");
    conv_push_null(L);
    lua_setfield(L, -2, "null");
    api_crypto_push(L);
    lua_setfield(L, -2, "crypto");
    api_encoding_push(L);
    lua_setfield(L, -2, "encoding");
}
