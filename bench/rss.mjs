#!/usr/bin/env node
// rss.mjs — does luamcp's memory stay flat? Its RSS (VmRSS) before and after 10,000 tools/call
// of echo, 10,000 tools/call of a tool calling a local backend with mcp.http, and 1,000 reloads
// through the admin socket, each after a warm-up. Prints start, after and growth per phase; a
// benchmark, not a test: no threshold (exit status 1 only when a request or reload failed).
//
//   node bench/rss.mjs [path/to/luamcp]      REQUESTS=10000 RELOADS=1000 CONCURRENCY=8

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const bin = path.resolve(process.argv[2] ?? './build/luamcp');
const REQUESTS = Number(process.env.REQUESTS ?? 10000);
const RELOADS = Number(process.env.RELOADS ?? 1000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 8);
const WARMUP = 1000;

if (!fs.existsSync(bin)) {
  console.error(`rss: no luamcp binary at ${bin}`);
  process.exit(2);
}

// a short directory: the admin socket's path must fit in 107 bytes
const dir = fs.mkdtempSync(path.join(os.tmpdir().length < 60 ? os.tmpdir() : '/tmp', 'luamcp-rss-'));
fs.mkdirSync(path.join(dir, 'scripts'));
fs.mkdirSync(path.join(dir, 'policies'));
fs.writeFileSync(path.join(dir, 'scripts', 'tools.lua'), `
mcp.tool { name = "echo", description = "echo", inputSchema = { type = "object" },
  handler = function(args) return args.text end }
mcp.tool { name = "fetch", description = "calls the local backend", inputSchema = { type = "object" },
  handler = function(args)
    local r, err = mcp.http.get(args.url)
    if not r then return nil, err end
    return { status = r.status }
  end }
`);
fs.writeFileSync(path.join(dir, 'policies', 'all.lua'), 'mcp.policy { tool = "*" }\n');
const admin = path.join(dir, 'admin.sock');
fs.writeFileSync(path.join(dir, 'rss.conf.lua'), `return {
  auth = { enabled = false }, stateless = true, log_level = "warning", workers = 2,
  scripts = "scripts", policies = "policies", audit_file = "/dev/null",
  admin_socket = ${JSON.stringify(admin)},
  egress = { allow = { "127.0.0.1" }, allow_http = true, allow_private = { "127.0.0.1/32" } },
}
`);

const backend = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end('{"ok":true}');
});
await new Promise((resolve) => backend.listen(0, '127.0.0.1', resolve));
const backendUrl = `http://127.0.0.1:${backend.address().port}/ok`;

const proc = spawn(bin, ['serve', '--config', path.join(dir, 'rss.conf.lua'), '--listen', '127.0.0.1:0'],
  { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
let log = '';
proc.stderr.on('data', (d) => { log += d; });
let exited = false;
proc.on('exit', () => { exited = true; });
process.on('exit', () => {
  if (!exited) proc.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});
const fail = (msg) => {
  console.error(`rss: ${msg}\n${log.slice(-3000)}`);
  process.exit(1);
};

let port;
for (let i = 0; i < 400 && !port && !exited; i++) {
  const m = /at http:\/\/127\.0\.0\.1:(\d+)\/mcp/.exec(log);
  if (m) port = Number(m[1]);
  else await sleep(25);
}
if (!port) fail('the server did not start');

const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1]);
const mib = (kib) => `${(kib / 1024).toFixed(1)} MiB`;

const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
function callTool(name, args) {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } });
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: '/mcp', method: 'POST', agent,
      headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// n calls, CONCURRENCY at a time; every answer must be a 200 that passes check
async function run(n, name, args, check) {
  let next = 0;
  const lane = async () => {
    while (next < n) {
      next++;
      const r = await callTool(name, args);
      if (r.status !== 200 || !check(r.data)) fail(`${name}: unexpected answer ${r.status} ${r.data}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));
}

function adminCommand(command) {
  return new Promise((resolve, reject) => {
    const s = net.connect(admin);
    let data = '';
    s.on('connect', () => s.write(`${command}\n`));
    s.on('data', (d) => { data += d; });
    s.on('end', () => { try { resolve(JSON.parse(data)); } catch (e) { reject(e); } });
    s.on('error', reject);
  });
}

const echo = ['echo', { text: 'rss' }, (d) => d.includes('"text":"rss"')];
const fetch = ['fetch', { url: backendUrl }, (d) => d.includes('"status":200') && !d.includes('"isError":true')];
const rows = [];
async function phase(label, warm, work) {
  await warm();
  await sleep(100);
  const start = rssKiB();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  await sleep(100);
  const after = rssKiB();
  rows.push({ label, start, after, ms });
}

const idle = rssKiB();
await phase(`${REQUESTS} tools/call echo`, () => run(WARMUP, ...echo), () => run(REQUESTS, ...echo));
await phase(`${REQUESTS} tools/call mcp.http`, () => run(WARMUP, ...fetch), () => run(REQUESTS, ...fetch));
let reloads = 0;
const reload = async (n) => {
  for (let i = 0; i < n; i++) {
    const st = await adminCommand('reload');
    if (!st.ok) fail(`reload refused: ${JSON.stringify(st)}`);
    reloads++;
    if (i % 50 === 49) await run(20, ...echo); // the workers swap bundles and free the old ones
  }
  await run(100, ...echo);
};
await phase(`${RELOADS} reloads`, () => reload(50), () => reload(RELOADS));

console.log(`rss — ${new Date().toISOString().slice(0, 10)} — ${os.cpus().length} cores — luamcp VmRSS, 2 workers, ${CONCURRENCY} keep-alive connections (after ${WARMUP} warm-up calls or 50 reloads)`);
console.log(`  idle after start: ${mib(idle)}`);
for (const r of rows) {
  const growth = r.after - r.start;
  console.log(`  ${`${r.label}:`.padEnd(28)} start ${mib(r.start)}, after ${mib(r.after)}, growth ${growth >= 0 ? '+' : ''}${growth} KiB (${(r.ms / 1000).toFixed(1)} s)`);
}
const hwm = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1]);
console.log(`  peak RSS: ${mib(hwm)}; ${reloads} reloads in all`);

agent.destroy();
proc.kill('SIGTERM');
const code = await new Promise((resolve) => (exited ? resolve(proc.exitCode) : proc.on('exit', (c) => resolve(c))));
backend.close();
if (code !== 0) fail(`luamcp exited with ${code}`);
