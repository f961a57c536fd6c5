// Self-test of the test IdP (idp.mjs + authcode.mjs): node --test selftest.mjs
// Starts several IdPs on free loopback ports (--port 0) and checks what the luamcp tests rely on.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

import {
  createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify,
} from 'jose';

import { authorizationCodeToken, clientCredentialsToken } from './authcode.mjs';
import { startReady } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RESOURCE = 'http://127.0.0.1:8931/mcp';
const S = 'mcp.example.com/';
const TOOL_SCOPES = [
  'mcp:tools', 'echo',
  `${S}strava:get_athlete`, `${S}strava:get_athlete_stats`, `${S}strava:get_activities`,
  `${S}strava:get_activity`, `${S}strava:get_activity_streams`, `${S}strava:get_segment`,
];

// Starts idp.mjs through the shared harness (a start that stalls 30 s is killed and tried once
// more), with its ready line, .child, and stop() resolving to the exit code.
async function startIdp(args = []) {
  const ready = await startReady('the IdP', [path.join(HERE, 'idp.mjs'), '--port', '0', ...args]);
  const child = ready.proc;
  return {
    ...ready,
    child,
    stop: async () => (await child.stopProcess()).code,
  };
}

async function cc(idp, clientId, clientSecret, body = {}, { post = false } = {}) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  const form = new URLSearchParams({ grant_type: 'client_credentials', ...body });
  if (post) {
    form.set('client_id', clientId);
    form.set('client_secret', clientSecret);
  } else {
    headers.authorization = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
  }
  const res = await fetch(idp.token_endpoint, { method: 'POST', headers, body: form });
  return { status: res.status, json: await res.json() };
}

const scopesOf = (token) => new Set((decodeJwt(token).scope ?? '').split(' ').filter(Boolean));

describe('default IdP (RS256, RFC 9068 tokens)', () => {
  let idp;
  let jwks;
  before(async () => {
    idp = await startIdp();
    jwks = createRemoteJWKSet(new URL(idp.jwks_uri));
  });
  after(async () => { await idp?.stop(); });

  test('ready line', () => {
    assert.match(idp.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(idp.jwks_uri, `${idp.issuer}/jwks`);
    assert.equal(idp.token_endpoint, `${idp.issuer}/token`);
    assert.equal(idp.pid, idp.child.pid);
  });

  test('discovery: openid-configuration and RFC 8414 oauth-authorization-server', async () => {
    for (const name of ['openid-configuration', 'oauth-authorization-server']) {
      const res = await fetch(`${idp.issuer}/.well-known/${name}`);
      assert.equal(res.status, 200, name);
      const meta = await res.json();
      assert.equal(meta.issuer, idp.issuer);
      assert.equal(meta.jwks_uri, idp.jwks_uri);
      assert.equal(meta.token_endpoint, idp.token_endpoint);
      assert.equal(meta.registration_endpoint, `${idp.issuer}/reg`);
      assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
      for (const g of ['authorization_code', 'client_credentials', 'refresh_token']) {
        assert.ok(meta.grant_types_supported.includes(g), g);
      }
      for (const s of [...TOOL_SCOPES, 'openid', 'offline_access']) assert.ok(meta.scopes_supported.includes(s), s);
    }
    const keys = await (await fetch(idp.jwks_uri)).json();
    assert.equal(keys.keys.length, 1);
    assert.equal(keys.keys[0].kty, 'RSA');
    assert.equal(keys.keys[0].alg, 'RS256');
    assert.equal(keys.keys[0].d, undefined, 'no private parts published');
    assert.equal(Buffer.from(keys.keys[0].n, 'base64url').length * 8, 2048);
    assert.deepEqual(await (await fetch(`${idp.issuer}/test/jwks`)).json(), keys);
  });

  test('client_credentials, svc-all: every scope, at+jwt, aud = resource, verifies', async () => {
    const { status, json } = await cc(idp, 'svc-all', 'svc-all-secret', { scope: TOOL_SCOPES.join(' '), resource: RESOURCE });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.token_type, 'Bearer');
    assert.deepEqual(new Set(json.scope.split(' ')), new Set(TOOL_SCOPES));
    const { payload, protectedHeader } = await jwtVerify(json.access_token, jwks, {
      issuer: idp.issuer, audience: RESOURCE, typ: 'at+jwt', algorithms: ['RS256'],
    });
    assert.equal(protectedHeader.typ, 'at+jwt');
    assert.equal(protectedHeader.kid, idp.kid);
    assert.equal(payload.aud, RESOURCE);
    assert.equal(payload.client_id, 'svc-all');
    assert.equal(payload.sub, 'svc-all');
    assert.deepEqual(scopesOf(json.access_token), new Set(TOOL_SCOPES));
    for (const c of ['exp', 'iat', 'jti']) assert.ok(payload[c], c);
    assert.equal(payload.exp - payload.iat, 600);
  });

  test('client_credentials with client_secret_post, and the clientCredentialsToken helper', async () => {
    const { status, json } = await cc(idp, 'svc-all', 'svc-all-secret', { scope: 'echo', resource: RESOURCE }, { post: true });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.scope, 'echo');
    const tok = await clientCredentialsToken({
      issuer: idp.issuer, clientId: 'svc-all', clientSecret: 'svc-all-secret', scope: 'mcp:tools', resource: RESOURCE,
    });
    assert.equal(decodeJwt(tok.access_token).scope, 'mcp:tools');
  });

  test('svc-echo gets only "mcp:tools echo", whatever it asks', async () => {
    const { status, json } = await cc(idp, 'svc-echo', 'svc-echo-secret', { scope: TOOL_SCOPES.join(' '), resource: RESOURCE });
    assert.equal(status, 200, JSON.stringify(json));
    assert.deepEqual(scopesOf(json.access_token), new Set(['mcp:tools', 'echo']));
    await jwtVerify(json.access_token, jwks, { issuer: idp.issuer, audience: RESOURCE });
  });

  test('svc-none gets a valid token without any scope (no "scope" claim)', async () => {
    const { status, json } = await cc(idp, 'svc-none', 'svc-none-secret', { scope: 'mcp:tools echo', resource: RESOURCE });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.scope, undefined);
    const { payload } = await jwtVerify(json.access_token, jwks, { issuer: idp.issuer, audience: RESOURCE });
    assert.equal(payload.scope, undefined);
    assert.equal(payload.client_id, 'svc-none');
  });

  test('wrong secret and unknown client are rejected (401 invalid_client)', async () => {
    for (const [id, secret] of [['svc-all', 'nope'], ['svc-echo', 'svc-all-secret'], ['nobody', 'x']]) {
      const { status, json } = await cc(idp, id, secret, { scope: 'echo', resource: RESOURCE });
      assert.equal(status, 401, `${id}: ${JSON.stringify(json)}`);
      assert.equal(json.error, 'invalid_client');
    }
  });

  test('resources outside the allowed list are rejected (invalid_target)', async () => {
    for (const r of ['http://example.com/mcp', 'http://127.0.0.1:8931/other']) {
      const { status, json } = await cc(idp, 'svc-all', 'svc-all-secret', { scope: 'echo', resource: r });
      assert.equal(status, 400, r);
      assert.equal(json.error, 'invalid_target');
    }
    const { status } = await cc(idp, 'svc-all', 'svc-all-secret', { scope: 'echo', resource: 'http://localhost:1234/mcp' });
    assert.equal(status, 200);
  });

  test('authorization_code + PKCE via authcode.mjs', async () => {
    const tok = await authorizationCodeToken({
      issuer: idp.issuer, resource: RESOURCE, scope: `openid mcp:tools ${S}strava:get_activity`, login: 'alice',
    });
    assert.equal(tok.token_type, 'Bearer');
    assert.ok(tok.id_token, 'openid gives an id_token');
    const { payload, protectedHeader } = await jwtVerify(tok.access_token, jwks, {
      issuer: idp.issuer, audience: RESOURCE, typ: 'at+jwt',
    });
    assert.equal(protectedHeader.typ, 'at+jwt');
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.client_id, 'agent-public');
    assert.deepEqual(scopesOf(tok.access_token), new Set(['mcp:tools', `${S}strava:get_activity`]));
  });

  test('authorization_code: refresh token with openid offline_access + prompt=consent', async () => {
    const tok = await authorizationCodeToken({
      issuer: idp.issuer, resource: RESOURCE, scope: 'openid offline_access echo', login: 'bob', extraParams: { prompt: 'consent' },
    });
    assert.ok(tok.refresh_token);
    const res = await fetch(idp.token_endpoint, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: 'agent-public', resource: RESOURCE,
      }),
    });
    const json = await res.json();
    assert.equal(res.status, 200, JSON.stringify(json));
    const { payload } = await jwtVerify(json.access_token, jwks, { issuer: idp.issuer, audience: RESOURCE });
    assert.equal(payload.sub, 'bob');
    assert.equal(payload.scope, 'echo');
  });

  test('PKCE is required', async () => {
    const auth = new URL(`${idp.issuer}/auth`);
    for (const [k, v] of Object.entries({
      client_id: 'agent-public', response_type: 'code', redirect_uri: 'http://127.0.0.1/callback', scope: 'mcp:tools', resource: RESOURCE,
    })) auth.searchParams.set(k, v);
    const res = await fetch(auth, { redirect: 'manual' });
    assert.equal(res.status, 303);
    const back = new URL(res.headers.get('location'));
    assert.equal(back.origin + back.pathname, 'http://127.0.0.1/callback');
    assert.equal(back.searchParams.get('error'), 'invalid_request');
    assert.match(back.searchParams.get('error_description'), /PKCE/);
  });

  test('dynamic client registration (open), then authorization_code with the new client', async () => {
    const res = await fetch(`${idp.issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_name: 'selftest agent',
        redirect_uris: ['http://localhost:33333/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    });
    const reg = await res.json();
    assert.equal(res.status, 201, JSON.stringify(reg));
    assert.ok(reg.client_id);
    const tok = await authorizationCodeToken({
      issuer: idp.issuer, clientId: reg.client_id, redirectUri: 'http://localhost:33333/callback',
      resource: 'http://localhost:33334/mcp', scope: 'mcp:tools echo', login: 'carol',
    });
    const { payload } = await jwtVerify(tok.access_token, jwks, { issuer: idp.issuer, audience: 'http://localhost:33334/mcp' });
    assert.equal(payload.client_id, reg.client_id);
    assert.equal(payload.sub, 'carol');
    assert.deepEqual(scopesOf(tok.access_token), new Set(['mcp:tools', 'echo']));
  });
});

describe('key rotation', () => {
  let idp;
  before(async () => { idp = await startIdp(); });
  after(async () => { await idp?.stop(); });

  const token = async () => (await cc(idp, 'svc-all', 'svc-all-secret', { scope: 'echo', resource: RESOURCE })).json.access_token;
  const currentJwks = async () => (await fetch(idp.jwks_uri)).json();

  test('POST /test/rotate: new kid signs, old key stays published; drop_old=1 removes it', async () => {
    const oldToken = await token();
    const oldKid = decodeProtectedHeader(oldToken).kid;
    assert.equal(oldKid, idp.kid);

    let res = await fetch(`${idp.issuer}/test/rotate`, { method: 'POST' });
    let body = await res.json();
    assert.equal(res.status, 200);
    assert.notEqual(body.kid, oldKid);
    assert.deepEqual(body.previous_kids, [oldKid]);
    const newKid = body.kid;

    let set = await currentJwks();
    assert.deepEqual(set.keys.map((k) => k.kid), [newKid, oldKid]);
    assert.deepEqual(await (await fetch(`${idp.issuer}/test/jwks`)).json(), set);

    const newToken = await token();
    assert.equal(decodeProtectedHeader(newToken).kid, newKid);
    await jwtVerify(newToken, createLocalJWKSet(set), { issuer: idp.issuer, audience: RESOURCE });
    await jwtVerify(oldToken, createLocalJWKSet(set), { issuer: idp.issuer, audience: RESOURCE });

    res = await fetch(`${idp.issuer}/test/rotate?drop_old=1`, { method: 'POST' });
    body = await res.json();
    assert.equal(res.status, 200);
    set = await currentJwks();
    assert.deepEqual(set.keys.map((k) => k.kid), [body.kid]);
    const newest = await token();
    assert.equal(decodeProtectedHeader(newest).kid, body.kid);
    await jwtVerify(newest, createLocalJWKSet(set), { issuer: idp.issuer, audience: RESOURCE });
    await assert.rejects(jwtVerify(oldToken, createLocalJWKSet(set)), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
    await assert.rejects(jwtVerify(newToken, createLocalJWKSet(set)), { code: 'ERR_JWKS_NO_MATCHING_KEY' });

    // The interactive flow still works on the rebuilt provider.
    const tok = await authorizationCodeToken({ issuer: idp.issuer, resource: RESOURCE, scope: 'echo' });
    assert.equal(decodeProtectedHeader(tok.access_token).kid, body.kid);
  });
});

describe('--alg ES256', () => {
  let idp;
  before(async () => { idp = await startIdp(['--alg', 'ES256']); });
  after(async () => { await idp?.stop(); });

  test('P-256 key published, tokens signed ES256 and verify', async () => {
    const set = await (await fetch(idp.jwks_uri)).json();
    assert.equal(set.keys[0].kty, 'EC');
    assert.equal(set.keys[0].crv, 'P-256');
    assert.equal(set.keys[0].alg, 'ES256');
    const { json } = await cc(idp, 'svc-echo', 'svc-echo-secret', { scope: 'echo', resource: RESOURCE });
    const { protectedHeader } = await jwtVerify(json.access_token, createLocalJWKSet(set), {
      issuer: idp.issuer, audience: RESOURCE, typ: 'at+jwt', algorithms: ['ES256'],
    });
    assert.equal(protectedHeader.alg, 'ES256');
    const tok = await authorizationCodeToken({ issuer: idp.issuer, resource: RESOURCE, scope: 'openid echo' });
    await jwtVerify(tok.access_token, createLocalJWKSet(set), { issuer: idp.issuer, audience: RESOURCE, algorithms: ['ES256'] });
    assert.equal(decodeProtectedHeader(tok.id_token).alg, 'ES256');
  });
});

describe('--shape cognito', () => {
  let idp;
  before(async () => { idp = await startIdp(['--shape', 'cognito']); });
  after(async () => { await idp?.stop(); });

  test('client_credentials: no aud, token_use access, client_id, typ JWT, prefixed scopes only', async () => {
    const { status, json } = await cc(idp, 'svc-all', 'svc-all-secret', {
      scope: `mcp:tools echo ${S}strava:get_athlete ${S}strava:get_segment`,
    });
    assert.equal(status, 200, JSON.stringify(json));
    const set = createRemoteJWKSet(new URL(idp.jwks_uri));
    const { payload, protectedHeader } = await jwtVerify(json.access_token, set, { issuer: idp.issuer, typ: 'JWT' });
    assert.equal(protectedHeader.typ, 'JWT');
    assert.equal('aud' in payload, false);
    assert.equal(payload.token_use, 'access');
    assert.equal(payload.client_id, 'svc-all');
    assert.equal(payload.sub, 'svc-all');
    assert.deepEqual(scopesOf(json.access_token), new Set([`${S}strava:get_athlete`, `${S}strava:get_segment`]));
    for (const c of ['exp', 'iat', 'jti', 'iss']) assert.ok(payload[c], c);
  });

  test('a resource parameter changes nothing (still no aud); authorization_code too', async () => {
    const { json } = await cc(idp, 'svc-all', 'svc-all-secret', { scope: `${S}strava:get_activity`, resource: RESOURCE });
    assert.equal('aud' in decodeJwt(json.access_token), false);
    const tok = await authorizationCodeToken({ issuer: idp.issuer, resource: RESOURCE, scope: `${S}strava:get_activity`, login: 'dave' });
    const p = decodeJwt(tok.access_token);
    assert.equal('aud' in p, false);
    assert.equal(p.token_use, 'access');
    assert.equal(p.username, 'dave');
    assert.equal(p.client_id, 'agent-public');
    assert.equal(decodeProtectedHeader(tok.access_token).typ, 'JWT');
  });
});

describe('options', () => {
  test('--resources restricts the audience; --default-resource fills a missing one', async () => {
    const idp = await startIdp(['--resources', 'http://127.0.0.1:5001/mcp,https://mcp.test/*/mcp', '--default-resource', 'http://127.0.0.1:5001/mcp']);
    try {
      let r = await cc(idp, 'svc-all', 'svc-all-secret', { scope: 'echo', resource: RESOURCE });
      assert.equal(r.json.error, 'invalid_target');
      r = await cc(idp, 'svc-all', 'svc-all-secret', { scope: 'echo', resource: 'https://mcp.test/tenant1/mcp' });
      assert.equal(decodeJwt(r.json.access_token).aud, 'https://mcp.test/tenant1/mcp');
      r = await cc(idp, 'svc-all', 'svc-all-secret', { scope: 'echo' });
      assert.equal(decodeJwt(r.json.access_token).aud, 'http://127.0.0.1:5001/mcp');
    } finally {
      await idp.stop();
    }
  });

  test('--issuer-path: issuer with a path, RFC 8414 path-inserted metadata', async () => {
    const idp = await startIdp(['--issuer-path', '/tenant', '--ttl', '60']);
    try {
      assert.match(idp.issuer, /^http:\/\/127\.0\.0\.1:\d+\/tenant$/);
      const origin = new URL(idp.issuer).origin;
      for (const u of [
        `${origin}/.well-known/oauth-authorization-server/tenant`,
        `${origin}/.well-known/openid-configuration/tenant`,
        `${idp.issuer}/.well-known/oauth-authorization-server`,
        `${idp.issuer}/.well-known/openid-configuration`,
      ]) {
        const res = await fetch(u);
        assert.equal(res.status, 200, u);
        const meta = await res.json();
        assert.equal(meta.issuer, idp.issuer, u);
        assert.equal(meta.token_endpoint, `${idp.issuer}/token`, u);
      }
      const { json } = await cc(idp, 'svc-all', 'svc-all-secret', { scope: 'echo', resource: RESOURCE });
      const { payload } = await jwtVerify(json.access_token, createRemoteJWKSet(new URL(idp.jwks_uri)), { issuer: idp.issuer, audience: RESOURCE });
      assert.equal(payload.exp - payload.iat, 60);
      const tok = await authorizationCodeToken({ issuer: idp.issuer, resource: RESOURCE, scope: 'echo' });
      assert.equal(decodeJwt(tok.access_token).iss, idp.issuer);
    } finally {
      await idp.stop();
    }
  });

  test('--state-file keeps the keys across a restart; SIGTERM exits 0', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-selftest-'));
    const file = path.join(dir, 'state.json');
    try {
      const first = await startIdp(['--alg', 'ES256', '--state-file', file]);
      const state = JSON.parse(fs.readFileSync(file, 'utf8'));
      assert.equal(state.signing_kid, first.kid);
      assert.equal(state.issuer, first.issuer);
      assert.equal(await first.stop(), 0);
      const second = await startIdp(['--state-file', file]);
      assert.equal(second.kid, first.kid);
      assert.equal(second.alg, 'ES256');
      assert.equal(await second.stop(), 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
