/* conv — JSON (jansson) <-> Lua values. The rules are in include/luamcp/conv.h.
 *
 * Both directions walk the value recursively, bounded by CONV_MAX_DEPTH containers. While
 * walking they keep the path as a stack of segments (borrowed key pointers or indices) and
 * only format it when an error is reported, so the happy path does no string work.
 *
 * Lua -> JSON never allocates Lua memory while it holds a partial JSON tree (it only reads
 * tables with raw accessors), so a Lua error cannot leave that tree leaked.
 */
#include "luamcp/conv.h"
#include "luamcp/text.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

_Static_assert(sizeof(lua_Integer) >= sizeof(json_int_t), "JSON integers must fit lua_Integer");

/* The address is the identity of mcp.null; the value is never read. */
static const char conv_null_tag;

#define CONV_PATH_MAX 512 /* longest rendered path in an error; longer ones end in "..." */

typedef struct {
    lua_State *L;
    char **err;
    int depth; /* containers entered, = path segments in use */
    text_path_segment path[CONV_MAX_DEPTH];
    const void *visiting[CONV_MAX_DEPTH]; /* tables on the current path (cycle check) */
    int array_mt;                         /* stack slots of the marker metatables */
    int object_mt;
    size_t *left; /* what the JSON text may still take (conv_to_json_max), NULL: no bound */
} conv_ctx;

/* ---- UTF-8 and error paths ------------------------------------------------------------- */

/* True when s[0..len) is valid UTF-8; otherwise *bad_at is the offset of the first bad byte. */
static bool utf8_valid(const char *s, size_t len, size_t *bad_at)
{
    const unsigned char *u = (const unsigned char *)s;

    for (size_t i = 0; i < len;) {
        size_t n = text_utf8_sequence_length(u + i, len - i);
        if (n == 0) {
            *bad_at = i;
            return false;
        }
        i += n;
    }
    return true;
}

/* Records "PATH: message" as the error (the first one wins) and returns -1, so callers can
 * `return record_error(...)`. If even the message cannot be allocated, *err stays NULL. */
static int record_error(conv_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int record_error(conv_ctx *c, const char *fmt, ...)
{
    char path[CONV_PATH_MAX];
    char message[256];
    va_list ap;

    if (c->err == NULL || *c->err != NULL)
        return -1;
    text_json_path(path, sizeof path, c->path, c->depth);
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    size_t size = strlen(path) + 2 + strlen(message) + 1;
    *c->err = malloc(size);
    if (*c->err != NULL)
        snprintf(*c->err, size, "%s: %s", path, message);
    return -1;
}

static void path_push_index(conv_ctx *c, size_t index)
{
    assert(c->depth < CONV_MAX_DEPTH);
    c->path[c->depth++] = (text_path_segment){NULL, 0, index};
}

static void path_push_key(conv_ctx *c, const char *key, size_t len)
{
    assert(c->depth < CONV_MAX_DEPTH);
    c->path[c->depth++] = (text_path_segment){key, len, 0};
}

static void path_pop(conv_ctx *c)
{
    assert(c->depth > 0);
    c->depth--;
}

/* Pushes the two marker metatables (creating them if conv_init was never called) and
 * remembers their slots. stack: ... -> ..., array_mt, object_mt */
static void push_markers(conv_ctx *c)
{
    lua_State *L = c->L;

    if (luaL_getmetatable(L, CONV_ARRAY_MT) != LUA_TTABLE) {
        lua_pop(L, 1);
        conv_init(L);
        luaL_getmetatable(L, CONV_ARRAY_MT);
    }
    luaL_getmetatable(L, CONV_OBJECT_MT);
    c->array_mt = lua_gettop(L) - 1;
    c->object_mt = lua_gettop(L);
}

/* ---- public: setup and null ------------------------------------------------------------ */

void conv_init(lua_State *L)
{
    /* luaL_newmetatable sets __name to the registry name, so error messages and tostring()
     * show "mcp.array" / "mcp.object"; an existing table is left as it is. */
    luaL_newmetatable(L, CONV_ARRAY_MT);
    luaL_newmetatable(L, CONV_OBJECT_MT);
    lua_pop(L, 2);
}

void conv_push_null(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&conv_null_tag);
}

int conv_is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == &conv_null_tag;
}

/* ---- JSON -> Lua ----------------------------------------------------------------------- */

static int push_value(conv_ctx *c, const json_t *v);

/* stack: ... -> ..., array */
static int push_array(conv_ctx *c, const json_t *v)
{
    lua_State *L = c->L;
    size_t n = json_array_size(v);

    lua_createtable(L, n > (size_t)INT_MAX ? INT_MAX : (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        path_push_index(c, i);
        int rc = push_value(c, json_array_get(v, i));
        path_pop(c);
        if (rc != 0) {
            lua_pop(L, 1);
            return -1;
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_pushvalue(L, c->array_mt);
    lua_setmetatable(L, -2);
    return 0;
}

/* stack: ... -> ..., object */
static int push_object(conv_ctx *c, const json_t *v)
{
    lua_State *L = c->L;
    size_t n = json_object_size(v);
    const char *key;
    size_t key_len;
    json_t *member;

    lua_createtable(L, 0, n > (size_t)INT_MAX ? INT_MAX : (int)n);
    json_object_keylen_foreach((json_t *)v, key, key_len, member)
    {
        lua_pushlstring(L, key, key_len);
        path_push_key(c, key, key_len);
        int rc = push_value(c, member);
        path_pop(c);
        if (rc != 0) {
            lua_pop(L, 2); /* key, table */
            return -1;
        }
        lua_rawset(L, -3);
    }
    lua_pushvalue(L, c->object_mt);
    lua_setmetatable(L, -2);
    return 0;
}

static int push_container(conv_ctx *c, const json_t *v)
{
    if (c->depth >= CONV_MAX_DEPTH)
        return record_error(c, "nesting deeper than %d levels", CONV_MAX_DEPTH);
    if (!lua_checkstack(c->L, 3)) /* table, key, value */
        return record_error(c, "Lua stack exhausted");
    return json_is_array(v) ? push_array(c, v) : push_object(c, v);
}

/* Pushes exactly one value, or nothing and returns -1. */
static int push_value(conv_ctx *c, const json_t *v)
{
    lua_State *L = c->L;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        return push_container(c, v);
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        return 0;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(v));
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        lua_pushboolean(L, json_is_true(v));
        return 0;
    case JSON_NULL:
        conv_push_null(L);
        return 0;
    }
    return record_error(c, "unknown JSON value type");
}

int conv_push_json(lua_State *L, const json_t *v, char **err)
{
    int top = lua_gettop(L);
    conv_ctx c = {.L = L, .err = err};

    if (err != NULL)
        *err = NULL;
    if (!lua_checkstack(L, 3))
        return record_error(&c, "Lua stack exhausted");
    if (!json_is_object(v) && !json_is_array(v))
        return push_value(&c, v); /* a scalar: no marker tables to fetch (ctx.request_id) */
    push_markers(&c);
    /* stack: ..., array_mt, object_mt */
    int rc = push_value(&c, v);
    if (rc == 0)
        lua_replace(L, top + 1); /* stack: ..., value, object_mt */
    lua_settop(L, top + (rc == 0));
    assert(lua_gettop(L) == top + (rc == 0));
    return rc;
}

/* ---- Lua -> JSON ----------------------------------------------------------------------- */

typedef enum { SHAPE_ARRAY, SHAPE_OBJECT, SHAPE_INVALID } table_shape;

typedef struct {
    size_t count;
    bool all_strings;
    bool is_sequence; /* keys are exactly 1..count */
} key_summary;

/* One pass over the keys with lua_next. Keys are only inspected, never converted, because
 * converting a number key in place would break the traversal. Balanced. */
static key_summary summarize_keys(lua_State *L, int idx)
{
    key_summary s = {0, true, true};
    lua_Integer max_index = 0;

    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1); /* stack: ..., key */
        s.count++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            s.is_sequence = false;
        } else {
            s.all_strings = false;
            lua_Integer k = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
            if (k < 1)
                s.is_sequence = false;
            else if (k > max_index)
                max_index = k;
        }
    }
    /* distinct positive integers whose maximum equals their count are exactly 1..count */
    if (s.is_sequence && (lua_Unsigned)max_index != s.count)
        s.is_sequence = false;
    return s;
}

typedef enum { MARKED_NONE, MARKED_ARRAY, MARKED_OBJECT } table_marker;

/* Which marker metatable, if any, the table at idx carries. Balanced. */
static table_marker marker_of(conv_ctx *c, int idx)
{
    lua_State *L = c->L;
    table_marker marker = MARKED_NONE;

    if (lua_getmetatable(L, idx)) {
        if (lua_rawequal(L, -1, c->array_mt))
            marker = MARKED_ARRAY;
        else if (lua_rawequal(L, -1, c->object_mt))
            marker = MARKED_OBJECT;
        lua_pop(L, 1);
    }
    return marker;
}

static table_shape classify(conv_ctx *c, int idx, size_t *count)
{
    key_summary keys = summarize_keys(c->L, idx);
    table_marker marker = marker_of(c, idx);

    *count = keys.count;
    if (marker == MARKED_ARRAY) {
        if (!keys.is_sequence) {
            record_error(c, "table marked as array has keys other than 1..n");
            return SHAPE_INVALID;
        }
        return SHAPE_ARRAY;
    }
    if (marker == MARKED_OBJECT) {
        if (!keys.all_strings) {
            record_error(c, "table marked as object has non-string key");
            return SHAPE_INVALID;
        }
        return SHAPE_OBJECT;
    }
    if (keys.count == 0 || keys.all_strings) /* an unmarked empty table is {} */
        return SHAPE_OBJECT;
    if (keys.is_sequence)
        return SHAPE_ARRAY;
    record_error(c, "table has non-string key");
    return SHAPE_INVALID;
}

static json_t *value_to_json(conv_ctx *c, int idx);

/* Counts n bytes of JSON text against the bound, before the value is built: a result that
 * references one large string many times stops at the bound instead of being copied. */
static bool take(conv_ctx *c, size_t n)
{
    if (!c->left)
        return true;
    if (n > *c->left) {
        *c->left = 0;
        record_error(c, "%s", CONV_TOO_LARGE);
        return false;
    }
    *c->left -= n;
    return true;
}

static json_t *array_to_json(conv_ctx *c, int idx, size_t count)
{
    lua_State *L = c->L;
    json_t *array = json_array();

    if (array == NULL) {
        record_error(c, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        path_push_index(c, i);
        json_t *item = value_to_json(c, lua_gettop(L));
        path_pop(c);
        lua_pop(L, 1);
        if (item == NULL)
            goto fail;
        if (json_array_append_new(array, item) != 0) { /* steals item even on failure */
            record_error(c, "out of memory");
            goto fail;
        }
    }
    return array;
fail:
    json_decref(array);
    return NULL;
}

static json_t *object_to_json(conv_ctx *c, int idx)
{
    lua_State *L = c->L;
    json_t *object = json_object();

    if (object == NULL) {
        record_error(c, "out of memory");
        return NULL;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        /* stack: ..., key, value — classify() guaranteed the key is a string */
        size_t key_len, bad_at;
        const char *key = lua_tolstring(L, -2, &key_len);
        if (!utf8_valid(key, key_len, &bad_at)) {
            record_error(c, "object key is not valid UTF-8 (bad byte at offset %zu)", bad_at);
            goto fail;
        }
        if (!take(c, key_len + 4)) /* "key": and a comma */
            goto fail;
        path_push_key(c, key, key_len);
        json_t *member = value_to_json(c, lua_gettop(L));
        path_pop(c);
        if (member == NULL)
            goto fail;
        if (json_object_setn_new(object, key, key_len, member) != 0) { /* steals member */
            record_error(c, "out of memory");
            goto fail;
        }
        lua_pop(L, 1); /* stack: ..., key */
    }
    return object;
fail:
    lua_pop(L, 2);
    json_decref(object);
    return NULL;
}

static json_t *table_to_json(conv_ctx *c, int idx)
{
    const void *self = lua_topointer(c->L, idx);
    size_t count;
    json_t *result = NULL;

    if (c->depth >= CONV_MAX_DEPTH) {
        record_error(c, "nesting deeper than %d levels", CONV_MAX_DEPTH);
        return NULL;
    }
    for (int i = 0; i < c->depth; i++) {
        if (c->visiting[i] == self) {
            record_error(c, "table contains itself (cycle)");
            return NULL;
        }
    }
    if (!take(c, 2))
        return NULL;
    if (!lua_checkstack(c->L, 3)) { /* key, value, and one slot for a child */
        record_error(c, "Lua stack exhausted");
        return NULL;
    }
    c->visiting[c->depth] = self;
    switch (classify(c, idx, &count)) {
    case SHAPE_ARRAY:
        result = array_to_json(c, idx, count);
        break;
    case SHAPE_OBJECT:
        result = object_to_json(c, idx);
        break;
    case SHAPE_INVALID:
        break;
    }
    return result;
}

static json_t *number_to_json(conv_ctx *c, int idx)
{
    json_t *v;

    if (!take(c, 24))
        return NULL;
    if (lua_isinteger(c->L, idx)) {
        v = json_integer((json_int_t)lua_tointeger(c->L, idx));
    } else {
        double d = (double)lua_tonumber(c->L, idx);
        if (isnan(d)) {
            record_error(c, "cannot convert NaN to JSON");
            return NULL;
        }
        if (isinf(d)) {
            record_error(c, "cannot convert %s to JSON", d > 0 ? "inf" : "-inf");
            return NULL;
        }
        v = json_real(d);
    }
    if (v == NULL)
        record_error(c, "out of memory");
    return v;
}

static json_t *string_to_json(conv_ctx *c, int idx)
{
    size_t len, bad_at;
    const char *s = lua_tolstring(c->L, idx, &len);

    if (!take(c, len + 3)) /* quotes and a comma; escapes are not counted */
        return NULL;
    if (!utf8_valid(s, len, &bad_at)) {
        record_error(c, "string is not valid UTF-8 (bad byte at offset %zu)", bad_at);
        return NULL;
    }
    json_t *v = json_stringn(s, len); /* validated above, so NULL means out of memory */
    if (v == NULL)
        record_error(c, "out of memory");
    return v;
}

static json_t *unconvertible(conv_ctx *c, int idx)
{
    record_error(c, "cannot convert a %s to JSON", luaL_typename(c->L, idx));
    return NULL;
}

/* Returns a new reference or NULL (error recorded). Balanced. */
static json_t *value_to_json(conv_ctx *c, int idx)
{
    lua_State *L = c->L;
    json_t *v;

    if (!take(c, 6)) /* false, */
        return NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: /* only reachable at the top: tables cannot hold nil */
        v = json_null();
        break;
    case LUA_TBOOLEAN:
        v = json_boolean(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        return number_to_json(c, idx);
    case LUA_TSTRING:
        return string_to_json(c, idx);
    case LUA_TTABLE:
        return table_to_json(c, idx);
    case LUA_TLIGHTUSERDATA:
        if (!conv_is_null(L, idx))
            return unconvertible(c, idx); /* as opaque as a full userdata */
        v = json_null();
        break;
    default: /* function, userdata, thread */
        return unconvertible(c, idx);
    }
    if (v == NULL)
        record_error(c, "out of memory");
    return v;
}

json_t *conv_to_json(lua_State *L, int idx, char **err)
{
    return conv_to_json_max(L, idx, NULL, err);
}

json_t *conv_to_json_max(lua_State *L, int idx, size_t *left, char **err)
{
    int top = lua_gettop(L);
    conv_ctx c = {.L = L, .err = err, .left = left};

    if (err != NULL)
        *err = NULL;
    if (lua_type(L, idx) == LUA_TNONE) { /* checked before pushing makes it a valid slot */
        record_error(&c, "no value to convert (invalid stack index)");
        return NULL;
    }
    idx = lua_absindex(L, idx);
    if (!lua_checkstack(L, 2)) {
        record_error(&c, "Lua stack exhausted");
        return NULL;
    }
    push_markers(&c);
    json_t *v = value_to_json(&c, idx);
    lua_pop(L, 2);
    assert(lua_gettop(L) == top);
    (void)top; /* only read by the assert */
    return v;
}

/* ---- anchors -------------------------------------------------------------------------------- */

#define ANCHOR_MT "luamcp.json_anchor"

static int anchor_gc(lua_State *L)
{
    json_t **slot = lua_touserdata(L, 1);
    if (slot && *slot) {
        json_decref(*slot);
        *slot = NULL;
    }
    return 0;
}

json_t **conv_anchor(lua_State *L, json_t *v)
{
    json_t **slot = lua_newuserdatauv(L, sizeof *slot, 0);
    *slot = v;
    if (luaL_newmetatable(L, ANCHOR_MT)) {
        lua_pushcfunction(L, anchor_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return slot;
}

json_t *conv_unanchor(json_t **slot)
{
    json_t *v = *slot;
    *slot = NULL;
    return v;
}
