// connections.mjs — faults at the connection level, each followed by normal requests:
//
//   slowloris      200 connections sending request headers one byte every 500 ms, with
//                  idle_timeout_s = 2: normal requests are served during the attack, and the
//                  server closes the slow connections within a few seconds
//   idle sockets   5,000 idle TCP connections with max_connections = 6000: a normal client is
//                  answered while they are open; the server then closes them (idle_timeout_s)
//                  and gives their descriptors back
//
// libmicrohttpd's own timeout only measures silence, which a trickle of bytes resets; luamcp
// bounds the time a whole request (headers and body) may take (http_close_slow in src/http.c).
//
// Needs about 12,000 descriptors (5,000 here, 5,000 in luamcp): run.sh raises the limit with
// `ulimit -n 20000` and then runs this file. Durations are logged, never asserted; bounds on
// waits only keep a broken server from hanging the test.
//
// Run with: LUAMCP_BIN=/path/to/luamcp ./run.sh connections.mjs   (default ../../build/luamcp)

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { luamcpBin, startLuamcp, tmpDir } from '../lib/harness.mjs';
import { fixtureConfig, good, socketCount, waitFor } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-faults-conn-');

const servers = [];
after(async () => { for (const s of servers) if (!s.proc.exited()) await s.proc.stopProcess(); });

async function start(name, extra) {
  const s = await startLuamcp(BIN, TMP, name, fixtureConfig({ log_level: 'notice', ...extra }));
  servers.push(s);
  return s;
}

// n connections opened at once; resolves when all are connected. Each socket records whether
// the server closed it (end or close before we destroyed it) and when.
async function openSockets(port, n, onConnect = () => {}) {
  const t0 = Date.now();
  const socks = await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let connected = false;
    s.byUs = false;
    s.closedAt = null;
    s.on('error', (e) => { if (!connected) reject(e); }); // later: a reset is a close like another
    s.on('close', () => { s.closedAt = Date.now() - t0; });
    s.once('connect', () => { connected = true; onConnect(s); resolve(s); });
  })));
  return { socks, t0 };
}

const openCount = (socks) => socks.filter((s) => s.closedAt === null).length;
const destroyAll = (socks) => socks.forEach((s) => { if (s.closedAt === null) { s.byUs = true; s.destroy(); } });

describe('slowloris', () => {
  it('200 connections trickling headers: normal requests are served meanwhile; the server closes them within a few seconds', async (t) => {
    const server = await start('slowloris', { idle_timeout_s: 2, max_connections_per_address: 0 });
    const before = await good(server);
    assert.ok(before);
    // a request head that never ends: one byte every 500 ms
    const head = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: ${'a'.repeat(4000)}`;
    const timers = [];
    const { socks } = await openSockets(server.port, 200, (s) => {
      let k = 0;
      const tick = () => { if (s.closedAt === null && !s.destroyed) s.write(head[k++ % head.length]); };
      tick();
      const timer = setInterval(tick, 500);
      timers.push(timer);
      s.on('close', () => clearInterval(timer));
    });
    try {
      // during the attack: every slow connection still open, and normal clients answered
      await sleep(600);
      const openBefore = openCount(socks);
      const served = [];
      for (let i = 0; i < 20; i++) served.push(await good(server));
      const openAfter = openCount(socks);
      t.diagnostic(`slow connections open around 20 normal calls: ${openBefore} before, ${openAfter} after`);
      assert.equal(served.length, 20);
      assert.ok(openBefore > 0, 'the normal calls were not made during the attack');

      // the server closes every slow connection (idle_timeout_s = 2: "a few seconds"; the
      // bound only keeps a broken server from hanging the test)
      const deadline = 20000;
      const t0 = Date.now();
      await waitFor(`the server to close all 200 slow connections (${openCount(socks)} still open)`,
        () => openCount(socks) === 0, deadline, 100).catch((e) => {
        t.diagnostic(`after ${Date.now() - t0} ms, ${openCount(socks)} of 200 slow connections are still open`);
        throw e;
      });
      const times = socks.map((s) => s.closedAt).sort((a, b) => a - b);
      t.diagnostic(`slow connections closed by the server after ${times[0]}..${times[times.length - 1]} ms`);
      assert.equal(socks.filter((s) => s.byUs).length, 0);
    } finally {
      timers.forEach(clearInterval);
      destroyAll(socks);
    }
    await good(server);
    await server.stop();
  });
});

describe('5,000 idle connections', () => {
  it('with max_connections = 6000: a normal client is answered while they are open; then the server closes them all', async (t) => {
    const limit = Number(readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)/)[1]);
    assert.ok(limit >= 12000, `the descriptor limit is ${limit}: run this test through run.sh (ulimit -n 20000)`);
    // (all from 127.0.0.1: no per-address cap; header_timeout_s as long, so idle_timeout_s
    // is what closes them)
    const server = await start('idle', {
      max_connections: 6000, idle_timeout_s: 12, header_timeout_s: 12, max_connections_per_address: 0,
    });
    await good(server);
    // the sockets luamcp holds at rest (the call's connection closed: the count is steady)
    let base = -1;
    for (let same = 0; same < 3;) {
      await sleep(100);
      const n = socketCount(server.proc.pid);
      same = n === base ? same + 1 : 0;
      base = n;
    }

    const t0 = Date.now();
    const { socks } = await openSockets(server.port, 5000);
    t.diagnostic(`5000 connections open in ${Date.now() - t0} ms`);
    try {
      // luamcp accepted them all (not merely the kernel's backlog)
      await waitFor('luamcp to accept 5000 connections',
        () => socketCount(server.proc.pid) >= base + 5000, 20000, 50).catch((e) => {
        t.diagnostic(`luamcp holds ${socketCount(server.proc.pid) - base} more sockets than at rest; ${openCount(socks)} open here`);
        throw e;
      });
      assert.equal(openCount(socks), 5000, 'a connection was closed before the normal requests');
      for (let i = 0; i < 10; i++) await good(server);
      assert.equal(openCount(socks), 5000, 'the normal requests were not all made while the 5000 were open');
      t.diagnostic(`luamcp holds ${socketCount(server.proc.pid) - base} more sockets than at rest`);

      // idle_timeout_s = 12: the server closes them and gives their descriptors back
      await waitFor(`the server to close 5000 idle connections (${openCount(socks)} still open)`,
        () => openCount(socks) === 0, 60000, 100);
      const times = socks.map((s) => s.closedAt).sort((a, b) => a - b);
      t.diagnostic(`idle connections closed by the server after ${times[0]}..${times[times.length - 1]} ms`);
      assert.equal(socks.filter((s) => s.byUs).length, 0);
      await waitFor('luamcp to release the sockets', () => socketCount(server.proc.pid) <= base + 10, 10000, 50);
    } finally {
      destroyAll(socks);
    }
    for (let i = 0; i < 5; i++) await good(server);
    await server.stop();
  });
});
