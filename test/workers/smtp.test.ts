/**
 * SMTP submission inside workerd (src/backends/smtp/cloudflare.ts): nodemailer's client on a socket opened by host
 * name, against the SMTP servers of smtp-global-setup.ts (in Node). The servers answer with the SHA-256 of what they
 * received, so the test sees that the message arrived byte for byte; the TLS ones take only the right login.
 */
import { inject } from 'vitest';
import { describe, expect, it } from 'vitest';
import { SubmissionError } from '../../src/backends/smtp/types.ts';
import { workerdSubmitter } from '../../src/backends/smtp/cloudflare.ts';
import { composeSmart, prepareOutgoing } from '../../src/items/outgoing.ts';

const sinks = inject('smtpSinks');

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A forward built with MailComposer and made ready with prepareOutgoing, as SmartForward does it. */
async function message(): Promise<{ wire: Uint8Array; envelope: { from: string; to: string[] } }> {
  const encode = (s: string): Uint8Array => new TextEncoder().encode(s);
  const device = encode(
    'From: alice@example.test\r\nTo: bob@example.test\r\nBcc: carol@example.test\r\nSubject: Fwd: plans\r\n\r\nSee below.\r\n',
  );
  const original = encode(
    'From: dave@example.test\r\nTo: alice@example.test\r\nSubject: plans\r\nMessage-ID: <plans@example.test>\r\n\r\nThe plans.\r\n.dot line\r\n',
  );
  return prepareOutgoing(await composeSmart('forward', device, original), { user: 'alice@example.test' });
}

describe('SMTP submission in workerd', () => {
  it('plain TCP without login', async () => {
    const { wire, envelope } = await message();
    expect(envelope.to.sort()).toEqual(['bob@example.test', 'carol@example.test']);
    const result = await workerdSubmitter({
      host: 'localhost',
      port: sinks.plain,
      secure: false,
      auth: 'optional',
    }).submit(sinks.login, envelope, wire);
    expect(result.response).toContain(await sha256(wire));
  });

  it('implicit TLS (465) with the login', async () => {
    const { wire, envelope } = await message();
    const result = await workerdSubmitter({
      host: 'localhost',
      port: sinks.implicitTls,
      secure: true,
      auth: 'required',
    }).submit(sinks.login, envelope, wire);
    expect(result.response).toContain(await sha256(wire));
  });

  it('STARTTLS (587) with the login', async () => {
    const { wire, envelope } = await message();
    const result = await workerdSubmitter({
      host: 'localhost',
      port: sinks.starttls,
      secure: false,
      auth: 'required',
    }).submit(sinks.login, envelope, wire);
    expect(result.response).toContain(await sha256(wire));
  });

  it('a message to 60 recipients (one command each on the same socket)', async () => {
    const { wire, envelope } = await message();
    const to = Array.from({ length: 60 }, (_, i) => `r${i}@example.test`);
    const result = await workerdSubmitter({
      host: 'localhost',
      port: sinks.plain,
      secure: false,
      auth: 'optional',
    }).submit(sinks.login, { ...envelope, to }, wire);
    expect(result.accepted).toHaveLength(60);
  });

  it('a wrong password is an auth failure', async () => {
    const { wire, envelope } = await message();
    const err = await workerdSubmitter({ host: 'localhost', port: sinks.implicitTls, secure: true, auth: 'required' })
      .submit({ ...sinks.login, password: 'wrong' }, envelope, wire)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SubmissionError);
    expect((err as SubmissionError).failure).toBe('auth');
  });
});
