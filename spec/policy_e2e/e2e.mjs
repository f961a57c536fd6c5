// e2e.mjs — access policies end to end: the Strava reference case (fixtures/policies/strava.lua
// over the stub tools of fixtures/scripts/strava_stub.lua), a real authorization server
// (spec/idp/idp.mjs, oidc-provider) and the real luamcp binary, each on a loopback port of its
// own (port 0), with temporary files only.
//
//   scopes       each Strava tool needs its own scope: 403 insufficient_scope without, 200 with
//   tools/list   differs per caller
//   hidden       a tool a caller may not know of is answered exactly like a nonexistent one
//   arguments    get_activity: own athlete, another athlete, the admin scope
//   failure      a failing policy check (error, budget, memory) denies; the server goes on
//   audit        one JSON line per decision, the right fields, only log_args, never a token
//   shadow       shadow_policies that tighten get_athlete: logged, never enforced
//   hierarchy    auth.scope_implies (strava:admin implies the six), on a --dev server
//   discovery    scopes_supported and the 401 scope hint carry the policies' scopes
//   check        `luamcp check`: the table, a typo (file:line, exit 1), a rule matching nothing
//   explain      `luamcp explain`: decision, rule, reason; exit 0 for allow, 1 otherwise
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test e2e.mjs   (default ../../build/luamcp)
// Needs spec/idp/node_modules (ctest fixture idp_node_modules); no npm packages of its own.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { authorizationCodeToken, clientCredentialsToken } from '../idp/authcode.mjs';
import { startIdp as startIdpOn, startLuamcp as startServer, stopAll, waitFor as waitForAny } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCRIPTS = path.join(HERE, 'fixtures', 'scripts');
const POLICIES = path.join(HERE, 'fixtures', 'policies');
const SHADOW = path.join(HERE, 'fixtures', 'shadow_policies');
const POLICY_FILE = path.join(POLICIES, 'strava.lua');
const SHADOW_FILE = path.join(SHADOW, 'strava.lua');
const BIN = path.resolve(HERE, process.env.LUAMCP_BIN || '../../build/luamcp');
if (!existsSync(BIN)) throw new Error(`LUAMCP_BIN must name the luamcp binary (got '${BIN}')`);
if (!existsSync(path.join(HERE, '..', 'idp', 'node_modules'))) {
  throw new Error('spec/idp/node_modules is missing: run npm ci there (ctest fixture idp_node_modules)');
}

const TMP = mkdtempSync(path.join(os.tmpdir(), 'luamcp-policy-e2e-'));
const PROTOCOL = '2025-11-25';
// The URL the server is known by (as behind a proxy): the token audience and the metadata
// resource. The IdP mints tokens for it only.
const RESOURCE = 'https://strava.mcp.example.com/mcp';
const PRM_URL = 'https://strava.mcp.example.com/.well-known/oauth-protected-resource/mcp';
const STRAVA = 'mcp.example.com/strava:';
const ADMIN = `${STRAVA}admin`;
const SIX = ['get_athlete', 'get_athlete_stats', 'get_activities', 'get_activity', 'get_activity_streams', 'get_segment'];
const SECRETS = { 'svc-all': 'svc-all-secret', 'svc-echo': 'svc-echo-secret', 'svc-none': 'svc-none-secret' };
const ME = 1001; // the athlete of the minted tokens
const OTHER = 2002;

// ------------------------------------------------------------------ the fixtures, as data

// Valid arguments for each tool, and what its stub answers to them.
const ATHLETE = {
  id: 1001, username: 'ada_rides', firstname: 'Ada', lastname: 'Lovelace', city: 'London',
  country: 'United Kingdom', sex: 'F', premium: true, measurement_preference: 'meters',
};
const CALLS = {
  get_athlete: { args: {}, result: ATHLETE },
  get_athlete_stats: {
    args: { athlete_id: ME },
    result: {
      athlete_id: ME, biggest_ride_distance: 161502,
      recent_ride_totals: { count: 6, distance: 312044.5, moving_time: 41220, elevation_gain: 2310 },
      ytd_run_totals: { count: 41, distance: 402113, moving_time: 145003, elevation_gain: 3120 },
      all_ride_totals: { count: 903, distance: 41203311, moving_time: 5901233, elevation_gain: 301233 },
    },
  },
  get_activities: {
    args: { page: 2, per_page: 2 },
    result: {
      page: 2,
      activities: [
        { id: 9001, name: 'Morning Ride', sport_type: 'Ride', distance: 42150.3, moving_time: 5400 },
        { id: 9002, name: 'Lunch Run', sport_type: 'Run', distance: 8012, moving_time: 2460 },
      ],
    },
  },
  get_activity: {
    args: { athlete_id: ME, activity_id: 9001 },
    result: {
      id: 9001, athlete: { id: ME }, name: 'Morning Ride', sport_type: 'Ride', distance: 42150.3,
      moving_time: 5400, total_elevation_gain: 388, start_date: '2024-05-04T06:12:40Z',
    },
  },
  get_activity_streams: {
    args: { activity_id: 9001, keys: ['heartrate', 'watts'] },
    result: {
      activity_id: 9001,
      streams: {
        heartrate: { data: [92, 95, 99, 104], original_size: 4, resolution: 'high' },
        watts: { data: [0, 180, 210, 205], original_size: 4, resolution: 'high' },
      },
    },
  },
  get_segment: {
    args: { segment_id: 229781 },
    result: {
      id: 229781, name: 'Box Hill KOM', activity_type: 'Ride', distance: 2481.2, average_grade: 4.6,
      climb_category: 2, city: 'Dorking',
    },
  },
};

// "file:line" of each mcp.policy call in a policy file, in order.
function ruleLines(file) {
  const out = [];
  readFileSync(file, 'utf8').split('\n').forEach((l, i) => {
    if (/^\s*mcp\.policy\s*\{/.test(l)) out.push(`${file}:${i + 1}`);
  });
  return out;
}
const [RULE_SCOPES, RULE_ACTIVITY, RULE_ADMIN, RULE_FLAKY] = ruleLines(POLICY_FILE);
const SHADOW_RULES = ruleLines(SHADOW_FILE);
const RULE_SHADOW_TIGHT = SHADOW_RULES[1];

// ------------------------------------------------------------------ processes

process.on('exit', () => {
  if (process.env.POLICY_E2E_KEEP) console.error(`policy_e2e: kept ${TMP}`);
  else rmSync(TMP, { recursive: true, force: true });
});
after(stopAll); // children are tracked (and killed at exit) by the shared harness

// The IdP on port 0. The state file holds its signing keys, which lets the tests mint tokens
// with claims the IdP cannot add (athlete_id, admin).
async function startIdp() {
  const stateFile = path.join(TMP, 'idp-state.json');
  const idp = await startIdpOn(['--resources', RESOURCE, '--state-file', stateFile]);
  return { ...idp, stateFile };
}

// luamcp (the shared harness's) with this config merged over the common part, auditing to a
// file of its own: .auditLines() reads it, .calls is what the tests sent.
let auditSeq = 0;
const waitFor = (what, fn, ms = 3000) => waitForAny(what, fn, ms);
async function startLuamcp(name, config, extraArgs = []) {
  const audit = path.join(TMP, `${name}-${++auditSeq}.audit.jsonl`);
  const s = await startServer(BIN, TMP, name, {
    scripts: SCRIPTS, policies: POLICIES, audit_file: audit,
    limits: { cpu_ms: 400, memory_mb: 16 }, ...config,
  }, { args: extraArgs });
  return Object.assign(s, {
    audit,
    calls: [],
    auditLines() {
      const text = existsSync(audit) ? readFileSync(audit, 'utf8') : '';
      return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    },
  });
}

// ------------------------------------------------------------------ tokens

const issuedTokens = new Set(); // every token of the run: none may show up in a log

async function cc(idp, clientId, scopes) {
  const tok = await clientCredentialsToken({
    issuer: idp.issuer, clientId, clientSecret: SECRETS[clientId], scope: scopes.join(' '), resource: RESOURCE,
  });
  issuedTokens.add(tok.access_token);
  return tok;
}

async function userToken(idp, login, scopes) {
  const tok = await authorizationCodeToken({ issuer: idp.issuer, resource: RESOURCE, scope: scopes.join(' '), login });
  issuedTokens.add(tok.access_token);
  return tok;
}

// A token signed with the IdP's own current key (from its state file), carrying claims the
// IdP has no way to add: what an IdP with a custom-claims hook (Cognito's pre token
// generation, a Keycloak mapper) would issue.
function mint(idp, { sub, clientId = 'strava-web', scopes, claims = {} }) {
  const { keys } = JSON.parse(readFileSync(idp.stateFile, 'utf8'));
  const jwk = keys[0];
  const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  const now = Math.floor(Date.now() / 1000);
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid })}.${enc({
    iss: idp.issuer, sub, aud: RESOURCE, client_id: clientId, scope: scopes.join(' '),
    iat: now, exp: now + 600, jti: crypto.randomUUID(), ...claims,
  })}`;
  const token = `${input}.${crypto.sign('sha256', Buffer.from(input), key).toString('base64url')}`;
  issuedTokens.add(token);
  return { access_token: token };
}

function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

// ------------------------------------------------------------------ MCP over HTTP, by hand

let nextId = 100; // request ids are unique over the run, so audit lines map to requests

async function post(server, token, session, msg, extraHeaders = {}) {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...extraHeaders };
  if (token) headers.authorization = `Bearer ${token}`;
  if (session) {
    headers['mcp-session-id'] = session;
    headers['mcp-protocol-version'] = PROTOCOL;
  }
  const res = await fetch(server.url, { method: 'POST', headers, body: JSON.stringify(msg), signal: AbortSignal.timeout(20000) });
  const text = await res.text();
  let body = null;
  if (text && (res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    const data = text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
    body = data.find((m) => m.id === msg.id) ?? null;
  } else if (text) {
    body = JSON.parse(text);
  }
  return { status: res.status, headers: res.headers, text, body };
}

// A session for one token: initialize, notifications/initialized. .call and .list then.
async function session(server, tok) {
  const token = tok.access_token;
  const init = await post(server, token, null, {
    jsonrpc: '2.0', id: nextId++, method: 'initialize',
    params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'policy-e2e', version: '1' } },
  });
  assert.equal(init.status, 200, `initialize: ${init.status} ${init.text}`);
  const sid = init.headers.get('mcp-session-id');
  assert.ok(sid, 'no Mcp-Session-Id');
  const n = await post(server, token, sid, { jsonrpc: '2.0', method: 'notifications/initialized' });
  assert.equal(n.status, 202);
  return {
    token,
    sid,
    claims: claimsOf(token),
    async call(name, args, { id = nextId++ } = {}) {
      const params = { name };
      if (args !== undefined) params.arguments = args;
      const r = await post(server, token, sid, { jsonrpc: '2.0', id, method: 'tools/call', params });
      server.calls.push({ id, name, args, token, r });
      return r;
    },
    async list() {
      const r = await post(server, token, sid, { jsonrpc: '2.0', id: nextId++, method: 'tools/list', params: {} });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.result.nextCursor, undefined);
      return r.body.result.tools;
    },
  };
}

function challengeFor(scope) {
  return `Bearer error="insufficient_scope", scope="${scope}", error_description="This tool needs more scopes", resource_metadata="${PRM_URL}"`;
}

function assertChallenge(r, scope, what) {
  assert.equal(r.status, 403, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.headers.get('www-authenticate'), challengeFor(scope), what);
  assert.match(r.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(r.body, { jsonrpc: '2.0', id: JSON.parse(r.text).id, error: { code: -32600, message: 'Forbidden: insufficient scope' } }, what);
}

function assertResult(r, expected, what) {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.headers.get('www-authenticate'), null, what);
  assert.match(r.headers.get('content-type'), /^application\/json/, what);
  assert.equal(r.body.error, undefined, `${what}: ${r.text}`);
  assert.equal(r.body.result.isError, undefined, `${what}: ${r.text}`);
  assert.deepEqual(r.body.result.structuredContent, expected, what);
  assert.deepEqual(JSON.parse(r.body.result.content[0].text), expected, what);
}

function assertDenied(r, reason, what) {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.headers.get('www-authenticate'), null, what);
  assert.deepEqual(r.body.result, { content: [{ type: 'text', text: `Access denied: ${reason}` }], isError: true }, `${what}: ${r.text}`);
}

function assertUnknown(r, name, what) {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  assert.deepEqual(r.body.error, { code: -32602, message: `Unknown tool: ${name}` }, `${what}: ${r.text}`);
  assert.equal(r.body.result, undefined);
}

// The decision a response shows, for the audit cross-check.
function decisionShown(r, name) {
  if (r.status === 403) return 'challenge';
  if (r.body?.error?.message === `Unknown tool: ${name}`) return 'hidden';
  if (r.body?.result?.isError && /^Access denied: /.test(r.body.result.content?.[0]?.text ?? '')) return 'deny';
  if (r.status === 200 && r.body?.result) return 'allow';
  return `unexpected answer ${r.status} ${r.text}`;
}


function run(args) {
  const r = spawnSync(BIN, args, { cwd: TMP, encoding: 'utf8', timeout: 20000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const names = (tools) => tools.map((t) => t.name);

// ================================================================== the live server

describe('the Strava policies, live', () => {
  let idp;
  let server;
  const tokens = {};

  before(async () => {
    idp = await startIdp();
    server = await startLuamcp('live', { auth: { resource: RESOURCE, issuers: [{ issuer: idp.issuer }] } });
    tokens.full = await cc(idp, 'svc-all', ['mcp:tools', ...SIX.map((t) => STRAVA + t)]);
    tokens.none = await cc(idp, 'svc-none', ['mcp:tools', ...SIX.map((t) => STRAVA + t)]);
    tokens.echo = await cc(idp, 'svc-echo', ['mcp:tools', 'echo', ...SIX.map((t) => STRAVA + t)]);
  });
  after(async () => {
    await server?.stop();
    await idp?.proc.stopProcess();
  });

  it('the IdP grants what each client may have (sanity of the setup)', () => {
    assert.deepEqual(tokens.full.scope.split(' ').sort(), ['mcp:tools', ...SIX.map((t) => STRAVA + t)].sort());
    assert.equal(tokens.none.scope ?? '', '');
    assert.equal(claimsOf(tokens.none.access_token).scope, undefined);
    assert.deepEqual(tokens.echo.scope.split(' ').sort(), ['echo', 'mcp:tools']);
    for (const t of Object.values(tokens)) {
      const c = claimsOf(t.access_token);
      assert.equal(c.aud, RESOURCE);
      assert.equal(c.iss, idp.issuer);
    }
  });

  describe('each Strava tool needs its own scope', () => {
    for (const tool of SIX) {
      it(`${tool}: 403 insufficient_scope without ${STRAVA}${tool}, 200 with it`, async () => {
        const scope = STRAVA + tool;
        // every scope but its own: the others do not stand in for it
        const others = await cc(idp, 'svc-all', ['mcp:tools', ...SIX.filter((t) => t !== tool).map((t) => STRAVA + t)]);
        assert.ok(!others.scope.split(' ').includes(scope));
        const without = await session(server, others);
        assertChallenge(await without.call(tool, CALLS[tool].args), scope, `${tool} with every other scope`);
        // no scope at all
        const none = await session(server, tokens.none);
        assertChallenge(await none.call(tool, CALLS[tool].args), scope, `${tool} as svc-none`);

        // its own scope only (get_activity also needs the athlete: a token carrying athlete_id)
        const own = tool === 'get_activity'
          ? mint(idp, { sub: 'athlete-1001', scopes: [scope], claims: { athlete_id: ME } })
          : await cc(idp, 'svc-all', [scope]);
        if (tool !== 'get_activity') assert.equal(own.scope, scope);
        const s = await session(server, own);
        assertResult(await s.call(tool, CALLS[tool].args), CALLS[tool].result, `${tool} with ${scope}`);
      });
    }

    it('a token with every scope calls every tool; get_activity still needs the athlete', async () => {
      const s = await session(server, tokens.full);
      for (const tool of SIX.filter((t) => t !== 'get_activity')) {
        assertResult(await s.call(tool, CALLS[tool].args), CALLS[tool].result, `${tool} with every scope`);
      }
      // the IdP's token has every scope but no athlete: get_activity passes scopes, fails the check
      assertDenied(await s.call('get_activity', CALLS.get_activity.args), 'activity of another athlete', 'get_activity without athlete_id');
    });
  });

  it('each request is decided by its own token, not by the session it runs in', async () => {
    // a session opened with a token that may do everything, then used with svc-none's token
    const full = await session(server, tokens.full);
    const id = nextId++;
    const r = await post(server, tokens.none.access_token, full.sid, {
      jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'get_athlete', arguments: {} },
    });
    if (r.status === 404) { // a server that binds sessions to their caller: fine too
      assert.equal(r.body.error.code, -32001, r.text);
      return;
    }
    server.calls.push({ id, name: 'get_athlete', args: {}, token: tokens.none.access_token, r });
    assertChallenge(r, `${STRAVA}get_athlete`, 'svc-none in svc-all\'s session');
  });

  describe('tools/list differs per caller', () => {
    it('two Strava scopes list exactly those two tools (plus admin_reset, which svc-all may see)', async () => {
      const tok = await cc(idp, 'svc-all', [`${STRAVA}get_athlete`, `${STRAVA}get_segment`]);
      const tools = await (await session(server, tok)).list();
      assert.deepEqual(names(tools), ['admin_reset', 'get_athlete', 'get_segment']);
      const seg = tools.find((t) => t.name === 'get_segment');
      assert.deepEqual(seg.inputSchema.required, ['segment_id']);
    });

    it('every scope: all eight tools', async () => {
      assert.deepEqual(names(await (await session(server, tokens.full)).list()),
        ['admin_reset', 'flaky', 'get_activities', 'get_activity', 'get_activity_streams', 'get_athlete', 'get_athlete_stats', 'get_segment']);
    });

    it('svc-none (no scope) sees nothing; svc-echo (mcp:tools) only flaky', async () => {
      assert.deepEqual(names(await (await session(server, tokens.none)).list()), []);
      assert.deepEqual(names(await (await session(server, tokens.echo)).list()), ['flaky']);
    });

    it('a user (authorization code) with every Strava scope sees the six, not admin_reset', async () => {
      const tok = await userToken(idp, 'bob', SIX.map((t) => STRAVA + t));
      assert.equal(claimsOf(tok.access_token).client_id, 'agent-public');
      assert.deepEqual(names(await (await session(server, tok)).list()), [...SIX].sort());
    });
  });

  describe('a hidden tool is answered as unknown', () => {
    it('admin_reset called by svc-echo is byte-identical to a tool that does not exist', async () => {
      const s = await session(server, tokens.echo);
      const id = nextId++;
      const hidden = await s.call('admin_reset', { confirm: true }, { id });
      const missing = await s.call('admin_purge', { confirm: true }, { id }); // same length, no such tool
      assertUnknown(hidden, 'admin_reset', 'hidden');
      assertUnknown(missing, 'admin_purge', 'missing');
      assert.equal(hidden.text.replaceAll('admin_reset', 'NAME'), missing.text.replaceAll('admin_purge', 'NAME'));
      const heads = (r) => [...r.headers].filter(([k]) => k !== 'date');
      assert.deepEqual(heads(hidden), heads(missing));
      assert.equal(hidden.status, missing.status);
    });

    it('svc-none is told the same; svc-all may call it', async () => {
      assertUnknown(await (await session(server, tokens.none)).call('admin_reset', { confirm: true }), 'admin_reset', 'svc-none');
      const r = await (await session(server, tokens.full)).call('admin_reset', { confirm: true });
      assertResult(r, { reset: true, dropped: 3 }, 'svc-all');
    });

    it('svc-all with a token of no scope at all still may (client_ids is the only condition)', async () => {
      const tok = await cc(idp, 'svc-all', []);
      assert.equal(claimsOf(tok.access_token).scope, undefined);
      assertResult(await (await session(server, tok)).call('admin_reset', { confirm: true }), { reset: true, dropped: 3 }, 'svc-all, no scope');
    });
  });

  describe('get_activity: only the caller\'s own activities, unless admin', () => {
    const mine = (scopes) => ({ sub: 'athlete-1001', clientId: 'strava-web', scopes, claims: { athlete_id: ME } });

    it('own athlete: allowed', async () => {
      const s = await session(server, mint(idp, mine([`${STRAVA}get_activity`])));
      assertResult(await s.call('get_activity', { athlete_id: ME, activity_id: 9001 }), CALLS.get_activity.result, 'own');
    });

    it('another athlete: denied as a tool error, with the reason', async () => {
      const s = await session(server, mint(idp, mine([`${STRAVA}get_activity`])));
      assertDenied(await s.call('get_activity', { athlete_id: OTHER, activity_id: 9001 }), 'activity of another athlete', 'other');
      // the athlete id as a string is another value, not a way around the check
      assertDenied(await s.call('get_activity', { athlete_id: String(ME), activity_id: 9001 }), 'activity of another athlete', 'string id');
    });

    it('the admin scope: allowed for any athlete', async () => {
      const s = await session(server, mint(idp, mine([`${STRAVA}get_activity`, ADMIN])));
      const r = await s.call('get_activity', { athlete_id: OTHER, activity_id: 9002 });
      assertResult(r, { ...CALLS.get_activity.result, id: 9002, athlete: { id: OTHER } }, 'admin');
    });

    it('the admin scope without the tool\'s scope: still 403 (scopes come before checks)', async () => {
      const s = await session(server, mint(idp, mine([ADMIN])));
      assertChallenge(await s.call('get_activity', { athlete_id: OTHER, activity_id: 9002 }), `${STRAVA}get_activity`, 'admin only');
    });

    it('no athlete_id claim and no athlete_id argument: denied (nil is nobody\'s)', async () => {
      const s = await session(server, tokens.full);
      assertDenied(await s.call('get_activity', { activity_id: 9001 }), 'activity of another athlete', 'no ids');
      assertDenied(await s.call('get_activity'), 'activity of another athlete', 'no arguments');
    });
  });

  describe('a failing policy denies, and the server goes on', () => {
    for (const [mode, why, logged] of [
      ['error', 'error', /strava\.lua:\d+: the entitlement service is down/],
      ['loop', 'budget', /exceeded its budget \(cpu_ms=400/],
      ['memory', 'memory', /ran out of memory \(memory_mb=16\)/],
    ]) {
      it(`flaky's check fails (${mode}): Access denied, then the next requests are served`, async () => {
        const mark = server.log.length;
        const s = await session(server, tokens.echo);
        assertDenied(await s.call('flaky', { mode }), `the policy check failed (${why})`, `flaky ${mode}`);
        await waitFor('the policy failure in the log', () => server.log.slice(mark).includes(`policy ${RULE_FLAKY} failed: `));
        assert.match(server.log.slice(mark), logged);
        // the same rule, when its check does not fail, allows: the denial was the failure's
        assertResult(await s.call('flaky', { mode: 'ok' }), { ok: true, mode: 'ok' }, 'flaky ok');
        assertResult(await (await session(server, tokens.full)).call('get_segment', CALLS.get_segment.args), CALLS.get_segment.result, 'get_segment after');
      });
    }
  });

  describe('discovery', () => {
    const ADVERTISED = [...SIX.map((t) => STRAVA + t), 'mcp:tools'];

    it('the protected resource metadata lists the policies\' scopes', async () => {
      for (const p of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
        const res = await fetch(server.base + p);
        assert.equal(res.status, 200);
        const meta = await res.json();
        assert.deepEqual({ ...meta, scopes_supported: [...meta.scopes_supported].sort() }, {
          resource: RESOURCE, authorization_servers: [idp.issuer], scopes_supported: [...ADVERTISED].sort(), bearer_methods_supported: ['header'],
        });
      }
    });

    it('a 401 challenge hints the same scopes', async () => {
      const r = await post(server, null, null, {
        jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      });
      assert.equal(r.status, 401);
      const h = r.headers.get('www-authenticate');
      const m = h.match(/^Bearer resource_metadata="([^"]*)", scope="([^"]*)"$/);
      assert.ok(m, h);
      assert.equal(m[1], PRM_URL);
      assert.deepEqual(m[2].split(' ').sort(), [...ADVERTISED].sort());
    });
  });

  // Last on this server: every tools/call above is in the audit file.
  describe('the audit file', () => {
    it('has exactly one line per tools/call decision, with the expected fields', async () => {
      // a tool that does not exist is audited too (decision "unknown"): probing leaves a trace
      const decided = server.calls;
      assert.ok(decided.length > 40, `only ${decided.length} calls recorded`);
      const lines = await waitFor('every audit line', () => {
        const l = server.auditLines();
        return l.length >= decided.length ? l : null;
      });
      await sleep(200); // nothing more may come
      assert.equal(server.auditLines().length, decided.length, 'one line per decision, no more');
      const byId = new Map();
      // keyed by request id and tool: the hidden/missing comparison sends both with one id
      for (const l of lines) {
        const key = `${l.request_id} ${l.tool}`;
        assert.ok(!byId.has(key), `two lines for request ${key}`);
        byId.set(key, l);
      }
      const FIELDS = new Set(['time', 'decision', 'reason', 'rule', 'tool', 'subject', 'client_id', 'request_id', 'bundle', 'latency_us', 'args', 'scopes']);
      for (const c of decided) {
        const l = byId.get(`${c.id} ${c.name}`);
        assert.ok(l, `no audit line for request ${c.id} (${c.name})`);
        const what = `request ${c.id} ${c.name}: ${JSON.stringify(l)}`;
        for (const k of Object.keys(l)) assert.ok(FIELDS.has(k), `unexpected field ${k}: ${what}`);
        if (c.name === 'admin_purge') { // no such tool: recorded, with no rule that decided
          assert.deepEqual([l.decision, l.reason, l.rule, l.tool], ['unknown', 'no such tool', undefined, c.name], what);
          continue;
        }
        assert.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, what);
        assert.equal(l.tool, c.name, what);
        assert.equal(l.decision, decisionShown(c.r, c.name), what);
        const claims = claimsOf(c.token);
        assert.equal(l.subject, claims.sub, what);
        assert.equal(l.client_id, claims.client_id, what);
        assert.equal(l.bundle, 1, what);
        assert.ok(typeof l.latency_us === 'number' && l.latency_us >= 0, what);
        assert.equal(typeof l.reason, 'string', what);
        assert.match(l.rule, /^\/.*\/strava\.lua:\d+$/, what);
        assert.equal(l.shadow, undefined, what);
        // only athlete_id, which get_activity's rule marks safe to log, is ever recorded
        if (c.name === 'get_activity' && c.args && 'athlete_id' in c.args) assert.deepEqual(l.args, { athlete_id: c.args.athlete_id }, what);
        else assert.equal(l.args, undefined, what);
        // the reason and rule of each kind of decision
        const expect = {
          challenge: ['insufficient scope', RULE_SCOPES],
          hidden: ['client not allowed', RULE_ADMIN],
        }[l.decision];
        if (expect) assert.deepEqual([l.reason, l.rule, l.scopes], [...expect, l.decision === 'challenge' ? STRAVA + c.name : undefined], what);
        if (l.decision === 'deny' && c.name === 'get_activity') assert.deepEqual([l.reason, l.rule], ['activity of another athlete', RULE_ACTIVITY], what);
        if (l.decision === 'deny' && c.name === 'flaky') assert.deepEqual([l.reason, l.rule], [c.r.body.result.content[0].text.slice('Access denied: '.length), RULE_FLAKY], what);
        if (l.decision === 'allow' && c.name === 'get_activity') assert.deepEqual([l.reason, l.rule], ['check allowed', RULE_ACTIVITY], what);
        if (l.decision === 'allow' && SIX.includes(c.name) && c.name !== 'get_activity') assert.deepEqual([l.reason, l.rule], ['scopes and conditions met', RULE_SCOPES], what);
      }
      const kinds = new Set(lines.map((l) => l.decision));
      assert.deepEqual([...kinds].sort(), ['allow', 'challenge', 'deny', 'hidden', 'unknown']);
    });

    it('holds no token, no secret, no other argument', () => {
      const text = readFileSync(server.audit, 'utf8');
      assert.ok(issuedTokens.size >= 20);
      for (const t of issuedTokens) {
        for (const part of t.split('.')) assert.ok(!text.includes(part), 'a token (or part of one) is in the audit file');
      }
      for (const secret of Object.values(SECRETS)) assert.ok(!text.includes(secret));
      for (const k of ['activity_id', 'segment_id', 'keys', 'confirm', 'mode', 'per_page']) assert.ok(!text.includes(`"${k}"`), `argument ${k} was logged`);
    });

    it('and the server log holds no token either', () => {
      for (const t of issuedTokens) {
        const sig = t.split('.')[2];
        const printed = server.log + server.out; // stderr, and stdout (which has the audit when no file does)
        assert.ok(!printed.includes(sig) && !printed.includes(t.split('.')[1]), 'a token is in the server log');
      }
    });
  });
});

// ================================================================== shadow mode

describe('shadow policies (get_athlete tightened to svc-all)', () => {
  let idp;
  let server;
  before(async () => {
    idp = await startIdp();
    server = await startLuamcp('shadow', {
      auth: { resource: RESOURCE, issuers: [{ issuer: idp.issuer }] }, shadow_policies: SHADOW,
    });
  });
  after(async () => {
    await server?.stop();
    await idp?.proc.stopProcess();
  });

  it('calls the shadow set would refuse are allowed, their audit line says what shadow decided', async () => {
    const user = await userToken(idp, 'carol', [`${STRAVA}get_athlete`, `${STRAVA}get_athlete_stats`]);
    const svc = await cc(idp, 'svc-all', [`${STRAVA}get_athlete`]);
    const u = await session(server, user);
    const s = await session(server, svc);

    const refused1 = await u.call('get_athlete', {});
    const refused2 = await u.call('get_athlete', {});
    const agreeAllow = await s.call('get_athlete', {});
    const agreeAllowUser = await u.call('get_athlete_stats', CALLS.get_athlete_stats.args);
    const agreeChallenge = await u.call('get_segment', CALLS.get_segment.args);
    const agreeHidden = await u.call('admin_reset', { confirm: true });

    assertResult(refused1, ATHLETE, 'live allows the user');
    assertResult(refused2, ATHLETE, 'live allows the user, again');
    assertResult(agreeAllow, ATHLETE, 'svc-all');
    assertResult(agreeAllowUser, CALLS.get_athlete_stats.result, 'stats');
    assertChallenge(agreeChallenge, `${STRAVA}get_segment`, 'segment');
    assertUnknown(agreeHidden, 'admin_reset', 'admin_reset');
    // tools/list follows the live policies
    assert.deepEqual(names(await u.list()), ['get_athlete', 'get_athlete_stats']);

    const lines = await waitFor('six audit lines', () => {
      const l = server.auditLines();
      return l.length >= 6 ? l : null;
    });
    await sleep(200);
    assert.equal(server.auditLines().length, 6);
    const byId = new Map(lines.map((l) => [l.request_id, l]));
    const line = (r) => byId.get(JSON.parse(r.text).id);
    for (const r of [refused1, refused2]) {
      const l = line(r);
      assert.equal(l.decision, 'allow');
      assert.equal(l.rule, RULE_SCOPES);
      assert.deepEqual(l.shadow, { decision: 'hidden', reason: 'client not allowed', rule: RULE_SHADOW_TIGHT }, JSON.stringify(l));
    }
    for (const [r, decision] of [[agreeAllow, 'allow'], [agreeAllowUser, 'allow'], [agreeChallenge, 'challenge'], [agreeHidden, 'hidden']]) {
      const l = line(r);
      assert.equal(l.decision, decision, JSON.stringify(l));
      assert.ok(!('shadow' in l), `both agree, yet a shadow field: ${JSON.stringify(l)}`);
    }
    const shadowNotes = () => server.log.split('\n').filter((l) => l.includes('shadow policies decide'));
    await waitFor('the two shadow notes in the log', () => shadowNotes().length >= 2);
    await sleep(100); // and no third one
    const notes = shadowNotes();
    assert.equal(notes.length, 2, server.log);
    for (const n of notes) {
      assert.match(n, / notice shadow policies decide hidden for tools\/call get_athlete \(live: allow; client not allowed\)$/);
    }
  });

  it('luamcp check names the shadow directory', () => {
    const r = run(['check', '--scripts', SCRIPTS, '--policies', POLICIES, '--shadow-policies', SHADOW]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`^8 tools from ${SCRIPTS}, 9 policy rules from ${POLICIES}, shadow: ${SHADOW}\n`));
  });
});

// ================================================================== scope hierarchy (--dev)

describe('scope hierarchy: strava:admin implies the six', () => {
  let server;
  let conf;
  before(async () => {
    const dir = path.join(TMP, 'dev');
    mkdirSync(dir);
    server = await startLuamcp('dev', {
      auth: { dev_key_file: path.join(dir, 'dev-issuer.json'), scope_implies: { [ADMIN]: SIX.map((t) => STRAVA + t) } },
    }, ['--dev']);
    conf = server.conf;
  });
  after(async () => { await server?.stop(); });

  const devToken = (scope) => {
    const r = run(['token', '--config', conf, '--scope', scope, '--sub', 'ops-1', '--client-id', 'ops-console']);
    assert.equal(r.code, 0, r.err);
    const token = r.out.trim();
    issuedTokens.add(token);
    assert.equal(claimsOf(token).scope, scope);
    return { access_token: token };
  };

  it('a token with only strava:admin may call all six', async () => {
    const s = await session(server, devToken(ADMIN));
    assert.deepEqual(names(await s.list()), [...SIX].sort());
    for (const tool of SIX) {
      // get_activity of another athlete: the implied scope passes the rule, the admin scope the check
      const args = tool === 'get_activity' ? { athlete_id: OTHER, activity_id: 9001 } : CALLS[tool].args;
      const result = tool === 'get_activity' ? { ...CALLS.get_activity.result, athlete: { id: OTHER } } : CALLS[tool].result;
      assertResult(await s.call(tool, args), result, `${tool} with ${ADMIN}`);
    }
  });

  it('a narrower scope implies nothing', async () => {
    const s = await session(server, devToken(`${STRAVA}get_athlete`));
    assertResult(await s.call('get_athlete', {}), ATHLETE, 'get_athlete');
    const r = await s.call('get_segment', CALLS.get_segment.args);
    assert.equal(r.status, 403);
    assert.match(r.headers.get('www-authenticate'), /^Bearer error="insufficient_scope", scope="mcp\.example\.com\/strava:get_segment", /);
  });

  it('the audit line of an implied call names the caller', async () => {
    const l = await waitFor('audit lines', () => {
      const all = server.auditLines();
      return all.length >= 8 ? all : null;
    });
    assert.ok(l.every((x) => x.subject === 'ops-1' && x.client_id === 'ops-console'));
  });
});

describe('without scope_implies, strava:admin alone opens nothing', () => {
  let idp;
  let server;
  before(async () => {
    idp = await startIdp();
    server = await startLuamcp('noimply', { auth: { resource: RESOURCE, issuers: [{ issuer: idp.issuer }] } });
  });
  after(async () => {
    await server?.stop();
    await idp?.proc.stopProcess();
  });

  it('every one of the six answers 403', async () => {
    const s = await session(server, mint(idp, { sub: 'ops-1', scopes: [ADMIN], claims: { athlete_id: ME } }));
    assert.deepEqual(names(await s.list()), []);
    for (const tool of SIX) assertChallenge(await s.call(tool, CALLS[tool].args), STRAVA + tool, tool);
  });
});

// ================================================================== luamcp check / explain

describe('luamcp check', () => {
  it('prints each tool with the scopes it needs, exit 0', () => {
    const r = run(['check', '--scripts', SCRIPTS, '--policies', POLICIES]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '', 'no warnings for the reference policies');
    const lines = r.out.split('\n');
    assert.equal(lines[0], `8 tools from ${SCRIPTS}, 9 policy rules from ${POLICIES}`);
    const table = {};
    for (const l of lines) {
      const m = l.match(/^ {2}(\S+) +(.+?) +(\S+\.lua:\d+)$/);
      if (m && m[1] !== 'tool') table[m[1]] = [m[2], m[3]];
    }
    const stub = path.join(SCRIPTS, 'strava_stub.lua');
    const src = readFileSync(stub, 'utf8').split('\n');
    const declared = (name) => `${stub}:${src.findIndex((l) => l.includes(`name = "${name}"`))}`; // the line of `mcp.tool {`, just above
    assert.deepEqual(table, {
      admin_reset: ['(clients: 1)', declared('admin_reset')],
      flaky: ['mcp:tools +check', declared('flaky')],
      get_activities: [`${STRAVA}get_activities`, declared('get_activities')],
      get_activity: [`${STRAVA}get_activity +check`, declared('get_activity')],
      get_activity_streams: [`${STRAVA}get_activity_streams`, declared('get_activity_streams')],
      get_athlete: [`${STRAVA}get_athlete`, declared('get_athlete')],
      get_athlete_stats: [`${STRAVA}get_athlete_stats`, declared('get_athlete_stats')],
      get_segment: [`${STRAVA}get_segment`, declared('get_segment')],
    });
  });

  it('a typo in a policy (an unknown field) fails with file:line, exit 1', () => {
    const dir = path.join(TMP, 'typo');
    mkdirSync(dir);
    const file = path.join(dir, 'strava.lua');
    writeFileSync(file, `${readFileSync(POLICY_FILE, 'utf8')}\nmcp.policy {\n  tool = "get_segment",\n  scope = "${STRAVA}get_segment",\n}\n`);
    const line = readFileSync(file, 'utf8').split('\n').lastIndexOf('mcp.policy {') + 1;
    assert.ok(line > 30);
    const r = run(['check', '--scripts', SCRIPTS, '--policies', dir]);
    assert.equal(r.code, 1, r.out + r.err);
    assert.equal(r.out, '');
    assert.match(r.err, new RegExp(`^${file}:${line}: unknown field 'scope' `, 'm'));
  });

  it('a rule that matches no tool (and a tool no rule covers) is warned about, exit 0', () => {
    const dir = path.join(TMP, 'unused');
    mkdirSync(dir);
    const file = path.join(dir, 'strava.lua');
    const text = readFileSync(POLICY_FILE, 'utf8').replace(/\nmcp\.policy \{ tool = "admin_reset"[^\n]*\n/, '\n')
      + `\nmcp.policy { tool = "get_athelete", scopes = "${STRAVA}get_athlete" }\n`;
    writeFileSync(file, text);
    const line = text.split('\n').findIndex((l) => l.includes('get_athelete')) + 1;
    const r = run(['check', '--scripts', SCRIPTS, '--policies', dir]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^ {2}admin_reset +NO POLICY: nobody can call it +\S+strava_stub\.lua:\d+$/m);
    assert.match(r.err, /^warnings:$/m);
    assert.match(r.err, new RegExp(`^policies matching no tool: ${file}:${line}$`, 'm'));
    assert.match(r.err, /strava_stub\.lua:\d+: tool 'admin_reset' is covered by no policy: nobody can call it$/m);
  });
});

describe('luamcp explain', () => {
  const claimsFile = path.join(TMP, 'claims-athlete-1001.json');
  writeFileSync(claimsFile, JSON.stringify({
    iss: 'https://idp.example.com', sub: 'athlete-1001', client_id: 'strava-web', aud: RESOURCE,
    scope: `${STRAVA}get_activity ${STRAVA}get_athlete`, athlete_id: ME, exp: 4102444800,
  }));
  const explain = (tool, args, file = claimsFile) => run(['explain', '--scripts', SCRIPTS, '--policies', POLICIES,
    '--tool', tool, '--claims', file, ...(args ? ['--args', JSON.stringify(args)] : [])]);
  const field = (out, k) => out.match(new RegExp(`^${k}: +(.*)$`, 'm'))?.[1];

  it('own athlete: allow, the check\'s rule, exit 0', () => {
    const r = explain('get_activity', { athlete_id: ME, activity_id: 9001 });
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(field(r.out, 'tool'), 'get_activity');
    assert.equal(field(r.out, 'caller'), 'sub=athlete-1001 client_id=strava-web issuer=https://idp.example.com');
    assert.equal(field(r.out, 'decision'), 'allow');
    assert.equal(field(r.out, 'reason'), 'check allowed');
    assert.equal(field(r.out, 'rule'), RULE_ACTIVITY);
  });

  it('another athlete: deny with the reason, exit 1', () => {
    const r = explain('get_activity', { athlete_id: OTHER, activity_id: 9001 });
    assert.equal(r.code, 1, r.out + r.err);
    assert.equal(field(r.out, 'decision'), 'deny');
    assert.equal(field(r.out, 'reason'), 'activity of another athlete');
    assert.equal(field(r.out, 'rule'), RULE_ACTIVITY);
  });

  it('a missing scope: challenge naming it, exit 1; a client not allowed: hidden, exit 1', () => {
    const r = explain('get_segment', { segment_id: 1 });
    assert.equal(r.code, 1, r.out + r.err);
    assert.equal(field(r.out, 'decision'), 'challenge');
    assert.equal(field(r.out, 'needs'), `${STRAVA}get_segment`);
    assert.equal(field(r.out, 'rule'), RULE_SCOPES);
    const h = explain('admin_reset', { confirm: true });
    assert.equal(h.code, 1);
    assert.equal(field(h.out, 'decision'), 'hidden');
    assert.equal(field(h.out, 'reason'), 'client not allowed');
  });

  it('get_athlete (declarative only): allow, exit 0', () => {
    const r = explain('get_athlete');
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(field(r.out, 'decision'), 'allow');
    assert.equal(field(r.out, 'reason'), 'scopes and conditions met');
  });
});

// ================================================================== known server defects

// Defects found by this suite and fixed: each test keeps them fixed.
describe('reasons, challenges and scope lists at their limits', () => {
  let server;
  let tok;
  const REGION = (i) => `${STRAVA}activities.region_${String(i).padStart(2, '0')}`;
  before(async () => {
    const dir = path.join(TMP, 'defects');
    mkdirSync(dir);
    // Policies that build a deny reason or a challenge from the arguments, and a tool that
    // needs 60 scopes (one rule each, as a per-region scheme would).
    writeFileSync(path.join(dir, 'p.lua'), [
      'mcp.policy { tool = "get_athlete_stats", check = function(c, t, args) return mcp.deny("no stats for " .. tostring(args.label)) end }',
      'mcp.policy { tool = "get_segment", check = function(c, t, args) return mcp.challenge(args.scope) end }',
      `for i = 1, 60 do mcp.policy { tool = "get_activities", scopes = string.format("${STRAVA}activities.region_%02d", i) } end`,
      '',
    ].join('\n'));
    server = await startLuamcp('defects', { policies: dir, auth: { dev_key_file: path.join(dir, 'dev-issuer.json') } }, ['--dev']);
    const r = run(['token', '--config', server.conf, '--scope', 'mcp:tools', '--sub', 'probe']);
    assert.equal(r.code, 0, r.err);
    tok = { access_token: r.out.trim() };
    issuedTokens.add(tok.access_token);
  });
  after(async () => { await server?.stop(); });

  it('a deny reason cut at 200 bytes inside a UTF-8 character still gets an answer and an audit line', async () => {
    const s = await session(server, tok);
    const label = `${'x'.repeat(200 - 'no stats for '.length - 1)}é`; // 'é' straddles byte 200
    let r;
    try {
      r = await s.call('get_athlete_stats', { athlete_id: 1, label });
    } catch (e) {
      assert.fail(`no HTTP answer: ${e.cause?.code ?? e.message}`);
    } finally {
      assert.equal((await fetch(`${server.base}/healthz`)).status, 200, 'the server goes on');
    }
    assert.equal(r.status, 200);
    assert.equal(r.body.result.isError, true);
    assert.match(r.body.result.content[0].text, /^Access denied: no stats for x+/);
    await waitFor('the deny audit line', () => server.auditLines().some((l) => l.tool === 'get_athlete_stats' && l.decision === 'deny'));
  });

  it('a challenge scope from a policy cannot forge or drop WWW-Authenticate parameters', async () => {
    // a scope that could not sit in the header unescaped is refused: the call is denied
    const s = await session(server, tok);
    for (const scope of ['x", error="invalid_token', 'x\r\nSet-Cookie: a=b', 'two words']) {
      const r = await s.call('get_segment', { segment_id: 1, scope });
      assert.equal(r.status, 200, scope);
      assert.equal(r.headers.get('www-authenticate'), null, scope);
      assert.equal(r.headers.get('set-cookie'), null, scope);
      assert.equal(r.body.result.isError, true);
      assert.equal(r.body.result.content[0].text,
                   'Access denied: the policy check asked for an invalid scope');
    }
  });

  it('the 401 scope hint is a well-formed header naming only real scopes, however many the policies use', async () => {
    const r = await post(server, null, null, { jsonrpc: '2.0', id: 1, method: 'ping' });
    assert.equal(r.status, 401);
    const h = r.headers.get('www-authenticate');
    const m = h.match(/^Bearer resource_metadata="[^"]*", scope="([^"]*)"$/);
    assert.ok(m, `malformed challenge (${h.length} bytes), ends with: ${h.slice(-60)}`);
    const meta = await (await fetch(`${server.base}/.well-known/oauth-protected-resource/mcp`)).json();
    for (const sc of m[1].split(' ')) assert.ok(meta.scopes_supported.includes(sc), `not a scope: ${sc}`);
  });

  it('a 403 challenge names every scope the tool needs', async () => {
    const s = await session(server, tok);
    const r = await s.call('get_activities', {});
    assert.equal(r.status, 403);
    const scope = r.headers.get('www-authenticate').match(/scope="([^"]*)"/)[1];
    assert.deepEqual(scope.split(' '), Array.from({ length: 60 }, (_, i) => REGION(i + 1)));
  });
});
