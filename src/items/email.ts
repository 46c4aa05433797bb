/**
 * A mail message (raw RFC 822 + IMAP flags) as ActiveSync Email ApplicationData (MS-ASEMAIL, MS-ASAIRS), and the
 * device's flag changes back as IMAP flags. Pure and runtime-neutral (Node and workerd): MIME parsing is postal-mime's.
 *
 * Decisions worth knowing:
 * - Attachments are numbered by their position in postal-mime's attachment list (`partId` "0", "1", …). The same
 *   source always yields the same list, so `attachmentContent` finds a part again by re-parsing the message.
 * - Every message/rfc822 part is an attachment (Method 5, named `.eml`), never inlined into the body, as Exchange does.
 * - Categories are IMAP keywords (src/items/category-keywords.ts).
 */
import PostalMime, { decodeWords, type Address, type Attachment, type Email } from 'postal-mime';
import { bodyElement, bodyPartElement, type BodyPolicy, type BodyPreference, type BodySource } from './body.ts';
import { child, children, textOf, el, type WbxmlElement } from '../wbxml/tree.ts';
import { meetingRequestOf } from './meeting-request.ts';
import { conversationIdOf, conversationIndexOf, type ThreadHeaders } from './conversation.ts';

export { sha1 } from './conversation.ts';
import { categoryToKeyword, isCategoryKeyword, keywordToCategory } from './category-keywords.ts';
import { withFields } from '../util/objects.ts';

export interface MailMessageInput {
  uid: number;
  /** IMAP flags and keywords: \Seen, \Flagged, \Answered, $Forwarded, $label1, user keywords… */
  flags: ReadonlySet<string>;
  internalDate: Date;
  /** RFC822.SIZE */
  size: number;
  /** The raw RFC 822 message. */
  source: Uint8Array;
}

export interface EmailOutputOptions {
  /** '12.0' | '12.1' | '14.0' | '14.1' | '16.0' | '16.1'; elements the version lacks are left out. */
  version: string;
  /** Empty = plain text, untruncated (see selectBodyPreference in body.ts). */
  bodyPreferences: BodyPreference[];
  /** 14.1+: adds an airsyncbase:BodyPart with the HTML body. */
  bodyPartPreferences?: BodyPreference[];
  mimeSupport: 0 | 1 | 2;
  /** Sync's MIMETruncation (MS-ASCMD §2.2.3.111), for a body sent as MIME; undefined: no limit of its own. */
  mimeTruncation?: number | undefined;
  /** Attachment FileReference for MIME part index `partId` (the caller encodes folder + uid + part). */
  fileReference(partId: string): string;
  /** The `<Flag>` to send when the collection keeps the device's flag details (email-flag.ts); else from \Flagged. */
  flag?: WbxmlElement;
  /** The user's device policy, held to whatever the device asks (MailPolicy); undefined: none. */
  policy?: MailPolicy | undefined;
  /** Set when `source` is the skeleton of a message read in parts (email-parts.ts): what the skeleton leaves out. */
  readInParts?: {
    /** The decoded size of the attachment that this stand-in content replaces. */
    attachmentSize(content: Uint8Array): number | undefined;
    /** UTF-8 bytes of the HTML and plain bodies beyond these (read in part). */
    missing(html: string | undefined, text: string | undefined): { html: number; text: number };
  };
}

/**
 * What the user's device policy lets a device have of a mail (the server holds to it for devices that do not apply
 * it): the body's (BodyPolicy, without the MIME decision, which depends on the message), and AttachmentsEnabled and
 * MaxAttachmentSize (MS-ASPROV §2.2.2.4, §2.2.2.33): attachments the policy withholds are left out of Attachments.
 */
export interface MailPolicy extends Omit<BodyPolicy, 'mimeAllowed'> {
  attachmentsEnabled: boolean;
  /** Bytes; undefined: no limit. */
  maxAttachmentSize?: number | undefined;
}

/** Whether the policy lets a device have an attachment of `size` bytes. */
export function attachmentPermitted(policy: MailPolicy | undefined, size: number): boolean {
  if (!policy) return true;
  return policy.attachmentsEnabled && (policy.maxAttachmentSize === undefined || size <= policy.maxAttachmentSize);
}

/** Postal-mime options used for every parse, so that attachment numbering is the same everywhere. */
const PARSE_OPTIONS = { forceRfc822Attachments: true, attachmentEncoding: 'arraybuffer' } as const;

/** Version '14.1' → 141, for comparisons. */
function versionNumber(version: string): number {
  return Math.round(Number.parseFloat(version) * 10);
}

/**
 * The children of <ApplicationData> (Sync Add/Fetch) or <Properties> (ItemOperations/Search), in the order Exchange
 * sends them.
 */
export async function emailApplicationData(
  message: MailMessageInput,
  options: EmailOutputOptions,
): Promise<WbxmlElement[]> {
  const email = await PostalMime.parse(message.source, PARSE_OPTIONS);
  const v = versionNumber(options.version);
  const header = (name: string): string | undefined => email.headers.find((h) => h.key === name)?.value;

  const subject = email.subject !== undefined ? repairC1(email.subject) : undefined;
  const html = email.html !== undefined ? repairC1(email.html) : undefined;
  const text = email.text !== undefined ? repairC1(email.text) : undefined;
  const kind = classify(email, header);
  const sizeOf = (content: Uint8Array): number => options.readInParts?.attachmentSize(content) ?? content.byteLength;
  const described = describeAttachments(email, html);
  const attachments = described.filter((a) => a.listed && attachmentPermitted(options.policy, sizeOf(a.content)));
  const policy: BodyPolicy | undefined =
    options.policy &&
    withFields(options.policy, {
      // MIME would carry what the policy withholds: HTML, or an attachment it does not allow.
      mimeAllowed:
        (options.policy.allowHtml || html === undefined) &&
        described.every((a) => attachmentPermitted(options.policy, sizeOf(a.content))),
    });
  const to = flatten(email.to);
  const cc = flatten(email.cc);
  const from = flatten(email.from ? [email.from] : undefined);
  const replyTo = flatten(email.replyTo);
  const body: BodySource = { mime: message.source, isSmime: kind.isSmime };
  if (text !== undefined) body.text = text;
  if (html !== undefined) body.html = html;
  if (options.readInParts) {
    const missing = options.readInParts.missing(html, text);
    body.htmlMissing = missing.html;
    body.textMissing = missing.text;
  }
  const received = receivedDate(message.internalDate, email.date);
  const thread = threadHeaders(header, subject);
  const threadTopic = thread.topic;

  const out: (WbxmlElement | false | undefined)[] = [
    to.length > 0 && el('Email', 'To', formatAddressList(to)),
    cc.length > 0 && el('Email', 'Cc', formatAddressList(cc)),
    from.length > 0 && el('Email', 'From', formatAddressList(from)),
    subject !== undefined && el('Email', 'Subject', subject),
    replyTo.length > 0 && el('Email', 'ReplyTo', formatAddressList(replyTo)),
    el('Email', 'DateReceived', received.toISOString()),
    to.length > 0 && el('Email', 'DisplayTo', to.map((m) => m.name || m.address).join('; ')),
    threadTopic !== undefined && el('Email', 'ThreadTopic', threadTopic),
    el('Email', 'Importance', importanceOf(header)),
    el('Email', 'Read', hasFlag(message.flags, '\\Seen') ? '1' : '0'),
    attachments.length > 0 &&
      el(
        'AirSyncBase',
        'Attachments',
        attachments.map((a) =>
          el('AirSyncBase', 'Attachment', [
            el('AirSyncBase', 'DisplayName', a.displayName),
            el('AirSyncBase', 'FileReference', options.fileReference(a.partId)),
            el('AirSyncBase', 'Method', a.method),
            el('AirSyncBase', 'EstimatedDataSize', sizeOf(a.content)),
            a.contentId !== undefined && el('AirSyncBase', 'ContentId', a.contentId),
            el('AirSyncBase', 'IsInline', a.isInline ? '1' : '0'),
          ]),
        ),
      ),
    bodyElement(body, options.bodyPreferences, options.mimeSupport, {
      withPreview: v >= 140,
      mimeTruncation: options.mimeTruncation,
      policy,
    }),
    v >= 141 && options.bodyPartPreferences && bodyPartElement(body, options.bodyPartPreferences, policy),
    el('Email', 'MessageClass', kind.messageClass),
    kind.isMeeting && meetingRequestOf(email, options.version),
    el('Email', 'InternetCPID', '65001'), // the bodies we send are UTF-8, whatever the message's charset
    options.flag ?? flagElement(message.flags),
    el('Email', 'ContentClass', kind.isMeeting ? 'urn:content-classes:calendarmessage' : 'urn:content-classes:message'),
    v >= 121 && el('AirSyncBase', 'NativeBodyType', html !== undefined ? 2 : 1),
  ];
  if (v >= 140) {
    const conversationId = conversationIdOf(thread);
    out.push(
      el('Email2', 'ConversationId', conversationId),
      el('Email2', 'ConversationIndex', conversationIndexOf(conversationId, sentDate(email.date) ?? received)),
      lastVerbElement(message.flags),
      categoriesElement(message.flags),
    );
  }
  // 16.0 drafts (IMAP \Draft): marked as such, with the Bcc only their author sees (src/sync/drafts.ts).
  if (v >= 160 && hasFlag(message.flags, '\\Draft')) {
    const bcc = flatten(email.bcc);
    out.push(bcc.length > 0 && el('Email2', 'Bcc', formatAddressList(bcc)), el('Email2', 'IsDraft', '1'));
  }
  return out.filter((e): e is WbxmlElement => !!e);
}

/**
 * Only the flag-derived properties, for a Sync <Change> after a flags-only change: Read, Flag, Categories (14.0+),
 * LastVerbExecuted (14.0+ email2).
 */
export function emailFlagChange(flags: ReadonlySet<string>, version: string, flag?: WbxmlElement): WbxmlElement[] {
  const v = versionNumber(version);
  const out: (WbxmlElement | undefined)[] = [
    el('Email', 'Read', hasFlag(flags, '\\Seen') ? '1' : '0'),
    flag ?? flagElement(flags),
  ];
  if (v >= 140) out.push(lastVerbElement(flags), categoriesElement(flags));
  return out.filter((e): e is WbxmlElement => e !== undefined);
}

/**
 * Device → IMAP: from a Sync <Change> ApplicationData (Read, Flag, Categories), the flags to add and remove. Unknown
 * elements are ignored.
 */
export function imapFlagUpdate(
  applicationData: WbxmlElement,
  current: ReadonlySet<string>,
): { add: string[]; remove: string[] } {
  const add: string[] = [];
  const remove: string[] = [];
  const want = (flag: string, on: boolean): void => {
    if (on && !hasFlag(current, flag)) add.push(flag);
    if (!on && hasFlag(current, flag))
      remove.push(...[...current].filter((f) => f.toLowerCase() === flag.toLowerCase()));
  };

  const read = child(applicationData, 'Read', 'Email');
  if (read) want('\\Seen', textOf(read).trim() === '1');

  // Flag Status 2 is "active"; 1 (complete), 0 (cleared) and an empty <Flag/> all mean "not flagged" in IMAP terms.
  const flag = child(applicationData, 'Flag', 'Email');
  if (flag) want('\\Flagged', textOf(child(flag, 'Status', 'Email')).trim() === '2');

  const categories = child(applicationData, 'Categories', 'Email');
  if (categories) {
    const wanted = new Map<string, string>();
    for (const c of children(categories, 'Category', 'Email')) {
      const name = textOf(c).trim();
      if (name) wanted.set(categoryToKeyword(name).toLowerCase(), categoryToKeyword(name));
    }
    const have = new Set<string>();
    for (const f of current) {
      if (!isCategoryKeyword(f)) continue;
      have.add(f.toLowerCase());
      if (!wanted.has(f.toLowerCase())) remove.push(f);
    }
    for (const [lower, keyword] of wanted) if (!have.has(lower)) add.push(keyword);
  }
  return { add, remove };
}

/**
 * An attachment's bytes and content type by part id, for ItemOperations Fetch by FileReference / GetAttachment.
 * undefined if no such part.
 */
export async function attachmentContent(
  source: Uint8Array,
  partId: string,
): Promise<{ contentType: string; fileName: string; content: Uint8Array } | undefined> {
  if (!/^\d{1,6}$/.test(partId)) return undefined;
  const email = await PostalMime.parse(source, PARSE_OPTIONS);
  const html = email.html !== undefined ? repairC1(email.html) : undefined;
  const attachment = describeAttachments(email, html).find((a) => a.partId === partId);
  if (!attachment) return undefined;
  return { contentType: attachment.contentType, fileName: attachment.displayName, content: attachment.content };
}

// ---------------------------------------------------------------------------------------------------------------------
// Flags

/** IMAP flags compare case-insensitively (RFC 3501 §2.3.2). */
function hasFlag(flags: ReadonlySet<string>, flag: string): boolean {
  if (flags.has(flag)) return true;
  const lower = flag.toLowerCase();
  for (const f of flags) if (f.toLowerCase() === lower) return true;
  return false;
}

/** `<Flag>` with Status 2 when \Flagged; an empty `<Flag/>` clears the device's flag otherwise. */
function flagElement(flags: ReadonlySet<string>): WbxmlElement {
  if (!hasFlag(flags, '\\Flagged')) return el('Email', 'Flag');
  return el('Email', 'Flag', [el('Email', 'Status', '2'), el('Email', 'FlagType', 'Flag for follow up')]);
}

/**
 * 1 (reply to sender) for \Answered, else 3 (forward) for $Forwarded; IMAP cannot tell reply-all or which came last.
 */
function lastVerbElement(flags: ReadonlySet<string>): WbxmlElement | undefined {
  if (hasFlag(flags, '\\Answered')) return el('Email2', 'LastVerbExecuted', '1');
  if (hasFlag(flags, '$Forwarded')) return el('Email2', 'LastVerbExecuted', '3');
  return undefined;
}

/** Always present (14.0+), empty when there are none, so that a flags-only Change also clears removed categories. */
function categoriesElement(flags: ReadonlySet<string>): WbxmlElement {
  const names = [...flags].filter(isCategoryKeyword).map(keywordToCategory);
  names.sort((a, b) => a.localeCompare(b, 'en'));
  return el(
    'Email',
    'Categories',
    names.map((n) => el('Email', 'Category', n)),
  );
}

// ---------------------------------------------------------------------------------------------------------------------
// Headers

type Mailbox = { name: string; address: string };

/** Group members are listed as plain recipients; entries without an address are dropped. */
function flatten(addresses: readonly Address[] | undefined): Mailbox[] {
  const out: Mailbox[] = [];
  for (const a of addresses ?? []) {
    const members = a.group ?? [a];
    for (const m of members) if (m.address) out.push({ name: repairC1(m.name), address: m.address });
  }
  return out;
}

/** `"Display Name" <addr>`, comma-separated; a bare `addr` when there is no name. */
function formatAddressList(mailboxes: readonly Mailbox[]): string {
  return mailboxes.map((m) => (m.name ? `"${m.name.replace(/[\\"]/g, '\\$&')}" <${m.address}>` : m.address)).join(', ');
}

// Reply/forward prefixes in the languages mail clients commonly write them, with counters such as `Re[2]:`.
const SUBJECT_PREFIX =
  /^\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|doorst|tr|rif|ref|réf|odp|enc|res|回复|回覆|答复|转发|轉寄)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+/i;

/** The conversation topic: the subject without reply/forward prefixes. */
export function stripSubjectPrefixes(subject: string): string {
  return subject.replace(SUBJECT_PREFIX, '').trim();
}

/** 0 low, 1 normal, 2 high, from Importance, Priority, X-Priority or X-MSMail-Priority; normal when none says. */
function importanceOf(header: (name: string) => string | undefined): number {
  const importance = header('importance')?.trim().toLowerCase();
  if (importance === 'high') return 2;
  if (importance === 'low') return 0;
  if (importance === 'normal') return 1;
  const priority = header('priority')?.trim().toLowerCase();
  if (priority === 'urgent') return 2;
  if (priority === 'non-urgent') return 0;
  const xPriority = /^\s*(\d)/.exec(header('x-priority') ?? '')?.[1];
  if (xPriority !== undefined) return xPriority <= '2' ? 2 : xPriority >= '4' ? 0 : 1;
  const msPriority = header('x-msmail-priority')?.trim().toLowerCase();
  if (msPriority === 'high') return 2;
  if (msPriority === 'low') return 0;
  return 1;
}

function receivedDate(internalDate: Date, dateHeader: string | undefined): Date {
  if (!Number.isNaN(internalDate.getTime())) return internalDate;
  return sentDate(dateHeader) ?? new Date(0);
}

function sentDate(dateHeader: string | undefined): Date | undefined {
  if (dateHeader === undefined) return undefined;
  const date = new Date(dateHeader);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/**
 * A header parameter (`protocol`, `report-type`, `method`), lower-cased; enough for the few the message class needs.
 */
function headerParam(value: string | undefined, name: string): string | undefined {
  const match = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i').exec(value ?? '');
  return (match?.[1] ?? match?.[2])?.toLowerCase();
}

// ---------------------------------------------------------------------------------------------------------------------
// Message class

interface MessageKind {
  messageClass: string;
  isSmime: boolean;
  isMeeting: boolean;
}

const utf8 = new TextDecoder('utf-8');

/** MessageClass and friends from the message's structure (the classes MS-ASEMAIL lists for MessageClass). */
function classify(email: Email, header: (name: string) => string | undefined): MessageKind {
  const contentType = header('content-type');
  const mediaType = (contentType ?? 'text/plain').split(';')[0]!.trim().toLowerCase();
  const plain = (messageClass: string): MessageKind => ({ messageClass, isSmime: false, isMeeting: false });

  if (mediaType === 'application/pkcs7-mime' || mediaType === 'application/x-pkcs7-mime') {
    return { messageClass: 'IPM.Note.SMIME', isSmime: true, isMeeting: false };
  }
  if (mediaType === 'multipart/signed') {
    const protocol = headerParam(contentType, 'protocol');
    if (protocol === 'application/pkcs7-signature' || protocol === 'application/x-pkcs7-signature') {
      return { messageClass: 'IPM.Note.SMIME.MultipartSigned', isSmime: true, isMeeting: false };
    }
  }
  if (mediaType === 'multipart/report') {
    const reportType = headerParam(contentType, 'report-type');
    if (reportType === 'delivery-status') return plain(deliveryReportClass(email));
    if (reportType === 'disposition-notification') return plain(readReceiptClass(email));
  }

  const calendar = email.attachments.find((a) => a.mimeType === 'text/calendar');
  if (calendar) {
    const ics = unfoldIcs(contentText(calendar));
    const method = calendar.method ?? /^METHOD:(.*)$/im.exec(ics)?.[1]?.trim().toUpperCase();
    const meetingClass = meetingMessageClass(method, ics);
    if (meetingClass) return { messageClass: meetingClass, isSmime: false, isMeeting: true };
  }
  return plain('IPM.Note');
}

function meetingMessageClass(method: string | undefined, ics: string): string | undefined {
  switch (method) {
    case 'REQUEST':
      return 'IPM.Schedule.Meeting.Request';
    case 'CANCEL':
      return 'IPM.Schedule.Meeting.Canceled';
    case 'REPLY': {
      const partstat = /^ATTENDEE[^:\n]*;PARTSTAT=([A-Z-]+)/im.exec(ics)?.[1]?.toUpperCase();
      if (partstat === 'ACCEPTED') return 'IPM.Schedule.Meeting.Resp.Pos';
      if (partstat === 'TENTATIVE') return 'IPM.Schedule.Meeting.Resp.Tent';
      if (partstat === 'DECLINED') return 'IPM.Schedule.Meeting.Resp.Neg';
      return undefined;
    }
    default:
      return undefined;
  }
}

/** NDR for failures (and when the report says nothing clear), DR for successful delivery, Delayed for delays. */
function deliveryReportClass(email: Email): string {
  const status = email.attachments.find((a) => a.mimeType === 'message/delivery-status');
  const actions = status
    ? [...contentText(status).matchAll(/^Action:\s*([a-z]+)/gim)].map((m) => m[1]!.toLowerCase())
    : [];
  if (actions.length === 0 || actions.includes('failed')) return 'REPORT.IPM.Note.NDR';
  if (actions.every((a) => a === 'delayed')) return 'REPORT.IPM.Note.Delayed';
  return 'REPORT.IPM.Note.DR';
}

/** Read receipt (displayed) or not-read notification (deleted, …), from the MDN's Disposition field. */
function readReceiptClass(email: Email): string {
  const report = email.attachments.find((a) => a.mimeType === 'message/disposition-notification');
  const disposition = report
    ? /^Disposition:[^;\n]*;\s*([a-z-]+)/im.exec(contentText(report))?.[1]?.toLowerCase()
    : undefined;
  return disposition === 'displayed' ? 'REPORT.IPM.Note.IPNRN' : 'REPORT.IPM.Note.IPNNRN';
}

function contentText(attachment: Attachment): string {
  const content = attachment.content;
  return typeof content === 'string' ? content : utf8.decode(content);
}

function unfoldIcs(ics: string): string {
  return ics.replace(/\r?\n[ \t]/g, '');
}

// ---------------------------------------------------------------------------------------------------------------------
// Attachments

interface AttachmentDescription {
  partId: string;
  displayName: string;
  contentType: string;
  /** 1 normal, 5 embedded message. */
  method: number;
  content: Uint8Array;
  /** Without angle brackets, as HTML references it (`cid:…`). */
  contentId?: string;
  isInline: boolean;
  /** False for a part that is fetchable by its id but not shown in Attachments. */
  listed: boolean;
}

const EXTENSIONS: Readonly<Record<string, string>> = {
  'application/pdf': '.pdf',
  'application/zip': '.zip',
  'application/ics': '.ics',
  'application/json': '.json',
  'application/pkcs7-signature': '.p7s',
  'application/x-pkcs7-signature': '.p7s',
  'application/pkcs7-mime': '.p7m',
  'application/x-pkcs7-mime': '.p7m',
  'image/png': '.png',
  'image/jpeg': '.jpg',
  'image/gif': '.gif',
  'image/webp': '.webp',
  'image/svg+xml': '.svg',
  'text/plain': '.txt',
  'text/html': '.html',
  'text/calendar': '.ics',
  'text/csv': '.csv',
  'text/rfc822-headers': '.txt',
  'message/delivery-status': '.txt',
  'message/disposition-notification': '.txt',
  'message/rfc822': '.eml',
};

// Names for parts that carry none, the way mail clients show them.
const DEFAULT_NAMES: Readonly<Record<string, string>> = {
  'text/calendar': 'invite.ics',
  'message/delivery-status': 'details.txt',
  'text/rfc822-headers': 'headers.txt',
  'application/pkcs7-signature': 'smime.p7s',
  'application/x-pkcs7-signature': 'smime.p7s',
  'application/pkcs7-mime': 'smime.p7m',
  'application/x-pkcs7-mime': 'smime.p7m',
};

/**
 * The message's attachments as the device sees them. A text/calendar body part (the invitation inside
 * multipart/alternative) is listed as `invite.ics` so that clients can import it, unless the sender also attached the
 * invitation as a file (Google does), which would show it twice; it stays fetchable by its part id.
 */
function describeAttachments(email: Email, html: string | undefined): AttachmentDescription[] {
  const isCalendar = (a: Attachment): boolean => a.mimeType === 'text/calendar' || a.mimeType === 'application/ics';
  const hasCalendarFile = email.attachments.some((a) => isCalendar(a) && a.disposition === 'attachment');
  const lowerHtml = email.attachments.length > 0 ? html?.toLowerCase() : undefined;
  return email.attachments.map((attachment, index) => {
    const content = toBytes(attachment.content);
    const isMessage = attachment.mimeType === 'message/rfc822';
    const contentId = attachment.contentId?.trim().replace(/^<|>$/g, '') || undefined;
    // Inline means "rendered inside the HTML body": it needs a Content-ID the body can point at.
    const referenced = contentId !== undefined && (lowerHtml?.includes(`cid:${contentId.toLowerCase()}`) ?? false);
    const isInline =
      contentId !== undefined && (attachment.disposition === 'inline' || attachment.related === true || referenced);
    const description: AttachmentDescription = {
      partId: String(index),
      displayName: attachmentName(attachment, content, index),
      contentType: attachment.mimeType,
      method: isMessage ? 5 : 1,
      content,
      isInline,
      listed: !(hasCalendarFile && isCalendar(attachment) && attachment.disposition === null),
    };
    if (contentId !== undefined) description.contentId = contentId;
    return description;
  });
}

function toBytes(content: Attachment['content']): Uint8Array {
  if (typeof content === 'string') return new TextEncoder().encode(content);
  return content instanceof Uint8Array ? content : new Uint8Array(content);
}

/** The file name clients show; embedded messages end in `.eml`, which Android and Windows Phone need to open them. */
function attachmentName(attachment: Attachment, content: Uint8Array, index: number): string {
  const type = attachment.mimeType;
  let name = attachment.filename ? repairC1(attachment.filename).trim() : '';
  if (type === 'message/rfc822') {
    if (!name) name = safeFileName(embeddedSubject(content) || 'message');
    return /\.eml$/i.test(name) ? name : `${name}.eml`;
  }
  if (name) return name;
  return DEFAULT_NAMES[type] ?? `attachment-${index + 1}${EXTENSIONS[type] ?? '.bin'}`;
}

function safeFileName(name: string): string {
  return name
    .replace(/[\\/:*?"<>|\u0000-\u001f]/g, '_')
    .trim()
    .slice(0, 200);
}

/** The Subject of an embedded message, from its header block only (its body may be large). */
function embeddedSubject(content: Uint8Array): string | undefined {
  const head = content.subarray(0, Math.min(content.length, 65536));
  let end = head.length;
  for (let i = 0; i + 3 < head.length; i++) {
    if (head[i] === 0x0d && head[i + 1] === 0x0a && head[i + 2] === 0x0d && head[i + 3] === 0x0a) {
      end = i;
      break;
    }
    if (head[i] === 0x0a && head[i + 1] === 0x0a) {
      end = i;
      break;
    }
  }
  const headers = utf8.decode(head.subarray(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  const subject = /^subject:[ \t]*(.*)$/im.exec(headers)?.[1]?.trim();
  return subject ? repairC1(decodeWords(subject)) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------------
// Conversations

/**
 * The headers that place a message in its conversation (items/conversation.ts), from a raw header block (an IMAP
 * fetch of those fields): the same values emailApplicationData reads from the parsed message.
 */
export function threadHeadersOf(block: Uint8Array | string): ThreadHeaders {
  const text = (typeof block === 'string' ? block : utf8.decode(block)).replace(/\r?\n[ \t]+/g, ' ');
  const field = (name: string): string | undefined => new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(text)?.[1]?.trim();
  const subject = field('subject');
  return threadHeaders(field, subject !== undefined ? repairC1(decodeWords(subject)) : undefined);
}

/** The thread headers of a message: its References, In-Reply-To, Message-ID and topic (Thread-Topic, else Subject). */
function threadHeaders(header: (name: string) => string | undefined, subject: string | undefined): ThreadHeaders {
  const threadTopicHeader = header('thread-topic');
  const topic =
    threadTopicHeader !== undefined
      ? repairC1(decodeWords(threadTopicHeader))
      : subject !== undefined
        ? stripSubjectPrefixes(subject)
        : undefined;
  const out: ThreadHeaders = {};
  const references = header('references');
  const inReplyTo = header('in-reply-to');
  const messageId = header('message-id');
  if (references !== undefined) out.references = references;
  if (inReplyTo !== undefined) out.inReplyTo = inReplyTo;
  if (messageId !== undefined) out.messageId = messageId;
  if (topic !== undefined) out.topic = topic;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Charsets

// windows-1252's 0x80–0x9F block (WHATWG index), for the C1 controls below.
const WINDOWS_1252_C1 =
  '\u20ac\u0081\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u008d\u017d\u008f' +
  '\u0090\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u009d\u017e\u0178';

/**
 * Node ≥ 20.18.3 / 22.13 and workerd decode `windows-1252` (and its WHATWG aliases iso-8859-1, latin1, us-ascii)
 * as Latin-1, so 0x80–0x9F come out as C1 control characters instead of € “ ” – … (nodejs/node#56542, #60888;
 * cloudflare/workerd#6027). Mail text never means C1 controls, so they are mapped as windows-1252 would.
 */
export function repairC1(text: string): string {
  if (!/[\u0080-\u009f]/.test(text)) return text;
  return text.replace(/[\u0080-\u009f]/g, (c) => WINDOWS_1252_C1[c.charCodeAt(0) - 0x80]!);
}
