// e2e.mjs — tasks (the io.modelcontextprotocol/tasks extension of 2026-07-28) against the real
// binary with verified tokens, over raw HTTP:
//
//   lifecycle  a task tool called by a client that declares the extension answers with a task
//              handle at once; tasks/get shows it working (with the handler's progress message),
//              then completed with the result inlined; a tool error completes it with isError,
//              a crash fails it with a JSON-RPC error that does not quote the script
//   gating     without the extension: tasks/* is -32021 naming it, an optional task tool runs
//              as an ordinary call, a required one is -32021; in a 2025 session tasks/* is -32601
//   owner      a task is its caller's: to another subject, or the same subject through another
//              client, its id is unknown, exactly like an id that never existed
//   input      ctx.input inside a task parks it in input_required; tasks/update with keys not
//              asked for changes nothing; the answers run the next round, authorized again:
//              a token that lost the scope fails the task
//   cancel     tasks/cancel settles a running task to cancelled at once and its handler stops;
//              cancelling again, or a finished task, is the same empty acknowledgment
//   bad        each malformed tasks request gets its own clear error, and the next is served
//   limits     tasks.per_caller, tasks.max_result_bytes and tasks.ttl_ms hold; a task outlives
//              a reload of the scripts
//   listen     subscriptions/listen with taskIds: only the caller's own tasks are honored, and
//              each status change of one comes as notifications/tasks with its DetailedTask
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test e2e.mjs   (default ../../build/luamcp)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { luamcpBin, modernCall, readSse, startLuamcp, startMintingIssuer, stopAll, tmpDir, waitFor } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-tasks-');
const MODERN = '2026-07-28';
const RESOURCE = 'http://127.0.0.1/tasks/mcp';
const EXT = 'io.modelcontextprotocol/tasks';

const TOOLS = `
local NONE = { type = "object", properties = mcp.object {} }
mcp.tool { name = "work", description = "works a while", task = "optional",
  inputSchema = { type = "object", properties = { seconds = { type = "number" }, mark = { type = "string" } },
                  required = { "seconds" } },
  handler = function(a, ctx)
    ctx.progress(0, 1, "halfway there")
    mcp.sleep(a.seconds)
    if a.mark then mcp.cache.set(a.mark, "ran") end
    return "worked " .. a.seconds .. " s"
  end }
mcp.tool { name = "only_task", description = "runs only as a task", task = "required",
  inputSchema = NONE, handler = function() mcp.sleep(0.05) return "done" end }
mcp.tool { name = "plain", description = "never a task", inputSchema = NONE,
  handler = function() return "plain" end }
mcp.tool { name = "fails", description = "reports an error", task = "optional", inputSchema = NONE,
  handler = function() mcp.sleep(0.05) return nil, "no such order" end }
mcp.tool { name = "crashes", description = "raises", task = "optional", inputSchema = NONE,
  handler = function() mcp.sleep(0.05) error("secret-internal-detail") end }
mcp.tool { name = "big", description = "a large result", task = "optional", inputSchema = NONE,
  handler = function() mcp.sleep(0.05) return string.rep("x", 4000) end }
mcp.tool { name = "ask", description = "asks inside its task", task = "optional", inputSchema = NONE,
  handler = function(_, ctx)
    ctx.task()
    local r = ctx.input("ok", { method = "elicitation/create", params = { message = "Go on?",
      requestedSchema = { type = "object", properties = { go = { type = "boolean" } } } } })
    return "answer: " .. tostring(r.content and r.content.go)
  end }
mcp.tool { name = "says", description = "a long progress message", task = "optional",
  inputSchema = { type = "object", properties = { pad = { type = "integer" }, tail = { type = "string" } } },
  secrets = { "TASK_TOKEN" },
  handler = function(a, ctx)
    ctx.task()
    ctx.progress(0, 1, ("a"):rep(a.pad) .. (a.tail or mcp.secret("TASK_TOKEN")))
    mcp.sleep(3)
    return "said"
  end }
mcp.tool { name = "asks_much", description = "a large input request", task = "optional", inputSchema = NONE,
  handler = function(_, ctx)
    ctx.task()
    ctx.input("big", { method = "elicitation/create", params = { message = ("m"):rep(3000),
      requestedSchema = { type = "object", properties = mcp.object {} } } })
    return "not reached"
  end }
mcp.tool { name = "peek", description = "reads the cache", inputSchema = { type = "object",
    properties = { mark = { type = "string" } }, required = { "mark" } },
  handler = function(a) return tostring(mcp.cache.get(a.mark)) end }
`;

const POLICIES = `
mcp.policy { tool = "*", scopes = "tasks:use", description = "task tests" }
`;

let issuer;
let server;
let dir;
let nextId = 1;

// A token for subject sub (each test its own, so tasks.per_caller counts one test's tasks).
const tokenFor = (sub, extra = {}) => issuer.mint({ aud: RESOURCE, scope: 'tasks:use', sub, ...extra });

before(async () => {
  issuer = await startMintingIssuer();
  dir = path.join(TMP, 'fixture');
  mkdirSync(path.join(dir, 'scripts'), { recursive: true });
  mkdirSync(path.join(dir, 'policies'));
  writeFileSync(path.join(dir, 'scripts', 'tools.lua'), TOOLS);
  writeFileSync(path.join(dir, 'policies', 'policies.lua'), POLICIES);
  server = await startLuamcp(BIN, TMP, 'tasks', {
    scripts: path.join(dir, 'scripts'),
    policies: path.join(dir, 'policies'),
    auth: { resource: RESOURCE, issuers: [{ issuer: issuer.issuer, jwks_uri: issuer.jwksUri, algorithms: ['RS256'] }] },
    tasks: { ttl_ms: 8000, timeout_ms: 4000, poll_interval_ms: 250, per_caller: 4, max_result_bytes: 2048 },
  }, { args: ['--admin-socket', path.join(TMP, 'admin.sock')], env: { LUAMCP_SECRET_TASK_TOKEN: 'sk-live-0123456789abcdef' } });
});

after(async () => {
  await server?.stop();
  await issuer?.close();
  await stopAll();
});

// A 2026-07-28 request: {status, body}. ext: whether _meta declares the tasks extension.
const call = (method, params, { tok, ext = true, headers = {}, url = server.url } = {}) =>
  modernCall(url, method, params, { token: tok, caps: ext ? { extensions: { [EXT]: {} } } : {}, headers, id: nextId++ });

const get = (taskId, tok) => call('tasks/get', { taskId }, { tok });
const settled = (taskId, tok, ms = 8000) => waitFor(`task ${taskId} to settle`, async () => {
  const r = (await get(taskId, tok)).body.result;
  return r && ['completed', 'failed', 'cancelled'].includes(r.status) && r;
}, ms);

async function start(name, args, tok) {
  const r = await call('tools/call', { name, arguments: args }, { tok });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.result?.resultType, 'task', JSON.stringify(r.body));
  return r.body.result;
}

describe('lifecycle', () => {
  it('answers with a handle at once, shows the work, then the result inlined', async () => {
    const tok = tokenFor('ada');
    const created = await start('work', { seconds: 0.6 }, tok);
    assert.match(created.taskId, /^[0-9a-f]{32}$/);
    assert.equal(created.status, 'working');
    assert.equal(created.ttlMs, 8000);
    assert.equal(created.pollIntervalMs, 250);
    assert.match(created.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    for (const k of ['result', 'error', 'inputRequests', 'requestState', 'task', 'ttl', 'pollInterval'])
      assert.ok(!(k in created), `no ${k} in a CreateTaskResult`);

    const working = (await get(created.taskId, tok)).body.result;
    assert.equal(working.status, 'working', 'the handle came before the work was done');
    assert.equal(working.resultType, 'complete');
    assert.equal(working.statusMessage, 'halfway there', "the handler's progress message");
    assert.ok(!('result' in working));

    const done = await settled(created.taskId, tok);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.result.content, [{ type: 'text', text: 'worked 0.6 s' }]);
    assert.ok(!('resultType' in done.result), 'the inlined result is the tool result itself');
    assert.ok(Date.parse(done.lastUpdatedAt) >= Date.parse(done.createdAt));
  });

  it('a tool error completes the task with isError; a crash fails it without quoting the script', async () => {
    const tok = tokenFor('bob');
    const failed = await settled((await start('fails', {}, tok)).taskId, tok);
    assert.equal(failed.status, 'completed');
    assert.equal(failed.result.isError, true);
    assert.equal(failed.result.content[0].text, 'no such order');

    const crashed = await settled((await start('crashes', {}, tok)).taskId, tok);
    assert.equal(crashed.status, 'failed');
    assert.equal(crashed.error.code, -32603);
    assert.match(crashed.error.message, /tool 'crashes' failed \(see server log\)/);
    assert.ok(!JSON.stringify(crashed).includes('secret-internal-detail'));
    assert.ok(!('result' in crashed));
    await server.waitLog(/tool crashes failed: .*secret-internal-detail/);
  });

  it('a call that finishes without waiting is answered directly', async () => {
    const r = await call('tools/call', { name: 'work', arguments: { seconds: 0 } }, { tok: tokenFor('cy') });
    assert.equal(r.body.result.resultType, 'complete');
    assert.equal(r.body.result.content[0].text, 'worked 0 s');
  });
});

describe('gating', () => {
  it('without the extension, tasks/* is -32021 naming it and task tools run as calls or are refused', async () => {
    const tok = tokenFor('dee');
    for (const [method, params] of [['tasks/get', { taskId: 'x' }], ['tasks/update', { taskId: 'x', inputResponses: {} }], ['tasks/cancel', { taskId: 'x' }]]) {
      const r = await call(method, params, { tok, ext: false });
      assert.equal(r.status, 400, method);
      assert.equal(r.body.error.code, -32021, method);
      assert.deepEqual(r.body.error.data, { requiredCapabilities: { extensions: { [EXT]: {} } } });
    }
    const sync = await call('tools/call', { name: 'work', arguments: { seconds: 0.1 } }, { tok, ext: false });
    assert.equal(sync.body.result.resultType, 'complete', 'an optional task tool runs as an ordinary call');
    assert.equal(sync.body.result.content[0].text, 'worked 0.1 s');
    const required = await call('tools/call', { name: 'only_task', arguments: {} }, { tok, ext: false });
    assert.equal(required.status, 400);
    assert.equal(required.body.error.code, -32021);
    assert.match(required.body.error.message, /only_task' runs only as a task/);
    const plain = await call('tools/call', { name: 'plain', arguments: {} }, { tok });
    assert.equal(plain.body.result.content[0].text, 'plain', 'a tool that is no task tool never becomes one');
  });

  it('in a 2025 session tasks/* is not a method, and the session goes on', async () => {
    const tok = tokenFor('eve');
    const h = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${tok}`, 'mcp-protocol-version': '2025-11-25' };
    const init = await fetch(server.url, { method: 'POST', headers: h, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }) });
    const sid = init.headers.get('mcp-session-id');
    await init.text();
    const r = await fetch(server.url, { method: 'POST', headers: { ...h, 'mcp-session-id': sid }, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { taskId: 'x' } }) });
    const body = await r.json();
    assert.equal(body.error.code, -32601);
    assert.match(body.error.message, /tasks\/get is part of the io.modelcontextprotocol\/tasks extension of protocol 2026-07-28/);
  });
});

describe('owner', () => {
  it("another subject, or another client of the same subject, cannot see, feed or cancel a caller's task", async () => {
    const tok = tokenFor('fay');
    const { taskId } = await start('work', { seconds: 1 }, tok);
    const never = await get('0123456789abcdef0123456789abcdef', tok);
    for (const other of [tokenFor('mallory'), tokenFor('fay', { client_id: 'another-client' })]) {
      for (const [method, params] of [['tasks/get', { taskId }], ['tasks/update', { taskId, inputResponses: {} }], ['tasks/cancel', { taskId }]]) {
        const r = await call(method, params, { tok: other });
        assert.deepEqual(r.body.error, never.body.error, `${method} by another caller is answered as for an unknown id`);
      }
    }
    assert.deepEqual(never.body.error, { code: -32602, message: 'Invalid params: no task with this taskId' });
    const mine = await settled(taskId, tok);
    assert.equal(mine.status, 'completed', 'nobody else could cancel it');
  });
});

describe('input', () => {
  it('parks in input_required, ignores keys not asked for, runs the next round with the answers', async () => {
    const tok = tokenFor('gus');
    const { taskId } = await start('ask', {}, tok);
    const parked = await waitFor('input_required', async () => {
      const r = (await get(taskId, tok)).body.result;
      return r.status === 'input_required' && r;
    });
    assert.deepEqual(Object.keys(parked.inputRequests), ['ok']);
    assert.equal(parked.inputRequests.ok.method, 'elicitation/create');

    const stray = await call('tasks/update', { taskId, inputResponses: { nope: { action: 'accept' } } }, { tok });
    assert.deepEqual(stray.body.result, { resultType: 'complete' });
    assert.equal((await get(taskId, tok)).body.result.status, 'input_required', 'a key not asked for changes nothing');

    const ack = await call('tasks/update', { taskId, inputResponses: { ok: { action: 'accept', content: { go: true } } } }, { tok });
    assert.deepEqual(ack.body.result, { resultType: 'complete' });
    const done = await settled(taskId, tok);
    assert.equal(done.result.content[0].text, 'answer: true');
    const records = await waitFor('the update audited', () => server.audit().filter((a) => a.method === 'tasks/update' && a.task === taskId).length >= 2 && server.audit());
    assert.ok(records.some((a) => a.method === 'tasks/update' && a.tool === 'ask' && a.decision === 'allow'), 'the round was authorized again');
    assert.ok(!server.out.includes(tok), 'no token in the audit log');
  });

  it('a round is authorized again: a token that lost the scope fails the task', async () => {
    const tok = tokenFor('hal');
    const { taskId } = await start('ask', {}, tok);
    await waitFor('input_required', async () => (await get(taskId, tok)).body.result.status === 'input_required');
    // tasks/update itself needs no tool's scope (it is the caller's own task); its round does
    const weaker = issuer.mint({ aud: RESOURCE, scope: 'tasks:none', sub: 'hal' });
    const ack = await call('tasks/update', { taskId, inputResponses: { ok: { action: 'accept', content: { go: true } } } }, { tok: weaker });
    assert.deepEqual(ack.body.result, { resultType: 'complete' });
    const done = await settled(taskId, tok);
    assert.equal(done.status, 'failed');
    assert.deepEqual(done.error, { code: -32600, message: 'Forbidden: insufficient scope' });
  });
});

describe('cancel', () => {
  it('settles a running task to cancelled at once and stops its handler', async () => {
    const tok = tokenFor('ida');
    const mark = `mark-${Date.now()}`;
    const { taskId } = await start('work', { seconds: 1, mark }, tok);
    const ack = await call('tasks/cancel', { taskId }, { tok });
    assert.deepEqual(ack.body.result, { resultType: 'complete' });
    const now = (await get(taskId, tok)).body.result;
    assert.equal(now.status, 'cancelled');
    assert.ok(!('result' in now) && !('error' in now));
    await sleep(1500);
    const peek = await call('tools/call', { name: 'peek', arguments: { mark } }, { tok });
    assert.equal(peek.body.result.content[0].text, 'nil', 'the handler never went past its sleep');
    assert.deepEqual((await call('tasks/cancel', { taskId }, { tok })).body.result, { resultType: 'complete' }, 'again: the same ack');
    assert.equal((await get(taskId, tok)).body.result.status, 'cancelled', 'terminal states never change');

    const finished = await start('work', { seconds: 0.05 }, tok);
    await settled(finished.taskId, tok);
    assert.deepEqual((await call('tasks/cancel', { taskId: finished.taskId }, { tok })).body.result, { resultType: 'complete' });
    assert.equal((await get(finished.taskId, tok)).body.result.status, 'completed', 'a finished task stays finished');
  });
});

describe('bad requests', () => {
  it('each gets its own clear error, and the next request is served', async () => {
    const tok = tokenFor('jo');
    const cases = [
      // no Mcp-Name can equal a taskId that is missing or not a string
      ['tasks/get', {}, 400, -32020, "Header mismatch: Mcp-Name must equal the body's name (uri, taskId)"],
      ['tasks/get', { taskId: 42 }, 400, -32020, "Header mismatch: Mcp-Name must equal the body's name (uri, taskId)"],
      ['tasks/get', { taskId: 'not-a-task' }, 200, -32602, 'Invalid params: no task with this taskId'],
      ['tasks/update', { taskId: '0123456789abcdef0123456789abcdef' }, 200, -32602, 'Invalid params: inputResponses must be an object'],
      ['tasks/update', { taskId: '0123456789abcdef0123456789abcdef', inputResponses: [] }, 200, -32602, 'Invalid params: inputResponses must be an object'],
      ['tasks/result', { taskId: 'x' }, 404, -32601, 'Method not found: tasks/result'],
      ['tasks/list', {}, 404, -32601, 'Method not found: tasks/list'],
    ];
    for (const [method, params, status, code, message] of cases) {
      const r = await call(method, params, { tok });
      assert.equal(r.status, status, `${method} ${JSON.stringify(params)}`);
      assert.equal(r.body.error.code, code, `${method} ${JSON.stringify(params)}`);
      assert.equal(r.body.error.message, message);
      const next = await call('tools/call', { name: 'plain', arguments: {} }, { tok });
      assert.equal(next.body.result.content[0].text, 'plain');
    }
    const mismatch = await call('tasks/get', { taskId: '0123456789abcdef0123456789abcdef' }, { tok, headers: { 'mcp-name': 'another' } });
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.body.error.code, -32020);
    const number = await call('tasks/cancel', { taskId: 7 }, { tok, headers: { 'mcp-name': '7' } });
    assert.equal(number.status, 400, 'a taskId is a string: 7 is not "7"');
    assert.equal(number.body.error.code, -32020);
  });
});

describe('limits', () => {
  it('tasks.per_caller: an optional task tool then runs as a call, a required one is refused with the reason', async () => {
    const tok = tokenFor('kit');
    for (let i = 0; i < 4; i++) await start('work', { seconds: 0.05 }, tok);
    const plain = await call('tools/call', { name: 'work', arguments: { seconds: 0.05 } }, { tok });
    assert.equal(plain.body.result.resultType, 'complete', 'no room for a task: an ordinary call');
    assert.equal(plain.body.result.content[0].text, 'worked 0.05 s');
    const refused = await call('tools/call', { name: 'only_task', arguments: {} }, { tok });
    assert.equal(refused.body.error.code, -32603);
    assert.match(refused.body.error.message, /^Too many tasks: this caller holds 4 already \(tasks.per_caller\)/);
    await start('work', { seconds: 0.05 }, tokenFor('kat'));
  });

  it('a statusMessage is cut at 512 bytes after secrets are masked, and stays UTF-8', async () => {
    const tok = tokenFor('liz');
    // the handler reports after ctx.task(), once it runs on after the handle went out
    const message = (taskId) => waitFor('the statusMessage', async () => (await get(taskId, tok)).body.result.statusMessage);
    const masked = await start('says', { pad: 505 }, tok);
    assert.equal(await message(masked.taskId), 'a'.repeat(505) + '[secret', 'the mask is cut, never the secret');
    const utf8 = await start('says', { pad: 511, tail: 'é' }, tok);
    assert.equal(await message(utf8.taskId), 'a'.repeat(511), 'cut before a character that would not fit');
  });

  it('input requests larger than tasks.max_result_bytes fail the task', async () => {
    const tok = tokenFor('mo');
    const t = await settled((await start('asks_much', {}, tok)).taskId, tok);
    assert.equal(t.status, 'failed');
    assert.match(t.error.message, /the input requests \(\d+ bytes\) is larger than tasks.max_result_bytes \(2048\)/);
  });

  it('tasks.max_result_bytes: a larger result fails the task, saying so', async () => {
    const tok = tokenFor('lee');
    const t = await settled((await start('big', {}, tok)).taskId, tok);
    assert.equal(t.status, 'failed');
    assert.match(t.error.message, /the result \(\d+ bytes\) is larger than tasks.max_result_bytes \(2048\)/);
  });

  it('mcp.sleep past the deadline is an error; a task outlives a reload and then its ttl', async () => {
    const tok = tokenFor('max');
    const long = await call('tools/call', { name: 'work', arguments: { seconds: 60 } }, { tok });
    assert.equal(long.body.result.resultType, 'complete', 'it failed before it could become a task');
    assert.equal(long.body.result.isError, true);
    assert.equal(long.body.result.content[0].text, "tool 'work' failed (see server log)");
    await server.waitLog(/mcp.sleep: 60.000 s is past the call's deadline \(\d+ ms left\)/);

    const { taskId } = await start('work', { seconds: 2 }, tok);
    const status = JSON.parse(execFileSync(BIN, ['status', '--admin-socket', path.join(TMP, 'admin.sock')], { encoding: 'utf8' }));
    assert.ok(status.tasks.running_or_waiting >= 1 && status.tasks.held >= status.tasks.running_or_waiting, JSON.stringify(status.tasks));
    writeFileSync(path.join(dir, 'scripts', 'more.lua'), 'mcp.tool { name = "extra", description = "new", inputSchema = { type = "object", properties = mcp.object {} }, handler = function() return "x" end }\n');
    server.proc.kill('SIGHUP');
    await server.waitLog(/reload \(.*\): version 2/);
    const done = await settled(taskId, tok);
    assert.equal(done.status, 'completed', 'the round held on to the bundle it started in');
    await waitFor('the task to expire after tasks.ttl_ms', async () => (await get(taskId, tok)).body.error?.code === -32602, 12000);
  });
});

describe('listen', () => {
  it("taskIds: the caller's own tasks are honored, and their status changes come as notifications/tasks", async () => {
    const tok = tokenFor('ned');
    const olga = tokenFor('olga');
    const parked = async (taskId, t) => waitFor('input_required', async () => (await get(taskId, t)).body.result.status === 'input_required');
    const mine = await start('ask', {}, tok);
    const other = await start('ask', {}, olga);
    await parked(mine.taskId, tok);
    await parked(other.taskId, olga);

    const l = await listenTasks(server.url, tok, [mine.taskId, other.taskId, 'f'.repeat(32), mine.taskId]);
    const { messages } = l;
    try {
      const ack = await waitFor('the acknowledgment', () => messages[0]);
      assert.equal(ack.method, 'notifications/subscriptions/acknowledged');
      assert.deepEqual(ack.params.notifications, { taskIds: [mine.taskId] }, "another caller's task and an unknown id are left out");

      await call('tasks/update', { taskId: other.taskId, inputResponses: { ok: { action: 'accept', content: { go: false } } } }, { tok: olga });
      await call('tasks/update', { taskId: mine.taskId, inputResponses: { ok: { action: 'accept', content: { go: true } } } }, { tok });
      const done = await waitFor('the completed notification', () => messages.find((m) => m.method === 'notifications/tasks' && m.params.status === 'completed'));
      assert.equal(done.params.taskId, mine.taskId);
      assert.deepEqual(done.params.result.content, [{ type: 'text', text: 'answer: true' }]);
      assert.equal(done.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub-1');
      assert.ok(messages.some((m) => m.method === 'notifications/tasks' && m.params.status === 'working' && m.params.taskId === mine.taskId), 'working again after the update');
      await settled(other.taskId, olga);
      await sleep(200);
      assert.ok(!messages.some((m) => m.params?.taskId === other.taskId), "nothing of another caller's task");
    } finally {
      await l.close();
    }
  });

  it('a result too large for a notification is left out of it: tasks/get has it', async () => {
    const home = path.join(TMP, 'big');
    mkdirSync(path.join(home, 'scripts'), { recursive: true });
    writeFileSync(path.join(home, 'scripts', 'huge.lua'), `mcp.tool { name = "huge", description = "a 100 kB result", task = "optional",
      inputSchema = { type = "object", properties = mcp.object {} },
      handler = function(_, ctx) ctx.task() mcp.sleep(0.5) return string.rep("y", 100000) end }\n`);
    const big = await startLuamcp(BIN, TMP, 'tasks-big', {
      scripts: path.join(home, 'scripts'), policies: path.join(dir, 'policies'),
      auth: { resource: RESOURCE, issuers: [{ issuer: issuer.issuer, jwks_uri: issuer.jwksUri, algorithms: ['RS256'] }] },
    });
    try {
      const tok = tokenFor('quinn');
      const created = (await call('tools/call', { name: 'huge', arguments: {} }, { tok, url: big.url })).body.result;
      assert.equal(created.resultType, 'task');
      const l = await listenTasks(big.url, tok, [created.taskId]);
      try {
        const done = await waitFor('the completed notification', () => l.messages.find((m) => m.params?.status === 'completed'));
        assert.equal(done.params.taskId, created.taskId);
        assert.ok(!('result' in done.params), 'left out of the notification');
        const got = (await call('tasks/get', { taskId: created.taskId }, { tok, url: big.url })).body.result;
        assert.equal(got.result.content[0].text.length, 100000, 'tasks/get has it');
        await sleep(100);
        assert.equal(l.ended, false, 'the stream goes on');
      } finally {
        await l.close();
      }
    } finally {
      await big.stop();
    }
  });

  it('taskIds must be an array of strings; the next request is served', async () => {
    const tok = tokenFor('pia');
    const r = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'subscriptions/listen', authorization: `Bearer ${tok}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'subscriptions/listen', params: {
        _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': { extensions: { [EXT]: {} } } },
        notifications: { taskIds: [1, 2] } } }),
    });
    const body = await r.json();
    assert.equal(body.error.code, -32602);
    assert.match(body.error.message, /notifications.taskIds must be an array of at most 256 task ids/);
    const next = await call('tools/call', { name: 'plain', arguments: {} }, { tok });
    assert.equal(next.body.result.content[0].text, 'plain');
  });
});

// A subscriptions/listen stream for taskIds: {messages, ended, close()}; the first message is
// the acknowledgment.
async function listenTasks(url, tok, taskIds) {
  const ctl = new AbortController();
  const res = await fetch(url, {
    method: 'POST', signal: ctl.signal,
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN, 'mcp-method': 'subscriptions/listen', authorization: `Bearer ${tok}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 'sub-1', method: 'subscriptions/listen', params: {
      _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN, 'io.modelcontextprotocol/clientCapabilities': { extensions: { [EXT]: {} } } },
      notifications: { taskIds } } }),
  });
  assert.equal(res.status, 200);
  const l = readSse(res, ctl);
  const close = l.close;
  l.close = async () => { close(); await l.done; };
  await l.next(() => true); // the acknowledgment
  return l;
}
