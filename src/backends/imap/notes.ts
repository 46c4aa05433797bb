/**
 * The notes folder over IMAP (NotesBackend): one mail folder whose messages are notes as Apple's Notes writes them
 * (src/items/note.ts), read and written through the user's MailBackend session.
 *
 * - An item's href is the note's X-Universally-Unique-Identifier, so its ServerId (src/folders/server-ids.ts) stays
 *   when a change replaces the message; a message without one (not written as a note) is named by its UID.
 * - Its etag is `<UIDVALIDITY>.<UID>`: IMAP messages cannot change, so a new version is a new UID. Two messages with
 *   one UUID (a client that appended the new version and has not yet removed the old) are the newer one.
 * - A change APPENDs the new version (RFC 3501 §6.3.11; its UID from UIDPLUS, RFC 4315 §3) and then expunges the old
 *   one; a delete expunges. A retried Add whose first APPEND landed finds its note by the UUID its name gives.
 * - The sync-token is the folder's STATUS (UIDVALIDITY, UIDNEXT, MESSAGES, HIGHESTMODSEQ): IMAP keeps no change log
 *   by href, so another token is answered 'invalid-token' and the caller compares the full listing (one FETCH of a
 *   header field and the flags) with what the device has. The folder's own change marker, the same STATUS, is what
 *   Ping and the watcher compare (src/push/feed.ts).
 */
import {
  type BackendFolder,
  type DavChanges,
  type DavItem,
  type DavWriteResult,
  FolderType,
  type MailBackend,
  type MailboxStatus,
  type NotesBackend,
} from '../types.ts';
import { noteIdentifier, noteSourceBytes, noteSourceText, uuidFromHex, withNoteIdentifier } from '../../items/note.ts';

interface Listing {
  status: MailboxStatus;
  /** href → the UIDs of its messages, newest last. */
  uids: Map<string, number[]>;
}

export class ImapNotesBackend implements NotesBackend {
  constructor(
    private readonly mail: MailBackend,
    readonly ref: string,
  ) {}

  /** The notes folder in a listing: typed Notes (type 10). */
  asNotesFolder(folder: BackendFolder): BackendFolder {
    return folder.backend === 'imap' && folder.ref === this.ref
      ? { ...folder, type: FolderType.Notes, itemClass: 'Notes' }
      : folder;
  }

  async ensureFolder(): Promise<BackendFolder> {
    const existing = (await this.mail.listFolders()).find((f) => f.ref === this.ref);
    if (existing) return this.asNotesFolder(existing);
    try {
      return this.asNotesFolder(await this.mail.createFolder(undefined, this.ref));
    } catch (err) {
      // Another request created it meanwhile (RFC 5530 ALREADYEXISTS).
      const created = (await this.mail.listFolders()).find((f) => f.ref === this.ref);
      if (created) return this.asNotesFolder(created);
      throw err;
    }
  }

  async changesSince(folderRef: string, syncToken: string | undefined): Promise<DavChanges | 'invalid-token'> {
    if (syncToken !== undefined) {
      const status = await this.mail.status(folderRef);
      return tokenOf(status) === syncToken ? { syncToken, changed: [], removed: [] } : 'invalid-token';
    }
    const listing = await this.listing(folderRef);
    return { syncToken: tokenOf(listing.status), changed: etagsOf(listing), removed: [] };
  }

  /** IMAP SEARCH TEXT on the folder (RFC 3501 §6.4.4: headers and body), each UID named by its note's href. */
  async search(freeText: string | undefined): Promise<string[]> {
    const found = await this.mail.search({ folders: [this.ref], ...(freeText ? { freeText } : {}) });
    if (found.length === 0) return [];
    const listing = await this.listing(this.ref);
    // Only a note's newest message stands for it (an older one not yet expunged is not the note any more).
    const hrefOf = new Map([...listing.uids].map(([href, uids]) => [uids.at(-1)!, href]));
    // Newest first: a note is written anew (a new UID) at every change, so the highest UID is the latest written.
    const hrefs = found
      .sort((a, b) => b.uid - a.uid)
      .flatMap((m) => {
        const href = hrefOf.get(m.uid);
        return href === undefined ? [] : [href];
      });
    return [...new Set(hrefs)];
  }

  async listEtags(folderRef: string): Promise<{ href: string; etag: string }[]> {
    return etagsOf(await this.listing(folderRef));
  }

  async fetchItems(folderRef: string, hrefs: string[]): Promise<DavItem[]> {
    if (hrefs.length === 0) return [];
    const listing = await this.listing(folderRef);
    const wanted = new Map<number, string>();
    for (const href of hrefs) {
      const uid = listing.uids.get(href)?.at(-1);
      if (uid !== undefined) wanted.set(uid, href);
    }
    const messages = await this.mail.fetchMessages(folderRef, [...wanted.keys()]);
    return messages.map((m) => ({
      href: wanted.get(m.uid)!,
      etag: etagOf(listing.status, m.uid),
      data: noteSourceText(m.source),
    }));
  }

  async putItem(
    folderRef: string,
    href: string | undefined,
    data: string,
    ifMatch?: string,
    createName?: string,
  ): Promise<DavWriteResult> {
    const listing = await this.listing(folderRef);
    if (href === undefined) {
      // A named create: the same UUID for each attempt of one Add; the note an earlier attempt wrote is this one.
      const text = createName ? withNoteIdentifier(data, uuidFromHex(createName)) : data;
      const uuid = noteIdentifier(text);
      if (!uuid) return { ok: false, reason: 'conflict' };
      const earlier = listing.uids.get(uuid)?.at(-1);
      if (earlier !== undefined) return { ok: true, href: uuid, etag: etagOf(listing.status, earlier), existed: true };
      const uid = await this.append(folderRef, text, uuid);
      return { ok: true, href: uuid, etag: etagOf(listing.status, uid) };
    }
    const uids = listing.uids.get(href);
    if (!uids) return { ok: false, reason: 'not-found' };
    if (ifMatch !== undefined && etagOf(listing.status, uids.at(-1)!) !== ifMatch)
      return { ok: false, reason: 'conflict' };
    // The new version keeps the note's UUID (a message that had none keeps being named by its new one).
    const uuid = noteIdentifier(data);
    const text = href.startsWith('uid-') || !uuid ? data : withNoteIdentifier(data, href);
    const uid = await this.append(folderRef, text, noteIdentifier(text)!);
    await this.mail.expungeMessages(folderRef, uids);
    return { ok: true, href: noteIdentifier(text) ?? href, etag: etagOf(listing.status, uid) };
  }

  async deleteItem(href: string, ifMatch?: string): Promise<DavWriteResult> {
    const listing = await this.listing(this.ref);
    const uids = listing.uids.get(href);
    if (!uids) return { ok: false, reason: 'not-found' };
    if (ifMatch !== undefined && etagOf(listing.status, uids.at(-1)!) !== ifMatch)
      return { ok: false, reason: 'conflict' };
    await this.mail.expungeMessages(this.ref, uids);
    return { ok: true, href, etag: '' };
  }

  /** Appends the note (read, as Apple's Notes keeps them); its UID, from UIDPLUS or else found by its UUID. */
  private async append(folderRef: string, text: string, uuid: string): Promise<number> {
    const uid = await this.mail.appendMessage(folderRef, noteSourceBytes(text), ['\\Seen']);
    if (uid !== undefined) return uid;
    const found = (await this.listing(folderRef)).uids.get(uuid)?.at(-1);
    if (found === undefined) throw new Error(`the note ${uuid} appended to ${folderRef} is not there`);
    return found;
  }

  /** Every note of the folder: its UUID header and flags (messages marked \Deleted are on their way out). */
  private async listing(folderRef: string): Promise<Listing> {
    const status = await this.mail.status(folderRef);
    const uids = new Map<string, number[]>();
    if (status.messages === 0) return { status, uids };
    const [headers, summaries] = await Promise.all([
      this.mail.fetchHeaderFields(folderRef, ['X-Universally-Unique-Identifier']),
      this.mail.listMessages(folderRef),
    ]);
    const deleted = new Set(summaries.filter((s) => s.flags.has('\\Deleted')).map((s) => s.uid));
    const decoder = new TextDecoder('latin1');
    for (const { uid, headers: block } of headers.sort((a, b) => a.uid - b.uid)) {
      if (deleted.has(uid)) continue;
      const href = noteIdentifier(decoder.decode(block)) ?? `uid-${status.uidValidity}-${uid}`;
      const list = uids.get(href);
      if (list) list.push(uid);
      else uids.set(href, [uid]);
    }
    return { status, uids };
  }
}

/** The folder's state as a sync-token. */
function tokenOf(status: MailboxStatus): string {
  return `${status.uidValidity} ${status.uidNext} ${status.messages} ${status.highestModSeq ?? '-'}`;
}

function etagOf(status: MailboxStatus, uid: number): string {
  return `${status.uidValidity}.${uid}`;
}

function etagsOf(listing: Listing): { href: string; etag: string }[] {
  return [...listing.uids].map(([href, uids]) => ({ href, etag: etagOf(listing.status, uids.at(-1)!) }));
}
