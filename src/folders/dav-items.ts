/**
 * Finding a calendar, task, contact or note item by the ServerId the device holds (`<collectionId>:<hash of the href>`,
 * server-ids.ts), for the commands that address single items (ItemOperations Fetch, MoveItems). The hash cannot be
 * reversed: the href comes from what the device's collection state says it has, else from the folder's listing.
 */
import { FolderType, type DavItem, type ItemBackend, type ItemStore, type UserBackends } from '../backends/types.ts';
import type { CollectionState, FolderRecord } from '../state/types.ts';
import { davServerId } from './server-ids.ts';

/**
 * Whether a folder's items are texts in an ItemStore rather than mail: a CalDAV or CardDAV collection, or the notes
 * folder (a mail folder the listing typed Notes: backends/types.ts NotesBackend).
 */
export function isItemFolder(folder: FolderRecord): boolean {
  return folder.source.backend !== 'imap' || isNotesFolder(folder);
}

/** The notes folder: a mail folder whose messages are notes. */
export function isNotesFolder(folder: FolderRecord): boolean {
  return folder.source.backend === 'imap' && folder.type === FolderType.Notes;
}

/** The store of an item folder's items (isItemFolder); undefined for a mail folder or a backend the user lacks. */
export function itemStoreOf(backends: UserBackends, folder: FolderRecord): ItemStore | undefined {
  return isNotesFolder(folder) ? backends.notes : davBackendOf(backends, folder);
}

/** The backend holding a DAV folder's items; undefined for a mail folder or a backend the tenant lacks. */
export function davBackendOf(backends: UserBackends, folder: FolderRecord): ItemBackend | undefined {
  if (folder.source.backend === 'caldav') return backends.calendars;
  if (folder.source.backend === 'carddav') return backends.contacts;
  return undefined;
}

/** The href behind a ServerId of this folder; undefined when no item of the folder has it. */
export async function davHrefOf(
  dav: ItemStore,
  folder: FolderRecord,
  state: CollectionState | undefined,
  serverId: string,
): Promise<string | undefined> {
  if (!serverId.startsWith(`${folder.serverId}:`)) return undefined;
  const wm = state?.watermark;
  const known =
    wm?.kind === 'dav'
      ? Object.keys(wm.etags).find((href) => davServerId(folder.serverId, href) === serverId)
      : undefined;
  if (known) return known;
  // Not synced by this device (or since changed): the listing is the truth.
  return (await dav.listEtags(folder.source.ref)).find((e) => davServerId(folder.serverId, e.href) === serverId)?.href;
}

/** The item behind a ServerId of this folder, as the server has it now. */
export async function findDavItem(
  dav: ItemStore,
  folder: FolderRecord,
  state: CollectionState | undefined,
  serverId: string,
): Promise<DavItem | undefined> {
  const href = await davHrefOf(dav, folder, state, serverId);
  if (!href) return undefined;
  const [item] = await dav.fetchItems(folder.source.ref, [href]);
  return item;
}
