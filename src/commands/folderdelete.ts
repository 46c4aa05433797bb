/**
 * FolderDelete (MS-ASCMD §2.2.1.4): deletes a user folder with everything under it. The folder and its subfolders
 * leave the stored hierarchy, and their collection states are deleted.
 */
import { withBackends } from '../backends/open.ts';
import { childText } from '../wbxml/tree.ts';
import {
  FolderStatus,
  isChangeableFolder,
  registerFolderCommand,
  subfoldersOf,
  type FolderChangeOutcome,
  type FolderChangeRequest,
} from './folder-changes.ts';
import { deleteDavFolder, isDavFolder } from './folder-dav.ts';

export async function deleteFolder({ context, body, hierarchy }: FolderChangeRequest): Promise<FolderChangeOutcome> {
  const serverId = childText(body, 'ServerId');
  if (!serverId) return { status: FolderStatus.BadRequest };
  const folder = hierarchy.folders.find((f) => f.serverId === serverId);
  if (!folder) return { status: FolderStatus.FolderNotFound };
  // Calendars, contacts and tasks: a DELETE of the collection (folder-dav.ts).
  if (isDavFolder(folder)) return deleteDavFolder({ context, body, hierarchy }, folder);
  if (!isChangeableFolder(folder)) return { status: FolderStatus.SpecialFolder };

  const found = await withBackends(context, async ({ mail }) => {
    if (!(await mail.listFolders()).some((f) => f.ref === folder.source.ref)) return false;
    await mail.deleteFolder(folder.source.ref);
    return true;
  });
  if (!found) return { status: FolderStatus.FolderNotFound };

  const removed = new Set([serverId, ...subfoldersOf(hierarchy, serverId).map((f) => f.serverId)]);
  return {
    hierarchy: { ...hierarchy, folders: hierarchy.folders.filter((f) => !removed.has(f.serverId)) },
    removed: [...removed],
  };
}

registerFolderCommand('FolderDelete', deleteFolder);
