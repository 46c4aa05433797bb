/**
 * Where the hand-driven backend connections (ManageSieve everywhere, SMTP on Workers) get their sockets: one
 * interface, one adapter per runtime. Node and Lambda use node:net and node:tls (here); Workers set the
 * cloudflare:sockets adapter once at start (src/runtimes/cloudflare/sockets.ts), since inside workerd node:tls cannot
 * upgrade a node:net socket (STARTTLS fails with "Cannot call releaseLock() on a reader with outstanding read
 * promises") and its node:net sockets add a 'timeout' listener on every read and write (issue 16).
 *
 * Reads are pulled, one at a time, as the cloudflare:sockets streams are: a protocol client reads only while it waits
 * for an answer, so no read is pending when it upgrades the connection with STARTTLS.
 */
import { isIP, connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';

export interface SocketTarget {
  host: string;
  port: number;
  /**
   * 'implicit': TLS from the first byte. 'starttls': plain TCP until startTls() (RFC 3207, RFC 5804 §2.2). The
   * certificate is checked against `host` either way.
   */
  tls: 'implicit' | 'starttls';
}

export interface BackendSocket {
  /** The next bytes the server sent; null once it closed the connection. Never called while another read is pending. */
  read(): Promise<Uint8Array | null>;
  /** Resolves once the bytes are handed to the connection. */
  write(bytes: Uint8Array): Promise<void>;
  /** Upgrades the connection to TLS in place; resolves once the handshake succeeded. Only with no read pending. */
  startTls(): Promise<void>;
  /** Whether the connection is encrypted (implicit TLS, or after startTls()). */
  readonly encrypted: boolean;
  /** Closes the connection (both directions); a pending read resolves null or rejects. */
  close(): void;
}

/** Opens a connection; rejects when it cannot be made (refused, TLS handshake of implicit TLS failed). */
export type OpenBackendSocket = (target: SocketTarget) => Promise<BackendSocket>;

/** SNI carries host names only (RFC 6066 §3); the certificate is still checked against `host`, name or address. */
function serverName(host: string): { servername?: string } {
  return isIP(host) === 0 ? { servername: host } : {};
}

/** node:net / node:tls as a BackendSocket (Node, Lambda). */
export const openNodeSocket: OpenBackendSocket = async (target) => {
  const chunks: Uint8Array[] = [];
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    notify();
  };
  const onEnd = (): void => {
    ended = true;
    notify();
  };
  const onError = (err: Error): void => {
    failure ??= err;
    notify();
  };
  const attach = (s: Socket): void => {
    s.on('data', onData);
    s.on('end', onEnd);
    s.on('close', onEnd);
    s.on('error', onError);
  };
  const detach = (s: Socket): void => {
    s.off('data', onData);
    s.off('end', onEnd);
    s.off('close', onEnd);
    s.off('error', onError);
  };
  const established = (s: Socket, event: 'connect' | 'secureConnect'): Promise<void> =>
    new Promise((resolve, reject) => {
      const ok = (): void => {
        s.off('error', ko);
        resolve();
      };
      const ko = (err: Error): void => {
        s.off(event, ok);
        reject(err);
      };
      s.once(event, ok);
      s.once('error', ko);
    });

  let encrypted = target.tls === 'implicit';
  let socket: Socket = encrypted
    ? connectTls({ host: target.host, port: target.port, ...serverName(target.host) })
    : connectTcp({ host: target.host, port: target.port });
  await established(socket, encrypted ? 'secureConnect' : 'connect');
  attach(socket);

  return {
    get encrypted() {
      return encrypted;
    },
    async read() {
      for (;;) {
        const chunk = chunks.shift();
        if (chunk) return chunk;
        if (failure) throw failure;
        if (ended) return null;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    write: (bytes) =>
      new Promise((resolve, reject) => {
        if (failure) reject(failure);
        else socket.write(bytes, (err) => (err ? reject(err) : resolve()));
      }),
    async startTls() {
      // Bytes already here came in clear after the server's go-ahead: the caller refuses them, not this layer.
      detach(socket);
      const secured = connectTls({ socket, host: target.host, ...serverName(target.host) });
      socket = secured;
      await established(secured, 'secureConnect');
      attach(secured);
      encrypted = true;
    },
    close() {
      socket.destroy();
      ended = true;
      notify();
    },
  };
};

let opener: OpenBackendSocket = openNodeSocket;

/** Sets how this process opens backend sockets (once, at start: src/runtimes/cloudflare/worker.ts). */
export function useBackendSockets(open: OpenBackendSocket): void {
  opener = open;
}

/** Opens a backend connection the way this runtime does. */
export function openBackendSocket(target: SocketTarget): Promise<BackendSocket> {
  return opener(target);
}
