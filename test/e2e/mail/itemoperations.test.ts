/**
 * ItemOperations against the real Dovecot, through the scripted device: Fetch of items and of attachments by the
 * FileReference Sync handed out (whole, by Range, inline and multipart), EmptyFolderContents, and the statuses.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { decodeWbxml } from '../../../src/wbxml/decoder.ts';
import { child, children, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type DeviceResponse, type TestServer } from '../../device/device.ts';
import { createUser, listMessages, seedMailbox, withImap } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';
import { comparable, libwbxmlDecode, parseLibwbxmlXml, type Node } from '../../wbxml/libwbxml.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

/** Every byte value, in an order no text encoding would keep: a binary file must arrive byte for byte. */
const BINARY = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i)), randomBytes(3000)]);

const withAttachment = {
  message: {
    from: 'Bob <bob@example.test>',
    to: 'Alice <alice@example.test>',
    subject: 'Scan attached',
    text: 'The scan, as promised.\n',
    html: '<p>The <b>scan</b>, as promised.</p>',
    attachments: [{ filename: 'scan.bin', contentType: 'application/octet-stream', content: BINARY }],
  },
};

const plainOnly = {
  message: {
    from: 'Bob <bob@example.test>',
    to: 'Alice <alice@example.test>',
    subject: 'Plain note',
    text: 'Just text.\n',
  },
};

function bodyPreference(type: number): WbxmlElement {
  return el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', type)]);
}

function fetchItem(collectionId: string, serverId: string, options: WbxmlElement[] = []): WbxmlElement {
  return el('ItemOperations', 'Fetch', [
    el('ItemOperations', 'Store', 'Mailbox'),
    el('AirSync', 'CollectionId', collectionId),
    el('AirSync', 'ServerId', serverId),
    options.length > 0 && el('ItemOperations', 'Options', options),
  ]);
}

function fetchFile(fileReference: string, range?: string): WbxmlElement {
  return el('ItemOperations', 'Fetch', [
    el('ItemOperations', 'Store', 'Mailbox'),
    el('AirSyncBase', 'FileReference', fileReference),
    range !== undefined && el('ItemOperations', 'Options', [el('ItemOperations', 'Range', range)]),
  ]);
}

function request(...operations: WbxmlElement[]): WbxmlElement {
  return el('ItemOperations', 'ItemOperations', operations);
}

/** The answers of one request, in order, after checking the top-level Status. */
async function itemOperations(device: TestDevice, ...operations: WbxmlElement[]): Promise<WbxmlElement[]> {
  const body = await device.command('ItemOperations', request(...operations));
  expect(childText(body, 'Status')).toBe('1');
  return child(body, 'Response')!.children;
}

function statusOf(answer: WbxmlElement | undefined): number {
  return Number(childText(answer, 'Status', 'ItemOperations'));
}

function properties(answer: WbxmlElement | undefined): WbxmlElement | undefined {
  return child(answer, 'Properties', 'ItemOperations');
}

/** MultiPartResponse: int32 LE count, (offset, length) pairs, the parts. */
function parseMultipart(bytes: Uint8Array): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getInt32(0, true);
  return Array.from({ length: count }, (_, i) => {
    const offset = view.getInt32(4 + 8 * i, true);
    const length = view.getInt32(8 + 8 * i, true);
    expect(offset + length).toBeLessThanOrEqual(bytes.length);
    return bytes.subarray(offset, offset + length);
  });
}

/** A device that has synced the Inbox; the seeded messages' ServerIds and the attachment's FileReference. */
async function syncedInbox(
  user: TestUser,
): Promise<{ device: TestDevice; inbox: string; ids: string[]; fileReference: string }> {
  const seeded = await seedMailbox(services, user, 'INBOX', [withAttachment, plainOnly]);
  const device = new TestDevice(server, user);
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox);
  const ids = seeded.map((m) => `${inbox}:${m.uid}`);
  const attachment = child(
    child(device.items(inbox).get(ids[0]!), 'Attachments', 'AirSyncBase'),
    'Attachment',
    'AirSyncBase',
  );
  expect(childText(attachment, 'DisplayName', 'AirSyncBase')).toBe('scan.bin');
  return { device, inbox, ids, fileReference: childText(attachment, 'FileReference', 'AirSyncBase')! };
}

describe('ItemOperations Fetch of an item', () => {
  it('sends the item with the body type the Options ask for: HTML, plain text, plain text by default', async () => {
    const user = createUser(services);
    const { device, inbox, ids } = await syncedInbox(user);

    const [html, plain, byDefault] = await itemOperations(
      device,
      fetchItem(inbox, ids[0]!, [bodyPreference(2)]),
      fetchItem(inbox, ids[0]!, [bodyPreference(1)]),
      fetchItem(inbox, ids[0]!),
    );
    for (const answer of [html, plain, byDefault]) {
      expect(statusOf(answer)).toBe(1);
      expect(childText(answer, 'ServerId', 'AirSync')).toBe(ids[0]);
      expect(childText(answer, 'CollectionId', 'AirSync')).toBe(inbox);
      expect(childText(answer, 'Class', 'AirSync')).toBe('Email');
      expect(itemText(properties(answer), 'Subject', 'Email')).toBe('Scan attached');
    }
    const body = (answer: WbxmlElement | undefined): WbxmlElement | undefined =>
      child(properties(answer), 'Body', 'AirSyncBase');
    expect(childText(body(html), 'Type', 'AirSyncBase')).toBe('2');
    expect(childText(body(html), 'Data', 'AirSyncBase')).toContain('<b>scan</b>');
    expect(childText(body(plain), 'Type', 'AirSyncBase')).toBe('1');
    expect(childText(body(plain), 'Data', 'AirSyncBase')?.trim()).toBe('The scan, as promised.');
    expect(childText(body(byDefault), 'Type', 'AirSyncBase')).toBe('1');
    // The item's attachments carry the same FileReferences as in Sync.
    expect(
      childText(
        child(child(properties(html), 'Attachments', 'AirSyncBase'), 'Attachment', 'AirSyncBase'),
        'FileReference',
        'AirSyncBase',
      ),
    ).toBe(`${ids[0]}:0`);
  });

  it('honours Schema and MIMESupport', async () => {
    const user = createUser(services);
    const { device, inbox, ids } = await syncedInbox(user);
    const [limited, mime] = await itemOperations(
      device,
      fetchItem(inbox, ids[1]!, [el('ItemOperations', 'Schema', [el('Email', 'Subject'), el('Email', 'From')])]),
      fetchItem(inbox, ids[1]!, [el('AirSync', 'MIMESupport', '2'), bodyPreference(4)]),
    );
    expect(properties(limited)!.children.map((p) => p.tag)).toEqual(['From', 'Subject']);
    const mimeBody = child(properties(mime), 'Body', 'AirSyncBase');
    expect(childText(mimeBody, 'Type', 'AirSyncBase')).toBe('4');
    expect(childText(mimeBody, 'Data', 'AirSyncBase')).toContain('Subject: Plain note');
  });

  it('answers Status 6 for an item or collection that does not exist, and for a ServerId of another collection', async () => {
    const user = createUser(services);
    const { device, inbox, ids } = await syncedInbox(user);
    const trash = device.folderByType(FolderType.DeletedItems).serverId;
    const answers = await itemOperations(
      device,
      fetchItem(inbox, `${inbox}:999999`),
      fetchItem('9999', '9999:1'),
      fetchItem(trash, ids[0]!),
      fetchItem(inbox, 'not-an-id'),
    );
    expect(answers.map(statusOf)).toEqual([6, 6, 6, 6]);
    expect(childText(answers[0], 'ServerId', 'AirSync')).toBe(`${inbox}:999999`);
  });
});

describe('ItemOperations Fetch of an attachment', () => {
  it('sends the attachment the device got a FileReference for in Sync, byte for byte, as base64 Data', async () => {
    const user = createUser(services);
    const { device, fileReference } = await syncedInbox(user);
    const [answer] = await itemOperations(device, fetchFile(fileReference));
    expect(statusOf(answer)).toBe(1);
    expect(childText(answer, 'FileReference', 'AirSyncBase')).toBe(fileReference);
    expect(childText(properties(answer), 'ContentType', 'AirSyncBase')).toBe('application/octet-stream');
    expect(Buffer.from(childText(properties(answer), 'Data')!, 'base64').equals(BINARY)).toBe(true);
    // Without a Range there is no Range or Total.
    expect(child(properties(answer), 'Range')).toBeUndefined();
  });

  it('also takes the FileReference URL-encoded, as Exchange hands them out', async () => {
    const user = createUser(services);
    const { device, fileReference } = await syncedInbox(user);
    const [answer] = await itemOperations(device, fetchFile(encodeURIComponent(fileReference)));
    expect(statusOf(answer)).toBe(1);
    expect(Buffer.from(childText(properties(answer), 'Data')!, 'base64').equals(BINARY)).toBe(true);
  });

  it('sends a byte Range with Range and Total; a range past the end is cut there', async () => {
    const user = createUser(services);
    const { device, fileReference } = await syncedInbox(user);
    const [first, middle, tail] = await itemOperations(
      device,
      fetchFile(fileReference, '0-99'),
      fetchFile(fileReference, '1000-1999'),
      fetchFile(fileReference, `3000-${BINARY.length + 500}`),
    );
    const data = (answer: WbxmlElement | undefined): Buffer =>
      Buffer.from(childText(properties(answer), 'Data')!, 'base64');
    expect(childText(properties(first), 'Range')).toBe('0-99');
    expect(childText(properties(first), 'Total')).toBe(String(BINARY.length));
    expect(data(first).equals(BINARY.subarray(0, 100))).toBe(true);
    expect(data(middle).equals(BINARY.subarray(1000, 2000))).toBe(true);
    expect(childText(properties(tail), 'Range')).toBe(`3000-${BINARY.length - 1}`);
    expect(data(tail).equals(BINARY.subarray(3000))).toBe(true);
  });

  it('answers 8 for an invalid range, 15 for a malformed FileReference, 6 for a missing part or message', async () => {
    const user = createUser(services);
    const { device, ids, fileReference } = await syncedInbox(user);
    const answers = await itemOperations(
      device,
      fetchFile(fileReference, '100-50'),
      fetchFile(fileReference, `${BINARY.length}-${BINARY.length + 10}`),
      fetchFile(fileReference, 'all'),
      fetchFile('garbage'),
      fetchFile(`${ids[0]}:x`),
      fetchFile(`${ids[0]}:7`),
      fetchFile(`${ids[0]!.split(':')[0]}:999999:0`),
    );
    expect(answers.map(statusOf)).toEqual([8, 8, 8, 15, 15, 6, 6]);
  });
});

describe('multipart ItemOperations (MS-ASAcceptMultiPart: T)', () => {
  it('answers application/vnd.ms-sync.multipart: part 0 the WBXML with <Part>, then the bytes', async () => {
    const user = createUser(services);
    const { device, inbox, ids, fileReference } = await syncedInbox(user);
    const res = await device.send(
      'ItemOperations',
      request(
        fetchFile(fileReference),
        fetchFile(fileReference, '10-19'),
        fetchItem(inbox, ids[1]!, [bodyPreference(1)]),
      ),
      {
        headers: { 'MS-ASAcceptMultiPart': 'T' },
      },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/vnd.ms-sync.multipart');
    const parts = parseMultipart(res.bytes);
    expect(parts).toHaveLength(4);

    const wbxml = decodeWbxml(parts[0]!);
    expect(childText(wbxml, 'Status')).toBe('1');
    const [whole, ranged, item] = child(wbxml, 'Response')!.children;
    expect(childText(properties(whole), 'Part')).toBe('1');
    expect(child(properties(whole), 'Data')).toBeUndefined();
    expect(Buffer.from(parts[1]!).equals(BINARY)).toBe(true);

    expect(childText(properties(ranged), 'Part')).toBe('2');
    expect(childText(properties(ranged), 'Range')).toBe('10-19');
    expect(Buffer.from(parts[2]!).equals(BINARY.subarray(10, 20))).toBe(true);

    // An item's body moves into a part too, referenced from inside airsyncbase:Body.
    const body = child(properties(item), 'Body', 'AirSyncBase');
    expect(child(body, 'Data', 'AirSyncBase')).toBeUndefined();
    expect(childText(body, 'Part', 'ItemOperations')).toBe('3');
    expect(Buffer.from(parts[3]!).toString('utf8')).toBe('Just text.\n');
  });
});

describe('ItemOperations EmptyFolderContents', () => {
  function emptyFolder(collectionId: string, deleteSubFolders = false): WbxmlElement {
    return el('ItemOperations', 'EmptyFolderContents', [
      el('AirSync', 'CollectionId', collectionId),
      deleteSubFolders && el('ItemOperations', 'Options', [el('ItemOperations', 'DeleteSubFolders')]),
    ]);
  }

  it('deletes every message of Trash; the next Sync of Trash reports them deleted', async () => {
    const user = createUser(services);
    const seeded = await seedMailbox(services, user, 'Trash', [withAttachment, plainOnly, plainOnly]);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const trash = device.folderByType(FolderType.DeletedItems).serverId;
    await device.syncUntilDone(trash);
    expect(device.items(trash).size).toBe(3);

    const [answer] = await itemOperations(device, emptyFolder(trash));
    expect(answer!.tag).toBe('EmptyFolderContents');
    expect(statusOf(answer)).toBe(1);
    expect(childText(answer, 'CollectionId', 'AirSync')).toBe(trash);
    expect(await listMessages(services, user, 'Trash')).toEqual([]);

    const round = await device.sync(trash);
    expect(round.status).toBe(1);
    expect(round.deleted.sort()).toEqual(seeded.map((m) => `${trash}:${m.uid}`).sort());
    expect(device.items(trash).size).toBe(0);
  });

  it('with DeleteSubFolders removes the subfolders too, which the next FolderSync reports deleted', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'Trash', [plainOnly]);
    await withImap(services, user, async (imap) => {
      await imap.mailboxCreate('Trash/Old project');
      await imap.mailboxCreate('Trash/Old project/Drafts 2024');
    });
    await seedMailbox(services, user, 'Trash/Old project', [plainOnly]);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const trash = device.folderByType(FolderType.DeletedItems).serverId;
    const sub = device.folderByName('Old project').serverId;

    const [kept, removed] = await itemOperations(device, emptyFolder(sub), emptyFolder(trash, true));
    expect([statusOf(kept), statusOf(removed)]).toEqual([1, 1]);
    const left = await withImap(services, user, (imap) => imap.list());
    expect(left.map((m) => m.path).filter((p) => p.startsWith('Trash'))).toEqual(['Trash']);
    expect(await listMessages(services, user, 'Trash')).toEqual([]);

    await device.folderSync();
    expect(device.folders.has(sub)).toBe(false);
    expect([...device.folders.values()].some((f) => f.displayName === 'Drafts 2024')).toBe(false);
    expect(device.folders.has(trash)).toBe(true);
  });

  it('answers Status 6 for a collection the device does not have', async () => {
    const user = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const [answer] = await itemOperations(device, emptyFolder('9999'));
    expect(statusOf(answer)).toBe(6);
  });
});

describe('ItemOperations request errors', () => {
  it('answers per operation: 9 for an unknown store, 2 for a Fetch naming two things, 155 for a Move without MoveAlways', async () => {
    const user = createUser(services);
    const { device, inbox, ids, fileReference } = await syncedInbox(user);
    const answers = await itemOperations(
      device,
      el('ItemOperations', 'Fetch', [
        el('ItemOperations', 'Store', 'Document Library'),
        el('DocumentLibrary', 'LinkId', '\\\\fs\\share\\a.txt'),
      ]),
      el('ItemOperations', 'Fetch', [
        el('ItemOperations', 'Store', 'Mailbox'),
        el('AirSync', 'CollectionId', inbox),
        el('AirSync', 'ServerId', ids[0]!),
        el('AirSyncBase', 'FileReference', fileReference),
      ]),
      el('ItemOperations', 'Fetch', [el('AirSyncBase', 'FileReference', fileReference)]),
      el('ItemOperations', 'Move', [
        el('ItemOperations', 'ConversationId', new Uint8Array([1, 2, 3])),
        el('ItemOperations', 'DstFldId', inbox),
      ]),
    );
    expect(answers.map((a) => [a.tag, statusOf(a)])).toEqual([
      ['Fetch', 9],
      ['Fetch', 2],
      ['Fetch', 2],
      ['Move', 155], // MoveAlways is required (MS-ASCMD §2.2.3.118)
    ]);
  });

  it('answers a top-level Status 2 to a request it cannot read', async () => {
    const user = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const empty = await device.command('ItemOperations', request());
    expect(childText(empty, 'Status')).toBe('2');
    expect(child(empty, 'Response')).toBeUndefined();
    const unknown = await device.command('ItemOperations', request(el('ItemOperations', 'Schema')));
    expect(childText(unknown, 'Status')).toBe('2');
  });
});

describe('ItemOperations responses decode with libwbxml', () => {
  it('an attachment and an item Fetch', async () => {
    const user = createUser(services);
    const { device, inbox, ids, fileReference } = await syncedInbox(user);
    const res: DeviceResponse = await device.send(
      'ItemOperations',
      request(fetchFile(fileReference, '0-63'), fetchItem(inbox, ids[0]!, [bodyPreference(2)])),
    );
    expect(res.body).toBeDefined();
    expect(children(child(res.body, 'Response'), 'Fetch')).toHaveLength(2);
    expect(withoutTrailingSpace(parseLibwbxmlXml(libwbxmlDecode(res.bytes)))).toEqual(
      withoutTrailingSpace(comparable(res.body!)),
    );
  });
});

/** wbxml2xml drops the whitespace at the end of a text node (the body's final newline); compare without it. */
function withoutTrailingSpace(node: Node): Node {
  return { ...node, value: node.value.trimEnd(), children: node.children.map(withoutTrailingSpace) };
}
