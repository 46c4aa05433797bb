/**
 * `npm start` as an operator runs it, for tests: the Node runtime in its own process, configured only by the
 * environment given here (the test runner's own IMAP_*, STATE_*, … settings are left out), with its output kept.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStateStore, STATE_FILE_NAME, type NodeSqliteStore } from '../../src/state/sqlite-node.ts';
import type { TestServer } from '../device/device.ts';
import { freePort } from './process.ts';

const ROOT = join(import.meta.dirname, '../..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');
/** Settings of the runner's environment that would change the server under test. */
const SERVER_SETTINGS =
  /^(IMAP|SMTP|CALDAV|CARDDAV|STATE|DYNAMODB|AWS|ADMIN|TENANTS?|PING|GAL|POLICY|PROVISIONING)(_|$)|^PORT$/;

export interface NodeProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * Starts `src/runtimes/node.ts` with exactly these settings; does not wait for it. `how` runs another build of it
 * (the compiled dist/node.js with plain node).
 */
export function spawnNodeServer(
  env: Record<string, string>,
  how: { command: string; args: string[]; cwd: string } = { command: TSX, args: ['src/runtimes/node.ts'], cwd: ROOT },
): NodeProcess {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !SERVER_SETTINGS.test(k)));
  const child = spawn(how.command, how.args, {
    cwd: how.cwd,
    env: { ...clean, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

export async function waitFor(predicate: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts the server (`how`: as spawnNodeServer) and waits until it listens; throws with its output when it exits instead. */
export async function startNodeServer(
  env: Record<string, string>,
  how?: Parameters<typeof spawnNodeServer>[1],
): Promise<NodeProcess> {
  const server = spawnNodeServer(env, how);
  await waitFor(
    () => server.output().includes('"event":"listening"') || server.child.exitCode !== null,
    'the server to listen',
  );
  if (server.child.exitCode !== null) throw new Error(`the server exited: ${server.output()}`);
  return server;
}

/** SIGTERM, as an orchestrator stops it; resolves with the exit code. */
export async function stopNodeServer(server: NodeProcess): Promise<number | null> {
  server.child.kill('SIGTERM');
  return server.exited;
}

/**
 * A TestServer for the scripted device: its https://<host>/… URLs go to the server at `base`, and `state` is a
 * second connection to the server's SQLite file (WAL lets it read and write beside the server).
 */
export function nodeTestServer(base: string, stateDir: string): { server: TestServer; state: NodeSqliteStore } {
  const state = openSqliteStateStore(join(stateDir, STATE_FILE_NAME));
  const server: TestServer = {
    fetch: (url, init) => {
      const u = new URL(url);
      const target = `${base}${u.pathname}${u.search}`;
      // A kept-alive connection the server closed (its idle timeout) just as a request went out on it: that request was
      // never read (RFC 9112 §9.3.1), and goes once more on a new connection.
      return fetch(target, init).catch((err: unknown) => {
        const code = (err as { cause?: { code?: string } }).cause?.code;
        if (code !== 'UND_ERR_SOCKET') throw err;
        return fetch(target, init);
      });
    },
    state: state.store,
    logs: [],
  };
  return { server, state };
}

/** A Node server an admin manages: the process, its URL, and the scripted device's view of it. */
export interface AdminNodeServer {
  process: NodeProcess;
  base: string;
  server: TestServer;
  state: NodeSqliteStore;
  /** Closes the second state connection and stops the server (if it still runs). */
  stop(): Promise<void>;
}

/**
 * `npm start` on a free loopback port with a fresh state folder, against the given IMAP server (plain, loopback),
 * with ADMIN_TOKEN set; `extra` adds or overrides settings.
 */
export async function startAdminNodeServer(
  imap: { host: string; port: number },
  token: string,
  extra: Record<string, string> = {},
): Promise<AdminNodeServer> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'ase-admin-node-'));
  const process = await startNodeServer({
    PORT: String(port),
    HOST: '127.0.0.1',
    STATE_DIR: stateDir,
    TENANT: 'test',
    IMAP_HOST: imap.host,
    IMAP_PORT: String(imap.port),
    IMAP_SECURE: 'false',
    ADMIN_TOKEN: token,
    ...extra,
  });
  const { server, state } = nodeTestServer(base, stateDir);
  return {
    process,
    base,
    server,
    state,
    async stop() {
      state.close();
      if (process.child.exitCode === null) await stopNodeServer(process);
    },
  };
}

/**
 * The admin CLI as its own process, the way `npx activesync-edge admin …` runs it, against `base`. The runner's own
 * ADMIN_TOKEN and ACTIVESYNC_EDGE_URL are left out; `env` gives what the call should see. Asynchronous: the test
 * process goes on serving its own sockets meanwhile, and independent calls can run side by side.
 */
export async function adminCli(
  base: string,
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(
    Object.entries(globalThis.process.env).filter(([k]) => k !== 'ADMIN_TOKEN' && k !== 'ACTIVESYNC_EDGE_URL'),
  );
  return runNode([join(ROOT, 'bin/activesync-edge.js'), 'admin', '--url', base, ...args], { ...clean, ...env });
}

/** `node <args>` in the repository root with exactly `env`; resolves with its exit code and output. */
export function runNode(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(globalThis.process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
