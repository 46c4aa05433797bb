/**
 * Notes (MS-ASNOTE, 14.0+) ⇄ notes as Apple's Notes keeps them in an IMAP folder: one message per note, marked by
 * `X-Uniform-Type-Identifier: com.apple.mail-note`, named for good by `X-Universally-Unique-Identifier` (an upper-case
 * UUID), created at `X-Mail-Created-Date`, last changed at `Date` (RFC 5322 §3.6.1), its title in `Subject` and as the
 * first line of a `text/html` body (quoted-printable, UTF-8). Categories, which Apple's notes do not have, travel in
 * `Keywords` (RFC 5322 §3.6.5).
 *
 * Item texts are message sources as binary strings (one character per byte: `noteSourceText`), so that any bytes a
 * client wrote come back unchanged. Pure: text in, WBXML or text out.
 */
import { Buffer } from 'node:buffer';
import MailComposer from 'nodemailer/lib/mail-composer';
import PostalMime, { type Attachment } from 'postal-mime';
import { child, childText, type WbxmlElement, el } from '../wbxml/tree.ts';
import { type BodyPreference, bodyElement, htmlToPlainText } from './body.ts';
import { extendedDateTime } from './datetime.ts';
import { deviceBody } from './icalendar.ts';

/** The Uniform Type Identifier Apple's Notes marks its messages with. */
export const NOTE_TYPE_IDENTIFIER = 'com.apple.mail-note';
/** MS-ASNOTE §2.2.2.6: the MessageClass of a note. */
export const NOTE_MESSAGE_CLASS = 'IPM.StickyNote';

const UUID_HEADER = 'X-Universally-Unique-Identifier';
const PARSE_OPTIONS = { attachmentEncoding: 'arraybuffer' } as const;

/** A message source as an item text: one character per byte. */
export function noteSourceText(source: Uint8Array): string {
  return Buffer.from(source).toString('latin1');
}

/** An item text back to the message's bytes. */
export function noteSourceBytes(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'latin1'));
}

/** The note's UUID as the message names it (upper-cased: Apple writes them so); undefined when it has none. */
export function noteIdentifier(headers: string): string | undefined {
  const match = /^X-Universally-Unique-Identifier:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)/im.exec(headerBlock(headers));
  const value = match?.[1]?.replace(/\s+/g, '').toUpperCase();
  return value ? value : undefined;
}

/** The message with this UUID in its X-Universally-Unique-Identifier (added when it has none). */
export function withNoteIdentifier(text: string, uuid: string): string {
  const head = headerBlock(text);
  const rest = text.slice(head.length);
  const field = `${UUID_HEADER}: ${uuid}`;
  const replaced = head.replace(/^X-Universally-Unique-Identifier:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*/im, field);
  if (replaced !== head) return replaced + rest;
  const newline = head.includes('\r\n') ? '\r\n' : '\n';
  return `${field}${newline}${text}`;
}

/** A UUID (upper case, 8-4-4-4-12) from 32 hex digits, e.g. a device Add's resource name. */
export function uuidFromHex(hex: string): string {
  const h = hex.padEnd(32, '0').slice(0, 32).toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The header section of a message (up to and including the empty line), or all of it when it has no body. */
function headerBlock(text: string): string {
  const end = /\r?\n\r?\n/.exec(text);
  return end ? text.slice(0, end.index + end[0].length) : text;
}

/** A note as a message holds it. */
interface ParsedNote {
  subject: string;
  html: string | undefined;
  text: string | undefined;
  modified: Date | undefined;
  created: string | undefined;
  uuid: string | undefined;
  from: string | undefined;
  categories: string[];
  attachments: Attachment[];
}

async function parseNote(text: string): Promise<ParsedNote> {
  const email = await PostalMime.parse(noteSourceBytes(text), PARSE_OPTIONS);
  const header = (name: string): string | undefined =>
    email.headers.find((h) => h.key === name.toLowerCase())?.value?.trim() || undefined;
  const date = email.date ? new Date(email.date) : undefined;
  return {
    subject: email.subject ?? '',
    html: email.html,
    text: email.text,
    modified: date && !Number.isNaN(date.getTime()) ? date : undefined,
    created: header('X-Mail-Created-Date'),
    uuid: noteIdentifier(text),
    from: email.from?.address || undefined,
    categories: (header('Keywords') ?? '')
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== ''),
    attachments: email.attachments,
  };
}

export interface NoteOutputOptions {
  version: string;
  bodyPreferences: readonly BodyPreference[];
}

/**
 * The ApplicationData children of a note (MS-ASNOTE §2.2.2): Subject, Body under the device's BodyPreference (plain
 * text or HTML; the HTML is Apple's, whose first line is the title), MessageClass, LastModifiedDate (the message's
 * Date; its arrival when it has none), Categories.
 */
export async function noteApplicationData(
  text: string,
  options: NoteOutputOptions,
  arrived?: Date,
): Promise<WbxmlElement[]> {
  const note = await parseNote(text);
  const modified = note.modified ?? arrived ?? new Date(0);
  return [
    el('Notes', 'Subject', note.subject),
    bodyElement(
      {
        ...(note.text !== undefined ? { text: note.text } : {}),
        ...(note.html !== undefined ? { html: note.html } : {}),
        mime: noteSourceBytes(text),
        isSmime: false,
      },
      options.bodyPreferences,
      0,
      { withPreview: true },
    ),
    el('Notes', 'MessageClass', NOTE_MESSAGE_CLASS),
    el('Notes', 'LastModifiedDate', extendedDateTime(modified)),
    note.categories.length > 0 &&
      el(
        'Notes',
        'Categories',
        note.categories.map((c) => el('Notes', 'Category', c)),
      ),
  ].filter((e): e is WbxmlElement => e !== false);
}

export interface NoteInputOptions {
  /** The note as the server has it (a device's Change): its UUID, creation date and what the Change leaves out stay. */
  existing?: string;
  /** The user's address, for From (Apple's notes carry the account's address). */
  userEmails?: readonly string[];
  /** The time of the write: the new Date (and X-Mail-Created-Date of a new note). */
  now?: Date;
}

/**
 * The message for a device's Add (a new UUID) or Change (merged into `existing`), as Apple's Notes writes one.
 * Absent Subject, Body (or a truncated one) and Categories keep what the note has; an empty Categories clears them.
 * The title is the body's first line for Apple's Notes: a body that does not start with the Subject gets it as its
 * first line.
 */
export async function noteFromApplicationData(app: WbxmlElement, options: NoteInputOptions = {}): Promise<string> {
  const old = options.existing !== undefined ? await parseNote(options.existing) : undefined;
  const now = options.now ?? new Date();
  const subject = childText(app, 'Subject', 'Notes') ?? old?.subject ?? '';
  const bodyElement = child(app, 'Body', 'AirSyncBase');
  const body = bodyElement ? deviceBody(bodyElement) : undefined;
  let html: string;
  if (body) html = withTitle(body.html ?? appleHtml(body.text), subject);
  else if (old) html = withTitle(old.html ?? appleHtml(old.text ?? ''), subject);
  else html = withTitle(appleHtml(''), subject);
  const categoriesElement = child(app, 'Categories', 'Notes');
  const categories = categoriesElement
    ? categoriesElement.children
        .filter((c) => c.tag === 'Category')
        .map((c) => (c.text ?? '').trim().replace(/,/g, ' '))
        .filter((c) => c !== '')
    : (old?.categories ?? []);
  const from = old?.from ?? options.userEmails?.[0];
  const composer = new MailComposer({
    ...(from ? { from } : {}),
    subject,
    date: now,
    html,
    textEncoding: 'quoted-printable',
    newline: 'win',
    // Images of a note written by Apple's Notes stay with it (multipart/related by their Content-ID).
    attachments: (old?.attachments ?? []).map((a) => ({
      ...(a.filename ? { filename: a.filename } : {}),
      content: Buffer.from(a.content as ArrayBuffer),
      contentType: a.mimeType,
      ...(a.contentId ? { cid: a.contentId.replace(/^<|>$/g, '') } : {}),
    })),
    headers: {
      'X-Uniform-Type-Identifier': NOTE_TYPE_IDENTIFIER,
      'X-Mail-Created-Date': old?.created ?? now.toUTCString().replace('GMT', '+0000'),
      [UUID_HEADER]: old?.uuid ?? crypto.randomUUID().toUpperCase(),
      ...(categories.length > 0 ? { Keywords: categories.join(', ') } : {}),
    },
  });
  return noteSourceText(new Uint8Array(await composer.compile().build()));
}

/** Plain text as Apple's Notes writes it: a `<div>` per line, `<div><br></div>` for an empty one. */
function appleHtml(text: string): string {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const divs = lines.map((line) => (line === '' ? '<div><br></div>' : `<div>${escapeHtml(line)}</div>`)).join('');
  return `<html><head></head><body>${divs}</body></html>`;
}

/** The HTML with the title as its first line, unless its text starts with it already. */
function withTitle(html: string, title: string): string {
  if (title.trim() === '' || htmlToPlainText(html).trimStart().startsWith(title.trim())) return html;
  const line = `<div>${escapeHtml(title)}</div>`;
  const bodyTag = /<body\b[^>]*>/i.exec(html);
  if (bodyTag)
    return html.slice(0, bodyTag.index + bodyTag[0].length) + line + html.slice(bodyTag.index + bodyTag[0].length);
  return `<html><head></head><body>${line}${html}</body></html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&quot;'));
}
