/** Checks a password by logging in to the IMAP server: the mail backend is the source of truth for accounts. */
import { AuthUnavailableError, type Authenticator, type Credentials, type AuthOutcome } from '../../protocol/auth.ts';
import { imapClient, type ImapSettings } from './connection.ts';

export function imapAuthenticator(settings: ImapSettings): Authenticator {
  return {
    async authenticate(credentials: Credentials): Promise<AuthOutcome> {
      const client = imapClient(settings, { user: credentials.login, password: credentials.password });
      // imapflow emits 'error' for socket failures after connect; without a listener they would crash the process.
      client.on('error', () => {});
      try {
        await client.connect();
      } catch (err) {
        if ((err as { authenticationFailed?: boolean }).authenticationFailed) return { ok: false };
        throw new AuthUnavailableError(`IMAP server ${settings.host}:${settings.port} unavailable: ${describe(err)}`);
      }
      await client.logout().catch(() => client.close());
      return { ok: true, user: { login: credentials.login, password: credentials.password } };
    },
  };
}

function describe(err: unknown): string {
  if (err instanceof Error) return (err as { code?: string }).code ?? err.message;
  return String(err);
}
