#!/usr/bin/env node
// reload_bench.mjs — how soon a saved tool file serves: luamcp (argv[2]) on a temp scripts
// directory, then 100 times: write a new version of the tool file (a plain write, as `cp` or
// an editor writing in place does) and time from the write's completion to the first
// tools/call answer of the new version, polled in a tight loop on one keep-alive connection.
// That time holds the watcher's 20 ms debounce, the load of a bundle per worker, the swap at
// the worker's next loop turn and one request. Prints p50, p99, max and VmRSS before/after.
//
// Usage: node bench/reload_bench.mjs ./build/luamcp   (bench/run.sh runs it last)

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const bin = process.argv[2] ?? './build/luamcp';
const SAVES = Number(process.env.RELOAD_SAVES ?? 100);
const TIMEOUT_MS = 3000; // a save not served by then counts as lost
// After each reload the server re-arms its inotify watches by closing its inotify descriptor
// (8-20 ms in the kernel, more under load), and a save made meanwhile is never seen (see
// spec/reload/reload.mjs, known bugs). So after each sample the bench waits for the reloader
// thread to be done: it answers the admin socket in the same loop, after the re-arming.

if (!fs.existsSync(bin)) {
  console.error(`reload_bench: no luamcp binary at ${bin}`);
  process.exit(2);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir().length < 60 ? os.tmpdir() : '/tmp', 'luamcp-reload-bench-'));
fs.mkdirSync(path.join(dir, 'scripts'));
fs.mkdirSync(path.join(dir, 'policies'));
fs.writeFileSync(path.join(dir, 'policies', 'all.lua'), 'mcp.policy { tool = "*" }\n');
const toolFile = path.join(dir, 'scripts', 'ver.lua');
const tool = (v) => `-- version ${v}\nmcp.tool { name = "ver", description = "returns its version", ` +
  `inputSchema = { type = "object" }, handler = function() return "v${v}" end }\n`;
fs.writeFileSync(toolFile, tool(0));
fs.writeFileSync(path.join(dir, 'bench.conf.lua'),
  'return { auth = { enabled = false }, scripts = "scripts", policies = "policies", ' +
  `audit_file = "/dev/null", log_level = "notice", admin_socket = ${JSON.stringify(path.join(dir, 'admin.sock'))} }\n`);

const proc = spawn(bin, ['serve', '--config', path.join(dir, 'bench.conf.lua'), '--listen', '127.0.0.1:0', '--stateless'],
  { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
let log = '';
proc.stderr.on('data', (d) => { log += d; });
let exited = false;
proc.on('exit', () => { exited = true; });
const cleanup = () => {
  if (!exited) proc.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);
const fail = (msg) => {
  console.error(`reload_bench: ${msg}\n${log.slice(-3000)}`);
  process.exit(1);
};

let port;
for (let i = 0; i < 300 && !port && !exited; i++) {
  const m = /listening on \S+ port (\d+),/.exec(log);
  if (m) port = Number(m[1]);
  else await sleep(20);
}
if (!port) fail('the server did not start');

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ver', arguments: {} } });
function call() {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: '/mcp', method: 'POST', agent,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => {
        try { resolve(JSON.parse(data).result.content[0].text); } catch { reject(new Error(`bad answer ${res.statusCode}: ${data}`)); }
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}
const adminSock = path.join(dir, 'admin.sock');
const adminStatus = () => new Promise((resolve, reject) => {
  const c = net.createConnection(adminSock, () => c.write('status\n'));
  let data = '';
  c.on('data', (d) => { data += d; });
  c.on('error', reject);
  c.on('end', () => resolve(data));
});
const rssKiB = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1]);

for (let i = 0; i < 50; i++) if ((await call()) !== 'v0') fail('v0 is not served'); // warm the connection
const rssBefore = rssKiB();
const ms = [];
let lost = 0;
for (let v = 1; v <= SAVES; v++) {
  fs.writeFileSync(toolFile, tool(v));
  const t0 = performance.now();
  const want = `v${v}`;
  for (;;) {
    let got;
    try { got = await call(); } catch (e) { fail(`save ${v}: ${e.message}`); }
    const dt = performance.now() - t0;
    if (got === want) { ms.push(dt); break; }
    if (dt > TIMEOUT_MS) {
      lost++;
      console.error(`reload_bench: save ${v} was not served after ${TIMEOUT_MS} ms (still ${got}); SIGHUP`);
      proc.kill('SIGHUP');
      await sleep(500);
      break;
    }
  }
  await adminStatus();
}
const rssAfter = rssKiB();
agent.destroy();
proc.kill('SIGTERM');

ms.sort((a, b) => a - b);
const pct = (p) => ms[Math.min(ms.length - 1, Math.ceil((p / 100) * ms.length) - 1)];
const f = (x) => `${x.toFixed(1)} ms`;
const mib = (k) => `${(k / 1024).toFixed(1)} MiB`;
console.log(`luamcp reload bench — ${SAVES} saves of a tool file, each timed from the write to the first answer of the new version (${os.cpus().length} workers, one per core)`);
console.log();
console.log(`| ${'what'.padEnd(34)} | ${'p50'.padStart(9)} | ${'p99'.padStart(8)} | ${'max'.padStart(8)} | ${'RSS before'.padStart(10)} | ${'RSS after'.padStart(10)} |`);
console.log(`|${'-'.repeat(36)}|${'-'.repeat(11)}|${'-'.repeat(10)}|${'-'.repeat(10)}|${'-'.repeat(12)}|${'-'.repeat(12)}|`);
if (ms.length) {
  console.log(`| ${'save -> new version served'.padEnd(34)} | ${f(pct(50)).padStart(9)} | ${f(pct(99)).padStart(8)} | ${f(ms[ms.length - 1]).padStart(8)} | ${mib(rssBefore).padStart(10)} | ${mib(rssAfter).padStart(10)} |`);
  console.log();
  console.log(`save -> served p50: ${f(pct(50))} (target <= 50 ms, the 20 ms debounce included)${pct(50) <= 50 ? '' : ' MISSED'}`);
}
if (lost) console.log(`saves never seen by the watcher: ${lost} of ${SAVES}`);
