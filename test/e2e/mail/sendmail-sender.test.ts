/**
 * The user sends as themselves only, against the real Postfix (which, as configured here, takes any sender from
 * loopback without a login, like a relay with SMTP_AUTH=none): a From, Sender or envelope sender that is not one of
 * the user's addresses is refused (Status 120, HTTP 500 below 14.0) and nothing is sent; an alias from SENDER_ALIASES
 * is the user's own.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { TestDevice, testServer } from '../../device/device.ts';
import { createUser, makeMessage } from '../../services/seed.ts';
import { compose, composeStatus, countAfter, readFolder, waitForStored } from './compose-helpers.ts';

const services = inject('services');

describe('SendMail as someone else', () => {
  it('refuses a From, a Sender or (12.x) a raw message that is not from the user; sends from an alias', async () => {
    expect(services.smtp, services.smtpSkipReason ?? '').not.toBeNull();
    const [alice, bob] = [createUser(services), createUser(services)];
    const alias = `alias-${randomBytes(3).toString('hex')}@example.test`;
    const server = testServer(services, {
      PROVISIONING: 'loose',
      SMTP_AUTH: 'none',
      SENDER_ALIASES: `someone@example.test=x@example.test; ${alice.email}=${alias}`,
    });
    const device = new TestDevice(server, alice);
    await device.folderSync();
    const title = (what: string): string => `${what} ${randomBytes(4).toString('hex')}`;

    const forged = title('Forged');
    const asBoss = makeMessage({ from: 'The Boss <boss@example.test>', to: bob.email, subject: forged, text: 'x\n' });
    expect(composeStatus(await compose(device, 'SendMail', asBoss))).toBe(120);
    const sender = title('Sender');
    const viaSender = makeMessage({
      from: alice.email,
      to: bob.email,
      subject: sender,
      text: 'x\n',
      headers: { Sender: 'boss@example.test' },
    });
    expect(composeStatus(await compose(device, 'SendMail', viaSender))).toBe(120);
    // Another user's alias is not hers.
    const other = makeMessage({ from: 'x@example.test', to: bob.email, subject: title('Other alias'), text: 'x\n' });
    expect(composeStatus(await compose(device, 'SendMail', other))).toBe(120);

    const old = new TestDevice(server, alice, undefined, '12.1');
    await old.folderSync();
    const raw = await old.send('SendMail', asBoss, { headers: { 'Content-Type': 'message/rfc822' } });
    expect(raw.status).toBe(500);

    const fromAlias = title('Alias');
    const viaAlias = makeMessage({
      from: `Alice <${alias.toUpperCase()}>`,
      to: bob.email,
      subject: fromAlias,
      text: 'x\n',
    });
    expect(composeStatus(await compose(device, 'SendMail', viaAlias))).toBeUndefined();
    await waitForStored(services, bob, (m) => m.email.subject === fromAlias);
    expect(await countAfter(services, bob, forged, 500)).toBe(0);
    expect((await readFolder(services, bob)).map((m) => m.email.subject)).toEqual([fromAlias]);
    expect(server.logs.some((e) => JSON.stringify(e).includes('not one of the user'))).toBe(true);
  });
});
