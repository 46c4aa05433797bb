/**
 * The console without a browser: what it writes into pages is escaped, a POST needs the session's CSRF token and a
 * same-origin request, and a session is only what this server signed with its current token. (test/e2e/console.test.ts
 * drives it in a real browser.)
 */
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { openSqliteStateStore } from '../../state/sqlite-node.ts';
import type { StateStore } from '../../state/types.ts';
import { deviceDetails, summarize } from '../operations.ts';
import { adminConsole } from './console.ts';
import { devicePage, devicesPage, rulesPage } from './pages.ts';
import { SESSION_COOKIE } from './session.ts';

const TOKEN = 'unit-console-token-0123456789';
const HOST = 'eas.example.test';
const BASE = `https://${HOST}/admin/ui`;
const HOSTILE = '<script>alert(1)</script>"\'&';

/** The console where the app mounts it (app/app.ts). */
function consoleOf(state: StateStore, token: string | null = TOKEN): Hono {
  return new Hono().route(
    '/admin/ui',
    adminConsole({
      config: { adminToken: token ?? undefined, tenant: 'test', capture: { maxBodyBytes: 0, retentionHours: 1 } },
      state,
      log: () => {},
    }),
  );
}

const sameOrigin = { Origin: `https://${HOST}`, Host: HOST };

/** Signs in; the session cookie (name=value) and the page's CSRF token. */
async function signIn(app: ReturnType<typeof consoleOf>): Promise<{ cookie: string; csrf: string }> {
  const res = await app.request(`${BASE}/sign-in`, {
    method: 'POST',
    headers: { ...sameOrigin, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: TOKEN }),
  });
  expect(res.status).toBe(303);
  const setCookie = res.headers.get('set-cookie') ?? '';
  expect(setCookie).toMatch(/HttpOnly/);
  expect(setCookie).toMatch(/Secure/);
  expect(setCookie).toMatch(/SameSite=Strict/);
  const cookie = setCookie.split(';')[0]!;
  const page = await (await app.request(`${BASE}/rules`, { headers: { Cookie: cookie, Host: HOST } })).text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1];
  expect(csrf).toBeDefined();
  return { cookie, csrf: csrf! };
}

async function hostileDevice(state: StateStore) {
  const scope = { tenant: 'test', user: `${HOSTILE}@example.test`.toLowerCase(), deviceId: `D${HOSTILE}` };
  const record = await state.updateDevice(scope, {
    deviceType: HOSTILE,
    model: HOSTILE,
    userAgent: HOSTILE,
    lastSeen: Date.now(),
  });
  return { scope, record };
}

describe('console pages', () => {
  it('escape what devices send and what admins type', async () => {
    const { store } = openSqliteStateStore(':memory:');
    const { scope, record } = await hostileDevice(store);
    const frame = { title: HOSTILE, tenant: 'test', csrf: HOSTILE };
    const summary = { ...summarize(scope.user, record), behind: 0 };
    const pages = [
      devicesPage(
        frame,
        { search: HOSTILE, sort: 'user', descending: false, offset: 0, limit: 50 },
        { total: 1, devices: [summary] },
      ),
      devicePage(frame, await deviceDetails(store, scope, record), { on: false, requests: [] }),
      rulesPage(
        frame,
        { defaultAccess: 'allow', rules: [{ id: HOSTILE, action: 'block', model: HOSTILE }], updatedAt: 0 },
        HOSTILE,
      ),
    ].map(String);
    for (const page of pages) {
      expect(page).not.toContain('<script>');
      expect(page).not.toContain(`"'&`);
      expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;');
    }
    // Links carry ids encoded, not as markup or path segments of their own.
    expect(pages[0]).toContain(
      `/admin/ui/devices/${encodeURIComponent(scope.user)}/${encodeURIComponent(scope.deviceId)}`.replaceAll(
        "'",
        '&#39;',
      ),
    );
  });
});

describe('console access', () => {
  it('does not exist without ADMIN_TOKEN, and sends the signed-out to the sign-in page', async () => {
    const { store } = openSqliteStateStore(':memory:');
    expect((await consoleOf(store, null).request(`${BASE}/sign-in`)).status).toBe(404);
    const res = await consoleOf(store).request(`${BASE}/devices`);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin/ui/sign-in');
    const wrong = await consoleOf(store).request(`${BASE}/sign-in`, {
      method: 'POST',
      headers: { ...sameOrigin, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: `${TOKEN}x` }),
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
  });

  it('acts only on a form with the session CSRF token, from its own origin', async () => {
    const { store } = openSqliteStateStore(':memory:');
    const app = consoleOf(store);
    const { scope } = await hostileDevice(store);
    const { cookie, csrf } = await signIn(app);
    const block = (headers: Record<string, string>, form: Record<string, string>) =>
      app.request(`${BASE}/devices/${encodeURIComponent(scope.user)}/${encodeURIComponent(scope.deviceId)}/actions`, {
        method: 'POST',
        headers: { Host: HOST, Cookie: cookie, 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams(form),
      });
    expect((await block(sameOrigin, { action: 'block' })).status).toBe(403);
    expect((await block(sameOrigin, { action: 'block', csrf: csrf.slice(1) })).status).toBe(403);
    expect((await block({ Origin: 'https://evil.example' }, { action: 'block', csrf })).status).toBe(403);
    expect((await block({ 'Sec-Fetch-Site': 'cross-site' }, { action: 'block', csrf })).status).toBe(403);
    // Neither Origin nor Sec-Fetch-Site: not a browser's same-origin form, refused.
    expect((await block({}, { action: 'block', csrf })).status).toBe(403);
    expect((await store.getDevice(scope))?.accessOverride).toBeUndefined();

    const done = await block(sameOrigin, { action: 'block', csrf });
    expect(done.status).toBe(303);
    expect((await store.getDevice(scope))?.accessOverride).toBe('block');
    // Another session's token is not this one's.
    const other = await signIn(app);
    expect(other.csrf).not.toBe(csrf);
    expect((await block(sameOrigin, { action: 'allow', csrf: other.csrf })).status).toBe(403);
  });

  it('takes only sessions this server signed with its current token', async () => {
    const { store } = openSqliteStateStore(':memory:');
    const { cookie } = await signIn(consoleOf(store));
    const get = (app: ReturnType<typeof consoleOf>, c: string) =>
      app.request(`${BASE}/devices`, { headers: { Cookie: c, Host: HOST } });
    expect((await get(consoleOf(store), cookie)).status).toBe(200);
    // The token changed: every session ends.
    expect((await get(consoleOf(store, `${TOKEN}-new`), cookie)).status).toBe(303);
    // A longer expiry written into the cookie breaks its signature.
    const value = decodeURIComponent(cookie.slice(SESSION_COOKIE.length + 1));
    const forged = `${SESSION_COOKIE}=${encodeURIComponent(value.replace(/^\d+/, '9999999999999'))}`;
    expect((await get(consoleOf(store), forged)).status).toBe(303);
  });
});
