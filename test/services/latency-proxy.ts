/**
 * A TCP proxy that puts network distance between the app and a service (Dovecot, Radicale, Postfix, dynalite) and
 * counts what that distance costs: for bench/wan.ts and the round-trip test (test/e2e/round-trips.test.ts).
 *
 * Bytes pass untouched (TLS goes end to end, the proxy never reads it), each chunk delayed by half the round-trip
 * time in its direction, in order. A new connection costs one round trip before its first byte passes (the TCP
 * handshake, which a user-space proxy cannot delay itself).
 *
 * Counted per proxy: connections, and round trips: each time the client sends after the server last spoke (or
 * first on a connection), one request→response turn-around that costs the client a full round trip before it can
 * go on. Pipelined commands sent before the answers come count once; a TLS 1.3 handshake counts as one (its first
 * flight) plus the turn that waits for the server's first words. What the client sends last, unanswered, before it
 * ends the connection (TLS close_notify after LOGOUT) is not a round trip: nothing waited for it.
 */
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';

export interface RoundTripCounts {
  connections: number;
  roundTrips: number;
  bytesUp: number;
  bytesDown: number;
}

export interface LatencyProxy {
  readonly host: string;
  readonly port: number;
  /** The round-trip time the proxy adds (ms); may be changed between requests. */
  rttMs: number;
  /** The counts since the proxy started (subtract two of them to count one request). */
  counts(): RoundTripCounts;
  close(): Promise<void>;
}

export async function startLatencyProxy(target: { host: string; port: number }, rttMs = 0): Promise<LatencyProxy> {
  const totals: RoundTripCounts = { connections: 0, roundTrips: 0, bytesUp: 0, bytesDown: 0 };
  const sockets = new Set<Socket>();
  const proxy = {
    host: '127.0.0.1',
    port: 0,
    rttMs,
    counts: (): RoundTripCounts => ({ ...totals }),
    close: async (): Promise<void> => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const server: Server = createServer((client) => {
    totals.connections++;
    const upstream = new Socket();
    upstream.connect(target.port, target.host);
    sockets.add(client).add(upstream);
    // No Nagle on the proxy's own hops: its delays are the only ones.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // The connection is usable one round trip after it was opened; nothing passes before then.
    const openAt = Date.now() + proxy.rttMs;
    let serverSpoke = true;
    // A turn the client ends the connection after, unanswered (TLS close_notify after LOGOUT), waited for nothing.
    let unanswered = false;
    const lane = (to: Socket): ((chunk: Buffer) => void) => {
      let last = 0;
      return (chunk) => {
        const at = Math.max(Date.now() + proxy.rttMs / 2, openAt, last);
        last = at;
        const wait = at - Date.now();
        if (wait <= 0) to.write(chunk);
        else setTimeout(() => to.destroyed || to.write(chunk), wait);
      };
    };
    const toUpstream = lane(upstream);
    const toClient = lane(client);
    client.on('data', (chunk: Buffer) => {
      if (serverSpoke) {
        totals.roundTrips++;
        unanswered = true;
      }
      serverSpoke = false;
      totals.bytesUp += chunk.length;
      toUpstream(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      serverSpoke = true;
      unanswered = false;
      totals.bytesDown += chunk.length;
      toClient(chunk);
    });
    client.on('end', () => {
      if (unanswered) totals.roundTrips--;
      unanswered = false;
    });
    const close = (): void => {
      // Ends after what is still on its way has passed.
      const after = proxy.rttMs / 2 + 1;
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      }, after);
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as AddressInfo).port;
  return proxy;
}

/** `after` minus `before`. */
export function countsBetween(before: RoundTripCounts, after: RoundTripCounts): RoundTripCounts {
  return {
    connections: after.connections - before.connections,
    roundTrips: after.roundTrips - before.roundTrips,
    bytesUp: after.bytesUp - before.bytesUp,
    bytesDown: after.bytesDown - before.bytesDown,
  };
}
