/**
 * Bearer tokens are verified here, per tenant, before anything else trusts them: the signature against the identity
 * provider's published keys (BEARER_JWKS_URL, RFC 7517), the issuer and audience (RFC 7519 §4.1.1, §4.1.3), the
 * expiry and not-before times; the user is the configured claim (BEARER_USER_CLAIM) of the verified token, never a
 * claim of an unverified one. The mail server then checks the token for that user again (XOAUTH2), as before.
 * jose does the JWS work; it runs on Node and in workerd. It is loaded on the first Bearer login, so a tenant without
 * BEARER_* settings never loads it.
 */
import type { createRemoteJWKSet } from 'jose';
import { AuthUnavailableError, type Authenticator } from '../backends/auth.ts';
import type { BearerConfig } from '../config.ts';

/** Asymmetric signatures only: a shared-secret (HS*) or unsigned token can never match a published key set. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** Clock difference allowed between the identity provider and this server, seconds. */
const CLOCK_TOLERANCE_SECONDS = 60;

/** One key set per JWKS URL per isolate or process: jose caches the keys and refetches for an unknown key id. */
const keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

function keySetOf(jose: typeof import('jose'), url: string): ReturnType<typeof createRemoteJWKSet> {
  let keys = keySets.get(url);
  if (!keys) {
    keys = jose.createRemoteJWKSet(new URL(url), { timeoutDuration: 5_000, cooldownDuration: 30_000 });
    keySets.set(url, keys);
  }
  return keys;
}

/**
 * The user a token proves under this tenant's identity provider; undefined for a token that does not verify (bad
 * signature, another issuer or audience, expired, no such claim). Throws AuthUnavailableError when the key set
 * cannot be had, so that the device retries instead of asking for a new sign-in.
 */
export async function verifiedBearerUser(config: BearerConfig, token: string): Promise<string | undefined> {
  const jose = await import('jose');
  const { errors } = jose;
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jose.jwtVerify(token, keySetOf(jose, config.jwksUrl), {
      issuer: config.issuer,
      audience: config.audience,
      algorithms: ALGORITHMS,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['exp'],
    }));
  } catch (err) {
    if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || !(err instanceof errors.JOSEError))
      throw new AuthUnavailableError(`the key set at ${config.jwksUrl} cannot be read: ${describe(err)}`);
    return undefined;
  }
  const claim = payload[config.userClaim];
  return typeof claim === 'string' && claim.trim() !== '' && claim.length <= 256 ? claim.trim() : undefined;
}

/**
 * `inner` behind the token check: a Bearer login reaches the mail server only once its token verified, and under the
 * user the verified claim names (whatever name the request carried). Basic logins pass through unchanged.
 */
export function verifyingBearer(config: BearerConfig, inner: Authenticator): Authenticator {
  return {
    async authenticate(credentials) {
      if (credentials.accessToken === undefined) return inner.authenticate(credentials);
      const login = await verifiedBearerUser(config, credentials.accessToken);
      if (login === undefined) return { ok: false };
      return inner.authenticate({ ...credentials, login });
    },
  };
}

/**
 * The tenant's check of a device's credentials: `inner` (the mail server's login), with Bearer tokens verified first
 * when the tenant has an identity provider, and refused when it has none.
 */
export function tenantAuthenticator(config: { bearer?: BearerConfig }, inner: Authenticator): Authenticator {
  if (config.bearer) return verifyingBearer(config.bearer, inner);
  return {
    authenticate: (credentials) =>
      credentials.accessToken === undefined ? inner.authenticate(credentials) : Promise.resolve({ ok: false }),
  };
}

function describe(err: unknown): string {
  if (err instanceof Error) return (err as { code?: string }).code ?? err.name;
  return String(err);
}
