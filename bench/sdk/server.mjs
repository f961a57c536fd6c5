// server.mjs — the official TypeScript MCP SDK server that `make bench` drives beside luamcp
// (bench/sdk/compare.sh). It is written the way the SDK documents a stateless Streamable HTTP
// server: createMcpExpressApp, and per POST a new McpServer and a new
// StreamableHTTPServerTransport (sessionIdGenerator undefined, enableJsonResponse true; the
// SDK refuses to reuse a stateless transport across requests).
//
// Tools: `echo`, the same name, title, description, input schema, annotations and answer as
// scripts/echo.lua; with --slow also `slow`, which GETs the URL it is given (127.0.0.1 only)
// and returns {"status": <code>}, for bench/concurrency.mjs.
//
// Auth, as luamcp does it: the SDK's requireBearerAuth middleware with a verifier built on
// jose (createRemoteJWKSet + jwtVerify) against the JWKS of luamcp's --dev issuer, checking
// the RS256 signature, iss, aud (the resource), exp/nbf/iat with luamcp's 60 s leeway and the
// typ header (JWT or at+jwt, when present); then the same scope rule as policies/default.lua:
// a tools/call of echo needs mcp:tools, else 403 insufficient_scope. No verification cache
// (jwtVerify checks the signature on every request).
//
//   node server.mjs --dev-key-file DEV.json [--port 0] [--workers N] [--slow] [--no-auth]
//                   [--ajv-per-request]
//
// DEV.json is the key file luamcp's --dev issuer writes (auth.dev_key_file): its "issuer" and
// "resource" give iss and aud, and the JWKS is fetched from <issuer>/.well-known/jwks.json,
// which that luamcp serves. Prints "listening on port N" once it accepts connections.
// --workers N > 1 runs N processes with node:cluster sharing the port (Node runs JavaScript on
// one thread per process).

import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as z from 'zod/v4';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';

const { values: opt } = parseArgs({
  options: {
    'dev-key-file': { type: 'string' },
    port: { type: 'string', default: '0' },
    workers: { type: 'string', default: '1' },
    slow: { type: 'boolean', default: false },
    'no-auth': { type: 'boolean', default: false },
    'ajv-per-request': { type: 'boolean', default: false },
  },
});
const workers = Number(opt.workers);
const auth = !opt['no-auth'];
if (auth && !opt['dev-key-file']) {
  console.error('server.mjs: --dev-key-file is required unless --no-auth');
  process.exit(2);
}

// Same scope rule as policies/default.lua for the tools served here.
const TOOL_SCOPES = { echo: ['mcp:tools'] };
const LEEWAY_S = 60; // luamcp's auth.leeway_s default

function makeVerifier(keyFile) {
  const dev = JSON.parse(readFileSync(keyFile, 'utf8'));
  const jwks = createRemoteJWKSet(new URL(`${dev.issuer}/.well-known/jwks.json`));
  return {
    async verifyAccessToken(token) {
      let verified;
      try {
        verified = await jwtVerify(token, jwks, {
          issuer: dev.issuer,
          audience: dev.resource,
          algorithms: ['RS256'],
          clockTolerance: LEEWAY_S,
          requiredClaims: ['exp'],
        });
      } catch (e) {
        throw new InvalidTokenError(`The access token is not valid: ${e.code || e.message}`);
      }
      const typ = verified.protectedHeader.typ;
      if (typ !== undefined && !/^(jwt|at\+jwt|application\/at\+jwt)$/i.test(typ)) {
        throw new InvalidTokenError('The access token is not an access token');
      }
      const p = verified.payload;
      return {
        token,
        clientId: p.client_id ?? p.azp ?? '',
        scopes: typeof p.scope === 'string' ? p.scope.split(' ').filter(Boolean) : [],
        expiresAt: p.exp,
        extra: { sub: p.sub },
      };
    },
  };
}

// The per-tool scope check, before the MCP transport sees the request (as luamcp's policy
// runs before the tool): 403 with a WWW-Authenticate challenge naming the missing scopes.
function requireToolScopes(req, res, next) {
  const msgs = Array.isArray(req.body) ? req.body : [req.body];
  for (const m of msgs) {
    const need = m?.method === 'tools/call' ? TOOL_SCOPES[m.params?.name] : undefined;
    const missing = need?.filter((s) => !req.auth?.scopes.includes(s));
    if (missing?.length) {
      res.set('WWW-Authenticate',
        `Bearer error="insufficient_scope", scope="${need.join(' ')}", error_description="This tool needs more scopes"`);
      res.status(403).json({
        jsonrpc: '2.0', id: m.id ?? null, error: { code: -32600, message: 'Forbidden: insufficient scope' },
      });
      return;
    }
  }
  next();
}

const echoInput = z.strictObject({ text: z.string().describe('The text to send back.') });
const slowInput = z.object({ url: z.string().describe('The backend URL to GET.') });
const slowOutput = z.object({ status: z.number() });

// One JSON Schema validator for every per-request McpServer (ServerOptions.jsonSchemaValidator):
// left to its default, each McpServer builds its own Ajv instance, about a fifth of the CPU
// of a call in a profile, half the req/s. Sharing it is the SDK's best case, not its default;
// --ajv-per-request keeps the default.
const serverOptions = opt['ajv-per-request'] ? {} : { jsonSchemaValidator: new AjvJsonSchemaValidator() };

function buildServer() {
  const server = new McpServer({ name: 'sdk-bench', version: '1.0.0' }, serverOptions);
  server.registerTool('echo', {
    title: 'Echo',
    description: 'Returns the given text unchanged. Useful for checking that a client can reach '
      + 'the server and call a tool.',
    inputSchema: echoInput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async ({ text }) => ({ content: [{ type: 'text', text }] }));
  if (opt.slow) {
    server.registerTool('slow', {
      description: 'GETs a backend URL on 127.0.0.1 and returns its status',
      inputSchema: slowInput,
      outputSchema: slowOutput,
    }, async ({ url }) => {
      if (new URL(url).hostname !== '127.0.0.1') {
        return { content: [{ type: 'text', text: 'only 127.0.0.1 may be fetched' }], isError: true };
      }
      const r = await fetch(url);
      await r.arrayBuffer();
      const out = { status: r.status };
      return { content: [{ type: 'text', text: JSON.stringify(out) }], structuredContent: out };
    });
  }
  return server;
}

function serve() {
  const app = createMcpExpressApp(); // Host header validation for 127.0.0.1, express.json()
  const guards = auth
    ? [requireBearerAuth({ verifier: makeVerifier(opt['dev-key-file']) }), requireToolScopes]
    : [];
  app.post('/mcp', ...guards, async (req, res) => {
    const server = buildServer();
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    res.on('close', () => {
      transport.close();
      server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res, req.body);
    } catch (e) {
      if (!res.headersSent) {
        res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: 'Internal error' }, id: null });
      }
    }
  });
  const methodNotAllowed = (req, res) => {
    res.status(405).set('Allow', 'POST').json({
      jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null,
    });
  };
  app.get('/mcp', methodNotAllowed);
  app.delete('/mcp', methodNotAllowed);
  // backlog as large as luamcp's (libmicrohttpd listens with SOMAXCONN), for the 1,000
  // concurrent connections of the concurrency test
  const http = app.listen({ host: '127.0.0.1', port: Number(opt.port), backlog: 4096 }, () => {
    if (cluster.isPrimary) console.log(`listening on port ${http.address().port}`);
    else process.send({ port: http.address().port });
  });
}

if (workers > 1 && cluster.isPrimary) {
  // node:cluster: the primary accepts and hands connections to the workers in turn
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    const w = cluster.fork();
    w.on('message', (m) => {
      if (++ready === workers) console.log(`listening on port ${m.port} (${workers} workers)`);
    });
  }
  cluster.on('exit', (w, code, signal) => {
    if (signal !== 'SIGTERM') console.error(`worker ${w.process.pid} exited (${code ?? signal})`);
  });
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  serve();
}
