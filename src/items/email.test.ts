import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import PostalMime from 'postal-mime';
import { describe, expect, it } from 'vitest';
import {
  bigAttachmentMessage,
  loadMailFixture,
  MAIL_FIXTURES,
  typicalAlternativeMessage,
  type MailFixture,
} from '../../test/fixtures/mail/generate.ts';
import { comparable, libwbxmlDecode, parseLibwbxmlXml } from '../../test/wbxml/libwbxml.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { child, children, el, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import type { Namespace } from '../wbxml/codepages.ts';
import { htmlToPlainText, truncateUtf8, utf8Length } from './body.ts';
import {
  attachmentContent,
  emailApplicationData,
  emailFlagChange,
  imapFlagUpdate,
  repairC1,
  sha1,
  stripSubjectPrefixes,
  type EmailOutputOptions,
} from './email.ts';

const INTERNAL_DATE = new Date('2024-05-14T07:12:47.123Z');

interface ConvertOptions extends Partial<EmailOutputOptions> {
  flags?: string[];
}

async function convertSource(source: Uint8Array, options: ConvertOptions = {}): Promise<WbxmlElement[]> {
  const { flags = [], ...rest } = options;
  return emailApplicationData(
    { uid: 42, flags: new Set(flags), internalDate: INTERNAL_DATE, size: source.length, source },
    { version: '16.1', bodyPreferences: [], mimeSupport: 0, fileReference: (part) => `5%3a42%3a${part}`, ...rest },
  );
}

const convert = (name: MailFixture, options: ConvertOptions = {}): Promise<WbxmlElement[]> =>
  convertSource(loadMailFixture(name), options);

function find(elements: WbxmlElement[], ns: Namespace, tag: string): WbxmlElement | undefined {
  return elements.find((e) => e.ns === ns && e.tag === tag);
}

function prop(elements: WbxmlElement[], tag: string, ns: Namespace = 'Email'): string | undefined {
  const e = find(elements, ns, tag);
  return e ? textOf(e) : undefined;
}

function body(elements: WbxmlElement[]): {
  type: string;
  size: number;
  truncated: string;
  data?: string;
  dataBytes?: Uint8Array;
  preview?: string;
} {
  const b = find(elements, 'AirSyncBase', 'Body');
  if (!b) throw new Error('no Body');
  const data = child(b, 'Data', 'AirSyncBase');
  const preview = child(b, 'Preview', 'AirSyncBase');
  const result: ReturnType<typeof body> = {
    type: textOf(child(b, 'Type', 'AirSyncBase')),
    size: Number(textOf(child(b, 'EstimatedDataSize', 'AirSyncBase'))),
    truncated: textOf(child(b, 'Truncated', 'AirSyncBase')),
  };
  if (data) {
    result.data = textOf(data);
    result.dataBytes = data.opaque ?? new TextEncoder().encode(data.text ?? '');
  }
  if (preview) result.preview = textOf(preview);
  return result;
}

function attachments(elements: WbxmlElement[]): Record<string, string>[] {
  const list = find(elements, 'AirSyncBase', 'Attachments');
  return children(list, 'Attachment', 'AirSyncBase').map((a) =>
    Object.fromEntries(a.children.map((c) => [c.tag, textOf(c)])),
  );
}

const tagsOf = (elements: WbxmlElement[]): string[] => elements.map((e) => `${e.ns}:${e.tag}`);

describe('headers', () => {
  it('formats addresses, the display list, the thread topic and the received date', async () => {
    const app = await convert('alternative.eml');
    expect(prop(app, 'To')).toBe(
      '"Bob Builder" <bob@example.org>, carol@example.net, "Jürgen Müller" <juergen@example.de>',
    );
    expect(prop(app, 'Cc')).toBe('"Dave, Ops" <dave@example.com>');
    expect(prop(app, 'From')).toBe('"Alice Example" <alice@example.com>');
    expect(prop(app, 'ReplyTo')).toBe('"Budget Team" <team@example.com>');
    expect(prop(app, 'Subject')).toBe('Re: Q3 budget review');
    expect(prop(app, 'DisplayTo')).toBe('Bob Builder; carol@example.net; Jürgen Müller');
    expect(prop(app, 'ThreadTopic')).toBe('Q3 budget review');
    expect(prop(app, 'DateReceived')).toBe('2024-05-14T07:12:47.123Z');
    expect(prop(app, 'Importance')).toBe('2'); // Importance: high
  });

  it('escapes quotes in display names and strips reply/forward prefixes for the thread topic', async () => {
    const app = await convert('plain-utf8.eml');
    expect(prop(app, 'To')).toBe('bob@example.org, "Zoe \\"Z\\" Smith" <zoe@example.co.uk>');
    expect(prop(app, 'From')).toBe('dave@example.com');
    expect(prop(app, 'ThreadTopic')).toBe('Lunch?');
    expect(prop(app, 'Importance')).toBe('1');
    expect(find(app, 'Email', 'Cc')).toBeUndefined();
    expect(find(app, 'Email', 'ReplyTo')).toBeUndefined();
  });

  it('reads importance from X-Priority', async () => {
    expect(prop(await convert('pdf-attachment.eml'), 'Importance')).toBe('0'); // X-Priority: 5 (Lowest)
    expect(prop(await convert('iso-2022-jp.eml'), 'Importance')).toBe('2'); // X-Priority: 1
  });

  it.each([
    ['Re: Fwd: RE: AW: WG: Status', 'Status'],
    ['Re[2]: budget', 'budget'],
    ['SV: Møte', 'Møte'],
    ['回复：会议', '会议'],
    ['Report: Q3', 'Report: Q3'],
    ['Regarding: x', 'Regarding: x'],
  ])('thread topic of %j is %j', (subject, topic) => {
    expect(stripSubjectPrefixes(subject)).toBe(topic);
  });

  it('sends the elements in Exchange order', async () => {
    const app = await convert('alternative.eml', {
      flags: ['\\Seen', '\\Flagged', '\\Answered', 'Work'],
      bodyPreferences: [{ type: 2, truncationSize: 1000, preview: 100 }],
      bodyPartPreferences: [{ type: 2 }],
    });
    expect(tagsOf(app)).toEqual([
      'Email:To',
      'Email:Cc',
      'Email:From',
      'Email:Subject',
      'Email:ReplyTo',
      'Email:DateReceived',
      'Email:DisplayTo',
      'Email:ThreadTopic',
      'Email:Importance',
      'Email:Read',
      'AirSyncBase:Body',
      'AirSyncBase:BodyPart',
      'Email:MessageClass',
      'Email:InternetCPID',
      'Email:Flag',
      'Email:ContentClass',
      'AirSyncBase:NativeBodyType',
      'Email2:ConversationId',
      'Email2:ConversationIndex',
      'Email2:LastVerbExecuted',
      'Email:Categories',
    ]);
    const withAttachment = tagsOf(await convert('pdf-attachment.eml'));
    expect(withAttachment.indexOf('AirSyncBase:Attachments')).toBe(withAttachment.indexOf('Email:Read') + 1);
    expect(prop(app, 'InternetCPID')).toBe('65001');
  });
});

describe('charsets', () => {
  const plain = { bodyPreferences: [{ type: 1 }] };

  it('decodes an ISO-8859-1 quoted-printable body and encoded-word headers', async () => {
    const app = await convert('latin1-qp.eml', plain);
    expect(prop(app, 'Subject')).toBe('Grüße aus Köln');
    expect(prop(app, 'From')).toBe('"Klaus Weiß" <klaus.weiss@example.de>');
    expect(body(app).data).toContain('Sehr geehrte Frau Müller,');
    expect(body(app).data).toContain('Ça va ? ¿Qué tal, señor Peña? Ærø, Øresund, Åland.');
    expect(body(app).data).toContain('Mit freundlichen Grüßen\nKlaus Weiß');
  });

  it('decodes Windows-1252 (curly quotes, euro sign, dashes) in headers and in an HTML body', async () => {
    const app = await convert('windows-1252.eml', { bodyPreferences: [{ type: 2 }] });
    expect(prop(app, 'Subject')).toBe('“Quarterly report” – final');
    expect(prop(app, 'From')).toBe('"Zoë Smith" <zoe@example.co.uk>');
    const html = body(app).data!;
    expect(html).toContain('<p>“Quarterly report” – total: €1,250 … see you Monday.</p>');
    // We send UTF-8, so the declared charset must say so.
    expect(html).toContain('content="text/html; charset=utf-8"');
    expect(html).not.toMatch(/[\u0080-\u009f]/);
  });

  it('maps C1 controls as windows-1252 would, whatever the runtime TextDecoder does', () => {
    expect(repairC1('\u0093x\u0094 \u0080 \u0096 \u0081')).toBe('“x” € – \u0081');
    expect(repairC1('plain')).toBe('plain');
  });

  it('decodes a Shift_JIS 8-bit body and encoded-word headers', async () => {
    const app = await convert('shift-jis.eml', plain);
    expect(prop(app, 'Subject')).toBe('打ち合わせの日程について');
    expect(prop(app, 'From')).toBe('"佐藤 花子" <sato@example.jp>');
    expect(prop(app, 'To')).toBe('"山田 太郎" <yamada@example.jp>');
    expect(body(app).data).toBe(
      '山田様\n\nお世話になっております。\n来週の打ち合わせの件、木曜日の午後二時でいかがでしょうか。\n資料は事前にお送りいたします。\n\nよろしくお願いいたします。\n佐藤\n',
    );
  });

  it('decodes an ISO-2022-JP subject split over two encoded words, and the body', async () => {
    const app = await convert('iso-2022-jp.eml', plain);
    expect(prop(app, 'Subject')).toBe('【重要】システムメンテナンスのお知らせ');
    expect(prop(app, 'From')).toBe('"情報システム部" <it-admin@example.jp>');
    expect(body(app).data).toContain('下記の日程でシステムメンテナンスを実施いたします。');
    expect(body(app).data).toContain('日時：５月２５日（土）２２時');
  });
});

describe('body selection', () => {
  it('sends the whole plain text when the client states no preference', async () => {
    const b = body(await convert('alternative.eml'));
    expect(b.type).toBe('1');
    expect(b.truncated).toBe('0');
    expect(b.data).toContain('Jürgen asked whether we can move the review to Thursday — does 14:00 work?');
    expect(b.size).toBe(utf8Length(b.data!));
  });

  it('prefers HTML when listed and present, plain text when the message has no HTML', async () => {
    const both = [{ type: 1 }, { type: 2 }];
    expect(body(await convert('alternative.eml', { bodyPreferences: both })).type).toBe('2');
    expect(body(await convert('pdf-attachment.eml', { bodyPreferences: both })).type).toBe('1');
  });

  it('wraps plain text as HTML when only HTML was asked for', async () => {
    const b = body(await convert('ndr.eml', { bodyPreferences: [{ type: 2 }] }));
    expect(b.type).toBe('2');
    expect(b.data).toMatch(/^<html>.*<meta charset="utf-8">/);
    expect(b.data).toContain('&lt;nobody@example.invalid&gt;: host mx.example.invalid');
  });

  it('reduces HTML to text when only plain text was asked for', async () => {
    const b = body(await convert('windows-1252.eml', { bodyPreferences: [{ type: 1 }] }));
    expect(b.type).toBe('1');
    expect(b.data).toBe('“Quarterly report” – total: €1,250 … see you Monday.\n\nRegards, Zoë');
  });

  it('never sends RTF', async () => {
    const b = body(await convert('alternative.eml', { bodyPreferences: [{ type: 3, truncationSize: 100 }] }));
    expect(b.type).toBe('1');
    expect(b.truncated).toBe('1');
  });

  it('sends MIME per MIMESupport: 0 never, 1 only S/MIME, 2 always', async () => {
    const mimeThenHtml = [{ type: 4 }, { type: 2 }];
    const types = async (name: MailFixture, mimeSupport: 0 | 1 | 2): Promise<string> =>
      body(await convert(name, { bodyPreferences: mimeThenHtml, mimeSupport })).type;
    expect(await types('alternative.eml', 0)).toBe('2');
    expect(await types('smime-signed.eml', 0)).toBe('2');
    expect(await types('alternative.eml', 1)).toBe('2');
    expect(await types('smime-signed.eml', 1)).toBe('4');
    expect(await types('smime-encrypted.eml', 1)).toBe('4');
    expect(await types('alternative.eml', 2)).toBe('4');
    // MIME alone, but not allowed: plain text.
    expect(body(await convert('alternative.eml', { bodyPreferences: [{ type: 4 }], mimeSupport: 0 })).type).toBe('1');
  });

  it('sends the raw message as MIME data, truncated to TruncationSize', async () => {
    const source = loadMailFixture('smime-signed.eml');
    const full = body(await convert('smime-signed.eml', { bodyPreferences: [{ type: 4 }], mimeSupport: 2 }));
    expect(full).toMatchObject({ type: '4', size: source.length, truncated: '0' });
    expect(Buffer.from(full.dataBytes!).equals(Buffer.from(source))).toBe(true);
    const cut = body(
      await convert('smime-signed.eml', { bodyPreferences: [{ type: 4, truncationSize: 500 }], mimeSupport: 2 }),
    );
    expect(cut).toMatchObject({ type: '4', size: source.length, truncated: '1' });
    expect(Buffer.from(cut.dataBytes!).equals(Buffer.from(source.subarray(0, 500)))).toBe(true);
  });

  it('sends raw 8-bit MIME that is not UTF-8 as OPAQUE bytes, unchanged', async () => {
    const source = loadMailFixture('shift-jis.eml');
    const app = await convert('shift-jis.eml', { bodyPreferences: [{ type: 4 }], mimeSupport: 2 });
    const data = child(find(app, 'AirSyncBase', 'Body'), 'Data', 'AirSyncBase')!;
    expect(data.opaque).toBeDefined();
    expect(Buffer.from(data.opaque!).equals(Buffer.from(source))).toBe(true);
  });

  it('reports the native body type (12.1+)', async () => {
    expect(prop(await convert('alternative.eml'), 'NativeBodyType', 'AirSyncBase')).toBe('2');
    expect(prop(await convert('plain-utf8.eml'), 'NativeBodyType', 'AirSyncBase')).toBe('1');
    expect(
      find(await convert('alternative.eml', { version: '12.0' }), 'AirSyncBase', 'NativeBodyType'),
    ).toBeUndefined();
  });

  it('reduces HTML to readable text', () => {
    const html =
      '<html><head><title>T</title><style>p{color:red}</style></head><body><!-- x --><h1>Title</h1>' +
      '<p>One &amp; two&nbsp;three &#8364;5 &#x263A;</p><ul><li>a</li><li>b</li></ul>' +
      '<table><tr><td>x</td><td>y</td></tr></table>line<br>break<script>alert(1)</script></body></html>';
    expect(htmlToPlainText(html)).toBe('Title\n\nOne & two three €5 ☺\n\n• a\n• b\n\nx\ty\n\nline\nbreak');
    expect(htmlToPlainText('<div>one</div><div>two</div><div><br></div><div>three</div>')).toBe('one\ntwo\nthree');
  });
});

describe('truncation', () => {
  const source = loadMailFixture('plain-utf8.eml');
  const fullText = 'Grüße! 😀 Lunch at the 寿司 place? ✓ Ünïcödé everywhere.\n\n-- \nDave\n';

  it('cuts plain text at a UTF-8 character boundary for every TruncationSize', async () => {
    const fullSize = utf8Length(fullText);
    for (let limit = 0; limit <= fullSize + 1; limit++) {
      const b = body(await convertSource(source, { bodyPreferences: [{ type: 1, truncationSize: limit }] }));
      expect(b.size).toBe(fullSize);
      if (limit >= fullSize) {
        expect(b).toMatchObject({ truncated: '0', data: fullText });
        continue;
      }
      expect(b.truncated).toBe('1');
      const data = b.data ?? '';
      if (limit === 0) expect(b.data).toBeUndefined();
      expect(fullText.startsWith(data)).toBe(true);
      expect(utf8Length(data)).toBeLessThanOrEqual(limit);
      // The next character would not have fitted: the cut is as late as possible.
      const next = Array.from(fullText.slice(data.length))[0]!;
      expect(utf8Length(data + next)).toBeGreaterThan(limit);
      expect(data).not.toContain('\ufffd');
    }
  });

  it('truncates HTML by bytes as well', async () => {
    const b = body(await convert('alternative.eml', { bodyPreferences: [{ type: 2, truncationSize: 300 }] }));
    expect(b.truncated).toBe('1');
    expect(b.dataBytes!.length).toBeLessThanOrEqual(300);
    expect(b.size).toBeGreaterThan(300);
  });

  it('sends no data at all under AllOrNone when the body is larger, and all of it when it fits', async () => {
    const fullSize = utf8Length(fullText);
    const tooSmall = body(
      await convertSource(source, { bodyPreferences: [{ type: 1, truncationSize: fullSize - 1, allOrNone: true }] }),
    );
    expect(tooSmall).toEqual({ type: '1', size: fullSize, truncated: '1' });
    const fits = body(
      await convertSource(source, { bodyPreferences: [{ type: 1, truncationSize: fullSize, allOrNone: true }] }),
    );
    expect(fits).toMatchObject({ truncated: '0', data: fullText });
  });

  it('truncateUtf8 never splits a surrogate pair or a multibyte character (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), fc.nat(200), (text, limit) => {
        const cut = truncateUtf8(text, limit);
        expect(text.startsWith(cut)).toBe(true);
        expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(limit);
        expect(Buffer.from(cut, 'utf8').toString('utf8')).toBe(cut);
        expect(utf8Length(text)).toBe(Buffer.byteLength(text));
      }),
    );
  });
});

describe('preview', () => {
  it('adds a whitespace-collapsed plain-text Preview of at most the requested characters (14.0+)', async () => {
    const b = body(
      await convert('alternative.eml', { bodyPreferences: [{ type: 2, truncationSize: 200, preview: 40 }] }),
    );
    expect(b.preview).toBe("Hi Bob, thanks for the numbers. I've gon");
  });

  it('caps the Preview at 255 characters', async () => {
    const b = body(await convertSource(typicalAlternativeMessage(), { bodyPreferences: [{ type: 2, preview: 1000 }] }));
    expect(Array.from(b.preview!).length).toBe(255);
  });

  it('takes the preview of an HTML-only message from its text', async () => {
    const b = body(await convert('windows-1252.eml', { bodyPreferences: [{ type: 2, preview: 255 }] }));
    expect(b.preview).toBe('“Quarterly report” – total: €1,250 … see you Monday. Regards, Zoë');
  });

  it('is left out before 14.0 and when not requested', async () => {
    expect(
      body(await convert('alternative.eml', { version: '12.1', bodyPreferences: [{ type: 2, preview: 40 }] })).preview,
    ).toBeUndefined();
    expect(body(await convert('alternative.eml', { bodyPreferences: [{ type: 2 }] })).preview).toBeUndefined();
  });
});

describe('BodyPart (14.1)', () => {
  it('carries the HTML body under the BodyPartPreference', async () => {
    const app = await convert('alternative.eml', {
      bodyPreferences: [{ type: 1 }],
      bodyPartPreferences: [{ type: 2, truncationSize: 100, preview: 20 }],
    });
    const part = find(app, 'AirSyncBase', 'BodyPart')!;
    expect(part.children.map((c) => c.tag)).toEqual([
      'Status',
      'Type',
      'EstimatedDataSize',
      'Truncated',
      'Data',
      'Preview',
    ]);
    expect(textOf(child(part, 'Status', 'AirSyncBase'))).toBe('1');
    expect(textOf(child(part, 'Type', 'AirSyncBase'))).toBe('2');
    expect(textOf(child(part, 'Truncated', 'AirSyncBase'))).toBe('1');
    expect(utf8Length(textOf(child(part, 'Data', 'AirSyncBase')))).toBeLessThanOrEqual(100);
  });

  it('answers Status 176 when AllOrNone hides it, and is absent before 14.1', async () => {
    const app = await convert('alternative.eml', {
      bodyPartPreferences: [{ type: 2, truncationSize: 10, allOrNone: true }],
    });
    expect(textOf(child(find(app, 'AirSyncBase', 'BodyPart'), 'Status', 'AirSyncBase'))).toBe('176');
    expect(
      find(
        await convert('alternative.eml', { version: '14.0', bodyPartPreferences: [{ type: 2 }] }),
        'AirSyncBase',
        'BodyPart',
      ),
    ).toBeUndefined();
  });
});

describe('attachments', () => {
  it('lists a PDF with its RFC 2231 name, decoded size and file reference', async () => {
    const app = await convert('pdf-attachment.eml');
    const [pdf, ...rest] = attachments(app);
    expect(rest).toEqual([]);
    const content = await attachmentContent(loadMailFixture('pdf-attachment.eml'), '0');
    expect(pdf).toEqual({
      DisplayName: 'Q3 Budget Übersicht.pdf',
      FileReference: '5%3a42%3a0',
      Method: '1',
      EstimatedDataSize: String(content!.content.length),
      IsInline: '0',
    });
    expect(content!.contentType).toBe('application/pdf');
    expect(content!.fileName).toBe('Q3 Budget Übersicht.pdf');
    expect(Buffer.from(content!.content).subarray(0, 8).toString('latin1')).toBe('%PDF-1.4');
  });

  it('marks an image referenced by cid: as inline, with its Content-ID without brackets', async () => {
    const [logo] = attachments(await convert('html-inline-image.eml'));
    expect(logo).toMatchObject({
      DisplayName: 'logo.png',
      ContentId: 'logo.7731@shop.example',
      IsInline: '1',
      Method: '1',
    });
    const png = await attachmentContent(loadMailFixture('html-inline-image.eml'), '0');
    expect(png!.contentType).toBe('image/png');
    expect(Buffer.from(png!.content).subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(Number(logo!.EstimatedDataSize)).toBe(png!.content.length);
  });

  it('lists a forwarded message as an embedded message named after its subject, .eml', async () => {
    const [forwarded] = attachments(await convert('forwarded-rfc822.eml'));
    expect(forwarded).toMatchObject({ DisplayName: 'Parking garage closed next week.eml', Method: '5' });
    const content = await attachmentContent(loadMailFixture('forwarded-rfc822.eml'), '0');
    expect(content!.contentType).toBe('message/rfc822');
    expect(Buffer.from(content!.content).toString('utf8')).toContain('Subject: Parking garage closed next week');
    // The embedded message stays out of the body.
    expect(body(await convert('forwarded-rfc822.eml', { bodyPreferences: [{ type: 1 }] })).data).toBe(
      'FYI, see the forwarded notice.\n\nCarol\n\n',
    );
  });

  it('shows an invitation once, even when it is both a body part and an attached file', async () => {
    expect(attachments(await convert('meeting-request.eml')).map((a) => [a.DisplayName, a.FileReference])).toEqual([
      ['invite.ics', '5%3a42%3a1'],
    ]);
    // The hidden body part can still be fetched by its id.
    const calendarPart = await attachmentContent(loadMailFixture('meeting-request.eml'), '0');
    expect(calendarPart!.contentType).toBe('text/calendar');
    expect(attachments(await convert('meeting-cancel.eml')).map((a) => a.DisplayName)).toEqual(['invite.ics']);
  });

  it('names the parts of an NDR and of S/MIME messages', async () => {
    expect(attachments(await convert('ndr.eml')).map((a) => [a.DisplayName, a.Method])).toEqual([
      ['details.txt', '1'],
      ['Lunch on Friday_.eml', '5'],
    ]);
    expect(attachments(await convert('smime-signed.eml')).map((a) => a.DisplayName)).toEqual(['smime.p7s']);
    expect(attachments(await convert('smime-encrypted.eml')).map((a) => a.DisplayName)).toEqual(['smime.p7m']);
  });

  it('answers undefined for a part that does not exist', async () => {
    const source = loadMailFixture('pdf-attachment.eml');
    expect(await attachmentContent(source, '1')).toBeUndefined();
    expect(await attachmentContent(source, 'x')).toBeUndefined();
    expect(await attachmentContent(source, '-1')).toBeUndefined();
    expect(find(await convert('plain-utf8.eml'), 'AirSyncBase', 'Attachments')).toBeUndefined();
  });
});

describe('message class', () => {
  it.each<[MailFixture, string, string]>([
    ['alternative.eml', 'IPM.Note', 'urn:content-classes:message'],
    ['smime-signed.eml', 'IPM.Note.SMIME.MultipartSigned', 'urn:content-classes:message'],
    ['smime-encrypted.eml', 'IPM.Note.SMIME', 'urn:content-classes:message'],
    ['meeting-request.eml', 'IPM.Schedule.Meeting.Request', 'urn:content-classes:calendarmessage'],
    ['meeting-cancel.eml', 'IPM.Schedule.Meeting.Canceled', 'urn:content-classes:calendarmessage'],
    ['meeting-reply-accepted.eml', 'IPM.Schedule.Meeting.Resp.Pos', 'urn:content-classes:calendarmessage'],
    ['ndr.eml', 'REPORT.IPM.Note.NDR', 'urn:content-classes:message'],
    ['forwarded-rfc822.eml', 'IPM.Note', 'urn:content-classes:message'],
  ])('%s is %s', async (name, messageClass, contentClass) => {
    const app = await convert(name);
    expect(prop(app, 'MessageClass')).toBe(messageClass);
    expect(prop(app, 'ContentClass')).toBe(contentClass);
  });

  it.each([
    ['TENTATIVE', 'IPM.Schedule.Meeting.Resp.Tent'],
    ['DECLINED', 'IPM.Schedule.Meeting.Resp.Neg'],
  ])('a reply with PARTSTAT=%s is %s', async (partstat, messageClass) => {
    const source = Buffer.from(loadMailFixture('meeting-reply-accepted.eml'))
      .toString('latin1')
      .replace('PARTSTAT=ACCEPTED', `PARTSTAT=${partstat}`);
    expect(prop(await convertSource(new Uint8Array(Buffer.from(source, 'latin1'))), 'MessageClass')).toBe(messageClass);
  });

  it('tells a successful delivery report from an NDR', async () => {
    const source = Buffer.from(loadMailFixture('ndr.eml'))
      .toString('latin1')
      .replace('Action: failed', 'Action: delivered');
    expect(prop(await convertSource(new Uint8Array(Buffer.from(source, 'latin1'))), 'MessageClass')).toBe(
      'REPORT.IPM.Note.DR',
    );
  });
});

describe('flags', () => {
  it('maps \\Seen, \\Flagged, \\Answered and keywords to Read, Flag, LastVerbExecuted and Categories', async () => {
    const app = await convert('plain-utf8.eml', {
      flags: ['\\Seen', '\\Flagged', '\\Answered', '$Forwarded', 'Work', '$label1', 'NonJunk', 'To&ACA-Do'],
    });
    expect(prop(app, 'Read')).toBe('1');
    const flag = find(app, 'Email', 'Flag')!;
    expect(flag.children.map((c) => [c.tag, textOf(c)])).toEqual([
      ['Status', '2'],
      ['FlagType', 'Flag for follow up'],
    ]);
    expect(prop(app, 'LastVerbExecuted', 'Email2')).toBe('1');
    expect(children(find(app, 'Email', 'Categories'), 'Category', 'Email').map(textOf)).toEqual(['To Do', 'Work']);
  });

  it('sends an empty Flag and empty Categories for a plain unread message, and no LastVerbExecuted', async () => {
    const app = await convert('plain-utf8.eml');
    expect(prop(app, 'Read')).toBe('0');
    expect(find(app, 'Email', 'Flag')).toEqual({ ns: 'Email', tag: 'Flag', children: [] });
    expect(find(app, 'Email', 'Categories')).toEqual({ ns: 'Email', tag: 'Categories', children: [] });
    expect(find(app, 'Email2', 'LastVerbExecuted')).toBeUndefined();
  });

  it('maps $Forwarded alone to LastVerbExecuted 3', async () => {
    expect(prop(await convert('plain-utf8.eml', { flags: ['$Forwarded'] }), 'LastVerbExecuted', 'Email2')).toBe('3');
  });

  it('builds flags-only changes per version', () => {
    const flags = new Set(['\\Seen', '\\Flagged', '$Forwarded', 'Urgent']);
    expect(tagsOf(emailFlagChange(flags, '14.1'))).toEqual([
      'Email:Read',
      'Email:Flag',
      'Email2:LastVerbExecuted',
      'Email:Categories',
    ]);
    expect(tagsOf(emailFlagChange(flags, '12.1'))).toEqual(['Email:Read', 'Email:Flag']);
    expect(tagsOf(emailFlagChange(new Set(), '16.1'))).toEqual(['Email:Read', 'Email:Flag', 'Email:Categories']);
    expect(textOf(emailFlagChange(new Set(['\\seen']), '16.1')[0])).toBe('1'); // flags compare case-insensitively
  });

  it('turns a device Change into IMAP flag updates', () => {
    const change = (...items: WbxmlElement[]): WbxmlElement => el('AirSync', 'ApplicationData', items);
    const current = new Set(['\\Seen', 'Work', '$label1', 'Old']);
    expect(imapFlagUpdate(change(el('Email', 'Read', '0')), current)).toEqual({ add: [], remove: ['\\Seen'] });
    expect(imapFlagUpdate(change(el('Email', 'Read', '1')), current)).toEqual({ add: [], remove: [] });
    expect(imapFlagUpdate(change(el('Email', 'Read', '1')), new Set())).toEqual({ add: ['\\Seen'], remove: [] });
    const flagged = el('Email', 'Flag', [el('Email', 'Status', '2'), el('Email', 'FlagType', 'Flag for follow up')]);
    expect(imapFlagUpdate(change(flagged), current)).toEqual({ add: ['\\Flagged'], remove: [] });
    const complete = el('Email', 'Flag', [
      el('Email', 'Status', '1'),
      el('Email', 'CompleteTime', '2024-05-14T10:00:00.000Z'),
    ]);
    expect(imapFlagUpdate(change(complete), new Set(['\\Flagged']))).toEqual({ add: [], remove: ['\\Flagged'] });
    expect(imapFlagUpdate(change(el('Email', 'Flag')), new Set(['\\Flagged']))).toEqual({
      add: [],
      remove: ['\\Flagged'],
    });
    const categories = el('Email', 'Categories', [
      el('Email', 'Category', 'Work'),
      el('Email', 'Category', 'To Do'),
      el('Email', 'Category', 'Büro'),
    ]);
    expect(imapFlagUpdate(change(categories), current)).toEqual({ add: ['To&ACA-Do', 'B&APw-ro'], remove: ['Old'] });
    expect(imapFlagUpdate(change(el('Email', 'Categories')), current)).toEqual({ add: [], remove: ['Work', 'Old'] });
    // Unknown elements (16.0 draft fields, other pages) are ignored; $ keywords are never touched.
    expect(imapFlagUpdate(change(el('Email', 'Subject', 'x'), el('Email2', 'IsDraft', '1')), current)).toEqual({
      add: [],
      remove: [],
    });
  });
});

describe('conversations', () => {
  it('gives a reply the same ConversationId as its thread root, and another thread another one', async () => {
    const root = await convert('pdf-attachment.eml');
    const reply = await convert('alternative.eml');
    const other = await convert('plain-utf8.eml');
    const id = (app: WbxmlElement[]): string =>
      Buffer.from(find(app, 'Email2', 'ConversationId')!.opaque!).toString('hex');
    expect(id(root)).toHaveLength(32);
    expect(id(reply)).toBe(id(root));
    expect(id(other)).not.toBe(id(root));
    expect(id(root)).toBe(createHash('sha1').update('id:budget-2024@example.com').digest('hex').slice(0, 32));
  });

  it('writes a 22-byte ConversationIndex: 0x01, the FILETIME of the Date, the conversation GUID', async () => {
    const app = await convert('alternative.eml');
    const index = find(app, 'Email2', 'ConversationIndex')!.opaque!;
    expect(index.length).toBe(22);
    expect(index[0]).toBe(1);
    const fileTime = (BigInt(Date.parse('2024-05-14T07:12:45Z')) + 11644473600000n) * 10000n;
    expect(Buffer.from(index.subarray(1, 6)).toString('hex')).toBe(
      fileTime.toString(16).padStart(16, '0').slice(0, 10),
    );
    expect(Buffer.from(index.subarray(6)).equals(Buffer.from(find(app, 'Email2', 'ConversationId')!.opaque!))).toBe(
      true,
    );
  });

  it('has a synchronous SHA-1 that matches node:crypto', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(Buffer.from(sha1(bytes)).toString('hex')).toBe(createHash('sha1').update(bytes).digest('hex'));
      }),
    );
  });
});

describe('versions', () => {
  it('leaves out what 12.x lacks: Email2, Categories, Preview, NativeBodyType (12.0)', async () => {
    const options = {
      flags: ['\\Answered', 'Work'],
      bodyPreferences: [{ type: 2, preview: 100 }],
      bodyPartPreferences: [{ type: 2 }],
    };
    const v120 = tagsOf(await convert('alternative.eml', { ...options, version: '12.0' }));
    expect(
      v120.filter(
        (t) =>
          t.startsWith('Email2:') ||
          t === 'Email:Categories' ||
          t === 'AirSyncBase:NativeBodyType' ||
          t === 'AirSyncBase:BodyPart',
      ),
    ).toEqual([]);
    const v140 = tagsOf(await convert('alternative.eml', { ...options, version: '14.0' }));
    expect(v140).toContain('Email2:ConversationId');
    expect(v140).toContain('Email:Categories');
    expect(v140).not.toContain('AirSyncBase:BodyPart');
  });
});

describe('every fixture', () => {
  it('is listed in MAIL_FIXTURES', () => {
    const dir = join(import.meta.dirname, '../../test/fixtures/mail');
    expect(
      readdirSync(dir)
        .filter((f) => f.endsWith('.eml'))
        .sort(),
    ).toEqual([...MAIL_FIXTURES].sort());
  });

  it.each(MAIL_FIXTURES)('%s converts, with the properties every client needs', async (name) => {
    const app = await convert(name, { bodyPreferences: [{ type: 2, truncationSize: 5120, preview: 255 }] });
    for (const tag of ['DateReceived', 'Importance', 'Read', 'MessageClass', 'InternetCPID', 'Flag', 'ContentClass'])
      expect(prop(app, tag), tag).toBeDefined();
    expect(find(app, 'AirSyncBase', 'Body')).toBeDefined();
    // Nothing a WBXML string cannot carry (STR_I is NUL-terminated).
    const strings = (e: WbxmlElement): string[] => [e.text ?? '', ...e.children.flatMap(strings)];
    expect(app.flatMap(strings).join('')).not.toContain('\0');
  });

  it('parses the same with postal-mime as with our attachment numbering (ids are stable)', async () => {
    for (const name of MAIL_FIXTURES) {
      const parsed = await PostalMime.parse(loadMailFixture(name), { forceRfc822Attachments: true });
      for (let i = 0; i < parsed.attachments.length; i++) {
        const content = await attachmentContent(loadMailFixture(name), String(i));
        expect(content?.contentType, `${name} part ${i}`).toBe(parsed.attachments[i]!.mimeType);
      }
    }
  });
});

describe('damaged input', () => {
  it.each([
    ['an empty message', new Uint8Array(0)],
    ['random bytes', Uint8Array.from({ length: 300 }, (_, i) => (i * 7919) & 255)],
    [
      'a broken encoded word and a broken base64 part',
      new TextEncoder().encode(
        'Subject: =?utf-8?B?broken\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n',
      ),
    ],
  ])('still converts %s, with an invalid internal date', async (_, source) => {
    const app = await emailApplicationData(
      { uid: 1, flags: new Set(), internalDate: new Date(Number.NaN), size: source.length, source },
      {
        version: '16.1',
        bodyPreferences: [{ type: 2, truncationSize: 100, preview: 50 }],
        mimeSupport: 0,
        fileReference: (p) => p,
      },
    );
    expect(prop(app, 'DateReceived')).toBe('1970-01-01T00:00:00.000Z');
    expect(prop(app, 'MessageClass')).toBe('IPM.Note');
    expect(find(app, 'Email2', 'ConversationIndex')!.opaque!.length).toBe(22);
    expect(() => encodeWbxml(el('AirSync', 'ApplicationData', app))).not.toThrow();
  });
});

describe('a 20 MB attachment', () => {
  it('converts with a 5 KB HTML truncation and reports the attachment size', async () => {
    const size = 20 * 1024 * 1024;
    const source = bigAttachmentMessage(size);
    const app = await convertSource(source, { bodyPreferences: [{ type: 2, truncationSize: 5 * 1024 }] });
    const [attachment] = attachments(app);
    expect(attachment).toMatchObject({
      DisplayName: 'measurements-full-run.bin',
      EstimatedDataSize: String(size),
      Method: '1',
    });
    const b = body(app);
    expect(b).toMatchObject({ type: '2', truncated: '1' });
    expect(b.dataBytes!.length).toBeLessThanOrEqual(5 * 1024);
    expect(b.size).toBeGreaterThan(15 * 1024);
  });
});

function withoutTrailingSpace(node: ReturnType<typeof comparable>): ReturnType<typeof comparable> {
  return { ...node, value: node.value.replace(/\s+$/, ''), children: node.children.map(withoutTrailingSpace) };
}

describe('WBXML validity', () => {
  it.each<MailFixture>(['alternative.eml', 'html-inline-image.eml', 'meeting-request.eml', 'iso-2022-jp.eml'])(
    '%s inside a Sync Add decodes with libwbxml to the same tree',
    async (name) => {
      const app = await convert(name, {
        flags: ['\\Seen', '\\Flagged', '\\Answered', 'Work'],
        bodyPreferences: [{ type: 2, truncationSize: 2048, preview: 120 }],
        version: '14.1',
      });
      const sync = el('AirSync', 'Sync', [
        el('AirSync', 'Collections', [
          el('AirSync', 'Collection', [
            el('AirSync', 'SyncKey', '{5b3f6c1e-2a47-4f0e-9d3c-1e2f3a4b5c6d}2'),
            el('AirSync', 'CollectionId', '5'),
            el('AirSync', 'Status', '1'),
            el('AirSync', 'Commands', [
              el('AirSync', 'Add', [el('AirSync', 'ServerId', '5:42'), el('AirSync', 'ApplicationData', app)]),
            ]),
          ]),
        ]),
      ]);
      // wbxml2xml's compact output drops trailing whitespace from text (our bodies end in newlines); nothing else
      // differs.
      expect(withoutTrailingSpace(parseLibwbxmlXml(libwbxmlDecode(encodeWbxml(sync))))).toEqual(
        withoutTrailingSpace(comparable(sync)),
      );
    },
  );
});
