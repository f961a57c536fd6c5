// callers.mjs — callers stay apart: every message that refers to another message (a
// cancellation, the answer to a server request, a stream resumption) reaches it only from the
// caller who owns it, in both eras, against the real binary with verified tokens:
//
//   cancel     another caller's notifications/cancelled with the victim's id changes nothing,
//              whether it sends an empty Mcp-Session-Id (2026-07-28, stateless calls) or the
//              victim's session id with the 2026-07-28 protocol header (2025-11-25 sessions);
//              the victim's call finishes normally, and the owner's own cancel still works
//   answers    the answer to the victim's elicitation or sampling request, sent by another
//              caller with the victim's session id and the 2026-07-28 header, gets the same 400
//              as an unknown id; the victim's own answer goes through; server request ids are
//              "luamcp-" and 128 random bits; in 2026-07-28 (no requests on a stream) another
//              caller's round with the victim's requestState is refused
//   resume     another caller's GET with the victim's session and Last-Event-ID gets nothing;
//              a flood of GET streams by 40 callers (each past its own bound, together past
//              the server-wide table) evicts flooders' channels only: another caller's new
//              stream is still resumable
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test callers.mjs   (default ../../build/luamcp)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync, writeFileSync } from 'node:fs';

import { luamcpBin, modernCall, sseMessages, startBackend, startLuamcp, startMintingIssuer, stopAll, tmpDir, waitFor } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-callers-');
const LEGACY = '2025-11-25';
const MODERN = '2026-07-28';
const RESOURCE = 'http://127.0.0.1/callers/mcp';

const TOOLS = `
mcp.tool { name = "wait_backend", description = "GETs the URL it is given",
  inputSchema = { type = "object", properties = { url = { type = "string" } }, required = { "url" } },
  handler = function(args)
    local r, err = mcp.http.get(args.url)
    if not r then return nil, err end
    return { status = r.status }
  end }
mcp.tool { name = "ask_name", description = "elicits a name", inputSchema = { type = "object", properties = mcp.object {} },
  handler = function(_, ctx)
    local r, err = ctx.elicit { message = "Your name?", requestedSchema = {
      type = "object", properties = { name = { type = "string" } }, required = { "name" } } }
    if not r then return nil, err end
    return "hello " .. tostring(r.content and r.content.name)
  end }
mcp.tool { name = "ask_model", description = "samples", inputSchema = { type = "object", properties = mcp.object {} },
  handler = function(_, ctx)
    local r, err = ctx.sample { messages = { { role = "user", content = { type = "text", text = "hi" } } }, maxTokens = 5 }
    if not r then return nil, err end
    return "model said " .. tostring(r.content and r.content.text)
  end }
`;

let issuer;
let server;
let backend;
const held = []; // backend requests left hanging, released by the tests

const tokenFor = (sub, client = 'tests') => issuer.mint({ aud: RESOURCE, sub, client_id: client });

before(async () => {
  issuer = await startMintingIssuer();
  backend = await startBackend(() => new Promise((resolve) => { held.push(resolve); }));
  const dir = path.join(TMP, 'fixture');
  mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'scripts', 'tools.lua'), TOOLS);
  writeFileSync(path.join(dir, 'policies', 'open.lua'), 'mcp.policy { tool = "*", description = "callers tests" }\n');
  server = await startLuamcp(BIN, TMP, 'callers', {
    scripts: path.join(dir, 'scripts'),
    policies: path.join(dir, 'policies'),
    auth: { resource: RESOURCE, issuers: [{ issuer: issuer.issuer, jwks_uri: issuer.jwksUri, algorithms: ['RS256'] }] },
    limits: { timeout_ms: 8000 },
    egress: { allow: ['127.0.0.1'], allow_http: true, allow_private: ['127.0.0.1/32'] },
    // every caller here connects from 127.0.0.1: the GET flood is about the stream tables,
    // not the per-address connection cap (spec/edge/flood.mjs tests that)
    max_connections_per_address: 0,
  });
});

after(async () => {
  for (const release of held) release({ status: 200, body: {} });
  await server?.stop();
  await backend?.close();
  await issuer?.close();
  await stopAll();
});

// A raw POST (node:http, so that an empty header is sent as it is): {status, text}.
function raw(headers, msg, { method = 'POST' } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(server.url, { method, headers }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.status ?? res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(msg ? JSON.stringify(msg) : undefined);
  });
}

const jsonHeaders = (token, extra) => ({ 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${token}`, ...extra });

// A 2025-11-25 session of token's caller, with the capabilities given.
async function open(token, capabilities = {}) {
  const r = await fetch(server.url, { method: 'POST', headers: jsonHeaders(token, { accept: 'application/json' }), body: JSON.stringify({
    jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: LEGACY, capabilities, clientInfo: { name: 'callers', version: '1' } },
  }) });
  assert.equal(r.status, 200, await r.text());
  const sid = r.headers.get('mcp-session-id');
  assert.ok(sid);
  const n = await raw(jsonHeaders(token, { 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY }), { jsonrpc: '2.0', method: 'notifications/initialized' });
  assert.equal(n.status, 202);
  return sid;
}

const legacyPost = (token, sid, msg, accept = 'application/json') => fetch(server.url, {
  method: 'POST', headers: jsonHeaders(token, { accept, 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY }), body: JSON.stringify(msg),
});

const cancelOf = (requestId) => ({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason: 'hostile' } });
const modernNotify = (token, extra = {}) => jsonHeaders(token, { 'mcp-protocol-version': MODERN, 'mcp-method': 'notifications/cancelled', ...extra });

async function waitHeld(n) {
  await waitFor('the backend to get the request', () => held.length >= n, 5000, 10);
  assert.equal(held.length, n, 'the backend got the request');
}

describe('cancel', () => {
  it('2026-07-28: another caller cannot cancel a stateless call, with or without an empty Mcp-Session-Id', async () => {
    const victim = tokenFor('victim-m');
    const mallory = tokenFor('mallory');
    const before = held.length;
    const call = modernCall(server.url, 'tools/call', { name: 'wait_backend', arguments: { url: `${backend.url}/slow` } }, { token: victim, id: 5 });
    await waitHeld(before + 1);
    const mark = server.log.length;
    for (let id = 0; id <= 20; id++) { // a spray of ids, as the attack did
      assert.equal((await raw(modernNotify(mallory, { 'mcp-session-id': '' }), cancelOf(id))).status, 202);
      assert.equal((await raw(modernNotify(mallory), cancelOf(id))).status, 202);
    }
    held[before]({ status: 200, body: {} });
    const r = await call;
    assert.equal(r.status, 200);
    assert.equal(r.body.result?.structuredContent?.status, 200, JSON.stringify(r.body));
    assert.doesNotMatch(server.log.slice(mark), /cancelled by the client/);
  });

  it('2026-07-28: the owner still cancels its own call', async () => {
    const victim = tokenFor('owner-m');
    const before = held.length;
    const call = modernCall(server.url, 'tools/call', { name: 'wait_backend', arguments: { url: `${backend.url}/slow` } }, { token: victim, id: 'own-1' });
    await waitHeld(before + 1);
    assert.equal((await raw(modernNotify(victim), cancelOf('own-1'))).status, 202);
    const r = await call;
    assert.equal(r.body.error?.code, -32800, JSON.stringify(r.body));
    await server.waitLog(/request "own-1" cancelled by the client/);
  });

  it('2025-11-25: with the victim\'s session id and the 2026-07-28 header, another caller cannot cancel', async () => {
    const victim = tokenFor('victim-s');
    const mallory = tokenFor('mallory');
    const sid = await open(victim);
    const before = held.length;
    const call = legacyPost(victim, sid, { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'wait_backend', arguments: { url: `${backend.url}/slow` } } });
    await waitHeld(before + 1);
    const mark = server.log.length;
    assert.equal((await raw(modernNotify(mallory, { 'mcp-session-id': sid }), cancelOf(9))).status, 202);
    // with the 2025 header the session is not found for this caller, as before
    assert.equal((await raw(jsonHeaders(mallory, { 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY }), cancelOf(9))).status, 404);
    // the same subject through another client is another caller too
    assert.equal((await raw(modernNotify(tokenFor('victim-s', 'other-client'), { 'mcp-session-id': sid }), cancelOf(9))).status, 202);
    held[before]({ status: 200, body: {} });
    const r = await call;
    assert.equal(r.status, 200);
    assert.equal((await r.json()).result?.structuredContent?.status, 200);
    assert.doesNotMatch(server.log.slice(mark), /cancelled by the client/);
    // and the owner can still cancel a call of its session
    const again = legacyPost(victim, sid, { jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'wait_backend', arguments: { url: `${backend.url}/slow` } } });
    await waitHeld(before + 2);
    assert.equal((await raw(jsonHeaders(victim, { 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY }), cancelOf(10))).status, 202);
    assert.equal((await (await again).json()).error?.code, -32800);
  });
});

// Reads r's event stream until a message with `method` arrives: {ask, reader, text}.
async function untilAsk(r, method) {
  assert.equal(r.headers.get('content-type'), 'text/event-stream');
  const reader = r.body.getReader();
  let text = '';
  while (!sseMessages(text).some((m) => m.method === method)) {
    const { value, done } = await reader.read();
    assert.ok(!done, `the stream ended before ${method}: ${text}`);
    text += new TextDecoder().decode(value);
  }
  return { ask: sseMessages(text).find((m) => m.method === method), reader, text };
}

async function rest(reader, text) {
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return text;
    text += new TextDecoder().decode(value);
  }
}

describe('answers to server requests', () => {
  it("2026-07-28: another caller's round with the victim's requestState is refused; the victim's own round finishes", async () => {
    const victim = tokenFor('victim-mrtr');
    const caps = { elicitation: {} };
    const first = await modernCall(server.url, 'tools/call', { name: 'ask_name', arguments: {} }, { token: victim, caps, id: 1 });
    assert.equal(first.body.result?.resultType, 'input_required', JSON.stringify(first.body));
    const { requestState, inputRequests } = first.body.result;
    const [key] = Object.keys(inputRequests);
    const round = (token, name) => modernCall(server.url, 'tools/call', { name: 'ask_name', arguments: {}, requestState, inputResponses: { [key]: { action: 'accept', content: { name } } } }, { token, caps, id: 2 });
    for (const other of [tokenFor('mallory'), tokenFor('victim-mrtr', 'other-client')]) {
      const r = await round(other, 'Mallory');
      assert.equal(r.body.error?.code, -32602, JSON.stringify(r.body));
      assert.match(r.body.error.message, /requestState .* not for this call/);
    }
    const mine = await round(victim, 'Ada');
    assert.deepEqual(mine.body.result?.content, [{ type: 'text', text: 'hello Ada' }], JSON.stringify(mine.body));
  });

  for (const [tool, method, cap, mine, theirs, expect] of [
    ['ask_name', 'elicitation/create', { elicitation: {} }, { action: 'accept', content: { name: 'Ada' } }, { action: 'accept', content: { name: 'Mallory' } }, 'hello Ada'],
    ['ask_model', 'sampling/createMessage', { sampling: {} }, { role: 'assistant', content: { type: 'text', text: 'ok' }, model: 'm' }, { role: 'assistant', content: { type: 'text', text: 'pwned' }, model: 'm' }, 'model said ok'],
  ]) {
    it(`${method}: another caller's answer with the victim's session and the 2026-07-28 header is an unknown id`, async () => {
      const victim = tokenFor(`victim-${tool}`);
      const mallory = tokenFor('mallory');
      const sid = await open(victim, cap);
      const r = await legacyPost(victim, sid, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: tool, arguments: {} } }, 'application/json, text/event-stream');
      const { ask, reader, text } = await untilAsk(r, method);
      assert.match(ask.id, /^luamcp-[0-9a-f]{32}$/, 'an id nobody can guess');
      const hostile = (id, extra) => raw(jsonHeaders(mallory, { 'mcp-protocol-version': MODERN, 'mcp-session-id': sid, ...extra }), { jsonrpc: '2.0', id, result: theirs });
      const unknown = await hostile(`luamcp-${'0'.repeat(32)}`);
      assert.equal(unknown.status, 400);
      const injected = await hostile(ask.id);
      assert.deepEqual(injected, unknown, 'the same answer as for an unknown id');
      assert.deepEqual(await hostile(ask.id, { 'mcp-session-id': '' }), unknown);
      // the victim's own answer goes through and the call finishes with it
      const own = await raw(jsonHeaders(victim, { 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY }), { jsonrpc: '2.0', id: ask.id, result: mine });
      assert.equal(own.status, 202);
      const final = sseMessages(await rest(reader, text)).find((m) => m.id === 3);
      assert.deepEqual(final.result, { content: [{ type: 'text', text: expect }] });
    });
  }
});

// A GET stream of sid: the id of its priming event's channel (the stream is then dropped).
async function primedChannel(token, sid, lastEventId) {
  const ctl = new AbortController();
  const headers = { accept: 'text/event-stream', authorization: `Bearer ${token}`, 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY };
  if (lastEventId) headers['last-event-id'] = lastEventId;
  const res = await fetch(server.url, { method: 'GET', headers, signal: ctl.signal });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  let text = '';
  while (!/^id: [0-9a-f]{16}-/m.test(text)) {
    const { value, done } = await reader.read();
    assert.ok(!done, text);
    text += new TextDecoder().decode(value);
  }
  ctl.abort();
  return text.match(/^id: ([0-9a-f]{16})-/m)[1];
}

describe('resume', () => {
  it("a flood of GET streams by one caller or by many evicts only the flooders' channels; another's resumption holds", async () => {
    // 40 callers, 300 GET streams each: each passes its own bound (256) and together they
    // hold more than the server-wide table (10,000)
    const flooders = Array.from({ length: 40 }, (_, i) => tokenFor(`flooder-${i}`));
    const sessions = await Promise.all(flooders.map((t) => open(t)));
    const firstOwn = await primedChannel(flooders[0], sessions[0]);
    const flood = async (w, per) => {
      for (let i = w; i < flooders.length; i += 8)
        for (let n = 0; n < per; n++) await primedChannel(flooders[i], sessions[i]);
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => flood(w, 300)));
    assert.notEqual(await primedChannel(flooders[0], sessions[0], `${firstOwn}-0`), firstOwn, "a flooder's oldest channel was its own to lose");
    const victim = tokenFor('victim-flood');
    const vsid = await open(victim);
    const mine = await primedChannel(victim, vsid);
    await Promise.all(Array.from({ length: 8 }, (_, w) => flood(w, 25))); // the flood goes on
    assert.equal(await primedChannel(victim, vsid, `${mine}-0`), mine, "the victim's stream is resumed");
    // and its calls still work
    const r = await legacyPost(victim, vsid, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(r.status, 200);
  });

  it("another caller's GET with the victim's session and Last-Event-ID gets none of its events", async () => {
    const victim = tokenFor('victim-r');
    const mallory = tokenFor('mallory');
    const sid = await open(victim, { elicitation: {} });
    const r = await legacyPost(victim, sid, { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'ask_name', arguments: {} } }, 'application/json, text/event-stream');
    const { ask, reader, text } = await untilAsk(r, 'elicitation/create');
    const first = text.split('\n').find((l) => l.startsWith('id: ')).slice(4);
    for (const version of [LEGACY, MODERN]) {
      const g = await raw({ accept: 'text/event-stream', authorization: `Bearer ${mallory}`, 'mcp-session-id': sid, 'mcp-protocol-version': version, 'last-event-id': first }, null, { method: 'GET' });
      assert.notEqual(g.status, 200, version);
      assert.ok(!g.text.includes('Your name?'), version);
    }
    const own = await raw(jsonHeaders(victim, { 'mcp-session-id': sid, 'mcp-protocol-version': LEGACY }), { jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { name: 'Bo' } } });
    assert.equal(own.status, 202);
    const final = sseMessages(await rest(reader, text)).find((m) => m.id === 4);
    assert.deepEqual(final.result, { content: [{ type: 'text', text: 'hello Bo' }] });
  });
});
