/**
 * Notes (MS-ASNOTE) against the real Dovecot, through the scripted device: the notes folder holds notes as Apple's
 * Notes writes them over IMAP (X-Uniform-Type-Identifier: com.apple.mail-note, X-Universally-Unique-Identifier,
 * X-Mail-Created-Date, Subject = title, an HTML body whose first line is the title), written here with imapflow as
 * Apple's client does; the device's notes are read back over IMAP the same way.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import PostalMime from 'postal-mime';
import type { ImapFlow } from 'imapflow';
import { FolderType } from '../../../src/backends/types.ts';
import { loadConfig } from '../../../src/config.ts';
import { startIdleWatcher, type IdleWatcher } from '../../../src/push/idle-watcher.ts';
import { child, children, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, withImap } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';
import { mailboxSearchRequest, moveItem } from '../session-steps.ts';

const services = inject('services');
/** Short heartbeats and a watcher that checks non-INBOX folders every second (push/ping.test.ts does the same). */
const ENV = {
  PING_MIN_HEARTBEAT: '1',
  PING_MAX_HEARTBEAT: '10',
  PING_POLL_SECONDS: '1',
  IMAP_MASTER_USER: services.master.user,
  IMAP_MASTER_PASSWORD: services.master.password,
};
let server: TestServer;
let watcher: IdleWatcher;

beforeAll(() => {
  server = testServer(services, ENV);
  watcher = startIdleWatcher({
    state: server.state,
    tenant: 'test',
    imap: services.imap,
    push: loadConfig({
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
      ...ENV,
    }).push,
    checkIntervalMs: 1_000,
    leaseScanMs: 200,
    log: () => undefined,
  });
});
afterAll(async () => {
  await watcher.stop();
});

/** A note as Apple's Notes (macOS Notes 4.x) appends it to the IMAP folder `Notes`. */
function appleNote(o: { uuid: string; title: string; lines: string[]; date: string; created?: string }): string {
  const html = `<html><head></head><body><div>${o.title}</div>${o.lines.map((l) => `<div>${l}</div>`).join('')}</body></html>`;
  return [
    'From: Someone <someone@example.test>',
    'X-Uniform-Type-Identifier: com.apple.mail-note',
    'Content-Type: text/html;',
    '\tcharset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    'Mime-Version: 1.0 (Mac OS X Notes 4.9 \\(1247.4.4\\))',
    `Date: ${o.date}`,
    `X-Mail-Created-Date: ${o.created ?? o.date}`,
    `Subject: ${o.title}`,
    `X-Universally-Unique-Identifier: ${o.uuid}`,
    `Message-Id: <${o.uuid.toLowerCase()}@example.test>`,
    '',
    // quoted-printable: `=C3=A9` is é, a soft line break ends the first line.
    html.replace('é', '=C3=A9').replace('</div><div>', '</div>=\r\n<div>'),
    '',
  ].join('\r\n');
}

/** The messages of the user's notes folder, parsed. */
async function notesOnServer(user: TestUser) {
  return withImap(services, user, async (imap) => {
    const lock = await imap.getMailboxLock('Notes');
    try {
      const out = [];
      for await (const m of imap.fetch('1:*', { uid: true, source: true })) {
        const parsed = await PostalMime.parse(m.source!);
        const header = (name: string) => parsed.headers.find((h) => h.key === name.toLowerCase())?.value;
        out.push({ uid: m.uid, parsed, header, source: m.source!.toString() });
      }
      return out;
    } finally {
      lock.release();
    }
  });
}

function appendNote(user: TestUser, note: string): Promise<unknown> {
  return withImap(services, user, (imap) => imap.append('Notes', note, ['\\Seen']));
}

/** Apple's Notes saving an edit: the new version appended, then the old one expunged. */
async function replaceNote(user: TestUser, uuid: string, note: string): Promise<void> {
  await withImap(services, user, async (imap: ImapFlow) => {
    const lock = await imap.getMailboxLock('Notes');
    try {
      const old = await imap.search({ header: { 'X-Universally-Unique-Identifier': uuid } }, { uid: true });
      await imap.append('Notes', note, ['\\Seen']);
      const uids = old || [];
      if (uids.length > 0) await imap.messageDelete(uids, { uid: true });
    } finally {
      lock.release();
    }
  });
}

const HTML = [el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2')])];
const PLAIN = [el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '1')])];

function bodyData(data: WbxmlElement | undefined): string | undefined {
  return childText(child(data, 'Body', 'AirSyncBase'), 'Data', 'AirSyncBase');
}

async function notesDevice(user: TestUser): Promise<{ device: TestDevice; notes: string }> {
  const device = new TestDevice(server, user);
  await device.folderSync();
  const notes = device.folderByType(FolderType.Notes);
  expect(notes.displayName).toBe('Notes');
  return { device, notes: notes.serverId };
}

function noteAdd(clientId: string, subject: string, text: string, categories: string[] = []): WbxmlElement {
  return el('AirSync', 'Add', [
    el('AirSync', 'ClientId', clientId),
    el('AirSync', 'ApplicationData', [
      el('Notes', 'Subject', subject),
      el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'Data', text)]),
      el('Notes', 'MessageClass', 'IPM.StickyNote'),
      categories.length > 0 &&
        el(
          'Notes',
          'Categories',
          categories.map((c) => el('Notes', 'Category', c)),
        ),
    ]),
  ]);
}

describe('Notes folder', () => {
  it('is offered to 14.0+ devices (type 10), created on first use; a 12.1 device does not create it', async () => {
    const user = createUser(services);
    const old = new TestDevice(server, user, undefined, '12.1');
    await old.folderSync();
    expect([...old.folders.values()].some((f) => f.type === FolderType.Notes)).toBe(false);
    const listed = async () => withImap(services, user, async (imap) => (await imap.list()).map((m) => m.path));
    expect(await listed()).not.toContain('Notes');

    await notesDevice(user);
    expect(await listed()).toContain('Notes');
    // A second device finds it, does not create another.
    const second = await notesDevice(user);
    expect(second.notes).toBeDefined();
  });
});

describe('Notes sync', () => {
  it('sends a note Apple wrote over IMAP with its Subject, Body and LastModifiedDate', async () => {
    const user = createUser(services);
    const { device, notes } = await notesDevice(user);
    await appendNote(
      user,
      appleNote({
        uuid: '8E1B3C0D-2F4A-4B6C-9D8E-1F2A3B4C5D6E',
        title: 'Groceries',
        lines: ['Milk', 'Café beans'],
        date: 'Thu, 3 Dec 2026 10:15:30 +0100',
        created: 'Tue, 1 Dec 2026 08:00:00 +0100',
      }),
    );
    await device.syncUntilDone(notes, { options: HTML });
    const [serverId, data] = [...device.items(notes)][0]!;
    expect(serverId.startsWith(`${notes}:`)).toBe(true);
    expect(itemText(data, 'Subject', 'Notes')).toBe('Groceries');
    expect(itemText(data, 'MessageClass', 'Notes')).toBe('IPM.StickyNote');
    expect(itemText(data, 'LastModifiedDate', 'Notes')).toBe('2026-12-03T09:15:30.000Z');
    expect(childText(child(data, 'Body', 'AirSyncBase'), 'Type', 'AirSyncBase')).toBe('2');
    expect(bodyData(data)).toContain('<div>Café beans</div>');

    // Plain text for a device that asks for it (and the notes folder of a second device).
    const other = await notesDevice(user);
    await other.device.syncUntilDone(other.notes, { options: PLAIN });
    const [plain] = [...other.device.items(other.notes).values()];
    expect(bodyData(plain)?.split('\n').filter(Boolean)).toEqual(['Groceries', 'Milk', 'Café beans']);

    // GetItemEstimate: two more notes by IMAP are two changes to come.
    await appendNote(
      user,
      appleNote({
        uuid: 'A0000000-0000-4000-8000-000000000001',
        title: 'One',
        lines: [],
        date: 'Fri, 4 Dec 2026 09:00:00 +0000',
      }),
    );
    await appendNote(
      user,
      appleNote({
        uuid: 'A0000000-0000-4000-8000-000000000002',
        title: 'Two',
        lines: [],
        date: 'Fri, 4 Dec 2026 09:01:00 +0000',
      }),
    );
    const estimate = await device.command(
      'GetItemEstimate',
      el('GetItemEstimate', 'GetItemEstimate', [
        el('GetItemEstimate', 'Collections', [
          el('GetItemEstimate', 'Collection', [
            el('AirSync', 'SyncKey', device.collections.get(notes)!.syncKey),
            el('GetItemEstimate', 'CollectionId', notes),
          ]),
        ]),
      ]),
    );
    const response = children(estimate, 'Response')[0];
    expect(childText(response, 'Status')).toBe('1');
    expect(childText(child(response, 'Collection'), 'Estimate')).toBe('2');
    expect((await device.sync(notes, { options: HTML })).added).toHaveLength(2);

    // ItemOperations Fetch by CollectionId + ServerId: the note as Sync sends it.
    const fetched = await device.command(
      'ItemOperations',
      el('ItemOperations', 'ItemOperations', [
        el('ItemOperations', 'Fetch', [
          el('ItemOperations', 'Store', 'Mailbox'),
          el('AirSync', 'CollectionId', notes),
          el('AirSync', 'ServerId', serverId),
          el('ItemOperations', 'Options', PLAIN),
        ]),
      ]),
    );
    const fetch = child(child(fetched, 'Response'), 'Fetch');
    expect(childText(fetch, 'Status')).toBe('1');
    expect(childText(fetch, 'Class', 'AirSync')).toBe('Notes');
    const properties = child(fetch, 'Properties');
    expect(itemText(properties, 'Subject', 'Notes')).toBe('Groceries');
    expect(bodyData(properties)).toContain('Café beans');
  });

  it('writes a device Add as Apple writes notes, once (even resent), and does not echo it', async () => {
    const user = createUser(services);
    const { device, notes } = await notesDevice(user);
    await device.syncUntilDone(notes);
    const add = [noteAdd('n-1', 'Packing list', 'Passport\n\nCharger & cable', ['Travel'])];
    const lost = await device.sync(notes, { commands: add, lose: true });
    const again = await device.sync(notes, { commands: add });
    expect(again.addResponses).toEqual(lost.addResponses);
    expect(again.addResponses[0]).toMatchObject({ clientId: 'n-1', status: 1 });

    const [stored, ...more] = await notesOnServer(user);
    expect(more).toEqual([]);
    expect(stored!.header('x-uniform-type-identifier')).toBe('com.apple.mail-note');
    expect(stored!.header('x-universally-unique-identifier')).toMatch(
      /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/,
    );
    expect(Number.isNaN(Date.parse(stored!.header('x-mail-created-date') ?? ''))).toBe(false);
    expect(stored!.parsed.subject).toBe('Packing list');
    expect(stored!.parsed.date).toBeDefined();
    expect(stored!.header('keywords')).toBe('Travel');
    expect(stored!.source).toMatch(/^Content-Type: text\/html; charset=utf-8/im);
    // The title as the body's first line, a div per line, as Apple's Notes shows it.
    expect(stored!.parsed.html).toContain(
      '<body><div>Packing list</div><div>Passport</div><div><br></div><div>Charger &amp; cable</div></body>',
    );
    expect(stored!.parsed.text).toBeUndefined();

    const quiet = await device.sync(notes);
    expect([...quiet.added, ...quiet.changed]).toEqual([]);
    // Another device gets it with its Categories.
    const other = await notesDevice(user);
    await other.device.syncUntilDone(other.notes);
    const [data] = [...other.device.items(other.notes).values()];
    expect(itemText(data, 'Subject', 'Notes')).toBe('Packing list');
    expect(children(child(data, 'Categories', 'Notes'), 'Category', 'Notes').map((c) => c.text)).toEqual(['Travel']);
  });

  it('takes Changes and Deletes both ways, the ServerId staying with the UUID', async () => {
    const user = createUser(services);
    const uuid = '5F4E3D2C-1B0A-4F9E-8D7C-6B5A49382716';
    const date = 'Mon, 7 Dec 2026 09:00:00 +0000';
    await withImap(services, user, (imap) => imap.mailboxCreate('Notes'));
    await appendNote(user, appleNote({ uuid, title: 'Ideas', lines: ['first'], date }));
    await appendNote(
      user,
      appleNote({ uuid: 'B0000000-0000-4000-8000-00000000000B', title: 'Drop me', lines: [], date }),
    );
    const { device, notes } = await notesDevice(user);
    await device.syncUntilDone(notes, { options: HTML });
    const idOf = (subject: string) =>
      [...device.items(notes)].find(([, d]) => itemText(d, 'Subject', 'Notes') === subject)?.[0];
    const ideas = idOf('Ideas')!;

    // Apple edits the note: a new message with the same UUID replaces the old one; the device gets a Change.
    await replaceNote(
      user,
      uuid,
      appleNote({
        uuid,
        title: 'Ideas',
        lines: ['first', 'second'],
        date: 'Mon, 7 Dec 2026 10:00:00 +0000',
        created: date,
      }),
    );
    const edited = await device.sync(notes);
    expect(edited).toMatchObject({ added: [], deleted: [], changed: [ideas] });
    expect(bodyData(device.items(notes).get(ideas))).toContain('<div>second</div>');

    // The device changes it: one message for the UUID, the new text, the created date kept.
    await device.sync(notes, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', ideas),
          el('AirSync', 'ApplicationData', [
            el('Notes', 'Subject', 'Ideas (edited)'),
            el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'Data', 'third')]),
          ]),
        ]),
      ],
    });
    const afterChange = (await notesOnServer(user)).filter((n) => n.header('x-universally-unique-identifier') === uuid);
    expect(afterChange).toHaveLength(1);
    expect(afterChange[0]!.parsed.subject).toBe('Ideas (edited)');
    expect(afterChange[0]!.parsed.html).toContain('<div>Ideas (edited)</div><div>third</div>');
    expect(afterChange[0]!.header('x-mail-created-date')).toBe(date);
    const quiet = await device.sync(notes);
    expect([...quiet.added, ...quiet.changed, ...quiet.deleted]).toEqual([]);

    // The device deletes one; Apple deletes the other: both gone on the other side.
    const drop = idOf('Drop me')!;
    await device.sync(notes, { commands: [el('AirSync', 'Delete', [el('AirSync', 'ServerId', drop)])] });
    expect((await notesOnServer(user)).map((n) => n.parsed.subject)).toEqual(['Ideas (edited)']);
    await withImap(services, user, async (imap) => {
      const lock = await imap.getMailboxLock('Notes');
      try {
        await imap.messageDelete('1:*');
      } finally {
        lock.release();
      }
    });
    expect((await device.sync(notes)).deleted).toEqual([ideas]);
  });
});

describe('Notes push', () => {
  it('a note appended over IMAP ends a Ping on the notes folder with Status 2', async () => {
    const user = createUser(services);
    const { device, notes } = await notesDevice(user);
    await device.syncUntilDone(notes);
    const appended = new Promise<number>((resolve, reject) =>
      setTimeout(
        () =>
          appendNote(
            user,
            appleNote({
              uuid: 'C0000000-0000-4000-8000-00000000000C',
              title: 'Pushed',
              lines: [],
              date: 'Mon, 7 Dec 2026 11:00:00 +0000',
            }),
          ).then(() => resolve(performance.now()), reject),
        1_500,
      ),
    );
    const ping = await device.command(
      'Ping',
      el('Ping', 'Ping', [
        el('Ping', 'HeartbeatInterval', '10'),
        el('Ping', 'Folders', [el('Ping', 'Folder', [el('Ping', 'Id', notes), el('Ping', 'Class', 'Notes')])]),
      ]),
    );
    const answered = performance.now();
    // Woken by the append, not answered before it.
    expect(answered).toBeGreaterThan(await appended);
    expect(childText(ping, 'Status')).toBe('2');
    expect(children(child(ping, 'Folders'), 'Folder').map((f) => f.text)).toEqual([notes]);
    expect((await device.sync(notes)).added).toHaveLength(1);
  });
});

describe('Notes MoveItems and Search', () => {
  /** MoveItems of one item: its Status. */
  async function move(device: TestDevice, srcMsgId: string, srcFldId: string, dstFldId: string): Promise<string> {
    return childText(await moveItem(device, srcMsgId, srcFldId, dstFldId), 'Status', 'Move')!;
  }

  /** Search of the Mailbox store, in the shape of MS-ASCMD §4.12.1.1 (And: Class or CollectionId, FreeText). */
  async function search(device: TestDevice, conditions: WbxmlElement[], range = '0-9') {
    const answer = await device.command(
      'Search',
      mailboxSearchRequest(conditions, [el('Search', 'Range', range), ...PLAIN]),
    );
    const store = child(child(answer, 'Response', 'Search'), 'Store', 'Search');
    const results = children(store, 'Result', 'Search').filter((r) => r.children.length > 0);
    return {
      status: childText(store, 'Status', 'Search'),
      total: childText(store, 'Total', 'Search'),
      range: childText(store, 'Range', 'Search'),
      results: results.map((r) => ({
        class: childText(r, 'Class', 'AirSync'),
        longId: childText(r, 'LongId', 'Search')!,
        collectionId: childText(r, 'CollectionId', 'AirSync'),
        subject: itemText(child(r, 'Properties', 'Search'), 'Subject', 'Notes'),
        body: bodyData(child(r, 'Properties', 'Search')),
      })),
    };
  }

  it('moves a note only among notes folders: to a mail folder, or mail to the notes folder, is Status 5; nothing moves', async () => {
    const user = createUser(services);
    await withImap(services, user, (imap) => imap.mailboxCreate('Notes'));
    await appendNote(
      user,
      appleNote({
        uuid: 'D0000000-0000-4000-8000-00000000000D',
        title: 'Stay here',
        lines: [],
        date: 'Mon, 7 Dec 2026 12:00:00 +0000',
      }),
    );
    await withImap(services, user, (imap) =>
      imap.append('INBOX', 'Subject: A mail\r\nFrom: a@example.test\r\n\r\nbody\r\n'),
    );
    const { device, notes } = await notesDevice(user);
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(notes);
    await device.syncUntilDone(inbox);
    const [note] = [...device.items(notes).keys()];
    const [mail] = [...device.items(inbox).keys()];

    expect(await move(device, note!, notes, inbox)).toBe('5');
    expect(await move(device, mail!, inbox, notes)).toBe('5');
    expect(await move(device, note!, notes, notes)).toBe('4');
    // Both still where they were, on the server and for the device.
    expect((await notesOnServer(user)).map((n) => n.parsed.subject)).toEqual(['Stay here']);
    const quiet = await device.sync(notes);
    expect([...quiet.added, ...quiet.deleted]).toEqual([]);
    expect([...(await device.sync(inbox)).deleted]).toEqual([]);
  });

  it('finds notes by Class Notes or the notes folder and FreeText (14.0+), fetchable by LongId; mail searches find no notes', async () => {
    const user = createUser(services);
    await withImap(services, user, (imap) => imap.mailboxCreate('Notes'));
    const notesText = [
      { uuid: 'E0000000-0000-4000-8000-000000000001', title: 'Bike repair', lines: ['new chain'], day: 1 },
      { uuid: 'E0000000-0000-4000-8000-000000000002', title: 'Garden', lines: ['chain saw oil'], day: 2 },
      { uuid: 'E0000000-0000-4000-8000-000000000003', title: 'Books', lines: ['Dune'], day: 3 },
    ];
    for (const n of notesText)
      await appendNote(user, appleNote({ ...n, date: `Tue, ${n.day} Dec 2026 09:00:00 +0000` }));
    // A mail with the same word: a mail search finds it, a notes search does not.
    await withImap(services, user, (imap) =>
      imap.append('INBOX', 'Subject: chain letter\r\nFrom: a@example.test\r\n\r\nforward this chain\r\n'),
    );
    const { device, notes } = await notesDevice(user);
    const inbox = device.folderByType(FolderType.Inbox).serverId;

    const byClass = await search(device, [el('AirSync', 'Class', 'Notes'), el('Search', 'FreeText', 'chain')]);
    expect(byClass.status).toBe('1');
    expect(byClass.total).toBe('2');
    expect(byClass.range).toBe('0-1');
    expect(byClass.results.map((r) => [r.class, r.collectionId, r.subject])).toEqual([
      ['Notes', notes, 'Garden'],
      ['Notes', notes, 'Bike repair'],
    ]);
    expect(byClass.results[0]!.body?.split('\n').filter(Boolean)).toEqual(['Garden', 'chain saw oil']);

    // The LongId is the note's ServerId: Sync hands out the same, and ItemOperations Fetch takes it.
    await device.syncUntilDone(notes);
    const garden = [...device.items(notes)].find(([, d]) => itemText(d, 'Subject', 'Notes') === 'Garden')![0];
    expect(byClass.results[0]!.longId).toBe(garden);
    const fetched = await device.command(
      'ItemOperations',
      el('ItemOperations', 'ItemOperations', [
        el('ItemOperations', 'Fetch', [
          el('ItemOperations', 'Store', 'Mailbox'),
          el('Search', 'LongId', byClass.results[0]!.longId),
          el('ItemOperations', 'Options', PLAIN),
        ]),
      ]),
    );
    const fetch = child(child(fetched, 'Response'), 'Fetch');
    expect(childText(fetch, 'Status')).toBe('1');
    expect(childText(fetch, 'Class', 'AirSync')).toBe('Notes');
    expect(itemText(child(fetch, 'Properties'), 'Subject', 'Notes')).toBe('Garden');

    // The notes folder as the CollectionId; a Range past the first result; no FreeText: every note.
    const byFolder = await search(
      device,
      [el('AirSync', 'CollectionId', notes), el('Search', 'FreeText', 'chain')],
      '1-5',
    );
    expect([byFolder.total, byFolder.range, byFolder.results.map((r) => r.subject)]).toEqual([
      '2',
      '1-1',
      ['Bike repair'],
    ]);
    const all = await search(device, [el('AirSync', 'Class', 'Notes'), el('AirSync', 'CollectionId', notes)]);
    expect(all.results.map((r) => r.subject)).toEqual(['Books', 'Garden', 'Bike repair']);

    // A mail search (Class Email, or the Inbox) finds the mail and no note.
    const mail = await search(device, [el('AirSync', 'Class', 'Email'), el('Search', 'FreeText', 'chain')]);
    expect(mail.results.map((r) => [r.class, r.collectionId])).toEqual([['Email', inbox]]);
    // DateReceived is not a note's: a date bound with Class Notes is an invalid query.
    const dated = await search(device, [
      el('AirSync', 'Class', 'Notes'),
      el('Search', 'GreaterThan', [el('Email', 'DateReceived'), el('Search', 'Value', '2026-01-01T00:00:00.000Z')]),
    ]);
    expect(dated.status).toBe('2');

    // A 12.1 device has no Notes class (MS-ASCMD §2.2.3.27.5): no results.
    const old = new TestDevice(server, user, undefined, '12.1');
    await old.folderSync();
    expect((await search(old, [el('AirSync', 'Class', 'Notes'), el('Search', 'FreeText', 'chain')])).results).toEqual(
      [],
    );
  });
});
