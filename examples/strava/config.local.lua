-- The Strava example on one machine, for trying it out: the test IdP of spec/idp in its
-- Cognito shape (127.0.0.1:9400) stands in for Cognito, mock/strava_mock.mjs (127.0.0.1:9443)
-- for Strava. Differences from config.lua, and nothing else: plain HTTP on loopback,
-- stateless (so curl needs no session), the test issuer and client, and egress pinned to the
-- mock: www.strava.com:9443 resolves to 127.0.0.1 (allowed by allow_private), whose
-- self-signed certificate is trusted through ca_file. The tools find port 9443 through the
-- secret STRAVA_API_BASE (see README.md).
return {
  listen = "127.0.0.1:8931",
  stateless = true,
  scripts = "scripts",
  policies = "policies",
  workers = 2,
  auth = {
    resource = "http://127.0.0.1:8931/mcp",
    issuers = {
      { issuer = "http://127.0.0.1:9400", preset = "cognito", client_ids = { "svc-all" } },
    },
  },
  egress = {
    allow = { "www.strava.com" },
    resolve = { "www.strava.com:9443:127.0.0.1" },
    allow_private = { "127.0.0.1/32" },
    ca_file = "/tmp/strava-mock/cert.pem",
    timeout_ms = 10000,
    max_requests = 4,
  },
  limits = { timeout_ms = 20000 },
}
