/* api — the `mcp` module seen by scripts (see README.md, "The Lua API").
 * The same code backs the server's states and the loadable mcp.so used by busted specs;
 * the difference is whether the registry holds a vm ("luamcp.vm"). */
#ifndef LUAMCP_API_H
#define LUAMCP_API_H

#include <lua.h>
#include <stdbool.h>

#include "luamcp/auth.h"

#define API_CONTENT_MT "mcp.content"
#define API_RESULT_MT "mcp.result"

/* Whether the value at idx has the registry metatable `name` (mcp.text{...}, mcp.result{...}). */
bool api_has_mt(lua_State *L, int idx, const char *name);

/* Where mcp.resource_updated(uri) goes (the server sets it; NULL in mcp.so). */
void api_set_resource_updated_hook(void (*hook)(const char *uri));

/* Pushes a new mcp module table. */
void api_push_mcp(lua_State *L);

/* Pushes the read-only view of a verified caller: subject, client_id, issuer, expires_at,
 * claims, and scopes (a set with has/all/any/list). */
void api_push_caller(lua_State *L, const auth_caller_t *c);

#define API_DECISION_MT "mcp.decision"
/* Registry list of rules declared by mcp.policy: { def, file, line } entries. */
#define API_PENDING_POLICIES "luamcp.pending_policies"

/* Registry list of tools declared by mcp.tool and not yet collected by the host:
 * each entry is { def = table, file = string, line = integer }. */
#define API_PENDING "luamcp.pending"

#endif
