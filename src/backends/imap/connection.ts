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

/**
 * imapflow's command machinery, which LeanImapFlow steps into (not in its typings; dist/esm/imap-flow.js): run() is
 * what its session set-up and commands go through, exec() queues one command, send() writes one to the socket
 * (trySend() calls it for the next queued command once the one in flight is answered).
 */
interface QueuedCommand {
  tag: string;
  command: string;
  attributes?: unknown;
  options?: { untagged?: Record<string, (response: UntaggedResponse) => Promise<void>>; onSend?: () => void };
}
interface UntaggedResponse {
  attributes?: { value?: unknown }[];
}
interface CommandMachinery {
  run(command: string, ...args: unknown[]): Promise<unknown>;
  exec(command: string, attributes?: unknown, options?: QueuedCommand['options']): Promise<{ next(): void }>;
  send(data: QueuedCommand): Promise<void>;
  requestQueue: QueuedCommand[];
  currentRequest?: { tag: string; sent?: boolean } | null;
  /** The parts of the command on the wire still to be sent after the server's continuation (literals). */
  commandParts: unknown[];
  socket?: { end(callback?: () => void): void; destroyed?: boolean } | null;
  /** Where commands are written: the socket, or the compressor in front of it (COMPRESS=DEFLATE). */
  writeSocket?: { cork(): void; uncork(): void } | null;
  markClosedByClient(): void;
}
const machinery = ImapFlow.prototype as unknown as CommandMachinery;

/**
 * What the set-up ENABLEs (imapflow's own list, src: autoEnable; IMAP4rev2 is left to imapflow, which enables it
 * only after checking the server's name): CONDSTORE + QRESYNC for incremental sync (DESIGN §4), UTF8=ACCEPT
 * (RFC 6855) for mailbox names.
 */
const PIPELINED_ENABLE = ['CONDSTORE', 'UTF8=ACCEPT', 'QRESYNC'];

/** Per server (host:port), the PIPELINED_ENABLE extensions its logged-in CAPABILITY lists, as last seen here. */
const advertisedEnable = new Map<string, string[]>();

/** The personal namespace each server gave each user (RFC 2342), kept for the process (on Workers: the isolate). */
const namespaces = new Map<string, NonNullable<ImapFlow['namespace']>>();
const NAMESPACES_KEPT = 10_000;

/**
 * An ImapFlow whose session set-up costs fewer round trips, since at tens of milliseconds from the server each one
 * counts and Workers log in on every request:
 * - no ID (RFC 2971): imapflow sends it before and again after the login, two round trips for information only;
 * - ENABLE goes out right behind LOGIN, without waiting for LOGIN's answer (pipelining, RFC 9051 §5.5): the server
 *   runs them in order, so ENABLE meets the logged-in session; a failed LOGIN makes it a harmless BAD. Only behind a
 *   LOGIN whose whole command line is on the wire (no synchronizing literal waiting for a continuation, §5.5) and
 *   only when the greeting lists ENABLE. It names only what the server's logged-in CAPABILITY listed to an earlier
 *   session of this process (the first session to a server ENABLEs after LOGIN, as imapflow does): Dovecot enables
 *   CONDSTORE when asked even where its capability list leaves it out, so naming extensions blindly would switch on
 *   what the server does not offer (test/e2e/mail/sync-no-condstore.test.ts). imapflow reads what it enabled from
 *   ENABLED as always. The greeting itself is waited for: it says whether LOGIN is valid at all (PREAUTH, BYE);
 * - NAMESPACE once per server and user: later sessions take the personal namespace kept from the first (it is the
 *   server's configuration, not the session's state). The first session still sends it, so a server that failed
 *   the login behind an OK (imapflow checks NAMESPACE's answer for that) is caught before anything is kept;
 * - no LIST and LSUB before the first SELECT of a folder: imapflow asks them only to decorate its mailbox object
 *   (special use, subscription), which nothing here reads; the folder is given the namespace's delimiter. A folder
 *   that does not exist still fails at SELECT (imapflow then LISTs to tell "missing" from other refusals);
 * - logOutWithoutWaiting(): LOGOUT sent, the socket closed once it is written, the server's BYE not waited for.
 * test/e2e/round-trips.test.ts counts each of these, so an imapflow update that changes what is overridden fails there.
 */
class LeanImapFlow extends ImapFlow {
  private readonly serverKey: string;
  constructor(
    options: ImapFlowOptions,
    private readonly namespaceKey: string,
  ) {
    super(options);
    this.serverKey = `${options.host}:${options.port}`;
  }

  /** What the pipelined ENABLE named: this server's logged-in CAPABILITY as a session of this process saw it. */
  private pipelined: string[] = [];

  /** The ENABLE sent behind LOGIN: the extensions the server said it enabled, or undefined if it refused. */
  private pipelinedEnable: Promise<Set<string> | undefined> | undefined;
  /** Tags of queued commands already written to the socket (the pipelined ENABLE). */
  private readonly written = new Set<string>();

  exec(command: string, attributes?: unknown, options?: QueuedCommand['options']): Promise<{ next(): void }> {
    if (command.toUpperCase() !== 'LOGIN' || this.pipelinedEnable !== undefined)
      return machinery.exec.call(this, command, attributes, options);
    // LOGIN and ENABLE leave in one segment: written apart, Nagle's algorithm (RFC 896) would hold ENABLE back
    // until LOGIN's segment is acknowledged, which the server's delayed ACK (RFC 1122 §4.2.3.2) makes up to 40 ms.
    const socket = (this as unknown as CommandMachinery).writeSocket;
    socket?.cork();
    try {
      const answer = machinery.exec.call(this, command, attributes, options);
      this.pipelinedEnable = this.enableNow();
      return answer;
    } finally {
      socket?.uncork();
    }
  }

  /** ENABLE, queued behind the LOGIN just sent and written to the socket at once. */
  private enableNow(): Promise<Set<string> | undefined> | undefined {
    const self = this as unknown as CommandMachinery;
    // LOGIN must be wholly on the wire (its password not a literal awaiting "+"), and the server must offer ENABLE.
    if (!self.currentRequest?.sent || self.commandParts.length > 0 || self.requestQueue.length > 0) return undefined;
    if (!this.capabilities.has('ENABLE')) return undefined;
    // Only what the server advertises once logged in (RFC 5161 §3.1), known from an earlier session of this process:
    // the greeting's CAPABILITY is the pre-login one, and a server may enable what it does not advertise (Dovecot).
    const known = advertisedEnable.get(this.serverKey);
    if (!known?.length) return undefined;
    this.pipelined = known;
    const enabled = new Set<string>();
    const answer = machinery.exec.call(
      this,
      'ENABLE',
      known.map((value) => ({ type: 'ATOM', value })),
      {
        untagged: {
          ENABLED: async (untagged) => {
            for (const a of untagged.attributes ?? [])
              if (typeof a.value === 'string') enabled.add(a.value.toUpperCase());
          },
        },
      },
    );
    const queued = self.requestQueue.at(-1);
    if (queued?.command !== 'ENABLE') return undefined;
    this.written.add(queued.tag);
    void machinery.send.call(this, queued);
    return answer.then(
      (response) => {
        response.next();
        return enabled;
      },
      () => undefined,
    );
  }

  async send(data: QueuedCommand): Promise<void> {
    if (!this.written.delete(data.tag)) return machinery.send.call(this, data);
    // Already on the wire: now the command in flight, as imapflow would have made it.
    const current = (this as unknown as CommandMachinery).currentRequest;
    if (current?.tag === data.tag) current.sent = true;
  }

  async run(command: string, ...args: unknown[]): Promise<unknown> {
    const run = machinery.run;
    const upper = command.toUpperCase();
    if (upper === 'ID') return undefined;
    if (upper === 'ENABLE') {
      // What the logged-in CAPABILITY lists of it (imapflow's enable command filters the same way): the next session
      // of this server pipelines that.
      const wanted = ((args[0] as string[] | undefined) ?? []).map((e) => e.toUpperCase());
      if (advertisedEnable.size >= NAMESPACES_KEPT && !advertisedEnable.has(this.serverKey))
        advertisedEnable.delete(advertisedEnable.keys().next().value!);
      advertisedEnable.set(
        this.serverKey,
        wanted.filter((e) => PIPELINED_ENABLE.includes(e) && this.capabilities.has(e)),
      );
      if (this.pipelinedEnable) return this.enabledAfterPipeline(args[0] as string[]);
    }
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

  /**
   * imapflow's own ENABLE (autoEnable, after the login) when one went out behind LOGIN: what that one enabled, as
   * imapflow's enable command records it, and an ENABLE of its own only for what it asks beyond (IMAP4rev2).
   */
  private async enabledAfterPipeline(wanted: string[]): Promise<Set<string> | false | undefined> {
    const enabled = await this.pipelinedEnable;
    this.pipelinedEnable = Promise.resolve(undefined);
    if (!enabled) return machinery.run.call(this, 'ENABLE', wanted) as Promise<Set<string> | false | undefined>;
    this.enabled = new Set([...this.enabled, ...enabled]);
    // ENABLE QRESYNC enables CONDSTORE too (RFC 7162 §3.2.3).
    if (this.enabled.has('QRESYNC')) this.enabled.add('CONDSTORE');
    const rest = (wanted ?? []).filter((e) => !this.pipelined.includes(e.toUpperCase()));
    if (rest.length) await machinery.run.call(this, 'ENABLE', rest);
    return this.enabled;
  }

  /**
   * Ends the session without waiting for the server's answer: LOGOUT (RFC 9051 §6.1.3) is sent after whatever is
   * still in flight, the socket is ended once it is written, and the BYE and OK that follow are not waited for
   * (nothing in them is needed; the server closes its side on LOGOUT anyway). Where there is no usable session,
   * the socket is just closed.
   */
  logOutWithoutWaiting(): void {
    const self = this as unknown as CommandMachinery;
    if (!this.usable || !self.socket || self.socket.destroyed) {
      this.close();
      return;
    }
    self.markClosedByClient();
    const end = (): void => {
      // Ends after what was written has gone (a cloudflare:sockets socket closed at once could drop it).
      const socket = self.socket;
      if (socket && !socket.destroyed) socket.end(() => this.close());
      else this.close();
    };
    machinery.exec.call(this, 'LOGOUT', [], { onSend: end }).then(
      (response) => response.next(),
      () => undefined,
    );
    // A server that never lets the write finish: closed anyway.
    const timer = setTimeout(() => this.close(), 10_000);
    (timer as { unref?: () => void }).unref?.();
    this.once('close', () => clearTimeout(timer));
  }
}

/**
 * Ends a session of imapClient() without waiting for the server (LeanImapFlow.logOutWithoutWaiting); any other
 * ImapFlow logs out as imapflow does.
 */
export function logOutWithoutWaiting(client: ImapFlow): void {
  if (client instanceof LeanImapFlow) client.logOutWithoutWaiting();
  else client.logout().catch(() => client.close());
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
