import fc from 'fast-check';
import ICAL from 'ical.js';
import { describe, expect, it } from 'vitest';
import { el, type WbxmlElement } from '../wbxml/tree.ts';
import { instantIn, timeIn, UTC_ZONE, zoneOfTzid, parseCalendar, addMissingTimezones, type Zone } from './icalendar.ts';
import {
  exceptionOriginalStart,
  exceptionStartElement,
  readRecurrence,
  recurrenceElement,
  recurrenceFromRule,
  recurrenceToRule,
  type Recurrence,
  type SeriesTimes,
} from './recurrence.ts';

/** A series starting at a local time in a zone (Berlin by default), as calendar-event.ts builds it. */
function series(start: string, zone: Zone = berlin()): SeriesTimes {
  const isDate = !start.includes('T');
  const fields = isDate
    ? { year: +start.slice(0, 4), month: +start.slice(5, 7), day: +start.slice(8, 10), isDate: true }
    : {
        year: +start.slice(0, 4),
        month: +start.slice(5, 7),
        day: +start.slice(8, 10),
        hour: +start.slice(11, 13),
        minute: +start.slice(14, 16),
        second: 0,
        isDate: false,
      };
  const time =
    zone.kind === 'tzid' && !isDate
      ? ICAL.Time.fromData(fields, zone.ical)
      : ICAL.Time.fromData(fields, zone.kind === 'utc' && !isDate ? ICAL.Timezone.utcTimezone : undefined);
  return {
    start: time,
    toSeriesTime: (instant, asDate) => timeIn(zone, instant, asDate),
    toInstant: (t) => instantIn(zone, t),
  };
}

function berlin(): Zone {
  const parsed = parseCalendar(
    'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART;TZID=Europe/Berlin:20240101T090000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n',
  );
  addMissingTimezones(parsed, 2024);
  return zoneOfTzid(parsed, 'Europe/Berlin')!;
}

/** The first `count` occurrence instants of a rule from a start (ical.js). */
function expand(rule: ICAL.Recur, times: SeriesTimes, count = 40): string[] {
  const iterator = rule.iterator(times.start);
  const out: string[] = [];
  for (let next = iterator.next(); next && out.length < count; next = iterator.next()) {
    out.push(next.isDate ? next.toString() : times.toInstant(next).toISOString());
  }
  return out;
}

function rrule(text: string): ICAL.Recur {
  return ICAL.Recur.fromString(text);
}

describe('RRULE ⇄ ActiveSync Recurrence', () => {
  // start (Berlin local), RRULE, the ActiveSync form.
  const cases: [string, string, Partial<Recurrence>][] = [
    ['2024-01-15T09:00', 'FREQ=DAILY;INTERVAL=2;COUNT=10', { type: 0, interval: 2, occurrences: 10 }],
    ['2024-01-15T09:00', 'FREQ=WEEKLY;BYDAY=MO,WE,FR', { type: 1, interval: 1, dayOfWeek: 2 | 8 | 32 }],
    ['2024-01-15T09:00', 'FREQ=WEEKLY;INTERVAL=2', { type: 1, interval: 2, dayOfWeek: 2 }],
    [
      '2024-01-15T09:00',
      'FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;WKST=SU',
      { type: 1, interval: 1, dayOfWeek: 62, firstDayOfWeek: 0 },
    ],
    ['2024-01-15T09:00', 'FREQ=MONTHLY;BYMONTHDAY=15', { type: 2, interval: 1, dayOfMonth: 15 }],
    ['2024-01-15T09:00', 'FREQ=MONTHLY', { type: 2, interval: 1, dayOfMonth: 15 }],
    ['2024-01-09T09:00', 'FREQ=MONTHLY;BYDAY=2TU', { type: 3, interval: 1, weekOfMonth: 2, dayOfWeek: 4 }],
    ['2024-01-26T09:00', 'FREQ=MONTHLY;BYDAY=-1FR', { type: 3, interval: 1, weekOfMonth: 5, dayOfWeek: 32 }],
    [
      '2024-01-01T09:00',
      'FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1',
      { type: 3, interval: 1, weekOfMonth: 1, dayOfWeek: 62 },
    ],
    ['2024-01-31T09:00', 'FREQ=MONTHLY;BYMONTHDAY=-1', { type: 3, interval: 1, weekOfMonth: 5, dayOfWeek: 127 }],
    [
      '2024-03-21T09:00',
      'FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=21',
      { type: 5, interval: 1, monthOfYear: 3, dayOfMonth: 21 },
    ],
    ['2024-03-21T09:00', 'FREQ=YEARLY', { type: 5, interval: 1, monthOfYear: 3, dayOfMonth: 21 }],
    [
      '2024-11-28T09:00',
      'FREQ=YEARLY;BYMONTH=11;BYDAY=4TH',
      { type: 6, interval: 1, monthOfYear: 11, weekOfMonth: 4, dayOfWeek: 16 },
    ],
    [
      '2024-05-27T09:00',
      'FREQ=YEARLY;BYMONTH=5;BYDAY=-1MO;COUNT=5',
      { type: 6, interval: 1, monthOfYear: 5, weekOfMonth: 5, dayOfWeek: 2, occurrences: 5 },
    ],
    ['2024-01-15T09:00', 'FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR', { type: 1, interval: 1, dayOfWeek: 62 }],
  ];

  it.each(cases)('%s %s', (start, text, expected) => {
    const times = series(start);
    const recurrence = recurrenceFromRule(rrule(text), times)!;
    expect(recurrence).toEqual(expected);
    // And back: the RRULE written for it has the same occurrences.
    expect(expand(recurrenceToRule(recurrence, times), times)).toEqual(expand(rrule(text), times));
  });

  it('reads UNTIL as an instant, and writes it in UTC for zoned series and as a DATE for all-day ones', () => {
    const times = series('2024-03-04T09:30');
    const recurrence = recurrenceFromRule(rrule('FREQ=WEEKLY;BYDAY=MO;UNTIL=20240429T073000Z'), times)!;
    expect(recurrence.until?.toISOString()).toBe('2024-04-29T07:30:00.000Z');
    expect(recurrenceToRule(recurrence, times).toString()).toBe('FREQ=WEEKLY;BYDAY=MO;UNTIL=20240429T073000Z');

    const allDay = series('2024-08-12', UTC_ZONE);
    const dated = recurrenceFromRule(rrule('FREQ=DAILY;UNTIL=20240815'), allDay)!;
    expect(dated.until?.toISOString()).toBe('2024-08-15T00:00:00.000Z');
    expect(recurrenceToRule(dated, allDay).toString()).toBe('FREQ=DAILY;UNTIL=20240815');
  });

  it("takes a device's Until at midnight of the last day as including that day's occurrence", () => {
    const times = series('2024-03-04T09:30');
    // Until = midnight (Berlin) of Monday 29 April: the 09:30 occurrence that day is meant to be included.
    const rule = recurrenceToRule(
      { type: 1, interval: 1, dayOfWeek: 2, until: new Date('2024-04-28T22:00:00Z') },
      times,
    );
    expect(rule.toString()).toBe('FREQ=WEEKLY;BYDAY=MO;UNTIL=20240429T073000Z');
    expect(expand(rule, times).at(-1)).toBe('2024-04-29T07:30:00.000Z');
  });

  it('reads a DATE UNTIL of a timed series (seen in the wild) as through that day', () => {
    const times = series('2024-03-04T09:30');
    expect(recurrenceFromRule(rrule('FREQ=DAILY;UNTIL=20240310'), times)!.until?.toISOString()).toBe(
      '2024-03-10T08:30:00.000Z',
    );
  });

  it('has no ActiveSync form for rules outside the table', () => {
    const times = series('2024-01-01T09:00');
    for (const text of [
      'FREQ=MONTHLY;BYDAY=1MO,3MO',
      'FREQ=MONTHLY;BYMONTHDAY=1,15',
      'FREQ=MONTHLY;BYDAY=5MO',
      'FREQ=DAILY;BYHOUR=9,17',
      'FREQ=YEARLY;BYWEEKNO=20',
      'FREQ=YEARLY;BYYEARDAY=100',
      'FREQ=YEARLY;BYMONTH=1,7',
      'FREQ=HOURLY;INTERVAL=4',
      'FREQ=WEEKLY;BYDAY=1MO',
      'FREQ=DAILY;INTERVAL=2;BYDAY=MO,FR',
      'FREQ=YEARLY;BYDAY=-1SU',
    ]) {
      expect(recurrenceFromRule(rrule(text), times), text).toBeUndefined();
    }
  });

  it('maps Type 0 with DayOfWeek ("every weekday") to a weekly rule', () => {
    const times = series('2024-01-15T09:00');
    expect(recurrenceToRule({ type: 0, interval: 1, dayOfWeek: 62 }, times).toString()).toBe(
      'FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR',
    );
  });

  it('fills what a device leaves out from the start (weekday, day, week and month)', () => {
    const times = series('2024-05-27T09:00'); // the last Monday of May
    expect(recurrenceToRule({ type: 1, interval: 1 }, times).toString()).toBe('FREQ=WEEKLY;BYDAY=MO');
    expect(recurrenceToRule({ type: 2, interval: 1 }, times).toString()).toBe('FREQ=MONTHLY;BYMONTHDAY=27');
    expect(recurrenceToRule({ type: 6, interval: 1, weekOfMonth: 5 }, times).toString()).toBe(
      'FREQ=YEARLY;BYMONTH=5;BYDAY=-1MO',
    );
    expect(recurrenceToRule({ type: 5, interval: 1 }, times).toString()).toBe('FREQ=YEARLY;BYMONTH=5;BYMONTHDAY=27');
  });

  it('keeps the meaning of any canonical ActiveSync recurrence through RRULE and back (property)', () => {
    const times = series('2024-01-15T09:00');
    const recurrences = fc.oneof(
      fc.record({ type: fc.constant(0), interval: fc.integer({ min: 1, max: 30 }) }),
      fc.record({
        type: fc.constant(1),
        interval: fc.integer({ min: 1, max: 8 }),
        dayOfWeek: fc.integer({ min: 1, max: 127 }),
      }),
      fc.record({
        type: fc.constant(2),
        interval: fc.integer({ min: 1, max: 12 }),
        dayOfMonth: fc.integer({ min: 1, max: 31 }),
      }),
      fc.record({
        type: fc.constant(3),
        interval: fc.integer({ min: 1, max: 12 }),
        weekOfMonth: fc.integer({ min: 1, max: 5 }),
        dayOfWeek: fc.integer({ min: 1, max: 127 }),
      }),
      fc.record({
        type: fc.constant(5),
        interval: fc.integer({ min: 1, max: 3 }),
        monthOfYear: fc.integer({ min: 1, max: 12 }),
        dayOfMonth: fc.integer({ min: 1, max: 28 }),
      }),
      fc.record({
        type: fc.constant(6),
        interval: fc.integer({ min: 1, max: 3 }),
        monthOfYear: fc.integer({ min: 1, max: 12 }),
        weekOfMonth: fc.integer({ min: 1, max: 5 }),
        dayOfWeek: fc.integer({ min: 1, max: 127 }),
      }),
    );
    const ends = fc.oneof(
      fc.constant({}),
      fc.record({ occurrences: fc.integer({ min: 1, max: 50 }) }),
      fc.record({ firstDayOfWeek: fc.integer({ min: 0, max: 6 }) }),
    );
    fc.assert(
      fc.property(recurrences, ends, (pattern, end) => {
        const recurrence: Recurrence = { ...pattern, ...end };
        const back = recurrenceFromRule(recurrenceToRule(recurrence, times), times);
        // WKST=MO is RFC 5545's default, which ical.js does not write: FirstDayOfWeek 1 and none mean the same.
        const { firstDayOfWeek, ...rest } = recurrence;
        expect(back).toEqual(firstDayOfWeek === 1 ? rest : recurrence);
      }),
      { numRuns: 300 },
    );
  });
});

describe('the Recurrence element', () => {
  it('writes Calendar recurrences in the schema order with a compact Until, FirstDayOfWeek from 14.1', () => {
    const recurrence: Recurrence = {
      type: 3,
      interval: 1,
      weekOfMonth: 2,
      dayOfWeek: 4,
      until: new Date('2024-12-31T08:00:00Z'),
      firstDayOfWeek: 1,
      calendarType: 0,
    };
    const element = recurrenceElement(recurrence, { namespace: 'Calendar', version: '14.1' });
    expect(element.children.map((c) => `${c.tag}=${c.text}`)).toEqual([
      'Type=3',
      'Interval=1',
      'WeekOfMonth=2',
      'DayOfWeek=4',
      'Until=20241231T080000Z',
      'CalendarType=0',
      'FirstDayOfWeek=1',
    ]);
    expect(
      recurrenceElement(recurrence, { namespace: 'Calendar', version: '12.1' }).children.map((c) => c.tag),
    ).not.toContain('FirstDayOfWeek');
    expect(readRecurrence(element)).toEqual(recurrence);
  });

  it('writes Tasks recurrences with Start, Regenerate and DeadOccur and extended dates', () => {
    const recurrence: Recurrence = {
      type: 1,
      interval: 1,
      dayOfWeek: 2,
      start: new Date('2024-06-03T00:00:00Z'),
      until: new Date('2024-09-30T00:00:00Z'),
      regenerate: false,
      deadOccur: false,
    };
    const element = recurrenceElement(recurrence, { namespace: 'Tasks', version: '14.1' });
    expect(element.ns).toBe('Tasks');
    expect(element.children.map((c) => `${c.tag}=${c.text}`)).toEqual([
      'Type=1',
      'Start=2024-06-03T00:00:00.000Z',
      'Until=2024-09-30T00:00:00.000Z',
      'Interval=1',
      'DayOfWeek=2',
      'Regenerate=0',
      'DeadOccur=0',
    ]);
    expect(readRecurrence(element)).toEqual(recurrence);
  });

  it('reads either dateTime form and rejects a missing or unknown Type', () => {
    const element = (children: WbxmlElement[]): WbxmlElement => el('Calendar', 'Recurrence', children);
    expect(
      readRecurrence(
        element([el('Calendar', 'Type', '0'), el('Calendar', 'Until', '2024-03-01T00:00:00.000Z')]),
      )?.until?.toISOString(),
    ).toBe('2024-03-01T00:00:00.000Z');
    expect(readRecurrence(element([el('Calendar', 'Type', '4')]))).toBeUndefined();
    expect(readRecurrence(element([el('Calendar', 'Interval', '2')]))).toBeUndefined();
  });

  it('names an exception by ExceptionStartTime up to 14.1 and by InstanceId in 16.0', () => {
    const at = new Date('2024-03-20T13:30:00Z');
    expect(exceptionStartElement(at, '14.1')).toMatchObject({
      ns: 'Calendar',
      tag: 'ExceptionStartTime',
      text: '20240320T133000Z',
    });
    expect(exceptionStartElement(at, '16.0')).toMatchObject({
      ns: 'AirSyncBase',
      tag: 'InstanceId',
      text: '20240320T133000Z',
    });
    expect(exceptionOriginalStart(el('Calendar', 'Exception', [exceptionStartElement(at, '16.1')]))).toEqual(at);
    expect(exceptionOriginalStart(el('Calendar', 'Exception', [exceptionStartElement(at, '12.0')]))).toEqual(at);
  });
});
