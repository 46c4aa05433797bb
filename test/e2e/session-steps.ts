/**
 * The steps of the device session every runtime must pass (issue: one end-to-end session per runtime): seed the
 * Inbox, fetch an attachment as multipart, wait in Ping for a new message, send a message, move one. Each step
 * drives a TestDevice through whatever server it was given and checks the answer; the runtime tests call them in
 * order and add their runtime's own checks.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import PostalMime from 'postal-mime';
import { expect } from 'vitest';
import { child, children, childText, el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import { itemText, type TestDevice } from '../device/device.ts';
import { createUser, listMessages, makeMessage, seedMailbox, withImap } from '../services/seed.ts';
import type { TestServices, TestUser } from '../services/types.ts';
import { compose, waitForStored } from './mail/compose-helpers.ts';

/** Every byte value, in an order no text encoding keeps, and some random ones. */
export const BINARY = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i)), randomBytes(2000)]);

/** Two messages in the Inbox: one with BINARY attached as scan.bin, one plain. */
export async function seedInbox(services: TestServices, user: TestUser): Promise<void> {
  await seedMailbox(services, user, 'INBOX', [
    {
      message: {
        from: 'Bob <bob@example.test>',
        to: user.email,
        subject: 'Scan attached',
        text: 'The scan.\n',
        attachments: [{ filename: 'scan.bin', contentType: 'application/octet-stream', content: BINARY }],
      },
    },
    { message: { from: 'Carol <carol@example.test>', to: user.email, subject: 'Plain note', text: 'Just text.\n' } },
  ]);
}

export function subjectsOf(device: TestDevice, collectionId: string): (string | undefined)[] {
  return [...device.items(collectionId).values()].map((d) => itemText(d, 'Subject', 'Email')).sort();
}

/** ServerId of the item with this Subject. */
export function itemWithSubject(device: TestDevice, collectionId: string, subject: string): [string, WbxmlElement] {
  const found = [...device.items(collectionId).entries()].find(([, d]) => itemText(d, 'Subject', 'Email') === subject);
  if (!found) throw new Error(`no item "${subject}" in ${collectionId}`);
  return found;
}

/** ItemOperations Fetch of the scan's attachment as a multipart answer; checks the bytes are BINARY exactly. */
export async function fetchAttachmentMultipart(device: TestDevice, inbox: string): Promise<void> {
  const [, scan] = itemWithSubject(device, inbox, 'Scan attached');
  const fileReference = childText(
    child(child(scan, 'Attachments', 'AirSyncBase'), 'Attachment', 'AirSyncBase'),
    'FileReference',
    'AirSyncBase',
  )!;
  const res = await device.send(
    'ItemOperations',
    el('ItemOperations', 'ItemOperations', [
      el('ItemOperations', 'Fetch', [
        el('ItemOperations', 'Store', 'Mailbox'),
        el('AirSyncBase', 'FileReference', fileReference),
      ]),
    ]),
    { headers: { 'MS-ASAcceptMultiPart': 'T' } },
  );
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/vnd.ms-sync.multipart');
  // int32 LE part count, then (offset, length) per part; part 0 is the WBXML, part 1 the file.
  const view = new DataView(res.bytes.buffer, res.bytes.byteOffset, res.bytes.byteLength);
  expect(view.getInt32(0, true)).toBe(2);
  const offset = view.getInt32(12, true);
  const length = view.getInt32(16, true);
  expect(Buffer.from(res.bytes.subarray(offset, offset + length)).equals(BINARY)).toBe(true);
}

/** What an ItemOperations Fetch names: an attachment, a Search result, or an item of a collection. */
export type FetchTarget = { fileReference: string } | { longId: string } | { collectionId: string; serverId: string };

/**
 * ItemOperations Fetch (MS-ASCMD §2.2.1.10) of one target from the Mailbox store, with `options` as the children of
 * its Options; the answer's Response/Fetch element (Status, the ids, Properties).
 */
export async function itemOperationsFetch(
  device: TestDevice,
  target: FetchTarget,
  options?: WbxmlElement[],
): Promise<WbxmlElement | undefined> {
  const names =
    'fileReference' in target
      ? [el('AirSyncBase', 'FileReference', target.fileReference)]
      : 'longId' in target
        ? [el('Search', 'LongId', target.longId)]
        : [el('AirSync', 'CollectionId', target.collectionId), el('AirSync', 'ServerId', target.serverId)];
  const body = await device.command(
    'ItemOperations',
    el('ItemOperations', 'ItemOperations', [
      el('ItemOperations', 'Fetch', [
        el('ItemOperations', 'Store', 'Mailbox'),
        ...names,
        options ? el('ItemOperations', 'Options', options) : undefined,
      ]),
    ]),
  );
  return child(child(body, 'Response'), 'Fetch');
}

export function pingBody(heartbeat: number, folders: string[]): WbxmlElement {
  return el('Ping', 'Ping', [
    el('Ping', 'HeartbeatInterval', String(heartbeat)),
    el(
      'Ping',
      'Folders',
      folders.map((id) => el('Ping', 'Folder', [el('Ping', 'Id', id), el('Ping', 'Class', 'Email')])),
    ),
  ]);
}

/**
 * A Ping on the Inbox that a message APPENDed 1.5 s after it started must end with Status 2. `afterAppend` runs once
 * the message is in (e.g. fires a cron). Then the device syncs the one new message. Returns the Ping's duration.
 */
export async function pingSeesNewMessage(
  services: TestServices,
  user: TestUser,
  device: TestDevice,
  inbox: string,
  heartbeat: number,
  afterAppend?: () => void,
): Promise<number> {
  const started = Date.now();
  const appended = new Promise<void>((resolve, reject) =>
    setTimeout(() => {
      withImap(services, user, (imap) =>
        imap.append(
          'INBOX',
          makeMessage({ from: 'dave@example.org', to: user.email, subject: 'Pushed', text: 'New.\n' }),
        ),
      )
        .then(() => {
          afterAppend?.();
          resolve();
        })
        .catch(reject);
    }, 1_500),
  );
  const res = await device.send('Ping', pingBody(heartbeat, [inbox]));
  await appended;
  const ms = Date.now() - started;
  expect(res.status).toBe(200);
  expect(childText(res.body, 'Status')).toBe('2');
  expect(children(child(res.body, 'Folders'), 'Folder').map((f) => f.text)).toEqual([inbox]);
  const round = await device.sync(inbox);
  expect(round.added).toHaveLength(1);
  expect(itemText(device.items(inbox).get(round.added[0]!), 'Subject', 'Email')).toBe('Pushed');
  return ms;
}

/** SendMail to a fresh user; the message must arrive in their Inbox (through the test Postfix). */
export async function sendMailArrives(services: TestServices, device: TestDevice, from: TestUser): Promise<void> {
  const bob = createUser(services);
  const subject = `Session ${randomBytes(3).toString('hex')}`;
  const res = await compose(
    device,
    'SendMail',
    makeMessage({ from: from.email, to: bob.email, subject, text: 'Sent in a device session.\n' }),
  );
  expect(res.status).toBe(200);
  expect(res.bytes.length).toBe(0);
  const got = await waitForStored(services, bob, (m) => m.email.subject === subject);
  expect(got.email.subject).toBe(subject);
}

/**
 * A Search (MS-ASCMD §2.2.1.16) of the Mailbox store for what meets all `conditions` (an And of Class, CollectionId,
 * FreeText, date bounds), with `options` (Range, DeepTraversal, body preferences) when there are any.
 */
export function mailboxSearchRequest(conditions: WbxmlElement[], options: WbxmlElement[] = []): WbxmlElement {
  return el('Search', 'Search', [
    el('Search', 'Store', [
      el('Search', 'Name', 'Mailbox'),
      el('Search', 'Query', [el('Search', 'And', conditions)]),
      options.length > 0 ? el('Search', 'Options', options) : undefined,
    ]),
  ]);
}

/** The device's Provision after an admin asked for its wipe: whether the answer carries the RemoteWipe directive. */
export async function provisionCarriesRemoteWipe(device: TestDevice): Promise<boolean> {
  const provision = await device.send(
    'Provision',
    el('Provision', 'Provision', [
      el('Provision', 'Policies', [
        el('Provision', 'Policy', [el('Provision', 'PolicyType', 'MS-EAS-Provisioning-WBXML')]),
      ]),
    ]),
  );
  return provision.body?.children.some((c) => c.tag === 'RemoteWipe') ?? false;
}

/** MoveItems (MS-ASCMD §2.2.1.12) of one item: the answer's Response element (Status, DstMsgId). */
export async function moveItem(
  device: TestDevice,
  srcMsgId: string,
  srcFldId: string,
  dstFldId: string,
): Promise<WbxmlElement | undefined> {
  const body = await device.command(
    'MoveItems',
    el('Move', 'MoveItems', [
      el('Move', 'Move', [
        el('Move', 'SrcMsgId', srcMsgId),
        el('Move', 'SrcFldId', srcFldId),
        el('Move', 'DstFldId', dstFldId),
      ]),
    ]),
  );
  return child(body, 'Response', 'Move');
}

/** MoveItems of "Plain note" to Archive; IMAP has it there, and neither folder's next Sync sends it back. */
export async function moveToArchive(
  services: TestServices,
  user: TestUser,
  device: TestDevice,
  inbox: string,
): Promise<void> {
  const archive = device.folderByName('Archive').serverId;
  await device.syncUntilDone(archive);
  const [note] = itemWithSubject(device, inbox, 'Plain note');
  const response = await moveItem(device, note, inbox, archive);
  expect(childText(response, 'Status')).toBe('3');
  expect(childText(response, 'DstMsgId')?.startsWith(`${archive}:`)).toBe(true);
  expect((await listMessages(services, user, 'Archive')).map((m) => m.subject)).toEqual(['Plain note']);
  // The phone moved it itself: the server does not send it back to either folder.
  const archiveRound = await device.sync(archive);
  expect([archiveRound.status, archiveRound.added, archiveRound.deleted]).toEqual([1, [], []]);
  const inboxRound = await device.sync(inbox);
  expect([inboxRound.status, inboxRound.added, inboxRound.deleted]).toEqual([1, [], []]);
}

/**
 * A tenant on the test Dovecot (plain IMAP on loopback) that lets devices skip provisioning and Ping with a 1 s
 * heartbeat and feed poll: for tests that look at what a Ping costs, not at how long it waits.
 */
export function quickPushSettings(services: TestServices): Record<string, string> {
  return {
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    TENANT: 'test',
    PROVISIONING: 'loose',
    PING_MIN_HEARTBEAT: '1',
    PING_POLL_SECONDS: '1',
  };
}

/**
 * Notes both ways (MS-ASNOTE, 14.0+): a note Apple's Notes wrote over IMAP reaches the device; the device's Add is
 * in the notes folder as Apple writes notes (X-Uniform-Type-Identifier, X-Universally-Unique-Identifier, HTML body).
 */
export async function notesBothWays(services: TestServices, user: TestUser, device: TestDevice): Promise<void> {
  const notes = [...device.folders.values()].find((f) => f.type === 10);
  expect(notes?.displayName).toBe('Notes');
  const note = [
    'X-Uniform-Type-Identifier: com.apple.mail-note',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: 7bit',
    'Date: Mon, 7 Dec 2026 12:00:00 +0000',
    'X-Mail-Created-Date: Mon, 7 Dec 2026 12:00:00 +0000',
    'Subject: From the Mac',
    'X-Universally-Unique-Identifier: 1D2C3B4A-5F6E-4D8C-9B0A-1F2E3D4C5B6A',
    '',
    '<html><head></head><body><div>From the Mac</div><div>written in Notes</div></body></html>',
    '',
  ].join('\r\n');
  await withImap(services, user, (imap) => imap.append('Notes', note, ['\\Seen']));
  const id = notes!.serverId;
  const options = [el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2')])];
  await device.syncUntilDone(id, { options });
  const [data] = [...device.items(id).values()];
  expect(itemText(data, 'Subject', 'Notes')).toBe('From the Mac');
  expect(childText(child(data, 'Body', 'AirSyncBase'), 'Data', 'AirSyncBase')).toContain('<div>written in Notes</div>');

  const round = await device.sync(id, {
    commands: [
      el('AirSync', 'Add', [
        el('AirSync', 'ClientId', 'note-1'),
        el('AirSync', 'ApplicationData', [
          el('Notes', 'Subject', 'From the phone'),
          el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'Data', 'typed on the phone')]),
        ]),
      ]),
    ],
  });
  expect(round.addResponses[0]).toMatchObject({ clientId: 'note-1', status: 1 });
  const sources = await withImap(services, user, async (imap) => {
    const lock = await imap.getMailboxLock('Notes');
    try {
      const out: string[] = [];
      for await (const m of imap.fetch('1:*', { source: true })) out.push(m.source!.toString());
      return out;
    } finally {
      lock.release();
    }
  });
  const written = sources.find((s) => /^Subject: From the phone$/m.test(s));
  expect(written).toMatch(/^X-Uniform-Type-Identifier: com\.apple\.mail-note$/m);
  expect(written).toMatch(/^X-Universally-Unique-Identifier: [0-9A-F-]{36}$/m);
  expect(written).toMatch(/^Content-Type: text\/html; charset=utf-8$/m);
  // The body is quoted-printable (soft line breaks): read as a client reads it.
  const html = (await PostalMime.parse(written!)).html;
  expect(html).toContain('<div>From the phone</div><div>typed on the phone</div>');
}

/**
 * An iMIP invitation (RFC 6047, METHOD:REQUEST) from `organizer` to `attendee`, for 15 March 2026 09:00–10:00 UTC,
 * as a calendar client mails it: a single text/calendar part, or with `withText` the calendar beside a plain-text
 * part in multipart/alternative (RFC 6047 §2.4); `location` adds a LOCATION.
 */
export function meetingInvitation(
  organizer: string,
  attendee: string,
  uid: string,
  summary: string,
  options: { location?: string; withText?: boolean } = {},
): string {
  const ics = [
    'BEGIN:VCALENDAR',
    'VERSION:2.0',
    'PRODID:-//test//meetings//EN',
    'METHOD:REQUEST',
    'BEGIN:VEVENT',
    `UID:${uid}`,
    'DTSTAMP:20260301T080000Z',
    'DTSTART:20260315T090000Z',
    'DTEND:20260315T100000Z',
    `SUMMARY:${summary}`,
    ...(options.location !== undefined ? [`LOCATION:${options.location}`] : []),
    `ORGANIZER;CN=Organizer:mailto:${organizer}`,
    `ATTENDEE;CN=Organizer;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:${organizer}`,
    `ATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:${attendee}`,
    'SEQUENCE:0',
    'END:VEVENT',
    'END:VCALENDAR',
    '',
  ].join('\r\n');
  const calendarType = 'Content-Type: text/calendar; charset=utf-8; method=REQUEST';
  const body = options.withText
    ? [
        'Content-Type: multipart/alternative; boundary="b1"',
        '',
        '--b1',
        'Content-Type: text/plain; charset=utf-8',
        '',
        `You are invited: ${summary}`,
        '--b1',
        calendarType,
        '',
        ics,
        '--b1--',
        '',
      ]
    : [calendarType, '', ics];
  return [
    `From: Organizer <${organizer}>`,
    `To: <${attendee}>`,
    `Subject: ${summary}`,
    `Message-ID: <${randomUUID()}@example.test>`,
    'Date: Sun, 01 Mar 2026 08:00:00 +0000',
    'MIME-Version: 1.0',
    ...body,
  ].join('\r\n');
}

/** MeetingResponse accepting the invitation `requestId` of `inbox`, with SendResponse (16.x: the server mails a REPLY). */
export function acceptMeeting(
  device: TestDevice,
  inbox: string,
  requestId: string,
  note: string,
): Promise<WbxmlElement> {
  return device.command(
    'MeetingResponse',
    el('MeetingResponse', 'MeetingResponse', [
      el('MeetingResponse', 'Request', [
        el('MeetingResponse', 'UserResponse', '1'),
        el('MeetingResponse', 'CollectionId', inbox),
        el('MeetingResponse', 'RequestId', requestId),
        el('MeetingResponse', 'SendResponse', [
          el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'Data', note)]),
        ]),
      ]),
    ]),
  );
}
