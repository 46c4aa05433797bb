/**
 * How the watcher logs in to a watched user's mailbox (DESIGN §6), in order of preference:
 * 1. a master user (IMAP_MASTER_USER / IMAP_MASTER_PASSWORD): SASL PLAIN with the user as authorization identity
 *    (RFC 4616; Dovecot, Cyrus and others), or, when IMAP_MASTER_USER contains `%u`, a LOGIN name built from it
 *    (Dovecot's `alice*syncmaster` form: `IMAP_MASTER_USER=%u*syncmaster`). No user password is kept.
 * 2. the credential sealed on the user's watch lease (AES-256-GCM under CREDENTIAL_KEY, src/tenants/vault.ts).
 * 3. on Node only, the password a Ping of this process handed over in memory (PushHub `waiting`): never stored,
 *    gone with the process. It makes push work for `npm start` with neither of the above configured.
 * Nothing here logs a credential, and neither may its callers.
 */
import type { PushConfig } from '../config.ts';
import type { WatchLease } from '../state/types.ts';
import { openCredential } from '../tenants/vault.ts';

/** imapflow's `auth` option. */
export interface ImapAuth {
  user: string;
  pass: string;
  authzid?: string;
}

export async function watcherAuth(
  push: PushConfig,
  lease: WatchLease,
  inMemoryPassword?: string,
): Promise<ImapAuth | undefined> {
  if (push.master) {
    const { user, password } = push.master;
    return user.includes('%u')
      ? { user: user.replaceAll('%u', lease.user), pass: password }
      : { user, pass: password, authzid: lease.user };
  }
  if (lease.credential && push.credentialKey) {
    // A credential sealed under another key (rotated) or for another user does not open: no login for this lease.
    const pass = await openCredential(push.credentialKey, lease, lease.credential).catch(() => undefined);
    if (pass !== undefined) return { user: lease.user, pass };
  }
  if (inMemoryPassword !== undefined) return { user: lease.user, pass: inMemoryPassword };
  return undefined;
}

/**
 * The watcher's login to the user's CalDAV/CardDAV server. DAV servers have no master user, so only the user's own
 * password serves: the credential sealed on the lease, else (Node) the one handed over in memory.
 */
export async function davWatcherLogin(
  push: PushConfig,
  lease: WatchLease,
  inMemoryPassword?: string,
): Promise<{ user: string; password: string } | undefined> {
  if (lease.credential && push.credentialKey) {
    const password = await openCredential(push.credentialKey, lease, lease.credential).catch(() => undefined);
    if (password !== undefined) return { user: lease.user, password };
  }
  if (inMemoryPassword !== undefined) return { user: lease.user, password: inMemoryPassword };
  return undefined;
}
