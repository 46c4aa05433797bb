/**
 * The Worker of wrangler.toml under `wrangler dev` (workerd, Durable Objects in a scratch folder), with settings given
 * as `--var`s: the Cloudflare runtime as devices reach it, over HTTP, offline. For the workerd device session and
 * bench/deploy.ts. `--test-scheduled` lets a caller fire the cron (the push sweep) at /__scheduled.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, terminate } from './process.ts';
import { TEST_CA_PATH } from './tls.ts';

const ROOT = join(import.meta.dirname, '../..');

/**
 * What workerd prints for an error no handler caught, Node's events module for a listener leak, and the Worker's log
 * line for any process warning (src/runtimes/cloudflare/worker.ts).
 */
const PROBLEM = /Uncaught|Unhandled|MaxListenersExceeded|memory leak detected|"event":"warning"/i;

export interface WranglerDev {
  /** http://127.0.0.1:<port> */
  origin: string;
  /** What wrangler printed so far (for failures). */
  output(): string;
  /**
   * The lines of the output that show the Worker failing outside any answer: uncaught errors and unhandled
   * rejections, EventEmitter leak warnings (MaxListenersExceededWarning) and other process warnings.
   */
  problems(): string[];
  /** Fires the cron trigger: the Worker's `scheduled` handler runs (it returns when the sweep ends, up to ~50 s). */
  scheduled(): Promise<Response>;
  stop(): Promise<void>;
}

export async function startWranglerDev(
  vars: Record<string, string>,
  o: { readyMs?: number } = {},
): Promise<WranglerDev> {
  const port = await freePort();
  const persist = mkdtempSync(join(tmpdir(), 'ase-wrangler-state-'));
  const args = [
    'dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--inspector-port',
    String(await freePort()),
    '--persist-to',
    persist,
    '--test-scheduled',
    '--show-interactive-dev-session=false',
    '--log-level',
    'log',
  ];
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  const child = spawn(join(ROOT, 'node_modules/.bin/wrangler'), args, {
    cwd: ROOT,
    // workerd checks certificates against the system roots, or the file SSL_CERT_FILE names (BoringSSL): the test CA.
    env: { ...process.env, SSL_CERT_FILE: TEST_CA_PATH, WRANGLER_SEND_METRICS: 'false', CI: '1', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.pid !== undefined && child.exitCode === null) await terminate(child.pid);
    await exited;
    rmSync(persist, { recursive: true, force: true });
  };
  const deadline = Date.now() + (o.readyMs ?? 60_000);
  while (!/Ready on http/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not start:\n${output.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    output: () => output,
    problems: () => output.split('\n').filter((line) => PROBLEM.test(line)),
    scheduled: () => fetch(`${origin}/__scheduled?cron=${encodeURIComponent('* * * * *')}`),
    stop,
  };
}

/** A fetch for the test device: its https://<host>/… URLs go to the local workerd, the path and query kept. */
export function fetchVia(origin: string): (url: string, init?: RequestInit) => Promise<Response> {
  return (url, init) => {
    const u = new URL(url);
    return fetch(`${origin}${u.pathname}${u.search}`, init);
  };
}
