// e2e.mjs — authentication end to end: a real authorization server (spec/idp/idp.mjs, on
// oidc-provider), the real luamcp binary, and the official MCP TypeScript SDK client, all on
// loopback ports of their own.
//
//   1/2  the SDK's ClientCredentialsProvider finds everything by itself (401 -> protected
//        resource metadata -> authorization server metadata -> token with resource) and calls
//        tools, against an RS256 and an ES256 issuer
//   3    authorization code + PKCE user token
//   4    Cognito-shaped tokens (preset, client allowlist, prefixed scopes); audience mismatch
//   5    key rotation without restart (parked refetch, old keys kept, dropped keys refused)
//   6    the IdP dies: cached keys keep serving, unknown kids fail fast, the server lives on
//   7    the IdP is down when luamcp starts: 503, then keys arrive by themselves
//   8    insufficient scope: 403 with the challenge
//
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test e2e.mjs   (from spec/auth_e2e)

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

import { freePort, lua, startIdp, stopAll, track } from '../lib/harness.mjs';
import { authorizationCodeToken, clientCredentialsToken } from '../idp/authcode.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TOOLS = path.join(HERE, 'fixtures', 'tools');
const POLICIES = path.join(HERE, 'fixtures', 'policies');
const BIN = process.env.LUAMCP_BIN || '/work/main/build/luamcp';
if (!existsSync(BIN)) throw new Error(`LUAMCP_BIN must name the luamcp binary (got '${BIN}')`);
if (!existsSync(path.join(HERE, '..', 'idp', 'node_modules'))) {
  throw new Error('spec/idp/node_modules is missing: run npm ci there (ctest fixture idp_node_modules)');
}

const TMP = mkdtempSync(path.join(os.tmpdir(), 'luamcp-auth-e2e-'));
const PROTOCOL = '2025-11-25';
const STRAVA = 'mcp.example.com/strava:';

// ------------------------------------------------------------------ processes

process.on('exit', () => {
  rmSync(TMP, { recursive: true, force: true });
});
after(stopAll); // children are tracked (and killed at exit) by the shared harness

// luamcp with `auth` built by authFor(resource) (its port is chosen first, so the resource
// URL is known before it starts). Output is kept in .log; .logSince(mark) reads the rest.
let configSeq = 0;
const started = []; // every luamcp that came up: checked for a clean exit at the end
async function startLuamcp(authFor, { workers = 2 } = {}) {
  let lastLog = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const resource = `http://127.0.0.1:${port}/mcp`;
    const conf = path.join(TMP, `luamcp-${process.pid}-${++configSeq}.conf.lua`);
    writeFileSync(conf, `return ${lua({ workers, log_level: 'info', auth: authFor(resource) })}\n`);
    const proc = track(spawn(BIN, ['serve', '--config', conf, '--listen', `127.0.0.1:${port}`, '--scripts', TOOLS, '--policies', POLICIES], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    const s = {
      proc, port, resource, conf, log: '',
      url: new URL(resource),
      prm: `http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`,
      stop: (sig) => proc.stopProcess(sig),
      logSince(mark) { return this.log.slice(mark); },
      async waitLog(re, ms, mark = 0) {
        const t0 = Date.now();
        for (;;) {
          const m = this.log.slice(mark).match(re);
          if (m) return m;
          if (Date.now() - t0 > ms) assert.fail(`no log line ${re} within ${ms} ms; log:\n${this.log}`);
          if (proc.exited()) assert.fail(`luamcp exited; log:\n${this.log}`);
          await sleep(25);
        }
      },
    };
    proc.stdout.on('data', (d) => { s.log += d; });
    proc.stderr.on('data', (d) => { s.log += d; });
    for (let i = 0; i < 200 && !proc.exited(); i++) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        if (r.status === 200 && !proc.exited()) {
          s.health = await r.json();
          started.push(s);
          return s;
        }
      } catch { /* not listening yet */ }
      await sleep(50);
    }
    lastLog = s.log;
    await s.stop('SIGKILL');
    // only a lost race for the port is worth another try
    if (!/in use|bind/i.test(lastLog)) break;
  }
  throw new Error(`luamcp did not start; last log:\n${lastLog}`);
}

// ------------------------------------------------------------------ tokens and requests

function decodeJwt(token) {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString()),
  };
}

const SECRETS = { 'svc-all': 'svc-all-secret', 'svc-echo': 'svc-echo-secret', 'svc-none': 'svc-none-secret' };
async function cc(idp, clientId, scope, resource) {
  const tok = await clientCredentialsToken({
    issuer: idp.issuer, clientId, clientSecret: SECRETS[clientId], scope, resource,
  });
  return tok.access_token;
}

// A token with the claims a real token of that issuer for that resource would have, signed
// with a key of our own (so its kid is unknown to everyone) unless a key is given.
function forgedToken({
  iss, aud, kid = `forged-${crypto.randomBytes(6).toString('hex')}`, sub = 'svc-all',
  privateKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey,
  header = {}, claims = {},
}) {
  const now = Math.floor(Date.now() / 1000);
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc({ alg: 'RS256', typ: 'at+jwt', kid, ...header })}.${enc({
    iss, aud, sub, client_id: sub, scope: 'mcp:tools echo', iat: now, exp: now + 600, jti: crypto.randomUUID(), ...claims,
  })}`;
  const sig = crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url');
  return `${input}.${sig}`;
}

// One POST initialize with this token: the status, the challenge, the JSON body, the time.
async function probe(server, token) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const t0 = performance.now();
  const res = await fetch(server.url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'auth-e2e', version: '1' } },
    }),
    signal: AbortSignal.timeout(30000),
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return {
    status: res.status,
    challenge: res.headers.get('www-authenticate'),
    session: res.headers.get('mcp-session-id'),
    body,
    ms: performance.now() - t0,
  };
}

// A whole session by hand with a bearer token: initialize, initialized, tools/call whoami.
async function whoami(server, token) {
  const init = await probe(server, token);
  assert.equal(init.status, 200, `initialize: ${JSON.stringify(init)}`);
  assert.ok(init.session, 'initialize gave no Mcp-Session-Id');
  const post = async (msg) => fetch(server.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
      'mcp-session-id': init.session,
      'mcp-protocol-version': PROTOCOL,
    },
    body: JSON.stringify(msg),
  });
  const n = await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  assert.equal(n.status, 202);
  await n.body?.cancel();
  const r = await post({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
  assert.equal(r.status, 200);
  const msg = await r.json();
  assert.equal(msg.result?.isError ?? false, false, JSON.stringify(msg));
  return msg.result.structuredContent;
}

// The parameters of a Bearer challenge: { error, scope, resource_metadata, ... }.
function challengeParams(h) {
  assert.ok(h, 'no WWW-Authenticate header');
  assert.match(h, /^Bearer /);
  const out = {};
  for (const m of h.slice(7).matchAll(/([a-z_]+)="([^"]*)"/g)) out[m[1]] = m[2];
  return out;
}

function assertRefused(r, status, error, what) {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r)}`);
  const c = challengeParams(r.challenge);
  assert.equal(c.error, error, `${what}: ${r.challenge}`);
  assert.equal(typeof r.body, 'object', `${what}: the body is not JSON: ${r.body}`);
  assert.equal(r.body.jsonrpc, '2.0');
  assert.equal(typeof r.body.error?.code, 'number');
  return c;
}

// A fetch that records every exchange (for the SDK): method, URL, status, and the request.
function recordingFetch(log) {
  return async (url, init = {}) => {
    const u = new URL(url instanceof Request ? url.url : String(url));
    const headers = new Headers(init.headers);
    const res = await fetch(url, init);
    log.push({
      method: init.method ?? 'GET',
      origin: u.origin,
      path: u.pathname,
      status: res.status,
      authorization: headers.get('authorization'),
      body: typeof init.body === 'string' ? init.body : init.body instanceof URLSearchParams ? init.body.toString() : undefined,
    });
    return res;
  };
}

// The SDK client with ClientCredentialsProvider, unaided: it starts with no token at all.
async function sdkClientCredentials(server, idp, { clientId = 'svc-all', scope }) {
  const exchanges = [];
  const authProvider = new ClientCredentialsProvider({
    clientId, clientSecret: SECRETS[clientId], scope, expectedIssuer: idp.issuer,
  });
  const transport = new StreamableHTTPClientTransport(server.url, { authProvider, fetch: recordingFetch(exchanges) });
  const client = new Client({ name: 'luamcp-auth-e2e', version: '1.0.0' });
  const errors = [];
  client.onerror = (e) => errors.push(e);
  await client.connect(transport);
  return { client, transport, authProvider, exchanges, errors };
}

// The exchanges of an unaided client-credentials start, in order, exactly.
function assertDiscoveryFlow(exchanges, server, idp, { clientId, scope }) {
  const idpOrigin = new URL(idp.issuer).origin;
  const mcpOrigin = server.url.origin;
  const [first, prm, asm, token, init, ...rest] = exchanges;
  const show = JSON.stringify(exchanges.map(({ method, origin, path: p, status }) => `${method} ${origin}${p} ${status}`), null, 1);

  assert.deepEqual([first.method, first.origin, first.path, first.status, first.authorization],
    ['POST', mcpOrigin, '/mcp', 401, null], `1st: initialize without a token -> 401\n${show}`);
  assert.match(first.body, /"method":"initialize"/);
  assert.deepEqual([prm.method, prm.origin, prm.path, prm.status],
    ['GET', mcpOrigin, '/.well-known/oauth-protected-resource/mcp', 200], `2nd: protected resource metadata\n${show}`);
  assert.deepEqual([asm.method, asm.origin, asm.path, asm.status],
    ['GET', idpOrigin, '/.well-known/oauth-authorization-server', 200], `3rd: authorization server metadata\n${show}`);
  assert.deepEqual([token.method, `${token.origin}${token.path}`, token.status],
    ['POST', idp.token_endpoint, 200], `4th: the token request\n${show}`);
  const form = new URLSearchParams(token.body);
  assert.equal(form.get('grant_type'), 'client_credentials');
  assert.equal(form.get('resource'), server.resource, 'the token request names luamcp as the resource');
  assert.equal(form.get('scope'), scope);
  assert.equal(token.authorization, `Basic ${Buffer.from(`${clientId}:${SECRETS[clientId]}`).toString('base64')}`);
  assert.deepEqual([init.method, init.origin, init.path, init.status],
    ['POST', mcpOrigin, '/mcp', 200], `5th: initialize again, with the token\n${show}`);
  assert.match(init.body, /"method":"initialize"/);
  assert.match(init.authorization, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
  for (const x of rest) {
    assert.equal(x.origin, mcpOrigin, `after the token only luamcp is called\n${show}`);
    assert.ok(x.status >= 200 && x.status < 300, `after the token every answer is 2xx\n${show}`);
    assert.equal(x.authorization, init.authorization, 'the same token throughout');
  }
  return decodeJwt(init.authorization.slice(7));
}

const sorted = (a) => [...a].sort();

// ================================================================== 1, 2: the SDK, unaided

for (const alg of ['RS256', 'ES256']) {
  describe(`SDK client credentials, unaided, ${alg} issuer`, () => {
    let idp;
    let server;
    let sdk;
    after(async () => {
      await sdk?.client.close().catch(() => {});
      await server?.stop();
      await idp?.stop();
    });

    it('401 -> resource metadata -> AS metadata -> token (with resource) -> initialize', async () => {
      idp = await startIdp(['--alg', alg]);
      server = await startLuamcp((resource) => ({
        resource, issuers: [{ issuer: idp.issuer }], jwks: { refetch_s: 1, min_ttl_s: 1 },
      }));
      const meta = await (await fetch(server.prm)).json();
      assert.deepEqual(meta, {
        resource: server.resource, authorization_servers: [idp.issuer], scopes_supported: [], bearer_methods_supported: ['header'],
      });

      sdk = await sdkClientCredentials(server, idp, { scope: 'mcp:tools echo' });
      const jwt = assertDiscoveryFlow(sdk.exchanges, server, idp, { clientId: 'svc-all', scope: 'mcp:tools echo' });
      assert.equal(jwt.header.alg, alg);
      assert.equal(jwt.header.typ, 'at+jwt');
      assert.equal(jwt.header.kid, idp.kid);
      assert.equal(jwt.payload.aud, server.resource);
      assert.equal(jwt.payload.iss, idp.issuer);
      assert.equal(sdk.authProvider.tokens().access_token, sdk.exchanges[4].authorization.slice(7));
    });

    it('tools/list and tools/call whoami (client svc-all, its scopes) and echo', async () => {
      const { tools } = await sdk.client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'whoami']);
      const who = await sdk.client.callTool({ name: 'whoami', arguments: {} });
      const { payload } = decodeJwt(sdk.authProvider.tokens().access_token);
      assert.deepEqual(who.structuredContent, {
        subject: 'svc-all',
        client_id: 'svc-all',
        issuer: idp.issuer,
        expires_at: payload.exp,
        scopes: who.structuredContent.scopes, // order checked below
        has_echo: true,
        token_use: null,
      });
      assert.deepEqual(sorted(who.structuredContent.scopes), ['echo', 'mcp:tools']);
      const echo = await sdk.client.callTool({ name: 'echo', arguments: { text: `hi ${alg}` } });
      assert.deepEqual(echo.content, [{ type: 'text', text: `hi ${alg}` }]);
      // One 401 in all, then only successes; the token endpoint was asked exactly once.
      assert.equal(sdk.exchanges.filter((x) => x.status === 401).length, 1);
      assert.equal(sdk.exchanges.filter((x) => `${x.origin}${x.path}` === idp.token_endpoint).length, 1);
      assert.deepEqual(sdk.errors, []);
    });
  });
}

// ================================================================== 3, 4, 8: token kinds

describe('tokens of different kinds against one default-shape issuer', () => {
  let idp;
  const servers = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await idp?.stop();
  });
  const start = async (extra = {}) => {
    idp ??= await startIdp();
    const s = await startLuamcp((resource) => ({
      resource, issuers: [{ issuer: idp.issuer }], jwks: { refetch_s: 1, min_ttl_s: 1 }, ...extra,
    }));
    servers.push(s);
    return s;
  };

  it('authorization code + PKCE: whoami shows the user alice', async () => {
    const server = await start();
    const tok = await authorizationCodeToken({
      issuer: idp.issuer, resource: server.resource, scope: 'mcp:tools echo', login: 'alice',
    });
    const { header, payload } = decodeJwt(tok.access_token);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(payload.aud, server.resource);
    const who = await whoami(server, tok.access_token);
    assert.equal(who.expires_at, payload.exp);
    assert.equal(who.subject, 'alice');
    assert.equal(who.client_id, 'agent-public');
    assert.equal(who.issuer, idp.issuer);
    assert.deepEqual(sorted(who.scopes), ['echo', 'mcp:tools']);
  });

  it('a token for another resource (same issuer) is 401 invalid_token', async () => {
    const [x, y] = [await start(), await start()];
    const forX = await cc(idp, 'svc-all', 'mcp:tools echo', x.resource);
    assert.equal((await probe(x, forX)).status, 200);
    const r = await probe(y, forX);
    const c = assertRefused(r, 401, 'invalid_token', 'token for X at Y');
    assert.equal(c.error_description, 'The access token is for another resource');
    assert.equal(c.resource_metadata, y.prm);
    // and Y keeps serving its own tokens
    assert.equal((await probe(y, await cc(idp, 'svc-all', 'echo', y.resource))).status, 200);
  });

  it('insufficient scope: auth.scopes = {"echo"}: svc-none 403, svc-echo 200', async () => {
    const server = await start({ scopes: ['echo'] });
    const c0 = assertRefused(await probe(server), 401, undefined, 'no token');
    assert.equal(c0.scope, 'echo');
    assert.equal(c0.resource_metadata, server.prm);

    const noneTok = await cc(idp, 'svc-none', 'mcp:tools echo', server.resource);
    assert.equal(decodeJwt(noneTok).payload.scope, undefined, 'the IdP gives svc-none no scope');
    const r = await probe(server, noneTok);
    const c = assertRefused(r, 403, 'insufficient_scope', 'svc-none');
    assert.equal(c.scope, 'echo');
    assert.match(r.challenge, /error="insufficient_scope", scope="echo"/);

    const echoTok = await cc(idp, 'svc-echo', 'mcp:tools echo', server.resource);
    const who = await whoami(server, echoTok);
    assert.equal(who.client_id, 'svc-echo');
    assert.deepEqual(sorted(who.scopes), ['echo', 'mcp:tools']);
    assert.deepEqual((await (await fetch(server.prm)).json()).scopes_supported, ['echo']);
  });
});

describe('Cognito-shaped issuer (preset = "cognito")', () => {
  let cognito;
  let other;
  let server;
  after(async () => {
    await server?.stop();
    await cognito?.stop();
    await other?.stop();
  });
  const NEED = `${STRAVA}get_activities`;

  it('the SDK, unaided, with client svc-all and prefixed scopes', async () => {
    const stateFile = path.join(TMP, `cognito-${process.pid}.json`);
    [cognito, other] = await Promise.all([startIdp(['--shape', 'cognito', '--state-file', stateFile]), startIdp()]);
    // its signing key, to sign tokens of other shapes in its name (below)
    const { keys } = JSON.parse(readFileSync(stateFile, 'utf8'));
    assert.equal(keys[0].kid, cognito.kid);
    cognito.privateKey = crypto.createPrivateKey({ key: keys[0], format: 'jwk' });
    server = await startLuamcp((resource) => ({
      resource,
      scopes: [NEED],
      issuers: [
        { issuer: cognito.issuer, preset: 'cognito', client_ids: ['svc-all'] },
        { issuer: other.issuer },
      ],
      jwks: { refetch_s: 1, min_ttl_s: 1 },
    }));
    const scope = `${STRAVA}get_activities ${STRAVA}get_athlete`;
    const sdk = await sdkClientCredentials(server, cognito, { scope });
    try {
      // the SDK picks the first authorization server of the metadata: the Cognito one
      const jwt = assertDiscoveryFlow(sdk.exchanges, server, cognito, { clientId: 'svc-all', scope });
      assert.deepEqual(jwt.header, { alg: 'RS256', kid: cognito.kid, typ: 'JWT' });
      assert.equal(jwt.payload.aud, undefined);
      assert.equal(jwt.payload.token_use, 'access');
      const who = (await sdk.client.callTool({ name: 'whoami', arguments: {} })).structuredContent;
      assert.equal(who.client_id, 'svc-all');
      assert.equal(who.token_use, 'access');
      assert.equal(who.issuer, cognito.issuer);
      assert.deepEqual(sorted(who.scopes), [`${STRAVA}get_activities`, `${STRAVA}get_athlete`]);
      assert.deepEqual(sdk.errors, []);
    } finally {
      await sdk.client.close();
    }
  });

  it('svc-echo (not in client_ids) is 401 invalid_token', async () => {
    const tok = await cc(cognito, 'svc-echo', 'mcp:tools echo', undefined);
    assert.equal(decodeJwt(tok).payload.client_id, 'svc-echo');
    const c = assertRefused(await probe(server, tok), 401, 'invalid_token', 'svc-echo');
    assert.equal(c.error_description, 'The client is not allowed here');
  });

  it('svc-all without the required prefixed scope is 403', async () => {
    const tok = await cc(cognito, 'svc-all', `${STRAVA}get_athlete`, undefined);
    const c = assertRefused(await probe(server, tok), 403, 'insufficient_scope', 'svc-all, one scope short');
    assert.equal(c.scope, NEED);
  });

  it('the preset requires token_use "access": a default-shape token in the Cognito issuer\'s name is 401', async () => {
    const base = {
      iss: cognito.issuer, kid: cognito.kid, privateKey: cognito.privateKey, sub: 'svc-all',
      claims: { scope: `${NEED} ${STRAVA}get_athlete` },
    };
    // control: signed by us with the IdP's key in the Cognito shape, accepted
    const control = forgedToken({ ...base, aud: undefined, header: { typ: 'JWT' }, claims: { ...base.claims, token_use: 'access' } });
    assert.equal((await whoami(server, control)).client_id, 'svc-all');
    // the RFC 9068 shape (typ at+jwt, aud = this resource) but no token_use
    const rfc9068 = forgedToken({ ...base, aud: server.resource });
    const c = assertRefused(await probe(server, rfc9068), 401, 'invalid_token', 'at+jwt token from the Cognito issuer');
    assert.equal(c.error_description, 'The token is not an access token');
    // an id token is not an access token either
    const id = forgedToken({ ...base, aud: undefined, header: { typ: 'JWT' }, claims: { ...base.claims, token_use: 'id' } });
    assertRefused(await probe(server, id), 401, 'invalid_token', 'Cognito id token');
  });

  it('a token of an issuer that is not configured is 401', async () => {
    const stranger = await startIdp();
    try {
      const tok = await cc(stranger, 'svc-all', `mcp:tools ${NEED}`, server.resource);
      const c = assertRefused(await probe(server, tok), 401, 'invalid_token', 'unconfigured issuer');
      assert.equal(c.error_description, 'The access token was issued by an untrusted issuer');
    } finally {
      await stranger.stop();
    }
  });

  it('a default-shape token (at+jwt, aud) of the other issuer: checked by that issuer\'s rules', async () => {
    const good = await cc(other, 'svc-all', `mcp:tools ${NEED}`, server.resource);
    assert.equal(decodeJwt(good).header.typ, 'at+jwt');
    assert.equal((await whoami(server, good)).issuer, other.issuer);
    // the same issuer's token for another resource, and one without the required scope
    const elsewhere = await cc(other, 'svc-all', `mcp:tools ${NEED}`, 'http://127.0.0.1:1/mcp');
    assertRefused(await probe(server, elsewhere), 401, 'invalid_token', 'other issuer, other resource');
    const short = await cc(other, 'svc-echo', 'mcp:tools echo', server.resource);
    assertRefused(await probe(server, short), 403, 'insufficient_scope', 'other issuer, no strava scope');
  });
});

// ================================================================== 5: key rotation

describe('key rotation without restart', () => {
  let idp;
  let parking; // jwks.min_ttl_s = 300: no periodic refresh during the test, so only a parked refetch can find a new kid
  let periodic; // jwks.min_ttl_s = 1: refreshed every second
  let defaults; // default jwks settings (refetch_s = 30)
  let oldFresh; // a token of the first key that no server has seen yet
  after(async () => {
    await Promise.all([parking?.stop(), periodic?.stop(), defaults?.stop()]);
    await idp?.stop();
  });

  // The first call with the new kid: parked while the keys are refetched, then answered.
  let first; // its answer
  let b; // the token of the new key
  it('rotation: a new kid makes luamcp refetch the keys at once; the token is accepted', async () => {
    idp = await startIdp();
    parking = await startLuamcp((resource) => ({
      resource, issuers: [{ issuer: idp.issuer }], jwks: { refetch_s: 1, min_ttl_s: 300 },
    }));
    const a = await cc(idp, 'svc-all', 'mcp:tools echo', parking.resource);
    oldFresh = await cc(idp, 'svc-all', 'mcp:tools echo', parking.resource);
    assert.equal(decodeJwt(a).header.kid, idp.kid);
    assert.equal((await probe(parking, a)).status, 200);
    assert.equal(parking.log.match(/auth: \d+ keys of .* loaded/g).length, 1, 'one fetch so far (at start)');

    await sleep(1200); // past refetch_s since that fetch
    const rot = await (await fetch(`${idp.issuer}/test/rotate`, { method: 'POST' })).json();
    assert.deepEqual(rot.previous_kids, [idp.kid]);
    b = await cc(idp, 'svc-all', 'mcp:tools echo', parking.resource);
    assert.equal(decodeJwt(b).header.kid, rot.kid);
    assert.notEqual(rot.kid, idp.kid);

    const mark = parking.log.length;
    first = await probe(parking, b);
    // min_ttl_s = 300: only that request can have caused this refetch
    assert.match(parking.logSince(mark), /auth: 2 keys of \S+ loaded/, 'the keys were refetched for it');
    assert.doesNotMatch(parking.logSince(mark), /refused/, 'the token was not refused');
    assert.notEqual(first.status, 401, JSON.stringify(first));
    // and from then on it works
    assert.equal((await whoami(parking, b)).client_id, 'svc-all');
  });

  it('rotation: the very first call with the new kid succeeds', () => {
    assert.ok(first, 'the previous test made the first call');
    assert.equal(first.status, 200, `the first call with the new kid: ${JSON.stringify(first)}`);
    assert.equal(first.body.result?.serverInfo?.name, 'luamcp');
  });

  it('the old key is kept: a token of it never seen before still verifies', async () => {
    const r = await probe(parking, oldFresh);
    assert.equal(r.status, 200, JSON.stringify(r));
  });

  // The refetch rate limit (jwks.refetch_s) counts only fetches that requests ask for: a
  // rotation right after the startup fetch must not fail the first call with the new kid.
  it('with default jwks settings, a rotation right after start costs no failed request', async () => {
    defaults = await startLuamcp((resource) => ({ resource, issuers: [{ issuer: idp.issuer }] }));
    const rot = await (await fetch(`${idp.issuer}/test/rotate`, { method: 'POST' })).json();
    const c = await cc(idp, 'svc-all', 'mcp:tools echo', defaults.resource);
    assert.equal(decodeJwt(c).header.kid, rot.kid);
    const r = await probe(defaults, c);
    assert.equal(r.status, 200, `${JSON.stringify(r)}\n${defaults.log}`);
  });

  let cached; // verified (so remembered) before its key is dropped
  let unseen; // same key, never presented before the drop
  it('drop_old: within ~5 s the periodic refresh drops the old key and its tokens are refused', async () => {
    periodic = await startLuamcp((resource) => ({
      resource, issuers: [{ issuer: idp.issuer }], jwks: { refetch_s: 1, min_ttl_s: 1 },
    }), { workers: 1 }); // one worker: one verified-token cache, a deterministic outcome below
    cached = await cc(idp, 'svc-all', 'mcp:tools echo', periodic.resource);
    unseen = await cc(idp, 'svc-all', 'mcp:tools echo', periodic.resource);
    const oldKid = decodeJwt(cached).header.kid;
    assert.equal((await probe(periodic, cached)).status, 200);

    const mark = periodic.log.length;
    const t0 = Date.now();
    const rot = await (await fetch(`${idp.issuer}/test/rotate?drop_old=1`, { method: 'POST' })).json();
    assert.equal(rot.dropped, true);
    assert.ok(rot.previous_kids.includes(oldKid));
    // no request in between: the periodic refresh alone must pick up the one-key set
    await periodic.waitLog(/auth: 1 keys of \S+ loaded/, 5000, mark);
    const dt = Date.now() - t0;
    assert.ok(dt < 5000, `refreshed after ${dt} ms`);
    const r = await probe(periodic, unseen);
    const c = assertRefused(r, 401, 'invalid_token', 'token of the dropped key');
    assert.equal(c.error_description, 'The access token is invalid');
    assert.match(periodic.logSince(mark), /refused \(unknown kid/);
    // the new key works
    const fresh = await cc(idp, 'svc-all', 'mcp:tools echo', periodic.resource);
    assert.equal(decodeJwt(fresh).header.kid, rot.kid);
    assert.equal((await probe(periodic, fresh)).status, 200);
  });

  // The per-worker verified-token cache is tied to the key set: a token verified before its
  // key was removed is verified again, and refused.
  it('a token verified before its key was removed is refused as well', async () => {
    const r = await probe(periodic, cached);
    assert.equal(r.status, 401, `cached token of a dropped key: ${JSON.stringify(r)}`);
  });
});

// ================================================================== 6: the IdP dies

describe('IdP stopped mid-test', () => {
  let idp;
  let server;
  let blackhole;
  const TIMEOUT_MS = 1000;
  after(async () => {
    blackhole?.close();
    await server?.stop();
    await idp?.stop();
  });

  it('cached keys keep verifying: a seen token and a new one of the same key', async () => {
    idp = await startIdp();
    server = await startLuamcp((resource) => ({
      resource, issuers: [{ issuer: idp.issuer }], jwks: { refetch_s: 1, min_ttl_s: 1, timeout_ms: TIMEOUT_MS },
    }));
    const seen = await cc(idp, 'svc-all', 'mcp:tools echo', server.resource);
    const unseen = await cc(idp, 'svc-echo', 'mcp:tools echo', server.resource); // minted before the kill
    assert.equal((await probe(server, seen)).status, 200);

    const mark = server.log.length;
    await idp.stop('SIGKILL');
    // a periodic refresh fails (min_ttl_s = 1) and the old keys stay
    await server.waitLog(/still using the keys fetched before/, 5000, mark);

    assert.equal((await whoami(server, seen)).client_id, 'svc-all');
    assert.equal((await whoami(server, unseen)).client_id, 'svc-echo');
    server.seen = seen;
  });

  it('an unknown kid fails cleanly (401, fast) and the server keeps serving', async () => {
    await sleep(1100); // past refetch_s, so this one may trigger a refetch attempt
    const forged = forgedToken({ iss: idp.issuer, aud: server.resource });
    const r = await probe(server, forged);
    const c = assertRefused(r, 401, 'invalid_token', 'unknown kid, IdP down');
    assert.equal(c.error_description, 'The access token is invalid');
    assert.ok(r.ms < TIMEOUT_MS + 2000, `answered in ${r.ms} ms`);
    assert.equal((await probe(server, server.seen)).status, 200);
    const h = await fetch(`http://127.0.0.1:${server.port}/healthz`);
    assert.equal(h.status, 200);
  });

  it('an IdP that accepts and never answers: the parked request ends within timeout_ms + 2 s', async (t) => {
    // the dead IdP's port now holds a listener that reads nothing and answers nothing
    const port = new URL(idp.issuer).port;
    const sockets = new Set();
    blackhole = net.createServer((s) => { sockets.add(s); s.on('error', () => {}); });
    blackhole.on('close', () => sockets.forEach((s) => s.destroy()));
    try {
      await new Promise((resolve, reject) => {
        blackhole.once('error', reject);
        blackhole.listen(Number(port), '127.0.0.1', resolve);
      });
    } catch (e) {
      blackhole = undefined;
      t.skip(`port ${port} taken meanwhile (${e.code})`);
      return;
    }
    await sleep(1100); // past refetch_s
    const forged = forgedToken({ iss: idp.issuer, aud: server.resource });
    const parked = probe(server, forged);
    await sleep(100);
    // meanwhile other requests are served at once
    const other = await probe(server, server.seen);
    assert.equal(other.status, 200);
    assert.ok(other.ms < 1000, `a known token took ${other.ms} ms while another request was parked`);
    const r = await parked;
    assertRefused(r, 401, 'invalid_token', 'unknown kid, IdP hanging');
    assert.ok(r.ms < TIMEOUT_MS + 2000, `answered in ${r.ms} ms`);
    t.diagnostic(`unknown kid with a hanging IdP answered in ${Math.round(r.ms)} ms; a known token meanwhile in ${Math.round(other.ms)} ms`);
    assert.equal((await whoami(server, server.seen)).subject, 'svc-all');
  });
});

// ================================================================== 7: IdP down at start

describe('IdP down when luamcp starts', () => {
  let idp;
  let server;
  after(async () => {
    await server?.stop();
    await idp?.stop();
  });

  it('starts, answers 503 without keys, then picks the keys up by itself', async (t) => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const started = Date.now();
    server = await startLuamcp((resource) => ({
      resource, issuers: [{ issuer }], jwks: { refetch_s: 1, min_ttl_s: 1, timeout_ms: 1000 },
    }));
    await server.waitLog(/no keys yet for http:\/\/127\.0\.0\.1:\d+/, 10000);

    const r = await probe(server, forgedToken({ iss: issuer, aud: server.resource }));
    assert.equal(r.status, 503, JSON.stringify(r));
    assert.equal(r.challenge, null);
    assert.equal(r.body.error.message, 'The authorization server\'s keys are unavailable');
    assert.ok(r.ms < 3000, `503 after ${r.ms} ms`);

    const mark = server.log.length;
    idp = await startIdp([], { port });
    assert.equal(idp.issuer, issuer);
    const t0 = Date.now();
    // no request meanwhile: the refresher's own retry (backoff from 2 s, doubling) must find
    // the keys. Its next try comes at most as long after the IdP's start as the time since the
    // first try (plus 2 s): an IdP slow to start (it is restarted after 30 s) waits longer.
    const bound = Math.max(20000, Date.now() - started + 5000);
    await server.waitLog(new RegExp(`auth: 1 keys of ${issuer.replace(/[.]/g, '\\.')} loaded`), bound, mark);
    t.diagnostic(`keys loaded ${Date.now() - t0} ms after the IdP was ready`);

    const tok = await cc(idp, 'svc-all', 'mcp:tools echo', server.resource);
    const who = await whoami(server, tok);
    assert.equal(who.client_id, 'svc-all');
    assert.equal(who.issuer, issuer);
  });
});

// ================================================================== every server, at the end

describe('every luamcp started above', () => {
  it('stops on SIGTERM with exit status 0 and no sanitizer report', async () => {
    assert.ok(started.length >= 10, `only ${started.length} servers were started`);
    for (const s of started) {
      await s.stop();
      const { code, signal } = await s.proc.exit;
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, `luamcp on port ${s.port}:\n${s.log}`);
      assert.doesNotMatch(s.log, /AddressSanitizer|LeakSanitizer|runtime error:/, `luamcp on port ${s.port}`);
    }
  });
});
