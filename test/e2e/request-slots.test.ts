/**
 * Every request has a budget, and so has every user (issue 17): MAX_CONCURRENT_REQUESTS_PER_USER requests of one user
 * run at once in a process; the next gets 503 with Retry-After before its body is read, other users are not held up,
 * and Pings that wait (push) do not count, so a user's pushing devices never fill the cap and a newer Ping still ends
 * its device's older one. Against the real Dovecot; requests are held in flight by bodies still being uploaded (a
 * slow client, the cheapest way to hold a request open).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { runningRequests } from '../../src/protocol/request-slots.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import { childText, el } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, WBXML, type TestServer } from '../device/device.ts';
import { createUser, seedMailbox } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { pingBody } from './session-steps.ts';

const services = inject('services');
const CAP = 2;

let server: TestServer;
const user: TestUser = createUser(services);
const other: TestUser = createUser(services);

beforeAll(async () => {
  server = testServer(services, {
    PROVISIONING: 'loose',
    MAX_CONCURRENT_REQUESTS_PER_USER: String(CAP),
    PING_MIN_HEARTBEAT: '1',
    PING_MAX_HEARTBEAT: '30',
    PING_POLL_SECONDS: '0.2',
  });
  for (const u of [user, other])
    await seedMailbox(services, u, 'INBOX', [{ message: { to: u.email, subject: 'Hello', text: 'Hi.\n' } }]);
}, 60_000);

/** A device that never provisions (loose mode), with its Inbox synced. */
async function readyDevice(u: TestUser): Promise<{ device: TestDevice; inbox: string }> {
  const device = new TestDevice(server, u);
  device.autoProvision = false;
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox);
  return { device, inbox };
}

/** A FolderSync whose body is still being uploaded until `finish` is called: a request held in flight. */
function heldRequest(u: TestUser, deviceId: string): { response: Promise<Response>; finish(): void } {
  const bytes = encodeWbxml(el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]));
  let finish = (): void => {};
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes.subarray(0, 3));
      finish = () => {
        controller.enqueue(bytes.subarray(3));
        controller.close();
      };
    },
  });
  const response = server.fetch(
    `https://eas.example.test/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=${u.name}&DeviceId=${deviceId}&DeviceType=iPhone`,
    {
      method: 'POST',
      body,
      duplex: 'half',
      headers: {
        Authorization: `Basic ${Buffer.from(`${u.email}:${u.password}`).toString('base64')}`,
        'MS-ASProtocolVersion': '14.1',
        'Content-Type': WBXML,
      },
    } as RequestInit,
  );
  return { response, finish: () => finish() };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
}

const running = (u: TestUser): number => runningRequests('test', u.email);

/** A device that never provisions (loose mode), for one request. */
function bare(u: TestUser, deviceId?: string): TestDevice {
  const device = new TestDevice(server, u, deviceId);
  device.autoProvision = false;
  return device;
}

describe('concurrent requests of one user', () => {
  let pushers: { device: TestDevice; inbox: string }[];

  afterAll(() => {
    for (const { device } of pushers ?? []) device.send('Sync', undefined).catch(() => undefined);
  });

  it('holds a user to MAX_CONCURRENT_REQUESTS_PER_USER, with 503 and Retry-After, while waiting Pings do not count', async () => {
    // Three devices of the user push: their Pings wait, and hold no slot while they do.
    pushers = [await readyDevice(user), await readyDevice(user), await readyDevice(user)];
    const pings = pushers.map(({ device, inbox }) => device.send('Ping', pingBody(30, [inbox])));
    await until(() => server.logs.length > 0 && running(user) === 0, 'the Pings to wait');

    const held = [heldRequest(user, 'HELD1'), heldRequest(user, 'HELD2')];
    await until(() => running(user) === CAP, 'two requests in flight');

    // A third request of the user is refused before its body is read, and the mail server is not asked for it.
    const third = await bare(user, 'THIRD').send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    expect(third.status).toBe(503);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(server.logs.at(-1)).toMatchObject({ http: 503, cmd: 'FolderSync' });

    // Another user is not held up.
    const stranger = await bare(other).send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    expect(stranger.status).toBe(200);

    // A newer Ping of a pushing device still ends its older one (Status 1), and waits without a slot.
    const [first] = pushers;
    const newer = first!.device.send('Ping', pingBody(30, [first!.inbox]));
    const older = await pings[0]!;
    expect(childText(older.body, 'Status')).toBe('1');

    for (const h of held) h.finish();
    for (const h of held) expect((await h.response).status).toBe(200);
    await until(() => running(user) === 0, 'the held requests to end');
    // The slots are free again.
    const after = await bare(user, 'AFTER').send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    expect(after.status).toBe(200);

    // A Sync of each pushing device ends its Ping.
    for (const { device, inbox } of pushers) await device.sync(inbox);
    for (const res of [newer, ...pings.slice(1)]) expect((await res).status).toBe(200);
  });
});
