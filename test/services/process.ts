// Small helpers for running service daemons: free ports, readiness and clean shutdown.
import { createServer, connect, type AddressInfo, type Server } from 'node:net';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** A started service; stop() returns once its processes have exited and its ports are free. */
export interface RunningService {
  readonly name: string;
  stop(): Promise<void>;
  /** Synchronous last-resort kill for process exit (Ctrl-C); never waits. */
  killNow(): void;
}

/**
 * Asks the kernel for `n` distinct free loopback ports (all held open until every one is
 * known, so they differ). Another process may take one before the daemon binds it; callers retry.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve, reject) => {
          const srv = createServer();
          srv.on('error', reject);
          srv.listen(0, '127.0.0.1', () => resolve(srv));
        }),
    ),
  );
  const ports = servers.map((srv) => (srv.address() as AddressInfo).port);
  await Promise.all(servers.map((srv) => new Promise<void>((resolve) => srv.close(() => resolve()))));
  return ports;
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no free port');
  return port;
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function isPortOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    const done = (open: boolean): void => {
      sock.destroy();
      resolve(open);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** Polls `check` every `intervalMs` until it returns true; throws `what` after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 25,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** True while the process runs. A zombie counts as gone: daemons are reaped by PID 1, which may be slow to do so. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM means it exists but is not ours; treat as alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; the state letter follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function readPidFile(path: string): number | null {
  if (!existsSync(path)) return null;
  const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Parent pid of every process, from /proc (Linux). */
function parentPids(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // exited while we looked
    }
  }
  return parents;
}

/** The pid and all its descendants. */
export function processTree(pid: number): number[] {
  const parents = parentPids();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/**
 * Sends SIGTERM to a daemon's master process and waits until it and every process it
 * had started have exited; SIGKILLs what is left after `graceMs`. Works for daemons
 * that are not our children (Dovecot and Postfix daemonise).
 */
export async function terminate(pid: number, graceMs = 8_000): Promise<void> {
  if (!isAlive(pid)) return;
  const tree = processTree(pid);
  const allGone = (): boolean => tree.every((p) => !isAlive(p));
  signal(pid, 'SIGTERM');
  try {
    await waitUntil(allGone, `pid ${pid} and its children to exit`, graceMs, 20);
  } catch {
    for (const p of tree) signal(p, 'SIGKILL');
    await waitUntil(allGone, `pid ${pid} and its children to exit after SIGKILL`, 5_000, 20);
  }
}

/** Waits until none of the ports accept connections any more. */
export async function waitPortsClosed(ports: readonly number[], timeoutMs = 5_000): Promise<void> {
  await waitUntil(
    async () => (await Promise.all(ports.map((p) => isPortOpen(p)))).every((open) => !open),
    `ports ${ports.join(', ')} to close`,
    timeoutMs,
    50,
  );
}

/** Last lines of a log file, for error messages. */
export function tailFile(path: string, lines = 30): string {
  if (!existsSync(path)) return `(no ${path})`;
  return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
}

/**
 * Runs `attempt` up to `tries` times. Used for starting a daemon on a port from freePort():
 * if another process grabbed the port in between, the next attempt gets new ports.
 */
export async function retry<T>(tries: number, attempt: (n: number) => Promise<T>): Promise<T> {
  let last: unknown;
  for (let n = 1; n <= tries; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

/**
 * Runs a command that daemonises (`dovecot`, `postfix start`) and resolves when the
 * command itself exits. Its output goes to `outFile`, not to pipes: the daemon inherits
 * the descriptors and would keep a pipe (and so execFile's promise) open forever.
 */
export async function runDaemonStarter(cmd: string, args: readonly string[], outFile: string): Promise<void> {
  const out = openSync(outFile, 'a');
  try {
    const child = spawn(cmd, args, { stdio: ['ignore', out, out] });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    });
    if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${code}:\n${tailFile(outFile, 15)}`);
  } finally {
    closeSync(out);
  }
}
