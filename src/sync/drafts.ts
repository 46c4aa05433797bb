/**
 * Drafts sync (16.0+, MS-ASEMAIL, MS-ASCMD §2.2.3.7.2): in the Drafts folder a device may Add a
 * draft, Change its content and attachments, and send it with `email2:Send`. The rest of the folder's sync (flags,
 * deletes, fetches, the server's changes) is sync-email.ts'; this module wraps it.
 *
 * IMAP messages cannot change, so each save APPENDs the new version (\Draft) and expunges the old one: a new UID.
 * The device keeps the ServerId it was given, though. The collection state's `drafts` records, per ServerId, the UID
 * the draft has now and the attachment numbers the device holds FileReferences for (`<ServerId>:<n>`). So:
 * - the device's commands naming that ServerId go to the current UID, and the server's changes to that UID go out
 *   under the ServerId;
 * - the new UID is not sent to the device as an Add, nor the old UID's removal as a Delete (nor the new UID's flags
 *   as a Change): the device made the change itself;
 * - other devices see the draft's changes as any others: the old version deleted, the new one added.
 *
 * Sending (email2:Send on an Add or Change): the draft is submitted over SMTP (Bcc off the wire), once per draft
 * version (a marker in the StateStore, as SendMail's ClientId), then copied to Sent Items (\Seen) and removed from
 * Drafts; the device learns of the removal as a Delete. A failure after the message went out is logged and the
 * answer still says success, as Exchange does. A failed submission leaves the draft in Drafts, with item Status 6
 * (5 when the SMTP server was unreachable).
 */
import { FolderType, type MailBackend } from '../backends/types.ts';
import { imapFlagUpdate } from '../items/email.ts';
import { buildDraft, draftAttachmentCount, isDraftEdit, readDraftEdit, type DraftEdit } from '../items/draft.ts';
import { InvalidMimeError, prepareOutgoing, type OutgoingMessage } from '../items/outgoing.ts';
import { CommonStatus } from '../protocol/status.ts';
import type { CollectionState, DraftRecord, PendingChange } from '../state/types.ts';
import { UidSet } from '../state/uidset.ts';
import { child, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { ComposeFailure } from '../sending/compose-request.ts';
import { submitOnce, warnAfterSend } from '../sending/compose.ts';
import { parseFileReference, parseItemId } from '../folders/mail-lookup.ts';
import type { CommandContext } from '../protocol/command.ts';
import { syncEmailCollection, type EmailSyncRequest, type EmailSyncResult } from './email.ts';
import { flagDigit, flagDigitsMap } from './flag-tokens.ts';
import { itemStatus, SyncStatus } from './status.ts';

/** How many ClientIds of Adds a collection remembers (a resent Add gets the same ServerId). */
const REMEMBERED_ADDS = 100;

/** What this request did to the Drafts folder, for settling the email sync's answer. */
interface DraftWork {
  /** New UID → the UID it replaced (undefined for a new draft); only drafts the device knows under a ServerId. */
  written: Map<number, number | undefined>;
  /** The flags each written UID was stored with. */
  writtenFlags: Map<number, Set<string>>;
  /** UIDs sent and removed from Drafts: the device gets a Delete. True when it knew the draft before this request. */
  sent: Map<number, boolean>;
  responses: WbxmlElement[];
  drafts: Record<string, DraftRecord>;
  clientIds: Record<string, string>;
}

/**
 * Sync of the Drafts folder for a 16.0+ device: draft commands here, the rest in syncEmailCollection.
 *
 * `addName(clientId, applicationData)` names a device's Add for good (the same for a resent request): the new draft's Message-ID is
 * made from it, so that a retried Add whose first APPEND landed (its answer lost, or the state write failed) finds
 * that draft instead of appending a second one.
 */
export async function syncDraftsCollection(
  context: CommandContext,
  req: EmailSyncRequest,
  addName?: (clientId: string, applicationData: WbxmlElement | undefined) => Promise<string>,
): Promise<EmailSyncResult> {
  const work: DraftWork = {
    written: new Map(),
    writtenFlags: new Map(),
    sent: new Map(),
    responses: [],
    drafts: { ...(req.state.drafts ?? {}) },
    clientIds: { ...req.state.clientIds },
  };
  const passOn: WbxmlElement[] = [];
  for (const command of req.commands) {
    const data = child(command, 'ApplicationData');
    const send = child(command, 'Send', 'Email2') !== undefined || child(data, 'Send', 'Email2') !== undefined;
    if (command.tag === 'Add') await addDraft(context, req, work, command, send, addName);
    else if (command.tag === 'Change' && (send || isDraftEdit(data)))
      await changeDraft(context, req, work, command, send);
    else passOn.push(toCurrentUid(command, req.collectionId, work.drafts));
  }
  const handled = passOn.length !== req.commands.length;
  const result = await syncEmailCollection({
    ...req,
    commands: passOn,
    state: { ...req.state, clientIds: work.clientIds, drafts: work.drafts },
  });
  return settle(result, req.collectionId, work, handled);
}

// ---------------------------------------------------------------------------------------------------------------------
// The device's commands

async function addDraft(
  context: CommandContext,
  req: EmailSyncRequest,
  work: DraftWork,
  command: WbxmlElement,
  send: boolean,
  addName?: (clientId: string, applicationData: WbxmlElement | undefined) => Promise<string>,
): Promise<void> {
  const clientId = childText(command, 'ClientId') ?? '';
  const answer = (status: number, serverId?: string, data?: WbxmlElement): void => {
    work.responses.push(
      el('AirSync', 'Add', [
        el('AirSync', 'ClientId', clientId),
        serverId !== undefined && el('AirSync', 'ServerId', serverId),
        el('AirSync', 'Status', String(status)),
        data,
      ]),
    );
  };
  const known = work.clientIds[clientId];
  if (known) return answer(SyncStatus.Success, known);
  if (!clientId) return answer(SyncStatus.ProtocolError);

  const data = child(command, 'ApplicationData');
  const edit = readDraftEdit(data);
  const name = addName ? await addName(clientId, data) : undefined;
  const messageId = name
    ? `<draft-${name}@${context.user.login.split('@')[1] || 'activesync-edge.invalid'}>`
    : undefined;
  const source = await buildDraft(undefined, edit, {
    from: context.user.login,
    removeParts: new Set(),
    ...(messageId ? { messageId } : {}),
  }).catch(() => undefined);
  if (!source || source.length > context.config.maxMessageBytes) return answer(SyncStatus.ConversionError);
  const flags = withUpdate(new Set(['\\Draft', '\\Seen']), data);
  const landed = messageId ? await req.mail.findByMessageId(req.folderRef, messageId) : [];
  const uid = landed.length ? Math.max(...landed) : await req.mail.appendMessage(req.folderRef, source, [...flags]);
  // Without UIDPLUS the new UID is unknown: the draft arrives as an Add in a later Sync instead.
  if (uid === undefined) return answer(SyncStatus.ServerError);

  const serverId = `${req.collectionId}:${uid}`;
  const record: DraftRecord = { uid, parts: edit.added.map((_, i) => i), nextPart: edit.added.length };
  if (send) {
    // Keyed by the Add's name: a retry whose first attempt sent and removed the draft has a new UID, not a new send.
    const outcome = await sendDraft(context, req, serverId, uid, source, name ? `draft-send:add:${name}` : undefined);
    // Not sent: the draft stays in Drafts and reaches the device as a server Add; the device's item failed.
    if (outcome.status !== SyncStatus.Success) return answer(outcome.status);
    if (outcome.removed) work.sent.set(uid, false);
  }
  work.written.set(uid, undefined);
  work.writtenFlags.set(uid, flags);
  work.drafts[serverId] = record;
  work.clientIds[clientId] = serverId;
  answer(SyncStatus.Success, serverId, attachmentAnswers(serverId, edit, 0));
}

async function changeDraft(
  context: CommandContext,
  req: EmailSyncRequest,
  work: DraftWork,
  command: WbxmlElement,
  send: boolean,
): Promise<void> {
  const serverId = childText(command, 'ServerId') ?? '';
  const fail = (status: number): void => void work.responses.push(itemStatus('Change', serverId, status));
  const id = parseItemId(serverId);
  const stored = work.drafts[serverId];
  const uid = stored?.uid ?? id?.uid;
  const wm = req.state.watermark;
  // The device must have the draft: from an earlier Sync, or saved by an earlier command of this request.
  const known = uid !== undefined && (work.written.has(uid) || (wm.kind === 'imap' && UidSet.parse(wm.uids).has(uid)));
  if (!id || id.collectionId !== req.collectionId || uid === undefined || !known)
    return fail(SyncStatus.ObjectNotFound);
  const [current] = await req.mail.fetchMessages(req.folderRef, [uid]);
  if (!current) return fail(SyncStatus.ObjectNotFound);

  const data = child(command, 'ApplicationData');
  let source = current.source;
  let currentUid = uid;
  let response: WbxmlElement | undefined;
  if (isDraftEdit(data)) {
    const count = await draftAttachmentCount(current.source).catch(() => 0);
    const record: DraftRecord =
      stored && stored.parts.length === count
        ? stored
        : { uid, parts: [...Array(count).keys()], nextPart: Math.max(count, stored?.nextPart ?? 0) };
    const edit = readDraftEdit(data);
    const removeParts = partsToRemove(edit, record, serverId, uid);
    // A draft that cannot be built (or read) is the item's failure, not the Sync's.
    const built = await buildDraft(current.source, edit, { from: context.user.login, removeParts }).catch(
      () => undefined,
    );
    if (!built || built.length > context.config.maxMessageBytes) return fail(SyncStatus.ConversionError);
    source = built;
    const flags = withUpdate(
      new Set([...current.flags].filter((f) => f !== '\\Recent' && f !== '\\Deleted')).add('\\Draft'),
      data,
    );
    const newUid = await req.mail.appendMessage(req.folderRef, source, [...flags]);
    if (newUid === undefined) return fail(SyncStatus.ServerError);
    await req.mail.expungeMessages(req.folderRef, [uid]);
    const firstNew = record.nextPart;
    const next: DraftRecord = {
      uid: newUid,
      parts: [...record.parts.filter((_, i) => !removeParts.has(i)), ...edit.added.map((_, i) => firstNew + i)],
      nextPart: firstNew + edit.added.length,
    };
    work.drafts[serverId] = next;
    // A draft written twice in one request replaced a version the device never had.
    const replaced = work.written.has(uid) ? work.written.get(uid) : uid;
    work.written.delete(uid);
    work.written.set(newUid, replaced);
    work.writtenFlags.set(newUid, flags);
    currentUid = newUid;
    const attachments = attachmentAnswers(serverId, edit, firstNew);
    if (attachments)
      response = el('AirSync', 'Change', [
        el('AirSync', 'ServerId', serverId),
        el('AirSync', 'Status', String(SyncStatus.Success)),
        attachments,
      ]);
  }
  if (send) {
    const outcome = await sendDraft(context, req, serverId, currentUid, source);
    if (outcome.status !== SyncStatus.Success) return fail(outcome.status);
    if (outcome.removed) work.sent.set(currentUid, true);
  }
  if (response) work.responses.push(response);
}

/**
 * The current MIME's attachment indexes named by the edit's Delete FileReferences: `<ServerId>:<n>` (n a number of
 * `parts`, as this module hands them out), or `<collectionId>:<current UID>:<index>` (as Sync and ItemOperations
 * describe the version there is now).
 */
function partsToRemove(edit: DraftEdit, record: DraftRecord, serverId: string, uid: number): Set<number> {
  const id = parseItemId(serverId);
  const remove = new Set<number>();
  for (const reference of edit.deleted) {
    const ref = parseFileReference(reference);
    if (!ref || !id || ref.collectionId !== id.collectionId) continue;
    const index =
      ref.uid === id.uid ? record.parts.indexOf(Number(ref.partId)) : ref.uid === uid ? Number(ref.partId) : -1;
    if (index >= 0 && index < record.parts.length) remove.add(index);
  }
  return remove;
}

/**
 * A ServerId or FileReference of a draft as this device holds it (ItemOperations), pointed at the draft's current
 * UID and attachment index; as it is for anything else; undefined for an attachment the draft no longer has.
 */
export async function currentDraftId<T extends { collectionId: string; uid: number; partId?: string }>(
  context: CommandContext,
  id: T,
): Promise<T | undefined> {
  const record = (await context.state.getCollection(context.device, id.collectionId))?.state.drafts?.[
    `${id.collectionId}:${id.uid}`
  ];
  if (!record) return id;
  if (id.partId === undefined) return { ...id, uid: record.uid };
  const index = record.parts.indexOf(Number(id.partId));
  return index < 0 ? undefined : { ...id, uid: record.uid, partId: String(index) };
}

/** `ApplicationData/Attachments/Attachment (ClientId, FileReference)` for the attachments the device added. */
function attachmentAnswers(serverId: string, edit: DraftEdit, firstNew: number): WbxmlElement | undefined {
  if (edit.added.length === 0) return undefined;
  return el('AirSync', 'ApplicationData', [
    el(
      'AirSyncBase',
      'Attachments',
      edit.added.map((a, i) =>
        el('AirSyncBase', 'Attachment', [
          el('AirSyncBase', 'ClientId', a.clientId),
          el('AirSyncBase', 'FileReference', `${serverId}:${firstNew + i}`),
        ]),
      ),
    ),
  ]);
}

function withUpdate(flags: Set<string>, data: WbxmlElement | undefined): Set<string> {
  if (!data) return flags;
  const update = imapFlagUpdate(data, flags);
  for (const f of update.remove) flags.delete(f);
  for (const f of update.add) flags.add(f);
  return flags;
}

/** A command naming a draft by the device's ServerId, pointed at the draft's current UID. */
function toCurrentUid(command: WbxmlElement, collectionId: string, drafts: Record<string, DraftRecord>): WbxmlElement {
  const serverId = childText(command, 'ServerId');
  const record = serverId === undefined ? undefined : drafts[serverId];
  if (!record) return command;
  const current = `${collectionId}:${record.uid}`;
  return {
    ...command,
    children: command.children.map((c) =>
      c.tag === 'ServerId' && c.ns === 'AirSync' ? el('AirSync', 'ServerId', current) : c,
    ),
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Sending

/**
 * Sends one version of a draft, then files it: Sent Items (\Seen), out of Drafts. The item status, and whether the
 * draft left Drafts: when that failed it stays where every device sees it, and a Send of it again only files it (the
 * marker says it went out).
 */
async function sendDraft(
  context: CommandContext,
  req: EmailSyncRequest,
  serverId: string,
  uid: number,
  source: Uint8Array,
  markerName?: string,
): Promise<{ status: number; removed: boolean }> {
  const wm = req.state.watermark;
  // One version of one draft is sent once, whatever retries follow (UIDs are not reused under one UIDVALIDITY).
  const marker = markerName ?? `draft-send:${req.folderRef}:${wm.kind === 'imap' ? wm.uidValidity : 0}:${uid}`;
  let sentBefore = false;
  let message: OutgoingMessage | undefined;
  try {
    message = await prepareOutgoing(source, { user: context.user.login });
    if (message.envelope.to.length === 0)
      throw new ComposeFailure(CommonStatus.MessageHasNoRecipient, 'the draft has no recipient');
    if (message.full.length > context.config.maxMessageBytes)
      throw new ComposeFailure(CommonStatus.AttachmentIsTooLarge, 'the draft is too large');
    await submitOnce(context, marker, message);
  } catch (err) {
    if (err instanceof ComposeFailure && err.status === CommonStatus.MessagePreviouslySent) sentBefore = true;
    else if (err instanceof ComposeFailure || err instanceof InvalidMimeError) {
      context.note?.({ 'draft-send-failed': `${serverId}: ${err.message}`.slice(0, 300) });
      const retry =
        err instanceof ComposeFailure &&
        (err.status === CommonStatus.ServerErrorRetryLater || err.status === CommonStatus.ServerError);
      return { status: retry ? SyncStatus.ServerError : SyncStatus.ConversionError, removed: false };
    } else throw err;
  }
  if (!sentBefore && message)
    await saveInSent(req.mail, message.full).catch((err: unknown) => warnAfterSend(context, 'sent-copy-failed', err));
  const removed = await req.mail.expungeMessages(req.folderRef, [uid]).then(
    () => true,
    (err: unknown) => {
      warnAfterSend(context, 'draft-remove-failed', err);
      return false;
    },
  );
  return { status: SyncStatus.Success, removed };
}

async function saveInSent(mail: MailBackend, message: Uint8Array): Promise<void> {
  const sent = (await mail.listFolders()).find((f) => f.backend === 'imap' && f.type === FolderType.SentItems);
  if (sent) await mail.appendMessage(sent.ref, message, ['\\Seen']);
}

// ---------------------------------------------------------------------------------------------------------------------
// The answer

/**
 * The email sync's answer with this request's draft work folded in: the device's own writes are not echoed, the
 * device's ServerIds stand for the drafts' current UIDs, sent drafts are deleted on the device.
 */
function settle(result: EmailSyncResult, collectionId: string, work: DraftWork, handled: boolean): EmailSyncResult {
  const wm = result.state.watermark;
  if (result.status !== SyncStatus.Success || wm.kind !== 'imap')
    return { ...result, responses: [...work.responses, ...result.responses] };
  const uidOf = (e: WbxmlElement): number | undefined => {
    const id = parseItemId(childText(e, 'ServerId'));
    return id?.collectionId === collectionId ? id.uid : undefined;
  };
  const written = new Set(work.written.keys());
  const replaced = new Set([...work.written.values()].filter((u): u is number => u !== undefined));
  const digitsBefore = wm.flagDigits !== undefined ? flagDigitsMap(wm.uids, wm.flagDigits) : undefined;
  const uids = UidSet.parse(wm.uids);
  const pendingAdds = UidSet.parse(wm.pendingAdds ?? '');

  // 1. Not echoed: the new versions (Add, or Change of flags) and the old versions' removal.
  let commands = result.commands.filter((c) => {
    const uid = uidOf(c);
    if (uid === undefined) return true;
    if (written.has(uid)) return c.tag !== 'Add' && c.tag !== 'Change';
    return !(replaced.has(uid) && (c.tag === 'Delete' || c.tag === 'SoftDelete'));
  });
  for (const uid of replaced) uids.delete(uid);
  for (const uid of written) {
    uids.add(uid);
    pendingAdds.delete(uid);
  }
  const pending: PendingChange[] = result.state.pending.filter((p) => {
    const id = parseItemId(p.serverId);
    return !id || !(written.has(id.uid) || replaced.has(id.uid));
  });
  // 2. A sent draft leaves the device's Drafts: a Delete, now when the device knew the draft before this request,
  //    else in the next Sync (Commands come before Responses: the device learns a new draft's ServerId after them).
  for (const [uid, known] of work.sent) {
    if (!uids.has(uid) || commands.some((c) => c.tag === 'Delete' && uidOf(c) === uid)) continue;
    const serverId = `${collectionId}:${uid}`;
    if (known) {
      commands.push(el('AirSync', 'Delete', [el('AirSync', 'ServerId', serverId)]));
      uids.delete(uid);
      const at = pending.findIndex((p) => p.serverId === serverId);
      if (at >= 0) pending.splice(at, 1);
    } else if (!pending.some((p) => p.serverId === serverId)) pending.push({ kind: 'delete', serverId });
  }

  // 3. The device's ServerIds for drafts that moved to another UID; records of drafts gone from the device dropped.
  const drafts: Record<string, DraftRecord> = {};
  const deviceIds = new Map<number, string>();
  for (const [serverId, record] of Object.entries(work.drafts)) {
    if (serverId !== `${collectionId}:${record.uid}`) deviceIds.set(record.uid, serverId);
    if (uids.has(record.uid)) drafts[serverId] = record;
  }
  const toDevice = (e: WbxmlElement): WbxmlElement => {
    const uid = uidOf(e);
    const serverId = uid === undefined ? undefined : deviceIds.get(uid);
    return serverId === undefined
      ? e
      : {
          ...e,
          children: e.children.map((c) =>
            c.tag === 'ServerId' && c.ns === 'AirSync' ? el('AirSync', 'ServerId', serverId) : c,
          ),
        };
  };
  commands = commands.map(toDevice);
  // Deleted on the device (sent, or removed on the server): the record has done its work.
  for (const c of commands) {
    if (c.tag !== 'Delete' && c.tag !== 'SoftDelete') continue;
    const serverId = childText(c, 'ServerId');
    if (serverId !== undefined) delete drafts[serverId];
  }

  // Without CONDSTORE the watermark keeps each UID's flags: the new versions' stand in for the old ones'.
  let flagDigits = wm.flagDigits;
  if (digitsBefore) {
    for (const uid of replaced) digitsBefore.delete(uid);
    for (const [uid, flags] of work.writtenFlags) if (written.has(uid)) digitsBefore.set(uid, flagDigit(flags));
    flagDigits = [...uids].map((uid) => digitsBefore.get(uid) ?? '0').join('');
  }
  const clientIds = Object.fromEntries(Object.entries(work.clientIds).slice(-REMEMBERED_ADDS));
  const state: CollectionState = {
    ...result.state,
    watermark: {
      ...wm,
      uids: uids.toString(),
      pendingAdds: pendingAdds.toString(),
      ...(flagDigits !== undefined ? { flagDigits } : {}),
    },
    pending,
    clientIds,
  };
  if (Object.keys(drafts).length > 0) state.drafts = drafts;
  else delete state.drafts;
  return {
    ...result,
    state,
    commands,
    responses: [...work.responses, ...result.responses.map(toDevice)],
    moreAvailable: pendingAdds.size + pending.length > 0,
    progressed: result.progressed || handled,
  };
}
