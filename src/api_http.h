/* Shared by api.c (the mcp module), tool.c (calls that wait for backends) and api_http.c. */
#ifndef LUAMCP_API_HTTP_H
#define LUAMCP_API_HTTP_H

#include <lua.h>
#include <stddef.h>

typedef struct http_batch http_batch_t;

/* Pushes the mcp.http table (request, get, post, all). */
void api_http_push(lua_State *L);
/* Stops and frees the transfers a call waits for (the call is being torn down). */
void api_http_cancel(http_batch_t *b);
int api_http_box_gc(lua_State *L);
/* mcp.sleep(seconds) */
int api_sleep(lua_State *L);

/* A caller's credential as an opaque value; its text only mcp.http can read. */
void api_push_credential(lua_State *L, const char *value, size_t len);
/* The text of the credential at idx, or NULL when it is not one. */
const char *api_credential_value(lua_State *L, int idx);

/* Pushes mcp.oauth (stack: the mcp table, which it needs). */
void api_oauth_push(lua_State *L);
/* Pushes mcp.oauth.SUBJECT: in a form of mcp.http, the caller's MCP access token, filled in
 * by the host for a request to the caller's issuer only. */
void api_push_subject_placeholder(lua_State *L);

/* mcp.json.decode(text): the value, or fail and a message. */
int api_json_decode(lua_State *L);

#endif
