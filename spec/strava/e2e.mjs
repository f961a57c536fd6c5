// e2e.mjs — the Strava reference example (examples/strava) end to end: the real luamcp binary
// serving examples/strava/scripts and examples/strava/policies with a configuration derived
// from examples/strava/config.lua, the test IdP in its Cognito shape (spec/idp, oidc-provider),
// the official MCP TypeScript SDK client, and examples/strava/mock/strava_mock.mjs standing in
// for https://www.strava.com/api/v3 (HTTPS, a certificate made here with openssl). Only Strava
// is mocked; each process has a loopback port of its own.
//
//   check        `luamcp check` on the example lists the six tools, one scope each
//   401          no token: 401 with resource_metadata; the metadata names the IdP and scopes
//   all scopes   the SDK (client credentials, unaided discovery) lists six tools and calls each;
//                results are the mock's data in the shapes the tools promise
//   forwarding   the mock got the Strava token as its bearer token, never the MCP access token
//   one scope    a get_activities-only token sees one tool; the others are 403 insufficient_scope
//   user token   an authorization-code token of a user (Cognito's other grant) works the same
//   errors       Strava 401 (expired token, missing permission), 403, 404, 429 with and without
//                Retry-After, 500, bad arguments (never sent); a Strava error quoting the token
//   secrets      no Strava token in luamcp's stderr, its audit lines (stdout) or any result
//   base URL     the STRAVA_API_BASE override cannot point the tools at another host
//   shutdown     SIGTERM: exit status 0, no sanitizer report
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test e2e.mjs   (default ../../build/luamcp)
// Needs spec/idp/node_modules and spec/auth_e2e/node_modules (the SDK); ctest fixtures
// idp_node_modules and auth_e2e_node_modules install them.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { authorizationCodeToken, clientCredentialsToken } from '../idp/authcode.mjs';
import { ACTIVITIES, TOKENS } from '../../examples/strava/mock/strava_mock.mjs';
import { freePort, startReady as startReadyIn, stopAll, track, waitFor } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SDK = path.join(HERE, '..', 'auth_e2e', 'node_modules', '@modelcontextprotocol', 'sdk', 'dist', 'esm', 'client');
if (!existsSync(SDK)) {
  throw new Error('spec/auth_e2e/node_modules is missing: run npm ci there (ctest fixture auth_e2e_node_modules)');
}
if (!existsSync(path.join(HERE, '..', 'idp', 'node_modules'))) {
  throw new Error('spec/idp/node_modules is missing: run npm ci there (ctest fixture idp_node_modules)');
}
const { Client } = await import(path.join(SDK, 'index.js'));
const { StreamableHTTPClientTransport, StreamableHTTPError } = await import(path.join(SDK, 'streamableHttp.js'));
const { ClientCredentialsProvider } = await import(path.join(SDK, 'auth-extensions.js'));

const EXAMPLE = path.resolve(HERE, '..', '..', 'examples', 'strava');
const CONFIG = path.join(EXAMPLE, 'config.lua');
const SCRIPTS = path.join(EXAMPLE, 'scripts');
const POLICIES = path.join(EXAMPLE, 'policies');
const MOCK_JS = path.join(EXAMPLE, 'mock', 'strava_mock.mjs');
const IDP_JS = path.join(HERE, '..', 'idp', 'idp.mjs');
const BIN = path.resolve(HERE, process.env.LUAMCP_BIN || '../../build/luamcp');
if (!existsSync(BIN)) throw new Error(`LUAMCP_BIN must name the luamcp binary (got '${BIN}')`);

const TMP = mkdtempSync(path.join(os.tmpdir(), 'luamcp-strava-e2e-'));
const CA_FILE = path.join(TMP, 'mock-cert.pem'); // the mock's self-signed certificate
const KEY_FILE = path.join(TMP, 'mock-key.pem');
const PREFIX = 'mcp.example.com/strava:';
const SIX = ['get_activities', 'get_activity', 'get_activity_streams', 'get_athlete', 'get_athlete_stats', 'get_segment'];
const ALL_SCOPES = SIX.map((t) => PREFIX + t).join(' ');
const STRAVA_TOKEN = TOKENS.full;
const EXPIRED_TOKEN = 'expired-strava-token-5e0c1d';
const ECHOED_TOKEN = 'mock-strava-token-echoed-91ab27';
// every Strava token the tests hand to the tools: none may come out anywhere
const STRAVA_TOKENS = [STRAVA_TOKEN, TOKENS.read_only, EXPIRED_TOKEN, ECHOED_TOKEN];

// ------------------------------------------------------------------ processes

process.on('exit', () => {
  if (process.env.STRAVA_E2E_KEEP) console.error(`strava_e2e: kept ${TMP}`);
  else rmSync(TMP, { recursive: true, force: true });
});
after(stopAll); // children are tracked (and killed at exit) by the shared harness

const startReady = (what, args) => startReadyIn(what, args, { cwd: TMP });

// ------------------------------------------------------------------ the mock's control routes

function mockControl(mock, method, route, body) {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: mock.port, servername: 'www.strava.com', ca: mock.ca, method,
      path: route, headers: { 'content-type': 'application/json', host: `www.strava.com:${mock.port}` },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`mock ${method} ${route}: ${res.statusCode} ${text}`));
        else resolve(JSON.parse(text));
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
const mockRequests = async (mock) => (await mockControl(mock, 'GET', '/__mock/requests')).requests;
const mockReset = (mock) => mockControl(mock, 'POST', '/__mock/reset');
const mockFail = (mock, spec) => mockControl(mock, 'POST', '/__mock/fail', spec);

// ------------------------------------------------------------------ the configuration

// examples/strava/config.lua with exactly these changes, each of which must match once (so a
// change to the example that this derivation does not know breaks the test, loudly):
// loopback listen without TLS, the test IdP as the Cognito issuer with its clients svc-all
// (client credentials) and agent-public (authorization code), our
// URL as the resource, two workers, absolute script and policy directories, and egress pinned
// to the mock: www.strava.com:<mock port> resolves to 127.0.0.1, allowed as a private address,
// and the mock's certificate is the CA. egress.allow stays { "www.strava.com" }.
function deriveConfig(text, { port, issuer, mock, caFile }) {
  const once = (t, re, replacement, what) => {
    const n = t.match(new RegExp(re.source, `${re.flags.replace('g', '')}g`))?.length ?? 0;
    assert.equal(n, 1, `examples/strava/config.lua: expected exactly one ${what}, found ${n}`);
    return t.replace(re, replacement);
  };
  let c = text;
  c = once(c, /^ *listen = "[^"]*",.*$/m, `  listen = "127.0.0.1:${port}",`, 'listen');
  c = once(c, /^ *tls = \{[^}]*\},.*$/m, '  -- (no TLS on loopback)', 'tls line');
  c = once(c, /^ *workers = \d+,.*$/m, '  workers = 2,', 'workers');
  c = once(c, /^ *scripts = "scripts",$/m, `  scripts = ${JSON.stringify(SCRIPTS)},`, 'scripts');
  c = once(c, /^ *policies = "policies",$/m, `  policies = ${JSON.stringify(POLICIES)},`, 'policies');
  c = once(c, /resource = "https:\/\/[^"]+"/, `resource = "http://127.0.0.1:${port}/mcp"`, 'https resource');
  c = once(c, /issuer = "https:\/\/cognito-idp\.[a-z0-9-]+\.amazonaws\.com\/[^"]+"/, `issuer = ${JSON.stringify(issuer)}`, 'Cognito issuer');
  c = once(c, /client_ids = \{[^}]*\}/, 'client_ids = { "svc-all", "agent-public" }', 'client_ids');
  c = once(c, /^( *)allow = \{ "www\.strava\.com" \},$/m, (line, indent) => [
    line,
    `${indent}resolve = { "www.strava.com:${mock.port}:127.0.0.1" },`,
    `${indent}allow_private = { "127.0.0.1/32" },`,
    `${indent}ca_file = ${JSON.stringify(caFile)},`,
  ].join('\n'), 'egress allow of www.strava.com alone');
  return c;
}

// luamcp with the configuration derived from config.lua, on a port chosen first (the resource
// URL names it), with `base` as the secret STRAVA_API_BASE: the tools' base URL, Strava's host
// at the mock's port (scripts/lib/strava_api.lua). Its standard output (the audit) and error
// (the log) are kept apart.
let serverSeq = 0;
async function startLuamcp({ idp, mock, caFile, base }) {
  const production = readFileSync(CONFIG, 'utf8');
  let lastLog = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const conf = path.join(TMP, `luamcp-${++serverSeq}.conf.lua`);
    writeFileSync(conf, deriveConfig(production, { port, issuer: idp.issuer, mock, caFile }));
    const proc = track(spawn(BIN, ['serve', '--config', conf], {
      cwd: TMP,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LUAMCP_SECRET_STRAVA_API_BASE: base },
    }));
    const s = { proc, port, conf, url: `http://127.0.0.1:${port}/mcp`, stdout: '', stderr: '' };
    proc.stdout.on('data', (d) => { s.stdout += d; });
    proc.stderr.on('data', (d) => { s.stderr += d; });
    for (let i = 0; i < 400 && !proc.exited(); i++) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        if (r.status === 200) {
          s.health = await r.json();
          return s;
        }
      } catch { /* not listening yet */ }
      await sleep(50);
    }
    lastLog = s.stderr;
    await proc.stopProcess();
    if (!/in use|bind/i.test(lastLog)) break; // only a lost race for the port is worth a retry
  }
  throw new Error(`luamcp did not start:\n${lastLog}`);
}

// SIGTERM: exit status 0 and nothing from the sanitizers (in the asan variant)
async function stopCleanly(s) {
  const { code, signal } = await s.proc.stopProcess();
  assert.equal(signal, null, `luamcp died of ${signal}`);
  assert.equal(code, 0, s.stderr);
  assert.doesNotMatch(s.stderr, /AddressSanitizer|LeakSanitizer|runtime error:/, s.stderr);
}

// ------------------------------------------------------------------ clients

function decodeJwt(token) {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString()),
  };
}

async function ccToken(idp, scope) {
  return (await clientCredentialsToken({
    issuer: idp.issuer, clientId: 'svc-all', clientSecret: 'svc-all-secret', scope,
  })).access_token;
}

// fetch, remembering the Authorization header of every request to luamcp
function recordingFetch(seen) {
  return async (url, init = {}) => {
    const headers = new Headers(init.headers);
    seen.push({ url: String(url), authorization: headers.get('authorization') });
    return fetch(url, init);
  };
}

const results = []; // every tool result the tests got: none may hold a Strava token

async function call(client, name, args) {
  const res = await client.callTool({ name, arguments: args });
  results.push(res);
  return res;
}

async function callOk(client, name, args) {
  const res = await call(client, name, args);
  assert.ok(!res.isError, `${name}: ${JSON.stringify(res)}`);
  assert.ok(res.structuredContent, `${name} gave no structuredContent`);
  // the text item is the same object, for clients that read only text
  assert.deepEqual(JSON.parse(res.content[0].text), res.structuredContent);
  return res.structuredContent;
}

async function callError(client, name, args) {
  const res = await call(client, name, args);
  assert.equal(res.isError, true, `${name} should fail: ${JSON.stringify(res)}`);
  assert.equal(res.content.length, 1);
  assert.equal(res.content[0].type, 'text');
  return res.content[0].text;
}

// A JSON-RPC POST to luamcp by hand: status, challenge, body.
async function post(server, token, body, session) {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (session) {
    headers['mcp-session-id'] = session;
    headers['mcp-protocol-version'] = '2025-11-25';
  }
  const res = await fetch(server.url, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(30000) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, challenge: res.headers.get('www-authenticate'), session: res.headers.get('mcp-session-id'), body: json };
}

async function session(server, token) {
  const init = await post(server, token, {
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'strava-e2e', version: '1' } },
  });
  assert.equal(init.status, 200, JSON.stringify(init));
  assert.ok(init.session);
  const note = await post(server, token, { jsonrpc: '2.0', method: 'notifications/initialized' }, init.session);
  assert.equal(note.status, 202);
  return init.session;
}

// "k1=v1, k2=v2" of a Bearer challenge
function challengeParams(header) {
  assert.match(header ?? '', /^Bearer /);
  return Object.fromEntries([...header.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
}

// ------------------------------------------------------------------ expectations

const TOTAL = (count, distance_km, moving_time_s, moving_time, elapsed_time_s, elevation_gain_m, achievement_count) =>
  ({ count, distance_km, moving_time_s, moving_time, elapsed_time_s, elevation_gain_m, achievement_count });

const EXPECTED_ATHLETE = {
  id: 1001, username: 'ada_rides', name: 'Ada Lovelace', firstname: 'Ada', lastname: 'Lovelace',
  city: 'London', state: 'England', country: 'United Kingdom', sex: 'F', premium: true,
  measurement_preference: 'meters', ftp_watts: 245, weight_kg: 61.5, follower_count: 128,
  friend_count: 97, created_at: '2016-03-14T09:26:53Z',
  bikes: [{ id: 'b1234', name: 'Analytical Engine', distance_km: 18234.57, primary: true }],
  shoes: [{ id: 'g5678', name: 'Difference Runners', distance_km: 812.35, primary: true }],
};

const EXPECTED_STATS = {
  athlete_id: 1001, biggest_ride_distance_km: 161.5, biggest_climb_elevation_gain_m: 1240.5,
  ride: {
    recent: TOTAL(6, 312.04, 41220, '11:27:00', 45012, 2310.2, 14),
    ytd: TOTAL(41, 2011.3, 270110, '75:01:50', 291022, 15022, 77),
    all: TOTAL(903, 41203.31, 5901233, '1639:13:53', 6402210, 301233, 1410),
  },
  run: {
    recent: TOTAL(3, 21.01, 6920, '1:55:20', 7105, 88, 2),
    ytd: TOTAL(22, 160.44, 57010, '15:50:10', 58230, 910, 9),
    all: TOTAL(388, 3105.52, 1102330, '306:12:10', 1140021, 21022, 301),
  },
  swim: {
    recent: TOTAL(1, 1.8, 2700, '0:45:00', 2700, 0, 0),
    ytd: TOTAL(4, 7.2, 10800, '3:00:00', 11040, 0, 0),
    all: TOTAL(35, 61.5, 93000, '25:50:00', 95500, 0, 0),
  },
};

const LAKE_SWIM = {
  id: 9004, name: 'Lake Swim', sport_type: 'Swim', start_date: '2024-05-06T06:45:00Z',
  start_date_local: '2024-05-06T07:45:00Z', timezone: '(GMT+00:00) Europe/London', distance_m: 1800,
  distance_km: 1.8, moving_time_s: 2700, moving_time: '0:45:00', elapsed_time_s: 2700, elevation_gain_m: 0,
  average_speed_mps: 0.667, max_speed_mps: 0.9, kudos_count: 4, achievement_count: 0, trainer: false,
  commute: false, private: true,
};

const BOX_HILL_LOOP = {
  id: 9003, name: 'Box Hill Loop', sport_type: 'Ride', start_date: '2024-05-04T06:12:40Z',
  start_date_local: '2024-05-04T07:12:40Z', timezone: '(GMT+00:00) Europe/London', distance_m: 42150.3,
  distance_km: 42.15, moving_time_s: 5400, moving_time: '1:30:00', elapsed_time_s: 5977, elevation_gain_m: 388,
  average_speed_mps: 7.806, max_speed_mps: 17.3, average_heartrate_bpm: 141.2, max_heartrate_bpm: 176,
  average_watts: 188.4, kilojoules: 1017.4, kudos_count: 23, achievement_count: 5, trainer: false,
  commute: false, private: false, gear_id: 'b1234',
};

const HAWK_HILL = {
  id: 229781, name: 'Hawk Hill', activity_type: 'Ride', distance_m: 2684.82, average_grade_pct: 5.7,
  maximum_grade_pct: 14.2, elevation_high_m: 245.3, elevation_low_m: 92.4, elevation_gain_m: 155.733,
  climb_category: 1, climb_category_label: 'Cat 4', start_latlng: [37.8331119, -122.4834356],
  end_latlng: [37.8280722, -122.4981393], city: 'San Francisco', state: 'CA', country: 'United States',
  private: false, hazardous: false, starred: false, effort_count: 309974, athlete_count: 30623,
  star_count: 2428, kom_time: '5:49', qom_time: '7:20',
  athlete_pr: { elapsed_time_s: 553, elapsed_time: '0:09:13', date: '1993-04-03', effort_count: 2 },
};

const stream = (id, type) => ACTIVITIES.find((a) => a.id === id).stream(type);

// ------------------------------------------------------------------ the tests

describe('the Strava example', () => {
  let idp;
  let mock;
  let server;
  let sdk; // the all-scopes SDK client
  let jwt; // the access token it used
  const seen = []; // Authorization headers the SDK sent to luamcp

  before(async () => {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', KEY_FILE, '-out', CA_FILE, '-days', '2',
      '-subj', '/CN=www.strava.com', '-addext', 'subjectAltName=DNS:www.strava.com',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    [idp, mock] = await Promise.all([
      startReady('the IdP', [IDP_JS, '--port', '0', '--shape', 'cognito', '--max-lifetime', '300']),
      startReady('the Strava mock', [MOCK_JS, '--port', '0', '--max-lifetime', '300', '--cert', CA_FILE, '--key', KEY_FILE]),
    ]);
    mock.ca = readFileSync(CA_FILE);
    assert.equal(mock.url, `https://www.strava.com:${mock.port}/api/v3`);
    assert.deepEqual(mock.tokens, { ...TOKENS, extra: [] });

    server = await startLuamcp({ idp, mock, caFile: CA_FILE, base: mock.url });
    assert.equal(server.health.tools, 6);
  });

  after(async () => {
    await sdk?.client.close();
  });

  it('luamcp check: the example has six tools, each needing its own scope', () => {
    for (const [what, conf] of [['config.lua', CONFIG], ['the derived test config', server.conf]]) {
      const r = spawnSync(BIN, ['check', '--config', conf], { encoding: 'utf8', cwd: TMP });
      assert.equal(r.status, 0, `${what}: ${r.stderr}`);
      assert.equal(r.stderr, '', `${what}: no warnings expected`);
      assert.match(r.stdout, /^6 tools from .*examples\/strava\/scripts, 6 policy rules from .*examples\/strava\/policies$/m);
      const rows = [...r.stdout.matchAll(/^ {2}(\w+) +(\S+) +(\S+:\d+)$/gm)].filter((m) => m[1] !== 'tool');
      assert.deepEqual(rows.map((m) => [m[1], m[2]]), SIX.map((t) => [t, PREFIX + t]), `${what}:\n${r.stdout}`);
      for (const m of rows) assert.match(m[3], /examples\/strava\/scripts\/strava\.lua:\d+$/);
    }
    // the example itself stays production-shaped: HTTPS to Strava only, nothing loopback
    const production = readFileSync(CONFIG, 'utf8');
    assert.match(production, /preset = "cognito"/);
    assert.match(production, /allow = \{ "www\.strava\.com" \},/);
    assert.doesNotMatch(production, /allow_http|allow_private|resolve|ca_file|127\.0\.0\.1|http:\/\//);
    assert.match(readFileSync(path.join(SCRIPTS, 'lib', 'strava_api.lua'), 'utf8'),
      /M\.PRODUCTION = "https:\/\/www\.strava\.com\/api\/v3"/);
  });

  it('no token: 401 pointing at the metadata, which names the Cognito issuer and the six scopes', async () => {
    const r = await post(server, undefined, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(r.status, 401);
    const prm = `http://127.0.0.1:${server.port}/.well-known/oauth-protected-resource/mcp`;
    const c = challengeParams(r.challenge);
    assert.equal(c.resource_metadata, prm);
    assert.deepEqual(c.scope.split(' ').sort(), ALL_SCOPES.split(' ').sort());
    const meta = await (await fetch(prm)).json();
    assert.equal(meta.resource, server.url);
    assert.deepEqual(meta.authorization_servers, [idp.issuer]);
    assert.deepEqual([...meta.scopes_supported].sort(), ALL_SCOPES.split(' ').sort());
    assert.equal((await mockRequests(mock)).length, 0, 'nothing reached Strava');
  });

  it('the SDK with all six scopes (client credentials, unaided) lists the six tools', async () => {
    const authProvider = new ClientCredentialsProvider({
      clientId: 'svc-all', clientSecret: 'svc-all-secret', scope: ALL_SCOPES, expectedIssuer: idp.issuer,
    });
    const transport = new StreamableHTTPClientTransport(new URL(server.url), { authProvider, fetch: recordingFetch(seen) });
    const client = new Client({ name: 'strava-e2e', version: '1.0.0' });
    await client.connect(transport);
    sdk = { client, authProvider };
    jwt = authProvider.tokens().access_token;
    const { header, payload } = decodeJwt(jwt);
    assert.equal(header.typ, 'JWT');
    assert.equal(payload.token_use, 'access');
    assert.equal(payload.client_id, 'svc-all');
    assert.equal(payload.aud, undefined, 'a Cognito access token has no aud');
    assert.deepEqual(payload.scope.split(' ').sort(), ALL_SCOPES.split(' ').sort());

    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), SIX);
    for (const t of tools) {
      assert.ok(t.description.length > 40, `${t.name}: a description an agent can use`);
      assert.equal(t.inputSchema.additionalProperties, false, t.name);
      assert.ok(t.inputSchema.required.includes('strava_token'), t.name);
      assert.equal(t.inputSchema.properties.strava_token.type, 'string', t.name);
      assert.equal(t.outputSchema?.type, 'object', `${t.name} declares its output`);
      assert.equal(t.annotations?.readOnlyHint, true, t.name);
    }
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    assert.deepEqual(byName.get_activities.inputSchema.properties.per_page, {
      type: 'integer', minimum: 1, maximum: 200, default: 30, description: 'Activities per page (Strava allows at most 200).',
    });
    assert.deepEqual(byName.get_activity.inputSchema.required, ['strava_token', 'activity_id']);
    assert.deepEqual(byName.get_activity_streams.inputSchema.required, ['strava_token', 'activity_id', 'keys']);
    assert.deepEqual(byName.get_segment.inputSchema.required, ['strava_token', 'segment_id']);
  });

  it('calls each of the six tools and gets the mock\'s data in the promised shapes', async () => {
    await mockReset(mock);
    const c = sdk.client;
    const t = { strava_token: STRAVA_TOKEN };

    assert.deepEqual(await callOk(c, 'get_athlete', t), EXPECTED_ATHLETE);
    // without athlete_id: the token's athlete, found through /athlete first
    assert.deepEqual(await callOk(c, 'get_athlete_stats', t), EXPECTED_STATS);

    const page2 = await callOk(c, 'get_activities', { ...t, page: 2, per_page: 2 });
    assert.deepEqual(page2, { page: 2, per_page: 2, count: 2, next_page: 3, activities: [LAKE_SWIM, BOX_HILL_LOOP] });

    const act = await callOk(c, 'get_activity', { ...t, activity_id: 9003, include_all_efforts: true });
    const { description, calories, device_name, gear, segment_effort_count, segment_efforts, splits_metric, best_efforts, ...summary } = act;
    assert.deepEqual(summary, BOX_HILL_LOOP);
    assert.deepEqual({ description, calories, device_name, gear, segment_effort_count }, {
      description: 'Zig-zags twice, cake at the top.', calories: 1119.1, device_name: 'Garmin Edge 830',
      gear: { id: 'b1234', name: 'Analytical Engine', distance_km: 18234.57 }, segment_effort_count: 2,
    });
    assert.deepEqual(segment_efforts, [
      { id: 9003001, segment_id: 4629741, name: 'Box Hill ZigZag', elapsed_time_s: 431, moving_time_s: 428,
        distance_m: 2481.2, start_date: '2024-05-04T06:12:40Z', average_grade_pct: 4.6, pr_rank: 1 },
      { id: 9003002, segment_id: 229781, name: 'Hawk Hill', elapsed_time_s: 612, moving_time_s: 609,
        distance_m: 2684.82, start_date: '2024-05-04T06:12:40Z', average_grade_pct: 5.7 },
    ]);
    assert.equal(splits_metric.length, 43, '42 whole kilometres and the rest');
    assert.deepEqual(
      splits_metric.map(({ split, distance_m, moving_time_s, elapsed_time_s }) => [split, distance_m, moving_time_s, elapsed_time_s]).filter((_, i) => i === 0 || i === 42),
      [[1, 1000, 128, 129], [43, 150.3, 19, 20]],
    );
    assert.deepEqual(best_efforts, []);
    // a run has best efforts
    const run = await callOk(c, 'get_activity', { ...t, activity_id: 9005 });
    assert.deepEqual(run.best_efforts.map((b) => [b.name, b.distance_m, b.pr_rank ?? null]),
      [['400m', 400, null], ['1/2 mile', 805, null], ['1k', 1000, null], ['1 mile', 1609, null], ['5k', 5000, 2]]);
    assert.equal(run.best_efforts[4].elapsed_time_s, 1331);
    assert.equal(run.best_efforts[4].elapsed_time, '0:22:11');

    // streams: 1081 samples of which 5 evenly spaced ones, first and last included
    const st = await callOk(c, 'get_activity_streams', { ...t, activity_id: 9003, keys: ['time', 'heartrate', 'latlng', 'watts', 'temp'], max_points: 5 });
    const idx = [0, 270, 540, 810, 1080];
    const pick = (type) => idx.map((i) => stream(9003, type)[i]);
    assert.deepEqual(st, {
      activity_id: 9003, original_size: 1081, points: 5, missing: [],
      streams: {
        time: [0, 1350, 2700, 4050, 5400], distance: pick('distance'), heartrate: pick('heartrate'),
        latlng: pick('latlng'), watts: pick('watts'), temp: [14, 14, 15, 16, 17],
      },
      units: {
        time: 's since start', distance: 'm', heartrate: 'bpm', latlng: '[latitude, longitude] degrees',
        watts: 'W', temp: 'degrees Celsius',
      },
    });
    // short enough to come whole; a stream the activity lacks is reported missing
    const runStreams = await callOk(c, 'get_activity_streams', { ...t, activity_id: 9002, keys: ['watts', 'heartrate', 'heartrate'] });
    assert.deepEqual(runStreams, {
      activity_id: 9002, original_size: 493, points: 493, missing: ['watts'],
      streams: { distance: stream(9002, 'distance'), heartrate: stream(9002, 'heartrate') },
      units: { distance: 'm', heartrate: 'bpm' },
    });

    assert.deepEqual(await callOk(c, 'get_segment', { ...t, segment_id: 229781 }), HAWK_HILL);

    // what Strava was asked, exactly
    const reqs = await mockRequests(mock);
    assert.deepEqual(reqs.map((r) => [r.method, r.path, r.query, r.status]), [
      ['GET', '/api/v3/athlete', {}, 200],
      ['GET', '/api/v3/athlete', {}, 200],
      ['GET', '/api/v3/athletes/1001/stats', {}, 200],
      ['GET', '/api/v3/athlete/activities', { page: '2', per_page: '2' }, 200],
      ['GET', '/api/v3/activities/9003', { include_all_efforts: 'true' }, 200],
      ['GET', '/api/v3/activities/9005', { include_all_efforts: 'false' }, 200],
      ['GET', '/api/v3/activities/9003/streams', { keys: 'time,heartrate,latlng,watts,temp', key_by_type: 'true' }, 200],
      ['GET', '/api/v3/activities/9002/streams', { keys: 'watts,heartrate', key_by_type: 'true' }, 200],
      ['GET', '/api/v3/segments/229781', {}, 200],
    ]);
  });

  it('Strava gets the user\'s Strava token as bearer, and never the MCP access token', async () => {
    const reqs = await mockRequests(mock);
    assert.ok(reqs.length >= 9);
    // the SDK really used that JWT with luamcp
    const toLuamcp = seen.filter((s) => s.url.startsWith(server.url) && s.authorization);
    assert.ok(toLuamcp.length >= 10);
    for (const s of toLuamcp) assert.equal(s.authorization, `Bearer ${jwt}`);
    const signature = jwt.split('.')[2];
    for (const r of reqs) {
      assert.equal(r.authorization, `Bearer ${STRAVA_TOKEN}`, `${r.path}`);
      assert.deepEqual(Object.keys(r.headers).sort(), ['accept', 'accept-encoding', 'authorization', 'host', 'user-agent'], `${r.path}: no other header`);
      assert.equal(r.headers.host, `www.strava.com:${mock.port}`);
      const all = JSON.stringify(r);
      assert.ok(!all.includes(jwt) && !all.includes(signature), `the MCP token reached Strava: ${all}`);
    }
  });

  it('a token with only get_activities sees one tool; the others are 403 insufficient_scope', async () => {
    await mockReset(mock);
    const tok = await ccToken(idp, `${PREFIX}get_activities`);
    assert.equal(decodeJwt(tok).payload.scope, `${PREFIX}get_activities`);
    const client = new Client({ name: 'strava-e2e-narrow', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(server.url), {
      requestInit: { headers: { Authorization: `Bearer ${tok}` } },
    }));
    try {
      assert.deepEqual((await client.listTools()).tools.map((x) => x.name), ['get_activities']);
      const list = await callOk(client, 'get_activities', { strava_token: STRAVA_TOKEN, per_page: 1 });
      assert.deepEqual(list.activities.map((a) => a.id), [9006]);
      assert.equal(list.next_page, 2);
      for (const name of ['get_athlete', 'get_activity']) {
        await assert.rejects(
          client.callTool({ name, arguments: { strava_token: STRAVA_TOKEN, activity_id: 9003 } }),
          (e) => e instanceof StreamableHTTPError && e.code === 403,
          `${name} should be refused`,
        );
      }
    } finally {
      await client.close();
    }
    // by hand, the exact answers: the challenge names the one scope the tool needs
    const sid = await session(server, tok);
    for (const name of SIX.filter((n) => n !== 'get_activities')) {
      const r = await post(server, tok, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: { strava_token: STRAVA_TOKEN, activity_id: 9003, segment_id: 229781, keys: ['time'] } } }, sid);
      assert.equal(r.status, 403, name);
      const c = challengeParams(r.challenge);
      assert.equal(c.error, 'insufficient_scope', name);
      assert.equal(c.scope, PREFIX + name);
      assert.equal(c.resource_metadata, `http://127.0.0.1:${server.port}/.well-known/oauth-protected-resource/mcp`);
    }
    // a tool that does not exist: the JSON-RPC unknown-tool error
    const r = await post(server, tok, { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'get_routes', arguments: {} } }, sid);
    assert.equal(r.status, 200);
    assert.equal(r.body.error.code, -32602);
    assert.match(r.body.error.message, /Unknown tool: get_routes/);
    // only the allowed call reached Strava
    assert.deepEqual((await mockRequests(mock)).map((x) => [x.path, x.query]),
      [['/api/v3/athlete/activities', { page: '1', per_page: '1' }]]);
  });

  it('a user\'s authorization-code token (agent-public, PKCE) works the same way', async () => {
    await mockReset(mock);
    const tok = (await authorizationCodeToken({
      issuer: idp.issuer, scope: `${PREFIX}get_athlete ${PREFIX}get_segment`, login: 'ada',
    })).access_token;
    const { payload } = decodeJwt(tok);
    assert.deepEqual([payload.token_use, payload.client_id, payload.username, payload.sub], ['access', 'agent-public', 'ada', 'ada']);
    const client = new Client({ name: 'strava-e2e-user', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(server.url), {
      requestInit: { headers: { Authorization: `Bearer ${tok}` } },
    }));
    try {
      assert.deepEqual((await client.listTools()).tools.map((x) => x.name).sort(), ['get_athlete', 'get_segment']);
      assert.deepEqual(await callOk(client, 'get_athlete', { strava_token: STRAVA_TOKEN }), EXPECTED_ATHLETE);
    } finally {
      await client.close();
    }
    const reqs = await mockRequests(mock);
    assert.deepEqual(reqs.map((x) => [x.path, x.authorization]), [['/api/v3/athlete', `Bearer ${STRAVA_TOKEN}`]]);
    assert.equal(JSON.stringify(reqs).includes(tok.split('.')[2]), false);
    const agentLines = () => server.stdout.split('\n').filter((l) => l.includes('"agent-public"')).map((l) => JSON.parse(l));
    await waitFor('the audit record', () => agentLines().length > 0); // written after the answer
    assert.deepEqual(agentLines().map((a) => [a.decision, a.tool, a.subject]), [['allow', 'get_athlete', 'ada']]);
  });

  it('an expired Strava token: the tool error says Strava refused the Strava token', async () => {
    await mockReset(mock);
    const text = await callError(sdk.client, 'get_athlete', { strava_token: EXPIRED_TOKEN });
    assert.match(text, /^Strava refused the Strava token \(HTTP 401 Unauthorized\)/);
    assert.match(text, /expired/);
    assert.match(text, /refresh_token/);
    const reqs = await mockRequests(mock);
    assert.deepEqual(reqs.map((x) => [x.path, x.authorization, x.status]), [['/api/v3/athlete', `Bearer ${EXPIRED_TOKEN}`, 401]]);
  });

  it('a Strava token without activity:read: the tool error names the missing permission', async () => {
    const text = await callError(sdk.client, 'get_activities', { strava_token: TOKENS.read_only });
    assert.match(text, /lacks the 'activity:read' permission/);
    assert.match(text, /authorize this app again/);
    // the same token reads the profile
    assert.equal((await callOk(sdk.client, 'get_athlete', { strava_token: TOKENS.read_only })).id, 1001);
  });

  it('404 and 403: the object does not exist, or is another athlete\'s', async () => {
    const t = { strava_token: STRAVA_TOKEN };
    assert.match(await callError(sdk.client, 'get_activity', { ...t, activity_id: 424242 }),
      /^Activity 424242 does not exist on Strava.*\(HTTP 404 Not Found\)/);
    assert.match(await callError(sdk.client, 'get_activity_streams', { ...t, activity_id: 424242, keys: ['time'] }),
      /^Activity 424242 does not exist on Strava/);
    assert.match(await callError(sdk.client, 'get_segment', { ...t, segment_id: 1 }),
      /^Segment 1 does not exist on Strava/);
    assert.match(await callError(sdk.client, 'get_athlete_stats', { ...t, athlete_id: 2002 }),
      /^Strava forbids access to the statistics of athlete 2002 \(HTTP 403 Forbidden\)/);
    // a 404 Strava gives for an object that exists (the mock's injected failure)
    await mockFail(mock, { status: 404, path: '/segments/' });
    assert.match(await callError(sdk.client, 'get_segment', { ...t, segment_id: 229781 }), /^Segment 229781 does not exist/);
    assert.deepEqual(await callOk(sdk.client, 'get_segment', { ...t, segment_id: 229781 }), HAWK_HILL);
  });

  it('429: the tool error says rate limited and when to retry', async () => {
    await mockReset(mock);
    const t = { strava_token: STRAVA_TOKEN };
    await mockFail(mock, { status: 429, retry_after: 42, path: '/athlete/activities' });
    const text = await callError(sdk.client, 'get_activities', t);
    assert.match(text, /^Strava rate limit exceeded \(HTTP 429; usage/);
    assert.match(text, /usage 201\/200 in 15 minutes/);
    assert.match(text, /Retry after 42 seconds\./);
    // no Retry-After (Strava's usual): until the 15-minute window resets
    await mockFail(mock, { status: 429, path: '/athlete/activities' });
    const text2 = await callError(sdk.client, 'get_activities', t);
    const m = text2.match(/Retry after (\d+) seconds, when the 15-minute window resets/);
    assert.ok(m, text2);
    assert.ok(Number(m[1]) >= 1 && Number(m[1]) <= 900, text2);
    // the failures were used up: the next call goes through
    assert.equal((await callOk(sdk.client, 'get_activities', t)).count, 6);
    assert.deepEqual((await mockRequests(mock)).map((x) => x.status), [429, 429, 200]);
  });

  it('other failures: a Strava 500, bad arguments (never sent), a Strava error quoting the token', async () => {
    await mockReset(mock);
    const t = { strava_token: STRAVA_TOKEN };
    await mockFail(mock, { status: 500 });
    assert.match(await callError(sdk.client, 'get_athlete', t), /^Strava is failing \(HTTP 500\); try again/);
    // arguments outside the schema are refused before any request
    assert.equal(await callError(sdk.client, 'get_activities', { ...t, per_page: 201 }), 'Invalid arguments: $.per_page: must be <= 200');
    assert.match(await callError(sdk.client, 'get_activity', { ...t, activity_id: 0 }), /^Invalid arguments: \$\.activity_id: must be >= 1/);
    assert.match(await callError(sdk.client, 'get_activity', t), /^Invalid arguments: .*activity_id/);
    assert.match(await callError(sdk.client, 'get_activity_streams', { ...t, activity_id: 9003, keys: ['power'] }), /^Invalid arguments: \$\.keys\[0\]/);
    assert.match(await callError(sdk.client, 'get_activities', { ...t, after: 1714900000, before: 1714800000 }), /after must be earlier than before/);
    const bad = await callError(sdk.client, 'get_athlete', { strava_token: 'not a token; rm -rf' });
    assert.match(bad, /^Invalid arguments: \$\.strava_token: does not match pattern/);
    assert.equal(bad.includes('rm -rf'), false, 'the refused value is not quoted');
    assert.deepEqual((await mockRequests(mock)).map((x) => [x.path, x.status]), [['/api/v3/athlete', 500]]);
    // Strava quoting the token in an error: it reaches the agent as [credential]
    await mockFail(mock, { status: 400, message: `token ${STRAVA_TOKEN} is not valid here` });
    const quoted = await callError(sdk.client, 'get_athlete', t);
    assert.equal(quoted, 'Strava answered HTTP 400: token [credential] is not valid here.');
    // before/after filter (Unix seconds) on a good day
    const mid = await callOk(sdk.client, 'get_activities', {
      ...t, after: Date.parse('2024-05-03T00:00:00Z') / 1000, before: Date.parse('2024-05-09T00:00:00Z') / 1000,
    });
    assert.deepEqual({ ...mid, activities: mid.activities.map((a) => a.id) }, { page: 1, per_page: 30, count: 3, activities: [9005, 9004, 9003] });
  });

  it('no Strava token in luamcp\'s stderr, its audit lines (stdout) or any result', async () => {
    assert.ok(results.length >= 30, `${results.length} results`);
    const everything = JSON.stringify(results);
    for (const tok of STRAVA_TOKENS) {
      assert.equal(everything.includes(tok), false, `a result holds ${tok}`);
      assert.equal(server.stderr.includes(tok), false, `luamcp's log holds ${tok}`);
      assert.equal(server.stdout.includes(tok), false, `luamcp's audit holds ${tok}`);
    }
    assert.equal(server.stderr.includes(jwt), false);
    assert.equal(server.stdout.includes(jwt), false);
    // the audit: one JSON line per tools/call decision, with the tool and the caller, no args
    const audit = server.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const decisions = new Set(audit.map((a) => `${a.decision} ${a.tool}`));
    for (const d of ['allow get_athlete', 'allow get_activities', 'allow get_activity_streams', 'allow get_segment',
      'challenge get_athlete', 'challenge get_segment', 'unknown get_routes']) {
      assert.ok(decisions.has(d), `audit has no "${d}": ${[...decisions].join(', ')}`);
    }
    for (const a of audit) {
      assert.ok(['svc-all', 'agent-public'].includes(a.client_id), JSON.stringify(a));
      assert.equal(a.args, undefined, 'no rule logs arguments');
    }
    // the egress log: every backend call went to www.strava.com at the mock's port
    const egress = [...server.stderr.matchAll(/egress: tool (\w+) GET (\S+) -> (\d+)/g)];
    assert.ok(egress.length >= 20);
    for (const m of egress) assert.equal(m[2], `www.strava.com:${mock.port}`);
  });

  it('STRAVA_API_BASE cannot move Strava to another host', async () => {
    await mockReset(mock);
    // the mock's own address and port, but not Strava's name: refused by the module
    const other = await startLuamcp({ idp, mock, caFile: CA_FILE, base: `https://127.0.0.1:${mock.port}/api/v3` });
    try {
      const tok = await ccToken(idp, `${PREFIX}get_athlete`);
      const sid = await session(other, tok);
      const r = await post(other, tok, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get_athlete', arguments: { strava_token: STRAVA_TOKEN } } }, sid);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.result, { content: [{ type: 'text', text: "tool 'get_athlete' failed (see server log)" }], isError: true });
      assert.match(other.stderr, /the secret STRAVA_API_BASE must be https:\/\/www\.strava\.com\[:PORT\]\/PATH/);
      assert.deepEqual(await mockRequests(mock), [], 'nothing was sent');
    } finally {
      await stopCleanly(other);
    }
  });

  it('SIGTERM: luamcp exits 0 without a sanitizer report; the mock and the IdP stop cleanly', async () => {
    await sdk.client.close();
    sdk = undefined;
    await stopCleanly(server);
    const m = await mock.proc.stopProcess();
    assert.deepEqual(m, { code: 0, signal: null }, mock.stderr());
    await idp.proc.stopProcess();
  });
});
