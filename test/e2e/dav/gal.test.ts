/**
 * The GAL: Search (Store GAL, Range and Total) and ResolveRecipients (with Availability) against a directory address
 * book in the real Radicale (GAL_URL), read under the device user's login. Free/busy comes from the calendar a
 * directory entry names in FBURL: readable (a `public…` calendar), forbidden (a private one) or absent.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { child, children, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, makeEvent, seedAddressBook, seedCalendar } from '../../services/seed.ts';

const services = inject('services');
let server: TestServer;
let device: TestDevice;

function vcard(o: {
  uid: string;
  first: string;
  last: string;
  email: string;
  title?: string;
  phone?: string;
  fburl?: string;
}): string {
  return [
    'BEGIN:VCARD',
    'VERSION:3.0',
    `UID:${o.uid}`,
    `N:${o.last};${o.first};;;`,
    `FN:${o.first} ${o.last}`,
    `EMAIL;TYPE=INTERNET:${o.email}`,
    'ORG:Example Corp',
    ...(o.title ? [`TITLE:${o.title}`] : []),
    ...(o.phone ? [`TEL;TYPE=WORK:${o.phone}`] : []),
    ...(o.fburl ? [`FBURL:${o.fburl}`] : []),
    'END:VCARD',
    '',
  ].join('\r\n');
}

beforeAll(async () => {
  const owner = createUser(services);
  const ada = createUser(services);
  const pub = await seedCalendar(
    services,
    ada,
    'public-calendar',
    [
      makeEvent({ summary: 'Busy', start: '2026-06-01T10:00:00', tz: 'UTC' }),
      makeEvent({ summary: 'Maybe', start: '2026-06-01T11:30:00', durationMinutes: 30, tz: 'UTC' }),
    ],
    { displayName: 'Public' },
  );
  const priv = await seedCalendar(
    services,
    ada,
    'private',
    [makeEvent({ summary: 'Secret', start: '2026-06-01T10:00:00', tz: 'UTC' })],
    { displayName: 'Private' },
  );
  const directory = await seedAddressBook(
    services,
    owner,
    'directory',
    [
      vcard({
        uid: 'ada',
        first: 'Ada',
        last: 'Lovelace',
        email: 'ada.lovelace@example.test',
        title: 'Analyst',
        phone: '+1 555 0100',
        fburl: pub.collectionUrl,
      }),
      vcard({ uid: 'adam', first: 'Adam', last: 'Smith', email: 'adam.smith@example.test', fburl: priv.collectionUrl }),
      vcard({ uid: 'grace', first: 'Grace', last: 'Hopper', email: 'grace.hopper@example.test' }),
      vcard({ uid: 'p1', first: 'Test', last: 'Person One', email: 'p1@example.test' }),
      vcard({ uid: 'p2', first: 'Test', last: 'Person Two', email: 'p2@example.test' }),
      vcard({ uid: 'p3', first: 'Test', last: 'Person Three', email: 'p3@example.test' }),
    ],
    { displayName: 'Directory' },
  );
  server = testServer(services, { GAL_URL: directory.collectionUrl });
  device = new TestDevice(server, createUser(services));
  await device.folderSync();
});

async function searchGal(query: string, range?: string): Promise<WbxmlElement | undefined> {
  const body = await device.command(
    'Search',
    el('Search', 'Search', [
      el('Search', 'Store', [
        el('Search', 'Name', 'GAL'),
        el('Search', 'Query', query),
        range ? el('Search', 'Options', [el('Search', 'Range', range)]) : undefined,
      ]),
    ]),
  );
  expect(childText(body, 'Status')).toBe('1');
  return child(child(body, 'Response'), 'Store');
}

function galNames(store: WbxmlElement | undefined): string[] {
  return children(store, 'Result').map((r) => childText(child(r, 'Properties'), 'DisplayName', 'Gal') ?? '');
}

async function resolve(to: string[], options: WbxmlElement[] = []): Promise<WbxmlElement> {
  return device.command(
    'ResolveRecipients',
    el('ResolveRecipients', 'ResolveRecipients', [
      ...to.map((t) => el('ResolveRecipients', 'To', t)),
      el('ResolveRecipients', 'Options', options),
    ]),
  );
}

function availability(start: string, end: string): WbxmlElement {
  return el('ResolveRecipients', 'Availability', [
    el('ResolveRecipients', 'StartTime', start),
    el('ResolveRecipients', 'EndTime', end),
  ]);
}

describe('Search GAL', () => {
  it('finds entries by name with their properties, one Range at a time with the Total', async () => {
    const store = await searchGal('ada');
    expect(childText(store, 'Status')).toBe('1');
    expect(galNames(store)).toEqual(['Ada Lovelace', 'Adam Smith']);
    expect(childText(store, 'Total')).toBe('2');
    expect(childText(store, 'Range')).toBe('0-1');
    const props = child(children(store, 'Result')[0], 'Properties');
    expect(childText(props, 'EmailAddress', 'Gal')).toBe('ada.lovelace@example.test');
    expect(childText(props, 'FirstName', 'Gal')).toBe('Ada');
    expect(childText(props, 'LastName', 'Gal')).toBe('Lovelace');
    expect(childText(props, 'Title', 'Gal')).toBe('Analyst');
    expect(childText(props, 'Company', 'Gal')).toBe('Example Corp');
    expect(childText(props, 'Phone', 'Gal')).toBe('+1 555 0100');

    const page = await searchGal('person', '1-2');
    expect(galNames(page)).toEqual(['Test Person Three', 'Test Person Two']);
    expect(childText(page, 'Range')).toBe('1-2');
    expect(childText(page, 'Total')).toBe('3');

    const none = await searchGal('nobody-like-this');
    expect(childText(none, 'Total')).toBe('0');
    expect(galNames(none)).toEqual(['']); // the one empty Result
  });
});

describe('ResolveRecipients', () => {
  it('resolves an address, lists ambiguous names (partially past MaxAmbiguousRecipients), and reports unknown ones', async () => {
    const body = await resolve(
      ['ada.lovelace@example.test', 'Ada', 'nobody@example.test'],
      [el('ResolveRecipients', 'MaxAmbiguousRecipients', '19')],
    );
    expect(childText(body, 'Status')).toBe('1');
    const [exact, ambiguous, unknown] = children(body, 'Response');
    expect(childText(exact, 'Status')).toBe('1');
    expect(childText(exact, 'RecipientCount')).toBe('1');
    expect(childText(child(exact, 'Recipient'), 'EmailAddress')).toBe('ada.lovelace@example.test');
    expect(childText(child(exact, 'Recipient'), 'DisplayName')).toBe('Ada Lovelace');
    expect(childText(child(exact, 'Recipient'), 'Type')).toBe('1');
    expect(childText(ambiguous, 'Status')).toBe('2');
    expect(childText(ambiguous, 'RecipientCount')).toBe('2');
    expect(childText(unknown, 'Status')).toBe('4');
    expect(childText(unknown, 'RecipientCount')).toBe('0');

    const partial = await resolve(['Ada'], [el('ResolveRecipients', 'MaxAmbiguousRecipients', '1')]);
    expect(childText(child(partial, 'Response'), 'Status')).toBe('3');
    expect(children(child(partial, 'Response'), 'Recipient')).toHaveLength(1);
  });

  it('answers free/busy from a readable calendar, 163 for a forbidden one, 162 without one', async () => {
    const body = await resolve(
      ['ada.lovelace@example.test', 'adam.smith@example.test', 'grace.hopper@example.test'],
      [availability('2026-06-01T09:00:00.000Z', '2026-06-01T13:00:00.000Z')],
    );
    const [ada, adam, grace] = children(body, 'Response').map((r) => child(child(r, 'Recipient'), 'Availability'));
    expect(childText(ada, 'Status')).toBe('1');
    // 09:00–13:00 in half hours: busy 10:00–11:00, busy 11:30–12:00.
    expect(childText(ada, 'MergedFreeBusy')).toBe('00220200');
    expect(childText(adam, 'Status')).toBe('163');
    expect(childText(adam, 'MergedFreeBusy')).toBeUndefined();
    expect(childText(grace, 'Status')).toBe('162');
  });

  it('a bad Availability window or no To is a protocol error (Status 5)', async () => {
    const backwards = await resolve(
      ['ada.lovelace@example.test'],
      [availability('2026-06-01T13:00:00.000Z', '2026-06-01T09:00:00.000Z')],
    );
    expect(childText(backwards, 'Status')).toBe('5');
    const tooLong = await resolve(
      ['ada.lovelace@example.test'],
      [availability('2026-06-01T00:00:00.000Z', '2026-09-01T00:00:00.000Z')],
    );
    expect(childText(tooLong, 'Status')).toBe('5');
    const empty = await device.command('ResolveRecipients', el('ResolveRecipients', 'ResolveRecipients', []));
    expect(childText(empty, 'Status')).toBe('5');
  });
});
