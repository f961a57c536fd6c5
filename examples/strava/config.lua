-- luamcp configuration for the Strava MCP server in production: HTTPS, tokens from an AWS
-- Cognito user pool, backend calls to www.strava.com only. Fill in the four values marked
-- "YOUR": the server's public URL, the user pool, its app client ids, and the TLS files.
-- Start it with: luamcp serve --config examples/strava/config.lua
-- (relative paths below are relative to this file).
return {
  listen = "0.0.0.0:8443",
  tls = { cert = "/etc/luamcp/tls/fullchain.pem", key = "/etc/luamcp/tls/privkey.pem" }, -- YOUR
  allowed_hosts = { "strava.mcp.example.com" },  -- YOUR public host name (the Host header)
  scripts = "scripts",
  policies = "policies",
  workers = 0,                                    -- one per core

  auth = {
    -- YOUR public URL of the MCP endpoint: the RFC 9728 metadata names it as the resource
    resource = "https://strava.mcp.example.com/mcp",
    issuers = {
      {
        -- YOUR user pool: https://cognito-idp.<region>.amazonaws.com/<user pool id>
        issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE",
        preset = "cognito",                       -- token_use = access, client_id allowlist
        client_ids = { "EXAMPLE_APP_CLIENT_ID" }, -- YOUR app clients allowed to call
      },
    },
  },

  -- Tools may reach www.strava.com over HTTPS and nothing else (each tool also lists it).
  egress = {
    allow = { "www.strava.com" },
    timeout_ms = 10000,
    max_requests = 4,                             -- backend requests per tool call
  },

  limits = {
    timeout_ms = 20000,                           -- wall-clock deadline of one tool call
    cpu_ms = 1000,
    memory_mb = 64,
  },
}
