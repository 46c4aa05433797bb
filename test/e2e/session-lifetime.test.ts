/**
 * A pooled IMAP login proves the credentials only for IMAP_SESSION_MAX_AGE_SECONDS (issue 17, item 5): after the user
 * changes the password in Dovecot, the old one stops working once the pooled connections that proved it have aged
 * out, and the new one works. A Dovecot of its own: a failed login from 127.0.0.1 delays the next one by 2–4 s,
 * which must not slow other test files.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app/build.ts';
import { pooledImapSessions } from '../../src/backends/imap/sessions.ts';
import { loadConfig } from '../../src/config.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import { el } from '../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../device/device.ts';
import { makeUser, writeDovecotUser } from '../services/accounts.ts';
import { isRoot } from '../services/apt.ts';
import { startDovecot, type DovecotService } from '../services/dovecot.ts';

const services = inject('services');
const MAX_AGE_SECONDS = 2;
const user = makeUser(`life${Math.random().toString(36).slice(2, 8)}`, 'old-password');

let runDir: string;
let dovecot: DovecotService;
let server: TestServer;

beforeAll(async () => {
  runDir = mkdtempSync('/tmp/ase-l-');
  chmodSync(runDir, 0o755);
  dovecot = await startDovecot(runDir, [user], isRoot());
  const config = loadConfig({
    IMAP_HOST: '127.0.0.1',
    IMAP_PORT: String(dovecot.imapPort),
    IMAP_SECURE: 'false',
    TENANT: 'test',
    PROVISIONING: 'loose',
    IMAP_SESSION_MAX_AGE_SECONDS: String(MAX_AGE_SECONDS),
    // No throttling in the way: this test is about the pool, not about counting failures.
    AUTH_FAIL_LIMIT: '0',
  });
  const state = openSqliteStateStore(':memory:').store;
  // The pool keeps idle connections for 30 s, far longer than their lifetime here.
  const { app } = buildApp({
    settings: config,
    state,
    imapSessions: (imap) => pooledImapSessions(imap, { idleMs: 30_000 }),
    log: () => {},
  });
  server = { fetch: async (url, init) => app.request(url, init), state, logs: [] };
  expect(services.imap.port).not.toBe(dovecot.imapPort);
}, 60_000);

afterAll(async () => {
  await dovecot?.stop();
  if (runDir) rmSync(runDir, { recursive: true, force: true });
});

const basic = (password: string): string => `Basic ${Buffer.from(`${user.email}:${password}`).toString('base64')}`;

async function folderSyncStatus(device: TestDevice, password: string): Promise<number> {
  device.authorization = basic(password);
  const res = await device.send(
    'FolderSync',
    el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
  );
  return res.status;
}

it('refuses the old password once the pooled login that proved it is older than IMAP_SESSION_MAX_AGE_SECONDS', async () => {
  const device = new TestDevice(server, user);
  device.autoProvision = false;
  expect(await folderSyncStatus(device, 'old-password')).toBe(200);
  const loggedIn = Date.now();
  // Within the lifetime the pooled login serves the next request.
  expect(await folderSyncStatus(device, 'old-password')).toBe(200);

  // The user changes the password at the mail server (Dovecot re-reads a changed passwd-file within a second). Dovecot
  // sees a change by the file's mtime in seconds and its size: a new password of another length is seen even when the
  // file was written within the second of its last read.
  writeDovecotUser(`${runDir}`, { ...user, password: 'the-new-password' });
  await new Promise((r) => setTimeout(r, Math.max(1_200, loggedIn + MAX_AGE_SECONDS * 1000 + 200 - Date.now())));

  // The pooled connection is too old to count as a login: the server checks the old password, and refuses it.
  expect(await folderSyncStatus(device, 'old-password')).toBe(401);
  expect(await folderSyncStatus(device, 'the-new-password')).toBe(200);
}, 30_000);
