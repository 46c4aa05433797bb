/**
 * Several tenants in one Worker (the `TENANTS` variable, src/tenants/settings.ts) inside workerd: the entry resolves
 * each request's tenant, and the cron sweeps every tenant's leases with that tenant's IMAP settings and master user.
 */
import { createExecutionContext, createScheduledController } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { EventEmitter } from 'node:events';
import { describe, expect, inject, it } from 'vitest';
import { deviceKey, encodeWaitMarker } from '../../src/push/feed.ts';
import worker from '../../src/runtimes/cloudflare/worker.ts';
import { durableObjectStateStore } from '../../src/state/durable-object.ts';
import type { WorkersImap } from '../services/workers-global-setup.ts';

EventEmitter.defaultMaxListeners = 50;

const imap: WorkersImap = inject('imap');
const shared = {
  IMAP_HOST: imap.host,
  IMAP_PORT: imap.port,
  IMAP_SECURE: false,
  IMAP_MASTER_USER: imap.master.user,
  IMAP_MASTER_PASSWORD: { env: 'MASTER_PW' },
};
const TENANTS = JSON.stringify({
  defaults: shared,
  tenants: [
    { name: 'wk-acme', hostnames: ['acme.sync.test'], mailDomains: ['acme.example'] },
    {
      name: 'wk-hooli',
      hostnames: ['hooli.sync.test'],
      settings: {
        AUTH_MODE: 'bearer',
        BEARER_JWKS_URL: 'https://idp.hooli.example/jwks.json',
        BEARER_ISSUER: 'https://idp.hooli.example/',
        BEARER_AUDIENCE: 'activesync-edge',
        BEARER_USER_CLAIM: 'preferred_username',
      },
    },
  ],
});
const configured = { ...env, TENANTS, MASTER_PW: imap.master.password };

const IncomingRequest = Request<unknown, IncomingRequestCfProperties>;

function send(url: string, init: RequestInit<IncomingRequestCfProperties> = {}): Promise<Response> {
  return worker.fetch(new IncomingRequest(url, init), configured, createExecutionContext());
}

const path = '/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=alice&DeviceId=D1&DeviceType=iPhone';

describe('Worker with TENANTS', () => {
  it('challenges with each tenant’s AUTH_MODE, and refuses a request no tenant can be found for', async () => {
    const acme = await send(`https://acme.sync.test${path}`, {
      method: 'POST',
      headers: { 'MS-ASProtocolVersion': '14.1' },
    });
    expect(acme.status).toBe(401);
    expect(acme.headers.get('WWW-Authenticate')).toBe('Basic realm="ActiveSync"');
    const hooli = await send(`https://hooli.sync.test${path}`, {
      method: 'POST',
      headers: { 'MS-ASProtocolVersion': '14.1' },
    });
    expect(hooli.status).toBe(401);
    expect(hooli.headers.get('WWW-Authenticate')).toBe('Bearer realm="ActiveSync"');
    // A shared host and a login whose domain no tenant owns: 401 before any backend is asked.
    const nobody = await send(`https://sync.example.test${path}`, {
      method: 'POST',
      headers: { 'MS-ASProtocolVersion': '14.1', Authorization: `Basic ${btoa('alice@initech.example:pw')}` },
    });
    expect(nobody.status).toBe(401);
  });

  it('sweeps every tenant’s leases with that tenant’s settings', async () => {
    const state = durableObjectStateStore(env.STATE);
    const until = Date.now() + 60_000;
    const user = 'carol@example.test';
    for (const tenant of ['wk-acme', 'wk-hooli']) {
      await state.putLease({ tenant, user, until });
      await state.putFeedEntry(
        { tenant, user },
        {
          folder: deviceKey('D1'),
          marker: encodeWaitMarker({ g: '1', until, folders: ['imap:INBOX'] }),
          changedAt: Date.now(),
          expiresAt: until,
        },
      );
    }
    // Scheduled 49 s ago: one pass is left in its minute.
    await worker.scheduled(
      createScheduledController({ scheduledTime: Date.now() - 49_000, cron: '* * * * *' }),
      configured,
    );
    for (const tenant of ['wk-acme', 'wk-hooli']) {
      const feed = await state.readFeed({ tenant, user });
      expect(feed.find((e) => e.folder === 'imap:INBOX')?.marker).toMatch(/^imap1 /);
    }
    // A tenant nobody leased in has nothing written.
    expect(await state.readFeed({ tenant: 'default', user })).toEqual([]);
  });
});
