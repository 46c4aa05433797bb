/**
 * A generated mailbox shaped like real ones, for the sync benchmark: seeded, so every run appends the same bytes.
 *
 * The mix follows what published mailbox studies report for business mailboxes: most messages are small
 * (a few KB, median near 10 KB), about 30 % carry attachments whose sizes spread log-normally from a few KB to the
 * 25 MB most providers accept, HTML newsletters (large HTML, a stylesheet in the head, inline images in
 * multipart/related) are a large share of what arrives, conversations run long (References chains, quoted
 * history), and a part is written in legacy charsets (ISO-8859-1, windows-1252, Shift_JIS, ISO-2022-JP).
 *
 *  - 30 % personal text/plain, often a reply deep in a thread with the quoted history below it;
 *  - 20 % multipart/alternative text + HTML (quoted-printable);
 *  - 15 % newsletters: multipart/related (multipart/alternative + 2–6 inline images, Content-ID);
 *  - 5 % legacy charsets (the corpus messages of test/fixtures/mail, renumbered);
 *  - 30 % multipart/mixed with 1–3 attachments (PDF, JPEG, DOCX, ZIP), log-normal sizes (median 60 KB), 25 MB cap.
 */
import { Buffer } from 'node:buffer';
import { loadMailFixture, quotedPrintable } from '../test/fixtures/mail/generate.ts';

/** mulberry32: a small seeded PRNG, so the mailbox is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Normal deviate (Box–Muller). */
function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

// One pool of incompressible bytes, base64-encoded once in 76-character lines; attachments are cut from it at a
// seeded offset, whole lines of 57 bytes each: encoding 25 MB of fresh random bytes per message would make the fill
// slower than the benchmark.
const LINE_BYTES = 57;
const POOL_LINES = Math.ceil((26 * 1024 * 1024) / LINE_BYTES);
let pool: string | undefined;
function base64Attachment(random: () => number, size: number): string {
  if (!pool) {
    const bytes = Buffer.allocUnsafe(POOL_LINES * LINE_BYTES);
    let x = 0x2545f491;
    for (let i = 0; i + 4 <= bytes.length; i += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      bytes.writeInt32LE(x | 0, i);
    }
    const b64 = bytes.toString('base64');
    const lines: string[] = [];
    for (let i = 0; i < b64.length; i += 76) lines.push(b64.slice(i, i + 76));
    pool = lines.join('\r\n');
  }
  const lines = Math.max(1, Math.round(size / LINE_BYTES));
  const start = Math.floor(random() * (POOL_LINES - lines));
  return pool.slice(start * 78, (start + lines) * 78 - 2);
}

const WORDS = (
  'the project plan budget review meeting team schedule update customer release draft report numbers quarter ' +
  'Grüße Übersicht für naïve café déjà señor Zürich Ærø größer élève straße København Łódź 東京 会議 予定'
).split(' ');
const NAMES = ['Alice Example', 'Bob Builder', 'Carol Zhang', 'Dávid Kovács', 'Jürgen Groß', '佐藤 花子', 'Eve Ops'];

function sentence(random: () => number): string {
  const n = 6 + Math.floor(random() * 14);
  const words = Array.from({ length: n }, () => WORDS[Math.floor(random() * WORDS.length)]!);
  words[0] = words[0]!.charAt(0).toUpperCase() + words[0]!.slice(1);
  return `${words.join(' ')}.`;
}

function paragraphs(random: () => number, bytes: number): string[] {
  const out: string[] = [];
  for (let size = 0; size < bytes; ) {
    const p = Array.from({ length: 2 + Math.floor(random() * 4) }, () => sentence(random)).join(' ');
    out.push(p);
    size += Buffer.byteLength(p) + 2;
  }
  return out;
}

/** Log-normal size in bytes around `median`, clipped to [min, max]. */
function logNormal(random: () => number, median: number, sigma: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.round(median * Math.exp(sigma * gaussian(random)))));
}

function headers(i: number, random: () => number, subject: string, contentType: string, thread?: number): string[] {
  const from = NAMES[i % NAMES.length]!;
  const date = new Date(Date.UTC(2026, 0, 1) - i * 7 * 60_000);
  const lines = [
    'Return-Path: <sender@example.org>',
    `Received: from mx${i % 5}.example.org (mx${i % 5}.example.org [192.0.2.${i % 250}])`,
    `\tby imap.example.test (Postfix) with ESMTPS id ${(i * 2654435761).toString(36).toUpperCase()}`,
    `\tfor <bench@example.test>; ${date.toUTCString()}`,
    `Date: ${date.toUTCString()}`,
    `From: =?utf-8?B?${Buffer.from(from).toString('base64')}?= <sender${i % 97}@example.org>`,
    'To: "Bench User" <bench@example.test>',
    ...(random() < 0.3 ? ['Cc: "Carol Zhang" <carol@example.net>, dave@example.com'] : []),
    `Subject: ${subject}`,
    `Message-ID: <real-${i}@example.org>`,
  ];
  if (thread !== undefined) {
    // A long thread: every reply lists its ancestors (RFC 5322 §3.6.4), up to about 30 of them.
    const depth = i % 30;
    const refs = Array.from({ length: depth }, (_, d) => `<thread-${thread}-${d}@example.org>`);
    if (refs.length) lines.push(`In-Reply-To: ${refs[refs.length - 1]}`, `References: ${refs.join('\r\n ')}`);
  }
  lines.push('MIME-Version: 1.0', `Content-Type: ${contentType}`);
  return lines;
}

function htmlDocument(random: () => number, bytes: number, images: string[]): string {
  const style = Array.from(
    { length: 40 },
    (_, k) => `.c${k}{font-family:Helvetica,Arial,sans-serif;color:#3${k % 10}3;padding:${k}px}`,
  ).join('\n');
  const body: string[] = [];
  let size = style.length;
  for (const p of paragraphs(random, bytes - size)) {
    const block = `<tr><td class="c${body.length % 40}" style="padding:8px 24px"><p>${p}</p></td></tr>`;
    body.push(block);
    size += block.length;
  }
  const pictures = images.map((cid) => `<tr><td><img src="cid:${cid}" width="600" alt=""></td></tr>`);
  return (
    '<!DOCTYPE html><html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">' +
    `<style type="text/css">\r\n${style}\r\n</style></head><body><table width="100%">\r\n` +
    [...pictures.slice(0, 1), ...body, ...pictures.slice(1)].join('\r\n') +
    '\r\n</table></body></html>'
  );
}

const LEGACY = ['latin1-qp.eml', 'windows-1252.eml', 'shift-jis.eml', 'iso-2022-jp.eml'] as const;

const ATTACHMENT_TYPES = [
  ['application/pdf', 'pdf'],
  ['image/jpeg', 'jpg'],
  ['application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'docx'],
  ['application/zip', 'zip'],
] as const;

/** Message `i` of the mailbox generated from `seed`, as raw bytes (CRLF line ends). */
export function realisticMessage(i: number, seed = 1): Buffer {
  const random = prng(seed * 1_000_003 + i);
  const kind = random();
  const boundary = (n: number): string => `----=_Part_${i}_${n}`;
  if (kind < 0.3) {
    const thread = Math.floor(i / 40);
    const own = paragraphs(random, logNormal(random, 1500, 0.8, 200, 20_000)).join('\r\n\r\n');
    // Quoted history grows along the thread.
    const history = paragraphs(random, (i % 30) * 400)
      .map((p) => `> ${p}`)
      .join('\r\n>\r\n');
    const text = `${own}\r\n\r\nOn an earlier day someone wrote:\r\n${history}\r\n`;
    return Buffer.from(
      [
        ...headers(
          i,
          random,
          `Re: Thread ${thread} about the Q${(thread % 4) + 1} plan`,
          'text/plain; charset=utf-8',
          thread,
        ),
        'Content-Transfer-Encoding: quoted-printable',
        '',
        quotedPrintable(text),
        '',
      ].join('\r\n'),
    );
  }
  if (kind < 0.5) {
    const text = paragraphs(random, logNormal(random, 3000, 0.9, 300, 60_000)).join('\r\n\r\n');
    const html = `<html><body>${text
      .split('\r\n\r\n')
      .map((p) => `<p>${p}</p>`)
      .join('\r\n')}</body></html>`;
    const b = boundary(1);
    return Buffer.from(
      [
        ...headers(i, random, `Update ${i}: status of the release`, `multipart/alternative; boundary="${b}"`),
        '',
        `--${b}`,
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: quoted-printable',
        '',
        quotedPrintable(text),
        `--${b}`,
        'Content-Type: text/html; charset=utf-8',
        'Content-Transfer-Encoding: quoted-printable',
        '',
        quotedPrintable(html),
        `--${b}--`,
        '',
      ].join('\r\n'),
    );
  }
  if (kind < 0.65) {
    const images = Array.from({ length: 2 + Math.floor(random() * 5) }, (_, k) => `img${k}.${i}@news.example.org`);
    const html = htmlDocument(random, logNormal(random, 40_000, 0.6, 8_000, 300_000), images);
    const text = paragraphs(random, 4000).join('\r\n\r\n');
    const related = boundary(1);
    const alternative = boundary(2);
    const lines = [
      ...headers(
        i,
        random,
        `Newsletter ${i % 52}: news from the team`,
        `multipart/related; boundary="${related}"; type="multipart/alternative"`,
      ),
      '',
      `--${related}`,
      `Content-Type: multipart/alternative; boundary="${alternative}"`,
      '',
      `--${alternative}`,
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      quotedPrintable(text),
      `--${alternative}`,
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      quotedPrintable(html),
      `--${alternative}--`,
      '',
    ];
    for (const cid of images) {
      lines.push(
        `--${related}`,
        `Content-Type: image/png; name="${cid.split('@')[0]}.png"`,
        'Content-Transfer-Encoding: base64',
        `Content-ID: <${cid}>`,
        'Content-Disposition: inline',
        '',
        base64Attachment(random, logNormal(random, 15_000, 0.8, 1_000, 120_000)),
      );
    }
    lines.push(`--${related}--`, '');
    return Buffer.from(lines.join('\r\n'));
  }
  if (kind < 0.7) {
    // Legacy charsets: the corpus messages, with their own bytes, under a new Message-ID.
    const fixture = Buffer.from(loadMailFixture(LEGACY[i % LEGACY.length]!)).toString('latin1');
    return Buffer.from(fixture.replace(/^Message-ID: .*$/im, `Message-ID: <real-${i}@example.org>`), 'latin1');
  }
  const mixed = boundary(1);
  const text = paragraphs(random, logNormal(random, 1200, 0.7, 200, 10_000)).join('\r\n\r\n');
  const lines = [
    ...headers(i, random, `Documents for ${i}`, `multipart/mixed; boundary="${mixed}"`),
    '',
    `--${mixed}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    quotedPrintable(text),
  ];
  const count = 1 + Math.floor(random() * random() * 3);
  for (let k = 0; k < count; k++) {
    const [type, extension] = ATTACHMENT_TYPES[Math.floor(random() * ATTACHMENT_TYPES.length)]!;
    // Log-normal around 60 KB; a few in a thousand reach 5 MB and more, capped at 25 MB encoded (18 MB of bytes).
    // One message in a thousand carries an 18 MB file (25 MB encoded), the most providers accept.
    const size =
      k === 0 && i % 1000 === 999 ? 18 * 1024 * 1024 : logNormal(random, 60_000, 1.5, 2_000, 18 * 1024 * 1024);
    const name = k === 1 ? `Übersicht ${i}.${extension}` : `document-${i}-${k}.${extension}`;
    lines.push(
      `--${mixed}`,
      `Content-Type: ${type}; name="${name}"`,
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment; filename*=utf-8''${encodeURIComponent(name)}`,
      '',
      base64Attachment(random, size),
    );
  }
  lines.push(`--${mixed}--`, '');
  return Buffer.from(lines.join('\r\n'));
}
