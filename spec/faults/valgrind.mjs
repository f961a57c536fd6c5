// valgrind.mjs — luamcp (the plain build: ASan and valgrind do not mix) under valgrind memcheck
// through one integration scenario, and valgrind's verdict: exit status 0, meaning no memory
// error and no definite leak (--error-exitcode=99 --errors-for-leak-kinds=definite).
//
// The scenario: auth on (RS256 tokens made here, keys from a JWKS file), a session: initialize,
// tools/list, tools/call of every shipped tool (scripts/), a tool calling a local backend with
// mcp.http, a tool out of memory, one over its budget, one yielding outside mcp.http, a refused
// token, a GET stream, a reload (SIGHUP) and calls on the new bundle, DELETE, then SIGTERM with
// the stream still open.
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test valgrind.mjs   (default ../../build/luamcp)

import { it } from 'node:test';
import assert from 'node:assert/strict';
import { createSign, generateKeyPairSync, randomUUID } from 'node:crypto';
import { chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { luamcpBin, startBackend, startLuamcp, tmpDir } from '../lib/harness.mjs';
import { waitFor } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-faults-vg-');
const VALGRIND = process.env.VALGRIND || 'valgrind';
const PROTO = '2025-11-25';
const RESOURCE = 'http://127.0.0.1/valgrind/mcp';
const ISSUER = 'https://issuer.valgrind.test';

const EXTRA = `-- tools of the valgrind scenario
mcp.tool { name = "vg_fetch", description = "GETs a URL with mcp.http",
  inputSchema = { type = "object", properties = { url = { type = "string" } }, required = { "url" } },
  handler = function(args, ctx)
    ctx.progress(1, 2, "fetching")
    local r, err = mcp.http.get(args.url, { headers = { ["x-call"] = "valgrind" } })
    if not r then return nil, err end
    return { status = r.status, json = r:json() }
  end }
mcp.tool { name = "vg_hog", description = "runs out of memory", inputSchema = { type = "object" },
  handler = function() local t = {} for i = 1, math.maxinteger do t[i] = string.rep("x", 65536) .. i end end }
mcp.tool { name = "vg_loop", description = "runs past its budget", inputSchema = { type = "object" },
  handler = function() while true do pcall(function() while true do end end) end end }
mcp.tool { name = "vg_yield", description = "yields outside mcp.http", inputSchema = { type = "object" },
  handler = function() coroutine.yield() end }
mcp.tool { name = "vg_error", description = "raises an error", inputSchema = { type = "object" },
  handler = function() error({ "a table as the error" }) end }
`;

// Each step is written to stderr as it starts (t.diagnostic only shows at the end): a run that
// once hung with no output names where it stopped.
const T0 = Date.now();
const step = (what) => process.stderr.write(`valgrind.mjs: +${Date.now() - T0} ms: ${what}\n`);

it('luamcp under valgrind memcheck: no memory error, no definite leak, exit status 0', { timeout: 240000 }, async (t) => {
  step('writing the wrapper and the home');
  // the binary behind a wrapper, so the harness starts it as usual
  const wrapper = path.join(TMP, 'luamcp-valgrind.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec "${VALGRIND}" --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no --num-callers=30 "${BIN}" "$@"\n`);
  chmodSync(wrapper, 0o755);

  const home = path.join(TMP, 'home');
  cpSync(path.join(HERE, '..', '..', 'scripts'), path.join(home, 'scripts'), { recursive: true });
  writeFileSync(path.join(home, 'scripts', 'vg_extra.lua'), EXTRA);
  mkdirSync(path.join(home, 'policies'));
  writeFileSync(path.join(home, 'policies', 'all.lua'), 'mcp.policy { tool = "*", scopes = { "mcp:tools" } }\n');
  step('generating the RSA key');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(path.join(home, 'jwks.json'), JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'vg', alg: 'RS256', use: 'sig' }] }));
  const mint = (claims = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const b = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const input = `${b({ alg: 'RS256', typ: 'JWT', kid: 'vg' })}.${b({ iss: ISSUER, aud: RESOURCE, sub: 'vg', client_id: 'vg', scope: 'mcp:tools', iat: now, exp: now + 900, jti: randomUUID(), ...claims })}`;
    return `${input}.${createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url')}`;
  };
  const token = mint();

  step('starting the backend');
  const backend = await startBackend((rec) => ({ status: 200, body: { seen: rec.headers['x-call'] } }));
  step('starting luamcp under valgrind');
  const t0 = Date.now();
  const server = await startLuamcp(wrapper, TMP, 'valgrind', {
    scripts: path.join(home, 'scripts'),
    policies: path.join(home, 'policies'),
    stateless: false,
    grace_s: 5,
    limits: { memory_mb: 8, cpu_ms: 2000 },
    auth: { resource: RESOURCE, issuers: [{ issuer: ISSUER, jwks_file: path.join(home, 'jwks.json') }] },
    egress: { allow: ['127.0.0.1'], allow_http: true, allow_private: ['127.0.0.1/32'] },
  });
  t.diagnostic(`started under valgrind in ${Date.now() - t0} ms`);
  step('started; the scenario');
  try {
    const send = (method, params, { sid, accept = 'application/json', tok = token, id = true } = {}) =>
      new Promise((resolve, reject) => {
        const body = JSON.stringify({ jsonrpc: '2.0', ...(id ? { id: randomUUID() } : {}), method, ...(params ? { params } : {}) });
        const req = http.request({
          host: '127.0.0.1', port: server.port, path: '/mcp', method: 'POST', agent: false,
          headers: {
            'content-type': 'application/json', accept, 'content-length': Buffer.byteLength(body),
            authorization: `Bearer ${tok}`, ...(sid ? { 'mcp-session-id': sid, 'mcp-protocol-version': PROTO } : {}),
          },
        }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => { text += d; });
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text, body: /json/.test(res.headers['content-type'] ?? '') ? JSON.parse(text) : null }));
        });
        req.setTimeout(60000, () => req.destroy(new Error('no answer in 60 s')));
        req.on('error', reject);
        req.end(body);
      });

    const init = await send('initialize', { protocolVersion: PROTO, capabilities: {}, clientInfo: { name: 'valgrind', version: '1' } });
    assert.equal(init.status, 200, init.text);
    const sid = init.headers['mcp-session-id'];
    assert.ok(sid);
    assert.equal((await send('notifications/initialized', null, { sid, id: false })).status, 202);

    const list = await send('tools/list', {}, { sid });
    const names = list.body.result.tools.map((x) => x.name).sort();
    assert.deepEqual(names, ['base64', 'calculate', 'current_time', 'echo', 'hash', 'vg_error', 'vg_fetch', 'vg_hog', 'vg_loop', 'vg_yield']);

    const tool = async (name, args = {}, opts = {}) => {
      const r = await send('tools/call', { name, arguments: args, ...(opts.meta ? { _meta: opts.meta } : {}) }, { sid, ...opts });
      assert.equal(r.status, 200, r.text);
      return r;
    };
    const result = async (name, args) => {
      const r = await tool(name, args);
      assert.ok(r.body.result, r.text);
      return r.body.result;
    };
    // every shipped tool
    assert.equal((await result('echo', { text: 'héllo' })).content[0].text, 'héllo');
    assert.deepEqual((await result('calculate', { expression: 'max(3, 2^5) % 7' })).structuredContent, { result: 4 });
    assert.equal((await result('calculate', { expression: '1/0' })).isError, true);
    assert.equal((await result('hash', { algorithm: 'sha256', text: 'abc' })).content[0].text,
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal((await result('base64', { mode: 'encode', text: 'valgrind' })).content[0].text, 'dmFsZ3JpbmQ=');
    assert.equal((await result('base64', { mode: 'decode', text: '!!' })).isError, true);
    assert.equal(typeof (await result('current_time', {})).structuredContent.unix, 'number');
    assert.equal((await result('echo', { text: 42 })).isError, true, 'arguments checked');
    // mcp.http, with progress in SSE
    const f = await tool('vg_fetch', { url: `${backend.url}/vg` }, { accept: 'application/json, text/event-stream', meta: { progressToken: 'vg' } });
    assert.match(f.text, /notifications\/progress/);
    assert.match(f.text, /"seen":"valgrind"/);
    // failures on the error paths
    assert.match((await result('vg_hog')).content[0].text, /ran out of memory/);
    assert.match((await result('vg_loop')).content[0].text, /exceeded its budget/);
    assert.match((await result('vg_yield')).content[0].text, /yielded outside mcp\.http/);
    assert.match((await result('vg_error')).content[0].text, /failed \(see server log\)/);
    // a refused token and an unknown tool
    const bad = await send('tools/list', {}, { sid, tok: mint({ aud: 'https://elsewhere.test/mcp' }) });
    assert.equal(bad.status, 401);
    assert.equal((await send('tools/call', { name: 'nope', arguments: {} }, { sid })).body.error.code, -32602);

    // a GET stream, then a reload, then the new bundle serves
    const stream = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port, path: '/mcp', method: 'GET', agent: false,
        headers: { accept: 'text/event-stream', authorization: `Bearer ${token}`, 'mcp-session-id': sid, 'mcp-protocol-version': PROTO } },
      (res) => { res.on('data', () => {}); res.on('error', () => {}); resolve(req); });
      req.on('error', reject);
      req.end();
    });
    server.proc.kill('SIGHUP');
    await waitFor('the reload', () => /reload \(SIGHUP\): version 2/.test(server.log), 60000, 100);
    assert.equal((await result('echo', { text: 'after reload' })).content[0].text, 'after reload');
    assert.match((await tool('vg_fetch', { url: `${backend.url}/vg2` })).text, /"status":200/);
    assert.equal(backend.requests.length, 2);

    // a second session, deleted
    const init2 = await send('initialize', { protocolVersion: PROTO, capabilities: {}, clientInfo: { name: 'valgrind', version: '1' } });
    const sid2 = init2.headers['mcp-session-id'];
    const del = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: server.port, path: '/mcp', method: 'DELETE', agent: false,
        headers: { authorization: `Bearer ${token}`, 'mcp-session-id': sid2, 'mcp-protocol-version': PROTO } },
      (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(del, 200);
    void stream; // left open: SIGTERM ends it

    // SIGTERM, and valgrind's verdict (its leak check takes a while: wait up to 90 s)
    step('SIGTERM');
    const t1 = Date.now();
    server.proc.kill('SIGTERM');
    const done = await Promise.race([server.proc.exit, sleep(90000, null, { ref: false })]);
    assert.ok(done, 'luamcp under valgrind did not exit within 90 s of SIGTERM');
    t.diagnostic(`exited ${Date.now() - t1} ms after SIGTERM, ${Date.now() - t0} ms in all`);
    const summary = server.log.split('\n').filter((l) => /ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|in use at exit/.test(l));
    for (const l of summary) t.diagnostic(l.replace(/^==\d+== +/, ''));
    assert.match(server.log, /Memcheck, a memory error detector/, 'luamcp ran under valgrind');
    assert.deepEqual(done, { code: 0, signal: null }, `valgrind's exit status (99: errors or definite leaks):\n${server.log.split('\n').filter((l) => l.startsWith('==')).join('\n')}`);
    assert.match(server.log, /ERROR SUMMARY: 0 errors from 0 contexts/);
  } finally {
    await server.stop(); // already exited: asserts status 0 and no sanitizer report
    await backend.close();
  }
});
