/**
 * Device policy the server holds to itself (issue 17 item 24), for a client that ignores the policy
 * (PROVISIONING=loose, no policy key), against the real Dovecot with a real message (plain text and a large HTML
 * alternative, two attachments):
 * - AttachmentsEnabled and MaxAttachmentSize: attachments the policy withholds are left out of Sync, Search and
 *   ItemOperations answers (and a MIME body, which would carry them), and their download is refused in ItemOperations
 *   (Status 16, 11) and GetAttachment (403);
 * - AllowHTMLEmail off: no HTML body type reaches the device (HTML, MIME and BodyPart requests get plain text);
 * - MaxEmailBodyTruncationSize / MaxEmailHTMLBodyTruncationSize (kilobytes): bodies are cut there whatever the
 *   device's TruncationSize;
 * - MaxEmailAgeFilter: a device asking for all mail gets only the policy's window.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { child, children, childText, el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';
import { createUser, seedMailbox } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { itemWithSubject, mailboxSearchRequest } from './session-steps.ts';

const services = inject('services');
const LARGE = Buffer.alloc(1000, 7);
const SMALL = Buffer.alloc(200, 9);
const TEXT = `${'Plain text line of the report.\n'.repeat(200)}`; // ~6 KB
const HTML = `<html><body>${'<p style="color:#333">HTML paragraph of the report, with <b>markup</b>.</p>\n'.repeat(600)}</body></html>`; // ~45 KB

let server: TestServer;
const users: Record<'disabled' | 'small' | 'free' | 'plain' | 'htmlCap' | 'recent', TestUser> = {
  disabled: createUser(services),
  small: createUser(services),
  free: createUser(services),
  plain: createUser(services),
  htmlCap: createUser(services),
  recent: createUser(services),
};

beforeAll(async () => {
  server = testServer(services, {
    PROVISIONING: 'loose',
    POLICY: JSON.stringify({
      users: {
        [users.disabled.email]: { AttachmentsEnabled: false },
        [users.small.email]: { MaxAttachmentSize: 500 },
        [users.plain.email]: { AllowHTMLEmail: false, MaxEmailBodyTruncationSize: 1 },
        [users.htmlCap.email]: { MaxEmailHTMLBodyTruncationSize: 2 },
        [users.recent.email]: { MaxEmailAgeFilter: 3 },
      },
    }),
  });
  for (const user of Object.values(users)) {
    await seedMailbox(services, user, 'INBOX', [
      {
        message: {
          from: 'Bob <bob@example.test>',
          to: user.email,
          subject: 'With attachment',
          text: TEXT,
          html: HTML,
          attachments: [
            { filename: 'large.bin', contentType: 'application/octet-stream', content: LARGE },
            { filename: 'small.bin', contentType: 'application/octet-stream', content: SMALL },
          ],
        },
      },
      {
        message: {
          from: 'Carol <carol@example.test>',
          to: user.email,
          subject: 'Old news',
          text: 'From last month.\n',
        },
        internalDate: new Date(Date.now() - 20 * 86_400_000),
      },
    ]);
  }
}, 60_000);

const BOTH_BODIES = [
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2'), el('AirSyncBase', 'TruncationSize', '200000')]),
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'TruncationSize', '200000')]),
];
const HTML_ONLY = [
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2'), el('AirSyncBase', 'TruncationSize', '200000')]),
];
const MIME = [el('AirSync', 'MIMESupport', '2'), el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '4')])];

interface Synced {
  device: TestDevice;
  inbox: string;
  serverId: string;
  data: WbxmlElement;
}

/** A device that never provisions (loose mode lets it in), its Inbox synced with these Options. */
async function syncedDevice(user: TestUser, options: WbxmlElement[] = BOTH_BODIES, version = '14.1'): Promise<Synced> {
  const device = new TestDevice(server, user, undefined, version);
  device.autoProvision = false;
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox, { options });
  const [serverId, data] = itemWithSubject(device, inbox, 'With attachment');
  return { device, inbox, serverId, data };
}

function attachmentNames(data: WbxmlElement | undefined): string[] {
  return children(child(data, 'Attachments', 'AirSyncBase'), 'Attachment', 'AirSyncBase').map(
    (a) => childText(a, 'DisplayName', 'AirSyncBase')!,
  );
}

function body(data: WbxmlElement | undefined): { type?: string; truncated?: string; size: number; text: string } {
  const b = child(data, 'Body', 'AirSyncBase');
  const d = child(b, 'Data', 'AirSyncBase');
  const text = d?.opaque ? Buffer.from(d.opaque).toString('utf8') : (d?.text ?? '');
  return {
    type: childText(b, 'Type', 'AirSyncBase'),
    truncated: childText(b, 'Truncated', 'AirSyncBase'),
    size: Buffer.byteLength(text),
    text,
  };
}

/** ItemOperations Fetch of one item with Options, its Properties. */
async function fetchItem(s: Synced, options: WbxmlElement[]): Promise<WbxmlElement | undefined> {
  const res = await s.device.send(
    'ItemOperations',
    el('ItemOperations', 'ItemOperations', [
      el('ItemOperations', 'Fetch', [
        el('ItemOperations', 'Store', 'Mailbox'),
        el('AirSync', 'CollectionId', s.inbox),
        el('AirSync', 'ServerId', s.serverId),
        el('ItemOperations', 'Options', options),
      ]),
    ]),
  );
  expect(res.status).toBe(200);
  const fetch = child(child(res.body, 'Response'), 'Fetch');
  expect(childText(fetch, 'Status')).toBe('1');
  return child(fetch, 'Properties');
}

/** A mailbox Search for the message, its Properties. */
async function searchItem(s: Synced): Promise<WbxmlElement | undefined> {
  const res = await s.device.send(
    'Search',
    mailboxSearchRequest(
      [el('AirSync', 'Class', 'Email'), el('AirSync', 'CollectionId', s.inbox), el('Search', 'FreeText', 'attachment')],
      [el('Search', 'Range', '0-9'), ...BOTH_BODIES],
    ),
  );
  expect(res.status).toBe(200);
  const result = child(child(res.body, 'Response'), 'Store');
  expect(childText(result, 'Status')).toBe('1');
  return child(child(result, 'Result'), 'Properties');
}

describe('attachment policy, enforced by the server', () => {
  it('Sync, Search and ItemOperations list only the attachments the policy allows', async () => {
    const free = await syncedDevice(users.free);
    expect(attachmentNames(free.data)).toEqual(['large.bin', 'small.bin']);
    expect(attachmentNames(await searchItem(free))).toEqual(['large.bin', 'small.bin']);

    const small = await syncedDevice(users.small);
    expect(attachmentNames(small.data)).toEqual(['small.bin']);
    expect(attachmentNames(await searchItem(small))).toEqual(['small.bin']);
    expect(attachmentNames(await fetchItem(small, BOTH_BODIES))).toEqual(['small.bin']);

    const disabled = await syncedDevice(users.disabled);
    expect(child(disabled.data, 'Attachments', 'AirSyncBase')).toBeUndefined();
    expect(child(await searchItem(disabled), 'Attachments', 'AirSyncBase')).toBeUndefined();
    expect(child(await fetchItem(disabled, BOTH_BODIES), 'Attachments', 'AirSyncBase')).toBeUndefined();
  });

  it('a MIME body is sent only when it carries nothing the policy withholds', async () => {
    const free = await syncedDevice(users.free, MIME);
    expect(body(free.data).type).toBe('4');
    expect(body(free.data).text).toContain('large.bin');
    for (const user of [users.disabled, users.small]) {
      const held = await syncedDevice(user, MIME);
      expect(body(held.data).type).toBe('1');
      expect(body(held.data).text).not.toContain('large.bin');
    }
  });

  it('ItemOperations: Status 16 when attachments are disabled, 11 over MaxAttachmentSize, 1 otherwise', async () => {
    // The FileReference a device that ignores the listing (or kept an old one) would send: the large attachment.
    const statusFor = async (user: TestUser): Promise<string | undefined> => {
      const { device, serverId } = await syncedDevice(user);
      const res = await device.send(
        'ItemOperations',
        el('ItemOperations', 'ItemOperations', [
          el('ItemOperations', 'Fetch', [
            el('ItemOperations', 'Store', 'Mailbox'),
            el('AirSyncBase', 'FileReference', `${serverId}:0`),
          ]),
        ]),
      );
      expect(res.status).toBe(200);
      const fetch = child(child(res.body, 'Response'), 'Fetch');
      if (childText(fetch, 'Status') !== '1') expect(child(fetch, 'Properties')).toBeUndefined();
      return childText(fetch, 'Status');
    };
    expect(await statusFor(users.disabled)).toBe('16');
    expect(await statusFor(users.small)).toBe('11');
    expect(await statusFor(users.free)).toBe('1');
  });

  it('GetAttachment (12.1): 403 when the policy forbids the download, the bytes otherwise', async () => {
    const get = async (user: TestUser) => {
      const { device, serverId } = await syncedDevice(user, [], '12.1');
      return device.send('GetAttachment', undefined, {
        query: `&AttachmentName=${encodeURIComponent(`${serverId}:0`)}`,
      });
    };
    expect((await get(users.disabled)).status).toBe(403);
    expect((await get(users.small)).status).toBe(403);
    const free = await get(users.free);
    expect(free.status).toBe(200);
    expect(Buffer.from(free.bytes).equals(LARGE)).toBe(true);
  });
});

describe('body policy, enforced by the server', () => {
  it('AllowHTMLEmail off: HTML, MIME and BodyPart requests get plain text, cut at MaxEmailBodyTruncationSize', async () => {
    const free = await syncedDevice(users.free, HTML_ONLY);
    expect(body(free.data)).toMatchObject({ type: '2', truncated: '0' });
    expect(body(free.data).size).toBeGreaterThan(40_000);

    for (const options of [HTML_ONLY, BOTH_BODIES, MIME]) {
      const plain = await syncedDevice(users.plain, options);
      const b = body(plain.data);
      expect(b.type).toBe('1');
      expect(b.text).not.toContain('<p');
      // MaxEmailBodyTruncationSize 1 (KB), whatever the device's TruncationSize.
      expect(b.truncated).toBe('1');
      expect(b.size).toBeLessThanOrEqual(1024);
      expect(b.size).toBeGreaterThan(900);
    }

    const withPart = [
      ...BOTH_BODIES,
      el('AirSyncBase', 'BodyPartPreference', [
        el('AirSyncBase', 'Type', '2'),
        el('AirSyncBase', 'TruncationSize', '200000'),
      ]),
    ];
    const s = await syncedDevice(users.plain, withPart);
    expect(child(s.data, 'BodyPart', 'AirSyncBase')).toBeUndefined();
    const fetched = await fetchItem(s, HTML_ONLY);
    expect(body(fetched).type).toBe('1');
    expect(body(await searchItem(s)).type).toBe('1');
  });

  it('MaxEmailHTMLBodyTruncationSize cuts the HTML body whatever the device asks', async () => {
    const s = await syncedDevice(users.htmlCap, HTML_ONLY);
    const b = body(s.data);
    expect(b).toMatchObject({ type: '2', truncated: '1' });
    expect(b.size).toBeLessThanOrEqual(2048);
    expect(b.size).toBeGreaterThan(1900);
    const fetched = body(await fetchItem(s, HTML_ONLY));
    expect(fetched).toMatchObject({ type: '2', truncated: '1' });
    expect(fetched.size).toBeLessThanOrEqual(2048);
  });
});

describe('MaxEmailAgeFilter, enforced by the server', () => {
  it('a device asking for all mail gets only the policy window', async () => {
    const subjectsWith = async (user: TestUser, filterType: string): Promise<string[]> => {
      const device = new TestDevice(server, user, undefined, '14.1');
      device.autoProvision = false;
      await device.folderSync();
      const inbox = device.folderByType(FolderType.Inbox).serverId;
      await device.syncUntilDone(inbox, { options: [el('AirSync', 'FilterType', filterType), ...BOTH_BODIES] });
      return [...device.items(inbox).values()].map((d) => childText(d, 'Subject', 'Email')!).sort();
    };
    expect(await subjectsWith(users.free, '0')).toEqual(['Old news', 'With attachment']);
    // MaxEmailAgeFilter 3 (one week): FilterType 0 (everything) and 5 (a month) are held to a week.
    expect(await subjectsWith(users.recent, '0')).toEqual(['With attachment']);
    expect(await subjectsWith(users.recent, '5')).toEqual(['With attachment']);
  });
});
