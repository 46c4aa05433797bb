/**
 * Drafts as a 16.0+ device edits them through Sync (MS-ASEMAIL 16.0, MS-ASAIRS 16.0): the Email
 * properties of a Sync Add or Change in the Drafts folder read into a DraftEdit, and the edit applied to the draft's
 * previous MIME (none for an Add) to give the new version, built with nodemailer's MailComposer.
 *
 * What a device sends for a draft: email:To, email:Cc, email2:Bcc, email:Subject, airsyncbase:Body (Type 1 plain or
 * 2 HTML, Data), email:Importance, and airsyncbase:Attachments with Add (ClientId, Content, DisplayName, ContentType,
 * Method, IsInline, ContentId) and Delete (FileReference). Read, Flag and Categories are flags, not MIME (the caller
 * applies them). A property the device leaves out keeps its value; an empty one clears it.
 *
 * The new version keeps the old one's Message-ID, From and threading headers (a draft of a reply stays a reply), its
 * other attachments in their order, then the added ones: attachment i of the result is kept[i] or, past them, added[i −
 * kept].
 */
import { Buffer } from 'node:buffer';
import MailComposer from 'nodemailer/lib/mail-composer';
import PostalMime, { type Attachment, type Email } from 'postal-mime';
import { child, children, childText, bytesOf, type WbxmlElement } from '../wbxml/tree.ts';
import { htmlToPlainText } from './body.ts';
import { mailboxes, newMessageId } from './outgoing.ts';

/** One attachment a device adds to a draft. */
export interface DraftAttachment {
  clientId: string;
  displayName: string;
  contentType: string | undefined;
  content: Uint8Array;
  isInline: boolean;
  contentId: string | undefined;
  /** 5: an embedded message (message/rfc822). */
  method: number | undefined;
}

/** What a Sync Add or Change says about a draft. Undefined fields keep the previous version's value. */
export interface DraftEdit {
  to?: string;
  cc?: string;
  bcc?: string;
  subject?: string;
  body?: { type: number; data: string };
  importance?: number;
  added: DraftAttachment[];
  /** The FileReferences of attachments to remove, as the device sent them (the caller maps them to parts). */
  deleted: string[];
}

/** Elements that make a Change a draft edit rather than a flags change (Read, Flag, Categories). */
const DRAFT_PROPERTIES: [string, WbxmlElement['ns']][] = [
  ['To', 'Email'],
  ['Cc', 'Email'],
  ['Bcc', 'Email2'],
  ['Subject', 'Email'],
  ['Body', 'AirSyncBase'],
  ['Importance', 'Email'],
  ['Attachments', 'AirSyncBase'],
];

/** Whether an ApplicationData changes the draft's content (and not only its flags). */
export function isDraftEdit(data: WbxmlElement | undefined): boolean {
  return DRAFT_PROPERTIES.some(([tag, ns]) => child(data, tag, ns) !== undefined);
}

/** The draft properties of a Sync Add or Change ApplicationData. */
export function readDraftEdit(data: WbxmlElement | undefined): DraftEdit {
  const edit: DraftEdit = { added: [], deleted: [] };
  const text = (tag: string, ns: WbxmlElement['ns']): string | undefined => {
    const element = child(data, tag, ns);
    return element ? (childText(data, tag, ns) ?? '') : undefined;
  };
  const to = text('To', 'Email');
  const cc = text('Cc', 'Email');
  const bcc = text('Bcc', 'Email2');
  const subject = text('Subject', 'Email');
  if (to !== undefined) edit.to = addressList(to);
  if (cc !== undefined) edit.cc = addressList(cc);
  if (bcc !== undefined) edit.bcc = addressList(bcc);
  if (subject !== undefined) edit.subject = subject;
  const importance = Number(text('Importance', 'Email'));
  if (importance === 0 || importance === 1 || importance === 2) edit.importance = importance;
  const body = child(data, 'Body', 'AirSyncBase');
  if (body)
    edit.body = {
      type: Number(childText(body, 'Type', 'AirSyncBase') ?? '1'),
      data: childText(body, 'Data', 'AirSyncBase') ?? '',
    };

  const attachments = child(data, 'Attachments', 'AirSyncBase');
  for (const add of children(attachments, 'Add', 'AirSyncBase')) {
    const method = Number(childText(add, 'Method', 'AirSyncBase'));
    const contentId = childText(add, 'ContentId', 'AirSyncBase')?.trim().replace(/^<|>$/g, '');
    edit.added.push({
      clientId: childText(add, 'ClientId', 'AirSyncBase') ?? '',
      displayName: childText(add, 'DisplayName', 'AirSyncBase')?.trim() || 'attachment',
      contentType: childText(add, 'ContentType', 'AirSyncBase')?.trim() || undefined,
      content: bytesOf(child(add, 'Content', 'AirSyncBase')),
      isInline: childText(add, 'IsInline', 'AirSyncBase') === '1',
      contentId: contentId || undefined,
      method: Number.isInteger(method) && method > 0 ? method : undefined,
    });
  }
  for (const del of children(attachments, 'Delete', 'AirSyncBase')) {
    const reference = childText(del, 'FileReference', 'AirSyncBase')?.trim();
    if (reference) edit.deleted.push(reference);
  }
  return edit;
}

/** Android sometimes separates addresses with `;`: make it a comma outside quoted names. */
function addressList(text: string): string {
  let out = '';
  let quoted = false;
  for (const c of text) {
    if (c === '"') quoted = !quoted;
    out += c === ';' && !quoted ? ',' : c;
  }
  return out.replace(/^[\s,]+|[\s,]+$/g, '');
}

const PARSE_OPTIONS = { forceRfc822Attachments: true, attachmentEncoding: 'arraybuffer' } as const;

/** A draft's attachments as postal-mime numbers them (the partIds of its FileReferences). */
export async function draftAttachmentCount(source: Uint8Array): Promise<number> {
  return (await PostalMime.parse(source, PARSE_OPTIONS)).attachments.length;
}

export interface DraftBuildOptions {
  /** The sender when the previous version names none: the user's address. */
  from: string;
  /** Indexes (postal-mime order) of the previous version's attachments to drop. */
  removeParts: ReadonlySet<number>;
  /** The Message-ID of a new draft (a previous version's is kept); a fresh one when not given. */
  messageId?: string;
  now?: Date;
}

/** The draft's new MIME: the previous version (if any) with the edit applied. */
export async function buildDraft(
  previous: Uint8Array | undefined,
  edit: DraftEdit,
  options: DraftBuildOptions,
): Promise<Uint8Array> {
  const old: Email | undefined = previous ? await PostalMime.parse(previous, PARSE_OPTIONS) : undefined;
  const header = (name: string): string | undefined => old?.headers.find((h) => h.key === name)?.value;
  const list = (value: string | undefined, before: Email['to']): string | undefined =>
    value !== undefined
      ? value || undefined
      : mailboxes(before)
          .map((m) => (m.name ? `"${m.name.replace(/[\\"]/g, '\\$&')}" <${m.address}>` : m.address))
          .join(', ') || undefined;

  let text = old?.text;
  let html = old?.html;
  if (edit.body) {
    // Type 2 is HTML; 1 (and anything a draft cannot hold: RTF, MIME) is taken as plain text.
    if (edit.body.type === 2) {
      html = edit.body.data;
      text = htmlToPlainText(edit.body.data);
    } else {
      text = edit.body.data;
      html = undefined;
    }
  }
  const importance = edit.importance ?? importanceOf(header);
  const from = mailboxes(old?.from ? [old.from] : undefined)[0];
  const kept = (old?.attachments ?? []).filter((_, i) => !options.removeParts.has(i));

  const composer = new MailComposer({
    from: from ? { name: from.name, address: from.address } : options.from,
    ...optional('to', list(edit.to, old?.to)),
    ...optional('cc', list(edit.cc, old?.cc)),
    ...optional('bcc', list(edit.bcc, old?.bcc)),
    subject: edit.subject ?? old?.subject ?? '',
    messageId: old?.messageId?.trim() || options.messageId || newMessageId(from?.address ?? options.from),
    date: options.now ?? new Date(),
    ...optional('inReplyTo', old?.inReplyTo),
    ...optional('references', old?.references),
    text: text ?? '',
    ...optional('html', html),
    attachments: [...kept.map(keptAttachment), ...edit.added.map(addedAttachment)],
    headers:
      importance === 2
        ? { Importance: 'High', 'X-Priority': '1 (Highest)' }
        : importance === 0
          ? { Importance: 'Low', 'X-Priority': '5 (Lowest)' }
          : {},
    newline: 'win',
    textEncoding: 'B',
  });
  const node = composer.compile();
  // A draft keeps its Bcc; sending takes it off the copy that travels (prepareOutgoing).
  node.keepBcc = true;
  return new Uint8Array(await node.build());
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** 0 low, 1 normal, 2 high, from the Importance or X-Priority header. */
function importanceOf(header: (name: string) => string | undefined): number {
  const importance = header('importance')?.trim().toLowerCase();
  if (importance === 'high') return 2;
  if (importance === 'low') return 0;
  const priority = /^\s*(\d)/.exec(header('x-priority') ?? '')?.[1];
  if (priority !== undefined) return priority <= '2' ? 2 : priority >= '4' ? 0 : 1;
  return 1;
}

interface ComposerAttachment {
  filename?: string;
  contentType?: string;
  content: Buffer;
  cid?: string;
  contentDisposition: 'inline' | 'attachment';
}

function keptAttachment(a: Attachment): ComposerAttachment {
  const bytes =
    typeof a.content === 'string'
      ? Buffer.from(a.content, a.encoding === 'base64' ? 'base64' : 'utf8')
      : Buffer.from(a.content as ArrayBuffer);
  const cid = a.contentId?.trim().replace(/^<|>$/g, '');
  return {
    ...(a.filename ? { filename: a.filename } : {}),
    contentType: a.mimeType,
    content: bytes,
    ...(cid ? { cid } : {}),
    contentDisposition: a.disposition === 'inline' ? 'inline' : 'attachment',
  };
}

function addedAttachment(a: DraftAttachment): ComposerAttachment {
  const contentType = a.contentType ?? (a.method === 5 ? 'message/rfc822' : undefined);
  return {
    filename: a.displayName,
    ...(contentType ? { contentType } : {}),
    content: Buffer.from(a.content.buffer, a.content.byteOffset, a.content.byteLength),
    ...(a.contentId ? { cid: a.contentId } : {}),
    contentDisposition: a.isInline ? 'inline' : 'attachment',
  };
}
