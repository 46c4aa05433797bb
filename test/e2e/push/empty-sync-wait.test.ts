/**
 * An empty Sync (no body, 12.1+) after a hanging Sync: it repeats the cached request, Wait/HeartbeatInterval
 * included, as Exchange does, so it hangs on the change feed too (real Dovecot, the IDLE watcher in this process).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { loadConfig } from '../../../src/config.ts';
import { startIdleWatcher, type IdleWatcher } from '../../../src/push/idle-watcher.ts';
import { child, children, childText, el } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, withImap } from '../../services/seed.ts';

const services = inject('services');
// The cap holds a 60 s HeartbeatInterval to 3 s.
const ENV = {
  PING_MIN_HEARTBEAT: '1',
  PING_MAX_HEARTBEAT: '3',
  PING_POLL_SECONDS: '1',
  IMAP_MASTER_USER: services.master.user,
  IMAP_MASTER_PASSWORD: services.master.password,
};

let server: TestServer;
let watcher: IdleWatcher;

beforeAll(() => {
  server = testServer(services, ENV);
  const push = loadConfig({
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    ...ENV,
  }).push;
  watcher = startIdleWatcher({
    state: server.state,
    tenant: 'test',
    imap: services.imap,
    push,
    checkIntervalMs: 1_000,
    leaseScanMs: 200,
  });
});
afterAll(() => watcher.stop());

async function deviceAfterHangingSync(): Promise<{
  device: TestDevice;
  inbox: string;
  user: ReturnType<typeof createUser>;
}> {
  const user = createUser(services);
  const device = new TestDevice(server, user);
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox);
  // A full Sync with HeartbeatInterval: cached with its heartbeat; nothing changes, so it ends empty at the cap.
  const known = device.collections.get(inbox)!;
  const full = await device.send(
    'Sync',
    el('AirSync', 'Sync', [
      el('AirSync', 'Collections', [
        el('AirSync', 'Collection', [el('AirSync', 'SyncKey', known.syncKey), el('AirSync', 'CollectionId', inbox)]),
      ]),
      el('AirSync', 'HeartbeatInterval', '60'),
    ]),
  );
  expect(full.status).toBe(200);
  expect(full.bytes.length).toBe(0);
  return { device, inbox, user };
}

describe('empty Sync after a hanging Sync', () => {
  it('hangs for the cached heartbeat (capped), then answers an empty body', async () => {
    const { device } = await deviceAfterHangingSync();
    const started = performance.now();
    const res = await device.send('Sync');
    expect(res.status).toBe(200);
    expect(res.bytes.length).toBe(0);
    expect(performance.now() - started).toBeGreaterThan(2_500);
  });

  it('answers with the new message when one arrives while it hangs', async () => {
    const { device, user } = await deviceAfterHangingSync();
    const appended = new Promise<void>((resolve, reject) =>
      setTimeout(
        () =>
          withImap(services, user, (imap) =>
            imap.append('INBOX', 'From: a@example.org\r\nSubject: while hanging\r\n\r\nHi.\r\n'),
          ).then(() => resolve(), reject),
        700,
      ),
    );
    const res = await device.send('Sync');
    await appended;
    const collection = child(child(res.body, 'Collections'), 'Collection');
    expect(childText(collection, 'Status')).toBe('1');
    expect(children(child(collection, 'Commands'), 'Add')).toHaveLength(1);
  });
});
