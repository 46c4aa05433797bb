/**
 * A mail message read in parts (MailBackend.fetchMessageParts) instead of whole: which parts the device's answer
 * needs, decided from the message's MIME structure, and the conversion of what was read into the same
 * ApplicationData that emailApplicationData gives for the whole message. Pure and runtime-neutral.
 *
 * What is read: the header block; each part's MIME header; the body part of the type the device gets (HTML or plain
 * text, by its BodyPreference) cut a little past its TruncationSize (as stored: the cut falls on a line end, so no
 * quoted-printable escape or base64 group is split); the iCalendar part of an invitation whole; attachments not at
 * all. The whole message is read for MIME (Type 4) and where the structure cannot be taken apart safely: S/MIME,
 * reports, embedded messages, and multiparts without a boundary.
 *
 * How the answer stays the same: what was read is put back together as a skeleton of the message (the original
 * headers and boundaries, the read contents in place, a short stand-in for each attachment's content) and converted
 * by emailApplicationData as any message, so that classification, charsets, attachment names and numbering are the
 * ones of the whole message; Truncated is always exact. EstimatedDataSize: an attachment's is its size in
 * BODYSTRUCTURE, decoded by arithmetic for base64 (76-character lines, as MIME writes them: within 2 bytes); a body
 * cut short adds the bytes it left out, exactly for a UTF-8 or US-ASCII part stored as 7bit/8bit (a stored octet is
 * an octet sent), estimated from the part read otherwise (base64 by arithmetic, quoted-printable and other
 * charsets by the ratio of the part read, within a few tenths of a percent on real text). A part whose size would be
 * estimated is read whole when that is not much more (twice what the answer needs, four times for quoted-printable),
 * and its size is then exact. When the part read turns out too short for the answer (quoted-printable denser than
 * assumed, a charset whose characters shrink in UTF-8), the conversion says so and the caller reads the whole
 * message. (IMAP BINARY.SIZE, RFC 3516 §4.2, gives decoded sizes, not the sizes sent, and Dovecot 2.3 answers wrong
 * ones before an encoded part: backends/imap/mail.ts fetchMessageParts.)
 */
import { Buffer } from 'node:buffer';
import type { MessageParts, MimePart, PartsRequest } from '../backends/types.ts';
import type { WbxmlElement } from '../wbxml/tree.ts';
import { BodyReadInPartError, BodyType, selectBodyPreference, utf8Length } from './body.ts';
import { emailApplicationData, type EmailOutputOptions } from './email.ts';
import { withFields } from '../util/objects.ts';

/** A text part that must be converted (plain text from HTML, or the reverse) is read whole up to this size as stored. */
const WHOLE_TEXT_LIMIT = 256 * 1024;
/** Read past the truncation size: room for a rewritten `<meta charset>` and characters cut at the end. */
const SLACK = 1024;
/** Enough plain text for a Preview (at most 255 characters, MS-ASAIRS §2.2.2.35) after whitespace collapses. */
const PREVIEW_BYTES = 4096;

interface Leaf {
  part: MimePart;
  /** The closest multipart/alternative around it: postal-mime makes one body entry of its text parts. */
  alternative: MimePart | undefined;
  related: boolean;
}

function leavesOf(part: MimePart, alternative?: MimePart, related = false, out: Leaf[] = []): Leaf[] {
  if (!part.children) {
    out.push({ part, alternative, related });
    return out;
  }
  const inAlternative = part.type === 'multipart/alternative' ? part : alternative;
  const inRelated = related || part.type === 'multipart/related';
  for (const child of part.children) leavesOf(child, inAlternative, inRelated, out);
  return out;
}

/** A text part postal-mime takes as (part of) the body, not as an attachment. */
function isBodyText(part: MimePart): boolean {
  return (part.type === 'text/html' || part.type === 'text/plain') && part.disposition !== 'attachment';
}

const isCalendar = (part: MimePart): boolean => part.type === 'text/calendar' || part.type === 'application/ics';

/** Decoded octets are the UTF-8 octets sent: no charset conversion and no format=flowed rewrapping. */
function isIdentityText(part: MimePart): boolean {
  const charset = (part.parameters.charset ?? 'us-ascii').toLowerCase();
  return ['utf-8', 'utf8', 'us-ascii', 'ascii'].includes(charset) && !/^flowed$/i.test(part.parameters.format ?? '');
}

const isBase64 = (part: MimePart): boolean => part.encoding === 'base64';
const isQuotedPrintable = (part: MimePart): boolean => part.encoding === 'quoted-printable';
/** Stored as it decodes: the part's size is its decoded size. */
const isIdentityEncoding = (part: MimePart): boolean => ['7bit', '8bit', 'binary'].includes(part.encoding);

/** Stored octets to read for `decoded` decoded octets. */
function storedLength(part: MimePart, decoded: number): number | undefined {
  if (isIdentityEncoding(part)) return decoded;
  if (isBase64(part)) return Math.ceil(((decoded * 4) / 3) * (78 / 76)) + 80;
  // Mostly-ASCII text (HTML newsletters, Latin-script mail) grows by a few `=3D`s; text that grows more is read again.
  if (isQuotedPrintable(part)) return Math.ceil(1.3 * decoded);
  return undefined;
}

/**
 * The decoded size of a base64 part of `size` stored octets in 76-character CRLF lines (RFC 2045 §6.8), exact when
 * its last octets are known (the `=` padding, and line breaks after the last group).
 */
function base64DecodedSize(size: number, end?: Uint8Array): number {
  let stored = size;
  let padding = 0;
  if (end) {
    let i = end.length;
    while (i > 0 && (end[i - 1] === 0x0d || end[i - 1] === 0x0a)) i--;
    stored -= end.length - i;
    while (i > 0 && end[i - 1] === 0x3d) {
      padding++;
      i--;
    }
  }
  const lines = Math.ceil((stored + 2) / 78);
  return Math.max(0, Math.floor(((stored - 2 * Math.max(0, lines - 1)) * 3) / 4) - padding);
}

/** Structures read whole: their conversion needs more than their body and attachment metadata. */
function canReadInParts(structure: MimePart): boolean {
  let parts = 0;
  const ok = (part: MimePart, depth: number): boolean => {
    if (++parts > 100 || depth > 10) return false;
    if (/^application\/(x-)?pkcs7-mime$/.test(part.type)) return false;
    if (part.type.startsWith('message/')) return false;
    if (!part.children) return true;
    if (['multipart/signed', 'multipart/encrypted', 'multipart/report'].includes(part.type)) return false;
    if (!part.parameters.boundary) return false;
    return part.children.every((child) => ok(child, depth + 1));
  };
  return ok(structure, 0);
}

export type PartsOptions = Pick<
  EmailOutputOptions,
  'version' | 'bodyPreferences' | 'bodyPartPreferences' | 'mimeSupport' | 'policy'
>;

/**
 * The parts to read of a message with this structure, for an answer under these options. `wholeBodies`: its body
 * parts whole (the second try for a message whose body read in part fell short).
 */
export function planParts(structure: MimePart, options: PartsOptions, wholeBodies = false): PartsRequest {
  if (!canReadInParts(structure)) return 'whole';
  const leaves = leavesOf(structure);
  const texts = leaves.filter((l) => isBodyText(l.part));
  const html = texts.filter((l) => l.part.type === 'text/html');
  const plain = texts.filter((l) => l.part.type === 'text/plain');
  const v = Math.round(Number.parseFloat(options.version) * 10);
  const selected = selectBodyPreference(
    options.bodyPreferences,
    { mime: new Uint8Array(), isSmime: false, ...(html.length ? { html: '' } : {}) },
    options.mimeSupport,
  );
  // A policy without HTML (AllowHTMLEmail 0) turns HTML and MIME into plain text and drops BodyPart (items/body.ts).
  const noHtml = options.policy !== undefined && !options.policy.allowHtml;
  if (selected.type === BodyType.Mime && !noHtml) return 'whole';
  const want = new Map<string, number | undefined>();
  const read = (part: MimePart, maxBytes?: number): void => {
    const before = want.get(part.section);
    const whole = maxBytes === undefined || (want.has(part.section) && before === undefined);
    want.set(part.section, whole ? undefined : Math.max(before ?? 0, maxBytes));
  };
  const result = (): PartsRequest => ({
    contents: [...want].map(([section, maxBytes]) => (maxBytes === undefined ? { section } : { section, maxBytes })),
    // A base64 attachment's last octets: its padding (and a line break ending it), for its exact decoded size.
    ends: leaves.filter((l) => isBase64(l.part) && !want.has(l.part.section)).map((l) => l.part.section),
  });
  const calendars = leaves.filter((l) => isCalendar(l.part));
  for (const l of calendars) read(l.part);
  // Several body entries (a list footer after the body, a text part beside an alternative) are joined by postal-mime;
  // an invitation's text sits beside its iCalendar part: their text parts are read whole.
  const entries = new Set(texts.map((l) => l.alternative ?? l.part));
  if (wholeBodies || entries.size > 1 || html.length > 1 || plain.length > 1 || calendars.length > 0) {
    for (const l of texts) read(l.part);
    return result();
  }
  const wanted = [
    { type: selected.type === BodyType.Html && !noHtml ? BodyType.Html : BodyType.PlainText, preference: selected },
  ];
  const bodyPart = v >= 141 && !noHtml ? options.bodyPartPreferences?.find((p) => p.type === BodyType.Html) : undefined;
  if (bodyPart) wanted.push({ type: BodyType.Html, preference: bodyPart });
  for (const { type, preference } of wanted) {
    const own = (type === BodyType.Html ? html : plain)[0];
    const origin = own ?? (type === BodyType.Html ? plain : html)[0];
    if (!origin) continue;
    const limit = preference.truncationSize;
    const wanted =
      limit === undefined
        ? undefined
        : storedLength(
            origin.part,
            (/^utf-?16/i.test(origin.part.parameters.charset ?? '') ? 2 * limit : limit) + SLACK,
          );
    // Read whole when that is not much more, where the size of a part read in part is only estimated (its size is
    // then exact); quoted-printable up to four times the part needed. A part stored as the UTF-8 it is sent as has
    // its exact size when cut, and is read only as far as needed.
    const whole =
      wanted === undefined || exactlyStored(origin.part) ? 0 : (isQuotedPrintable(origin.part) ? 4 : 2) * wanted;
    if (wanted === undefined || origin.part.size <= whole || (!own && origin.part.size <= WHOLE_TEXT_LIMIT))
      read(origin.part);
    else read(origin.part, wanted);
    // The Preview is plain text: from the plain part when there is one, else from the HTML.
    if (v >= 140 && preference.preview) {
      const part = (plain[0] ?? html[0])!.part;
      read(part, storedLength(part, PREVIEW_BYTES));
    }
  }
  // An image with a Content-ID outside multipart/related is inline only if the HTML points at it: all of it is read.
  if (html[0] && leaves.some((l) => l.part.id && !l.related && l.part.disposition !== 'inline' && !isBodyText(l.part)))
    read(html[0].part);
  return result();
}

const encoder = new TextEncoder();
// Buffer's latin1 is ISO-8859-1 byte for byte (TextDecoder's 'latin1' is windows-1252).
const latin1 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');

/**
 * The ApplicationData of a message read in parts, as emailApplicationData gives it for the whole message; 'read
 * whole' when the part read is too short for the answer (the caller reads the whole message and converts that).
 */
export async function emailApplicationDataOfParts(
  message: MessageParts,
  options: EmailOutputOptions,
): Promise<WbxmlElement[] | 'read whole'> {
  if (message.source) return emailApplicationData(withFields(message, { source: message.source }), options);
  const skeleton = skeletonOf(message);
  if (!skeleton) return 'read whole';
  const leaves = leavesOf(message.structure);
  const html = leaves.find((l) => isBodyText(l.part) && l.part.type === 'text/html')?.part;
  const plain = leaves.find((l) => isBodyText(l.part) && l.part.type === 'text/plain')?.part;
  /** UTF-8 bytes of `output` (converted from `origin`) left out because `origin` was read only in part. */
  const missing = (origin: MimePart | undefined, output: string, identity: boolean): number => {
    const cut = origin && skeleton.cut.get(origin.section);
    if (!cut) return 0;
    const left = Math.max(1, cut.total - cut.read);
    return identity ? left : Math.ceil((left * utf8Length(output)) / Math.max(cut.read, 1));
  };
  try {
    return await emailApplicationData(
      withFields(message, { source: skeleton.source }),
      withFields<EmailOutputOptions, Pick<EmailOutputOptions, 'readInParts'>>(options, {
        readInParts: {
          attachmentSize: (content) => {
            const part = skeleton.standIns.get(latin1(content).trimEnd());
            return part && (isBase64(part) ? base64DecodedSize(part.size, message.ends.get(part.section)) : part.size);
          },
          missing: (htmlOut, textOut) => ({
            html:
              htmlOut === undefined
                ? 0
                : html
                  ? missing(html, htmlOut, exactlyStored(html))
                  : missing(plain, htmlOut, false),
            text: textOut === undefined ? 0 : missing(plain, textOut, plain !== undefined && exactlyStored(plain)),
          }),
        },
      }),
    );
  } catch (err) {
    if (err instanceof BodyReadInPartError) return 'read whole';
    throw err;
  }
}

/** A UTF-8 or US-ASCII part stored as it decodes: its stored octets are the UTF-8 octets sent. */
const exactlyStored = (part: MimePart): boolean => isIdentityText(part) && isIdentityEncoding(part);

/** A part read only in part: decoded octets read, and of the whole (exact when stored as it decodes, else estimated). */
interface Cut {
  read: number;
  total: number;
}

/**
 * The message put back together from its parts: headers and boundaries as the message has them, read contents in
 * place (a part cut short ends on a whole line, or a whole UTF-8 character when stored as it decodes), and for each
 * attachment a stand-in content naming it.
 */
function skeletonOf(
  message: MessageParts,
): { source: Uint8Array; standIns: Map<string, MimePart>; cut: Map<string, Cut> } | undefined {
  const chunks: Uint8Array[] = [];
  const standIns = new Map<string, MimePart>();
  const cuts = new Map<string, Cut>();
  const text = (s: string): void => {
    chunks.push(encoder.encode(s));
  };
  const leaf = (part: MimePart): void => {
    const content = message.contents.get(part.section);
    if (content) {
      if (content.length >= part.size) {
        chunks.push(content);
        return;
      }
      const { kept, cut } = cutShort(part, content);
      cuts.set(part.section, cut);
      chunks.push(content.subarray(0, kept));
    } else {
      // A body part not read still makes the message have that body type (NativeBodyType); an attachment's stand-in
      // names it. Written in the part's own transfer encoding (its header says so); ASCII is valid quoted-printable.
      const standIn = isBodyText(part) ? ' ' : `[part ${part.section} not read]`;
      if (!isBodyText(part)) standIns.set(standIn, part);
      text(isBase64(part) ? Buffer.from(standIn).toString('base64') : standIn);
    }
  };
  const multipart = (part: MimePart): boolean => {
    const boundary = part.parameters.boundary!;
    for (const child of part.children ?? []) {
      const header = message.mimeHeaders.get(child.section);
      if (!header) return false;
      text(`--${boundary}\r\n`);
      chunks.push(header);
      if (child.children) {
        if (!multipart(child)) return false;
      } else leaf(child);
      text('\r\n');
    }
    text(`--${boundary}--\r\n`);
    return true;
  };
  const root = message.structure;
  chunks.push(message.header);
  if (root.children) {
    if (!multipart(root)) return undefined;
  } else leaf(root);
  const source = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    source.set(c, at);
    at += c.length;
  }
  return { source, standIns, cut: cuts };
}

/**
 * Where to cut a part read short, and how much of it that is. Stored as it decodes: at a whole UTF-8 character,
 * exact. Encoded: before the last line break (no escape or base64 group spans lines), the decoded length counted, the
 * whole estimated (base64 by arithmetic, quoted-printable by the ratio read).
 */
function cutShort(part: MimePart, content: Uint8Array): { kept: number; cut: Cut } {
  if (isIdentityEncoding(part)) {
    // postal-mime gives text with LF line ends: every CRLF is one octet less (the part's lines tell how many).
    const kept = isIdentityText(part) ? utf8Boundary(content) : content.length;
    let crlf = 0;
    // indexOf runs natively: a byte-by-byte loop over every part read was a hot spot of initial sync.
    for (let i = content.indexOf(0x0a, 1); i > 0 && i < kept; i = content.indexOf(0x0a, i + 1))
      if (content[i - 1] === 0x0d) crlf++;
    return { kept, cut: { read: kept - crlf, total: part.size - (part.lines ?? 0) } };
  }
  let kept = content.lastIndexOf(0x0a);
  if (kept < 0) kept = 0;
  else if (kept > 0 && content[kept - 1] === 0x0d) kept--;
  const encoded = content.subarray(0, kept);
  if (isBase64(part)) {
    const chars = encoded.length - count(encoded, 0x0d) - count(encoded, 0x0a) - count(encoded, 0x3d);
    return { kept, cut: { read: Math.floor((chars * 3) / 4), total: base64DecodedSize(part.size) } };
  }
  // Quoted-printable: `=XY` is one octet, `=` at a line end a soft break (RFC 2045 §6.7), a line end one LF (its CR
  // is not counted): every octet but CRs counts, and each `=` sequence as what it decodes to.
  let read = encoded.length - count(encoded, 0x0d);
  for (let i = encoded.indexOf(0x3d); i >= 0; ) {
    const next = encoded[i + 1];
    const end = Math.min(next === 0x0a ? i + 2 : i + 3, encoded.length);
    // The sequence's octets other than CR were counted: it is one octet (an escape) or none (a soft break).
    let counted = 0;
    for (let j = i; j < end; j++) if (encoded[j] !== 0x0d) counted++;
    read += (next === 0x0d || next === 0x0a ? 0 : 1) - counted;
    i = encoded.indexOf(0x3d, end);
  }
  return { kept, cut: { read, total: Math.round((read * part.size) / Math.max(1, kept)) } };
}
/** How many times `byte` occurs in `bytes`. */
function count(bytes: Uint8Array, byte: number): number {
  let n = 0;
  for (let i = bytes.indexOf(byte); i >= 0; i = bytes.indexOf(byte, i + 1)) n++;
  return n;
}

/** The length of the longest prefix of UTF-8 bytes that ends on a whole character. */
function utf8Boundary(bytes: Uint8Array): number {
  let end = bytes.length;
  // Back over continuation bytes (10xxxxxx) to the lead byte of the last character; keep it only if complete.
  let back = 0;
  while (back < 4 && end - back - 1 >= 0 && (bytes[end - back - 1]! & 0xc0) === 0x80) back++;
  const lead = end - back - 1;
  if (lead < 0) return end;
  const b = bytes[lead]!;
  const length = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
  if (back + 1 < length) end = lead;
  return end;
}
