// strict.mjs — one strict reading of every request head (RFC 9112): each head a front proxy
// could read another way is refused with 400 before anything runs, the connection is closed,
// and a second request hidden behind it on the same connection (smuggling) never runs. After
// the attacks a normal request is served.
//
// Raw sockets (node net), since HTTP clients will not send these heads.
// Run with: LUAMCP_BIN=/path/to/luamcp node --test strict.mjs   (default ../../build/luamcp)

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { luamcpBin, startLuamcp, tmpDir } from '../lib/harness.mjs';
import { fixtureConfig, good } from '../faults/lib.mjs';
import { rawExchange } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-edge-strict-');

let server;
before(async () => { server = await startLuamcp(BIN, TMP, 'strict', fixtureConfig({ log_level: 'info' })); });
after(async () => { if (server) await server.stop(); });

const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } });
const LEN = Buffer.byteLength(body);
const common = 'Content-Type: application/json\r\nAccept: application/json\r\n';
// a complete, valid request: if it ever runs behind a refused one, its answer shows
const hidden = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n${common}Content-Length: ${LEN}\r\n\r\n${body}`;
const head = (lines, { target = '/mcp', version = 'HTTP/1.1' } = {}) =>
  `POST ${target} ${version}\r\n${lines.map((l) => `${l}\r\n`).join('')}${common}`;
const withBody = (lines, opts) => `${head([...lines, `Content-Length: ${LEN}`], opts)}\r\n${body}`;

const attacks = {
  'two differing Content-Length': `${head(['Host: 127.0.0.1', `Content-Length: ${LEN}`, 'Content-Length: 0'])}\r\n${body}`,
  'two equal Content-Length': `${head(['Host: 127.0.0.1', `Content-Length: ${LEN}`, `Content-Length: ${LEN}`])}\r\n${body}`,
  'Content-Length as a list': `${head(['Host: 127.0.0.1', `Content-Length: ${LEN}, ${LEN}`])}\r\n${body}`,
  'Content-Length with Transfer-Encoding: chunked':
    `${head(['Host: 127.0.0.1', 'Content-Length: 4', 'Transfer-Encoding: chunked'])}\r\n${LEN.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
  'Transfer-Encoding: gzip, chunked': `${head(['Host: 127.0.0.1', 'Transfer-Encoding: gzip, chunked'])}\r\n0\r\n\r\n`,
  'Transfer-Encoding: identity (no Content-Length)': `${head(['Host: 127.0.0.1', 'Transfer-Encoding: identity'])}\r\n${body}`,
  'two Transfer-Encoding: chunked': `${head(['Host: 127.0.0.1', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'])}\r\n0\r\n\r\n`,
  'Transfer-Encoding on HTTP/1.0': `${head(['Transfer-Encoding: chunked'], { version: 'HTTP/1.0' })}\r\n0\r\n\r\n`,
  'obs-fold (a folded header line)': withBody(['Host: 127.0.0.1', 'X-Note: a', ' folded']),
  'obs-fold of Host': withBody(['Host: 127.0.0.1', ' evil.example']),
  'NUL in Mcp-Name': withBody(['Host: 127.0.0.1', 'Mcp-Name: echo\0.admin']),
  'NUL at the end of a value': withBody(['Host: 127.0.0.1', 'Mcp-Name: echo\0']),
  'NUL in Mcp-Param-Text': withBody(['Host: 127.0.0.1', 'Mcp-Param-Text: x\0y']),
  'NUL in Authorization': withBody(['Host: 127.0.0.1', 'Authorization: Bearer abc\0def']),
  'NUL in the last header': `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n${common}Content-Length: ${LEN}\r\nX-Last: a\0b\r\n\r\n${body}`,
  'bare CR in a value': withBody(['Host: 127.0.0.1', 'Mcp-Name: echo\r.admin']),
  'bare LF line ends': withBody(['Host: 127.0.0.1']).replace(/\r\n/g, '\n'),
  'space before the colon': `${head(['Host: 127.0.0.1', `Content-Length : ${LEN}`])}\r\n${body}`,
  'space in a field name': withBody(['Host: 127.0.0.1', 'X Note: a']),
  'duplicate Host': withBody(['Host: 127.0.0.1', 'Host: evil.example']),
  'missing Host on HTTP/1.1': withBody([]),
  'Host with a space': withBody(['Host: 127.0.0.1 evil.example']),
  'percent-encoded path /%6dcp': withBody(['Host: 127.0.0.1'], { target: '/%6dcp' }),
  'NUL-cut path /mcp%00': withBody(['Host: 127.0.0.1'], { target: '/mcp%00' }),
  'NUL-cut path /mcp%00.x': withBody(['Host: 127.0.0.1'], { target: '/mcp%00.x' }),
  'dot segment /x/../mcp': withBody(['Host: 127.0.0.1'], { target: '/x/../mcp' }),
  'dot segment /./mcp': withBody(['Host: 127.0.0.1'], { target: '/./mcp' }),
  'empty segment //mcp': withBody(['Host: 127.0.0.1'], { target: '//mcp' }),
  'absolute-form target': withBody(['Host: 127.0.0.1'], { target: 'http://127.0.0.1/mcp' }),
  'two spaces before the version': withBody(['Host: 127.0.0.1'], { target: '/mcp ' }),
  'raw NUL in the target': withBody(['Host: 127.0.0.1'], { target: '/mcp\0x' }),
};

describe('strict request heads', () => {
  for (const [name, request] of Object.entries(attacks)) {
    it(`${name}: 400, connection closed, the hidden request never runs`, async () => {
      const r = await rawExchange(server.port, request + hidden);
      assert.match(r.text, /^HTTP\/1\.1 400 /, `${name}: ${JSON.stringify(r.text.slice(0, 300))}`);
      // (libmicrohttpd answers an unparsable Content-Length itself, and 0.9.75 writes that
      // answer's head twice: still a 400 and nothing run)
      assert.ok(r.statuses.every((st) => / 400 /.test(st)), `${name}: ${r.statuses.join(' | ')}`);
      assert.doesNotMatch(r.text, /"result"/, `${name}: the hidden request ran`);
      assert.ok(r.closedByServer, `${name}: the connection stayed open`);
    });
  }

  it('a normal request is still served, and so are the lenient-but-canonical forms', async () => {
    assert.ok(await good(server));
    for (const request of [
      withBody(['Host: 127.0.0.1'], { target: '/mcp?x=%41' }), // a query may carry escapes
      withBody(['Host: 127.0.0.1', 'X-Empty:', 'X-Blank:   ', 'X-Tab:\tv\t', 'X-Tight:v', 'X-Obs: caf\xe9']),
      withBody(['Host: 127.0.0.1', 'Cookie: a=1; b="2"', 'Authorization: Basic eDp5']),
      withBody(['Host: 127.0.0.1', `X-Big: ${'a'.repeat(6000)}`, `X-Big2: ${'b'.repeat(3000)}`]), // the read buffer grows
      `POST /mcp HTTP/1.0\r\n${common}Content-Length: ${LEN}\r\n\r\n${body}`, // HTTP/1.0: no Host
      `${head(['Host: 127.0.0.1', 'Transfer-Encoding: Chunked'])}\r\n${LEN.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    ]) {
      const r = await rawExchange(server.port, request, { untilAnswers: 1 });
      assert.match(r.text, /^HTTP\/1\.1 200 /, JSON.stringify(r.text.slice(0, 300)));
      assert.match(r.text, /"structuredContent"/);
    }
  });

  it('two requests on one connection, both valid: both answered (keep-alive untouched)', async () => {
    const r = await rawExchange(server.port, hidden + hidden, { untilAnswers: 2 });
    assert.equal(r.statuses.length, 2, r.text.slice(0, 400));
    assert.ok(r.statuses.every((s) => / 200 /.test(s)), r.statuses.join(' | '));
  });
});
