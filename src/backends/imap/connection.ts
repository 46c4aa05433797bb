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

/** imapflow's command runner, which its session set-up goes through (not in its typings). */
interface CommandRunner {
  run(command: string, ...args: unknown[]): Promise<unknown>;
}

/** The personal namespace each server gave each user (RFC 2342), kept for the process (on Workers: the isolate). */
const namespaces = new Map<string, NonNullable<ImapFlow['namespace']>>();
const NAMESPACES_KEPT = 10_000;

/**
 * An ImapFlow whose session set-up costs fewer round trips, since at tens of milliseconds from the server each one
 * counts and Workers log in on every request:
 * - no ID (RFC 2971): imapflow sends it before and again after the login, two round trips for information only;
 * - NAMESPACE once per server and user: later sessions take the personal namespace kept from the first (it is the
 *   server's configuration, not the session's state). The first session still sends it, so a server that failed
 *   the login behind an OK (imapflow checks NAMESPACE's answer for that) is caught before anything is kept;
 * - no LIST and LSUB before the first SELECT of a folder: imapflow asks them only to decorate its mailbox object
 *   (special use, subscription), which nothing here reads; the folder is given the namespace's delimiter. A folder
 *   that does not exist still fails at SELECT (imapflow then LISTs to tell "missing" from other refusals).
 */
class LeanImapFlow extends ImapFlow {
  constructor(
    options: ImapFlowOptions,
    private readonly namespaceKey: string,
  ) {
    super(options);
  }

  async run(command: string, ...args: unknown[]): Promise<unknown> {
    const run = (ImapFlow.prototype as unknown as CommandRunner).run;
    const upper = command.toUpperCase();
    if (upper === 'ID') return undefined;
    // imapflow's select() is the one caller of run('LIST', '', path) without options (src: commands/select.js).
    const [reference, path] = args;
    if (upper === 'LIST' && args.length === 2 && reference === '' && typeof path === 'string' && !/[*%]/.test(path))
      return [{ path, delimiter: this.namespace?.delimiter ?? undefined, flags: new Set<string>(), listed: true }];
    if (upper !== 'NAMESPACE') return run.call(this, command, ...args);
    const kept = namespaces.get(this.namespaceKey);
    if (kept && this.authenticated) {
      this.namespaces = { personal: [{ ...kept }], other: false, shared: false };
      this.namespace = { ...kept };
      return this.namespace;
    }
    const answer = await run.call(this, command, ...args);
    const personal = this.namespace;
    if (personal && !(answer as { error?: boolean } | undefined)?.error) {
      if (namespaces.size >= NAMESPACES_KEPT) namespaces.delete(namespaces.keys().next().value!);
      namespaces.set(this.namespaceKey, { ...personal });
    }
    return answer;
  }
}

/** A client for one user; `connect()` it, and `logout()` when done. Logging is off: it would carry credentials. */
export function imapClient(settings: ImapSettings, login: ImapLogin, extra: Partial<ImapFlowOptions> = {}): ImapFlow {
  const namespaceKey = `${settings.host}\u0000${settings.port}\u0000${login.user}`;
  return new LeanImapFlow(
    {
      ...extra,
      ...imapTransportOption(),
      host: settings.host,
      port: settings.port,
      secure: settings.secure,
      ...startTlsOption(settings),
      auth:
        login.accessToken !== undefined
          ? { user: login.user, accessToken: login.accessToken }
          : // LOGIN (RFC 3501 §6.2.3): one round trip, where imapflow's AUTHENTICATE PLAIN waits for the server's
            // continuation first (it does not send the initial response of SASL-IR, RFC 4959). Only ever over TLS here.
            { user: login.user, pass: login.password, loginMethod: 'LOGIN' },
      logger: false,
      // CONDSTORE + QRESYNC: incremental mail sync depends on them (DESIGN §4).
      qresync: true,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 60_000,
    },
    namespaceKey,
  );
}
