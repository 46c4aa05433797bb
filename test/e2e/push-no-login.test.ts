/**
 * Without IMAP_MASTER_USER or CREDENTIAL_KEY, what each runtime's push watcher can still do, as the log lines say it
 * (the Worker's own run is test/e2e/workerd/push-no-login.test.ts):
 * - Node: its in-process watcher takes the password a Ping hands it in memory, so push works: nothing is said;
 * - Lambda: the watcher is another function, which no password held in memory reaches: said at start and on each
 *   waiting Ping's log line; with CREDENTIAL_KEY or a master user, nothing is said.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app/build.ts';
import { pooledImapSessions } from '../../src/backends/imap/sessions.ts';
import { FolderType } from '../../src/backends/types.ts';
import { loadConfig } from '../../src/config.ts';
import type { LogEntry } from '../../src/log.ts';
import { createLambdaRuntime } from '../../src/runtimes/lambda.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import { childText } from '../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../device/device.ts';
import { functionUrlFetch } from '../device/function-url.ts';
import { createUser } from '../services/seed.ts';
import { pingBody, quickPushSettings, seedInbox } from './session-steps.ts';

const services = inject('services');

const SETTINGS = quickPushSettings(services);

/** A device that has synced its Inbox, then one Ping of 2 s; the log lines of the whole run. */
async function pingOnce(server: TestServer, logs: LogEntry[]): Promise<LogEntry[]> {
  const user = createUser(services);
  const device = new TestDevice(server, user);
  await seedInbox(services, user);
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox);
  const res = await device.send('Ping', pingBody(2, [inbox]));
  expect(childText(res.body, 'Status')).toBe('1');
  expect(JSON.stringify(logs)).not.toContain(user.password);
  return logs;
}

describe('push without IMAP_MASTER_USER or CREDENTIAL_KEY, per runtime', () => {
  it('Node: the in-process watcher uses the password in memory; nothing to say', async () => {
    const logs: LogEntry[] = [];
    const state = openSqliteStateStore(':memory:').store;
    const { app } = buildApp({
      settings: loadConfig(SETTINGS),
      state,
      imapSessions: (imap) => pooledImapSessions(imap),
      log: (e) => logs.push(e),
      pushWatcher: 'in-process',
    });
    await pingOnce({ fetch: async (url, init) => app.request(url, init), state, logs: [] }, logs);
    expect(logs.filter((l) => l.event === 'push-no-login')).toEqual([]);
    const ping = logs.find((l) => l.cmd === 'Ping');
    expect(ping).toBeDefined();
    expect(ping!.noWatcherLogin).toBeUndefined();
  }, 30_000);

  it('Lambda: said once at start, and on the waiting Ping’s log line', async () => {
    const logs: LogEntry[] = [];
    const runtime = createLambdaRuntime({
      env: {
        ...SETTINGS,
        DYNAMODB_TABLE: `ase-nologin-${randomBytes(4).toString('hex')}`,
        DYNAMODB_ENDPOINT: services.dynamodb.endpoint,
        AWS_REGION: services.dynamodb.region,
        AWS_ACCESS_KEY_ID: services.dynamodb.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: services.dynamodb.credentials.secretAccessKey,
      },
      log: (e) => logs.push(e),
    });
    const notices = logs.filter((l) => l.event === 'push-no-login');
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ tenant: 'test', watcher: 'watch-function' });
    expect(notices[0]!.notice).toMatch(/^push cannot work: the watch function .*IMAP_MASTER_USER.*CREDENTIAL_KEY/);
    await pingOnce({ fetch: functionUrlFetch((event) => runtime.http(event)), state: runtime.state, logs: [] }, logs);
    expect(logs.find((l) => l.cmd === 'Ping')?.noWatcherLogin).toBe(
      'mail: the watch function has no login without IMAP_MASTER_USER or CREDENTIAL_KEY',
    );
  }, 30_000);

  it('a sealed credential (CREDENTIAL_KEY) or a master user: nothing to say on Lambda either', async () => {
    for (const extra of [
      { CREDENTIAL_KEY: randomBytes(32).toString('base64') },
      { IMAP_MASTER_USER: services.master.user, IMAP_MASTER_PASSWORD: services.master.password },
    ]) {
      const logs: LogEntry[] = [];
      const state = openSqliteStateStore(':memory:').store;
      const { app } = buildApp({
        settings: loadConfig({ ...SETTINGS, ...extra }),
        state,
        imapSessions: (imap) => pooledImapSessions(imap),
        log: (e) => logs.push(e),
        pushWatcher: 'watch-function',
      });
      await pingOnce({ fetch: async (url, init) => app.request(url, init), state, logs: [] }, logs);
      expect(logs.filter((l) => l.event === 'push-no-login' || l.noWatcherLogin !== undefined)).toEqual([]);
    }
  }, 30_000);
});
