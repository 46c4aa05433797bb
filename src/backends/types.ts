/**
 * The backends behind the ActiveSync commands: what a command may ask of mail (IMAP), calendar and tasks (CalDAV),
 * and contacts (CardDAV). Commands see only these interfaces; combined.ts hands each folder to its backend.
 */

/** ActiveSync folder types (MS-ASCMD §2.2.3.186.3). */
export const FolderType = {
  UserGeneric: 1,
  Inbox: 2,
  Drafts: 3,
  DeletedItems: 4,
  SentItems: 5,
  Outbox: 6,
  Tasks: 7,
  Calendar: 8,
  Contacts: 9,
  Notes: 10,
  Journal: 11,
  UserMail: 12,
  UserCalendar: 13,
  UserContacts: 14,
  UserTasks: 15,
  UserJournal: 16,
  UserNotes: 17,
  Unknown: 18,
  RecipientInfoCache: 19,
} as const;

/** The folder is not (or no longer) on the server: another client deleted or renamed it. */
export class FolderNotFoundError extends Error {
  override readonly name = 'FolderNotFoundError';
  constructor(readonly ref: string) {
    super(`folder ${ref} does not exist`);
  }
}

/** A folder as a backend reports it, before the hierarchy gives it a ServerId. */
export interface BackendFolder {
  backend: 'imap' | 'caldav' | 'carddav';
  /** Stable identity within the backend: an IMAP path, a DAV collection URL. */
  ref: string;
  /** The parent's ref; undefined at the top level. */
  parentRef: string | undefined;
  displayName: string;
  type: number;
  /** The ActiveSync class of its items. */
  itemClass: 'Email' | 'Calendar' | 'Contacts' | 'Tasks' | 'Notes';
  /** What stays the same when another client renames the folder (IMAP: UIDVALIDITY), when the backend knows. */
  identity?: string;
}

/** Where a mail folder's contents stand: what the device's state is compared against. */
export interface MailboxStatus {
  uidValidity: number;
  uidNext: number;
  messages: number;
  /** Absent when the server has no CONDSTORE (or it is switched off). */
  highestModSeq: bigint | undefined;
}

/** A message's state as a sync needs it: identity, flags, arrival. */
export interface MessageSummary {
  uid: number;
  flags: Set<string>;
  internalDate: Date;
  size: number;
  modSeq: bigint | undefined;
}

/** A message with its source, for conversion to an ActiveSync item. */
export interface MessageWithSource extends MessageSummary {
  source: Uint8Array;
}

/** What changed in a mailbox since a modseq (CONDSTORE/QRESYNC): changed or new messages, and vanished UIDs. */
export interface MailboxChanges {
  status: MailboxStatus;
  /** Messages whose flags changed or that arrived since the modseq. */
  changed: MessageSummary[];
  /** UIDs expunged since the modseq (QRESYNC VANISHED); undefined when the server cannot tell (use a UID diff). */
  vanished: number[] | undefined;
}

export interface MailSearchQuery {
  /** Mailbox paths to search; all when empty. */
  folders: string[];
  freeText?: string;
  since?: Date;
  before?: Date;
}

/** One user's mail, over one backend session. Always `close()` it. */
export interface MailBackend {
  listFolders(): Promise<BackendFolder[]>;
  createFolder(parentRef: string | undefined, name: string): Promise<BackendFolder>;
  /** Renames and/or moves a folder; returns the folder under its new ref. */
  renameFolder(ref: string, newParentRef: string | undefined, newName: string): Promise<BackendFolder>;
  /** Deletes the folder and every folder under it. */
  deleteFolder(ref: string): Promise<void>;

  status(folder: string): Promise<MailboxStatus>;
  /** UIDs of the messages that arrived in [since, before) (UID SEARCH); all when both are undefined. */
  listUids(folder: string, since?: Date, before?: Date): Promise<number[]>;
  /** Every message's summary (UID, flags, date), optionally only those that arrived since a date (FilterType). */
  listMessages(folder: string, since?: Date): Promise<MessageSummary[]>;
  /**
   * CONDSTORE/QRESYNC: what changed since `modSeq`; undefined when the server cannot say (no CONDSTORE). `before`
   * is the folder's UIDNEXT and message count when `modSeq` was its HIGHESTMODSEQ, when known.
   */
  changesSince(folder: string, modSeq: bigint, since?: Date, before?: { uidNext: number; messages: number }): Promise<MailboxChanges | undefined>;
  fetchMessages(folder: string, uids: number[]): Promise<MessageWithSource[]>;
  fetchSummaries(folder: string, uids: number[]): Promise<MessageSummary[]>;

  setFlags(folder: string, uid: number, add: string[], remove: string[]): Promise<void>;
  /** Moves messages; returns old UID → new UID in the destination (COPYUID). */
  moveMessages(folder: string, uids: number[], destination: string): Promise<Map<number, number>>;
  /** Deletes for good (\Deleted + UID EXPUNGE). */
  expungeMessages(folder: string, uids: number[]): Promise<void>;
  /** UIDs of the folder's messages with this Message-ID header. */
  findByMessageId(folder: string, messageId: string): Promise<number[]>;
  /** Appends a message; returns its UID when the server tells (UIDPLUS). */
  appendMessage(folder: string, source: Uint8Array, flags: string[]): Promise<number | undefined>;
  search(query: MailSearchQuery): Promise<{ folder: string; uid: number; internalDate: Date }[]>;

  close(): Promise<void>;
}

/** One calendar object or vCard as a DAV server holds it. */
export interface DavItem {
  href: string;
  etag: string;
  /** iCalendar (VEVENT/VTODO) or vCard text. */
  data: string;
}

/** What changed in a DAV collection since a sync-token (RFC 6578). */
export interface DavChanges {
  syncToken: string;
  changed: { href: string; etag: string }[];
  removed: string[];
}

/** The outcome of a conditional write (If-Match / If-None-Match): done, or the server's copy changed first. */
export type DavWriteResult = { ok: true; href: string; etag: string } | { ok: false; reason: 'conflict' | 'not-found' };

/**
 * Calendars and task lists (CalDAV) or address books (CardDAV) of one user. Items are iCalendar or vCard text;
 * converting them to ActiveSync is src/items/' business.
 */
export interface ItemBackend {
  listFolders(): Promise<BackendFolder[]>;
  /** Changes since `syncToken` (sync-collection); the full listing when undefined; 'invalid-token' when the server forgot it. */
  changesSince(folderRef: string, syncToken: string | undefined): Promise<DavChanges | 'invalid-token'>;
  /** Every item's href and etag, for servers without sync-collection. */
  listEtags(folderRef: string): Promise<{ href: string; etag: string }[]>;
  fetchItems(folderRef: string, hrefs: string[]): Promise<DavItem[]>;
  /**
   * Creates (no `ifMatch`: If-None-Match: *) or replaces (If-Match) an item. A create with `createName` writes that
   * resource name instead of a random one, and finds one already there (an earlier attempt whose answer was lost) done.
   */
  putItem(folderRef: string, href: string | undefined, data: string, ifMatch?: string, createName?: string): Promise<DavWriteResult>;
  deleteItem(href: string, ifMatch?: string): Promise<DavWriteResult>;
  /** The calendar objects of a folder whose VEVENT/VTODO has this UID (calendar-query; CalDAV only). */
  findByUid(folderRef: string, uid: string): Promise<DavItem[]>;
  /** Objects with an event in [start, end) (calendar-query time-range), from any calendar URL the login may read. */
  eventsInRange(collectionUrl: string, start: Date, end: Date): Promise<DavItem[] | 'forbidden'>;
  /** vCards of an address book matching `text` in FN, EMAIL or NICKNAME (addressbook-query; CardDAV only; N is left out: Radicale 3.1 fails on text-match against it). */
  queryAddressBook(collectionUrl: string, text: string): Promise<DavItem[]>;
  /** A new collection in the home (MKCALENDAR or extended MKCOL); 'exists' when the name is taken. */
  createCollection(displayName: string, kind: 'Calendar' | 'Tasks' | 'Contacts'): Promise<BackendFolder | 'exists'>;
  renameCollection(folderRef: string, displayName: string): Promise<'ok' | 'not-found'>;
  deleteCollection(folderRef: string): Promise<'ok' | 'not-found'>;
}
