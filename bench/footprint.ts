/**
 * The Node runtime's footprint (issue 18 item 4), for the server run from the sources through tsx (as `npm start` did
 * before the production build) and for the compiled dist/node.js with plain node (`npm run build`, as `npm start` and
 * the container run it now):
 *
 * 1. Idle RSS: the server started on the embedded SQLite store with a mail-only configuration, one OPTIONS answered,
 *    then left alone; the median of RSS samples over `--idle` seconds (default 20). Then "warm": after one device of
 *    a test user has provisioned, done FolderSync and synced an Inbox of 20 messages (the code a request needs is
 *    loaded by then), idle again.
 * 2. `--pings` (default 10,000) held Pings on one process, against a Dovecot of its own with `--accounts` (default 20)
 *    users: a Ping holds one device each, and a newer request of a device ends that device's Ping (MS-ASCMD §2.2.1.13),
 *    so the Pings need as many devices (`--pings / --accounts` per user); the IDLE watcher keeps one IMAP connection per
 *    account. The Pings are sent as fast as the server holds them (at most `--window`, default 64, sent and not yet
 *    held by its activesync_pings_held gauge; `--rate` caps them a second), with heartbeat `--hold` (default 180 s),
 *    which must outlast the ramp by 20 s or more. Every Ping must be held through the window and answer Status 1 at its
 *    heartbeat, or the run fails with the counts. Reported (bench/push.ts holdPings): held / failed, RSS while all
 *    are held (median) and per held Ping, CPU (utime + stime from /proc) per Ping over its whole life and split into
 *    ramp, answer and holding per Ping-hour, and when the Pings answered against their heartbeat.
 *
 *   npm run bench:footprint [-- --pings 10000 --accounts 20 --hold 180 --idle 20 --window 64 --rate N
 *                              --skip tsx|dist|hold --tsx-root DIR (the sources to run through tsx, e.g. an older checkout)
 *                              --profile DIR (CPU profiles of the compiled server, for chrome://inspect or speedscope)]
 *
 * Targets: idle ≤ 90 MB RSS; 10,000 held Pings ≤ 600 MB; ≤ 5 ms CPU per Ping.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestProject } from 'vitest/node';
import { FolderType } from '../src/backends/types.ts';
import { TestDevice } from '../test/device/device.ts';
import setup from '../test/services/global-setup.ts';
import { nodeTestServer } from '../test/services/node-server.ts';
import { freePort } from '../test/services/process.ts';
import { createUser, seedMailbox } from '../test/services/seed.ts';
import type { TestServices } from '../test/services/types.ts';
import { holdPings, type HoldResult, type RuntimeCommand, rssMiB, startNodeRuntime } from './push.ts';

const ROOT = join(import.meta.dirname, '..');
const MB = 1_000_000 / 1024 / 1024;

interface IdleResult {
  /** Median RSS over the idle window after start-up and one OPTIONS, MiB. */
  idleMiB: number;
  /** The same after one device's first FolderSync and Inbox sync; the error when that failed. */
  warmMiB: number | string;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function sampleRss(pid: number, seconds: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < seconds; i++) {
    await sleep(1_000);
    samples.push(rssMiB(pid));
  }
  return median(samples);
}

async function idleFootprint(services: TestServices, how: RuntimeCommand, idleSeconds: number): Promise<IdleResult> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'ase-bench-footprint-'));
  const server = await startNodeRuntime(
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      STATE_DIR: stateDir,
      TENANT: 'test',
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
      // STARTTLS to the test Dovecot: its CA, by an absolute path (the server may run in another folder).
      NODE_EXTRA_CA_CERTS: join(ROOT, 'test/fixtures/tls/ca.pem'),
    },
    how,
  );
  const pid = server.child.pid!;
  try {
    const options = await fetch(`${base}/Microsoft-Server-ActiveSync`, { method: 'OPTIONS' });
    if (options.status !== 401) throw new Error(`OPTIONS without credentials answered HTTP ${options.status}`);
    const idleMiB = await sampleRss(pid, idleSeconds);

    const user = createUser(services);
    await seedMailbox(
      services,
      user,
      'INBOX',
      Array.from({ length: 20 }, (_, i) => ({
        message: `From: <a@example.test>\r\nSubject: m${i}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>${'x'.repeat(2_000)}</p>\r\n`,
      })),
    );
    const { server: client, state } = nodeTestServer(base, stateDir);
    try {
      const device = new TestDevice(client, user);
      const provisioned = await device.provision();
      if (device.policyKey === undefined)
        throw new Error(`Provision answered HTTP ${provisioned.initial.status}, ${provisioned.ack?.status ?? '-'}`);
      await device.folderSync();
      await device.syncUntilDone(device.folderByType(FolderType.Inbox).serverId);
    } catch (err) {
      // An older checkout (--tsx-root) may not speak to today's test device: its idle figure still stands.
      return { idleMiB, warmMiB: `failed: ${err instanceof Error ? err.message : String(err)}` };
    } finally {
      state.close();
    }
    const warmMiB = await sampleRss(pid, idleSeconds);
    return { idleMiB, warmMiB };
  } finally {
    server.child.kill('SIGTERM');
    await server.exited;
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padEnd(widths[i]!)).join('  ');
}

export async function runFootprintBench(
  options: {
    pings?: number;
    accounts?: number;
    hold?: number;
    idle?: number;
    window?: number;
    rate?: number;
    skip?: string[];
    tsxRoot?: string;
    /** A folder for V8 CPU profiles of the compiled server (node --cpu-prof), one per server started. */
    profile?: string;
  } = {},
): Promise<void> {
  const skip = new Set(options.skip ?? []);
  const runtimes: [string, RuntimeCommand][] = [];
  if (!skip.has('tsx')) {
    const cwd = options.tsxRoot ?? ROOT;
    runtimes.push([
      `tsx${options.tsxRoot ? ` (${options.tsxRoot})` : ''}`,
      { command: process.execPath, args: ['--import', 'tsx', 'src/runtimes/node.ts'], cwd },
    ]);
  }
  if (!skip.has('dist')) {
    const outdir = mkdtempSync(join(ROOT, '.footprint-'));
    execFileSync(process.execPath, ['scripts/build.mjs', '--outdir', join(outdir, 'dist')], { cwd: ROOT });
    // As `npm start` runs it (and the Dockerfile's CMD): its node options included.
    const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } })
      .scripts.start;
    const [node, ...args] = start.split(' ');
    if (node !== 'node' || args.at(-1) !== 'dist/node.js') throw new Error(`npm start runs ${start}`);
    const profile = options.profile ? ['--cpu-prof', '--cpu-prof-dir', options.profile] : [];
    runtimes.push([`compiled (${start})`, { command: process.execPath, args: [...profile, ...args], cwd: outdir }]);
    process.on('exit', () => rmSync(outdir, { recursive: true, force: true }));
  }
  let services: TestServices | undefined;
  const project = { provide: (_k: string, v: TestServices) => (services = v) } as unknown as TestProject;
  const teardown = await setup(project);
  const lines: string[][] = [];
  try {
    for (const [name, how] of runtimes) {
      const idle = await idleFootprint(services!, how, options.idle ?? 20);
      lines.push([
        `${name}: idle RSS after start-up and one OPTIONS`,
        `${(idle.idleMiB / MB).toFixed(0)} MB`,
        '≤ 90 MB',
      ]);
      const warm = typeof idle.warmMiB === 'number' ? `${(idle.warmMiB / MB).toFixed(0)} MB` : idle.warmMiB;
      lines.push([`  after one device's FolderSync and Inbox sync, idle`, warm, '']);
      if (skip.has('hold')) continue;
      const pings = options.pings ?? 10_000;
      const r: HoldResult = await holdPings(services!, pings, options.accounts ?? 20, options.hold ?? 180, {
        how,
        ...(options.window ? { window: options.window } : {}),
        ...(options.rate ? { rate: options.rate } : {}),
      });
      const perPingKiB = ((r.rssHoldMiB - r.rssBaseMiB) * 1024) / r.pings;
      lines.push([
        `  ${r.pings} Pings (${r.accounts} accounts): held / failed`,
        `${Math.min(r.heldAtStart, r.heldAtEnd)} / ${r.pings - (r.statuses['Status 1'] ?? 0)}`,
        `all held`,
      ]);
      lines.push([
        `  RSS while all are held (median; peak)`,
        `${(r.rssHoldMiB / MB).toFixed(0)} MB (${(r.rssPeakMiB / MB).toFixed(0)}; ${(r.rssBaseMiB / MB).toFixed(0)} before)`,
        '≤ 600 MB',
      ]);
      lines.push([`  RSS per held Ping`, `${perPingKiB.toFixed(1)} KiB`, '']);
      lines.push([
        `  CPU per Ping (heartbeat ${r.heartbeat} s: auth, check, wait, answer)`,
        `${(r.cpuPerPing * 1000).toFixed(2)} ms`,
        '≤ 5 ms',
      ]);
      lines.push([
        `    of which ramp (auth, check, start) / answer`,
        `${(r.cpuRampPerPing * 1000).toFixed(2)} ms / ${(r.cpuAnswerPerPing * 1000).toFixed(2)} ms`,
        '',
      ]);
      lines.push([
        `  CPU per held Ping and hour (${r.holdSeconds.toFixed(0)} s window)`,
        `${(r.cpuHoldPerPingHour * 1000).toFixed(2)} ms`,
        '',
      ]);
      lines.push([
        `  heartbeat expiry: answered at heartbeat +`,
        `${r.expiry.earliest.toFixed(1)} / ${r.expiry.median.toFixed(1)} / ${r.expiry.latest.toFixed(1)} s`,
        `(min/median/max; margin −${r.expiryMargin} s; ${r.expiry.late ?? 0} over +5 s)`,
      ]);
      lines.push([
        `  ramp (as fast as the server holds them)`,
        `${r.rampSeconds.toFixed(0)} s, ${(r.pings / r.rampSeconds).toFixed(0)} Pings/s`,
        `${r.listenOverflows} listen drops`,
      ]);
    }
  } finally {
    await teardown();
    // Printed also when a measure failed: what was measured before it stands.
    const widths = [58, 36, 10];
    const load = loadavg()
      .map((l) => l.toFixed(2))
      .join(', ');
    console.log(`\nNode runtime footprint (MB = 10^6 bytes; Dovecot on loopback; load average at the end ${load})`);
    console.log(row(['measure', 'result', 'target'], widths));
    for (const line of lines) console.log(row(line, widths));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string): string | undefined => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? process.argv[at + 1] : undefined;
  };
  await runFootprintBench({
    ...(arg('pings') ? { pings: Number(arg('pings')) } : {}),
    ...(arg('accounts') ? { accounts: Number(arg('accounts')) } : {}),
    ...(arg('hold') ? { hold: Number(arg('hold')) } : {}),
    ...(arg('idle') ? { idle: Number(arg('idle')) } : {}),
    ...(arg('window') ? { window: Number(arg('window')) } : {}),
    ...(arg('rate') ? { rate: Number(arg('rate')) } : {}),
    ...(arg('skip') ? { skip: arg('skip')!.split(',') } : {}),
    ...(arg('tsx-root') ? { tsxRoot: arg('tsx-root')! } : {}),
    ...(arg('profile') ? { profile: arg('profile')! } : {}),
  });
}
