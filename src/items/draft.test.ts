import PostalMime from 'postal-mime';
import { describe, expect, it } from 'vitest';
import { el } from '../wbxml/tree.ts';
import { buildDraft, draftAttachmentCount, isDraftEdit, readDraftEdit } from './draft.ts';

const parse = (source: Uint8Array) => PostalMime.parse(source, { attachmentEncoding: 'arraybuffer' });
const text = (content: ArrayBuffer | string | Uint8Array): string => Buffer.from(content as ArrayBuffer).toString();

function attachmentAdd(
  clientId: string,
  name: string,
  content: string,
  extra: { inline?: boolean; contentId?: string; type?: string } = {},
) {
  return el('AirSyncBase', 'Add', [
    el('AirSyncBase', 'ClientId', clientId),
    el('AirSyncBase', 'DisplayName', name),
    el('AirSyncBase', 'Method', '1'),
    extra.type !== undefined && el('AirSyncBase', 'ContentType', extra.type),
    el('AirSyncBase', 'IsInline', extra.inline ? '1' : '0'),
    extra.contentId !== undefined && el('AirSyncBase', 'ContentId', extra.contentId),
    el('AirSyncBase', 'Content', new TextEncoder().encode(content)),
  ]);
}

describe('reading a draft edit', () => {
  it('reads the draft properties; ; separated addresses become a list; flags alone are no draft edit', () => {
    const data = el('AirSync', 'ApplicationData', [
      el('Email', 'To', '"Doe; John" <john@example.test>; jane@example.test'),
      el('Email2', 'Bcc', ''),
      el('Email', 'Subject', 'Hi'),
      el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '2'), el('AirSyncBase', 'Data', '<b>x</b>')]),
      el('Email', 'Importance', '0'),
      el('AirSyncBase', 'Attachments', [
        attachmentAdd('c1', 'a.txt', 'A'),
        el('AirSyncBase', 'Delete', [el('AirSyncBase', 'FileReference', '7:3:1')]),
      ]),
    ]);
    const edit = readDraftEdit(data);
    expect(edit.to).toBe('"Doe; John" <john@example.test>, jane@example.test');
    expect(edit.bcc).toBe('');
    expect(edit.cc).toBeUndefined();
    expect(edit).toMatchObject({
      subject: 'Hi',
      body: { type: 2, data: '<b>x</b>' },
      importance: 0,
      deleted: ['7:3:1'],
    });
    expect(edit.added.map((a) => [a.clientId, a.displayName, text(a.content)])).toEqual([['c1', 'a.txt', 'A']]);
    expect(isDraftEdit(data)).toBe(true);
    expect(isDraftEdit(el('AirSync', 'ApplicationData', [el('Email', 'Read', '1')]))).toBe(false);
  });
});

describe('building a draft', () => {
  it('builds a new draft: From the user, Bcc kept, importance, attachments in order, inline with its Content-ID', async () => {
    const edit = readDraftEdit(
      el('AirSync', 'ApplicationData', [
        el('Email', 'To', 'bob@example.test'),
        el('Email2', 'Bcc', 'secret@example.test'),
        el('Email', 'Subject', 'Plan'),
        el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'Data', 'Hello.')]),
        el('Email', 'Importance', '2'),
        el('AirSyncBase', 'Attachments', [
          attachmentAdd('c1', 'one.txt', 'first'),
          attachmentAdd('c2', 'logo.png', 'PNG', { inline: true, contentId: 'logo@x', type: 'image/png' }),
        ]),
      ]),
    );
    const source = await buildDraft(undefined, edit, {
      from: 'alice@example.test',
      removeParts: new Set(),
      now: new Date('2026-03-03T10:00:00Z'),
    });
    const email = await parse(source);
    expect(email.from?.address).toBe('alice@example.test');
    expect(email.bcc?.[0]?.address).toBe('secret@example.test');
    expect(email.subject).toBe('Plan');
    expect(email.text?.trim()).toBe('Hello.');
    expect(email.headers.find((h) => h.key === 'importance')?.value).toBe('High');
    expect(email.messageId).toMatch(/@example\.test>$/);
    expect(
      email.attachments.map((a) => [a.filename, a.mimeType, a.disposition, a.contentId ?? null, text(a.content)]),
    ).toEqual([
      ['one.txt', 'text/plain', 'attachment', null, 'first'],
      ['logo.png', 'image/png', 'inline', '<logo@x>', 'PNG'],
    ]);
    expect(await draftAttachmentCount(source)).toBe(2);
  });

  it('edits a draft: what the edit names changes, the rest stays; removed attachments go, added ones come last', async () => {
    const first = await buildDraft(
      undefined,
      readDraftEdit(
        el('AirSync', 'ApplicationData', [
          el('Email', 'To', 'Bob <bob@example.test>'),
          el('Email', 'Cc', 'carol@example.test'),
          el('Email', 'Subject', 'v1'),
          el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'Data', 'Old text.')]),
          el('Email', 'Importance', '0'),
          el('AirSyncBase', 'Attachments', [
            attachmentAdd('c1', 'a.txt', 'A'),
            attachmentAdd('c2', 'b.txt', 'B'),
            attachmentAdd('c3', 'c.txt', 'C'),
          ]),
        ]),
      ),
      { from: 'alice@example.test', removeParts: new Set() },
    );
    const edit = readDraftEdit(
      el('AirSync', 'ApplicationData', [
        el('Email', 'Cc', ''),
        el('Email', 'Subject', 'v2'),
        el('AirSyncBase', 'Body', [
          el('AirSyncBase', 'Type', '2'),
          el('AirSyncBase', 'Data', '<p>New <b>text</b>.</p>'),
        ]),
        el('AirSyncBase', 'Attachments', [attachmentAdd('c4', 'd.txt', 'D')]),
      ]),
    );
    const second = await parse(
      await buildDraft(first, edit, { from: 'alice@example.test', removeParts: new Set([0, 2]) }),
    );
    const before = await parse(first);
    expect(second.subject).toBe('v2');
    expect(second.to?.map((a) => [a.name, a.address])).toEqual([['Bob', 'bob@example.test']]);
    expect(second.cc).toBeUndefined();
    expect(second.html).toContain('<p>New <b>text</b>.</p>');
    expect(second.text).toContain('New text.');
    expect(second.headers.find((h) => h.key === 'importance')?.value).toBe('Low');
    expect(second.messageId).toBe(before.messageId);
    expect(second.attachments.map((a) => [a.filename, text(a.content)])).toEqual([
      ['b.txt', 'B'],
      ['d.txt', 'D'],
    ]);
  });
});
