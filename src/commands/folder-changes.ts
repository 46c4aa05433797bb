/**
 * What FolderCreate, FolderUpdate and FolderDelete (MS-ASCMD §2.2.1.3, §2.2.1.6, §2.2.1.4) share: the hierarchy SyncKey
 * they advance together with FolderSync, the replay of an answer the device lost, their status codes, and the checks on
 * folder names, parents and special folders.
 *
 * The stored hierarchy is what the device knows. A folder command changes it by exactly the change the device asked
 * for and never re-lists the backend into it: a folder another client created meanwhile must still reach the device
 * as an Add on its next FolderSync.
 */
import { FolderType, type BackendFolder } from '../backends/types.ts';
import { firstSyncKey, nextSyncKey, REPLAY_TTL_MS } from '../protocol/synckey.ts';
import { StateConflictError, type FolderRecord, type HierarchyState, type KeyedState } from '../state/types.ts';
import { decodeWbxml } from '../wbxml/decoder.ts';
import { preEncoded } from '../wbxml/encoder.ts';
import { childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { registerCommand } from './registry.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';

/** The status codes of the three folder commands; each command uses the subset the spec gives it. */
export const FolderStatus = {
  Success: 1,
  NameExists: 2,
  /** A special (system) folder, or one this server's backends cannot hold there. */
  SpecialFolder: 3,
  FolderNotFound: 4,
  ParentNotFound: 5,
  ServerError: 6,
  InvalidSyncKey: 9,
  BadRequest: 10,
} as const;

export type FolderCommand = 'FolderCreate' | 'FolderUpdate' | 'FolderDelete';

/** ParentId of a top-level folder. */
const ROOT_ID = '0';

const WBXML = 'application/vnd.ms-sync.wbxml';

export interface FolderChangeRequest {
  context: CommandContext;
  body: WbxmlElement;
  /** The hierarchy as the device knows it, at the key it sent. */
  hierarchy: HierarchyState;
}

/** A failure status, or the device's hierarchy with the change made. */
export type FolderChangeOutcome =
  | { status: number }
  | {
      hierarchy: HierarchyState;
      /** Children of the response after Status and SyncKey (FolderCreate: the ServerId). */
      answer?: WbxmlElement[];
      /** ServerIds of folders that are gone: their collection states go with them. */
      removed?: string[];
    };

export type FolderChange = (request: FolderChangeRequest) => Promise<FolderChangeOutcome>;

/** Registers a folder command: `change` does the command's own work, the rest (keys, replay, commit) is here. */
export function registerFolderCommand(command: FolderCommand, change: FolderChange): void {
  registerCommand({
    name: command,
    responseRoot: { ns: 'FolderHierarchy', tag: command },
    serverErrorStatus: FolderStatus.ServerError,
    errors: [[StateConflictError, FolderStatus.ServerError]],
    handle: (context) => handleFolderCommand(command, change, context),
  });
}

async function handleFolderCommand(
  command: FolderCommand,
  change: FolderChange,
  context: CommandContext,
): Promise<CommandResult> {
  const body = context.body;
  const requestKey = childText(body, 'SyncKey', 'FolderHierarchy');
  if (body?.tag !== command || requestKey === undefined) return statusOnly(command, FolderStatus.BadRequest);

  const stored = await context.state.getHierarchy(context.device);
  if (!stored || stored.syncKey !== requestKey) {
    // The device lost our answer to this command and sends it again: the same answer, and nothing done twice.
    return replayFor(stored, requestKey, command) ?? statusOnly(command, FolderStatus.InvalidSyncKey);
  }

  const outcome = await change({ context, body, hierarchy: stored.state });
  if ('status' in outcome) return statusOnly(command, outcome.status);

  const newKey = nextSyncKey(requestKey) ?? firstSyncKey();
  const response = el('FolderHierarchy', command, [
    el('FolderHierarchy', 'Status', String(FolderStatus.Success)),
    el('FolderHierarchy', 'SyncKey', newKey),
    ...(outcome.answer ?? []),
  ]);
  // Another request of this device may move the hierarchy key first (StateConflictError: Status 6, `errors` above).
  // The backend change stands; the device, whose key is then stale, gets Status 9 on its next folder request and
  // learns the change from FolderSync.
  // Encoded once: the replay's bytes are the response's.
  const encoded = preEncoded(response);
  await context.state.commitHierarchy(
    context.device,
    { syncKey: requestKey },
    {
      syncKey: newKey,
      state: outcome.hierarchy,
      replay: { syncKey: requestKey, response: encoded.encoded!, expiresAt: Date.now() + REPLAY_TTL_MS },
    },
  );
  for (const serverId of outcome.removed ?? []) await context.state.deleteCollection(context.device, serverId);
  return { kind: 'wbxml', body: encoded };
}

/**
 * The stored answer when the device resends the key it came with: only if that answer is to the same command, because
 * FolderSync and the three folder commands share the one replay slot of the hierarchy.
 */
export function replayFor(
  stored: KeyedState<HierarchyState> | undefined,
  requestKey: string,
  command: FolderCommand | 'FolderSync',
): CommandResult | undefined {
  const replay = stored?.replay;
  if (!replay || replay.syncKey !== requestKey) return undefined;
  if (decodeWbxml(replay.response, { maxElements: Number.POSITIVE_INFINITY }).tag !== command) return undefined;
  return { kind: 'raw', contentType: WBXML, bytes: replay.response };
}

function statusOnly(command: FolderCommand, status: number): CommandResult {
  return { kind: 'wbxml', body: el('FolderHierarchy', command, [el('FolderHierarchy', 'Status', String(status))]) };
}

/** Folder types a device may create, rename, move and delete (1 and 12–17); the others are the system's. */
const USER_FOLDER_TYPES: ReadonlySet<number> = new Set([
  FolderType.UserGeneric,
  FolderType.UserMail,
  FolderType.UserCalendar,
  FolderType.UserContacts,
  FolderType.UserTasks,
  FolderType.UserJournal,
  FolderType.UserNotes,
]);

export function isUserFolderType(type: number): boolean {
  return USER_FOLDER_TYPES.has(type);
}

/**
 * A folder the device may rename, move or delete: a user folder of the mail backend (the only one with folder changes
 * yet).
 */
export function isChangeableFolder(folder: FolderRecord): boolean {
  return isUserFolderType(folder.type) && folder.source.backend === 'imap';
}

/**
 * A name the mail backend can hold as one folder: not blank, no IMAP hierarchy delimiter (a `/` would nest folders
 * the device does not know of), no LIST wildcards, no control characters.
 */
export function isValidFolderName(name: string): boolean {
  return name.trim() !== '' && name.length <= 255 && !/[/*%\u0000-\u001f\u007f]/.test(name);
}

/**
 * The parent a ParentId names: 'root' for `0`, the folder, or undefined when the device's hierarchy has no such folder.
 */
export function resolveParent(hierarchy: HierarchyState, parentId: string): FolderRecord | 'root' | undefined {
  return parentId === ROOT_ID ? 'root' : hierarchy.folders.find((f) => f.serverId === parentId);
}

/** Every folder under a folder, at any depth, in the device's hierarchy. */
export function subfoldersOf(hierarchy: HierarchyState, serverId: string): FolderRecord[] {
  const found: FolderRecord[] = [];
  const parents = new Set([serverId]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const f of hierarchy.folders) {
      if (parents.has(f.parentId) && !parents.has(f.serverId)) {
        parents.add(f.serverId);
        found.push(f);
        grew = true;
      }
    }
  }
  return found;
}

/** Whether the backend already has a folder of this name under the parent; `except` is the folder being renamed. */
export function nameTaken(
  live: BackendFolder[],
  parentRef: string | undefined,
  name: string,
  except?: string,
): boolean {
  return live.some(
    (f) =>
      f.ref !== except &&
      f.parentRef === parentRef &&
      // IMAP's INBOX has that name in any letter case.
      (f.displayName === name || (f.type === FolderType.Inbox && name.toUpperCase() === 'INBOX')),
  );
}

/** The record FolderSync would make of a backend folder, so that its next diff finds nothing to report. */
export function folderRecord(serverId: string, parentId: string, folder: BackendFolder): FolderRecord {
  return {
    serverId,
    parentId,
    displayName: folder.displayName,
    type: folder.type,
    source: { backend: folder.backend, ref: folder.ref },
    ...(folder.identity ? { identity: folder.identity } : {}),
  };
}
