/**
 * 16.x Sync of one occurrence of a recurring event (MS-ASCMD Change/Delete with airsyncbase:InstanceId; MS-ASAIRS
 * §2.2.2.25), against the real Radicale through the scripted device: a Change with InstanceId writes a RECURRENCE-ID
 * override, a Delete with InstanceId an EXDATE (removing the override), the series stays on the device, and another
 * device sees the exceptions.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { child, children, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, davRequest, makeEvent, seedCalendar } from '../../services/seed.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

function unfolded(text: string): string {
  return text.replace(/\r?\n[ \t]/g, '');
}

/** The Exceptions a device got for an event: InstanceId → the Exception element. */
function exceptionsOf(data: WbxmlElement | undefined): Map<string, WbxmlElement> {
  return new Map(
    children(child(data, 'Exceptions', 'Calendar'), 'Exception', 'Calendar').map((e) => [
      childText(e, 'InstanceId', 'AirSyncBase') ?? '',
      e,
    ]),
  );
}

describe('16.x Sync of single occurrences', () => {
  it('a Change with InstanceId makes an override, a Delete with InstanceId an EXDATE; another device sees both', async () => {
    const user = createUser(services);
    // Mondays 09:00 Berlin (08:00Z before the DST change on 29 March, 07:00Z after).
    const seeded = await seedCalendar(
      services,
      user,
      'calendar',
      [
        makeEvent({
          summary: 'Standup',
          start: '2026-03-02T09:00:00',
          tz: 'Europe/Berlin',
          rrule: 'FREQ=WEEKLY;COUNT=6',
        }),
      ],
      { displayName: 'Calendar' },
    );
    const phone = new TestDevice(server, user, undefined, '16.0');
    await phone.folderSync();
    const calendar = phone.folderByName('Calendar').serverId;
    await phone.syncUntilDone(calendar);
    const [eventId] = [...phone.items(calendar).keys()];

    // The occurrence of 9 March moved to 10:00 and renamed; the one of 16 March deleted.
    const round = await phone.sync(calendar, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', eventId!),
          el('AirSyncBase', 'InstanceId', '20260309T080000Z'),
          el('AirSync', 'ApplicationData', [
            el('Calendar', 'Subject', 'Standup (moved)'),
            el('Calendar', 'StartTime', '20260309T090000Z'),
            el('Calendar', 'EndTime', '20260309T100000Z'),
          ]),
        ]),
        el('AirSync', 'Delete', [
          el('AirSync', 'ServerId', eventId!),
          el('AirSyncBase', 'InstanceId', '20260316T080000Z'),
        ]),
      ],
    });
    expect(round.status).toBe(1);
    expect(child(round.collection, 'Responses')).toBeUndefined(); // both succeeded: no per-item answers
    expect(phone.items(calendar).has(eventId!)).toBe(true); // the series stays
    expect(round.changed).toEqual([]); // its own writes are not sent back

    const stored = unfolded(await (await davRequest(services, user, 'GET', seeded.items[0]!.url)).text());
    const [master, override, more] = stored.split('BEGIN:VEVENT').slice(1);
    expect(more).toBeUndefined();
    expect(master).toMatch(/^RRULE:FREQ=WEEKLY;COUNT=6/m);
    expect(master).toMatch(/^EXDATE;TZID=Europe\/Berlin:20260316T090000/m);
    expect(master).toMatch(/^SUMMARY:Standup$/m);
    expect(override).toMatch(/^RECURRENCE-ID;TZID=Europe\/Berlin:20260309T090000$/m);
    expect(override).toMatch(/^SUMMARY:Standup \(moved\)$/m);
    expect(override).toMatch(/^DTSTART[^\n]*(20260309T100000|20260309T090000Z)/m);

    // Another device gets the series with both exceptions.
    const tablet = new TestDevice(server, user, undefined, '16.0');
    await tablet.folderSync();
    await tablet.syncUntilDone(calendar);
    const event = tablet.items(calendar).get(eventId!);
    expect(itemText(event, 'Subject', 'Calendar')).toBe('Standup');
    const exceptions = exceptionsOf(event);
    expect(childText(exceptions.get('20260309T080000Z'), 'Subject', 'Calendar')).toBe('Standup (moved)');
    expect(childText(exceptions.get('20260309T080000Z'), 'StartTime', 'Calendar')).toBe('20260309T090000Z');
    expect(childText(exceptions.get('20260316T080000Z'), 'Deleted', 'Calendar')).toBe('1');

    // Deleting the moved occurrence: its override goes, an EXDATE takes its place; the tablet gets the Change.
    const again = await phone.sync(calendar, {
      commands: [
        el('AirSync', 'Delete', [
          el('AirSync', 'ServerId', eventId!),
          el('AirSyncBase', 'InstanceId', '20260309T080000Z'),
        ]),
      ],
    });
    expect(again.status).toBe(1);
    const after = unfolded(await (await davRequest(services, user, 'GET', seeded.items[0]!.url)).text());
    expect(after.match(/^BEGIN:VEVENT/gm)).toHaveLength(1);
    expect(after).not.toMatch(/^RECURRENCE-ID/m);
    expect(after).toMatch(/20260309T090000/); // in an EXDATE now
    expect(after).toMatch(/20260316T090000/);
    const changed = await tablet.sync(calendar);
    expect(changed.changed).toEqual([eventId]);
    const deleted = exceptionsOf(tablet.items(calendar).get(eventId!));
    expect(childText(deleted.get('20260309T080000Z'), 'Deleted', 'Calendar')).toBe('1');
    expect(childText(deleted.get('20260316T080000Z'), 'Deleted', 'Calendar')).toBe('1');
  });

  it('a Change with an InstanceId that is not a time is refused (Status 6, the answer names the instance); an unknown item is 8', async () => {
    const user = createUser(services);
    await seedCalendar(
      services,
      user,
      'calendar',
      [
        makeEvent({
          summary: 'Weekly',
          start: '2026-03-02T09:00:00',
          tz: 'Europe/Berlin',
          rrule: 'FREQ=WEEKLY;COUNT=3',
        }),
      ],
      { displayName: 'Calendar' },
    );
    const phone = new TestDevice(server, user, undefined, '16.1');
    await phone.folderSync();
    const calendar = phone.folderByName('Calendar').serverId;
    await phone.syncUntilDone(calendar);
    const [eventId] = [...phone.items(calendar).keys()];
    const round = await phone.sync(calendar, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', eventId!),
          el('AirSyncBase', 'InstanceId', 'yesterday'),
          el('AirSync', 'ApplicationData', [el('Calendar', 'Subject', 'x')]),
        ]),
        el('AirSync', 'Delete', [
          el('AirSync', 'ServerId', `${calendar}:nothere`),
          el('AirSyncBase', 'InstanceId', '20260309T080000Z'),
        ]),
      ],
    });
    expect(round.status).toBe(1);
    const [change, del] = child(round.collection, 'Responses')!.children;
    expect(change?.tag).toBe('Change');
    expect(childText(change, 'InstanceId', 'AirSyncBase')).toBe('yesterday');
    expect(childText(change, 'Status')).toBe('6');
    expect(del?.tag).toBe('Delete');
    expect(childText(del, 'Status')).toBe('8');
  });
});
