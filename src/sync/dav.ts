/**
 * Sync of one calendar, task list or address book (CalDAV/CardDAV): the device's Adds, Changes and Deletes become
 * conditional PUTs and DELETEs, then the server's changes since the device's sync-token go out one window at a time.
 *
 * The state keeps the href → etag map of what the device has (so a change made by the device itself is not sent
 * back), the sync-token, the hrefs still to send, and ClientId → ServerId of recent Adds (a resent Add is answered
 * with the same ServerId, not created twice). ServerIds are `<collectionId>:<short hash of the href>`: stable, and
 * within the protocol's 64 characters whatever the server's hrefs look like.
 */
import type { DavChanges, ItemStore } from '../backends/types.ts';
import type { CollectionState, PendingChange, SyncOptions, Watermark } from '../state/types.ts';
import { child, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { itemStatus, SyncStatus } from './status.ts';
import type { EmailSyncResult } from './email.ts';
import { davServerId } from '../folders/server-ids.ts';
import { itemWindow } from '../items/calendar-window.ts';

type DavWatermark = Extract<Watermark, { kind: 'dav' }>;

/** Converts one class of DAV items (iCalendar events or todos, vCards) to and from ActiveSync. */
export interface ItemConverter {
  /** The ApplicationData children of an item; undefined when the item is not of this folder's class. */
  toDevice(
    data: string,
    options: {
      version: string;
      bodyPreferences: NonNullable<SyncOptions['bodyPreferences']>;
      userEmails?: readonly string[];
    },
  ): Promise<WbxmlElement[] | undefined> | WbxmlElement[] | undefined;
  /**
   * The item text for a device's Add (no `existing`) or Change (merged into `existing`); `instanceId` (16.x,
   * calendars): the Change is about that one occurrence of a series (a RECURRENCE-ID override).
   */
  fromDevice(
    applicationData: WbxmlElement,
    options: {
      version: string;
      existing?: string;
      supported?: string[];
      userEmails?: readonly string[];
      instanceId?: string;
    },
  ): string | Promise<string>;
  /**
   * 16.x Delete with InstanceId (calendars): the item with that occurrence excluded. Absent: such a Delete is refused.
   */
  deleteOccurrence?(data: string, instanceId: string): string;
}

export interface DavSyncRequest {
  dav: ItemStore;
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
  /** The user's addresses (meetings: who organizes, who the user is among the attendees). */
  userEmails?: readonly string[];
  /** Called after each device write with the item before and after (undefined for an Add / a Delete): meeting mail. */
  afterWrite?: (before: string | undefined, after: string | undefined) => Promise<unknown>;
  /**
   * The resource name of a device's Add, the same for each attempt of one Add (ClientId and ApplicationData, whatever
   * the SyncKey): a retry after a lost answer (a timed-out PUT, a Status 16, a resend after Status 3) finds its item
   * instead of creating a second one. Random names when absent.
   */
  addName?: (clientId: string, applicationData: WbxmlElement | undefined) => Promise<string>;
  /**
   * Last touch to a device's Change before it is written (meetings: SEQUENCE raised for an update attendees must get).
   */
  prepareChange?: (before: string, after: string) => string;
}

/** What a collection's Sync gives back is the same for every backend (sync-email.ts). */
export type DavSyncResult = EmailSyncResult;

/** GetItemEstimate with a FilterType reads at most this many new items to judge them. */
const MAX_JUDGED_FOR_ESTIMATE = 500;

/** How many ClientIds of recent Adds are remembered for resent requests. */
const REMEMBERED_ADDS = 200;

export async function syncDavCollection(req: DavSyncRequest): Promise<DavSyncResult> {
  const { dav, converter, folderRef, collectionId } = req;
  const wm: DavWatermark =
    req.state.watermark.kind === 'dav'
      ? {
          ...req.state.watermark,
          etags: { ...req.state.watermark.etags },
          ...(req.state.watermark.ends ? { ends: { ...req.state.watermark.ends } } : {}),
        }
      : { kind: 'dav', syncToken: '', etags: {} };
  // FilterType (calendars: a past window; tasks: incomplete only). What the device holds past the window ages out.
  const window = itemWindow(req.state.class, req.options.filterType);
  wm.ends ??= {};
  const ends = wm.ends;
  const remember = (href: string, data: string | undefined): void => {
    const leavesAt = window && data !== undefined ? window.judge(data).leavesAt : undefined;
    if (leavesAt !== undefined) ends[href] = leavesAt;
    else delete ends[href];
  };
  const userOptions = req.userEmails ? { userEmails: req.userEmails } : {};
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
      const text = data
        ? await safely(() => converter.fromDevice(data, { version: req.version, ...userOptions }))
        : undefined;
      const name = req.addName && clientId ? await req.addName(clientId, data) : undefined;
      const created = text === undefined ? undefined : await dav.putItem(folderRef, undefined, text, undefined, name);
      if (!created?.ok) {
        responses.push(addResponse(clientId, undefined, SyncStatus.ConversionError));
        continue;
      }
      const serverId = davServerId(collectionId, created.href);
      // An earlier attempt of this Add made the item (its answer lost): what is stored is that attempt's text (its
      // UID), and meeting mail goes out for that, once (src/sending/meeting-mail.ts sendItip).
      const stored = created.existed ? (await dav.fetchItems(folderRef, [created.href]))[0]?.data : text;
      wm.etags[created.href] = created.etag;
      deviceHrefs.set(serverId, created.href);
      clientIds[clientId] = serverId;
      remember(created.href, stored);
      responses.push(addResponse(clientId, serverId, SyncStatus.Success));
      if (stored !== undefined) await req.afterWrite?.(undefined, stored).catch(() => undefined);
      continue;
    }
    const serverId = childText(command, 'ServerId') ?? '';
    const href = deviceHrefs.get(serverId);
    if (!href) {
      if (command.tag !== 'Fetch') responses.push(itemStatus(command.tag, serverId, SyncStatus.ObjectNotFound));
      continue;
    }
    // 16.x: a Change or Delete naming one occurrence of a series (airsyncbase:InstanceId, MS-ASAIRS §2.2.2.25).
    const instanceId =
      command.tag === 'Change' || command.tag === 'Delete'
        ? childText(command, 'InstanceId', 'AirSyncBase')?.trim() || undefined
        : undefined;
    if (command.tag === 'Delete' && instanceId !== undefined) {
      responses.push(...(await deleteOccurrence(req, href, serverId, instanceId, wm, remember, pending)));
      continue;
    }
    if (command.tag === 'Delete') {
      // Meeting mail needs what is being deleted (a CANCEL to its attendees).
      const [before] = req.afterWrite ? await dav.fetchItems(folderRef, [href]) : [];
      const result = await dav.deleteItem(href, (req.options.conflict ?? 1) === 1 ? wm.etags[href] : undefined);
      if (!result.ok && result.reason === 'conflict') {
        // Server wins: the item stays, and the device gets the server's version back.
        responses.push(itemStatus('Delete', serverId, SyncStatus.Conflict));
        pending.set(href, { kind: 'change', serverId, ref: href });
        continue;
      }
      delete wm.etags[href];
      delete ends[href];
      deviceHrefs.delete(serverId);
      pending.delete(href);
      if (before && result.ok) await req.afterWrite?.(before.data, undefined).catch(() => undefined);
    } else if (command.tag === 'Change' && data) {
      const [current] = await dav.fetchItems(folderRef, [href]);
      if (!current) {
        responses.push(itemStatus('Change', serverId, SyncStatus.ObjectNotFound));
        continue;
      }
      const serverWins = (req.options.conflict ?? 1) === 1;
      if (serverWins && current.etag !== wm.etags[href]) {
        responses.push(occurrenceStatus('Change', serverId, instanceId, SyncStatus.Conflict));
        pending.set(href, { kind: 'change', serverId, ref: href });
        continue;
      }
      const converted = await safely(() =>
        converter.fromDevice(data, {
          version: req.version,
          existing: current.data,
          ...(req.supported ? { supported: req.supported } : {}),
          ...userOptions,
          ...(instanceId !== undefined ? { instanceId } : {}),
        }),
      );
      const text =
        converted !== undefined && req.prepareChange ? req.prepareChange(current.data, converted) : converted;
      const written =
        text === undefined
          ? undefined
          : await dav.putItem(folderRef, href, text, serverWins ? current.etag : undefined);
      if (!written?.ok) {
        responses.push(
          occurrenceStatus('Change', serverId, instanceId, written ? SyncStatus.Conflict : SyncStatus.ConversionError),
        );
        continue;
      }
      wm.etags[href] = written.etag;
      remember(href, text);
      pending.delete(href);
      await req.afterWrite?.(current.data, text).catch(() => undefined);
    } else if (command.tag === 'Fetch') {
      const [item] = await dav.fetchItems(folderRef, [href]);
      const app = item
        ? await converter.toDevice(item.data, {
            version: req.version,
            bodyPreferences: req.options.bodyPreferences ?? [],
            ...userOptions,
          })
        : undefined;
      responses.push(
        app
          ? el('AirSync', 'Fetch', [
              el('AirSync', 'ServerId', serverId),
              el('AirSync', 'Status', String(SyncStatus.Success)),
              el('AirSync', 'ApplicationData', app),
            ])
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
    const removed = complete
      ? Object.keys(wm.etags).filter((href) => !changes.changed.some((c) => c.href === href))
      : changes.removed;
    for (const href of removed) {
      if (wm.etags[href] === undefined) pending.delete(href);
      else pending.set(href, { kind: 'delete', serverId: davServerId(collectionId, href), ref: href });
    }
    // Items whose last occurrence ended before the window's start leave the device (SoftDelete), unless changed.
    if (window?.start !== undefined) {
      for (const [href, end] of Object.entries(ends)) {
        if (end < window.start && wm.etags[href] !== undefined && !pending.has(href))
          pending.set(href, { kind: 'softdelete', serverId: davServerId(collectionId, href), ref: href });
      }
    }
  }
  // Another FilterType under the live key: the window is resynced, as Exchange does, not started over (MS-ASCMD
  // §2.2.3.68.2); with GetChanges 0 too, since the new options are stored either way. Options first given after
  // SyncKey 0 are no change: nothing was sent under them yet.
  if (!first && (req.state.options.filterType ?? 0) !== (req.options.filterType ?? 0)) {
    await resyncWindow(req, wm, window, pending);
    progressed = true;
  }

  // 3. One window.
  const commands: WbxmlElement[] = [];
  const batch = [...pending.values()].slice(0, req.getChanges ? req.windowSize : 0);
  const toFetch = batch.filter((p) => p.kind !== 'delete' && p.kind !== 'softdelete').map((p) => p.ref!);
  const fetched = new Map((await dav.fetchItems(folderRef, toFetch)).map((item) => [item.href, item]));
  for (const p of batch) {
    const href = p.ref!;
    pending.delete(href);
    if (p.kind === 'delete' || p.kind === 'softdelete') {
      if (p.kind === 'delete' || wm.etags[href] !== undefined)
        commands.push(
          el('AirSync', p.kind === 'delete' ? 'Delete' : 'SoftDelete', [el('AirSync', 'ServerId', p.serverId)]),
        );
      delete wm.etags[href];
      delete ends[href];
      continue;
    }
    const item = fetched.get(href);
    const verdict = item && window ? window.judge(item.data) : undefined;
    if (item && verdict && !verdict.inWindow) {
      // Outside the FilterType: not sent, and gone from a device that has it.
      if (wm.etags[href] !== undefined)
        commands.push(el('AirSync', 'SoftDelete', [el('AirSync', 'ServerId', p.serverId)]));
      delete wm.etags[href];
      delete ends[href];
      continue;
    }
    const app = item
      ? await converter.toDevice(item.data, {
          version: req.version,
          bodyPreferences: req.options.bodyPreferences ?? [],
          ...userOptions,
        })
      : undefined;
    if (!item || !app) continue; // Gone meanwhile, or not of this folder's class (a VTODO in an events view).
    if (verdict?.leavesAt !== undefined) ends[href] = verdict.leavesAt;
    else delete ends[href];
    const isNew = wm.etags[href] === undefined;
    commands.push(
      el('AirSync', isNew ? 'Add' : 'Change', [
        el('AirSync', 'ServerId', p.serverId),
        el('AirSync', 'ApplicationData', app),
      ]),
    );
    wm.etags[href] = item.etag;
  }
  progressed ||= commands.length > 0;

  const rememberedClientIds = Object.fromEntries(Object.entries(clientIds).slice(-REMEMBERED_ADDS));
  if (Object.keys(ends).length === 0) delete wm.ends;
  return {
    status: SyncStatus.Success,
    state: {
      ...req.state,
      options: req.options,
      watermark: wm,
      pending: [...pending.values()],
      clientIds: rememberedClientIds,
    },
    commands,
    responses,
    moreAvailable: pending.size > 0,
    progressed,
  };
}

/**
 * The window under a new FilterType: what the device holds is judged again (outside: SoftDelete; inside: when it
 * leaves), and every item it lacks is offered again, to be judged when it is sent (outside: not sent).
 */
async function resyncWindow(
  req: DavSyncRequest,
  wm: DavWatermark,
  window: ReturnType<typeof itemWindow>,
  pending: Map<string, PendingChange>,
): Promise<void> {
  const pend = (href: string, kind: PendingChange['kind']): void => {
    pending.set(href, { kind, serverId: davServerId(req.collectionId, href), ref: href });
  };
  for (const { href } of await req.dav.listEtags(req.folderRef))
    if (wm.etags[href] === undefined && !pending.has(href)) pend(href, 'add');
  const held = Object.keys(wm.etags).filter((href) => !pending.has(href));
  wm.ends ??= {};
  const ends = wm.ends;
  if (!window) {
    for (const href of held) delete ends[href];
    return;
  }
  for (const item of await req.dav.fetchItems(req.folderRef, held)) {
    const verdict = window.judge(item.data);
    if (!verdict.inWindow) pend(item.href, 'softdelete');
    else if (verdict.leavesAt !== undefined) ends[item.href] = verdict.leavesAt;
    else delete ends[item.href];
  }
}

/**
 * A 16.x Delete of one occurrence: the item is written back with the occurrence excluded (EXDATE, its override
 * removed), under the same Conflict rule as a Change; the device keeps the series. Answers only on failure.
 */
async function deleteOccurrence(
  req: DavSyncRequest,
  href: string,
  serverId: string,
  instanceId: string,
  wm: DavWatermark,
  remember: (href: string, data: string | undefined) => void,
  pending: Map<string, PendingChange>,
): Promise<WbxmlElement[]> {
  const [current] = await req.dav.fetchItems(req.folderRef, [href]);
  if (!current) return [occurrenceStatus('Delete', serverId, instanceId, SyncStatus.ObjectNotFound)];
  const serverWins = (req.options.conflict ?? 1) === 1;
  if (serverWins && current.etag !== wm.etags[href]) {
    pending.set(href, { kind: 'change', serverId, ref: href });
    return [occurrenceStatus('Delete', serverId, instanceId, SyncStatus.Conflict)];
  }
  const deleteOne = req.converter.deleteOccurrence;
  const text = deleteOne ? await safely(() => deleteOne(current.data, instanceId)) : undefined;
  if (text === undefined) return [occurrenceStatus('Delete', serverId, instanceId, SyncStatus.ConversionError)];
  const written = await req.dav.putItem(req.folderRef, href, text, serverWins ? current.etag : undefined);
  if (!written.ok) return [occurrenceStatus('Delete', serverId, instanceId, SyncStatus.Conflict)];
  wm.etags[href] = written.etag;
  remember(href, text);
  pending.delete(href);
  await req.afterWrite?.(current.data, text).catch(() => undefined);
  return [];
}

/** A per-item answer; about one occurrence it names it too (MS-ASAIRS §2.2.2.25: ServerId, InstanceId, Status). */
function occurrenceStatus(
  tag: 'Change' | 'Delete',
  serverId: string,
  instanceId: string | undefined,
  status: number,
): WbxmlElement {
  const answer = itemStatus(tag, serverId, status);
  if (instanceId === undefined) return answer;
  const [id, ...rest] = answer.children;
  return { ...answer, children: [id!, el('AirSyncBase', 'InstanceId', instanceId), ...rest] };
}

async function fullListing(dav: ItemStore, folderRef: string): Promise<DavChanges> {
  const fresh = await dav.changesSince(folderRef, undefined);
  if (fresh !== 'invalid-token') return fresh;
  return { syncToken: '', changed: await dav.listEtags(folderRef), removed: [] };
}

/** The conversion's result; undefined when it throws or rejects (the device's item cannot be converted). */
async function safely<T>(convert: () => T | Promise<T>): Promise<T | undefined> {
  try {
    return await convert();
  } catch {
    return undefined;
  }
}

function addResponse(clientId: string, serverId: string | undefined, status: number): WbxmlElement {
  return el('AirSync', 'Add', [
    el('AirSync', 'ClientId', clientId),
    serverId !== undefined ? el('AirSync', 'ServerId', serverId) : undefined,
    el('AirSync', 'Status', String(status)),
  ]);
}

/**
 * GetItemEstimate for a DAV collection: how many Adds, Changes and Deletes the next Syncs would send — those still
 * pending, the server's changes since the device's token that differ from what it has, and (with a FilterType) items
 * aging out. New items are judged against the filter (one multiget), so the estimate counts what would be sent.
 */
export async function estimateDavChanges(
  dav: ItemStore,
  folderRef: string,
  state: CollectionState,
  options: SyncOptions,
): Promise<number> {
  const wm =
    state.watermark.kind === 'dav'
      ? state.watermark
      : { kind: 'dav' as const, syncToken: '', etags: {} as Record<string, string>, ends: undefined };
  const counted = new Set(state.pending.map((p) => p.ref ?? p.serverId));
  let changes = await dav.changesSince(folderRef, wm.syncToken || undefined);
  const complete = changes === 'invalid-token';
  if (changes === 'invalid-token') changes = await fullListing(dav, folderRef);
  const window = itemWindow(state.class, options.filterType);
  const fresh: string[] = [];
  for (const { href, etag } of changes.changed) {
    if (wm.etags[href] === etag) continue;
    if (wm.etags[href] === undefined && window) fresh.push(href);
    else counted.add(href);
  }
  const listed = new Set(changes.changed.map((c) => c.href));
  const removed = complete ? Object.keys(wm.etags).filter((href) => !listed.has(href)) : changes.removed;
  for (const href of removed) if (wm.etags[href] !== undefined) counted.add(href);
  if (window) {
    // Judged in one multiget up to a bound; past it, new items count as they are (an estimate, not a sync).
    const toJudge = fresh.filter((href) => !counted.has(href));
    for (const href of toJudge.slice(MAX_JUDGED_FOR_ESTIMATE)) counted.add(href);
    for (const item of await dav.fetchItems(folderRef, toJudge.slice(0, MAX_JUDGED_FOR_ESTIMATE)))
      if (window.judge(item.data).inWindow) counted.add(item.href);
    if (window.start !== undefined)
      for (const [href, end] of Object.entries(wm.ends ?? {}))
        if (end < window.start && wm.etags[href] !== undefined) counted.add(href);
  }
  return counted.size;
}
