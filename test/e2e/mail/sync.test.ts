/**
 * Sync of email against the real Dovecot, through the scripted device: windows, incremental changes both ways,
 * lost responses, empty and partial requests, and the protocol's error answers.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { child, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, readyDevice, subjects, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import {
  createUser,
  listMessages,
  sampleMessages,
  seedMailbox,
  withImap,
  type SeedMessage,
} from '../../services/seed.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

function numbered(count: number, start = 0): SeedMessage[] {
  return Array.from({ length: count }, (_, i) => ({
    message: {
      from: 'Bob <bob@example.test>',
      to: 'Alice <alice@example.test>',
      subject: `Message ${start + i}`,
      text: `Body ${start + i}\n`,
    },
    internalDate: new Date(Date.now() - (count - i) * 60_000),
  }));
}

const htmlPreference = [
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2'), el('AirSyncBase', 'TruncationSize', '5120')]),
];

describe('Sync of an email folder', () => {
  it('starts with SyncKey 0 (no items), then delivers the folder in windows with MoreAvailable', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', numbered(23));
    const { device, inbox } = await readyDevice(server, user);

    const init = await device.sync(inbox, { options: htmlPreference });
    expect(init.status).toBe(1);
    expect(init.added).toEqual([]);
    expect(childText(init.collection, 'SyncKey')).toMatch(/^\{.+\}1$/);

    const rounds = await device.syncUntilDone(inbox, { windowSize: 10 });
    expect(rounds.map((r) => r.added.length)).toEqual([10, 10, 3]);
    expect(rounds.map((r) => r.moreAvailable)).toEqual([true, true, false]);
    expect(device.items(inbox).size).toBe(23);
    expect(subjects(device, inbox)).toEqual(Array.from({ length: 23 }, (_, i) => `Message ${i}`).sort());
    // Newest first: the first window holds the last ten appended.
    expect(rounds[0]!.added.map((id) => Number(id.split(':')[1]))).toEqual(
      [...rounds[0]!.added.map((id) => Number(id.split(':')[1]))].sort((a, b) => b - a),
    );

    const quiet = await device.sync(inbox);
    expect(quiet.added).toEqual([]);
    expect(quiet.status).toBe(1);
  });

  it('sends the email properties a phone shows', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', sampleMessages({ to: user.email }));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox, { options: htmlPreference });
    await device.syncUntilDone(inbox);
    const report = [...device.items(inbox).values()].find(
      (d) => itemText(d, 'Subject', 'Email') === 'Quarterly report',
    )!;
    expect(itemText(report, 'From', 'Email')).toContain('bob@example.test');
    expect(itemText(report, 'Read', 'Email')).toBe('1');
    expect(itemText(report, 'Importance', 'Email')).toBe('2');
    const body = report.children.find((c) => c.tag === 'Body')!;
    expect(childText(body, 'Type', 'AirSyncBase')).toBe('2');
    expect(childText(body, 'Data', 'AirSyncBase')).toContain('Please find the report attached.');
    const attachments = report.children.find((c) => c.tag === 'Attachments');
    expect(attachments?.children.map((a) => childText(a, 'DisplayName', 'AirSyncBase'))).toContain('report-Q1.pdf');
    const german = [...device.items(inbox).values()].find((d) => itemText(d, 'Subject', 'Email')?.startsWith('Grüße'));
    expect(itemText(german, 'Subject', 'Email')).toBe('Grüße aus München – Übersicht für März 📅');
  });

  it('honours MIMESupport with a MIME BodyPreference, and BodyPartPreference (14.1)', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', sampleMessages({ to: user.email }));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox, {
      options: [
        el('AirSync', 'MIMESupport', '2'),
        el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '4')]),
        el('AirSyncBase', 'BodyPartPreference', [
          el('AirSyncBase', 'Type', '2'),
          el('AirSyncBase', 'TruncationSize', '1000'),
        ]),
      ],
    });
    await device.syncUntilDone(inbox);
    const digest = [...device.items(inbox).values()].find(
      (d) => itemText(d, 'Subject', 'Email') === 'Your weekly digest',
    )!;
    const body = digest.children.find((c) => c.tag === 'Body')!;
    expect(childText(body, 'Type', 'AirSyncBase')).toBe('4');
    expect(childText(body, 'Data', 'AirSyncBase')).toMatch(/^[\s\S]*Subject: Your weekly digest/m);
    const part = digest.children.find((c) => c.tag === 'BodyPart');
    expect(childText(part, 'Data', 'AirSyncBase')).toContain('<h1>Top stories</h1>');
  });

  it('reports what another IMAP client did: new mail, a flag change, an expunge', async () => {
    const user = createUser(services);
    const seeded = await seedMailbox(services, user, 'INBOX', numbered(3));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);
    await device.syncUntilDone(inbox);

    const [added] = await seedMailbox(services, user, 'INBOX', numbered(1, 100));
    await withImap(services, user, async (imap) => {
      await imap.mailboxOpen('INBOX');
      await imap.messageFlagsAdd(String(seeded[0]!.uid), ['\\Seen'], { uid: true });
      await imap.messageDelete(String(seeded[1]!.uid), { uid: true });
    });
    const round = await device.sync(inbox);
    expect(round.added).toEqual([`${inbox}:${added!.uid}`]);
    expect(round.changed).toEqual([`${inbox}:${seeded[0]!.uid}`]);
    expect(round.deleted).toEqual([`${inbox}:${seeded[1]!.uid}`]);
    expect(itemText(device.items(inbox).get(`${inbox}:${seeded[0]!.uid}`), 'Read', 'Email')).toBe('1');
    expect(device.items(inbox).size).toBe(3);
  });

  // New mail alone is found from the UID range after the old UIDNEXT (no modseq scan); anything else mixed in must
  // still be found: each round adds mail together with one other kind of change.
  it('finds every change that comes with new mail, round after round', async () => {
    const user = createUser(services);
    const seeded = await seedMailbox(services, user, 'INBOX', numbered(4));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);
    await device.syncUntilDone(inbox);
    const id = (uid: number | undefined): string => `${inbox}:${uid}`;
    const edit = (fn: (imap: Parameters<Parameters<typeof withImap>[2]>[0]) => Promise<unknown>): Promise<unknown> =>
      withImap(services, user, async (imap) => {
        await imap.mailboxOpen('INBOX');
        await fn(imap);
      });

    const [first] = await seedMailbox(services, user, 'INBOX', numbered(1, 100));
    let round = await device.sync(inbox);
    expect([round.added, round.changed, round.deleted]).toEqual([[id(first!.uid)], [], []]);

    const [second] = await seedMailbox(services, user, 'INBOX', numbered(1, 101));
    await edit((imap) => imap.messageFlagsAdd(String(seeded[0]!.uid), ['\\Flagged'], { uid: true }));
    round = await device.sync(inbox);
    expect([round.added, round.changed, round.deleted]).toEqual([[id(second!.uid)], [id(seeded[0]!.uid)], []]);

    // The count stays the same (one in, one out): only the modseqs tell.
    await edit((imap) => imap.messageDelete(String(seeded[1]!.uid), { uid: true }));
    const [third] = await seedMailbox(services, user, 'INBOX', numbered(1, 102));
    round = await device.sync(inbox);
    expect([round.added, round.changed, round.deleted]).toEqual([[id(third!.uid)], [], [id(seeded[1]!.uid)]]);

    // New mail that was read before the device looked: one message, two modseqs.
    const [fourth] = await seedMailbox(services, user, 'INBOX', numbered(1, 103));
    await edit((imap) => imap.messageFlagsAdd(String(fourth!.uid), ['\\Seen'], { uid: true }));
    round = await device.sync(inbox);
    expect([round.added, round.changed, round.deleted]).toEqual([[id(fourth!.uid)], [], []]);
    expect(itemText(device.items(inbox).get(id(fourth!.uid)), 'Read', 'Email')).toBe('1');

    const more = await seedMailbox(services, user, 'INBOX', numbered(2, 104));
    round = await device.sync(inbox);
    expect(round.added.sort()).toEqual(more.map((m) => id(m.uid)).sort());
    expect(device.items(inbox).size).toBe(4 - 1 + 6);
  });

  it('applies Read, Flag and Delete from the device to IMAP, without echoing them back', async () => {
    const user = createUser(services);
    const seeded = await seedMailbox(services, user, 'INBOX', numbered(3));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);
    await device.syncUntilDone(inbox);
    const [a, b, c] = seeded.map((m) => `${inbox}:${m.uid}`);

    const round = await device.sync(inbox, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', a!),
          el('AirSync', 'ApplicationData', [el('Email', 'Read', '1')]),
        ]),
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', b!),
          el('AirSync', 'ApplicationData', [
            el('Email', 'Flag', [el('Email', 'Status', '2'), el('Email', 'FlagType', 'Flag for follow up')]),
          ]),
        ]),
        el('AirSync', 'Delete', [el('AirSync', 'ServerId', c!)]),
      ],
    });
    expect(round.status).toBe(1);
    expect(round.changed).toEqual([]);
    const inboxNow = await listMessages(services, user, 'INBOX');
    expect(inboxNow.find((m) => m.uid === seeded[0]!.uid)?.flags).toContain('\\Seen');
    expect(inboxNow.find((m) => m.uid === seeded[1]!.uid)?.flags).toContain('\\Flagged');
    expect(inboxNow.some((m) => m.uid === seeded[2]!.uid)).toBe(false);
    // DeletesAsMoves (the default): the message is in the Trash.
    expect((await listMessages(services, user, 'Trash')).map((m) => m.subject)).toEqual(['Message 2']);

    const next = await device.sync(inbox);
    expect([...next.added, ...next.changed, ...next.deleted]).toEqual([]);
  });

  it('expunges instead when DeletesAsMoves is 0', async () => {
    const user = createUser(services);
    const seeded = await seedMailbox(services, user, 'INBOX', numbered(2));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);
    await device.syncUntilDone(inbox);
    await device.sync(inbox, {
      deletesAsMoves: false,
      commands: [el('AirSync', 'Delete', [el('AirSync', 'ServerId', `${inbox}:${seeded[0]!.uid}`)])],
    });
    expect((await listMessages(services, user, 'INBOX')).length).toBe(1);
    expect((await listMessages(services, user, 'Trash')).length).toBe(0);
  });

  it('answers Status 8 for a change to an item the device cannot have', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', numbered(1));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);
    await device.syncUntilDone(inbox);
    const round = await device.sync(inbox, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', `${inbox}:99999`),
          el('AirSync', 'ApplicationData', [el('Email', 'Read', '1')]),
        ]),
      ],
    });
    const response = child(child(round.collection, 'Responses'), 'Change');
    expect(childText(response, 'Status')).toBe('8');
  });

  it('server wins a conflict by default: Status 7 and the server version as a Change', async () => {
    const user = createUser(services);
    const [m] = await seedMailbox(services, user, 'INBOX', numbered(1));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);
    await device.syncUntilDone(inbox);
    await withImap(services, user, async (imap) => {
      await imap.mailboxOpen('INBOX');
      await imap.messageFlagsAdd(String(m!.uid), ['\\Flagged'], { uid: true });
    });
    const id = `${inbox}:${m!.uid}`;
    const round = await device.sync(inbox, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', id),
          el('AirSync', 'ApplicationData', [el('Email', 'Read', '1')]),
        ]),
      ],
    });
    expect(childText(child(child(round.collection, 'Responses'), 'Change'), 'Status')).toBe('7');
    expect(round.changed).toEqual([id]);
    expect((await listMessages(services, user, 'INBOX'))[0]?.flags).not.toContain('\\Seen');
  });
});

describe('lost responses', () => {
  it('resending the previous key returns the same items once, and applies the device commands once', async () => {
    const user = createUser(services);
    const seeded = await seedMailbox(services, user, 'INBOX', numbered(6));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);

    const lost = await device.sync(inbox, { windowSize: 4, lose: true });
    const again = await device.sync(inbox, { windowSize: 4 });
    expect(again.added).toEqual(lost.added);
    expect(again.response.bytes).toEqual(lost.response.bytes);
    await device.syncUntilDone(inbox, { windowSize: 4 });
    expect(device.items(inbox).size).toBe(6);

    // A delete whose answer is lost: resent, still one message in the Trash, nothing else gone.
    const del = [el('AirSync', 'Delete', [el('AirSync', 'ServerId', `${inbox}:${seeded[0]!.uid}`)])];
    await device.sync(inbox, { commands: del, lose: true });
    const resent = await device.sync(inbox, { commands: del });
    expect(resent.status).toBe(1);
    expect((await listMessages(services, user, 'INBOX')).length).toBe(5);
    expect((await listMessages(services, user, 'Trash')).length).toBe(1);

    // A flag change whose answer is lost.
    const change = [
      el('AirSync', 'Change', [
        el('AirSync', 'ServerId', `${inbox}:${seeded[1]!.uid}`),
        el('AirSync', 'ApplicationData', [el('Email', 'Read', '1')]),
      ]),
    ];
    await device.sync(inbox, { commands: change, lose: true });
    await device.sync(inbox, { commands: change });
    expect((await listMessages(services, user, 'INBOX')).find((x) => x.uid === seeded[1]!.uid)?.flags).toContain(
      '\\Seen',
    );
    expect(device.items(inbox).size).toBe(5);
    const next = await device.sync(inbox);
    expect([...next.added, ...next.changed, ...next.deleted]).toEqual([]);
  });

  it('a lost answer to an Add (email folders take none) gives the same answer again and creates nothing', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', numbered(1));
    const { device, inbox } = await readyDevice(server, user);
    await device.syncUntilDone(inbox);
    const add = [
      el('AirSync', 'Add', [
        el('AirSync', 'ClientId', 'c-1'),
        el('AirSync', 'ApplicationData', [el('Email', 'Subject', 'From the phone')]),
      ]),
    ];
    const lost = await device.sync(inbox, { commands: add, lose: true });
    const again = await device.sync(inbox, { commands: add });
    expect(again.response.bytes).toEqual(lost.response.bytes);
    expect(again.addResponses).toEqual([{ clientId: 'c-1', serverId: undefined, status: 6 }]);
    expect(await listMessages(services, user, 'INBOX')).toHaveLength(1);
    expect(device.items(inbox).size).toBe(1);
  });

  it('answers Status 3 to a key that was never given, and the device starts over', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', numbered(2));
    const { device, inbox } = await readyDevice(server, user);
    await device.sync(inbox);
    device.collections.get(inbox)!.syncKey = '{00000000-0000-0000-0000-000000000000}5';
    expect((await device.sync(inbox)).status).toBe(3);
    device.collections.delete(inbox);
    await device.syncUntilDone(inbox);
    expect(device.items(inbox).size).toBe(2);
  });

  it('answers Status 3 when the folder was recreated (UIDVALIDITY changed)', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'Archive', numbered(2));
    const device = new TestDevice(server, user);
    await device.folderSync();
    const archive = device.folderByName('Archive').serverId;
    await device.syncUntilDone(archive);
    await withImap(services, user, async (imap) => {
      await imap.mailboxDelete('Archive');
      await imap.mailboxCreate('Archive');
    });
    expect((await device.sync(archive)).status).toBe(3);
  });
});

describe('request forms and limits', () => {
  it('answers an empty Sync with Status 13 until a full one was cached, then repeats the cached request', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', numbered(2));
    const { device, inbox } = await readyDevice(server, user);
    expect(childText((await device.send('Sync')).body, 'Status')).toBe('13');
    await device.sync(inbox);
    await device.syncUntilDone(inbox);
    await seedMailbox(services, user, 'INBOX', numbered(1, 50));
    const empty = await device.send('Sync');
    const collection = child(child(empty.body, 'Collections'), 'Collection');
    expect(childText(collection, 'CollectionId')).toBe(inbox);
    expect(child(collection, 'Commands')?.children.filter((c) => c.tag === 'Add')).toHaveLength(1);
  });

  it('merges a Partial Sync with the cached collections', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'Work', numbered(1));
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    const work = device.folderByName('Work').serverId;
    await device.sync(inbox);
    await device.sync(work);
    const both = el('AirSync', 'Sync', [
      el(
        'AirSync',
        'Collections',
        [inbox, work].map((id) =>
          el('AirSync', 'Collection', [
            el('AirSync', 'SyncKey', device.collections.get(id)!.syncKey),
            el('AirSync', 'CollectionId', id),
          ]),
        ),
      ),
    ]);
    const full = await device.send('Sync', both);
    const workKey = childText(
      child(full.body, 'Collections')?.children.find((c) => childText(c, 'CollectionId') === work),
      'SyncKey',
    )!;
    const partial = el('AirSync', 'Sync', [
      el('AirSync', 'Collections', [
        el('AirSync', 'Collection', [el('AirSync', 'SyncKey', workKey), el('AirSync', 'CollectionId', work)]),
      ]),
      el('AirSync', 'Partial'),
    ]);
    const res = await device.send('Sync', partial);
    const ids = (child(res.body, 'Collections')?.children ?? []).map((c) => childText(c, 'CollectionId'));
    expect(ids.sort()).toEqual([inbox, work].sort());
  });

  it('ends a window before it holds more than 32 MiB of messages (MAX_RESPONSE_BYTES), and sends the rest in the next ones', async () => {
    const user = createUser(services);
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    await seedMailbox(
      services,
      user,
      'INBOX',
      Array.from({ length: 12 }, (_, i) => ({
        message: {
          from: 'Bob <bob@example.test>',
          to: user.email,
          subject: `Scan ${i}`,
          text: 'Attached.\n',
          attachments: [{ filename: `scan${i}.bin`, contentType: 'application/octet-stream', content: big }],
        },
      })),
    );
    const { device, inbox } = await readyDevice(server, user);
    // As MIME (Type 4), which reads each message whole; in parts (HTML) a message reads a few KB, its attachment not.
    const mime = [
      el('AirSync', 'MIMESupport', '2'),
      el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '4')]),
    ];
    await device.sync(inbox, { options: mime });
    const rounds = await device.syncUntilDone(inbox, { windowSize: 50, options: mime });
    // Five messages of ~5.5 MB of source fit in 32 MiB, a sixth would not: five, five, then the last two.
    expect(rounds.map((r) => [r.added.length, r.moreAvailable])).toEqual([
      [5, true],
      [5, true],
      [2, false],
    ]);
    expect(device.items(inbox).size).toBe(12);
  });

  it('answers Status 14 with the Limit for a Wait or HeartbeatInterval out of range, and 4 for both', async () => {
    const user = createUser(services);
    const { device, inbox } = await readyDevice(server, user);
    const withTiming = (timing: WbxmlElement[]): WbxmlElement =>
      el('AirSync', 'Sync', [
        el('AirSync', 'Collections', [
          el('AirSync', 'Collection', [el('AirSync', 'SyncKey', '0'), el('AirSync', 'CollectionId', inbox)]),
        ]),
        ...timing,
      ]);
    const high = await device.send('Sync', withTiming([el('AirSync', 'HeartbeatInterval', '4000')]));
    expect(childText(high.body, 'Status')).toBe('14');
    expect(childText(high.body, 'Limit')).toBe('3540');
    const low = await device.send('Sync', withTiming([el('AirSync', 'Wait', '0')]));
    expect(childText(low.body, 'Limit')).toBe('1');
    const both = await device.send(
      'Sync',
      withTiming([el('AirSync', 'Wait', '5'), el('AirSync', 'HeartbeatInterval', '300')]),
    );
    expect(childText(both.body, 'Status')).toBe('4');
  });

  it('answers Status 12 when another client deleted the folder since the last FolderSync', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'Gone soon', numbered(1));
    const device = new TestDevice(server, user);
    await device.folderSync();
    const gone = device.folderByName('Gone soon').serverId;
    await device.syncUntilDone(gone);
    await withImap(services, user, (imap) => imap.mailboxDelete('Gone soon'));
    expect((await device.sync(gone)).status).toBe(12);
  });

  it('answers Status 12 for a collection the hierarchy does not have', async () => {
    const user = createUser(services);
    const { device } = await readyDevice(server, user);
    expect((await device.sync('9999')).status).toBe(12);
  });

  it('answers Status 4 to commands sent with SyncKey 0', async () => {
    const user = createUser(services);
    const { device, inbox } = await readyDevice(server, user);
    const round = await device.sync(inbox, {
      commands: [el('AirSync', 'Delete', [el('AirSync', 'ServerId', `${inbox}:1`)])],
    });
    expect(round.status).toBe(4);
  });

  it('answers 400 to a Sync body that is not WBXML', async () => {
    const user = createUser(services);
    const { device } = await readyDevice(server, user);
    expect((await device.send('Sync', new Uint8Array([0x03, 0x01, 0x6a, 0x00, 0x45, 0x5c, 0x4f]))).status).toBe(400);
  });
});
