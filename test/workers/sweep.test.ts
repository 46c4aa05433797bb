/**
 * The push watcher's sweep strategy inside workerd (Cloudflare's cron), against a real Dovecot (started for this
 * project by test/services/workers-global-setup.ts): imapflow over workerd's sockets, the feed in the Durable
 * Object store, at most 6 simultaneous connections, and the Worker's `scheduled` entry.
 */
import { createExecutionContext, createScheduledController } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { EventEmitter } from 'node:events';
import { describe, expect, inject, it } from 'vitest';
import { imapClient } from '../../src/backends/imap/connection.ts';
import { loadConfig } from '../../src/config.ts';
import { deviceKey, encodeWaitMarker, HIERARCHY_KEY, parseDavMarker, parseImapMarker } from '../../src/push/feed.ts';
import { sealCredential } from '../../src/tenants/vault.ts';
import { signSlice, SWEEP_PATH } from '../../src/push/sweep-fanout.ts';
import { sweep, SweepMemo } from '../../src/push/sweep.ts';
import { cronSweep, planSweep } from '../../src/push/sweep-plan.ts';
import { leaseShard } from '../../src/state/shard.ts';
import { LEASE_SHARDS } from '../../src/state/types.ts';
import worker from '../../src/runtimes/cloudflare/worker.ts';
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
const SECRET = 'sweep-secret-0123456789abcdef0123456789';
/** CREDENTIAL_KEY: 32 zero bytes in base64. */
const VAULT_KEY = `${'A'.repeat(43)}=`;

/** A signature the way the route checked it until issue 17: a key derived from the tenant's settings. */
async function legacySignature(material: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(`activesync-edge sweep v1\n${material}`),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(body)));
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join('');
}
const server = { host: imap.host, port: imap.port, secure: false };

async function lease(state: StateStore, tenant: string, user: string, folders: string[]): Promise<void> {
  const until = Date.now() + 60_000;
  await state.putLease({ tenant, user, until });
  await state.putFeedEntry(
    { tenant, user },
    {
      folder: deviceKey('D1'),
      marker: encodeWaitMarker({ g: '1', until, folders }),
      changedAt: Date.now(),
      expiresAt: until,
    },
  );
}

async function append(user: string, folder: string): Promise<void> {
  const account = imap.users.find((u) => u.email === user)!;
  // As the Worker connects (worker.ts, imported above, set the sockets transport): STARTTLS, required.
  const client = imapClient(server, { user, password: account.password });
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
    expect(await sweep({ state, tenant, imap: server, push, memo })).toMatchObject({
      logins: 1,
      written: 0,
      errors: 0,
    });

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
    // Long enough for two passes however slow the machine (a pass logs in to every account): what is asserted is the
    // repeating and the connection limit, not the speed.
    const report = await sweep({ state, tenant, imap: server, push, until: Date.now() + 4_000, passIntervalMs: 300 });
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

  it("fans a shard bigger than one invocation's share out to more invocations, and sweeps every account", async () => {
    const state = durableObjectStateStore(env.STATE);
    const tenant = 'sweep-fan';
    for (const u of imap.users) await lease(state, tenant, u.email, ['imap:INBOX']);
    // One account per invocation: every leased shard its own invocation, and a shard with two accounts two.
    const testEnv = {
      ...env,
      ...settings,
      TENANT: tenant,
      SWEEP_ACCOUNTS_PER_INVOCATION: '1',
      SWEEP_SECRET: SECRET,
    };
    const counts = Array.from({ length: LEASE_SHARDS }, () => 0);
    for (const u of imap.users) counts[leaseShard(u.email)]!++;
    const slices = planSweep(counts, 1);
    expect(slices.some((s) => s.part !== undefined)).toBe(true);

    // The service binding to the Worker itself: each slice is a request to its internal route, a new invocation.
    const invocations: { status: number; report: { accounts: number; peakConnections: number; errors: number } }[] = [];
    const SWEEP_SELF = {
      async fetch(request: Request): Promise<Response> {
        const res = await worker.fetch!(
          request as Parameters<NonNullable<typeof worker.fetch>>[0],
          testEnv,
          createExecutionContext(),
        );
        invocations.push({ status: res.status, report: await res.clone().json() });
        return res;
      },
    };
    const controller = createScheduledController({ scheduledTime: Date.now() - 49_000, cron: '* * * * *' });
    await worker.scheduled(controller, { ...testEnv, SWEEP_SELF });

    expect(invocations).toHaveLength(slices.length - 1);
    for (const i of invocations) {
      expect(i.status).toBe(200);
      expect(i.report.errors).toBe(0);
      expect(i.report.accounts).toBeLessThanOrEqual(1);
      expect(i.report.peakConnections).toBeLessThanOrEqual(6);
    }
    // Every account, the two of the split shard included, has its INBOX in the feed.
    for (const u of imap.users) expect(await marker(state, tenant, u.email, 'imap:INBOX')).toMatch(/^imap1 /);
  });

  it('checks the signature before anything else, and refuses a bad one, an unknown tenant and a stale slice alike', async () => {
    const post = (body: string, signature?: string, more: Record<string, string> = { SWEEP_SECRET: SECRET }) =>
      worker.fetch!(
        new Request(`https://sweep.internal${SWEEP_PATH}`, {
          method: 'POST',
          body,
          headers: signature ? { 'X-Sweep-Signature': signature } : {},
        }) as Parameters<NonNullable<typeof worker.fetch>>[0],
        { ...env, ...settings, TENANT: 'sweep-fan', CREDENTIAL_KEY: VAULT_KEY, ...more },
        createExecutionContext(),
      );
    const answer = async (res: Response) => [res.status, await res.text()];
    const forbidden = [403, 'forbidden\n'];
    const sliceOf = (tenant: string, until = Date.now() + 5_000) =>
      JSON.stringify({ tenant, slice: { shards: [0] }, until });
    const known = sliceOf('sweep-fan');
    const unknown = sliceOf('no-such-tenant');
    // Unsigned or wrongly signed: the same 403 whether the tenant exists, or the body is not even JSON.
    for (const body of [known, unknown, '{"tenant":1}', 'not json']) {
      expect(await answer(await post(body))).toEqual(forbidden);
      expect(await answer(await post(body, 'ab'.repeat(32)))).toEqual(forbidden);
    }
    // Signed with what the key used to be derived from (the master password, the vault key): refused.
    const vault = `vault:${Array.from({ length: 32 }, () => 0).join(',')}`;
    for (const material of [`master:${settings.IMAP_MASTER_USER}:${settings.IMAP_MASTER_PASSWORD}`, vault])
      expect(await answer(await post(known, await legacySignature(material, known)))).toEqual(forbidden);
    // Signed: an unknown tenant and a stale slice get the very same answer as a bad signature.
    expect(await answer(await post(unknown, await signSlice(SECRET, unknown)))).toEqual(forbidden);
    const stale = sliceOf('sweep-fan', Date.now() - 1);
    expect(await answer(await post(stale, await signSlice(SECRET, stale)))).toEqual(forbidden);
    expect((await post('not json', await signSlice(SECRET, 'not json'))).status).toBe(400);
    // A body over 4 KiB is not even read to the end.
    const big = JSON.stringify({ tenant: 'sweep-fan', pad: 'x'.repeat(5000) });
    expect(await answer(await post(big, await signSlice(SECRET, big)))).toEqual(forbidden);
    // Without SWEEP_SECRET the route refuses everything, a slice signed with any key included.
    expect(await answer(await post(known, await signSlice('', known), {}))).toEqual(forbidden);
  });

  it('does not fan out without SWEEP_SECRET, and says so once', async () => {
    const state = durableObjectStateStore(env.STATE);
    const tenant = 'sweep-nosecret';
    for (const u of imap.users) await lease(state, tenant, u.email, ['imap:INBOX']);
    const dispatched: Request[] = [];
    const logs: Record<string, unknown>[] = [];
    const log = (e: Record<string, unknown>) => logs.push(e);
    for (let run = 0; run < 2; run++)
      await cronSweep({
        tenants: [loadConfig({ ...settings, TENANT: tenant })],
        state,
        log,
        scheduledTime: Date.now() - 55_000,
        self: {
          fetch: async (r) => {
            dispatched.push(r);
            return new Response('{}');
          },
        },
        accountsPerInvocation: '1',
      });
    expect(dispatched).toEqual([]);
    expect(logs.filter((e) => e.event === 'sweep-no-secret')).toHaveLength(1);
    for (const u of imap.users) expect(await marker(state, tenant, u.email, 'imap:INBOX')).toMatch(/^imap1 /);
  });

  it('checks a pinged calendar by its sync-token (Radicale), logging in with the sealed credential', async () => {
    const state = durableObjectStateStore(env.STATE);
    const tenant = 'sweep-dav';
    const account = imap.users.find((u) => u.email.startsWith('carol'))!;
    const vaultKey = crypto.getRandomValues(new Uint8Array(32));
    const withVault = { ...push, credentialKey: vaultKey };
    const dav = (method: string, url: string, body?: string, contentType = 'application/xml') =>
      fetch(url, {
        method,
        headers: {
          Authorization: `Basic ${btoa(`${account.email}:${account.password}`)}`,
          'Content-Type': contentType,
        },
        ...(body ? { body } : {}),
      });
    const calendar = new URL(`${encodeURIComponent(account.email)}/swept-${Date.now()}/`, imap.davUrl).href;
    // workerd's fetch knows no MKCALENDAR: an extended MKCOL (RFC 5689) makes the calendar.
    const mkcol =
      '<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>' +
      '<D:resourcetype><D:collection/><C:calendar/></D:resourcetype></D:prop></D:set></D:mkcol>';
    expect((await dav('MKCOL', calendar, mkcol)).status).toBe(201);
    const folder = `caldav:${calendar}`;
    const until = Date.now() + 60_000;
    const scope = { tenant, user: account.email };
    await state.putLease({ ...scope, until, credential: await sealCredential(vaultKey, scope, account.password) });
    await state.putFeedEntry(scope, {
      folder: deviceKey('D1'),
      marker: encodeWaitMarker({ g: '1', until, folders: [folder] }),
      changedAt: Date.now(),
      expiresAt: until,
    });
    const options = {
      state,
      tenant,
      imap: server,
      push: withVault,
      dav: { caldavUrl: imap.davUrl },
      memo: new SweepMemo(),
    };

    expect(await sweep(options)).toMatchObject({ errors: 0 });
    const before = await marker(state, tenant, account.email, folder);
    expect(parseDavMarker(before ?? '')).toMatch(/\S/);
    expect(await sweep(options)).toMatchObject({ written: 0, errors: 0 });
    const ics = [
      'BEGIN:VCALENDAR',
      'VERSION:2.0',
      'PRODID:-//test//EN',
      'BEGIN:VEVENT',
      'UID:swept-1',
      'DTSTAMP:20260101T000000Z',
      'DTSTART:20260401T090000Z',
      'DTEND:20260401T100000Z',
      'SUMMARY:Swept',
      'END:VEVENT',
      'END:VCALENDAR',
      '',
    ].join('\r\n');
    expect((await dav('PUT', `${calendar}swept-1.ics`, ics, 'text/calendar')).status).toBe(201);
    expect(await sweep(options)).toMatchObject({ written: 1, errors: 0 });
    expect(await marker(state, tenant, account.email, folder)).not.toBe(before);
  });
});
