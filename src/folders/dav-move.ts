/**
 * Moving a calendar, task or contact item to another folder of its class (MoveItems, MS-ASCMD §2.2.1.12): the
 * resource is written into the destination collection (PUT, If-None-Match: *) under a name fixed by the device, the
 * source and the destination, then deleted from the source (If-Match its etag). PUT and DELETE work on every server
 * and runtime, where WebDAV MOVE is refused by some (workerd's fetch, servers that check the UID per collection).
 *
 * Exactly once: a resent request finds its copy under the same name (DavItemBackend.putItem: done, not a second item)
 * and, once the source is gone, the answer it was given in the source state's `movedTo`. The device's collection
 * states learn the move, so that later Syncs send neither a Delete in the source nor an Add in the destination.
 */
import type { ItemBackend } from '../backends/types.ts';
import {
  StateConflictError,
  type CollectionState,
  type DeviceScope,
  type FolderRecord,
  type KeyedState,
  type StateStore,
} from '../state/types.ts';
import { davHrefOf } from './dav-items.ts';
import { davServerId } from './server-ids.ts';

export type DavMoveResult =
  | { kind: 'moved'; dstMsgId: string }
  /** No such item in the source, and no earlier move of it to this destination. */
  | { kind: 'not-found' }
  /** The server refused, the item changed meanwhile, or the device's source state could not learn the move. */
  | { kind: 'failed'; reason: string };

export interface DavMoveRequest {
  state: StateStore;
  device: DeviceScope;
  dav: ItemBackend;
  source: FolderRecord;
  destination: FolderRecord;
  srcMsgId: string;
}

/** How often a collection state update is retried when a Sync of the same collection commits in between. */
const STATE_ATTEMPTS = 3;

/** How many recent moves a collection state remembers for resent requests. */
const REMEMBERED_MOVES = 200;

export async function moveDavItem(req: DavMoveRequest): Promise<DavMoveResult> {
  const { dav, source, destination, srcMsgId } = req;
  const sourceState = await req.state.getCollection(req.device, source.serverId);
  const earlier = (): DavMoveResult => {
    const to = sourceState?.state.movedTo?.[srcMsgId];
    return to?.startsWith(`${destination.serverId}:`) ? { kind: 'moved', dstMsgId: to } : { kind: 'not-found' };
  };
  const href = await davHrefOf(dav, source, sourceState?.state, srcMsgId);
  const [item] = href ? await dav.fetchItems(source.source.ref, [href]) : [];
  if (!href || !item) return earlier();

  const copy = await dav.putItem(
    destination.source.ref,
    undefined,
    item.data,
    undefined,
    await resourceName(req.device, href, destination.source.ref),
  );
  if (!copy.ok) return { kind: 'failed', reason: `PUT into the destination: ${copy.reason}` };
  const removed = await dav.deleteItem(href, item.etag);
  if (!removed.ok && removed.reason === 'conflict') {
    // Changed by another client since it was read: the copy would lose that change. Undo it; the device retries.
    await dav.deleteItem(copy.href, copy.etag).catch(() => undefined);
    return { kind: 'failed', reason: 'the item changed meanwhile' };
  }
  const dstMsgId = davServerId(destination.serverId, copy.href);

  const left = await update(req, source.serverId, sourceState, (state) => leave(state, href, srcMsgId, dstMsgId));
  if (!left) return { kind: 'failed', reason: 'the source state did not learn the move' };
  // Unrecorded, an arrival costs at most an Add of an item the device already moved there: never a loss.
  await update(req, destination.serverId, undefined, (state) => arrive(state, copy.href, copy.etag)).catch(
    () => undefined,
  );
  return { kind: 'moved', dstMsgId };
}

/** The source state without the item, remembering where it went. */
function leave(state: CollectionState, href: string, srcMsgId: string, dstMsgId: string): CollectionState {
  const wm = state.watermark;
  if (wm.kind !== 'dav') return state;
  const etags = { ...wm.etags };
  delete etags[href];
  const ends = wm.ends ? { ...wm.ends } : undefined;
  if (ends) delete ends[href];
  const movedTo = Object.fromEntries(
    [...Object.entries(state.movedTo ?? {}), [srcMsgId, dstMsgId] as const].slice(-REMEMBERED_MOVES),
  );
  return {
    ...state,
    watermark: { ...wm, etags, ...(ends ? { ends } : {}) },
    pending: state.pending.filter((p) => (p.ref ?? p.serverId) !== href && p.serverId !== srcMsgId),
    movedTo,
  };
}

/** The destination state with the item, at the etag it was written with. */
function arrive(state: CollectionState, href: string, etag: string): CollectionState {
  const wm = state.watermark;
  if (wm.kind !== 'dav' || !etag) return state;
  return { ...state, watermark: { ...wm, etags: { ...wm.etags, [href]: etag } } };
}

/**
 * Commits `edit` to the device's state of a collection, keeping its key (the device's key stays valid), retrying
 * over concurrent Syncs. True when written, or when the device has no state of it (nothing to learn).
 */
async function update(
  req: DavMoveRequest,
  collectionId: string,
  first: KeyedState<CollectionState> | undefined,
  edit: (state: CollectionState) => CollectionState,
): Promise<boolean> {
  let current = first ?? (await req.state.getCollection(req.device, collectionId));
  for (let attempt = 1; attempt <= STATE_ATTEMPTS; attempt++) {
    if (!current) return true;
    try {
      await req.state.commitCollection(
        req.device,
        collectionId,
        { syncKey: current.syncKey },
        { ...current, state: edit(current.state) },
      );
      return true;
    } catch (err) {
      if (!(err instanceof StateConflictError)) throw err;
    }
    current = await req.state.getCollection(req.device, collectionId);
  }
  return false;
}

/** A resource name for the copy: the same for every attempt of this device to move this item to this collection. */
async function resourceName(device: DeviceScope, href: string, destinationRef: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    'SHA-256',
    new TextEncoder().encode(JSON.stringify([device.tenant, device.user, device.deviceId, href, destinationRef])),
  );
  return Array.from(new Uint8Array(digest).slice(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}
