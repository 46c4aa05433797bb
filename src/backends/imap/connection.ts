/** Opening IMAP connections with imapflow: one place for the settings every IMAP user here shares. */
import { ImapFlow, type ImapFlowOptions } from 'imapflow';

export interface ImapSettings {
  host: string;
  port: number;
  /** true: implicit TLS (993). false: plain TCP, upgraded with STARTTLS when the server offers it. */
  secure: boolean;
}

export interface ImapLogin {
  user: string;
  password: string;
  /**
   * An OAuth 2.0 access token (a Bearer login): imapflow then authenticates with XOAUTH2/OAUTHBEARER, not the password.
   */
  accessToken?: string;
}

/** A client for one user; `connect()` it, and `logout()` when done. Logging is off: it would carry credentials. */
export function imapClient(settings: ImapSettings, login: ImapLogin, extra: Partial<ImapFlowOptions> = {}): ImapFlow {
  return new ImapFlow({
    ...extra,
    host: settings.host,
    port: settings.port,
    secure: settings.secure,
    auth:
      login.accessToken !== undefined
        ? { user: login.user, accessToken: login.accessToken }
        : { user: login.user, pass: login.password },
    logger: false,
    // CONDSTORE + QRESYNC: incremental mail sync depends on them (DESIGN §4).
    qresync: true,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 60_000,
  });
}
