/**
 * HTTP Basic authentication as ActiveSync clients send it (MS-ASHTTP §2.2.1.1.2.1): `user`, `user@domain` or
 * `DOMAIN\user`. Checking the password is the Authenticator's job (a login to the mail backend).
 */
import { Buffer } from 'node:buffer';
import type { AuthMode } from '../config.ts';
import type { Credentials } from '../backends/auth.ts';

/** Parses an `Authorization: Basic …` header; undefined when it is absent, another scheme, or malformed. */
export function parseBasicAuth(header: string | null | undefined): Credentials | undefined {
  const match = /^\s*basic\s+([A-Za-z0-9+/=._-]+)\s*$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  const backslash = user.indexOf('\\');
  const login = backslash >= 0 ? user.slice(backslash + 1) : user;
  if (!login) return undefined;
  return { login, password, domain: backslash >= 0 ? user.slice(0, backslash) : undefined };
}

/** The challenge sent with every 401. */
export function basicChallenge(realm: string): Record<string, string> {
  return { 'WWW-Authenticate': `Basic realm="${realm.replace(/["\\]/g, '')}"` };
}

/**
 * `Authorization: Bearer <token>` (RFC 6750). The name read here is not trusted: it only helps find the tenant (by its
 * mail domain) and names the request in the log until the login is proven. The tenant then verifies the token and
 * takes the user from its configured claim (protocol/bearer.ts), and the mail server checks the token for that user.
 * The name is the token's own claim when it is a JWT (`email`, `upn`, `preferred_username`, `unique_name`: what
 * Entra ID, Keycloak, Google and Okta put there; read, not verified), else the request's `User` parameter
 * (ActiveSync sends it with every command), else none: the request is refused.
 */
export function parseBearerAuth(
  header: string | null | undefined,
  userHint: string | undefined,
): Credentials | undefined {
  const match = /^\s*bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header ?? '');
  if (!match) return undefined;
  const accessToken = match[1]!;
  const login = jwtUserClaim(accessToken) ?? userHint?.trim();
  if (!login) return undefined;
  return { login, password: '', domain: undefined, accessToken };
}

/**
 * Basic or Bearer, whichever the header carries; the tenant's AUTH_MODE decides later whether that scheme is allowed.
 */
export function parseAuthorization(
  header: string | null | undefined,
  userHint: string | undefined,
): Credentials | undefined {
  return parseBasicAuth(header) ?? parseBearerAuth(header, userHint);
}

const USER_CLAIMS = ['email', 'upn', 'preferred_username', 'unique_name'] as const;

/** The user name a JWT's payload names, without verifying the token (the IMAP server does that). */
function jwtUserClaim(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    if (typeof payload !== 'object' || payload === null) return undefined;
    for (const claim of USER_CLAIMS) {
      const value = (payload as Record<string, unknown>)[claim];
      if (typeof value === 'string' && value.trim() !== '' && value.length <= 256) return value.trim();
    }
  } catch {
    // Not a JWT after all: an opaque token.
  }
  return undefined;
}

/** Whether a tenant's AUTH_MODE lets these credentials in. */
export function schemeAllowed(mode: AuthMode, credentials: Credentials): boolean {
  if (mode === 'both') return true;
  return mode === 'bearer' ? credentials.accessToken !== undefined : credentials.accessToken === undefined;
}

/** The challenge of a 401 under a tenant's AUTH_MODE (one header, the schemes as a list, RFC 9110 §11.6.1). */
export function challengeFor(mode: AuthMode, realm: string): Record<string, string> {
  const basic = basicChallenge(realm)['WWW-Authenticate']!;
  const bearer = `Bearer realm="${realm.replace(/["\\]/g, '')}"`;
  return { 'WWW-Authenticate': mode === 'basic' ? basic : mode === 'bearer' ? bearer : `${basic}, ${bearer}` };
}
