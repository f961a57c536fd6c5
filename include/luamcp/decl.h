/* decl — reading the tables scripts declare things with (mcp.tool, mcp.prompt, mcp.policy,
 * mcp.http requests…): unknown keys, string and JSON fields, and messages. Shared so that
 * every declaration refuses a typo the same way. */
#ifndef LUAMCP_DECL_H
#define LUAMCP_DECL_H

#include <jansson.h>
#include <lua.h>
#include <stdbool.h>

/* The first key of the table at idx that is not one of known (NULL-ended), or NULL when every
 * key is known. A key that is not a string is reported as "?". Borrowed from the table. */
const char *decl_unknown_key(lua_State *L, int idx, const char *const *known);

/* printf into a new string (NULL when out of memory). */
char *decl_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

/* Field key of the table at idx, a string, copied into desc under the same key. Absent is
 * fine unless required (then also refused when empty). -1 with *err naming the field. */
int decl_string_field(lua_State *L, int idx, const char *key, bool required, json_t *desc,
                      char **err);

/* Field key of the table at idx, a table converted to JSON into desc; absent is fine. */
int decl_json_field(lua_State *L, int idx, const char *key, json_t *desc, char **err);

#endif
