/**
 * A TCP fault proxy for tests: it sits between the app and a real service (Dovecot, Radicale, Postfix) and, when a
 * rule armed by the test fires, drops, resets or stalls the connection at that point.
 *
 * A rule fires once, on the first connection that meets its trigger:
 * - `upstreamLine`: a client → server command line matching a pattern (e.g. `/UID MOVE/`). With `deliver: true` the
 *   line reaches the server first and its answer is swallowed: the server acted, the client never hears of it.
 * - `afterBytes`: after N more bytes in one direction (counted from when the rule was armed, per connection).
 * - `afterMs`: after a delay, on every connection open by then.
 * Actions: `reset` (TCP RST both ways), `drop` (both sides closed, FIN), `stall` (nothing forwarded either way until
 * `stallMs` passes, `release()` or the connection closes).
 *
 * With `tls: true` the proxy terminates TLS on both sides (the client meets the test CA's localhost certificate, the
 * proxy connects to the service with implicit TLS), so rules see the protocol's lines while every hop is encrypted.
 */
import { readFileSync } from 'node:fs';
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { connect as connectTls, createSecureContext, TLSSocket } from 'node:tls';
import { TLS_CERT_PATH, TLS_KEY_PATH } from '../services/tls.ts';

export type FaultAction = 'reset' | 'drop' | 'stall';

export interface FaultRule {
  action: FaultAction;
  upstreamLine?: RegExp;
  afterBytes?: { direction: 'up' | 'down'; bytes: number };
  afterMs?: number;
  /**
   * With `upstreamLine`: forward the matching data, swallow the server's answer, then act after `settleMs` (default
   * 300).
   */
  deliver?: boolean;
  settleMs?: number;
  /**
   * With `deliver` (reset, drop): let this many bytes of the answer through, then act (a connection cut mid-answer).
   */
  answerBytes?: number;
  /** How long a stall lasts; forever (until release or close) when absent. */
  stallMs?: number;
}

export interface ArmedFault {
  /** Resolves when the rule fired. */
  readonly fired: Promise<void>;
  readonly hasFired: boolean;
  /** Ends a stall this rule started, forwarding what was held; disarms the rule if it has not fired. */
  release(): void;
}

interface Link {
  client: Socket;
  upstream: Socket;
  /** The TCP sockets under `client` and `upstream` (themselves without TLS): a reset goes to these. */
  clientRaw: Socket;
  upstreamRaw: Socket;
  /** Data held while stalled, per direction. */
  heldUp: Buffer[];
  heldDown: Buffer[];
  stalled: boolean;
  /** A stall of the answers only (a `deliver` rule): the request still reaches the server whole. */
  stallDownOnly: boolean;
  swallowDown: boolean;
  /** Bytes of the answer still let through before `cutBy` acts (a rule with `answerBytes`). */
  downBudget: number;
  cutBy: Armed | undefined;
  /** The server closed while the link was stalled: the client learns it only when the stall ends. */
  upstreamEnded: boolean;
  upTail: string;
  counted: Map<Armed, number>;
  closed: boolean;
}

interface Armed extends ArmedFault {
  rule: FaultRule;
  done: boolean;
  fire(): void;
  stalledLinks: Set<Link>;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far, and those open now. */
  readonly accepted: number;
  readonly open: number;
  arm(rule: FaultRule): ArmedFault;
  /** Resets every open connection now. */
  resetAll(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(
  target: { host: string; port: number },
  options: { tls?: boolean } = {},
): Promise<FaultProxy> {
  const secureContext = options.tls
    ? createSecureContext({ key: readFileSync(TLS_KEY_PATH), cert: readFileSync(TLS_CERT_PATH) })
    : undefined;
  const links = new Set<Link>();
  const rules: Armed[] = [];
  let accepted = 0;

  function act(link: Link, armed: Armed): void {
    const { action } = armed.rule;
    if (action === 'reset') {
      link.clientRaw.resetAndDestroy();
      link.upstreamRaw.resetAndDestroy();
    } else if (action === 'drop') {
      link.client.destroy();
      link.upstream.destroy();
    } else {
      link.stalled = true;
      armed.stalledLinks.add(link);
      if (armed.rule.stallMs !== undefined) setTimeout(() => unstall(link, armed), armed.rule.stallMs).unref();
    }
  }

  function unstall(link: Link, armed: Armed): void {
    armed.stalledLinks.delete(link);
    link.stalled = false;
    link.stallDownOnly = false;
    link.swallowDown = false;
    if (link.closed) return;
    for (const b of link.heldUp.splice(0)) link.upstream.write(b);
    for (const b of link.heldDown.splice(0)) link.client.write(b);
    if (link.upstreamEnded) link.client.end();
  }

  function fireOn(link: Link, armed: Armed): void {
    armed.done = true;
    rules.splice(rules.indexOf(armed), 1);
    armed.fire();
    act(link, armed);
  }

  /** Forwards `chunk` in one direction, unless a rule fires on it. */
  function pass(link: Link, direction: 'up' | 'down', chunk: Buffer): void {
    if (link.closed) return;
    for (const armed of [...rules]) {
      const { rule } = armed;
      if (rule.afterBytes?.direction === direction) {
        const before = link.counted.get(armed) ?? 0;
        const after = before + chunk.length;
        link.counted.set(armed, after);
        if (after >= rule.afterBytes.bytes) {
          const cut = Math.max(0, rule.afterBytes.bytes - before);
          if (cut > 0) send(link, direction, chunk.subarray(0, cut));
          fireOn(link, armed);
          if (link.stalled) hold(link, direction, chunk.subarray(cut));
          return;
        }
      }
      if (direction === 'up' && rule.upstreamLine) {
        const text = link.upTail + chunk.toString('latin1');
        if (rule.upstreamLine.test(text)) {
          link.upTail = '';
          if (!rule.deliver) {
            fireOn(link, armed);
            if (link.stalled) hold(link, direction, chunk);
            return;
          }
          // The server gets the command; its answer is held (stall: released later, as a slow network would
          // deliver it) or lost (reset, drop: after `settleMs`, time for the server to act on it).
          armed.done = true;
          rules.splice(rules.indexOf(armed), 1);
          if (rule.action === 'stall') {
            link.stalled = true;
            link.stallDownOnly = true;
            armed.stalledLinks.add(link);
            if (rule.stallMs !== undefined) setTimeout(() => unstall(link, armed), rule.stallMs).unref();
          } else if (rule.answerBytes) {
            link.downBudget = rule.answerBytes;
            link.cutBy = armed;
            send(link, direction, chunk);
            return;
          } else link.swallowDown = true;
          send(link, direction, chunk);
          setTimeout(() => {
            armed.fire();
            if (rule.action !== 'stall') act(link, armed);
          }, rule.settleMs ?? 300).unref();
          return;
        }
      }
    }
    if (direction === 'up') link.upTail = (link.upTail + chunk.toString('latin1')).slice(-512);
    if (link.stalled && !(direction === 'up' && link.stallDownOnly)) hold(link, direction, chunk);
    else send(link, direction, chunk);
  }

  function hold(link: Link, direction: 'up' | 'down', chunk: Buffer): void {
    if (chunk.length === 0) return;
    (direction === 'up' ? link.heldUp : link.heldDown).push(chunk);
  }

  function send(link: Link, direction: 'up' | 'down', chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (direction === 'down') {
      if (link.swallowDown) return;
      if (link.cutBy) {
        const armed = link.cutBy;
        const part = chunk.subarray(0, link.downBudget);
        link.downBudget -= part.length;
        if (part.length) link.client.write(part);
        if (link.downBudget > 0) return;
        link.cutBy = undefined;
        armed.fire();
        // Written, then cut: the client gets the part before the close.
        setTimeout(() => act(link, armed), 20).unref();
        link.swallowDown = true;
        return;
      }
      // A rule with `deliver` and `stall` holds the answer instead of swallowing it.
      if (link.stalled) {
        hold(link, direction, chunk);
        return;
      }
      link.client.write(chunk);
    } else link.upstream.write(chunk);
  }

  const server: Server = createServer((clientRaw) => {
    accepted++;
    const upstreamRaw = new Socket();
    upstreamRaw.connect(target.port, target.host);
    const client = secureContext ? new TLSSocket(clientRaw, { isServer: true, secureContext }) : clientRaw;
    // The certificate is checked against the service's address, as the app would check it.
    const upstream = secureContext ? connectTls({ socket: upstreamRaw, host: target.host }) : upstreamRaw;
    const link: Link = {
      client,
      upstream,
      clientRaw,
      upstreamRaw,
      heldUp: [],
      heldDown: [],
      stalled: false,
      stallDownOnly: false,
      swallowDown: false,
      downBudget: 0,
      cutBy: undefined,
      upstreamEnded: false,
      upTail: '',
      counted: new Map(),
      closed: false,
    };
    links.add(link);
    const close = (): void => {
      if (link.closed) return;
      link.closed = true;
      links.delete(link);
      client.destroy();
      upstream.destroy();
      clientRaw.destroy();
      upstreamRaw.destroy();
    };
    // Sockets already reset: nothing to report, the other side sees the close.
    client.on('error', close);
    if (secureContext) {
      clientRaw.on('error', close);
      clientRaw.on('close', close);
      upstreamRaw.on('error', () => undefined);
    }
    // A server that closes after answering (Radicale does) must not reveal a stalled answer by the close.
    const upstreamClosed = (): void => {
      if (link.stalled) link.upstreamEnded = true;
      else close();
    };
    upstream.on('error', upstreamClosed);
    client.on('close', close);
    upstream.on('close', upstreamClosed);
    client.on('data', (chunk: Buffer) => pass(link, 'up', chunk));
    upstream.on('data', (chunk: Buffer) => pass(link, 'down', chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    host: '127.0.0.1',
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return links.size;
    },
    arm(rule) {
      let fire!: () => void;
      const fired = new Promise<void>((resolve) => (fire = resolve));
      const armed: Armed = {
        rule,
        done: false,
        fired,
        stalledLinks: new Set(),
        get hasFired() {
          return armed.done;
        },
        fire,
        release() {
          if (!armed.done) {
            armed.done = true;
            const at = rules.indexOf(armed);
            if (at >= 0) rules.splice(at, 1);
          }
          for (const link of [...armed.stalledLinks]) unstall(link, armed);
        },
      };
      if (rule.afterMs !== undefined) {
        setTimeout(() => {
          if (armed.done) return;
          armed.done = true;
          fire();
          for (const link of [...links]) act(link, armed);
        }, rule.afterMs).unref();
      } else rules.push(armed);
      return armed;
    },
    resetAll() {
      for (const link of [...links]) {
        link.clientRaw.resetAndDestroy();
        link.upstreamRaw.resetAndDestroy();
      }
    },
    async close() {
      for (const link of [...links]) {
        link.client.destroy();
        link.upstream.destroy();
        link.clientRaw.destroy();
        link.upstreamRaw.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
