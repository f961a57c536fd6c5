/* libFuzzer target: "<schema JSON>\0<instance JSON>" -> schema_compile + schema_validate, and
 * a JSON -> Lua -> JSON round trip of the instance (and of the schema document). */
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/conv.h"
#include "luamcp/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* JSON -> Lua -> JSON must give back an equal document whenever the first step accepts it. */
static void round_trip(lua_State *L, const json_t *doc)
{
    char *err = NULL;
    int top = lua_gettop(L);
    if (conv_push_json(L, doc, &err) != 0) {
        if (lua_gettop(L) != top) {
            fprintf(stderr, "fuzz_conv_schema: conv_push_json failed but pushed\n");
            abort();
        }
        free(err);
        return;
    }
    json_t *back = conv_to_json(L, -1, &err);
    if (!back || !json_equal(doc, back) || lua_gettop(L) != top + 1) {
        fprintf(stderr, "fuzz_conv_schema: round trip changed the document: %s\n",
                err ? err : "(not equal)");
        abort();
    }
    json_decref(back);
    lua_pop(L, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    size_t schema_len = nul ? (size_t)(nul - text) : size;
    const char *inst = nul ? nul + 1 : NULL;
    size_t inst_len = nul ? size - schema_len - 1 : 0;

    json_error_t jerr;
    json_t *schema_doc = json_loadb(text, schema_len, JSON_DECODE_ANY, &jerr);
    json_t *instance = inst ? json_loadb(inst, inst_len, JSON_DECODE_ANY, &jerr) : NULL;

    if (schema_doc) {
        char *err = NULL;
        schema_t *s = schema_compile(schema_doc, &err);
        if (s) {
            if (instance) {
                char buf[512];
                (void)schema_validate(s, instance, buf, sizeof buf);
            }
            schema_free(s);
        }
        free(err);
    }

    lua_State *L = luaL_newstate();
    if (L) {
        conv_init(L);
        if (instance)
            round_trip(L, instance);
        if (schema_doc)
            round_trip(L, schema_doc);
        lua_close(L);
    }
    json_decref(instance);
    json_decref(schema_doc);
    return 0;
}
