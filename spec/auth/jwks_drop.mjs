// jwks_drop.mjs — a key removed from the JWKS is refused within jwks.max_ttl_s, whatever the
// retry back-off an outage of the key server built up (it used to stay valid until the next
// retry: 2 + 4 + 8 + ... s after the outage began, ~31 s with max_ttl_s = 1).
//
// A local key server publishes keys k1 and k2, is down for a while (HTTP 500: the keys fetched
// before stay in use), then comes back with k1 only. A token signed by k2 must be refused
// within max_ttl_s (1) plus the fetch timeout and slack; a k1 token goes on being served.
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test jwks_drop.mjs   (default ../../build/luamcp)

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { luamcpBin, modernCall, startLuamcp, stopAll, tmpDir } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-jwks-drop-');
const RESOURCE = 'http://127.0.0.1/jwks-drop/mcp';

const keys = ['k1', 'k2'].map((kid) => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
});

let phase = 'both'; // 'both' | 'down' | 'one'
let fetches = 0;
let keyServer;
let issuer;
let server;

function mint(key) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg: 'RS256', typ: 'JWT', kid: key.kid })}.${b64({ iss: issuer, aud: RESOURCE, sub: `user-${key.kid}`, client_id: 'tests', iat: now, exp: now + 600 })}`;
  return `${input}.${crypto.createSign('RSA-SHA256').update(input).sign(key.privateKey).toString('base64url')}`;
}

before(async () => {
  keyServer = http.createServer((req, res) => {
    req.resume();
    fetches++;
    if (phase === 'down') {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('down');
      return;
    }
    const published = phase === 'both' ? keys : keys.slice(0, 1);
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=3600' });
    res.end(JSON.stringify({ keys: published.map((k) => k.jwk) }));
  });
  await new Promise((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${keyServer.address().port}`;
  const dir = path.join(TMP, 'fixture');
  mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'scripts', 'tools.lua'), 'mcp.tool { name = "hi", description = "says hi", inputSchema = { type = "object", properties = mcp.object {} }, handler = function() return "hi" end }\n');
  writeFileSync(path.join(dir, 'policies', 'open.lua'), 'mcp.policy { tool = "*", description = "jwks tests" }\n');
  server = await startLuamcp(BIN, TMP, 'jwks-drop', {
    scripts: path.join(dir, 'scripts'),
    policies: path.join(dir, 'policies'),
    auth: {
      resource: RESOURCE,
      jwks: { min_ttl_s: 1, max_ttl_s: 1, refetch_s: 30, timeout_ms: 500 },
      issuers: [{ issuer, jwks_uri: `${issuer}/jwks.json`, algorithms: ['RS256'] }],
    },
  });
});

after(async () => {
  await server?.stop();
  keyServer?.closeAllConnections();
  await new Promise((resolve) => (keyServer ? keyServer.close(resolve) : resolve()));
  await stopAll();
});

// A 2026-07-28 tools/call with this token: its HTTP status.
const statusWith = async (token) => (await modernCall(server.url, 'tools/call', { name: 'hi', arguments: {} }, { token })).status;

it('a key dropped after an outage is refused within max_ttl_s; the kept key is served', async () => {
  const t1 = mint(keys[0]);
  const t2 = mint(keys[1]);
  assert.equal(await statusWith(t1), 200);
  assert.equal(await statusWith(t2), 200);
  await sleep(1200);
  phase = 'down'; // failed fetches: the back-off grows (2, 4, 8 s before the fix)
  const downAt = fetches;
  await sleep(8000);
  assert.ok(fetches > downAt, 'the server tried during the outage');
  assert.equal(await statusWith(t2), 200, 'through the outage the keys fetched before are used');
  phase = 'one';
  const back = Date.now();
  let refusedAfter = null;
  while (Date.now() - back < 12000) {
    if ((await statusWith(t2)) === 401) {
      refusedAfter = Date.now() - back;
      break;
    }
    await sleep(100);
  }
  assert.ok(refusedAfter !== null, 'the dropped key was never refused');
  // max_ttl_s (1 s) + the fetch timeout (0.5 s) + slack for a loaded machine
  assert.ok(refusedAfter <= 3500, `the dropped key was refused only after ${refusedAfter} ms`);
  assert.equal(await statusWith(t1), 200, 'the key still published is served');
});
