/** FolderSync against the real Dovecot: special-use types, parents, incremental changes by another IMAP client. */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { childText } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, makeEvent, makeVCard, seedAddressBook, seedCalendar, withImap } from '../../services/seed.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

describe('FolderSync', () => {
  it('lists the mailbox with special-use types, no configuration needed', async () => {
    const user = createUser(services);
    await withImap(services, user, async (imap) => {
      await imap.mailboxCreate('Projects');
      await imap.mailboxCreate('Projects/2026');
    });
    const device = new TestDevice(server, user);
    const body = await device.folderSync();
    expect(childText(body, 'Status')).toBe('1');
    expect(device.hierarchyKey).toMatch(/^\{[0-9a-f-]{36}\}1$/);
    expect(device.folderByType(FolderType.Inbox).displayName).toBe('Inbox');
    expect(device.folderByType(FolderType.SentItems).displayName).toBe('Sent');
    expect(device.folderByType(FolderType.Drafts).displayName).toBe('Drafts');
    expect(device.folderByType(FolderType.DeletedItems).displayName).toBe('Trash');
    const projects = device.folderByName('Projects');
    expect(projects).toMatchObject({ parentId: '0', type: FolderType.UserMail });
    expect(device.folderByName('2026')).toMatchObject({ parentId: projects.serverId, type: FolderType.UserMail });
    for (const f of device.folders.values()) expect(f.serverId.length).toBeLessThanOrEqual(4);
    expect(
      Number(
        childText(
          body.children.find((c) => c.tag === 'Changes'),
          'Count',
        ),
      ),
    ).toBe(device.folders.size);
  });

  it('lists calendars, task lists and address books from CalDAV/CardDAV beside the mail folders', async () => {
    const user = createUser(services);
    await seedCalendar(services, user, 'home', [makeEvent({ summary: 'Dentist', start: '2026-03-02T09:00:00' })], {
      displayName: 'Home',
    });
    await seedCalendar(services, user, 'chores', [], { displayName: 'Chores', components: ['VTODO'] });
    await seedAddressBook(services, user, 'people', [makeVCard({ firstName: 'Ada', lastName: 'Lovelace' })], {
      displayName: 'People',
    });
    const device = new TestDevice(server, user);
    await device.folderSync();
    expect(device.folderByName('Home')).toMatchObject({ type: FolderType.Calendar, parentId: '0' });
    expect(device.folderByName('Chores')).toMatchObject({ type: FolderType.Tasks, parentId: '0' });
    expect(device.folderByName('People')).toMatchObject({ type: FolderType.Contacts, parentId: '0' });
    expect(device.folderByType(FolderType.Inbox)).toBeDefined();

    await seedCalendar(services, user, 'work', [], { displayName: 'Work' });
    const again = await device.folderSync();
    expect(
      childText(
        again.children.find((c) => c.tag === 'Changes'),
        'Count',
      ),
    ).toBe('1');
    expect(device.folderByName('Work').type).toBe(FolderType.UserCalendar);
  });

  it('reports what another IMAP client changed: a new folder, a rename, a deletion', async () => {
    const user = createUser(services);
    await withImap(services, user, (imap) => imap.mailboxCreate('Old name').then(() => imap.mailboxCreate('Doomed')));
    const device = new TestDevice(server, user);
    await device.folderSync();
    const renamedId = device.folderByName('Old name').serverId;
    const doomedId = device.folderByName('Doomed').serverId;
    const before = device.folders.size;

    const unchanged = await device.folderSync();
    expect(
      childText(
        unchanged.children.find((c) => c.tag === 'Changes'),
        'Count',
      ),
    ).toBe('0');

    await withImap(services, user, async (imap) => {
      await imap.mailboxCreate('Brand new');
      await imap.mailboxRename('Old name', 'New name');
      await imap.mailboxDelete('Doomed');
    });
    const keyBefore = device.hierarchyKey;
    await device.folderSync();
    expect(device.hierarchyKey).not.toBe(keyBefore);
    expect(device.folders.get(renamedId)?.displayName).toBe('New name');
    expect(device.folders.has(doomedId)).toBe(false);
    expect(device.folderByName('Brand new').type).toBe(FolderType.UserMail);
    expect(device.folders.size).toBe(before);
  });

  it('answers the previous key again with the same changes when the device lost the response', async () => {
    const user = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();
    await withImap(services, user, (imap) => imap.mailboxCreate('Lost and found'));
    const first = await device.folderSync({ lose: true });
    const again = await device.folderSync();
    expect(again).toEqual(first);
    expect(device.folderByName('Lost and found')).toBeDefined();
    // And only once: the next FolderSync has nothing new.
    const after = await device.folderSync();
    expect(
      childText(
        after.children.find((c) => c.tag === 'Changes'),
        'Count',
      ),
    ).toBe('0');
  });

  it('answers Status 9 to a key it never gave, and starts over from 0 with the same ServerIds', async () => {
    const user = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    device.hierarchyKey = '{00000000-0000-0000-0000-000000000000}7';
    expect(childText(await device.folderSync(), 'Status')).toBe('9');
    device.hierarchyKey = '0';
    await device.folderSync();
    expect(device.folderByType(FolderType.Inbox).serverId).toBe(inbox);
  });

  it('answers Status 10 to a request without a SyncKey', async () => {
    const user = createUser(services);
    const device = new TestDevice(server, user);
    const res = await device.send('FolderSync', { ns: 'FolderHierarchy', tag: 'FolderSync', children: [] });
    expect(childText(res.body, 'Status')).toBe('10');
  });
});

describe('FolderSync when a DAV server does not answer', () => {
  it('keeps the calendar folders the device has, and still reports mail changes', async () => {
    const user = createUser(services);
    await seedCalendar(services, user, 'home', [], { displayName: 'Home' });
    const device = new TestDevice(server, user);
    await device.folderSync();
    const home = device.folderByName('Home').serverId;

    // The same device and state, served by an instance whose CalDAV server is down.
    const down = testServer(
      services,
      { CALDAV_URL: 'https://127.0.0.1:9/', CARDDAV_URL: 'https://127.0.0.1:9/' },
      { state: server.state },
    );
    const sameDevice = new TestDevice(down, user, device.deviceId);
    sameDevice.hierarchyKey = device.hierarchyKey;
    for (const [id, f] of device.folders) sameDevice.folders.set(id, f);
    await withImap(services, user, (imap) => imap.mailboxCreate('While DAV was down'));
    const body = await sameDevice.folderSync();
    expect(body.children.find((c) => c.tag === 'Changes')?.children.map((c) => c.tag)).toEqual(['Count', 'Add']);
    expect(sameDevice.folderByName('While DAV was down')).toBeDefined();
    expect(sameDevice.folders.get(home)?.displayName).toBe('Home');
  });
});
