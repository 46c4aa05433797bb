// What global-setup hands to the tests through vitest's provide/inject:
//   import { inject } from 'vitest';
//   const services = inject('services');
// Everything here is plain JSON (provide() serialises it to the test workers).

/** A mail/DAV account. Canonical login is `email`; Dovecot and Radicale also accept the bare `name`. */
export interface TestUser {
  /** Local part, e.g. `alice`; also accepted as login (mapped to the same account). */
  name: string;
  /** Canonical login and address, e.g. `alice@example.test`. */
  email: string;
  password: string;
}

export interface TestServices {
  /** The run's temp folder (configs, logs, mail and DAV storage). Removed at teardown. */
  dir: string;
  /** Mail domain that Postfix relays into Dovecot (`example.test`). */
  domain: string;
  /**
   * Dovecot IMAP offering STARTTLS (`secure: false`: connect in clear, then upgrade): IDLE, CONDSTORE, QRESYNC,
   * SPECIAL-USE, MOVE, UIDPLUS. Every TLS endpoint here has the localhost certificate (SAN 127.0.0.1) of the test CA
   * `tlsCa`; Node trusts it through NODE_EXTRA_CA_CERTS (vitest.config.ts), workerd through SSL_CERT_FILE.
   */
  imap: { host: string; port: number; secure: false };
  /** The same Dovecot with implicit TLS (993-style). */
  imaps: { host: string; port: number; secure: true };
  /** Path of the test CA's certificate (test/fixtures/tls/ca.pem) that signed every service's certificate. */
  tlsCa: string;
  /** Dovecot LMTP (delivers into the same mailboxes). */
  lmtp: { host: string; port: number };
  /**
   * Dovecot ManageSieve (RFC 5804) offering STARTTLS, AUTHENTICATE PLAIN with the user's password; LMTP runs the
   * active script.
   */
  sieve: { host: string; port: number };
  /** The same ManageSieve with implicit TLS from the first byte. */
  sieves: { host: string; port: number };
  /**
   * Postfix SMTP without auth (trusted from 127.0.0.0/8), offering STARTTLS; null when Postfix could not run (not
   * root).
   */
  smtp: { host: string; port: number } | null;
  /** The same Postfix with implicit TLS (submissions, 465-style); null with `smtp`. */
  smtps: { host: string; port: number } | null;
  /** Why `smtp` is null, if it is. */
  smtpSkipReason: string | null;
  /** Radicale base URL, https (with trailing slash); principals are `/<email>/` (the @ appears as %40 in hrefs). */
  caldavUrl: string;
  carddavUrl: string;
  /** The same Radicale over plain http (for tests of ALLOW_PLAINTEXT_BACKENDS). */
  davPlainUrl: string;
  /** dynalite (in-memory DynamoDB emulator) in the global-setup process. */
  dynamodb: { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  /** Fixed users alice, bob, carol. More can be added per test file with `createUser()` from seed.ts. */
  users: TestUser[];
  /** Dovecot master user: log in as `${user}${separator}${master.user}` with the master password. */
  master: { user: string; password: string; separator: string };
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: TestServices;
  }
}
