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
import type { UserCredentials } from '../backends/auth.ts';
import type { PushConfig, ServerConfig } from '../config.ts';
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
): Promise<UserCredentials | undefined> {
  if (lease.credential && push.credentialKey) {
    const password = await openCredential(push.credentialKey, lease, lease.credential).catch(() => undefined);
    if (password !== undefined) return { login: lease.user, password };
  }
  if (inMemoryPassword !== undefined) return { login: lease.user, password: inMemoryPassword };
  return undefined;
}

/** What the runtime's watcher is called in the messages below. */
const WATCHER_NAMES = {
  'in-process': "this process's IDLE watcher",
  'cron-sweep': "the Worker's cron sweep",
  'watch-function': 'the watch function',
} as const;

/**
 * Why no watcher can log in for some folders of a waiting request (the value of its log line's `noWatcherLogin`), or
 * undefined when every folder is watched. Without a login the wait ends only at the heartbeat, or at a newer request
 * of the device. `password` is the request's: empty for a Bearer login, which is no login for a watcher.
 */
export function watcherLoginGap(
  push: PushConfig,
  wait: { password: string | undefined; mail: boolean; dav: boolean },
): string | undefined {
  const watcher = push.watcher ?? 'in-process';
  const password = wait.password !== undefined && wait.password !== '';
  // The user's password reaches a watcher sealed on the lease, or on Node in memory.
  const userLogin = password && (push.credentialKey !== undefined || watcher === 'in-process');
  const missing: string[] = [];
  if (wait.mail && !push.master && !userLogin)
    missing.push(
      password
        ? `mail: ${WATCHER_NAMES[watcher]} has no login without IMAP_MASTER_USER or CREDENTIAL_KEY`
        : 'mail: a Bearer token is no login for the watcher, it needs IMAP_MASTER_USER',
    );
  if (wait.dav && !userLogin)
    missing.push(
      password
        ? `calendars/contacts: ${WATCHER_NAMES[watcher]} has no login without CREDENTIAL_KEY`
        : 'calendars/contacts: a Bearer token is no login for the watcher, and DAV servers have no master user',
    );
  return missing.length ? missing.join('; ') : undefined;
}

/**
 * What a tenant's settings leave push unable to do on this runtime, said once at start-up (app/build.ts); undefined
 * when nothing. Per waiting request, watcherLoginGap says it again on the request's log line.
 */
export function pushStartupNotice(config: ServerConfig): string | undefined {
  const push = config.push;
  const watcher = push.watcher ?? 'in-process';
  const notes: string[] = [];
  if (!push.master && !push.credentialKey) {
    if (watcher !== 'in-process')
      notes.push(
        `push cannot work: ${WATCHER_NAMES[watcher]} logs in to each pinged mailbox and has no login without ` +
          'IMAP_MASTER_USER (with IMAP_MASTER_PASSWORD) or CREDENTIAL_KEY (a password held in memory never reaches ' +
          'it), so every Ping waits its whole heartbeat and devices see new mail only when they next sync',
      );
    else if (config.state.kind === 'dynamodb')
      notes.push(
        'push without IMAP_MASTER_USER or CREDENTIAL_KEY uses the password a Ping hands to the watcher of its own ' +
          'instance: with several instances on one table, a Ping whose account another instance watches waits its ' +
          'whole heartbeat',
      );
  }
  if (config.authMode !== 'basic' && !push.master)
    notes.push('Bearer logins get no push: a token is no login for the watcher, which needs IMAP_MASTER_USER');
  if ((config.caldavUrl || config.carddavUrl) && !push.credentialKey && watcher !== 'in-process')
    notes.push(
      'calendars and contacts get no push: DAV servers have no master user, and the watcher needs the user password ' +
        'sealed under CREDENTIAL_KEY',
    );
  return notes.length ? notes.join('; ') : undefined;
}
