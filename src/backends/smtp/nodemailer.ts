/**
 * The MailSubmitter on nodemailer's SMTP client (Node, Lambda): one connection per message, the user's login when
 * the settings and the server allow it (see SmtpSettings.auth), never a password over an unencrypted connection.
 *
 * nodemailer's SMTPConnection rather than its transport, so that this module decides when to log in: the transport
 * logs in whenever the server offers AUTH, also over plain TCP. Logging is off: nodemailer's debug log would carry
 * the AUTH exchange.
 */
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { type Duplex, Readable } from 'node:stream';
import type SMTPConnection from 'nodemailer/lib/smtp-connection';
import {
  classifyReply,
  enhancedCodeOf,
  SubmissionError,
  type MailSubmitter,
  type SmtpEnvelope,
  type SmtpLogin,
  type SmtpSettings,
  type SubmissionResult,
} from './types.ts';

const CONNECTION_TIMEOUT_MS = 10_000;
const GREETING_TIMEOUT_MS = 10_000;
/** Idle time allowed on the socket: generous, since a large message's DATA may take the server a while to accept. */
const SOCKET_TIMEOUT_MS = 120_000;

/** nodemailer's error fields that say what went wrong (NodemailerError). */
interface SmtpClientError extends Error {
  code?: string;
  recipient?: string;
  command?: string;
  response?: string;
  responseCode?: number;
  rejectedErrors?: SmtpClientError[];
}

/** What nodemailer's send answers (SMTPConnection.SentMessageInfo, with the replies to refused recipients). */
interface SmtpSendInfo {
  accepted: string[];
  rejected: string[];
  rejectedErrors?: SmtpClientError[];
  response: string;
}

/** How far a submission got: 'sent' once the whole message, terminating dot included, was written. */
type SubmitStage = 'connect' | 'auth' | 'send' | 'sent';

/** A connection opened for nodemailer, and whether it is encrypted already (then nodemailer does no STARTTLS). */
export interface SmtpConnectionSocket {
  socket: Duplex;
  secured: boolean;
}

export interface NodemailerSubmitterOptions {
  /**
   * Opens the connection itself, for runtimes where nodemailer's own node:net and node:tls do not work as they
   * should (workerd: cloudflare.ts). Its errors are nodemailer's kind (`code`, and the SMTP reply if any).
   */
  openConnection?: (settings: SmtpSettings) => Promise<SmtpConnectionSocket>;
  /** Extra certificate authorities to trust (PEM), besides the system's: tests, private CAs. */
  ca?: string;
}

export function nodemailerSubmitter(settings: SmtpSettings, options: NodemailerSubmitterOptions = {}): MailSubmitter {
  return { submit: (login, envelope, message) => submit(settings, options, login, envelope, message) };
}

async function submit(
  settings: SmtpSettings,
  options: NodemailerSubmitterOptions,
  login: SmtpLogin,
  envelope: SmtpEnvelope,
  message: Uint8Array,
): Promise<SubmissionResult> {
  // Loaded on the first submission: a process that only syncs never reads nodemailer's SMTP client.
  const { default: SMTPConnection } = await import('nodemailer/lib/smtp-connection');
  let opened: SmtpConnectionSocket | undefined;
  try {
    opened = await options.openConnection?.(settings);
  } catch (err) {
    throw toSubmissionError(err, 'connect');
  }
  const secure = opened ? opened.secured : settings.secure;
  const connection = new SMTPConnection({
    host: settings.host,
    port: settings.port,
    secure,
    ...(opened ? { connection: opened.socket as unknown as Socket, secured: opened.secured } : {}),
    ...(options.ca ? { tls: { ca: options.ca } } : {}),
    // Without TLS yet: STARTTLS whenever the server offers it, and insisted on when a login must happen.
    requireTLS: !secure && settings.auth === 'required',
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    logger: false,
    debug: false,
    transactionLog: false,
  });
  // Socket and protocol errors arrive as events; every step below races against them.
  const broken = new Promise<never>((_, reject) => {
    connection.on('error', reject);
    connection.on('end', () =>
      reject(Object.assign(new Error('the SMTP server closed the connection'), { code: 'ECONNECTION' })),
    );
  });
  broken.catch(() => undefined);
  const step = <T>(start: (done: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> =>
    Promise.race([
      broken,
      new Promise<T>((resolve, reject) => start((err, value) => (err ? reject(err) : resolve(value as T)))),
    ]);

  let stage: SubmitStage = 'connect';
  try {
    await step<void>((done) => connection.connect((err) => done(err)));
    if (settings.auth !== 'none') {
      const canLogin = connection.allowsAuth && connection.secure;
      if (canLogin) {
        stage = 'auth';
        await step<boolean>((done) =>
          connection.login(
            login.accessToken !== undefined
              ? xoauth2Login(login.login, login.accessToken)
              : { user: login.login, pass: login.password },
            done,
          ),
        );
      } else if (connection.allowsAuth) {
        // The server wants a login and offers it only in clear text: neither the password over plain TCP nor, in
        // 'optional' mode, a fallback to sending without the user's login (a relay would take any sender then).
        throw new SubmissionError('auth', 'the SMTP server offers its login only without encryption; not sent');
      } else if (settings.auth === 'required') {
        throw new SubmissionError(
          'auth',
          connection.secure
            ? 'the SMTP server offers no login (SMTP_AUTH=required)'
            : 'the SMTP connection is not encrypted; no login over plain text (SMTP_AUTH=required)',
        );
      }
    }
    stage = 'send';
    const body = Readable.from([Buffer.from(message.buffer, message.byteOffset, message.byteLength)]);
    // nodemailer pipes the message into its DATA stream, which ends once the terminating `.` went to the socket:
    // from then on the server may have the whole message, and a broken connection leaves the outcome unknown.
    const pipe = body.pipe.bind(body);
    body.pipe = <T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T => {
      (destination as unknown as Readable).once('end', () => (stage = 'sent'));
      return pipe(destination, options);
    };
    const info = await step<SmtpSendInfo>((done) =>
      connection.send({ from: envelope.from, to: envelope.to, size: message.length }, body, done),
    );
    connection.quit();
    const rejectedReplies = (info.rejectedErrors ?? []).flatMap((e) =>
      e.recipient ? [{ address: e.recipient, reply: (e.response ?? e.message).replace(/\s+/g, ' ') }] : [],
    );
    return {
      accepted: info.accepted,
      rejected: info.rejected,
      ...(rejectedReplies.length ? { rejectedReplies } : {}),
      response: info.response,
    };
  } catch (err) {
    connection.close();
    throw toSubmissionError(err, stage);
  }
}

/**
 * AUTH XOAUTH2 with a token the device gave us: nodemailer's `oauth2` hook, reduced to the one token. nodemailer
 * asks again with `renew` after a refusal; there is nothing to renew with here, so that is the refusal.
 */
function xoauth2Login(user: string, accessToken: string): SMTPConnection.AuthenticationOAuth2 {
  const oauth2 = {
    getToken(renew: boolean, callback: (err: Error | null, token?: string) => void): void {
      if (renew) callback(Object.assign(new Error('the access token was refused'), { code: 'EAUTH' }));
      else callback(null, accessToken);
    },
    buildXOAuth2Token(token: string): string {
      return Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`, 'utf8').toString('base64');
    },
  };
  return { oauth2 } as unknown as SMTPConnection.AuthenticationOAuth2;
}

/** nodemailer's error (or ours) as a SubmissionError; the message names the SMTP reply, never the credentials. */
function toSubmissionError(err: unknown, stage: SubmitStage): SubmissionError {
  if (err instanceof SubmissionError) return err;
  const e = err as SmtpClientError;
  const code = e.code ?? '';
  const description = e.response ?? e.message;
  // The message was out, its reply never came (connection reset, closed, timed out): maybe taken, maybe not.
  if (stage === 'sent' && e.responseCode === undefined)
    return new SubmissionError('unconfirmed', `SMTP: no reply to the message (${code || 'error'}: ${e.message})`);
  if (stage === 'auth' || code === 'EAUTH' || code === 'ENOAUTH') {
    return new SubmissionError('auth', `SMTP login refused: ${e.response ?? code}`, {
      ...(e.responseCode !== undefined ? { responseCode: e.responseCode } : {}),
    });
  }
  // STARTTLS insisted on (SMTP_AUTH=required without implicit TLS) but not offered, or refused: no safe login.
  if (code === 'ETLS' && e.responseCode !== undefined) {
    return new SubmissionError('auth', `SMTP: no STARTTLS for the login (${e.message})`);
  }
  // The server announced a SIZE limit the message is over: nodemailer refuses before MAIL FROM.
  if (code === 'EMESSAGE' && e.responseCode === undefined && /size/i.test(e.message)) {
    return new SubmissionError('size', `SMTP: ${e.message}`);
  }
  // No SMTP reply: the connection failed (refused, timed out, TLS, DNS) or broke.
  if (e.responseCode === undefined) {
    return new SubmissionError('connection', `SMTP ${code || 'error'}: ${e.message}`, { transient: true });
  }
  // Every recipient refused: judge by the servers' replies to RCPT.
  const rejected = e.rejectedErrors ?? [];
  const smtpStage =
    e.command?.startsWith('RCPT') || rejected.length > 0 ? 'rcpt' : e.command?.startsWith('MAIL') ? 'mail' : 'data';
  const failure = classifyReply(e.responseCode, e.response, smtpStage);
  const recipientAddress =
    failure === 'recipients' &&
    rejected.length > 0 &&
    rejected.every((r) => /^\d{3}[ -]5\.1\.\d+/.test(r.response ?? ''));
  const enhancedCode = enhancedCodeOf(e.response);
  return new SubmissionError(failure, `SMTP ${e.command ?? ''} refused: ${description}`.replace(/\s+/g, ' '), {
    responseCode: e.responseCode,
    ...(enhancedCode ? { enhancedCode } : {}),
    ...(recipientAddress ? { recipientAddress } : {}),
    transient: e.responseCode >= 400 && e.responseCode < 500,
  });
}
