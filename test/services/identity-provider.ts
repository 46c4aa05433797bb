/**
 * A stand-in for the identity provider that issues Bearer tokens (it is not part of this project): it signs JWTs with
 * a key generated here (RS256, kid k1), publishes that key as a JWKS at /jwks.json, against which the app verifies
 * each token, and answers RFC 7662 token introspection (POST token=…) at /introspect, as Dovecot's `oauth2` passdb
 * and Radicale's Bearer check ask it, from the tokens it was told it issued.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';

export const ISSUER = 'https://idp.example.test/';
export const AUDIENCE = 'activesync-edge';

export interface IdentityProvider {
  /** RFC 7662 endpoint (POST token=…) answering `{active, email}`. */
  introspectionUrl: string;
  /** Token → the user it was issued to (what introspection answers); a token not in it is inactive. */
  issued: Map<string, string>;
  /** Introspection requests so far: how often a mail or DAV server asked about a token. */
  readonly introspected: number;
  /** A JWT with these claims, signed by the provider's key (or `key`), expiring at `expires` (default in 10 minutes). */
  jwt(claims: Record<string, unknown>, o?: { key?: CryptoKey; expires?: number | string }): Promise<string>;
  /** A tenant's settings that take the provider's tokens, naming the user by `userClaim`. */
  bearerSettings(userClaim: string): Record<string, string>;
  /**
   * Writes `dir`/oauth2.conf for Dovecot's `oauth2` passdb and returns the Dovecot configuration that checks XOAUTH2
   * logins by asking this provider, after the password files (for startDovecot's `extraConfig`).
   */
  dovecotXoauth2(dir: string): string;
  close(): void;
}

export async function startIdentityProvider(): Promise<IdentityProvider> {
  const pair = await generateKeyPair('RS256');
  const publicJwk = await exportJWK(pair.publicKey);
  const issued = new Map<string, string>();
  let introspected = 0;
  const server = createServer((req, res) => {
    res.setHeader('Content-Type', 'application/json');
    if (req.method === 'GET' && req.url === '/jwks.json') {
      res.end(JSON.stringify({ keys: [{ ...publicJwk, kid: 'k1', alg: 'RS256', use: 'sig' }] }));
      return;
    }
    introspected++;
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const user = issued.get(new URLSearchParams(body).get('token') ?? '');
      res.end(JSON.stringify(user ? { active: true, email: user } : { active: false }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const introspectionUrl = `${origin}/introspect`;
  return {
    introspectionUrl,
    issued,
    get introspected() {
      return introspected;
    },
    jwt: (claims, o = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(o.expires ?? '10m')
        .sign(o.key ?? pair.privateKey),
    bearerSettings: (userClaim) => ({
      BEARER_JWKS_URL: `${origin}/jwks.json`,
      BEARER_ISSUER: ISSUER,
      BEARER_AUDIENCE: AUDIENCE,
      BEARER_USER_CLAIM: userClaim,
    }),
    dovecotXoauth2(dir) {
      writeFileSync(
        `${dir}/oauth2.conf`,
        `introspection_mode = post\nintrospection_url = ${introspectionUrl}\nusername_attribute = email\nactive_attribute = active\nactive_value = true\n`,
      );
      return `auth_mechanisms = plain login xoauth2\npassdb {\n  driver = oauth2\n  mechanisms = xoauth2\n  args = ${dir}/oauth2.conf\n}\n`;
    },
    close: () => server.close(),
  };
}
