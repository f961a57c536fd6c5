/* mcp.oauth — outbound OAuth for tools, written in Lua over mcp.http and mcp.cache.
 *
 *   client_credentials{token_url, client_id, client_secret [, scope] [, audience]
 *                      [, resource] [, auth_method] [, timeout_ms]} -> token, expires_in
 *     A service token for the tool itself. Cached in mcp.cache (shared by every worker,
 *     surviving reloads) under a hash of everything that identifies it; refreshed by one
 *     caller once 80% of its life is gone, while the others keep using the cached one.
 *
 *   token_exchange{token_url, client_id, client_secret [, audience] [, scope] [, resource]
 *                  [, requested_token_type] [, auth_method] [, timeout_ms]} -> token, expires_in
 *     RFC 8693: trades the caller's MCP access token for a backend token. Scripts never see
 *     the MCP token: the request carries mcp.oauth.SUBJECT, a placeholder the host replaces,
 *     and only in a request to the origin of the issuer that signed the caller's token (the
 *     issuer's own token service), with redirects off.
 *
 * Errors are `nil, message`; a message never holds the client secret or a token. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "api_http.h"

static const char OAUTH_LUA[] =
    "local mcp, SUBJECT = ...\n"
    "local type, error, pairs, ipairs, tostring, tonumber = type, error, pairs, ipairs, tostring, tonumber\n"
    "local concat, format, floor, max, tointeger = table.concat, string.format, math.floor, math.max, math.tointeger\n"
    "local http, cache, json, crypto, enc = mcp.http, mcp.cache, mcp.json, mcp.crypto, mcp.encoding\n"
    "local time = mcp.time\n"
    "local oauth = { SUBJECT = SUBJECT }\n"
    "local KNOWN = { token_url = 1, client_id = 1, client_secret = 1, scope = 1, audience = 1,\n"
    "                resource = 1, auth_method = 1, timeout_ms = 1, requested_token_type = 1 }\n"
    "\n"
    "local function check(fn, o, exchange)\n"
    "  if type(o) ~= 'table' then error(fn .. ': expected a table of options', 3) end\n"
    "  for k in pairs(o) do\n"
    "    if not KNOWN[k] or (k == 'requested_token_type' and not exchange) then\n"
    "      error(fn .. \": unknown option '\" .. tostring(k) .. \"'\", 3)\n"
    "    end\n"
    "  end\n"
    "  for _, k in ipairs { 'token_url', 'client_id', 'client_secret' } do\n"
    "    if type(o[k]) ~= 'string' or o[k] == '' then\n"
    "      error(fn .. ': ' .. k .. ' must be a non-empty string', 3)\n"
    "    end\n"
    "  end\n"
    "  for _, k in ipairs { 'scope', 'audience', 'resource', 'requested_token_type' } do\n"
    "    if o[k] ~= nil and type(o[k]) ~= 'string' then error(fn .. ': ' .. k .. ' must be a string', 3) end\n"
    "  end\n"
    "  local m = o.auth_method\n"
    "  if m ~= nil and m ~= 'client_secret_basic' and m ~= 'client_secret_post' then\n"
    "    error(fn .. ': auth_method must be client_secret_basic or client_secret_post', 3)\n"
    "  end\n"
    "end\n"
    "\n"
    "-- RFC 6749 section 2.3.1: id and secret are form-encoded before Basic\n"
    "local function formenc(s)\n"
    "  return (s:gsub('[^%w%-%._~]', function(c) return format('%%%02X', c:byte()) end))\n"
    "end\n"
    "\n"
    "local function request(fn, o, form)\n"
    "  local headers = { Accept = 'application/json' }\n"
    "  if o.auth_method == 'client_secret_post' then\n"
    "    form.client_id, form.client_secret = o.client_id, o.client_secret\n"
    "  else\n"
    "    headers.Authorization = 'Basic ' .. enc.base64(formenc(o.client_id) .. ':' .. formenc(o.client_secret))\n"
    "  end\n"
    "  local r, err = http.request { method = 'POST', url = o.token_url, form = form,\n"
    "                                headers = headers, timeout_ms = o.timeout_ms }\n"
    "  if not r then return nil, fn .. ': token request failed: ' .. err end\n"
    "  local body = r:json()\n"
    "  if r.status ~= 200 then\n"
    "    local code = type(body) == 'table' and type(body.error) == 'string' and body.error\n"
    "    return nil, format('%s: the token endpoint answered %d%s', fn, r.status,\n"
    "                              code and (' ' .. code:sub(1, 64)) or '')\n"
    "  end\n"
    "  if type(body) ~= 'table' or type(body.access_token) ~= 'string' or body.access_token == '' then\n"
    "    return nil, fn .. ': the token endpoint answered without an access_token'\n"
    "  end\n"
    "  local ttl = tointeger(body.expires_in) or tonumber(body.expires_in) or 300\n"
    "  if ttl <= 0 then ttl = 300 end\n"
    "  return body.access_token, ttl\n"
    "end\n"
    "\n"
    "function oauth.client_credentials(o)\n"
    "  local fn = 'mcp.oauth.client_credentials'\n"
    "  check(fn, o, false)\n"
    "  local id = concat({ o.token_url, o.client_id, o.client_secret, o.scope or '',\n"
    "                            o.audience or '', o.resource or '', o.auth_method or '' }, '\\n')\n"
    "  local key = 'luamcp.oauth.cc:' .. enc.hex(crypto.digest('sha256', id))\n"
    "  local now = time()\n"
    "  local held = cache.get(key)\n"
    "  held = held and json.decode(held)\n"
    "  if held and held.expires_at > now then\n"
    "    -- past 80% of its life one caller refreshes it; the others use it meanwhile\n"
    "    if now < held.refresh_at or not cache.add(key .. ':refreshing', true, 30) then\n"
    "      return held.token, floor(held.expires_at - now)\n"
    "    end\n"
    "  end\n"
    "  local form = { grant_type = 'client_credentials', scope = o.scope, audience = o.audience,\n"
    "                 resource = o.resource }\n"
    "  local token, ttl = request(fn, o, form)\n"
    "  cache.delete(key .. ':refreshing')\n"
    "  if not token then\n"
    "    if held and held.expires_at > now then return held.token, floor(held.expires_at - now) end\n"
    "    return nil, ttl\n"
    "  end\n"
    "  local keep = ttl - max(5, ttl * 0.05)\n"
    "  if keep > 0 then\n"
    "    cache.set(key, json.encode { token = token, expires_at = now + keep,\n"
    "                                 refresh_at = now + ttl * 0.8 }, keep)\n"
    "  end\n"
    "  return token, ttl\n"
    "end\n"
    "\n"
    "function oauth.token_exchange(o)\n"
    "  local fn = 'mcp.oauth.token_exchange'\n"
    "  check(fn, o, true)\n"
    "  local form = {\n"
    "    grant_type = 'urn:ietf:params:oauth:grant-type:token-exchange',\n"
    "    subject_token = SUBJECT,\n"
    "    subject_token_type = 'urn:ietf:params:oauth:token-type:access_token',\n"
    "    requested_token_type = o.requested_token_type,\n"
    "    audience = o.audience, scope = o.scope, resource = o.resource,\n"
    "  }\n"
    "  return request(fn, o, form)\n"
    "end\n"
    "\n"
    "return oauth\n";

void api_oauth_push(lua_State *L)
{
    /* stack: mcp */
    if (luaL_loadbufferx(L, OAUTH_LUA, sizeof OAUTH_LUA - 1, "=mcp.oauth", "t") != LUA_OK)
        lua_error(L); /* a bug of ours: the text above does not compile */
    /* its _ENV: only what its first lines copy into locals */
    lua_createtable(L, 0, 9);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    static const char *const base[] = {"type", "error", "pairs", "ipairs", "tostring",
                                       "tonumber", NULL};
    for (int i = 0; base[i]; i++) {
        lua_getfield(L, -1, base[i]);
        lua_setfield(L, -3, base[i]);
    }
    lua_pop(L, 1);
    static const struct { const char *name; lua_CFunction open; } libs[] = {
        {"string", luaopen_string}, {"table", luaopen_table}, {"math", luaopen_math}};
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        luaL_requiref(L, libs[i].name, libs[i].open, 0); /* the loaded one, if any */
        lua_setfield(L, -2, libs[i].name);
    }
    lua_setupvalue(L, -2, 1);
    lua_pushvalue(L, -2);
    api_push_subject_placeholder(L);
    lua_call(L, 2, 1);
}
