/* api_crypto — mcp.crypto and mcp.encoding for Lua: digests, HMAC, random bytes, hex and
 * base64. Pure functions of their arguments; safe in tools, policies and specs. */
#ifndef LUAMCP_API_CRYPTO_H
#define LUAMCP_API_CRYPTO_H

#include <lua.h>
#include <stddef.h>

/* Pushes a table { digest, hmac, random } (the value of mcp.crypto). */
int api_crypto_push(lua_State *L);
/* Pushes a table { hex, unhex, base64, unbase64, base64url, unbase64url } (mcp.encoding). */
int api_encoding_push(lua_State *L);

/* Strict standard base64 (padded, canonical): decodes in[0..n) into out (room for n / 4 * 3 + 2
 * bytes), *out_len its length. 0, or -1 with a message in err. */
int crypto_b64_decode(const char *in, size_t n, unsigned char *out, size_t *out_len, char *err,
                      size_t err_size);

#endif
