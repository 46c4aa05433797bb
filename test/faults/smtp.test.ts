/**
 * The SMTP connection to the real Postfix reset in the middle of SendMail (test/faults/proxy.ts): before the message
 * went out the device gets Status 111 (server error, retry later), and its retry with the same ClientId sends the
 * message exactly once, with one copy in Sent. Cut after Postfix took the message and replied, the reply lost: the
 * device hears "sent" and its retry (14.x ClientId, 12.x Message-ID) sends nothing more.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { subjects, TestDevice, testServer, type TestServer } from '../device/device.ts';
import { compose, composeStatus, countAfter, readFolder } from '../e2e/mail/compose-helpers.ts';
import { createUser, listMessages, makeMessage, waitForMessage } from '../services/seed.ts';
import { expectMailConverged, syncToEnd } from './converge.ts';
import { startFaultProxy, type FaultProxy } from './proxy.ts';

const services = inject('services');
let proxy: FaultProxy | undefined;
let server: TestServer;

beforeAll(async () => {
  if (!services.smtps) return;
  proxy = await startFaultProxy(services.smtps, { tls: true });
  server = testServer(services, {
    SMTP_HOST: proxy.host,
    SMTP_PORT: String(proxy.port),
    SMTP_SECURE: 'true',
    SMTP_AUTH: 'none',
  });
});
afterAll(async () => {
  await proxy?.close();
});

describe('SMTP reset during SendMail', () => {
  it('answers 111; the retry with the same ClientId sends once and saves one copy', async () => {
    const user = createUser(services);
    const recipient = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const sent = device.folderByType(FolderType.SentItems).serverId;
    await syncToEnd(device, sent);
    const subject = `smtp fault ${Math.random().toString(36).slice(2)}`;
    const mime = makeMessage({ from: user.email, to: recipient.email, subject }).toString();

    // The connection breaks when the client starts the message: nothing was accepted.
    const fault = proxy!.arm({ upstreamLine: /^DATA\r\n/m, action: 'reset' });
    const failed = await compose(device, 'SendMail', mime, { clientId: 'send-1', saveInSent: true });
    expect(fault.hasFired).toBe(true);
    expect(composeStatus(failed)).toBe(111);

    const retried = await compose(device, 'SendMail', mime, { clientId: 'send-1', saveInSent: true });
    expect(composeStatus(retried)).toBeUndefined();
    await waitForMessage(services, recipient, (m) => m.subject === subject);
    await new Promise((r) => setTimeout(r, 500));
    expect((await listMessages(services, recipient)).filter((m) => m.subject === subject)).toHaveLength(1);
    await expectMailConverged(services, user, device, sent, 'Sent');
    expect(subjects(device, sent)).toEqual([subject]);
  });
});

describe('SMTP cut after the server took the message, its reply lost', () => {
  it('14.x: the device hears sent; the retry with the same ClientId gets 118 and nothing is sent again', async () => {
    expect(services.smtp, services.smtpSkipReason ?? '').not.toBeNull();
    const user = createUser(services);
    const recipient = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const subject = `unconfirmed ${Math.random().toString(36).slice(2)}`;
    const mime = makeMessage({ from: user.email, to: recipient.email, subject });

    // The message and its terminating dot reach Postfix, which queues it and answers 250; the answer never arrives.
    const fault = proxy!.arm({ upstreamLine: /\r\n\.\r\n/, deliver: true, action: 'reset' });
    const first = await compose(device, 'SendMail', mime, { clientId: 'lost-reply-1', saveInSent: true });
    expect(fault.hasFired).toBe(true);
    expect(composeStatus(first)).toBeUndefined();
    expect(server.logs.some((e) => typeof e['submission-unconfirmed'] === 'string')).toBe(true);
    await waitForMessage(services, recipient, (m) => m.subject === subject);

    const retried = await compose(device, 'SendMail', mime, { clientId: 'lost-reply-1', saveInSent: true });
    expect(composeStatus(retried)).toBe(118);
    expect(await countAfter(services, recipient, subject)).toBe(1);
    expect((await readFolder(services, user, 'Sent')).filter((m) => m.email.subject === subject)).toHaveLength(1);
  });

  it('12.x: the resent message (same Message-ID) is answered 200 and not sent again', async () => {
    expect(services.smtp, services.smtpSkipReason ?? '').not.toBeNull();
    const user = createUser(services);
    const recipient = createUser(services);
    const device = new TestDevice(server, user, undefined, '12.1');
    await device.folderSync();
    const subject = `unconfirmed 12.1 ${Math.random().toString(36).slice(2)}`;
    const mime = makeMessage({
      from: user.email,
      to: recipient.email,
      subject,
      headers: { 'Message-ID': `<${Math.random().toString(36).slice(2)}@phone.example.test>` },
    });
    const send = () =>
      device.send('SendMail', mime, { query: '&SaveInSent=T', headers: { 'Content-Type': 'message/rfc822' } });

    const fault = proxy!.arm({ upstreamLine: /\r\n\.\r\n/, deliver: true, action: 'reset' });
    const first = await send();
    expect(fault.hasFired).toBe(true);
    expect(first.status).toBe(200);
    await waitForMessage(services, recipient, (m) => m.subject === subject);
    // The phone did not hear the answer either and sends the same message again.
    expect((await send()).status).toBe(200);
    expect(await countAfter(services, recipient, subject)).toBe(1);
    expect((await readFolder(services, user, 'Sent')).filter((m) => m.email.subject === subject)).toHaveLength(1);
  });
});
