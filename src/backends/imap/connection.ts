/** Opening IMAP connections with imapflow: one place for the settings every IMAP user here shares. */
import { ImapFlow, type ImapFlowOptions, type ImapTransport } from 'imapflow';
import type { UserCredentials } from '../auth.ts';

export interface ImapSettings {
  host: string;
  port: number;
  /**
   * true: implicit TLS (993). false: plain TCP upgraded with STARTTLS, which is required: a server that does not offer
   * it is refused before the login is sent (the capability list came in clear, so its absence may be an attacker's).
   */
  secure: boolean;
  /**
   * How long a pooled connection may serve after its login (IMAP_SESSION_MAX_AGE_SECONDS), ms: the credentials are
   * checked by the server again at least this often, so a changed password or a revoked token stops working by then.
   */
  sessionMaxAgeMs?: number;
  /** With `secure` false: stay in plaintext, no STARTTLS (ALLOW_PLAINTEXT_BACKENDS; loopback or test networks only). */
  allowPlaintext?: boolean;
}

/** imapflow's doSTARTTLS for these settings: required unless plaintext was configured (then not attempted). */
export function startTlsOption(settings: ImapSettings): Pick<ImapFlowOptions, 'doSTARTTLS'> {
  if (settings.secure) return {};
  return { doSTARTTLS: !settings.allowPlaintext };
}

export interface ImapLogin {
  user: string;
  password: string;
  /**
   * An OAuth 2.0 access token (a Bearer login): imapflow then authenticates with XOAUTH2/OAUTHBEARER, not the password.
   */
  accessToken?: string;
}

/** A user's credentials, whole, as an IMAP login: the token of a Bearer login, else the password. */
export function imapLogin(user: UserCredentials): ImapLogin {
  return user.accessToken !== undefined
    ? { user: user.login, password: '', accessToken: user.accessToken }
    : { user: user.login, password: user.password };
}

/**
 * How every IMAP client of this process opens its socket: node:net and node:tls unless the runtime sets a transport
 * once at start (Workers: cloudflare:sockets, src/runtimes/cloudflare/worker.ts). workerd's node:net adds a 'timeout'
 * listener on every read and write of a socket that has an idle timeout (its Socket._unrefTimer re-arms through
 * setTimeout with a new callback), and imapflow's socketTimeout gives each socket one: listeners pile up per socket.
 */
let transport: ImapTransport | undefined;

export function useImapTransport(t: ImapTransport): void {
  transport = t;
}

/** The `transport` option of every ImapFlow this process creates (also the push watcher's, src/push/watch-shared.ts). */
export function imapTransportOption(): Pick<ImapFlowOptions, 'transport'> {
  return transport ? { transport } : {};
}

/** A client for one user; `connect()` it, and `logout()` when done. Logging is off: it would carry credentials. */
export function imapClient(settings: ImapSettings, login: ImapLogin, extra: Partial<ImapFlowOptions> = {}): ImapFlow {
  return new ImapFlow({
    ...extra,
    ...imapTransportOption(),
    host: settings.host,
    port: settings.port,
    secure: settings.secure,
    ...startTlsOption(settings),
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
