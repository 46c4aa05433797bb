/**
 * WBXML → element tree (MS-ASWBXML, WBXML 1.3 as ActiveSync uses it).
 *
 * Input comes from the network, so every malformation raises a WbxmlDecodeError with a code and the byte offset:
 * the HTTP layer turns it into a 400 or the command's protocol status. Nothing here may throw anything else.
 */
import { MAX_PAGE, pageByNumber, tagName } from './codepages.ts';
import { nextMacrotask } from '../util/yield.ts';
import type { WbxmlElement } from './tree.ts';

export type WbxmlDecodeErrorCode =
  | 'too-large' // the document exceeds its budget: bytes, elements or text bytes (DecodeLimits)
  | 'bad-header' // version or charset the codec does not speak
  | 'truncated' // input ends inside a token, a string, or with open elements
  | 'bad-length' // an mb_u_int32 longer than 5 bytes, beyond 2^32-1, or a length past the end of input
  | 'string-table' // STR_T: ActiveSync never uses the string table
  | 'unsupported-token' // ENTITY, LITERAL*, EXT*, PI: not used by ActiveSync
  | 'attributes' // a tag with the attribute bit: ActiveSync has no attributes
  | 'unknown-page' // SWITCH_PAGE to a page that does not exist
  | 'unknown-tag' // a token the current page does not define
  | 'unbalanced-end' // END with no open element
  | 'misplaced-content' // text or a second root outside the root element, or data after it
  | 'too-deep' // nesting beyond the limit
  | 'invalid-utf8' // a string that is not UTF-8
  | 'no-root'; // a header and nothing else

export class WbxmlDecodeError extends Error {
  override readonly name = 'WbxmlDecodeError';
  constructor(
    readonly code: WbxmlDecodeErrorCode,
    readonly offset: number,
    detail: string,
  ) {
    super(`WBXML ${code} at byte ${offset}: ${detail}`);
  }
}

/**
 * The budget of one document. Each element costs the decoder an object of ~90 bytes of heap (a megabyte of empty
 * tags would be ~175 MB), far more than its one byte on the wire, so the byte limit alone does not bound memory: the
 * element and text budgets do, and the decoder stops at the first token over them, with the tree built so far (at
 * most the budget) left to the garbage collector.
 */
export interface DecodeLimits {
  /** Largest document accepted, in bytes (default 32 MiB). */
  maxBytes?: number;
  /** Deepest element nesting accepted (default 64; real ActiveSync documents stay under 15). */
  maxDepth?: number;
  /** Most elements accepted (default 100,000). */
  maxElements?: number;
  /** Most content bytes accepted, inline strings and opaque data together (default: maxBytes). */
  maxTextBytes?: number;
}

const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;
const DEFAULT_MAX_DEPTH = 64;
export const DEFAULT_MAX_ELEMENTS = 100_000;

const SWITCH_PAGE = 0x00;
const END = 0x01;
const STR_I = 0x03;
const STR_T = 0x83;
const OPAQUE = 0xc3;
const CHARSET_UTF8 = 106;

// ignoreBOM is the default; spelled out because the Workers types (tsconfig.workers.json) require both options.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Decodes one ActiveSync WBXML document into its root element, in one go. */
export function decodeWbxml(input: Uint8Array, limits: DecodeLimits = {}): WbxmlElement {
  const decoder = Decoder.of(input, limits);
  decoder.advance(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
  return decoder.finish();
}

/**
 * How much a yielding decode does between two turns of the event loop. The defaults keep a slice to about a
 * millisecond: building an element costs the decoder some 100-200 ns, copying a kilobyte of content far less.
 */
export interface DecodeSlices {
  /** Input bytes per slice (default 64 KiB); one string or opaque token is never split, whatever its length. */
  bytes?: number;
  /** Elements per slice (default 4096). */
  elements?: number;
  /** Gives the event loop its turn between slices (default: util/yield.ts nextMacrotask). */
  pause?: () => Promise<void>;
}

const DEFAULT_SLICE_BYTES = 64 * 1024;
const DEFAULT_SLICE_ELEMENTS = 4096;

/**
 * decodeWbxml for large input on a shared thread: the same tree and the same errors, but the work is cut into
 * slices with a turn of the event loop between them, so that other requests go on while a large body is decoded.
 * A document that fits in one slice is decoded without a pause.
 */
export async function decodeWbxmlYielding(
  input: Uint8Array,
  limits: DecodeLimits = {},
  slices: DecodeSlices = {},
): Promise<WbxmlElement> {
  const sliceBytes = slices.bytes ?? DEFAULT_SLICE_BYTES;
  const sliceElements = slices.elements ?? DEFAULT_SLICE_ELEMENTS;
  const pause = slices.pause ?? nextMacrotask;
  const decoder = Decoder.of(input, limits);
  while (!decoder.advance(decoder.position + sliceBytes, decoder.elementCount + sliceElements)) await pause();
  return decoder.finish();
}

interface Budget {
  depth: number;
  elements: number;
  textBytes: number;
}

/**
 * Reads ActiveSync WBXML, strictly. One instance decodes one document: `of` reads the header, `advance` the body
 * (in one call, or in slices), `finish` checks the end and gives the root.
 */
class Decoder {
  private pos = 0;
  private page = 0;
  private elements = 0;
  private textBytes = 0;
  private readonly stack: WbxmlElement[] = [];
  // Text parts of each open element, joined when it ends (content may come in several tokens).
  private readonly parts: (string | Uint8Array)[][] = [];
  private root: WbxmlElement | undefined;

  private constructor(
    private readonly bytes: Uint8Array,
    private readonly budget: Budget,
  ) {}

  /** A decoder of `input` past its header; the byte limit is checked first. */
  static of(input: Uint8Array, limits: DecodeLimits): Decoder {
    const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
    if (input.length > maxBytes) {
      throw new WbxmlDecodeError('too-large', 0, `${input.length} bytes exceed the limit of ${maxBytes}`);
    }
    const decoder = new Decoder(input, {
      depth: limits.maxDepth ?? DEFAULT_MAX_DEPTH,
      elements: limits.maxElements ?? DEFAULT_MAX_ELEMENTS,
      textBytes: limits.maxTextBytes ?? maxBytes,
    });
    decoder.header();
    return decoder;
  }

  /** Input bytes read so far. */
  get position(): number {
    return this.pos;
  }

  /** Elements built so far. */
  get elementCount(): number {
    return this.elements;
  }

  /**
   * Decodes tokens until the root element has ended or the input ends (true), or until the input read reaches
   * `untilPos` or the elements built reach `untilElements` (false: call again).
   */
  advance(untilPos: number, untilElements: number): boolean {
    const { bytes, stack, parts } = this;

    while (this.pos < bytes.length) {
      if (this.pos >= untilPos || this.elements >= untilElements) return false;
      const at = this.pos;
      const token = bytes[this.pos++]!;
      switch (token) {
        case SWITCH_PAGE: {
          const page = this.byte();
          if (page > MAX_PAGE || !pageByNumber(page)) {
            throw new WbxmlDecodeError('unknown-page', at, `code page ${page}`);
          }
          this.page = page;
          break;
        }
        case END: {
          const element = stack.pop();
          if (!element) throw new WbxmlDecodeError('unbalanced-end', at, 'END without an open element');
          setContent(element, parts.pop()!);
          break;
        }
        case STR_I: {
          if (stack.length === 0)
            throw new WbxmlDecodeError('misplaced-content', at, 'string outside the root element');
          parts[parts.length - 1]!.push(this.inlineString());
          break;
        }
        case OPAQUE: {
          if (stack.length === 0)
            throw new WbxmlDecodeError('misplaced-content', at, 'opaque data outside the root element');
          const length = this.mbUint32();
          if (length > bytes.length - this.pos) {
            throw new WbxmlDecodeError('bad-length', at, `opaque length ${length} runs past the end of input`);
          }
          this.spendText(length, at);
          parts[parts.length - 1]!.push(bytes.slice(this.pos, this.pos + length));
          this.pos += length;
          break;
        }
        case STR_T:
          throw new WbxmlDecodeError('string-table', at, 'string table reference (STR_T)');
        default: {
          if ((token & 0x3f) < 0x05) {
            // The remaining global tokens: ENTITY, LITERAL(_A/_C/_AC), EXT_I/T/0-2, PI.
            throw new WbxmlDecodeError('unsupported-token', at, `global token 0x${hex(token)}`);
          }
          if (token & 0x80) throw new WbxmlDecodeError('attributes', at, `tag 0x${hex(token)} has attributes`);
          const tag = tagName(this.page, token & 0x3f);
          if (tag === undefined) {
            throw new WbxmlDecodeError('unknown-tag', at, `token 0x${hex(token & 0x3f)} on page ${this.page}`);
          }
          if (++this.elements > this.budget.elements) {
            throw new WbxmlDecodeError('too-large', at, `more than ${this.budget.elements} elements`);
          }
          const element: WbxmlElement = { ns: pageByNumber(this.page)!.namespace, tag, children: [] };
          const parent = stack[stack.length - 1];
          if (parent) parent.children.push(element);
          else if (this.root) throw new WbxmlDecodeError('misplaced-content', at, 'a second root element');
          else this.root = element;
          if (token & 0x40) {
            if (stack.length >= this.budget.depth) {
              throw new WbxmlDecodeError('too-deep', at, `nesting deeper than ${this.budget.depth}`);
            }
            stack.push(element);
            parts.push([]);
          }
          if (!parent && !(token & 0x40)) this.expectEnd();
        }
      }
      if (this.root && stack.length === 0) break;
    }
    return true;
  }

  /** After `advance` returned true: the root, once no element is left open and nothing follows it. */
  finish(): WbxmlElement {
    if (this.stack.length > 0)
      throw new WbxmlDecodeError('truncated', this.pos, `${this.stack.length} element(s) not closed`);
    if (!this.root) throw new WbxmlDecodeError('no-root', this.pos, 'no root element');
    this.expectEnd();
    return this.root;
  }

  private header(): void {
    const version = this.byte();
    if (version < 0x01 || version > 0x03)
      throw new WbxmlDecodeError('bad-header', 0, `WBXML version 0x${hex(version)}`);
    const publicId = this.mbUint32();
    if (publicId === 0) this.mbUint32(); // a string-table index naming the public id; ActiveSync sends 1 instead
    const charsetAt = this.pos;
    const charset = this.mbUint32();
    if (charset !== CHARSET_UTF8) throw new WbxmlDecodeError('bad-header', charsetAt, `charset ${charset}, not UTF-8`);
    const tableAt = this.pos;
    const tableLength = this.mbUint32();
    if (tableLength > this.bytes.length - this.pos) {
      throw new WbxmlDecodeError(
        'bad-length',
        tableAt,
        `string table length ${tableLength} runs past the end of input`,
      );
    }
    this.pos += tableLength; // skipped: nothing may reference it
  }

  /** Only padding-free input is accepted: anything after the root element is an error. */
  private expectEnd(): void {
    if (this.pos < this.bytes.length) {
      throw new WbxmlDecodeError(
        'misplaced-content',
        this.pos,
        `${this.bytes.length - this.pos} byte(s) after the root element`,
      );
    }
  }

  /** Counts content bytes before they are copied or decoded. */
  private spendText(length: number, at: number): void {
    this.textBytes += length;
    if (this.textBytes > this.budget.textBytes) {
      throw new WbxmlDecodeError('too-large', at, `more than ${this.budget.textBytes} bytes of content`);
    }
  }

  private byte(): number {
    if (this.pos >= this.bytes.length) throw new WbxmlDecodeError('truncated', this.pos, 'input ends inside a token');
    return this.bytes[this.pos++]!;
  }

  /** A multi-byte unsigned 32-bit integer: big-endian 7-bit groups, the high bit marks continuation. */
  private mbUint32(): number {
    const start = this.pos;
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      value = value * 128 + (b & 0x7f);
      if (!(b & 0x80)) {
        if (value > 0xffffffff) throw new WbxmlDecodeError('bad-length', start, 'mb_u_int32 beyond 2^32-1');
        return value;
      }
    }
    throw new WbxmlDecodeError('bad-length', start, 'mb_u_int32 longer than 5 bytes');
  }

  private inlineString(): string {
    const end = this.bytes.indexOf(0, this.pos);
    if (end < 0) throw new WbxmlDecodeError('truncated', this.pos, 'inline string without its NUL terminator');
    const start = this.pos;
    this.spendText(end - start, start);
    this.pos = end + 1;
    try {
      return utf8.decode(this.bytes.subarray(start, end));
    } catch {
      throw new WbxmlDecodeError('invalid-utf8', start, 'inline string is not UTF-8');
    }
  }
}

/** Strings only → text; any OPAQUE part → bytes (strings among them as UTF-8). */
function setContent(element: WbxmlElement, parts: (string | Uint8Array)[]): void {
  if (parts.length === 0) return;
  if (parts.every((p) => typeof p === 'string')) {
    element.text = parts.length === 1 ? (parts[0] as string) : parts.join('');
    return;
  }
  const chunks = parts.map((p) => (typeof p === 'string' ? new TextEncoder().encode(p) : p));
  if (chunks.length === 1) {
    element.opaque = chunks[0]!;
    return;
  }
  const joined = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    joined.set(c, offset);
    offset += c.length;
  }
  element.opaque = joined;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}
