/**
 * Bearer tokens verified per tenant (issue 17, item 10), with real signed tokens against a JWKS endpoint served here
 * over HTTP, as an identity provider publishes it: good, wrong issuer, wrong audience, wrong signature, expired, no
 * user claim, and a key set that cannot be read.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthUnavailableError, type Authenticator, type Credentials } from '../backends/auth.ts';
import type { BearerConfig } from '../config.ts';
import { tenantAuthenticator, verifiedBearerUser } from './bearer.ts';

let server: Server;
let config: BearerConfig;
let signingKey: CryptoKey;
let otherKey: CryptoKey;
let jwksRequests = 0;

beforeAll(async () => {
  const pair = await generateKeyPair('RS256');
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('RS256')).privateKey;
  const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  server = createServer((_, res) => {
    jwksRequests++;
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  config = {
    jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
    issuer: 'https://idp.example.test/',
    audience: 'activesync-edge',
    userClaim: 'preferred_username',
  };
});

afterAll(() => server?.close());

function token(
  o: { claims?: Record<string, unknown>; key?: CryptoKey; iss?: string; aud?: string; exp?: number | string } = {},
): Promise<string> {
  return new SignJWT({ preferred_username: 'alice@example.test', email: 'mallory@example.test', ...o.claims })
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .setIssuer(o.iss ?? config.issuer)
    .setAudience(o.aud ?? config.audience)
    .setIssuedAt()
    .setExpirationTime(o.exp ?? '5m')
    .sign(o.key ?? signingKey);
}

describe('verifiedBearerUser', () => {
  it('takes the configured claim of a token the identity provider signed, for this issuer and audience', async () => {
    // The email claim (which some providers let users set) names someone else: only the configured claim counts.
    expect(await verifiedBearerUser(config, await token())).toBe('alice@example.test');
    expect(jwksRequests).toBeGreaterThan(0);
  });

  it('refuses another issuer, another audience, another key, an expired token and one without the claim', async () => {
    expect(await verifiedBearerUser(config, await token({ iss: 'https://evil.example/' }))).toBeUndefined();
    expect(await verifiedBearerUser(config, await token({ aud: 'another-service' }))).toBeUndefined();
    expect(await verifiedBearerUser(config, await token({ key: otherKey }))).toBeUndefined();
    expect(
      await verifiedBearerUser(config, await token({ exp: Math.floor(Date.now() / 1000) - 3600 })),
    ).toBeUndefined();
    expect(
      await verifiedBearerUser(config, await token({ claims: { preferred_username: undefined } })),
    ).toBeUndefined();
  });

  it('refuses an unsigned token and an opaque one', async () => {
    const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${part({ alg: 'none' })}.${part({ iss: config.issuer, aud: config.audience, exp: now + 300, preferred_username: 'alice@example.test' })}.`;
    expect(await verifiedBearerUser(config, unsigned)).toBeUndefined();
    expect(await verifiedBearerUser(config, 'opaque-token-value')).toBeUndefined();
  });

  it('says the check is unavailable (not a wrong login) when the key set cannot be read', async () => {
    const unreachable = { ...config, jwksUrl: 'http://127.0.0.1:1/jwks.json' };
    await expect(verifiedBearerUser(unreachable, await token())).rejects.toBeInstanceOf(AuthUnavailableError);
  });
});

describe('tenantAuthenticator', () => {
  const seen: Credentials[] = [];
  const mailServer: Authenticator = {
    async authenticate(credentials) {
      seen.push(credentials);
      return { ok: true, user: { login: credentials.login, password: '', accessToken: credentials.accessToken! } };
    },
  };

  it('asks the mail server only about a verified token, under the verified user, whatever name the request had', async () => {
    const good = await token();
    const outcome = await tenantAuthenticator({ bearer: config }, mailServer).authenticate({
      login: 'bob@example.test',
      password: '',
      domain: undefined,
      accessToken: good,
    });
    expect(outcome).toEqual({ ok: true, user: { login: 'alice@example.test', password: '', accessToken: good } });
    expect(seen.at(-1)?.login).toBe('alice@example.test');

    const before = seen.length;
    const forged = await token({ key: otherKey });
    expect(
      await tenantAuthenticator({ bearer: config }, mailServer).authenticate({
        login: 'alice@example.test',
        password: '',
        domain: undefined,
        accessToken: forged,
      }),
    ).toEqual({ ok: false });
    // A tenant without an identity provider takes no token at all.
    expect(
      await tenantAuthenticator({}, mailServer).authenticate({
        login: 'alice@example.test',
        password: '',
        domain: undefined,
        accessToken: good,
      }),
    ).toEqual({ ok: false });
    expect(seen.length).toBe(before);
  });
});
