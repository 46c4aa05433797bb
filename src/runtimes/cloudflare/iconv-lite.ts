/**
 * iconv-lite for the Worker bundle (wrangler.toml `[alias]`): the same API as far as imapflow and libmime call it,
 * without iconv-lite's ~480 KiB of code tables. workerd's TextDecoder knows every WHATWG encoding (Shift_JIS,
 * ISO-2022-JP, EUC-JP, GBK, GB18030, Big5, EUC-KR, windows-125x, ISO-8859-x, KOI8, ...), so decoding goes there.
 * What the platform does not have is written here: UTF-7 and IMAP's modified UTF-7 (RFC 2152, RFC 3501 §5.1.3,
 * mailbox names), UTF-32, true ISO-8859-1 (WHATWG reads it as windows-1252), ASCII, and Node's base64/hex.
 *
 * Of iconv-lite's 102 codecs, 47 rare ones are unknown here (the DOS code pages cp437…cp1163, ISO-8859-16, the Mac
 * variants other than Roman and Cyrillic, KOI8-T, ARMSCII-8, VISCII, ...): libmime then reads the text as UTF-8 (and
 * says so, `supported: false`), imapflow passes it on undecoded, as for any charset iconv-lite does not know.
 *
 * Encoding: the Unicode encodings, latin1/ASCII, and every single-byte charset (its table is read back from
 * TextDecoder); characters a single-byte charset lacks become '?', as in iconv-lite. Encoding to a multi-byte
 * legacy charset (Shift_JIS, GBK, ...) throws: nothing in the Worker does it (libmime and nodemailer write UTF-8).
 */
import { Buffer } from 'node:buffer';
import { Transform } from 'node:stream';

export interface IconvDecoder {
  write(bytes: Uint8Array): string;
  end(): string | undefined;
}

export interface IconvEncoder {
  write(text: string): Buffer;
  end(): Buffer | undefined;
}

/**
 * One charset. libmime tells codecs apart by identity (getCodec returns one object per charset, whatever alias names
 * it) and by their `decoder` function, so each codec has a function of its own.
 */
export interface IconvCodec {
  readonly encodingName: string;
  readonly decoder: () => IconvDecoder;
  readonly encoder: () => IconvEncoder;
}

/** Options iconv-lite takes; the BOM is always stripped and never added, iconv-lite's defaults. */
export type IconvOptions = Record<string, unknown>;

// ------------------------------------------------------------------------------------------------ names

/** How iconv-lite compares names: lower case, letters and digits only, no `:1987`-style year. */
const squash = (name: string): string => name.toLowerCase().replace(/:\d{4}$|[^0-9a-z]/g, '');

/** Names (squashed) of the codecs written here, and their aliases. */
const OWN_NAMES: Record<string, string> = {
  utf8: 'utf8',
  unicode11utf8: 'utf8',
  cesu8: 'utf8',
  utf16le: 'utf16le',
  ucs2: 'utf16le',
  utf16be: 'utf16be',
  utf16: 'utf16',
  utf32le: 'utf32le',
  ucs4le: 'utf32le',
  utf32be: 'utf32be',
  ucs4be: 'utf32be',
  utf32: 'utf32',
  ucs4: 'utf32',
  utf7: 'utf7',
  unicode11utf7: 'utf7',
  utf7imap: 'utf7imap',
  latin1: 'latin1',
  binary: 'latin1',
  iso88591: 'latin1',
  l1: 'latin1',
  cp819: 'latin1',
  ibm819: 'latin1',
  isoir100: 'latin1',
  csisolatin1: 'latin1',
  ascii: 'ascii',
  usascii: 'ascii',
  ascii8bit: 'ascii',
  ansix34: 'ascii',
  ansix341968: 'ascii',
  ansix341986: 'ascii',
  csascii: 'ascii',
  cp367: 'ascii',
  ibm367: 'ascii',
  isoir6: 'ascii',
  iso646us: 'ascii',
  iso646irv: 'ascii',
  us: 'ascii',
  base64: 'base64',
  hex: 'hex',
};

/** Names iconv-lite knows (squashed) that are no WHATWG label, and the label TextDecoder knows them by. */
const PLATFORM_ALIASES: Record<string, string> = {
  shiftjis: 'shift_jis',
  mskanji: 'shift_jis',
  cp932: 'shift_jis',
  xsjis: 'shift_jis',
  windows31j: 'shift_jis',
  eucjp: 'euc-jp',
  iso2022jp: 'iso-2022-jp',
  cp936: 'gbk',
  ms936: 'gbk',
  cp949: 'euc-kr',
  euckr: 'euc-kr',
  ksc56011987: 'euc-kr',
  ksc5601: 'euc-kr',
  windows949: 'euc-kr',
  cp950: 'big5',
  big5hkscs: 'big5-hkscs',
  cnbig5: 'big5',
  cp866: 'ibm866',
  tis620: 'windows-874',
  iso885911: 'windows-874',
  cp874: 'windows-874',
  windows874: 'windows-874',
  koi8r: 'koi8-r',
  koi8u: 'koi8-u',
  koi8ru: 'koi8-u',
  mac: 'macintosh',
  macroman: 'macintosh',
  maccyrillic: 'x-mac-cyrillic',
  xmaccyrillic: 'x-mac-cyrillic',
  macukraine: 'x-mac-cyrillic',
};

/** The WHATWG label for a squashed name of the windows-125x, cp125x and iso-8859-x families. */
function numberedLabel(name: string): string | undefined {
  const windows = /^(?:windows|win|cp)(12[5][0-8])$/.exec(name);
  if (windows) return `windows-${windows[1]}`;
  const iso = /^iso8859(\d{1,2})$/.exec(name);
  if (iso) return `iso-8859-${iso[1]}`;
  return undefined;
}

/** The platform's decoder for a name, if it knows one: the name as given first (a WHATWG label), then iconv-lite's. */
function platformEncoding(name: string): string | undefined {
  const squashed = squash(name);
  for (const label of [name.trim(), PLATFORM_ALIASES[squashed], numberedLabel(squashed)]) {
    if (!label) continue;
    try {
      return new TextDecoder(label).encoding;
    } catch {
      // not a label this platform knows
    }
  }
  return undefined;
}

// ------------------------------------------------------------------------------------------------ codecs

const codecs = new Map<string, IconvCodec>();

function codec(encodingName: string, decoder: () => IconvDecoder, encoder: () => IconvEncoder): IconvCodec {
  return { encodingName, decoder: () => decoder(), encoder: () => encoder() };
}

/** An encoder that needs no state between writes. */
function stateless(encode: (text: string) => Buffer): () => IconvEncoder {
  return () => ({ write: encode, end: () => undefined });
}

/** A decoder of whole units of `size` bytes, holding back an unfinished unit between writes. */
function unitDecoder(size: number, decode: (bytes: Uint8Array) => string): () => IconvDecoder {
  return () => {
    let rest = new Uint8Array(0);
    return {
      write(bytes) {
        const all = rest.length ? concat(rest, bytes) : bytes;
        const whole = all.length - (all.length % size);
        rest = all.slice(whole);
        return decode(all.subarray(0, whole));
      },
      end() {
        rest = new Uint8Array(0);
        return undefined;
      },
    };
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * A streaming TextDecoder; the BOM of a Unicode encoding is dropped, as iconv-lite does. A UTF-16 input of an odd
 * length ends without a U+FFFD for its last byte, as in iconv-lite.
 */
function textDecoder(label: string): () => IconvDecoder {
  const utf16 = label.startsWith('utf-16');
  return () => {
    const decoder = new TextDecoder(label);
    let length = 0;
    return {
      write(bytes) {
        length += bytes.length;
        return decoder.decode(bytes, { stream: true });
      },
      end() {
        const rest = decoder.decode();
        return (utf16 && length % 2 === 1 && rest.endsWith('\ufffd') ? rest.slice(0, -1) : rest) || undefined;
      },
    };
  };
}

function latin1(bytes: Uint8Array, ascii: boolean): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 8192) {
    const part = Array.from(bytes.subarray(i, i + 8192), (b) => (ascii && b > 0x7f ? 0xfffd : b));
    out += String.fromCharCode(...part);
  }
  return out;
}

function encodeLatin1(text: string, highest: number): Buffer {
  const out = Buffer.alloc(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    out[i] = code <= highest ? code : 0x3f;
  }
  return out;
}

function utf16be(bytes: Uint8Array): string {
  const swapped = new Uint8Array(bytes.length - (bytes.length % 2));
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    swapped[i] = bytes[i + 1]!;
    swapped[i + 1] = bytes[i]!;
  }
  return new TextDecoder('utf-16le', { fatal: false, ignoreBOM: true }).decode(swapped);
}

function encodeUtf16be(text: string): Buffer {
  const out = Buffer.from(text, 'utf16le');
  for (let i = 0; i + 1 < out.length; i += 2) [out[i], out[i + 1]] = [out[i + 1]!, out[i]!];
  return out;
}

function utf32(bytes: Uint8Array, littleEndian: boolean): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const points: number[] = [];
  let out = '';
  for (let i = 0; i + 3 < bytes.length; i += 4) {
    const point = view.getUint32(i, littleEndian);
    points.push(point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff) ? 0xfffd : point);
    if (points.length === 8192) out += String.fromCodePoint(...points.splice(0));
  }
  return out + String.fromCodePoint(...points);
}

function encodeUtf32(text: string, littleEndian: boolean): Buffer {
  const points = Array.from(text, (c) => c.codePointAt(0)!);
  const out = Buffer.alloc(points.length * 4);
  points.forEach((point, i) => {
    if (littleEndian) out.writeUInt32LE(point, i * 4);
    else out.writeUInt32BE(point, i * 4);
  });
  return out;
}

/**
 * UTF-16 and UTF-32 without a byte order in the name: the BOM decides, else a guess from the first bytes (which half
 * of each unit holds the zeros, as iconv-lite guesses), else little-endian for UTF-16 and big-endian for UTF-32.
 */
function byteOrderDecoder(size: 2 | 4, little: () => IconvDecoder, big: () => IconvDecoder): () => IconvDecoder {
  const guessFrom = size * 50;
  return () => {
    let head: Uint8Array | undefined = new Uint8Array(0);
    let chosen: IconvDecoder | undefined;
    const choose = (bytes: Uint8Array): IconvDecoder => {
      let bom: 'le' | 'be' | undefined;
      if (size === 2 && bytes[0] === 0xff && bytes[1] === 0xfe) bom = 'le';
      if (size === 2 && bytes[0] === 0xfe && bytes[1] === 0xff) bom = 'be';
      if (size === 4 && bytes[0] === 0xff && bytes[1] === 0xfe && bytes[2] === 0 && bytes[3] === 0) bom = 'le';
      if (size === 4 && bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 0xfe && bytes[3] === 0xff) bom = 'be';
      if (bom) return (bom === 'le' ? little : big)();
      let zerosAtStart = 0;
      let zerosAtEnd = 0;
      for (let i = 0; i + size <= bytes.length; i += size) {
        if (bytes[i] === 0) zerosAtStart++;
        if (bytes[i + size - 1] === 0) zerosAtEnd++;
      }
      if (zerosAtStart > zerosAtEnd) return big();
      if (zerosAtEnd > zerosAtStart) return little();
      return size === 2 ? little() : big();
    };
    const release = (): string => {
      const bytes = head!;
      head = undefined;
      chosen = choose(bytes);
      return chosen.write(bytes);
    };
    return {
      write(bytes) {
        if (chosen) return chosen.write(bytes);
        head = concat(head!, bytes);
        return head.length < guessFrom ? '' : release();
      },
      end() {
        const text = head ? release() : '';
        return text + (chosen!.end() ?? '') || undefined;
      },
    };
  };
}

/** The code table of a single-byte charset, read back from the platform decoder, to encode with. */
function singleByteEncoder(label: string): () => IconvEncoder {
  let table: Map<number, number> | undefined;
  return stateless((text) => {
    if (!table) {
      table = new Map();
      const chars = new TextDecoder(label).decode(Uint8Array.from({ length: 256 }, (_, i) => i));
      for (let i = 0; i < chars.length; i++)
        if (chars.charCodeAt(i) !== 0xfffd && !table.has(chars.charCodeAt(i))) table.set(chars.charCodeAt(i), i);
    }
    const out = Buffer.alloc(text.length);
    for (let i = 0; i < text.length; i++) out[i] = table.get(text.charCodeAt(i)) ?? 0x3f;
    return out;
  });
}

const SINGLE_BYTE = /^(?:windows-12\d\d|windows-874|iso-8859-\d+(?:-i)?|koi8-[ru]|macintosh|x-mac-cyrillic|ibm866)$/;

function refuseEncoding(label: string): () => IconvEncoder {
  return () => {
    throw new Error(`Encoding to ${label} is not supported in the Worker build (only decoding is)`);
  };
}

function ownCodec(name: string): IconvCodec {
  switch (name) {
    case 'utf8':
      return codec(
        name,
        textDecoder('utf-8'),
        stateless((t) => Buffer.from(t, 'utf8')),
      );
    case 'utf16le':
      return codec(
        name,
        textDecoder('utf-16le'),
        stateless((t) => Buffer.from(t, 'utf16le')),
      );
    case 'utf16be':
      return codec(name, textDecoder('utf-16be'), stateless(encodeUtf16be));
    case 'utf16':
      return codec(
        name,
        byteOrderDecoder(2, textDecoder('utf-16le'), textDecoder('utf-16be')),
        stateless((t) => Buffer.from(t, 'utf16le')),
      );
    case 'utf32le':
    case 'utf32be': {
      const little = name === 'utf32le';
      return codec(
        name,
        withoutBom(unitDecoder(4, (b) => utf32(b, little))),
        stateless((t) => encodeUtf32(t, little)),
      );
    }
    case 'utf32':
      return codec(
        name,
        byteOrderDecoder(
          4,
          withoutBom(unitDecoder(4, (b) => utf32(b, true))),
          withoutBom(unitDecoder(4, (b) => utf32(b, false))),
        ),
        stateless((t) => encodeUtf32(t, true)),
      );
    case 'latin1':
      return codec(
        name,
        unitDecoder(1, (b) => latin1(b, false)),
        stateless((t) => encodeLatin1(t, 0xff)),
      );
    case 'ascii':
      return codec(
        name,
        unitDecoder(1, (b) => latin1(b, true)),
        stateless((t) => encodeLatin1(t, 0x7f)),
      );
    case 'base64':
    case 'hex': {
      const format = name;
      // Node's own decoders, which keep an unfinished base64 quantum between writes.
      const decoder = (): IconvDecoder => {
        let rest = '';
        return {
          write(bytes) {
            if (format === 'hex') return Buffer.from(bytes).toString('hex');
            const all = rest + Buffer.from(bytes).toString('latin1');
            const whole = all.length - (all.length % 3);
            rest = all.slice(whole);
            return Buffer.from(all.slice(0, whole), 'latin1').toString('base64');
          },
          end: () => (rest ? Buffer.from(rest, 'latin1').toString('base64') : undefined),
        };
      };
      return codec(
        name,
        decoder,
        stateless((t) => Buffer.from(t, format)),
      );
    }
    case 'utf7':
      return codec(name, utf7Decoder(false), utf7Encoder(false));
    case 'utf7imap':
      return codec(name, utf7Decoder(true), utf7Encoder(true));
  }
  throw new Error(`no codec ${name}`);
}

/** Drops a byte order mark at the very start of the text. */
function withoutBom(factory: () => IconvDecoder): () => IconvDecoder {
  return () => {
    const decoder = factory();
    let start = true;
    const strip = (text: string | undefined): string => {
      if (!start || !text) return text ?? '';
      start = false;
      return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    };
    return { write: (bytes) => strip(decoder.write(bytes)), end: () => strip(decoder.end()) || undefined };
  };
}

// ------------------------------------------------------------------------------------------------ UTF-7

// RFC 2152's directly encoded characters (set D, and the optional set O is encoded too, as iconv-lite does), space
// and line breaks; RFC 3501's modified UTF-7 writes every printable US-ASCII character directly, '&' as "&-".
const UTF7_DIRECT = /[A-Za-z0-9'(),\-./:? \n\r\t]/;
const isImapDirect = (code: number): boolean => code >= 0x20 && code <= 0x7e;

function utf7Encoder(imap: boolean): () => IconvEncoder {
  const shift = imap ? '&' : '+';
  // A run of characters that are not written directly; in UTF-7 a '+' alone is "+-", in a longer run it is encoded.
  const encodeRun = (run: string): string => {
    if (run === shift) return `${shift}-`;
    const base64 = encodeUtf16be(run).toString('base64').replace(/=+$/, '');
    return `${shift + (imap ? base64.replace(/\//g, ',') : base64)}-`;
  };
  return stateless((text) => {
    let out = '';
    let run = '';
    for (const char of text) {
      if (imap ? isImapDirect(char.charCodeAt(0)) : UTF7_DIRECT.test(char)) {
        if (run) out += encodeRun(run);
        run = '';
        out += imap && char === '&' ? '&-' : char;
      } else {
        run += char;
      }
    }
    if (run) out += encodeRun(run);
    return Buffer.from(out, 'latin1');
  });
}

/**
 * A base64 run between the shift character and the first character outside the base64 alphabet ('-' is absorbed);
 * shift followed by '-' is the shift character itself. Lenient, like iconv-lite: an unterminated run at the end is
 * decoded too. Between writes, an unfinished run waits for its end.
 */
function utf7Decoder(imap: boolean): () => IconvDecoder {
  const shift = imap ? '&' : '+';
  // iconv-lite takes '/' in modified UTF-7 too.
  const base64Char = imap ? /[A-Za-z0-9+/,]/ : /[A-Za-z0-9+/]/;
  const decodeRun = (run: string): string => {
    const base64 = imap ? run.replace(/,/g, '/') : run;
    return utf16be(Buffer.from(base64, 'base64'));
  };
  // Directly written characters are US-ASCII; another byte is no character.
  const direct = (text: string): string => text.replace(/[\x80-\xff]/g, '\ufffd');
  return () => {
    let pending = '';
    const parse = (final: boolean): string => {
      let out = '';
      let i = 0;
      while (i < pending.length) {
        const at = pending.indexOf(shift, i);
        if (at < 0) {
          out += direct(pending.slice(i));
          i = pending.length;
          break;
        }
        out += direct(pending.slice(i, at));
        let end = at + 1;
        while (end < pending.length && base64Char.test(pending[end]!)) end++;
        if (end === pending.length && !final) {
          i = at;
          break;
        }
        const run = pending.slice(at + 1, end);
        const dash = pending[end] === '-';
        out += run === '' && dash ? shift : decodeRun(run);
        i = dash ? end + 1 : end;
      }
      pending = pending.slice(i);
      return out;
    };
    return {
      write(bytes) {
        pending += Buffer.from(bytes).toString('latin1');
        return parse(false);
      },
      end() {
        return parse(true) || undefined;
      },
    };
  };
}

// ------------------------------------------------------------------------------------------------ API

/** The codec for a name, one object per charset; throws for a name it does not know, as iconv-lite does. */
export function getCodec(encoding: string): IconvCodec {
  const name = String(encoding);
  const own = OWN_NAMES[squash(name)];
  const key = own ?? platformEncoding(name);
  if (!key) throw new Error(`Encoding not recognized: '${name}' (searched as: '${squash(name)}')`);
  let found = codecs.get(key);
  if (!found) {
    found = own
      ? ownCodec(own)
      : codec(key, textDecoder(key), SINGLE_BYTE.test(key) ? singleByteEncoder(key) : refuseEncoding(key));
    codecs.set(key, found);
  }
  return found;
}

export function encodingExists(encoding: string): boolean {
  try {
    getCodec(encoding);
    return true;
  } catch {
    return false;
  }
}

export function getDecoder(encoding: string, _options?: IconvOptions): IconvDecoder {
  return getCodec(encoding).decoder();
}

export function getEncoder(encoding: string, _options?: IconvOptions): IconvEncoder {
  return getCodec(encoding).encoder();
}

/** Bytes to text; a string is read as binary, as iconv-lite does. */
export function decode(input: Uint8Array | string, encoding: string, options?: IconvOptions): string {
  const bytes = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const decoder = getDecoder(encoding, options);
  return decoder.write(bytes) + (decoder.end() ?? '');
}

export function encode(text: string, encoding: string, options?: IconvOptions): Buffer {
  const encoder = getEncoder(encoding, options);
  const head = encoder.write(String(text));
  const tail = encoder.end();
  return tail?.length ? Buffer.concat([head, tail]) : head;
}

/** A Transform from bytes to text (its readable side gives strings), as iconv-lite's decodeStream. */
export function decodeStream(encoding: string, options?: IconvOptions): Transform {
  const decoder = getDecoder(encoding, options);
  return new Transform({
    decodeStrings: false,
    encoding: 'utf8',
    transform(chunk: Buffer | string, _enc, done) {
      if (typeof chunk === 'string') return done(new Error('Iconv decoding stream needs buffers as its input.'));
      try {
        const text = decoder.write(chunk);
        if (text) this.push(text, 'utf8');
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done) {
      try {
        const text = decoder.end();
        if (text) this.push(text, 'utf8');
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
}

/** A Transform from text to bytes, as iconv-lite's encodeStream. */
export function encodeStream(encoding: string, options?: IconvOptions): Transform {
  const encoder = getEncoder(encoding, options);
  return new Transform({
    decodeStrings: false,
    transform(chunk: Buffer | string, _enc, done) {
      if (typeof chunk !== 'string') return done(new Error('Iconv encoding stream needs strings as its input.'));
      try {
        const bytes = encoder.write(chunk);
        if (bytes.length) this.push(bytes);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done) {
      const bytes = encoder.end();
      if (bytes?.length) this.push(bytes);
      done();
    },
  });
}

/** iconv-lite's Node-specific switches; nothing to do here. */
export function enableStreamingAPI(): void {}

const iconv = {
  getCodec,
  encodingExists,
  getDecoder,
  getEncoder,
  decode,
  encode,
  decodeStream,
  encodeStream,
  enableStreamingAPI,
};
export default iconv;
