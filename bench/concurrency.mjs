// concurrency.mjs — N concurrent tools/call whose backend answers after DELAY ms (default
// 1,000 × 1 s), beside the floor measured in the same run: the same N requests sent straight
// to the backend. Prints the total time of each, their ratio, and the server's peak RSS and
// CPU time.
//
//   node bench/concurrency.mjs [path/to/luamcp]     N=1000 DELAY=1000 by default
//
// The backend is a separate Node process, so the client and the backend do not share a loop.
//
// Another MCP server instead of a luamcp started here (bench/sdk/compare.sh uses it for the
// TypeScript SDK server): MCP_URL=http://127.0.0.1:PORT/mcp, and optionally MCP_TOOL (default
// slow; called with {"url": "<the backend's URL>"}, its answer must contain "status":200),
// MCP_LABEL (the name printed), MCP_PIDS (comma-separated pids whose RSS and CPU to report,
// summed) and MCP_TOKEN (a bearer token to send).

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const N = Number(process.env.N || 1000);
const DELAY = Number(process.env.DELAY || 1000);

if (process.argv[2] === '--backend') {
  const srv = http.createServer((req, res) => {
    req.resume();
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    }, DELAY);
  });
  srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
} else {
  await main();
}

function procs(pids) { // summed over the processes (a primary and its workers)
  const all = pids.map(proc);
  return {
    hwmMiB: all.reduce((a, p) => a + p.hwmMiB, 0),
    rssMiB: all.reduce((a, p) => a + p.rssMiB, 0),
    cpuMs: all.reduce((a, p) => a + p.cpuMs, 0),
  };
}

function proc(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const tick = 100; // USER_HZ
  return {
    hwmMiB: Number(status.match(/VmHWM:\s+(\d+)/)[1]) / 1024,
    rssMiB: Number(status.match(/VmRSS:\s+(\d+)/)[1]) / 1024,
    cpuMs: ((Number(stat[11]) + Number(stat[12])) * 1000) / tick,
  };
}

async function burst(options, body) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: N });
  const one = () => new Promise((resolve, reject) => {
    const req = http.request({ ...options, agent }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, data }));
    });
    req.on('error', reject);
    req.end(body);
  });
  const t0 = performance.now();
  const out = await Promise.all(Array.from({ length: N }, one));
  const ms = performance.now() - t0;
  agent.destroy();
  return { ms, out };
}

async function main() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const bin = path.resolve(process.argv[2] || path.join(here, '..', 'build', 'luamcp'));
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'luamcp-concurrency-'));
  const children = [];
  process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); rmSync(tmp, { recursive: true, force: true }); });

  const backend = spawn(process.execPath, [fileURLToPath(import.meta.url), '--backend'], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, DELAY: String(DELAY) },
  });
  children.push(backend);
  const backendPort = Number(await new Promise((resolve) => backend.stdout.once('data', resolve)));

  let port, mcpPath = '/mcp', pids, label = 'luamcp', server;
  let args = {}, tool = 'slow', accept = 'application/json';
  const auth = process.env.MCP_TOKEN ? { authorization: `Bearer ${process.env.MCP_TOKEN}` } : {};
  if (process.env.MCP_URL) {
    const url = new URL(process.env.MCP_URL);
    port = Number(url.port);
    mcpPath = url.pathname;
    label = process.env.MCP_LABEL || url.href;
    pids = (process.env.MCP_PIDS || '').split(',').filter(Boolean).map(Number);
    tool = process.env.MCP_TOOL || 'slow';
    args = { url: `http://127.0.0.1:${backendPort}/slow` };
    accept = 'application/json, text/event-stream';
  } else {
    server = await startLuamcp(bin, tmp, backendPort, children);
    port = server.port;
    pids = [server.pid];
  }
  const idle = pids.length ? procs(pids) : undefined;

  const floor = await burst({ host: '127.0.0.1', port: backendPort, path: '/slow', method: 'GET' });
  const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: args } });
  const options = {
    host: '127.0.0.1', port, path: mcpPath, method: 'POST',
    headers: { 'content-type': 'application/json', accept, 'content-length': Buffer.byteLength(call), ...auth },
  };
  const cpu0 = idle ? procs(pids).cpuMs : 0;
  const run = await burst(options, call);
  const after = idle ? procs(pids) : undefined;
  const ok = run.out.filter((r) => r.status === 200 && r.data.includes('"status":200')).length;

  console.log(`concurrency — ${new Date().toISOString().slice(0, 10)} — ${os.cpus().length} cores — ${N} concurrent tools/call, backend answers after ${DELAY} ms`);
  console.log(`  floor (client straight to the backend): ${floor.ms.toFixed(0)} ms`);
  console.log(`  ${`through ${label}:`.padEnd(39)} ${run.ms.toFixed(0)} ms, ${ok}/${N} answered 200`);
  console.log(`  ratio ${label} / floor: ${(run.ms / floor.ms).toFixed(2)}`);
  if (idle) {
    console.log(`  server RSS: ${idle.rssMiB.toFixed(1)} MiB idle, peak ${after.hwmMiB.toFixed(1)} MiB; CPU ${(after.cpuMs - cpu0).toFixed(0)} ms for the burst`);
  }
  server?.kill('SIGTERM');
  backend.kill('SIGTERM');
  if (ok !== N) {
    console.log(run.out.find((r) => !(r.status === 200 && r.data.includes('"status":200'))));
    process.exitCode = 1;
  }
}

async function startLuamcp(bin, tmp, backendPort, children) {
  mkdirSync(path.join(tmp, 'scripts'));
  mkdirSync(path.join(tmp, 'policies'));
  writeFileSync(path.join(tmp, 'scripts', 'slow.lua'), `
mcp.tool {
  name = "slow",
  description = "waits for a backend that takes ${DELAY} ms",
  inputSchema = { type = "object" },
  handler = function()
    local r, err = mcp.http.get("http://127.0.0.1:${backendPort}/slow")
    if not r then return nil, err end
    return { status = r.status }
  end,
}
`);
  writeFileSync(path.join(tmp, 'policies', 'open.lua'), 'mcp.policy { tool = "*", description = "bench" }\n');
  writeFileSync(path.join(tmp, 'conf.lua'), `return {
  auth = { enabled = false }, stateless = true, log_level = "warning", max_connections = ${4 * N + 64},
  max_connections_per_address = 0, -- N calls at once, all from 127.0.0.1
  scripts = "${tmp}/scripts", policies = "${tmp}/policies", audit_file = "${tmp}/audit.jsonl",
  egress = { allow = { "127.0.0.1" }, allow_http = true, allow_private = { "127.0.0.1/32" } },
}
`);
  const server = spawn(bin, ['serve', '--config', path.join(tmp, 'conf.lua'), '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(server);
  let log = '';
  server.stderr.on('data', (d) => { log += d; });
  let port;
  for (let i = 0; i < 400 && !port; i++) {
    port = Number(log.match(/at http:\/\/127\.0\.0\.1:(\d+)\/mcp/)?.[1]) || undefined;
    if (!port) await sleep(25);
  }
  if (!port) throw new Error(`luamcp did not start:\n${log}`);
  server.port = port;
  return server;
}
