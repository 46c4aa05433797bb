/**
 * The MailBackend on IMAP (imapflow): one connection per request, logged in as the user.
 *
 * Folder types come from SPECIAL-USE (RFC 6154), so nothing needs configuring. Incremental sync uses CONDSTORE and
 * QRESYNC when the server has them (`UID FETCH 1:* (FLAGS) (CHANGEDSINCE m VANISHED)`); without them
 * `changesSince` answers undefined and the caller compares UID sets instead.
 */
import type {
  FetchMessageObject,
  FetchQueryObject,
  ImapFlow,
  ListResponse,
  MessageStructureObject,
  SearchObject,
} from 'imapflow';
import {
  FolderNotFoundError,
  FolderType,
  type BackendFolder,
  type MailBackend,
  type MailboxChanges,
  type MailboxStatus,
  type MailSearchQuery,
  type MessageParts,
  type MessageSummary,
  type MessageWithSource,
  type MimePart,
  type PartsRequest,
  END_OCTETS,
} from '../types.ts';
import type { ImapLogin } from './connection.ts';
import type { ImapSessions } from './sessions.ts';
import { withFields } from '../../util/objects.ts';

/**
 * The header fields a message's conversion reads (items/email.ts, postal-mime's addresses and dates, the MIME fields
 * of a single-part message): BODY.PEEK[HEADER.FIELDS (…)] leaves out Received, DKIM and ARC signatures and the
 * rest, often most of a header block.
 */
const CONVERTED_HEADERS = [
  'From',
  'Sender',
  'To',
  'Cc',
  'Bcc',
  'Reply-To',
  'Subject',
  'Date',
  'Message-ID',
  'In-Reply-To',
  'References',
  'Thread-Topic',
  'Importance',
  'Priority',
  'X-Priority',
  'X-MSMail-Priority',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'Content-Disposition',
  'Content-ID',
  'Content-Description',
];

const SPECIAL_USE_TYPES: Record<string, number> = {
  '\\Inbox': FolderType.Inbox,
  '\\Drafts': FolderType.Drafts,
  '\\Trash': FolderType.DeletedItems,
  '\\Sent': FolderType.SentItems,
};

/** Opens a session for one user. Throws imapflow's error when login fails. */
export async function openImapMailBackend(sessions: ImapSessions, login: ImapLogin): Promise<ImapMailBackend> {
  return new ImapMailBackend(sessions, await sessions.acquire(login));
}

export class ImapMailBackend implements MailBackend {
  /** UIDs reported by VANISHED during the current fetch. */
  private vanished: number[] = [];
  private readonly onExpunge = (event: { vanished?: boolean; uid?: number }): void => {
    if (event.vanished && event.uid !== undefined) this.vanished.push(event.uid);
  };
  private failed = false;
  /**
   * What the arrivals FETCH of a small window read of each new message (its structure, header fields and first
   * octets: the first FETCH of fetchMessageParts), by folder and UID, for the fetchMessageParts that reads them next
   * in the same request; taken once, dropped when anything in the folder is changed.
   */
  private readAhead = new Map<string, Map<number, FetchMessageObject>>();

  constructor(
    private readonly sessions: ImapSessions,
    private readonly client: ImapFlow,
  ) {
    this.client.on('expunge', this.onExpunge);
  }

  /** Whether CONDSTORE is on for this session (the server offers it and imapflow enabled it). */
  get hasCondstore(): boolean {
    return this.client.enabled.has('CONDSTORE');
  }

  async listFolders(): Promise<BackendFolder[]> {
    const listed = await this.client.list({ statusQuery: { uidValidity: true } });
    return listed.filter((m) => !m.flags.has('\\Noselect') && !m.flags.has('\\NonExistent')).map((m) => toFolder(m));
  }

  async createFolder(parentRef: string | undefined, name: string): Promise<BackendFolder> {
    const path = await this.childPath(parentRef, name);
    await this.client.mailboxCreate(path);
    return this.folderAt(path);
  }

  async renameFolder(ref: string, newParentRef: string | undefined, newName: string): Promise<BackendFolder> {
    const path = await this.childPath(newParentRef, newName);
    await this.client.mailboxRename(ref, path);
    return this.folderAt(path);
  }

  async deleteFolder(ref: string): Promise<void> {
    // Subfolders first, deepest first: Dovecot answers OK to DELETE of a parent but keeps it while it has children.
    const listed = await this.client.list();
    const delimiter = listed.find((m) => m.path === ref)?.delimiter ?? '/';
    const subfolders = listed.filter((m) => m.path.startsWith(ref + delimiter) && !m.flags.has('\\NonExistent'));
    for (const m of subfolders.sort((a, b) => b.path.length - a.path.length)) await this.client.mailboxDelete(m.path);
    await this.client.mailboxDelete(ref);
  }

  /**
   * SELECT rather than STATUS: the Sync that asks goes on to read this folder anyway, and on a reused connection
   * that still has it selected, STATUS would describe the session's old view of it (even of a folder deleted and
   * recreated since), where SELECT always starts from the folder as it is.
   */
  async status(folder: string): Promise<MailboxStatus> {
    try {
      const mailbox = await this.client.mailboxOpen(folder);
      return {
        uidValidity: Number(mailbox.uidValidity),
        uidNext: mailbox.uidNext,
        messages: mailbox.exists,
        highestModSeq:
          this.hasCondstore && mailbox.highestModseq !== undefined ? BigInt(mailbox.highestModseq) : undefined,
      };
    } catch (err) {
      this.failed = true;
      if (isMissingMailbox(err)) throw new FolderNotFoundError(folder);
      throw err;
    }
  }

  async uidValidityOf(folder: string): Promise<number> {
    // A selected mailbox's UIDVALIDITY cannot change under the session (RFC 3501 §2.3.1.1): the server would end it.
    const selected = this.client.mailbox;
    if (selected && selected.path === folder) return Number(selected.uidValidity);
    return (await this.status(folder)).uidValidity;
  }

  async listUids(folder: string, since?: Date, before?: Date): Promise<number[]> {
    return this.withMailbox(folder, async () => {
      const criteria = { ...(since ? { since } : {}), ...(before ? { before } : {}) };
      const uids =
        (await this.client.search(Object.keys(criteria).length ? criteria : { all: true }, { uid: true })) || [];
      return uids.sort((a, b) => a - b);
    });
  }

  async listMessages(folder: string, since?: Date): Promise<MessageSummary[]> {
    return this.withMailbox(folder, async () => {
      const range = since ? await this.uidsSince(since) : '1:*';
      if (range === '') return [];
      return this.fetchSummaryRange(range);
    });
  }

  async changesSince(
    folder: string,
    modSeq: bigint,
    since?: Date,
    before?: { uidNext: number; messages: number; readArrivals?: boolean },
  ): Promise<MailboxChanges | undefined> {
    if (!this.hasCondstore) return undefined;
    const arrivals = before ? await this.arrivalsOnly(folder, modSeq, before, since) : undefined;
    if (arrivals) return arrivals;
    if (this.client.enabled.has('QRESYNC')) return this.changesByQresyncSelect(folder, modSeq, since);
    return this.withMailbox(folder, async () => {
      const changed = await this.fetchSummaryRange('1:*', modSeq);
      const inWindow = since ? changed.filter((m) => m.internalDate >= since) : changed;
      return { status: this.selectedStatus(folder), changed: inWindow, vanished: undefined };
    });
  }

  /**
   * Every query by modseq (CHANGEDSINCE, SEARCH MODSEQ, QRESYNC) makes the server look at each message of the
   * folder: about 7 ms at 100,000 messages in Dovecot, where a UID range costs the same at any size. The usual
   * change is new mail, so that is tried first: the messages from the old UIDNEXT on are fetched, and when none was
   * expunged (the count adds up) and their modseqs are every value between the old and the new HIGHESTMODSEQ, no
   * other change can have happened (each change takes a modseq of its own; one that did not arrive by itself leaves
   * a value unaccounted for). Otherwise undefined: the caller asks by modseq.
   */
  private async arrivalsOnly(
    folder: string,
    modSeq: bigint,
    before: { uidNext: number; messages: number; readArrivals?: boolean },
    since?: Date,
  ): Promise<MailboxChanges | undefined> {
    return this.withMailbox(folder, async () => {
      const status = this.selectedStatus(folder);
      if (status.highestModSeq === undefined || status.highestModSeq < modSeq) return undefined;
      // `n:*` always includes the newest message, even below n. A few arrivals that the caller reads next: their
      // structure, header fields and first octets come with this FETCH (fetchMessageParts' first one), so that a
      // Sync of a new small message takes two round trips, SELECT and this FETCH.
      const few = before.readArrivals === true && status.uidNext - before.uidNext <= SMALL_WINDOW;
      const arrived: MessageSummary[] = [];
      if (status.uidNext > before.uidNext) {
        const kept = new Map<number, FetchMessageObject>();
        for await (const m of this.client.fetch(
          `${before.uidNext}:*`,
          few ? this.firstFetchQuery(true) : this.summaryQuery(),
          { uid: true },
        )) {
          if (m.uid < before.uidNext) continue;
          arrived.push(toSummary(m));
          if (few) kept.set(m.uid, m);
        }
        if (kept.size) this.readAhead.set(folder, kept);
      }
      if (before.messages + arrived.length !== status.messages) return undefined;
      const values = new Set<bigint>();
      for (const m of arrived) {
        if (m.modSeq === undefined || m.modSeq <= modSeq) return undefined;
        values.add(m.modSeq);
      }
      if (BigInt(values.size) !== status.highestModSeq - modSeq) return undefined;
      return { status, changed: since ? arrived.filter((m) => m.internalDate >= since) : arrived, vanished: [] };
    });
  }

  /**
   * QRESYNC (RFC 7162 §3.2.5): `SELECT folder (QRESYNC (uidvalidity modseq))` makes the server list what changed
   * since the modseq (FETCH) and what was expunged (VANISHED (EARLIER)) from its change log, so the cost follows the
   * changes; `UID FETCH 1:* (CHANGEDSINCE …)` makes it look at every message of the folder.
   */
  private async changesByQresyncSelect(folder: string, modSeq: bigint, since?: Date): Promise<MailboxChanges> {
    // The Sync asking has usually just selected the folder (status): its UIDVALIDITY is at hand, no extra SELECT.
    const selected =
      this.client.mailbox && this.client.mailbox.path === folder ? this.client.mailbox.uidValidity : undefined;
    const uidValidity = selected ?? BigInt((await this.status(folder)).uidValidity);
    const changedUids = new Set<number>();
    const onFlags = (event: { uid?: number }): void => {
      if (event.uid !== undefined) changedUids.add(event.uid);
    };
    this.vanished = [];
    this.client.on('flags', onFlags);
    try {
      await this.client.mailboxOpen(folder, { uidValidity: BigInt(uidValidity), changedSince: modSeq });
    } catch (err) {
      this.failed = true;
      throw err;
    } finally {
      this.client.off('flags', onFlags);
    }
    const vanished = [...this.vanished];
    // The FETCHes carry flags only: dates (for the FilterType window) come from the changed messages alone.
    const changed = changedUids.size
      ? await this.fetchSummaries(
          folder,
          [...changedUids].sort((a, b) => a - b),
        )
      : [];
    const inWindow = since ? changed.filter((m) => m.internalDate >= since) : changed;
    return { status: this.selectedStatus(folder), changed: inWindow, vanished };
  }

  private selectedStatus(folder: string): MailboxStatus {
    const mailbox = this.client.mailbox;
    if (!mailbox) throw new Error(`mailbox ${folder} is not open`);
    return {
      uidValidity: Number(mailbox.uidValidity),
      uidNext: mailbox.uidNext,
      messages: mailbox.exists,
      highestModSeq: mailbox.highestModseq !== undefined ? BigInt(mailbox.highestModseq) : undefined,
    };
  }

  async fetchMessages(folder: string, uids: number[]): Promise<MessageWithSource[]> {
    if (uids.length === 0) return [];
    return this.withMailbox(folder, async () => {
      const out: MessageWithSource[] = [];
      for await (const m of this.client.fetch(
        uids.join(','),
        { uid: true, flags: true, internalDate: true, size: true, source: true },
        { uid: true },
      )) {
        out.push(withFields(toSummary(m), { source: new Uint8Array(m.source ?? new Uint8Array()) }));
      }
      return sortByRequest(out, uids);
    });
  }

  /**
   * Two round trips for a window, whatever its messages' shapes: one FETCH of BODYSTRUCTURE and the converted header
   * fields of all the messages, then one FETCH of what they need: each part's MIME header (`BODY.PEEK[n.MIME]`) and
   * the asked-for contents cut where asked (`BODY.PEEK[n]<0.max>`, RFC 3501 §6.4.5 partial fetch), so that an
   * attachment's bytes are never read. One FETCH asks the same items of every message it names (RFC 3501 §6.4.5), so
   * the items are the union of what the messages need (a section a message does not have answers an empty string);
   * messages whose union would read much that they do not need (another shape's HTML section being their
   * attachment) get a FETCH of their own (`groupReads`). A window of a few messages (an incremental Sync, an
   * ItemOperations Fetch) also asks for the first SMALL_MESSAGE octets of each message in the first FETCH: a message
   * that small is then read whole in one round trip. Contents stay transfer-encoded. BINARY (RFC 3516) would decode
   * them on the server and BINARY.SIZE (§4.2) give a part's decoded size, but not the size sent: a body goes with LF
   * line ends (postal-mime makes each CRLF of 7bit, 8bit and quoted-printable text one LF), so the size of a
   * quoted-printable part read in part needs its count of hard line breaks, which only reading it tells. And Dovecot
   * 2.3 (index-mail-binary.c; 2.3.19 here) answers BINARY.SIZE too small, even wrapped around below zero, for a part
   * that a quoted-printable or base64 part follows within as many octets as it has lines: it ends the part at its
   * physical offset plus its CRLF size, which in mail stored with LF line ends reaches into the next part and counts
   * that part's decoding too (here a 163 KB quoted-printable part before a base64 one: 117,204 for 120,888 decoded).
   * A FETCH the server rejects (NO/BAD) is read whole.
   */
  async fetchMessageParts(
    folder: string,
    uids: number[],
    plan: (structure: MimePart) => PartsRequest,
    admit?: (summary: MessageSummary, plannedBytes: number) => boolean,
  ): Promise<MessageParts[]> {
    if (uids.length === 0) return [];
    return this.withMailbox(folder, async () => {
      const small = uids.length <= SMALL_WINDOW;
      // What each message needs, in the order of the answer; then `admit` decides in the order asked.
      const found = new Map<number, { summary: MessageSummary; planned: number; read: () => void }>();
      const planned: PlannedRead[] = [];
      const out: MessageParts[] = [];
      // Messages whose structure the server did not give or could not be read (e.g. nested deeper than the parser
      // takes), and those whose plan is the whole message: read whole, so that the conversion judges them and reports
      // what it cannot convert, never skipped.
      const whole: MessageSummary[] = [];
      const take = (m: FetchMessageObject): void => {
        const summary = toSummary(m);
        if (small && m.source && m.size !== undefined && m.source.length >= m.size) {
          const source = new Uint8Array(m.source);
          found.set(m.uid, { summary, planned: source.length, read: () => out.push(wholeMessage(summary, source)) });
          return;
        }
        const structure = m.bodyStructure && toMimePart(m.bodyStructure, '');
        const request = structure ? plan(structure) : 'whole';
        if (!structure || request === 'whole') {
          found.set(m.uid, { summary, planned: summary.size, read: () => whole.push(summary) });
          return;
        }
        const header = new Uint8Array(m.headers ?? new Uint8Array());
        const read = plannedRead(summary, header, structure, request, m.source?.length ?? 0);
        found.set(m.uid, { summary, planned: read.needed + (m.source?.length ?? 0), read: () => planned.push(read) });
      };
      const kept = this.readAhead.get(folder);
      if (kept && uids.every((uid) => kept.has(uid))) {
        // Read with the arrivals (arrivalsOnly): this first FETCH is not made again.
        for (const uid of uids) take(kept.get(uid)!);
      } else {
        for await (const m of this.client.fetch(uids.join(','), this.firstFetchQuery(small), { uid: true })) take(m);
      }
      if (kept) for (const uid of uids) kept.delete(uid);
      for (const uid of uids) {
        const message = found.get(uid);
        if (message && (!admit || admit(message.summary, message.planned))) message.read();
      }
      for (const group of groupReads(planned)) {
        const read = await this.fetchParts(group).catch(rejectedByServer);
        if (read) out.push(...read);
        else whole.push(...group.members.map((m) => m.summary));
      }
      if (whole.length > 0) out.push(...(await this.fetchWhole(whole)));
      return sortByRequest(out, uids);
    });
  }

  /** The items of a FETCH of summaries (UID, flags, dates, size, modseq). */
  private summaryQuery(): FetchQueryObject {
    return { uid: true, flags: true, internalDate: true, size: true, ...(this.hasCondstore ? { modseq: true } : {}) };
  }

  /**
   * fetchMessageParts' first FETCH: summaries, BODYSTRUCTURE and the converted header fields; in a small window also
   * the first SMALL_MESSAGE octets of each message, so that a message that small is read whole in this round trip.
   */
  private firstFetchQuery(small: boolean): FetchQueryObject {
    return {
      ...this.summaryQuery(),
      bodyStructure: true,
      headers: CONVERTED_HEADERS,
      ...(small ? { source: { start: 0, maxLength: SMALL_MESSAGE } } : {}),
    };
  }

  /** Whole sources of these messages (of the open mailbox), in one UID FETCH. */
  private async fetchWhole(summaries: MessageSummary[]): Promise<MessageParts[]> {
    const out: MessageParts[] = [];
    const byUid = new Map(summaries.map((x) => [x.uid, x]));
    for await (const m of this.client.fetch(
      summaries.map((x) => x.uid).join(','),
      { uid: true, source: true },
      { uid: true },
    )) {
      const summary = byUid.get(m.uid);
      if (summary) out.push(wholeMessage(summary, new Uint8Array(m.source ?? new Uint8Array())));
    }
    return out;
  }

  /** One UID FETCH of the union of what a group's messages need; each message keeps what it asked for. */
  private async fetchParts(group: ReadGroup): Promise<MessageParts[]> {
    const byUid = new Map(group.members.map((m) => [m.summary.uid, m]));
    const out: MessageParts[] = [];
    const atom = (value: string, section?: string, partial?: number[]): ImapToken => ({
      type: 'ATOM',
      value,
      ...(section !== undefined ? { section: [{ type: 'ATOM', value: section }] } : {}),
      ...(partial ? { partial } : {}),
    });
    // Ends before contents: an end read from octet 0 (a part of at most END_OCTETS) answers under the same name as a
    // content, and the later answer (the content, which holds all of such a part) is the one kept.
    const attributes: ImapToken[] = [
      atom('UID'),
      ...[...group.mime].map((section) => atom('BODY.PEEK', `${section}.MIME`)),
      ...[...group.ends].map((key) => {
        const [section, start] = key.split('@') as [string, string];
        return atom('BODY.PEEK', section, [Number(start), END_OCTETS]);
      }),
      ...[...group.contents].map(([section, max]) => atom('BODY.PEEK', section, [0, max])),
    ];
    // imapflow's fetch() keeps no MIME header keys apart from their parts: the command goes through its exec(), and
    // the answers are read here.
    const exec = (this.client as unknown as { exec: ImapExec }).exec.bind(this.client);
    const response = await exec('UID FETCH', [{ type: 'SEQUENCE', value: [...byUid.keys()].join(',') }, attributes], {
      untagged: {
        FETCH: async (untagged) => {
          const fields = fetchFields(untagged.attributes?.[1]);
          const member = byUid.get(Number(fields.get('UID')?.text));
          if (!member) return;
          const message: MessageParts = withFields(member.summary, {
            header: member.header,
            structure: member.structure,
            mimeHeaders: new Map<string, Uint8Array>(),
            contents: new Map<string, Uint8Array>(),
            ends: new Map<string, Uint8Array>(),
            bytesRead: member.bytesRead,
          });
          for (const field of fields.values()) message.bytesRead += field.bytes?.length ?? 0;
          const bytes = (name: string): Uint8Array => fields.get(name)?.bytes ?? new Uint8Array();
          for (const section of member.mime) {
            const header = fields.get(`BODY[${section}.MIME]`)?.bytes;
            if (header) message.mimeHeaders.set(section, header);
          }
          for (const [section, max] of member.contents) {
            const content = bytes(`BODY[${section}]<0>`);
            message.contents.set(section, content.length > max ? content.subarray(0, max) : content);
          }
          for (const [section, start] of member.ends) {
            const end = bytes(`BODY[${section}]<${start}>`);
            message.ends.set(section, end.length > END_OCTETS ? end.subarray(end.length - END_OCTETS) : end);
          }
          out.push(message);
        },
      },
    });
    response.next();
    return out;
  }

  async fetchSummaries(folder: string, uids: number[]): Promise<MessageSummary[]> {
    if (uids.length === 0) return [];
    return this.withMailbox(folder, () => this.fetchSummaryRange(uids.join(',')));
  }

  async fetchHeaderFields(
    folder: string,
    fields: string[],
    uids?: number[],
  ): Promise<{ uid: number; headers: Uint8Array }[]> {
    if (uids?.length === 0) return [];
    return this.withMailbox(folder, async () => {
      const mailbox = this.client.mailbox;
      if (uids === undefined && mailbox && !mailbox.exists) return [];
      const out: { uid: number; headers: Uint8Array }[] = [];
      // BODY.PEEK[HEADER.FIELDS (...)]: the fields only, and the message stays unread.
      for await (const m of this.client.fetch(
        uids ? uids.join(',') : '1:*',
        { uid: true, headers: fields },
        { uid: true },
      ))
        out.push({ uid: m.uid, headers: new Uint8Array(m.headers ?? new Uint8Array()) });
      return out;
    });
  }

  async setFlags(folder: string, uid: number, add: string[], remove: string[]): Promise<void> {
    this.readAhead.delete(folder);
    await this.withMailbox(folder, async () => {
      if (add.length) await this.client.messageFlagsAdd(String(uid), add, { uid: true });
      if (remove.length) await this.client.messageFlagsRemove(String(uid), remove, { uid: true });
    });
  }

  async moveMessages(folder: string, uids: number[], destination: string): Promise<Map<number, number>> {
    this.readAhead.delete(folder);
    return this.withMailbox(folder, async () => {
      const result = await this.client.messageMove(uids.join(','), destination, { uid: true });
      const map = new Map<number, number>();
      const uidMap = result ? result.uidMap : undefined;
      if (uidMap) for (const [from, to] of uidMap) map.set(from, to);
      return map;
    });
  }

  async expungeMessages(folder: string, uids: number[]): Promise<void> {
    this.readAhead.delete(folder);
    if (uids.length === 0) return;
    await this.withMailbox(folder, async () => {
      await this.client.messageDelete(uids.join(','), { uid: true });
    });
  }

  async findByMessageId(folder: string, messageId: string): Promise<number[]> {
    return this.withMailbox(
      folder,
      async () => (await this.client.search({ header: { 'message-id': messageId } }, { uid: true })) || [],
    );
  }

  async findByHeaders(
    folder: string,
    terms: readonly { field: string; value: string }[],
    range: { since?: Date | undefined; before?: Date | undefined } = {},
  ): Promise<number[]> {
    if (terms.length === 0) return [];
    return this.withMailbox(folder, async () => {
      const criteria = {
        or: terms.map((t) => ({ header: { [t.field]: t.value } })),
        ...(range.since ? { since: range.since } : {}),
        ...(range.before ? { before: range.before } : {}),
      };
      return ((await this.client.search(criteria, { uid: true })) || []).sort((a, b) => a - b);
    });
  }

  async appendMessage(folder: string, source: Uint8Array, flags: string[]): Promise<number | undefined> {
    const result = await this.client.append(folder, Buffer.from(source), flags);
    return result && typeof result === 'object' && result.uid !== undefined ? result.uid : undefined;
  }

  async search(query: MailSearchQuery): Promise<{ folder: string; uid: number; internalDate: Date }[]> {
    const folders = query.folders.length ? query.folders : (await this.listFolders()).map((f) => f.ref);
    const criteria = searchCriteria(query);
    const results: { folder: string; uid: number; internalDate: Date }[] = [];
    for (const folder of folders) {
      // A folder another client deleted since the caller listed it has nothing to find.
      const found = await this.withMailbox(folder, async () => {
        const uids = (await this.client.search(criteria, { uid: true })) || [];
        return uids.length ? this.fetchSummaryRange(uids.join(',')) : [];
      }).catch((err: unknown) => {
        if (isMissingMailbox(err)) return [];
        throw err;
      });
      for (const m of found) results.push({ folder, uid: m.uid, internalDate: m.internalDate });
    }
    return results.sort((a, b) => b.internalDate.getTime() - a.internalDate.getTime());
  }

  async close(): Promise<void> {
    this.readAhead.clear();
    this.client.off('expunge', this.onExpunge);
    // A connection that saw a failed command may be in any state: only a clean one goes back for reuse.
    this.sessions.release(this.client, !this.failed);
  }

  private async withMailbox<T>(folder: string, work: () => Promise<T>): Promise<T> {
    try {
      const lock = await this.client.getMailboxLock(folder);
      try {
        return await work();
      } finally {
        lock.release();
      }
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  private async fetchSummaryRange(range: string, changedSince?: bigint): Promise<MessageSummary[]> {
    const out: MessageSummary[] = [];
    const options = changedSince !== undefined ? { uid: true, changedSince } : { uid: true };
    for await (const m of this.client.fetch(range, this.summaryQuery(), options)) out.push(toSummary(m));
    return out;
  }

  /** The UIDs of messages that arrived since a date, as a UID set ('' when none). */
  private async uidsSince(since: Date): Promise<string> {
    const uids = (await this.client.search({ since }, { uid: true })) || [];
    return uids.join(',');
  }

  private async childPath(parentRef: string | undefined, name: string): Promise<string> {
    if (!parentRef) return name;
    const parent = (await this.client.list()).find((m) => m.path === parentRef);
    return `${parentRef}${parent?.delimiter ?? '/'}${name}`;
  }

  private async folderAt(path: string): Promise<BackendFolder> {
    const found = (await this.listFolders()).find((f) => f.ref === path);
    if (!found) throw new Error(`folder ${path} not found after change`);
    return found;
  }
}

/**
 * UID SEARCH criteria for a query. Free text is looked for where a person would: subject, body and the sender and
 * recipient headers (not TEXT, which also matches Received, Message-ID and every other header). imapflow nests an
 * `or` list into binary ORs (`OR OR SUBJECT x BODY x OR FROM x TO x CC x`), and sends non-ASCII text as a UTF-8
 * literal. SINCE/BEFORE compare dates, not times (with WITHIN, imapflow uses YOUNGER/OLDER); callers that need the
 * exact time compare INTERNALDATE themselves.
 */
function searchCriteria(query: MailSearchQuery): SearchObject {
  const criteria: SearchObject = {};
  const text = query.freeText?.trim();
  if (text) criteria.or = [{ subject: text }, { body: text }, { from: text }, { to: text }, { cc: text }];
  if (query.since) criteria.since = query.since;
  if (query.before) criteria.before = query.before;
  return Object.keys(criteria).length ? criteria : { all: true };
}

/** imapflow marks a SELECT of a mailbox that is not there; Dovecot also says [NONEXISTENT]. */
function isMissingMailbox(err: unknown): boolean {
  const e = err as { mailboxMissing?: boolean; serverResponseCode?: string };
  return e.mailboxMissing === true || e.serverResponseCode === 'NONEXISTENT';
}

function toFolder(m: ListResponse): BackendFolder {
  const special = m.specialUse ?? (m.path.toUpperCase() === 'INBOX' ? '\\Inbox' : undefined);
  const type = (special && SPECIAL_USE_TYPES[special]) || FolderType.UserMail;
  const folder: BackendFolder = {
    backend: 'imap',
    ref: m.path,
    parentRef: m.parentPath || undefined,
    displayName: type === FolderType.Inbox ? 'Inbox' : m.name,
    type,
    itemClass: 'Email',
  };
  const uidValidity = m.status?.uidValidity;
  if (uidValidity !== undefined) folder.identity = String(uidValidity);
  return folder;
}

function toSummary(m: FetchMessageObject): MessageSummary {
  return {
    uid: m.uid,
    flags: new Set(m.flags ?? []),
    internalDate: m.internalDate instanceof Date ? m.internalDate : new Date(m.internalDate ?? 0),
    size: m.size ?? 0,
    modSeq: m.modseq !== undefined ? BigInt(m.modseq) : undefined,
  };
}

/** A token of imapflow's command and response syntax (its exec() takes and gives these). */
interface ImapToken {
  type: string;
  value: unknown;
  section?: ImapToken[];
  partial?: number[];
}
type ImapExec = (
  command: string,
  attributes: unknown[],
  options: { untagged: Record<string, (untagged: { attributes?: unknown[] }) => Promise<void>> },
) => Promise<{ next(): void }>;

/** A window of at most this many messages is read whole where a message is at most SMALL_MESSAGE octets. */
const SMALL_WINDOW = 4;
const SMALL_MESSAGE = 16 * 1024;
/**
 * Octets a FETCH may read that its messages do not need (the union's items they lack), as a share of what they
 * need, before messages of another shape are given a FETCH of their own; and the least allowed, so that a small
 * window still goes in one round trip. Answering an item a message does not have costs the item's name and an empty
 * string.
 */
const WASTE_SHARE = 0.05;
const WASTE_FLOOR = 4096;
const EMPTY_ITEM = 24;

/** What one message needs read, by section: MIME headers, contents (octets from the start), ends (their start). */
interface PlannedRead {
  summary: MessageSummary;
  header: Uint8Array;
  structure: MimePart;
  /** Octets read for it so far (its header fields, and a first chunk of its source in a small window). */
  bytesRead: number;
  parts: Map<string, MimePart>;
  mime: string[];
  contents: Map<string, number>;
  ends: Map<string, number>;
  /** Octets it needs. */
  needed: number;
}

/** The items of one FETCH and the messages it reads. */
interface ReadGroup {
  members: PlannedRead[];
  mime: Set<string>;
  /** Section → octets to read from its start (the most any member needs). */
  contents: Map<string, number>;
  /** `section@start`. */
  ends: Set<string>;
}

function plannedRead(
  summary: MessageSummary,
  header: Uint8Array,
  structure: MimePart,
  request: Exclude<PartsRequest, 'whole'>,
  alreadyRead: number,
): PlannedRead {
  const parts = new Map<string, MimePart>();
  const mime: string[] = [];
  const walk = (part: MimePart): void => {
    parts.set(part.section, part);
    if (part.section !== '' && structure.children) mime.push(part.section);
    for (const child of part.children ?? []) walk(child);
  };
  walk(structure);
  const contents = new Map<string, number>();
  let needed = header.length;
  for (const c of request.contents) {
    const size = parts.get(c.section)?.size ?? 0;
    // A whole part is read as a range as long as it: the same item then serves messages wanting less of it.
    const max = Math.max(END_OCTETS, c.maxBytes === undefined ? size : Math.min(size, c.maxBytes));
    contents.set(c.section, max);
    needed += max;
  }
  const ends = new Map<string, number>();
  for (const section of request.ends ?? []) {
    if (contents.has(section)) continue;
    ends.set(section, Math.max(0, (parts.get(section)?.size ?? 0) - END_OCTETS));
    needed += END_OCTETS;
  }
  return { summary, header, structure, bytesRead: header.length + alreadyRead, parts, mime, contents, ends, needed };
}

function groupOf(members: PlannedRead[]): ReadGroup {
  const group: ReadGroup = { members, mime: new Set(), contents: new Map(), ends: new Set() };
  for (const m of members) {
    for (const section of m.mime) group.mime.add(section);
    for (const [section, max] of m.contents)
      group.contents.set(section, Math.max(group.contents.get(section) ?? 0, max));
    for (const [section, start] of m.ends) group.ends.add(`${section}@${start}`);
  }
  return group;
}

/** Octets a group's FETCH reads for its members beyond what they need. */
function wasteOf(group: ReadGroup): number {
  let waste = 0;
  for (const m of group.members) {
    for (const section of group.mime) if (!m.parts.has(section)) waste += EMPTY_ITEM;
    for (const [section, max] of group.contents) {
      const part = m.parts.get(section);
      const own = m.contents.get(section);
      if (own !== undefined) waste += Math.min(part?.size ?? 0, max) - Math.min(part?.size ?? 0, own);
      // A multipart's content (its children together) has no size in BODYSTRUCTURE: counted as all of the range.
      else if (part) waste += EMPTY_ITEM + (part.children ? max : Math.min(part.size, max));
      else waste += EMPTY_ITEM;
    }
    for (const key of group.ends) {
      const [section, start] = key.split('@') as [string, string];
      if (m.ends.get(section) !== Number(start)) waste += EMPTY_ITEM + END_OCTETS;
    }
  }
  return waste;
}

/**
 * The FETCHes for a window: messages that need the same items share one (a part read whole counts as the same item
 * whatever its size); then groups are joined, the cheapest join first, while what the joined FETCHes read beyond what
 * their messages need stays within WASTE_SHARE of the window's needs (at least WASTE_FLOOR).
 */
function groupReads(planned: PlannedRead[]): ReadGroup[] {
  if (planned.length === 0) return [];
  const byItems = new Map<string, PlannedRead[]>();
  for (const m of planned) {
    const contents = [...m.contents].map(([section, max]) =>
      max >= (m.parts.get(section)?.size ?? 0) ? section : `${section}<${max}>`,
    );
    const key = `${m.mime.join(',')}|${contents.join(',')}|${[...m.ends.keys()].join(',')}`;
    const members = byItems.get(key);
    if (members) members.push(m);
    else byItems.set(key, [m]);
  }
  type Scored = { group: ReadGroup; waste: number };
  const groups: (Scored | undefined)[] = [...byItems.values()].map((members) => {
    const group = groupOf(members);
    return { group, waste: wasteOf(group) };
  });
  const budget = Math.max(WASTE_FLOOR, WASTE_SHARE * planned.reduce((n, m) => n + m.needed, 0));
  let spent = groups.reduce((n, g) => n + g!.waste, 0);
  // Each pair's join, kept until one of the two is joined to another.
  const joins = new Map<string, Scored & { added: number }>();
  const join = (i: number, j: number): Scored & { added: number } => {
    const key = `${i},${j}`;
    let found = joins.get(key);
    if (!found) {
      const group = groupOf([...groups[i]!.group.members, ...groups[j]!.group.members]);
      const waste = wasteOf(group);
      found = { group, waste, added: waste - groups[i]!.waste - groups[j]!.waste };
      joins.set(key, found);
    }
    return found;
  };
  let left = groups.length;
  while (left > 1) {
    let best: { i: number; j: number; joined: Scored & { added: number } } | undefined;
    for (let i = 0; i < groups.length; i++) {
      if (!groups[i]) continue;
      for (let j = i + 1; j < groups.length; j++) {
        if (!groups[j]) continue;
        const joined = join(i, j);
        if (!best || joined.added < best.joined.added) best = { i, j, joined };
      }
    }
    if (!best || spent + best.joined.added > budget) break;
    spent += best.joined.added;
    groups[best.i] = undefined;
    groups[best.j] = undefined;
    groups.push({ group: best.joined.group, waste: best.joined.waste });
    left--;
  }
  return groups.filter((g): g is Scored => g !== undefined).map((g) => g.group);
}

/** A FETCH response's items by name (`UID`, `BODY[1.MIME]`, `BODY[1.2]`, `BODY[2]<100>`), as text or bytes. */
function fetchFields(list: unknown): Map<string, { text?: string; bytes?: Uint8Array }> {
  const out = new Map<string, { text?: string; bytes?: Uint8Array }>();
  if (!Array.isArray(list)) return out;
  for (let i = 0; i + 1 < list.length; i += 2) {
    const key = list[i] as ImapToken;
    const value = list[i + 1] as ImapToken | null;
    if (!key || typeof key.value !== 'string') continue;
    const section = key.section?.map((t) => String(t.value)).join(' ');
    const origin = key.partial?.[0];
    const name =
      key.value.toUpperCase() +
      (section !== undefined ? `[${section.toUpperCase()}]` : '') +
      (origin !== undefined ? `<${origin}>` : '');
    if (value && value.type === 'LITERAL' && value.value instanceof Uint8Array) {
      out.set(name, { bytes: new Uint8Array(value.value) });
    } else if (value && typeof value.value === 'string') {
      out.set(name, value.type === 'STRING' ? { bytes: new TextEncoder().encode(value.value) } : { text: value.value });
    } else {
      out.set(name, {});
    }
  }
  return out;
}

/** imapflow's BODYSTRUCTURE object as a MimePart; a single-part message's body is section '1' (RFC 3501 §6.4.5). */
function toMimePart(s: MessageStructureObject, fallbackSection: string): MimePart {
  const lower = (record: Record<string, string> | undefined): Record<string, string> =>
    Object.fromEntries(Object.entries(record ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
  const children = s.childNodes?.length ? s.childNodes : undefined;
  const section = s.part ?? (children ? fallbackSection : '1');
  const part: MimePart = {
    section,
    type: (s.type ?? 'text/plain').toLowerCase(),
    parameters: lower(s.parameters),
    encoding: (s.encoding ?? '7bit').toLowerCase(),
    size: s.size ?? 0,
  };
  if (s.lineCount !== undefined) part.lines = s.lineCount;
  if (s.disposition) part.disposition = s.disposition.toLowerCase();
  if (s.dispositionParameters) part.dispositionParameters = lower(s.dispositionParameters);
  if (s.id) part.id = s.id;
  if (children) part.children = children.map((c) => toMimePart(c, section));
  return part;
}

function wholeMessage(summary: MessageSummary, source: Uint8Array): MessageParts {
  return withFields(summary, {
    source,
    header: new Uint8Array(),
    structure: { section: '1', type: 'text/plain', parameters: {}, encoding: '7bit', size: 0 },
    mimeHeaders: new Map<string, Uint8Array>(),
    contents: new Map<string, Uint8Array>(),
    ends: new Map<string, Uint8Array>(),
    bytesRead: source.length,
  });
}

/** A command the server answered NO or BAD to (not a broken connection): the caller reads those messages whole. */
function rejectedByServer(err: unknown): undefined {
  const e = err as { responseStatus?: string };
  if (e.responseStatus === 'NO' || e.responseStatus === 'BAD') return undefined;
  throw err;
}

function sortByRequest<T extends { uid: number }>(items: T[], uids: number[]): T[] {
  const order = new Map(uids.map((uid, i) => [uid, i]));
  return items.sort((a, b) => (order.get(a.uid) ?? 0) - (order.get(b.uid) ?? 0));
}
