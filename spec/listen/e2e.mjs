// e2e.mjs — subscriptions/listen (the 2026-07-28 era) and run-time switches (mcp.disable,
// mcp.enable), against the real binary with verified tokens, over raw HTTP:
//
//   ack        the acknowledgment comes first, tagged with the request's id, and names only
//              what is honored: the list kinds asked for, the resources the caller may read
//   bad        every malformed listen request gets its own clear error; the next is served
//   switch     a handler switches a tool off: it leaves tools/list, a call is answered as for
//              a tool that never existed, tools listeners (and 2025-era GET streams) are told,
//              prompts-only listeners are not; switched on again, it is back
//   reload     a reload that changes the tool list tells the tools listeners
//   updates    mcp.resource_updated reaches the listeners of that URI only
//   end        the caller's token expiring ends the stream with the subscription's result;
//              so does the server stopping
//   params     Mcp-Param-* headers (x-mcp-header) held against the arguments: each mismatch
//              is 400 -32020 with its reason, and the next request is served
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test e2e.mjs   (default ../../build/luamcp)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { luamcpBin, modernCall, readSse, startLuamcp, startMintingIssuer, stopAll, tmpDir, waitFor } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-listen-');
const MODERN = '2026-07-28';
const RESOURCE = 'http://127.0.0.1/listen/mcp';
const SUB = 'io.modelcontextprotocol/subscriptionId';

const TOOLS = `
local NONE = { type = "object", properties = mcp.object {} }
mcp.tool { name = "flagged", description = "behind a switch", inputSchema = NONE,
  handler = function() return "flagged ran" end }
mcp.tool { name = "switch", description = "flips a switch",
  inputSchema = { type = "object", properties = { kind = { type = "string" }, name = { type = "string" },
                  on = { type = "boolean" } }, required = { "kind", "name", "on" } },
  handler = function(a)
    local moved = (a.on and mcp.enable or mcp.disable)(a.kind, a.name)
    return { moved = moved, enabled = mcp.enabled(a.kind, a.name) }
  end }
mcp.tool { name = "touch", description = "says a resource changed",
  inputSchema = { type = "object", properties = { uri = { type = "string" } }, required = { "uri" } },
  handler = function(a) mcp.resource_updated(a.uri) return "touched" end }
mcp.tool { name = "bad_switch", description = "switches with bad arguments",
  inputSchema = { type = "object", properties = { which = { type = "integer" } }, required = { "which" } },
  handler = function(a)
    if a.which == 1 then mcp.disable("tools", "flagged") end
    if a.which == 2 then mcp.disable("tool", "") end
    return "not reached"
  end }
mcp.tool { name = "regional", description = "an argument mirrored in Mcp-Param-Region",
  inputSchema = { type = "object", properties = {
    region = { type = "string", ["x-mcp-header"] = "Region" },
    shard = { type = "integer", ["x-mcp-header"] = "Shard" } }, required = { "region" } },
  handler = function(a) return "ran in " .. a.region end }
mcp.prompt { name = "hello", description = "a prompt", handler = function() return "hi" end }
mcp.static_resource { uri = "test://open", name = "open", description = "readable by all",
  handler = function() return "open" end }
mcp.static_resource { uri = "test://other", name = "other", description = "readable by all",
  handler = function() return "other" end }
mcp.resource_template { uriTemplate = "test://t/{+path}", name = "any", description = "any path",
  handler = function(a) return "path of " .. #a.path .. " bytes" end }
mcp.static_resource { uri = "test://secret", name = "secret", description = "needs listen:admin",
  handler = function() return "secret" end }
`;

const POLICIES = `
mcp.policy { tool = "*", scopes = "listen:use", description = "listen tests" }
mcp.policy { prompt = "*", scopes = "listen:use", description = "listen tests" }
mcp.policy { resource = "test://secret", scopes = "listen:admin", description = "admins only" }
mcp.policy { resource = "test://*", scopes = "listen:use", description = "listen tests" }
`;

let issuer;
let server;
let token;
let dir;
let nextId = 1000;

before(async () => {
  issuer = await startMintingIssuer();
  token = issuer.mint({ aud: RESOURCE, scope: 'listen:use' });
  dir = path.join(TMP, 'fixture');
  mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'scripts', 'tools.lua'), TOOLS);
  writeFileSync(path.join(dir, 'policies', 'policies.lua'), POLICIES);
  server = await startLuamcp(BIN, TMP, 'listen', {
    scripts: path.join(dir, 'scripts'),
    policies: path.join(dir, 'policies'),
    max_connections_per_address: 0, // 500 listeners at once, all from 127.0.0.1
    auth: { resource: RESOURCE, leeway_s: 1, issuers: [{ issuer: issuer.issuer, jwks_uri: issuer.jwksUri, algorithms: ['RS256'] }] },
  }, { args: ['--admin-socket', path.join(TMP, 'admin.sock')] });
});

after(async () => {
  await server?.stop();
  await issuer?.close();
  await stopAll();
});

const meta = () => ({ 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': {} });

// A 2026-07-28 request: {status, body}, the headers the era asks for.
const modern = (method, params = {}, { tok = token, accept, id = nextId++, extra = {} } = {}) =>
  modernCall(server.url, method, params, { token: tok, accept, id, headers: extra });

// Opens a listen stream: {status, ack, next(pred, ms), none(pred, ms), ended, close()}; every
// message that arrives is kept in .messages.
async function listen(notifications, { id = nextId++, tok = token } = {}) {
  const ctl = new AbortController();
  const res = await fetch(server.url, {
    method: 'POST', signal: ctl.signal,
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'subscriptions/listen', authorization: `Bearer ${tok}` },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'subscriptions/listen', params: { _meta: meta(), notifications } }),
  });
  const l = { status: res.status, type: res.headers.get('content-type'), id };
  if (!l.type?.startsWith('text/event-stream')) {
    l.body = await res.json();
    return l;
  }
  readSse(res, ctl, l);
  l.ack = await l.next(() => true);
  return l;
}

const method = (name) => (m) => m.method === name;

describe('subscriptions/listen', () => {
  it('acknowledges first, tagged with the request id, with only what it honors', async () => {
    const l = await listen({
      toolsListChanged: true, promptsListChanged: false, somethingElse: true,
      resourceSubscriptions: ['test://open', 'test://secret', 'test://nowhere', 'test://open'],
    }, { id: 'sub-A' });
    assert.equal(l.status, 200);
    assert.equal(l.messages[0], l.ack, 'the acknowledgment is the first message');
    assert.equal(l.ack.method, 'notifications/subscriptions/acknowledged');
    assert.equal(l.ack.params._meta[SUB], 'sub-A');
    // promptsListChanged false and unknown fields are not honored; the secret resource needs
    // a scope this caller lacks, test://nowhere does not exist, the duplicate counts once
    assert.deepEqual(l.ack.params.notifications, { toolsListChanged: true, resourceSubscriptions: ['test://open'] });
    l.close();

    const n = await listen({ promptsListChanged: true }, { id: 7 });
    assert.equal(n.ack.params._meta[SUB], 7, 'an integer id stays an integer');
    assert.deepEqual(n.ack.params.notifications, { promptsListChanged: true });
    n.close();

    const admin = await listen({ resourceSubscriptions: ['test://secret'] }, { tok: issuer.mint({ aud: RESOURCE, scope: 'listen:use listen:admin' }) });
    assert.deepEqual(admin.ack.params.notifications, { resourceSubscriptions: ['test://secret'] }, 'a caller with the scope gets it');
    admin.close();
  });

  it('answers each malformed request with its own error, and serves the next one', async () => {
    const cases = [
      ['no filter', undefined, -32602, /notifications must be an object/],
      ['a filter that is a list', [], -32602, /notifications must be an object/],
      ['a flag that is a string', { toolsListChanged: 'yes' }, -32602, /toolsListChanged must be a boolean/],
      ['resources that are a string', { resourceSubscriptions: 'test://open' }, -32602, /resourceSubscriptions must be an array/],
      ['a resource that is a number', { resourceSubscriptions: [1] }, -32602, /array of at most 256 URIs/],
      ['an empty URI', { resourceSubscriptions: [''] }, -32602, /1 to 2048 bytes/],
      ['257 resources', { resourceSubscriptions: Array.from({ length: 257 }, (_, i) => `test://r${i}`) }, -32602, /at most 256/],
    ];
    for (const [what, notifications, code, message] of cases) {
      const r = await modern('subscriptions/listen', notifications === undefined ? {} : { notifications });
      assert.equal(r.body?.error?.code, code, `${what}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error.message, message, what);
      const ok = await listen({ toolsListChanged: true });
      assert.deepEqual(ok.ack.params.notifications, { toolsListChanged: true }, `after ${what}`);
      ok.close();
    }
    // a client that cannot read an event stream is told so
    const json = await modern('subscriptions/listen', { notifications: { toolsListChanged: true } }, { accept: 'application/json' });
    assert.equal(json.status, 406);
    assert.match(json.body.error.message, /Accept must allow text\/event-stream/);
    // no token: the usual 401, nothing opened
    const res = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'subscriptions/listen' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'subscriptions/listen', params: { _meta: meta(), notifications: { toolsListChanged: true } } }) });
    assert.equal(res.status, 401);
    await res.text();
    // the 2025 eras have no such method (their GET stream does this job)
    const legacy = await legacySession();
    const r = await legacy.post({ jsonrpc: '2.0', id: 5, method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true } } });
    assert.equal(r.error.code, -32601, JSON.stringify(r));
    legacy.close();
  });

  it('a switched-off tool leaves the list, is unknown to calls, and listeners are told', async () => {
    const tools = await listen({ toolsListChanged: true }, { id: 'tools' });
    const prompts = await listen({ promptsListChanged: true }, { id: 'prompts' });
    const legacy = await legacySession();
    const listed = async () => (await modern('tools/list')).body.result.tools.map((t) => t.name);
    assert.ok((await listed()).includes('flagged'));

    const off = await modern('tools/call', { name: 'switch', arguments: { kind: 'tool', name: 'flagged', on: false } });
    assert.deepEqual(off.body.result.structuredContent, { moved: true, enabled: false });
    const note = await tools.next(method('notifications/tools/list_changed'));
    assert.equal(note.params._meta[SUB], 'tools', 'tagged with the subscription id');
    await legacy.next(method('notifications/tools/list_changed'));
    assert.ok(!(await listed()).includes('flagged'));
    const call = await modern('tools/call', { name: 'flagged', arguments: {} });
    const unknown = await modern('tools/call', { name: 'never-existed', arguments: {} });
    assert.equal(call.body.error.code, unknown.body.error.code, 'answered as a tool that does not exist');
    assert.equal(call.body.error.message, 'Unknown tool: flagged');
    // operators see what is switched off (luamcp status, over the admin socket)
    const status = JSON.parse(execFileSync(BIN, ['status', '--admin-socket', path.join(TMP, 'admin.sock')], { encoding: 'utf8' }));
    assert.deepEqual(status.switched_off, { tool: ['flagged'] });

    // switching it off again moves nothing and tells no one
    const again = await modern('tools/call', { name: 'switch', arguments: { kind: 'tool', name: 'flagged', on: false } });
    assert.deepEqual(again.body.result.structuredContent, { moved: false, enabled: false });
    const on = await modern('tools/call', { name: 'switch', arguments: { kind: 'tool', name: 'flagged', on: true } });
    assert.deepEqual(on.body.result.structuredContent, { moved: true, enabled: true });
    await waitFor('the second list_changed', () => tools.messages.filter(method('notifications/tools/list_changed')).length >= 2);
    await sleep(300); // anything more would come now
    assert.equal(tools.messages.filter(method('notifications/tools/list_changed')).length, 2, 'one per flip');
    assert.ok((await listed()).includes('flagged'));
    assert.equal((await modern('tools/call', { name: 'flagged', arguments: {} })).body.result.content[0].text, 'flagged ran');
    assert.equal(prompts.messages.length, 1, `the prompts listener got only its ack: ${JSON.stringify(prompts.messages)}`);

    // prompts too, to their listeners only
    await modern('tools/call', { name: 'switch', arguments: { kind: 'prompt', name: 'hello', on: false } });
    const pn = await prompts.next(method('notifications/prompts/list_changed'));
    assert.equal(pn.params._meta[SUB], 'prompts');
    assert.equal((await modern('prompts/get', { name: 'hello' })).body.error.code, -32602);
    await modern('tools/call', { name: 'switch', arguments: { kind: 'prompt', name: 'hello', on: true } });
    assert.equal((await modern('prompts/get', { name: 'hello' })).body.result.messages[0].content.text, 'hi');
    assert.equal(tools.messages.filter(method('notifications/prompts/list_changed')).length, 0);
    tools.close();
    prompts.close();
    legacy.close();
  });

  it('refuses bad switches with a script error in the log, and switches nothing', async () => {
    for (const [which, message] of [[1, /bad argument #1 to 'disable' \("tool", "prompt" or "resource"\)/], [2, /bad argument #2 to 'disable' \(a name .* of 1 to 2048 bytes\)/]]) {
      const r = await modern('tools/call', { name: 'bad_switch', arguments: { which } });
      assert.equal(r.body.result.isError, true, JSON.stringify(r.body));
      assert.match(r.body.result.content[0].text, /tool 'bad_switch' failed \(see server log\)/);
      await server.waitLog(message);
    }
    assert.ok((await modern('tools/list')).body.result.tools.some((t) => t.name === 'flagged'));
  });

  it('a reload that changes the tool list tells the tools listeners', async () => {
    const tools = await listen({ toolsListChanged: true });
    const prompts = await listen({ promptsListChanged: true });
    writeFileSync(path.join(dir, 'scripts', 'extra.lua'), 'mcp.tool { name = "extra", description = "added", inputSchema = { type = "object" }, handler = function() return "x" end }\n');
    server.proc.kill('SIGHUP');
    const note = await tools.next(method('notifications/tools/list_changed'), 10000);
    assert.equal(note.params._meta[SUB], tools.id);
    assert.ok((await modern('tools/list')).body.result.tools.some((t) => t.name === 'extra'));
    await sleep(300);
    assert.equal(prompts.messages.length, 1, 'the prompt list did not change');
    tools.close();
    prompts.close();
  });

  it('resource updates reach the listeners of that URI only', async () => {
    const open = await listen({ resourceSubscriptions: ['test://open'] }, { id: 'open' });
    const other = await listen({ resourceSubscriptions: ['test://other'] }, { id: 'other' });
    await modern('tools/call', { name: 'touch', arguments: { uri: 'test://open' } });
    const up = await open.next(method('notifications/resources/updated'));
    assert.deepEqual(up.params, { uri: 'test://open', _meta: { [SUB]: 'open' } });
    await sleep(300);
    assert.equal(other.messages.length, 1, 'test://other did not change');
    open.close();
    other.close();
  });

  it('at most 32 listen streams per caller: the 33rd is 429, and closing one makes room', async () => {
    const tok = issuer.mint({ aud: RESOURCE, scope: 'listen:use', sub: 'greedy' });
    const open = await Promise.all(Array.from({ length: 32 }, (_, i) => listen({ toolsListChanged: true }, { id: `g${i}`, tok })));
    assert.ok(open.every((l) => l.status === 200));
    const over = await listen({ toolsListChanged: true }, { tok });
    assert.equal(over.status, 429);
    assert.match(over.body.error.message, /this caller has 32 subscription streams open already/);
    // another caller is not affected
    const other = await listen({ toolsListChanged: true }, { tok: issuer.mint({ aud: RESOURCE, scope: 'listen:use', sub: 'modest' }) });
    assert.equal(other.status, 200);
    other.close();
    open[0].close();
    await open[0].done;
    // the refusal made the server write to that caller's streams, so it finds the closed one
    const again = await waitFor('a slot for the caller again', async () => {
      const l = await listen({ toolsListChanged: true }, { tok });
      return l.status === 200 && l;
    }, 1000);
    again.close();
    for (const l of open) l.close();
    await Promise.all(open.map((l) => l.done));
  });

  it('500 listeners at once: a change reaches every one, and closing them frees them', async () => {
    const many = await Promise.all(Array.from({ length: 500 }, (_, i) => listen({ toolsListChanged: true },
      { id: `m${i}`, tok: issuer.mint({ aud: RESOURCE, scope: 'listen:use', sub: `many-${i}` }) })));
    assert.ok(many.every((l) => l.status === 200 && l.ack.params._meta[SUB] === l.id));
    await modern('tools/call', { name: 'switch', arguments: { kind: 'tool', name: 'flagged', on: false } });
    await Promise.all(many.map((l) => l.next((m) => m.method === 'notifications/tools/list_changed' && m.params._meta[SUB] === l.id, 10000)));
    await modern('tools/call', { name: 'switch', arguments: { kind: 'tool', name: 'flagged', on: true } });
    for (const l of many) l.close();
    await Promise.all(many.map((l) => l.done));
    // the server lets them go: a new listener and a flip still work
    const after = await listen({ toolsListChanged: true }, { id: 'after' });
    await modern('tools/call', { name: 'switch', arguments: { kind: 'tool', name: 'flagged', on: false } });
    await after.next(method('notifications/tools/list_changed'));
    await modern('tools/call', { name: 'switch', arguments: { kind: 'tool', name: 'flagged', on: true } });
    after.close();
    assert.ok(many.every((l) => l.messages.filter(method('notifications/tools/list_changed')).length <= 2));
  });

  it("ends the stream with the subscription's result when the caller's token expires", async () => {
    const short = issuer.mint({ aud: RESOURCE, scope: 'listen:use', exp: Math.floor(Date.now() / 1000) + 3 });
    const l = await listen({ toolsListChanged: true }, { id: 'short', tok: short });
    const t0 = Date.now();
    await l.done;
    const last = l.messages.at(-1);
    assert.deepEqual(last, { jsonrpc: '2.0', id: 'short', result: { _meta: { [SUB]: 'short' }, resultType: 'complete' } });
    // 3 s of token, plus the 1 s of leeway the server grants (leeway_s)
    assert.ok(Date.now() - t0 < 6000, `ended ${Date.now() - t0} ms after opening`);
    assert.ok(Date.now() - t0 > 2500, `ended ${Date.now() - t0} ms after opening, before the token expired`);
    await server.waitLog(/access token expired; the stream ends/);
  });
});

describe('Mcp-Param headers', () => {
  const call = (args, extra) => modern('tools/call', { name: 'regional', arguments: args }, { extra });
  it('agree with the arguments, or the call is refused with the reason', async () => {
    const listed = (await modern('tools/list')).body.result.tools.find((t) => t.name === 'regional');
    assert.equal(listed.inputSchema.properties.region['x-mcp-header'], 'Region', 'clients see the annotation');
    const ok = await call({ region: 'eu-1', shard: 3 }, { 'mcp-param-region': 'eu-1', 'mcp-param-shard': '3.0' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.result.content[0].text, 'ran in eu-1');
    const b64 = await call({ region: 'Zürich' }, { 'Mcp-Param-Region': `=?base64?${Buffer.from('Zürich').toString('base64')}?=` });
    assert.equal(b64.body.result.content[0].text, 'ran in Zürich');
    const cases = [
      ['a different value', { region: 'eu-1' }, { 'mcp-param-region': 'us-1' }, /Mcp-Param-Region does not match/],
      ['no header', { region: 'eu-1' }, {}, /Mcp-Param-Region is missing/],
      ['a header without a value', {}, { 'mcp-param-region': 'eu-1' }, /no value for it/],
      ['a bad base64', { region: 'eu-1' }, { 'mcp-param-region': '=?base64?ZXUtMQ?=' }, /invalid base64/],
      ['another number', { region: 'eu-1', shard: 3 }, { 'mcp-param-region': 'eu-1', 'mcp-param-shard': '4' }, /Mcp-Param-Shard does not match/],
    ];
    for (const [what, args, extra, message] of cases) {
      const r = await call(args, extra);
      assert.equal(r.status, 400, what);
      assert.equal(r.body.error.code, -32020, what);
      assert.match(r.body.error.message, message, what);
      assert.equal((await call({ region: 'eu-1' }, { 'mcp-param-region': 'eu-1' })).status, 200, `after ${what}`);
    }
  });

  it('Mcp-Name is compared whole, however long, whitespace around it aside', async () => {
    const uri = `test://t/${'a'.repeat(2039)}`; // 2,048 bytes, the longest URI resolved
    const read = (name) => modern('resources/read', { uri }, { extra: { 'mcp-name': name } });
    const ok = await read(` ${uri}\t `);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.result?.contents?.[0]?.text, 'path of 2039 bytes', JSON.stringify(ok.body));
    for (const name of [`${uri}EVIL `, `${uri}${'b'.repeat(5000)} `, `${uri.slice(0, -1)} `]) {
      const r = await read(name);
      assert.equal(r.status, 400, `${name.length} bytes: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, -32020);
    }
  });

  it('sent twice, a header is refused (a proxy may have read the other one)', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { _meta: meta(), name: 'regional', arguments: { region: 'eu-1' } } });
    // (a raw header list: node adds no Host, which an HTTP/1.1 request must have)
    const raw = ['host', `127.0.0.1:${server.port}`, 'content-type', 'application/json', 'accept', 'application/json', 'mcp-protocol-version', MODERN,
      'mcp-method', 'tools/call', 'mcp-name', 'regional', 'authorization', `Bearer ${token}`,
      'mcp-param-region', 'eu-1', 'Mcp-Param-Region', 'us-1', 'content-length', String(Buffer.byteLength(body))];
    const res = await new Promise((resolve, reject) => {
      const req = http.request(server.url, { method: 'POST', headers: raw }, (r) => {
        let text = '';
        r.on('data', (d) => { text += d; });
        r.on('end', () => resolve({ status: r.statusCode, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, -32020);
    assert.match(res.body.error.message, /Mcp-Param-Region was sent more than once/);
  });
});

// A 2025-11-25 session with its GET stream open: {next, close}.
async function legacySession() {
  const h = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}` };
  const init = await fetch(server.url, { method: 'POST', headers: h, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'listen-e2e', version: '1' } } }) });
  const sid = init.headers.get('mcp-session-id');
  await init.text();
  const hs = { ...h, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  await (await fetch(server.url, { method: 'POST', headers: hs, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })).text();
  const ctl = new AbortController();
  const res = await fetch(server.url, { method: 'GET', headers: { ...hs, accept: 'text/event-stream' }, signal: ctl.signal });
  assert.equal(res.status, 200);
  return readSse(res, ctl, {
    post: async (msg) => (await fetch(server.url, { method: 'POST', headers: { ...hs, accept: 'application/json' }, body: JSON.stringify(msg) })).json(),
  });
}

describe('a server reachable from the network', () => {
  it("keeps a reload error's text off /healthz (anyone may read it); luamcp status has it", async () => {
    const home = path.join(TMP, 'network');
    mkdirSync(path.join(home, 'scripts'), { recursive: true });
    mkdirSync(path.join(home, 'policies'));
    writeFileSync(path.join(home, 'scripts', 'ok.lua'), 'mcp.tool { name = "ok", description = "d", inputSchema = { type = "object" }, handler = function() return "ok" end }\n');
    writeFileSync(path.join(home, 'policies', 'p.lua'), 'mcp.policy { tool = "*", scopes = "listen:use" }\n');
    const admin = path.join(TMP, 'network-admin.sock');
    const net = await startLuamcp(BIN, TMP, 'network', {
      listen: '0.0.0.0:0', scripts: path.join(home, 'scripts'), policies: path.join(home, 'policies'),
      auth: { resource: RESOURCE, issuers: [{ issuer: issuer.issuer, jwks_uri: issuer.jwksUri, algorithms: ['RS256'] }] },
    }, { args: ['--admin-socket', admin] });
    try {
      // a script whose syntax error quotes the line it is on, secret literal and all
      writeFileSync(path.join(home, 'scripts', 'broken.lua'), 'local key = 1 "sk-live-0123456789"\n');
      net.proc.kill('SIGHUP');
      const health = await waitFor('the failed reload on /healthz', async () => {
        const h = await (await fetch(`${net.base}/healthz`)).json();
        return h.bundle.failures >= 1 && h;
      }, 5000);
      assert.equal(health.bundle.failures, 1, JSON.stringify(health));
      assert.equal(health.bundle.last_error, 'the last reload failed: `luamcp status` on the server says why');
      const status = JSON.parse(execFileSync(BIN, ['status', '--admin-socket', admin], { encoding: 'utf8' }));
      assert.match(status.last_error, /broken\.lua:1: .*sk-live-0123456789/, JSON.stringify(status));
      assert.ok(!JSON.stringify(health).includes('sk-live'), 'the quoted code stays off /healthz');
    } finally {
      await net.stop();
    }
  });
});

describe('the server stopping', () => {
  it("ends every listen stream with the subscription's result", async () => {
    const l = await listen({ toolsListChanged: true }, { id: 99 });
    const stopped = server.stop();
    server = null;
    await l.done;
    assert.deepEqual(l.messages.at(-1), { jsonrpc: '2.0', id: 99, result: { _meta: { [SUB]: 99 }, resultType: 'complete' } });
    await stopped;
  });
});
