/**
 * The web console (/admin/ui/, src/admin/console/) in a real browser: Debian's chromium driven by playwright-core,
 * against `npm start` (the Node runtime in its own process) over the test Dovecot, with a scripted device. One
 * server and one browser for the file. A screenshot of each page goes to test-output/console/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { childText, el } from '../../src/wbxml/tree.ts';
import { TestDevice } from '../device/device.ts';
import { startAdminNodeServer, type AdminNodeServer } from '../services/node-server.ts';
import { createUser } from '../services/seed.ts';
import { provisionCarriesRemoteWipe } from './session-steps.ts';

const services = inject('services');
const TOKEN = 'console-admin-token-0123456789abcdef';
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(import.meta.dirname, '../../test-output/console');

let admin: AdminNodeServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** The console as the browser reaches it: `localhost`, where Chromium keeps Secure cookies over plain HTTP. */
let ui: string;

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(token = TOKEN): Promise<void> {
  await page.goto(`${ui}/devices`);
  await page.fill('input[name=token]', token);
  await page.click('button:has-text("Sign in")');
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  admin = await startAdminNodeServer(services.imap, TOKEN);
  ui = `${admin.base.replace('127.0.0.1', 'localhost')}/admin/ui`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-dev-shm-usage',
      // localhost is the server's loopback address, not ::1 first.
      '--host-resolver-rules=MAP localhost 127.0.0.1',
    ],
  });
  context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  page = await context.newPage();
});

afterAll(async () => {
  await browser?.close();
  await admin?.stop();
});

describe('the web console', { timeout: 90_000 }, () => {
  it('wants the admin token on its sign-in page, and keeps the session in a strict cookie', async () => {
    // Not signed in: every page sends the browser to the sign-in page.
    await page.goto(`${ui}/devices`);
    expect(page.url()).toBe(`${ui}/sign-in`);
    await shot('sign-in');
    await signIn('not-the-token');
    expect(await page.locator('[role=alert]').textContent()).toMatch(/not the admin token/);
    expect(await context.cookies()).toEqual([]);

    await signIn();
    expect(page.url()).toBe(`${ui}/devices`);
    expect(page.url()).not.toContain(TOKEN);
    const [cookie, ...others] = await context.cookies();
    expect(others).toEqual([]);
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/admin/ui' });
    expect(cookie!.value).not.toContain(TOKEN);
    // A forged cookie is no session.
    await context.addCookies([{ ...cookie!, value: `${cookie!.value.slice(0, -4)}AAAA` }]);
    await page.goto(`${ui}/devices`);
    expect(page.url()).toBe(`${ui}/sign-in`);
    await context.addCookies([cookie!]);
  });

  it('finds a device, wipes it after a confirmation, and the device is wiped at its next request', async () => {
    const user = createUser(services);
    const device = new TestDevice(admin.server, user);
    await device.folderSync();
    const others = new TestDevice(admin.server, createUser(services));
    await others.folderSync();

    await page.goto(`${ui}/devices`);
    await page.fill('input[name=q]', user.email.slice(0, -3));
    await page.click('button:has-text("Search")');
    const rows = page.locator('table.devices tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain(device.deviceId);
    expect(await rows.first().textContent()).toContain('14.1');
    await shot('devices');

    await page.click(`a:has-text("${device.deviceId}")`);
    expect(await page.locator('h1').textContent()).toBe(`Device ${device.deviceId}`);
    expect(await page.locator('table.folders').textContent()).toContain('Inbox');
    await shot('device');

    await page.click('a.action-wipe');
    expect(await page.locator('p.confirm').textContent()).toContain('erases the whole device');
    await shot('confirm');
    // Confirming is a step of its own: nothing is asked of the device yet.
    expect((await admin.state.store.getDevice(device.scope))?.wipe).toBe('none');
    await page.click('button:has-text("Confirm")');
    expect(await page.locator('[role=status]').textContent()).toContain('Wipe the device');
    expect(await page.locator('table.facts').textContent()).toContain('requested (full)');

    // The device's next request is sent to Provision (Status 140), which carries the RemoteWipe directive.
    const folderSync = await device.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', device.hierarchyKey)]),
    );
    expect(childText(folderSync.body, 'Status')).toBe('140');
    expect(await provisionCarriesRemoteWipe(device)).toBe(true);
    expect((await admin.state.store.getDevice(others.scope))?.wipe).toBe('none');
  });

  it('refuses an action without the session CSRF token or from another origin', async () => {
    const device = new TestDevice(admin.server, createUser(services));
    await device.folderSync();
    const actions = `${ui}/devices/${encodeURIComponent(device.scope.user)}/${device.deviceId}/actions`;
    await page.goto(`${ui}/devices/${encodeURIComponent(device.scope.user)}/${device.deviceId}/confirm?action=block`);
    const csrf = await page.locator('input[name=csrf]').first().getAttribute('value');
    expect(csrf).toMatch(/^[\w-]{20,}$/);
    const origin = new URL(ui).origin;

    // The session cookie goes with these (the context's), so only the token or the origin is missing.
    const noToken = await page.request.post(actions, { form: { action: 'block' }, headers: { Origin: origin } });
    expect(noToken.status()).toBe(403);
    const wrongToken = await page.request.post(actions, {
      form: { action: 'block', csrf: `${csrf}x` },
      headers: { Origin: origin },
    });
    expect(wrongToken.status()).toBe(403);
    const otherSite = await page.request.post(actions, {
      form: { action: 'block', csrf: csrf! },
      headers: { Origin: 'https://evil.example' },
    });
    expect(otherSite.status()).toBe(403);
    expect((await admin.state.store.getDevice(device.scope))?.accessOverride).toBeUndefined();

    // The same form from the page goes through.
    await page.click('button:has-text("Confirm")');
    expect((await admin.state.store.getDevice(device.scope))?.accessOverride).toBe('block');
  });

  it('adds, refuses, reorders and removes access rules with the API’s checks', async () => {
    await page.goto(`${ui}/rules`);
    const add = async (fields: Record<string, string>): Promise<void> => {
      for (const [name, value] of Object.entries(fields)) {
        if (name === 'action') await page.selectOption('form.add-rule select[name=action]', value);
        else await page.fill(`form.add-rule input[name=${name}]`, value);
      }
      await page.click('button:has-text("Add rule")');
    };
    await add({ action: 'block', deviceType: 'Evil.*' });
    await add({ action: 'quarantine', model: 'Old<Phone>' });
    // What the API refuses, refused here with the same message.
    await add({ action: 'allow', userAgent: '(a+)+' });
    expect(await page.locator('[role=alert]').textContent()).toContain('repeats a repeated group');
    let stored = await admin.state.store.getAccessRules('test');
    expect(stored?.rules.map((r) => r.action)).toEqual(['block', 'quarantine']);
    await shot('rules');

    // The second rule goes first; the first is removed.
    await page.locator('table.rules tbody tr').nth(1).locator('button:has-text("Up")').click();
    stored = await admin.state.store.getAccessRules('test');
    expect(stored?.rules.map((r) => r.model ?? r.deviceType)).toEqual(['Old<Phone>', 'Evil.*']);
    expect(await page.locator('table.rules tbody tr').first().textContent()).toContain('Old<Phone>');
    await page.locator('table.rules tbody tr').nth(1).locator('button:has-text("Remove")').click();
    await page.selectOption('select[name=defaultAccess]', 'quarantine');
    await page.click('button:has-text("Save default")');
    stored = await admin.state.store.getAccessRules('test');
    expect(stored?.rules.map((r) => r.model)).toEqual(['Old<Phone>']);
    expect(stored?.defaultAccess).toBe('quarantine');
    await page.locator('table.rules tbody tr').first().locator('button:has-text("Remove")').click();
    await page.selectOption('select[name=defaultAccess]', 'allow');
    await page.click('button:has-text("Save default")');
    expect(await admin.state.store.getAccessRules('test')).toMatchObject({ defaultAccess: 'allow', rules: [] });
  });

  it('charts the requests per command, and signs out', async () => {
    await page.goto(`${ui}/activity`);
    // The devices above made Provision and FolderSync requests in the last hour.
    const hour = page.locator('section').nth(1);
    expect(await hour.locator('figure.chart > svg').count()).toBe(3);
    expect(await hour.locator('figure.chart > svg').first().locator('rect').count()).toBeGreaterThan(0);
    expect(await hour.locator('table.commands').textContent()).toContain('FolderSync');
    expect(await page.locator('p.now').textContent()).toContain('Pings held');
    await shot('activity');

    await page.click('button:has-text("Sign out")');
    expect(page.url()).toBe(`${ui}/sign-in`);
    expect(await context.cookies()).toEqual([]);
    await page.goto(`${ui}/activity`);
    expect(page.url()).toBe(`${ui}/sign-in`);
  });
});
