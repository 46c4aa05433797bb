import { describe, expect, it } from 'vitest';
import { decodeWbxml, WbxmlDecodeError, type WbxmlDecodeErrorCode } from './decoder.ts';
import { toXml } from './xml.ts';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const HEADER = '03 01 6A 00';

function decodeError(bytes: Uint8Array, limits?: Parameters<typeof decodeWbxml>[1]): WbxmlDecodeError {
  try {
    decodeWbxml(bytes, limits);
  } catch (err) {
    expect(err).toBeInstanceOf(WbxmlDecodeError);
    return err as WbxmlDecodeError;
  }
  throw new Error('expected a decode error');
}

describe('decodeWbxml', () => {
  it('decodes the FolderSync example of MS-ASWBXML', () => {
    const root = decodeWbxml(hex(`${HEADER} 00 07 56 52 03 30 00 01 01`));
    expect(root).toEqual({
      ns: 'FolderHierarchy',
      tag: 'FolderSync',
      children: [{ ns: 'FolderHierarchy', tag: 'SyncKey', children: [], text: '0' }],
    });
  });

  it('decodes the Ping example of the brief', () => {
    const root = decodeWbxml(
      hex(`${HEADER} 00 0D 45 48 03 34 38 30 00 01 49 4A 4B 03 35 00 01 4C 03 45 6D 61 69 6C 00 01 01 01 01`),
    );
    expect(toXml(root, { indent: '', declaration: false })).toBe(
      '<Ping xmlns="Ping"><HeartbeatInterval>480</HeartbeatInterval><Folders><Folder><Id>5</Id><Class>Email</Class></Folder></Folders></Ping>',
    );
  });

  it('keeps the namespace of every element across page switches, redundant ones included', () => {
    // Sync > Collections > Collection > Options > airsyncbase:BodyPreference > Type, then back to AirSync.
    const root = decodeWbxml(hex(`${HEADER} 00 00 45 5C 4F 57 00 11 00 11 45 46 03 32 00 01 01 01 00 00 14 01 01 01`));
    const collection = root.children[0]!.children[0]!;
    expect(collection.children.map((c) => `${c.ns}:${c.tag}`)).toEqual(['AirSync:Options', 'AirSync:MoreAvailable']);
    expect(collection.children[0]!.children[0]!.ns).toBe('AirSyncBase');
  });

  it('joins content split over several tokens; any OPAQUE part makes the content bytes', () => {
    const text = decodeWbxml(hex(`${HEADER} 00 02 54 03 61 62 00 03 63 00 01`));
    expect(text.text).toBe('abc');
    const mixed = decodeWbxml(hex(`${HEADER} 00 02 54 03 61 00 C3 02 FF 00 01`));
    expect(mixed.opaque).toEqual(new Uint8Array([0x61, 0xff, 0x00]));
  });

  it('reads mb_u_int32 lengths of several bytes', () => {
    const data = 'x'.repeat(300);
    const root = decodeWbxml(hex(`${HEADER} 00 15 50 C3 82 2C ${Buffer.from(data).toString('hex')} 01`));
    expect(root.tag).toBe('Mime');
    expect(root.opaque?.length).toBe(300);
  });

  it('accepts a string table it is never asked to use, and other WBXML versions', () => {
    expect(decodeWbxml(hex('03 01 6A 03 61 62 00 00 0D 05')).tag).toBe('Ping');
    expect(decodeWbxml(hex('02 01 6A 00 00 0D 05')).tag).toBe('Ping');
  });

  const cases: [string, string, WbxmlDecodeErrorCode][] = [
    ['header only', HEADER, 'no-root'],
    ['empty input', '', 'truncated'],
    ['truncated header', '03 01', 'truncated'],
    ['unknown WBXML version', '07 01 6A 00 45 01', 'bad-header'],
    ['charset other than UTF-8', '03 01 04 00 45 01', 'bad-header'],
    ['string table past the end', '03 01 6A 7F 00', 'bad-length'],
    ['element never closed', `${HEADER} 00 0D 45 48 03 31 00 01`, 'truncated'],
    ['string without terminator', `${HEADER} 00 0D 45 48 03 31 32`, 'truncated'],
    ['END with nothing open', `${HEADER} 01`, 'unbalanced-end'],
    ['END after the root', `${HEADER} 00 0D 45 01 01`, 'misplaced-content'],
    ['second root', `${HEADER} 00 0D 05 05`, 'misplaced-content'],
    ['string before the root', `${HEADER} 03 61 00 45 01`, 'misplaced-content'],
    ['unknown page', `${HEADER} 00 1A 45 01`, 'unknown-page'],
    ['unknown tag on its page', `${HEADER} 00 0D 7F 01`, 'unknown-tag'],
    ['STR_T reference', `${HEADER} 00 0D 45 83 00 01`, 'string-table'],
    ['ENTITY', `${HEADER} 00 0D 45 02 41 01`, 'unsupported-token'],
    ['LITERAL', `${HEADER} 00 0D 45 04 00 01`, 'unsupported-token'],
    ['PI', `${HEADER} 43`, 'unsupported-token'],
    ['EXT_I_0', `${HEADER} 00 0D 45 40 61 00 01`, 'unsupported-token'],
    ['tag with attributes', `${HEADER} 00 0D C5 01 01`, 'attributes'],
    ['opaque longer than the input', `${HEADER} 00 15 50 C3 8F FF FF FF 7F 01`, 'bad-length'],
    ['mb_u_int32 over 5 bytes', `${HEADER} 00 15 50 C3 81 81 81 81 81 01 01`, 'bad-length'],
    ['mb_u_int32 beyond 2^32-1', `${HEADER} 00 15 50 C3 9F FF FF FF 7F 01`, 'bad-length'],
    ['invalid UTF-8', `${HEADER} 00 0D 45 48 03 C3 28 00 01 01`, 'invalid-utf8'],
  ];
  it.each(cases)('rejects %s', (_name, bytes, code) => {
    const err = decodeError(hex(bytes));
    expect(err.code).toBe(code);
    expect(err.message).toContain(code);
  });

  it('rejects nesting beyond the limit', () => {
    const open = '49 '.repeat(20); // Ping:Folders, nested
    const bytes = hex(`${HEADER} 00 0D 45 ${open} ${'01 '.repeat(21)}`);
    expect(decodeWbxml(bytes, { maxDepth: 30 }).tag).toBe('Ping');
    expect(decodeError(bytes, { maxDepth: 10 }).code).toBe('too-deep');
  });

  it('rejects documents beyond the size limit before reading them', () => {
    const bytes = hex(`${HEADER} 00 15 50 C3 82 2C ${'78'.repeat(300)} 01`);
    const err = decodeError(bytes, { maxBytes: 100 });
    expect(err.code).toBe('too-large');
    expect(err.offset).toBe(0);
  });

  it('stops at the first element over the element budget', () => {
    // Sync holding Collection (empty) n times.
    const sync = (n: number) => hex(`${HEADER} 45 ${'0F '.repeat(n)} 01`);
    expect(decodeWbxml(sync(9), { maxElements: 10 }).children).toHaveLength(9);
    const err = decodeError(sync(10_000), { maxElements: 10 });
    expect(err.code).toBe('too-large');
    expect(err.offset).toBe(4 + 1 + 9); // the eleventh element: nothing after it was read
    expect(err.message).toContain('more than 10 elements');
  });

  it('counts inline strings and opaque data against the content budget before copying them', () => {
    const string = (n: number) => hex(`${HEADER} 45 4B 03 ${'61 '.repeat(n)} 00 01 01`);
    expect(decodeWbxml(string(100), { maxTextBytes: 100 }).children[0]!.text).toBe('a'.repeat(100));
    expect(decodeError(string(101), { maxTextBytes: 100 }).code).toBe('too-large');
    // Two strings of 60 bytes: each within the budget, together over it.
    const twice = hex(`${HEADER} 45 4B 03 ${'61 '.repeat(60)} 00 03 ${'61 '.repeat(60)} 00 01 01`);
    expect(decodeError(twice, { maxTextBytes: 100 }).code).toBe('too-large');
    // OPAQUE (ComposeMail:Mime) of 0x82 0x2C = 300 bytes.
    const opaque = hex(`${HEADER} 00 15 50 C3 82 2C ${'78 '.repeat(300)} 01`);
    expect(decodeWbxml(opaque, { maxTextBytes: 300 }).opaque).toHaveLength(300);
    const err = decodeError(opaque, { maxTextBytes: 299 });
    expect(err.code).toBe('too-large');
    expect(err.message).toContain('299 bytes of content');
  });
});
