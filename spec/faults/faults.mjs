// faults.mjs — faults injected into a running luamcp, each followed by normal requests that
// must be served correctly, and every server stopped by SIGTERM with exit status 0 and no
// sanitizer report (harness stop()):
//
//   sse disconnects   a session's GET stream destroyed (then written to by a reload), streams
//                     churned; POSTs answered in SSE (progress) aborted while their tool waits
//                     for a backend; 1 MB SSE answers dropped after their first bytes; one call
//                     aborted then its session deleted; one left parked at SIGTERM
//   hanging backend   10 calls to a backend that accepts and never answers, limits.timeout_ms =
//                     1500: tool errors naming the timeout, other requests served meanwhile, the
//                     backend's connections closed
//   runaway handlers  coroutine.yield() outside mcp.http; an endless loop catching its errors
//   audit disk full   audit_file = "/dev/full"
//   SIGHUP burst      50 SIGHUPs in a tight loop under load: no failed request, a sane status
//   Lua OOM           limits.memory_mb = 8 and a tool building a huge table, on both workers
//   JWKS garbage      the jwks_uri answering 200 with garbage of several kinds mid-run: the last
//                     good keys keep serving; garbage from the start: 503, then recovery
//
// Durations are logged (t.diagnostic), never asserted; waits are bounded only so that a broken
// server cannot hang the test. Covered elsewhere, not repeated here: the IdP down mid-run
// (spec/auth_e2e/e2e.mjs, "IdP stopped mid-test"), the IdP down at start (same file), a JWKS
// endpoint answering HTTP 500 or a redirect (spec/auth/attacks.mjs, "keys fetched from a
// jwks_uri"), backend timeouts per request (spec/backend/e2e.mjs, "timeouts").
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test faults.mjs   (default ../../build/luamcp)

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSign, generateKeyPairSync, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { luamcpBin, rpc, startBackend, startLuamcp, tmpDir } from '../lib/harness.mjs';
import {
  call, callBody, connPerWorker, copyScripts, fixtureConfig, good, logLines, post, waitFor,
} from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-faults-');

const servers = [];
const closers = [];
after(async () => {
  for (const s of servers) if (!s.proc.exited()) await s.proc.stopProcess();
  for (const c of closers) await c();
});

async function start(name, extra = {}, opts) {
  const s = await startLuamcp(BIN, TMP, name, fixtureConfig(extra), opts);
  servers.push(s);
  return s;
}

// A backend whose /hold requests wait until release(); anything else answers at once.
async function holdingBackend() {
  let open = [];
  const b = await startBackend(async (rec) => {
    if (rec.url.startsWith('/hold')) await new Promise((resolve) => open.push(resolve));
    return { status: 200, body: { ok: true, url: rec.url } };
  });
  b.release = () => { const o = open; open = []; o.forEach((f) => f()); };
  b.held = () => open.length;
  closers.push(async () => { b.release(); await b.close(); });
  return b;
}

// ================================================================== 3. clients leaving SSE

const PROTO = '2025-11-25';

async function initialize(server) {
  const r = await post(server, JSON.stringify({
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: PROTO, capabilities: {}, clientInfo: { name: 'faults', version: '1' } },
  }));
  assert.equal(r.status, 200, r.text);
  const sid = r.headers['mcp-session-id'];
  assert.match(sid ?? '', /^[0-9a-f]{32}$/i, JSON.stringify(r.headers));
  const n = await post(server, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    { headers: { 'mcp-session-id': sid, 'mcp-protocol-version': PROTO } });
  assert.equal(n.status, 202, n.text);
  return sid;
}

const sessionHeaders = (sid, accept = 'application/json') =>
  ({ 'mcp-session-id': sid, 'mcp-protocol-version': PROTO, accept });

// A GET stream: resolves once ": stream open" arrived; .text() is what came so far, .ended
// tells whether the server ended it, .destroy() drops the socket without a word.
function openStream(server, sid) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: server.port, path: '/mcp', method: 'GET', agent: false,
      headers: sessionHeaders(sid, 'text/event-stream'),
    }, (res) => {
      let text = '';
      const st = { req, res, ended: false, text: () => text, destroy: () => req.destroy() };
      res.setEncoding('utf8');
      res.on('end', () => { st.ended = true; });
      res.on('error', () => {});
      res.on('data', (d) => {
        text += d;
        if (text.includes(': stream open')) resolve(st);
      });
      if (res.statusCode !== 200) reject(new Error(`GET stream: ${res.statusCode}`));
    });
    req.on('error', (e) => reject(e));
    req.end();
  });
}

async function sessionGood(server, sid) {
  const text = `s-${randomUUID()}`;
  const r = await post(server, callBody('echo', { text }), { headers: sessionHeaders(sid) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.result.structuredContent.text, text);
}

// A POST of progress_fetch on session sid that the client will abandon: resolves once the
// backend holds its request, with abort().
async function abandonedCall(server, sid, backend, accept) {
  const before = backend.held();
  const body = callBody('progress_fetch', { url: `${backend.url}/hold` }, { progressToken: randomUUID() });
  const req = http.request({
    host: '127.0.0.1', port: server.port, path: '/mcp', method: 'POST', agent: false,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...sessionHeaders(sid, accept) },
  });
  let answered = false;
  req.on('response', () => { answered = true; });
  req.on('error', () => {});
  req.end(body);
  await waitFor('the backend to hold the request', () => backend.held() > before, 10000);
  assert.equal(answered, false, 'answered before its backend did');
  return { abort: () => req.destroy() };
}

describe('3. clients that leave an SSE stream', () => {
  it('a GET stream destroyed, then written to by a reload; streams churned; the session keeps working, then is cleanly gone', async (t) => {
    const server = await start('sse-get', { stateless: false, scripts: copyScripts(path.join(TMP, 'sse-get')) });
    const scripts = path.join(TMP, 'sse-get', 'scripts');
    const sid = await initialize(server);

    // destroyed, then the reload's list_changed is written to it before the server noticed
    const a = await openStream(server, sid);
    a.destroy();
    writeFileSync(path.join(scripts, 'extra1.lua'),
      'mcp.tool { name = "extra1", description = "x", inputSchema = { type = "object" }, handler = function() return "1" end }\n');
    await waitFor('the reload', () => /reload \(files changed\): version 2, .*the tool list changed/.test(server.log));
    await sessionGood(server, sid);

    // 20 streams opened and dropped in a row, each replacing the one before
    for (let i = 0; i < 20; i++) (await openStream(server, sid)).destroy();
    await sessionGood(server, sid);

    // a live stream still gets the next notification
    const b = await openStream(server, sid);
    writeFileSync(path.join(scripts, 'extra2.lua'),
      'mcp.tool { name = "extra2", description = "x", inputSchema = { type = "object" }, handler = function() return "2" end }\n');
    await waitFor('list_changed on the live stream', () => b.text().includes('notifications/tools/list_changed'));
    const list = await post(server, JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }), { headers: sessionHeaders(sid) });
    assert.ok(list.body.result.tools.some((x) => x.name === 'extra2'));

    // DELETE ends the session and its stream; the session is then cleanly gone (404)
    const del = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port, path: '/mcp', method: 'DELETE', agent: false, headers: sessionHeaders(sid) },
        (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(del, 200);
    await waitFor('the server to end the stream of the deleted session', () => b.ended);
    const gone = await post(server, callBody('echo', { text: 'x' }), { headers: sessionHeaders(sid) });
    assert.equal(gone.status, 404, gone.text);
    assert.equal(gone.body.error.code, -32001);

    const sid2 = await initialize(server);
    await sessionGood(server, sid2);
    t.diagnostic(`warnings logged: ${logLines(server, / warning /).length}`);
    await server.stop();
  });

  it('POSTs answered in SSE aborted while their tool waits for a backend or mid-answer; one aborted then its session deleted; one left parked at SIGTERM', async () => {
    const backend = await holdingBackend();
    const server = await start('sse-post', { stateless: false, grace_s: 2 });
    const sid = await initialize(server);

    // the complete answer first: progress notifications then the result, in SSE
    backend.release();
    {
      const body = callBody('progress_fetch', { url: `${backend.url}/now` }, { progressToken: 'p-1' });
      const r = await post(server, body, { headers: sessionHeaders(sid, 'application/json, text/event-stream') });
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'], /^text\/event-stream/);
      const events = r.text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
      assert.deepEqual(events.map((e) => e.method ?? 'result'), ['notifications/progress', 'notifications/progress', 'result']);
      assert.equal(events[2].result.structuredContent.status, 200);
    }

    // six calls abandoned mid-flight (both Accept forms), then their backend answers
    const gone = [];
    for (const accept of ['application/json, text/event-stream', 'text/event-stream', 'application/json, text/event-stream',
      'text/event-stream', 'application/json, text/event-stream', 'text/event-stream']) {
      gone.push(await abandonedCall(server, sid, backend, accept));
    }
    gone.forEach((g) => g.abort());
    await sleep(200);
    backend.release();
    await sleep(200);
    for (let i = 0; i < 5; i++) await sessionGood(server, sid);
    {
      const r = await post(server, callBody('progress_fetch', { url: `${backend.url}/now` }, { progressToken: 7 }),
        { headers: sessionHeaders(sid, 'text/event-stream') });
      assert.equal(r.status, 200);
      assert.match(r.text, /"progressToken":7/);
      assert.match(r.text, /"status":200/);
    }

    // an SSE answer of about 1 MB dropped after its first bytes, five times
    for (let i = 0; i < 5; i++) {
      const body = callBody('progress_many', {}, { progressToken: `many-${i}` });
      const got = await new Promise((resolve, reject) => {
        const req = http.request({
          host: '127.0.0.1', port: server.port, path: '/mcp', method: 'POST', agent: false,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...sessionHeaders(sid, 'text/event-stream') },
        }, (res) => {
          res.once('data', (d) => { req.destroy(); resolve({ status: res.statusCode, first: String(d) }); });
          res.on('error', () => {});
        });
        req.on('error', (e) => { if (!req.destroyed) reject(e); });
        req.end(body);
      });
      assert.equal(got.status, 200);
      assert.match(got.first, /^event: message\ndata: \{"jsonrpc":"2.0","method":"notifications\/progress"/);
    }
    await sessionGood(server, sid);
    {
      const r = await post(server, callBody('progress_many', {}, { progressToken: 'all' }), { headers: sessionHeaders(sid, 'text/event-stream') });
      assert.equal(r.status, 200);
      assert.equal(r.text.split('notifications/progress').length - 1, 1000);
      assert.match(r.text, /"text":"done"/);
    }

    // abandoned, then its session deleted while the call is parked, then the backend answers
    const orphan = await abandonedCall(server, sid, backend, 'application/json, text/event-stream');
    orphan.abort();
    const del = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port, path: '/mcp', method: 'DELETE', agent: false, headers: sessionHeaders(sid) },
        (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(del, 200);
    backend.release();
    await sleep(200);
    const after = await post(server, callBody('echo', { text: 'x' }), { headers: sessionHeaders(sid) });
    assert.equal(after.status, 404, 'the deleted session is cleanly gone');

    // a new session works; one more call abandoned and left parked when SIGTERM comes
    const sid2 = await initialize(server);
    await sessionGood(server, sid2);
    const parked = await abandonedCall(server, sid2, backend, 'text/event-stream');
    parked.abort();
    await sessionGood(server, sid2);
    await server.stop(); // grace_s = 2 for the parked call, then exit 0
    await waitFor('the parked call in the log', () => /worker \d: 1 requests still in flight after grace_s; closing them/.test(server.log), 5000);
  });
});

// ================================================================== 4. a backend that hangs

describe('4. a backend that accepts and never answers, limits.timeout_ms = 1500', () => {
  it('each call ends with a tool error naming the timeout; other requests are served meanwhile; the backend connections are closed', async (t) => {
    const sockets = new Set();
    let accepted = 0;
    const hang = net.createServer((s) => {
      accepted++;
      sockets.add(s);
      s.on('data', () => {}); // reads the request, never answers
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    });
    await new Promise((resolve) => hang.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => { sockets.forEach((s) => s.destroy()); hang.close(resolve); }));
    const ok = await holdingBackend();
    const server = await start('hang', { limits: { timeout_ms: 1500 } });
    const url = `http://127.0.0.1:${hang.address().port}/never`;

    let settled = 0;
    const t0 = Date.now();
    const hung = Array.from({ length: 10 }, () => call(server, 'fetch', { url }).finally(() => { settled++; }));
    await waitFor('the backend to receive 10 requests', () => accepted >= 10, 10000, 10);
    for (let i = 0; i < 5; i++) await good(server);
    assert.equal(settled, 0, 'the other requests were not served while the calls waited');
    t.diagnostic(`5 calls served in ${Date.now() - t0} ms while 10 waited on the hanging backend`);

    const results = await Promise.all(hung);
    t.diagnostic(`the hung calls ended after ${Date.now() - t0} ms`);
    for (const r of results) {
      assert.equal(r.isError, true, JSON.stringify(r));
      const m = r.content[0].text.match(/^timed out after (\d+) ms$/);
      assert.ok(m, r.content[0].text);
      assert.ok(Number(m[1]) <= 1500, `cut to the call's deadline: ${r.content[0].text}`);
    }
    await waitFor('luamcp to close its connections to the hanging backend', () => sockets.size === 0, 10000);
    assert.equal(accepted, 10, 'no retry');

    const r = await call(server, 'fetch', { url: `${ok.url}/fine` });
    assert.equal(r.structuredContent.status, 200);
    await good(server);
    await server.stop();
  });
});

// ================================================================== 5. runaway handlers

describe('5. handlers that never finish', () => {
  it('coroutine.yield() outside mcp.http is a tool error; an endless loop a budget error; each worker serves after both', async (t) => {
    const server = await start('runaway', { limits: { cpu_ms: 300 } });
    const pinned = await connPerWorker(server);
    for (const { conn, state } of pinned) {
      const y = await conn.call('yield_forever');
      assert.equal(y.isError, true, JSON.stringify(y));
      assert.equal(y.content.length, 1);
      assert.match(y.content[0].text, /^tool( 'yield_forever')? yielded outside mcp\.http, which is not supported$/);
      await conn.good();
      const l = await conn.call('loop_forever');
      assert.deepEqual(l, { content: [{ type: 'text', text: "tool 'loop_forever' exceeded its budget (cpu_ms=300, instructions=0)" }], isError: true });
      if (await conn.good() !== state) t.diagnostic('the worker serves from a new Lua state');
      conn.close();
    }
    await waitFor('the budget errors in the log', () => logLines(server, /warning tool loop_forever exceeded its budget \(cpu_ms=300/).length === 2);
    for (let i = 0; i < 5; i++) await good(server);
    await server.stop();
  });
});

// ================================================================== 6. the audit log's disk full

describe('6. audit_file = "/dev/full"', () => {
  it('requests are served; the failure is logged, rate-limited; nothing crashes', async (t) => {
    const server = await start('devfull', { audit_file: '/dev/full' });
    const t0 = Date.now();
    for (let i = 0; i < 30; i++) await good(server);
    const calls = await Promise.all(Array.from({ length: 30 }, () => good(server)));
    assert.equal(calls.length, 30);
    const lines = await waitFor('the complaint in the log',
      () => { const l = logLines(server, /audit: cannot write records/); return l.length ? l : null; });
    const elapsed = Date.now() - t0;
    assert.match(lines[0], /error audit: cannot write records \(No space left on device\); 1 writes lost so far$/);
    // at most one complaint per 10 s
    assert.ok(lines.length <= 1 + Math.floor(elapsed / 10000), `${lines.length} complaints in ${elapsed} ms:\n${lines.join('\n')}`);
    t.diagnostic(`${lines.length} complaint(s) for 60 calls in ${elapsed} ms`);
    assert.equal(server.out, '', 'nothing went to standard output instead');
    const h = await fetch(`${server.base}/healthz`);
    assert.equal(h.status, 200);
    await server.stop();
  });
});

// ================================================================== 7. a burst of SIGHUPs

describe('7. 50 SIGHUPs in a tight loop under load', () => {
  it('zero failed requests; luamcp status shows a sane state; the server serves and still reloads', async (t) => {
    const admin = path.join(TMP, 'sighup-admin.sock');
    const scripts = copyScripts(path.join(TMP, 'sighup'));
    const server = await start('sighup', { admin_socket: admin, scripts });
    const status = () => new Promise((resolve, reject) => {
      execFile(BIN, ['status', '--admin-socket', admin], { timeout: 10000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`luamcp status: ${err.message} ${stdout} ${stderr}`));
        else resolve(JSON.parse(stdout));
      });
    });
    assert.equal((await status()).reloads, 0);

    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const failures = [];
    let served = 0;
    let loading = true;
    const loop = async () => {
      while (loading) {
        const text = `l-${randomUUID()}`;
        try {
          const r = await post(server, callBody('echo', { text }), { agent });
          if (r.status === 200 && r.body?.result?.structuredContent?.text === text) served++;
          else failures.push(`${r.status} ${r.text}`);
        } catch (e) {
          failures.push(String(e));
        }
      }
    };
    const loops = Array.from({ length: 4 }, loop);
    await waitFor('the load to start', () => served >= 20);
    for (let i = 0; i < 50; i++) process.kill(server.proc.pid, 'SIGHUP');
    // load on until the reloads are over: the status stays the same for 500 ms
    let st = await status();
    for (let same = 0, i = 0; same < 2 && i < 100; i++) {
      await sleep(250);
      const next = await status();
      same = JSON.stringify(next) === JSON.stringify(st) ? same + 1 : 0;
      st = next;
    }
    const before = served;
    await waitFor('more requests after the burst', () => served >= before + 20);
    loading = false;
    await Promise.all(loops);
    agent.destroy();
    t.diagnostic(`${served} requests served under the burst; ${st.reloads} reloads for 50 SIGHUPs`);
    assert.deepEqual(failures, []);

    assert.equal(st.ok, true);
    assert.equal(st.failures, 0);
    assert.equal(st.last_error, null);
    assert.equal(st.restart_needed, false);
    assert.ok(st.reloads >= 1 && st.reloads <= 50, `reloads ${st.reloads}`);
    assert.equal(st.version, st.reloads + 1);
    assert.equal(logLines(server, /reload \(SIGHUP\): version \d+/).length, st.reloads);
    const health = await (await fetch(`${server.base}/healthz`)).json();
    assert.equal(health.bundle.version, st.version);
    assert.equal(health.tools, 7);

    // and it still reloads: a new tool by SIGHUP
    writeFileSync(path.join(scripts, 'late.lua'),
      'mcp.tool { name = "late", description = "x", inputSchema = { type = "object" }, handler = function() return "late" end }\n');
    process.kill(server.proc.pid, 'SIGHUP');
    const late = await waitFor('the new tool', async () => {
      const r = await rpc(server, 'tools/call', { name: 'late', arguments: {} });
      return r.body.result?.content?.[0]?.text === 'late' ? r.body.result : null;
    });
    assert.equal(late.content[0].text, 'late');
    for (let i = 0; i < 5; i++) await good(server);
    await server.stop();
  });
});

// ================================================================== 8. a Lua state out of memory

describe('8. limits.memory_mb = 8 and a tool that builds a huge table', () => {
  it('"ran out of memory" on each worker, which then serves good calls', async (t) => {
    const server = await start('oom', { limits: { memory_mb: 8 } });
    const pinned = await connPerWorker(server);
    for (const { conn, state } of pinned) {
      for (let i = 0; i < 2; i++) {
        const r = await conn.call('hog');
        assert.deepEqual(r, { content: [{ type: 'text', text: "tool 'hog' ran out of memory (memory_mb=8)" }], isError: true });
        if (await conn.good() !== state) t.diagnostic('the worker serves from a new Lua state');
      }
      // and a call that needs a fair amount of memory still fits
      const big = 'y'.repeat(512 * 1024);
      const r = await conn.call('echo', { text: big });
      assert.equal(r.structuredContent.text, big);
      conn.close();
    }
    await waitFor('4 memory errors in the log', () => logLines(server, /warning tool hog ran out of memory \(memory_mb=8\)$/).length === 4);
    for (let i = 0; i < 12; i++) await good(server);
    await server.stop();
  });
});

// ================================================================== 9. a JWKS endpoint returning garbage

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function rsaKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}

function mint(key, claims) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url({ alg: 'RS256', typ: 'JWT', kid: key.kid });
  const body = b64url({ iat: now, exp: now + 600, sub: 'faults', client_id: 'faults', jti: randomUUID(), ...claims });
  const sig = createSign('RSA-SHA256').update(`${head}.${body}`).sign(key.privateKey).toString('base64url');
  return `${head}.${body}.${sig}`;
}

// The JWKS server: mode() picks what /jwks.json answers; hits counts the fetches.
async function jwksServer(keys) {
  const s = { mode: 'good', hits: 0, keys, served: [] };
  const garbage = {
    'not JSON': () => [200, 'this is not JSON at all'],
    'truncated JSON': () => [200, JSON.stringify({ keys: s.keys.map((k) => k.jwk) }).slice(0, 40)],
    'an array': () => [200, '[1, 2, 3]'],
    'no keys member': () => [200, '{"issuer": "nobody"}'],
    'an empty key list': () => [200, '{"keys": []}'],
    'a broken key': () => [200, JSON.stringify({ keys: [{ kty: 'RSA', kid: 'broken', n: '!!!', e: 'AQAB' }] })],
    'binary bytes': () => [200, Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37 + 11) % 256))],
    'over 1 MiB': () => [200, `{"keys": [], "pad": "${'x'.repeat(2 << 20)}"}`],
    'a body cut short': () => ['cut', '{"keys": ['],
  };
  s.garbage = Object.keys(garbage);
  const server = http.createServer((req, res) => {
    s.hits++;
    s.served.push(s.mode);
    req.resume();
    if (s.mode === 'good') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=3600' });
      res.end(JSON.stringify({ keys: s.keys.map((k) => k.jwk) }));
      return;
    }
    const [status, body] = garbage[s.mode]();
    if (status === 'cut') { // promises more than it sends, then hangs up
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '5000' });
      res.write(body);
      setTimeout(() => res.destroy(), 20);
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'max-age=3600' });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  s.url = `http://127.0.0.1:${server.address().port}`;
  closers.push(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }));
  return s;
}

describe('9. a JWKS endpoint that answers garbage', () => {
  const RESOURCE = 'http://127.0.0.1/faults/mcp';
  const authConfig = (jwks) => ({
    auth: {
      resource: RESOURCE,
      issuers: [{ issuer: jwks.url, jwks_uri: `${jwks.url}/jwks.json`, algorithms: ['RS256'] }],
      jwks: { refetch_s: 1, min_ttl_s: 1, timeout_ms: 2000 },
    },
  });

  it('mid-run, nine kinds of garbage: each refetch fails cleanly and the last good keys keep serving', async (t) => {
    const k1 = rsaKey('k1');
    const jwks = await jwksServer([k1]);
    const server = await start('jwks-garbage', authConfig(jwks));
    const token = (key) => mint(key, { iss: jwks.url, aud: RESOURCE });
    const known = token(k1);
    const echo = async (tok) => rpc(server, 'tools/call', { name: 'echo', arguments: { text: 'hi' } }, { token: tok });
    assert.equal((await echo(known)).status, 200);

    const stranger = rsaKey('unknown');
    for (const mode of jwks.garbage) {
      const mark = server.log.length;
      const served = jwks.served.length;
      jwks.mode = mode;
      // tokens of an unknown kid make luamcp refetch (at most once per refetch_s = 1; the
      // refresher's own retries after a failure count too): until it has fetched this garbage
      await waitFor(`${mode}: a refetch`, async () => {
        const r = await echo(token(stranger));
        assert.equal(r.status, 401, `${mode}: ${JSON.stringify(r.body)}`);
        assert.match(r.headers.get('www-authenticate'), /error="invalid_token"/);
        return jwks.served.slice(served).includes(mode);
      }, 20000, 1100);
      const warn = await waitFor(`${mode}: the failed fetch in the log`,
        () => logLines(server, /warning auth: .*\(still using the keys fetched before\)$/, mark)[0]);
      t.diagnostic(`${mode}: ${warn.replace(/^.*warning auth: /, '')}`);
      // the good keys still verify, new tokens of them too
      const ok = await echo(known);
      assert.equal(ok.status, 200, `${mode}: ${JSON.stringify(ok.body)}`);
      assert.equal(ok.body.result.structuredContent.text, 'hi');
      assert.equal((await echo(token(k1))).status, 200);
    }

    // good again, with a new key: a token of it is accepted after one refetch
    const k2 = rsaKey('k2');
    jwks.keys = [k1, k2];
    jwks.mode = 'good';
    await waitFor('a token of the new key to be accepted', async () => {
      const r = await echo(token(k2));
      assert.ok(r.status === 200 || r.status === 401, JSON.stringify(r.body));
      return r.status === 200;
    }, 20000, 1100);
    assert.equal((await echo(known)).status, 200);
    await server.stop();
  });

  it('garbage from the start: 503 without keys, then the keys are picked up once the endpoint is fixed', async (t) => {
    const k1 = rsaKey('k1');
    const jwks = await jwksServer([k1]);
    jwks.mode = 'not JSON';
    const server = await start('jwks-garbage-start', authConfig(jwks));
    const tok = mint(k1, { iss: jwks.url, aud: RESOURCE });
    const r = await rpc(server, 'tools/call', { name: 'echo', arguments: { text: 'hi' } }, { token: tok });
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.error.message, "The authorization server's keys are unavailable");
    await waitFor('the unusable JWKS in the log', () => /the JWKS of http:\/\/127\.0\.0\.1:\d+ is unusable/.test(server.log));
    jwks.mode = 'good';
    const t0 = Date.now();
    await waitFor('the keys to be loaded', () => /auth: 1 keys of http:\/\/127\.0\.0\.1:\d+ loaded/.test(server.log), 30000, 50);
    t.diagnostic(`keys loaded ${Date.now() - t0} ms after the endpoint was fixed`);
    const ok = await rpc(server, 'tools/call', { name: 'echo', arguments: { text: 'hi' } }, { token: tok });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    await server.stop();
  });
});
