/**
 * Round trips at a distance (issue 18 item 3): what each command costs when the server sits tens of milliseconds
 * from IMAP, SMTP, DAV and the state store, as Workers at the edge and functions in another region do.
 *
 * A latency proxy (test/services/latency-proxy.ts) sits between the runtime and each service, adding 0, 20 and 50 ms
 * of round-trip time (half each way; a new connection pays one more round trip), and counts, per service,
 * connections and request→response turn-arounds. Dovecot's log counts the IMAP logins. Every hop is TLS where the
 * service speaks it: IMAP is implicit TLS (services.imaps), SMTP implicit TLS (services.smtps), DAV https; the state
 * store is dynalite over http for Lambda (DynamoDB), SQLite on local disk for Node (no network: not proxied), and the
 * Durable Object for Workers (local to the isolate in production too: not proxied).
 *
 * Runtimes: Node (`src/runtimes/node.ts` in its own process, pooled IMAP sessions), the Lambda handler (Function URL
 * events in this process, pooled sessions, DynamoDB on dynalite) and the Worker in workerd (`wrangler dev`, a fresh
 * IMAP session per request as on Cloudflare).
 *
 * Commands, each the median of `--reps` requests (default 5) after a warm-up: FolderSync (no change), Sync (no
 * change), Sync (one new message), Ping start (a message arrived since the last Sync: the Ping's start check finds it
 * and answers Status 2 at once), SendMail (saved in Sent), ItemOperations Fetch (a message's body).
 *
 *   npm run bench:wan [-- --reps 5 --rtt 0,20,50 --skip node,lambda,workers]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import type { StateStore } from '../src/state/types.ts';
import type { TestServer } from '../test/device/device.ts';
import {
  COMMANDS,
  type Command,
  type Counts,
  measured,
  settle,
  prepare,
  SERVICES,
  type Service,
  startSession,
  startWanProxies,
  type WanProxies,
  wanLambdaServer,
  wanSettings,
} from '../test/e2e/round-trip-steps.ts';
import setup from '../test/services/global-setup.ts';
import { nodeTestServer, spawnNodeServer, stopNodeServer, waitFor } from '../test/services/node-server.ts';
import { freePort } from '../test/services/process.ts';
import type { TestServices } from '../test/services/types.ts';
import { fetchVia, startWranglerDev } from '../test/services/wrangler-dev.ts';

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1]! : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2 : NaN;
}

// ------------------------------------------------------------------------------------------------ the runtimes

interface Runtime {
  name: string;
  server: TestServer;
  /** The state store is reached over the network (proxied). */
  stateOverNetwork: boolean;
  stop(): Promise<void>;
}

async function nodeRuntime(services: TestServices, proxies: WanProxies): Promise<Runtime> {
  const port = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), 'ase-wan-node-'));
  const proc = spawnNodeServer({
    ...wanSettings(services, proxies),
    PORT: String(port),
    HOST: '127.0.0.1',
    STATE_DIR: stateDir,
  });
  // tsx compiles the server at start: slow on a loaded machine.
  await waitFor(() => proc.output().includes('"event":"listening"') || proc.child.exitCode !== null, 'Node', 120_000);
  if (proc.child.exitCode !== null) throw new Error(`the Node server exited: ${proc.output()}`);
  const { server, state } = nodeTestServer(`http://127.0.0.1:${port}`, stateDir);
  return {
    name: 'Node',
    server,
    stateOverNetwork: false,
    async stop() {
      state.close();
      await stopNodeServer(proc);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

async function lambdaRuntime(services: TestServices, proxies: WanProxies): Promise<Runtime> {
  return {
    name: 'Lambda',
    server: wanLambdaServer(services, proxies, `bench-wan-${Date.now()}`),
    stateOverNetwork: true,
    stop: async () => undefined,
  };
}

async function workersRuntime(services: TestServices, proxies: WanProxies): Promise<Runtime> {
  const worker = await startWranglerDev(wanSettings(services, proxies));
  return {
    name: 'Workers',
    server: { fetch: fetchVia(worker.origin), state: undefined as unknown as StateStore, logs: [] },
    stateOverNetwork: false,
    stop: () => worker.stop(),
  };
}

// ------------------------------------------------------------------------------------------------ main

interface Row {
  runtime: string;
  rtt: number;
  command: Command;
  ms: number;
  counts: Counts;
}

function medianCounts(all: Counts[]): Counts {
  const out = { logins: median(all.map((c) => c.logins)) } as Counts;
  for (const s of SERVICES)
    out[s] = {
      connections: median(all.map((c) => c[s].connections)),
      roundTrips: median(all.map((c) => c[s].roundTrips)),
      bytesUp: median(all.map((c) => c[s].bytesUp)),
      bytesDown: median(all.map((c) => c[s].bytesDown)),
    };
  return out;
}

async function main(): Promise<void> {
  const reps = Number(arg('reps', '5'));
  const rtts = arg('rtt', '0,20,50').split(',').map(Number);
  const skip = new Set(arg('skip', '').split(','));
  let services: TestServices | undefined;
  const project = { provide: (_k: string, v: TestServices) => (services = v) } as unknown as TestProject;
  const teardown = await setup(project);
  const proxies = await startWanProxies(services!);
  const rows: Row[] = [];
  try {
    const runtimes = [
      ['node', nodeRuntime],
      ['lambda', lambdaRuntime],
      ['workers', workersRuntime],
    ] as const;
    for (const [key, start] of runtimes) {
      if (skip.has(key)) continue;
      for (const p of SERVICES) proxies[p].rttMs = 0;
      const runtime = await start(services!, proxies);
      try {
        const session = await startSession(services!, proxies, runtime.server);
        for (const rtt of rtts) {
          for (const p of SERVICES) proxies[p].rttMs = rtt;
          // Warm: pooled sessions and kept-alive connections at this distance.
          await (await prepare(session, 'Sync (no change)'))();
          for (const command of COMMANDS) {
            const ms: number[] = [];
            const counts: Counts[] = [];
            for (let i = 0; i < reps; i++) {
              const request = await prepare(session, command);
              const m = await measured(services!, proxies, session.user, request);
              await request.after?.();
              await settle(proxies);
              ms.push(m.ms);
              counts.push(m.counts);
            }
            const row = { runtime: runtime.name, rtt, command, ms: median(ms), counts: medianCounts(counts) };
            rows.push(row);
            print(row, runtime.stateOverNetwork);
          }
        }
      } finally {
        await runtime.stop();
      }
    }
  } finally {
    for (const p of SERVICES) await proxies[p].close();
    await teardown();
  }
  console.log(
    `\nload average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

let header = false;
function print(row: Row, stateOverNetwork: boolean): void {
  if (!header) {
    header = true;
    console.log(
      `\nmedian of ${arg('reps', '5')} requests; round trips (connections) per service at the proxy; logins counted by Dovecot`,
    );
    console.log(
      `${'runtime'.padEnd(8)} ${'RTT'.padStart(3)}  ${'command'.padEnd(21)} ${'ms'.padStart(7)}  ${'total RT'.padStart(8)}  ${'IMAP'.padStart(7)}  ${'SMTP'.padStart(7)}  ${'DAV'.padStart(7)}  ${'state'.padStart(7)}  logins`,
    );
  }
  const c = row.counts;
  const cell = (s: Service): string =>
    s === 'state' && !stateOverNetwork ? 'local'.padStart(7) : `${c[s].roundTrips} (${c[s].connections})`.padStart(7);
  const total = SERVICES.reduce((n, s) => n + c[s].roundTrips + c[s].connections, 0);
  console.log(
    `${row.runtime.padEnd(8)} ${String(row.rtt).padStart(3)}  ${row.command.padEnd(21)} ${row.ms.toFixed(1).padStart(7)}  ${String(total).padStart(8)}  ${cell('imap')}  ${cell('smtp')}  ${cell('dav')}  ${cell('state')}  ${c.logins}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
