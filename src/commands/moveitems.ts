/**
 * MoveItems (MS-ASCMD §2.2.1.12): moves messages between mail folders with IMAP MOVE, whose COPYUID gives the new
 * UID, so the answer carries the item's new ServerId (`<collectionId>:<uid>`, as Sync writes them).
 * Calendar, task and contact items move between folders of their class (folders/dav-move.ts); across classes, or
 * between mail and the others (notes too: the one notes folder has no other of its class), the answer is Status 5.
 *
 * The device moves its own copy of the item. The collection states learn the same move, so that later Syncs of the
 * two folders do not send it back to this device as a Delete and an Add.
 */
import { withBackends } from '../backends/open.ts';
import type { MailBackend, UserBackends } from '../backends/types.ts';
import { HttpError } from '../protocol/errors.ts';
import {
  StateConflictError,
  type CollectionState,
  type FlagDetails,
  type HierarchyState,
  type KeyedState,
  type Watermark,
} from '../state/types.ts';
import { decodeUidSet, encodeUidSet } from '../state/uidset.ts';
import { children, childText, el } from '../wbxml/tree.ts';
import { mailFolder, parseItemId } from '../folders/mail-lookup.ts';
import { findFolder, itemClassOf } from '../folders/hierarchy.ts';
import { davBackendOf, isItemFolder } from '../folders/dav-items.ts';
import { moveDavItem } from '../folders/dav-move.ts';
import { carryFlagDetails, type MovedMessage } from '../folders/mail-flags.ts';
import { flagDigitsMap } from '../sync/flag-tokens.ts';
import { registerCommand } from './registry.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';

/** Per-move status; note that 3, not 1, is success. */
export const MoveStatus = {
  InvalidSource: 1,
  InvalidDestination: 2,
  Success: 3,
  SameFolder: 4,
  Failure: 5,
} as const;

/** IMAP UIDs are 32-bit; a larger one in an id names no message. */
const MAX_UID = 0xffffffff;

/** How often a collection state update is retried when a Sync of the same collection commits in between. */
const STATE_ATTEMPTS = 3;

/** How many recent moves a collection state remembers for resent requests. */
const REMEMBERED_MOVES = 200;

interface MoveRequest {
  srcMsgId: string | undefined;
  srcFldId: string | undefined;
  dstFldId: string | undefined;
}

interface MoveOutcome {
  status: number;
  dstMsgId?: string;
}

/** A move that happened: the message left `source` as `sourceUid` and is `destinationUid` in `destination`. */
interface CompletedMove {
  source: string;
  sourceUid: number;
  destination: string;
  destinationUid: number;
}

export async function moveItems(context: CommandContext): Promise<CommandResult> {
  const body = context.body;
  if (body?.tag !== 'MoveItems') throw new HttpError(400, 'MoveItems needs a MoveItems body');
  const requests: MoveRequest[] = children(body, 'Move', 'Move').map((m) => ({
    srcMsgId: childText(m, 'SrcMsgId'),
    srcFldId: childText(m, 'SrcFldId'),
    dstFldId: childText(m, 'DstFldId'),
  }));
  if (requests.length === 0) throw new HttpError(400, 'MoveItems without a Move');

  const hierarchy = (await context.state.getHierarchy(context.device))?.state;
  // A device that lost our answer sends the same moves again: those already done get the same answer.
  const sources = [...new Set(requests.flatMap((r) => (r.srcFldId === undefined ? [] : [r.srcFldId])))];
  const movedBefore = new Map<string, string>();
  for (const id of sources) {
    for (const [from, to] of Object.entries(
      (await context.state.getCollection(context.device, id))?.state.movedTo ?? {},
    ))
      movedBefore.set(from, to);
  }
  const completed: CompletedMove[] = [];
  const outcomes: MoveOutcome[] = [];
  const uidValidities = new Map<string, number>();
  try {
    await withBackends(context, (backends) => moveAll(backends));
  } catch (err) {
    // The mail server could not be reached (or the connection could not be closed): the moves not tried get
    // Status 5, which the device retries later; those done keep their answer. Not an HTTP 500.
    context.note?.({ moveError: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    while (outcomes.length < requests.length) outcomes.push({ status: MoveStatus.Failure });
  }
  async function moveAll(backends: UserBackends): Promise<void> {
    const mail = backends.mail;
    for (const request of requests) {
      outcomes.push(
        isDavMove(hierarchy, request)
          ? await moveDav(context, backends, hierarchy, request)
          : await moveOne(mail, hierarchy, request, completed, movedBefore),
      );
    }
    // Which mailbox generation the new UIDs belong to: a collection state of another generation is left alone.
    // The moves are done: a failure to learn it (the connection dropped) leaves that state unrecorded, not a 500.
    for (const id of new Set(completed.flatMap((m) => [m.source, m.destination]))) {
      const status = await mail.status(mailFolder(hierarchy, id)!.source.ref).catch(() => undefined);
      if (status) uidValidities.set(id, status.uidValidity);
    }
  }
  // A move whose source state could not learn it is answered Status 5: the device keeps its copy where it was, and
  // Sync then tells it the truth (a Delete there, an Add in the destination). Answering 3 would leave the copy twice.
  const unrecorded = await recordMoves(context, completed, uidValidities);
  // The flag details kept for the moved messages (per user, folders/mail-flags.ts) follow them; a failure costs the
  // details, never the move.
  await carryFlagDetails(context, movedMessages(hierarchy, completed, uidValidities)).catch((err: unknown) =>
    context.note?.({ moveFlagsError: String(err) }),
  );
  for (const [i, request] of requests.entries()) {
    if (
      outcomes[i]!.status === MoveStatus.Success &&
      request.srcFldId !== undefined &&
      unrecorded.has(request.srcFldId)
    ) {
      outcomes[i] = { status: MoveStatus.Failure };
    }
  }

  return {
    kind: 'wbxml',
    body: el(
      'Move',
      'MoveItems',
      requests.map((request, i) =>
        el('Move', 'Response', [
          request.srcMsgId !== undefined && el('Move', 'SrcMsgId', request.srcMsgId),
          el('Move', 'Status', String(outcomes[i]!.status)),
          outcomes[i]!.dstMsgId !== undefined && el('Move', 'DstMsgId', outcomes[i]!.dstMsgId),
        ]),
      ),
    ),
  };
}

async function moveOne(
  mail: MailBackend,
  hierarchy: HierarchyState | undefined,
  request: MoveRequest,
  completed: CompletedMove[],
  movedBefore: Map<string, string>,
): Promise<MoveOutcome> {
  const source = request.srcFldId === undefined ? undefined : mailFolder(hierarchy, request.srcFldId);
  if (!source) return { status: MoveStatus.InvalidSource };
  const destination = request.dstFldId === undefined ? undefined : mailFolder(hierarchy, request.dstFldId);
  if (!destination) return { status: MoveStatus.InvalidDestination };
  if (source.serverId === destination.serverId) return { status: MoveStatus.SameFolder };
  const item = parseItemId(request.srcMsgId);
  if (item?.collectionId !== source.serverId || item.uid > MAX_UID) return { status: MoveStatus.InvalidSource };
  const uid = item.uid;

  try {
    if ((await mail.fetchSummaries(source.source.ref, [uid])).length === 0) {
      const earlier = movedBefore.get(`${source.serverId}:${uid}`);
      return earlier?.startsWith(`${destination.serverId}:`)
        ? { status: MoveStatus.Success, dstMsgId: earlier }
        : { status: MoveStatus.InvalidSource };
    }
    const newUid = (await mail.moveMessages(source.source.ref, [uid], destination.source.ref)).get(uid);
    // No new UID: the move failed (destination gone on the server), or the server has no UIDPLUS to tell it.
    if (newUid === undefined) return { status: MoveStatus.Failure };
    completed.push({
      source: source.serverId,
      sourceUid: uid,
      destination: destination.serverId,
      destinationUid: newUid,
    });
    return { status: MoveStatus.Success, dstMsgId: `${destination.serverId}:${newUid}` };
  } catch {
    // One failed move does not fail the others.
    return { status: MoveStatus.Failure };
  }
}

/**
 * Whether a calendar, task list, address book or the notes folder is on either side (the rest is the mail path). A
 * note moves only among notes folders, and there is one: a note to a mail folder, or mail to the notes folder, is
 * Status 5 like any move across classes.
 */
function isDavMove(hierarchy: HierarchyState | undefined, request: MoveRequest): boolean {
  return [request.srcFldId, request.dstFldId].some((id) => {
    const folder = id === undefined ? undefined : findFolder(hierarchy, id);
    return folder !== undefined && isItemFolder(folder);
  });
}

/** A calendar, task or contact item to another folder of its class (folders/dav-move.ts). */
async function moveDav(
  context: CommandContext,
  backends: UserBackends,
  hierarchy: HierarchyState | undefined,
  request: MoveRequest,
): Promise<MoveOutcome> {
  const source = request.srcFldId === undefined ? undefined : findFolder(hierarchy, request.srcFldId);
  if (!source) return { status: MoveStatus.InvalidSource };
  const destination = request.dstFldId === undefined ? undefined : findFolder(hierarchy, request.dstFldId);
  if (!destination) return { status: MoveStatus.InvalidDestination };
  if (source.serverId === destination.serverId) return { status: MoveStatus.SameFolder };
  // MS-ASCMD §2.2.3.177.10: an item moves only among folders of its class (a contact into a calendar cannot be).
  if (
    source.source.backend !== destination.source.backend ||
    itemClassOf(source.type) !== itemClassOf(destination.type)
  )
    return { status: MoveStatus.Failure };
  const dav = davBackendOf(backends, source);
  if (!dav || request.srcMsgId === undefined || !request.srcMsgId.startsWith(`${source.serverId}:`))
    return { status: MoveStatus.InvalidSource };
  try {
    const moved = await moveDavItem({
      state: context.state,
      device: context.device,
      dav,
      source,
      destination,
      srcMsgId: request.srcMsgId,
    });
    if (moved.kind === 'moved') return { status: MoveStatus.Success, dstMsgId: moved.dstMsgId };
    if (moved.kind === 'not-found') return { status: MoveStatus.InvalidSource };
    context.note?.({ moveError: moved.reason });
    return { status: MoveStatus.Failure };
  } catch (err) {
    // One failed move does not fail the others.
    context.note?.({ moveError: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    return { status: MoveStatus.Failure };
  }
}

/**
 * Tells the collection states of the device what it did: each moved message leaves the source's UIDs (and its
 * pending changes) and joins the destination's. States keep their key (the device's key stays valid) and their replay.
 * Returns the source collections whose state did not learn the moves (the store failed, or the mailbox could not be
 * read); each collection is tried whatever happened to the others.
 */
async function recordMoves(
  context: CommandContext,
  moves: CompletedMove[],
  uidValidities: Map<string, number>,
): Promise<Set<string>> {
  const unrecorded = new Set<string>();
  if (moves.length === 0) return unrecorded;
  const ids = [...new Set(moves.flatMap((m) => [m.source, m.destination]))];
  let before: Map<string, KeyedState<CollectionState> | undefined>;
  try {
    before = new Map(
      await Promise.all(ids.map(async (id) => [id, await context.state.getCollection(context.device, id)] as const)),
    );
  } catch (err) {
    context.note?.({ moveRecordError: String(err) });
    return new Set(moves.map((m) => m.source));
  }
  // First the sources learn the departures; then the destinations learn the arrivals whose departure was recorded
  // (an arrival recorded alone would tell the state the device has a message it was told was not moved).
  for (const id of new Set(moves.map((m) => m.source))) {
    const left = new Set(moves.filter((m) => m.source === id).map((m) => m.sourceUid));
    const movedOut = new Map(
      moves.filter((m) => m.source === id).map((m) => [`${id}:${m.sourceUid}`, `${m.destination}:${m.destinationUid}`]),
    );
    const uidValidity = uidValidities.get(id);
    try {
      if (uidValidity === undefined) throw new Error('the mailbox status could not be read');
      await updateCollection(context, id, before.get(id), uidValidity, (state) =>
        afterMoves(state, id, left, new Map(), movedOut),
      );
    } catch (err) {
      context.note?.({ moveRecordError: String(err) });
      // The write may have landed before the error (an answer lost): the state read again says which.
      if (!(await sourceRecorded(context, id, left))) unrecorded.add(id);
    }
  }
  for (const id of new Set(moves.map((m) => m.destination))) {
    const arrivals = moves.filter((m) => m.destination === id && !unrecorded.has(m.source));
    const uidValidity = uidValidities.get(id);
    if (arrivals.length === 0 || uidValidity === undefined) continue;
    const arrived = new Map(arrivals.map((m) => [m.destinationUid, flagDigitOf(before.get(m.source), m.sourceUid)]));
    // The flag details the device set (items/email-flag.ts) go with the message.
    const flagDetails = new Map(
      arrivals.flatMap((m) => {
        const kept = before.get(m.source)?.state.flags?.[m.sourceUid];
        return kept ? [[m.destinationUid, kept] as const] : [];
      }),
    );
    // Unrecorded, an arrival costs at most an Add of a message the device already moved there: never a loss.
    try {
      // A folder that was also a source has a newer state than `before` (same key: the older one must not overwrite
      // it).
      const current = moves.some((m) => m.source === id)
        ? await context.state.getCollection(context.device, id)
        : before.get(id);
      await updateCollection(context, id, current, uidValidity, (state) =>
        afterMoves(state, id, new Set(), arrived, new Map(), flagDetails),
      );
    } catch (err) {
      context.note?.({ moveRecordError: String(err) });
    }
  }
  return unrecorded;
}

/** Whether the source's state no longer holds the moved UIDs (false when it cannot be read either). */
async function sourceRecorded(context: CommandContext, collectionId: string, left: Set<number>): Promise<boolean> {
  try {
    const wm = (await context.state.getCollection(context.device, collectionId))?.state.watermark;
    if (wm?.kind !== 'imap') return true;
    const uids = new Set(decodeUidSet(wm.uids));
    return [...left].every((uid) => !uids.has(uid));
  } catch {
    return false;
  }
}

/** Commits `edit` to a collection state the device has of this mailbox generation, retrying over concurrent Syncs. */
async function updateCollection(
  context: CommandContext,
  collectionId: string,
  first: KeyedState<CollectionState> | undefined,
  uidValidity: number,
  edit: (state: CollectionState) => CollectionState,
): Promise<void> {
  let current = first;
  for (let attempt = 1; attempt <= STATE_ATTEMPTS; attempt++) {
    const watermark = current?.state.watermark;
    if (!current || watermark?.kind !== 'imap' || watermark.uidValidity !== uidValidity) return;
    try {
      await context.state.commitCollection(
        context.device,
        collectionId,
        { syncKey: current.syncKey },
        { ...current, state: edit(current.state) },
      );
      return;
    } catch (err) {
      if (!(err instanceof StateConflictError)) throw err;
    }
    current = await context.state.getCollection(context.device, collectionId);
  }
  // Still losing to Syncs: leave the state as it is. The next Sync then sends the move as a Delete and an Add,
  // redundant for the device but not wrong.
}

type ImapWatermark = Extract<Watermark, { kind: 'imap' }>;

/**
 * An 'imap' collection state with `left` UIDs gone from what the device has and `arrived` UIDs (with their flag digits)
 * added.
 */
export function afterMoves(
  state: CollectionState,
  collectionId: string,
  left: Set<number>,
  arrived: Map<number, string | undefined>,
  movedOut: Map<string, string> = new Map(),
  flagDetails: Map<number, FlagDetails> = new Map(),
): CollectionState {
  const wm = state.watermark as ImapWatermark;
  // Sync keeps `flagDigits` (without CONDSTORE) as one token per UID of `uids`, in UID order: keep them aligned.
  const tokens = wm.flagDigits !== undefined ? flagDigitsMap(wm.uids, wm.flagDigits) : undefined;
  const digits = new Map<number, string>();
  for (const uid of decodeUidSet(wm.uids)) if (!left.has(uid)) digits.set(uid, tokens?.get(uid) ?? '0');
  // An unknown digit ('0') costs at most one Change of the flags, never a duplicate.
  for (const [uid, digit] of arrived) digits.set(uid, digit ?? '0');
  const uids = [...digits.keys()].sort((a, b) => a - b);

  const watermark: ImapWatermark = { ...wm, uids: encodeUidSet(uids) };
  if (wm.flagDigits !== undefined) watermark.flagDigits = uids.map((uid) => digits.get(uid)).join('');
  if (wm.pendingAdds !== undefined)
    watermark.pendingAdds = encodeUidSet(decodeUidSet(wm.pendingAdds).filter((uid) => !left.has(uid)));
  const gone = new Set([...left].map((uid) => `${collectionId}:${uid}`));
  const movedTo = Object.fromEntries([...Object.entries(state.movedTo ?? {}), ...movedOut].slice(-REMEMBERED_MOVES));
  const flags = { ...state.flags };
  for (const uid of left) delete flags[uid];
  for (const [uid, details] of flagDetails) flags[uid] = details;
  return {
    ...state,
    ...(Object.keys(flags).length ? { flags } : { flags: undefined }),
    watermark,
    pending: state.pending.filter((p) => !gone.has(p.serverId)),
    ...(Object.keys(movedTo).length ? { movedTo } : {}),
  };
}

/** The completed moves with their mailboxes and UIDVALIDITYs (those whose status could not be read are left out). */
function movedMessages(
  hierarchy: HierarchyState | undefined,
  moves: CompletedMove[],
  uidValidities: Map<string, number>,
): MovedMessage[] {
  return moves.flatMap((m) => {
    const from = mailFolder(hierarchy, m.source);
    const to = mailFolder(hierarchy, m.destination);
    const fromValidity = uidValidities.get(m.source);
    const toValidity = uidValidities.get(m.destination);
    if (!from || !to || fromValidity === undefined || toValidity === undefined) return [];
    return [
      {
        from: { mailbox: from.source.ref, uidValidity: fromValidity, uid: m.sourceUid },
        to: { mailbox: to.source.ref, uidValidity: toValidity, uid: m.destinationUid },
      },
    ];
  });
}

/** The flag digit the device's state of the source holds for a message, when it keeps them. */
function flagDigitOf(source: KeyedState<CollectionState> | undefined, uid: number): string | undefined {
  const wm = source?.state.watermark;
  if (wm?.kind !== 'imap' || wm.flagDigits === undefined) return undefined;
  return flagDigitsMap(wm.uids, wm.flagDigits).get(uid);
}

registerCommand({ name: 'MoveItems', handle: moveItems });
