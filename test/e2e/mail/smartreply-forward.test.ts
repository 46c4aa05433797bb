/**
 * SmartReply and SmartForward end to end: a message in the user's Inbox, replied to and forwarded through the
 * scripted device → the app → Postfix → Dovecot. Threading headers, quoting, attachments, the original's flags
 * (and LastVerbExecuted on the device), ReplaceMime, LongId, 16.x Forwardees, the 12.x query form, Status 150.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { childText } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, makeMessage, seedMailbox } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';
import { compose, composeStatus, readFolder, waitForStored } from './compose-helpers.ts';

const services = inject('services');
// Without Postfix these tests fail (issue 17, item 26): a green run means sending was tested.
const describeSmtp = describe;

let server: TestServer;

beforeAll(() => {
  // Provisioning is not what these tests are about: requests pass without a policy key.
  server = testServer(services, { PROVISIONING: 'loose' });
});

const PDF = Buffer.concat([Buffer.from('%PDF-1.4\n'), randomBytes(2000), Buffer.from('\n%%EOF\n')]);
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

interface Scene {
  alice: TestUser;
  bob: TestUser;
  carol: TestUser;
  device: TestDevice;
  inbox: string;
  serverId: string;
  uid: number;
  originalId: string;
  subject: string;
}

/** Bob's message (text + HTML with an inline image, a PDF attached, part of a thread) in Alice's synced Inbox. */
async function scene(version = '14.1'): Promise<Scene> {
  const [alice, bob, carol] = [createUser(services), createUser(services), createUser(services)];
  const subject = `Quarterly report ${randomBytes(3).toString('hex')}`;
  const originalId = `${randomBytes(6).toString('hex')}@example.test`;
  const [seeded] = await seedMailbox(services, alice, 'INBOX', [
    {
      message: makeMessage({
        from: `Bob Builder <${bob.email}>`,
        to: `Alice <${alice.email}>`,
        cc: carol.email,
        subject,
        messageId: originalId,
        inReplyTo: 'first@example.test',
        references: ['first@example.test'],
        text: 'The report is attached.\nNumbers look good.\n',
        html: '<html><body><p>The report is <b>attached</b>.</p><p><img src="cid:logo@example.test"></p></body></html>',
        attachments: [
          { filename: 'report.pdf', contentType: 'application/pdf', content: PDF },
          { filename: 'logo.png', contentType: 'image/png', content: PNG, contentId: 'logo@example.test' },
        ],
      }),
    },
  ]);
  const device = new TestDevice(server, alice, undefined, version);
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox);
  const serverId = `${inbox}:${seeded!.uid}`;
  expect(device.items(inbox).has(serverId)).toBe(true);
  return { alice, bob, carol, device, inbox, serverId, uid: seeded!.uid, originalId: `<${originalId}>`, subject };
}

/** What a phone sends for a reply: only the new text, addressed, with a Re: subject. */
function replyMime(s: Scene, text: string, extra: Record<string, string> = {}): Buffer {
  return makeMessage({
    from: `Alice <${s.alice.email}>`,
    to: `Bob Builder <${s.bob.email}>`,
    subject: `Re: ${s.subject}`,
    text,
    headers: extra,
  });
}

async function originalFlags(s: Scene): Promise<Set<string>> {
  const [original] = (await readFolder(services, s.alice, 'INBOX')).filter((m) => m.uid === s.uid);
  return original!.flags;
}

describeSmtp('SmartReply', () => {
  it('quotes the original below the new text, threads the reply, leaves the attachment out, marks the original \\Answered', async () => {
    const s = await scene();
    const res = await compose(s.device, 'SmartReply', replyMime(s, 'Thanks, looks great!\n'), {
      source: { folderId: s.inbox, itemId: s.serverId },
    });
    expect(res.status).toBe(200);
    expect(res.bytes.length).toBe(0);

    const got = await waitForStored(services, s.bob, (m) => m.email.subject === `Re: ${s.subject}`);
    expect(got.email.inReplyTo).toBe(s.originalId);
    expect(got.email.references?.split(/\s+/)).toEqual(['<first@example.test>', s.originalId]);
    const text = got.email.text ?? '';
    expect(text.indexOf('Thanks, looks great!')).toBe(0);
    expect(text).toMatch(/wrote:\n> The report is attached\.\n> Numbers look good\./);
    // HTML: the device's text, then the original in a blockquote, with its inline image (and only that) carried along.
    expect(got.email.html).toMatch(/Thanks, looks great![\s\S]*<blockquote[^>]*>[\s\S]*The report is <b>attached<\/b>/);
    expect(got.email.attachments.map((a) => a.filename)).toEqual(['logo.png']);
    expect(got.email.attachments[0]?.contentId).toBe('<logo@example.test>');
    expect(got.email.from?.address).toBe(s.alice.email);

    expect((await originalFlags(s)).has('\\Answered')).toBe(true);
    const [sent] = await readFolder(services, s.alice, 'Sent');
    expect(sent?.email.messageId).toBe(got.email.messageId);

    // The device learns it in its next Sync: LastVerbExecuted 1 (reply to sender).
    const round = await s.device.sync(s.inbox);
    expect(round.changed).toContain(s.serverId);
    expect(childText(s.device.items(s.inbox).get(s.serverId), 'LastVerbExecuted', 'Email2')).toBe('1');
  });

  it('with ReplaceMime sends the device message as it is, with the threading headers added', async () => {
    const s = await scene();
    const mime = replyMime(s, 'Complete reply written by the phone.\n');
    expect(
      composeStatus(
        await compose(s.device, 'SmartReply', mime, {
          source: { folderId: s.inbox, itemId: s.serverId },
          replaceMime: true,
        }),
      ),
    ).toBeUndefined();
    const got = await waitForStored(services, s.bob, (m) => m.email.subject === `Re: ${s.subject}`);
    expect(got.email.text?.trim()).toBe('Complete reply written by the phone.');
    expect(got.email.inReplyTo).toBe(s.originalId);
    expect(got.email.references).toBe(`<first@example.test> ${s.originalId}`);
    expect(got.email.attachments).toEqual([]);
  });

  it('keeps threading headers the device set itself', async () => {
    const s = await scene();
    const mime = replyMime(s, 'Mine.\n', {
      'In-Reply-To': s.originalId,
      References: `<first@example.test> ${s.originalId}`,
    });
    expect(
      composeStatus(await compose(s.device, 'SmartReply', mime, { source: { folderId: s.inbox, itemId: s.serverId } })),
    ).toBeUndefined();
    const got = await waitForStored(services, s.bob, (m) => m.email.subject === `Re: ${s.subject}`);
    expect(got.email.inReplyTo).toBe(s.originalId);
    expect(got.email.references).toBe(`<first@example.test> ${s.originalId}`);
  });

  it('finds the original by LongId (a Search result id) too', async () => {
    const s = await scene();
    expect(
      composeStatus(
        await compose(s.device, 'SmartReply', replyMime(s, 'By LongId.\n'), { source: { longId: s.serverId } }),
      ),
    ).toBeUndefined();
    const got = await waitForStored(services, s.bob, (m) => m.email.subject === `Re: ${s.subject}`);
    expect(got.email.inReplyTo).toBe(s.originalId);
  });

  it('answers 150 when the source is not there, and sends nothing', async () => {
    const s = await scene();
    const trash = s.device.folderByType(FolderType.DeletedItems).serverId;
    for (const source of [
      { folderId: s.inbox, itemId: `${s.inbox}:999999` },
      { folderId: '9999', itemId: '9999:1' },
      { folderId: trash, itemId: s.serverId },
      { longId: 'not-an-id' },
      { instanceId: '2026-03-01T10:00:00.000Z' },
    ]) {
      expect(composeStatus(await compose(s.device, 'SmartReply', replyMime(s, 'x\n'), { source }))).toBe(150);
    }
    expect(await readFolder(services, s.alice, 'Sent')).toEqual([]);
    expect((await originalFlags(s)).has('\\Answered')).toBe(false);
  });

  it('12.1: the raw message with CollectionId and ItemId in the query', async () => {
    const s = await scene('12.1');
    const res = await s.device.send('SmartReply', replyMime(s, 'Old phone reply.\n'), {
      query: `&CollectionId=${s.inbox}&ItemId=${encodeURIComponent(s.serverId)}&SaveInSent=T`,
      headers: { 'Content-Type': 'message/rfc822' },
    });
    expect(res.status).toBe(200);
    expect(res.bytes.length).toBe(0);
    const got = await waitForStored(services, s.bob, (m) => m.email.subject === `Re: ${s.subject}`);
    expect(got.email.inReplyTo).toBe(s.originalId);
    expect(got.email.text).toContain('> Numbers look good.');
    expect((await readFolder(services, s.alice, 'Sent')).length).toBe(1);

    const missing = await s.device.send('SmartReply', replyMime(s, 'x\n'), {
      query: `&CollectionId=${s.inbox}&ItemId=${s.inbox}%3A999999`,
      headers: { 'Content-Type': 'message/rfc822' },
    });
    expect(missing.status).toBe(500);
  });
});

describeSmtp('SmartForward', () => {
  it('includes the original under a forward header with all its attachments, threads it, marks the original $Forwarded', async () => {
    const s = await scene();
    const mime = makeMessage({
      from: s.alice.email,
      to: s.carol.email,
      subject: `Fwd: ${s.subject}`,
      text: 'FYI, see below.\n',
    });
    expect(
      composeStatus(
        await compose(s.device, 'SmartForward', mime, { source: { folderId: s.inbox, itemId: s.serverId } }),
      ),
    ).toBeUndefined();

    const got = await waitForStored(services, s.carol, (m) => m.email.subject === `Fwd: ${s.subject}`);
    const text = got.email.text ?? '';
    expect(text.indexOf('FYI, see below.')).toBe(0);
    expect(text).toMatch(
      /Forwarded message[\s\S]*From: Bob Builder <[^>]+>[\s\S]*Subject: Quarterly report[\s\S]*The report is attached\.\nNumbers look good\./,
    );
    const pdf = got.email.attachments.find((a) => a.filename === 'report.pdf');
    expect(Buffer.from(pdf!.content as ArrayBuffer).equals(PDF)).toBe(true);
    expect(got.email.attachments.map((a) => a.filename).sort()).toEqual(['logo.png', 'report.pdf']);
    expect(got.email.html).toMatch(
      /FYI, see below\.[\s\S]*Forwarded message[\s\S]*The report is <b>attached<\/b>[\s\S]*cid:logo@example\.test/,
    );
    expect(got.email.inReplyTo).toBe(s.originalId);
    expect(got.email.references).toContain(s.originalId);

    expect((await originalFlags(s)).has('$Forwarded')).toBe(true);
    await s.device.sync(s.inbox);
    expect(childText(s.device.items(s.inbox).get(s.serverId), 'LastVerbExecuted', 'Email2')).toBe('3');
    // The Sent copy is the forwarded message, attachments and all.
    const [sent] = await readFolder(services, s.alice, 'Sent');
    expect(sent?.email.attachments.map((a) => a.filename).sort()).toEqual(['logo.png', 'report.pdf']);
  });

  it('keeps the attachments the device added itself', async () => {
    const s = await scene();
    const mime = makeMessage({
      from: s.alice.email,
      to: s.carol.email,
      subject: `Fwd: ${s.subject}`,
      text: 'Plus my notes.\n',
      attachments: [{ filename: 'notes.txt', contentType: 'text/plain', content: 'my notes\n' }],
    });
    expect(
      composeStatus(
        await compose(s.device, 'SmartForward', mime, { source: { folderId: s.inbox, itemId: s.serverId } }),
      ),
    ).toBeUndefined();
    const got = await waitForStored(services, s.carol, (m) => m.email.subject === `Fwd: ${s.subject}`);
    expect(got.email.attachments.map((a) => a.filename).sort()).toEqual(['logo.png', 'notes.txt', 'report.pdf']);
  });

  it('16.1 Forwardees become recipients', async () => {
    const s = await scene('16.1');
    const dave = createUser(services);
    const mime = makeMessage({
      from: s.alice.email,
      to: s.carol.email,
      subject: `Fwd: ${s.subject}`,
      text: 'To both.\n',
    });
    const res = await compose(s.device, 'SmartForward', mime, {
      source: { folderId: s.inbox, itemId: s.serverId },
      forwardees: [{ name: 'Dave', email: dave.email }, { email: s.carol.email }],
    });
    expect(composeStatus(res)).toBeUndefined();
    const atDave = await waitForStored(services, dave, (m) => m.email.subject === `Fwd: ${s.subject}`);
    expect(atDave.email.to?.map((a) => a.address)).toEqual([s.carol.email, dave.email]);
    await waitForStored(services, s.carol, (m) => m.email.subject === `Fwd: ${s.subject}`);
  });

  it('a resent SmartForward with the same ClientId gets 118', async () => {
    const s = await scene();
    const mime = makeMessage({ from: s.alice.email, to: s.carol.email, subject: `Fwd: ${s.subject}`, text: 'Once.\n' });
    const options = { source: { folderId: s.inbox, itemId: s.serverId }, clientId: 'fwd-1' };
    expect(composeStatus(await compose(s.device, 'SmartForward', mime, options))).toBeUndefined();
    expect(composeStatus(await compose(s.device, 'SmartForward', mime, options))).toBe(118);
  });
});
