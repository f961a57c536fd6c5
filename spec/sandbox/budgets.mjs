// Budgets no script can escape, end to end (issue 15): each attack runs as a tool call against
// a real server with one worker, so the request after it is served by the same worker. Each
// call must end within its budget plus slack with a clear error, the next call must be served
// normally, /healthz must answer, and SIGTERM must end the server cleanly. The loader too: a
// tool file whose top level never ends fails its reload in time, while `luamcp status`, later
// reloads and shutdown keep working.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';

import { modernCall, sseMessages } from '../lib/harness.mjs';
import { admin, health, makeHome, run, startServer } from '../reload/lib.mjs';

const CPU_MS = 300;
const SLACK_MS = 4000; // ASan on a shared 2-core machine
const ALLOW_ALL = 'mcp.policy { tool = "*", description = "every tool, to anyone (auth is off)" }\n' +
  'mcp.policy { prompt = "*", description = "every prompt" }\n';

const tool = (name, body, schema = '{ type = "object" }') =>
  `mcp.tool { name = ${JSON.stringify(name)}, description = "attack", inputSchema = ${schema}, ` +
  `handler = function(args, ctx) ${body} end }\n`;

// name -> [handler body, arguments]
const ATTACKS = {
  xpcall_handler: ['return tostring(xpcall(error, function() while true do end end))', {}],
  xpcall_retry: ['local function h() while true do pcall(function() while true do end end) end end ' +
    'while true do xpcall(function() while true do end end, h) end', {}],
  coroutine_wrap: ['local function deep(n) if n == 0 then while true do end end ' +
    'return coroutine.wrap(function() while true do pcall(deep, n - 1) end end)() end deep(3)', {}],
  rep_nothing: ['local s = string.rep("", math.maxinteger) while true do s = s .. "" end', {}],
  move_huge: ['table.move({}, 1, 1 << 50, 2) return "moved"', {}],
  // any caller: a tool that searches with the caller's pattern
  find_caller_pattern: ['return tostring(args.s:find(args.q))',
    { s: 'a'.repeat(30), q: 'a*'.repeat(30) + 'b' }],
};

// Results and notifications over limits.max_result_bytes (set to its default, 4 MiB, by name)
const OVERSIZED = {
  // one 1 MiB string referenced 200 times: a 200 MiB response before the bound
  big_result: 'local s = ("x"):rep(1 << 20) local t = {} for i = 1, 200 do t[i] = s end return { items = t }',
  big_text: 'return ("x"):rep(5 << 20)',
  big_structured: 'return mcp.result { structuredContent = { a = ("x"):rep(3 << 20) } }',
  big_elicit: 'ctx.elicit { message = ("x"):rep(5 << 20), requestedSchema = { type = "object", properties = {} } } return "asked"',
  big_progress: 'local m = ("x"):rep(1 << 20) for i = 1, 100 do ctx.progress(i, 100, m) end return "done"',
};

function home() {
  const scripts = { 'echo.lua': tool('echo', 'return "ok"') };
  for (const [name, body] of Object.entries(OVERSIZED)) scripts[`${name}.lua`] = tool(name, body);
  scripts['big_prompt.lua'] = 'mcp.prompt { name = "big_prompt", description = "200 MiB", handler = function() ' +
    'local s = ("x"):rep(1 << 20) local t = {} for i = 1, 200 do t[i] = s end return t end }\n';
  for (const [name, [body]] of Object.entries(ATTACKS)) scripts[`${name}.lua`] = tool(name, body);
  const h = makeHome('budgets', { scripts, policies: { 'all.lua': ALLOW_ALL }, conf: { workers: 1 } });
  const text = h.confText.replace('workers = 1,', `workers = 1,\n  limits = { cpu_ms = ${CPU_MS}, max_result_bytes = 4194304 },`);
  assert.notEqual(text, h.confText);
  fs.writeFileSync(h.conf, text);
  return h;
}

let id = 0;
async function call(s, name, args = {}, meta = undefined) {
  const t0 = Date.now();
  const res = await fetch(s.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) } }),
    signal: AbortSignal.timeout(60000),
  });
  const text = await res.text();
  const sse = (res.headers.get('content-type') || '').startsWith('text/event-stream');
  const messages = sse ? sseMessages(text) : [JSON.parse(text)];
  return { status: res.status, doc: messages.at(-1), messages, bytes: text.length, ms: Date.now() - t0 };
}

const servers = [];
after(async () => { for (const s of servers) await s.stop(); });

describe('budgets', () => {
  it('every attack ends in time with a clear error; the same worker serves the next call', async () => {
    const s = await startServer(home(), { stateless: true });
    servers.push(s);
    for (const [name, [, args]] of Object.entries(ATTACKS)) {
      const r = await call(s, name, args);
      assert.equal(r.status, 200, `${name}: ${JSON.stringify(r.doc)}`);
      const result = r.doc.result;
      assert.equal(result?.isError, true, `${name}: ${JSON.stringify(r.doc)}`);
      assert.match(result.content[0].text, /exceeded its budget|budget exceeded/, name);
      assert.ok(r.ms < CPU_MS + SLACK_MS, `${name} took ${r.ms} ms`);
      const next = await call(s, 'echo');
      assert.equal(next.doc.result?.content?.[0]?.text, 'ok', `after ${name}: ${JSON.stringify(next.doc)}`);
      await health(s); // asserts 200
    }
    await s.stopClean();
  });

  it('results and notifications stop at limits.max_result_bytes with a clear error', async () => {
    const s = await startServer(home(), { stateless: true });
    servers.push(s);
    for (const name of ['big_result', 'big_text', 'big_structured']) {
      const r = await call(s, name);
      assert.equal(r.status, 200, name);
      assert.equal(r.doc.result?.isError, true, `${name}: ${JSON.stringify(r.doc).slice(0, 300)}`);
      assert.match(r.doc.result.content[0].text, /larger than limits\.max_result_bytes/, name);
      assert.ok(r.bytes < 4096, `${name}: a ${r.bytes}-byte answer`);
      assert.ok(r.ms < CPU_MS + SLACK_MS, `${name} took ${r.ms} ms`);
      assert.equal((await call(s, 'echo')).doc.result?.content?.[0]?.text, 'ok');
    }
    // a request to the client (here an input request of a 2026-07-28 result) counts too
    const ask = await modernCall(s.url.href, 'tools/call', { name: 'big_elicit', arguments: {} }, { caps: { elicitation: {} } });
    assert.equal(ask.status, 200);
    assert.equal(ask.body.result?.isError, true, JSON.stringify(ask.body).slice(0, 300));
    assert.ok(JSON.stringify(ask.body).length < 4096);
    // a prompt's result too (its converter copies strings itself: refused before it is sent)
    const pr = await fetch(s.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'prompts/get', params: { name: 'big_prompt' } }),
    });
    const prText = await pr.text();
    assert.ok(prText.length < 4096, `a ${prText.length}-byte answer to prompts/get`);
    assert.match(prText, /larger than limits\.max_result_bytes/);
    const r = await call(s, 'big_progress', {}, { progressToken: 'p1' });
    assert.equal(r.doc.result?.isError, true, JSON.stringify(r.doc).slice(0, 300));
    assert.ok(r.bytes < (4 << 20) + 65536, `a ${r.bytes}-byte answer`);
    for (let i = 0; i < 250 && !/max_result_bytes/.test(s.log); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(s.log, /ctx\.progress: the call's notifications would pass limits\.max_result_bytes/);
    assert.match(s.log, /elicitation-1 must be .*larger than the size limit/);
    assert.equal((await call(s, 'echo')).doc.result?.content?.[0]?.text, 'ok');
    await health(s);
    await s.stopClean();
  });

  it('luamcp check refuses a schema pattern that is not regular, and says why', async () => {
    const h = home();
    fs.writeFileSync(path.join(h.scripts, 'backref.lua'),
      tool('backref', 'return "x"', '{ type = "object", properties = { q = { type = "string", pattern = "^(a*)*\\\\1$" } } }'));
    const r = await run(['check', '--config', h.conf]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stdout + r.stderr, /backref\.lua.*pattern: the back-reference \\1 is not allowed/);
    fs.writeFileSync(path.join(h.scripts, 'backref.lua'),
      tool('backref', 'return "x"', '{ type = "object", properties = { q = { type = "string", pattern = "^(a{1,100}){1,100}$" } } }'));
    const r2 = await run(['check', '--config', h.conf]);
    assert.notEqual(r2.code, 0, r2.stdout);
    assert.match(r2.stdout + r2.stderr, /counted repetitions expand to more than 2000 atoms/);
  });

  it('a configuration file is bounded too: time and memory', async () => {
    const h = home();
    for (const [code, why] of [
      ['local s = "x" for i = 1, 40 do s = s .. s end', /uses more than 64 MiB of memory/],
      ['while true do end', /runs too long/],
    ]) {
      fs.writeFileSync(h.conf, `${code}\n${h.confText}`);
      const t0 = Date.now();
      const r = await run(['check', '--config', h.conf]);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stdout + r.stderr, why);
      assert.ok(Date.now() - t0 < 20000, `check took ${Date.now() - t0} ms`);
    }
  });

  it('a tool file whose top level never ends fails its reload in time; status, reloads and SIGTERM still work', async () => {
    const h = home();
    const s = await startServer(h, { stateless: true });
    servers.push(s);
    const bad = path.join(h.scripts, 'stuck.lua');
    for (const top of [
      'xpcall(error, function() while true do end end)',
      'local s = ("a"):rep(40) s:find(("a*"):rep(40) .. "b")',
      'table.move({}, 1, 1 << 50, 2)',
      'while true do pcall(function() while true do end end) end',
    ]) {
      fs.writeFileSync(bad, `${top}\n${tool('stuck', 'return "never"')}`);
      const t0 = Date.now();
      const st = await admin(h.admin, 'reload');
      const ms = Date.now() - t0;
      assert.equal(st.ok, false, `${top}: ${JSON.stringify(st)}`);
      assert.match(JSON.stringify(st), /budget/, top);
      assert.ok(ms < CPU_MS * 2 + SLACK_MS, `the reload took ${ms} ms`); // two workers' bundles at most
      const status = await run(['status', '--admin-socket', h.admin]);
      assert.equal(status.code, 0, status.stderr);
      const next = await call(s, 'echo');
      assert.equal(next.doc.result?.content?.[0]?.text, 'ok');
      await health(s);
    }
    fs.writeFileSync(bad, tool('stuck', 'return "fixed"'));
    const st = await admin(h.admin, 'reload');
    assert.equal(st.ok, true, JSON.stringify(st));
    assert.equal((await call(s, 'stuck')).doc.result?.content?.[0]?.text, 'fixed');
    await s.stopClean();
  });
});
