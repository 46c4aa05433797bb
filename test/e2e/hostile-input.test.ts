/**
 * Specific hostile requests and their refusals (issue 10 item 3), through the real app, Dovecot, Radicale and an SMTP
 * sink: oversized bodies, deep WBXML nesting, huge attachment Ranges, path traversal in FileReference and LongId,
 * CR/LF header injection in MIME the server builds from device input (drafts, SmartReply, meeting mails), and an
 * XML bomb in Autodiscover.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { child, childText, el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';
import { createUser, seedCalendar, seedMailbox } from '../services/seed.ts';
import { startSmtpSink, type SmtpSink } from '../services/smtp-sink.ts';
import type { TestUser } from '../services/types.ts';
import { compose, readFolder } from './mail/compose-helpers.ts';
import { itemWithSubject } from './session-steps.ts';

const services = inject('services');
const MAX_BYTES = 65536;
const INJECTED = 'leak@evil.test';

let server: TestServer;
let sink: SmtpSink;
let user: TestUser;
let device: TestDevice;
let inbox: string;

/** Every header line of a message's top-level header block, unfolded. */
function headerLines(source: Buffer | Uint8Array): string[] {
  const text = Buffer.from(source).toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  return (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/);
}

beforeAll(async () => {
  sink = await startSmtpSink({ tls: 'none' });
  server = testServer(services, {
    MAX_REQUEST_BYTES: String(MAX_BYTES),
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(sink.port),
    SMTP_SECURE: 'false',
    SMTP_AUTH: 'none',
  });
  user = createUser(services);
  await seedMailbox(services, user, 'INBOX', [
    {
      message: {
        from: 'Bob <bob@example.test>',
        to: user.email,
        subject: 'With attachment',
        text: 'See attached.\n',
        attachments: [{ filename: 'a.bin', contentType: 'application/octet-stream', content: Buffer.alloc(1000, 1) }],
      },
    },
  ]);
  device = new TestDevice(server, user);
  await device.folderSync();
  inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox, {
    options: [el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '1')])],
  });
}, 60_000);

afterAll(async () => {
  await sink?.close();
});

function fileReferenceOf(data: WbxmlElement): string {
  return childText(
    child(child(data, 'Attachments', 'AirSyncBase'), 'Attachment', 'AirSyncBase'),
    'FileReference',
    'AirSyncBase',
  )!;
}

async function fetchStatus(
  fetch: WbxmlElement[],
): Promise<{ http: number; status: string | undefined; global: string | undefined; data: boolean }> {
  const res = await device.send(
    'ItemOperations',
    el('ItemOperations', 'ItemOperations', [el('ItemOperations', 'Fetch', fetch)]),
  );
  const answer = child(res.body, 'Response');
  const fetched = child(answer, 'Fetch');
  return {
    http: res.status,
    status: childText(fetched, 'Status'),
    global: childText(res.body, 'Status'),
    data: child(fetched, 'Properties') !== undefined,
  };
}

describe('request size and shape', () => {
  it('refuses a body over MAX_REQUEST_BYTES with 413, streamed or with a declared length', async () => {
    const big = new Uint8Array(MAX_BYTES + 1);
    big.set([3, 1, 106, 0]);
    expect((await device.send('Sync', big)).status).toBe(413);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(new Uint8Array(MAX_BYTES / 2));
        controller.close();
      },
    });
    const res = await server.fetch(
      `https://eas.example.test/Microsoft-Server-ActiveSync?Cmd=Sync&User=u&DeviceId=${device.deviceId}&DeviceType=iPhone`,
      {
        method: 'POST',
        headers: {
          Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}`,
          'MS-ASProtocolVersion': '14.1',
          'Content-Type': 'application/vnd.ms-sync.wbxml',
          'X-MS-PolicyKey': device.policyKey!,
        },
        body: stream,
        duplex: 'half',
      } as RequestInit,
    );
    expect(res.status).toBe(413);
    // The Autodiscover limit is smaller still.
    const autodiscover = await server.fetch('https://eas.example.test/autodiscover/autodiscover.xml', {
      method: 'POST',
      headers: { 'Content-Type': 'text/xml' },
      body: 'x'.repeat(65 * 1024),
    });
    expect(autodiscover.status).toBe(413);
  });

  it('refuses WBXML nested deeper than the decoder allows with 400, without a stack overflow', async () => {
    // 10,000 nested <Collection> (AirSync 0x0F with content = 0x4F), then as many ENDs.
    const depth = 10_000;
    const body = Uint8Array.from([
      3,
      1,
      106,
      0,
      0x45,
      ...new Array<number>(depth).fill(0x4f),
      ...new Array<number>(depth + 1).fill(0x01),
    ]);
    expect((await device.send('Sync', body)).status).toBe(400);
    // Just inside the limit a real command still answers (with its own Status for nonsense).
    const shallow = Uint8Array.from([
      3,
      1,
      106,
      0,
      0x45,
      ...new Array<number>(20).fill(0x4f),
      ...new Array<number>(21).fill(0x01),
    ]);
    expect((await device.send('Sync', shallow)).status).not.toBe(500);
  });
});

describe('ItemOperations: Range and references', () => {
  it('answers a Range beyond any attachment with Status 8 (InvalidRange), and cuts a long end at the end of the file', async () => {
    const [, data] = itemWithSubject(device, inbox, 'With attachment');
    const reference = fileReferenceOf(data);
    const fetch = (range: string) =>
      fetchStatus([
        el('ItemOperations', 'Store', 'Mailbox'),
        el('AirSyncBase', 'FileReference', reference),
        el('ItemOperations', 'Options', [el('ItemOperations', 'Range', range)]),
      ]);
    for (const range of [
      '0-99999999999999999999',
      '4294967296-4294967297',
      '999999999-999999999',
      '5000-6000',
      '10-5',
      '-1-10',
      'a-b',
    ]) {
      const answer = await fetch(range);
      expect(answer, range).toMatchObject({ http: 200, status: '8', data: false });
    }
    const res = await device.send(
      'ItemOperations',
      el('ItemOperations', 'ItemOperations', [
        el('ItemOperations', 'Fetch', [
          el('ItemOperations', 'Store', 'Mailbox'),
          el('AirSyncBase', 'FileReference', reference),
          el('ItemOperations', 'Options', [el('ItemOperations', 'Range', '990-999999999')]),
        ]),
      ]),
    );
    const properties = child(child(child(res.body, 'Response'), 'Fetch'), 'Properties');
    expect(childText(properties, 'Range')).toBe('990-999');
    expect(childText(properties, 'Total')).toBe('1000');
  });

  it('treats path traversal in FileReference and LongId as an unknown object (Status 6 or 15), never a file or another folder', async () => {
    const [serverId, data] = itemWithSubject(device, inbox, 'With attachment');
    const reference = fileReferenceOf(data);
    const uid = serverId.split(':')[1]!;
    const references = [
      '../../../../etc/passwd',
      `${inbox}:${uid}:../../../etc/passwd`,
      `..%2F..%2F..%2Fetc%2Fpasswd`,
      `${inbox}%3a${uid}%3a..%2f0`,
      `${inbox}/../Sent:${uid}:0`,
      `../${inbox}:${uid}:0`,
      `${reference}/../../x`,
      `${reference}\u0000`,
      'file:///etc/passwd',
    ];
    for (const fileReference of references) {
      const answer = await fetchStatus([
        el('ItemOperations', 'Store', 'Mailbox'),
        el('AirSyncBase', 'FileReference', fileReference),
      ]);
      expect(answer.http, fileReference).toBe(200);
      expect(['6', '15'], fileReference).toContain(answer.status ?? answer.global);
      expect(answer.data, fileReference).toBe(false);
    }
    for (const longId of [
      '../../../../etc/passwd',
      `${inbox}/../Sent:${uid}`,
      `..%2F${serverId}`,
      `${serverId}/..`,
      'C:\\Windows\\win.ini',
    ]) {
      const answer = await fetchStatus([el('ItemOperations', 'Store', 'Mailbox'), el('Search', 'LongId', longId)]);
      expect(answer.http, longId).toBe(200);
      expect(['6', '15', '2'], longId).toContain(answer.status ?? answer.global);
      expect(answer.data, longId).toBe(false);
    }
    // The real reference still works: the refusals are about the input, not a broken fetch.
    expect(
      (await fetchStatus([el('ItemOperations', 'Store', 'Mailbox'), el('AirSyncBase', 'FileReference', reference)]))
        .status,
    ).toBe('1');
  });
});

describe('CR/LF injection into MIME the server builds', () => {
  it('a draft’s Subject and To with CR/LF add no header field (no Bcc smuggled in)', async () => {
    // Drafts sync from 16.0 on.
    const phone = new TestDevice(server, user, undefined, '16.1');
    await phone.folderSync();
    const drafts = phone.folderByType(FolderType.Drafts).serverId;
    await phone.syncUntilDone(drafts);
    const round = await phone.sync(drafts, {
      commands: [
        el('AirSync', 'Add', [
          el('AirSync', 'ClientId', 'inject-1'),
          el('AirSync', 'ApplicationData', [
            el('Email', 'To', `friend@example.test\r\nBcc: ${INJECTED}`),
            el('Email', 'Subject', `Hello\r\nBcc: ${INJECTED}\r\nX-Injected: yes`),
            el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'Data', 'body')]),
          ]),
        ]),
      ],
    });
    expect(round.addResponses[0]?.status).toBe(1);
    const stored = await readFolder(services, user, 'Drafts');
    expect(stored).toHaveLength(1);
    const lines = headerLines(stored[0]!.source);
    expect(lines.filter((l) => /^(bcc|x-injected):/i.test(l))).toEqual([]);
    expect(stored[0]!.email.bcc ?? []).toEqual([]);
  });

  it('SmartReply: an encoded Subject and display name hiding CR/LF add no header field, and no envelope recipient', async () => {
    const [serverId] = itemWithSubject(device, inbox, 'With attachment');
    const before = sink.messages.length;
    const hidden = Buffer.from(`Re: x\r\nBcc: ${INJECTED}`).toString('base64');
    const name = Buffer.from(`Friend\r\nBcc: ${INJECTED}`).toString('base64');
    const mime = `To: =?UTF-8?B?${name}?= <friend@example.test>\r\nSubject: =?UTF-8?B?${hidden}?=\r\nContent-Type: text/plain\r\n\r\nreply\r\n`;
    const res = await compose(device, 'SmartReply', mime, { source: { folderId: inbox, itemId: serverId } });
    expect(res.status).toBe(200);
    const sent = sink.messages.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.to).toEqual(['friend@example.test']);
    expect(headerLines(sent[0]!.data).filter((l) => /^(bcc|x-injected):/i.test(l))).toEqual([]);
  });

  it('SendMail: addresses hiding CR/LF in encoded words never reach the SMTP envelope or add a header field', async () => {
    const before = sink.messages.length;
    const b64 = (text: string) => `=?UTF-8?B?${Buffer.from(text).toString('base64')}?=`;
    const mime = [
      `To: ${b64(`friend@example.test>\r\nRCPT TO:<${INJECTED}`)}, second@example.test`,
      `Cc: ${b64(`Name\r\nBcc: ${INJECTED}`)} <third@example.test>`,
      `Subject: ${b64(`x\r\nBcc: ${INJECTED}`)}`,
      'Content-Type: text/plain',
      '',
      'body',
      '',
    ].join('\r\n');
    const res = await compose(device, 'SendMail', mime, { clientId: 'inject-send-1' });
    expect(res.status).toBe(200);
    const sent = sink.messages.slice(before);
    for (const message of sent) {
      expect(message.to.join(' ')).not.toContain(INJECTED);
      for (const to of message.to) expect(to).toMatch(/^[^\s<>]+@[^\s<>]+$/);
      expect(headerLines(message.data).filter((l) => /^(bcc|rcpt):/i.test(l))).toEqual([]);
    }
    expect(sent.flatMap((m) => m.to)).toEqual(expect.arrayContaining(['second@example.test', 'third@example.test']));
  });

  it('a meeting organized on a 16.1 device: an attendee address or name with CR/LF adds no header field and no recipient', async () => {
    const organizer = createUser(services);
    await seedCalendar(services, organizer, 'calendar', [], { displayName: 'Calendar' });
    const phone = new TestDevice(server, organizer, undefined, '16.1');
    await phone.folderSync();
    const calendar = phone.folderByName('Calendar').serverId;
    await phone.syncUntilDone(calendar);
    const before = sink.messages.length;
    const round = await phone.sync(calendar, {
      commands: [
        el('AirSync', 'Add', [
          el('AirSync', 'ClientId', 'meet-1'),
          el('AirSync', 'ApplicationData', [
            el('Calendar', 'Subject', `Review\r\nBcc: ${INJECTED}`),
            el('Calendar', 'StartTime', '20260320T130000Z'),
            el('Calendar', 'EndTime', '20260320T140000Z'),
            el('Calendar', 'MeetingStatus', '1'),
            el('Calendar', 'Attendees', [
              el('Calendar', 'Attendee', [
                el('Calendar', 'Email', 'guest@example.test'),
                el('Calendar', 'Name', `Guest\r\nBcc: ${INJECTED}`),
              ]),
              el('Calendar', 'Attendee', [
                el('Calendar', 'Email', `other@example.test>\r\nBcc: <${INJECTED}`),
                el('Calendar', 'Name', 'Other'),
              ]),
            ]),
          ]),
        ]),
      ],
    });
    expect(round.status, JSON.stringify(server.logs.at(-1))).toBe(1);
    const sent = sink.messages.slice(before);
    for (const message of sent) {
      expect(message.to).not.toContain(INJECTED);
      for (const to of message.to) expect(to).toMatch(/^[^\s<>]+@[^\s<>]+$/);
      expect(headerLines(message.data).filter((l) => /^bcc:/i.test(l))).toEqual([]);
    }
    expect(sent.flatMap((m) => m.to)).toContain('guest@example.test');
  });
});

describe('Autodiscover XML', () => {
  const autodiscover = (body: string) =>
    server.fetch('https://eas.example.test/autodiscover/autodiscover.xml', {
      method: 'POST',
      headers: {
        Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}`,
        'Content-Type': 'text/xml',
      },
      body,
    });

  it('refuses an entity-expansion bomb and an external entity with Error 600, without expanding anything', async () => {
    const lol = [
      '<!ENTITY lol0 "lol">',
      ...Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`),
    ].join('');
    const bomb = `<?xml version="1.0"?><!DOCTYPE Autodiscover [${lol}]><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"><Request><EMailAddress>&lol9;</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>`;
    const external = `<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"><Request><EMailAddress>&x;</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>`;
    for (const body of [bomb, external]) {
      const res = await autodiscover(body);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toContain('<ErrorCode>600</ErrorCode>');
      expect(text.length).toBeLessThan(2000);
      expect(text).not.toContain('lollol');
      expect(text).not.toContain('root:');
    }
  });
});

describe('the refusals are answers, not failures', () => {
  it('logged no HTTP 500 for any of the above', () => {
    expect(server.logs.filter((e) => e.http === 500)).toEqual([]);
  });
});
