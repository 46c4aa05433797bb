/**
 * What deploying costs at start-up and per request, on each runtime:
 *
 * 1. The Worker bundle, gzipped, as `wrangler deploy --dry-run --outdir` builds it (as configured, and with
 *    --minify). Target ≤ 500 KiB gzip: a Worker's start-up time grows with its script.
 * 2. The Lambda handler's cold initialisation: a fresh Node.js process imports the bundle (infra/aws/bundle.ts, what
 *    serverless.yml and the CDK stack deploy) and answers its first request. The median of several processes.
 * 3. Per-request latency of a small Sync (Inbox of 20 messages, no change; then one new message) on each runtime
 *    against the test Dovecot: the Node server (`npm start` in its own process, SQLite, over HTTP), the Lambda
 *    handler (Function URL events, DynamoDB on dynalite, in process: no network hop to the function), and the Worker
 *    in workerd (`wrangler dev`, Durable Objects, over HTTP; a fresh IMAP login per request, as on Cloudflare).
 *
 *   npm run bench:deploy [-- --requests 30 --cold 5 --skip-workers]
 */
import { spawn, execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { TestProject } from 'vitest/node';
import { FolderType } from '../src/backends/types.ts';
import { createLambdaRuntime } from '../src/runtimes/lambda.ts';
import type { StateStore } from '../src/state/types.ts';
import { bundleLambda } from '../infra/aws/bundle.ts';
import { functionUrlFetch } from '../test/device/function-url.ts';
import { TestDevice, type TestServer } from '../test/device/device.ts';
import setup from '../test/services/global-setup.ts';
import { freePort, terminate } from '../test/services/process.ts';
import { createUser, makeMessage, seedMailbox, withImap } from '../test/services/seed.ts';
import type { TestServices, TestUser } from '../test/services/types.ts';
import { startSecretsManager } from '../test/services/secrets-manager.ts';
import { fetchVia, startWranglerDev } from '../test/services/wrangler-dev.ts';

const ROOT = join(import.meta.dirname, '..');
const TMP = join(ROOT, 'bench/tmp/deploy');
const TARGET_GZIP_KIB = 500;

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2 : NaN;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

const kib = (bytes: number): string => `${(bytes / 1024).toFixed(0)} KiB`;

// ------------------------------------------------------------------------------------------------ 1. Worker bundle

interface WorkerBundle {
  raw: number;
  gzip: number;
  wrangler: string;
  /** Bytes in the bundle per package (or source folder), largest first. */
  largest: [string, number][];
}

async function workerBundle(minify: boolean): Promise<WorkerBundle> {
  const outdir = join(TMP, minify ? 'worker-min' : 'worker');
  rmSync(outdir, { recursive: true, force: true });
  const { stdout, stderr } = await promisify(execFile)(
    join(ROOT, 'node_modules/.bin/wrangler'),
    ['deploy', '--dry-run', '--outdir', outdir, '--metafile', ...(minify ? ['--minify'] : [])],
    { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' }, maxBuffer: 16 << 20 },
  );
  const script = readdirSync(outdir).find((f) => f.endsWith('.js'))!;
  const bytes = readFileSync(join(outdir, script));
  // esbuild's metafile: which inputs the bytes come from, summed per npm package or source folder.
  const meta = JSON.parse(readFileSync(join(outdir, 'bundle-meta.json'), 'utf8')) as {
    outputs: Record<string, { inputs: Record<string, { bytesInOutput: number }> }>;
  };
  const perPackage = new Map<string, number>();
  for (const output of Object.values(meta.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)?.[1] ?? input.split('/').slice(0, 2).join('/');
      perPackage.set(pkg, (perPackage.get(pkg) ?? 0) + bytesInOutput);
    }
  }
  const largest = [...perPackage].sort((a, b) => b[1] - a[1]).slice(0, 6);
  return {
    raw: bytes.length,
    gzip: gzipSync(bytes).length,
    wrangler: /Total Upload: .*/.exec(stdout + stderr)?.[0] ?? '',
    largest,
  };
}

// ------------------------------------------------------------------------------------------------ 2. Lambda cold init

/**
 * One fresh process: import the bundle (what Lambda's init phase does), build the runtime from the environment and
 * the secret SECRET_ARN names (what the first event does: one GetSecretValue, here from the local emulation of
 * test/services/secrets-manager.ts), answer a first request: OPTIONS without credentials (the 401 challenge), which
 * needs no IMAP, against dynalite (it writes the request counters, and with an emulator endpoint checks the table
 * first).
 */
const COLD_SCRIPT = `
const started = performance.now();
const m = await import('./lambda.mjs');
const imported = performance.now();
const runtime = await m.lambdaHandlers({ env: process.env, log: () => {} }).runtime();
if (!runtime) throw new Error('not configured');
const created = performance.now();
const res = await runtime.http({ version: '2.0', routeKey: '$default', rawPath: '/Microsoft-Server-ActiveSync', rawQueryString: '',
  headers: { host: 'x.lambda-url.eu-west-1.on.aws' }, isBase64Encoded: false,
  requestContext: { domainName: 'x.lambda-url.eu-west-1.on.aws', http: { method: 'OPTIONS', path: '/Microsoft-Server-ActiveSync' } } });
const answered = performance.now();
if (res.statusCode !== 401) throw new Error('status ' + res.statusCode);
console.log(JSON.stringify({ importMs: imported - started, createMs: created - imported, firstRequestMs: answered - created, total: answered }));
`;

interface ColdStarts {
  bundle: number;
  importMs: number[];
  createMs: number[];
  firstMs: number[];
  totalMs: number[];
}

async function lambdaColdStarts(services: TestServices, runs: number): Promise<ColdStarts> {
  const dir = join(TMP, 'lambda');
  rmSync(dir, { recursive: true, force: true });
  const file = await bundleLambda(dir);
  writeFileSync(join(dir, 'cold.mjs'), COLD_SCRIPT);
  const secrets = await startSecretsManager(services.dynamodb.region);
  const arn = secrets.put('activesync-edge/bench', {
    IMAP_MASTER_USER: 'syncmaster',
    IMAP_MASTER_PASSWORD: 'bench-only',
  });
  secrets.allow([arn]);
  const env = {
    PATH: process.env.PATH ?? '',
    IMAP_HOST: 'imap.example.com',
    DYNAMODB_TABLE: `bench-cold-${Date.now()}`,
    DYNAMODB_ENDPOINT: services.dynamodb.endpoint,
    AWS_REGION: services.dynamodb.region,
    // The emulation's credentials sign both services' requests; dynalite takes any.
    AWS_ACCESS_KEY_ID: secrets.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: secrets.credentials.secretAccessKey,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.endpoint,
    SECRET_ARN: arn,
    NODE_NO_WARNINGS: '1',
  };
  const out: ColdStarts = { bundle: statSync(file).size, importMs: [], createMs: [], firstMs: [], totalMs: [] };
  for (let i = 0; i < runs; i++) {
    const { stdout } = await promisify(execFile)(process.execPath, ['cold.mjs'], { cwd: dir, env });
    const line = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      importMs: number;
      createMs: number;
      firstRequestMs: number;
      total: number;
    };
    out.importMs.push(line.importMs);
    out.createMs.push(line.createMs);
    out.firstMs.push(line.firstRequestMs);
    out.totalMs.push(line.total);
  }
  await secrets.close();
  return out;
}

// ------------------------------------------------------------------------------------------------ 3. small Sync

interface SyncLatency {
  runtime: string;
  noChange: number[];
  oneNew: number[];
}

/** A server reached over HTTP: the device's requests go to `origin`. The device reads no state of it. */
function remote(origin: string): TestServer {
  return { fetch: fetchVia(origin), state: undefined as unknown as StateStore, logs: [] };
}

async function measureSync(
  runtime: string,
  server: TestServer,
  services: TestServices,
  user: TestUser,
  requests: number,
): Promise<SyncLatency> {
  const device = new TestDevice(server, user);
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox);
  // Warm: the first requests open connections and fill caches on every runtime.
  for (let i = 0; i < 3; i++) await device.sync(inbox);
  const result: SyncLatency = { runtime, noChange: [], oneNew: [] };
  for (let i = 0; i < requests; i++) {
    const t0 = performance.now();
    const round = await device.sync(inbox);
    result.noChange.push(performance.now() - t0);
    if (round.status !== 1 || round.added.length)
      throw new Error(`${runtime}: a no-change Sync answered Status ${round.status} with ${round.added.length} adds`);
  }
  for (let i = 0; i < Math.max(3, Math.floor(requests / 5)); i++) {
    await withImap(services, user, (imap) =>
      imap.append(
        'INBOX',
        makeMessage({ from: 'bench@example.org', to: user.email, subject: `new ${i}`, text: 'Hello.\n' }),
      ),
    );
    const t0 = performance.now();
    const round = await device.sync(inbox);
    result.oneNew.push(performance.now() - t0);
    if (round.added.length !== 1)
      throw new Error(`${runtime}: the Sync after one new message added ${round.added.length}`);
  }
  return result;
}

async function seededUser(services: TestServices): Promise<TestUser> {
  const user = createUser(services);
  await seedMailbox(
    services,
    user,
    'INBOX',
    Array.from({ length: 20 }, (_, i) => ({
      message: makeMessage({
        from: 'Bob <bob@example.test>',
        to: user.email,
        subject: `Message ${i}`,
        text: `Body ${i}.\n`,
      }),
    })),
  );
  return user;
}

const imapSettings = (services: TestServices): Record<string, string> => ({
  IMAP_HOST: services.imap.host,
  IMAP_PORT: String(services.imap.port),
  IMAP_SECURE: 'false',
  TENANT: 'bench',
  PROVISIONING: 'loose',
});

async function nodeRuntime(services: TestServices, requests: number): Promise<SyncLatency> {
  const port = await freePort();
  const stateDir = join(TMP, 'node-state');
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(IMAP|SMTP|CALDAV|CARDDAV|STATE|DYNAMODB|AWS)_|^PORT$/.test(k)),
  );
  const child = spawn(join(ROOT, 'node_modules/.bin/tsx'), ['src/runtimes/node.ts'], {
    cwd: ROOT,
    env: { ...clean, ...imapSettings(services), PORT: String(port), HOST: '127.0.0.1', STATE_DIR: stateDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  try {
    const deadline = Date.now() + 30_000;
    while (!output.includes('"event":"listening"')) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`the Node server did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return await measureSync(
      'Node (npm start, SQLite, HTTP)',
      remote(`http://127.0.0.1:${port}`),
      services,
      await seededUser(services),
      requests,
    );
  } finally {
    if (child.pid !== undefined) await terminate(child.pid);
  }
}

async function lambdaRuntime(services: TestServices, requests: number): Promise<SyncLatency> {
  const runtime = createLambdaRuntime({
    env: {
      ...imapSettings(services),
      DYNAMODB_TABLE: `bench-deploy-${Date.now()}`,
      DYNAMODB_ENDPOINT: services.dynamodb.endpoint,
      AWS_REGION: services.dynamodb.region,
      AWS_ACCESS_KEY_ID: services.dynamodb.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: services.dynamodb.credentials.secretAccessKey,
    },
    log: () => {},
  });
  const server: TestServer = {
    fetch: functionUrlFetch((event) => runtime.http(event)),
    state: runtime.state,
    logs: [],
  };
  return measureSync('Lambda (Function URL events, dynalite)', server, services, await seededUser(services), requests);
}

async function workersRuntime(services: TestServices, requests: number): Promise<SyncLatency> {
  const worker = await startWranglerDev(imapSettings(services));
  try {
    return await measureSync(
      'Workers (wrangler dev, Durable Objects)',
      remote(worker.origin),
      services,
      await seededUser(services),
      requests,
    );
  } finally {
    await worker.stop();
  }
}

// ------------------------------------------------------------------------------------------------ main

export async function runDeployBench(
  o: { requests?: number; coldRuns?: number; skipWorkers?: boolean } = {},
): Promise<void> {
  const requests = o.requests ?? 30;
  const coldRuns = o.coldRuns ?? 5;
  const skipWorkers = o.skipWorkers ?? false;
  mkdirSync(TMP, { recursive: true });

  console.log('\n1. Worker bundle (wrangler deploy --dry-run --outdir)');
  for (const minify of [false, true]) {
    const b = await workerBundle(minify);
    const verdict = b.gzip / 1024 <= TARGET_GZIP_KIB ? 'within' : 'OVER';
    console.log(
      `   ${minify ? 'minified    ' : 'as configured'}  ${kib(b.raw).padStart(9)}  gzip ${kib(b.gzip).padStart(8)}  (${verdict} the ${TARGET_GZIP_KIB} KiB target)   wrangler: ${b.wrangler}`,
    );
    if (minify)
      console.log(
        `   largest parts (minified, before gzip): ${b.largest.map(([name, size]) => `${name} ${kib(size)}`).join(', ')}`,
      );
  }

  let services: TestServices | undefined;
  const project = { provide: (_k: string, v: TestServices) => (services = v) } as unknown as TestProject;
  const teardown = await setup(project);
  try {
    console.log(
      `\n2. Lambda cold initialisation (fresh node ${process.version} process, bundled handler, ${coldRuns} runs, medians)`,
    );
    const cold = await lambdaColdStarts(services!, coldRuns);
    console.log(
      `   bundle lambda.mjs ${kib(cold.bundle)} (gzip ${kib(gzipSync(readFileSync(join(TMP, 'lambda/lambda.mjs'))).length)}; the AWS SDK comes with the runtime)`,
    );
    console.log(
      `   import ${median(cold.importMs).toFixed(0)} ms + runtime (one GetSecretValue, local emulation) ${median(cold.createMs).toFixed(0)} ms + first request (OPTIONS, dynalite) ${median(cold.firstMs).toFixed(0)} ms;` +
        ` process start to first answer ${median(cold.totalMs).toFixed(0)} ms`,
    );

    console.log(
      `\n3. Small Sync latency (Inbox of 20, ${requests} no-change Syncs, then Syncs after one new message; ms)`,
    );
    console.log('   runtime                                      no-change p50   p90   1-new p50   p90');
    const runs = [nodeRuntime, lambdaRuntime, ...(skipWorkers ? [] : [workersRuntime])];
    for (const run of runs) {
      const r = await run(services!, requests);
      console.log(
        `   ${r.runtime.padEnd(44)} ${median(r.noChange).toFixed(1).padStart(13)} ${percentile(r.noChange, 90).toFixed(1).padStart(5)} ${median(r.oneNew).toFixed(1).padStart(11)} ${percentile(r.oneNew, 90).toFixed(1).padStart(5)}`,
      );
    }
  } finally {
    await teardown();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runDeployBench({
    requests: arg('requests', 30),
    coldRuns: arg('cold', 5),
    skipWorkers: process.argv.includes('--skip-workers'),
  });
}
