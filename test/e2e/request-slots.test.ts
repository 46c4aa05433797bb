/**
 * Every request has a budget, and so has every user (issue 17): MAX_CONCURRENT_REQUESTS_PER_USER requests of one user
 * run at once in a process; the next gets 503 with Retry-After before its body is read, other users are not held up,
 * and Pings that wait (push) do not count, so a user's pushing devices never fill the cap and a newer Ping still ends
 * its device's older one. Against the real Dovecot.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { deviceKey } from '../../src/push/feed.ts';
import { runningRequests } from '../../src/protocol/request-slots.ts';
import { childText, el } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';
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

const running = (u: TestUser): number => runningRequests('test', u.email);

/** A device that never provisions (loose mode), for one request. */
function bare(u: TestUser, deviceId?: string): TestDevice {
  const device = new TestDevice(server, u, deviceId);
  device.autoProvision = false;
  return device;
}

describe('concurrent requests of one user', () => {
  it('holds a user to MAX_CONCURRENT_REQUESTS_PER_USER with 503 and Retry-After; other users go on', async () => {
    await readyDevice(user);
    const folderSync = el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]);
    // Twelve requests of the user at once: the cap lets two run, the ones that come meanwhile get 503.
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => bare(user, `BURST${i}`).send('FolderSync', folderSync)),
    );
    const refused = answers.filter((r) => r.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    expect(answers.every((r) => r.status === 200 || r.status === 503)).toBe(true);
    for (const r of refused) expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(running(user)).toBe(0);
    // Another user is not held up, and the user's slots are free again.
    expect((await bare(other).send('FolderSync', folderSync)).status).toBe(200);
    expect((await bare(user, 'AFTER').send('FolderSync', folderSync)).status).toBe(200);
  });

  it('does not count Pings while they wait: more pushing devices than the cap, and a newer Ping ends the older', async () => {
    const pushers = [await readyDevice(user), await readyDevice(user), await readyDevice(user)];
    // Each Ping writes its device's wait marker when it starts waiting (push/wait.ts); then it holds no slot. The
    // Pings start one after another, each once the one before waits: before it waits, a Ping holds a slot (its first
    // check reads the mail server), so three starting at the same instant under a cap of 2 would see a 503.
    const isWaiting = async (deviceId: string): Promise<boolean> => {
      const feed = await server.state.readFeed({ tenant: 'test', user: user.email.toLowerCase() });
      return feed.some((e) => e.folder === deviceKey(deviceId));
    };
    const pings: ReturnType<TestDevice['send']>[] = [];
    for (const { device, inbox } of pushers) {
      // A heartbeat longer than the test, so that no Ping ends by itself under load; the Syncs at the end end them.
      pings.push(device.send('Ping', pingBody(30, [inbox])));
      for (let i = 0; i < 200 && !(await isWaiting(device.deviceId)); i++) await new Promise((r) => setTimeout(r, 50));
      expect(await isWaiting(device.deviceId)).toBe(true);
    }
    expect(running(user)).toBe(0);

    // A newer Ping of a device ends its older one (Status 1).
    const [first] = pushers;
    const newer = first!.device.send('Ping', pingBody(30, [first!.inbox]));
    const older = await pings[0]!;
    expect(older.status).toBe(200);
    expect(childText(older.body, 'Status')).toBe('1');

    // A Sync of each device ends its Ping.
    for (const { device, inbox } of pushers) await device.sync(inbox);
    for (const res of [newer, ...pings.slice(1)]) expect((await res).status).toBe(200);
  });
});
