#include "luamcp/catalog.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/api.h"
#include "luamcp/conv.h"
#include "luamcp/decl.h"
#include "luamcp/log.h"
#include "luamcp/secret.h"
#include "luamcp/text.h"

#define MAX_URI 2048

/* ---- declarations --------------------------------------------------------------------------- */

static int check_keys(lua_State *L, int idx, const char *const *known, const char *list,
                      char **err)
{
    const char *k = decl_unknown_key(L, idx, known);
    if (!k)
        return 0;
    *err = decl_fmt("unknown field '%.60s' (fields: %s)", k, list);
    return -1;
}

static int function_field(lua_State *L, int idx, const char *key, bool required, char **err)
{
    int t = lua_getfield(L, idx, key);
    lua_pop(L, 1);
    if (t == LUA_TFUNCTION || (t == LUA_TNIL && !required))
        return 0;
    *err = decl_fmt("'%s' must be a function(args, ctx)", key);
    return -1;
}

static int prompt_arguments(lua_State *L, int idx, json_t *desc, char **err)
{
    if (lua_getfield(L, idx, "arguments") == LUA_TNIL)
        return lua_pop(L, 1), 0;
    int rc = -1;
    json_t *list = json_array();
    size_t n = lua_istable(L, -1) ? (size_t)lua_rawlen(L, -1) : 0;
    if (!lua_istable(L, -1) || n > 64) {
        *err = strdup("'arguments' must be a list of at most 64 { name =, description =, "
                      "required = } tables");
        goto done;
    }
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i);
        int a = lua_gettop(L);
        json_t *arg = json_object();
        static const char *const known[] = {"name", "title", "description", "required", NULL};
        bool bad = !lua_istable(L, a) ||
                   check_keys(L, a, known, "name, title, description, required", err) ||
                   decl_string_field(L, a, "name", true, arg, err) ||
                   decl_string_field(L, a, "title", false, arg, err) ||
                   decl_string_field(L, a, "description", false, arg, err);
        if (!bad) {
            int t = lua_getfield(L, a, "required");
            if (t == LUA_TBOOLEAN)
                json_object_set_new(arg, "required", json_boolean(lua_toboolean(L, -1)));
            bad = t != LUA_TBOOLEAN && t != LUA_TNIL;
            if (bad)
                *err = strdup("an argument's 'required' must be a boolean");
            lua_pop(L, 1);
        }
        for (size_t k = 0; !bad && k < json_array_size(list); k++)
            if (json_equal(json_object_get(json_array_get(list, k), "name"),
                           json_object_get(arg, "name"))) {
                *err = decl_fmt("argument '%s' is declared twice",
                           json_string_value(json_object_get(arg, "name")));
                bad = true;
            }
        lua_pop(L, 1);
        if (bad) {
            if (!*err)
                *err = decl_fmt("arguments[%zu] must be a table with a 'name'", i);
            json_decref(arg);
            goto done;
        }
        json_array_append_new(list, arg);
    }
    json_object_set_new(desc, "arguments", list);
    list = NULL;
    rc = 0;
done:
    json_decref(list);
    lua_pop(L, 1);
    return rc;
}

int prompt_from_def(lua_State *L, int idx, prompt_t *out, char **err)
{
    static const char *const known[] = {"name", "title", "description", "arguments", "handler",
                                        "complete", "icons", "_meta", NULL};
    idx = lua_absindex(L, idx);
    memset(out, 0, sizeof *out);
    out->handler_ref = out->complete_ref = LUA_NOREF;
    out->descriptor = json_object();
    *err = NULL;
    if (!out->descriptor ||
        check_keys(L, idx, known, "name, title, description, arguments, handler, complete, "
                                  "icons, _meta", err) ||
        decl_string_field(L, idx, "name", true, out->descriptor, err))
        goto fail;
    out->name = strdup(json_string_value(json_object_get(out->descriptor, "name")));
    if (!tool_name_valid(out->name)) {
        *err = decl_fmt("invalid prompt name '%.200s': use 1 to 128 of A-Z a-z 0-9 _ - .", out->name);
        goto fail;
    }
    if (decl_string_field(L, idx, "title", false, out->descriptor, err) ||
        decl_string_field(L, idx, "description", true, out->descriptor, err) ||
        prompt_arguments(L, idx, out->descriptor, err) ||
        decl_json_field(L, idx, "icons", out->descriptor, err) ||
        decl_json_field(L, idx, "_meta", out->descriptor, err) ||
        function_field(L, idx, "handler", true, err) ||
        function_field(L, idx, "complete", false, err))
        goto fail;
    return 0;
fail:
    if (!*err)
        *err = strdup("out of memory");
    if (out->name) {
        char *m = decl_fmt("prompt '%s': %s", out->name, *err);
        free(*err);
        *err = m;
    }
    prompt_clear(out);
    return -1;
}

/* A template's expressions: {name} or {+name}, names of A-Z a-z 0-9 _ and '.', at most
 * CATALOG_MAX_VARS, no nesting. */
static bool template_valid(const char *t)
{
    int vars = 0;
    for (const char *p = t; *p; p++) {
        if (*p == '}')
            return false;
        if (*p != '{')
            continue;
        const char *end = strchr(p, '}');
        const char *name = p + 1 + (p[1] == '+');
        if (!end || end == name || ++vars > CATALOG_MAX_VARS)
            return false;
        for (const char *c = name; c < end; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '.'))
                return false;
        if (end[1] == '{') /* two variables in a row cannot be told apart */
            return false;
        p = end;
    }
    return vars > 0;
}

int resource_from_def(lua_State *L, int idx, bool is_template, resource_t *out, char **err)
{
    static const char *const known_static[] = {"uri", "name", "title", "description",
                                               "mimeType", "size", "annotations", "handler",
                                               "icons", "_meta", NULL};
    static const char *const known_tmpl[] = {"uriTemplate", "name", "title", "description",
                                             "mimeType", "annotations", "handler", "complete",
                                             "icons", "_meta", NULL};
    idx = lua_absindex(L, idx);
    memset(out, 0, sizeof *out);
    out->handler_ref = out->complete_ref = LUA_NOREF;
    out->descriptor = json_object();
    *err = NULL;
    const char *ukey = is_template ? "uriTemplate" : "uri";
    if (!out->descriptor ||
        check_keys(L, idx, is_template ? known_tmpl : known_static,
                   is_template ? "uriTemplate, name, title, description, mimeType, "
                                 "annotations, handler, complete, icons, _meta"
                               : "uri, name, title, description, mimeType, size, annotations, "
                                 "handler, icons, _meta",
                   err) ||
        decl_string_field(L, idx, ukey, true, out->descriptor, err))
        goto fail;
    const char *u = json_string_value(json_object_get(out->descriptor, ukey));
    if (strlen(u) > MAX_URI || !strchr(u, ':') || strpbrk(u, " \t\r\n")) {
        *err = decl_fmt("'%s' must be an absolute URI (scheme:...) of at most %d bytes", ukey,
                   MAX_URI);
        goto fail;
    }
    if (is_template && !template_valid(u)) {
        *err = decl_fmt("'uriTemplate' %.200s is not a template of {name} or {+name} variables "
                   "(at most %d, never two in a row)", u, CATALOG_MAX_VARS);
        goto fail;
    }
    if (!is_template && strchr(u, '{')) {
        *err = strdup("a static resource's 'uri' cannot hold {variables}: use "
                      "mcp.resource_template");
        goto fail;
    }
    *(is_template ? &out->uri_template : &out->uri) = strdup(u);
    out->key = is_template ? out->uri_template : out->uri;
    if (decl_string_field(L, idx, "name", true, out->descriptor, err) ||
        decl_string_field(L, idx, "title", false, out->descriptor, err) ||
        decl_string_field(L, idx, "description", false, out->descriptor, err) ||
        decl_string_field(L, idx, "mimeType", false, out->descriptor, err) ||
        decl_json_field(L, idx, "annotations", out->descriptor, err) ||
        decl_json_field(L, idx, "icons", out->descriptor, err) ||
        decl_json_field(L, idx, "_meta", out->descriptor, err) ||
        function_field(L, idx, "handler", true, err) ||
        (is_template && function_field(L, idx, "complete", false, err)))
        goto fail;
    if (!is_template && lua_getfield(L, idx, "size") != LUA_TNIL) {
        bool ok = lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0;
        if (ok)
            json_object_set_new(out->descriptor, "size", json_integer(lua_tointeger(L, -1)));
        lua_pop(L, 1);
        if (!ok) {
            *err = strdup("'size' must be a non-negative integer (bytes)");
            goto fail;
        }
    } else if (!is_template) {
        lua_pop(L, 1);
    }
    json_t *mt = json_object_get(out->descriptor, "mimeType");
    if (mt)
        out->mime_type = strdup(json_string_value(mt));
    return 0;
fail:
    if (!*err)
        *err = strdup("out of memory");
    if (out->key) {
        char *m = decl_fmt("resource '%s': %s", out->key, *err);
        free(*err);
        *err = m;
    }
    resource_clear(out);
    return -1;
}

void prompt_clear(prompt_t *p)
{
    free(p->name);
    free(p->file);
    json_decref(p->descriptor);
    memset(p, 0, sizeof *p);
    p->handler_ref = p->complete_ref = LUA_NOREF;
}

void resource_clear(resource_t *r)
{
    free(r->uri);
    free(r->uri_template);
    free(r->mime_type);
    free(r->file);
    json_decref(r->descriptor);
    memset(r, 0, sizeof *r);
    r->handler_ref = r->complete_ref = LUA_NOREF;
}

const char *prompt_check_args(const prompt_t *p, json_t *args, char *buf, size_t n)
{
    json_t *decl = json_object_get(p->descriptor, "arguments");
    const char *k;
    json_t *v;
    json_object_foreach(args, k, v) {
        bool known = false;
        size_t i;
        json_t *a;
        json_array_foreach(decl, i, a)
            known = known || strcmp(json_string_value(json_object_get(a, "name")), k) == 0;
        if (!known) {
            snprintf(buf, n, "Invalid params: prompt '%s' has no argument '%.64s'", p->name, k);
            return buf;
        }
        if (!json_is_string(v)) {
            snprintf(buf, n, "Invalid params: argument '%.64s' must be a string", k);
            return buf;
        }
    }
    size_t i;
    json_t *a;
    json_array_foreach(decl, i, a) {
        const char *name = json_string_value(json_object_get(a, "name"));
        if (json_is_true(json_object_get(a, "required")) && !json_object_get(args, name)) {
            snprintf(buf, n, "Invalid params: missing required argument '%s'", name);
            return buf;
        }
    }
    return NULL;
}

/* ---- URI templates ------------------------------------------------------------------------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* s[0..n) percent-decoded; NULL when a %XX is malformed or decodes to NUL, or (simple) to
 * '/', which a simple variable never spans. */
static char *decode(const char *s, size_t n, bool simple)
{
    char *out = malloc(n + 1), *o = out;
    for (size_t i = 0; out && i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int a = i + 1 < n ? hexval(s[i + 1]) : -1, b = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (a < 0 || b < 0 || (a == 0 && b == 0) || (simple && a * 16 + b == '/')) {
            free(out);
            return NULL;
        }
        *o++ = (char)(a * 16 + b);
        i += 2;
    }
    if (out)
        *o = '\0';
    return out;
}

#define MATCH_MAX_STEPS 100000 /* a URI that needs more is not a match (no backtracking bombs) */

/* Recursive matcher: t (template rest) against u (URI rest); *steps counts the work. */
static bool match_at(const char *t, const char *u, json_t *vars, int depth, long *steps)
{
    if (depth > CATALOG_MAX_VARS + 1 || ++*steps > MATCH_MAX_STEPS)
        return false;
    while (*t && *t != '{') {
        if (*t != *u)
            return false;
        t++;
        u++;
    }
    if (!*t)
        return !*u;
    bool reserved = t[1] == '+';
    const char *name = t + 1 + reserved, *end = strchr(t, '}');
    const char *rest = end + 1;
    /* a simple variable stops at '/', '?', '#' and the next literal; {+var} may span them */
    for (size_t len = 1; u[len - 1]; len++) {
        char c = u[len - 1];
        if (!reserved && (c == '/' || c == '?' || c == '#'))
            break;
        if (*steps > MATCH_MAX_STEPS)
            return false;
        if (match_at(rest, u + len, vars, depth + 1, steps)) {
            char *value = decode(u, len, !reserved);
            if (!value)
                return false;
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(end - name), name);
            json_t *s = json_string(value);
            free(value);
            if (!s)
                return false; /* not UTF-8 */
            json_object_set_new(vars, key, s);
            return true;
        }
    }
    return false;
}

bool resource_template_match(const char *tmpl, const char *uri, json_t **vars)
{
    *vars = json_object();
    long steps = 0;
    if (*vars && strlen(uri) <= MAX_URI && match_at(tmpl, uri, *vars, 0, &steps))
        return true;
    json_decref(*vars);
    *vars = NULL;
    return false;
}

/* ---- results -------------------------------------------------------------------------------- */

static json_t *fail_with(tool_call_t *call, int code, const char *fmt_, ...)
{
    /* the message may quote a handler's text: formatted whole, redacted, then cut (a secret
     * across the cut would leave its prefix) */
    char whole[8192];
    va_list ap;
    va_start(ap, fmt_);
    int n = vsnprintf(whole, sizeof whole, fmt_, ap);
    va_end(ap);
    secret_redact_cut(whole, sizeof call->rpc_message - 1, n < 0 || (size_t)n >= sizeof whole);
    memcpy(call->rpc_message, whole, strlen(whole) + 1); /* fits: cut to its size above */
    text_utf8_trim(call->rpc_message);
    call->rpc_error = code;
    return json_null();
}

/* `nil, "message"` from a handler: the message (or a default). */
static const char *handler_message(lua_State *co, int base, int nres)
{
    const char *m = nres >= 2 ? lua_tostring(co, base + 1) : NULL;
    return m ? m : "the handler returned nothing";
}

/* One prompt message from the value at idx: { role =, content = } or a content item or a
 * string (a user message). NULL with *why. */
static json_t *prompt_message(lua_State *co, int idx, char **why)
{
    idx = lua_absindex(co, idx);
    if (lua_type(co, idx) == LUA_TSTRING)
        return json_pack("{s:s, s:{s:s, s:s}}", "role", "user", "content", "type", "text",
                         "text", lua_tostring(co, idx));
    if (!lua_istable(co, idx)) {
        *why = strdup("a message must be a string, a content item or { role =, content = }");
        return NULL;
    }
    if (api_has_mt(co, idx, API_CONTENT_MT)) {
        json_t *c = conv_to_json(co, idx, why);
        return c ? json_pack("{s:s, s:o}", "role", "user", "content", c) : NULL;
    }
    lua_getfield(co, idx, "role");
    const char *role = lua_tostring(co, -1);
    bool role_ok = role && (strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0);
    json_t *m = role_ok ? json_pack("{s:s}", "role", role) : NULL;
    lua_pop(co, 1);
    if (!m) {
        *why = strdup("a message's role must be \"user\" or \"assistant\"");
        return NULL;
    }
    lua_getfield(co, idx, "content");
    json_t *c = lua_type(co, -1) == LUA_TSTRING
                    ? json_pack("{s:s, s:s}", "type", "text", "text", lua_tostring(co, -1))
                    : lua_istable(co, -1) ? conv_to_json(co, -1, why) : NULL;
    lua_pop(co, 1);
    if (!c || !json_is_string(json_object_get(c, "type"))) {
        json_decref(c);
        json_decref(m);
        if (!*why)
            *why = strdup("a message's content must be text or a content item (mcp.text, "
                          "mcp.image, mcp.resource …)");
        return NULL;
    }
    json_object_set_new(m, "content", c);
    return m;
}

json_t *prompt_convert(lua_State *co, int nres, tool_call_t *call)
{
    int base = lua_gettop(co) - nres + 1;
    if (nres == 0 || lua_isnil(co, base))
        return fail_with(call, -32603, "Internal error: prompt '%s': %s", call->tool_name,
                         handler_message(co, base, nres));
    int list = base, top = lua_gettop(co);
    json_t **messages_slot = conv_anchor(co, json_array()), **res_slot = conv_anchor(co, json_object());
    json_t *messages = *messages_slot, *res = *res_slot; /* owned by the anchors until the end */
    char *why = NULL;
    if (lua_istable(co, base) && !api_has_mt(co, base, API_CONTENT_MT)) {
        if (lua_getfield(co, base, "messages") != LUA_TNIL) { /* { messages =, description = } */
            list = lua_gettop(co);
            lua_getfield(co, base, "description");
            if (lua_type(co, -1) == LUA_TSTRING)
                json_object_set_new(res, "description", json_string(lua_tostring(co, -1)));
        } else {
            lua_pop(co, 1);
        }
    }
    bool is_list = false; /* a list of messages, rather than one */
    if (lua_istable(co, list) && !api_has_mt(co, list, API_CONTENT_MT)) {
        is_list = lua_getfield(co, list, "role") == LUA_TNIL;
        lua_pop(co, 1);
    }
    if (is_list) {
        lua_Integer n = (lua_Integer)lua_rawlen(co, list);
        for (lua_Integer i = 1; i <= n && !why; i++) {
            lua_rawgeti(co, list, i);
            json_t *m = prompt_message(co, -1, &why);
            lua_pop(co, 1);
            if (m)
                json_array_append_new(messages, m);
        }
    } else {
        json_t *m = prompt_message(co, list, &why);
        if (m)
            json_array_append_new(messages, m);
    }
    conv_unanchor(messages_slot);
    conv_unanchor(res_slot);
    lua_settop(co, top);
    if (why || json_array_size(messages) == 0) {
        log_error("prompt %s: its result cannot be used: %s", call->tool_name,
                  why ? why : "no messages");
        free(why);
        json_decref(messages);
        json_decref(res);
        return fail_with(call, -32603, "Internal error: prompt '%s' returned no usable "
                         "messages (see server log)", call->tool_name);
    }
    json_object_set_new(res, "messages", messages);
    return res;
}

/* One entry of contents: a string, { text = | blob =, mimeType =, uri = }, or an embedded
 * resource content item (mcp.resource). */
static json_t *resource_content(lua_State *co, int idx, tool_call_t *call, char **why)
{
    idx = lua_absindex(co, idx);
    const char *mime = call->mime_type ? call->mime_type : "text/plain";
    if (lua_type(co, idx) == LUA_TSTRING)
        return json_pack("{s:s, s:s, s:s}", "uri", call->uri, "mimeType", mime, "text",
                         lua_tostring(co, idx));
    if (!lua_istable(co, idx)) {
        *why = strdup("contents must be text, a { text = } or { blob = } table, or a list of "
                      "them");
        return NULL;
    }
    json_t *c = conv_to_json(co, idx, why);
    if (!c)
        return NULL;
    if (json_is_string(json_object_get(c, "type")) &&
        strcmp(json_string_value(json_object_get(c, "type")), "resource") == 0) {
        json_t *inner = json_incref(json_object_get(c, "resource"));
        json_decref(c);
        c = inner;
    }
    bool text = json_is_string(json_object_get(c, "text"));
    bool blob = json_is_string(json_object_get(c, "blob"));
    if (!json_is_object(c) || text == blob) {
        json_decref(c);
        *why = strdup("a content needs exactly one of text and blob (base64)");
        return NULL;
    }
    if (!json_object_get(c, "uri"))
        json_object_set_new(c, "uri", json_string(call->uri));
    if (!json_object_get(c, "mimeType") && (call->mime_type || text))
        json_object_set_new(c, "mimeType", json_string(mime));
    return c;
}

json_t *resource_convert(lua_State *co, int nres, tool_call_t *call)
{
    int base = lua_gettop(co) - nres + 1;
    if (nres == 0 || lua_isnil(co, base))
        return fail_with(call, -32603, "Internal error: reading %s failed: %s", call->uri,
                         handler_message(co, base, nres));
    json_t **slot = conv_anchor(co, json_array());
    json_t *contents = *slot;
    char *why = NULL;
    bool list = lua_istable(co, base) && lua_rawlen(co, base) > 0;
    if (list) {
        lua_Integer n = (lua_Integer)lua_rawlen(co, base);
        for (lua_Integer i = 1; i <= n && !why; i++) {
            lua_rawgeti(co, base, i);
            json_t *c = resource_content(co, -1, call, &why);
            lua_pop(co, 1);
            if (c)
                json_array_append_new(contents, c);
        }
    } else {
        json_t *c = resource_content(co, base, call, &why);
        if (c)
            json_array_append_new(contents, c);
    }
    conv_unanchor(slot);
    if (why) {
        log_error("resource %s: its result cannot be used: %s", call->tool_name, why);
        free(why);
        json_decref(contents);
        return fail_with(call, -32603, "Internal error: reading %s returned nothing usable "
                         "(see server log)", call->uri);
    }
    return json_pack("{s:o}", "contents", contents);
}

json_t *completion_convert(lua_State *co, int nres, tool_call_t *call)
{
    int base = lua_gettop(co) - nres + 1;
    if (nres == 0 || lua_isnil(co, base))
        return json_pack("{s:{s:[]}}", "completion", "values");
    if (!lua_istable(co, base))
        return fail_with(call, -32603, "Internal error: a completion returns a list of strings");
    int list = base;
    bool wrapped = lua_getfield(co, base, "values") == LUA_TTABLE;
    if (wrapped)
        list = lua_gettop(co);
    else
        lua_pop(co, 1);
    json_t **slot = conv_anchor(co, json_array());
    json_t *values = *slot;
    lua_Integer n = (lua_Integer)lua_rawlen(co, list);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(co, list, i);
        json_t *s = lua_type(co, -1) == LUA_TSTRING ? json_string(lua_tostring(co, -1)) : NULL;
        lua_pop(co, 1);
        if (!s) {
            json_decref(conv_unanchor(slot));
            return fail_with(call, -32603, "Internal error: completion values must be strings");
        }
        if (i <= 100) /* the protocol's bound; the total still counts them all */
            json_array_append_new(values, s);
        else
            json_decref(s);
    }
    conv_unanchor(slot);
    json_t **cslot = conv_anchor(co, json_pack("{s:o, s:I, s:b}", "values", values, "total",
                                               (json_int_t)n, "hasMore", n > 100));
    json_t *c = *cslot;
    if (wrapped) {
        lua_getfield(co, base, "total");
        if (lua_isinteger(co, -1) && lua_tointeger(co, -1) >= n)
            json_object_set_new(c, "total", json_integer(lua_tointeger(co, -1)));
        lua_getfield(co, base, "hasMore");
        if (lua_isboolean(co, -1))
            json_object_set_new(c, "hasMore", json_boolean(lua_toboolean(co, -1)));
        lua_pop(co, 2); /* the rest goes with the protected call's stack */
    }
    conv_unanchor(cslot);
    return json_pack("{s:o}", "completion", c);
}
