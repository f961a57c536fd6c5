/* mcp.http — backend requests from scripts.
 *
 * In the server a request looks synchronous to the script but is not: the binding starts the
 * transfers on the worker's fetch engine and yields the handler's coroutine to the host
 * (lua_yieldk); when the last transfer of the batch ends, the host resumes the coroutine and
 * the continuation turns the outcomes into Lua values. Meanwhile the worker serves others.
 * In mcp.so (busted) there is no host: the same requests run to completion on a private,
 * synchronous engine.
 *
 * Credentials: a tool argument marked as a credential reaches the handler as an opaque value
 * (mcp.credential) that prints as "[credential]", cannot be concatenated or converted to
 * JSON, and can only be put in a request header bound for the tool's own egress hosts. */
#include "api_http.h"

#include <curl/curl.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "luamcp/clock.h"
#include "luamcp/conv.h"
#include "luamcp/decl.h"
#include "luamcp/credscrub.h"
#include "luamcp/fetch.h"
#include "luamcp/jsonio.h"
#include "luamcp/secret.h"
#include "luamcp/tool.h"
#include "luamcp/vm.h"

#define MAX_ALL 32 /* requests in one mcp.http.all */
#define CREDENTIAL_MT "mcp.credential"
#define RESPONSE_MT "mcp.http.response"

struct http_batch {
    tool_call_t *call;  /* NULL when synchronous */
    size_t n, left;
    bool list;          /* mcp.http.all: results as a list */
    fetch_timer_t timer; /* mcp.sleep: a batch of no transfers, ended by this timer */
    fetch_t *f[];
};

/* ---- credentials ---------------------------------------------------------------------------- */

typedef struct credential {
    size_t len;
    char value[];
} credential_t;

static int credential_tostring(lua_State *L)
{
    lua_pushliteral(L, "[credential]");
    return 1;
}

static int credential_refuse(lua_State *L)
{
    return luaL_error(L, "a credential cannot be read, concatenated or compared; pass it to "
                         "mcp.http as a header value or as bearer");
}

static int credential_gc(lua_State *L)
{
    credential_t *c = luaL_checkudata(L, 1, CREDENTIAL_MT);
    memset(c->value, 0, c->len); /* do not leave it in freed memory */
    return 0;
}

static void credential_mt(lua_State *L)
{
    if (luaL_newmetatable(L, CREDENTIAL_MT)) {
        static const luaL_Reg mt[] = {{"__tostring", credential_tostring},
                                      {"__concat", credential_refuse},
                                      {"__index", credential_refuse},
                                      {"__len", credential_refuse},
                                      {"__eq", credential_refuse},
                                      {"__lt", credential_refuse},
                                      {"__le", credential_refuse},
                                      {"__gc", credential_gc},
                                      {NULL, NULL}};
        luaL_setfuncs(L, mt, 0);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_pushliteral(L, "credential");
        lua_setfield(L, -2, "__name");
    }
}

void api_push_credential(lua_State *L, const char *value, size_t len)
{
    credential_t *c = lua_newuserdatauv(L, sizeof *c + len + 1, 0);
    c->len = len;
    memcpy(c->value, value, len);
    c->value[len] = '\0';
    credential_mt(L);
    lua_setmetatable(L, -2);
}

const char *api_credential_value(lua_State *L, int idx)
{
    credential_t *c = luaL_testudata(L, idx, CREDENTIAL_MT);
    return c ? c->value : NULL;
}

/* ---- building a request --------------------------------------------------------------------- */

static const char *const FIELDS[] = {"method", "url", "query", "headers", "body", "json",
                                     "form", "bearer", "timeout_ms", "max_bytes", NULL};

/* The table at idx (string keys; string, number or boolean values) as k=v&k=v, URL-encoded,
 * pushed as a string. Built in C memory: lua_next and a luaL_Buffer do not share a stack. */
static const char SUBJECT_KEY; /* its address is mcp.oauth.SUBJECT */

void api_push_subject_placeholder(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&SUBJECT_KEY);
}

static bool is_subject(lua_State *L, int idx)
{
    return lua_touserdata(L, idx) == &SUBJECT_KEY && lua_islightuserdata(L, idx);
}

static void push_pairs(lua_State *L, int idx, const char *what, const char *subject)
{
    char *out = NULL;
    size_t len = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int t = lua_type(L, -1);
        bool sub = subject && is_subject(L, -1);
        const char *err = lua_type(L, -2) != LUA_TSTRING ? "keys must be strings"
                          : (!sub && t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
                              ? "values must be strings, numbers or booleans"
                              : NULL;
        char *ek = NULL, *ev = NULL, *grown = NULL;
        if (!err) {
            lua_pushvalue(L, -1); /* a copy: tostring on a number must not change the key */
            const char *v = sub ? subject
                            : t == LUA_TBOOLEAN ? (lua_toboolean(L, -1) ? "true" : "false")
                                                : lua_tostring(L, -1);
            ek = curl_easy_escape(NULL, lua_tostring(L, -3), 0);
            ev = curl_easy_escape(NULL, v, 0);
            lua_pop(L, 1);
            size_t need = len + (ek ? strlen(ek) : 0) + (ev ? strlen(ev) : 0) + 3;
            grown = ek && ev && need <= FETCH_MAX_BODY ? realloc(out, need) : NULL;
            if (!grown)
                err = "too large, or out of memory";
        }
        if (err) {
            curl_free(ek);
            curl_free(ev);
            free(out);
            luaL_error(L, "mcp.http: %s %s", what, err);
        }
        out = grown;
        len += (size_t)sprintf(out + len, "%s%s=%s", len ? "&" : "", ek, ev);
        curl_free(ek);
        curl_free(ev);
        lua_pop(L, 1);
    }
    lua_pushlstring(L, out ? out : "", len);
    free(out);
}

static long opt_int_field(lua_State *L, int idx, const char *k, long lo, long hi, long dflt)
{
    if (lua_getfield(L, idx, k) == LUA_TNIL) {
        lua_pop(L, 1);
        return dflt;
    }
    if (!lua_isinteger(L, -1))
        luaL_error(L, "mcp.http: %s must be an integer", k);
    lua_Integer v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (v < lo || v > hi)
        luaL_error(L, "mcp.http: %s must be between %I and %I", k, (lua_Integer)lo,
                   (lua_Integer)hi);
    return (long)v;
}

static void check_fields(lua_State *L, int idx)
{
    const char *k = decl_unknown_key(L, idx, FIELDS);
    if (k)
        luaL_error(L, "mcp.http: unknown field '%s' (method, url, query, headers, body, json, "
                      "form, bearer, timeout_ms, max_bytes)", k);
}

static void set_body(lua_State *L, fetch_t *f, const char *s, size_t n)
{
    if (n > FETCH_MAX_BODY)
        luaL_error(L, "mcp.http: request body larger than %d bytes", (int)FETCH_MAX_BODY);
    f->body = malloc(n + 1);
    if (!f->body)
        luaL_error(L, "mcp.http: out of memory");
    memcpy(f->body, s, n);
    f->body[n] = '\0';
    f->body_len = n;
}

static bool has_header(const fetch_t *f, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < f->n_headers; i++)
        if (strncasecmp(f->headers[i], name, n) == 0 && f->headers[i][n] == ':')
            return true;
    return false;
}

/* scheme://host:port of url, lower-cased, into out; false when it does not parse. */
static bool origin_of(const char *url, char *out, size_t n)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK;
    if (ok)
        snprintf(out, n, "%s://%s:%s", scheme, host, port);
    for (char *p = out; ok && *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

/* When the form at idx holds mcp.oauth.SUBJECT: the caller's access token, after checking
 * that the request goes to the origin of the issuer that signed it; else NULL. */
static const char *subject_for(lua_State *L, int idx, fetch_t *f, tool_call_t *call)
{
    bool wanted = false;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        wanted = wanted || is_subject(L, -1);
        lua_pop(L, 1);
    }
    if (!wanted)
        return NULL;
    if (!call || !call->subject_token || !call->caller || !call->caller->issuer)
        luaL_error(L, "mcp.oauth.SUBJECT: this call has no caller token (is auth off?)");
    char want[512] = "?", got[512] = "?";
    if (!origin_of(call->caller->issuer, want, sizeof want) ||
        !origin_of(f->url, got, sizeof got) || strcmp(want, got) != 0)
        luaL_error(L, "mcp.oauth.SUBJECT: the caller's token goes only to its issuer's origin "
                      "(%s), not to %s", want, got);
    f->no_redirect = true;
    if (!call->secrets)
        call->secrets = json_array();
    json_array_append_new(call->secrets, json_string(call->subject_token));
    secret_scope(call->secrets); /* this step's log lines redact it from now on */
    return call->subject_token;
}

/* A header a script may not set: Host (it would front another name past the egress
 * allowlist: the host comes from the URL), the hop-by-hop ones (RFC 9110 7.6.1: the host owns
 * the connection), Content-Length (the body's length is the body's) and Accept-Encoding (a
 * body curl does not decode would pass the credential scrub compressed). */
static const char *forbidden_header(const char *name)
{
    static const char *const hop[] = {"Connection", "Keep-Alive", "TE", "Trailer",
                                      "Transfer-Encoding", "Upgrade", NULL};
    if (strcasecmp(name, "Host") == 0)
        return "cannot be set by a script (the host comes from the URL)";
    if (strcasecmp(name, "Content-Length") == 0)
        return "cannot be set by a script (it is the body's length)";
    if (strcasecmp(name, "Accept-Encoding") == 0)
        return "cannot be set by a script (the host asks for and decodes compressed answers, "
               "so that their size is bounded and their echo of a credential scrubbed)";
    if (strncasecmp(name, "Proxy-", 6) == 0)
        return "is hop-by-hop: the host manages the connection";
    for (int i = 0; hop[i]; i++)
        if (strcasecmp(name, hop[i]) == 0)
            return "is hop-by-hop: the host manages the connection";
    return NULL;
}

/* A header name is an RFC 9110 token: no NUL, no CR or LF, no space or separator. */
static bool token_ok(const char *s, size_t n)
{
    if (n == 0 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
        if (!ok)
            return false;
    }
    return true;
}

/* Raises unless the header (name at -2, value at -1, borrowed) may be sent as the script
 * wrote it: a NUL would cut it silently, CR or LF would start another header. */
static void check_header(lua_State *L, const char *value, size_t vlen)
{
    size_t nlen;
    const char *name = lua_tolstring(L, -2, &nlen);
    if (!token_ok(name, nlen))
        luaL_error(L, "mcp.http: header name '%s' is not a token (letters, digits and "
                      "!#$%%&'*+-.^_`|~; no NUL, CR, LF or space)", name);
    const char *why = forbidden_header(name);
    if (why)
        luaL_error(L, "mcp.http: header %s %s", name, why);
    if (memchr(value, '\0', vlen) || memchr(value, '\r', vlen) || memchr(value, '\n', vlen))
        luaL_error(L, "mcp.http: header %s: a value cannot hold NUL, CR or LF", name);
}

/* Fills f from the request table at idx. Raises on a malformed request. */
static void build(lua_State *L, int idx, fetch_t *f, const config_egress_t *eg, long left_ms,
                  tool_call_t *call)
{
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    check_fields(L, idx);
    int top = lua_gettop(L);

    if (lua_getfield(L, idx, "url") != LUA_TSTRING)
        luaL_error(L, "mcp.http: url must be a string");
    size_t ulen;
    const char *url = lua_tolstring(L, -1, &ulen);
    if (ulen > 8192)
        luaL_error(L, "mcp.http: url longer than 8192 bytes");
    if (lua_getfield(L, idx, "query") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        push_pairs(L, lua_gettop(L), "query", NULL);
        const char *q = lua_tostring(L, -1);
        if (*q) {
            lua_pushstring(L, strchr(url, '?') ? "&" : "?");
            lua_insert(L, -2);
            lua_concat(L, 2);
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_concat(L, 2);
            url = lua_tostring(L, -1);
        }
    }
    f->url = strdup(url);
    lua_settop(L, top);

    bool has_body = false;
    if (lua_getfield(L, idx, "body") != LUA_TNIL) {
        size_t n;
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "mcp.http: body must be a string (json = a table sends JSON)");
        const char *s = lua_tolstring(L, -1, &n);
        set_body(L, f, s, n);
        has_body = true;
    }
    lua_pop(L, 1);
    const char *ctype = NULL;
    if (lua_getfield(L, idx, "json") != LUA_TNIL) {
        if (has_body)
            luaL_error(L, "mcp.http: give one of body, json and form");
        char *why = NULL;
        json_t *v = conv_to_json(L, -1, &why);
        if (!v) {
            lua_pushfstring(L, "mcp.http: json: %s", why ? why : "cannot convert");
            free(why);
            lua_error(L);
        }
        size_t len;
        char *s = jsonio_dump(v, &len);
        json_decref(v);
        if (!s)
            luaL_error(L, "mcp.http: out of memory");
        lua_pushlstring(L, s, len);
        free(s);
        size_t n;
        const char *js = lua_tolstring(L, -1, &n);
        set_body(L, f, js, n);
        lua_pop(L, 1);
        has_body = true;
        ctype = "application/json";
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "form") != LUA_TNIL) {
        if (has_body)
            luaL_error(L, "mcp.http: give one of body, json and form");
        luaL_checktype(L, -1, LUA_TTABLE);
        push_pairs(L, lua_gettop(L), "form", subject_for(L, lua_gettop(L), f, call));
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        set_body(L, f, s, n);
        lua_pop(L, 1);
        has_body = true;
        ctype = "application/x-www-form-urlencoded";
    }
    lua_pop(L, 1);

    const char *method = has_body ? "POST" : "GET";
    if (lua_getfield(L, idx, "method") != LUA_TNIL) {
        size_t n;
        method = luaL_checklstring(L, -1, &n);
        bool ok = n > 0 && n < sizeof f->method;
        for (size_t i = 0; ok && i < n; i++)
            ok = method[i] >= 'A' && method[i] <= 'Z';
        if (!ok)
            luaL_error(L, "mcp.http: method must be an upper-case word such as GET or POST");
        if (strcmp(method, "CONNECT") == 0 || strcmp(method, "TRACE") == 0 ||
            strcmp(method, "TRACK") == 0)
            luaL_error(L, "mcp.http: method %s is not allowed (CONNECT would tunnel past the "
                          "egress checks; TRACE echoes the request's headers)", method);
    }
    snprintf(f->method, sizeof f->method, "%s", method);
    lua_pop(L, 1);

    if (lua_getfield(L, idx, "headers") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_error(L, "mcp.http: header names must be strings");
            const char *name = lua_tostring(L, -2);
            const char *cred = api_credential_value(L, -1);
            bool text = lua_type(L, -1) == LUA_TSTRING; /* before lua_tostring converts it */
            size_t vlen = 0;
            const char *value = cred ? cred : text ? lua_tolstring(L, -1, &vlen) : NULL;
            if (!value)
                luaL_error(L, "mcp.http: header %s must be a string or a credential", name);
            check_header(L, value, cred ? strlen(cred) : vlen);
            if (fetch_add_header(f, name, value, cred != NULL) != 0)
                luaL_error(L, "mcp.http: header %s is invalid (a name without ':' and values "
                              "without CR or LF; at most %d headers)", name, FETCH_MAX_HEADERS);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "bearer") != LUA_TNIL) {
        const char *cred = api_credential_value(L, -1);
        const char *tok = cred ? cred : lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                                       : NULL;
        if (!tok)
            luaL_error(L, "mcp.http: bearer must be a string or a credential");
        size_t tlen = 0;
        if (!cred && (lua_tolstring(L, -1, &tlen), tlen != strlen(tok)))
            luaL_error(L, "mcp.http: bearer cannot hold NUL");
        if (has_header(f, "Authorization"))
            luaL_error(L, "mcp.http: give bearer or an Authorization header, not both");
        char *v = malloc(strlen(tok) + 8);
        if (!v)
            luaL_error(L, "mcp.http: out of memory");
        strcpy(v, "Bearer ");
        strcat(v, tok);
        int rc = fetch_add_header(f, "Authorization", v, cred != NULL);
        memset(v, 0, strlen(v));
        free(v);
        if (rc != 0)
            luaL_error(L, "mcp.http: bearer is invalid");
    }
    lua_pop(L, 1);
    if (ctype && !has_header(f, "Content-Type"))
        fetch_add_header(f, "Content-Type", ctype, false);

    long timeout = opt_int_field(L, idx, "timeout_ms", 1, 3600000, (long)eg->timeout_ms);
    f->timeout_ms = timeout < left_ms ? timeout : left_ms;
    f->max_bytes = (size_t)opt_int_field(L, idx, "max_bytes", 0, (long)eg->max_response_bytes,
                                         (long)eg->max_response_bytes);
}

/* ---- results -------------------------------------------------------------------------------- */

static int response_json(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "body");
    lua_replace(L, 1);
    lua_settop(L, 1);
    return api_json_decode(L);
}

/* Pushes s (n bytes) with every form of the call's credentials replaced (credscrub.h): a
 * backend that echoes one must not give the script its value. */
static void push_scrubbed(lua_State *L, const credscrub_t *cs, const char *s, size_t n)
{
    size_t len = 0;
    char *clean = cs ? credscrub_apply(cs, s, n, &len) : NULL;
    if (clean)
        lua_pushlstring(L, clean, len);
    else if (len == SIZE_MAX)
        lua_pushliteral(L, "[credential]"); /* out of memory: nothing of it rather than all */
    else
        lua_pushlstring(L, s, n);
    free(clean);
}

/* Pushes one outcome: the response table, or nil and the error (list: {error = ...}). */
static int push_outcome(lua_State *L, const fetch_t *f, bool list, const credscrub_t *cs)
{
    if (!f->status) {
        if (list) {
            lua_createtable(L, 0, 1);
            push_scrubbed(L, cs, f->error, strlen(f->error));
            lua_setfield(L, -2, "error");
            return 1;
        }
        luaL_pushfail(L);
        push_scrubbed(L, cs, f->error, strlen(f->error));
        return 2;
    }
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, f->status);
    lua_setfield(L, -2, "status");
    push_scrubbed(L, cs, f->resp ? f->resp : "", f->resp_len);
    lua_setfield(L, -2, "body");
    lua_createtable(L, 0, (int)f->n_resp_headers);
    for (size_t i = 0; i < f->n_resp_headers; i++) {
        const char *k = f->resp_headers[i];
        const char *v = k + strlen(k) + 1;
        push_scrubbed(L, cs, k, strlen(k)); /* stack: headers, name */
        if (lua_rawget(L, -2) == LUA_TSTRING) { /* repeated: joined, as HTTP allows */
            lua_pushliteral(L, ", ");
            push_scrubbed(L, cs, v, strlen(v));
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            push_scrubbed(L, cs, v, strlen(v));
        }
        push_scrubbed(L, cs, k, strlen(k));
        lua_insert(L, -2); /* stack: headers, name, value */
        lua_rawset(L, -3);
    }
    lua_setfield(L, -2, "headers");
    if (luaL_newmetatable(L, RESPONSE_MT)) {
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, response_json);
        lua_setfield(L, -2, "json");
        lua_setfield(L, -2, "__index");
    }
    lua_setmetatable(L, -2);
    return 1;
}

static void batch_free(http_batch_t *b)
{
    if (!b)
        return;
    fetch_timer_disarm(&b->timer);
    for (size_t i = 0; i < b->n; i++)
        fetch_free(b->f[i]);
    free(b);
}

void api_http_cancel(http_batch_t *b)
{
    batch_free(b); /* fetch_free cancels what still runs */
}

/* Pushes every outcome of b and frees it. */
static int push_batch(lua_State *L, http_batch_t *b)
{
    /* the credentials of the call (and the caller's token sent as mcp.oauth.SUBJECT) */
    const json_t *secrets = b->call ? b->call->secrets : NULL;
    size_t n_values = json_array_size(secrets);
    const char **values = n_values ? calloc(n_values, sizeof *values) : NULL;
    for (size_t i = 0; values && i < n_values; i++)
        values[i] = json_string_value(json_array_get(secrets, i));
    credscrub_t *cs = values ? credscrub_new(values, n_values) : NULL;
    free(values);
    if (n_values && !cs) { /* cannot scrub: hand back nothing of the responses */
        for (size_t i = 0; i < b->n; i++)
            b->f[i]->status = 0, snprintf(b->f[i]->error, sizeof b->f[i]->error, "out of memory");
    }
    int n;
    if (b->n == 0) { /* mcp.sleep */
        n = 0;
    } else if (b->list) {
        lua_createtable(L, (int)b->n, 0);
        for (size_t i = 0; i < b->n; i++) {
            push_outcome(L, b->f[i], true, cs);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        n = 1;
    } else {
        n = push_outcome(L, b->f[0], false, cs);
    }
    credscrub_free(cs);
    return n;
}

static int resumed(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    http_batch_t *b = (http_batch_t *)ctx;
    tool_call_t *call = b->call;
    call->batch = NULL;
    /* exempt from the memory cap, so these pushes cannot raise and leak b; what they take
     * still counts against the state, so the script's next allocation meets the cap */
    vm_host_begin(call->vm);
    int n = push_batch(L, b);
    vm_host_end(call->vm);
    batch_free(b);
    return n;
}

static void one_done(fetch_t *f, void *arg)
{
    (void)f;
    http_batch_t *b = arg;
    if (--b->left == 0 && b->call && b->call->wake)
        b->call->wake(b->call, b->call->wake_arg);
}

/* ---- the entry points ----------------------------------------------------------------------- */

static fetch_engine_t *sync_engine; /* mcp.so */
static config_egress_t sync_cfg = {
    .allow_http = true, .max_redirects = 3, .max_response_bytes = 8u << 20,
    .timeout_ms = 10000, .max_requests = 1000, .max_inflight = 1000,
};
static char *sync_any[] = {(char *)"*"};
static char *sync_private[] = {(char *)"0.0.0.0/0", (char *)"::/0"};

static tool_call_t *current_call(lua_State *L, const char *fn)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "luamcp.vm");
    bool hosted = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!hosted)
        return NULL;
    vm_t *vm = vm_of(L);
    switch (vm_phase(vm)) {
    case VM_PHASE_POLICY:
        luaL_error(L, "%s is not available in policies: a policy decides from the request "
                      "alone", fn);
        break;
    case VM_PHASE_TOOL:
        break;
    default:
        luaL_error(L, "%s cannot be used while a script loads; call it from a handler", fn);
    }
    tool_call_t *call = vm_current_call(vm);
    if (!call || !call->fetch)
        luaL_error(L, "%s is not available here", fn);
    if (L != call->co)
        luaL_error(L, "%s cannot be used inside a coroutine the script created", fn);
    if (!lua_isyieldable(L))
        luaL_error(L, "%s cannot be used here (inside a metamethod or a function that cannot "
                      "yield)", fn);
    return call;
}

/* Runs the requests at stack positions first..first+n-1. */
static int run(lua_State *L, int first, size_t n, bool list, const char *fn)
{
    luaL_checkstack(L, 24, fn); /* build()'s temporaries and the batch box */
    tool_call_t *call = current_call(L, fn);
    const config_egress_t *eg = call ? call->egress : &sync_cfg;
    if (call && call->requests + n > eg->max_requests)
        return luaL_error(L, "%s: more than %d backend requests in one call "
                             "(egress.max_requests)", fn, (int)eg->max_requests);
    long left_ms = 3600000;
    if (call) {
        left_ms = (long)tool_left_ms(call);
        if (left_ms <= 0)
            return luaL_error(L, "%s: the call's time is up", fn);
    }
    http_batch_t *b = calloc(1, sizeof *b + n * sizeof b->f[0]);
    if (!b)
        return luaL_error(L, "%s: out of memory", fn);
    b->n = n;
    b->list = list;
    b->call = call;
    /* a box with __gc frees b if building the requests raises */
    http_batch_t **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = b;
    if (luaL_newmetatable(L, "luamcp.http_batch_box")) {
        lua_pushcfunction(L, api_http_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    for (size_t i = 0; i < n; i++) {
        if (!(b->f[i] = fetch_new()))
            return luaL_error(L, "%s: out of memory", fn);
        b->f[i]->tool = call ? call->tool_name : "busted";
        if (call) {
            b->f[i]->tool_allow = call->tool_allow;
            b->f[i]->n_tool_allow = call->n_tool_allow;
        }
        build(L, first + (int)i, b->f[i], eg, left_ms, call);
    }
    *box = NULL; /* from here on b is freed by the continuation, the cancel path or below */
    if (call)
        call->requests += (unsigned)n;
    fetch_engine_t *e = call ? call->fetch : NULL;
    if (!e) {
        if (!sync_engine) {
            sync_cfg.allow = sync_any;
            sync_cfg.n_allow = 1;
            sync_cfg.allow_private = sync_private;
            sync_cfg.n_allow_private = 2;
            sync_engine = fetch_engine_new(&sync_cfg, false, -1, 0);
            if (!sync_engine) {
                batch_free(b);
                return luaL_error(L, "%s: cannot start libcurl", fn);
            }
        }
        e = sync_engine;
    }
    b->left = n;
    for (size_t i = 0; i < n; i++)
        if (fetch_start(e, b->f[i], one_done, b) != 0)
            b->left--; /* refused at once: its error is its outcome */
    if (b->left && !call)
        fetch_engine_run(e);
    if (b->left == 0 || !call) {
        int nres = push_batch(L, b);
        batch_free(b);
        return nres;
    }
    call->batch = b;
    return lua_yieldk(L, 0, (lua_KContext)b, resumed);
}

static void slept(void *arg)
{
    http_batch_t *b = arg;
    if (b->call && b->call->wake)
        b->call->wake(b->call, b->call->wake_arg);
}

/* mcp.sleep(seconds): the handler waits without holding its worker (a pause between polls of
 * a job API, a backoff), never past its call's deadline. */
int api_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    luaL_argcheck(L, s >= 0 && s <= 86400, 1, "seconds from 0 to 86400");
    tool_call_t *call = current_call(L, "mcp.sleep");
    long ms = (long)(s * 1000.0 + 0.5);
    if (!call) { /* mcp.so under busted: nothing else runs meanwhile */
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
        return 0;
    }
    double left = tool_left_ms(call);
    if (ms > left) {
        char msg[120]; /* luaL_error knows no precision */
        snprintf(msg, sizeof msg, "mcp.sleep: %.3f s is past the call's deadline (%.0f ms left)",
                 (double)s, left > 0 ? left : 0.0);
        return luaL_error(L, "%s", msg);
    }
    if (ms == 0)
        return 0;
    http_batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return luaL_error(L, "mcp.sleep: out of memory");
    b->call = call;
    b->timer.fire = slept;
    b->timer.arg = b;
    fetch_timer_arm(call->fetch, &b->timer, ms);
    call->batch = b;
    return lua_yieldk(L, 0, (lua_KContext)b, resumed);
}

int api_http_box_gc(lua_State *L)
{
    http_batch_t **box = lua_touserdata(L, 1);
    if (box && *box) {
        batch_free(*box);
        *box = NULL;
    }
    return 0;
}

static int l_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    return run(L, 1, 1, false, "mcp.http.request");
}

/* get(url [, opts]) and post(url, body_or_json_table [, opts]) */
static int shorthand(lua_State *L, const char *method, const char *fn)
{
    luaL_checkstring(L, 1);
    bool post = strcmp(method, "POST") == 0;
    int opts = post ? 3 : 2;
    lua_settop(L, opts);
    lua_createtable(L, 0, 8);
    if (!lua_isnil(L, opts)) {
        luaL_checktype(L, opts, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, opts)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -4);
        }
    }
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "url");
    lua_pushstring(L, method);
    lua_setfield(L, -2, "method");
    if (post) {
        if (lua_type(L, 2) == LUA_TSTRING)
            lua_pushvalue(L, 2), lua_setfield(L, -2, "body");
        else if (lua_istable(L, 2))
            lua_pushvalue(L, 2), lua_setfield(L, -2, "json");
        else if (!lua_isnil(L, 2))
            return luaL_argerror(L, 2, "a body string or a table sent as JSON");
    }
    int top = lua_gettop(L);
    return run(L, top, 1, false, fn);
}

static int l_get(lua_State *L) { return shorthand(L, "GET", "mcp.http.get"); }
static int l_post(lua_State *L) { return shorthand(L, "POST", "mcp.http.post"); }

static int l_all(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    size_t n = (size_t)lua_rawlen(L, 1);
    if (n == 0) {
        lua_newtable(L);
        return 1;
    }
    if (n > MAX_ALL)
        return luaL_error(L, "mcp.http.all: at most %d requests at once", MAX_ALL);
    luaL_checkstack(L, (int)n + 24, "mcp.http.all"); /* the requests, then run's own pushes */
    for (size_t i = 1; i <= n; i++)
        lua_rawgeti(L, 1, (lua_Integer)i);
    return run(L, 2, n, true, "mcp.http.all");
}

void api_http_push(lua_State *L)
{
    static const luaL_Reg fns[] = {{"request", l_request}, {"get", l_get}, {"post", l_post},
                                   {"all", l_all}, {NULL, NULL}};
    credential_mt(L);
    lua_pop(L, 1);
    luaL_newlib(L, fns);
}
