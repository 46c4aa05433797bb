// Builds realistic RFC 5322 / MIME messages for seeding IMAP and sending over SMTP.
// Written by hand (not nodemailer) so the output is synchronous and the structure is
// exactly what a test asks for: text/plain (quoted-printable), multipart/alternative,
// multipart/mixed with base64 attachments, RFC 2047 encoded headers, CRLF line ends.
import { randomBytes } from 'node:crypto';

export interface MailAddress {
  name?: string;
  address: string;
}

/** `"Name <a@b>"`, `"a@b"` or a structured address. */
export type AddressInput = string | MailAddress;

export interface MessageAttachment {
  filename: string;
  contentType: string;
  content: Buffer | string;
  /** Inline part referenced from HTML by `cid:<contentId>`. */
  contentId?: string;
}

export interface MessageOptions {
  from?: AddressInput;
  to?: AddressInput | readonly AddressInput[];
  cc?: AddressInput | readonly AddressInput[];
  replyTo?: AddressInput;
  subject?: string;
  /** Plain-text body. Defaults to a short greeting when neither text nor html is given. */
  text?: string;
  /** HTML body; with `text` the message becomes multipart/alternative. */
  html?: string;
  attachments?: readonly MessageAttachment[];
  date?: Date;
  /** With or without angle brackets. Generated when omitted. */
  messageId?: string;
  inReplyTo?: string;
  references?: readonly string[];
  importance?: 'high' | 'normal' | 'low';
  /** Extra header lines, written as given (ASCII). */
  headers?: Readonly<Record<string, string>>;
}

const CRLF = '\r\n';
const DEFAULT_DOMAIN = 'example.test';

function token(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}

function isAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

/**
 * RFC 2047 encoded-words (UTF-8, base64) for a header text with non-ASCII characters.
 * Splits on character boundaries; each word is at most 64 characters (RFC 2047 allows 75).
 */
export function encodeHeaderWords(text: string): string {
  if (isAscii(text)) return text;
  const words: string[] = [];
  let chunk = '';
  for (const ch of text) {
    if (Buffer.byteLength(chunk + ch, 'utf8') > 39) {
      words.push(chunk);
      chunk = '';
    }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, 'utf8').toString('base64')}?=`).join(`${CRLF} `);
}

export function parseAddress(input: AddressInput): MailAddress {
  if (typeof input !== 'string') return input;
  const m = /^\s*(?:"?([^"<]*?)"?\s*)<([^>]+)>\s*$/.exec(input);
  if (m?.[2]) return m[1] ? { name: m[1], address: m[2] } : { address: m[2] };
  return { address: input.trim() };
}

export function formatAddress(input: AddressInput): string {
  const { name, address } = parseAddress(input);
  if (!name) return address;
  if (!isAscii(name)) return `${encodeHeaderWords(name)} <${address}>`;
  return /[()<>@,;:\\".[\]]/.test(name) ? `"${name.replace(/["\\]/g, '\\$&')}" <${address}>` : `${name} <${address}>`;
}

function addressList(input: AddressInput | readonly AddressInput[]): string {
  const list: readonly AddressInput[] = Array.isArray(input) ? input : [input as AddressInput];
  return list.map(formatAddress).join(`,${CRLF} `);
}

export function addressesOf(input: AddressInput | readonly AddressInput[] | undefined): string[] {
  if (input === undefined) return [];
  const list: readonly AddressInput[] = Array.isArray(input) ? input : [input as AddressInput];
  return list.map((a) => parseAddress(a).address);
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 date in UTC, e.g. `Tue, 03 Mar 2026 09:00:00 +0000`. */
export function rfc5322Date(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return (
    `${DAYS[d.getUTCDay()]}, ${p(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`
  );
}

function angle(id: string): string {
  return id.startsWith('<') ? id : `<${id}>`;
}

/** Quoted-printable (RFC 2045) of UTF-8 text, CRLF line ends, soft breaks at 76 characters. */
export function quotedPrintable(text: string): string {
  const lines = text.replace(/\r?\n/g, '\n').split('\n');
  return lines
    .map((line) => {
      const bytes = Buffer.from(line, 'utf8');
      let out = '';
      let width = 0;
      bytes.forEach((b, i) => {
        const last = i === bytes.length - 1;
        const plain = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last);
        const enc = plain ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
        if (width + enc.length > 75) {
          out += `=${CRLF}`;
          width = 0;
        }
        out += enc;
        width += enc.length;
      });
      return out;
    })
    .join(CRLF);
}

function base64Lines(content: Buffer | string): string {
  const b64 = Buffer.from(content).toString('base64');
  return (b64.match(/.{1,76}/g) ?? []).join(CRLF);
}

/** A MIME entity: its own headers and body, without the message headers. */
interface Part {
  headers: string[];
  body: string;
}

function textPart(subtype: 'plain' | 'html', text: string): Part {
  return {
    headers: [`Content-Type: text/${subtype}; charset=utf-8`, 'Content-Transfer-Encoding: quoted-printable'],
    body: quotedPrintable(text),
  };
}

function filenameParams(filename: string): string {
  if (isAscii(filename)) return `filename="${filename}"`;
  // RFC 2231 here; Content-Type's name= carries the RFC 2047 form that many clients read instead.
  return `filename*=utf-8''${encodeURIComponent(filename)}`;
}

function attachmentPart(a: MessageAttachment): Part {
  const nameParam = isAscii(a.filename) ? `name="${a.filename}"` : `name="${encodeHeaderWords(a.filename)}"`;
  const headers = [
    `Content-Type: ${a.contentType}; ${nameParam}`,
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: ${a.contentId ? 'inline' : 'attachment'}; ${filenameParams(a.filename)}`,
  ];
  if (a.contentId) headers.push(`Content-ID: ${angle(a.contentId)}`);
  return { headers, body: base64Lines(a.content) };
}

function multipart(subtype: 'alternative' | 'mixed' | 'related', parts: readonly Part[]): Part {
  const boundary = `----=_Part_${token(6)}`;
  const body = parts.map((p) => `--${boundary}${CRLF}${p.headers.join(CRLF)}${CRLF}${CRLF}${p.body}${CRLF}`).join('');
  return {
    headers: [`Content-Type: multipart/${subtype};${CRLF} boundary="${boundary}"`],
    body: `This is a multi-part message in MIME format.${CRLF}${CRLF}${body}--${boundary}--${CRLF}`,
  };
}

function bodyPart(opts: MessageOptions): Part {
  const text =
    opts.text ?? (opts.html === undefined ? 'Hello,\n\nthis is a test message.\n\n-- \nTest Sender\n' : undefined);
  const inline = (opts.attachments ?? []).filter((a) => a.contentId);
  const files = (opts.attachments ?? []).filter((a) => !a.contentId);
  let htmlPart = opts.html === undefined ? undefined : textPart('html', opts.html);
  if (htmlPart && inline.length) htmlPart = multipart('related', [htmlPart, ...inline.map(attachmentPart)]);
  let main: Part;
  if (text !== undefined && htmlPart) main = multipart('alternative', [textPart('plain', text), htmlPart]);
  else main = htmlPart ?? textPart('plain', text ?? '');
  return files.length ? multipart('mixed', [main, ...files.map(attachmentPart)]) : main;
}

/** Builds a complete message (headers + MIME body) with CRLF line ends. */
export function makeMessage(opts: MessageOptions = {}): Buffer {
  const from = opts.from ?? { name: 'Test Sender', address: `sender@${DEFAULT_DOMAIN}` };
  const headers = [
    `Date: ${rfc5322Date(opts.date ?? new Date())}`,
    `From: ${addressList(from)}`,
    `To: ${addressList(opts.to ?? `alice@${DEFAULT_DOMAIN}`)}`,
  ];
  if (opts.cc !== undefined) headers.push(`Cc: ${addressList(opts.cc)}`);
  if (opts.replyTo !== undefined) headers.push(`Reply-To: ${formatAddress(opts.replyTo)}`);
  headers.push(`Subject: ${encodeHeaderWords(opts.subject ?? 'Test message')}`);
  headers.push(`Message-ID: ${angle(opts.messageId ?? `${token()}@${DEFAULT_DOMAIN}`)}`);
  if (opts.inReplyTo) headers.push(`In-Reply-To: ${angle(opts.inReplyTo)}`);
  if (opts.references?.length) headers.push(`References: ${opts.references.map(angle).join(' ')}`);
  if (opts.importance && opts.importance !== 'normal') {
    headers.push(
      `Importance: ${opts.importance}`,
      `X-Priority: ${opts.importance === 'high' ? '1 (Highest)' : '5 (Lowest)'}`,
    );
  }
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers.push(`${k}: ${v}`);
  headers.push('MIME-Version: 1.0');
  const body = bodyPart(opts);
  return Buffer.from(`${[...headers, ...body.headers].join(CRLF)}${CRLF}${CRLF}${body.body}`, 'utf8');
}

/** The Message-ID header of a built message, with angle brackets, or null. */
export function messageIdOf(raw: Buffer | string): string | null {
  const head = raw.toString().split(/\r?\n\r?\n/, 1)[0] ?? '';
  return /^Message-ID:\s*(<[^>]+>)/im.exec(head)?.[1] ?? null;
}
