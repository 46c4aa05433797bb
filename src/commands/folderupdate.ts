/**
 * FolderUpdate (MS-ASCMD §2.2.1.6): renames a user folder and/or moves it under another parent. The folder keeps its
 * ServerId, and so do its subfolders, whose IMAP paths change with it: the stored hierarchy follows both, so
 * FolderSync does not report the change again and the folders' collection states stay valid.
 */
import { withBackends } from '../backends/open.ts';
import { childText } from '../wbxml/tree.ts';
import {
  FolderStatus,
  folderRecord,
  isChangeableFolder,
  isValidFolderName,
  nameTaken,
  registerFolderCommand,
  resolveParent,
  subfoldersOf,
  type FolderChangeOutcome,
  type FolderChangeRequest,
} from './folder-changes.ts';
import { isDavFolder, updateDavFolder } from './folder-dav.ts';

export async function updateFolder({ context, body, hierarchy }: FolderChangeRequest): Promise<FolderChangeOutcome> {
  const serverId = childText(body, 'ServerId');
  if (!serverId) return { status: FolderStatus.BadRequest };
  const folder = hierarchy.folders.find((f) => f.serverId === serverId);
  if (!folder) return { status: FolderStatus.FolderNotFound };
  // Both are required by the spec; a client that leaves one out means "as it is".
  const parentId = childText(body, 'ParentId') ?? folder.parentId;
  const name = childText(body, 'DisplayName') ?? folder.displayName;
  // Calendars, contacts and tasks: a PROPPATCH of the collection's displayname (folder-dav.ts).
  if (isDavFolder(folder)) return updateDavFolder({ context, body, hierarchy }, folder, parentId, name);
  if (!isChangeableFolder(folder)) return { status: FolderStatus.SpecialFolder };

  if (!isValidFolderName(name)) return { status: FolderStatus.BadRequest };

  const subfolders = subfoldersOf(hierarchy, serverId);
  const parent = resolveParent(hierarchy, parentId);
  if (!parent) return { status: FolderStatus.ParentNotFound };
  // A folder cannot go under itself, under one of its own subfolders, or under another backend's folder.
  if (parent !== 'root' && (parent === folder || subfolders.includes(parent) || parent.source.backend !== 'imap')) {
    return { status: FolderStatus.ParentNotFound };
  }
  if (parentId === folder.parentId && name === folder.displayName) return { hierarchy };
  const parentRef = parent === 'root' ? undefined : parent.source.ref;

  return withBackends(context, async ({ mail }) => {
    const live = await mail.listFolders();
    if (!live.some((f) => f.ref === folder.source.ref)) return { status: FolderStatus.FolderNotFound };
    if (parentRef !== undefined && !live.some((f) => f.ref === parentRef))
      return { status: FolderStatus.ParentNotFound };
    // Checked before RENAME: Dovecot lets RENAME take the name of a folder that is listed but not yet on disk (its
    // autocreated special folders).
    if (nameTaken(live, parentRef, name, folder.source.ref)) return { status: FolderStatus.NameExists };

    const renamed = await mail.renameFolder(folder.source.ref, parentRef, name);
    const oldPrefix = folder.source.ref;
    const moved = new Set(subfolders.map((f) => f.serverId));
    return {
      hierarchy: {
        ...hierarchy,
        folders: hierarchy.folders.map((f) => {
          if (f === folder) return folderRecord(serverId, parentId, renamed);
          // The subfolders' paths start with the folder's old path; only that prefix changes.
          if (moved.has(f.serverId) && f.source.ref.startsWith(oldPrefix)) {
            return { ...f, source: { ...f.source, ref: renamed.ref + f.source.ref.slice(oldPrefix.length) } };
          }
          return f;
        }),
      },
    };
  });
}

registerFolderCommand('FolderUpdate', updateFolder);
