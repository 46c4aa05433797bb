/**
 * Body selection and truncation for AirSyncBase `Body` / `BodyPart` (MS-ASAIRS §2.2.2.9), and the
 * small text conversions they need (HTML → plain text, plain text → HTML, Preview). Pure and runtime-neutral: strings
 * in, WBXML elements out.
 */
import { Buffer } from 'node:buffer';
import { el, type WbxmlElement } from '../wbxml/tree.ts';
import { withFields } from '../util/objects.ts';

/** AirSyncBase body types (`airsyncbase:Type`). */
export const BodyType = { PlainText: 1, Html: 2, Rtf: 3, Mime: 4 } as const;

/** One `BodyPreference` / `BodyPartPreference` as the client sent it. */
export interface BodyPreference {
  type: number;
  /** Bytes; absent = no truncation. */
  truncationSize?: number;
  allOrNone?: boolean;
  /** Characters of plain-text preview wanted (14.0+, at most 255). */
  preview?: number;
}

/** What a message offers as body, decoded to Unicode. */
export interface BodySource {
  /** The plain text part, if the message has one. */
  text?: string;
  /** The HTML part, if the message has one. */
  html?: string;
  /** The raw RFC 822 message, for Type 4. */
  mime: Uint8Array;
  /** S/MIME signed or encrypted: MIMESupport 1 sends MIME for exactly these. */
  isSmime: boolean;
  /** UTF-8 bytes of the HTML body beyond `html`, when the message was read in part (items/email-parts.ts). */
  htmlMissing?: number;
  /** The same for `text`. */
  textMissing?: number;
}

/**
 * A body read only in part is too short for the answer asked (its start holds less than the truncation size, or
 * the whole is wanted): the caller reads the whole message.
 */
export class BodyReadInPartError extends Error {
  constructor() {
    super('the body was read in part and the answer needs more of it');
  }
}

/** UTF-8 bytes of the plain text beyond what plainTextOf gives, for a body read in part. */
function plainMissing(source: BodySource, plain: string): number {
  if (source.text !== undefined) return source.textMissing ?? 0;
  const html = source.htmlMissing ?? 0;
  // Plain text made from part of the HTML: the rest is assumed to shrink as the part read did.
  return html > 0 && source.html ? Math.ceil((html * utf8Length(plain)) / Math.max(1, utf8Length(source.html))) : 0;
}

/**
 * What the user's device policy lets a device have of a body, whatever it asks for (the server holds to the policy
 * for devices that do not apply it): AllowHTMLEmail (MS-ASPROV §2.2.2.5: no HTML, the body goes as plain text),
 * MaxEmailBodyTruncationSize and MaxEmailHTMLBodyTruncationSize (§2.2.2.34, §2.2.2.35: the largest truncation of a
 * plain-text or an HTML body, in bytes here).
 */
export interface BodyPolicy {
  allowHtml: boolean;
  /** The most bytes of a plain-text body; undefined: no limit of the policy's own. */
  maxTextBytes?: number | undefined;
  /** The most bytes of an HTML body (Body and BodyPart); undefined: no limit of the policy's own. */
  maxHtmlBytes?: number | undefined;
  /**
   * Whether the whole message may go as MIME: false when it carries what the policy withholds (HTML with
   * AllowHTMLEmail off, an attachment the policy does not allow), since MIME would carry it too.
   */
  mimeAllowed: boolean;
}

/** The longest Preview the protocol allows (MS-ASAIRS §2.2.2.35). */
export const MAX_PREVIEW_CHARS = 255;

/**
 * Which body type to send, and under which preference's limits.
 *
 * - No preference at all: plain text, untruncated (a 12.0+ client that sends no BodyPreference gets what a 2.5
 *   client would with Truncation 8; plain text is small and every client renders it).
 * - MIME (4) when requested and MIMESupport allows it (2 = always, 1 = S/MIME messages only).
 * - HTML (2) when requested and the message has HTML, or when plain text was not requested at all (plain text is then
 *   wrapped as HTML).
 * - Plain text (1) when requested.
 * - Otherwise (only RTF, or only MIME that MIMESupport forbids): plain text under the first preference's limits.
 *   RTF is never produced.
 */
export function selectBodyPreference(
  preferences: readonly BodyPreference[],
  source: BodySource,
  mimeSupport: number,
): BodyPreference {
  if (preferences.length === 0) return { type: BodyType.PlainText };
  const wanted = (type: number): BodyPreference | undefined => preferences.find((p) => p.type === type);
  const mime = wanted(BodyType.Mime);
  if (mime && (mimeSupport === 2 || (mimeSupport === 1 && source.isSmime))) return mime;
  const html = wanted(BodyType.Html);
  const plain = wanted(BodyType.PlainText);
  if (html && (source.html !== undefined || !plain)) return html;
  if (plain) return plain;
  return withFields(preferences[0]!, { type: BodyType.PlainText });
}

/** The plain text of a message: its text part, else its HTML reduced to text. */
export function plainTextOf(source: BodySource): string {
  if (source.text !== undefined) return source.text;
  if (source.html !== undefined) return htmlToPlainText(source.html);
  return '';
}

/** The HTML of a message: its HTML part (declared as UTF-8, which is what we send), else its plain text as HTML. */
export function htmlOf(source: BodySource): string {
  if (source.html !== undefined) return declareUtf8(source.html);
  return plainTextToHtml(source.text ?? '');
}

/**
 * MIMETruncation (MS-ASCMD §2.2.3.111): the most characters of MIME each value allows (0: none); 8 and values it
 * does not define: the whole message.
 */
const MIME_TRUNCATION_SIZES: Readonly<Record<number, number>> = {
  0: 0,
  1: 4096,
  2: 5120,
  3: 7168,
  4: 10240,
  5: 20480,
  6: 51200,
  7: 102400,
};

/** The limit MIMETruncation sets, undefined for none. */
export function mimeTruncationSize(value: number | undefined): number | undefined {
  return value === undefined ? undefined : MIME_TRUNCATION_SIZES[value];
}

/**
 * The `airsyncbase:Body` element for a message under the client's preferences. A MIME body is cut at the smaller of
 * its BodyPreference's TruncationSize and Sync's MIMETruncation, with Truncated and the whole size as
 * EstimatedDataSize (MS-ASAIRS §2.2.2.23).
 */
export function bodyElement(
  source: BodySource,
  preferences: readonly BodyPreference[],
  mimeSupport: number,
  options: { withPreview: boolean; mimeTruncation?: number | undefined; policy?: BodyPolicy | undefined },
): WbxmlElement {
  const chosen = selectBodyPreference(preferences, source, mimeSupport);
  const selected = options.policy ? withinPolicy(chosen, preferences, source, options.policy) : chosen;
  const mimeLimit = selected.type === BodyType.Mime ? mimeTruncationSize(options.mimeTruncation) : undefined;
  const preference =
    mimeLimit === undefined
      ? selected
      : withFields(selected, {
          truncationSize: Math.min(mimeLimit, selected.truncationSize ?? Number.POSITIVE_INFINITY),
        });
  const content =
    preference.type === BodyType.Mime
      ? source.mime
      : preference.type === BodyType.Html
        ? htmlOf(source)
        : plainTextOf(source);
  const missing =
    preference.type === BodyType.Html
      ? (source.htmlMissing ?? 0)
      : preference.type === BodyType.PlainText
        ? plainMissing(source, content as string)
        : 0;
  const cut = truncateContent(content, preference, missing);
  const preview = options.withPreview && preference.preview ? previewOf(source, preference.preview) : undefined;
  return el('AirSyncBase', 'Body', [
    el('AirSyncBase', 'Type', preference.type),
    el('AirSyncBase', 'EstimatedDataSize', cut.fullSize),
    el('AirSyncBase', 'Truncated', cut.truncated ? '1' : '0'),
    cut.data !== undefined && dataElement(cut.data),
    preview ? el('AirSyncBase', 'Preview', preview) : undefined,
  ]);
}

/**
 * The `airsyncbase:BodyPart` element (14.1): the message's HTML under the first BodyPartPreference. We keep no
 * conversation-trimmed copy, so the whole HTML body is the "part". Status 176 when AllOrNone hides it. Undefined when
 * the client asked for no HTML (Type 2 is the only type BodyPart has).
 */
export function bodyPartElement(
  source: BodySource,
  preferences: readonly BodyPreference[],
  policy?: BodyPolicy,
): WbxmlElement | undefined {
  const asked = preferences.find((p) => p.type === BodyType.Html);
  if (!asked || (policy && !policy.allowHtml)) return undefined;
  const preference = capTruncation(asked, policy?.maxHtmlBytes);
  const cut = truncateContent(htmlOf(source), preference, source.htmlMissing ?? 0);
  const tooLarge = cut.data === undefined && preference.allOrNone === true && cut.truncated;
  const preview = preference.preview ? previewOf(source, preference.preview) : undefined;
  return el('AirSyncBase', 'BodyPart', [
    el('AirSyncBase', 'Status', tooLarge ? 176 : 1),
    el('AirSyncBase', 'Type', BodyType.Html),
    el('AirSyncBase', 'EstimatedDataSize', cut.fullSize),
    el('AirSyncBase', 'Truncated', cut.truncated ? '1' : '0'),
    cut.data !== undefined && dataElement(cut.data),
    preview ? el('AirSyncBase', 'Preview', preview) : undefined,
  ]);
}

/**
 * The chosen body type and its limits under the user's policy: MIME only when the policy lets the whole message go
 * (else the device's other preferences decide, without MIME), HTML only when AllowHTMLEmail is on (else plain text
 * under the device's plain-text preference, or the HTML one's limits), and the truncation no larger than the
 * policy's for that type.
 */
function withinPolicy(
  selected: BodyPreference,
  preferences: readonly BodyPreference[],
  source: BodySource,
  policy: BodyPolicy,
): BodyPreference {
  let preference = selected;
  if (preference.type === BodyType.Mime && !policy.mimeAllowed) {
    const others = preferences.filter((p) => p.type !== BodyType.Mime);
    preference = others.length
      ? selectBodyPreference(others, source, 0)
      : withFields(preference, { type: BodyType.PlainText });
  }
  if (preference.type === BodyType.Html && !policy.allowHtml) {
    preference =
      preferences.find((p) => p.type === BodyType.PlainText) ?? withFields(preference, { type: BodyType.PlainText });
  }
  if (preference.type === BodyType.Html) return capTruncation(preference, policy.maxHtmlBytes);
  if (preference.type === BodyType.PlainText) return capTruncation(preference, policy.maxTextBytes);
  return preference;
}

function capTruncation(preference: BodyPreference, max: number | undefined): BodyPreference {
  if (max === undefined) return preference;
  return withFields(preference, {
    truncationSize: Math.min(max, preference.truncationSize ?? Number.POSITIVE_INFINITY),
  });
}

/** Data is a string element; raw MIME that is not UTF-8 (8-bit legacy charsets) can only travel as OPAQUE bytes. */
function dataElement(data: string | Uint8Array): WbxmlElement {
  if (typeof data === 'string') return el('AirSyncBase', 'Data', data);
  const text = utf8OrUndefined(data);
  return text !== undefined ? el('AirSyncBase', 'Data', text) : el('AirSyncBase', 'Data', data);
}

export interface TruncatedContent<T extends string | Uint8Array> {
  /** What to send as Data; undefined when nothing is sent (TruncationSize 0, or AllOrNone on a larger body). */
  data: T | undefined;
  truncated: boolean;
  /** Size in bytes of the whole body in this type (UTF-8 for text). */
  fullSize: number;
}

/** Bytes a body read in part must hold past the truncation size (a character cut at its end may be lost). */
const PART_GUARD = 16;

/**
 * Applies TruncationSize and AllOrNone to a body; text is cut at a UTF-8 character boundary. `missing`: bytes of the
 * body beyond `content` (read in part); BodyReadInPartError when the answer needs some of them.
 */
export function truncateContent<T extends string | Uint8Array>(
  content: T,
  preference: BodyPreference,
  missing = 0,
): TruncatedContent<T> {
  const have = typeof content === 'string' ? utf8Length(content) : content.length;
  const fullSize = have + missing;
  const limit = preference.truncationSize;
  if (limit === undefined || fullSize <= limit) {
    if (missing > 0) throw new BodyReadInPartError();
    return { data: content, truncated: false, fullSize };
  }
  if (preference.allOrNone || limit <= 0) return { data: undefined, truncated: true, fullSize };
  if (missing > 0 && have < limit + PART_GUARD) throw new BodyReadInPartError();
  const data = (typeof content === 'string' ? truncateUtf8(content, limit) : truncateBytes(content, limit)) as T;
  return { data, truncated: true, fullSize };
}

const utf8Encoder = new TextEncoder();
// ignoreBOM keeps a leading BOM in raw MIME, so that Data is the message byte for byte (both options spelled out for
// the Workers types).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The UTF-8 length of a string, without encoding it. */
export function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** The longest prefix of `text` whose UTF-8 encoding fits in `maxBytes`; never splits a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  // encodeInto writes whole characters only, so `read` is the longest prefix that fits.
  const { read } = utf8Encoder.encodeInto(text, new Uint8Array(maxBytes));
  return text.slice(0, read);
}

/** Raw bytes cut at `maxBytes`, backed off to a UTF-8 character boundary (harmless for non-UTF-8 bytes). */
function truncateBytes(bytes: Uint8Array, maxBytes: number): Uint8Array {
  let end = maxBytes;
  // Step back over continuation bytes (10xxxxxx), at most 3, so a multibyte character is not split.
  for (let i = 0; i < 3 && end > 0 && (bytes[end]! & 0xc0) === 0x80; i++) end--;
  return bytes.subarray(0, end);
}

function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A plain-text preview of at most `chars` (≤ 255) characters, whitespace collapsed. */
export function previewOf(source: BodySource, chars: number): string {
  const limit = Math.min(chars, MAX_PREVIEW_CHARS);
  const text = plainTextOf(source);
  // Only the start of a long body can reach the preview: collapse a window, widening it only if whitespace ate it.
  for (let window = limit * 2 + 16; ; window *= 4) {
    const collapsed = text.slice(0, window).replace(/\s+/g, ' ').trimStart();
    const cut = firstCodePoints(collapsed, limit);
    if (cut.length < collapsed.length) return cut.trimEnd();
    if (window >= text.length) {
      // The start of a body read in part may be too short for the Preview.
      if (plainMissing(source, text) > 0) throw new BodyReadInPartError();
      return cut.trimEnd();
    }
  }
}

/** The first `count` code points of `text` (never half a surrogate pair). */
function firstCodePoints(text: string, count: number): string {
  let end = 0;
  for (let n = 0; n < count && end < text.length; n++) {
    const c = text.charCodeAt(end);
    end += c >= 0xd800 && c <= 0xdbff && end + 1 < text.length ? 2 : 1;
  }
  return text.slice(0, end);
}

/** Plain text as a minimal HTML document that keeps its line breaks. */
export function plainTextToHtml(text: string): string {
  return (
    '<html><head><meta charset="utf-8"></head><body>' +
    '<div style="white-space: pre-wrap; font-family: inherit">' +
    escapeHtml(text) +
    '</div></body></html>'
  );
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&quot;'));
}

/**
 * The body is sent as UTF-8 (InternetCPID 65001) whatever charset the message declared, so a `<meta>` charset
 * declaration (e.g. windows-1252) is rewritten; some clients' web views would otherwise decode the text again.
 */
function declareUtf8(html: string): string {
  return html.replace(/(<meta\b[^>]*?\bcharset\s*=\s*["']?)([\w.:-]+)/gi, (whole, start: string, charset: string) =>
    /^utf-?8$/i.test(charset) ? whole : `${start}utf-8`,
  );
}

// Elements that stand apart as paragraphs (a blank line around them), and elements that only start a new line.
const PARAGRAPH_TAGS = /<\/?(?:p|h[1-6]|ul|ol|dl|table|blockquote|pre|hr)\b[^>]*>/gi;
const LINE_TAGS = /<\/?(?:div|li|tr|dd|dt|section|article|header|footer|address|center)\b[^>]*>/gi;
// Placeholders for the two kinds of break, merged once all tags are gone (so that `</div><div>` is one line break).
const LINE = '\u0001';
const PARAGRAPH = '\u0002';

/**
 * A readable plain-text rendering of an HTML body: script, style and head dropped, paragraphs separated by a blank
 * line, other blocks and `<br>` by a line break, list items bulleted, table cells separated by tabs, entities
 * decoded, source whitespace collapsed as a browser would. Deliberately small (no DOM): it serves plain-text bodies
 * and previews, not layout.
 */
export function htmlToPlainText(html: string): string {
  const text = html
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<(head|style|script|title)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, '')
    .replace(/[\u0001\u0002]/g, '')
    .replace(/\s+/g, ' ') // source whitespace is insignificant in HTML
    .replace(/<br\b[^>]*>/gi, '\n')
    .replace(/<li\b[^>]*>/gi, `${LINE}• `)
    .replace(PARAGRAPH_TAGS, PARAGRAPH)
    .replace(LINE_TAGS, LINE)
    .replace(/<\/t[dh]\s*>/gi, '\t')
    .replace(/<[^>]*>/g, '');
  return decodeHtmlEntities(text)
    .replace(/\u00a0/g, ' ')
    .replace(/[ \t]*[\u0001\u0002][\s\u0001\u0002]*/g, (run) => (run.includes(PARAGRAPH) ? '\n\n' : '\n'))
    .replace(/[ \t]*\n[ \t]*/g, '\n')
    .replace(/[ \t]{2,}/g, ' ')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

// The named entities mail HTML actually uses; anything else numeric (&#8364; &#x20AC;) is decoded generically.
const NAMED_ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: '\u00a0',
  shy: '\u00ad',
  copy: '©',
  reg: '®',
  trade: '™',
  euro: '€',
  pound: '£',
  yen: '¥',
  cent: '¢',
  sect: '§',
  para: '¶',
  deg: '°',
  plusmn: '±',
  times: '×',
  divide: '÷',
  micro: 'µ',
  middot: '·',
  bull: '•',
  hellip: '…',
  prime: '′',
  ndash: '–',
  mdash: '—',
  lsquo: '‘',
  rsquo: '’',
  sbquo: '‚',
  ldquo: '“',
  rdquo: '”',
  bdquo: '„',
  laquo: '«',
  raquo: '»',
  lsaquo: '‹',
  rsaquo: '›',
  iexcl: '¡',
  iquest: '¿',
  larr: '←',
  rarr: '→',
  uarr: '↑',
  darr: '↓',
  harr: '↔',
  frac12: '½',
  frac14: '¼',
  frac34: '¾',
  sup2: '²',
  sup3: '³',
  auml: 'ä',
  ouml: 'ö',
  uuml: 'ü',
  Auml: 'Ä',
  Ouml: 'Ö',
  Uuml: 'Ü',
  szlig: 'ß',
  eacute: 'é',
  egrave: 'è',
  ecirc: 'ê',
  aacute: 'á',
  agrave: 'à',
  acirc: 'â',
  oacute: 'ó',
  ograve: 'ò',
  ocirc: 'ô',
  iacute: 'í',
  uacute: 'ú',
  ccedil: 'ç',
  Ccedil: 'Ç',
  ntilde: 'ñ',
  Ntilde: 'Ñ',
  Eacute: 'É',
  aring: 'å',
  Aring: 'Å',
  aelig: 'æ',
  AElig: 'Æ',
  oslash: 'ø',
  Oslash: 'Ø',
  zwnj: '\u200c',
  zwj: '\u200d',
  ensp: ' ',
  emsp: ' ',
  thinsp: ' ',
};

export function decodeHtmlEntities(text: string): string {
  return text.replace(/&(#[xX][0-9a-fA-F]{1,6}|#[0-9]{1,7}|[A-Za-z][A-Za-z0-9]{1,31});/g, (whole, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[name] ?? whole;
  });
}
