/**
 * Soak: `--devices` (default 200) simulated devices against the real Node runtime (src/runtimes/node.ts in a child
 * process, its IDLE watcher included) for `--minutes` (default 10), over the test Dovecot on loopback:
 * - two devices per account; mail arrives by LMTP at `--rate` messages per second (default 1) to random accounts;
 * - each device waits in Ping on its Inbox and Archive, syncs what Ping names, and (the first device of an account,
 *   now and then) moves a message from the Inbox to Archive;
 * - every `--every` seconds (default 30) a line: requests/s, errors, p50/p99 latency of the non-Ping requests, and
 *   the server's RSS;
 * - at the end, after the last delivery, every device syncs both folders to the end, and each delivered message must
 *   be on every device of its account exactly once (in the Inbox or, once moved, in Archive), never added twice.
 *
 *   npm run bench:soak [-- --minutes 10 --devices 200 --rate 1 --every 30]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestProject } from 'vitest/node';
import { FolderType } from '../src/backends/types.ts';
import { child, childText, el } from '../src/wbxml/tree.ts';
import { itemText, TestDevice, type TestServer } from '../test/device/device.ts';
import setup from '../test/services/global-setup.ts';
import { freePort } from '../test/services/process.ts';
import { createUser, deliverViaLmtp } from '../test/services/seed.ts';
import type { TestServices, TestUser } from '../test/services/types.ts';

const ROOT = join(import.meta.dirname, '..');
const HEARTBEAT_SECONDS = 30;

export interface SoakOptions {
  minutes?: number;
  devices?: number;
  /** Messages delivered per second, all accounts together. */
  rate?: number;
  /** Seconds between two report lines. */
  every?: number;
}

interface SimulatedDevice {
  device: TestDevice;
  account: Account;
  /** The first device of its account moves messages. */
  mover: boolean;
  inbox: string;
  archive: string;
  /** Adds of a subject into a collection that already held it. */
  duplicates: number;
}

interface Account {
  user: TestUser;
  delivered: Set<string>;
}

/** Requests and their latencies since the last report, and in all. */
class Meter {
  total = 0;
  errors = 0;
  /** What the errors were: HTTP status, or command and Status. */
  readonly kinds = new Map<string, number>();
  private window: number[] = [];
  private windowRequests = 0;
  readonly all: number[] = [];

  error(kind: string): void {
    this.errors += 1;
    this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + 1);
  }

  record(ms: number, ping: boolean): void {
    this.total += 1;
    this.windowRequests += 1;
    if (!ping) {
      this.window.push(ms);
      this.all.push(ms);
    }
  }

  take(): { requests: number; p50: number; p99: number } {
    const window = this.window.sort((a, b) => a - b);
    const out = { requests: this.windowRequests, p50: percentile(window, 0.5), p99: percentile(window, 0.99) };
    this.window = [];
    this.windowRequests = 0;
    return out;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.replace(/\D+/g, '')) / 1024;
}

async function startNodeRuntime(env: Record<string, string>): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(IMAP|SMTP|CALDAV|CARDDAV|STATE|DYNAMODB|AWS|PING|AUTH)_|^PORT$|^TENANTS/.test(k),
    ),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/runtimes/node.ts'], {
    cwd: ROOT,
    env: { ...clean, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let listening = false;
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      // SOAK_DEBUG=1: the server's log lines that carry an error.
      if (listening && process.env.SOAK_DEBUG)
        for (const line of d.toString().split('\n')) if (line.includes('"error"')) console.log(`server: ${line}`);
      if (listening) return;
      output += d.toString();
      if (output.includes('"event":"listening"')) {
        listening = true;
        resolve();
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (!listening) output += d.toString();
    });
    child.on('exit', (code) => reject(new Error(`the server exited (${code}): ${output}`)));
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await ready;
  return { child, exited };
}

/** A TestServer over HTTP to the child process, timing every request. */
function httpServer(meter: Meter): TestServer {
  return {
    async fetch(url, init) {
      const started = performance.now();
      const res = await fetch(url, init);
      const bytes = await res.arrayBuffer();
      meter.record(performance.now() - started, url.includes('Cmd=Ping'));
      if (res.status !== 200) meter.error(`HTTP ${res.status} ${/Cmd=(\w+)/.exec(url)?.[1]}`);
      return new Response(bytes, { status: res.status, headers: res.headers });
    },
    // Not used: the state is the child process's.
    state: undefined as never,
    logs: [],
  };
}

/** One Sync of a collection to the end; counts Adds of subjects the collection already held, and Status ≠ 1. */
async function syncAll(sim: SimulatedDevice, collectionId: string, meter: Meter): Promise<void> {
  for (let round = 0; round < 100; round++) {
    const held = new Set([...sim.device.items(collectionId).values()].map((d) => itemText(d, 'Subject', 'Email')));
    // SyncKey 0 only sets the collection up; the items come from the next round (as a phone does it).
    const initial = (sim.device.collections.get(collectionId)?.syncKey ?? '0') === '0';
    const result = await sim.device.sync(collectionId, { windowSize: 50 });
    if (result.status !== 1) {
      meter.error(`Sync Status ${result.status}`);
      return;
    }
    for (const id of result.added) {
      const subject = itemText(sim.device.items(collectionId).get(id), 'Subject', 'Email');
      if (held.has(subject)) {
        sim.duplicates += 1;
        if (process.env.SOAK_DEBUG)
          console.log(
            `duplicate add ${sim.device.deviceId} ${collectionId === sim.inbox ? 'inbox' : 'archive'} ${subject} ${id} mover=${sim.mover}`,
          );
      }
    }
    if (!result.moreAvailable && !initial) return;
  }
}

async function moveOne(sim: SimulatedDevice, meter: Meter): Promise<void> {
  const items = sim.device.items(sim.inbox);
  const entry = [...items.entries()].find(([, d]) => itemText(d, 'Subject', 'Email')?.startsWith('soak '));
  if (!entry) return;
  const [serverId, data] = entry;
  const res = await sim.device.send(
    'MoveItems',
    el('Move', 'MoveItems', [
      el('Move', 'Move', [
        el('Move', 'SrcMsgId', serverId),
        el('Move', 'SrcFldId', sim.inbox),
        el('Move', 'DstFldId', sim.archive),
      ]),
    ]),
  );
  const response = child(res.body, 'Response');
  const destination = childText(response, 'DstMsgId');
  if (res.status !== 200 || childText(response, 'Status') !== '3' || !destination) {
    meter.error(`MoveItems Status ${childText(response, 'Status')}`);
    return;
  }
  // As a phone does: the item is now in Archive under its new id.
  items.delete(serverId);
  sim.device.items(sim.archive).set(destination, data);
}

function pingBody(folders: string[]) {
  return el('Ping', 'Ping', [
    el('Ping', 'HeartbeatInterval', String(HEARTBEAT_SECONDS)),
    el(
      'Ping',
      'Folders',
      folders.map((id) => el('Ping', 'Folder', [el('Ping', 'Id', id), el('Ping', 'Class', 'Email')])),
    ),
  ]);
}

async function runDevice(sim: SimulatedDevice, meter: Meter, until: () => boolean): Promise<void> {
  while (!until()) {
    const res = await sim.device.send('Ping', pingBody([sim.inbox, sim.archive]));
    const status = childText(res.body, 'Status');
    if (status === '7') {
      // The folder hierarchy changed (or the server lost it): a phone runs FolderSync, then pings again.
      meter.error('Ping Status 7');
      await sim.device.folderSync();
      continue;
    }
    if (res.status !== 200 || (status !== '1' && status !== '2')) {
      if (res.status === 200) meter.error(`Ping Status ${status}`);
      await sleep(1000);
      continue;
    }
    if (status === '2') {
      const changed = (child(res.body, 'Folders')?.children ?? []).map((f) => f.text ?? '');
      for (const folder of changed) await syncAll(sim, folder, meter);
      if (sim.mover && Math.random() < 0.3) await moveOne(sim, meter);
    }
  }
}

export async function runSoakBench(
  options: SoakOptions = {},
): Promise<{ lost: number; duplicates: number; errors: number }> {
  const minutes = options.minutes ?? 10;
  const deviceCount = options.devices ?? 200;
  const rate = options.rate ?? 1;
  const every = options.every ?? 30;
  let services: TestServices | undefined;
  const project = { provide: (_k: string, v: TestServices) => (services = v) } as unknown as TestProject;
  const teardown = await setup(project);
  const stateDir = mkdtempSync(join(tmpdir(), 'ase-soak-'));
  const port = await freePort();
  const server = await startNodeRuntime({
    PORT: String(port),
    HOST: '127.0.0.1',
    STATE_DIR: stateDir,
    IMAP_HOST: services!.imap.host,
    IMAP_PORT: String(services!.imap.port),
    IMAP_SECURE: 'false',
    TENANT: 'soak',
    PING_MIN_HEARTBEAT: '10',
    PING_POLL_SECONDS: '2',
  });
  const pid = server.child.pid!;
  const meter = new Meter();
  const http = httpServer(meter);
  try {
    console.log(
      `\nSoak: ${deviceCount} devices, ${minutes} min, ${rate} message/s, Node runtime (pid ${pid}) over Dovecot on loopback`,
    );
    const accounts: Account[] = Array.from({ length: Math.ceil(deviceCount / 2) }, () => ({
      user: createUser(services!),
      delivered: new Set<string>(),
    }));
    const sims: SimulatedDevice[] = [];
    for (let i = 0; i < deviceCount; i++) {
      const account = accounts[Math.floor(i / 2)]!;
      const device = new TestDevice(http, account.user, `SOAK${String(i).padStart(5, '0')}`);
      device.origin = `http://127.0.0.1:${port}`;
      sims.push({ device, account, mover: i % 2 === 0, inbox: '', archive: '', duplicates: 0 });
    }
    // Set-up: provision, folders, first syncs; 16 devices at a time.
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < sims.length) {
          const sim = sims[next++]!;
          // A FolderSync that fails (Status ≠ 1) is counted and retried, as a phone retries it.
          for (let attempt = 1; ; attempt++) {
            const answer = await sim.device.folderSync();
            if (childText(answer, 'Status') === '1') break;
            meter.error(`FolderSync Status ${childText(answer, 'Status')}`);
            if (attempt === 5)
              throw new Error(`FolderSync of ${sim.device.deviceId} answered Status ${childText(answer, 'Status')}`);
            await sleep(1000);
          }
          sim.inbox = sim.device.folderByType(FolderType.Inbox).serverId;
          sim.archive = sim.device.folderByName('Archive').serverId;
          await syncAll(sim, sim.inbox, meter);
          await syncAll(sim, sim.archive, meter);
        }
      }),
    );
    meter.take();
    const setupErrors = meter.errors;
    const setupRequests = meter.total;
    // The totals at the end are of the soak itself (and its final syncs), not of the set-up.
    meter.all.length = 0;
    console.log(`set-up done: ${meter.total} requests, ${setupErrors} errors, RSS ${rssMiB(pid).toFixed(0)} MiB`);

    const started = Date.now();
    const end = started + minutes * 60_000;
    const over = (): boolean => Date.now() >= end;
    let delivered = 0;
    const delivery = (async () => {
      while (!over()) {
        const account = accounts[Math.floor(Math.random() * accounts.length)]!;
        const subject = `soak ${delivered++}`;
        await deliverViaLmtp(services!, 'sender@example.test', account.user.email, {
          from: 'sender@example.test',
          to: account.user.email,
          subject,
          text: `${subject}\n`,
        });
        account.delivered.add(subject);
        await sleep(1000 / rate);
      }
    })();
    const report = (async () => {
      console.log(
        ['min', 'requests/s', 'errors', 'p50 ms', 'p99 ms', 'RSS MiB', 'delivered'].map((h) => h.padEnd(11)).join(''),
      );
      let last = Date.now();
      while (!over()) {
        await sleep(Math.min(every * 1000, Math.max(0, end - Date.now())));
        const now = Date.now();
        const window = meter.take();
        const row = [
          ((now - started) / 60_000).toFixed(1),
          (window.requests / ((now - last) / 1000)).toFixed(1),
          meter.errors - setupErrors,
          window.p50.toFixed(0),
          window.p99.toFixed(0),
          rssMiB(pid).toFixed(0),
          delivered,
        ];
        console.log(row.map((c) => String(c).padEnd(11)).join(''));
        last = now;
      }
    })();
    await Promise.all([delivery, report, ...sims.map((sim) => runDevice(sim, meter, over))]);

    // The last messages reach Dovecot and the watcher; then every device syncs both folders to the end.
    await sleep(3000);
    next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < sims.length) {
          const sim = sims[next++]!;
          await syncAll(sim, sim.inbox, meter);
          await syncAll(sim, sim.archive, meter);
          // A move by the other device of the account shows in this one's Inbox as a Delete, in Archive as an Add.
          await syncAll(sim, sim.inbox, meter);
        }
      }),
    );

    let lost = 0;
    let duplicates = 0;
    for (const sim of sims) {
      duplicates += sim.duplicates;
      const counts = new Map<string, number>();
      for (const collection of [sim.inbox, sim.archive]) {
        for (const data of sim.device.items(collection).values()) {
          const subject = itemText(data, 'Subject', 'Email') ?? '';
          counts.set(subject, (counts.get(subject) ?? 0) + 1);
        }
      }
      for (const subject of sim.account.delivered) {
        const n = counts.get(subject) ?? 0;
        if (n === 0) lost += 1;
        if (n > 1) duplicates += n - 1;
        if (n !== 1 && process.env.SOAK_DEBUG)
          console.log(
            `final ${sim.device.deviceId} ${subject} x${n} mover=${sim.mover} inbox=${[...sim.device.items(sim.inbox).entries()].filter(([, d]) => itemText(d, 'Subject', 'Email') === subject).map(([k]) => k)} archive=${[...sim.device.items(sim.archive).entries()].filter(([, d]) => itemText(d, 'Subject', 'Email') === subject).map(([k]) => k)}`,
          );
      }
    }
    const all = meter.all.sort((a, b) => a - b);
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `\n${delivered} messages delivered to ${accounts.length} accounts, ${deviceCount} devices; ${meter.total - setupRequests} requests in ${seconds.toFixed(0)} s after set-up (${((meter.total - setupRequests) / seconds).toFixed(1)}/s)`,
    );
    console.log(
      `errors ${meter.errors} (${setupErrors} in set-up); latency (non-Ping, after set-up) p50 ${percentile(all, 0.5).toFixed(0)} ms, p99 ${percentile(all, 0.99).toFixed(0)} ms; RSS ${rssMiB(pid).toFixed(0)} MiB`,
    );
    if (meter.kinds.size > 0)
      console.log(`errors by kind: ${[...meter.kinds].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
    console.log(`lost (a delivered message missing on a device): ${lost}; duplicated (added twice): ${duplicates}`);
    console.log(
      lost === 0 && duplicates === 0
        ? 'every delivered message reached every device of its account exactly once'
        : 'MESSAGES LOST OR DUPLICATED',
    );
    return { lost, duplicates, errors: meter.errors };
  } finally {
    server.child.kill('SIGTERM');
    await Promise.race([server.exited, sleep(5000)]);
    rmSync(stateDir, { recursive: true, force: true });
    await teardown();
  }
}

function argument(name: string): number | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : undefined;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await runSoakBench({
    minutes: argument('minutes'),
    devices: argument('devices'),
    rate: argument('rate'),
    every: argument('every'),
  });
  process.exitCode = result.lost === 0 && result.duplicates === 0 ? 0 : 1;
}
