#include "luamcp/decl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luamcp/conv.h"

const char *decl_unknown_key(lua_State *L, int idx, const char *const *known)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        bool ok = false;
        for (int i = 0; k && known[i] && !ok; i++)
            ok = strcmp(k, known[i]) == 0;
        if (!ok) {
            lua_pop(L, 1);
            return k ? k : "?";
        }
    }
    return NULL;
}

char *decl_fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, f);
        vsnprintf(s, (size_t)n + 1, f, ap);
        va_end(ap);
    }
    return s;
}

int decl_string_field(lua_State *L, int idx, const char *key, bool required, json_t *desc,
                      char **err)
{
    int t = lua_getfield(L, idx, key);
    int rc = 0;
    if (t == LUA_TSTRING) {
        json_t *s = json_string(lua_tostring(L, -1));
        if (!s) {
            *err = decl_fmt("'%s' is not valid UTF-8", key);
            rc = -1;
        } else if (required && json_string_length(s) == 0) {
            json_decref(s);
            *err = decl_fmt("'%s' must not be empty", key);
            rc = -1;
        } else {
            json_object_set_new(desc, key, s);
        }
    } else if (t != LUA_TNIL || required) {
        *err = decl_fmt("'%s' must be a string", key);
        rc = -1;
    }
    lua_pop(L, 1);
    return rc;
}

int decl_json_field(lua_State *L, int idx, const char *key, json_t *desc, char **err)
{
    if (lua_getfield(L, idx, key) == LUA_TNIL)
        return lua_pop(L, 1), 0;
    char *why = NULL;
    json_t *v = lua_istable(L, -1) ? conv_to_json(L, -1, &why) : NULL;
    lua_pop(L, 1);
    if (!v) {
        *err = decl_fmt("'%s' must be a table convertible to JSON%s%s", key, why ? ": " : "",
                        why ? why : "");
        free(why);
        return -1;
    }
    json_object_set_new(desc, key, v);
    return 0;
}
