/* api_crypto — mcp.crypto and mcp.encoding for Lua: digests, HMAC, random bytes, hex and
 * base64. Pure functions of their arguments; safe in tools, policies and specs. */
#ifndef LUAMCP_API_CRYPTO_H
#define LUAMCP_API_CRYPTO_H

#include <lua.h>

/* Pushes a table { digest, hmac, random } (the value of mcp.crypto). */
int api_crypto_push(lua_State *L);
/* Pushes a table { hex, unhex, base64, unbase64, base64url, unbase64url } (mcp.encoding). */
int api_encoding_push(lua_State *L);

#endif
