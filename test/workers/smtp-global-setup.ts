// globalSetup of the `workers` project: SMTP servers in the vitest process (Node) for the submission test that runs
// inside workerd (smtp.test.ts): plain TCP without login, implicit TLS and STARTTLS with a required login.
// workerd, which miniflare starts after this with this process's environment, trusts the test CA through
// SSL_CERT_FILE (BoringSSL reads it); the Workers tests make no other TLS connections.
import type { TestProject } from 'vitest/node';
import { startSmtpSink, TEST_CA_PATH, type SmtpSink } from '../services/smtp-sink.ts';

export const SMTP_LOGIN = { user: 'alice@example.test', password: 'alice-secret' };

declare module 'vitest' {
  export interface ProvidedContext {
    smtpSinks: { plain: number; implicitTls: number; starttls: number; login: typeof SMTP_LOGIN };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  process.env.SSL_CERT_FILE = TEST_CA_PATH;
  const sinks: SmtpSink[] = await Promise.all([
    startSmtpSink({ tls: 'none' }),
    startSmtpSink({ tls: 'implicit', auth: { ...SMTP_LOGIN, requireAuth: true } }),
    startSmtpSink({ tls: 'starttls', auth: { ...SMTP_LOGIN, requireAuth: true } }),
  ]);
  project.provide('smtpSinks', {
    plain: sinks[0]!.port,
    implicitTls: sinks[1]!.port,
    starttls: sinks[2]!.port,
    login: SMTP_LOGIN,
  });
  return async () => {
    await Promise.all(sinks.map((s) => s.close()));
  };
}
