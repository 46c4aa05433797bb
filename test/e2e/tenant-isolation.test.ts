/**
 * Tenant and user isolation (issue 10 item 5), through the real app with a tenants document, Dovecot and Radicale:
 * - acme and initech serve the same mail account with the same user name and DeviceId (the worst case: only the
 *   tenant tells the two devices apart); every admin operation on one tenant leaves the other's state as it was;
 * - within acme, a device of one user that crafts ServerIds, CollectionIds, FileReferences and LongIds (another
 *   user's ids, `../`, the other tenant's ids) gets protocol refusals and never another user's data.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app/build.ts';
import { pooledImapSessions } from '../../src/backends/imap/sessions.ts';
import { FolderType } from '../../src/backends/types.ts';
import type { LogEntry } from '../../src/log.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import type { DeviceScope, StateStore } from '../../src/state/types.ts';
import { TenantDirectory } from '../../src/tenants/resolve.ts';
import { parseTenants } from '../../src/tenants/settings.ts';
import { child, childText, el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../device/device.ts';
import { createUser, listMessages, seedCalendar, seedMailbox } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { itemWithSubject, mailboxSearchRequest } from './session-steps.ts';

const services = inject('services');
const TOKEN = 'isolation-admin-token-0123456789';
const DEVICE_ID = 'SAMEDEVICEISO01';
const SECRET = 'Victim secret';

let server: TestServer;
let state: StateStore;
let owner: TestUser;
let victim: TestUser;

beforeAll(() => {
  owner = createUser(services);
  victim = createUser(services);
  const imap = {
    IMAP_HOST: services.imap.host,
    IMAP_PORT: services.imap.port,
    IMAP_SECURE: false,
    CALDAV_URL: services.caldavUrl,
    CARDDAV_URL: services.carddavUrl,
  };
  const directory = parseTenants(
    JSON.stringify({
      tenants: [
        { name: 'acme', hostnames: ['acme.sync.test'], mailDomains: [services.domain], settings: imap },
        { name: 'initech', hostnames: ['initech.sync.test'], settings: imap },
      ],
    }),
    {},
  );
  state = openSqliteStateStore(':memory:').store;
  const logs: LogEntry[] = [];
  // ADMIN_TOKEN is the process's (the operator's), as in `npm start` with TENANTS_FILE.
  const withToken = new TenantDirectory(
    directory.entries.map((e, i) => (i === 0 ? { ...e, config: { ...e.config, adminToken: TOKEN } } : e)),
  );
  const { app } = buildApp({
    settings: withToken,
    imapSessions: (imap) => pooledImapSessions(imap),
    state,
    log: (e) => logs.push(e),
  });
  server = { fetch: async (url, init) => app.request(url, init), state, logs };
});

function deviceOn(tenant: 'acme' | 'initech', user: TestUser, deviceId = DEVICE_ID): TestDevice {
  const device = new TestDevice(server, user, deviceId);
  device.origin = `https://${tenant}.sync.test`;
  return device;
}

function admin(method: string, path: string, body?: unknown): Promise<Response> {
  return server.fetch(`https://admin.sync.test/admin${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

/** Everything the store holds for one device: record, hierarchy, collections. */
async function snapshot(scope: DeviceScope): Promise<unknown> {
  const ids = await state.listCollections(scope);
  return {
    device: await state.getDevice(scope),
    hierarchy: await state.getHierarchy(scope),
    collections: await Promise.all(ids.map(async (id) => [id, await state.getCollection(scope, id)])),
  };
}

describe('admin operations stay in their tenant', () => {
  it('lists, inspects, wipes, resyncs, blocks, removes and sets rules for one tenant only', async () => {
    await seedMailbox(services, owner, 'INBOX', [{ message: { to: owner.email, subject: 'Shared mailbox' } }]);
    const acme = deviceOn('acme', owner);
    const initech = deviceOn('initech', owner);
    for (const device of [acme, initech]) {
      await device.folderSync();
      await device.syncUntilDone(device.folderByType(FolderType.Inbox).serverId);
    }
    const user = owner.email.toLowerCase();
    const initechScope = { tenant: 'initech', user, deviceId: DEVICE_ID };
    const initechBefore = await snapshot(initechScope);
    const initechRules = await (await admin('GET', '/rules?tenant=initech')).json();

    const listed = (await (await admin('GET', '/devices?tenant=acme')).json()) as {
      devices: { user: string; deviceId: string }[];
    };
    expect(listed.devices.map((d) => `${d.user}/${d.deviceId}`)).toEqual([`${user}/${DEVICE_ID}`]);
    const path = `/devices/${encodeURIComponent(user)}/${DEVICE_ID}`;
    for (const [method, suffix, body] of [
      ['GET', '', undefined],
      ['POST', '/resync', {}],
      ['POST', '/access', { access: 'block' }],
      ['POST', '/wipe', { kind: 'full' }],
      ['DELETE', '/wipe', undefined],
      ['PUT', '/../../rules', undefined],
    ] as const) {
      const res = await admin(method, `${path}${suffix}?tenant=acme`, body);
      expect(res.status, `${method} ${suffix}`).toBeLessThan(500);
    }
    expect((await admin('PUT', '/rules?tenant=acme', { defaultAccess: 'block', rules: [] })).status).toBe(200);
    expect((await admin('POST', '/devices/remove-idle?tenant=acme', { days: 0 })).status).toBe(200);
    expect((await admin('DELETE', `${path}?tenant=acme`)).status).toBeLessThan(500);
    // A tenant no directory entry names is an empty tenant, not a way into another.
    expect(((await (await admin('GET', '/devices?tenant=nobody')).json()) as { devices: unknown[] }).devices).toEqual(
      [],
    );
    expect((await admin('POST', `${path}/wipe?tenant=nobody`, {})).status).toBe(404);

    expect(await state.getDevice({ tenant: 'acme', user, deviceId: DEVICE_ID })).toBeUndefined();
    expect(await snapshot(initechScope)).toEqual(initechBefore);
    expect(await (await admin('GET', '/rules?tenant=initech')).json()).toEqual(initechRules);
    // The initech device goes on syncing with the keys it had; the acme rules (block everyone) are not its.
    const round = await initech.sync(initech.folderByType(FolderType.Inbox).serverId);
    expect(round.status).toBe(1);
    const initechStats = (await (await admin('GET', '/stats?tenant=initech')).json()) as {
      commands: { command: string; requests: number }[];
    };
    const acmeStats = (await (await admin('GET', '/stats?tenant=acme')).json()) as {
      commands: { command: string; requests: number }[];
    };
    const requests = (s: typeof acmeStats) => s.commands.reduce((n, c) => n + c.requests, 0);
    expect(requests(initechStats)).toBeGreaterThan(0);
    expect(requests(acmeStats)).toBeGreaterThan(0);
    // The acme rules went to block everyone: back to allow for the next test.
    expect((await admin('PUT', '/rules?tenant=acme', { defaultAccess: 'allow', rules: [] })).status).toBe(200);
  }, 60_000);
});

describe('crafted ids never reach another user', () => {
  it('ServerIds, CollectionIds, FileReferences and LongIds of another user, with ../, or of another tenant get refusals, not data', async () => {
    const attacker = createUser(services);
    await seedMailbox(services, victim, 'INBOX', [
      {
        message: {
          from: 'Boss <boss@example.test>',
          to: victim.email,
          subject: SECRET,
          text: `${SECRET} body\n`,
          attachments: [
            { filename: 'secret.txt', contentType: 'text/plain', content: Buffer.from(`${SECRET} attachment`) },
          ],
        },
      },
    ]);
    await seedCalendar(
      services,
      victim,
      'calendar',
      [
        'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:victim-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260320T130000Z\r\nDTEND:20260320T140000Z\r\nSUMMARY:Victim secret meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n',
      ],
      { displayName: 'Calendar' },
    );
    await seedCalendar(services, attacker, 'calendar', [], { displayName: 'Calendar' });
    const victimDevice = deviceOn('acme', victim, 'VICTIMDEVICE01');
    await victimDevice.folderSync();
    const victimInbox = victimDevice.folderByType(FolderType.Inbox).serverId;
    await victimDevice.syncUntilDone(victimInbox);
    const victimCalendar = victimDevice.folderByName('Calendar').serverId;
    await victimDevice.syncUntilDone(victimCalendar);
    const [victimItem, victimData] = itemWithSubject(victimDevice, victimInbox, SECRET);
    const victimReference = childText(
      child(child(victimData, 'Attachments', 'AirSyncBase'), 'Attachment', 'AirSyncBase'),
      'FileReference',
      'AirSyncBase',
    )!;
    const victimEvent = [...victimDevice.items(victimCalendar).keys()][0]!;

    // The attacker uses the victim's DeviceId too: state is per user, so it is a different device.
    const device = deviceOn('acme', attacker, 'VICTIMDEVICE01');
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    const calendar = device.folderByName('Calendar').serverId;
    await device.syncUntilDone(calendar);
    const otherTenant = deviceOn('initech', victim, 'VICTIMDEVICE01');
    await otherTenant.folderSync();

    const responses: Uint8Array[] = [];
    const send = async (cmd: string, body: WbxmlElement, query = ''): Promise<number> => {
      const res = await device.send(cmd, body, { query });
      responses.push(res.bytes);
      return res.status;
    };
    const ids = [
      victimItem,
      victimReference,
      victimEvent,
      `${victimInbox}:1`,
      `../${victimInbox}:1`,
      `${inbox}/../../${victim.name}/INBOX:1`,
      `${calendar}:../../${encodeURIComponent(victim.email)}/calendar/victim-1.ics`,
      `%2e%2e%2f${victimItem}`,
    ];
    for (const id of ids) {
      await send(
        'ItemOperations',
        el('ItemOperations', 'ItemOperations', [
          el('ItemOperations', 'Fetch', [
            el('ItemOperations', 'Store', 'Mailbox'),
            el('AirSync', 'CollectionId', inbox),
            el('AirSync', 'ServerId', id),
          ]),
        ]),
      );
      await send(
        'ItemOperations',
        el('ItemOperations', 'ItemOperations', [
          el('ItemOperations', 'Fetch', [
            el('ItemOperations', 'Store', 'Mailbox'),
            el('AirSync', 'CollectionId', calendar),
            el('AirSync', 'ServerId', id),
          ]),
        ]),
      );
      await send(
        'ItemOperations',
        el('ItemOperations', 'ItemOperations', [
          el('ItemOperations', 'Fetch', [
            el('ItemOperations', 'Store', 'Mailbox'),
            el('AirSyncBase', 'FileReference', id),
          ]),
        ]),
      );
      await send(
        'ItemOperations',
        el('ItemOperations', 'ItemOperations', [
          el('ItemOperations', 'Fetch', [el('ItemOperations', 'Store', 'Mailbox'), el('Search', 'LongId', id)]),
        ]),
      );
      await send(
        'MoveItems',
        el('Move', 'MoveItems', [
          el('Move', 'Move', [
            el('Move', 'SrcMsgId', id),
            el('Move', 'SrcFldId', inbox),
            el('Move', 'DstFldId', inbox),
          ]),
        ]),
      );
      await send(
        'Sync',
        el('AirSync', 'Sync', [
          el('AirSync', 'Collections', [
            el('AirSync', 'Collection', [
              el('AirSync', 'SyncKey', device.collections.get(inbox)!.syncKey),
              el('AirSync', 'CollectionId', inbox),
              el('AirSync', 'Commands', [el('AirSync', 'Fetch', [el('AirSync', 'ServerId', id)])]),
            ]),
          ]),
        ]),
      );
      await send(
        'SmartForward',
        el('ComposeMail', 'SmartForward', [
          el('ComposeMail', 'ClientId', `fw-${responses.length}`),
          el('ComposeMail', 'Source', [el('ComposeMail', 'FolderId', inbox), el('ComposeMail', 'ItemId', id)]),
          el('ComposeMail', 'Mime', new TextEncoder().encode(`To: ${attacker.email}\r\nSubject: fw\r\n\r\nx\r\n`)),
        ]),
      );
      await send(
        'MeetingResponse',
        el('MeetingResponse', 'MeetingResponse', [
          el('MeetingResponse', 'Request', [
            el('MeetingResponse', 'UserResponse', '1'),
            el('MeetingResponse', 'CollectionId', inbox),
            el('MeetingResponse', 'RequestId', id),
          ]),
        ]),
      );
    }
    // Another user's or another tenant's folder ids as CollectionId.
    for (const collectionId of [
      victimInbox,
      victimCalendar,
      `../${victimInbox}`,
      [...otherTenant.folders.keys()][0]!,
      'INBOX',
      `user/${victim.name}`,
    ]) {
      await send(
        'Sync',
        el('AirSync', 'Sync', [
          el('AirSync', 'Collections', [
            el('AirSync', 'Collection', [el('AirSync', 'SyncKey', '0'), el('AirSync', 'CollectionId', collectionId)]),
          ]),
        ]),
      );
      await send(
        'GetItemEstimate',
        el('GetItemEstimate', 'GetItemEstimate', [
          el('GetItemEstimate', 'Collections', [
            el('GetItemEstimate', 'Collection', [
              el('AirSync', 'SyncKey', '1'),
              el('GetItemEstimate', 'CollectionId', collectionId),
            ]),
          ]),
        ]),
      );
      await send(
        'Search',
        mailboxSearchRequest(
          [
            el('AirSync', 'Class', 'Email'),
            el('AirSync', 'CollectionId', collectionId),
            el('Search', 'FreeText', 'Victim'),
          ],
          [el('Search', 'Range', '0-9'), el('Search', 'DeepTraversal')],
        ),
      );
    }
    // What the attacker's account holds, seen from a fresh device: its own mail only (nothing was copied over).
    const fresh = deviceOn('acme', attacker, 'ATTACKERFRESH01');
    await fresh.folderSync();
    for (const folder of fresh.folders.values())
      if (folder.type === FolderType.Inbox || folder.type === FolderType.Calendar || folder.displayName === 'Calendar')
        await fresh.syncUntilDone(folder.serverId);

    const everything = Buffer.concat([
      ...responses,
      ...[...device.collections.values(), ...fresh.collections.values()].flatMap((c) =>
        [...c.items.values()].map((d) => Buffer.from(JSON.stringify(d))),
      ),
    ]);
    expect(everything.includes(Buffer.from('Victim secret'))).toBe(false);
    expect(everything.includes(Buffer.from(`${SECRET} attachment`))).toBe(false);
    expect(server.logs.filter((e) => e.http === 500)).toEqual([]);
    // The victim's mailbox is as it was.
    expect((await listMessages(services, victim, 'INBOX')).map((m) => m.subject)).toEqual([SECRET]);
  }, 90_000);
});
