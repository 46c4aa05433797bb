/**
 * Push (DESIGN §5) against a real Dovecot on loopback (the test services):
 *
 * 1. APPEND → Ping Status 2 latency, p50/p95 over `--trials` accounts (default 50), each with a synced device
 *    waiting in a Ping (heartbeat 600 s, PING_POLL_SECONDS at its default 20), and one APPEND by another IMAP client
 *    at a random moment:
 *    - IDLE, watcher in the Ping's process: the watcher's write wakes the Ping through the in-process hub;
 *    - IDLE, watcher in another process: the Ping learns from its feed poll alone (a separate hub);
 *    - sweep: the Cloudflare strategy run in Node, as the cron runs it: every minute a `sweep()` that repeats its
 *      pass every 10 s for 50 s (6 connections at most), with the isolate's memo kept between minutes; the Ping
 *      polls the feed.
 * 2. `--pings` (default 10,000) idle Pings held by one Node process: the real Node runtime (src/runtimes/node.ts)
 *    in a child process with its IDLE watcher, clients on loopback over HTTP from this process, `--accounts`
 *    (default 1,000) accounts with 10 devices each (one FolderSync per account, its hierarchy copied to the account's
 *    other devices), on a Dovecot of its own (one IDLE connection per account), heartbeat `--hold` (default 150 s;
 *    PING_MIN_HEARTBEAT lowered for it). The Pings are sent as fast as the server holds them (holdPings: at most 64
 *    sent and not yet held), and the run fails unless every one is held and expires with Status 1. RSS of the server,
 *    and its CPU time per Ping (from /proc: the whole life of the Pings, i.e. auth, direct check, waits, answers),
 *    split into setup and answer per Ping and holding per Ping-hour (measured while all are held, between the ramp
 *    and the first answers).
 * 3. State-store reads and writes of one idle device per hour, counted by a wrapper around the store, at heartbeats
 *    of 3540, 1740, 900 and 480 s: four hours of idle Pings on a simulated clock (countOps), the feed polls at the
 *    default PING_POLL_SECONDS counted by formula; the admin API's counters and the watcher's share apart.
 *
 *   npm run bench:push [-- --trials 50 --pings 10000 --accounts 1000 --hold 150
 *                         --skip latency|idle-local|idle-remote|sweep|hold|counts,...]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestProject } from 'vitest/node';
import { FolderType } from '../src/backends/types.ts';
import { loadConfig } from '../src/config.ts';
import { newGeneration, PushHub, pushHub } from '../src/push/feed.ts';
import { answerMarginMs } from '../src/push/wait.ts';
import { startIdleWatcher } from '../src/push/idle-watcher.ts';
import { sweep, SweepMemo } from '../src/push/sweep.ts';
import { openSqliteStateStore, STATE_FILE_NAME } from '../src/state/sqlite-node.ts';
import { deviceScope } from '../src/devices/seen.ts';
import type { StateStore } from '../src/state/types.ts';
import { decodeWbxml } from '../src/wbxml/decoder.ts';
import { encodeWbxml } from '../src/wbxml/encoder.ts';
import { child, children, childText, el } from '../src/wbxml/tree.ts';
import { TestDevice, testServer } from '../test/device/device.ts';
import { isRoot } from '../test/services/apt.ts';
import { startDovecot } from '../test/services/dovecot.ts';
import setup from '../test/services/global-setup.ts';
import { freePort } from '../test/services/process.ts';
import { createUser, imapConnect } from '../test/services/seed.ts';
import type { TestServices, TestUser } from '../test/services/types.ts';

const ROOT = join(import.meta.dirname, '..');
const DEFAULT_POLL_SECONDS = 20;

// ------------------------------------------------------------------------------------------------ helpers

interface Counts {
  reads: number;
  writes: number;
  byMethod: Record<string, number>;
}

/** A StateStore that counts its calls: get/list/read are reads, everything else writes. */
function counting(store: StateStore): { store: StateStore; counts: Counts; reset(): void } {
  const counts: Counts = { reads: 0, writes: 0, byMethod: {} };
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const name = String(prop);
        counts.byMethod[name] = (counts.byMethod[name] ?? 0) + 1;
        if (/^(get|list|read)/.test(name)) counts.reads++;
        else counts.writes++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    store: proxy,
    counts,
    reset() {
      counts.reads = 0;
      counts.writes = 0;
      counts.byMethod = {};
    },
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function pingBody(heartbeat: number, folderId: string): Uint8Array {
  return encodeWbxml(
    el('Ping', 'Ping', [
      el('Ping', 'HeartbeatInterval', String(heartbeat)),
      el('Ping', 'Folders', [el('Ping', 'Folder', [el('Ping', 'Id', folderId), el('Ping', 'Class', 'Email')])]),
    ]),
  );
}

function pingStatus(bytes: Uint8Array): number | undefined {
  if (bytes.length === 0) return undefined;
  return Number(childText(decodeWbxml(bytes), 'Status'));
}

async function appendNow(services: TestServices, user: TestUser, subject: string): Promise<number> {
  const imap = await imapConnect(services, user);
  try {
    await imap.append('INBOX', `From: bench@example.org\r\nTo: ${user.email}\r\nSubject: ${subject}\r\n\r\nHello.\r\n`);
    return performance.now();
  } finally {
    await imap.logout();
  }
}

/** Runs `fn` over `items`, `concurrency` at a time. */
async function pool<T, R>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

const MAIL_ONLY = { CALDAV_URL: '', CARDDAV_URL: '' };

export function masterEnv(services: TestServices): Record<string, string> {
  return { IMAP_MASTER_USER: services.master.user, IMAP_MASTER_PASSWORD: services.master.password };
}

// ------------------------------------------------------------------------------------------------ 1. latency

type Mode = 'idle-local' | 'idle-remote' | 'sweep';

interface LatencyResult {
  mode: Mode;
  latencies: number[];
  /** The watcher's state-store calls once attached (while the APPENDs came), and for how long (s). */
  watcherCounts: Counts;
  seconds: number;
  /** Sweep: the slowest pass over all the trial accounts, ms. */
  slowestPassMs?: number;
}

async function latency(services: TestServices, mode: Mode, trials: number): Promise<LatencyResult> {
  const env = { ...masterEnv(services), ...MAIL_ONLY };
  const base = openSqliteStateStore(':memory:').store;
  const server = testServer(services, env, { state: base });
  const push = loadConfig({
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    ...env,
  }).push;
  const watcherStore = counting(base);
  const hub = mode === 'idle-local' ? pushHub : new PushHub();
  let stopWatcher: () => Promise<void>;
  let slowestPassMs = 0;
  if (mode === 'sweep') {
    const abort = new AbortController();
    const memo = new SweepMemo();
    const cron = (async () => {
      while (!abort.signal.aborted) {
        const minute = Date.now();
        const report = await sweep({
          state: watcherStore.store,
          tenant: 'test',
          imap: services.imap,
          push,
          hub,
          until: minute + 50_000,
          passIntervalMs: 10_000,
          signal: abort.signal,
          memo,
        });
        slowestPassMs = Math.max(slowestPassMs, report.slowestPassMs);
        const wait = minute + 60_000 - Date.now();
        if (wait > 0 && !abort.signal.aborted)
          await sleep(wait, undefined, { signal: abort.signal }).catch(() => undefined);
      }
    })();
    stopWatcher = async () => {
      abort.abort();
      await cron;
    };
  } else {
    const watcher = startIdleWatcher({ state: watcherStore.store, tenant: 'test', imap: services.imap, push, hub });
    stopWatcher = () => watcher.stop();
  }

  try {
    const users = Array.from({ length: trials }, () => createUser(services));
    const devices = await pool(users, 8, async (user) => {
      const device = new TestDevice(server, user);
      await device.folderSync();
      const inbox = device.folderByType(FolderType.Inbox).serverId;
      await device.syncUntilDone(inbox);
      return { user, device, inbox };
    });
    const pings = devices.map(({ device, inbox }) =>
      device
        .send('Ping', pingBody(600, inbox))
        .then((res) => ({ at: performance.now(), status: pingStatus(res.bytes) })),
    );
    // Let the watcher attach: at once in process; another process lists leases every 15 s; the sweep's next pass.
    await sleep(mode === 'idle-local' ? 3_000 : mode === 'idle-remote' ? 17_000 : 12_000);
    // From here on the watcher is in its steady state: what it costs per hour, and per change.
    watcherStore.reset();
    const steadyFrom = performance.now();
    const window = mode === 'sweep' ? 60_000 : 20_000;
    const latencies = await Promise.all(
      devices.map(async ({ user }, i) => {
        await sleep(Math.random() * window);
        const appended = await appendNow(services, user, `trial ${i}`);
        const answer = await pings[i]!;
        if (answer.status !== 2) throw new Error(`${mode}: Ping answered Status ${answer.status}, not 2`);
        return answer.at - appended;
      }),
    );
    return {
      mode,
      latencies,
      watcherCounts: watcherStore.counts,
      seconds: (performance.now() - steadyFrom) / 1000,
      ...(mode === 'sweep' ? { slowestPassMs } : {}),
    };
  } finally {
    await stopWatcher();
  }
}

// ------------------------------------------------------------------------------------------------ 2. 10k Pings

const CLOCK_TICKS = 100;

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** RSS of a running process, MiB; NaN once it has exited (a zombie has no VmRSS). */
export function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return line === undefined ? Number.NaN : Number(line.replace(/\D+/g, '')) / 1024;
}

export interface Started {
  child: ChildProcess;
  exited: Promise<void>;
}

/** How the Node runtime is started: from the sources through tsx (default), or the compiled dist/node.js. */
export interface RuntimeCommand {
  command: string;
  args: string[];
  cwd: string;
}

const TSX_RUNTIME: RuntimeCommand = {
  command: process.execPath,
  args: ['--import', 'tsx', 'src/runtimes/node.ts'],
  cwd: ROOT,
};

export async function startNodeRuntime(
  env: Record<string, string>,
  how: RuntimeCommand = TSX_RUNTIME,
): Promise<Started> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(IMAP|SMTP|CALDAV|CARDDAV|STATE|DYNAMODB|AWS|PING)_|^PORT$/.test(k)),
  );
  // node --import tsx: the server is this very process (tsx's CLI would run it in a grandchild).
  const child = spawn(how.command, how.args, {
    cwd: how.cwd,
    env: { ...clean, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let listening = false;
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer): void => {
      if (listening) return;
      output += d.toString();
      if (output.includes('"event":"listening"')) {
        listening = true;
        output = '';
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => {
      if (!listening) output += d.toString();
      else process.stderr.write(d);
    });
    child.on('exit', (code) => reject(new Error(`the server exited (${code}): ${output}`)));
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await ready;
  return { child, exited };
}

function post(
  agent: http.Agent,
  port: number,
  user: TestUser,
  deviceId: string,
  cmd: string,
  body: Uint8Array,
  localAddress?: string,
): Promise<{ status: number; bytes: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        ...(localAddress ? { localAddress } : {}),
        method: 'POST',
        agent,
        path: `/Microsoft-Server-ActiveSync?Cmd=${cmd}&User=${encodeURIComponent(user.email)}&DeviceId=${deviceId}&DeviceType=iPhone`,
        headers: {
          Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}`,
          'MS-ASProtocolVersion': '14.1',
          'Content-Type': 'application/vnd.ms-sync.wbxml',
          'Content-Length': String(body.length),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes: new Uint8Array(Buffer.concat(chunks)) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Room for a few thousand connections: one imap process each, and anvil and auth serve every one of them. */
const BIG_DOVECOT = `
default_client_limit = 12000
service imap {
  process_limit = 6000
}
`;

/**
 * A Dovecot of its own for the hold: the watcher keeps one IDLE connection per account and the Node runtime's pool
 * about one more, beyond the test Dovecot's 1,024 imap processes.
 */

async function bigDovecot(services: TestServices): Promise<{ services: TestServices; stop(): Promise<void> }> {
  const runDir = mkdtempSync('/tmp/ase-bp-');
  chmodSync(runDir, 0o755);
  mkdirSync(`${runDir}/radicale`, { recursive: true });
  const dovecot = await startDovecot(runDir, [], isRoot(), { extraConfig: BIG_DOVECOT });
  return {
    services: { ...services, dir: runDir, imap: { host: '127.0.0.1', port: dovecot.imapPort, secure: false } },
    async stop() {
      await dovecot.stop();
      rmSync(runDir, { recursive: true, force: true });
    },
  };
}

export interface HoldOptions {
  /** How the server is started (default: through tsx). */
  how?: RuntimeCommand;
  /**
   * At most this many Pings sent and not yet held by the server (its activesync_pings_held gauge): the ramp goes as
   * fast as the server takes them, never faster. A fixed rate above what the server can take (an open ramp) fills the
   * listen queue and loses connections (see the README, Footprint).
   */
  window?: number;
  /** And at most this many Pings sent a second. */
  rate?: number;
}

export interface HoldResult {
  pings: number;
  accounts: number;
  heartbeat: number;
  /** From the first Ping sent to all held. */
  rampSeconds: number;
  /** The window measured while all were held. */
  holdSeconds: number;
  /** Pings the server held (its gauge), at the start and at the end of the hold window. */
  heldAtStart: number;
  heldAtEnd: number;
  rssBaseMiB: number;
  /** Median RSS over the hold window. */
  rssHoldMiB: number;
  rssPeakMiB: number;
  cpuPerPing: number;
  /** CPU of the ramp (auth, check, start of the wait), per Ping. */
  cpuRampPerPing: number;
  /** CPU while holding, per held Ping and hour (its polls, its share of timers, GC and the watcher). */
  cpuHoldPerPingHour: number;
  /** CPU from the end of the hold window to the last answer (the last polls, the answers), per Ping. */
  cpuAnswerPerPing: number;
  /** When the Pings answered, against their heartbeat: answer time − (send time + heartbeat), seconds. */
  expiry: { earliest: number; median: number; latest: number; late?: number };
  /** The wait's own margin before the heartbeat (push/wait.ts answerMarginMs), seconds. */
  expiryMargin: number;
  statuses: Record<string, number>;
  /** Connections the kernel dropped from a full listen queue meanwhile (machine-wide, all processes). */
  listenOverflows: number;
}

/** A held Ping answered later than this after its heartbeat is counted as late (its client may have given up). */
const EXPIRY_LATE_LIMIT_S = 5;

/** The fd limit (soft) of a process, from /proc. */
function openFilesLimit(pid: number | 'self'): number {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'))!;
  const soft = line.split(/\s+/)[3]!;
  return soft === 'unlimited' ? Infinity : Number(soft);
}

/** TcpExtListenOverflows: connections dropped because a listen queue was full (machine-wide). */
function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const names = lines.find((l) => l.startsWith('TcpExt:'))!.split(' ');
  const values = lines.filter((l) => l.startsWith('TcpExt:'))[1]!.split(' ');
  return Number(values[names.indexOf('ListenOverflows')]);
}

/** The server's count of held Pings, from its /metrics. */
async function heldPings(port: number, token: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { Authorization: `Bearer ${token}` } });
  const text = await res.text();
  const line = /^activesync_pings_held (\d+)/m.exec(text);
  if (res.status !== 200 || !line) throw new Error(`GET /metrics answered HTTP ${res.status} without the held Pings`);
  return Number(line[1]);
}

/**
 * Loopback source addresses the clients' connections are spread over: each has its own ephemeral port range, so
 * 10,000 held Pings plus the setup's closed connections (TIME_WAIT) never run out of ports.
 */
const SOURCE_ADDRESSES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);

export async function holdPings(
  testServices: TestServices,
  count: number,
  accountCount: number,
  heartbeat: number,
  options: HoldOptions = {},
): Promise<HoldResult> {
  const how = options.how ?? TSX_RUNTIME;
  const window = options.window ?? 64;
  const rate = options.rate ?? Infinity;
  // Each held Ping is a socket at both ends: both processes need room for them (Node raises its soft limit to the
  // hard one at start-up; it cannot go higher).
  const needed = count + 1_000;
  const ownLimit = openFilesLimit('self');
  if (ownLimit < needed)
    throw new Error(
      `the benchmark may open ${ownLimit} files (ulimit -n), ${count} held Pings need ${needed}: run it from a shell with \`ulimit -n ${needed}\` (as root, or with a hard limit that high)`,
    );
  const big = await bigDovecot(testServices);
  const services = big.services;
  const port = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), 'ase-bench-push-'));
  const metricsToken = randomBytes(16).toString('hex');
  const server = await startNodeRuntime(
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      STATE_DIR: stateDir,
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
      // STARTTLS to the test Dovecot: its CA, by an absolute path (the server may run in another folder).
      NODE_EXTRA_CA_CERTS: join(ROOT, 'test/fixtures/tls/ca.pem'),
      TENANT: 'bench',
      // The scripted clients do not provision; a short heartbeat needs a lower minimum.
      PROVISIONING: 'loose',
      PING_MIN_HEARTBEAT: '10',
      // The held Pings are counted from the server's own gauge.
      METRICS_TOKEN: metricsToken,
      ...masterEnv(services),
    },
    how,
  );
  const pid = server.child.pid!;
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    const serverLimit = openFilesLimit(pid);
    if (serverLimit < needed)
      throw new Error(`the server may open ${serverLimit} files (ulimit -n), ${count} held Pings need ${needed}`);
    const accounts = Array.from({ length: Math.min(accountCount, count) }, () => createUser(services));
    const devices = Array.from({ length: count }, (_, i) => ({
      user: accounts[i % accounts.length]!,
      deviceId: `BENCH${i}`,
      inbox: '',
      source: SOURCE_ADDRESSES[i % SOURCE_ADDRESSES.length]!,
    }));
    const folderSync = encodeWbxml(el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]));
    const setupStarted = performance.now();
    // The first device of each account does FolderSync through the server; the account's other devices get a copy of
    // its folder hierarchy and device record in the server's state file, as if each had done the same FolderSync
    // (every device of a user gets the same folder ServerIds). Thousands of FolderSyncs would take most of the run.
    const firsts = devices.slice(0, accounts.length);
    await pool(firsts, 8, async (d) => {
      const res = await post(agent, port, d.user, d.deviceId, 'FolderSync', folderSync, d.source);
      if (res.status !== 200 || res.bytes.length === 0)
        throw new Error(`FolderSync of ${d.deviceId} answered HTTP ${res.status}`);
      const adds = children(child(decodeWbxml(res.bytes), 'Changes'), 'Add');
      d.inbox =
        childText(
          adds.find((a) => childText(a, 'Type') === String(FolderType.Inbox)),
          'ServerId',
        ) ?? '';
      if (!d.inbox) throw new Error(`FolderSync of ${d.deviceId} gave no Inbox (HTTP ${res.status})`);
    });
    const copy = openSqliteStateStore(join(stateDir, STATE_FILE_NAME));
    try {
      for (const [i, d] of devices.entries()) {
        if (i < firsts.length) continue;
        const first = firsts[i % firsts.length]!;
        const from = deviceScope('bench', first.user.email, first.deviceId);
        const to = deviceScope('bench', d.user.email, d.deviceId);
        const [record, hierarchy] = await Promise.all([copy.store.getDevice(from), copy.store.getHierarchy(from)]);
        if (!record || !hierarchy) throw new Error(`the state of ${first.deviceId} after its FolderSync is missing`);
        await copy.store.updateDevice(to, {
          deviceType: record.deviceType,
          protocolVersion: record.protocolVersion,
          lastSeen: Date.now(),
        });
        await copy.store.commitHierarchy(to, 'absent', hierarchy);
        d.inbox = first.inbox;
      }
    } finally {
      copy.close();
    }
    console.log(`  (${count} devices set up in ${((performance.now() - setupStarted) / 1000).toFixed(0)} s)`);
    await sleep(2_000);
    const rssBaseMiB = rssMiB(pid);
    const cpuStart = cpuSeconds(pid);
    const overflowsStart = listenOverflows();

    // The ramp: as fast as the server holds them (`window` in flight), at most `rate` a second.
    const statuses: Record<string, number> = {};
    const answeredAt: number[] = [];
    let settled = 0;
    const sentAt: number[] = [];
    const send = (i: number): Promise<void> => {
      const d = devices[i]!;
      sentAt[i] = performance.now();
      return post(agent, port, d.user, d.deviceId, 'Ping', pingBody(heartbeat, d.inbox), d.source)
        .then(
          (res) => {
            const key = res.status === 200 ? `Status ${pingStatus(res.bytes)}` : `HTTP ${res.status}`;
            statuses[key] = (statuses[key] ?? 0) + 1;
            if (key === 'Status 1') answeredAt[i] = performance.now();
          },
          (err: unknown) => {
            const key = `error ${(err as { code?: string }).code ?? String(err)}`;
            statuses[key] = (statuses[key] ?? 0) + 1;
          },
        )
        .finally(() => settled++);
    };
    let rssPeakMiB = rssBaseMiB;
    const sampler = setInterval(() => {
      const rss = rssMiB(pid);
      if (rss > rssPeakMiB) rssPeakMiB = rss;
    }, 1_000);
    const answers: Promise<void>[] = [];
    const rampStarted = performance.now();
    let held = 0;
    let lastProgress = performance.now();
    const exited = (): string | undefined =>
      server.child.exitCode !== null || server.child.signalCode !== null
        ? `the server exited (${server.child.exitCode ?? server.child.signalCode})`
        : undefined;
    for (;;) {
      if (exited()) throw new Error(`${exited()} during the ramp: ${JSON.stringify(statuses)}`);
      const now = await heldPings(port, metricsToken);
      if (now > held) lastProgress = performance.now();
      held = now;
      if (answers.length === count && held >= count) break;
      // Nothing held for a while, or Pings already answered or failed during the ramp: say so and stop.
      if (performance.now() - lastProgress > 60_000 || settled > 0)
        throw new Error(
          `the ramp stalled: ${held} of ${count} Pings held, ${answers.length} sent, ${settled} ended early (${JSON.stringify(statuses)})`,
        );
      const byRate = Math.min(count, Math.floor(((performance.now() - rampStarted) / 1000) * rate) + 1);
      while (answers.length < Math.min(byRate, held + settled + window)) answers.push(send(answers.length));
      // Each look at /metrics costs the server a rendering of all its metrics: a few a second are enough.
      await sleep(500);
    }
    const rampSeconds = (performance.now() - rampStarted) / 1000;

    // The hold: from here to a little before the first Ping's answer is due.
    const cpuHoldStart = cpuSeconds(pid);
    const holdStarted = performance.now();
    const heldAtStart = held;
    const firstAnswerAt = sentAt[0]! + heartbeat * 1000 - answerMarginMs(heartbeat);
    const holdMs = firstAnswerAt - 5_000 - performance.now();
    if (holdMs < 20_000)
      throw new Error(
        `the ramp took ${rampSeconds.toFixed(0)} s: a heartbeat of ${heartbeat} s leaves no hold window; raise --hold`,
      );
    const rssSamples: number[] = [];
    const holdSampler = setInterval(() => {
      const rss = rssMiB(pid);
      if (!Number.isNaN(rss)) rssSamples.push(rss);
    }, 1_000);
    await sleep(holdMs);
    clearInterval(holdSampler);
    if (exited()) throw new Error(`${exited()} while the Pings were held: ${JSON.stringify(statuses)}`);
    const cpuHold = cpuSeconds(pid) - cpuHoldStart;
    const holdSeconds = (performance.now() - holdStarted) / 1000;
    const heldAtEnd = await heldPings(port, metricsToken);
    const cpuAnswerStart = cpuSeconds(pid);
    await Promise.all(answers);
    clearInterval(sampler);
    const cpuEnd = cpuSeconds(pid);
    const late = answeredAt
      .map((at, i) => (at - sentAt[i]!) / 1000 - heartbeat)
      .filter((s) => Number.isFinite(s))
      .sort((a, b) => a - b);
    const result: HoldResult = {
      pings: count,
      accounts: accounts.length,
      heartbeat,
      rampSeconds,
      holdSeconds,
      heldAtStart,
      heldAtEnd,
      rssBaseMiB,
      rssHoldMiB: percentile(rssSamples, 50),
      rssPeakMiB,
      cpuPerPing: (cpuEnd - cpuStart) / count,
      cpuRampPerPing: (cpuHoldStart - cpuStart) / count,
      cpuHoldPerPingHour: (cpuHold / (count * holdSeconds)) * 3600,
      cpuAnswerPerPing: (cpuEnd - cpuAnswerStart) / count,
      expiry: { earliest: late[0] ?? NaN, median: percentile(late, 50), latest: late.at(-1) ?? NaN },
      expiryMargin: answerMarginMs(heartbeat) / 1000,
      statuses,
      listenOverflows: listenOverflows() - overflowsStart,
    };
    // Every Ping held through the window and answered Status 1, or the figures mean nothing. Answers after the
    // heartbeat (a starved server answers late) are counted and shown, not failed: a client may still take them.
    const expired = statuses['Status 1'] ?? 0;
    result.expiry.late = late.filter((s) => s > EXPIRY_LATE_LIMIT_S).length;
    console.log(
      `  held ${heldAtStart} of ${count} Pings at the start of the hold window, ${heldAtEnd} at its end; answers: ${JSON.stringify(statuses)}`,
    );
    if (heldAtStart !== count || heldAtEnd !== count || expired !== count)
      throw new Error(
        `not all ${count} Pings were held: ${heldAtStart} held at the start of the window, ${heldAtEnd} at its end, ${expired} expired with Status 1, ${count - expired} failed: ${JSON.stringify(statuses)}; ramp ${rampSeconds.toFixed(0)} s, window ${holdSeconds.toFixed(0)} s; answered at heartbeat + ${result.expiry.earliest.toFixed(1)} / ${result.expiry.median.toFixed(1)} / ${result.expiry.latest.toFixed(1)} s (min/median/max)`,
      );
    return result;
  } finally {
    agent.destroy();
    server.child.kill('SIGTERM');
    await server.exited;
    rmSync(stateDir, { recursive: true, force: true });
    await big.stop();
  }
}

// ------------------------------------------------------------------------------------------------ 3. counts

/** The admin API's per-request counters (src/admin/stats.ts): tenant-wide, not the device's state; shown apart. */
const ADMIN_COUNTER = 'addCommandStats';

interface HourCounts {
  heartbeat: number;
  /** Per simulated idle device-hour, measured: reads besides the feed polls, the polls (computed), writes. */
  reads: number;
  polls: number;
  writes: number;
  adminCounterWrites: number;
  byMethod: Record<string, number>;
  /** The in-process IDLE watcher's calls for this account, per hour (lease lists apart). */
  watcherReads: number;
  watcherWrites: number;
}

/**
 * An idle device at a real heartbeat, on a simulated clock: Date.now() jumps a heartbeat ahead before each Ping, so
 * everything that writes "only when old enough" (the device's lastSeen, the lease, the wait marker, the Ping cache)
 * sees real ages. Each Ping is sent with the heartbeat, and once waiting it is ended by a newer request of the device
 * (the in-process hub, no state call), so no real heartbeat passes; its feed polls are counted by formula.
 */
async function countOps(services: TestServices, heartbeats: number[], hours = 4): Promise<HourCounts[]> {
  const env = { ...masterEnv(services), ...MAIL_ONLY };
  const base = openSqliteStateStore(':memory:').store;
  const app = counting(base);
  const watcherStore = counting(base);
  const server = testServer(services, env, { state: app.store });
  const push = loadConfig({
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    ...env,
  }).push;
  const watcher = startIdleWatcher({ state: watcherStore.store, tenant: 'test', imap: services.imap, push });
  const realNow = Date.now.bind(Date);
  let offset = 0;
  Date.now = () => realNow() + offset;
  try {
    const user = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    const idlePing = async (heartbeat: number): Promise<void> => {
      const waiting = new Promise<void>((resolve) => {
        const off = pushHub.onWaiting((u) => {
          if (u.user !== device.scope.user) return;
          off();
          resolve();
        });
      });
      const answer = device.send('Ping', pingBody(heartbeat, inbox));
      await waiting;
      pushHub.superseded(device.scope, newGeneration(Date.now() + 1));
      const status = pingStatus((await answer).bytes);
      if (status !== 1) throw new Error(`an idle Ping answered Status ${status}`);
    };
    const results: HourCounts[] = [];
    for (const heartbeat of heartbeats) {
      // The first Ping at this heartbeat caches it and its folders; what follows is what an idle device repeats.
      offset += heartbeat * 1000;
      await idlePing(heartbeat);
      const pings = Math.ceil((hours * 3600) / heartbeat);
      app.reset();
      watcherStore.reset();
      for (let i = 0; i < pings; i++) {
        offset += heartbeat * 1000;
        await idlePing(heartbeat);
      }
      const perHour = (n: number): number => (n * 3600) / (pings * heartbeat);
      const admin = app.counts.byMethod[ADMIN_COUNTER] ?? 0;
      results.push({
        heartbeat,
        reads: perHour(app.counts.reads),
        polls: perHour(pings * pollsPerPing(heartbeat)),
        writes: perHour(app.counts.writes - admin),
        adminCounterWrites: perHour(admin),
        byMethod: Object.fromEntries(Object.entries(app.counts.byMethod).map(([k, v]) => [k, perHour(v)])),
        watcherReads: perHour(watcherStore.counts.reads - (watcherStore.counts.byMethod.listLeases ?? 0)),
        watcherWrites: perHour(watcherStore.counts.writes),
      });
    }
    return results;
  } finally {
    Date.now = realNow;
    await watcher.stop();
  }
}

/** Feed polls of one Ping: one per PING_POLL_SECONDS until the capped heartbeat's end (none at the end itself). */
function pollsPerPing(heartbeat: number, pollSeconds = DEFAULT_POLL_SECONDS): number {
  return Math.ceil((heartbeat * 1000 - answerMarginMs(heartbeat)) / (pollSeconds * 1000)) - 1;
}

// ------------------------------------------------------------------------------------------------ report

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padEnd(widths[i]!)).join('  ');
}

export async function runPushBench(
  options: { trials?: number; pings?: number; accounts?: number; hold?: number; skip?: string[] } = {},
): Promise<void> {
  let services: TestServices | undefined;
  const project = { provide: (_k: string, v: TestServices) => (services = v) } as unknown as TestProject;
  const teardown = await setup(project);
  const skip = new Set(options.skip ?? []);
  const trials = options.trials ?? 50;
  const lines: string[][] = [];
  try {
    console.log('\nPush against Dovecot (loopback); PING_POLL_SECONDS 20 (default)');
    const widths = [52, 22, 16];
    if (!skip.has('latency')) {
      const names: Record<Mode, string> = {
        'idle-local': "IDLE, watcher in the Ping's process",
        'idle-remote': 'IDLE, watcher in another process (feed poll)',
        sweep: 'sweep every 10 s, 6 connections (feed poll)',
      };
      const targets: Record<Mode, string> = {
        'idle-local': 'p50 ≤ 2 s',
        'idle-remote': '(no target)',
        sweep: 'p50 ≤ 20 s',
      };
      for (const mode of ['idle-local', 'idle-remote', 'sweep'] as Mode[]) {
        if (skip.has(mode)) continue;
        const r = await latency(services!, mode, trials);
        const p50 = percentile(r.latencies, 50) / 1000;
        const p95 = percentile(r.latencies, 95) / 1000;
        lines.push([
          `APPEND→Status 2, ${names[mode]} (${trials} trials)`,
          `p50 ${p50.toFixed(2)} s, p95 ${p95.toFixed(2)} s`,
          targets[mode],
        ]);
        const c = r.watcherCounts.byMethod;
        const other = r.watcherCounts.reads - (c.listLeases ?? 0);
        lines.push([
          `  the watcher's state calls meanwhile (${r.seconds.toFixed(0)} s)`,
          `${other} reads, ${r.watcherCounts.writes} writes for ${trials} changes`,
          `+ ${(((c.listLeases ?? 0) / r.seconds) * 3600).toFixed(0)} lease lists/h/tenant`,
        ]);
        if (r.slowestPassMs !== undefined) {
          const perAccountMs = r.slowestPassMs / trials;
          lines.push([
            `  slowest sweep pass over the ${trials} accounts`,
            `${r.slowestPassMs} ms`,
            `≈ ${Math.floor(10_000 / perAccountMs)} accounts per 10 s pass`,
          ]);
        }
      }
    }
    if (!skip.has('hold')) {
      const r = await holdPings(services!, options.pings ?? 10_000, options.accounts ?? 1_000, options.hold ?? 150);
      lines.push([
        `${r.pings} idle Pings (${r.accounts} accounts) in one Node process: RSS`,
        `${r.rssPeakMiB.toFixed(0)} MiB peak (${r.rssBaseMiB.toFixed(0)} before)`,
        '< 1024 MiB',
      ]);
      lines.push([
        `  CPU per Ping (heartbeat ${r.heartbeat} s: auth, check, wait, answer)`,
        `${(r.cpuPerPing * 1000).toFixed(2)} ms`,
        '< 10 ms',
      ]);
      lines.push([
        `  setup and answer per Ping / holding per Ping-hour`,
        `${((r.cpuRampPerPing + r.cpuAnswerPerPing) * 1000).toFixed(2)} ms / ${(r.cpuHoldPerPingHour * 1000).toFixed(1)} ms`,
        '',
      ]);
      const perHour = (3600 / 3540) * (r.cpuRampPerPing + r.cpuAnswerPerPing) + r.cpuHoldPerPingHour;
      lines.push([`  CPU per idle device-hour (heartbeat 3540 s)`, `${(perHour * 1000).toFixed(1)} ms`, '']);
      lines.push([
        `  answers`,
        Object.entries(r.statuses)
          .map(([k, v]) => `${k}: ${v}`)
          .join(', '),
        `(ramp ${r.rampSeconds.toFixed(0)} s, hold ${r.holdSeconds.toFixed(0)} s)`,
      ]);
    }
    if (!skip.has('counts')) {
      const f = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(1));
      for (const c of await countOps(services!, [3540, 1740, 900, 480])) {
        lines.push([
          `Per idle device-hour, heartbeat ${c.heartbeat} s`,
          `${(c.reads + c.polls).toFixed(0)} reads (${c.polls.toFixed(0)} polls), ${c.writes.toFixed(1)} writes`,
          '≤ 240 reads, ≤ 10 writes',
        ]);
        lines.push([
          '  by method (polls apart)',
          Object.entries(c.byMethod)
            .filter(([k]) => k !== ADMIN_COUNTER)
            .map(([k, v]) => `${k} ${f(v)}`)
            .join(', '),
          '',
        ]);
        lines.push([
          `  + admin counters (tenant-wide, one per request)`,
          `${c.adminCounterWrites.toFixed(1)} writes`,
          '',
        ]);
        lines.push([
          `  + IDLE watcher (in process) for the account`,
          `${c.watcherReads.toFixed(1)} reads, ${c.watcherWrites.toFixed(1)} writes`,
          '+ 16 lease lists / 15 s / tenant',
        ]);
      }
    }
    console.log(row(['measure', 'result', 'target'], widths));
    for (const line of lines) console.log(row(line, widths));
  } finally {
    await teardown();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string): string | undefined => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? process.argv[at + 1] : undefined;
  };
  await runPushBench({
    ...(arg('trials') ? { trials: Number(arg('trials')) } : {}),
    ...(arg('pings') ? { pings: Number(arg('pings')) } : {}),
    ...(arg('accounts') ? { accounts: Number(arg('accounts')) } : {}),
    ...(arg('hold') ? { hold: Number(arg('hold')) } : {}),
    ...(arg('skip') ? { skip: arg('skip')!.split(',') } : {}),
  });
}
