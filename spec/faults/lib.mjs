// lib.mjs — what the fault tests share beyond spec/lib/harness.mjs: requests on a connection
// of their own (a fresh one, or one kept alive and so pinned to one worker), the config of a
// fixture server, and polling.

import assert from 'node:assert/strict';
import { cpSync, readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURES = path.join(HERE, 'fixtures');

// The fixture tools and the open policy, loopback backends allowed; auth off, stateless.
export function fixtureConfig(extra = {}) {
  return {
    scripts: path.join(FIXTURES, 'scripts'),
    policies: path.join(FIXTURES, 'policies'),
    auth: { enabled: false },
    stateless: true,
    egress: { allow: ['127.0.0.1'], allow_http: true, allow_private: ['127.0.0.1/32'] },
    ...extra,
  };
}

// A copy of the fixture scripts in dir/scripts (for tests that change them or reload them).
export function copyScripts(dir) {
  const to = path.join(dir, 'scripts');
  cpSync(path.join(FIXTURES, 'scripts'), to, { recursive: true });
  return to;
}

let nextId = 1;
export const callBody = (name, args = {}, meta) => JSON.stringify({
  jsonrpc: '2.0', id: nextId++, method: 'tools/call',
  params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
});

// One POST; agent false = a connection of its own. Resolves {status, headers, text, body,
// reused} (body: the parsed JSON when the answer is JSON).
export function post(server, body, { agent = false, headers = {}, timeoutMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: server.port, path: '/mcp', method: 'POST', agent,
      headers: {
        'content-type': 'application/json', accept: 'application/json',
        'content-length': Buffer.byteLength(body), ...headers,
      },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let parsed = null;
        if (/json/.test(res.headers['content-type'] ?? '')) {
          try { parsed = JSON.parse(text); } catch { /* left null: the caller asserts */ }
        }
        resolve({ status: res.statusCode, headers: res.headers, text, body: parsed, reused: req.reusedSocket });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

// tools/call on a connection of its own (or opts.agent): the CallToolResult, asserting a 200
// JSON-RPC result.
export async function call(server, name, args = {}, opts = {}) {
  const r = await post(server, callBody(name, args), opts);
  assert.equal(r.status, 200, r.text);
  assert.ok(r.body?.result, r.text);
  return r.body.result;
}

// A good call: echo answers its text, and says which Lua state (so which worker) ran it.
export async function good(server, opts = {}) {
  const text = `ok-${Math.random().toString(36).slice(2)}`;
  const res = await call(server, 'echo', { text }, opts);
  assert.equal(res.isError, undefined, JSON.stringify(res));
  assert.equal(res.structuredContent.text, text);
  return res.structuredContent.state;
}

// One keep-alive connection, so one worker: every request after the first must reuse it.
export class Conn {
  constructor(server) {
    this.server = server;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    this.used = 0;
  }

  async call(name, args = {}) {
    const r = await post(this.server, callBody(name, args), { agent: this.agent });
    if (this.used++ > 0) assert.ok(r.reused, 'the keep-alive connection was not reused');
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body?.result, r.text);
    return r.body.result;
  }

  async good() {
    const text = `ok-${Math.random().toString(36).slice(2)}`;
    const res = await this.call('echo', { text });
    assert.equal(res.isError, undefined, JSON.stringify(res));
    assert.equal(res.structuredContent.text, text);
    return res.structuredContent.state;
  }

  close() { this.agent.destroy(); }
}

// Keep-alive connections, one per worker: opens connections until `workers` distinct Lua
// states have answered. Resolves [{conn, state}].
export async function connPerWorker(server, workers = 2, tries = 64) {
  const found = new Map();
  for (let i = 0; i < tries && found.size < workers; i++) {
    const conn = new Conn(server);
    const state = await conn.good();
    if (found.has(state)) conn.close();
    else found.set(state, conn);
  }
  assert.equal(found.size, workers, `only ${found.size} workers answered in ${tries} connections`);
  return [...found].map(([state, conn]) => ({ state, conn }));
}

export { waitFor } from '../lib/harness.mjs';

// The descriptors a process holds that are sockets.
export function socketCount(pid) {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch { /* closed meanwhile */ }
  }
  return n;
}

// Lines of the server log matching re.
export const logLines = (server, re, from = 0) => server.log.slice(from).split('\n').filter((l) => re.test(l));
