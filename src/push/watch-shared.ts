/**
 * What the push watcher's two strategies share (DESIGN §5.3): both read which accounts are being pinged (watch
 * leases) and what their devices wait on (the `device:` entries of their feed), check the watched folders, and write a
 * feed marker whenever a watched folder's state changes. Waiting Pings and hanging Syncs poll that feed; none of them
 * holds an IMAP connection, and none can tell which strategy ran:
 * - IDLE (src/push/idle-watcher.ts): Node, and a Lambda's scheduled run;
 * - sweep (src/push/sweep.ts): Cloudflare's cron, planned by src/push/sweep-plan.ts.
 *
 * Logins: src/push/credentials.ts (master user, sealed credential, or on Node a password handed over in memory).
 * Markers are written only when they change (FeedMemo keeps the last one it read or wrote per key), so an idle
 * account costs the state store no writes.
 *
 * Calendar and contact collections: watched `caldav:`/`carddav:` keys are checked with a PROPFIND of the collection's
 * sync-token (RFC 6578) or CTag (DavItemBackend.collectionToken), on the tenant's DAV servers only (`dav`), logged in
 * with the user's own password (sealed on the lease, or handed over in memory on Node: DAV servers have no master
 * user), and written as `dav1` markers when they change.
 */
import { ImapFlow } from 'imapflow';
import type { PushConfig } from '../config.ts';
import { imapTransportOption, startTlsOption, type ImapSettings } from '../backends/imap/connection.ts';
import type { LogSink } from '../log.ts';
import { LEASE_SHARDS, type StateStore, type UserScope, type WatchLease } from '../state/types.ts';
import { davWatcherLogin, type ImapAuth } from './credentials.ts';
import {
  encodeDavMarker,
  encodeImapMarker,
  FEED_TTL_MS,
  HIERARCHY_KEY,
  hierarchyMarker,
  watchedFolderKeys,
  type DavFeedSource,
  type PushHub,
} from './feed.ts';

export const INBOX_KEY = 'imap:INBOX';

export interface WatcherOptions {
  state: StateStore;
  tenant: string;
  imap: ImapSettings;
  /** Master user and vault key (PushConfig). */
  push: PushConfig;
  /** The lease shards this watcher takes (0 ≤ shard < LEASE_SHARDS); all by default. */
  shards?: readonly number[];
  hub?: PushHub;
  log?: LogSink;
  /**
   * The tenant's CalDAV/CardDAV services (CALDAV_URL, CARDDAV_URL): watched `caldav:`/`carddav:` collections on them
   * are checked by sync-token or CTag with the user's own login (credentials.ts davWatcherLogin). A collection
   * elsewhere is never sent the login.
   */
  dav?: { caldavUrl?: string | undefined; carddavUrl?: string | undefined };
  /** Overrides how DAV collections' tokens are read for an account (instead of `dav`). */
  davSource?: (lease: WatchLease) => DavFeedSource | undefined;
}

export function allShards(): number[] {
  return Array.from({ length: LEASE_SHARDS }, (_, i) => i);
}

export function userKeyOf(u: UserScope): string {
  return JSON.stringify([u.tenant, u.user]);
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${(err as { responseText?: string }).responseText ?? err.message}`;
  return String(err);
}

export function newClient(imap: ImapSettings, auth: ImapAuth, idle: boolean): ImapFlow {
  const client = new ImapFlow({
    ...imapTransportOption(),
    host: imap.host,
    port: imap.port,
    secure: imap.secure,
    ...startTlsOption(imap),
    auth,
    logger: false,
    // HIGHESTMODSEQ is only reported to a session that enabled CONDSTORE.
    qresync: true,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    ...(idle
      ? { autoIdleDelay: 100, maxIdleTime: 240_000, socketTimeout: 300_000 }
      : { disableAutoIdle: true, socketTimeout: 60_000 }),
  });
  // Socket errors surface as rejected commands and a 'close'; the event itself must not crash the process.
  client.on('error', () => {});
  return client;
}

/** The selectable mailboxes' paths (what FolderSync offers, src/backends/imap/mail.ts). */
export async function listPaths(client: ImapFlow): Promise<string[]> {
  const listed = await client.list();
  return listed.filter((m) => !m.flags.has('\\Noselect') && !m.flags.has('\\NonExistent')).map((m) => m.path);
}

export async function statusMarker(client: ImapFlow, path: string): Promise<string | undefined> {
  try {
    const s = await client.status(path, { uidValidity: true, uidNext: true, messages: true, highestModseq: true });
    if (!s || s.uidValidity === undefined || s.uidNext === undefined || s.messages === undefined) return undefined;
    return encodeImapMarker({
      uidValidity: Number(s.uidValidity),
      highestModSeq: s.highestModseq,
      uidNext: s.uidNext,
      messages: s.messages,
    });
  } catch (err) {
    // A watched folder deleted meanwhile: the folder list's marker tells the devices.
    if ((err as { serverResponseCode?: string }).serverResponseCode === 'NONEXISTENT') return undefined;
    throw err;
  }
}

export function isDavKey(key: string): boolean {
  return key.startsWith('caldav:') || key.startsWith('carddav:');
}

/**
 * How the watcher reads the tokens of an account's watched DAV collections; undefined when none is watched or there
 * is no login for them. Only collections on the tenant's own DAV servers (same origin) are asked, with the login.
 */
export async function davSourceFor(
  options: WatcherOptions,
  lease: WatchLease,
  watched: ReadonlySet<string>,
  password: string | undefined,
): Promise<DavFeedSource | undefined> {
  if (![...watched].some(isDavKey)) return undefined;
  if (options.davSource) return options.davSource(lease);
  const services = [options.dav?.caldavUrl, options.dav?.carddavUrl].filter((u): u is string => !!u);
  if (!services.length) return undefined;
  const login = await davWatcherLogin(options.push, lease, password);
  if (!login) return undefined;
  // The DAV client is loaded only where DAV is configured and watched (backends/combined.ts does the same).
  const { DavItemBackend } = await import('../backends/dav/backend.ts');
  return {
    collectionToken(folderRef) {
      const origin = new URL(folderRef).origin;
      const service = services.find((u) => new URL(u).origin === origin);
      if (!service) return Promise.reject(new Error('not on a DAV service of the tenant'));
      return new DavItemBackend(service, 'caldav', login).collectionToken(folderRef);
    },
  };
}

/** What one account's watch keeps between checks: the last marker per key, and which keys to watch. */
export class FeedMemo {
  readonly markers = new Map<string, string>();
  watched = new Set<string>([INBOX_KEY]);

  constructor(
    private readonly state: StateStore,
    private readonly user: UserScope,
    private readonly hub: PushHub,
  ) {}

  async load(): Promise<void> {
    const feed = await this.state.readFeed(this.user);
    for (const entry of feed) if (!entry.folder.startsWith('device:')) this.markers.set(entry.folder, entry.marker);
    this.watched = new Set([INBOX_KEY, ...watchedFolderKeys(feed)]);
  }

  /** Writes the changed markers; returns how many. */
  async write(found: Map<string, string>): Promise<number> {
    const now = Date.now();
    let written = 0;
    for (const [key, marker] of found) {
      if (this.markers.get(key) === marker) continue;
      await this.state.putFeedEntry(this.user, { folder: key, marker, changedAt: now, expiresAt: now + FEED_TTL_MS });
      this.markers.set(key, marker);
      written++;
    }
    if (written) this.hub.changed(this.user);
    return written;
  }
}

/** LIST, then STATUS of each watched IMAP folder (and the DAV tokens of watched DAV collections). */
export async function checkAccount(
  client: ImapFlow,
  memo: FeedMemo,
  dav: DavFeedSource | undefined,
): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const paths = await listPaths(client);
  found.set(HIERARCHY_KEY, hierarchyMarker(paths));
  const existing = new Set(paths);
  for (const key of memo.watched) {
    if (key.startsWith('imap:')) {
      const path = key.slice('imap:'.length);
      if (!existing.has(path)) continue;
      const marker = await statusMarker(client, path);
      if (marker) found.set(key, marker);
    } else if (dav && isDavKey(key)) {
      const token = await dav.collectionToken(key.slice(key.indexOf(':') + 1)).catch(() => undefined);
      if (token !== undefined) found.set(key, encodeDavMarker(token));
    }
  }
  return found;
}
