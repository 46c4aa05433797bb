/**
 * Drafts sync (16.0): a device adds and edits drafts through Sync, adds and deletes their attachments, and sends them
 * with email2:Send. Checked on both sides: the device's answers and the mailboxes over IMAP (Drafts, Sent, the
 * recipient's INBOX through the test Postfix).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, readdirSync } from 'node:fs';
import { nodemailerSubmitter } from '../../../src/backends/smtp/nodemailer.ts';
import type { MailSubmitter } from '../../../src/backends/smtp/types.ts';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { child, children, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type SyncRound, type TestServer } from '../../device/device.ts';
import { createUser, makeMessage, seedMailbox } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';
import { openSqliteStateStore } from '../../../src/state/sqlite-node.ts';
import { failingStore } from '../../faults/failing-store.ts';
import { compose, composeStatus, readFolder, waitForStored } from './compose-helpers.ts';

const services = inject('services');
// Without Postfix these tests fail (issue 17, item 26): a green run means sending was tested.
const describeSmtp = describe;

let server: TestServer;

beforeAll(() => {
  server = testServer(services, { PROVISIONING: 'loose' });
});

/** A device that has done FolderSync and the first Sync of its Drafts folder; returns it and the folder's ServerId. */
async function draftsDevice(user: TestUser, version = '16.0'): Promise<{ device: TestDevice; drafts: string }> {
  const device = new TestDevice(server, user, undefined, version);
  await device.folderSync();
  const drafts = device.folderByType(FolderType.Drafts).serverId;
  await device.syncUntilDone(drafts);
  return { device, drafts };
}

function title(what: string): string {
  return `${what} ${randomBytes(4).toString('hex')}`;
}

/** ApplicationData of a draft, as a phone sends it. */
function draftData(o: {
  to?: string;
  cc?: string;
  bcc?: string;
  subject?: string;
  body?: string;
  html?: boolean;
  importance?: number;
  attachments?: WbxmlElement[];
}): WbxmlElement {
  return el('AirSync', 'ApplicationData', [
    o.to !== undefined && el('Email', 'To', o.to),
    o.cc !== undefined && el('Email', 'Cc', o.cc),
    o.bcc !== undefined && el('Email2', 'Bcc', o.bcc),
    o.subject !== undefined && el('Email', 'Subject', o.subject),
    o.body !== undefined &&
      el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', o.html ? '2' : '1'), el('AirSyncBase', 'Data', o.body)]),
    o.importance !== undefined && el('Email', 'Importance', String(o.importance)),
    (o.attachments?.length ?? 0) > 0 && el('AirSyncBase', 'Attachments', o.attachments),
  ]);
}

function addAttachment(clientId: string, name: string, content: string, contentType = 'text/plain'): WbxmlElement {
  return el('AirSyncBase', 'Add', [
    el('AirSyncBase', 'ClientId', clientId),
    el('AirSyncBase', 'DisplayName', name),
    el('AirSyncBase', 'Method', '1'),
    el('AirSyncBase', 'ContentType', contentType),
    el('AirSyncBase', 'IsInline', '0'),
    el('AirSyncBase', 'Content', new TextEncoder().encode(content)),
  ]);
}

function deleteAttachment(fileReference: string): WbxmlElement {
  return el('AirSyncBase', 'Delete', [el('AirSyncBase', 'FileReference', fileReference)]);
}

function addCommand(clientId: string, data: WbxmlElement, send = false): WbxmlElement {
  return el('AirSync', 'Add', [el('AirSync', 'ClientId', clientId), data, send && el('Email2', 'Send')]);
}

function changeCommand(serverId: string, data: WbxmlElement, send = false): WbxmlElement {
  return el('AirSync', 'Change', [el('AirSync', 'ServerId', serverId), data, send && el('Email2', 'Send')]);
}

/** ClientId → FileReference from a Responses/Add or Responses/Change. */
function fileReferences(response: WbxmlElement | undefined): Map<string, string> {
  const attachments = children(
    child(child(response, 'ApplicationData'), 'Attachments', 'AirSyncBase'),
    'Attachment',
    'AirSyncBase',
  );
  return new Map(
    attachments.map((a) => [
      childText(a, 'ClientId', 'AirSyncBase') ?? '',
      childText(a, 'FileReference', 'AirSyncBase') ?? '',
    ]),
  );
}

function responses(round: SyncRound, tag: 'Add' | 'Change'): WbxmlElement[] {
  return children(child(round.collection, 'Responses'), tag);
}

/** The one Add answer of a round: its ServerId, and the FileReferences of the attachments it added. */
function added(round: SyncRound): { serverId: string; refs: Map<string, string> } {
  expect(round.status).toBe(1);
  const [answer] = responses(round, 'Add');
  expect(childText(answer, 'Status')).toBe('1');
  return { serverId: childText(answer, 'ServerId') ?? '', refs: fileReferences(answer) };
}

function fetchOp(ids: WbxmlElement[]): WbxmlElement {
  return el('ItemOperations', 'Fetch', [el('ItemOperations', 'Store', 'Mailbox'), ...ids]);
}

async function itemOperationsFetch(device: TestDevice, operations: WbxmlElement[]): Promise<WbxmlElement[]> {
  const body = await device.command('ItemOperations', el('ItemOperations', 'ItemOperations', operations));
  expect(childText(body, 'Status')).toBe('1');
  return child(body, 'Response')?.children ?? [];
}

function attachmentNames(m: { email: { attachments: { filename: string | null }[] } }): string[] {
  return m.email.attachments.map((a) => a.filename ?? '').sort();
}

describe('Drafts sync (16.0)', () => {
  it('adds and edits a draft: one message in Drafts, a stable ServerId, no echo; another device sees the changes', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const { device, drafts } = await draftsDevice(alice);
    const { device: other, drafts: otherDrafts } = await draftsDevice(alice);
    const first = title('Plan');

    const addRound = await device.sync(drafts, {
      commands: [
        addCommand('d1', draftData({ to: `Bob <${bob.email}>`, subject: first, body: 'First words.', importance: 2 })),
      ],
    });
    const { serverId } = added(addRound);
    expect(addRound.added).toEqual([]);
    let [stored] = await readFolder(services, alice, 'Drafts');
    expect(stored?.email.subject).toBe(first);
    expect(stored?.email.to?.[0]?.address).toBe(bob.email);
    expect(stored?.email.text?.trim()).toBe('First words.');
    expect(stored?.header('importance')).toBe('High');
    expect(stored?.flags.has('\\Draft')).toBe(true);
    expect(serverId).toBe(`${drafts}:${stored?.uid}`);
    const messageId = stored?.email.messageId;

    // The other device gets the draft as an Add, marked as a draft, with its Bcc-less address lists.
    await other.syncUntilDone(otherDrafts);
    expect([...other.items(otherDrafts).values()].map((d) => itemText(d, 'Subject', 'Email'))).toEqual([first]);
    expect([...other.items(otherDrafts).values()].map((d) => itemText(d, 'IsDraft', 'Email2'))).toEqual(['1']);

    // Edit: a new subject and body, Cc added. The device keeps its ServerId and gets nothing back for it.
    const second = title('Plan v2');
    const changeRound = await device.sync(drafts, {
      commands: [
        changeCommand(
          serverId,
          draftData({ subject: second, body: '<p>Better words.</p>', html: true, cc: alice.email }),
        ),
      ],
    });
    expect(changeRound.status).toBe(1);
    expect(responses(changeRound, 'Change')).toEqual([]);
    expect([...changeRound.added, ...changeRound.changed, ...changeRound.deleted]).toEqual([]);
    const folder = await readFolder(services, alice, 'Drafts');
    expect(folder).toHaveLength(1);
    stored = folder[0];
    expect(stored?.uid).not.toBe(Number(serverId.split(':')[1]));
    expect(stored?.email.subject).toBe(second);
    expect(stored?.email.html).toContain('<p>Better words.</p>');
    expect(stored?.email.cc?.[0]?.address).toBe(alice.email);
    // What the edit left out stays: To, Importance, the Message-ID.
    expect(stored?.email.to?.[0]?.address).toBe(bob.email);
    expect(stored?.header('importance')).toBe('High');
    expect(stored?.email.messageId).toBe(messageId);

    // The next Sync of this device has nothing for the draft; the other device sees the old version go and the new
    // come.
    const quiet = await device.sync(drafts);
    expect([...quiet.added, ...quiet.changed, ...quiet.deleted]).toEqual([]);
    const seen = await other.syncUntilDone(otherDrafts);
    expect(seen.flatMap((r) => r.deleted)).toHaveLength(1);
    expect([...other.items(otherDrafts).values()].map((d) => itemText(d, 'Subject', 'Email'))).toEqual([second]);

    // A second edit of the same ServerId finds the draft at its new UID.
    const third = title('Plan v3');
    const again = await device.sync(drafts, { commands: [changeCommand(serverId, draftData({ subject: third }))] });
    expect(responses(again, 'Change')).toEqual([]);
    expect((await readFolder(services, alice, 'Drafts')).map((m) => m.email.subject)).toEqual([third]);

    // The server's changes to the draft reach the device under its ServerId: flags (read) and finally a delete.
    const flagged = await device.sync(drafts, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', serverId),
          el('AirSync', 'ApplicationData', [el('Email', 'Read', '0')]),
        ]),
      ],
    });
    expect(responses(flagged, 'Change')).toEqual([]);
    expect((await readFolder(services, alice, 'Drafts'))[0]?.flags.has('\\Seen')).toBe(false);
    await other.syncUntilDone(otherDrafts);
    const [otherId] = [...other.items(otherDrafts).keys()];
    await other.sync(otherDrafts, {
      commands: [el('AirSync', 'Delete', [el('AirSync', 'ServerId', otherId!)])],
      deletesAsMoves: false,
    });
    const gone = await device.sync(drafts);
    expect(gone.deleted).toEqual([serverId]);
  });

  it('adds attachments, deletes one by its FileReference, adds another: the FileReferences stay valid across saves', async () => {
    const alice = createUser(services);
    const { device, drafts } = await draftsDevice(alice);
    const addRound = await device.sync(drafts, {
      commands: [
        addCommand(
          'd1',
          draftData({
            to: alice.email,
            subject: title('Files'),
            body: 'See attached.',
            attachments: [addAttachment('a1', 'one.txt', 'first file'), addAttachment('a2', 'two.txt', 'second file')],
          }),
        ),
      ],
    });
    const { serverId, refs } = added(addRound);
    expect([...refs.keys()]).toEqual(['a1', 'a2']);
    expect(new Set(refs.values()).size).toBe(2);
    expect(attachmentNames((await readFolder(services, alice, 'Drafts'))[0]!)).toEqual(['one.txt', 'two.txt']);

    // Delete one.txt, add three.txt: the answer names three.txt's FileReference.
    const change = await device.sync(drafts, {
      commands: [
        changeCommand(
          serverId,
          draftData({
            attachments: [deleteAttachment(refs.get('a1')!), addAttachment('a3', 'three.txt', 'third file')],
          }),
        ),
      ],
    });
    const [answer] = responses(change, 'Change');
    expect(childText(answer, 'ServerId')).toBe(serverId);
    expect(childText(answer, 'Status')).toBe('1');
    const refs3 = fileReferences(answer);
    expect([...refs3.keys()]).toEqual(['a3']);
    let [stored] = await readFolder(services, alice, 'Drafts');
    expect(attachmentNames(stored!)).toEqual(['three.txt', 'two.txt']);
    expect(
      Buffer.from(stored!.email.attachments.find((a) => a.filename === 'three.txt')!.content as ArrayBuffer).toString(),
    ).toBe('third file');

    // ItemOperations finds the saved draft and its attachments by the ids the device holds.
    const [file, item, gone] = await itemOperationsFetch(device, [
      fetchOp([el('AirSyncBase', 'FileReference', refs.get('a2')!)]),
      fetchOp([el('AirSync', 'CollectionId', drafts), el('AirSync', 'ServerId', serverId)]),
      fetchOp([el('AirSyncBase', 'FileReference', refs.get('a1')!)]),
    ]);
    expect(childText(file, 'Status', 'ItemOperations')).toBe('1');
    expect(
      Buffer.from(
        childText(child(file, 'Properties', 'ItemOperations'), 'Data', 'ItemOperations') ?? '',
        'base64',
      ).toString(),
    ).toBe('second file');
    expect(childText(child(item, 'Properties', 'ItemOperations'), 'Subject', 'Email')).toMatch(/^Files /);
    expect(childText(gone, 'Status', 'ItemOperations')).not.toBe('1');

    // The FileReferences from two different saves still name the right attachments.
    await device.sync(drafts, {
      commands: [
        changeCommand(
          serverId,
          draftData({ attachments: [deleteAttachment(refs3.get('a3')!), deleteAttachment(refs.get('a2')!)] }),
        ),
      ],
    });
    [stored] = await readFolder(services, alice, 'Drafts');
    expect(attachmentNames(stored!)).toEqual([]);
    expect(stored?.email.text?.trim()).toBe('See attached.');

    // Two saves of the draft in one request: both apply, one message remains.
    const twice = await device.sync(drafts, {
      commands: [
        changeCommand(serverId, draftData({ subject: 'Twice 1' })),
        changeCommand(serverId, draftData({ attachments: [addAttachment('a4', 'four.txt', 'four')] })),
      ],
    });
    expect(responses(twice, 'Change').map((r) => childText(r, 'Status'))).toEqual(['1']);
    const folder = await readFolder(services, alice, 'Drafts');
    expect(folder.map((m) => [m.email.subject, attachmentNames(m)])).toEqual([['Twice 1', ['four.txt']]]);
    expect([...(await device.sync(drafts)).added]).toEqual([]);
  });

  it('takes an Add in the first Sync after SyncKey 0 without echoing it; the drafts already there come as Adds', async () => {
    const alice = createUser(services);
    const [old] = await seedMailbox(services, alice, 'Drafts', [
      { message: { from: alice.email, to: alice.email, subject: 'Older draft' }, flags: ['\\Draft', '\\Seen'] },
    ]);
    const device = new TestDevice(server, alice, undefined, '16.1');
    await device.folderSync();
    const drafts = device.folderByType(FolderType.Drafts).serverId;
    await device.sync(drafts);
    const round = await device.sync(drafts, {
      commands: [addCommand('first', draftData({ to: alice.email, subject: 'Newer draft', body: 'x' }))],
    });
    const { serverId } = added(round);
    expect(round.added).toEqual([`${drafts}:${old!.uid}`]);
    expect(round.moreAvailable).toBe(false);
    const quiet = await device.sync(drafts);
    expect([...quiet.added, ...quiet.changed, ...quiet.deleted]).toEqual([]);
    expect(serverId).not.toBe(`${drafts}:${old!.uid}`);

    // The same ClientId again (a device that lost the answer and started a new Sync) gets the same ServerId, no second
    // draft.
    const again = await device.sync(drafts, {
      commands: [addCommand('first', draftData({ to: alice.email, subject: 'Newer draft', body: 'x' }))],
    });
    expect(added(again).serverId).toBe(serverId);
    expect((await readFolder(services, alice, 'Drafts')).map((m) => m.email.subject).sort()).toEqual([
      'Newer draft',
      'Older draft',
    ]);
  });

  it('edits a draft another client wrote: its attachments are deleted by the FileReferences Sync gave', async () => {
    const alice = createUser(services);
    await seedMailbox(services, alice, 'Drafts', [
      {
        message: {
          from: alice.email,
          to: alice.email,
          subject: 'From the desktop',
          text: 'Written elsewhere.',
          attachments: [
            { filename: 'keep.txt', contentType: 'text/plain', content: 'keep' },
            { filename: 'drop.txt', contentType: 'text/plain', content: 'drop' },
          ],
        },
        flags: ['\\Draft', '\\Seen'],
      },
    ]);
    const { device, drafts } = await draftsDevice(alice);
    const [serverId, data] = [...device.items(drafts)][0]!;
    const refs = children(child(data, 'Attachments', 'AirSyncBase'), 'Attachment', 'AirSyncBase').map((a) => [
      childText(a, 'DisplayName', 'AirSyncBase'),
      childText(a, 'FileReference', 'AirSyncBase'),
    ]);
    const drop = refs.find(([name]) => name === 'drop.txt')?.[1];
    expect(drop).toBeDefined();
    const round = await device.sync(drafts, {
      commands: [
        changeCommand(
          serverId,
          draftData({
            subject: 'From the phone',
            attachments: [deleteAttachment(drop!), addAttachment('n1', 'new.txt', 'new')],
          }),
        ),
      ],
    });
    const refs2 = fileReferences(responses(round, 'Change')[0]);
    const [stored] = await readFolder(services, alice, 'Drafts');
    expect(stored?.email.subject).toBe('From the phone');
    expect(stored?.email.text?.trim()).toBe('Written elsewhere.');
    expect(attachmentNames(stored!)).toEqual(['keep.txt', 'new.txt']);
    // keep.txt's FileReference from the first Sync still names keep.txt.
    await device.sync(drafts, {
      commands: [
        changeCommand(
          serverId,
          draftData({
            attachments: [
              deleteAttachment(refs.find(([name]) => name === 'keep.txt')![1]!),
              deleteAttachment(refs2.get('n1')!),
            ],
          }),
        ),
      ],
    });
    expect(attachmentNames((await readFolder(services, alice, 'Drafts'))[0]!)).toEqual([]);
  });

  describeSmtp('email2:Send', () => {
    it('sends an edited draft with its attachment: the recipients get it (Bcc off the wire), Sent has it, Drafts no longer', async () => {
      const [alice, bob, carol] = [createUser(services), createUser(services), createUser(services)];
      const { device, drafts } = await draftsDevice(alice);
      const subject = title('Report');
      const { serverId } = added(
        await device.sync(drafts, {
          commands: [
            addCommand(
              'd1',
              draftData({
                to: bob.email,
                bcc: carol.email,
                subject: 'draft',
                body: 'The report.',
                attachments: [addAttachment('a1', 'report.csv', 'a,b\n1,2\n', 'text/csv')],
              }),
            ),
          ],
        }),
      );

      const sendRound = await device.sync(drafts, {
        commands: [changeCommand(serverId, draftData({ subject }), true)],
      });
      expect(sendRound.status).toBe(1);
      expect(responses(sendRound, 'Change')).toEqual([]);
      // The draft left Drafts: the device is told at once, under its ServerId.
      expect(sendRound.deleted).toEqual([serverId]);
      expect(await readFolder(services, alice, 'Drafts')).toEqual([]);

      for (const user of [bob, carol]) {
        const got = await waitForStored(services, user, (m) => m.email.subject === subject);
        expect(got.email.from?.address).toBe(alice.email);
        expect(got.header('bcc')).toBeUndefined();
        expect(attachmentNames(got)).toEqual(['report.csv']);
        expect(Buffer.from(got.email.attachments[0]!.content as ArrayBuffer).toString()).toBe('a,b\n1,2\n');
        expect(got.flags.has('\\Draft')).toBe(false);
      }
      const sent = await readFolder(services, alice, 'Sent');
      expect(sent.map((m) => m.email.subject)).toEqual([subject]);
      expect(sent[0]?.flags.has('\\Seen')).toBe(true);
      expect(sent[0]?.flags.has('\\Draft')).toBe(false);
      expect(sent[0]?.email.bcc?.[0]?.address).toBe(carol.email);
      expect(attachmentNames(sent[0]!)).toEqual(['report.csv']);

      // Nothing more for the draft; the same answer again when the device lost it, and nothing sent twice.
      const after = await device.sync(drafts);
      expect([...after.added, ...after.deleted]).toEqual([]);
    });

    it('sends a draft added with Send: an Add answer, then the Delete; a draft without a recipient is kept and refused', async () => {
      const [alice, bob] = [createUser(services), createUser(services)];
      const { device, drafts } = await draftsDevice(alice);
      const subject = title('Quick');
      const round = await device.sync(drafts, {
        commands: [addCommand('q1', draftData({ to: bob.email, subject, body: 'Quick one.' }), true)],
      });
      const { serverId } = added(round);
      await waitForStored(services, bob, (m) => m.email.subject === subject);
      expect(await readFolder(services, alice, 'Drafts')).toEqual([]);
      expect(round.moreAvailable).toBe(true);
      const next = await device.sync(drafts);
      expect(next.deleted).toEqual([serverId]);

      // No recipient: nothing is sent, the draft stays (the device gets it back as a server item), the Add fails.
      const lonely = title('Lonely');
      const refused = await device.sync(drafts, {
        commands: [addCommand('q2', draftData({ subject: lonely, body: 'To nobody.' }), true)],
      });
      const [answer] = responses(refused, 'Add');
      expect(childText(answer, 'Status')).toBe('6');
      expect((await readFolder(services, alice, 'Drafts')).map((m) => m.email.subject)).toEqual([lonely]);
      expect(refused.added).toHaveLength(1);
      expect(server.logs.some((e) => e['draft-send-failed']?.toString().includes('no recipient'))).toBe(true);
    });

    it('resending the request of a lost answer does not send the draft twice', async () => {
      const [alice, bob] = [createUser(services), createUser(services)];
      const { device, drafts } = await draftsDevice(alice);
      const subject = title('Once');
      const { serverId } = added(
        await device.sync(drafts, {
          commands: [addCommand('d1', draftData({ to: bob.email, subject, body: 'Once.' }))],
        }),
      );
      const send = [changeCommand(serverId, draftData({ body: 'Once, really.' }), true)];
      const lost = await device.sync(drafts, { commands: send, lose: true });
      expect(lost.status).toBe(1);
      const replayed = await device.sync(drafts, { commands: send });
      expect(replayed.deleted).toEqual([serverId]);
      await waitForStored(services, bob, (m) => m.email.subject === subject);
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await readFolder(services, bob)).filter((m) => m.email.subject === subject)).toHaveLength(1);
      expect((await readFolder(services, alice, 'Sent')).filter((m) => m.email.subject === subject)).toHaveLength(1);
    });
  });

  it('answers bad draft commands item by item: unknown ServerId 8, no ClientId 4, a FileReference it never gave ignored', async () => {
    const alice = createUser(services);
    const { device, drafts } = await draftsDevice(alice);
    const { serverId } = added(
      await device.sync(drafts, {
        commands: [addCommand('d1', draftData({ subject: 'Kept', attachments: [addAttachment('a1', 'a.txt', 'A')] }))],
      }),
    );
    const round = await device.sync(drafts, {
      commands: [
        changeCommand(`${drafts}:999999`, draftData({ subject: 'Nope' })),
        changeCommand('garbage', draftData({ subject: 'Nope' }), true),
        el('AirSync', 'Add', [draftData({ subject: 'No ClientId' })]),
        changeCommand(
          serverId,
          draftData({
            attachments: [
              deleteAttachment('not-a-reference'),
              deleteAttachment(`${drafts}:12345:0`),
              deleteAttachment(`${serverId}:7`),
            ],
          }),
        ),
      ],
    });
    expect(round.status).toBe(1);
    const answers = child(round.collection, 'Responses')?.children.map(
      (r) => `${r.tag} ${childText(r, 'ServerId') ?? ''} ${childText(r, 'Status')}`,
    );
    expect(answers).toEqual([`Change ${drafts}:999999 8`, 'Change garbage 8', 'Add  4']);
    const stored = await readFolder(services, alice, 'Drafts');
    expect(stored.map((m) => [m.email.subject, attachmentNames(m)])).toEqual([['Kept', ['a.txt']]]);
  });

  it('a 14.1 device still cannot add to Drafts (Status 6)', async () => {
    const alice = createUser(services);
    const { device, drafts } = await draftsDevice(alice, '14.1');
    const round = await device.sync(drafts, { commands: [addCommand('d1', draftData({ subject: 'x', body: 'y' }))] });
    expect(childText(responses(round, 'Add')[0], 'Status')).toBe('6');
    expect(await readFolder(services, alice, 'Drafts')).toEqual([]);
  });
});

describeSmtp('failures after the message went out', () => {
  /**
   * A submitter that sends for real, then makes the user's Sent mailbox unwritable (the Dovecot process cannot write
   * its files): the Sent copy fails after the message is gone, as a full or broken mail store would make it.
   */
  function breakingSentAfterSubmit(user: TestUser): MailSubmitter {
    const real = nodemailerSubmitter({
      host: services.smtp!.host,
      port: services.smtp!.port,
      secure: false,
      auth: 'none',
    });
    return {
      async submit(login, envelope, message) {
        const result = await real.submit(login, envelope, message);
        lockTree(`${services.dir}/mail/${user.name}/mdbox/mailboxes/Sent`);
        return result;
      },
    };
  }

  function lockTree(path: string): void {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = `${path}/${entry.name}`;
      if (entry.isDirectory()) lockTree(full);
      else chmodSync(full, 0o444);
    }
    chmodSync(path, 0o555);
  }

  it('SendMail and a draft Send answer success when the Sent copy fails, and the log line says so without the password', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    // Sent exists on disk before the fault: Dovecot creates it at the first login.
    await readFolder(services, alice, 'Sent');
    const broken = testServer(services, { PROVISIONING: 'loose' }, { mailSubmitter: breakingSentAfterSubmit(alice) });
    const device = new TestDevice(broken, alice, undefined, '16.0');
    await device.folderSync();

    const subject = title('Unfiled');
    const res = await compose(
      device,
      'SendMail',
      makeMessage({ from: alice.email, to: bob.email, subject, text: 'Went out.\n' }),
    );
    expect(composeStatus(res)).toBeUndefined();
    await waitForStored(services, bob, (m) => m.email.subject === subject);
    const entry = broken.logs.find((e) => e.cmd === 'SendMail');
    expect(entry?.['sent-copy-failed']).toMatch(/\w/);
    expect(entry?.http).toBe(200);
    expect(JSON.stringify(broken.logs)).not.toContain(alice.password);

    const drafts = device.folderByType(FolderType.Drafts).serverId;
    await device.syncUntilDone(drafts);
    const draftSubject = title('Unfiled draft');
    const round = await device.sync(drafts, {
      commands: [addCommand('d1', draftData({ to: bob.email, subject: draftSubject, body: 'Also out.' }), true)],
    });
    expect(childText(responses(round, 'Add')[0], 'Status')).toBe('1');
    await waitForStored(services, bob, (m) => m.email.subject === draftSubject);
    expect(broken.logs.filter((e) => e.cmd === 'Sync').some((e) => e['sent-copy-failed'] !== undefined)).toBe(true);
    expect(await readFolder(services, alice, 'Drafts')).toEqual([]);
  });
});

// The APPEND landed but the Sync's state write failed: the device resends its Add with the same key. The draft's
// Message-ID is named by the Add (sync-drafts.ts), so the retry finds it instead of appending a second one.
describe('a draft Add retried after the state write failed', () => {
  async function failingSetup(): Promise<{
    alice: TestUser;
    device: TestDevice;
    drafts: string;
    faults: ReturnType<typeof failingStore>;
  }> {
    const faults = failingStore(openSqliteStateStore(':memory:').store);
    const failing = testServer(services, { PROVISIONING: 'loose' }, { state: faults.store });
    const alice = createUser(services);
    const device = new TestDevice(failing, alice, undefined, '16.0');
    await device.folderSync();
    const drafts = device.folderByType(FolderType.Drafts).serverId;
    await device.syncUntilDone(drafts);
    return { alice, device, drafts, faults };
  }

  it('keeps one draft, under the ServerId the retry answers', async () => {
    const { alice, device, drafts, faults } = await failingSetup();
    const subject = title('Saved once');
    const add = [addCommand('r1', draftData({ to: 'bob@example.test', subject, body: 'Once.' }))];
    faults.failOn({ method: 'commitCollection' });
    expect((await device.sync(drafts, { commands: add })).status).toBe(5);
    const again = await device.sync(drafts, { commands: add });
    const { serverId } = added(again);
    expect((await readFolder(services, alice, 'Drafts')).map((m) => m.email.subject)).toEqual([subject]);
    // The device holds it under that ServerId; the next Sync neither echoes it nor adds a copy.
    const quiet = await device.sync(drafts);
    expect([quiet.added, quiet.deleted]).toEqual([[], []]);
    expect([...device.items(drafts).keys()]).toEqual([serverId]);
  });

  it('with Send: the recipient gets it once, Sent has one copy, Drafts none', async () => {
    const { alice, device, drafts, faults } = await failingSetup();
    const bob = createUser(services);
    const subject = title('Sent once');
    const add = [addCommand('r2', draftData({ to: bob.email, subject, body: 'Once.' }), true)];
    faults.failOn({ method: 'commitCollection' });
    expect((await device.sync(drafts, { commands: add })).status).toBe(5);
    await waitForStored(services, bob, (m) => m.email.subject === subject);
    const again = await device.sync(drafts, { commands: add });
    expect(responses(again, 'Add').map((a) => childText(a, 'Status'))).toEqual(['1']);
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await readFolder(services, bob)).filter((m) => m.email.subject === subject)).toHaveLength(1);
    expect((await readFolder(services, alice, 'Sent')).filter((m) => m.email.subject === subject)).toHaveLength(1);
    expect(await readFolder(services, alice, 'Drafts')).toEqual([]);
  });
});
