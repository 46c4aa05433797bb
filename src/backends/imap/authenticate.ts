/** Checks a password by logging in to the IMAP server: the mail backend is the source of truth for accounts. */
import { AuthUnavailableError, type Authenticator, type Credentials, type AuthOutcome } from '../auth.ts';
import { imapLogin, type ImapSettings } from './connection.ts';
import type { ImapSessions } from './sessions.ts';

/**
 * The login that proves the password also opens the connection the request then works on (the request's
 * sessions keep it for its backends: sessions.ts requestImapSessions).
 */
export function imapAuthenticator(settings: ImapSettings, sessions: ImapSessions): Authenticator {
  return {
    async authenticate(credentials: Credentials): Promise<AuthOutcome> {
      let client: Awaited<ReturnType<typeof sessions.acquire>>;
      try {
        client = await sessions.acquire(imapLogin(credentials));
      } catch (err) {
        if ((err as { authenticationFailed?: boolean }).authenticationFailed) return { ok: false };
        throw new AuthUnavailableError(`IMAP server ${settings.host}:${settings.port} unavailable: ${describe(err)}`);
      }
      sessions.release(client, true);
      const { login, password, accessToken } = credentials;
      return { ok: true, user: { login, password, ...(accessToken !== undefined ? { accessToken } : {}) } };
    },
  };
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // imapflow's doSTARTTLS refusal (no STARTTLS offered, or PREAUTH): say which setting decides it.
  if ((err as { tlsFailed?: boolean }).tlsFailed && !(err as { code?: string }).code)
    return (
      `${err.message}; STARTTLS is required with IMAP_SECURE=false (use IMAP_SECURE=true for implicit TLS, or ` +
      'ALLOW_PLAINTEXT_BACKENDS=true on a loopback or private test network)'
    );
  return (err as { code?: string }).code ?? err.message;
}
