/**
 * Every request has a budget, and so has every user (issue 17): MAX_CONCURRENT_REQUESTS_PER_USER requests of one user
 * run at once in a process; the next gets 503 with Retry-After before its body is read, other users are not held up,
 * and Pings that wait (push) do not count, so a user's pushing devices never fill the cap and a newer Ping still ends
 * its device's older one. Of those, at most MAX_LARGE_BODIES_PER_USER may carry a body over LARGE_BODY_BYTES, judged
 * by Content-Length or, for a body sent without one, by the part read. Against the real Dovecot.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { deviceKey } from '../../src/push/feed.ts';
import { largeBodiesInFlight, runningRequests } from '../../src/protocol/request-slots.ts';
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

describe('large bodies of one user', () => {
  const LARGE = 4096;
  const MAX_LARGE = 2;
  let large: TestServer;
  const sender: TestUser = createUser(services);
  const bystander: TestUser = createUser(services);

  beforeAll(() => {
    large = testServer(services, {
      PROVISIONING: 'loose',
      LARGE_BODY_BYTES: String(LARGE),
      MAX_LARGE_BODIES_PER_USER: String(MAX_LARGE),
    });
  });

  /** A FolderSync whose SyncKey is `length` bytes long: a valid body of any size (answered with its own Status). */
  function folderSyncOf(length: number): Uint8Array {
    return Uint8Array.from([3, 1, 106, 0, 0x00, 0x07, 0x56, 0x52, 0x03, ...new Uint8Array(length).fill(0x31), 0, 1, 1]);
  }

  /** A body that sends its first `head` bytes at once and the rest when `finish` is called. */
  function heldBody(bytes: Uint8Array, head: number): { stream: ReadableStream<Uint8Array>; finish(): void } {
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    let sent = false;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(bytes.slice(0, head));
          return;
        }
        await finished;
        controller.enqueue(bytes.slice(head));
        controller.close();
      },
    });
    return { stream, finish };
  }

  /** A FolderSync POST of `body` to `to`, with a Content-Length only when `declared`. */
  function post(
    u: TestUser,
    deviceId: string,
    body: Uint8Array | ReadableStream<Uint8Array>,
    declared?: number,
    to: TestServer = large,
  ) {
    const url = `https://eas.example.test/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=${encodeURIComponent(u.name)}&DeviceId=${deviceId}&DeviceType=TestDevice`;
    return to.fetch(url, {
      method: 'POST',
      body,
      duplex: 'half',
      headers: {
        Authorization: `Basic ${Buffer.from(`${u.email}:${u.password}`).toString('base64')}`,
        'MS-ASProtocolVersion': '14.1',
        'Content-Type': WBXML,
        ...(declared !== undefined ? { 'Content-Length': String(declared) } : {}),
      },
    } as RequestInit);
  }

  it('refuses a third large body of a user with 503 and Retry-After, declared or streamed; small ones and other users go on', async () => {
    const body = folderSyncOf(LARGE * 4);
    // Two large bodies in flight, held half sent: one with its Content-Length, one without (counted once read past
    // LARGE_BODY_BYTES).
    const declared = heldBody(body, LARGE / 2);
    const streamed = heldBody(body, LARGE + 100);
    const held = [post(sender, 'LARGE1', declared.stream, body.length), post(sender, 'LARGE2', streamed.stream)];
    for (let i = 0; i < 400 && largeBodiesInFlight('test', sender.email) < MAX_LARGE; i++)
      await new Promise((r) => setTimeout(r, 25));
    expect(largeBodiesInFlight('test', sender.email)).toBe(MAX_LARGE);

    // A third, with its Content-Length: 503 before any of it is read.
    const third = await post(sender, 'LARGE3', body, body.length);
    expect(third.status).toBe(503);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(large.logs.at(-1)).toMatchObject({ cmd: 'FolderSync', http: 503 });
    expect(String(large.logs.at(-1)?.error)).toContain('too many large request bodies');
    // Without one: 503 once the part read passes LARGE_BODY_BYTES; the rest is not read.
    let chunksRead = 0;
    const chunks = body.length / 1024;
    const unsized = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(body.slice(chunksRead * 1024, (chunksRead + 1) * 1024));
        if (++chunksRead * 1024 >= body.length) controller.close();
      },
    });
    const fourth = await post(sender, 'LARGE4', unsized);
    expect(fourth.status).toBe(503);
    expect(Number(fourth.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(chunksRead).toBeLessThan(chunks);

    // The user's small requests go on, and so do another user's large ones.
    expect((await post(sender, 'SMALL', folderSyncOf(1))).status).toBe(200);
    const others = await post(bystander, 'OTHER', body, body.length);
    expect(others.status).toBe(200);

    // The two held ones are served once sent, and then the user's large bodies are welcome again.
    declared.finish();
    streamed.finish();
    for (const res of await Promise.all(held)) expect(res.status).toBe(200);
    expect(largeBodiesInFlight('test', sender.email)).toBe(0);
    expect((await post(sender, 'LARGE5', body, body.length)).status).toBe(200);
  });

  it("counts a hanging Sync's large body until it is read and decoded, not while the Sync waits", async () => {
    // The default cap of one large body per user.
    const one = testServer(services, {
      PROVISIONING: 'loose',
      LARGE_BODY_BYTES: String(LARGE),
      PING_MIN_HEARTBEAT: '1',
      PING_MAX_HEARTBEAT: '30',
    });
    const waiter = createUser(services);
    const device = new TestDevice(one, waiter);
    device.autoProvision = false;
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    // A Sync with HeartbeatInterval (MS-ASCMD §2.2.3.83; the least it takes, held to PING_MAX_HEARTBEAT) over an Inbox
    // with nothing new: it waits. Its body is large by a string table nothing refers to (WBXML 1.3 §5.7), which the
    // decoder skips: the same request, 2 x LARGE bytes longer.
    const sync = encodeWbxml(
      el('AirSync', 'Sync', [
        el('AirSync', 'Collections', [
          el('AirSync', 'Collection', [
            el('AirSync', 'SyncKey', device.collections.get(inbox)!.syncKey),
            el('AirSync', 'CollectionId', inbox),
          ]),
        ]),
        el('AirSync', 'HeartbeatInterval', '60'),
      ]),
    );
    const table = LARGE * 2; // 8192: the multi-byte integer 0xC0 0x00
    const padded = Uint8Array.from([...sync.subarray(0, 3), 0xc0, 0x00, ...new Uint8Array(table), ...sync.subarray(4)]);
    expect(sync[3]).toBe(0); // the encoder writes an empty string table
    const hanging = device.send('Sync', padded);
    const isWaiting = async (): Promise<boolean> => {
      const feed = await one.state.readFeed({ tenant: 'test', user: waiter.email.toLowerCase() });
      return feed.some((e) => e.folder === deviceKey(device.deviceId));
    };
    for (let i = 0; i < 200 && !(await isWaiting()); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await isWaiting()).toBe(true);

    // While it waits, it counts no large body, and the user's next large one is welcome.
    expect(largeBodiesInFlight('test', waiter.email)).toBe(0);
    const body = folderSyncOf(LARGE * 4);
    expect((await post(waiter, 'LARGE6', body, body.length, one)).status).toBe(200);

    // A newer Sync of the device ends the wait: an empty answer, nothing lost.
    const round = await device.sync(inbox);
    expect(round.status).toBe(1);
    const ended = await hanging;
    expect([ended.status, ended.bytes.length]).toEqual([200, 0]);
    expect(largeBodiesInFlight('test', waiter.email)).toBe(0);
  });
});
