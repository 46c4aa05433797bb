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
  /** Dovecot IMAP, plaintext (no TLS): IDLE, CONDSTORE, QRESYNC, SPECIAL-USE, MOVE, UIDPLUS. */
  imap: { host: string; port: number; secure: false };
  /** Dovecot LMTP (delivers into the same mailboxes). */
  lmtp: { host: string; port: number };
  /**
   * Dovecot ManageSieve (RFC 5804), plaintext, AUTHENTICATE PLAIN with the user's password; LMTP runs the active
   * script.
   */
  sieve: { host: string; port: number };
  /** Postfix SMTP submission without auth (trusted from 127.0.0.0/8); null when Postfix could not run (not root). */
  smtp: { host: string; port: number } | null;
  /** Why `smtp` is null, if it is. */
  smtpSkipReason: string | null;
  /** Radicale base URL (with trailing slash); principals are `/<email>/` (the @ appears as %40 in hrefs). */
  caldavUrl: string;
  carddavUrl: string;
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
