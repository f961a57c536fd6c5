// owners.mjs — who owns a session or a task, against the real binary with verified tokens:
//
//   refused    a token whose sub is present and not a non-empty string (7, 8, an object, true,
//              ""), or whose client id is not one, or that names neither a subject nor a
//              client, is 401 invalid_token with a description that says why; so sub 7 can no
//              longer read sub 8's task (both were one owner, "no subject")
//   no sub     a client-credentials token without sub is owned by its client: two such tokens
//              of different clients share neither tasks nor sessions; the same client's next
//              token finds its own task
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test owners.mjs   (default ../../build/luamcp)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { luamcpBin, modernCall, startLuamcp, startMintingIssuer, stopAll, tmpDir, waitFor } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-owners-');
const RESOURCE = 'http://127.0.0.1/owners/mcp';
const EXT = 'io.modelcontextprotocol/tasks';

const TOOLS = `
mcp.tool { name = "work", description = "works a while", task = "optional",
  inputSchema = { type = "object", properties = { seconds = { type = "number" } }, required = { "seconds" } },
  handler = function(a) mcp.sleep(a.seconds) return "worked" end }
`;

let issuer;
let server;
let nextId = 1;

const tokenWith = (claims) => issuer.mint({ aud: RESOURCE, ...claims });
const call = (method, params, tok) =>
  modernCall(server.url, method, params, { token: tok, caps: { extensions: { [EXT]: {} } }, id: nextId++ });

before(async () => {
  issuer = await startMintingIssuer();
  const dir = path.join(TMP, 'fixture');
  mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'scripts', 'tools.lua'), TOOLS);
  writeFileSync(path.join(dir, 'policies', 'open.lua'), 'mcp.policy { tool = "*", description = "owners tests" }\n');
  server = await startLuamcp(BIN, TMP, 'owners', {
    scripts: path.join(dir, 'scripts'),
    policies: path.join(dir, 'policies'),
    auth: { resource: RESOURCE, issuers: [{ issuer: issuer.issuer, jwks_uri: issuer.jwksUri, algorithms: ['RS256'] }] },
    tasks: { ttl_ms: 8000, timeout_ms: 4000, poll_interval_ms: 250 },
  });
});

after(async () => {
  await server?.stop();
  await issuer?.close();
  await stopAll();
});

async function refused(tok, description) {
  const res = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${tok}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'owners', version: '1' } } }),
  });
  await res.text();
  assert.equal(res.status, 401);
  const challenge = res.headers.get('www-authenticate');
  assert.match(challenge, /error="invalid_token"/);
  assert.ok(challenge.includes(`error_description="${description}"`), challenge);
}

async function start(tok) {
  const r = await call('tools/call', { name: 'work', arguments: { seconds: 0.2 } }, tok);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.result?.resultType, 'task', JSON.stringify(r.body));
  return r.body.result.taskId;
}

describe('refused', () => {
  it('sub 7 and sub 8 (numbers), an object, true and "" are refused with a clear description', async () => {
    for (const sub of [7, 8, { id: 7 }, true, ''])
      await refused(tokenWith({ sub }), "The access token's subject (sub) is not a non-empty string");
  });

  it('a client id that is not a non-empty string is refused', async () => {
    for (const claims of [{ client_id: 5 }, { client_id: undefined, azp: { a: 1 } }, { sub: undefined, client_id: '' }])
      await refused(tokenWith(claims), "The access token's client id (client_id, azp, appid or cid) is not a non-empty string");
  });

  it('a token that names neither a subject nor a client is refused', async () => {
    await refused(tokenWith({ sub: undefined, client_id: undefined }), 'The access token names neither a subject (sub) nor a client (client_id, azp)');
  });
});

describe('no sub', () => {
  it('two client-credentials tokens of different clients share no task and no session', async () => {
    const a = tokenWith({ sub: undefined, client_id: 'robot-a' });
    const b = tokenWith({ sub: undefined, client_id: 'robot-b' });
    const taskId = await start(a);
    const never = await call('tasks/get', { taskId: '0123456789abcdef0123456789abcdef' }, b);
    assert.deepEqual(never.body.error, { code: -32602, message: 'Invalid params: no task with this taskId' });
    assert.deepEqual((await call('tasks/get', { taskId }, b)).body.error, never.body.error, "another client's task is unknown");
    assert.deepEqual((await call('tasks/get', { taskId }, tokenWith({ sub: undefined, client_id: undefined, azp: 'robot-c' }))).body.error, never.body.error);
    // the same client's next token is the same owner
    const again = tokenWith({ sub: undefined, client_id: 'robot-a' });
    const done = await waitFor('the task to complete', async () => {
      const r = (await call('tasks/get', { taskId }, again)).body.result;
      return r?.status === 'completed' && r;
    });
    assert.deepEqual(done.result.content, [{ type: 'text', text: 'worked' }]);

    const init = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${a}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'owners', version: '1' } } }),
    });
    assert.equal(init.status, 200);
    const sid = init.headers.get('mcp-session-id');
    const ping = (tok) => fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${tok}`, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
    assert.equal((await ping(b)).status, 404, "another client's session is not found");
    assert.equal((await ping(again)).status, 200);
  });
});
