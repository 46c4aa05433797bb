/**
 * FilterType for calendars (a past window; recurring events judged by their occurrences) and tasks (8: incomplete
 * only), against the real Radicale through the scripted device: what is sent, and what leaves the device as
 * SoftDelete when it ages out of the window or is completed.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { child, childText, el } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, makeEvent, makeTodo, seedCalendar } from '../../services/seed.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

const DAY = 86_400_000;

/** A UTC wall time `ms` from now, as makeEvent takes it. */
function at(ms: number): string {
  return new Date(Date.now() + ms).toISOString().slice(0, 19);
}

async function estimate(device: TestDevice, collectionId: string): Promise<number | undefined> {
  const body = await device.command(
    'GetItemEstimate',
    el('GetItemEstimate', 'GetItemEstimate', [
      el('GetItemEstimate', 'Collections', [
        el('GetItemEstimate', 'Collection', [
          el('AirSync', 'SyncKey', device.collections.get(collectionId)!.syncKey),
          el('GetItemEstimate', 'CollectionId', collectionId),
        ]),
      ]),
    ]),
  );
  const response = child(body, 'Response');
  expect(childText(response, 'Status')).toBe('1');
  const value = childText(child(response, 'Collection'), 'Estimate');
  return value === undefined ? undefined : Number(value);
}

function subjects(device: TestDevice, collectionId: string, ns: 'Calendar' | 'Tasks'): string[] {
  return [...device.items(collectionId).values()].map((d) => itemText(d, 'Subject', ns) ?? '').sort();
}

describe('Calendar FilterType', () => {
  it('sends what ends inside the window, recurring series by their occurrences, and ages items out as SoftDelete', async () => {
    const user = createUser(services);
    // 'Edge' ends 14 days ago plus a few seconds: inside the two-week window at first, outside it a little later.
    const edgeEnd = Date.now() - 14 * DAY + 6_000;
    const seeded = await seedCalendar(
      services,
      user,
      'cal',
      [
        makeEvent({ uid: 'old', summary: 'Old', start: at(-60 * DAY), tz: 'UTC' }),
        makeEvent({ uid: 'recent', summary: 'Recent', start: at(-3 * DAY), tz: 'UTC' }),
        makeEvent({ uid: 'future', summary: 'Future', start: at(10 * DAY), tz: 'UTC' }),
        // Weekly for 14 weeks from 100 days ago: the last occurrence is 9 days ago, inside two weeks.
        makeEvent({
          uid: 'series-in',
          summary: 'Series in window',
          start: at(-100 * DAY),
          tz: 'UTC',
          rrule: 'FREQ=WEEKLY;COUNT=14',
        }),
        // Weekly for 10 weeks from 200 days ago: over 130 days ago.
        makeEvent({
          uid: 'series-out',
          summary: 'Series ended',
          start: at(-200 * DAY),
          tz: 'UTC',
          rrule: 'FREQ=WEEKLY;COUNT=10',
        }),
        // Began a year ago and never ends.
        makeEvent({ uid: 'forever', summary: 'Forever', start: at(-365 * DAY), tz: 'UTC', rrule: 'FREQ=MONTHLY' }),
        makeEvent({
          uid: 'edge',
          summary: 'Edge',
          start: new Date(edgeEnd - 3_600_000).toISOString().slice(0, 19),
          tz: 'UTC',
        }),
      ],
      { displayName: 'Cal' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const cal = device.folderByName('Cal').serverId;
    await device.syncUntilDone(cal, { options: [el('AirSync', 'FilterType', '4')] });
    expect(subjects(device, cal, 'Calendar')).toEqual(['Edge', 'Forever', 'Future', 'Recent', 'Series in window']);

    // An edit that moves an event out of the window removes it from the device; one that moves it in adds it.
    await seedCalendar(services, user, 'cal', [
      makeEvent({ uid: 'recent', summary: 'Recent (moved back)', start: at(-40 * DAY), tz: 'UTC' }),
      makeEvent({ uid: 'old', summary: 'Old (moved up)', start: at(-1 * DAY), tz: 'UTC' }),
    ]);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, edgeEnd + 14 * DAY - Date.now() + 1_500)));
    const round = await device.sync(cal);
    expect(round.softDeleted).toHaveLength(2); // 'Recent', moved out; 'Edge', aged out
    expect(round.deleted).toEqual([]);
    expect(subjects(device, cal, 'Calendar')).toEqual(['Forever', 'Future', 'Old (moved up)', 'Series in window']);
    expect(seeded.items).toHaveLength(7);

    // Nothing more to say afterwards.
    const quiet = await device.sync(cal);
    expect([...quiet.added, ...quiet.changed, ...quiet.softDeleted, ...quiet.deleted]).toEqual([]);
  });

  it('FilterType 0 sends everything', async () => {
    const user = createUser(services);
    await seedCalendar(
      services,
      user,
      'all',
      [
        makeEvent({ summary: 'Ancient', start: at(-900 * DAY), tz: 'UTC' }),
        makeEvent({ summary: 'Now', start: at(0), tz: 'UTC' }),
      ],
      { displayName: 'All' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const all = device.folderByName('All').serverId;
    await device.syncUntilDone(all, { options: [el('AirSync', 'FilterType', '0')] });
    expect(subjects(device, all, 'Calendar')).toEqual(['Ancient', 'Now']);
  });
});

describe('Tasks FilterType 8', () => {
  it('sends only incomplete tasks (a recurring one among them); a task completed on the server leaves the device', async () => {
    const user = createUser(services);
    await seedCalendar(
      services,
      user,
      'todo',
      [
        makeTodo({
          uid: 'weekly',
          summary: 'Water plants',
          start: '2026-03-02',
          due: '2026-03-02',
          rrule: 'FREQ=WEEKLY;BYDAY=MO',
        }),
        makeTodo({ uid: 'open', summary: 'Open task', due: '2026-04-01' }),
        makeTodo({ uid: 'done', summary: 'Done task', due: '2026-02-01', completed: true }),
      ],
      { displayName: 'Todo', components: ['VTODO'] },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const todo = device.folderByName('Todo').serverId;
    await device.syncUntilDone(todo, { options: [el('AirSync', 'FilterType', '8')] });
    expect(subjects(device, todo, 'Tasks')).toEqual(['Open task', 'Water plants']);
    const weekly = [...device.items(todo).values()].find((d) => itemText(d, 'Subject', 'Tasks') === 'Water plants');
    expect(weekly?.children.some((c) => c.tag === 'Recurrence' && c.ns === 'Tasks')).toBe(true);

    await seedCalendar(services, user, 'todo', [
      makeTodo({ uid: 'open', summary: 'Open task', due: '2026-04-01', completed: true }),
      makeTodo({ uid: 'done', summary: 'Done task (reopened)', due: '2026-02-01' }),
    ]);
    // GetItemEstimate counts what the next Sync sends: the completed task going, the reopened one coming.
    expect(await estimate(device, todo)).toBe(2);
    const round = await device.sync(todo);
    expect(await estimate(device, todo)).toBe(0);
    expect(round.softDeleted).toHaveLength(1);
    expect(round.added).toHaveLength(1);
    expect(subjects(device, todo, 'Tasks')).toEqual(['Done task (reopened)', 'Water plants']);
  });
});
