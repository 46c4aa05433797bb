/**
 * GetAttachment (MS-ASCMD §2.2.1.7), as 12.x clients send it, against the real Dovecot: a POST with no body and the
 * FileReference Sync handed out as the AttachmentName parameter (the request Microsoft's protocol test suite
 * OfficeDev/Interop-TestSuites MS-ASCMD S06_GetAttachment sends). The answer is the attachment's bytes with its
 * Content-Type; an attachment deleted on the server is HTTP 500, as the same suite expects of Exchange; a request
 * without a usable AttachmentName is 400.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { child, childText, el } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, seedMailbox } from '../../services/seed.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

/** Every byte value, then random ones: the file must arrive byte for byte. */
const BINARY = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i)), randomBytes(3000)]);

describe('GetAttachment (12.1)', () => {
  it('answers the attachment by its FileReference, 500 once it is deleted, 400 without a usable name', async () => {
    const user = createUser(services);
    const [seeded] = await seedMailbox(services, user, 'INBOX', [
      {
        message: {
          from: 'Bob <bob@example.test>',
          to: 'Alice <alice@example.test>',
          subject: 'Number one',
          text: 'The picture.\n',
          attachments: [{ filename: 'number1.jpg', contentType: 'image/jpeg', content: BINARY }],
        },
      },
    ]);
    const device = new TestDevice(server, user, undefined, '12.1', 'SmartPhone');
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    const serverId = `${inbox}:${seeded!.uid}`;
    const attachment = child(
      child(device.items(inbox).get(serverId), 'Attachments', 'AirSyncBase'),
      'Attachment',
      'AirSyncBase',
    );
    expect(childText(attachment, 'DisplayName', 'AirSyncBase')).toBe('number1.jpg');
    const fileReference = childText(attachment, 'FileReference', 'AirSyncBase')!;
    const getAttachment = (name: string | undefined) =>
      device.send('GetAttachment', undefined, {
        query: name === undefined ? '' : `&AttachmentName=${encodeURIComponent(name)}`,
      });

    const res = await getAttachment(fileReference);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(Buffer.from(res.bytes).equals(BINARY)).toBe(true);
    expect(server.logs.at(-1)).toMatchObject({ cmd: 'GetAttachment', http: 200 });

    expect((await getAttachment(undefined)).status).toBe(400);
    expect((await getAttachment('not-a-reference')).status).toBe(400);
    expect((await getAttachment(`${inbox}:999999:0`)).status).toBe(500);
    expect((await getAttachment(`${inbox}:${seeded!.uid}:7`)).status).toBe(500);

    // The message deleted through Sync (to Deleted Items): the old FileReference is gone.
    const deleted = await device.sync(inbox, {
      commands: [el('AirSync', 'Delete', [el('AirSync', 'ServerId', serverId)])],
    });
    expect(deleted.status).toBe(1);
    const gone = await getAttachment(fileReference);
    expect(gone.status).toBe(500);
    expect(gone.bytes.length).toBe(0);
    expect(server.logs.at(-1)).toMatchObject({ cmd: 'GetAttachment', http: 500 });
  });
});
