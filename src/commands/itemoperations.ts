/**
 * ItemOperations (MS-ASCMD §2.2.1.10): Fetch of a whole item, an attachment (FileReference) or a Search
 * result (LongId); EmptyFolderContents. Each operation gets its own Status in the Response, in request order.
 * A whole item is a message, or a calendar, contact or task item (its ApplicationData as Sync sends it).
 *
 * Delivery: inline, binary content travels as base64 text in `<Data>` (MS-ASCMD §2.2.3.39.2, as Exchange and Z-Push
 * send it). With `MS-ASAcceptMultiPart: T` (or the base64 query's option bit) the answer is
 * `application/vnd.ms-sync.multipart`: part 0 is the WBXML, and every attachment or body it carries is a binary
 * part referenced by `<Part>N</Part>` in place of `<Data>` (for a body, inside `airsyncbase:Body`).
 *
 * Budget: at most MAX_OPERATIONS operations (more: Status 2, nothing done), and MAX_RESPONSE_BYTES of message source
 * loaded per answer (a Fetch past it: Status 11; the first Fetch is always served).
 *
 * Move of a conversation: itemoperations-move.ts. Not offered: the document library (Store Status 9).
 */
import { Buffer } from 'node:buffer';
import { openBackends } from '../backends/open.ts';
import type { UserBackends } from '../backends/types.ts';
import { FolderType, type MailBackend } from '../backends/types.ts';
import { attachmentContent } from '../items/email.ts';
import type { FolderRecord, HierarchyState } from '../state/types.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { bytesOf, child, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import {
  emailFetchOptions,
  emailItemData,
  emailOutput,
  findMessage,
  findMessageParts,
  mailFolder,
  parseFileReference,
  parseItemId,
  parseRange,
} from '../folders/mail-lookup.ts';
import { registerCommand } from './registry.ts';
import type { DeviceReadsAhead } from '../state/read-ahead.ts';
import { moveConversationOperation } from './itemoperations-move.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';
import { currentDraftId } from '../sync/drafts.ts';
import { converterFor } from '../sync/dav-converters.ts';
import { findDavItem, isItemFolder, itemStoreOf } from '../folders/dav-items.ts';
import { findFolder, itemClassOf } from '../folders/hierarchy.ts';
import { bodyPreferencesOf } from '../protocol/options.ts';
import { userAddresses } from '../sending/meeting-mail.ts';
import { flagToDevice, isFlagged } from '../items/email-flag.ts';
import { attachmentAllowed } from '../tenants/policy.ts';
import { mailPolicy } from '../protocol/policy.ts';
import { flagDetailsOf } from '../folders/mail-flags.ts';

export const ItemOperationsStatus = {
  Success: 1,
  ProtocolError: 2,
  ServerError: 3,
  ObjectNotFound: 6,
  InvalidRange: 8,
  DataTooLarge: 11,
  UnknownStore: 9,
  InvalidAttachment: 15,
  AccessDenied: 16,
  PartialSuccess: 17,
  ActionNotSupported: 156,
} as const;

export const MULTIPART_CONTENT_TYPE = 'application/vnd.ms-sync.multipart';

/** Operations one request may hold; a request with more is a protocol error (Status 2), none of it done. */
export const MAX_OPERATIONS = 100;

/** What every operation of one request shares. */
interface Run {
  context: CommandContext;
  hierarchy: HierarchyState | undefined;
  /** The backends, opened on first use: a request of only unsupported operations needs no IMAP login. */
  backends(): Promise<UserBackends>;
  mail(): Promise<MailBackend>;
  /** Binary parts 1…n of a multipart answer; undefined when the answer is inline. */
  parts: Uint8Array[] | undefined;
  /** Bytes of message source the answer has loaded so far, against MAX_RESPONSE_BYTES. */
  spent: number;
}

export async function itemOperations(context: CommandContext): Promise<CommandResult> {
  const multipart = context.request.params.acceptMultiPart === true;
  const body = context.body;
  const operations = body?.tag === 'ItemOperations' ? body.children : [];
  if (operations.length === 0 || operations.some((op) => !['Fetch', 'EmptyFolderContents', 'Move'].includes(op.tag))) {
    return respond([el('ItemOperations', 'Status', ItemOperationsStatus.ProtocolError)], multipart ? [] : undefined);
  }

  if (operations.length > MAX_OPERATIONS) {
    return respond([el('ItemOperations', 'Status', ItemOperationsStatus.ProtocolError)], multipart ? [] : undefined);
  }

  let backends: UserBackends | undefined;
  const run: Run = {
    context,
    hierarchy: (await context.state.getHierarchy(context.device))?.state,
    backends: async () => {
      backends ??= await openBackends(context);
      return backends;
    },
    mail: async () => (await run.backends()).mail,
    parts: multipart ? [] : undefined,
    spent: 0,
  };
  const responses: WbxmlElement[] = [];
  try {
    for (const op of operations) {
      if (op.tag === 'Fetch') responses.push(await fetch(op, run));
      else if (op.tag === 'EmptyFolderContents') responses.push(await emptyFolderContents(op, run));
      else responses.push(await moveConversationOperation(op, context, run.hierarchy, run.mail));
    }
  } finally {
    await (backends as UserBackends | undefined)?.close();
  }
  return respond(
    [el('ItemOperations', 'Status', ItemOperationsStatus.Success), el('ItemOperations', 'Response', responses)],
    run.parts,
  );
}

function respond(content: WbxmlElement[], parts: Uint8Array[] | undefined): CommandResult {
  const tree = el('ItemOperations', 'ItemOperations', content);
  if (!parts) return { kind: 'wbxml', body: tree };
  return { kind: 'raw', contentType: MULTIPART_CONTENT_TYPE, bytes: multipartBody([encodeWbxml(tree), ...parts]) };
}

/**
 * MultiPartResponse (MS-ASCMD §2.2.1.10.1.1): PartsCount, then (offset, length) of each part from the start of the
 * body, then the parts; all integers 32-bit little-endian.
 */
export function multipartBody(parts: Uint8Array[]): Uint8Array {
  const headerSize = 4 + 8 * parts.length;
  const out = new Uint8Array(headerSize + parts.reduce((n, p) => n + p.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, parts.length, true);
  let offset = headerSize;
  parts.forEach((part, i) => {
    view.setInt32(4 + 8 * i, offset, true);
    view.setInt32(8 + 8 * i, part.length, true);
    out.set(part, offset);
    offset += part.length;
  });
  return out;
}

/** The request's element again, for the answer (undefined when the request had none). */
function echo(op: WbxmlElement, tag: string, ns: WbxmlElement['ns']): WbxmlElement | undefined {
  return child(op, tag, ns);
}

// ---------------------------------------------------------------------------------------------------------------------
// Fetch

async function fetch(op: WbxmlElement, run: Run): Promise<WbxmlElement> {
  const serverId = childText(op, 'ServerId', 'AirSync');
  const fileReference = childText(op, 'FileReference', 'AirSyncBase');
  const longId = childText(op, 'LongId', 'Search');
  const collectionId = childText(op, 'CollectionId', 'AirSync');
  const ids = [
    echo(op, 'CollectionId', 'AirSync'),
    echo(op, 'ServerId', 'AirSync'),
    echo(op, 'FileReference', 'AirSyncBase'),
    echo(op, 'LongId', 'Search'),
  ];
  const answer = (status: number, content: WbxmlElement[] = []): WbxmlElement =>
    el('ItemOperations', 'Fetch', [el('ItemOperations', 'Status', status), ...ids, ...content]);

  const store = childText(op, 'Store');
  if (store === undefined) return answer(ItemOperationsStatus.ProtocolError);
  if (store.trim().toLowerCase() !== 'mailbox') return answer(ItemOperationsStatus.UnknownStore);
  // Exactly one way of naming what to fetch.
  if ([serverId, fileReference, longId].filter((id) => id !== undefined).length !== 1)
    return answer(ItemOperationsStatus.ProtocolError);
  const options = child(op, 'Options');

  if (fileReference !== undefined) {
    const parsed = parseFileReference(fileReference);
    if (!parsed) return answer(ItemOperationsStatus.InvalidAttachment);
    // A draft the device saved through Sync (16.0) is at another UID than its ids say: sync-drafts.ts keeps where.
    const reference = await currentDraftId(run.context, parsed);
    if (!reference) return answer(ItemOperationsStatus.ObjectNotFound);
    if (await overBudget(run, reference)) return answer(ItemOperationsStatus.DataTooLarge);
    const found = await loadMessage(run, reference);
    const attachment = found && (await attachmentContent(found.message.source, reference.partId));
    if (!attachment) return answer(ItemOperationsStatus.ObjectNotFound);
    // The user's policy, held to by the server as well (tenants/policy.ts attachmentAllowed).
    const allowed = attachmentAllowed(run.context.config.policy, run.context.user.login, attachment.content.length);
    if (allowed === 'disabled') return answer(ItemOperationsStatus.AccessDenied);
    if (allowed === 'too-large') return answer(ItemOperationsStatus.DataTooLarge);
    const content = rangeOf(attachment.content, childText(options, 'Range'));
    if (!content) return answer(ItemOperationsStatus.InvalidRange);
    return answer(ItemOperationsStatus.Success, [
      el('ItemOperations', 'Properties', [
        el('AirSyncBase', 'ContentType', attachment.contentType),
        ...content.elements,
        binaryContent(content.bytes, run),
      ]),
    ]);
  }

  // A calendar, contact, task or note: its ApplicationData as Sync sends it (sync/dav-converters.ts). A note found by
  // Search is fetched by its LongId, which is its ServerId (commands/search.ts).
  const itemId = serverId ?? longId;
  const davFolder = itemId === undefined ? undefined : findFolder(run.hierarchy, collectionId ?? itemId.split(':')[0]!);
  if (itemId !== undefined && davFolder && isItemFolder(davFolder)) {
    if (collectionId !== undefined && !itemId.startsWith(`${collectionId}:`))
      return answer(ItemOperationsStatus.ObjectNotFound);
    const found = await fetchDavItem(run, davFolder, itemId, options);
    if (!found) return answer(ItemOperationsStatus.ObjectNotFound);
    return answer(ItemOperationsStatus.Success, [
      el('AirSync', 'Class', itemClassOf(davFolder.type)),
      el(
        'ItemOperations',
        'Properties',
        withSchema(found, child(options, 'Schema')).map((p) => withPart(p, run)),
      ),
    ]);
  }

  // A ServerId comes with its CollectionId, which must be the one the id was handed out in.
  const named = parseItemId(serverId ?? longId);
  if (!named || (serverId !== undefined && collectionId !== undefined && collectionId !== named.collectionId))
    return answer(ItemOperationsStatus.ObjectNotFound);
  const id = (await currentDraftId(run.context, named)) ?? named;
  const output = emailOutput(
    run.context.request.version,
    id.collectionId,
    id.uid,
    emailFetchOptions(options),
    mailPolicy(run.context.config.policy, run.context.user.login),
  );
  // Read as far as the answer needs (the whole message only for MIME, Type 4).
  const mail = await run.mail();
  // The budget is judged by what the message's read takes, from its structure FETCH (not its whole size, nor a FETCH
  // of its own); the first message of an answer is always read.
  let tooLarge = false;
  const found = await findMessageParts(mail, run.hierarchy, id, output, (_, planned) => {
    tooLarge = run.spent > 0 && run.spent + planned > run.context.config.maxResponseBytes;
    return !tooLarge;
  });
  if (tooLarge) return answer(ItemOperationsStatus.DataTooLarge);
  if (!found) return answer(ItemOperationsStatus.ObjectNotFound);
  run.spent += found.message.bytesRead;
  // The flag as the user's devices set it, when the details are kept (items/email-flag.ts, folders/mail-flags.ts).
  const kept = await flagDetailsOf(run.context, mail, found.folder.source.ref, id.uid);
  if (kept) output.flag = flagToDevice(isFlagged(found.message.flags), kept).element;
  const properties = withSchema(
    await emailItemData(mail, found.folder.source.ref, found.message, output),
    child(options, 'Schema'),
  );
  return answer(ItemOperationsStatus.Success, [
    el('AirSync', 'Class', 'Email'),
    el(
      'ItemOperations',
      'Properties',
      properties.map((p) => withPart(p, run)),
    ),
  ]);
}

/**
 * Whether loading this message (an attachment's: it is read whole) would take the answer past its byte budget
 * (MAX_RESPONSE_BYTES): then the Fetch gets
 * Status 11, the requested data is too large (MS-ASCMD §2.2.3.177.8), and the device fetches it on its own (or in
 * Ranges). The first message of an answer is always loaded, so every item can be fetched alone.
 */
async function overBudget(run: Run, id: { collectionId: string; uid: number }): Promise<boolean> {
  if (run.spent === 0) return false;
  const folder = mailFolder(run.hierarchy, id.collectionId);
  if (!folder) return false;
  const [summary] = await (await run.mail()).fetchSummaries(folder.source.ref, [id.uid]);
  return summary !== undefined && run.spent + summary.size > run.context.config.maxResponseBytes;
}

/** The message with its source, counted against the answer's budget. */
async function loadMessage(run: Run, id: { collectionId: string; uid: number }): ReturnType<typeof findMessage> {
  const found = await findMessage(await run.mail(), run.hierarchy, id);
  if (found) run.spent += found.message.source.length;
  return found;
}

/** In a multipart answer, a Body's Data moves into a binary part. */
function withPart(p: WbxmlElement, run: Run): WbxmlElement {
  return p.ns === 'AirSyncBase' && p.tag === 'Body' && run.parts ? bodyWithPart(p, run) : p;
}

/**
 * The ApplicationData children of a calendar, task or contact item, by the same converter Sync uses, with the Fetch's
 * BodyPreference; undefined when the folder has no such item (or it is not of the folder's class).
 */
async function fetchDavItem(
  run: Run,
  folder: FolderRecord,
  serverId: string,
  options: WbxmlElement | undefined,
): Promise<WbxmlElement[] | undefined> {
  const converter = converterFor(folder.type);
  const dav = itemStoreOf(await run.backends(), folder);
  if (!converter || !dav) return undefined;
  const state = (await run.context.state.getCollection(run.context.device, folder.serverId))?.state;
  const item = await findDavItem(dav, folder, state, serverId);
  if (!item) return undefined;
  return converter.toDevice(item.data, {
    version: run.context.request.version,
    bodyPreferences: options ? bodyPreferencesOf(options) : [],
    userEmails: userAddresses(run.context),
  });
}

/**
 * The bytes an Options/Range (`first-last`, inclusive, zero-based) selects, with the Range and Total to report; the
 * whole content without one. A range ending past the end is cut at the end; one starting past it is invalid.
 */
function rangeOf(
  content: Uint8Array,
  range: string | undefined,
): { bytes: Uint8Array; elements: WbxmlElement[] } | undefined {
  if (range === undefined) return { bytes: content, elements: [] };
  const parsed = parseRange(range);
  if (!parsed || parsed.first >= content.length) return undefined;
  const last = Math.min(parsed.last, content.length - 1);
  return {
    bytes: content.subarray(parsed.first, last + 1),
    elements: [el('ItemOperations', 'Range', `${parsed.first}-${last}`), el('ItemOperations', 'Total', content.length)],
  };
}

/** `<Data>` (base64) inline, `<Part>` in a multipart answer. */
function binaryContent(bytes: Uint8Array, run: Run): WbxmlElement {
  if (!run.parts) return el('ItemOperations', 'Data', Buffer.from(bytes).toString('base64'));
  run.parts.push(bytes);
  return el('ItemOperations', 'Part', run.parts.length);
}

/** A Body whose Data moves into a binary part (MS-ASAIRS §2.2.2.33): `<itemoperations:Part>` where Data was. */
function bodyWithPart(body: WbxmlElement, run: Run): WbxmlElement {
  return {
    ...body,
    children: body.children.map((c) =>
      c.ns === 'AirSyncBase' && c.tag === 'Data' ? binaryContent(bytesOf(c), run) : c,
    ),
  };
}

/** Options/Schema: only the properties it lists (MS-ASCMD §2.2.3.158); all of them without one. */
function withSchema(properties: WbxmlElement[], schema: WbxmlElement | undefined): WbxmlElement[] {
  if (!schema?.children.length) return properties;
  return properties.filter((p) => schema.children.some((s) => s.ns === p.ns && s.tag === p.tag));
}

// ---------------------------------------------------------------------------------------------------------------------
// EmptyFolderContents

/**
 * Deletes every message of the folder for good (the device's next Sync of it reports them deleted). With
 * DeleteSubFolders, its user subfolders go too; the stored hierarchy is left as it is, so that the device's next
 * FolderSync reports them deleted, as it does for folders another client removed. A subfolder that cannot go (a
 * special folder, or a backend failure) makes it a partial success (17).
 */
async function emptyFolderContents(op: WbxmlElement, run: Run): Promise<WbxmlElement> {
  const collectionId = childText(op, 'CollectionId', 'AirSync');
  const answer = (status: number): WbxmlElement =>
    el('ItemOperations', 'EmptyFolderContents', [
      el('ItemOperations', 'Status', status),
      echo(op, 'CollectionId', 'AirSync'),
    ]);
  if (collectionId === undefined) return answer(ItemOperationsStatus.ProtocolError);
  const folder = mailFolder(run.hierarchy, collectionId);
  if (!folder) return answer(ItemOperationsStatus.ObjectNotFound);

  const mail = await run.mail();
  await mail.expungeMessages(folder.source.ref, await mail.listUids(folder.source.ref));
  if (!child(child(op, 'Options'), 'DeleteSubFolders')) return answer(ItemOperationsStatus.Success);

  let complete = true;
  for (const sub of (await mail.listFolders()).filter((f) => f.parentRef === folder.source.ref)) {
    if (sub.type !== FolderType.UserMail) {
      complete = false;
      continue;
    }
    await mail.deleteFolder(sub.ref).catch(() => {
      complete = false;
    });
  }
  return answer(complete ? ItemOperationsStatus.Success : ItemOperationsStatus.PartialSuccess);
}

/**
 * What a Fetch reads, with the device's record: the hierarchy, and the state of the first Fetch's collection (where
 * a draft's current UID is: sync/drafts.ts currentDraftId).
 */
function readAhead(body: WbxmlElement | undefined, reads: DeviceReadsAhead): void {
  reads.hierarchy();
  const fetch = body?.tag === 'ItemOperations' ? child(body, 'Fetch', 'ItemOperations') : undefined;
  if (!fetch) return;
  const collectionId =
    childText(fetch, 'CollectionId', 'AirSync') ?? parseItemId(childText(fetch, 'ServerId', 'AirSync'))?.collectionId;
  if (collectionId) reads.collection(collectionId);
}

registerCommand({
  name: 'ItemOperations',
  responseRoot: { ns: 'ItemOperations', tag: 'ItemOperations' },
  serverErrorStatus: ItemOperationsStatus.ServerError,
  readAhead,
  handle: itemOperations,
});
