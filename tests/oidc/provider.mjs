// A real OpenID provider for the test suite: oidc-provider on a free localhost port, one static client,
// RS256 keys generated at start, one fixed account, and the package's built-in login/consent pages.
//
// Configured through the environment:
//   OIDC_TEST_CLIENT_ID, OIDC_TEST_CLIENT_SECRET   the static client
//   OIDC_TEST_REDIRECT_URIS                        comma-separated redirect URIs of the client
//   OIDC_TEST_ACCOUNT                              JSON claims of the one account ({"sub": ..., "email": ..., "groups": [...]})
// Prints one JSON line {"issuer": "http://127.0.0.1:<port>"} on stdout once it accepts connections.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const account = JSON.parse(process.env.OIDC_TEST_ACCOUNT);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: process.env.OIDC_TEST_CLIENT_ID,
        client_secret: process.env.OIDC_TEST_CLIENT_SECRET,
        redirect_uris: process.env.OIDC_TEST_REDIRECT_URIS.split(','),
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_post',
        id_token_signed_response_alg: 'RS256',
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username', 'name'],
      groups: ['groups'],
    },
    pkce: { required: () => true },
    // The one account; sign in on the development login page with its sub as the login (any password).
    findAccount: (ctx, id) => (id === account.sub ? { accountId: id, claims: () => account } : undefined),
    features: { devInteractions: { enabled: true } },
  });
  provider.on('server_error', (ctx, error) => console.error('server_error', error));
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
