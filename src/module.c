/* mcp.so — the mcp module loadable by a stock lua5.4 interpreter, for busted specs.
 * No host here: mcp.tool and mcp.policy work at any time and record what they are given.
 *
 * Policies are decided by the host's own code: mcp._load_policies loads policy files into a
 * private sandboxed vm (as the server does, phase VM_PHASE_LOAD_POLICY, with budgets), binds
 * the rules to tool names, and the object it returns decides calls with policy_static and
 * policy_decide for callers given as Lua tables. spec/lua/policy_helper.lua wraps it. */
#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/api.h"
#include "luamcp/cache.h"
#include "luamcp/auth.h"
#include "luamcp/config.h"
#include "luamcp/conv.h"
#include "luamcp/decl.h"
#include "luamcp/log.h"
#include "luamcp/policy.h"
#include "luamcp/secret.h"
#include "luamcp/vm.h"

#define POLICIES_MT "mcp.policies"
#define MAX_CALLER_SCOPES 256

int luaopen_mcp(lua_State *L);

/* mcp._loaded_tools() -> { [name] = def } of every tool declared since the last reset;
 * mcp._loaded_tools("prompt") the prompts, ("resource") static resources by uri,
 * ("template") resource templates by uriTemplate. */
static int l_loaded_tools(lua_State *L)
{
    const char *kind = luaL_optstring(L, 1, "tool");
    const char *key = strcmp(kind, "resource") == 0 ? "uri"
                      : strcmp(kind, "template") == 0 ? "uriTemplate" : "name";
    lua_newtable(L);
    if (lua_getfield(L, LUA_REGISTRYINDEX, API_PENDING) != LUA_TTABLE)
        return lua_pop(L, 1), 1;
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);          /* out, pending, entry */
        lua_getfield(L, -1, "kind");
        bool mine = strcmp(lua_tostring(L, -1), kind) == 0;
        lua_pop(L, 1);
        if (mine) {
            lua_getfield(L, -1, "def");     /* out, pending, entry, def */
            lua_getfield(L, -1, key);       /* out, pending, entry, def, name */
            lua_insert(L, -2);
            lua_settable(L, -5);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 1;
}

static int l_reset(lua_State *L)
{
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, API_PENDING);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, API_PENDING_POLICIES);
    return 0;
}

/* ---- policies -------------------------------------------------------------------------------- */

typedef struct policies {
    vm_t *vm;           /* private: the policy files and their checks live here */
    policy_set_t *ps;   /* bound to tools */
    char **tools;
    size_t n_tools;
    char *unused;       /* "file:line, ..." of rules matching no tool, or NULL */
    bool dev;
    bool quiet;         /* no log lines while deciding (failing checks log errors) */
} policies_t;

static void policies_clear(policies_t *p)
{
    policy_set_free(p->ps); /* before the vm: rules only hold references into it */
    vm_free(p->vm);
    for (size_t i = 0; i < p->n_tools; i++)
        free(p->tools[i]);
    free(p->tools);
    free(p->unused);
    memset(p, 0, sizeof *p);
}

static int policies_gc(lua_State *L)
{
    policies_clear(luaL_checkudata(L, 1, POLICIES_MT));
    return 0;
}

static policies_t *check_policies(lua_State *L)
{
    policies_t *p = luaL_checkudata(L, 1, POLICIES_MT);
    if (!p->ps)
        luaL_error(L, "this policy set was freed");
    return p;
}

/* The load errors, one "file:line: what" per line. */
typedef struct errs {
    char *text;
    size_t len;
} errs_t;

static void add_error(errs_t *e, const char *text)
{
    size_t n = strlen(text);
    char *grown = realloc(e->text, e->len + n + 2);
    if (!grown)
        return;
    e->text = grown;
    if (e->len)
        e->text[e->len++] = '\n';
    memcpy(e->text + e->len, text, n + 1);
    e->len += n;
}

/* Moves the rules the policy file just loaded declared (the private vm's pending list) into
 * ps, as the bundle does. */
static void collect_rules(vm_t *vm, policy_set_t *ps, errs_t *errs)
{
    lua_State *V = vm_lua(vm);
    if (lua_getfield(V, LUA_REGISTRYINDEX, API_PENDING_POLICIES) == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(V, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(V, -1, i);          /* pending, entry */
            lua_getfield(V, -1, "file");
            lua_getfield(V, -2, "line");
            lua_getfield(V, -3, "def");     /* pending, entry, file, line, def */
            const char *file = lua_tostring(V, -3);
            int line = (int)lua_tointeger(V, -2);
            policy_rule_t *r = NULL;
            char *err = NULL;
            if (policy_rule_from_def(V, -1, file ? file : "?", line, &r, &err) != 0) {
                char buf[600];
                snprintf(buf, sizeof buf, "%s:%d: %s", file ? file : "?", line,
                         err ? err : "invalid policy");
                add_error(errs, buf);
                free(err);
            } else if (policy_set_add(ps, r) != 0) {
                add_error(errs, "out of memory");
            }
            lua_pop(V, 4);
        }
    }
    lua_pop(V, 1);
    lua_pushnil(V);
    lua_setfield(V, LUA_REGISTRYINDEX, API_PENDING_POLICIES);
}

/* Field key of the options table at 1 as an integer in [min, max], or dflt when absent. */
static long long opt_int(lua_State *L, int idx, const char *key, long long min, long long max,
                         long long dflt)
{
    if (lua_getfield(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return dflt;
    }
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < min || v > max)
        luaL_error(L, "limits.%s must be an integer from %I to %I", key, (lua_Integer)min,
                   (lua_Integer)max);
    lua_pop(L, 1);
    return v;
}

/* Checks that field key of the table at idx is a list of strings; raises otherwise. Leaves
 * the list on the stack. */
static size_t check_strings(lua_State *L, int idx, const char *key, const char *what)
{
    if (lua_getfield(L, idx, key) != LUA_TTABLE)
        luaL_error(L, "'%s' must list %s", key, what);
    size_t len = (size_t)lua_rawlen(L, -1);
    for (size_t i = 1; i <= len; i++) {
        if (lua_rawgeti(L, -1, (lua_Integer)i) != LUA_TSTRING)
            luaL_error(L, "'%s' must list %s (item %d is not a string)", key, what, (int)i);
        lua_pop(L, 1);
    }
    return len;
}

/* Copies the list of strings on the stack top (checked) into a new array; pops the list. */
static char **copy_strings(lua_State *L, size_t len, size_t *n)
{
    *n = 0;
    char **v = calloc(len ? len : 1, sizeof *v);
    for (size_t i = 0; v && i < len; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        if ((v[*n] = strdup(lua_tostring(L, -1))))
            (*n)++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return v;
}

/* mcp._load_policies{ files = { path, ... }, tools = { name, ... } [, dev = bool]
 *                     [, quiet = bool] [, lib = dir] [, limits = { cpu_ms =, instructions =,
 *                     memory_mb = }] }
 * -> a policy set object, or raises with every problem as "file:line: what" lines. */
static int l_load_policies(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    config_limits_t limits;
    {
        config_t defaults;
        config_defaults(&defaults);
        limits = defaults.limits;
        config_free(&defaults);
    }
    if (lua_getfield(L, 1, "limits") == LUA_TTABLE) {
        limits.cpu_ms = (int)opt_int(L, 2, "cpu_ms", 1, 600000, limits.cpu_ms);
        limits.instructions = opt_int(L, 2, "instructions", 0, LUA_MAXINTEGER,
                                      limits.instructions);
        limits.memory_bytes = (size_t)opt_int(L, 2, "memory_mb", 4, 65536,
                                              (long long)(limits.memory_bytes >> 20)) << 20;
    } else if (!lua_isnil(L, 2)) {
        return luaL_error(L, "'limits' must be a table");
    }
    lua_pop(L, 1);
    const char *lib = NULL;
    if (lua_getfield(L, 1, "lib") != LUA_TNIL && !(lib = lua_tostring(L, -1)))
        return luaL_error(L, "'lib' must be a directory name");
    /* stack: opts, lib|nil */
    lua_getfield(L, 1, "dev");
    lua_getfield(L, 1, "quiet");
    bool dev = lua_toboolean(L, -2), quiet = lua_toboolean(L, -1);
    lua_pop(L, 2);

    /* check the lists before anything is allocated: errors raise */
    check_strings(L, 1, "files", "the policy files to load");
    size_t n_tools = check_strings(L, 1, "tools", "the tool names to bind the rules to");
    lua_pop(L, 2);

    policies_t *p = lua_newuserdatauv(L, sizeof *p, 0); /* stack: opts, lib, p */
    memset(p, 0, sizeof *p);
    luaL_setmetatable(L, POLICIES_MT);
    p->dev = dev;
    p->quiet = quiet;
    char *why = NULL;
    p->vm = vm_new(&limits, lib, &why);
    if (!p->vm) {
        lua_pushstring(L, why ? why : "cannot create a Lua state");
        free(why);
        return lua_error(L);
    }
    p->ps = policy_set_new();
    lua_getfield(L, 1, "tools");
    p->tools = copy_strings(L, n_tools, &p->n_tools);
    if (!p->ps || !p->tools)
        return luaL_error(L, "out of memory");

    errs_t errs = {0};
    lua_getfield(L, 1, "files"); /* stack: opts, lib, p, files */
    lua_Integer nf = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= nf; i++) {
        lua_rawgeti(L, -1, i);
        if (vm_load_file(p->vm, lua_tostring(L, -1), VM_PHASE_LOAD_POLICY, &why) != 0) {
            add_error(&errs, why ? why : "cannot load");
            free(why);
            lua_pushnil(vm_lua(p->vm)); /* drop what the broken file declared */
            lua_setfield(vm_lua(p->vm), LUA_REGISTRYINDEX, API_PENDING_POLICIES);
        } else {
            collect_rules(p->vm, p->ps, &errs);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (errs.len) {
        lua_pushlstring(L, errs.text, errs.len);
        free(errs.text);
        return lua_error(L); /* p is freed by its __gc */
    }
    free(errs.text);
    policy_set_bind(p->ps, p->tools, p->n_tools, &p->unused);
    return 1;
}

/* The index of tool name at idx among the bound tools, or (size_t)-1. */
static size_t tool_at(lua_State *L, const policies_t *p, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    for (size_t i = 0; i < p->n_tools; i++)
        if (strcmp(p->tools[i], name) == 0)
            return i;
    return (size_t)-1;
}

/* Optional string field of the table at idx, raising when it is something else. */
static const char *field_string(lua_State *L, int idx, const char *key)
{
    int t = lua_getfield(L, idx, key);
    const char *s = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (t != LUA_TNIL && t != LUA_TSTRING)
        luaL_error(L, "caller.%s must be a string", key);
    lua_pop(L, 1); /* the string stays alive: the table at idx holds it */
    return s;
}

static void free_caller(auth_caller_t *c)
{
    if (c) {
        c->refs = 1;
        auth_caller_unref(c);
    }
}

/* The caller table at idx as an auth_caller_t (NULL for nil: auth off). Fields: subject,
 * client_id, issuer (strings), expires_at (integer), scopes (a list of strings, or one
 * space-separated string), claims (a table, JSON-convertible to an object). */
static auth_caller_t *to_caller(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return NULL;
    luaL_checktype(L, idx, LUA_TTABLE);
    idx = lua_absindex(L, idx);
    static const char *const known[] = {"subject", "client_id", "issuer", "expires_at",
                                        "scopes", "claims", NULL};
    const char *unknown = decl_unknown_key(L, idx, known);
    if (unknown)
        luaL_error(L, "caller: unknown field '%s' (fields: subject, client_id, issuer, "
                      "expires_at, scopes, claims)", unknown);
    const char *subject = field_string(L, idx, "subject");
    const char *client_id = field_string(L, idx, "client_id");
    const char *issuer = field_string(L, idx, "issuer");
    lua_Integer exp = 0;
    if (lua_getfield(L, idx, "expires_at") != LUA_TNIL) {
        int isint = 0;
        exp = lua_tointegerx(L, -1, &isint);
        if (!isint)
            luaL_error(L, "caller.expires_at must be an integer");
    }
    lua_pop(L, 1);

    /* scopes: as a list of strings on the stack (a string is split at spaces) */
    int t = lua_getfield(L, idx, "scopes");
    if (t == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        lua_newtable(L);
        lua_Integer n = 0;
        while (*s) {
            while (*s == ' ')
                s++;
            const char *e = s;
            while (*e && *e != ' ')
                e++;
            if (e > s) {
                lua_pushlstring(L, s, (size_t)(e - s));
                lua_rawseti(L, -2, ++n);
            }
            s = e;
        }
        lua_remove(L, -2);
    } else if (t == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
    } else if (t != LUA_TTABLE) {
        luaL_error(L, "caller.scopes must be a list of strings or a space-separated string");
    }
    size_t n_scopes = (size_t)lua_rawlen(L, -1);
    if (n_scopes > MAX_CALLER_SCOPES)
        luaL_error(L, "caller.scopes: at most %d", MAX_CALLER_SCOPES);
    for (size_t i = 1; i <= n_scopes; i++) {
        if (lua_rawgeti(L, -1, (lua_Integer)i) != LUA_TSTRING)
            luaL_error(L, "caller.scopes must be a list of strings (item %d is not)", (int)i);
        lua_pop(L, 1);
    }
    /* stack: ..., scopes list */

    json_t *claims = NULL;
    if (lua_getfield(L, idx, "claims") == LUA_TNIL) {
        claims = json_object();
    } else {
        char *err = NULL;
        claims = conv_to_json(L, -1, &err);
        if (!claims || !json_is_object(claims)) {
            json_decref(claims);
            lua_pushfstring(L, "caller.claims must be a table of claims%s%s", err ? ": " : "",
                            err ? err : "");
            free(err);
            lua_error(L);
        }
    }
    lua_pop(L, 1);

    /* everything checked: from here on nothing raises */
    auth_caller_t *c = calloc(1, sizeof *c);
    if (!c) {
        json_decref(claims);
        luaL_error(L, "out of memory");
    }
    c->refs = 1;
    c->subject = subject ? strdup(subject) : NULL;
    c->client_id = client_id ? strdup(client_id) : NULL;
    c->issuer = issuer ? strdup(issuer) : NULL;
    c->expires_at = (long long)exp;
    c->claims = claims;
    c->scopes = calloc(n_scopes ? n_scopes : 1, sizeof *c->scopes);
    for (size_t i = 0; c->scopes && i < n_scopes; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        if ((c->scopes[c->n_scopes] = strdup(lua_tostring(L, -1))))
            c->n_scopes++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return c;
}

/* The arguments table at idx as a JSON object (NULL for nil). Raises when not convertible. */
static json_t *to_args(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return NULL;
    luaL_checktype(L, idx, LUA_TTABLE);
    char *err = NULL;
    json_t *v = conv_to_json(L, idx, &err);
    if (!v || !json_is_object(v)) {
        json_decref(v);
        lua_pushfstring(L, "args must be an object%s%s", err ? ": " : "", err ? err : "");
        free(err);
        lua_error(L);
    }
    return v;
}

/* What one decision call allocates, in a userdata so that a raised error frees it too. */
#define SCRATCH_MT "mcp.policies.scratch"

typedef struct scratch {
    auth_caller_t *caller;
    json_t *args;
} scratch_t;

static void scratch_release(scratch_t *s)
{
    free_caller(s->caller);
    json_decref(s->args);
    s->caller = NULL;
    s->args = NULL;
}

static int scratch_gc(lua_State *L)
{
    scratch_release(luaL_checkudata(L, 1, SCRATCH_MT));
    return 0;
}

/* Reads tool (2), caller (3) and args (4) of a method call; pushes the scratch holding the
 * converted caller and args. Returns the tool index, or (size_t)-1 for an unknown tool. */
static size_t call_args(lua_State *L, const policies_t *p, scratch_t **out)
{
    lua_settop(L, 4);
    size_t tool = tool_at(L, p, 2);
    scratch_t *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, SCRATCH_MT);
    s->caller = to_caller(L, 3);
    s->args = to_args(L, 4);
    *out = s;
    return tool;
}

/* Pushes { decision, reason, rule, scopes = { ... } (challenge), unguarded (when true) }. */
static void push_decision(lua_State *L, const policy_decision_t *d)
{
    lua_createtable(L, 0, 5);
    lua_pushstring(L, policy_verdict_name(d->verdict));
    lua_setfield(L, -2, "decision");
    lua_pushstring(L, d->reason);
    lua_setfield(L, -2, "reason");
    if (d->rule[0]) {
        lua_pushstring(L, d->rule);
        lua_setfield(L, -2, "rule");
    }
    if (d->verdict == POLICY_CHALLENGE) {
        lua_newtable(L);
        lua_Integer n = 0;
        for (const char *s = d->scopes; *s;) {
            const char *e = strchr(s, ' ');
            size_t len = e ? (size_t)(e - s) : strlen(s);
            if (len) {
                lua_pushlstring(L, s, len);
                lua_rawseti(L, -2, ++n);
            }
            s += len + (e ? 1 : 0);
        }
        lua_setfield(L, -2, "scopes");
    }
    if (d->unguarded) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "unguarded");
    }
}

static void unknown_tool(policy_decision_t *d)
{
    memset(d, 0, sizeof *d);
    d->verdict = POLICY_HIDDEN;
    snprintf(d->reason, sizeof d->reason, "unknown tool");
}

/* set:decide(tool, caller|nil, args|nil) -> decision: what tools/call would answer */
static int policies_decide(lua_State *L)
{
    policies_t *p = check_policies(L);
    scratch_t *s;
    size_t tool = call_args(L, p, &s);
    policy_decision_t d;
    if (tool == (size_t)-1) {
        unknown_tool(&d);
    } else {
        enum log_level was = log_get_level();
        if (p->quiet)
            log_set_level((enum log_level)(LOG_ERROR + 1));
        policy_decide(p->ps, p->vm, tool, p->tools[tool], s->caller, s->args, p->dev, &d);
        log_set_level(was);
    }
    scratch_release(s);
    push_decision(L, &d);
    return 1;
}

/* set:static(tool, caller|nil) -> the decision of the declarative part alone, checks not run:
 * tools/list shows a tool when it is "allow" */
static int policies_static(lua_State *L)
{
    policies_t *p = check_policies(L);
    lua_settop(L, 3);
    lua_pushnil(L); /* no args */
    scratch_t *s;
    size_t tool = call_args(L, p, &s);
    policy_decision_t d;
    if (tool == (size_t)-1)
        unknown_tool(&d);
    else
        policy_static(p->ps, tool, s->caller, p->dev, &d);
    scratch_release(s);
    push_decision(L, &d);
    return 1;
}

/* set:rules_for(tool) -> how many rules match the tool */
static int policies_rules_for(lua_State *L)
{
    policies_t *p = check_policies(L);
    size_t tool = tool_at(L, p, 2);
    lua_pushinteger(L, tool == (size_t)-1 ? 0 : (lua_Integer)policy_rules_for(p->ps, tool));
    return 1;
}

/* set:describe(tool) -> the scopes the tool needs as text */
static int policies_describe(lua_State *L)
{
    policies_t *p = check_policies(L);
    size_t tool = tool_at(L, p, 2);
    if (tool == (size_t)-1)
        return luaL_argerror(L, 2, "unknown tool");
    char *text = policy_describe_scopes(p->ps, tool);
    lua_pushstring(L, text ? text : "");
    free(text);
    return 1;
}

/* Pushes a JSON value (NULL: nil). */
static void push_json(lua_State *L, json_t *v)
{
    char *err = NULL;
    if (!v || conv_push_json(L, v, &err) != 0) {
        free(err);
        lua_pushnil(L);
    }
}

/* set:scopes() -> every scope the rules mention, once */
static int policies_scopes(lua_State *L)
{
    policies_t *p = check_policies(L);
    json_t *v = policy_scopes(p->ps);
    push_json(L, v);
    json_decref(v);
    return 1;
}

/* set:loggable_args(tool, args) -> the arguments the rules mark safe to log, or nil */
static int policies_loggable_args(lua_State *L)
{
    policies_t *p = check_policies(L);
    size_t tool = tool_at(L, p, 2);
    if (tool == (size_t)-1)
        return luaL_argerror(L, 2, "unknown tool");
    lua_settop(L, 3);
    lua_pushnil(L);
    lua_insert(L, 3); /* stack: self, tool, nil, args: call_args's layout */
    scratch_t *s;
    call_args(L, p, &s);
    json_t *v = policy_loggable_args(p->ps, tool, s->args);
    scratch_release(s);
    push_json(L, v);
    json_decref(v);
    return 1;
}

/* set:unused() -> { "file:line", ... } of the rules that match no tool */
static int policies_unused(lua_State *L)
{
    policies_t *p = check_policies(L);
    lua_newtable(L);
    lua_Integer n = 0;
    for (const char *s = p->unused; s && *s;) {
        const char *e = strstr(s, ", ");
        size_t len = e ? (size_t)(e - s) : strlen(s);
        lua_pushlstring(L, s, len);
        lua_rawseti(L, -2, ++n);
        s += len + (e ? 2 : 0);
    }
    return 1;
}

/* set:uncovered() -> the bound tools no rule matches (nobody may call them) */
static int policies_uncovered(lua_State *L)
{
    policies_t *p = check_policies(L);
    lua_newtable(L);
    lua_Integer n = 0;
    for (size_t i = 0; i < p->n_tools; i++)
        if (policy_rules_for(p->ps, i) == 0) {
            lua_pushstring(L, p->tools[i]);
            lua_rawseti(L, -2, ++n);
        }
    return 1;
}

/* set:size() -> how many rules were loaded */
static int policies_size(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)policy_set_size(check_policies(L)->ps));
    return 1;
}

/* set:memory() -> bytes in use by the private Lua state of the policy files */
static int policies_memory(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)vm_memory(check_policies(L)->vm));
    return 1;
}

static void register_policies(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"decide", policies_decide},       {"static", policies_static},
        {"rules_for", policies_rules_for}, {"describe", policies_describe},
        {"scopes", policies_scopes},       {"loggable_args", policies_loggable_args},
        {"unused", policies_unused},       {"uncovered", policies_uncovered},
        {"size", policies_size},           {"memory", policies_memory},
        {NULL, NULL}};
    if (luaL_newmetatable(L, POLICIES_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, policies_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, POLICIES_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, SCRATCH_MT)) {
        lua_pushcfunction(L, scratch_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}

/* mcp._cache_reset(max_bytes): empties mcp.cache and sets its bound (specs only) */
static int l_cache_reset(lua_State *L)
{
    lua_Integer bytes = luaL_optinteger(L, 1, 16 << 20);
    cache_clear();
    cache_configure((size_t)bytes);
    return 0;
}

int luaopen_mcp(lua_State *L)
{
    secret_grant_all(); /* specs call handlers as plain functions: no grant to take */
    register_policies(L);
    api_push_mcp(L);
    lua_pushcfunction(L, l_loaded_tools);
    lua_setfield(L, -2, "_loaded_tools");
    lua_pushcfunction(L, l_reset);
    lua_setfield(L, -2, "_reset");
    lua_pushcfunction(L, l_cache_reset);
    lua_setfield(L, -2, "_cache_reset");
    lua_pushcfunction(L, l_load_policies);
    lua_setfield(L, -2, "_load_policies");
    return 1;
}
