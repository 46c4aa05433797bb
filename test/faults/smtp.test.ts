/**
 * The SMTP connection to the real Postfix reset in the middle of SendMail (test/faults/proxy.ts): the device gets
 * Status 111 (server error, retry later), and its retry with the same ClientId sends the message exactly once, with
 * one copy in Sent.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { subjects, TestDevice, testServer, type TestServer } from '../device/device.ts';
import { compose, composeStatus } from '../e2e/mail/compose-helpers.ts';
import { createUser, listMessages, makeMessage, waitForMessage } from '../services/seed.ts';
import { expectMailConverged, syncToEnd } from './converge.ts';
import { startFaultProxy, type FaultProxy } from './proxy.ts';

const services = inject('services');
let proxy: FaultProxy | undefined;
let server: TestServer;

beforeAll(async () => {
  if (!services.smtp) return;
  proxy = await startFaultProxy(services.smtp);
  server = testServer(services, {
    SMTP_HOST: proxy.host,
    SMTP_PORT: String(proxy.port),
    SMTP_SECURE: 'false',
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
