/**
 * The backends behind the ActiveSync commands: what a command may ask of mail (IMAP), calendar and tasks (CalDAV),
 * contacts (CardDAV), mail submission (SMTP) and the address book (GAL). Commands see only these interfaces: the app
 * injects, per tenant, a TenantBackends whose requests open a user's UserBackends (combined.ts is the IMAP + DAV one).
 * A second implementation of MailBackend runs the contract suite in test/backends/mail-contract.ts.
 */
import type { Authenticator, AuthenticatedUser } from './auth.ts';
import type { MailSubmitter } from './smtp/types.ts';
import type { OofSettings } from '../state/types.ts';

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

/**
 * One part of a message's MIME structure as the server describes it (IMAP BODYSTRUCTURE, RFC 3501 §7.4.2), without
 * its content. Types, encodings and dispositions are lower case; parameter names too (values as sent, RFC 2231
 * continuations joined).
 */
export interface MimePart {
  /** The part specifier (RFC 3501 §6.4.5): '' for a multipart message's root, '1' for a single-part message's body. */
  section: string;
  /** `text/html`, `multipart/alternative`, … */
  type: string;
  parameters: Record<string, string>;
  /** Content-Transfer-Encoding: `7bit`, `quoted-printable`, `base64`, … */
  encoding: string;
  /** Octets as stored, still encoded. */
  size: number;
  /** Lines, for text parts (BODYSTRUCTURE body-fld-lines). */
  lines?: number;
  disposition?: string;
  dispositionParameters?: Record<string, string>;
  /** Content-ID, with its angle brackets. */
  id?: string;
  /** The parts of a multipart. */
  children?: MimePart[];
}

/** Which parts of a message to read, decided from its structure (MailBackend.fetchMessageParts). */
export type PartsRequest =
  /** The whole message (MIME asked for, or a structure that cannot be taken apart safely). */
  | 'whole'
  /** These leaf parts' content as stored (still transfer-encoded), each whole or only its first `maxBytes`. */
  | {
      contents: { section: string; maxBytes?: number }[];
      /** Leaf parts whose last few octets are wanted (a base64 attachment's padding gives its exact decoded size). */
      ends?: string[];
    };

/** How many of a part's last octets PartsRequest `ends` reads. */
export const END_OCTETS = 8;

/** A message read in parts: enough of it to describe it to a device, without the content it does not need. */
export interface MessageParts extends MessageSummary {
  /** Set when the whole message was read (PartsRequest 'whole'); the fields below are then empty. */
  source?: Uint8Array;
  /** The message's header fields a conversion reads (RFC 5322 syntax), ending in a blank line. */
  header: Uint8Array;
  structure: MimePart;
  /** Each part's own MIME header block (`section.MIME`), for every part below the root. */
  mimeHeaders: Map<string, Uint8Array>;
  /** Content of the parts asked for, as stored (transfer-encoded); shorter than the part's `size` when cut. */
  contents: Map<string, Uint8Array>;
  /** The last octets (at most END_OCTETS) of the parts asked for by `ends`. */
  ends: Map<string, Uint8Array>;
  /** Octets read from the backend for this message. */
  bytesRead: number;
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

/**
 * One user's mail, over one backend session (one IMAP connection). Always `close()` it.
 *
 * Folders are named by `ref` (BackendFolder.ref: the IMAP path). Messages are named by UID within a folder; a UID
 * is never reused while the folder's `uidValidity` stays the same, so the caller's record of UIDs is valid only
 * together with that value (a folder deleted and recreated gets a new one).
 *
 * Errors: a method given a folder that does not exist rejects with FolderNotFoundError where it says so (`status`);
 * the others reject with the backend's own error. After any rejection the session may be in an unknown state: the
 * caller finishes with `close()`, which never rejects.
 */
export interface MailBackend {
  /**
   * Every selectable folder, with its type (Inbox, Drafts, Sent, Trash by SPECIAL-USE, else UserMail) and `identity`.
   */
  listFolders(): Promise<BackendFolder[]>;
  /** Creates `name` under `parentRef` (top level when undefined); returns it as listFolders() would. */
  createFolder(parentRef: string | undefined, name: string): Promise<BackendFolder>;
  /** Renames and/or moves a folder; returns the folder under its new ref. Its messages and `identity` stay. */
  renameFolder(ref: string, newParentRef: string | undefined, newName: string): Promise<BackendFolder>;
  /** Deletes the folder and every folder under it. */
  deleteFolder(ref: string): Promise<void>;

  /**
   * The folder as it is now (not the session's earlier view of it), which later calls on it start from. Rejects with
   * FolderNotFoundError when it does not exist.
   */
  status(folder: string): Promise<MailboxStatus>;
  /**
   * The UIDVALIDITY the session's last read of this folder ran under (its UIDs mean what they meant to that read),
   * without asking the server again when the folder is the one the session has open; else from `status`.
   */
  uidValidityOf(folder: string): Promise<number>;
  /**
   * UIDs of the messages that arrived in [since, before) (by date, not time), ascending; all when both are undefined.
   */
  listUids(folder: string, since?: Date, before?: Date): Promise<number[]>;
  /** Every message's summary (UID, flags, date), optionally only those that arrived since a date (FilterType). */
  listMessages(folder: string, since?: Date): Promise<MessageSummary[]>;
  /**
   * What changed since `modSeq` (a `highestModSeq` this folder reported): every message whose flags changed or that
   * arrived since (restricted to arrivals on or after `since`), and the UIDs expunged since when the backend can
   * tell (else `vanished` is undefined and the caller compares UID sets). Undefined when the backend keeps no modseqs
   * (`highestModSeq` undefined in status). `before` is the folder's UIDNEXT and message count when `modSeq` was its
   * HIGHESTMODSEQ, when known: a hint that lets the backend find plain arrivals cheaply; the answer is the same.
   * `before.readArrivals`: the caller reads the arrivals next (fetchMessageParts), so a backend may start reading them
   * with the same request. The session sees other clients' changes from its latest `status(folder)` on: call that
   * first, as Sync does.
   */
  changesSince(
    folder: string,
    modSeq: bigint,
    since?: Date,
    before?: { uidNext: number; messages: number; readArrivals?: boolean },
  ): Promise<MailboxChanges | undefined>;
  /** The messages with these UIDs, with their source, in the order asked; UIDs no longer there are left out. */
  fetchMessages(folder: string, uids: number[]): Promise<MessageWithSource[]>;
  /**
   * The messages with these UIDs read in parts: their structure and header first (one round trip for all), then what
   * `plan` asks of each (messages that ask the same are read together); in the order asked, UIDs no longer there
   * left out. `admit`, when given, is asked in the order of `uids` once the structures are known, with the octets
   * each message's plan reads (its whole size when read whole): a message it refuses is not read and left out, so
   * that a caller's byte budget is held without a FETCH of sizes of its own.
   */
  fetchMessageParts(
    folder: string,
    uids: number[],
    plan: (structure: MimePart) => PartsRequest,
    admit?: (summary: MessageSummary, plannedBytes: number) => boolean,
  ): Promise<MessageParts[]>;
  /** The summaries of these UIDs; UIDs no longer there are left out. */
  fetchSummaries(folder: string, uids: number[]): Promise<MessageSummary[]>;

  /**
   * The named header fields of these UIDs (all messages when undefined), raw as the messages have them (one block of
   * `Name: value` lines each), without the rest of the message; UIDs no longer there are left out.
   */
  fetchHeaderFields(folder: string, fields: string[], uids?: number[]): Promise<{ uid: number; headers: Uint8Array }[]>;
  /** Adds and removes flags (IMAP names: `\Seen`, `\Flagged`, keywords) of one message; a change raises its modseq. */
  setFlags(folder: string, uid: number, add: string[], remove: string[]): Promise<void>;
  /** Moves messages; returns old UID → new UID in the destination, for those the backend reports (COPYUID). */
  moveMessages(folder: string, uids: number[], destination: string): Promise<Map<number, number>>;
  /** Deletes for good (not to Trash): changesSince then lists the UIDs as vanished, where it can tell. */
  expungeMessages(folder: string, uids: number[]): Promise<void>;
  /** UIDs of the folder's messages with this Message-ID header. */
  findByMessageId(folder: string, messageId: string): Promise<number[]>;
  /**
   * UIDs of the folder's messages in which any of these header fields contains its value (IMAP SEARCH HEADER,
   * RFC 9051 §6.4.4: a case-insensitive substring, so a superset the caller checks), ascending; with `range`, only
   * those that arrived in [since, before) (by date). No terms: none.
   */
  findByHeaders(
    folder: string,
    terms: readonly { field: string; value: string }[],
    range?: { since?: Date | undefined; before?: Date | undefined },
  ): Promise<number[]>;
  /** Appends a message with these flags; returns its UID when the backend tells (UIDPLUS). */
  appendMessage(folder: string, source: Uint8Array, flags: string[]): Promise<number | undefined>;
  /**
   * Messages matching the query, newest first. Free text is matched in subject, body, From, To and Cc. A listed
   * folder that no longer exists has nothing to find (no error).
   */
  search(query: MailSearchQuery): Promise<{ folder: string; uid: number; internalDate: Date }[]>;

  /** Ends the session (a clean one may be kept for reuse). Never rejects. */
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
/** A write's outcome; `existed`: a named create found its name taken, an earlier attempt's item (not this text). */
export type DavWriteResult =
  | { ok: true; href: string; etag: string; existed?: boolean }
  | { ok: false; reason: 'conflict' | 'not-found' };

/**
 * The items of a folder that holds no mail, each a text with an href and an etag: what the item Sync strategy
 * (src/sync/dav.ts) reads and writes. CalDAV/CardDAV collections (ItemBackend) and the notes folder (NotesBackend).
 */
export interface ItemStore {
  /**
   * Changes since `syncToken` (sync-collection); the full listing when undefined; 'invalid-token' when the server
   * forgot it (or keeps no change log: the caller then compares the full listing with what it has).
   */
  changesSince(folderRef: string, syncToken: string | undefined): Promise<DavChanges | 'invalid-token'>;
  /** Every item's href and etag, for servers without sync-collection. */
  listEtags(folderRef: string): Promise<{ href: string; etag: string }[]>;
  fetchItems(folderRef: string, hrefs: string[]): Promise<DavItem[]>;
  /**
   * Creates (no `ifMatch`: If-None-Match: *) or replaces (If-Match) an item. A create with `createName` writes that
   * resource name instead of a random one, and finds one already there (an earlier attempt whose answer was lost) done.
   */
  putItem(
    folderRef: string,
    href: string | undefined,
    data: string,
    ifMatch?: string,
    createName?: string,
  ): Promise<DavWriteResult>;
  deleteItem(href: string, ifMatch?: string): Promise<DavWriteResult>;
}

/**
 * Calendars and task lists (CalDAV) or address books (CardDAV) of one user. Items are iCalendar or vCard text;
 * converting them to ActiveSync is src/items/' business.
 */
export interface ItemBackend extends ItemStore {
  listFolders(): Promise<BackendFolder[]>;
  /** The calendar objects of a folder whose VEVENT/VTODO has this UID (calendar-query; CalDAV only). */
  findByUid(folderRef: string, uid: string): Promise<DavItem[]>;
  /** Objects with an event in [start, end) (calendar-query time-range), from any calendar URL the login may read. */
  eventsInRange(collectionUrl: string, start: Date, end: Date): Promise<DavItem[] | 'forbidden'>;
  /**
   * vCards of an address book matching `text` in FN, EMAIL or NICKNAME (addressbook-query; CardDAV only; N is left out:
   * Radicale 3.1 fails on text-match against it).
   */
  queryAddressBook(collectionUrl: string, text: string): Promise<DavItem[]>;
  /** A new collection in the home (MKCALENDAR or extended MKCOL); 'exists' when the name is taken. */
  createCollection(displayName: string, kind: 'Calendar' | 'Tasks' | 'Contacts'): Promise<BackendFolder | 'exists'>;
  renameCollection(folderRef: string, displayName: string): Promise<'ok' | 'not-found'>;
  deleteCollection(folderRef: string): Promise<'ok' | 'not-found'>;
}

/** A person of the tenant's address book (the GAL), as Search and ResolveRecipients show them. */
export interface GalEntry {
  displayName: string;
  /** Lower-cased; the first is the primary address. */
  emails: string[];
  firstName?: string;
  lastName?: string;
  company?: string;
  title?: string;
  office?: string;
  alias?: string;
  phone?: string;
  homePhone?: string;
  mobilePhone?: string;
  /** Where this person's busy times can be read (a CalDAV calendar URL). */
  freeBusyUrl?: string;
  /** The X.509 certificates (DER) the entry publishes in vCard KEY, as found: not yet checked. */
  certificates?: Uint8Array[];
}

/** The tenant's address book, read under one user's login. */
export interface Directory {
  /** Entries whose name, email or nickname contain `text`, by display name. */
  search(text: string): Promise<GalEntry[]>;
  /**
   * The iCalendar texts of the events in [start, end) of the calendar at `url` (an entry's freeBusyUrl), or
   * 'forbidden'.
   */
  busyEvents(url: string, start: Date, end: Date): Promise<string[] | 'forbidden'>;
}

/** What an automatic reply says, and to whom the internal message goes. */
export interface AutoReplyContent {
  subject: string;
  /** Senders in this domain get the AppliesToInternal message, others an external one; none: all are external. */
  internalDomain?: string;
  toText: (message: OofSettings['messages'][number]) => string;
}

/** The user's automatic replies, carried out by the mail system (a Sieve vacation script over ManageSieve). */
export interface AutoReplies {
  /**
   * Puts `oof` in effect: off when its state is 0 or no message is enabled. Rejects when the server cannot do it
   * (the settings are then not in effect), also when it would switch off the user's own mail rules.
   */
  apply(oof: OofSettings, content: AutoReplyContent): Promise<void>;
}

/** All folders of a user's backends, and which backends did not answer. */
export interface FolderListing {
  folders: BackendFolder[];
  unavailable: Set<BackendFolder['backend']>;
}

/**
 * The user's notes (MS-ASNOTE): one mail folder (NOTES_FOLDER) whose messages are notes as Apple's Notes writes them
 * over IMAP. Items are the messages' sources; an href is the note's X-Universally-Unique-Identifier, which stays when
 * a change replaces the message.
 */
export interface NotesBackend extends ItemStore {
  /** The folder's ref (its mail folder path). */
  readonly ref: string;
  /** The notes folder as listFolders() gives it, created first when it does not exist yet. */
  ensureFolder(): Promise<BackendFolder>;
  /**
   * The hrefs of the notes whose title or text contains `freeText` (all notes without it), newest first: Search of the
   * Mailbox store with Class Notes (MS-ASNOTE §3.1.5.2).
   */
  search(freeText: string | undefined): Promise<string[]>;
}

/** All of one user's backends for one request. Always `close()` them. */
export interface UserBackends {
  mail: MailBackend;
  /** CalDAV (calendars, task lists) and CardDAV (address books), when the tenant has them. */
  calendars?: ItemBackend;
  contacts?: ItemBackend;
  /** The notes folder's items, in a mail folder; listFolders() gives that folder the type Notes. */
  notes?: NotesBackend;
  /** Every folder of every backend that answered. */
  listFolders(): Promise<BackendFolder[]>;
  /**
   * The same, and which backends did not answer (a DAV server down, or without this user): FolderSync keeps the
   * folders it knows from those rather than telling the device they are gone.
   */
  listFoldersByBackend(): Promise<FolderListing>;
  close(): Promise<void>;
}

/** What commands are given to reach a user's data: the one way they get backends (CommandContext.backends). */
export interface BackendFactory {
  /** Opens the user's backends, logged in. Rejects with the mail backend's error when that login fails. */
  open(user: AuthenticatedUser): Promise<UserBackends>;
  /** Mail submission (SendMail, SmartReply, SmartForward, meeting mail), under the login given with each message. */
  submitter: MailSubmitter;
  /** The tenant's address book under this user's login; undefined when the tenant has none (GAL_URL). */
  directory(user: AuthenticatedUser): Directory | undefined;
  /** The user's automatic replies; undefined when the tenant carries none out (SIEVE off) or there is no password. */
  autoReplies(user: AuthenticatedUser): AutoReplies | undefined;
}

/**
 * What one request works with: the check of its credentials and the factory of its backends. They share a login:
 * the connection the check logged in with is the one the request's first open() works on, so a request logs in to
 * the mail server at most once whether connections are pooled (Node, Lambda) or not (Workers).
 */
export interface RequestBackends {
  authenticator: Authenticator;
  backends: BackendFactory;
  /** The request is over: lets go of a login the check kept that no open() took. */
  end(): void;
}

/** One tenant's backends, as the app is given them: a fresh RequestBackends for every request. */
export interface TenantBackends {
  forRequest(): RequestBackends;
}

/**
 * A CalDAV calendar that holds both events and tasks is offered as two folders: its own URL (events) and the URL
 * with this suffix (tasks). Folder refs that differ only by it are views of one collection.
 */
export const TASKS_VIEW = '#VTODO';

/** The storage collection of a folder ref: the calendar's URL for both of its views. */
export function collectionOf(folderRef: string): string {
  return folderRef.endsWith(TASKS_VIEW) ? folderRef.slice(0, -TASKS_VIEW.length) : folderRef;
}
