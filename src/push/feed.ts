/**
 * The change feed (DESIGN §4, §5): per tenant+user, one entry per key, holding the newest marker the watcher saw.
 * Waiting Pings and hanging Syncs poll it; they never hold a backend connection.
 *
 * Keys (FeedEntry.folder):
 * - `imap:<mailbox path>`        a mailbox; marker `imap1 <UIDVALIDITY> <HIGHESTMODSEQ or -> <UIDNEXT> <MESSAGES>`
 * - `caldav:<collection URL>`,
 *   `carddav:<collection URL>`   a DAV collection; marker `dav1 <sync-token or CTag>` (DavFeedSource below)
 * - `hierarchy:imap`             the mailbox list; marker `h1 <fingerprint of the selectable paths>`
 * - `device:<deviceId>`          the device's waiting request (Ping or hanging Sync); marker = JSON WaitMarker.
 *                                Written by the waiting request itself: the watcher reads which folders to watch from
 *                                it, and an older waiting request of the device sees that a newer one took over.
 *
 * Writers write a key only when its marker changes, so `changedAt` is when the change was seen.
 *
 * In one process (Node), the watcher and the waiting requests also meet on the PushHub below, so a change wakes a
 * waiting Ping at once instead of at its next poll, and a newer request ends an older one at once.
 */
import { EventEmitter } from 'node:events';
import type { BackendFolderRef, CollectionState, FolderRecord, UserScope } from '../state/types.ts';

/** How long a folder or hierarchy marker stays in the feed after it was written. */
export const FEED_TTL_MS = 7 * 24 * 3_600_000;

export function folderKey(source: BackendFolderRef): string {
  return `${source.backend}:${source.ref}`;
}

export const HIERARCHY_KEY = 'hierarchy:imap';

export function deviceKey(deviceId: string): string {
  return `device:${deviceId}`;
}

// IMAP markers.

export interface ImapMarker {
  uidValidity: number;
  /** Undefined without CONDSTORE. */
  highestModSeq: bigint | undefined;
  uidNext: number;
  messages: number;
}

export function encodeImapMarker(m: ImapMarker): string {
  return `imap1 ${m.uidValidity} ${m.highestModSeq ?? '-'} ${m.uidNext} ${m.messages}`;
}

export function parseImapMarker(text: string): ImapMarker | undefined {
  const parts = text.split(' ');
  if (parts.length !== 5 || parts[0] !== 'imap1') return undefined;
  const [, validity, modseq, next, messages] = parts as [string, string, string, string, string];
  if (!/^\d+$/.test(validity) || !/^(\d+|-)$/.test(modseq) || !/^\d+$/.test(next) || !/^\d+$/.test(messages))
    return undefined;
  return {
    uidValidity: Number(validity),
    highestModSeq: modseq === '-' ? undefined : BigInt(modseq),
    uidNext: Number(next),
    messages: Number(messages),
  };
}

// DAV markers (the CalDAV/CardDAV watcher fills these; see DavFeedSource).

export function encodeDavMarker(token: string): string {
  return `dav1 ${token}`;
}

export function parseDavMarker(text: string): string | undefined {
  return text.startsWith('dav1 ') ? text.slice(5) : undefined;
}

/**
 * What the watcher needs of a calendar or contacts backend to put its collections in the feed: the collection's
 * current sync-token (RFC 6578; compared with the collection state's `watermark.syncToken`) or, on a server without
 * sync-collection, `ctag:` and its CTag: DavItemBackend.collectionToken, a PROPFIND at depth 0 (the watcher's
 * WatcherOptions.dav).
 */
export interface DavFeedSource {
  collectionToken(folderRef: string): Promise<string>;
}

// The hierarchy marker.

/**
 * A fingerprint of a user's selectable mailbox paths (the folders FolderSync offers), order-independent. The
 * watcher computes it from LIST, a Ping from the hierarchy the device has: another value means another folder list.
 */
export function hierarchyMarker(paths: Iterable<string>): string {
  const sorted = [...new Set(paths)].sort();
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (const path of sorted) {
    for (let i = 0; i < path.length; i++) {
      const c = path.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    }
    h1 = Math.imul(h1 ^ 0xff, 0x01000193);
    h2 = Math.imul(h2 ^ 0xff, 0x5bd1e995);
  }
  return `h1 ${sorted.length} ${(h1 >>> 0).toString(16).padStart(8, '0')}${(h2 >>> 0).toString(16).padStart(8, '0')}`;
}

export function hierarchyMarkerOf(folders: readonly FolderRecord[]): string {
  return hierarchyMarker(folders.filter((f) => f.source.backend === 'imap').map((f) => f.source.ref));
}

// The device's waiting request.

export interface WaitMarker {
  /** Generation: newer requests have greater ones (newGeneration). */
  g: string;
  /** Until when it waits (epoch ms); a past value means none is waiting. */
  until: number;
  /** The feed keys of the folders it waits on. */
  folders: string[];
  /**
   * Until when the device's folders are watched (epoch ms): the end of the watch lease written with this marker.
   * The device's later Pings with the same folders that this still covers write neither marker nor lease
   * (push/wait.ts), so `until` may belong to an earlier wait; this is what says the device is still pinging.
   */
  watch?: number;
  /** Written by a Sync that ended the device's wait (push/wait.ts endWaitingRequests), not by a waiting request. */
  endedBySync?: true;
}

/** A fresh generation: start time (fixed width, so strings compare in time order), then a random tie-break. */
export function newGeneration(now = Date.now()): string {
  return `${now.toString(36).padStart(10, '0')}.${Math.random().toString(36).slice(2, 10).padEnd(8, '0')}`;
}

export function encodeWaitMarker(m: WaitMarker): string {
  return JSON.stringify(m);
}

export function parseWaitMarker(text: string): WaitMarker | undefined {
  try {
    const m = JSON.parse(text) as Partial<WaitMarker>;
    if (typeof m.g !== 'string' || typeof m.until !== 'number' || !Array.isArray(m.folders)) return undefined;
    return {
      g: m.g,
      until: m.until,
      folders: m.folders.filter((f): f is string => typeof f === 'string'),
      ...(typeof m.watch === 'number' ? { watch: m.watch } : {}),
      ...(m.endedBySync === true ? { endedBySync: true as const } : {}),
    };
  } catch {
    return undefined;
  }
}

/** The folders the watcher should watch for a user: those of the user's devices' live waiting requests. */
export function watchedFolderKeys(feed: readonly { folder: string; marker: string }[], now = Date.now()): Set<string> {
  const keys = new Set<string>();
  for (const entry of feed) {
    if (!entry.folder.startsWith('device:')) continue;
    const wait = parseWaitMarker(entry.marker);
    // A device between two Pings is still watched: the lease's grace covers the gap, and so does this one.
    if (wait && watchedUntil(wait) > now) for (const key of wait.folders) keys.add(key);
  }
  return keys;
}

/** Until when a device's wait marker keeps its folders watched. */
export function watchedUntil(wait: WaitMarker): number {
  return Math.max(wait.until + LEASE_GRACE_MS, wait.watch ?? 0);
}

/** How long a lease outlives the waiting request that wrote it: the device's next Ping finds the watcher attached. */
export const LEASE_GRACE_MS = 120_000;

// Comparing a feed marker with what the device has.

/**
 * Whether a feed marker shows a change the device has not synced. `baseline` is the marker of the folder as the
 * waiting request's direct check saw it (undefined when it had none): for a folder the device has not synced, or a
 * server without CONDSTORE, only a change after that check counts.
 */
export function markerShowsChange(
  marker: string,
  state: CollectionState | undefined,
  baseline: string | undefined,
): boolean {
  const wm = state?.watermark;
  const imap = parseImapMarker(marker);
  if (imap) {
    if (wm?.kind === 'imap') {
      if (imap.uidValidity !== wm.uidValidity) return true;
      if (wm.highestModSeq !== '' && imap.highestModSeq !== undefined)
        return imap.highestModSeq > BigInt(wm.highestModSeq);
    }
    return baseline !== undefined && !sameImapState(imap, parseImapMarker(baseline));
  }
  const token = parseDavMarker(marker);
  if (token !== undefined) {
    // A CTag (`ctag:`, a server without sync-collection) is not comparable with a sync-token: only with the baseline.
    if (wm?.kind === 'dav' && !token.startsWith('ctag:')) return token !== wm.syncToken;
    return baseline !== undefined && marker !== baseline;
  }
  return false;
}

function sameImapState(a: ImapMarker, b: ImapMarker | undefined): boolean {
  if (!b) return false;
  return (
    a.uidValidity === b.uidValidity &&
    a.uidNext === b.uidNext &&
    a.messages === b.messages &&
    a.highestModSeq === b.highestModSeq
  );
}

/** Whether the collection has changes found earlier but not yet sent (MoreAvailable left them pending). */
export function hasPendingChanges(state: CollectionState | undefined): boolean {
  if (!state) return false;
  if (state.pending.length > 0) return true;
  return state.watermark.kind === 'imap' && (state.watermark.pendingAdds ?? '') !== '';
}

// In one process: the hub.

type UserKey = string;

function userKey(u: UserScope): UserKey {
  return JSON.stringify([u.tenant, u.user]);
}

/**
 * In-process signals between the watcher and waiting requests (Node; on Workers and Lambda each isolate has its own
 * and nobody listens across them, so the feed is what carries the news there):
 * - `changed(user)`: the watcher wrote a feed entry for the user; waiting requests read the feed now.
 * - `waiting(user, password)`: a request started waiting; an in-process watcher attaches now (and may use the
 *   password it was handed, in memory only, when there is neither a master user nor a vault key).
 * - `superseded(device, generation)`: a newer request of the device started; older waiting ones end now.
 */
export class PushHub {
  private readonly events = new EventEmitter();

  constructor() {
    // One listener per waiting request: thousands are normal.
    this.events.setMaxListeners(0);
  }

  changed(user: UserScope): void {
    this.events.emit(`changed ${userKey(user)}`);
  }

  onChanged(user: UserScope, listener: () => void): () => void {
    return this.listen(`changed ${userKey(user)}`, listener);
  }

  waiting(user: UserScope, password: string | undefined): void {
    this.events.emit('waiting', user, password);
  }

  onWaiting(listener: (user: UserScope, password: string | undefined) => void): () => void {
    return this.listen('waiting', listener as (...args: unknown[]) => void);
  }

  superseded(device: UserScope & { deviceId: string }, generation: string): void {
    this.events.emit(`superseded ${userKey(device)} ${device.deviceId}`, generation);
  }

  onSuperseded(device: UserScope & { deviceId: string }, listener: (generation: string) => void): () => void {
    return this.listen(`superseded ${userKey(device)} ${device.deviceId}`, listener as (...args: unknown[]) => void);
  }

  private listen(event: string, listener: (...args: unknown[]) => void): () => void {
    this.events.on(event, listener);
    return () => this.events.off(event, listener);
  }
}

/** The process's hub: what the Node runtime's watcher and the commands share. */
export const pushHub = new PushHub();
