/**
 * The production artifact (issue 19 item 4): `npm run build` compiles the Node runtime to dist/, and it runs with plain
 * `node` and the production dependencies only, the way the Dockerfile's runtime stage assembles it. No container
 * engine runs here, so this test repeats the image's steps by hand: the build (scripts/build.mjs), `npm ci
 * --omit=dev` into a folder of its own (offline, from npm's cache), dist/ and bin/ copied beside it, no src/. It then
 * serves OPTIONS, a FolderSync and a Sync against the test Dovecot, and the bin runs the compiled CLI. The
 * Dockerfile's structure is checked too (stages, non-root user, health check, state volume).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { TestDevice, subjects } from '../device/device.ts';
import { nodeTestServer, type NodeProcess, startNodeServer, stopNodeServer } from '../services/node-server.ts';
import { freePort } from '../services/process.ts';
import { createUser, seedMailbox } from '../services/seed.ts';

const services = inject('services');
const ROOT = join(import.meta.dirname, '../..');
/** What `npm start` runs (after its prestart build): `node <options> dist/node.js`. */
const START = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts
  .start;

/** The Dockerfile's stages: name → instructions (continuation lines joined). */
function dockerStages(text: string): Map<string, string[]> {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) {
      current = [line];
      stages.set(from[2] ?? from[1]!, current);
    } else current?.push(line);
  }
  return stages;
}

describe('the production build (dist/, plain node, production dependencies)', () => {
  const app = mkdtempSync(join(tmpdir(), 'ase-prod-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'ase-prod-state-'));
  let server: NodeProcess | undefined;
  let base: string;

  beforeAll(async () => {
    // The build stage: `npm run build` (here into the app folder), then the production dependencies alone.
    execFileSync(process.execPath, ['scripts/build.mjs', '--outdir', join(app, 'dist')], { cwd: ROOT });
    cpSync(join(ROOT, 'package.json'), join(app, 'package.json'));
    cpSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
    cpSync(join(ROOT, 'bin'), join(app, 'bin'), { recursive: true });
    execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--offline', '--no-audit', '--no-fund'], {
      cwd: app,
      stdio: 'pipe',
    });
    // npm would compile better-sqlite3's addon here (its install script, skipped offline): the one this checkout
    // compiled is the same source for the same node.
    cpSync(join(ROOT, 'node_modules/better-sqlite3/build'), join(app, 'node_modules/better-sqlite3/build'), {
      recursive: true,
    });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = await startNodeServer(
      {
        PORT: String(port),
        HOST: '127.0.0.1',
        STATE_DIR: stateDir,
        TENANT: 'test',
        IMAP_HOST: services.imap.host,
        IMAP_PORT: String(services.imap.port),
        IMAP_SECURE: 'false',
      },
      { command: process.execPath, args: START.split(' ').slice(1), cwd: app },
    );
  }, 180_000);

  afterAll(async () => {
    if (server && server.child.exitCode === null) expect(await stopNodeServer(server)).toBe(0);
    rmSync(app, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('installs no development tool: no tsx, esbuild, TypeScript or vitest beside the compiled code', () => {
    for (const dev of ['tsx', 'esbuild', 'typescript', 'vitest'])
      expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false);
    expect(existsSync(join(app, 'node_modules/better-sqlite3'))).toBe(true);
    expect(existsSync(join(app, 'src'))).toBe(false);
  });

  it('answers OPTIONS, then a device provisions, does FolderSync and syncs its Inbox', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', [
      {
        message:
          'From: Ann <ann@example.test>\r\nTo: <x@example.test>\r\nSubject: built and shipped\r\n' +
          'Content-Type: text/plain; charset=utf-8\r\n\r\nIt runs compiled.\r\n',
      },
    ]);
    const res = await fetch(`${base}/Microsoft-Server-ActiveSync`, {
      method: 'OPTIONS',
      headers: { Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('ms-asprotocolversions')).toBe('12.0,12.1,14.0,14.1,16.0,16.1');

    const { server: testServer, state } = nodeTestServer(base, stateDir);
    try {
      const device = new TestDevice(testServer, user);
      await device.folderSync();
      const inbox = device.folderByType(FolderType.Inbox).serverId;
      await device.syncUntilDone(inbox);
      expect(subjects(device, inbox)).toEqual(['built and shipped']);
    } finally {
      state.close();
    }
    // One JSON log line per request, as from the tsx-run server.
    expect(server!.output()).toMatch(/"cmd":"Sync"/);
  });

  it('runs the compiled CLI through bin/ where there are no sources', () => {
    const xml = join(app, 'foldersync.xml');
    writeFileSync(xml, '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>');
    const encoded = spawnSync(process.execPath, [join(app, 'bin/activesync-edge.js'), 'wbxml', 'encode', xml], {
      cwd: app,
    });
    expect(encoded.stderr.toString()).toBe('');
    // MS-ASWBXML: FolderSync with SyncKey 0 (the bytes libwbxml writes, /work/shared/RECIPES.md).
    expect(Buffer.from(encoded.stdout).toString('hex')).toBe('03016a000007565203300001' + '01');
  });

  it('has a Dockerfile whose runtime stage runs dist/ as a non-root user, with a health check and a state volume', () => {
    const stages = dockerStages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    expect([...stages.keys()]).toEqual(['build', 'runtime']);
    const build = stages.get('build')!.join('\n');
    expect(build).toMatch(/^RUN npm ci\b/m);
    expect(build).toMatch(/npm run build/);
    expect(build).toMatch(/npm prune --omit=dev/);
    const runtime = stages.get('runtime')!;
    const text = runtime.join('\n');
    expect(runtime[0]).toMatch(/^FROM node:22-slim AS runtime$/);
    // Nothing of the sources or the dev tools reaches the image: only package.json, node_modules, dist, bin.
    const copied = runtime.filter((l) => l.startsWith('COPY')).map((l) => l.split(/\s+/).at(-1));
    expect(copied).toEqual(['./', './node_modules', './dist', './bin']);
    const user = runtime.filter((l) => l.startsWith('USER ')).at(-1);
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER\s+(root|0)(:|$)/);
    expect(text).toMatch(/^HEALTHCHECK .*CMD .*method:'OPTIONS'/m);
    // The health check's command, run as the image would run it, against the compiled server: healthy (exit 0).
    const check = JSON.parse(/^HEALTHCHECK .*?CMD\s+(\[.*\])$/m.exec(text)![1]!) as string[];
    expect(check[0]).toBe('node');
    const port = new URL(base).port;
    const healthy = spawnSync(process.execPath, check.slice(1), { env: { ...process.env, PORT: port } });
    expect(healthy.status).toBe(0);
    const unhealthy = spawnSync(process.execPath, check.slice(1), { env: { ...process.env, PORT: '1' } });
    expect(unhealthy.status).toBe(1);
    const stateDirEnv = /STATE_DIR=(\S+)/.exec(text)?.[1];
    expect(stateDirEnv).toBeDefined();
    expect(text).toContain(`VOLUME ["${stateDirEnv}"]`);
    // The image runs what `npm start` runs, with the same node options.
    expect(START).toMatch(/^node .*dist\/node\.js$/);
    expect(runtime.at(-1)).toBe(`CMD ${JSON.stringify(START.split(' '))}`.replace(/","/g, '", "'));
  });
});
