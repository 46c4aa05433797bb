/**
 * The nodemailer submitter against an in-process SMTP server: when it logs in (and when it must not), TLS, and how
 * the server's refusals come back as SubmissionErrors.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  queueIdOf,
  startSmtpSink,
  TEST_CA,
  type SinkOptions,
  type SmtpSink,
} from '../../../test/services/smtp-sink.ts';
import { nodemailerSubmitter } from './nodemailer.ts';
import { classifyReply, SubmissionError, type SmtpSettings } from './types.ts';

const LOGIN = { login: 'alice@example.test', password: 'alice-secret' };
/** The sink's account for LOGIN. */
const ACCOUNT = { user: LOGIN.login, password: LOGIN.password };
const MESSAGE = new TextEncoder().encode(
  'From: alice@example.test\r\nTo: bob@example.test\r\nSubject: Hi\r\n\r\nHello.\r\n.leading dot\r\n',
);
const ENVELOPE = { from: 'alice@example.test', to: ['bob@example.test'] };

const sinks: SmtpSink[] = [];
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
});

async function sink(options: SinkOptions): Promise<SmtpSink> {
  const s = await startSmtpSink(options);
  sinks.push(s);
  return s;
}

function settings(s: SmtpSink, extra: Partial<SmtpSettings> = {}): SmtpSettings {
  return { host: 'localhost', port: s.port, secure: false, auth: 'optional', ...extra };
}

async function failure(p: Promise<unknown>): Promise<SubmissionError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SubmissionError);
  return err as SubmissionError;
}

describe('nodemailer submitter: logging in', () => {
  it('sends without a login to a server that offers none, the message byte for byte', async () => {
    const s = await sink({ tls: 'none' });
    const result = await nodemailerSubmitter(settings(s)).submit(LOGIN, ENVELOPE, MESSAGE);
    expect(result.accepted).toEqual(['bob@example.test']);
    expect(result.response).toContain(queueIdOf(MESSAGE));
    expect(s.messages[0]).toMatchObject({
      from: 'alice@example.test',
      to: ['bob@example.test'],
      user: undefined,
      secure: false,
    });
  });

  it('upgrades with STARTTLS when offered and logs in over it', async () => {
    const s = await sink({ tls: 'starttls', auth: { ...ACCOUNT, requireAuth: true } });
    await nodemailerSubmitter(settings(s), { ca: TEST_CA }).submit(LOGIN, ENVELOPE, MESSAGE);
    expect(s.messages[0]).toMatchObject({ user: LOGIN.login, secure: true });
  });

  it('logs in over implicit TLS; a refused login is an auth failure', async () => {
    const s = await sink({ tls: 'implicit', auth: { ...ACCOUNT, requireAuth: true } });
    await nodemailerSubmitter(settings(s, { secure: true, auth: 'required' }), { ca: TEST_CA }).submit(
      LOGIN,
      ENVELOPE,
      MESSAGE,
    );
    expect(s.messages[0]).toMatchObject({ user: LOGIN.login, secure: true });
    const refused = await failure(
      nodemailerSubmitter(settings(s, { secure: true }), { ca: TEST_CA }).submit(
        { ...LOGIN, password: 'wrong' },
        ENVELOPE,
        MESSAGE,
      ),
    );
    expect(refused.failure).toBe('auth');
    expect(refused.message).not.toContain('wrong');
    expect(s.messages).toHaveLength(1);
  });

  it('never sends the password over plain TCP: optional skips the login, required refuses to send', async () => {
    const s = await sink({ tls: 'none', auth: { ...ACCOUNT, requireAuth: true, allowInsecure: true } });
    // Optional: no login in clear text, so this server (which wants one) refuses the message.
    expect((await failure(nodemailerSubmitter(settings(s)).submit(LOGIN, ENVELOPE, MESSAGE))).failure).toBe('auth');
    // Required: STARTTLS is insisted on; this server has none.
    expect(
      (await failure(nodemailerSubmitter(settings(s, { auth: 'required' })).submit(LOGIN, ENVELOPE, MESSAGE))).failure,
    ).toBe('auth');
    expect(s.messages).toEqual([]);
  });

  it('optional never falls back to sending without the login when the server offers one only in clear text', async () => {
    // A relay that would take the message without a login (any sender) but offers AUTH over plain TCP only.
    const s = await sink({ tls: 'none', auth: { ...ACCOUNT, allowInsecure: true } });
    expect((await failure(nodemailerSubmitter(settings(s)).submit(LOGIN, ENVELOPE, MESSAGE))).failure).toBe('auth');
    expect(s.messages).toEqual([]);
  });

  it("'required' refuses a server that offers no login; 'none' never logs in", async () => {
    const noAuth = await sink({ tls: 'implicit' });
    const refused = await failure(
      nodemailerSubmitter(settings(noAuth, { secure: true, auth: 'required' }), { ca: TEST_CA }).submit(
        LOGIN,
        ENVELOPE,
        MESSAGE,
      ),
    );
    expect(refused.failure).toBe('auth');
    expect(noAuth.messages).toEqual([]);

    const withAuth = await sink({ tls: 'implicit', auth: ACCOUNT });
    await nodemailerSubmitter(settings(withAuth, { secure: true, auth: 'none' }), { ca: TEST_CA }).submit(
      LOGIN,
      ENVELOPE,
      MESSAGE,
    );
    expect(withAuth.messages[0]).toMatchObject({ user: undefined, secure: true });
  });

  it('checks the certificate: a server the system does not trust is a connection failure', async () => {
    const s = await sink({ tls: 'implicit', untrusted: true });
    expect(
      (await failure(nodemailerSubmitter(settings(s, { secure: true })).submit(LOGIN, ENVELOPE, MESSAGE))).failure,
    ).toBe('connection');
  });
});

describe('nodemailer submitter: refusals', () => {
  it('every recipient refused with 5.1.x: recipients, by address; some refused: sent to the others', async () => {
    const s = await sink({ tls: 'none', rcpt: (a) => (a.startsWith('nobody') ? '550 5.1.1 no such user' : undefined) });
    const all = await failure(
      nodemailerSubmitter(settings(s)).submit(LOGIN, { ...ENVELOPE, to: ['nobody@example.test'] }, MESSAGE),
    );
    expect(all).toMatchObject({
      failure: 'recipients',
      details: { recipientAddress: true, responseCode: 550, enhancedCode: '5.1.1' },
    });
    const some = await nodemailerSubmitter(settings(s)).submit(
      LOGIN,
      { ...ENVELOPE, to: ['bob@example.test', 'nobody@example.test'] },
      MESSAGE,
    );
    expect(some).toMatchObject({ accepted: ['bob@example.test'], rejected: ['nobody@example.test'] });
  });

  it('a policy refusal of every recipient is recipients, not by address', async () => {
    const s = await sink({ tls: 'none', rcpt: () => '554 5.7.1 Relay access denied' });
    const err = await failure(nodemailerSubmitter(settings(s)).submit(LOGIN, ENVELOPE, MESSAGE));
    expect(err.failure).toBe('recipients');
    expect(err.details.recipientAddress).toBeUndefined();
  });

  it('size, quota and content refusals after DATA', async () => {
    const replies = ['552 5.3.4 Message too big', '452 4.2.2 Mailbox full', '550 5.7.1 Spam detected'];
    const failures = [];
    for (const reply of replies) {
      const s = await sink({ tls: 'none', data: () => reply });
      failures.push((await failure(nodemailerSubmitter(settings(s)).submit(LOGIN, ENVELOPE, MESSAGE))).failure);
    }
    expect(failures).toEqual(['size', 'quota', 'rejected']);
  });

  it('a SIZE the message is over is refused before MAIL FROM', async () => {
    const s = await sink({ tls: 'none', size: 50 });
    expect((await failure(nodemailerSubmitter(settings(s)).submit(LOGIN, ENVELOPE, MESSAGE))).failure).toBe('size');
  });

  it('an unreachable server is a transient connection failure', async () => {
    const err = await failure(
      nodemailerSubmitter({ host: '127.0.0.1', port: 1, secure: false, auth: 'optional' }).submit(
        LOGIN,
        ENVELOPE,
        MESSAGE,
      ),
    );
    expect(err.failure).toBe('connection');
    expect(err.details.transient).toBe(true);
  });
});

describe('classifyReply', () => {
  it('sorts replies by code and enhanced code', () => {
    expect(classifyReply(535, '535 5.7.8 Authentication credentials invalid', 'auth')).toBe('auth');
    expect(classifyReply(530, '530 5.7.0 Authentication required', 'mail')).toBe('auth');
    expect(classifyReply(552, '552 Message size exceeds fixed limit', 'data')).toBe('size');
    expect(classifyReply(552, '552 5.2.2 Mailbox full', 'rcpt')).toBe('quota');
    expect(classifyReply(450, '450 4.7.1 Sending rate limit exceeded', 'mail')).toBe('quota');
    expect(classifyReply(421, '421 4.3.2 Service shutting down', 'data')).toBe('connection');
    expect(classifyReply(501, '501 5.1.3 Bad recipient address syntax', 'rcpt')).toBe('recipients');
    expect(classifyReply(553, '553 5.7.1 Sender address rejected: not owned by user', 'mail')).toBe('rejected');
  });
});
