/**
 * FolderCreate, FolderUpdate and FolderDelete of calendars and address books against the real Radicale, through the
 * scripted device: MKCALENDAR / extended MKCOL, PROPPATCH displayname, DELETE; the hierarchy key moves on and the
 * next FolderSync has nothing to repeat.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { child, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, davRequest, principalUrl, seedAddressBook, seedCalendar } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

/** One folder command from the device's hierarchy key; the key moves on when it succeeds. */
async function folderCommand(
  device: TestDevice,
  command: 'FolderCreate' | 'FolderUpdate' | 'FolderDelete',
  fields: [string, string][],
): Promise<WbxmlElement> {
  const body = await device.command(
    command,
    el('FolderHierarchy', command, [
      el('FolderHierarchy', 'SyncKey', device.hierarchyKey),
      ...fields.map(([tag, value]) => el('FolderHierarchy', tag as 'ServerId', value)),
    ]),
  );
  if (childText(body, 'Status') === '1') device.hierarchyKey = childText(body, 'SyncKey')!;
  return body;
}

/** displayname of each collection in the user's home, by collection URL. */
async function homeCollections(user: TestUser): Promise<Map<string, string>> {
  const res = await davRequest(services, user, 'PROPFIND', principalUrl(services, user), {
    depth: '1',
    body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><displayname/></prop></propfind>',
  });
  const text = await res.text();
  const out = new Map<string, string>();
  for (const m of text.matchAll(/<(?:\w+:)?response>([\s\S]*?)<\/(?:\w+:)?response>/g)) {
    const href = /<(?:\w+:)?href>([^<]+)</.exec(m[1]!)?.[1];
    const name = /<(?:\w+:)?displayname>([^<]*)</.exec(m[1]!)?.[1];
    if (href && name !== undefined) out.set(href, name);
  }
  return out;
}

function changesOf(folderSync: WbxmlElement): string[] {
  return (child(folderSync, 'Changes')?.children ?? [])
    .filter((c) => c.tag !== 'Count')
    .map((c) => `${c.tag}:${childText(c, 'DisplayName') ?? childText(c, 'ServerId')}`);
}

describe('Folder commands on calendars and address books', () => {
  it('creates, renames and deletes a calendar; the new calendar takes events', async () => {
    const user = createUser(services);
    await seedCalendar(services, user, 'cal', [], { displayName: 'Cal' });
    const device = new TestDevice(server, user);
    await device.folderSync();
    const defaultCalendar = device.folderByType(FolderType.Calendar).serverId;

    const created = await folderCommand(device, 'FolderCreate', [
      ['ParentId', '0'],
      ['DisplayName', 'Trips'],
      ['Type', String(FolderType.UserCalendar)],
    ]);
    expect(childText(created, 'Status')).toBe('1');
    const trips = childText(created, 'ServerId')!;
    expect([...(await homeCollections(user)).values()]).toContain('Trips');
    expect(changesOf(await device.folderSync()).filter((c) => c.startsWith('Add') || c.startsWith('Delete'))).toEqual(
      [],
    );

    const again = await folderCommand(device, 'FolderCreate', [
      ['ParentId', '0'],
      ['DisplayName', 'Trips'],
      ['Type', String(FolderType.UserCalendar)],
    ]);
    expect(childText(again, 'Status')).toBe('2');

    await device.sync(trips);
    const round = await device.sync(trips, {
      commands: [
        el('AirSync', 'Add', [
          el('AirSync', 'ClientId', 't1'),
          el('AirSync', 'ApplicationData', [
            el('Calendar', 'Subject', 'Flight'),
            el('Calendar', 'StartTime', '20260401T080000Z'),
            el('Calendar', 'EndTime', '20260401T100000Z'),
          ]),
        ]),
      ],
    });
    expect(round.addResponses[0]?.status).toBe(1);

    const renamed = await folderCommand(device, 'FolderUpdate', [
      ['ServerId', trips],
      ['ParentId', '0'],
      ['DisplayName', 'Travel'],
    ]);
    expect(childText(renamed, 'Status')).toBe('1');
    const names = [...(await homeCollections(user)).values()];
    expect(names).toContain('Travel');
    expect(names).not.toContain('Trips');
    expect(changesOf(await device.folderSync()).filter((c) => c.includes('Travel') || c.includes(trips))).toEqual([]);

    // The default calendar is the server's.
    expect(childText(await folderCommand(device, 'FolderDelete', [['ServerId', defaultCalendar]]), 'Status')).toBe('3');
    expect(
      childText(
        await folderCommand(device, 'FolderUpdate', [
          ['ServerId', defaultCalendar],
          ['ParentId', '0'],
          ['DisplayName', 'Mine'],
        ]),
        'Status',
      ),
    ).toBe('3');

    const deleted = await folderCommand(device, 'FolderDelete', [['ServerId', trips]]);
    expect(childText(deleted, 'Status')).toBe('1');
    expect([...(await homeCollections(user)).values()]).not.toContain('Travel');
    expect(changesOf(await device.folderSync())).toEqual([]);
    expect(childText(await folderCommand(device, 'FolderDelete', [['ServerId', trips]]), 'Status')).toBe('4');
    // Sync of the deleted folder: the device must FolderSync.
    expect((await device.sync(trips)).status).toBe(12);
  });

  it('creates and renames an address book (extended MKCOL, PROPPATCH)', async () => {
    const user = createUser(services);
    await seedAddressBook(services, user, 'contacts', [], { displayName: 'Contacts' });
    const device = new TestDevice(server, user);
    await device.folderSync();
    const created = await folderCommand(device, 'FolderCreate', [
      ['ParentId', '0'],
      ['DisplayName', 'Suppliers'],
      ['Type', String(FolderType.UserContacts)],
    ]);
    expect(childText(created, 'Status')).toBe('1');
    const suppliers = childText(created, 'ServerId')!;
    await device.sync(suppliers);
    const round = await device.sync(suppliers, {
      commands: [
        el('AirSync', 'Add', [
          el('AirSync', 'ClientId', 'c1'),
          el('AirSync', 'ApplicationData', [
            el('Contacts', 'FirstName', 'Ada'),
            el('Contacts', 'LastName', 'Supplies'),
          ]),
        ]),
      ],
    });
    expect(round.addResponses[0]?.status).toBe(1);
    const renamed = await folderCommand(device, 'FolderUpdate', [
      ['ServerId', suppliers],
      ['ParentId', '0'],
      ['DisplayName', 'Vendors'],
    ]);
    expect(childText(renamed, 'Status')).toBe('1');
    expect([...(await homeCollections(user)).values()]).toContain('Vendors');
    const fresh = new TestDevice(server, user);
    await fresh.folderSync();
    const vendors = fresh.folderByName('Vendors');
    await fresh.syncUntilDone(vendors.serverId);
    expect([...fresh.items(vendors.serverId).values()].map((d) => itemText(d, 'LastName', 'Contacts'))).toEqual([
      'Supplies',
    ]);
  });
});
