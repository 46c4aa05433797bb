import ICAL from 'ical.js';
import { describe, expect, it } from 'vitest';
import { loadDavFixture } from '../../test/fixtures/dav/fixtures.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { child, el, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import { taskApplicationData, taskFromApplicationData, type TaskOutputOptions } from './task.ts';

const NOW = new Date('2024-06-20T10:00:00Z');
const THUNDERBIRD = loadDavFixture('thunderbird-todo.ics');
const REMINDER = loadDavFixture('apple-reminder-completed.ics');

function toDevice(ics: string, options: Partial<TaskOutputOptions> = {}): WbxmlElement[] {
  const app = taskApplicationData(ics, { version: '14.1', bodyPreferences: [], timezone: 'Europe/Berlin', ...options });
  if (!app) throw new Error('no task');
  return app;
}

function appData(items: WbxmlElement[]): WbxmlElement {
  return el('AirSync', 'ApplicationData', items);
}

function fromDevice(items: WbxmlElement[], options: Parameters<typeof taskFromApplicationData>[1] = {}): string {
  return taskFromApplicationData(appData(items), { timezone: 'Europe/Berlin', now: NOW, ...options });
}

/** Element name → text (containers: their children as tag=text, joined by |; Body: its Data). */
function fields(items: WbxmlElement[]): Record<string, string> {
  return Object.fromEntries(
    items.map((e) => [
      e.tag,
      e.tag === 'Body'
        ? textOf(child(e, 'Data', 'AirSyncBase'))
        : e.children.length > 0
          ? e.children.map((c) => (e.tag === 'Categories' ? textOf(c) : `${c.tag}=${textOf(c)}`)).join('|')
          : textOf(e),
    ]),
  );
}

function todo(ics: string): ICAL.Component {
  return new ICAL.Component(ICAL.parse(ics)).getFirstSubcomponent('vtodo')!;
}

describe('VTODO → Tasks', () => {
  it("converts Thunderbird's task: zoned start and due, high priority, private, an alarm a day before due", () => {
    expect(fields(toDevice(THUNDERBIRD))).toEqual({
      Body: 'Belege sammeln\nELSTER-Zugang prüfen',
      Subject: 'Steuererklärung abgeben',
      Importance: '2',
      UtcStartDate: '2024-06-01T07:00:00.000Z',
      StartDate: '2024-06-01T09:00:00.000Z',
      UtcDueDate: '2024-07-31T16:00:00.000Z',
      DueDate: '2024-07-31T18:00:00.000Z',
      Categories: 'Finanzen',
      Complete: '0',
      Sensitivity: '2',
      ReminderTime: '2024-07-30T16:00:00.000Z',
      ReminderSet: '1',
    });
  });

  it('converts a completed Apple reminder: a due day without time, low priority, DateCompleted', () => {
    expect(fields(toDevice(REMINDER))).toEqual({
      Subject: 'Renew passport',
      Importance: '0',
      UtcDueDate: '2024-06-08T22:00:00.000Z',
      DueDate: '2024-06-09T00:00:00.000Z',
      Complete: '1',
      DateCompleted: '2024-06-10T07:15:22.000Z',
      Sensitivity: '0',
      ReminderSet: '0',
    });
    expect(fields(toDevice(REMINDER, { timezone: undefined })).UtcDueDate).toBe('2024-06-09T00:00:00.000Z');
  });

  it("sends a UTC due time on the user's local clock as DueDate", () => {
    const ics = THUNDERBIRD.replace('DUE;TZID=Europe/Berlin:20240731T180000', 'DUE:20240731T160000Z');
    expect(fields(toDevice(ics))).toMatchObject({
      UtcDueDate: '2024-07-31T16:00:00.000Z',
      DueDate: '2024-07-31T18:00:00.000Z',
    });
    expect(fields(toDevice(ics, { timezone: 'America/New_York' }))).toMatchObject({
      DueDate: '2024-07-31T12:00:00.000Z',
    });
  });

  it('sends a recurring task with its recurrence, Start on the local clock', () => {
    const ics = THUNDERBIRD.replace('X-MOZ-GENERATION:3', 'RRULE:FREQ=MONTHLY;BYMONTHDAY=1;COUNT=6');
    expect(fields(toDevice(ics)).Recurrence).toBe(
      'Type=2|Start=2024-06-01T09:00:00.000Z|Occurrences=6|Interval=1|DayOfMonth=1|Regenerate=0|DeadOccur=0',
    );
  });

  it('returns undefined for an object without VTODO', () => {
    expect(
      taskApplicationData(loadDavFixture('apple-allday.ics'), { version: '14.1', bodyPreferences: [] }),
    ).toBeUndefined();
  });
});

describe('device → server → device', () => {
  /** What an iOS (14.1) client sends for a new recurring task due on a day, with a reminder. */
  const added = (): WbxmlElement[] => [
    el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', 1), el('AirSyncBase', 'Data', 'Bins out by 7')]),
    el('Tasks', 'Subject', 'Take out the bins'),
    el('Tasks', 'Importance', 1),
    el('Tasks', 'UtcStartDate', '2024-06-23T22:00:00.000Z'),
    el('Tasks', 'StartDate', '2024-06-24T00:00:00.000Z'),
    el('Tasks', 'UtcDueDate', '2024-06-23T22:00:00.000Z'),
    el('Tasks', 'DueDate', '2024-06-24T00:00:00.000Z'),
    el('Tasks', 'Categories', [el('Tasks', 'Category', 'Home')]),
    el('Tasks', 'Recurrence', [
      el('Tasks', 'Type', 1),
      el('Tasks', 'Start', '2024-06-24T00:00:00.000Z'),
      el('Tasks', 'Until', '2024-12-30T00:00:00.000Z'),
      el('Tasks', 'Interval', 1),
      el('Tasks', 'DayOfWeek', 2),
      el('Tasks', 'Regenerate', 0),
      el('Tasks', 'DeadOccur', 0),
    ]),
    el('Tasks', 'Complete', 0),
    el('Tasks', 'Sensitivity', 0),
    el('Tasks', 'ReminderTime', '2024-06-24T05:00:00.000Z'),
    el('Tasks', 'ReminderSet', 1),
  ];

  it('gives the same fields back, through DATE values and an absolute alarm', () => {
    const ics = fromDevice(added());
    expect(ics).toContain('DTSTART;VALUE=DATE:20240624');
    expect(ics).toContain('DUE;VALUE=DATE:20240624');
    expect(ics).toContain('RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20241230');
    expect(ics).toContain('TRIGGER;VALUE=DATE-TIME:20240624T050000Z');
    expect(fields(toDevice(ics))).toEqual(fields(added()));
  });

  it("writes a timed due date in the user's zone when it gives the device's local time, else in UTC", () => {
    const zoned = fromDevice([
      el('Tasks', 'Subject', 'Call'),
      el('Tasks', 'UtcDueDate', '2024-06-24T16:00:00.000Z'),
      el('Tasks', 'DueDate', '2024-06-24T18:00:00.000Z'),
    ]);
    expect(zoned).toContain('DUE;TZID=Europe/Berlin:20240624T180000');
    expect(zoned).toContain('BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin');
    const travelling = fromDevice([
      el('Tasks', 'UtcDueDate', '2024-06-24T16:00:00.000Z'),
      el('Tasks', 'DueDate', '2024-06-24T12:00:00.000Z'),
    ]);
    expect(travelling).toContain('DUE:20240624T160000Z');
    expect(fields(toDevice(zoned))).toMatchObject({
      UtcDueDate: '2024-06-24T16:00:00.000Z',
      DueDate: '2024-06-24T18:00:00.000Z',
    });
  });

  it('keeps the Regenerate and DeadOccur flags', () => {
    const flags = added().map((e) =>
      e.tag === 'Recurrence'
        ? el(
            'Tasks',
            'Recurrence',
            e.children.map((c) => (c.tag === 'Regenerate' || c.tag === 'DeadOccur' ? el('Tasks', c.tag, 1) : c)),
          )
        : e,
    );
    const ics = fromDevice(flags);
    expect(ics).toContain('X-ACTIVESYNC-REGENERATE:1');
    expect(fields(toDevice(ics)).Recurrence).toContain('Regenerate=1|DeadOccur=1');
  });
});

describe('changes (merges into the server copy)', () => {
  it('completes a Thunderbird task and keeps its zone, alarm and Mozilla properties', () => {
    const app = toDevice(THUNDERBIRD).map((e) => (e.tag === 'Complete' ? el('Tasks', 'Complete', 1) : e));
    const ics = fromDevice([...app, el('Tasks', 'DateCompleted', '2024-06-19T15:30:00.000Z')], {
      existing: THUNDERBIRD,
    });
    const task = todo(ics);
    expect(task.getFirstPropertyValue('status')).toBe('COMPLETED');
    expect(task.getFirstPropertyValue('percent-complete')).toBe(100);
    expect(ics).toContain('COMPLETED:20240619T153000Z');
    expect(ics).toContain('DTSTART;TZID=Europe/Berlin:20240601T090000');
    expect(ics).toContain('DUE;TZID=Europe/Berlin:20240731T180000');
    expect(ics).toContain('TRIGGER;RELATED=END:-P1D');
    expect(ics).toContain('X-MOZ-GENERATION:3');
    expect(ics).toContain('TZOFFSETTO:+010000'); // Thunderbird's VTIMEZONE as it was
    expect(fields(toDevice(ics))).toMatchObject({ Complete: '1', DateCompleted: '2024-06-19T15:30:00.000Z' });
  });

  it('reopens a completed reminder', () => {
    const ics = fromDevice([el('Tasks', 'Complete', 0)], { existing: REMINDER });
    const task = todo(ics);
    expect(task.getFirstPropertyValue('status')).toBe('NEEDS-ACTION');
    expect(task.hasProperty('completed')).toBe(false);
    expect(task.hasProperty('percent-complete')).toBe(false);
  });

  it('keeps a PRIORITY that already means the importance, and maps others', () => {
    const three = THUNDERBIRD.replace('PRIORITY:1', 'PRIORITY:3');
    expect(
      todo(fromDevice([el('Tasks', 'Importance', 2)], { existing: three })).getFirstPropertyValue('priority'),
    ).toBe(3);
    expect(
      todo(fromDevice([el('Tasks', 'Importance', 0)], { existing: three })).getFirstPropertyValue('priority'),
    ).toBe(9);
    expect(todo(fromDevice([el('Tasks', 'Importance', 1)], { existing: three })).hasProperty('priority')).toBe(false);
  });

  it('turns the reminder off, or moves it to an absolute time', () => {
    const off = fromDevice([el('Tasks', 'ReminderSet', 0)], { existing: THUNDERBIRD });
    expect(todo(off).getAllSubcomponents('valarm')).toHaveLength(0);
    const moved = fromDevice([el('Tasks', 'ReminderSet', 1), el('Tasks', 'ReminderTime', '2024-07-31T06:00:00.000Z')], {
      existing: THUNDERBIRD,
    });
    expect(moved).toContain('TRIGGER;VALUE=DATE-TIME:20240731T060000Z');
    expect(todo(moved).getAllSubcomponents('valarm')).toHaveLength(1);
  });

  it('keeps absent elements unless the Supported list names them', () => {
    const kept = todo(fromDevice([el('Tasks', 'Subject', 'Steuer')], { existing: THUNDERBIRD }));
    expect(kept.hasProperty('due')).toBe(true);
    expect(kept.getFirstPropertyValue('categories')).toBe('Finanzen');
    const deleted = todo(
      fromDevice([el('Tasks', 'Subject', 'Steuer')], {
        existing: THUNDERBIRD,
        supported: ['UtcDueDate', 'DueDate', 'Categories', 'Body', 'ReminderSet', 'ReminderTime'],
      }),
    );
    expect(deleted.hasProperty('due')).toBe(false);
    expect(deleted.hasProperty('categories')).toBe(false);
    expect(deleted.hasProperty('description')).toBe(false);
    expect(deleted.getAllSubcomponents('valarm')).toHaveLength(0);
    expect(deleted.hasProperty('dtstart')).toBe(true);
  });

  it('encodes as WBXML', () => {
    expect(() =>
      encodeWbxml(appData(toDevice(THUNDERBIRD.replace('X-MOZ-GENERATION:3', 'RRULE:FREQ=WEEKLY;BYDAY=SA')))),
    ).not.toThrow();
  });
});
