// lib.mjs — plumbing for the hot-reload tests: a luamcp server in a temp directory of its own
// (its scripts/, policies/, config file and admin socket), the ways editors save files, the
// admin socket protocol, /healthz, and the SDK client. Node built-ins plus the SDK that
// spec/integration/sdk installs (ctest fixture sdk_node_modules).

import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SDK = path.join(here, '..', 'integration', 'sdk', 'node_modules', '@modelcontextprotocol', 'sdk', 'dist', 'esm');
if (!fs.existsSync(SDK)) {
  throw new Error(`the MCP SDK is not installed at ${SDK}: run ctest's npm_ci fixture (or npm ci in spec/integration/sdk)`);
}
const { Client } = await import(pathToFileURL(path.join(SDK, 'client', 'index.js')).href);
const { StreamableHTTPClientTransport } = await import(pathToFileURL(path.join(SDK, 'client', 'streamableHttp.js')).href);
export const { ToolListChangedNotificationSchema } = await import(pathToFileURL(path.join(SDK, 'types.js')).href);

export const BIN = process.env.LUAMCP_BIN;
if (!BIN || !fs.existsSync(BIN)) throw new Error(`LUAMCP_BIN must name the luamcp binary (got '${BIN}')`);
export const ASAN = /_asan$/.test(path.basename(BIN));
// How soon a saved file must serve (or its refusal show), in every variant: it takes 20-30 ms
// here (the 20 ms debounce, then the load), ASan or not.
export const VISIBLE_MS = 2000;

// ------------------------------------------------------------------ processes and temp dirs

const live = new Set();
const tempDirs = new Set();
process.on('exit', () => {
  for (const s of live) try { s.proc.kill('SIGKILL'); } catch { /* already gone */ }
  if (process.env.LUAMCP_KEEP_TMP) return; // for post-mortems (a core file lands in the server's directory)
  for (const d of tempDirs) try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
});

// ctest's timeout or a Ctrl-C: the exit handler above still runs
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(128 + os.constants.signals[sig]));

export function tempDir(tag) {
  // Unix socket paths are limited to 107 bytes: fall back to /tmp when TMPDIR is long.
  const base = os.tmpdir().length < 60 ? os.tmpdir() : '/tmp';
  const d = fs.mkdtempSync(path.join(base, `luamcp-reload-${tag}-`));
  tempDirs.add(d);
  return d;
}

export function removeTempDir(d) {
  fs.rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}

// A tool file whose handler returns `text` (one line, so error lines are easy to predict).
export function toolSource(name, text, { comment = '', body = null } = {}) {
  const handler = body ?? `return ${JSON.stringify(text)}`;
  return `-- ${comment || name}\n` +
    `mcp.tool { name = ${JSON.stringify(name)}, description = "returns its version", ` +
    `inputSchema = { type = "object" }, handler = function(args, ctx) ${handler} end }\n`;
}

// A server's home: <dir>/luamcp.conf.lua, scripts/, scripts/lib/ (unless noLib), policies/,
// admin.sock.
export function makeHome(tag, { conf = {}, scripts = {}, policies = {}, lib = {}, noLib = false } = {}) {
  const dir = tempDir(tag);
  const home = {
    dir,
    scripts: path.join(dir, 'scripts'),
    policies: path.join(dir, 'policies'),
    lib: path.join(dir, 'scripts', 'lib'),
    conf: path.join(dir, 'luamcp.conf.lua'),
    admin: path.join(dir, 'admin.sock'),
  };
  fs.mkdirSync(noLib ? home.scripts : home.lib, { recursive: true });
  fs.mkdirSync(home.policies);
  for (const [f, src] of Object.entries(scripts)) fs.writeFileSync(path.join(home.scripts, f), src);
  for (const [f, src] of Object.entries(policies)) fs.writeFileSync(path.join(home.policies, f), src);
  for (const [f, src] of Object.entries(lib)) fs.writeFileSync(path.join(home.lib, f), src);
  home.confText = configText(home, conf);
  fs.writeFileSync(home.conf, home.confText);
  return home;
}

// conf: { auth: 'off' | 'dev', workers }
function configText(home, { auth = 'off', workers = 2 } = {}) {
  const authText = auth === 'off'
    ? 'auth = { enabled = false }'
    : `auth = { dev_key_file = ${JSON.stringify(path.join(home.dir, 'dev-issuer.json'))} }`;
  return `-- written by spec/reload/lib.mjs\nreturn {\n  ${authText},\n` +
    '  scripts = "scripts", policies = "policies",\n' +
    `  admin_socket = ${JSON.stringify(home.admin)},\n` +
    '  audit_file = "audit.jsonl",\n' +
    `  workers = ${workers},\n  log_level = "notice",\n}\n`;
}

// Starts `luamcp serve` on port 0 and learns the port from its log.
export async function startServer(home, { stateless = false, dev = false } = {}) {
  const argv = ['serve', '--config', home.conf, '--listen', '127.0.0.1:0',
    ...(stateless ? ['--stateless'] : []), ...(dev ? ['--dev'] : [])];
  const proc = spawn(BIN, argv, { cwd: home.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { proc, home, log: '', exited: false, exitCode: null, exitSignal: null };
  const keep = (d) => {
    s.log += d;
    if (s.log.length > 4_000_000) s.log = s.log.slice(-2_000_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  s.exitedP = new Promise((resolve) => proc.on('exit', (code, sig) => {
    s.exited = true;
    s.exitCode = code;
    s.exitSignal = sig;
    if (!s.stopping) {
      process.stderr.write(`# luamcp (pid ${proc.pid}, ${home.dir}) died: ${code ?? sig}; its log ends:\n${s.log.slice(-4000)}\n`);
    }
    resolve();
  }));
  live.add(s);
  const t0 = Date.now();
  while (!s.port) {
    const m = /listening on \S+ port (\d+),/.exec(s.log);
    if (m) s.port = Number(m[1]);
    else if (s.exited || Date.now() - t0 > 15000) {
      throw new Error(`luamcp did not start (${argv.join(' ')}):\n${s.log}`);
    } else await sleep(20);
  }
  s.base = `http://127.0.0.1:${s.port}`;
  s.url = new URL(`${s.base}/mcp`);
  // ready when /healthz answers
  for (;;) {
    try {
      const r = await fetch(`${s.base}/healthz`);
      if (r.status === 200) break;
    } catch { /* not yet */ }
    if (s.exited || Date.now() - t0 > 15000) throw new Error(`luamcp never answered /healthz:\n${s.log}`);
    await sleep(20);
  }
  // SIGTERM, then the exit status: 0, else the log (under ASan a leak makes it non-zero)
  s.stop = async () => {
    s.stopping = true;
    if (!s.exited) {
      proc.kill('SIGTERM');
      await Promise.race([s.exitedP, sleep(15000)]);
      if (!s.exited) proc.kill('SIGKILL');
      await s.exitedP;
    }
    live.delete(s);
    return { code: s.exitCode, signal: s.exitSignal };
  };
  s.stopClean = async () => {
    const { code, signal } = await s.stop();
    assert.equal(code, 0, `luamcp exited with ${code ?? signal}; its log:\n${s.log.slice(-20000)}`);
  };
  return s;
}

// ------------------------------------------------------------------ status

export async function health(s) {
  const r = await fetch(`${s.base}/healthz`);
  assert.equal(r.status, 200, '/healthz status');
  return r.json();
}

export async function bundle(s) {
  return (await health(s)).bundle;
}

// Polls until pred(value) holds; returns the value, or fails naming what was awaited.
export async function waitFor(fn, pred, what, ms = VISIBLE_MS, every = 5) {
  const t0 = Date.now();
  let last;
  for (;;) {
    last = await fn();
    if (pred(last)) return last;
    if (Date.now() - t0 > ms) {
      assert.fail(`timed out after ${ms} ms waiting for ${what}; last seen: ${JSON.stringify(last)}`);
    }
    await sleep(every);
  }
}

// One command over the admin socket (the protocol `luamcp reload` speaks: a line, a JSON answer).
export function admin(sockPath, command) {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sockPath);
    let data = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`${command}\n`));
    c.on('data', (d) => { data += d; });
    c.on('error', reject);
    c.on('end', () => {
      try { resolve(JSON.parse(data)); } catch (e) { reject(new Error(`admin answer not JSON: '${data}'`)); }
    });
  });
}

// Runs `luamcp ARGS...`; resolves {code, stdout, stderr} whatever the exit status.
export function run(args, opts = {}) {
  return new Promise((resolve) => {
    execFile(BIN, args, { timeout: 30000, ...opts }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

export function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

// ------------------------------------------------------------------ saving files

let seq = 0;
// How editors save: 'plain' (truncate and write in place), 'rename' (write a hidden temp file
// beside it, then rename over: atomic-write libraries, VS Code, JetBrains "safe write"),
// 'backup' (vim's default: move the old file to NAME~, write a new NAME, delete the backup).
export function save(file, text, how = 'plain') {
  const dir = path.dirname(file), base = path.basename(file);
  if (how === 'plain') {
    fs.writeFileSync(file, text);
  } else if (how === 'rename') {
    const tmp = path.join(dir, `.${base}.${process.pid}.${++seq}.tmp`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } else if (how === 'backup') {
    const bak = `${file}~`;
    if (fs.existsSync(file)) fs.renameSync(file, bak);
    fs.writeFileSync(file, text);
    fs.rmSync(bak, { force: true });
  } else {
    throw new Error(`unknown save style ${how}`);
  }
}

// ------------------------------------------------------------------ the SDK client

// An SDK client over Streamable HTTP. `exchanges` records method/status of every HTTP exchange
// (to know when the GET stream is open), `errors` what the client reported.
export async function connect(s, { name = 'luamcp-reload-test' } = {}) {
  const exchanges = [];
  const errors = [];
  const recordingFetch = async (url, init = {}) => {
    const res = await fetch(url, init);
    exchanges.push({ http: init.method ?? 'GET', status: res.status, at: Date.now() });
    return res;
  };
  const transport = new StreamableHTTPClientTransport(s.url, { fetch: recordingFetch });
  const client = new Client({ name, version: '1.0.0' });
  let closing = false;
  client.onerror = (e) => { if (!closing) errors.push(e); };
  await client.connect(transport);
  return {
    client, transport, exchanges, errors,
    close: async () => { closing = true; await client.close(); },
  };
}

export function textOf(result) {
  return result?.content?.[0]?.text;
}
