/**
 * The Worker's iconv-lite and encoding-japanese (src/runtimes/cloudflare/, aliased in wrangler.toml and in this
 * project's vitest config) inside workerd: modified UTF-7 for mailbox names, UTF-7, the Unicode encodings, and the
 * legacy charsets through workerd's TextDecoder; then imapflow and libmime, which import them by their package names.
 */
import encodingJapaneseAsImported from 'encoding-japanese';
import iconvAsImported from 'iconv-lite';
import { JPDecoder } from 'imapflow/lib/jp-decoder.js';
import { decodePath, encodePath } from 'imapflow/lib/tools.js';
import libmime from 'libmime';
import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import encodingJapanese from '../../src/runtimes/cloudflare/encoding-japanese.ts';
import iconv from '../../src/runtimes/cloudflare/iconv-lite.ts';

const bytes = (...values: number[]): Buffer => Buffer.from(values);

/** All output of a Transform fed `chunks`. */
async function streamed(transform: NodeJS.ReadWriteStream, chunks: Buffer[]): Promise<string> {
  let out = '';
  for await (const part of Readable.from(chunks).pipe(transform))
    out += typeof part === 'string' ? part : (part as Buffer).toString('utf8');
  return out;
}

describe('the alias', () => {
  it('is what `iconv-lite` and `encoding-japanese` resolve to in the Worker', () => {
    expect(iconvAsImported).toBe(iconv);
    expect(encodingJapaneseAsImported).toBe(encodingJapanese);
  });
});

describe('modified UTF-7 (RFC 3501 §5.1.3)', () => {
  const vectors: [string, string][] = [
    ['~peter/mail/台北/日本語', '~peter/mail/&U,BTFw-/&ZeVnLIqe-'], // the RFC's example
    ['Entwürfe', 'Entw&APw-rfe'],
    ['Tom & Jerry', 'Tom &- Jerry'],
    ['Привет & 😀', '&BB8EQAQ4BDIENQRC- &- &2D3eAA-'],
    ['INBOX', 'INBOX'],
  ];

  it('encodes and decodes the vectors', () => {
    for (const [text, encoded] of vectors) {
      expect(iconv.encode(text, 'utf-7-imap').toString()).toBe(encoded);
      expect(iconv.decode(Buffer.from(encoded), 'utf-7-imap')).toBe(text);
    }
  });

  it('round-trips text with every kind of character, and decodes an unterminated run at the end', () => {
    const texts = [
      '&&&',
      'a&b&-c',
      '\u0000\u007f tab\there',
      'Ünïcödé ÄÖÜ ß',
      '😀😁 surrogate pairs',
      'a,b/c+d',
      '日本語/中文/한국어',
    ];
    for (const text of texts) {
      const encoded = iconv.encode(text, 'utf-7-imap').toString();
      expect(encoded).toMatch(/^[\x20-\x7e]*$/);
      expect(iconv.decode(Buffer.from(encoded), 'utf7imap')).toBe(text);
    }
    expect(iconv.decode(Buffer.from('&ZeVnLIqe'), 'utf-7-imap')).toBe('日本語');
  });

  it('decodes across writes that split a base64 run', () => {
    const decoder = iconv.getDecoder('utf-7-imap');
    const parts = ['Entw&AP', 'w-rfe/&ZeV', 'nLIqe-'].map((p) => decoder.write(Buffer.from(p)));
    expect(parts.join('') + (decoder.end() ?? '')).toBe('Entwürfe/日本語');
  });

  it('is what imapflow encodes and decodes mailbox paths with, when the server has no UTF8=ACCEPT', () => {
    const connection = { enabled: new Set<string>(), capabilities: new Map<string, boolean>() };
    expect(encodePath(connection as never, 'Entwürfe')).toBe('Entw&APw-rfe');
    expect(decodePath(connection as never, '&ZeVnLIqe-/&U,BTFw-')).toBe('日本語/台北');
  });
});

describe('UTF-7 (RFC 2152)', () => {
  it('decodes the RFC examples', () => {
    expect(iconv.decode(Buffer.from('A+ImIDkQ.'), 'utf-7')).toBe('A\u2262\u0391.');
    expect(iconv.decode(Buffer.from('Hi Mom -+Jjo--!'), 'utf7')).toBe('Hi Mom -\u263a-!');
    expect(iconv.decode(Buffer.from('+ZeVnLIqe-'), 'unicode-1-1-utf-7')).toBe('日本語');
    expect(iconv.decode(Buffer.from('1 +- 1'), 'utf-7')).toBe('1 + 1');
  });

  it('encodes as iconv-lite does and round-trips', () => {
    expect(iconv.encode('Привет & 😀', 'utf-7').toString()).toBe('+BB8EQAQ4BDIENQRC- +ACY- +2D3eAA-');
    expect(iconv.encode('a+b', 'utf-7').toString()).toBe('a+-b');
    for (const text of ['~peter/mail/台北/日本語', 'x=1; y="2"!', 'Ünïcödé', '😀']) {
      expect(iconv.decode(iconv.encode(text, 'utf-7'), 'utf-7')).toBe(text);
    }
  });
});

describe('decoding with workerd’s TextDecoder and the codecs of its own', () => {
  it('decodes Shift_JIS, ISO-2022-JP, EUC-JP, GB18030, Big5 and EUC-KR', () => {
    expect(iconv.decode(bytes(0x93, 0xfa, 0x96, 0x7b, 0x8c, 0xea), 'Shift_JIS')).toBe('日本語');
    expect(iconv.decode(bytes(0x93, 0xfa, 0x96, 0x7b), 'cp932')).toBe('日本');
    expect(iconv.decode(bytes(0x1b, 0x24, 0x42, 0x46, 0x7c, 0x4b, 0x5c, 0x1b, 0x28, 0x42), 'ISO-2022-JP')).toBe('日本');
    expect(iconv.decode(bytes(0xc6, 0xfc, 0xcb, 0xdc), 'EUC-JP')).toBe('日本');
    expect(iconv.decode(bytes(0xd6, 0xd0, 0xce, 0xc4), 'GB2312')).toBe('中文');
    expect(iconv.decode(bytes(0x94, 0x39, 0xfc, 0x36), 'gb18030')).toBe('😀');
    expect(iconv.decode(bytes(0xa4, 0xa4, 0xa4, 0xe5), 'big5')).toBe('中文');
    expect(iconv.decode(bytes(0xc7, 0xd1, 0xb1, 0xdb), 'ks_c_5601-1987')).toBe('한글');
  });

  it('reads ISO-8859-1 as Latin-1 (not windows-1252, as WHATWG does), and the single-byte charsets by any name', () => {
    expect(iconv.decode(bytes(0x45, 0x6e, 0x74, 0x77, 0xfc, 0x72, 0x66, 0x65, 0x80), 'ISO-8859-1')).toBe(
      'Entwürfe\u0080',
    );
    expect(iconv.decode(bytes(0x80, 0xe9), 'windows-1252')).toBe('€é');
    expect(iconv.decode(bytes(0x80, 0xe9), 'cp1252')).toBe('€é');
    expect(iconv.decode(bytes(0xa4), 'iso-8859-15')).toBe('€');
    expect(iconv.decode(bytes(0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4), 'KOI8-R')).toBe('Привет');
    expect(iconv.decode(bytes(0xcf, 0xf0, 0xe8), 'win-1251'.replace('win-', 'windows-'))).toBe('При');
    expect(iconv.decode(bytes(0x41, 0xe9), 'us-ascii')).toBe('A\ufffd');
  });

  it('decodes UTF-16 and UTF-32 by BOM or by where the zeros are, and drops the BOM', () => {
    expect(iconv.decode(bytes(0xfe, 0xff, 0x00, 0x41, 0x00, 0xe9), 'utf-16')).toBe('Aé');
    expect(iconv.decode(bytes(0xff, 0xfe, 0x41, 0x00), 'UTF-16')).toBe('A');
    expect(iconv.decode(bytes(0x00, 0x48, 0x00, 0x69), 'utf-16')).toBe('Hi');
    expect(iconv.decode(bytes(0x48, 0x00, 0x69, 0x00), 'utf-16')).toBe('Hi');
    expect(iconv.decode(bytes(0x00, 0x48, 0x00, 0x69), 'utf-16be')).toBe('Hi');
    expect(iconv.decode(bytes(0x00, 0x00, 0xfe, 0xff, 0x00, 0x01, 0xf6, 0x00), 'utf-32')).toBe('😀');
    expect(iconv.decode(bytes(0x00, 0xf6, 0x01, 0x00, 0x41, 0x00, 0x00, 0x00), 'utf-32le')).toBe('😀A');
  });

  it('decodes a multi-byte character split between writes', async () => {
    const decoder = iconv.getDecoder('shift_jis');
    expect(decoder.write(bytes(0x93, 0xfa, 0x96)) + decoder.write(bytes(0x7b)) + (decoder.end() ?? '')).toBe('日本');
    const text = await streamed(iconv.decodeStream('windows-1251'), [bytes(0xcf), bytes(0xf0, 0xe8)]);
    expect(text).toBe('При');
    expect(await streamed(iconv.decodeStream('utf-16be'), [bytes(0x00), bytes(0x41, 0x00)])).toBe('A');
  });
});

describe('names, codecs and encoding', () => {
  it('gives one codec per charset, whatever alias names it, and refuses a name it does not know', () => {
    expect(iconv.getCodec('gb2312')).toBe(iconv.getCodec('GBK'));
    expect(iconv.getCodec('unicode-1-1-utf-7')).toBe(iconv.getCodec('utf7'));
    expect(iconv.getCodec('ISO_8859-1')).toBe(iconv.getCodec('latin1'));
    expect(iconv.getCodec('gbk').decoder).not.toBe(iconv.getCodec('big5').decoder);
    expect(iconv.encodingExists('x-no-such-charset')).toBe(false);
    expect(iconv.encodingExists('iso-2022-kr')).toBe(false);
    expect(() => iconv.decode(bytes(0x41), 'x-no-such-charset')).toThrow(/Encoding not recognized/);
  });

  it('encodes to the Unicode encodings and the single-byte charsets, "?" for what a charset lacks', () => {
    expect([...iconv.encode('é€?', 'latin1')]).toEqual([0xe9, 0x3f, 0x3f]);
    expect([...iconv.encode('é€', 'windows-1252')]).toEqual([0xe9, 0x80]);
    expect([...iconv.encode('При日', 'koi8-r')]).toEqual([0xf0, 0xd2, 0xc9, 0x3f]);
    expect([...iconv.encode('A😀', 'utf-16be')]).toEqual([0x00, 0x41, 0xd8, 0x3d, 0xde, 0x00]);
    expect([...iconv.encode('😀', 'utf32be')]).toEqual([0x00, 0x01, 0xf6, 0x00]);
    expect(iconv.encode('ü', 'utf8').toString('hex')).toBe('c3bc');
  });

  it('refuses to encode to a multi-byte legacy charset', () => {
    expect(() => iconv.encode('日本', 'shift_jis')).toThrow(/not supported in the Worker build/);
  });
});

describe('libmime through the alias', () => {
  it('decodes encoded words in legacy charsets and still refuses UTF-7', () => {
    expect(libmime.decodeWords('=?Shift_JIS?B?k/qWe4zq?=')).toBe('日本語');
    expect(libmime.decodeWords('=?ISO-8859-1?Q?Entw=FCrfe?=')).toBe('Entwürfe');
    expect(libmime.decodeWords('=?koi8-r?B?8NLJ18XU?=')).toBe('Привет');
    expect(libmime.decodeWords('=?iso-2022-jp?B?GyRCRnxLXBsoQg==?=')).toBe('日本');
    expect(libmime.decodeWords('=?utf-7?Q?+ADw-script+AD4-?=')).not.toContain('<script>');
  });

  it('streams GB18030 and UTF-16 split at any byte', async () => {
    const gb = bytes(0xd6, 0xd0, 0x20, 0x94, 0x39, 0xfc, 0x36, 0xce, 0xc4);
    const gbChunks = [...gb].map((b) => bytes(b));
    expect(await streamed(libmime.createDecodeStream('gb18030'), gbChunks)).toBe('中 😀文');
    const utf16 = Buffer.concat([bytes(0xfe, 0xff), Buffer.from('Hello, world', 'utf16le').swap16()]);
    expect(await streamed(libmime.createDecodeStream('utf-16'), [utf16.subarray(0, 3), utf16.subarray(3)])).toBe(
      'Hello, world',
    );
  });
});

describe('encoding-japanese through the alias', () => {
  const jis = bytes(0x1b, 0x24, 0x42, 0x46, 0x7c, 0x4b, 0x5c, 0x1b, 0x28, 0x42); // 日本 in ISO-2022-JP
  const sjis = bytes(0x93, 0xfa, 0x96, 0x7b);
  const eucjp = bytes(0xc6, 0xfc, 0xcb, 0xdc);

  it('decodes by encoding-japanese’s names and aliases, and detects the encoding for AUTO', () => {
    const convert = (data: Buffer, from: string): string =>
      encodingJapanese.convert(data, { to: 'UNICODE', from, type: 'string' });
    expect(convert(jis, 'JIS')).toBe('日本');
    expect(convert(jis, 'ISO-2022-JP')).toBe('日本');
    expect(convert(sjis, 'SJIS')).toBe('日本');
    expect(convert(sjis, 'CP932')).toBe('日本');
    expect(convert(eucjp, 'EUCJP')).toBe('日本');
    for (const data of [jis, sjis, eucjp, Buffer.from('日本')]) expect(convert(data, 'AUTO')).toBe('日本');
    expect(() => encodingJapanese.convert(sjis, { to: 'SJIS', from: 'UNICODE' })).toThrow();
  });

  it('is what imapflow’s Japanese stream decoder uses, and libmime’s EUC-JP and Shift_JIS words', async () => {
    expect(await streamed(new JPDecoder('iso-2022-jp', 1 << 20), [jis.subarray(0, 4), jis.subarray(4)])).toBe('日本');
    expect(await streamed(new JPDecoder('euc-jp', 1 << 20), [eucjp])).toBe('日本');
    expect(libmime.decodeWords(`=?EUC-JP?B?${eucjp.toString('base64')}?=`)).toBe('日本');
    expect(await streamed(libmime.createDecodeStream('iso-2022-jp'), [jis.subarray(0, 5), jis.subarray(5)])).toBe(
      '日本',
    );
  });
});
