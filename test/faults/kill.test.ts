/**
 * The Node runtime killed between the backend change and the state write: a real `npm start` child process, whose
 * IMAP and CalDAV traffic passes the fault proxy. The proxy lets the write reach the server and holds its answer, so
 * the process is stuck right before its state commit; SIGKILL lands there. Restarted on the same state directory,
 * the device sends its request again and converges: the flag set once, the event created once, the move not lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import type { StateStore } from '../../src/state/types.ts';
import { child, childText, el } from '../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../device/device.ts';
import { freePort } from '../services/process.ts';
import { createUser, listMessages, makeEvent, makeMessage, seedCalendar, seedMailbox } from '../services/seed.ts';
import { eventSummaries, expectMailConverged, syncToEnd } from './converge.ts';
import { startFaultProxy, type FaultProxy } from './proxy.ts';

const services = inject('services');
const ROOT = join(import.meta.dirname, '../..');

interface Running {
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<void>;
}

let imapProxy: FaultProxy;
let davProxy: FaultProxy;
const stateDir = mkdtempSync(join(tmpdir(), 'ase-kill-state-'));
let running: Running;

/** `npm start` in its own process group (npm → sh → tsx → node), so that one SIGKILL reaches every process of it. */
async function start(): Promise<Running> {
  const port = await freePort();
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(IMAP|SMTP|CALDAV|CARDDAV|STATE|DYNAMODB|AWS|DAV)_|^PORT$|^TENANT/.test(k),
    ),
  );
  const dav = `https://${davProxy.host}:${davProxy.port}/`;
  const child = spawn('npm', ['start', '--silent'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...clean,
      PORT: String(port),
      HOST: '127.0.0.1',
      STATE_DIR: stateDir,
      TENANT: 'test',
      IMAP_HOST: imapProxy.host,
      IMAP_PORT: String(imapProxy.port),
      IMAP_SECURE: 'true',
      CALDAV_URL: dav,
      CARDDAV_URL: dav,
    },
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  while (!output.includes('"event":"listening"')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not listen: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, port, output: () => output, exited };
}

async function kill(r: Running): Promise<void> {
  process.kill(-r.child.pid!, 'SIGKILL');
  await r.exited;
}

/** The device's requests go to whichever process runs now. */
const server: TestServer = {
  fetch: (url, init) => fetch(url.replace('https://eas.example.test', `http://127.0.0.1:${running.port}`), init),
  state: undefined as unknown as StateStore,
  logs: [],
};

beforeAll(async () => {
  imapProxy = await startFaultProxy(services.imaps, { tls: true });
  const radicale = new URL(services.caldavUrl);
  davProxy = await startFaultProxy({ host: radicale.hostname, port: Number(radicale.port) }, { tls: true });
  running = await start();
}, 60_000);

afterAll(async () => {
  if (running) {
    process.kill(-running.child.pid!, 'SIGTERM');
    await running.exited;
  }
  await imapProxy?.close();
  await davProxy?.close();
});

/** Sends a request that the kill will cut off; resolves once the process is dead and a new one listens. */
async function killDuring(request: Promise<unknown>, fired: Promise<void>): Promise<void> {
  const outcome = request.then(
    (answer) =>
      `answered: ${JSON.stringify(answer, (_k, v: unknown) => (v instanceof Uint8Array ? undefined : v)).slice(0, 500)}`,
    () => 'cut off',
  );
  try {
    await fired;
    await kill(running);
  } finally {
    if (running.child.exitCode === null && running.child.signalCode === null) await kill(running);
    running = await start();
  }
  expect(await outcome).toBe('cut off');
}

describe('npm start killed (SIGKILL) between the backend write and the state commit', () => {
  it('a Sync with a device Change: the STORE went through, the commit never came; the resent Sync converges', async () => {
    const user = createUser(services);
    await seedMailbox(
      services,
      user,
      'INBOX',
      Array.from({ length: 4 }, (_, i) => ({ message: makeMessage({ to: user.email, subject: `m${i + 1}` }) })),
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await syncToEnd(device, inbox);
    const [target] = [...device.items(inbox).keys()];
    const change = el('AirSync', 'Change', [
      el('AirSync', 'ServerId', target!),
      el('AirSync', 'ApplicationData', [el('Email', 'Flag', [el('Email', 'Status', '2')])]),
    ]);
    const keyBefore = device.collections.get(inbox)!.syncKey;

    const fault = imapProxy.arm({ upstreamLine: /UID STORE/, deliver: true, action: 'stall', settleMs: 100 });
    await killDuring(device.sync(inbox, { commands: [change] }), fault.fired);
    expect((await listMessages(services, user)).filter((m) => m.flags.includes('\\Flagged'))).toHaveLength(1);

    // The phone never got an answer: same key, same Change.
    expect(device.collections.get(inbox)!.syncKey).toBe(keyBefore);
    const again = await device.sync(inbox, { commands: [change] });
    expect(again.status).toBe(1);
    await expectMailConverged(services, user, device, inbox, 'INBOX');
    expect((await listMessages(services, user)).filter((m) => m.flags.includes('\\Flagged'))).toHaveLength(1);
  });

  it('a calendar Add: the PUT went through, the commit never came; the resent Add does not make a second event', async () => {
    const user = createUser(services);
    const seeded = await seedCalendar(
      services,
      user,
      'home',
      [makeEvent({ summary: 'Dentist', start: '2026-03-02T09:00:00' })],
      { displayName: 'Home' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const home = device.folderByName('Home').serverId;
    await syncToEnd(device, home);
    const add = [
      el('AirSync', 'Add', [
        el('AirSync', 'ClientId', 'k-1'),
        el('AirSync', 'ApplicationData', [
          el('Calendar', 'Subject', 'Lunch'),
          el('Calendar', 'StartTime', '20260310T090000Z'),
          el('Calendar', 'EndTime', '20260310T100000Z'),
        ]),
      ]),
    ];
    const fault = davProxy.arm({ upstreamLine: /^PUT /m, deliver: true, action: 'stall', settleMs: 100 });
    await killDuring(device.sync(home, { commands: add }), fault.fired);
    expect(await eventSummaries(services, user, seeded.collectionUrl)).toEqual(['Dentist', 'Lunch']);

    const again = await device.sync(home, { commands: add });
    expect(again.addResponses).toEqual([expect.objectContaining({ clientId: 'k-1', status: 1 })]);
    await syncToEnd(device, home);
    expect(device.items(home).size).toBe(2);
    expect(await eventSummaries(services, user, seeded.collectionUrl)).toEqual(['Dentist', 'Lunch']);
  });

  it('MoveItems: the MOVE went through, the states never learned it; the retry and the Syncs converge', async () => {
    const user = createUser(services);
    await seedMailbox(
      services,
      user,
      'INBOX',
      Array.from({ length: 3 }, (_, i) => ({ message: makeMessage({ to: user.email, subject: `m${i + 1}` }) })),
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    const archive = device.folderByName('Archive').serverId;
    await syncToEnd(device, inbox);
    await syncToEnd(device, archive);
    const [moved] = [...device.items(inbox).keys()];
    const body = el('Move', 'MoveItems', [
      el('Move', 'Move', [
        el('Move', 'SrcMsgId', moved!),
        el('Move', 'SrcFldId', inbox),
        el('Move', 'DstFldId', archive),
      ]),
    ]);

    const fault = imapProxy.arm({ upstreamLine: /UID MOVE/, deliver: true, action: 'stall', settleMs: 100 });
    await killDuring(device.send('MoveItems', body), fault.fired);
    expect(await listMessages(services, user, 'Archive')).toHaveLength(1);

    // The retry: the message is no longer in the Inbox (Status 1); the device drops its copy there and Sync brings
    // it in Archive.
    const res = await device.send('MoveItems', body);
    expect(res.status).toBe(200);
    expect(childText(child(res.body, 'Response'), 'Status')).toBe('1');
    device.items(inbox).delete(moved!);
    await expectMailConverged(services, user, device, inbox, 'INBOX');
    await expectMailConverged(services, user, device, archive, 'Archive');
    expect(device.items(inbox).size).toBe(2);
    expect(device.items(archive).size).toBe(1);
  });
});
