// e2e.mjs — mcp.http (backend calls from Lua tools) end to end: the real luamcp binary, the
// tools of fixtures/scripts over a mock backend in this process (HTTP, and HTTPS with a
// throwaway CA made by the openssl CLI), every port on loopback and picked at run time.
// Three servers: main (the common allowlist, one worker), short (limits.timeout_ms 1500, plain
// http allowed, no ca_file) and strict (loopback not in allow_private).
//
//   round trip    GET/POST/PUT/DELETE/HEAD with query, headers, json, form and raw bodies; the
//                 response's status, lower-case headers, body and res:json(); big bodies
//   statuses      4xx/5xx (and a 302 without Location) are responses, not errors
//   timeouts      timeout_ms, egress.timeout_ms, and limits.timeout_ms cutting them
//   size          max_bytes per request, egress.max_response_bytes, decoded gzip
//   failures      connection refused, a cut body; TLS: an unknown CA, a wrong name, no ca_file
//   redirects     same host, refused hosts, a loop, and what never follows to another host
//   egress        allowlists (global, wildcard, host:port, per tool), schemes, addresses
//                 (metadata, 0/8, private, IPv6, IPv4-mapped, NAT64) checked at connect
//   credentials   opaque to handlers, masked to policies and audit, scrubbed from results,
//                 notifications and logs; no way to read them or send them elsewhere
//   secrets       sent as headers, redacted from errors and logs
//   all           mcp.http.all with refused entries
//   policies      a check calling mcp.http denies; the server goes on
//   concurrency   a waiting call does not block the worker; a client gone, a reload while
//                 waiting; 200 calls at once
//   limits        egress.max_requests, max_inflight, cpu_ms across a wait, coroutines, C
//                 callbacks, a bare yield, load time
//   shutdown      SIGTERM with a call waiting, then for each server: exit 0, no sanitizer
//                 report; egress log lines; no credential or secret in any output
//
// After every bad case, a good call on the same server must still succeed.
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test e2e.mjs   (default ../../build/luamcp)
// Node built-ins and the openssl CLI only. BACKEND_KEEP=1 keeps the temporary directory (the
// servers' stdout.log and stderr.log are there).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import { track, waitFor } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCRIPTS = path.join(HERE, 'fixtures', 'scripts');
const POLICIES = path.join(HERE, 'fixtures', 'policies');
const LOAD_TIME = path.join(HERE, 'fixtures', 'load_time');
const BAD_TOOLS = path.join(HERE, 'fixtures', 'bad_tools');
const BIN = path.resolve(HERE, process.env.LUAMCP_BIN || '../../build/luamcp');
if (!existsSync(BIN)) throw new Error(`LUAMCP_BIN must name the luamcp binary (got '${BIN}')`);

const TMP = mkdtempSync(path.join(os.tmpdir(), 'luamcp-backend-'));
const SECRET = `sk-live-${crypto.randomBytes(16).toString('hex')}`; // LUAMCP_SECRET_API_KEY
const TOKENS = new Set(); // every credential the tests pass: none may show up in any output
const token = () => {
  const t = `tok-${crypto.randomBytes(16).toString('hex')}`;
  TOKENS.add(t);
  return t;
};
// A token in the forms a backend or a script cheaply makes of it: as is, reversed, hex, percent-
// and JSON-escaped, base64 and base64url inside longer encoded texts (each alignment).
const credForms = (tok) => {
  const b = Buffer.from(tok);
  return [
    tok, [...tok].reverse().join(''), b.toString('hex'), b.toString('hex').toUpperCase(),
    encodeURIComponent(tok), encodeURIComponent(tok).toLowerCase(), tok.replace(/\//g, '\\/'),
    Buffer.from(`Bearer ${tok}`).toString('base64'), Buffer.from(`{"t":"${tok}"}`).toString('base64'),
    Buffer.from(`xx${tok}`).toString('base64url'), b.toString('base64'),
    // JSON escapes an encoder picks per byte, which a script's mcp.json.decode or r:json() undoes:
    // every non-alphanumeric as \u00hh (lower and upper case), and Go's mix (+ escaped, / as \/)
    tok.replace(/[^A-Za-z0-9]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
    tok.replace(/[^A-Za-z0-9]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()}`),
    tok.replace(/\+/g, '\\u002b').replace(/\//g, '\\/'),
  ];
};
let tagSeq = 0;
const TAGS = new Set(); // every tag sent in a query string: none may show up in an egress log line
const tag = (what) => {
  const t = `${what}-${++tagSeq}-${crypto.randomBytes(3).toString('hex')}`;
  TAGS.add(t);
  return t;
};

// ------------------------------------------------------------------ processes

// children are tracked (and killed at exit whatever happens) by the shared harness
process.on('exit', () => {
  if (process.env.BACKEND_KEEP) console.error(`backend: kept ${TMP}`);
  else rmSync(TMP, { recursive: true, force: true });
});

function run(args, opts = {}) {
  const r = spawnSync(BIN, args, { cwd: TMP, encoding: 'utf8', timeout: 30000, ...opts });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

// ------------------------------------------------------------------ certificates

const CERTS = path.join(TMP, 'certs');
mkdirSync(CERTS);

function openssl(args) {
  const r = spawnSync('openssl', args, { cwd: CERTS, encoding: 'utf8', timeout: 30000 });
  if (r.error) throw new Error(`openssl: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(name) {
  openssl(['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2',
    '-subj', `/CN=luamcp backend test ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return path.join(CERTS, `${name}.pem`);
}

function makeLeaf(name, ca, names) {
  openssl(['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${names[0]}`]);
  writeFileSync(path.join(CERTS, `${name}.ext`), [
    `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    '',
  ].join('\n'));
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
    '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
  return { key: readFileSync(path.join(CERTS, `${name}.key`)), cert: readFileSync(path.join(CERTS, `${name}.pem`)) };
}

// ------------------------------------------------------------------ the mock backend

// One handler behind three listeners (HTTPS with a certificate of our CA, HTTPS with one of
// another CA, plain HTTP). Every request is recorded; the routes:
//   /echo      200 JSON {scheme, method, path, query, headers, body}
//   /text      200 text/plain
//   /status    ?code=N: that status, JSON {status, tag}
//   /slow      ?ms=N: the echo after N ms
//   /hang      never answers
//   /hold      ?key=K: answers when the test calls mock.release(K)
//   /big       ?n=N: N bytes
//   /redirect  ?to=URL&code=N: N (302) with Location: URL
//   /loop      302 to itself
const mock = {
  requests: [],
  holds: new Map(),
  open: new Set(), // responses not yet answered (hang, hold, slow)
  servers: [],
  byTag(t) { return this.requests.filter((r) => r.query.tag === t); },
  release(key, extra) {
    const h = this.holds.get(key);
    assert.ok(h, `nothing holds ${key}`);
    this.holds.delete(key);
    echo(h.rec, h.res, 200, extra);
  },
};

function echo(rec, res, status = 200, extra = {}) {
  const body = JSON.stringify({
    scheme: rec.scheme, method: rec.method, path: rec.path, query: rec.query, headers: rec.headers, body: rec.body, ...extra,
  });
  res.writeHead(status, { 'Content-Type': 'application/json', 'X-Mock-Reply': 'Yes', 'X-Multi': ['one', 'two'] });
  res.end(body);
}

function mockHandler(scheme) {
  return (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const u = new URL(req.url, 'http://mock');
      const rec = {
        scheme, host: req.headers.host, method: req.method, path: u.pathname,
        query: Object.fromEntries(u.searchParams), headers: req.headers, body: Buffer.concat(chunks).toString('utf8'),
      };
      mock.requests.push(rec);
      const q = rec.query;
      switch (rec.path) {
        case '/echo':
          return echo(rec, res);
        case '/text':
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          return res.end('plain text, not JSON');
        case '/status':
          res.writeHead(Number(q.code), { 'Content-Type': 'application/json' });
          return res.end(JSON.stringify({ status: Number(q.code), tag: q.tag }));
        case '/slow': {
          mock.open.add(res);
          const timer = setTimeout(() => echo(rec, res), Number(q.ms));
          res.on('close', () => { clearTimeout(timer); mock.open.delete(res); });
          return undefined;
        }
        case '/hang':
          mock.open.add(res);
          res.on('close', () => mock.open.delete(res));
          return undefined;
        case '/hold':
          mock.open.add(res);
          res.on('close', () => mock.open.delete(res));
          mock.holds.set(q.key, { rec, res });
          return undefined;
        case '/big':
          res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
          return res.end(Buffer.alloc(Number(q.n), 'x'));
        case '/introspect': { // keyed by the bearer token, as a token introspection cache might be
          const tok = String(rec.headers.authorization).replace(/^Bearer /, '');
          res.writeHead(200, { 'Content-Type': 'application/json' });
          return res.end(JSON.stringify({ active: true, tokens: { [tok]: { scope: 'read' } }, tag: q.tag }));
        }
        case '/forms': { // the bearer token echoed in every form a backend cheaply produces
          const tok = String(rec.headers.authorization).replace(/^Bearer /, '');
          res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Echo': Buffer.from(tok).toString('base64') });
          return res.end(credForms(tok).join('\n'));
        }
        case '/gzip': // N zero bytes, gzip-encoded (a few KiB on the wire)
          res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Encoding': 'gzip' });
          return res.end(zlib.gzipSync(Buffer.alloc(Number(q.n))));
        case '/truncate': // promises 1000 bytes, sends 10, hangs up
          res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '1000' });
          res.write('0123456789');
          return setTimeout(() => res.destroy(), 50);
        case '/headers': // N headers of B bytes each
          for (let i = 0; i < Number(q.n); i++) res.setHeader(`X-H-${i}`, 'v'.repeat(Number(q.b || 1)));
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          return res.end('many headers');
        case '/redirect':
          res.writeHead(Number(q.code || 302), { Location: q.to });
          return res.end();
        case '/loop':
          res.writeHead(302, { Location: `/loop?tag=${encodeURIComponent(q.tag)}` });
          return res.end();
        default:
          res.writeHead(404);
          return res.end();
      }
    });
  };
}

async function listen(server) {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  mock.servers.push(server);
  return server.address().port;
}

// A port nothing listens on: bound, then closed.
async function closedPort() {
  const s = net.createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

// ------------------------------------------------------------------ luamcp

// A Lua literal (configs only hold ASCII strings, numbers, booleans, lists and tables).
function lua(v) {
  if (typeof v === 'string') {
    assert.match(v, /^[\x20-\x7e]*$/);
    return JSON.stringify(v);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `{ ${v.map(lua).join(', ')} }`;
  return `{ ${Object.entries(v).map(([k, x]) => `${/^[A-Za-z_]\w*$/.test(k) ? k : `[${JSON.stringify(k)}]`} = ${lua(x)}`).join(', ')} }`;
}

const ENV = { ...process.env, LUAMCP_SECRET_API_KEY: SECRET };
const servers = [];

function writeConfig(name, config) {
  const dir = path.join(TMP, name);
  mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'luamcp.conf.lua');
  writeFileSync(conf, `return ${lua({ workers: 1, log_level: 'info', auth: { enabled: false }, grace_s: 3, ...config })}\n`);
  return { dir, conf };
}

// luamcp serve on 127.0.0.1:0; the port from its "listening on ... port N" line. stdout (the
// audit lines) and stderr (the log) are kept apart, and together in .log.
async function startLuamcp(name, config, scripts = SCRIPTS) {
  const { dir, conf } = writeConfig(name, config);
  const proc = track(spawn(BIN, ['serve', '--config', conf, '--scripts', scripts, '--policies', POLICIES,
    '--listen', '127.0.0.1:0', '--stateless'], { cwd: dir, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] }));
  const s = {
    name, dir, conf, proc, out: '', err: '', log: '',
    // SIGTERM, then: a clean exit (status 0, and nothing from the sanitizers in the asan variant)
    async stop() {
      const { code, signal } = await proc.stopProcess();
      writeFileSync(path.join(dir, 'stdout.log'), s.out);
      writeFileSync(path.join(dir, 'stderr.log'), s.err);
      return { code, signal };
    },
    auditLines() {
      return s.out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    },
  };
  proc.stdout.on('data', (d) => { s.out += d; s.log += d; });
  proc.stderr.on('data', (d) => { s.err += d; s.log += d; });
  for (let i = 0; i < 800; i++) {
    const m = s.err.match(/listening on 127\.0\.0\.1:0 port (\d+)/);
    if (m) {
      s.url = `http://127.0.0.1:${m[1]}/mcp`;
      servers.push(s);
      return s;
    }
    if (proc.exited()) break;
    await sleep(25);
  }
  await proc.stopProcess();
  throw new Error(`luamcp (${name}) did not start; log:\n${s.log}`);
}

// ------------------------------------------------------------------ MCP over HTTP, by hand

let nextId = 1;

async function rpc(server, method, params, { timeout = 30000, all = false } = {}) {
  const id = nextId++;
  const res = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
    signal: AbortSignal.timeout(timeout),
  });
  const text = await res.text();
  let body = null;
  let messages = [];
  if (text && (res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    messages = text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
    body = messages.find((m) => m.id === id) ?? null;
  } else if (text) {
    body = JSON.parse(text);
    messages = [body];
  }
  assert.equal(res.status, 200, `${method}: ${res.status} ${text}`);
  assert.ok(body, `${method}: no answer: ${text}`);
  assert.equal(body.id, id);
  return { status: res.status, text, body, messages };
}

// A tools/call: its result (a JSON-RPC error fails the test).
async function call(server, name, args, opts) {
  const r = await rpc(server, 'tools/call', { name, arguments: args }, opts);
  assert.equal(r.body.error, undefined, `${name}: ${r.text}`);
  return { ...r.body.result, text: r.text };
}

// A successful result: its structured content (which its text content repeats).
function ok(res, what = '') {
  assert.equal(res.isError, undefined, `${what}: ${res.text}`);
  assert.ok(res.structuredContent, `${what}: ${res.text}`);
  assert.deepEqual(JSON.parse(res.content[0].text), res.structuredContent, what);
  return res.structuredContent;
}

// A tool error: its message.
function failed(res, what = '') {
  assert.equal(res.isError, true, `${what}: ${res.text}`);
  assert.equal(res.content.length, 1, what);
  assert.equal(res.content[0].type, 'text', what);
  return res.content[0].text;
}

// ------------------------------------------------------------------ the setup

let PS; // HTTPS, a certificate of our CA for the test names
let PR; // HTTPS, a certificate of another CA (rogue)
let PH; // plain HTTP
let PC; // closed
let CA;
let main; // the allowlist of most tests; one worker, so concurrency is the worker's own
let short; // limits.timeout_ms 1500, egress.timeout_ms 700, http allowed, no ca_file
let strict; // no allow_private for loopback

const A = () => `https://a.test:${PS}`;
const B = () => `https://b.test:${PS}`;
const C = () => `https://c.test:${PS}`;
const EVIL = () => `https://evil.test:${PS}`;

before(async () => {
  CA = makeCa('ca');
  makeCa('rogue-ca');
  const names = ['a.test', 'b.test', 'c.test', 'evil.test', 'meta.test', 'rogue.test', 'plain.test', 'api.wild.test', 'port.test', 'mapped-lo.test'];
  const good = makeLeaf('server', 'ca', names);
  const rogue = makeLeaf('rogue', 'rogue-ca', names);
  PS = await listen(https.createServer(good, mockHandler('https')));
  PR = await listen(https.createServer(rogue, mockHandler('https')));
  PH = await listen(http.createServer(mockHandler('http')));
  PC = await closedPort();

  main = await startLuamcp('main', {
    max_connections_per_address: 0, // 200 calls at once, all from 127.0.0.1
    limits: { timeout_ms: 20000, cpu_ms: 250 },
    egress: {
      allow: ['a.test', 'b.test', 'c.test', 'wrong.test', 'meta.test', 'rogue.test', 'plain.test', 'closed.test',
        '*.wild.test', `port.test:${PS}`, 'zero.test', 'ten.test', 'meta6.test', 'mapped.test', 'nat64.test', 'mapped-lo.test'],
      allow_private: ['127.0.0.1/32'],
      resolve: [
        `a.test:${PS}:127.0.0.1`, `b.test:${PS}:127.0.0.1`, `c.test:${PS}:127.0.0.1`,
        `evil.test:${PS}:127.0.0.1`, `wrong.test:${PS}:127.0.0.1`, `meta.test:${PS}:169.254.169.254`,
        `rogue.test:${PR}:127.0.0.1`, `plain.test:${PH}:127.0.0.1`, `closed.test:${PC}:127.0.0.1`,
        `api.wild.test:${PS}:127.0.0.1`, `wild.test:${PS}:127.0.0.1`, `port.test:${PS}:127.0.0.1`, `port.test:${PR}:127.0.0.1`,
        `zero.test:${PS}:0.0.0.0`, `ten.test:${PS}:10.1.2.3`, `meta6.test:${PS}:[fd00:ec2::254]`,
        `mapped.test:${PS}:[::ffff:169.254.169.254]`, `nat64.test:${PS}:[64:ff9b::a9fe:a9fe]`, `mapped-lo.test:${PS}:[::ffff:127.0.0.1]`,
      ],
      ca_file: CA,
      max_requests: 8,
      max_response_bytes: 1048576,
    },
  });
  short = await startLuamcp('short', {
    limits: { timeout_ms: 1500 },
    egress: {
      allow: ['a.test', 'plain.test'],
      allow_http: true,
      allow_private: ['127.0.0.1/32'],
      resolve: [`a.test:${PS}:127.0.0.1`, `plain.test:${PH}:127.0.0.1`],
      timeout_ms: 700,
      max_inflight: 2,
    },
  });
  strict = await startLuamcp('strict', {
    egress: {
      allow: ['a.test'],
      allow_private: ['10.0.0.0/8'],
      resolve: [`a.test:${PS}:127.0.0.1`],
      ca_file: CA,
    },
  });
  main.good = async () => {
    const t = tag('good');
    const r = ok(await call(main, 'get', { url: `${A()}/echo?tag=${t}` }), 'a good call');
    assert.equal(r.status, 200);
    assert.equal(r.json.query.tag, t);
  };
  short.good = async () => {
    const t = tag('good');
    const r = ok(await call(short, 'get', { url: `http://plain.test:${PH}/echo?tag=${t}` }), 'a good call');
    assert.equal(r.status, 200);
    assert.equal(r.json.query.tag, t);
  };
  strict.good = async () => {
    assert.deepEqual(ok(await call(strict, 'fast', {})), { fast: true });
  };
});

after(async () => {
  await Promise.all(servers.map((s) => s.proc.stopProcess()));
  for (const s of mock.open) s.destroy();
  for (const s of mock.servers) {
    s.closeAllConnections();
    s.close();
  }
});

// The egress log line of one transfer, once it is there.
async function egressLine(server, re) {
  return waitFor(`a log line matching ${re}`, () => server.err.split('\n').find((l) => re.test(l)));
}

// ================================================================== round trips

describe('requests and responses round trip', () => {
  it('GET with query and headers: the backend sees them, the tool sees status, headers, body, json()', async () => {
    const t = tag('get');
    const r = ok(await call(main, 'request', {
      req: {
        url: `${A()}/echo?fixed=1`,
        query: { tag: t, q: 'a b&c=d/é?', n: 5, flag: true },
        headers: { 'X-Custom': 'v1', 'X-Other': 'two words' },
      },
    }));
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-mock-reply'], 'Yes', 'header names in lower case');
    assert.equal(r.headers['x-multi'], 'one, two', 'a repeated header, joined');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.ok(!Object.keys(r.headers).some((k) => k !== k.toLowerCase()), Object.keys(r.headers).join());
    assert.deepEqual(r.json, JSON.parse(r.body), 'res:json() decodes the body');
    assert.equal(r.json.method, 'GET');
    assert.equal(r.json.path, '/echo');
    assert.deepEqual(r.json.query, { fixed: '1', tag: t, q: 'a b&c=d/é?', n: '5', flag: 'true' });
    assert.equal(r.json.headers['x-custom'], 'v1');
    assert.equal(r.json.headers['x-other'], 'two words');
    assert.equal(r.json.headers.host, `a.test:${PS}`);
    assert.match(r.json.headers['user-agent'], /^luamcp\/\S+$/);
    assert.equal(r.json.headers['content-type'], undefined);
    assert.equal(r.json.body, '');
    const [rec] = mock.byTag(t);
    assert.equal(rec.method, 'GET');
    assert.equal(mock.byTag(t).length, 1);
    await egressLine(main, new RegExp(`egress: tool request GET a\\.test:${PS} -> 200 \\(${Buffer.byteLength(r.body)} bytes, [\\d.]+ ms\\)$`));
  });

  it('POST of a table: sent as JSON with its content type', async () => {
    const t = tag('post-json');
    const doc = { a: 1, list: [1, 2, 3], nested: { s: 'x é', ok: true } };
    const r = ok(await call(main, 'post', { url: `${A()}/echo?tag=${t}`, body: doc }));
    assert.equal(r.status, 200);
    assert.equal(r.json.method, 'POST');
    assert.equal(r.json.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(r.json.body), doc);
    assert.deepEqual(JSON.parse(mock.byTag(t)[0].body), doc);
  });

  it('POST of a string: the bytes as given', async () => {
    const t = tag('post-raw');
    const r = ok(await call(main, 'post', { url: `${A()}/echo?tag=${t}`, body: 'raw bytes ✓\nline 2', opts: { headers: { 'Content-Type': 'text/plain' } } }));
    assert.equal(r.json.method, 'POST');
    assert.equal(r.json.body, 'raw bytes ✓\nline 2');
    assert.equal(r.json.headers['content-type'], 'text/plain');
  });

  it('form: URL-encoded, POST by default', async () => {
    const t = tag('form');
    const r = ok(await call(main, 'request', { req: { url: `${A()}/echo?tag=${t}`, form: { a: '1 2', b: 'x&y=z', c: 3, d: false } } }));
    assert.equal(r.json.method, 'POST');
    assert.equal(r.json.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.deepEqual(Object.fromEntries(new URLSearchParams(r.json.body)), { a: '1 2', b: 'x&y=z', c: '3', d: 'false' });
  });

  it('PUT with json and a Content-Type of the script\'s own; DELETE without a body', async () => {
    const t = tag('put');
    const r = ok(await call(main, 'request', {
      req: { method: 'PUT', url: `${A()}/echo?tag=${t}`, json: { v: [true, 'x'] }, headers: { 'Content-Type': 'application/merge-patch+json' } },
    }));
    assert.equal(r.json.method, 'PUT');
    assert.equal(r.json.headers['content-type'], 'application/merge-patch+json');
    assert.deepEqual(JSON.parse(r.json.body), { v: [true, 'x'] });
    const d = ok(await call(main, 'request', { req: { method: 'DELETE', url: `${A()}/echo?tag=${t}` } }));
    assert.equal(d.json.method, 'DELETE');
    assert.equal(d.json.body, '');
  });

  it('HEAD: the status and headers, no body', async () => {
    const t = tag('head');
    const r = ok(await call(main, 'request', { req: { method: 'HEAD', url: `${A()}/echo?tag=${t}` } }));
    assert.deepEqual([r.status, r.body, r.headers['x-mock-reply']], [200, '', 'Yes']);
    assert.equal(mock.byTag(t)[0].method, 'HEAD');
  });

  it('a request body over 1 MiB (Expect: 100-continue on the way) arrives whole', async () => {
    const t = tag('big-post');
    const r = ok(await call(main, 'big_post', { url: `${A()}/status?code=201&tag=${t}`, n: 2000000 }));
    assert.equal(r.status, 201);
    assert.equal(mock.byTag(t)[0].body, 'x'.repeat(2000000));
    const mark = main.err.length;
    assert.equal(failed(await call(main, 'big_post', { url: `${A()}/status?code=201&tag=${t}`, n: 8388609 })), "tool 'big_post' failed (see server log)");
    await waitFor('the failure in the log', () => main.err.slice(mark).includes('tool big_post failed: '));
    assert.match(main.err.slice(mark), /tool big_post failed: \S*http\.lua:\d+: mcp\.http: request body larger than 8388608 bytes/);
    assert.equal(mock.byTag(t).length, 1);
    await main.good();
  });

  it('more than 100 response headers: the first 100 are kept', async () => {
    const r = ok(await call(main, 'get', { url: `${A()}/headers?n=150` }));
    assert.equal(r.status, 200);
    assert.equal(Object.keys(r.headers).length, 100);
    assert.equal(r.headers['x-h-0'], 'v');
    assert.equal(r.headers['x-h-99'], 'v');
    assert.equal(r.headers['x-h-100'], undefined);
    assert.equal(r.body, 'many headers');
  });

  it('more than 64 KiB of response headers: an error', async () => {
    const msg = failed(await call(main, 'get', { url: `${A()}/headers?n=100&b=1000` }));
    assert.equal(msg, 'Failed writing header');
    await main.good();
  });

  it('a backend that hangs up mid-body: an error', async () => {
    const msg = failed(await call(main, 'get', { url: `${A()}/truncate` }));
    assert.equal(msg, 'transfer closed with 990 bytes remaining to read');
    await main.good();
  });

  it('a body that is not JSON: no json field, the text as it came', async () => {
    const r = ok(await call(main, 'get', { url: `${A()}/text` }));
    assert.deepEqual([r.status, r.body, r.json, r.headers['content-type']], [200, 'plain text, not JSON', undefined, 'text/plain']);
  });

  it('mcp.http.get inside pcall yields and comes back', async () => {
    assert.deepEqual(ok(await call(main, 'in_pcall', { url: `${A()}/echo` })), { ok: true, status: 200 });
  });
});

// ================================================================== statuses

describe('4xx and 5xx are responses', () => {
  for (const code of [503, 500, 404, 401]) {
    it(`${code}: status ${code}, body and headers kept`, async () => {
      const t = tag(`status-${code}`);
      const r = ok(await call(main, 'get', { url: `${A()}/status?code=${code}&tag=${t}` }));
      assert.equal(r.status, code);
      assert.deepEqual(r.json, { status: code, tag: t });
      assert.equal(r.headers['content-type'], 'application/json');
      await egressLine(main, new RegExp(`egress: tool get GET a\\.test:${PS} -> ${code} \\(`));
      await main.good();
    });
  }

  it('a 302 without Location is a response too', async () => {
    const r = ok(await call(main, 'get', { url: `${A()}/status?code=302` }));
    assert.equal(r.status, 302);
    await main.good();
  });
});

// ================================================================== timeouts

describe('timeouts', () => {
  it('a backend slower than timeout_ms: nil, "timed out after N ms"', async () => {
    const t = tag('slow');
    const msg = failed(await call(main, 'get', { url: `${A()}/slow?ms=20000&tag=${t}`, opts: { timeout_ms: 300 } }));
    assert.equal(msg, 'timed out after 300 ms');
    assert.equal(mock.byTag(t).length, 1, 'the request did reach the backend');
    await egressLine(main, new RegExp(`egress: tool get GET a\\.test:${PS} failed: timed out after 300 ms \\([\\d.]+ ms\\)$`));
    await main.good();
  });

  it('a backend faster than timeout_ms answers', async () => {
    const r = ok(await call(main, 'get', { url: `${A()}/slow?ms=50`, opts: { timeout_ms: 10000 } }));
    assert.equal(r.status, 200);
  });

  it('egress.timeout_ms is the default of a request', async () => {
    const msg = failed(await call(short, 'hang_once', { url: `http://plain.test:${PH}/hang?tag=${tag('hang')}` }));
    assert.equal(msg, 'timed out after 700 ms');
    await short.good();
  });

  it('a request timeout longer than the call has left is cut to what remains (limits.timeout_ms)', async () => {
    const msg = failed(await call(short, 'get', { url: `http://plain.test:${PH}/hang`, opts: { timeout_ms: 60000 } }));
    const m = msg.match(/^timed out after (\d+) ms$/);
    assert.ok(m, msg);
    assert.ok(Number(m[1]) > 0 && Number(m[1]) <= 1500, `cut to at most limits.timeout_ms: ${msg}`);
    await short.good();
  });

  it('a handler that keeps waiting past limits.timeout_ms: the call ends with an error', async () => {
    const mark = short.err.length;
    const msg = failed(await call(short, 'hang_loop', { url: `http://plain.test:${PH}/hang` }));
    assert.equal(msg, "tool 'hang_loop' failed (see server log)");
    await waitFor('the failure in the log', () => short.err.slice(mark).includes('tool hang_loop failed: '));
    assert.match(short.err.slice(mark), /tool hang_loop failed: \S*limits\.lua:\d+: mcp\.http\.get: the call's time is up/);
    await short.good();
  });
});

// ================================================================== max_bytes

describe('response size', () => {
  it('a response over max_bytes: "response larger than max_bytes (N)"', async () => {
    const msg = failed(await call(main, 'request', { req: { url: `${A()}/big?n=200000`, max_bytes: 100000 } }));
    assert.equal(msg, 'response larger than max_bytes (100000)');
    await main.good();
  });

  it('exactly max_bytes is fine', async () => {
    const r = ok(await call(main, 'request', { req: { url: `${A()}/big?n=100000`, max_bytes: 100000 } }));
    assert.equal(r.status, 200);
    assert.equal(r.body, 'x'.repeat(100000));
    await egressLine(main, new RegExp(`egress: tool request GET a\\.test:${PS} -> 200 \\(100000 bytes, `));
  });

  it('max_bytes bounds the decoded body: a small gzip of 2 MB is refused, a small one decoded', async () => {
    const msg = failed(await call(main, 'get', { url: `${A()}/gzip?n=2000000` }));
    assert.equal(msg, 'response larger than max_bytes (1048576)');
    await main.good();
    const r = ok(await call(main, 'request', { req: { url: `${A()}/gzip?n=1000`, max_bytes: 1000 } }));
    assert.equal(r.body, '\0'.repeat(1000));
  });

  it('egress.max_response_bytes is the default and the ceiling', async () => {
    const msg = failed(await call(main, 'get', { url: `${A()}/big?n=2000000` }));
    assert.equal(msg, 'response larger than max_bytes (1048576)');
    await main.good();
    const mark = main.err.length;
    const over = failed(await call(main, 'request', { req: { url: `${A()}/echo`, max_bytes: 2000000 } }));
    assert.equal(over, "tool 'request' failed (see server log)");
    await waitFor('the failure in the log', () => main.err.slice(mark).includes('tool request failed: '));
    assert.match(main.err.slice(mark), /tool request failed: \S*http\.lua:\d+: mcp\.http: max_bytes must be between 0 and 1048576 /);
    await main.good();
  });
});

// ================================================================== connection and TLS failures

describe('connection and TLS failures', () => {
  it('connection refused (a closed port): an error, no crash', async () => {
    const msg = failed(await call(main, 'get', { url: `https://closed.test:${PC}/echo` }));
    assert.match(msg, new RegExp(`^Failed to connect to closed\\.test port ${PC} after \\d+ ms: (Couldn't connect to server|Connection refused)$`));
    await egressLine(main, new RegExp(`egress: tool get GET closed\\.test:${PC} failed: Failed to connect`));
    await main.good();
  });

  it('a certificate of a CA not configured: TLS error; the backend sees no request', async () => {
    const t = tag('rogue');
    const msg = failed(await call(main, 'get', { url: `https://rogue.test:${PR}/echo?tag=${t}` }));
    assert.equal(msg, 'SSL certificate problem: unable to get local issuer certificate');
    assert.equal(mock.byTag(t).length, 0);
    await main.good();
  });

  it('a certificate for other names: TLS error', async () => {
    const t = tag('wrong');
    const msg = failed(await call(main, 'get', { url: `https://wrong.test:${PS}/echo?tag=${t}` }));
    assert.equal(msg, "SSL: no alternative certificate subject name matches target host name 'wrong.test'");
    assert.equal(mock.byTag(t).length, 0);
    await main.good();
  });

  it('without egress.ca_file the test CA is not trusted; with it, 200', async () => {
    const t = tag('no-ca');
    const msg = failed(await call(short, 'get', { url: `${A()}/echo?tag=${t}` }));
    assert.equal(msg, 'SSL certificate problem: unable to get local issuer certificate');
    assert.equal(mock.byTag(t).length, 0);
    await short.good();
    const r = ok(await call(main, 'get', { url: `${A()}/echo?tag=${t}` }));
    assert.equal(r.status, 200);
    assert.equal(r.json.scheme, 'https');
  });
});

// ================================================================== redirects

describe('redirects', () => {
  const to = (url) => encodeURIComponent(url);

  it('to the same host: followed', async () => {
    const t = tag('same');
    const r = ok(await call(main, 'get', { url: `${A()}/redirect?tag=${t}&to=${to(`/echo?tag=${t}&hop=2`)}` }));
    assert.equal(r.status, 200);
    assert.equal(r.json.path, '/echo');
    assert.equal(r.json.query.hop, '2');
    assert.deepEqual(mock.byTag(t).map((x) => [x.host, x.path]), [[`a.test:${PS}`, '/redirect'], [`a.test:${PS}`, '/echo']]);
  });

  for (const code of [301, 302]) {
    it(`${code} after a POST: a GET without body`, async () => {
      const t = tag(String(code));
      const r = ok(await call(main, 'post', { url: `${A()}/redirect?code=${code}&tag=${t}&to=${to(`/echo?tag=${t}`)}`, body: { x: 1 } }));
      assert.deepEqual([r.status, r.json.method, r.json.body], [200, 'GET', '']);
    });
  }

  it('303 turns a POST into a GET without body; 307 keeps both', async () => {
    const t = tag('303');
    const r = ok(await call(main, 'post', { url: `${A()}/redirect?code=303&tag=${t}&to=${to(`/echo?tag=${t}`)}`, body: { x: 1 } }));
    assert.deepEqual([r.json.method, r.json.body], ['GET', '']);
    const t2 = tag('307');
    const r2 = ok(await call(main, 'post', { url: `${A()}/redirect?code=307&tag=${t2}&to=${to(`/echo?tag=${t2}`)}`, body: { x: 1 } }));
    assert.deepEqual([r2.json.method, JSON.parse(r2.json.body)], ['POST', { x: 1 }]);
  });

  it('to a host not in egress.allow: "redirect refused: egress: ..."', async () => {
    const t = tag('to-evil');
    const msg = failed(await call(main, 'get', { url: `${A()}/redirect?tag=${t}&to=${to(`${EVIL()}/echo?tag=${t}`)}` }));
    assert.equal(msg, `redirect refused: egress: host evil.test:${PS} is not in egress.allow`);
    assert.deepEqual(mock.byTag(t).map((x) => x.host), [`a.test:${PS}`]);
    await main.good();
  });

  it('to plain http: refused', async () => {
    const t = tag('to-http');
    const msg = failed(await call(main, 'get', { url: `${A()}/redirect?tag=${t}&to=${to(`http://plain.test:${PH}/echo?tag=${t}`)}` }));
    assert.equal(msg, 'redirect refused: egress: plain http is refused (use https, or set egress.allow_http)');
    assert.equal(mock.byTag(t).length, 1);
    await main.good();
  });

  it('to an allowed name that resolves to the metadata address: refused at connect', async () => {
    const t = tag('to-meta');
    const msg = failed(await call(main, 'get', { url: `${A()}/redirect?tag=${t}&to=${to(`https://meta.test:${PS}/echo?tag=${t}`)}` }));
    assert.equal(msg, 'egress: address 169.254.169.254 is link-local, metadata or reserved, and always refused');
    await main.good();
  });

  it('a loop: "too many redirects (egress.max_redirects = 3)" after 1 + 3 requests', async () => {
    const t = tag('loop');
    const msg = failed(await call(main, 'get', { url: `${A()}/loop?tag=${t}` }));
    assert.equal(msg, 'too many redirects (egress.max_redirects = 3)');
    assert.equal(mock.byTag(t).length, 4);
    await main.good();
  });

  it('a credential is not sent after a redirect to another host; other headers are', async () => {
    const t = tag('cred-cross');
    const tok = token();
    const r = ok(await call(main, 'cred_redirect', { url: `${A()}/redirect?tag=${t}&to=${to(`${B()}/echo?tag=${t}`)}`, token: tok }));
    assert.equal(r.status, 200);
    const [first, second] = mock.byTag(t);
    assert.equal(first.host, `a.test:${PS}`);
    assert.equal(first.headers.authorization, `Bearer ${tok}`);
    assert.equal(second.host, `b.test:${PS}`);
    assert.equal(second.headers.authorization, undefined, 'the credential followed the redirect');
    assert.equal(second.headers['x-plain'], 'plain-value');
    assert.equal(r.echo.headers.authorization, undefined);
    assert.equal(mock.byTag(t).length, 2);
  });

  it('a credential in a header of its own: the same', async () => {
    const t = tag('cred-cross-hdr');
    const tok = token();
    ok(await call(main, 'cred_redirect', { url: `${A()}/redirect?tag=${t}&to=${to(`${B()}/echo?tag=${t}`)}`, token: tok, header: 'X-Token' }));
    const [first, second] = mock.byTag(t);
    assert.equal(first.headers['x-token'], tok);
    assert.equal(second.headers['x-token'], undefined, 'the credential followed the redirect');
    assert.equal(second.headers['x-plain'], 'plain-value');
  });

  it('a credential does follow a redirect on the same host', async () => {
    const t = tag('cred-same');
    const tok = token();
    const r = ok(await call(main, 'cred_call', { url: `${A()}/redirect?tag=${t}&to=${to(`/echo?tag=${t}`)}`, token: tok }));
    const [first, second] = mock.byTag(t);
    assert.equal(first.headers.authorization, `Bearer ${tok}`);
    assert.equal(second.headers.authorization, `Bearer ${tok}`);
    assert.equal(r.echo.headers.authorization, 'Bearer [credential]');
  });

  it('Authorization and Cookie set by a script stay behind on another host too', async () => {
    const t = tag('auth-cross');
    ok(await call(main, 'get', {
      url: `${A()}/redirect?tag=${t}&to=${to(`${B()}/echo?tag=${t}`)}`,
      opts: { headers: { Authorization: 'Basic c2NyaXB0OnNlY3JldA==', Cookie: 'session=abc', 'X-Keep': 'kept' } },
    }));
    const [first, second] = mock.byTag(t);
    assert.deepEqual([first.headers.authorization, first.headers.cookie], ['Basic c2NyaXB0OnNlY3JldA==', 'session=abc']);
    assert.deepEqual([second.host, second.headers.authorization, second.headers.cookie, second.headers['x-keep']],
      [`b.test:${PS}`, undefined, undefined, 'kept']);
  });

  it('a redirect out of the tool\'s own egress list: refused', async () => {
    const t = tag('cred-to-c');
    const msg = failed(await call(main, 'cred_redirect', { url: `${A()}/redirect?tag=${t}&to=${to(`${C()}/echo?tag=${t}`)}`, token: token() }));
    assert.equal(msg, `redirect refused: egress: host c.test:${PS} is not in this tool's egress list`);
    assert.equal(mock.byTag(t).length, 1);
    await main.good();
  });
});

// ================================================================== egress

describe('egress', () => {
  const refused = [
    ['a host not in egress.allow', () => `${EVIL()}/echo`, () => `egress: host evil.test:${PS} is not in egress.allow`],
    ['an IP address not in egress.allow', () => `https://127.0.0.1:${PS}/echo`, () => `egress: host 127.0.0.1:${PS} is not in egress.allow`],
    ['plain http when allow_http is false', () => `http://plain.test:${PH}/echo`, () => 'egress: plain http is refused (use https, or set egress.allow_http)'],
    ['another scheme', () => `ftp://a.test:${PS}/echo`, () => "egress: scheme 'ftp' is not allowed (https only)"],
    ['credentials in the URL', () => `https://user:pw@a.test:${PS}/echo`, () => 'credentials in the URL are refused; send them in a header'],
  ];
  for (const [what, url, why] of refused) {
    it(`${what}: refused before anything is sent`, async () => {
      const t = tag('egress');
      const u = new URL(url());
      u.searchParams.set('tag', t);
      const msg = failed(await call(main, 'get', { url: u.href }));
      assert.equal(msg, why());
      assert.equal(mock.byTag(t).length, 0);
      await main.good();
    });
  }

  it('a request refused by name is logged like one refused by address', async () => {
    const mark = main.err.length;
    const cases = [
      ['get', `${EVIL()}/echo`, `evil.test:${PS}`, `egress: host evil.test:${PS} is not in egress.allow`],
      ['get', `https://127.0.0.1:${PS}/echo`, `127.0.0.1:${PS}`, `egress: host 127.0.0.1:${PS} is not in egress.allow`],
      ['get', `http://plain.test:${PH}/echo`, `plain.test:${PH}`, 'egress: plain http is refused (use https, or set egress.allow_http)'],
      ['only_a', `${B()}/echo`, `b.test:${PS}`, `egress: host b.test:${PS} is not in this tool's egress list`],
    ];
    for (const [tool, url, , why] of cases) assert.equal(failed(await call(main, tool, { url })), why);
    for (const [tool, , host, why] of cases) {
      const line = `egress: tool ${tool} GET ${host} failed: ${why} (`;
      await waitFor(`the log line '${line}'`, () => main.err.slice(mark).includes(line), 3000);
    }
    await main.good();
  });

  it('"*.wild.test" admits its subdomains, not the apex; "port.test:PORT" that port only', async () => {
    assert.equal(ok(await call(main, 'get', { url: `https://api.wild.test:${PS}/echo` })).status, 200);
    assert.equal(failed(await call(main, 'get', { url: `https://wild.test:${PS}/echo` })), `egress: host wild.test:${PS} is not in egress.allow`);
    assert.equal(ok(await call(main, 'get', { url: `https://port.test:${PS}/echo` })).status, 200);
    assert.equal(failed(await call(main, 'get', { url: `https://port.test:${PR}/echo` })), `egress: host port.test:${PR} is not in egress.allow`);
    await main.good();
  });

  for (const [name, address, why] of [
    ['zero.test', '0.0.0.0', 'link-local, metadata or reserved, and always refused'],
    ['meta6.test', 'fd00:ec2::254', 'link-local, metadata or reserved, and always refused'],
    ['mapped.test', '::ffff:169.254.169.254', 'link-local, metadata or reserved, and always refused'],
    ['nat64.test', '64:ff9b::a9fe:a9fe', 'link-local, metadata or reserved, and always refused'],
    ['ten.test', '10.1.2.3', 'private or loopback (allow it with egress.allow_private)'],
  ]) {
    it(`an allowed name pinned to ${address}: refused at connect`, async () => {
      const msg = failed(await call(main, 'get', { url: `https://${name}:${PS}/echo` }));
      assert.equal(msg, `egress: address ${address} is ${why}`);
      await main.good();
    });
  }

  it('an allowed name pinned to ::ffff:127.0.0.1 is judged as 127.0.0.1 (allowed here)', async () => {
    assert.equal(ok(await call(main, 'get', { url: `https://mapped-lo.test:${PS}/echo` })).status, 200);
  });

  it('a tool\'s own egress list narrows the global one', async () => {
    const t = tag('only-a');
    const msg = failed(await call(main, 'only_a', { url: `${B()}/echo?tag=${t}` }));
    assert.equal(msg, `egress: host b.test:${PS} is not in this tool's egress list`);
    assert.equal(mock.byTag(t).length, 0);
    assert.equal(ok(await call(main, 'get', { url: `${B()}/echo?tag=${t}` })).status, 200, 'b.test is allowed globally');
    assert.equal(ok(await call(main, 'only_a', { url: `${A()}/echo?tag=${t}` })).status, 200, 'a.test is in the tool\'s list');
  });

  it('an allowed name pinned to 169.254.169.254: refused as metadata, logged', async () => {
    const t = tag('meta');
    const msg = failed(await call(main, 'get', { url: `https://meta.test:${PS}/echo?tag=${t}` }));
    assert.equal(msg, 'egress: address 169.254.169.254 is link-local, metadata or reserved, and always refused');
    await egressLine(main, new RegExp(`egress: tool get GET meta\\.test:${PS} failed: egress: address 169\\.254\\.169\\.254 is link-local, metadata or reserved, and always refused \\(`));
    await main.good();
  });

  it('an allowed name pinned to 127.0.0.1 without allow_private for it: refused as private', async () => {
    const t = tag('private');
    const msg = failed(await call(strict, 'get', { url: `${A()}/echo?tag=${t}` }));
    assert.equal(msg, 'egress: address 127.0.0.1 is private or loopback (allow it with egress.allow_private)');
    assert.equal(mock.byTag(t).length, 0);
    await strict.good();
    // the same name with allow_private = { "127.0.0.1/32" }
    assert.equal(ok(await call(main, 'get', { url: `${A()}/echo?tag=${t}` })).status, 200);
  });

  it('plain http when allow_http is true', async () => {
    const r = ok(await call(short, 'get', { url: `http://plain.test:${PH}/echo` }));
    assert.equal(r.status, 200);
    assert.equal(r.json.scheme, 'http');
  });
});

// ================================================================== credentials

describe('credentials', () => {
  it('the backend gets Authorization: Bearer <token>; the handler and the result never see it', async () => {
    const t = tag('cred');
    const tok = token();
    const res = await call(main, 'cred_call', { url: `${A()}/echo?tag=${t}`, token: tok });
    const r = ok(res);
    assert.equal(r.status, 200);
    assert.equal(r.kind, 'userdata');
    assert.equal(r.shown, '[credential]');
    assert.equal(r.echo.headers.authorization, 'Bearer [credential]', 'the echoed token is scrubbed');
    assert.ok(!res.text.includes(tok), 'the token is in the answer');
    const [rec] = mock.byTag(t);
    assert.equal(rec.headers.authorization, `Bearer ${tok}`);
  });

  it('as a header of its own: the same', async () => {
    const t = tag('cred-hdr');
    const tok = token();
    const res = await call(main, 'cred_call', { url: `${A()}/echo?tag=${t}`, token: tok, header: 'X-Token' });
    const r = ok(res);
    assert.equal(r.echo.headers['x-token'], '[credential]');
    assert.ok(!res.text.includes(tok));
    assert.equal(mock.byTag(t)[0].headers['x-token'], tok);
  });

  it('only to the tool\'s own hosts', async () => {
    const t = tag('cred-b');
    const msg = failed(await call(main, 'cred_call', { url: `${B()}/echo?tag=${t}`, token: token() }));
    assert.equal(msg, `egress: host b.test:${PS} is not in this tool's egress list`);
    assert.equal(mock.byTag(t).length, 0);
    await main.good();
  });

  it('concatenating it is a tool error', async () => {
    const tok = token();
    const mark = main.err.length;
    const msg = failed(await call(main, 'cred_concat', { token: tok }));
    assert.equal(msg, "tool 'cred_concat' failed (see server log)");
    await waitFor('the failure in the log', () => main.err.slice(mark).includes('tool cred_concat failed: '));
    assert.match(main.err.slice(mark), /tool cred_concat failed: \S*credentials\.lua:\d+: a credential cannot be read, concatenated or compared; pass it to mcp\.http as a header value or as bearer/);
    await main.good();
  });

  it('a credential with CR/LF cannot inject a header: a tool error, nothing sent', async () => {
    const t = tag('cred-crlf');
    for (const header of [undefined, 'X-Token']) {
      const tok = `${token()}\r\nX-Injected: 1`;
      TOKENS.add(tok);
      const mark = main.err.length;
      const msg = failed(await call(main, 'cred_call', { url: `${A()}/echo?tag=${t}`, token: tok, header }));
      assert.equal(msg, "tool 'cred_call' failed (see server log)");
      await waitFor('the failure in the log', () => main.err.slice(mark).includes('tool cred_call failed: '));
      assert.match(main.err.slice(mark), header
        ? /tool cred_call failed: \S*credentials\.lua:\d+: mcp\.http: header X-Token: a value cannot hold NUL, CR or LF/
        : /tool cred_call failed: \S*credentials\.lua:\d+: mcp\.http: bearer is invalid/);
    }
    assert.equal(mock.byTag(t).length, 0);
    await main.good();
  });

  it('declarations luamcp refuses: credentials without egress, egress "*", a non-string credential', () => {
    const r = run(['check', '--scripts', BAD_TOOLS, '--policies', POLICIES]);
    assert.equal(r.code, 1, r.out + r.err);
    assert.equal(r.out, '');
    assert.deepEqual(r.err.trim().split('\n').sort(), [
      `${BAD_TOOLS}/declarations.lua:5: tool 'no_egress': a tool with credentials must list the hosts they may be sent to in 'egress'`,
      `${BAD_TOOLS}/not_string.lua:1: tool 'number_credential': credential 'n' must be a property of inputSchema with type = "string"`,
      `${BAD_TOOLS}/star.lua:1: tool 'star_egress': 'egress' of a tool cannot be "*": name the hosts`,
    ]);
  });

  it('a backend echoing it as a JSON object key: the result does not carry it either', async () => {
    const t = tag('cred-key');
    const tok = token();
    const res = await call(main, 'cred_call', { url: `${A()}/introspect?tag=${t}`, token: tok });
    assert.equal(res.isError, undefined, res.text);
    assert.equal(mock.byTag(t)[0].headers.authorization, `Bearer ${tok}`);
    assert.equal(res.structuredContent.echo.active, true);
    assert.ok(!JSON.stringify(res.structuredContent).includes(tok),
      `structuredContent carries the token (as an object key): ${JSON.stringify(res.structuredContent.echo)}`);
    assert.ok(!res.text.includes(tok), `the token is in the answer: ${res.text}`);
    ok(res);
  });

  it('echoed by a backend in other forms (reversed, hex, base64, url-encoded): Lua never gets it', async () => {
    const tok = `tok/${crypto.randomBytes(12).toString('hex')}+x=y`;
    TOKENS.add(tok);
    const res = await call(main, 'cred_forms', { url: `${A()}/forms`, token: tok });
    const r = ok(res);
    const leaked = (text) => credForms(tok).filter((f) => text.includes(f))
      .concat(text.includes(Buffer.from(tok).toString('base64').slice(4, -4)) ? ['base64 core'] : []);
    assert.deepEqual(leaked(res.text), [], `the result carries the token: ${res.text.slice(0, 600)}`);
    // and what the script made of the body (reversed, decoded) holds none of it either
    for (const line of r.body.split('\n')) assert.match(line, /\[credential\]/, `a form passed: ${line}`);
    assert.match(r.hdr, /^\[credential\][A-Za-z0-9+/=]{0,4}$/); // a last partial group may stay
    assert.deepEqual(leaked(r.rev), []);
    await main.good();
  });

  it('echoed into progress notifications: scrubbed from every one', async () => {
    const t = tag('cred-progress');
    const tok = token();
    const r = await rpc(main, 'tools/call', {
      name: 'cred_echo', arguments: { url: `${A()}/echo?tag=${t}`, token: tok, mode: 'progress' }, _meta: { progressToken: t },
    });
    assert.equal(r.body.result.isError, undefined, r.text);
    assert.deepEqual(r.body.result.structuredContent, { status: 200 });
    const notes = r.messages.filter((m) => m.method === 'notifications/progress');
    assert.deepEqual(notes.map((n) => [n.params.progressToken, n.params.progress, n.params.total]), [[t, 1, 2], [t, 2, 2]]);
    assert.deepEqual(notes.map((n) => n.params.message.match(/^(first|second): /)?.[1]), ['first', 'second']);
    assert.equal(mock.byTag(t).length, 2);
    for (const n of notes) {
      assert.ok(!n.params.message.includes(tok), `notification ${n.params.progress} carries the token: ${n.params.message.slice(0, 300)}`);
      assert.match(n.params.message, /"authorization":"Bearer \[credential\]"/);
    }
  });

  it('echoed into an error the handler raises: the log line does not carry it', async () => {
    const t = tag('cred-raise');
    const tok = token();
    const mark = main.err.length;
    const res = await call(main, 'cred_echo', { url: `${A()}/echo?tag=${t}`, token: tok, mode: 'raise' });
    assert.equal(failed(res), "tool 'cred_echo' failed (see server log)");
    assert.ok(!res.text.includes(tok));
    await waitFor('the failure in the log', () => main.err.slice(mark).includes('tool cred_echo failed: '));
    const line = main.err.slice(mark).split('\n').find((l) => l.includes('tool cred_echo failed: '));
    assert.ok(!line.includes(tok), `the log line carries the token: ${line.slice(0, 400)}`);
    assert.match(line, /the backend answered .*"authorization":"Bearer \[credential\]"/);
    await main.good();
  });

  it('echoed into ctx.log: the log line does not carry it', async () => {
    const t = tag('cred-log');
    const tok = token();
    const mark = main.err.length;
    assert.deepEqual(ok(await call(main, 'cred_echo', { url: `${A()}/echo?tag=${t}`, token: tok, mode: 'log' })), { status: 200 });
    await waitFor('the log line', () => main.err.slice(mark).includes('tool cred_echo: the backend answered '));
    const line = main.err.slice(mark).split('\n').find((l) => l.includes('tool cred_echo: the backend answered '));
    assert.ok(!line.includes(tok), `the log line carries the token: ${line.slice(0, 400)}`);
    assert.match(line, /"authorization":"Bearer \[credential\]"/);
  });

  describe('no other way out: each attempt fails, nothing is sent', () => {
    const where = String.raw`\S*credentials\.lua:\d+: `;
    const refused = `${where}a credential cannot be read, concatenated or compared; pass it to mcp\\.http as a header value or as bearer`;
    const attempts = {
      length: { ok: false, a: refused },
      index: { ok: false, a: refused },
      compare: { ok: false, a: refused },
      format: { ok: true, a: String.raw`\[credential\]` },
      encode: { ok: true, a: 'nil', b: String.raw`\$\.t: cannot convert a userdata to JSON` },
      query: { ok: false, a: String.raw`${where}mcp\.http: query values must be strings, numbers or booleans` },
      form: { ok: false, a: String.raw`${where}mcp\.http: form values must be strings, numbers or booleans` },
      json: { ok: false, a: String.raw`mcp\.http: json: \$\.t: cannot convert a userdata to JSON` },
      body: { ok: false, a: String.raw`${where}mcp\.http: body must be a string \(json = a table sends JSON\)` },
      url: { ok: false, a: String.raw`${where}bad argument #1 to 'get' \(string expected, got credential\)` },
    };
    for (const [mode, want] of Object.entries(attempts)) {
      it(mode, async () => {
        const t = tag(`misuse-${mode}`);
        const tok = token();
        const res = await call(main, 'cred_misuse', { url: `${A()}/echo?tag=${t}`, token: tok, mode });
        const r = ok(res, mode);
        assert.equal(r.ok, want.ok, res.text);
        assert.match(r.a, new RegExp(`^${want.a}$`));
        assert.match(r.b, new RegExp(`^${want.b ?? 'nil'}$`));
        assert.ok(!res.text.includes(tok));
        assert.equal(mock.byTag(t).length, 0);
      });
    }

    it('returned in the result: cannot be converted', async () => {
      const tok = token();
      const res = await call(main, 'cred_misuse', { url: `${A()}/echo`, token: tok, mode: 'return' });
      assert.equal(failed(res), 'tool returned a value that cannot be converted to an MCP result');
      assert.ok(!res.text.includes(tok));
      await main.good();
    });
  });

  it('a policy sees "[credential]"', async () => {
    const tok = token();
    const t = tag('cred-policy');
    const res = await call(main, 'cred_call', { url: `${A()}/echo?tag=${t}`, token: tok, deny: true });
    assert.deepEqual({ content: res.content, isError: res.isError }, {
      content: [{ type: 'text', text: 'Access denied: policy saw token=[credential]' }], isError: true,
    });
    assert.equal(mock.byTag(t).length, 0);
    await main.good();
  });

  it('the audit line records it as "[credential]"', async () => {
    const t = tag('cred-audit');
    const url = `${A()}/echo?tag=${t}`;
    ok(await call(main, 'cred_call', { url, token: token() }));
    const line = await waitFor('the audit line', () => main.auditLines().find((l) => l.tool === 'cred_call' && l.args?.url === url));
    assert.deepEqual(line.args, { token: '[credential]', url });
    assert.equal(line.decision, 'allow');
  });
});

// ================================================================== request headers and methods

describe('headers and methods a script may not send', () => {
  const cases = {
    'Host (domain fronting)': [{ headers: { Host: 'evil.test' } }, 'header Host cannot be set by a script \\(the host comes from the URL\\)'],
    'host in lower case': [{ headers: { host: 'evil.test' } }, 'header host cannot be set by a script'],
    Connection: [{ headers: { Connection: 'close' } }, 'header Connection is hop-by-hop: the host manages the connection'],
    'Keep-Alive': [{ headers: { 'Keep-Alive': 'timeout=5' } }, 'header Keep-Alive is hop-by-hop'],
    'Proxy-Authorization': [{ headers: { 'Proxy-Authorization': 'Basic eA==' } }, 'header Proxy-Authorization is hop-by-hop'],
    TE: [{ headers: { TE: 'trailers' } }, 'header TE is hop-by-hop'],
    Trailer: [{ headers: { Trailer: 'X-T' } }, 'header Trailer is hop-by-hop'],
    'Transfer-Encoding': [{ headers: { 'Transfer-Encoding': 'chunked' } }, 'header Transfer-Encoding is hop-by-hop'],
    Upgrade: [{ headers: { Upgrade: 'websocket' } }, 'header Upgrade is hop-by-hop'],
    'Content-Length': [{ headers: { 'Content-Length': '5' } }, 'header Content-Length cannot be set by a script'],
    'Accept-Encoding (a compressed echo would pass the scrub)': [{ headers: { 'Accept-Encoding': 'gzip' } }, 'header Accept-Encoding cannot be set by a script'],
    'a name with a space': [{ headers: { 'X A': 'v' } }, "header name 'X A' is not a token"],
    'CR LF in a value': [{ headers: { 'X-A': 'v\r\nX-Injected: 1' } }, 'header X-A: a value cannot hold NUL, CR or LF'],
    'LF alone in a value': [{ headers: { 'X-A': 'v\nX-Injected: 1' } }, 'header X-A: a value cannot hold NUL, CR or LF'],
    'NUL in a value': [{}, 'header Mcp-Name: a value cannot hold NUL, CR or LF', { nul: 'Mcp-Name' }],
    'NUL in a name': [{}, "header name 'X-A' is not a token", { nul_name: true }],
    CONNECT: [{ method: 'CONNECT' }, 'method CONNECT is not allowed'],
    TRACE: [{ method: 'TRACE' }, 'method TRACE is not allowed'],
  };
  for (const [what, [req, want, extra]] of Object.entries(cases)) {
    it(what, async () => {
      const t = tag(`hdr-${what}`);
      const r = ok(await call(main, 'request_refused', { req: { url: `${A()}/echo?tag=${t}`, ...req }, ...extra }), what);
      assert.equal(r.ok, false, JSON.stringify(r));
      assert.match(r.err, new RegExp(`^mcp\\.http: ${want}`));
      assert.equal(mock.byTag(t).length, 0, 'nothing was sent');
    });
  }

  it('an ordinary header and method still go out, and the server goes on', async () => {
    const t = tag('hdr-ok');
    const r = ok(await call(main, 'request', { req: { method: 'PATCH', url: `${A()}/echo?tag=${t}`, headers: { 'X-Fine': 'yes' } } }));
    assert.equal(r.json.method, 'PATCH');
    assert.equal(mock.byTag(t)[0].headers['x-fine'], 'yes');
    await main.good();
  });
});

// ================================================================== secrets

describe('secrets', () => {
  it('mcp.secret as a header: the backend gets the value', async () => {
    const t = tag('secret');
    const r = ok(await call(main, 'secret_header', { url: `${A()}/echo?tag=${t}` }));
    assert.deepEqual(r, { status: 200, sent_length: SECRET.length });
    assert.equal(mock.byTag(t)[0].headers['x-api-key'], SECRET);
  });

  it('an error message holding it: the client sees "[secret]"', async () => {
    const res = await call(main, 'secret_fail', {});
    assert.equal(failed(res), 'the backend refused key [secret]');
    assert.ok(!res.text.includes(SECRET));
    await main.good();
  });

  it('a secret the tool does not list in secrets: refused, with a clear error', async () => {
    const r = ok(await call(main, 'secret_ungranted', {}));
    assert.equal(r.ok, false);
    assert.match(r.err, /mcp\.secret: secret 'API_KEY' is not granted: a tool reads only the secrets it lists in 'secrets'/);
    assert.ok(!JSON.stringify(r).includes(SECRET));
  });

  it('a policy reads only the secrets its rule lists', async () => {
    const granted = await call(main, 'secret_policy_granted', {});
    assert.equal(failed(granted), `Access denied: read ${SECRET.length} bytes`);
    const denied = await call(main, 'secret_policy_denied', {});
    assert.match(failed(denied), /^Access denied: mcp\.secret: secret 'API_KEY' is not granted/);
    assert.ok(!granted.text.includes(SECRET) && !denied.text.includes(SECRET));
  });

  it('any secret while a file loads: refused', async () => {
    assert.deepEqual(ok(await call(main, 'secret_at_load', {})), { ok: false });
  });

  it('in a result (value and key): the client sees "[secret]"', async () => {
    const res = await call(main, 'secret_out', { mode: 'result' });
    assert.ok(!res.text.includes(SECRET), `the result carries the secret: ${res.text.slice(0, 300)}`);
    assert.deepEqual(ok(res), { text: 'the key is [secret]', '[secret]': 1, list: ['[secret]'] });
  });

  it('in a progress message: the notification says "[secret]"', async () => {
    const t = tag('secret-progress');
    const r = await rpc(main, 'tools/call', { name: 'secret_out', arguments: { mode: 'progress' }, _meta: { progressToken: t } });
    assert.ok(!r.text.includes(SECRET), `the answer carries the secret: ${r.text.slice(0, 300)}`);
    const notes = r.messages.filter((m) => m.method === 'notifications/progress');
    assert.deepEqual(notes.map((n) => n.params.message), ['working with [secret]']);
    assert.deepEqual(r.body.result.structuredContent, { done: true });
  });

  it('a raised error holding it: the log says "[secret]"', async () => {
    const mark = main.err.length;
    const res = await call(main, 'secret_raise', {});
    assert.equal(failed(res), "tool 'secret_raise' failed (see server log)");
    await waitFor('the failure in the log', () => main.err.slice(mark).includes('tool secret_raise failed: '));
    assert.match(main.err.slice(mark), /tool secret_raise failed: \S*secrets\.lua:\d+: cannot use key \[secret\]/);
    assert.ok(!main.err.includes(SECRET));
    await main.good();
  });
});

// ================================================================== mcp.http.all

describe('mcp.http.all', () => {
  it('three requests, one refused by egress: two responses and one {error}, in order', async () => {
    const [t1, t2, t3] = [tag('all'), tag('all'), tag('all')];
    const r = ok(await call(main, 'all', {
      reqs: [
        { url: `${A()}/echo?tag=${t1}` },
        { url: `${EVIL()}/echo?tag=${t2}` },
        { url: `${B()}/echo?tag=${t3}`, json: { three: 3 } },
      ],
    }));
    assert.deepEqual(r, {
      n: 3,
      results: [
        { status: 200, tag: t1 },
        { error: `egress: host evil.test:${PS} is not in egress.allow`, has_status: false },
        { status: 200, tag: t3 },
      ],
    });
    assert.equal(mock.byTag(t1).length, 1);
    assert.equal(mock.byTag(t2).length, 0);
    assert.equal(mock.byTag(t3)[0].method, 'POST');
    await main.good();
  });

  it('every request refused at once: every {error}, without waiting', async () => {
    const r = ok(await call(main, 'all', {
      reqs: [{ url: `${EVIL()}/echo` }, { url: `http://plain.test:${PH}/echo` }, { url: `https://meta.test:${PS}/echo` }],
    }));
    assert.deepEqual(r, {
      n: 3,
      results: [
        { error: `egress: host evil.test:${PS} is not in egress.allow`, has_status: false },
        { error: 'egress: plain http is refused (use https, or set egress.allow_http)', has_status: false },
        { error: 'egress: address 169.254.169.254 is link-local, metadata or reserved, and always refused', has_status: false },
      ],
    });
    await main.good();
  });

  it('a slow one and a failing one do not hold the others back: every outcome', async () => {
    const [t1, t2] = [tag('all'), tag('all')];
    const r = ok(await call(main, 'all', {
      reqs: [
        { url: `${A()}/slow?ms=200&tag=${t1}` },
        { url: `https://closed.test:${PC}/echo` },
        { url: `${A()}/status?code=500&tag=${t2}` },
      ],
    }));
    assert.equal(r.n, 3);
    assert.deepEqual(r.results[0], { status: 200, tag: t1 });
    assert.match(r.results[1].error, /^Failed to connect to closed\.test port /);
    assert.deepEqual(r.results[2], { status: 500, tag: t2 });
  });
});

// ================================================================== policies

describe('a policy calling mcp.http', () => {
  it('denies the call; the backend sees nothing; the server goes on', async () => {
    const t = tag('policy');
    const mark = main.err.length;
    const res = await call(main, 'policy_http', { url: `${A()}/echo?tag=${t}` });
    assert.deepEqual({ content: res.content, isError: res.isError }, {
      content: [{ type: 'text', text: 'Access denied: the policy check failed (error)' }], isError: true,
    });
    assert.equal(mock.byTag(t).length, 0);
    await waitFor('the policy failure in the log', () => main.err.slice(mark).includes('failed: '));
    assert.match(main.err.slice(mark), /policy \S*tests\.lua:\d+ failed: \S*tests\.lua:\d+: mcp\.http\.get is not available in policies: a policy decides from the request alone/);
    const line = await waitFor('the audit line', () => main.auditLines().find((l) => l.tool === 'policy_http'));
    assert.equal(line.decision, 'deny');
    assert.equal(line.reason, 'the policy check failed (error)');
    await main.good();
  });
});

// ================================================================== concurrency

describe('concurrency', () => {
  it('while a call waits on its backend, the worker answers a ping and other calls', async () => {
    const key = tag('hold');
    let settled = false;
    const held = call(main, 'get', { url: `${A()}/hold?key=${key}&tag=${key}` }).finally(() => { settled = true; });
    await waitFor('the held request at the backend', () => mock.holds.has(key));
    // main has one worker: these can only be answered if the waiting call does not block it
    const ping = await rpc(main, 'ping', {});
    assert.deepEqual(ping.body.result, {});
    assert.deepEqual(ok(await call(main, 'fast', {})), { fast: true });
    await main.good();
    assert.equal(settled, false, 'the held call ended before its backend answered');
    mock.release(key, { released: true });
    const r = ok(await held);
    assert.equal(r.status, 200);
    assert.equal(r.json.released, true);
    assert.equal(r.json.query.tag, key);
  });

  it('a client that goes away while its call waits: the transfer ends, the server goes on', async () => {
    const key = tag('gone');
    const gone = new AbortController();
    const req = fetch(main.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name: 'get', arguments: { url: `${A()}/hold?key=${key}&tag=${key}` } } }),
      signal: gone.signal,
    }).catch((e) => e);
    await waitFor('the held request at the backend', () => mock.holds.has(key));
    gone.abort();
    assert.equal((await req).name, 'AbortError');
    await main.good();
    mock.release(key, { released: true });
    await egressLine(main, new RegExp(`egress: tool get GET a\\.test:${PS} -> 200 \\(\\d+ bytes`));
    await main.good();
    assert.deepEqual((await rpc(main, 'ping', {})).body.result, {});
  });

  it('a reload (SIGHUP) while a call waits: the call completes in the state it began in', async () => {
    const key = tag('reload');
    const held = call(main, 'get', { url: `${A()}/hold?key=${key}&tag=${key}` });
    await waitFor('the held request at the backend', () => mock.holds.has(key));
    const mark = main.err.length;
    main.proc.kill('SIGHUP');
    await waitFor('the reload', () => /reload \(SIGHUP\): version 2, /.test(main.err.slice(mark)));
    await main.good(); // served by the new bundle
    mock.release(key, { released: true });
    const r = ok(await held);
    assert.deepEqual([r.status, r.json.released, r.json.query.tag], [200, true, key]);
    await main.good();
  });

  it('200 calls at once to a 300 ms backend all succeed, each with its own answer', async () => {
    const tags = Array.from({ length: 200 }, () => tag('many'));
    const results = await Promise.all(tags.map((t) => call(main, 'get', { url: `${A()}/slow?ms=300&tag=${t}` }, { timeout: 120000 })));
    results.forEach((res, i) => {
      const r = ok(res, tags[i]);
      assert.equal(r.status, 200, tags[i]);
      assert.equal(r.json.query.tag, tags[i]);
    });
    for (const t of tags) assert.equal(mock.byTag(t).length, 1, t);
    await main.good();
  });
});

// ================================================================== limits

describe('limits', () => {
  it('more than egress.max_requests in one call: a tool error naming it; 8 are fine', async () => {
    const t = tag('seq');
    const mark = main.err.length;
    const msg = failed(await call(main, 'sequential', { url: `${A()}/echo?tag=${t}`, n: 9 }));
    assert.equal(msg, "tool 'sequential' failed (see server log)");
    await waitFor('the failure in the log', () => main.err.slice(mark).includes('tool sequential failed: '));
    assert.match(main.err.slice(mark), /tool sequential failed: \S*limits\.lua:\d+: mcp\.http\.get: more than 8 backend requests in one call \(egress\.max_requests\)/);
    assert.equal(mock.byTag(t).length, 8);
    const t8 = tag('seq8');
    assert.deepEqual(ok(await call(main, 'sequential', { url: `${A()}/echo?tag=${t8}`, n: 8 })), { statuses: Array(8).fill(200) });
    await main.good();
  });

  it('mcp.http.all over the limit: refused whole, nothing sent', async () => {
    const t = tag('all9');
    const msg = failed(await call(main, 'protected_all', { url: `${A()}/echo?tag=${t}`, n: 9 }));
    assert.equal(msg, 'mcp.http.all: more than 8 backend requests in one call (egress.max_requests)');
    assert.equal(mock.byTag(t).length, 0);
    assert.equal(failed(await call(main, 'protected_all', { url: `${A()}/echo?tag=${t}`, n: 33 })), 'mcp.http.all: at most 32 requests at once');
    assert.deepEqual(ok(await call(main, 'protected_all', { url: `${A()}/echo?tag=${t}`, n: 8 })), { n: 8, status: 200 });
    await main.good();
  });

  const lineOf = (file, needle) => readFileSync(path.join(SCRIPTS, file), 'utf8').split('\n').findIndex((l) => l.includes(needle)) + 1;

  it('egress.max_inflight: a request over it fails at once, the others go on', async () => {
    const [t1, t2, t3] = [tag('inflight'), tag('inflight'), tag('inflight')];
    const u = (t) => `http://plain.test:${PH}/slow?ms=100&tag=${t}`;
    const r = ok(await call(short, 'all', { reqs: [{ url: u(t1) }, { url: u(t2) }, { url: u(t3) }] }));
    assert.deepEqual(r, {
      n: 3,
      results: [
        { status: 200, tag: t1 },
        { status: 200, tag: t2 },
        { error: 'too many backend requests in flight on this worker (egress.max_inflight = 2)', has_status: false },
      ],
    });
    assert.equal(mock.byTag(t3).length, 0);
    await short.good();
  });

  it('waiting is not counted in limits.cpu_ms; the Lua after the wait is', async () => {
    const r = ok(await call(main, 'wait_then_work', { url: `${A()}/slow?ms=600`, n: 100000 }));
    assert.deepEqual(r, { status: 200, sum: 5000050000 });
    const msg = failed(await call(main, 'wait_then_work', { url: `${A()}/echo`, n: 1e12 }));
    assert.equal(msg, "tool 'wait_then_work' exceeded its budget (cpu_ms=250, instructions=0)");
    await main.good();
  });

  it('a handler that yields by itself (not in mcp.http): a tool error', async () => {
    assert.equal(failed(await call(main, 'bare_yield', {})), 'tool yielded outside mcp.http, which is not supported');
    await main.good();
  });

  it('inside a coroutine the script created: a clear error', async () => {
    const t = tag('coro');
    const msg = failed(await call(main, 'in_coroutine', { url: `${A()}/echo?tag=${t}` }));
    const line = lineOf('limits.lua', 'return mcp.http.get(args.url)');
    assert.match(msg, new RegExp(`^resume: false; \\S*limits\\.lua:${line}: mcp\\.http\\.get cannot be used inside a coroutine the script created$`));
    assert.equal(mock.byTag(t).length, 0);
    await main.good();
  });

  it('inside a callback of C that cannot yield (table.sort): a clear error', async () => {
    const t = tag('sort');
    const msg = failed(await call(main, 'in_sort', { url: `${A()}/echo?tag=${t}` }));
    assert.match(msg, /^sort: false; \S*limits\.lua:\d+: mcp\.http\.get cannot be used here \(inside a metamethod or a function that cannot yield\)$/);
    assert.equal(mock.byTag(t).length, 0);
    await main.good();
  });

  it('at load time: luamcp check fails with a clear message', () => {
    const { conf } = writeConfig('load-time', { egress: { allow: ['a.test'] } });
    const r = run(['check', '--config', conf, '--scripts', LOAD_TIME, '--policies', POLICIES], { env: ENV });
    assert.equal(r.code, 1, r.out + r.err);
    assert.equal(r.out, '');
    assert.match(r.err, /\S*at_load\.lua:2: mcp\.http\.get cannot be used while a script loads; call it from a handler/);
  });

  it('at load time: luamcp serve does not start', async () => {
    const { conf } = writeConfig('load-time-serve', { egress: { allow: ['a.test'] } });
    const proc = track(spawn(BIN, ['serve', '--config', conf, '--scripts', LOAD_TIME, '--policies', POLICIES,
      '--listen', '127.0.0.1:0', '--stateless'], { cwd: TMP, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] }));
    let err = '';
    proc.stderr.on('data', (d) => { err += d; });
    const exit = await Promise.race([proc.exit, sleep(30000, null, { ref: false })]);
    if (!exit) await proc.stopProcess();
    assert.ok(exit, `luamcp serve kept running:\n${err}`);
    assert.deepEqual(exit, { code: 1, signal: null }, err);
    assert.match(err, /\S*at_load\.lua:2: mcp\.http\.get cannot be used while a script loads; call it from a handler/);
    assert.doesNotMatch(err, /listening on/);
    assert.doesNotMatch(err, /Sanitizer|runtime error:/);
  });
});

// ================================================================== shutdown (last)

describe('shutdown', () => {
  it('SIGTERM while a call waits on its backend: after grace_s it is told the server is stopping; exit 0', async () => {
    const key = tag('stop');
    const held = call(main, 'get', { url: `${A()}/hold?key=${key}&tag=${key}` });
    await waitFor('the held request at the backend', () => mock.holds.has(key));
    main.proc.kill('SIGTERM');
    const res = await held;
    assert.deepEqual({ content: res.content, isError: res.isError }, {
      content: [{ type: 'text', text: 'the server is stopping' }], isError: true,
    });
    const { code, signal } = await main.stop();
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, main.err);
    assert.match(main.err, /finishing in-flight requests \(up to 3s\)/);
    assert.match(main.err, /worker 0: 1 requests still in flight after grace_s; closing them/);
    const { res: backend } = mock.holds.get(key);
    await waitFor('the backend to see the transfer closed', () => !mock.open.has(backend));
  });

  it('SIGTERM: each luamcp exits 0 with no sanitizer report', async () => {
    assert.equal(servers.length, 3);
    for (const s of servers) {
      const { code, signal } = await s.stop();
      assert.equal(signal, null, `luamcp (${s.name}) died of ${signal}`);
      assert.equal(code, 0, `luamcp (${s.name}) exited with ${code}`);
      assert.doesNotMatch(s.err, /ERROR: AddressSanitizer|Sanitizer|runtime error:/, `luamcp (${s.name}):\n${s.err}`);
    }
  });

  it('egress log lines name the tool, method, host and port only: never a path or query', () => {
    let n = 0;
    for (const s of servers) {
      for (const l of s.err.split('\n').filter((x) => x.includes(' egress: tool '))) {
        n++;
        assert.match(l, /^\S+Z (info|notice) egress: tool [\w.-]+ [A-Z]+ [a-z0-9.-]+:\d+ (-> \d{3} \(\d+ bytes, \d+\.\d ms\)|failed: .+ \(\d+\.\d ms\))$/, l);
        for (const t of TAGS) assert.ok(!l.includes(t), `a query value (${t}) is in an egress line: ${l}`);
      }
    }
    assert.ok(n > 300, `only ${n} egress lines`);
  });

  it('no credential and no secret in anything luamcp printed (log and audit)', () => {
    assert.ok(TOKENS.size >= 10, `only ${TOKENS.size} credentials used`);
    const leaks = [];
    for (const s of servers) {
      assert.ok(s.out.length > 0 && s.err.length > 0, s.name);
      for (const [stream, text] of [['stdout', s.out], ['stderr', s.err]]) {
        for (const l of text.split('\n')) {
          for (const t of TOKENS) if (l.includes(t)) leaks.push(`${s.name} ${stream}: a credential in: ${l.slice(0, 160)}`);
          if (l.includes(SECRET)) leaks.push(`${s.name} ${stream}: the secret in: ${l.slice(0, 160)}`);
        }
      }
    }
    assert.deepEqual(leaks, []);
  });
});
