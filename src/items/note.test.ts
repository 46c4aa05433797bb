import PostalMime from 'postal-mime';
import { describe, expect, it } from 'vitest';
import { childText, el } from '../wbxml/tree.ts';
import {
  noteApplicationData,
  noteFromApplicationData,
  noteIdentifier,
  noteSourceBytes,
  noteSourceText,
  uuidFromHex,
  withNoteIdentifier,
} from './note.ts';

/** An Apple note with an image (multipart/related, as Notes writes a note with a picture). */
const WITH_IMAGE = [
  'X-Uniform-Type-Identifier: com.apple.mail-note',
  'Content-Type: multipart/related; type="text/html"; boundary="b1"',
  'Date: Mon, 7 Dec 2026 09:00:00 +0000',
  'X-Mail-Created-Date: Sun, 6 Dec 2026 09:00:00 +0000',
  'Subject: Whiteboard',
  'X-Universally-Unique-Identifier:',
  ' 0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0',
  'Mime-Version: 1.0',
  '',
  '--b1',
  'Content-Type: text/html; charset=utf-8',
  '',
  '<html><head></head><body><div>Whiteboard</div><div><img src="cid:pic-1"></div></body></html>',
  '--b1',
  'Content-Type: image/png; name="board.png"',
  'Content-Id: <pic-1>',
  'Content-Transfer-Encoding: base64',
  '',
  'iVBORw0KGgo=',
  '--b1--',
  '',
].join('\r\n');

describe('notes (MS-ASNOTE) ⇄ Apple IMAP notes', () => {
  it('reads the UUID (folded, any case) and replaces or adds it', () => {
    expect(noteIdentifier(WITH_IMAGE)).toBe('0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0');
    expect(noteIdentifier('Subject: x\r\n\r\nX-Universally-Unique-Identifier: not-a-header\r\n')).toBeUndefined();
    const renamed = withNoteIdentifier(WITH_IMAGE, 'AAAA');
    expect(noteIdentifier(renamed)).toBe('AAAA');
    expect(renamed.match(/X-Universally-Unique-Identifier/g)).toHaveLength(1);
    expect(noteIdentifier(withNoteIdentifier('Subject: x\r\n\r\nbody', 'BBBB'))).toBe('BBBB');
    expect(uuidFromHex('00112233445566778899aabbccddeeff')).toBe('00112233-4455-6677-8899-AABBCCDDEEFF');
  });

  it('keeps any bytes of a message through the item text', () => {
    const bytes = new Uint8Array([0x53, 0xe9, 0x00, 0xff, 0x0d, 0x0a]);
    expect(noteSourceBytes(noteSourceText(bytes))).toEqual(bytes);
  });

  it('sends Subject, Body, MessageClass and LastModifiedDate (the Date header)', async () => {
    const data = await noteApplicationData(WITH_IMAGE, { version: '14.1', bodyPreferences: [{ type: 1 }] });
    const app = el('AirSync', 'ApplicationData', data);
    expect(childText(app, 'Subject', 'Notes')).toBe('Whiteboard');
    expect(childText(app, 'MessageClass', 'Notes')).toBe('IPM.StickyNote');
    expect(childText(app, 'LastModifiedDate', 'Notes')).toBe('2026-12-07T09:00:00.000Z');
    expect(data.map((e) => e.tag)).toEqual(['Subject', 'Body', 'MessageClass', 'LastModifiedDate']);
  });

  it('a device Change keeps the UUID, the creation date and the note’s pictures', async () => {
    const changed = await noteFromApplicationData(
      el('AirSync', 'ApplicationData', [
        el('Notes', 'Subject', 'Whiteboard'),
        el('AirSyncBase', 'Body', [
          el('AirSyncBase', 'Type', '2'),
          el('AirSyncBase', 'Data', '<html><head></head><body><div>Whiteboard</div><div>erased</div></body></html>'),
        ]),
        el('Notes', 'Categories', [el('Notes', 'Category', 'Work'), el('Notes', 'Category', 'Ideas')]),
      ]),
      { existing: WITH_IMAGE, now: new Date('2026-12-07T10:00:00Z') },
    );
    const parsed = await PostalMime.parse(noteSourceBytes(changed));
    const header = (name: string) => parsed.headers.find((h) => h.key === name)?.value;
    expect(header('x-uniform-type-identifier')).toBe('com.apple.mail-note');
    expect(noteIdentifier(changed)).toBe('0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0');
    expect(header('x-mail-created-date')).toBe('Sun, 6 Dec 2026 09:00:00 +0000');
    expect(header('keywords')).toBe('Work, Ideas');
    expect(new Date(parsed.date!).toISOString()).toBe('2026-12-07T10:00:00.000Z');
    expect(parsed.html).toContain('<div>erased</div>');
    expect(parsed.attachments.map((a) => [a.mimeType, a.contentId])).toEqual([['image/png', '<pic-1>']]);
  });

  it('a Change without Body or Categories keeps them; a body without the title gets it as first line', async () => {
    const first = await noteFromApplicationData(
      el('AirSync', 'ApplicationData', [
        el('Notes', 'Subject', 'Plan'),
        el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'Data', 'a <b>')]),
        el('Notes', 'Categories', [el('Notes', 'Category', 'Home')]),
      ]),
      { userEmails: ['me@example.test'] },
    );
    const renamed = await noteFromApplicationData(
      el('AirSync', 'ApplicationData', [el('Notes', 'Subject', 'Plan B')]),
      { existing: first },
    );
    const parsed = await PostalMime.parse(noteSourceBytes(renamed));
    expect(parsed.from?.address).toBe('me@example.test');
    expect(parsed.subject).toBe('Plan B');
    expect(parsed.html).toContain('<body><div>Plan B</div><div>Plan</div><div>a &lt;b&gt;</div></body>');
    expect(parsed.headers.find((h) => h.key === 'keywords')?.value).toBe('Home');
    expect(noteIdentifier(renamed)).toBe(noteIdentifier(first));
  });
});
