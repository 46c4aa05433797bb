/**
 * Push end to end against the real Dovecot: Ping (and a hanging Sync) through the app, the IDLE watcher running in
 * this process against the same state store, and changes made by another IMAP client.
 *
 * Short heartbeats need a lower minimum than Exchange's 60 s: PING_MIN_HEARTBEAT=1 here. The watcher checks the
 * folders other than INBOX every second here (45 s by default) and lists leases every 200 ms (15 s by default).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { loadConfig } from '../../../src/config.ts';
import type { LogEntry } from '../../../src/log.ts';
import { deviceKey, FEED_TTL_MS, HIERARCHY_KEY, parseWaitMarker, PushHub } from '../../../src/push/feed.ts';
import { releaseDevice, waitForChanges } from '../../../src/push/wait.ts';
import { startIdleWatcher, type IdleWatcher } from '../../../src/push/idle-watcher.ts';
import { openSqliteStateStore } from '../../../src/state/sqlite-node.ts';
import type { StateStore } from '../../../src/state/types.ts';
import { toBase64 } from '../../../src/util/base64.ts';
import { child, children, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, withImap } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';

const services = inject('services');

/** Settings of the servers here: short heartbeats allowed, a 10 s cap, the feed read every second. */
const PUSH_ENV = { PING_MIN_HEARTBEAT: '1', PING_MAX_HEARTBEAT: '10', PING_POLL_SECONDS: '1' };
const MASTER_ENV = { IMAP_MASTER_USER: services.master.user, IMAP_MASTER_PASSWORD: services.master.password };

function pushConfig(env: Record<string, string>) {
  return loadConfig({
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    ...env,
  }).push;
}

function watch(server: TestServer, env: Record<string, string>, logs: LogEntry[] = [], hub?: PushHub): IdleWatcher {
  return startIdleWatcher({
    state: server.state,
    tenant: 'test',
    imap: services.imap,
    push: pushConfig(env),
    checkIntervalMs: 1_000,
    leaseScanMs: 200,
    log: (e) => logs.push(e),
    ...(hub ? { hub } : {}),
  });
}

interface PingResult {
  status: number | undefined;
  folders: string[];
  body: WbxmlElement | undefined;
  ms: number;
}

function pingBody(heartbeat: number | undefined, folders: { id: string; class?: string }[]): WbxmlElement {
  return el('Ping', 'Ping', [
    heartbeat !== undefined ? el('Ping', 'HeartbeatInterval', String(heartbeat)) : undefined,
    folders.length
      ? el(
          'Ping',
          'Folders',
          folders.map((f) => el('Ping', 'Folder', [el('Ping', 'Id', f.id), el('Ping', 'Class', f.class ?? 'Email')])),
        )
      : undefined,
  ]);
}

async function ping(
  device: TestDevice,
  heartbeat: number | undefined,
  folders: string[],
  raw?: Uint8Array,
): Promise<PingResult> {
  const started = performance.now();
  const res = await device.send(
    'Ping',
    raw ??
      pingBody(
        heartbeat,
        folders.map((id) => ({ id })),
      ),
  );
  const ms = performance.now() - started;
  expect(res.status).toBe(200);
  return {
    status: res.body ? Number(childText(res.body, 'Status')) : undefined,
    folders: children(child(res.body, 'Folders'), 'Folder').map((f) => f.text ?? ''),
    body: res.body,
    ms,
  };
}

/** A device that has done FolderSync and synced the given folders to the end. */
async function syncedDevice(
  server: TestServer,
  user: TestUser,
  folders: string[] = [],
): Promise<{ device: TestDevice; inbox: string }> {
  const device = new TestDevice(server, user);
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  for (const id of [inbox, ...folders]) await device.syncUntilDone(id);
  return { device, inbox };
}

const message = (subject: string): string =>
  `From: someone@example.org\r\nTo: x@example.test\r\nSubject: ${subject}\r\n\r\nHello.\r\n`;

function later(ms: number, fn: () => Promise<unknown>): Promise<number> {
  return new Promise((resolve, reject) => setTimeout(() => fn().then(() => resolve(performance.now()), reject), ms));
}

describe('Ping with the IDLE watcher (master user login)', () => {
  let server: TestServer;
  let watcher: IdleWatcher;
  const watcherLogs: LogEntry[] = [];
  const env = { ...PUSH_ENV, ...MASTER_ENV };

  beforeAll(() => {
    server = testServer(services, env);
    watcher = watch(server, env, watcherLogs);
  });
  afterAll(async () => {
    await watcher.stop();
  });

  it('answers Status 2 within a few seconds of an APPEND to INBOX by another client', async () => {
    const user = createUser(services);
    const { device, inbox } = await syncedDevice(server, user);
    const appended = later(800, () => withImap(services, user, (imap) => imap.append('INBOX', message('pushed'))));
    const result = await ping(device, 10, [inbox]);
    const latency = performance.now() - (await appended);
    expect(result).toMatchObject({ status: 2, folders: [inbox] });
    expect(latency).toBeLessThan(3_000);
    // The device syncs and gets it; the next Ping has nothing to report until the heartbeat ends.
    expect((await device.sync(inbox)).added).toHaveLength(1);
    expect(watcherLogs.filter((e) => String(e.event).includes('error'))).toEqual([]);
  });

  it('answers Status 2 for a change in a folder other than INBOX', async () => {
    const user = createUser(services);
    await withImap(services, user, (imap) => imap.mailboxCreate('Projects'));
    const device = new TestDevice(server, user);
    await device.folderSync();
    const projects = device.folderByName('Projects').serverId;
    await device.syncUntilDone(projects);
    const appended = later(800, () => withImap(services, user, (imap) => imap.append('Projects', message('filed'))));
    const result = await ping(device, 10, [projects]);
    expect(result).toMatchObject({ status: 2, folders: [projects] });
    // The watcher checks folders other than INBOX every second in this test (45 s by default).
    expect(performance.now() - (await appended)).toBeLessThan(4_000);
  });

  it('answers Status 7 when another client creates a folder, before or during the Ping', async () => {
    const user = createUser(services);
    const { device, inbox } = await syncedDevice(server, user);
    // Before: the direct check lists the folders as FolderSync would.
    await withImap(services, user, (imap) => imap.mailboxCreate('Before'));
    const before = await ping(device, 10, [inbox]);
    expect(before.status).toBe(7);
    expect(before.ms).toBeLessThan(1_500);
    await device.folderSync();
    // During: the watcher's LIST changes the folder list's fingerprint in the feed.
    const created = later(800, () => withImap(services, user, (imap) => imap.mailboxCreate('During')));
    const during = await ping(device, 10, [inbox]);
    expect(during.status).toBe(7);
    expect(performance.now() - (await created)).toBeLessThan(4_000);
    // Deleted by another client: the same.
    await device.folderSync();
    const doomed = device.folderByName('Before').serverId;
    await withImap(services, user, (imap) => imap.mailboxDelete('Before'));
    expect((await ping(device, 10, [doomed])).status).toBe(7);
  });

  it('answers Status 7 for a folder id the device never got', async () => {
    const user = createUser(services);
    const { device } = await syncedDevice(server, user);
    expect((await ping(device, 5, ['999'])).status).toBe(7);
  });

  it('answers Status 1 on time when nothing changes', async () => {
    const user = createUser(services);
    const { device, inbox } = await syncedDevice(server, user);
    const result = await ping(device, 2, [inbox]);
    expect(result.status).toBe(1);
    // A little before the heartbeat (1/20 of it), never after.
    expect(result.ms).toBeGreaterThan(1_700);
    expect(result.ms).toBeLessThan(2_300);
  });

  it('reports what changed while no watcher ran: the direct check compares modseqs', async () => {
    const user = createUser(services);
    await withImap(services, user, (imap) => imap.append('INBOX', message('old')));
    const { device, inbox } = await syncedDevice(server, user);
    // No watcher for this user yet (no lease): a new message, then a flag change, each made with nobody watching.
    await withImap(services, user, (imap) => imap.append('INBOX', message('while away')));
    const appended = await ping(device, 10, [inbox]);
    expect(appended).toMatchObject({ status: 2, folders: [inbox] });
    expect(appended.ms).toBeLessThan(1_500);
    await device.syncUntilDone(inbox);
    await withImap(services, user, async (imap) => {
      await imap.mailboxOpen('INBOX');
      await imap.messageFlagsAdd('1', ['\\Seen'], { uid: true });
    });
    const flagged = await ping(device, 10, [inbox]);
    expect(flagged).toMatchObject({ status: 2, folders: [inbox] });
    expect(flagged.ms).toBeLessThan(1_500);
    expect((await device.sync(inbox)).changed).toEqual([`${inbox}:1`]);
  });

  it('answers Status 5 with the bound to a heartbeat out of range, and Status 6 to too many folders', async () => {
    const user = createUser(services);
    const { device, inbox } = await syncedDevice(server, user);
    const high = await ping(device, 11, [inbox]);
    expect(high.status).toBe(5);
    expect(childText(high.body, 'HeartbeatInterval')).toBe('10');
    const low = await ping(device, 0, [inbox]);
    expect(low.status).toBe(5);
    expect(childText(low.body, 'HeartbeatInterval')).toBe('1');
    const many = await ping(
      device,
      5,
      Array.from({ length: 301 }, (_, i) => String(i + 1)),
    );
    expect(many.status).toBe(6);
    expect(childText(many.body, 'MaxFolders')).toBe('300');
  });

  it('answers an empty Ping from the cache, and Status 3 when nothing is cached', async () => {
    const user = createUser(services);
    const { device, inbox } = await syncedDevice(server, user);
    expect((await ping(device, undefined, [], new Uint8Array())).status).toBe(3);
    expect((await ping(device, undefined, [])).status).toBe(3);
    expect((await ping(device, 1, [inbox])).status).toBe(1);
    // No body at all, then a Ping element without children: both repeat the 1 s Ping on INBOX.
    const empty = await ping(device, undefined, [], new Uint8Array());
    expect(empty.status).toBe(1);
    expect(empty.ms).toBeGreaterThan(800);
    expect((await ping(device, undefined, [])).status).toBe(1);
    // A heartbeat without folders: the cached folders, and the new heartbeat is cached.
    const first = later(500, () => withImap(services, user, (imap) => imap.append('INBOX', message('first'))));
    expect(await ping(device, 10, [])).toMatchObject({ status: 2, folders: [inbox] });
    await first;
    await device.syncUntilDone(inbox);
    // An empty Ping now waits up to 10 s on INBOX, and reports the change.
    const second = later(500, () => withImap(services, user, (imap) => imap.append('INBOX', message('second'))));
    expect(await ping(device, undefined, [], new Uint8Array())).toMatchObject({ status: 2, folders: [inbox] });
    await second;
  });

  it('ends an older Ping at once when the device sends a newer Ping or a Sync', async () => {
    const user = createUser(services);
    const { device, inbox } = await syncedDevice(server, user);
    const older = ping(device, 10, [inbox]);
    await new Promise((r) => setTimeout(r, 500));
    const newerStarted = performance.now();
    const newer = ping(device, 2, [inbox]);
    const first = await older;
    expect(first.status).toBe(1);
    expect(performance.now() - newerStarted).toBeLessThan(1_000);
    expect((await newer).status).toBe(1);

    const third = ping(device, 10, [inbox]);
    await new Promise((r) => setTimeout(r, 500));
    const syncStarted = performance.now();
    await device.sync(inbox);
    expect((await third).status).toBe(1);
    expect(performance.now() - syncStarted).toBeLessThan(1_000);
  });

  it('closes the connection of an account whose lease ended', async () => {
    const user = createUser(services);
    const scope = { tenant: 'test', user: user.email };
    const before = watcher.watching;
    await server.state.putLease({ ...scope, until: Date.now() + 1_500 });
    await expect.poll(() => watcher.watching, { timeout: 2_000 }).toBe(before + 1);
    await expect.poll(() => watcher.watching, { timeout: 4_000 }).toBe(before);
  });
});

describe('hanging Sync', () => {
  let server: TestServer;
  let watcher: IdleWatcher;
  // The cap holds a 60 s HeartbeatInterval to 3 s.
  const env = { ...PUSH_ENV, ...MASTER_ENV, PING_MAX_HEARTBEAT: '3' };

  beforeAll(() => {
    server = testServer(services, env);
    watcher = watch(server, env);
  });
  afterAll(() => watcher.stop());

  function hangingSync(device: TestDevice, inbox: string, wait: WbxmlElement) {
    const known = device.collections.get(inbox)!;
    return device.send(
      'Sync',
      el('AirSync', 'Sync', [
        el('AirSync', 'Collections', [
          el('AirSync', 'Collection', [el('AirSync', 'SyncKey', known.syncKey), el('AirSync', 'CollectionId', inbox)]),
        ]),
        wait,
      ]),
    );
  }

  it('answers an empty body when nothing changed by the end of the (capped) heartbeat', async () => {
    const user = createUser(services);
    const { device, inbox } = await syncedDevice(server, user);
    const started = performance.now();
    const res = await hangingSync(device, inbox, el('AirSync', 'HeartbeatInterval', '60'));
    expect(res.status).toBe(200);
    expect(res.bytes.length).toBe(0);
    expect(performance.now() - started).toBeGreaterThan(2_500);
    expect(performance.now() - started).toBeLessThan(3_500);
  });

  it('answers with the new message when one arrives while it waits (Wait, in minutes)', async () => {
    const user = createUser(services);
    const { device, inbox } = await syncedDevice(server, user);
    const appended = later(500, () =>
      withImap(services, user, (imap) => imap.append('INBOX', message('during the wait'))),
    );
    const res = await hangingSync(device, inbox, el('AirSync', 'Wait', '1'));
    await appended;
    const collection = child(child(res.body, 'Collections'), 'Collection');
    expect(childText(collection, 'Status')).toBe('1');
    expect(children(child(collection, 'Commands'), 'Add')).toHaveLength(1);
  });

  it('is ended by a Ping of the same device', async () => {
    const user = createUser(services);
    const { device, inbox } = await syncedDevice(server, user);
    const hanging = hangingSync(device, inbox, el('AirSync', 'HeartbeatInterval', '60'));
    await new Promise((r) => setTimeout(r, 400));
    const pinged = performance.now();
    const pingDone = ping(device, 1, [inbox]);
    const res = await hanging;
    expect(res.bytes.length).toBe(0);
    expect(performance.now() - pinged).toBeLessThan(1_000);
    await pingDone;
  });
});

describe('watcher logins without a master user', () => {
  it('logs in with the credential sealed on the lease (CREDENTIAL_KEY)', async () => {
    const env = { ...PUSH_ENV, CREDENTIAL_KEY: toBase64(crypto.getRandomValues(new Uint8Array(32))) };
    const server = testServer(services, env);
    // Its own hub: this watcher learns of the Ping only from the lease it reads, as one in another process would.
    const watcher = watch(server, env, [], new PushHub());
    try {
      const user = createUser(services);
      const { device, inbox } = await syncedDevice(server, user);
      const appended = later(800, () => withImap(services, user, (imap) => imap.append('INBOX', message('sealed'))));
      const result = await ping(device, 10, [inbox]);
      expect(result).toMatchObject({ status: 2, folders: [inbox] });
      // Lease scan every 200 ms, feed poll every second.
      expect(performance.now() - (await appended)).toBeLessThan(3_000);
      const lease = await server.state.getLease({ tenant: 'test', user: user.email });
      expect(lease?.credential).toBeInstanceOf(Uint8Array);
      expect(new TextDecoder().decode(lease!.credential)).not.toContain(user.password);
    } finally {
      await watcher.stop();
    }
  });

  it('logs in with the password a Ping of this process handed over in memory, and stores none', async () => {
    const server = testServer(services, PUSH_ENV);
    const watcher = watch(server, PUSH_ENV);
    try {
      const user = createUser(services);
      const { device, inbox } = await syncedDevice(server, user);
      const appended = later(800, () => withImap(services, user, (imap) => imap.append('INBOX', message('in memory'))));
      expect(await ping(device, 10, [inbox])).toMatchObject({ status: 2, folders: [inbox] });
      expect(performance.now() - (await appended)).toBeLessThan(3_000);
      expect((await server.state.getLease({ tenant: 'test', user: user.email }))?.credential).toBeUndefined();
    } finally {
      await watcher.stop();
    }
  });

  it('logs in as `%u*master` when IMAP_MASTER_USER is a login template', async () => {
    const env = {
      ...PUSH_ENV,
      IMAP_MASTER_USER: `%u${services.master.separator}${services.master.user}`,
      IMAP_MASTER_PASSWORD: services.master.password,
    };
    const server = testServer(services, env);
    const logs: LogEntry[] = [];
    const watcher = watch(server, env, logs, new PushHub());
    try {
      const user = createUser(services);
      const { device, inbox } = await syncedDevice(server, user);
      const appended = later(800, () => withImap(services, user, (imap) => imap.append('INBOX', message('template'))));
      expect(await ping(device, 10, [inbox])).toMatchObject({ status: 2, folders: [inbox] });
      await appended;
      expect(logs.filter((e) => String(e.event).includes('error'))).toEqual([]);
    } finally {
      await watcher.stop();
    }
  });
});

describe('the wait across processes (the feed alone)', () => {
  const push = pushConfig({ ...PUSH_ENV, PING_POLL_SECONDS: '0.2' });
  const device = { tenant: 'test', user: 'cross@example.test', deviceId: 'D1' };
  let state: StateStore;
  beforeAll(() => {
    state = openSqliteStateStore(':memory:').store;
  });

  it('ends an older wait when a newer one of the device starts in another process', async () => {
    const target = {
      serverId: '1',
      source: { backend: 'imap' as const, ref: 'INBOX' },
      state: undefined,
      baseline: undefined,
    };
    const request = { targets: [target], hierarchy: undefined, endOnHierarchyChange: true, seconds: 10 };
    // Two processes: two hubs that never meet.
    const older = waitForChanges({ state, device, push, password: 'x', hub: new PushHub() }, request);
    await new Promise((r) => setTimeout(r, 300));
    const started = performance.now();
    const newer = waitForChanges(
      { state, device, push, password: 'x', hub: new PushHub() },
      { ...request, seconds: 1 },
    );
    expect(await older).toEqual({ kind: 'superseded' });
    // Within one poll (0.2 s here).
    expect(performance.now() - started).toBeLessThan(700);
    expect(await newer).toEqual({ kind: 'expired' });
    const marker = parseWaitMarker((await state.readFeed(device)).find((e) => e.folder === deviceKey('D1'))!.marker);
    expect(marker?.folders).toEqual(['imap:INBOX']);
  });

  it('lets go of the lease (and its sealed credential) when the last waiting device is removed', async () => {
    const user = { tenant: 'test', user: 'release@example.test' };
    const target = {
      serverId: '1',
      source: { backend: 'imap' as const, ref: 'INBOX' },
      state: undefined,
      baseline: undefined,
    };
    const request = { targets: [target], hierarchy: undefined, endOnHierarchyChange: true, seconds: 1 };
    const vault = { ...push, master: undefined, credentialKey: crypto.getRandomValues(new Uint8Array(32)) };
    await Promise.all(
      ['P1', 'P2'].map((deviceId) =>
        waitForChanges(
          { state, device: { ...user, deviceId }, push: vault, password: 'pw', hub: new PushHub() },
          request,
        ),
      ),
    );
    expect((await state.getLease(user))?.credential).toBeInstanceOf(Uint8Array);
    await releaseDevice(state, { ...user, deviceId: 'P1' });
    // P2 is still within its grace: the watcher keeps the account.
    expect(await state.getLease(user)).toBeDefined();
    await releaseDevice(state, { ...user, deviceId: 'P2' });
    expect(await state.getLease(user)).toBeUndefined();
  });

  it('reports a feed entry written by a watcher elsewhere, and not one written before the wait began', async () => {
    const target = {
      serverId: '5',
      source: { backend: 'imap' as const, ref: 'Work' },
      state: {
        class: 'Email',
        watermark: { kind: 'imap' as const, uidValidity: 7, highestModSeq: '10', uids: '' },
        options: {},
        pending: [],
        clientIds: {},
      },
      baseline: undefined,
    };
    const user = { tenant: 'test', user: 'feed@example.test' };
    const scope = { ...user, deviceId: 'D2' };
    const now = Date.now();
    // Old news (a minute old): the direct check has already compared the folder itself.
    await state.putFeedEntry(user, {
      folder: 'imap:Work',
      marker: 'imap1 7 12 5 4',
      changedAt: now - 60_000,
      expiresAt: now + FEED_TTL_MS,
    });
    await state.putFeedEntry(user, {
      folder: HIERARCHY_KEY,
      marker: 'h1 0 0',
      changedAt: now - 60_000,
      expiresAt: now + FEED_TTL_MS,
    });
    const request = { targets: [target], hierarchy: { folders: [] }, endOnHierarchyChange: true, seconds: 10 };
    const waiting = waitForChanges({ state, device: scope, push, password: 'x', hub: new PushHub() }, request);
    await new Promise((r) => setTimeout(r, 500));
    // Same modseq as the device has: nothing; a higher one: a change.
    await state.putFeedEntry(user, {
      folder: 'imap:Work',
      marker: 'imap1 7 10 5 4',
      changedAt: Date.now(),
      expiresAt: Date.now() + FEED_TTL_MS,
    });
    await new Promise((r) => setTimeout(r, 500));
    await state.putFeedEntry(user, {
      folder: 'imap:Work',
      marker: 'imap1 7 11 6 5',
      changedAt: Date.now(),
      expiresAt: Date.now() + FEED_TTL_MS,
    });
    expect(await waiting).toEqual({ kind: 'changed', serverIds: ['5'] });
  });
});
