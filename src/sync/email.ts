/**
 * Sync of one email collection: the device's commands applied to IMAP, then the server's changes since the
 * device's state, one window at a time.
 *
 * The state keeps the UIDs the device has, the HIGHESTMODSEQ it is up to date with, and the UIDs still to send.
 * With CONDSTORE/QRESYNC a Sync asks only for what changed since that modseq (CHANGEDSINCE, VANISHED), so its cost
 * follows the number of changes, not the size of the mailbox. Without them, a UID and flags comparison gives the
 * same answer.
 */
import type { MailBackend, MessageParts, MessageSummary, MimePart } from '../backends/types.ts';
import { emailFlagChange, imapFlagUpdate, type EmailOutputOptions, type MailPolicy } from '../items/email.ts';
import { planParts } from '../items/email-parts.ts';
import { emailItemData } from '../folders/mail-lookup.ts';
import type { MailFlagStore } from '../folders/mail-flags.ts';
import { conversationMembers, conversationOfHeaders, threadHeadersByUid } from '../folders/conversations.ts';
import type { CollectionState, FlagDetails, PendingChange, SyncOptions, Watermark } from '../state/types.ts';
import { UidSet } from '../state/uidset.ts';
import { flagDigit, flagDigitsMap } from './flag-tokens.ts';
import { child, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { itemStatus, SyncStatus } from './status.ts';
import { convertOrSkip, subjectOf, withBrokenItems } from './loop-detection.ts';
import type { BrokenItem } from '../state/types.ts';
import { flagRequestOf, flagToDevice, isFlagged } from '../items/email-flag.ts';
import { withFields } from '../util/objects.ts';

type ImapWatermark = Extract<Watermark, { kind: 'imap' }>;

export interface EmailSyncRequest {
  mail: MailBackend;
  folderRef: string;
  collectionId: string;
  /** Where deleted items go when DeletesAsMoves is on; undefined when there is no Trash. */
  trashRef: string | undefined;
  state: CollectionState;
  options: SyncOptions;
  windowSize: number;
  getChanges: boolean;
  deletesAsMoves: boolean;
  commands: WbxmlElement[];
  version: string;
  fileReference(uid: number, partId: string): string;
  /** The user's flag details of this folder (per user and message, not per sync key: items/email-flag.ts). */
  flags: MailFlagStore;
  /** Bytes of message source this answer may load for its Fetches and Adds (MAX_RESPONSE_BYTES). */
  byteBudget?: number;
  /**
   * Moves new arrivals that a MoveAlways rule names out of the folder (sync/conversation-rules.ts); returns the UIDs
   * that left. Undefined where no rule applies (Sent Items).
   */
  moveArrivals?: (uids: number[]) => Promise<Set<number>>;
  /** The user's device policy, held to whatever the device asks (items/email.ts MailPolicy). */
  policy?: MailPolicy;
}

export interface EmailSyncResult {
  /** Status 1, or 3 when the folder was recreated (UIDVALIDITY changed) and the device must start over. */
  status: number;
  state: CollectionState;
  /** Server → device: Add, Change, Delete, SoftDelete. */
  commands: WbxmlElement[];
  /** Answers to the device's commands: failures, Adds, Fetches. */
  responses: WbxmlElement[];
  moreAvailable: boolean;
  /** Whether anything was sent, applied or learned: only then does the key move. */
  progressed: boolean;
}

/** FilterType → how far back the window reaches (MS-ASCMD §2.2.3.68.2). 0 and unknown: everything. */
const FILTER_DAYS: Record<number, number> = { 1: 1, 2: 3, 3: 7, 4: 14, 5: 31, 6: 92, 7: 183 };
const DAY_MS = 86_400_000;

export function windowStart(filterType: number | undefined, now = Date.now()): Date | undefined {
  const days = filterType === undefined ? undefined : FILTER_DAYS[filterType];
  if (!days) return undefined;
  // IMAP SINCE/BEFORE compare dates, not times: the window starts at a midnight (UTC).
  return new Date(Math.floor((now - days * DAY_MS) / DAY_MS) * DAY_MS);
}

/**
 * Which of the device's Fetches this answer loads: only messages the device holds (any other is ObjectNotFound
 * without a read), at most a window of them, in request order; `held` are the ones it holds (the rest of them are
 * answered with a retry).
 */
function planFetches(
  requested: number[],
  deviceUids: UidSet,
  windowSize: number,
): { served: number[]; held: Set<number> } {
  const held = new Set(requested.filter((uid) => deviceUids.has(uid)));
  return { served: [...held].slice(0, Math.max(1, windowSize)), held };
}

/** `5:123` → 123 when the ServerId belongs to this collection. */
function uidOf(serverId: string | undefined, collectionId: string): number | undefined {
  if (!serverId?.startsWith(`${collectionId}:`)) return undefined;
  const uid = Number(serverId.slice(collectionId.length + 1));
  return Number.isSafeInteger(uid) && uid > 0 ? uid : undefined;
}

/** Messages in the first IMAP fetch of a window's Adds, and at most in the next ones. */
const ADD_FIRST_FETCH = 10;
const ADD_FETCH_CHUNK = 100;
/** A window's Adds stop after this long (Android's HTTP timeout is about 30 s)... */
const ADD_TIME_BUDGET_MS = 20_000;
/** ...or after this many bytes of message source, with the Fetches' (EmailSyncRequest.byteBudget). */
const DEFAULT_BYTE_BUDGET = 32 * 1024 * 1024;

export async function syncEmailCollection(req: EmailSyncRequest): Promise<EmailSyncResult> {
  const { mail, folderRef, collectionId } = req;
  const status = await mail.status(folderRef);
  const previous = req.state.watermark;
  if (previous.kind === 'imap' && previous.uidValidity !== status.uidValidity) {
    return {
      status: SyncStatus.InvalidSyncKey,
      state: req.state,
      commands: [],
      responses: [],
      moreAvailable: false,
      progressed: false,
    };
  }
  const since = windowStart(req.options.filterType);
  const first = previous.kind !== 'imap';
  const wm: ImapWatermark =
    previous.kind === 'imap'
      ? { ...previous }
      : {
          kind: 'imap',
          uidValidity: status.uidValidity,
          highestModSeq: '',
          uids: '',
          pendingAdds: '',
          ...(since ? { windowStart: since.getTime() } : {}),
        };
  const deviceUids = UidSet.parse(wm.uids);
  const pendingAdds = UidSet.parse(wm.pendingAdds ?? '');
  const conversationAdds = UidSet.parse(wm.conversationAdds ?? '');
  const conversationMode = req.options.conversationMode === true && since !== undefined;
  const pending = new Map<number, PendingChange['kind']>();
  for (const p of req.state.pending) {
    const uid = uidOf(p.serverId, collectionId);
    if (uid !== undefined) pending.set(uid, p.kind);
  }
  const flagsBefore = wm.flagDigits !== undefined ? flagDigitsMap(wm.uids, wm.flagDigits) : undefined;
  let progressed = first;
  // The flag details the user's devices set, by UID (email-flag.ts); what is sent out is checked against IMAP's
  // \Flagged. A state written before the details moved to the per-user store still holds some: they move over.
  // Read only by a Sync that sends, takes or carries over something (loadDetails): one with nothing to do reads none.
  const flagChanges: Record<string, FlagDetails | null> = {};
  const flagDetails: Record<string, FlagDetails> = {};
  let detailsRead: Promise<Record<string, FlagDetails>> | undefined;
  const readDetails = (): Promise<Record<string, FlagDetails>> => (detailsRead ??= req.flags.read(status.uidValidity));
  let detailsLoaded = false;
  const loadDetails = async (): Promise<void> => {
    if (detailsLoaded) return;
    const stored = await readDetails();
    if (detailsLoaded) return;
    detailsLoaded = true;
    for (const [uid, details] of Object.entries(req.state.flags ?? {})) if (!stored[uid]) flagChanges[uid] = details;
    Object.assign(flagDetails, flagChanges, stored);
  };
  if (first || req.commands.length || Object.keys(req.state.flags ?? {}).length) await loadDetails();
  const setDetails = (uid: number, details: FlagDetails | undefined): void => {
    if (details) {
      if (flagDetails[uid] !== details) flagChanges[uid] = details;
      flagDetails[uid] = details;
    } else if (flagDetails[uid]) {
      flagChanges[uid] = null;
      delete flagDetails[uid];
    }
  };
  const flagOf = (uid: number, flags: ReadonlySet<string>): WbxmlElement => {
    const { element, keep } = flagToDevice(isFlagged(flags), flagDetails[uid]);
    setDetails(uid, keep);
    return element;
  };
  // A full resync is the moment to drop the details of messages no longer in the folder (expunged or moved by
  // another client while no device had them in its window).
  if (first) {
    const kept = Object.keys(flagDetails).map(Number);
    const present = new Set((kept.length ? await mail.fetchSummaries(folderRef, kept) : []).map((m) => m.uid));
    for (const uid of kept) if (!present.has(uid)) setDetails(uid, undefined);
  }

  // 1. The device's commands. Changes the server made to the same messages since the device's state decide
  //    conflicts (Conflict option: 1 server wins, the default; 0 client wins).
  const responses: WbxmlElement[] = [];
  const appliedByDevice = new Set<number>();
  const serverWins = (req.options.conflict ?? 1) === 1;
  let changedOnServer: Set<number> | undefined;
  // One IMAP read for all the device's Changes and one for its Fetches, one move or expunge for its Deletes:
  // never a round trip per item.
  const uidsOf = (tag: string): number[] =>
    req.commands
      .filter((c) => c.tag === tag)
      .map((c) => uidOf(childText(c, 'ServerId'), collectionId))
      .filter((u): u is number => u !== undefined);
  const changeUids = uidsOf('Change').filter((uid) => deviceUids.has(uid));
  const byteBudget = req.byteBudget ?? DEFAULT_BYTE_BUDGET;
  const fetches = planFetches(uidsOf('Fetch'), deviceUids, req.windowSize);
  // Octets of message source this answer reads, counted as the reads are planned (the structure FETCH tells what each
  // message's plan reads): a message that would take the answer past the byte budget is not read, unless it is the
  // first. Once one is refused, the later ones are too, so that what is left is the oldest.
  let bytes = 0;
  const withinBudget = (refused: Set<number>) => (summary: MessageSummary, planned: number) => {
    if (refused.size > 0 || (bytes > 0 && bytes + planned > byteBudget)) {
      refused.add(summary.uid);
      return false;
    }
    bytes += planned;
    return true;
  };
  const fetchesRefused = new Set<number>();
  const currentFlags = new Map(
    (changeUids.length ? await mail.fetchSummaries(folderRef, changeUids) : []).map((m) => [m.uid, m]),
  );
  // One set of options for planning every message's read (they depend on the request, not on the message).
  const partsOptions = outputOptions(req, 0);
  const readParts = (structure: MimePart) => planParts(structure, partsOptions);
  const fetched = new Map(
    (fetches.served.length
      ? await mail.fetchMessageParts(folderRef, fetches.served, readParts, withinBudget(fetchesRefused))
      : []
    ).map((m) => [m.uid, m]),
  );
  const deleted: number[] = [];
  for (const command of req.commands) {
    const serverId = childText(command, 'ServerId');
    const uid = uidOf(serverId, collectionId);
    progressed = true;
    if (command.tag === 'Add') {
      // Email folders take no Adds from devices (16.0+ Drafts take them in sync-drafts.ts first): item-level conversion
      // error.
      responses.push(
        el('AirSync', 'Add', [
          el('AirSync', 'ClientId', childText(command, 'ClientId') ?? ''),
          el('AirSync', 'Status', String(SyncStatus.ConversionError)),
        ]),
      );
    } else if (command.tag === 'Change') {
      if (uid === undefined || !deviceUids.has(uid)) {
        responses.push(itemStatus('Change', serverId, SyncStatus.ObjectNotFound));
        continue;
      }
      changedOnServer ??= await serverChangedUids(mail, folderRef, wm, status.highestModSeq);
      const current = currentFlags.get(uid);
      // Without CONDSTORE, the flags the device was sent last tell whether the server changed them since.
      const before = flagsBefore?.get(uid);
      const changedHere =
        changedOnServer.has(uid) ||
        (before !== undefined && current !== undefined && before !== flagDigit(current.flags));
      if (serverWins && changedHere) {
        responses.push(itemStatus('Change', serverId, SyncStatus.Conflict));
        pending.set(uid, pending.get(uid) ?? 'change');
        continue;
      }
      if (!current) {
        responses.push(itemStatus('Change', serverId, SyncStatus.ObjectNotFound));
        continue;
      }
      const data = child(command, 'ApplicationData') ?? el('AirSync', 'ApplicationData', []);
      const flag = child(data, 'Flag', 'Email');
      const flagRequest = flag ? flagRequestOf(flag) : undefined;
      if (flagRequest === 'invalid') {
        // MS-ASEMAIL §2.2.2.74: a flag Status other than 0, 1 or 2 is answered with Status 6.
        responses.push(itemStatus('Change', serverId, SyncStatus.ConversionError));
        continue;
      }
      const update = imapFlagUpdate(data, current.flags);
      await mail.setFlags(folderRef, uid, update.add, update.remove);
      if (flagRequest) setDetails(uid, flagRequest.details);
      // A second Change of the same item in this request starts from these flags.
      currentFlags.set(uid, {
        ...current,
        flags: new Set([...current.flags].filter((f) => !update.remove.includes(f)).concat(update.add)),
      });
      appliedByDevice.add(uid);
      if (pending.get(uid) === 'change') pending.delete(uid);
    } else if (command.tag === 'Delete') {
      if (uid === undefined || !deviceUids.has(uid)) {
        responses.push(itemStatus('Delete', serverId, SyncStatus.ObjectNotFound));
        continue;
      }
      deleted.push(uid);
      deviceUids.delete(uid);
      pending.delete(uid);
      setDetails(uid, undefined);
      appliedByDevice.add(uid);
    } else if (command.tag === 'Fetch') {
      // Past the window or the byte budget: Status 5, a transient server error the device retries (MS-ASCMD
      // §2.2.3.177.17); the item is there, this answer has no room for it.
      const unserved = uid !== undefined && (!fetches.served.includes(uid) || fetchesRefused.has(uid));
      if (uid !== undefined && fetches.held.has(uid) && unserved && !deleted.includes(uid)) {
        responses.push(itemStatus('Fetch', serverId, SyncStatus.ServerError));
        continue;
      }
      const message = uid === undefined || deleted.includes(uid) ? undefined : fetched.get(uid);
      responses.push(
        message
          ? el('AirSync', 'Fetch', [
              el('AirSync', 'ServerId', serverId ?? ''),
              el('AirSync', 'Status', String(SyncStatus.Success)),
              el(
                'AirSync',
                'ApplicationData',
                await applicationData(req, mail, folderRef, message, flagOf(message.uid, message.flags)),
              ),
            ])
          : itemStatus('Fetch', serverId, SyncStatus.ObjectNotFound),
      );
    }
  }

  if (deleted.length) {
    if (req.deletesAsMoves && req.trashRef && req.trashRef !== folderRef)
      await mail.moveMessages(folderRef, deleted, req.trashRef);
    else await mail.expungeMessages(folderRef, deleted);
  }

  // 2. The server's changes since the device's state, merged into what is still pending.
  const latest = appliedByDevice.size ? await mail.status(folderRef) : status;
  if (req.getChanges) {
    const upToDate =
      !first &&
      wm.highestModSeq !== '' &&
      latest.highestModSeq !== undefined &&
      wm.highestModSeq === String(latest.highestModSeq);
    // New to this device: what a MoveAlways rule names moves on first (conversation-rules.ts).
    const arrive = async (uids: number[]): Promise<void> => {
      const movedAway = req.moveArrivals ? await req.moveArrivals(uids) : new Set<number>();
      const arrived = uids.filter((uid) => !movedAway.has(uid));
      for (const uid of arrived) pendingAdds.add(uid);
      // ConversationMode (MS-ASCMD §2.2.3.36.2, MS-ASCON §3.1.4.9): the older messages of the arrivals'
      // conversations come too, however old.
      if (conversationMode && arrived.length) {
        for (const uid of await olderConversationMembers(mail, folderRef, arrived, since)) {
          if (deviceUids.has(uid) || pendingAdds.has(uid)) continue;
          pendingAdds.add(uid);
          conversationAdds.add(uid);
        }
      }
    };
    if (first) {
      await arrive(await mail.listUids(folderRef, since));
    } else if (!upToDate) {
      // Something changed: the details are likely needed for what is sent; read beside the IMAP query.
      readDetails().catch(() => undefined);
      // The arrivals are read next in this window: the backend may start on them with its FETCH of them.
      const found = await findChanges(mail, folderRef, wm, deviceUids, flagsBefore, since, true);
      await arrive(found.added.filter((uid) => !deviceUids.has(uid)));
      for (const uid of found.changed) {
        if (!deviceUids.has(uid) || appliedByDevice.has(uid)) continue;
        if (!pending.has(uid)) pending.set(uid, 'change');
      }
      for (const uid of found.removed) {
        pendingAdds.delete(uid);
        if (deviceUids.has(uid)) pending.set(uid, 'delete');
      }
      if (found.flags) wm.flagDigits = undefined;
      progressed ||= found.added.length + found.changed.length + found.removed.length > 0;
    }
    const keep = conversationMode
      ? (leaving: number[]) => inWindowConversations(mail, folderRef, leaving, since)
      : undefined;
    if (!first && (await moveWindow(mail, folderRef, wm, since, deviceUids, pendingAdds, pending, keep)))
      progressed = true;
  }
  if (latest.highestModSeq !== undefined && wm.highestModSeq !== String(latest.highestModSeq)) {
    wm.highestModSeq = String(latest.highestModSeq);
    progressed = true;
  }
  // Seen together with highestModSeq, for the next Sync's arrivals-only check (MailBackend.changesSince).
  if (latest.highestModSeq !== undefined && (wm.uidNext !== latest.uidNext || wm.messages !== latest.messages)) {
    wm.uidNext = latest.uidNext;
    wm.messages = latest.messages;
  }

  // 3. One window: removals and flag changes first (cheap, and they free the device), then the newest Adds.
  if (req.getChanges && pending.size + pendingAdds.size > 0) await loadDetails();
  const commands: WbxmlElement[] = [];
  let room = req.getChanges ? req.windowSize : 0;
  const removals = [...pending].filter(([, kind]) => kind === 'delete' || kind === 'softdelete');
  for (const [uid, kind] of removals) {
    if (room === 0) break;
    commands.push(
      el('AirSync', kind === 'delete' ? 'Delete' : 'SoftDelete', [el('AirSync', 'ServerId', `${collectionId}:${uid}`)]),
    );
    deviceUids.delete(uid);
    pending.delete(uid);
    // Gone from the folder: its details go; out of the window only (SoftDelete): they stay for the next time.
    if (kind === 'delete') setDetails(uid, undefined);
    room--;
  }
  const changes = [...pending]
    .filter(([, kind]) => kind === 'change')
    .map(([uid]) => uid)
    .slice(0, room);
  if (changes.length) {
    const summaries = await mail.fetchSummaries(folderRef, changes);
    for (const s of summaries) commands.push(changeElement(collectionId, s, req.version, flagOf(s.uid, s.flags)));
    for (const uid of changes) pending.delete(uid);
    room -= changes.length;
  }
  // The window holds as many messages as the byte budget, at least one unless the Fetches took it (withinBudget, from
  // the structure FETCH of each part of the window); the rest stay pending.
  const adds = pendingAdds.largest(room);
  const broken: BrokenItem[] = [];
  // The window is fetched in parts, and ends early once the answer has taken ADD_TIME_BUDGET_MS or holds the byte
  // budget in message source, Fetches included: Android clients give up on an answer after about 30 s, and a window
  // of 512 large messages in full MIME would not fit in a function's memory. What is left stays pending
  // (MoreAvailable).
  const started = Date.now();
  // The Fetches' bytes count: an answer whose Fetches took the budget sends no Adds (they stay pending).
  const fetchedBytes = bytes;
  for (let at = 0; at < adds.length; ) {
    if ((at > 0 || fetchedBytes > 0) && (Date.now() - started > ADD_TIME_BUDGET_MS || bytes > byteBudget)) break;
    // Later parts are sized by the messages seen so far, so one part does not overshoot the byte budget by much.
    const size =
      at === 0
        ? ADD_FIRST_FETCH
        : Math.max(1, Math.min(ADD_FETCH_CHUNK, Math.floor(((byteBudget - bytes) * at) / (bytes - fetchedBytes || 1))));
    const part = adds.slice(at, at + size);
    at += part.length;
    const refused = new Set<number>();
    for (const message of await mail.fetchMessageParts(folderRef, part, readParts, withinBudget(refused))) {
      // A message that cannot be converted is skipped and reported (loop-detection.ts), not a failed Sync.
      const serverId = `${collectionId}:${message.uid}`;
      // Older than the window, here for its conversation: the preview but not the body (MS-ASCMD §2.2.3.36.2).
      const previewOnly = conversationAdds.has(message.uid);
      const data = await convertOrSkip(
        () => applicationData(req, mail, folderRef, message, flagOf(message.uid, message.flags), previewOnly),
        { serverId, subject: subjectOf(message.source ?? message.header) },
        broken,
      );
      if (data === undefined) continue;
      commands.push(
        el('AirSync', 'Add', [el('AirSync', 'ServerId', serverId), el('AirSync', 'ApplicationData', data)]),
      );
      deviceUids.add(message.uid);
    }
    // Messages that vanished between the search and the fetch are simply not sent; those past the budget stay.
    for (const uid of part) {
      if (refused.has(uid)) continue;
      pendingAdds.delete(uid);
      conversationAdds.delete(uid);
    }
    if (refused.size > 0) break;
  }
  progressed ||= commands.length > 0 || broken.length > 0;

  for (const uid of conversationAdds) if (!pendingAdds.has(uid)) conversationAdds.delete(uid);
  const { conversationAdds: _before, ...rest } = wm;
  const nextWatermark: ImapWatermark = {
    ...rest,
    uids: deviceUids.toString(),
    pendingAdds: pendingAdds.toString(),
    ...(conversationAdds.size ? { conversationAdds: conversationAdds.toString() } : {}),
  };
  if (Object.keys(flagChanges).length) await req.flags.write(status.uidValidity, flagChanges);
  const { flags: _previous, ...stateWithoutFlags } = req.state;
  if (latest.highestModSeq === undefined)
    nextWatermark.flagDigits = await currentFlagDigits(mail, folderRef, deviceUids);
  return {
    status: SyncStatus.Success,
    state: withBrokenItems(
      {
        ...stateWithoutFlags,
        options: req.options,
        watermark: nextWatermark,
        pending: [...pending].map(([uid, kind]) => ({ kind, serverId: `${collectionId}:${uid}` })),
      },
      broken,
    ),
    commands,
    responses,
    moreAvailable: pendingAdds.size + pending.size > 0,
    progressed,
  };
}

/**
 * The FilterType window moved: a day passed, or the device sent another FilterType under its live key, which Exchange
 * answers by resyncing the window, not by starting over (MS-ASCMD §2.2.3.68.2). What left the window is SoftDeleted
 * from the device (it stays on the server); what entered it is added. `since` undefined is no window (everything);
 * so is a stored `windowStart` that is absent. True when the window moved.
 */
async function moveWindow(
  mail: MailBackend,
  folderRef: string,
  wm: ImapWatermark,
  since: Date | undefined,
  deviceUids: UidSet,
  pendingAdds: UidSet,
  pending: Map<number, PendingChange['kind']>,
  keep?: (leaving: number[]) => Promise<Set<number>>,
): Promise<boolean> {
  const from = wm.windowStart;
  const to = since?.getTime();
  if (from === to) return false;
  if (to !== undefined && (from === undefined || to > from)) {
    // Narrower (or later): [from, to) leaves, but for what `keep` holds (ConversationMode: a conversation still in
    // the window).
    const leaving = await mail.listUids(folderRef, from === undefined ? undefined : new Date(from), since);
    const kept = keep && leaving.length ? await keep(leaving.filter((uid) => deviceUids.has(uid))) : new Set<number>();
    for (const uid of leaving) {
      if (kept.has(uid)) continue;
      pendingAdds.delete(uid);
      if (deviceUids.has(uid)) pending.set(uid, 'softdelete');
    }
  } else if (from !== undefined) {
    // Wider: [to, from) enters; a SoftDelete of it not yet sent is called off.
    for (const uid of await mail.listUids(folderRef, since, new Date(from))) {
      if (!deviceUids.has(uid)) pendingAdds.add(uid);
      else if (pending.get(uid) === 'softdelete') pending.delete(uid);
    }
  }
  if (to === undefined) delete wm.windowStart;
  else wm.windowStart = to;
  return true;
}

function changeElement(
  collectionId: string,
  message: MessageSummary,
  version: string,
  flag: WbxmlElement,
): WbxmlElement {
  return el('AirSync', 'Change', [
    el('AirSync', 'ServerId', `${collectionId}:${message.uid}`),
    el('AirSync', 'ApplicationData', emailFlagChange(message.flags, version, flag)),
  ]);
}

/**
 * The UIDs older than the window (`since`) of the conversations of these messages: their thread headers, then an IMAP
 * SEARCH per few conversations (folders/conversations.ts).
 */
async function olderConversationMembers(
  mail: MailBackend,
  folderRef: string,
  uids: number[],
  since: Date | undefined,
): Promise<number[]> {
  const headers = await threadHeadersByUid(mail, folderRef, uids);
  return [...(await conversationMembers(mail, folderRef, headers.values(), { before: since })).keys()];
}

/** Of these messages leaving the window, those whose conversation still has a message in it (ConversationMode). */
async function inWindowConversations(
  mail: MailBackend,
  folderRef: string,
  leaving: number[],
  since: Date | undefined,
): Promise<Set<number>> {
  const headers = await threadHeadersByUid(mail, folderRef, leaving);
  const inWindow = new Set((await conversationMembers(mail, folderRef, headers.values(), { since })).values());
  return new Set([...headers].filter(([, h]) => inWindow.has(conversationOfHeaders(h))).map(([uid]) => uid));
}

/** Preview only: what TruncationSize 0 gives, the body's size and preview without its content (MS-ASAIRS §2.2.2.48). */
function previewOnly(
  preferences: NonNullable<SyncOptions['bodyPreferences']>,
): NonNullable<SyncOptions['bodyPreferences']> {
  return preferences.map((p) => withFields(p, { truncationSize: 0 }));
}

function outputOptions(
  req: EmailSyncRequest,
  uid: number,
  flag?: WbxmlElement,
  withoutBody = false,
): EmailOutputOptions {
  const bodyPreferences = req.options.bodyPreferences ?? [];
  const bodyPartPreferences = req.options.bodyPartPreferences ?? [];
  // The optional flag last: a literal that starts with a spread costs a hidden class per call (util/objects.ts).
  return {
    version: req.version,
    bodyPreferences: withoutBody ? previewOnly(bodyPreferences) : bodyPreferences,
    bodyPartPreferences: withoutBody ? previewOnly(bodyPartPreferences) : bodyPartPreferences,
    mimeSupport: (req.options.mimeSupport ?? 0) as 0 | 1 | 2,
    mimeTruncation: req.options.mimeTruncation,
    fileReference: (partId) => req.fileReference(uid, partId),
    policy: req.policy,
    ...(flag ? { flag } : {}),
  };
}

/** A message read in parts as ApplicationData (folders/mail-lookup.ts emailItemData). */
async function applicationData(
  req: EmailSyncRequest,
  mail: MailBackend,
  folderRef: string,
  message: MessageParts,
  flag: WbxmlElement,
  withoutBody = false,
): Promise<WbxmlElement[]> {
  return emailItemData(mail, folderRef, message, outputOptions(req, message.uid, flag, withoutBody));
}

/**
 * UIDs whose flags the server changed since the device's modseq (for conflicts); empty without CONDSTORE (flag digits
 * decide then).
 */
async function serverChangedUids(
  mail: MailBackend,
  folder: string,
  wm: ImapWatermark,
  highest: bigint | undefined,
): Promise<Set<number>> {
  if (wm.highestModSeq === '' || highest === undefined || String(highest) === wm.highestModSeq) return new Set();
  const changes = await mail.changesSince(folder, BigInt(wm.highestModSeq));
  return new Set(changes?.changed.map((m) => m.uid) ?? []);
}

interface FoundChanges {
  added: number[];
  changed: number[];
  removed: number[];
  /** True when found by comparing flags (no CONDSTORE). */
  flags: boolean;
}

async function findChanges(
  mail: MailBackend,
  folder: string,
  wm: ImapWatermark,
  deviceUids: UidSet,
  flagsBefore: Map<number, string> | undefined,
  since: Date | undefined,
  readArrivals = false,
): Promise<FoundChanges> {
  if (wm.highestModSeq !== '') {
    const before =
      wm.uidNext !== undefined && wm.messages !== undefined
        ? { uidNext: wm.uidNext, messages: wm.messages, readArrivals }
        : undefined;
    const changes = await mail.changesSince(folder, BigInt(wm.highestModSeq), since, before);
    if (changes) {
      const added = changes.changed.filter((m) => !deviceUids.has(m.uid)).map((m) => m.uid);
      const changed = changes.changed.filter((m) => deviceUids.has(m.uid)).map((m) => m.uid);
      let removed = changes.vanished?.filter((uid) => deviceUids.has(uid));
      if (removed === undefined) {
        const present = new Set(await mail.listUids(folder));
        removed = [...deviceUids].filter((uid) => !present.has(uid));
      }
      return { added, changed, removed, flags: false };
    }
  }
  // No CONDSTORE: compare the UIDs and flags the device has with the folder now. A UID is removed only when it is
  // gone from the whole folder (one outside the window is the window's business: SoftDelete).
  const now = await mail.listMessages(folder, since);
  const all = since ? new Set(await mail.listUids(folder)) : new Set(now.map((m) => m.uid));
  const added = now.filter((m) => !deviceUids.has(m.uid)).map((m) => m.uid);
  const removed = [...deviceUids].filter((uid) => !all.has(uid));
  const changed = now
    .filter((m) => deviceUids.has(m.uid) && flagsBefore?.get(m.uid) !== flagDigit(m.flags))
    .map((m) => m.uid);
  return { added, changed, removed, flags: true };
}

async function currentFlagDigits(mail: MailBackend, folder: string, deviceUids: UidSet): Promise<string> {
  const sorted = [...deviceUids];
  const summaries = new Map((await mail.fetchSummaries(folder, sorted)).map((m) => [m.uid, m]));
  return sorted.map((uid) => flagDigit(summaries.get(uid)?.flags ?? new Set())).join('');
}

/** How many changes the next Syncs would send (GetItemEstimate), without sending or storing anything. */
export async function estimateEmailChanges(
  mail: MailBackend,
  folderRef: string,
  collectionId: string,
  state: CollectionState,
  options: SyncOptions,
): Promise<number> {
  const since = windowStart(options.filterType);
  const wm = state.watermark;
  if (wm.kind !== 'imap') return (await mail.listUids(folderRef, since)).length;
  const status = await mail.status(folderRef);
  if (status.uidValidity !== wm.uidValidity) return 0;
  const deviceUids = UidSet.parse(wm.uids);
  const pendingAdds = UidSet.parse(wm.pendingAdds ?? '');
  const pendingUids = new Set(state.pending.map((p) => uidOf(p.serverId, collectionId)));
  let count = pendingAdds.size + pendingUids.size;
  if (
    wm.highestModSeq === '' ||
    status.highestModSeq === undefined ||
    wm.highestModSeq !== String(status.highestModSeq)
  ) {
    const flagsBefore = wm.flagDigits !== undefined ? flagDigitsMap(wm.uids, wm.flagDigits) : undefined;
    const found = await findChanges(mail, folderRef, wm, deviceUids, flagsBefore, since);
    count += found.added.filter((uid) => !pendingAdds.has(uid)).length;
    count += [...found.changed, ...found.removed].filter((uid) => !pendingUids.has(uid)).length;
  }
  return count;
}
