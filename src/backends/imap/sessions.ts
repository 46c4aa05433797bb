/**
 * Where IMAP connections come from. Workers open one per request (a socket cannot outlive its request there);
 * Node and Lambda keep a user's logged-in connection for a short idle time and hand it to that user's next request,
 * which saves the TCP and TLS set-up and the login: most of a small Sync's time.
 *
 * A pooled connection is only ever reused for the same user with the same password (the key holds a salted hash
 * of it, never the password), so a wrong password always meets a real login; and only within its lifetime after the
 * login that proved it (ImapSettings.sessionMaxAgeMs), since reusing it counts as a successful login: a password
 * changed or a token revoked at the server stops working when the last connection that proved it grows too old.
 */
import type { ImapFlow } from 'imapflow';
import { imapClient, type ImapLogin, type ImapSettings, logOutWithoutWaiting } from './connection.ts';
import { metrics } from '../../util/metrics.ts';

export interface ImapSessions {
  /** A logged-in client for this user. Rejects with imapflow's error when the login fails. */
  acquire(login: ImapLogin): Promise<ImapFlow>;
  /** Gives the client back: kept for the user's next request when `reusable`, logged out otherwise. */
  release(client: ImapFlow, reusable: boolean): void;
}

async function connected(settings: ImapSettings, login: ImapLogin): Promise<ImapFlow> {
  // No auto-IDLE: an idle pooled connection should cost the server nothing.
  const client = imapClient(settings, login, { disableAutoIdle: true });
  // Socket errors after connect surface as rejected commands; the event must not crash the process.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    if ((err as { authenticationFailed?: boolean }).authenticationFailed) metrics.imapLogin(false);
    throw err;
  }
  metrics.imapLogin(true);
  metrics.imapSessionsOpen(1);
  client.once('close', () => metrics.imapSessionsOpen(-1));
  return client;
}

/** LOGOUT, not waited for: the request that gave the session back answers the device meanwhile. */
function logout(client: ImapFlow): void {
  logOutWithoutWaiting(client);
}

/** One connection per acquire, logged out on release (Workers). */
export function freshImapSessions(settings: ImapSettings): ImapSessions {
  return {
    acquire: (login) => connected(settings, login),
    release: (client) => logout(client),
  };
}

/** IMAP_SESSION_MAX_AGE_SECONDS by default: how long a login counts as proof of the credentials. */
export const DEFAULT_SESSION_MAX_AGE_MS = 300_000;

export interface PoolOptions {
  /** How long an unused connection is kept (never past its lifetime, ImapSettings.sessionMaxAgeMs). */
  idleMs?: number;
  /** Idle connections kept per user. */
  maxIdlePerUser?: number;
}

/** Keeps idle connections per user for reuse (Node, Lambda). */
export function pooledImapSessions(settings: ImapSettings, options: PoolOptions = {}): ImapSessions {
  const idleMs = options.idleMs ?? 30_000;
  const maxIdle = options.maxIdlePerUser ?? 2;
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const maxAgeMs = settings.sessionMaxAgeMs ?? DEFAULT_SESSION_MAX_AGE_MS;
  const idle = new Map<string, { client: ImapFlow; timer: ReturnType<typeof setTimeout> }[]>();
  // Each connection's key and when its login proved the credentials.
  const origins = new WeakMap<ImapFlow, { key: string; loggedInAt: number }>();
  const remainingMs = (client: ImapFlow): number => {
    const origin = origins.get(client);
    return origin ? origin.loggedInAt + maxAgeMs - Date.now() : 0;
  };

  async function keyOf(login: ImapLogin): Promise<string> {
    // A token and a password never share a key, even when they are the same string.
    const secret = new TextEncoder().encode(
      login.accessToken !== undefined
        ? `${login.user}\u0000token\u0000${login.accessToken}`
        : `${login.user}\u0000${login.password}`,
    );
    const material = new Uint8Array(salt.length + secret.length);
    material.set(salt);
    material.set(secret, salt.length);
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', material));
    return `${login.user}\u0000${Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  }

  return {
    async acquire(login) {
      const key = await keyOf(login);
      const list = idle.get(key);
      while (list?.length) {
        const entry = list.pop()!;
        clearTimeout(entry.timer);
        metrics.imapSessionsPooled(-1);
        if (entry.client.usable && remainingMs(entry.client) > 0) return entry.client;
        logout(entry.client);
      }
      const client = await connected(settings, login);
      origins.set(client, { key, loggedInAt: Date.now() });
      return client;
    },
    release(client, reusable) {
      const key = origins.get(client)?.key;
      const list = key ? (idle.get(key) ?? []) : [];
      const remaining = remainingMs(client);
      if (!key || !reusable || !client.usable || list.length >= maxIdle || remaining <= 0) {
        logout(client);
        return;
      }
      const timer = setTimeout(
        () => {
          const at = list.findIndex((e) => e.client === client);
          if (at >= 0) {
            list.splice(at, 1);
            metrics.imapSessionsPooled(-1);
          }
          if (list.length === 0) idle.delete(key);
          logout(client);
        },
        Math.min(idleMs, remaining),
      );
      // An idle connection must not keep the process alive.
      (timer as { unref?: () => void }).unref?.();
      list.push({ client, timer });
      idle.set(key, list);
      metrics.imapSessionsPooled(1);
    },
  };
}

/** How long the check's connection waits for the request's backends before it goes back (or is logged out). */
const HANDOFF_MS = 15_000;

export interface RequestImapSessions extends ImapSessions {
  /** The request is over: a connection still kept goes back to the underlying sessions. */
  end(): void;
}

/**
 * One request's view of `base`: the first connection given back clean (the credentials check's) is kept for the
 * request's next acquire of the same login (its backends), so the request logs in once even where `base` logs
 * every connection out on release (Workers). Everything else passes through to `base`. A kept connection nobody
 * takes within HANDOFF_MS goes back, so a request that then waits (Ping, a hanging Sync) holds no idle login.
 */
export function requestImapSessions(base: ImapSessions): RequestImapSessions {
  let kept: { client: ImapFlow; login: ImapLogin; timer: ReturnType<typeof setTimeout> } | undefined;
  let handedOff = false;
  // The login each connection of this request was acquired with: what the kept one may be handed to.
  const loginOf = new WeakMap<ImapFlow, ImapLogin>();
  const giveBack = (): void => {
    if (!kept) return;
    clearTimeout(kept.timer);
    base.release(kept.client, true);
    kept = undefined;
  };
  return {
    async acquire(login) {
      if (kept && sameLogin(kept.login, login)) {
        const { client, timer } = kept;
        clearTimeout(timer);
        kept = undefined;
        if (client.usable) return client;
        base.release(client, false);
      }
      const client = await base.acquire(login);
      loginOf.set(client, login);
      return client;
    },
    release(client, reusable) {
      const login = loginOf.get(client);
      if (!handedOff && reusable && login && client.usable) {
        handedOff = true;
        const timer = setTimeout(giveBack, HANDOFF_MS);
        (timer as { unref?: () => void }).unref?.();
        kept = { client, login, timer };
        return;
      }
      base.release(client, reusable);
    },
    end: giveBack,
  };
}

/** The same user and secret (compared in memory, within one request). */
function sameLogin(a: ImapLogin, b: ImapLogin): boolean {
  return a.user === b.user && a.password === b.password && a.accessToken === b.accessToken;
}
