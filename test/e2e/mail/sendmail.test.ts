/**
 * SendMail end to end: the scripted device → the app → the test Postfix → LMTP → Dovecot, and the Sent copy over
 * IMAP. Skipped, with the reason, when Postfix cannot run here (not root).
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { el } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, makeMessage } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';
import { compose, composeStatus, countAfter, readFolder, waitForStored } from './compose-helpers.ts';

const services = inject('services');
// Without Postfix these tests fail (issue 17, item 26): a green run means sending was tested.
const describeSmtp = describe;

/**
 * The app against the test services. Provisioning is not what these tests are about: requests pass without a policy
 * key.
 */
function appFor(env: Record<string, string> = {}): TestServer {
  return testServer(services, { PROVISIONING: 'loose', ...env });
}

let server: TestServer;

beforeAll(() => {
  server = appFor();
});

async function deviceOf(user: TestUser, version = '14.1'): Promise<TestDevice> {
  const device = new TestDevice(server, user, undefined, version);
  await device.folderSync();
  return device;
}

function subject(what: string): string {
  return `${what} ${randomBytes(4).toString('hex')}`;
}

describeSmtp('SendMail (14.0+ ComposeMail)', () => {
  it('delivers to To, Cc and Bcc; the delivered copies have no Bcc header, the Sent copy keeps it, read', async () => {
    const [alice, bob, carol, dave] = [
      createUser(services),
      createUser(services),
      createUser(services),
      createUser(services),
    ];
    const device = await deviceOf(alice);
    const title = subject('Lunch');
    const mime = makeMessage({
      from: `Alice <${alice.email}>`,
      to: `Bob <${bob.email}>`,
      cc: carol.email,
      subject: title,
      text: 'Lunch at noon?\n',
      headers: { Bcc: `Dave <${dave.email}>` },
    });

    const res = await compose(device, 'SendMail', mime);
    expect(res.status).toBe(200);
    expect(res.bytes.length).toBe(0);

    for (const user of [bob, carol, dave]) {
      const got = await waitForStored(services, user, (m) => m.email.subject === title);
      expect(got.header('bcc')).toBeUndefined();
      expect(got.source.toString('latin1')).not.toMatch(/^bcc:/im);
      expect(got.email.from?.address).toBe(alice.email);
      expect(got.email.to?.[0]?.address).toBe(bob.email);
      expect(got.email.text?.trim()).toBe('Lunch at noon?');
    }
    const [sent] = await readFolder(services, alice, 'Sent');
    expect(sent?.email.subject).toBe(title);
    expect(sent?.email.bcc?.[0]?.address).toBe(dave.email);
    expect(sent?.flags.has('\\Seen')).toBe(true);
    // The same message: one Message-ID in the delivered copies and in Sent.
    const delivered = await waitForStored(services, bob, (m) => m.email.subject === title);
    expect(delivered.email.messageId).toBe(sent?.email.messageId);

    // The next Sync of Sent Items brings the copy to the device.
    const sentFolder = device.folderByType(FolderType.SentItems).serverId;
    await device.syncUntilDone(sentFolder);
    expect([...device.items(sentFolder).values()].map((d) => itemText(d, 'Subject', 'Email'))).toEqual([title]);
  });

  it('adds Date, Message-ID and From when the device leaves them out; no Sent copy without SaveInSentItems', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const device = await deviceOf(alice);
    const title = subject('Bare');
    const mime = `To: ${bob.email}\r\nSubject: ${title}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n`;
    expect(composeStatus(await compose(device, 'SendMail', mime, { saveInSent: false }))).toBeUndefined();
    const got = await waitForStored(services, bob, (m) => m.email.subject === title);
    expect(got.email.from?.address).toBe(alice.email);
    expect(got.email.messageId).toMatch(/^<[^@]+@example\.test>$/);
    expect(Number.isNaN(Date.parse(got.header('date') ?? ''))).toBe(false);
    expect(await readFolder(services, alice, 'Sent')).toEqual([]);
  });

  it('sends a message with the same ClientId once: the second request gets 118', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const device = await deviceOf(alice);
    const title = subject('Once');
    const mime = makeMessage({ from: alice.email, to: bob.email, subject: title, text: 'Only once.\n' });
    expect(composeStatus(await compose(device, 'SendMail', mime, { clientId: 'outbox-1' }))).toBeUndefined();
    await waitForStored(services, bob, (m) => m.email.subject === title);
    expect(composeStatus(await compose(device, 'SendMail', mime, { clientId: 'outbox-1' }))).toBe(118);
    expect(await countAfter(services, bob, title)).toBe(1);
    expect((await readFolder(services, alice, 'Sent')).length).toBe(1);

    // Another device of the same user has its own ClientIds.
    const other = await deviceOf(alice);
    expect(composeStatus(await compose(other, 'SendMail', mime, { clientId: 'outbox-1' }))).toBeUndefined();
  });

  it('two copies of one request at the same time send it once', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const device = await deviceOf(alice);
    const title = subject('Race');
    const mime = makeMessage({ from: alice.email, to: bob.email, subject: title, text: 'Race.\n' });
    const results = await Promise.all([
      compose(device, 'SendMail', mime, { clientId: 'race' }),
      compose(device, 'SendMail', mime, { clientId: 'race' }),
    ]);
    const statuses = results.map(composeStatus);
    expect(statuses.filter((s) => s === undefined)).toHaveLength(1);
    // The loser saw the message either in flight (111, try again) or already sent (118).
    expect([111, 118]).toContain(statuses.find((s) => s !== undefined));
    await waitForStored(services, bob, (m) => m.email.subject === title);
    expect(await countAfter(services, bob, title)).toBe(1);
  });

  it('answers 116 when the server refuses every recipient, sends nothing, leaves nothing in Sent; the ClientId stays usable', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const device = await deviceOf(alice);
    const title = subject('Refused');
    // Postfix refuses a domain that cannot be a host name: `501 5.1.3 Bad recipient address syntax`.
    const bad = makeMessage({ from: alice.email, to: 'nobody@-bad-.test', subject: title, text: 'x\n' });
    expect(composeStatus(await compose(device, 'SendMail', bad, { clientId: 'fix-me' }))).toBe(116);
    expect(await readFolder(services, alice, 'Sent')).toEqual([]);

    // The device corrects the address and sends again with the same ClientId: not a duplicate, it was never sent.
    const good = makeMessage({ from: alice.email, to: bob.email, subject: title, text: 'x\n' });
    expect(composeStatus(await compose(device, 'SendMail', good, { clientId: 'fix-me' }))).toBeUndefined();
    await waitForStored(services, bob, (m) => m.email.subject === title);
    expect((await readFolder(services, alice, 'Sent')).length).toBe(1);
  });

  it('sends to the recipients the server takes when it refuses only some', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const device = await deviceOf(alice);
    const title = subject('Partly');
    const mime = makeMessage({ from: alice.email, to: [bob.email, 'nobody@-bad-.test'], subject: title, text: 'x\n' });
    expect(composeStatus(await compose(device, 'SendMail', mime))).toBeUndefined();
    await waitForStored(services, bob, (m) => m.email.subject === title);
    expect((await readFolder(services, alice, 'Sent')).length).toBe(1);
  });

  it('answers 119 for a message without recipients, 107 for one that is not MIME, 103 without a ClientId', async () => {
    const alice = createUser(services);
    const device = await deviceOf(alice);
    const none = makeMessage({ from: alice.email, subject: 'Nobody', text: 'x\n' })
      .toString()
      .replace(/^To:.*\r\n/m, '');
    expect(composeStatus(await compose(device, 'SendMail', none))).toBe(119);
    expect(composeStatus(await compose(device, 'SendMail', new Uint8Array([0x03, 0x01, 0x6a, 0x00])))).toBe(107);
    expect(composeStatus(await compose(device, 'SendMail', ''))).toBe(107);
    const noClientId = await device.send(
      'SendMail',
      el('ComposeMail', 'SendMail', [el('ComposeMail', 'Mime', new TextEncoder().encode('To: a@b\r\n\r\nx'))]),
    );
    expect(composeStatus(noClientId)).toBe(103);
    expect(await readFolder(services, alice, 'Sent')).toEqual([]);
  });

  it('refuses a message over MAX_MESSAGE_BYTES with 122 before sending anything', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const small = appFor({ MAX_MESSAGE_BYTES: '20000' });
    const device = new TestDevice(small, alice);
    await device.folderSync();
    const title = subject('Big');
    const mime = makeMessage({
      from: alice.email,
      to: bob.email,
      subject: title,
      text: 'see attachment\n',
      attachments: [{ filename: 'big.bin', contentType: 'application/octet-stream', content: randomBytes(30_000) }],
    });
    expect(composeStatus(await compose(device, 'SendMail', mime))).toBe(122);
    expect(await countAfter(services, bob, title, 1_000)).toBe(0);
    expect(await readFolder(services, alice, 'Sent')).toEqual([]);
  });

  it("maps the server's own size refusal (Postfix's 10 MB limit) to 122", async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const device = await deviceOf(alice);
    const title = subject('Huge');
    const mime = makeMessage({
      from: alice.email,
      to: bob.email,
      subject: title,
      text: 'x\n',
      attachments: [{ filename: 'huge.bin', contentType: 'application/octet-stream', content: randomBytes(8_000_000) }],
    });
    expect(mime.length).toBeGreaterThan(10_240_000);
    expect(composeStatus(await compose(device, 'SendMail', mime))).toBe(122);
    expect(await readFolder(services, alice, 'Sent')).toEqual([]);
  });

  it('answers 111 (try again) when the SMTP server cannot be reached, and sends nothing', async () => {
    const alice = createUser(services);
    const unreachable = appFor({ SMTP_HOST: '127.0.0.1', SMTP_PORT: '1', SMTP_SECURE: 'false' });
    const device = new TestDevice(unreachable, alice);
    await device.folderSync();
    const mime = makeMessage({ from: alice.email, to: 'bob@example.test', subject: 'Down', text: 'x\n' });
    expect(composeStatus(await compose(device, 'SendMail', mime, { clientId: 'down' }))).toBe(111);
    expect(await readFolder(services, alice, 'Sent')).toEqual([]);
  });

  it('with SMTP_AUTH=required refuses to send over a connection without login or TLS (120)', async () => {
    const alice = createUser(services);
    const strict = appFor({ SMTP_AUTH: 'required' });
    const device = new TestDevice(strict, alice);
    await device.folderSync();
    const mime = makeMessage({ from: alice.email, to: 'bob@example.test', subject: 'Strict', text: 'x\n' });
    expect(composeStatus(await compose(device, 'SendMail', mime))).toBe(120);
    expect(await readFolder(services, alice, 'Sent')).toEqual([]);
    // The password appears in no log line.
    expect(JSON.stringify(strict.logs)).not.toContain(alice.password);
  });
});

describeSmtp('SendMail before 14.0 (message/rfc822 body)', () => {
  it('sends the raw message; SaveInSent=T keeps a copy; success is an empty 200', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const device = await deviceOf(alice, '12.1');
    const title = subject('Raw');
    const mime = makeMessage({
      from: alice.email,
      to: bob.email,
      subject: title,
      text: 'Raw MIME.\n',
      headers: { Bcc: 'hidden@example.test' },
    });
    const res = await device.send('SendMail', mime, {
      query: '&SaveInSent=T',
      headers: { 'Content-Type': 'message/rfc822' },
    });
    expect(res.status).toBe(200);
    expect(res.bytes.length).toBe(0);
    const got = await waitForStored(services, bob, (m) => m.email.subject === title);
    expect(got.header('bcc')).toBeUndefined();
    const [sent] = await readFolder(services, alice, 'Sent');
    expect(sent?.email.subject).toBe(title);
    expect(sent?.header('bcc')).toContain('hidden@example.test');

    const noCopy = subject('Raw, no copy');
    const plain = makeMessage({ from: alice.email, to: bob.email, subject: noCopy, text: 'x\n' });
    expect((await device.send('SendMail', plain, { headers: { 'Content-Type': 'message/rfc822' } })).status).toBe(200);
    await waitForStored(services, bob, (m) => m.email.subject === noCopy);
    expect((await readFolder(services, alice, 'Sent')).length).toBe(1);
  });

  it('answers HTTP 500 when the message cannot be sent', async () => {
    const alice = createUser(services);
    const device = await deviceOf(alice, '12.1');
    const bad = makeMessage({ from: alice.email, to: 'nobody@-bad-.test', subject: 'Bad', text: 'x\n' });
    const res = await device.send('SendMail', bad, {
      query: '&SaveInSent=T',
      headers: { 'Content-Type': 'message/rfc822' },
    });
    expect(res.status).toBe(500);
    expect(await readFolder(services, alice, 'Sent')).toEqual([]);
  });
});
