/**
 * `npm start` as an operator runs it: the Node runtime in its own process, configured by environment variables,
 * talking to the real Dovecot.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../services/process.ts';
import { createUser } from '../services/seed.ts';

const services = inject('services');
const ROOT = join(import.meta.dirname, '../..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function start(env: Record<string, string>): Started {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(IMAP|SMTP|CALDAV|CARDDAV)_|^PORT$/.test(k)));
  const child = spawn(TSX, ['src/runtimes/node.ts'], { cwd: ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitFor(predicate: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('npm start (src/runtimes/node.ts)', () => {
  let server: Started;
  let url: string;
  const user = createUser(services);
  const basic = (password: string): string => `Basic ${Buffer.from(`${user.email}:${password}`).toString('base64')}`;

  beforeAll(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}/Microsoft-Server-ActiveSync`;
    server = start({
      PORT: String(port),
      HOST: '127.0.0.1',
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
    });
    await waitFor(() => server.output().includes('"event":"listening"'), 'the server to listen');
  });

  afterAll(async () => {
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });

  it('answers OPTIONS with the ActiveSync headers', async () => {
    const res = await fetch(url, { method: 'OPTIONS' });
    expect(res.status).toBe(200);
    expect(res.headers.get('ms-asprotocolversions')).toBe('12.0,12.1,14.0,14.1,16.0,16.1');
    expect(res.headers.get('ms-server-activesync')).toBe('16.1');
    expect(res.headers.has('ms-asprotocolcommands')).toBe(true);
  });

  it('lets a right password through authentication and logs the request as JSON', async () => {
    const res = await fetch(`${url}?Cmd=Ping&User=${user.name}&DeviceId=NODE01&DeviceType=iPhone`, {
      method: 'POST',
      headers: { Authorization: basic(user.password), 'MS-ASProtocolVersion': '14.1', 'Content-Type': 'application/vnd.ms-sync.wbxml' },
    });
    // Past authentication: the command is either implemented (200) or not yet (501), never 401.
    expect([200, 501]).toContain(res.status);
    await waitFor(() => server.output().includes('"deviceId":"NODE01"'), 'the log line');
    const line = server.output().split('\n').find((l) => l.includes('"deviceId":"NODE01"'))!;
    expect(JSON.parse(line)).toMatchObject({ cmd: 'Ping', user: user.email, deviceType: 'iPhone', http: res.status });
  });

  it('answers a wrong password with 401 and never logs it', async () => {
    const res = await fetch(`${url}?Cmd=Ping&User=${user.name}&DeviceId=NODE02&DeviceType=iPhone`, {
      method: 'POST',
      headers: { Authorization: basic('not-the-password'), 'MS-ASProtocolVersion': '14.1' },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    await waitFor(() => server.output().includes('"deviceId":"NODE02"'), 'the log line');
    expect(server.output()).not.toContain('not-the-password');
    expect(server.output()).not.toContain(user.password);
  });
});

describe('start-up with a missing setting', () => {
  it('stops with a message that names it', async () => {
    const started = start({ PORT: String(await freePort()) });
    expect(await started.exited).toBe(2);
    expect(started.output()).toContain('IMAP_HOST');
  });

  it('names a malformed one too', async () => {
    const started = start({ IMAP_HOST: 'localhost', IMAP_PORT: 'seventy' });
    expect(await started.exited).toBe(2);
    expect(started.output()).toContain('IMAP_PORT');
  });
});
