// An in-process SMTP server (npm smtp-server) that keeps what it receives: for the submission client's own tests,
// where Postfix cannot show what a client did (which login, over TLS or not) or be made to refuse on cue.
// TLS uses the throwaway CA of test/fixtures/tls.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

import { TEST_CA_PATH, TLS_CERT_PATH, TLS_KEY_PATH } from './tls.ts';

export { TEST_CA_PATH };
export const TEST_CA = readFileSync(TEST_CA_PATH, 'utf8');
const KEY = readFileSync(TLS_KEY_PATH);
const CERT = readFileSync(TLS_CERT_PATH);
/** A self-signed localhost certificate no test process trusts (the test CA did not sign it). */
const UNTRUSTED_KEY = readFileSync(new URL('../fixtures/tls/untrusted-localhost.key', import.meta.url));
const UNTRUSTED_CERT = readFileSync(new URL('../fixtures/tls/untrusted-localhost.pem', import.meta.url));

export interface SunkMessage {
  from: string;
  to: string[];
  data: Buffer;
  /** The login the client used, if any. */
  user: string | undefined;
  /** Whether the session was encrypted (implicit TLS or STARTTLS). */
  secure: boolean;
}

export interface SinkOptions {
  /** 'implicit': TLS from the first byte (465); 'starttls': offered; 'none': plain TCP only. */
  tls: 'implicit' | 'starttls' | 'none';
  /** Offer AUTH; with `requireAuth` a message without login is refused (530). The one good login: user/password. */
  auth?: { user: string; password: string; requireAuth?: boolean; allowInsecure?: boolean };
  /** Refuse a recipient: the reply for RCPT TO (e.g. `550 5.1.1 no such user`), or undefined to take it. */
  rcpt?: (address: string) => string | undefined;
  /** Refuse the message after DATA with this reply. */
  data?: (message: Buffer) => string | undefined;
  /** The SIZE limit to announce. */
  size?: number;
  /** Serve a self-signed certificate nobody trusts instead of the test CA's. */
  untrusted?: boolean;
}

export interface SmtpSink {
  port: number;
  messages: SunkMessage[];
  close(): Promise<void>;
}

/** `550 5.1.1 text` as the error smtp-server turns into that reply. */
function replyError(reply: string): Error {
  const match = /^(\d{3})\s+(.*)$/.exec(reply);
  return Object.assign(new Error(match?.[2] ?? reply), { responseCode: Number(match?.[1] ?? 550) });
}

/**
 * The queue id the sink answers with: the SHA-256 of the message as received, so a client can check its bytes arrived.
 */
export function queueIdOf(data: Buffer | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function startSmtpSink(options: SinkOptions): Promise<SmtpSink> {
  const messages: SunkMessage[] = [];
  const config: SMTPServerOptions = {
    logger: false,
    secure: options.tls === 'implicit',
    key: options.untrusted ? UNTRUSTED_KEY : KEY,
    cert: options.untrusted ? UNTRUSTED_CERT : CERT,
    ...(options.tls === 'none' ? { disabledCommands: ['STARTTLS'] } : {}),
    ...(options.size ? { size: options.size } : {}),
    authOptional: !options.auth?.requireAuth,
    allowInsecureAuth: options.auth?.allowInsecure ?? false,
    ...(options.auth ? {} : { disabledCommands: options.tls === 'none' ? ['STARTTLS', 'AUTH'] : ['AUTH'] }),
    onAuth(auth, _session, callback) {
      if (options.auth && auth.username === options.auth.user && auth.password === options.auth.password)
        callback(null, { user: auth.username });
      else callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onRcptTo(address, _session, callback) {
      const refusal = options.rcpt?.(address.address);
      callback(refusal ? replyError(refusal) : null);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const data = Buffer.concat(chunks);
        const refusal = options.data?.(data);
        if (refusal) return callback(replyError(refusal));
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          data,
          user: session.user as string | undefined,
          secure: session.secure,
        });
        callback(null, `queued as ${queueIdOf(data)}`);
      });
    },
  };
  const server = new SMTPServer(config);
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return { port, messages, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
