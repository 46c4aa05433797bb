/**
 * The Sync engine (MS-ASCMD §2.2.1.21): each collection of a request in turn, the device's commands in and the
 * server's changes out, through the mail (email.ts), drafts (drafts.ts, 16.0+) or DAV (dav.ts) strategy. An answer
 * that moves a collection to a new SyncKey is stored by compare-and-set together with the new state and the replay
 * record (replay.ts); a device that resends its previous key gets that answer again (replay.ts, loop-detection.ts).
 *
 * Reading the request is request.ts; the command (src/commands/sync.ts) puts the collections into the response.
 */
import { openBackends } from '../backends/open.ts';
import { FolderNotFoundError, FolderType, type UserBackends } from '../backends/types.ts';
import { firstSyncKey, INITIAL_SYNC_KEY, nextSyncKey } from '../protocol/synckey.ts';
import type { CollectionState, HierarchyState, KeyedState, SyncOptions } from '../state/types.ts';
import { type Settled, settle, settledValue } from '../util/settled.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { el, type WbxmlElement } from '../wbxml/tree.ts';
import type { CommandContext } from '../protocol/command.ts';
import { converterFor } from './dav-converters.ts';
import { optionsForClass } from '../protocol/options.ts';
import { emailFilterType, mailPolicy } from '../protocol/policy.ts';
import { itemClassOf } from '../folders/hierarchy.ts';
import { isItemFolder, itemStoreOf } from '../folders/dav-items.ts';
import { syncDavCollection } from './dav.ts';
import { prepareMeetingWrite, sendInvitations, userAddresses } from '../sending/meeting-mail.ts';
import { warnAfterSend } from '../sending/compose.ts';
import { type EmailSyncResult, syncEmailCollection } from './email.ts';
import { mailFlagStore } from '../folders/mail-flags.ts';
import { applyConversationRules } from './conversation-rules.ts';
import { afterSync, loopWindow } from './loop-detection.ts';
import { answerResent, collectionAnswer, commitAnswer } from './replay.ts';
import { syncDraftsCollection } from './drafts.ts';
import { atLeast } from '../protocol/versions.ts';
import { DEFAULT_WINDOW_SIZE, type CollectionRequest, type SyncRequest } from './request.ts';
import { SyncStatus } from './status.ts';

export interface SyncedCollections {
  /** The hierarchy the device has, as read for this request (the hanging Sync waits on its folders). */
  hierarchy: HierarchyState | undefined;
  /** One Collection element per requested collection, in the request's order. */
  elements: WbxmlElement[];
}

/**
 * Syncs the request's collections in order. The request's WindowSize is shared: what one collection sends, the next
 * may send less (MS-ASCMD §2.2.3.199). The backends are opened once, by the first collection that needs them.
 */
export async function syncCollections(context: CommandContext, request: SyncRequest): Promise<SyncedCollections> {
  // The first collection's state is read beside the hierarchy, not after it: one state round trip, not two, where
  // the store is across a network (DynamoDB). Only the first: syncing one collection may write another's state
  // (a move to Trash), so later ones are read when their turn comes. SyncKey 0 is about to be (re)created: not read.
  const first = request.collections[0];
  let firstRead =
    first && first.syncKey !== INITIAL_SYNC_KEY
      ? settle(context.state.getCollection(context.device, first.collectionId))
      : undefined;
  const hierarchy = (await context.state.getHierarchy(context.device))?.state;
  let backends: UserBackends | undefined;
  const elements: WbxmlElement[] = [];
  let remaining = request.windowSize ?? Number.POSITIVE_INFINITY;
  try {
    for (const collection of request.collections) {
      const windowSize = Math.min(collection.windowSize ?? request.windowSize ?? DEFAULT_WINDOW_SIZE, remaining);
      const open = async (): Promise<UserBackends> => (backends ??= await openBackends(context));
      const read = collection === first ? firstRead : undefined;
      firstRead = undefined;
      const { element, sent } = await syncCollection(context, hierarchy, collection, windowSize, open, read);
      remaining -= sent;
      elements.push(element);
    }
  } finally {
    await (backends as UserBackends | undefined)?.close();
  }
  return { hierarchy, elements };
}

/**
 * The resource name of a device's Add (a DAV item's file name, a draft's Message-ID): a hash of who sent it, into
 * which collection, with which ClientId and which ApplicationData. Not of the SyncKey: a device resends an Add whose
 * answer it lost under whatever key it holds by then (the older key, a new key after Status 3 or 16), and each of
 * those attempts must find the one item the first made (dav.ts, drafts.ts), never create a second. The ApplicationData
 * is part of the name so that a ClientId a device uses again later (counters restart) names a new item.
 */
export async function addResourceName(
  context: Pick<CommandContext, 'device'>,
  collectionId: string,
  clientId: string,
  applicationData: WbxmlElement | undefined,
): Promise<string> {
  const { tenant, user, deviceId } = context.device;
  const content = applicationData ? encodeWbxml(applicationData) : new Uint8Array();
  const head = new TextEncoder().encode(`${JSON.stringify([tenant, user, deviceId, collectionId, clientId])}\n`);
  const input = new Uint8Array(head.length + content.length);
  input.set(head);
  input.set(content, head.length);
  const digest = await crypto.subtle.digest('SHA-256', input);
  return Array.from(new Uint8Array(digest).slice(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A mail folder's options under the user's MaxEmailAgeFilter (protocol/policy.ts emailFilterType). */
function withinPolicy(context: CommandContext, backend: string, options: SyncOptions): SyncOptions {
  if (backend !== 'imap') return options;
  const filterType = emailFilterType(context.config.policy, context.user.login, options.filterType);
  return filterType === options.filterType ? options : { ...options, filterType };
}

function collectionStatus(collectionId: string, status: number, syncKey?: string): WbxmlElement {
  return el('AirSync', 'Collection', [
    syncKey !== undefined ? el('AirSync', 'SyncKey', syncKey) : undefined,
    el('AirSync', 'CollectionId', collectionId),
    el('AirSync', 'Status', String(status)),
  ]);
}

/**
 * ConversationMode joins the options of a mail folder (MS-ASCMD §2.2.3.36.2: conversations are mail's, MS-ASCON); like
 * them it stays in force while a request leaves it out. Other folders ignore it.
 */
function withConversationMode(options: SyncOptions, conversationMode: boolean | undefined, type: number): SyncOptions {
  const { conversationMode: _stored, ...rest } = options;
  return conversationMode && itemClassOf(type) === 'Email' ? { ...rest, conversationMode: true } : rest;
}

async function syncCollection(
  context: CommandContext,
  hierarchy: HierarchyState | undefined,
  request: CollectionRequest,
  windowSize: number,
  open: () => Promise<UserBackends>,
  read?: Promise<Settled<KeyedState<CollectionState> | undefined>>,
): Promise<{ element: WbxmlElement; sent: number }> {
  const { collectionId } = request;
  const folder = hierarchy?.folders.find((f) => f.serverId === collectionId);
  // Calendars, contacts, tasks and notes: texts through their converter (dav.ts); the rest is mail.
  const converter = folder && isItemFolder(folder) ? converterFor(folder.type) : undefined;
  if (!folder || (isItemFolder(folder) && !converter))
    return { element: collectionStatus(collectionId, SyncStatus.HierarchyChanged), sent: 0 };

  // The Options block for this folder's class (an SMS block beside it does not apply: MS-ASCMD §2.2.3.27.6).
  const asked = request.options && optionsForClass(request.options, itemClassOf(folder.type));
  const requested = asked && withinPolicy(context, folder.source.backend, asked);
  if (request.syncKey === INITIAL_SYNC_KEY) {
    if (request.commands.length) return { element: collectionStatus(collectionId, SyncStatus.ProtocolError), sent: 0 };
    const syncKey = firstSyncKey();
    const state: CollectionState = {
      class: itemClassOf(folder.type),
      watermark: { kind: 'none' },
      options: withConversationMode(requested ?? {}, request.conversationMode, folder.type),
      pending: [],
      clientIds: {},
      ...(request.supported ? { supported: request.supported } : {}),
    };
    await context.state.commitCollection(context.device, collectionId, 'any', { syncKey, state });
    return { element: collectionStatus(collectionId, SyncStatus.Success, syncKey), sent: 0 };
  }

  const stored = read ? settledValue(await read) : await context.state.getCollection(context.device, collectionId);
  const requestKey = request.syncKey ?? stored?.syncKey;
  if (!stored || requestKey === undefined)
    return { element: collectionStatus(collectionId, SyncStatus.InvalidSyncKey), sent: 0 };
  if (stored.syncKey !== requestKey) {
    // The device lost our last answer: the same answer again; its commands were applied the first time.
    // Resent again and again: loop detection (loop-detection.ts) shrinks the answer, then skips a broken item.
    if (stored.replay?.syncKey === requestKey)
      return { element: await answerResent(context, collectionId, stored, requestKey), sent: 0 };
    return { element: collectionStatus(collectionId, SyncStatus.InvalidSyncKey), sent: 0 };
  }
  // One item per Sync while a loop is being resolved (loop-detection.ts).
  windowSize = loopWindow(stored.state, windowSize);
  const backends = await open();
  const trash = hierarchy?.folders.find((f) => f.type === FolderType.DeletedItems && f.source.backend === 'imap');
  // Options are sticky: a request without them keeps the stored ones, a request with them replaces them
  // (MS-ASCMD §2.2.3.125.6). Options given for the first time, or changed, are no reason to start over: the
  // strategies resync the FilterType window against the stored one (email.ts, dav.ts).
  const options = withConversationMode(
    requested ?? withinPolicy(context, folder.source.backend, stored.state.options),
    request.conversationMode ?? stored.state.options.conversationMode,
    folder.type,
  );
  // 16.0+ devices edit and send drafts through Sync (drafts.ts).
  const drafts16 = folder.type === FolderType.Drafts && atLeast(context.request.version, '16.0');
  let result: EmailSyncResult;
  try {
    const dav = itemStoreOf(backends, folder);
    // An item folder whose backend this user lacks now (a tenant that dropped its DAV server): FolderSync again.
    if (converter && !dav) return { element: collectionStatus(collectionId, SyncStatus.HierarchyChanged), sent: 0 };
    result =
      dav && converter
        ? await syncDavCollection({
            dav,
            converter,
            folderRef: folder.source.ref,
            collectionId,
            state: stored.state,
            options,
            windowSize,
            getChanges: request.getChanges ?? true,
            commands: request.commands,
            version: context.request.version,
            ...(stored.state.supported ? { supported: stored.state.supported } : {}),
            // Meetings (src/sending/meeting-mail.ts): who the user is; SEQUENCE raised on updates; and, 16.x, the
            // server mails the invitations for what the device organizes (up to 14.1 the device sends them with
            // SendMail).
            userEmails: userAddresses(context),
            addName: (clientId: string, data: WbxmlElement | undefined) =>
              addResourceName(context, collectionId, clientId, data),
            ...(folder.source.backend === 'caldav' && itemClassOf(folder.type) === 'Calendar'
              ? {
                  prepareChange: (before: string, after: string) => prepareMeetingWrite(context, before, after),
                  ...(atLeast(context.request.version, '16.0')
                    ? {
                        // The calendar write stands whatever happens to the mail; a failure shows in the request's log
                        // line.
                        afterWrite: (before: string | undefined, after: string | undefined) =>
                          sendInvitations(context, before, after).catch((err: unknown) =>
                            warnAfterSend(context, 'meeting-mail-failed', err),
                          ),
                      }
                    : {}),
                }
              : {}),
          })
        : await (drafts16
            ? (r: Parameters<typeof syncEmailCollection>[0]) =>
                syncDraftsCollection(context, r, (clientId, data) =>
                  addResourceName(context, collectionId, clientId, data),
                )
            : syncEmailCollection)({
            mail: backends.mail,
            folderRef: folder.source.ref,
            collectionId,
            trashRef: trash?.source.ref,
            state: stored.state,
            options,
            windowSize,
            getChanges: request.getChanges ?? true,
            deletesAsMoves: request.deletesAsMoves,
            commands: request.commands,
            version: context.request.version,
            fileReference: (uid, partId) => `${collectionId}:${uid}:${partId}`,
            flags: mailFlagStore(context, folder.source.ref),
            byteBudget: context.config.maxResponseBytes,
            policy: mailPolicy(context.config.policy, context.user.login),
            ...(folder.type !== FolderType.SentItems
              ? { moveArrivals: (uids) => applyConversationRules(context, backends.mail, folder.source.ref, uids) }
              : {}),
          });
  } catch (err) {
    // Another client deleted or renamed the folder: the device must FolderSync.
    if (err instanceof FolderNotFoundError)
      return { element: collectionStatus(collectionId, SyncStatus.HierarchyChanged), sent: 0 };
    throw err;
  }
  if (result.status === SyncStatus.InvalidSyncKey) {
    await context.state.deleteCollection(context.device, collectionId);
    return { element: collectionStatus(collectionId, SyncStatus.InvalidSyncKey), sent: 0 };
  }
  if (!result.progressed && result.responses.length === 0) {
    return { element: collectionStatus(collectionId, SyncStatus.Success, requestKey), sent: 0 };
  }

  const newKey = nextSyncKey(requestKey) ?? firstSyncKey();
  const answer = collectionAnswer({
    syncKey: newKey,
    collectionId,
    commands: result.commands,
    responses: result.responses,
    moreAvailable: result.moreAvailable,
  });
  const next = { syncKey: newKey, state: afterSync(result.state, result.moreAvailable) };
  const committed = await commitAnswer(
    context,
    collectionId,
    { from: requestKey, replayKey: requestKey },
    next,
    answer,
  );
  // Another request of this device moved this collection first; nothing of ours was recorded, the device retries.
  if (!committed) return { element: collectionStatus(collectionId, SyncStatus.Retry), sent: 0 };
  return { element: committed, sent: result.commands.length };
}
