/**
 * Calendar and contact folders in the change feed, end to end against the real Radicale and Dovecot: a device waits
 * in a Ping on a calendar (or address book) it has synced, another client PUTs an item on the DAV server, and the
 * IDLE watcher's periodic check of the collection's sync-token writes a `dav1` feed marker that answers the Ping
 * with Status 2.
 *
 * The watcher logs in to DAV with the user's own password: handed over in memory by a Ping of this process, or the
 * credential sealed on the lease (CREDENTIAL_KEY) when the watcher is in another process (a hub of its own here).
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import type { LogEntry } from '../../../src/log.ts';
import { parseDavMarker, PushHub } from '../../../src/push/feed.ts';
import { fromBase64 } from '../../../src/util/base64.ts';
import { deviceKey, encodeWaitMarker } from '../../../src/push/feed.ts';
import { startIdleWatcher, type IdleWatcher } from '../../../src/push/idle-watcher.ts';
import { sweep, SweepMemo } from '../../../src/push/sweep.ts';
import { sealCredential } from '../../../src/tenants/vault.ts';
import { openSqliteStateStore } from '../../../src/state/sqlite-node.ts';
import { toBase64 } from '../../../src/util/base64.ts';
import { child, children, childText, el } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, davRequest, makeEvent, makeVCard, seedAddressBook, seedCalendar } from '../../services/seed.ts';

const services = inject('services');

const PUSH_ENV = { PING_MIN_HEARTBEAT: '1', PING_MAX_HEARTBEAT: '20', PING_POLL_SECONDS: '1' };
const MASTER_ENV = { IMAP_MASTER_USER: services.master.user, IMAP_MASTER_PASSWORD: services.master.password };

let watcher: IdleWatcher | undefined;
afterEach(async () => {
  await watcher?.stop();
  watcher = undefined;
});

function startWatcher(server: TestServer, env: Record<string, string>, logs: LogEntry[], hub?: PushHub): IdleWatcher {
  const push = loadConfig({
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    ...env,
  }).push;
  return startIdleWatcher({
    state: server.state,
    tenant: 'test',
    imap: services.imap,
    push,
    dav: { caldavUrl: services.caldavUrl, carddavUrl: services.carddavUrl },
    checkIntervalMs: 1_000,
    leaseScanMs: 200,
    log: (e) => logs.push(e),
    ...(hub ? { hub } : {}),
  });
}

async function ping(
  device: TestDevice,
  heartbeat: number,
  folderId: string,
  folderClass: string,
): Promise<{ status: number; folders: string[] }> {
  const res = await device.send(
    'Ping',
    el('Ping', 'Ping', [
      el('Ping', 'HeartbeatInterval', String(heartbeat)),
      el('Ping', 'Folders', [el('Ping', 'Folder', [el('Ping', 'Id', folderId), el('Ping', 'Class', folderClass)])]),
    ]),
  );
  expect(res.status).toBe(200);
  return {
    status: Number(childText(res.body, 'Status')),
    folders: children(child(res.body, 'Folders'), 'Folder').map((f) => f.text ?? ''),
  };
}

function later(ms: number, fn: () => Promise<unknown>): Promise<number> {
  return new Promise((resolve, reject) => setTimeout(() => fn().then(() => resolve(performance.now()), reject), ms));
}

async function putEvent(user: Parameters<typeof davRequest>[1], collectionUrl: string, summary: string): Promise<void> {
  const uid = `push-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const res = await davRequest(services, user, 'PUT', new URL(`${uid}.ics`, collectionUrl).href, {
    body: makeEvent({ uid, summary, start: '2026-04-01T09:00:00' }),
    contentType: 'text/calendar; charset=utf-8',
  });
  expect(res.status).toBeLessThan(300);
}

describe('calendar and contact folders in the change feed', () => {
  it('a Ping on a calendar answers Status 2 within a few seconds of a PUT by another client (password in memory)', async () => {
    const env = { ...PUSH_ENV, ...MASTER_ENV };
    const server = testServer(services, env);
    const logs: LogEntry[] = [];
    watcher = startWatcher(server, env, logs);
    const user = createUser(services);
    const calendar = await seedCalendar(
      services,
      user,
      'work',
      [makeEvent({ summary: 'Planning', start: '2026-03-30T10:00:00' })],
      { displayName: 'Work' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const work = device.folderByName('Work').serverId;
    await device.syncUntilDone(work);

    // Nothing changed: the watcher's token is the device's, and the Ping runs to its end.
    const idle = await ping(device, 3, work, 'Calendar');
    expect(idle.status).toBe(1);
    const key = `caldav:${calendar.collectionUrl}`;
    const entry = (await server.state.readFeed({ tenant: 'test', user: user.email })).find((e) => e.folder === key);
    expect(parseDavMarker(entry?.marker ?? '')).toMatch(/\S/);

    const put = later(1_500, () => putEvent(user, calendar.collectionUrl, 'Added elsewhere'));
    const result = await ping(device, 15, work, 'Calendar');
    const latency = performance.now() - (await put);
    expect(result).toEqual({ status: 2, folders: [work] });
    // The watcher checks watched collections every second here (45 s by default).
    expect(latency).toBeLessThan(4_000);
    const synced = await device.sync(work);
    expect(synced.added).toHaveLength(1);
    expect(logs.filter((e) => String(e.event).includes('error'))).toEqual([]);
  });

  it('an address book, with the watcher in another process: it logs in to CardDAV with the sealed credential', async () => {
    const env = { ...PUSH_ENV, ...MASTER_ENV, CREDENTIAL_KEY: toBase64(crypto.getRandomValues(new Uint8Array(32))) };
    const server = testServer(services, env);
    const logs: LogEntry[] = [];
    // A hub of its own: no password is handed over, the Ping learns from its feed polls alone.
    watcher = startWatcher(server, env, logs, new PushHub());
    const user = createUser(services);
    const book = await seedAddressBook(
      services,
      user,
      'friends',
      [makeVCard({ firstName: 'Ann', lastName: 'Example', emails: [{ address: 'ann@example.org' }] })],
      { displayName: 'Friends' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const friends = device.folderByName('Friends').serverId;
    await device.syncUntilDone(friends);

    const lease = () => server.state.getLease({ tenant: 'test', user: user.email });
    const put = later(1_500, async () => {
      // The lease carries the sealed credential, though the tenant has a master user (IMAP needs none).
      expect((await lease())?.credential?.length).toBeGreaterThan(0);
      const uid = `vc-${Date.now()}`;
      const res = await davRequest(services, user, 'PUT', new URL(`${uid}.vcf`, book.collectionUrl).href, {
        body: makeVCard({ uid, firstName: 'Bo', lastName: 'Example', emails: [{ address: 'bo@example.org' }] }),
        contentType: 'text/vcard; charset=utf-8',
      });
      expect(res.status).toBeLessThan(300);
    });
    const result = await ping(device, 15, friends, 'Contacts');
    const latency = performance.now() - (await put);
    expect(result).toEqual({ status: 2, folders: [friends] });
    // Lease scan 200 ms, check every second, feed poll every second.
    expect(latency).toBeLessThan(5_000);
    expect((await device.sync(friends)).added).toHaveLength(1);
    expect(logs.filter((e) => String(e.event).includes('error'))).toEqual([]);
  });

  it('the sweep strategy (the Cloudflare cron, run here in Node) compares the sync-token too', async () => {
    const key = toBase64(crypto.getRandomValues(new Uint8Array(32)));
    const push = loadConfig({
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
      ...MASTER_ENV,
      CREDENTIAL_KEY: key,
    }).push;
    const state = openSqliteStateStore(':memory:').store;
    const user = createUser(services);
    const calendar = await seedCalendar(services, user, 'swept', [], { displayName: 'Swept' });
    const scope = { tenant: 'sweep-dav', user: user.email };
    const until = Date.now() + 60_000;
    const folder = `caldav:${calendar.collectionUrl}`;
    await state.putLease({ ...scope, until, credential: await sealCredential(fromBase64(key)!, scope, user.password) });
    await state.putFeedEntry(scope, {
      folder: deviceKey('D1'),
      marker: encodeWaitMarker({ g: '1', until, folders: [folder] }),
      changedAt: Date.now(),
      expiresAt: until,
    });
    const options = {
      state,
      tenant: scope.tenant,
      imap: services.imap,
      push,
      dav: { caldavUrl: services.caldavUrl },
      memo: new SweepMemo(),
    };
    const marker = async (): Promise<string | undefined> =>
      (await state.readFeed(scope)).find((e) => e.folder === folder)?.marker;

    expect(await sweep(options)).toMatchObject({ errors: 0 });
    const before = await marker();
    expect(parseDavMarker(before ?? '')).toMatch(/\S/);
    // Unchanged: no write.
    expect(await sweep(options)).toMatchObject({ written: 0, errors: 0 });
    await putEvent(user, calendar.collectionUrl, 'Swept up');
    expect(await sweep(options)).toMatchObject({ written: 1, errors: 0 });
    expect(await marker()).not.toBe(before);
  });
});
