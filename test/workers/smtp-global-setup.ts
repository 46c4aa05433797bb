// globalSetup of the `workers` project: SMTP servers in the vitest process (Node) for the submission test that runs
// inside workerd (smtp.test.ts): plain TCP without login, implicit TLS and STARTTLS with a required login, and two
// that break the connection: before the message (at DATA) and after the whole message, before the final reply.
// workerd, which miniflare starts after this with this process's environment, trusts the test CA through
// SSL_CERT_FILE (BoringSSL reads it); the Workers tests make no other TLS connections.
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { TestProject } from 'vitest/node';
import { startSmtpSink, TEST_CA_PATH, type SmtpSink } from '../services/smtp-sink.ts';

export const SMTP_LOGIN = { user: 'alice@example.test', password: 'alice-secret' };

declare module 'vitest' {
  export interface ProvidedContext {
    smtpSinks: {
      plain: number;
      implicitTls: number;
      starttls: number;
      /** Closes the connection when the client sends DATA: nothing of the message went out. */
      cutAtData: number;
      /** Takes the whole message, then closes the connection without the final reply (the lost reply of RFC 1047). */
      cutAfterMessage: number;
      login: typeof SMTP_LOGIN;
    };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  process.env.SSL_CERT_FILE = TEST_CA_PATH;
  const sinks: SmtpSink[] = await Promise.all([
    startSmtpSink({ tls: 'none' }),
    startSmtpSink({ tls: 'implicit', auth: { ...SMTP_LOGIN, requireAuth: true } }),
    startSmtpSink({ tls: 'starttls', auth: { ...SMTP_LOGIN, requireAuth: true } }),
  ]);
  const cutters = await Promise.all([startCutter('data'), startCutter('message')]);
  project.provide('smtpSinks', {
    cutAtData: (cutters[0]!.address() as AddressInfo).port,
    cutAfterMessage: (cutters[1]!.address() as AddressInfo).port,
    plain: sinks[0]!.port,
    implicitTls: sinks[1]!.port,
    starttls: sinks[2]!.port,
    login: SMTP_LOGIN,
  });
  return async () => {
    await Promise.all(sinks.map((s) => s.close()));
    await Promise.all(cutters.map((c) => new Promise((resolve) => c.close(resolve))));
  };
}

/** A plain SMTP server that answers every command with success and breaks the connection at `cut`. */
async function startCutter(cut: 'data' | 'message'): Promise<Server> {
  const server = createServer((socket) => {
    let buffer = '';
    let inData = false;
    socket.on('error', () => undefined);
    socket.write('220 cutter.test ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (;;) {
        if (inData) {
          if (!/(^|\r\n)\.\r\n/.test(buffer)) return;
          // The whole message is here: no reply, the connection goes.
          socket.destroy();
          return;
        }
        const end = buffer.indexOf('\r\n');
        if (end < 0) return;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') socket.write('250-cutter.test\r\n250 8BITMIME\r\n');
        else if (verb === 'DATA') {
          if (cut === 'data') return void socket.destroy();
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') socket.end('221 bye\r\n');
        else socket.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
