/**
 * Realistic mail through Sync, against the real Dovecot: the .eml fixtures (legacy charsets, S/MIME, meetings, NDR,
 * attachments, an inline image), a long HTML message, and one with a 20 MiB attachment, synced with an HTML
 * BodyPreference truncated at 5120 bytes, as phones ask. Expected values come from the fixtures themselves (read
 * by a small MIME reader below), not from the code under test.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { childText, el, textOf, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer } from '../../device/device.ts';
import {
  bigAttachmentMessage,
  loadMailFixture,
  MAIL_FIXTURES,
  typicalAlternativeMessage,
  type MailFixture,
} from '../../fixtures/mail/generate.ts';
import { createUser, seedMailbox } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';

const services = inject('services');
const TRUNCATION = 5120;
const BIG_ATTACHMENT = 20 * 1024 * 1024;
const htmlPreference = [
  el('AirSyncBase', 'BodyPreference', [
    el('AirSyncBase', 'Type', '2'),
    el('AirSyncBase', 'TruncationSize', String(TRUNCATION)),
  ]),
];

let user: TestUser;
let device: TestDevice;
/** The synced INBOX items by Subject. */
let bySubject: Map<string, WbxmlElement>;
const longHtml = typicalAlternativeMessage();

// ---------------------------------------------------------------- expected values, from the raw bytes

/**
 * The decoded body of the MIME part whose header block contains `marker` (a header line), up to the next boundary
 * line; base64 and quoted-printable are decoded, anything else taken as it is. Enough for these messages.
 */
function partBytes(raw: Uint8Array, marker: string): Buffer {
  const text = Buffer.from(raw).toString('latin1');
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`no part with ${marker}`);
  const headerStart = Math.max(0, text.lastIndexOf('\r\n--', at));
  const bodyStart = text.indexOf('\r\n\r\n', at) + 4;
  const next = text.indexOf('\r\n--', bodyStart);
  const body = text.slice(bodyStart, next < 0 ? undefined : next);
  const encoding = /content-transfer-encoding:\s*([\w-]+)/i
    .exec(text.slice(headerStart, bodyStart))?.[1]
    ?.toLowerCase();
  if (encoding === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64');
  if (encoding === 'quoted-printable') {
    return Buffer.from(
      body
        .replace(/=\r\n/g, '')
        .replace(/=([0-9A-F]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
      'latin1',
    );
  }
  return Buffer.from(body, 'latin1');
}

/**
 * Checks the size given for a text part: a MIME parser may count it with CRLF or with LF line ends (postal-mime
 * gives LF for 7bit/8bit/quoted-printable text, message/rfc822 and calendar parts, even a base64 application/ics),
 * and may keep the line end before the boundary, which RFC 2046 counts as part of the boundary: give or take 2 bytes.
 */
function expectTextPartSize(raw: Uint8Array, marker: string, actual: number | undefined): void {
  const bytes = partBytes(raw, marker);
  const lf = bytes.toString('latin1').replace(/\r\n/g, '\n').length;
  const off = Math.min(Math.abs(bytes.length - (actual ?? -1e9)), Math.abs(lf - (actual ?? -1e9)));
  expect(off, `${marker}: ${actual} for ${bytes.length} bytes (${lf} with LF line ends)`).toBeLessThanOrEqual(2);
}

// ---------------------------------------------------------------- reading the items

function body(data: WbxmlElement | undefined): { type: number; size: number; truncated: boolean; data: string } {
  const b = data?.children.find((c) => c.tag === 'Body' && c.ns === 'AirSyncBase');
  return {
    type: Number(childText(b, 'Type', 'AirSyncBase')),
    size: Number(childText(b, 'EstimatedDataSize', 'AirSyncBase')),
    truncated: childText(b, 'Truncated', 'AirSyncBase') === '1',
    data: textOf(b?.children.find((c) => c.tag === 'Data')),
  };
}

interface ListedAttachment {
  name: string;
  size: number;
  method: number;
  contentId: string | undefined;
  inline: boolean;
}

function attachments(data: WbxmlElement | undefined): ListedAttachment[] {
  const list = data?.children.find((c) => c.tag === 'Attachments' && c.ns === 'AirSyncBase');
  return (list?.children ?? []).map((a) => ({
    name: childText(a, 'DisplayName', 'AirSyncBase') ?? '',
    size: Number(childText(a, 'EstimatedDataSize', 'AirSyncBase')),
    method: Number(childText(a, 'Method', 'AirSyncBase')),
    contentId: childText(a, 'ContentId', 'AirSyncBase'),
    inline: childText(a, 'IsInline', 'AirSyncBase') === '1',
  }));
}

function item(subject: string): WbxmlElement {
  const found = bySubject.get(subject);
  if (!found) throw new Error(`no item "${subject}"; the device has: ${[...bySubject.keys()].join(' | ')}`);
  return found;
}

const classOf = (subject: string): [string | undefined, string | undefined] => [
  itemText(item(subject), 'MessageClass', 'Email'),
  itemText(item(subject), 'ContentClass', 'Email'),
];

// ---------------------------------------------------------------- the tests

beforeAll(async () => {
  user = createUser(services);
  await seedMailbox(services, user, 'INBOX', [
    ...MAIL_FIXTURES.map((name) => ({ message: Buffer.from(loadMailFixture(name)) })),
    { message: Buffer.from(longHtml) },
  ]);
  device = new TestDevice(testServer(services), user);
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.sync(inbox, { options: htmlPreference });
  const rounds = await device.syncUntilDone(inbox);
  expect(rounds.map((r) => r.added.length)).toEqual([MAIL_FIXTURES.length + 1]);
  bySubject = new Map([...device.items(inbox).values()].map((d) => [itemText(d, 'Subject', 'Email') ?? '', d]));
});

describe('realistic messages through Sync (HTML body, truncated at 5120)', () => {
  it('decodes subjects, senders and bodies in legacy charsets to the right Unicode', () => {
    const cases: { fixture: MailFixture; subject: string; from: string; text: string | RegExp }[] = [
      {
        fixture: 'latin1-qp.eml',
        subject: 'Grüße aus Köln',
        from: 'Klaus Weiß',
        text: 'Ça va ? ¿Qué tal, señor Peña? Ærø, Øresund, Åland.',
      },
      {
        fixture: 'windows-1252.eml',
        subject: '“Quarterly report” – final',
        from: 'Zoë Smith',
        text: '“Quarterly report” – total: €1,250 … see you Monday.',
      },
      {
        fixture: 'shift-jis.eml',
        subject: '打ち合わせの日程について',
        from: '佐藤 花子',
        text: '来週の打ち合わせの件、木曜日の午後二時でいかがでしょうか。',
      },
      // JIS 0x2141 is U+301C WAVE DASH in JIS X 0208 and U+FF5E FULLWIDTH TILDE in the WHATWG (and Windows) tables
      // that Node's TextDecoder uses: either is a right decoding; what matters is that it is not mojibake.
      {
        fixture: 'iso-2022-jp.eml',
        subject: '【重要】システムメンテナンスのお知らせ',
        from: '情報システム部',
        text: /日時：５月２５日（土）２２時[〜～]翌２時/,
      },
      {
        fixture: 'plain-utf8.eml',
        subject: 'Fwd: RE: Lunch?',
        from: 'dave@example.com',
        text: 'Grüße! 😀 Lunch at the 寿司 place? ✓ Ünïcödé everywhere.',
      },
      {
        fixture: 'alternative.eml',
        subject: 'Re: Q3 budget review',
        from: 'Alice Example',
        text: 'at 118.500&nbsp;€.',
      },
    ];
    for (const c of cases) {
      const data = item(c.subject);
      expect(itemText(data, 'From', 'Email'), c.fixture).toContain(c.from);
      const b = body(data);
      expect(b.type, c.fixture).toBe(2);
      expect(b.truncated, c.fixture).toBe(false);
      if (typeof c.text === 'string') expect(b.data, c.fixture).toContain(c.text);
      else expect(b.data, c.fixture).toMatch(c.text);
      // InternetCPID 65001: what we send is UTF-8, and says so.
      expect(itemText(data, 'InternetCPID', 'Email')).toBe('65001');
      for (const text of [c.subject, itemText(data, 'From', 'Email'), itemText(data, 'To', 'Email'), b.data]) {
        // No replacement characters, no C1 controls (a windows-1252 text decoded as Latin-1).
        expect(text, c.fixture).not.toMatch(/[\ufffd\u0080-\u009f]/);
      }
    }
    // Plain-text-only messages arrive as HTML (the device asked for HTML only); their own charset label is gone.
    expect(itemText(item('Grüße aus Köln'), 'NativeBodyType', 'AirSyncBase')).toBe('1');
    expect(body(item('“Quarterly report” – final')).data).not.toMatch(/charset=windows-1252/i);
    expect(itemText(item('Re: Q3 budget review'), 'To', 'Email')).toContain('Jürgen Müller');
    expect(itemText(item('Re: Q3 budget review'), 'Cc', 'Email')).toBe('"Dave, Ops" <dave@example.com>');
    expect(itemText(item('Re: Q3 budget review'), 'Importance', 'Email')).toBe('2');
    expect(itemText(item('Fwd: RE: Lunch?'), 'To', 'Email')).toBe(
      'bob@example.org, "Zoe \\"Z\\" Smith" <zoe@example.co.uk>',
    );
  });

  it('classes S/MIME, meeting and NDR messages', () => {
    expect(classOf('Signed: new VPN certificate rollout')).toEqual([
      'IPM.Note.SMIME.MultipartSigned',
      'urn:content-classes:message',
    ]);
    expect(classOf('Your salary statement')).toEqual(['IPM.Note.SMIME', 'urn:content-classes:message']);
    expect(classOf('Invitation: Q3 budget review @ Thu 30 May 2024 14:00 - 15:00 (CEST)')).toEqual([
      'IPM.Schedule.Meeting.Request',
      'urn:content-classes:calendarmessage',
    ]);
    expect(classOf('Canceled: Q3 budget review')).toEqual([
      'IPM.Schedule.Meeting.Canceled',
      'urn:content-classes:calendarmessage',
    ]);
    expect(classOf('Accepted: Q3 budget review')).toEqual([
      'IPM.Schedule.Meeting.Resp.Pos',
      'urn:content-classes:calendarmessage',
    ]);
    expect(classOf('Undelivered Mail Returned to Sender')).toEqual([
      'REPORT.IPM.Note.NDR',
      'urn:content-classes:message',
    ]);
    for (const plain of [
      'Q3 budget review',
      'Your May newsletter',
      'Grüße aus Köln',
      'Fwd: Parking garage closed next week',
    ]) {
      expect(classOf(plain), plain).toEqual(['IPM.Note', 'urn:content-classes:message']);
    }
  });

  it('lists attachments with their decoded sizes; the inline image with its ContentId', () => {
    const listed = (subject: string): [string, number, boolean, string | undefined][] =>
      attachments(item(subject)).map((a) => [a.name, a.method, a.inline, a.contentId]);
    const sizeOf = (subject: string, index = 0): number => attachments(item(subject))[index]!.size;
    const raw = (name: MailFixture): Uint8Array => loadMailFixture(name);

    expect(listed('Q3 budget review')).toEqual([['Q3 Budget Übersicht.pdf', 1, false, undefined]]);
    expect(sizeOf('Q3 budget review')).toBe(
      partBytes(raw('pdf-attachment.eml'), 'Content-Type: application/pdf').length,
    );

    expect(listed('Your May newsletter')).toEqual([['logo.png', 1, true, 'logo.7731@shop.example']]);
    expect(sizeOf('Your May newsletter')).toBe(
      partBytes(raw('html-inline-image.eml'), 'Content-Type: image/png').length,
    );
    expect(body(item('Your May newsletter')).data).toContain('src="cid:logo.7731@shop.example"');

    // An embedded message is an attachment (Method 5) named after its subject.
    expect(listed('Fwd: Parking garage closed next week')).toEqual([
      ['Parking garage closed next week.eml', 5, false, undefined],
    ]);
    expectTextPartSize(
      raw('forwarded-rfc822.eml'),
      'Content-Type: message/rfc822',
      sizeOf('Fwd: Parking garage closed next week'),
    );

    expect(listed('Signed: new VPN certificate rollout')).toEqual([['smime.p7s', 1, false, undefined]]);
    expect(sizeOf('Signed: new VPN certificate rollout')).toBe(
      partBytes(raw('smime-signed.eml'), 'Content-Type: application/pkcs7-signature').length,
    );
    expect(listed('Your salary statement')).toEqual([['smime.p7m', 1, false, undefined]]);

    // The invitation as a file (Google style); the text/calendar body part is not listed a second time.
    const invitation = 'Invitation: Q3 budget review @ Thu 30 May 2024 14:00 - 15:00 (CEST)';
    expect(listed(invitation)).toEqual([['invite.ics', 1, false, undefined]]);
    expectTextPartSize(raw('meeting-request.eml'), 'Content-Type: application/ics', sizeOf(invitation));
    // Only the text/calendar body part: listed as invite.ics so that clients can import it.
    expect(listed('Canceled: Q3 budget review')).toEqual([['invite.ics', 1, false, undefined]]);
    expectTextPartSize(raw('meeting-cancel.eml'), 'Content-Type: text/calendar', sizeOf('Canceled: Q3 budget review'));

    const ndr = attachments(item('Undelivered Mail Returned to Sender'));
    expect(ndr.map((a) => a.method)).toEqual([1, 5]);
    expect(ndr[1]!.name).toMatch(/\.eml$/);
    expectTextPartSize(raw('ndr.eml'), 'Content-Type: message/delivery-status', ndr[0]?.size);
    expectTextPartSize(raw('ndr.eml'), 'Content-Type: message/rfc822', ndr[1]?.size);

    for (const plain of ['Grüße aus Köln', 'Fwd: RE: Lunch?', 'RE: Rollout plan for the June migration'])
      expect(listed(plain), plain).toEqual([]);
  });

  it('truncates a long HTML body at 5120 bytes, with Truncated and the full size', () => {
    const fullHtml = partBytes(longHtml, 'Content-Type: text/html');
    const b = body(item('RE: Rollout plan for the June migration'));
    expect(fullHtml.length).toBeGreaterThan(TRUNCATION);
    expect(b).toMatchObject({ type: 2, truncated: true });
    expectTextPartSize(longHtml, 'Content-Type: text/html', b.size);
    const sent = Buffer.from(b.data, 'utf8');
    expect(sent.length).toBeLessThanOrEqual(TRUNCATION);
    expect(sent.length).toBeGreaterThan(TRUNCATION - 4);
    // The start of the HTML, cut at a character boundary (line ends may have become LF).
    const lf = (text: string): string => text.replace(/\r\n/g, '\n');
    expect(lf(fullHtml.toString('utf8')).startsWith(lf(b.data))).toBe(true);
    // Short bodies are whole.
    expect(body(item('Your May newsletter')).truncated).toBe(false);
  });

  it('syncs a message with a 20 MiB attachment: listed with its size, body truncated (timed)', async () => {
    const big = bigAttachmentMessage(BIG_ATTACHMENT);
    const t0 = performance.now();
    await seedMailbox(services, user, 'Big', [{ message: Buffer.from(big) }]);
    const seeded = performance.now() - t0;
    await device.folderSync();
    const folder = device.folderByName('Big').serverId;
    await device.sync(folder, { options: htmlPreference });
    const t1 = performance.now();
    const round = await device.sync(folder);
    const synced = performance.now() - t1;
    console.log(
      `[sync-messages] ${(big.length / 1e6).toFixed(1)} MB message: APPEND ${Math.round(seeded)} ms, Sync round ${Math.round(synced)} ms, response ${(round.response.bytes.length / 1024).toFixed(1)} KiB`,
    );

    expect(round.added).toHaveLength(1);
    expect(round.moreAvailable).toBe(false);
    const data = device.items(folder).get(round.added[0]!);
    expect(itemText(data, 'Subject', 'Email')).toBe('Measurement data export (full run)');
    const [attachment] = attachments(data);
    expect(attachment?.name).toBe('measurements-full-run.bin');
    expect(Math.abs(attachment!.size - BIG_ATTACHMENT) / BIG_ATTACHMENT).toBeLessThan(0.01);
    const b = body(data);
    expect(b.truncated).toBe(true);
    expectTextPartSize(big, 'Content-Type: text/html', b.size);
    // The attachment stays on the server: the response holds the truncated body and the headers, not 20 MiB.
    expect(round.response.bytes.length).toBeLessThan(64 * 1024);
  });
});
