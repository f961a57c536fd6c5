// harness.mjs — what spec/auth/attacks.mjs needs to attack luamcp's bearer-token check:
// keys and JWKS documents (node:crypto only), a JWS signer that controls every byte, a luamcp
// server on a free loopback port with its log kept in memory, and a raw HTTP/1.1 client (so
// duplicate headers, odd whitespace and oversized headers go out exactly as written).

import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

import { freePort } from '../lib/harness.mjs';

export const ISSUER = 'https://issuer.test';

// ------------------------------------------------------------------ base64url, JWS

export const b64u = (x) => Buffer.from(x).toString('base64url');

// A JWS segment from a Buffer (raw bytes), a string (raw text, e.g. hand-written JSON) or an
// object (JSON.stringify).
export function segment(x) {
  if (Buffer.isBuffer(x)) return b64u(x);
  if (typeof x === 'string') return b64u(Buffer.from(x, 'utf8'));
  return b64u(Buffer.from(JSON.stringify(x), 'utf8'));
}

const HASH = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

// The signature bytes of `data` for a JWS alg. key: a KeyObject, or for HS* any Buffer/string
// (the "secret" of alg-confusion attacks). "none" in any case gives an empty signature.
export function signBytes(alg, data, key) {
  if (/^none$/i.test(alg)) return Buffer.alloc(0);
  if (alg === 'EdDSA') return crypto.sign(null, data, key);
  const m = /^(RS|PS|ES|HS)(256|384|512)$/.exec(alg);
  if (!m) throw new Error(`cannot sign with alg ${alg}`);
  const h = HASH[m[2]];
  switch (m[1]) {
    case 'RS':
      return crypto.sign(h, data, { key, padding: crypto.constants.RSA_PKCS1_PADDING });
    case 'PS':
      return crypto.sign(h, data, {
        key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(m[2]) / 8,
      });
    case 'ES':
      return crypto.sign(h, data, { key, dsaEncoding: 'ieee-p1363' });
    default:
      return crypto.createHmac(h, key).update(data).digest();
  }
}

// A compact JWS. header/payload: objects, raw strings or Buffers (see segment()). The
// signature is made with signAlg (default: header.alg) and key over "header.payload" exactly as
// encoded; sig (a Buffer) replaces it. Returns the token string.
export function jws({ header, payload, key, signAlg, sig }) {
  const input = `${segment(header)}.${segment(payload)}`;
  const alg = signAlg ?? (typeof header === 'object' && !Buffer.isBuffer(header) ? header.alg : undefined);
  const s = sig ?? (key === undefined && /^none$/i.test(String(alg)) ? Buffer.alloc(0) : signBytes(alg, Buffer.from(input), key));
  return `${input}.${b64u(s)}`;
}

// ------------------------------------------------------------------ keys

export function generateKeys() {
  const rsa = (bits) => crypto.generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 65537 });
  return {
    rsa1: { alg: 'RS256', ...rsa(2048) },
    rsa2: { alg: 'PS256', ...rsa(2048) },
    ec1: { alg: 'ES256', ...crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
    ed1: { alg: 'EdDSA', ...crypto.generateKeyPairSync('ed25519') },
    weak: { alg: 'RS256', ...rsa(1024) },
    // never published anywhere: what an attacker signs with
    evil: { alg: 'RS256', ...rsa(2048) },
    evilEc: { alg: 'ES256', ...crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
    // a second issuer's key
    other1: { alg: 'ES256', ...crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
  };
}

// The public JWK of a key, with kid and use=sig (and alg when given).
export function publicJwk(k, kid, extra = {}) {
  return { ...k.publicKey.export({ format: 'jwk' }), kid, use: 'sig', ...extra };
}

// ------------------------------------------------------------------ config files (Lua)

export function luaValue(v) {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  if (typeof v === 'string') {
    return `"${v.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[\x00-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0)}`)}"`;
  }
  if (Array.isArray(v)) return `{ ${v.map(luaValue).join(', ')} }`;
  return `{ ${Object.entries(v).map(([k, x]) => `${k} = ${luaValue(x)}`).join(', ')} }`;
}

// ------------------------------------------------------------------ raw HTTP/1.1

// One response parsed out of buf, or null when buf does not hold all of it yet. closed: the
// peer closed, so a response without a length ends here.
function parseResponse(buf, closed) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
  if (!m) throw new Error(`bad status line: ${head[0]}`);
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    const k = line.slice(0, i).trim().toLowerCase();
    (headers[k] ??= []).push(line.slice(i + 1).trim());
  }
  let rest = buf.subarray(end + 4);
  let body;
  let used;
  if (headers['transfer-encoding']?.[0]?.toLowerCase() === 'chunked') {
    const parts = [];
    let off = 0;
    for (;;) {
      const le = rest.indexOf('\r\n', off);
      if (le < 0) return null;
      const size = parseInt(rest.subarray(off, le).toString('latin1'), 16);
      if (rest.length < le + 2 + size + 2) return null;
      parts.push(rest.subarray(le + 2, le + 2 + size));
      off = le + 2 + size + 2;
      if (size === 0) break;
    }
    body = Buffer.concat(parts);
    used = end + 4 + off;
  } else if (headers['content-length']) {
    const n = Number(headers['content-length'][0]);
    if (rest.length < n) return null;
    body = rest.subarray(0, n);
    used = end + 4 + n;
  } else {
    if (!closed) return null;
    body = rest;
    used = buf.length;
  }
  return { status: Number(m[1]), headers, body: body.toString('utf8'), used };
}

// A connection that sends requests one after the other (keep-alive) and reads each answer.
export class Conn {
  constructor(port) {
    this.port = port;
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.error = null;
    this.notify = null;
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.wake(); });
    this.sock.on('end', () => { this.closed = true; this.wake(); });
    this.sock.on('close', () => { this.closed = true; this.wake(); });
    this.sock.on('error', (e) => { this.error = e; this.closed = true; this.wake(); });
  }

  wake() {
    const n = this.notify;
    this.notify = null;
    if (n) n();
  }

  async send(raw, timeoutMs = 10000) {
    if (!this.closed) this.sock.write(raw);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.buf.length ? parseResponse(this.buf, this.closed) : null;
      if (r) {
        this.buf = this.buf.subarray(r.used);
        delete r.used;
        return r;
      }
      if (this.closed) {
        const e = new Error(`connection closed without a (complete) response${this.error ? `: ${this.error.message}` : ''}`);
        e.code = 'NO_RESPONSE';
        throw e;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a response');
      await new Promise((resolve) => {
        this.notify = resolve;
        setTimeout(resolve, Math.min(left, 200)).unref();
      });
    }
  }

  close() { this.sock.destroy(); }
}

// The bytes of one request. headers: [[name, value], ...] sent in that order, exactly.
export function rawRequest(port, { method = 'POST', target = '/mcp', headers = [], body = '', keepAlive = false, host } = {}) {
  const b = Buffer.from(body, 'utf8');
  let head = `${method} ${target} HTTP/1.1\r\nHost: ${host ?? `127.0.0.1:${port}`}\r\n`;
  for (const [k, v] of headers) head += `${k}: ${v}\r\n`;
  if (method === 'POST' || b.length) head += `Content-Length: ${b.length}\r\n`;
  if (!keepAlive) head += 'Connection: close\r\n';
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), b]);
}

export async function request(port, opts) {
  const c = new Conn(port);
  try {
    return await c.send(rawRequest(port, opts));
  } finally {
    c.close();
  }
}

// ------------------------------------------------------------------ luamcp servers

const running = new Set();
process.on('exit', () => {
  for (const s of running) {
    try { s.proc.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export { freePort };

export function tempDir(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `luamcp-auth-${tag}-`));
}

// Starts `luamcp serve ... --stateless` with a config file made by makeConfig(port, resource)
// (a JS object turned into Lua). Resolves once /healthz answers 200; rejects with the log when
// the server exits first. Retries on another port when the chosen one was taken meanwhile.
export async function startServer({ bin, dir, scriptsDir, makeConfig, name = 'server', extraArgs = [], env = {} }) {
  let lastLog = '';
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort();
    const resource = `http://127.0.0.1:${port}/mcp`;
    const configFile = path.join(dir, `${name}.conf.lua`);
    fs.writeFileSync(configFile, `return ${luaValue(makeConfig(port, resource))}\n`);
    const args = ['serve', '--listen', `127.0.0.1:${port}`, '--scripts', scriptsDir,
      '--config', configFile, '--stateless', ...extraArgs];
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const s = {
      name, proc, port, resource, configFile, log: '', exited: false, exitCode: null, signal: null,
      prmUrl: `http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`,
    };
    running.add(s);
    proc.stdout.on('data', (d) => { s.log += d; });
    proc.stderr.on('data', (d) => { s.log += d; });
    s.exitPromise = new Promise((resolve) => proc.on('exit', (code, signal) => {
      s.exited = true;
      s.exitCode = code;
      s.signal = signal;
      running.delete(s);
      resolve();
    }));
    s.stop = async () => {
      if (!s.exited) {
        proc.kill('SIGTERM');
        await Promise.race([s.exitPromise, sleep(5000)]);
        if (!s.exited) proc.kill('SIGKILL');
        await s.exitPromise;
      }
    };
    const deadline = Date.now() + 20000;
    while (!s.exited && Date.now() < deadline) {
      try {
        const r = await request(port, { method: 'GET', target: '/healthz' });
        if (r.status === 200) return s;
      } catch { /* not listening yet */ }
      await sleep(25);
    }
    await s.stop();
    lastLog = s.log;
    if (!/in use|EADDRINUSE|bind/i.test(s.log)) break;
  }
  const e = new Error(`luamcp did not start:\n${lastLog}`);
  e.log = lastLog;
  throw e;
}

// Runs the binary to completion (for configurations that must refuse to start).
export function runToExit(bin, args, timeoutMs = 15000) {
  return new Promise((resolve) => {
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { out += d; });
    const t = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('exit', (code, signal) => { clearTimeout(t); resolve({ code, signal, out }); });
  });
}

// ------------------------------------------------------------------ WWW-Authenticate

// `Bearer k="v", k2="v2"` -> { scheme, params } — strictly: anything else throws.
export function parseChallenge(value) {
  const m = /^Bearer(?: (.*))?$/.exec(value);
  if (!m) throw new Error(`not a Bearer challenge: ${JSON.stringify(value)}`);
  const params = {};
  if (m[1] !== undefined) {
    const re = /([a-z_]+)="([^"\\]*)"(?:, |$)/gy;
    let pos = 0;
    for (let p; (p = re.exec(m[1])); pos = re.lastIndex) {
      if (Object.hasOwn(params, p[1])) throw new Error(`duplicate challenge parameter ${p[1]}`);
      params[p[1]] = p[2];
    }
    if (pos !== m[1].length) throw new Error(`malformed challenge parameters: ${JSON.stringify(value)}`);
  }
  return { scheme: 'Bearer', params };
}
