/**
 * FolderSync (MS-ASCMD §2.2.1.5): the folder hierarchy, in full from key 0, then as changes since the device's key.
 * A device that lost our answer and resends the previous key gets the same answer again.
 */
import { withBackends } from '../backends/open.ts';
import { firstSyncKey, INITIAL_SYNC_KEY, nextSyncKey, REPLAY_TTL_MS } from '../protocol/synckey.ts';
import { StateConflictError, type Precondition } from '../state/types.ts';
import { preEncoded } from '../wbxml/encoder.ts';
import { childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { replayFor } from './folder-changes.ts';
import { diffHierarchy, folderElement, parentsFirst } from '../folders/hierarchy.ts';
import { registerCommand } from './registry.ts';
import { FolderType, type BackendFolder } from '../backends/types.ts';
import { atLeast } from '../protocol/versions.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';

export const FolderSyncStatus = {
  Success: 1,
  ServerError: 6,
  InvalidSyncKey: 9,
  BadRequest: 10,
} as const;

function statusOnly(status: number): CommandResult {
  return {
    kind: 'wbxml',
    body: el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'Status', String(status))]),
  };
}

export async function folderSync(context: CommandContext): Promise<CommandResult> {
  const requestKey = childText(context.body, 'SyncKey', 'FolderHierarchy');
  if (context.body?.tag !== 'FolderSync' || requestKey === undefined) return statusOnly(FolderSyncStatus.BadRequest);

  const stored = await context.state.getHierarchy(context.device);
  let precondition: Precondition;
  if (requestKey === INITIAL_SYNC_KEY) {
    precondition = 'any';
  } else if (stored?.syncKey === requestKey) {
    precondition = { syncKey: requestKey };
  } else {
    // The device lost our last FolderSync answer: the same answer again (never another folder command's answer).
    return replayFor(stored, requestKey, 'FolderSync') ?? statusOnly(FolderSyncStatus.InvalidSyncKey);
  }

  const listing = await withBackends(context, async (backends) => {
    const found = await backends.listFoldersByBackend();
    // Notes (MS-ASNOTE) are 14.0+: such a device gets the notes folder, created the first time one asks for it. The
    // listing is read again then, so that the new folder takes its place among the mail folders: new folders get
    // ServerIds in listing order, and every device of the user should get the same ones (a ServerId one device was
    // given then finds the same folder for another, as ItemOperations and MoveItems by ServerId expect).
    if (backends.notes && atLeast(context.request.version, '14.0') && !found.folders.some(isNotesListed)) {
      await backends.notes.ensureFolder();
      return backends.listFoldersByBackend();
    }
    return found;
  });
  // From key 0 the device gets every folder, under the ServerIds it may already know (its collection states stay
  // valid).
  const diff = diffHierarchy(stored?.state, listing.folders, listing.unavailable);
  const changes: WbxmlElement[] =
    requestKey === INITIAL_SYNC_KEY
      ? parentsFirst(diff.next.folders, diff.next.folders).map((f) => folderElement('Add', f))
      : [
          ...diff.deleted.map((f) => el('FolderHierarchy', 'Delete', [el('FolderHierarchy', 'ServerId', f.serverId)])),
          ...diff.updated.map((f) => folderElement('Update', f)),
          ...diff.added.map((f) => folderElement('Add', f)),
        ];

  // Nothing changed since the device's key: the same key again, nothing to store.
  if (changes.length === 0 && requestKey !== INITIAL_SYNC_KEY) return response(requestKey, changes);

  const newKey = requestKey === INITIAL_SYNC_KEY ? firstSyncKey() : (nextSyncKey(requestKey) ?? firstSyncKey());
  // Encoded once: the replay's bytes are the response's. Another request of this device may move the hierarchy
  // first (StateConflictError: Status 6, `errors` below); the device retries.
  const answer = preEncoded(response(newKey, changes).body);
  await context.state.commitHierarchy(context.device, precondition, {
    syncKey: newKey,
    state: diff.next,
    ...(requestKey !== INITIAL_SYNC_KEY
      ? { replay: { syncKey: requestKey, response: answer.encoded!, expiresAt: Date.now() + REPLAY_TTL_MS } }
      : {}),
  });
  return { kind: 'wbxml', body: answer };
}

function isNotesListed(folder: BackendFolder): boolean {
  return folder.backend === 'imap' && folder.type === FolderType.Notes;
}

function response(syncKey: string, changes: WbxmlElement[]): { kind: 'wbxml'; body: WbxmlElement } {
  return {
    kind: 'wbxml',
    body: el('FolderHierarchy', 'FolderSync', [
      el('FolderHierarchy', 'Status', String(FolderSyncStatus.Success)),
      el('FolderHierarchy', 'SyncKey', syncKey),
      el('FolderHierarchy', 'Changes', [el('FolderHierarchy', 'Count', String(changes.length)), ...changes]),
    ]),
  };
}

registerCommand({
  name: 'FolderSync',
  responseRoot: { ns: 'FolderHierarchy', tag: 'FolderSync' },
  serverErrorStatus: FolderSyncStatus.ServerError,
  errors: [[StateConflictError, FolderSyncStatus.ServerError]],
  // The stored hierarchy, with the device's record (state/read-ahead.ts).
  readAhead: (_body, reads) => reads.hierarchy(),
  handle: folderSync,
});
