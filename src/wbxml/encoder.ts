/**
 * Element tree → WBXML, in the canonical form ActiveSync peers send: header `03 01 6A 00` (WBXML 1.3, unknown
 * public id, UTF-8, no string table), SWITCH_PAGE only when the namespace changes, STR_I for strings and OPAQUE
 * for bytes.
 *
 * A pre-encoded fragment (`preEncoded`) is spliced as it is. Its bytes begin on code page 0 (every document does,
 * WBXML 1.3 §5.8), so the encoder switches to page 0 before it; which page the fragment ends on is not known
 * without parsing it, so the element after it always switches page.
 */
import { tagCode } from './codepages.ts';
import type { WbxmlElement } from './tree.ts';

export class WbxmlEncodeError extends Error {
  override readonly name = 'WbxmlEncodeError';
}

const HEADER = [0x03, 0x01, 0x6a, 0x00];
const SWITCH_PAGE = 0x00;
const END = 0x01;
const STR_I = 0x03;
const OPAQUE = 0xc3;
const HAS_CONTENT = 0x40;

const utf8 = new TextEncoder();

/** Not a code page: the page after a fragment, which is not known. */
const UNKNOWN_PAGE = -1;

export function encodeWbxml(root: WbxmlElement): Uint8Array<ArrayBuffer> {
  const out = new ByteWriter();
  for (const b of HEADER) out.byte(b);
  let page = 0;

  const write = (element: WbxmlElement): void => {
    if (element.encoded) {
      const fragment = element.encoded;
      if (fragment.length <= HEADER.length || HEADER.some((b, i) => fragment[i] !== b)) {
        throw new WbxmlEncodeError(`the pre-encoded ${element.ns}:${element.tag} is not a document encodeWbxml wrote`);
      }
      if (page !== 0) {
        out.byte(SWITCH_PAGE);
        out.byte(0);
      }
      out.raw(fragment.subarray(HEADER.length));
      page = UNKNOWN_PAGE;
      return;
    }
    const code = tagCode(element.ns, element.tag);
    if (!code) throw new WbxmlEncodeError(`no tag ${element.ns}:${element.tag} in the ActiveSync code pages`);
    if (code.page !== page) {
      out.byte(SWITCH_PAGE);
      out.byte(code.page);
      page = code.page;
    }
    const hasValue = element.opaque !== undefined || (element.text !== undefined && element.text !== '');
    if (!hasValue && element.children.length === 0) {
      out.byte(code.token);
      return;
    }
    out.byte(code.token | HAS_CONTENT);
    if (element.opaque !== undefined) out.opaque(element.opaque);
    else if (element.text) {
      // STR_I is NUL-terminated, so a string holding NUL can only travel as OPAQUE.
      if (element.text.includes('\0')) out.opaque(utf8.encode(element.text));
      else out.inlineString(element.text);
    }
    for (const c of element.children) write(c);
    out.byte(END);
  };

  write(root);
  return out.bytes();
}

/**
 * The element as a pre-encoded fragment: encoded now (or given as `bytes`, a document encodeWbxml wrote for it, e.g.
 * a stored replay), spliced as these bytes wherever the element is encoded again. The bytes are the standalone
 * encoding, so they can be stored and sent on their own too.
 */
export function preEncoded(element: WbxmlElement, bytes: Uint8Array = encodeWbxml(element)): WbxmlElement {
  return { ...element, encoded: bytes };
}

/** A growable byte buffer; strings are encoded straight into it. */
class ByteWriter {
  private buf = new Uint8Array(1024);
  private len = 0;

  byte(b: number): void {
    if (this.len === this.buf.length) this.grow(1);
    this.buf[this.len++] = b;
  }

  inlineString(s: string): void {
    this.byte(STR_I);
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    this.ensure(s.length * 3 + 1);
    this.len += utf8.encodeInto(s, this.buf.subarray(this.len)).written;
    this.buf[this.len++] = 0;
  }

  raw(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  opaque(data: Uint8Array): void {
    this.byte(OPAQUE);
    this.mbUint32(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  /** Multi-byte unsigned integer: 7-bit groups, most significant first, continuation bit on all but the last. */
  private mbUint32(value: number): void {
    const groups: number[] = [value & 0x7f];
    for (let v = Math.floor(value / 128); v > 0; v = Math.floor(v / 128)) groups.push((v & 0x7f) | 0x80);
    for (let i = groups.length - 1; i >= 0; i--) this.byte(groups[i]!);
  }

  bytes(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.len);
  }

  private ensure(n: number): void {
    if (this.len + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
}
