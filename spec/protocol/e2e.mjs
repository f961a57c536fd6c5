// e2e.mjs — protocol features the conformance suite does not exercise, against the real
// binary over raw HTTP (so every header and status is visible):
//
//   cancel     notifications/cancelled ends a call waiting on a backend: its POST gets
//              -32800 (after the notifications sent so far); another session cannot cancel it
//   ask        ctx.elicit without SSE, without the capability, unanswered until the deadline;
//              a response for no waiting request is 400
//   resume     ctx.close_stream ends the POST's connection after a priming event; the call
//              goes on; GET with Last-Event-ID replays what came after and delivers the rest;
//              another session's Last-Event-ID replays nothing
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test e2e.mjs   (default ../../build/luamcp)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';

import { luamcpBin, sseMessages, startBackend, startLuamcp, tmpDir, waitFor } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-protocol-');
const VERSION = '2025-11-25';

let server;
let backend;
const held = []; // backend requests left hanging, released at the end
let aborted = 0;

before(async () => {
  backend = await startBackend(() => new Promise((resolve) => { held.push(resolve); }));
  server = await startLuamcp(BIN, TMP, 'protocol', {
    scripts: path.join(HERE, 'fixtures', 'scripts'),
    policies: path.join(HERE, 'fixtures', 'policies'),
    auth: { enabled: false },
    limits: { timeout_ms: 3000 },
    egress: { allow: ['127.0.0.1'], allow_http: true, allow_private: ['127.0.0.1/32'] },
  });
});

after(async () => {
  for (const release of held) release({ status: 200, body: {} });
  await server?.stop();
  await backend?.close();
});

async function post(session, msg, { accept = 'application/json, text/event-stream', signal } = {}) {
  const headers = { 'content-type': 'application/json', accept };
  if (session) {
    headers['mcp-session-id'] = session;
    headers['mcp-protocol-version'] = VERSION;
  }
  return fetch(server.url, { method: 'POST', headers, body: JSON.stringify(msg), signal });
}

async function open(capabilities = {}) {
  const r = await post(null, {
    jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: VERSION, capabilities, clientInfo: { name: 'protocol-e2e', version: '1' } },
  }, { accept: 'application/json' });
  assert.equal(r.status, 200);
  const sid = r.headers.get('mcp-session-id');
  assert.ok(sid);
  assert.equal((await post(sid, { jsonrpc: '2.0', method: 'notifications/initialized' })).status, 202);
  return sid;
}

async function waitHeld(n) {
  await waitFor('the backend to get the request', () => held.length >= n, 2000, 10);
  assert.equal(held.length, n, 'the backend got the request');
}

describe('cancellation', () => {
  it('a JSON POST whose call waits on a backend is answered -32800 once cancelled', async () => {
    const sid = await open();
    const before = held.length;
    const call = post(sid, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'wait_backend', arguments: { url: `${backend.url}/slow` } } }, { accept: 'application/json' });
    await waitHeld(before + 1);
    const c = await post(sid, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 7, reason: 'user' } });
    assert.equal(c.status, 202);
    const r = await call;
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { jsonrpc: '2.0', id: 7, error: { code: -32800, message: 'Request cancelled' } });
    await server.waitLog(/request 7 cancelled by the client/);
  });

  it('an SSE POST gets its progress, then -32800', async () => {
    const sid = await open();
    const before = held.length;
    const call = post(sid, { jsonrpc: '2.0', id: 'x-1', method: 'tools/call', params: { name: 'wait_backend', arguments: { url: `${backend.url}/slow` }, _meta: { progressToken: 'p' } } });
    await waitHeld(before + 1);
    await post(sid, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'x-1' } });
    const r = await call;
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/event-stream');
    const got = sseMessages(await r.text());
    assert.deepEqual(got, [
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: 1, total: 2, message: 'asking the backend' } },
      { jsonrpc: '2.0', id: 'x-1', error: { code: -32800, message: 'Request cancelled' } },
    ]);
  });

  it('another session cannot cancel it, and an unknown id changes nothing', async () => {
    const mine = await open();
    const other = await open();
    const before = held.length;
    const call = post(mine, { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'wait_backend', arguments: { url: `${backend.url}/slow` } } }, { accept: 'application/json' });
    await waitHeld(before + 1);
    assert.equal((await post(other, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 9 } })).status, 202);
    assert.equal((await post(mine, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 12345 } })).status, 202);
    held[before]({ status: 200, body: {} }); // the backend answers: the call completes normally
    const r = await call;
    assert.equal((await r.json()).result.structuredContent.status, 200);
  });
});

describe('asking the client', () => {
  it('without SSE, or without the capability, ctx.elicit is a clear tool error', async () => {
    const plain = await open();
    const r = await (await post(plain, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ask_name', arguments: {} } }, { accept: 'application/json' })).json();
    assert.deepEqual(r.result, { content: [{ type: 'text', text: 'the client does not support elicitation (it declared no elicitation capability)' }], isError: true });
    const capable = await open({ elicitation: {} });
    const j = await (await post(capable, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'ask_name', arguments: {} } }, { accept: 'application/json' })).json();
    assert.deepEqual(j.result, { content: [{ type: 'text', text: 'elicitation needs the client to accept text/event-stream on this request' }], isError: true });
  });

  it('the request goes out on the stream, the answer comes back, the tool goes on', async () => {
    const sid = await open({ elicitation: {} });
    const r = await post(sid, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'ask_name', arguments: {} } });
    assert.equal(r.headers.get('content-type'), 'text/event-stream');
    const reader = r.body.getReader();
    let text = '';
    while (!text.includes('elicitation/create')) text += new TextDecoder().decode((await reader.read()).value);
    const ask = sseMessages(text).find((m) => m.method === 'elicitation/create');
    assert.equal(ask.params.message, 'Your name?');
    // from another connection, as a client would
    assert.equal((await post(sid, { jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { name: 'Ada' } } })).status, 202);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const final = sseMessages(text).find((m) => m.id === 3);
    assert.deepEqual(final.result, { content: [{ type: 'text', text: 'hello Ada' }] });
    // the same answer again is for nothing that waits
    assert.equal((await post(sid, { jsonrpc: '2.0', id: ask.id, result: { action: 'accept' } })).status, 400);
  });

  it('an unanswered request ends the call at its deadline with a tool error', async () => {
    const sid = await open({ elicitation: {} });
    const r = await post(sid, { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'ask_name', arguments: {} } });
    const final = sseMessages(await r.text()).find((m) => m.id === 4);
    assert.deepEqual(final.result, { content: [{ type: 'text', text: 'the client did not answer in time' }], isError: true });
  });
});

describe('resumable streams', () => {
  async function readAll(res) {
    return new TextDecoder().decode(new Uint8Array(await res.arrayBuffer()));
  }
  function ids(text) {
    return text.split('\n').filter((l) => l.startsWith('id: ')).map((l) => l.slice(4));
  }

  it('a call that ends its stream is resumed with Last-Event-ID, missing nothing', async () => {
    const sid = await open();
    const before = held.length;
    const r = await post(sid, { jsonrpc: '2.0', id: 21, method: 'tools/call', params: { name: 'detached_wait', arguments: { url: `${backend.url}/later` }, _meta: { progressToken: 't' } } });
    assert.equal(r.headers.get('content-type'), 'text/event-stream');
    const first = await readAll(r); // the server ends it: priming, and what came before
    const primed = ids(first);
    assert.equal(primed.length, 2);
    assert.match(primed[0], /^[0-9a-f]{16}-0$/);
    assert.equal(primed[1], `${primed[0].slice(0, 16)}-1`);
    assert.match(first, /^id: [0-9a-f]{16}-0\nretry: \d+\ndata: \n\n/);
    assert.deepEqual(sseMessages(first).map((m) => m.params.message), ['before the wait']);
    await waitHeld(before + 1); // the call goes on: it is waiting on the backend
    // another session cannot read this channel: it gets a fresh stream of its own
    const other = await open();
    const stranger = new AbortController();
    const o = await fetch(server.url, { method: 'GET', signal: stranger.signal, headers: { accept: 'text/event-stream', 'mcp-session-id': other, 'mcp-protocol-version': VERSION, 'last-event-id': primed[0] } });
    assert.equal(o.status, 200);
    const oreader = o.body.getReader();
    const ofirst = new TextDecoder().decode((await oreader.read()).value);
    assert.ok(!ofirst.includes(primed[0].slice(0, 16)), 'no event of the other session');
    stranger.abort();
    // the owner resumes, then the backend answers
    const g = await fetch(server.url, { method: 'GET', headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': VERSION, 'last-event-id': primed[1] } });
    assert.equal(g.status, 200);
    held[before]({ status: 200, body: {} });
    const rest = await readAll(g); // ends after the response
    const got = sseMessages(rest);
    assert.deepEqual(got.map((m) => m.params?.message ?? m.result?.content?.[0]?.text), ['after the wait', 'done after 200']);
    assert.equal(got[1].id, 21);
    const seqs = ids(rest).map((i) => Number(i.split('-')[1]));
    assert.deepEqual(seqs, [2, 3]);
    // resuming after the second event gives only the third (within the resume window)
    const again = await fetch(server.url, { method: 'GET', headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': VERSION, 'last-event-id': ids(rest)[0] } });
    const tail = sseMessages(await readAll(again));
    assert.deepEqual(tail.map((m) => m.id), [21]);
  });
});

describe('hostile inputs (review regressions)', () => {
  it('a prompt result that raises when read is a JSON-RPC error, and the server goes on', async () => {
    const sid = await open();
    const r = await (await post(sid, { jsonrpc: '2.0', id: 31, method: 'prompts/get', params: { name: 'booby_trapped' } }, { accept: 'application/json' })).json();
    assert.deepEqual(r.error, { code: -32603, message: "Internal error: prompt 'booby_trapped' returned a value that cannot be converted" });
    const ok = await (await post(sid, { jsonrpc: '2.0', id: 32, method: 'ping' }, { accept: 'application/json' })).json();
    assert.deepEqual(ok.result, {});
  });

  it('a URI that almost matches a three-variable template is simply not found', async () => {
    const sid = await open();
    const uri = `t:${'-'.repeat(1500)}X`;
    const r = await (await post(sid, { jsonrpc: '2.0', id: 33, method: 'resources/read', params: { uri } }, { accept: 'application/json' })).json();
    assert.equal(r.error.code, -32002);
    const good = await (await post(sid, { jsonrpc: '2.0', id: 34, method: 'resources/read', params: { uri: 't:x-y-z-end' } }, { accept: 'application/json' })).json();
    assert.equal(good.result.contents[0].text, 'xyz');
  });

  it('mcp.http.all with 32 requests deep in a recursion works', async () => {
    const sid = await open();
    const before = held.length;
    const call = post(sid, { jsonrpc: '2.0', id: 35, method: 'tools/call', params: { name: 'many_at_once', arguments: { url: `${backend.url}/many` } } }, { accept: 'application/json' });
    await waitHeld(before + 32);
    for (let i = before; i < before + 32; i++) held[i]({ status: 200, body: {} });
    const r = await (await call).json();
    assert.deepEqual(r.result.structuredContent, { n: 32 });
  });

  it('a response naming a client request id ("c:…") is refused, not routed', async () => {
    const sid = await open();
    const r = await post(sid, { jsonrpc: '2.0', id: 'c:1', result: {} });
    assert.equal(r.status, 400);
  });
});

describe('resource subscriptions', () => {
  it('mcp.resource_updated reaches the GET stream of every subscribed session, and only those', async () => {
    const uri = 't:a-b-c-end';
    const sub = await open();
    const other = await open();
    const r = await (await post(sub, { jsonrpc: '2.0', id: 41, method: 'resources/subscribe', params: { uri } }, { accept: 'application/json' })).json();
    assert.deepEqual(r.result, {});
    const streams = [];
    for (const sid of [sub, other]) {
      const ctl = new AbortController();
      const g = await fetch(server.url, { method: 'GET', signal: ctl.signal, headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': VERSION } });
      assert.equal(g.status, 200);
      const reader = g.body.getReader();
      let text = '';
      while (!text.includes('data:')) text += new TextDecoder().decode((await reader.read()).value); // the priming event
      streams.push({ ctl, reader, text: () => text, more: async () => { text += new TextDecoder().decode((await reader.read()).value); } });
    }
    const t = await (await post(other, { jsonrpc: '2.0', id: 42, method: 'tools/call', params: { name: 'touch_resource', arguments: { uri } } }, { accept: 'application/json' })).json();
    assert.deepEqual(t.result.structuredContent, { sent: true });
    await streams[0].more();
    const got = sseMessages(streams[0].text());
    assert.deepEqual(got, [{ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri } }]);
    // unsubscribed: nothing more; the other session got nothing at all
    await post(sub, { jsonrpc: '2.0', id: 43, method: 'resources/unsubscribe', params: { uri } }, { accept: 'application/json' });
    await post(other, { jsonrpc: '2.0', id: 44, method: 'tools/call', params: { name: 'touch_resource', arguments: { uri } } }, { accept: 'application/json' });
    await sleep(200);
    assert.equal(sseMessages(streams[1].text()).length, 0);
    for (const s of streams) s.ctl.abort();
  });
});

describe('2026-07-28: authorized from the headers before the body is read', () => {
  let dev;
  const token = (scope) => execFileSync(BIN, ['token', '--config', dev.conf, '--scope', scope], { encoding: 'utf8' }).trim().split('\n').pop();
  before(async () => {
    dev = await startLuamcp(BIN, TMP, 'dev', {
      dev: true, stateless: true, scripts: path.join(HERE, '..', '..', 'scripts'),
      policies: path.join(HERE, '..', '..', 'policies'), auth: { dev_key_file: path.join(TMP, 'dev-key.json') },
    });
  });
  after(async () => { await dev?.stop(); });

  const headers = (tok, name) => ({
    authorization: `Bearer ${tok}`, 'content-type': 'application/json', accept: 'application/json',
    'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': name,
  });
  const META = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };

  it('a caller without the scope gets the 403 step-up challenge even for a body that is not JSON', async () => {
    const r = await fetch(dev.url, { method: 'POST', headers: headers(token('profile'), 'echo'), body: 'not json at all' });
    assert.equal(r.status, 403);
    assert.match(r.headers.get('www-authenticate'), /error="insufficient_scope", scope="mcp:tools"/);
    // the audit goes to stdout, read asynchronously
    const rec = await waitFor('the audit record of the refusal', () => dev.audit().find((a) => a.before_body), 2000);
    assert.equal(rec.decision, 'challenge');
    assert.equal(rec.tool, 'echo');
  });

  it('a caller with it is served, and the body must agree with the headers', async () => {
    const tok = token('mcp:tools');
    const ok = await (await fetch(dev.url, { method: 'POST', headers: headers(tok, 'echo'), body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' }, _meta: META } }) })).json();
    assert.deepEqual(ok.result, { content: [{ type: 'text', text: 'hi' }], resultType: 'complete' });
    const r = await fetch(dev.url, { method: 'POST', headers: headers(tok, 'echo'), body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'hash', arguments: {}, _meta: META } }) });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.code, -32020);
  });
});

describe('list_changed of each kind', () => {
  it('adding a prompt says prompts/list_changed on the GET stream, and nothing about tools', async () => {
    const dir = path.join(TMP, 'live');
    mkdirSync(path.join(dir, 'scripts'), { recursive: true });
    mkdirSync(path.join(dir, 'policies'), { recursive: true });
    writeFileSync(path.join(dir, 'scripts', 'a.lua'), 'mcp.tool { name = "a", description = "a", inputSchema = { type = "object" }, handler = function() return "a" end }\n');
    writeFileSync(path.join(dir, 'policies', 'open.lua'), 'mcp.policy { tool = "*", description = "t" }\nmcp.policy { prompt = "*", description = "t" }\n');
    const live = await startLuamcp(BIN, TMP, 'live', { scripts: path.join(dir, 'scripts'), policies: path.join(dir, 'policies'), auth: { enabled: false } });
    try {
      const init = await fetch(live.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 't', version: '1' } } }) });
      const sid = init.headers.get('mcp-session-id');
      const ctl = new AbortController();
      const g = await fetch(live.url, { method: 'GET', signal: ctl.signal, headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': VERSION } });
      const reader = g.body.getReader();
      let text = '';
      while (!text.includes('data:')) text += new TextDecoder().decode((await reader.read()).value);
      writeFileSync(path.join(dir, 'scripts', 'p.lua'), 'mcp.prompt { name = "p", description = "p", handler = function() return "hi" end }\n');
      while (!text.includes('list_changed')) text += new TextDecoder().decode((await reader.read()).value);
      await live.waitLog(/reload \(.*\): version 2/);
      // go on reading for a while: a tools/list_changed would arrive now
      const more = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          text += new TextDecoder().decode(value);
        }
      })().catch(() => {});
      await sleep(300);
      ctl.abort();
      await more;
      const got = sseMessages(text).map((m) => m.method);
      assert.deepEqual(got, ['notifications/prompts/list_changed']);
    } finally {
      await live.stop();
    }
  });
});

describe('completion is decided like the prompt it completes', () => {
  const complete = async (sid, context) => (await post(sid, {
    jsonrpc: '2.0', id: 77, method: 'completion/complete',
    params: { ref: { type: 'ref/prompt', name: 'guarded' }, argument: { name: 'file', value: 'ma' }, context: { arguments: context } },
  }, { accept: 'application/json' })).json();

  it("runs the policy's check with the context's arguments, audits it, and refuses what the check refuses", async () => {
    const sid = await open();
    const ok = await complete(sid, { project: 'open' });
    assert.deepEqual(ok.result.completion.values, ['ma-a.c', 'ma-b.c'], JSON.stringify(ok));
    const no = await complete(sid, { project: 'secret' });
    assert.equal(no.error.code, -32600, JSON.stringify(no));
    assert.equal(no.error.message, 'Access denied: not that project');
    // the audit lines are read from the server's stdout asynchronously
    const recs = await waitFor('two completion records', () => {
      const r = server.audit().filter((a) => a.method === 'completion/complete');
      return r.length >= 2 && r;
    }, 5000);
    // two workers write the audit log, so its order is not the order of the requests
    assert.deepEqual(recs.map((a) => [a.prompt, a.decision]).sort(), [['guarded', 'allow'], ['guarded', 'deny']]);
  });
});
