// vitest globalSetup of the `workers` project: the code that runs inside workerd (the push watcher's sweep) needs a
// real IMAP server too. This starts a Dovecot of its own (not the node project's services: that project's
// globalSetup belongs to it, and a workers-only run should not start Radicale, Postfix and dynalite), on a free port,
// with the fixed users alice, bob, carol, w1…w10 and the master user, and hands the endpoint to the tests inside
// workerd through vitest's provide/inject (the pool forwards the provided context into the Worker):
//   import { inject } from 'vitest';
//   const imap = inject('imap');
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { makeUser, MASTER_USER, TEST_USERS } from './accounts.ts';
import { ensureDebianPackages, isRoot } from './apt.ts';
import { startDovecot } from './dovecot.ts';
import { startRadicale } from './radicale.ts';
import type { TestUser } from './types.ts';

/** What the workers project's tests get: `inject('imap')`. */
export interface WorkersImap {
  host: string;
  port: number;
  users: TestUser[];
  master: { user: string; password: string; separator: string };
  /** A Radicale (CalDAV/CardDAV) with the same users, for the sweep's DAV checks; base URL with trailing slash. */
  davUrl: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    imap: WorkersImap;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  ensureDebianPackages(['dovecot-imapd', 'dovecot-lmtpd', 'dovecot-sieve', 'dovecot-managesieved', 'radicale']);
  const runDir = mkdtempSync('/tmp/ase-w-');
  chmodSync(runDir, 0o755);
  // The fixed users and a few more: enough accounts to see the sweep keep to its connection limit.
  const users = [...TEST_USERS, ...Array.from({ length: 10 }, (_, i) => makeUser(`w${i + 1}`))];
  const [dovecot, radicale] = await Promise.all([startDovecot(runDir, users, isRoot()), startRadicale(runDir, users)]);
  project.provide('imap', {
    host: '127.0.0.1',
    port: dovecot.imapPort,
    users,
    master: { ...MASTER_USER },
    davUrl: radicale.url,
  });
  return async () => {
    await Promise.all([dovecot.stop(), radicale.stop()]);
    rmSync(runDir, { recursive: true, force: true });
  };
}
