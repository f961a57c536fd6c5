// Browserless OAuth helpers for tests against spec/idp/idp.mjs (plain fetch, no dependencies).
//
//   import { authorizationCodeToken, clientCredentialsToken } from '.../spec/idp/authcode.mjs';
//   const tok = await authorizationCodeToken({ issuer, resource, scope: 'mcp:tools echo', login: 'alice' });
//   tok.access_token, tok.token_type, tok.expires_in, tok.scope, (tok.id_token, tok.refresh_token)
//
// authorizationCodeToken runs the whole authorization code + PKCE (S256) flow: GET the
// authorization endpoint, follow redirects to the devInteractions login page, POST its form
// with the given login (any string; it becomes "sub"), let the IdP's auto-consent pass, read the
// code from the redirect to redirect_uri (nothing needs to listen there), and POST /token.

import * as crypto from 'node:crypto';

const discoveryCache = new Map();

// The issuer's metadata (/.well-known/openid-configuration), cached per issuer.
export async function discover(issuer) {
  const base = issuer.replace(/\/+$/, '');
  if (!discoveryCache.has(base)) {
    const res = await fetch(`${base}/.well-known/openid-configuration`);
    if (!res.ok) throw new Error(`discovery of ${base} failed: HTTP ${res.status}`);
    discoveryCache.set(base, await res.json());
  }
  return discoveryCache.get(base);
}

// A tiny cookie jar: one host, so names are enough; paths are ignored.
class CookieJar {
  #cookies = new Map();

  take(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k, v] = a.split('=').map((x) => x.trim().toLowerCase());
        return (k === 'max-age' && Number(v) <= 0) || (k === 'expires' && Date.parse(v) < Date.now());
      });
      if (expired || value === '') this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header() {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

function htmlUnescape(s) {
  return s.replace(/&quot;/g, '"').replace(/&#39;|&#x27;/g, "'").replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>').replace(/&#x2F;|&#47;/g, '/').replace(/&amp;/g, '&');
}

async function tokenRequest(tokenEndpoint, params, { clientId, clientSecret }) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  const body = new URLSearchParams(params);
  if (clientSecret !== undefined) {
    const enc = (s) => encodeURIComponent(s);
    headers.authorization = `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}`;
  } else {
    body.set('client_id', clientId);
  }
  const res = await fetch(tokenEndpoint, { method: 'POST', headers, body });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(`token request failed: HTTP ${res.status} ${json.error ?? ''} ${json.error_description ?? ''}`.trim());
    err.status = res.status;
    err.body = json;
    throw err;
  }
  return json;
}

// client_credentials grant. Returns the token response; throws (err.status, err.body) on errors.
export async function clientCredentialsToken({
  issuer, clientId, clientSecret, scope, resource,
}) {
  const { token_endpoint: tokenEndpoint } = await discover(issuer);
  const params = { grant_type: 'client_credentials' };
  if (scope) params.scope = scope;
  if (resource) params.resource = resource;
  return tokenRequest(tokenEndpoint, params, { clientId, clientSecret });
}

// authorization_code + PKCE. Options:
//   issuer (required), resource (the MCP server URL; the token's aud), scope (space-delimited),
//   login (the user; default "alice"), clientId (default "agent-public"), clientSecret (for a
//   confidential, e.g. dynamically registered, client), redirectUri (default
//   http://127.0.0.1/callback), extraParams (more authorization request parameters).
// Returns the token response (access_token, token_type, expires_in, scope, maybe id_token and
// refresh_token) with a non-enumerable `code_verifier` and `code` for tests that want them.
export async function authorizationCodeToken({
  issuer,
  resource,
  scope = 'mcp:tools',
  login = 'alice',
  clientId = 'agent-public',
  clientSecret,
  redirectUri = 'http://127.0.0.1/callback',
  extraParams = {},
} = {}) {
  if (!issuer) throw new TypeError('issuer is required');
  const meta = await discover(issuer);
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const state = crypto.randomBytes(12).toString('base64url');

  const auth = new URL(meta.authorization_endpoint);
  const q = {
    client_id: clientId,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...extraParams,
  };
  if (resource) q.resource = resource;
  for (const [k, v] of Object.entries(q)) auth.searchParams.set(k, v);

  const jar = new CookieJar();
  const callback = new URL(redirectUri);
  let url = auth.href;
  let method = 'GET';
  let body;
  const loginsDone = new Set();

  for (let hop = 0; hop < 20; hop++) {
    const back = new URL(url);
    if (back.protocol === callback.protocol && back.host === callback.host && back.pathname === callback.pathname) {
      const err = back.searchParams.get('error');
      if (err) {
        const e = new Error(`authorization failed: ${err} ${back.searchParams.get('error_description') ?? ''}`.trim());
        e.error = err;
        throw e;
      }
      if (back.searchParams.get('state') !== state) throw new Error('authorization response: state mismatch');
      const iss = back.searchParams.get('iss');
      if (iss && iss !== meta.issuer) throw new Error(`authorization response: iss ${iss} is not ${meta.issuer}`);
      const code = back.searchParams.get('code');
      if (!code) throw new Error(`authorization response without code: ${url}`);

      const params = {
        grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier,
      };
      if (resource) params.resource = resource;
      const tok = await tokenRequest(meta.token_endpoint, params, { clientId, clientSecret });
      Object.defineProperty(tok, 'code_verifier', { value: verifier, enumerable: false });
      Object.defineProperty(tok, 'code', { value: code, enumerable: false });
      return tok;
    }

    const headers = { cookie: jar.header(), accept: 'text/html,application/json' };
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    jar.take(res);
    method = 'GET';
    body = undefined;

    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).href;
      continue;
    }
    const text = await res.text();
    if (res.status !== 200) throw new Error(`authorization flow: HTTP ${res.status} at ${url}: ${text.slice(0, 500)}`);

    // An interaction page: the login form, or (if auto-consent ever did not cover it) consent.
    const action = text.match(/<form[^>]*action="([^"]+)"[^>]*method="post"/i)?.[1];
    const prompt = text.match(/name="prompt" value="([^"]+)"/)?.[1];
    if (!action || !prompt) throw new Error(`authorization flow: unexpected page at ${url}: ${text.slice(0, 500)}`);
    const form = new URLSearchParams({ prompt });
    if (prompt === 'login') {
      if (loginsDone.has(url)) throw new Error('authorization flow: login was not accepted');
      loginsDone.add(url);
      form.set('login', login);
      form.set('password', 'any');
    }
    url = new URL(htmlUnescape(action), url).href;
    method = 'POST';
    body = form.toString();
  }
  throw new Error('authorization flow: too many redirects');
}
