/**
 * FolderCreate (MS-ASCMD §2.2.1.3): a new user folder under a parent, answered with its ServerId and a new hierarchy
 * SyncKey. The folder goes into the stored hierarchy under that ServerId, so FolderSync does not report it again.
 *
 * Types 1 (generic) and 12 (mail) become IMAP mailboxes; user calendars, contacts and tasks (13–15) CalDAV/CardDAV
 * collections (folder-dav.ts). Journals and notes (16, 17) have no backend and are answered with Status 3 ("create
 * not allowed"), not 6 (a server error the device would retry for ever) nor 10 (the request is well formed).
 */
import { withBackends } from '../backends/open.ts';
import { FolderType } from '../backends/types.ts';
import type { HierarchyState } from '../state/types.ts';
import { childText, el } from '../wbxml/tree.ts';
import {
  FolderStatus,
  folderRecord,
  isUserFolderType,
  isValidFolderName,
  nameTaken,
  registerFolderCommand,
  resolveParent,
  type FolderChangeOutcome,
  type FolderChangeRequest,
} from './folder-changes.ts';
import { createDavFolder, isDavFolderType } from './folder-dav.ts';

/** Types the mail backend creates: a generic user folder is a mail folder there. */
const MAIL_FOLDER_TYPES: ReadonlySet<number> = new Set([FolderType.UserGeneric, FolderType.UserMail]);

export async function createFolder({ context, body, hierarchy }: FolderChangeRequest): Promise<FolderChangeOutcome> {
  const parentId = childText(body, 'ParentId');
  const name = childText(body, 'DisplayName');
  const type = Number(childText(body, 'Type'));
  // System types (Inbox, Calendar, …) are the server's to make: asking for one is a malformed request.
  if (parentId === undefined || name === undefined || !isValidFolderName(name) || !isUserFolderType(type))
    return { status: FolderStatus.BadRequest };
  // Calendars, contacts and tasks are CalDAV/CardDAV collections (folder-dav.ts).
  if (isDavFolderType(type)) return createDavFolder({ context, body, hierarchy }, parentId, name, type);
  if (!MAIL_FOLDER_TYPES.has(type)) return { status: FolderStatus.SpecialFolder };

  const parent = resolveParent(hierarchy, parentId);
  if (!parent) return { status: FolderStatus.ParentNotFound };
  if (parent !== 'root' && parent.source.backend !== 'imap') return { status: FolderStatus.SpecialFolder };
  const parentRef = parent === 'root' ? undefined : parent.source.ref;

  return withBackends(context, async ({ mail }) => {
    const live = await mail.listFolders();
    if (parentRef !== undefined && !live.some((f) => f.ref === parentRef))
      return { status: FolderStatus.ParentNotFound };
    // Checked before CREATE: imapflow reports CREATE of an existing name (ALREADYEXISTS) as done.
    if (nameTaken(live, parentRef, name)) return { status: FolderStatus.NameExists };

    const created = await mail.createFolder(parentRef, name);
    const serverId = String(nextServerId(hierarchy));
    return {
      hierarchy: {
        folders: [...hierarchy.folders, folderRecord(serverId, parentId, created)],
        nextServerId: Number(serverId) + 1,
      },
      answer: [el('FolderHierarchy', 'ServerId', serverId)],
    };
  });
}

/**
 * ServerIds are never reused (see HierarchyState); a hierarchy stored before `nextServerId` existed counts from its
 * largest.
 */
function nextServerId(hierarchy: HierarchyState): number {
  return (
    hierarchy.nextServerId ?? hierarchy.folders.reduce((max, f) => Math.max(max, Number(f.serverId) + 1 || max), 1)
  );
}

registerFolderCommand('FolderCreate', createFolder);
