/**
 * Who a request is and how that is checked: the credentials a device sent, the user they prove, and the
 * Authenticator that checks them against a backend (src/backends/imap/authenticate.ts logs in to IMAP).
 */

export interface Credentials {
  /** The name to log in with: `DOMAIN\` is dropped, `user@domain` is kept whole. */
  login: string;
  password: string;
  /** The Windows domain of a `DOMAIN\user` login, for logs and tenant resolution. */
  domain: string | undefined;
  /** Set for `Authorization: Bearer`: the token, passed to IMAP and SMTP as XOAUTH2 (`password` is then empty). */
  accessToken?: string;
}

/**
 * A user's login as every backend takes it: whole, so that no path can keep the password and forget the token.
 * IMAP, SMTP and CalDAV/CardDAV each turn it into their own authentication in one place (imap/connection.ts
 * imapLogin, smtp/nodemailer.ts, dav/backend.ts authorization).
 */
export interface UserCredentials {
  login: string;
  /** Kept only for the duration of the request, to pass through to the backends. Never logged or stored. */
  password: string;
  /** A Bearer login's token, in place of the password (which is then empty); the same rules. */
  accessToken?: string;
}

/** Who a request is, proven by the Authenticator: the credentials the backends are then opened with. */
export type AuthenticatedUser = UserCredentials;

export type AuthOutcome = { ok: true; user: AuthenticatedUser } | { ok: false };

/** Checks credentials. Rejects (throws) only when the check itself could not be made, e.g. the backend is down. */
export interface Authenticator {
  authenticate(credentials: Credentials): Promise<AuthOutcome>;
}

/** Thrown when the backend that checks passwords cannot be reached: the client should retry, not re-prompt. */
export class AuthUnavailableError extends Error {
  override readonly name = 'AuthUnavailableError';
}
