/**
 * Waiting for a change without holding a backend connection (DESIGN §5): what a Ping and a hanging Sync do after
 * their direct check found nothing.
 *
 * 1. Mark the device's waiting request in the feed (`device:<id>`, a WaitMarker: generation, until, folders) and
 *    write or extend the user's watch lease (until the wait ends + LEASE_GRACE_MS), with the sealed credential when
 *    the tenant has no master user. The watcher learns from these what to watch.
 * 2. Read the user's feed every PING_POLL_SECONDS (one read), and at once when the in-process watcher says it wrote
 *    something (PushHub, Node); the user's waiting requests in one process share these reads (push/feed-poller.ts).
 *    A folder entry that shows a change the device has not synced ends the wait.
 * 3. A newer Ping or Sync of the same device ends the wait ('superseded'): in one process through the hub at once;
 *    across processes by the newer generation in the device's feed entry, at the next poll.
 *
 * The wait ends slightly before the heartbeat (answerMarginMs), as clients drop connections at their own timeout.
 * Entries written before the wait began are left to the direct check, which read the backend itself: only what
 * the feed learned since (changedAt ≥ start − CLOCK_SKEW_MS) is looked at, so a stale entry can never make a
 * device loop.
 *
 * Cost of an idle device (reads per hour): 3600 / PING_POLL_SECONDS for the polls, plus per Ping the cache,
 * hierarchy and collection reads and one feed read before the wait. Writes: the wait marker and the lease are
 * written together, and only when needed: the device's first wait, other folders, a wait of the device possibly
 * still under way elsewhere (to end it), or a lease that would end before this wait (+ LEASE_GRACE_MS). A written
 * lease runs LEASE_EXTENSION_MS beyond that, so a device pinging every 480 s writes them about twice an hour, and
 * at a 3540 s heartbeat once per Ping. bench/push.ts counts them.
 */
import type { PushConfig } from '../config.ts';
import type { LogEntry } from '../log.ts';
import { watcherLoginGap } from './credentials.ts';
import { feedPollerOf } from './feed-poller.ts';
import type { CollectionState, DeviceScope, FeedEntry, HierarchyState, StateStore } from '../state/types.ts';
import { sealCredential } from '../tenants/vault.ts';
import { metrics } from '../util/metrics.ts';
import {
  deviceKey,
  encodeWaitMarker,
  watchedUntil,
  folderKey,
  HIERARCHY_KEY,
  hierarchyMarkerOf,
  LEASE_GRACE_MS,
  markerShowsChange,
  newGeneration,
  parseWaitMarker,
  pushHub,
  type PushHub,
} from './feed.ts';
import type { BackendFolderRef } from '../state/types.ts';

/**
 * The longest heartbeat each runtime can hold (seconds), the default of PING_MAX_HEARTBEAT there (DESIGN §5): Workers
 * and Node the protocol's 3540; a Lambda behind a Function URL lives at most 900 s, behind API Gateway 30 s.
 */
export const HEARTBEAT_CAPS = { node: 3540, workers: 3540, lambdaFunctionUrl: 890, lambdaApiGateway: 28 } as const;

/** Folders one Ping may list (Status 6 with MaxFolders above it); Exchange's own limit is configurable too. */
export const MAX_PING_FOLDERS = 300;

/**
 * How much longer than the wait itself a written lease (and the wait marker's `watch`) lasts: the device's next Pings
 * find it still long enough and write nothing. The price: the watcher keeps an account up to this long after its
 * last Ping (and a credential sealed on the lease is renewed only this often: a changed password reaches the watcher
 * at the next renewal).
 */
export const LEASE_EXTENSION_MS = 30 * 60_000;

/** A Sync this soon after another Sync ended the device's wait does not end it again (one write per burst of Syncs). */
const SYNC_END_REPEAT_MS = 60_000;

/** Clocks of different instances disagree a little: feed entries this much older than the wait still count. */
const CLOCK_SKEW_MS = 5_000;

/** How much before the heartbeat a wait answers: 1/20 of it, at most 10 s. */
export function answerMarginMs(heartbeatSeconds: number): number {
  return Math.min(10_000, (heartbeatSeconds * 1000) / 20);
}

/** One folder a request waits on. */
export interface WaitTarget {
  serverId: string;
  source: BackendFolderRef;
  /** The device's collection state (its watermark) when the wait began; undefined when never synced. */
  state: CollectionState | undefined;
  /** The folder's feed marker as the direct check saw it; undefined when it had none. */
  baseline: string | undefined;
}

export interface WaitRequest {
  targets: WaitTarget[];
  /** The hierarchy the device has: a watcher-reported folder list other than it ends a Ping with 'hierarchy'. */
  hierarchy: HierarchyState | undefined;
  /** Whether hierarchy changes end the wait (Ping: yes, Status 7; a hanging Sync: no). */
  endOnHierarchyChange: boolean;
  /** The capped heartbeat, seconds. */
  seconds: number;
  /** When the wait must end (epoch ms), instead of the heartbeat minus answerMarginMs from now. */
  deadline?: number;
}

export type WaitOutcome =
  | { kind: 'changed'; serverIds: string[] }
  | { kind: 'hierarchy' }
  | { kind: 'expired' }
  | { kind: 'superseded' }
  | { kind: 'aborted' };

/** What a wait needs of its request. */
export interface WaitContext {
  state: StateStore;
  device: DeviceScope;
  push: PushConfig;
  /** The user's password: sealed onto the lease, or handed to the in-process watcher; never stored in clear. */
  password: string;
  signal?: AbortSignal;
  hub?: PushHub;
  /** Adds fields to the request's log line (protocol/command.ts CommandContext.note). */
  note?(fields: LogEntry): void;
}

/** The wait of a command's request (Ping, a hanging Sync): its store, device, user and log line. */
export function waitContextOf(
  context: {
    state: StateStore;
    device: DeviceScope;
    user: { password: string };
    signal?: AbortSignal;
    note?(fields: LogEntry): void;
  },
  push: PushConfig,
): WaitContext {
  return {
    state: context.state,
    device: context.device,
    push,
    password: context.user.password,
    ...(context.signal ? { signal: context.signal } : {}),
    ...(context.note ? { note: context.note } : {}),
  };
}

/** A newer request of this device takes over: waiting ones in this process end now. Returns its generation. */
export function announceNewRequest(context: Pick<WaitContext, 'device' | 'hub'>): string {
  const generation = newGeneration();
  (context.hub ?? pushHub).superseded(context.device, generation);
  return generation;
}

/**
 * For a Sync: end this device's waiting Ping or hanging Sync, in this process at once and in others by writing a
 * newer generation, which costs one feed read, plus one write only when a wait is under way.
 */
export async function endWaitingRequests(context: Pick<WaitContext, 'state' | 'device' | 'hub'>): Promise<void> {
  const generation = announceNewRequest(context);
  const feed = await context.state.readFeed(context.device);
  const mine = feed.find((e) => e.folder === deviceKey(context.device.deviceId));
  const wait = mine && parseWaitMarker(mine.marker);
  const now = Date.now();
  // A wait that wrote nothing (its marker still covered it) may be under way until the marker's watch ends.
  if (!wait || watchedUntil(wait) <= now || wait.g >= generation) return;
  // Syncs in a row (MoreAvailable rounds) end it once: a Ping is rarely sent between them.
  if (wait.endedBySync && now - wait.until < SYNC_END_REPEAT_MS) return;
  // The folders and the watch stay: the device is still pinging them, and its next Ping need not write them again.
  await context.state.putFeedEntry(context.device, {
    folder: deviceKey(context.device.deviceId),
    marker: encodeWaitMarker({
      g: generation,
      until: now,
      folders: wait.folders,
      ...(wait.watch !== undefined ? { watch: wait.watch } : {}),
      endedBySync: true,
    }),
    changedAt: now,
    expiresAt: Math.max(now + LEASE_GRACE_MS, wait.watch ?? 0),
  });
}

/**
 * For removing a device (the admin API, with StateStore.deleteDevice): ends its waiting request, and when no other
 * device of the user waits, deletes the user's watch lease and with it any sealed credential; the watcher then
 * lets go of the account.
 */
export async function releaseDevice(state: StateStore, device: DeviceScope): Promise<void> {
  const now = Date.now();
  const feed = await state.readFeed(device);
  const mine = deviceKey(device.deviceId);
  if (feed.some((e) => e.folder === mine)) {
    await state.putFeedEntry(device, {
      folder: mine,
      marker: encodeWaitMarker({ g: newGeneration(now), until: now, folders: [] }),
      changedAt: now,
      expiresAt: now + 1,
    });
  }
  const othersWait = feed.some((e) => {
    if (!e.folder.startsWith('device:') || e.folder === mine) return false;
    const wait = parseWaitMarker(e.marker);
    // A released device's marker has no folders; one a Sync ended keeps them while the device is still pinging.
    return wait !== undefined && wait.folders.length > 0 && watchedUntil(wait) > now;
  });
  if (!othersWait) await state.deleteLease(device);
}

/** Waits until a change, the heartbeat's end, a newer request of the device, or the client going away. */
export async function waitForChanges(
  context: WaitContext,
  request: WaitRequest,
  generation = newGeneration(),
): Promise<WaitOutcome> {
  const hub = context.hub ?? pushHub;
  const { state, device } = context;
  const started = Date.now();
  const deadline = request.deadline ?? started + request.seconds * 1000 - answerMarginMs(request.seconds);
  const targetKeys = request.targets.map((t) => folderKey(t.source));
  const hierarchyMarker = request.hierarchy ? hierarchyMarkerOf(request.hierarchy.folders) : undefined;

  // Everything that can end the wait settles this one promise (`finish`); the listeners go in `finally`.
  let finish: ((outcome: WaitOutcome | { kind: 'failed'; error: unknown }) => void) | undefined;
  let early: WaitOutcome | undefined;
  const end = (outcome: WaitOutcome): void => {
    if (finish) finish(outcome);
    else early ??= outcome;
  };
  const offSuperseded = hub.onSuperseded(device, (g) => {
    if (g > generation) end({ kind: 'superseded' });
  });
  const onAbort = (): void => end({ kind: 'aborted' });
  context.signal?.addEventListener('abort', onAbort);
  let offChanged: (() => void) | undefined;
  let offFeed: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  // The watch this wait needs, and the one it writes when it writes (LEASE_EXTENSION_MS longer).
  const needed = deadline + LEASE_GRACE_MS;
  let watch = needed + LEASE_EXTENSION_MS;
  const claim = (): Promise<void> =>
    state.putFeedEntry(device, {
      folder: deviceKey(device.deviceId),
      marker: encodeWaitMarker({ g: generation, until: deadline, folders: targetKeys, watch }),
      changedAt: started,
      expiresAt: watch,
    });

  try {
    // Older waits of this device in this process end now; in other processes at their next poll (the marker below).
    hub.superseded(device, generation);
    const before = parseWaitMarker(
      (await state.readFeed(device)).find((e) => e.folder === deviceKey(device.deviceId))?.marker ?? '',
    );
    if (before && before.g > generation) return { kind: 'superseded' };
    // An empty password is a Bearer login (AUTH_MODE): a short-lived token is no login for the watcher, which then
    // needs the tenant's master user. DAV servers have no master user: watched DAV folders need the user's password.
    const password = context.password === '' ? undefined : context.password;
    const watchesDav = targetKeys.some((k) => k.startsWith('caldav:') || k.startsWith('carddav:'));
    const useVault =
      (!context.push.master || watchesDav) && context.push.credentialKey !== undefined && password !== undefined;
    // No watcher can log in for these folders: the wait still runs (a newer request ends it), but not silently.
    const gap = watcherLoginGap(context.push, {
      password,
      mail: targetKeys.some((k) => k.startsWith('imap:')),
      dav: watchesDav,
    });
    if (gap) context.note?.({ noWatcherLogin: gap });
    // Nothing to write when the device's marker has these folders, no earlier wait of it may still be under way
    // (elsewhere: it would have to be ended), and its watch (= the lease) outlasts this wait.
    const covered =
      before !== undefined &&
      before.until <= started &&
      sameKeys(before.folders, targetKeys) &&
      (before.watch ?? 0) >= needed;
    if (covered) watch = before.watch!;
    else {
      // Always later than the lease there: watchers read a device's folders again when its lease grows.
      watch = Math.max(watch, (before?.watch ?? 0) + 1);
      await claim();
      await state.putLease({
        tenant: device.tenant,
        user: device.user,
        until: watch,
        ...(useVault ? { credential: await sealCredential(context.push.credentialKey!, device, password) } : {}),
      });
    }
    // In this process the watcher may take the password in memory (never stored): for IMAP without a master user or
    // vault, and for DAV folders without a vault.
    hub.waiting(device, useVault || (context.push.master && !watchesDav) ? undefined : password);

    if (early) return early;
    if (context.signal?.aborted) return { kind: 'aborted' };
    if (Date.now() >= deadline) return { kind: 'expired' };
    // The user's feed is read once per poll interval for all its waiting requests in this process, and at once when
    // the in-process watcher wrote (push/feed-poller.ts).
    const poller = feedPollerOf(state, context.push.pollSeconds * 1000);
    const outcome = await new Promise<WaitOutcome | { kind: 'failed'; error: unknown }>((resolve) => {
      finish = resolve;
      timer = setTimeout(() => resolve({ kind: 'expired' }), deadline - Date.now());
      offChanged = hub.onChanged(device, () => poller.readNow(device));
      offFeed = poller.subscribe(device, (read) => {
        if ('error' in read) return resolve({ kind: 'failed', error: read.error });
        const seen = evaluate(read.feed, started, generation, request, targetKeys, hierarchyMarker, device.deviceId);
        if (seen === 'reclaim') claim().catch((error: unknown) => resolve({ kind: 'failed', error }));
        else if (seen) {
          if (seen.kind === 'changed') reportFeedLag(read.feed, targetKeys, started);
          resolve(seen);
        }
      });
    });
    if (outcome.kind === 'failed') throw outcome.error;
    return outcome;
  } finally {
    finish = undefined;
    clearTimeout(timer);
    offFeed?.();
    offChanged?.();
    offSuperseded();
    context.signal?.removeEventListener('abort', onAbort);
  }
}

/** How long the newest change this wait answers with was in the feed before the wait saw it (the watcher's lag). */
function reportFeedLag(feed: FeedEntry[], targetKeys: string[], started: number): void {
  const keys = new Set(targetKeys);
  const seen = feed.filter((e) => keys.has(e.folder) && e.changedAt >= started - CLOCK_SKEW_MS);
  if (seen.length === 0) return;
  const newest = Math.max(...seen.map((e) => e.changedAt));
  metrics.feedLag(Math.max(0, Date.now() - newest) / 1000);
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((k) => set.has(k));
}

function evaluate(
  feed: FeedEntry[],
  started: number,
  generation: string,
  request: WaitRequest,
  targetKeys: string[],
  hierarchyMarker: string | undefined,
  deviceId: string,
): WaitOutcome | 'reclaim' | undefined {
  const byKey = new Map(feed.map((e) => [e.folder, e]));
  const since = started - CLOCK_SKEW_MS;

  let reclaim = false;
  const mine = parseWaitMarker(byKey.get(deviceKey(deviceId))?.marker ?? '');
  if (mine && mine.g > generation) return { kind: 'superseded' };
  // An older request of the device wrote after us (a race): take the entry back, so the watcher watches our folders.
  if (mine && mine.g < generation && mine.until > Date.now()) reclaim = true;

  const changed: string[] = [];
  request.targets.forEach((target, i) => {
    const entry = byKey.get(targetKeys[i]!);
    if (entry && entry.changedAt >= since && markerShowsChange(entry.marker, target.state, target.baseline))
      changed.push(target.serverId);
  });
  if (changed.length) return { kind: 'changed', serverIds: changed };

  if (request.endOnHierarchyChange && hierarchyMarker !== undefined) {
    const entry = byKey.get(HIERARCHY_KEY);
    if (entry && entry.changedAt >= since && entry.marker !== hierarchyMarker) return { kind: 'hierarchy' };
  }
  return reclaim ? 'reclaim' : undefined;
}
