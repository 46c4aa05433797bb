/**
 * The push watcher's sweep strategy inside workerd (Cloudflare's cron), against a real Dovecot (started for this
 * project by test/services/workers-global-setup.ts): imapflow over workerd's sockets, the feed in the Durable
 * Object store, at most 6 simultaneous connections, and the Worker's `scheduled` entry.
 */
import { createScheduledController } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { ImapFlow } from 'imapflow';
import { EventEmitter } from 'node:events';
import { describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { deviceKey, encodeWaitMarker, HIERARCHY_KEY, parseImapMarker } from '../../src/push/feed.ts';
import { sweep, SweepMemo } from '../../src/push/watcher.ts';
import worker from '../../src/runtimes/cloudflare.ts';
import { durableObjectStateStore } from '../../src/state/durable-object.ts';
import type { StateStore } from '../../src/state/types.ts';
import type { WorkersImap } from '../services/workers-global-setup.ts';

// imapflow needs more listeners per socket than the default 10 (the Worker entry sets this too).
EventEmitter.defaultMaxListeners = 50;

const imap: WorkersImap = inject('imap');
const settings = {
  IMAP_HOST: imap.host,
  IMAP_PORT: String(imap.port),
  IMAP_SECURE: 'false',
  IMAP_MASTER_USER: imap.master.user,
  IMAP_MASTER_PASSWORD: imap.master.password,
};
const push = loadConfig(settings).push;
const server = { host: imap.host, port: imap.port, secure: false };

async function lease(state: StateStore, tenant: string, user: string, folders: string[]): Promise<void> {
  const until = Date.now() + 60_000;
  await state.putLease({ tenant, user, until });
  await state.putFeedEntry({ tenant, user }, { folder: deviceKey('D1'), marker: encodeWaitMarker({ g: '1', until, folders }), changedAt: Date.now(), expiresAt: until });
}

async function append(user: string, folder: string): Promise<void> {
  const account = imap.users.find((u) => u.email === user)!;
  const client = new ImapFlow({ host: imap.host, port: imap.port, secure: false, auth: { user, pass: account.password }, logger: false });
  client.on('error', () => {});
  await client.connect();
  await client.append(folder, `From: a@example.org\r\nSubject: swept ${Date.now()}\r\n\r\nHi.\r\n`);
  await client.logout();
}

async function marker(state: StateStore, tenant: string, user: string, key: string): Promise<string | undefined> {
  return (await state.readFeed({ tenant, user })).find((e) => e.folder === key)?.marker;
}

describe('sweep (inside workerd)', () => {
  it('logs in, reads STATUS of the watched folders, logs out, and writes only changed markers', async () => {
    const state = durableObjectStateStore(env.STATE);
    const tenant = 'sweep-a';
    const user = 'alice@example.test';
    await lease(state, tenant, user, ['imap:INBOX', 'imap:Sent']);
    const memo = new SweepMemo();

    const first = await sweep({ state, tenant, imap: server, push, memo });
    expect(first).toMatchObject({ passes: 1, accounts: 1, logins: 1, errors: 0 });
    // The folder list's fingerprint, INBOX and Sent.
    expect(first.written).toBe(3);
    expect(await marker(state, tenant, user, HIERARCHY_KEY)).toMatch(/^h1 /);
    const before = parseImapMarker((await marker(state, tenant, user, 'imap:INBOX'))!)!;
    expect(await marker(state, tenant, user, 'imap:Sent')).toMatch(/^imap1 /);

    // Nothing changed: a login and STATUS, no write.
    expect(await sweep({ state, tenant, imap: server, push, memo })).toMatchObject({ logins: 1, written: 0, errors: 0 });

    await append(user, 'INBOX');
    expect(await sweep({ state, tenant, imap: server, push, memo })).toMatchObject({ written: 1, errors: 0 });
    const after = parseImapMarker((await marker(state, tenant, user, 'imap:INBOX'))!)!;
    expect(after.highestModSeq! > before.highestModSeq!).toBe(true);
    expect(after.uidNext).toBe(before.uidNext + 1);
  });

  it('keeps to 6 simultaneous connections, and repeats its passes until told to stop', async () => {
    const state = durableObjectStateStore(env.STATE);
    const tenant = 'sweep-b';
    for (const u of imap.users) await lease(state, tenant, u.email, ['imap:INBOX']);
    const report = await sweep({ state, tenant, imap: server, push, until: Date.now() + 700, passIntervalMs: 300 });
    expect(report.accounts).toBe(imap.users.length);
    expect(report.accounts).toBeGreaterThan(6);
    expect(report.passes).toBeGreaterThanOrEqual(2);
    expect(report.logins).toBe(report.passes * imap.users.length);
    expect(report.peakConnections).toBe(6);
    expect(report.errors).toBe(0);
  });

  it("runs from the Worker's cron entry until the end of its minute", async () => {
    const state = durableObjectStateStore(env.STATE);
    const tenant = 'sweep-cron';
    const user = 'bob@example.test';
    await lease(state, tenant, user, ['imap:INBOX']);
    // Scheduled 49 s ago: one second of its minute is left.
    const controller = createScheduledController({ scheduledTime: Date.now() - 49_000, cron: '* * * * *' });
    const started = Date.now();
    await worker.scheduled(controller, { ...env, ...settings, TENANT: tenant });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await marker(state, tenant, user, 'imap:INBOX')).toMatch(/^imap1 /);
  });
});
