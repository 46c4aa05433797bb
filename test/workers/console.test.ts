/**
 * The web console inside workerd, over the Durable Object store: sign-in (WebCrypto HMAC, signed cookie), the devices,
 * device, rules and activity pages, and a confirmed action with its CSRF token, as on Node (test/e2e/console.test.ts
 * drives it there in a browser).
 */
import { env } from 'cloudflare:workers';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { adminConsole } from '../../src/admin/console/console.ts';
import { durableObjectStateStore } from '../../src/state/durable-object.ts';

const TOKEN = 'workers-console-token-0123456789';
const HOST = 'eas.example.test';
const BASE = `https://${HOST}/admin/ui`;

describe('the web console (workerd, Durable Objects)', () => {
  it('signs in, lists and shows a device, wipes it after confirmation, and renders rules and activity', async () => {
    const state = durableObjectStateStore(env.STATE);
    const tenant = `console${crypto.randomUUID().slice(0, 8)}`;
    const app = new Hono().route(
      '/admin/ui',
      adminConsole({
        config: { adminToken: TOKEN, tenant, capture: { maxBodyBytes: 0, retentionHours: 1 } },
        state,
        log: () => {},
      }),
    );
    const scope = { tenant, user: 'alice@example.test', deviceId: 'WORKERDEV1' };
    await state.updateDevice(scope, { deviceType: 'iPhone', model: '<b>Model</b>', lastSeen: Date.now() });

    const form = { Origin: `https://${HOST}`, Host: HOST, 'Content-Type': 'application/x-www-form-urlencoded' };
    const signIn = await app.request(`${BASE}/sign-in`, {
      method: 'POST',
      headers: form,
      body: new URLSearchParams({ token: TOKEN }),
    });
    expect(signIn.status).toBe(303);
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0]!;
    const get = async (path: string) => {
      const res = await app.request(`${BASE}${path}`, { headers: { Cookie: cookie, Host: HOST } });
      expect(res.status).toBe(200);
      return res.text();
    };

    const devices = await get('/devices?q=alice');
    expect(devices).toContain('WORKERDEV1');
    expect(devices).toContain('&lt;b&gt;Model&lt;/b&gt;');
    const confirm = await get('/devices/alice%40example.test/WORKERDEV1/confirm?action=wipe');
    const csrf = /name="csrf" value="([^"]+)"/.exec(confirm)?.[1];
    expect(csrf).toBeDefined();
    const wipe = await app.request(`${BASE}/devices/alice%40example.test/WORKERDEV1/actions`, {
      method: 'POST',
      headers: { ...form, Cookie: cookie },
      body: new URLSearchParams({ action: 'wipe', csrf: csrf! }),
    });
    expect(wipe.status).toBe(303);
    expect((await state.getDevice(scope))?.wipe).toBe('requested');
    expect(await get('/devices/alice%40example.test/WORKERDEV1')).toContain('requested (full)');
    expect(await get('/rules')).toContain('Add a rule');
    expect(await get('/activity')).toContain('Requests per command');
  });
});
