/**
 * Element tree → WBXML, in the canonical form ActiveSync peers send: header `03 01 6A 00` (WBXML 1.3, unknown
 * public id, UTF-8, no string table), SWITCH_PAGE only when the namespace changes, STR_I for strings and OPAQUE
 * for bytes.
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

export function encodeWbxml(root: WbxmlElement): Uint8Array<ArrayBuffer> {
  const out = new ByteWriter();
  for (const b of HEADER) out.byte(b);
  let page = 0;

  const write = (element: WbxmlElement): void => {
    const code = tagCode(element.ns, element.tag);
    if (!code) throw new WbxmlEncodeError(`no tag ${element.ns}:${element.tag} in the ActiveSync code pages`);
    if (code.page !== page) {
      out.byte(SWITCH_PAGE);
      out.byte(code.page);
      page = code.page;
    }
    const hasValue = (element.opaque !== undefined) || (element.text !== undefined && element.text !== '');
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
