/** The CalDAV/CardDAV backend against the real Radicale: discovery, sync-collection, multiget, conditional writes. */
import { describe, expect, inject, it, vi } from 'vitest';
import { DavItemBackend } from '../../../src/backends/dav/backend.ts';
import { FolderType } from '../../../src/backends/types.ts';
import { TestDevice, testServer } from '../../device/device.ts';
import { createUser, makeEvent, makeTodo, makeVCard, seedAddressBook, seedCalendar } from '../../services/seed.ts';

const services = inject('services');
const realFetch = globalThis.fetch.bind(globalThis);

describe('DavItemBackend', () => {
  it('finds calendars, task lists and address books through the principal, each its own folder', async () => {
    const user = createUser(services);
    await seedCalendar(services, user, 'personal', [makeEvent({ summary: 'Dentist', start: '2026-03-02T09:00:00' })], {
      displayName: 'Personal',
    });
    await seedCalendar(services, user, 'work', [], { displayName: 'Work' });
    await seedCalendar(services, user, 'todo', [makeTodo({ summary: 'Taxes' })], {
      displayName: 'To do',
      components: ['VTODO'],
    });
    await seedAddressBook(services, user, 'contacts', [makeVCard({ firstName: 'Ada', lastName: 'Lovelace' })], {
      displayName: 'Contacts',
    });
    await seedAddressBook(services, user, 'family', [], { displayName: 'Family' });

    const login = { login: user.email, password: user.password };
    const calendars = await new DavItemBackend(services.caldavUrl, 'caldav', login).listFolders();
    expect(calendars.map((f) => [f.displayName, f.itemClass, f.type])).toEqual([
      ['Personal', 'Calendar', FolderType.Calendar],
      ['To do', 'Tasks', FolderType.Tasks],
      ['Work', 'Calendar', FolderType.UserCalendar],
    ]);
    const books = await new DavItemBackend(services.carddavUrl, 'carddav', login).listFolders();
    expect(books.map((f) => [f.displayName, f.itemClass, f.type])).toEqual([
      ['Contacts', 'Contacts', FolderType.Contacts],
      ['Family', 'Contacts', FolderType.UserContacts],
    ]);
  });

  it('offers the configured collections as the default folders (by display name or URL name), through FolderSync', async () => {
    const user = createUser(services);
    await seedCalendar(services, user, 'personal', [], { displayName: 'Personal' });
    await seedCalendar(services, user, 'work', [], { displayName: 'Work' });
    await seedCalendar(services, user, 'todo', [], { displayName: 'To do', components: ['VTODO'] });
    await seedAddressBook(services, user, 'contacts', [], { displayName: 'Contacts' });
    await seedAddressBook(services, user, 'family', [], { displayName: 'Family' });
    const server = testServer(services, {
      DAV_DEFAULT_CALENDAR: 'work',
      DAV_DEFAULT_ADDRESSBOOK: 'Family',
      DAV_DEFAULT_TASKS: 'nowhere',
    });
    const device = new TestDevice(server, user);
    await device.folderSync();
    expect(device.folderByType(FolderType.Calendar).displayName).toBe('Work');
    expect(device.folderByName('Personal').type).toBe(FolderType.UserCalendar);
    expect(device.folderByType(FolderType.Contacts).displayName).toBe('Family');
    expect(device.folderByName('Contacts').type).toBe(FolderType.UserContacts);
    // A default that names no collection leaves the first one listed as the default.
    expect(device.folderByType(FolderType.Tasks).displayName).toBe('To do');
  });

  it('reports changes by sync-token, fetches items, and writes only over the version it knows', async () => {
    const user = createUser(services);
    const seeded = await seedCalendar(services, user, 'cal', [
      makeEvent({ summary: 'One', start: '2026-03-02T09:00:00' }),
      makeEvent({ summary: 'Two', start: '2026-03-03T09:00:00' }),
    ]);
    const dav = new DavItemBackend(services.caldavUrl, 'caldav', { login: user.email, password: user.password });
    const [folder] = await dav.listFolders();
    const first = await dav.changesSince(folder!.ref, undefined);
    if (first === 'invalid-token') throw new Error('no initial listing');
    expect(first.changed.map((c) => c.href).sort()).toEqual(seeded.items.map((i) => i.url).sort());
    expect((await dav.listEtags(folder!.ref)).length).toBe(2);

    const items = await dav.fetchItems(
      folder!.ref,
      first.changed.map((c) => c.href),
    );
    expect(items.map((i) => /SUMMARY:(\w+)/.exec(i.data)?.[1]).sort()).toEqual(['One', 'Two']);

    const created = await dav.putItem(
      folder!.ref,
      undefined,
      makeEvent({ summary: 'Three', start: '2026-03-04T09:00:00' }),
    );
    if (!created.ok) throw new Error('PUT failed');
    const changed = items[0]!;
    const updated = await dav.putItem(
      folder!.ref,
      changed.href,
      changed.data.replace('SUMMARY:', 'SUMMARY:Moved '),
      changed.etag,
    );
    expect(updated.ok).toBe(true);
    // Another write over the old etag: the server's copy changed meanwhile.
    expect(await dav.putItem(folder!.ref, changed.href, changed.data, changed.etag)).toEqual({
      ok: false,
      reason: 'conflict',
    });
    expect(await dav.deleteItem(items[1]!.href, items[1]!.etag)).toEqual({ ok: true, href: items[1]!.href, etag: '' });

    const next = await dav.changesSince(folder!.ref, first.syncToken);
    if (next === 'invalid-token') throw new Error('token forgotten');
    expect(next.changed.map((c) => c.href).sort()).toEqual([changed.href, created.href].sort());
    expect(next.removed).toEqual([items[1]!.href]);
    expect(await dav.changesSince(folder!.ref, 'http://radicale.org/ns/sync/not-a-token')).toBe('invalid-token');
  });

  it("discovers a user's home once: later listings (a new backend per request) are one PROPFIND", async () => {
    const user = createUser(services);
    await seedCalendar(services, user, 'cal', [], { displayName: 'Cal' });
    const login = { login: user.email, password: user.password };
    const methods: string[] = [];
    const spy = vi.spyOn(globalThis, 'fetch').mockImplementation(async (input, init) => {
      methods.push(init?.method ?? 'GET');
      return realFetch(input, init);
    });
    try {
      const first = await new DavItemBackend(services.caldavUrl, 'caldav', login).listFolders();
      expect(methods).toEqual(['PROPFIND', 'PROPFIND', 'PROPFIND']);
      methods.length = 0;
      const again = await new DavItemBackend(services.caldavUrl, 'caldav', login).listFolders();
      expect(methods).toEqual(['PROPFIND']);
      expect(again).toEqual(first);
    } finally {
      spy.mockRestore();
    }
  });
});
