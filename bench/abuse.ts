/**
 * Abuse (issue 17 item 3): what one authenticated user's worst-case bodies cost the Node runtime, and what other
 * users see meanwhile. The real Node runtime (src/runtimes/node.ts) runs in a child process over the test Dovecot on
 * loopback; one attacker device sends `--concurrency` (default 10) Syncs at once, again and again for `--seconds`
 * (default 20) per shape, each body exactly at the limit of a Sync body:
 * - `empty-tags`: the whole body one-byte empty elements (the most elements a byte can buy);
 * - `at-budget`: `--elements` (default MAX_WBXML_ELEMENTS' 50,000) elements, the rest of the body one string: the
 *   largest body the decoder accepts.
 * Meanwhile `--victims` (default 5) other users' devices each run small Syncs of their Inbox one after another. Each
 * shape runs on a fresh server process (same state); the baseline is the victims alone.
 *
 * Printed per phase: the attacker's answers, the server's peak RSS (sampled every 20 ms from /proc) and CPU time
 * (utime + stime) over the phase, and the victims' Sync latency p50/p99/max. Targets: RSS under 512 MiB, victims'
 * p99 under 100 ms. The server runs with --max-old-space-size=2048 so that a runaway heap ends in an out-of-memory
 * exit rather than taking the machine's memory.
 *
 *   npm run bench:abuse [-- --seconds 20 --concurrency 10 --victims 5 --body-bytes N --elements N]
 *   (--body-bytes: the limit of a Sync body; by default MAX_WBXML_BYTES as the server reads it)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { TestProject } from 'vitest/node';
import { FolderType } from '../src/backends/types.ts';
import { loadConfig } from '../src/config.ts';
import { TestDevice, type TestServer } from '../test/device/device.ts';
import setup from '../test/services/global-setup.ts';
import { freePort } from '../test/services/process.ts';
import { createUser, sampleMessages, seedMailbox } from '../test/services/seed.ts';
import type { TestServices } from '../test/services/types.ts';

const ROOT = join(import.meta.dirname, '..');
const RSS_TARGET_MIB = 512;
const P99_TARGET_MS = 100;

export interface AbuseOptions {
  seconds?: number;
  concurrency?: number;
  victims?: number;
  /** The limit of a Sync body; MAX_WBXML_BYTES (as loadConfig reads it from the environment) when absent. */
  bodyBytes?: number;
  /** Elements of the `at-budget` body; MAX_WBXML_ELEMENTS when absent. */
  elements?: number;
  /** A folder for a V8 CPU profile of each server process (--profile). */
  profileDir?: string;
}

export interface PhaseResult {
  phase: string;
  /** The attacker's answers as it saw them (HTTP status, or how the request failed). */
  attacks: Map<string, number>;
  /** The attacker's requests as the server logged them: HTTP status, command Status, error. */
  served: Map<string, number>;
  /** Median and p99 of the server's own time for the attacker's requests (the log line's ms). */
  servedMs: { p50: number; p99: number };
  /** The machine's 1-minute load average at the phase's start and end (os.loadavg). */
  load: [number, number];
  peakRssMiB: number;
  cpuSeconds: number;
  wallSeconds: number;
  victimSyncs: number;
  victimErrors: number;
  p50: number;
  p99: number;
  max: number;
  /** Set when the server process ended during the phase. */
  exited: string | undefined;
}

/** Header (WBXML 1.3, UTF-8), Sync, `count` empty Collection elements (AirSync 0x0F), END: `bytes` long. */
export function emptyTagsBody(bytes: number): Uint8Array {
  const body = new Uint8Array(bytes);
  body.set([3, 1, 106, 0, 0x45]);
  body.fill(0x0f, 5, bytes - 1);
  body[bytes - 1] = 0x01;
  return body;
}

/** Sync holding `elements - 2` empty elements and a SyncKey whose string fills the body to `bytes`. */
export function atBudgetBody(bytes: number, elements: number): Uint8Array {
  const empties = elements - 2;
  const body = new Uint8Array(bytes);
  body.set([3, 1, 106, 0, 0x45]);
  body.fill(0x0f, 5, 5 + empties);
  let at = 5 + empties;
  body[at++] = 0x4b; // SyncKey, with content
  body[at++] = 0x03; // STR_I
  body.fill(0x61, at, bytes - 3);
  body.set([0x00, 0x01, 0x01], bytes - 3);
  return body;
}

/**
 * `concurrency` loops in a worker thread, each posting `body` as the attacker's Sync until `end` (or the server is
 * gone); resolves to the count of each answer.
 */
function attack(
  origin: string,
  device: TestDevice,
  body: Uint8Array,
  concurrency: number,
  end: number,
): Promise<Map<string, number>> {
  const url = `${origin}/Microsoft-Server-ActiveSync?Cmd=Sync&User=${encodeURIComponent(device.user.name)}&DeviceId=${device.deviceId}&DeviceType=${device.deviceType}`;
  const headers = {
    Authorization: `Basic ${Buffer.from(`${device.user.email}:${device.user.password}`).toString('base64')}`,
    'MS-ASProtocolVersion': device.version,
    'Content-Type': 'application/vnd.ms-sync.wbxml',
    'X-MS-PolicyKey': device.policyKey ?? '0',
  };
  const worker = new Worker(
    `
    const { parentPort, workerData: { url, headers, body, concurrency, end } } = require('node:worker_threads');
    const counts = {};
    const count = (k) => { counts[k] = (counts[k] ?? 0) + 1; };
    const loop = async () => {
      while (Date.now() < end) {
        try {
          const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(180000) });
          await res.arrayBuffer();
          count('HTTP ' + res.status);
        } catch (err) {
          count('failed: ' + err.name);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    Promise.all(Array.from({ length: concurrency }, loop)).then(() => parentPort.postMessage(counts));
    `,
    { eval: true, workerData: { url, headers, body, concurrency, end } },
  );
  return new Promise((resolve, reject) => {
    worker.once('message', (counts: Record<string, number>) => {
      void worker.terminate();
      resolve(new Map(Object.entries(counts)));
    });
    worker.once('error', reject);
  });
}

function merge(into: Map<string, number>, from: Map<string, number>): void {
  for (const [k, n] of from) into.set(k, (into.get(k) ?? 0) + n);
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function rssMiB(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmRSS:'));
    return line ? Number(line.replace(/\D+/g, '')) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** utime + stime of a process, seconds (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

interface Runtime {
  child: ChildProcess;
  exited: Promise<string>;
  url: string;
  /** The server's log lines (one JSON object each) since start-up, for the phase's summary. */
  logs: Record<string, unknown>[];
}

async function startNodeRuntime(env: Record<string, string>, profileDir?: string): Promise<Runtime> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(IMAP|SMTP|CALDAV|CARDDAV|STATE|DYNAMODB|AWS|PING|AUTH|MAX)_|^PORT$|^TENANTS/.test(k),
    ),
  );
  const port = await freePort();
  // --profile DIR: a V8 CPU profile of each server process, written when it stops (chrome://inspect, speedscope).
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const child = spawn(
    process.execPath,
    ['--max-old-space-size=2048', ...profile, '--import', 'tsx', 'src/runtimes/node.ts'],
    {
      cwd: ROOT,
      env: { ...clean, ...env, PORT: String(port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  let listening = false;
  let tail = '';
  const logs: Record<string, unknown>[] = [];
  let partial = '';
  const exited = new Promise<string>((resolve) =>
    child.on('exit', (code, signal) =>
      resolve(`exit ${code ?? signal}${/heap out of memory/i.test(tail) ? ' (JavaScript heap out of memory)' : ''}`),
    ),
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (listening) {
        const lines = (partial + d.toString()).split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          try {
            logs.push(JSON.parse(line) as Record<string, unknown>);
          } catch {
            // not a log line
          }
        }
        return;
      }
      output += d.toString();
      if (output.includes('"event":"listening"')) {
        listening = true;
        resolve();
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      tail = (tail + d.toString()).slice(-4000);
      if (!listening) output += d.toString();
    });
    child.on('exit', (code) => {
      if (!listening) reject(new Error(`the server exited (${code}): ${output}`));
    });
  });
  return { child, exited, url: `http://127.0.0.1:${port}`, logs };
}

/** A TestServer over HTTP to the child process. */
function httpServer(): TestServer {
  return {
    async fetch(url, init) {
      const res = await fetch(url, { ...init, signal: AbortSignal.timeout(60_000) });
      return new Response(await res.arrayBuffer(), { status: res.status, headers: res.headers });
    },
    state: undefined as never,
    logs: [],
  };
}

export async function runAbuseBench(options: AbuseOptions = {}): Promise<PhaseResult[]> {
  const seconds = options.seconds ?? 20;
  const concurrency = options.concurrency ?? 10;
  const victimCount = options.victims ?? 5;
  let services: TestServices | undefined;
  const project = { provide: (_k: string, v: TestServices) => (services = v) } as unknown as TestProject;
  const teardown = await setup(project);
  const stateDir = mkdtempSync(join(tmpdir(), 'ase-abuse-'));
  const env = {
    STATE_DIR: stateDir,
    IMAP_HOST: services!.imap.host,
    IMAP_PORT: String(services!.imap.port),
    IMAP_SECURE: 'false',
    TENANT: 'abuse',
    // The attacker logs in again and again with the right password: no throttling applies, none is needed.
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => /^MAX_/.test(k)) as [string, string][]),
  };
  const config = loadConfig(env);
  const bodyBytes = options.bodyBytes ?? config.wbxmlBudget.maxBytes;
  const elements = options.elements ?? config.wbxmlBudget.maxElements;
  const shapes: [string, Uint8Array][] = [
    ['empty-tags', emptyTagsBody(bodyBytes)],
    ['at-budget', atBudgetBody(bodyBytes, elements)],
  ];
  const results: PhaseResult[] = [];
  let runtime: Runtime | undefined;
  try {
    console.log(
      `\nAbuse: ${concurrency} concurrent Sync bodies of ${bodyBytes} bytes from one user, ${seconds} s per shape; ${victimCount} other users' small Syncs meanwhile (Node runtime over Dovecot on loopback)`,
    );
    runtime = await startNodeRuntime(env, options.profileDir);
    const http = httpServer();
    const deviceOf = (user = createUser(services!)): TestDevice => {
      const device = new TestDevice(http, user);
      device.origin = runtime!.url;
      return device;
    };
    const attacker = deviceOf();
    const victims = await Promise.all(
      Array.from({ length: victimCount }, async () => {
        const user = createUser(services!);
        await seedMailbox(services!, user, 'INBOX', sampleMessages({ to: user.email }).slice(0, 3));
        const device = deviceOf(user);
        await device.folderSync();
        const inbox = device.folderByType(FolderType.Inbox).serverId;
        await device.syncUntilDone(inbox);
        return { device, inbox };
      }),
    );
    await attacker.folderSync();

    const phase = async (name: string, body: Uint8Array | undefined): Promise<PhaseResult> => {
      if (!runtime || runtime.child.exitCode !== null) runtime = await startNodeRuntime(env, options.profileDir);
      for (const d of [attacker, ...victims.map((v) => v.device)]) d.origin = runtime.url;
      // Warm: each device's first request on a fresh process logs in to IMAP; that is not what is measured.
      await Promise.all([attacker.folderSync(), ...victims.map(({ device, inbox }) => device.sync(inbox))]);
      const pid = runtime.child.pid!;
      let exited: string | undefined;
      void runtime.exited.then((how) => (exited = how));
      const cpuBefore = cpuSeconds(pid) ?? 0;
      const logsBefore = runtime.logs.length;
      const loadBefore = loadavg()[0]!;
      let peak = rssMiB(pid) ?? 0;
      let cpuLast = cpuBefore;
      const started = Date.now();
      const end = started + (body ? seconds : Math.min(seconds, 5)) * 1000;
      const over = (): boolean => Date.now() >= end || exited !== undefined;
      const sampler = (async () => {
        while (!over()) {
          peak = Math.max(peak, rssMiB(pid) ?? 0);
          cpuLast = cpuSeconds(pid) ?? cpuLast;
          await sleep(20);
        }
      })();
      const attacks = new Map<string, number>();
      // The attacker runs in a worker thread: its uploads must not hold up the victims' timing in this thread.
      const attackers = body
        ? [attack(runtime.url, attacker, body, concurrency, end).then((m) => merge(attacks, m))]
        : [];
      const latencies: number[] = [];
      let victimErrors = 0;
      const victimLoops = victims.map(async ({ device, inbox }) => {
        while (!over()) {
          const t = performance.now();
          try {
            const round = await device.sync(inbox);
            if (round.status !== 1) victimErrors += 1;
            else latencies.push(performance.now() - t);
          } catch {
            victimErrors += 1;
            await sleep(100);
          }
        }
      });
      await Promise.all([sampler, ...attackers, ...victimLoops]);
      const wallSeconds = (Date.now() - started) / 1000;
      const sorted = latencies.sort((a, b) => a - b);
      const served = new Map<string, number>();
      const servedMs: number[] = [];
      for (const line of runtime.logs.slice(logsBefore)) {
        if (line.user !== attacker.user.email) continue;
        const key = [
          `HTTP ${String(line.http)}`,
          line.status !== undefined ? `Status ${String(line.status)}` : '',
          typeof line.error === 'string' ? `(${line.error.replace(/ at byte \d+/, '').slice(0, 60)})` : '',
        ]
          .filter(Boolean)
          .join(' ');
        served.set(key, (served.get(key) ?? 0) + 1);
        if (typeof line.ms === 'number') servedMs.push(line.ms);
      }
      servedMs.sort((a, b) => a - b);
      return {
        phase: name,
        attacks,
        served,
        servedMs: { p50: percentile(servedMs, 0.5), p99: percentile(servedMs, 0.99) },
        load: [loadBefore, loadavg()[0]!],
        peakRssMiB: peak,
        cpuSeconds: (cpuSeconds(pid) ?? cpuLast) - cpuBefore,
        wallSeconds,
        victimSyncs: latencies.length,
        victimErrors,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        max: sorted.at(-1) ?? 0,
        exited,
      };
    };

    results.push(await phase('baseline (no attack)', undefined));
    for (const [name, body] of shapes) {
      // Each shape on a fresh process: what one shape left behind does not count against the next.
      runtime.child.kill('SIGTERM');
      await Promise.race([runtime.exited, sleep(5000)]);
      runtime = await startNodeRuntime(env, options.profileDir);
      results.push(await phase(name, body));
    }
    print(results, bodyBytes, elements);
    return results;
  } finally {
    runtime?.child.kill('SIGTERM');
    await Promise.race([runtime?.exited, sleep(5000)]);
    rmSync(stateDir, { recursive: true, force: true });
    await teardown();
  }
}

function print(results: PhaseResult[], bodyBytes: number, elements: number): void {
  const counts = (m: Map<string, number>): string =>
    [...m]
      .sort((x, y) => y[1] - x[1])
      .map(([k, n]) => `${k} ×${n}`)
      .join(', ') || '—';
  const baseline = results[0];
  console.log(`body ${bodyBytes} bytes; at-budget shape ${elements} elements`);
  for (const r of results) {
    console.log(`\n${r.phase}  (load average ${r.load[0].toFixed(2)} → ${r.load[1].toFixed(2)})`);
    console.log(
      `  server:            peak RSS ${r.peakRssMiB.toFixed(0)} MiB, CPU ${r.cpuSeconds.toFixed(1)} s in ${r.wallSeconds.toFixed(1)} s, ${r.exited ?? 'up'}`,
    );
    console.log(
      `  victims' Syncs:    ${r.victimSyncs} (${r.victimErrors} failed), p50 ${r.p50.toFixed(0)} ms, p99 ${r.p99.toFixed(0)} ms, max ${r.max.toFixed(0)} ms` +
        (baseline && r !== baseline && baseline.p99 > 0
          ? `; p99 ${(r.p99 / baseline.p99).toFixed(1)}× the baseline's, p50 ${(r.p50 / baseline.p50).toFixed(1)}×`
          : ''),
    );
    if (r === baseline) continue;
    console.log(`  attacker saw:      ${counts(r.attacks)}`);
    console.log(`  server answered:   ${counts(r.served)}`);
    console.log(`  server time (attacker): p50 ${r.servedMs.p50.toFixed(0)} ms, p99 ${r.servedMs.p99.toFixed(0)} ms`);
  }
  const attacked = results.slice(1);
  const rssOk = attacked.every((r) => r.peakRssMiB < RSS_TARGET_MIB && r.exited === undefined);
  const p99Ok = attacked.every((r) => r.p99 < P99_TARGET_MS && r.victimErrors === 0);
  console.log(
    `\ntargets: server RSS under ${RSS_TARGET_MIB} MiB: ${rssOk ? 'met' : 'MISSED'}; other users' Sync p99 under ${P99_TARGET_MS} ms: ${p99Ok ? 'met' : 'MISSED'}`,
  );
}

function argument(name: string): number | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : undefined;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runAbuseBench({
    seconds: argument('seconds'),
    concurrency: argument('concurrency'),
    victims: argument('victims'),
    bodyBytes: argument('body-bytes'),
    elements: argument('elements'),
    profileDir: process.argv.includes('--profile') ? process.argv[process.argv.indexOf('--profile') + 1] : undefined,
  });
}
