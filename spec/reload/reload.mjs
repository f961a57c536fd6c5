// reload.mjs — hot reload of tools and policies, end to end: a real luamcp (LUAMCP_BIN) in a
// temp directory of its own, its files edited the way editors save them, while real clients
// (the official MCP SDK over Streamable HTTP, or plain fetch) call it.
//
//   a. 100 saves of a tool file (80 good, 20 broken in five ways) under continuous load: zero
//      failed requests, each good version live within 2 s, each broken one refused and named
//      by file:line in /healthz while the last good version keeps serving
//   b. a policy tightened then loosened under load, with auth on (the dev issuer): 200 -> 403
//      insufficient_scope -> 200, no transport error, each switch live within 2 s
//   c. scripts/lib modules reload with the tools that require them; globals restart
//   d. notifications/tools/list_changed on the GET stream when the tool set changes, and only
//      then
//   e. SIGHUP, `luamcp reload`, `luamcp status`
//   f. an edited config file: restart_needed, and scripts keep reloading
//   g. RSS across 1,000 reloads
//   plus the edge cases of reload bugs found and fixed, each kept fixed by its reproducer.
//
// Run: LUAMCP_BIN=build/luamcp node --test spec/reload/reload.mjs

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  ASAN, VISIBLE_MS, admin, bundle, connect, makeHome, removeTempDir, rssKiB, run, save,
  startServer, textOf, toolSource, ToolListChangedNotificationSchema, waitFor,
} from './lib.mjs';

const ALLOW_ALL = 'mcp.policy { tool = "*", description = "every tool, to anyone (auth is off)" }\n';
const rand = () => Math.random().toString(36).slice(2, 8);

// Before saving again after a reload went live, the sequences below wait until the reloader
// thread is done with it (it serves the admin socket in the same loop, so its answer to
// "status" comes after). The server needs no such wait any more (the edge-case tests save
// during and right after reloads); the sequences keep it so each save maps to one version.
const settle = async (home) => {
  const st = await admin(home.admin, 'status');
  assert.equal(st.ok, true);
};

const servers = [];
async function serve(home, opts) {
  const s = await startServer(home, opts);
  s.stateless = !!opts?.stateless;
  servers.push(s);
  return s;
}
after(async () => {
  for (const s of servers) await s.stop();
});

// One POST on the given agent; resolves {status, headers, doc, text}.
function post(url, agent, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers },
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => {
        let doc = null;
        try { doc = JSON.parse(data); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, doc, text: doc?.result?.content?.[0]?.text });
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const callBody = (tool) => ({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: tool, arguments: {} } });

// One call through a fresh TCP connection (so, over many calls, through every worker: the
// workers share the port with SO_REUSEPORT and each connection stays on one of them). With
// sessions, an initialize first, on the same connection.
async function freshCall(s, tool = 'ver', headers = {}) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const h = { ...headers };
    if (!s.stateless) {
      const init = await post(s.url, agent, {
        jsonrpc: '2.0', id: 1, method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'fresh', version: '1' } },
      }, h);
      assert.equal(init.status, 200, `initialize: ${JSON.stringify(init.doc)}`);
      h['Mcp-Session-Id'] = init.headers['mcp-session-id'];
      h['MCP-Protocol-Version'] = '2025-11-25';
    }
    return await post(s.url, agent, callBody(tool), h);
  } finally {
    agent.destroy();
  }
}

// -------------------------------------------------------------------------------------------
describe('a. 100 saves of a tool file under continuous load (stateful, SDK clients)', () => {
  const CALLERS = 4;
  const STALE_MS = 500; // a call started this long after a version went live must not get an older one

  it('zero failed requests; good saves live within 2 s; broken saves refused with file:line, the last good version serving', async () => {
    const goodTexts = new Map(); // text -> ordinal of the good version
    let good = 0;
    const firstText = `v0-${rand()}`;
    goodTexts.set(firstText, 0);
    const home = makeHome('a', {
      scripts: { 'ver.lua': toolSource('ver', firstText), 'other.lua': toolSource('other', 'other') },
      policies: { 'all.lua': ALLOW_ALL },
    });
    const s = await serve(home);
    const verFile = path.join(home.scripts, 'ver.lua');
    const brokenPolicy = path.join(home.policies, 'zz_broken.lua');

    // the load: CALLERS SDK clients, each calling "ver" in a loop until the end
    const clients = [];
    for (let i = 0; i < CALLERS; i++) clients.push(await connect(s, { name: `caller-${i}` }));
    const poller = await connect(s, { name: 'poller' });
    const calls = []; // [startedAt, ordinal]
    const failures = [];
    let stop = false;
    const loops = clients.map(async (c) => {
      while (!stop && failures.length < 100 && !s.exited) {
        const t0 = Date.now();
        try {
          const r = await c.client.callTool({ name: 'ver', arguments: {} });
          const k = goodTexts.get(textOf(r));
          if (r.isError || k === undefined) failures.push(`${JSON.stringify(r)} (at ${t0})`);
          else calls.push([t0, k]);
        } catch (e) {
          failures.push(`${e} (at ${t0})`);
        }
      }
    });

    const visibleAt = [Date.now()]; // ordinal -> when the poller first saw it
    const visibleMs = []; // save -> live latency, for the report
    let current = firstText;
    const pollUntil = async (want, why) => {
      const t0 = Date.now();
      for (;;) {
        const r = await poller.client.callTool({ name: 'ver', arguments: {} });
        if (textOf(r) === want) return Date.now() - t0;
        if (Date.now() - t0 > VISIBLE_MS) assert.fail(`${why}: still '${textOf(r)}' after ${VISIBLE_MS} ms, not '${want}'\n${s.log.slice(-3000)}`);
      }
    };

    const styles = ['plain', 'rename', 'backup'];
    let broken = 0;
    let expectedReloads = 0;
    try {
      for (let i = 0; i < 100; i++) {
        const before = await bundle(s);
        if (i % 5 !== 2) {
          // a good save: a new version string
          good++;
          const text = `v${good}-${rand()}`;
          goodTexts.set(text, good);
          const style = styles[good % 3];
          save(verFile, toolSource('ver', text, { comment: `good save ${good} (${style})` }), style);
          visibleMs.push(await pollUntil(text, `good save ${good} (${style})`));
          visibleAt[good] = Date.now();
          current = text;
          expectedReloads++;
          await settle(home);
          continue;
        }
        // a broken save: five kinds, each four times
        const kind = broken++ % 5;
        const style = broken % 2 ? 'plain' : 'rename';
        let file = 'scripts/ver.lua', line = 3, what;
        if (kind === 0) {
          what = /'}' expected/;
          save(verFile, `-- broken ${broken}: a syntax error on line 3\nlocal x = 1\nmcp.tool { name = "ver" description = "x" }\n`, style);
        } else if (kind === 1) {
          what = new RegExp(`refusing to load ${broken}`);
          save(verFile, `-- broken ${broken}: error() while loading\nlocal x = 1\nerror("refusing to load ${broken}")\n`, style);
        } else if (kind === 2) {
          what = /duplicate tool name 'other'.*other\.lua:2/;
          save(verFile, toolSource('ver', `broken-${broken}`, { comment: `broken ${broken}: declares "other" too` }) +
            'mcp.tool { name = "other", description = "x", inputSchema = { type = "object" }, handler = function() return "broken" end }\n', style);
        } else if (kind === 3) {
          what = /inputSchema.*integr/;
          save(verFile, `-- broken ${broken}: an invalid inputSchema\n-- on line 3\n` +
            'mcp.tool { name = "ver", description = "x", inputSchema = { type = "object", properties = { n = { type = "integr" } } }, ' +
            `handler = function() return "broken-${broken}" end }\n`, style);
        } else {
          file = 'policies/zz_broken.lua';
          line = 2;
          what = /unknown field 'scopez'/;
          save(brokenPolicy, `-- broken policy ${broken}\nmcp.policy { tool = "ver", scopez = { "a" } }\n`, style);
        }
        const after = await waitFor(() => bundle(s), (b) => b.failures > before.failures,
          `bundle.failures to grow after broken save ${broken} (kind ${kind})`);
        assert.equal(after.failures, before.failures + 1, 'one failure per broken save');
        assert.equal(after.reloads, before.reloads, 'a refused reload is not counted as a reload');
        assert.equal(after.version, before.version, 'a refused reload publishes no version');
        assert.ok(after.last_error?.includes(`${file}:${line}:`), `last_error names ${file}:${line}: ${after.last_error}`);
        assert.match(after.last_error, what);
        for (let k = 0; k < 3; k++) {
          const r = await poller.client.callTool({ name: 'ver', arguments: {} });
          assert.equal(textOf(r), current, `after broken save ${broken} the last good version serves`);
        }
        if (kind === 4) {
          fs.rmSync(brokenPolicy);
          expectedReloads++;
          const ok = await waitFor(() => bundle(s), (b) => b.reloads > after.reloads, 'the reload after removing the broken policy');
          assert.equal(ok.last_error, null, 'a good reload clears last_error');
          assert.equal(ok.failures, after.failures);
          await settle(home);
        }
      }
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    assert.equal(good, 80);
    assert.equal(broken, 20);

    const final = await bundle(s);
    // the last good version serves, through every worker
    for (let k = 0; k < 20; k++) assert.equal((await freshCall(s)).text, current, 'the last good version serves at the end');
    for (const c of [...clients, poller]) await c.close();

    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} failed requests of ${calls.length + failures.length}`);
    assert.ok(calls.length > 1000, `the load made only ${calls.length} calls`);
    // no call got a version older than one that had been live for STALE_MS when it started
    const stale = [];
    let floor = 0;
    const sorted = calls.slice().sort((x, y) => x[0] - y[0]);
    for (const [t0, k] of sorted) {
      while (floor + 1 < visibleAt.length && visibleAt[floor + 1] + STALE_MS <= t0) floor++;
      if (k < floor) stale.push({ t0, got: k, live: floor });
    }
    assert.deepEqual(stale.slice(0, 5), [], `${stale.length} calls got a version older than the live one`);
    assert.equal(final.failures, 20, 'bundle.failures counts the 20 broken saves');
    assert.equal(final.reloads, expectedReloads, 'one reload per good save (and per removal of the broken policy): the debounce merges an editor\'s steps');
    assert.equal(final.version, 1 + expectedReloads);
    visibleMs.sort((x, y) => x - y);
    console.log(`a: ${calls.length} calls, 0 failed; a good save live after p50 ${visibleMs[40]} ms, max ${visibleMs[79]} ms`);
    await s.stopClean();
    removeTempDir(home.dir);
  });
});

// -------------------------------------------------------------------------------------------
describe('b. a policy tightened, then loosened, under load (auth on: the dev issuer)', () => {
  const CALLERS = 4;
  const STALE_MS = 500;

  it('200 -> 403 insufficient_scope, scope="b" -> 200; no transport error; each switch live within 2 s', async () => {
    const rule = (scope) => `-- ver needs "${scope}"\nmcp.policy { tool = "ver", scopes = { "${scope}" } }\n`;
    const home = makeHome('b', {
      conf: { auth: 'dev' },
      scripts: { 'ver.lua': toolSource('ver', 'ver-b') },
      policies: { 'rule.lua': rule('a') },
    });
    const s = await serve(home, { stateless: true, dev: true });
    const ruleFile = path.join(home.policies, 'rule.lua');
    const mint = async (scope) => {
      const r = await run(['token', '--config', home.conf, '--scope', scope], { cwd: home.dir });
      assert.equal(r.code, 0, `luamcp token: ${r.stderr}`);
      return r.stdout.trim();
    };
    const tokenA = await mint('a');
    const tokenB = await mint('b');
    const auth = (t) => ({ Authorization: `Bearer ${t}` });
    const metadataScopes = async () =>
      (await (await fetch(`${s.base}/.well-known/oauth-protected-resource/mcp`)).json()).scopes_supported;

    // what a call may answer: 200 with the tool's text, or 403 asking for "b"; nothing else
    const classify = (r) => {
      if (r.status === 200 && r.text === 'ver-b') return 200;
      const www = r.headers['www-authenticate'] ?? r.headers.get?.('www-authenticate') ?? '';
      if (r.status === 403 && /error="insufficient_scope"/.test(www) && /scope="b"/.test(www)) return 403;
      return `unexpected answer: ${r.status} ${www} ${JSON.stringify(r.doc)}`;
    };
    assert.equal(classify(await freshCall(s, 'ver', auth(tokenA))), 200, 'token "a" may call ver');
    assert.deepEqual(await metadataScopes(), ['a']);

    const calls = []; // [startedAt, 200 | 403]
    const failures = [];
    let stop = false;
    const loops = [...Array(CALLERS)].map(async () => {
      while (!stop && failures.length < 100) {
        const t0 = Date.now();
        try {
          const res = await fetch(s.url, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...auth(tokenA) },
            body: JSON.stringify(callBody('ver')),
          });
          const text = await res.text();
          let doc = null;
          try { doc = JSON.parse(text); } catch { /* reported below */ }
          const c = classify({ status: res.status, headers: res.headers, doc, text: doc?.result?.content?.[0]?.text });
          if (typeof c === 'string') failures.push(c);
          else calls.push([t0, c]);
        } catch (e) {
          failures.push(`transport error: ${e} ${e.cause ?? ''}`);
        }
      }
    });
    const switchTo = async (scope, want) => {
      save(ruleFile, rule(scope), 'rename');
      const t0 = Date.now();
      await waitFor(async () => classify(await freshCall(s, 'ver', auth(tokenA))), (c) => c === want,
        `a call with the "a" token to answer ${want} once ver needs "${scope}"`);
      return { savedAt: t0, liveAt: Date.now() };
    };
    let tighten, loosen;
    try {
      await sleep(300);
      tighten = await switchTo('b', 403);
      assert.deepEqual(await metadataScopes(), ['b'], 'scopes_supported follows the policies');
      assert.equal(classify(await freshCall(s, 'ver', auth(tokenB))), 200, 'a "b" token may call ver now');
      await sleep(700);
      loosen = await switchTo('a', 200);
      assert.deepEqual(await metadataScopes(), ['a']);
      assert.equal((await freshCall(s, 'ver', auth(tokenB))).status, 403, 'and the "b" token may not');
      await sleep(700);
    } finally {
      stop = true;
      await Promise.all(loops);
    }
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} failed calls`);
    const wrong = calls.filter(([t0, c]) =>
      (t0 < tighten.savedAt && c !== 200) ||
      (t0 >= tighten.liveAt + STALE_MS && t0 < loosen.savedAt && c !== 403) ||
      (t0 >= loosen.liveAt + STALE_MS && c !== 200));
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} calls got the previous policy's answer long after the switch`);
    const n403 = calls.filter(([, c]) => c === 403).length;
    assert.ok(n403 > 50 && calls.length - n403 > 50, `both answers were exercised (${calls.length - n403} x 200, ${n403} x 403)`);
    console.log(`b: ${calls.length} calls, 0 transport errors; tightened live after ${tighten.liveAt - tighten.savedAt} ms, loosened after ${loosen.liveAt - loosen.savedAt} ms`);
    await s.stopClean();
    removeTempDir(home.dir);
  });
});

// -------------------------------------------------------------------------------------------
describe('c. scripts/lib modules and globals', () => {
  it('a module in scripts/lib reloads with the tools that require it (the lib folder created after start)', async () => {
    const home = makeHome('c', {
      noLib: true,
      conf: { workers: 1 }, // one Lua state, so a global counter counts every call
      scripts: {
        'counter.lua': toolSource('counter', '', { body: 'count = (count or 0) + 1; return tostring(count)' }),
      },
      policies: { 'all.lua': ALLOW_ALL },
    });
    const s = await serve(home, { stateless: true });
    const c = await connect(s);
    const call = async (tool) => {
      const r = await c.client.callTool({ name: tool, arguments: {} });
      assert.notEqual(r.isError, true, `${tool}: ${JSON.stringify(r)}`);
      return textOf(r);
    };
    const helper = (answer, extra = '') =>
      `-- a pure-Lua module\nlocal M = {}\n${extra}function M.answer() return ${JSON.stringify(answer)} end\nreturn M\n`;

    // a global a script keeps persists between calls (one worker)...
    assert.deepEqual([await call('counter'), await call('counter'), await call('counter')], ['1', '2', '3']);

    // the lib folder and a tool requiring a module from it appear together
    fs.mkdirSync(home.lib);
    fs.writeFileSync(path.join(home.lib, 'helper.lua'), helper('helper-1'));
    save(path.join(home.scripts, 'uses.lua'), toolSource('uses', '', {
      body: 'return helper.answer()',
    }).replace('-- uses\n', '-- uses\nlocal helper = require "helper"\n'), 'rename');
    await waitFor(() => bundle(s), (b) => b.reloads >= 1 && b.last_error === null, 'the reload that brings "uses"');
    assert.equal(await call('uses'), 'helper-1');
    // ...and a reload resets it: every reload builds new Lua states
    assert.equal(await call('counter'), '1', 'a global restarts with each reload');
    assert.equal(await call('counter'), '2');
    await settle(home);

    // changing only the module changes the tool's answer
    for (let v = 2; v <= 4; v++) {
      save(path.join(home.lib, 'helper.lua'), helper(`helper-${v}`), v % 2 ? 'plain' : 'rename');
      await waitFor(() => call('uses'), (t) => t === `helper-${v}`, `the tool to answer helper-${v} after lib/helper.lua changed`);
      assert.equal(await call('counter'), '1', 'the counter restarted with the reload');
      await settle(home);
    }

    // a broken module refuses the reload, naming lib/helper.lua:line, and helper-4 stays
    const before = await bundle(s);
    save(path.join(home.lib, 'helper.lua'), helper('helper-5', 'error("no module today")\n'));
    const b = await waitFor(() => bundle(s), (x) => x.failures > before.failures, 'the refused reload of a broken module');
    assert.ok(b.last_error.includes('lib/helper.lua:3:'), `last_error names lib/helper.lua:3: ${b.last_error}`);
    assert.equal(await call('uses'), 'helper-4');
    assert.equal(await call('counter'), '2', 'a refused reload keeps the running states, globals and all');

    await c.close();
    await s.stopClean();
    removeTempDir(home.dir);
  });
});

// -------------------------------------------------------------------------------------------
describe('d. notifications/tools/list_changed on the GET stream', () => {
  it('adding or removing a tool notifies within 2 s; editing only a tool body does not', async () => {
    const home = makeHome('d', {
      scripts: { 'ver.lua': toolSource('ver', 'd-1') },
      policies: { 'all.lua': ALLOW_ALL },
    });
    const s = await serve(home);
    const c = await connect(s);
    const notes = [];
    c.client.setNotificationHandler(ToolListChangedNotificationSchema, () => { notes.push(Date.now()); });
    await waitFor(async () => c.exchanges.some((e) => e.http === 'GET' && e.status === 200), (x) => x,
      'the SDK to open its GET stream after initialize');
    await sleep(100); // the stream is attached once its headers are out; let the server finish

    const names = async () => (await c.client.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(await names(), ['ver']);

    // a new tool file
    const t0 = Date.now();
    save(path.join(home.scripts, 'added.lua'), toolSource('added', 'added'), 'rename');
    await waitFor(async () => notes.length, (n) => n >= 1, 'notifications/tools/list_changed after adding a tool');
    console.log(`d: list_changed ${notes[0] - t0} ms after the save`);
    assert.deepEqual(await names(), ['added', 'ver'], 'tools/list shows the new tool');
    assert.equal(textOf(await c.client.callTool({ name: 'added', arguments: {} })), 'added');
    await settle(home);
    await sleep(200);
    assert.equal(notes.length, 1, 'one notification for one change');

    // the body of a tool, same descriptor, same policies: no notification
    save(path.join(home.scripts, 'ver.lua'), toolSource('ver', 'd-2'));
    await waitFor(async () => textOf(await c.client.callTool({ name: 'ver', arguments: {} })), (t) => t === 'd-2',
      'the new body of ver');
    await sleep(1000);
    assert.equal(notes.length, 1, 'no notification when only a handler changed');

    // a changed descriptor notifies
    save(path.join(home.scripts, 'ver.lua'), toolSource('ver', 'd-3').replace('returns its version', 'a new description'));
    await waitFor(async () => notes.length, (n) => n >= 2, 'list_changed after a description changed');
    assert.equal((await c.client.listTools()).tools.find((t) => t.name === 'ver').description, 'a new description');
    await settle(home);

    // removing a tool notifies
    fs.rmSync(path.join(home.scripts, 'added.lua'));
    await waitFor(async () => notes.length, (n) => n >= 3, 'list_changed after removing a tool');
    assert.deepEqual(await names(), ['ver']);

    // and a refused reload never notifies
    await settle(home);
    save(path.join(home.scripts, 'broken.lua'), 'mcp.tool {\n');
    await waitFor(() => bundle(s), (b) => b.failures === 1, 'the refused reload');
    await sleep(500);
    assert.equal(notes.length, 3, 'no notification for a refused reload');
    assert.deepEqual(c.errors.map(String), [], 'the client saw no errors');
    await c.close();
    await s.stopClean();
    removeTempDir(home.dir);
  });
});

// -------------------------------------------------------------------------------------------
describe('e. SIGHUP, luamcp reload, luamcp status', () => {
  it('each reloads (or reports) through the admin socket; a broken file makes luamcp reload exit 1', async () => {
    const home = makeHome('e', {
      scripts: { 'ver.lua': toolSource('ver', 'e-1') },
      policies: { 'all.lua': ALLOW_ALL },
    });
    const s = await serve(home, { stateless: true });
    const cli = async (cmd, expectCode) => {
      const r = await run([cmd, '--config', home.conf], { cwd: home.dir });
      assert.equal(r.code, expectCode, `luamcp ${cmd} exit status (stdout ${r.stdout}, stderr ${r.stderr})`);
      return JSON.parse(r.stdout);
    };

    let st = await cli('status', 0);
    assert.equal(st.ok, true);
    assert.equal(st.version, 1);
    assert.equal(st.reloads, 0);
    assert.equal(st.failures, 0);
    assert.equal(st.last_error, null);
    assert.equal(st.restart_needed, false);
    assert.match(st.loaded_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // --admin-socket finds the same server, and /healthz shows the same bundle (not what is
    // switched off: that is for operators only)
    const byPath = await run(['status', '--admin-socket', home.admin]);
    assert.equal(byPath.code, 0);
    assert.deepEqual(JSON.parse(byPath.stdout), st);
    assert.deepEqual(st.switched_off, {});
    assert.deepEqual(st.tasks, { held: 0, running_or_waiting: 0 });
    const health = await bundle(s);
    assert.equal(health.switched_off, undefined);
    assert.equal(health.tasks, undefined);
    assert.equal(health.warnings, undefined, 'the warnings name files: for operators only');
    assert.deepEqual({ ...health, ok: true, switched_off: {}, tasks: st.tasks, warnings: st.warnings }, st);

    // SIGHUP
    fs.writeFileSync(path.join(home.scripts, 'ver.lua'), toolSource('ver', 'e-2')); // inotify too: wait for it
    await waitFor(() => bundle(s), (b) => b.version === 2, 'the reload of the save');
    await settle(home);
    s.proc.kill('SIGHUP');
    await waitFor(() => bundle(s), (b) => b.version === 3 && b.reloads === 2, 'the reload of SIGHUP');

    // luamcp reload: exit 0, the status with ok true and the new version
    st = await cli('reload', 0);
    assert.equal(st.ok, true);
    assert.equal(st.version, 4);
    assert.equal(st.reloads, 3);
    assert.equal(st.last_error, null);
    assert.equal((await freshCall(s)).text, 'e-2');
    st = await cli('status', 0);
    assert.equal(st.version, 4, 'status does not reload');

    // a broken file: the inotify reload and luamcp reload both refuse; exit 1, ok false, the error
    await settle(home);
    save(path.join(home.scripts, 'broken.lua'), '-- broken\nlocal = 1\n');
    await waitFor(() => bundle(s), (b) => b.failures === 1, 'the refused inotify reload');
    st = await cli('reload', 1);
    assert.equal(st.ok, false);
    assert.equal(st.version, 4, 'nothing was published');
    assert.equal(st.failures, 2);
    assert.ok(st.last_error.includes('scripts/broken.lua:2:'), `the error names broken.lua:2: ${st.last_error}`);
    assert.equal((await freshCall(s)).text, 'e-2', 'the running version serves');
    // SIGHUP with the broken file: refused too
    s.proc.kill('SIGHUP');
    await waitFor(() => bundle(s), (b) => b.failures === 3, 'the refused reload of SIGHUP');

    // the admin socket's own answer to an unknown command
    const unknown = await admin(home.admin, 'restart');
    assert.equal(unknown.ok, false);
    assert.match(unknown.error, /reload, status/);

    fs.rmSync(path.join(home.scripts, 'broken.lua'));
    await waitFor(() => bundle(s), (b) => b.version === 5 && b.last_error === null, 'the reload after removing the broken file');
    st = await cli('reload', 0);
    assert.equal(st.version, 6);

    // no server on that socket: exit 2 and a message
    const none = await run(['status', '--admin-socket', path.join(home.dir, 'nobody.sock')]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no server answers/);

    await s.stopClean();
    assert.equal(fs.existsSync(home.admin), false, 'the admin socket is removed at exit');
    removeTempDir(home.dir);
  });
});

// -------------------------------------------------------------------------------------------
describe('f. an edited configuration file', () => {
  it('sets restart_needed; scripts keep reloading', async () => {
    const home = makeHome('f', {
      scripts: { 'ver.lua': toolSource('ver', 'f-1') },
      policies: { 'all.lua': ALLOW_ALL },
    });
    const s = await serve(home, { stateless: true });
    assert.equal((await bundle(s)).restart_needed, false);
    const edited = home.confText.replace('  log_level = "notice",\n', '  log_level = "notice",\n  idle_timeout_s = 31, -- an edit\n');
    assert.notEqual(edited, home.confText);
    save(home.conf, edited, 'rename');
    const b = await waitFor(() => bundle(s), (x) => x.restart_needed === true, 'restart_needed after the config file changed');
    assert.equal(b.reloads, 0, 'a config edit is not a reload');
    assert.equal(b.failures, 0);
    for (let v = 2; v <= 3; v++) {
      save(path.join(home.scripts, 'ver.lua'), toolSource('ver', `f-${v}`));
      await waitFor(async () => (await freshCall(s)).text, (t) => t === `f-${v}`, `f-${v} live`);
      await settle(home);
    }
    const end = await bundle(s);
    assert.equal(end.restart_needed, true, 'restart_needed stays');
    assert.equal(end.reloads, 2);
    assert.equal((await run(['status', '--config', home.conf])).stdout.includes('"restart_needed": true'), true);
    await s.stopClean();
    removeTempDir(home.dir);
  });
});

// -------------------------------------------------------------------------------------------
describe('g. memory across reloads (stateless)', () => {
  // 1,000 reloads in both variants (about 11 s plain, 15 s under ASan). The plain build bounds
  // the growth of VmRSS; under ASan+UBSan RSS says nothing (freed memory waits in ASan's
  // quarantine, up to 256 MiB), so that variant relies on ASan for use-after-free across
  // reloads and on LeakSanitizer at exit (stopClean: exit status 0), and only prints RSS.
  const RELOADS = 1000;
  const WARM = 100;

  it(`${RELOADS} reloads through the admin socket under a light load: VmRSS grows < 2 MiB after the first ${WARM}`, async () => {
    const home = makeHome('g', {
      scripts: { 'ver.lua': toolSource('ver', 'g'), 'other.lua': toolSource('other', 'other') },
      lib: { 'helper.lua': 'local M = {}\nfunction M.x() return 1 end\nreturn M\n' },
      policies: { 'all.lua': ALLOW_ALL },
    });
    const s = await serve(home, { stateless: true });
    let stop = false, calls = 0;
    const failures = [];
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const light = (async () => {
      while (!stop && failures.length < 10) {
        try {
          const r = await post(s.url, agent, callBody('ver'));
          if (r.text !== 'g') failures.push(JSON.stringify(r.doc));
          else calls++;
        } catch (e) { failures.push(String(e)); }
        await sleep(2);
      }
    })();
    let warm = 0, end = 0;
    const t0 = Date.now();
    try {
      for (let i = 1; i <= RELOADS; i++) {
        const st = await admin(home.admin, 'reload');
        assert.equal(st.ok, true, `reload ${i}: ${JSON.stringify(st)}`);
        assert.equal(st.version, i + 1);
        if (i === WARM) { await sleep(200); warm = rssKiB(s.proc.pid); }
      }
      await sleep(200);
      end = rssKiB(s.proc.pid);
    } finally {
      stop = true;
      await light;
      agent.destroy();
    }
    const secs = (Date.now() - t0) / 1000;
    assert.deepEqual(failures, [], 'the light client saw no failure');
    assert.ok(calls > 100, `the light client made only ${calls} calls`);
    console.log(`g: ${RELOADS} reloads in ${secs.toFixed(1)} s; VmRSS after ${WARM}: ${warm} KiB, after ${RELOADS}: ${end} KiB (${end - warm >= 0 ? '+' : ''}${end - warm} KiB); ${calls} calls`);
    if (!ASAN) assert.ok(end - warm < 2048, `VmRSS grew by ${end - warm} KiB between reload ${WARM} and ${RELOADS}`);
    await s.stopClean();
    removeTempDir(home.dir);
  });
});

// -------------------------------------------------------------------------------------------
// Reload bugs this suite found, each kept fixed by its reproducer.
describe('reload edge cases', () => {
  it('a FIFO, a symlink to /dev/zero or out of the tree, a directory named x.lua: skipped with a warning, nothing blocks', async () => {
    const home = makeHome('tree', { scripts: { 'ver.lua': toolSource('ver', 't-0') }, policies: { 'all.lua': ALLOW_ALL } });
    const s = await serve(home, { stateless: true });
    try {
      const outside = path.join(home.dir, 'outside.lua');
      fs.writeFileSync(outside, toolSource('outside', 'read from outside the tree'));
      spawnSync('mkfifo', [path.join(home.scripts, 'fifo.lua')]);
      assert.ok(fs.statSync(path.join(home.scripts, 'fifo.lua')).isFIFO());
      fs.symlinkSync('/dev/zero', path.join(home.scripts, 'zero.lua'));
      fs.symlinkSync(outside, path.join(home.scripts, 'out.lua'));
      fs.mkdirSync(path.join(home.scripts, 'dir.lua'));
      fs.symlinkSync(outside, path.join(home.policies, 'out.lua'));
      save(path.join(home.scripts, 'ver.lua'), toolSource('ver', 't-1'));
      // the reload goes through (before the fix it hung on the FIFO: reload, the admin socket
      // and SIGTERM with it)
      await waitFor(async () => (await freshCall(s)).text, (t) => t === 't-1', 'the reload past the FIFO', 10000);
      const st = await admin(home.admin, 'status');
      assert.equal(st.ok, true);
      assert.equal(st.last_error, null);
      for (const f of ['scripts/fifo.lua: skipped: not a regular file', 'scripts/zero.lua: skipped: a symlink',
        'scripts/out.lua: skipped: a symlink', 'scripts/dir.lua: skipped: a directory', 'policies/out.lua: skipped: a symlink']) {
        assert.ok(st.warnings?.includes(f), `status warns "${f}": ${st.warnings}`);
      }
      assert.equal((await freshCall(s, 'outside')).doc?.error?.code !== undefined || (await freshCall(s, 'outside')).doc?.result?.isError, true,
        'the tool outside the tree is not served');
      const r = await run(['reload', '--config', home.conf], { cwd: home.dir });
      assert.equal(r.code, 0, r.stderr);
      const chk = await run(['check', '--config', home.conf], { cwd: home.dir });
      assert.match(chk.stderr, /scripts\/fifo\.lua: skipped: not a regular file/);
    } finally {
      await s.stopClean();
    }
  });

  it('a save made just after a reload went live is seen', async () => {
    const home = makeHome('lost', { scripts: { 'ver.lua': toolSource('ver', 'l-0') }, policies: { 'all.lua': ALLOW_ALL } });
    const s = await serve(home, { stateless: true });
    try {
      for (let i = 1; i <= 10; i++) {
        save(path.join(home.scripts, 'ver.lua'), toolSource('ver', `l-${i}`));
        await waitFor(async () => (await freshCall(s)).text, (t) => t === `l-${i}`, `save ${i} (saved as soon as save ${i - 1} was live)`);
      }
    } finally {
      await s.stop();
    }
  });

  it('a save made while a reload runs is seen, and every worker serves the same version', async () => {
    // slow.lua takes 200 ms to load, so a reload of 2 workers reads ver.lua at ~200 ms (for
    // worker 0) and at ~400 ms (for worker 1); the second save lands in between.
    const home = makeHome('split', {
      scripts: {
        'aaa_slow.lua': 'local t = mcp.monotonic_ms()\nwhile mcp.monotonic_ms() - t < 200 do end\n' + toolSource('slow', 'slow'),
        'ver.lua': toolSource('ver', 's-1'),
      },
      policies: { 'all.lua': ALLOW_ALL },
    });
    const s = await serve(home, { stateless: true });
    try {
      save(path.join(home.scripts, 'ver.lua'), toolSource('ver', 's-2'));
      await sleep(320);
      save(path.join(home.scripts, 'ver.lua'), toolSource('ver', 's-3'));
      // the last save is live somewhere first, then the reloader is done with it everywhere
      await waitFor(async () => (await freshCall(s)).text, (t) => t === 's-3', 'the last save to be served', 10000);
      await settle(home);
      const seen = new Map();
      for (let i = 0; i < 30; i++) {
        const t = (await freshCall(s)).text;
        seen.set(t, (seen.get(t) ?? 0) + 1);
      }
      const b = await bundle(s);
      assert.deepEqual(Object.fromEntries(seen), { 's-3': 30 }, `every worker serves the last save (bundle ${JSON.stringify(b)})`);
    } finally {
      await s.stop();
    }
  });

  it('a scripts directory deleted and created again is still watched', async () => {
    const home = makeHome('rmdir', { scripts: { 'ver.lua': toolSource('ver', 'r-1') }, policies: { 'all.lua': ALLOW_ALL } });
    const s = await serve(home, { stateless: true });
    try {
      fs.rmSync(home.scripts, { recursive: true });
      await waitFor(() => bundle(s), (b) => b.failures === 1, 'the refused reload of the missing directory');
      fs.mkdirSync(home.scripts);
      save(path.join(home.scripts, 'ver.lua'), toolSource('ver', 'r-2'));
      await sleep(200);
      save(path.join(home.scripts, 'ver.lua'), toolSource('ver', 'r-3'));
      await waitFor(async () => (await freshCall(s)).text, (t) => t === 'r-3', 'a save in the new scripts directory');
    } finally {
      await s.stop();
    }
  });

  it('a tool file with the config file\'s name reloads like any other', async () => {
    const home = makeHome('confname', {
      scripts: { 'ver.lua': toolSource('ver', 'n-1') },
      policies: { 'all.lua': ALLOW_ALL },
    });
    const s = await serve(home, { stateless: true });
    try {
      save(path.join(home.scripts, 'luamcp.conf.lua'), toolSource('conftool', 'n-2'));
      await waitFor(async () => (await freshCall(s, 'conftool')).text, (t) => t === 'n-2', 'the new tool in scripts/luamcp.conf.lua');
      assert.equal((await bundle(s)).restart_needed, false, 'the config file did not change');
    } finally {
      await s.stop();
    }
  });

  it('a policy change that shows or hides a tool sends list_changed', async () => {
    const home = makeHome('hidden', {
      scripts: { 'ver.lua': toolSource('ver', 'h'), 'hidden.lua': toolSource('hidden', 'h') },
      policies: { 'ver.lua': 'mcp.policy { tool = "ver" }\n' },
    });
    const s = await serve(home);
    const c = await connect(s);
    try {
      const notes = [];
      c.client.setNotificationHandler(ToolListChangedNotificationSchema, () => { notes.push(Date.now()); });
      await waitFor(async () => c.exchanges.some((e) => e.http === 'GET' && e.status === 200), (x) => x, 'the GET stream');
      await sleep(100);
      assert.deepEqual((await c.client.listTools()).tools.map((t) => t.name), ['ver'], 'no rule covers "hidden": not listed');
      save(path.join(home.policies, 'hidden.lua'), 'mcp.policy { tool = "hidden" }\n');
      await waitFor(async () => (await c.client.listTools()).tools.length, (n) => n === 2, 'tools/list to show "hidden"');
      await waitFor(async () => notes.length, (n) => n >= 1, 'list_changed: the client\'s list changed');
    } finally {
      await c.close();
      await s.stop();
    }
  });
});
