/**
 * MoveItems against the real Dovecot, through the scripted device: the new ServerId from COPYUID, the error statuses,
 * and Syncs of both folders afterwards that do not send the moved message back.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { children, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import {
  createUser,
  listMessages,
  sampleMessages,
  seedMailbox,
  withImap,
  type SeededMessage,
} from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

interface Move {
  srcMsgId?: string;
  srcFldId?: string;
  dstFldId?: string;
}

interface MoveAnswer {
  srcMsgId: string | undefined;
  status: number;
  dstMsgId: string | undefined;
}

async function moveItems(device: TestDevice, moves: Move[]): Promise<MoveAnswer[]> {
  const body = await device.command(
    'MoveItems',
    el(
      'Move',
      'MoveItems',
      moves.map((m) =>
        el('Move', 'Move', [
          m.srcMsgId !== undefined && el('Move', 'SrcMsgId', m.srcMsgId),
          m.srcFldId !== undefined && el('Move', 'SrcFldId', m.srcFldId),
          m.dstFldId !== undefined && el('Move', 'DstFldId', m.dstFldId),
        ]),
      ),
    ),
  );
  expect(body.tag).toBe('MoveItems');
  return children(body, 'Response').map((r: WbxmlElement) => ({
    srcMsgId: childText(r, 'SrcMsgId'),
    status: Number(childText(r, 'Status')),
    dstMsgId: childText(r, 'DstMsgId'),
  }));
}

interface Mailbox {
  user: TestUser;
  device: TestDevice;
  seeded: SeededMessage[];
  inbox: string;
  archive: string;
}

/** A user with the sample messages in INBOX and an empty folder `Filed`, and a device that knows the hierarchy. */
async function mailbox(): Promise<Mailbox> {
  const user = createUser(services);
  const seeded = await seedMailbox(services, user, 'INBOX', sampleMessages({ to: user.email }));
  await withImap(services, user, (imap) => imap.mailboxCreate('Filed'));
  const device = new TestDevice(server, user);
  await device.folderSync();
  return {
    user,
    device,
    seeded,
    inbox: device.folderByType(FolderType.Inbox).serverId,
    archive: device.folderByName('Filed').serverId,
  };
}

describe('MoveItems', () => {
  it('moves a message with IMAP MOVE and answers 3 with its new ServerId', async () => {
    const { user, device, seeded, inbox, archive } = await mailbox();
    const message = seeded[2]!;
    const [answer] = await moveItems(device, [
      { srcMsgId: `${inbox}:${message.uid}`, srcFldId: inbox, dstFldId: archive },
    ]);
    expect(answer).toMatchObject({ srcMsgId: `${inbox}:${message.uid}`, status: 3 });

    const filed = await listMessages(services, user, 'Filed');
    expect(filed).toHaveLength(1);
    expect(filed[0]!.subject).toBe('Quarterly report');
    expect(answer!.dstMsgId).toBe(`${archive}:${filed[0]!.uid}`);
    // The flags travel with the message.
    expect(filed[0]!.flags.sort()).toEqual(['\\Flagged', '\\Seen']);
    const inInbox = await listMessages(services, user, 'INBOX');
    expect(inInbox.map((m) => m.uid)).not.toContain(message.uid);
    expect(inInbox).toHaveLength(seeded.length - 1);
  });

  it('answers each Move in request order, successes and failures mixed', async () => {
    const { user, device, seeded, inbox, archive } = await mailbox();
    const [first, second] = seeded;
    const answers = await moveItems(device, [
      { srcMsgId: `${inbox}:${first!.uid}`, srcFldId: inbox, dstFldId: archive },
      { srcMsgId: `${inbox}:999999`, srcFldId: inbox, dstFldId: archive },
      { srcMsgId: `${inbox}:${second!.uid}`, srcFldId: inbox, dstFldId: archive },
    ]);
    expect(answers.map((a) => [a.srcMsgId, a.status])).toEqual([
      [`${inbox}:${first!.uid}`, 3],
      [`${inbox}:999999`, 1],
      [`${inbox}:${second!.uid}`, 3],
    ]);
    const filedUids = (await listMessages(services, user, 'Filed')).map((m) => `${archive}:${m.uid}`).sort();
    expect([answers[0]!.dstMsgId, answers[2]!.dstMsgId].sort()).toEqual(filedUids);
    expect(answers[1]!.dstMsgId).toBeUndefined();
  });

  it('answers 1 for a bad source, 2 for a bad destination, 4 for the same folder, and moves nothing', async () => {
    const { user, device, seeded, inbox, archive } = await mailbox();
    const uid = seeded[0]!.uid;
    const item = `${inbox}:${uid}`;
    const answers = await moveItems(device, [
      { srcMsgId: item, srcFldId: '999', dstFldId: archive },
      { srcMsgId: `${archive}:${uid}`, srcFldId: inbox, dstFldId: archive },
      { srcMsgId: `${inbox}:not-a-uid`, srcFldId: inbox, dstFldId: archive },
      { srcMsgId: `${inbox}:0`, srcFldId: inbox, dstFldId: archive },
      { srcFldId: inbox, dstFldId: archive },
      { srcMsgId: `${archive}:${uid}`, srcFldId: archive, dstFldId: inbox },
      { srcMsgId: item, srcFldId: inbox, dstFldId: '999' },
      { srcMsgId: item, srcFldId: inbox },
      { srcMsgId: item, srcFldId: inbox, dstFldId: inbox },
    ]);
    expect(answers.map((a) => a.status)).toEqual([1, 1, 1, 1, 1, 1, 2, 2, 4]);
    expect(answers.every((a) => a.dstMsgId === undefined)).toBe(true);
    expect(await listMessages(services, user, 'INBOX')).toHaveLength(seeded.length);
    expect(await listMessages(services, user, 'Filed')).toHaveLength(0);
  });

  it('answers HTTP 400 to a request without a Move', async () => {
    const { device } = await mailbox();
    expect((await device.send('MoveItems', el('Move', 'MoveItems', []))).status).toBe(400);
  });

  it('later Syncs of both folders do not send the moved message back as Delete or Add', async () => {
    const { device, seeded, inbox, archive } = await mailbox();
    await device.syncUntilDone(inbox);
    await device.syncUntilDone(archive);
    expect(device.items(inbox).size).toBe(seeded.length);

    const moved = `${inbox}:${seeded[1]!.uid}`;
    const [answer] = await moveItems(device, [{ srcMsgId: moved, srcFldId: inbox, dstFldId: archive }]);
    expect(answer!.status).toBe(3);
    // The device moves its own copy, as a phone does.
    const data = device.items(inbox).get(moved)!;
    device.items(inbox).delete(moved);
    device.items(archive).set(answer!.dstMsgId!, data);

    const inboxRound = await device.sync(inbox);
    expect(inboxRound.status).toBe(1);
    expect(inboxRound.deleted).toEqual([]);
    expect(inboxRound.softDeleted).toEqual([]);
    expect(inboxRound.added).toEqual([]);
    const archiveRound = await device.sync(archive);
    expect(archiveRound.status).toBe(1);
    expect(archiveRound.added).toEqual([]);
    expect(archiveRound.deleted).toEqual([]);

    // And the moved message is an item like any other there: moving it back works from its new ServerId.
    const [back] = await moveItems(device, [{ srcMsgId: answer!.dstMsgId!, srcFldId: archive, dstFldId: inbox }]);
    expect(back!.status).toBe(3);
    device.items(archive).delete(answer!.dstMsgId!);
    device.items(inbox).set(back!.dstMsgId!, data);
    expect((await device.sync(archive)).deleted).toEqual([]);
    expect((await device.sync(inbox)).added).toEqual([]);
    expect(device.items(inbox).size).toBe(seeded.length);
    expect(device.items(archive).size).toBe(0);
  });

  it('keeps Sync consistent for a device with changes still pending in the source', async () => {
    const { device, seeded, inbox, archive } = await mailbox();
    await device.sync(inbox);
    await device.syncUntilDone(archive);
    // A window of 2: the device has the two newest, three are still to come.
    const first = await device.sync(inbox, { windowSize: 2 });
    expect(first.moreAvailable).toBe(true);
    const known = first.added[0]!;
    const [answer] = await moveItems(device, [{ srcMsgId: known, srcFldId: inbox, dstFldId: archive }]);
    expect(answer!.status).toBe(3);
    device.items(archive).set(answer!.dstMsgId!, device.items(inbox).get(known)!);
    device.items(inbox).delete(known);

    const rest = await device.syncUntilDone(inbox);
    expect(rest.flatMap((r) => r.deleted)).toEqual([]);
    expect(rest.flatMap((r) => r.added)).not.toContain(known);
    expect(device.items(inbox).size).toBe(seeded.length - 1);
    expect((await device.sync(archive)).added).toEqual([]);
  });
});

describe('a lost answer to MoveItems', () => {
  it('gives the same answer to the resent request, and the message is moved once', async () => {
    const { user, device, seeded, inbox, archive } = await mailbox();
    await device.syncUntilDone(inbox);
    await device.syncUntilDone(archive);
    const move = { srcMsgId: `${inbox}:${seeded[0]!.uid}`, srcFldId: inbox, dstFldId: archive };
    const [first] = await moveItems(device, [move]);
    // The answer never reached the device: it sends the same request again.
    const [again] = await moveItems(device, [move]);
    expect(again).toEqual(first);
    expect(first!.status).toBe(3);
    expect(await listMessages(services, user, 'Filed')).toHaveLength(1);
    expect(await listMessages(services, user, 'INBOX')).toHaveLength(seeded.length - 1);

    // The device moved its copy; the next Syncs of both folders have nothing to say about it.
    device.items(inbox).delete(move.srcMsgId);
    const inboxRound = await device.sync(inbox);
    const filedRound = await device.sync(archive);
    expect([...inboxRound.added, ...inboxRound.deleted, ...filedRound.added, ...filedRound.deleted]).toEqual([]);
  });
});
