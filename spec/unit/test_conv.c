/* Unit tests for src/conv.c: JSON <-> Lua conversion, from the outside (public API only).
 *
 * Lua values are built with real Lua code in a state that has `null`, `array(t)` and
 * `object(t)` globals standing in for mcp.null / mcp.array / mcp.object. Every helper checks
 * that conv left the Lua stack exactly as it should, on success and on failure.
 */
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "luamcp/conv.h"

/* array(t) / object(t): sets the marker metatable named by upvalue 1 on t (or a new table). */
static int mark_table(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_setmetatable(L, lua_tostring(L, lua_upvalueindex(1)));
    lua_settop(L, 1);
    return 1;
}

static void register_marker(lua_State *L, const char *global, const char *metatable)
{
    lua_pushstring(L, metatable);
    lua_pushcclosure(L, mark_table, 1);
    lua_setglobal(L, global);
}

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();

    luaL_openlibs(L);
    conv_init(L);
    conv_push_null(L);
    lua_setglobal(L, "null");
    register_marker(L, "array", CONV_ARRAY_MT);
    register_marker(L, "object", CONV_OBJECT_MT);
    return L;
}

/* Runs `return <expr>`-style code and leaves its single result on the stack. */
static bool push_lua(lua_State *L, const char *code)
{
    if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        fprintf(stderr, "lua error in [%s]: %s\n", code, lua_tostring(L, -1));
        lua_pop(L, 1);
        return false;
    }
    return true;
}

/* Runs a Lua predicate (code returning a boolean) with the global v set from the stack top,
 * which it pops. */
static bool lua_predicate(lua_State *L, const char *code)
{
    lua_setglobal(L, "v");
    if (!push_lua(L, code))
        return false;
    bool ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!ok)
        fprintf(stderr, "predicate false: %s\n", code);
    return ok;
}

static char *dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
}

/* Converts the value of `code` to JSON. Returns the dumped text (caller frees) or NULL with
 * *err set. Checks that the stack is unchanged, with an unrelated value below. */
static char *encode(lua_State *L, const char *code, char **err)
{
    lua_pushliteral(L, "sentinel below");
    if (!push_lua(L, code))
        return NULL;
    int top = lua_gettop(L);
    json_t *v = conv_to_json(L, -1, err);
    CHECK_INT(lua_gettop(L), top);
    CHECK((v == NULL) == (*err != NULL));
    CHECK_STR(lua_tostring(L, -2), "sentinel below");
    lua_pop(L, 2);
    char *text = v != NULL ? dump(v) : NULL;
    json_decref(v);
    return text;
}

#define EXPECT_ENCODE(code, want)                                                             \
    do {                                                                                      \
        char *err_ = NULL, *got_ = encode(L, (code), &err_);                                  \
        CHECK_STR(got_, (want));                                                              \
        CHECK_STR(err_, NULL);                                                                \
        free(got_);                                                                           \
        free(err_);                                                                           \
    } while (0)

#define EXPECT_ENCODE_ERROR(code, want)                                                       \
    do {                                                                                      \
        char *err_ = NULL, *got_ = encode(L, (code), &err_);                                  \
        CHECK_STR(err_, (want));                                                              \
        CHECK_STR(got_, NULL);                                                                \
        free(got_);                                                                           \
        free(err_);                                                                           \
    } while (0)

static json_t *parse(const char *text)
{
    json_error_t error;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);

    if (v == NULL)
        fprintf(stderr, "bad test JSON %s: %s\n", text, error.text);
    return v;
}

/* Pushes the Lua value for JSON text; checks exactly one value was pushed. */
static bool decode(lua_State *L, const char *text)
{
    json_t *v = parse(text);
    char *err = (char *)"not reset";
    int top = lua_gettop(L);

    if (!CHECK(v != NULL))
        return false;
    int rc = conv_push_json(L, v, &err);
    json_decref(v);
    CHECK_STR(err, NULL);
    free(rc != 0 ? err : NULL);
    return CHECK_INT(rc, 0) && CHECK_INT(lua_gettop(L), top + 1);
}

#define EXPECT_DECODE(text, predicate)                                                        \
    do {                                                                                      \
        if (decode(L, (text)))                                                                \
            CHECK(lua_predicate(L, (predicate)));                                             \
    } while (0)

/* Lua code for n nested arrays around a 1: {{{1}}} for n = 3. */
static char *nested_lua_arrays(int n)
{
    char *code = malloc(64);
    snprintf(code, 64, "local t = 1 for i = 1, %d do t = {t} end return t", n);
    return code;
}

/* JSON text for n nested arrays around a 1: [[[1]]] for n = 3. */
static char *nested_json_arrays(int n)
{
    char *text = malloc((size_t)n * 2 + 2);
    size_t len = 0;

    for (int i = 0; i < n; i++)
        text[len++] = '[';
    text[len++] = '1';
    for (int i = 0; i < n; i++)
        text[len++] = ']';
    text[len] = '\0';
    return text;
}

/* "$[0][0]...: message" with n index segments. */
static char *index_path_error(int n, const char *message)
{
    size_t size = 2 + (size_t)n * 3 + 2 + strlen(message) + 1;
    char *text = malloc(size);
    size_t len = 0;

    text[len++] = '$';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, size - len, "[0]");
    snprintf(text + len, size - len, ": %s", message);
    return text;
}

/* ---- Lua -> JSON ----------------------------------------------------------------------- */

static void test_scalars_to_json(lua_State *L)
{
    EXPECT_ENCODE("return nil", "null");
    EXPECT_ENCODE("return null", "null");
    EXPECT_ENCODE("return true", "true");
    EXPECT_ENCODE("return false", "false");
    EXPECT_ENCODE("return 42", "42");
    EXPECT_ENCODE("return (1 << 53) + 1", "9007199254740993");
    EXPECT_ENCODE("return math.maxinteger", "9223372036854775807");
    EXPECT_ENCODE("return math.mininteger", "-9223372036854775808");
    EXPECT_ENCODE("return 1.5", "1.5");
    EXPECT_ENCODE("return 3.0", "3.0"); /* a float stays a real, even when integral */
    EXPECT_ENCODE("return -0.0", "-0.0");
    EXPECT_ENCODE("return 'h\\u{e9}llo'", "\"h\xc3\xa9llo\"");
    EXPECT_ENCODE("return 'a\\0b'", "\"a\\u0000b\"");
}

static void test_float_values_are_exact(lua_State *L)
{
    char *err = NULL;

    CHECK(push_lua(L, "return 1e300"));
    json_t *v = conv_to_json(L, -1, &err);
    CHECK(json_is_real(v) && json_real_value(v) == 1e300);
    json_decref(v);
    lua_pop(L, 1);

    CHECK(push_lua(L, "return -0.0"));
    v = conv_to_json(L, -1, &err);
    CHECK(json_is_real(v) && json_real_value(v) == 0 && signbit(json_real_value(v)));
    json_decref(v);
    lua_pop(L, 1);
}

static void test_tables_to_json(lua_State *L)
{
    EXPECT_ENCODE("return {}", "{}");
    EXPECT_ENCODE("return array()", "[]");
    EXPECT_ENCODE("return object()", "{}");
    EXPECT_ENCODE("return {1, 2, 3}", "[1,2,3]");
    EXPECT_ENCODE("return array{1, 'x'}", "[1,\"x\"]");
    EXPECT_ENCODE("return {b = 1, a = {c = true}}", "{\"a\":{\"c\":true},\"b\":1}");
    EXPECT_ENCODE("return object{k = array()}", "{\"k\":[]}");
    EXPECT_ENCODE("return {null, 1, null}", "[null,1,null]");
    EXPECT_ENCODE("return {a = null}", "{\"a\":null}");
    EXPECT_ENCODE("return {{x = {1, {y = {}}}}}", "[{\"x\":[1,{\"y\":{}}]}]");
    EXPECT_ENCODE("return {['a b'] = 1, ['\\0'] = 2}", "{\"\\u0000\":2,\"a b\":1}");
    /* the same table twice is not a cycle */
    EXPECT_ENCODE("local t = {1} return {t, t, {t}}", "[[1],[1],[[1]]]");
    /* raw access: an unrelated metatable's metamethods are not consulted */
    EXPECT_ENCODE("return setmetatable({1}, {__index = function() return 9 end, "
                  "__len = function() return 5 end})",
                  "[1]");
}

static void test_key_with_nul(lua_State *L)
{
    char *err = NULL;

    CHECK(push_lua(L, "return {['a\\0b'] = 1}"));
    json_t *v = conv_to_json(L, -1, &err);
    CHECK(json_integer_value(json_object_getn(v, "a\0b", 3)) == 1);
    CHECK(json_object_get(v, "a") == NULL);
    json_decref(v);
    lua_pop(L, 1);
}

static void test_unconvertible_values(lua_State *L)
{
    EXPECT_ENCODE_ERROR("return print", "$: cannot convert a function to JSON");
    EXPECT_ENCODE_ERROR("return {a = {1, print}}", "$.a[1]: cannot convert a function to JSON");
    EXPECT_ENCODE_ERROR("return {co = coroutine.create(print)}",
                        "$.co: cannot convert a thread to JSON");
    EXPECT_ENCODE_ERROR("return {io.stdout}", "$[0]: cannot convert a userdata to JSON");
    EXPECT_ENCODE_ERROR("return {x = 0/0}", "$.x: cannot convert NaN to JSON");
    EXPECT_ENCODE_ERROR("return {1, math.huge}", "$[1]: cannot convert inf to JSON");
    EXPECT_ENCODE_ERROR("return -math.huge", "$: cannot convert -inf to JSON");
    EXPECT_ENCODE_ERROR("return {['a b'] = {print}}",
                        "$[\"a b\"][0]: cannot convert a function to JSON");
    EXPECT_ENCODE_ERROR("return {['say \"hi\"'] = print}",
                        "$[\"say \\\"hi\\\"\"]: cannot convert a function to JSON");

    /* a light userdata that is not mcp.null */
    char *err = NULL;
    lua_pushlightuserdata(L, &err);
    CHECK(conv_to_json(L, -1, &err) == NULL);
    CHECK_STR(err, "$: cannot convert a userdata to JSON");
    free(err);
    lua_pop(L, 1);

    /* an invalid index names no type */
    CHECK(conv_to_json(L, lua_gettop(L) + 1, &err) == NULL);
    CHECK_STR(err, "$: no value to convert (invalid stack index)");
    free(err);
}

static void test_table_shapes_refused(lua_State *L)
{
    EXPECT_ENCODE_ERROR("return {1, 2, x = 3}", "$: table has non-string key");
    EXPECT_ENCODE_ERROR("return {a = {[1] = 1, [3] = 3}}", "$.a: table has non-string key");
    EXPECT_ENCODE_ERROR("return {[0] = 1}", "$: table has non-string key");
    EXPECT_ENCODE_ERROR("return {[-1] = 1}", "$: table has non-string key");
    EXPECT_ENCODE_ERROR("return {[1.5] = 1}", "$: table has non-string key");
    EXPECT_ENCODE_ERROR("return {[true] = 1}", "$: table has non-string key");
    EXPECT_ENCODE_ERROR("return {x = {[{}] = 1}}", "$.x: table has non-string key");
    EXPECT_ENCODE_ERROR("return array{x = 1}",
                        "$: table marked as array has keys other than 1..n");
    EXPECT_ENCODE_ERROR("return {array{[2] = 1}}",
                        "$[0]: table marked as array has keys other than 1..n");
    EXPECT_ENCODE_ERROR("return object{1}", "$: table marked as object has non-string key");
}

static void test_invalid_utf8_refused(lua_State *L)
{
    EXPECT_ENCODE_ERROR("return {a = {'ok', '\\xff'}}",
                        "$.a[1]: string is not valid UTF-8 (bad byte at offset 0)");
    EXPECT_ENCODE_ERROR("return 'ab\\xc3'", /* truncated sequence */
                        "$: string is not valid UTF-8 (bad byte at offset 2)");
    EXPECT_ENCODE_ERROR("return '\\xc0\\x80'", /* overlong NUL */
                        "$: string is not valid UTF-8 (bad byte at offset 0)");
    EXPECT_ENCODE_ERROR("return 'x\\xed\\xa0\\x80'", /* UTF-16 surrogate */
                        "$: string is not valid UTF-8 (bad byte at offset 1)");
    EXPECT_ENCODE_ERROR("return '\\xf4\\x90\\x80\\x80'", /* above U+10FFFF */
                        "$: string is not valid UTF-8 (bad byte at offset 0)");
    EXPECT_ENCODE_ERROR("return {k = {['\\xff'] = 1}}",
                        "$.k: object key is not valid UTF-8 (bad byte at offset 0)");
    EXPECT_ENCODE("return '\\u{10FFFF}\\u{7FF}\\u{800}'", /* edges that are valid */
                  "\"\xf4\x8f\xbf\xbf\xdf\xbf\xe0\xa0\x80\"");
}

static void test_cycles_refused(lua_State *L)
{
    EXPECT_ENCODE_ERROR("local t = {} t.self = t return t",
                        "$.self: table contains itself (cycle)");
    EXPECT_ENCODE_ERROR("local t = {a = {b = {}}} t.a.b.c = t.a return t",
                        "$.a.b.c: table contains itself (cycle)");
    EXPECT_ENCODE_ERROR("local t = {} t[1] = t return t", "$[0]: table contains itself (cycle)");
}

static void test_depth_limit_to_json(lua_State *L)
{
    char *code = nested_lua_arrays(CONV_MAX_DEPTH);
    char *want = nested_json_arrays(CONV_MAX_DEPTH);
    EXPECT_ENCODE(code, want);
    free(code);
    free(want);

    code = nested_lua_arrays(CONV_MAX_DEPTH + 1);
    want = index_path_error(CONV_MAX_DEPTH, "nesting deeper than 64 levels");
    EXPECT_ENCODE_ERROR(code, want);
    free(code);
    free(want);
}

/* Paths stay readable and bounded: odd keys are quoted and escaped, long keys and long paths
 * are cut with "...". */
static void test_path_rendering(lua_State *L)
{
    EXPECT_ENCODE_ERROR("return {['\\u{65e5}\\u{672c}'] = print}",
                        "$[\"\xe6\x97\xa5\xe6\x9c\xac\"]: cannot convert a function to JSON");
    EXPECT_ENCODE_ERROR("return {['\\n'] = print}",
                        "$[\"\\u000a\"]: cannot convert a function to JSON");
    EXPECT_ENCODE_ERROR("return {[''] = print}", "$[\"\"]: cannot convert a function to JSON");
    EXPECT_ENCODE_ERROR("return {['1a'] = print}", "$[\"1a\"]: cannot convert a function to JSON");

    char want[700];
    snprintf(want, sizeof want, "$[\"%s...\"]: cannot convert a function to JSON",
             "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"); /* 48 shown of 100 */
    EXPECT_ENCODE_ERROR("return {[string.rep('k', 100)] = print}", want);

    /* 20 segments of 41 bytes do not fit in 512: whole segments, then "..." */
    strcpy(want, "$");
    for (int i = 0; i < 12; i++)
        strcat(want, ".kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
    strcat(want, "...: cannot convert a function to JSON");
    EXPECT_ENCODE_ERROR("local t = print for i = 1, 20 do t = {[string.rep('k', 40)] = t} end "
                        "return t",
                        want);
}

/* ---- JSON -> Lua ----------------------------------------------------------------------- */

static void test_scalars_to_lua(lua_State *L)
{
    EXPECT_DECODE("42", "return math.type(v) == 'integer' and v == 42");
    EXPECT_DECODE("9007199254740993", "return math.type(v) == 'integer' and v == (1 << 53) + 1");
    EXPECT_DECODE("-9223372036854775808", "return v == math.mininteger");
    EXPECT_DECODE("2.5", "return math.type(v) == 'float' and v == 2.5");
    EXPECT_DECODE("1.0", "return math.type(v) == 'float' and v == 1");
    EXPECT_DECODE("-0.0", "return math.type(v) == 'float' and 1 / v == -math.huge");
    EXPECT_DECODE("1e300", "return v == 1e300");
    EXPECT_DECODE("true", "return v == true");
    EXPECT_DECODE("false", "return v == false");
    EXPECT_DECODE("null", "return v == null");
    EXPECT_DECODE("\"a\\u0000b\"", "return v == 'a\\0b' and #v == 3");
    EXPECT_DECODE("\"\\u00e9\"", "return v == '\\u{e9}'");
}

static void test_containers_to_lua(lua_State *L)
{
    EXPECT_DECODE("[]", "local mt = getmetatable(v) return #v == 0 and next(v) == nil and "
                        "mt == debug.getregistry()['mcp.array'] and mt.__name == 'mcp.array'");
    EXPECT_DECODE("{}", "local mt = getmetatable(v) return next(v) == nil and "
                        "mt == debug.getregistry()['mcp.object'] and mt.__name == 'mcp.object'");
    EXPECT_DECODE("[1, \"x\", null, [true]]",
                  "return #v == 4 and v[1] == 1 and v[2] == 'x' and v[3] == null and "
                  "v[4][1] == true and getmetatable(v[4]).__name == 'mcp.array'");
    EXPECT_DECODE("{\"a\": {\"b\": [1, 2.5]}, \"c\": null}",
                  "return math.type(v.a.b[1]) == 'integer' and v.a.b[2] == 2.5 and "
                  "v.c == null and getmetatable(v.a).__name == 'mcp.object'");
}

static void test_depth_limit_to_lua(lua_State *L)
{
    char *text = nested_json_arrays(CONV_MAX_DEPTH);
    EXPECT_DECODE(text, "for i = 1, 64 do v = v[1] end return v == 1");
    free(text);

    text = nested_json_arrays(CONV_MAX_DEPTH + 1);
    json_t *v = parse(text);
    char *err = NULL;
    lua_pushliteral(L, "sentinel below");
    int top = lua_gettop(L);
    CHECK_INT(conv_push_json(L, v, &err), -1);
    CHECK_INT(lua_gettop(L), top); /* nothing pushed, partial tables gone */
    char *want = index_path_error(CONV_MAX_DEPTH, "nesting deeper than 64 levels");
    CHECK_STR(err, want);
    lua_pop(L, 1);
    free(want);
    free(err);
    free(text);
    json_decref(v);
}

static void test_key_with_nul_to_lua(lua_State *L)
{
    json_t *v = json_object();
    char *err = NULL;

    json_object_setn_new(v, "a\0b", 3, json_integer(7));
    CHECK_INT(conv_push_json(L, v, &err), 0);
    CHECK(lua_predicate(L, "return v['a\\0b'] == 7 and v.a == nil"));
    json_decref(v);
}

/* ---- both ways ------------------------------------------------------------------------- */

static void test_round_trips(lua_State *L)
{
    static const char *texts[] = {
        "[]",
        "{}",
        "[[], {}, [[]], {\"e\": {}}]",
        "{\"a\": [1, 2.5, \"x\", null, true, false, {}], \"b\": {\"c\": [[]]}}",
        "9007199254740993",
        "-9223372036854775808",
        "9223372036854775807",
        "-0.0",
        "1e300",
        "5e-324",
        "[\"a\\u0000b\", \"\\ud83d\\ude00\"]",
        "{\"\": 0, \"with space\": [null]}",
    };

    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_t *original = parse(texts[i]);
        char *err = NULL;
        int top = lua_gettop(L);
        if (!CHECK_INT(conv_push_json(L, original, &err), 0))
            continue;
        json_t *back = conv_to_json(L, -1, &err);
        lua_pop(L, 1);
        CHECK_INT(lua_gettop(L), top);
        /* json_equal is type-strict: an integer that came back as a real would differ */
        if (!CHECK(back != NULL && json_equal(original, back)))
            fprintf(stderr, "    round trip of %s gave %s\n", texts[i], err ? err : "?");
        if (json_is_real(original))
            CHECK(signbit(json_real_value(original)) == signbit(json_real_value(back)));
        json_decref(original);
        json_decref(back);
        free(err);
    }
}

/* ---- allocation failure ---------------------------------------------------------------- */

static long allocations_left;

static void *failing_malloc(size_t size)
{
    return allocations_left-- > 0 ? malloc(size) : NULL;
}

/* Every jansson allocation in turn fails: conv_to_json must report it and free the partial
 * tree (ASan's leak checker watches), until enough allocations succeed. */
static void test_out_of_memory_to_json(lua_State *L)
{
    json_t *v = NULL;
    long limit;

    CHECK(push_lua(L, "return {a = {1, 2.5, 'x', {b = true, n = null}}, c = {}, d = 'text'}"));
    for (limit = 0; v == NULL && limit < 1000; limit++) {
        char *err = NULL;
        allocations_left = limit;
        json_set_alloc_funcs(failing_malloc, free);
        v = conv_to_json(L, -1, &err);
        json_set_alloc_funcs(malloc, free);
        if (v == NULL && !CHECK(err != NULL && strstr(err, ": out of memory") != NULL))
            fprintf(stderr, "    limit %ld: %s\n", limit, err ? err : "NULL");
        free(err);
    }
    CHECK(v != NULL && limit > 8);
    json_decref(v);
    lua_pop(L, 1);
}

static size_t lua_bytes_used, lua_bytes_cap;

/* A lua_Alloc that refuses to grow past lua_bytes_cap, like the server's memory cap. */
static void *capped_alloc(void *ud, void *ptr, size_t old_size, size_t new_size)
{
    size_t old = ptr != NULL ? old_size : 0; /* without ptr, old_size is a type tag */

    (void)ud;
    if (new_size == 0) {
        free(ptr);
        lua_bytes_used -= old;
        return NULL;
    }
    if (lua_bytes_used - old + new_size > lua_bytes_cap)
        return NULL;
    void *p = realloc(ptr, new_size);
    if (p != NULL)
        lua_bytes_used = lua_bytes_used - old + new_size;
    return p;
}

/* push_json(json_t *) -> value, as a Lua C function so a memory error can be caught. */
static int push_json_argument(lua_State *L)
{
    char *err = NULL;

    if (conv_push_json(L, lua_touserdata(L, 1), &err) != 0) {
        lua_pushstring(L, err != NULL ? err : "conversion failed");
        free(err);
        return lua_error(L);
    }
    return 1;
}

/* Hitting the Lua memory cap inside conv_push_json raises a memory error, which pcall
 * catches; the state stays usable and nothing leaks. */
static void test_lua_memory_cap(void)
{
    json_t *big = json_array();
    for (int i = 0; i < 2000; i++)
        json_array_append_new(big, json_pack("{s:i, s:s}", "i", i, "s", "some text here"));
    lua_bytes_used = 0;
    lua_bytes_cap = (size_t)-1;
    lua_State *L = lua_newstate(capped_alloc, NULL);
    conv_init(L);
    lua_bytes_cap = lua_bytes_used + 64 * 1024;

    lua_pushcfunction(L, push_json_argument);
    lua_pushlightuserdata(L, big);
    CHECK_INT(lua_pcall(L, 1, 1, 0), LUA_ERRMEM);
    lua_settop(L, 0);

    lua_bytes_cap = (size_t)-1;
    lua_pushcfunction(L, push_json_argument);
    lua_pushlightuserdata(L, big);
    CHECK_INT(lua_pcall(L, 1, 1, 0), LUA_OK);
    CHECK_INT(lua_rawlen(L, -1), 2000);
    lua_close(L);
    json_decref(big);
}

/* ---- setup and null -------------------------------------------------------------------- */

static void test_null_sentinel(lua_State *L)
{
    int dummy;

    conv_push_null(L);
    conv_push_null(L);
    CHECK(conv_is_null(L, -1) && conv_is_null(L, -2));
    CHECK(lua_rawequal(L, -1, -2));
    lua_pop(L, 2);

    lua_pushnil(L);
    lua_pushboolean(L, 0);
    lua_pushlightuserdata(L, &dummy);
    lua_pushinteger(L, 0);
    for (int i = 1; i <= 4; i++)
        CHECK(!conv_is_null(L, -i));
    lua_pop(L, 4);
    CHECK(!conv_is_null(L, lua_gettop(L) + 1)); /* no value */
}

static void test_init_is_idempotent(void)
{
    lua_State *L = luaL_newstate();

    conv_init(L);
    luaL_getmetatable(L, CONV_ARRAY_MT);
    conv_init(L);
    CHECK_INT(lua_gettop(L), 1);
    luaL_getmetatable(L, CONV_ARRAY_MT);
    CHECK(lua_rawequal(L, -1, -2));
    lua_getfield(L, -1, "__name");
    CHECK_STR(lua_tostring(L, -1), CONV_ARRAY_MT);
    luaL_getmetatable(L, CONV_OBJECT_MT);
    lua_getfield(L, -1, "__name");
    CHECK_STR(lua_tostring(L, -1), CONV_OBJECT_MT);
    lua_close(L);
}

/* conv_push_json must not silently drop the markers when conv_init was forgotten. */
static void test_push_without_init(void)
{
    lua_State *L = luaL_newstate();
    json_t *v = json_array();
    char *err = NULL;

    CHECK_INT(conv_push_json(L, v, &err), 0);
    CHECK_INT(lua_gettop(L), 1);
    CHECK(lua_getmetatable(L, 1));
    luaL_getmetatable(L, CONV_ARRAY_MT);
    CHECK(lua_rawequal(L, -1, -2));
    json_decref(v);
    lua_close(L);
}

int main(void)
{
    lua_State *L = new_state();

    test_scalars_to_json(L);
    test_float_values_are_exact(L);
    test_tables_to_json(L);
    test_key_with_nul(L);
    test_unconvertible_values(L);
    test_table_shapes_refused(L);
    test_invalid_utf8_refused(L);
    test_cycles_refused(L);
    test_depth_limit_to_json(L);
    test_path_rendering(L);
    test_scalars_to_lua(L);
    test_containers_to_lua(L);
    test_depth_limit_to_lua(L);
    test_key_with_nul_to_lua(L);
    test_round_trips(L);
    test_null_sentinel(L);
    test_out_of_memory_to_json(L);
    CHECK_INT(lua_gettop(L), 0); /* every test left the stack as it found it */
    lua_close(L);

    test_init_is_idempotent();
    test_push_without_init();
    test_lua_memory_cap();
    return check_report();
}
