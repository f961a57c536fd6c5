#!/usr/bin/env node
// Test-only OAuth 2.1 / OpenID Connect authorization server for the luamcp test suite,
// built on the npm package oidc-provider. Loopback only, plain HTTP, in-memory state.
//
//   node spec/idp/idp.mjs --port PORT [--issuer-path /] [--alg RS256|ES256]
//        [--shape default|cognito] [--resources URL1,URL2] [--default-resource URL]
//        [--ttl SECONDS] [--state-file FILE] [--max-lifetime SECONDS]
//
// When ready it prints exactly one JSON line on stdout (issuer, jwks_uri, token_endpoint, pid,
// ...) and runs until SIGTERM/SIGINT. Everything else it says goes to stderr.
// See README.md beside this file for the clients, scopes and test-only routes.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

// Stop cleanly on SIGTERM/SIGINT, even while still starting.
let server;
function shutdown(signal) {
  console.error(`idp: ${signal}, stopping`);
  if (!server?.listening) process.exit(0);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// oidc-provider prints some notices with console.info (stdout); stdout is reserved for the
// ready line, so everything console prints goes to stderr. The provider is imported after this.
console.log = console.info = (...args) => console.error(...args);
// Start-up phases go to stderr with their time, so a test that gives up waiting can tell where
// the IdP stalled.
const T0 = Date.now();
const phase = (what) => console.error(`idp: ${what} after ${Date.now() - T0} ms`);
const { default: Provider, errors } = await import('oidc-provider');
phase('oidc-provider loaded');

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE = `usage: node idp.mjs --port PORT [--issuer-path /] [--alg RS256|ES256]
       [--shape default|cognito] [--resources URL1,URL2] [--default-resource URL]
       [--ttl SECONDS] [--state-file FILE] [--max-lifetime SECONDS]`;

function parseArgs(argv) {
  const opts = {
    port: undefined,
    issuerPath: '/',
    alg: 'RS256',
    shape: 'default',
    resources: ['http://127.0.0.1:*/mcp', 'http://localhost:*/mcp'],
    defaultResource: undefined,
    ttl: 600,
    stateFile: undefined,
    maxLifetime: 1800,
  };
  const need = (i) => {
    if (i + 1 >= argv.length) die(`${argv[i]} needs a value\n${USAGE}`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i += 2) {
    const a = argv[i];
    switch (a) {
      case '--port': opts.port = Number(need(i)); break;
      case '--issuer-path': opts.issuerPath = need(i); break;
      case '--alg': opts.alg = need(i); break;
      case '--shape': opts.shape = need(i); break;
      case '--resources': opts.resources = need(i).split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--default-resource': opts.defaultResource = need(i); break;
      case '--ttl': opts.ttl = Number(need(i)); break;
      case '--state-file': opts.stateFile = need(i); break;
      case '--max-lifetime': opts.maxLifetime = Number(need(i)); break;
      case '-h': case '--help': process.stdout.write(`${USAGE}\n`); process.exit(0); break;
      default: die(`unknown argument ${a}\n${USAGE}`);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) die(`--port is required (0 = any free port)\n${USAGE}`);
  if (!['RS256', 'ES256'].includes(opts.alg)) die('--alg must be RS256 or ES256');
  if (!['default', 'cognito'].includes(opts.shape)) die('--shape must be default or cognito');
  if (!Number.isInteger(opts.ttl) || opts.ttl <= 0) die('--ttl must be a positive integer');
  if (!Number.isInteger(opts.maxLifetime) || opts.maxLifetime < 0) die('--max-lifetime must be an integer >= 0');
  if (!opts.issuerPath.startsWith('/')) die('--issuer-path must start with /');
  opts.issuerPath = opts.issuerPath.replace(/\/+$/, ''); // '' for the root
  return opts;
}

function die(msg) {
  process.stderr.write(`idp: ${msg}\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------------------------------------
// Scopes and clients

const RS_PREFIX = 'mcp.example.com/';
const TOOL_SCOPES = [
  'mcp:tools',
  'echo',
  `${RS_PREFIX}strava:get_athlete`,
  `${RS_PREFIX}strava:get_athlete_stats`,
  `${RS_PREFIX}strava:get_activities`,
  `${RS_PREFIX}strava:get_activity`,
  `${RS_PREFIX}strava:get_activity_streams`,
  `${RS_PREFIX}strava:get_segment`,
];
const OIDC_SCOPES = ['openid', 'offline_access'];

// Which tool scopes a static client may get. Clients not listed (agent-public, dynamically
// registered ones) may get every tool scope, or only those of their registered "scope".
const CLIENT_TOOL_SCOPES = {
  'svc-all': TOOL_SCOPES,
  'svc-echo': ['mcp:tools', 'echo'],
  'svc-none': [],
};

// RFC 8693 token exchange, for mcp.oauth.token_exchange: svc-all may trade an access token
// this IdP issued (the subject) for one with another audience (see tokenExchange below).
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

const CLIENTS = [
  {
    client_id: 'svc-all',
    client_secret: 'svc-all-secret',
    grant_types: ['client_credentials', TOKEN_EXCHANGE],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic', // client_secret_post works too
  },
  {
    client_id: 'svc-echo',
    client_secret: 'svc-echo-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    client_id: 'svc-none',
    client_secret: 'svc-none-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    client_id: 'agent-public',
    application_type: 'native', // loopback redirect URIs match on any port (RFC 8252)
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1/callback'],
    token_endpoint_auth_method: 'none',
  },
];

function allowedToolScopes(client) {
  if (client && Object.hasOwn(CLIENT_TOOL_SCOPES, client.clientId)) {
    return CLIENT_TOOL_SCOPES[client.clientId];
  }
  if (client?.scope) {
    const registered = new Set(client.scope.split(' '));
    return TOOL_SCOPES.filter((s) => registered.has(s));
  }
  return TOOL_SCOPES;
}

// In the Cognito shape only resource-server-prefixed scopes ("mcp.example.com/...") exist.
function shapeScopes(scopes) {
  return opts.shape === 'cognito' ? scopes.filter((s) => s.startsWith(RS_PREFIX)) : scopes;
}

// Resource indicators: exact URLs, or patterns where '*' stands for any run of characters
// other than '/', '?' and '#' (so 'http://127.0.0.1:*/mcp' is any port).
const resourcePatterns = opts.resources.map((r) => new RegExp(
  `^${r.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^/?#]*')}$`,
));
function resourceAllowed(resource) {
  return resourcePatterns.some((re) => re.test(resource));
}

// Without a resource parameter: --default-resource, else the first --resources entry without
// a wildcard; in the Cognito shape (whose clients never send one) a fixed stand-in, since the
// audience is removed anyway. Otherwise none, and the token is opaque (useless to luamcp).
const COGNITO_STANDIN_RESOURCE = 'https://mcp.example.com';
const defaultResourceValue = opts.defaultResource
  ?? opts.resources.find((r) => !r.includes('*'))
  ?? (opts.shape === 'cognito' ? COGNITO_STANDIN_RESOURCE : undefined);

// ---------------------------------------------------------------------------------------------
// Signing keys (private JWKs, newest first; keys[0] signs)

function thumbprint(jwk) {
  const members = jwk.kty === 'RSA'
    ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
    : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return crypto.createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

function generateKey(alg) {
  const { privateKey } = alg === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `${alg.toLowerCase()}-${thumbprint(jwk).slice(0, 16)}`, alg, use: 'sig' };
}

function publicJwk(jwk) {
  const { d, p, q, dp, dq, qi, oth, ...pub } = jwk;
  return pub;
}

let keys;
function loadState() {
  if (!opts.stateFile || !fs.existsSync(opts.stateFile)) return false;
  const state = JSON.parse(fs.readFileSync(opts.stateFile, 'utf8'));
  if (!Array.isArray(state.keys) || !state.keys.length) die(`${opts.stateFile}: no keys`);
  keys = state.keys;
  return true;
}

let ready; // the ready-line object, once listening
function saveState() {
  if (!opts.stateFile) return;
  const tmp = `${opts.stateFile}.${process.pid}.tmp`;
  fs.mkdirSync(path.dirname(path.resolve(opts.stateFile)), { recursive: true });
  fs.writeFileSync(tmp, `${JSON.stringify({ ...ready, signing_kid: keys[0].kid, keys }, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, opts.stateFile);
}

if (!loadState()) keys = [generateKey(opts.alg)];
phase('signing key ready');

// ---------------------------------------------------------------------------------------------
// The provider. Rebuilt (same configuration, new keys) on rotation: its keystore is fixed at
// construction. All its state lives in the module-wide memory adapter, so a rebuilt provider
// still knows every grant, session, interaction and registered client.

const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')];

const isAccessToken = (token) => token.kind === 'AccessToken' || token.kind === 'ClientCredentials';

function configuration() {
  const signing = keys[0];
  return {
    clients: CLIENTS,
    jwks: { keys },
    scopes: [...OIDC_SCOPES, ...TOOL_SCOPES],
    responseTypes: ['code'],
    claims: { openid: ['sub'] },
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: signing.alg,
    },
    cookies: { keys: COOKIE_KEYS },
    pkce: { required: () => true }, // S256 only
    clientBasedCORS: () => true,
    async findAccount(ctx, sub) {
      return { accountId: sub, async claims() { return { sub }; } };
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      registration: { enabled: true, initialAccessToken: false },
      resourceIndicators: {
        enabled: true,
        async defaultResource(ctx, client, oneOf) {
          return oneOf ?? defaultResourceValue;
        },
        useGrantedResource: () => true,
        async getResourceServerInfo(ctx, resourceIndicator, client) {
          if (resourceIndicator !== defaultResourceValue && !resourceAllowed(resourceIndicator)) {
            throw new errors.InvalidTarget(`resource ${resourceIndicator} is not served by this authorization server`);
          }
          const current = keys[0];
          return {
            scope: shapeScopes(allowedToolScopes(client)).join(' '),
            audience: resourceIndicator,
            accessTokenTTL: opts.ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: current.alg, kid: current.kid } },
          };
        },
      },
    },
    // Auto-consent: the grant always holds what the request asks for (within what the resource
    // servers allow this client), so after the login form the flow goes straight to the code.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!grant) {
        grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      }
      const requested = oidc.requestParamScopes;
      const oidcScopes = OIDC_SCOPES.filter((s) => requested.has(s));
      if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
      if (requested.has('openid')) grant.addOIDCClaims(['sub']);
      for (const [indicator, rs] of Object.entries(oidc.resourceServers ?? {})) {
        const scopes = [...requested].filter((s) => rs.scopes.has(s));
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      await grant.save();
      return grant;
    },
    async extraTokenClaims(ctx, token) {
      if (opts.shape !== 'cognito' || !isAccessToken(token)) return undefined;
      return {
        token_use: 'access',
        version: 2,
        ...(token.accountId ? { username: token.accountId } : {}),
      };
    },
    formats: {
      customizers: {
        async jwt(ctx, token, jwt) {
          if (opts.shape !== 'cognito') return;
          jwt.header = { typ: 'JWT' };
          // Cognito access tokens carry no "aud". oidc-provider refuses to sign a JWT access token
          // whose payload has no truthy "aud" (checked right after this hook), so the value stays
          // but is made non-enumerable: JSON.stringify, hence the signed payload, leaves it out.
          Object.defineProperty(jwt.payload, 'aud', {
            value: jwt.payload.aud, enumerable: false, writable: true, configurable: true,
          });
        },
      },
    },
    ttl: {
      AccessToken: opts.ttl,
      ClientCredentials: opts.ttl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 86400,
      Interaction: 600,
      Session: 3600,
      Grant: 86400,
    },
    async renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  };
}

let provider;
let providerHandler;
let issuer;
// ---------------------------------------------------------------------------------------------
// Token exchange (RFC 8693). oidc-provider has no built-in grant for it, so this is a small one:
// the subject_token must be an access token signed by one of our keys, unexpired, issued by us;
// the new token keeps its sub, names the exchanging client in "act", and is for the requested
// audience (or resource). Its claims are printed to stderr so tests can see what was traded.

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const sigOpts = (alg) => (alg === 'ES256' ? { dsaEncoding: 'ieee-p1363' } : {});

function verifyOwnJwt(token) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) return null;
  let header;
  let payload;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    payload = JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch {
    return null;
  }
  const key = keys.find((k) => k.kid === header.kid && k.alg === header.alg);
  if (!key) return null;
  const pub = crypto.createPublicKey({ key: publicJwk(key), format: 'jwk' });
  const ok = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), { key: pub, ...sigOpts(key.alg) },
    Buffer.from(parts[2], 'base64url'));
  if (!ok || payload.iss !== issuer || !(payload.exp > Date.now() / 1000)) return null;
  return payload;
}

function signJwt(payload) {
  const key = keys[0];
  const head = b64u(JSON.stringify({ alg: key.alg, typ: 'at+jwt', kid: key.kid }));
  const body = b64u(JSON.stringify(payload));
  const priv = crypto.createPrivateKey({ key, format: 'jwk' });
  const sig = crypto.sign('sha256', Buffer.from(`${head}.${body}`), { key: priv, ...sigOpts(key.alg) });
  return `${head}.${body}.${b64u(sig)}`;
}

async function tokenExchange(ctx) {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== 'urn:ietf:params:oauth:token-type:access_token') {
    throw new errors.InvalidRequest('subject_token_type must be urn:ietf:params:oauth:token-type:access_token');
  }
  const subject = verifyOwnJwt(params.subject_token);
  if (!subject) throw new errors.InvalidGrant('subject_token is not a valid access token of this issuer');
  const audience = params.audience || params.resource;
  if (!audience) throw new errors.InvalidTarget('audience or resource is required');
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer,
    sub: subject.sub,
    aud: audience,
    client_id: client.clientId,
    act: { sub: client.clientId },
    ...(params.scope ? { scope: params.scope } : {}),
    iat: now,
    exp: now + opts.ttl,
    jti: crypto.randomUUID(),
  };
  console.error(`idp: token exchange ${JSON.stringify({ subject_jti: subject.jti, ...claims })}`);
  ctx.body = {
    access_token: signJwt(claims),
    issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    token_type: 'Bearer',
    expires_in: opts.ttl,
  };
}

function buildProvider() {
  provider = new Provider(issuer, configuration());
  provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange,
    ['subject_token', 'subject_token_type', 'audience', 'resource', 'scope', 'requested_token_type']);
  provider.proxy = false;
  provider.on('server_error', (ctx, err) => console.error('idp: server_error', err));
  providerHandler = provider.callback();
}

// ---------------------------------------------------------------------------------------------
// HTTP front: test-only routes, RFC 8414 path-inserted discovery, then the provider.

function sendJson(res, status, body) {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function currentJwks() {
  return { keys: keys.map(publicJwk) };
}

function rotate(params) {
  const alg = params.get('alg') || keys[0].alg;
  if (!['RS256', 'ES256'].includes(alg)) return [400, { error: 'alg must be RS256 or ES256' }];
  const drop = ['1', 'true', 'yes'].includes(params.get('drop_old') ?? '');
  const previous = keys.map((k) => k.kid);
  const key = generateKey(alg);
  keys = drop ? [key] : [key, ...keys];
  buildProvider();
  saveState();
  console.error(`idp: rotated to ${key.kid} (${alg})${drop ? ', old keys dropped' : ''}`);
  return [200, {
    kid: key.kid, alg, previous_kids: previous, dropped: drop, jwks: currentJwks(),
  }];
}

function testRoute(req, res, route, params) {
  if (route === '/rotate' && req.method === 'POST') {
    const [status, body] = rotate(params);
    return sendJson(res, status, body);
  }
  if (route === '/jwks' && req.method === 'GET') return sendJson(res, 200, currentJwks());
  if (route === '/info' && req.method === 'GET') {
    return sendJson(res, 200, { ...ready, signing_kid: keys[0].kid, kids: keys.map((k) => k.kid) });
  }
  return sendJson(res, 404, { error: 'not_found', routes: ['POST /test/rotate[?drop_old=1][&alg=ES256]', 'GET /test/jwks', 'GET /test/info'] });
}

function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  const p = url.pathname;
  const base = opts.issuerPath; // '' or '/tenant'

  for (const prefix of new Set(['', base])) {
    if (p.startsWith(`${prefix}/test/`)) return testRoute(req, res, p.slice(prefix.length + 5), url.searchParams);
  }

  // RFC 8414 section 3 (and the OIDC variant some clients try): for an issuer with a path the
  // metadata lives at /.well-known/<name><path>. Rewrite to the provider's own route.
  if (base) {
    for (const name of ['oauth-authorization-server', 'openid-configuration']) {
      if (p === `/.well-known/${name}${base}`) {
        req.originalUrl = `${base}/.well-known/${name}`;
        req.url = `/.well-known/${name}${url.search}`;
        return providerHandler(req, res);
      }
    }
  }

  if (!base || p === base || p.startsWith(`${base}/`)) {
    req.originalUrl = req.url;
    req.url = req.url.slice(base.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
    return providerHandler(req, res);
  }
  return sendJson(res, 404, { error: 'not_found', issuer });
}

server = http.createServer((req, res) => {
  try {
    handle(req, res);
  } catch (err) {
    console.error('idp: request failed', err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err?.message ?? err) });
    else res.destroy();
  }
});
server.keepAliveTimeout = 2000;

server.on('error', (err) => die(`cannot listen on 127.0.0.1:${opts.port}: ${err.message}`));
server.listen(opts.port, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}${opts.issuerPath}`;
  buildProvider();
  ready = {
    issuer,
    jwks_uri: provider.urlFor('jwks'),
    token_endpoint: provider.urlFor('token'),
    authorization_endpoint: provider.urlFor('authorization'),
    registration_endpoint: provider.urlFor('registration'),
    discovery: `${issuer}/.well-known/openid-configuration`,
    port,
    alg: keys[0].alg,
    shape: opts.shape,
    kid: keys[0].kid,
    pid: process.pid,
  };
  saveState();
  phase('listening');
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  // A guard against IdPs orphaned by a crashed test: gone after --max-lifetime (0 = never).
  if (opts.maxLifetime) setTimeout(() => shutdown('max-lifetime'), opts.maxLifetime * 1000).unref();
});
