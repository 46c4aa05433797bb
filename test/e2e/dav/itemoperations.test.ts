/**
 * ItemOperations Fetch of calendar, task and contact items against the real Radicale, through the scripted device:
 * the Properties are the ApplicationData Sync sent for the same item (the same converters), under the Fetch's
 * BodyPreference; an item that is not there is Status 6 (MS-ASCMD §2.2.3.177.8).
 *
 * The request is MS-ASCMD §2.2.1.10's Fetch shape: Store Mailbox, airsync:CollectionId, airsync:ServerId, and Options
 * with an airsyncbase:BodyPreference (Type, TruncationSize), as Outlook for iOS/Android and iOS send it to reopen an
 * item whose body Sync truncated.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { encodeWbxml } from '../../../src/wbxml/encoder.ts';
import { child, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, makeEvent, makeTodo, makeVCard, seedAddressBook, seedCalendar } from '../../services/seed.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

function fetchItem(collectionId: string | undefined, serverId: string, options: WbxmlElement[] = []): WbxmlElement {
  return el('ItemOperations', 'Fetch', [
    el('ItemOperations', 'Store', 'Mailbox'),
    collectionId !== undefined && el('AirSync', 'CollectionId', collectionId),
    el('AirSync', 'ServerId', serverId),
    options.length > 0 && el('ItemOperations', 'Options', options),
  ]);
}

function bodyPreference(type: number, truncationSize?: number): WbxmlElement {
  return el('AirSyncBase', 'BodyPreference', [
    el('AirSyncBase', 'Type', type),
    truncationSize !== undefined && el('AirSyncBase', 'TruncationSize', truncationSize),
  ]);
}

async function itemOperations(device: TestDevice, fetches: WbxmlElement[]): Promise<WbxmlElement[]> {
  const body = await device.command('ItemOperations', el('ItemOperations', 'ItemOperations', fetches));
  expect(childText(body, 'Status')).toBe('1');
  return child(body, 'Response')?.children ?? [];
}

/** The ApplicationData children without the Body, encoded: what must match byte for byte. */
function withoutBody(children: WbxmlElement[]): string {
  const rest = children.filter((c) => !(c.ns === 'AirSyncBase' && c.tag === 'Body'));
  return Buffer.from(encodeWbxml(el('ItemOperations', 'Properties', rest))).toString('hex');
}

describe('ItemOperations Fetch of calendar, task and contact items', () => {
  it('answers what Sync sent, with the Fetch’s BodyPreference; an unknown item is Status 6', async () => {
    const user = createUser(services);
    const notes = 'Bring the X-ray pictures and the insurance card.';
    await seedCalendar(
      services,
      user,
      'home',
      [makeEvent({ summary: 'Dentist', start: '2026-03-02T09:00:00', tz: 'Europe/Berlin', description: notes })],
      { displayName: 'Home' },
    );
    await seedCalendar(services, user, 'todo', [makeTodo({ summary: 'File taxes', description: notes })], {
      displayName: 'Chores',
      components: ['VTODO'],
    });
    await seedAddressBook(
      services,
      user,
      'people',
      [makeVCard({ firstName: 'Ada', lastName: 'Lovelace', emails: [{ address: 'ada@example.test' }], note: notes })],
      { displayName: 'People' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const folders = {
      Calendar: device.folderByName('Home').serverId,
      Tasks: device.folderByName('Chores').serverId,
      Contacts: device.folderByName('People').serverId,
    };
    const full = [el('AirSync', 'Options', [bodyPreference(1)])];
    for (const id of Object.values(folders)) await device.syncUntilDone(id, { options: full });

    for (const [itemClass, collectionId] of Object.entries(folders)) {
      const [serverId, synced] = [...device.items(collectionId)][0]!;
      // Whole body: the same ApplicationData Sync sent.
      const [whole] = await itemOperations(device, [fetchItem(collectionId, serverId, [bodyPreference(1)])]);
      expect(childText(whole, 'Status')).toBe('1');
      expect(childText(whole, 'Class', 'AirSync')).toBe(itemClass);
      expect(childText(whole, 'ServerId', 'AirSync')).toBe(serverId);
      const properties = child(whole, 'Properties')!;
      expect(Buffer.from(encodeWbxml(el('ItemOperations', 'Properties', properties.children))).toString('hex')).toBe(
        Buffer.from(encodeWbxml(el('ItemOperations', 'Properties', synced.children))).toString('hex'),
      );
      expect(childText(child(properties, 'Body', 'AirSyncBase'), 'Data', 'AirSyncBase')).toBe(notes);

      // A truncated body: everything else the same, the body cut as asked.
      const [cut] = await itemOperations(device, [fetchItem(collectionId, serverId, [bodyPreference(1, 8)])]);
      const cutBody = child(child(cut, 'Properties'), 'Body', 'AirSyncBase');
      expect(childText(cutBody, 'Truncated', 'AirSyncBase')).toBe('1');
      expect(childText(cutBody, 'Data', 'AirSyncBase')).toBe(notes.slice(0, 8));
      expect(childText(cutBody, 'EstimatedDataSize', 'AirSyncBase')).toBe(String(notes.length));
      expect(withoutBody(child(cut, 'Properties')!.children)).toBe(withoutBody(synced.children));

      // Without the CollectionId (the ServerId names it), as some clients send it.
      const [bare] = await itemOperations(device, [fetchItem(undefined, serverId)]);
      expect(childText(bare, 'Status')).toBe('1');
    }
    expect(itemText([...device.items(folders.Contacts).values()][0], 'FirstName', 'Contacts')).toBe('Ada');

    // Unknown items, a ServerId of another collection, a collection the device does not know: Status 6, in order.
    const answers = await itemOperations(device, [
      fetchItem(folders.Calendar, `${folders.Calendar}:nosuchitem0000`),
      fetchItem(folders.Tasks, [...device.items(folders.Contacts).keys()][0]!),
      fetchItem(folders.Contacts, `${folders.Contacts}:`),
    ]);
    expect(answers.map((a) => childText(a, 'Status'))).toEqual(['6', '6', '6']);
  });

  it('finds an item this device never synced, by the ServerId another device was given', async () => {
    const user = createUser(services);
    const seeded = await seedCalendar(
      services,
      user,
      'work',
      [makeEvent({ summary: 'Review', start: '2026-04-01T10:00:00' })],
      {
        displayName: 'Work',
      },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const work = device.folderByName('Work').serverId;
    await device.syncUntilDone(work);
    const [serverId] = [...device.items(work).keys()];
    // A second device that never synced the calendar fetches by the ServerId the first was given.
    const other = new TestDevice(server, user);
    await other.folderSync();
    const [answer] = await itemOperations(other, [fetchItem(work, serverId!)]);
    expect(childText(answer, 'Status')).toBe('1');
    expect(itemText(child(answer, 'Properties'), 'Subject', 'Calendar')).toBe('Review');
    expect(seeded.items).toHaveLength(1);
  });
});
