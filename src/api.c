/* The mcp module. Every function opens the same way: argument checks, then work. */
#include "luamcp/api.h"

#include "api_http.h"

#include <lauxlib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luamcp/api_crypto.h"
#include "luamcp/avail.h"
#include "luamcp/cache.h"
#include "luamcp/catalog.h"
#include "luamcp/secret.h"
#include "luamcp/conv.h"
#include "luamcp/jsonio.h"
#include "luamcp/log.h"
#include "luamcp/policy.h"
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

/* Appends { def = arg 1, file, line } to the registry list named list: the declarations the
 * host collects after loading a file. */
/* "file:line: " of the script calling us, with the whole file name: luaL_where shortens long
 * paths to "...", which an operator cannot use. */
static void push_where(lua_State *L)
{
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
        const char *src = ar.source && ar.source[0] == '@' ? ar.source + 1 : ar.short_src;
        lua_pushfstring(L, "%s:%d: ", src, ar.currentline);
        return;
    }
    luaL_where(L, 1);
}

static void remember_kind(lua_State *L, const char *list, const char *file, int line,
                          const char *kind)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, list) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, list);
    }
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "def");
    lua_pushstring(L, file);
    lua_setfield(L, -2, "file");
    lua_pushinteger(L, line);
    lua_setfield(L, -2, "line");
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

static void remember(lua_State *L, const char *list, const char *file, int line)
{
    remember_kind(L, list, file, line, "tool");
}

#define OWNERS "luamcp.owners" /* registry: { ["<kind> <name>"] = file that declares it } */

/* Records that file declares the entry (kind, name): mcp.disable and mcp.enable switch only
 * entries of the calling script's own file. Nothing without a file (mcp.so: no host). */
static void remember_owner(lua_State *L, avail_kind_t kind, const char *name, const char *file)
{
    if (!file || !name)
        return;
    if (lua_getfield(L, LUA_REGISTRYINDEX, OWNERS) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, OWNERS);
    }
    lua_pushfstring(L, "%d %s", (int)kind, name);
    lua_pushstring(L, file);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* mcp.tool, mcp.prompt, mcp.static_resource and mcp.resource_template: checked now, collected
 * by the host in the file's order (API_PENDING entries of their kind). Returns the definition. */
static int declare(lua_State *L, const char *kind, const char *fn)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    vm_t *vm = host_vm(L);
    if (vm && vm_phase(vm) != VM_PHASE_LOAD)
        return luaL_error(L, "%s can only be called while scripts are loading", fn);
    lua_settop(L, 1);
    char *err = NULL;
    int rc;
    const char *file = vm ? vm_loading_file(vm) : NULL;
    if (strcmp(kind, "tool") == 0) {
        tool_t t;
        if ((rc = tool_from_def(L, 1, &t, &err)) == 0) {
            remember_owner(L, AVAIL_TOOL, t.name, file);
            tool_clear(&t);
        }
    } else if (strcmp(kind, "prompt") == 0) {
        prompt_t p;
        if ((rc = prompt_from_def(L, 1, &p, &err)) == 0) {
            remember_owner(L, AVAIL_PROMPT, p.name, file);
            prompt_clear(&p);
        }
    } else {
        resource_t r;
        if ((rc = resource_from_def(L, 1, strcmp(kind, "template") == 0, &r, &err)) == 0) {
            remember_owner(L, AVAIL_RESOURCE, r.key, file);
            resource_clear(&r);
        }
    }
    if (rc != 0) {
        push_where(L);
        lua_pushfstring(L, "%s%s", lua_tostring(L, -1), err ? err : "invalid declaration");
        free(err);
        return lua_error(L);
    }
    lua_Debug ar;
    int line = lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) ? ar.currentline : 0;
    remember_kind(L, API_PENDING, vm && vm_loading_file(vm) ? vm_loading_file(vm)
                                                            : (line ? ar.short_src : "?"),
                  line, kind);
    return 1;
}

static void (*resource_updated_hook)(const char *uri);

void api_set_resource_updated_hook(void (*hook)(const char *uri))
{
    resource_updated_hook = hook;
}

/* mcp.resource_updated(uri): notifications/resources/updated to every session subscribed to
 * uri (on its GET stream). True when a server is there to send it. */
static int l_resource_updated(lua_State *L)
{
    size_t n;
    const char *uri = luaL_checklstring(L, 1, &n);
    if (n == 0 || n > 2048 || strlen(uri) != n)
        return luaL_argerror(L, 1, "a URI of 1 to 2048 bytes");
    if (resource_updated_hook)
        resource_updated_hook(uri);
    lua_pushboolean(L, resource_updated_hook != NULL);
    return 1;
}

/* The kind and name of mcp.enable / mcp.disable / mcp.enabled, checked. Switching is for
 * handlers only: a switch flipped while a script loads would flip again at every reload, and
 * a policy decides, it does not act. */
static avail_kind_t switch_args(lua_State *L, const char *fn, bool setting, const char **name)
{
    vm_t *vm = host_vm(L);
    if (setting && vm && vm_phase(vm) != VM_PHASE_TOOL)
        luaL_error(L, "%s: only a handler can switch tools, prompts and resources (not a "
                      "script while it loads, nor a policy)", fn);
    int kind = avail_kind_of(luaL_checkstring(L, 1));
    if (kind < 0)
        luaL_argerror(L, 1, "\"tool\", \"prompt\" or \"resource\"");
    size_t n;
    *name = luaL_checklstring(L, 2, &n);
    if (n == 0 || n > AVAIL_NAME_MAX || strlen(*name) != n)
        luaL_argerror(L, 2, "a name (a resource's URI or URI template) of 1 to 2048 bytes");
    return (avail_kind_t)kind;
}

/* Raises unless the script calling fn declares (kind, name) in its own file: one author's
 * handler must not switch off another author's tool for everyone. */
static void check_own_entry(lua_State *L, const char *fn, avail_kind_t kind, const char *name)
{
    if (!host_vm(L))
        return; /* mcp.so in specs: no host, no files */
    static const char *const words[AVAIL_KINDS] = {"tool", "prompt", "resource"};
    const char *owner = NULL, *caller = NULL;
    if (lua_getfield(L, LUA_REGISTRYINDEX, OWNERS) == LUA_TTABLE) {
        lua_pushfstring(L, "%d %s", (int)kind, name);
        lua_rawget(L, -2);
        owner = lua_tostring(L, -1); /* stays on the stack until we return */
    }
    if (vm_push_owner_file(L))
        caller = lua_tostring(L, -1);
    if (owner && caller && strcmp(owner, caller) == 0)
        return;
    if (!owner)
        luaL_error(L, "%s: no %s named '%s' is declared (a script may switch only the tools, "
                      "prompts and resources its own file declares)", fn, words[kind], name);
    luaL_error(L, "%s: %s '%s' is declared by another script (%s); a script may switch only "
                  "the tools, prompts and resources its own file declares", fn, words[kind],
               name, owner);
}

/* mcp.disable(kind, name) / mcp.enable(kind, name): true when the switch moved (clients
 * listening for that kind's list are told), false when it already was so. */
static int set_switch(lua_State *L, bool on)
{
    const char *fn = on ? "mcp.enable" : "mcp.disable", *name;
    avail_kind_t kind = switch_args(L, fn, true, &name);
    check_own_entry(L, fn, kind, name);
    int rc = avail_set(kind, name, on);
    if (rc < 0)
        return luaL_error(L, "%s: %d entries are switched off already", fn, AVAIL_MAX);
    lua_pushboolean(L, rc == 1);
    return 1;
}

static int l_enable(lua_State *L) { return set_switch(L, true); }
static int l_disable(lua_State *L) { return set_switch(L, false); }

static int l_enabled(lua_State *L)
{
    const char *name;
    avail_kind_t kind = switch_args(L, "mcp.enabled", false, &name);
    lua_pushboolean(L, avail_on(kind, name));
    return 1;
}

static int l_prompt(lua_State *L) { return declare(L, "prompt", "mcp.prompt"); }
static int l_static_resource(lua_State *L)
{
    return declare(L, "resource", "mcp.static_resource");
}
static int l_resource_template(lua_State *L)
{
    return declare(L, "template", "mcp.resource_template");
}


static int l_tool(lua_State *L) { return declare(L, "tool", "mcp.tool"); }

/* ---- mcp.policy and decisions ---------------------------------------------------------- */

static int l_policy(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    vm_t *vm = host_vm(L);
    if (vm && vm_phase(vm) != VM_PHASE_LOAD_POLICY)
        return luaL_error(L, "mcp.policy can only be called while policy files load "
                             "(put it in the policies directory)");
    lua_settop(L, 1);
    lua_Debug ar;
    int line = lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) ? ar.currentline : 0;
    const char *file = vm && vm_loading_file(vm) ? vm_loading_file(vm) : line ? ar.short_src : "?";
    policy_rule_t *r = NULL;
    char *err = NULL;
    if (policy_rule_from_def(L, 1, file, line, &r, &err) != 0) {
        push_where(L);
        lua_pushfstring(L, "%s%s", lua_tostring(L, -1), err ? err : "invalid policy");
        free(err);
        return lua_error(L);
    }
    policy_rule_unref(L, r);
    policy_rule_free(r);
    remember(L, API_PENDING_POLICIES, file, line);
    return 1;
}

static int decision(lua_State *L, const char *kind)
{
    lua_createtable(L, 0, 3);
    luaL_setmetatable(L, API_DECISION_MT);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    return 1;
}

static int l_allow(lua_State *L) { return decision(L, "allow"); }

static int l_deny(lua_State *L)
{
    const char *reason = luaL_optstring(L, 1, "denied by policy");
    decision(L, "deny");
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
    return 1;
}

/* mcp.challenge(scopes [, reason]): scopes is a string or a list of strings */
static int l_challenge(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) {
        lua_createtable(L, 1, 0);
        lua_pushvalue(L, 1);
        lua_rawseti(L, -2, 1);
        lua_replace(L, 1);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *reason = luaL_optstring(L, 2, "more scopes are needed");
    decision(L, "challenge");
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "scopes");
    lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
    return 1;
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
    size_t len;
    char *s = jsonio_dump(v, &len);
    json_decref(v);
    if (!s)
        return luaL_error(L, "out of memory");
    lua_pushlstring(L, s, len);
    free(s);
    return 1;
}

int api_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (len > JSON_MAX_TEXT)
        return luaL_error(L, "mcp.json.decode: text larger than 16 MiB");
    json_error_t je;
    json_t *v =
        jsonio_parse(s, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
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

/* Gives the script's table at 1 the host metatable `mt`, as setmetatable would: a table whose
 * metatable is protected (a read-only proxy of the shared libraries, ctx, a caller) keeps it,
 * or mcp.object(string) would strip the proxy and let the next write reach every script. */
static void set_host_mt(lua_State *L, const char *mt, const char *fn)
{
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        luaL_error(L, "%s: cannot change a protected metatable (a read-only table)", fn);
    luaL_setmetatable(L, mt);
}

static int mark(lua_State *L, const char *conv_mt, const char *fn)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    else
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    set_host_mt(L, conv_mt, fn);
    return 1;
}

static int l_array(lua_State *L) { return mark(L, CONV_ARRAY_MT, "mcp.array"); }
static int l_object(lua_State *L) { return mark(L, CONV_OBJECT_MT, "mcp.object"); }

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
    set_host_mt(L, API_RESULT_MT, "mcp.result");
    return 1;
}

/* ---- the verified caller (ctx.auth, a policy's caller) ----------------------------------- */

/* The scope set's metatable carries this tag, so a method handed some other table (a forged
 * one with its own "set" or "list") refuses it instead of reading what it should not. */
static const char scopes_tag;

/* Pushes field (a table) of the real scope set at self's metatable; raises otherwise. */
static void scopes_field(lua_State *L, int self, const char *field)
{
    if (!lua_istable(L, self) || !lua_getmetatable(L, self))
        luaL_error(L, "expected ctx.auth.scopes");
    lua_pushlightuserdata(L, (void *)&scopes_tag);
    bool real = lua_rawget(L, -2) == LUA_TBOOLEAN;
    lua_pop(L, 1);
    if (!real || lua_getfield(L, -1, field) != LUA_TTABLE)
        luaL_error(L, "expected ctx.auth.scopes");
    lua_remove(L, -2); /* the metatable */
}

static bool scopes_contains(lua_State *L, int self, const char *scope)
{
    scopes_field(L, self, "set");
    bool has = lua_getfield(L, -1, scope) == LUA_TBOOLEAN;
    lua_pop(L, 2);
    return has;
}

static int scopes_has(lua_State *L)
{
    lua_pushboolean(L, scopes_contains(L, 1, luaL_checkstring(L, 2)));
    return 1;
}

/* scopes:all{...} and scopes:any{...} */
static int scopes_quantify(lua_State *L, bool all)
{
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 2);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        bool has = scopes_contains(L, 1, luaL_checkstring(L, -1));
        lua_pop(L, 1);
        if (has != all) {
            lua_pushboolean(L, !all);
            return 1;
        }
    }
    lua_pushboolean(L, all);
    return 1;
}

static int scopes_all(lua_State *L) { return scopes_quantify(L, true); }
static int scopes_any(lua_State *L) { return scopes_quantify(L, false); }

static int scopes_list(lua_State *L)
{
    scopes_field(L, 1, "list");
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        lua_rawseti(L, -2, i);
    }
    luaL_setmetatable(L, CONV_ARRAY_MT);
    return 1;
}

/* Only the methods are there: membership is scopes:has(x). Indexing a scope name would be
 * ambiguous (a scope named "all" would read as the method, truthy for everyone), so it is an
 * error that says what to write instead. */
static int scopes_index(lua_State *L)
{
    const char *k = luaL_checkstring(L, 2);
    static const luaL_Reg methods[] = {{"has", scopes_has}, {"all", scopes_all},
                                       {"any", scopes_any}, {"list", scopes_list}, {NULL, NULL}};
    for (int i = 0; methods[i].name; i++)
        if (strcmp(k, methods[i].name) == 0) {
            lua_pushcfunction(L, methods[i].func);
            return 1;
        }
    return luaL_error(L, "scopes has no field '%s': write scopes:has(\"%s\")", k, k);
}

static int scopes_len(lua_State *L)
{
    scopes_field(L, 1, "list");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

static void push_scopes(lua_State *L, const auth_caller_t *c)
{
    lua_newtable(L);                              /* proxy */
    lua_createtable(L, 0, 6);                     /* proxy, mt */
    lua_createtable(L, 0, (int)c->n_scopes);      /* proxy, mt, set */
    lua_createtable(L, (int)c->n_scopes, 0);      /* proxy, mt, set, list */
    for (size_t i = 0; i < c->n_scopes; i++) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -3, c->scopes[i]);
        lua_pushstring(L, c->scopes[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -3, "list");
    lua_setfield(L, -2, "set");
    lua_pushcfunction(L, scopes_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, vm_readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, scopes_len);
    lua_setfield(L, -2, "__len");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushlightuserdata(L, (void *)&scopes_tag);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_setmetatable(L, -2);
}

static void push_opt_string(lua_State *L, const char *s)
{
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
}

void api_push_caller(lua_State *L, const auth_caller_t *c)
{
    lua_createtable(L, 0, 6);
    push_opt_string(L, c->subject);
    lua_setfield(L, -2, "subject");
    push_opt_string(L, c->client_id);
    lua_setfield(L, -2, "client_id");
    push_opt_string(L, c->issuer);
    lua_setfield(L, -2, "issuer");
    lua_pushinteger(L, c->expires_at);
    lua_setfield(L, -2, "expires_at");
    push_scopes(L, c);
    lua_setfield(L, -2, "scopes");
    char *err = NULL;
    if (conv_push_json(L, c->claims, &err) != 0) {
        free(err);
        lua_pushnil(L);
    }
    lua_setfield(L, -2, "claims");
    vm_make_readonly(L);
}

bool api_has_mt(lua_State *L, int idx, const char *name)
{
    if (!lua_getmetatable(L, idx))
        return false;
    luaL_getmetatable(L, name);
    bool eq = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return eq;
}

void api_push_mcp(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"tool", l_tool},       {"log", l_log},       {"time", l_time},
        {"monotonic_ms", l_monotonic_ms},             {"array", l_array},
        {"object", l_object},   {"text", l_text},     {"image", l_image},
        {"audio", l_audio},     {"resource_link", l_resource_link},
        {"resource", l_resource}, {"result", l_result},  {"policy", l_policy},
        {"allow", l_allow},     {"deny", l_deny},     {"challenge", l_challenge},
        {"prompt", l_prompt},   {"static_resource", l_static_resource},
        {"resource_template", l_resource_template},
        {"resource_updated", l_resource_updated}, {"enable", l_enable},
        {"disable", l_disable}, {"enabled", l_enabled}, {"sleep", api_sleep}, {NULL, NULL}};
    static const luaL_Reg json_fns[] = {
        {"encode", l_json_encode}, {"decode", api_json_decode}, {NULL, NULL}};

    conv_init(L);
    luaL_newmetatable(L, API_CONTENT_MT);
    lua_pop(L, 1);
    luaL_newmetatable(L, API_RESULT_MT);
    lua_pop(L, 1);
    luaL_newmetatable(L, API_DECISION_MT);
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
    cache_push_api(L);
    lua_setfield(L, -2, "cache");
    secret_push_api(L);
    lua_setfield(L, -2, "secret");
    api_http_push(L);
    lua_setfield(L, -2, "http");
    api_oauth_push(L); /* last: it is written over the fields above */
    lua_setfield(L, -2, "oauth");
}
