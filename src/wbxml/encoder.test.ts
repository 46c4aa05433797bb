import { describe, expect, it } from 'vitest';
import { decodeWbxml } from './decoder.ts';
import { encodeWbxml, preEncoded, WbxmlEncodeError } from './encoder.ts';
import { child, el } from './tree.ts';

const hex = (b: Uint8Array): string =>
  Buffer.from(b)
    .toString('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1 ');

describe('encodeWbxml', () => {
  it('writes the canonical header and the FolderSync example byte for byte', () => {
    const doc = el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]);
    expect(hex(encodeWbxml(doc))).toBe('03 01 6A 00 00 07 56 52 03 30 00 01 01');
  });

  it('switches pages only when the namespace changes', () => {
    const doc = el('AirSync', 'Options', [
      el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', 2), el('AirSyncBase', 'TruncationSize', 500)]),
      el('AirSync', 'MIMESupport', 0),
    ]);
    expect(hex(encodeWbxml(doc))).toBe(
      '03 01 6A 00 57 00 11 45 46 03 32 00 01 47 03 35 30 30 00 01 01 00 00 62 03 30 00 01 01',
    );
  });

  it('writes empty elements without content and bytes as OPAQUE with an mb_u_int32 length', () => {
    const mime = new Uint8Array(300).fill(0x41);
    const bytes = encodeWbxml(
      el('ComposeMail', 'SendMail', [el('ComposeMail', 'SaveInSentItems'), el('ComposeMail', 'Mime', mime)]),
    );
    expect(hex(bytes.subarray(0, 12))).toBe('03 01 6A 00 00 15 45 08 50 C3 82 2C');
    expect(decodeWbxml(bytes).children[1]!.opaque).toEqual(mime);
  });

  it('sends a string holding NUL as OPAQUE, since STR_I cannot carry it', () => {
    const bytes = encodeWbxml(el('Email', 'Subject', 'a\0b'));
    expect(decodeWbxml(bytes).opaque).toEqual(new Uint8Array([0x61, 0, 0x62]));
  });

  it('encodes UTF-8 text, including characters outside the BMP', () => {
    const subject = 'Grüße 日本 😀';
    expect(decodeWbxml(encodeWbxml(el('Email', 'Subject', subject))).text).toBe(subject);
  });

  it('refuses a tag its namespace does not have', () => {
    expect(() => encodeWbxml({ ns: 'Ping', tag: 'Nope', children: [] })).toThrow(WbxmlEncodeError);
  });
});

describe('pre-encoded fragments', () => {
  const collection = (key: string, subject: string) =>
    el('AirSync', 'Collection', [
      el('AirSync', 'SyncKey', key),
      el('AirSync', 'CollectionId', '5'),
      el('AirSync', 'Status', 1),
      el('AirSync', 'Commands', [
        el('AirSync', 'Add', [
          el('AirSync', 'ServerId', '5:1'),
          el('AirSync', 'ApplicationData', [el('Email', 'Subject', subject)]),
        ]),
      ]),
    ]);

  it('splices the standalone encoding byte for byte where the tree would have been written', () => {
    const tree = el('AirSync', 'Sync', [el('AirSync', 'Collections', [collection('2', 'Hi')])]);
    const spliced = el('AirSync', 'Sync', [el('AirSync', 'Collections', [preEncoded(collection('2', 'Hi'))])]);
    expect(hex(encodeWbxml(spliced))).toBe(hex(encodeWbxml(tree)));
  });

  it('round-trips through decodeWbxml, switching back to page 0 after a fragment that ended on another page', () => {
    // The first fragment ends on the Email page; the plain Collection after it is on page 0.
    const doc = el('AirSync', 'Sync', [
      el('AirSync', 'Collections', [
        preEncoded(collection('2', 'One')),
        collection('7', 'Two'),
        preEncoded(collection('9', 'Three')),
      ]),
      el('AirSync', 'MoreAvailable'),
    ]);
    const plain = el('AirSync', 'Sync', [
      el('AirSync', 'Collections', [collection('2', 'One'), collection('7', 'Two'), collection('9', 'Three')]),
      el('AirSync', 'MoreAvailable'),
    ]);
    expect(decodeWbxml(encodeWbxml(doc))).toEqual(decodeWbxml(encodeWbxml(plain)));
  });

  it('switches to page 0 before a fragment inside an element of another page', () => {
    // Search:Result is on page 15; the fragment's bytes begin with an AirSync (page 0) token and no SWITCH_PAGE.
    const fragment = preEncoded(el('AirSync', 'CollectionId', '5'));
    expect(hex(fragment.encoded!)).toBe('03 01 6A 00 52 03 35 00 01');
    const doc = el('Search', 'Result', [fragment, el('Search', 'LongId', 'x')]);
    const bytes = encodeWbxml(doc);
    expect(hex(bytes)).toBe(
      hex(encodeWbxml(el('Search', 'Result', [el('AirSync', 'CollectionId', '5'), el('Search', 'LongId', 'x')]))),
    );
    expect(decodeWbxml(bytes)).toEqual({
      ns: 'Search',
      tag: 'Result',
      children: [
        { ns: 'AirSync', tag: 'CollectionId', children: [], text: '5' },
        { ns: 'Search', tag: 'LongId', children: [], text: 'x' },
      ],
    });
  });

  it('takes given bytes as they are (a stored replay), also as the root', () => {
    const stored = encodeWbxml(collection('2', 'Again'));
    const replayed = preEncoded(decodeWbxml(stored), stored);
    expect(encodeWbxml(replayed)).toEqual(stored);
    const response = encodeWbxml(el('AirSync', 'Sync', [el('AirSync', 'Collections', [replayed])]));
    expect(child(child(decodeWbxml(response), 'Collections'), 'Collection')).toEqual(decodeWbxml(stored));
  });

  it('refuses bytes that are not a document encodeWbxml wrote', () => {
    const bad = { ...el('AirSync', 'Collection'), encoded: new Uint8Array([0x52, 0x03, 0x35, 0x00, 0x01]) };
    expect(() => encodeWbxml(el('AirSync', 'Collections', [bad]))).toThrow(WbxmlEncodeError);
  });
});
