// A real OpenID provider for the sign-in tests: oidc-provider with its own login and
// consent pages (devInteractions: any password signs in the account named by login).
// Settings come in PROVIDER_CONFIG (JSON): {port, clients: [...], accounts: {login: claims}}.
// POST /__test/tamper {"aud": "...", ...} makes the token endpoint hand out ID tokens
// signed with the provider's own key but with those claims changed (the wrong-audience test).
import http from 'node:http';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.PROVIDER_CONFIG);
const issuer = `http://127.0.0.1:${config.port}`;
const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
const tamper = {};

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [jwk] },
  findAccount: async (ctx, id) => {
    const claims = config.accounts[id];
    return claims && { accountId: id, claims: async () => ({ ...claims }) };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['broker-test-cookies'] },
});

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && Object.keys(tamper).length && ctx.body?.id_token) {
    const claims = jose.decodeJwt(ctx.body.id_token);
    ctx.body = {
      ...ctx.body,
      id_token: await new jose.SignJWT({ ...claims, ...tamper })
        .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
        .sign(privateKey),
    };
  }
});

const app = provider.callback();
http
  .createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/__test/tamper') {
      let body = '';
      req.on('data', (chunk) => { body += chunk; });
      req.on('end', () => {
        Object.assign(tamper, JSON.parse(body || '{}'));
        res.writeHead(204).end();
      });
      return;
    }
    app(req, res);
  })
  .listen(config.port, '127.0.0.1', () => console.log(`provider ready at ${issuer}`));
