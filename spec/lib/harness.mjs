// harness.mjs — what the Node end-to-end tests share: child processes that are always
// stopped, the test IdP (spec/idp), luamcp started from a config object on port 0, a tiny
// recording backend, and JSON-RPC over HTTP by hand. Built-ins only.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const IDP_JS = path.join(HERE, '..', 'idp', 'idp.mjs');

// The binary under test: LUAMCP_BIN, else the plain build.
export function luamcpBin(from) {
  const bin = path.resolve(from, process.env.LUAMCP_BIN || '../../build/luamcp');
  if (!existsSync(bin)) throw new Error(`LUAMCP_BIN must name the luamcp binary (got '${bin}')`);
  return bin;
}

// A temporary directory removed at exit (kept when KEEP_TMP is set).
export function tmpDir(prefix) {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => {
    if (process.env.KEEP_TMP) console.error(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

const procs = new Set();
process.on('exit', () => { for (const p of procs) p.kill('SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));

// Tracks a child: .exit resolves to {code, signal}; .stopProcess([signal]) sends SIGTERM (or
// signal), then SIGKILL
// after 15 s (a server may be finishing calls for grace_s).
export function track(proc) {
  let exited = false;
  procs.add(proc);
  proc.exit = new Promise((resolve) => proc.on('exit', (code, signal) => {
    exited = true;
    procs.delete(proc);
    resolve({ code, signal });
  }));
  proc.exited = () => exited;
  proc.stopProcess = async (signal = 'SIGTERM') => {
    if (!exited) {
      proc.kill(signal);
      const done = await Promise.race([proc.exit.then(() => true), sleep(15000, false, { ref: false })]);
      if (!done) proc.kill('SIGKILL');
    }
    return proc.exit;
  };
  return proc;
}

// Every child still running, stopped (SIGTERM, then SIGKILL): for an after() hook.
export async function stopAll() {
  await Promise.all([...procs].map((p) => p.stopProcess()));
}

// A Node program that prints one JSON line when it is ready (the IdP, a mock): resolves with
// that line plus proc and stderr(). A start that stalls past 30 s is killed and tried once
// more: twice in CI (beside the sanitizer builds) an IdP stalled for a minute while generating
// its RSA key (its stderr logs its start-up phases, so the stall is on record).
export async function startReady(what, args, { cwd } = {}, attempts = 2) {
  const proc = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd }));
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  let stalled = false;
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stalled = true;
      reject(new Error(`${what} did not start in 30 s: ${err}`));
    }, 30000);
    proc.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try { resolve(JSON.parse(out.slice(0, nl))); } catch (e) { reject(e); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited (${code}): ${err}`)); });
  }).catch(async (e) => {
    if (!stalled || attempts <= 1) throw e;
    console.error(`${e.message}\n(killed; starting it again)`);
    await proc.stopProcess('SIGKILL');
    return null;
  });
  if (!ready)
    return startReady(what, args, { cwd }, attempts - 1);
  return { ...ready, proc, stderr: () => err };
}

// The test IdP (on port 0 unless told); .stop([signal]) stops it.
export async function startIdp(args = [], { port = 0 } = {}) {
  const idp = await startReady('the IdP', [IDP_JS, '--port', String(port), '--max-lifetime', '300', ...args]);
  return { ...idp, stop: (sig) => idp.proc.stopProcess(sig) };
}

// Polls fn (may be async) until it returns a truthy value, which it resolves with; fails after
// ms naming what it waited for.
export async function waitFor(what, fn, ms = 10000, every = 20) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

// The JSON-RPC messages in the text of SSE events (data lines joined per event).
export function sseMessages(text) {
  return text.split('\n\n').map((e) => e.split('\n').filter((l) => l.startsWith('data:'))
    .map((l) => l.slice(5).trim()).join('')).filter(Boolean).map((d) => JSON.parse(d));
}

// The messages of an SSE response as they come, kept in r: messages, done (resolves when the
// stream ends), ended, close(), next(pred, ms): the first message that matches, waiting for it.
export function readSse(res, ctl, r = {}) {
  Object.assign(r, { messages: [], ended: false, close: () => ctl.abort() });
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  r.done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        const cut = buf.lastIndexOf('\n\n');
        if (cut >= 0) {
          r.messages.push(...sseMessages(buf.slice(0, cut + 2)));
          buf = buf.slice(cut + 2);
        }
      }
    } catch { /* aborted by close() */ }
    r.ended = true;
  })();
  r.next = (pred, ms = 5000) => waitFor(`a matching message on the stream (got ${JSON.stringify(r.messages).slice(0, 2000)})`,
    () => r.messages.find(pred), ms);
  return r;
}

// A 2026-07-28 request to url: {status, body}, with the headers and _meta the era asks for
// (Mcp-Name from the body's name, uri or taskId; headers override them). caps: the client
// capabilities it declares. A response that is an event stream gives its last message.
export async function modernCall(url, method, params = {}, { token, caps = {}, headers = {}, id = 1, accept = 'application/json, text/event-stream' } = {}) {
  const h = { 'content-type': 'application/json', accept, 'mcp-protocol-version': '2026-07-28', 'mcp-method': method };
  if (token) h.authorization = `Bearer ${token}`;
  const name = method === 'resources/read' ? params.uri : method.startsWith('tasks/') ? params.taskId : params.name;
  if (typeof name === 'string') h['mcp-name'] = name;
  const res = await fetch(url, {
    method: 'POST', headers: { ...h, ...headers }, signal: AbortSignal.timeout(20000),
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': caps }, ...params } }),
  });
  const text = await res.text();
  const type = res.headers.get('content-type') || '';
  const body = type.startsWith('text/event-stream') ? sseMessages(text).at(-1) : (text ? JSON.parse(text) : null);
  return { status: res.status, body };
}

// A loopback port free right now.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// A Lua literal of a config value (ASCII strings, numbers, booleans, lists, tables).
export function lua(v) {
  if (typeof v === 'string') {
    assert.match(v, /^[\x20-\x7e]*$/, 'config strings must be printable ASCII');
    return JSON.stringify(v);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `{ ${v.map(lua).join(', ')} }`;
  return `{ ${Object.entries(v).map(([k, x]) => `${/^[A-Za-z_]\w*$/.test(k) ? k : `[${JSON.stringify(k)}]`} = ${lua(x)}`).join(', ')} }`;
}

// luamcp serving `config` (a config object; listen defaults to 127.0.0.1:0) from its own
// directory under tmp. Everything it prints is kept in .log (stderr) and .out (stdout: the
// audit lines). stop() asserts a clean exit: status 0, no sanitizer report.
let serverSeq = 0;
export async function startLuamcp(bin, tmp, name, config, { env = {}, args = [] } = {}) {
  const dir = path.join(tmp, `${name}-${++serverSeq}`);
  mkdirSync(dir);
  const conf = path.join(dir, 'luamcp.conf.lua');
  writeFileSync(conf, `return ${lua({ listen: '127.0.0.1:0', workers: 2, log_level: 'info', ...config })}\n`);
  const proc = track(spawn(bin, ['serve', '--config', conf, ...args], {
    cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
  }));
  const s = {
    name, dir, conf, proc, log: '', out: '',
    stop: async () => {
      const { code, signal } = await proc.stopProcess();
      writeFileSync(path.join(dir, 'server.log'), s.log);
      assert.equal(signal, null, `luamcp (${name}) died of ${signal}`);
      assert.equal(code, 0, `luamcp (${name}) exited with ${code}`);
      assert.doesNotMatch(s.log, /Sanitizer|runtime error:/, `luamcp (${name}):\n${s.log}`);
    },
    audit: () => s.out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)),
    // The server writes a log line before it answers, but its stderr is read asynchronously:
    // wait for the line (up to ms) rather than expect it with the answer.
    // (from: look only at what was logged after that many characters)
    waitLog: async (re, ms = 10000, from = 0) => {
      for (let waited = 0; !re.test(s.log.slice(from)) && waited < ms; waited += 20) await sleep(20);
      assert.match(s.log.slice(from), re);
    },
  };
  proc.stdout.on('data', (d) => { s.out += d; });
  proc.stderr.on('data', (d) => { s.log += d; });
  for (let i = 0; i < 800; i++) {
    const m = s.log.match(/listening on \S+ port (\d+),/);
    if (m) {
      s.port = Number(m[1]);
      s.base = `http://127.0.0.1:${s.port}`;
      s.url = `${s.base}/mcp`;
      return s;
    }
    if (proc.exited()) break;
    await sleep(25);
  }
  await proc.stopProcess();
  throw new Error(`luamcp (${name}) did not start; log:\n${s.log}`);
}

// A loopback HTTP backend: handler(req, body) returns {status, headers, body} (body: string or
// object sent as JSON). Every request is recorded in .requests ({method, url, headers, body}).
export async function startBackend(handler) {
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', async () => {
      const rec = { method: req.method, url: req.url, headers: req.headers, body };
      requests.push(rec);
      const out = (await handler(rec)) ?? { status: 200, body: {} };
      const text = typeof out.body === 'string' ? out.body : JSON.stringify(out.body ?? {});
      res.writeHead(out.status ?? 200, {
        'content-type': typeof out.body === 'string' ? 'text/plain' : 'application/json',
        ...(out.headers ?? {}),
      });
      res.end(text);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return { port, url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(r)) };
}

// One JSON-RPC request (stateless server); resolves with {status, headers, body}.
let nextId = 1;
export async function rpc(server, method, params, { token, headers = {} } = {}) {
  const msg = { jsonrpc: '2.0', id: nextId++, method, ...(params ? { params } : {}) };
  const h = { 'content-type': 'application/json', accept: 'application/json', ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetch(server.url, { method: 'POST', headers: h, body: JSON.stringify(msg), signal: AbortSignal.timeout(30000) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

// tools/call: the result object (asserting a 200 JSON-RPC result).
export async function callTool(server, name, args = {}, opts = {}) {
  const r = await rpc(server, 'tools/call', { name, arguments: args }, opts);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok(r.body.result, JSON.stringify(r.body));
  return r.body.result;
}

export function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

export function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

// A loopback issuer of RS256 tokens without an authorization server: .issuer (its URL, also
// the tokens' iss), .jwksUri, and .mint(claims) signing iat/exp (10 minutes), sub, client_id
// and a jti under the given claims. For tests whose subject is the token, not the IdP.
export async function startMintingIssuer() {
  const { createSign, generateKeyPairSync, randomUUID } = await import('node:crypto');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' };
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=3600' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const b64url = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return {
    issuer,
    jwksUri: `${issuer}/jwks.json`,
    mint(claims = {}) {
      const now = Math.floor(Date.now() / 1000);
      const input = `${b64url({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${b64url({
        iss: issuer, iat: now, exp: now + 600, sub: 'tester', client_id: 'tests', jti: randomUUID(), ...claims,
      })}`;
      return `${input}.${createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url')}`;
    },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
