/**
 * Outgoing mail as SendMail, SmartReply and SmartForward hand it over (MS-ASCMD §2.2.1.17, §2.2.1.20, §2.2.1.19): the
 * device's MIME made ready to send, and, for a SmartReply or SmartForward without ReplaceMime, the message built from
 * the device's new text and the original, as Exchange does it. Runtime-neutral: postal-mime parses, nodemailer's
 * MailComposer builds; neither needs more than nodejs_compat.
 *
 * What happens to a message on its way out:
 * - it gets the headers RFC 5322 wants and devices sometimes leave to the server: Date, Message-ID, From (the user);
 * - a reply gets In-Reply-To and References of the original, unless the device set them;
 * - the envelope goes to every To, Cc and Bcc address (and 16.x Forwardees);
 * - the copy that travels has no Bcc header; the copy for Sent Items keeps it, as a mail client's does.
 *
 * The only thing done to MIME by hand is editing the top-level header block of the device's message (dropping Bcc,
 * adding the missing fields): the body, and any signature over it, stays byte for byte as the device sent it.
 */
import { Buffer } from 'node:buffer';
import MailComposer from 'nodemailer/lib/mail-composer';
import PostalMime, { type Address, type Attachment, type Email } from 'postal-mime';
import { htmlToPlainText, plainTextToHtml } from './body.ts';

export interface Mailbox {
  name: string;
  address: string;
}

/** What the sending needs to know of a message. */
export interface OutgoingMessage {
  /** The message for Sent Items: complete, Bcc header kept. */
  full: Uint8Array;
  /** The message that travels: `full` without its Bcc header. */
  wire: Uint8Array;
  /** MAIL FROM and RCPT TO. */
  envelope: { from: string; to: string[] };
  messageId: string;
  /** Who the message says it is from: the From addresses and the Sender (RFC 5322 §3.6.2). */
  authors: string[];
  /** The Message-ID the device gave the message (undefined when this module made one). */
  deviceMessageId?: string;
}

/** The device's message (or the composed one) could not be read as MIME. */
export class InvalidMimeError extends Error {
  override readonly name = 'InvalidMimeError';
}

const PARSE_OPTIONS = { forceRfc822Attachments: true, attachmentEncoding: 'arraybuffer' } as const;

export async function parseMime(source: Uint8Array): Promise<Email> {
  if (source.length === 0) throw new InvalidMimeError('the message is empty');
  const header = splitHeader(source).header;
  // A message must start with a header field; something else (WBXML, a stray body) is not a message.
  if (!/^[!-9;-~]+:/.test(header)) throw new InvalidMimeError('the message does not start with a header field');
  try {
    return await PostalMime.parse(source, PARSE_OPTIONS);
  } catch (err) {
    throw new InvalidMimeError(`the message is not MIME: ${(err as Error).message}`);
  }
}

export interface PrepareOptions {
  /** The sender when the message names none: the user's login (an address). */
  user: string;
  /** Threading headers to add when the message has none (a reply's). */
  inReplyTo?: string;
  references?: string[];
  /** More envelope recipients (16.x Forwardees), added to To unless the message already addresses them. */
  extraRecipients?: Mailbox[];
  now?: Date;
}

/**
 * Completes a message for sending: missing Date, Message-ID, From and threading headers, the envelope, Bcc off the
 * wire.
 */
export async function prepareOutgoing(source: Uint8Array, options: PrepareOptions): Promise<OutgoingMessage> {
  const parsed = await parseMime(source);
  const has = (name: string): boolean => parsed.headers.some((h) => h.key === name);
  const from = mailboxes(parsed.from ? [parsed.from] : undefined)[0];
  const sender = from?.address ?? options.user;
  const messageId = parsed.messageId?.trim() || newMessageId(sender);

  const recipients = [...mailboxes(parsed.to), ...mailboxes(parsed.cc), ...mailboxes(parsed.bcc)];
  const known = new Set(recipients.map((m) => m.address.toLowerCase()));
  const extra = (options.extraRecipients ?? []).filter((m) => m.address && !known.has(m.address.toLowerCase()));

  const add: [string, string][] = [];
  if (!has('date')) add.push(['Date', rfc5322Date(options.now ?? new Date())]);
  if (!has('message-id')) add.push(['Message-ID', messageId]);
  if (!has('from')) add.push(['From', options.user]);
  if (options.inReplyTo && !has('in-reply-to')) add.push(['In-Reply-To', options.inReplyTo]);
  if (options.references?.length && !has('references')) add.push(['References', options.references.join(' ')]);
  if (extra.length > 0) {
    if (has('to')) return prepareOutgoing(appendToField(source, extra), { ...options, extraRecipients: [] });
    add.push(['To', extra.map(formatMailbox).join(', ')]);
  }

  const full = addHeaderFields(source, add);
  const wire = removeHeaderFields(full, ['bcc', 'resent-bcc']);
  const to = unique([...recipients, ...extra].map((m) => m.address));
  const deviceMessageId = parsed.messageId?.trim() || undefined;
  const authors = [
    ...(has('from') ? mailboxes(parsed.from ? [parsed.from] : undefined).map((m) => m.address) : [options.user]),
    ...mailboxes(parsed.sender ? [parsed.sender] : undefined).map((m) => m.address),
  ];
  // A From the parser could not read as an address is no address at all: it must not pass a sender check.
  if (has('from') && !from) authors.push('');
  return {
    full,
    wire,
    envelope: { from: sender, to },
    messageId,
    authors,
    ...(deviceMessageId ? { deviceMessageId } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// SmartReply and SmartForward without ReplaceMime

/**
 * Whether a message is S/MIME at its top level (RFC 8551 §3): clear-signed (multipart/signed with a PKCS #7
 * signature, §3.5.3) or enveloped or opaque-signed (application/pkcs7-mime, §3.2). Nothing can be added to its body
 * without breaking the signature or, for an encrypted one, putting text beside the encryption.
 */
export function isSmimeMessage(source: Uint8Array): boolean {
  const contentType = fields(headerBlock(source))
    .find((f) => fieldName(f) === 'content-type')
    ?.slice('content-type:'.length)
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();
  if (!contentType) return false;
  const mediaType = contentType.split(';')[0]!.trim();
  if (mediaType === 'application/pkcs7-mime' || mediaType === 'application/x-pkcs7-mime') return true;
  const protocol = /;\s*protocol\s*=\s*"?([^";\s]+)/.exec(contentType)?.[1];
  return (
    mediaType === 'multipart/signed' &&
    (protocol === 'application/pkcs7-signature' || protocol === 'application/x-pkcs7-signature')
  );
}

export type SmartKind = 'reply' | 'forward';

/**
 * The message to send for a SmartReply or SmartForward: the device's message (addresses, subject, new text, its own
 * attachments) with the original below it, quoted for a reply, under a "Forwarded message" header block for a
 * forward. A forward carries the original's attachments; a reply only the inline images its quoted HTML shows.
 * In-Reply-To and References point at the original (unless the device set them).
 */
export async function composeSmart(
  kind: SmartKind,
  deviceMime: Uint8Array,
  originalSource: Uint8Array,
  options: SmartOptions = {},
): Promise<Uint8Array> {
  const device = await parseMime(deviceMime);
  const quote = options.quoteOriginal ?? true;
  const original = await PostalMime.parse(originalSource, PARSE_OPTIONS);
  const header = (email: Email, name: string): string | undefined => email.headers.find((h) => h.key === name)?.value;

  const newText = device.text ?? (device.html !== undefined ? htmlToPlainText(device.html) : '');
  const originalText = original.text ?? (original.html !== undefined ? htmlToPlainText(original.html) : '');
  const intro =
    kind === 'reply'
      ? replyIntro(original, header(original, 'date'))
      : forwardIntro(original, header(original, 'date'));
  const text = !quote
    ? newText
    : kind === 'reply'
      ? `${trimEnd(newText)}\n\n${intro.join('\n')}\n${quoteText(originalText)}\n`
      : `${trimEnd(newText)}\n\n${intro.join('\n')}\n\n${originalText}`;

  // HTML when either side has it: the device's HTML (or its text as HTML), the original's below.
  const withHtml = device.html !== undefined || (quote && original.html !== undefined);
  let html: string | undefined = quote ? undefined : device.html;
  if (withHtml && quote) {
    const originalHtml = bodyContent(original.html ?? plainTextToHtml(originalText));
    const introHtml = intro.map(escapeHtml).join('<br>');
    const block =
      kind === 'reply'
        ? `<div><br></div><div>${introHtml}</div><blockquote type="cite" style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">${originalHtml}</blockquote>`
        : `<div><br></div><div>${introHtml}</div><br>${originalHtml}`;
    html = insertBeforeBodyEnd(device.html ?? plainTextToHtml(newText), block);
  }

  const quotedInline = original.attachments.filter(
    (a) => a.contentId !== undefined && (a.related || a.disposition === 'inline'),
  );
  const carried = !quote ? [] : kind === 'forward' ? original.attachments : withHtml ? quotedInline : [];
  const references = referencesOf(original);
  const carriedHeaders = device.headers
    .filter((h) => CARRIED_HEADERS.has(h.key))
    .map((h) => ({ key: h.originalKey || h.key, value: { prepared: true, value: h.value } }));

  const composer = new MailComposer({
    from: toComposer(mailboxes(device.from ? [device.from] : undefined)),
    to: toComposer(mailboxes(device.to)),
    cc: toComposer(mailboxes(device.cc)),
    bcc: toComposer(mailboxes(device.bcc)),
    replyTo: toComposer(mailboxes(device.replyTo)),
    subject: device.subject ?? '',
    ...(device.messageId ? { messageId: device.messageId } : {}),
    ...(header(device, 'date') ? { date: header(device, 'date') } : {}),
    inReplyTo: device.inReplyTo ?? original.messageId,
    references: device.references ?? (references.length ? references : undefined),
    text,
    ...(html !== undefined ? { html } : {}),
    attachments: [...device.attachments, ...carried].map(toComposerAttachment),
    headers: carriedHeaders,
    ...(options.calendar ? { icalEvent: { method: options.calendar.method, content: options.calendar.ics } } : {}),
    newline: 'win',
    textEncoding: 'B',
  });
  const node = composer.compile();
  // The copy for Sent Items keeps Bcc; prepareOutgoing takes it off the one that travels.
  node.keepBcc = true;
  return new Uint8Array(await node.build());
}

export interface SmartOptions {
  /** A text/calendar part to carry (a forwarded meeting's REQUEST): an alternative with `method=`, and invite.ics. */
  calendar?: { method: string; ics: string };
  /**
   * false: the device's text without the original (ReplaceMime on a calendar item, whose forward still has `calendar`).
   */
  quoteOriginal?: boolean;
}

/** Headers of the device's message that say something about it and are kept in the composed one. */
const CARRIED_HEADERS = new Set([
  'importance',
  'priority',
  'x-priority',
  'x-msmail-priority',
  'sensitivity',
  'disposition-notification-to',
  'return-receipt-to',
  'thread-topic',
  'thread-index',
  'x-mailer',
  'user-agent',
  'content-language',
]);

/** In-Reply-To and References for a reply to `original`: its References (or In-Reply-To), then its Message-ID. */
export function referencesOf(original: Email): string[] {
  const ids = (text: string | undefined): string[] => text?.match(/<[^<>\s]+>/g) ?? [];
  const earlier = ids(original.references).length ? ids(original.references) : ids(original.inReplyTo);
  return unique([...earlier, ...ids(original.messageId)]);
}

function replyIntro(original: Email, date: string | undefined): string[] {
  const from =
    mailboxes(original.from ? [original.from] : undefined)
      .map(formatMailboxReadable)
      .join(', ') || 'someone';
  return [date ? `On ${date.trim()}, ${from} wrote:` : `${from} wrote:`];
}

function forwardIntro(original: Email, date: string | undefined): string[] {
  const lines = ['---------- Forwarded message ----------'];
  const list = (a: Address[] | undefined): string => mailboxes(a).map(formatMailboxReadable).join(', ');
  const from = list(original.from ? [original.from] : undefined);
  if (from) lines.push(`From: ${from}`);
  if (date) lines.push(`Date: ${date.trim()}`);
  lines.push(`Subject: ${original.subject ?? ''}`);
  if (list(original.to)) lines.push(`To: ${list(original.to)}`);
  if (list(original.cc)) lines.push(`Cc: ${list(original.cc)}`);
  return lines;
}

function quoteText(text: string): string {
  return trimEnd(text)
    .split(/\r?\n/)
    .map((line) => (line === '' ? '>' : line.startsWith('>') ? `>${line}` : `> ${line}`))
    .join('\n');
}

function trimEnd(text: string): string {
  return text.replace(/\s+$/, '');
}

/** The inside of an HTML document's body (the whole text when it has no body element). */
function bodyContent(html: string): string {
  const start = /<body\b[^>]*>/i.exec(html);
  const from = start ? start.index + start[0].length : 0;
  const end = html.search(/<\/body\s*>/i);
  return html.slice(from, end >= from ? end : undefined).replace(/^[\s\S]*?<\/head\s*>/i, '');
}

function insertBeforeBodyEnd(html: string, block: string): string {
  const end = html.search(/<\/body\s*>/i);
  return end < 0 ? html + block : html.slice(0, end) + block + html.slice(end);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&quot;'));
}

function toComposer(list: Mailbox[]): { name: string; address: string }[] | undefined {
  return list.length ? list.map((m) => ({ name: m.name, address: m.address })) : undefined;
}

function toComposerAttachment(a: Attachment): {
  filename?: string;
  contentType: string;
  content: Buffer;
  cid?: string;
  contentDisposition: string;
} {
  const bytes =
    typeof a.content === 'string'
      ? Buffer.from(a.content, a.encoding === 'base64' ? 'base64' : 'utf8')
      : Buffer.from(a.content as ArrayBuffer);
  const cid = a.contentId?.replace(/^<|>$/g, '');
  return {
    ...(a.filename ? { filename: a.filename } : {}),
    contentType: a.mimeType,
    content: bytes,
    ...(cid && (a.related || a.disposition === 'inline') ? { cid } : {}),
    contentDisposition: a.disposition === 'inline' ? 'inline' : 'attachment',
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Addresses

/** Every mailbox of an address list, groups flattened, those without an address left out. */
export function mailboxes(list: Address[] | undefined): Mailbox[] {
  const out: Mailbox[] = [];
  for (const a of list ?? [])
    for (const m of a.group ?? [a]) if (m.address) out.push({ name: m.name ?? '', address: m.address });
  return out;
}

function formatMailbox(m: Mailbox): string {
  if (!m.name) return `<${m.address}>`;
  // RFC 2047 for names that are not ASCII; a quoted string otherwise.
  const name = /^[\x20-\x7e]*$/.test(m.name)
    ? `"${m.name.replace(/[\\"]/g, '\\$&')}"`
    : `=?UTF-8?B?${Buffer.from(m.name, 'utf8').toString('base64')}?=`;
  return `${name} <${m.address}>`;
}

function formatMailboxReadable(m: Mailbox): string {
  return m.name ? `${m.name} <${m.address}>` : m.address;
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}

/** `<uuid@domain>`, in the sender's domain. */
export function newMessageId(sender: string): string {
  const domain = /@([^@\s>]+)$/.exec(sender)?.[1] ?? 'activesync.invalid';
  return `<${crypto.randomUUID()}@${domain}>`;
}

/** RFC 5322 date-time in UTC: `Tue, 03 Mar 2026 10:04:05 +0000`. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

// ---------------------------------------------------------------------------------------------------------------------
// The top-level header block, edited as text (Latin-1, so that every byte survives)

interface SplitMessage {
  /** The header fields, each with its folded lines, without the blank line that ends them. */
  header: string;
  /** The blank line and everything after it. */
  rest: Uint8Array;
  newline: string;
}

/** Where a header block is looked for first; a longer one makes the whole message decoded. */
const HEADER_SCAN_BYTES = 1 << 20;

/** The top-level header block of a message, as text (Latin-1), without the blank line that ends it. */
export function headerBlock(source: Uint8Array): string {
  return splitHeader(source).header;
}

function splitHeader(source: Uint8Array): SplitMessage {
  const latin1 = (bytes: Uint8Array): string =>
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  let text = latin1(source.subarray(0, HEADER_SCAN_BYTES));
  let end = /\r?\n\r?\n/.exec(text);
  if (!end && source.length > HEADER_SCAN_BYTES) {
    text = latin1(source);
    end = /\r?\n\r?\n/.exec(text);
  }
  const newline = /\r\n/.test(text.slice(0, 4096)) ? '\r\n' : '\n';
  if (!end) return { header: text.replace(/\r?\n$/, ''), rest: new Uint8Array(0), newline };
  return { header: text.slice(0, end.index), rest: source.subarray(end.index), newline };
}

function joinHeader(header: string, rest: Uint8Array, newline: string): Uint8Array {
  const head = Buffer.from(header, 'latin1');
  const tail = rest.length ? rest : Buffer.from(newline + newline, 'latin1');
  const out = new Uint8Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}

/** The header fields, each with its continuation lines. */
function fields(header: string): string[] {
  const out: string[] = [];
  for (const line of header.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && out.length) out[out.length - 1] += `\n${line}`;
    else out.push(line);
  }
  return out;
}

function fieldName(field: string): string {
  return field
    .slice(0, Math.max(0, field.indexOf(':')))
    .trim()
    .toLowerCase();
}

/** The message without the named top-level header fields (lower-case names). */
export function removeHeaderFields(source: Uint8Array, names: string[]): Uint8Array {
  const { header, rest, newline } = splitHeader(source);
  const all = fields(header);
  const kept = all.filter((f) => !names.includes(fieldName(f)));
  if (kept.length === all.length) return source;
  return joinHeader(kept.map((f) => f.replaceAll('\n', newline)).join(newline), rest, newline);
}

/** The message with these fields added at the top of its header (values ASCII or RFC 2047 already). */
export function addHeaderFields(source: Uint8Array, add: [string, string][]): Uint8Array {
  if (add.length === 0) return source;
  const { header, rest, newline } = splitHeader(source);
  const lines = add.map(([name, value]) => `${name}: ${value.replace(/[\r\n]+/g, ' ')}`);
  return joinHeader([...lines, header].join(newline), rest, newline);
}

/** Adds mailboxes to the message's To field (its first one). */
function appendToField(source: Uint8Array, extra: Mailbox[]): Uint8Array {
  const { header, rest, newline } = splitHeader(source);
  let done = false;
  const edited = fields(header).map((f) => {
    if (done || fieldName(f) !== 'to') return f;
    done = true;
    return `${f.replace(/[\s,]+$/, '')},\n ${extra.map(formatMailbox).join(',\n ')}`;
  });
  return joinHeader(edited.map((f) => f.replaceAll('\n', newline)).join(newline), rest, newline);
}
