/**
 * Search (Mailbox store) and Find (16.1) against the real Dovecot, through the scripted device: free text in subject,
 * body and addresses, folder restriction and DeepTraversal, received-date bounds, Range and Total, the no-result
 * form and the statuses; and that what they return can be fetched and synced.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { child, children, childText, el, textOf, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, seedMailbox, withImap, type SeedMessage } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';
import { comparable, libwbxmlDecode, parseLibwbxmlXml } from '../../wbxml/libwbxml.ts';
import { itemOperationsFetch, mailboxSearchRequest } from '../session-steps.ts';

const services = inject('services');
const DAY = 86_400_000;
const now = Date.now();
const daysAgo = (days: number): Date => new Date(now - days * DAY);

let server: TestServer;
let user: TestUser;
/** Subject → `<collectionId>:<uid>` on the device below. */
const ids = new Map<string, string>();
let device: TestDevice;
let inbox: string;
let projects: string;
let projects2026: string;

function message(
  subject: string,
  days: number,
  extra: {
    from?: string;
    text?: string;
    cc?: string;
    html?: string;
    attachments?: { filename: string; contentType: string; content: Buffer }[];
  } = {},
): SeedMessage {
  return {
    message: {
      from: extra.from ?? 'Bob <bob@example.test>',
      to: 'Alice Example <alice@example.test>',
      subject,
      text: extra.text ?? 'Nothing special',
      date: daysAgo(days),
      ...extra,
    },
    internalDate: daysAgo(days),
  };
}

beforeAll(async () => {
  server = testServer(services);
  user = createUser(services);
  const seed = async (folder: string, messages: SeedMessage[]): Promise<{ uid: number; subject: string }[]> =>
    (await seedMailbox(services, user, folder, messages)).map((m, i) => ({
      uid: m.uid,
      subject: (messages[i]!.message as { subject: string }).subject,
    }));
  const inInbox = await seed('INBOX', [
    message('Budget review 2026', 4, {
      text: 'Numbers attached',
      cc: 'Carol Clerk <carol@example.test>, dave@example.test',
      attachments: [
        { filename: 'budget.pdf', contentType: 'application/pdf', content: Buffer.from('%PDF-1.4 budget') },
      ],
    }),
    message('Lunch', 2, {
      text: 'Shall we discuss the budget over lunch?',
      html: '<p>Shall we discuss the <b>budget</b> over lunch?</p>',
    }),
    message('Weekend', 1, { text: 'Nothing to do with money' }),
    message('Reminder', 3, { from: 'Finance <budget-office@example.test>', text: 'Please submit your receipts' }),
    message('Grüße aus München', 5, { text: 'Die Übersicht für März: Straße, Größe' }),
  ]);
  await withImap(services, user, (imap) => imap.mailboxCreate('Projects'));
  const inProjects = await seed('Projects', [message('Budget forecast', 6)]);
  const in2026 = await seed('Projects/2026', [message('Budget details', 7)]);

  device = new TestDevice(server, user, undefined, '16.1');
  await device.folderSync();
  inbox = device.folderByType(FolderType.Inbox).serverId;
  projects = device.folderByName('Projects').serverId;
  projects2026 = device.folderByName('2026').serverId;
  for (const [collectionId, seeded] of [
    [inbox, inInbox],
    [projects, inProjects],
    [projects2026, in2026],
  ] as const) {
    for (const m of seeded) ids.set(m.subject, `${collectionId}:${m.uid}`);
  }
});

// ---------------------------------------------------------------------------------------------------------------------
// Search

function mailboxSearch(conditions: WbxmlElement[], options: WbxmlElement[] = []): WbxmlElement {
  return mailboxSearchRequest([el('AirSync', 'Class', 'Email'), ...conditions], options);
}

const freeText = (text: string): WbxmlElement => el('Search', 'FreeText', text);
const collection = (id: string): WbxmlElement => el('AirSync', 'CollectionId', id);
const range = (text: string): WbxmlElement => el('Search', 'Range', text);
const dateBound = (tag: 'GreaterThan' | 'LessThan', date: Date): WbxmlElement =>
  el('Search', tag, [el('Email', 'DateReceived'), el('Search', 'Value', date.toISOString())]);

/** The Store of the answer, after checking the top-level Status 1. */
async function searchStore(request: WbxmlElement): Promise<WbxmlElement> {
  const body = await device.command('Search', request);
  expect(childText(body, 'Status')).toBe('1');
  return child(child(body, 'Response'), 'Store')!;
}

/** The results' subjects, in the order sent. */
function subjects(store: WbxmlElement): string[] {
  return children(store, 'Result').map((r) => itemText(child(r, 'Properties'), 'Subject', 'Email') ?? '');
}

describe('Search of the Mailbox store', () => {
  it('finds free text in subject, body and sender, newest first, with LongId, CollectionId and the item', async () => {
    const store = await searchStore(mailboxSearch([collection(inbox), freeText('budget')]));
    expect(childText(store, 'Status')).toBe('1');
    expect(subjects(store)).toEqual(['Lunch', 'Reminder', 'Budget review 2026']);
    expect(childText(store, 'Range')).toBe('0-2');
    expect(childText(store, 'Total')).toBe('3');
    const [first] = children(store, 'Result');
    expect(childText(first, 'Class', 'AirSync')).toBe('Email');
    expect(childText(first, 'LongId')).toBe(ids.get('Lunch'));
    expect(childText(first, 'CollectionId', 'AirSync')).toBe(inbox);
    expect(itemText(child(first, 'Properties'), 'From', 'Email')).toContain('bob@example.test');
  });

  it('finds non-ASCII text', async () => {
    const store = await searchStore(mailboxSearch([collection(inbox), freeText('Übersicht')]));
    expect(subjects(store)).toEqual(['Grüße aus München']);
  });

  it('searches only the collections named, their subfolders with DeepTraversal, the whole mailbox with none', async () => {
    expect(subjects(await searchStore(mailboxSearch([collection(projects), freeText('budget')])))).toEqual([
      'Budget forecast',
    ]);
    expect(
      subjects(
        await searchStore(mailboxSearch([collection(projects), freeText('budget')], [el('Search', 'DeepTraversal')])),
      ),
    ).toEqual(['Budget forecast', 'Budget details']);
    expect(
      subjects(await searchStore(mailboxSearch([collection(projects2026), collection(inbox), freeText('budget')]))),
    ).toEqual(['Lunch', 'Reminder', 'Budget review 2026', 'Budget details']);
    const everywhere = await searchStore(mailboxSearch([freeText('budget')]));
    expect(childText(everywhere, 'Total')).toBe('5');
    expect(children(everywhere, 'Result').map((r) => childText(r, 'CollectionId', 'AirSync'))).toEqual([
      inbox,
      inbox,
      inbox,
      projects,
      projects2026,
    ]);
  });

  it('restricts DateReceived with GreaterThan and LessThan', async () => {
    const after = dateBound('GreaterThan', daysAgo(3.5));
    const before = dateBound('LessThan', daysAgo(2.5));
    expect(subjects(await searchStore(mailboxSearch([collection(inbox), freeText('budget'), after])))).toEqual([
      'Lunch',
      'Reminder',
    ]);
    expect(subjects(await searchStore(mailboxSearch([collection(inbox), freeText('budget'), before])))).toEqual([
      'Reminder',
      'Budget review 2026',
    ]);
    expect(subjects(await searchStore(mailboxSearch([collection(inbox), freeText('budget'), after, before])))).toEqual([
      'Reminder',
    ]);
    // Dates alone, without free text.
    expect(
      subjects(await searchStore(mailboxSearch([collection(inbox), dateBound('GreaterThan', daysAgo(1.5))]))),
    ).toEqual(['Weekend']);
  });

  it('pages with Range; Total counts every match', async () => {
    const page = async (text: string): Promise<WbxmlElement> =>
      searchStore(mailboxSearch([freeText('budget')], [range(text)]));
    const first = await page('0-1');
    expect(subjects(first)).toEqual(['Lunch', 'Reminder']);
    expect([childText(first, 'Range'), childText(first, 'Total')]).toEqual(['0-1', '5']);
    const second = await page('2-3');
    expect(subjects(second)).toEqual(['Budget review 2026', 'Budget forecast']);
    expect(childText(second, 'Range')).toBe('2-3');
    const last = await page('4-9');
    expect(subjects(last)).toEqual(['Budget details']);
    expect([childText(last, 'Range'), childText(last, 'Total')]).toEqual(['4-4', '5']);
    const beyond = await page('10-19');
    expect(children(beyond, 'Result')).toHaveLength(1);
    expect(children(beyond, 'Result')[0]!.children).toEqual([]);
    expect(childText(beyond, 'Total')).toBe('5');
  });

  it('answers no match with Status 1, one empty Result and Total 0', async () => {
    const store = await searchStore(mailboxSearch([freeText('xylophone')]));
    expect(store.children.map((c) => c.tag)).toEqual(['Status', 'Result', 'Total']);
    expect(childText(store, 'Status')).toBe('1');
    expect(children(store, 'Result')[0]!.children).toEqual([]);
    expect(childText(store, 'Total')).toBe('0');
  });

  it('sends the body the BodyPreference asks for', async () => {
    const store = await searchStore(
      mailboxSearch(
        [collection(inbox), freeText('lunch')],
        [
          el('AirSyncBase', 'BodyPreference', [
            el('AirSyncBase', 'Type', '2'),
            el('AirSyncBase', 'TruncationSize', '5000'),
          ]),
        ],
      ),
    );
    const body = child(child(children(store, 'Result')[0], 'Properties'), 'Body', 'AirSyncBase');
    expect(childText(body, 'Type', 'AirSyncBase')).toBe('2');
    expect(childText(body, 'Data', 'AirSyncBase')).toContain('<b>budget</b>');
  });

  it('answers store statuses: 11 for an unknown collection, 8 for Or, 2 for a bad date, range, store or query; GAL empty', async () => {
    expect(childText(await searchStore(mailboxSearch([collection('9999'), freeText('budget')])), 'Status')).toBe('11');
    expect(
      childText(await searchStore(mailboxSearch([el('Search', 'Or', [freeText('a'), freeText('b')])])), 'Status'),
    ).toBe('8');
    const badDate = el('Search', 'GreaterThan', [el('Email', 'DateReceived'), el('Search', 'Value', 'yesterday')]);
    expect(childText(await searchStore(mailboxSearch([badDate])), 'Status')).toBe('2');
    expect(childText(await searchStore(mailboxSearch([freeText('budget')], [range('5-1')])), 'Status')).toBe('2');
    const library = el('Search', 'Search', [
      el('Search', 'Store', [el('Search', 'Name', 'DocumentLibrary'), el('Search', 'Query', 'x')]),
    ]);
    expect(childText(await searchStore(library), 'Status')).toBe('2');
    // A GAL-style text query sent to the mailbox.
    const textQuery = el('Search', 'Search', [
      el('Search', 'Store', [el('Search', 'Name', 'Mailbox'), el('Search', 'Query', 'budget')]),
    ]);
    expect(childText(await searchStore(textQuery), 'Status')).toBe('2');
    const gal = await searchStore(
      el('Search', 'Search', [
        el('Search', 'Store', [
          el('Search', 'Name', 'GAL'),
          el('Search', 'Query', 'ali'),
          el('Search', 'Options', [range('0-9')]),
        ]),
      ]),
    );
    expect([childText(gal, 'Status'), childText(gal, 'Total')]).toEqual(['1', '0']);
  });

  it('answers a top-level Status 2 to a request without a Store', async () => {
    const body = await device.command('Search', el('Search', 'Search', []));
    expect(childText(body, 'Status')).toBe('2');
    expect(child(body, 'Response')).toBeUndefined();
  });

  it('gives LongIds that ItemOperations fetches', async () => {
    const store = await searchStore(mailboxSearch([collection(inbox), freeText('receipts')]));
    const longId = childText(children(store, 'Result')[0], 'LongId')!;
    const fetched = await itemOperationsFetch(device, { longId });
    expect(childText(fetched, 'Status')).toBe('1');
    expect(childText(fetched, 'LongId', 'Search')).toBe(longId);
    expect(itemText(child(fetched, 'Properties'), 'Subject', 'Email')).toBe('Reminder');
  });

  it('encodes a response libwbxml decodes to the same tree', async () => {
    // Bodies as size only: wbxml2xml drops a text's trailing newline, which would differ from the body text.
    const sizeOnly = el('AirSyncBase', 'BodyPreference', [
      el('AirSyncBase', 'Type', '1'),
      el('AirSyncBase', 'TruncationSize', '0'),
    ]);
    const res = await device.send(
      'Search',
      mailboxSearch(
        [collection(projects), freeText('budget')],
        [el('Search', 'DeepTraversal'), range('0-9'), sizeOnly],
      ),
    );
    expect(res.body).toBeDefined();
    expect(children(child(child(res.body, 'Response'), 'Store'), 'Result')).toHaveLength(2);
    expect(parseLibwbxmlXml(libwbxmlDecode(res.bytes))).toEqual(comparable(res.body!));
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Find

function findRequest(conditions: WbxmlElement[], options: WbxmlElement[] = []): WbxmlElement {
  return el('Find', 'Find', [
    el('Find', 'SearchId', 'c0ffee00-1111-2222-3333-444455556666'),
    el('Find', 'ExecuteSearch', [
      el('Find', 'MailBoxSearchCriterion', [
        el('Find', 'Query', [el('AirSync', 'Class', 'Email'), ...conditions]),
        options.length > 0 && el('Find', 'Options', options),
      ]),
    ]),
  ]);
}

/** The Response of a Find answer, after checking the top-level Status 1. */
async function findResponse(request: WbxmlElement): Promise<WbxmlElement> {
  const body = await device.command('Find', request);
  expect(childText(body, 'Status')).toBe('1');
  return child(body, 'Response')!;
}

function findSubjects(response: WbxmlElement): string[] {
  return children(response, 'Result').map((r) => itemText(child(r, 'Properties'), 'Subject', 'Email') ?? '');
}

describe('Find (16.1)', () => {
  it('finds free text, one Range at a time, with the list properties', async () => {
    const response = await findResponse(
      findRequest([collection(inbox), el('Find', 'FreeText', 'budget')], [el('Find', 'Range', '0-1')]),
    );
    expect(childText(response, 'Store', 'ItemOperations')).toBe('Mailbox');
    expect(childText(response, 'Status')).toBe('1');
    expect(findSubjects(response)).toEqual(['Lunch', 'Reminder']);
    expect([childText(response, 'Range'), childText(response, 'Total')]).toEqual(['0-1', '3']);

    const rest = await findResponse(
      findRequest([collection(inbox), el('Find', 'FreeText', 'budget')], [el('Find', 'Range', '2-9')]),
    );
    const [review] = children(rest, 'Result');
    expect(childText(review, 'ServerId', 'AirSync')).toBe(ids.get('Budget review 2026'));
    expect(childText(review, 'CollectionId', 'AirSync')).toBe(inbox);
    const properties = child(review, 'Properties')!;
    expect(properties.children.map((p) => `${p.ns}:${p.tag}`)).toEqual([
      'Email:Subject',
      'Email:DateReceived',
      'Email:DisplayTo',
      'Find:DisplayCc',
      'Email:Importance',
      'Email:Read',
      'Email2:IsDraft',
      'Find:Preview',
      'Find:HasAttachments',
      'Email:From',
    ]);
    expect(childText(properties, 'DisplayTo', 'Email')).toBe('Alice Example');
    expect(childText(properties, 'DisplayCc', 'Find')).toBe('Carol Clerk; dave@example.test');
    expect(childText(properties, 'Preview', 'Find')).toBe('Numbers attached');
    expect(childText(properties, 'HasAttachments', 'Find')).toBe('1');
    expect(childText(properties, 'IsDraft', 'Email2')).toBe('0');
    expect(new Date(childText(properties, 'DateReceived', 'Email')!).getTime()).toBe(
      Math.floor(daysAgo(4).getTime() / 1000) * 1000,
    );
  });

  it('searches subfolders with DeepTraversal', async () => {
    expect(
      findSubjects(await findResponse(findRequest([collection(projects), el('Find', 'FreeText', 'budget')]))),
    ).toEqual(['Budget forecast']);
    expect(
      findSubjects(
        await findResponse(
          findRequest([collection(projects), el('Find', 'FreeText', 'budget')], [el('Find', 'DeepTraversal')]),
        ),
      ),
    ).toEqual(['Budget forecast', 'Budget details']);
  });

  it('answers no match with Total 0 and no Result', async () => {
    const response = await findResponse(findRequest([el('Find', 'FreeText', 'xylophone')]));
    expect(response.children.map((c) => c.tag)).toEqual(['Store', 'Status', 'Total']);
    expect(childText(response, 'Total')).toBe('0');
  });

  it('gives ServerIds that Sync and ItemOperations take', async () => {
    const response = await findResponse(findRequest([collection(inbox), el('Find', 'FreeText', 'weekend')]));
    const serverId = childText(children(response, 'Result')[0], 'ServerId', 'AirSync')!;
    expect(serverId).toBe(ids.get('Weekend'));

    await device.syncUntilDone(inbox);
    expect(device.items(inbox).has(serverId)).toBe(true);
    const round = await device.sync(inbox, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', serverId),
          el('AirSync', 'ApplicationData', [el('Email', 'Read', '1')]),
        ]),
      ],
    });
    expect(round.status).toBe(1);
    expect(children(child(round.collection, 'Responses'), 'Change')).toEqual([]);

    const properties = child(await itemOperationsFetch(device, { collectionId: inbox, serverId }), 'Properties');
    expect(itemText(properties, 'Subject', 'Email')).toBe('Weekend');
    expect(itemText(properties, 'Read', 'Email')).toBe('1');
  });

  it('answers Status 3 for an unknown collection, 2 for a request it cannot read, and an empty GAL search', async () => {
    const unknown = await findResponse(findRequest([collection('9999'), el('Find', 'FreeText', 'budget')]));
    expect(childText(unknown, 'Status')).toBe('3');
    expect(children(unknown, 'Result')).toEqual([]);

    const malformed = await device.command('Find', el('Find', 'Find', [el('Find', 'SearchId', 'x')]));
    expect(childText(malformed, 'Status')).toBe('2');
    const badRange = await device.command(
      'Find',
      findRequest([el('Find', 'FreeText', 'budget')], [el('Find', 'Range', 'all')]),
    );
    expect(childText(badRange, 'Status')).toBe('2');

    const gal = await findResponse(
      el('Find', 'Find', [
        el('Find', 'SearchId', 'x'),
        el('Find', 'ExecuteSearch', [
          el('Find', 'GalSearchCriterion', [el('Find', 'Query', [el('Find', 'FreeText', 'ali')])]),
        ]),
      ]),
    );
    expect([childText(gal, 'Store', 'ItemOperations'), childText(gal, 'Status'), childText(gal, 'Total')]).toEqual([
      'GAL',
      '1',
      '0',
    ]);
    expect(textOf(child(gal, 'Status'))).toBe('1');
  });
});
