#include "luamcp/policy.h"
#include "luamcp/decl.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/api.h"
#include "luamcp/conv.h"
#include "luamcp/log.h"
#include "luamcp/secret.h"
#include "luamcp/text.h"

#define MAX_LIST 256

typedef struct strlist {
    char **v;
    size_t n;
} strlist_t;

typedef struct claim_cond {
    char *name;
    json_t *values; /* array of acceptable JSON scalars */
} claim_cond_t;

struct policy_rule {
    strlist_t tools;      /* names or globs */
    strlist_t scopes;     /* all of */
    strlist_t any_scopes; /* at least one of */
    strlist_t issuers;
    strlist_t client_ids;
    claim_cond_t *claims;
    size_t n_claims;
    strlist_t log_args;
    strlist_t secrets;    /* what its check may read with mcp.secret (`secrets`) */
    int check_ref;        /* LUA_NOREF without a check */
    char where[300];      /* "file:line" */
};

struct policy_set {
    policy_rule_t **rules;
    size_t n;
    size_t **by_tool;     /* by_tool[t] = indices of rules matching tool t */
    size_t *n_by_tool;
    size_t n_tools;
};

const char *policy_verdict_name(policy_verdict_t v)
{
    static const char *const names[] = {"allow", "hidden", "challenge", "deny"};
    return names[v];
}

static bool in_list(const strlist_t *l, const char *s)
{
    for (size_t i = 0; s && i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

/* ---- glob --------------------------------------------------------------------------------- */

/* '*' matches any run of characters, '?' one; everything else itself. Iterative, so a
 * hostile pattern costs at most len(pattern) * len(name). */
static bool glob_match(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == '?' || *pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

/* ---- building ----------------------------------------------------------------------------- */

static void strlist_free(strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Field `key` of the table at idx: absent, a string, or a list of strings. */
static int read_strings(lua_State *L, int idx, const char *key, strlist_t *out, char **err)
{
    int t = lua_getfield(L, idx, key);
    int rc = 0;
    if (t == LUA_TNIL) {
        /* nothing */
    } else if (t == LUA_TSTRING) {
        out->v = calloc(1, sizeof *out->v);
        if (out->v && (out->v[0] = strdup(lua_tostring(L, -1))))
            out->n = 1;
    } else if (t == LUA_TTABLE) {
        size_t n = (size_t)lua_rawlen(L, -1), keys = 0;
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            keys++;
            lua_pop(L, 1);
        }
        /* { admin = true } would read as an empty list and drop the requirement: refuse */
        if (n > MAX_LIST || keys != n) {
            rc = -1;
        } else {
            out->v = calloc(n ? n : 1, sizeof *out->v);
            for (size_t i = 0; out->v && i < n && rc == 0; i++) {
                if (lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TSTRING)
                    rc = -1;
                else
                    out->v[out->n++] = strdup(lua_tostring(L, -1));
                lua_pop(L, 1);
            }
        }
    } else {
        rc = -1;
    }
    lua_pop(L, 1);
    if (rc) {
        *err = malloc(96);
        if (*err)
            snprintf(*err, 96, "'%s' must be a string or a list of strings (at most %d)", key,
                     MAX_LIST);
    }
    return rc;
}

/* Scopes go into WWW-Authenticate: refuse what could not sit there unescaped. */
static int invalid_scope(const strlist_t *l, char **err)
{
    for (size_t i = 0; i < l->n; i++)
        if (!text_scope_ok(l->v[i])) {
            *err = malloc(160);
            if (*err)
                snprintf(*err, 160, "invalid scope \"%.60s\": printable ASCII without spaces, "
                                    "quotes or backslashes (RFC 6749)", l->v[i]);
            return -1;
        }
    return 0;
}

static int read_claims(lua_State *L, int idx, policy_rule_t *r, char **err)
{
    if (lua_getfield(L, idx, "claims") == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    int rc = -1;
    if (!lua_istable(L, -1))
        goto done;
    r->claims = calloc(MAX_LIST, sizeof *r->claims);
    lua_pushnil(L);
    while (r->claims && lua_next(L, -2)) {
        /* stack: claims, name, value */
        if (lua_type(L, -2) != LUA_TSTRING || r->n_claims >= MAX_LIST) {
            lua_pop(L, 2);
            goto done;
        }
        char *why = NULL;
        json_t *v = conv_to_json(L, -1, &why);
        free(why);
        lua_pop(L, 1);
        if (v && !json_is_array(v)) {
            json_t *arr = json_array();
            json_array_append_new(arr, v);
            v = arr;
        }
        if (!v) {
            lua_pop(L, 1);
            goto done;
        }
        r->claims[r->n_claims].name = strdup(lua_tostring(L, -1));
        r->claims[r->n_claims++].values = v;
    }
    rc = 0;
done:
    lua_pop(L, 1);
    if (rc)
        *err = strdup("'claims' must map claim names to a value or a list of values");
    return rc;
}

static int check_keys(lua_State *L, int idx, char **err)
{
    static const char *const known[] = {"tool", "tools", "prompt", "prompts", "resource",
                                        "resources", "scopes", "any_scopes", "issuers",
                                        "client_ids", "claims", "check", "log_args",
                                        "secrets", "description", NULL};
    const char *k = decl_unknown_key(L, idx, known);
    if (!k)
        return 0;
    *err = decl_fmt("unknown field '%.40s' (fields: tool or tools, scopes, any_scopes, issuers, "
                    "client_ids, claims, check, log_args, secrets, description; prompt(s) and "
                    "resource(s) for those)", k);
    return -1;
}

int policy_rule_from_def(lua_State *L, int idx, const char *file, int line,
                         policy_rule_t **out, char **err)
{
    idx = lua_absindex(L, idx);
    *err = NULL;
    policy_rule_t *r = calloc(1, sizeof *r);
    if (!r) {
        *err = strdup("out of memory");
        return -1;
    }
    r->check_ref = LUA_NOREF;
    snprintf(r->where, sizeof r->where, "%s:%d", file, line);
    if (check_keys(L, idx, err))
        goto fail;
    /* targets: tools by name, prompts and resources under a prefix of their kind */
    static const struct { const char *one, *many, *prefix; } kinds[] = {
        {"tool", "tools", ""}, {"prompt", "prompts", "prompt:"},
        {"resource", "resources", "resource:"}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        strlist_t one = {0}, many = {0};
        int bad = read_strings(L, idx, kinds[k].one, &one, err) ||
                  read_strings(L, idx, kinds[k].many, &many, err);
        if (!bad && one.n && many.n) {
            *err = malloc(80);
            if (*err)
                snprintf(*err, 80, "give '%s' or '%s', not both", kinds[k].one, kinds[k].many);
            bad = 1;
        }
        strlist_t *got = one.n ? &one : &many;
        for (size_t i = 0; !bad && i < got->n; i++) {
            size_t len = strlen(kinds[k].prefix) + strlen(got->v[i]) + 1;
            char **grown = realloc(r->tools.v, (r->tools.n + 1) * sizeof *grown);
            char *name = malloc(len);
            if (!grown || !name) {
                free(name);
                if (grown)
                    r->tools.v = grown;
                bad = 1;
                break;
            }
            snprintf(name, len, "%s%s", kinds[k].prefix, got->v[i]);
            r->tools.v = grown;
            r->tools.v[r->tools.n++] = name;
        }
        strlist_free(&one);
        strlist_free(&many);
        if (bad)
            goto fail;
    }
    if (!r->tools.n) {
        *err = strdup("a policy needs 'tool' (a name or glob such as \"get_*\") or 'tools' "
                      "(or 'prompt(s)', 'resource(s)')");
        goto fail;
    }
    if (read_strings(L, idx, "scopes", &r->scopes, err) ||
        read_strings(L, idx, "any_scopes", &r->any_scopes, err) ||
        invalid_scope(&r->scopes, err) || invalid_scope(&r->any_scopes, err) ||
        read_strings(L, idx, "issuers", &r->issuers, err) ||
        read_strings(L, idx, "client_ids", &r->client_ids, err) ||
        read_strings(L, idx, "log_args", &r->log_args, err) || read_claims(L, idx, r, err) ||
        read_strings(L, idx, "secrets", &r->secrets, err))
        goto fail;
    for (size_t i = 0; i < r->secrets.n; i++)
        if (!secret_name_valid(r->secrets.v[i])) {
            *err = decl_fmt("'secrets' entry '%.70s' is not a secret name", r->secrets.v[i]);
            goto fail;
        }
    if (lua_getfield(L, idx, "description") > LUA_TNIL && !lua_isstring(L, -1)) {
        lua_pop(L, 1);
        *err = strdup("'description' must be a string");
        goto fail;
    }
    lua_pop(L, 1);
    int t = lua_getfield(L, idx, "check");
    if (t == LUA_TFUNCTION) {
        r->check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        lua_pop(L, 1);
        if (t != LUA_TNIL) {
            *err = strdup("'check' must be a function(caller, tool, args, ctx)");
            goto fail;
        }
    }
    *out = r;
    return 0;
fail:
    policy_rule_free(r);
    return -1;
}

void policy_rule_unref(lua_State *L, policy_rule_t *r)
{
    if (r && r->check_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, r->check_ref);
        r->check_ref = LUA_NOREF;
    }
}

void policy_rule_free(policy_rule_t *r)
{
    if (!r)
        return;
    strlist_free(&r->tools);
    strlist_free(&r->scopes);
    strlist_free(&r->any_scopes);
    strlist_free(&r->issuers);
    strlist_free(&r->client_ids);
    strlist_free(&r->log_args);
    strlist_free(&r->secrets);
    for (size_t i = 0; i < r->n_claims; i++) {
        free(r->claims[i].name);
        json_decref(r->claims[i].values);
    }
    free(r->claims);
    free(r); /* check_ref dies with the Lua state */
}

policy_set_t *policy_set_new(void) { return calloc(1, sizeof(policy_set_t)); }

static void unbind(policy_set_t *ps)
{
    for (size_t t = 0; ps->by_tool && t < ps->n_tools; t++)
        free(ps->by_tool[t]);
    free(ps->by_tool);
    free(ps->n_by_tool);
    ps->by_tool = NULL;
    ps->n_by_tool = NULL;
    ps->n_tools = 0;
}

void policy_set_free(policy_set_t *ps)
{
    if (!ps)
        return;
    for (size_t i = 0; i < ps->n; i++)
        policy_rule_free(ps->rules[i]);
    free(ps->rules);
    unbind(ps);
    free(ps);
}

int policy_set_add(policy_set_t *ps, policy_rule_t *r)
{
    policy_rule_t **grown = realloc(ps->rules, (ps->n + 1) * sizeof *grown);
    if (!grown) {
        policy_rule_free(r);
        return -1;
    }
    ps->rules = grown;
    ps->rules[ps->n++] = r;
    return 0;
}

size_t policy_set_size(const policy_set_t *ps) { return ps ? ps->n : 0; }

/* 0 tool, 1 prompt, 2 resource: a pattern only ever matches targets of its own kind */
static int kind_of(const char *name)
{
    return strncmp(name, "prompt:", 7) == 0 ? 1 : strncmp(name, "resource:", 9) == 0 ? 2 : 0;
}

static bool rule_matches(const policy_rule_t *r, const char *tool)
{
    int kind = kind_of(tool);
    for (size_t i = 0; i < r->tools.n; i++)
        if (kind_of(r->tools.v[i]) == kind && glob_match(r->tools.v[i], tool))
            return true;
    return false;
}

size_t policy_set_bind(policy_set_t *ps, char *const *tool_names, size_t n_tools, char **unused)
{
    unbind(ps);
    ps->by_tool = calloc(n_tools ? n_tools : 1, sizeof *ps->by_tool);
    ps->n_by_tool = calloc(n_tools ? n_tools : 1, sizeof *ps->n_by_tool);
    ps->n_tools = n_tools;
    bool *used = calloc(ps->n ? ps->n : 1, sizeof *used);
    for (size_t t = 0; ps->by_tool && ps->n_by_tool && t < n_tools; t++) {
        ps->by_tool[t] = calloc(ps->n ? ps->n : 1, sizeof **ps->by_tool);
        for (size_t i = 0; ps->by_tool[t] && i < ps->n; i++)
            if (rule_matches(ps->rules[i], tool_names[t])) {
                ps->by_tool[t][ps->n_by_tool[t]++] = i;
                if (used)
                    used[i] = true;
            }
    }
    size_t n_unused = 0, len = 0;
    char *list = unused ? calloc(1, 4096) : NULL;
    for (size_t i = 0; used && i < ps->n; i++) {
        if (used[i])
            continue;
        n_unused++;
        if (list && len < 3800)
            len += (size_t)snprintf(list + len, 4096 - len, "%s%s", len ? ", " : "",
                                    ps->rules[i]->where);
    }
    free(used);
    if (unused)
        *unused = n_unused ? list : (free(list), NULL);
    return n_unused;
}

size_t policy_rules_for(const policy_set_t *ps, size_t tool)
{
    return ps && tool < ps->n_tools ? ps->n_by_tool[tool] : 0;
}

static void add_unique(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        if (strcmp(json_string_value(v), s) == 0)
            return;
    json_array_append_new(arr, json_string(s));
}

json_t *policy_scopes(const policy_set_t *ps)
{
    json_t *out = json_array();
    for (size_t i = 0; ps && i < ps->n; i++) {
        for (size_t k = 0; k < ps->rules[i]->scopes.n; k++)
            add_unique(out, ps->rules[i]->scopes.v[k]);
        for (size_t k = 0; k < ps->rules[i]->any_scopes.n; k++)
            add_unique(out, ps->rules[i]->any_scopes.v[k]);
    }
    return out;
}

char *policy_describe_scopes(const policy_set_t *ps, size_t tool)
{
    char buf[2048] = "";
    size_t len = 0;
    for (size_t k = 0; k < policy_rules_for(ps, tool); k++) {
        const policy_rule_t *r = ps->rules[ps->by_tool[tool][k]];
        for (size_t i = 0; i < r->scopes.n && len < sizeof buf - 300; i++) {
            bool seen = false; /* a scope two rules share is listed once */
            for (size_t p = 0; p < k && !seen; p++)
                seen = in_list(&ps->rules[ps->by_tool[tool][p]]->scopes, r->scopes.v[i]);
            if (!seen)
                len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", len ? " " : "",
                                        r->scopes.v[i]);
        }
        if (r->client_ids.n && len < sizeof buf - 300)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s(clients: %zu)",
                                    len ? " " : "", r->client_ids.n);
        if ((r->issuers.n || r->n_claims) && len < sizeof buf - 300)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s(+conditions)",
                                    len ? " " : "");
        if (r->any_scopes.n && len < sizeof buf - 300) {
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s(any of:", len ? " " : "");
            for (size_t i = 0; i < r->any_scopes.n && len < sizeof buf - 300; i++)
                len += (size_t)snprintf(buf + len, sizeof buf - len, " %s", r->any_scopes.v[i]);
            len += (size_t)snprintf(buf + len, sizeof buf - len, ")");
        }
        if (r->check_ref != LUA_NOREF && len < sizeof buf - 300)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s+check", len ? " " : "");
    }
    return strdup(len ? buf : "(no scope)");
}

/* ---- deciding ------------------------------------------------------------------------------ */


/* json_equal, except that numbers compare by value (2 and 2.0 are one claim value) */
static bool same_value(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    return json_equal(a, b);
}

static bool claim_ok(const claim_cond_t *c, const auth_caller_t *caller)
{
    json_t *have = caller ? json_object_get(caller->claims, c->name) : NULL;
    if (!have)
        return false;
    size_t i, k;
    json_t *want, *elem;
    json_array_foreach(c->values, i, want) {
        if (same_value(have, want))
            return true;
        if (json_is_array(have))
            json_array_foreach(have, k, elem)
                if (same_value(elem, want))
                    return true;
    }
    return false;
}

static bool has_scope(const auth_caller_t *caller, const char *s)
{
    return caller && auth_caller_has_scope(caller, s);
}

/* Appends a scope to the challenge list unless it is there already. */
static void want_scope(policy_decision_t *d, const char *s)
{
    size_t len = strlen(d->scopes), sl = strlen(s);
    for (const char *p = d->scopes; (p = strstr(p, s)); p += sl)
        if ((p == d->scopes || p[-1] == ' ') && (p[sl] == ' ' || p[sl] == '\0'))
            return;
    if (len + sl + 2 < sizeof d->scopes) {
        if (len)
            d->scopes[len++] = ' ';
        memcpy(d->scopes + len, s, sl + 1);
    }
}

/* src into dst[size], cut to whole UTF-8 characters if it must be cut */
static void copy_text(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n < size) {
        memcpy(dst, src, n + 1);
        return;
    }
    memcpy(dst, src, size - 1);
    dst[size - 1] = '\0';
    text_utf8_trim(dst);
}

/* Records a decision: the rule's place and the reason, formatted only when fmt has a
 * conversion (most reasons are fixed text, and vsnprintf's format parsing was a visible part
 * of every call); a cut reason stays whole UTF-8 (the answer must stay sendable). */
__attribute__((format(printf, 4, 5))) static void decide(policy_decision_t *d,
                                                          policy_verdict_t v,
                                                          const policy_rule_t *r,
                                                          const char *fmt, ...)
{
    d->verdict = v;
    copy_text(d->rule, sizeof d->rule, r ? r->where : "");
    if (!strchr(fmt, '%')) {
        copy_text(d->reason, sizeof d->reason, fmt);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof d->reason, fmt, ap);
    va_end(ap);
    text_utf8_trim(d->reason);
}

policy_verdict_t policy_static(const policy_set_t *ps, size_t tool, const auth_caller_t *caller,
                               bool dev, policy_decision_t *d)
{
    /* the strings are what is read of a decision: the 4.6 KB need no clearing */
    d->verdict = POLICY_ALLOW;
    d->reason[0] = d->scopes[0] = d->rule[0] = '\0';
    d->unguarded = false;
    size_t n = policy_rules_for(ps, tool);
    if (n == 0) {
        if (dev) {
            d->unguarded = true;
            decide(d, POLICY_ALLOW, NULL, "no policy covers this tool (--dev)");
        } else {
            decide(d, POLICY_HIDDEN, NULL, "no policy covers this tool");
        }
        return d->verdict;
    }
    /* Conditions on who the caller is come first: failing one hides the tool. */
    for (size_t k = 0; k < n; k++) {
        const policy_rule_t *r = ps->rules[ps->by_tool[tool][k]];
        if (r->issuers.n && !in_list(&r->issuers, caller ? caller->issuer : NULL)) {
            decide(d, POLICY_HIDDEN, r, "issuer not allowed");
            return d->verdict;
        }
        if (r->client_ids.n && !in_list(&r->client_ids, caller ? caller->client_id : NULL)) {
            decide(d, POLICY_HIDDEN, r, "client not allowed");
            return d->verdict;
        }
        for (size_t c = 0; c < r->n_claims; c++)
            if (!claim_ok(&r->claims[c], caller)) {
                decide(d, POLICY_HIDDEN, r, "claim %.60s does not match", r->claims[c].name);
                return d->verdict;
            }
    }
    /* Then scopes: missing ones are a challenge naming every scope the tool needs. */
    const policy_rule_t *short_rule = NULL;
    for (size_t k = 0; k < n; k++) {
        const policy_rule_t *r = ps->rules[ps->by_tool[tool][k]];
        bool missing = false;
        for (size_t i = 0; i < r->scopes.n; i++)
            missing |= !has_scope(caller, r->scopes.v[i]);
        bool any = r->any_scopes.n == 0;
        for (size_t i = 0; i < r->any_scopes.n && !any; i++)
            any = has_scope(caller, r->any_scopes.v[i]);
        if (missing || !any)
            short_rule = short_rule ? short_rule : r;
        for (size_t i = 0; i < r->scopes.n; i++)
            want_scope(d, r->scopes.v[i]);
        if (!any)
            want_scope(d, r->any_scopes.v[0]);
    }
    if (short_rule) {
        decide(d, POLICY_CHALLENGE, short_rule, "insufficient scope");
        return d->verdict;
    }
    d->scopes[0] = '\0';
    decide(d, POLICY_ALLOW, ps->rules[ps->by_tool[tool][n - 1]], "scopes and conditions met");
    return d->verdict;
}

/* Reads what a check returned (stack top). */
static void read_verdict(lua_State *co, int nres, const policy_rule_t *r, policy_decision_t *d)
{
    int base = lua_gettop(co) - nres + 1;
    if (nres >= 1 && lua_isboolean(co, base)) {
        if (lua_toboolean(co, base)) {
            decide(d, POLICY_ALLOW, r, "check allowed");
        } else {
            const char *why = nres >= 2 ? lua_tostring(co, base + 1) : NULL;
            decide(d, POLICY_DENY, r, "%.200s", why ? why : "denied by policy");
        }
        return;
    }
    bool decision = false;
    if (nres >= 1 && lua_istable(co, base) && lua_getmetatable(co, base)) {
        luaL_getmetatable(co, API_DECISION_MT);
        decision = lua_rawequal(co, -1, -2);
        lua_pop(co, 2);
    }
    if (!decision) {
        /* deny by default: a check must say allow explicitly */
        decide(d, POLICY_DENY, r, "the policy check returned no decision");
        return;
    }
    lua_getfield(co, base, "kind");
    const char *kind = lua_tostring(co, -1);
    lua_getfield(co, base, "reason");
    const char *why = lua_tostring(co, -1);
    if (kind && strcmp(kind, "allow") == 0) {
        decide(d, POLICY_ALLOW, r, "check allowed");
    } else if (kind && strcmp(kind, "challenge") == 0) {
        decide(d, POLICY_CHALLENGE, r, "%.200s", why ? why : "step-up required");
        d->scopes[0] = '\0';
        lua_getfield(co, base, "scopes");
        lua_Integer n = lua_istable(co, -1) ? (lua_Integer)lua_rawlen(co, -1) : 0;
        bool bad = n == 0;
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(co, -1, i);
            const char *sc = lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : NULL;
            if (text_scope_ok(sc))
                want_scope(d, sc);
            else
                bad = true;
            lua_pop(co, 1);
        }
        lua_pop(co, 1);
        if (bad) /* a scope that cannot go into the challenge: refuse rather than mangle it */
            decide(d, POLICY_DENY, r, "the policy check asked for an invalid scope");
    } else {
        decide(d, POLICY_DENY, r, "%.200s", why ? why : "denied by policy");
    }
    lua_pop(co, 2);
}

static void run_check(const policy_rule_t *r, vm_t *vm, const char *tool_name,
                      const auth_caller_t *caller, json_t *args, policy_decision_t *d)
{
    lua_State *L = vm_lua(vm);
    int top = lua_gettop(L);
    vm_host_begin(vm); /* these pushes run unprotected: they must not meet the cap */
    lua_State *co = vm_new_thread(L); /* anchored on L's stack while it runs */
    lua_rawgeti(co, LUA_REGISTRYINDEX, r->check_ref);
    if (caller)
        api_push_caller(co, caller);
    else
        lua_pushnil(co);
    lua_pushstring(co, tool_name);
    char *err = NULL;
    json_t *empty = args ? NULL : json_object();
    if (conv_push_json(co, args ? args : empty, &err) != 0) {
        free(err);
        lua_pushnil(co);
    }
    json_decref(empty);
    lua_createtable(co, 0, 2);
    lua_pushstring(co, tool_name);
    lua_setfield(co, -2, "tool");
    lua_pushboolean(co, 1);
    lua_setfield(co, -2, "policy");
    vm_host_end(vm);
    vm_phase_t was = vm_phase(vm);
    vm_set_phase(vm, VM_PHASE_POLICY);
    int nres = 0;
    char *msg = NULL, *trace = NULL;
    /* the check reads only the secrets its rule lists; whatever was granted before, after */
    char *const *held = NULL;
    size_t n_held = secret_granted(&held);
    secret_grant(r->secrets.v, r->secrets.n);
    vm_status_t st = vm_resume(vm, co, 4, &nres, &msg, &trace);
    secret_grant(held, n_held);
    vm_set_phase(vm, was);
    if (st == VM_OK) {
        read_verdict(co, nres, r, d);
    } else {
        /* a policy that fails denies, never allows */
        log_error("policy %s failed: %s", r->where, trace ? trace : msg ? msg : "yielded");
        decide(d, POLICY_DENY, r, "the policy check failed (%s)",
               st == VM_TIMEOUT ? "budget" : st == VM_NOMEM ? "memory" : "error");
    }
    free(msg);
    free(trace);
    lua_settop(L, top);
}

void policy_decide(const policy_set_t *ps, vm_t *vm, size_t tool, const char *tool_name,
                   const auth_caller_t *caller, json_t *args, bool dev, policy_decision_t *d)
{
    if (policy_static(ps, tool, caller, dev, d) != POLICY_ALLOW || d->unguarded)
        return;
    for (size_t k = 0; k < ps->n_by_tool[tool]; k++) {
        const policy_rule_t *r = ps->rules[ps->by_tool[tool][k]];
        if (r->check_ref == LUA_NOREF)
            continue;
        run_check(r, vm, tool_name, caller, args, d);
        if (d->verdict != POLICY_ALLOW)
            return;
    }
}

json_t *policy_loggable_args(const policy_set_t *ps, size_t tool, json_t *args)
{
    json_t *out = NULL;
    for (size_t k = 0; args && k < policy_rules_for(ps, tool); k++) {
        const policy_rule_t *r = ps->rules[ps->by_tool[tool][k]];
        for (size_t i = 0; i < r->log_args.n; i++) {
            json_t *v = json_object_get(args, r->log_args.v[i]);
            if (!v)
                continue;
            if (!out)
                out = json_object();
            json_object_set(out, r->log_args.v[i], v);
        }
    }
    return out;
}
