// e2e.mjs — outbound OAuth from tools (mcp.oauth) against the test IdP (spec/idp/idp.mjs,
// oidc-provider) and a recording backend, with the real luamcp binary.
//
//   client_credentials  a service token, sent to the backend; cached across calls and workers;
//                       a wrong secret is a clear tool error that never shows the secret
//   token_exchange      RFC 8693: the caller's MCP token traded for a backend token with the
//                       caller's sub; the backend never receives the MCP token itself
//   SUBJECT             the placeholder reaches only the issuer's origin; scripts cannot read it
//   no caller           token_exchange without authentication is refused clearly
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test e2e.mjs   (default ../../build/luamcp)
// Needs spec/idp/node_modules (ctest fixture idp_node_modules).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { authorizationCodeToken, clientCredentialsToken } from '../idp/authcode.mjs';
import {
  callTool, claimsOf, luamcpBin, startBackend, startIdp, startLuamcp, tmpDir,
} from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-oauth-');
const RESOURCE = 'https://oauth.mcp.example.com/mcp';
const SECRETS = {
  LUAMCP_SECRET_SVC_ECHO: 'svc-echo-secret',
  LUAMCP_SECRET_SVC_ALL: 'svc-all-secret',
  LUAMCP_SECRET_WRONG: 'not-the-secret-of-svc-echo',
};

let idp;
let backend;
let server;
let mcpToken; // alice's access token for luamcp (authorization code + PKCE)

function config(extra = {}) {
  return {
    scripts: path.join(HERE, 'fixtures', 'scripts'),
    policies: path.join(HERE, 'fixtures', 'policies'),
    stateless: true,
    egress: { allow: ['127.0.0.1'], allow_http: true, allow_private: ['127.0.0.1/32'] },
    ...extra,
  };
}

before(async () => {
  idp = await startIdp(['--resources', `${RESOURCE},http://127.0.0.1:*/api`]);
  backend = await startBackend(() => ({ status: 200, body: { ok: true } }));
  server = await startLuamcp(BIN, TMP, 'oauth', config({
    auth: { resource: RESOURCE, issuers: [{ issuer: idp.issuer }] },
  }), { env: SECRETS });
  mcpToken = (await authorizationCodeToken({
    issuer: idp.issuer, resource: RESOURCE, scope: 'mcp:tools', login: 'alice',
  })).access_token;
});

after(async () => {
  await server?.stop();
  await backend?.close();
  await idp?.proc.stopProcess();
});

const bearerOf = (rec) => (rec.headers.authorization ?? '').replace(/^Bearer /, '');

describe('mcp.oauth.client_credentials', () => {
  it('gets a service token, sends it, and reuses it from the shared cache', async () => {
    const args = {
      token_url: idp.token_endpoint, backend: `${backend.url}/api/cc`, client_id: 'svc-echo',
      secret: 'SVC_ECHO', resource: `${backend.url}/api`,
    };
    const before = backend.requests.length;
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await callTool(server, 'cc_call', args, { token: mcpToken }));
    for (const r of results) {
      assert.equal(r.isError, undefined, JSON.stringify(r));
      assert.equal(r.structuredContent.status, 200);
      assert.ok(r.structuredContent.expires_in > 0 && r.structuredContent.expires_in <= 600);
    }
    const seen = backend.requests.slice(before).map(bearerOf);
    assert.equal(seen.length, 4);
    assert.equal(new Set(seen).size, 1, 'one token, fetched once, for every call on both workers');
    const claims = claimsOf(seen[0]);
    assert.equal(claims.client_id, 'svc-echo');
    assert.equal(claims.aud, `${backend.url}/api`);
    assert.equal(claims.scope, 'echo');
    assert.notEqual(seen[0], mcpToken);
  });

  it('a wrong client secret is a tool error naming the answer, never the secret', async () => {
    const r = await callTool(server, 'cc_call', {
      token_url: idp.token_endpoint, backend: `${backend.url}/api/cc`, client_id: 'svc-echo',
      secret: 'WRONG', resource: `${backend.url}/api`,
    }, { token: mcpToken });
    assert.equal(r.isError, true);
    assert.equal(r.content[0].text,
      'mcp.oauth.client_credentials: the token endpoint answered 401 invalid_client');
    assert.ok(!server.log.includes(SECRETS.LUAMCP_SECRET_WRONG));
    // and the server is unharmed
    const ok = await callTool(server, 'subject_peek', {}, { token: mcpToken });
    assert.equal(ok.structuredContent.type, 'userdata');
  });
});

describe('mcp.oauth.token_exchange', () => {
  it("trades the caller's token for a backend token with the caller's identity", async () => {
    const audience = `${backend.url}/api`;
    const before = backend.requests.length;
    const r = await callTool(server, 'exchange_call', {
      token_url: idp.token_endpoint, backend: `${backend.url}/api/x`, audience,
    }, { token: mcpToken });
    assert.equal(r.isError, undefined, JSON.stringify(r));
    assert.equal(r.structuredContent.status, 200);
    const got = backend.requests.slice(before).map(bearerOf);
    assert.equal(got.length, 1);
    assert.notEqual(got[0], mcpToken, 'the MCP access token never goes downstream');
    const claims = claimsOf(got[0]);
    assert.equal(claims.sub, 'alice');
    assert.deepEqual(claims.act, { sub: 'svc-all' });
    assert.equal(claims.aud, audience);
    // the IdP traded exactly the token alice called with
    assert.match(idp.stderr(), new RegExp(`token exchange \\{"subject_jti":"${claimsOf(mcpToken).jti}"`));
  });

  it('trades the token exactly as auth read it, however the Authorization header spaces it', async () => {
    // "bearer<TAB>TOKEN": a scheme without case and a tab are fine for auth (RFC 9110 / 6750),
    // so the token handed to the exchange must be the same one, not none
    const r = await callTool(server, 'exchange_call', {
      token_url: idp.token_endpoint, backend: `${backend.url}/api/x`, audience: `${backend.url}/api`,
    }, { headers: { authorization: `bearer\t${mcpToken}` } });
    assert.equal(r.isError, undefined, JSON.stringify(r));
    assert.equal(r.structuredContent.status, 200);
  });

  it('refuses to send the caller token anywhere but its issuer, and scripts cannot read it', async () => {
    const before = backend.requests.length;
    const r = await callTool(server, 'subject_elsewhere', { backend: `${backend.url}/api/steal` }, { token: mcpToken });
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /tool 'subject_elsewhere' failed/);
    await server.waitLog(/mcp\.oauth\.SUBJECT: the caller's token goes only to its issuer's origin \(http:\/\/127\.0\.0\.1:\d+\), not to http:\/\/127\.0\.0\.1:\d+/);
    assert.equal(backend.requests.length, before, 'nothing was sent');
    const peek = await callTool(server, 'subject_peek', {}, { token: mcpToken });
    assert.ok(!JSON.stringify(peek).includes(mcpToken));
    assert.ok(!JSON.stringify(peek).includes(mcpToken.split('.')[1]));
  });

  it('neither the MCP token nor a client secret ever reaches the log or the audit', () => {
    const all = server.log + server.out;
    for (const secret of [mcpToken, ...Object.values(SECRETS)]) assert.ok(!all.includes(secret));
  });
});

describe('without authentication', () => {
  it('token_exchange has no caller token to trade: a clear error', async () => {
    const open = await startLuamcp(BIN, TMP, 'open', config({ auth: { enabled: false } }), { env: SECRETS });
    try {
      const r = await callTool(open, 'exchange_call', {
        token_url: idp.token_endpoint, backend: `${backend.url}/api/x`, audience: `${backend.url}/api`,
      });
      assert.equal(r.isError, true);
      await open.waitLog(/mcp\.oauth\.SUBJECT: this call has no caller token \(is auth off\?\)/);
      // client credentials need no caller: still fine
      const cc = await callTool(open, 'cc_call', {
        token_url: idp.token_endpoint, backend: `${backend.url}/api/cc`, client_id: 'svc-echo',
        secret: 'SVC_ECHO', resource: `${backend.url}/api`,
      });
      assert.equal(cc.structuredContent.status, 200);
    } finally {
      await open.stop();
    }
  });

  it('a service token from the IdP is not an MCP token: luamcp refuses it as a caller', async () => {
    const svc = await clientCredentialsToken({
      issuer: idp.issuer, clientId: 'svc-echo', clientSecret: 'svc-echo-secret', scope: 'echo',
      resource: `${backend.url}/api`,
    });
    const r = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${svc.access_token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /error="invalid_token"/);
  });
});
