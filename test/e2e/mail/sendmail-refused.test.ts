/**
 * SendMail to recipients some of whom the real Postfix refuses at RCPT TO (test/services/postfix.ts refuses every
 * `refused-…` address with 550 5.1.1): the others get the message, the device hears "sent", and the user finds an
 * RFC 3464 non-delivery report in the Inbox naming each refused address with the server's reply. Refused all: the
 * device gets a Status, and no report.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { REFUSED_RECIPIENT_PREFIX } from '../../services/postfix.ts';
import { createUser, makeMessage } from '../../services/seed.ts';
import { compose, composeStatus, countAfter, readFolder, waitForStored } from './compose-helpers.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services, { PROVISIONING: 'loose' });
});

describe('SendMail with recipients the SMTP server refuses', () => {
  it('delivers to the others, answers sent, and puts a non-delivery report in the Inbox', async () => {
    expect(services.smtp, services.smtpSkipReason ?? '').not.toBeNull();
    const [alice, bob] = [createUser(services), createUser(services)];
    const refused = [`${REFUSED_RECIPIENT_PREFIX}${randomBytes(3).toString('hex')}@example.test`];
    const device = new TestDevice(server, alice);
    await device.folderSync();
    const title = `Partly refused ${randomBytes(4).toString('hex')}`;
    const mime = makeMessage({ from: alice.email, to: bob.email, cc: refused[0], subject: title, text: 'Hello\n' });

    const res = await compose(device, 'SendMail', mime, { clientId: 'partly-1', saveInSent: true });
    expect(composeStatus(res)).toBeUndefined();
    await waitForStored(services, bob, (m) => m.email.subject === title);
    expect(server.logs.some((e) => e.recipientsRefused === 1)).toBe(true);

    const report = await waitForStored(services, alice, (m) => m.email.subject === `Undeliverable: ${title}`);
    expect(report.header('content-type')).toMatch(/^multipart\/report;\s*report-type=delivery-status/i);
    const source = report.source.toString('latin1');
    expect(source).toMatch(
      new RegExp(`Final-Recipient: rfc822; ${refused[0]}\\r\\nAction: failed\\r\\nStatus: 5\\.1\\.1`),
    );
    expect(source).toContain('Diagnostic-Code: smtp; 550 5.1.1');
    expect(source).toMatch(/Content-Type: text\/rfc822-headers[\s\S]*Subject: Partly refused/);
    expect(report.flags.has('\\Seen')).toBe(false);
    // Only the refused address is named; the one who got it is not.
    expect(source).not.toContain(`Final-Recipient: rfc822; ${bob.email}`);

    // The device sees the report arrive in its Inbox.
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    const subjects = [...device.items(inbox).values()].map((d) => itemText(d, 'Subject', 'Email'));
    expect(subjects).toContain(`Undeliverable: ${title}`);
    expect(await countAfter(services, bob, title, 300)).toBe(1);
  });

  it('every recipient refused: a Status, nothing sent, no report', async () => {
    expect(services.smtp, services.smtpSkipReason ?? '').not.toBeNull();
    const alice = createUser(services);
    const device = new TestDevice(server, alice);
    await device.folderSync();
    const title = `All refused ${randomBytes(4).toString('hex')}`;
    const to = `${REFUSED_RECIPIENT_PREFIX}${randomBytes(3).toString('hex')}@example.test`;
    const res = await compose(device, 'SendMail', makeMessage({ from: alice.email, to, subject: title, text: 'x\n' }));
    expect(composeStatus(res)).toBe(116);
    expect(await readFolder(services, alice, 'INBOX')).toEqual([]);
    expect(await readFolder(services, alice, 'Sent')).toEqual([]);
  });
});
