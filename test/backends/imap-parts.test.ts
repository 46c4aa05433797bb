/**
 * Reading messages in parts (MailBackend.fetchMessageParts + items/email-parts.ts) against the test Dovecot: for the
 * whole mail corpus and large generated messages, under the body preferences real clients send, the ApplicationData
 * made from the parts read is the one made from the whole message, and large messages are read only as far as the
 * answer needs.
 */
import { Buffer } from 'node:buffer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { openImapMailBackend, type ImapMailBackend } from '../../src/backends/imap/mail.ts';
import { freshImapSessions } from '../../src/backends/imap/sessions.ts';
import { emailApplicationData, type EmailOutputOptions } from '../../src/items/email.ts';
import { emailApplicationDataOfParts, planParts } from '../../src/items/email-parts.ts';
import { emailItemData, findMessageParts, searchPage } from '../../src/folders/mail-lookup.ts';
import { FolderType } from '../../src/backends/types.ts';
import type { FolderRecord } from '../../src/state/types.ts';
import {
  bigAttachmentMessage,
  loadMailFixture,
  MAIL_FIXTURES,
  typicalAlternativeMessage,
} from '../fixtures/mail/generate.ts';
import { createUser } from '../services/seed.ts';

const services = inject('services');
const sessions = freshImapSessions(services.imap);

/** Words with 2-, 3- and 4-byte UTF-8 characters, so that cuts fall inside characters and QP escapes. */
const WORDS = 'Grüße naïve Ærø 東京 会議 😀 déjà Łódź straße €100 — “quoted”'.split(' ');
function text(bytes: number, seed: number): string {
  const out: string[] = [];
  for (let i = 0, size = 0; size < bytes; i++) {
    const word = WORDS[(i * 7 + seed) % WORDS.length]!;
    out.push(i % 12 === 11 ? `${word}\r\n` : word);
    size += Buffer.byteLength(word) + 1;
  }
  return out.join(' ');
}
function qp(s: string): string {
  return s
    .split('\r\n')
    .map((line) => {
      const out: string[] = [];
      let current = '';
      for (const b of Buffer.from(line)) {
        const piece =
          b >= 33 && b <= 126 && b !== 61
            ? String.fromCharCode(b)
            : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
        if (current.length + piece.length > 75) {
          out.push(`${current}=`);
          current = '';
        }
        current += piece;
      }
      out.push(current);
      return out.join('\r\n');
    })
    .join('\r\n');
}
const b64 = (bytes: Uint8Array): string =>
  (
    Buffer.from(bytes)
      .toString('base64')
      .match(/.{1,76}/g) ?? []
  ).join('\r\n');
const noise = (size: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: size }, (_, i) => (i * 2654435761 + seed) >>> 24);
const head = (subject: string, type: string): string[] => [
  'From: "Nachrichten Team" <news@example.org>',
  'To: "Bob" <bob@example.org>',
  `Subject: ${subject}`,
  'Date: Tue, 14 May 2024 09:12:45 +0200',
  `Message-ID: <${subject.replace(/\W/g, '')}@example.org>`,
  'MIME-Version: 1.0',
  `Content-Type: ${type}`,
];

/** A newsletter: multipart/related (alternative text + 120 KB HTML in QP, three 1 MB inline images). */
function newsletter(): Uint8Array {
  const html = `<html><head><meta charset="iso-8859-1"><style>p{margin:0}</style></head><body>${text(120_000, 1)
    .split('\r\n')
    .map((l) => `<p>${l}</p>`)
    .join('\r\n')}${[0, 1, 2].map((k) => `<img src="cid:img${k}@news">`).join('')}</body></html>`;
  return Buffer.from(
    [
      ...head('Newsletter May', 'multipart/related; boundary="rel"; type="multipart/alternative"'),
      '',
      '--rel',
      'Content-Type: multipart/alternative; boundary="alt"',
      '',
      '--alt',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      qp(text(30_000, 2)),
      '--alt',
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      qp(html),
      '--alt--',
      '',
      ...[0, 1, 2].flatMap((k) => [
        '--rel',
        `Content-Type: image/png; name="picture ${k}.png"`,
        'Content-Transfer-Encoding: base64',
        `Content-ID: <img${k}@news>`,
        '',
        b64(noise(1_000_000 + k, k)),
      ]),
      '--rel--',
      '',
    ].join('\r\n'),
  );
}

/** Single-part HTML in base64 (60 KB), with a Content-ID image referenced from the HTML outside multipart/related. */
function mixedWithCid(): Uint8Array {
  return Buffer.from(
    [
      ...head('Report with chart', 'multipart/mixed; boundary="mix"'),
      '',
      '--mix',
      'Content-Type: text/html; charset=UTF-8',
      'Content-Transfer-Encoding: base64',
      '',
      b64(Buffer.from(`<html><body><p>${text(60_000, 3)}</p><img src="cid:chart@x"></body></html>`)),
      '--mix',
      'Content-Type: image/gif',
      'Content-ID: <chart@x>',
      'Content-Transfer-Encoding: base64',
      '',
      b64(noise(40_000, 9)),
      '--mix',
      'Content-Type: application/octet-stream; name="=?utf-8?Q?Daten_=C3=BCbersicht.bin?="',
      'Content-Disposition: attachment',
      'Content-Transfer-Encoding: base64',
      '',
      b64(noise(5_000_000, 4)),
      '--mix--',
      '',
    ].join('\r\n'),
  );
}

/** A single-part text/html message in base64 (the body is section 1 of the message itself). */
function singlePartHtml(): Uint8Array {
  return Buffer.from(
    [
      ...head('Single part', 'text/html; charset=utf-8'),
      'Content-Transfer-Encoding: base64',
      '',
      b64(Buffer.from(`<html><body>${text(80_000, 5)}</body></html>`)),
      '',
    ].join('\r\n'),
  );
}

/** format=flowed plain text (rewrapped on decoding) and a large windows-1252 HTML part (estimated sizes). */
function flowedAndLegacy(): Uint8Array[] {
  const flowed = Buffer.from(
    [
      ...head('Flowed', 'text/plain; charset=utf-8; format=flowed'),
      'Content-Transfer-Encoding: 8bit',
      '',
      Array.from({ length: 400 }, (_, i) => `Line ${i} of a flowed paragraph Grüße 東京 `).join('\r\n'),
      '',
    ].join('\r\n'),
  );
  const latin = Buffer.from(
    [
      ...head('Legacy', 'text/html; charset=windows-1252'),
      'Content-Transfer-Encoding: 8bit',
      '',
      `<html><body>${'<p>Caf\u00e9 na\u00efve \u00c6r\u00f8 \u00a7 100 \u00b5s</p>\r\n'.repeat(12_000)}</body></html>`,
      '',
    ].join('\r\n'),
    'latin1',
  );
  return [flowed, latin];
}

const BODY = (type: number, truncationSize?: number, extra: Record<string, unknown> = {}) => ({
  type,
  ...(truncationSize !== undefined ? { truncationSize } : {}),
  ...extra,
});

/** Body preferences as real clients send them (iOS/Outlook: HTML 5 KB or 200 KB; Android: plain; MIME). */
const CASES: { name: string; options: Omit<EmailOutputOptions, 'fileReference'> }[] = [
  { name: 'HTML 5 KB (14.0)', options: { version: '14.0', bodyPreferences: [BODY(2, 5120)], mimeSupport: 0 } },
  {
    name: 'HTML 5 KB + Preview + BodyPart (14.1)',
    options: {
      version: '14.1',
      bodyPreferences: [BODY(2, 5120, { preview: 255 })],
      bodyPartPreferences: [BODY(2, 1000, { preview: 100 })],
      mimeSupport: 0,
    },
  },
  { name: 'plain 500 (12.1)', options: { version: '12.1', bodyPreferences: [BODY(1, 500)], mimeSupport: 0 } },
  {
    name: 'plain + HTML 200 KB',
    options: { version: '14.0', bodyPreferences: [BODY(1, 32768), BODY(2, 204800)], mimeSupport: 0 },
  },
  { name: 'HTML untruncated', options: { version: '14.0', bodyPreferences: [BODY(2)], mimeSupport: 0 } },
  {
    name: 'HTML 5 KB AllOrNone',
    options: { version: '14.0', bodyPreferences: [BODY(2, 5120, { allOrNone: true })], mimeSupport: 0 },
  },
  { name: 'no BodyPreference', options: { version: '12.0', bodyPreferences: [], mimeSupport: 0 } },
  { name: 'MIME (Type 4)', options: { version: '14.0', bodyPreferences: [BODY(4, 20000)], mimeSupport: 2 } },
];

let mail: ImapMailBackend;
const uids = new Map<string, number>();
const generated: [string, Uint8Array][] = [
  ['newsletter', newsletter()],
  ['mixed-cid', mixedWithCid()],
  ['single-part-html', singlePartHtml()],
  ['typical-qp', typicalAlternativeMessage(300 * 1024, 'quoted-printable')],
  ['typical-base64', typicalAlternativeMessage(300 * 1024, 'base64')],
  ['typical-8bit', typicalAlternativeMessage(300 * 1024, '8bit')],
  ['big-attachment', bigAttachmentMessage(20 * 1024 * 1024)],
  ['flowed', flowedAndLegacy()[0]!],
  ['legacy-html', flowedAndLegacy()[1]!],
];

beforeAll(async () => {
  const user = createUser(services);
  mail = await openImapMailBackend(sessions, { user: user.email, password: user.password });
  for (const [name, source] of [...MAIL_FIXTURES.map((f) => [f, loadMailFixture(f)] as const), ...generated]) {
    const uid = await mail.appendMessage('INBOX', source, ['\\Seen']);
    uids.set(name, uid!);
  }
}, 120_000);
afterAll(() => mail?.close());

/** Both ways for every message: in parts, and whole. */
async function convertBoth(options: Omit<EmailOutputOptions, 'fileReference'>) {
  const output = { ...options, fileReference: (part: string) => `ref:${part}` };
  const all = [...uids.values()];
  const parts = await mail.fetchMessageParts('INBOX', all, (s) => planParts(s, output));
  const whole = new Map((await mail.fetchMessages('INBOX', all)).map((m) => [m.uid, m]));
  const out = new Map<string, { parts: unknown; whole: unknown; bytesRead: number; size: number }>();
  for (const [name, uid] of uids) {
    const p = parts.find((m) => m.uid === uid)!;
    const w = whole.get(uid)!;
    let fromParts = await emailApplicationDataOfParts(p, output);
    // The caller's fallback (sync/email.ts): a body read in part that fell short is read again whole.
    if (fromParts === 'read whole') {
      const [bodies] = await mail.fetchMessageParts('INBOX', [uid], (s) => planParts(s, output, true));
      fromParts = await emailApplicationDataOfParts(bodies!, output);
    }
    expect(fromParts, name).not.toBe('read whole');
    out.set(name, {
      parts: fromParts,
      whole: await emailApplicationData(w, output),
      bytesRead: p.bytesRead,
      size: w.size,
    });
  }
  return out;
}

interface Node {
  tag: string;
  text?: unknown;
  children?: Node[];
}
/**
 * The trees with every EstimatedDataSize taken out, and the pairs of sizes taken out: the rest must be equal, the
 * sizes equal or within the estimate's tolerance.
 */
function withoutSizes(tree: unknown, sizes: number[]): unknown {
  if (Array.isArray(tree)) return tree.map((t) => withoutSizes(t, sizes));
  const node = tree as Node;
  if (node && typeof node === 'object' && 'tag' in node) {
    if (node.tag === 'EstimatedDataSize') {
      sizes.push(Number(node.text));
      return { ...node, text: 'size' };
    }
    return { ...node, children: node.children?.map((c) => withoutSizes(c, sizes)) };
  }
  return tree;
}

/** Messages whose every part is stored as it decodes (7bit/8bit UTF-8 or US-ASCII): their sizes are exact. */
const EXACT = new Set(['plain-utf8.eml', 'typical-8bit', 'alternative.eml']);

describe('messages read in parts', () => {
  for (const c of CASES) {
    it(`give the same ApplicationData as whole messages: ${c.name}`, async () => {
      const results = await convertBoth(c.options);
      for (const [name, r] of results) {
        const partSizes: number[] = [];
        const wholeSizes: number[] = [];
        expect(withoutSizes(r.parts, partSizes), name).toEqual(withoutSizes(r.whole, wholeSizes));
        if (EXACT.has(name)) expect(partSizes, name).toEqual(wholeSizes);
        // Estimates: base64 attachments within 2 bytes; bodies read in part within 2 %.
        partSizes.forEach((size, i) => {
          const exact = wholeSizes[i]!;
          expect(Math.abs(size - exact), `${name}: ${size} for ${exact}`).toBeLessThanOrEqual(
            Math.max(2, exact * 0.02),
          );
        });
      }
    }, 120_000);
  }

  it('read large messages only as far as the answer needs (HTML 5 KB)', async () => {
    const results = await convertBoth(CASES[0]!.options);
    for (const name of [
      'newsletter',
      'mixed-cid',
      'typical-qp',
      'typical-base64',
      'big-attachment',
      'single-part-html',
    ]) {
      const r = results.get(name)!;
      // Header, structure, MIME headers and the body's first 5 KB + slack; the mixed-cid HTML is read whole (60 KB).
      // Plus what the window's FETCH asks of other shapes (an empty answer for a section it lacks, or more of its body
      // than it needs): at most 5 % of the window's needs.
      expect(r.bytesRead, name).toBeLessThan(name === 'mixed-cid' ? 90_000 : 20_000);
      expect(r.size, name).toBeGreaterThan(60_000);
    }
  }, 120_000);
});

/**
 * ItemOperations Fetch (findMessageParts), Search and Find (searchPage) read in parts as Sync does, and convert through
 * emailItemData, with its fallbacks: the same ApplicationData as the whole message, large messages read only in part.
 */
describe('messages looked up for ItemOperations, Search and Find', () => {
  const inbox: FolderRecord = {
    serverId: '5',
    parentId: '0',
    displayName: 'Inbox',
    type: FolderType.Inbox,
    source: { backend: 'imap', ref: 'INBOX' },
  };
  const hierarchy = { folders: [inbox] };
  const FIND = { version: '16.1', bodyPreferences: [BODY(1, 0, { preview: 255 })], mimeSupport: 0 as const };
  const LARGE = ['newsletter', 'typical-qp', 'typical-base64', 'big-attachment', 'single-part-html'];

  // Large messages read in part, by case: a Find Preview of HTML-only mail reads the HTML whole, as Sync does for a
  // plain-text body made from HTML (its EstimatedDataSize is the converted text's).
  const readInPart: [(typeof CASES)[number], string[]][] = [
    [CASES[0]!, LARGE],
    [CASES[1]!, LARGE],
    [CASES[7]!, []],
    [{ name: 'Find preview', options: FIND }, ['big-attachment']],
  ];
  for (const [c, large] of readInPart) {
    it(`give the same ApplicationData as whole messages: ${c.name}`, async () => {
      const output = { ...c.options, fileReference: (part: string) => `ref:${part}` };
      const whole = new Map((await mail.fetchMessages('INBOX', [...uids.values()])).map((m) => [m.uid, m]));
      const page = await searchPage(mail, [inbox], {}, { first: 0, last: 99 }, output);
      expect(page.found).toHaveLength(uids.size);
      const found = new Map(page.found.map((f) => [f.hit.uid, f.message]));
      for (const [name, uid] of uids) {
        const expected = withoutSizes(await emailApplicationData(whole.get(uid)!, output), []);
        const searched = found.get(uid)!;
        expect(withoutSizes(await emailItemData(mail, 'INBOX', searched, output), []), name).toEqual(expected);
        const fetched = (await findMessageParts(mail, hierarchy, { collectionId: '5', uid }, output))!;
        expect(withoutSizes(await emailItemData(mail, 'INBOX', fetched.message, output), []), name).toEqual(expected);
        if (large.includes(name)) {
          expect(searched.bytesRead, name).toBeLessThan(25_000);
          // One message alone: the first FETCH also asks for its first 16 KB, which would have held all of a small one.
          expect(fetched.message.bytesRead, name).toBeLessThan(50_000);
          expect(whole.get(uid)!.size, name).toBeGreaterThan(60_000);
        }
      }
    }, 180_000);
  }
});
