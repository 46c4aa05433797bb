/**
 * Sync of calendars and address books against the real Radicale, through the scripted device: server items out,
 * device Adds/Changes/Deletes in (conditional writes), lost answers, conflicts.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { childText, el } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { calendarAdd } from '../../device/calendar.ts';
import { createUser, davRequest, makeEvent, makeVCard, seedAddressBook, seedCalendar } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

/** The iCalendar/vCard texts in a DAV collection, by href. */
async function collectionTexts(user: TestUser, collectionUrl: string): Promise<string[]> {
  const res = await davRequest(services, user, 'PROPFIND', collectionUrl, {
    depth: '1',
    body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
  });
  const hrefs = [...(await res.text()).matchAll(/<(?:\w+:)?href>([^<]+\.(?:ics|vcf))<\/(?:\w+:)?href>/g)].map(
    (m) => m[1]!,
  );
  return Promise.all(hrefs.map(async (href) => (await davRequest(services, user, 'GET', href)).text()));
}

function subjectsOf(device: TestDevice, collectionId: string): string[] {
  return [...device.items(collectionId).values()].map((d) => itemText(d, 'Subject', 'Calendar') ?? '').sort();
}

describe('Sync of a calendar', () => {
  it('sends the events, takes the device Adds once (even resent), its Changes and Deletes', async () => {
    const user = createUser(services);
    const seeded = await seedCalendar(
      services,
      user,
      'home',
      [
        makeEvent({ summary: 'Dentist', start: '2026-03-02T09:00:00', tz: 'Europe/Berlin' }),
        makeEvent({
          summary: 'Standup',
          start: '2026-03-03T09:30:00',
          tz: 'Europe/Berlin',
          rrule: 'FREQ=WEEKLY;BYDAY=TU;COUNT=5',
        }),
      ],
      { displayName: 'Home' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const home = device.folderByName('Home').serverId;
    await device.syncUntilDone(home);
    expect(subjectsOf(device, home)).toEqual(['Dentist', 'Standup']);

    // An Add whose answer is lost, sent again: one event on the server, the same ServerId both times.
    const add = [calendarAdd('phone-1', 'Lunch with Ada')];
    const lost = await device.sync(home, { commands: add, lose: true });
    const again = await device.sync(home, { commands: add });
    expect(again.addResponses).toEqual(lost.addResponses);
    expect(again.addResponses[0]).toMatchObject({ clientId: 'phone-1', status: 1 });
    const texts = await collectionTexts(user, seeded.collectionUrl);
    expect(texts.filter((t) => t.includes('SUMMARY:Lunch with Ada'))).toHaveLength(1);
    // Not echoed back to the device that made it.
    const quiet = await device.sync(home);
    expect([...quiet.added, ...quiet.changed]).toEqual([]);

    const dentist = [...device.items(home)].find(([, d]) => itemText(d, 'Subject', 'Calendar') === 'Dentist')![0];
    await device.sync(home, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', dentist),
          el('AirSync', 'ApplicationData', [
            el('Calendar', 'Subject', 'Dentist (moved)'),
            el('Calendar', 'StartTime', '20260302T100000Z'),
            el('Calendar', 'EndTime', '20260302T110000Z'),
          ]),
        ]),
      ],
    });
    expect((await collectionTexts(user, seeded.collectionUrl)).some((t) => t.includes('SUMMARY:Dentist (moved)'))).toBe(
      true,
    );

    const lunch = again.addResponses[0]!.serverId!;
    await device.sync(home, { commands: [el('AirSync', 'Delete', [el('AirSync', 'ServerId', lunch)])] });
    expect((await collectionTexts(user, seeded.collectionUrl)).some((t) => t.includes('Lunch with Ada'))).toBe(false);
    const after = await device.sync(home);
    expect([...after.added, ...after.changed, ...after.deleted]).toEqual([]);
  });

  it("reports another client's new, changed and deleted events", async () => {
    const user = createUser(services);
    const seeded = await seedCalendar(
      services,
      user,
      'work',
      [
        makeEvent({ uid: 'keep', summary: 'Keep', start: '2026-04-01T09:00:00' }),
        makeEvent({ uid: 'drop', summary: 'Drop', start: '2026-04-02T09:00:00' }),
      ],
      { displayName: 'Work' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const work = device.folderByName('Work').serverId;
    await device.syncUntilDone(work);

    await seedCalendar(services, user, 'work', [
      makeEvent({ uid: 'keep', summary: 'Keep (edited)', start: '2026-04-01T09:00:00' }),
      makeEvent({ uid: 'new', summary: 'New', start: '2026-04-03T09:00:00' }),
    ]);
    const drop = seeded.items.find((i) => i.uid === 'drop')!;
    await davRequest(services, user, 'DELETE', drop.url);
    const round = await device.sync(work);
    expect(round.added).toHaveLength(1);
    expect(round.changed).toHaveLength(1);
    expect(round.deleted).toHaveLength(1);
    expect(subjectsOf(device, work)).toEqual(['Keep (edited)', 'New']);
  });

  it('server wins a conflict: Status 7 and the server version', async () => {
    const user = createUser(services);
    await seedCalendar(
      services,
      user,
      'c',
      [makeEvent({ uid: 'e1', summary: 'Original', start: '2026-05-01T09:00:00' })],
      { displayName: 'C' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const c = device.folderByName('C').serverId;
    await device.syncUntilDone(c);
    const [id] = [...device.items(c).keys()];
    await seedCalendar(services, user, 'c', [
      makeEvent({ uid: 'e1', summary: 'Changed elsewhere', start: '2026-05-01T09:00:00' }),
    ]);
    const round = await device.sync(c, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', id!),
          el('AirSync', 'ApplicationData', [el('Calendar', 'Subject', 'Changed on the phone')]),
        ]),
      ],
    });
    const response = round.collection?.children.find((x) => x.tag === 'Responses')?.children[0];
    expect(childText(response, 'Status')).toBe('7');
    expect(round.changed).toEqual([id]);
    expect(subjectsOf(device, c)).toEqual(['Changed elsewhere']);
  });
});

describe('Sync of an address book', () => {
  it('sends the contacts and takes a new one from the device', async () => {
    const user = createUser(services);
    const seeded = await seedAddressBook(
      services,
      user,
      'people',
      [makeVCard({ firstName: 'Ada', lastName: 'Lovelace', emails: [{ address: 'ada@example.test' }] })],
      { displayName: 'People' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const people = device.folderByName('People').serverId;
    await device.syncUntilDone(people);
    const [ada] = [...device.items(people).values()];
    expect(itemText(ada, 'LastName', 'Contacts')).toBe('Lovelace');
    expect(itemText(ada, 'Email1Address', 'Contacts')).toContain('ada@example.test');

    const round = await device.sync(people, {
      commands: [
        el('AirSync', 'Add', [
          el('AirSync', 'ClientId', 'c1'),
          el('AirSync', 'ApplicationData', [
            el('Contacts', 'FirstName', 'Grace'),
            el('Contacts', 'LastName', 'Hopper'),
            el('Contacts', 'Email1Address', 'grace@example.test'),
          ]),
        ]),
      ],
    });
    expect(round.addResponses[0]).toMatchObject({ clientId: 'c1', status: 1 });
    expect((await collectionTexts(user, seeded.collectionUrl)).some((t) => t.includes('Hopper'))).toBe(true);
  });
});

describe('a large address book', () => {
  // A JPEG-looking photo of a few KB per contact, different for each, and one over the 48 KB Picture limit.
  function photo(i: number, bytes = 2_000 + (i % 7) * 500): Buffer {
    const body = Buffer.alloc(bytes, i % 251);
    body.writeUInt32BE(0xffd8ffe0, 0);
    body.writeUInt32BE(i, 4);
    return body;
  }

  it('syncs 500 contacts with photos in windows of 100, each photo intact; one too large is left out', async () => {
    const user = createUser(services);
    const cards = Array.from({ length: 500 }, (_, i) =>
      makeVCard({
        uid: `c-${i}`,
        firstName: `Person${i}`,
        lastName: 'Many',
        emails: [{ address: `p${i}@example.test` }],
        photoJpeg: i === 499 ? photo(i, 60_000) : photo(i),
      }),
    );
    await seedAddressBook(services, user, 'many', cards, { displayName: 'Many', wholeCollection: true });
    const device = new TestDevice(server, user);
    await device.folderSync();
    const many = device.folderByName('Many').serverId;
    await device.sync(many);
    const rounds = await device.syncUntilDone(many, { windowSize: 100 });
    expect(rounds.map((r) => r.added.length)).toEqual([100, 100, 100, 100, 100]);
    expect(rounds.map((r) => r.moreAvailable)).toEqual([true, true, true, true, false]);

    const byName = new Map([...device.items(many).values()].map((d) => [itemText(d, 'FirstName', 'Contacts'), d]));
    expect(byName.size).toBe(500);
    for (let i = 0; i < 499; i++)
      expect(itemText(byName.get(`Person${i}`), 'Picture', 'Contacts'), `Person${i}`).toBe(photo(i).toString('base64'));
    expect(itemText(byName.get('Person499'), 'Picture', 'Contacts')).toBeUndefined();
    expect(itemText(byName.get('Person499'), 'Email1Address', 'Contacts')).toContain('p499@example.test');
  }, 120_000);
});

describe('all-day events', () => {
  it('arrive as AllDayEvent from midnight to midnight, and a device all-day Add is stored as DATE values', async () => {
    const user = createUser(services);
    const seeded = await seedCalendar(
      services,
      user,
      'days',
      [makeEvent({ uid: 'holiday', summary: 'Holiday', start: '2026-03-10' })],
      { displayName: 'Days' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const days = device.folderByName('Days').serverId;
    await device.sync(days);
    await device.syncUntilDone(days);
    const [holiday] = [...device.items(days).values()];
    expect(itemText(holiday, 'AllDayEvent', 'Calendar')).toBe('1');
    expect(itemText(holiday, 'StartTime', 'Calendar')).toBe('20260310T000000Z');
    expect(itemText(holiday, 'EndTime', 'Calendar')).toBe('20260311T000000Z');

    const round = await device.sync(days, {
      commands: [
        el('AirSync', 'Add', [
          el('AirSync', 'ClientId', 'd1'),
          el('AirSync', 'ApplicationData', [
            el('Calendar', 'Subject', 'Offsite'),
            el('Calendar', 'StartTime', '20260312T000000Z'),
            el('Calendar', 'EndTime', '20260314T000000Z'),
            el('Calendar', 'AllDayEvent', '1'),
          ]),
        ]),
      ],
    });
    expect(round.addResponses[0]).toMatchObject({ clientId: 'd1', status: 1 });
    const offsite = (await collectionTexts(user, seeded.collectionUrl)).find((t) => t.includes('SUMMARY:Offsite'))!;
    expect(offsite).toMatch(/^DTSTART;VALUE=DATE:20260312\r?$/m);
    expect(offsite).toMatch(/^DTEND;VALUE=DATE:20260314\r?$/m);
  });
});
