// sdk_client.mjs — the official MCP TypeScript SDK (Client + StreamableHTTPClientTransport)
// against a real luamcp server: stateful with JSON responses, stateful with SSE responses
// (progress), stateless, and after terminateSession. Also: the shipped scripts/ tools are all
// visible to the SDK with their schemas intact.
//
// Run with: LUAMCP_BIN=... LUAMCP_FIXTURES=... LUAMCP_SOURCE_DIR=... node --test sdk_client.mjs

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { freePort } from '../../lib/harness.mjs';

const BIN = process.env.LUAMCP_BIN;
const FIX = process.env.LUAMCP_FIXTURES;
const SRC = process.env.LUAMCP_SOURCE_DIR;
if (!BIN || !existsSync(BIN)) throw new Error(`LUAMCP_BIN must name the luamcp binary (got '${BIN}')`);
if (!FIX || !existsSync(path.join(FIX, 'tools'))) throw new Error(`LUAMCP_FIXTURES must name spec/integration/fixtures (got '${FIX}')`);

const ALL_TOOLS = ['badresult', 'boom', 'echo', 'fail', 'hog', 'loop', 'nulls', 'progress', 'schema', 'structured'];
const ECHO_SCHEMA = { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] };
const SCHEMA_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', pattern: '^[a-z]+$' },
    mode: { type: 'string', enum: ['fast', 'slow'] },
    count: { type: 'integer', minimum: 1 },
    opts: {
      type: 'object',
      properties: { level: { type: 'integer', minimum: 0, maximum: 5 } },
      required: ['level'],
    },
    tags: { type: 'array', items: { type: 'string', minLength: 1 } },
  },
  required: ['name', 'mode'],
};
const STRUCTURED_OUTPUT = {
  type: 'object',
  properties: { answer: { type: 'integer' }, list: { type: 'array', items: { type: 'integer' } } },
  required: ['answer', 'list'],
};

// ------------------------------------------------------------------ server processes

const servers = new Set();
process.on('exit', () => {
  for (const s of servers) s.proc.kill('SIGKILL');
});


async function startServer(extraArgs, scriptsDir = path.join(FIX, 'tools')) {
  let lastLog = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const args = ['serve', '--listen', `127.0.0.1:${port}`, '--scripts', scriptsDir, ...extraArgs];
    const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const s = { proc, port, log: '', exited: false, url: new URL(`http://127.0.0.1:${port}/mcp`) };
    proc.stdout.on('data', (d) => { s.log += d; });
    proc.stderr.on('data', (d) => { s.log += d; });
    const exited = new Promise((resolve) => proc.on('exit', () => { s.exited = true; resolve(); }));
    s.stop = async () => {
      if (!s.exited) {
        proc.kill('SIGTERM');
        await Promise.race([exited, sleep(3000)]);
        if (!s.exited) proc.kill('SIGKILL');
        await exited;
      }
      servers.delete(s);
    };
    servers.add(s);
    for (let i = 0; i < 150 && !s.exited; i++) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        if (r.status === 200 && !s.exited) {
          s.health = await r.json();
          return s;
        }
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    lastLog = s.log;
    await s.stop();
  }
  throw new Error(`luamcp did not start (${BIN} ${extraArgs.join(' ')}); last log:\n${lastLog}`);
}

// ------------------------------------------------------------------ client plumbing

// A fetch that records every exchange: method, JSON-RPC method of the body, status, media type.
function recordingFetch(log) {
  return async (url, init = {}) => {
    const res = await fetch(url, init);
    let rpc;
    try { rpc = JSON.parse(init.body).method; } catch { rpc = undefined; }
    log.push({
      http: init.method ?? 'GET',
      rpc,
      status: res.status,
      type: (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase(),
    });
    return res;
  };
}

async function connect(server) {
  const exchanges = [];
  const errors = [];
  const transport = new StreamableHTTPClientTransport(server.url, { fetch: recordingFetch(exchanges) });
  const client = new Client({ name: 'luamcp-sdk-test', version: '1.0.0' });
  let closing = false;
  client.onerror = (e) => { if (!closing) errors.push(e); };
  await client.connect(transport);
  return {
    client, transport, exchanges, errors,
    close: async () => { closing = true; await client.close(); },
  };
}

async function waitFor(pred, what, ms = 5000) {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// All pages of tools/list through the SDK.
async function listAll(client) {
  const tools = [];
  let cursor;
  for (let page = 0; page < 100; page++) {
    const r = await client.listTools(cursor ? { cursor } : undefined);
    tools.push(...r.tools);
    if (!r.nextCursor) return tools;
    cursor = r.nextCursor;
  }
  assert.fail('tools/list never ended');
}

function exchangesFor(exchanges, rpc) {
  return exchanges.filter((e) => e.http === 'POST' && e.rpc === rpc);
}

// ------------------------------------------------------------------ shared checks
// Each registers its own named tests, so one failure never hides the others.

const CONF = ['--config', path.join(FIX, 'test.conf.lua')];
let statefulServer;
const stateful = async () => (statefulServer ??= await startServer(CONF));

after(async () => {
  for (const s of [...servers]) await s.stop();
});

// A describe() body gets its connection through this holder, filled by before().
function connectionFor(getServer) {
  const h = {};
  before(async () => { h.c = await connect(await getServer()); });
  after(async () => { await h.c?.close(); });
  return h;
}

function handshakeTests(h) {
  it('serverInfo is luamcp 0.1.0', () => {
    assert.deepEqual(h.c.client.getServerVersion(), { name: 'luamcp', version: '0.1.0' });
  });
  it('capabilities: tools, prompts, resources, completions; with sessions, list changes, subscriptions and logging', () => {
    const caps = h.c.client.getServerCapabilities();
    const sessions = !h.stateless; // a stateless server has no stream to say changes on
    assert.deepEqual(caps.tools, { listChanged: sessions }, 'capabilities.tools');
    assert.deepEqual(caps.prompts, { listChanged: sessions }, 'capabilities.prompts');
    assert.deepEqual(caps.resources, { subscribe: sessions, listChanged: sessions }, 'capabilities.resources');
    assert.deepEqual(caps.logging, sessions ? {} : undefined, 'capabilities.logging');
    assert.deepEqual(caps.completions, {}, 'capabilities.completions');
  });
  it('negotiated protocol version is 2025-11-25', () => {
    assert.equal(h.c.transport.protocolVersion, '2025-11-25');
  });
  it('ping -> {}', async () => {
    assert.deepEqual(await h.c.client.ping(), {});
  });
}

function toolListTests(h) {
  it('tools/list: every fixture tool exactly once, schemas intact', async () => {
    const tools = await listAll(h.c.client);
    assert.deepEqual(tools.map((t) => t.name).sort(), ALL_TOOLS, 'every fixture tool listed exactly once');
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    assert.deepEqual(byName.echo.inputSchema, ECHO_SCHEMA, 'echo inputSchema');
    assert.equal(byName.echo.title, 'Echo');
    assert.equal(byName.echo.description, 'Returns the text it is given');
    assert.deepEqual(byName.echo.annotations, { readOnlyHint: true });
    assert.deepEqual(byName.schema.inputSchema, SCHEMA_SCHEMA, 'schema inputSchema');
    assert.deepEqual(byName.structured.outputSchema, STRUCTURED_OUTPUT, 'structured outputSchema');
    assert.deepEqual(byName.nulls.inputSchema, { type: 'object' }, 'nulls inputSchema');
    for (const t of tools) {
      assert.equal(typeof t.description, 'string', `${t.name}.description`);
      assert.equal(t.inputSchema.type, 'object', `${t.name}.inputSchema.type`);
    }
  });
}

function plainCallTests(h) {
  it('tools/call echo', async () => {
    const r = await h.c.client.callTool({ name: 'echo', arguments: { text: 'hello from the SDK' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'hello from the SDK' }]);
    assert.notEqual(r.isError, true);
  });
  it('tools/call structured (validated by the SDK against the outputSchema)', async () => {
    // listTools first, so the SDK knows the outputSchema and checks structuredContent with it
    await listAll(h.c.client);
    const r = await h.c.client.callTool({ name: 'structured', arguments: {} });
    assert.deepEqual(r.structuredContent, { answer: 42, list: [1, 2, 3] });
    assert.equal(r.content.length, 1);
    assert.equal(r.content[0].type, 'text');
    assert.deepEqual(JSON.parse(r.content[0].text), { answer: 42, list: [1, 2, 3] });
    assert.notEqual(r.isError, true);
  });
  it('tools/call fail -> isError "nope"', async () => {
    const r = await h.c.client.callTool({ name: 'fail', arguments: {} });
    assert.equal(r.isError, true);
    assert.deepEqual(r.content, [{ type: 'text', text: 'nope' }]);
  });
  it('tools/call with a schema violation -> isError "Invalid arguments: $.mode: ..."', async () => {
    const r = await h.c.client.callTool({ name: 'schema', arguments: { name: 'abc', mode: 'medium' } });
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /^Invalid arguments: \$\.mode: /);
  });
}

async function progressCall(c) {
  const seen = [];
  const r = await c.client.callTool({ name: 'progress', arguments: {} }, undefined, {
    onprogress: (p) => seen.push(p),
  });
  assert.deepEqual(r.content, [{ type: 'text', text: 'ok' }]);
  assert.notEqual(r.isError, true);
  assert.deepEqual(seen, [
    { progress: 1, total: 2, message: 'half' },
    { progress: 2, total: 2, message: 'done' },
  ], 'onprogress must receive both notifications, in order, before the result');
}

function noErrorsTest(h) {
  it('the client saw no transport errors', () => {
    assert.deepEqual(h.c.errors.map(String), []);
  });
}

function assertMediaTypes(exchanges, rpc, want) {
  const ex = exchangesFor(exchanges, rpc);
  assert.ok(ex.length > 0, `no ${rpc} request was recorded`);
  for (const e of ex) {
    assert.equal(e.status, 200, `${rpc}: HTTP status`);
    assert.equal(e.type, want, `${rpc}: response media type`);
  }
}

// ------------------------------------------------------------------ the four ways

describe('stateful server, JSON responses', () => {
  const h = connectionFor(stateful);
  it('the session id is 32 hex chars', () => {
    assert.match(h.c.transport.sessionId ?? '', /^[0-9a-fA-F]{32}$/);
  });
  handshakeTests(h);
  toolListTests(h);
  plainCallTests(h);
  it('tools/call progress without onprogress (no token) -> result "ok"', async () => {
    const r = await h.c.client.callTool({ name: 'progress', arguments: {} });
    assert.deepEqual(r.content, [{ type: 'text', text: 'ok' }]);
  });
  it('every request was answered as application/json', () => {
    for (const rpc of ['initialize', 'ping', 'tools/list', 'tools/call']) {
      assertMediaTypes(h.c.exchanges, rpc, 'application/json');
    }
  });
  it('notifications/initialized -> 202', () => {
    const init = exchangesFor(h.c.exchanges, 'notifications/initialized');
    assert.deepEqual(init.map((e) => e.status), [202]);
  });
  it('the SDK GET stream is accepted (200 text/event-stream)', async () => {
    await waitFor(() => h.c.exchanges.some((e) => e.http === 'GET'), 'the SDK GET stream');
    const get = h.c.exchanges.find((e) => e.http === 'GET');
    assert.deepEqual([get.status, get.type], [200, 'text/event-stream']);
  });
  noErrorsTest(h);
});

describe('stateful server, SSE responses (progress)', () => {
  const h = connectionFor(stateful);
  it('progress: onprogress gets 1/2 "half" then 2/2 "done", result "ok"', async () => {
    await progressCall(h.c);
  });
  it('progress again on the same session', async () => {
    await progressCall(h.c);
  });
  it('both progress calls were answered as SSE', () => {
    const calls = exchangesFor(h.c.exchanges, 'tools/call');
    assert.deepEqual(calls.map((e) => [e.status, e.type]),
      [[200, 'text/event-stream'], [200, 'text/event-stream']]);
  });
  plainCallTests(h);
  it('calls without notifications stay application/json', () => {
    const calls = exchangesFor(h.c.exchanges, 'tools/call').slice(2);
    assert.ok(calls.length >= 4);
    assert.deepEqual(calls.map((e) => e.type), calls.map(() => 'application/json'));
  });
  noErrorsTest(h);
});

describe('stateless server (--stateless)', () => {
  const h = connectionFor(() => startServer(['--stateless', ...CONF]));
  h.stateless = true;
  it('no session id is issued', () => {
    assert.equal(h.c.transport.sessionId, undefined);
  });
  handshakeTests(h);
  toolListTests(h);
  plainCallTests(h);
  it('progress over SSE', async () => {
    await progressCall(h.c);
    const last = exchangesFor(h.c.exchanges, 'tools/call').at(-1);
    assert.equal(last.type, 'text/event-stream');
  });
  it('the SDK GET probe gets 405 (no stream offered)', async () => {
    await waitFor(() => h.c.exchanges.some((e) => e.http === 'GET'), 'the SDK GET probe');
    assert.equal(h.c.exchanges.find((e) => e.http === 'GET').status, 405);
  });
  noErrorsTest(h);
});

describe('terminateSession', () => {
  const h = connectionFor(stateful);
  let sid;
  it('the session works before', async () => {
    const r = await h.c.client.callTool({ name: 'echo', arguments: { text: 'before' } });
    assert.deepEqual(r.content, [{ type: 'text', text: 'before' }]);
    sid = h.c.transport.sessionId;
    assert.match(sid ?? '', /^[0-9a-fA-F]{32}$/);
  });
  it('terminateSession sends DELETE -> 200 and forgets the session', async () => {
    await h.c.transport.terminateSession();
    assert.equal(h.c.transport.sessionId, undefined);
    const del = h.c.exchanges.filter((e) => e.http === 'DELETE');
    assert.deepEqual(del.map((e) => e.status), [200]);
  });
  it('the old session id -> 404 -32001 "Session not found"', async () => {
    const res = await fetch((await stateful()).url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sid,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'echo', arguments: { text: 'after' } } }),
    });
    assert.equal(res.status, 404);
    const body = await res.json();
    assert.equal(body.jsonrpc, '2.0');
    assert.deepEqual(body.error, { code: -32001, message: 'Session not found' });
  });
  it('a second DELETE of the old session -> 404', async () => {
    const res = await fetch((await stateful()).url, { method: 'DELETE', headers: { 'mcp-session-id': sid } });
    assert.equal(res.status, 404);
  });
  it('the SDK client, now without a session, is refused with 400', async () => {
    await assert.rejects(
      h.c.client.callTool({ name: 'echo', arguments: { text: 'after' } }),
      (e) => e.code === 400,
    );
  });
});

describe('shipped scripts/ through the SDK', () => {
  const dir = SRC ? path.join(SRC, 'scripts') : undefined;
  const shippedAny = !!dir && existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.lua'));
  it('every tool visible, schemas intact', async () => {
    assert.ok(shippedAny, 'scripts/ ships tools');
    const shipped = await startServer(CONF, dir);
    try {
      // The raw answer, page by page, straight from the server.
      const res = await fetch(shipped.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
      });
      assert.equal(res.status, 200, 'raw initialize');
      const sid = res.headers.get('mcp-session-id');
      const raw = [];
      let cursor;
      for (let page = 0; page < 100; page++) {
        const lr = await fetch(shipped.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json', 'mcp-session-id': sid },
          body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: cursor ? { cursor } : {} }),
        });
        const body = await lr.json();
        raw.push(...body.result.tools);
        cursor = body.result.nextCursor;
        if (!cursor) break;
      }
      assert.ok(raw.length > 0, 'the shipped scripts define tools');
      assert.equal(raw.length, shipped.health.tools, '/healthz tool count matches tools/list');

      const c = await connect(shipped);
      try {
        const viaSdk = await listAll(c.client);
        assert.deepEqual(viaSdk.map((t) => t.name).sort(), raw.map((t) => t.name).sort(), 'same tools through the SDK');
        const rawBy = Object.fromEntries(raw.map((x) => [x.name, x]));
        for (const tool of viaSdk) {
          assert.deepEqual(tool.inputSchema, rawBy[tool.name].inputSchema, `${tool.name}: inputSchema`);
          assert.deepEqual(tool.outputSchema, rawBy[tool.name].outputSchema, `${tool.name}: outputSchema`);
          assert.equal(tool.inputSchema.type, 'object', `${tool.name}: inputSchema.type`);
        }
      } finally {
        await c.close();
      }
    } finally {
      await shipped.stop();
    }
  });
});
