// A real OpenID provider for the single sign-on tests: panva's certified
// `oidc-provider` (pinned in package.json beside this file), on 127.0.0.1
// over plain HTTP, with test clients and users and its own minimal pages: a
// login form (`#username`, `#password`, button `#login`) and consent given
// by itself. The Rust side is control-server/tests/common/oidc.rs.
//
// By hand:
//   npm ci --prefix tests/oidc          # once (scripts/test.sh does it)
//   node tests/oidc/provider.mjs --port 9000 --config my.json
//   node tests/oidc/provider.mjs --config-json '{"clients":[...],"users":[...]}'
// It prints one line, {"issuer":"http://127.0.0.1:9000","port":9000}, when it
// serves (port 0 or none: any free port), then
// http://127.0.0.1:9000/.well-known/openid-configuration is its discovery
// document. It exits when its standard input closes (Ctrl-D by hand; the
// tests' end, killed or not), so keep stdin open: `sleep infinity | node …`.
//
// The configuration (a JSON file, or the JSON itself; keys left out take the
// defaults below):
//   {
//     "port": 0,
//     "clients": [{ "client_id": "ccgate", "client_secret": "…",
//                   "redirect_uris": ["http://127.0.0.1:8080/auth/oidc/callback"],
//                   "post_logout_redirect_uris": [],            // optional
//                   "token_endpoint_auth_method": "client_secret_basic" }], // or _post
//     "users": [{ "sub": "alice", "email": "alice@example.test", "name": "Alice",
//                 "password": "…", "groups": ["ccgate-admins"] }],
//     "groups_claim": "groups",   // the claim's name
//     "groups_always": false,     // true: in every ID token; false: with scope `groups`
//     "id_token_ttl": 3600, "access_token_ttl": 3600, "refresh_token_ttl": 86400,
//     "session_ttl": 3600, "interaction_ttl": 600, "code_ttl": 60,   // seconds
//     "clock_offset_secs": 0      // the provider's clock against the real one
//   }
// A user signs in with their sub or their e-mail. The authorization-code flow
// requires PKCE (S256) for every client. Scopes: openid, email, profile,
// groups, offline_access; the ID token carries the claims of the scopes
// granted (email, email_verified, name, the groups). A refresh token is issued
// to every client allowed the refresh_token grant (the default), with or
// without offline_access. RS256 keys are made at each start.
//
// While it runs, each line on stdin is a command, answered by one line on
// stdout ({"ok":true} or {"ok":false,"error":"…"}):
//   {"op":"upsert_user","user":{…}}          add a user or replace one (by sub)
//   {"op":"remove_user","sub":"alice"}       the user is gone: refreshes fail
//   {"op":"set_clock_offset","secs":-600}    tokens issued from now on are dated so
// (keep |offset| below interaction_ttl and session_ttl, or a browser drops the
// provider's cookies as expired).
//   {"op":"set_id_token_tamper","mode":"audience"}   the token endpoint's answers
// (authorization_code and refresh_token grants) carry a bad ID token from now
// on, made from the one issued; "none" (the start) stops it. The modes:
//   signature  sub "forged", email "forged@example.test", the original
//              signature kept: it no longer matches
//   audience   re-signed with the provider's key (same kid), aud "someone-else"
//   expired    re-signed, iat 2 h and exp 1 h before the provider's clock
//   issuer     re-signed, iss "http://127.0.0.1:1/evil"
//   nonce      re-signed, nonce "replayed-nonce"

import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createInterface } from 'node:readline';

import Provider from 'oidc-provider';

// stdout carries only this program's protocol lines; oidc-provider prints its
// notices with console.info, so everything else goes to stderr.
const protocolOut = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
console.log = console.error;
console.info = console.error;

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      i += 1;
      return argv[i];
    };
    if (arg === '--port') args.port = Number(value());
    else if (arg === '--config') args.config = JSON.parse(readFileSync(value(), 'utf8'));
    else if (arg === '--config-json') args.config = JSON.parse(value());
    else throw new Error(`unknown argument ${arg} (expected --port N, --config FILE, --config-json JSON)`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const config = {
  port: 0,
  clients: [],
  users: [],
  groups_claim: 'groups',
  groups_always: false,
  id_token_ttl: 3600,
  access_token_ttl: 3600,
  refresh_token_ttl: 86400,
  session_ttl: 3600,
  interaction_ttl: 600,
  code_ttl: 60,
  clock_offset_secs: 0,
  ...(args.config ?? {}),
};
if (args.port !== undefined) config.port = args.port;

// The provider's clock: oidc-provider, jose and the cookies read Date.now().
let clockOffsetMs = Number(config.clock_offset_secs) * 1000;
const realNow = Date.now;
Date.now = () => realNow() + clockOffsetMs;

const users = new Map();
function upsertUser(user) {
  if (typeof user?.sub !== 'string' || !user.sub) throw new Error('a user needs a sub');
  users.set(user.sub, {
    sub: user.sub,
    email: user.email,
    name: user.name,
    password: user.password ?? '',
    groups: user.groups ?? [],
  });
}
config.users.forEach(upsertUser);
const userByLogin = (login) => users.get(login)
  ?? [...users.values()].find((user) => user.email !== undefined && user.email === login);

const groupsClaim = config.groups_claim;
const claims = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name'],
  groups: [groupsClaim],
};
if (config.groups_always) claims.openid.push(groupsClaim);

const clients = config.clients.map((client) => ({
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...client,
}));

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `test-${randomBytes(6).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

// set_id_token_tamper: what becomes of the ID tokens the token endpoint hands
// out. Re-signed ones are signed with `privateKey` (RS256: RSASSA-PKCS1-v1_5
// with SHA-256, node's default padding for RSA keys) under their own header.
const idTokenTampers = new Set(['none', 'signature', 'audience', 'expired', 'issuer', 'nonce']);
let idTokenTamper = 'none';
const base64urlJson = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const decodeJwtPart = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
function signJwt(header, claims) {
  const input = `${base64urlJson(header)}.${base64urlJson(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
}
function tamperIdToken(idToken, mode) {
  const [headerPart, claimsPart, signaturePart] = idToken.split('.');
  const header = decodeJwtPart(headerPart);
  const claims = decodeJwtPart(claimsPart);
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'signature':
      return `${headerPart}.${base64urlJson({ ...claims, sub: 'forged', email: 'forged@example.test' })}.${signaturePart}`;
    case 'audience': return signJwt(header, { ...claims, aud: 'someone-else' });
    case 'expired': return signJwt(header, { ...claims, iat: now - 7200, exp: now - 3600 });
    case 'issuer': return signJwt(header, { ...claims, iss: 'http://127.0.0.1:1/evil' });
    case 'nonce': return signJwt(header, { ...claims, nonce: 'replayed-nonce' });
    default: return idToken;
  }
}

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function page(res, status, title, body) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>
`);
}

function loginPage(res, uid, { status = 200, error, username = '' } = {}) {
  const message = error ? `<p id="error" role="alert">${escapeHtml(error)}</p>\n` : '';
  page(res, status, 'Sign in to the test provider', `${message}<form id="login-form" method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label for="username">Username or e-mail</label>
<input id="username" name="username" type="text" value="${escapeHtml(username)}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password">
<button id="login" type="submit">Sign in</button>
</form>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

let provider;
let providerCallback;

// GET /interaction/:uid shows the login form, or gives consent by itself;
// POST /interaction/:uid/login checks the password.
async function interaction(req, res) {
  const path = new URL(req.url, 'http://127.0.0.1').pathname;
  const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(path);
  if (!match) return page(res, 404, 'Not found', '');
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (error) {
    return page(res, 400, 'This sign-in has expired or is unknown', `<p id="error">${escapeHtml(error.message)}</p>`);
  }
  const { uid, prompt, params, grantId, session } = details;
  if (uid !== match[1]) return page(res, 400, 'This sign-in does not match', '');

  if (match[2]) {
    if (req.method !== 'POST') return page(res, 405, 'Method not allowed', '');
    const form = await readForm(req);
    const username = form.get('username') ?? '';
    const user = userByLogin(username);
    if (!user || !user.password || user.password !== (form.get('password') ?? '')) {
      return loginPage(res, uid, { status: 401, error: 'Wrong username or password.', username });
    }
    return provider.interactionFinished(req, res, { login: { accountId: user.sub } }, { mergeWithLastSubmission: false });
  }

  if (req.method !== 'GET') return page(res, 405, 'Method not allowed', '');
  if (prompt.name === 'login') return loginPage(res, uid);
  if (prompt.name === 'consent') {
    // No consent page: everything asked for is granted.
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const { details: missing } = prompt;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const consentGrantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId: consentGrantId } }, { mergeWithLastSubmission: true });
  }
  return page(res, 400, `Unknown prompt ${prompt.name}`, '');
}

const server = http.createServer((req, res) => {
  if (!providerCallback) {
    res.writeHead(503).end();
    return;
  }
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((error) => {
      console.error('interaction failed:', error);
      if (!res.headersSent) page(res, 500, 'Internal error', `<p id="error">${escapeHtml(error.message)}</p>`);
      else res.end();
    });
    return;
  }
  providerCallback(req, res);
});

server.listen(config.port, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    claims,
    conformIdTokenClaims: false,
    async findAccount(_ctx, sub) {
      const user = users.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: user.email,
            email_verified: user.email !== undefined,
            name: user.name,
            [groupsClaim]: user.groups,
          };
        },
      };
    },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
    },
    interactions: { url: (_ctx, interactionEntity) => `/interaction/${interactionEntity.uid}` },
    pkce: { required: () => true },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: Number(config.access_token_ttl),
      AuthorizationCode: Number(config.code_ttl),
      IdToken: Number(config.id_token_ttl),
      RefreshToken: Number(config.refresh_token_ttl),
      Interaction: Number(config.interaction_ttl),
      Session: Number(config.session_ttl),
      Grant: Number(config.session_ttl),
      ClientCredentials: 600,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
      PreAuthorizedCode: 600,
    },
  });
  // After the token endpoint has answered (ctx.body is still its object):
  // the ID token swapped for a bad one, while set_id_token_tamper says so.
  provider.use(async (ctx, next) => {
    await next();
    if (idTokenTamper === 'none' || ctx.method !== 'POST' || ctx.path !== '/token') return;
    if (ctx.status !== 200 || typeof ctx.body?.id_token !== 'string') return;
    ctx.body = { ...ctx.body, id_token: tamperIdToken(ctx.body.id_token, idTokenTamper) };
  });
  provider.on('server_error', (_ctx, error) => console.error('oidc-provider server_error:', error));
  providerCallback = provider.callback();
  protocolOut({ issuer, port });
});
server.on('error', (error) => {
  console.error(`cannot listen on 127.0.0.1:${config.port}: ${error.message}`);
  process.exit(1);
});

// Commands on stdin; its end (the test is over, or was killed) ends the provider.
const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  if (!line.trim()) return;
  try {
    const command = JSON.parse(line);
    switch (command.op) {
      case 'upsert_user': upsertUser(command.user); break;
      case 'remove_user': users.delete(command.sub); break;
      case 'set_clock_offset': clockOffsetMs = Number(command.secs) * 1000; break;
      case 'set_id_token_tamper':
        if (!idTokenTampers.has(command.mode)) {
          throw new Error(`unknown mode ${command.mode} (expected one of ${[...idTokenTampers].join(', ')})`);
        }
        idTokenTamper = command.mode;
        break;
      default: throw new Error(`unknown op ${command.op}`);
    }
    protocolOut({ ok: true });
  } catch (error) {
    protocolOut({ ok: false, error: error.message });
  }
});
commands.on('close', () => process.exit(0));
