/**
 * Reading a Sync request (MS-ASCMD §2.2.1.21): Wait and HeartbeatInterval, the collections with their window sizes
 * and options, and the request cache that an empty or Partial Sync (12.1+) reuses.
 */
import { parseCollectionOptions } from '../protocol/options.ts';
import type { CommandContext } from '../protocol/command.ts';
import type { SyncOptions, SyncRequestCache } from '../state/types.ts';
import { child, children, childText, type WbxmlElement } from '../wbxml/tree.ts';
import { SyncStatus } from './status.ts';

export const DEFAULT_WINDOW_SIZE = 100;
export const MAX_WINDOW_SIZE = 512;
export const MAX_COLLECTIONS = 100;
const WAIT_MINUTES = { min: 1, max: 59 } as const;
const HEARTBEAT_SECONDS = { min: 60, max: 3540 } as const;
const REQUEST_CACHE_TTL_MS = 30 * 24 * 3_600_000;

/** A request refused as a whole: its top-level Status, and for Status 14 the Limit it broke. */
export interface SyncRefusal {
  status: number;
  limit?: number;
}

/** Wait (minutes) and HeartbeatInterval (seconds) as the device sent them, checked. */
export interface SyncTiming {
  wait: string | undefined;
  heartbeat: string | undefined;
}

/** One collection of a Sync request, after the cache has filled in what an empty or partial request left out. */
export interface CollectionRequest {
  collectionId: string;
  /** Undefined for a collection taken from the cached request: the device means its current key. */
  syncKey: string | undefined;
  getChanges: boolean | undefined;
  windowSize: number | undefined;
  deletesAsMoves: boolean;
  options: SyncOptions | undefined;
  commands: WbxmlElement[];
  /** The property names the client declared with SyncKey 0 (Calendar, Contacts, Tasks). */
  supported: string[] | undefined;
  /** ConversationMode (MS-ASCMD §2.2.3.36.2, a child of Collection, not of Options); undefined when not sent. */
  conversationMode?: boolean | undefined;
}

export interface SyncRequest {
  collections: CollectionRequest[];
  /** The request's WindowSize, shared by all its collections (MS-ASCMD §2.2.3.199). */
  windowSize: number | undefined;
  /** How long the Sync may hang when it has nothing to send, in seconds; undefined when it answers at once. */
  hangSeconds: number | undefined;
}

/**
 * The root and the timing: Wait (12.1+) and HeartbeatInterval (14.0+) are never both sent, and each within its limits
 * (MS-ASCMD §2.2.3.195, §2.2.3.83; Status 14 with the Limit).
 */
export function readSyncTiming(body: WbxmlElement | undefined): SyncTiming | SyncRefusal {
  if (body && body.tag !== 'Sync') return { status: SyncStatus.ProtocolError };
  const wait = childText(body, 'Wait');
  const heartbeat = childText(body, 'HeartbeatInterval');
  if (wait !== undefined && heartbeat !== undefined) return { status: SyncStatus.ProtocolError };
  for (const [value, range] of [
    [wait, WAIT_MINUTES],
    [heartbeat, HEARTBEAT_SECONDS],
  ] as const) {
    if (value === undefined) continue;
    const n = Number(value);
    if (!Number.isInteger(n) || n < range.min || n > range.max) {
      return { status: SyncStatus.InvalidWaitOrHeartbeat, limit: n < range.min ? range.min : range.max };
    }
  }
  return { wait, heartbeat };
}

/**
 * The collections to sync. An empty or Partial Sync takes what it leaves out from the last full request, cached in
 * the state store (nothing cached: Status 13); a request that lists collections becomes the cached one.
 */
export async function readSyncRequest(
  context: CommandContext,
  body: WbxmlElement | undefined,
  timing: SyncTiming,
): Promise<SyncRequest | SyncRefusal> {
  const { wait, heartbeat } = timing;
  const listed = children(child(body, 'Collections'), 'Collection');
  const parsed = listed.map(parseCollection);
  if (parsed.some((c) => c === undefined)) return { status: SyncStatus.ProtocolError };
  let requests = parsed as CollectionRequest[];
  const partial = child(body, 'Partial') !== undefined;
  const windowSize = windowSizeOf(childText(body, 'WindowSize'));

  // An empty Sync without Wait/HeartbeatInterval hangs as the cached request did (as Exchange does), in seconds.
  let cachedHangSeconds: number | undefined;
  let cached: SyncRequestCache | undefined;
  if (requests.length === 0 || partial) {
    cached = await context.state.getSyncRequestCache(context.device);
    if (!cached) return { status: SyncStatus.IncompleteRequest };
    if (listed.length === 0 && wait === undefined && heartbeat === undefined) {
      cachedHangSeconds = cached.wait !== undefined ? cached.wait * 60 : cached.heartbeatInterval;
    }
    const fromCache: CollectionRequest[] = cached.collections
      .filter((c) => !requests.some((r) => r.collectionId === c.collectionId))
      .map((c) => ({
        collectionId: c.collectionId,
        syncKey: undefined,
        getChanges: c.getChanges,
        windowSize: c.windowSize,
        deletesAsMoves: true,
        options: c.options,
        commands: [],
        supported: undefined,
      }));
    requests = [...requests, ...fromCache];
  }
  if (requests.length > MAX_COLLECTIONS) return { status: SyncStatus.TooManyCollections };
  if (listed.length > 0) await cacheRequest(context, requests, windowSize, wait, heartbeat, cached);
  const hangSeconds =
    wait !== undefined ? Number(wait) * 60 : heartbeat !== undefined ? Number(heartbeat) : cachedHangSeconds;
  return { collections: requests, windowSize, hangSeconds };
}

function windowSizeOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  // 0 and anything above the maximum mean the maximum (MS-ASCMD §2.2.3.199).
  return !Number.isInteger(n) || n <= 0 || n > MAX_WINDOW_SIZE ? MAX_WINDOW_SIZE : n;
}

function parseCollection(c: WbxmlElement): CollectionRequest | undefined {
  const collectionId = childText(c, 'CollectionId');
  const syncKey = childText(c, 'SyncKey');
  if (!collectionId || syncKey === undefined) return undefined;
  const getChanges = childText(c, 'GetChanges');
  const conversationMode = childText(c, 'ConversationMode');
  return {
    collectionId,
    syncKey,
    getChanges: getChanges === undefined ? undefined : getChanges !== '0',
    windowSize: windowSizeOf(childText(c, 'WindowSize')),
    deletesAsMoves: childText(c, 'DeletesAsMoves') !== '0',
    // Every Options block, with its Class: which one applies is known once the folder is (engine.ts).
    options: parseCollectionOptions(children(c, 'Options', 'AirSync')),
    commands: child(c, 'Commands')?.children ?? [],
    supported: child(c, 'Supported')?.children.map((p) => p.tag),
    ...(conversationMode !== undefined ? { conversationMode: conversationMode.trim() === '1' } : {}),
  };
}

async function cacheRequest(
  context: CommandContext,
  requests: CollectionRequest[],
  windowSize: number | undefined,
  wait: string | undefined,
  heartbeat: string | undefined,
  read: SyncRequestCache | undefined,
): Promise<void> {
  const now = Date.now();
  const cache: SyncRequestCache = {
    collections: requests.map((r) => ({
      collectionId: r.collectionId,
      ...(r.windowSize !== undefined ? { windowSize: r.windowSize } : {}),
      ...(r.getChanges !== undefined ? { getChanges: r.getChanges } : {}),
      ...(r.options ? { options: r.options } : {}),
    })),
    ...(windowSize !== undefined ? { windowSize } : {}),
    ...(wait !== undefined ? { wait: Number(wait) } : {}),
    ...(heartbeat !== undefined ? { heartbeatInterval: Number(heartbeat) } : {}),
    expiresAt: now + REQUEST_CACHE_TTL_MS,
  };
  // A device repeats the same request (the usual Sync of its Inbox): it is written again only when it differs, or
  // to push its expiry on once half of it has passed. Issued ahead with the request's other reads (commands/sync.ts).
  const stored = read ?? (await context.state.getSyncRequestCache(context.device));
  if (
    stored &&
    stored.expiresAt - now > REQUEST_CACHE_TTL_MS / 2 &&
    sameRequest({ ...stored, expiresAt: 0 }, { ...cache, expiresAt: 0 })
  )
    return;
  await context.state.putSyncRequestCache(context.device, cache);
}

/** Whether two cached requests say the same (key order aside: one may have been through a store's encoding). */
function sameRequest(a: SyncRequestCache, b: SyncRequestCache): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : 1)))
      : v,
  );
}
