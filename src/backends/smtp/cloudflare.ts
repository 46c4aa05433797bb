/**
 * SMTP submission inside workerd (Cloudflare Workers): nodemailer's SMTP client on a connection of the runtime's
 * backend sockets (src/backends/sockets.ts; cloudflare:sockets there, set by src/runtimes/cloudflare/worker.ts), not
 * on workerd's node:net and node:tls. Those add a 'timeout' listener on every read and write of a socket (issue 16),
 * and node:tls cannot upgrade a node:net socket with STARTTLS inside workerd.
 *
 * So STARTTLS happens here, before nodemailer speaks: greeting, EHLO, STARTTLS (RFC 3207 §4) and the socket's own
 * TLS upgrade; then nodemailer gets the encrypted connection as one already secured, with the server's greeting
 * handed to it again, and starts over with EHLO as RFC 3207 §4.2 asks after the handshake. Everything after that
 * (the login, the envelope, DATA and its dot-stuffing, the replies that decide "sent", "refused" or "outcome
 * unknown") is nodemailer's, as on Node (nodemailer.ts).
 *
 * workerd checks the certificate against the host name it connected to, with its own roots; a submission uses one of
 * the 6 simultaneous outbound connections a Worker request may have, beside the IMAP one.
 */
import { Buffer } from 'node:buffer';
import { Duplex } from 'node:stream';
import { type BackendSocket, openBackendSocket } from '../sockets.ts';
import { nodemailerSubmitter, type SmtpConnectionSocket } from './nodemailer.ts';
import type { MailSubmitter, SmtpSettings } from './types.ts';

/** How long the connection and each reply before nodemailer takes over may take (nodemailer's own are the same). */
const CONNECTION_TIMEOUT_MS = 10_000;
const REPLY_TIMEOUT_MS = 10_000;
/**
 * The EHLO name before STARTTLS: what nodemailer says too where the machine has no fully qualified name (a Worker
 * has none), an address literal (RFC 5321 §4.1.4).
 */
const EHLO_NAME = '[127.0.0.1]';

export function workerdSubmitter(settings: SmtpSettings): MailSubmitter {
  return nodemailerSubmitter(settings, { openConnection: openSmtpConnection });
}

/** An error as nodemailer's are: `code`, and the SMTP reply when there was one (toSubmissionError sorts them). */
function smtpError(message: string, code: string, reply?: SmtpReply): Error {
  return Object.assign(new Error(message), {
    code,
    ...(reply ? { responseCode: reply.code, response: reply.text } : {}),
  });
}

interface SmtpReply {
  code: number;
  /** The whole reply, lines joined by newlines. */
  text: string;
}

/**
 * The connection nodemailer is given: implicit TLS from the start when `settings.secure`; otherwise upgraded with
 * STARTTLS when the server offers it, and left plain when it does not (nodemailer then refuses what needs TLS, as on
 * Node: a login, or anything with SMTP_AUTH=required).
 */
export async function openSmtpConnection(settings: SmtpSettings): Promise<SmtpConnectionSocket> {
  const socket = await withTimeout(
    openBackendSocket({ host: settings.host, port: settings.port, tls: settings.secure ? 'implicit' : 'starttls' }),
    CONNECTION_TIMEOUT_MS,
    () => smtpError(`no connection to ${settings.host}:${settings.port} in time`, 'ETIMEDOUT'),
    (late) => late.close(),
  );
  if (settings.secure) return { socket: new BackendSocketStream(socket), secured: true };
  try {
    const replies = new ReplyReader(socket);
    const greeting = await replies.next();
    // nodemailer answers a refusing greeting (554) or anything odd itself, as on Node.
    if (greeting.code !== 220) return plain(socket, replies);
    await socket.write(Buffer.from(`EHLO ${EHLO_NAME}\r\n`));
    const ehlo = await replies.next();
    if (ehlo.code !== 250 || !/^250[ -]STARTTLS\b/im.test(ehlo.text)) return plain(socket, replies);
    await socket.write(Buffer.from('STARTTLS\r\n'));
    const go = await replies.next();
    if (go.code !== 220) throw smtpError(`STARTTLS refused: ${go.text}`, 'ETLS', go);
    // A server sends nothing between its 220 and the handshake: bytes already here were injected in clear.
    if (replies.pending.length > 0) throw smtpError('data after STARTTLS before the TLS handshake', 'ETLS');
    await socket.startTls();
    // The greeting again, so nodemailer starts as on a fresh connection: EHLO, over TLS (RFC 3207 §4.2).
    return { socket: new BackendSocketStream(socket, [replies.raw[0]!]), secured: true };
  } catch (err) {
    socket.close();
    throw err;
  }
}

/**
 * The plain connection as it is, with what was read so far handed on (greeting, EHLO reply): nodemailer reads the
 * greeting, then sends its own EHLO; a second EHLO on a connection is allowed (RFC 5321 §4.1.4), and its reply
 * comes after the first one's, which nodemailer must not see: only the greeting is passed on.
 */
function plain(socket: BackendSocket, replies: ReplyReader): SmtpConnectionSocket {
  // The EHLO reply (if one was read) is dropped; what came after it stays.
  return {
    socket: new BackendSocketStream(socket, [replies.raw[0]!, ...(replies.pending.length ? [replies.pending] : [])]),
    secured: false,
  };
}

/** SMTP replies (RFC 5321 §4.2) read from a BackendSocket; every reply within REPLY_TIMEOUT_MS. */
class ReplyReader {
  /** Bytes read and not yet part of a reply. */
  pending: Uint8Array = new Uint8Array(0);
  /** Each reply's bytes as they came. */
  readonly raw: Uint8Array[] = [];

  constructor(private readonly socket: BackendSocket) {}

  async next(): Promise<SmtpReply> {
    for (;;) {
      const reply = this.take();
      if (reply) return reply;
      const chunk = await withTimeout(this.socket.read(), REPLY_TIMEOUT_MS, () =>
        smtpError('the SMTP server did not answer in time', 'ETIMEDOUT'),
      );
      if (chunk === null) throw smtpError('the SMTP server closed the connection', 'ECONNECTION');
      this.pending = Buffer.concat([this.pending, chunk]);
    }
  }

  /** A whole reply from `pending`: lines `ddd-text` up to the last line `ddd text`. */
  private take(): SmtpReply | undefined {
    const text = Buffer.from(this.pending).toString('latin1');
    let at = 0;
    for (;;) {
      const end = text.indexOf('\r\n', at);
      if (end < 0) return undefined;
      const line = text.slice(at, end);
      at = end + 2;
      if (!/^\d{3}-/.test(line)) {
        this.raw.push(this.pending.subarray(0, at));
        this.pending = this.pending.subarray(at);
        const body = text.slice(0, at - 2);
        return { code: Number(body.slice(0, 3)) || 0, text: body.replace(/\r\n/g, '\n') };
      }
    }
  }
}

/**
 * A BackendSocket as the node:net Socket nodemailer drives: a stream, with one idle timer (`setTimeout`, re-armed on
 * every read and write, 'timeout' when it runs out). Bytes read before nodemailer took over come first.
 */
export class BackendSocketStream extends Duplex {
  private idleMs = 0;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly socket: BackendSocket,
    replay: Uint8Array[] = [],
  ) {
    super();
    for (const bytes of replay) this.push(Buffer.from(bytes));
  }

  /** Node's Socket.setTimeout: 0 turns the idle timer off. */
  setTimeout(ms: number, onTimeout?: () => void): this {
    this.idleMs = ms;
    if (onTimeout) this.once('timeout', onTimeout);
    this.rearm();
    return this;
  }

  private rearm(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer =
      this.idleMs > 0 && !this.destroyed ? setTimeout(() => this.emit('timeout'), this.idleMs) : undefined;
  }

  override _read(): void {
    // Node calls this again only after a push: one read at a time, as BackendSocket wants.
    this.socket.read().then(
      (chunk) => {
        this.rearm();
        this.push(chunk === null ? null : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      },
      (err: unknown) => this.destroy(err as Error),
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.rearm();
    this.socket.write(chunk).then(
      () => done(),
      (err: unknown) => done(err as Error),
    );
  }

  override _final(done: (err?: Error | null) => void): void {
    this.socket.close();
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    clearTimeout(this.idleTimer);
    this.idleMs = 0;
    this.socket.close();
    done(err);
  }
}

/** `work`, or `timedOut()` once `ms` passed; what `work` brings after that is handed to `late`. */
function withTimeout<T>(work: Promise<T>, ms: number, timedOut: () => Error, late?: (value: T) => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        if (late) work.then(late, () => undefined);
        reject(timedOut());
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
