/**
 * Device management end to end, through the app, the scripted device and the real Dovecot: access rules (blocked
 * and quarantined devices, release by an admin), loop detection (a broken item isolated, skipped and reported), and
 * the admin HTTP API (`/admin`, bearer ADMIN_TOKEN).
 */
import { describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { children, childText, el } from '../../src/wbxml/tree.ts';
import {
  itemText,
  readyDevice,
  subjects,
  TestDevice,
  testServer,
  type SyncRound,
  type TestServer,
} from '../device/device.ts';
import { createUser, seedMailbox, type SeedMessage } from '../services/seed.ts';
import { provisionCarriesRemoteWipe } from './session-steps.ts';

const services = inject('services');
const TOKEN = 'test-admin-token-0123456789abcdef';
const FOLDER_SYNC_0 = el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]);

function adminServer(): TestServer {
  return testServer(services, { ADMIN_TOKEN: TOKEN });
}

interface AdminAnswer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: the API's JSON, loosely typed for the assertions that read it
  json: Record<string, any>;
}

/** One admin call; `token` null sends no Authorization header. */
async function admin(
  server: TestServer,
  method: string,
  path: string,
  body?: unknown,
  token: string | null = TOKEN,
): Promise<AdminAnswer> {
  const res = await server.fetch(`https://eas.example.test/admin${path}`, {
    method,
    headers: { ...(token !== null ? { Authorization: `Bearer ${token}` } : {}), 'Content-Type': 'application/json' },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text.startsWith('{') ? (JSON.parse(text) as AdminAnswer['json']) : {} };
}

const devicePath = (device: TestDevice): string =>
  `/devices/${encodeURIComponent(device.user.email)}/${device.deviceId}`;

function messages(subjectList: string[]): SeedMessage[] {
  return subjectList.map((subject, i) => ({
    message: {
      from: 'Bob <bob@example.test>',
      to: 'Alice <alice@example.test>',
      subject,
      text: `Body of ${subject}\n`,
    },
    internalDate: new Date(Date.now() - (subjectList.length - i) * 60_000),
  }));
}

/** The Subjects of the Adds in one Sync answer. */
function addedSubjects(round: SyncRound): string[] {
  return children(child2(round), 'Add').map(
    (a) =>
      itemText(
        a.children.find((c) => c.tag === 'ApplicationData'),
        'Subject',
        'Email',
      ) ?? '',
  );
}
function child2(round: SyncRound) {
  return round.collection?.children.find((c) => c.tag === 'Commands');
}

describe('the admin API', () => {
  it('does not exist without ADMIN_TOKEN, and wants the token as a bearer', async () => {
    const off = testServer(services);
    expect((await admin(off, 'GET', '/devices')).status).toBe(404);

    const server = adminServer();
    expect((await admin(server, 'GET', '/devices', undefined, null)).status).toBe(401);
    const wrong = await admin(server, 'GET', '/devices', undefined, `${TOKEN}x`);
    expect(wrong.status).toBe(401);
    expect(wrong.json.error).toMatch(/token/);
    // Device credentials are not admin credentials.
    const user = createUser(services);
    const basic = await server.fetch('https://eas.example.test/admin/devices', {
      headers: { Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}` },
    });
    expect(basic.status).toBe(401);
    expect((await admin(server, 'GET', '/devices')).json).toEqual({ devices: [] });
  });

  it('answers bad input with 400 and unknown devices with 404, never 500', async () => {
    const server = adminServer();
    const user = createUser(services);
    const { device } = await readyDevice(server, user);
    expect((await admin(server, 'POST', `${devicePath(device)}/wipe`, '{not json')).status).toBe(400);
    expect((await admin(server, 'POST', `${devicePath(device)}/wipe`, { kind: 'everything' })).status).toBe(400);
    expect((await admin(server, 'POST', `${devicePath(device)}/access`, { access: 'maybe' })).status).toBe(400);
    expect((await admin(server, 'PUT', '/rules', { rules: [{ action: 'block', model: '([' }] })).status).toBe(400);
    expect((await admin(server, 'GET', '/stats?minutes=abc')).status).toBe(400);
    expect((await admin(server, 'POST', '/devices/remove-idle', { days: 'soon' })).status).toBe(400);
    expect((await admin(server, 'GET', `/devices/${user.email}/NOSUCHDEVICE`)).status).toBe(404);
    expect((await admin(server, 'DELETE', `/devices/${user.email}/NOSUCHDEVICE`)).status).toBe(404);
    expect((await admin(server, 'GET', '/nothing-here')).status).toBe(404);
    // An account-only wipe needs 16.1; this device speaks 14.1.
    const refused = await admin(server, 'POST', `${devicePath(device)}/wipe`, { kind: 'account' });
    expect(refused.status).toBe(409);
    expect(refused.json.error).toMatch(/16\.1/);
  });

  it('lists devices (tenant-wide and per user) and shows one with its folders, sync state and what it said about itself', async () => {
    const server = adminServer();
    const alice = createUser(services);
    const bob = createUser(services);
    await seedMailbox(services, alice, 'INBOX', messages(['One', 'Two', 'Three']));
    const { device, inbox } = await readyDevice(server, alice);
    await device.syncUntilDone(inbox);
    await readyDevice(server, bob);

    const all = await admin(server, 'GET', '/devices');
    expect(all.status).toBe(200);
    expect(all.json.devices.map((d: { user: string }) => d.user).sort()).toEqual(
      [alice.email.toLowerCase(), bob.email.toLowerCase()].sort(),
    );
    const mine = await admin(server, 'GET', `/devices?user=${encodeURIComponent(alice.email)}`);
    expect(mine.json.devices).toHaveLength(1);
    expect(mine.json.devices[0]).toMatchObject({
      deviceId: device.deviceId,
      deviceType: 'iPhone',
      model: 'iPhone Test',
      os: 'TestOS 1.0',
      userAgent: 'TestDevice/1.0',
      protocolVersion: '14.1',
      provisioning: 'provisioned',
      wipe: 'none',
      access: 'allowed',
      idleDays: 0,
    });

    const shown = await admin(server, 'GET', devicePath(device));
    expect(shown.status).toBe(200);
    expect(Date.parse(shown.json.device.firstSeen)).toBeLessThanOrEqual(Date.parse(shown.json.device.lastSeen));
    const inboxRow = shown.json.folders.find((f: { collectionId: string }) => f.collectionId === inbox);
    expect(inboxRow).toMatchObject({
      name: 'Inbox',
      type: FolderType.Inbox,
      class: 'Email',
      synced: true,
      items: 3,
      pending: 0,
      brokenItems: 0,
    });
    expect(inboxRow.syncKey).toBe(device.collections.get(inbox)!.syncKey);
    expect(shown.json.folders.some((f: { synced: boolean }) => !f.synced)).toBe(true);
    expect(shown.json.brokenItems).toEqual([]);
  });

  it('wipes and cancels a wipe', async () => {
    const server = adminServer();
    const { device } = await readyDevice(server, createUser(services));
    const wiped = await admin(server, 'POST', `${devicePath(device)}/wipe`, { kind: 'full' });
    expect(wiped.status).toBe(200);
    expect(wiped.json.device.wipe).toBe('requested');
    const refused = await device.send('FolderSync', FOLDER_SYNC_0);
    expect(childText(refused.body, 'Status')).toBe('140');

    expect((await admin(server, 'DELETE', `${devicePath(device)}/wipe`)).json.device.wipe).toBe('none');
    expect(childText((await device.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('1');
  });

  it('makes a device resync one folder, or everything', async () => {
    const server = adminServer();
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', messages(['Resync me']));
    const { device, inbox } = await readyDevice(server, user);
    await device.syncUntilDone(inbox);

    expect((await admin(server, 'POST', `${devicePath(device)}/resync`, { folder: 'nope' })).status).toBe(404);
    expect((await admin(server, 'POST', `${devicePath(device)}/resync`, { folder: inbox })).json).toEqual({
      resynced: [inbox],
    });
    expect((await device.sync(inbox)).status).toBe(3);

    device.collections.delete(inbox);
    await device.syncUntilDone(inbox);
    expect(subjects(device, inbox)).toEqual(['Resync me']);
    const all = await admin(server, 'POST', `${devicePath(device)}/resync`, {});
    expect(all.json).toEqual({ resynced: [inbox], hierarchy: true });
    const folderSync = await device.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', device.hierarchyKey)]),
    );
    expect(childText(folderSync.body, 'Status')).toBe('9');
    expect((await device.sync(inbox)).status).toBe(3);
  });

  it('removes a device with its state and push lease, and removes idle devices', async () => {
    const server = adminServer();
    const user = createUser(services);
    const { device } = await readyDevice(server, user);
    const scope = device.scope;
    await server.state.putLease({ tenant: scope.tenant, user: scope.user, until: Date.now() + 600_000 });

    const removed = await admin(server, 'DELETE', devicePath(device));
    expect(removed.status).toBe(200);
    expect(removed.json.removed.deviceId).toBe(device.deviceId);
    expect(await server.state.getDevice(scope)).toBeUndefined();
    expect(await server.state.getHierarchy(scope)).toBeUndefined();
    expect(await server.state.getLease(scope)).toBeUndefined();
    expect((await admin(server, 'GET', '/devices')).json.devices).toEqual([]);

    const { device: idle } = await readyDevice(server, user);
    const { device: active } = await readyDevice(server, createUser(services));
    await server.state.updateDevice(idle.scope, { deviceType: 'iPhone', lastSeen: Date.now() - 40 * 86_400_000 });
    const dry = await admin(server, 'POST', '/devices/remove-idle', { days: 30, dryRun: true });
    expect(dry.json.removed.map((d: { deviceId: string }) => d.deviceId)).toEqual([idle.deviceId]);
    expect(dry.json.removed[0].idleDays).toBe(40);
    expect(await server.state.getDevice(idle.scope)).toBeDefined();
    const done = await admin(server, 'POST', '/devices/remove-idle', { days: 30 });
    expect(done.json.removed.map((d: { deviceId: string }) => d.deviceId)).toEqual([idle.deviceId]);
    expect((await admin(server, 'GET', '/devices')).json.devices.map((d: { deviceId: string }) => d.deviceId)).toEqual([
      active.deviceId,
    ]);
  });

  it('counts requests, errors and latency per command', async () => {
    const server = adminServer();
    const user = createUser(services);
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);
    await device.sync(inbox);
    const stats = await admin(server, 'GET', '/stats?minutes=5');
    expect(stats.status).toBe(200);
    const byCommand = Object.fromEntries(stats.json.commands.map((c: { command: string }) => [c.command, c]));
    expect(byCommand.Provision).toMatchObject({ requests: 2, errors: 0 });
    expect(byCommand.FolderSync).toMatchObject({ requests: 1, errors: 0 });
    expect(byCommand.Sync).toMatchObject({ requests: 2, errors: 0 });
    expect(byCommand.Sync.maxMs).toBeGreaterThanOrEqual(byCommand.Sync.avgMs);
  });
});

describe('device access rules', () => {
  it('blocks a device a rule names: Status 129 from 14.0, HTTP 403 below; an admin can allow it', async () => {
    const server = adminServer();
    const user = createUser(services);
    const put = await admin(server, 'PUT', '/rules', {
      defaultAccess: 'allow',
      rules: [{ id: 'no-android', action: 'block', deviceType: 'Android' }],
    });
    expect(put.status).toBe(200);
    expect((await admin(server, 'GET', '/rules')).json.rules).toEqual([
      { id: 'no-android', action: 'block', deviceType: 'Android' },
    ]);

    const android = new TestDevice(server, user, undefined, '14.1', 'Android');
    android.autoProvision = false;
    const provision = await android.provision();
    expect(childText(provision.initial.body, 'Status')).toBe('129');
    expect(childText((await android.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('129');

    const old = new TestDevice(server, user, undefined, '12.1', 'Android');
    old.autoProvision = false;
    expect((await old.send('FolderSync', FOLDER_SYNC_0)).status).toBe(403);

    // Other devices of the user are not concerned.
    const { device: iphone } = await readyDevice(server, user);
    expect(iphone.folders.size).toBeGreaterThan(0);

    const listed = await admin(server, 'GET', `/devices/${encodeURIComponent(user.email)}/${android.deviceId}`);
    expect(listed.json.device).toMatchObject({ access: 'blocked', accessReason: 'rule no-android' });
    expect(
      (
        await admin(server, 'POST', `/devices/${encodeURIComponent(user.email)}/${android.deviceId}/access`, {
          access: 'allow',
        })
      ).json.device.access,
    ).toBe('blocked');
    android.autoProvision = true;
    expect(childText((await android.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('1');
    expect(
      (await admin(server, 'GET', `/devices?user=${encodeURIComponent(user.email)}`)).json.devices.find(
        (d: { deviceId: string }) => d.deviceId === android.deviceId,
      ),
    ).toMatchObject({ access: 'allowed', accessReason: 'admin' });
  });

  it('quarantines by model: the device provisions and describes itself, syncs nothing until an admin releases it', async () => {
    const server = adminServer();
    const user = createUser(services);
    await admin(server, 'POST', '/rules', { id: 'test-phones', action: 'quarantine', model: 'iPhone Te.*' });
    const device = new TestDevice(server, user);
    const provision = await device.provision();
    expect(childText(provision.ack?.body, 'Status')).toBe('1');
    expect(device.policyKey).toBeDefined();

    const refused = await device.send('FolderSync', FOLDER_SYNC_0);
    expect(childText(refused.body, 'Status')).toBe('129');
    const settings = await device.send(
      'Settings',
      el('Settings', 'Settings', [el('Settings', 'UserInformation', [el('Settings', 'Get')])]),
    );
    expect(childText(settings.body, 'Status')).toBe('1');
    const shown = await admin(server, 'GET', devicePath(device));
    expect(shown.json.device).toMatchObject({
      access: 'quarantined',
      accessReason: 'rule test-phones',
      model: 'iPhone Test',
    });

    const released = await admin(server, 'POST', `${devicePath(device)}/access`, { access: 'allow' });
    expect(released.status).toBe(200);
    expect(childText((await device.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('1');

    // Back to the rules: quarantined again; and the rule removed: allowed.
    await admin(server, 'POST', `${devicePath(device)}/access`, { access: 'none' });
    expect(childText((await device.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('129');
    const afterDelete = await admin(server, 'DELETE', '/rules/test-phones');
    expect(afterDelete.json.rules).toEqual([]);
    expect((await admin(server, 'DELETE', '/rules/test-phones')).status).toBe(404);
    expect(childText((await device.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('1');
  });

  it('applies the default to devices no rule matches, and still delivers a wipe to a blocked device', async () => {
    const server = adminServer();
    const user = createUser(services);
    const { device } = await readyDevice(server, user);
    await admin(server, 'PUT', '/rules', { defaultAccess: 'block', rules: [{ action: 'allow', deviceType: 'iPad' }] });
    expect(childText((await device.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('129');
    await admin(server, 'POST', `${devicePath(device)}/wipe`, {});
    // The wipe goes through: Status 140 sends the device to Provision, which carries RemoteWipe.
    expect(childText((await device.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('140');
    expect(await provisionCarriesRemoteWipe(device)).toBe(true);
  });
});

describe('loop detection', () => {
  it('shrinks the window when a device keeps asking for the same changes, then skips and reports the broken item', async () => {
    const server = adminServer();
    const user = createUser(services);
    const all = ['Alpha', 'Bravo', 'Charlie', 'Poison pill', 'Delta', 'Echo'];
    await seedMailbox(services, user, 'INBOX', messages(all));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);

    // A client that chokes on one message: it never takes an answer that carries it, and asks again.
    const chokes = (round: SyncRound): boolean => addedSubjects(round).includes('Poison pill');
    const rounds: { subjects: string[]; rejected: boolean; more: boolean }[] = [];
    for (let i = 0; i < 30; i++) {
      const round = await device.sync(inbox, { windowSize: 4, reject: chokes });
      expect(round.status).toBe(1);
      rounds.push({ subjects: addedSubjects(round), rejected: chokes(round), more: round.moreAvailable });
      if (!round.moreAvailable && !chokes(round)) break;
    }
    // The first answer (4 newest) carried the poison; asked again twice, the window shrank to one item.
    expect(rounds[0]).toMatchObject({ subjects: ['Echo', 'Delta', 'Poison pill', 'Charlie'], rejected: true });
    expect(rounds[1]!.rejected).toBe(true);
    expect(rounds[2]).toMatchObject({ subjects: ['Echo'], rejected: false, more: true });
    // One item per Sync until the poison came alone; asked for again twice more, it was skipped (an answer without
    // it), and the window was the device's again.
    const alone = rounds.findIndex((r) => r.rejected && r.subjects.length === 1);
    expect(rounds.slice(2, alone + 3).map((r) => r.subjects)).toEqual([
      ['Echo'],
      ['Delta'],
      ['Poison pill'],
      ['Poison pill'],
      [],
    ]);
    expect(rounds.slice(alone + 3).map((r) => r.subjects)).toEqual([['Charlie', 'Bravo', 'Alpha']]);
    expect(subjects(device, inbox)).toEqual(all.filter((s) => s !== 'Poison pill').sort());

    const shown = await admin(server, 'GET', devicePath(device));
    expect(shown.json.brokenItems).toHaveLength(1);
    expect(shown.json.brokenItems[0]).toMatchObject({ collectionId: inbox, subject: 'Poison pill' });
    expect(shown.json.brokenItems[0].reason).toMatch(/asked again/);
    expect(shown.json.folders.find((f: { collectionId: string }) => f.collectionId === inbox)).toMatchObject({
      items: 5,
      pending: 0,
      brokenItems: 1,
    });

    // The loop is over: new mail comes in the device's own window again.
    await seedMailbox(services, user, 'INBOX', messages(['New 1', 'New 2', 'New 3']));
    const after = await device.sync(inbox, { windowSize: 4 });
    expect(after.added).toHaveLength(3);
  });

  it('skips a message the server cannot convert and reports it, instead of failing every Sync of the folder', async () => {
    const server = adminServer();
    const user = createUser(services);
    // 300 nested multiparts: more than the MIME parser takes.
    let part = 'Content-Type: text/plain\r\n\r\ninnermost\r\n';
    for (let i = 300; i >= 1; i--)
      part = `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n${part}\r\n--b${i}--\r\n`;
    const deep = `From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\nSubject: Too deep\r\nMIME-Version: 1.0\r\n${part}`;
    await seedMailbox(services, user, 'INBOX', [...messages(['Fine']), { message: deep }]);
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);
    const round = await device.sync(inbox);
    expect(round.status).toBe(1);
    expect(addedSubjects(round)).toEqual(['Fine']);
    expect((await device.sync(inbox)).added).toEqual([]);

    const shown = await admin(server, 'GET', devicePath(device));
    expect(shown.json.brokenItems).toHaveLength(1);
    expect(shown.json.brokenItems[0].subject).toBe('Too deep');
    expect(shown.json.brokenItems[0].reason).toMatch(/could not convert it: .*nesting/i);
  });
});
