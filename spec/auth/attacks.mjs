// attacks.mjs — luamcp's bearer-token check under attack (docs/authentication.md, and
// /tmp/brief/http.md for the transport). Real servers on free loopback ports, keys made here
// with node:crypto, every token signed by hand (harness.mjs) so each byte is ours.
//
// Every refusal is checked for: the exact status; the exact WWW-Authenticate shape; the exact
// JSON-RPC body; the reason the server logged (so a test refuses for the reason it names, not
// for another one); that neither the body, the challenge nor the log carries the token or a
// claim value; that no Lua ran (the request's PROBE-CALLED marker never reaches the log); and
// that the next valid request on the same server is served.
//
//   LUAMCP_BIN=build/luamcp node --test spec/auth/attacks.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  Conn, ISSUER, b64u, generateKeys, jws, parseChallenge, publicJwk, rawRequest, request,
  runToExit, segment, startServer, tempDir,
} from './harness.mjs';

const BIN = process.env.LUAMCP_BIN || '/work/main/build/luamcp';
if (!fs.existsSync(BIN)) throw new Error(`LUAMCP_BIN must name the luamcp binary (got '${BIN}')`);

const OTHER_ISSUER = 'https://other.test';
const HS_ISSUER = 'https://hs.test';
const HS_SECRET = crypto.randomBytes(32).toString('hex'); // 64 bytes of text
const HS_SECRET_ENV = 'LUAMCP_AUTH_ATTACKS_SECRET';

// ------------------------------------------------------------------ fixtures

const K = generateKeys();
const DIR = tempDir('attacks');
const SCRIPTS = path.join(DIR, 'scripts');
const POLICIES = path.join(DIR, 'policies');
fs.mkdirSync(SCRIPTS);
fs.mkdirSync(POLICIES);

// Policies deny by default: these tests are about authentication, so every verified caller may
// call every tool (the required-scope server adds its scope through auth.scopes).
fs.writeFileSync(path.join(POLICIES, 'allow.lua'), `
mcp.policy { tool = "*", description = "auth attack tests: any verified caller" }
`);

fs.writeFileSync(path.join(SCRIPTS, 'probe.lua'), `
local function opt(v) if v == nil then return mcp.null end return v end

mcp.tool {
  name = "probe",
  description = "Reports the verified caller.",
  inputSchema = { type = "object", properties = { marker = { type = "string" } }, required = { "marker" } },
  handler = function(args, ctx)
    mcp.log("notice", "PROBE-CALLED " .. args.marker)
    local a = ctx.auth
    return {
      subject = opt(a.subject), client_id = opt(a.client_id), issuer = opt(a.issuer),
      scopes = a.scopes:list(), has = a.scopes:has("read"), read = a.scopes:has("read"),
      n_scopes = #a.scopes, expires_at = a.expires_at, canary = opt(a.claims.canary),
    }
  end,
}

-- what indexing scopes[name] does (an error, except for the method names) and scopes:has(name)
mcp.tool {
  name = "scopeidx",
  description = "Indexes ctx.auth.scopes.",
  inputSchema = { type = "object", properties = { name = { type = "string" } }, required = { "name" } },
  handler = function(args, ctx)
    local ok, v = pcall(function() return ctx.auth.scopes[args.name] end)
    return { indexed = ok, has = ctx.auth.scopes:has(args.name) }
  end,
}
`);

fs.writeFileSync(path.join(SCRIPTS, 'tamper.lua'), `
-- Each way of writing into ctx.auth must fail the call (read-only).
mcp.tool {
  name = "tamper",
  description = "Tries to modify ctx.auth.",
  inputSchema = { type = "object", properties = { what = { type = "string" } }, required = { "what" } },
  handler = function(args, ctx)
    local a, w = ctx.auth, args.what
    if w == "subject" then a.subject = "root"
    elseif w == "new_field" then a.admin = true
    elseif w == "expires_at" then a.expires_at = 0
    elseif w == "claims" then a.claims = { sub = "root" }
    elseif w == "scopes" then a.scopes = { "admin" }
    elseif w == "scope_field" then a.scopes.admin = true
    elseif w == "scope_insert" then table.insert(a.scopes, "admin")
    elseif w == "scope_meta" then setmetatable(a.scopes, {})
    elseif w == "auth_meta" then setmetatable(a, {})
    else error("unknown case " .. w) end
    return "modified " .. w
  end,
}

-- Writes that bypass __newindex or go around ctx.auth: they may only affect this very call.
mcp.tool {
  name = "sidestep",
  description = "Writes around the read-only proxy.",
  inputSchema = { type = "object", properties = { what = { type = "string" } }, required = { "what" } },
  handler = function(args, ctx)
    local w = args.what
    if w == "rawset" then
      rawset(ctx.auth, "subject", "root")
      rawset(ctx.auth.scopes, "admin", true)
    elseif w == "replace" then
      ctx.auth = { subject = "root" }
    elseif w == "poison" then
      local fake = {
        subject = "root", client_id = "root", issuer = "https://issuer.test", expires_at = 0,
        claims = { canary = "forged" },
        scopes = setmetatable({}, {
          __index = { list = function() return mcp.array { "admin" } end,
                      has = function() return true end, read = true },
          __len = function() return 1 end }),
      }
      local mt = getmetatable(ctx)
      if type(mt) ~= "table" then return "ctx metatable is protected" end
      mt.__index = function(t, k) if k == "auth" then return fake end end
    else error("unknown case " .. w) end
    return "done"
  end,
}

-- The methods of ctx.auth.scopes called on a table that is not the scopes proxy.
mcp.tool {
  name = "confuse",
  description = "Calls scopes methods with foreign tables.",
  inputSchema = { type = "object" },
  handler = function(args, ctx)
    local s = ctx.auth.scopes
    local out = {}
    for i, f in ipairs { function() return s.list(setmetatable({}, { list = string.rep("A", 64) })) end,
                         function() return s.has(setmetatable({}, { set = string.rep("B", 64) }), "x") end,
                         function() return s.any(setmetatable({}, { set = 7 }), { "x" }) end } do
      out[i] = (pcall(f))
    end
    return { survived = true }
  end,
}
`);

const jwksFile = (name, keys) => {
  const f = path.join(DIR, `${name}.jwks.json`);
  fs.writeFileSync(f, JSON.stringify({ keys }));
  return f;
};
const MAIN_JWKS = jwksFile('main', [
  publicJwk(K.rsa1, 'rsa1'), publicJwk(K.rsa2, 'rsa2', { alg: 'PS256' }),
  publicJwk(K.ec1, 'ec1'), publicJwk(K.ed1, 'ed1'),
]);
const MIXED_JWKS = jwksFile('mixed', [publicJwk(K.weak, 'weak'), publicJwk(K.rsa1, 'rsa1')]);
const OTHER_JWKS = jwksFile('other', [publicJwk(K.other1, 'other1')]);
const WEAK_JWKS = jwksFile('weak', [publicJwk(K.weak, 'weak')]);
const EVIL_JWKS_DOC = JSON.stringify({ keys: [publicJwk(K.evil, 'evil')] });

// The attacker's key server, for jku/x5u: the server must never call it.
let attackerHits = 0;
const attacker = http.createServer((req, res) => {
  attackerHits++;
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(EVIL_JWKS_DOC);
});
let ATTACKER_URL;

// The issuers' key server for the jwks_uri tests: /good serves GOOD_KEYS (or 500 while
// goodDown), /down answers every fetch with a redirect to the attacker.
const ROT = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const GOOD_KEYS = [publicJwk(K.rsa1, 'rsa1')];
const keyHits = { good: 0, down: 0 };
let goodDown = false;
const keyServer = http.createServer((req, res) => {
  if (req.url === '/good/jwks.json') {
    keyHits.good++;
    if (goodDown) {
      res.writeHead(500);
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ keys: GOOD_KEYS }));
  } else if (req.url === '/down/jwks.json') {
    keyHits.down++;
    res.writeHead(302, { Location: `${ATTACKER_URL}/jwks.json` });
    res.end();
  } else {
    res.writeHead(404);
    res.end();
  }
});
let KEYS_URL;
const REFETCH_S = 3;

const S = {}; // the servers, by role

// main: the JWKS of the brief, default leeway. multi: leeway 0, three issuers (one of them
// HS256 with a shared secret), a JWKS with a 1024-bit key beside rsa1. scoped: auth.scopes.
// Each script-abuse case gets a server of its own (one worker, so calls share a Lua state).
const mainConfig = (port, resource) => ({
  auth: { resource, issuers: [{ issuer: ISSUER, jwks_file: MAIN_JWKS }] },
  limits: { cpu_ms: 500 },
});
const multiConfig = (port, resource) => ({
  auth: {
    resource, leeway_s: 0,
    issuers: [
      { issuer: ISSUER, jwks_file: MIXED_JWKS },
      { issuer: OTHER_ISSUER, jwks_file: OTHER_JWKS },
      { issuer: HS_ISSUER, secret_env: HS_SECRET_ENV, algorithms: ['HS256'] },
    ],
  },
  limits: { cpu_ms: 500 },
});
const scopedConfig = (port, resource) => ({
  auth: { resource, scopes: ['mcp:tools'], issuers: [{ issuer: ISSUER, jwks_file: MAIN_JWKS }] },
  limits: { cpu_ms: 500 },
});
const oneWorkerConfig = (port, resource) => ({ ...mainConfig(port, resource), workers: 1 });
const remoteConfig = (port, resource) => ({
  auth: {
    resource, jwks: { refetch_s: REFETCH_S, timeout_ms: 2000 },
    issuers: [{ issuer: `${KEYS_URL}/good`, jwks_uri: `${KEYS_URL}/good/jwks.json` }],
  },
});
const noKeysConfig = (port, resource) => ({
  auth: {
    resource, jwks: { refetch_s: 30, timeout_ms: 2000 },
    issuers: [{ issuer: `${KEYS_URL}/down`, jwks_uri: `${KEYS_URL}/down/jwks.json` }],
  },
});

// Every server: our policies, and its audit lines in a file of its own (checked for tokens).
const start = (name, makeConfig, extra = {}) => startServer({
  bin: BIN, dir: DIR, scriptsDir: SCRIPTS, name, ...extra,
  makeConfig: (port, resource) => ({
    policies: POLICIES, audit_file: path.join(DIR, `${name}.audit.jsonl`), ...makeConfig(port, resource),
  }),
});

before(async () => {
  await new Promise((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  ATTACKER_URL = `http://127.0.0.1:${attacker.address().port}`;
  await new Promise((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
  KEYS_URL = `http://127.0.0.1:${keyServer.address().port}`;
  [S.main, S.multi, S.scoped, S.remote, S.nokeys] = await Promise.all([
    start('main', mainConfig),
    start('multi', multiConfig, { env: { [HS_SECRET_ENV]: HS_SECRET } }),
    start('scoped', scopedConfig),
    start('remote', remoteConfig),
    start('nokeys', noKeysConfig),
  ]);
  S.remote.startedAt = Date.now();
});

after(async () => {
  await Promise.all(Object.values(S).map((s) => s.stop()));
  await new Promise((resolve) => attacker.close(resolve));
  await new Promise((resolve) => keyServer.close(resolve));
  // nothing the servers logged, in any test, may carry a token or a claim value; the audit
  // lines name the subject and client id, never a token or another claim
  const audits = Object.values(S).map((s) => {
    const f = path.join(DIR, `${s.name}.audit.jsonl`);
    return [s.name, fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : ''];
  });
  if (!process.env.LUAMCP_AUTH_KEEP) fs.rmSync(DIR, { recursive: true, force: true });
  for (const s of Object.values(S)) {
    for (const secret of everySecret) {
      assert.ok(!s.log.includes(secret), `${s.name}'s log contains ${JSON.stringify(secret.slice(0, 60))}`);
    }
  }
  assert.ok(audits.find(([n]) => n === 'main')[1].includes('"tool":"probe"'), 'no audit lines');
  for (const [name, text] of audits) {
    for (const secret of everySecret) {
      if (/^(sub|client)-/.test(secret)) continue;
      assert.ok(!text.includes(secret), `${name}'s audit file contains ${JSON.stringify(secret.slice(0, 60))}`);
    }
  }
});

// ------------------------------------------------------------------ tokens

const now = () => Math.floor(Date.now() / 1000);
const rand = () => crypto.randomBytes(9).toString('base64url');
const everySecret = new Set(); // collected from every token minted: checked against every log

const SIGNERS = {
  rsa1: ['RS256', K.rsa1.privateKey], rsa2: ['PS256', K.rsa2.privateKey],
  ec1: ['ES256', K.ec1.privateKey], ed1: ['EdDSA', K.ed1.privateKey],
  weak: ['RS256', K.weak.privateKey], evil: ['RS256', K.evil.privateKey],
  evilEc: ['ES256', K.evilEc.privateKey], other1: ['ES256', K.other1.privateKey],
};

// Claims of a valid token for srv: unique sub, client_id, jti and canary (never echoed).
function claimsFor(srv, over = {}) {
  const id = rand();
  const c = {
    iss: ISSUER, aud: srv.resource, sub: `sub-${id}`, client_id: `client-${id}`,
    scope: 'read write', exp: now() + 600, iat: now(), jti: `jti-${id}`, canary: `canary-${id}`,
    ...over,
  };
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  return c;
}

// A token: key names a signer (its alg and private key) unless alg/signKey say otherwise.
// header and claims entries set to undefined are removed.
const NO = Symbol('absent'); // kid: NO makes a token without kid

function mint(srv, { key = 'rsa1', kid = key, alg, signAlg, signKey, header = {}, claims = {}, rawPayload } = {}) {
  const [defAlg, defKey] = SIGNERS[key] ?? [];
  const h = { alg: alg ?? defAlg, kid, typ: 'at+jwt', ...header };
  for (const k of Object.keys(h)) if (h[k] === undefined || h[k] === NO) delete h[k];
  const payload = rawPayload ?? claimsFor(srv, claims);
  const token = jws({ header: h, payload, key: signKey ?? defKey, signAlg: signAlg ?? (alg ?? defAlg) });
  secretsOf(token); // valid or not, no log may ever show it
  return token;
}

// What must never appear in an answer or a log: the token, its segments, and every unique
// value of its claims and header (sub-, client-, jti-, canary- values).
function secretsOf(token, extra = []) {
  const out = new Set(extra.filter((s) => typeof s === 'string' && s.length >= 6));
  if (typeof token === 'string' && token.length >= 16) {
    out.add(token);
    for (const seg of token.split('.')) if (seg.length >= 16) out.add(seg);
    for (const seg of token.split('.').slice(0, 2)) {
      let v;
      try { v = JSON.parse(Buffer.from(seg, 'base64url').toString('utf8')); } catch { continue; }
      const walk = (x) => {
        if (typeof x === 'string' && /^(sub|client|jti|canary)-/.test(x)) out.add(x);
        else if (x && typeof x === 'object') Object.values(x).forEach(walk);
      };
      walk(v);
    }
  }
  for (const s of out) everySecret.add(s);
  return [...out];
}

// ------------------------------------------------------------------ requests

let nextId = 1;
const JSON_HEADERS = [['Content-Type', 'application/json'], ['Accept', 'application/json']];

function probeBody(marker) {
  return JSON.stringify({
    jsonrpc: '2.0', id: nextId++, method: 'tools/call',
    params: { name: 'probe', arguments: { marker } },
  });
}

function toolBody(name, args) {
  return JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name, arguments: args } });
}

const newMarker = () => `m-${rand()}`;

// For a request that got no answer: how the server ended, with its sanitizer report if any.
async function noAnswer(srv, e) {
  await Promise.race([srv.exitPromise, sleep(2000)]);
  const report = srv.log.split('\n').filter((l) => /runtime error|ERROR: AddressSanitizer|SUMMARY/.test(l)).join('\n');
  assert.fail(`no answer (${e.message}); server ${srv.exited ? `exited: code ${srv.exitCode}, signal ${srv.signal}` : 'still running'}${report ? `\n${report}` : ''}`);
}

// authorization: a header value, or a list of values (each its own header), or null (none).
function authHeaders(authorization) {
  if (authorization === null || authorization === undefined) return [];
  return (Array.isArray(authorization) ? authorization : [authorization]).map((v) => ['Authorization', v]);
}

async function send(srv, { authorization, target = '/mcp', method = 'POST', headers = JSON_HEADERS, body, conn }) {
  const opts = { method, target, headers: [...headers, ...authHeaders(authorization)], body: body ?? '', keepAlive: !!conn };
  return conn ? conn.send(rawRequest(srv.port, opts)) : request(srv.port, opts);
}

async function waitForLog(srv, pred, from = 0, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const tail = srv.log.slice(from);
    if (pred(tail)) return tail;
    if (Date.now() > deadline) return null;
    await sleep(10);
  }
}

const probeLine = (marker) => `PROBE-CALLED ${marker}`;

// A valid call of probe on srv: 200 with the caller in structuredContent, and the marker logged.
async function callProbe(srv, token, { conn, scheme = 'Bearer ' } = {}) {
  const marker = newMarker();
  const from = srv.log.length;
  const r = await send(srv, { authorization: token === null ? null : scheme + token, body: probeBody(marker), conn });
  assert.equal(r.status, 200, `valid call refused: ${r.status} ${r.body}`);
  const j = JSON.parse(r.body);
  assert.ok(j.result, `no result: ${r.body}`);
  assert.equal(j.result.isError, undefined, `probe failed: ${r.body}`);
  assert.ok(await waitForLog(srv, (t) => t.includes(probeLine(marker)), from), 'the probe marker never reached the log');
  return j.result.structuredContent;
}

// The expected caller as the probe reports it.
function callerOf(claims, over = {}) {
  const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ').filter(Boolean)
    : typeof claims.scp === 'string' ? claims.scp.split(' ').filter(Boolean)
      : Array.isArray(claims.scp) ? claims.scp : [];
  return {
    subject: claims.sub ?? null,
    client_id: claims.client_id ?? claims.azp ?? claims.appid ?? claims.cid ?? null,
    issuer: claims.iss,
    scopes,
    has: scopes.includes('read'),
    read: scopes.includes('read'),
    n_scopes: scopes.length,
    expires_at: Math.trunc(claims.exp),
    canary: claims.canary ?? null,
    ...over,
  };
}

// A token srv accepts (the scoped server wants mcp:tools).
const goodToken = (srv) => mint(srv, srv === S.scoped ? { claims: { scope: 'read mcp:tools' } }
  : srv === S.remote ? { claims: { iss: `${KEYS_URL}/good` } } : {});

const payloadOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));

// Messages of the JSON-RPC body (and error_description) per refusal.
const NO_TOKEN_MSG = 'Unauthorized: a bearer token is required';
const D = {
  invalid: 'The access token is invalid',
  malformed: 'The access token is malformed',
  typ: 'The access token is not an access token',
  issuer: 'The access token was issued by an untrusted issuer',
  exp: 'The access token has no valid expiry',
  expired: 'The access token expired',
  nbf: 'The access token is not valid yet',
  iat: 'The access token was issued in the future',
  aud: 'The access token is for another resource',
  scopes: "The access token's scopes are malformed",
  twoHeaders: 'Send exactly one Authorization header',
  query: 'Access tokens are accepted in the Authorization header only',
  scope: 'The access token lacks a required scope',
};

// A refused request, checked in full (see the top of the file). spec:
//   authorization | target | headers | method  what to send (a tools/call of probe)
//   status, kind ('no_token' | 'invalid_token' | 'invalid_request' | 'insufficient_scope')
//   desc      the body's message and the challenge's error_description
//   reason    what the log must say after "auth: refused (" (string or RegExp)
//   secrets   tokens or strings that must appear nowhere
async function expectRefused(srv, spec) {
  const marker = newMarker();
  const from = srv.log.length;
  const r = await send(srv, {
    authorization: spec.authorization, target: spec.target, method: spec.method,
    headers: spec.headers, body: probeBody(marker),
  });
  assert.equal(r.status, spec.status, `status: ${r.status} ${r.body}`);

  // the challenge
  const www = r.headers['www-authenticate'] ?? [];
  assert.equal(www.length, 1, `one WWW-Authenticate header expected, got ${JSON.stringify(www)}`);
  const ch = parseChallenge(www[0]);
  const want = { resource_metadata: srv.prmUrl };
  if (spec.kind !== 'no_token') Object.assign(want, { error: spec.kind, error_description: spec.desc });
  if (spec.kind === 'insufficient_scope' || (spec.kind === 'no_token' && spec.scope)) want.scope = spec.scope;
  assert.deepEqual(ch.params, want, `challenge: ${www[0]}`);
  if (spec.kind !== 'no_token') {
    const order = spec.kind === 'insufficient_scope'
      ? ['error', 'scope', 'error_description', 'resource_metadata']
      : ['error', 'error_description', 'resource_metadata'];
    assert.deepEqual(Object.keys(ch.params), order, `challenge parameter order: ${www[0]}`);
  }

  // the body: a JSON-RPC error, id null (the body was never read)
  assert.match(r.headers['content-type']?.[0] ?? '', /^application\/json\b/);
  assert.deepEqual(JSON.parse(r.body), {
    jsonrpc: '2.0', id: null,
    error: { code: -32600, message: spec.kind === 'no_token' ? NO_TOKEN_MSG : spec.desc },
  });

  // no token content anywhere
  const secrets = [];
  for (const t of [].concat(spec.secrets ?? [])) secrets.push(...secretsOf(t));
  const everything = `${r.body}\n${JSON.stringify(r.headers)}`;
  for (const s of secrets) assert.ok(!everything.includes(s), `the answer contains ${JSON.stringify(s.slice(0, 60))}`);

  // the reason, logged once
  const tail = await waitForLog(srv, (t) => /auth: refused \(/.test(t), from);
  assert.ok(tail, 'no "auth: refused" line in the log');
  const reasons = [...tail.matchAll(/auth: refused \((.*)\)\n/g)].map((m) => m[1]);
  assert.equal(reasons.length, 1, `log: ${tail}`);
  if (spec.reason instanceof RegExp) assert.match(reasons[0], spec.reason);
  else assert.equal(reasons[0], spec.reason);

  // the next request is served as if this one never came, and this one ran no Lua
  await callProbe(srv, goodToken(srv));
  assert.ok(!srv.log.includes(probeLine(marker)), 'the refused request ran the tool');
  for (const s of secrets) assert.ok(!srv.log.includes(s), `the log contains ${JSON.stringify(s.slice(0, 60))}`);
  return r;
}

const invalid = (reason, extra = {}) => ({ status: 401, kind: 'invalid_token', desc: D.invalid, reason, ...extra });

// ------------------------------------------------------------------ valid tokens

describe('valid tokens are accepted and ctx.auth shows the caller', () => {
  for (const key of ['rsa1', 'rsa2', 'ec1', 'ed1']) {
    test(`${SIGNERS[key][0]} (${key})`, async () => {
      const t = mint(S.main, { key });
      assert.deepEqual(await callProbe(S.main, t), callerOf(payloadOf(t)));
    });
  }

  const shapes = {
    'typ "JWT"': { header: { typ: 'JWT' } },
    'no typ': { header: { typ: undefined } },
    'typ "application/at+jwt"': { header: { typ: 'application/at+jwt' } },
    'typ "AT+JWT" (media types are case-insensitive)': { header: { typ: 'AT+JWT' } },
    'no kid (every key that fits RS256 is tried)': { kid: NO },
    'aud as an array containing the resource': { claims: { aud: ['https://elsewhere.example/api', '@RESOURCE'] } },
    'scope string with extra spaces': { claims: { scope: '  read   mcp:x  ' } },
    'scp array': { claims: { scope: undefined, scp: ['read', 'files:write'] } },
    'scp string': { claims: { scope: undefined, scp: 'read files:write' } },
    'no scopes at all': { claims: { scope: undefined } },
    'client id from azp': { claims: { client_id: undefined, azp: `client-azp-${rand()}` } },
    'client id from cid': { claims: { client_id: undefined, cid: `client-cid-${rand()}` } },
    'no sub': { claims: { sub: undefined } },
    'exp as a real number': { claims: () => ({ exp: now() + 600.75 }) },
    'exp 30 s ago (within the 60 s leeway)': { claims: () => ({ exp: now() - 30 }) },
    'nbf 30 s ahead (within leeway)': { claims: () => ({ nbf: now() + 30 }) },
    'iat 30 s ahead (within leeway)': { claims: () => ({ iat: now() + 30 }) },
    'nbf far in the past': { claims: { nbf: 1 } },
  };
  for (const [name, o] of Object.entries(shapes)) {
    test(name, async () => {
      const claims = typeof o.claims === 'function' ? o.claims() : { ...o.claims };
      if (Array.isArray(claims.aud)) claims.aud = claims.aud.map((a) => (a === '@RESOURCE' ? S.main.resource : a));
      const t = mint(S.main, { ...o, claims });
      const c = payloadOf(t);
      const want = callerOf(c);
      if (name.startsWith('scope string')) Object.assign(want, { scopes: ['read', 'mcp:x'], n_scopes: 2 });
      assert.deepEqual(await callProbe(S.main, t), want);
    });
  }

  const schemes = {
    'lowercase "bearer"': 'bearer ',
    'uppercase "BEARER"': 'BEARER ',
    'several spaces after the scheme': 'Bearer     ',
    'a tab after the scheme': 'Bearer\t',
    'leading spaces before the scheme': '   Bearer ',
  };
  for (const [name, scheme] of Object.entries(schemes)) {
    test(`scheme: ${name}`, async () => {
      const t = mint(S.main);
      assert.deepEqual(await callProbe(S.main, t, { scheme }), callerOf(payloadOf(t)));
    });
  }

  test('trailing spaces after the token', async () => {
    const t = mint(S.main);
    assert.deepEqual(await callProbe(S.main, `${t}    `), callerOf(payloadOf(t)));
  });

  test('header name in capitals (AUTHORIZATION)', async () => {
    const t = mint(S.main);
    const marker = newMarker();
    const r = await send(S.main, { headers: [...JSON_HEADERS, ['AUTHORIZATION', `Bearer ${t}`]], body: probeBody(marker) });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body).result.structuredContent, callerOf(payloadOf(t)));
  });

  test('a valid token of exactly 8192 bytes is accepted, 8193 bytes is refused unparsed', async () => {
    const sized = (n) => {
      let lo = 0;
      let hi = 8000;
      while (lo <= hi) {
        const pad = (lo + hi) >> 1;
        const t = mint(S.main, { claims: { pad: 'x'.repeat(pad) } });
        if (t.length === n) return t;
        if (t.length < n) lo = pad + 1; else hi = pad - 1;
      }
      // RS256 segments grow in steps of 4 chars per 3 bytes: adjust with the header
      for (let extra = 0; extra < 8; extra++) {
        for (let pad = Math.max(0, hi - 4); pad <= hi + 4; pad++) {
          const t = mint(S.main, { header: { x: 'y'.repeat(extra) }, claims: { pad: 'x'.repeat(pad) } });
          if (t.length === n) return t;
        }
      }
      throw new Error(`could not make a token of ${n} bytes`);
    };
    const t8192 = sized(8192);
    assert.equal(t8192.length, 8192);
    assert.deepEqual(await callProbe(S.main, t8192), callerOf(payloadOf(t8192)));
    const t8193 = sized(8193);
    await expectRefused(S.main, {
      authorization: `Bearer ${t8193}`, status: 401, kind: 'invalid_token', desc: D.malformed,
      reason: 'malformed bearer token (8193 bytes)', secrets: t8193,
    });
  });
});

// ------------------------------------------------------------------ the token cache

describe('token cache', () => {
  test('the same token 200 times on one connection', async () => {
    const t = mint(S.main);
    const want = callerOf(payloadOf(t));
    const conn = new Conn(S.main.port);
    try {
      for (let i = 0; i < 200; i++) {
        const marker = newMarker();
        const r = await send(S.main, { authorization: `Bearer ${t}`, body: probeBody(marker), conn });
        assert.equal(r.status, 200, `call ${i}: ${r.body}`);
        assert.deepEqual(JSON.parse(r.body).result.structuredContent, want);
      }
    } finally {
      conn.close();
    }
  });

  test('a cached token with one byte changed (padding, case, signature) is verified afresh and refused', async () => {
    const t = mint(S.main);
    await callProbe(S.main, t); // now cached
    const sig = t.split('.')[2];
    await expectRefused(S.main, invalid('malformed: signature is not base64url', { authorization: `Bearer ${t}=`, secrets: t }));
    const flipped = `${t.slice(0, -1)}${t.at(-1) === 'A' ? 'Q' : 'A'}`;
    await expectRefused(S.main, invalid(/^(malformed: signature is not base64url|bad signature: signature does not verify)$/, { authorization: `Bearer ${flipped}`, secrets: t }));
    const swapped = `${t.split('.').slice(0, 2).join('.')}.${sig.slice(1)}${sig[0]}`;
    await expectRefused(S.main, invalid(/^(malformed: signature is not base64url|bad signature: signature does not verify)$/, { authorization: `Bearer ${swapped}`, secrets: t }));
    await callProbe(S.main, t);
  });

  test('one keep-alive connection: a token like the remembered one is verified afresh, another caller\'s token names that caller', async () => {
    const conn = new Conn(S.main.port); // the connection remembers the last token verified on it
    try {
      const t = mint(S.main);
      const caller = callerOf(payloadOf(t));
      assert.deepEqual(await callProbe(S.main, t, { conn }), caller);
      const flipped = `${t.slice(0, -1)}${t.at(-1) === 'A' ? 'Q' : 'A'}`; // same length
      const tail = `${t.slice(0, 20)}${t[20] === 'A' ? 'B' : 'A'}${t.slice(21)}`; // header byte
      // and longer or shorter: the remembered bytes as a prefix, or the token cut short
      for (const bad of [flipped, tail, `${t}=`, `${t}A`, t.slice(0, -1), `${t}.${t.split('.')[2]}`]) {
        const marker = newMarker();
        const r = await send(S.main, { authorization: `Bearer ${bad}`, body: probeBody(marker), conn });
        assert.equal(r.status, 401, r.body);
        assert.ok(!S.main.log.includes(probeLine(marker)));
      }
      assert.deepEqual(await callProbe(S.main, t, { conn }), caller);
      const other = mint(S.main, { claims: { sub: `other-${rand()}`, client_id: `client-${rand()}` } });
      assert.deepEqual(await callProbe(S.main, other, { conn }), callerOf(payloadOf(other)));
      assert.notDeepEqual(callerOf(payloadOf(other)), caller);
      assert.deepEqual(await callProbe(S.main, t, { conn }), caller);
      secretsOf(t);
      secretsOf(other);
    } finally {
      conn.close();
    }
  });

  test('a token that expires while cached is refused after expiry (leeway 0)', async () => {
    const exp = now() + 2;
    const t = mint(S.multi, { claims: { exp } });
    const conn = new Conn(S.multi.port); // one connection: one worker, one cache
    try {
      for (let i = 0; i < 3; i++) await callProbe(S.multi, t, { conn });
      while (now() <= exp) await sleep(100);
      const from = S.multi.log.length;
      const marker = newMarker();
      const r = await send(S.multi, { authorization: `Bearer ${t}`, body: probeBody(marker), conn });
      assert.equal(r.status, 401, r.body);
      assert.deepEqual(parseChallenge(r.headers['www-authenticate'][0]).params, {
        error: 'invalid_token', error_description: D.expired, resource_metadata: S.multi.prmUrl,
      });
      assert.ok(await waitForLog(S.multi, (l) => /auth: refused \(expired \d+s ago\)/.test(l), from));
      assert.ok(!S.multi.log.includes(probeLine(marker)));
      secretsOf(t);
    } finally {
      conn.close();
    }
  });

  test('a cached token is still checked for the required scope', async () => {
    const t = mint(S.scoped, { claims: { scope: 'read' } });
    for (let i = 0; i < 3; i++) {
      await expectRefused(S.scoped, {
        authorization: `Bearer ${t}`, status: 403, kind: 'insufficient_scope', desc: D.scope,
        scope: 'mcp:tools', reason: 'missing scope mcp:tools', secrets: t,
      });
    }
  });
});

// ------------------------------------------------------------------ refusals: the header

describe('Authorization header and scheme', () => {
  test('no Authorization header: 401 without an error code', async () => {
    await expectRefused(S.main, { authorization: null, status: 401, kind: 'no_token', reason: 'no Authorization header' });
  });

  test('an empty Authorization header', async () => {
    await expectRefused(S.main, { authorization: '', status: 401, kind: 'no_token', reason: 'Authorization scheme is not Bearer' });
  });

  for (const [name, value] of Object.entries({
    Basic: 'Basic dXNlcjpwYXNzd29yZA==',
    Digest: 'Digest username="u", realm="r", nonce="n", uri="/mcp", response="0123456789abcdef"',
    'Bearerx token': 'Bearerx @TOKEN',
    'DPoP token': 'DPoP @TOKEN',
    '"Bearer" alone': 'Bearer',
    '"Bearer:token"': 'Bearer:@TOKEN',
    'token without a scheme': '@TOKEN',
  })) {
    test(`another scheme: ${name} -> 401 without an error code`, async () => {
      const t = mint(S.main);
      await expectRefused(S.main, {
        authorization: value.replace('@TOKEN', t), status: 401, kind: 'no_token',
        reason: 'Authorization scheme is not Bearer', secrets: t,
      });
    });
  }

  for (const [name, value, bytes] of [
    ['"Bearer " with nothing after it', 'Bearer ', 0],
    ['"Bearer" and spaces only', 'Bearer     ', 0],
    ['"Bearer !!!"', 'Bearer !!!', 3],
    ['two tokens in one header', 'Bearer @TOKEN, Bearer @TOKEN', null],
    ['a space inside the token', 'Bearer @HEAD @REST', null],
    ['a percent-encoded token', 'Bearer @PCT', null],
    ['"=" inside the token', 'Bearer @EQ', null],
  ]) {
    test(`malformed bearer credentials: ${name} -> 401 invalid_token`, async () => {
      const t = mint(S.main);
      const v = value.replaceAll('@TOKEN', t).replace('@HEAD', t.slice(0, 20)).replace('@REST', t.slice(20))
        .replace('@PCT', t.replace('.', '%2E')).replace('@EQ', t.replace('.', '=.'));
      const len = bytes ?? v.slice(v.indexOf(' ') + 1).trim().length;
      await expectRefused(S.main, {
        authorization: v, status: 401, kind: 'invalid_token', desc: D.malformed,
        reason: `malformed bearer token (${len} bytes)`, secrets: t,
      });
    });
  }

  test('two Authorization headers -> 400 invalid_request (even with two valid tokens)', async () => {
    const t = mint(S.main);
    await expectRefused(S.main, {
      authorization: [`Bearer ${t}`, `Bearer ${t}`], status: 400, kind: 'invalid_request',
      desc: D.twoHeaders, reason: '2 Authorization headers', secrets: t,
    });
  });

  test('two Authorization headers, differently cased, one of them Basic -> 400', async () => {
    const t = mint(S.main);
    await expectRefused(S.main, {
      headers: [...JSON_HEADERS, ['authorization', 'Basic dXNlcjpwYXNz'], ['AUTHORIZATION', `Bearer ${t}`]],
      status: 400, kind: 'invalid_request', desc: D.twoHeaders, reason: '2 Authorization headers', secrets: t,
    });
  });

  test('access_token in the query string -> 400 invalid_request (with a valid header too)', async () => {
    const t = mint(S.main);
    await expectRefused(S.main, {
      authorization: `Bearer ${t}`, target: `/mcp?access_token=${t}`, status: 400,
      kind: 'invalid_request', desc: D.query, reason: 'access_token in the query string', secrets: t,
    });
  });

  test('access_token in the query string without a header -> 400', async () => {
    const t = mint(S.main);
    await expectRefused(S.main, {
      authorization: null, target: `/mcp?x=1&access_token=${t}`, status: 400,
      kind: 'invalid_request', desc: D.query, reason: 'access_token in the query string', secrets: t,
    });
  });

  test('a percent-encoded parameter name (access%5Ftoken) -> 400', async () => {
    const t = mint(S.main);
    await expectRefused(S.main, {
      authorization: `Bearer ${t}`, target: `/mcp?access%5Ftoken=${t}`, status: 400,
      kind: 'invalid_request', desc: D.query, reason: 'access_token in the query string', secrets: t,
    });
  });

  test('an empty access_token query parameter -> 400', async () => {
    await expectRefused(S.main, {
      authorization: `Bearer ${mint(S.main)}`, target: '/mcp?access_token=', status: 400,
      kind: 'invalid_request', desc: D.query, reason: 'access_token in the query string',
    });
  });

  for (const kib of [20, 64]) {
    test(`a ${kib} KiB token: a 4xx refusal, no crash, and the next request is served`, async () => {
      const big = `Bearer ${'A'.repeat(kib * 1024)}`;
      const marker = newMarker();
      const r = await send(S.main, { authorization: big, body: probeBody(marker) });
      // libmicrohttpd refuses the header block before luamcp sees it (observed: 431, its own
      // HTML body, no WWW-Authenticate)
      assert.equal(r.status, 431, r.body);
      assert.ok(!r.body.includes('AAAAAAAAAAAAAAAA'));
      await callProbe(S.main, mint(S.main));
      assert.ok(!S.main.log.includes(probeLine(marker)));
      assert.equal(S.main.exited, false);
    });
  }

  test('a 9000-byte token (under the header limit, over the 8192-byte token limit) -> 401 malformed', async () => {
    const t = 'A'.repeat(9000);
    await expectRefused(S.main, {
      authorization: `Bearer ${t}`, status: 401, kind: 'invalid_token', desc: D.malformed,
      reason: `malformed bearer token (${t.length} bytes)`,
    });
  });

  test('refusals and valid calls alternate on one keep-alive connection', async () => {
    const conn = new Conn(S.main.port);
    try {
      for (let i = 0; i < 3; i++) {
        const marker = newMarker();
        const bad = await send(S.main, { authorization: `Bearer ${mint(S.main, { key: 'evil', kid: 'rsa1' })}`, body: probeBody(marker), conn });
        assert.equal(bad.status, 401);
        const none = await send(S.main, { authorization: null, body: probeBody(marker), conn });
        assert.equal(none.status, 401);
        const good = mint(S.main);
        assert.deepEqual(await callProbe(S.main, good, { conn }), callerOf(payloadOf(good)));
        assert.ok(!S.main.log.includes(probeLine(marker)));
      }
    } finally {
      conn.close();
    }
  });
});

// ------------------------------------------------------------------ refusals: alg

describe('alg none and algorithm confusion', () => {
  for (const none of ['none', 'None', 'NONE', 'nOnE']) {
    test(`alg "${none}", unsigned (empty third segment)`, async () => {
      const t = jws({ header: { alg: none, typ: 'at+jwt' }, payload: claimsFor(S.main) });
      assert.ok(t.endsWith('.'));
      await expectRefused(S.main, invalid('alg refused: alg none refused', { authorization: `Bearer ${t}`, secrets: t }));
    });
  }

  test('alg "none" with kid rsa1 and a real RS256 signature', async () => {
    const t = mint(S.main, { alg: 'none', signAlg: 'RS256' });
    await expectRefused(S.main, invalid('alg refused: alg none refused', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('alg "none", two segments only', async () => {
    const t = `${segment({ alg: 'none' })}.${segment(claimsFor(S.main))}`;
    await expectRefused(S.main, invalid('malformed: not three segments', { authorization: `Bearer ${t}`, secrets: t }));
  });

  // jansson refuses \u0000 in strings, so NUL tricks end at the JSON parser
  test('alg "none" with a NUL after it ("none\\u0000")', async () => {
    const t = jws({ header: { alg: 'none\u0000', typ: 'at+jwt' }, payload: claimsFor(S.main), sig: Buffer.from('x') });
    await expectRefused(S.main, invalid('malformed: header is not a JSON object', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('alg "RS256\\u0000" (NUL-truncation of a known alg)', async () => {
    const t = mint(S.main, { alg: 'RS256\u0000', signAlg: 'RS256' });
    await expectRefused(S.main, invalid('malformed: header is not a JSON object', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('alg "rs256" (names are case-sensitive)', async () => {
    const t = mint(S.main, { alg: 'rs256', signAlg: 'RS256' });
    await expectRefused(S.main, invalid('alg refused: unknown alg', { authorization: `Bearer ${t}`, secrets: t }));
  });

  const rsa1Pem = K.rsa1.publicKey.export({ type: 'spki', format: 'pem' });
  const confusion = {
    'public key PEM (SPKI) text': rsa1Pem,
    'public key PEM without the final newline': rsa1Pem.trimEnd(),
    'public key PKCS#1 PEM': K.rsa1.publicKey.export({ type: 'pkcs1', format: 'pem' }),
    'public key DER (SPKI) bytes': K.rsa1.publicKey.export({ type: 'spki', format: 'der' }),
    'public JWK JSON text': JSON.stringify(publicJwk(K.rsa1, 'rsa1')),
    'modulus bytes': Buffer.from(publicJwk(K.rsa1, 'rsa1').n, 'base64url'),
  };
  for (const [name, secret] of Object.entries(confusion)) {
    for (const kid of ['rsa1', undefined]) {
      test(`HS256 keyed with rsa1's ${name}, ${kid ? 'kid rsa1' : 'no kid'}`, async () => {
        const t = mint(S.main, { alg: 'HS256', kid, signKey: secret });
        await expectRefused(S.main, invalid('alg refused: alg HS256 not allowed', { authorization: `Bearer ${t}`, secrets: t }));
      });
    }
  }

  test('HS256 with kid ec1, keyed with ec1\'s public PEM', async () => {
    const t = mint(S.main, { alg: 'HS256', kid: 'ec1', signKey: K.ec1.publicKey.export({ type: 'spki', format: 'pem' }) });
    await expectRefused(S.main, invalid('alg refused: alg HS256 not allowed', { authorization: `Bearer ${t}`, secrets: t }));
  });

  for (const [alg, kid, signAlg, signKey, why] of [
    ['RS256', 'ec1', 'RS256', K.rsa1.privateKey, 'RS256 header with kid ec1 (alg does not fit the key type)'],
    ['ES256', 'rsa1', 'ES256', K.ec1.privateKey, 'ES256 header with kid rsa1'],
    ['ES384', 'ec1', 'ES384', K.ec1.privateKey, 'ES384 with kid ec1 (curve mismatch)'],
    ['ES512', 'ec1', 'ES512', K.ec1.privateKey, 'ES512 with kid ec1'],
    ['RS256', 'rsa2', 'RS256', K.rsa2.privateKey, 'RS256 with kid rsa2 (the JWK pins PS256)'],
    ['PS384', 'rsa2', 'PS384', K.rsa2.privateKey, 'PS384 with kid rsa2 (the JWK pins PS256)'],
    ['EdDSA', 'rsa1', 'EdDSA', K.ed1.privateKey, 'EdDSA with kid rsa1'],
    ['ES256', 'ed1', 'ES256', K.ec1.privateKey, 'ES256 with kid ed1'],
    ['PS256', 'ec1', 'PS256', K.rsa1.privateKey, 'PS256 with kid ec1'],
  ]) {
    test(why, async () => {
      const t = mint(S.main, { alg, kid, signAlg, signKey });
      await expectRefused(S.main, invalid(`key mismatch: no selected key for alg ${alg}`, { authorization: `Bearer ${t}`, secrets: t }));
    });
  }

  test('RS256 without kid signed by rsa2 (PS256-pinned, so only rsa1 is tried)', async () => {
    const t = mint(S.main, { alg: 'RS256', kid: NO, signKey: K.rsa2.privateKey });
    await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('ES384 without kid (no P-384 key at all)', async () => {
    const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const t = mint(S.main, { alg: 'ES384', kid: NO, signKey: p384.privateKey });
    await expectRefused(S.main, invalid('key mismatch: no key for alg ES384', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('PS256 by rsa1 (RSA keys without a JWK alg verify RS* and PS*) is accepted', async () => {
    const t = mint(S.main, { alg: 'PS256', kid: 'rsa1', signKey: K.rsa1.privateKey });
    assert.deepEqual(await callProbe(S.main, t), callerOf(payloadOf(t)));
  });
});

// ------------------------------------------------------------------ refusals: kid, keys in the token

describe('kid and keys carried by the token', () => {
  test('unknown kid: 401 at once (a static JWKS has nothing to refetch)', async () => {
    const t = mint(S.main, { kid: 'nope' });
    const t0 = Date.now();
    await expectRefused(S.main, invalid('unknown kid: kid not found', { authorization: `Bearer ${t}`, secrets: t }));
    assert.ok(Date.now() - t0 < 2500, 'the refusal waited');
  });

  const hostile = {
    'path traversal "../../etc/passwd"': ['../../etc/passwd', 'unknown kid: kid not found'],
    'a SQL-ish kid': ["rsa1' OR '1'='1", 'unknown kid: kid not found'],
    'an empty string': ['', 'unknown kid: kid not found'],
    'a kid of 257 bytes': ['k'.repeat(257), 'bad header: kid too long'],
    'a number': [1, 'bad header: kid is not a string'],
    'an object': [{ kid: 'rsa1' }, 'bad header: kid is not a string'],
    'an array': [['rsa1'], 'bad header: kid is not a string'],
    'null': [null, 'bad header: kid is not a string'],
    'true': [true, 'bad header: kid is not a string'],
    '"rsa1\\u0000evil" (NUL truncation; jansson refuses \\u0000)': ['rsa1\u0000evil', 'malformed: header is not a JSON object'],
    '"rsa1 " (trailing space)': ['rsa1 ', 'unknown kid: kid not found'],
    '"RSA1" (case)': ['RSA1', 'unknown kid: kid not found'],
  };
  for (const [name, [kid, reason]] of Object.entries(hostile)) {
    test(`hostile kid: ${name}`, async () => {
      // signed by rsa1 itself: only the kid is wrong
      const t = mint(S.main, { kid, alg: 'RS256', signKey: K.rsa1.privateKey });
      const extra = typeof kid === 'string' && kid.length >= 6 ? [kid] : [];
      await expectRefused(S.main, invalid(reason, { authorization: `Bearer ${t}`, secrets: [t, ...extra] }));
    });
  }

  test('hostile kid of 10 KB: refused before parsing (the token is over 8192 bytes)', async () => {
    const t = mint(S.main, { kid: 'k'.repeat(10 * 1024) });
    await expectRefused(S.main, {
      authorization: `Bearer ${t}`, status: 401, kind: 'invalid_token', desc: D.malformed,
      reason: `malformed bearer token (${t.length} bytes)`, secrets: t,
    });
  });

  test('a "jwk" header with the attacker\'s key, no kid, signed by it', async () => {
    const t = mint(S.main, { key: 'evil', kid: NO, header: { jwk: publicJwk(K.evil, 'evil') } });
    await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('a "jwk" header with the attacker\'s key under kid rsa1', async () => {
    const t = mint(S.main, { key: 'evil', kid: 'rsa1', header: { jwk: publicJwk(K.evil, 'rsa1') } });
    await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('a "jwk" header with an attacker EC key, kid of its own', async () => {
    const t = mint(S.main, { key: 'evilEc', kid: 'evilEc', header: { jwk: publicJwk(K.evilEc, 'evilEc') } });
    await expectRefused(S.main, invalid('unknown kid: kid not found', { authorization: `Bearer ${t}`, secrets: t }));
  });

  for (const param of ['jku', 'x5u']) {
    test(`"${param}" pointing at the attacker's key server (kid evil, then kid rsa1): never fetched`, async () => {
      const before = attackerHits;
      const t1 = mint(S.main, { key: 'evil', kid: 'evil', header: { [param]: `${ATTACKER_URL}/jwks.json` } });
      await expectRefused(S.main, invalid('unknown kid: kid not found', { authorization: `Bearer ${t1}`, secrets: t1 }));
      const t2 = mint(S.main, { key: 'evil', kid: 'rsa1', header: { [param]: `${ATTACKER_URL}/jwks.json` } });
      await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${t2}`, secrets: t2 }));
      await sleep(200);
      assert.equal(attackerHits, before, `the server fetched ${param}`);
    });
  }

  test('an "x5c" header (garbage certificate), signed by the attacker', async () => {
    const t = mint(S.main, { key: 'evil', kid: NO, header: { x5c: [crypto.randomBytes(300).toString('base64')] } });
    await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('the attacker\'s JWKS was never requested', () => {
    assert.equal(attackerHits, 0);
  });
});

// ------------------------------------------------------------------ refusals: signature, structure

describe('signature and structure', () => {
  test('signature stripped: two segments', async () => {
    const t = mint(S.main).split('.').slice(0, 2).join('.');
    await expectRefused(S.main, invalid('malformed: not three segments', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('signature stripped: empty third segment', async () => {
    const t = `${mint(S.main).split('.').slice(0, 2).join('.')}.`;
    await expectRefused(S.main, invalid('bad signature: empty signature', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('payload tampered after signing (sub changed)', async () => {
    const t = mint(S.main);
    const [h, , s] = t.split('.');
    const c = payloadOf(t);
    c.sub = `sub-admin-${rand()}`;
    const forged = `${h}.${segment(c)}.${s}`;
    await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${forged}`, secrets: [t, forged] }));
  });

  test('payload tampered: scope widened', async () => {
    const t = mint(S.main, { claims: { scope: 'read' } });
    const [h, , s] = t.split('.');
    const forged = `${h}.${segment({ ...payloadOf(t), scope: 'read admin' })}.${s}`;
    await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${forged}`, secrets: [t, forged] }));
  });

  test('header tampered after signing (typ changed)', async () => {
    const t = mint(S.main);
    const [, p, s] = t.split('.');
    const forged = `${segment({ alg: 'RS256', kid: 'rsa1', typ: 'JWT' })}.${p}.${s}`;
    await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${forged}`, secrets: [t, forged] }));
  });

  test('header tampered: kid switched to another RSA key', async () => {
    const t = mint(S.main);
    const [, p, s] = t.split('.');
    const forged = `${segment({ alg: 'PS256', kid: 'rsa2', typ: 'at+jwt' })}.${p}.${s}`;
    await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${forged}`, secrets: [t, forged] }));
  });

  test('the same header and payload re-encoded differently (JSON whitespace) keep the old signature', async () => {
    const t = mint(S.main);
    const [h, , s] = t.split('.');
    const forged = `${h}.${segment(JSON.stringify(payloadOf(t), null, 1))}.${s}`;
    await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${forged}`, secrets: [t, forged] }));
  });

  test('signed by the attacker under kid rsa1', async () => {
    const t = mint(S.main, { key: 'evil', kid: 'rsa1' });
    await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${t}`, secrets: t }));
  });

  const sigs = {
    'RS256 signature one byte short': ['rsa1', (s) => s.subarray(1)],
    'RS256 signature with a zero byte prepended': ['rsa1', (s) => Buffer.concat([Buffer.alloc(1), s])],
    'RS256 signature all zeros': ['rsa1', (s) => Buffer.alloc(s.length)],
    'RS256 signature all ones (>= n)': ['rsa1', (s) => Buffer.alloc(s.length, 0xff)],
    'ES256 signature r = s = 0 ("psychic signature")': ['ec1', () => Buffer.alloc(64)],
    'ES256 signature in DER instead of R||S': ['ec1', null],
    'EdDSA signature all zeros': ['ed1', () => Buffer.alloc(64)],
    'PS256 signature bit-flipped': ['rsa2', (s) => { const c = Buffer.from(s); c[10] ^= 1; return c; }],
  };
  for (const [name, [key, change]] of Object.entries(sigs)) {
    test(name, async () => {
      const t = mint(S.main, { key });
      const [h, p] = t.split('.');
      let sig;
      if (change) sig = change(Buffer.from(t.split('.')[2], 'base64url'));
      else sig = crypto.sign('sha256', Buffer.from(`${h}.${p}`), { key: K.ec1.privateKey, dsaEncoding: 'der' });
      const forged = `${h}.${p}.${b64u(sig)}`;
      await expectRefused(S.main, invalid('bad signature: signature does not verify', { authorization: `Bearer ${forged}`, secrets: [t, forged] }));
    });
  }

  test('base64url: padding "=" on the signature', async () => {
    const t = `${mint(S.main)}==`;
    await expectRefused(S.main, invalid('malformed: signature is not base64url', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('base64url: "+" and "/" (standard alphabet) in the header', async () => {
    const t = mint(S.main);
    const [h, p, s] = t.split('.');
    const std = Buffer.from(h, 'base64url').toString('base64').replace(/=+$/, '');
    const forged = `${std.includes('+') || std.includes('/') ? std : `${std.slice(0, -1)}+`}.${p}.${s}`;
    await expectRefused(S.main, invalid('malformed: header is not base64url', { authorization: `Bearer ${forged}`, secrets: [t, forged] }));
  });

  test('base64url: "/" in the payload', async () => {
    const t = mint(S.main);
    const [h, p, s] = t.split('.');
    const forged = `${h}.${p.slice(0, 8)}/${p.slice(9)}.${s}`;
    await expectRefused(S.main, invalid('malformed: payload is not base64url', { authorization: `Bearer ${forged}`, secrets: [t, forged] }));
  });

  test('base64url: non-zero unused bits (a second encoding of the same signature)', async () => {
    const t = mint(S.main, { key: 'ec1' }); // 64 bytes -> 86 chars, 4 unused bits at the end
    const [h, p, s] = t.split('.');
    const ALPHA = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = ALPHA.indexOf(s.at(-1));
    const forged = `${h}.${p}.${s.slice(0, -1)}${ALPHA[last | 1]}`;
    assert.deepEqual(Buffer.from(forged.split('.')[2], 'base64url'), Buffer.from(s, 'base64url'), 'same bytes');
    await expectRefused(S.main, invalid('malformed: signature is not base64url', { authorization: `Bearer ${forged}`, secrets: [t, forged] }));
  });

  test('base64url: a segment of length 4n+1', async () => {
    const t = mint(S.main);
    const [h, p, s] = t.split('.');
    const pp = p.length % 4 === 0 ? `${p}A` : p.length % 4 === 3 ? `${p}AA` : `${p}AAA`;
    const forged = `${h}.${pp}.${s}`;
    await expectRefused(S.main, invalid('malformed: payload is not base64url', { authorization: `Bearer ${forged}`, secrets: [t, forged] }));
  });

  test('four segments', async () => {
    const t = `${mint(S.main)}.${b64u('x')}`;
    await expectRefused(S.main, invalid('malformed: not three segments', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('five segments (JWE compact shape)', async () => {
    const t = [segment({ alg: 'RSA-OAEP', enc: 'A256GCM' }), b64u(crypto.randomBytes(256)), b64u(crypto.randomBytes(12)),
      b64u(crypto.randomBytes(64)), b64u(crypto.randomBytes(16))].join('.');
    await expectRefused(S.main, invalid('malformed: not three segments', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('a JWE-shaped header on a three-segment token', async () => {
    const t = jws({ header: { alg: 'RSA-OAEP', enc: 'A256GCM', kid: 'rsa1' }, payload: claimsFor(S.main), sig: crypto.randomBytes(256) });
    await expectRefused(S.main, invalid('alg refused: unknown alg', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('empty segments ("..")', async () => {
    await expectRefused(S.main, invalid('malformed: header is not a JSON object', { authorization: 'Bearer ..' }));
  });

  const headers = {
    'header is not JSON': ['not json', 'malformed: header is not a JSON object'],
    'header is a JSON array': ['["alg","RS256"]', 'malformed: header is not a JSON object'],
    'header is a JSON string': ['"RS256"', 'malformed: header is not a JSON object'],
    'header is empty': ['', 'malformed: header is not a JSON object'],
    'header has trailing garbage': ['{"alg":"RS256","kid":"rsa1"}x', 'malformed: header is not a JSON object'],
    'header is invalid UTF-8': [Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), 'malformed: header is not a JSON object'],
    'header has duplicate keys (alg RS256, then none)': ['{"alg":"RS256","kid":"rsa1","alg":"none"}', 'bad header: duplicate key in header'],
    'header has duplicate keys (alg none, then RS256)': ['{"alg":"none","kid":"rsa1","alg":"RS256"}', 'bad header: duplicate key in header'],
    'header has duplicate kid': ['{"alg":"RS256","kid":"evil","kid":"rsa1"}', 'bad header: duplicate key in header'],
    'header without alg': ['{"kid":"rsa1","typ":"at+jwt"}', 'bad header: alg missing'],
    'alg is a number': ['{"alg":256,"kid":"rsa1"}', 'bad header: alg is not a string'],
    'alg is a list': ['{"alg":["RS256"],"kid":"rsa1"}', 'bad header: alg is not a string'],
    'crit naming an unknown extension': ['{"alg":"RS256","kid":"rsa1","crit":["x-custom"],"x-custom":1}', 'bad header: crit names an unsupported extension'],
    'crit naming a registered parameter': ['{"alg":"RS256","kid":"rsa1","crit":["exp"]}', 'bad header: crit names an unsupported extension'],
    'crit empty list': ['{"alg":"RS256","kid":"rsa1","crit":[]}', 'bad header: crit names an unsupported extension'],
    'crit with b64': ['{"alg":"RS256","kid":"rsa1","b64":false,"crit":["b64"]}', 'bad header: crit names an unsupported extension'],
    '"b64": false': ['{"alg":"RS256","kid":"rsa1","b64":false}', 'bad header: unencoded payload (b64) not supported'],
    '"b64": "false"': ['{"alg":"RS256","kid":"rsa1","b64":"false"}', 'bad header: unencoded payload (b64) not supported'],
  };
  for (const [name, [header, reason]] of Object.entries(headers)) {
    test(name, async () => {
      // a real RS256 signature by rsa1 over exactly these bytes
      const t = jws({ header, payload: claimsFor(S.main), key: K.rsa1.privateKey, signAlg: 'RS256' });
      await expectRefused(S.main, invalid(reason, { authorization: `Bearer ${t}`, secrets: t }));
    });
  }

  const payloads = {
    'claims with duplicate keys (sub twice)': [(c) => JSON.stringify(c).replace('{', `{"sub":"sub-first-${rand()}",`), 'malformed: duplicate key in claims'],
    'claims with duplicate keys (aud twice, ours last)': [(c) => JSON.stringify(c).replace('{', '{"aud":"https://elsewhere.example/",'), 'malformed: duplicate key in claims'],
    'claims with duplicate keys (exp twice)': [(c) => JSON.stringify(c).replace('{', `{"exp":${now() - 9999},`), 'malformed: duplicate key in claims'],
    'claims are a JSON array': [() => '[1,2,3]', 'malformed: claims are not a JSON object'],
    'claims are not JSON': [() => 'hello', 'malformed: claims are not a JSON object'],
    'claims are invalid UTF-8': [() => Buffer.from([0x7b, 0x22, 0x73, 0xff, 0x22, 0x3a, 0x31, 0x7d]), 'malformed: claims are not a JSON object'],
    'claims with an integer too large for 64 bits': [(c) => JSON.stringify(c).replace('{', '{"big":99999999999999999999,'), 'malformed: claims are not a JSON object'],
  };
  for (const [name, [make, reason]] of Object.entries(payloads)) {
    test(`${name} (validly signed)`, async () => {
      const t = mint(S.main, { rawPayload: make(claimsFor(S.main)) });
      await expectRefused(S.main, invalid(reason, { authorization: `Bearer ${t}`, secrets: t }));
    });
  }
});

// ------------------------------------------------------------------ refusals: claims

describe('claims', () => {
  const cases = {
    'expired beyond the leeway (exp now-120)': [() => ({ exp: now() - 120 }), D.expired, /^expired 12[0-3]s ago$/],
    'expired 61 s ago (just beyond the leeway)': [() => ({ exp: now() - 62 }), D.expired, /^expired 6[2-5]s ago$/],
    'nbf in the future (now+120)': [() => ({ nbf: now() + 120 }), D.nbf, 'nbf in the future or not a number'],
    'nbf not a number': [{ nbf: 'yesterday' }, D.nbf, 'nbf in the future or not a number'],
    'iat in the future beyond the leeway (now+120)': [() => ({ iat: now() + 120 }), D.iat, 'iat in the future or invalid'],
    'iat not a number': [{ iat: '0' }, D.iat, 'iat in the future or invalid'],
    'wrong issuer': [{ iss: 'https://evil.test' }, D.issuer, 'wrong issuer'],
    'issuer with a trailing slash': [{ iss: `${ISSUER}/` }, D.issuer, 'wrong issuer'],
    'issuer in another case': [{ iss: ISSUER.toUpperCase() }, D.issuer, 'wrong issuer'],
    'issuer as a list': [{ iss: [ISSUER] }, D.issuer, 'wrong issuer'],
    'no issuer': [{ iss: undefined }, D.issuer, 'wrong issuer'],
    'missing exp': [{ exp: undefined }, D.exp, 'exp missing or not a number'],
    'exp as a string ("9999999999")': [{ exp: '9999999999' }, D.exp, 'exp missing or not a number'],
    'exp null': [{ exp: null }, D.exp, 'exp missing or not a number'],
    'exp true': [{ exp: true }, D.exp, 'exp missing or not a number'],
    'exp 1e300': [{ exp: 1e300 }, D.exp, 'exp missing or not a number'],
    'wrong audience': [{ aud: 'https://elsewhere.example/mcp' }, D.aud, '@AUD'],
    'audience array without ours': [{ aud: ['https://a.example/mcp', 'https://b.example/mcp'] }, D.aud, '@AUD'],
    'empty audience array': [{ aud: [] }, D.aud, '@AUD'],
    'no audience': [{ aud: undefined }, D.aud, '@AUD'],
    'audience as a number': [{ aud: 8080 }, D.aud, '@AUD'],
    'audience as an object': [{ aud: { '@RESOURCE': true } }, D.aud, '@AUD'],
    'audience with a trailing slash': [{ aud: '@RESOURCE/' }, D.aud, '@AUD'],
    'audience as a prefix of ours': [{ aud: '@PREFIX' }, D.aud, '@AUD'],
    'audience with a NUL after ours (jansson refuses \\u0000)': [{ aud: '@RESOURCE\u0000.evil' }, D.invalid, 'malformed: claims are not a JSON object'],
    'issuer with a NUL after ours (jansson refuses \\u0000)': [{ iss: `${ISSUER}\u0000.evil` }, D.invalid, 'malformed: claims are not a JSON object'],
    'minted for another resource (the scoped server)': [{ aud: '@OTHER' }, D.aud, '@AUD'],
    'scope claim a number': [{ scope: 42 }, D.scopes, 'scope claim malformed or too large'],
    'scp list with a number': [{ scope: undefined, scp: ['read', 7] }, D.scopes, 'scope claim malformed or too large'],
    '257 scopes': [{ scope: Array.from({ length: 257 }, (_, i) => `s${i}`).join(' ') }, D.scopes, 'scope claim malformed or too large'],
    'a scope of 513 bytes': [{ scope: `read ${'s'.repeat(513)}` }, D.scopes, 'scope claim malformed or too large'],
  };
  for (const [name, [over, desc, reason]] of Object.entries(cases)) {
    test(name, async () => {
      const fix = (v) => {
        if (typeof v === 'string') return v.replace('@PREFIX', S.main.resource.slice(0, -1)).replace('@RESOURCE', S.main.resource).replace('@OTHER', S.scoped.resource);
        if (Array.isArray(v)) return v.map(fix);
        if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [fix(k), fix(x)]));
        return v;
      };
      const t = mint(S.main, { claims: fix(typeof over === 'function' ? over() : over) });
      const why = reason === '@AUD' ? `audience does not name ${S.main.resource}` : reason;
      await expectRefused(S.main, { authorization: `Bearer ${t}`, status: 401, kind: 'invalid_token', desc, reason: why, secrets: t });
    });
  }

  for (const typ of ['id+jwt', 'JWT+foo', 'jwt ', 'JOSE', 'dpop+jwt', 'application/jwt', '']) {
    test(`typ ${JSON.stringify(typ)} is refused`, async () => {
      const t = mint(S.main, { header: { typ } });
      await expectRefused(S.main, { authorization: `Bearer ${t}`, status: 401, kind: 'invalid_token', desc: D.typ, reason: 'typ header is not JWT or at+jwt', secrets: t });
    });
  }

  test('typ as a number is refused', async () => {
    const t = mint(S.main, { header: { typ: 1 } });
    await expectRefused(S.main, { authorization: `Bearer ${t}`, status: 401, kind: 'invalid_token', desc: D.typ, reason: 'typ header is not JWT or at+jwt', secrets: t });
  });

  // Validly signed, so only a trusted issuer could send these; each on a server of its own.
  // NumericDates outside [0, 10^11) are refused as no valid expiry (and so cannot overflow).
  for (const [name, exp] of [
    ['INT64_MAX', '9223372036854775807'],
    ['INT64_MIN', '-9223372036854775808'],
  ]) {
    test(`exp ${exp} (${name}): 401 no valid expiry, and the server survives`, async () => {
      const srv = await start(`exp-${name}`, mainConfig);
      S[`exp${name}`] = srv;
      const t = mint(srv, { rawPayload: JSON.stringify(claimsFor(srv, { exp: 1 })).replace('"exp":1', `"exp":${exp}`) });
      secretsOf(t);
      let r;
      try {
        r = await send(srv, { authorization: `Bearer ${t}`, body: probeBody(newMarker()) });
      } catch (e) {
        await noAnswer(srv, e);
      }
      assert.equal(r.status, 401);
      assert.equal(parseChallenge(r.headers['www-authenticate'][0]).params.error_description, D.exp);
      await callProbe(srv, mint(srv));
      assert.equal(srv.exited, false);
    });
  }
});

// ------------------------------------------------------------------ several issuers, leeway 0, HS256

describe('several issuers (leeway 0, one with a shared HS256 secret, a 1024-bit key in a JWKS)', () => {
  const invalidM = (reason, extra) => ({ status: 401, kind: 'invalid_token', desc: D.invalid, reason, ...extra });

  test('each issuer\'s own tokens are accepted', async () => {
    const a = mint(S.multi);
    assert.deepEqual(await callProbe(S.multi, a), callerOf(payloadOf(a)));
    const b = mint(S.multi, { key: 'other1', claims: { iss: OTHER_ISSUER } });
    assert.deepEqual(await callProbe(S.multi, b), callerOf(payloadOf(b)));
    const c = mint(S.multi, { alg: 'HS256', kid: NO, signKey: HS_SECRET, claims: { iss: HS_ISSUER } });
    assert.deepEqual(await callProbe(S.multi, c), callerOf(payloadOf(c)));
  });

  test('the 1024-bit key was skipped with a warning at start', () => {
    assert.match(S.multi.log, /warning auth: .*mixed\.jwks\.json: key 0 \(kid "weak"\): RSA key under 2048 bits/);
  });

  test('a token signed by the 1024-bit key (kid weak) is refused', async () => {
    const t = mint(S.multi, { key: 'weak' });
    await expectRefused(S.multi, invalidM('unknown kid: kid not found', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('a token signed by the 1024-bit key without kid is refused', async () => {
    const t = mint(S.multi, { key: 'weak', kid: NO });
    await expectRefused(S.multi, invalidM('bad signature: signature does not verify', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('iss of one issuer, key of another', async () => {
    const t1 = mint(S.multi, { key: 'rsa1', claims: { iss: OTHER_ISSUER } });
    await expectRefused(S.multi, invalidM('unknown kid: kid not found', { authorization: `Bearer ${t1}`, secrets: t1 }));
    const t2 = mint(S.multi, { key: 'other1', claims: { iss: ISSUER } });
    await expectRefused(S.multi, invalidM('unknown kid: kid not found', { authorization: `Bearer ${t2}`, secrets: t2 }));
  });

  test('HS256 with the shared secret but the iss of an asymmetric issuer', async () => {
    const t = mint(S.multi, { alg: 'HS256', kid: NO, signKey: HS_SECRET });
    await expectRefused(S.multi, invalidM('alg refused: alg HS256 not allowed', { authorization: `Bearer ${t}`, secrets: [t, HS_SECRET] }));
  });

  test('RS256 by rsa1 with the iss of the HS256 issuer', async () => {
    const t = mint(S.multi, { claims: { iss: HS_ISSUER } });
    await expectRefused(S.multi, invalidM('alg refused: alg RS256 not allowed', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('HS384 with the shared secret (not in that issuer\'s list)', async () => {
    const t = mint(S.multi, { alg: 'HS384', kid: NO, signKey: HS_SECRET, claims: { iss: HS_ISSUER } });
    await expectRefused(S.multi, invalidM('alg refused: alg HS384 not allowed', { authorization: `Bearer ${t}`, secrets: [t, HS_SECRET] }));
  });

  test('HS256 with a wrong secret', async () => {
    const t = mint(S.multi, { alg: 'HS256', kid: NO, signKey: `${HS_SECRET}x`, claims: { iss: HS_ISSUER } });
    await expectRefused(S.multi, invalidM('bad signature: signature does not verify', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('HS256 keyed with rsa1\'s public PEM, iss of the HS256 issuer', async () => {
    // the secret has no kid, so it is tried for any kid; failing, the answer is "kid not found"
    const t = mint(S.multi, { alg: 'HS256', kid: 'rsa1', signKey: K.rsa1.publicKey.export({ type: 'spki', format: 'pem' }), claims: { iss: HS_ISSUER } });
    await expectRefused(S.multi, invalidM('unknown kid: kid not found', { authorization: `Bearer ${t}`, secrets: t }));
  });

  test('an unknown issuer, and no issuer at all', async () => {
    const t1 = mint(S.multi, { claims: { iss: 'https://evil.test' } });
    await expectRefused(S.multi, { authorization: `Bearer ${t1}`, status: 401, kind: 'invalid_token', desc: D.issuer, reason: 'no configured issuer matches the token', secrets: t1 });
    const t2 = mint(S.multi, { claims: { iss: undefined } });
    await expectRefused(S.multi, { authorization: `Bearer ${t2}`, status: 401, kind: 'invalid_token', desc: D.issuer, reason: 'no configured issuer matches the token', secrets: t2 });
  });

  test('iss twice in the claims (routing and checking must not disagree)', async () => {
    const t = mint(S.multi, { rawPayload: JSON.stringify(claimsFor(S.multi)).replace('{', `{"iss":"${OTHER_ISSUER}",`) });
    await expectRefused(S.multi, { authorization: `Bearer ${t}`, status: 401, kind: 'invalid_token', desc: D.issuer, reason: 'no configured issuer matches the token', secrets: t });
  });

  test('leeway 0: exp 2 s ago is expired, nbf 3 s ahead is not valid yet', async () => {
    const t1 = mint(S.multi, { claims: { exp: now() - 2 } });
    await expectRefused(S.multi, { authorization: `Bearer ${t1}`, status: 401, kind: 'invalid_token', desc: D.expired, reason: /^expired [234]s ago$/, secrets: t1 });
    const t2 = mint(S.multi, { claims: { nbf: now() + 3 } });
    await expectRefused(S.multi, { authorization: `Bearer ${t2}`, status: 401, kind: 'invalid_token', desc: D.nbf, reason: 'nbf in the future or not a number', secrets: t2 });
  });

  test('the metadata lists every issuer', async () => {
    const r = await request(S.multi.port, { method: 'GET', target: '/.well-known/oauth-protected-resource/mcp' });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body).authorization_servers, [ISSUER, OTHER_ISSUER, HS_ISSUER]);
    assert.ok(!r.body.includes(HS_SECRET));
  });
});

// ------------------------------------------------------------------ required scopes

describe('required scopes (auth.scopes = { "mcp:tools" })', () => {
  test('no token: 401 with scope in the challenge', async () => {
    await expectRefused(S.scoped, { authorization: null, status: 401, kind: 'no_token', scope: 'mcp:tools', reason: 'no Authorization header' });
  });

  test('a token without the scope: 403 insufficient_scope', async () => {
    const t = mint(S.scoped, { claims: { scope: 'read write' } });
    await expectRefused(S.scoped, {
      authorization: `Bearer ${t}`, status: 403, kind: 'insufficient_scope', desc: D.scope, scope: 'mcp:tools',
      reason: 'missing scope mcp:tools', secrets: t,
    });
  });

  for (const [name, claims] of Object.entries({
    'no scope claim at all': { scope: undefined },
    'scope in another case (MCP:TOOLS)': { scope: 'MCP:TOOLS' },
    'a longer scope (mcp:tools2)': { scope: 'mcp:tools2' },
    'a prefix (mcp:tool)': { scope: 'mcp:tool' },
    'separated by a comma': { scope: 'read,mcp:tools' },
    'separated by a tab': { scope: 'read\tmcp:tools' },
    'scp array without it': { scope: undefined, scp: ['read'] },
  })) {
    test(`403: ${name}`, async () => {
      const t = mint(S.scoped, { claims });
      await expectRefused(S.scoped, {
        authorization: `Bearer ${t}`, status: 403, kind: 'insufficient_scope', desc: D.scope, scope: 'mcp:tools',
        reason: 'missing scope mcp:tools', secrets: t,
      });
    });
  }

  test('scp ["mcp:tools\\u0000evil"] does not grant mcp:tools (jansson refuses \\u0000)', async () => {
    const t = mint(S.scoped, { claims: { scope: undefined, scp: ['mcp:tools\u0000evil'] } });
    await expectRefused(S.scoped, invalid('malformed: claims are not a JSON object', { authorization: `Bearer ${t}`, secrets: t }));
  });

  for (const [name, claims] of Object.entries({
    'scope string': { scope: 'read mcp:tools' },
    'scp array': { scope: undefined, scp: ['mcp:tools'] },
    'scp string': { scope: undefined, scp: 'mcp:tools read' },
  })) {
    test(`200 with the scope (${name})`, async () => {
      const t = mint(S.scoped, { claims });
      assert.deepEqual(await callProbe(S.scoped, t), callerOf(payloadOf(t)));
    });
  }

  test('the metadata names the scope', async () => {
    const r = await request(S.scoped.port, { method: 'GET', target: '/.well-known/oauth-protected-resource/mcp' });
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), {
      resource: S.scoped.resource, authorization_servers: [ISSUER],
      scopes_supported: ['mcp:tools'], bearer_methods_supported: ['header'],
    });
  });
});

// ------------------------------------------------------------------ metadata, health, order

describe('metadata, health and what comes before auth', () => {
  for (const target of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
    test(`GET ${target}: the RFC 9728 document, no token needed`, async () => {
      const r = await request(S.main.port, { method: 'GET', target });
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'][0], /^application\/json\b/);
      assert.deepEqual(JSON.parse(r.body), {
        resource: S.main.resource, authorization_servers: [ISSUER],
        scopes_supported: [], bearer_methods_supported: ['header'],
      });
      // a garbage token changes nothing
      const r2 = await request(S.main.port, { method: 'GET', target, headers: [['Authorization', 'Bearer !!!']] });
      assert.equal(r2.status, 200);
      assert.equal(r2.body, r.body);
    });
  }

  test('POST to the metadata: 405', async () => {
    const r = await request(S.main.port, { method: 'POST', target: '/.well-known/oauth-protected-resource/mcp', headers: JSON_HEADERS, body: '{}' });
    assert.equal(r.status, 405);
  });

  test('the 401\'s resource_metadata is the path-suffixed metadata URL, which serves the document', async () => {
    const r = await send(S.main, { authorization: null, body: probeBody(newMarker()) });
    const url = parseChallenge(r.headers['www-authenticate'][0]).params.resource_metadata;
    assert.equal(url, `http://127.0.0.1:${S.main.port}/.well-known/oauth-protected-resource/mcp`);
    const doc = await request(S.main.port, { method: 'GET', target: new URL(url).pathname });
    assert.equal(JSON.parse(doc.body).resource, S.main.resource);
  });

  test('/healthz needs no token, and ignores a bad one', async () => {
    for (const headers of [[], [['Authorization', 'Bearer !!!']], [['Authorization', 'Basic eDp5']]]) {
      const r = await request(S.main.port, { method: 'GET', target: '/healthz', headers });
      assert.equal(r.status, 200);
      const j = JSON.parse(r.body);
      assert.equal(j.status, 'ok');
      assert.equal(j.tools, 5);
    }
  });

  const before = {
    'a bad Content-Type': { headers: [['Content-Type', 'text/plain'], ['Accept', 'application/json']] },
    'an unacceptable Accept': { headers: [['Content-Type', 'application/json'], ['Accept', 'text/html']] },
    'an unsupported MCP-Protocol-Version': { headers: [...JSON_HEADERS, ['MCP-Protocol-Version', '1999-01-01']] },
    'method PUT': { method: 'PUT' },
    'method GET': { method: 'GET', headers: [['Accept', 'text/event-stream']] },
    'method DELETE': { method: 'DELETE', headers: [] },
  };
  for (const [name, o] of Object.entries(before)) {
    test(`auth comes before ${name}: 401 without a token`, async () => {
      await expectRefused(S.main, { authorization: null, status: 401, kind: 'no_token', reason: 'no Authorization header', ...o });
    });
  }

  test('auth comes before the body: a malformed JSON body without a token is 401', async () => {
    const r = await send(S.main, { authorization: null, body: '{"jsonrpc":' });
    assert.equal(r.status, 401);
    assert.deepEqual(JSON.parse(r.body), { jsonrpc: '2.0', id: null, error: { code: -32600, message: NO_TOKEN_MSG } });
  });

  test('auth comes before the body size: an oversized body without a token is 401', async () => {
    const r = await send(S.main, { authorization: null, body: `{"x":"${'a'.repeat(1100 * 1024)}"}` });
    assert.equal(r.status, 401);
  });

  test('the Host check comes first: a foreign Host is 403 even with a valid token', async () => {
    const t = mint(S.main);
    const r = await request(S.main.port, { host: 'evil.example', headers: [...JSON_HEADERS, ['Authorization', `Bearer ${t}`]], body: probeBody(newMarker()) });
    assert.equal(r.status, 403);
    assert.equal(JSON.parse(r.body).error.message, 'Forbidden: Host not allowed');
    secretsOf(t);
  });
});

// ------------------------------------------------------------------ keys from a jwks_uri

describe('keys fetched from a jwks_uri', () => {
  const remoteToken = (kid, key, over = {}) => {
    const [alg, signKey] = key;
    return mint(S.remote, { alg, kid, signKey, claims: { iss: `${KEYS_URL}/good`, ...over } });
  };

  test('a token of the remote issuer is accepted; the keys were fetched once', async () => {
    const t = remoteToken('rsa1', SIGNERS.rsa1);
    assert.deepEqual(await callProbe(S.remote, t), callerOf(payloadOf(t)));
    assert.equal(keyHits.good, 1);
  });

  test('key rotation: requests naming a new kid wait for one refetch and are served', async () => {
    GOOD_KEYS.push(publicJwk(ROT, 'rot'));
    const before = keyHits.good;
    const tokens = [0, 1, 2].map(() => remoteToken('rot', ['ES256', ROT.privateKey]));
    const got = await Promise.all(tokens.map((t) => callProbe(S.remote, t)));
    S.remote.refetchedAt = Date.now();
    got.forEach((g, i) => assert.deepEqual(g, callerOf(payloadOf(tokens[i]))));
    assert.equal(keyHits.good, before + 1, 'one refetch for all three');
  });

  test(`unknown kids right after: 401 at once, no refetch within refetch_s (${REFETCH_S} s)`, async () => {
    const before = keyHits.good;
    for (let i = 0; i < 10; i++) {
      const t = remoteToken(`kid-${rand()}`, SIGNERS.rsa1);
      await expectRefused(S.remote, invalid('unknown kid: kid not found', { authorization: `Bearer ${t}`, secrets: t }));
    }
    assert.ok(Date.now() - S.remote.refetchedAt < (REFETCH_S - 1) * 1000, 'too slow to test the refetch interval');
    assert.equal(keyHits.good, before, 'an unknown kid refetched within refetch_s');
  });

  const afterRefetchWindow = () => sleep(Math.max(0, S.remote.refetchedAt + REFETCH_S * 1000 + 1100 - Date.now()));

  test('a key dropped from the JWKS: tokens it signed, even cached ones, are refused after the next fetch', async () => {
    const conn = new Conn(S.remote.port); // one worker, one cache
    try {
      const cached = remoteToken('rot', ['ES256', ROT.privateKey]);
      for (let i = 0; i < 2; i++) await callProbe(S.remote, cached, { conn });
      GOOD_KEYS.splice(GOOD_KEYS.findIndex((k) => k.kid === 'rot'), 1);
      await afterRefetchWindow();
      const before = keyHits.good;
      const unknown = remoteToken(`kid-${rand()}`, SIGNERS.rsa1);
      const r1 = await send(S.remote, { authorization: `Bearer ${unknown}`, body: probeBody(newMarker()), conn });
      S.remote.refetchedAt = Date.now();
      assert.equal(r1.status, 401);
      assert.equal(keyHits.good, before + 1, 'the unknown kid made one refetch');
      const marker = newMarker();
      const r2 = await send(S.remote, { authorization: `Bearer ${cached}`, body: probeBody(marker), conn });
      assert.equal(r2.status, 401, r2.body);
      assert.equal(parseChallenge(r2.headers['www-authenticate'][0]).params.error, 'invalid_token');
      const ok = remoteToken('rsa1', SIGNERS.rsa1);
      await callProbe(S.remote, ok, { conn });
      assert.ok(!S.remote.log.includes(probeLine(marker)));
      secretsOf(unknown);
      secretsOf(cached);
    } finally {
      conn.close();
    }
  });

  test('the issuer fails: the last good keys keep serving', async () => {
    goodDown = true;
    await afterRefetchWindow();
    const before = keyHits.good;
    const t = remoteToken('kid-after-outage', SIGNERS.rsa1);
    await expectRefused(S.remote, invalid('unknown kid: kid not found', { authorization: `Bearer ${t}`, secrets: t }));
    assert.equal(keyHits.good, before + 1, 'the unknown kid made one refetch');
    // logged before the answer, but read from the server's stderr pipe asynchronously
    const warned = await waitForLog(S.remote, (tail) => /warning auth: fetching .*\/good\/jwks\.json: HTTP 500 \(still using the keys fetched before\)/.test(tail));
    assert.ok(warned, `no warning about the failed fetch in the log:\n${S.remote.log}`);
    const ok = remoteToken('rsa1', SIGNERS.rsa1);
    assert.deepEqual(await callProbe(S.remote, ok), callerOf(payloadOf(ok)));
  });

  test('no keys at all: 503 without a challenge; the redirect to the attacker is not followed', async () => {
    const hits = attackerHits;
    const t = mint(S.nokeys, { claims: { iss: `${KEYS_URL}/down` } });
    secretsOf(t);
    const from = S.nokeys.log.length;
    const marker = newMarker();
    const r = await send(S.nokeys, { authorization: `Bearer ${t}`, body: probeBody(marker) });
    assert.equal(r.status, 503);
    assert.equal(r.headers['www-authenticate'], undefined);
    assert.deepEqual(JSON.parse(r.body), {
      jsonrpc: '2.0', id: null, error: { code: -32600, message: "The authorization server's keys are unavailable" },
    });
    const tail = await waitForLog(S.nokeys, (l) => /auth: refused \(/.test(l), from);
    assert.match(tail, /auth: refused \(no keys for http:\/\/127\.0\.0\.1:\d+\/down: fetching http:\/\/127\.0\.0\.1:\d+\/down\/jwks\.json: HTTP 302\)/);
    assert.ok(!S.nokeys.log.includes(probeLine(marker)));
    assert.equal(attackerHits, hits);
    // a request without a token is still answered 401 with the challenge
    await expectRefusedNoFollow(S.nokeys);
  });

  test('no keys: garbage tokens do not each make the server fetch the JWKS', async () => {
    const before = keyHits.down;
    for (let i = 0; i < 10; i++) {
      const r = await send(S.nokeys, { authorization: 'Bearer x', body: probeBody(newMarker()) });
      assert.equal(r.status, 503);
    }
    assert.ok(keyHits.down - before <= 1, `10 requests made ${keyHits.down - before} fetches of the JWKS`);
  });
});

// A no-token refusal without the follow-up valid call (for servers that cannot serve one).
async function expectRefusedNoFollow(srv) {
  const r = await send(srv, { authorization: null, body: probeBody(newMarker()) });
  assert.equal(r.status, 401);
  assert.deepEqual(parseChallenge(r.headers['www-authenticate'][0]).params, { resource_metadata: srv.prmUrl });
}

// ------------------------------------------------------------------ configuration

describe('configurations that must not start', () => {
  const run = (name, config) => {
    const f = path.join(DIR, `${name}.conf.lua`);
    fs.writeFileSync(f, `return ${config}\n`);
    return runToExit(BIN, ['serve', '--listen', '127.0.0.1:0', '--scripts', SCRIPTS, '--policies', POLICIES, '--config', f, '--stateless']);
  };

  test('a JWKS with only a 1024-bit RSA key: refuses to start, saying why', async () => {
    const r = await run('weak', `{ auth = { resource = "http://127.0.0.1:1/mcp", issuers = { { issuer = "${ISSUER}", jwks_file = "${WEAK_JWKS}" } } } }`);
    assert.equal(r.code, 1, r.out);
    assert.equal(r.out, `luamcp: keys of ${ISSUER}: JWKS has no usable key: key 0 (kid "weak"): RSA key under 2048 bits\n`);
  });

  test('HS256 listed for a JWKS issuer: refuses to start', async () => {
    const r = await run('hsjwks', `{ auth = { resource = "http://127.0.0.1:1/mcp", issuers = { { issuer = "${ISSUER}", jwks_file = "${MAIN_JWKS}", algorithms = { "RS256", "HS256" } } } } }`);
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /HS\* algorithms need a shared secret \(secret_env\), never a public key/);
  });

  test('a JWKS whose only key is an HMAC (oct) key: refuses to start', async () => {
    const f = path.join(DIR, 'oct.jwks.json');
    fs.writeFileSync(f, JSON.stringify({ keys: [{ kty: 'oct', k: b64u(crypto.randomBytes(32)), kid: 'oct', use: 'sig' }] }));
    const r = await run('oct', `{ auth = { resource = "http://127.0.0.1:1/mcp", issuers = { { issuer = "${ISSUER}", jwks_file = "${f}" } } } }`);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /oct keys are accepted only as a configured secret/);
  });
});

// ------------------------------------------------------------------ ctx.auth in Lua

describe('ctx.auth is read-only and cannot be forged', () => {
  for (const what of ['subject', 'new_field', 'expires_at', 'claims', 'scopes', 'scope_field', 'scope_insert', 'scope_meta', 'auth_meta']) {
    test(`writing ctx.auth (${what}) fails the call`, async () => {
      const from = S.main.log.length;
      const r = await send(S.main, { authorization: `Bearer ${mint(S.main)}`, body: toolBody('tamper', { what }) });
      assert.equal(r.status, 200);
      const res = JSON.parse(r.body).result;
      assert.deepEqual(res, { content: [{ type: 'text', text: "tool 'tamper' failed (see server log)" }], isError: true });
      const tail = await waitForLog(S.main, (t) => /tamper/.test(t), from);
      assert.match(tail, /attempt to modify a read-only table|cannot change a protected metatable/);
    });
  }

  test('scope membership is scopes:has(x) for every name; indexing a scope name is an error', async () => {
    for (const name of ['read', 'nope', 'all', 'has', 'list', 'any']) {
      const r = await send(S.main, { authorization: `Bearer ${mint(S.main, { claims: { scope: 'read' } })}`, body: toolBody('scopeidx', { name }) });
      // the method names index to the methods (which is why indexing is not membership)
      const method = ['all', 'has', 'list', 'any'].includes(name);
      const want = { indexed: method, has: name === 'read' };
      assert.deepEqual(JSON.parse(r.body).result.structuredContent, want, `scopes[${name}]`);
    }
  });

  test('rawset on ctx.auth is refused; replacing ctx.auth stays inside that call', async () => {
    const srv = await start('sidestep', oneWorkerConfig);
    S.sidestep = srv;
    for (const what of ['rawset', 'replace']) {
      const r = await send(srv, { authorization: `Bearer ${mint(srv)}`, body: toolBody('sidestep', { what }) });
      assert.equal(r.status, 200);
      // rawset would bypass the read-only proxy: the sandbox's rawset refuses those proxies
      const want = what === 'rawset' ? [{ type: 'text', text: "tool 'sidestep' failed (see server log)" }]
                                     : [{ type: 'text', text: 'done' }];
      assert.deepEqual(JSON.parse(r.body).result.content, want);
      const t = mint(srv);
      assert.deepEqual(await callProbe(srv, t), callerOf(payloadOf(t)));
    }
  });

  test('a tool cannot change ctx.auth of later calls through getmetatable(ctx)', async () => {
    const srv = await start('poison', oneWorkerConfig);
    S.poison = srv;
    const r = await send(srv, { authorization: `Bearer ${mint(srv)}`, body: toolBody('sidestep', { what: 'poison' }) });
    assert.equal(r.status, 200);
    const t = mint(srv);
    assert.deepEqual(await callProbe(srv, t), callerOf(payloadOf(t)));
  });

  test('scopes methods called on foreign tables raise Lua errors, not crashes', async () => {
    const srv = await start('confuse', oneWorkerConfig);
    S.confuse = srv;
    let r;
    try {
      r = await send(srv, { authorization: `Bearer ${mint(srv)}`, body: toolBody('confuse', {}) });
    } catch (e) {
      await noAnswer(srv, e);
    }
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body).result.structuredContent, { survived: true });
    await callProbe(srv, mint(srv));
  });
});
