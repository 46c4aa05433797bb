/**
 * Device policy the server holds to itself (issue 17 item 24), for a client that ignores the policy
 * (PROVISIONING=loose, no policy key): AttachmentsEnabled and MaxAttachmentSize refuse attachment downloads in
 * ItemOperations (Status 16, 11) and GetAttachment (403), against the real Dovecot.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { child, childText, el } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';
import { createUser, seedMailbox } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { itemWithSubject } from './session-steps.ts';

const services = inject('services');
const ATTACHMENT = Buffer.alloc(1000, 7);

let server: TestServer;
const users: Record<'disabled' | 'small' | 'free', TestUser> = {
  disabled: createUser(services),
  small: createUser(services),
  free: createUser(services),
};

beforeAll(async () => {
  server = testServer(services, {
    PROVISIONING: 'loose',
    POLICY: JSON.stringify({
      users: {
        [users.disabled.email]: { AttachmentsEnabled: false },
        [users.small.email]: { MaxAttachmentSize: 500 },
      },
    }),
  });
  for (const user of Object.values(users)) {
    await seedMailbox(services, user, 'INBOX', [
      {
        message: {
          from: 'Bob <bob@example.test>',
          to: user.email,
          subject: 'With attachment',
          text: 'See attached.\n',
          attachments: [{ filename: 'a.bin', contentType: 'application/octet-stream', content: ATTACHMENT }],
        },
      },
    ]);
  }
}, 60_000);

/** A device that never provisions (loose mode lets it in), synced, and its attachment's FileReference. */
async function deviceOf(user: TestUser, version = '14.1'): Promise<{ device: TestDevice; reference: string }> {
  const device = new TestDevice(server, user, undefined, version);
  device.autoProvision = false;
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox);
  const [, data] = itemWithSubject(device, inbox, 'With attachment');
  const reference = childText(
    child(child(data, 'Attachments', 'AirSyncBase'), 'Attachment', 'AirSyncBase'),
    'FileReference',
    'AirSyncBase',
  )!;
  return { device, reference };
}

describe('attachment policy, enforced by the server', () => {
  it('ItemOperations: Status 16 when attachments are disabled, 11 over MaxAttachmentSize, 1 otherwise', async () => {
    const statusFor = async (user: TestUser): Promise<string | undefined> => {
      const { device, reference } = await deviceOf(user);
      const res = await device.send(
        'ItemOperations',
        el('ItemOperations', 'ItemOperations', [
          el('ItemOperations', 'Fetch', [
            el('ItemOperations', 'Store', 'Mailbox'),
            el('AirSyncBase', 'FileReference', reference),
          ]),
        ]),
      );
      expect(res.status).toBe(200);
      const fetch = child(child(res.body, 'Response'), 'Fetch');
      if (childText(fetch, 'Status') !== '1') expect(child(fetch, 'Properties')).toBeUndefined();
      return childText(fetch, 'Status');
    };
    expect(await statusFor(users.disabled)).toBe('16');
    expect(await statusFor(users.small)).toBe('11');
    expect(await statusFor(users.free)).toBe('1');
  });

  it('GetAttachment (12.1): 403 when the policy forbids the download, the bytes otherwise', async () => {
    const get = async (user: TestUser) => {
      const { device, reference } = await deviceOf(user, '12.1');
      return device.send('GetAttachment', undefined, { query: `&AttachmentName=${encodeURIComponent(reference)}` });
    };
    expect((await get(users.disabled)).status).toBe(403);
    expect((await get(users.small)).status).toBe(403);
    const free = await get(users.free);
    expect(free.status).toBe(200);
    expect(Buffer.from(free.bytes).equals(ATTACHMENT)).toBe(true);
  });
});
