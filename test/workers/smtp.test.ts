/**
 * SMTP submission inside workerd (src/backends/smtp/cloudflare.ts): nodemailer's client on a cloudflare:sockets
 * connection (STARTTLS by the socket's startTls()), against the SMTP servers of smtp-global-setup.ts (in Node). The
 * servers answer with the SHA-256 of what they received, so the test sees that the message arrived byte for byte;
 * the TLS ones take only the right login.
 *
 * Every test fails on any process warning (a listener leak is one: MaxListenersExceededWarning) or error nobody
 * caught while it ran: workerd's node:net once added a 'timeout' listener per read and write of the socket.
 */
import process from 'node:process';
import { afterEach, beforeEach, inject } from 'vitest';
import { describe, expect, it } from 'vitest';
import { SubmissionError, type SmtpSettings } from '../../src/backends/smtp/types.ts';
import { openSmtpConnection, workerdSubmitter } from '../../src/backends/smtp/cloudflare.ts';
import { nodemailerSubmitter } from '../../src/backends/smtp/nodemailer.ts';
import { useBackendSockets } from '../../src/backends/sockets.ts';
import { composeSmart, prepareOutgoing } from '../../src/items/outgoing.ts';
import { openCloudflareSocket } from '../../src/runtimes/cloudflare/sockets.ts';

// As the Worker does at start (src/runtimes/cloudflare/worker.ts).
useBackendSockets(openCloudflareSocket);

const sinks = inject('smtpSinks');
/** The sinks' account as the submitter takes a user's credentials. */
const login = { login: sinks.login.user, password: sinks.login.password };

// What the isolate reported outside any answer while a test ran.
let problems: string[] = [];
const onWarning = (w: Error): void => {
  problems.push(`warning ${w.name}: ${w.message}`);
};
const onUncaught = (e: unknown): void => {
  problems.push(`uncaught ${String(e)}`);
};
beforeEach(() => {
  problems = [];
  process.on('warning', onWarning);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
});
afterEach(async () => {
  // A warning is emitted on the next tick after the listener that crossed the limit.
  await new Promise((r) => setTimeout(r, 50));
  process.off('warning', onWarning);
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
  expect(problems).toEqual([]);
});

/** The workerd submitter, keeping the connections it opens for the test to look at. */
function watchedSubmitter(settings: SmtpSettings, sockets: { listenerCount(event: string): number }[]) {
  return nodemailerSubmitter(settings, {
    openConnection: async (s) => {
      const opened = await openSmtpConnection(s);
      sockets.push(opened.socket);
      return opened;
    },
  });
}

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
    }).submit(login, envelope, wire);
    expect(result.response).toContain(await sha256(wire));
  });

  it('implicit TLS (465) with the login', async () => {
    const { wire, envelope } = await message();
    const result = await workerdSubmitter({
      host: 'localhost',
      port: sinks.implicitTls,
      secure: true,
      auth: 'required',
    }).submit(login, envelope, wire);
    expect(result.response).toContain(await sha256(wire));
  });

  it('STARTTLS (587) with the login', async () => {
    const { wire, envelope } = await message();
    const result = await workerdSubmitter({
      host: 'localhost',
      port: sinks.starttls,
      secure: false,
      auth: 'required',
    }).submit(login, envelope, wire);
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
    }).submit(login, { ...envelope, to }, wire);
    expect(result.accepted).toHaveLength(60);
  });

  it('a 2 MB message to 60 recipients keeps one idle timer and no extra listener per write', async () => {
    const { envelope } = await message();
    // Many lines: nodemailer writes DATA in chunks, each one a write on the socket.
    const wire = new TextEncoder().encode(
      `From: alice@example.test\r\nTo: bob@example.test\r\nSubject: big\r\n\r\n${'x'.repeat(998).concat('\r\n').repeat(2000)}`,
    );
    const to = Array.from({ length: 60 }, (_, i) => `r${i}@example.test`);
    const sockets: { listenerCount(event: string): number }[] = [];
    const settings = { host: 'localhost', port: sinks.plain, secure: false, auth: 'optional' } as const;
    const result = await watchedSubmitter(settings, sockets).submit(login, { ...envelope, to }, wire);
    expect(result.accepted).toHaveLength(60);
    expect(result.response).toContain(await sha256(wire));
    expect(sockets).toHaveLength(1);
    // nodemailer's own listener at most; on workerd's node:net one more per read and write (over a hundred here).
    expect(sockets[0]!.listenerCount('timeout')).toBeLessThanOrEqual(1);
  });

  it('STARTTLS: a 2 MB message to 60 recipients, no listener-leak warning', async () => {
    const { envelope } = await message();
    const wire = new TextEncoder().encode(
      `From: alice@example.test\r\nTo: bob@example.test\r\nSubject: big\r\n\r\n${'y'.repeat(998).concat('\r\n').repeat(2000)}`,
    );
    const to = Array.from({ length: 60 }, (_, i) => `s${i}@example.test`);
    const result = await workerdSubmitter({
      host: 'localhost',
      port: sinks.starttls,
      secure: false,
      auth: 'required',
    }).submit(login, { ...envelope, to }, wire);
    expect(result.accepted).toHaveLength(60);
    expect(result.response).toContain(await sha256(wire));
  });

  it('a wrong password is an auth failure', async () => {
    const { wire, envelope } = await message();
    const err = await workerdSubmitter({ host: 'localhost', port: sinks.implicitTls, secure: true, auth: 'required' })
      .submit({ ...login, password: 'wrong' }, envelope, wire)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SubmissionError);
    expect((err as SubmissionError).failure).toBe('auth');
  });

  it('the connection breaks at DATA: a connection failure (worth retrying), nothing went out', async () => {
    const { wire, envelope } = await message();
    const settings = { host: 'localhost', port: sinks.cutAtData, secure: false, auth: 'none' } as const;
    const err = await workerdSubmitter(settings)
      .submit(login, envelope, wire)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SubmissionError);
    expect((err as SubmissionError).failure).toBe('connection');
  });

  it('the connection breaks after the whole message, before the reply: outcome unknown, not "failed"', async () => {
    // src/sending/ keeps the ClientId marker as "outcome unknown" for this, so a retry does not send a second copy.
    const { wire, envelope } = await message();
    const settings = { host: 'localhost', port: sinks.cutAfterMessage, secure: false, auth: 'none' } as const;
    const err = await workerdSubmitter(settings)
      .submit(login, envelope, wire)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SubmissionError);
    expect((err as SubmissionError).failure).toBe('unconfirmed');
  });
});
