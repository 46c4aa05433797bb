/**
 * The Worker under `wrangler dev` with neither IMAP_MASTER_USER nor CREDENTIAL_KEY: its cron sweep cannot log in to a
 * user's mailbox, so push cannot work there. The Worker says so once per isolate when it builds the app (a
 * `push-no-login` line), and each Ping that waits says it on its own log line (`noWatcherLogin`). Read from the
 * Worker's output, as an operator reads the logs.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import type { StateStore } from '../../../src/state/types.ts';
import { childText } from '../../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../../device/device.ts';
import { createUser } from '../../services/seed.ts';
import { fetchVia, startWranglerDev, type WranglerDev } from '../../services/wrangler-dev.ts';
import { pingBody, seedInbox } from '../session-steps.ts';

const services = inject('services');

/** The Worker's JSON log lines (src/log.ts), in order. */
function logLines(worker: WranglerDev): Record<string, unknown>[] {
  return worker
    .output()
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('{') && line.endsWith('}'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('the Worker without IMAP_MASTER_USER or CREDENTIAL_KEY', () => {
  let worker: WranglerDev;
  let device: TestDevice;
  let inbox: string;
  const user = createUser(services);

  beforeAll(async () => {
    worker = await startWranglerDev({
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
      TENANT: 'nologin',
      PING_MIN_HEARTBEAT: '1',
      PING_POLL_SECONDS: '1',
    });
    const server: TestServer = { fetch: fetchVia(worker.origin), state: undefined as unknown as StateStore, logs: [] };
    device = new TestDevice(server, user);
    await device.provision();
    await seedInbox(services, user);
    await device.folderSync();
    inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
  }, 90_000);

  afterAll(async () => {
    await worker?.stop();
  }, 30_000);

  it('says once, when the isolate builds the app, that push cannot work and what to set', () => {
    const notices = logLines(worker).filter((l) => l.event === 'push-no-login');
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ tenant: 'nologin', watcher: 'cron-sweep' });
    expect(String(notices[0]!.notice)).toMatch(
      /^push cannot work: the Worker's cron sweep .*IMAP_MASTER_USER.*CREDENTIAL_KEY/,
    );
  });

  it('each Ping that waits says on its log line that no watcher can log in', async () => {
    for (let i = 0; i < 2; i++) {
      const res = await device.send('Ping', pingBody(2, [inbox]));
      expect(childText(res.body, 'Status')).toBe('1');
    }
    // wrangler passes the Worker's output on a moment after the answer.
    const pingLines = (): Record<string, unknown>[] => logLines(worker).filter((l) => l.cmd === 'Ping');
    for (let waited = 0; pingLines().length < 2 && waited < 5_000; waited += 100)
      await new Promise((r) => setTimeout(r, 100));
    const pings = pingLines();
    expect(pings).toHaveLength(2);
    for (const line of pings)
      expect(line.noWatcherLogin).toBe(
        "mail: the Worker's cron sweep has no login without IMAP_MASTER_USER or CREDENTIAL_KEY",
      );
    // Still once: the isolate built its app once.
    expect(logLines(worker).filter((l) => l.event === 'push-no-login')).toHaveLength(1);
    // Nothing of the password on any line.
    expect(worker.output()).not.toContain(user.password);
    expect(worker.problems()).toEqual([]);
  }, 30_000);
});
