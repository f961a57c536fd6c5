/* conv — JSON (jansson) <-> Lua values, with explicit rules.
 *
 *   JSON          Lua
 *   null          mcp.null (a light userdata sentinel, see conv_push_null)
 *   true/false    boolean
 *   integer       integer subtype (never a float)
 *   real          float subtype
 *   string        string (JSON text is UTF-8; Lua strings going out must be valid UTF-8)
 *   array         table 1..n, with metatable CONV_ARRAY_MT so [] survives a round trip
 *   object        table, with metatable CONV_OBJECT_MT so {} survives a round trip
 *
 * Lua -> JSON for a table with neither metatable: empty -> {} ; keys exactly 1..n -> array;
 * all keys strings -> object; anything else (mixed, sparse, float or boolean keys) is refused.
 * NaN and infinities are refused, functions/userdata/threads are refused, cycles are refused,
 * nesting beyond CONV_MAX_DEPTH is refused. Errors name the path, e.g. "$.a[3].b: ...".
 */
#ifndef LUAMCP_CONV_H
#define LUAMCP_CONV_H

#include <jansson.h>
#include <lua.h>

#define CONV_MAX_DEPTH 64
#define CONV_ARRAY_MT "mcp.array"   /* registry names of the two marker metatables */
#define CONV_OBJECT_MT "mcp.object"

/* Creates the two marker metatables in the registry (idempotent). Call once per state. */
void conv_init(lua_State *L);

/* Pushes the mcp.null sentinel. */
void conv_push_null(lua_State *L);
int conv_is_null(lua_State *L, int idx);

/* Pushes the Lua value for v (borrowed). Returns 0, or -1 with *err set (caller frees) and
 * nothing pushed. Never raises a Lua error except on allocation failure. */
int conv_push_json(lua_State *L, const json_t *v, char **err);

/* Returns a new reference for the Lua value at idx, or NULL with *err set (caller frees).
 * Leaves the stack as it found it. Never raises except on allocation failure. */
json_t *conv_to_json(lua_State *L, int idx, char **err);

/* conv_to_json, counting the JSON text it makes against *left (bytes; an upper estimate that
 * leaves escapes out), decremented as it goes: past it, NULL with *err = CONV_TOO_LARGE (and
 * *left = 0), before the rest is built. One left can bound several conversions together. */
#define CONV_TOO_LARGE "larger than the size limit"
json_t *conv_to_json_max(lua_State *L, int idx, size_t *left, char **err);

/* For host code that builds JSON while it reads Lua values that may raise (metamethods, memory):
 * pushes a box owning v (released when collected, if still there); take v back with
 * conv_unanchor once nothing can raise any more. */
json_t **conv_anchor(lua_State *L, json_t *v);
json_t *conv_unanchor(json_t **slot);

#endif
