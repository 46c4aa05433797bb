/**
 * The MailBackend contract (src/backends/types.ts): one suite a mail backend runs to show it behaves as the commands
 * and the Sync engine expect. test/backends/imap-mail.test.ts runs it against ImapMailBackend on the test Dovecot;
 * a second implementation runs it the same way with its own `account()`.
 *
 * Everything here goes through MailBackend alone: what "another client" does is done through a second session of
 * the same account, so the suite needs nothing of the backend's protocol.
 */
import { describe, expect, it } from 'vitest';
import { FolderNotFoundError, FolderType, type MailBackend } from '../../src/backends/types.ts';

export interface MailContractOptions {
  /** A new account, empty but for its standard folders (an Inbox at least); `open` starts a session of it. */
  account(): Promise<{ open(): Promise<MailBackend> }>;
}

let counter = 0;
/** A message with a Message-ID of its own; `subject` also goes into the body, so free-text search finds either. */
function message(subject: string, body = 'Hello there.'): { source: Uint8Array; messageId: string } {
  counter += 1;
  const messageId = `<contract-${Date.now().toString(36)}-${counter}@example.test>`;
  const text = [
    'From: Bob <bob@example.test>',
    'To: Alice <alice@example.test>',
    `Subject: ${subject}`,
    `Message-ID: ${messageId}`,
    'Date: Mon, 07 Dec 2026 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    body,
    '',
  ].join('\r\n');
  return { source: new TextEncoder().encode(text), messageId };
}

const DAY_MS = 86_400_000;

export function mailBackendContract(name: string, options: MailContractOptions): void {
  /** Runs `work` with a session of a new account, closed afterwards whatever happens. */
  async function withAccount<T>(
    work: (mail: MailBackend, other: () => Promise<MailBackend>) => Promise<T>,
  ): Promise<T> {
    const account = await options.account();
    const mail = await account.open();
    const others: MailBackend[] = [];
    try {
      return await work(mail, async () => {
        const other = await account.open();
        others.push(other);
        return other;
      });
    } finally {
      await Promise.all([mail, ...others].map((m) => m.close()));
    }
  }

  async function inboxOf(mail: MailBackend): Promise<string> {
    const inbox = (await mail.listFolders()).find((f) => f.type === FolderType.Inbox);
    expect(inbox).toBeDefined();
    return inbox!.ref;
  }

  /** Appends and returns the message's UID (found by Message-ID when the backend does not tell it). */
  async function append(
    mail: MailBackend,
    folder: string,
    subject: string,
    flags: string[] = [],
  ): Promise<{ uid: number; source: Uint8Array; messageId: string }> {
    const m = message(subject);
    const told = await mail.appendMessage(folder, m.source, flags);
    const found = await mail.findByMessageId(folder, m.messageId);
    expect(found).toHaveLength(1);
    if (told !== undefined) expect(told).toBe(found[0]);
    return { uid: found[0]!, ...m };
  }

  describe(`MailBackend contract: ${name}`, () => {
    describe('folders', () => {
      it('lists the Inbox as an Email folder of type Inbox, once', async () => {
        await withAccount(async (mail) => {
          const folders = await mail.listFolders();
          const inboxes = folders.filter((f) => f.type === FolderType.Inbox);
          expect(inboxes).toHaveLength(1);
          expect(inboxes[0]).toMatchObject({ itemClass: 'Email', displayName: 'Inbox', parentRef: undefined });
          expect(new Set(folders.map((f) => f.ref)).size).toBe(folders.length);
        });
      });

      it('creates folders at the top and under another, as listFolders then shows them', async () => {
        await withAccount(async (mail) => {
          const top = await mail.createFolder(undefined, 'Projects');
          const sub = await mail.createFolder(top.ref, 'Alpha');
          expect(top).toMatchObject({
            displayName: 'Projects',
            parentRef: undefined,
            type: FolderType.UserMail,
            itemClass: 'Email',
          });
          expect(sub).toMatchObject({ displayName: 'Alpha', parentRef: top.ref, type: FolderType.UserMail });
          const listed = await mail.listFolders();
          expect(listed).toContainEqual(top);
          expect(listed).toContainEqual(sub);
        });
      });

      it('renames and moves a folder with its messages; its identity stays', async () => {
        await withAccount(async (mail) => {
          const folder = await mail.createFolder(undefined, 'Old name');
          const parent = await mail.createFolder(undefined, 'Parent');
          const { uid } = await append(mail, folder.ref, 'kept across the rename');
          const renamed = await mail.renameFolder(folder.ref, parent.ref, 'New name');
          expect(renamed).toMatchObject({ displayName: 'New name', parentRef: parent.ref });
          if (folder.identity !== undefined) expect(renamed.identity).toBe(folder.identity);
          const refs = (await mail.listFolders()).map((f) => f.ref);
          expect(refs).toContain(renamed.ref);
          expect(refs).not.toContain(folder.ref);
          expect(await mail.listUids(renamed.ref)).toEqual([uid]);
        });
      });

      it('deletes a folder with every folder under it', async () => {
        await withAccount(async (mail) => {
          const top = await mail.createFolder(undefined, 'Doomed');
          const sub = await mail.createFolder(top.ref, 'Child');
          await mail.createFolder(sub.ref, 'Grandchild');
          const kept = await mail.createFolder(undefined, 'Kept');
          await mail.deleteFolder(top.ref);
          const refs = (await mail.listFolders()).map((f) => f.ref);
          expect(refs.filter((r) => r === top.ref || r.startsWith(top.ref))).toEqual([]);
          expect(refs).toContain(kept.ref);
        });
      });
    });

    describe('status', () => {
      it('counts the messages and names the next UID', async () => {
        await withAccount(async (mail) => {
          const inbox = await inboxOf(mail);
          const empty = await mail.status(inbox);
          expect(empty.messages).toBe(0);
          const { uid } = await append(mail, inbox, 'one');
          const after = await mail.status(inbox);
          expect(after).toMatchObject({ messages: 1, uidValidity: empty.uidValidity });
          expect(after.uidNext).toBeGreaterThan(uid);
          if (empty.highestModSeq !== undefined) expect(after.highestModSeq! > empty.highestModSeq).toBe(true);
        });
      });

      it('rejects with FolderNotFoundError for a missing folder, and the session still closes', async () => {
        await withAccount(async (mail) => {
          await expect(mail.status('No such folder')).rejects.toBeInstanceOf(FolderNotFoundError);
        });
      });

      it('sees a folder as it is now: deleted and created again, it has a new uidValidity', async () => {
        await withAccount(async (mail, other) => {
          const folder = await mail.createFolder(undefined, 'Phoenix');
          const before = await mail.status(folder.ref);
          const elsewhere = await other();
          await elsewhere.deleteFolder(folder.ref);
          await expect(mail.status(folder.ref)).rejects.toBeInstanceOf(FolderNotFoundError);
          await elsewhere.createFolder(undefined, 'Phoenix');
          expect((await mail.status(folder.ref)).uidValidity).not.toBe(before.uidValidity);
        });
      });
    });

    describe('messages', () => {
      it('appends with flags, and fetches the source byte for byte', async () => {
        await withAccount(async (mail) => {
          const inbox = await inboxOf(mail);
          const m = await append(mail, inbox, 'append me', ['\\Seen']);
          const [fetched] = await mail.fetchMessages(inbox, [m.uid]);
          expect(fetched!.uid).toBe(m.uid);
          expect(new TextDecoder().decode(fetched!.source)).toBe(new TextDecoder().decode(m.source));
          expect([...fetched!.flags]).toContain('\\Seen');
          expect(fetched!.size).toBe(m.source.length);
          expect(Math.abs(fetched!.internalDate.getTime() - Date.now())).toBeLessThan(DAY_MS);
        });
      });

      it('fetches in the order asked and leaves out UIDs that are not there', async () => {
        await withAccount(async (mail) => {
          const inbox = await inboxOf(mail);
          const a = await append(mail, inbox, 'a');
          const b = await append(mail, inbox, 'b');
          const missing = b.uid + 100;
          expect((await mail.fetchMessages(inbox, [b.uid, missing, a.uid])).map((m) => m.uid)).toEqual([b.uid, a.uid]);
          expect((await mail.fetchSummaries(inbox, [a.uid, missing])).map((m) => m.uid)).toEqual([a.uid]);
          expect(await mail.fetchMessages(inbox, [])).toEqual([]);
        });
      });

      it('lists UIDs and summaries, all or by arrival date', async () => {
        await withAccount(async (mail) => {
          const inbox = await inboxOf(mail);
          const a = await append(mail, inbox, 'a');
          const b = await append(mail, inbox, 'b');
          const yesterday = new Date(Date.now() - DAY_MS);
          const tomorrow = new Date(Date.now() + DAY_MS);
          expect(await mail.listUids(inbox)).toEqual([a.uid, b.uid]);
          expect(await mail.listUids(inbox, yesterday)).toEqual([a.uid, b.uid]);
          expect(await mail.listUids(inbox, tomorrow)).toEqual([]);
          expect(await mail.listUids(inbox, undefined, yesterday)).toEqual([]);
          expect((await mail.listMessages(inbox)).map((m) => m.uid).sort((x, y) => x - y)).toEqual([a.uid, b.uid]);
          expect(await mail.listMessages(inbox, tomorrow)).toEqual([]);
        });
      });

      it('adds and removes flags', async () => {
        await withAccount(async (mail) => {
          const inbox = await inboxOf(mail);
          const { uid } = await append(mail, inbox, 'flag me', ['\\Seen']);
          await mail.setFlags(inbox, uid, ['\\Flagged'], ['\\Seen']);
          const [summary] = await mail.fetchSummaries(inbox, [uid]);
          expect(summary!.flags.has('\\Flagged')).toBe(true);
          expect(summary!.flags.has('\\Seen')).toBe(false);
        });
      });

      it('moves messages to another folder, saying where each went when it can', async () => {
        await withAccount(async (mail) => {
          const inbox = await inboxOf(mail);
          const archive = await mail.createFolder(undefined, 'Archive');
          const a = await append(mail, inbox, 'move a');
          const b = await append(mail, inbox, 'move b');
          const moved = await mail.moveMessages(inbox, [a.uid, b.uid], archive.ref);
          expect(await mail.listUids(inbox)).toEqual([]);
          const there = await mail.listUids(archive.ref);
          expect(there).toHaveLength(2);
          for (const [from, to] of moved) {
            expect([a.uid, b.uid]).toContain(from);
            expect(there).toContain(to);
          }
          expect(await mail.findByMessageId(archive.ref, a.messageId)).toHaveLength(1);
        });
      });

      it('expunges for good, and finds messages by Message-ID', async () => {
        await withAccount(async (mail) => {
          const inbox = await inboxOf(mail);
          const a = await append(mail, inbox, 'expunge a');
          const b = await append(mail, inbox, 'keep b');
          await mail.expungeMessages(inbox, [a.uid]);
          await mail.expungeMessages(inbox, []);
          expect(await mail.listUids(inbox)).toEqual([b.uid]);
          expect(await mail.findByMessageId(inbox, a.messageId)).toEqual([]);
          expect(await mail.findByMessageId(inbox, b.messageId)).toEqual([b.uid]);
          expect((await mail.status(inbox)).messages).toBe(1);
        });
      });

      it('finds messages by any of several header fields containing a value, within a date range', async () => {
        await withAccount(async (mail) => {
          const inbox = await inboxOf(mail);
          const root = await append(mail, inbox, 'thread root');
          const replyId = `<reply-${root.uid}-${Date.now().toString(36)}@example.test>`;
          await mail.appendMessage(
            inbox,
            new TextEncoder().encode(
              [
                'From: Alice <alice@example.test>',
                'Subject: Re: thread root',
                `Message-ID: ${replyId}`,
                `In-Reply-To: ${root.messageId}`,
                `References: ${root.messageId}`,
                'Date: Mon, 07 Dec 2026 11:00:00 +0000',
                '',
                'Reply.',
                '',
              ].join('\r\n'),
            ),
            [],
          );
          const [reply] = await mail.findByMessageId(inbox, replyId);
          const other = await append(mail, inbox, 'another thread');
          const bare = root.messageId.slice(1, -1);
          const terms = ['references', 'in-reply-to', 'message-id'].map((field) => ({ field, value: bare }));
          const found = await mail.findByHeaders(inbox, terms);
          expect(found).toEqual([root.uid, reply!].sort((a, b) => a - b));
          expect(found).not.toContain(other.uid);
          expect(await mail.findByHeaders(inbox, terms.slice(0, 2))).toEqual([reply]);
          expect(await mail.findByHeaders(inbox, [])).toEqual([]);
          // Appended today: nothing before yesterday, everything since.
          expect(await mail.findByHeaders(inbox, terms, { before: new Date(Date.now() - DAY_MS) })).toEqual([]);
          expect(await mail.findByHeaders(inbox, terms, { since: new Date(Date.now() - DAY_MS) })).toEqual(found);
        });
      });
    });

    describe('changesSince', () => {
      it("reports another client's flag changes, arrivals and expunges since a modseq", async () => {
        await withAccount(async (mail, other) => {
          const inbox = await inboxOf(mail);
          const flagged = await append(mail, inbox, 'to be flagged');
          const doomed = await append(mail, inbox, 'to be expunged');
          const untouched = await append(mail, inbox, 'untouched');
          const before = await mail.status(inbox);
          if (before.highestModSeq === undefined) {
            // No modseqs: the caller compares UID sets instead.
            expect(await mail.changesSince(inbox, 1n)).toBeUndefined();
            return;
          }
          const elsewhere = await other();
          await elsewhere.setFlags(inbox, flagged.uid, ['\\Flagged'], []);
          await elsewhere.expungeMessages(inbox, [doomed.uid]);
          const arrived = await append(elsewhere, inbox, 'arrived');

          const changes = (await mail.changesSince(inbox, before.highestModSeq))!;
          const changed = changes.changed.map((m) => m.uid);
          expect(changed).toContain(flagged.uid);
          expect(changed).toContain(arrived.uid);
          expect(changed).not.toContain(untouched.uid);
          expect(changes.changed.find((m) => m.uid === flagged.uid)!.flags.has('\\Flagged')).toBe(true);
          if (changes.vanished !== undefined) expect(changes.vanished).toEqual([doomed.uid]);
          expect(changes.status).toMatchObject({ messages: 3, uidValidity: before.uidValidity });
          expect(changes.status.highestModSeq! > before.highestModSeq).toBe(true);

          // Nothing since the new modseq.
          const none = (await mail.changesSince(inbox, changes.status.highestModSeq!))!;
          expect(none.changed).toEqual([]);
          if (none.vanished !== undefined) expect(none.vanished).toEqual([]);
        });
      });

      it('answers the same with the UIDNEXT/count hint when only new mail arrived', async () => {
        await withAccount(async (mail, other) => {
          const inbox = await inboxOf(mail);
          await append(mail, inbox, 'old');
          const before = await mail.status(inbox);
          if (before.highestModSeq === undefined) return;
          const elsewhere = await other();
          const a = await append(elsewhere, inbox, 'new a');
          const b = await append(elsewhere, inbox, 'new b');
          // As the Sync engine does: status() first, which is where a session sees other clients' changes from.
          await mail.status(inbox);
          const hinted = (await mail.changesSince(inbox, before.highestModSeq, undefined, {
            uidNext: before.uidNext,
            messages: before.messages,
          }))!;
          const plain = (await mail.changesSince(inbox, before.highestModSeq))!;
          expect(hinted.changed.map((m) => m.uid).sort((x, y) => x - y)).toEqual([a.uid, b.uid]);
          expect(plain.changed.map((m) => m.uid).sort((x, y) => x - y)).toEqual([a.uid, b.uid]);
          expect(hinted.status).toEqual(plain.status);
        });
      });

      it('leaves out changes of messages that arrived before `since`', async () => {
        await withAccount(async (mail, other) => {
          const inbox = await inboxOf(mail);
          const m = await append(mail, inbox, 'in the window?');
          const before = await mail.status(inbox);
          if (before.highestModSeq === undefined) return;
          await (await other()).setFlags(inbox, m.uid, ['\\Seen'], []);
          const later = (await mail.changesSince(inbox, before.highestModSeq, new Date(Date.now() + DAY_MS)))!;
          expect(later.changed).toEqual([]);
          const earlier = (await mail.changesSince(inbox, before.highestModSeq, new Date(Date.now() - DAY_MS)))!;
          expect(earlier.changed.map((c) => c.uid)).toEqual([m.uid]);
        });
      });
    });

    describe('search', () => {
      it('finds free text in subject and body, newest first, across folders; a missing one finds nothing', async () => {
        await withAccount(async (mail) => {
          const inbox = await inboxOf(mail);
          const other = await mail.createFolder(undefined, 'Elsewhere');
          const word = `zebra${Date.now().toString(36)}`;
          await mail.appendMessage(inbox, message(`About ${word}`).source, []);
          await new Promise((r) => setTimeout(r, 1_100));
          await mail.appendMessage(other.ref, message('Unrelated subject', `The ${word} is here.`).source, []);
          await mail.appendMessage(inbox, message('Nothing to see').source, []);

          const found = await mail.search({ folders: [], freeText: word });
          expect(found.map((r) => r.folder)).toEqual([other.ref, inbox]);
          expect(found[0]!.internalDate.getTime()).toBeGreaterThanOrEqual(found[1]!.internalDate.getTime());
          expect(await mail.search({ folders: ['No such folder', inbox], freeText: word })).toHaveLength(1);
          expect(await mail.search({ folders: [inbox], freeText: word, since: new Date(Date.now() + DAY_MS) })).toEqual(
            [],
          );
        });
      });
    });
  });
}
