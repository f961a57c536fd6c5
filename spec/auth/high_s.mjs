// high_s.mjs — ECDSA signature malleability, decided: a JWS ES256 signature (r, s) and its twin
// (r, n - s) verify alike, and luamcp accepts both (RFC 7518 section 3.4 asks for no low-s rule,
// and signers emit a "high" s half of the time, so refusing would refuse valid tokens). It is
// harmless here because nothing keys on the signature bytes: the twin names the same caller
// (issuer, subject, client), so it reaches the same sessions, tasks and streams, and the
// verified-token cache only gains an entry. What is not an ECDSA signature is still refused:
// s = 0, s = n, s = n + 1 (all fit the 32 bytes of s).
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test high_s.mjs   (default ../../build/luamcp)

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { luamcpBin, modernCall, startLuamcp, stopAll, tmpDir } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-high-s-');
const RESOURCE = 'http://127.0.0.1/high-s/mcp';
const N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551'); // P-256 order

const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'e1', alg: 'ES256', use: 'sig' };
let keyServer;
let issuer;
let server;

const hex32 = (v) => Buffer.from(v.toString(16).padStart(64, '0'), 'hex');

// A token whose signature's s is changed by f (BigInt -> BigInt).
function mint(f = (s) => s, sub = 'ecdsa-user') {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'ES256', typ: 'JWT', kid: 'e1' })}.${b64({ iss: issuer, aud: RESOURCE, sub, client_id: 'tests', iat: now, exp: now + 600 })}`;
  const sig = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const r = sig.subarray(0, 32);
  const s = BigInt(`0x${sig.subarray(32).toString('hex')}`);
  return `${input}.${Buffer.concat([r, hex32(f(s))]).toString('base64url')}`;
}

before(async () => {
  keyServer = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${keyServer.address().port}`;
  const dir = path.join(TMP, 'fixture');
  mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'scripts', 'tools.lua'), 'mcp.tool { name = "who", description = "the caller", inputSchema = { type = "object", properties = mcp.object {} }, handler = function(_, ctx) return ctx.auth.subject .. "/" .. ctx.auth.client_id end }\n');
  writeFileSync(path.join(dir, 'policies', 'open.lua'), 'mcp.policy { tool = "*", description = "high-s tests" }\n');
  server = await startLuamcp(BIN, TMP, 'high-s', {
    scripts: path.join(dir, 'scripts'),
    policies: path.join(dir, 'policies'),
    auth: { resource: RESOURCE, issuers: [{ issuer, jwks_uri: `${issuer}/jwks.json`, algorithms: ['ES256'] }] },
  });
});

after(async () => {
  await server?.stop();
  keyServer?.closeAllConnections();
  await new Promise((resolve) => (keyServer ? keyServer.close(resolve) : resolve()));
  await stopAll();
});

const who = (token) => modernCall(server.url, 'tools/call', { name: 'who', arguments: {} }, { token });

it('the twin (r, n - s) of a signature is accepted as the same caller; s = 0, n or n + 1 is refused', async () => {
  for (let i = 0; i < 4; i++) { // both a low and a high s among a few signatures
    const plain = await who(mint());
    const twin = await who(mint((s) => N - s));
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.equal(twin.status, 200, JSON.stringify(twin.body));
    assert.deepEqual(twin.body.result.content, plain.body.result.content);
    assert.deepEqual(plain.body.result.content, [{ type: 'text', text: 'ecdsa-user/tests' }]);
  }
  for (const f of [() => 0n, () => N, () => N + 1n]) assert.equal((await who(mint(f))).status, 401);
});
