/**
 * Finding mail by the ids the device holds, for the commands that address single items or search the mailbox
 * (ItemOperations, Search, Find).
 *
 * The ids are the ones Sync hands out: a ServerId is `<collectionId>:<uid>`, an attachment's FileReference
 * `<collectionId>:<uid>:<partId>`. A Search LongId is the ServerId form too, so a search result can be fetched,
 * replied to or forwarded like any synced item. The collectionId is the device's folder ServerId, so every lookup
 * goes through the device's stored hierarchy: a folder the device does not know of cannot be addressed.
 */
import type { MailBackend, MessageParts, MessageSummary, MessageWithSource } from '../backends/types.ts';
import type { BodyPreference } from '../items/body.ts';
import { emailApplicationData, type EmailOutputOptions, type MailPolicy } from '../items/email.ts';
import { emailApplicationDataOfParts, planParts, type PartsOptions } from '../items/email-parts.ts';
import type { FolderRecord, HierarchyState } from '../state/types.ts';
import { child, childText, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import { bodyPreferencesOf, parseSyncOptions } from '../protocol/options.ts';
import { isNotesFolder } from './dav-items.ts';

export interface ItemId {
  collectionId: string;
  uid: number;
}

export interface AttachmentId extends ItemId {
  partId: string;
}

const ITEM_ID = /^([^:]+):([1-9]\d{0,9})$/;
const FILE_REFERENCE = /^([^:]+):([1-9]\d{0,9}):(\d{1,6})$/;

/** `5:123` → { collectionId '5', uid 123 }; undefined when the id is not of that form. */
export function parseItemId(id: string | undefined): ItemId | undefined {
  const match = ITEM_ID.exec(id ?? '');
  return match ? { collectionId: match[1]!, uid: Number(match[2]) } : undefined;
}

/** `5:123:0` → the attachment's item and part. Some clients send it URL-encoded (`5%3a123%3a0`), as Exchange's are. */
export function parseFileReference(reference: string | undefined): AttachmentId | undefined {
  let text = reference ?? '';
  try {
    if (text.includes('%')) text = decodeURIComponent(text);
  } catch {
    return undefined;
  }
  const match = FILE_REFERENCE.exec(text);
  return match ? { collectionId: match[1]!, uid: Number(match[2]), partId: match[3]! } : undefined;
}

/** The device's mail folder with this ServerId; undefined when it has none (unknown id, or not a mail folder). */
export function mailFolder(hierarchy: HierarchyState | undefined, collectionId: string): FolderRecord | undefined {
  const folder = hierarchy?.folders.find((f) => f.serverId === collectionId);
  return folder && folder.source.backend === 'imap' && !isNotesFolder(folder) ? folder : undefined;
}

/** The message behind an id, with its folder; undefined when the folder or the message is gone. */
export async function findMessage(
  mail: MailBackend,
  hierarchy: HierarchyState | undefined,
  id: ItemId,
): Promise<{ folder: FolderRecord; message: MessageWithSource } | undefined> {
  const folder = mailFolder(hierarchy, id.collectionId);
  if (!folder) return undefined;
  const [message] = await mail.fetchMessages(folder.source.ref, [id.uid]);
  return message ? { folder, message } : undefined;
}

/**
 * The message behind an id read in parts, as far as an answer under these options needs (MailBackend
 * fetchMessageParts); undefined when the folder or the message is gone, or `admit` refused it (given the octets its
 * read takes). Convert it with emailItemData.
 */
export async function findMessageParts(
  mail: MailBackend,
  hierarchy: HierarchyState | undefined,
  id: ItemId,
  options: PartsOptions,
  admit?: (summary: MessageSummary, plannedBytes: number) => boolean,
): Promise<{ folder: FolderRecord; message: MessageParts } | undefined> {
  const folder = mailFolder(hierarchy, id.collectionId);
  if (!folder) return undefined;
  const [message] = await mail.fetchMessageParts(folder.source.ref, [id.uid], (s) => planParts(s, options), admit);
  return message ? { folder, message } : undefined;
}

/**
 * A message read in parts as ApplicationData (Sync, ItemOperations, Search, Find); one whose body read in part falls
 * short of the answer is read again: its body parts whole (attachments still unread), then, if even that falls
 * short, the whole message.
 */
export async function emailItemData(
  mail: MailBackend,
  folderRef: string,
  message: MessageParts,
  options: EmailOutputOptions,
): Promise<WbxmlElement[]> {
  const data = await emailApplicationDataOfParts(message, options);
  if (data !== 'read whole') return data;
  const [bodies] = await mail.fetchMessageParts(folderRef, [message.uid], (s) => planParts(s, options, true));
  const again = bodies && (await emailApplicationDataOfParts(bodies, options));
  if (again && again !== 'read whole') return again;
  const [whole] = await mail.fetchMessages(folderRef, [message.uid]);
  if (!whole) throw new Error(`message ${message.uid} is gone`);
  return emailApplicationData(whole, options);
}

/** The body options of an Options element (Sync's shape: BodyPreference, BodyPartPreference, MIMESupport). */
export interface EmailFetchOptions {
  bodyPreferences: BodyPreference[];
  bodyPartPreferences: BodyPreference[];
  mimeSupport: 0 | 1 | 2;
}

export function emailFetchOptions(options: WbxmlElement | undefined): EmailFetchOptions {
  if (!options) return { bodyPreferences: [], bodyPartPreferences: [], mimeSupport: 0 };
  const parsed = parseSyncOptions(options);
  const mimeSupport = parsed.mimeSupport === 1 || parsed.mimeSupport === 2 ? parsed.mimeSupport : 0;
  return {
    bodyPreferences: parsed.bodyPreferences ?? [],
    bodyPartPreferences: bodyPreferencesOf(options, 'BodyPartPreference'),
    mimeSupport,
  };
}

/**
 * What emailApplicationData needs for one item of a collection, with Sync's FileReferences and the user's device
 * policy (protocol/policy.ts mailPolicy), which Search, Find and ItemOperations hold to as Sync does.
 */
export function emailOutput(
  version: string,
  collectionId: string,
  uid: number,
  options: EmailFetchOptions,
  policy: MailPolicy,
): EmailOutputOptions {
  return {
    version,
    policy,
    bodyPreferences: options.bodyPreferences,
    ...(options.bodyPartPreferences.length ? { bodyPartPreferences: options.bodyPartPreferences } : {}),
    mimeSupport: options.mimeSupport,
    fileReference: (partId) => `${collectionId}:${uid}:${partId}`,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Mailbox search (Search's Mailbox store, Find's MailBoxSearchCriterion)

/** The most results one Search or Find answer carries (MS-ASCMD: 100 for the mailbox). */
export const MAX_SEARCH_RESULTS = 100;

/** The Range of a search that names none (MS-ASCMD: 0-99 for the mailbox). */
export const DEFAULT_SEARCH_RANGE = { first: 0, last: MAX_SEARCH_RESULTS - 1 } as const;

/** What a message must match; the folders are searchScope's business. */
export interface MailboxCriteria {
  freeText?: string;
  /** DateReceived strictly after / before (GreaterThan / LessThan). */
  after?: Date;
  before?: Date;
}

export interface MailboxQuery extends MailboxCriteria {
  /** Collections to search; empty = every mail folder of the device. */
  collectionIds: string[];
  /** airsync:Class when given; only Email is in the mailbox. */
  class?: string;
}

export interface MailboxHit {
  folder: FolderRecord;
  uid: number;
  internalDate: Date;
}

/**
 * The conditions of a mailbox query, Search's (`Query/And/…`, namespace Search) or Find's (`Query/…`, namespace
 * Find): airsync:Class, airsync:CollectionId (repeatable), FreeText, and for Search GreaterThan / LessThan of
 * email:DateReceived with a Value. 'too-complex' for Or, EqualTo, ConversationId and nested And, which are not
 * offered; 'invalid' for an empty query (a GAL-style text query sent to the mailbox), anything else unknown, or a
 * date that is not one.
 */
export function parseMailboxQuery(
  query: WbxmlElement,
  ns: 'Search' | 'Find',
): MailboxQuery | 'invalid' | 'too-complex' {
  const and = child(query, 'And', ns);
  const conditions = and ? [...query.children.filter((c) => c !== and), ...and.children] : query.children;
  if (conditions.length === 0) return 'invalid';
  const parsed: MailboxQuery = { collectionIds: [] };
  for (const c of conditions) {
    const key = c.ns === 'AirSync' ? c.tag : c.ns === ns ? `${ns}:${c.tag}` : undefined;
    if (key === 'Class') parsed.class = textOf(c).trim();
    else if (key === 'CollectionId') parsed.collectionIds.push(textOf(c).trim());
    else if (key === `${ns}:FreeText`) parsed.freeText = textOf(c).trim();
    else if (key === 'Search:GreaterThan' || key === 'Search:LessThan') {
      const value = new Date(childText(c, 'Value', 'Search') ?? '');
      if (!child(c, 'DateReceived', 'Email') || Number.isNaN(value.getTime())) return 'invalid';
      if (c.tag === 'GreaterThan') parsed.after = value;
      else parsed.before = value;
    } else if (key !== undefined && ['Or', 'EqualTo', 'ConversationId', 'And'].includes(c.tag)) return 'too-complex';
    else return 'invalid';
  }
  return parsed;
}

/** A zero-based inclusive `m-n` range; undefined when malformed. */
export function parseRange(text: string): { first: number; last: number } | undefined {
  const match = /^\s*(\d{1,9})\s*-\s*(\d{1,9})\s*$/.exec(text);
  if (!match) return undefined;
  const first = Number(match[1]);
  const last = Number(match[2]);
  return first <= last ? { first, last } : undefined;
}

/**
 * The folders a search covers (with DeepTraversal, the folders under the collections too), or undefined when one of
 * the requested collections is not a mail folder the device knows (its hierarchy is out of date: FolderSync required).
 */
export function searchScope(
  hierarchy: HierarchyState | undefined,
  collectionIds: string[],
  deep: boolean,
): FolderRecord[] | undefined {
  const mailFolders = (hierarchy?.folders ?? []).filter((f) => f.source.backend === 'imap' && !isNotesFolder(f));
  if (collectionIds.length === 0) return mailFolders;
  const roots = collectionIds.map((id) => mailFolder(hierarchy, id));
  if (roots.some((f) => f === undefined)) return undefined;
  const scope = new Set(roots as FolderRecord[]);
  const ids = new Set(collectionIds);
  // Subfolders through the device's ParentIds: add folders whose parent is in, until none is added.
  for (let grew = deep; grew; ) {
    grew = false;
    for (const f of mailFolders) {
      if (!ids.has(f.serverId) && ids.has(f.parentId)) {
        scope.add(f);
        ids.add(f.serverId);
        grew = true;
      }
    }
  }
  return [...scope];
}

/**
 * One page of a mailbox search: the messages of the results `range` asks for (at most MAX_SEARCH_RESULTS), newest
 * first, read in parts as far as answers under `options` need (convert them with emailItemData), the Range to report
 * for them (undefined when there are none) and how many matched in all.
 */
export async function searchPage(
  mail: MailBackend,
  folders: FolderRecord[],
  criteria: MailboxCriteria,
  range: { first: number; last: number },
  options: PartsOptions,
): Promise<{ found: { hit: MailboxHit; message: MessageParts }[]; range: string | undefined; total: number }> {
  const hits = await searchMailbox(mail, folders, criteria);
  const last = Math.min(range.last, range.first + MAX_SEARCH_RESULTS - 1);
  const found = await fetchHits(mail, hits.slice(range.first, last + 1), options);
  return {
    found,
    range: found.length ? `${range.first}-${range.first + found.length - 1}` : undefined,
    total: hits.length,
  };
}

/** Every message of the folders that matches, newest first. */
async function searchMailbox(
  mail: MailBackend,
  folders: FolderRecord[],
  criteria: MailboxCriteria,
): Promise<MailboxHit[]> {
  if (folders.length === 0) return [];
  const byRef = new Map(folders.map((f) => [f.source.ref, f]));
  const found = await mail.search({
    folders: [...byRef.keys()],
    ...(criteria.freeText ? { freeText: criteria.freeText } : {}),
    ...(criteria.after ? { since: criteria.after } : {}),
    ...(criteria.before ? { before: criteria.before } : {}),
  });
  // IMAP SINCE/BEFORE compare dates, not times: the exact comparison is made here.
  return found
    .filter(
      (m) =>
        (!criteria.after || m.internalDate > criteria.after) && (!criteria.before || m.internalDate < criteria.before),
    )
    .map((m) => ({ folder: byRef.get(m.folder)!, uid: m.uid, internalDate: m.internalDate }))
    .sort((a, b) => b.internalDate.getTime() - a.internalDate.getTime());
}

/** The messages of some hits read in parts, in the hits' order; hits whose message vanished meanwhile are left out. */
async function fetchHits(
  mail: MailBackend,
  hits: MailboxHit[],
  options: PartsOptions,
): Promise<{ hit: MailboxHit; message: MessageParts }[]> {
  const byFolder = new Map<FolderRecord, number[]>();
  for (const hit of hits) byFolder.set(hit.folder, [...(byFolder.get(hit.folder) ?? []), hit.uid]);
  const messages = new Map<string, MessageParts>();
  for (const [folder, uids] of byFolder) {
    const read = await mail.fetchMessageParts(folder.source.ref, uids, (s) => planParts(s, options));
    for (const m of read) messages.set(`${folder.serverId}:${m.uid}`, m);
  }
  return hits.flatMap((hit) => {
    const message = messages.get(`${hit.folder.serverId}:${hit.uid}`);
    return message ? [{ hit, message }] : [];
  });
}
