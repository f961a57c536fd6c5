// flood.mjs — the bounded edge, attacked from raw sockets:
//
//   header timeout     new connections that send nothing, or only part of a request head, are
//                      closed after header_timeout_s (far below idle_timeout_s); a keep-alive
//                      connection idling after an answer is not
//   per-address cap    max_connections_per_address: one address's connections beyond it are
//                      closed at once (loopback counted unless per_address_exempt_loopback)
//   unbuffered bodies  bodies sent to /healthz or to unknown paths are read and dropped, never
//                      held: 100 connections each sending 1 MiB there leave RSS nearly flat
//   flood              5,000 idle connections and 100 slow unauthenticated bodies held open:
//                      an authenticated call still answers within a second, and RSS stays
//                      under FLOOD_RSS_MIB (docs/limits.md)
//
// Needs about 12,000 descriptors: ../faults/run.sh raises the limit first. Bounds on waits
// only keep a broken server from hanging the test; durations are logged.
//
// Run with: LUAMCP_BIN=/path/to/luamcp ../faults/run.sh flood.mjs   (default ../../build/luamcp)

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { luamcpBin, startLuamcp, tmpDir, waitFor } from '../lib/harness.mjs';
import { fixtureConfig, good } from '../faults/lib.mjs';
import { rawExchange } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-edge-flood-');
const FLOOD_RSS_MIB = 160; // the documented bound (docs/limits.md), ASan build included

const servers = [];
after(async () => { for (const s of servers) if (!s.proc.exited()) await s.proc.stopProcess(); });
async function start(name, extra) {
  const s = await startLuamcp(BIN, TMP, name, fixtureConfig({ log_level: 'notice', ...extra }));
  servers.push(s);
  return s;
}

const rssMiB = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024;

// n sockets, connected; each records when the server closed it
async function openSockets(port, n, onConnect = () => {}, localAddress = undefined) {
  const t0 = Date.now();
  const socks = await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    let connected = false;
    s.closedAt = null;
    s.on('error', (e) => { if (!connected) reject(e); });
    s.on('close', () => { s.closedAt = Date.now() - t0; });
    s.once('connect', () => { connected = true; onConnect(s); resolve(s); });
  })));
  return socks;
}
const openCount = (socks) => socks.filter((s) => s.closedAt === null).length;
const destroyAll = (socks) => socks.forEach((s) => s.destroy());

const echoBody = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } });

describe('header timeout', () => {
  it('new connections silent or with a partial head are closed after header_timeout_s; a keep-alive one idling after an answer is not', async (t) => {
    const server = await start('header', { header_timeout_s: 1, idle_timeout_s: 30 });
    const silent = await openSockets(server.port, 20);
    const partial = await openSockets(server.port, 20, (s) => s.write('POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a'));
    // a keep-alive connection that has had its answer
    const kept = net.connect(server.port, '127.0.0.1');
    let keptText = '';
    let keptClosed = false;
    kept.on('data', (d) => { keptText += d; });
    kept.on('close', () => { keptClosed = true; });
    kept.on('error', () => {});
    await new Promise((r) => kept.once('connect', r));
    kept.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: ${Buffer.byteLength(echoBody)}\r\n\r\n${echoBody}`);
    await waitFor('the keep-alive answer', () => /structuredContent/.test(keptText), 10000);
    try {
      await waitFor(`the server to close the silent and partial connections (${openCount(silent) + openCount(partial)} open)`,
        () => openCount(silent) + openCount(partial) === 0, 15000, 50);
      const times = [...silent, ...partial].map((s) => s.closedAt).sort((a, b) => a - b);
      t.diagnostic(`closed after ${times[0]}..${times[times.length - 1]} ms`);
      assert.ok(times[times.length - 1] < 10000, 'closed by idle_timeout_s, not header_timeout_s');
      await sleep(1500);
      assert.equal(keptClosed, false, 'a keep-alive connection was closed by header_timeout_s');
    } finally {
      destroyAll([...silent, ...partial]);
      kept.destroy();
    }
    await good(server);
    await server.stop();
  });
});

describe('per-address cap', () => {
  it('max_connections_per_address = 10: the 20 connections over it are closed at once; the 10 stay; a new one is served once they go', async () => {
    const server = await start('cap', { max_connections_per_address: 10 });
    const socks = await openSockets(server.port, 30);
    try {
      await waitFor(`20 connections closed (${30 - openCount(socks)} so far)`, () => openCount(socks) <= 10, 10000, 50);
      await sleep(300);
      assert.equal(openCount(socks), 10);
      // the address is full: a new connection is closed without an answer
      const r = await rawExchange(server.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      assert.ok(r.closedByServer && r.statuses.length === 0, JSON.stringify(r));
    } finally {
      destroyAll(socks);
    }
    await waitFor('the counts given back', async () => { try { return !!(await good(server)); } catch { return false; } }, 10000, 100);
    await server.stop();
  });

  it('sockets the server lingers on (after an early 413) still count against the cap until the drain ends', async () => {
    const server = await start('cap-linger', { max_connections_per_address: 4, max_body_bytes: 1024 });
    // each announces a body far over max_body_bytes, gets its 413, and then keeps the socket open
    // sending nothing: the server drains it (up to 2 s) after the 413, holding a descriptor
    const socks = await openSockets(server.port, 4, (s) => s.write(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{`));
    try {
      await sleep(300); // the 413s are out, the sockets linger
      const r = await rawExchange(server.port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      assert.ok(r.closedByServer && r.statuses.length === 0, `a fifth connection while 4 linger: ${JSON.stringify(r)}`);
    } finally {
      destroyAll(socks);
    }
    await waitFor('the counts given back', async () => { try { return !!(await good(server)); } catch { return false; } }, 10000, 100);
    await server.stop();
  });

  it('per_address_exempt_loopback = true: loopback is not counted', async () => {
    const server = await start('exempt', { max_connections_per_address: 10, per_address_exempt_loopback: true });
    const socks = await openSockets(server.port, 30);
    try {
      await sleep(800);
      assert.equal(openCount(socks), 30);
      await good(server);
    } finally {
      destroyAll(socks);
    }
    await server.stop();
  });
});

// held bodies: `n` connections each sending `bytes` of a `total`-byte body to `target`, never
// finishing it
async function holdBodies(server, n, target, bytes, total, headers = '') {
  const chunk = Buffer.alloc(64 * 1024, 'a');
  return openSockets(server.port, n, (s) => {
    s.write(`POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${headers}Content-Length: ${total}\r\n\r\n`);
    let sent = 0;
    const more = () => {
      while (sent < bytes && s.closedAt === null) {
        const k = Math.min(chunk.length, bytes - sent);
        sent += k;
        if (!s.write(chunk.subarray(0, k))) { s.once('drain', more); return; }
      }
    };
    more();
  });
}

describe('bodies where none is taken', () => {
  it('100 connections each sending 1 MiB to /healthz or an unknown path: read and dropped, RSS nearly flat', async (t) => {
    const server = await start('unbuffered', {
      max_body_bytes: 2 << 20, idle_timeout_s: 60, header_timeout_s: 60, max_connections_per_address: 0,
    });
    await good(server);
    const before = rssMiB(server.proc.pid);
    const socks = [
      ...await holdBodies(server, 50, '/healthz', 1 << 20, 2 << 20),
      ...await holdBodies(server, 50, '/nowhere', 1 << 20, 2 << 20),
    ];
    try {
      await sleep(1500); // the bytes are written; the server reads them as they come
      assert.equal(openCount(socks), 100, 'body connections were closed');
      const grown = rssMiB(server.proc.pid) - before;
      t.diagnostic(`RSS ${before.toFixed(1)} MiB before, +${grown.toFixed(1)} MiB with 100 MiB of bodies in flight`);
      assert.ok(grown < 40, `RSS grew by ${grown.toFixed(1)} MiB: the bodies were held`);
      await good(server);
    } finally {
      destroyAll(socks);
    }
    await server.stop();
  });
});

describe('flood', () => {
  it('default limits: 5,000 idle connections from one address (127.0.0.2) do not stop service for another (127.0.0.1)', async (t) => {
    const limit = Number(readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)/)[1]);
    assert.ok(limit >= 12000, `the descriptor limit is ${limit}: run this test through ../faults/run.sh`);
    const server = await start('defaults', {});
    await good(server);
    const idle = await openSockets(server.port, 5000, () => {}, '127.0.0.2');
    try {
      await sleep(500);
      const held = openCount(idle);
      t.diagnostic(`${held} of 5000 held by the server (max_connections_per_address = 64)`);
      assert.ok(held <= 64, `${held} connections of one address held`);
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        await good(server, { timeoutMs: 5000 });
        assert.ok(Date.now() - t0 < 1000, `a call took ${Date.now() - t0} ms`);
      }
    } finally {
      destroyAll(idle);
    }
    await server.stop();
  });

  it('5,000 idle connections and 100 slow unauthenticated bodies: an authenticated call answers within a second, RSS bounded', async (t) => {
    const limit = Number(readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)/)[1]);
    assert.ok(limit >= 12000, `the descriptor limit is ${limit}: run this test through ../faults/run.sh`);
    const cfg = fixtureConfig({
      dev: true, log_level: 'notice', max_connections: 6000,
      // the whole flood comes from 127.0.0.1, and is held for the length of the test
      max_connections_per_address: 0, header_timeout_s: 120, idle_timeout_s: 120,
    });
    delete cfg.auth; // --dev: the development issuer's tokens
    const server = await startLuamcp(BIN, TMP, 'flood', cfg);
    servers.push(server);
    const tok = await (await fetch(`${server.base}/dev/token`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&client_id=flood&client_secret=s',
    })).json();
    assert.ok(tok.access_token);
    const authed = { authorization: `Bearer ${tok.access_token}` };
    await good(server, { headers: authed });
    const before = rssMiB(server.proc.pid);

    const idle = await openSockets(server.port, 5000);
    const slow = await holdBodies(server, 100, '/mcp', 512 * 1024, 1 << 20);
    const trickle = setInterval(() => slow.forEach((s) => { if (s.closedAt === null) s.write('a'); }), 500);
    try {
      await sleep(1000);
      assert.equal(openCount(idle), 5000, 'idle connections were closed before the call');
      assert.equal(openCount(slow), 100, 'slow bodies were closed before the call');
      const worst = [];
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        await good(server, { headers: authed });
        worst.push(Date.now() - t0);
      }
      const rss = rssMiB(server.proc.pid);
      t.diagnostic(`authenticated calls answered in ${worst.join(', ')} ms; RSS ${before.toFixed(1)} -> ${rss.toFixed(1)} MiB`);
      assert.ok(Math.max(...worst) < 1000, `a call took ${Math.max(...worst)} ms`);
      assert.ok(rss < FLOOD_RSS_MIB, `RSS ${rss.toFixed(1)} MiB over ${FLOOD_RSS_MIB} MiB`);
      assert.equal(openCount(idle) + openCount(slow), 5100, 'the flood was not held during the calls');
    } finally {
      clearInterval(trickle);
      destroyAll([...idle, ...slow]);
    }
    await good(server, { headers: authed });
    await server.stop();
  });
});
