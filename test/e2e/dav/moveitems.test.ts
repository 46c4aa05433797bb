/**
 * MoveItems between calendars, between task lists and between address books against the real Radicale, through the
 * scripted device: the resource leaves the source collection and is in the destination once, even when the answer
 * is lost and the request sent again; the device gets the new ServerId and later Syncs send neither a Delete nor an
 * Add for it. Across classes (a contact into a calendar) the answer is Status 5 (MS-ASCMD §2.2.3.177.10) and nothing
 * moves.
 *
 * The request is MS-ASCMD §2.2.1.12's shape (Move: SrcMsgId, SrcFldId, DstFldId), as iOS sends it when an event is
 * given another calendar.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { children, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import {
  createUser,
  davRequest,
  makeEvent,
  makeTodo,
  makeVCard,
  seedAddressBook,
  seedCalendar,
  uidOf,
} from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

/** The UIDs of the items in a DAV collection. */
async function uidsIn(user: TestUser, collectionUrl: string): Promise<string[]> {
  const res = await davRequest(services, user, 'PROPFIND', collectionUrl, {
    depth: '1',
    body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
  });
  const hrefs = [...(await res.text()).matchAll(/<(?:\w+:)?href>([^<]+\.(?:ics|vcf))<\/(?:\w+:)?href>/g)].map(
    (m) => m[1]!,
  );
  const texts = await Promise.all(hrefs.map(async (href) => (await davRequest(services, user, 'GET', href)).text()));
  return texts.map((t) => uidOf(t) ?? '').sort();
}

function move(srcMsgId: string, srcFldId: string, dstFldId: string): WbxmlElement {
  return el('Move', 'Move', [
    el('Move', 'SrcMsgId', srcMsgId),
    el('Move', 'SrcFldId', srcFldId),
    el('Move', 'DstFldId', dstFldId),
  ]);
}

async function moveItems(device: TestDevice, moves: WbxmlElement[]): Promise<{ status: string; dst?: string }[]> {
  const body = await device.command('MoveItems', el('Move', 'MoveItems', moves));
  return children(body, 'Response').map((r) => {
    const dst = childText(r, 'DstMsgId');
    return { status: childText(r, 'Status')!, ...(dst !== undefined ? { dst } : {}) };
  });
}

describe('MoveItems of calendar, task and contact items', () => {
  it('moves between calendars, task lists and address books once, even resent; across classes is Status 5', async () => {
    const user = createUser(services);
    const event = makeEvent({ summary: 'Dentist', start: '2026-03-02T09:00:00' });
    const todo = makeTodo({ summary: 'File taxes' });
    const card = makeVCard({ firstName: 'Ada', lastName: 'Lovelace' });
    const home = await seedCalendar(services, user, 'home', [event], { displayName: 'Home' });
    const work = await seedCalendar(services, user, 'work', [], { displayName: 'Work' });
    const chores = await seedCalendar(services, user, 'chores', [todo], {
      displayName: 'Chores',
      components: ['VTODO'],
    });
    const errands = await seedCalendar(services, user, 'errands', [], {
      displayName: 'Errands',
      components: ['VTODO'],
    });
    const people = await seedAddressBook(services, user, 'people', [card], { displayName: 'People' });
    const friends = await seedAddressBook(services, user, 'friends', [], { displayName: 'Friends' });

    const device = new TestDevice(server, user);
    await device.folderSync();
    const id = (name: string): string => device.folderByName(name).serverId;
    for (const name of ['Home', 'Work', 'Chores', 'Errands', 'People', 'Friends']) await device.syncUntilDone(id(name));

    const cases = [
      { from: 'Home', to: 'Work', src: home, dst: work, uid: uidOf(event)! },
      { from: 'Chores', to: 'Errands', src: chores, dst: errands, uid: uidOf(todo)! },
      { from: 'People', to: 'Friends', src: people, dst: friends, uid: uidOf(card)! },
    ];
    for (const c of cases) {
      const [serverId] = [...device.items(id(c.from)).keys()];
      const request = [move(serverId!, id(c.from), id(c.to))];
      // The answer is lost; the device sends the same request again and gets the same answer.
      const first = await moveItems(device, request);
      const again = await moveItems(device, request);
      expect(first).toEqual([{ status: '3', dst: expect.stringMatching(new RegExp(`^${id(c.to)}:`)) }]);
      expect(again).toEqual(first);
      expect(await uidsIn(user, c.src.collectionUrl)).toEqual([]);
      expect(await uidsIn(user, c.dst.collectionUrl)).toEqual([c.uid]);

      // The device moved its copy; Syncs of both folders have nothing to say about it.
      const item = device.items(id(c.from)).get(serverId!)!;
      device.items(id(c.from)).delete(serverId!);
      device.items(id(c.to)).set(first[0]!.dst!, item);
      const source = await device.sync(id(c.from));
      const destination = await device.sync(id(c.to));
      expect([...source.added, ...source.changed, ...source.deleted, ...source.softDeleted]).toEqual([]);
      expect([...destination.added, ...destination.changed, ...destination.deleted]).toEqual([]);
      expect([...device.items(id(c.to)).keys()]).toEqual([first[0]!.dst]);
    }

    // Across classes: a contact into a calendar, an event into a task list, mail into a calendar. Nothing moves.
    const contact = [...device.items(id('Friends')).keys()][0]!;
    const meeting = [...device.items(id('Work')).keys()][0]!;
    const inbox = device.folderByType(2).serverId;
    const refused = await moveItems(device, [
      move(contact, id('Friends'), id('Home')),
      move(meeting, id('Work'), id('Errands')),
      move(`${inbox}:1`, inbox, id('Home')),
      move(meeting, id('Work'), id('Work')),
      move(`${id('Work')}:nosuchitem0000`, id('Work'), id('Home')),
    ]);
    expect(refused.map((r) => r.status)).toEqual(['5', '5', '5', '4', '1']);
    expect(await uidsIn(user, friends.collectionUrl)).toEqual([uidOf(card)]);
    expect(await uidsIn(user, work.collectionUrl)).toEqual([uidOf(event)]);
    expect(await uidsIn(user, home.collectionUrl)).toEqual([]);
  });
});
