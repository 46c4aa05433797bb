/**
 * The folder hierarchy a device knows, and how it moves on: the diff between the stored folder list and what the
 * backends report now. Shared by FolderSync and the folder commands (FolderCreate, FolderUpdate, FolderDelete),
 * which all advance the same hierarchy SyncKey.
 */
import { FolderType, type BackendFolder } from '../backends/types.ts';
import type { FolderRecord, HierarchyState } from '../state/types.ts';
import { el, type WbxmlElement } from '../wbxml/tree.ts';

export interface HierarchyDiff {
  next: HierarchyState;
  added: FolderRecord[];
  updated: FolderRecord[];
  deleted: FolderRecord[];
}

/** The first ServerId handed out; low numbers stay short on the wire. */
const FIRST_SERVER_ID = 1;

/**
 * Matches current folders to stored ones: by backend ref, then (for folders renamed or moved by another client) by
 * identity when exactly one vanished and one new folder share it. Matched folders keep their ServerId.
 */
export function diffHierarchy(
  stored: HierarchyState | undefined,
  listed: BackendFolder[],
  unavailable: ReadonlySet<string> = new Set(),
): HierarchyDiff {
  const previous = stored?.folders ?? [];
  // Folders of a backend that did not answer stay as they were.
  const current = [...listed, ...previous.filter((f) => unavailable.has(f.source.backend)).map(asBackendFolder)];
  let nextServerId =
    stored?.nextServerId ?? previous.reduce((max, f) => Math.max(max, Number(f.serverId) + 1 || max), FIRST_SERVER_ID);
  const byRef = new Map(previous.map((f) => [refKey(f.source.backend, f.source.ref), f]));
  const matched = new Map<BackendFolder, FolderRecord>();
  for (const folder of current) {
    const known = byRef.get(refKey(folder.backend, folder.ref));
    if (known) matched.set(folder, known);
  }
  const unmatchedOld = previous.filter((f) => ![...matched.values()].includes(f));
  const unmatchedNew = current.filter((f) => !matched.has(f));
  for (const folder of unmatchedNew) {
    if (!folder.identity) continue;
    const candidatesOld = unmatchedOld.filter(
      (f) => f.identity === folder.identity && f.source.backend === folder.backend,
    );
    const candidatesNew = unmatchedNew.filter((f) => f.identity === folder.identity && f.backend === folder.backend);
    if (candidatesOld.length === 1 && candidatesNew.length === 1) matched.set(folder, candidatesOld[0]!);
  }

  const serverIdOf = new Map<string, string>();
  for (const folder of current) {
    const serverId = matched.get(folder)?.serverId ?? String(nextServerId++);
    serverIdOf.set(refKey(folder.backend, folder.ref), serverId);
  }

  const folders: FolderRecord[] = [];
  const added: FolderRecord[] = [];
  const updated: FolderRecord[] = [];
  for (const folder of current) {
    const record: FolderRecord = {
      serverId: serverIdOf.get(refKey(folder.backend, folder.ref))!,
      parentId: folder.parentRef ? (serverIdOf.get(refKey(folder.backend, folder.parentRef)) ?? '0') : '0',
      displayName: folder.displayName,
      type: folder.type,
      source: { backend: folder.backend, ref: folder.ref },
      ...(folder.identity ? { identity: folder.identity } : {}),
    };
    folders.push(record);
    const before = matched.get(folder);
    if (!before) added.push(record);
    else if (
      before.displayName !== record.displayName ||
      before.parentId !== record.parentId ||
      before.type !== record.type ||
      before.source.ref !== record.source.ref
    ) {
      updated.push(record);
    }
  }
  const keptIds = new Set(folders.map((f) => f.serverId));
  const deleted = previous.filter((f) => !keptIds.has(f.serverId));
  return { next: { folders, nextServerId }, added: parentsFirst(added, folders), updated, deleted };
}

/** A stored folder as its backend would list it (for keeping folders of a backend that is unavailable). */
function asBackendFolder(f: FolderRecord): BackendFolder {
  return {
    backend: f.source.backend,
    ref: f.source.ref,
    // Only mail folders nest; DAV collections are top level.
    parentRef: undefined,
    displayName: f.displayName,
    type: f.type,
    itemClass: itemClassOf(f.type),
    ...(f.identity ? { identity: f.identity } : {}),
  };
}

/** The ActiveSync class of a folder type. */
export function itemClassOf(type: number): BackendFolder['itemClass'] {
  if (type === FolderType.Calendar || type === FolderType.UserCalendar) return 'Calendar';
  if (type === FolderType.Contacts || type === FolderType.UserContacts) return 'Contacts';
  if (type === FolderType.Tasks || type === FolderType.UserTasks) return 'Tasks';
  if (type === FolderType.Notes || type === FolderType.UserNotes) return 'Notes';
  return 'Email';
}

/** Parents before children: clients create folders in the order they are listed. */
export function parentsFirst(some: FolderRecord[], all: FolderRecord[]): FolderRecord[] {
  const byId = new Map(all.map((f) => [f.serverId, f]));
  const depth = (f: FolderRecord): number => {
    let d = 0;
    for (let p = f.parentId; p !== '0' && d < 64; d++) p = byId.get(p)?.parentId ?? '0';
    return d;
  };
  return [...some].sort((a, b) => depth(a) - depth(b));
}

function refKey(backend: string, ref: string): string {
  return `${backend}\u0000${ref}`;
}

/** `<Add>`/`<Update>` children: ServerId, ParentId, DisplayName, Type. */
export function folderElement(kind: 'Add' | 'Update', folder: FolderRecord): WbxmlElement {
  return el('FolderHierarchy', kind, [
    el('FolderHierarchy', 'ServerId', folder.serverId),
    el('FolderHierarchy', 'ParentId', folder.parentId),
    el('FolderHierarchy', 'DisplayName', folder.displayName),
    el('FolderHierarchy', 'Type', String(folder.type)),
  ]);
}

export function findFolder(state: HierarchyState | undefined, serverId: string): FolderRecord | undefined {
  return state?.folders.find((f) => f.serverId === serverId);
}
