#include "luamcp/config.h"
#include "luamcp/egress.h"
#include "luamcp/jose.h"
#include "luamcp/log.h"
#include "luamcp/text.h"

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_set_str(char **slot, const char *value)
{
    free(*slot);
    *slot = value ? strdup(value) : NULL;
}

void config_defaults(config_t *c)
{
    memset(c, 0, sizeof *c);
    config_set_str(&c->listen, "127.0.0.1:8080");
    config_set_str(&c->scripts_dir, "scripts");
    config_set_str(&c->policies_dir, "policies");
    config_set_str(&c->endpoint, "/mcp");
    config_set_str(&c->log_level, "info");
    c->max_body_bytes = 1 << 20;
    c->page_size = 100;
    c->max_connections = 1024;
    c->idle_timeout_s = 30;
    c->header_timeout_s = 10;
    c->max_connections_per_address = 64;
    c->session_idle_s = 1800;
    c->max_sessions = 10000;
    c->max_sessions_per_caller = 1000;
    c->grace_s = 10;
    c->cache_max_bytes = 16u << 20;
    c->limits.cpu_ms = 1000;
    c->limits.timeout_ms = 30000;
    c->limits.instructions = 0;
    c->limits.memory_bytes = 64u << 20;
    c->limits.max_result_bytes = CONFIG_MAX_RESULT_BYTES;
    c->egress.max_redirects = 3;
    c->egress.max_response_bytes = 8u << 20;
    c->egress.timeout_ms = 10000;
    c->egress.max_requests = 64;
    c->egress.max_inflight = 4096;
    c->tasks.ttl_ms = 3600000;
    c->tasks.timeout_ms = 600000;
    c->tasks.poll_ms = 1000;
    c->tasks.max = 1000;
    c->tasks.per_caller = 100;
    c->tasks.max_result_bytes = 1u << 20;
    c->auth.enabled = true;
    c->auth.leeway_s = 60;
    c->auth.cache_entries = 4096;
    c->auth.jwks_min_ttl_s = 300;
    c->auth.jwks_max_ttl_s = 86400;
    c->auth.jwks_refetch_s = 30;
    c->auth.jwks_timeout_ms = 5000;
    /* dev_key_file and admin_socket default to .luamcp/…-PORT (see config_runtime_path) */
}

/* The port of the listen address, or -1. */
static long listen_port(const char *listen)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    return colon && !*end ? port : -1;
}

char *config_runtime_path(const char *configured, const char *stem, const char *ext,
                          const config_t *c, int port)
{
    if (configured)
        return strdup(configured);
    long p = port > 0 ? port : listen_port(c->listen);
    if (p <= 0)
        return NULL;
    char buf[256];
    snprintf(buf, sizeof buf, ".luamcp/%s-%ld%s", stem, p, ext);
    return strdup(buf);
}

config_issuer_t *config_add_issuer(config_t *c, const char *issuer)
{
    config_auth_t *a = &c->auth;
    if (a->n_issuers >= 64)
        return NULL;
    config_issuer_t *grown = realloc(a->issuers, (a->n_issuers + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    a->issuers = grown;
    config_issuer_t *is = &a->issuers[a->n_issuers++];
    memset(is, 0, sizeof *is);
    config_set_str(&is->issuer, issuer);
    config_set_str(&is->scope_claim, "scope");
    return is;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void free_issuer(config_issuer_t *is)
{
    free(is->issuer); free(is->jwks_uri); free(is->jwks_file); free(is->pem_file);
    free(is->secret_env); free(is->audience); free(is->scope_claim);
    free_list(is->client_ids, is->n_client_ids);
    free_list(is->required_claims, is->n_required_claims);
}

void config_free(config_t *c)
{
    for (size_t i = 0; i < c->auth.n_issuers; i++)
        free_issuer(&c->auth.issuers[i]);
    free(c->auth.issuers);
    free_list(c->auth.scopes, c->auth.n_scopes);
    free(c->auth.resource); free(c->auth.ca_file); free(c->auth.resource_documentation);
    free(c->auth.resource_name); free(c->auth.dev_key_file);
    json_decref(c->auth.scope_implies);
    free(c->shadow_policies); free(c->audit_file); free(c->admin_socket); free(c->config_path);
    free(c->secrets_file);
    free(c->listen); free(c->scripts_dir); free(c->policies_dir); free(c->endpoint);
    free(c->tls_cert); free(c->tls_key); free(c->instructions); free(c->log_level);
    free_list(c->allowed_origins, c->n_allowed_origins);
    free_list(c->allowed_hosts, c->n_allowed_hosts);
    free_list(c->egress.allow, c->egress.n_allow);
    free_list(c->egress.allow_private, c->egress.n_allow_private);
    free_list(c->egress.resolve, c->egress.n_resolve);
    free(c->egress.ca_file);
    memset(c, 0, sizeof *c);
}

/* ---- reading the file ---------------------------------------------------------------- */

typedef struct reader {
    lua_State *L;
    const char *path;
    char *dir;  /* the file's directory, for relative paths */
    char *err;
} reader_t;

__attribute__((format(printf, 3, 4)))
static int fail(reader_t *r, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(r->path) + strlen(key) + strlen(msg) + 16;
    r->err = malloc(n);
    if (r->err)
        snprintf(r->err, n, "%s: %s: %s", r->path, key, msg);
    return -1;
}

/* stack: ..., value */
static int get_string(reader_t *r, const char *key, char **slot, int is_path)
{
    if (lua_type(r->L, -1) != LUA_TSTRING)
        return fail(r, key, "expected a string, got %s", luaL_typename(r->L, -1));
    const char *s = lua_tostring(r->L, -1);
    if (is_path && s[0] != '/' && r->dir) {
        size_t n = strlen(r->dir) + strlen(s) + 2;
        char *p = malloc(n);
        if (!p)
            return fail(r, key, "out of memory");
        snprintf(p, n, "%s/%s", r->dir, s);
        free(*slot);
        *slot = p;
    } else {
        config_set_str(slot, s);
    }
    return 0;
}

static int get_bool(reader_t *r, const char *key, bool *slot)
{
    if (!lua_isboolean(r->L, -1))
        return fail(r, key, "expected a boolean, got %s", luaL_typename(r->L, -1));
    *slot = lua_toboolean(r->L, -1);
    return 0;
}

static int get_int(reader_t *r, const char *key, long long lo, long long hi, long long *out)
{
    if (!lua_isinteger(r->L, -1))
        return fail(r, key, "expected an integer, got %s", luaL_typename(r->L, -1));
    long long v = lua_tointeger(r->L, -1);
    if (v < lo || v > hi)
        return fail(r, key, "must be between %lld and %lld", lo, hi);
    *out = v;
    return 0;
}

static int get_list(reader_t *r, const char *key, char ***list, size_t *n)
{
    lua_State *L = r->L;
    if (!lua_istable(L, -1))
        return fail(r, key, "expected a list of strings");
    size_t len = (size_t)lua_rawlen(L, -1);
    if (len > 256)
        return fail(r, key, "at most 256 entries");
    char **out = calloc(len + 1, sizeof *out);
    if (!out)
        return fail(r, key, "out of memory");
    for (size_t i = 0; i < len; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 1);
            free_list(out, i);
            return fail(r, key, "entry %zu is not a string", i + 1);
        }
        out[i] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    free_list(*list, *n);
    *list = out;
    *n = len;
    return 0;
}

static int read_limits(reader_t *r, config_t *c)
{
    lua_State *L = r->L;
    if (!lua_istable(L, -1))
        return fail(r, "limits", "expected a table");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        /* stack: limits, key, value */
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
        long long v = 0;
        int rc;
        if (strcmp(k, "cpu_ms") == 0) {
            rc = get_int(r, "limits.cpu_ms", 1, 600000, &v);
            c->limits.cpu_ms = (int)v;
        } else if (strcmp(k, "timeout_ms") == 0) {
            rc = get_int(r, "limits.timeout_ms", 1, 3600000, &v);
            c->limits.timeout_ms = (int)v;
        } else if (strcmp(k, "instructions") == 0) {
            rc = get_int(r, "limits.instructions", 0, LLONG_MAX, &v);
            c->limits.instructions = v;
        } else if (strcmp(k, "memory_mb") == 0) {
            rc = get_int(r, "limits.memory_mb", 4, 65536, &v);
            c->limits.memory_bytes = (size_t)v << 20;
        } else if (strcmp(k, "max_result_bytes") == 0) {
            rc = get_int(r, "limits.max_result_bytes", 1024, 1LL << 30, &v);
            c->limits.max_result_bytes = (size_t)v;
        } else {
            rc = fail(r, "limits",
                      "unknown key '%s' (known: cpu_ms, timeout_ms, instructions, memory_mb, "
                      "max_result_bytes)",
                      k);
        }
        lua_pop(L, 1);
        if (rc)
            return rc;
    }
    return 0;
}

static int read_tls(reader_t *r, config_t *c)
{
    lua_State *L = r->L;
    if (!lua_istable(L, -1))
        return fail(r, "tls", "expected a table { cert = FILE, key = FILE }");
    lua_getfield(L, -1, "cert");
    int rc = lua_isnil(L, -1) ? 0 : get_string(r, "tls.cert", &c->tls_cert, 1);
    lua_pop(L, 1);
    if (rc)
        return rc;
    lua_getfield(L, -1, "key");
    rc = lua_isnil(L, -1) ? 0 : get_string(r, "tls.key", &c->tls_key, 1);
    lua_pop(L, 1);
    return rc;
}

/* Iterates the table on top, calling fn(r, ctx, key) with the value on top for each key. */
typedef int (*field_fn)(reader_t *r, void *ctx, const char *key);
static int each_field(reader_t *r, const char *what, void *ctx, field_fn fn)
{
    lua_State *L = r->L;
    if (!lua_istable(L, -1))
        return fail(r, what, "expected a table");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return fail(r, what, "keys must be strings");
        }
        int rc = fn(r, ctx, lua_tostring(L, -2));
        lua_pop(L, 1);
        if (rc) {
            lua_pop(L, 1);
            return rc;
        }
    }
    return 0;
}

static int read_algorithms(reader_t *r, const char *key, unsigned *mask)
{
    char **list = NULL;
    size_t n = 0;
    if (get_list(r, key, &list, &n))
        return -1;
    unsigned m = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned a = jose_alg_parse(list[i]);
        if (!a)
            rc = fail(r, key, "unknown algorithm '%s' (RS256, RS384, RS512, PS256, PS384, "
                              "PS512, ES256, ES384, ES512, EdDSA, HS256, HS384, HS512)", list[i]);
        m |= a;
    }
    free_list(list, n);
    if (!rc && !m)
        rc = fail(r, key, "must name at least one algorithm");
    *mask = m;
    return rc;
}

static int issuer_field(reader_t *r, void *ctx, const char *k)
{
    config_issuer_t *is = ctx;
    char key[64];
    snprintf(key, sizeof key, "auth.issuers[].%s", k);
    if (strcmp(k, "issuer") == 0) return get_string(r, key, &is->issuer, 0);
    if (strcmp(k, "jwks_uri") == 0) return get_string(r, key, &is->jwks_uri, 0);
    if (strcmp(k, "jwks_file") == 0) return get_string(r, key, &is->jwks_file, 1);
    if (strcmp(k, "pem_file") == 0) return get_string(r, key, &is->pem_file, 1);
    if (strcmp(k, "secret_env") == 0) return get_string(r, key, &is->secret_env, 0);
    if (strcmp(k, "audience") == 0) return get_string(r, key, &is->audience, 0);
    if (strcmp(k, "scope_claim") == 0) return get_string(r, key, &is->scope_claim, 0);
    if (strcmp(k, "algorithms") == 0) return read_algorithms(r, key, &is->algorithms);
    if (strcmp(k, "client_ids") == 0) return get_list(r, key, &is->client_ids, &is->n_client_ids);
    if (strcmp(k, "required_claims") == 0)
        return get_list(r, key, &is->required_claims, &is->n_required_claims);
    if (strcmp(k, "preset") == 0) {
        if (lua_type(r->L, -1) != LUA_TSTRING || strcmp(lua_tostring(r->L, -1), "cognito") != 0)
            return fail(r, key, "the only preset is \"cognito\"");
        is->cognito = true;
        return 0;
    }
    return fail(r, key, "unknown key (issuer, jwks_uri, jwks_file, pem_file, secret_env, "
                        "audience, algorithms, preset, client_ids, required_claims, scope_claim)");
}

static int read_issuers(reader_t *r, config_t *c)
{
    lua_State *L = r->L;
    if (!lua_istable(L, -1))
        return fail(r, "auth.issuers", "expected a list of tables");
    size_t n = (size_t)lua_rawlen(L, -1);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i);
        config_issuer_t *is = config_add_issuer(c, NULL);
        int rc = is ? each_field(r, "auth.issuers[]", is, issuer_field)
                    : fail(r, "auth.issuers", "too many issuers (64 at most)");
        lua_pop(L, 1);
        if (rc)
            return rc;
        if (!is->issuer)
            return fail(r, "auth.issuers", "entry %zu has no 'issuer'", i);
    }
    return 0;
}

static int uint_field(reader_t *r, const char *key, long long lo, long long hi, unsigned *out)
{
    long long v;
    if (get_int(r, key, lo, hi, &v))
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int jwks_field(reader_t *r, void *ctx, const char *k)
{
    config_auth_t *a = ctx;
    char key[64];
    snprintf(key, sizeof key, "auth.jwks.%s", k);
    if (strcmp(k, "min_ttl_s") == 0) return uint_field(r, key, 1, 86400 * 7, &a->jwks_min_ttl_s);
    if (strcmp(k, "max_ttl_s") == 0) return uint_field(r, key, 1, 86400 * 30, &a->jwks_max_ttl_s);
    if (strcmp(k, "refetch_s") == 0) return uint_field(r, key, 0, 86400, &a->jwks_refetch_s);
    if (strcmp(k, "timeout_ms") == 0)
        return uint_field(r, key, 100, 60000, &a->jwks_timeout_ms);
    return fail(r, key, "unknown key (min_ttl_s, max_ttl_s, refetch_s, timeout_ms)");
}

/* scope_implies = { ["strava:admin"] = { "strava:read", "strava:write" }, ... } */
static int read_implies(reader_t *r, config_auth_t *a)
{
    lua_State *L = r->L;
    if (!lua_istable(L, -1))
        return fail(r, "auth.scope_implies", "expected a table of scope = { scopes }");
    json_t *map = json_object();
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        json_t *list = json_array();
        bool ok = lua_type(L, -2) == LUA_TSTRING;
        if (ok && lua_type(L, -1) == LUA_TSTRING) {
            json_array_append_new(list, json_string(lua_tostring(L, -1)));
        } else if (ok && lua_istable(L, -1)) {
            size_t n = (size_t)lua_rawlen(L, -1);
            for (size_t i = 1; i <= n && ok; i++) {
                ok = lua_rawgeti(L, -1, (lua_Integer)i) == LUA_TSTRING;
                if (ok)
                    json_array_append_new(list, json_string(lua_tostring(L, -1)));
                lua_pop(L, 1);
            }
        } else {
            ok = false;
        }
        if (ok)
            json_object_set_new(map, lua_tostring(L, -2), list);
        else
            json_decref(list);
        lua_pop(L, 1);
        if (!ok) {
            lua_pop(L, 1);
            json_decref(map);
            return fail(r, "auth.scope_implies", "each entry maps a scope to a scope or a list "
                                                 "of scopes");
        }
    }
    json_decref(a->scope_implies);
    a->scope_implies = map;
    return 0;
}

static int auth_field(reader_t *r, void *ctx, const char *k)
{
    config_t *c = ctx;
    config_auth_t *a = &c->auth;
    char key[64];
    snprintf(key, sizeof key, "auth.%s", k);
    long long v;
    if (strcmp(k, "enabled") == 0) return get_bool(r, key, &a->enabled);
    if (strcmp(k, "resource") == 0) return get_string(r, key, &a->resource, 0);
    if (strcmp(k, "issuers") == 0) return read_issuers(r, c);
    if (strcmp(k, "scopes") == 0) return get_list(r, key, &a->scopes, &a->n_scopes);
    if (strcmp(k, "scope_implies") == 0) return read_implies(r, a);
    if (strcmp(k, "ca_file") == 0) return get_string(r, key, &a->ca_file, 1);
    if (strcmp(k, "resource_documentation") == 0)
        return get_string(r, key, &a->resource_documentation, 0);
    if (strcmp(k, "resource_name") == 0) return get_string(r, key, &a->resource_name, 0);
    if (strcmp(k, "dev_key_file") == 0) return get_string(r, key, &a->dev_key_file, 1);
    if (strcmp(k, "jwks") == 0) return each_field(r, key, a, jwks_field);
    if (strcmp(k, "cache_entries") == 0)
        return uint_field(r, key, 0, 1 << 20, &a->cache_entries);
    if (strcmp(k, "leeway_s") == 0) {
        int rc = get_int(r, key, 0, 600, &v);
        a->leeway_s = (int)v;
        return rc;
    }
    return fail(r, key, "unknown key (enabled, resource, issuers, scopes, leeway_s, "
                        "cache_entries, jwks, ca_file, resource_documentation, resource_name, "
                        "dev_key_file, scope_implies)");
}

static int egress_field(reader_t *r, void *ctx, const char *k)
{
    config_egress_t *e = &((config_t *)ctx)->egress;
    char key[64];
    snprintf(key, sizeof key, "egress.%s", k);
    long long v;
    int rc;
    if (strcmp(k, "allow") == 0) {
        if ((rc = get_list(r, key, &e->allow, &e->n_allow)))
            return rc;
        for (size_t i = 0; i < e->n_allow; i++)
            if (!egress_pattern_valid(e->allow[i]))
                return fail(r, key, "'%s' is not a host pattern (api.example.com, "
                                    "*.example.com, host:port, [v6]:port)", e->allow[i]);
        return 0;
    }
    if (strcmp(k, "allow_private") == 0) {
        if ((rc = get_list(r, key, &e->allow_private, &e->n_allow_private)))
            return rc;
        for (size_t i = 0; i < e->n_allow_private; i++)
            if (!egress_cidr_valid(e->allow_private[i]))
                return fail(r, key, "'%s' is not an address or CIDR (10.0.0.0/8, ::1/128)",
                            e->allow_private[i]);
        return 0;
    }
    if (strcmp(k, "resolve") == 0) {
        if ((rc = get_list(r, key, &e->resolve, &e->n_resolve)))
            return rc;
        for (size_t i = 0; i < e->n_resolve; i++) {
            const char *a = e->resolve[i], *c1 = strchr(a, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c1 || c1 == a || !c2 || c2 == c1 + 1 || !c2[1])
                return fail(r, key, "'%s' must be HOST:PORT:ADDRESS", a);
        }
        return 0;
    }
    if (strcmp(k, "allow_http") == 0) return get_bool(r, key, &e->allow_http);
    if (strcmp(k, "ca_file") == 0) return get_string(r, key, &e->ca_file, 1);
    if (strcmp(k, "max_redirects") == 0) return uint_field(r, key, 0, 20, &e->max_redirects);
    if (strcmp(k, "timeout_ms") == 0) return uint_field(r, key, 1, 3600000, &e->timeout_ms);
    if (strcmp(k, "max_requests") == 0) return uint_field(r, key, 1, 10000, &e->max_requests);
    if (strcmp(k, "max_inflight") == 0) return uint_field(r, key, 1, 1000000, &e->max_inflight);
    if (strcmp(k, "max_response_bytes") == 0) {
        rc = get_int(r, key, 1024, 1LL << 30, &v);
        e->max_response_bytes = (size_t)v;
        return rc;
    }
    return fail(r, key, "unknown key (allow, allow_private, allow_http, resolve, ca_file, "
                        "max_redirects, max_response_bytes, timeout_ms, max_requests, "
                        "max_inflight)");
}

static int tasks_field(reader_t *r, void *ctx, const char *k)
{
    config_tasks_t *t = &((config_t *)ctx)->tasks;
    char key[64];
    snprintf(key, sizeof key, "tasks.%s", k);
    if (strcmp(k, "ttl_ms") == 0) return uint_field(r, key, 1000, 7 * 86400000u, &t->ttl_ms);
    if (strcmp(k, "timeout_ms") == 0) return uint_field(r, key, 1, 86400000u, &t->timeout_ms);
    if (strcmp(k, "poll_interval_ms") == 0) return uint_field(r, key, 1, 3600000, &t->poll_ms);
    if (strcmp(k, "max") == 0) return uint_field(r, key, 0, 1000000, &t->max);
    if (strcmp(k, "per_caller") == 0) return uint_field(r, key, 1, 1000000, &t->per_caller);
    if (strcmp(k, "max_result_bytes") == 0) {
        long long v;
        int rc = get_int(r, key, 1024, 1LL << 30, &v);
        t->max_result_bytes = (size_t)v;
        return rc;
    }
    return fail(r, key, "unknown key (ttl_ms, timeout_ms, poll_interval_ms, max, per_caller, "
                        "max_result_bytes)");
}

/* stack: ..., key, value */
static int read_key(reader_t *r, config_t *c, const char *k)
{
    long long v = 0;
    int rc;
#define INT_KEY(name, lo, hi, field)                                                           \
    if (strcmp(k, name) == 0) {                                                                \
        rc = get_int(r, name, lo, hi, &v);                                                     \
        c->field = v;                                                                          \
        return rc;                                                                             \
    }
    INT_KEY("workers", 0, 256, workers)
    INT_KEY("max_body_bytes", 1024, 1LL << 30, max_body_bytes)
    INT_KEY("page_size", 1, 10000, page_size)
    INT_KEY("max_connections", 1, 1000000, max_connections)
    INT_KEY("idle_timeout_s", 1, 86400, idle_timeout_s)
    INT_KEY("header_timeout_s", 1, 86400, header_timeout_s)
    INT_KEY("max_connections_per_address", 0, 1000000, max_connections_per_address)
    INT_KEY("session_idle_s", 1, 7 * 86400, session_idle_s)
    INT_KEY("max_sessions", 1, 10000000, max_sessions)
    INT_KEY("max_sessions_per_caller", 0, 10000000, max_sessions_per_caller)
    INT_KEY("grace_s", 0, 3600, grace_s)
    INT_KEY("cache_max_bytes", 65536, 1LL << 34, cache_max_bytes)
#undef INT_KEY
    if (strcmp(k, "listen") == 0) return get_string(r, k, &c->listen, 0);
    if (strcmp(k, "scripts") == 0) return get_string(r, k, &c->scripts_dir, 1);
    if (strcmp(k, "policies") == 0) return get_string(r, k, &c->policies_dir, 1);
    if (strcmp(k, "shadow_policies") == 0) return get_string(r, k, &c->shadow_policies, 1);
    if (strcmp(k, "audit_file") == 0) return get_string(r, k, &c->audit_file, 1);
    if (strcmp(k, "admin_socket") == 0) return get_string(r, k, &c->admin_socket, 1);
    if (strcmp(k, "secrets_file") == 0) return get_string(r, k, &c->secrets_file, 1);
    if (strcmp(k, "endpoint") == 0) return get_string(r, k, &c->endpoint, 0);
    if (strcmp(k, "instructions") == 0) return get_string(r, k, &c->instructions, 0);
    if (strcmp(k, "log_level") == 0) return get_string(r, k, &c->log_level, 0);
    if (strcmp(k, "stateless") == 0) return get_bool(r, k, &c->stateless);
    if (strcmp(k, "dev") == 0) return get_bool(r, k, &c->dev);
    if (strcmp(k, "per_address_exempt_loopback") == 0)
        return get_bool(r, k, &c->per_address_exempt_loopback);
    if (strcmp(k, "allowed_origins") == 0)
        return get_list(r, k, &c->allowed_origins, &c->n_allowed_origins);
    if (strcmp(k, "allowed_hosts") == 0)
        return get_list(r, k, &c->allowed_hosts, &c->n_allowed_hosts);
    if (strcmp(k, "limits") == 0) return read_limits(r, c);
    if (strcmp(k, "tls") == 0) return read_tls(r, c);
    if (strcmp(k, "auth") == 0) return each_field(r, "auth", c, auth_field);
    if (strcmp(k, "egress") == 0) return each_field(r, "egress", c, egress_field);
    if (strcmp(k, "tasks") == 0) return each_field(r, "tasks", c, tasks_field);
    return fail(r, k, "unknown key (see docs/configuration.md)");
}

/* The file runs with no libraries at all and a small instruction budget: it can compute
 * values but cannot reach the system, and cannot hang the start. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    luaL_error(L, "configuration file runs too long");
}

#define CONFIG_MEMORY_MAX (64u << 20)

/* ... and a heap cap while it runs: `s = s .. s` forty times is forty instructions. */
typedef struct config_heap {
    size_t used;
    bool capped;
} config_heap_t;

static void *config_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    config_heap_t *h = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        h->used -= old;
        return NULL;
    }
    if (h->capped && nsize > old && h->used + (nsize - old) > CONFIG_MEMORY_MAX)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p)
        h->used = h->used - old + nsize;
    return p;
}

int config_load_file(config_t *c, const char *path, char **err)
{
    reader_t r = {.path = path};
    int rc = -1;
    config_heap_t heap = {0, false};
    r.L = lua_newstate(config_alloc, &heap);
    if (!r.L) {
        *err = strdup("out of memory");
        return -1;
    }
    const char *slash = strrchr(path, '/');
    r.dir = slash ? strndup(path, (size_t)(slash - path)) : NULL;

    if (luaL_loadfilex(r.L, path, "t") != LUA_OK) {
        fail(&r, "load", "%s", lua_tostring(r.L, -1));
        goto done;
    }
    /* stack: chunk. Give it an empty environment; globals it sets become the config. */
    lua_newtable(r.L);
    lua_pushvalue(r.L, -1);
    lua_insert(r.L, -3); /* stack: env, chunk, env */
    lua_setupvalue(r.L, -2, 1);
    lua_sethook(r.L, budget_hook, LUA_MASKCOUNT, 10000000);
    heap.capped = true;
    int run_rc = lua_pcall(r.L, 0, 1, 0);
    heap.capped = false;
    lua_sethook(r.L, NULL, 0, 0);
    if (run_rc != LUA_OK) {
        fail(&r, "run", "%s",
             run_rc == LUA_ERRMEM ? "uses more than 64 MiB of memory" : lua_tostring(r.L, -1));
        goto done;
    }
    /* stack: env, result. A returned table wins; otherwise the globals it set. */
    if (lua_isnil(r.L, -1))
        lua_pop(r.L, 1);
    else if (!lua_istable(r.L, -1)) {
        fail(&r, "result", "must return a table (or set globals), returned %s",
             luaL_typename(r.L, -1));
        goto done;
    }
    lua_pushnil(r.L);
    while (lua_next(r.L, -2)) {
        if (lua_type(r.L, -2) != LUA_TSTRING) {
            fail(&r, "?", "keys must be strings");
            goto done;
        }
        if (read_key(&r, c, lua_tostring(r.L, -2)))
            goto done;
        lua_pop(r.L, 1);
    }
    rc = 0;
    config_set_str(&c->config_path, path);
done:
    if (rc)
        *err = r.err ? r.err : strdup("invalid configuration");
    free(r.dir);
    lua_close(r.L);
    return rc;
}

int config_validate(const config_t *c, char **err)
{
    const char *msg = NULL;
    if (c->endpoint[0] != '/')
        msg = "endpoint must start with '/'";
    else if (!!c->tls_cert != !!c->tls_key)
        msg = "tls needs both cert and key";
    else if (log_level_parse(c->log_level) < 0)
        msg = "log_level must be one of debug, info, notice, warning, error";
    else if (c->tasks.timeout_ms >= c->tasks.ttl_ms)
        msg = "tasks.timeout_ms must be shorter than tasks.ttl_ms (a task's result must outlive "
              "its handler)";
    else if (c->auth.jwks_min_ttl_s > c->auth.jwks_max_ttl_s)
        msg = "auth.jwks.min_ttl_s must not exceed max_ttl_s";
    for (size_t i = 0; !msg && i < c->auth.n_scopes; i++)
        if (!text_scope_ok(c->auth.scopes[i]))
            msg = "auth.scopes: a scope is printable ASCII without spaces, quotes or backslashes";
    for (size_t i = 0; !msg && i < c->auth.n_issuers; i++) {
        const config_issuer_t *is = &c->auth.issuers[i];
        int sources = !!is->jwks_uri + !!is->jwks_file + !!is->pem_file + !!is->secret_env;
        if (sources > 1)
            msg = "an issuer takes one key source: jwks_uri, jwks_file, pem_file or secret_env";
        else if (is->secret_env && (is->algorithms & ~(unsigned)(JOSE_HS256 | JOSE_HS384 |
                                                                   JOSE_HS512)))
            msg = "an issuer with secret_env verifies HS256/HS384/HS512 only: set algorithms";
        else if (is->secret_env && !is->algorithms)
            msg = "an issuer with secret_env must list its algorithms (HS256, HS384, HS512)";
        else if (!is->secret_env && (is->algorithms & ~(unsigned)JOSE_ASYMMETRIC))
            msg = "HS* algorithms need a shared secret (secret_env), never a public key";
        else if (!is->cognito && !is->audience && !c->auth.resource && c->auth.enabled)
            msg = "auth.resource (our own URL, the token audience) is required with issuers";
        else if (strncmp(is->issuer, "https://", 8) != 0 && strncmp(is->issuer, "http://127.", 11) &&
                 strncmp(is->issuer, "http://localhost", 16) && strncmp(is->issuer, "http://[::1]", 12))
            msg = "an issuer must be an https:// URL (http:// only on loopback, for testing)";
    }
    if (msg) {
        *err = strdup(msg);
        return -1;
    }
    return 0;
}
