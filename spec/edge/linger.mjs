// linger.mjs — lingering close after an early error: a body too large is refused with 413
// before it is read and the connection is closed; the server shuts down writing and drains
// what the client still sends (bounded in bytes and time) before it closes, so the client can
// read the 413 instead of getting a reset. 50 of 50 oversized bodies with curl, with and
// without `Expect: 100-continue`, over HTTP and HTTPS, each answer a readable 413 (curl exit
// status 0). Then a normal request is served.
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test linger.mjs   (default ../../build/luamcp)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { luamcpBin, startLuamcp, tmpDir } from '../lib/harness.mjs';
import { fixtureConfig, good } from '../faults/lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-edge-linger-');
const ROUNDS = 50;

const big = path.join(TMP, 'big.json');
// 4 MiB against max_body_bytes = 64 KiB: far more than the socket buffers take at once
writeFileSync(big, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"${'x'.repeat(4 << 20)}"}}}`);
const cert = path.join(TMP, 'cert.pem');
const key = path.join(TMP, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
  '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });

let plain, tls;
before(async () => {
  plain = await startLuamcp(BIN, TMP, 'plain', fixtureConfig({ max_body_bytes: 65536, log_level: 'notice' }));
  tls = await startLuamcp(BIN, TMP, 'tls', fixtureConfig({ max_body_bytes: 65536, log_level: 'notice', tls: { cert, key } }));
});
after(async () => {
  if (plain) await plain.stop();
  if (tls) await tls.stop();
});

// curl's exit status and the status code it read
function curl(url, expect, extra = []) {
  return new Promise((resolve) => {
    execFile('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '20',
      '-H', 'Content-Type: application/json', '-H', 'Accept: application/json',
      '-H', expect ? 'Expect: 100-continue' : 'Expect:', '--data-binary', `@${big}`, ...extra, url],
    (err, stdout) => resolve({ rc: err ? err.code : 0, code: stdout.trim() }));
  });
}

async function rounds(url, expect, extra) {
  const bad = [];
  for (let i = 0; i < ROUNDS; i++) {
    const r = await curl(url, expect, extra);
    if (r.rc !== 0 || r.code !== '413') bad.push(`round ${i}: curl exit ${r.rc}, status ${r.code}`);
  }
  return bad;
}

describe('oversized bodies get a readable 413', () => {
  for (const expect of [false, true]) {
    it(`HTTP, ${expect ? 'with' : 'without'} Expect: 100-continue: ${ROUNDS} of ${ROUNDS}`, async () => {
      const bad = await rounds(plain.url, expect, []);
      assert.deepEqual(bad, [], bad.join('\n'));
      assert.ok(await good(plain));
    });
    it(`HTTPS, ${expect ? 'with' : 'without'} Expect: 100-continue: ${ROUNDS} of ${ROUNDS}`, async () => {
      const bad = await rounds(`https://localhost:${tls.port}/mcp`, expect,
        ['--cacert', cert, '--resolve', `localhost:${tls.port}:127.0.0.1`]);
      assert.deepEqual(bad, [], bad.join('\n'));
    });
  }
});

describe('a request head too large gets a readable 431', () => {
  it(`HTTP, a 64 KiB header and a 4 MiB body behind it: ${ROUNDS} of ${ROUNDS}`, async () => {
    const bad = [];
    for (let i = 0; i < ROUNDS; i++) {
      const r = await curl(plain.url, false, ['-H', `X-Big: ${'y'.repeat(64 << 10)}`]);
      if (r.rc !== 0 || r.code !== '431') bad.push(`round ${i}: curl exit ${r.rc}, status ${r.code}`);
    }
    assert.deepEqual(bad, [], bad.join('\n'));
    assert.ok(await good(plain));
  });
  it(`HTTPS, the same: ${ROUNDS} of ${ROUNDS}`, async () => {
    const bad = [];
    for (let i = 0; i < ROUNDS; i++) {
      const r = await curl(`https://localhost:${tls.port}/mcp`, false, ['-H', `X-Big: ${'y'.repeat(64 << 10)}`,
        '--cacert', cert, '--resolve', `localhost:${tls.port}:127.0.0.1`]);
      if (r.rc !== 0 || r.code !== '431') bad.push(`round ${i}: curl exit ${r.rc}, status ${r.code}`);
    }
    assert.deepEqual(bad, [], bad.join('\n'));
  });
});
