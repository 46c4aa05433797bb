/**
 * What an idle device's Pings write (DESIGN §5, the ≤ 10 writes per idle device-hour target; bench:push counts
 * them per hour): the wait marker and the watch lease only when needed. Against the real Dovecot, through the app,
 * with the IDLE watcher as another process would run it (a hub of its own: it learns the folders from the feed).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { loadConfig } from '../../../src/config.ts';
import { deviceKey, parseWaitMarker, PushHub } from '../../../src/push/feed.ts';
import { LEASE_EXTENSION_MS } from '../../../src/push/wait.ts';
import { startIdleWatcher, type IdleWatcher } from '../../../src/push/idle-watcher.ts';
import { openSqliteStateStore } from '../../../src/state/sqlite-node.ts';
import type { StateStore } from '../../../src/state/types.ts';
import { child, children, childText, el } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, withImap } from '../../services/seed.ts';

const services = inject('services');
const ENV = {
  PING_MIN_HEARTBEAT: '1',
  PING_MAX_HEARTBEAT: '10',
  PING_POLL_SECONDS: '1',
  IMAP_MASTER_USER: services.master.user,
  IMAP_MASTER_PASSWORD: services.master.password,
};

/** The store, counting the calls that write a wait marker or a lease. */
function counted(store: StateStore): { store: StateStore; writes: Record<string, number>; reset(): void } {
  const writes: Record<string, number> = {};
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const name = String(prop);
        if (
          name === 'putLease' ||
          (name === 'putFeedEntry' && String((args[1] as { folder: string }).folder).startsWith('device:'))
        )
          writes[name] = (writes[name] ?? 0) + 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    store: proxy,
    writes,
    reset: () => {
      for (const k of Object.keys(writes)) delete writes[k];
    },
  };
}

const base = openSqliteStateStore(':memory:').store;
const app = counted(base);
let server: TestServer;
let watcher: IdleWatcher;

beforeAll(() => {
  server = testServer(services, ENV, { state: app.store });
  const push = loadConfig({
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    ...ENV,
  }).push;
  watcher = startIdleWatcher({
    state: base,
    tenant: 'test',
    imap: services.imap,
    push,
    hub: new PushHub(),
    checkIntervalMs: 1_000,
    leaseScanMs: 200,
  });
});
afterAll(() => watcher.stop());

async function ping(
  device: TestDevice,
  heartbeat: number,
  folders: string[],
): Promise<{ status: number; folders: string[] }> {
  const res = await device.send(
    'Ping',
    el('Ping', 'Ping', [
      el('Ping', 'HeartbeatInterval', String(heartbeat)),
      el(
        'Ping',
        'Folders',
        folders.map((id) => el('Ping', 'Folder', [el('Ping', 'Id', id), el('Ping', 'Class', 'Email')])),
      ),
    ]),
  );
  return {
    status: Number(childText(res.body, 'Status')),
    folders: children(child(res.body, 'Folders'), 'Folder').map((f) => f.text ?? ''),
  };
}

describe('writes of an idle device', () => {
  it('writes marker and lease for its first Ping, then nothing while the watch covers its Pings, even after a Sync', async () => {
    const user = createUser(services);
    await withImap(services, user, (imap) => imap.mailboxCreate('Projects'));
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    const projects = device.folderByName('Projects').serverId;
    await device.syncUntilDone(inbox);
    await device.syncUntilDone(projects);

    app.reset();
    expect((await ping(device, 2, [inbox])).status).toBe(1);
    expect(app.writes).toEqual({ putFeedEntry: 1, putLease: 1 });
    const lease = await base.getLease(device.scope);
    // The lease runs well beyond this wait, so the next Pings need not extend it.
    expect(lease!.until).toBeGreaterThan(Date.now() + LEASE_EXTENSION_MS - 60_000);

    app.reset();
    expect((await ping(device, 2, [inbox])).status).toBe(1);
    expect((await ping(device, 2, [inbox])).status).toBe(1);
    expect(app.writes).toEqual({});

    // A Sync ends the device's wait (which may be under way elsewhere) but keeps its folders and watch.
    // A second Sync right after (MoreAvailable rounds) does not end it again.
    app.reset();
    await device.sync(inbox);
    await device.sync(inbox);
    expect(app.writes).toEqual({ putFeedEntry: 1 });
    const ended = parseWaitMarker(
      (await base.readFeed(device.scope)).find((e) => e.folder === deviceKey(device.deviceId))!.marker,
    )!;
    expect(ended.folders).toEqual(['imap:INBOX']);

    // The next Ping writes nothing, and the watcher (another process: it learns the folders from the feed) still
    // watches INBOX: a new message answers it.
    app.reset();
    setTimeout(
      () =>
        void withImap(services, user, (imap) =>
          imap.append('INBOX', 'From: a@example.org\r\nSubject: still watched\r\n\r\nHi.\r\n'),
        ),
      1_000,
    );
    expect(await ping(device, 8, [inbox])).toEqual({ status: 2, folders: [inbox] });
    expect(app.writes).toEqual({});
    await device.syncUntilDone(inbox);

    // Other folders: marker and lease again (the lease grows, so a watcher elsewhere reads the new folders).
    app.reset();
    setTimeout(
      () =>
        void withImap(services, user, (imap) =>
          imap.append('Projects', 'From: a@example.org\r\nSubject: filed\r\n\r\nHi.\r\n'),
        ),
      1_000,
    );
    expect(await ping(device, 8, [inbox, projects])).toEqual({ status: 2, folders: [projects] });
    expect(app.writes).toEqual({ putFeedEntry: 1, putLease: 1 });
    expect((await base.getLease(device.scope))!.until).toBeGreaterThan(lease!.until);
  });
});
