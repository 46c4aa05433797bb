/**
 * At most one IMAP login per request (issue 15): the credentials check hands its connection to the request's
 * backends. Counted in Dovecot's own log (one `imap-login: Login: user=<…>` line per login), so nothing in the app
 * can hide one: on Node with pooled connections, with one connection per request (what Workers do; also run inside
 * workerd in test/workers/logins.test.ts), and on Lambda.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app/build.ts';
import { freshImapSessions, pooledImapSessions } from '../../src/backends/imap/sessions.ts';
import type { ImapSettings } from '../../src/backends/imap/connection.ts';
import type { ImapSessions } from '../../src/backends/imap/sessions.ts';
import { FolderType } from '../../src/backends/types.ts';
import { loadConfig } from '../../src/config.ts';
import { createLambdaRuntime } from '../../src/runtimes/lambda.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import { childText } from '../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../device/device.ts';
import { functionUrlFetch } from '../device/function-url.ts';
import { createUser, seedMailbox } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { pingBody, quickPushSettings, seedInbox } from './session-steps.ts';

const services = inject('services');

const SETTINGS = quickPushSettings(services);

/** Dovecot's successful logins of this user so far. */
function loginsOf(user: TestUser): number {
  const log = readFileSync(`${services.dir}/dovecot/dovecot.log`, 'utf8');
  return log
    .split('\n')
    .filter((line) => /imap-login: (Info: )?Login: /.test(line) && line.includes(`user=<${user.email}>`)).length;
}

/** The logins Dovecot logged while `request` ran (written as the login happens; a moment is allowed for it). */
async function loginsDuring(user: TestUser, request: () => Promise<unknown>): Promise<number> {
  const before = loginsOf(user);
  await request();
  await new Promise((r) => setTimeout(r, 300));
  return loginsOf(user) - before;
}

/** A new process of the runtime (a new IMAP pool, a cold Lambda container) over the same state. */
type Start = () => TestServer;

function inProcess(imapSessions: (imap: ImapSettings) => ImapSessions): Start {
  const state = openSqliteStateStore(':memory:').store;
  return () => {
    const { app } = buildApp({ settings: loadConfig(SETTINGS), state, imapSessions, log: () => {} });
    return { fetch: async (url, init) => app.request(url, init), state, logs: [] };
  };
}

function onLambda(): Start {
  const env = {
    ...SETTINGS,
    DYNAMODB_TABLE: `ase-logins-${randomBytes(4).toString('hex')}`,
    DYNAMODB_ENDPOINT: services.dynamodb.endpoint,
    AWS_REGION: services.dynamodb.region,
    AWS_ACCESS_KEY_ID: services.dynamodb.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: services.dynamodb.credentials.secretAccessKey,
  };
  return () => {
    const runtime = createLambdaRuntime({ env, log: () => {} });
    return { fetch: functionUrlFetch((event) => runtime.http(event)), state: runtime.state, logs: [] };
  };
}

const runtimes: [string, () => Start][] = [
  ['Node (pooled connections)', () => inProcess((imap) => pooledImapSessions(imap))],
  ['a connection per request, as on Workers', () => inProcess((imap) => freshImapSessions(imap))],
  ['Lambda (pooled connections)', onLambda],
];

describe.each(runtimes)('IMAP logins per request: %s', (_, runtime) => {
  it('a Sync and a Ping each log in once, also where no connection is kept from before', async () => {
    const start = runtime();
    // Each measured request goes to a new process: a kept connection cannot hide a second login.
    let current = start();
    const server: TestServer = { fetch: (url, init) => current.fetch(url, init), state: current.state, logs: [] };
    const user = createUser(services);
    const device = new TestDevice(server, user);
    await seedInbox(services, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    // The log is read right: the set-up logged this user in.
    expect(loginsOf(user)).toBeGreaterThan(0);
    await seedMailbox(services, user, 'INBOX', [
      { message: { from: 'bob@example.test', to: user.email, subject: 'One more', text: 'Hi.\n' } },
    ]);

    let added = 0;
    current = start();
    const sync = await loginsDuring(user, async () => {
      added = (await device.sync(inbox)).added.length;
    });
    expect(added).toBe(1);
    let status: string | undefined;
    current = start();
    const ping = await loginsDuring(user, async () => {
      status = childText((await device.send('Ping', pingBody(2, [inbox]))).body, 'Status');
    });
    expect(status).toBe('1');
    expect({ sync, ping }).toEqual({ sync: 1, ping: 1 });
  }, 30_000);
});
