// The fixed test accounts and how they are written into each service's user files.
// Both services pick up new users while running, so seed.ts can add accounts.
import { appendFileSync, writeFileSync } from 'node:fs';
import type { TestUser } from './types.ts';

export const TEST_DOMAIN = 'example.test';

export const MASTER_USER = { user: 'syncmaster', password: 'syncmaster-pw', separator: '*' } as const;

export function makeUser(name: string, password = `${name}-pw`): TestUser {
  return { name, email: `${name}@${TEST_DOMAIN}`, password };
}

export const TEST_USERS: readonly TestUser[] = ['alice', 'bob', 'carol'].map((n) => makeUser(n));

/**
 * Dovecot reads one passwd-file per user: `<runDir>/dovecot/users/<name>`. A file per
 * user (rather than one shared file) lets createUser() add accounts while Dovecot runs:
 * Dovecot checks a changed passwd-file at most once per second, but a new file is read
 * on first use.
 */
export const DOVECOT_USERS_DIR = 'dovecot/users';
/** htpasswd file of Radicale, relative to the run dir (read on every login). */
export const RADICALE_USERS_FILE = 'radicale/users';

/**
 * Dovecot passwd-file lines. The email form is canonical; the bare-name line carries
 * `user=<email>` so a login as `alice` becomes `alice@example.test` (same mailbox, same
 * LMTP recipient).
 */
export function dovecotUserLines(u: TestUser): string {
  return `${u.email}:{PLAIN}${u.password}::::::\n${u.name}:{PLAIN}${u.password}::::::user=${u.email}\n`;
}

/** Radicale htpasswd line (plain). The auth plugin in radicale.ts maps a bare name to the email. */
export function radicaleUserLine(u: TestUser): string {
  return `${u.email}:${u.password}\n`;
}

/** Writes the user's Dovecot passwd-file (the run dir must already have the users folder). */
export function writeDovecotUser(runDir: string, u: TestUser): void {
  writeFileSync(`${runDir}/${DOVECOT_USERS_DIR}/${u.name}`, dovecotUserLines(u), { mode: 0o644 });
}

/** Adds a user to both running services (used by seed.ts createUser). */
export function appendUserFiles(runDir: string, u: TestUser): void {
  writeDovecotUser(runDir, u);
  // O_APPEND writes of a few bytes are atomic, so parallel test workers do not interleave lines.
  appendFileSync(`${runDir}/${RADICALE_USERS_FILE}`, radicaleUserLine(u));
}
