/**
 * Follow-up flags round trip against the real Dovecot, through the scripted device (MS-ASEMAIL §2.2.2.34 Flag,
 * §3.2.5.4.2): what a device sets (dates, reminder, subject, complete) comes back to it exactly, in Sync Changes and
 * ItemOperations Fetch, though IMAP holds only \Flagged; complete clears \Flagged and is remembered; another client
 * clearing \Flagged clears the details; a flag Status other than 0, 1 or 2 is item Status 6 (MS-ASEMAIL §2.2.2.74).
 *
 * The requests are the shapes of MS-ASEMAIL §4.2 (setting a flag with start, due and reminder; marking it complete;
 * clearing it with its fields still present, §4.2.3), which is what iOS Mail and Outlook for iOS/Android send.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { child, childText, el, textOf, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { readyDevice, testServer, type TestDevice, type TestServer } from '../../device/device.ts';
import { createMailbox, createUser, listMessages, seedMailbox, withImap } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';
import { itemOperationsFetch, moveItem } from '../session-steps.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

const setFlag = el('Email', 'Flag', [
  el('Email', 'Status', '2'),
  el('Email', 'FlagType', 'Flag for follow up'),
  el('Tasks', 'StartDate', '2026-02-19T08:00:00.000Z'),
  el('Tasks', 'UtcStartDate', '2026-02-19T08:00:00.000Z'),
  el('Tasks', 'DueDate', '2026-02-24T08:00:00.000Z'),
  el('Tasks', 'UtcDueDate', '2026-02-24T08:00:00.000Z'),
  el('Tasks', 'ReminderSet', '1'),
  el('Tasks', 'ReminderTime', '2026-02-23T20:00:00.000Z'),
  el('Tasks', 'Subject', 'Please follow up'),
  el('Tasks', 'OrdinalDate', '2026-02-19T08:00:00.000Z'),
  el('Tasks', 'SubOrdinalDate', '5555555'),
]);

const completeFlag = el('Email', 'Flag', [
  el('Email', 'Status', '1'),
  el('Email', 'FlagType', 'Flag for follow up'),
  el('Email', 'CompleteTime', '2026-02-20T09:30:00.000Z'),
  el('Tasks', 'DateCompleted', '2026-02-20T09:30:00.000Z'),
]);

/** §4.2.3: Status 0, with the fields of the flag it clears still sent. */
const clearFlag = el('Email', 'Flag', [
  el('Email', 'Status', '0'),
  el('Email', 'FlagType', 'Flag for follow up'),
  el('Tasks', 'StartDate', '2026-02-19T08:00:00.000Z'),
  el('Tasks', 'UtcStartDate', '2026-02-19T08:00:00.000Z'),
]);

/** A Flag as a set of `ns:tag=text` (the order of its children is not part of the protocol). */
function fieldsOf(flag: WbxmlElement | undefined): string[] {
  return (flag?.children ?? []).map((c) => `${c.ns}:${c.tag}=${textOf(c)}`).sort();
}

function change(serverId: string, data: WbxmlElement[]): WbxmlElement {
  return el('AirSync', 'Change', [el('AirSync', 'ServerId', serverId), el('AirSync', 'ApplicationData', data)]);
}

function flagOnDevice(device: TestDevice, inbox: string, serverId: string): WbxmlElement | undefined {
  return child(device.items(inbox).get(serverId), 'Flag', 'Email');
}

async function imapFlags(user: TestUser, uid: number): Promise<string[]> {
  return (await listMessages(services, user)).find((m) => m.uid === uid)!.flags.sort();
}

/** Another client (straight IMAP) changes a message's flags. */
async function otherClient(
  user: TestUser,
  uid: number,
  add: string[],
  remove: string[] = [],
  folder = 'INBOX',
): Promise<void> {
  await withImap(services, user, async (imap) => {
    await imap.mailboxOpen(folder);
    if (add.length) await imap.messageFlagsAdd(String(uid), add, { uid: true });
    if (remove.length) await imap.messageFlagsRemove(String(uid), remove, { uid: true });
  });
}

async function fetchFlag(device: TestDevice, inbox: string, serverId: string): Promise<WbxmlElement | undefined> {
  const fetched = await itemOperationsFetch(device, { collectionId: inbox, serverId });
  return child(child(fetched, 'Properties'), 'Flag', 'Email');
}

describe('Flags', () => {
  it('round-trips what the device set, remembers complete, and follows another client clearing \\Flagged', async () => {
    const user = createUser(services);
    const seeded = await seedMailbox(services, user, 'INBOX', [
      { message: { from: 'Bob <bob@example.test>', to: 'Alice <alice@example.test>', subject: 'Quote', text: 'Q\n' } },
      { message: { from: 'Bob <bob@example.test>', to: 'Alice <alice@example.test>', subject: 'Other', text: 'O\n' } },
    ]);
    const { device, inbox } = await readyDevice(server, user);
    await device.syncUntilDone(inbox);
    const uid = seeded[0]!.uid;
    const id = `${inbox}:${uid}`;

    // Set, with dates, reminder and subject: IMAP has \Flagged; the device is not sent its own change.
    const set = await device.sync(inbox, { commands: [change(id, [el('Email', 'Read', '1'), setFlag])] });
    expect(set.status).toBe(1);
    expect(set.changed).toEqual([]);
    expect(await imapFlags(user, uid)).toEqual(['\\Flagged', '\\Seen']);
    // Fetch answers the flag as set, and so does a Change caused by another client.
    expect(fieldsOf(await fetchFlag(device, inbox, id))).toEqual(fieldsOf(setFlag));
    await otherClient(user, uid, [], ['\\Seen']);
    const unread = await device.sync(inbox);
    expect(unread.changed).toEqual([id]);
    expect(fieldsOf(flagOnDevice(device, inbox, id))).toEqual(fieldsOf(setFlag));

    // Complete: \Flagged goes, the device keeps seeing a completed flag.
    await device.sync(inbox, { commands: [change(id, [completeFlag])] });
    expect(await imapFlags(user, uid)).toEqual([]);
    await otherClient(user, uid, ['\\Seen']);
    const read = await device.sync(inbox);
    expect(read.changed).toEqual([id]);
    expect(fieldsOf(flagOnDevice(device, inbox, id))).toEqual(fieldsOf(completeFlag));
    expect(fieldsOf(await fetchFlag(device, inbox, id))).toEqual(fieldsOf(completeFlag));

    // Flagged again; another client clears \Flagged: the device's flag clears, and the details are gone for good.
    await device.sync(inbox, { commands: [change(id, [setFlag])] });
    expect(await imapFlags(user, uid)).toEqual(['\\Flagged', '\\Seen']);
    await otherClient(user, uid, [], ['\\Flagged']);
    const cleared = await device.sync(inbox);
    expect(cleared.changed).toEqual([id]);
    expect(fieldsOf(flagOnDevice(device, inbox, id))).toEqual([]);
    await otherClient(user, uid, ['\\Flagged']);
    const reflagged = await device.sync(inbox);
    expect(reflagged.changed).toEqual([id]);
    expect(fieldsOf(flagOnDevice(device, inbox, id))).toEqual(['Email:FlagType=Flag for follow up', 'Email:Status=2']);

    // Cleared by the device (§4.2.3, fields still present): \Flagged goes, the details too.
    await device.sync(inbox, { commands: [change(id, [setFlag])] });
    await device.sync(inbox, { commands: [change(id, [clearFlag])] });
    expect(await imapFlags(user, uid)).toEqual(['\\Seen']);
    await otherClient(user, uid, [], ['\\Seen']);
    await device.sync(inbox);
    expect(fieldsOf(flagOnDevice(device, inbox, id))).toEqual([]);
    expect(fieldsOf(await fetchFlag(device, inbox, id))).toEqual([]);

    // A flag Status outside 0, 1, 2: item Status 6, nothing changes on the server.
    const other = `${inbox}:${seeded[1]!.uid}`;
    const bad = await device.sync(inbox, {
      commands: [change(other, [el('Email', 'Flag', [el('Email', 'Status', '3')])])],
    });
    const response = child(child(bad.collection, 'Responses'), 'Change');
    expect(childText(response, 'ServerId')).toBe(other);
    expect(childText(response, 'Status')).toBe('6');
    expect(await imapFlags(user, seeded[1]!.uid)).toEqual([]);
  });

  it('keeps the details of a message the device moves to another folder (MoveItems)', async () => {
    const user = createUser(services);
    await createMailbox(services, user, 'Archive');
    const [message] = await seedMailbox(services, user, 'INBOX', [
      { message: { from: 'Bob <bob@example.test>', to: 'Alice <alice@example.test>', subject: 'Done', text: 'D\n' } },
    ]);
    const { device, inbox } = await readyDevice(server, user);
    const archive = device.folderByName('Archive').serverId;
    await device.syncUntilDone(inbox);
    await device.syncUntilDone(archive);
    const id = `${inbox}:${message!.uid}`;
    await device.sync(inbox, { commands: [change(id, [completeFlag])] });
    const response = await moveItem(device, id, inbox, archive);
    expect(childText(response, 'Status')).toBe('3');
    const newId = childText(response, 'DstMsgId')!;
    device.items(inbox).delete(id);
    device.items(archive).set(newId, el('AirSync', 'ApplicationData', []));
    await otherClient(user, Number(newId.split(':')[1]), ['\\Seen'], [], 'Archive');
    const round = await device.sync(archive);
    expect(round.changed).toEqual([newId]);
    expect(fieldsOf(flagOnDevice(device, archive, newId))).toEqual(fieldsOf(completeFlag));
  });

  it('keeps the details per user and message: a resync from SyncKey 0 and a second device get them', async () => {
    const user = createUser(services);
    const [message, other] = await seedMailbox(services, user, 'INBOX', [
      { message: { from: 'Bob <bob@example.test>', to: 'Alice <alice@example.test>', subject: 'Hi', text: 'Hi\n' } },
      { message: { from: 'Bob <bob@example.test>', to: 'Alice <alice@example.test>', subject: 'Yo', text: 'Yo\n' } },
    ]);
    const phone = await readyDevice(server, user);
    const tablet = await readyDevice(server, user);
    await phone.device.syncUntilDone(phone.inbox);
    await tablet.device.syncUntilDone(tablet.inbox);
    const id = `${phone.inbox}:${message!.uid}`;
    const completedId = `${phone.inbox}:${other!.uid}`;
    await phone.device.sync(phone.inbox, { commands: [change(id, [setFlag]), change(completedId, [setFlag])] });
    await phone.device.sync(phone.inbox, { commands: [change(completedId, [completeFlag])] });

    // The second device is told of the change (\Flagged moved) and gets the flags as the phone set them.
    const seen = await tablet.device.sync(tablet.inbox);
    expect(seen.changed.sort()).toEqual([`${tablet.inbox}:${message!.uid}`, `${tablet.inbox}:${other!.uid}`].sort());
    expect(fieldsOf(flagOnDevice(tablet.device, tablet.inbox, `${tablet.inbox}:${message!.uid}`))).toEqual(
      fieldsOf(setFlag),
    );
    expect(fieldsOf(flagOnDevice(tablet.device, tablet.inbox, `${tablet.inbox}:${other!.uid}`))).toEqual(
      fieldsOf(completeFlag),
    );

    // The phone starts the folder over (SyncKey 0, as after a Status 3 or a reinstall): its Adds carry the flags.
    phone.device.collections.delete(phone.inbox);
    await phone.device.syncUntilDone(phone.inbox);
    expect(fieldsOf(flagOnDevice(phone.device, phone.inbox, id))).toEqual(fieldsOf(setFlag));
    expect(fieldsOf(flagOnDevice(phone.device, phone.inbox, completedId))).toEqual(fieldsOf(completeFlag));
    // A third device, new, in its first full sync; and ItemOperations Fetch from it.
    const third = await readyDevice(server, user);
    await third.device.syncUntilDone(third.inbox);
    expect(fieldsOf(flagOnDevice(third.device, third.inbox, `${third.inbox}:${message!.uid}`))).toEqual(
      fieldsOf(setFlag),
    );
    expect(fieldsOf(await fetchFlag(third.device, third.inbox, `${third.inbox}:${other!.uid}`))).toEqual(
      fieldsOf(completeFlag),
    );

    // The tablet clears the flag: everyone's details go, and the next full sync sees no flag.
    await tablet.device.sync(tablet.inbox, { commands: [change(`${tablet.inbox}:${message!.uid}`, [clearFlag])] });
    expect(await imapFlags(user, message!.uid)).toEqual([]);
    phone.device.collections.delete(phone.inbox);
    await phone.device.syncUntilDone(phone.inbox);
    expect(fieldsOf(flagOnDevice(phone.device, phone.inbox, id))).toEqual([]);
  });
});
