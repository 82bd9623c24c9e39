// A real OpenID Connect provider (panva/oidc-provider, OpenID Certified) on loopback, for the SSO
// tests and for trying SSO locally (README). Development and tests only.
//
// Environment:
//   OIDC_PORT     port to listen on (0 or unset: any free port)
//   OIDC_HOST     host name in the issuer (default 127.0.0.1)
//   OIDC_CLIENTS  JSON list of {client_id, client_secret, redirect_uris}
// Prints `READY <issuer>` on stdout once it listens.
//
// Sign-in is automatic: the account is the authorization request's `login_hint` (the e-mail the
// portal's login page asked for), so the tests need no login form. Its claims: `email` = the
// account, `email_verified` false when the address starts with `unverified`, true otherwise.
//
// Test control (loopback only): `POST /_test/tamper?iss=..&aud=..&exp_offset=..&foreign_key=1`
// rewrites the next ID token the token endpoint issues (re-signed with the provider's own key,
// or with a key it never published when foreign_key=1), so the tests can show the portal refusing
// a correctly signed token with a wrong issuer, audience or expiry, and a token it cannot verify.
import http from 'node:http';
import { randomUUID } from 'node:crypto';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const host = process.env.OIDC_HOST || '127.0.0.1';
const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]').map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  redirect_uris: c.redirect_uris,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}));

async function signingKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

const key = await signingKey();
const foreignKey = await signingKey();
let tamper = null;

const server = http.createServer();
await new Promise((resolve) => { server.listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', resolve); });
const issuer = `http://${host}:${server.address().port}`;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [key] },
  cookies: { keys: [randomUUID()] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Entra puts the e-mail in the ID token; so does this provider (not only at userinfo).
  conformIdTokenClaims: false,
  // Every client must use PKCE: the portal's happy path proves it sends a code challenge.
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: id, email_verified: !id.startsWith('unverified'), name: id.split('@')[0] };
      },
    };
  },
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/_test/tamper' && ctx.method === 'POST') {
    tamper = Object.fromEntries(new URLSearchParams(ctx.querystring));
    ctx.status = 204;
    return;
  }
  const interaction = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (interaction && ctx.method === 'GET') {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    let result;
    if (details.prompt.name === 'login') {
      const accountId = details.params.login_hint;
      result = accountId
        ? { login: { accountId } }
        : { error: 'login_required', error_description: 'no login_hint' };
    } else {
      const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      result = { consent: { grantId: await grant.save() } };
    }
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true }));
    return;
  }
  await next();
  if (tamper && ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token) {
    const change = tamper;
    tamper = null;
    const payload = jose.decodeJwt(ctx.body.id_token);
    if (change.iss) payload.iss = change.iss;
    if (change.aud) payload.aud = change.aud;
    if (change.exp_offset) {
      const now = Math.floor(Date.now() / 1000);
      payload.exp = now + Number(change.exp_offset);
      payload.iat = Math.min(payload.iat, payload.exp - 60);
    }
    const signer = change.foreign_key ? foreignKey : key;
    ctx.body.id_token = await new jose.SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
      .sign(await jose.importJWK(signer, 'RS256'));
  }
});

server.on('request', provider.callback());
process.stdout.write(`READY ${issuer}\n`);
