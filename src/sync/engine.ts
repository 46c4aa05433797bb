/**
 * Sync (MS-ASCMD §2.2.1.21): per collection, the device's commands in and the server's changes out, each answer
 * under a new SyncKey that is stored by compare-and-set together with the new state.
 *
 * A device that lost our answer resends its previous key: it gets the stored answer again, and its commands are
 * not applied twice. Empty and Partial Sync (12.1+) reuse the last full request, cached in the state store.
 */
import { openBackends } from '../backends/open.ts';
import type { UserBackends } from '../backends/types.ts';
import { FolderNotFoundError, FolderType } from '../backends/types.ts';
import { firstSyncKey, INITIAL_SYNC_KEY, nextSyncKey, REPLAY_TTL_MS } from '../protocol/synckey.ts';
import { StateConflictError, type CollectionState, type HierarchyState, type SyncOptions, type SyncRequestCache } from '../state/types.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { child, children, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { type CommandContext, type CommandResult } from '../protocol/command.ts';
import { converterFor } from './dav-converters.ts';
import { itemClassOf } from '../folders/hierarchy.ts';
import { syncDavCollection } from './dav.ts';
import { prepareMeetingWrite, sendInvitations, userAddresses } from '../sending/meeting-mail.ts';
import { warnAfterSend } from '../sending/compose.ts';
import { syncEmailCollection } from './email.ts';
import { afterSync, answerResent, loopWindow } from './loop-detection.ts';
import { syncDraftsCollection } from './drafts.ts';
import { atLeast } from '../protocol/versions.ts';
import { parseSyncOptions } from '../protocol/options.ts';
import { SyncStatus } from './status.ts';
import { endWaitingRequests } from '../push/wait.ts';
import { waitInSync } from './hanging.ts';

export const DEFAULT_WINDOW_SIZE = 100;
export const MAX_WINDOW_SIZE = 512;
export const MAX_COLLECTIONS = 100;
const WAIT_MINUTES = { min: 1, max: 59 } as const;
const HEARTBEAT_SECONDS = { min: 60, max: 3540 } as const;
const REQUEST_CACHE_TTL_MS = 30 * 24 * 3_600_000;

/** One collection of a Sync request, after the cache has filled in what an empty or partial request left out. */
interface CollectionRequest {
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
}

function topStatus(status: number, extra: WbxmlElement[] = []): CommandResult {
  return { kind: 'wbxml', body: el('AirSync', 'Sync', [el('AirSync', 'Status', String(status)), ...extra]) };
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
  const optionsElement = child(c, 'Options');
  return {
    collectionId,
    syncKey,
    getChanges: getChanges === undefined ? undefined : getChanges !== '0',
    windowSize: windowSizeOf(childText(c, 'WindowSize')),
    deletesAsMoves: childText(c, 'DeletesAsMoves') !== '0',
    options: optionsElement ? parseSyncOptions(optionsElement) : undefined,
    commands: child(c, 'Commands')?.children ?? [],
    supported: child(c, 'Supported')?.children.map((p) => p.tag),
  };
}

export async function sync(context: CommandContext): Promise<CommandResult> {
  const body = context.body;
  if (body && body.tag !== 'Sync') return topStatus(SyncStatus.ProtocolError);

  // Wait (minutes, 12.1+) and HeartbeatInterval (seconds, 14.0+): never both, and within the limits.
  const wait = childText(body, 'Wait');
  const heartbeat = childText(body, 'HeartbeatInterval');
  if (wait !== undefined && heartbeat !== undefined) return topStatus(SyncStatus.ProtocolError);
  for (const [value, range] of [[wait, WAIT_MINUTES], [heartbeat, HEARTBEAT_SECONDS]] as const) {
    if (value === undefined) continue;
    const n = Number(value);
    if (!Number.isInteger(n) || n < range.min || n > range.max) {
      return topStatus(SyncStatus.InvalidWaitOrHeartbeat, [el('AirSync', 'Limit', String(n < range.min ? range.min : range.max))]);
    }
  }
  // push (src/push/wait.ts): a Sync ends this device's waiting Ping or hanging Sync.
  await endWaitingRequests(context);

  const listed = children(child(body, 'Collections'), 'Collection');
  const parsed = listed.map(parseCollection);
  if (parsed.some((c) => c === undefined)) return topStatus(SyncStatus.ProtocolError);
  let requests = parsed as CollectionRequest[];
  const partial = child(body, 'Partial') !== undefined;
  const globalWindow = windowSizeOf(childText(body, 'WindowSize'));

  // An empty Sync without Wait/HeartbeatInterval hangs as the cached request did (as Exchange does), in seconds.
  let cachedHangSeconds: number | undefined;
  if (requests.length === 0 || partial) {
    const cached = await context.state.getSyncRequestCache(context.device);
    if (!cached) return topStatus(SyncStatus.IncompleteRequest);
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
  if (requests.length > MAX_COLLECTIONS) return topStatus(SyncStatus.TooManyCollections);
  if (listed.length > 0) await cacheRequest(context, requests, globalWindow, wait, heartbeat);

  const hierarchy = (await context.state.getHierarchy(context.device))?.state;
  let backends: UserBackends | undefined;
  const collections: WbxmlElement[] = [];
  let remaining = globalWindow ?? Number.POSITIVE_INFINITY;
  try {
    for (const request of requests) {
      const windowSize = Math.min(request.windowSize ?? globalWindow ?? DEFAULT_WINDOW_SIZE, remaining);
      const open = async (): Promise<UserBackends> => (backends ??= await openBackends(context));
      const { element, sent } = await syncCollection(context, hierarchy, request, windowSize, open);
      remaining -= sent;
      collections.push(element);
    }
  } finally {
    await (backends as UserBackends | undefined)?.close();
  }
  const response: CommandResult = { kind: 'wbxml', body: el('AirSync', 'Sync', [el('AirSync', 'Collections', collections)]) };
  // A hanging Sync with nothing to send waits on the change feed, then syncs again (hanging.ts).
  const hangSeconds = wait !== undefined ? Number(wait) * 60 : heartbeat !== undefined ? Number(heartbeat) : cachedHangSeconds;
  if (hangSeconds === undefined) return response;
  const requested = requests.map((r) => ({ collectionId: r.collectionId, syncKey: r.syncKey }));
  return waitInSync(context, { seconds: hangSeconds, hierarchy, requested, elements: collections, response, again: () => sync(context) });
}

async function cacheRequest(context: CommandContext, requests: CollectionRequest[], windowSize: number | undefined, wait: string | undefined, heartbeat: string | undefined): Promise<void> {
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
    expiresAt: Date.now() + REQUEST_CACHE_TTL_MS,
  };
  await context.state.putSyncRequestCache(context.device, cache);
}

/** A DAV resource name for a device's Add: a hash of who sent it, under which key, with which ClientId (sync-dav.ts). */
async function addResourceName(context: CommandContext, collectionId: string, syncKey: string, clientId: string): Promise<string> {
  const { tenant, user, deviceId } = context.device;
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(JSON.stringify([tenant, user, deviceId, collectionId, syncKey, clientId])));
  return Array.from(new Uint8Array(digest).slice(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}

function collectionStatus(collectionId: string, status: number, syncKey?: string): WbxmlElement {
  return el('AirSync', 'Collection', [
    syncKey !== undefined ? el('AirSync', 'SyncKey', syncKey) : undefined,
    el('AirSync', 'CollectionId', collectionId),
    el('AirSync', 'Status', String(status)),
  ]);
}

async function syncCollection(
  context: CommandContext,
  hierarchy: HierarchyState | undefined,
  request: CollectionRequest,
  windowSize: number,
  open: () => Promise<UserBackends>,
): Promise<{ element: WbxmlElement; sent: number }> {
  const { collectionId } = request;
  const folder = hierarchy?.folders.find((f) => f.serverId === collectionId);
  const converter = folder && folder.source.backend !== 'imap' ? converterFor(folder.type) : undefined;
  if (!folder || (folder.source.backend !== 'imap' && !converter)) return { element: collectionStatus(collectionId, SyncStatus.HierarchyChanged), sent: 0 };

  if (request.syncKey === INITIAL_SYNC_KEY) {
    if (request.commands.length) return { element: collectionStatus(collectionId, SyncStatus.ProtocolError), sent: 0 };
    const syncKey = firstSyncKey();
    const state: CollectionState = {
      class: itemClassOf(folder.type),
      watermark: { kind: 'none' },
      options: request.options ?? {},
      pending: [],
      clientIds: {},
      ...(request.supported ? { supported: request.supported } : {}),
    };
    await context.state.commitCollection(context.device, collectionId, 'any', { syncKey, state });
    return { element: collectionStatus(collectionId, SyncStatus.Success, syncKey), sent: 0 };
  }

  const stored = await context.state.getCollection(context.device, collectionId);
  const requestKey = request.syncKey ?? stored?.syncKey;
  if (!stored || requestKey === undefined) return { element: collectionStatus(collectionId, SyncStatus.InvalidSyncKey), sent: 0 };
  if (stored.syncKey !== requestKey) {
    // The device lost our last answer: the same answer again; its commands were applied the first time.
    // Resent again and again: loop detection (devices/loop-detection.ts) shrinks the answer, then skips a broken item.
    if (stored.replay?.syncKey === requestKey) return { element: await answerResent(context, collectionId, stored, requestKey), sent: 0 };
    return { element: collectionStatus(collectionId, SyncStatus.InvalidSyncKey), sent: 0 };
  }
  // A new FilterType under the same key: start over, as Exchange does.
  if (request.options?.filterType !== undefined && request.options.filterType !== (stored.state.options.filterType ?? 0)) {
    await context.state.deleteCollection(context.device, collectionId);
    return { element: collectionStatus(collectionId, SyncStatus.InvalidSyncKey), sent: 0 };
  }

  // One item per Sync while a loop is being resolved (devices/loop-detection.ts).
  windowSize = loopWindow(stored.state, windowSize);
  const backends = await open();
  const trash = hierarchy?.folders.find((f) => f.type === FolderType.DeletedItems && f.source.backend === 'imap');
  const options = { ...stored.state.options, ...request.options };
  // 16.0+ devices edit and send drafts through Sync (sync-drafts.ts).
  const drafts16 = folder.type === FolderType.Drafts && atLeast(context.request.version, '16.0');
  let result;
  try {
    const dav = folder.source.backend === 'caldav' ? backends.calendars : folder.source.backend === 'carddav' ? backends.contacts : undefined;
    result = dav && converter
      ? await syncDavCollection({
          dav,
          converter,
          folderRef: folder.source.ref,
          collectionId,
          state: stored.state,
          options,
          windowSize,
          getChanges: request.getChanges ?? true,
          commands: request.commands,
          version: context.request.version,
          ...(stored.state.supported ? { supported: stored.state.supported } : {}),
          // Meetings (src/commands/meeting-mail.ts): who the user is; SEQUENCE raised on updates; and, 16.x, the server
          // mails the invitations for what the device organizes (up to 14.1 the device sends them with SendMail).
          userEmails: userAddresses(context),
          addName: (clientId: string) => addResourceName(context, collectionId, requestKey, clientId),
          ...(folder.source.backend === 'caldav' && itemClassOf(folder.type) === 'Calendar'
            ? {
                prepareChange: (before: string, after: string) => prepareMeetingWrite(context, before, after),
                ...(atLeast(context.request.version, '16.0')
                  ? {
                      // The calendar write stands whatever happens to the mail; a failure shows in the request's log line.
                      afterWrite: (before: string | undefined, after: string | undefined) =>
                        sendInvitations(context, before, after).catch((err: unknown) => warnAfterSend(context, 'meeting-mail-failed', err)),
                    }
                  : {}),
              }
            : {}),
        })
      : await (drafts16
          ? (r: Parameters<typeof syncEmailCollection>[0]) => syncDraftsCollection(context, r, (clientId) => addResourceName(context, collectionId, requestKey, clientId))
          : syncEmailCollection)({
          mail: backends.mail,
          folderRef: folder.source.ref,
          collectionId,
          trashRef: trash?.source.ref,
          state: stored.state,
          options,
          windowSize,
          getChanges: request.getChanges ?? true,
          deletesAsMoves: request.deletesAsMoves,
          commands: request.commands,
          version: context.request.version,
          fileReference: (uid, partId) => `${collectionId}:${uid}:${partId}`,
        });
  } catch (err) {
    // Another client deleted or renamed the folder: the device must FolderSync.
    if (err instanceof FolderNotFoundError) return { element: collectionStatus(collectionId, SyncStatus.HierarchyChanged), sent: 0 };
    throw err;
  }
  if (result.status === SyncStatus.InvalidSyncKey) {
    await context.state.deleteCollection(context.device, collectionId);
    return { element: collectionStatus(collectionId, SyncStatus.InvalidSyncKey), sent: 0 };
  }
  if (!result.progressed && result.responses.length === 0) {
    return { element: collectionStatus(collectionId, SyncStatus.Success, requestKey), sent: 0 };
  }

  const newKey = nextSyncKey(requestKey) ?? firstSyncKey();
  const element = el('AirSync', 'Collection', [
    el('AirSync', 'SyncKey', newKey),
    el('AirSync', 'CollectionId', collectionId),
    el('AirSync', 'Status', String(SyncStatus.Success)),
    result.commands.length ? el('AirSync', 'Commands', result.commands) : undefined,
    result.responses.length ? el('AirSync', 'Responses', result.responses) : undefined,
    result.moreAvailable ? el('AirSync', 'MoreAvailable') : undefined,
  ]);
  try {
    await context.state.commitCollection(context.device, collectionId, { syncKey: requestKey }, {
      syncKey: newKey,
      state: afterSync(result.state, result.moreAvailable),
      replay: { syncKey: requestKey, response: encodeWbxml(element), expiresAt: Date.now() + REPLAY_TTL_MS },
    });
  } catch (err) {
    // Another request of this device moved this collection first; nothing of ours was recorded, the device retries.
    if (err instanceof StateConflictError) return { element: collectionStatus(collectionId, SyncStatus.Retry), sent: 0 };
    throw err;
  }
  return { element, sent: result.commands.length };
}
