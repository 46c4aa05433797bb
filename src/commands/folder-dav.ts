/**
 * FolderCreate, FolderUpdate and FolderDelete for calendars, task lists and address books (CalDAV/CardDAV): a new
 * collection in the user's home (MKCALENDAR, or an extended MKCOL for an address book), a new displayname
 * (PROPPATCH), a DELETE. DAV collections do not nest: they are created at the top level whatever ParentId says (a
 * client may name the default Calendar as parent, as Exchange nests them), and cannot be moved.
 *
 * Only user folders (13 calendar, 14 contacts, 15 tasks) change: the default ones (7, 8, 9) are the server's (Status
 * 3). A calendar that holds both events and tasks is two folders for the device; deleting one deletes both.
 */
import { withBackends } from '../backends/open.ts';
import type { UserBackends } from '../backends/types.ts';
import { collectionOf } from '../backends/types.ts';
import { FolderType, type ItemBackend } from '../backends/types.ts';
import type { FolderRecord, HierarchyState } from '../state/types.ts';
import { el } from '../wbxml/tree.ts';
import { itemClassOf } from '../folders/hierarchy.ts';
import {
  FolderStatus,
  folderRecord,
  isValidFolderName,
  type FolderChangeOutcome,
  type FolderChangeRequest,
} from './folder-changes.ts';

const CLASS_OF_TYPE: Readonly<Record<number, 'Calendar' | 'Tasks' | 'Contacts'>> = {
  [FolderType.UserCalendar]: 'Calendar',
  [FolderType.UserTasks]: 'Tasks',
  [FolderType.UserContacts]: 'Contacts',
};

/** Is this a folder type a DAV backend makes (13, 14, 15)? */
export function isDavFolderType(type: number): boolean {
  return CLASS_OF_TYPE[type] !== undefined;
}

export function isDavFolder(folder: FolderRecord): boolean {
  return folder.source.backend === 'caldav' || folder.source.backend === 'carddav';
}

function backendFor(backends: UserBackends, kind: 'Calendar' | 'Tasks' | 'Contacts'): ItemBackend | undefined {
  return kind === 'Contacts' ? backends.contacts : backends.calendars;
}

function nextServerId(hierarchy: HierarchyState): number {
  return (
    hierarchy.nextServerId ?? hierarchy.folders.reduce((max, f) => Math.max(max, Number(f.serverId) + 1 || max), 1)
  );
}

export async function createDavFolder(
  { context, hierarchy }: FolderChangeRequest,
  parentId: string,
  name: string,
  type: number,
): Promise<FolderChangeOutcome> {
  const kind = CLASS_OF_TYPE[type]!;
  if (!isValidFolderName(name)) return { status: FolderStatus.BadRequest };
  const parent = parentId === '0' ? 'root' : hierarchy.folders.find((f) => f.serverId === parentId);
  if (!parent) return { status: FolderStatus.ParentNotFound };
  // A calendar under a mail folder, say, is something DAV cannot hold.
  if (parent !== 'root' && !(isDavFolder(parent) && itemClassOf(parent.type) === kind))
    return { status: FolderStatus.SpecialFolder };
  return withBackends(context, async (backends) => {
    const dav = backendFor(backends, kind);
    if (!dav) return { status: FolderStatus.SpecialFolder };
    const created = await dav.createCollection(name, kind);
    if (created === 'exists') return { status: FolderStatus.NameExists };
    const serverId = String(nextServerId(hierarchy));
    return {
      hierarchy: {
        folders: [...hierarchy.folders, folderRecord(serverId, '0', created)],
        nextServerId: Number(serverId) + 1,
      },
      answer: [el('FolderHierarchy', 'ServerId', serverId)],
    };
  });
}

export async function updateDavFolder(
  { context, hierarchy }: FolderChangeRequest,
  folder: FolderRecord,
  parentId: string,
  name: string,
): Promise<FolderChangeOutcome> {
  const kind = CLASS_OF_TYPE[folder.type];
  if (!kind) return { status: FolderStatus.SpecialFolder };
  if (!isValidFolderName(name)) return { status: FolderStatus.BadRequest };
  if (parentId !== folder.parentId && parentId !== '0') return { status: FolderStatus.ParentNotFound };
  if (name === folder.displayName) return { hierarchy };
  return withBackends(context, async (backends) => {
    const dav = backendFor(backends, kind)!;
    const live = await dav.listFolders();
    if (!live.some((f) => f.ref === folder.source.ref)) return { status: FolderStatus.FolderNotFound };
    if (
      live.some(
        (f) =>
          f.itemClass === kind && f.displayName === name && collectionOf(f.ref) !== collectionOf(folder.source.ref),
      )
    )
      return { status: FolderStatus.NameExists };
    if ((await dav.renameCollection(folder.source.ref, name)) === 'not-found')
      return { status: FolderStatus.FolderNotFound };
    // Both views of one calendar carry its name.
    const collection = collectionOf(folder.source.ref);
    return {
      hierarchy: {
        ...hierarchy,
        folders: hierarchy.folders.map((f) =>
          isDavFolder(f) && collectionOf(f.source.ref) === collection ? { ...f, displayName: name } : f,
        ),
      },
    };
  });
}

export async function deleteDavFolder(
  { context, hierarchy }: FolderChangeRequest,
  folder: FolderRecord,
): Promise<FolderChangeOutcome> {
  const kind = CLASS_OF_TYPE[folder.type];
  if (!kind) return { status: FolderStatus.SpecialFolder };
  const gone = await withBackends(
    context,
    async (backends) => (await backendFor(backends, kind)!.deleteCollection(folder.source.ref)) === 'ok',
  );
  if (!gone) return { status: FolderStatus.FolderNotFound };
  const collection = collectionOf(folder.source.ref);
  const removed = hierarchy.folders
    .filter(
      (f) => isDavFolder(f) && f.source.backend === folder.source.backend && collectionOf(f.source.ref) === collection,
    )
    .map((f) => f.serverId);
  return {
    hierarchy: { ...hierarchy, folders: hierarchy.folders.filter((f) => !removed.includes(f.serverId)) },
    removed,
  };
}
