import { describe, expect, it } from 'vitest';
import { decodeWbxml } from './decoder.ts';
import { encodeWbxml, WbxmlEncodeError } from './encoder.ts';
import { el } from './tree.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1 ');

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
    const bytes = encodeWbxml(el('ComposeMail', 'SendMail', [el('ComposeMail', 'SaveInSentItems'), el('ComposeMail', 'Mime', mime)]));
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
