#include "luamcp/tool.h"

#include <lauxlib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luamcp/api.h"
#include "api_http.h"
#include "jose_int.h"
#include "luamcp/clock.h"
#include "luamcp/conv.h"
#include "luamcp/decl.h"
#include "luamcp/egress.h"
#include "luamcp/jsonio.h"
#include "luamcp/log.h"
#include "luamcp/secret.h"
#include "luamcp/session.h"
#include "luamcp/text.h"

/* ---- declaration ------------------------------------------------------------------------- */

bool tool_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TOOL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}


/* Converts field `key` of the table at idx (an object schema) and compiles it. */
static int schema_field(lua_State *L, int idx, const char *key, json_t *desc, schema_t **out,
                        char **err)
{
    int rc = -1;
    char *why = NULL;
    json_t *js = NULL;
    lua_getfield(L, idx, key);
    if (!lua_istable(L, -1)) {
        *err = decl_fmt("'%s' must be a table (a JSON Schema object)", key);
        goto done;
    }
    js = conv_to_json(L, -1, &why);
    if (!js) {
        *err = decl_fmt("'%s': %s", key, why);
        goto done;
    }
    json_t *type = json_object_get(js, "type");
    if (!json_is_object(js) || !json_is_string(type) || strcmp(json_string_value(type), "object")) {
        *err = decl_fmt("'%s' must have type = \"object\"", key);
        goto done;
    }
    *out = schema_compile(js, &why);
    if (!*out) {
        *err = decl_fmt("'%s': %s", key, why);
        goto done;
    }
    json_object_set_new(desc, key, js);
    js = NULL;
    rc = 0;
done:
    json_decref(js);
    free(why);
    lua_pop(L, 1);
    return rc;
}

static int check_keys(lua_State *L, int idx, char **err)
{
    static const char *const known[] = {"name", "title", "description", "inputSchema",
                                        "outputSchema", "annotations", "handler", "icons",
                                        "_meta", "egress", "credentials", "secrets",
                                        "requires", "task", NULL};
    const char *k = decl_unknown_key(L, idx, known);
    if (!k)
        return 0;
    *err = decl_fmt("unknown field '%.60s' (fields: name, title, description, inputSchema, "
               "outputSchema, annotations, handler, icons, _meta, egress, credentials, "
               "secrets, requires, task)", k);
    return -1;
}

/* A list of strings (field key) into a NULL-ended array. */
static int list_field(lua_State *L, int idx, const char *key, char ***out, size_t *n, char **err)
{
    if (lua_getfield(L, idx, key) == LUA_TNIL)
        return lua_pop(L, 1), 0;
    size_t len = lua_istable(L, -1) ? (size_t)lua_rawlen(L, -1) : 0;
    if (!len || len > 64) {
        lua_pop(L, 1);
        *err = decl_fmt("'%s' must be a list of 1 to 64 strings", key);
        return -1;
    }
    *out = calloc(len + 1, sizeof **out);
    if (!*out) {
        lua_pop(L, 1);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        if (!v || !*v || strlen(v) > 255) {
            lua_pop(L, 2);
            *err = decl_fmt("'%s' entry %zu must be a non-empty string", key, i + 1);
            return -1;
        }
        if (!((*out)[*n] = strdup(v))) {
            lua_pop(L, 2);
            return -1; /* out of memory: the caller's default message */
        }
        (*n)++;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* The tool's own egress list: host patterns as egress.allow takes them (a URL there would
 * match no host, silently). */
static int check_egress(const tool_t *t, char **err)
{
    for (size_t i = 0; i < t->n_egress; i++)
        if (!egress_pattern_valid(t->egress[i])) {
            *err = decl_fmt("'egress' entry '%.100s' is not a host pattern (api.example.com, "
                            "*.example.com, host:port, [v6]:port)", t->egress[i]);
            return -1;
        }
    return 0;
}

/* Secrets granted: names as the secrets file takes them. */
static int check_secrets(const tool_t *t, char **err)
{
    for (size_t i = 0; i < t->n_secrets; i++)
        if (!secret_name_valid(t->secrets[i])) {
            *err = decl_fmt("'secrets' entry '%.70s' is not a secret name (1 to 64 of A-Z a-z "
                            "0-9 _)", t->secrets[i]);
            return -1;
        }
    return 0;
}

/* Credentials: each a string property of the input schema, and the tool must say which hosts
 * may receive them. */
static int check_credentials(tool_t *t, char **err)
{
    if (!t->n_credentials)
        return 0;
    if (!t->n_egress) {
        *err = strdup("a tool with credentials must list the hosts they may be sent to in "
                      "'egress'");
        return -1;
    }
    json_t *props = json_object_get(json_object_get(t->descriptor, "inputSchema"), "properties");
    for (size_t i = 0; i < t->n_credentials; i++) {
        json_t *p = json_object_get(props, t->credentials[i]);
        json_t *type = json_object_get(p, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "string") != 0) {
            *err = decl_fmt("credential '%s' must be a property of inputSchema with type = "
                       "\"string\"", t->credentials[i]);
            return -1;
        }
    }
    for (size_t i = 0; i < t->n_egress; i++)
        if (strcmp(t->egress[i], "*") == 0) {
            *err = strdup("'egress' of a tool cannot be \"*\": name the hosts");
            return -1;
        }
    return 0;
}

/* `requires = { "sampling", "elicitation" }`: client capabilities the tool cannot do without. */
static int requires_field(lua_State *L, int idx, tool_t *t, char **err)
{
    char **v = NULL;
    size_t n = 0;
    if (list_field(L, idx, "requires", &v, &n, err))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], "sampling") == 0)
            t->requires_caps |= SESSION_CAP_SAMPLING;
        else if (strcmp(v[i], "elicitation") == 0)
            t->requires_caps |= SESSION_CAP_ELICITATION;
        else if (!rc) {
            *err = decl_fmt("'requires' names sampling or elicitation, not '%.60s'", v[i]);
            rc = -1;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    return rc;
}

/* `task = "optional" | "required"`: the call may go on as a task (2026-07-28 tasks extension)
 * when the client can take one; "required": a client that cannot is refused. */
static int task_field(lua_State *L, int idx, tool_t *t, char **err)
{
    int type = lua_getfield(L, idx, "task");
    const char *v = type == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int rc = 0;
    if (type == LUA_TNIL)
        t->task = TOOL_TASK_NEVER;
    else if (v && strcmp(v, "optional") == 0)
        t->task = TOOL_TASK_OPTIONAL;
    else if (v && strcmp(v, "required") == 0)
        t->task = TOOL_TASK_REQUIRED;
    else {
        *err = strdup("'task' must be \"optional\" or \"required\"");
        rc = -1;
    }
    lua_pop(L, 1);
    return rc;
}

int tool_from_def(lua_State *L, int idx, tool_t *out, char **err)
{
    idx = lua_absindex(L, idx);
    memset(out, 0, sizeof *out);
    out->handler_ref = LUA_NOREF;
    out->descriptor = json_object();
    *err = NULL;
    if (!out->descriptor || check_keys(L, idx, err))
        goto fail;

    if (lua_getfield(L, idx, "name") != LUA_TSTRING) {
        lua_pop(L, 1);
        *err = strdup("'name' must be a string");
        goto fail;
    }
    out->name = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (!tool_name_valid(out->name)) {
        *err = decl_fmt("invalid tool name '%.200s': use 1 to 128 of A-Z a-z 0-9 _ - .",
                   out->name);
        goto fail;
    }
    json_object_set_new(out->descriptor, "name", json_string(out->name));
    if (decl_string_field(L, idx, "title", false, out->descriptor, err) ||
        decl_string_field(L, idx, "description", true, out->descriptor, err) ||
        schema_field(L, idx, "inputSchema", out->descriptor, &out->input, err))
        goto fail;
    lua_getfield(L, idx, "outputSchema");
    bool has_output = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (has_output && schema_field(L, idx, "outputSchema", out->descriptor, &out->output, err))
        goto fail;
    if (xheaders_read(json_object_get(out->descriptor, "inputSchema"), &out->headers, err))
        goto fail;
    if (decl_json_field(L, idx, "annotations", out->descriptor, err) ||
        decl_json_field(L, idx, "icons", out->descriptor, err) ||
        decl_json_field(L, idx, "_meta", out->descriptor, err) ||
        list_field(L, idx, "egress", &out->egress, &out->n_egress, err) ||
        list_field(L, idx, "credentials", &out->credentials, &out->n_credentials, err) ||
        list_field(L, idx, "secrets", &out->secrets, &out->n_secrets, err) ||
        check_egress(out, err) || check_credentials(out, err) || check_secrets(out, err) ||
        requires_field(L, idx, out, err) || task_field(L, idx, out, err))
        goto fail;
    if (lua_getfield(L, idx, "handler") != LUA_TFUNCTION) {
        lua_pop(L, 1);
        *err = strdup("'handler' must be a function(args, ctx)");
        goto fail;
    }
    lua_pop(L, 1);
    return 0;
fail:
    if (!*err)
        *err = strdup("out of memory");
    if (out->name && strncmp(*err, "invalid tool name", 17) != 0) {
        char *m = decl_fmt("tool '%s': %s", out->name, *err);
        free(*err);
        *err = m;
    }
    tool_clear(out);
    return -1;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void tool_clear(tool_t *t)
{
    free_list(t->egress, t->n_egress);
    free_list(t->credentials, t->n_credentials);
    free_list(t->secrets, t->n_secrets);
    free(t->name);
    free(t->file);
    json_decref(t->descriptor);
    schema_free(t->input);
    schema_free(t->output);
    xheaders_clear(&t->headers);
    memset(t, 0, sizeof *t);
    t->handler_ref = LUA_NOREF;
}

/* ---- ctx --------------------------------------------------------------------------------- */



static tool_call_t *ctx_call(lua_State *L)
{
    unsigned long long serial = (unsigned long long)lua_tointeger(L, lua_upvalueindex(1));
    tool_call_t *call = vm_call(vm_of(L), serial);
    if (!call)
        luaL_error(L, "ctx used outside the call it belongs to");
    return call;
}

double tool_left_ms(const tool_call_t *call)
{
    return (call->deadline - clock_wall_s()) * 1000.0;
}

static int ctx_remaining_ms(lua_State *L)
{
    double ms = tool_left_ms(ctx_call(L));
    lua_pushinteger(L, ms > 0 ? (lua_Integer)ms : 0);
    return 1;
}

static size_t tool_max_result_bytes(const tool_call_t *call);

/* Counts n bytes of a notification against limits.max_result_bytes (raises past it). */
static void note_bytes(lua_State *L, tool_call_t *call, const char *fn, size_t n)
{
    size_t max = tool_max_result_bytes(call);
    if (n > max || call->note_bytes > max - n)
        luaL_error(L, "%s: the call's notifications would pass limits.max_result_bytes (%d)", fn,
                   (int)(max > 0x7fffffff ? 0x7fffffff : max));
    call->note_bytes += n;
}

/* conv_to_json for what a call sends the client besides its result (requests to it): counted
 * with its notifications against limits.max_result_bytes. */
static json_t *outgoing_json(lua_State *L, tool_call_t *call, int idx, char **why)
{
    size_t max = tool_max_result_bytes(call);
    size_t left = max > call->note_bytes ? max - call->note_bytes : 0, before = left;
    json_t *v = conv_to_json_max(L, idx, &left, why);
    call->note_bytes += before - left;
    return v;
}

static int ctx_log(lua_State *L)
{
    tool_call_t *call = ctx_call(L);
    int lv = luaL_checkoption(L, 1, NULL, log_mcp_levels);
    size_t msg_len;
    const char *msg = luaL_checklstring(L, 2, &msg_len);
    /* the server log has five levels: the three most severe are errors there */
    log_msg((enum log_level)(lv > LOG_ERROR ? LOG_ERROR : lv), "%s %s: %s",
            call->kind ? call->kind : "tool", call->tool_name, msg);
    if (call->log_level >= 0 && lv >= call->log_level) { /* the client asked for these */
        if (call->n_notes >= 1000)
            return luaL_error(L, "ctx.log: too many notifications in one call (1000)");
        note_bytes(L, call, "ctx.log", msg_len + 128);
        call->n_notes++;
        json_t *data = json_string(msg);
        if (!data)
            data = json_string("(a log message that is not valid UTF-8)");
        json_array_append_new(call->notifications,
                              json_pack("{s:s, s:s, s:{s:s, s:s, s:o}}", "jsonrpc", "2.0",
                                        "method", "notifications/message", "params", "level",
                                        log_mcp_levels[lv], "logger", call->tool_name, "data", data));
    }
    return 0;
}

static int ctx_progress(lua_State *L)
{
    tool_call_t *call = ctx_call(L);
    lua_Number progress = luaL_checknumber(L, 1);
    bool has_total = !lua_isnoneornil(L, 2);
    lua_Number total = has_total ? luaL_checknumber(L, 2) : 0;
    const char *message = luaL_optstring(L, 3, NULL);
    if ((call->is_task || call->task_ok) && message) { /* a task's statusMessage */
        free(call->task_message);
        if ((call->task_message = strdup(message))) {
            secret_redact(call->task_message); /* whole, before any cut */
            if (strlen(call->task_message) > 512)
                call->task_message[512] = '\0';
            text_utf8_trim(call->task_message); /* a cut character would not be JSON */
        }
    }
    if (!call->progress_token)
        return 0;
    if (call->n_notes >= 1000)
        return luaL_error(L, "ctx.progress: too many notifications in one call (1000)");
    note_bytes(L, call, "ctx.progress", (message ? strlen(message) : 0) + 128);
    call->n_notes++;
    json_t *params = json_pack("{sOsf}", "progressToken", call->progress_token, "progress",
                               (double)progress);
    if (has_total)
        json_object_set_new(params, "total", json_real(total));
    if (message)
        json_object_set_new(params, "message", json_string(message));
    json_array_append_new(call->notifications,
                          json_pack("{ssssso}", "jsonrpc", "2.0", "method",
                                    "notifications/progress", "params", params));
    return 0;
}

/* ---- requests to the client ---------------------------------------------------------------- */

static void scrub(json_t *v, const char *secret);

static int ask_resumed(lua_State *L, int status, lua_KContext k)
{
    (void)status;
    (void)k;
    tool_call_t *call = vm_current_call(vm_of(L));
    json_t *answer = call ? call->answer : NULL;
    if (call)
        call->answer = NULL;
    if (!answer) {
        luaL_pushfail(L);
        lua_pushliteral(L, "the client did not answer in time");
        return 2;
    }
    json_t *err = json_object_get(answer, "error");
    json_t *result = json_object_get(answer, "result");
    int n;
    vm_host_begin(call->vm); /* so these pushes cannot raise and leak the answer */
    if (err || !json_is_object(result)) {
        const char *m = json_string_value(json_object_get(err, "message"));
        luaL_pushfail(L);
        lua_pushfstring(L, "the client refused: %s", m ? m : "no result");
        n = 2;
    } else {
        char *why = NULL;
        if (conv_push_json(L, result, &why) != 0) {
            luaL_pushfail(L);
            lua_pushfstring(L, "the client's answer cannot be given to Lua: %s", why ? why : "?");
            free(why);
            n = 2;
        } else {
            n = 1;
        }
    }
    vm_host_end(call->vm);
    json_decref(answer);
    return n;
}

/* ctx.sample{...} and ctx.elicit{...}: a request to the client, answered later; the call waits
 * for it like for a backend. Returns the client's result, or nil and why. */
static int input_stop(lua_State *L, tool_call_t *call);
static int input_for(lua_State *L, tool_call_t *call, const char *key, int req_idx);

static int ctx_ask(lua_State *L, const char *method, unsigned cap, const char *what)
{
    tool_call_t *call = ctx_call(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    if (call->modern && (call->client_caps & cap)) {
        /* no requests on a stream in this era: an input request of the result, whose answer
         * comes with the next round, under a key given by the order of the asks */
        char key[32];
        snprintf(key, sizeof key, "%s-%u", cap == SESSION_CAP_SAMPLING ? "sampling" : "elicitation",
                 ++call->input_seq);
        lua_createtable(L, 0, 2);
        lua_pushstring(L, method);
        lua_setfield(L, -2, "method");
        lua_pushvalue(L, 1);
        lua_setfield(L, -2, "params");
        return input_for(L, call, key, lua_gettop(L));
    }
    if (!(call->client_caps & cap)) {
        luaL_pushfail(L);
        lua_pushfstring(L, "the client does not support %s (it declared no %s capability)",
                        what, what);
        return 2;
    }
    if (!call->ask) {
        luaL_pushfail(L);
        lua_pushfstring(L, "%s needs the client to accept text/event-stream on this request",
                        what);
        return 2;
    }
    if (L != call->co || !lua_isyieldable(L))
        return luaL_error(L, "ctx.%s cannot be used inside a coroutine the script created or "
                             "a function that cannot yield", what);
    char *why = NULL;
    json_t *params = outgoing_json(L, call, 1, &why);
    if (!params || !json_is_object(params)) {
        json_decref(params);
        lua_pushfstring(L, "ctx.%s: %s", what, why ? why : "expected a table");
        free(why);
        return lua_error(L);
    }
    const char *bad = NULL;
    if (cap == SESSION_CAP_SAMPLING) {
        if (!json_is_array(json_object_get(params, "messages")))
            bad = "ctx.sample: messages must be a list of { role =, content = }";
        else if (!json_is_integer(json_object_get(params, "maxTokens")))
            bad = "ctx.sample: maxTokens must be an integer";
    } else {
        if (!json_is_string(json_object_get(params, "message")))
            bad = "ctx.elicit: message must be a string";
        else if (!json_is_object(json_object_get(params, "requestedSchema")))
            bad = "ctx.elicit: requestedSchema must be an object schema";
    }
    if (bad) {
        json_decref(params);
        return luaL_error(L, "%s", bad);
    }
    json_t *req = json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params",
                            params);
    size_t k;
    json_t *sec;
    json_array_foreach(call->secrets, k, sec) /* a backend may have echoed a credential */
        scrub(req, json_string_value(sec));
    int rc = req ? call->ask(call->ask_arg, req) : -1;
    json_decref(req);
    if (rc != 0) {
        luaL_pushfail(L);
        lua_pushfstring(L, "the %s request cannot be sent (too many waiting)", what);
        return 2;
    }
    call->asking = true;
    return lua_yieldk(L, 0, 0, ask_resumed);
}

/* ---- input requests (2026-07-28, MRTR) ------------------------------------------------------ */

/* requestState: base64url(payload) "." base64url(HMAC-SHA256(key, first part)); the payload
 * names the tool, the caller (a digest of its fingerprint), an expiry and the script's state.
 * The key is random per process: a state outlives neither a restart nor 10 minutes. */
#define STATE_TTL_S 600

static unsigned char state_key[32];
static pthread_once_t state_once = PTHREAD_ONCE_INIT;
static void state_key_init(void)
{
    if (RAND_bytes(state_key, sizeof state_key) != 1)
        abort(); /* no randomness: nothing safe to do */
}

static void caller_tag(const unsigned char fp[32], char out[33])
{
    static const unsigned char zero[32];
    const unsigned char *f = fp ? fp : zero;
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", f[i]);
}

static char *state_mac(const char *payload)
{
    unsigned char mac[32];
    unsigned int n = 0;
    pthread_once(&state_once, state_key_init);
    HMAC(EVP_sha256(), state_key, sizeof state_key, (const unsigned char *)payload,
         strlen(payload), mac, &n);
    return jose_b64url_encode_alloc(mac, n);
}

char *tool_state_seal(const char *state, const char *name, const unsigned char fp[32])
{
    char tag[33];
    caller_tag(fp, tag);
    json_t *p = json_pack("{s:s, s:s, s:I, s:s?}", "t", name, "f", tag, "e",
                          (json_int_t)time(NULL) + STATE_TTL_S, "s", state);
    char *js = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    char *body = js ? jose_b64url_encode_alloc((const unsigned char *)js, strlen(js)) : NULL;
    char *mac = body ? state_mac(body) : NULL;
    char *out = mac ? malloc(strlen(body) + strlen(mac) + 2) : NULL;
    if (out)
        sprintf(out, "%s.%s", body, mac);
    free(js);
    free(body);
    free(mac);
    return out;
}

int tool_state_open(const char *token, const char *name, const unsigned char fp[32],
                    char **state)
{
    *state = NULL;
    const char *dot = token ? strchr(token, '.') : NULL;
    if (!dot || strlen(token) > 16384)
        return -1;
    char *body = strndup(token, (size_t)(dot - token));
    char *mac = body ? state_mac(body) : NULL;
    int ok = mac && strlen(mac) == strlen(dot + 1) &&
             CRYPTO_memcmp(mac, dot + 1, strlen(mac)) == 0;
    free(mac);
    json_t *p = NULL;
    if (ok) { /* base64url back to JSON */
        size_t n = strlen(body), len = 0;
        unsigned char *raw = malloc(n * 3 / 4 + 1);
        if (raw && jose_b64url_decode(body, n, raw, &len))
            p = json_loadb((const char *)raw, len, 0, NULL);
        free(raw);
    }
    free(body);
    char tag[33];
    caller_tag(fp, tag);
    const char *t = json_string_value(json_object_get(p, "t"));
    const char *f = json_string_value(json_object_get(p, "f"));
    json_int_t e = json_integer_value(json_object_get(p, "e"));
    int rc = -1;
    if (ok && t && f && strcmp(t, name) == 0 && strcmp(f, tag) == 0 && e > (json_int_t)time(NULL)) {
        const char *s = json_string_value(json_object_get(p, "s"));
        *state = s ? strdup(s) : NULL;
        rc = 0;
    }
    json_decref(p);
    return rc;
}

/* The answer to key from this round's inputResponses, pushed; or the request at req_idx
 * recorded for the result and the handler stopped. */
/* Records the request at idx ({ method =, params = {...} }) as the input request `key` of the
 * result; raises an error naming fn and key when it is not one. */
static void record_input(lua_State *L, tool_call_t *call, const char *fn, const char *key,
                         int idx)
{
    char *why = NULL;
    json_t *req = outgoing_json(L, call, idx, &why);
    const char *m = json_string_value(json_object_get(req, "method"));
    json_t *params = json_object_get(req, "params");
    if (!req || !m || (params && !json_is_object(params))) {
        json_decref(req);
        lua_pushfstring(L, "%s: %s must be { method = \"elicitation/create\" | "
                           "\"sampling/createMessage\" | \"roots/list\", params = {...} }%s%s",
                        fn, key, why ? ": " : "", why ? why : "");
        free(why);
        lua_error(L);
    }
    if (!params)
        json_object_set_new(req, "params", json_object());
    if (!call->input_requests)
        call->input_requests = json_object();
    json_object_set_new(call->input_requests, key, req);
}

static int input_for(lua_State *L, tool_call_t *call, const char *key, int req_idx)
{
    json_t *answer = json_object_get(call->input_responses, key);
    if (json_is_object(answer)) { /* anything else is no answer: asked again */
        char *why = NULL;
        if (conv_push_json(L, answer, &why) != 0) {
            lua_pushfstring(L, "ctx.input: the answer to %s cannot be given to Lua: %s", key,
                            why ? why : "?");
            free(why);
            return lua_error(L);
        }
        return 1;
    }
    record_input(L, call, "ctx.input", key, req_idx);
    return input_stop(L, call);
}

static int input_stop(lua_State *L, tool_call_t *call)
{
    if (L != call->co || !lua_isyieldable(L))
        return luaL_error(L, "ctx.input cannot be used inside a coroutine the script created or "
                             "a function that cannot yield");
    call->input_needed = true;
    return lua_yield(L, 0); /* not resumed: the round ends with input_required */
}

/* ctx.input(key, { method =, params = }): the client's answer to that request, which the first
 * round asks for (the handler stops there) and the next round brings. In the 2025 eras the
 * request goes to the client on the stream and the call waits, as ctx.sample does. */
static int ctx_input(lua_State *L)
{
    tool_call_t *call = ctx_call(L);
    const char *key = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (call->modern)
        return input_for(L, call, key, 2);
    lua_getfield(L, 2, "method");
    const char *m = lua_tostring(L, -1);
    lua_getfield(L, 2, "params");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    lua_replace(L, 1);
    lua_settop(L, 1);
    if (m && strcmp(m, "sampling/createMessage") == 0)
        return ctx_ask(L, m, SESSION_CAP_SAMPLING, "sampling");
    if (m && strcmp(m, "elicitation/create") == 0)
        return ctx_ask(L, m, SESSION_CAP_ELICITATION, "elicitation");
    luaL_pushfail(L);
    lua_pushfstring(L, "ctx.input: %s is only asked of 2026-07-28 clients", m ? m : "?");
    return 2;
}

/* ctx.inputs{ key = request, ... }: several at once; all answers as a table, or the missing
 * ones asked for together. */
static int ctx_inputs(lua_State *L)
{
    tool_call_t *call = ctx_call(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!call->modern)
        return luaL_error(L, "ctx.inputs is for 2026-07-28 clients; use ctx.input one by one");
    lua_newtable(L); /* answers */
    bool missing = false;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!key || !lua_istable(L, -1))
            return luaL_error(L, "ctx.inputs: give { key = { method =, params = } }");
        json_t *answer = json_object_get(call->input_responses, key);
        if (json_is_object(answer)) {
            char *why = NULL;
            if (conv_push_json(L, answer, &why) != 0) {
                free(why);
                return luaL_error(L, "ctx.inputs: an answer cannot be given to Lua");
            }
            lua_setfield(L, 2, key);
        } else {
            record_input(L, call, "ctx.inputs", key, lua_gettop(L));
            missing = true;
        }
        lua_pop(L, 1);
    }
    if (missing)
        return input_stop(L, call);
    return 1;
}

static int ctx_set_state(lua_State *L)
{
    tool_call_t *call = ctx_call(L);
    size_t n;
    const char *st = luaL_checklstring(L, 1, &n);
    if (n > 4096)
        return luaL_error(L, "ctx.set_state: at most 4096 bytes");
    free(call->state_out);
    call->state_out = strdup(st);
    return 0;
}

static int ctx_get_state(lua_State *L)
{
    tool_call_t *call = ctx_call(L);
    if (call->state_in)
        lua_pushstring(L, call->state_in);
    else
        lua_pushnil(L);
    return 1;
}

static int ctx_can(lua_State *L)
{
    tool_call_t *call = ctx_call(L);
    static const char *const names[] = {"sampling", "elicitation", NULL};
    int i = luaL_checkoption(L, 1, NULL, names);
    lua_pushboolean(L, (call->client_caps & (i == 0 ? SESSION_CAP_SAMPLING
                                                    : SESSION_CAP_ELICITATION)) != 0);
    return 1;
}

/* ctx.close_stream(): ends the POST's SSE connection now (after a priming event), so a long
 * call holds no connection; the client resumes with GET and Last-Event-ID for the rest.
 * False when this request cannot (no SSE, or no session to resume on). */
static int ctx_close_stream(lua_State *L)
{
    tool_call_t *call = ctx_call(L);
    if (call->detach)
        call->detach(call->ask_arg);
    lua_pushboolean(L, call->detach != NULL);
    return 1;
}

static int ctx_sample(lua_State *L)
{
    return ctx_ask(L, "sampling/createMessage", SESSION_CAP_SAMPLING, "sampling");
}

static int ctx_elicit(lua_State *L)
{
    return ctx_ask(L, "elicitation/create", SESSION_CAP_ELICITATION, "elicitation");
}

static int task_continued(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    tool_call_t *call = ctx_call(L);
    call->want_task = false;
    lua_pushboolean(L, call->is_task);
    return 1;
}

/* ctx.task(): the call goes on as a task (the client is answered with its handle now) when it
 * can be one; true when it is one from here on, false when the client cannot take a task. */
static int ctx_task(lua_State *L)
{
    tool_call_t *call = ctx_call(L);
    if (call->is_task || !call->task_ok) {
        lua_pushboolean(L, call->is_task);
        return 1;
    }
    if (L != call->co || !lua_isyieldable(L))
        return luaL_error(L, "ctx.task must be called from the handler itself, not from a "
                             "coroutine it made or a function that cannot yield");
    call->want_task = true;
    return lua_yieldk(L, 0, 0, task_continued);
}

/* ctx's __index: "auth" is built when first read; nothing else is there */
static const struct {
    const char *name;
    lua_CFunction fn;
} ctx_fns[] = {{"remaining_ms", ctx_remaining_ms}, {"log", ctx_log}, {"progress", ctx_progress},
               {"sample", ctx_sample}, {"elicit", ctx_elicit}, {"close_stream", ctx_close_stream},
               {"input", ctx_input}, {"inputs", ctx_inputs}, {"set_state", ctx_set_state},
               {"task", ctx_task},
               {"state", ctx_get_state}, {"can", ctx_can}};

/* ctx.auth and the ctx functions, made on first use (most handlers use one or two of them):
 * each is a closure over the call's serial and its ctx, kept in the table once made. */
static int ctx_index(lua_State *L)
{
    const char *k = lua_tostring(L, 2);
    int fn = -1;
    for (int i = 0; k && fn < 0 && i < (int)(sizeof ctx_fns / sizeof ctx_fns[0]); i++)
        if (strcmp(k, ctx_fns[i].name) == 0)
            fn = i;
    if (!k || (fn < 0 && strcmp(k, "auth") != 0))
        return 0;
    tool_call_t *call = vm_current_call(vm_of(L));
    if (!call || call->ctx != lua_topointer(L, 1))
        return luaL_error(L, "ctx used outside the call it belongs to");
    if (fn >= 0) {
        lua_pushinteger(L, (lua_Integer)call->serial);
        lua_pushvalue(L, 1); /* the ctx table, for ctx.tool */
        lua_pushcclosure(L, ctx_fns[fn].fn, 2);
    } else if (call->caller) {
        api_push_caller(L, call->caller);
    } else {
        return 0;
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, k); /* later reads find it directly */
    return 1;
}

/* pushes the ctx table for this call onto co */
static void push_ctx(lua_State *co, tool_call_t *call)
{
    lua_createtable(co, 0, 4);
    if (luaL_newmetatable(co, "luamcp.ctx")) {
        /* shared by every call's ctx: hidden, or one call could rewrite ctx for the next */
        lua_pushcfunction(co, ctx_index);
        lua_setfield(co, -2, "__index");
        lua_pushboolean(co, 0);
        lua_setfield(co, -2, "__metatable");
    }
    lua_setmetatable(co, -2);
    call->ctx = lua_topointer(co, -1);
    char *err = NULL;
    if (!call->request_id || conv_push_json(co, call->request_id, &err) != 0) {
        free(err);
        lua_pushnil(co);
    }
    lua_setfield(co, -2, "request_id");
    lua_pushstring(co, call->tool_name);
    lua_setfield(co, -2, "tool");
    lua_pushnumber(co, call->deadline);
    lua_setfield(co, -2, "deadline");
}

/* ---- results ---------------------------------------------------------------------------- */

/* {"content":[{"type":"text","text":TEXT}]} (text stolen), plus "isError": true when error:
 * built directly, as json_pack's format parsing cost more than the rest of a call's result.
 * Each step releases what it is given when it fails, so only the last check is needed. */
static json_t *text_content(json_t *text, bool error)
{
    json_t *out = json_object(), *list = json_array(), *item = json_object();
    json_object_set_new_nocheck(item, "type", json_string_nocheck("text"));
    json_object_set_new_nocheck(item, "text", text);
    bool whole = json_object_size(item) == 2;
    json_array_append_new(list, item);
    json_object_set_new_nocheck(out, "content", list);
    if (error)
        json_object_set_new_nocheck(out, "isError", json_true());
    if (!whole || json_array_size(json_object_get(out, "content")) != 1 ||
        json_object_size(out) != (error ? 2u : 1u)) {
        json_decref(out);
        return NULL;
    }
    return out;
}

json_t *tool_error_result(const char *msg)
{
    /* a script's error text must not carry a secret to the client: redacted whole, then cut
     * to 4,095 bytes (a value across the cut would leave its prefix) */
    char *clean = strndup(msg, 1u << 20);
    if (!clean)
        return text_content(json_string("out of memory"), true);
    secret_redact_cut(clean, 4095, strlen(msg) > (1u << 20));
    text_utf8_trim(clean);
    json_t *text = json_string(clean);
    free(clean);
    if (!text)
        text = json_string("tool failed with a message that is not valid UTF-8");
    return text_content(text, true);
}

/* limits.max_result_bytes of the call's vm: bounds its result's JSON and, together, the
 * notifications it sends */
static size_t tool_max_result_bytes(const tool_call_t *call)
{
    size_t max = vm_limits(call->vm)->max_result_bytes;
    return max ? max : CONFIG_MAX_RESULT_BYTES;
}

static json_t *too_large(const tool_t *t)
{
    log_warn("tool %s: its result is larger than limits.max_result_bytes", t->name);
    return tool_error_result("tool result is larger than limits.max_result_bytes");
}

static json_t *text_result(const char *s, size_t len)
{
    json_t *text = json_stringn(s, len);
    if (!text)
        return tool_error_result("tool returned text that is not valid UTF-8");
    return text_content(text, false);
}

/* Adds structuredContent, checked against the output schema, plus its text rendering. */
static json_t *structured_result(const tool_t *t, json_t *obj, json_t *content, size_t *left)
{
    if (t->output) {
        char buf[512];
        if (schema_validate(t->output, obj, buf, sizeof buf) != 0) {
            log_error("tool %s: result does not match its outputSchema: %s", t->name, buf);
            json_decref(obj);
            json_decref(content);
            char msg[600];
            snprintf(msg, sizeof msg, "Invalid result: %s", buf);
            return tool_error_result(msg);
        }
    }
    if (!content) {
        char *s = jsonio_dump(obj, NULL);
        if (s && strlen(s) > *left) { /* the text copy counts too */
            free(s);
            json_decref(obj);
            return too_large(t);
        }
        content = json_pack("[{ssss}]", "type", "text", "text", s ? s : "");
        free(s);
    }
    return json_pack("{soso}", "content", content, "structuredContent", obj);
}

static json_t *convert_failed(const tool_t *t, char *why)
{
    if (why && strstr(why, CONV_TOO_LARGE)) {
        free(why);
        return too_large(t);
    }
    log_error("tool %s: result not convertible: %s", t->name, why ? why : "?");
    free(why);
    return tool_error_result("tool returned a value that cannot be converted to an MCP result");
}

static json_t *result_table(lua_State *co, int idx, const tool_t *t, size_t *left)
{
    char *why = NULL;
    json_t *content = NULL, *structured = NULL;
    json_t **content_slot = conv_anchor(co, NULL), **structured_slot = conv_anchor(co, NULL);
    if (lua_getfield(co, idx, "content") != LUA_TNIL) {
        content = *content_slot = conv_to_json_max(co, -1, left, &why);
        if (!content || !json_is_array(content)) {
            lua_pop(co, 1);
            json_decref(conv_unanchor(content_slot));
            return convert_failed(t, why ? why : strdup("mcp.result: content must be a list"));
        }
    }
    lua_pop(co, 1);
    lua_getfield(co, idx, "isError");
    bool is_error = lua_toboolean(co, -1);
    lua_pop(co, 1);
    if (lua_getfield(co, idx, "structuredContent") != LUA_TNIL) {
        structured = *structured_slot = conv_to_json_max(co, -1, left, &why);
        if (!structured || !json_is_object(structured)) {
            lua_pop(co, 1);
            json_decref(conv_unanchor(content_slot));
            json_decref(conv_unanchor(structured_slot));
            return convert_failed(t, why ? why : strdup("structuredContent must be an object"));
        }
    }
    lua_pop(co, 1);
    conv_unanchor(content_slot); /* nothing below reads Lua any more */
    conv_unanchor(structured_slot);
    json_t *res;
    if (structured && !is_error)
        res = structured_result(t, structured, content, left);
    else {
        res = json_pack("{so}", "content", content ? content : json_array());
        if (structured)
            json_object_set_new(res, "structuredContent", structured);
    }
    if (is_error)
        json_object_set_new(res, "isError", json_true());
    return res;
}

/* An array whose every element is a content item. */
static bool content_list(lua_State *co, int idx)
{
    lua_Integer n = (lua_Integer)lua_rawlen(co, idx);
    if (n == 0)
        return false;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(co, idx, i);
        bool ok = lua_istable(co, -1) && api_has_mt(co, -1, API_CONTENT_MT);
        lua_pop(co, 1);
        if (!ok)
            return false;
    }
    return true;
}

static json_t *convert_results(lua_State *co, int nres, const tool_t *t, size_t *left)
{
    int base = lua_gettop(co) - nres + 1;
    if (nres == 0 || lua_isnil(co, base)) {
        if (nres >= 2 && !lua_isnil(co, base + 1)) {
            const char *m = luaL_tolstring(co, base + 1, NULL);
            return tool_error_result(m);
        }
        if (t->output)
            return tool_error_result("tool declared an outputSchema but returned no result");
        return json_pack("{s[]}", "content");
    }
    size_t len;
    char *why = NULL;
    switch (lua_type(co, base)) {
    case LUA_TSTRING: {
        const char *s = lua_tolstring(co, base, &len);
        if (len > *left)
            return too_large(t);
        return text_result(s, len);
    }
    case LUA_TNUMBER:
    case LUA_TBOOLEAN: {
        const char *s = luaL_tolstring(co, base, &len);
        return text_result(s, len);
    }
    case LUA_TTABLE:
        break;
    default:
        return convert_failed(t, decl_fmt("handler returned a %s", luaL_typename(co, base)));
    }
    if (api_has_mt(co, base, API_RESULT_MT))
        return result_table(co, base, t, left);
    bool item = api_has_mt(co, base, API_CONTENT_MT);
    if (item || content_list(co, base)) {
        json_t *v = conv_to_json_max(co, base, left, &why);
        if (!v)
            return convert_failed(t, why);
        if (item) {
            json_t *arr = json_array();
            json_array_append_new(arr, v);
            v = arr;
        }
        return json_pack("{so}", "content", v);
    }
    json_t *v = conv_to_json_max(co, base, left, &why);
    if (!v)
        return convert_failed(t, why);
    if (!json_is_object(v)) {
        json_decref(v);
        return convert_failed(t, strdup("handler returned a list; return an object, text or "
                                        "content items"));
    }
    return structured_result(t, v, NULL, left);
}

/* ---- running ---------------------------------------------------------------------------- */

/* Replaces every occurrence of secret in the strings of v (in place). */
static void scrub(json_t *v, const char *secret)
{
    size_t sl = strlen(secret);
    if (json_is_object(v)) {
        const char *k;
        void *tmp;
        json_t *x;
        json_object_foreach_safe(v, tmp, k, x) {
            scrub(x, secret);
            if (strstr(k, secret)) { /* the key too: re-added under its scrubbed name */
                json_t *name = json_string(k), *keep = json_incref(x);
                json_object_del(v, k);
                scrub(name, secret);
                json_object_set_new(v, json_string_value(name), keep);
                json_decref(name);
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
            scrub(x, secret);
    } else if (json_is_string(v) && strstr(json_string_value(v), secret)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), cap = n + 16 * (n / sl + 1);
        char *out = malloc(cap), *o = out;
        if (!out) {
            json_string_set(v, "[credential]");
            return;
        }
        for (const char *p = s; *p;) {
            const char *hit = strstr(p, secret);
            size_t keep = hit ? (size_t)(hit - p) : strlen(p);
            memcpy(o, p, keep);
            o += keep;
            p += keep;
            if (hit) {
                memcpy(o, "[credential]", 12);
                o += 12;
                p += sl;
            }
        }
        *o = '\0';
        json_string_set(v, out);
        free(out);
    }
}

/* What leaves the call (its result and notifications, whenever they are taken) never carries
 * a credential it was given, whatever the backend echoed. */
static void scrub_call(tool_call_t *call, json_t *res)
{
    size_t i;
    json_t *sec;
    json_array_foreach(call->secrets, i, sec) {
        scrub(res, json_string_value(sec));
        scrub(call->notifications, json_string_value(sec));
    }
    /* nor a secret value: results, ctx.log's notifications/message, ctx.progress */
    secret_scrub_json(res, 0);
    secret_scrub_json(call->notifications, 0);
}

static json_t *finish(tool_call_t *call, json_t *res)
{
    scrub_call(call, res);
    return res ? res : tool_error_result("out of memory");
}

static void release_co(tool_call_t *call)
{
    if (call->co_ref != LUA_NOREF)
        luaL_unref(vm_lua(call->vm), LUA_REGISTRYINDEX, call->co_ref);
    call->co_ref = LUA_NOREF;
    call->co = NULL;
}

void tool_cancel(tool_call_t *call)
{
    api_http_cancel(call->batch);
    call->batch = NULL;
    if (call->co && call->co_ref != LUA_NOREF)
        release_co(call);
}

void tool_call_clear(tool_call_t *call)
{
    tool_cancel(call);
    json_decref(call->notifications);
    call->notifications = NULL;
    json_decref(call->secrets);
    call->secrets = NULL;
    json_decref(call->answer);
    call->answer = NULL;
    json_decref(call->input_requests);
    call->input_requests = NULL;
    free(call->state_in);
    free(call->state_out);
    call->state_in = call->state_out = NULL;
    free(call->task_message);
    call->task_message = NULL;
}

/* Converting what a handler returned reads its tables, whose metamethods are script code:
 * it runs in a protected call under the call's budget. */
typedef struct conversion {
    tool_call_t *call;
    int nres;
    json_t *res;
} conversion_t;

static int convert_protected(lua_State *co)
{
    conversion_t *c = lua_touserdata(co, 1);
    lua_remove(co, 1);
    size_t left = tool_max_result_bytes(c->call);
    c->res = c->call->convert ? c->call->convert(co, c->nres, c->call)
                              : convert_results(co, c->nres, c->call->tool, &left);
    return 0;
}

/* An upper estimate of v's JSON text, counted until it passes max (then max + 1). For the
 * results of prompts and resources, whose converters (catalog.c) copy strings themselves: the
 * answer is refused before it is written out. */
static size_t json_size_past(const json_t *v, size_t max)
{
    size_t n = 0, i;
    const char *key;
    json_t *item;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_length(v) + 3;
    case JSON_ARRAY:
        json_array_foreach((json_t *)v, i, item) {
            n += json_size_past(item, max) + 1;
            if (n > max)
                return max + 1;
        }
        return n + 2;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, key, item) {
            n += strlen(key) + 4 + json_size_past(item, max);
            if (n > max)
                return max + 1;
        }
        return n + 2;
    default:
        return 24;
    }
}

static json_t *convert(tool_call_t *call, lua_State *co, int nres)
{
    conversion_t c = {call, nres, NULL};
    vm_host_begin(call->vm); /* these two pushes must not meet the cap outside protection */
    bool room = lua_checkstack(co, 2);
    if (room) {
        lua_pushcfunction(co, convert_protected);
        lua_pushlightuserdata(co, &c);
        lua_rotate(co, -(nres + 2), 2); /* function, &c, results... */
    }
    vm_host_end(call->vm);
    char *msg = NULL;
    vm_status_t st = room ? vm_pcall(call->vm, co, nres + 1, &msg, &call->budget) : VM_NOMEM;
    size_t max = tool_max_result_bytes(call);
    if (st == VM_OK && c.res && call->convert && json_size_past(c.res, max) > max) {
        json_decref(c.res);
        log_warn("%s %s: its result is larger than limits.max_result_bytes", call->kind,
                 call->tool_name);
        call->rpc_error = -32603;
        snprintf(call->rpc_message, sizeof call->rpc_message,
                 "Internal error: %s '%.200s' returned a result larger than "
                 "limits.max_result_bytes",
                 call->kind, call->tool_name);
        return json_null();
    }
    if (st == VM_OK && c.res)
        return c.res;
    json_decref(c.res);
    log_warn("%s %s: its result cannot be converted: %s", call->kind ? call->kind : "tool",
             call->tool_name, msg ? msg : "no stack");
    free(msg);
    if (call->convert) {
        call->rpc_error = -32603;
        snprintf(call->rpc_message, sizeof call->rpc_message,
                 "Internal error: %s '%.200s' returned a value that cannot be converted",
                 call->kind, call->tool_name);
        return json_null();
    }
    return tool_error_result("tool returned a value that cannot be converted to an MCP result");
}

/* Resumes the handler with nargs on its stack; the result, or NULL while it waits. */
static json_t *step(tool_call_t *call, int nargs)
{
    const char *kind = call->kind ? call->kind : "tool", *name = call->tool_name;
    vm_t *vm = call->vm;
    lua_State *co = call->co;
    char buf[512];
    json_t *res = NULL;
    vm_set_call(vm, call, call->serial);
    vm_set_phase(vm, VM_PHASE_TOOL);
    secret_scope(call->secrets); /* log lines and error texts of this step redact them */
    /* mcp.secret reads only what the tool lists in `secrets` (prompts, resources: nothing) */
    secret_grant(call->tool ? call->tool->secrets : NULL, call->tool ? call->tool->n_secrets : 0);
    int nres = 0;
    char *msg = NULL, *trace = NULL;
    vm_status_t st = vm_resume_budget(vm, co, nargs, &nres, &msg, &trace, &call->budget);
    secret_grant(NULL, 0);
    vm_set_phase(vm, VM_PHASE_IDLE);
    vm_set_call(vm, NULL, 0);
    switch (st) {
    case VM_OK:
        res = convert(call, co, nres);
        break;
    case VM_YIELD:
        if (call->input_needed) { /* the round ends: input_required, the handler is dropped */
            res = json_pack("{s:s, s:O}", "resultType", "input_required", "inputRequests",
                            call->input_requests ? call->input_requests : json_object());
            char *state = tool_state_seal(call->state_out, name, call->caller
                                              ? call->caller->fingerprint : NULL);
            if (state)
                json_object_set_new(res, "requestState", json_string(state));
            free(state);
            call->input_is_result = true;
            break;
        }
        if (call->batch || call->asking || call->want_task) {
            /* mcp.http, mcp.sleep, the client, or ctx.task: wait (co_ref anchors it) */
            free(msg);
            free(trace);
            scrub_call(call, NULL); /* its notifications so far go out before the result */
            secret_scope(NULL);
            return NULL;
        }
        snprintf(buf, sizeof buf, "%s yielded outside mcp.http, which is not supported", kind);
        res = tool_error_result(buf);
        break;
    case VM_ERROR:
        log_error("%s %s failed: %s", kind, name, trace ? trace : msg);
        snprintf(buf, sizeof buf, "%s '%.200s' failed (see server log)", kind, name);
        res = tool_error_result(buf);
        break;
    case VM_TIMEOUT:
    case VM_NOMEM:
        log_warn("%s %s %s", kind, name, msg);
        snprintf(buf, sizeof buf, "%s '%.200s' %s", kind, name, msg);
        res = tool_error_result(buf);
        break;
    }
    /* a failure of a prompt, resource, completion or task is a JSON-RPC error (a task: failed) */
    if (st != VM_OK && (call->convert || call->is_task) && !call->input_is_result) {
        call->rpc_error = -32603;
        snprintf(call->rpc_message, sizeof call->rpc_message, "Internal error: %.260s", buf);
        secret_redact(call->rpc_message);
    }
    free(msg);
    free(trace);
    tool_cancel(call); /* a batch left by an error or a stray yield, and the anchor */
    res = finish(call, res);
    secret_scope(NULL);
    return res;
}

/* Arguments marked as credentials become opaque values in the args table on top of co. */
static void wrap_credentials(lua_State *co, const tool_t *t, json_t *args, tool_call_t *call)
{
    for (size_t i = 0; i < t->n_credentials; i++) {
        json_t *v = json_object_get(args, t->credentials[i]);
        if (!json_is_string(v))
            continue;
        api_push_credential(co, json_string_value(v), json_string_length(v));
        lua_setfield(co, -2, t->credentials[i]);
        if (json_string_length(v) >= 4) { /* shorter ones would mangle unrelated text */
            if (!call->secrets)
                call->secrets = json_array();
            json_array_append(call->secrets, v);
        }
    }
}

static json_t *run(vm_t *vm, int handler_ref, json_t *args, tool_call_t *call);

json_t *call_start(vm_t *vm, int handler_ref, json_t *args, tool_call_t *call)
{
    call->vm = vm;
    call->tool = NULL;
    call->co = NULL;
    call->co_ref = LUA_NOREF;
    json_t *empty = args ? NULL : json_object();
    json_t *res = run(vm, handler_ref, args ? args : empty, call);
    json_decref(empty);
    return res;
}

json_t *tool_start(vm_t *vm, const tool_t *t, json_t *args, tool_call_t *call)
{
    char buf[512];
    json_t *empty = NULL;
    call->vm = vm;
    call->tool = t;
    call->tool_allow = t->egress;
    call->n_tool_allow = t->n_egress;
    call->co = NULL;
    call->co_ref = LUA_NOREF;
    call->tool_name = t->name;
    call->kind = "tool";
    if (!args)
        args = empty = json_object();
    if (schema_validate(t->input, args, buf, sizeof buf) != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "Invalid arguments: %s", buf);
        json_t *res = tool_error_result(msg);
        for (size_t i = 0; i < t->n_credentials; i++) { /* the message may quote a value */
            json_t *v = json_object_get(args, t->credentials[i]);
            if (json_string_length(v) >= 4)
                scrub(res, json_string_value(v));
        }
        json_decref(empty); /* after the loop: args may be it */
        return res;
    }
    json_t *res = run(vm, t->handler_ref, args, call);
    json_decref(empty);
    return res;
}

/* Runs handler_ref(args, ctx) in a new coroutine of vm: the result, or NULL while it waits. */
static json_t *run(vm_t *vm, int handler_ref, json_t *args, tool_call_t *call)
{
    const tool_t *t = call->tool;
    lua_State *L = vm_lua(vm);
    int top = lua_gettop(L);
    vm_host_begin(vm); /* these pushes run unprotected: they must not meet the cap */
    lua_State *co = vm_new_thread(L);
    lua_pushvalue(L, -1);
    call->co_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* held while the handler runs or waits */
    lua_rawgeti(L, LUA_REGISTRYINDEX, handler_ref);
    lua_xmove(L, co, 1);
    char *err = NULL;
    if (conv_push_json(co, args, &err) != 0) {
        vm_host_end(vm);
        log_error("%s: %s", call->tool_name, err);
        free(err);
        lua_settop(L, top);
        release_co(call);
        if (call->convert) {
            call->rpc_error = -32602;
            snprintf(call->rpc_message, sizeof call->rpc_message,
                     "Invalid params: arguments cannot be given to Lua");
        }
        return tool_error_result("arguments cannot be given to Lua");
    }
    if (t)
        wrap_credentials(co, t, args, call);
    push_ctx(co, call);
    vm_host_end(vm);
    call->co = co;
    json_t *res = step(call, 2);
    lua_settop(L, top); /* the thread lives on through co_ref while it waits */
    return res;
}

json_t *tool_resume(tool_call_t *call)
{
    return step(call, 0);
}
