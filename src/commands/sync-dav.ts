/**
 * Sync of one calendar, task list or address book (CalDAV/CardDAV): the device's Adds, Changes and Deletes become
 * conditional PUTs and DELETEs, then the server's changes since the device's sync-token go out one window at a time.
 *
 * The state keeps the href → etag map of what the device has (so a change made by the device itself is not sent
 * back), the sync-token, the hrefs still to send, and ClientId → ServerId of recent Adds (a resent Add is answered
 * with the same ServerId, not created twice). ServerIds are `<collectionId>:<short hash of the href>`: stable, and
 * within the protocol's 64 characters whatever the server's hrefs look like.
 */
import type { DavChanges, ItemBackend } from '../backends/types.ts';
import type { CollectionState, PendingChange, SyncOptions, Watermark } from '../state/types.ts';
import { child, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { itemStatus, SyncStatus } from './sync-status.ts';
import { fnv1a32 } from '../util/fnv.ts';

type DavWatermark = Extract<Watermark, { kind: 'dav' }>;

/** Converts one class of DAV items (iCalendar events or todos, vCards) to and from ActiveSync. */
export interface ItemConverter {
  /** The ApplicationData children of an item; undefined when the item is not of this folder's class. */
  toDevice(data: string, options: { version: string; bodyPreferences: NonNullable<SyncOptions['bodyPreferences']> }): Promise<WbxmlElement[] | undefined> | WbxmlElement[] | undefined;
  /** The item text for a device's Add (no `existing`) or Change (merged into `existing`). */
  fromDevice(applicationData: WbxmlElement, options: { version: string; existing?: string; supported?: string[] }): string;
}

export interface DavSyncRequest {
  dav: ItemBackend;
  converter: ItemConverter;
  folderRef: string;
  collectionId: string;
  state: CollectionState;
  options: SyncOptions;
  windowSize: number;
  getChanges: boolean;
  commands: WbxmlElement[];
  version: string;
  /** Properties the client declared with SyncKey 0 (Supported): absent ones in a Change mean "delete". */
  supported?: string[];
}

export interface DavSyncResult {
  status: number;
  state: CollectionState;
  commands: WbxmlElement[];
  responses: WbxmlElement[];
  moreAvailable: boolean;
  progressed: boolean;
}

/** How many ClientIds of recent Adds are remembered for resent requests. */
const REMEMBERED_ADDS = 200;

/** FNV-1a over the href, twice with different seeds: 64 bits, 13 base-36 characters. */
export function davServerId(collectionId: string, href: string): string {
  return `${collectionId}:${fnv1a32(href).toString(36)}${fnv1a32(href, 0x050c5d1f).toString(36)}`;
}

export async function syncDavCollection(req: DavSyncRequest): Promise<DavSyncResult> {
  const { dav, converter, folderRef, collectionId } = req;
  const wm: DavWatermark = req.state.watermark.kind === 'dav' ? { ...req.state.watermark, etags: { ...req.state.watermark.etags } } : { kind: 'dav', syncToken: '', etags: {} };
  const first = req.state.watermark.kind !== 'dav';
  const deviceHrefs = new Map(Object.keys(wm.etags).map((href) => [davServerId(collectionId, href), href]));
  const pending = new Map<string, PendingChange>(req.state.pending.map((p) => [p.ref ?? p.serverId, p]));
  const clientIds = { ...req.state.clientIds };
  const responses: WbxmlElement[] = [];
  let progressed = first;

  // 1. The device's commands.
  for (const command of req.commands) {
    progressed = true;
    const data = child(command, 'ApplicationData');
    if (command.tag === 'Add') {
      const clientId = childText(command, 'ClientId') ?? '';
      const known = clientIds[clientId];
      if (known) {
        responses.push(addResponse(clientId, known, SyncStatus.Success));
        continue;
      }
      const text = data ? safely(() => converter.fromDevice(data, { version: req.version })) : undefined;
      const created = text === undefined ? undefined : await dav.putItem(folderRef, undefined, text);
      if (!created?.ok) {
        responses.push(addResponse(clientId, undefined, SyncStatus.ConversionError));
        continue;
      }
      const serverId = davServerId(collectionId, created.href);
      wm.etags[created.href] = created.etag;
      deviceHrefs.set(serverId, created.href);
      clientIds[clientId] = serverId;
      responses.push(addResponse(clientId, serverId, SyncStatus.Success));
      continue;
    }
    const serverId = childText(command, 'ServerId') ?? '';
    const href = deviceHrefs.get(serverId);
    if (!href) {
      if (command.tag !== 'Fetch') responses.push(itemStatus(command.tag, serverId, SyncStatus.ObjectNotFound));
      continue;
    }
    if (command.tag === 'Delete') {
      const result = await dav.deleteItem(href, (req.options.conflict ?? 1) === 1 ? wm.etags[href] : undefined);
      if (!result.ok && result.reason === 'conflict') {
        // Server wins: the item stays, and the device gets the server's version back.
        responses.push(itemStatus('Delete', serverId, SyncStatus.Conflict));
        pending.set(href, { kind: 'change', serverId, ref: href });
        continue;
      }
      delete wm.etags[href];
      deviceHrefs.delete(serverId);
      pending.delete(href);
    } else if (command.tag === 'Change' && data) {
      const [current] = await dav.fetchItems(folderRef, [href]);
      if (!current) {
        responses.push(itemStatus('Change', serverId, SyncStatus.ObjectNotFound));
        continue;
      }
      const serverWins = (req.options.conflict ?? 1) === 1;
      if (serverWins && current.etag !== wm.etags[href]) {
        responses.push(itemStatus('Change', serverId, SyncStatus.Conflict));
        pending.set(href, { kind: 'change', serverId, ref: href });
        continue;
      }
      const text = safely(() => converter.fromDevice(data, { version: req.version, existing: current.data, ...(req.supported ? { supported: req.supported } : {}) }));
      const written = text === undefined ? undefined : await dav.putItem(folderRef, href, text, serverWins ? current.etag : undefined);
      if (!written?.ok) {
        responses.push(itemStatus('Change', serverId, written ? SyncStatus.Conflict : SyncStatus.ConversionError));
        continue;
      }
      wm.etags[href] = written.etag;
      pending.delete(href);
    } else if (command.tag === 'Fetch') {
      const [item] = await dav.fetchItems(folderRef, [href]);
      const app = item ? await converter.toDevice(item.data, { version: req.version, bodyPreferences: req.options.bodyPreferences ?? [] }) : undefined;
      responses.push(
        app
          ? el('AirSync', 'Fetch', [el('AirSync', 'ServerId', serverId), el('AirSync', 'Status', String(SyncStatus.Success)), el('AirSync', 'ApplicationData', app)])
          : itemStatus('Fetch', serverId, SyncStatus.ObjectNotFound),
      );
    }
  }

  // 2. The server's changes since the device's token (or everything, the first time or when the token was lost).
  if (req.getChanges) {
    let changes = await dav.changesSince(folderRef, wm.syncToken || undefined);
    // The server forgot the token: a full listing, and what the device has but the listing lacks is gone.
    const complete = changes === 'invalid-token';
    if (changes === 'invalid-token') changes = await fullListing(dav, folderRef);
    if (changes.syncToken !== wm.syncToken) progressed = true;
    wm.syncToken = changes.syncToken;
    for (const { href, etag } of changes.changed) {
      if (wm.etags[href] === etag) continue;
      const serverId = davServerId(collectionId, href);
      pending.set(href, { kind: wm.etags[href] === undefined ? 'add' : 'change', serverId, ref: href });
    }
    const removed = complete ? Object.keys(wm.etags).filter((href) => !changes.changed.some((c) => c.href === href)) : changes.removed;
    for (const href of removed) {
      if (wm.etags[href] === undefined) pending.delete(href);
      else pending.set(href, { kind: 'delete', serverId: davServerId(collectionId, href), ref: href });
    }
  }

  // 3. One window.
  const commands: WbxmlElement[] = [];
  const batch = [...pending.values()].slice(0, req.getChanges ? req.windowSize : 0);
  const toFetch = batch.filter((p) => p.kind !== 'delete').map((p) => p.ref!);
  const fetched = new Map((await dav.fetchItems(folderRef, toFetch)).map((item) => [item.href, item]));
  for (const p of batch) {
    const href = p.ref!;
    pending.delete(href);
    if (p.kind === 'delete') {
      commands.push(el('AirSync', 'Delete', [el('AirSync', 'ServerId', p.serverId)]));
      delete wm.etags[href];
      continue;
    }
    const item = fetched.get(href);
    const app = item ? await converter.toDevice(item.data, { version: req.version, bodyPreferences: req.options.bodyPreferences ?? [] }) : undefined;
    if (!item || !app) continue; // Gone meanwhile, or not of this folder's class (a VTODO in an events view).
    const isNew = wm.etags[href] === undefined;
    commands.push(el('AirSync', isNew ? 'Add' : 'Change', [el('AirSync', 'ServerId', p.serverId), el('AirSync', 'ApplicationData', app)]));
    wm.etags[href] = item.etag;
  }
  progressed ||= commands.length > 0;

  const rememberedClientIds = Object.fromEntries(Object.entries(clientIds).slice(-REMEMBERED_ADDS));
  return {
    status: SyncStatus.Success,
    state: { ...req.state, options: req.options, watermark: wm, pending: [...pending.values()], clientIds: rememberedClientIds },
    commands,
    responses,
    moreAvailable: pending.size > 0,
    progressed,
  };
}

async function fullListing(dav: ItemBackend, folderRef: string): Promise<DavChanges> {
  const fresh = await dav.changesSince(folderRef, undefined);
  if (fresh !== 'invalid-token') return fresh;
  return { syncToken: '', changed: await dav.listEtags(folderRef), removed: [] };
}

function safely<T>(convert: () => T): T | undefined {
  try {
    return convert();
  } catch {
    return undefined;
  }
}

function addResponse(clientId: string, serverId: string | undefined, status: number): WbxmlElement {
  return el('AirSync', 'Add', [el('AirSync', 'ClientId', clientId), serverId !== undefined ? el('AirSync', 'ServerId', serverId) : undefined, el('AirSync', 'Status', String(status))]);
}

