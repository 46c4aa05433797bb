/**
 * HTTP Basic authentication as ActiveSync clients send it (MS-ASHTTP §2.2.1.1.2.1): `user`, `user@domain` or
 * `DOMAIN\user`. Checking the password is the Authenticator's job (a login to the mail backend).
 */
import { Buffer } from 'node:buffer';

export interface Credentials {
  /** The name to log in with: `DOMAIN\` is dropped, `user@domain` is kept whole. */
  login: string;
  password: string;
  /** The Windows domain of a `DOMAIN\user` login, for logs and tenant resolution. */
  domain: string | undefined;
}

export interface AuthenticatedUser {
  login: string;
  /** Kept only for the duration of the request, to pass through to the backends. Never logged or stored. */
  password: string;
}

export type AuthOutcome = { ok: true; user: AuthenticatedUser } | { ok: false };

/** Checks credentials. Rejects (throws) only when the check itself could not be made, e.g. the backend is down. */
export interface Authenticator {
  authenticate(credentials: Credentials): Promise<AuthOutcome>;
}

/** Thrown when the backend that checks passwords cannot be reached: the client should retry, not re-prompt. */
export class AuthUnavailableError extends Error {
  override readonly name = 'AuthUnavailableError';
}

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
